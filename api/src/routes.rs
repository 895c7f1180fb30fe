//! The HTTP operations. Each returns a typed response whose variants document every status;
//! the status code is decided here and nowhere else.

use crate::{
    Gateway,
    auth::{self, Claims},
    error::ErrorBody,
    status,
    upload::{self, Container, Head},
};
use audiomill_domain::{
    EmailAddress, JobId, ObjectKey,
    contract::{ConvertVideoInput, TASK_QUEUE},
};
use audiomill_store::{NewJob, PutError, RefreshOutcome};
use audiomill_workflows::ConvertVideo;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::{StreamExt, TryStreamExt};
use poem::{Body, Request};
use poem_openapi::{
    ApiResponse, Multipart, Object, OpenApi, SecurityScheme, Tags,
    auth::{Basic, Bearer},
    param::{Header, Path, Query},
    payload::{Json, Payload},
    registry::{MetaSchemaRef, Registry},
    types::multipart::Upload,
};
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};
use temporalio_client::{WorkflowCancelOptions, WorkflowStartOptions};

type ErrorJson = Json<ErrorBody>;

#[derive(Tags)]
enum ApiTags {
    /// Logging in and tokens.
    Auth,
    /// Uploading videos and getting MP3s.
    Jobs,
    /// Service health.
    Operations,
}

/// Email and password, as HTTP Basic credentials.
#[derive(SecurityScheme)]
#[oai(ty = "basic")]
struct BasicAuth(Basic);

/// The access token from `/login`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT")]
struct BearerAuth(Bearer);

pub struct Api {
    gateway: Option<Arc<Gateway>>,
}

impl Api {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        Self {
            gateway: Some(gateway),
        }
    }

    /// An API that can describe itself but not serve (for printing the spec).
    pub fn spec_only() -> Self {
        Self { gateway: None }
    }

    fn gw(&self) -> &Gateway {
        self.gateway
            .as_deref()
            .expect("a serving Api has a gateway")
    }

    /// The claims of a valid access token whose login is still open: a signature alone is
    /// not enough once the user logged out or the session was revoked.
    async fn authenticate(&self, bearer: &BearerAuth) -> Result<Claims, Denied> {
        let gw = self.gw();
        let invalid = || {
            Denied::Unauthorized(ErrorBody::new(
                "unauthorized",
                "The access token is invalid or expired.",
            ))
        };
        let claims = gw
            .tokens
            .verify_access(&bearer.0.token)
            .ok_or_else(invalid)?;
        let user = claims.user_id().ok_or_else(invalid)?;
        match gw.db.session_is_active(user, &claims.sid).await {
            Ok(true) => Ok(claims),
            Ok(false) => Err(Denied::Unauthorized(ErrorBody::new(
                "unauthorized",
                "This login has ended (logged out or revoked); please log in again.",
            ))),
            Err(error) => Err(Denied::Unavailable(unavailable("database", error))),
        }
    }
}

/// Why a request's token was not accepted.
enum Denied {
    Unauthorized(ErrorJson),
    Unavailable(ErrorJson),
}

// ----- payloads -----

#[derive(Object)]
struct TokenPair {
    access_token: String,
    /// Always `Bearer`.
    token_type: String,
    /// Seconds until the access token expires.
    expires_in: u64,
    refresh_token: String,
}

#[derive(Object)]
struct RefreshRequest {
    refresh_token: String,
}

#[derive(Object)]
struct Identity {
    sub: String,
    email: String,
    admin: bool,
    /// Expiry, Unix seconds.
    exp: u64,
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

#[derive(Object)]
struct Services {
    database: String,
    storage: String,
    temporal: String,
    smtp: String,
}

#[derive(Object)]
struct Health {
    /// `ok` when every dependency answers, else `degraded`.
    status: String,
    timestamp: String,
    services: Services,
    version: String,
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

/// An MP3 body, streamed.
struct Mp3(Body);

impl Payload for Mp3 {
    const CONTENT_TYPE: &'static str = "audio/mpeg";

