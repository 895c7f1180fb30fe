//! The transcoder in a child process, so that FFmpeg failing in the worst ways (a crash, a
//! hang, a runaway allocation, an endless output) fails one attempt and never the worker.
//!
//! The worker starts its own executable with the hidden `transcode-child` subcommand, sends one
//! [`Job`] as a JSON line on the child's stdin, and reads `progress N` lines and one final
//! [`Outcome`] line from its stdout. The child first limits itself (address space, CPU time,
//! size of any file it writes), and exits as soon as its stdin closes, so it never outlives
//! the worker. The worker kills the child when the activity is cancelled, and when the child
//! has said nothing for [`Transcoder::silence`] (a hang). A child that dies without an outcome
//! is a [`TranscodeError::Crashed`].
//!
//! Loading FFmpeg's libraries (over a hundred shared objects) takes a child about 40 ms, which
//! a job would wait for at every step and every part. So the worker keeps a few children
//! started ahead ([`Transcoder::with_spares`]): each waits for its one job on stdin, and those
//! taken are started again as their runs end. Still one fresh process per job.

use crate::transcode::{
    MediaLimits, SegmentSettings, SourceLocation, TranscodeError, TranscodeReport, plan, transcode,
    transcode_part,
};
use audiomill_domain::{
    in_parts::SegmentPlan,
    output::{OutputOptions, SourceTrack},
};
use serde::{Deserialize, Serialize};
use std::{
    io::{BufRead, Write},
    ops::ControlFlow,
    os::unix::process::ExitStatusExt,
    path::PathBuf,
    process::{ExitStatus, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, Command},
};

/// The hidden subcommand of the `audiomill` binary that runs [`child_main`].
pub const SUBCOMMAND: &str = "transcode-child";

/// How the worker runs transcodes.
#[derive(Debug, Clone)]
pub struct Transcoder {
    /// The executable that has the [`SUBCOMMAND`]: the worker's own.
    pub executable: PathBuf,
    /// The child's address space, in MB.
    pub memory_mb: u64,
    /// A child that reports nothing for this long is taken to hang and is killed.
    pub silence: Duration,
    /// Children started ahead, waiting for a job (shared by the clones of one worker's
    /// transcoder).
    spares: Arc<Spares>,
}

#[derive(Debug, Default)]
struct Spares {
    /// How many to keep.
    count: usize,
    waiting: std::sync::Mutex<Vec<Child>>,
}

impl Transcoder {
    pub fn new(executable: PathBuf) -> Self {
        Self {
            executable,
            memory_mb: 2048,
            silence: Duration::from_secs(60),
            spares: Arc::default(),
        }
    }

    /// Keeps `count` children started ahead once [`Transcoder::start_spares`] or the end of a
    /// first run starts them: at least as many as transcodes run at once, so none waits for
    /// FFmpeg.
    pub fn with_spares(mut self, count: usize) -> Self {
        self.spares = Arc::new(Spares {
            count,
            waiting: Default::default(),
        });
        self
    }

    /// Starts spare children up to their count. Within a Tokio runtime.
    pub fn start_spares(&self) {
        let mut waiting = self
            .spares
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        while waiting.len() < self.spares.count {
            match self.spawn() {
                Ok(child) => waiting.push(child),
                Err(error) => {
                    tracing::warn!(%error, "could not start a spare transcoder");
                    break;
                }
            }
        }
    }

    fn spawn(&self) -> std::io::Result<Child> {
        Command::new(&self.executable)
            .arg(SUBCOMMAND)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
    }

    /// A spare child still alive, or else a new one.
    fn child(&self) -> std::io::Result<Child> {
        let spare = {
            let mut waiting = self
                .spares
                .waiting
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            std::iter::from_fn(|| waiting.pop())
                .find_map(|mut child| matches!(child.try_wait(), Ok(None)).then_some(child))
        };
        spare.map_or_else(|| self.spawn(), Ok)
    }
}

/// Starts the spares taken again when a run is over (done, failed or dropped): not as it
/// starts, where loading FFmpeg would take CPU from the transcodes just begun.
struct RefillSpares<'a>(&'a Transcoder);

impl Drop for RefillSpares<'_> {
    fn drop(&mut self) {
        self.0.start_spares();
    }
}

