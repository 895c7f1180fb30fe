//! The `ConvertVideo` workflow's contract: names, inputs, outputs and failure types.
//!
//! The workflow schedules activities through the marker types in [`activity`]; the worker's
//! implementations are checked against the same markers at compile time, so a renamed field or
//! activity breaks the build instead of a running job.

use crate::{
    JobId, ObjectKey, UserId,
    in_parts::SegmentPlan,
    lifecycle::Quota,
    output::{AudioFormat, OutputOptions},
    webhook::WebhookEvent,
};
use serde::{Deserialize, Serialize};

/// The task queue the gateway starts workflows on and every worker polls.
pub const TASK_QUEUE: &str = "audiomill";

/// The queue of `fetch_source`, which takes a job onto a worker. Every worker takes one task
/// at a time from it, and a fetch waits until its worker has room for the job, so a busy
/// worker leaves the waiting jobs to the others.
pub const FETCH_TASK_QUEUE: &str = "audiomill-fetch";

/// The queue of `transcode_segment`, the parts of long sources. Every worker takes as many
/// at once as it has transcode slots, so the parts of one job spread over all workers with
/// room.
pub const SEGMENTS_TASK_QUEUE: &str = "audiomill-segments";

/// The workflow type name, as operators see it in the Temporal Web UI.
pub const WORKFLOW_TYPE: &str = "ConvertVideo";

/// The workflow type of a job's webhook deliveries, started by `ConvertVideo` as a child it
/// does not wait for, and by the gateway for a replay.
pub const WEBHOOKS_WORKFLOW_TYPE: &str = "DeliverWebhooks";

/// The workflow type of `SendAccountMail`: a mail about an account (a password reset link).
pub const ACCOUNT_MAIL_WORKFLOW_TYPE: &str = "SendAccountMail";

/// The workflow type of the cleanup that removes what has expired, started by a Temporal
/// Schedule (id [`CLEANUP_SCHEDULE_ID`]) every `CLEANUP_INTERVAL_MINUTES`.
pub const CLEANUP_WORKFLOW_TYPE: &str = "CleanExpired";

/// The Temporal Schedule that starts [`CLEANUP_WORKFLOW_TYPE`]; every worker makes sure it
/// exists.
pub const CLEANUP_SCHEDULE_ID: &str = "audiomill-cleanup";

/// The types of the failures activities raise (an `ApplicationFailure`'s type name is the
/// variant's name), as users, metrics and the retry policies read them: a bounded set, whatever
/// a failure in history claims to be.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::EnumIter,
    strum::IntoStaticStr,
    strum::EnumString,
)]
pub enum FailureKind {
    /// The token that started the job was revoked or its user disabled.
    InvalidToken,
    /// The file is not a video container FFmpeg can open.
    UnsupportedMedia,
    /// The file has no audio stream to convert.
    NoAudioStream,
    /// The file is truncated or damaged.
    CorruptMedia,
    /// The uploaded source is gone from storage.
    SourceMissing,
    /// The file decodes into more audio, or a larger MP3, than the media limits allow.
    MediaTooLong,
    /// The trim asks for audio the file does not have (`start` or `end` past its end).
    TrimOutOfRange,
    /// The audio track asked for (`audio_track`) is not in the file.
    NoSuchAudioTrack,
    /// The converter's process crashed or hung. Retried once; non-retryable the second time.
    TranscoderCrashed,
    /// Retried: the database was down.
    DatabaseUnavailable,
    /// Retried: storage was down.
    StorageUnavailable,
    /// Retried: the mail server was down.
    MailUnavailable,
    /// Retried: the worker itself failed (its disk, the MP3 writer).
    WorkerTrouble,
    /// The file a step needs is on another worker's disk (or its scratch files vanished): the
    /// workflow fetches the source again on a live worker.
    SourceNotLocal,
    /// A long source's parts found no frame to be joined at (rare: see
    /// `audiomill_domain::in_parts`): the workflow converts the source in one pass instead.
    PartsUnjoinable,
    /// The video could not be imported from its link, and trying again cannot help (the
    /// server answered 404, the file is too large or not a video, the address may not be
    /// reached, the redirects go round).
    ImportRefused,
    /// Retried: the video's server could not be reached, failed or was too slow.
    ImportUnreachable,
    /// The MP3 could not be written to the user's storage, and trying again cannot help (the
    /// keys or the bucket were refused, the connection was deleted, the address may not be
    /// reached).
    ExportRefused,
    /// Retried: the user's storage could not be reached, failed or was too slow.
    ExportUnreachable,
    /// A step that timed out (not raised by an activity: Temporal's).
    Timeout,
    /// Anything not typed by us.
    Other,
}