    fn schema_ref() -> MetaSchemaRef {
        <poem_openapi::payload::Binary<Vec<u8>> as Payload>::schema_ref()
    }
}

impl poem::IntoResponse for Mp3 {
    fn into_response(self) -> poem::Response {
        poem::Response::builder()
            .content_type(Self::CONTENT_TYPE)
            .body(self.0)
    }
}

// ----- responses -----

#[derive(ApiResponse)]
enum LoginResponse {
    /// Logged in.
    #[oai(status = 200)]
    Ok(Json<TokenPair>),
    /// Wrong email or password.
    #[oai(status = 401)]
    Unauthorized(ErrorJson),
    /// A dependency is down.
    #[oai(status = 503)]
    Unavailable(ErrorJson),
}

#[derive(ApiResponse)]
enum ValidateResponse {
    /// The token is valid.
    #[oai(status = 200)]
    Ok(Json<Identity>),
    /// The token is invalid or expired, or its login has ended.
    #[oai(status = 401)]
    Unauthorized(ErrorJson),
    /// A dependency is down.
    #[oai(status = 503)]
    Unavailable(ErrorJson),
}

#[derive(ApiResponse)]
enum LogoutResponse {
    /// Logged out: the access token and every refresh token of this login stop working.
    #[oai(status = 204)]
    Done,
    /// The token is invalid or expired, or its login has already ended.
    #[oai(status = 401)]
    Unauthorized(ErrorJson),
    /// A dependency is down.
    #[oai(status = 503)]
    Unavailable(ErrorJson),
}

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

#[derive(ApiResponse)]
enum DownloadResponse {
    /// The whole MP3.
    #[oai(status = 200)]
    Ok(
        Mp3,
        #[oai(header = "Content-Disposition")] String,
        #[oai(header = "Accept-Ranges")] String,
        #[oai(header = "Content-Length")] u64,
    ),
    /// The requested byte range.
    #[oai(status = 206)]
    Partial(
        Mp3,
        #[oai(header = "Content-Disposition")] String,
        #[oai(header = "Content-Range")] String,
        #[oai(header = "Content-Length")] u64,
    ),
    /// The `fid` parameter is missing or malformed.
    #[oai(status = 400)]
    BadRequest(ErrorJson),
    /// No valid access token.
    #[oai(status = 401)]
    Unauthorized(ErrorJson),
    /// No such job (or not yours).
    #[oai(status = 404)]
    NotFound(ErrorJson),
    /// The MP3 is not ready yet.
    #[oai(status = 409)]
    NotReady(ErrorJson),
    /// The range is outside the file.
    #[oai(status = 416)]
    RangeNotSatisfiable(ErrorJson, #[oai(header = "Content-Range")] String),
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

#[derive(ApiResponse)]
enum HealthResponse {
    /// Health of the service and its dependencies.
    #[oai(status = 200)]
    Ok(Json<Health>),
}

fn unavailable(what: &str, error: impl std::fmt::Display) -> ErrorJson {
    tracing::error!(%error, "{what} is unavailable");
    ErrorBody::new(
        "service_unavailable",
        format!("The {what} is unavailable right now; please try again shortly."),
    )
}

fn not_found() -> ErrorJson {
    ErrorBody::new("not_found", "There is no such job.")
}

fn rfc3339(millis: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[OpenApi]
impl Api {
    /// Log in with HTTP Basic (email and password); returns an access and a refresh token.
    #[oai(path = "/login", method = "post", tag = "ApiTags::Auth")]
    async fn login(&self, auth: BasicAuth) -> LoginResponse {
        let gw = self.gw();
        let denied = || {
            LoginResponse::Unauthorized(ErrorBody::new(
                "unauthorized",
                "The email or password is wrong.",
            ))
        };
        let user = match EmailAddress::parse(&auth.0.username) {
            Ok(email) => match gw.db.user_by_email(&email).await {
                Ok(user) => user,
                Err(error) => return LoginResponse::Unavailable(unavailable("database", error)),
            },
            Err(_) => None,
        };
        let password = auth.0.password.clone();
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let gateway = self.gateway.clone().expect("serving");
        // Argon2 is deliberately slow; keep it off the async workers.
        let matches = tokio::task::spawn_blocking(move || {
            gateway.passwords.verify(&password, hash.as_deref())
        })
        .await
        .unwrap_or(false);
        let Some(user) = user.filter(|u| matches && u.active) else {
            return denied();
        };

        let session_id = auth::new_session_id();
        let (refresh, refresh_hash, expires_at) = gw.tokens.new_refresh();
        if let Err(error) = gw
            .db
            .create_session(user.id, &session_id, &refresh_hash, expires_at)
            .await
        {
            return LoginResponse::Unavailable(unavailable("database", error));
        }
        token_pair(gw, &user, &session_id, refresh)
    }

    /// Check an access token and show who it belongs to.
    #[oai(path = "/validate", method = "post", tag = "ApiTags::Auth")]
    async fn validate(&self, auth: BearerAuth) -> ValidateResponse {
        match self.authenticate(&auth).await {
            Ok(claims) => ValidateResponse::Ok(Json(Identity {
                sub: claims.sub,
                email: claims.email,
                admin: claims.admin,
                exp: claims.exp,
            })),
            Err(Denied::Unauthorized(error)) => ValidateResponse::Unauthorized(error),
            Err(Denied::Unavailable(error)) => ValidateResponse::Unavailable(error),
        }
    }

    /// End this login: its access token and all its refresh tokens stop working.
    #[oai(path = "/logout", method = "post", tag = "ApiTags::Auth")]
    async fn logout(&self, auth: BearerAuth) -> LogoutResponse {
        let claims = match self.authenticate(&auth).await {
            Ok(claims) => claims,
            Err(Denied::Unauthorized(error)) => return LogoutResponse::Unauthorized(error),
            Err(Denied::Unavailable(error)) => return LogoutResponse::Unavailable(error),
        };
        match self.gw().db.revoke_session(&claims.sid).await {
            Ok(()) => LogoutResponse::Done,
            Err(error) => LogoutResponse::Unavailable(unavailable("database", error)),
        }
    }

    /// Trade a refresh token for a new pair. Each refresh token works once; presenting a used
    /// one again revokes its whole login.
    #[oai(path = "/token/refresh", method = "post", tag = "ApiTags::Auth")]
    async fn refresh(&self, body: Json<RefreshRequest>) -> LoginResponse {
        let gw = self.gw();
        let (refresh, new_hash, expires_at) = gw.tokens.new_refresh();
        let outcome = gw
            .db
            .rotate_refresh_token(
                &auth::hash_refresh(&body.0.refresh_token),
                &new_hash,
                expires_at,
            )
            .await;
        let (user_id, session_id) = match outcome {
            Ok(RefreshOutcome::Rotated {
                user_id,
                session_id,
            }) => (user_id, session_id),
            Ok(RefreshOutcome::Reused) => {
                return LoginResponse::Unauthorized(ErrorBody::new(
                    "unauthorized",
                    "This refresh token was already used; the login has been revoked. Please log in again.",
                ));
            }
            Ok(RefreshOutcome::Invalid) => {
                return LoginResponse::Unauthorized(ErrorBody::new(
                    "unauthorized",
                    "The refresh token is invalid or expired.",
                ));
            }
            Err(error) => return LoginResponse::Unavailable(unavailable("database", error)),
        };
        let user = match gw.db.user_by_id(user_id).await {
            Ok(Some(user)) if user.active => user,
            Ok(_) => {
                return LoginResponse::Unauthorized(ErrorBody::new(
                    "unauthorized",
                    "The account is disabled.",
                ));
            }
            Err(error) => return LoginResponse::Unavailable(unavailable("database", error)),
        };
        token_pair(gw, &user, &session_id, refresh)
    }

    /// Upload a video (multipart field `file`). It is streamed into storage and a
    /// `ConvertVideo` workflow is started for it.
    #[oai(path = "/upload", method = "post", tag = "ApiTags::Jobs")]
    async fn upload(&self, auth: BearerAuth, form: VideoForm) -> UploadResponse {
        let claims = match self.authenticate(&auth).await {
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
        let gw = self.gw();
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
        let body =
            upload::at_minimum_rate(Box::pin(form.body.into_bytes_stream()), too_slow.clone());
        let mut multipart = multer::Multipart::new(body, boundary);
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
        if !matches!(response, UploadResponse::Accepted(_)) {
            // Read what the client is still sending before answering, so it sees the answer
            // instead of a connection reset in the middle of its upload.
            drain(&mut multipart).await;
        }
        response
    }

    /// A job's status, step and progress.
    #[oai(path = "/status/:job_id", method = "get", tag = "ApiTags::Jobs")]
    async fn status(&self, auth: BearerAuth, job_id: Path<String>) -> StatusResponse {
        let (_, job) = match self.caller_job(&auth, &job_id.0).await {
            Ok(found) => found,
            Err(refusal) => return refusal.into(),
        };
        let gw = self.gw();
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

    /// Download a finished MP3. Supports `Range: bytes=...`.
    #[oai(path = "/download/:job_id", method = "get", tag = "ApiTags::Jobs")]
    async fn download(
        &self,
        auth: BearerAuth,
        job_id: Path<String>,
        range: Header<Option<String>>,
    ) -> DownloadResponse {
        self.serve_download(&auth, &job_id.0, range.0.as_deref())
            .await
    }

    /// Download a finished MP3 by `fid` (the job id); the older form of `/download/{job_id}`.
    #[oai(path = "/download", method = "get", tag = "ApiTags::Jobs")]
    async fn download_by_fid(
        &self,
        auth: BearerAuth,
        fid: Query<Option<String>>,
        range: Header<Option<String>>,
    ) -> DownloadResponse {
        let Some(fid) = fid.0 else {
            return DownloadResponse::BadRequest(ErrorBody::new(
                "bad_request",
                "The `fid` query parameter is required.",
            ));
        };
        self.serve_download(&auth, &fid, range.0.as_deref()).await
    }

    /// Cancel a running job, or delete an ended one with its video and MP3.
    #[oai(path = "/jobs/:job_id", method = "delete", tag = "ApiTags::Jobs")]
    async fn delete_job(&self, auth: BearerAuth, job_id: Path<String>) -> DeleteResponse {
        let (claims, job) = match self.caller_job(&auth, &job_id.0).await {
            Ok(found) => found,
            Err(refusal) => return refusal.into(),
        };
        let gw = self.gw();
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

    /// Whether the service and its dependencies answer.
    #[oai(path = "/health", method = "get", tag = "ApiTags::Operations")]
    async fn health(&self) -> HealthResponse {
        let gw = self.gw();
        let temporal_probe = async {
            let mut client = gw.temporal.clone();
            tokio::time::timeout(
                std::time::Duration::from_secs(2),
                temporalio_client::grpc::WorkflowService::get_system_info(
                    &mut client,
                    temporalio_client::tonic::Request::new(Default::default()),
                ),
            )
            .await
            .is_ok_and(|r| r.is_ok())
        };
        let mail_probe = async {
            match &gw.mail_probe {
                Some(probe) => Some(probe().await),
                None => None,
            }
        };
        let (database, storage, temporal, smtp) =
            tokio::join!(gw.db.ping(), gw.objects.ping(), temporal_probe, mail_probe);
        let word = |up: bool| if up { "connected" } else { "unreachable" }.to_owned();
        let healthy = database && storage && temporal && smtp.unwrap_or(true);
        HealthResponse::Ok(Json(Health {
            status: if healthy { "ok" } else { "degraded" }.into(),
            timestamp: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            services: Services {
                database: word(database),
                storage: word(storage),
                temporal: word(temporal),
                smtp: smtp.map_or_else(|| "not_checked".to_owned(), word),
            },
            version: env!("CARGO_PKG_VERSION").into(),
        }))
    }
}

/// Why an upload stream stopped.
#[derive(Debug)]
enum UploadFailure {
    TooLarge,
    Multipart(#[allow(dead_code)] multer::Error),
}

/// Why an operation on a job stops before it begins. Someone else's job is `NotFound`,
/// exactly like a missing one.
enum JobRefusal {
    Unauthorized(ErrorJson),
    NotFound(ErrorJson),
    Unavailable(ErrorJson),
}

macro_rules! refusal_into {
    ($($response:ident),*) => {$(
        impl From<JobRefusal> for $response {
            fn from(refusal: JobRefusal) -> Self {
                match refusal {
                    JobRefusal::Unauthorized(error) => Self::Unauthorized(error),
                    JobRefusal::NotFound(error) => Self::NotFound(error),
                    JobRefusal::Unavailable(error) => Self::Unavailable(error),
                }
            }
        }
    )*};
}
refusal_into!(StatusResponse, DownloadResponse, DeleteResponse);

impl Api {
    /// The caller's claims and the job, if the token is good and the caller owns the job or
    /// is an admin.
    async fn caller_job(
        &self,
        auth: &BearerAuth,
        raw_id: &str,
    ) -> Result<(Claims, audiomill_store::Job), JobRefusal> {
        let claims = self
            .authenticate(auth)
            .await
            .map_err(|denied| match denied {
                Denied::Unauthorized(error) => JobRefusal::Unauthorized(error),
                Denied::Unavailable(error) => JobRefusal::Unavailable(error),
            })?;
        let id = JobId::parse(raw_id).map_err(|_| JobRefusal::NotFound(not_found()))?;
        let job = self
            .gw()
            .db
            .job(id)
            .await
            .map_err(|error| JobRefusal::Unavailable(unavailable("database", error)))?
            .ok_or_else(|| JobRefusal::NotFound(not_found()))?;
        if claims.admin || claims.user_id() == Some(job.user_id) {
            Ok((claims, job))
        } else {
            Err(JobRefusal::NotFound(not_found()))
        }
    }

    /// Streams the form's `file` part into storage, records the job and starts its workflow.
    async fn receive_upload(
        &self,
        claims: &Claims,
        user_id: audiomill_domain::UserId,
        multipart: &mut multer::Multipart<'static>,
    ) -> UploadResponse {
        let gw = self.gw();
        let bad =
            |message: &str| UploadResponse::BadRequest(ErrorBody::new("bad_request", message));
        let unsupported = |message: String| {
            UploadResponse::UnsupportedMedia(ErrorBody::new("unsupported_media_type", message))
        };
        let mut stored: Option<(JobId, ObjectKey, String, u64)> = None;

        loop {
            let field = match multipart.next_field().await {
                Ok(Some(field)) => field,
                Ok(None) => break,
                Err(_) => {
                    discard(gw, stored.as_ref()).await;
                    return bad("The multipart body is malformed.");
                }
            };
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
                Err(PutError::Source(UploadFailure::TooLarge)) => {
                    return UploadResponse::TooLarge(ErrorBody::new(
                        "payload_too_large",
                        format!(
                            "The file is larger than the {} MB limit.",
                            limit / (1024 * 1024)
                        ),
                    ));
                }
                Err(PutError::Source(UploadFailure::Multipart(_))) => {
                    return bad("The upload was interrupted or malformed.");
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
            token_id: claims.jti.clone(),
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
        tracing::info!(%job_id, size, "upload accepted");
        UploadResponse::Accepted(Json(UploadAccepted {
            job_id: job_id.to_string(),
            filename,
            status: "queued".into(),
            message: format!("Conversion started; follow it at /status/{job_id}."),
        }))
    }

    async fn serve_download(
        &self,
        auth: &BearerAuth,
        raw_id: &str,
        range: Option<&str>,
    ) -> DownloadResponse {
        let (_, job) = match self.caller_job(auth, raw_id).await {
            Ok(found) => found,
            Err(refusal) => return refusal.into(),
        };
        let (Some(key), Some(_)) = (job.mp3_key.clone(), job.completed_at) else {
            return DownloadResponse::NotReady(ErrorBody::new(
                "not_ready",
                "The MP3 is not ready yet; check /status.",
            ));
        };
        let objects = &self.gw().objects;
        let size = match objects.size(&key).await {
            Ok(Some(size)) => size,
            Ok(None) => {
                return DownloadResponse::NotFound(ErrorBody::new(
                    "not_found",
                    "The MP3 has been deleted.",
                ));
            }
            Err(error) => return DownloadResponse::Unavailable(unavailable("storage", error)),
        };
        let disposition = upload::content_disposition(&job.original_filename);
        let range = match range.map(|r| parse_range(r, size)) {
            None => None,
            Some(Ok(range)) => range,
            Some(Err(())) => {
                return DownloadResponse::RangeNotSatisfiable(
                    ErrorBody::new(
                        "range_not_satisfiable",
                        format!("The requested range is outside the file ({size} bytes)."),
                    ),
                    format!("bytes */{size}"),
                );
            }
        };
        let span = range.clone().unwrap_or(0..size);
        let body = match objects.read_range(&key, span.clone()).await {
            Ok(stream) => Body::from_bytes_stream(stream),
            Err(error) => return DownloadResponse::Unavailable(unavailable("storage", error)),
        };
        let length = span.end - span.start;
        match range {
            Some(r) => DownloadResponse::Partial(
                Mp3(body),
                disposition,
                format!("bytes {}-{}/{size}", r.start, r.end - 1),
                length,
            ),
            None => DownloadResponse::Ok(Mp3(body), disposition, "bytes".into(), length),
        }
    }
}

/// Parses a single `bytes=` range against `size`. `Ok(None)`: ignore the header (a form we do
/// not serve, such as several ranges), as RFC 9110 allows. `Err`: unsatisfiable.
fn parse_range(header: &str, size: u64) -> Result<Option<std::ops::Range<u64>>, ()> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((start, end)) = spec.split_once('-') else {
        return Err(());
    };
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        let suffix: u64 = end.parse().map_err(|_| ())?;
        if suffix == 0 {
            return Err(());
        }
        size.saturating_sub(suffix)..size
    } else {
        let start: u64 = start.parse().map_err(|_| ())?;
        let end = if end.is_empty() {
            size.saturating_sub(1)
        } else {
            end.parse::<u64>()
                .map_err(|_| ())?
                .min(size.saturating_sub(1))
        };
        if start >= size || end < start {
            return Err(());
        }
        start..end + 1
    };
    Ok(Some(range))
}

/// A fresh access token for `user` in `session_id`, with the refresh token that goes with it.
fn token_pair(
    gw: &Gateway,
    user: &audiomill_store::User,
    session_id: &str,
    refresh: String,
) -> LoginResponse {
    let (access, _) = gw
        .tokens
        .issue_access(user.id, &user.email, user.is_admin, session_id);
    LoginResponse::Ok(Json(TokenPair {
        access_token: access,
        token_type: "Bearer".into(),
        expires_in: gw.tokens.access_ttl.as_secs(),
        refresh_token: refresh,
    }))
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

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_are_parsed_against_the_size() {
        assert_eq!(parse_range("bytes=0-99", 1000), Ok(Some(0..100)));
        assert_eq!(parse_range("bytes=900-", 1000), Ok(Some(900..1000)));
        assert_eq!(parse_range("bytes=-100", 1000), Ok(Some(900..1000)));
        assert_eq!(parse_range("bytes=990-2000", 1000), Ok(Some(990..1000)));
        assert_eq!(parse_range("bytes=1000-", 1000), Err(()));
        assert_eq!(parse_range("bytes=5-1", 1000), Err(()));
        assert_eq!(parse_range("bytes=abc", 1000), Err(()));
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), Ok(None));
        assert_eq!(parse_range("items=0-1", 1000), Ok(None));
    }
}
