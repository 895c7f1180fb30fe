//! Uploading a video, following its job, cancelling or deleting it.

use super::accepted::{UploadAccepted, accepted_body};
use super::context::{
    ApiTags, BearerAuth, Caller, Context, Denied, ErrorJson, Scope, rfc3339, store_down,
    unavailable,
};
use super::downloads::{self, DownloadLink};
use crate::uploads::choices::{OutputChoices, UploadForm};
use crate::uploads::idempotency::{self, BadKey, Claim};
use crate::uploads::intake::{self};
use crate::uploads::refusal::{UploadError, UploadRefusal};
use crate::{
    error::{ErrorBody, ErrorCode},
    gateway::Gateway,
    status,
    uploads::file,
};
use crate::{metrics, params::ApiJobId};
use audiomill_domain::{JobStatus, Step, UserId, output::SourceTrack};
use audiomill_store::{Job, KeyedUpload, time::now_millis};
use audiomill_workflows::ConvertVideo;
use poem::{Body, Request};
use poem_openapi::{
    Enum, Object, OpenApi,
    param::{Header, Path},
    payload::{Json, Payload},
    registry::{MetaSchemaRef, Registry},
    types::Example,
};
use temporalio_client::WorkflowCancelOptions;

/// `/upload`, `/status/{job_id}`, `DELETE /jobs/{job_id}` and `POST /jobs/{job_id}/cancel`.
pub struct JobsApi {
    pub(super) cx: Context,
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub(super) enum JobState {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl From<JobStatus> for JobState {
    fn from(status: JobStatus) -> Self {
        match status {
            JobStatus::Queued => Self::Queued,
            JobStatus::Running => Self::Running,
            JobStatus::Completed => Self::Completed,
            JobStatus::Failed => Self::Failed,
            JobStatus::Cancelled => Self::Cancelled,
        }
    }
}

/// A step of the conversion: the workflow's activities, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub(super) enum JobStep {
    ValidateToken,
    /// A job from a link: the video is being fetched from there.
    ImportSource,
    FetchSource,
    Transcode,
    /// A job whose MP3 also goes to the user's storage: it is being written there.
    ExportMp3,
    StoreMp3,
    SendEmail,
}

impl From<Step> for JobStep {
    fn from(step: Step) -> Self {
        match step {
            Step::ValidateToken => Self::ValidateToken,
            Step::ImportSource => Self::ImportSource,
            Step::FetchSource => Self::FetchSource,
            Step::Transcode => Self::Transcode,
            Step::ExportMp3 => Self::ExportMp3,
            Step::StoreMp3 => Self::StoreMp3,
            Step::SendEmail => Self::SendEmail,
        }
    }
}

#[derive(Object)]
#[oai(example)]
struct JobStatusBody {
    job_id: ApiJobId,
    status: JobState,
    /// The step running now; `null` between two steps and for a job that ended without one.
    #[oai(nullable)]
    step: Option<JobStep>,
    /// 0-100, from the transcode's heartbeats.
    progress: u8,
    /// The current step's attempt, from 1.
    attempt: u32,
    filename: String,
    created_at: String,
    /// When the MP3 was stored; `null` until then.
    #[oai(nullable)]
    completed_at: Option<String>,
    /// Why the job failed, or the failed attempt of a step being retried; else `null`.
    #[oai(nullable)]
    error: Option<String>,
    /// Once completed: a signed link that opens the MP3 with no other credentials until it
    /// expires (as from `GET /jobs/{job_id}/link`); else `null`.
    #[oai(nullable)]
    download: Option<DownloadLink>,
    /// What the MP3 is to be, as the upload asked (a preset's choices spelled out).
    options: OutputChoices,
    /// When the job and its MP3 are removed (`RETENTION_HOURS` after it ended); `null` while
    /// it runs. Past it, the download answers 410 Gone.
    #[oai(nullable)]
    expires_at: Option<String>,
    /// Whether the job has expired: its MP3 (and video) are removed or about to be.
    expired: bool,
    /// A failed job's failure type (`NoAudioStream`, `CorruptMedia`, ...), for a client to say
    /// it in its own words; `error` has the sentence.
    #[oai(nullable)]
    failure_type: Option<String>,
    /// The MP3's size, once it is stored.
    #[oai(nullable)]
    mp3_bytes: Option<u64>,
    /// The MP3's length, once it is stored.
    #[oai(nullable)]
    audio_seconds: Option<f64>,
    /// The source's audio tracks (`index`, `language`, `codec`, `channels`, `title`,
    /// `default`), once it has been read, when it has more than one: `audio_track` chooses
    /// among them. Left out for a source with one, or not read yet.
    #[oai(default, skip_serializing_if_is_empty)]
    audio_tracks: Vec<AudioTrackView>,
    /// Once the job has completed: `true` when the output is the source's audio copied as it
    /// is (stream copy: its codec was the format's and nothing asked needed decoding), `false`
    /// when it was decoded and encoded; `null` before.
    #[oai(nullable)]
    stream_copy: Option<bool>,
}

impl Example for JobStatusBody {
    fn example() -> Self {
        JobStatusBody {
            job_id: ApiJobId::example(),
            status: JobState::Running,
            step: Some(JobStep::Transcode),
            progress: 42,
            attempt: 1,
            filename: "talk.mp4".into(),
            created_at: "2026-11-24T18:30:00.000Z".into(),
            completed_at: None,
            error: None,
            download: None,
            options: OutputChoices::example(),
            expires_at: None,
            expired: false,
            failure_type: None,
            mp3_bytes: None,
            audio_seconds: None,
            audio_tracks: vec![
                AudioTrackView {
                    index: 0,
                    language: Some("eng".into()),
                    codec: "aac".into(),
                    channels: 2,
                    title: None,
                    default: true,
                },
                AudioTrackView {
                    index: 1,
                    language: Some("deu".into()),
                    codec: "aac".into(),
                    channels: 2,
                    title: Some("Deutsch".into()),
                    default: false,
                },
            ],
            stream_copy: None,
        }
    }
}

/// One audio track of a source.
#[derive(Debug, Clone, Object)]
struct AudioTrackView {
    /// Its number among the source's audio tracks, from 0: what `audio_track` takes.
    index: u32,
    /// As the container tags it (`eng`, `deu`, ...); `null` when untagged.
    #[oai(nullable)]
    language: Option<String>,
    /// Its codec, as FFmpeg names it (`aac`, `ac3`, `opus`, ...).
    codec: String,
    channels: u16,
    #[oai(nullable)]
    title: Option<String>,
    /// Whether the container marks it as the one to play by default (converted unless
    /// `audio_track` says otherwise).
    default: bool,
}

impl From<&SourceTrack> for AudioTrackView {
    fn from(track: &SourceTrack) -> Self {
        Self {
            index: track.index,
            language: track.language.clone(),
            codec: track.codec.clone(),
            channels: track.channels,
            title: track.title.clone(),
            default: track.default,
        }
    }
}

/// A `multipart/form-data` body, kept as an unread stream.
struct VideoForm {
    content_type: String,
    /// The `Idempotency-Key`, read from the raw headers: the typed header parameter reads a
    /// value that is not visible ASCII, or a second one, as no key at all.
    idempotency_key: Result<Option<String>, BadKey>,
    body: Body,
}

impl Payload for VideoForm {
    const CONTENT_TYPE: &'static str = "multipart/form-data";