/// One transcode, as the child receives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub input: SourceLocation,
    pub output: PathBuf,
    pub options: OutputOptions,
    /// The upload's file name: the title when the source's metadata has none.
    pub file_name: String,
    pub limits: MediaLimits,
    pub memory_mb: u64,
    /// Whether a long source is only planned in parts (and not converted) when it can be.
    #[serde(default)]
    pub segments: Option<SegmentSettings>,
    /// Convert only this part of the plan.
    #[serde(default)]
    pub part: Option<(SegmentPlan, u32)>,
}

/// What a transcode made.
#[derive(Debug, Clone, PartialEq)]
pub enum Converted {
    Mp3(TranscodeReport),
    /// The source is long: it is to be converted in these parts.
    Planned(SegmentPlan),
}

/// How the child's transcode ended, as its last line says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Outcome {
    Done {
        duration_ms: u64,
        #[serde(default)]
        copied: bool,
        #[serde(default)]
        tracks: Vec<SourceTrack>,
    },
    Planned(SegmentPlan),
    Unsupported(String),
    NoAudioStream,
    Corrupt(String),
    TooLong(String),
    Trim(String),
    Track(String),
    Output(String),
}

impl From<Result<Converted, TranscodeError>> for Outcome {
    fn from(result: Result<Converted, TranscodeError>) -> Self {
        match result {
            Ok(Converted::Mp3(report)) => Outcome::Done {
                duration_ms: report.duration_ms,
                copied: report.copied,
                tracks: report.tracks,
            },
            Ok(Converted::Planned(plan)) => Outcome::Planned(plan),
            Err(TranscodeError::Unsupported(m)) => Outcome::Unsupported(m),
            Err(TranscodeError::NoAudioStream) => Outcome::NoAudioStream,
            Err(TranscodeError::Corrupt(m)) => Outcome::Corrupt(m),
            Err(TranscodeError::TooLong(m)) => Outcome::TooLong(m),
            Err(TranscodeError::Trim(m)) => Outcome::Trim(m),
            Err(TranscodeError::Track(m)) => Outcome::Track(m),
            // Cancelled: the worker went away; nobody reads this.
            Err(error) => Outcome::Output(error.to_string()),
        }
    }
}

impl From<Outcome> for Result<Converted, TranscodeError> {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Done {
                duration_ms,
                copied,
                tracks,
            } => Ok(Converted::Mp3(TranscodeReport {
                duration_ms,
                copied,
                tracks,
            })),
            Outcome::Planned(plan) => Ok(Converted::Planned(plan)),
            Outcome::Unsupported(m) => Err(TranscodeError::Unsupported(m)),
            Outcome::NoAudioStream => Err(TranscodeError::NoAudioStream),
            Outcome::Corrupt(m) => Err(TranscodeError::Corrupt(m)),
            Outcome::TooLong(m) => Err(TranscodeError::TooLong(m)),
            Outcome::Trim(m) => Err(TranscodeError::Trim(m)),
            Outcome::Track(m) => Err(TranscodeError::Track(m)),
            Outcome::Output(m) => Err(TranscodeError::Output(m)),
        }
    }
}

const PROGRESS: &str = "progress ";
const OUTCOME: &str = "outcome ";

/// How often the child reports while nothing changes, so the worker knows it is alive.
const ALIVE_EVERY: Duration = Duration::from_millis(500);

impl Transcoder {
    /// Runs `job` in a child process, passing each progress report to `on_progress`. The
    /// child is killed if this future is dropped (the activity was cancelled).
    pub async fn run(
        &self,
        job: &Job,
        on_progress: impl Fn(u8),
    ) -> Result<Converted, TranscodeError> {
        let spawn_failed = |e: std::io::Error| {
            TranscodeError::Output(format!("the transcoder did not start: {e}"))
        };
        // Dropped after the child (killed first, when this future is dropped).
        let _refill = RefillSpares(self);
        let mut child = self.child().map_err(spawn_failed)?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let mut request = serde_json::to_vec(job).expect("a job serialises");
        request.push(b'\n');
        // A child that died before reading shows as a crash below.
        let _ = stdin.write_all(&request).await;
        let mut lines = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let mut outcome = None;
        loop {
            match tokio::time::timeout(self.silence, lines.next_line()).await {
                Err(_) => {
                    let _ = child.kill().await;
                    return Err(TranscodeError::Crashed(format!(
                        "the converter stopped responding for {} s and was stopped",
                        self.silence.as_secs()
                    )));
                }
                Ok(Ok(Some(line))) => {
                    if let Some(percent) = line.strip_prefix(PROGRESS) {
                        on_progress(percent.trim().parse().unwrap_or(0));
                    } else if let Some(json) = line.strip_prefix(OUTCOME) {
                        outcome = serde_json::from_str::<Outcome>(json).ok();
                    }
                }
                Ok(Ok(None) | Err(_)) => break,
            }
        }
        drop(stdin);
        let status = child.wait().await.map_err(spawn_failed)?;
        match outcome {
            Some(outcome) if status.success() => outcome.into(),
            _ => Err(TranscodeError::Crashed(describe_exit(status))),
        }
    }
}

