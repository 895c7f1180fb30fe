//! Resumable uploads: the tus 1.0.0 protocol under `/uploads`, with its `creation`,
//! `creation-with-upload`, `termination`, `expiration` and `checksum` extensions.
//!
//! An upload is created with its length and its metadata (the file's name and the same output
//! choices the multipart form takes, checked up front); its bytes then arrive in any number of
//! `PATCH` requests, each appended where the last one stopped (see `ObjectStore`'s pending
//! objects), on any gateway. The row in the database says how far the bytes go; a lease on it
//! keeps two requests from appending at once. When the last byte is in, the job starts
//! exactly as a multipart upload's does, and the answer names it in `Audiomill-Job-Id`.

use super::context::{ApiTags, BearerAuth, Context, Denied, ErrorJson, unavailable};
use super::intake::{self, StoredSource, UploadAnswer, UploadError};
use crate::{
    error::{ErrorBody, ErrorCode},
    gateway::Gateway,
    metrics,
    params::ApiUploadId,
    tus::{self, BadHeader, Checksum, ChunkChecks, ChunkStop},
    upload::{Container, Head},
};
use audiomill_domain::{BatchId, JobId, ObjectKey, UploadId, UserId, webhook::WebhookUrl};
use audiomill_store::{
    Appended, Creation, CreationLimits, CreationRefusal, NewResumable, PendingObject, Resumable,
    WebhookEndpoint, time::now_millis,
};
use futures::StreamExt;
use poem::{Body, Request, http::HeaderMap};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ApiResponse, ExtractParamOptions, OpenApi,
    param::{Header, Path},
    payload::{Binary, Payload},
    registry::{MetaMediaType, MetaRequest, Registry},
};
use std::{sync::Arc, time::Duration};

/// `/uploads` and `/uploads/{upload_id}`.
pub struct ResumableApi {
    pub(super) cx: Context,
}

/// How long a request's lease on an upload lasts; renewed while its body streams in, so only
/// a gateway that died leaves one to run out.
const LEASE: Duration = Duration::from_secs(60);

/// A request's headers and its body, unread: tus requests are read from the raw headers (a
/// typed header reads a malformed value as none) and their bodies are streams.
pub(super) struct TusRequest {
    headers: HeaderMap,
    content_type: Option<String>,
    body: Body,
    /// The peer's address, as the rate limits count it.
    address: Option<String>,
}

impl<'a> ApiExtractor<'a> for TusRequest {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Binary<Vec<u8>> as Payload>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: Some(
                "The file's bytes from `Upload-Offset` on, as `application/offset+octet-stream` \
                 (optional when creating an upload).",
            ),
            content: vec![MetaMediaType {
                content_type: tus::CHUNK_CONTENT_TYPE,
                schema: <Binary<Vec<u8>> as Payload>::schema_ref(),
            }],
            required: false,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut poem::RequestBody,
        _: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        Ok(Self {
            headers: request.headers().clone(),
            content_type: request.content_type().map(str::to_owned),
            body: body.take().unwrap_or_default(),
            address: request
                .remote_addr()
                .as_socket_addr()
                .map(|address| address.ip().to_string()),
        })
    }
}

/// A request's raw headers, for the operations that take no body (`HEAD`, `DELETE`).
pub(super) struct TusHeaders(HeaderMap);

impl<'a> ApiExtractor<'a> for TusHeaders {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::PoemExtractor];
    type ParamType = ();
    type ParamRawType = ();

    async fn from_request(
        request: &'a Request,
        _: &mut poem::RequestBody,
        _: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        Ok(Self(request.headers().clone()))
    }
}

impl TusRequest {
    /// Whether the request carries bytes to append (an empty body does not).
    fn has_bytes(&self) -> bool {
        let length = tus::size(&self.headers, "content-length").ok().flatten();
        self.headers.contains_key("transfer-encoding") || length.is_some_and(|n| n > 0)
    }
}

/// Why a tus request was refused, in the answers the operations share.
pub(super) enum TusRefusal {
    BadRequest(ErrorJson),
    Unauthorized(ErrorJson),
    NotFound(ErrorJson),
    Gone(ErrorJson),
    /// `Upload-Offset` is not where the upload stands (which is given).
    Conflict(ErrorJson, u64),
    /// The body stopped arriving; what arrived is kept up to the given offset, in the given
    /// upload (named for a creation, whose client has no `Location` yet).
    TooSlow(ErrorJson, u64, Option<UploadId>),
    /// The body was cut off (the connection broke); what arrived is kept up to the offset.
    Cut(ErrorJson, u64),
    Version(ErrorJson),
    TooLarge(ErrorJson, Option<u64>, Option<u64>),
    UnsupportedMedia(ErrorJson),
    KeyReused(ErrorJson),
    Locked(ErrorJson),
    ChecksumMismatch(ErrorJson),
    TooMany(ErrorJson, Option<u64>, Option<u64>, Option<u64>),
    Unavailable(ErrorJson),
}

impl From<Denied> for TusRefusal {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Unauthorized(error) => Self::Unauthorized(error),
            Denied::Unavailable(error) => Self::Unavailable(error),
        }
    }
}