impl FailureKind {
    /// The type name, as activities raise it.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The kind `type_name` names; [`FailureKind::Other`] for none or one not ours.
    pub fn of(type_name: Option<&str>) -> Self {
        type_name
            .and_then(|name| name.parse().ok())
            .unwrap_or(Self::Other)
    }

    /// The upload or its login is at fault, not a dependency nor the worker: the failure's
    /// message, written for users, says how.
    fn users_to_mend(self) -> bool {
        matches!(
            self,
            Self::InvalidToken
                | Self::UnsupportedMedia
                | Self::NoAudioStream
                | Self::CorruptMedia
                | Self::SourceMissing
                | Self::MediaTooLong
                | Self::TrimOutOfRange
                | Self::NoSuchAudioTrack
                | Self::ImportRefused
                | Self::ExportRefused
        )
    }

    /// The failure's message is written for its user: what they gave is at fault, or a
    /// server of theirs (an import's, which its message names without credentials).
    fn told_as_raised(self) -> bool {
        self.users_to_mend() || matches!(self, Self::ImportUnreachable | Self::ExportUnreachable)
    }

    /// Whether trying again can help: outages and a worker's trouble can pass, a file at fault
    /// cannot, and a file on another worker is fetched again (by the workflow). A converter's
    /// crash is retried once, which its failure says itself.
    pub fn retryable(self) -> bool {
        !(self.users_to_mend() || self == Self::SourceNotLocal)
    }

    /// The type names the activities' retry policies stop at.
    pub fn non_retryable() -> Vec<&'static str> {
        use strum::IntoEnumIterator;
        Self::iter()
            .filter(|kind| !kind.retryable())
            .map(Self::name)
            .collect()
    }

    /// The sentence users see for a failure of this kind, when its message is not theirs to
    /// read: retried outages, whose messages name hosts and causes. `None`: the failure's own
    /// message is written for users (the media and token failures).
    pub fn user_sentence(self) -> Option<&'static str> {
        if self.told_as_raised() {
            return None;
        }
        match self {
            Self::TranscoderCrashed => None,
            Self::DatabaseUnavailable => Some("The database is unavailable."),
            Self::StorageUnavailable => Some("File storage is unavailable."),
            Self::MailUnavailable => Some("The mail server is unavailable."),
            Self::SourceNotLocal => Some("The worker holding the file is gone."),
            _ => Some("The worker ran into a temporary problem."),
        }
    }
}

/// What the gateway hands to a new `ConvertVideo` run. It names the login session only: no
/// token enters workflow history, which operators can read. The file name is there for them
/// (the Web UI shows inputs) and for the MP3's title.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvertVideoInput {
    pub job_id: JobId,
    pub user_id: UserId,
    /// The login session (refresh-token family) the access token belongs to.
    pub session_id: String,
    pub source_key: ObjectKey,
    pub original_filename: String,
    /// What the MP3 should be; an input without choices reads as the defaults.
    #[serde(default)]
    pub options: OutputOptions,
    /// A job whose video is imported from a link (kept with the job, not here: it may carry
    /// credentials) before it is fetched; `None` for an upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<ImportPlan>,
    /// A job whose MP3 is also written to the user's storage (where, is kept with the job),
    /// before it is stored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub export: bool,
}

