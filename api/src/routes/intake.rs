//! Taking an upload in, as named steps: [`read_form`] walks the form, reads the output fields
//! and stores its videos (one, or a batch of up to `MAX_FILES_PER_UPLOAD`)
//! through [`read_video_part`] (the name, the extension and the first bytes checked before
//! anything is stored) and [`store_source`] (streamed into storage under the size limit); then
//! [`start_jobs`] records a job per video and starts its workflow. Each step fails with an
//! [`UploadError`], and whatever an earlier step stored or started is removed when a later one
//! fails.
//! A retried upload whose `Idempotency-Key` already started a job goes through
//! [`fingerprint`] instead: the same checks, the file hashed and nothing stored.

use super::context::{Caller, ErrorJson, store_part, unavailable};
use crate::{
    error::{ErrorBody, ErrorCode},
    form::{self, FrameGuard, FramingError},
    gateway::{Gateway, UploadLimits},
    upload::{self, Container, Head},
};
use audiomill_domain::lifecycle::{Quota, next_utc_day};
use audiomill_domain::{
    BatchId, JobId, ObjectKey, UserId,
    contract::{ConvertVideoInput, TASK_QUEUE},
    output::{FieldError, OutputOptions, OutputRequest},
    webhook::{self, WebhookEvent, WebhookUrl},
};
use audiomill_store::{
    NewEndpoint, NewJob, NotRecorded, ObjectStore, OverQuota, PutError, StoreError, Usage,
    WebhookEndpoint, time::now_millis,
};
use audiomill_workflows::ConvertVideo;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream::BoxStream};
use poem::Body;
use sha2::{Digest, Sha256};
use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicBool, Ordering},
};
use temporalio_client::{WorkflowStartOptions, WorkflowTerminateOptions};

/// What the caller may still keep and start, as found before the body is read. The quota is
/// checked again, exactly, as each job is recorded.
#[derive(Debug, Clone, Copy)]
pub struct Allowance {
    pub quota: Quota,
    pub usage: Usage,
}

impl Allowance {
    /// Bytes the storage quota leaves; `None` without one.
    pub fn room(&self) -> Option<u64> {
        self.quota
            .storage_bytes
            .map(|limit| limit.saturating_sub(self.usage.storage_bytes))
    }

    /// The limit the caller is already at, if any: no upload can pass it.
    pub fn exhausted(&self) -> Option<OverQuota> {
        if let Some(limit) = self.quota.jobs_per_day
            && self.usage.jobs_today >= limit
        {
            return Some(OverQuota::JobsPerDay {
                limit,
                used: self.usage.jobs_today,
            });
        }
        match self.quota.storage_bytes {
            Some(limit) if self.usage.storage_bytes >= limit => Some(OverQuota::Storage {
                limit,
                used: self.usage.storage_bytes,
            }),
            _ => None,
        }
    }

    /// The refusal of a file cut off at the room the storage quota left.
    fn storage_refusal(&self) -> UploadError {
        UploadError::OverQuota(OverQuota::Storage {
            limit: self.quota.storage_bytes.unwrap_or_default(),
            used: self.usage.storage_bytes,
        })
    }
}

/// What `user_id` may still keep and start; refused at once when a quota is already used
/// up (or the account is gone), before anything of a body is read.
pub async fn allowance(gw: &Gateway, user_id: UserId) -> Result<Allowance, UploadError> {
    let down = UploadError::from;
    let user = gw
        .db
        .user_by_id(user_id)
        .await
        .map_err(down)?
        .ok_or(UploadError::NoAccount)?;
    let usage = gw.db.usage(user_id, now_millis()).await.map_err(down)?;
    let allowance = Allowance {
        quota: user.quota.over(gw.quota),
        usage,
    };
    match allowance.exhausted() {
        Some(over) => Err(UploadError::OverQuota(over)),
        None => Ok(allowance),
    }
}

/// The sentence of an upload whose account is gone.
pub const NO_ACCOUNT: &str = "This account no longer exists.";

/// An upload over one of the caller's quotas, as every way of uploading answers it: storage
/// (413, no `retry_after`) or jobs per day (429), with the quota's figures for its headers.
struct QuotaRefusal {
    pub message: String,
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the day's count starts again (jobs per day only).
    pub retry_after: Option<u64>,
}

