//! How a long command shows its progress: bars on a terminal, one plain line per change when
//! the output goes to a file or a pipe, nothing under `--json` (the JSON is the output).

use audiomill_client::JobEvent;
use audiomill_domain::duration::spoken;
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::{io::IsTerminal, sync::Mutex, time::Duration};
use uuid::Uuid;

#[derive(Clone)]
pub enum Feedback {
    Bars(MultiProgress),
    Lines,
    Quiet,
}

impl Feedback {
    pub fn choose(json: bool) -> Self {
        if json {
            Self::Quiet
        } else if std::io::stdout().is_terminal() {
            Self::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stdout()))
        } else {
            Self::Lines
        }
    }

    /// Prints `line` (above the bars, if any).
    pub fn say(&self, line: &str) {
        match self {
            Self::Bars(bars) => {
                if bars.println(line).is_err() {
                    println!("{line}");
                }
            }
            Self::Lines => println!("{line}"),
            Self::Quiet => {}
        }
    }

    /// Removes the bars, so that what follows (a question, a summary) stands alone.
    pub fn clear(&self) {
        if let Self::Bars(bars) = self {
            let _ = bars.clear();
        }
    }

    /// A link `name` handed to the server, which fetches the video itself.
    pub fn importing(&self, name: &str) -> UploadLine {
        if let Self::Lines = self {
            println!("{name}: asking the server to fetch it");
        }
        UploadLine {
            feedback: self.clone(),
            name: name.to_owned(),
            bar: None,
        }
    }

    /// The progress of uploading `name` (`size` bytes).
    pub fn upload(&self, name: &str, size: u64) -> UploadLine {
        let bar = match self {
            Self::Bars(bars) => {
                let bar = bars.add(ProgressBar::new(size));
                bar.set_style(style(
                    "{prefix} {bar:30.cyan/blue} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
                ));
                bar.set_prefix(format!("uploading {name}"));
                Some(bar)
            }
            Self::Lines => {
                println!("{name}: uploading {}", HumanBytes(size));
                None
            }
            Self::Quiet => None,
        };
        UploadLine {
            feedback: self.clone(),
            name: name.to_owned(),
            bar,
        }
    }

    /// The progress of `name`'s conversion; `width` aligns the names of several jobs.
    pub fn job(&self, name: &str, width: usize) -> JobLine {
        let bar = match self {
            Self::Bars(bars) => {
                let bar = bars.add(ProgressBar::new(100));
                bar.set_style(style(&format!(
                    "{{prefix:<{width}}} {{bar:30.green/blue}} {{pos:>3}}% {{wide_msg}}"
                )));
                bar.set_prefix(name.to_owned());
                bar.set_message("queued");
                bar.enable_steady_tick(Duration::from_millis(250));
                Some(bar)
            }
            Self::Lines | Self::Quiet => None,
        };
        JobLine {
            feedback: self.clone(),
            name: name.to_owned(),
            bar,
            said: Mutex::new(Said::default()),
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("the template is valid")
        .progress_chars("=> ")
}

pub struct UploadLine {
    feedback: Feedback,
    name: String,
    bar: Option<ProgressBar>,
}

impl UploadLine {
    /// Called with the bytes sent so far.
    pub fn on_progress(&self) -> impl Fn(u64) + Clone + Send + Sync + 'static {
        let bar = self.bar.clone();
        move |sent| {
            if let Some(bar) = &bar {
                bar.set_position(sent);
            }
        }
    }

    /// Says that a resumable upload goes on at `offset` bytes, where an earlier run (or a cut
    /// connection) left it.
    pub fn resuming(&self, offset: u64) {
        let said = format!("{}: resuming at {}", self.name, HumanBytes(offset));
        match &self.bar {
            Some(bar) => {
                bar.set_position(offset);
                bar.reset_eta();
                bar.println(said);
            }
            None => self.feedback.say(&said),
        }
    }

    pub fn accepted(self, job_id: Uuid, replayed: bool) {
        self.clear();
        let again = if replayed { " (sent before)" } else { "" };
        let how = if self.bar.is_some() || !self.name.contains("://") {
            "uploaded"
        } else {
            "accepted"
        };
        self.feedback
            .say(&format!("{}: {how} as job {job_id}{again}", self.name));
    }

    pub fn refused(self, why: &str) {
        self.clear();
        self.feedback.say(&format!("{}: refused: {why}", self.name));
    }

    fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// What a plain-lines job has said, so that it says only what changed.
#[derive(Default)]
struct Said {
    step: Option<String>,
    quarter: u8,
}

pub struct JobLine {
    feedback: Feedback,
    name: String,
    bar: Option<ProgressBar>,
    said: Mutex<Said>,
}

impl JobLine {
    pub fn update(&self, event: &JobEvent) {
        let data = &event.data;
        let step = data
            .step
            .map_or_else(|| data.status.to_string(), |step| step.to_string());
        if event.kind == "retry" {
            let why = crate::printable::printable(data.error.as_deref().unwrap_or("it failed"));
            self.feedback.say(&format!(
                "{}: retrying {step} (attempt {}): {why}",
                self.name, data.attempt
            ));
        }
        if let Some(bar) = &self.bar {
            bar.set_position(data.progress.into());
            let left = data
                .eta_seconds
                .map(|seconds| format!(" · {} left", spoken(seconds)))
                .unwrap_or_default();
            bar.set_message(format!("{step}{left}"));
            return;
        }
        let mut said = self
            .said
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let quarter = data.progress / 25;
        if said.step.as_deref() != Some(step.as_str()) {
            said.step = Some(step.clone());
            said.quarter = quarter;
            self.feedback.say(&format!("{}: {step}", self.name));
        } else if quarter > said.quarter && data.progress < 100 {
            said.quarter = quarter;
            self.feedback
                .say(&format!("{}: {step} {}%", self.name, data.progress));
        }
    }

    /// The job's last word: the bar stops with it, or it is printed.
    pub fn finish(&self, outcome: &str) {
        match &self.bar {
            Some(bar) => bar.finish_with_message(outcome.to_owned()),
            None => self.feedback.say(&format!("{}: {outcome}", self.name)),
        }
    }
}