fn describe_exit(status: ExitStatus) -> String {
    match (status.signal(), status.code()) {
        (Some(libc::SIGXFSZ), _) => "the converter wrote more than its file size limit".into(),
        (Some(libc::SIGXCPU), _) => "the converter used up its CPU time".into(),
        (Some(signal), _) => format!("the converter crashed (signal {signal})"),
        (None, Some(code)) => format!("the converter exited unexpectedly (code {code})"),
        (None, None) => "the converter ended unexpectedly".into(),
    }
}

/// The child's side: limits itself, reads its job from stdin, transcodes, reports on stdout.
/// Returns the process's exit code.
pub fn child_main() -> i32 {
    let mut request = String::new();
    let stdin = std::io::stdin();
    match stdin.lock().read_line(&mut request) {
        // A spare no longer needed (its worker stopped): nothing to say.
        Ok(0) => return 0,
        Ok(_) => {}
        Err(_) => return 2,
    }
    let Ok(job) = serde_json::from_str::<Job>(&request) else {
        eprintln!("transcode-child: the job could not be read");
        return 2;
    };
    if let Err(error) = limit_self(&job) {
        eprintln!("transcode-child: could not set resource limits: {error}");
        return 2;
    }
    // The worker holds our stdin open; when it closes, the worker is gone: stop.
    let orphaned = Arc::new(AtomicBool::new(false));
    {
        let orphaned = orphaned.clone();
        std::thread::spawn(move || {
            let mut rest = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut rest);
            orphaned.store(true, Ordering::Relaxed);
        });
    }
    let stdout = std::io::stdout();
    let mut last = (u8::MAX, Instant::now());
    let mut report = |percent| {
        if orphaned.load(Ordering::Relaxed) {
            return ControlFlow::Break(());
        }
        if percent != last.0 || last.1.elapsed() >= ALIVE_EVERY {
            last = (percent, Instant::now());
            let _ = writeln!(stdout.lock(), "{PROGRESS}{percent}");
        }
        ControlFlow::Continue(())
    };
    let result = convert(&job, &mut report);
    let outcome = serde_json::to_string(&Outcome::from(result)).expect("an outcome serialises");
    let mut out = stdout.lock();
    let _ = writeln!(out, "{OUTCOME}{outcome}");
    let _ = out.flush();
    0
}

/// The child's work: a part, a plan of parts (or only the plan), or the whole MP3.
fn convert(
    job: &Job,
    on_progress: &mut dyn FnMut(u8) -> ControlFlow<()>,
) -> Result<Converted, TranscodeError> {
    let (input, output, options) = (&job.input, &job.output, &job.options);
    if let Some((plan, part)) = &job.part {
        let part = (plan, *part as usize);
        return transcode_part(
            input,
            output,
            options,
            &job.file_name,
            job.limits,
            part,
            on_progress,
        )
        .map(Converted::Mp3);
    }
    if let Some(settings) = job.segments
        && let Some(plan) = plan(input, options, job.limits, settings)?
    {
        return Ok(Converted::Planned(plan));
    }
    transcode(
        input,
        output,
        options,
        &job.file_name,
        job.limits,
        on_progress,
    )
    .map(Converted::Mp3)
}

/// Address space, CPU seconds (one per decoded second allowed, far beyond any real need) and
/// the largest file the child may write (the MP3 limit and a little room).
fn limit_self(job: &Job) -> std::io::Result<()> {
    use rlimit::Resource;
    let memory = job.memory_mb.saturating_mul(1024 * 1024);
    Resource::AS.set(memory, memory)?;
    let cpu = u64::from(job.limits.max_seconds).max(60);
    Resource::CPU.set(cpu, cpu)?;
    let file = job.limits.max_output_bytes() + 1024 * 1024;
    Resource::FSIZE.set(file, file)?;
    Resource::CORE.set(0, 0)?;
    Ok(())
}
