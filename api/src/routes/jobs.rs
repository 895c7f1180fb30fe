//! Uploading a video, following its job, cancelling or deleting it.

use super::{ApiTags, BearerAuth, Context, Denied, ErrorJson, rfc3339, unavailable};
use crate::{
    Gateway,
    auth::Claims,
    error::ErrorBody,
    form::{self, FrameGuard},
    status,
    upload::{self, Container, Head},
};
use audiomill_domain::{
    JobId, ObjectKey,
    contract::{ConvertVideoInput, TASK_QUEUE},
};
use audiomill_store::{NewJob, PutError};
use audiomill_workflows::ConvertVideo;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use poem::{Body, Request};
use poem_openapi::{
    ApiResponse, Multipart, Object, OpenApi,
    param::Path,
    payload::{Json, Payload},
    registry::{MetaSchemaRef, Registry},
    types::multipart::Upload,
};
use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicBool, Ordering},
};
use temporalio_client::{WorkflowCancelOptions, WorkflowStartOptions};

/// `/upload`, `/status/{job_id}` and `DELETE /jobs/{job_id}`.
pub struct JobsApi {
    pub(super) cx: Context,
}

#[derive(Object)]
struct UploadAccepted {
    job_id: String,
    filename: String,
    /// Always `queued`.
    status: String,
    message: String,
}

#[derive(Object)]
struct JobStatusBody {
    job_id: String,
    /// `queued`, `running`, `completed`, `failed` or `cancelled`.
    status: String,
    /// The current (or last) step: `validate_token`, `fetch_source`, `transcode`, `store_mp3`, `send_email`.
    #[oai(nullable)]
    step: Option<String>,
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
}

/// Documents the multipart form; the handler reads the body as a stream instead (see
/// [`VideoForm`]) so memory stays flat whatever the file size.
#[derive(Multipart)]
#[allow(dead_code)]
struct UploadForm {
    /// The video: MP4, MOV, AVI, MKV or WebM.
    file: Upload,
}

/// A `multipart/form-data` body, kept as an unread stream.
struct VideoForm {
    content_type: String,
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
            body: body.take()?,
        })
    }
}

poem_openapi::impl_apirequest_for_payload!(VideoForm,);

#[derive(ApiResponse)]
enum UploadResponse {
    /// Accepted; the conversion runs in the background.
    #[oai(status = 202)]
    Accepted(Json<UploadAccepted>),
    /// The form is malformed, has no `file` part, or the file is empty.
    #[oai(status = 400)]
    BadRequest(ErrorJson),
    /// No valid access token.
    #[oai(status = 401)]
    Unauthorized(ErrorJson),
    /// The upload arrived too slowly (under 8 KiB/s on average after 30 s).
    #[oai(status = 408)]
    TooSlow(ErrorJson),
    /// The file is larger than `MAX_FILE_SIZE`.
    #[oai(status = 413)]
    TooLarge(ErrorJson),
    /// Not an accepted video type (by extension or content).
    #[oai(status = 415)]
    UnsupportedMedia(ErrorJson),
    /// This user already has `MAX_CONCURRENT_UPLOADS` uploads in progress.
    #[oai(status = 429)]
    TooManyUploads(ErrorJson),
    /// Storage or the workflow service is down; nothing was kept.
    #[oai(status = 503)]
    Unavailable(ErrorJson),
}

#[derive(ApiResponse)]
enum StatusResponse {
    /// The job's status.
    #[oai(status = 200)]
    Ok(Json<JobStatusBody>),
    /// No valid access token.
    #[oai(status = 401)]
    Unauthorized(ErrorJson),
    /// No such job (or not yours).
    #[oai(status = 404)]
    NotFound(ErrorJson),
    /// A dependency is down.
    #[oai(status = 503)]
    Unavailable(ErrorJson),
}

#[derive(Object)]
struct CancelAccepted {
    job_id: String,
    /// Always `cancelling`; `/status` shows `cancelled` once the job has stopped.
    status: String,
    message: String,
}

#[derive(ApiResponse)]
enum DeleteResponse {
    /// The job was running: it is being cancelled.
    #[oai(status = 202)]
    Cancelling(Json<CancelAccepted>),
    /// The job had ended: its video, its MP3 and its record are deleted.
    #[oai(status = 204)]
    Deleted,
    /// No valid access token.
    #[oai(status = 401)]
    Unauthorized(ErrorJson),
    /// No such job (or not yours).
    #[oai(status = 404)]
    NotFound(ErrorJson),
    /// A dependency is down.
    #[oai(status = 503)]
    Unavailable(ErrorJson),
}