/// `export_mp3`: the job's MP3, on the worker holding it, written where the job asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportMp3Input {
    pub job_id: JobId,
}

/// Where `export_mp3` wrote the MP3 (the object key, or the URL's path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedMp3 {
    pub written_at: String,
}

/// The limits an import is held to, as they stood when its job was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportPlan {
    /// The largest video the user may convert (`MAX_FILE_SIZE`, or their own limit).
    pub max_bytes: u64,
    /// The user's quota: the storage left is checked again, exactly, once the video is in.
    pub quota: Quota,
}

/// `import_source`: the job's video fetched from its link into storage, at its source key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportSourceInput {
    pub job_id: JobId,
    pub plan: ImportPlan,
}

/// What `import_source` stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedSource {
    pub size: u64,
}

/// What a completed `ConvertVideo` run returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvertVideoOutput {
    pub mp3_key: ObjectKey,
    pub mp3_size: u64,
    pub duration_ms: u64,
    /// False when the e-mail could not be sent; the MP3 is ready all the same.
    pub notified: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidateTokenInput {
    pub user_id: UserId,
    pub session_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchSourceInput {
    pub job_id: JobId,
    pub source_key: ObjectKey,
}

/// A source copied to one worker's disk. Later steps must run on `task_queue`, the queue only
/// that worker polls, because only it has the file. No step input carries a path: each worker
/// derives its files' paths from the job id, so history cannot point a step at other files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchedSource {
    pub task_queue: String,
    pub size: u64,
    /// How the source is converted, in recorded runs whose fetch planned it; a fetch leaves it
    /// `None`, and the transcode decides (opening a source in a child costs every job a
    /// process, and only long ones gain from knowing early).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned: Option<Planned>,
}

/// How a fetched source is converted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Planned {
    /// In one pass: too short, or it cannot be cut exactly.
    OnePass,
    /// In these parts; `progress_wanted` as in [`TranscodeOutput`].
    Parts {
        plan: SegmentPlan,
        progress_wanted: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscodeInput {
    pub job_id: JobId,
    #[serde(default)]
    pub options: OutputOptions,
    /// The upload's file name: the MP3's title when the source's metadata has none.
    #[serde(default)]
    pub file_name: String,
    /// The run can convert a long source in parts: the transcode then only plans them when
    /// the source is long enough (`SEGMENT_MIN_SECONDS`) and returns the plan.
    #[serde(default)]
    pub segments: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscodeOutput {
    pub duration_ms: u64,
    /// Set instead of an MP3 when the source is to be converted in these parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<SegmentPlan>,
    /// With a plan: whether the owner has an endpoint for `job.progress` (as a single pass
    /// checks before it tells its milestones), so that the parts' milestones are told. A
    /// result that does not say tells them.
    #[serde(default = "told_unless_said")]
    pub progress_wanted: bool,
}

fn told_unless_said() -> bool {
    true
}

/// One part of a long source to encode (see [`crate::in_parts`]); any worker with room takes
/// it, fetching the source when it does not have it yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscodeSegmentInput {
    pub job_id: JobId,
    pub source_key: ObjectKey,
    pub options: OutputOptions,
    pub file_name: String,
    pub plan: SegmentPlan,
    pub part: u32,
}

/// A part encoded and put in object storage, by the worker whose own queue is `task_queue`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscodedSegment {
    pub task_queue: String,
    /// The audio the part made, its warm-up and overlap included.
    pub duration_ms: u64,
}

/// The parts of `plan` to join into the job's MP3, on the worker holding the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinSegmentsInput {
    pub job_id: JobId,
    pub plan: SegmentPlan,
}

/// A worker that took parts of a job removes what is left of them there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgetJobInput {
    pub job_id: JobId,
}