impl From<OverQuota> for QuotaRefusal {
    fn from(over: OverQuota) -> Self {
        match over {
            OverQuota::Storage { limit, used } => {
                let remaining = limit.saturating_sub(used);
                QuotaRefusal {
                    message: format!(
                        "Your storage quota is {} and {} of it is left, too little for this \
                         upload; delete jobs you no longer need (or wait for them to expire). \
                         Nothing was kept.",
                        megabytes(limit),
                        megabytes(remaining)
                    ),
                    limit,
                    remaining,
                    retry_after: None,
                }
            }
            OverQuota::JobsPerDay { limit, used } => {
                let now = now_millis();
                let reset = next_utc_day(now);
                QuotaRefusal {
                    message: format!(
                        "You have started {used} jobs today, as many as your quota of {limit} a \
                         day allows; the count starts again at {} (UTC midnight). Nothing was kept.",
                        super::context::rfc3339(reset)
                    ),
                    limit,
                    remaining: limit.saturating_sub(used),
                    retry_after: Some(((reset - now) as u64).div_ceil(1000)),
                }
            }
        }
    }
}

/// Bytes as people read a quota: MB with one decimal.
fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
}

/// What an accepted upload started: a job per file, and the batch they make when there are
/// several.
pub struct Received {
    pub sources: Vec<StoredSource>,
    pub batch_id: Option<BatchId>,
    /// The one-off endpoint of the upload's `callback_url`, with its secret.
    pub callback: Option<WebhookEndpoint>,
}

/// The whole upload once the caller is known: the form read, its videos stored (and hashed,
/// with `fingerprint`, which also holds the upload to one file), a job started for each. A
/// refused upload's remaining body is read (and dropped) before the refusal is returned.
pub async fn receive(
    gw: &Gateway,
    caller: &Caller,
    content_type: &str,
    body: Body,
    fingerprint: bool,
    allowance: Allowance,
) -> Result<Received, UploadError> {
    let into_storage = IntoStorage {
        objects: &gw.objects,
        limits: &gw.limits,
        fingerprint,
        allowance,
    };
    let files = if fingerprint {
        FileLimit::Keyed
    } else {
        FileLimit::Batch(gw.limits.max_files)
    };
    let mut form = open_upload(gw, content_type, body)?;
    let outcome = match read_form(gw, &mut form.multipart, &into_storage, files).await {
        Ok(read) => start_read(gw, caller, read, allowance.quota).await,
        Err(error) => Err(error),
    };
    form.settle(outcome).await
}

/// Starts a job for each video of a form read whole (a batch when there are several), its
/// one-off callback endpoint recorded first so that no job can end untold; on failure
/// nothing of the upload stays.
async fn start_read(
    gw: &Gateway,
    caller: &Caller,
    read: ReadForm<StoredSource>,
    quota: Quota,
) -> Result<Received, UploadError> {
    let batch_id = (read.videos.len() > 1).then(BatchId::generate);
    let one_off_for = match batch_id {
        Some(batch_id) => batch_id.to_string(),
        None => read.videos[0].job_id.to_string(),
    };
    let callback =
        match create_callback(gw, caller.user, read.callback.as_ref(), &one_off_for).await {
            Ok(callback) => callback,
            Err(error) => {
                for source in &read.videos {
                    discard(&gw.objects, Some(source)).await;
                }
                return Err(error);
            }
        };
    let batch = Batch {
        videos: &read.videos,
        options: &read.options,
        batch_id,
        quota,
    };
    let started = start_jobs(gw, caller, batch).await;
    if started.is_err() && callback.is_some() {
        let _ = gw.db.delete_callbacks(&one_off_for).await;
    }
    started.map(|()| Received {
        sources: read.videos,
        batch_id,
        callback,
    })
}

/// Starts the job of a resumable upload whose bytes are all stored, with its one-off callback
/// endpoint; on failure neither the job nor the endpoint stays, and the stored video is the
/// caller's to keep or remove. It joins `batch_id` when its client named one.
pub async fn start_resumed(
    gw: &Gateway,
    caller: &Caller,
    source: &StoredSource,
    read: &ReadForm<()>,
    batch_id: Option<BatchId>,
    quota: Quota,
) -> Result<Option<WebhookEndpoint>, UploadError> {
    let one_off_for = source.job_id.to_string();
    let callback = create_callback(gw, caller.user, read.callback.as_ref(), &one_off_for).await?;
    let batch = Batch {
        videos: std::slice::from_ref(source),
        options: &read.options,
        batch_id,
        quota,
    };
    let started = start_job(gw, caller, source, &batch).await;
    if started.is_err() && callback.is_some() {
        let _ = gw.db.delete_callbacks(&one_off_for).await;
    }
    started.map(|()| callback)
}

