//! Resumable uploads: the tus 1.0.0 protocol under `/uploads`, with its `creation`,
//! `creation-with-upload`, `termination`, `expiration` and `checksum` extensions.
//!
//! An upload is created with its length and its metadata (the file's name and the same output
//! choices the multipart form takes, checked up front); its bytes then arrive in any number of
//! `PATCH` requests, each appended where the last one stopped (see `ObjectStore`'s pending
//! objects), on any gateway. The row in the database says how far the bytes go; a lease on it
//! keeps two requests from appending at once. When the last byte is in, the job starts
//! exactly as a multipart upload's does, and the answer names it in `Audiomill-Job-Id`.
//!
//! The operations and their answers live here; the machinery behind them (the lease, creating,
//! appending and starting the job) in `uploads::resumable`.

use super::context::{
    AnswersBadRequest, AnswersUnauthorized, ApiTags, BearerAuth, Caller, Context, ErrorJson,
    Refusal, Scope, store_down,
};
use crate::uploads::refusal::{StartError, StartRefusal};
use crate::uploads::resumable::{
    AppendRefusal, CreateRefusal, Creating, LeaseRefusal, LookupRefusal, Standing, TusHeaders,
    TusRefusal, TusRequest, callers, lost_task, remove, start_when_due, take_chunk, under_lease,
};
use crate::{
    error::{ErrorBody, ErrorCode},
    params::ApiUploadId,
    uploads::tus::{self, BadHeader},
};
use audiomill_domain::UploadId;
use audiomill_store::{Resumable, time::now_millis};
use poem::http::HeaderMap;
use poem_openapi::{
    ApiResponse, OpenApi,
    param::{Header, Path},
};

/// `/uploads` and `/uploads/{upload_id}`.
pub struct ResumableApi {
    pub(super) cx: Context,
}

/// The server's protocol, versions and limits.
#[derive(ApiResponse)]
#[oai(header(name = "Tus-Resumable", ty = "String", description = "`1.0.0`"))]
enum DiscoverResponse {
    /// What the server supports.
    #[oai(status = 204)]
    Supported(
        /// `1.0.0`, the only version spoken.
        #[oai(header = "Tus-Version")]
        String,
        /// The extensions supported.
        #[oai(header = "Tus-Extension")]
        String,
        /// The largest upload, in bytes (`MAX_FILE_SIZE`).
        #[oai(header = "Tus-Max-Size")]
        u64,
        /// The algorithms `Upload-Checksum` may name.
        #[oai(header = "Tus-Checksum-Algorithm")]
        String,
    ),
}