impl From<BadHeader> for TusRefusal {
    fn from(bad: BadHeader) -> Self {
        Self::BadRequest(ErrorBody::new(ErrorCode::BadRequest, bad.0))
    }
}

impl From<UploadError> for TusRefusal {
    fn from(error: UploadError) -> Self {
        match error.into() {
            UploadAnswer::BadRequest(body) => Self::BadRequest(body),
            UploadAnswer::Unauthorized(body) => Self::Unauthorized(body),
            UploadAnswer::TooSlow => Self::TooSlow(
                ErrorBody::new(ErrorCode::RequestTimeout, "The upload arrived too slowly."),
                0,
                None,
            ),
            UploadAnswer::TooLarge(body, limit, remaining) => {
                Self::TooLarge(body, limit, remaining)
            }
            UploadAnswer::UnsupportedMedia(body) => Self::UnsupportedMedia(body),
            UploadAnswer::TooMany(body, limit, remaining, retry_after) => {
                Self::TooMany(body, limit, remaining, retry_after)
            }
            UploadAnswer::Unavailable(body) => Self::Unavailable(body),
        }
    }
}

/// Where an upload stands after a request: its offset, and once complete its job (with the
/// one-off endpoint its `callback_url` made, when the job started just now).
pub(super) struct Standing {
    offset: u64,
    expires_at: i64,
    job: Option<JobId>,
    callback: Option<WebhookEndpoint>,
}

impl Standing {
    fn of(upload: &Resumable) -> Self {
        Self {
            offset: upload.offset,
            expires_at: upload.upload.expires_at,
            job: upload.started_at.map(|_| upload.upload.job_id),
            callback: None,
        }
    }

    fn job_header(&self) -> Option<String> {
        self.job.map(|job| job.to_string())
    }