/// Heartbeat details of `fetch_source` and `transcode`; `/status` reads them. A step that
/// still waits for room on its worker (a job slot, a transcode slot) shows the job as queued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepProgress {
    /// Percent of the transcode done.
    #[serde(default)]
    pub percent: u8,
    #[serde(default)]
    pub waiting: bool,
    /// Of a part (`transcode_segment`): how many parts the job has, so that `/status` can
    /// count the ones already done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreMp3Input {
    pub job_id: JobId,
    pub duration_ms: u64,
    /// Left out for an MP3, so an MP3 job's input reads as it always has.
    #[serde(default, skip_serializing_if = "AudioFormat::is_mp3")]
    pub format: AudioFormat,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMp3 {
    pub mp3_key: ObjectKey,
    pub mp3_size: u64,
    /// Whether an endpoint of the owner's wants `job.completed`, as the MP3 was stored: with
    /// none, the run starts no deliveries. Results recorded without it read as `true`, so
    /// their runs replay as they ran.
    #[serde(default = "wanted")]
    pub completion_wanted: bool,
}

fn wanted() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendEmailInput {
    pub job_id: JobId,
}

/// Whether `send_email` sent the mail now, found it already sent by an earlier attempt, or
/// sent none because the owner turned completion e-mails off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EmailOutcome {
    Sent,
    AlreadySent,
    TurnedOff,
}

/// How a job that did not complete ended; `record_ending` writes it on the job's row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobEnding {
    /// `failure_type` is one of [`FailureKind`].
    Failed {
        failure_type: String,
    },
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordEndingInput {
    pub job_id: JobId,
    pub ending: JobEnding,
}

/// What a `DeliverWebhooks` run delivers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliverWebhooksInput {
    /// A job ended: every endpoint of its owner that wants `event` is told.
    Event { job_id: JobId, event: WebhookEvent },
    /// A job's transcode passed `percent` (one of `webhook::PROGRESS_MILESTONES`): every
    /// endpoint of its owner that wants `job.progress` is told.
    Progress { job_id: JobId, percent: u8 },
    /// One message sent again, as a user asked.
    Replay { message_id: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareWebhooksInput {
    pub job_id: JobId,
    pub event: WebhookEvent,
    /// With `job.progress`: the percentage passed.
    #[serde(default)]
    pub progress: Option<u8>,
}

/// One message to one endpoint. Its body is kept in the database, made once by
/// `prepare_webhooks`, so every attempt and every replay sends the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverWebhookInput {
    pub message_id: String,
    /// A replay goes out even to an endpoint that was disabled since.
    #[serde(default)]
    pub replay: bool,
}

/// How a message's delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// The receiver answered 410 Gone: the endpoint is disabled, nothing more is sent to it.
    EndpointGone,
    /// The endpoint was deleted or disabled before the message went out.
    Skipped,
}

/// What a `DeliverWebhooks` run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverWebhooksOutput {
    pub delivered: u32,
    pub undelivered: u32,
}

/// Failure types of webhook deliveries; they never reach a job.
pub mod webhook_failure {
    /// The endpoint's address is not one deliveries may reach (private, loopback, ...), or
    /// its URL no longer parses: retrying cannot help.
    pub const REFUSED: &str = "WebhookRefused";
    /// The receiver did not answer 2xx in time: retried with backoff.
    pub const UNDELIVERED: &str = "WebhookUndelivered";
}

/// What a `CleanExpired` run removes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanExpiredInput {
    /// The time (Unix ms) against which expiry is judged; the run's own start when absent. An
    /// operator (or a test) may clean as of another time: nothing that has not expired by
    /// then is touched.
    #[serde(default)]
    pub as_of: Option<i64>,
}

/// One batch of the cleanup: at most `limit` uploaded videos and `limit` expired jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanBatchInput {
    pub as_of: i64,
    pub limit: u32,
}