/// The refusals every tus operation may answer with, as variants of its response.
macro_rules! tus_refusals {
    ($(#[$meta:meta])* enum $name:ident { $($variants:tt)* }) => {
        api_response! {
            $(#[$meta])*
            #[oai(
                bad_request_handler = "upload_id_refusal",
                header(name = "Tus-Resumable", ty = "String", description = "`1.0.0`")
            )]
            enum $name {
                $($variants)*
                /// A header is malformed (each is named), or the upload id is.
                #[oai(status = 400)]
                BadRequest(ErrorJson),
                @unauthorized,
                @forbidden,
                /// No such upload (or not yours).
                #[oai(status = 404)]
                NotFound(ErrorJson),
                /// The upload expired (`RESUMABLE_EXPIRY_HOURS` after its creation) and its bytes
                /// are removed.
                #[oai(status = 410)]
                Gone(ErrorJson),
                /// `Tus-Resumable` names another version than `1.0.0` (one that is missing or
                /// malformed is a 400).
                #[oai(status = 412)]
                Version(ErrorJson, #[oai(header = "Tus-Version")] String),
                @unavailable,
            }
        }

        impl Refusal<$name> for LookupRefusal {
            fn answer(self) -> $name {
                match self {
                    LookupRefusal::BadRequest(error) => $name::BadRequest(error),
                    LookupRefusal::Unauthorized(error) => $name::Unauthorized(error),
                    LookupRefusal::Forbidden(error) => $name::Forbidden(error),
                    LookupRefusal::NotFound(error) => $name::NotFound(error),
                    LookupRefusal::Gone(error) => $name::Gone(error),
                    LookupRefusal::Version(error) => $name::Version(error, tus::VERSION.into()),
                    LookupRefusal::Unavailable(error) => $name::Unavailable(error),
                }
            }
        }
    };
}

tus_refusals! {
    /// The answer to a creation.
    enum CreateResponse {
        /// Created (or, for an `Idempotency-Key` used before, the upload it created); with a
        /// body, its bytes are appended. Once the last byte is in, the job has started.
        #[oai(status = 201)]
        Created(
            /// Where the upload is: `/uploads/{upload_id}`.
            #[oai(header = "Location")] String,
            /// Bytes received so far.
            #[oai(header = "Upload-Offset")] u64,
            /// When the unfinished upload is removed (an HTTP date).
            #[oai(header = "Upload-Expires")] String,
            /// The job, once the last byte is in.
            #[oai(header = "Audiomill-Job-Id")] Option<String>,
            /// With a `callback_url`, when the job starts: its one-off webhook endpoint.
            #[oai(header = "Audiomill-Webhook-Id")] Option<String>,
            /// With a `callback_url`, when the job starts: the secret that signs its messages.
            #[oai(header = "Audiomill-Webhook-Secret")] Option<String>,
        ),
        /// The body arrived too slowly or stopped; what arrived is kept up to `Upload-Offset`,
        /// in the upload at `Location` (a body cut off with no answer leaves nothing, unless an
        /// `Idempotency-Key` lets a creation find it again).
        #[oai(status = 408)]
        TooSlow(
            ErrorJson,
            #[oai(header = "Upload-Offset")] u64,
            /// Where the upload is: `/uploads/{upload_id}`.
            #[oai(header = "Location")] Option<String>,
        ),
        /// `Upload-Length` is larger than `MAX_FILE_SIZE`, or than the room the storage quota
        /// leaves (unfinished uploads hold their whole length), with its headers, in bytes;
        /// or the body goes past `Upload-Length`. Nothing is kept.
        #[oai(status = 413)]
        TooLarge(
            ErrorJson,
            #[oai(header = "X-Quota-Storage-Limit")] Option<u64>,
            #[oai(header = "X-Quota-Storage-Remaining")] Option<u64>,
        ),
        /// Not an accepted video type (by the file name's extension, or the first bytes).
        #[oai(status = 415)]
        UnsupportedMedia(ErrorJson),
        /// This `Idempotency-Key` already created an upload of another file.
        #[oai(status = 422)]
        KeyReused(ErrorJson),
        /// The gateway stalled while the body arrived and the upload's lease ran out; nothing
        /// is kept: create it again.
        #[oai(status = 423)]
        Locked(ErrorJson),
        @checksum_mismatch,
        /// `MAX_UNFINISHED_UPLOADS` unfinished uploads already (or
        /// `MAX_UNFINISHED_UPLOADS_PER_ADDRESS` from the caller's address),
        /// `MAX_CONCURRENT_UPLOADS` uploads in progress, or the jobs-per-day quota used up (with
        /// its headers). Nothing is kept.
        #[oai(status = 429)]
        TooMany(
            ErrorJson,
            #[oai(header = "X-Quota-Jobs-Limit")] Option<u64>,
            #[oai(header = "X-Quota-Jobs-Remaining")] Option<u64>,
            #[oai(header = "Retry-After")] Option<u64>,
        ),
    }
}

tus_refusals! {
    /// The answer to a chunk.
    enum AppendResponse {
        /// Appended; once the last byte is in, the job has started.
        #[oai(status = 204)]
        Appended(
            /// Bytes received so far.
            #[oai(header = "Upload-Offset")] u64,
            /// When the unfinished upload is removed (an HTTP date).
            #[oai(header = "Upload-Expires")] String,
            /// The job, once the last byte is in.
            #[oai(header = "Audiomill-Job-Id")] Option<String>,
            /// With a `callback_url`, when the job starts: its one-off webhook endpoint.
            #[oai(header = "Audiomill-Webhook-Id")] Option<String>,
            /// With a `callback_url`, when the job starts: the secret that signs its messages.
            #[oai(header = "Audiomill-Webhook-Secret")] Option<String>,
        ),
        /// The body arrived too slowly or stopped; what arrived is kept up to `Upload-Offset`.
        #[oai(status = 408)]
        TooSlow(ErrorJson, #[oai(header = "Upload-Offset")] u64),
        /// `Upload-Offset` is not where the upload stands (given in `Upload-Offset`).
        #[oai(status = 409)]
        Conflict(ErrorJson, #[oai(header = "Upload-Offset")] u64),
        /// The body goes past `Upload-Length` (none of it was kept), or the quota left no
        /// room for the whole file (then nothing of the upload is kept).
        #[oai(status = 413)]
        TooLarge(
            ErrorJson,
            #[oai(header = "X-Quota-Storage-Limit")] Option<u64>,
            #[oai(header = "X-Quota-Storage-Remaining")] Option<u64>,
        ),
        /// The body is not `application/offset+octet-stream`, or the file's first bytes are
        /// not the video its name promises (then the upload is removed).
        #[oai(status = 415)]
        UnsupportedMedia(ErrorJson),
        /// Another request is appending to this upload now.
        #[oai(status = 423)]
        Locked(ErrorJson),
        @checksum_mismatch,
        /// `MAX_CONCURRENT_UPLOADS` uploads in progress, or (at the last byte) the jobs-per-day
        /// quota used up, with its headers.
        #[oai(status = 429)]
        TooMany(
            ErrorJson,
            #[oai(header = "X-Quota-Jobs-Limit")] Option<u64>,
            #[oai(header = "X-Quota-Jobs-Remaining")] Option<u64>,
            #[oai(header = "Retry-After")] Option<u64>,
        ),
    }
}

tus_refusals! {
    /// The answer to a look at an upload.
    enum OffsetResponse {
        /// Where the upload stands.
        #[oai(status = 200)]
        Standing(
            /// Bytes received so far: the next chunk starts here.
            #[oai(header = "Upload-Offset")] u64,
            #[oai(header = "Upload-Length")] u64,
            /// When the unfinished upload is removed (an HTTP date).
            #[oai(header = "Upload-Expires")] String,
            /// `no-store`.
            #[oai(header = "Cache-Control")] String,
            /// The job, once the last byte is in.
            #[oai(header = "Audiomill-Job-Id")] Option<String>,
        ),
        /// The upload is complete and its job could not start: the storage quota leaves no
        /// room for it (with its headers). The upload is removed.
        #[oai(status = 413)]
        TooLarge(
            ErrorJson,
            #[oai(header = "X-Quota-Storage-Limit")] Option<u64>,
            #[oai(header = "X-Quota-Storage-Remaining")] Option<u64>,
        ),
        /// The upload is complete and its content is not the video its name promises. The
        /// upload is removed.
        #[oai(status = 415)]
        UnsupportedMedia(ErrorJson),
        /// The upload is complete and the jobs-per-day quota is used up (with its headers).
        /// The upload is removed.
        #[oai(status = 429)]
        TooMany(
            ErrorJson,
            #[oai(header = "X-Quota-Jobs-Limit")] Option<u64>,
            #[oai(header = "X-Quota-Jobs-Remaining")] Option<u64>,
            #[oai(header = "Retry-After")] Option<u64>,
        ),
    }
}

tus_refusals! {
    /// The answer to a termination.
    enum TerminateResponse {
        /// The upload and its bytes are removed (a job it started goes on).
        #[oai(status = 204)]
        Terminated,
        /// A request is appending to this upload now; terminate it once that has ended.
        #[oai(status = 423)]
        Locked(ErrorJson),
    }
}

impl Refusal<CreateResponse> for TusRefusal {
    fn answer(self) -> CreateResponse {
        use CreateResponse as Answer;
        match self {
            TusRefusal::BadRequest(e) => Answer::BadRequest(e),
            TusRefusal::Unauthorized(e) => Answer::Unauthorized(e),
            TusRefusal::Forbidden(e) => Answer::Forbidden(e),
            TusRefusal::NotFound(e) => Answer::NotFound(e),
            TusRefusal::Gone(e) => Answer::Gone(e),
            TusRefusal::Version(e) => Answer::Version(e, tus::VERSION.into()),
            TusRefusal::TooSlow(e, offset, id) => {
                Answer::TooSlow(e, offset, id.map(|id| format!("/uploads/{id}")))
            }
            TusRefusal::Cut(e, offset) => Answer::TooSlow(e, offset, None),
            TusRefusal::TooLarge(e, limit, left) => Answer::TooLarge(e, limit, left),
            TusRefusal::UnsupportedMedia(e) => Answer::UnsupportedMedia(e),
            TusRefusal::Locked(e) => Answer::Locked(e),
            TusRefusal::ChecksumMismatch(e) => Answer::ChecksumMismatch(e),
            TusRefusal::TooMany(e, limit, left, after) => Answer::TooMany(e, limit, left, after),
            TusRefusal::Unavailable(e) => Answer::Unavailable(e),
        }
    }
}

impl Refusal<CreateResponse> for CreateRefusal {
    fn answer(self) -> CreateResponse {
        match self {
            CreateRefusal::Refused(refusal) => refusal.answer(),
            CreateRefusal::KeyReused(e) => CreateResponse::KeyReused(e),
        }
    }
}

impl Refusal<AppendResponse> for TusRefusal {
    fn answer(self) -> AppendResponse {
        use AppendResponse as Answer;
        match self {
            TusRefusal::BadRequest(e) => Answer::BadRequest(e),
            TusRefusal::Unauthorized(e) => Answer::Unauthorized(e),
            TusRefusal::Forbidden(e) => Answer::Forbidden(e),
            TusRefusal::NotFound(e) => Answer::NotFound(e),
            TusRefusal::Gone(e) => Answer::Gone(e),
            TusRefusal::Version(e) => Answer::Version(e, tus::VERSION.into()),
            TusRefusal::TooSlow(e, offset, _) | TusRefusal::Cut(e, offset) => {
                Answer::TooSlow(e, offset)
            }
            TusRefusal::TooLarge(e, limit, left) => Answer::TooLarge(e, limit, left),
            TusRefusal::UnsupportedMedia(e) => Answer::UnsupportedMedia(e),
            TusRefusal::Locked(e) => Answer::Locked(e),
            TusRefusal::ChecksumMismatch(e) => Answer::ChecksumMismatch(e),
            TusRefusal::TooMany(e, limit, left, after) => Answer::TooMany(e, limit, left, after),
            TusRefusal::Unavailable(e) => Answer::Unavailable(e),
        }
    }
}

impl Refusal<AppendResponse> for AppendRefusal {
    fn answer(self) -> AppendResponse {
        match self {
            AppendRefusal::Refused(refusal) => refusal.answer(),
            AppendRefusal::Conflict(e, offset) => AppendResponse::Conflict(e, offset),
        }
    }
}

impl LeaseRefusal for TerminateResponse {
    fn held_elsewhere(error: ErrorJson) -> Self {
        Self::Locked(error)
    }

    fn not_found(error: ErrorJson) -> Self {
        Self::NotFound(error)
    }

    fn down(error: ErrorJson) -> Self {
        Self::Unavailable(error)
    }
}

/// Where a look at an upload stops: another request holds it (and starts its job itself), or
/// an answer.
enum LookStop {
    Held,
    Answer(OffsetResponse),
}

impl LeaseRefusal for LookStop {
    fn held_elsewhere(_: ErrorJson) -> Self {
        Self::Held
    }

    fn not_found(error: ErrorJson) -> Self {
        Self::Answer(OffsetResponse::NotFound(error))
    }

    fn down(error: ErrorJson) -> Self {
        Self::Answer(OffsetResponse::Unavailable(error))
    }
}

impl From<StartError> for LookStop {
    fn from(error: StartError) -> Self {
        Self::Answer(match StartRefusal::from(error) {
            StartRefusal::BadRequest(e) => OffsetResponse::BadRequest(e),
            StartRefusal::Unauthorized(e) => OffsetResponse::Unauthorized(e),
            StartRefusal::TooLarge(e, limit, left) => OffsetResponse::TooLarge(e, limit, left),
            StartRefusal::UnsupportedMedia(e) => OffsetResponse::UnsupportedMedia(e),
            StartRefusal::TooMany(e, limit, left, after) => {
                OffsetResponse::TooMany(e, limit, left, after)
            }
            StartRefusal::Unavailable(e) => OffsetResponse::Unavailable(e),
        })
    }
}

/// The framework's refusal of the tus operations (a malformed upload id, a missing token),
/// in each operation's own answers.
fn upload_id_refusal<R: AnswersUnauthorized + AnswersBadRequest>(error: poem::Error) -> R {
    super::context::parameter_refusal(
        error,
        "The upload id is missing or malformed: upload ids are lower-case UUIDs.",
    )
}

#[OpenApi]
impl ResumableApi {
    /// What the resumable upload server supports (tus discovery).
    #[oai(
        path = "/uploads",
        method = "options",
        tag = "ApiTags::Jobs",
        operation_id = "discoverResumableUploads"
    )]
    async fn discover(&self) -> DiscoverResponse {
        DiscoverResponse::Supported(
            tus::VERSION.into(),
            tus::EXTENSIONS.into(),
            self.cx.gw().limits.max_bytes,
            tus::CHECKSUM_ALGORITHMS.into(),
        )
    }

    /// Create a resumable upload (tus `creation`, `creation-with-upload`).
    ///
    /// `Upload-Length` gives the file's size (a deferred length is not taken);
    /// `Upload-Metadata` carries `filename` (or `name`) and, by the names of the multipart
    /// form's fields, the output choices, `callback_url` and `idempotency_key`, each checked
    /// now exactly as the form checks it. Other metadata keys are ignored. With a body
    /// (`application/offset+octet-stream`) the first bytes are appended at once.
    #[oai(
        path = "/uploads",
        method = "post",
        tag = "ApiTags::Jobs",
        operation_id = "createResumableUpload"
    )]
    #[tracing::instrument(skip_all, fields(upload_id = tracing::field::Empty))]
    async fn create(
        &self,
        #[oai(scope = "Scope::JobsWrite")] auth: BearerAuth,
        /// `1.0.0`.
        #[oai(name = "Tus-Resumable")]
        _version: Header<Option<String>>,
        /// The file's size in bytes.
        #[oai(name = "Upload-Length")]
        _length: Header<Option<String>>,
        /// `key base64(value)` pairs, comma-separated.
        #[oai(name = "Upload-Metadata")]
        _metadata: Header<Option<String>>,
        /// As on `POST /upload`: creating again with the same key answers the same upload.
        #[oai(name = "Idempotency-Key")]
        _key: Header<Option<String>>,
        request: TusRequest,
    ) -> CreateResponse {
        match self.create_upload(&auth, request).await {
            Ok((id, standing)) => {
                let (webhook, secret) = standing.callback_headers();
                CreateResponse::Created(
                    format!("/uploads/{id}"),
                    standing.offset,
                    tus::http_date(standing.expires_at),
                    standing.job_header(),
                    webhook,
                    secret,
                )
            }
            Err(refusal) => refusal.answer(),
        }
    }

    /// Where a resumable upload stands (tus `HEAD`): the offset to resume from.
    #[oai(
        path = "/uploads/:upload_id",
        method = "head",
        tag = "ApiTags::Jobs",
        operation_id = "getResumableUploadOffset"
    )]
    async fn offset(
        &self,
        #[oai(scope = "Scope::JobsWrite")] auth: BearerAuth,
        upload_id: Path<ApiUploadId>,
        #[oai(name = "Tus-Resumable")] _version: Header<Option<String>>,
        request: TusHeaders,
    ) -> OffsetResponse {
        let upload = or_refuse!(self.look(&auth, upload_id.0.0, &request.0).await);
        OffsetResponse::Standing(
            upload.offset,
            upload.upload.length,
            tus::http_date(upload.upload.expires_at),
            "no-store".into(),
            Standing::of(&upload).job_header(),
        )
    }

    /// Append a chunk to a resumable upload (tus `PATCH`).
    ///
    /// The body (`application/offset+octet-stream`) is appended at `Upload-Offset`, which
    /// must be where the upload stands. With `Upload-Checksum` (`md5`, `sha1` or `sha256`)
    /// the chunk is kept only if it matches. A chunk cut off keeps what arrived; resume from
    /// the offset `HEAD` gives.
    #[oai(
        path = "/uploads/:upload_id",
        method = "patch",
        tag = "ApiTags::Jobs",
        operation_id = "appendToResumableUpload"
    )]
    #[tracing::instrument(skip_all, fields(upload_id = %upload_id.0))]
    async fn append(
        &self,
        #[oai(scope = "Scope::JobsWrite")] auth: BearerAuth,
        upload_id: Path<ApiUploadId>,
        #[oai(name = "Tus-Resumable")] _version: Header<Option<String>>,
        /// Where this chunk starts.
        #[oai(name = "Upload-Offset")]
        _offset: Header<Option<String>>,
        /// `<algorithm> <base64 digest>` of this chunk.
        #[oai(name = "Upload-Checksum")]
        _checksum: Header<Option<String>>,
        request: TusRequest,
    ) -> AppendResponse {
        match self.append_chunk(&auth, upload_id.0.0, request).await {
            Ok(standing) => {
                let (webhook, secret) = standing.callback_headers();
                AppendResponse::Appended(
                    standing.offset,
                    tus::http_date(standing.expires_at),
                    standing.job_header(),
                    webhook,
                    secret,
                )
            }
            Err(refusal) => refusal.answer(),
        }
    }

    /// Remove a resumable upload and its bytes (tus `termination`).
    #[oai(
        path = "/uploads/:upload_id",
        method = "delete",
        tag = "ApiTags::Jobs",
        operation_id = "terminateResumableUpload"
    )]
    #[tracing::instrument(skip_all, fields(upload_id = %upload_id.0))]
    async fn terminate(
        &self,
        #[oai(scope = "Scope::JobsWrite")] auth: BearerAuth,
        upload_id: Path<ApiUploadId>,
        #[oai(name = "Tus-Resumable")] _version: Header<Option<String>>,
        request: TusHeaders,
    ) -> TerminateResponse {
        or_refuse!(
            self.terminate_upload(&auth, upload_id.0.0, &request.0)
                .await
        );
        TerminateResponse::Terminated
    }
}

