// Generated from openapi/openapi.json by progenitor (`make openapi`); do not edit.

#[allow(unused_imports)]
pub use progenitor_client::{ByteStream, ClientInfo, Error, ResponseValue};
#[allow(unused_imports)]
use progenitor_client::{encode_path, ClientHooks, OperationInfo, RequestBuilderExt};
/// Types used as operation parameters and responses.
#[allow(clippy::all)]
pub mod types {
    ///One file of an upload, and the job it became.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct AcceptedJob {
        pub filename: ::std::string::String,
        pub job_id: ::uuid::Uuid,
    }
    impl AcceptedJob {
        pub fn builder() -> builder::AcceptedJob {
            Default::default()
        }
    }
    ///The caller's account and settings.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct Account {
        pub admin: bool,
        ///Whether an e-mail with a download link is sent when a job completes.
        pub completion_emails: bool,
        pub email: ::std::string::String,
        pub id: ::std::string::String,
        pub quota: AccountQuota,
        pub uploads: AccountUploadLimits,
    }
    impl Account {
        pub fn builder() -> builder::Account {
            Default::default()
        }
    }
    ///Settings to change; those left out (or `null`) stay as they are.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default)]
    #[serde(deny_unknown_fields)]
    pub struct AccountChanges {
        /**`false`: no e-mail when a job completes (links stay available from `/status` and
`GET /jobs/{job_id}/link`).*/
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub completion_emails: ::std::option::Option<bool>,
    }
    impl AccountChanges {
        pub fn builder() -> builder::AccountChanges {
            Default::default()
        }
    }
    ///A user's quotas and usage. A limit of `null` is no limit.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct AccountQuota {
        ///Jobs the user may start in one UTC day.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub jobs_per_day_limit: ::std::option::Option<u64>,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub jobs_remaining_today: ::std::option::Option<u64>,
        ///When the day's count starts again (UTC midnight), RFC 3339.
        pub jobs_reset_at: ::std::string::String,
        ///Jobs started today (UTC); deleting jobs does not lower it.
        pub jobs_today: u64,
        ///Bytes the user may keep in storage (uploaded videos and MP3s).
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub storage_limit_bytes: ::std::option::Option<u64>,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub storage_remaining_bytes: ::std::option::Option<u64>,
        ///Bytes kept now: videos not yet removed, MP3s not yet expired.
        pub storage_used_bytes: u64,
    }
    impl AccountQuota {
        pub fn builder() -> builder::AccountQuota {
            Default::default()
        }
    }
    /**The gateway's limits on uploads (`MAX_FILE_SIZE`, `MAX_FILES_PER_UPLOAD`,
`ALLOWED_EXTENSIONS`).*/
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct AccountUploadLimits {
        ///The file name extensions taken, lower case, without the dot.
        pub allowed_extensions: ::std::vec::Vec<::std::string::String>,
        ///The largest file taken, in bytes.
        pub max_file_bytes: u64,
        ///The most files one multipart upload may carry.
        pub max_files_per_upload: u64,
        ///Resumable uploads the caller may have unfinished at once (`MAX_UNFINISHED_UPLOADS`).
        pub max_unfinished_uploads: u64,
        /**Uploads the caller may send at once, a resumable upload's `PATCH` included
(`MAX_CONCURRENT_UPLOADS`): a client sending many files queues the rest.*/
        pub max_uploads_in_progress: u64,
    }
    impl AccountUploadLimits {
        pub fn builder() -> builder::AccountUploadLimits {
            Default::default()
        }
    }
    ///One try at delivering a message.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct Attempt {
        pub attempted_at: ::std::string::String,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub error: ::std::option::Option<::std::string::String>,
        pub latency_ms: u64,
        ///Made by `POST .../replay`.
        pub replay: bool,
        ///The receiver's status code; `null` when it did not answer (timeout, refused connection).
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub status_code: ::std::option::Option<u16>,
    }
    impl Attempt {
        pub fn builder() -> builder::Attempt {
            Default::default()
        }
    }
    ///One audio track of a source.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct AudioTrackView {
        pub channels: u16,
        ///Its codec, as FFmpeg names it (`aac`, `ac3`, `opus`, ...).
        pub codec: ::std::string::String,
        /**Whether the container marks it as the one to play by default (converted unless
`audio_track` says otherwise).*/
        pub default: bool,
        ///Its number among the source's audio tracks, from 0: what `audio_track` takes.
        pub index: u32,
        ///As the container tags it (`eng`, `deu`, ...); `null` when untagged.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub language: ::std::option::Option<::std::string::String>,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub title: ::std::option::Option<::std::string::String>,
    }
    impl AudioTrackView {
        pub fn builder() -> builder::AudioTrackView {
            Default::default()
        }
    }
    ///How many of a batch's jobs stand where.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct BatchCounts {
        pub cancelled: u32,
        pub completed: u32,
        pub failed: u32,
        pub queued: u32,
        pub running: u32,
    }
    impl BatchCounts {
        pub fn builder() -> builder::BatchCounts {
            Default::default()
        }
    }
    ///One job of a batch.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct BatchJob {
        ///Why it failed; else `null`.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub error: ::std::option::Option<::std::string::String>,
        pub filename: ::std::string::String,
        pub job_id: ::uuid::Uuid,
        ///0-100.
        pub progress: u8,
        pub status: JobState,
    }
    impl BatchJob {
        pub fn builder() -> builder::BatchJob {
            Default::default()
        }
    }
    ///A batch: the jobs of one upload with several files.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct BatchStatus {
        pub batch_id: ::uuid::Uuid,
        pub counts: BatchCounts,
        ///Every job has ended (completed, failed or cancelled).
        pub done: bool,
        ///Where the finished MP3s are, as one ZIP, once at least one is; else `null`.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub download: ::std::option::Option<::std::string::String>,
        ///Its jobs, in the order of the upload's `file` parts.
        pub jobs: ::std::vec::Vec<BatchJob>,
        ///0-100 over all its jobs (an ended job counts as done).
        pub progress: u8,
    }
    impl BatchStatus {
        pub fn builder() -> builder::BatchStatus {
            Default::default()
        }
    }
    ///How the encoder spends bits (MP3 and Opus).
    #[derive(
        ::serde::Deserialize,
        ::serde::Serialize,
        Clone,
        Copy,
        Debug,
        Eq,
        Hash,
        Ord,
        PartialEq,
        PartialOrd
    )]
    pub enum BitrateModeName {
        #[serde(rename = "vbr")]
        Vbr,
        #[serde(rename = "cbr")]
        Cbr,
        #[serde(rename = "abr")]
        Abr,
    }
    impl ::std::fmt::Display for BitrateModeName {
        fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
            match *self {
                Self::Vbr => f.write_str("vbr"),
                Self::Cbr => f.write_str("cbr"),
                Self::Abr => f.write_str("abr"),
            }
        }
    }
    impl ::std::str::FromStr for BitrateModeName {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            match value {
                "vbr" => Ok(Self::Vbr),
                "cbr" => Ok(Self::Cbr),
                "abr" => Ok(Self::Abr),
                _ => Err("invalid value".into()),
            }
        }
    }
    impl ::std::convert::TryFrom<&str> for BitrateModeName {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for BitrateModeName {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    ///Objects of a connection's bucket.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct BucketObjects {
        pub connection_id: ::std::string::String,
        ///Keys under the connection's prefix, 1 to `MAX_FILES_PER_UPLOAD`.
        pub keys: ::std::vec::Vec<::std::string::String>,
    }
    impl BucketObjects {
        pub fn builder() -> builder::BucketObjects {
            Default::default()
        }
    }
    ///`CancelAccepted`
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct CancelAccepted {
        pub job_id: ::uuid::Uuid,
        pub message: ::std::string::String,
        ///Always `cancelling`; `/status` shows `cancelled` once the job has stopped.
        pub status: ::std::string::String,
    }
    impl CancelAccepted {
        pub fn builder() -> builder::CancelAccepted {
            Default::default()
        }
    }
    ///A saved connection, as it is shown: never its secret key.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct ConnectionBody {
        pub access_key_id: ::std::string::String,
        pub bucket: ::std::string::String,
        pub created_at: ::std::string::String,
        ///`null`: AWS itself.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub endpoint: ::std::option::Option<::std::string::String>,
        pub id: ::uuid::Uuid,
        pub name: ::std::string::String,
        pub prefix: ::std::string::String,
        pub region: ::std::string::String,
    }
    impl ConnectionBody {
        pub fn builder() -> builder::ConnectionBody {
            Default::default()
        }
    }
    ///`ConnectionList`
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct ConnectionList {
        ///Oldest first.
        pub connections: ::std::vec::Vec<ConnectionBody>,
    }
    impl ConnectionList {
        pub fn builder() -> builder::ConnectionList {
            Default::default()
        }
    }
    ///Time from upload to MP3 stored, over completed jobs; `null` without any.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct ConversionTimes {
        ///Completed jobs measured.
        pub jobs: u64,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub mean_seconds: ::std::option::Option<f64>,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub p95_seconds: ::std::option::Option<f64>,
    }
    impl ConversionTimes {
        pub fn builder() -> builder::ConversionTimes {
            Default::default()
        }
    }
    ///Where the output's front-cover picture comes from.
    #[derive(
        ::serde::Deserialize,
        ::serde::Serialize,
        Clone,
        Copy,
        Debug,
        Eq,
        Hash,
        Ord,
        PartialEq,
        PartialOrd
    )]
    pub enum CoverName {
        #[serde(rename = "source")]
        Source,
        #[serde(rename = "frame")]
        Frame,
        #[serde(rename = "none")]
        None,
    }
    impl ::std::fmt::Display for CoverName {
        fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
            match *self {
                Self::Source => f.write_str("source"),
                Self::Frame => f.write_str("frame"),
                Self::None => f.write_str("none"),
            }
        }
    }
    impl ::std::str::FromStr for CoverName {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            match value {
                "source" => Ok(Self::Source),
                "frame" => Ok(Self::Frame),
                "none" => Ok(Self::None),
                _ => Err("invalid value".into()),
            }
        }
    }
    impl ::std::convert::TryFrom<&str> for CoverName {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for CoverName {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    ///A key just made, with the key itself: shown this once.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct CreatedKey {
        pub created_at: ::std::string::String,
        ///Past its expiry: it no longer works (revoke it to remove it from this list).
        pub expired: bool,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub expires_at: ::std::option::Option<::std::string::String>,
        ///The key's id: the 12 letters and digits after `amk_`.
        pub id: ::std::string::String,
        /**Send it as `Authorization: Bearer <key>`. It matches
`amk_[0-9A-Za-z]{12}_[0-9A-Za-z]{40}`, so secret scanners can find a leaked one.*/
        pub key: ::std::string::String,
        ///When it was last used, to the minute; none if never.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub last_used_at: ::std::option::Option<::std::string::String>,
        pub name: ::std::string::String,
        ///How the key begins (`amk_` and its id), to recognise it.
        pub prefix: ::std::string::String,
        pub scopes: ::std::vec::Vec<Scope>,
    }
    impl CreatedKey {
        pub fn builder() -> builder::CreatedKey {
            Default::default()
        }
    }
    ///A token just made: shown this once.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct CreatedUploadToken {
        pub expires_at: ::std::string::String,
        pub max_file_mb: u64,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub options: ::std::option::Option<
            ::std::collections::HashMap<::std::string::String, ::std::string::String>,
        >,
        /**Send it as `Authorization: Bearer <token>` to `POST /upload` or the tus operations. It
matches `amu_[0-9A-Za-z]{12}_[0-9A-Za-z]{40}`.*/
        pub token: ::std::string::String,
        pub uploads: u32,
    }
    impl CreatedUploadToken {
        pub fn builder() -> builder::CreatedUploadToken {
            Default::default()
        }
    }
    ///A new endpoint, with its secret: shown this once.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct CreatedWebhook {
        pub created_at: ::std::string::String,
        pub enabled: bool,
        pub events: ::std::vec::Vec<EventName>,
        pub id: ::uuid::Uuid,
        ///The Standard Webhooks signing secret (`whsec_...`): verify `webhook-signature` with it.
        pub secret: ::std::string::String,
        pub url: ::std::string::String,
    }
    impl CreatedWebhook {
        pub fn builder() -> builder::CreatedWebhook {
            Default::default()
        }
    }
    ///Uploads begun on one UTC day.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct DayUploads {
        ///`YYYY-MM-DD`.
        pub date: ::std::string::String,
        pub uploads: u64,
    }
    impl DayUploads {
        pub fn builder() -> builder::DayUploads {
            Default::default()
        }
    }
    ///One message to the endpoint: an event of one job, with every attempt to deliver it.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct Delivery {
        ///Oldest first.
        pub attempts: ::std::vec::Vec<Attempt>,
        pub created_at: ::std::string::String,
        ///When a receiver first answered 2xx; `null` until then.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub delivered_at: ::std::option::Option<::std::string::String>,
        ///The message id, sent as `webhook-id` on every attempt and replay.
        pub delivery_id: ::std::string::String,
        pub event: EventName,
        pub job_id: ::uuid::Uuid,
    }
    impl Delivery {
        pub fn builder() -> builder::Delivery {
            Default::default()
        }
    }
    ///`DeliveryList`
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct DeliveryList {
        ///Newest first.
        pub deliveries: ::std::vec::Vec<Delivery>,
    }
    impl DeliveryList {
        pub fn builder() -> builder::DeliveryList {
            Default::default()
        }
    }
    ///A signed download link.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct DownloadLink {
        ///RFC 3339, UTC.
        pub expires_at: ::std::string::String,
        ///Opens the MP3 with no other credentials (`GET`, ranges supported) until `expires_at`.
        pub url: ::std::string::String,
    }
    impl DownloadLink {
        pub fn builder() -> builder::DownloadLink {
            Default::default()
        }
    }
    ///What signing out everywhere ended.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct EndedLogins {
        ///API keys still working (they stay until revoked; see `/api-keys`).
        pub api_keys_kept: u64,
        ///Logins ended: web sessions and programs' refresh tokens, this one included.
        pub ended: u64,
    }
    impl EndedLogins {
        pub fn builder() -> builder::EndedLogins {
            Default::default()
        }
    }
    ///`ErrorBody`
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct ErrorBody {
        pub error: ErrorCode,
        ///The request field at fault (an upload's `bitrate`, say), when one is.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub field: ::std::option::Option<::std::string::String>,
        ///A sentence for people.
        pub message: ::std::string::String,
    }
    impl ErrorBody {
        pub fn builder() -> builder::ErrorBody {
            Default::default()
        }
    }
    /**Every error code the API answers with; the OpenAPI document lists them, so generated
clients get an enumeration.*/
    #[derive(
        ::serde::Deserialize,
        ::serde::Serialize,
        Clone,
        Copy,
        Debug,
        Eq,
        Hash,
        Ord,
        PartialEq,
        PartialOrd
    )]
    pub enum ErrorCode {
        #[serde(rename = "bad_request")]
        BadRequest,
        #[serde(rename = "unauthorized")]
        Unauthorized,
        #[serde(rename = "forbidden")]
        Forbidden,
        #[serde(rename = "not_found")]
        NotFound,
        #[serde(rename = "method_not_allowed")]
        MethodNotAllowed,
        #[serde(rename = "conflict")]
        Conflict,
        #[serde(rename = "not_ready")]
        NotReady,
        #[serde(rename = "gone")]
        Gone,
        #[serde(rename = "request_timeout")]
        RequestTimeout,
        #[serde(rename = "precondition_failed")]
        PreconditionFailed,
        #[serde(rename = "payload_too_large")]
        PayloadTooLarge,
        #[serde(rename = "unprocessable_content")]
        UnprocessableContent,
        #[serde(rename = "unsupported_media_type")]
        UnsupportedMediaType,
        #[serde(rename = "range_not_satisfiable")]
        RangeNotSatisfiable,
        #[serde(rename = "locked")]
        Locked,
        #[serde(rename = "checksum_mismatch")]
        ChecksumMismatch,
        #[serde(rename = "too_many_requests")]
        TooManyRequests,
        #[serde(rename = "service_unavailable")]
        ServiceUnavailable,
        #[serde(rename = "internal")]
        Internal,
    }
    impl ::std::fmt::Display for ErrorCode {
        fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
            match *self {
                Self::BadRequest => f.write_str("bad_request"),
                Self::Unauthorized => f.write_str("unauthorized"),
                Self::Forbidden => f.write_str("forbidden"),
                Self::NotFound => f.write_str("not_found"),
                Self::MethodNotAllowed => f.write_str("method_not_allowed"),
                Self::Conflict => f.write_str("conflict"),
                Self::NotReady => f.write_str("not_ready"),
                Self::Gone => f.write_str("gone"),
                Self::RequestTimeout => f.write_str("request_timeout"),
                Self::PreconditionFailed => f.write_str("precondition_failed"),
                Self::PayloadTooLarge => f.write_str("payload_too_large"),
                Self::UnprocessableContent => f.write_str("unprocessable_content"),
                Self::UnsupportedMediaType => f.write_str("unsupported_media_type"),
                Self::RangeNotSatisfiable => f.write_str("range_not_satisfiable"),
                Self::Locked => f.write_str("locked"),
                Self::ChecksumMismatch => f.write_str("checksum_mismatch"),
                Self::TooManyRequests => f.write_str("too_many_requests"),
                Self::ServiceUnavailable => f.write_str("service_unavailable"),
                Self::Internal => f.write_str("internal"),
            }
        }
    }
    impl ::std::str::FromStr for ErrorCode {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            match value {
                "bad_request" => Ok(Self::BadRequest),
                "unauthorized" => Ok(Self::Unauthorized),
                "forbidden" => Ok(Self::Forbidden),
                "not_found" => Ok(Self::NotFound),
                "method_not_allowed" => Ok(Self::MethodNotAllowed),
                "conflict" => Ok(Self::Conflict),
                "not_ready" => Ok(Self::NotReady),
                "gone" => Ok(Self::Gone),
                "request_timeout" => Ok(Self::RequestTimeout),
                "precondition_failed" => Ok(Self::PreconditionFailed),
                "payload_too_large" => Ok(Self::PayloadTooLarge),
                "unprocessable_content" => Ok(Self::UnprocessableContent),
                "unsupported_media_type" => Ok(Self::UnsupportedMediaType),
                "range_not_satisfiable" => Ok(Self::RangeNotSatisfiable),
                "locked" => Ok(Self::Locked),
                "checksum_mismatch" => Ok(Self::ChecksumMismatch),
                "too_many_requests" => Ok(Self::TooManyRequests),
                "service_unavailable" => Ok(Self::ServiceUnavailable),
                "internal" => Ok(Self::Internal),
                _ => Err("invalid value".into()),
            }
        }
    }
    impl ::std::convert::TryFrom<&str> for ErrorCode {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for ErrorCode {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    /**An event an endpoint can subscribe to: a job ended (`job.completed`, `job.failed`,
`job.cancelled`), or its transcode passed 25, 50 or 75 percent (`job.progress`, each once;
these may arrive out of order, even after the ending).*/
    #[derive(
        ::serde::Deserialize,
        ::serde::Serialize,
        Clone,
        Copy,
        Debug,
        Eq,
        Hash,
        Ord,
        PartialEq,
        PartialOrd
    )]
    pub enum EventName {
        #[serde(rename = "job.completed")]
        JobCompleted,
        #[serde(rename = "job.failed")]
        JobFailed,
        #[serde(rename = "job.cancelled")]
        JobCancelled,
        #[serde(rename = "job.progress")]
        JobProgress,
    }
    impl ::std::fmt::Display for EventName {
        fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
            match *self {
                Self::JobCompleted => f.write_str("job.completed"),
                Self::JobFailed => f.write_str("job.failed"),
                Self::JobCancelled => f.write_str("job.cancelled"),
                Self::JobProgress => f.write_str("job.progress"),
            }
        }
    }
    impl ::std::str::FromStr for EventName {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            match value {
                "job.completed" => Ok(Self::JobCompleted),
                "job.failed" => Ok(Self::JobFailed),
                "job.cancelled" => Ok(Self::JobCancelled),
                "job.progress" => Ok(Self::JobProgress),
                _ => Err("invalid value".into()),
            }
        }
    }
    impl ::std::convert::TryFrom<&str> for EventName {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for EventName {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    ///Sizes of the uploaded files, in bytes; `null` without uploads.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default)]
    pub struct FileSizes {
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub mean_bytes: ::std::option::Option<f64>,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub p50_bytes: ::std::option::Option<u64>,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub p95_bytes: ::std::option::Option<u64>,
    }
    impl FileSizes {
        pub fn builder() -> builder::FileSizes {
            Default::default()
        }
    }
    ///Whose password is forgotten.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct ForgotPassword {
        pub email: ForgotPasswordEmail,
    }
    impl ForgotPassword {
        pub fn builder() -> builder::ForgotPassword {
            Default::default()
        }
    }
    ///`ForgotPasswordEmail`
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct ForgotPasswordEmail(::std::string::String);
    impl ::std::ops::Deref for ForgotPasswordEmail {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<ForgotPasswordEmail> for ::std::string::String {
        fn from(value: ForgotPasswordEmail) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for ForgotPasswordEmail {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 254usize {
                return Err("longer than 254 characters".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for ForgotPasswordEmail {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for ForgotPasswordEmail {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for ForgotPasswordEmail {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///What the answer says, whatever the address.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct Forgotten {
        pub message: ::std::string::String,
    }
    impl Forgotten {
        pub fn builder() -> builder::Forgotten {
            Default::default()
        }
    }
    ///The output's format.
    #[derive(
        ::serde::Deserialize,
        ::serde::Serialize,
        Clone,
        Copy,
        Debug,
        Eq,
        Hash,
        Ord,
        PartialEq,
        PartialOrd
    )]
    pub enum FormatName {
        #[serde(rename = "mp3")]
        Mp3,
        #[serde(rename = "m4a")]
        M4a,
        #[serde(rename = "opus")]
        Opus,
        #[serde(rename = "flac")]
        Flac,
        #[serde(rename = "wav")]
        Wav,
    }
    impl ::std::fmt::Display for FormatName {
        fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
            match *self {
                Self::Mp3 => f.write_str("mp3"),
                Self::M4a => f.write_str("m4a"),
                Self::Opus => f.write_str("opus"),
                Self::Flac => f.write_str("flac"),
                Self::Wav => f.write_str("wav"),
            }
        }
    }
    impl ::std::str::FromStr for FormatName {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            match value {
                "mp3" => Ok(Self::Mp3),
                "m4a" => Ok(Self::M4a),
                "opus" => Ok(Self::Opus),
                "flac" => Ok(Self::Flac),
                "wav" => Ok(Self::Wav),
                _ => Err("invalid value".into()),
            }
        }
    }
    impl ::std::convert::TryFrom<&str> for FormatName {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for FormatName {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    ///`Health`
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct Health {
        pub services: Services,
        ///`ok` when every dependency answers, else `degraded`.
        pub status: ::std::string::String,
        pub timestamp: ::std::string::String,
        pub version: ::std::string::String,
    }
    impl Health {
        pub fn builder() -> builder::Health {
            Default::default()
        }
    }
    ///`Identity`
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct Identity {
        /**Whether the credential acts as an admin (an admin's login, or an admin's key with
`admin`).*/
        pub admin: bool,
        pub email: ::std::string::String,
        ///Expiry, Unix seconds (253402300799, the end of 9999, for a key that never expires).
        pub exp: u64,
        ///The API key's id when the credential is one; none for a login.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub key_id: ::std::option::Option<::std::string::String>,
        ///What the credential may do.
        pub scopes: ::std::vec::Vec<Scope>,
        pub sub: ::std::string::String,
    }
    impl Identity {
        pub fn builder() -> builder::Identity {
            Default::default()
        }
    }
    ///Videos to import: a link each, with the choices of the MP3s.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default)]
    pub struct ImportRequest {
        /**A one-off webhook endpoint told when each of these jobs ends, as the upload form's
`callback_url`.*/
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub callback_url: ::std::option::Option<ImportRequestCallbackUrl>,
        /**With `export_to`: the object key each MP3 gets, from `{stem}` (the video's name
without its extension), `{job_id}` and `{date}`; default `{stem}.mp3`.*/
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub export_key: ::std::option::Option<::std::string::String>,
        /**Also write each MP3 to this connection's bucket (one of yours), at `export_key`
under its prefix.*/
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub export_to: ::std::option::Option<::std::string::String>,
        ///Also write the MP3 to this URL with one `PUT` (a presigned upload link); one link only.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub export_url: ::std::option::Option<::std::string::String>,
        /**Objects of one of your connections' buckets instead of links (`POST /connections`):
its id, and their keys under its prefix.*/
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub from: ::std::option::Option<BucketObjects>,
        /**The MP3's choices, by the names and with the values of the upload form's fields
(`preset`, `bitrate_mode`, `quality`, `bitrate`, `sample_rate`, `channels`, `start`,
`end`, `normalize`, `normalize_true_peak`, `strip`, `cover`, `cover_at`,
`tags[title]`, ...): strings, numbers or booleans. A bad one answers 400 naming it.*/
        #[serde(default, skip_serializing_if = "::serde_json::Map::is_empty")]
        pub options: ::serde_json::Map<::std::string::String, ::serde_json::Value>,
        /**`http` or `https` links to the videos (MP4, MOV, AVI, MKV, WebM) or audio files (MP3,
M4A, WAV, FLAC, Ogg), 1 to
`MAX_FILES_PER_UPLOAD` (one with an `Idempotency-Key`); several make a batch, as several
files of an upload do. A link may carry credentials (`https://user:password@...`, a
presigned query): they are used for the fetch alone and never shown again. Each host
must resolve to public addresses only (unless the operator allows private ones), and
so must every redirect. Leave out (or empty) with `from`.*/
        #[serde(default, skip_serializing_if = "::std::vec::Vec::is_empty")]
        pub urls: ::std::vec::Vec<::std::string::String>,
    }
    impl ImportRequest {
        pub fn builder() -> builder::ImportRequest {
            Default::default()
        }
    }
    /**A one-off webhook endpoint told when each of these jobs ends, as the upload form's
`callback_url`.*/
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct ImportRequestCallbackUrl(::std::string::String);
    impl ::std::ops::Deref for ImportRequestCallbackUrl {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<ImportRequestCallbackUrl> for ::std::string::String {
        fn from(value: ImportRequestCallbackUrl) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for ImportRequestCallbackUrl {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 2048usize {
                return Err("longer than 2048 characters".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for ImportRequestCallbackUrl {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for ImportRequestCallbackUrl {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for ImportRequestCallbackUrl {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///Whom to invite.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Invite {
        ///Whether the account is to be an admin.
        #[serde(default)]
        pub admin: bool,
        pub email: InviteEmail,
    }
    impl Invite {
        pub fn builder() -> builder::Invite {
            Default::default()
        }
    }
    ///`InviteEmail`
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct InviteEmail(::std::string::String);
    impl ::std::ops::Deref for InviteEmail {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<InviteEmail> for ::std::string::String {
        fn from(value: InviteEmail) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for InviteEmail {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 254usize {
                return Err("longer than 254 characters".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for InviteEmail {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for InviteEmail {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for InviteEmail {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///What became of an invitation.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct Invited {
        pub message: ::std::string::String,
    }
    impl Invited {
        pub fn builder() -> builder::Invited {
            Default::default()
        }
    }
    ///One event of a job's stream (its `data`).
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct JobEvent {
        ///The current step's attempt, from 1; a `retry` event says when it grows.
        pub attempt: u32,
        ///Where the MP3 is, once the job has completed; else `null`.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub download_url: ::std::option::Option<::std::string::String>,
        ///Why the last attempt failed (on `retry`) or why the job failed; else `null`.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub error: ::std::option::Option<::std::string::String>,
        ///Seconds until the transcode ends, from its measured speed; `null` outside it.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub eta_seconds: ::std::option::Option<u64>,
        pub job_id: ::uuid::Uuid,
        ///0-100.
        pub progress: u8,
        pub status: JobState,
        ///The step running now; `null` between two steps.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub step: ::std::option::Option<JobStep>,
    }
    impl JobEvent {
        pub fn builder() -> builder::JobEvent {
            Default::default()
        }
    }
    ///`JobPage`
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct JobPage {
        ///Newest first.
        pub jobs: ::std::vec::Vec<JobSummary>,
        /**Pass as `cursor` for the next page; `null` on the last one. A cursor stays valid while
new jobs arrive (they come before it). With `status=queued` or `running` a page may hold
fewer than `limit` jobs before the last.*/
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub next_cursor: ::std::option::Option<::std::string::String>,
    }
    impl JobPage {
        pub fn builder() -> builder::JobPage {
            Default::default()
        }
    }
    ///Where a job stands.
    #[derive(
        ::serde::Deserialize,
        ::serde::Serialize,
        Clone,
        Copy,
        Debug,
        Eq,
        Hash,
        Ord,
        PartialEq,
        PartialOrd
    )]
    pub enum JobState {
        #[serde(rename = "queued")]
        Queued,
        #[serde(rename = "running")]
        Running,
        #[serde(rename = "completed")]
        Completed,
        #[serde(rename = "failed")]
        Failed,
        #[serde(rename = "cancelled")]
        Cancelled,
    }
    impl ::std::fmt::Display for JobState {
        fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
            match *self {
                Self::Queued => f.write_str("queued"),
                Self::Running => f.write_str("running"),
                Self::Completed => f.write_str("completed"),
                Self::Failed => f.write_str("failed"),
                Self::Cancelled => f.write_str("cancelled"),
            }
        }
    }
    impl ::std::str::FromStr for JobState {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            match value {
                "queued" => Ok(Self::Queued),
                "running" => Ok(Self::Running),
                "completed" => Ok(Self::Completed),
                "failed" => Ok(Self::Failed),
                "cancelled" => Ok(Self::Cancelled),
                _ => Err("invalid value".into()),
            }
        }
    }
    impl ::std::convert::TryFrom<&str> for JobState {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for JobState {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    ///`JobStatusBody`
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct JobStatusBody {
        ///The current step's attempt, from 1.
        pub attempt: u32,
        ///The MP3's length, once it is stored.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub audio_seconds: ::std::option::Option<f64>,
        /**The source's audio tracks (`index`, `language`, `codec`, `channels`, `title`,
`default`), once it has been read, when it has more than one: `audio_track` chooses
among them. Left out for a source with one, or not read yet.*/
        #[serde(default, skip_serializing_if = "::std::vec::Vec::is_empty")]
        pub audio_tracks: ::std::vec::Vec<AudioTrackView>,
        ///When the MP3 was stored; `null` until then.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub completed_at: ::std::option::Option<::std::string::String>,
        pub created_at: ::std::string::String,
        /**Once completed: a signed link that opens the MP3 with no other credentials until it
expires (as from `GET /jobs/{job_id}/link`); else `null`.*/
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub download: ::std::option::Option<DownloadLink>,
        ///Why the job failed, or the failed attempt of a step being retried; else `null`.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub error: ::std::option::Option<::std::string::String>,
        ///Whether the job has expired: its MP3 (and video) are removed or about to be.
        pub expired: bool,
        /**When the job and its MP3 are removed (`RETENTION_HOURS` after it ended); `null` while
it runs. Past it, the download answers 410 Gone.*/
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub expires_at: ::std::option::Option<::std::string::String>,
        /**A failed job's failure type (`NoAudioStream`, `CorruptMedia`, ...), for a client to say
it in its own words; `error` has the sentence.*/
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub failure_type: ::std::option::Option<::std::string::String>,
        pub filename: ::std::string::String,
        pub job_id: ::uuid::Uuid,
        ///The MP3's size, once it is stored.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub mp3_bytes: ::std::option::Option<u64>,
        pub options: OutputChoices,
        ///0-100, from the transcode's heartbeats.
        pub progress: u8,
        pub status: JobState,
        ///The step running now; `null` between two steps and for a job that ended without one.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub step: ::std::option::Option<JobStep>,
        /**Once the job has completed: `true` when the output is the source's audio copied as it
is (stream copy: its codec was the format's and nothing asked needed decoding), `false`
when it was decoded and encoded; `null` before.*/
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub stream_copy: ::std::option::Option<bool>,
    }
    impl JobStatusBody {
        pub fn builder() -> builder::JobStatusBody {
            Default::default()
        }
    }
    ///A step of the conversion: the workflow's activities, in the order they run.
    #[derive(
        ::serde::Deserialize,
        ::serde::Serialize,
        Clone,
        Copy,
        Debug,
        Eq,
        Hash,
        Ord,
        PartialEq,
        PartialOrd
    )]
    pub enum JobStep {
        #[serde(rename = "validate_token")]
        ValidateToken,
        #[serde(rename = "import_source")]
        ImportSource,
        #[serde(rename = "fetch_source")]
        FetchSource,
        #[serde(rename = "transcode")]
        Transcode,
        #[serde(rename = "export_mp3")]
        ExportMp3,
        #[serde(rename = "store_mp3")]
        StoreMp3,
        #[serde(rename = "send_email")]
        SendEmail,
    }
    impl ::std::fmt::Display for JobStep {
        fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
            match *self {
                Self::ValidateToken => f.write_str("validate_token"),
                Self::ImportSource => f.write_str("import_source"),
                Self::FetchSource => f.write_str("fetch_source"),
                Self::Transcode => f.write_str("transcode"),
                Self::ExportMp3 => f.write_str("export_mp3"),
                Self::StoreMp3 => f.write_str("store_mp3"),
                Self::SendEmail => f.write_str("send_email"),
            }
        }
    }
    impl ::std::str::FromStr for JobStep {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            match value {
                "validate_token" => Ok(Self::ValidateToken),
                "import_source" => Ok(Self::ImportSource),
                "fetch_source" => Ok(Self::FetchSource),
                "transcode" => Ok(Self::Transcode),
                "export_mp3" => Ok(Self::ExportMp3),
                "store_mp3" => Ok(Self::StoreMp3),
                "send_email" => Ok(Self::SendEmail),
                _ => Err("invalid value".into()),
            }
        }
    }
    impl ::std::convert::TryFrom<&str> for JobStep {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for JobStep {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    ///One job, as listed.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct JobSummary {
        ///The output's length.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub audio_seconds: ::std::option::Option<f64>,
        ///The batch the job was uploaded in (`/batches/{batch_id}`); `null` for a single file.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub batch_id: ::std::option::Option<::uuid::Uuid>,
        ///When the output was stored.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub completed_at: ::std::option::Option<::std::string::String>,
        pub created_at: ::std::string::String,
        ///A failed job's failure type (`CorruptMedia`, ...); `/status/{job_id}` has its sentence.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub failure_type: ::std::option::Option<::std::string::String>,
        pub filename: ::std::string::String,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub format: ::std::option::Option<FormatName>,
        pub job_id: ::uuid::Uuid,
        ///The output's size (of any format; the name is kept for clients).
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub mp3_bytes: ::std::option::Option<u64>,
        ///The uploaded file's size.
        pub size_bytes: u64,
        pub status: JobState,
    }
    impl JobSummary {
        pub fn builder() -> builder::JobSummary {
            Default::default()
        }
    }
    /**A new account: with an invitation's `token` (whose address it takes), or an `email` when
sign-up is open.*/
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct Join {
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub email: ::std::option::Option<JoinEmail>,
        ///At least 8 characters.
        pub password: JoinPassword,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub token: ::std::option::Option<JoinToken>,
    }
    impl Join {
        pub fn builder() -> builder::Join {
            Default::default()
        }
    }
    ///`JoinEmail`
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct JoinEmail(::std::string::String);
    impl ::std::ops::Deref for JoinEmail {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<JoinEmail> for ::std::string::String {
        fn from(value: JoinEmail) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for JoinEmail {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 254usize {
                return Err("longer than 254 characters".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for JoinEmail {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for JoinEmail {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for JoinEmail {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///At least 8 characters.
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct JoinPassword(::std::string::String);
    impl ::std::ops::Deref for JoinPassword {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<JoinPassword> for ::std::string::String {
        fn from(value: JoinPassword) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for JoinPassword {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 1024usize {
                return Err("longer than 1024 characters".into());
            }
            if value.chars().count() < 8usize {
                return Err("shorter than 8 characters".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for JoinPassword {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for JoinPassword {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for JoinPassword {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///`JoinToken`
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct JoinToken(::std::string::String);
    impl ::std::ops::Deref for JoinToken {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<JoinToken> for ::std::string::String {
        fn from(value: JoinToken) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for JoinToken {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 100usize {
                return Err("longer than 100 characters".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for JoinToken {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for JoinToken {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for JoinToken {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///The account made.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct Joined {
        pub email: ::std::string::String,
        pub id: ::std::string::String,
    }
    impl Joined {
        pub fn builder() -> builder::Joined {
            Default::default()
        }
    }
    ///A key as its owner sees it: never its secret.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct KeyInfo {
        pub created_at: ::std::string::String,
        ///Past its expiry: it no longer works (revoke it to remove it from this list).
        pub expired: bool,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub expires_at: ::std::option::Option<::std::string::String>,
        ///The key's id: the 12 letters and digits after `amk_`.
        pub id: ::std::string::String,
        ///When it was last used, to the minute; none if never.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub last_used_at: ::std::option::Option<::std::string::String>,
        pub name: ::std::string::String,
        ///How the key begins (`amk_` and its id), to recognise it.
        pub prefix: ::std::string::String,
        pub scopes: ::std::vec::Vec<Scope>,
    }
    impl KeyInfo {
        pub fn builder() -> builder::KeyInfo {
            Default::default()
        }
    }
    ///The caller's keys.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct KeyList {
        pub keys: ::std::vec::Vec<KeyInfo>,
    }
    impl KeyList {
        pub fn builder() -> builder::KeyList {
            Default::default()
        }
    }
    ///`ListJobsCursor`
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct ListJobsCursor(::std::string::String);
    impl ::std::ops::Deref for ListJobsCursor {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<ListJobsCursor> for ::std::string::String {
        fn from(value: ListJobsCursor) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for ListJobsCursor {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() < 1usize {
                return Err("shorter than 1 characters".into());
            }
            static PATTERN: ::std::sync::LazyLock<::regress::Regex> = ::std::sync::LazyLock::new(||
            { ::regress::Regex::new("^[A-Za-z0-9_-]+$").unwrap() });
            if PATTERN.find(value).is_none() {
                return Err("doesn't match pattern \"^[A-Za-z0-9_-]+$\"".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for ListJobsCursor {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for ListJobsCursor {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for ListJobsCursor {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///`ListUsersAfter`
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct ListUsersAfter(::std::string::String);
    impl ::std::ops::Deref for ListUsersAfter {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<ListUsersAfter> for ::std::string::String {
        fn from(value: ListUsersAfter) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for ListUsersAfter {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 254usize {
                return Err("longer than 254 characters".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for ListUsersAfter {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for ListUsersAfter {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for ListUsersAfter {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///`ListUsersSearch`
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct ListUsersSearch(::std::string::String);
    impl ::std::ops::Deref for ListUsersSearch {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<ListUsersSearch> for ::std::string::String {
        fn from(value: ListUsersSearch) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for ListUsersSearch {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 254usize {
                return Err("longer than 254 characters".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for ListUsersSearch {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for ListUsersSearch {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for ListUsersSearch {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///`Liveness`
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct Liveness {
        ///Always `alive`: the process serves requests.
        pub status: ::std::string::String,
    }
    impl Liveness {
        pub fn builder() -> builder::Liveness {
            Default::default()
        }
    }
    ///A loudness target (EBU R128).
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct LoudnessTarget {
        ///Integrated loudness, LUFS.
        pub integrated: f64,
        ///Loudness range, LU.
        pub range: f64,
        ///Highest true peak, dBTP.
        pub true_peak: f64,
    }
    impl LoudnessTarget {
        pub fn builder() -> builder::LoudnessTarget {
            Default::default()
        }
    }
    ///An account, with its limits and usage.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct ManagedAccount {
        ///`false`: the account is off (no sign-in, every credential refused).
        pub active: bool,
        pub admin: bool,
        pub email: ::std::string::String,
        pub id: ::std::string::String,
        pub limits: OwnLimits,
        /**The next single sign-on with this account's address takes the account (an admin
allowed it with `PATCH /users/{user_id}`).*/
        pub sign_on_link: bool,
        ///The account signs in through the OpenID provider (it has a single sign-on identity).
        pub single_sign_on: bool,
        pub usage: Used,
    }
    impl ManagedAccount {
        pub fn builder() -> builder::ManagedAccount {
            Default::default()
        }
    }
    ///A page of accounts.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct ManagedAccountPage {
        ///Give it as `after` for the next page; none on the last.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub next_after: ::std::option::Option<::std::string::String>,
        pub users: ::std::vec::Vec<ManagedAccount>,
    }
    impl ManagedAccountPage {
        pub fn builder() -> builder::ManagedAccountPage {
            Default::default()
        }
    }
    ///An account to add.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct NewAccount {
        #[serde(default)]
        pub admin: bool,
        pub email: NewAccountEmail,
        ///At least 8 characters; the person changes it on their account page.
        pub password: NewAccountPassword,
    }
    impl NewAccount {
        pub fn builder() -> builder::NewAccount {
            Default::default()
        }
    }
    ///`NewAccountEmail`
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct NewAccountEmail(::std::string::String);
    impl ::std::ops::Deref for NewAccountEmail {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<NewAccountEmail> for ::std::string::String {
        fn from(value: NewAccountEmail) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for NewAccountEmail {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 254usize {
                return Err("longer than 254 characters".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for NewAccountEmail {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for NewAccountEmail {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for NewAccountEmail {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///At least 8 characters; the person changes it on their account page.
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct NewAccountPassword(::std::string::String);
    impl ::std::ops::Deref for NewAccountPassword {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<NewAccountPassword> for ::std::string::String {
        fn from(value: NewAccountPassword) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for NewAccountPassword {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 1024usize {
                return Err("longer than 1024 characters".into());
            }
            if value.chars().count() < 8usize {
                return Err("shorter than 8 characters".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for NewAccountPassword {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for NewAccountPassword {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for NewAccountPassword {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///A bucket of yours to save.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct NewConnectionBody {
        pub access_key_id: NewConnectionBodyAccessKeyId,
        ///3 to 63 lower-case letters, digits, dots and hyphens.
        pub bucket: NewConnectionBodyBucket,
        /**The S3 endpoint (`https://s3.example.com`, a MinIO server's address); leave out for
AWS itself. Its host must resolve to public addresses only (unless the operator
allows private ones).*/
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub endpoint: ::std::option::Option<NewConnectionBodyEndpoint>,
        ///Your name for it, 1 to 100 characters.
        pub name: NewConnectionBodyName,
        ///The folder imports read from and exports write to; default the whole bucket.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub prefix: ::std::option::Option<NewConnectionBodyPrefix>,
        ///Default `us-east-1`.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub region: ::std::option::Option<NewConnectionBodyRegion>,
        ///Kept encrypted, used by the workers only, never shown again.
        pub secret_access_key: NewConnectionBodySecretAccessKey,
    }
    impl NewConnectionBody {
        pub fn builder() -> builder::NewConnectionBody {
            Default::default()
        }
    }
    ///`NewConnectionBodyAccessKeyId`
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct NewConnectionBodyAccessKeyId(::std::string::String);
    impl ::std::ops::Deref for NewConnectionBodyAccessKeyId {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<NewConnectionBodyAccessKeyId> for ::std::string::String {
        fn from(value: NewConnectionBodyAccessKeyId) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for NewConnectionBodyAccessKeyId {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 255usize {
                return Err("longer than 255 characters".into());
            }
            if value.chars().count() < 1usize {
                return Err("shorter than 1 characters".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for NewConnectionBodyAccessKeyId {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String>
    for NewConnectionBodyAccessKeyId {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for NewConnectionBodyAccessKeyId {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///3 to 63 lower-case letters, digits, dots and hyphens.
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct NewConnectionBodyBucket(::std::string::String);
    impl ::std::ops::Deref for NewConnectionBodyBucket {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<NewConnectionBodyBucket> for ::std::string::String {
        fn from(value: NewConnectionBodyBucket) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for NewConnectionBodyBucket {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            static PATTERN: ::std::sync::LazyLock<::regress::Regex> = ::std::sync::LazyLock::new(||
            { ::regress::Regex::new("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$").unwrap() });
            if PATTERN.find(value).is_none() {
                return Err(
                    "doesn't match pattern \"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$\"".into(),
                );
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for NewConnectionBodyBucket {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for NewConnectionBodyBucket {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for NewConnectionBodyBucket {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    /**The S3 endpoint (`https://s3.example.com`, a MinIO server's address); leave out for
AWS itself. Its host must resolve to public addresses only (unless the operator
allows private ones).*/
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct NewConnectionBodyEndpoint(::std::string::String);
    impl ::std::ops::Deref for NewConnectionBodyEndpoint {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<NewConnectionBodyEndpoint> for ::std::string::String {
        fn from(value: NewConnectionBodyEndpoint) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for NewConnectionBodyEndpoint {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 2048usize {
                return Err("longer than 2048 characters".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for NewConnectionBodyEndpoint {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for NewConnectionBodyEndpoint {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for NewConnectionBodyEndpoint {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///Your name for it, 1 to 100 characters.
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct NewConnectionBodyName(::std::string::String);
    impl ::std::ops::Deref for NewConnectionBodyName {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<NewConnectionBodyName> for ::std::string::String {
        fn from(value: NewConnectionBodyName) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for NewConnectionBodyName {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 100usize {
                return Err("longer than 100 characters".into());
            }
            if value.chars().count() < 1usize {
                return Err("shorter than 1 characters".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for NewConnectionBodyName {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for NewConnectionBodyName {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for NewConnectionBodyName {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///The folder imports read from and exports write to; default the whole bucket.
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct NewConnectionBodyPrefix(::std::string::String);
    impl ::std::ops::Deref for NewConnectionBodyPrefix {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<NewConnectionBodyPrefix> for ::std::string::String {
        fn from(value: NewConnectionBodyPrefix) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for NewConnectionBodyPrefix {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 512usize {
                return Err("longer than 512 characters".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for NewConnectionBodyPrefix {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for NewConnectionBodyPrefix {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for NewConnectionBodyPrefix {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///Default `us-east-1`.
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct NewConnectionBodyRegion(::std::string::String);
    impl ::std::ops::Deref for NewConnectionBodyRegion {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<NewConnectionBodyRegion> for ::std::string::String {
        fn from(value: NewConnectionBodyRegion) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for NewConnectionBodyRegion {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 64usize {
                return Err("longer than 64 characters".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for NewConnectionBodyRegion {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for NewConnectionBodyRegion {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for NewConnectionBodyRegion {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///Kept encrypted, used by the workers only, never shown again.
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct NewConnectionBodySecretAccessKey(::std::string::String);
    impl ::std::ops::Deref for NewConnectionBodySecretAccessKey {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<NewConnectionBodySecretAccessKey>
    for ::std::string::String {
        fn from(value: NewConnectionBodySecretAccessKey) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for NewConnectionBodySecretAccessKey {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 255usize {
                return Err("longer than 255 characters".into());
            }
            if value.chars().count() < 1usize {
                return Err("shorter than 1 characters".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for NewConnectionBodySecretAccessKey {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String>
    for NewConnectionBodySecretAccessKey {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for NewConnectionBodySecretAccessKey {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///A key to make.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct NewKey {
        ///When it stops working (RFC 3339, in the future); none: until it is revoked.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub expires_at: ::std::option::Option<::chrono::DateTime<::chrono::offset::Utc>>,
        ///What the key is for, to tell it apart in the list: 1 to 100 characters.
        pub name: NewKeyName,
        /**What it may do (at least one). `credentials` is never granted to a key; `admin` only
by an admin.*/
        pub scopes: ::std::vec::Vec<Scope>,
    }
    impl NewKey {
        pub fn builder() -> builder::NewKey {
            Default::default()
        }
    }
    ///What the key is for, to tell it apart in the list: 1 to 100 characters.
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct NewKeyName(::std::string::String);
    impl ::std::ops::Deref for NewKeyName {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<NewKeyName> for ::std::string::String {
        fn from(value: NewKeyName) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for NewKeyName {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 100usize {
                return Err("longer than 100 characters".into());
            }
            if value.chars().count() < 1usize {
                return Err("shorter than 1 characters".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for NewKeyName {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for NewKeyName {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for NewKeyName {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///What the token allows.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default)]
    #[serde(deny_unknown_fields)]
    pub struct NewUploadToken {
        ///How long it works, 1 to 1440 minutes (default 15).
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub expires_in_minutes: ::std::option::Option<::std::num::NonZeroU32>,
        ///The largest file, in MB (at most `MAX_FILE_SIZE`); none: `MAX_FILE_SIZE`.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub max_file_mb: ::std::option::Option<::std::num::NonZeroU64>,
        /**The output choices every upload with it gets, named as the upload's fields
(`{"preset": "voice"}`); an upload that sends choices of its own is refused. None: the
uploader chooses.*/
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub options: ::std::option::Option<
            ::std::collections::HashMap<::std::string::String, ::std::string::String>,
        >,
        /**How many uploads it allows, 1 to 100 (default 1). A form upload (of one file or a
batch) or a tus creation is one.*/
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub uploads: ::std::option::Option<::std::num::NonZeroU32>,
    }
    impl NewUploadToken {
        pub fn builder() -> builder::NewUploadToken {
            Default::default()
        }
    }
    ///A folder of one of your connections to watch.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct NewWatchBody {
        /**The connection whose bucket holds the folder (`POST /connections`); or, instead,
`directory`.*/
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub connection_id: ::std::option::Option<::std::string::String>,
        /**Admins only, instead of a connection: an absolute folder of the workers' hosts, inside
one of the folders the operator lets be watched (`WATCH_DIRECTORIES`).*/
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub directory: ::std::option::Option<NewWatchBodyDirectory>,
        /**With `export_to`: the key template (`{stem}`, `{job_id}`, `{date}`); default
`{stem}.mp3`.*/
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub export_key: ::std::option::Option<::std::string::String>,
        ///Also write each MP3 to this connection's bucket (one of yours), at `export_key`.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub export_to: ::std::option::Option<::std::string::String>,
        ///Seconds between one look over the folder and the next, 10 to 86400 (default 60).
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub interval_seconds: ::std::option::Option<u32>,
        ///Its jobs converting at once at most, 1 to 100 (default 4); the next videos wait.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub max_running: ::std::option::Option<::std::num::NonZeroU32>,
        ///Your name for it, 1 to 100 characters.
        pub name: NewWatchBodyName,
        /**The MP3's choices, by the names and with the values of the upload form's fields, as
for `POST /imports`.*/
        #[serde(default, skip_serializing_if = "::serde_json::Map::is_empty")]
        pub options: ::serde_json::Map<::std::string::String, ::serde_json::Value>,
        ///The folder under the connection's prefix; default the connection's whole prefix.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub prefix: ::std::option::Option<NewWatchBodyPrefix>,
    }
    impl NewWatchBody {
        pub fn builder() -> builder::NewWatchBody {
            Default::default()
        }
    }
    /**Admins only, instead of a connection: an absolute folder of the workers' hosts, inside
one of the folders the operator lets be watched (`WATCH_DIRECTORIES`).*/
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct NewWatchBodyDirectory(::std::string::String);
    impl ::std::ops::Deref for NewWatchBodyDirectory {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<NewWatchBodyDirectory> for ::std::string::String {
        fn from(value: NewWatchBodyDirectory) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for NewWatchBodyDirectory {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 4096usize {
                return Err("longer than 4096 characters".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for NewWatchBodyDirectory {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for NewWatchBodyDirectory {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for NewWatchBodyDirectory {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///Your name for it, 1 to 100 characters.
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct NewWatchBodyName(::std::string::String);
    impl ::std::ops::Deref for NewWatchBodyName {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<NewWatchBodyName> for ::std::string::String {
        fn from(value: NewWatchBodyName) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for NewWatchBodyName {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 100usize {
                return Err("longer than 100 characters".into());
            }
            if value.chars().count() < 1usize {
                return Err("shorter than 1 characters".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for NewWatchBodyName {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for NewWatchBodyName {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for NewWatchBodyName {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///The folder under the connection's prefix; default the connection's whole prefix.
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct NewWatchBodyPrefix(::std::string::String);
    impl ::std::ops::Deref for NewWatchBodyPrefix {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<NewWatchBodyPrefix> for ::std::string::String {
        fn from(value: NewWatchBodyPrefix) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for NewWatchBodyPrefix {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 512usize {
                return Err("longer than 512 characters".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for NewWatchBodyPrefix {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for NewWatchBodyPrefix {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for NewWatchBodyPrefix {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///A new endpoint.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct NewWebhook {
        ///The events to send; at least one.
        pub events: ::std::vec::Vec<EventName>,
        /**Where to POST: an `http` or `https` URL whose host resolves to public addresses only
(unless the operator allows private ones), without credentials.*/
        pub url: NewWebhookUrl,
    }
    impl NewWebhook {
        pub fn builder() -> builder::NewWebhook {
            Default::default()
        }
    }
    /**Where to POST: an `http` or `https` URL whose host resolves to public addresses only
(unless the operator allows private ones), without credentials.*/
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct NewWebhookUrl(::std::string::String);
    impl ::std::ops::Deref for NewWebhookUrl {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<NewWebhookUrl> for ::std::string::String {
        fn from(value: NewWebhookUrl) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for NewWebhookUrl {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 2048usize {
                return Err("longer than 2048 characters".into());
            }
            static PATTERN: ::std::sync::LazyLock<::regress::Regex> = ::std::sync::LazyLock::new(||
            {
                ::regress::Regex::new(
                        "^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~-]+(?::[0-9]{1,5})?(?:[/?][^\\s#]*)?$",
                    )
                    .unwrap()
            });
            if PATTERN.find(value).is_none() {
                return Err(
                    "doesn't match pattern \"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~-]+(?::[0-9]{1,5})?(?:[/?][^\\s#]*)?$\""
                        .into(),
                );
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for NewWebhookUrl {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for NewWebhookUrl {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for NewWebhookUrl {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///What a job's output is to be, as its upload asked.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct OutputChoices {
        ///The audio track asked for: a number or a language; left out for the default track.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub audio_track: ::std::option::Option<::std::string::String>,
        /**FLAC and WAV: bits a sample; `null`: 16, or 24 for a wider source (and for the lossy
formats).*/
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub bit_depth: ::std::option::Option<u8>,
        /**kbit/s: an MP3's with `cbr` and `abr`, M4A's and Opus's; `null`: none (MP3 `vbr`,
FLAC, WAV) or the encoder's default.*/
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub bitrate: ::std::option::Option<u16>,
        ///MP3 and Opus; `null` for the other formats.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub bitrate_mode: ::std::option::Option<BitrateModeName>,
        ///1 or 2; `null`: the source's (more than two mixed down to stereo).
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub channels: ::std::option::Option<u8>,
        pub cover: CoverName,
        ///Seconds into the video of the cover frame; `null`: chosen (or no frame).
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub cover_at: ::std::option::Option<f64>,
        ///Seconds into the video where it ends; `null`: the end.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub end: ::std::option::Option<f64>,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub format: ::std::option::Option<FormatName>,
        ///The loudness it is normalised to; `null`: as the source.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub normalize: ::std::option::Option<LoudnessTarget>,
        ///The preset the choices started from; `null` for none.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub preset: ::std::option::Option<PresetName>,
        ///MP3 VBR quality, 0-9; `null` otherwise.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub quality: ::std::option::Option<u8>,
        ///Decoded and encoded even where the audio could be copied.
        #[serde(default)]
        pub reencode: bool,
        ///Hz; `null`: the source's.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub sample_rate: ::std::option::Option<u32>,
        ///Seconds into the video where the MP3 starts; `null`: the beginning.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub start: ::std::option::Option<f64>,
        ///No tags at all.
        pub strip: bool,
        /**Tags given with the upload (`title`, `artist`, ...), over the video's own; an empty
value removes that tag.*/
        pub tags: ::std::collections::HashMap<
            ::std::string::String,
            ::std::string::String,
        >,
    }
    impl OutputChoices {
        pub fn builder() -> builder::OutputChoices {
            Default::default()
        }
    }
    /**An account's own limits, as an admin set them: `null` is the deployment's default, `0` no
limit.*/
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default)]
    pub struct OwnLimits {
        ///At most 1,000,000,000.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub jobs_per_day_limit: ::std::option::Option<u64>,
        ///At most 1,000,000,000 MB.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub storage_limit_mb: ::std::option::Option<u64>,
    }
    impl OwnLimits {
        pub fn builder() -> builder::OwnLimits {
            Default::default()
        }
    }
    ///A new password, with the current one.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct PasswordChange {
        pub current_password: PasswordChangeCurrentPassword,
        ///At least 8 characters.
        pub new_password: PasswordChangeNewPassword,
    }
    impl PasswordChange {
        pub fn builder() -> builder::PasswordChange {
            Default::default()
        }
    }
    ///`PasswordChangeCurrentPassword`
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct PasswordChangeCurrentPassword(::std::string::String);
    impl ::std::ops::Deref for PasswordChangeCurrentPassword {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<PasswordChangeCurrentPassword> for ::std::string::String {
        fn from(value: PasswordChangeCurrentPassword) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for PasswordChangeCurrentPassword {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 1024usize {
                return Err("longer than 1024 characters".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for PasswordChangeCurrentPassword {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String>
    for PasswordChangeCurrentPassword {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for PasswordChangeCurrentPassword {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///At least 8 characters.
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct PasswordChangeNewPassword(::std::string::String);
    impl ::std::ops::Deref for PasswordChangeNewPassword {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<PasswordChangeNewPassword> for ::std::string::String {
        fn from(value: PasswordChangeNewPassword) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for PasswordChangeNewPassword {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 1024usize {
                return Err("longer than 1024 characters".into());
            }
            if value.chars().count() < 8usize {
                return Err("shorter than 8 characters".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for PasswordChangeNewPassword {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for PasswordChangeNewPassword {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for PasswordChangeNewPassword {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///A named starting point for the other choices; a field given beside it wins over it.
    #[derive(
        ::serde::Deserialize,
        ::serde::Serialize,
        Clone,
        Copy,
        Debug,
        Eq,
        Hash,
        Ord,
        PartialEq,
        PartialOrd
    )]
    pub enum PresetName {
        #[serde(rename = "voice")]
        Voice,
        #[serde(rename = "podcast")]
        Podcast,
        #[serde(rename = "audiobook")]
        Audiobook,
        #[serde(rename = "music")]
        Music,
        #[serde(rename = "compatible")]
        Compatible,
        #[serde(rename = "speech")]
        Speech,
        #[serde(rename = "apple")]
        Apple,
        #[serde(rename = "archive")]
        Archive,
    }
    impl ::std::fmt::Display for PresetName {
        fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
            match *self {
                Self::Voice => f.write_str("voice"),
                Self::Podcast => f.write_str("podcast"),
                Self::Audiobook => f.write_str("audiobook"),
                Self::Music => f.write_str("music"),
                Self::Compatible => f.write_str("compatible"),
                Self::Speech => f.write_str("speech"),
                Self::Apple => f.write_str("apple"),
                Self::Archive => f.write_str("archive"),
            }
        }
    }
    impl ::std::str::FromStr for PresetName {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            match value {
                "voice" => Ok(Self::Voice),
                "podcast" => Ok(Self::Podcast),
                "audiobook" => Ok(Self::Audiobook),
                "music" => Ok(Self::Music),
                "compatible" => Ok(Self::Compatible),
                "speech" => Ok(Self::Speech),
                "apple" => Ok(Self::Apple),
                "archive" => Ok(Self::Archive),
                _ => Err("invalid value".into()),
            }
        }
    }
    impl ::std::convert::TryFrom<&str> for PresetName {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for PresetName {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    ///`Readiness`
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct Readiness {
        ///The dependencies that are down.
        pub failing: ::std::vec::Vec<::std::string::String>,
        ///`ready`, or `not_ready` when a dependency the gateway needs is down.
        pub status: ::std::string::String,
    }
    impl Readiness {
        pub fn builder() -> builder::Readiness {
            Default::default()
        }
    }
    ///`RefreshRequest`
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct RefreshRequest {
        pub refresh_token: ::std::string::String,
    }
    impl RefreshRequest {
        pub fn builder() -> builder::RefreshRequest {
            Default::default()
        }
    }
    ///What `DELETE /me/jobs` removed.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct RemovedJobs {
        ///Of those, the jobs that were still running: cancelled first.
        pub cancelled: u64,
        ///Jobs removed, with their videos, MP3s and records.
        pub removed: u64,
    }
    impl RemovedJobs {
        pub fn builder() -> builder::RemovedJobs {
            Default::default()
        }
    }
    ///`ReplayAccepted`
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct ReplayAccepted {
        pub delivery_id: ::std::string::String,
        pub message: ::std::string::String,
    }
    impl ReplayAccepted {
        pub fn builder() -> builder::ReplayAccepted {
            Default::default()
        }
    }
    ///`ReplayWebhookDeliveryDeliveryId`
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct ReplayWebhookDeliveryDeliveryId(::std::string::String);
    impl ::std::ops::Deref for ReplayWebhookDeliveryDeliveryId {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<ReplayWebhookDeliveryDeliveryId>
    for ::std::string::String {
        fn from(value: ReplayWebhookDeliveryDeliveryId) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for ReplayWebhookDeliveryDeliveryId {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            static PATTERN: ::std::sync::LazyLock<::regress::Regex> = ::std::sync::LazyLock::new(||
            { ::regress::Regex::new("^msg_[A-Za-z0-9_-]{24}$").unwrap() });
            if PATTERN.find(value).is_none() {
                return Err("doesn't match pattern \"^msg_[A-Za-z0-9_-]{24}$\"".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for ReplayWebhookDeliveryDeliveryId {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String>
    for ReplayWebhookDeliveryDeliveryId {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for ReplayWebhookDeliveryDeliveryId {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///A new password, with the secret of the mailed link.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    #[serde(deny_unknown_fields)]
    pub struct ResetPassword {
        ///At least 8 characters.
        pub new_password: ResetPasswordNewPassword,
        ///The `token` of the mailed link.
        pub token: ResetPasswordToken,
    }
    impl ResetPassword {
        pub fn builder() -> builder::ResetPassword {
            Default::default()
        }
    }
    ///At least 8 characters.
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct ResetPasswordNewPassword(::std::string::String);
    impl ::std::ops::Deref for ResetPasswordNewPassword {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<ResetPasswordNewPassword> for ::std::string::String {
        fn from(value: ResetPasswordNewPassword) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for ResetPasswordNewPassword {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 1024usize {
                return Err("longer than 1024 characters".into());
            }
            if value.chars().count() < 8usize {
                return Err("shorter than 8 characters".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for ResetPasswordNewPassword {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for ResetPasswordNewPassword {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for ResetPasswordNewPassword {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///The `token` of the mailed link.
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct ResetPasswordToken(::std::string::String);
    impl ::std::ops::Deref for ResetPasswordToken {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<ResetPasswordToken> for ::std::string::String {
        fn from(value: ResetPasswordToken) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for ResetPasswordToken {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 100usize {
                return Err("longer than 100 characters".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for ResetPasswordToken {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for ResetPasswordToken {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for ResetPasswordToken {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///`RevokeApiKeyKeyId`
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct RevokeApiKeyKeyId(::std::string::String);
    impl ::std::ops::Deref for RevokeApiKeyKeyId {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<RevokeApiKeyKeyId> for ::std::string::String {
        fn from(value: RevokeApiKeyKeyId) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for RevokeApiKeyKeyId {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            static PATTERN: ::std::sync::LazyLock<::regress::Regex> = ::std::sync::LazyLock::new(||
            { ::regress::Regex::new("^[0-9A-Za-z]{12}$").unwrap() });
            if PATTERN.find(value).is_none() {
                return Err("doesn't match pattern \"^[0-9A-Za-z]{12}$\"".into());
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for RevokeApiKeyKeyId {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for RevokeApiKeyKeyId {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for RevokeApiKeyKeyId {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///A new secret, shown this once.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct RotatedSecret {
        /**Until when messages are signed with the previous secret too (a second signature in
`webhook-signature`), so receivers can switch without losing any.*/
        pub previous_secret_expires_at: ::std::string::String,
        pub secret: ::std::string::String,
    }
    impl RotatedSecret {
        pub fn builder() -> builder::RotatedSecret {
            Default::default()
        }
    }
    ///One thing a credential may do.
    #[derive(
        ::serde::Deserialize,
        ::serde::Serialize,
        Clone,
        Copy,
        Debug,
        Eq,
        Hash,
        Ord,
        PartialEq,
        PartialOrd
    )]
    pub enum Scope {
        #[serde(rename = "jobs:read")]
        JobsRead,
        #[serde(rename = "jobs:write")]
        JobsWrite,
        #[serde(rename = "webhooks:read")]
        WebhooksRead,
        #[serde(rename = "webhooks:write")]
        WebhooksWrite,
        #[serde(rename = "account:read")]
        AccountRead,
        #[serde(rename = "account:write")]
        AccountWrite,
        #[serde(rename = "admin")]
        Admin,
        #[serde(rename = "credentials")]
        Credentials,
    }
    impl ::std::fmt::Display for Scope {
        fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
            match *self {
                Self::JobsRead => f.write_str("jobs:read"),
                Self::JobsWrite => f.write_str("jobs:write"),
                Self::WebhooksRead => f.write_str("webhooks:read"),
                Self::WebhooksWrite => f.write_str("webhooks:write"),
                Self::AccountRead => f.write_str("account:read"),
                Self::AccountWrite => f.write_str("account:write"),
                Self::Admin => f.write_str("admin"),
                Self::Credentials => f.write_str("credentials"),
            }
        }
    }
    impl ::std::str::FromStr for Scope {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            match value {
                "jobs:read" => Ok(Self::JobsRead),
                "jobs:write" => Ok(Self::JobsWrite),
                "webhooks:read" => Ok(Self::WebhooksRead),
                "webhooks:write" => Ok(Self::WebhooksWrite),
                "account:read" => Ok(Self::AccountRead),
                "account:write" => Ok(Self::AccountWrite),
                "admin" => Ok(Self::Admin),
                "credentials" => Ok(Self::Credentials),
                _ => Err("invalid value".into()),
            }
        }
    }
    impl ::std::convert::TryFrom<&str> for Scope {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for Scope {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    ///One dependency, as checked just now.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct ServiceCheck {
        ///What answered (server and version, bucket), or why the check failed.
        pub detail: ::std::string::String,
        ///How long the check took, in milliseconds (at most the 2 s timeout).
        pub latency_ms: u64,
        ///`database`, `storage`, `temporal`, `smtp`, and `redis` when rate limits are shared.
        pub name: ::std::string::String,
        pub status: ServiceState,
    }
    impl ServiceCheck {
        pub fn builder() -> builder::ServiceCheck {
            Default::default()
        }
    }
    ///`ServiceState`
    #[derive(
        ::serde::Deserialize,
        ::serde::Serialize,
        Clone,
        Copy,
        Debug,
        Eq,
        Hash,
        Ord,
        PartialEq,
        PartialOrd
    )]
    pub enum ServiceState {
        #[serde(rename = "up")]
        Up,
        #[serde(rename = "down")]
        Down,
    }
    impl ::std::fmt::Display for ServiceState {
        fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
            match *self {
                Self::Up => f.write_str("up"),
                Self::Down => f.write_str("down"),
            }
        }
    }
    impl ::std::str::FromStr for ServiceState {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            match value {
                "up" => Ok(Self::Up),
                "down" => Ok(Self::Down),
                _ => Err("invalid value".into()),
            }
        }
    }
    impl ::std::convert::TryFrom<&str> for ServiceState {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for ServiceState {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    ///`Services`
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct Services {
        pub database: ::std::string::String,
        pub smtp: ::std::string::String,
        pub storage: ::std::string::String,
        pub temporal: ::std::string::String,
    }
    impl Services {
        pub fn builder() -> builder::Services {
            Default::default()
        }
    }
    ///`ServicesReport`
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct ServicesReport {
        pub checked_at: ::std::string::String,
        pub services: ::std::vec::Vec<ServiceCheck>,
        ///`ok` when every dependency is up, else `degraded`.
        pub status: ::std::string::String,
    }
    impl ServicesReport {
        pub fn builder() -> builder::ServicesReport {
            Default::default()
        }
    }
    ///A browser login's access token (its refresh token is in the cookie).
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct SessionToken {
        pub access_token: ::std::string::String,
        ///Seconds until the access token expires; renew it at `POST /session/refresh`.
        pub expires_in: u64,
        ///Always `Bearer`.
        pub token_type: ::std::string::String,
    }
    impl SessionToken {
        pub fn builder() -> builder::SessionToken {
            Default::default()
        }
    }
    ///The ways to sign in here.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct SignInMethods {
        ///E-mail and password (`POST /session`, `POST /login`).
        pub password: bool,
        ///Whether anyone may make an account (as `GET /signup` says).
        pub signup: bool,
        ///Single sign-on with an OpenID provider, when one is set up (`null`: none).
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub single_sign_on: ::std::option::Option<SingleSignOn>,
    }
    impl SignInMethods {
        pub fn builder() -> builder::SignInMethods {
            Default::default()
        }
    }
    ///Whether anyone may make an account here.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct SignupOpen {
        ///`false`: accounts come from admins and their invitations only.
        pub open: bool,
    }
    impl SignupOpen {
        pub fn builder() -> builder::SignupOpen {
            Default::default()
        }
    }
    ///The OpenID provider people sign in with.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct SingleSignOn {
        ///What to call it on a button.
        pub name: ::std::string::String,
        ///Where a browser goes to sign in.
        pub url: ::std::string::String,
    }
    impl SingleSignOn {
        pub fn builder() -> builder::SingleSignOn {
            Default::default()
        }
    }
    ///Whose uploads the statistics cover.
    #[derive(
        ::serde::Deserialize,
        ::serde::Serialize,
        Clone,
        Copy,
        Debug,
        Eq,
        Hash,
        Ord,
        PartialEq,
        PartialOrd
    )]
    pub enum StatsScope {
        #[serde(rename = "mine")]
        Mine,
        #[serde(rename = "all")]
        All,
    }
    impl ::std::fmt::Display for StatsScope {
        fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
            match *self {
                Self::Mine => f.write_str("mine"),
                Self::All => f.write_str("all"),
            }
        }
    }
    impl ::std::str::FromStr for StatsScope {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            match value {
                "mine" => Ok(Self::Mine),
                "all" => Ok(Self::All),
                _ => Err("invalid value".into()),
            }
        }
    }
    impl ::std::convert::TryFrom<&str> for StatsScope {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for StatsScope {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    ///Uploads by where their jobs stand.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct StatusCounts {
        pub cancelled: u64,
        pub completed: u64,
        pub failed: u64,
        ///Queued or running.
        pub in_progress: u64,
    }
    impl StatusCounts {
        pub fn builder() -> builder::StatusCounts {
            Default::default()
        }
    }
    ///Which jobs to list by where they stand.
    #[derive(
        ::serde::Deserialize,
        ::serde::Serialize,
        Clone,
        Copy,
        Debug,
        Eq,
        Hash,
        Ord,
        PartialEq,
        PartialOrd
    )]
    pub enum StatusFilter {
        #[serde(rename = "in_progress")]
        InProgress,
        #[serde(rename = "queued")]
        Queued,
        #[serde(rename = "running")]
        Running,
        #[serde(rename = "completed")]
        Completed,
        #[serde(rename = "failed")]
        Failed,
        #[serde(rename = "cancelled")]
        Cancelled,
    }
    impl ::std::fmt::Display for StatusFilter {
        fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
            match *self {
                Self::InProgress => f.write_str("in_progress"),
                Self::Queued => f.write_str("queued"),
                Self::Running => f.write_str("running"),
                Self::Completed => f.write_str("completed"),
                Self::Failed => f.write_str("failed"),
                Self::Cancelled => f.write_str("cancelled"),
            }
        }
    }
    impl ::std::str::FromStr for StatusFilter {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            match value {
                "in_progress" => Ok(Self::InProgress),
                "queued" => Ok(Self::Queued),
                "running" => Ok(Self::Running),
                "completed" => Ok(Self::Completed),
                "failed" => Ok(Self::Failed),
                "cancelled" => Ok(Self::Cancelled),
                _ => Err("invalid value".into()),
            }
        }
    }
    impl ::std::convert::TryFrom<&str> for StatusFilter {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for StatusFilter {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    ///`TokenPair`
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct TokenPair {
        pub access_token: ::std::string::String,
        ///Seconds until the access token expires.
        pub expires_in: u64,
        pub refresh_token: ::std::string::String,
        ///Always `Bearer`.
        pub token_type: ::std::string::String,
    }
    impl TokenPair {
        pub fn builder() -> builder::TokenPair {
            Default::default()
        }
    }
    ///`UploadAccepted`
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct UploadAccepted {
        /**With several files, the batch they make: `GET /batches/{batch_id}` follows them all and
`GET /batches/{batch_id}/download` gives their MP3s as one ZIP; else `null`.*/
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub batch_id: ::std::option::Option<::uuid::Uuid>,
        /**With a `callback_url`, the one-off webhook endpoint made for this upload's jobs, and the
secret that signs its messages (shown only here); else `null`.*/
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub callback: ::std::option::Option<UploadCallback>,
        pub filename: ::std::string::String,
        ///The job; with several files, the first one's (`jobs` has them all).
        pub job_id: ::uuid::Uuid,
        ///Every job the upload started, one per `file` part, in the form's order.
        pub jobs: ::std::vec::Vec<AcceptedJob>,
        pub message: ::std::string::String,
        pub status: JobState,
    }
    impl UploadAccepted {
        pub fn builder() -> builder::UploadAccepted {
            Default::default()
        }
    }
    /**An upload's one-off webhook endpoint: told when each of its jobs ends, signed as the
Standard Webhooks specification says; `GET /webhooks/{webhook_id}/deliveries` shows the
attempts. Listed nowhere, and removed with the last of its jobs.*/
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct UploadCallback {
        ///`whsec_` and the key in base64.
        pub secret: ::std::string::String,
        pub webhook_id: ::uuid::Uuid,
    }
    impl UploadCallback {
        pub fn builder() -> builder::UploadCallback {
            Default::default()
        }
    }
    ///`UploadStatistics`
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct UploadStatistics {
        pub by_status: StatusCounts,
        ///The uploaded files' sizes added up.
        pub bytes_uploaded: u64,
        pub conversion: ConversionTimes,
        pub file_size: FileSizes,
        pub generated_at: ::std::string::String,
        ///The last 30 days, oldest first, ending with today; days without uploads count 0.
        pub per_day: ::std::vec::Vec<DayUploads>,
        pub scope: StatsScope,
        ///Every upload in the scope, ever.
        pub uploads: u64,
    }
    impl UploadStatistics {
        pub fn builder() -> builder::UploadStatistics {
            Default::default()
        }
    }
    ///What an account holds and has started today.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct Used {
        pub jobs_today: u64,
        pub storage_used_bytes: u64,
    }
    impl Used {
        pub fn builder() -> builder::Used {
            Default::default()
        }
    }
    ///What an admin changes about an account; `null` or left out: unchanged.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default)]
    #[serde(deny_unknown_fields)]
    pub struct UserChanges {
        /**`false` turns the account off at once: no more logins, every token refused, running
jobs cancelled. `true` turns it on again.*/
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub active: ::std::option::Option<bool>,
        ///Whether the account is an admin (an admin cannot take it from their own account).
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub admin: ::std::option::Option<bool>,
        /**The account's own limits, both at once (`null` in either: the deployment's default; `0`:
no limit).*/
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub limits: ::std::option::Option<OwnLimits>,
        /**`true` lets the next single sign-on with the account's verified address take the
account (once); `false` stops that. Without it, single sign-on never takes an account
that exists.*/
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub sign_on_link: ::std::option::Option<bool>,
    }
    impl UserChanges {
        pub fn builder() -> builder::UserChanges {
            Default::default()
        }
    }
    ///An account as an admin sees it after a change.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct UserSummary {
        ///`false`: the user cannot log in, and their tokens no longer work.
        pub active: bool,
        pub admin: bool,
        pub email: ::std::string::String,
        pub id: ::std::string::String,
        ///Running jobs cancelled by this change.
        pub jobs_cancelled: u64,
    }
    impl UserSummary {
        pub fn builder() -> builder::UserSummary {
            Default::default()
        }
    }
    ///A watch, as it is shown.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct WatchBody {
        ///The connection whose bucket it watches; `null` for a folder of the host.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub connection_id: ::std::option::Option<::uuid::Uuid>,
        pub created_at: ::std::string::String,
        ///The folder of the workers' hosts it watches; `null` for a bucket.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub directory: ::std::option::Option<::std::string::String>,
        ///Where its MP3s also go, as it may be shown.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub export: ::std::option::Option<::std::string::String>,
        pub id: ::uuid::Uuid,
        pub interval_seconds: u32,
        ///Jobs it has started, and how many of them still run.
        pub jobs: u64,
        pub max_running: u32,
        pub name: ::std::string::String,
        pub options: OutputChoices,
        ///Under the connection's prefix.
        pub prefix: ::std::string::String,
        pub running: u64,
        ///When it last looked over the whole folder.
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub scanned_at: ::std::option::Option<::std::string::String>,
        ///`active` or `paused`.
        pub state: ::std::string::String,
        /**Why it cannot go on now (the folder cannot be read, a quota is used up); `null` when
nothing holds it.*/
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub trouble: ::std::option::Option<::std::string::String>,
    }
    impl WatchBody {
        pub fn builder() -> builder::WatchBody {
            Default::default()
        }
    }
    ///`WatchList`
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct WatchList {
        ///Oldest first.
        pub watches: ::std::vec::Vec<WatchBody>,
    }
    impl WatchList {
        pub fn builder() -> builder::WatchList {
            Default::default()
        }
    }
    ///A registered endpoint.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct Webhook {
        pub created_at: ::std::string::String,
        ///Why it is off when its owner did not turn it off (its receiver answered 410 Gone).
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub disabled_reason: ::std::option::Option<::std::string::String>,
        ///Off: nothing is sent to it.
        pub enabled: bool,
        pub events: ::std::vec::Vec<EventName>,
        pub id: ::uuid::Uuid,
        pub updated_at: ::std::string::String,
        pub url: ::std::string::String,
    }
    impl Webhook {
        pub fn builder() -> builder::Webhook {
            Default::default()
        }
    }
    ///Changes to an endpoint; fields left out (or `null`) stay as they are.
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug, Default)]
    #[serde(deny_unknown_fields)]
    pub struct WebhookChanges {
        ///`true` turns on an endpoint that was off (also one its receiver disabled with 410).
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub enabled: ::std::option::Option<bool>,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub events: ::std::option::Option<::std::vec::Vec<EventName>>,
        #[serde(skip_serializing_if = "::std::option::Option::is_none")]
        pub url: ::std::option::Option<WebhookChangesUrl>,
    }
    impl WebhookChanges {
        pub fn builder() -> builder::WebhookChanges {
            Default::default()
        }
    }
    ///`WebhookChangesUrl`
    #[derive(::serde::Serialize, Clone, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
    #[serde(transparent)]
    pub struct WebhookChangesUrl(::std::string::String);
    impl ::std::ops::Deref for WebhookChangesUrl {
        type Target = ::std::string::String;
        fn deref(&self) -> &::std::string::String {
            &self.0
        }
    }
    impl ::std::convert::From<WebhookChangesUrl> for ::std::string::String {
        fn from(value: WebhookChangesUrl) -> Self {
            value.0
        }
    }
    impl ::std::str::FromStr for WebhookChangesUrl {
        type Err = self::error::ConversionError;
        fn from_str(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            if value.chars().count() > 2048usize {
                return Err("longer than 2048 characters".into());
            }
            static PATTERN: ::std::sync::LazyLock<::regress::Regex> = ::std::sync::LazyLock::new(||
            {
                ::regress::Regex::new(
                        "^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~-]+(?::[0-9]{1,5})?(?:[/?][^\\s#]*)?$",
                    )
                    .unwrap()
            });
            if PATTERN.find(value).is_none() {
                return Err(
                    "doesn't match pattern \"^[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9._~-]+(?::[0-9]{1,5})?(?:[/?][^\\s#]*)?$\""
                        .into(),
                );
            }
            Ok(Self(value.to_string()))
        }
    }
    impl ::std::convert::TryFrom<&str> for WebhookChangesUrl {
        type Error = self::error::ConversionError;
        fn try_from(
            value: &str,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl ::std::convert::TryFrom<::std::string::String> for WebhookChangesUrl {
        type Error = self::error::ConversionError;
        fn try_from(
            value: ::std::string::String,
        ) -> ::std::result::Result<Self, self::error::ConversionError> {
            value.parse()
        }
    }
    impl<'de> ::serde::Deserialize<'de> for WebhookChangesUrl {
        fn deserialize<D>(deserializer: D) -> ::std::result::Result<Self, D::Error>
        where
            D: ::serde::Deserializer<'de>,
        {
            ::std::string::String::deserialize(deserializer)?
                .parse()
                .map_err(|e: self::error::ConversionError| {
                    <D::Error as ::serde::de::Error>::custom(e.to_string())
                })
        }
    }
    ///`WebhookList`
    #[derive(::serde::Deserialize, ::serde::Serialize, Clone, Debug)]
    pub struct WebhookList {
        ///Oldest first.
        pub webhooks: ::std::vec::Vec<Webhook>,
    }
    impl WebhookList {
        pub fn builder() -> builder::WebhookList {
            Default::default()
        }
    }
    /// Types for composing complex structures.
    pub mod builder {
        #[derive(Clone, Debug)]
        pub struct AcceptedJob {
            filename: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            job_id: ::std::result::Result<::uuid::Uuid, ::std::string::String>,
        }
        impl ::std::default::Default for AcceptedJob {
            fn default() -> Self {
                Self {
                    filename: Err("no value supplied for filename".to_string()),
                    job_id: Err("no value supplied for job_id".to_string()),
                }
            }
        }
        impl AcceptedJob {
            pub fn filename<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.filename = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for filename: {e}")
                    });
                self
            }
            pub fn job_id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::uuid::Uuid>,
                T::Error: ::std::fmt::Display,
            {
                self.job_id = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for job_id: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<AcceptedJob> for super::AcceptedJob {
            type Error = super::error::ConversionError;
            fn try_from(
                value: AcceptedJob,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    filename: value.filename?,
                    job_id: value.job_id?,
                })
            }
        }
        impl ::std::convert::From<super::AcceptedJob> for AcceptedJob {
            fn from(value: super::AcceptedJob) -> Self {
                Self {
                    filename: Ok(value.filename),
                    job_id: Ok(value.job_id),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct Account {
            admin: ::std::result::Result<bool, ::std::string::String>,
            completion_emails: ::std::result::Result<bool, ::std::string::String>,
            email: ::std::result::Result<::std::string::String, ::std::string::String>,
            id: ::std::result::Result<::std::string::String, ::std::string::String>,
            quota: ::std::result::Result<super::AccountQuota, ::std::string::String>,
            uploads: ::std::result::Result<
                super::AccountUploadLimits,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for Account {
            fn default() -> Self {
                Self {
                    admin: Err("no value supplied for admin".to_string()),
                    completion_emails: Err(
                        "no value supplied for completion_emails".to_string(),
                    ),
                    email: Err("no value supplied for email".to_string()),
                    id: Err("no value supplied for id".to_string()),
                    quota: Err("no value supplied for quota".to_string()),
                    uploads: Err("no value supplied for uploads".to_string()),
                }
            }
        }
        impl Account {
            pub fn admin<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<bool>,
                T::Error: ::std::fmt::Display,
            {
                self.admin = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for admin: {e}")
                    });
                self
            }
            pub fn completion_emails<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<bool>,
                T::Error: ::std::fmt::Display,
            {
                self.completion_emails = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for completion_emails: {e}"
                        )
                    });
                self
            }
            pub fn email<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.email = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for email: {e}")
                    });
                self
            }
            pub fn id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.id = value
                    .try_into()
                    .map_err(|e| format!("error converting supplied value for id: {e}"));
                self
            }
            pub fn quota<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::AccountQuota>,
                T::Error: ::std::fmt::Display,
            {
                self.quota = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for quota: {e}")
                    });
                self
            }
            pub fn uploads<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::AccountUploadLimits>,
                T::Error: ::std::fmt::Display,
            {
                self.uploads = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for uploads: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<Account> for super::Account {
            type Error = super::error::ConversionError;
            fn try_from(
                value: Account,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    admin: value.admin?,
                    completion_emails: value.completion_emails?,
                    email: value.email?,
                    id: value.id?,
                    quota: value.quota?,
                    uploads: value.uploads?,
                })
            }
        }
        impl ::std::convert::From<super::Account> for Account {
            fn from(value: super::Account) -> Self {
                Self {
                    admin: Ok(value.admin),
                    completion_emails: Ok(value.completion_emails),
                    email: Ok(value.email),
                    id: Ok(value.id),
                    quota: Ok(value.quota),
                    uploads: Ok(value.uploads),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct AccountChanges {
            completion_emails: ::std::result::Result<
                ::std::option::Option<bool>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for AccountChanges {
            fn default() -> Self {
                Self {
                    completion_emails: Ok(Default::default()),
                }
            }
        }
        impl AccountChanges {
            pub fn completion_emails<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<bool>>,
                T::Error: ::std::fmt::Display,
            {
                self.completion_emails = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for completion_emails: {e}"
                        )
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<AccountChanges> for super::AccountChanges {
            type Error = super::error::ConversionError;
            fn try_from(
                value: AccountChanges,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    completion_emails: value.completion_emails?,
                })
            }
        }
        impl ::std::convert::From<super::AccountChanges> for AccountChanges {
            fn from(value: super::AccountChanges) -> Self {
                Self {
                    completion_emails: Ok(value.completion_emails),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct AccountQuota {
            jobs_per_day_limit: ::std::result::Result<
                ::std::option::Option<u64>,
                ::std::string::String,
            >,
            jobs_remaining_today: ::std::result::Result<
                ::std::option::Option<u64>,
                ::std::string::String,
            >,
            jobs_reset_at: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            jobs_today: ::std::result::Result<u64, ::std::string::String>,
            storage_limit_bytes: ::std::result::Result<
                ::std::option::Option<u64>,
                ::std::string::String,
            >,
            storage_remaining_bytes: ::std::result::Result<
                ::std::option::Option<u64>,
                ::std::string::String,
            >,
            storage_used_bytes: ::std::result::Result<u64, ::std::string::String>,
        }
        impl ::std::default::Default for AccountQuota {
            fn default() -> Self {
                Self {
                    jobs_per_day_limit: Ok(Default::default()),
                    jobs_remaining_today: Ok(Default::default()),
                    jobs_reset_at: Err(
                        "no value supplied for jobs_reset_at".to_string(),
                    ),
                    jobs_today: Err("no value supplied for jobs_today".to_string()),
                    storage_limit_bytes: Ok(Default::default()),
                    storage_remaining_bytes: Ok(Default::default()),
                    storage_used_bytes: Err(
                        "no value supplied for storage_used_bytes".to_string(),
                    ),
                }
            }
        }
        impl AccountQuota {
            pub fn jobs_per_day_limit<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<u64>>,
                T::Error: ::std::fmt::Display,
            {
                self.jobs_per_day_limit = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for jobs_per_day_limit: {e}"
                        )
                    });
                self
            }
            pub fn jobs_remaining_today<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<u64>>,
                T::Error: ::std::fmt::Display,
            {
                self.jobs_remaining_today = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for jobs_remaining_today: {e}"
                        )
                    });
                self
            }
            pub fn jobs_reset_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.jobs_reset_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for jobs_reset_at: {e}")
                    });
                self
            }
            pub fn jobs_today<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.jobs_today = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for jobs_today: {e}")
                    });
                self
            }
            pub fn storage_limit_bytes<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<u64>>,
                T::Error: ::std::fmt::Display,
            {
                self.storage_limit_bytes = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for storage_limit_bytes: {e}"
                        )
                    });
                self
            }
            pub fn storage_remaining_bytes<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<u64>>,
                T::Error: ::std::fmt::Display,
            {
                self.storage_remaining_bytes = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for storage_remaining_bytes: {e}"
                        )
                    });
                self
            }
            pub fn storage_used_bytes<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.storage_used_bytes = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for storage_used_bytes: {e}"
                        )
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<AccountQuota> for super::AccountQuota {
            type Error = super::error::ConversionError;
            fn try_from(
                value: AccountQuota,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    jobs_per_day_limit: value.jobs_per_day_limit?,
                    jobs_remaining_today: value.jobs_remaining_today?,
                    jobs_reset_at: value.jobs_reset_at?,
                    jobs_today: value.jobs_today?,
                    storage_limit_bytes: value.storage_limit_bytes?,
                    storage_remaining_bytes: value.storage_remaining_bytes?,
                    storage_used_bytes: value.storage_used_bytes?,
                })
            }
        }
        impl ::std::convert::From<super::AccountQuota> for AccountQuota {
            fn from(value: super::AccountQuota) -> Self {
                Self {
                    jobs_per_day_limit: Ok(value.jobs_per_day_limit),
                    jobs_remaining_today: Ok(value.jobs_remaining_today),
                    jobs_reset_at: Ok(value.jobs_reset_at),
                    jobs_today: Ok(value.jobs_today),
                    storage_limit_bytes: Ok(value.storage_limit_bytes),
                    storage_remaining_bytes: Ok(value.storage_remaining_bytes),
                    storage_used_bytes: Ok(value.storage_used_bytes),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct AccountUploadLimits {
            allowed_extensions: ::std::result::Result<
                ::std::vec::Vec<::std::string::String>,
                ::std::string::String,
            >,
            max_file_bytes: ::std::result::Result<u64, ::std::string::String>,
            max_files_per_upload: ::std::result::Result<u64, ::std::string::String>,
            max_unfinished_uploads: ::std::result::Result<u64, ::std::string::String>,
            max_uploads_in_progress: ::std::result::Result<u64, ::std::string::String>,
        }
        impl ::std::default::Default for AccountUploadLimits {
            fn default() -> Self {
                Self {
                    allowed_extensions: Err(
                        "no value supplied for allowed_extensions".to_string(),
                    ),
                    max_file_bytes: Err(
                        "no value supplied for max_file_bytes".to_string(),
                    ),
                    max_files_per_upload: Err(
                        "no value supplied for max_files_per_upload".to_string(),
                    ),
                    max_unfinished_uploads: Err(
                        "no value supplied for max_unfinished_uploads".to_string(),
                    ),
                    max_uploads_in_progress: Err(
                        "no value supplied for max_uploads_in_progress".to_string(),
                    ),
                }
            }
        }
        impl AccountUploadLimits {
            pub fn allowed_extensions<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::vec::Vec<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.allowed_extensions = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for allowed_extensions: {e}"
                        )
                    });
                self
            }
            pub fn max_file_bytes<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.max_file_bytes = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for max_file_bytes: {e}"
                        )
                    });
                self
            }
            pub fn max_files_per_upload<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.max_files_per_upload = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for max_files_per_upload: {e}"
                        )
                    });
                self
            }
            pub fn max_unfinished_uploads<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.max_unfinished_uploads = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for max_unfinished_uploads: {e}"
                        )
                    });
                self
            }
            pub fn max_uploads_in_progress<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.max_uploads_in_progress = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for max_uploads_in_progress: {e}"
                        )
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<AccountUploadLimits>
        for super::AccountUploadLimits {
            type Error = super::error::ConversionError;
            fn try_from(
                value: AccountUploadLimits,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    allowed_extensions: value.allowed_extensions?,
                    max_file_bytes: value.max_file_bytes?,
                    max_files_per_upload: value.max_files_per_upload?,
                    max_unfinished_uploads: value.max_unfinished_uploads?,
                    max_uploads_in_progress: value.max_uploads_in_progress?,
                })
            }
        }
        impl ::std::convert::From<super::AccountUploadLimits> for AccountUploadLimits {
            fn from(value: super::AccountUploadLimits) -> Self {
                Self {
                    allowed_extensions: Ok(value.allowed_extensions),
                    max_file_bytes: Ok(value.max_file_bytes),
                    max_files_per_upload: Ok(value.max_files_per_upload),
                    max_unfinished_uploads: Ok(value.max_unfinished_uploads),
                    max_uploads_in_progress: Ok(value.max_uploads_in_progress),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct Attempt {
            attempted_at: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            error: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            latency_ms: ::std::result::Result<u64, ::std::string::String>,
            replay: ::std::result::Result<bool, ::std::string::String>,
            status_code: ::std::result::Result<
                ::std::option::Option<u16>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for Attempt {
            fn default() -> Self {
                Self {
                    attempted_at: Err("no value supplied for attempted_at".to_string()),
                    error: Ok(Default::default()),
                    latency_ms: Err("no value supplied for latency_ms".to_string()),
                    replay: Err("no value supplied for replay".to_string()),
                    status_code: Ok(Default::default()),
                }
            }
        }
        impl Attempt {
            pub fn attempted_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.attempted_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for attempted_at: {e}")
                    });
                self
            }
            pub fn error<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.error = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for error: {e}")
                    });
                self
            }
            pub fn latency_ms<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.latency_ms = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for latency_ms: {e}")
                    });
                self
            }
            pub fn replay<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<bool>,
                T::Error: ::std::fmt::Display,
            {
                self.replay = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for replay: {e}")
                    });
                self
            }
            pub fn status_code<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<u16>>,
                T::Error: ::std::fmt::Display,
            {
                self.status_code = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for status_code: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<Attempt> for super::Attempt {
            type Error = super::error::ConversionError;
            fn try_from(
                value: Attempt,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    attempted_at: value.attempted_at?,
                    error: value.error?,
                    latency_ms: value.latency_ms?,
                    replay: value.replay?,
                    status_code: value.status_code?,
                })
            }
        }
        impl ::std::convert::From<super::Attempt> for Attempt {
            fn from(value: super::Attempt) -> Self {
                Self {
                    attempted_at: Ok(value.attempted_at),
                    error: Ok(value.error),
                    latency_ms: Ok(value.latency_ms),
                    replay: Ok(value.replay),
                    status_code: Ok(value.status_code),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct AudioTrackView {
            channels: ::std::result::Result<u16, ::std::string::String>,
            codec: ::std::result::Result<::std::string::String, ::std::string::String>,
            default: ::std::result::Result<bool, ::std::string::String>,
            index: ::std::result::Result<u32, ::std::string::String>,
            language: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            title: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for AudioTrackView {
            fn default() -> Self {
                Self {
                    channels: Err("no value supplied for channels".to_string()),
                    codec: Err("no value supplied for codec".to_string()),
                    default: Err("no value supplied for default".to_string()),
                    index: Err("no value supplied for index".to_string()),
                    language: Ok(Default::default()),
                    title: Ok(Default::default()),
                }
            }
        }
        impl AudioTrackView {
            pub fn channels<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u16>,
                T::Error: ::std::fmt::Display,
            {
                self.channels = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for channels: {e}")
                    });
                self
            }
            pub fn codec<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.codec = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for codec: {e}")
                    });
                self
            }
            pub fn default<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<bool>,
                T::Error: ::std::fmt::Display,
            {
                self.default = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for default: {e}")
                    });
                self
            }
            pub fn index<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u32>,
                T::Error: ::std::fmt::Display,
            {
                self.index = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for index: {e}")
                    });
                self
            }
            pub fn language<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.language = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for language: {e}")
                    });
                self
            }
            pub fn title<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.title = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for title: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<AudioTrackView> for super::AudioTrackView {
            type Error = super::error::ConversionError;
            fn try_from(
                value: AudioTrackView,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    channels: value.channels?,
                    codec: value.codec?,
                    default: value.default?,
                    index: value.index?,
                    language: value.language?,
                    title: value.title?,
                })
            }
        }
        impl ::std::convert::From<super::AudioTrackView> for AudioTrackView {
            fn from(value: super::AudioTrackView) -> Self {
                Self {
                    channels: Ok(value.channels),
                    codec: Ok(value.codec),
                    default: Ok(value.default),
                    index: Ok(value.index),
                    language: Ok(value.language),
                    title: Ok(value.title),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct BatchCounts {
            cancelled: ::std::result::Result<u32, ::std::string::String>,
            completed: ::std::result::Result<u32, ::std::string::String>,
            failed: ::std::result::Result<u32, ::std::string::String>,
            queued: ::std::result::Result<u32, ::std::string::String>,
            running: ::std::result::Result<u32, ::std::string::String>,
        }
        impl ::std::default::Default for BatchCounts {
            fn default() -> Self {
                Self {
                    cancelled: Err("no value supplied for cancelled".to_string()),
                    completed: Err("no value supplied for completed".to_string()),
                    failed: Err("no value supplied for failed".to_string()),
                    queued: Err("no value supplied for queued".to_string()),
                    running: Err("no value supplied for running".to_string()),
                }
            }
        }
        impl BatchCounts {
            pub fn cancelled<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u32>,
                T::Error: ::std::fmt::Display,
            {
                self.cancelled = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for cancelled: {e}")
                    });
                self
            }
            pub fn completed<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u32>,
                T::Error: ::std::fmt::Display,
            {
                self.completed = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for completed: {e}")
                    });
                self
            }
            pub fn failed<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u32>,
                T::Error: ::std::fmt::Display,
            {
                self.failed = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for failed: {e}")
                    });
                self
            }
            pub fn queued<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u32>,
                T::Error: ::std::fmt::Display,
            {
                self.queued = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for queued: {e}")
                    });
                self
            }
            pub fn running<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u32>,
                T::Error: ::std::fmt::Display,
            {
                self.running = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for running: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<BatchCounts> for super::BatchCounts {
            type Error = super::error::ConversionError;
            fn try_from(
                value: BatchCounts,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    cancelled: value.cancelled?,
                    completed: value.completed?,
                    failed: value.failed?,
                    queued: value.queued?,
                    running: value.running?,
                })
            }
        }
        impl ::std::convert::From<super::BatchCounts> for BatchCounts {
            fn from(value: super::BatchCounts) -> Self {
                Self {
                    cancelled: Ok(value.cancelled),
                    completed: Ok(value.completed),
                    failed: Ok(value.failed),
                    queued: Ok(value.queued),
                    running: Ok(value.running),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct BatchJob {
            error: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            filename: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            job_id: ::std::result::Result<::uuid::Uuid, ::std::string::String>,
            progress: ::std::result::Result<u8, ::std::string::String>,
            status: ::std::result::Result<super::JobState, ::std::string::String>,
        }
        impl ::std::default::Default for BatchJob {
            fn default() -> Self {
                Self {
                    error: Ok(Default::default()),
                    filename: Err("no value supplied for filename".to_string()),
                    job_id: Err("no value supplied for job_id".to_string()),
                    progress: Err("no value supplied for progress".to_string()),
                    status: Err("no value supplied for status".to_string()),
                }
            }
        }
        impl BatchJob {
            pub fn error<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.error = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for error: {e}")
                    });
                self
            }
            pub fn filename<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.filename = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for filename: {e}")
                    });
                self
            }
            pub fn job_id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::uuid::Uuid>,
                T::Error: ::std::fmt::Display,
            {
                self.job_id = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for job_id: {e}")
                    });
                self
            }
            pub fn progress<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u8>,
                T::Error: ::std::fmt::Display,
            {
                self.progress = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for progress: {e}")
                    });
                self
            }
            pub fn status<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::JobState>,
                T::Error: ::std::fmt::Display,
            {
                self.status = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for status: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<BatchJob> for super::BatchJob {
            type Error = super::error::ConversionError;
            fn try_from(
                value: BatchJob,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    error: value.error?,
                    filename: value.filename?,
                    job_id: value.job_id?,
                    progress: value.progress?,
                    status: value.status?,
                })
            }
        }
        impl ::std::convert::From<super::BatchJob> for BatchJob {
            fn from(value: super::BatchJob) -> Self {
                Self {
                    error: Ok(value.error),
                    filename: Ok(value.filename),
                    job_id: Ok(value.job_id),
                    progress: Ok(value.progress),
                    status: Ok(value.status),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct BatchStatus {
            batch_id: ::std::result::Result<::uuid::Uuid, ::std::string::String>,
            counts: ::std::result::Result<super::BatchCounts, ::std::string::String>,
            done: ::std::result::Result<bool, ::std::string::String>,
            download: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            jobs: ::std::result::Result<
                ::std::vec::Vec<super::BatchJob>,
                ::std::string::String,
            >,
            progress: ::std::result::Result<u8, ::std::string::String>,
        }
        impl ::std::default::Default for BatchStatus {
            fn default() -> Self {
                Self {
                    batch_id: Err("no value supplied for batch_id".to_string()),
                    counts: Err("no value supplied for counts".to_string()),
                    done: Err("no value supplied for done".to_string()),
                    download: Ok(Default::default()),
                    jobs: Err("no value supplied for jobs".to_string()),
                    progress: Err("no value supplied for progress".to_string()),
                }
            }
        }
        impl BatchStatus {
            pub fn batch_id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::uuid::Uuid>,
                T::Error: ::std::fmt::Display,
            {
                self.batch_id = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for batch_id: {e}")
                    });
                self
            }
            pub fn counts<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::BatchCounts>,
                T::Error: ::std::fmt::Display,
            {
                self.counts = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for counts: {e}")
                    });
                self
            }
            pub fn done<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<bool>,
                T::Error: ::std::fmt::Display,
            {
                self.done = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for done: {e}")
                    });
                self
            }
            pub fn download<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.download = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for download: {e}")
                    });
                self
            }
            pub fn jobs<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::vec::Vec<super::BatchJob>>,
                T::Error: ::std::fmt::Display,
            {
                self.jobs = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for jobs: {e}")
                    });
                self
            }
            pub fn progress<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u8>,
                T::Error: ::std::fmt::Display,
            {
                self.progress = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for progress: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<BatchStatus> for super::BatchStatus {
            type Error = super::error::ConversionError;
            fn try_from(
                value: BatchStatus,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    batch_id: value.batch_id?,
                    counts: value.counts?,
                    done: value.done?,
                    download: value.download?,
                    jobs: value.jobs?,
                    progress: value.progress?,
                })
            }
        }
        impl ::std::convert::From<super::BatchStatus> for BatchStatus {
            fn from(value: super::BatchStatus) -> Self {
                Self {
                    batch_id: Ok(value.batch_id),
                    counts: Ok(value.counts),
                    done: Ok(value.done),
                    download: Ok(value.download),
                    jobs: Ok(value.jobs),
                    progress: Ok(value.progress),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct BucketObjects {
            connection_id: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            keys: ::std::result::Result<
                ::std::vec::Vec<::std::string::String>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for BucketObjects {
            fn default() -> Self {
                Self {
                    connection_id: Err(
                        "no value supplied for connection_id".to_string(),
                    ),
                    keys: Err("no value supplied for keys".to_string()),
                }
            }
        }
        impl BucketObjects {
            pub fn connection_id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.connection_id = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for connection_id: {e}")
                    });
                self
            }
            pub fn keys<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::vec::Vec<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.keys = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for keys: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<BucketObjects> for super::BucketObjects {
            type Error = super::error::ConversionError;
            fn try_from(
                value: BucketObjects,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    connection_id: value.connection_id?,
                    keys: value.keys?,
                })
            }
        }
        impl ::std::convert::From<super::BucketObjects> for BucketObjects {
            fn from(value: super::BucketObjects) -> Self {
                Self {
                    connection_id: Ok(value.connection_id),
                    keys: Ok(value.keys),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct CancelAccepted {
            job_id: ::std::result::Result<::uuid::Uuid, ::std::string::String>,
            message: ::std::result::Result<::std::string::String, ::std::string::String>,
            status: ::std::result::Result<::std::string::String, ::std::string::String>,
        }
        impl ::std::default::Default for CancelAccepted {
            fn default() -> Self {
                Self {
                    job_id: Err("no value supplied for job_id".to_string()),
                    message: Err("no value supplied for message".to_string()),
                    status: Err("no value supplied for status".to_string()),
                }
            }
        }
        impl CancelAccepted {
            pub fn job_id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::uuid::Uuid>,
                T::Error: ::std::fmt::Display,
            {
                self.job_id = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for job_id: {e}")
                    });
                self
            }
            pub fn message<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.message = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for message: {e}")
                    });
                self
            }
            pub fn status<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.status = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for status: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<CancelAccepted> for super::CancelAccepted {
            type Error = super::error::ConversionError;
            fn try_from(
                value: CancelAccepted,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    job_id: value.job_id?,
                    message: value.message?,
                    status: value.status?,
                })
            }
        }
        impl ::std::convert::From<super::CancelAccepted> for CancelAccepted {
            fn from(value: super::CancelAccepted) -> Self {
                Self {
                    job_id: Ok(value.job_id),
                    message: Ok(value.message),
                    status: Ok(value.status),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct ConnectionBody {
            access_key_id: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            bucket: ::std::result::Result<::std::string::String, ::std::string::String>,
            created_at: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            endpoint: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            id: ::std::result::Result<::uuid::Uuid, ::std::string::String>,
            name: ::std::result::Result<::std::string::String, ::std::string::String>,
            prefix: ::std::result::Result<::std::string::String, ::std::string::String>,
            region: ::std::result::Result<::std::string::String, ::std::string::String>,
        }
        impl ::std::default::Default for ConnectionBody {
            fn default() -> Self {
                Self {
                    access_key_id: Err(
                        "no value supplied for access_key_id".to_string(),
                    ),
                    bucket: Err("no value supplied for bucket".to_string()),
                    created_at: Err("no value supplied for created_at".to_string()),
                    endpoint: Ok(Default::default()),
                    id: Err("no value supplied for id".to_string()),
                    name: Err("no value supplied for name".to_string()),
                    prefix: Err("no value supplied for prefix".to_string()),
                    region: Err("no value supplied for region".to_string()),
                }
            }
        }
        impl ConnectionBody {
            pub fn access_key_id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.access_key_id = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for access_key_id: {e}")
                    });
                self
            }
            pub fn bucket<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.bucket = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for bucket: {e}")
                    });
                self
            }
            pub fn created_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.created_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for created_at: {e}")
                    });
                self
            }
            pub fn endpoint<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.endpoint = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for endpoint: {e}")
                    });
                self
            }
            pub fn id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::uuid::Uuid>,
                T::Error: ::std::fmt::Display,
            {
                self.id = value
                    .try_into()
                    .map_err(|e| format!("error converting supplied value for id: {e}"));
                self
            }
            pub fn name<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.name = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for name: {e}")
                    });
                self
            }
            pub fn prefix<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.prefix = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for prefix: {e}")
                    });
                self
            }
            pub fn region<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.region = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for region: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<ConnectionBody> for super::ConnectionBody {
            type Error = super::error::ConversionError;
            fn try_from(
                value: ConnectionBody,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    access_key_id: value.access_key_id?,
                    bucket: value.bucket?,
                    created_at: value.created_at?,
                    endpoint: value.endpoint?,
                    id: value.id?,
                    name: value.name?,
                    prefix: value.prefix?,
                    region: value.region?,
                })
            }
        }
        impl ::std::convert::From<super::ConnectionBody> for ConnectionBody {
            fn from(value: super::ConnectionBody) -> Self {
                Self {
                    access_key_id: Ok(value.access_key_id),
                    bucket: Ok(value.bucket),
                    created_at: Ok(value.created_at),
                    endpoint: Ok(value.endpoint),
                    id: Ok(value.id),
                    name: Ok(value.name),
                    prefix: Ok(value.prefix),
                    region: Ok(value.region),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct ConnectionList {
            connections: ::std::result::Result<
                ::std::vec::Vec<super::ConnectionBody>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for ConnectionList {
            fn default() -> Self {
                Self {
                    connections: Err("no value supplied for connections".to_string()),
                }
            }
        }
        impl ConnectionList {
            pub fn connections<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::vec::Vec<super::ConnectionBody>>,
                T::Error: ::std::fmt::Display,
            {
                self.connections = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for connections: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<ConnectionList> for super::ConnectionList {
            type Error = super::error::ConversionError;
            fn try_from(
                value: ConnectionList,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    connections: value.connections?,
                })
            }
        }
        impl ::std::convert::From<super::ConnectionList> for ConnectionList {
            fn from(value: super::ConnectionList) -> Self {
                Self {
                    connections: Ok(value.connections),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct ConversionTimes {
            jobs: ::std::result::Result<u64, ::std::string::String>,
            mean_seconds: ::std::result::Result<
                ::std::option::Option<f64>,
                ::std::string::String,
            >,
            p95_seconds: ::std::result::Result<
                ::std::option::Option<f64>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for ConversionTimes {
            fn default() -> Self {
                Self {
                    jobs: Err("no value supplied for jobs".to_string()),
                    mean_seconds: Ok(Default::default()),
                    p95_seconds: Ok(Default::default()),
                }
            }
        }
        impl ConversionTimes {
            pub fn jobs<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.jobs = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for jobs: {e}")
                    });
                self
            }
            pub fn mean_seconds<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<f64>>,
                T::Error: ::std::fmt::Display,
            {
                self.mean_seconds = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for mean_seconds: {e}")
                    });
                self
            }
            pub fn p95_seconds<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<f64>>,
                T::Error: ::std::fmt::Display,
            {
                self.p95_seconds = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for p95_seconds: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<ConversionTimes> for super::ConversionTimes {
            type Error = super::error::ConversionError;
            fn try_from(
                value: ConversionTimes,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    jobs: value.jobs?,
                    mean_seconds: value.mean_seconds?,
                    p95_seconds: value.p95_seconds?,
                })
            }
        }
        impl ::std::convert::From<super::ConversionTimes> for ConversionTimes {
            fn from(value: super::ConversionTimes) -> Self {
                Self {
                    jobs: Ok(value.jobs),
                    mean_seconds: Ok(value.mean_seconds),
                    p95_seconds: Ok(value.p95_seconds),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct CreatedKey {
            created_at: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            expired: ::std::result::Result<bool, ::std::string::String>,
            expires_at: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            id: ::std::result::Result<::std::string::String, ::std::string::String>,
            key: ::std::result::Result<::std::string::String, ::std::string::String>,
            last_used_at: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            name: ::std::result::Result<::std::string::String, ::std::string::String>,
            prefix: ::std::result::Result<::std::string::String, ::std::string::String>,
            scopes: ::std::result::Result<
                ::std::vec::Vec<super::Scope>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for CreatedKey {
            fn default() -> Self {
                Self {
                    created_at: Err("no value supplied for created_at".to_string()),
                    expired: Err("no value supplied for expired".to_string()),
                    expires_at: Ok(Default::default()),
                    id: Err("no value supplied for id".to_string()),
                    key: Err("no value supplied for key".to_string()),
                    last_used_at: Ok(Default::default()),
                    name: Err("no value supplied for name".to_string()),
                    prefix: Err("no value supplied for prefix".to_string()),
                    scopes: Err("no value supplied for scopes".to_string()),
                }
            }
        }
        impl CreatedKey {
            pub fn created_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.created_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for created_at: {e}")
                    });
                self
            }
            pub fn expired<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<bool>,
                T::Error: ::std::fmt::Display,
            {
                self.expired = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for expired: {e}")
                    });
                self
            }
            pub fn expires_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.expires_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for expires_at: {e}")
                    });
                self
            }
            pub fn id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.id = value
                    .try_into()
                    .map_err(|e| format!("error converting supplied value for id: {e}"));
                self
            }
            pub fn key<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.key = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for key: {e}")
                    });
                self
            }
            pub fn last_used_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.last_used_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for last_used_at: {e}")
                    });
                self
            }
            pub fn name<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.name = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for name: {e}")
                    });
                self
            }
            pub fn prefix<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.prefix = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for prefix: {e}")
                    });
                self
            }
            pub fn scopes<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::vec::Vec<super::Scope>>,
                T::Error: ::std::fmt::Display,
            {
                self.scopes = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for scopes: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<CreatedKey> for super::CreatedKey {
            type Error = super::error::ConversionError;
            fn try_from(
                value: CreatedKey,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    created_at: value.created_at?,
                    expired: value.expired?,
                    expires_at: value.expires_at?,
                    id: value.id?,
                    key: value.key?,
                    last_used_at: value.last_used_at?,
                    name: value.name?,
                    prefix: value.prefix?,
                    scopes: value.scopes?,
                })
            }
        }
        impl ::std::convert::From<super::CreatedKey> for CreatedKey {
            fn from(value: super::CreatedKey) -> Self {
                Self {
                    created_at: Ok(value.created_at),
                    expired: Ok(value.expired),
                    expires_at: Ok(value.expires_at),
                    id: Ok(value.id),
                    key: Ok(value.key),
                    last_used_at: Ok(value.last_used_at),
                    name: Ok(value.name),
                    prefix: Ok(value.prefix),
                    scopes: Ok(value.scopes),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct CreatedUploadToken {
            expires_at: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            max_file_mb: ::std::result::Result<u64, ::std::string::String>,
            options: ::std::result::Result<
                ::std::option::Option<
                    ::std::collections::HashMap<
                        ::std::string::String,
                        ::std::string::String,
                    >,
                >,
                ::std::string::String,
            >,
            token: ::std::result::Result<::std::string::String, ::std::string::String>,
            uploads: ::std::result::Result<u32, ::std::string::String>,
        }
        impl ::std::default::Default for CreatedUploadToken {
            fn default() -> Self {
                Self {
                    expires_at: Err("no value supplied for expires_at".to_string()),
                    max_file_mb: Err("no value supplied for max_file_mb".to_string()),
                    options: Ok(Default::default()),
                    token: Err("no value supplied for token".to_string()),
                    uploads: Err("no value supplied for uploads".to_string()),
                }
            }
        }
        impl CreatedUploadToken {
            pub fn expires_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.expires_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for expires_at: {e}")
                    });
                self
            }
            pub fn max_file_mb<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.max_file_mb = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for max_file_mb: {e}")
                    });
                self
            }
            pub fn options<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<
                    ::std::option::Option<
                        ::std::collections::HashMap<
                            ::std::string::String,
                            ::std::string::String,
                        >,
                    >,
                >,
                T::Error: ::std::fmt::Display,
            {
                self.options = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for options: {e}")
                    });
                self
            }
            pub fn token<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.token = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for token: {e}")
                    });
                self
            }
            pub fn uploads<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u32>,
                T::Error: ::std::fmt::Display,
            {
                self.uploads = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for uploads: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<CreatedUploadToken> for super::CreatedUploadToken {
            type Error = super::error::ConversionError;
            fn try_from(
                value: CreatedUploadToken,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    expires_at: value.expires_at?,
                    max_file_mb: value.max_file_mb?,
                    options: value.options?,
                    token: value.token?,
                    uploads: value.uploads?,
                })
            }
        }
        impl ::std::convert::From<super::CreatedUploadToken> for CreatedUploadToken {
            fn from(value: super::CreatedUploadToken) -> Self {
                Self {
                    expires_at: Ok(value.expires_at),
                    max_file_mb: Ok(value.max_file_mb),
                    options: Ok(value.options),
                    token: Ok(value.token),
                    uploads: Ok(value.uploads),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct CreatedWebhook {
            created_at: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            enabled: ::std::result::Result<bool, ::std::string::String>,
            events: ::std::result::Result<
                ::std::vec::Vec<super::EventName>,
                ::std::string::String,
            >,
            id: ::std::result::Result<::uuid::Uuid, ::std::string::String>,
            secret: ::std::result::Result<::std::string::String, ::std::string::String>,
            url: ::std::result::Result<::std::string::String, ::std::string::String>,
        }
        impl ::std::default::Default for CreatedWebhook {
            fn default() -> Self {
                Self {
                    created_at: Err("no value supplied for created_at".to_string()),
                    enabled: Err("no value supplied for enabled".to_string()),
                    events: Err("no value supplied for events".to_string()),
                    id: Err("no value supplied for id".to_string()),
                    secret: Err("no value supplied for secret".to_string()),
                    url: Err("no value supplied for url".to_string()),
                }
            }
        }
        impl CreatedWebhook {
            pub fn created_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.created_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for created_at: {e}")
                    });
                self
            }
            pub fn enabled<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<bool>,
                T::Error: ::std::fmt::Display,
            {
                self.enabled = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for enabled: {e}")
                    });
                self
            }
            pub fn events<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::vec::Vec<super::EventName>>,
                T::Error: ::std::fmt::Display,
            {
                self.events = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for events: {e}")
                    });
                self
            }
            pub fn id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::uuid::Uuid>,
                T::Error: ::std::fmt::Display,
            {
                self.id = value
                    .try_into()
                    .map_err(|e| format!("error converting supplied value for id: {e}"));
                self
            }
            pub fn secret<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.secret = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for secret: {e}")
                    });
                self
            }
            pub fn url<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.url = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for url: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<CreatedWebhook> for super::CreatedWebhook {
            type Error = super::error::ConversionError;
            fn try_from(
                value: CreatedWebhook,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    created_at: value.created_at?,
                    enabled: value.enabled?,
                    events: value.events?,
                    id: value.id?,
                    secret: value.secret?,
                    url: value.url?,
                })
            }
        }
        impl ::std::convert::From<super::CreatedWebhook> for CreatedWebhook {
            fn from(value: super::CreatedWebhook) -> Self {
                Self {
                    created_at: Ok(value.created_at),
                    enabled: Ok(value.enabled),
                    events: Ok(value.events),
                    id: Ok(value.id),
                    secret: Ok(value.secret),
                    url: Ok(value.url),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct DayUploads {
            date: ::std::result::Result<::std::string::String, ::std::string::String>,
            uploads: ::std::result::Result<u64, ::std::string::String>,
        }
        impl ::std::default::Default for DayUploads {
            fn default() -> Self {
                Self {
                    date: Err("no value supplied for date".to_string()),
                    uploads: Err("no value supplied for uploads".to_string()),
                }
            }
        }
        impl DayUploads {
            pub fn date<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.date = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for date: {e}")
                    });
                self
            }
            pub fn uploads<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.uploads = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for uploads: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<DayUploads> for super::DayUploads {
            type Error = super::error::ConversionError;
            fn try_from(
                value: DayUploads,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    date: value.date?,
                    uploads: value.uploads?,
                })
            }
        }
        impl ::std::convert::From<super::DayUploads> for DayUploads {
            fn from(value: super::DayUploads) -> Self {
                Self {
                    date: Ok(value.date),
                    uploads: Ok(value.uploads),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct Delivery {
            attempts: ::std::result::Result<
                ::std::vec::Vec<super::Attempt>,
                ::std::string::String,
            >,
            created_at: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            delivered_at: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            delivery_id: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            event: ::std::result::Result<super::EventName, ::std::string::String>,
            job_id: ::std::result::Result<::uuid::Uuid, ::std::string::String>,
        }
        impl ::std::default::Default for Delivery {
            fn default() -> Self {
                Self {
                    attempts: Err("no value supplied for attempts".to_string()),
                    created_at: Err("no value supplied for created_at".to_string()),
                    delivered_at: Ok(Default::default()),
                    delivery_id: Err("no value supplied for delivery_id".to_string()),
                    event: Err("no value supplied for event".to_string()),
                    job_id: Err("no value supplied for job_id".to_string()),
                }
            }
        }
        impl Delivery {
            pub fn attempts<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::vec::Vec<super::Attempt>>,
                T::Error: ::std::fmt::Display,
            {
                self.attempts = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for attempts: {e}")
                    });
                self
            }
            pub fn created_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.created_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for created_at: {e}")
                    });
                self
            }
            pub fn delivered_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.delivered_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for delivered_at: {e}")
                    });
                self
            }
            pub fn delivery_id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.delivery_id = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for delivery_id: {e}")
                    });
                self
            }
            pub fn event<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::EventName>,
                T::Error: ::std::fmt::Display,
            {
                self.event = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for event: {e}")
                    });
                self
            }
            pub fn job_id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::uuid::Uuid>,
                T::Error: ::std::fmt::Display,
            {
                self.job_id = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for job_id: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<Delivery> for super::Delivery {
            type Error = super::error::ConversionError;
            fn try_from(
                value: Delivery,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    attempts: value.attempts?,
                    created_at: value.created_at?,
                    delivered_at: value.delivered_at?,
                    delivery_id: value.delivery_id?,
                    event: value.event?,
                    job_id: value.job_id?,
                })
            }
        }
        impl ::std::convert::From<super::Delivery> for Delivery {
            fn from(value: super::Delivery) -> Self {
                Self {
                    attempts: Ok(value.attempts),
                    created_at: Ok(value.created_at),
                    delivered_at: Ok(value.delivered_at),
                    delivery_id: Ok(value.delivery_id),
                    event: Ok(value.event),
                    job_id: Ok(value.job_id),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct DeliveryList {
            deliveries: ::std::result::Result<
                ::std::vec::Vec<super::Delivery>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for DeliveryList {
            fn default() -> Self {
                Self {
                    deliveries: Err("no value supplied for deliveries".to_string()),
                }
            }
        }
        impl DeliveryList {
            pub fn deliveries<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::vec::Vec<super::Delivery>>,
                T::Error: ::std::fmt::Display,
            {
                self.deliveries = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for deliveries: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<DeliveryList> for super::DeliveryList {
            type Error = super::error::ConversionError;
            fn try_from(
                value: DeliveryList,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    deliveries: value.deliveries?,
                })
            }
        }
        impl ::std::convert::From<super::DeliveryList> for DeliveryList {
            fn from(value: super::DeliveryList) -> Self {
                Self {
                    deliveries: Ok(value.deliveries),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct DownloadLink {
            expires_at: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            url: ::std::result::Result<::std::string::String, ::std::string::String>,
        }
        impl ::std::default::Default for DownloadLink {
            fn default() -> Self {
                Self {
                    expires_at: Err("no value supplied for expires_at".to_string()),
                    url: Err("no value supplied for url".to_string()),
                }
            }
        }
        impl DownloadLink {
            pub fn expires_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.expires_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for expires_at: {e}")
                    });
                self
            }
            pub fn url<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.url = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for url: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<DownloadLink> for super::DownloadLink {
            type Error = super::error::ConversionError;
            fn try_from(
                value: DownloadLink,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    expires_at: value.expires_at?,
                    url: value.url?,
                })
            }
        }
        impl ::std::convert::From<super::DownloadLink> for DownloadLink {
            fn from(value: super::DownloadLink) -> Self {
                Self {
                    expires_at: Ok(value.expires_at),
                    url: Ok(value.url),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct EndedLogins {
            api_keys_kept: ::std::result::Result<u64, ::std::string::String>,
            ended: ::std::result::Result<u64, ::std::string::String>,
        }
        impl ::std::default::Default for EndedLogins {
            fn default() -> Self {
                Self {
                    api_keys_kept: Err(
                        "no value supplied for api_keys_kept".to_string(),
                    ),
                    ended: Err("no value supplied for ended".to_string()),
                }
            }
        }
        impl EndedLogins {
            pub fn api_keys_kept<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.api_keys_kept = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for api_keys_kept: {e}")
                    });
                self
            }
            pub fn ended<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.ended = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for ended: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<EndedLogins> for super::EndedLogins {
            type Error = super::error::ConversionError;
            fn try_from(
                value: EndedLogins,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    api_keys_kept: value.api_keys_kept?,
                    ended: value.ended?,
                })
            }
        }
        impl ::std::convert::From<super::EndedLogins> for EndedLogins {
            fn from(value: super::EndedLogins) -> Self {
                Self {
                    api_keys_kept: Ok(value.api_keys_kept),
                    ended: Ok(value.ended),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct ErrorBody {
            error: ::std::result::Result<super::ErrorCode, ::std::string::String>,
            field: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            message: ::std::result::Result<::std::string::String, ::std::string::String>,
        }
        impl ::std::default::Default for ErrorBody {
            fn default() -> Self {
                Self {
                    error: Err("no value supplied for error".to_string()),
                    field: Ok(Default::default()),
                    message: Err("no value supplied for message".to_string()),
                }
            }
        }
        impl ErrorBody {
            pub fn error<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::ErrorCode>,
                T::Error: ::std::fmt::Display,
            {
                self.error = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for error: {e}")
                    });
                self
            }
            pub fn field<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.field = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for field: {e}")
                    });
                self
            }
            pub fn message<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.message = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for message: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<ErrorBody> for super::ErrorBody {
            type Error = super::error::ConversionError;
            fn try_from(
                value: ErrorBody,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    error: value.error?,
                    field: value.field?,
                    message: value.message?,
                })
            }
        }
        impl ::std::convert::From<super::ErrorBody> for ErrorBody {
            fn from(value: super::ErrorBody) -> Self {
                Self {
                    error: Ok(value.error),
                    field: Ok(value.field),
                    message: Ok(value.message),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct FileSizes {
            mean_bytes: ::std::result::Result<
                ::std::option::Option<f64>,
                ::std::string::String,
            >,
            p50_bytes: ::std::result::Result<
                ::std::option::Option<u64>,
                ::std::string::String,
            >,
            p95_bytes: ::std::result::Result<
                ::std::option::Option<u64>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for FileSizes {
            fn default() -> Self {
                Self {
                    mean_bytes: Ok(Default::default()),
                    p50_bytes: Ok(Default::default()),
                    p95_bytes: Ok(Default::default()),
                }
            }
        }
        impl FileSizes {
            pub fn mean_bytes<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<f64>>,
                T::Error: ::std::fmt::Display,
            {
                self.mean_bytes = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for mean_bytes: {e}")
                    });
                self
            }
            pub fn p50_bytes<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<u64>>,
                T::Error: ::std::fmt::Display,
            {
                self.p50_bytes = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for p50_bytes: {e}")
                    });
                self
            }
            pub fn p95_bytes<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<u64>>,
                T::Error: ::std::fmt::Display,
            {
                self.p95_bytes = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for p95_bytes: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<FileSizes> for super::FileSizes {
            type Error = super::error::ConversionError;
            fn try_from(
                value: FileSizes,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    mean_bytes: value.mean_bytes?,
                    p50_bytes: value.p50_bytes?,
                    p95_bytes: value.p95_bytes?,
                })
            }
        }
        impl ::std::convert::From<super::FileSizes> for FileSizes {
            fn from(value: super::FileSizes) -> Self {
                Self {
                    mean_bytes: Ok(value.mean_bytes),
                    p50_bytes: Ok(value.p50_bytes),
                    p95_bytes: Ok(value.p95_bytes),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct ForgotPassword {
            email: ::std::result::Result<
                super::ForgotPasswordEmail,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for ForgotPassword {
            fn default() -> Self {
                Self {
                    email: Err("no value supplied for email".to_string()),
                }
            }
        }
        impl ForgotPassword {
            pub fn email<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::ForgotPasswordEmail>,
                T::Error: ::std::fmt::Display,
            {
                self.email = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for email: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<ForgotPassword> for super::ForgotPassword {
            type Error = super::error::ConversionError;
            fn try_from(
                value: ForgotPassword,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self { email: value.email? })
            }
        }
        impl ::std::convert::From<super::ForgotPassword> for ForgotPassword {
            fn from(value: super::ForgotPassword) -> Self {
                Self { email: Ok(value.email) }
            }
        }
        #[derive(Clone, Debug)]
        pub struct Forgotten {
            message: ::std::result::Result<::std::string::String, ::std::string::String>,
        }
        impl ::std::default::Default for Forgotten {
            fn default() -> Self {
                Self {
                    message: Err("no value supplied for message".to_string()),
                }
            }
        }
        impl Forgotten {
            pub fn message<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.message = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for message: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<Forgotten> for super::Forgotten {
            type Error = super::error::ConversionError;
            fn try_from(
                value: Forgotten,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self { message: value.message? })
            }
        }
        impl ::std::convert::From<super::Forgotten> for Forgotten {
            fn from(value: super::Forgotten) -> Self {
                Self { message: Ok(value.message) }
            }
        }
        #[derive(Clone, Debug)]
        pub struct Health {
            services: ::std::result::Result<super::Services, ::std::string::String>,
            status: ::std::result::Result<::std::string::String, ::std::string::String>,
            timestamp: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            version: ::std::result::Result<::std::string::String, ::std::string::String>,
        }
        impl ::std::default::Default for Health {
            fn default() -> Self {
                Self {
                    services: Err("no value supplied for services".to_string()),
                    status: Err("no value supplied for status".to_string()),
                    timestamp: Err("no value supplied for timestamp".to_string()),
                    version: Err("no value supplied for version".to_string()),
                }
            }
        }
        impl Health {
            pub fn services<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::Services>,
                T::Error: ::std::fmt::Display,
            {
                self.services = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for services: {e}")
                    });
                self
            }
            pub fn status<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.status = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for status: {e}")
                    });
                self
            }
            pub fn timestamp<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.timestamp = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for timestamp: {e}")
                    });
                self
            }
            pub fn version<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.version = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for version: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<Health> for super::Health {
            type Error = super::error::ConversionError;
            fn try_from(
                value: Health,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    services: value.services?,
                    status: value.status?,
                    timestamp: value.timestamp?,
                    version: value.version?,
                })
            }
        }
        impl ::std::convert::From<super::Health> for Health {
            fn from(value: super::Health) -> Self {
                Self {
                    services: Ok(value.services),
                    status: Ok(value.status),
                    timestamp: Ok(value.timestamp),
                    version: Ok(value.version),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct Identity {
            admin: ::std::result::Result<bool, ::std::string::String>,
            email: ::std::result::Result<::std::string::String, ::std::string::String>,
            exp: ::std::result::Result<u64, ::std::string::String>,
            key_id: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            scopes: ::std::result::Result<
                ::std::vec::Vec<super::Scope>,
                ::std::string::String,
            >,
            sub: ::std::result::Result<::std::string::String, ::std::string::String>,
        }
        impl ::std::default::Default for Identity {
            fn default() -> Self {
                Self {
                    admin: Err("no value supplied for admin".to_string()),
                    email: Err("no value supplied for email".to_string()),
                    exp: Err("no value supplied for exp".to_string()),
                    key_id: Ok(Default::default()),
                    scopes: Err("no value supplied for scopes".to_string()),
                    sub: Err("no value supplied for sub".to_string()),
                }
            }
        }
        impl Identity {
            pub fn admin<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<bool>,
                T::Error: ::std::fmt::Display,
            {
                self.admin = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for admin: {e}")
                    });
                self
            }
            pub fn email<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.email = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for email: {e}")
                    });
                self
            }
            pub fn exp<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.exp = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for exp: {e}")
                    });
                self
            }
            pub fn key_id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.key_id = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for key_id: {e}")
                    });
                self
            }
            pub fn scopes<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::vec::Vec<super::Scope>>,
                T::Error: ::std::fmt::Display,
            {
                self.scopes = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for scopes: {e}")
                    });
                self
            }
            pub fn sub<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.sub = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for sub: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<Identity> for super::Identity {
            type Error = super::error::ConversionError;
            fn try_from(
                value: Identity,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    admin: value.admin?,
                    email: value.email?,
                    exp: value.exp?,
                    key_id: value.key_id?,
                    scopes: value.scopes?,
                    sub: value.sub?,
                })
            }
        }
        impl ::std::convert::From<super::Identity> for Identity {
            fn from(value: super::Identity) -> Self {
                Self {
                    admin: Ok(value.admin),
                    email: Ok(value.email),
                    exp: Ok(value.exp),
                    key_id: Ok(value.key_id),
                    scopes: Ok(value.scopes),
                    sub: Ok(value.sub),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct ImportRequest {
            callback_url: ::std::result::Result<
                ::std::option::Option<super::ImportRequestCallbackUrl>,
                ::std::string::String,
            >,
            export_key: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            export_to: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            export_url: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            from: ::std::result::Result<
                ::std::option::Option<super::BucketObjects>,
                ::std::string::String,
            >,
            options: ::std::result::Result<
                ::serde_json::Map<::std::string::String, ::serde_json::Value>,
                ::std::string::String,
            >,
            urls: ::std::result::Result<
                ::std::vec::Vec<::std::string::String>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for ImportRequest {
            fn default() -> Self {
                Self {
                    callback_url: Ok(Default::default()),
                    export_key: Ok(Default::default()),
                    export_to: Ok(Default::default()),
                    export_url: Ok(Default::default()),
                    from: Ok(Default::default()),
                    options: Ok(Default::default()),
                    urls: Ok(Default::default()),
                }
            }
        }
        impl ImportRequest {
            pub fn callback_url<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<
                    ::std::option::Option<super::ImportRequestCallbackUrl>,
                >,
                T::Error: ::std::fmt::Display,
            {
                self.callback_url = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for callback_url: {e}")
                    });
                self
            }
            pub fn export_key<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.export_key = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for export_key: {e}")
                    });
                self
            }
            pub fn export_to<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.export_to = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for export_to: {e}")
                    });
                self
            }
            pub fn export_url<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.export_url = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for export_url: {e}")
                    });
                self
            }
            pub fn from<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<super::BucketObjects>>,
                T::Error: ::std::fmt::Display,
            {
                self.from = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for from: {e}")
                    });
                self
            }
            pub fn options<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<
                    ::serde_json::Map<::std::string::String, ::serde_json::Value>,
                >,
                T::Error: ::std::fmt::Display,
            {
                self.options = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for options: {e}")
                    });
                self
            }
            pub fn urls<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::vec::Vec<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.urls = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for urls: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<ImportRequest> for super::ImportRequest {
            type Error = super::error::ConversionError;
            fn try_from(
                value: ImportRequest,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    callback_url: value.callback_url?,
                    export_key: value.export_key?,
                    export_to: value.export_to?,
                    export_url: value.export_url?,
                    from: value.from?,
                    options: value.options?,
                    urls: value.urls?,
                })
            }
        }
        impl ::std::convert::From<super::ImportRequest> for ImportRequest {
            fn from(value: super::ImportRequest) -> Self {
                Self {
                    callback_url: Ok(value.callback_url),
                    export_key: Ok(value.export_key),
                    export_to: Ok(value.export_to),
                    export_url: Ok(value.export_url),
                    from: Ok(value.from),
                    options: Ok(value.options),
                    urls: Ok(value.urls),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct Invite {
            admin: ::std::result::Result<bool, ::std::string::String>,
            email: ::std::result::Result<super::InviteEmail, ::std::string::String>,
        }
        impl ::std::default::Default for Invite {
            fn default() -> Self {
                Self {
                    admin: Ok(Default::default()),
                    email: Err("no value supplied for email".to_string()),
                }
            }
        }
        impl Invite {
            pub fn admin<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<bool>,
                T::Error: ::std::fmt::Display,
            {
                self.admin = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for admin: {e}")
                    });
                self
            }
            pub fn email<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::InviteEmail>,
                T::Error: ::std::fmt::Display,
            {
                self.email = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for email: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<Invite> for super::Invite {
            type Error = super::error::ConversionError;
            fn try_from(
                value: Invite,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    admin: value.admin?,
                    email: value.email?,
                })
            }
        }
        impl ::std::convert::From<super::Invite> for Invite {
            fn from(value: super::Invite) -> Self {
                Self {
                    admin: Ok(value.admin),
                    email: Ok(value.email),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct Invited {
            message: ::std::result::Result<::std::string::String, ::std::string::String>,
        }
        impl ::std::default::Default for Invited {
            fn default() -> Self {
                Self {
                    message: Err("no value supplied for message".to_string()),
                }
            }
        }
        impl Invited {
            pub fn message<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.message = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for message: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<Invited> for super::Invited {
            type Error = super::error::ConversionError;
            fn try_from(
                value: Invited,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self { message: value.message? })
            }
        }
        impl ::std::convert::From<super::Invited> for Invited {
            fn from(value: super::Invited) -> Self {
                Self { message: Ok(value.message) }
            }
        }
        #[derive(Clone, Debug)]
        pub struct JobEvent {
            attempt: ::std::result::Result<u32, ::std::string::String>,
            download_url: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            error: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            eta_seconds: ::std::result::Result<
                ::std::option::Option<u64>,
                ::std::string::String,
            >,
            job_id: ::std::result::Result<::uuid::Uuid, ::std::string::String>,
            progress: ::std::result::Result<u8, ::std::string::String>,
            status: ::std::result::Result<super::JobState, ::std::string::String>,
            step: ::std::result::Result<
                ::std::option::Option<super::JobStep>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for JobEvent {
            fn default() -> Self {
                Self {
                    attempt: Err("no value supplied for attempt".to_string()),
                    download_url: Ok(Default::default()),
                    error: Ok(Default::default()),
                    eta_seconds: Ok(Default::default()),
                    job_id: Err("no value supplied for job_id".to_string()),
                    progress: Err("no value supplied for progress".to_string()),
                    status: Err("no value supplied for status".to_string()),
                    step: Ok(Default::default()),
                }
            }
        }
        impl JobEvent {
            pub fn attempt<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u32>,
                T::Error: ::std::fmt::Display,
            {
                self.attempt = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for attempt: {e}")
                    });
                self
            }
            pub fn download_url<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.download_url = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for download_url: {e}")
                    });
                self
            }
            pub fn error<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.error = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for error: {e}")
                    });
                self
            }
            pub fn eta_seconds<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<u64>>,
                T::Error: ::std::fmt::Display,
            {
                self.eta_seconds = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for eta_seconds: {e}")
                    });
                self
            }
            pub fn job_id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::uuid::Uuid>,
                T::Error: ::std::fmt::Display,
            {
                self.job_id = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for job_id: {e}")
                    });
                self
            }
            pub fn progress<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u8>,
                T::Error: ::std::fmt::Display,
            {
                self.progress = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for progress: {e}")
                    });
                self
            }
            pub fn status<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::JobState>,
                T::Error: ::std::fmt::Display,
            {
                self.status = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for status: {e}")
                    });
                self
            }
            pub fn step<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<super::JobStep>>,
                T::Error: ::std::fmt::Display,
            {
                self.step = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for step: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<JobEvent> for super::JobEvent {
            type Error = super::error::ConversionError;
            fn try_from(
                value: JobEvent,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    attempt: value.attempt?,
                    download_url: value.download_url?,
                    error: value.error?,
                    eta_seconds: value.eta_seconds?,
                    job_id: value.job_id?,
                    progress: value.progress?,
                    status: value.status?,
                    step: value.step?,
                })
            }
        }
        impl ::std::convert::From<super::JobEvent> for JobEvent {
            fn from(value: super::JobEvent) -> Self {
                Self {
                    attempt: Ok(value.attempt),
                    download_url: Ok(value.download_url),
                    error: Ok(value.error),
                    eta_seconds: Ok(value.eta_seconds),
                    job_id: Ok(value.job_id),
                    progress: Ok(value.progress),
                    status: Ok(value.status),
                    step: Ok(value.step),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct JobPage {
            jobs: ::std::result::Result<
                ::std::vec::Vec<super::JobSummary>,
                ::std::string::String,
            >,
            next_cursor: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for JobPage {
            fn default() -> Self {
                Self {
                    jobs: Err("no value supplied for jobs".to_string()),
                    next_cursor: Ok(Default::default()),
                }
            }
        }
        impl JobPage {
            pub fn jobs<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::vec::Vec<super::JobSummary>>,
                T::Error: ::std::fmt::Display,
            {
                self.jobs = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for jobs: {e}")
                    });
                self
            }
            pub fn next_cursor<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.next_cursor = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for next_cursor: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<JobPage> for super::JobPage {
            type Error = super::error::ConversionError;
            fn try_from(
                value: JobPage,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    jobs: value.jobs?,
                    next_cursor: value.next_cursor?,
                })
            }
        }
        impl ::std::convert::From<super::JobPage> for JobPage {
            fn from(value: super::JobPage) -> Self {
                Self {
                    jobs: Ok(value.jobs),
                    next_cursor: Ok(value.next_cursor),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct JobStatusBody {
            attempt: ::std::result::Result<u32, ::std::string::String>,
            audio_seconds: ::std::result::Result<
                ::std::option::Option<f64>,
                ::std::string::String,
            >,
            audio_tracks: ::std::result::Result<
                ::std::vec::Vec<super::AudioTrackView>,
                ::std::string::String,
            >,
            completed_at: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            created_at: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            download: ::std::result::Result<
                ::std::option::Option<super::DownloadLink>,
                ::std::string::String,
            >,
            error: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            expired: ::std::result::Result<bool, ::std::string::String>,
            expires_at: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            failure_type: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            filename: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            job_id: ::std::result::Result<::uuid::Uuid, ::std::string::String>,
            mp3_bytes: ::std::result::Result<
                ::std::option::Option<u64>,
                ::std::string::String,
            >,
            options: ::std::result::Result<super::OutputChoices, ::std::string::String>,
            progress: ::std::result::Result<u8, ::std::string::String>,
            status: ::std::result::Result<super::JobState, ::std::string::String>,
            step: ::std::result::Result<
                ::std::option::Option<super::JobStep>,
                ::std::string::String,
            >,
            stream_copy: ::std::result::Result<
                ::std::option::Option<bool>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for JobStatusBody {
            fn default() -> Self {
                Self {
                    attempt: Err("no value supplied for attempt".to_string()),
                    audio_seconds: Ok(Default::default()),
                    audio_tracks: Ok(Default::default()),
                    completed_at: Ok(Default::default()),
                    created_at: Err("no value supplied for created_at".to_string()),
                    download: Ok(Default::default()),
                    error: Ok(Default::default()),
                    expired: Err("no value supplied for expired".to_string()),
                    expires_at: Ok(Default::default()),
                    failure_type: Ok(Default::default()),
                    filename: Err("no value supplied for filename".to_string()),
                    job_id: Err("no value supplied for job_id".to_string()),
                    mp3_bytes: Ok(Default::default()),
                    options: Err("no value supplied for options".to_string()),
                    progress: Err("no value supplied for progress".to_string()),
                    status: Err("no value supplied for status".to_string()),
                    step: Ok(Default::default()),
                    stream_copy: Ok(Default::default()),
                }
            }
        }
        impl JobStatusBody {
            pub fn attempt<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u32>,
                T::Error: ::std::fmt::Display,
            {
                self.attempt = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for attempt: {e}")
                    });
                self
            }
            pub fn audio_seconds<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<f64>>,
                T::Error: ::std::fmt::Display,
            {
                self.audio_seconds = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for audio_seconds: {e}")
                    });
                self
            }
            pub fn audio_tracks<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::vec::Vec<super::AudioTrackView>>,
                T::Error: ::std::fmt::Display,
            {
                self.audio_tracks = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for audio_tracks: {e}")
                    });
                self
            }
            pub fn completed_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.completed_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for completed_at: {e}")
                    });
                self
            }
            pub fn created_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.created_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for created_at: {e}")
                    });
                self
            }
            pub fn download<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<super::DownloadLink>>,
                T::Error: ::std::fmt::Display,
            {
                self.download = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for download: {e}")
                    });
                self
            }
            pub fn error<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.error = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for error: {e}")
                    });
                self
            }
            pub fn expired<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<bool>,
                T::Error: ::std::fmt::Display,
            {
                self.expired = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for expired: {e}")
                    });
                self
            }
            pub fn expires_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.expires_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for expires_at: {e}")
                    });
                self
            }
            pub fn failure_type<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.failure_type = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for failure_type: {e}")
                    });
                self
            }
            pub fn filename<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.filename = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for filename: {e}")
                    });
                self
            }
            pub fn job_id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::uuid::Uuid>,
                T::Error: ::std::fmt::Display,
            {
                self.job_id = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for job_id: {e}")
                    });
                self
            }
            pub fn mp3_bytes<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<u64>>,
                T::Error: ::std::fmt::Display,
            {
                self.mp3_bytes = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for mp3_bytes: {e}")
                    });
                self
            }
            pub fn options<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::OutputChoices>,
                T::Error: ::std::fmt::Display,
            {
                self.options = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for options: {e}")
                    });
                self
            }
            pub fn progress<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u8>,
                T::Error: ::std::fmt::Display,
            {
                self.progress = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for progress: {e}")
                    });
                self
            }
            pub fn status<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::JobState>,
                T::Error: ::std::fmt::Display,
            {
                self.status = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for status: {e}")
                    });
                self
            }
            pub fn step<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<super::JobStep>>,
                T::Error: ::std::fmt::Display,
            {
                self.step = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for step: {e}")
                    });
                self
            }
            pub fn stream_copy<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<bool>>,
                T::Error: ::std::fmt::Display,
            {
                self.stream_copy = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for stream_copy: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<JobStatusBody> for super::JobStatusBody {
            type Error = super::error::ConversionError;
            fn try_from(
                value: JobStatusBody,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    attempt: value.attempt?,
                    audio_seconds: value.audio_seconds?,
                    audio_tracks: value.audio_tracks?,
                    completed_at: value.completed_at?,
                    created_at: value.created_at?,
                    download: value.download?,
                    error: value.error?,
                    expired: value.expired?,
                    expires_at: value.expires_at?,
                    failure_type: value.failure_type?,
                    filename: value.filename?,
                    job_id: value.job_id?,
                    mp3_bytes: value.mp3_bytes?,
                    options: value.options?,
                    progress: value.progress?,
                    status: value.status?,
                    step: value.step?,
                    stream_copy: value.stream_copy?,
                })
            }
        }
        impl ::std::convert::From<super::JobStatusBody> for JobStatusBody {
            fn from(value: super::JobStatusBody) -> Self {
                Self {
                    attempt: Ok(value.attempt),
                    audio_seconds: Ok(value.audio_seconds),
                    audio_tracks: Ok(value.audio_tracks),
                    completed_at: Ok(value.completed_at),
                    created_at: Ok(value.created_at),
                    download: Ok(value.download),
                    error: Ok(value.error),
                    expired: Ok(value.expired),
                    expires_at: Ok(value.expires_at),
                    failure_type: Ok(value.failure_type),
                    filename: Ok(value.filename),
                    job_id: Ok(value.job_id),
                    mp3_bytes: Ok(value.mp3_bytes),
                    options: Ok(value.options),
                    progress: Ok(value.progress),
                    status: Ok(value.status),
                    step: Ok(value.step),
                    stream_copy: Ok(value.stream_copy),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct JobSummary {
            audio_seconds: ::std::result::Result<
                ::std::option::Option<f64>,
                ::std::string::String,
            >,
            batch_id: ::std::result::Result<
                ::std::option::Option<::uuid::Uuid>,
                ::std::string::String,
            >,
            completed_at: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            created_at: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            failure_type: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            filename: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            format: ::std::result::Result<
                ::std::option::Option<super::FormatName>,
                ::std::string::String,
            >,
            job_id: ::std::result::Result<::uuid::Uuid, ::std::string::String>,
            mp3_bytes: ::std::result::Result<
                ::std::option::Option<u64>,
                ::std::string::String,
            >,
            size_bytes: ::std::result::Result<u64, ::std::string::String>,
            status: ::std::result::Result<super::JobState, ::std::string::String>,
        }
        impl ::std::default::Default for JobSummary {
            fn default() -> Self {
                Self {
                    audio_seconds: Ok(Default::default()),
                    batch_id: Ok(Default::default()),
                    completed_at: Ok(Default::default()),
                    created_at: Err("no value supplied for created_at".to_string()),
                    failure_type: Ok(Default::default()),
                    filename: Err("no value supplied for filename".to_string()),
                    format: Ok(Default::default()),
                    job_id: Err("no value supplied for job_id".to_string()),
                    mp3_bytes: Ok(Default::default()),
                    size_bytes: Err("no value supplied for size_bytes".to_string()),
                    status: Err("no value supplied for status".to_string()),
                }
            }
        }
        impl JobSummary {
            pub fn audio_seconds<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<f64>>,
                T::Error: ::std::fmt::Display,
            {
                self.audio_seconds = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for audio_seconds: {e}")
                    });
                self
            }
            pub fn batch_id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::uuid::Uuid>>,
                T::Error: ::std::fmt::Display,
            {
                self.batch_id = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for batch_id: {e}")
                    });
                self
            }
            pub fn completed_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.completed_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for completed_at: {e}")
                    });
                self
            }
            pub fn created_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.created_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for created_at: {e}")
                    });
                self
            }
            pub fn failure_type<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.failure_type = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for failure_type: {e}")
                    });
                self
            }
            pub fn filename<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.filename = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for filename: {e}")
                    });
                self
            }
            pub fn format<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<super::FormatName>>,
                T::Error: ::std::fmt::Display,
            {
                self.format = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for format: {e}")
                    });
                self
            }
            pub fn job_id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::uuid::Uuid>,
                T::Error: ::std::fmt::Display,
            {
                self.job_id = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for job_id: {e}")
                    });
                self
            }
            pub fn mp3_bytes<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<u64>>,
                T::Error: ::std::fmt::Display,
            {
                self.mp3_bytes = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for mp3_bytes: {e}")
                    });
                self
            }
            pub fn size_bytes<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.size_bytes = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for size_bytes: {e}")
                    });
                self
            }
            pub fn status<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::JobState>,
                T::Error: ::std::fmt::Display,
            {
                self.status = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for status: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<JobSummary> for super::JobSummary {
            type Error = super::error::ConversionError;
            fn try_from(
                value: JobSummary,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    audio_seconds: value.audio_seconds?,
                    batch_id: value.batch_id?,
                    completed_at: value.completed_at?,
                    created_at: value.created_at?,
                    failure_type: value.failure_type?,
                    filename: value.filename?,
                    format: value.format?,
                    job_id: value.job_id?,
                    mp3_bytes: value.mp3_bytes?,
                    size_bytes: value.size_bytes?,
                    status: value.status?,
                })
            }
        }
        impl ::std::convert::From<super::JobSummary> for JobSummary {
            fn from(value: super::JobSummary) -> Self {
                Self {
                    audio_seconds: Ok(value.audio_seconds),
                    batch_id: Ok(value.batch_id),
                    completed_at: Ok(value.completed_at),
                    created_at: Ok(value.created_at),
                    failure_type: Ok(value.failure_type),
                    filename: Ok(value.filename),
                    format: Ok(value.format),
                    job_id: Ok(value.job_id),
                    mp3_bytes: Ok(value.mp3_bytes),
                    size_bytes: Ok(value.size_bytes),
                    status: Ok(value.status),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct Join {
            email: ::std::result::Result<
                ::std::option::Option<super::JoinEmail>,
                ::std::string::String,
            >,
            password: ::std::result::Result<super::JoinPassword, ::std::string::String>,
            token: ::std::result::Result<
                ::std::option::Option<super::JoinToken>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for Join {
            fn default() -> Self {
                Self {
                    email: Ok(Default::default()),
                    password: Err("no value supplied for password".to_string()),
                    token: Ok(Default::default()),
                }
            }
        }
        impl Join {
            pub fn email<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<super::JoinEmail>>,
                T::Error: ::std::fmt::Display,
            {
                self.email = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for email: {e}")
                    });
                self
            }
            pub fn password<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::JoinPassword>,
                T::Error: ::std::fmt::Display,
            {
                self.password = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for password: {e}")
                    });
                self
            }
            pub fn token<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<super::JoinToken>>,
                T::Error: ::std::fmt::Display,
            {
                self.token = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for token: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<Join> for super::Join {
            type Error = super::error::ConversionError;
            fn try_from(
                value: Join,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    email: value.email?,
                    password: value.password?,
                    token: value.token?,
                })
            }
        }
        impl ::std::convert::From<super::Join> for Join {
            fn from(value: super::Join) -> Self {
                Self {
                    email: Ok(value.email),
                    password: Ok(value.password),
                    token: Ok(value.token),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct Joined {
            email: ::std::result::Result<::std::string::String, ::std::string::String>,
            id: ::std::result::Result<::std::string::String, ::std::string::String>,
        }
        impl ::std::default::Default for Joined {
            fn default() -> Self {
                Self {
                    email: Err("no value supplied for email".to_string()),
                    id: Err("no value supplied for id".to_string()),
                }
            }
        }
        impl Joined {
            pub fn email<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.email = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for email: {e}")
                    });
                self
            }
            pub fn id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.id = value
                    .try_into()
                    .map_err(|e| format!("error converting supplied value for id: {e}"));
                self
            }
        }
        impl ::std::convert::TryFrom<Joined> for super::Joined {
            type Error = super::error::ConversionError;
            fn try_from(
                value: Joined,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    email: value.email?,
                    id: value.id?,
                })
            }
        }
        impl ::std::convert::From<super::Joined> for Joined {
            fn from(value: super::Joined) -> Self {
                Self {
                    email: Ok(value.email),
                    id: Ok(value.id),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct KeyInfo {
            created_at: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            expired: ::std::result::Result<bool, ::std::string::String>,
            expires_at: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            id: ::std::result::Result<::std::string::String, ::std::string::String>,
            last_used_at: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            name: ::std::result::Result<::std::string::String, ::std::string::String>,
            prefix: ::std::result::Result<::std::string::String, ::std::string::String>,
            scopes: ::std::result::Result<
                ::std::vec::Vec<super::Scope>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for KeyInfo {
            fn default() -> Self {
                Self {
                    created_at: Err("no value supplied for created_at".to_string()),
                    expired: Err("no value supplied for expired".to_string()),
                    expires_at: Ok(Default::default()),
                    id: Err("no value supplied for id".to_string()),
                    last_used_at: Ok(Default::default()),
                    name: Err("no value supplied for name".to_string()),
                    prefix: Err("no value supplied for prefix".to_string()),
                    scopes: Err("no value supplied for scopes".to_string()),
                }
            }
        }
        impl KeyInfo {
            pub fn created_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.created_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for created_at: {e}")
                    });
                self
            }
            pub fn expired<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<bool>,
                T::Error: ::std::fmt::Display,
            {
                self.expired = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for expired: {e}")
                    });
                self
            }
            pub fn expires_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.expires_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for expires_at: {e}")
                    });
                self
            }
            pub fn id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.id = value
                    .try_into()
                    .map_err(|e| format!("error converting supplied value for id: {e}"));
                self
            }
            pub fn last_used_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.last_used_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for last_used_at: {e}")
                    });
                self
            }
            pub fn name<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.name = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for name: {e}")
                    });
                self
            }
            pub fn prefix<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.prefix = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for prefix: {e}")
                    });
                self
            }
            pub fn scopes<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::vec::Vec<super::Scope>>,
                T::Error: ::std::fmt::Display,
            {
                self.scopes = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for scopes: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<KeyInfo> for super::KeyInfo {
            type Error = super::error::ConversionError;
            fn try_from(
                value: KeyInfo,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    created_at: value.created_at?,
                    expired: value.expired?,
                    expires_at: value.expires_at?,
                    id: value.id?,
                    last_used_at: value.last_used_at?,
                    name: value.name?,
                    prefix: value.prefix?,
                    scopes: value.scopes?,
                })
            }
        }
        impl ::std::convert::From<super::KeyInfo> for KeyInfo {
            fn from(value: super::KeyInfo) -> Self {
                Self {
                    created_at: Ok(value.created_at),
                    expired: Ok(value.expired),
                    expires_at: Ok(value.expires_at),
                    id: Ok(value.id),
                    last_used_at: Ok(value.last_used_at),
                    name: Ok(value.name),
                    prefix: Ok(value.prefix),
                    scopes: Ok(value.scopes),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct KeyList {
            keys: ::std::result::Result<
                ::std::vec::Vec<super::KeyInfo>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for KeyList {
            fn default() -> Self {
                Self {
                    keys: Err("no value supplied for keys".to_string()),
                }
            }
        }
        impl KeyList {
            pub fn keys<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::vec::Vec<super::KeyInfo>>,
                T::Error: ::std::fmt::Display,
            {
                self.keys = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for keys: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<KeyList> for super::KeyList {
            type Error = super::error::ConversionError;
            fn try_from(
                value: KeyList,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self { keys: value.keys? })
            }
        }
        impl ::std::convert::From<super::KeyList> for KeyList {
            fn from(value: super::KeyList) -> Self {
                Self { keys: Ok(value.keys) }
            }
        }
        #[derive(Clone, Debug)]
        pub struct Liveness {
            status: ::std::result::Result<::std::string::String, ::std::string::String>,
        }
        impl ::std::default::Default for Liveness {
            fn default() -> Self {
                Self {
                    status: Err("no value supplied for status".to_string()),
                }
            }
        }
        impl Liveness {
            pub fn status<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.status = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for status: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<Liveness> for super::Liveness {
            type Error = super::error::ConversionError;
            fn try_from(
                value: Liveness,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self { status: value.status? })
            }
        }
        impl ::std::convert::From<super::Liveness> for Liveness {
            fn from(value: super::Liveness) -> Self {
                Self { status: Ok(value.status) }
            }
        }
        #[derive(Clone, Debug)]
        pub struct LoudnessTarget {
            integrated: ::std::result::Result<f64, ::std::string::String>,
            range: ::std::result::Result<f64, ::std::string::String>,
            true_peak: ::std::result::Result<f64, ::std::string::String>,
        }
        impl ::std::default::Default for LoudnessTarget {
            fn default() -> Self {
                Self {
                    integrated: Err("no value supplied for integrated".to_string()),
                    range: Err("no value supplied for range".to_string()),
                    true_peak: Err("no value supplied for true_peak".to_string()),
                }
            }
        }
        impl LoudnessTarget {
            pub fn integrated<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<f64>,
                T::Error: ::std::fmt::Display,
            {
                self.integrated = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for integrated: {e}")
                    });
                self
            }
            pub fn range<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<f64>,
                T::Error: ::std::fmt::Display,
            {
                self.range = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for range: {e}")
                    });
                self
            }
            pub fn true_peak<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<f64>,
                T::Error: ::std::fmt::Display,
            {
                self.true_peak = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for true_peak: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<LoudnessTarget> for super::LoudnessTarget {
            type Error = super::error::ConversionError;
            fn try_from(
                value: LoudnessTarget,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    integrated: value.integrated?,
                    range: value.range?,
                    true_peak: value.true_peak?,
                })
            }
        }
        impl ::std::convert::From<super::LoudnessTarget> for LoudnessTarget {
            fn from(value: super::LoudnessTarget) -> Self {
                Self {
                    integrated: Ok(value.integrated),
                    range: Ok(value.range),
                    true_peak: Ok(value.true_peak),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct ManagedAccount {
            active: ::std::result::Result<bool, ::std::string::String>,
            admin: ::std::result::Result<bool, ::std::string::String>,
            email: ::std::result::Result<::std::string::String, ::std::string::String>,
            id: ::std::result::Result<::std::string::String, ::std::string::String>,
            limits: ::std::result::Result<super::OwnLimits, ::std::string::String>,
            sign_on_link: ::std::result::Result<bool, ::std::string::String>,
            single_sign_on: ::std::result::Result<bool, ::std::string::String>,
            usage: ::std::result::Result<super::Used, ::std::string::String>,
        }
        impl ::std::default::Default for ManagedAccount {
            fn default() -> Self {
                Self {
                    active: Err("no value supplied for active".to_string()),
                    admin: Err("no value supplied for admin".to_string()),
                    email: Err("no value supplied for email".to_string()),
                    id: Err("no value supplied for id".to_string()),
                    limits: Err("no value supplied for limits".to_string()),
                    sign_on_link: Err("no value supplied for sign_on_link".to_string()),
                    single_sign_on: Err(
                        "no value supplied for single_sign_on".to_string(),
                    ),
                    usage: Err("no value supplied for usage".to_string()),
                }
            }
        }
        impl ManagedAccount {
            pub fn active<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<bool>,
                T::Error: ::std::fmt::Display,
            {
                self.active = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for active: {e}")
                    });
                self
            }
            pub fn admin<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<bool>,
                T::Error: ::std::fmt::Display,
            {
                self.admin = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for admin: {e}")
                    });
                self
            }
            pub fn email<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.email = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for email: {e}")
                    });
                self
            }
            pub fn id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.id = value
                    .try_into()
                    .map_err(|e| format!("error converting supplied value for id: {e}"));
                self
            }
            pub fn limits<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::OwnLimits>,
                T::Error: ::std::fmt::Display,
            {
                self.limits = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for limits: {e}")
                    });
                self
            }
            pub fn sign_on_link<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<bool>,
                T::Error: ::std::fmt::Display,
            {
                self.sign_on_link = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for sign_on_link: {e}")
                    });
                self
            }
            pub fn single_sign_on<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<bool>,
                T::Error: ::std::fmt::Display,
            {
                self.single_sign_on = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for single_sign_on: {e}"
                        )
                    });
                self
            }
            pub fn usage<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::Used>,
                T::Error: ::std::fmt::Display,
            {
                self.usage = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for usage: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<ManagedAccount> for super::ManagedAccount {
            type Error = super::error::ConversionError;
            fn try_from(
                value: ManagedAccount,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    active: value.active?,
                    admin: value.admin?,
                    email: value.email?,
                    id: value.id?,
                    limits: value.limits?,
                    sign_on_link: value.sign_on_link?,
                    single_sign_on: value.single_sign_on?,
                    usage: value.usage?,
                })
            }
        }
        impl ::std::convert::From<super::ManagedAccount> for ManagedAccount {
            fn from(value: super::ManagedAccount) -> Self {
                Self {
                    active: Ok(value.active),
                    admin: Ok(value.admin),
                    email: Ok(value.email),
                    id: Ok(value.id),
                    limits: Ok(value.limits),
                    sign_on_link: Ok(value.sign_on_link),
                    single_sign_on: Ok(value.single_sign_on),
                    usage: Ok(value.usage),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct ManagedAccountPage {
            next_after: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            users: ::std::result::Result<
                ::std::vec::Vec<super::ManagedAccount>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for ManagedAccountPage {
            fn default() -> Self {
                Self {
                    next_after: Ok(Default::default()),
                    users: Err("no value supplied for users".to_string()),
                }
            }
        }
        impl ManagedAccountPage {
            pub fn next_after<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.next_after = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for next_after: {e}")
                    });
                self
            }
            pub fn users<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::vec::Vec<super::ManagedAccount>>,
                T::Error: ::std::fmt::Display,
            {
                self.users = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for users: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<ManagedAccountPage> for super::ManagedAccountPage {
            type Error = super::error::ConversionError;
            fn try_from(
                value: ManagedAccountPage,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    next_after: value.next_after?,
                    users: value.users?,
                })
            }
        }
        impl ::std::convert::From<super::ManagedAccountPage> for ManagedAccountPage {
            fn from(value: super::ManagedAccountPage) -> Self {
                Self {
                    next_after: Ok(value.next_after),
                    users: Ok(value.users),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct NewAccount {
            admin: ::std::result::Result<bool, ::std::string::String>,
            email: ::std::result::Result<super::NewAccountEmail, ::std::string::String>,
            password: ::std::result::Result<
                super::NewAccountPassword,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for NewAccount {
            fn default() -> Self {
                Self {
                    admin: Ok(Default::default()),
                    email: Err("no value supplied for email".to_string()),
                    password: Err("no value supplied for password".to_string()),
                }
            }
        }
        impl NewAccount {
            pub fn admin<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<bool>,
                T::Error: ::std::fmt::Display,
            {
                self.admin = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for admin: {e}")
                    });
                self
            }
            pub fn email<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::NewAccountEmail>,
                T::Error: ::std::fmt::Display,
            {
                self.email = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for email: {e}")
                    });
                self
            }
            pub fn password<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::NewAccountPassword>,
                T::Error: ::std::fmt::Display,
            {
                self.password = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for password: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<NewAccount> for super::NewAccount {
            type Error = super::error::ConversionError;
            fn try_from(
                value: NewAccount,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    admin: value.admin?,
                    email: value.email?,
                    password: value.password?,
                })
            }
        }
        impl ::std::convert::From<super::NewAccount> for NewAccount {
            fn from(value: super::NewAccount) -> Self {
                Self {
                    admin: Ok(value.admin),
                    email: Ok(value.email),
                    password: Ok(value.password),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct NewConnectionBody {
            access_key_id: ::std::result::Result<
                super::NewConnectionBodyAccessKeyId,
                ::std::string::String,
            >,
            bucket: ::std::result::Result<
                super::NewConnectionBodyBucket,
                ::std::string::String,
            >,
            endpoint: ::std::result::Result<
                ::std::option::Option<super::NewConnectionBodyEndpoint>,
                ::std::string::String,
            >,
            name: ::std::result::Result<
                super::NewConnectionBodyName,
                ::std::string::String,
            >,
            prefix: ::std::result::Result<
                ::std::option::Option<super::NewConnectionBodyPrefix>,
                ::std::string::String,
            >,
            region: ::std::result::Result<
                ::std::option::Option<super::NewConnectionBodyRegion>,
                ::std::string::String,
            >,
            secret_access_key: ::std::result::Result<
                super::NewConnectionBodySecretAccessKey,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for NewConnectionBody {
            fn default() -> Self {
                Self {
                    access_key_id: Err(
                        "no value supplied for access_key_id".to_string(),
                    ),
                    bucket: Err("no value supplied for bucket".to_string()),
                    endpoint: Ok(Default::default()),
                    name: Err("no value supplied for name".to_string()),
                    prefix: Ok(Default::default()),
                    region: Ok(Default::default()),
                    secret_access_key: Err(
                        "no value supplied for secret_access_key".to_string(),
                    ),
                }
            }
        }
        impl NewConnectionBody {
            pub fn access_key_id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::NewConnectionBodyAccessKeyId>,
                T::Error: ::std::fmt::Display,
            {
                self.access_key_id = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for access_key_id: {e}")
                    });
                self
            }
            pub fn bucket<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::NewConnectionBodyBucket>,
                T::Error: ::std::fmt::Display,
            {
                self.bucket = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for bucket: {e}")
                    });
                self
            }
            pub fn endpoint<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<
                    ::std::option::Option<super::NewConnectionBodyEndpoint>,
                >,
                T::Error: ::std::fmt::Display,
            {
                self.endpoint = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for endpoint: {e}")
                    });
                self
            }
            pub fn name<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::NewConnectionBodyName>,
                T::Error: ::std::fmt::Display,
            {
                self.name = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for name: {e}")
                    });
                self
            }
            pub fn prefix<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<
                    ::std::option::Option<super::NewConnectionBodyPrefix>,
                >,
                T::Error: ::std::fmt::Display,
            {
                self.prefix = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for prefix: {e}")
                    });
                self
            }
            pub fn region<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<
                    ::std::option::Option<super::NewConnectionBodyRegion>,
                >,
                T::Error: ::std::fmt::Display,
            {
                self.region = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for region: {e}")
                    });
                self
            }
            pub fn secret_access_key<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::NewConnectionBodySecretAccessKey>,
                T::Error: ::std::fmt::Display,
            {
                self.secret_access_key = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for secret_access_key: {e}"
                        )
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<NewConnectionBody> for super::NewConnectionBody {
            type Error = super::error::ConversionError;
            fn try_from(
                value: NewConnectionBody,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    access_key_id: value.access_key_id?,
                    bucket: value.bucket?,
                    endpoint: value.endpoint?,
                    name: value.name?,
                    prefix: value.prefix?,
                    region: value.region?,
                    secret_access_key: value.secret_access_key?,
                })
            }
        }
        impl ::std::convert::From<super::NewConnectionBody> for NewConnectionBody {
            fn from(value: super::NewConnectionBody) -> Self {
                Self {
                    access_key_id: Ok(value.access_key_id),
                    bucket: Ok(value.bucket),
                    endpoint: Ok(value.endpoint),
                    name: Ok(value.name),
                    prefix: Ok(value.prefix),
                    region: Ok(value.region),
                    secret_access_key: Ok(value.secret_access_key),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct NewKey {
            expires_at: ::std::result::Result<
                ::std::option::Option<::chrono::DateTime<::chrono::offset::Utc>>,
                ::std::string::String,
            >,
            name: ::std::result::Result<super::NewKeyName, ::std::string::String>,
            scopes: ::std::result::Result<
                ::std::vec::Vec<super::Scope>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for NewKey {
            fn default() -> Self {
                Self {
                    expires_at: Ok(Default::default()),
                    name: Err("no value supplied for name".to_string()),
                    scopes: Err("no value supplied for scopes".to_string()),
                }
            }
        }
        impl NewKey {
            pub fn expires_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<
                    ::std::option::Option<::chrono::DateTime<::chrono::offset::Utc>>,
                >,
                T::Error: ::std::fmt::Display,
            {
                self.expires_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for expires_at: {e}")
                    });
                self
            }
            pub fn name<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::NewKeyName>,
                T::Error: ::std::fmt::Display,
            {
                self.name = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for name: {e}")
                    });
                self
            }
            pub fn scopes<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::vec::Vec<super::Scope>>,
                T::Error: ::std::fmt::Display,
            {
                self.scopes = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for scopes: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<NewKey> for super::NewKey {
            type Error = super::error::ConversionError;
            fn try_from(
                value: NewKey,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    expires_at: value.expires_at?,
                    name: value.name?,
                    scopes: value.scopes?,
                })
            }
        }
        impl ::std::convert::From<super::NewKey> for NewKey {
            fn from(value: super::NewKey) -> Self {
                Self {
                    expires_at: Ok(value.expires_at),
                    name: Ok(value.name),
                    scopes: Ok(value.scopes),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct NewUploadToken {
            expires_in_minutes: ::std::result::Result<
                ::std::option::Option<::std::num::NonZeroU32>,
                ::std::string::String,
            >,
            max_file_mb: ::std::result::Result<
                ::std::option::Option<::std::num::NonZeroU64>,
                ::std::string::String,
            >,
            options: ::std::result::Result<
                ::std::option::Option<
                    ::std::collections::HashMap<
                        ::std::string::String,
                        ::std::string::String,
                    >,
                >,
                ::std::string::String,
            >,
            uploads: ::std::result::Result<
                ::std::option::Option<::std::num::NonZeroU32>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for NewUploadToken {
            fn default() -> Self {
                Self {
                    expires_in_minutes: Ok(Default::default()),
                    max_file_mb: Ok(Default::default()),
                    options: Ok(Default::default()),
                    uploads: Ok(Default::default()),
                }
            }
        }
        impl NewUploadToken {
            pub fn expires_in_minutes<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<
                    ::std::option::Option<::std::num::NonZeroU32>,
                >,
                T::Error: ::std::fmt::Display,
            {
                self.expires_in_minutes = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for expires_in_minutes: {e}"
                        )
                    });
                self
            }
            pub fn max_file_mb<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<
                    ::std::option::Option<::std::num::NonZeroU64>,
                >,
                T::Error: ::std::fmt::Display,
            {
                self.max_file_mb = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for max_file_mb: {e}")
                    });
                self
            }
            pub fn options<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<
                    ::std::option::Option<
                        ::std::collections::HashMap<
                            ::std::string::String,
                            ::std::string::String,
                        >,
                    >,
                >,
                T::Error: ::std::fmt::Display,
            {
                self.options = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for options: {e}")
                    });
                self
            }
            pub fn uploads<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<
                    ::std::option::Option<::std::num::NonZeroU32>,
                >,
                T::Error: ::std::fmt::Display,
            {
                self.uploads = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for uploads: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<NewUploadToken> for super::NewUploadToken {
            type Error = super::error::ConversionError;
            fn try_from(
                value: NewUploadToken,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    expires_in_minutes: value.expires_in_minutes?,
                    max_file_mb: value.max_file_mb?,
                    options: value.options?,
                    uploads: value.uploads?,
                })
            }
        }
        impl ::std::convert::From<super::NewUploadToken> for NewUploadToken {
            fn from(value: super::NewUploadToken) -> Self {
                Self {
                    expires_in_minutes: Ok(value.expires_in_minutes),
                    max_file_mb: Ok(value.max_file_mb),
                    options: Ok(value.options),
                    uploads: Ok(value.uploads),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct NewWatchBody {
            connection_id: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            directory: ::std::result::Result<
                ::std::option::Option<super::NewWatchBodyDirectory>,
                ::std::string::String,
            >,
            export_key: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            export_to: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            interval_seconds: ::std::result::Result<
                ::std::option::Option<u32>,
                ::std::string::String,
            >,
            max_running: ::std::result::Result<
                ::std::option::Option<::std::num::NonZeroU32>,
                ::std::string::String,
            >,
            name: ::std::result::Result<super::NewWatchBodyName, ::std::string::String>,
            options: ::std::result::Result<
                ::serde_json::Map<::std::string::String, ::serde_json::Value>,
                ::std::string::String,
            >,
            prefix: ::std::result::Result<
                ::std::option::Option<super::NewWatchBodyPrefix>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for NewWatchBody {
            fn default() -> Self {
                Self {
                    connection_id: Ok(Default::default()),
                    directory: Ok(Default::default()),
                    export_key: Ok(Default::default()),
                    export_to: Ok(Default::default()),
                    interval_seconds: Ok(Default::default()),
                    max_running: Ok(Default::default()),
                    name: Err("no value supplied for name".to_string()),
                    options: Ok(Default::default()),
                    prefix: Ok(Default::default()),
                }
            }
        }
        impl NewWatchBody {
            pub fn connection_id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.connection_id = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for connection_id: {e}")
                    });
                self
            }
            pub fn directory<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<
                    ::std::option::Option<super::NewWatchBodyDirectory>,
                >,
                T::Error: ::std::fmt::Display,
            {
                self.directory = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for directory: {e}")
                    });
                self
            }
            pub fn export_key<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.export_key = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for export_key: {e}")
                    });
                self
            }
            pub fn export_to<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.export_to = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for export_to: {e}")
                    });
                self
            }
            pub fn interval_seconds<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<u32>>,
                T::Error: ::std::fmt::Display,
            {
                self.interval_seconds = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for interval_seconds: {e}"
                        )
                    });
                self
            }
            pub fn max_running<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<
                    ::std::option::Option<::std::num::NonZeroU32>,
                >,
                T::Error: ::std::fmt::Display,
            {
                self.max_running = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for max_running: {e}")
                    });
                self
            }
            pub fn name<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::NewWatchBodyName>,
                T::Error: ::std::fmt::Display,
            {
                self.name = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for name: {e}")
                    });
                self
            }
            pub fn options<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<
                    ::serde_json::Map<::std::string::String, ::serde_json::Value>,
                >,
                T::Error: ::std::fmt::Display,
            {
                self.options = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for options: {e}")
                    });
                self
            }
            pub fn prefix<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<
                    ::std::option::Option<super::NewWatchBodyPrefix>,
                >,
                T::Error: ::std::fmt::Display,
            {
                self.prefix = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for prefix: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<NewWatchBody> for super::NewWatchBody {
            type Error = super::error::ConversionError;
            fn try_from(
                value: NewWatchBody,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    connection_id: value.connection_id?,
                    directory: value.directory?,
                    export_key: value.export_key?,
                    export_to: value.export_to?,
                    interval_seconds: value.interval_seconds?,
                    max_running: value.max_running?,
                    name: value.name?,
                    options: value.options?,
                    prefix: value.prefix?,
                })
            }
        }
        impl ::std::convert::From<super::NewWatchBody> for NewWatchBody {
            fn from(value: super::NewWatchBody) -> Self {
                Self {
                    connection_id: Ok(value.connection_id),
                    directory: Ok(value.directory),
                    export_key: Ok(value.export_key),
                    export_to: Ok(value.export_to),
                    interval_seconds: Ok(value.interval_seconds),
                    max_running: Ok(value.max_running),
                    name: Ok(value.name),
                    options: Ok(value.options),
                    prefix: Ok(value.prefix),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct NewWebhook {
            events: ::std::result::Result<
                ::std::vec::Vec<super::EventName>,
                ::std::string::String,
            >,
            url: ::std::result::Result<super::NewWebhookUrl, ::std::string::String>,
        }
        impl ::std::default::Default for NewWebhook {
            fn default() -> Self {
                Self {
                    events: Err("no value supplied for events".to_string()),
                    url: Err("no value supplied for url".to_string()),
                }
            }
        }
        impl NewWebhook {
            pub fn events<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::vec::Vec<super::EventName>>,
                T::Error: ::std::fmt::Display,
            {
                self.events = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for events: {e}")
                    });
                self
            }
            pub fn url<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::NewWebhookUrl>,
                T::Error: ::std::fmt::Display,
            {
                self.url = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for url: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<NewWebhook> for super::NewWebhook {
            type Error = super::error::ConversionError;
            fn try_from(
                value: NewWebhook,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    events: value.events?,
                    url: value.url?,
                })
            }
        }
        impl ::std::convert::From<super::NewWebhook> for NewWebhook {
            fn from(value: super::NewWebhook) -> Self {
                Self {
                    events: Ok(value.events),
                    url: Ok(value.url),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct OutputChoices {
            audio_track: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            bit_depth: ::std::result::Result<
                ::std::option::Option<u8>,
                ::std::string::String,
            >,
            bitrate: ::std::result::Result<
                ::std::option::Option<u16>,
                ::std::string::String,
            >,
            bitrate_mode: ::std::result::Result<
                ::std::option::Option<super::BitrateModeName>,
                ::std::string::String,
            >,
            channels: ::std::result::Result<
                ::std::option::Option<u8>,
                ::std::string::String,
            >,
            cover: ::std::result::Result<super::CoverName, ::std::string::String>,
            cover_at: ::std::result::Result<
                ::std::option::Option<f64>,
                ::std::string::String,
            >,
            end: ::std::result::Result<
                ::std::option::Option<f64>,
                ::std::string::String,
            >,
            format: ::std::result::Result<
                ::std::option::Option<super::FormatName>,
                ::std::string::String,
            >,
            normalize: ::std::result::Result<
                ::std::option::Option<super::LoudnessTarget>,
                ::std::string::String,
            >,
            preset: ::std::result::Result<
                ::std::option::Option<super::PresetName>,
                ::std::string::String,
            >,
            quality: ::std::result::Result<
                ::std::option::Option<u8>,
                ::std::string::String,
            >,
            reencode: ::std::result::Result<bool, ::std::string::String>,
            sample_rate: ::std::result::Result<
                ::std::option::Option<u32>,
                ::std::string::String,
            >,
            start: ::std::result::Result<
                ::std::option::Option<f64>,
                ::std::string::String,
            >,
            strip: ::std::result::Result<bool, ::std::string::String>,
            tags: ::std::result::Result<
                ::std::collections::HashMap<
                    ::std::string::String,
                    ::std::string::String,
                >,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for OutputChoices {
            fn default() -> Self {
                Self {
                    audio_track: Ok(Default::default()),
                    bit_depth: Ok(Default::default()),
                    bitrate: Ok(Default::default()),
                    bitrate_mode: Ok(Default::default()),
                    channels: Ok(Default::default()),
                    cover: Err("no value supplied for cover".to_string()),
                    cover_at: Ok(Default::default()),
                    end: Ok(Default::default()),
                    format: Ok(Default::default()),
                    normalize: Ok(Default::default()),
                    preset: Ok(Default::default()),
                    quality: Ok(Default::default()),
                    reencode: Ok(Default::default()),
                    sample_rate: Ok(Default::default()),
                    start: Ok(Default::default()),
                    strip: Err("no value supplied for strip".to_string()),
                    tags: Err("no value supplied for tags".to_string()),
                }
            }
        }
        impl OutputChoices {
            pub fn audio_track<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.audio_track = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for audio_track: {e}")
                    });
                self
            }
            pub fn bit_depth<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<u8>>,
                T::Error: ::std::fmt::Display,
            {
                self.bit_depth = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for bit_depth: {e}")
                    });
                self
            }
            pub fn bitrate<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<u16>>,
                T::Error: ::std::fmt::Display,
            {
                self.bitrate = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for bitrate: {e}")
                    });
                self
            }
            pub fn bitrate_mode<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<
                    ::std::option::Option<super::BitrateModeName>,
                >,
                T::Error: ::std::fmt::Display,
            {
                self.bitrate_mode = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for bitrate_mode: {e}")
                    });
                self
            }
            pub fn channels<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<u8>>,
                T::Error: ::std::fmt::Display,
            {
                self.channels = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for channels: {e}")
                    });
                self
            }
            pub fn cover<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::CoverName>,
                T::Error: ::std::fmt::Display,
            {
                self.cover = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for cover: {e}")
                    });
                self
            }
            pub fn cover_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<f64>>,
                T::Error: ::std::fmt::Display,
            {
                self.cover_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for cover_at: {e}")
                    });
                self
            }
            pub fn end<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<f64>>,
                T::Error: ::std::fmt::Display,
            {
                self.end = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for end: {e}")
                    });
                self
            }
            pub fn format<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<super::FormatName>>,
                T::Error: ::std::fmt::Display,
            {
                self.format = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for format: {e}")
                    });
                self
            }
            pub fn normalize<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<super::LoudnessTarget>>,
                T::Error: ::std::fmt::Display,
            {
                self.normalize = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for normalize: {e}")
                    });
                self
            }
            pub fn preset<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<super::PresetName>>,
                T::Error: ::std::fmt::Display,
            {
                self.preset = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for preset: {e}")
                    });
                self
            }
            pub fn quality<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<u8>>,
                T::Error: ::std::fmt::Display,
            {
                self.quality = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for quality: {e}")
                    });
                self
            }
            pub fn reencode<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<bool>,
                T::Error: ::std::fmt::Display,
            {
                self.reencode = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for reencode: {e}")
                    });
                self
            }
            pub fn sample_rate<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<u32>>,
                T::Error: ::std::fmt::Display,
            {
                self.sample_rate = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for sample_rate: {e}")
                    });
                self
            }
            pub fn start<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<f64>>,
                T::Error: ::std::fmt::Display,
            {
                self.start = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for start: {e}")
                    });
                self
            }
            pub fn strip<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<bool>,
                T::Error: ::std::fmt::Display,
            {
                self.strip = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for strip: {e}")
                    });
                self
            }
            pub fn tags<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<
                    ::std::collections::HashMap<
                        ::std::string::String,
                        ::std::string::String,
                    >,
                >,
                T::Error: ::std::fmt::Display,
            {
                self.tags = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for tags: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<OutputChoices> for super::OutputChoices {
            type Error = super::error::ConversionError;
            fn try_from(
                value: OutputChoices,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    audio_track: value.audio_track?,
                    bit_depth: value.bit_depth?,
                    bitrate: value.bitrate?,
                    bitrate_mode: value.bitrate_mode?,
                    channels: value.channels?,
                    cover: value.cover?,
                    cover_at: value.cover_at?,
                    end: value.end?,
                    format: value.format?,
                    normalize: value.normalize?,
                    preset: value.preset?,
                    quality: value.quality?,
                    reencode: value.reencode?,
                    sample_rate: value.sample_rate?,
                    start: value.start?,
                    strip: value.strip?,
                    tags: value.tags?,
                })
            }
        }
        impl ::std::convert::From<super::OutputChoices> for OutputChoices {
            fn from(value: super::OutputChoices) -> Self {
                Self {
                    audio_track: Ok(value.audio_track),
                    bit_depth: Ok(value.bit_depth),
                    bitrate: Ok(value.bitrate),
                    bitrate_mode: Ok(value.bitrate_mode),
                    channels: Ok(value.channels),
                    cover: Ok(value.cover),
                    cover_at: Ok(value.cover_at),
                    end: Ok(value.end),
                    format: Ok(value.format),
                    normalize: Ok(value.normalize),
                    preset: Ok(value.preset),
                    quality: Ok(value.quality),
                    reencode: Ok(value.reencode),
                    sample_rate: Ok(value.sample_rate),
                    start: Ok(value.start),
                    strip: Ok(value.strip),
                    tags: Ok(value.tags),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct OwnLimits {
            jobs_per_day_limit: ::std::result::Result<
                ::std::option::Option<u64>,
                ::std::string::String,
            >,
            storage_limit_mb: ::std::result::Result<
                ::std::option::Option<u64>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for OwnLimits {
            fn default() -> Self {
                Self {
                    jobs_per_day_limit: Ok(Default::default()),
                    storage_limit_mb: Ok(Default::default()),
                }
            }
        }
        impl OwnLimits {
            pub fn jobs_per_day_limit<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<u64>>,
                T::Error: ::std::fmt::Display,
            {
                self.jobs_per_day_limit = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for jobs_per_day_limit: {e}"
                        )
                    });
                self
            }
            pub fn storage_limit_mb<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<u64>>,
                T::Error: ::std::fmt::Display,
            {
                self.storage_limit_mb = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for storage_limit_mb: {e}"
                        )
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<OwnLimits> for super::OwnLimits {
            type Error = super::error::ConversionError;
            fn try_from(
                value: OwnLimits,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    jobs_per_day_limit: value.jobs_per_day_limit?,
                    storage_limit_mb: value.storage_limit_mb?,
                })
            }
        }
        impl ::std::convert::From<super::OwnLimits> for OwnLimits {
            fn from(value: super::OwnLimits) -> Self {
                Self {
                    jobs_per_day_limit: Ok(value.jobs_per_day_limit),
                    storage_limit_mb: Ok(value.storage_limit_mb),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct PasswordChange {
            current_password: ::std::result::Result<
                super::PasswordChangeCurrentPassword,
                ::std::string::String,
            >,
            new_password: ::std::result::Result<
                super::PasswordChangeNewPassword,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for PasswordChange {
            fn default() -> Self {
                Self {
                    current_password: Err(
                        "no value supplied for current_password".to_string(),
                    ),
                    new_password: Err("no value supplied for new_password".to_string()),
                }
            }
        }
        impl PasswordChange {
            pub fn current_password<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::PasswordChangeCurrentPassword>,
                T::Error: ::std::fmt::Display,
            {
                self.current_password = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for current_password: {e}"
                        )
                    });
                self
            }
            pub fn new_password<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::PasswordChangeNewPassword>,
                T::Error: ::std::fmt::Display,
            {
                self.new_password = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for new_password: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<PasswordChange> for super::PasswordChange {
            type Error = super::error::ConversionError;
            fn try_from(
                value: PasswordChange,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    current_password: value.current_password?,
                    new_password: value.new_password?,
                })
            }
        }
        impl ::std::convert::From<super::PasswordChange> for PasswordChange {
            fn from(value: super::PasswordChange) -> Self {
                Self {
                    current_password: Ok(value.current_password),
                    new_password: Ok(value.new_password),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct Readiness {
            failing: ::std::result::Result<
                ::std::vec::Vec<::std::string::String>,
                ::std::string::String,
            >,
            status: ::std::result::Result<::std::string::String, ::std::string::String>,
        }
        impl ::std::default::Default for Readiness {
            fn default() -> Self {
                Self {
                    failing: Err("no value supplied for failing".to_string()),
                    status: Err("no value supplied for status".to_string()),
                }
            }
        }
        impl Readiness {
            pub fn failing<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::vec::Vec<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.failing = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for failing: {e}")
                    });
                self
            }
            pub fn status<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.status = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for status: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<Readiness> for super::Readiness {
            type Error = super::error::ConversionError;
            fn try_from(
                value: Readiness,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    failing: value.failing?,
                    status: value.status?,
                })
            }
        }
        impl ::std::convert::From<super::Readiness> for Readiness {
            fn from(value: super::Readiness) -> Self {
                Self {
                    failing: Ok(value.failing),
                    status: Ok(value.status),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct RefreshRequest {
            refresh_token: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for RefreshRequest {
            fn default() -> Self {
                Self {
                    refresh_token: Err("no value supplied for refresh_token".to_string()),
                }
            }
        }
        impl RefreshRequest {
            pub fn refresh_token<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.refresh_token = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for refresh_token: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<RefreshRequest> for super::RefreshRequest {
            type Error = super::error::ConversionError;
            fn try_from(
                value: RefreshRequest,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    refresh_token: value.refresh_token?,
                })
            }
        }
        impl ::std::convert::From<super::RefreshRequest> for RefreshRequest {
            fn from(value: super::RefreshRequest) -> Self {
                Self {
                    refresh_token: Ok(value.refresh_token),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct RemovedJobs {
            cancelled: ::std::result::Result<u64, ::std::string::String>,
            removed: ::std::result::Result<u64, ::std::string::String>,
        }
        impl ::std::default::Default for RemovedJobs {
            fn default() -> Self {
                Self {
                    cancelled: Err("no value supplied for cancelled".to_string()),
                    removed: Err("no value supplied for removed".to_string()),
                }
            }
        }
        impl RemovedJobs {
            pub fn cancelled<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.cancelled = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for cancelled: {e}")
                    });
                self
            }
            pub fn removed<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.removed = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for removed: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<RemovedJobs> for super::RemovedJobs {
            type Error = super::error::ConversionError;
            fn try_from(
                value: RemovedJobs,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    cancelled: value.cancelled?,
                    removed: value.removed?,
                })
            }
        }
        impl ::std::convert::From<super::RemovedJobs> for RemovedJobs {
            fn from(value: super::RemovedJobs) -> Self {
                Self {
                    cancelled: Ok(value.cancelled),
                    removed: Ok(value.removed),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct ReplayAccepted {
            delivery_id: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            message: ::std::result::Result<::std::string::String, ::std::string::String>,
        }
        impl ::std::default::Default for ReplayAccepted {
            fn default() -> Self {
                Self {
                    delivery_id: Err("no value supplied for delivery_id".to_string()),
                    message: Err("no value supplied for message".to_string()),
                }
            }
        }
        impl ReplayAccepted {
            pub fn delivery_id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.delivery_id = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for delivery_id: {e}")
                    });
                self
            }
            pub fn message<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.message = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for message: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<ReplayAccepted> for super::ReplayAccepted {
            type Error = super::error::ConversionError;
            fn try_from(
                value: ReplayAccepted,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    delivery_id: value.delivery_id?,
                    message: value.message?,
                })
            }
        }
        impl ::std::convert::From<super::ReplayAccepted> for ReplayAccepted {
            fn from(value: super::ReplayAccepted) -> Self {
                Self {
                    delivery_id: Ok(value.delivery_id),
                    message: Ok(value.message),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct ResetPassword {
            new_password: ::std::result::Result<
                super::ResetPasswordNewPassword,
                ::std::string::String,
            >,
            token: ::std::result::Result<
                super::ResetPasswordToken,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for ResetPassword {
            fn default() -> Self {
                Self {
                    new_password: Err("no value supplied for new_password".to_string()),
                    token: Err("no value supplied for token".to_string()),
                }
            }
        }
        impl ResetPassword {
            pub fn new_password<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::ResetPasswordNewPassword>,
                T::Error: ::std::fmt::Display,
            {
                self.new_password = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for new_password: {e}")
                    });
                self
            }
            pub fn token<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::ResetPasswordToken>,
                T::Error: ::std::fmt::Display,
            {
                self.token = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for token: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<ResetPassword> for super::ResetPassword {
            type Error = super::error::ConversionError;
            fn try_from(
                value: ResetPassword,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    new_password: value.new_password?,
                    token: value.token?,
                })
            }
        }
        impl ::std::convert::From<super::ResetPassword> for ResetPassword {
            fn from(value: super::ResetPassword) -> Self {
                Self {
                    new_password: Ok(value.new_password),
                    token: Ok(value.token),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct RotatedSecret {
            previous_secret_expires_at: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            secret: ::std::result::Result<::std::string::String, ::std::string::String>,
        }
        impl ::std::default::Default for RotatedSecret {
            fn default() -> Self {
                Self {
                    previous_secret_expires_at: Err(
                        "no value supplied for previous_secret_expires_at".to_string(),
                    ),
                    secret: Err("no value supplied for secret".to_string()),
                }
            }
        }
        impl RotatedSecret {
            pub fn previous_secret_expires_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.previous_secret_expires_at = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for previous_secret_expires_at: {e}"
                        )
                    });
                self
            }
            pub fn secret<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.secret = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for secret: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<RotatedSecret> for super::RotatedSecret {
            type Error = super::error::ConversionError;
            fn try_from(
                value: RotatedSecret,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    previous_secret_expires_at: value.previous_secret_expires_at?,
                    secret: value.secret?,
                })
            }
        }
        impl ::std::convert::From<super::RotatedSecret> for RotatedSecret {
            fn from(value: super::RotatedSecret) -> Self {
                Self {
                    previous_secret_expires_at: Ok(value.previous_secret_expires_at),
                    secret: Ok(value.secret),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct ServiceCheck {
            detail: ::std::result::Result<::std::string::String, ::std::string::String>,
            latency_ms: ::std::result::Result<u64, ::std::string::String>,
            name: ::std::result::Result<::std::string::String, ::std::string::String>,
            status: ::std::result::Result<super::ServiceState, ::std::string::String>,
        }
        impl ::std::default::Default for ServiceCheck {
            fn default() -> Self {
                Self {
                    detail: Err("no value supplied for detail".to_string()),
                    latency_ms: Err("no value supplied for latency_ms".to_string()),
                    name: Err("no value supplied for name".to_string()),
                    status: Err("no value supplied for status".to_string()),
                }
            }
        }
        impl ServiceCheck {
            pub fn detail<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.detail = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for detail: {e}")
                    });
                self
            }
            pub fn latency_ms<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.latency_ms = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for latency_ms: {e}")
                    });
                self
            }
            pub fn name<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.name = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for name: {e}")
                    });
                self
            }
            pub fn status<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::ServiceState>,
                T::Error: ::std::fmt::Display,
            {
                self.status = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for status: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<ServiceCheck> for super::ServiceCheck {
            type Error = super::error::ConversionError;
            fn try_from(
                value: ServiceCheck,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    detail: value.detail?,
                    latency_ms: value.latency_ms?,
                    name: value.name?,
                    status: value.status?,
                })
            }
        }
        impl ::std::convert::From<super::ServiceCheck> for ServiceCheck {
            fn from(value: super::ServiceCheck) -> Self {
                Self {
                    detail: Ok(value.detail),
                    latency_ms: Ok(value.latency_ms),
                    name: Ok(value.name),
                    status: Ok(value.status),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct Services {
            database: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            smtp: ::std::result::Result<::std::string::String, ::std::string::String>,
            storage: ::std::result::Result<::std::string::String, ::std::string::String>,
            temporal: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for Services {
            fn default() -> Self {
                Self {
                    database: Err("no value supplied for database".to_string()),
                    smtp: Err("no value supplied for smtp".to_string()),
                    storage: Err("no value supplied for storage".to_string()),
                    temporal: Err("no value supplied for temporal".to_string()),
                }
            }
        }
        impl Services {
            pub fn database<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.database = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for database: {e}")
                    });
                self
            }
            pub fn smtp<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.smtp = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for smtp: {e}")
                    });
                self
            }
            pub fn storage<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.storage = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for storage: {e}")
                    });
                self
            }
            pub fn temporal<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.temporal = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for temporal: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<Services> for super::Services {
            type Error = super::error::ConversionError;
            fn try_from(
                value: Services,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    database: value.database?,
                    smtp: value.smtp?,
                    storage: value.storage?,
                    temporal: value.temporal?,
                })
            }
        }
        impl ::std::convert::From<super::Services> for Services {
            fn from(value: super::Services) -> Self {
                Self {
                    database: Ok(value.database),
                    smtp: Ok(value.smtp),
                    storage: Ok(value.storage),
                    temporal: Ok(value.temporal),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct ServicesReport {
            checked_at: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            services: ::std::result::Result<
                ::std::vec::Vec<super::ServiceCheck>,
                ::std::string::String,
            >,
            status: ::std::result::Result<::std::string::String, ::std::string::String>,
        }
        impl ::std::default::Default for ServicesReport {
            fn default() -> Self {
                Self {
                    checked_at: Err("no value supplied for checked_at".to_string()),
                    services: Err("no value supplied for services".to_string()),
                    status: Err("no value supplied for status".to_string()),
                }
            }
        }
        impl ServicesReport {
            pub fn checked_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.checked_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for checked_at: {e}")
                    });
                self
            }
            pub fn services<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::vec::Vec<super::ServiceCheck>>,
                T::Error: ::std::fmt::Display,
            {
                self.services = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for services: {e}")
                    });
                self
            }
            pub fn status<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.status = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for status: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<ServicesReport> for super::ServicesReport {
            type Error = super::error::ConversionError;
            fn try_from(
                value: ServicesReport,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    checked_at: value.checked_at?,
                    services: value.services?,
                    status: value.status?,
                })
            }
        }
        impl ::std::convert::From<super::ServicesReport> for ServicesReport {
            fn from(value: super::ServicesReport) -> Self {
                Self {
                    checked_at: Ok(value.checked_at),
                    services: Ok(value.services),
                    status: Ok(value.status),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct SessionToken {
            access_token: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            expires_in: ::std::result::Result<u64, ::std::string::String>,
            token_type: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for SessionToken {
            fn default() -> Self {
                Self {
                    access_token: Err("no value supplied for access_token".to_string()),
                    expires_in: Err("no value supplied for expires_in".to_string()),
                    token_type: Err("no value supplied for token_type".to_string()),
                }
            }
        }
        impl SessionToken {
            pub fn access_token<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.access_token = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for access_token: {e}")
                    });
                self
            }
            pub fn expires_in<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.expires_in = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for expires_in: {e}")
                    });
                self
            }
            pub fn token_type<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.token_type = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for token_type: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<SessionToken> for super::SessionToken {
            type Error = super::error::ConversionError;
            fn try_from(
                value: SessionToken,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    access_token: value.access_token?,
                    expires_in: value.expires_in?,
                    token_type: value.token_type?,
                })
            }
        }
        impl ::std::convert::From<super::SessionToken> for SessionToken {
            fn from(value: super::SessionToken) -> Self {
                Self {
                    access_token: Ok(value.access_token),
                    expires_in: Ok(value.expires_in),
                    token_type: Ok(value.token_type),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct SignInMethods {
            password: ::std::result::Result<bool, ::std::string::String>,
            signup: ::std::result::Result<bool, ::std::string::String>,
            single_sign_on: ::std::result::Result<
                ::std::option::Option<super::SingleSignOn>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for SignInMethods {
            fn default() -> Self {
                Self {
                    password: Err("no value supplied for password".to_string()),
                    signup: Err("no value supplied for signup".to_string()),
                    single_sign_on: Ok(Default::default()),
                }
            }
        }
        impl SignInMethods {
            pub fn password<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<bool>,
                T::Error: ::std::fmt::Display,
            {
                self.password = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for password: {e}")
                    });
                self
            }
            pub fn signup<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<bool>,
                T::Error: ::std::fmt::Display,
            {
                self.signup = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for signup: {e}")
                    });
                self
            }
            pub fn single_sign_on<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<super::SingleSignOn>>,
                T::Error: ::std::fmt::Display,
            {
                self.single_sign_on = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for single_sign_on: {e}"
                        )
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<SignInMethods> for super::SignInMethods {
            type Error = super::error::ConversionError;
            fn try_from(
                value: SignInMethods,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    password: value.password?,
                    signup: value.signup?,
                    single_sign_on: value.single_sign_on?,
                })
            }
        }
        impl ::std::convert::From<super::SignInMethods> for SignInMethods {
            fn from(value: super::SignInMethods) -> Self {
                Self {
                    password: Ok(value.password),
                    signup: Ok(value.signup),
                    single_sign_on: Ok(value.single_sign_on),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct SignupOpen {
            open: ::std::result::Result<bool, ::std::string::String>,
        }
        impl ::std::default::Default for SignupOpen {
            fn default() -> Self {
                Self {
                    open: Err("no value supplied for open".to_string()),
                }
            }
        }
        impl SignupOpen {
            pub fn open<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<bool>,
                T::Error: ::std::fmt::Display,
            {
                self.open = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for open: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<SignupOpen> for super::SignupOpen {
            type Error = super::error::ConversionError;
            fn try_from(
                value: SignupOpen,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self { open: value.open? })
            }
        }
        impl ::std::convert::From<super::SignupOpen> for SignupOpen {
            fn from(value: super::SignupOpen) -> Self {
                Self { open: Ok(value.open) }
            }
        }
        #[derive(Clone, Debug)]
        pub struct SingleSignOn {
            name: ::std::result::Result<::std::string::String, ::std::string::String>,
            url: ::std::result::Result<::std::string::String, ::std::string::String>,
        }
        impl ::std::default::Default for SingleSignOn {
            fn default() -> Self {
                Self {
                    name: Err("no value supplied for name".to_string()),
                    url: Err("no value supplied for url".to_string()),
                }
            }
        }
        impl SingleSignOn {
            pub fn name<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.name = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for name: {e}")
                    });
                self
            }
            pub fn url<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.url = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for url: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<SingleSignOn> for super::SingleSignOn {
            type Error = super::error::ConversionError;
            fn try_from(
                value: SingleSignOn,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    name: value.name?,
                    url: value.url?,
                })
            }
        }
        impl ::std::convert::From<super::SingleSignOn> for SingleSignOn {
            fn from(value: super::SingleSignOn) -> Self {
                Self {
                    name: Ok(value.name),
                    url: Ok(value.url),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct StatusCounts {
            cancelled: ::std::result::Result<u64, ::std::string::String>,
            completed: ::std::result::Result<u64, ::std::string::String>,
            failed: ::std::result::Result<u64, ::std::string::String>,
            in_progress: ::std::result::Result<u64, ::std::string::String>,
        }
        impl ::std::default::Default for StatusCounts {
            fn default() -> Self {
                Self {
                    cancelled: Err("no value supplied for cancelled".to_string()),
                    completed: Err("no value supplied for completed".to_string()),
                    failed: Err("no value supplied for failed".to_string()),
                    in_progress: Err("no value supplied for in_progress".to_string()),
                }
            }
        }
        impl StatusCounts {
            pub fn cancelled<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.cancelled = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for cancelled: {e}")
                    });
                self
            }
            pub fn completed<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.completed = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for completed: {e}")
                    });
                self
            }
            pub fn failed<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.failed = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for failed: {e}")
                    });
                self
            }
            pub fn in_progress<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.in_progress = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for in_progress: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<StatusCounts> for super::StatusCounts {
            type Error = super::error::ConversionError;
            fn try_from(
                value: StatusCounts,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    cancelled: value.cancelled?,
                    completed: value.completed?,
                    failed: value.failed?,
                    in_progress: value.in_progress?,
                })
            }
        }
        impl ::std::convert::From<super::StatusCounts> for StatusCounts {
            fn from(value: super::StatusCounts) -> Self {
                Self {
                    cancelled: Ok(value.cancelled),
                    completed: Ok(value.completed),
                    failed: Ok(value.failed),
                    in_progress: Ok(value.in_progress),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct TokenPair {
            access_token: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            expires_in: ::std::result::Result<u64, ::std::string::String>,
            refresh_token: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            token_type: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for TokenPair {
            fn default() -> Self {
                Self {
                    access_token: Err("no value supplied for access_token".to_string()),
                    expires_in: Err("no value supplied for expires_in".to_string()),
                    refresh_token: Err(
                        "no value supplied for refresh_token".to_string(),
                    ),
                    token_type: Err("no value supplied for token_type".to_string()),
                }
            }
        }
        impl TokenPair {
            pub fn access_token<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.access_token = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for access_token: {e}")
                    });
                self
            }
            pub fn expires_in<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.expires_in = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for expires_in: {e}")
                    });
                self
            }
            pub fn refresh_token<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.refresh_token = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for refresh_token: {e}")
                    });
                self
            }
            pub fn token_type<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.token_type = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for token_type: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<TokenPair> for super::TokenPair {
            type Error = super::error::ConversionError;
            fn try_from(
                value: TokenPair,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    access_token: value.access_token?,
                    expires_in: value.expires_in?,
                    refresh_token: value.refresh_token?,
                    token_type: value.token_type?,
                })
            }
        }
        impl ::std::convert::From<super::TokenPair> for TokenPair {
            fn from(value: super::TokenPair) -> Self {
                Self {
                    access_token: Ok(value.access_token),
                    expires_in: Ok(value.expires_in),
                    refresh_token: Ok(value.refresh_token),
                    token_type: Ok(value.token_type),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct UploadAccepted {
            batch_id: ::std::result::Result<
                ::std::option::Option<::uuid::Uuid>,
                ::std::string::String,
            >,
            callback: ::std::result::Result<
                ::std::option::Option<super::UploadCallback>,
                ::std::string::String,
            >,
            filename: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            job_id: ::std::result::Result<::uuid::Uuid, ::std::string::String>,
            jobs: ::std::result::Result<
                ::std::vec::Vec<super::AcceptedJob>,
                ::std::string::String,
            >,
            message: ::std::result::Result<::std::string::String, ::std::string::String>,
            status: ::std::result::Result<super::JobState, ::std::string::String>,
        }
        impl ::std::default::Default for UploadAccepted {
            fn default() -> Self {
                Self {
                    batch_id: Ok(Default::default()),
                    callback: Ok(Default::default()),
                    filename: Err("no value supplied for filename".to_string()),
                    job_id: Err("no value supplied for job_id".to_string()),
                    jobs: Err("no value supplied for jobs".to_string()),
                    message: Err("no value supplied for message".to_string()),
                    status: Err("no value supplied for status".to_string()),
                }
            }
        }
        impl UploadAccepted {
            pub fn batch_id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::uuid::Uuid>>,
                T::Error: ::std::fmt::Display,
            {
                self.batch_id = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for batch_id: {e}")
                    });
                self
            }
            pub fn callback<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<super::UploadCallback>>,
                T::Error: ::std::fmt::Display,
            {
                self.callback = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for callback: {e}")
                    });
                self
            }
            pub fn filename<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.filename = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for filename: {e}")
                    });
                self
            }
            pub fn job_id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::uuid::Uuid>,
                T::Error: ::std::fmt::Display,
            {
                self.job_id = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for job_id: {e}")
                    });
                self
            }
            pub fn jobs<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::vec::Vec<super::AcceptedJob>>,
                T::Error: ::std::fmt::Display,
            {
                self.jobs = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for jobs: {e}")
                    });
                self
            }
            pub fn message<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.message = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for message: {e}")
                    });
                self
            }
            pub fn status<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::JobState>,
                T::Error: ::std::fmt::Display,
            {
                self.status = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for status: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<UploadAccepted> for super::UploadAccepted {
            type Error = super::error::ConversionError;
            fn try_from(
                value: UploadAccepted,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    batch_id: value.batch_id?,
                    callback: value.callback?,
                    filename: value.filename?,
                    job_id: value.job_id?,
                    jobs: value.jobs?,
                    message: value.message?,
                    status: value.status?,
                })
            }
        }
        impl ::std::convert::From<super::UploadAccepted> for UploadAccepted {
            fn from(value: super::UploadAccepted) -> Self {
                Self {
                    batch_id: Ok(value.batch_id),
                    callback: Ok(value.callback),
                    filename: Ok(value.filename),
                    job_id: Ok(value.job_id),
                    jobs: Ok(value.jobs),
                    message: Ok(value.message),
                    status: Ok(value.status),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct UploadCallback {
            secret: ::std::result::Result<::std::string::String, ::std::string::String>,
            webhook_id: ::std::result::Result<::uuid::Uuid, ::std::string::String>,
        }
        impl ::std::default::Default for UploadCallback {
            fn default() -> Self {
                Self {
                    secret: Err("no value supplied for secret".to_string()),
                    webhook_id: Err("no value supplied for webhook_id".to_string()),
                }
            }
        }
        impl UploadCallback {
            pub fn secret<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.secret = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for secret: {e}")
                    });
                self
            }
            pub fn webhook_id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::uuid::Uuid>,
                T::Error: ::std::fmt::Display,
            {
                self.webhook_id = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for webhook_id: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<UploadCallback> for super::UploadCallback {
            type Error = super::error::ConversionError;
            fn try_from(
                value: UploadCallback,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    secret: value.secret?,
                    webhook_id: value.webhook_id?,
                })
            }
        }
        impl ::std::convert::From<super::UploadCallback> for UploadCallback {
            fn from(value: super::UploadCallback) -> Self {
                Self {
                    secret: Ok(value.secret),
                    webhook_id: Ok(value.webhook_id),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct UploadStatistics {
            by_status: ::std::result::Result<super::StatusCounts, ::std::string::String>,
            bytes_uploaded: ::std::result::Result<u64, ::std::string::String>,
            conversion: ::std::result::Result<
                super::ConversionTimes,
                ::std::string::String,
            >,
            file_size: ::std::result::Result<super::FileSizes, ::std::string::String>,
            generated_at: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            per_day: ::std::result::Result<
                ::std::vec::Vec<super::DayUploads>,
                ::std::string::String,
            >,
            scope: ::std::result::Result<super::StatsScope, ::std::string::String>,
            uploads: ::std::result::Result<u64, ::std::string::String>,
        }
        impl ::std::default::Default for UploadStatistics {
            fn default() -> Self {
                Self {
                    by_status: Err("no value supplied for by_status".to_string()),
                    bytes_uploaded: Err(
                        "no value supplied for bytes_uploaded".to_string(),
                    ),
                    conversion: Err("no value supplied for conversion".to_string()),
                    file_size: Err("no value supplied for file_size".to_string()),
                    generated_at: Err("no value supplied for generated_at".to_string()),
                    per_day: Err("no value supplied for per_day".to_string()),
                    scope: Err("no value supplied for scope".to_string()),
                    uploads: Err("no value supplied for uploads".to_string()),
                }
            }
        }
        impl UploadStatistics {
            pub fn by_status<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::StatusCounts>,
                T::Error: ::std::fmt::Display,
            {
                self.by_status = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for by_status: {e}")
                    });
                self
            }
            pub fn bytes_uploaded<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.bytes_uploaded = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for bytes_uploaded: {e}"
                        )
                    });
                self
            }
            pub fn conversion<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::ConversionTimes>,
                T::Error: ::std::fmt::Display,
            {
                self.conversion = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for conversion: {e}")
                    });
                self
            }
            pub fn file_size<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::FileSizes>,
                T::Error: ::std::fmt::Display,
            {
                self.file_size = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for file_size: {e}")
                    });
                self
            }
            pub fn generated_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.generated_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for generated_at: {e}")
                    });
                self
            }
            pub fn per_day<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::vec::Vec<super::DayUploads>>,
                T::Error: ::std::fmt::Display,
            {
                self.per_day = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for per_day: {e}")
                    });
                self
            }
            pub fn scope<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::StatsScope>,
                T::Error: ::std::fmt::Display,
            {
                self.scope = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for scope: {e}")
                    });
                self
            }
            pub fn uploads<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.uploads = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for uploads: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<UploadStatistics> for super::UploadStatistics {
            type Error = super::error::ConversionError;
            fn try_from(
                value: UploadStatistics,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    by_status: value.by_status?,
                    bytes_uploaded: value.bytes_uploaded?,
                    conversion: value.conversion?,
                    file_size: value.file_size?,
                    generated_at: value.generated_at?,
                    per_day: value.per_day?,
                    scope: value.scope?,
                    uploads: value.uploads?,
                })
            }
        }
        impl ::std::convert::From<super::UploadStatistics> for UploadStatistics {
            fn from(value: super::UploadStatistics) -> Self {
                Self {
                    by_status: Ok(value.by_status),
                    bytes_uploaded: Ok(value.bytes_uploaded),
                    conversion: Ok(value.conversion),
                    file_size: Ok(value.file_size),
                    generated_at: Ok(value.generated_at),
                    per_day: Ok(value.per_day),
                    scope: Ok(value.scope),
                    uploads: Ok(value.uploads),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct Used {
            jobs_today: ::std::result::Result<u64, ::std::string::String>,
            storage_used_bytes: ::std::result::Result<u64, ::std::string::String>,
        }
        impl ::std::default::Default for Used {
            fn default() -> Self {
                Self {
                    jobs_today: Err("no value supplied for jobs_today".to_string()),
                    storage_used_bytes: Err(
                        "no value supplied for storage_used_bytes".to_string(),
                    ),
                }
            }
        }
        impl Used {
            pub fn jobs_today<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.jobs_today = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for jobs_today: {e}")
                    });
                self
            }
            pub fn storage_used_bytes<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.storage_used_bytes = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for storage_used_bytes: {e}"
                        )
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<Used> for super::Used {
            type Error = super::error::ConversionError;
            fn try_from(
                value: Used,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    jobs_today: value.jobs_today?,
                    storage_used_bytes: value.storage_used_bytes?,
                })
            }
        }
        impl ::std::convert::From<super::Used> for Used {
            fn from(value: super::Used) -> Self {
                Self {
                    jobs_today: Ok(value.jobs_today),
                    storage_used_bytes: Ok(value.storage_used_bytes),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct UserChanges {
            active: ::std::result::Result<
                ::std::option::Option<bool>,
                ::std::string::String,
            >,
            admin: ::std::result::Result<
                ::std::option::Option<bool>,
                ::std::string::String,
            >,
            limits: ::std::result::Result<
                ::std::option::Option<super::OwnLimits>,
                ::std::string::String,
            >,
            sign_on_link: ::std::result::Result<
                ::std::option::Option<bool>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for UserChanges {
            fn default() -> Self {
                Self {
                    active: Ok(Default::default()),
                    admin: Ok(Default::default()),
                    limits: Ok(Default::default()),
                    sign_on_link: Ok(Default::default()),
                }
            }
        }
        impl UserChanges {
            pub fn active<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<bool>>,
                T::Error: ::std::fmt::Display,
            {
                self.active = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for active: {e}")
                    });
                self
            }
            pub fn admin<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<bool>>,
                T::Error: ::std::fmt::Display,
            {
                self.admin = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for admin: {e}")
                    });
                self
            }
            pub fn limits<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<super::OwnLimits>>,
                T::Error: ::std::fmt::Display,
            {
                self.limits = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for limits: {e}")
                    });
                self
            }
            pub fn sign_on_link<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<bool>>,
                T::Error: ::std::fmt::Display,
            {
                self.sign_on_link = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for sign_on_link: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<UserChanges> for super::UserChanges {
            type Error = super::error::ConversionError;
            fn try_from(
                value: UserChanges,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    active: value.active?,
                    admin: value.admin?,
                    limits: value.limits?,
                    sign_on_link: value.sign_on_link?,
                })
            }
        }
        impl ::std::convert::From<super::UserChanges> for UserChanges {
            fn from(value: super::UserChanges) -> Self {
                Self {
                    active: Ok(value.active),
                    admin: Ok(value.admin),
                    limits: Ok(value.limits),
                    sign_on_link: Ok(value.sign_on_link),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct UserSummary {
            active: ::std::result::Result<bool, ::std::string::String>,
            admin: ::std::result::Result<bool, ::std::string::String>,
            email: ::std::result::Result<::std::string::String, ::std::string::String>,
            id: ::std::result::Result<::std::string::String, ::std::string::String>,
            jobs_cancelled: ::std::result::Result<u64, ::std::string::String>,
        }
        impl ::std::default::Default for UserSummary {
            fn default() -> Self {
                Self {
                    active: Err("no value supplied for active".to_string()),
                    admin: Err("no value supplied for admin".to_string()),
                    email: Err("no value supplied for email".to_string()),
                    id: Err("no value supplied for id".to_string()),
                    jobs_cancelled: Err(
                        "no value supplied for jobs_cancelled".to_string(),
                    ),
                }
            }
        }
        impl UserSummary {
            pub fn active<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<bool>,
                T::Error: ::std::fmt::Display,
            {
                self.active = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for active: {e}")
                    });
                self
            }
            pub fn admin<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<bool>,
                T::Error: ::std::fmt::Display,
            {
                self.admin = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for admin: {e}")
                    });
                self
            }
            pub fn email<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.email = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for email: {e}")
                    });
                self
            }
            pub fn id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.id = value
                    .try_into()
                    .map_err(|e| format!("error converting supplied value for id: {e}"));
                self
            }
            pub fn jobs_cancelled<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.jobs_cancelled = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for jobs_cancelled: {e}"
                        )
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<UserSummary> for super::UserSummary {
            type Error = super::error::ConversionError;
            fn try_from(
                value: UserSummary,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    active: value.active?,
                    admin: value.admin?,
                    email: value.email?,
                    id: value.id?,
                    jobs_cancelled: value.jobs_cancelled?,
                })
            }
        }
        impl ::std::convert::From<super::UserSummary> for UserSummary {
            fn from(value: super::UserSummary) -> Self {
                Self {
                    active: Ok(value.active),
                    admin: Ok(value.admin),
                    email: Ok(value.email),
                    id: Ok(value.id),
                    jobs_cancelled: Ok(value.jobs_cancelled),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct WatchBody {
            connection_id: ::std::result::Result<
                ::std::option::Option<::uuid::Uuid>,
                ::std::string::String,
            >,
            created_at: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            directory: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            export: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            id: ::std::result::Result<::uuid::Uuid, ::std::string::String>,
            interval_seconds: ::std::result::Result<u32, ::std::string::String>,
            jobs: ::std::result::Result<u64, ::std::string::String>,
            max_running: ::std::result::Result<u32, ::std::string::String>,
            name: ::std::result::Result<::std::string::String, ::std::string::String>,
            options: ::std::result::Result<super::OutputChoices, ::std::string::String>,
            prefix: ::std::result::Result<::std::string::String, ::std::string::String>,
            running: ::std::result::Result<u64, ::std::string::String>,
            scanned_at: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            state: ::std::result::Result<::std::string::String, ::std::string::String>,
            trouble: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for WatchBody {
            fn default() -> Self {
                Self {
                    connection_id: Ok(Default::default()),
                    created_at: Err("no value supplied for created_at".to_string()),
                    directory: Ok(Default::default()),
                    export: Ok(Default::default()),
                    id: Err("no value supplied for id".to_string()),
                    interval_seconds: Err(
                        "no value supplied for interval_seconds".to_string(),
                    ),
                    jobs: Err("no value supplied for jobs".to_string()),
                    max_running: Err("no value supplied for max_running".to_string()),
                    name: Err("no value supplied for name".to_string()),
                    options: Err("no value supplied for options".to_string()),
                    prefix: Err("no value supplied for prefix".to_string()),
                    running: Err("no value supplied for running".to_string()),
                    scanned_at: Ok(Default::default()),
                    state: Err("no value supplied for state".to_string()),
                    trouble: Ok(Default::default()),
                }
            }
        }
        impl WatchBody {
            pub fn connection_id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::uuid::Uuid>>,
                T::Error: ::std::fmt::Display,
            {
                self.connection_id = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for connection_id: {e}")
                    });
                self
            }
            pub fn created_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.created_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for created_at: {e}")
                    });
                self
            }
            pub fn directory<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.directory = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for directory: {e}")
                    });
                self
            }
            pub fn export<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.export = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for export: {e}")
                    });
                self
            }
            pub fn id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::uuid::Uuid>,
                T::Error: ::std::fmt::Display,
            {
                self.id = value
                    .try_into()
                    .map_err(|e| format!("error converting supplied value for id: {e}"));
                self
            }
            pub fn interval_seconds<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u32>,
                T::Error: ::std::fmt::Display,
            {
                self.interval_seconds = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for interval_seconds: {e}"
                        )
                    });
                self
            }
            pub fn jobs<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.jobs = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for jobs: {e}")
                    });
                self
            }
            pub fn max_running<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u32>,
                T::Error: ::std::fmt::Display,
            {
                self.max_running = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for max_running: {e}")
                    });
                self
            }
            pub fn name<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.name = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for name: {e}")
                    });
                self
            }
            pub fn options<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<super::OutputChoices>,
                T::Error: ::std::fmt::Display,
            {
                self.options = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for options: {e}")
                    });
                self
            }
            pub fn prefix<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.prefix = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for prefix: {e}")
                    });
                self
            }
            pub fn running<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<u64>,
                T::Error: ::std::fmt::Display,
            {
                self.running = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for running: {e}")
                    });
                self
            }
            pub fn scanned_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.scanned_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for scanned_at: {e}")
                    });
                self
            }
            pub fn state<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.state = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for state: {e}")
                    });
                self
            }
            pub fn trouble<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.trouble = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for trouble: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<WatchBody> for super::WatchBody {
            type Error = super::error::ConversionError;
            fn try_from(
                value: WatchBody,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    connection_id: value.connection_id?,
                    created_at: value.created_at?,
                    directory: value.directory?,
                    export: value.export?,
                    id: value.id?,
                    interval_seconds: value.interval_seconds?,
                    jobs: value.jobs?,
                    max_running: value.max_running?,
                    name: value.name?,
                    options: value.options?,
                    prefix: value.prefix?,
                    running: value.running?,
                    scanned_at: value.scanned_at?,
                    state: value.state?,
                    trouble: value.trouble?,
                })
            }
        }
        impl ::std::convert::From<super::WatchBody> for WatchBody {
            fn from(value: super::WatchBody) -> Self {
                Self {
                    connection_id: Ok(value.connection_id),
                    created_at: Ok(value.created_at),
                    directory: Ok(value.directory),
                    export: Ok(value.export),
                    id: Ok(value.id),
                    interval_seconds: Ok(value.interval_seconds),
                    jobs: Ok(value.jobs),
                    max_running: Ok(value.max_running),
                    name: Ok(value.name),
                    options: Ok(value.options),
                    prefix: Ok(value.prefix),
                    running: Ok(value.running),
                    scanned_at: Ok(value.scanned_at),
                    state: Ok(value.state),
                    trouble: Ok(value.trouble),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct WatchList {
            watches: ::std::result::Result<
                ::std::vec::Vec<super::WatchBody>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for WatchList {
            fn default() -> Self {
                Self {
                    watches: Err("no value supplied for watches".to_string()),
                }
            }
        }
        impl WatchList {
            pub fn watches<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::vec::Vec<super::WatchBody>>,
                T::Error: ::std::fmt::Display,
            {
                self.watches = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for watches: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<WatchList> for super::WatchList {
            type Error = super::error::ConversionError;
            fn try_from(
                value: WatchList,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self { watches: value.watches? })
            }
        }
        impl ::std::convert::From<super::WatchList> for WatchList {
            fn from(value: super::WatchList) -> Self {
                Self { watches: Ok(value.watches) }
            }
        }
        #[derive(Clone, Debug)]
        pub struct Webhook {
            created_at: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            disabled_reason: ::std::result::Result<
                ::std::option::Option<::std::string::String>,
                ::std::string::String,
            >,
            enabled: ::std::result::Result<bool, ::std::string::String>,
            events: ::std::result::Result<
                ::std::vec::Vec<super::EventName>,
                ::std::string::String,
            >,
            id: ::std::result::Result<::uuid::Uuid, ::std::string::String>,
            updated_at: ::std::result::Result<
                ::std::string::String,
                ::std::string::String,
            >,
            url: ::std::result::Result<::std::string::String, ::std::string::String>,
        }
        impl ::std::default::Default for Webhook {
            fn default() -> Self {
                Self {
                    created_at: Err("no value supplied for created_at".to_string()),
                    disabled_reason: Ok(Default::default()),
                    enabled: Err("no value supplied for enabled".to_string()),
                    events: Err("no value supplied for events".to_string()),
                    id: Err("no value supplied for id".to_string()),
                    updated_at: Err("no value supplied for updated_at".to_string()),
                    url: Err("no value supplied for url".to_string()),
                }
            }
        }
        impl Webhook {
            pub fn created_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.created_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for created_at: {e}")
                    });
                self
            }
            pub fn disabled_reason<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<::std::string::String>>,
                T::Error: ::std::fmt::Display,
            {
                self.disabled_reason = value
                    .try_into()
                    .map_err(|e| {
                        format!(
                            "error converting supplied value for disabled_reason: {e}"
                        )
                    });
                self
            }
            pub fn enabled<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<bool>,
                T::Error: ::std::fmt::Display,
            {
                self.enabled = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for enabled: {e}")
                    });
                self
            }
            pub fn events<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::vec::Vec<super::EventName>>,
                T::Error: ::std::fmt::Display,
            {
                self.events = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for events: {e}")
                    });
                self
            }
            pub fn id<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::uuid::Uuid>,
                T::Error: ::std::fmt::Display,
            {
                self.id = value
                    .try_into()
                    .map_err(|e| format!("error converting supplied value for id: {e}"));
                self
            }
            pub fn updated_at<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.updated_at = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for updated_at: {e}")
                    });
                self
            }
            pub fn url<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::string::String>,
                T::Error: ::std::fmt::Display,
            {
                self.url = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for url: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<Webhook> for super::Webhook {
            type Error = super::error::ConversionError;
            fn try_from(
                value: Webhook,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    created_at: value.created_at?,
                    disabled_reason: value.disabled_reason?,
                    enabled: value.enabled?,
                    events: value.events?,
                    id: value.id?,
                    updated_at: value.updated_at?,
                    url: value.url?,
                })
            }
        }
        impl ::std::convert::From<super::Webhook> for Webhook {
            fn from(value: super::Webhook) -> Self {
                Self {
                    created_at: Ok(value.created_at),
                    disabled_reason: Ok(value.disabled_reason),
                    enabled: Ok(value.enabled),
                    events: Ok(value.events),
                    id: Ok(value.id),
                    updated_at: Ok(value.updated_at),
                    url: Ok(value.url),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct WebhookChanges {
            enabled: ::std::result::Result<
                ::std::option::Option<bool>,
                ::std::string::String,
            >,
            events: ::std::result::Result<
                ::std::option::Option<::std::vec::Vec<super::EventName>>,
                ::std::string::String,
            >,
            url: ::std::result::Result<
                ::std::option::Option<super::WebhookChangesUrl>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for WebhookChanges {
            fn default() -> Self {
                Self {
                    enabled: Ok(Default::default()),
                    events: Ok(Default::default()),
                    url: Ok(Default::default()),
                }
            }
        }
        impl WebhookChanges {
            pub fn enabled<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::option::Option<bool>>,
                T::Error: ::std::fmt::Display,
            {
                self.enabled = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for enabled: {e}")
                    });
                self
            }
            pub fn events<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<
                    ::std::option::Option<::std::vec::Vec<super::EventName>>,
                >,
                T::Error: ::std::fmt::Display,
            {
                self.events = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for events: {e}")
                    });
                self
            }
            pub fn url<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<
                    ::std::option::Option<super::WebhookChangesUrl>,
                >,
                T::Error: ::std::fmt::Display,
            {
                self.url = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for url: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<WebhookChanges> for super::WebhookChanges {
            type Error = super::error::ConversionError;
            fn try_from(
                value: WebhookChanges,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self {
                    enabled: value.enabled?,
                    events: value.events?,
                    url: value.url?,
                })
            }
        }
        impl ::std::convert::From<super::WebhookChanges> for WebhookChanges {
            fn from(value: super::WebhookChanges) -> Self {
                Self {
                    enabled: Ok(value.enabled),
                    events: Ok(value.events),
                    url: Ok(value.url),
                }
            }
        }
        #[derive(Clone, Debug)]
        pub struct WebhookList {
            webhooks: ::std::result::Result<
                ::std::vec::Vec<super::Webhook>,
                ::std::string::String,
            >,
        }
        impl ::std::default::Default for WebhookList {
            fn default() -> Self {
                Self {
                    webhooks: Err("no value supplied for webhooks".to_string()),
                }
            }
        }
        impl WebhookList {
            pub fn webhooks<T>(mut self, value: T) -> Self
            where
                T: ::std::convert::TryInto<::std::vec::Vec<super::Webhook>>,
                T::Error: ::std::fmt::Display,
            {
                self.webhooks = value
                    .try_into()
                    .map_err(|e| {
                        format!("error converting supplied value for webhooks: {e}")
                    });
                self
            }
        }
        impl ::std::convert::TryFrom<WebhookList> for super::WebhookList {
            type Error = super::error::ConversionError;
            fn try_from(
                value: WebhookList,
            ) -> ::std::result::Result<Self, super::error::ConversionError> {
                Ok(Self { webhooks: value.webhooks? })
            }
        }
        impl ::std::convert::From<super::WebhookList> for WebhookList {
            fn from(value: super::WebhookList) -> Self {
                Self {
                    webhooks: Ok(value.webhooks),
                }
            }
        }
    }
    /// Error types.
    pub mod error {
        /// Error from a `TryFrom` or `FromStr` implementation.
        pub struct ConversionError(::std::borrow::Cow<'static, str>);
        impl ::std::error::Error for ConversionError {}
        impl ::std::fmt::Display for ConversionError {
            fn fmt(
                &self,
                f: &mut ::std::fmt::Formatter<'_>,
            ) -> Result<(), ::std::fmt::Error> {
                ::std::fmt::Display::fmt(&self.0, f)
            }
        }
        impl ::std::fmt::Debug for ConversionError {
            fn fmt(
                &self,
                f: &mut ::std::fmt::Formatter<'_>,
            ) -> Result<(), ::std::fmt::Error> {
                ::std::fmt::Debug::fmt(&self.0, f)
            }
        }
        impl From<&'static str> for ConversionError {
            fn from(value: &'static str) -> Self {
                Self(value.into())
            }
        }
        impl From<String> for ConversionError {
            fn from(value: String) -> Self {
                Self(value.into())
            }
        }
    }
}
#[derive(Clone, Debug)]
/**Client for Audiomill

Upload videos, get MP3s back. Log in with HTTP Basic at /login, then send the access token as a Bearer token.

Version: 0.1.0*/
pub struct Client {
    pub(crate) baseurl: String,
    pub(crate) client: reqwest::Client,
}
impl Client {
    /// Create a new client.
    ///
    /// `baseurl` is the base URL provided to the internal
    /// `reqwest::Client`, and should include a scheme and hostname,
    /// as well as port and a path stem if applicable.
    pub fn new(baseurl: &str) -> Self {
        #[cfg(not(target_arch = "wasm32"))]
        let client = {
            let dur = ::std::time::Duration::from_secs(15u64);
            reqwest::ClientBuilder::new().connect_timeout(dur).timeout(dur)
        };
        #[cfg(target_arch = "wasm32")]
        let client = reqwest::ClientBuilder::new();
        Self::new_with_client(baseurl, client.build().unwrap())
    }
    /// Construct a new client with an existing `reqwest::Client`,
    /// allowing more control over its configuration.
    ///
    /// `baseurl` is the base URL provided to the internal
    /// `reqwest::Client`, and should include a scheme and hostname,
    /// as well as port and a path stem if applicable.
    pub fn new_with_client(baseurl: &str, client: reqwest::Client) -> Self {
        Self {
            baseurl: baseurl.to_string(),
            client,
        }
    }
}
impl ClientInfo<()> for Client {
    fn api_version() -> &'static str {
        "0.1.0"
    }
    fn baseurl(&self) -> &str {
        self.baseurl.as_str()
    }
    fn client(&self) -> &reqwest::Client {
        &self.client
    }
    fn inner(&self) -> &() {
        &()
    }
}
impl ClientHooks<()> for &Client {}
impl Client {
    /**The caller's API keys (never their secrets)

Sends a `GET` request to `/api-keys`

```ignore
let response = client.list_api_keys()
    .send()
    .await;
```*/
    pub fn list_api_keys(&self) -> builder::ListApiKeys<'_> {
        builder::ListApiKeys::new(self)
    }
    /**Make an API key

The answer holds the key, once; keep it secret. It acts with its scopes only, for as
long as the account is active, until it expires or is revoked.

Sends a `POST` request to `/api-keys`

```ignore
let response = client.create_api_key()
    .body(body)
    .send()
    .await;
```*/
    pub fn create_api_key(&self) -> builder::CreateApiKey<'_> {
        builder::CreateApiKey::new(self)
    }
    /**Revoke an API key: it stops working at once

Sends a `DELETE` request to `/api-keys/{key_id}`

Arguments:
- `key_id`: The key's id (12 letters and digits).
```ignore
let response = client.revoke_api_key()
    .key_id(key_id)
    .send()
    .await;
```*/
    pub fn revoke_api_key(&self) -> builder::RevokeApiKey<'_> {
        builder::RevokeApiKey::new(self)
    }
    /**The jobs of an upload with several files: each one's status and progress, and the
whole batch's

Sends a `GET` request to `/batches/{batch_id}`

```ignore
let response = client.get_batch()
    .batch_id(batch_id)
    .send()
    .await;
```*/
    pub fn get_batch(&self) -> builder::GetBatch<'_> {
        builder::GetBatch::new(self)
    }
    /**The batch's finished MP3s as one ZIP archive, streamed as it is read from storage

Jobs that have not completed are left out (`X-Batch-Files` says how many are in).

Sends a `GET` request to `/batches/{batch_id}/download`

```ignore
let response = client.download_batch()
    .batch_id(batch_id)
    .send()
    .await;
```*/
    pub fn download_batch(&self) -> builder::DownloadBatch<'_> {
        builder::DownloadBatch::new(self)
    }
    /**Your connections, without their secret keys

Sends a `GET` request to `/connections`

```ignore
let response = client.list_connections()
    .send()
    .await;
```*/
    pub fn list_connections(&self) -> builder::ListConnections<'_> {
        builder::ListConnections::new(self)
    }
    /**Save a connection to a bucket of yours

Jobs may then import videos from it (`POST /imports` with `from`) and write their MP3s
to it (`export_to`, with the upload form or an import). The secret key is encrypted at
rest with the server's `CONNECTION_SECRET_KEY` and never shown again.

Sends a `POST` request to `/connections`

```ignore
let response = client.create_connection()
    .body(body)
    .send()
    .await;
```*/
    pub fn create_connection(&self) -> builder::CreateConnection<'_> {
        builder::CreateConnection::new(self)
    }
    /**Delete a connection

Sends a `DELETE` request to `/connections/{connection_id}`

```ignore
let response = client.delete_connection()
    .connection_id(connection_id)
    .send()
    .await;
```*/
    pub fn delete_connection(&self) -> builder::DeleteConnection<'_> {
        builder::DeleteConnection::new(self)
    }
    /**Download a finished MP3 by `fid` (the job id)

The older form of `/download/{job_id}`.

Sends a `GET` request to `/download`

```ignore
let response = client.download_mp3_by_fid()
    .fid(fid)
    .range(range)
    .send()
    .await;
```*/
    pub fn download_mp3_by_fid(&self) -> builder::DownloadMp3ByFid<'_> {
        builder::DownloadMp3ByFid::new(self)
    }
    /**Download a finished MP3

With an access token (the owner or an admin), or with no credentials through a signed
link (`?signature=`, from `GET /jobs/{job_id}/link`, `/status` or the e-mail). Supports
`Range: bytes=...`. A browser (`Accept: text/html`) is answered errors as a page.

Sends a `GET` request to `/download/{job_id}`

```ignore
let response = client.download_mp3()
    .job_id(job_id)
    .range(range)
    .send()
    .await;
```*/
    pub fn download_mp3(&self) -> builder::DownloadMp3<'_> {
        builder::DownloadMp3::new(self)
    }
    /**Whether the service and its dependencies answer

Sends a `GET` request to `/health`

```ignore
let response = client.get_health()
    .send()
    .await;
```*/
    pub fn get_health(&self) -> builder::GetHealth<'_> {
        builder::GetHealth::new(self)
    }
    /**Liveness for orchestrators

Answers as long as the process serves.

Sends a `GET` request to `/health/live`

```ignore
let response = client.get_liveness()
    .send()
    .await;
```*/
    pub fn get_liveness(&self) -> builder::GetLiveness<'_> {
        builder::GetLiveness::new(self)
    }
    /**Readiness for orchestrators

503 while the database, object storage or Temporal is down.

Sends a `GET` request to `/health/ready`

```ignore
let response = client.get_readiness()
    .send()
    .await;
```*/
    pub fn get_readiness(&self) -> builder::GetReadiness<'_> {
        builder::GetReadiness::new(self)
    }
    /**Each dependency with its status, the check's latency and what answered

Sends a `GET` request to `/health/services`

```ignore
let response = client.get_services_health()
    .send()
    .await;
```*/
    pub fn get_services_health(&self) -> builder::GetServicesHealth<'_> {
        builder::GetServicesHealth::new(self)
    }
    /**Import videos from links

Starts a `ConvertVideo` job per link whose first step, `import_source`, fetches the
video into storage: streamed, under the caller's size limit and storage quota, its
first bytes checked to be a video container, each redirect checked like the link. A
fetch that fails for good (404, too large, not a video, an address that may not be
reached, redirects in a loop) fails the job with a sentence saying so; a server error
or a timeout is tried again first. With an `Idempotency-Key`, sending the same import
again answers 200 with the first job.

Sends a `POST` request to `/imports`

Arguments:
- `idempotency_key`: Any string of 1 to 255 visible ASCII characters naming this import, so that sending
it again cannot start a second job.
- `body`
```ignore
let response = client.import_videos()
    .idempotency_key(idempotency_key)
    .body(body)
    .send()
    .await;
```*/
    pub fn import_videos(&self) -> builder::ImportVideos<'_> {
        builder::ImportVideos::new(self)
    }
    /**Invite an address to make an account (admins only): a link is mailed to it

Sends a `POST` request to `/invitations`

```ignore
let response = client.invite_user()
    .body(body)
    .send()
    .await;
```*/
    pub fn invite_user(&self) -> builder::InviteUser<'_> {
        builder::InviteUser::new(self)
    }
    /**List jobs, newest first

The caller's own; an admin's list holds everyone's, or one user's with `user` (an id or
an e-mail address). Page with `limit` (1-100) and the `next_cursor` of the page before.

Sends a `GET` request to `/jobs`

Arguments:
- `created_after`: Only jobs created at or after this time.
- `created_before`: Only jobs created before this time.
- `cursor`: The `next_cursor` of the page before.
- `limit`: Jobs per page, 1-100 (20 when left out).
- `status`: Only jobs that stand so; `in_progress` is queued or running.
- `user`: Admins only: whose jobs (a user id or an e-mail address).
```ignore
let response = client.list_jobs()
    .created_after(created_after)
    .created_before(created_before)
    .cursor(cursor)
    .limit(limit)
    .status(status)
    .user(user)
    .send()
    .await;
```*/
    pub fn list_jobs(&self) -> builder::ListJobs<'_> {
        builder::ListJobs::new(self)
    }
    /**Cancel a running job, or delete an ended one

Deleting removes the job's video, MP3 and record.

Sends a `DELETE` request to `/jobs/{job_id}`

```ignore
let response = client.delete_job()
    .job_id(job_id)
    .send()
    .await;
```*/
    pub fn delete_job(&self) -> builder::DeleteJob<'_> {
        builder::DeleteJob::new(self)
    }
    /**Cancel a running job

Unlike `DELETE /jobs/{job_id}`, never deletes anything: a job that has already ended
answers 409 and is left as it is.

Sends a `POST` request to `/jobs/{job_id}/cancel`

```ignore
let response = client.cancel_job()
    .job_id(job_id)
    .send()
    .await;
```*/
    pub fn cancel_job(&self) -> builder::CancelJob<'_> {
        builder::CancelJob::new(self)
    }
    /**A fresh signed link to a finished MP3

The link opens the MP3 with no other credentials until `expires_at`
(`DOWNLOAD_LINK_HOURS` from now), or until the job is deleted. Share it with care.

Sends a `GET` request to `/jobs/{job_id}/link`

```ignore
let response = client.get_download_link()
    .job_id(job_id)
    .send()
    .await;
```*/
    pub fn get_download_link(&self) -> builder::GetDownloadLink<'_> {
        builder::GetDownloadLink::new(self)
    }
    /**Log in with HTTP Basic (email and password); returns an access and a refresh token

Sends a `POST` request to `/login`

```ignore
let response = client.login()
    .send()
    .await;
```*/
    pub fn login(&self) -> builder::Login<'_> {
        builder::Login::new(self)
    }
    /**End this login: its access token and all its refresh tokens stop working

Presented with an API key, it revokes that key. Any credential may end itself, whatever
its scopes.

Sends a `POST` request to `/logout`

```ignore
let response = client.logout()
    .send()
    .await;
```*/
    pub fn logout(&self) -> builder::Logout<'_> {
        builder::Logout::new(self)
    }
    /**The caller's account and settings

Sends a `GET` request to `/me`

```ignore
let response = client.get_account()
    .send()
    .await;
```*/
    pub fn get_account(&self) -> builder::GetAccount<'_> {
        builder::GetAccount::new(self)
    }
    /**Change the caller's settings: `{"completion_emails": false}` stops the e-mail sent
when a job completes

Sends a `PATCH` request to `/me`

```ignore
let response = client.update_account()
    .body(body)
    .send()
    .await;
```*/
    pub fn update_account(&self) -> builder::UpdateAccount<'_> {
        builder::UpdateAccount::new(self)
    }
    /**Delete all of the caller's jobs

Running jobs are cancelled first; then every job's video, MP3 and record is removed.
Today's job count stays as it is (deleting jobs gives no jobs-per-day quota back).

Sends a `DELETE` request to `/me/jobs`

```ignore
let response = client.delete_my_jobs()
    .send()
    .await;
```*/
    pub fn delete_my_jobs(&self) -> builder::DeleteMyJobs<'_> {
        builder::DeleteMyJobs::new(self)
    }
    /**Sign out everywhere: end every login of the account

Web sessions and programs' refresh tokens stop working at once, this one included.
API keys stay until they are revoked, and watches until they are deleted.

Sends a `DELETE` request to `/me/logins`

```ignore
let response = client.end_all_logins()
    .send()
    .await;
```*/
    pub fn end_all_logins(&self) -> builder::EndAllLogins<'_> {
        builder::EndAllLogins::new(self)
    }
    /**Change the password

Takes the current password too. Every other login of the account ends; API keys stay.

Sends a `PUT` request to `/me/password`

```ignore
let response = client.change_password()
    .body(body)
    .send()
    .await;
```*/
    pub fn change_password(&self) -> builder::ChangePassword<'_> {
        builder::ChangePassword::new(self)
    }
    /**Where the OpenID provider sends the browser back: signs the person in

Sends a `GET` request to `/oidc/callback`

Arguments:
- `code`: The provider's authorization code.
- `error`: The provider's refusal, instead of a code.
- `iss`: The provider's issuer, when it names itself (RFC 9207).
- `state`: The sign-in's state, as sent to the provider.
```ignore
let response = client.finish_sign_on()
    .code(code)
    .error(error)
    .iss(iss)
    .state(state)
    .send()
    .await;
```*/
    pub fn finish_sign_on(&self) -> builder::FinishSignOn<'_> {
        builder::FinishSignOn::new(self)
    }
    /**Sign in with the OpenID provider: a browser goes here and is sent to the provider

Sends a `GET` request to `/oidc/sign-in`

```ignore
let response = client.start_sign_on()
    .send()
    .await;
```*/
    pub fn start_sign_on(&self) -> builder::StartSignOn<'_> {
        builder::StartSignOn::new(self)
    }
    /**Ask for a link to choose a new password

The answer is the same whether the address has an account, and comes at once; the
link is mailed to an active account's address, works once, and expires in an hour.
Counted against the login limits.

Sends a `POST` request to `/password/forgot`

```ignore
let response = client.forgot_password()
    .body(body)
    .send()
    .await;
```*/
    pub fn forgot_password(&self) -> builder::ForgotPassword<'_> {
        builder::ForgotPassword::new(self)
    }
    /**Choose a new password with the secret of a mailed link

Sends a `POST` request to `/password/reset`

```ignore
let response = client.reset_password()
    .body(body)
    .send()
    .await;
```*/
    pub fn reset_password(&self) -> builder::ResetPassword<'_> {
        builder::ResetPassword::new(self)
    }
    /**Sign a browser in with HTTP Basic (email and password)

As `/login`, with the refresh token in a cookie instead of the body: for the web app
and other pages of this site. Programs use `/login`.

Sends a `POST` request to `/session`

```ignore
let response = client.open_session()
    .send()
    .await;
```*/
    pub fn open_session(&self) -> builder::OpenSession<'_> {
        builder::OpenSession::new(self)
    }
    /**Renew a browser's access token with its session cookie

The refresh token in the `audiomill_session` cookie is traded for the next one (each
works once), set in the answer's cookie. Requires the `Audiomill-Session` header.

Sends a `POST` request to `/session/refresh`

Arguments:
- `audiomill_session`: Any value: a page of another site cannot send it.
```ignore
let response = client.refresh_session()
    .audiomill_session(audiomill_session)
    .send()
    .await;
```*/
    pub fn refresh_session(&self) -> builder::RefreshSession<'_> {
        builder::RefreshSession::new(self)
    }
    /**Which ways to sign in this service offers

Sends a `GET` request to `/sign-in/methods`

```ignore
let response = client.sign_in_methods()
    .send()
    .await;
```*/
    pub fn sign_in_methods(&self) -> builder::SignInMethods<'_> {
        builder::SignInMethods::new(self)
    }
    /**Whether anyone may make an account (`ALLOW_SIGNUP`)

Sends a `GET` request to `/signup`

```ignore
let response = client.get_signup()
    .send()
    .await;
```*/
    pub fn get_signup(&self) -> builder::GetSignup<'_> {
        builder::GetSignup::new(self)
    }
    /**Make an account: with an invitation's token, or with an address when sign-up is open

Counted against the login limits.

Sends a `POST` request to `/signup`

```ignore
let response = client.sign_up()
    .body(body)
    .send()
    .await;
```*/
    pub fn sign_up(&self) -> builder::SignUp<'_> {
        builder::SignUp::new(self)
    }
    /**Upload statistics

Uploads by status, bytes, file sizes, conversion times and uploads per day: the
caller's own by default; `scope=all` covers everyone's and is for admins.

Sends a `GET` request to `/stats/uploads`

```ignore
let response = client.get_upload_stats()
    .scope(scope)
    .send()
    .await;
```*/
    pub fn get_upload_stats(&self) -> builder::GetUploadStats<'_> {
        builder::GetUploadStats::new(self)
    }
    /**A job's status, step and progress

Sends a `GET` request to `/status/{job_id}`

```ignore
let response = client.get_job_status()
    .job_id(job_id)
    .send()
    .await;
```*/
    pub fn get_job_status(&self) -> builder::GetJobStatus<'_> {
        builder::GetJobStatus::new(self)
    }
    /**Trade a refresh token for a new pair

Each refresh token works once; presenting a used one again revokes its whole login.

Sends a `POST` request to `/token/refresh`

```ignore
let response = client.refresh_token()
    .body(body)
    .send()
    .await;
```*/
    pub fn refresh_token(&self) -> builder::RefreshToken<'_> {
        builder::RefreshToken::new(self)
    }
    /**Make an upload token: a credential that may only upload, briefly

Sends a `POST` request to `/upload-tokens`

```ignore
let response = client.create_upload_token()
    .body(body)
    .send()
    .await;
```*/
    pub fn create_upload_token(&self) -> builder::CreateUploadToken<'_> {
        builder::CreateUploadToken::new(self)
    }
    /**The accounts (admins only), by e-mail address, each with its limits and usage

Sends a `GET` request to `/users`

Arguments:
- `after`: The `next_after` of the page before.
- `limit`: How many, 1-100 (default 50).
- `search`: Only accounts whose address contains this (any case).
```ignore
let response = client.list_users()
    .after(after)
    .limit(limit)
    .search(search)
    .send()
    .await;
```*/
    pub fn list_users(&self) -> builder::ListUsers<'_> {
        builder::ListUsers::new(self)
    }
    /**Add an account (admins only), with a password the person changes later

Sends a `POST` request to `/users`

```ignore
let response = client.add_user()
    .body(body)
    .send()
    .await;
```*/
    pub fn add_user(&self) -> builder::AddUser<'_> {
        builder::AddUser::new(self)
    }
    /**Change an account (admins only): turn it off or on, make it an admin or not, set its
limits, let single sign-on take it

Turning it off takes effect at once: the user cannot log in, every token of theirs is
refused from its next use, and their running jobs are cancelled.

Sends a `PATCH` request to `/users/{user_id}`

```ignore
let response = client.update_user()
    .user_id(user_id)
    .body(body)
    .send()
    .await;
```*/
    pub fn update_user(&self) -> builder::UpdateUser<'_> {
        builder::UpdateUser::new(self)
    }
    /**Check an access token and show who it belongs to

Sends a `POST` request to `/validate`

```ignore
let response = client.validate_token()
    .send()
    .await;
```*/
    pub fn validate_token(&self) -> builder::ValidateToken<'_> {
        builder::ValidateToken::new(self)
    }
    /**Your watches

Sends a `GET` request to `/watches`

```ignore
let response = client.list_watches()
    .send()
    .await;
```*/
    pub fn list_watches(&self) -> builder::ListWatches<'_> {
        builder::ListWatches::new(self)
    }
    /**Watch a folder of your bucket

Every video or audio file (MP4, MOV, AVI, MKV, WebM, MP3, M4A, WAV, FLAC, Ogg) that appears under the folder becomes a job
with the watch's choices and destination, once per version of the object (its key and
ETag): a video written again is converted again, one seen before never is. At most
`max_running` of its jobs convert at once; the rest wait their turn. Its jobs are
yours, in your history, under your quotas.

Sends a `POST` request to `/watches`

```ignore
let response = client.create_watch()
    .body(body)
    .send()
    .await;
```*/
    pub fn create_watch(&self) -> builder::CreateWatch<'_> {
        builder::CreateWatch::new(self)
    }
    /**One of your watches

Sends a `GET` request to `/watches/{watch_id}`

```ignore
let response = client.get_watch()
    .watch_id(watch_id)
    .send()
    .await;
```*/
    pub fn get_watch(&self) -> builder::GetWatch<'_> {
        builder::GetWatch::new(self)
    }
    /**Delete a watch

Sends a `DELETE` request to `/watches/{watch_id}`

```ignore
let response = client.delete_watch()
    .watch_id(watch_id)
    .send()
    .await;
```*/
    pub fn delete_watch(&self) -> builder::DeleteWatch<'_> {
        builder::DeleteWatch::new(self)
    }
    /**Pause a watch: it starts no more jobs until it is resumed (those started go on)

Sends a `POST` request to `/watches/{watch_id}/pause`

```ignore
let response = client.pause_watch()
    .watch_id(watch_id)
    .send()
    .await;
```*/
    pub fn pause_watch(&self) -> builder::PauseWatch<'_> {
        builder::PauseWatch::new(self)
    }
    /**Resume a paused watch: it looks over its folder at once, from where it stopped

Sends a `POST` request to `/watches/{watch_id}/resume`

```ignore
let response = client.resume_watch()
    .watch_id(watch_id)
    .send()
    .await;
```*/
    pub fn resume_watch(&self) -> builder::ResumeWatch<'_> {
        builder::ResumeWatch::new(self)
    }
    /**The caller's webhook endpoints

Sends a `GET` request to `/webhooks`

```ignore
let response = client.list_webhooks()
    .send()
    .await;
```*/
    pub fn list_webhooks(&self) -> builder::ListWebhooks<'_> {
        builder::ListWebhooks::new(self)
    }
    /**Register a webhook endpoint

Each message is a POST with a JSON body `{type, timestamp, data}` (`data` is the job as
`/status` shows it, with a signed `download_url` when it completed, and `progress`),
signed as the
Standard Webhooks specification says: headers `webhook-id` (the same on every retry),
`webhook-timestamp` and `webhook-signature`. A 2xx answer delivers it; 410 Gone turns
the endpoint off; anything else is retried with backoff for over a day.

Sends a `POST` request to `/webhooks`

```ignore
let response = client.create_webhook()
    .body(body)
    .send()
    .await;
```*/
    pub fn create_webhook(&self) -> builder::CreateWebhook<'_> {
        builder::CreateWebhook::new(self)
    }
    /**One of the caller's webhook endpoints

Sends a `GET` request to `/webhooks/{webhook_id}`

```ignore
let response = client.get_webhook()
    .webhook_id(webhook_id)
    .send()
    .await;
```*/
    pub fn get_webhook(&self) -> builder::GetWebhook<'_> {
        builder::GetWebhook::new(self)
    }
    /**Delete an endpoint and its deliveries

Sends a `DELETE` request to `/webhooks/{webhook_id}`

```ignore
let response = client.delete_webhook()
    .webhook_id(webhook_id)
    .send()
    .await;
```*/
    pub fn delete_webhook(&self) -> builder::DeleteWebhook<'_> {
        builder::DeleteWebhook::new(self)
    }
    /**Change an endpoint's URL or events, or turn it off or on

Sends a `PATCH` request to `/webhooks/{webhook_id}`

```ignore
let response = client.update_webhook()
    .webhook_id(webhook_id)
    .body(body)
    .send()
    .await;
```*/
    pub fn update_webhook(&self) -> builder::UpdateWebhook<'_> {
        builder::UpdateWebhook::new(self)
    }
    /**The messages sent to an endpoint, newest first, each with every attempt to deliver it
(status code, latency, error)

Sends a `GET` request to `/webhooks/{webhook_id}/deliveries`

Arguments:
- `webhook_id`
- `limit`: How many, 1-100 (default 20).
```ignore
let response = client.list_webhook_deliveries()
    .webhook_id(webhook_id)
    .limit(limit)
    .send()
    .await;
```*/
    pub fn list_webhook_deliveries(&self) -> builder::ListWebhookDeliveries<'_> {
        builder::ListWebhookDeliveries::new(self)
    }
    /**Send one message again, with the same id and body (newly timestamped and signed), also
to an endpoint that was turned off since

Sends a `POST` request to `/webhooks/{webhook_id}/deliveries/{delivery_id}/replay`

Arguments:
- `webhook_id`
- `delivery_id`: `msg_` and 24 letters, digits, `-` or `_`.
```ignore
let response = client.replay_webhook_delivery()
    .webhook_id(webhook_id)
    .delivery_id(delivery_id)
    .send()
    .await;
```*/
    pub fn replay_webhook_delivery(&self) -> builder::ReplayWebhookDelivery<'_> {
        builder::ReplayWebhookDelivery::new(self)
    }
    /**Give an endpoint a new signing secret

For a day, messages carry two signatures, one per secret, so a receiver can change its
secret whenever it likes within that day.

Sends a `POST` request to `/webhooks/{webhook_id}/secret`

```ignore
let response = client.rotate_webhook_secret()
    .webhook_id(webhook_id)
    .send()
    .await;
```*/
    pub fn rotate_webhook_secret(&self) -> builder::RotateWebhookSecret<'_> {
        builder::RotateWebhookSecret::new(self)
    }
}
/// Types for composing operation parameters.
#[allow(clippy::all)]
pub mod builder {
    use super::types;
    #[allow(unused_imports)]
    use super::{
        encode_path, ByteStream, ClientInfo, ClientHooks, Error, OperationInfo,
        RequestBuilderExt, ResponseValue,
    };
    /**Builder for [`Client::list_api_keys`]

[`Client::list_api_keys`]: super::Client::list_api_keys*/
    #[derive(Debug, Clone)]
    pub struct ListApiKeys<'a> {
        client: &'a super::Client,
    }
    impl<'a> ListApiKeys<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self { client: client }
        }
        ///Sends a `GET` request to `/api-keys`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::KeyList>, Error<types::ErrorBody>> {
            let Self { client } = self;
            let url = format!("{}/api-keys", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .get(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "list_api_keys",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::create_api_key`]

[`Client::create_api_key`]: super::Client::create_api_key*/
    #[derive(Debug, Clone)]
    pub struct CreateApiKey<'a> {
        client: &'a super::Client,
        body: Result<types::builder::NewKey, String>,
    }
    impl<'a> CreateApiKey<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                body: Ok(::std::default::Default::default()),
            }
        }
        pub fn body<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::NewKey>,
            <V as std::convert::TryInto<types::NewKey>>::Error: std::fmt::Display,
        {
            self.body = value
                .try_into()
                .map(From::from)
                .map_err(|s| format!("conversion to `NewKey` for body failed: {}", s));
            self
        }
        pub fn body_map<F>(mut self, f: F) -> Self
        where
            F: std::ops::FnOnce(types::builder::NewKey) -> types::builder::NewKey,
        {
            self.body = self.body.map(f);
            self
        }
        ///Sends a `POST` request to `/api-keys`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::CreatedKey>, Error<types::ErrorBody>> {
            let Self { client, body } = self;
            let body = body
                .and_then(|v| types::NewKey::try_from(v).map_err(|e| e.to_string()))
                .map_err(Error::InvalidRequest)?;
            let url = format!("{}/api-keys", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .post(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .json(&body)
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "create_api_key",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                201u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                408u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                409u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                413u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                415u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::revoke_api_key`]

[`Client::revoke_api_key`]: super::Client::revoke_api_key*/
    #[derive(Debug, Clone)]
    pub struct RevokeApiKey<'a> {
        client: &'a super::Client,
        key_id: Result<types::RevokeApiKeyKeyId, String>,
    }
    impl<'a> RevokeApiKey<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                key_id: Err("key_id was not initialized".to_string()),
            }
        }
        pub fn key_id<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::RevokeApiKeyKeyId>,
        {
            self.key_id = value
                .try_into()
                .map_err(|_| {
                    "conversion to `RevokeApiKeyKeyId` for key_id failed".to_string()
                });
            self
        }
        ///Sends a `DELETE` request to `/api-keys/{key_id}`
        pub async fn send(self) -> Result<ResponseValue<()>, Error<types::ErrorBody>> {
            let Self { client, key_id } = self;
            let key_id = key_id.map_err(Error::InvalidRequest)?;
            let url = format!(
                "{}/api-keys/{}", client.baseurl, encode_path(& key_id.to_string()),
            );
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .delete(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "revoke_api_key",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                204u16 => Ok(ResponseValue::empty(response)),
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                404u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::get_batch`]

[`Client::get_batch`]: super::Client::get_batch*/
    #[derive(Debug, Clone)]
    pub struct GetBatch<'a> {
        client: &'a super::Client,
        batch_id: Result<::uuid::Uuid, String>,
    }
    impl<'a> GetBatch<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                batch_id: Err("batch_id was not initialized".to_string()),
            }
        }
        pub fn batch_id<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::uuid::Uuid>,
        {
            self.batch_id = value
                .try_into()
                .map_err(|_| {
                    "conversion to `:: uuid :: Uuid` for batch_id failed".to_string()
                });
            self
        }
        ///Sends a `GET` request to `/batches/{batch_id}`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::BatchStatus>, Error<types::ErrorBody>> {
            let Self { client, batch_id } = self;
            let batch_id = batch_id.map_err(Error::InvalidRequest)?;
            let url = format!(
                "{}/batches/{}", client.baseurl, encode_path(& batch_id.to_string()),
            );
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .get(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "get_batch",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                404u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::download_batch`]

[`Client::download_batch`]: super::Client::download_batch*/
    #[derive(Debug, Clone)]
    pub struct DownloadBatch<'a> {
        client: &'a super::Client,
        batch_id: Result<::uuid::Uuid, String>,
    }
    impl<'a> DownloadBatch<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                batch_id: Err("batch_id was not initialized".to_string()),
            }
        }
        pub fn batch_id<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::uuid::Uuid>,
        {
            self.batch_id = value
                .try_into()
                .map_err(|_| {
                    "conversion to `:: uuid :: Uuid` for batch_id failed".to_string()
                });
            self
        }
        ///Sends a `GET` request to `/batches/{batch_id}/download`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<ByteStream>, Error<types::ErrorBody>> {
            let Self { client, batch_id } = self;
            let batch_id = batch_id.map_err(Error::InvalidRequest)?;
            let url = format!(
                "{}/batches/{}/download", client.baseurl, encode_path(& batch_id
                .to_string()),
            );
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client.client.get(url).headers(header_map).build()?;
            let info = OperationInfo {
                operation_id: "download_batch",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => Ok(ResponseValue::stream(response)),
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                404u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                409u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::list_connections`]

[`Client::list_connections`]: super::Client::list_connections*/
    #[derive(Debug, Clone)]
    pub struct ListConnections<'a> {
        client: &'a super::Client,
    }
    impl<'a> ListConnections<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self { client: client }
        }
        ///Sends a `GET` request to `/connections`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::ConnectionList>, Error<types::ErrorBody>> {
            let Self { client } = self;
            let url = format!("{}/connections", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .get(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "list_connections",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::create_connection`]

[`Client::create_connection`]: super::Client::create_connection*/
    #[derive(Debug, Clone)]
    pub struct CreateConnection<'a> {
        client: &'a super::Client,
        body: Result<types::builder::NewConnectionBody, String>,
    }
    impl<'a> CreateConnection<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                body: Ok(::std::default::Default::default()),
            }
        }
        pub fn body<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::NewConnectionBody>,
            <V as std::convert::TryInto<
                types::NewConnectionBody,
            >>::Error: std::fmt::Display,
        {
            self.body = value
                .try_into()
                .map(From::from)
                .map_err(|s| {
                    format!("conversion to `NewConnectionBody` for body failed: {}", s)
                });
            self
        }
        pub fn body_map<F>(mut self, f: F) -> Self
        where
            F: std::ops::FnOnce(
                types::builder::NewConnectionBody,
            ) -> types::builder::NewConnectionBody,
        {
            self.body = self.body.map(f);
            self
        }
        ///Sends a `POST` request to `/connections`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::ConnectionBody>, Error<types::ErrorBody>> {
            let Self { client, body } = self;
            let body = body
                .and_then(|v| {
                    types::NewConnectionBody::try_from(v).map_err(|e| e.to_string())
                })
                .map_err(Error::InvalidRequest)?;
            let url = format!("{}/connections", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .post(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .json(&body)
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "create_connection",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                201u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                408u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                409u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                413u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                415u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::delete_connection`]

[`Client::delete_connection`]: super::Client::delete_connection*/
    #[derive(Debug, Clone)]
    pub struct DeleteConnection<'a> {
        client: &'a super::Client,
        connection_id: Result<::uuid::Uuid, String>,
    }
    impl<'a> DeleteConnection<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                connection_id: Err("connection_id was not initialized".to_string()),
            }
        }
        pub fn connection_id<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::uuid::Uuid>,
        {
            self.connection_id = value
                .try_into()
                .map_err(|_| {
                    "conversion to `:: uuid :: Uuid` for connection_id failed"
                        .to_string()
                });
            self
        }
        ///Sends a `DELETE` request to `/connections/{connection_id}`
        pub async fn send(self) -> Result<ResponseValue<()>, Error<types::ErrorBody>> {
            let Self { client, connection_id } = self;
            let connection_id = connection_id.map_err(Error::InvalidRequest)?;
            let url = format!(
                "{}/connections/{}", client.baseurl, encode_path(& connection_id
                .to_string()),
            );
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .delete(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "delete_connection",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                204u16 => Ok(ResponseValue::empty(response)),
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                404u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                409u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::download_mp3_by_fid`]

[`Client::download_mp3_by_fid`]: super::Client::download_mp3_by_fid*/
    #[derive(Debug, Clone)]
    pub struct DownloadMp3ByFid<'a> {
        client: &'a super::Client,
        fid: Result<::uuid::Uuid, String>,
        range: Result<Option<::std::string::String>, String>,
    }
    impl<'a> DownloadMp3ByFid<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                fid: Err("fid was not initialized".to_string()),
                range: Ok(None),
            }
        }
        pub fn fid<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::uuid::Uuid>,
        {
            self.fid = value
                .try_into()
                .map_err(|_| {
                    "conversion to `:: uuid :: Uuid` for fid failed".to_string()
                });
            self
        }
        pub fn range<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::std::string::String>,
        {
            self.range = value
                .try_into()
                .map(Some)
                .map_err(|_| {
                    "conversion to `:: std :: string :: String` for range failed"
                        .to_string()
                });
            self
        }
        ///Sends a `GET` request to `/download`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<ByteStream>, Error<types::ErrorBody>> {
            let Self { client, fid, range } = self;
            let fid = fid.map_err(Error::InvalidRequest)?;
            let range = range.map_err(Error::InvalidRequest)?;
            let url = format!("{}/download", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(2usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            if let Some(value) = range {
                header_map.append("range", value.to_string().try_into()?);
            }
            #[allow(unused_mut)]
            let mut request = client
                .client
                .get(url)
                .query(&progenitor_client::QueryParam::new("fid", &fid))
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "download_mp3_by_fid",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => Ok(ResponseValue::stream(response)),
                206u16 => Ok(ResponseValue::stream(response)),
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                404u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                409u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                410u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                416u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::download_mp3`]

[`Client::download_mp3`]: super::Client::download_mp3*/
    #[derive(Debug, Clone)]
    pub struct DownloadMp3<'a> {
        client: &'a super::Client,
        job_id: Result<::uuid::Uuid, String>,
        range: Result<Option<::std::string::String>, String>,
    }
    impl<'a> DownloadMp3<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                job_id: Err("job_id was not initialized".to_string()),
                range: Ok(None),
            }
        }
        pub fn job_id<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::uuid::Uuid>,
        {
            self.job_id = value
                .try_into()
                .map_err(|_| {
                    "conversion to `:: uuid :: Uuid` for job_id failed".to_string()
                });
            self
        }
        pub fn range<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::std::string::String>,
        {
            self.range = value
                .try_into()
                .map(Some)
                .map_err(|_| {
                    "conversion to `:: std :: string :: String` for range failed"
                        .to_string()
                });
            self
        }
        ///Sends a `GET` request to `/download/{job_id}`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<ByteStream>, Error<types::ErrorBody>> {
            let Self { client, job_id, range } = self;
            let job_id = job_id.map_err(Error::InvalidRequest)?;
            let range = range.map_err(Error::InvalidRequest)?;
            let url = format!(
                "{}/download/{}", client.baseurl, encode_path(& job_id.to_string()),
            );
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(2usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            if let Some(value) = range {
                header_map.append("range", value.to_string().try_into()?);
            }
            #[allow(unused_mut)]
            let mut request = client.client.get(url).headers(header_map).build()?;
            let info = OperationInfo {
                operation_id: "download_mp3",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => Ok(ResponseValue::stream(response)),
                206u16 => Ok(ResponseValue::stream(response)),
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                404u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                409u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                410u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                416u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::get_health`]

[`Client::get_health`]: super::Client::get_health*/
    #[derive(Debug, Clone)]
    pub struct GetHealth<'a> {
        client: &'a super::Client,
    }
    impl<'a> GetHealth<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self { client: client }
        }
        ///Sends a `GET` request to `/health`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::Health>, Error<types::ErrorBody>> {
            let Self { client } = self;
            let url = format!("{}/health", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .get(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "get_health",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::get_liveness`]

[`Client::get_liveness`]: super::Client::get_liveness*/
    #[derive(Debug, Clone)]
    pub struct GetLiveness<'a> {
        client: &'a super::Client,
    }
    impl<'a> GetLiveness<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self { client: client }
        }
        ///Sends a `GET` request to `/health/live`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::Liveness>, Error<types::ErrorBody>> {
            let Self { client } = self;
            let url = format!("{}/health/live", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .get(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "get_liveness",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::get_readiness`]

[`Client::get_readiness`]: super::Client::get_readiness*/
    #[derive(Debug, Clone)]
    pub struct GetReadiness<'a> {
        client: &'a super::Client,
    }
    impl<'a> GetReadiness<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self { client: client }
        }
        ///Sends a `GET` request to `/health/ready`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::Readiness>, Error<types::ErrorBody>> {
            let Self { client } = self;
            let url = format!("{}/health/ready", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .get(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "get_readiness",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::get_services_health`]

[`Client::get_services_health`]: super::Client::get_services_health*/
    #[derive(Debug, Clone)]
    pub struct GetServicesHealth<'a> {
        client: &'a super::Client,
    }
    impl<'a> GetServicesHealth<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self { client: client }
        }
        ///Sends a `GET` request to `/health/services`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::ServicesReport>, Error<types::ErrorBody>> {
            let Self { client } = self;
            let url = format!("{}/health/services", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .get(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "get_services_health",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::import_videos`]

[`Client::import_videos`]: super::Client::import_videos*/
    #[derive(Debug, Clone)]
    pub struct ImportVideos<'a> {
        client: &'a super::Client,
        idempotency_key: Result<Option<::std::string::String>, String>,
        body: Result<types::builder::ImportRequest, String>,
    }
    impl<'a> ImportVideos<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                idempotency_key: Ok(None),
                body: Ok(::std::default::Default::default()),
            }
        }
        pub fn idempotency_key<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::std::string::String>,
        {
            self.idempotency_key = value
                .try_into()
                .map(Some)
                .map_err(|_| {
                    "conversion to `:: std :: string :: String` for idempotency_key failed"
                        .to_string()
                });
            self
        }
        pub fn body<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::ImportRequest>,
            <V as std::convert::TryInto<types::ImportRequest>>::Error: std::fmt::Display,
        {
            self.body = value
                .try_into()
                .map(From::from)
                .map_err(|s| {
                    format!("conversion to `ImportRequest` for body failed: {}", s)
                });
            self
        }
        pub fn body_map<F>(mut self, f: F) -> Self
        where
            F: std::ops::FnOnce(
                types::builder::ImportRequest,
            ) -> types::builder::ImportRequest,
        {
            self.body = self.body.map(f);
            self
        }
        ///Sends a `POST` request to `/imports`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::UploadAccepted>, Error<types::ErrorBody>> {
            let Self { client, idempotency_key, body } = self;
            let idempotency_key = idempotency_key.map_err(Error::InvalidRequest)?;
            let body = body
                .and_then(|v| {
                    types::ImportRequest::try_from(v).map_err(|e| e.to_string())
                })
                .map_err(Error::InvalidRequest)?;
            let url = format!("{}/imports", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(2usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            if let Some(value) = idempotency_key {
                header_map.append("Idempotency-Key", value.to_string().try_into()?);
            }
            #[allow(unused_mut)]
            let mut request = client
                .client
                .post(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .json(&body)
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "import_videos",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                202u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                408u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                409u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                413u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                415u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                422u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::invite_user`]

[`Client::invite_user`]: super::Client::invite_user*/
    #[derive(Debug, Clone)]
    pub struct InviteUser<'a> {
        client: &'a super::Client,
        body: Result<types::builder::Invite, String>,
    }
    impl<'a> InviteUser<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                body: Ok(::std::default::Default::default()),
            }
        }
        pub fn body<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::Invite>,
            <V as std::convert::TryInto<types::Invite>>::Error: std::fmt::Display,
        {
            self.body = value
                .try_into()
                .map(From::from)
                .map_err(|s| format!("conversion to `Invite` for body failed: {}", s));
            self
        }
        pub fn body_map<F>(mut self, f: F) -> Self
        where
            F: std::ops::FnOnce(types::builder::Invite) -> types::builder::Invite,
        {
            self.body = self.body.map(f);
            self
        }
        ///Sends a `POST` request to `/invitations`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::Invited>, Error<types::ErrorBody>> {
            let Self { client, body } = self;
            let body = body
                .and_then(|v| types::Invite::try_from(v).map_err(|e| e.to_string()))
                .map_err(Error::InvalidRequest)?;
            let url = format!("{}/invitations", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .post(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .json(&body)
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "invite_user",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                202u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                408u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                409u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                413u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                415u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::list_jobs`]

[`Client::list_jobs`]: super::Client::list_jobs*/
    #[derive(Debug, Clone)]
    pub struct ListJobs<'a> {
        client: &'a super::Client,
        created_after: Result<Option<::chrono::DateTime<::chrono::offset::Utc>>, String>,
        created_before: Result<
            Option<::chrono::DateTime<::chrono::offset::Utc>>,
            String,
        >,
        cursor: Result<Option<types::ListJobsCursor>, String>,
        limit: Result<Option<::std::num::NonZeroU32>, String>,
        status: Result<Option<types::StatusFilter>, String>,
        user: Result<Option<::std::string::String>, String>,
    }
    impl<'a> ListJobs<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                created_after: Ok(None),
                created_before: Ok(None),
                cursor: Ok(None),
                limit: Ok(None),
                status: Ok(None),
                user: Ok(None),
            }
        }
        pub fn created_after<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::chrono::DateTime<::chrono::offset::Utc>>,
        {
            self.created_after = value
                .try_into()
                .map(Some)
                .map_err(|_| {
                    "conversion to `:: chrono :: DateTime < :: chrono :: offset :: Utc >` for created_after failed"
                        .to_string()
                });
            self
        }
        pub fn created_before<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::chrono::DateTime<::chrono::offset::Utc>>,
        {
            self.created_before = value
                .try_into()
                .map(Some)
                .map_err(|_| {
                    "conversion to `:: chrono :: DateTime < :: chrono :: offset :: Utc >` for created_before failed"
                        .to_string()
                });
            self
        }
        pub fn cursor<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::ListJobsCursor>,
        {
            self.cursor = value
                .try_into()
                .map(Some)
                .map_err(|_| {
                    "conversion to `ListJobsCursor` for cursor failed".to_string()
                });
            self
        }
        pub fn limit<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::std::num::NonZeroU32>,
        {
            self.limit = value
                .try_into()
                .map(Some)
                .map_err(|_| {
                    "conversion to `:: std :: num :: NonZeroU32` for limit failed"
                        .to_string()
                });
            self
        }
        pub fn status<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::StatusFilter>,
        {
            self.status = value
                .try_into()
                .map(Some)
                .map_err(|_| {
                    "conversion to `StatusFilter` for status failed".to_string()
                });
            self
        }
        pub fn user<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::std::string::String>,
        {
            self.user = value
                .try_into()
                .map(Some)
                .map_err(|_| {
                    "conversion to `:: std :: string :: String` for user failed"
                        .to_string()
                });
            self
        }
        ///Sends a `GET` request to `/jobs`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::JobPage>, Error<types::ErrorBody>> {
            let Self {
                client,
                created_after,
                created_before,
                cursor,
                limit,
                status,
                user,
            } = self;
            let created_after = created_after.map_err(Error::InvalidRequest)?;
            let created_before = created_before.map_err(Error::InvalidRequest)?;
            let cursor = cursor.map_err(Error::InvalidRequest)?;
            let limit = limit.map_err(Error::InvalidRequest)?;
            let status = status.map_err(Error::InvalidRequest)?;
            let user = user.map_err(Error::InvalidRequest)?;
            let url = format!("{}/jobs", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .get(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .query(
                    &progenitor_client::QueryParam::new("created_after", &created_after),
                )
                .query(
                    &progenitor_client::QueryParam::new(
                        "created_before",
                        &created_before,
                    ),
                )
                .query(&progenitor_client::QueryParam::new("cursor", &cursor))
                .query(&progenitor_client::QueryParam::new("limit", &limit))
                .query(&progenitor_client::QueryParam::new("status", &status))
                .query(&progenitor_client::QueryParam::new("user", &user))
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "list_jobs",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::delete_job`]

[`Client::delete_job`]: super::Client::delete_job*/
    #[derive(Debug, Clone)]
    pub struct DeleteJob<'a> {
        client: &'a super::Client,
        job_id: Result<::uuid::Uuid, String>,
    }
    impl<'a> DeleteJob<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                job_id: Err("job_id was not initialized".to_string()),
            }
        }
        pub fn job_id<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::uuid::Uuid>,
        {
            self.job_id = value
                .try_into()
                .map_err(|_| {
                    "conversion to `:: uuid :: Uuid` for job_id failed".to_string()
                });
            self
        }
        ///Sends a `DELETE` request to `/jobs/{job_id}`
        pub async fn send(self) -> Result<ResponseValue<()>, Error<types::ErrorBody>> {
            let Self { client, job_id } = self;
            let job_id = job_id.map_err(Error::InvalidRequest)?;
            let url = format!(
                "{}/jobs/{}", client.baseurl, encode_path(& job_id.to_string()),
            );
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .delete(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "delete_job",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                202u16 => Ok(ResponseValue::empty(response)),
                204u16 => Ok(ResponseValue::empty(response)),
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                404u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::cancel_job`]

[`Client::cancel_job`]: super::Client::cancel_job*/
    #[derive(Debug, Clone)]
    pub struct CancelJob<'a> {
        client: &'a super::Client,
        job_id: Result<::uuid::Uuid, String>,
    }
    impl<'a> CancelJob<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                job_id: Err("job_id was not initialized".to_string()),
            }
        }
        pub fn job_id<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::uuid::Uuid>,
        {
            self.job_id = value
                .try_into()
                .map_err(|_| {
                    "conversion to `:: uuid :: Uuid` for job_id failed".to_string()
                });
            self
        }
        ///Sends a `POST` request to `/jobs/{job_id}/cancel`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::CancelAccepted>, Error<types::ErrorBody>> {
            let Self { client, job_id } = self;
            let job_id = job_id.map_err(Error::InvalidRequest)?;
            let url = format!(
                "{}/jobs/{}/cancel", client.baseurl, encode_path(& job_id.to_string()),
            );
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .post(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "cancel_job",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                202u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                404u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                409u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::get_download_link`]

[`Client::get_download_link`]: super::Client::get_download_link*/
    #[derive(Debug, Clone)]
    pub struct GetDownloadLink<'a> {
        client: &'a super::Client,
        job_id: Result<::uuid::Uuid, String>,
    }
    impl<'a> GetDownloadLink<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                job_id: Err("job_id was not initialized".to_string()),
            }
        }
        pub fn job_id<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::uuid::Uuid>,
        {
            self.job_id = value
                .try_into()
                .map_err(|_| {
                    "conversion to `:: uuid :: Uuid` for job_id failed".to_string()
                });
            self
        }
        ///Sends a `GET` request to `/jobs/{job_id}/link`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::DownloadLink>, Error<types::ErrorBody>> {
            let Self { client, job_id } = self;
            let job_id = job_id.map_err(Error::InvalidRequest)?;
            let url = format!(
                "{}/jobs/{}/link", client.baseurl, encode_path(& job_id.to_string()),
            );
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .get(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "get_download_link",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                404u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                409u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                410u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::login`]

[`Client::login`]: super::Client::login*/
    #[derive(Debug, Clone)]
    pub struct Login<'a> {
        client: &'a super::Client,
    }
    impl<'a> Login<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self { client: client }
        }
        ///Sends a `POST` request to `/login`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::TokenPair>, Error<types::ErrorBody>> {
            let Self { client } = self;
            let url = format!("{}/login", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .post(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "login",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::logout`]

[`Client::logout`]: super::Client::logout*/
    #[derive(Debug, Clone)]
    pub struct Logout<'a> {
        client: &'a super::Client,
    }
    impl<'a> Logout<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self { client: client }
        }
        ///Sends a `POST` request to `/logout`
        pub async fn send(self) -> Result<ResponseValue<()>, Error<types::ErrorBody>> {
            let Self { client } = self;
            let url = format!("{}/logout", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .post(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "logout",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                204u16 => Ok(ResponseValue::empty(response)),
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::get_account`]

[`Client::get_account`]: super::Client::get_account*/
    #[derive(Debug, Clone)]
    pub struct GetAccount<'a> {
        client: &'a super::Client,
    }
    impl<'a> GetAccount<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self { client: client }
        }
        ///Sends a `GET` request to `/me`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::Account>, Error<types::ErrorBody>> {
            let Self { client } = self;
            let url = format!("{}/me", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .get(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "get_account",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::update_account`]

[`Client::update_account`]: super::Client::update_account*/
    #[derive(Debug, Clone)]
    pub struct UpdateAccount<'a> {
        client: &'a super::Client,
        body: Result<types::builder::AccountChanges, String>,
    }
    impl<'a> UpdateAccount<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                body: Ok(::std::default::Default::default()),
            }
        }
        pub fn body<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::AccountChanges>,
            <V as std::convert::TryInto<
                types::AccountChanges,
            >>::Error: std::fmt::Display,
        {
            self.body = value
                .try_into()
                .map(From::from)
                .map_err(|s| {
                    format!("conversion to `AccountChanges` for body failed: {}", s)
                });
            self
        }
        pub fn body_map<F>(mut self, f: F) -> Self
        where
            F: std::ops::FnOnce(
                types::builder::AccountChanges,
            ) -> types::builder::AccountChanges,
        {
            self.body = self.body.map(f);
            self
        }
        ///Sends a `PATCH` request to `/me`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::Account>, Error<types::ErrorBody>> {
            let Self { client, body } = self;
            let body = body
                .and_then(|v| {
                    types::AccountChanges::try_from(v).map_err(|e| e.to_string())
                })
                .map_err(Error::InvalidRequest)?;
            let url = format!("{}/me", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .patch(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .json(&body)
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "update_account",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                408u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                413u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                415u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::delete_my_jobs`]

[`Client::delete_my_jobs`]: super::Client::delete_my_jobs*/
    #[derive(Debug, Clone)]
    pub struct DeleteMyJobs<'a> {
        client: &'a super::Client,
    }
    impl<'a> DeleteMyJobs<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self { client: client }
        }
        ///Sends a `DELETE` request to `/me/jobs`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::RemovedJobs>, Error<types::ErrorBody>> {
            let Self { client } = self;
            let url = format!("{}/me/jobs", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .delete(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "delete_my_jobs",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::end_all_logins`]

[`Client::end_all_logins`]: super::Client::end_all_logins*/
    #[derive(Debug, Clone)]
    pub struct EndAllLogins<'a> {
        client: &'a super::Client,
    }
    impl<'a> EndAllLogins<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self { client: client }
        }
        ///Sends a `DELETE` request to `/me/logins`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::EndedLogins>, Error<types::ErrorBody>> {
            let Self { client } = self;
            let url = format!("{}/me/logins", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .delete(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "end_all_logins",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::change_password`]

[`Client::change_password`]: super::Client::change_password*/
    #[derive(Debug, Clone)]
    pub struct ChangePassword<'a> {
        client: &'a super::Client,
        body: Result<types::builder::PasswordChange, String>,
    }
    impl<'a> ChangePassword<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                body: Ok(::std::default::Default::default()),
            }
        }
        pub fn body<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::PasswordChange>,
            <V as std::convert::TryInto<
                types::PasswordChange,
            >>::Error: std::fmt::Display,
        {
            self.body = value
                .try_into()
                .map(From::from)
                .map_err(|s| {
                    format!("conversion to `PasswordChange` for body failed: {}", s)
                });
            self
        }
        pub fn body_map<F>(mut self, f: F) -> Self
        where
            F: std::ops::FnOnce(
                types::builder::PasswordChange,
            ) -> types::builder::PasswordChange,
        {
            self.body = self.body.map(f);
            self
        }
        ///Sends a `PUT` request to `/me/password`
        pub async fn send(self) -> Result<ResponseValue<()>, Error<types::ErrorBody>> {
            let Self { client, body } = self;
            let body = body
                .and_then(|v| {
                    types::PasswordChange::try_from(v).map_err(|e| e.to_string())
                })
                .map_err(Error::InvalidRequest)?;
            let url = format!("{}/me/password", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .put(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .json(&body)
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "change_password",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                204u16 => Ok(ResponseValue::empty(response)),
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                408u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                413u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                415u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::finish_sign_on`]

[`Client::finish_sign_on`]: super::Client::finish_sign_on*/
    #[derive(Debug, Clone)]
    pub struct FinishSignOn<'a> {
        client: &'a super::Client,
        code: Result<Option<::std::string::String>, String>,
        error: Result<Option<::std::string::String>, String>,
        iss: Result<Option<::std::string::String>, String>,
        state: Result<Option<::std::string::String>, String>,
    }
    impl<'a> FinishSignOn<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                code: Ok(None),
                error: Ok(None),
                iss: Ok(None),
                state: Ok(None),
            }
        }
        pub fn code<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::std::string::String>,
        {
            self.code = value
                .try_into()
                .map(Some)
                .map_err(|_| {
                    "conversion to `:: std :: string :: String` for code failed"
                        .to_string()
                });
            self
        }
        pub fn error<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::std::string::String>,
        {
            self.error = value
                .try_into()
                .map(Some)
                .map_err(|_| {
                    "conversion to `:: std :: string :: String` for error failed"
                        .to_string()
                });
            self
        }
        pub fn iss<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::std::string::String>,
        {
            self.iss = value
                .try_into()
                .map(Some)
                .map_err(|_| {
                    "conversion to `:: std :: string :: String` for iss failed"
                        .to_string()
                });
            self
        }
        pub fn state<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::std::string::String>,
        {
            self.state = value
                .try_into()
                .map(Some)
                .map_err(|_| {
                    "conversion to `:: std :: string :: String` for state failed"
                        .to_string()
                });
            self
        }
        ///Sends a `GET` request to `/oidc/callback`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<ByteStream>, Error<types::ErrorBody>> {
            let Self { client, code, error, iss, state } = self;
            let code = code.map_err(Error::InvalidRequest)?;
            let error = error.map_err(Error::InvalidRequest)?;
            let iss = iss.map_err(Error::InvalidRequest)?;
            let state = state.map_err(Error::InvalidRequest)?;
            let url = format!("{}/oidc/callback", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .get(url)
                .query(&progenitor_client::QueryParam::new("code", &code))
                .query(&progenitor_client::QueryParam::new("error", &error))
                .query(&progenitor_client::QueryParam::new("iss", &iss))
                .query(&progenitor_client::QueryParam::new("state", &state))
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "finish_sign_on",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200..=299 => Ok(ResponseValue::stream(response)),
                404u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::start_sign_on`]

[`Client::start_sign_on`]: super::Client::start_sign_on*/
    #[derive(Debug, Clone)]
    pub struct StartSignOn<'a> {
        client: &'a super::Client,
    }
    impl<'a> StartSignOn<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self { client: client }
        }
        ///Sends a `GET` request to `/oidc/sign-in`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<ByteStream>, Error<types::ErrorBody>> {
            let Self { client } = self;
            let url = format!("{}/oidc/sign-in", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client.client.get(url).headers(header_map).build()?;
            let info = OperationInfo {
                operation_id: "start_sign_on",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200..=299 => Ok(ResponseValue::stream(response)),
                404u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::forgot_password`]

[`Client::forgot_password`]: super::Client::forgot_password*/
    #[derive(Debug, Clone)]
    pub struct ForgotPassword<'a> {
        client: &'a super::Client,
        body: Result<types::builder::ForgotPassword, String>,
    }
    impl<'a> ForgotPassword<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                body: Ok(::std::default::Default::default()),
            }
        }
        pub fn body<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::ForgotPassword>,
            <V as std::convert::TryInto<
                types::ForgotPassword,
            >>::Error: std::fmt::Display,
        {
            self.body = value
                .try_into()
                .map(From::from)
                .map_err(|s| {
                    format!("conversion to `ForgotPassword` for body failed: {}", s)
                });
            self
        }
        pub fn body_map<F>(mut self, f: F) -> Self
        where
            F: std::ops::FnOnce(
                types::builder::ForgotPassword,
            ) -> types::builder::ForgotPassword,
        {
            self.body = self.body.map(f);
            self
        }
        ///Sends a `POST` request to `/password/forgot`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::Forgotten>, Error<types::ErrorBody>> {
            let Self { client, body } = self;
            let body = body
                .and_then(|v| {
                    types::ForgotPassword::try_from(v).map_err(|e| e.to_string())
                })
                .map_err(Error::InvalidRequest)?;
            let url = format!("{}/password/forgot", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .post(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .json(&body)
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "forgot_password",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                202u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                408u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                413u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                415u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::reset_password`]

[`Client::reset_password`]: super::Client::reset_password*/
    #[derive(Debug, Clone)]
    pub struct ResetPassword<'a> {
        client: &'a super::Client,
        body: Result<types::builder::ResetPassword, String>,
    }
    impl<'a> ResetPassword<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                body: Ok(::std::default::Default::default()),
            }
        }
        pub fn body<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::ResetPassword>,
            <V as std::convert::TryInto<types::ResetPassword>>::Error: std::fmt::Display,
        {
            self.body = value
                .try_into()
                .map(From::from)
                .map_err(|s| {
                    format!("conversion to `ResetPassword` for body failed: {}", s)
                });
            self
        }
        pub fn body_map<F>(mut self, f: F) -> Self
        where
            F: std::ops::FnOnce(
                types::builder::ResetPassword,
            ) -> types::builder::ResetPassword,
        {
            self.body = self.body.map(f);
            self
        }
        ///Sends a `POST` request to `/password/reset`
        pub async fn send(self) -> Result<ResponseValue<()>, Error<types::ErrorBody>> {
            let Self { client, body } = self;
            let body = body
                .and_then(|v| {
                    types::ResetPassword::try_from(v).map_err(|e| e.to_string())
                })
                .map_err(Error::InvalidRequest)?;
            let url = format!("{}/password/reset", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .post(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .json(&body)
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "reset_password",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                204u16 => Ok(ResponseValue::empty(response)),
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                408u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                413u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                415u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::open_session`]

[`Client::open_session`]: super::Client::open_session*/
    #[derive(Debug, Clone)]
    pub struct OpenSession<'a> {
        client: &'a super::Client,
    }
    impl<'a> OpenSession<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self { client: client }
        }
        ///Sends a `POST` request to `/session`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::SessionToken>, Error<types::ErrorBody>> {
            let Self { client } = self;
            let url = format!("{}/session", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .post(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "open_session",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::refresh_session`]

[`Client::refresh_session`]: super::Client::refresh_session*/
    #[derive(Debug, Clone)]
    pub struct RefreshSession<'a> {
        client: &'a super::Client,
        audiomill_session: Result<Option<::std::string::String>, String>,
    }
    impl<'a> RefreshSession<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                audiomill_session: Ok(None),
            }
        }
        pub fn audiomill_session<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::std::string::String>,
        {
            self.audiomill_session = value
                .try_into()
                .map(Some)
                .map_err(|_| {
                    "conversion to `:: std :: string :: String` for audiomill_session failed"
                        .to_string()
                });
            self
        }
        ///Sends a `POST` request to `/session/refresh`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::SessionToken>, Error<types::ErrorBody>> {
            let Self { client, audiomill_session } = self;
            let audiomill_session = audiomill_session.map_err(Error::InvalidRequest)?;
            let url = format!("{}/session/refresh", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(2usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            if let Some(value) = audiomill_session {
                header_map.append("Audiomill-Session", value.to_string().try_into()?);
            }
            #[allow(unused_mut)]
            let mut request = client
                .client
                .post(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "refresh_session",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::sign_in_methods`]

[`Client::sign_in_methods`]: super::Client::sign_in_methods*/
    #[derive(Debug, Clone)]
    pub struct SignInMethods<'a> {
        client: &'a super::Client,
    }
    impl<'a> SignInMethods<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self { client: client }
        }
        ///Sends a `GET` request to `/sign-in/methods`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::SignInMethods>, Error<types::ErrorBody>> {
            let Self { client } = self;
            let url = format!("{}/sign-in/methods", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .get(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "sign_in_methods",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::get_signup`]

[`Client::get_signup`]: super::Client::get_signup*/
    #[derive(Debug, Clone)]
    pub struct GetSignup<'a> {
        client: &'a super::Client,
    }
    impl<'a> GetSignup<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self { client: client }
        }
        ///Sends a `GET` request to `/signup`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::SignupOpen>, Error<types::ErrorBody>> {
            let Self { client } = self;
            let url = format!("{}/signup", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .get(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "get_signup",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::sign_up`]

[`Client::sign_up`]: super::Client::sign_up*/
    #[derive(Debug, Clone)]
    pub struct SignUp<'a> {
        client: &'a super::Client,
        body: Result<types::builder::Join, String>,
    }
    impl<'a> SignUp<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                body: Ok(::std::default::Default::default()),
            }
        }
        pub fn body<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::Join>,
            <V as std::convert::TryInto<types::Join>>::Error: std::fmt::Display,
        {
            self.body = value
                .try_into()
                .map(From::from)
                .map_err(|s| format!("conversion to `Join` for body failed: {}", s));
            self
        }
        pub fn body_map<F>(mut self, f: F) -> Self
        where
            F: std::ops::FnOnce(types::builder::Join) -> types::builder::Join,
        {
            self.body = self.body.map(f);
            self
        }
        ///Sends a `POST` request to `/signup`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::Joined>, Error<types::ErrorBody>> {
            let Self { client, body } = self;
            let body = body
                .and_then(|v| types::Join::try_from(v).map_err(|e| e.to_string()))
                .map_err(Error::InvalidRequest)?;
            let url = format!("{}/signup", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .post(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .json(&body)
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "sign_up",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                201u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                408u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                409u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                413u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                415u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::get_upload_stats`]

[`Client::get_upload_stats`]: super::Client::get_upload_stats*/
    #[derive(Debug, Clone)]
    pub struct GetUploadStats<'a> {
        client: &'a super::Client,
        scope: Result<Option<types::StatsScope>, String>,
    }
    impl<'a> GetUploadStats<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                scope: Ok(None),
            }
        }
        pub fn scope<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::StatsScope>,
        {
            self.scope = value
                .try_into()
                .map(Some)
                .map_err(|_| "conversion to `StatsScope` for scope failed".to_string());
            self
        }
        ///Sends a `GET` request to `/stats/uploads`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::UploadStatistics>, Error<types::ErrorBody>> {
            let Self { client, scope } = self;
            let scope = scope.map_err(Error::InvalidRequest)?;
            let url = format!("{}/stats/uploads", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .get(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .query(&progenitor_client::QueryParam::new("scope", &scope))
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "get_upload_stats",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::get_job_status`]

[`Client::get_job_status`]: super::Client::get_job_status*/
    #[derive(Debug, Clone)]
    pub struct GetJobStatus<'a> {
        client: &'a super::Client,
        job_id: Result<::uuid::Uuid, String>,
    }
    impl<'a> GetJobStatus<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                job_id: Err("job_id was not initialized".to_string()),
            }
        }
        pub fn job_id<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::uuid::Uuid>,
        {
            self.job_id = value
                .try_into()
                .map_err(|_| {
                    "conversion to `:: uuid :: Uuid` for job_id failed".to_string()
                });
            self
        }
        ///Sends a `GET` request to `/status/{job_id}`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::JobStatusBody>, Error<types::ErrorBody>> {
            let Self { client, job_id } = self;
            let job_id = job_id.map_err(Error::InvalidRequest)?;
            let url = format!(
                "{}/status/{}", client.baseurl, encode_path(& job_id.to_string()),
            );
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .get(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "get_job_status",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                404u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::refresh_token`]

[`Client::refresh_token`]: super::Client::refresh_token*/
    #[derive(Debug, Clone)]
    pub struct RefreshToken<'a> {
        client: &'a super::Client,
        body: Result<types::builder::RefreshRequest, String>,
    }
    impl<'a> RefreshToken<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                body: Ok(::std::default::Default::default()),
            }
        }
        pub fn body<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::RefreshRequest>,
            <V as std::convert::TryInto<
                types::RefreshRequest,
            >>::Error: std::fmt::Display,
        {
            self.body = value
                .try_into()
                .map(From::from)
                .map_err(|s| {
                    format!("conversion to `RefreshRequest` for body failed: {}", s)
                });
            self
        }
        pub fn body_map<F>(mut self, f: F) -> Self
        where
            F: std::ops::FnOnce(
                types::builder::RefreshRequest,
            ) -> types::builder::RefreshRequest,
        {
            self.body = self.body.map(f);
            self
        }
        ///Sends a `POST` request to `/token/refresh`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::TokenPair>, Error<types::ErrorBody>> {
            let Self { client, body } = self;
            let body = body
                .and_then(|v| {
                    types::RefreshRequest::try_from(v).map_err(|e| e.to_string())
                })
                .map_err(Error::InvalidRequest)?;
            let url = format!("{}/token/refresh", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .post(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .json(&body)
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "refresh_token",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                408u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                413u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                415u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::create_upload_token`]

[`Client::create_upload_token`]: super::Client::create_upload_token*/
    #[derive(Debug, Clone)]
    pub struct CreateUploadToken<'a> {
        client: &'a super::Client,
        body: Result<types::builder::NewUploadToken, String>,
    }
    impl<'a> CreateUploadToken<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                body: Ok(::std::default::Default::default()),
            }
        }
        pub fn body<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::NewUploadToken>,
            <V as std::convert::TryInto<
                types::NewUploadToken,
            >>::Error: std::fmt::Display,
        {
            self.body = value
                .try_into()
                .map(From::from)
                .map_err(|s| {
                    format!("conversion to `NewUploadToken` for body failed: {}", s)
                });
            self
        }
        pub fn body_map<F>(mut self, f: F) -> Self
        where
            F: std::ops::FnOnce(
                types::builder::NewUploadToken,
            ) -> types::builder::NewUploadToken,
        {
            self.body = self.body.map(f);
            self
        }
        ///Sends a `POST` request to `/upload-tokens`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::CreatedUploadToken>, Error<types::ErrorBody>> {
            let Self { client, body } = self;
            let body = body
                .and_then(|v| {
                    types::NewUploadToken::try_from(v).map_err(|e| e.to_string())
                })
                .map_err(Error::InvalidRequest)?;
            let url = format!("{}/upload-tokens", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .post(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .json(&body)
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "create_upload_token",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                201u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                408u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                413u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                415u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::list_users`]

[`Client::list_users`]: super::Client::list_users*/
    #[derive(Debug, Clone)]
    pub struct ListUsers<'a> {
        client: &'a super::Client,
        after: Result<Option<types::ListUsersAfter>, String>,
        limit: Result<Option<::std::num::NonZeroU32>, String>,
        search: Result<Option<types::ListUsersSearch>, String>,
    }
    impl<'a> ListUsers<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                after: Ok(None),
                limit: Ok(None),
                search: Ok(None),
            }
        }
        pub fn after<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::ListUsersAfter>,
        {
            self.after = value
                .try_into()
                .map(Some)
                .map_err(|_| {
                    "conversion to `ListUsersAfter` for after failed".to_string()
                });
            self
        }
        pub fn limit<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::std::num::NonZeroU32>,
        {
            self.limit = value
                .try_into()
                .map(Some)
                .map_err(|_| {
                    "conversion to `:: std :: num :: NonZeroU32` for limit failed"
                        .to_string()
                });
            self
        }
        pub fn search<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::ListUsersSearch>,
        {
            self.search = value
                .try_into()
                .map(Some)
                .map_err(|_| {
                    "conversion to `ListUsersSearch` for search failed".to_string()
                });
            self
        }
        ///Sends a `GET` request to `/users`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::ManagedAccountPage>, Error<types::ErrorBody>> {
            let Self { client, after, limit, search } = self;
            let after = after.map_err(Error::InvalidRequest)?;
            let limit = limit.map_err(Error::InvalidRequest)?;
            let search = search.map_err(Error::InvalidRequest)?;
            let url = format!("{}/users", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .get(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .query(&progenitor_client::QueryParam::new("after", &after))
                .query(&progenitor_client::QueryParam::new("limit", &limit))
                .query(&progenitor_client::QueryParam::new("search", &search))
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "list_users",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::add_user`]

[`Client::add_user`]: super::Client::add_user*/
    #[derive(Debug, Clone)]
    pub struct AddUser<'a> {
        client: &'a super::Client,
        body: Result<types::builder::NewAccount, String>,
    }
    impl<'a> AddUser<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                body: Ok(::std::default::Default::default()),
            }
        }
        pub fn body<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::NewAccount>,
            <V as std::convert::TryInto<types::NewAccount>>::Error: std::fmt::Display,
        {
            self.body = value
                .try_into()
                .map(From::from)
                .map_err(|s| {
                    format!("conversion to `NewAccount` for body failed: {}", s)
                });
            self
        }
        pub fn body_map<F>(mut self, f: F) -> Self
        where
            F: std::ops::FnOnce(
                types::builder::NewAccount,
            ) -> types::builder::NewAccount,
        {
            self.body = self.body.map(f);
            self
        }
        ///Sends a `POST` request to `/users`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::ManagedAccount>, Error<types::ErrorBody>> {
            let Self { client, body } = self;
            let body = body
                .and_then(|v| types::NewAccount::try_from(v).map_err(|e| e.to_string()))
                .map_err(Error::InvalidRequest)?;
            let url = format!("{}/users", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .post(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .json(&body)
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "add_user",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                201u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                408u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                409u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                413u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                415u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::update_user`]

[`Client::update_user`]: super::Client::update_user*/
    #[derive(Debug, Clone)]
    pub struct UpdateUser<'a> {
        client: &'a super::Client,
        user_id: Result<::uuid::Uuid, String>,
        body: Result<types::builder::UserChanges, String>,
    }
    impl<'a> UpdateUser<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                user_id: Err("user_id was not initialized".to_string()),
                body: Ok(::std::default::Default::default()),
            }
        }
        pub fn user_id<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::uuid::Uuid>,
        {
            self.user_id = value
                .try_into()
                .map_err(|_| {
                    "conversion to `:: uuid :: Uuid` for user_id failed".to_string()
                });
            self
        }
        pub fn body<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::UserChanges>,
            <V as std::convert::TryInto<types::UserChanges>>::Error: std::fmt::Display,
        {
            self.body = value
                .try_into()
                .map(From::from)
                .map_err(|s| {
                    format!("conversion to `UserChanges` for body failed: {}", s)
                });
            self
        }
        pub fn body_map<F>(mut self, f: F) -> Self
        where
            F: std::ops::FnOnce(
                types::builder::UserChanges,
            ) -> types::builder::UserChanges,
        {
            self.body = self.body.map(f);
            self
        }
        ///Sends a `PATCH` request to `/users/{user_id}`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::UserSummary>, Error<types::ErrorBody>> {
            let Self { client, user_id, body } = self;
            let user_id = user_id.map_err(Error::InvalidRequest)?;
            let body = body
                .and_then(|v| types::UserChanges::try_from(v).map_err(|e| e.to_string()))
                .map_err(Error::InvalidRequest)?;
            let url = format!(
                "{}/users/{}", client.baseurl, encode_path(& user_id.to_string()),
            );
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .patch(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .json(&body)
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "update_user",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                404u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                408u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                413u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                415u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::validate_token`]

[`Client::validate_token`]: super::Client::validate_token*/
    #[derive(Debug, Clone)]
    pub struct ValidateToken<'a> {
        client: &'a super::Client,
    }
    impl<'a> ValidateToken<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self { client: client }
        }
        ///Sends a `POST` request to `/validate`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::Identity>, Error<types::ErrorBody>> {
            let Self { client } = self;
            let url = format!("{}/validate", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .post(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "validate_token",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::list_watches`]

[`Client::list_watches`]: super::Client::list_watches*/
    #[derive(Debug, Clone)]
    pub struct ListWatches<'a> {
        client: &'a super::Client,
    }
    impl<'a> ListWatches<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self { client: client }
        }
        ///Sends a `GET` request to `/watches`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::WatchList>, Error<types::ErrorBody>> {
            let Self { client } = self;
            let url = format!("{}/watches", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .get(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "list_watches",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::create_watch`]

[`Client::create_watch`]: super::Client::create_watch*/
    #[derive(Debug, Clone)]
    pub struct CreateWatch<'a> {
        client: &'a super::Client,
        body: Result<types::builder::NewWatchBody, String>,
    }
    impl<'a> CreateWatch<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                body: Ok(::std::default::Default::default()),
            }
        }
        pub fn body<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::NewWatchBody>,
            <V as std::convert::TryInto<types::NewWatchBody>>::Error: std::fmt::Display,
        {
            self.body = value
                .try_into()
                .map(From::from)
                .map_err(|s| {
                    format!("conversion to `NewWatchBody` for body failed: {}", s)
                });
            self
        }
        pub fn body_map<F>(mut self, f: F) -> Self
        where
            F: std::ops::FnOnce(
                types::builder::NewWatchBody,
            ) -> types::builder::NewWatchBody,
        {
            self.body = self.body.map(f);
            self
        }
        ///Sends a `POST` request to `/watches`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::WatchBody>, Error<types::ErrorBody>> {
            let Self { client, body } = self;
            let body = body
                .and_then(|v| {
                    types::NewWatchBody::try_from(v).map_err(|e| e.to_string())
                })
                .map_err(Error::InvalidRequest)?;
            let url = format!("{}/watches", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .post(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .json(&body)
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "create_watch",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                201u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                408u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                409u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                413u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                415u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::get_watch`]

[`Client::get_watch`]: super::Client::get_watch*/
    #[derive(Debug, Clone)]
    pub struct GetWatch<'a> {
        client: &'a super::Client,
        watch_id: Result<::uuid::Uuid, String>,
    }
    impl<'a> GetWatch<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                watch_id: Err("watch_id was not initialized".to_string()),
            }
        }
        pub fn watch_id<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::uuid::Uuid>,
        {
            self.watch_id = value
                .try_into()
                .map_err(|_| {
                    "conversion to `:: uuid :: Uuid` for watch_id failed".to_string()
                });
            self
        }
        ///Sends a `GET` request to `/watches/{watch_id}`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::WatchBody>, Error<types::ErrorBody>> {
            let Self { client, watch_id } = self;
            let watch_id = watch_id.map_err(Error::InvalidRequest)?;
            let url = format!(
                "{}/watches/{}", client.baseurl, encode_path(& watch_id.to_string()),
            );
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .get(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "get_watch",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                404u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::delete_watch`]

[`Client::delete_watch`]: super::Client::delete_watch*/
    #[derive(Debug, Clone)]
    pub struct DeleteWatch<'a> {
        client: &'a super::Client,
        watch_id: Result<::uuid::Uuid, String>,
    }
    impl<'a> DeleteWatch<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                watch_id: Err("watch_id was not initialized".to_string()),
            }
        }
        pub fn watch_id<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::uuid::Uuid>,
        {
            self.watch_id = value
                .try_into()
                .map_err(|_| {
                    "conversion to `:: uuid :: Uuid` for watch_id failed".to_string()
                });
            self
        }
        ///Sends a `DELETE` request to `/watches/{watch_id}`
        pub async fn send(self) -> Result<ResponseValue<()>, Error<types::ErrorBody>> {
            let Self { client, watch_id } = self;
            let watch_id = watch_id.map_err(Error::InvalidRequest)?;
            let url = format!(
                "{}/watches/{}", client.baseurl, encode_path(& watch_id.to_string()),
            );
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .delete(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "delete_watch",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                204u16 => Ok(ResponseValue::empty(response)),
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                404u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::pause_watch`]

[`Client::pause_watch`]: super::Client::pause_watch*/
    #[derive(Debug, Clone)]
    pub struct PauseWatch<'a> {
        client: &'a super::Client,
        watch_id: Result<::uuid::Uuid, String>,
    }
    impl<'a> PauseWatch<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                watch_id: Err("watch_id was not initialized".to_string()),
            }
        }
        pub fn watch_id<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::uuid::Uuid>,
        {
            self.watch_id = value
                .try_into()
                .map_err(|_| {
                    "conversion to `:: uuid :: Uuid` for watch_id failed".to_string()
                });
            self
        }
        ///Sends a `POST` request to `/watches/{watch_id}/pause`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::WatchBody>, Error<types::ErrorBody>> {
            let Self { client, watch_id } = self;
            let watch_id = watch_id.map_err(Error::InvalidRequest)?;
            let url = format!(
                "{}/watches/{}/pause", client.baseurl, encode_path(& watch_id
                .to_string()),
            );
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .post(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "pause_watch",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                404u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::resume_watch`]

[`Client::resume_watch`]: super::Client::resume_watch*/
    #[derive(Debug, Clone)]
    pub struct ResumeWatch<'a> {
        client: &'a super::Client,
        watch_id: Result<::uuid::Uuid, String>,
    }
    impl<'a> ResumeWatch<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                watch_id: Err("watch_id was not initialized".to_string()),
            }
        }
        pub fn watch_id<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::uuid::Uuid>,
        {
            self.watch_id = value
                .try_into()
                .map_err(|_| {
                    "conversion to `:: uuid :: Uuid` for watch_id failed".to_string()
                });
            self
        }
        ///Sends a `POST` request to `/watches/{watch_id}/resume`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::WatchBody>, Error<types::ErrorBody>> {
            let Self { client, watch_id } = self;
            let watch_id = watch_id.map_err(Error::InvalidRequest)?;
            let url = format!(
                "{}/watches/{}/resume", client.baseurl, encode_path(& watch_id
                .to_string()),
            );
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .post(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "resume_watch",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                404u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::list_webhooks`]

[`Client::list_webhooks`]: super::Client::list_webhooks*/
    #[derive(Debug, Clone)]
    pub struct ListWebhooks<'a> {
        client: &'a super::Client,
    }
    impl<'a> ListWebhooks<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self { client: client }
        }
        ///Sends a `GET` request to `/webhooks`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::WebhookList>, Error<types::ErrorBody>> {
            let Self { client } = self;
            let url = format!("{}/webhooks", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .get(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "list_webhooks",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::create_webhook`]

[`Client::create_webhook`]: super::Client::create_webhook*/
    #[derive(Debug, Clone)]
    pub struct CreateWebhook<'a> {
        client: &'a super::Client,
        body: Result<types::builder::NewWebhook, String>,
    }
    impl<'a> CreateWebhook<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                body: Ok(::std::default::Default::default()),
            }
        }
        pub fn body<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::NewWebhook>,
            <V as std::convert::TryInto<types::NewWebhook>>::Error: std::fmt::Display,
        {
            self.body = value
                .try_into()
                .map(From::from)
                .map_err(|s| {
                    format!("conversion to `NewWebhook` for body failed: {}", s)
                });
            self
        }
        pub fn body_map<F>(mut self, f: F) -> Self
        where
            F: std::ops::FnOnce(
                types::builder::NewWebhook,
            ) -> types::builder::NewWebhook,
        {
            self.body = self.body.map(f);
            self
        }
        ///Sends a `POST` request to `/webhooks`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::CreatedWebhook>, Error<types::ErrorBody>> {
            let Self { client, body } = self;
            let body = body
                .and_then(|v| types::NewWebhook::try_from(v).map_err(|e| e.to_string()))
                .map_err(Error::InvalidRequest)?;
            let url = format!("{}/webhooks", client.baseurl,);
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .post(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .json(&body)
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "create_webhook",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                201u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                408u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                409u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                413u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                415u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::get_webhook`]

[`Client::get_webhook`]: super::Client::get_webhook*/
    #[derive(Debug, Clone)]
    pub struct GetWebhook<'a> {
        client: &'a super::Client,
        webhook_id: Result<::uuid::Uuid, String>,
    }
    impl<'a> GetWebhook<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                webhook_id: Err("webhook_id was not initialized".to_string()),
            }
        }
        pub fn webhook_id<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::uuid::Uuid>,
        {
            self.webhook_id = value
                .try_into()
                .map_err(|_| {
                    "conversion to `:: uuid :: Uuid` for webhook_id failed".to_string()
                });
            self
        }
        ///Sends a `GET` request to `/webhooks/{webhook_id}`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::Webhook>, Error<types::ErrorBody>> {
            let Self { client, webhook_id } = self;
            let webhook_id = webhook_id.map_err(Error::InvalidRequest)?;
            let url = format!(
                "{}/webhooks/{}", client.baseurl, encode_path(& webhook_id.to_string()),
            );
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .get(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "get_webhook",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                404u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::delete_webhook`]

[`Client::delete_webhook`]: super::Client::delete_webhook*/
    #[derive(Debug, Clone)]
    pub struct DeleteWebhook<'a> {
        client: &'a super::Client,
        webhook_id: Result<::uuid::Uuid, String>,
    }
    impl<'a> DeleteWebhook<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                webhook_id: Err("webhook_id was not initialized".to_string()),
            }
        }
        pub fn webhook_id<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::uuid::Uuid>,
        {
            self.webhook_id = value
                .try_into()
                .map_err(|_| {
                    "conversion to `:: uuid :: Uuid` for webhook_id failed".to_string()
                });
            self
        }
        ///Sends a `DELETE` request to `/webhooks/{webhook_id}`
        pub async fn send(self) -> Result<ResponseValue<()>, Error<types::ErrorBody>> {
            let Self { client, webhook_id } = self;
            let webhook_id = webhook_id.map_err(Error::InvalidRequest)?;
            let url = format!(
                "{}/webhooks/{}", client.baseurl, encode_path(& webhook_id.to_string()),
            );
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .delete(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "delete_webhook",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                204u16 => Ok(ResponseValue::empty(response)),
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                404u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::update_webhook`]

[`Client::update_webhook`]: super::Client::update_webhook*/
    #[derive(Debug, Clone)]
    pub struct UpdateWebhook<'a> {
        client: &'a super::Client,
        webhook_id: Result<::uuid::Uuid, String>,
        body: Result<types::builder::WebhookChanges, String>,
    }
    impl<'a> UpdateWebhook<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                webhook_id: Err("webhook_id was not initialized".to_string()),
                body: Ok(::std::default::Default::default()),
            }
        }
        pub fn webhook_id<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::uuid::Uuid>,
        {
            self.webhook_id = value
                .try_into()
                .map_err(|_| {
                    "conversion to `:: uuid :: Uuid` for webhook_id failed".to_string()
                });
            self
        }
        pub fn body<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::WebhookChanges>,
            <V as std::convert::TryInto<
                types::WebhookChanges,
            >>::Error: std::fmt::Display,
        {
            self.body = value
                .try_into()
                .map(From::from)
                .map_err(|s| {
                    format!("conversion to `WebhookChanges` for body failed: {}", s)
                });
            self
        }
        pub fn body_map<F>(mut self, f: F) -> Self
        where
            F: std::ops::FnOnce(
                types::builder::WebhookChanges,
            ) -> types::builder::WebhookChanges,
        {
            self.body = self.body.map(f);
            self
        }
        ///Sends a `PATCH` request to `/webhooks/{webhook_id}`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::Webhook>, Error<types::ErrorBody>> {
            let Self { client, webhook_id, body } = self;
            let webhook_id = webhook_id.map_err(Error::InvalidRequest)?;
            let body = body
                .and_then(|v| {
                    types::WebhookChanges::try_from(v).map_err(|e| e.to_string())
                })
                .map_err(Error::InvalidRequest)?;
            let url = format!(
                "{}/webhooks/{}", client.baseurl, encode_path(& webhook_id.to_string()),
            );
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .patch(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .json(&body)
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "update_webhook",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                404u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                408u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                413u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                415u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::list_webhook_deliveries`]

[`Client::list_webhook_deliveries`]: super::Client::list_webhook_deliveries*/
    #[derive(Debug, Clone)]
    pub struct ListWebhookDeliveries<'a> {
        client: &'a super::Client,
        webhook_id: Result<::uuid::Uuid, String>,
        limit: Result<Option<::std::num::NonZeroU32>, String>,
    }
    impl<'a> ListWebhookDeliveries<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                webhook_id: Err("webhook_id was not initialized".to_string()),
                limit: Ok(None),
            }
        }
        pub fn webhook_id<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::uuid::Uuid>,
        {
            self.webhook_id = value
                .try_into()
                .map_err(|_| {
                    "conversion to `:: uuid :: Uuid` for webhook_id failed".to_string()
                });
            self
        }
        pub fn limit<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::std::num::NonZeroU32>,
        {
            self.limit = value
                .try_into()
                .map(Some)
                .map_err(|_| {
                    "conversion to `:: std :: num :: NonZeroU32` for limit failed"
                        .to_string()
                });
            self
        }
        ///Sends a `GET` request to `/webhooks/{webhook_id}/deliveries`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::DeliveryList>, Error<types::ErrorBody>> {
            let Self { client, webhook_id, limit } = self;
            let webhook_id = webhook_id.map_err(Error::InvalidRequest)?;
            let limit = limit.map_err(Error::InvalidRequest)?;
            let url = format!(
                "{}/webhooks/{}/deliveries", client.baseurl, encode_path(& webhook_id
                .to_string()),
            );
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .get(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .query(&progenitor_client::QueryParam::new("limit", &limit))
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "list_webhook_deliveries",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                404u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::replay_webhook_delivery`]

[`Client::replay_webhook_delivery`]: super::Client::replay_webhook_delivery*/
    #[derive(Debug, Clone)]
    pub struct ReplayWebhookDelivery<'a> {
        client: &'a super::Client,
        webhook_id: Result<::uuid::Uuid, String>,
        delivery_id: Result<types::ReplayWebhookDeliveryDeliveryId, String>,
    }
    impl<'a> ReplayWebhookDelivery<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                webhook_id: Err("webhook_id was not initialized".to_string()),
                delivery_id: Err("delivery_id was not initialized".to_string()),
            }
        }
        pub fn webhook_id<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::uuid::Uuid>,
        {
            self.webhook_id = value
                .try_into()
                .map_err(|_| {
                    "conversion to `:: uuid :: Uuid` for webhook_id failed".to_string()
                });
            self
        }
        pub fn delivery_id<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<types::ReplayWebhookDeliveryDeliveryId>,
        {
            self.delivery_id = value
                .try_into()
                .map_err(|_| {
                    "conversion to `ReplayWebhookDeliveryDeliveryId` for delivery_id failed"
                        .to_string()
                });
            self
        }
        ///Sends a `POST` request to `/webhooks/{webhook_id}/deliveries/{delivery_id}/replay`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::ReplayAccepted>, Error<types::ErrorBody>> {
            let Self { client, webhook_id, delivery_id } = self;
            let webhook_id = webhook_id.map_err(Error::InvalidRequest)?;
            let delivery_id = delivery_id.map_err(Error::InvalidRequest)?;
            let url = format!(
                "{}/webhooks/{}/deliveries/{}/replay", client.baseurl, encode_path(&
                webhook_id.to_string()), encode_path(& delivery_id.to_string()),
            );
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .post(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "replay_webhook_delivery",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                202u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                404u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                409u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
    /**Builder for [`Client::rotate_webhook_secret`]

[`Client::rotate_webhook_secret`]: super::Client::rotate_webhook_secret*/
    #[derive(Debug, Clone)]
    pub struct RotateWebhookSecret<'a> {
        client: &'a super::Client,
        webhook_id: Result<::uuid::Uuid, String>,
    }
    impl<'a> RotateWebhookSecret<'a> {
        pub fn new(client: &'a super::Client) -> Self {
            Self {
                client: client,
                webhook_id: Err("webhook_id was not initialized".to_string()),
            }
        }
        pub fn webhook_id<V>(mut self, value: V) -> Self
        where
            V: std::convert::TryInto<::uuid::Uuid>,
        {
            self.webhook_id = value
                .try_into()
                .map_err(|_| {
                    "conversion to `:: uuid :: Uuid` for webhook_id failed".to_string()
                });
            self
        }
        ///Sends a `POST` request to `/webhooks/{webhook_id}/secret`
        pub async fn send(
            self,
        ) -> Result<ResponseValue<types::RotatedSecret>, Error<types::ErrorBody>> {
            let Self { client, webhook_id } = self;
            let webhook_id = webhook_id.map_err(Error::InvalidRequest)?;
            let url = format!(
                "{}/webhooks/{}/secret", client.baseurl, encode_path(& webhook_id
                .to_string()),
            );
            let mut header_map = ::reqwest::header::HeaderMap::with_capacity(1usize);
            header_map
                .append(
                    ::reqwest::header::HeaderName::from_static("api-version"),
                    ::reqwest::header::HeaderValue::from_static(
                        super::Client::api_version(),
                    ),
                );
            #[allow(unused_mut)]
            let mut request = client
                .client
                .post(url)
                .header(
                    ::reqwest::header::ACCEPT,
                    ::reqwest::header::HeaderValue::from_static("application/json"),
                )
                .headers(header_map)
                .build()?;
            let info = OperationInfo {
                operation_id: "rotate_webhook_secret",
            };
            client.pre(&mut request, &info).await?;
            let result = client.exec(request, &info).await;
            client.post(&result, &info).await?;
            let response = result?;
            match response.status().as_u16() {
                200u16 => ResponseValue::from_response(response).await,
                400u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                401u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                403u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                404u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                429u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                503u16 => {
                    Err(
                        Error::ErrorResponse(
                            ResponseValue::from_response(response).await?,
                        ),
                    )
                }
                _ => Err(Error::UnexpectedResponse(response)),
            }
        }
    }
}
/// Items consumers will typically use such as the Client.
pub mod prelude {
    pub use self::super::Client;
}