/// What the cleanup removed (one batch, or a whole run): visible as the run's result in the
/// Web UI.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupReport {
    /// Uploaded videos removed after `RETENTION_SOURCE_HOURS`.
    pub sources_removed: u64,
    /// Jobs expired after `RETENTION_HOURS`: their MP3 (and video, if still there) removed.
    pub jobs_expired: u64,
    /// Objects removed from storage in all.
    pub objects_removed: u64,
    /// Database rows removed (webhook messages and attempts, idempotency keys).
    pub rows_removed: u64,
    /// Resumable uploads removed unfinished after `RESUMABLE_EXPIRY_HOURS`, with their bytes.
    #[serde(default)]
    pub uploads_removed: u64,
    /// Whether a batch was full: there may be more to remove.
    pub more: bool,
}

impl CleanupReport {
    /// Adds a batch's figures to a run's.
    pub fn add(&mut self, batch: &CleanupReport) {
        self.sources_removed += batch.sources_removed;
        self.jobs_expired += batch.jobs_expired;
        self.objects_removed += batch.objects_removed;
        self.rows_removed += batch.rows_removed;
        self.uploads_removed += batch.uploads_removed;
        self.more = batch.more;
    }
}

/// The job whose uploaded video may be removed now (if its retention says so).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscardSourceInput {
    pub job_id: JobId,
    /// Parts of a segmented conversion still in object storage (when the job ended before
    /// they were joined): they go too.
    #[serde(default)]
    pub parts: u32,
}

/// A mail about an account, named by its row: the mail carries a secret, so the workflow's
/// history holds only the row's id, and the activity mints the secret it sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountMailInput {
    /// A link to choose a new password, for the reset request with this id.
    PasswordReset { reset_id: String },
    /// A link to make an account, for the invitation with this id.
    Invitation { invitation_id: String },
}

/// Marker types naming each activity with its input and output types.
pub mod activity {
    use super::*;
    use temporalio_common::ActivityDefinition;

    macro_rules! activity {
        ($name:ident, $type_name:literal, $input:ty, $output:ty) => {
            #[derive(Debug, Clone, Copy)]
            pub struct $name;

            impl ActivityDefinition for $name {
                type Input = $input;
                type Output = $output;
                fn name(&self) -> &str {
                    $type_name
                }
            }
        };
    }

    activity!(ValidateToken, "validate_token", ValidateTokenInput, ());
    activity!(FetchSource, "fetch_source", FetchSourceInput, FetchedSource);
    activity!(
        ImportSource,
        "import_source",
        ImportSourceInput,
        ImportedSource
    );
    activity!(Transcode, "transcode", TranscodeInput, TranscodeOutput);
    activity!(
        TranscodeSegment,
        "transcode_segment",
        TranscodeSegmentInput,
        TranscodedSegment
    );
    activity!(
        JoinSegments,
        "join_segments",
        JoinSegmentsInput,
        TranscodeOutput
    );
    activity!(ForgetJob, "forget_job", ForgetJobInput, ());
    activity!(ExportMp3, "export_mp3", ExportMp3Input, ExportedMp3);
    activity!(StoreMp3, "store_mp3", StoreMp3Input, StoredMp3);
    activity!(SendEmail, "send_email", SendEmailInput, EmailOutcome);
    activity!(RecordEnding, "record_ending", RecordEndingInput, ());
    activity!(
        PrepareWebhooks,
        "prepare_webhooks",
        PrepareWebhooksInput,
        Vec<String>
    );
    activity!(
        DeliverWebhook,
        "deliver_webhook",
        DeliverWebhookInput,
        DeliveryOutcome
    );
    activity!(DiscardSource, "discard_source", DiscardSourceInput, bool);
    activity!(CleanBatch, "clean_expired", CleanBatchInput, CleanupReport);
    activity!(SendAccountMail, "send_account_mail", AccountMailInput, bool);
    activity!(
        ScanWatch,
        "scan_watch",
        crate::watch::ScanWatchInput,
        crate::watch::ScanOutcome
    );
}

#[cfg(test)]
mod tests {
    use super::activity::*;
    use crate::Step;
    use temporalio_common::ActivityDefinition;