/// Records the one-off webhook endpoint of an upload's `callback_url` (if any), told of the
/// job or batch `one_off_for` names.
async fn create_callback(
    gw: &Gateway,
    user_id: UserId,
    url: Option<&WebhookUrl>,
    one_off_for: &str,
) -> Result<Option<WebhookEndpoint>, UploadError> {
    let Some(url) = url else {
        return Ok(None);
    };
    let endpoint = NewEndpoint {
        user_id,
        url: url.clone(),
        events: WebhookEvent::ENDINGS.to_vec(),
    };
    gw.db
        .create_callback(&endpoint, one_off_for)
        .await
        .map(Some)
        .map_err(UploadError::from)
}

/// Reads an upload through the same checks as [`receive`] and stores nothing: its file's
/// name and SHA-256, to compare with the upload an `Idempotency-Key` already started.
pub async fn fingerprint(
    gw: &Gateway,
    content_type: &str,
    body: Body,
) -> Result<Fingerprint, UploadError> {
    let hashed = HashOnly { limits: &gw.limits };
    let mut form = open_upload(gw, content_type, body)?;
    let outcome = read_form(gw, &mut form.multipart, &hashed, FileLimit::Keyed)
        .await
        .map(|read| {
            let video = read.videos.into_iter().next().expect("a form has a file");
            Fingerprint {
                options: read.options,
                ..video
            }
        });
    form.settle(outcome).await
}

/// Reads and drops a body that is refused before it is read (for at most [`DRAIN_PATIENCE`]),
/// so the client sees the answer instead of a reset connection.
pub async fn refuse_unread(body: Body) {
    let mut rest = body.into_bytes_stream();
    let _ = tokio::time::timeout(DRAIN_PATIENCE, async {
        while let Some(Ok(_)) = rest.next().await {}
    })
    .await;
}

/// Opens an upload's multipart `body`, which must name its boundary.
fn open_upload(gw: &Gateway, content_type: &str, body: Body) -> Result<FormBody, UploadError> {
    let Ok(boundary) = multer::parse_boundary(content_type) else {
        return Err(UploadError::bad(
            "The body must be multipart/form-data with a boundary.",
        ));
    };
    Ok(open_form(body, boundary, &gw.limits))
}

/// Why an upload was refused; each is one documented answer of `POST /upload`.
#[derive(Debug)]
pub enum UploadError {
    BadRequest(String),
    /// An output field's value, or how the fields go together.
    BadField(FieldError),
    UnsupportedMedia(String),
    TooLarge {
        limit_mb: u64,
    },
    /// A dependency (`what`) is down; `cause` is for the log only.
    Unavailable {
        what: &'static str,
        cause: String,
    },
    /// The body fell below the minimum upload rate.
    TooSlow,
    /// The caller's storage or jobs-per-day quota.
    OverQuota(OverQuota),
    /// The caller's account was removed after the token was issued.
    NoAccount,
}

impl UploadError {
    /// The reason label of the refusal in the metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BadRequest(_) | Self::BadField(_) => "form",
            Self::UnsupportedMedia(_) => "type",
            Self::TooLarge { .. } => "size",
            Self::Unavailable { .. } => "unavailable",
            Self::TooSlow => "slow",
            Self::OverQuota(_) => "quota",
            Self::NoAccount => "auth",
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    fn unavailable(what: &'static str, cause: impl std::fmt::Display) -> Self {
        Self::Unavailable {
            what,
            cause: cause.to_string(),
        }
    }
}

impl From<StoreError> for UploadError {
    fn from(error: StoreError) -> Self {
        Self::unavailable(store_part(&error), error)
    }
}

/// An upload's refusal as an answer, in the terms both ways of uploading (a form, tus) share.
pub enum UploadAnswer {
    BadRequest(ErrorJson),
    Unauthorized(ErrorJson),
    /// Each way words it, as what it keeps of a slow body differs.
    TooSlow,
    /// With the storage quota's limit and remaining room, when the quota refused it.
    TooLarge(ErrorJson, Option<u64>, Option<u64>),
    UnsupportedMedia(ErrorJson),
    /// The jobs-per-day quota: its limit, what is left, and seconds until the count restarts.
    TooMany(ErrorJson, Option<u64>, Option<u64>, Option<u64>),
    Unavailable(ErrorJson),
}

impl From<UploadError> for UploadAnswer {
    fn from(error: UploadError) -> Self {
        match error {
            UploadError::BadRequest(message) => {
                Self::BadRequest(ErrorBody::new(ErrorCode::BadRequest, message))
            }
            UploadError::BadField(error) => {
                Self::BadRequest(ErrorBody::for_field(error.field, format!("{error}.")))
            }
            UploadError::UnsupportedMedia(message) => {
                Self::UnsupportedMedia(ErrorBody::new(ErrorCode::UnsupportedMediaType, message))
            }
            UploadError::TooLarge { limit_mb } => Self::TooLarge(
                ErrorBody::new(
                    ErrorCode::PayloadTooLarge,
                    format!("The file is larger than the {limit_mb} MB limit."),
                ),
                None,
                None,
            ),
            UploadError::OverQuota(over) => QuotaRefusal::from(over).into(),
            UploadError::NoAccount => {
                Self::Unauthorized(ErrorBody::new(ErrorCode::Unauthorized, NO_ACCOUNT))
            }
            UploadError::Unavailable { what, cause } => Self::Unavailable(unavailable(what, cause)),
            UploadError::TooSlow => Self::TooSlow,
        }
    }
}