    fn check_content_type(content_type: &str) -> bool {
        content_type
            .to_ascii_lowercase()
            .starts_with("multipart/form-data")
    }

    fn schema_ref() -> MetaSchemaRef {
        <UploadForm as Payload>::schema_ref()
    }

    fn register(registry: &mut Registry) {
        <UploadForm as Payload>::register(registry);
    }
}

impl poem_openapi::payload::ParsePayload for VideoForm {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut poem::RequestBody) -> poem::Result<Self> {
        let content_type = request.content_type().unwrap_or_default().to_owned();
        Ok(Self {
            content_type,
            idempotency_key: idempotency::key_of(request.headers()),
            body: body.take()?,
        })
    }
}

poem_openapi::impl_apirequest_for_payload!(VideoForm,);

api_response! {
    enum UploadResponse {
        /// Accepted; the conversion runs in the background.
        #[oai(status = 202)]
        Accepted(Json<UploadAccepted>),
        /// This `Idempotency-Key` already started a job for this same file (within 24 hours):
        /// that job, and nothing stored again.
        #[oai(status = 200)]
        Replayed(Json<UploadAccepted>),
        /// The form is malformed, has no `file` part, or the file is empty.
        #[oai(status = 400)]
        BadRequest(ErrorJson),
        @unauthorized,
        @forbidden,
        /// The upload arrived too slowly (under 8 KiB/s on average after 30 s).
        #[oai(status = 408)]
        TooSlow(ErrorJson),
        /// The file is larger than `MAX_FILE_SIZE`, or than the room left by the caller's storage
        /// quota (then with the quota's headers, in bytes; nothing was kept).
        #[oai(status = 413)]
        TooLarge(
            ErrorJson,
            #[oai(header = "X-Quota-Storage-Limit")] Option<u64>,
            #[oai(header = "X-Quota-Storage-Remaining")] Option<u64>,
        ),
        /// Not an accepted video type (by extension or content).
        #[oai(status = 415)]
        UnsupportedMedia(ErrorJson),
        /// Another upload with this `Idempotency-Key` is still being received.
        #[oai(status = 409)]
        KeyInUse(ErrorJson),
        /// This `Idempotency-Key` already started a job for a different file.
        #[oai(status = 422)]
        KeyReused(ErrorJson),
        /// This user already has `MAX_CONCURRENT_UPLOADS` uploads in progress, or has started
        /// as many jobs today (UTC) as the jobs-per-day quota allows (then with the quota's
        /// headers, and `Retry-After` in seconds until the count starts again).
        #[oai(status = 429)]
        TooManyUploads(
            ErrorJson,
            #[oai(header = "X-Quota-Jobs-Limit")] Option<u64>,
            #[oai(header = "X-Quota-Jobs-Remaining")] Option<u64>,
            #[oai(header = "Retry-After")] Option<u64>,
        ),
        /// Storage or the workflow service is down; nothing was kept.
        #[oai(status = 503)]
        Unavailable(ErrorJson),
    }
}