impl ResumableApi {
    /// The caller, if the request speaks tus 1.0.0 and the token is good.
    async fn caller(
        &self,
        auth: &BearerAuth,
        headers: &HeaderMap,
    ) -> Result<Caller, LookupRefusal> {
        match tus::version(headers) {
            tus::Version::Spoken => {}
            tus::Version::Other => {
                return Err(LookupRefusal::Version(ErrorBody::new(
                    ErrorCode::PreconditionFailed,
                    format!(
                        "This server speaks tus {}: send `Tus-Resumable: {}`.",
                        tus::VERSION,
                        tus::VERSION
                    ),
                )));
            }
            tus::Version::Malformed => {
                let message = format!(
                    "The Tus-Resumable header is required, once, as `{}`.",
                    tus::VERSION
                );
                return Err(BadHeader(message).into());
            }
        }
        Ok(self.cx.authenticate_upload(auth).await?)
    }

    /// The caller and their upload `id` as it stands now (see [`callers`]).
    async fn callers_upload(
        &self,
        auth: &BearerAuth,
        id: UploadId,
        headers: &HeaderMap,
    ) -> Result<(Caller, Resumable), LookupRefusal> {
        let caller = self.caller(auth, headers).await?;
        let upload = callers(self.cx.gw(), id, &caller).await?;
        Ok((caller, upload))
    }