impl From<QuotaRefusal> for UploadAnswer {
    fn from(refusal: QuotaRefusal) -> Self {
        let (limit, remaining) = (Some(refusal.limit), Some(refusal.remaining));
        match refusal.retry_after {
            None => Self::TooLarge(
                ErrorBody::new(ErrorCode::PayloadTooLarge, refusal.message),
                limit,
                remaining,
            ),
            Some(seconds) => Self::TooMany(
                ErrorBody::new(ErrorCode::TooManyRequests, refusal.message),
                limit,
                remaining,
                Some(seconds),
            ),
        }
    }
}

/// A multipart body on its way in: the parser, behind the minimum-rate check and the framing
/// guard, which note here why they stopped the body.
pub struct FormBody {
    pub multipart: multer::Multipart<'static>,
    /// The body under the parser, kept to read what is left after a refusal (the parser
    /// stops at its own limits, but a client must be able to finish sending to read the 4xx).
    raw: Arc<tokio::sync::Mutex<RawBody>>,
    too_slow: Arc<AtomicBool>,
    framing: Arc<OnceLock<FramingError>>,
}

type RawBody = BoxStream<'static, Result<Bytes, std::io::Error>>;

impl FormBody {
    /// Why the body itself was stopped, if it was.
    pub fn trouble(&self) -> Option<UploadError> {
        if self.too_slow.load(Ordering::Relaxed) {
            return Some(UploadError::TooSlow);
        }
        let framing = self.framing.get()?;
        Some(UploadError::bad(format!(
            "The multipart body is malformed: {framing}."
        )))
    }

    /// The answer once the form was read to `outcome`: a body that arrived too slowly or broke
    /// the framing explains any refusal best (the parser's own error is only its echo, and
    /// reading on would be pointless); a refused body is drained first.
    async fn settle<T>(self, outcome: Result<T, UploadError>) -> Result<T, UploadError> {
        if let Some(trouble) = self.trouble() {
            return Err(trouble);
        }
        if outcome.is_err() {
            self.drain().await;
        }
        outcome
    }

    /// Reads and drops the rest of a refused upload, for at most [`DRAIN_PATIENCE`], so the
    /// client sees the answer instead of a connection reset in the middle of its upload. A
    /// client that sends too slowly is cut off by the minimum-rate check meanwhile.
    async fn drain(self) {
        drop(self.multipart);
        let rest = async {
            let mut raw = self.raw.lock().await;
            while let Some(Ok(_)) = raw.next().await {}
        };
        let _ = tokio::time::timeout(DRAIN_PATIENCE, rest).await;
    }
}

/// The longest a refused upload's rest is read before the answer.
const DRAIN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens a multipart `body` with the form's limits (see [`form`]).
pub fn open_form(body: Body, boundary: String, limits: &UploadLimits) -> FormBody {
    let too_slow = Arc::new(AtomicBool::new(false));
    let framing = Arc::new(OnceLock::new());
    let timed: RawBody =
        upload::at_minimum_rate(Box::pin(body.into_bytes_stream()), too_slow.clone())
            // Fused: the parser may have read it to its end before the rest is drained.
            .fuse()
            .boxed();
    let raw = Arc::new(tokio::sync::Mutex::new(timed));
    let shared = futures::stream::unfold(raw.clone(), |raw| async move {
        let next = raw.lock().await.next().await;
        next.map(|chunk| (chunk, raw))
    });
    let mut guard = FrameGuard::new(&boundary);
    let broken = framing.clone();
    let guarded = shared.map(move |chunk| {
        let chunk = chunk?;
        guard.observe(&chunk).map_err(|error| {
            let _ = broken.set(error);
            std::io::Error::new(std::io::ErrorKind::InvalidData, error)
        })?;
        Ok::<_, std::io::Error>(chunk)
    });
    let constraints = form::constraints(limits.max_bytes, limits.max_files);
    FormBody {
        multipart: multer::Multipart::with_constraints(guarded, boundary, constraints),
        raw,
        too_slow,
        framing,
    }
}