refusal_into!(StatusResponse, DeleteResponse);

#[OpenApi]
impl JobsApi {
    /// Upload a video (multipart field `file`). It is streamed into storage and a
    /// `ConvertVideo` workflow is started for it.
    #[oai(path = "/upload", method = "post", tag = "ApiTags::Jobs")]
    #[tracing::instrument(skip_all, fields(job_id = tracing::field::Empty))]
    async fn upload(&self, auth: BearerAuth, form: VideoForm) -> UploadResponse {
        let claims = match self.cx.authenticate(&auth).await {
            Ok(claims) => claims,
            Err(Denied::Unauthorized(error)) => return UploadResponse::Unauthorized(error),
            Err(Denied::Unavailable(error)) => return UploadResponse::Unavailable(error),
        };
        let Some(user_id) = claims.user_id() else {
            return UploadResponse::Unauthorized(ErrorBody::new(
                "unauthorized",
                "The access token is invalid.",
            ));
        };
        let gw = self.cx.gw();
        let Some(_slot) = gw.uploads.begin(user_id) else {
            return UploadResponse::TooManyUploads(ErrorBody::new(
                "too_many_requests",
                format!(
                    "At most {} uploads may be in progress at once; wait for one to finish.",
                    gw.uploads.limit()
                ),
            ));
        };
        let bad =
            |message: &str| UploadResponse::BadRequest(ErrorBody::new("bad_request", message));

        let Ok(boundary) = multer::parse_boundary(&form.content_type) else {
            return bad("The body must be multipart/form-data with a boundary.");
        };
        let too_slow = Arc::new(AtomicBool::new(false));
        let framing = Arc::new(OnceLock::new());
        let body =
            upload::at_minimum_rate(Box::pin(form.body.into_bytes_stream()), too_slow.clone());
        let mut guard = FrameGuard::new(&boundary);
        let broken = framing.clone();
        let body = body.map(move |chunk| {
            let chunk = chunk?;
            guard.observe(&chunk).map_err(|error| {
                let _ = broken.set(error);
                std::io::Error::new(std::io::ErrorKind::InvalidData, error)
            })?;
            Ok::<_, std::io::Error>(chunk)
        });
        let constraints = form::constraints(gw.limits.max_bytes);
        let mut multipart = multer::Multipart::with_constraints(body, boundary, constraints);
        let response = self.receive_upload(&claims, user_id, &mut multipart).await;
        if too_slow.load(Ordering::Relaxed) {
            return UploadResponse::TooSlow(ErrorBody::new(
                "request_timeout",
                format!(
                    "The upload arrived too slowly (under {} KiB/s on average); nothing was kept.",
                    upload::MIN_UPLOAD_RATE / 1024
                ),
            ));
        }
        if let Some(error) = framing.get() {
            // The body breaks the form's framing limits: reading on would be pointless.
            return bad(&format!("The multipart body is malformed: {error}."));
        }
        if !matches!(response, UploadResponse::Accepted(_)) {
            // Read what the client is still sending before answering, so it sees the answer
            // instead of a connection reset in the middle of its upload.
            drain(&mut multipart).await;
        }
        response
    }

    /// A job's status, step and progress.
    #[oai(path = "/status/:job_id", method = "get", tag = "ApiTags::Jobs")]
    #[tracing::instrument(skip_all, fields(job_id = %job_id.0))]
    async fn status(&self, auth: BearerAuth, job_id: Path<String>) -> StatusResponse {
        let (_, job) = match self.cx.caller_job(&auth, &job_id.0).await {
            Ok(found) => found,
            Err(refusal) => return refusal.into(),
        };
        let gw = self.cx.gw();
        let view = gw.closed_views.job_view(&gw.temporal, &job).await;
        StatusResponse::Ok(Json(JobStatusBody {
            job_id: job.id.to_string(),
            status: view.status.to_string(),
            step: view.step.map(|s| s.to_string()),
            progress: view.progress,
            attempt: view.attempt,
            filename: job.original_filename,
            created_at: rfc3339(job.created_at),
            completed_at: view.completed_at.map(rfc3339),
            error: view.error,
        }))
    }