api_response! {
    #[oai(bad_request_handler = "super::context::job_id_refusal")]
    enum StatusResponse {
        /// The job's status.
        #[oai(status = 200)]
        Ok(Json<Box<JobStatusBody>>),
        @bad_job_id,
        @unauthorized,
        @forbidden,
        @job_not_found,
        @unavailable,
    }
}

#[derive(Object)]
struct CancelAccepted {
    job_id: ApiJobId,
    /// Always `cancelling`; `/status` shows `cancelled` once the job has stopped.
    status: String,
    message: String,
}

api_response! {
    #[oai(bad_request_handler = "super::context::job_id_refusal")]
    enum DeleteResponse {
        /// The job was running: it is being cancelled.
        #[oai(status = 202)]
        Cancelling(Json<CancelAccepted>),
        /// The job had ended: its video, its MP3 and its record are deleted.
        #[oai(status = 204)]
        Deleted,
        @bad_job_id,
        @unauthorized,
        @forbidden,
        @job_not_found,
        @unavailable,
    }
}

api_response! {
    #[oai(bad_request_handler = "super::context::job_id_refusal")]
    enum CancelResponse {
        /// The job is being cancelled.
        #[oai(status = 202)]
        Cancelling(Json<CancelAccepted>),
        @bad_job_id,
        @unauthorized,
        @forbidden,
        @job_not_found,
        /// The job has already ended; nothing was changed.
        #[oai(status = 409)]
        Ended(ErrorJson),
        @unavailable,
    }
}

/// Why a job was not cancelled.
pub(super) enum NotCancelled {
    Ended(JobStatus),
    Unavailable(ErrorJson),
}

/// Asks Temporal to cancel `job`'s workflow, saying `reason`, unless the job has ended.
pub(super) async fn cancel_workflow(
    gw: &Gateway,
    job: &Job,
    reason: String,
) -> Result<(), NotCancelled> {
    let view = status::job_view(&gw.temporal, job).await;
    if view.status.is_final() {
        return Err(NotCancelled::Ended(view.status));
    }
    let handle = gw
        .temporal
        .get_workflow_handle::<ConvertVideo>(job.id.to_string());
    let options = WorkflowCancelOptions::builder().reason(reason).build();
    if let Err(error) = handle.cancel(options).await {
        // The workflow may have ended between the look and the request.
        let view = status::job_view(&gw.temporal, job).await;
        if view.status.is_final() {
            return Err(NotCancelled::Ended(view.status));
        }
        return Err(NotCancelled::Unavailable(unavailable(
            "conversion service",
            error,
        )));
    }
    Ok(())
}

/// Removes an ended `job`: its video and MP3 first, then its record (a record is only removed
/// once nothing it names is left).
pub(super) async fn remove_with_files(gw: &Gateway, job: &Job) -> Result<(), ErrorJson> {
    for key in [Some(&job.source_key), job.mp3_key.as_ref()]
        .into_iter()
        .flatten()
    {
        gw.objects.delete(key).await.map_err(store_down)?;
    }
    gw.job_views.forget(job.id);
    gw.db.remove_job(job.id).await.map_err(store_down)
}