/// The form's video part, checked and not yet stored: its first bytes, and the rest to come.
pub struct VideoPart {
    pub filename: String,
    pub extension: String,
    head: Vec<Bytes>,
    rest: BoxStream<'static, Result<Bytes, multer::Error>>,
}

/// A video in storage, not yet a job.
pub struct StoredSource {
    pub job_id: JobId,
    pub key: ObjectKey,
    pub filename: String,
    pub size: u64,
    /// The file's SHA-256 (hex), when asked for.
    pub fingerprint: Option<String>,
}

/// An upload, known by its file's name and content and the MP3 it asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Fingerprint {
    pub filename: String,
    /// SHA-256, hex.
    pub sha256: String,
    pub options: OutputOptions,
}

/// What becomes of the form's checked video part.
trait VideoSink {
    type Kept;
    async fn keep(&self, part: VideoPart) -> Result<Self::Kept, UploadError>;
    /// Undoes [`VideoSink::keep`] when the form turns out bad after the file.
    async fn undo(&self, kept: &Self::Kept);
}

/// Streamed into storage under a new job id.
struct IntoStorage<'a> {
    objects: &'a ObjectStore,
    limits: &'a UploadLimits,
    fingerprint: bool,
    allowance: Allowance,
}

impl VideoSink for IntoStorage<'_> {
    type Kept = StoredSource;

    async fn keep(&self, part: VideoPart) -> Result<StoredSource, UploadError> {
        store_source(
            self.objects,
            part,
            self.limits,
            self.fingerprint,
            &self.allowance,
        )
        .await
    }

    async fn undo(&self, kept: &StoredSource) {
        discard(self.objects, Some(kept)).await;
    }
}

/// Read to its end and hashed, under the same size limit, and kept nowhere.
struct HashOnly<'a> {
    limits: &'a UploadLimits,
}

impl VideoSink for HashOnly<'_> {
    type Kept = Fingerprint;

    async fn keep(&self, part: VideoPart) -> Result<Fingerprint, UploadError> {
        let mut hasher = Sha256::new();
        let mut seen = 0u64;
        let mut chunks = futures::stream::iter(part.head.into_iter().map(Ok)).chain(part.rest);
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|error| match over_limit(&error) {
                Some(_) => too_large(self.limits),
                None => UploadError::bad("The upload was interrupted or malformed."),
            })?;
            seen += chunk.len() as u64;
            if seen > self.limits.max_bytes {
                return Err(too_large(self.limits));
            }
            hasher.update(&chunk);
        }
        Ok(Fingerprint {
            filename: part.filename,
            sha256: hex::encode(hasher.finalize()),
            options: OutputOptions::default(),
        })
    }

    async fn undo(&self, _: &Fingerprint) {}
}

/// A form read whole: its videos, as the sink kept them, and the MP3s it asks for.
pub struct ReadForm<K> {
    pub videos: Vec<K>,
    pub options: OutputOptions,
    /// Where to tell of the upload's jobs as they end, besides registered endpoints.
    pub callback: Option<WebhookUrl>,
}

/// The form field naming a one-off webhook endpoint for the upload's jobs.
pub const CALLBACK_FIELD: &str = "callback_url";

/// How many `file` parts a form may have.
#[derive(Debug, Clone, Copy)]
enum FileLimit {
    /// Up to this many, a batch.
    Batch(usize),
    /// One: an `Idempotency-Key` names one file's upload.
    Keyed,
}

impl FileLimit {
    fn max(self) -> usize {
        match self {
            Self::Batch(max) => max,
            Self::Keyed => 1,
        }
    }

    fn refusal(self) -> FieldError {
        FieldError {
            field: "file",
            message: match self {
                Self::Batch(max) => format!(
                    "is given more than {max} times: one upload carries at most {max} files"
                ),
                Self::Keyed => "is given more than once: with an Idempotency-Key an upload \
                                carries one file (send a batch without one)"
                    .into(),
            },
        }
    }
}

/// The form's parts other than files, as they are read.
#[derive(Default)]
struct TextFields {
    request: OutputRequest,
    /// The first field the form has no use for: refused once the part limits have spoken.
    unknown: Option<String>,
    callback: Option<WebhookUrl>,
}

impl TextFields {
    /// Takes the field `name`: an output choice, the callback URL, or one to refuse.
    async fn take(
        &mut self,
        gw: &Gateway,
        field: multer::Field<'static>,
        name: String,
    ) -> Result<(), UploadError> {
        if name == CALLBACK_FIELD {
            let value = field_text(field, &name, &gw.limits).await?;
            self.callback = callback_url(gw, &value).await?;
            return Ok(());
        }
        if !OutputRequest::takes(&name) {
            // The parser skips its body; the refusal waits for the part limits to speak.
            self.unknown.get_or_insert(name);
            return Ok(());
        }
        let value = field_text(field, &name, &gw.limits).await?;
        self.request
            .add(&name, &value)
            .map_err(UploadError::BadField)
    }
}