    /// Cancel a running job, or delete an ended one with its video and MP3.
    #[oai(path = "/jobs/:job_id", method = "delete", tag = "ApiTags::Jobs")]
    #[tracing::instrument(skip_all, fields(job_id = %job_id.0))]
    async fn delete_job(&self, auth: BearerAuth, job_id: Path<String>) -> DeleteResponse {
        let (claims, job) = match self.cx.caller_job(&auth, &job_id.0).await {
            Ok(found) => found,
            Err(refusal) => return refusal.into(),
        };
        let gw = self.cx.gw();
        let view = status::job_view(&gw.temporal, &job).await;
        if !view.status.is_final() {
            let handle = gw
                .temporal
                .get_workflow_handle::<ConvertVideo>(job.id.to_string());
            let options = WorkflowCancelOptions::builder()
                .reason(format!("cancelled by {}", claims.email))
                .build();
            if let Err(error) = handle.cancel(options).await {
                return DeleteResponse::Unavailable(unavailable("conversion service", error));
            }
            tracing::info!(job_id = %job.id, "job cancelled by its user");
            return DeleteResponse::Cancelling(Json(CancelAccepted {
                job_id: job.id.to_string(),
                status: "cancelling".into(),
                message: "The job is being cancelled; its files are removed when it stops.".into(),
            }));
        }
        for key in [Some(&job.source_key), job.mp3_key.as_ref()]
            .into_iter()
            .flatten()
        {
            if let Err(error) = gw.objects.delete(key).await {
                return DeleteResponse::Unavailable(unavailable("storage", error));
            }
        }
        gw.closed_views.forget(job.id);
        if let Err(error) = gw.db.delete_job(job.id).await {
            return DeleteResponse::Unavailable(unavailable("database", error));
        }
        tracing::info!(job_id = %job.id, "job and its files deleted by its user");
        DeleteResponse::Deleted
    }
}