    #[test]
    fn activity_markers_use_the_step_names() {
        assert_eq!(ValidateToken.name(), Step::ValidateToken.activity_name());
        assert_eq!(FetchSource.name(), Step::FetchSource.activity_name());
        assert_eq!(ImportSource.name(), Step::ImportSource.activity_name());
        assert_eq!(ExportMp3.name(), Step::ExportMp3.activity_name());
        assert_eq!(Transcode.name(), Step::Transcode.activity_name());
        assert_eq!(StoreMp3.name(), Step::StoreMp3.activity_name());
        assert_eq!(SendEmail.name(), Step::SendEmail.activity_name());
    }

    #[test]
    fn failure_kinds_are_a_bounded_set() {
        use super::FailureKind;
        assert_eq!(FailureKind::CorruptMedia.name(), "CorruptMedia");
        assert_eq!(
            FailureKind::of(Some("CorruptMedia")),
            FailureKind::CorruptMedia
        );
        assert_eq!(
            FailureKind::of(Some("user@example.com")),
            FailureKind::Other
        );
        assert_eq!(FailureKind::of(None), FailureKind::Other);
        // Media at fault and a lost worker stop the retries; outages do not.
        let stops = FailureKind::non_retryable();
        assert!(stops.contains(&"CorruptMedia") && stops.contains(&"SourceNotLocal"));
        assert!(!stops.contains(&"StorageUnavailable"));
        assert_eq!(stops.len(), 11);
        assert!(stops.contains(&"ImportRefused") && stops.contains(&"ExportRefused"));
        assert!(!stops.contains(&"ImportUnreachable") && !stops.contains(&"ExportUnreachable"));
    }

    #[test]
    fn a_plan_that_does_not_say_whether_progress_is_wanted_tells_its_milestones() {
        use super::TranscodeOutput;
        let recorded = r#"{"duration_ms":0,"plan":{"shares":[0,75000],"duration_ms":3600000}}"#;
        let output: TranscodeOutput = serde_json::from_str(recorded).unwrap();
        assert!(output.progress_wanted);
        let unwanted = TranscodeOutput {
            progress_wanted: false,
            ..output
        };
        let again: TranscodeOutput =
            serde_json::from_str(&serde_json::to_string(&unwanted).unwrap()).unwrap();
        assert!(!again.progress_wanted);
    }
}

/// Reading Temporal failures, which nest: workflow failure -> activity failure -> cause.
pub mod failures {
    use temporalio_common::protos::temporal::api::failure::v1::{Failure, failure::FailureInfo};

    /// The failure and its causes, outermost first.
    pub fn chain(failure: &Failure) -> impl Iterator<Item = &Failure> {
        std::iter::successors(Some(failure), |f| f.cause.as_deref())
    }

    /// The innermost cause: the one that says what actually went wrong.
    pub fn root_cause(failure: &Failure) -> &Failure {
        chain(failure).last().unwrap_or(failure)
    }

    /// The application failure type (`CorruptMedia`, ...) somewhere in the chain, if any.
    pub fn application_type(failure: &Failure) -> Option<&str> {
        chain(failure).find_map(|f| match &f.failure_info {
            Some(FailureInfo::ApplicationFailureInfo(info)) if !info.r#type.is_empty() => {
                Some(info.r#type.as_str())
            }
            _ => None,
        })
    }

    /// What a failure is, as a bounded label: its application type if it is one of ours, a
    /// timeout, or `Other`.
    pub fn kind(failure: &Failure) -> &'static str {
        match application_type(failure) {
            Some(type_name) => super::FailureKind::of(Some(type_name)).name(),
            None if is_timeout(failure) => super::FailureKind::Timeout.name(),
            None => super::FailureKind::Other.name(),
        }
    }

    /// True when the chain holds a timeout (heartbeat, schedule-to-start, ...).
    pub fn is_timeout(failure: &Failure) -> bool {
        chain(failure).any(|f| matches!(f.failure_info, Some(FailureInfo::TimeoutFailureInfo(_))))
    }
}