    /// Creates the upload and appends its body, in a task of its own: a client gone
    /// mid-request leaves no upload it could not name (see [`Creating::run`]).
    async fn create_upload(
        &self,
        auth: &BearerAuth,
        request: TusRequest,
    ) -> Result<(UploadId, Standing), CreateRefusal> {
        let caller = self.caller(auth, &request.headers).await?;
        let creating = Creating {
            gw: self.cx.gateway(),
            caller,
        };
        tokio::spawn(creating.run(request))
            .await
            .unwrap_or_else(|error| Err(lost_task(error).into()))
    }

    /// Appends the request's body at its `Upload-Offset`, or (at the end of the upload) starts
    /// its job when no request could yet.
    async fn append_chunk(
        &self,
        auth: &BearerAuth,
        id: UploadId,
        request: TusRequest,
    ) -> Result<Standing, AppendRefusal> {
        let (caller, _) = self
            .callers_upload(auth, id, &request.headers)
            .await
            .map_err(TusRefusal::from)?;
        if !tus::is_chunk(request.content_type.as_deref()) {
            return Err(TusRefusal::UnsupportedMedia(ErrorBody::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "A chunk's body must be sent as {}.",
                    tus::CHUNK_CONTENT_TYPE
                ),
            ))
            .into());
        }
        let offset = tus::size(&request.headers, "upload-offset").map_err(TusRefusal::from)?;
        let Some(offset) = offset else {
            return Err(TusRefusal::from(BadHeader(
                "The Upload-Offset header is required.".into(),
            ))
            .into());
        };
        take_chunk(self.cx.gateway(), caller, id, offset, request).await
    }

    /// Where the upload stands; a complete upload whose job could not start before (an
    /// outage) starts it now.
    async fn look(
        &self,
        auth: &BearerAuth,
        id: UploadId,
        headers: &HeaderMap,
    ) -> Result<Resumable, OffsetResponse> {
        let (caller, upload) = self
            .callers_upload(auth, id, headers)
            .await
            .map_err(Refusal::answer)?;
        if !upload.is_complete() || upload.started_at.is_some() {
            return Ok(upload);
        }
        let started = under_lease(self.cx.gateway(), id, move |held| async move {
            let standing = start_when_due(&held.gw, &caller, held.upload.clone()).await?;
            Ok((standing, held.upload))
        })
        .await;
        match started {
            Ok((standing, upload)) => Ok(Resumable {
                started_at: standing.job.map(|_| now_millis()),
                ..upload
            }),
            Err(LookStop::Held) => Ok(upload),
            Err(LookStop::Answer(answer)) => Err(answer),
        }
    }

    /// Removes the upload, unless a request is appending to it now.
    async fn terminate_upload(
        &self,
        auth: &BearerAuth,
        id: UploadId,
        headers: &HeaderMap,
    ) -> Result<(), TerminateResponse> {
        self.callers_upload(auth, id, headers)
            .await
            .map_err(Refusal::answer)?;
        under_lease(self.cx.gateway(), id, |held| async move {
            remove(&held.gw, &held.upload)
                .await
                .map_err(|error| TerminateResponse::Unavailable(store_down(error)))
        })
        .await?;
        tracing::info!(upload_id = %id, "resumable upload terminated by its user");
        Ok(())
    }
}
