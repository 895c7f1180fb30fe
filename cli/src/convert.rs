//! `audiomill convert FILE|URL...`: uploads each video (or has the server fetch it from its
//! link), follows every job's live progress, saves
//! each MP3, and ends non-zero naming every file that did not make it and why.

use crate::{
    choices::OutputFlags,
    exit::Exit,
    feedback::{Feedback, JobLine, UploadLine},
    pending::{PendingUploads, UploadKey},
    printable::printable,
    problem::Problem,
    save::save,
    session::Session,
};
use audiomill_client::{
    Error, JobEvent, Resumable, UploadAnswer, UploadOptions, resumable_offset, send_resumable,
    types::{ErrorBody, JobState},
};
use audiomill_domain::import::ImportUrl;
use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use futures::StreamExt;
use serde::Serialize;
use std::{
    collections::HashSet,
    io,
    path::{Path, PathBuf},
    sync::Mutex,
    time::Duration,
};
use uuid::Uuid;

/// How many times in a row a dropped event stream is reopened before the job is given up on.
const RECONNECTS: u64 = 5;

#[derive(clap::Args, Debug)]
pub struct ConvertArgs {
    #[command(flatten)]
    pub key: crate::session::KeyArgs,
    /// The videos or audio files to convert (MP4, MOV, AVI, MKV, WebM, MP3, M4A, WAV, FLAC,
    /// Ogg): files, or `http(s)://` links the server fetches them from.
    #[arg(required = true, value_name = "FILE|URL")]
    pub files: Vec<PathBuf>,
    /// Where to save the outputs (created if missing); each is named after its source.
    #[arg(long, short, value_name = "DIR", default_value = ".")]
    pub output: PathBuf,
    /// Upload and print the job ids, without waiting for the conversions.
    #[arg(long)]
    pub no_wait: bool,
    /// Print one JSON document with every file's outcome instead of progress, for scripts.
    #[arg(long)]
    pub json: bool,
    /// Files larger than this many MB go as resumable uploads: a cut connection, or
    /// `convert` run again after it was stopped, goes on where the upload stopped (0: every
    /// file).
    #[arg(long, value_name = "MB", default_value = "64")]
    pub resumable_above: u64,
    /// The most one request of a resumable upload carries, in MB.
    #[arg(long, value_name = "MB", default_value = "32", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub chunk: u64,
    #[command(flatten)]
    pub output_choices: OutputFlags,
}

/// What became of one file; `--json` prints a list of these.
#[derive(Debug, Clone, Serialize)]
struct Outcome {
    file: String,
    /// `null` when the upload was refused.
    job_id: Option<Uuid>,
    /// `refused` (or `not_sent`, when the run stopped first), else where the job stands:
    /// `queued`, `running`, `completed`, `failed`, `cancelled`.
    status: String,
    /// Where the MP3 was saved.
    mp3: Option<String>,
    /// Why the file was refused, the job failed, or its MP3 was not saved.
    error: Option<String>,
}

pub async fn convert(args: ConvertArgs) -> Result<Exit, Problem> {
    let session = Session::load_with(&args.key)?;
    if !args.no_wait {
        std::fs::create_dir_all(&args.output).map_err(|error| {
            Problem::new(format!(
                "Could not create {}: {error}.",
                args.output.display()
            ))
        })?;
    }
    let run = Run {
        server: session.server().to_owned(),
        pending: PendingUploads::in_dir(session.config_dir()),
        resumable_above: args.resumable_above.saturating_mul(1024 * 1024),
        chunk: args.chunk * 1024 * 1024,
        session: tokio::sync::Mutex::new(session),
        feedback: Feedback::choose(args.json),
        targets: output_targets(&args.files, &args.output, args.output_choices.extension()),
        outcomes: Mutex::new(
            args.files
                .iter()
                .map(|file| Outcome::pending(file))
                .collect(),
        ),
        files: args.files,
        options: (&args.output_choices).into(),
    };
    let finished = tokio::select! {
        result = run.work(args.no_wait) => Some(result),
        _ = tokio::signal::ctrl_c() => None,
    };
    match finished {
        Some(Ok(())) => Ok(run.report(args.json, args.no_wait)),
        Some(Err(problem)) => {
            run.name_started_jobs();
            Err(problem)
        }
        None => Ok(run.interrupted(args.json).await),
    }
}

