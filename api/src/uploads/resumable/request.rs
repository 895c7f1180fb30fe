//! What every tus request shares: its headers and body as sent, who sends it, why it was
//! refused (in the terms all the operations share), and where the upload stands after it.

use crate::auth::{Caller, Denied};
use crate::error::{ErrorJson, store_down, unavailable};
use crate::uploads::refusal::{StartError, StartRefusal, UploadError, UploadRefusal};
use crate::{
    error::{ErrorBody, ErrorCode},
    gateway::Gateway,
    uploads::resumable::LeaseRefusal,
    uploads::tus::{self, BadHeader},
};
use audiomill_domain::{JobId, UploadId};
use audiomill_store::{Resumable, StoreError, WebhookEndpoint, time::now_millis};
use poem::{Body, Request, http::HeaderMap};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    payload::{Binary, Payload},
    registry::{MetaMediaType, MetaRequest, Registry},
};

/// A request's headers and its body, unread: tus requests are read from the raw headers (a
/// typed header reads a malformed value as none) and their bodies are streams.
pub(crate) struct TusRequest {
    pub(crate) headers: HeaderMap,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Body,
    /// The peer's address, as the rate limits count it.
    pub(crate) address: Option<String>,
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
pub(crate) struct TusHeaders(pub(crate) HeaderMap);

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
    pub(crate) fn has_bytes(&self) -> bool {
        let length = tus::size(&self.headers, "content-length").ok().flatten();
        self.headers.contains_key("transfer-encoding") || length.is_some_and(|n| n > 0)
    }
}

/// Why a tus request was refused, in the answers the operations share.
pub(crate) enum TusRefusal {
    BadRequest(ErrorJson),
    Unauthorized(ErrorJson),
    Forbidden(ErrorJson),
    NotFound(ErrorJson),
    Gone(ErrorJson),
    /// The body stopped arriving; what arrived is kept up to the given offset, in the given
    /// upload (named for a creation, whose client has no `Location` yet).
    TooSlow(ErrorJson, u64, Option<UploadId>),
    /// The body was cut off (the connection broke); what arrived is kept up to the offset.
    Cut(ErrorJson, u64),
    Version(ErrorJson),
    TooLarge(ErrorJson, Option<u64>, Option<u64>),
    UnsupportedMedia(ErrorJson),
    Locked(ErrorJson),
    ChecksumMismatch(ErrorJson),
    TooMany(ErrorJson, Option<u64>, Option<u64>, Option<u64>),
    Unavailable(ErrorJson),
}

impl LeaseRefusal for TusRefusal {
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

/// Why a request stops before it reaches its upload: the tus version, a header, the token, the
/// upload (none, someone else's, expired), or an outage. Every tus operation answers each.
pub(crate) enum LookupRefusal {
    BadRequest(ErrorJson),
    Unauthorized(ErrorJson),
    Forbidden(ErrorJson),
    NotFound(ErrorJson),
    Gone(ErrorJson),
    Version(ErrorJson),
    Unavailable(ErrorJson),
}

impl From<Denied> for LookupRefusal {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Unauthorized(error) => Self::Unauthorized(error),
            Denied::Forbidden(error) => Self::Forbidden(error),
            Denied::Unavailable(error) => Self::Unavailable(error),
        }
    }
}

impl From<StoreError> for LookupRefusal {
    fn from(error: StoreError) -> Self {
        Self::Unavailable(store_down(error))
    }
}

impl From<BadHeader> for LookupRefusal {
    fn from(bad: BadHeader) -> Self {
        Self::BadRequest(ErrorBody::new(ErrorCode::BadRequest, bad.0))
    }
}

impl From<LookupRefusal> for TusRefusal {
    fn from(refusal: LookupRefusal) -> Self {
        match refusal {
            LookupRefusal::BadRequest(error) => Self::BadRequest(error),
            LookupRefusal::Unauthorized(error) => Self::Unauthorized(error),
            LookupRefusal::Forbidden(error) => Self::Forbidden(error),
            LookupRefusal::NotFound(error) => Self::NotFound(error),
            LookupRefusal::Gone(error) => Self::Gone(error),
            LookupRefusal::Version(error) => Self::Version(error),
            LookupRefusal::Unavailable(error) => Self::Unavailable(error),
        }
    }
}

impl From<Denied> for TusRefusal {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Unauthorized(error) => Self::Unauthorized(error),
            Denied::Forbidden(error) => Self::Forbidden(error),
            Denied::Unavailable(error) => Self::Unavailable(error),
        }
    }
}