/// Why an upload stream stopped.
#[derive(Debug)]
enum UploadFailure {
    TooLarge,
    Multipart(multer::Error),
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

impl JobsApi {
    /// Streams the form's `file` part into storage, records the job and starts its workflow.
    async fn receive_upload(
        &self,
        claims: &Claims,
        user_id: audiomill_domain::UserId,
        multipart: &mut multer::Multipart<'static>,
    ) -> UploadResponse {
        let gw = self.cx.gw();
        let bad =
            |message: &str| UploadResponse::BadRequest(ErrorBody::new("bad_request", message));
        let unsupported = |message: String| {
            UploadResponse::UnsupportedMedia(ErrorBody::new("unsupported_media_type", message))
        };
        let too_large = || {
            UploadResponse::TooLarge(ErrorBody::new(
                "payload_too_large",
                format!(
                    "The file is larger than the {} MB limit.",
                    gw.limits.max_bytes / (1024 * 1024)
                ),
            ))
        };
        let mut stored: Option<(JobId, ObjectKey, String, u64)> = None;
        let mut fields = 0;

        loop {
            let field = match multipart.next_field().await {
                Ok(Some(field)) => field,
                Ok(None) => break,
                Err(error) => {
                    discard(gw, stored.as_ref()).await;
                    return match over_limit(&error) {
                        Some(Limit::File) => too_large(),
                        Some(Limit::TextField) => bad(&format!(
                            "Form fields other than `file` are limited to {} KiB.",
                            form::MAX_TEXT_FIELD / 1024
                        )),
                        None => bad("The multipart body is malformed."),
                    };
                }
            };
            fields += 1;
            if fields > form::MAX_FIELDS {
                discard(gw, stored.as_ref()).await;
                return bad(&format!(
                    "The form has more than {} parts.",
                    form::MAX_FIELDS
                ));
            }
            if field.name() != Some("file") {
                continue; // Other fields are ignored; the parser skips their bodies.
            }
            if stored.is_some() {
                discard(gw, stored.as_ref()).await;
                return bad("Send exactly one `file` part.");
            }
            let filename = upload::clean_file_name(field.file_name().unwrap_or_default());
            let Some(extension) = upload::extension(&filename) else {
                return unsupported(format!(
                    "The file needs an extension; accepted: {}.",
                    gw.limits.allowed_extensions.join(", ")
                ));
            };
            if !gw.limits.allowed_extensions.contains(&extension) {
                return unsupported(format!(
                    "`.{extension}` files are not accepted; accepted: {}.",
                    gw.limits.allowed_extensions.join(", ")
                ));
            }
            let expected = Container::for_extension(&extension);

            // Peek at the first bytes before storing anything.
            let mut field = field.map_err(UploadFailure::Multipart).boxed();
            let mut head = Head::new();
            let mut buffered: Vec<Bytes> = Vec::new();
            loop {
                match field.next().await {
                    Some(Ok(chunk)) => {
                        let enough = head.push(&chunk);
                        buffered.push(chunk);
                        if enough {
                            break;
                        }
                    }
                    Some(Err(_)) => return bad("The multipart body is malformed."),
                    None => break,
                }
            }
            if head.bytes.is_empty() {
                return bad("The file is empty.");
            }
            let sniffed = Container::sniff(&head.bytes);
            if sniffed.is_none() || sniffed != expected {
                return unsupported(format!(
                    "The file's content is not a valid .{extension} video."
                ));
            }

            let job_id = JobId::generate();
            tracing::Span::current().record("job_id", tracing::field::display(job_id));
            let key = ObjectKey::source(job_id, &extension);
            let limit = gw.limits.max_bytes;
            let mut seen = 0u64;
            let stream = futures::stream::iter(buffered.into_iter().map(Ok))
                .chain(field)
                .and_then(move |chunk| {
                    seen += chunk.len() as u64;
                    let over = seen > limit;
                    async move {
                        if over {
                            Err(UploadFailure::TooLarge)
                        } else {
                            Ok(chunk)
                        }
                    }
                });
            let size = match gw.objects.put_stream(&key, Box::pin(stream)).await {
                Ok(size) => size,
                Err(PutError::Source(UploadFailure::TooLarge)) => return too_large(),
                Err(PutError::Source(UploadFailure::Multipart(error))) => {
                    return match over_limit(&error) {
                        Some(_) => too_large(),
                        None => bad("The upload was interrupted or malformed."),
                    };
                }
                Err(PutError::Storage(error)) => {
                    return UploadResponse::Unavailable(unavailable("storage", error));
                }
            };
            stored = Some((job_id, key, filename, size));
        }

        let Some((job_id, source_key, filename, size)) = stored else {
            return bad("The form has no `file` part.");
        };
        let job = NewJob {
            id: job_id,
            user_id,
            original_filename: filename.clone(),
            source_key: source_key.clone(),
            source_size: size,
        };
        if let Err(error) = gw.db.insert_job(&job).await {
            discard(gw, Some(&(job_id, source_key, filename, size))).await;
            return UploadResponse::Unavailable(unavailable("database", error));
        }
        let input = ConvertVideoInput {
            job_id,
            user_id,
            session_id: claims.sid.clone(),
            source_key: source_key.clone(),
            original_filename: filename.clone(),
        };
        let options = WorkflowStartOptions::new(TASK_QUEUE, job_id.to_string()).build();
        if let Err(error) = gw
            .temporal
            .start_workflow(ConvertVideo::run, input, options)
            .await
        {
            let _ = gw.db.delete_job(job_id).await;
            discard(gw, Some(&(job_id, source_key, filename, size))).await;
            return UploadResponse::Unavailable(unavailable("conversion service", error));
        }
        tracing::info!(size, "upload accepted");
        UploadResponse::Accepted(Json(UploadAccepted {
            job_id: job_id.to_string(),
            filename,
            status: "queued".into(),
            message: format!("Conversion started; follow it at /status/{job_id}."),
        }))
    }
}

/// Reads and drops the rest of a refused upload, for at most a few seconds.
async fn drain(multipart: &mut multer::Multipart<'static>) {
    let rest = async {
        while let Ok(Some(field)) = multipart.next_field().await {
            drop(field)
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), rest).await;
}

/// Removes what a refused upload had stored.
async fn discard(gw: &Gateway, stored: Option<&(JobId, ObjectKey, String, u64)>) {
    if let Some((_, key, _, _)) = stored
        && let Err(error) = gw.objects.delete(key).await
    {
        tracing::error!(%error, %key, "could not remove a refused upload");
    }
}