struct Run {
    server: String,
    /// Resumable uploads under way, to go on with in a later run.
    pending: PendingUploads,
    /// Files larger than this go as resumable uploads, in chunks of `chunk` bytes.
    resumable_above: u64,
    chunk: u64,
    session: tokio::sync::Mutex<Session>,
    feedback: Feedback,
    files: Vec<PathBuf>,
    targets: Vec<PathBuf>,
    outcomes: Mutex<Vec<Outcome>>,
    /// What every MP3 should be.
    options: UploadOptions,
}

impl Run {
    async fn work(&self, no_wait: bool) -> Result<(), Problem> {
        for index in 0..self.files.len() {
            self.upload(index).await?;
        }
        if no_wait {
            return Ok(());
        }
        let started: Vec<(usize, Uuid)> = self
            .outcomes()
            .iter()
            .enumerate()
            .filter_map(|(index, outcome)| Some((index, outcome.job_id?)))
            .collect();
        let width = started
            .iter()
            .map(|(index, _)| self.name(*index).chars().count())
            .max()
            .unwrap_or(0);
        let follows = started
            .into_iter()
            .map(|(index, job)| self.follow_and_save(index, job, width));
        futures::future::join_all(follows).await;
        Ok(())
    }

    async fn upload(&self, index: usize) -> Result<(), Problem> {
        let path = &self.files[index];
        let client = self.client().await?;
        let (line, answer) = match link(path) {
            Some(Ok(url)) => {
                let line = self.feedback.importing(&self.name(index));
                let answer = self.send_link(&client, &url).await;
                (line, answer)
            }
            Some(Err(why)) => {
                self.refuse(index, &why);
                return Ok(());
            }
            None => match readable_size(path) {
                Ok(size) => {
                    let line = self.feedback.upload(&self.name(index), size);
                    let answer = self.send_file(&client, path, size, &line).await;
                    (line, answer)
                }
                Err(why) => {
                    self.refuse(index, &why);
                    return Ok(());
                }
            },
        };
        self.answered(index, line, answer)
    }

    /// Sends the file whole, or as a resumable upload when it is large.
    async fn send_file(
        &self,
        client: &audiomill_client::Client,
        path: &Path,
        size: u64,
        line: &UploadLine,
    ) -> Result<(Uuid, bool), Error<ErrorBody>> {
        if size > self.resumable_above {
            self.send_resumable(client, path, line).await
        } else {
            self.send_whole(client, path, line).await
        }
    }

    /// What became of file `index`'s upload or import, as its outcome.
    fn answered(
        &self,
        index: usize,
        line: UploadLine,
        answer: Result<(Uuid, bool), Error<ErrorBody>>,
    ) -> Result<(), Problem> {
        match answer {
            Ok((job_id, replayed)) => {
                self.update(index, |outcome| {
                    outcome.job_id = Some(job_id);
                    outcome.status = JobState::Queued.to_string();
                });
                line.accepted(job_id, replayed);
                Ok(())
            }
            Err(Error::ErrorResponse(refusal))
                if refusal.status().is_client_error() && refusal.status().as_u16() != 401 =>
            {
                let why = printable(&refusal.message).into_owned();
                line.refused(&why);
                self.update(index, |outcome| outcome.refused(why));
                Ok(())
            }
            Err(Error::InvalidRequest(why)) => {
                line.refused(&why);
                self.update(index, |outcome| outcome.refused(why));
                Ok(())
            }
            Err(error) => {
                line.refused("not sent");
                Err(Problem::from_api(&self.server, error))
            }
        }
    }