/// Reads the whole form: one `file` part or more (up to `files`), each given to `sink`, and the output fields
/// ([`OutputRequest::FIELDS`]), each checked as it arrives. A field the upload does not take
/// is refused at the file (nothing stored) or at the end of the form; its body is skipped
/// meanwhile, within the form's limits. How the fields go together is checked once all are
/// in; what the sink kept is undone when the form turns out bad after the file.
async fn read_form<S: VideoSink>(
    gw: &Gateway,
    multipart: &mut multer::Multipart<'static>,
    sink: &S,
    files: FileLimit,
) -> Result<ReadForm<S::Kept>, UploadError> {
    let mut stored: Vec<S::Kept> = Vec::new();
    let mut texts = TextFields::default();
    let mut fields = 0;
    let outcome = loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break Ok(()),
            Err(error) => break Err(parser_error(&error, &gw.limits)),
        };
        let name = field.name().unwrap_or_default().to_owned();
        if name != "file" {
            fields += 1;
            if fields > form::MAX_FIELDS {
                break Err(UploadError::bad(format!(
                    "The form has more than {} parts besides its files.",
                    form::MAX_FIELDS
                )));
            }
            match texts.take(gw, field, name).await {
                Ok(()) => continue,
                Err(error) => break Err(error),
            }
        }
        if let Some(name) = texts.unknown.take() {
            break Err(unknown_field(&name));
        }
        if stored.len() == files.max() {
            break Err(UploadError::BadField(files.refusal()));
        }
        let part = match read_video_part(field, &gw.limits).await {
            Ok(part) => part,
            Err(error) => break Err(error),
        };
        match sink.keep(part).await {
            Ok(kept) => stored.push(kept),
            Err(error) => break Err(error),
        }
    };
    let callback = texts.callback.take();
    let outcome = outcome.and_then(|()| match texts.unknown {
        Some(name) => Err(unknown_field(&name)),
        None => texts.request.resolve().map_err(UploadError::BadField),
    });
    match outcome {
        Ok(_) if stored.is_empty() => Err(UploadError::bad("The form has no `file` part.")),
        Ok(options) => Ok(ReadForm {
            videos: stored,
            options,
            callback,
        }),
        Err(error) => {
            for kept in &stored {
                sink.undo(kept).await;
            }
            Err(error)
        }
    }
}

/// An output field's value: UTF-8 text within the form's limit for fields.
async fn field_text(
    field: multer::Field<'static>,
    name: &str,
    limits: &UploadLimits,
) -> Result<String, UploadError> {
    let bytes = field
        .bytes()
        .await
        .map_err(|error| parser_error(&error, limits))?;
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        UploadError::BadField(FieldError {
            field: OutputRequest::FIELDS
                .into_iter()
                .chain([CALLBACK_FIELD])
                .find(|f| *f == name)
                .unwrap_or("form"),
            message: "must be UTF-8 text".into(),
        })
    })
}

/// An upload's `callback_url`: a URL webhooks may reach, resolved now (and again at each
/// delivery), as for a registered endpoint.
pub async fn callback_url(gw: &Gateway, text: &str) -> Result<Option<WebhookUrl>, UploadError> {
    // An empty field is one left blank, as a browser's form sends it: no callback.
    if text.trim().is_empty() {
        return Ok(None);
    }
    let refused = |why: String| {
        UploadError::BadField(FieldError {
            field: CALLBACK_FIELD,
            message: format!("is not acceptable: {why}"),
        })
    };
    let url = WebhookUrl::parse(text.trim()).map_err(|why| refused(why.to_string()))?;
    webhook::resolve(&url, gw.webhook_allow_private)
        .await
        .map_err(|refusal| refused(refusal.to_string()))?;
    Ok(Some(url))
}

/// The output choices and `callback_url` of a resumable upload, from its metadata's pairs
/// named as the form's fields and checked as the form checks them. Other pairs are left
/// alone: tus clients add their own (`filetype`, `relativePath`, ...).
pub async fn choices_from_metadata(
    gw: &Gateway,
    pairs: &std::collections::BTreeMap<String, String>,
) -> Result<ReadForm<()>, UploadError> {
    let mut request = OutputRequest::default();
    let mut callback = None;
    for (name, value) in pairs {
        if name == CALLBACK_FIELD {
            callback = callback_url(gw, value).await?;
        } else if OutputRequest::takes(name) {
            request.add(name, value).map_err(UploadError::BadField)?;
        }
    }
    Ok(ReadForm {
        videos: Vec::new(),
        options: request.resolve().map_err(UploadError::BadField)?,
        callback,
    })
}