/// Asks Temporal to cancel `job`'s workflow for its user, unless the job has ended.
async fn cancel(gw: &Gateway, caller: &Caller, job: &Job) -> Result<CancelAccepted, NotCancelled> {
    cancel_workflow(gw, job, format!("cancelled by {}", caller.email)).await?;
    tracing::info!(job_id = %job.id, "job cancelled by its user");
    Ok(CancelAccepted {
        job_id: job.id.into(),
        status: "cancelling".into(),
        message: "The job is being cancelled; its files are removed when it stops.".into(),
    })
}

#[OpenApi]
impl JobsApi {
    /// Upload a video.
    ///
    /// The multipart field `file` is streamed into storage and a `ConvertVideo` workflow is
    /// started for it. The other fields choose the MP3 (bitrate mode and quality or bitrate,
    /// sample rate, channels, a trim, loudness normalisation, or a named preset); each is
    /// checked before anything is stored, and a bad one answers 400 naming it. With an `Idempotency-Key`, a retry of the same upload (same user, key,
    /// file name and content, within 24 hours) answers 200 with the first upload's job instead
    /// of starting another.
    #[oai(
        path = "/upload",
        method = "post",
        tag = "ApiTags::Jobs",
        operation_id = "uploadVideo"
    )]
    #[tracing::instrument(skip_all, fields(job_id = tracing::field::Empty))]
    async fn upload(
        &self,
        #[oai(scope = "Scope::JobsWrite")] auth: BearerAuth,
        /// Any string of 1 to 255 visible ASCII characters (a UUID, say) naming this upload,
        /// so that sending it again cannot start a second job.
        #[oai(name = "Idempotency-Key")]
        _idempotency_key: Header<Option<String>>,
        form: VideoForm,
    ) -> UploadResponse {
        let caller = or_refuse!(self.uploader(&auth).await);
        let gw = self.cx.gw();
        let Some(_slot) = gw.uploads.begin(caller.user) else {
            metrics::upload_refused("busy");
            return too_many_uploads(gw.uploads.limit());
        };
        let Ok(key) = form.idempotency_key.clone() else {
            crate::uploads::form::refuse_unread(form.body).await;
            metrics::upload_refused("form");
            return UploadResponse::BadRequest(ErrorBody::new(
                ErrorCode::BadRequest,
                "The Idempotency-Key header must be given once, as 1 to 255 visible \
                 ASCII characters.",
            ));
        };
        let reservation = match idempotency::claim(&gw.db, caller.user, key).await {
            Ok(Claim::Unkeyed) => None,
            Ok(Claim::Reserved(reservation)) => Some(reservation),
            Ok(Claim::Used(earlier)) => return self.replay(earlier, form).await,
            Ok(Claim::InProgress) => {
                crate::uploads::form::refuse_unread(form.body).await;
                metrics::upload_refused("idempotency");
                return UploadResponse::KeyInUse(ErrorBody::new(
                    ErrorCode::Conflict,
                    "Another upload with this Idempotency-Key is still being received; \
                     try again when it has finished.",
                ));
            }
            Err(error) => {
                crate::uploads::form::refuse_unread(form.body).await;
                metrics::upload_refused("unavailable");
                return UploadResponse::Unavailable(store_down(error));
            }
        };
        let answer = self.receive(&caller, form, reservation.is_some()).await;
        match (reservation, &answer) {
            (Some(reservation), Ok((_, Some(keyed)))) => reservation.complete(&gw.db, keyed).await,
            (Some(reservation), Err(_)) => reservation.release(&gw.db).await,
            _ => {}
        }
        match answer {
            Ok((accepted, _)) => accepted,
            Err(refusal) => refusal,
        }
    }

    /// A job's status, step and progress.
    #[oai(
        path = "/status/:job_id",
        method = "get",
        tag = "ApiTags::Jobs",
        operation_id = "getJobStatus"
    )]
    #[tracing::instrument(skip_all, fields(job_id = %job_id.0))]
    async fn status(
        &self,
        #[oai(scope = "Scope::JobsRead")] auth: BearerAuth,
        job_id: Path<ApiJobId>,
    ) -> StatusResponse {
        let (_, job) = or_refuse!(self.cx.caller_job(&auth, Scope::JobsRead, job_id.0.0).await);
        let gw = self.cx.gw();
        let view = gw.job_views.job_view(&gw.temporal, &job).await;
        let expired = job.is_expired(now_millis());
        let download = (view.status == JobStatus::Completed && !expired)
            .then(|| downloads::link_for(&self.cx, &job))
            .flatten();
        StatusResponse::Ok(Json(Box::new(JobStatusBody {
            job_id: job.id.into(),
            status: view.status.into(),
            step: view.step.map(JobStep::from),
            progress: view.progress,
            attempt: view.attempt,
            filename: job.original_filename,
            created_at: rfc3339(job.created_at),
            completed_at: view.completed_at.map(rfc3339),
            error: view.error,
            download,
            options: (&job.options).into(),
            expires_at: job.expires_at.map(rfc3339),
            expired,
            failure_type: (view.status == JobStatus::Failed)
                .then(|| job.failure_type.clone())
                .flatten(),
            mp3_bytes: job.mp3_size,
            audio_seconds: job.duration_ms.map(|ms| ms as f64 / 1000.0),
            audio_tracks: job.audio_tracks.iter().map(AudioTrackView::from).collect(),
            stream_copy: job.completed_at.map(|_| job.copied),
        })))
    }

    /// Cancel a running job, or delete an ended one.
    ///
    /// Deleting removes the job's video, MP3 and record.
    #[oai(
        path = "/jobs/:job_id",
        method = "delete",
        tag = "ApiTags::Jobs",
        operation_id = "deleteJob"
    )]
    #[tracing::instrument(skip_all, fields(job_id = %job_id.0))]
    async fn delete_job(
        &self,
        #[oai(scope = "Scope::JobsWrite")] auth: BearerAuth,
        job_id: Path<ApiJobId>,
    ) -> DeleteResponse {
        let (caller, job) = or_refuse!(
            self.cx
                .caller_job(&auth, Scope::JobsWrite, job_id.0.0)
                .await
        );
        let gw = self.cx.gw();
        match cancel(gw, &caller, &job).await {
            Ok(accepted) => return DeleteResponse::Cancelling(Json(accepted)),
            Err(NotCancelled::Unavailable(error)) => return DeleteResponse::Unavailable(error),
            Err(NotCancelled::Ended(_)) => {}
        }
        if let Err(error) = remove_with_files(gw, &job).await {
            return DeleteResponse::Unavailable(error);
        }
        tracing::info!(job_id = %job.id, "job and its files deleted by its user");
        DeleteResponse::Deleted
    }

    /// Cancel a running job.
    ///
    /// Unlike `DELETE /jobs/{job_id}`, never deletes anything: a job that has already ended
    /// answers 409 and is left as it is.
    #[oai(
        path = "/jobs/:job_id/cancel",
        method = "post",
        tag = "ApiTags::Jobs",
        operation_id = "cancelJob"
    )]
    #[tracing::instrument(skip_all, fields(job_id = %job_id.0))]
    async fn cancel_job(
        &self,
        #[oai(scope = "Scope::JobsWrite")] auth: BearerAuth,
        job_id: Path<ApiJobId>,
    ) -> CancelResponse {
        let (caller, job) = or_refuse!(
            self.cx
                .caller_job(&auth, Scope::JobsWrite, job_id.0.0)
                .await
        );
        match cancel(self.cx.gw(), &caller, &job).await {
            Ok(accepted) => CancelResponse::Cancelling(Json(accepted)),
            Err(NotCancelled::Unavailable(error)) => CancelResponse::Unavailable(error),
            Err(NotCancelled::Ended(status)) => CancelResponse::Ended(ErrorBody::new(
                ErrorCode::Conflict,
                format!(
                    "The job has already ended ({}); there is nothing to cancel.",
                    status.as_str()
                ),
            )),
        }
    }
}