    /// Asks the server to import the video at `url`: its job, and whether an earlier attempt
    /// had started it.
    async fn send_link(
        &self,
        client: &audiomill_client::Client,
        url: &ImportUrl,
    ) -> Result<(Uuid, bool), Error<ErrorBody>> {
        // The same key on every attempt: an import whose answer was lost is not started twice.
        let key = Uuid::new_v4().to_string();
        let link = url.as_url().as_str();
        let answer = (|| audiomill_client::import(client, link, &self.options, Some(&key)))
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_secs(1))
                    .with_max_times(2),
            )
            .when(broke_off)
            .await;
        answer.map(|UploadAnswer { job, replayed }| (job.job_id, replayed))
    }

    /// Sends the file in one request: its job, and whether an earlier attempt had started it.
    async fn send_whole(
        &self,
        client: &audiomill_client::Client,
        path: &Path,
        line: &UploadLine,
    ) -> Result<(Uuid, bool), Error<ErrorBody>> {
        // The same key on every attempt: an upload whose answer was lost is not started twice.
        let key = Uuid::new_v4().to_string();
        let answer = (|| {
            audiomill_client::upload(client, path, &self.options, Some(&key), line.on_progress())
        })
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_secs(1))
                .with_max_times(2),
        )
        .when(broke_off)
        .await;
        answer.map(|UploadAnswer { job, replayed }| (job.job_id, replayed))
    }

    /// Sends the file as a resumable upload, going on with the one an earlier run left if
    /// there is one, and from where the server says after a cut: its job.
    async fn send_resumable(
        &self,
        client: &audiomill_client::Client,
        path: &Path,
        line: &UploadLine,
    ) -> Result<(Uuid, bool), Error<ErrorBody>> {
        let key = UploadKey::of(&self.server, path, self.options.fields())
            .map_err(|error| Error::InvalidRequest(format!("{error}.")))?;
        let mut upload = match self.earlier_upload(client, &key).await? {
            Some(upload) => {
                line.resuming(upload.offset);
                upload
            }
            None => {
                let upload = audiomill_client::create_resumable(
                    client,
                    path,
                    &self.options,
                    Some(&Uuid::new_v4().to_string()),
                )
                .await?;
                self.remember(&key, &upload.url);
                upload
            }
        };
        // About three minutes of patience: an outage of the conversion service leaves the
        // bytes kept and the job unstarted, and a later look at the upload starts it.
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_secs(1))
            .with_max_times(8)
            .build();
        let job = loop {
            let sent = match upload.job_id {
                Some(job) if upload.is_complete() => Ok(job),
                // Another request of the upload is starting its job: ask again after a wait.
                None if upload.is_complete() => Err(not_started()),
                _ => {
                    send_resumable(client, &mut upload, path, self.chunk, line.on_progress()).await
                }
            };
            match sent {
                Ok(job) => break job,
                Err(error) if resumable(&error) => {
                    let Some(delay) = delays.next() else {
                        return Err(error);
                    };
                    tokio::time::sleep(delay).await;
                    // Where it stands, and its job once complete (the look starts one that the
                    // last chunk could not); a look that fails is tried after the next wait.
                    match resumable_offset(client, &upload.url).await {
                        Ok(standing) => {
                            upload = standing;
                            line.resuming(upload.offset);
                        }
                        Err(error) if resumable(&error) => {}
                        Err(error) => return Err(error),
                    }
                }
                Err(error) => return Err(error),
            }
        };
        let _ = self.pending.forget(&upload.url);
        Ok((job, false))
    }

    /// The unfinished upload of `key` an earlier run left, if the server still has it.
    async fn earlier_upload(
        &self,
        client: &audiomill_client::Client,
        key: &UploadKey,
    ) -> Result<Option<Resumable>, Error<ErrorBody>> {
        let Some(url) = self.pending.find(key) else {
            return Ok(None);
        };
        match resumable_offset(client, &url).await {
            Ok(upload) => Ok(Some(upload)),
            Err(Error::ErrorResponse(refusal)) if refusal.status().is_client_error() => {
                let _ = self.pending.forget(&url);
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    fn remember(&self, key: &UploadKey, url: &str) {
        if let Err(problem) = self.pending.remember(key, url) {
            self.feedback.say(&format!(
                "{problem} The upload cannot be resumed by a later run."
            ));
        }
    }

    fn refuse(&self, index: usize, why: &str) {
        self.feedback
            .say(&format!("{}: refused: {why}", self.name(index)));
        self.update(index, |outcome| outcome.refused(why.to_owned()));
    }

    /// Follows one job to its end, then saves its MP3; whatever goes wrong is that job's
    /// outcome, not the run's.
    async fn follow_and_save(&self, index: usize, job: Uuid, width: usize) {
        let line = self.feedback.job(&self.name(index), width);
        let result = async {
            let end = self.follow(job, &line).await?;
            self.update(index, |outcome| outcome.status = end.status.to_string());
            match end.status {
                JobState::Completed => {
                    let target = &self.targets[index];
                    let client = self.client().await?;
                    let mp3 = client
                        .download_mp3()
                        .job_id(job)
                        .send()
                        .await
                        .map_err(|error| Problem::from_api(&self.server, error))?;
                    save(&self.server, mp3.into_inner(), target).await?;
                    line.finish(&format!("saved {}", target.display()));
                    self.update(index, |outcome| {
                        outcome.mp3 = Some(target.display().to_string());
                    });
                    Ok(())
                }
                JobState::Cancelled => Err(Problem::new("the job was cancelled.")),
                _ => Err(Problem::new(
                    end.error.unwrap_or_else(|| "the job failed.".into()),
                )),
            }
        }
        .await;
        if let Err(problem) = result {
            line.finish(&format!("failed: {problem}"));
            self.update(index, |outcome| outcome.error = Some(problem.to_string()));
        }
    }

    /// Reads the job's events until its end, reopening a dropped stream where it left off.
    async fn follow(&self, job: Uuid, line: &JobLine) -> Result<End, Problem> {
        let mut last_id: Option<String> = None;
        let mut dropped = 0;
        loop {
            let client = self.client().await?;
            match audiomill_client::events(&client, job, last_id.as_deref()).await {
                Ok(Some(mut events)) => {
                    while let Some(Ok(event)) = events.next().await {
                        dropped = 0;
                        line.update(&event);
                        if event.is_end() {
                            return Ok(End::from(event));
                        }
                        last_id = Some(event.id);
                    }
                }
                // The job had ended before: its status says how.
                Ok(None) => {
                    let status = client
                        .get_job_status()
                        .job_id(job)
                        .send()
                        .await
                        .map_err(|error| Problem::from_api(&self.server, error))?;
                    return Ok(End {
                        status: status.status,
                        error: status.error.clone(),
                    });
                }
                Err(Error::CommunicationError(_)) => {}
                Err(error) => return Err(Problem::from_api(&self.server, error)),
            }
            dropped += 1;
            if dropped > RECONNECTS {
                return Err(Problem::new(format!(
                    "lost the connection to {} while following job {job}.",
                    self.server
                )));
            }
            tokio::time::sleep(Duration::from_secs(dropped)).await;
        }
    }

    /// After Ctrl-C: asks whether to cancel the jobs still running on the server.
    async fn interrupted(&self, json: bool) -> Exit {
        self.feedback.clear();
        let unfinished: Vec<(usize, Uuid)> = self
            .outcomes()
            .iter()
            .enumerate()
            .filter(|(_, outcome)| {
                !["completed", "failed", "cancelled"].contains(&&*outcome.status)
            })
            .filter_map(|(index, outcome)| Some((index, outcome.job_id?)))
            .collect();
        if unfinished.is_empty() {
            eprintln!("Stopped.");
        } else {
            let count = match unfinished.len() {
                1 => "the unfinished job".to_owned(),
                n => format!("the {n} unfinished jobs"),
            };
            eprint!("\nStopped. Cancel {count} on the server too? [y/N] ");
            let cancel = tokio::select! {
                answer = yes() => answer,
                _ = tokio::signal::ctrl_c() => false,
            };
            if cancel {
                for (index, job) in unfinished {
                    self.cancel(index, job).await;
                }
            } else {
                eprintln!("The jobs go on on the server (`audiomill jobs` lists them):");
                for (index, job) in unfinished {
                    eprintln!("  {job}  {}", self.name(index));
                }
            }
        }
        if json {
            self.print_json();
        }
        Exit::Interrupted
    }

    async fn cancel(&self, index: usize, job: Uuid) {
        let name = self.name(index);
        let answer = match self.client().await {
            Ok(client) => client.cancel_job().job_id(job).send().await,
            Err(problem) => return eprintln!("{name}: not cancelled: {problem}"),
        };
        match answer {
            Ok(_) => {
                eprintln!("{name}: job {job} cancelled.");
                self.update(index, |outcome| {
                    outcome.status = JobState::Cancelled.to_string();
                    outcome.error = Some("cancelled at the user's request.".into());
                });
            }
            Err(error) => eprintln!(
                "{name}: not cancelled: {}",
                Problem::from_api(&self.server, error)
            ),
        }
    }

    fn report(&self, json: bool, no_wait: bool) -> Exit {
        if json {
            self.print_json();
        }
        let outcomes = self.outcomes();
        let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.error.is_some()).collect();
        if !json {
            for outcome in &failed {
                let why = outcome.error.as_deref().unwrap_or_default();
                match outcome.job_id {
                    Some(job) => eprintln!("audiomill: {} (job {job}) failed: {why}", outcome.file),
                    None => eprintln!("audiomill: {} was not sent: {why}", outcome.file),
                }
            }
            if !no_wait {
                let saved = outcomes.len() - failed.len();
                println!("{saved} of {} converted.", outcomes.len());
            }
        }
        if failed.is_empty() {
            Exit::Success
        } else {
            Exit::Failed
        }
    }

    fn print_json(&self) {
        let document = serde_json::json!({ "files": *self.outcomes() });
        println!(
            "{}",
            serde_json::to_string_pretty(&document).expect("outcomes serialize")
        );
    }

    /// When the run stops early, the jobs it started go on: says which they are.
    fn name_started_jobs(&self) {
        self.feedback.clear();
        for outcome in self.outcomes().iter() {
            if let Some(job) = outcome.job_id {
                eprintln!("{}: job {job} was started and goes on.", outcome.file);
            }
        }
    }

    async fn client(&self) -> Result<audiomill_client::Client, Problem> {
        self.session.lock().await.client().await
    }

    /// How file `index` is named to the user: its path, or its link without credentials or
    /// query.
    fn name(&self, index: usize) -> String {
        match link(&self.files[index]) {
            Some(Ok(url)) => url.redacted(),
            _ => self.files[index].display().to_string(),
        }
    }

    fn outcomes(&self) -> std::sync::MutexGuard<'_, Vec<Outcome>> {
        self.outcomes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update(&self, index: usize, change: impl FnOnce(&mut Outcome)) {
        change(&mut self.outcomes()[index]);
    }
}

impl Outcome {
    fn refused(&mut self, why: String) {
        self.status = "refused".into();
        self.error = Some(why);
    }

    fn pending(file: &Path) -> Self {
        let file = match link(file) {
            Some(Ok(url)) => url.redacted(),
            _ => file.display().to_string(),
        };
        Self {
            file,
            job_id: None,
            status: "not_sent".into(),
            mp3: None,
            error: None,
        }
    }
}

/// How a job ended.
struct End {
    status: JobState,
    error: Option<String>,
}

impl From<JobEvent> for End {
    fn from(event: JobEvent) -> Self {
        Self {
            status: event.data.status,
            error: event.data.error,
        }
    }
}

/// The size of the video at `path`, or why it cannot be sent.
fn readable_size(path: &Path) -> Result<u64, String> {
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_file() => Ok(metadata.len()),
        Ok(_) => Err("it is not a file.".into()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            Err("there is no such file.".into())
        }
        Err(error) => Err(format!("{error}.")),
    }
}