impl From<StoreError> for TusRefusal {
    fn from(error: StoreError) -> Self {
        Self::Unavailable(store_down(error))
    }
}

impl From<BadHeader> for TusRefusal {
    fn from(bad: BadHeader) -> Self {
        Self::BadRequest(ErrorBody::new(ErrorCode::BadRequest, bad.0))
    }
}

impl From<StartError> for TusRefusal {
    fn from(error: StartError) -> Self {
        match StartRefusal::from(error) {
            StartRefusal::BadRequest(body) => Self::BadRequest(body),
            StartRefusal::Unauthorized(body) => Self::Unauthorized(body),
            StartRefusal::TooLarge(body, limit, left) => Self::TooLarge(body, limit, left),
            StartRefusal::UnsupportedMedia(body) => Self::UnsupportedMedia(body),
            StartRefusal::TooMany(body, limit, left, after) => {
                Self::TooMany(body, limit, left, after)
            }
            StartRefusal::Unavailable(body) => Self::Unavailable(body),
        }
    }
}

impl From<UploadError> for TusRefusal {
    fn from(error: UploadError) -> Self {
        match error.into() {
            UploadRefusal::BadRequest(body) => Self::BadRequest(body),
            UploadRefusal::Unauthorized(body) => Self::Unauthorized(body),
            UploadRefusal::TooSlow => Self::TooSlow(
                ErrorBody::new(ErrorCode::RequestTimeout, "The upload arrived too slowly."),
                0,
                None,
            ),
            UploadRefusal::TooLarge(body, limit, remaining) => {
                Self::TooLarge(body, limit, remaining)
            }
            UploadRefusal::UnsupportedMedia(body) => Self::UnsupportedMedia(body),
            UploadRefusal::TooMany(body, limit, remaining, retry_after) => {
                Self::TooMany(body, limit, remaining, retry_after)
            }
            UploadRefusal::Unavailable(body) => Self::Unavailable(body),
        }
    }
}

/// Where an upload stands after a request: its offset, and once complete its job (with the
/// one-off endpoint its `callback_url` made, when the job started just now).
pub(crate) struct Standing {
    pub(crate) offset: u64,
    pub(crate) expires_at: i64,
    pub(crate) job: Option<JobId>,
    pub(crate) callback: Option<WebhookEndpoint>,
}

impl Standing {
    pub(crate) fn of(upload: &Resumable) -> Self {
        Self {
            offset: upload.offset,
            expires_at: upload.upload.expires_at,
            job: upload.started_at.map(|_| upload.upload.job_id),
            callback: None,
        }
    }

    pub(crate) fn job_header(&self) -> Option<String> {
        self.job.map(|job| job.to_string())
    }

    pub(crate) fn callback_headers(&self) -> (Option<String>, Option<String>) {
        match &self.callback {
            Some(endpoint) => (
                Some(endpoint.id.to_string()),
                Some(endpoint.secret.expose()),
            ),
            None => (None, None),
        }
    }
}

/// The caller's upload `id`: someone else's is `NotFound`, like a missing one; one past its
/// expiry is `Gone`.
pub(crate) async fn callers(
    gw: &Gateway,
    id: UploadId,
    caller: &Caller,
) -> Result<Resumable, LookupRefusal> {
    // An upload token goes on only with the uploads it created.
    if let Some(grant) = &caller.upload
        && !gw.db.token_made_upload(&grant.id, &id.to_string()).await?
    {
        return Err(no_such_upload());
    }
    let upload = gw
        .db
        .resumable(id)
        .await?
        .filter(|upload| upload.upload.user_id == caller.user)
        .ok_or_else(no_such_upload)?;
    if upload.started_at.is_none() && upload.upload.expires_at <= now_millis() {
        return Err(LookupRefusal::Gone(ErrorBody::new(
            ErrorCode::Gone,
            "This upload expired and its bytes are removed; start it again.",
        )));
    }
    Ok(upload)
}

fn no_such_upload() -> LookupRefusal {
    LookupRefusal::NotFound(ErrorBody::new(
        ErrorCode::NotFound,
        "There is no such upload.",
    ))
}

/// The refusal when a request's own task died (a bug, never a client's doing).
pub(crate) fn lost_task(error: tokio::task::JoinError) -> TusRefusal {
    TusRefusal::Unavailable(unavailable("upload service", error))
}