impl JobsApi {
    /// What the caller may still keep and start; refused at once when a quota is already
    /// used up, before anything of the body is read.
    async fn allowance(
        &self,
        user_id: UserId,
    ) -> Result<crate::uploads::allowance::Allowance, UploadResponse> {
        crate::uploads::allowance::allowance(self.cx.gw(), user_id)
            .await
            .map_err(|error| {
                metrics::upload_refused(error.reason());
                UploadResponse::from(UploadError::from(error))
            })
    }

    /// The caller of an upload (with an upload token, one of its uploads spent).
    async fn uploader(&self, auth: &BearerAuth) -> Result<Caller, UploadResponse> {
        let caller = match self.cx.authenticate_upload(auth).await {
            Ok(caller) => crate::uploads::grant::spend(self.cx.gw(), &caller)
                .await
                .map(|()| caller),
            Err(denied) => Err(denied),
        };
        caller.map_err(|denied| {
            let down = matches!(denied, Denied::Unavailable(_));
            metrics::upload_refused(if down { "unavailable" } else { "auth" });
            super::context::Refusal::answer(denied)
        })
    }

    /// Reads the form within the caller's quota and starts its jobs: the answer, and with a
    /// key (`keyed`, one file) what the key now names. `Err`: the refusal, nothing kept.
    async fn receive(
        &self,
        caller: &Caller,
        form: VideoForm,
        keyed: bool,
    ) -> Result<(UploadResponse, Option<KeyedUpload>), UploadResponse> {
        let gw = self.cx.gw();
        let allowance = match self.allowance(caller.user).await {
            Ok(allowance) => allowance,
            Err(refusal) => {
                crate::uploads::form::refuse_unread(form.body).await;
                return Err(refusal);
            }
        };
        let received = intake::receive(gw, caller, &form.content_type, form.body, keyed, allowance)
            .await
            .map_err(|error| {
                metrics::upload_refused(error.reason());
                UploadResponse::from(error)
            })?;
        for source in &received.sources {
            tracing::info!(job_id = %source.job_id, size = source.size, "upload accepted");
            metrics::upload_accepted(source.size);
        }
        Ok(accepted(received))
    }