/// The refusal of a complete upload whose job is not named yet: as an outage, to wait out.
fn not_started() -> Error<ErrorBody> {
    let body = ErrorBody {
        error: audiomill_client::types::ErrorCode::ServiceUnavailable,
        message: "The upload is complete and its job is starting.".into(),
        field: None,
    };
    Error::ErrorResponse(audiomill_client::ResponseValue::new(
        body,
        reqwest::StatusCode::SERVICE_UNAVAILABLE,
        Default::default(),
    ))
}

/// Whether a resumable upload's chunk may go on from where the server says it stands: it
/// broke off on the way, the upload moved on meanwhile (409: a request of an earlier run,
/// cut off on this side, still reached it), another request still held it (423), or the
/// server was briefly unavailable.
fn resumable(error: &Error<ErrorBody>) -> bool {
    match error {
        Error::CommunicationError(_) => true,
        Error::ErrorResponse(refusal) => {
            matches!(refusal.status().as_u16(), 408 | 409 | 423 | 503)
        }
        _ => false,
    }
}

/// Whether an upload broke off after reaching the server, so that sending it again (with the
/// same `Idempotency-Key`) may succeed. A server that cannot be reached is not tried again.
fn broke_off(error: &Error<ErrorBody>) -> bool {
    matches!(error, Error::CommunicationError(error) if !error.is_connect())
}