    fn callback_headers(&self) -> (Option<String>, Option<String>) {
        match &self.callback {
            Some(endpoint) => (
                Some(endpoint.id.to_string()),
                Some(endpoint.secret.expose()),
            ),
            None => (None, None),
        }
    }
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
                bad_request_handler = "TusResponse::framework_refusal",
                header(name = "Tus-Resumable", ty = "String", description = "`1.0.0`")
            )]
            enum $name {
                $($variants)*
                /// A header is malformed (each is named), or the upload id is.
                #[oai(status = 400)]
                BadRequest(ErrorJson),
                @unauthorized,
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

/// The refusal of an answer that has no such variant: an outage, in every operation's terms.
fn not_expected(what: &str) -> ErrorJson {
    unavailable("upload service", format!("unexpected refusal: {what}"))
}

impl From<TusRefusal> for CreateResponse {
    fn from(refusal: TusRefusal) -> Self {
        match refusal {
            TusRefusal::BadRequest(e) => Self::BadRequest(e),
            TusRefusal::Unauthorized(e) => Self::Unauthorized(e),
            TusRefusal::NotFound(e) => Self::NotFound(e),
            TusRefusal::Gone(e) => Self::Gone(e),
            TusRefusal::Version(e) => Self::Version(e, tus::VERSION.into()),
            TusRefusal::TooSlow(e, offset, id) => {
                Self::TooSlow(e, offset, id.map(|id| format!("/uploads/{id}")))
            }
            TusRefusal::Cut(e, offset) => Self::TooSlow(e, offset, None),
            TusRefusal::TooLarge(e, limit, left) => Self::TooLarge(e, limit, left),
            TusRefusal::UnsupportedMedia(e) => Self::UnsupportedMedia(e),
            TusRefusal::KeyReused(e) => Self::KeyReused(e),
            TusRefusal::ChecksumMismatch(e) => Self::ChecksumMismatch(e),
            TusRefusal::TooMany(e, limit, left, after) => Self::TooMany(e, limit, left, after),
            TusRefusal::Unavailable(e) => Self::Unavailable(e),
            TusRefusal::Conflict(..) => Self::Unavailable(not_expected("conflict")),
            TusRefusal::Locked(_) => Self::Unavailable(not_expected("locked")),
        }
    }
}

impl From<TusRefusal> for AppendResponse {
    fn from(refusal: TusRefusal) -> Self {
        match refusal {
            TusRefusal::BadRequest(e) => Self::BadRequest(e),
            TusRefusal::Unauthorized(e) => Self::Unauthorized(e),
            TusRefusal::NotFound(e) => Self::NotFound(e),
            TusRefusal::Gone(e) => Self::Gone(e),
            TusRefusal::Version(e) => Self::Version(e, tus::VERSION.into()),
            TusRefusal::TooSlow(e, offset, _) | TusRefusal::Cut(e, offset) => {
                Self::TooSlow(e, offset)
            }
            TusRefusal::Conflict(e, offset) => Self::Conflict(e, offset),
            TusRefusal::TooLarge(e, limit, left) => Self::TooLarge(e, limit, left),
            TusRefusal::UnsupportedMedia(e) => Self::UnsupportedMedia(e),
            TusRefusal::Locked(e) => Self::Locked(e),
            TusRefusal::ChecksumMismatch(e) => Self::ChecksumMismatch(e),
            TusRefusal::TooMany(e, limit, left, after) => Self::TooMany(e, limit, left, after),
            TusRefusal::Unavailable(e) => Self::Unavailable(e),
            TusRefusal::KeyReused(_) => Self::Unavailable(not_expected("key reused")),
        }
    }
}

impl From<TusRefusal> for OffsetResponse {
    fn from(refusal: TusRefusal) -> Self {
        match refusal {
            TusRefusal::BadRequest(e) => Self::BadRequest(e),
            TusRefusal::Unauthorized(e) => Self::Unauthorized(e),
            TusRefusal::NotFound(e) => Self::NotFound(e),
            TusRefusal::Gone(e) => Self::Gone(e),
            TusRefusal::Version(e) => Self::Version(e, tus::VERSION.into()),
            TusRefusal::TooLarge(e, limit, left) => Self::TooLarge(e, limit, left),
            TusRefusal::UnsupportedMedia(e) => Self::UnsupportedMedia(e),
            TusRefusal::TooMany(e, limit, left, after) => Self::TooMany(e, limit, left, after),
            TusRefusal::Unavailable(e) => Self::Unavailable(e),
            TusRefusal::Conflict(..)
            | TusRefusal::TooSlow(..)
            | TusRefusal::Cut(..)
            | TusRefusal::KeyReused(_)
            | TusRefusal::Locked(_)
            | TusRefusal::ChecksumMismatch(_) => Self::Unavailable(not_expected("look")),
        }
    }
}

impl From<TusRefusal> for TerminateResponse {
    fn from(refusal: TusRefusal) -> Self {
        match refusal {
            TusRefusal::BadRequest(e) => Self::BadRequest(e),
            TusRefusal::Unauthorized(e) => Self::Unauthorized(e),
            TusRefusal::NotFound(e) => Self::NotFound(e),
            TusRefusal::Gone(e) => Self::Gone(e),
            TusRefusal::Version(e) => Self::Version(e, tus::VERSION.into()),
            TusRefusal::Locked(e) => Self::Locked(e),
            TusRefusal::Unavailable(e) => Self::Unavailable(e),
            _ => Self::Unavailable(not_expected("termination")),
        }
    }
}

/// What the framework refuses before an operation runs (a malformed upload id, a missing
/// token), in each operation's own answers.
trait TusResponse: From<TusRefusal> {
    fn framework_refusal(error: poem::Error) -> Self {
        let (status, body) = crate::error::framework_answer(&error);
        Self::from(if status == poem::http::StatusCode::UNAUTHORIZED {
            TusRefusal::Unauthorized(body)
        } else {
            TusRefusal::BadRequest(ErrorBody::new(
                ErrorCode::BadRequest,
                "The upload id is missing or malformed: upload ids are lower-case UUIDs.",
            ))
        })
    }
}

impl TusResponse for CreateResponse {}
impl TusResponse for AppendResponse {}
impl TusResponse for OffsetResponse {}
impl TusResponse for TerminateResponse {}

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
        auth: BearerAuth,
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
            Err(refusal) => refusal.into(),
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
        auth: BearerAuth,
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
        auth: BearerAuth,
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
            Err(refusal) => refusal.into(),
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
        auth: BearerAuth,
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
    /// The caller and their user id, if the request speaks tus 1.0.0 and the token is good.
    async fn caller(
        &self,
        auth: &BearerAuth,
        headers: &HeaderMap,
    ) -> Result<(crate::auth::Claims, UserId), TusRefusal> {
        match tus::version(headers) {
            tus::Version::Spoken => {}
            tus::Version::Other => {
                return Err(TusRefusal::Version(ErrorBody::new(
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
        let claims = self.cx.authenticate(auth).await?;
        let user_id = claims.user_id().ok_or_else(|| {
            TusRefusal::Unauthorized(ErrorBody::new(
                ErrorCode::Unauthorized,
                "The access token is invalid.",
            ))
        })?;
        Ok((claims, user_id))
    }

    /// The caller and their upload `id` as it stands now (see [`callers`]).
    async fn callers_upload(
        &self,
        auth: &BearerAuth,
        id: UploadId,
        headers: &HeaderMap,
    ) -> Result<((crate::auth::Claims, UserId), Resumable), TusRefusal> {
        let caller = self.caller(auth, headers).await?;
        let upload = callers(self.cx.gw(), id, caller.1).await?;
        Ok((caller, upload))
    }

    /// Creates the upload and appends its body, in a task of its own: a client gone
    /// mid-request leaves no upload it could not name (see [`Creating::run`]).
    async fn create_upload(
        &self,
        auth: &BearerAuth,
        request: TusRequest,
    ) -> Result<(UploadId, Standing), TusRefusal> {
        let (claims, user_id) = self.caller(auth, &request.headers).await?;
        let creating = Creating {
            gw: self.cx.gateway(),
            claims,
            user_id,
        };
        tokio::spawn(creating.run(request))
            .await
            .unwrap_or_else(|error| Err(lost_task(error)))
    }

    /// Appends the request's body at its `Upload-Offset`, or (at the end of the upload) starts
    /// its job when no request could yet.
    async fn append_chunk(
        &self,
        auth: &BearerAuth,
        id: UploadId,
        request: TusRequest,
    ) -> Result<Standing, TusRefusal> {
        let ((claims, user_id), _) = self.callers_upload(auth, id, &request.headers).await?;
        if !tus::is_chunk(request.content_type.as_deref()) {
            return Err(TusRefusal::UnsupportedMedia(ErrorBody::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "A chunk's body must be sent as {}.",
                    tus::CHUNK_CONTENT_TYPE
                ),
            )));
        }
        let Some(offset) = tus::size(&request.headers, "upload-offset")? else {
            return Err(BadHeader("The Upload-Offset header is required.".into()).into());
        };
        let caller = Caller { claims, user_id };
        take_chunk(self.cx.gateway(), caller, id, offset, request).await
    }

    /// Where the upload stands; a complete upload whose job could not start before (an
    /// outage) starts it now.
    async fn look(
        &self,
        auth: &BearerAuth,
        id: UploadId,
        headers: &HeaderMap,
    ) -> Result<Resumable, TusRefusal> {
        let ((claims, user_id), upload) = self.callers_upload(auth, id, headers).await?;
        if !upload.is_complete() || upload.started_at.is_some() {
            return Ok(upload);
        }
        let caller = Caller { claims, user_id };
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
            // Another request holds it, and starts the job itself.
            Err(TusRefusal::Locked(_)) => Ok(upload),
            Err(refusal) => Err(refusal),
        }
    }

    /// Removes the upload, unless a request is appending to it now.
    async fn terminate_upload(
        &self,
        auth: &BearerAuth,
        id: UploadId,
        headers: &HeaderMap,
    ) -> Result<(), TusRefusal> {
        self.callers_upload(auth, id, headers).await?;
        under_lease(self.cx.gateway(), id, |held| async move {
            remove(&held.gw, &held.upload).await
        })
        .await?;
        tracing::info!(upload_id = %id, "resumable upload terminated by its user");
        Ok(())
    }
}

/// The caller's upload `id`: someone else's is `NotFound`, like a missing one; one past its
/// expiry is `Gone`.
async fn callers(gw: &Gateway, id: UploadId, user_id: UserId) -> Result<Resumable, TusRefusal> {
    let upload = gw
        .db
        .resumable(id)
        .await
        .map_err(|error| TusRefusal::Unavailable(unavailable("database", error)))?
        .filter(|upload| upload.upload.user_id == user_id)
        .ok_or_else(|| {
            TusRefusal::NotFound(ErrorBody::new(
                ErrorCode::NotFound,
                "There is no such upload.",
            ))
        })?;
    if upload.started_at.is_none() && upload.upload.expires_at <= now_millis() {
        return Err(TusRefusal::Gone(ErrorBody::new(
            ErrorCode::Gone,
            "This upload expired and its bytes are removed; start it again.",
        )));
    }
    Ok(upload)
}

/// Who sends a request, once their token is checked.
#[derive(Clone)]
struct Caller {
    claims: crate::auth::Claims,
    user_id: UserId,
}

/// A creation under way, moved off its request.
struct Creating {
    gw: Arc<Gateway>,
    claims: crate::auth::Claims,
    user_id: UserId,
}

impl Creating {
    /// Records the upload and appends its body. A refused body removes the upload (its
    /// client has no `Location` for it); one that stopped coming keeps what arrived when the
    /// answer can name it, or when an `Idempotency-Key` lets its client find it again.
    async fn run(self, request: TusRequest) -> Result<(UploadId, Standing), TusRefusal> {
        let gw = &*self.gw;
        let asked = match Asked::read(gw, &request).await {
            Ok(asked) => asked,
            Err(refusal) => {
                metrics::upload_refused("form");
                return Err(refusal);
            }
        };
        if let Some(key) = &asked.key
            && let Some(earlier) = gw
                .db
                .resumable_by_key(self.user_id, key)
                .await
                .map_err(|error| TusRefusal::Unavailable(unavailable("database", error)))?
        {
            return asked.again(earlier);
        }
        let quota = intake::allowance(gw, self.user_id).await?.quota;
        if asked.length > gw.limits.max_bytes {
            return Err(UploadError::TooLarge {
                limit_mb: gw.limits.max_bytes / (1024 * 1024),
            }
            .into());
        }
        let upload = match record(gw, self.user_id, &asked, quota, request.address.clone()).await? {
            Recorded::New(upload) => upload,
            Recorded::Earlier(earlier) => return asked.again(*earlier),
        };
        let id = upload.upload.id;
        tracing::Span::current().record("upload_id", tracing::field::display(id));
        if !request.has_bytes() {
            return Ok((id, Standing::of(&upload)));
        }
        let caller = Caller {
            claims: self.claims.clone(),
            user_id: self.user_id,
        };
        match take_chunk(self.gw.clone(), caller, id, 0, request).await {
            Ok(standing) => Ok((id, standing)),
            Err(TusRefusal::TooSlow(error, offset, _)) => {
                Err(TusRefusal::TooSlow(error, offset, Some(id)))
            }
            Err(TusRefusal::Cut(error, offset)) if asked.key.is_some() => {
                Err(TusRefusal::TooSlow(error, offset, Some(id)))
            }
            Err(refusal) => {
                if let Ok(Some(left)) = gw.db.resumable(id).await
                    && left.started_at.is_none()
                {
                    let _ = remove(gw, &left).await;
                }
                Err(refusal)
            }
        }
    }
}

/// Records the new upload and starts its object; `Earlier` when its key won a race.
async fn record(
    gw: &Gateway,
    user_id: UserId,
    asked: &Asked,
    quota: audiomill_domain::lifecycle::Quota,
    client_addr: Option<String>,
) -> Result<Recorded, TusRefusal> {
    let down = |error| TusRefusal::Unavailable(unavailable("storage", error));
    let job_id = JobId::generate();
    let key = ObjectKey::source(job_id, &asked.extension);
    let storage_id = gw.objects.begin_pending(&key).await.map_err(down)?;
    let upload = NewResumable {
        id: UploadId::generate(),
        user_id,
        job_id,
        filename: asked.filename.clone(),
        source_key: key.clone(),
        length: asked.length,
        options: asked.choices.options.clone(),
        callback_url: asked.choices.callback.as_ref().map(|url| url.to_string()),
        idempotency_key: asked.key.clone(),
        batch_id: asked.batch_id,
        storage_id: storage_id.clone(),
        expires_at: now_millis() + gw.resumable.expiry.as_millis() as i64,
        client_addr,
    };
    let pending = PendingObject {
        key,
        storage_id,
        offset: 0,
        part_tags: Vec::new(),
    };
    let limits = CreationLimits {
        per_user: gw.resumable.max_unfinished,
        per_address: gw.resumable.max_unfinished_per_address,
        quota,
    };
    let created = gw.db.create_resumable(&upload, &limits).await;
    if !matches!(created, Ok(Creation::Created)) {
        let _ = gw.objects.abort_pending(&pending).await;
    }
    match created {
        Ok(Creation::Created) => Ok(Recorded::New(Box::new(Resumable {
            upload,
            offset: 0,
            part_tags: Vec::new(),
            created_at: now_millis(),
            started_at: None,
        }))),
        Ok(Creation::Existing(earlier)) => Ok(Recorded::Earlier(earlier)),
        Ok(Creation::Refused(refusal)) => Err(creation_refusal(refusal)),
        Err(error) => Err(TusRefusal::Unavailable(unavailable("database", error))),
    }
}

/// The answer to a creation over one of its limits.
fn creation_refusal(refusal: CreationRefusal) -> TusRefusal {
    let too_many = |message: String| {
        metrics::upload_refused("busy");
        TusRefusal::TooMany(
            ErrorBody::new(ErrorCode::TooManyRequests, message),
            None,
            None,
            None,
        )
    };
    match refusal {
        CreationRefusal::TooMany { limit } => too_many(format!(
            "You have {limit} unfinished resumable uploads, as many as allowed; finish or \
             terminate one first."
        )),
        CreationRefusal::TooManyFromAddress { limit } => too_many(format!(
            "Your address has {limit} unfinished resumable uploads, as many as allowed; finish \
             or terminate one first."
        )),
        CreationRefusal::Over(over) => {
            metrics::upload_refused("quota");
            UploadError::OverQuota(over).into()
        }
        CreationRefusal::BatchFull { limit } => intake::batch_full(limit).into(),
    }
}

/// The refusal when a request's own task died (a bug, never a client's doing).
fn lost_task(error: tokio::task::JoinError) -> TusRefusal {
    TusRefusal::Unavailable(unavailable("upload service", error))
}

/// Appends the request's body to upload `id` at `offset` (which must be where it stands once
/// the lease is held), within the caller's uploads in progress; at the end of the upload,
/// starts its job if no request could yet.
async fn take_chunk(
    gw: Arc<Gateway>,
    caller: Caller,
    id: UploadId,
    offset: u64,
    request: TusRequest,
) -> Result<Standing, TusRefusal> {
    let checksum = Checksum::of(&request.headers)?;
    under_lease(gw, id, move |held| async move {
        let upload = &held.upload;
        if offset != upload.offset {
            return Err(TusRefusal::Conflict(
                ErrorBody::new(
                    ErrorCode::Conflict,
                    format!(
                        "The upload stands at byte {}, not {offset}: send from there.",
                        upload.offset
                    ),
                ),
                upload.offset,
            ));
        }
        if upload.is_complete() {
            return start_when_due(&held.gw, &caller, held.upload.clone()).await;
        }
        let Some(_slot) = held.gw.uploads.begin(caller.user_id) else {
            metrics::upload_refused("busy");
            return Err(TusRefusal::TooMany(
                ErrorBody::new(
                    ErrorCode::TooManyRequests,
                    format!(
                        "At most {} uploads may be in progress at once; wait for one to finish.",
                        held.gw.uploads.limit()
                    ),
                ),
                None,
                None,
                None,
            ));
        };
        let appending = Appending { held, caller };
        appending.receive(request.body, checksum).await
    })
    .await
}

/// An upload as it stands once a request holds its lease.
struct Held {
    gw: Arc<Gateway>,
    upload: Resumable,
    /// The lease's holder, under which offsets are recorded.
    holder: String,
}

/// Runs `work` on upload `id` as it stands once its lease is held (423 when another request
/// holds it; 404 when it is gone), then gives the lease back. The work runs in a task of its
/// own, to its end even when the request is dropped (its client gone mid-body): what arrived
/// is kept, a job started is recorded, and the lease is given back at once.
async fn under_lease<T, F, Fut>(gw: Arc<Gateway>, id: UploadId, work: F) -> Result<T, TusRefusal>
where
    T: Send + 'static,
    F: FnOnce(Held) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, TusRefusal>> + Send,
{
    let task = tokio::spawn(async move {
        let lease = Lease::take(gw.clone(), id).await?;
        let outcome = match gw.db.resumable(id).await {
            Ok(Some(upload)) => {
                let holder = lease.holder.clone();
                work(Held { gw, upload, holder }).await
            }
            Ok(None) => Err(TusRefusal::NotFound(ErrorBody::new(
                ErrorCode::NotFound,
                "There is no such upload.",
            ))),
            Err(error) => Err(TusRefusal::Unavailable(unavailable("database", error))),
        };
        lease.release().await;
        outcome
    });
    task.await.unwrap_or_else(|error| Err(lost_task(error)))
}

/// One request appending to an upload, under its lease.
struct Appending {
    held: Held,
    caller: Caller,
}

impl Appending {
    /// Streams `body` into the upload's object and records how far it got.
    async fn receive(
        &self,
        body: Body,
        checksum: Option<Checksum>,
    ) -> Result<Standing, TusRefusal> {
        let (gw, upload) = (&*self.held.gw, &self.held.upload);
        let before = upload.pending();
        let extension = crate::upload::extension(&upload.upload.filename).unwrap_or_default();
        let checks = ChunkChecks {
            room: upload.upload.length - upload.offset,
            idle: gw.resumable.idle,
            sniff_for: (upload.offset == 0).then(|| Container::for_extension(&extension)),
            checksum,
        };
        let (stream, verdict) = tus::checked(body.into_bytes_stream(), checks);
        let appended = gw
            .objects
            .append_pending(&before, stream)
            .await
            .map_err(|error| TusRefusal::Unavailable(unavailable("storage", error)))?;
        let stopped = appended.stopped;
        match stopped {
            Some(ChunkStop::BeyondLength) => Err(TusRefusal::TooLarge(
                ErrorBody::new(
                    ErrorCode::PayloadTooLarge,
                    "The chunk goes past Upload-Length; none of it was kept.",
                ),
                None,
                None,
            )),
            Some(ChunkStop::NotAVideo) => {
                let _ = remove(gw, upload).await;
                metrics::upload_refused("type");
                Err(UploadError::UnsupportedMedia(format!(
                    "The file's content is not a valid .{extension} video; the upload is removed."
                ))
                .into())
            }
            Some(stop) if verdict.is_checked() => {
                // A checksum speaks for the whole chunk only.
                Err(cut_off(stop, upload.offset))
            }
            Some(stop) => {
                let standing = self.keep(appended).await?;
                Err(cut_off(stop, standing.offset))
            }
            None if !verdict.matches() => {
                metrics::upload_refused("checksum");
                Err(TusRefusal::ChecksumMismatch(ErrorBody::new(
                    ErrorCode::ChecksumMismatch,
                    "The chunk does not match its Upload-Checksum; none of it was kept.",
                )))
            }
            None if appended.reached.offset == upload.upload.length => {
                self.complete(appended).await
            }
            None => self.keep(appended).await,
        }
    }

    /// Makes the appended bytes durable and records the new offset.
    async fn keep<E>(&self, appended: Appended<E>) -> Result<Standing, TusRefusal> {
        let (gw, upload) = (&*self.held.gw, &self.held.upload);
        gw.objects
            .keep_appended(&appended)
            .await
            .map_err(|error| TusRefusal::Unavailable(unavailable("storage", error)))?;
        let reached = appended.reached;
        record_offset(&self.held, &reached).await?;
        gw.objects
            .drop_superseded(&upload.pending(), &reached)
            .await;
        Ok(Standing {
            offset: reached.offset,
            ..Standing::of(upload)
        })
    }

    /// Makes the object whole, records it, and starts the job.
    async fn complete<E>(&self, appended: Appended<E>) -> Result<Standing, TusRefusal> {
        let (gw, upload) = (&*self.held.gw, &self.held.upload);
        let reached = appended.reached.clone();
        gw.objects
            .complete_pending(appended)
            .await
            .map_err(|error| TusRefusal::Unavailable(unavailable("storage", error)))?;
        record_offset(&self.held, &reached).await?;
        gw.objects
            .drop_superseded(&upload.pending(), &reached)
            .await;
        let whole = Resumable {
            offset: reached.offset,
            ..upload.clone()
        };
        start_when_due(gw, &self.caller, whole).await
    }
}

/// Starts the job of a complete upload unless it has started: its first bytes sniffed from
/// storage, then as a multipart upload's job. Called under the upload's lease, so one request
/// at a time decides. An outage leaves the upload complete and unstarted, for the next
/// request (`HEAD` or `PATCH`) to start; any other refusal removes it.
async fn start_when_due(
    gw: &Gateway,
    caller: &Caller,
    upload: Resumable,
) -> Result<Standing, TusRefusal> {
    if upload.started_at.is_some() {
        return Ok(Standing::of(&upload));
    }
    let down = |error| TusRefusal::Unavailable(unavailable("database", error));
    // A start whose record was lost (the database failed just after) is not made twice.
    let started = match gw.db.job(upload.upload.job_id).await.map_err(down)? {
        Some(_) => Ok(None),
        None => start(gw, caller, &upload).await,
    };
    match started {
        Ok(callback) => {
            gw.db
                .mark_resumable_started(upload.upload.id)
                .await
                .map_err(down)?;
            tracing::info!(job_id = %upload.upload.job_id, size = upload.upload.length, "resumable upload accepted");
            metrics::upload_accepted(upload.upload.length);
            Ok(Standing {
                job: Some(upload.upload.job_id),
                callback,
                ..Standing::of(&upload)
            })
        }
        Err(error @ UploadError::Unavailable { .. }) => Err(error.into()),
        Err(error) => {
            metrics::upload_refused(error.reason());
            let _ = gw.objects.delete(&upload.upload.source_key).await;
            let _ = gw.db.delete_resumable(upload.upload.id).await;
            Err(error.into())
        }
    }
}

/// Starts the job of a complete upload, after its first bytes are sniffed from storage.
async fn start(
    gw: &Gateway,
    caller: &Caller,
    upload: &Resumable,
) -> Result<Option<WebhookEndpoint>, UploadError> {
    let spec = &upload.upload;
    let extension = crate::upload::extension(&spec.filename).unwrap_or_default();
    let head_end = (Head::WANTED as u64).min(spec.length);
    let mut first = gw
        .objects
        .read_range(&spec.source_key, 0..head_end)
        .await
        .map_err(|error| UploadError::Unavailable {
            what: "storage",
            cause: error.to_string(),
        })?;
    let mut head = Head::new();
    while let Some(Ok(chunk)) = first.next().await {
        head.push(&chunk);
    }
    let seen = Container::sniff(&head.bytes);
    if seen.is_none() || seen != Container::for_extension(&extension) {
        return Err(UploadError::UnsupportedMedia(format!(
            "The file's content is not a valid .{extension} video."
        )));
    }
    let quota = intake::allowance(gw, caller.user_id).await?.quota;
    let source = StoredSource {
        job_id: spec.job_id,
        key: spec.source_key.clone(),
        filename: spec.filename.clone(),
        size: spec.length,
        fingerprint: None,
    };
    let choices = intake::ReadForm {
        videos: Vec::new(),
        options: spec.options.clone(),
        callback: spec
            .callback_url
            .as_deref()
            .and_then(|url| WebhookUrl::parse(url).ok()),
    };
    let (claims, user_id) = (&caller.claims, caller.user_id);
    intake::start_resumed(gw, claims, user_id, &source, &choices, spec.batch_id, quota).await
}

/// Removes the upload: its row first (so no request finds it again), then its bytes.
async fn remove(gw: &Gateway, upload: &Resumable) -> Result<(), TusRefusal> {
    gw.db
        .delete_resumable(upload.upload.id)
        .await
        .map_err(|error| TusRefusal::Unavailable(unavailable("database", error)))?;
    gw.objects
        .discard_unstarted(upload)
        .await
        .map_err(|error| TusRefusal::Unavailable(unavailable("storage", error)))
}

/// Records that the upload reached `reached`, under the request's lease.
async fn record_offset(held: &Held, reached: &PendingObject) -> Result<(), TusRefusal> {
    let recorded = held
        .gw
        .db
        .record_resumable_offset(
            held.upload.upload.id,
            &held.holder,
            reached.offset,
            &reached.part_tags,
        )
        .await
        .map_err(|error| TusRefusal::Unavailable(unavailable("database", error)))?;
    if recorded {
        return Ok(());
    }
    // The lease ran out (this gateway stalled) and another request took over.
    Err(TusRefusal::Locked(ErrorBody::new(
        ErrorCode::Locked,
        "Another request took this upload over; ask where it stands with HEAD.",
    )))
}

/// The refusal of a chunk whose body stopped early, kept up to `offset`.
fn cut_off(stop: ChunkStop, offset: u64) -> TusRefusal {
    let timeout = |message| ErrorBody::new(ErrorCode::RequestTimeout, message);
    match stop {
        ChunkStop::Idle => TusRefusal::TooSlow(
            timeout("The chunk stopped arriving; resume from Upload-Offset."),
            offset,
            None,
        ),
        ChunkStop::TooSlow => TusRefusal::TooSlow(
            timeout(
                "The chunk arrived too slowly (under 8 KiB/s on average); resume from \
                 Upload-Offset.",
            ),
            offset,
            None,
        ),
        _ => TusRefusal::Cut(
            timeout("The chunk was cut off; resume from Upload-Offset."),
            offset,
        ),
    }
}

/// What a creation asks for, read and checked from its headers.
struct Asked {
    length: u64,
    filename: String,
    extension: String,
    choices: intake::ReadForm<()>,
    key: Option<String>,
    batch_id: Option<BatchId>,
}

/// What recording a creation led to.
enum Recorded {
    New(Box<Resumable>),
    Earlier(Box<Resumable>),
}

impl Asked {
    async fn read(gw: &Gateway, request: &TusRequest) -> Result<Self, TusRefusal> {
        let headers = &request.headers;
        if headers.contains_key("upload-defer-length") {
            return Err(BadHeader(
                "A deferred length is not taken: send the file's size in Upload-Length.".into(),
            )
            .into());
        }
        let Some(length) = tus::size(headers, "upload-length")? else {
            return Err(BadHeader("The Upload-Length header is required.".into()).into());
        };
        if length == 0 {
            return Err(UploadError::BadRequest("The file is empty.".into()).into());
        }
        if request.has_bytes() && !tus::is_chunk(request.content_type.as_deref()) {
            return Err(TusRefusal::UnsupportedMedia(ErrorBody::new(
                ErrorCode::UnsupportedMediaType,
                format!("A body must be sent as {}.", tus::CHUNK_CONTENT_TYPE),
            )));
        }
        let metadata = tus::metadata(headers)?;
        let Some(raw_name) = metadata.get("filename").or_else(|| metadata.get("name")) else {
            return Err(BadHeader(
                "Upload-Metadata must carry the file's name as `filename`.".into(),
            )
            .into());
        };
        let (filename, extension) = intake::accepted_name(raw_name, &gw.limits)?;
        let choices = intake::choices_from_metadata(gw, &metadata).await?;
        Ok(Self {
            length,
            filename,
            extension,
            choices,
            key: key_of(headers, &metadata)?,
            batch_id: batch_of(&metadata)?,
        })
    }

    /// The answer to a creation whose key already made `earlier`: that upload, if it is of
    /// the same file.
    fn again(&self, earlier: Resumable) -> Result<(UploadId, Standing), TusRefusal> {
        if earlier.upload.filename != self.filename
            || earlier.upload.length != self.length
            || earlier.upload.options != self.choices.options
        {
            return Err(TusRefusal::KeyReused(ErrorBody::new(
                ErrorCode::UnprocessableContent,
                "This Idempotency-Key already created an upload of another file (or with other \
                 choices); use a new key for a new upload.",
            )));
        }
        Ok((earlier.upload.id, Standing::of(&earlier)))
    }
}

/// The batch the metadata's `batch_id` names (a UUID the client chose for files it sends
/// together), if any.
fn batch_of(
    metadata: &std::collections::BTreeMap<String, String>,
) -> Result<Option<BatchId>, TusRefusal> {
    metadata
        .get("batch_id")
        .map(|id| {
            BatchId::parse(id).map_err(|_| {
                UploadError::BadRequest(
                    "The batch_id in Upload-Metadata must be a UUID (one the client chose for \
                     the files it sends together)."
                        .into(),
                )
                .into()
            })
        })
        .transpose()
}

/// The creation's `Idempotency-Key`: the header, or `idempotency_key` in the metadata (the
/// same if both).
fn key_of(
    headers: &HeaderMap,
    metadata: &std::collections::BTreeMap<String, String>,
) -> Result<Option<String>, TusRefusal> {
    let bad = || {
        BadHeader(
            "An Idempotency-Key must be given once, as 1 to 255 visible ASCII characters.".into(),
        )
    };
    let header = super::idempotency::key_of(headers).map_err(|_| bad())?;
    let in_metadata = metadata.get("idempotency_key").cloned();
    if let Some(key) = &in_metadata
        && (!(1..=255).contains(&key.len()) || !key.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(bad().into());
    }
    match (header, in_metadata) {
        (Some(a), Some(b)) if a != b => Err(bad().into()),
        (header, in_metadata) => Ok(header.or(in_metadata)),
    }
}

/// A request's hold on one upload: no other request appends while it lasts. Renewed in the
/// background while held; given up by [`Lease::release`] (or left to run out).
struct Lease {
    gw: std::sync::Arc<Gateway>,
    id: UploadId,
    holder: String,
    renewal: tokio::task::JoinHandle<()>,
    /// Whether it is still to be given back.
    held: bool,
}

impl Lease {
    async fn take(gw: std::sync::Arc<Gateway>, id: UploadId) -> Result<Self, TusRefusal> {
        let holder = uuid::Uuid::new_v4().to_string();
        let until = || now_millis() + LEASE.as_millis() as i64;
        let taken = gw
            .db
            .lease_resumable(id, &holder, until())
            .await
            .map_err(|error| TusRefusal::Unavailable(unavailable("database", error)))?;
        if !taken {
            return Err(TusRefusal::Locked(ErrorBody::new(
                ErrorCode::Locked,
                "Another request is appending to this upload now; try again when it has \
                 finished.",
            )));
        }
        let renewal = tokio::spawn({
            let (gw, holder) = (gw.clone(), holder.clone());
            async move {
                loop {
                    tokio::time::sleep(LEASE / 3).await;
                    let _ = gw.db.lease_resumable(id, &holder, until()).await;
                }
            }
        });
        Ok(Self {
            gw,
            id,
            holder,
            renewal,
            held: true,
        })
    }

    async fn release(mut self) {
        self.renewal.abort();
        self.held = false;
        let _ = self.gw.db.release_resumable(self.id, &self.holder).await;
    }
}

impl Drop for Lease {
    /// A lease dropped unreleased (its request cut short) is given back in the background,
    /// rather than held until it runs out.
    fn drop(&mut self) {
        self.renewal.abort();
        if self.held
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let (gw, id, holder) = (self.gw.clone(), self.id, std::mem::take(&mut self.holder));
            runtime.spawn(async move {
                let _ = gw.db.release_resumable(id, &holder).await;
            });
        }
    }
}