    /// The answer to an upload whose `Idempotency-Key` already started `earlier`: that job
    /// again if the file (read and hashed, not stored) and the options are the same, else 422.
    async fn replay(&self, earlier: KeyedUpload, form: VideoForm) -> UploadResponse {
        let gw = self.cx.gw();
        let again = crate::uploads::intake::fingerprint(gw, &form.content_type, form.body).await;
        let earlier_options = match &again {
            Ok(_) => match gw.db.job(earlier.job_id).await {
                // A job deleted since asked for nothing that could differ.
                Ok(job) => job.map(|job| job.options),
                Err(error) => return UploadResponse::Unavailable(store_down(error)),
            },
            Err(_) => None,
        };
        match again {
            Ok(again)
                if again.sha256 == earlier.fingerprint
                    && again.filename == earlier.filename
                    && earlier_options.is_none_or(|options| options == again.options) =>
            {
                metrics::upload_replayed();
                UploadResponse::Replayed(Json(UploadAccepted::replayed(earlier)))
            }
            Ok(_) => {
                metrics::upload_refused("idempotency");
                UploadResponse::KeyReused(ErrorBody::new(
                    ErrorCode::UnprocessableContent,
                    format!(
                        "This Idempotency-Key already started job {} for a different file or \
                         different output options; use a new key for a new upload.",
                        earlier.job_id
                    ),
                ))
            }
            Err(error) => {
                metrics::upload_refused(error.reason());
                error.into()
            }
        }
    }
}

/// The answer to an accepted upload, and what its key (if it had one) names: its one job.
fn accepted(received: intake::Received) -> (UploadResponse, Option<KeyedUpload>) {
    let (answer, keyed) = accepted_body(received);
    (UploadResponse::Accepted(Json(answer)), keyed)
}

/// The refusal of an upload beyond the caller's uploads in progress.
fn too_many_uploads(limit: usize) -> UploadResponse {
    UploadResponse::TooManyUploads(
        ErrorBody::new(
            ErrorCode::TooManyRequests,
            format!("At most {limit} uploads may be in progress at once; wait for one to finish."),
        ),
        None,
        None,
        None,
    )
}

impl From<UploadError> for UploadResponse {
    fn from(error: UploadError) -> Self {
        match error.into() {
            UploadRefusal::BadRequest(body) => Self::BadRequest(body),
            UploadRefusal::Unauthorized(body) => Self::Unauthorized(body),
            UploadRefusal::TooSlow => Self::TooSlow(ErrorBody::new(
                ErrorCode::RequestTimeout,
                format!(
                    "The upload arrived too slowly (under {} KiB/s on average); nothing was kept.",
                    file::MIN_UPLOAD_RATE / 1024
                ),
            )),
            UploadRefusal::TooLarge(body, limit, remaining) => {
                Self::TooLarge(body, limit, remaining)
            }
            UploadRefusal::UnsupportedMedia(body) => Self::UnsupportedMedia(body),
            UploadRefusal::TooMany(body, limit, remaining, retry_after) => {
                Self::TooManyUploads(body, limit, remaining, retry_after)
            }
            UploadRefusal::Unavailable(body) => Self::Unavailable(body),
        }
    }
}