/// The link `argument` is, when it is written as one (`http://` or `https://`): parsed, or
/// why it cannot be imported.
fn link(argument: &Path) -> Option<Result<ImportUrl, String>> {
    let text = argument.to_str()?;
    let scheme = text.split_once("://")?.0.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    Some(ImportUrl::parse(text).map_err(|why| format!("the link is not acceptable: {why}.")))
}

/// Where each file's output is saved in `dir`: its name with `extension`, and `-2`, `-3`...
/// when two files share a name.
fn output_targets(files: &[PathBuf], dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut taken = HashSet::new();
    files
        .iter()
        .map(|file| {
            let named = match link(file) {
                Some(Ok(url)) => url.file_name().map(PathBuf::from),
                Some(Err(_)) => None,
                None => Some(file.clone()),
            };
            let stem = named.as_deref().and_then(Path::file_stem).map_or_else(
                || "audio".into(),
                |stem| stem.to_string_lossy().into_owned(),
            );
            let mut name = format!("{stem}.{extension}");
            let mut n = 1;
            while !taken.insert(name.clone()) {
                n += 1;
                name = format!("{stem}-{n}.{extension}");
            }
            dir.join(name)
        })
        .collect()
}

/// Reads a yes or no from standard input; anything but `y`/`yes` (or nothing) is no.
async fn yes() -> bool {
    tokio::task::spawn_blocking(|| {
        let mut answer = String::new();
        io::stdin().read_line(&mut answer).is_ok()
            && matches!(answer.trim().to_lowercase().as_str(), "y" | "yes")
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn videos_sharing_a_name_get_distinct_mp3s() {
        let files = ["a/clip.mp4", "b/clip.mov", "talk.mkv", "c/clip.avi"].map(PathBuf::from);
        let targets = output_targets(&files, Path::new("out"), "mp3");
        assert_eq!(
            targets,
            [
                "out/clip.mp3",
                "out/clip-2.mp3",
                "out/talk.mp3",
                "out/clip-3.mp3"
            ]
            .map(PathBuf::from)
        );
    }
}