fn unknown_field(name: &str) -> UploadError {
    UploadError::bad(format!(
        "The form has a field `{}` this upload does not take; it takes `file` and {}.",
        name.escape_debug(),
        OutputRequest::FIELDS
            .iter()
            .chain([&CALLBACK_FIELD])
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// A file's name as kept (see [`upload::clean_file_name`]) and its extension, if the
/// extension is one accepted.
pub fn accepted_name(raw: &str, limits: &UploadLimits) -> Result<(String, String), UploadError> {
    let accepted = || limits.allowed_extensions.join(", ");
    let filename = upload::clean_file_name(raw);
    let Some(extension) = upload::extension(&filename) else {
        return Err(UploadError::UnsupportedMedia(format!(
            "The file needs an extension; accepted: {}.",
            accepted()
        )));
    };
    if !limits.allowed_extensions.contains(&extension) {
        return Err(UploadError::UnsupportedMedia(format!(
            "`.{extension}` files are not accepted; accepted: {}.",
            accepted()
        )));
    }
    Ok((filename, extension))
}

/// Checks the part's file name and extension, and that its first bytes are a container of
/// the kind the extension promises.
pub async fn read_video_part(
    field: multer::Field<'static>,
    limits: &UploadLimits,
) -> Result<VideoPart, UploadError> {
    let (filename, extension) = accepted_name(field.file_name().unwrap_or_default(), limits)?;
    let mut rest = field.boxed();
    let mut sniffed = Head::new();
    let mut head = Vec::new();
    while let Some(chunk) = rest.next().await {
        let chunk = chunk.map_err(|_| UploadError::bad("The multipart body is malformed."))?;
        let enough = sniffed.push(&chunk);
        head.push(chunk);
        if enough {
            break;
        }
    }
    if sniffed.bytes.is_empty() {
        return Err(UploadError::bad("The file is empty."));
    }
    let container = Container::sniff(&sniffed.bytes);
    if container.is_none() || container != Container::for_extension(&extension) {
        return Err(UploadError::UnsupportedMedia(format!(
            "The file's content is not a valid .{extension} video."
        )));
    }
    Ok(VideoPart {
        filename,
        extension,
        head,
        rest,
    })
}

/// Why the stream into storage stopped.
#[derive(Debug)]
enum StreamStop {
    TooLarge,
    Parser(multer::Error),
}

/// Streams the part into storage under a new job id, refusing it past the size limit or the
/// room the caller's storage quota leaves, and hashes it on the way with `fingerprint`.
async fn store_source(
    objects: &ObjectStore,
    part: VideoPart,
    limits: &UploadLimits,
    fingerprint: bool,
    allowance: &Allowance,
) -> Result<StoredSource, UploadError> {
    let job_id = JobId::generate();
    tracing::Span::current().record("job_id", tracing::field::display(job_id));
    let key = ObjectKey::source(job_id, &part.extension);
    let room = allowance.room().filter(|room| *room < limits.max_bytes);
    let limit = room.unwrap_or(limits.max_bytes);
    let too_large = |limits: &UploadLimits| match room {
        Some(_) => allowance.storage_refusal(),
        None => too_large(limits),
    };
    let mut seen = 0u64;
    let hasher = Arc::new(std::sync::Mutex::new(fingerprint.then(Sha256::new)));
    let hashing = hasher.clone();
    let stream = futures::stream::iter(part.head.into_iter().map(Ok))
        .chain(part.rest)
        .map_err(StreamStop::Parser)
        .and_then(move |chunk| {
            seen += chunk.len() as u64;
            if let Some(hasher) = hashing.lock().expect("not poisoned").as_mut() {
                hasher.update(&chunk);
            }
            let over = seen > limit;
            async move {
                if over {
                    Err(StreamStop::TooLarge)
                } else {
                    Ok(chunk)
                }
            }
        });
    let size = match objects.put_stream(&key, Box::pin(stream)).await {
        Ok(size) => size,
        Err(PutError::Source(StreamStop::TooLarge)) => return Err(too_large(limits)),
        Err(PutError::Source(StreamStop::Parser(error))) => {
            return Err(match over_limit(&error) {
                Some(_) => too_large(limits),
                None => UploadError::bad("The upload was interrupted or malformed."),
            });
        }
        Err(PutError::Storage(error)) => return Err(error.into()),
    };
    let fingerprint = hasher
        .lock()
        .expect("not poisoned")
        .take()
        .map(|hasher| hex::encode(hasher.finalize()));
    Ok(StoredSource {
        job_id,
        key,
        filename: part.filename,
        size,
        fingerprint,
    })
}

/// Records a job for each of `sources` and starts its workflow; on failure no row, video or
/// workflow of the upload stays.
async fn start_jobs(gw: &Gateway, caller: &Caller, batch: Batch<'_>) -> Result<(), UploadError> {
    let sources = batch.videos;
    for (started, source) in sources.iter().enumerate() {
        if let Err(error) = start_job(gw, caller, source, &batch).await {
            for earlier in &sources[..started] {
                let handle = gw
                    .temporal
                    .get_workflow_handle::<ConvertVideo>(earlier.job_id.to_string());
                let reason = WorkflowTerminateOptions::builder()
                    .reason("another file of its upload could not be taken")
                    .build();
                if let Err(error) = handle.terminate(reason).await {
                    tracing::error!(%error, job_id = %earlier.job_id, "could not stop a refused batch's job");
                }
                let _ = gw.db.delete_job(earlier.job_id).await;
            }
            for source in sources {
                discard(&gw.objects, Some(source)).await;
            }
            return Err(error);
        }
    }
    Ok(())
}

/// The videos of one upload, with what they share.
struct Batch<'a> {
    videos: &'a [StoredSource],
    options: &'a OutputOptions,
    batch_id: Option<BatchId>,
    quota: Quota,
}

/// Records the job and starts its workflow; on failure neither the row nor the workflow stays
/// (the caller removes the video).
async fn start_job(
    gw: &Gateway,
    caller: &Caller,
    source: &StoredSource,
    batch: &Batch<'_>,
) -> Result<(), UploadError> {
    let options = batch.options;
    let job = NewJob {
        id: source.job_id,
        user_id: caller.user,
        original_filename: source.filename.clone(),
        source_key: source.key.clone(),
        source_size: source.size,
        options: options.clone(),
        batch_id: batch.batch_id,
        session_id: Some(caller.session.clone()),
    };
    match gw.db.insert_job_within(&job, &batch.quota).await {
        Ok(Ok(())) => {}
        Ok(Err(NotRecorded::Over(over))) => return Err(UploadError::OverQuota(over)),
        Ok(Err(NotRecorded::BatchFull { limit })) => return Err(batch_full(limit)),
        Err(error) => return Err(error.into()),
    }
    let input = ConvertVideoInput {
        job_id: source.job_id,
        user_id: caller.user,
        session_id: caller.session.clone(),
        source_key: source.key.clone(),
        original_filename: source.filename.clone(),
        options: options.clone(),
    };
    let options = WorkflowStartOptions::new(TASK_QUEUE, source.job_id.to_string()).build();
    if let Err(error) = gw
        .temporal
        .start_workflow(ConvertVideo::run, input, options)
        .await
    {
        let _ = gw.db.delete_job(source.job_id).await;
        return Err(UploadError::unavailable("conversion service", error));
    }
    Ok(())
}

/// The refusal of a file for a batch that is full.
pub fn batch_full(limit: u64) -> UploadError {
    UploadError::BadRequest(format!(
        "This batch holds {limit} jobs, the most one may; send further files with another \
         batch_id."
    ))
}

/// Removes what a refused upload had stored.
async fn discard(objects: &ObjectStore, stored: Option<&StoredSource>) {
    if let Some(source) = stored
        && let Err(error) = objects.delete(&source.key).await
    {
        tracing::error!(%error, key = %source.key, "could not remove a refused upload");
    }
}

fn too_large(limits: &UploadLimits) -> UploadError {
    UploadError::TooLarge {
        limit_mb: limits.max_bytes / (1024 * 1024),
    }
}

/// The answer to a parser error: a size limit, or a malformed form.
fn parser_error(error: &multer::Error, limits: &UploadLimits) -> UploadError {
    match over_limit(error) {
        Some(Limit::File) => too_large(limits),
        Some(Limit::TextField) => UploadError::bad(format!(
            "Form fields other than `file` are limited to {} KiB.",
            form::MAX_TEXT_FIELD / 1024
        )),
        None => UploadError::bad("The multipart body is malformed."),
    }
}

/// Which of the form's size limits the parser stopped at.
enum Limit {
    File,
    TextField,
}

fn over_limit(error: &multer::Error) -> Option<Limit> {
    match error {
        multer::Error::StreamSizeExceeded { .. } => Some(Limit::File),
        multer::Error::FieldSizeExceeded { field_name, .. } => {
            Some(if field_name.as_deref() == Some("file") {
                Limit::File
            } else {
                Limit::TextField
            })
        }
        _ => None,
    }
}
