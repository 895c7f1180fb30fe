//! What the groups of operations share: the security schemes and tags, authentication,
//! finding the caller's job, the common errors, and the macros that let each operation's
//! response carry them.

/// The value of `$result`, or its refusal answered in the operation's own response (see
/// [`Refusal`]).
macro_rules! or_refuse {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(refusal) => return $crate::routes::context::Refusal::answer(refusal),
        }
    };
}

/// Declares an operation's response (`#[derive(ApiResponse)]`) whose variants may name the
/// answers many operations share by a keyword, each written once here with its status and
/// description: `@bad_job_id`, `@bad_batch_id`, `@bad_id` (400), `@unauthorized` (401),
/// `@forbidden` (403), `@job_not_found`, `@batch_not_found`, `@endpoint_not_found` (404), `@mp3_not_ready` (409),
/// `@checksum_mismatch` (460) and `@unavailable` (503). The variants keep the order written,
/// which is the order of the document's answers.
///
/// A response with a `BadRequest`, `Unauthorized`, `Forbidden`, `NotFound` or `Unavailable` variant (by
/// keyword or written out, carrying an [`ErrorJson`]) answers that kind through the matching
/// `Answers...` trait, which is how shared refusals ([`Refusal`]) become its answers.
macro_rules! api_response {
    ($(#[$meta:meta])* enum $name:ident { $($body:tt)* }) => {
        api_response!(@variants [$(#[$meta])*] $name [] [] $($body)*);
    };
    (@variants [$($meta:tt)*] $name:ident [$($done:tt)*] [$($answers:tt)*]) => {
        #[derive(poem_openapi::ApiResponse)]
        $($meta)*
        enum $name { $($done)* }
        $(api_response!(@answers $name $answers);)*
    };
    (@answers $name:ident ($trait:ident, $method:ident, $variant:ident)) => {
        impl $crate::routes::context::$trait for $name {
            fn $method(error: $crate::routes::context::ErrorJson) -> Self {
                Self::$variant(error)
            }
        }
    };
    (@variants $meta:tt $name:ident $done:tt $answers:tt @bad_job_id, $($rest:tt)*) => {
        api_response!(@shared $meta $name $done $answers 400, BadRequest, "The job id is malformed."; $($rest)*);
    };
    (@variants $meta:tt $name:ident $done:tt $answers:tt @bad_batch_id, $($rest:tt)*) => {
        api_response!(@shared $meta $name $done $answers 400, BadRequest, "The batch id is malformed."; $($rest)*);
    };
    (@variants $meta:tt $name:ident $done:tt $answers:tt @bad_id, $($rest:tt)*) => {
        api_response!(@shared $meta $name $done $answers 400, BadRequest, "The id is malformed."; $($rest)*);
    };
    (@variants $meta:tt $name:ident $done:tt $answers:tt @unauthorized, $($rest:tt)*) => {
        api_response!(@shared $meta $name $done $answers 401, Unauthorized, "No valid access token."; $($rest)*);
    };
    (@variants $meta:tt $name:ident $done:tt $answers:tt @forbidden, $($rest:tt)*) => {
        api_response!(@shared $meta $name $done $answers 403, Forbidden, "The credential lacks the scope this operation needs (see its security requirement)."; $($rest)*);
    };
    (@variants $meta:tt $name:ident $done:tt $answers:tt @job_not_found, $($rest:tt)*) => {
        api_response!(@shared $meta $name $done $answers 404, NotFound, "No such job (or not yours)."; $($rest)*);
    };
    (@variants $meta:tt $name:ident $done:tt $answers:tt @batch_not_found, $($rest:tt)*) => {
        api_response!(@shared $meta $name $done $answers 404, NotFound, "No such batch (or not yours)."; $($rest)*);
    };
    (@variants $meta:tt $name:ident $done:tt $answers:tt @endpoint_not_found, $($rest:tt)*) => {
        api_response!(@shared $meta $name $done $answers 404, NotFound, "No such endpoint (or not yours)."; $($rest)*);
    };
    (@variants $meta:tt $name:ident $done:tt $answers:tt @mp3_not_ready, $($rest:tt)*) => {
        api_response!(@shared $meta $name $done $answers 409, NotReady, "The MP3 is not ready yet."; $($rest)*);
    };
    (@variants $meta:tt $name:ident $done:tt $answers:tt @checksum_mismatch, $($rest:tt)*) => {
        api_response!(@shared $meta $name $done $answers 460, ChecksumMismatch, "The body does not match `Upload-Checksum`; none of it was kept."; $($rest)*);
    };
    (@variants $meta:tt $name:ident $done:tt $answers:tt @unavailable, $($rest:tt)*) => {
        api_response!(@shared $meta $name $done $answers 503, Unavailable, "A dependency is down."; $($rest)*);
    };
    (@variants $meta:tt $name:ident [$($done:tt)*] [$($answers:tt)*]
        $(#[$attr:meta])* $variant:ident $(($($fields:tt)*))?, $($rest:tt)*) => {
        api_response!(@answer_of $variant [$(($($fields)*))?]
            $meta $name [$($done)* $(#[$attr])* $variant $(($($fields)*))?,] [$($answers)*] $($rest)*);
    };
    (@shared $meta:tt $name:ident [$($done:tt)*] $answers:tt $status:literal, $variant:ident, $doc:literal; $($rest:tt)*) => {
        api_response!(@answer_of $variant [(ErrorJson)]
            $meta $name [$($done)*
                #[doc = $doc]
                #[oai(status = $status)]
                $variant($crate::routes::context::ErrorJson),
            ] $answers $($rest)*);
    };
    // The kinds of answer a variant gives, by its name and an error body alone.
    (@answer_of BadRequest [(ErrorJson)] $meta:tt $name:ident $done:tt [$($answers:tt)*] $($rest:tt)*) => {
        api_response!(@variants $meta $name $done [$($answers)* (AnswersBadRequest, bad_request, BadRequest)] $($rest)*);
    };
    (@answer_of Unauthorized [(ErrorJson)] $meta:tt $name:ident $done:tt [$($answers:tt)*] $($rest:tt)*) => {
        api_response!(@variants $meta $name $done [$($answers)* (AnswersUnauthorized, unauthorized, Unauthorized)] $($rest)*);
    };
    (@answer_of Forbidden [(ErrorJson)] $meta:tt $name:ident $done:tt [$($answers:tt)*] $($rest:tt)*) => {
        api_response!(@variants $meta $name $done [$($answers)* (AnswersForbidden, forbidden, Forbidden)] $($rest)*);
    };
    (@answer_of NotFound [(ErrorJson)] $meta:tt $name:ident $done:tt [$($answers:tt)*] $($rest:tt)*) => {
        api_response!(@variants $meta $name $done [$($answers)* (AnswersNotFound, not_found, NotFound)] $($rest)*);
    };
    (@answer_of Unavailable [(ErrorJson)] $meta:tt $name:ident $done:tt [$($answers:tt)*] $($rest:tt)*) => {
        api_response!(@variants $meta $name $done [$($answers)* (AnswersUnavailable, down, Unavailable)] $($rest)*);
    };
    (@answer_of $variant:ident $fields:tt $meta:tt $name:ident $done:tt $answers:tt $($rest:tt)*) => {
        api_response!(@variants $meta $name $done $answers $($rest)*);
    };
}

/// A body of `$content_type` streamed as it is made, documented as binary.
macro_rules! streamed_payload {
    ($(#[$doc:meta])* $name:ident, $content_type:literal) => {
        $(#[$doc])*
        struct $name(poem::Body);

        impl poem_openapi::payload::Payload for $name {
            const CONTENT_TYPE: &'static str = $content_type;

            fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
                <poem_openapi::payload::Binary<Vec<u8>> as poem_openapi::payload::Payload>::schema_ref()
            }
        }

        impl poem::IntoResponse for $name {
            fn into_response(self) -> poem::Response {
                poem::Response::builder().content_type($content_type).body(self.0)
            }
        }
    };
}

use crate::{
    error::{ErrorBody, ErrorCode},
    gateway::Gateway,
};
use audiomill_domain::JobId;
use audiomill_store::StoreError;

pub(crate) use crate::auth::{Caller, Denied, LoginDenied};
pub(crate) use crate::error::{ErrorJson, store_down, unavailable};
pub(crate) use crate::params::rfc3339;
pub(crate) use crate::scopes::Scope;
use poem_openapi::{
    SecurityScheme, Tags,
    auth::{Basic, Bearer},
};
use std::sync::Arc;

#[derive(Tags)]
pub(crate) enum ApiTags {
    /// Logging in and tokens.
    Auth,
    /// Uploading videos and getting MP3s.
    Jobs,
    /// Service health and statistics.
    Operations,
    /// Being told when jobs end.
    Webhooks,
}

/// Email and password, as HTTP Basic credentials.
#[derive(SecurityScheme)]
#[oai(ty = "basic")]
pub(crate) struct BasicAuth(pub(crate) Basic);

/// An access token from `/login` or `/session` (a JWT), an API key from `/api-keys`
/// (`amk_...`), or an upload token. An operation's requirement names the one scope it needs
/// (`jobs:read`, `jobs:write`, `webhooks:read`, `webhooks:write`, `account:read`,
/// `account:write`, `admin`, `credentials`); a credential without it is answered 403. A login holds every scope of
/// its account (`admin` only for an admin); a key holds those it was made with, never
/// `credentials`. An upload token from `/upload-tokens` (`amu_...`) holds none: the upload
/// operations (`POST /upload` and tus) take it in place of `jobs:write`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer")]
pub(crate) struct BearerAuth(pub(crate) Bearer);

/// What every group of operations works with.
#[derive(Clone)]
pub(crate) struct Context {
    /// `None` when the operations only describe themselves.
    gateway: Option<Arc<Gateway>>,
}

impl Context {
    /// The context of operations that serve `gateway`.
    pub(crate) fn serving(gateway: Arc<Gateway>) -> Self {
        Self {
            gateway: Some(gateway),
        }
    }

    /// The context of operations that only describe themselves.
    pub(crate) fn describing() -> Self {
        Self { gateway: None }
    }

    pub(crate) fn gw(&self) -> &Gateway {
        self.gateway
            .as_deref()
            .expect("a serving Api has a gateway")
    }

    /// The gateway itself, for work moved off the async workers.
    pub(crate) fn gateway(&self) -> Arc<Gateway> {
        self.gateway.clone().expect("a serving Api has a gateway")
    }

    /// Who is calling, with a credential that holds `need`: an access token whose login is
    /// still open (a signature alone is not enough once the user logged out or the session
    /// was revoked) or a live API key, read once here.
    pub(crate) async fn authenticate(
        &self,
        bearer: &BearerAuth,
        need: Scope,
    ) -> Result<Caller, Denied> {
        let caller = self.identify(bearer).await?;
        if caller.scopes.contains(need) {
            Ok(caller)
        } else {
            Err(crate::identify::lacking(need))
        }
    }

    /// Who is uploading: a credential with `jobs:write`, or an upload token (which holds no
    /// scope, and is taken by the upload operations alone).
    pub(crate) async fn authenticate_upload(&self, bearer: &BearerAuth) -> Result<Caller, Denied> {
        let caller = self.identify(bearer).await?;
        if caller.upload.is_some() || caller.scopes.contains(Scope::JobsWrite) {
            Ok(caller)
        } else {
            Err(crate::identify::lacking(Scope::JobsWrite))
        }
    }

    /// Who is calling, whatever their credential may do: for the operations on the
    /// credential itself (`/validate`, `/logout`).
    pub(crate) async fn identify(&self, bearer: &BearerAuth) -> Result<Caller, Denied> {
        crate::identify::identify(self.gw(), &bearer.0.token).await
    }

    /// The caller and the job, if the token is good and the caller owns the job or is an
    /// admin.
    pub(crate) async fn caller_job(
        &self,
        auth: &BearerAuth,
        need: Scope,
        id: JobId,
    ) -> Result<(Caller, audiomill_store::Job), JobRefusal> {
        let caller = self.authenticate(auth, need).await?;
        let job = self
            .gw()
            .db
            .job(id)
            .await?
            .ok_or_else(|| JobRefusal::NotFound(not_found()))?;
        if caller.may_see(job.user_id) {
            Ok((caller, job))
        } else {
            Err(JobRefusal::NotFound(not_found()))
        }
    }
}

/// Why an operation on a job (or a batch of jobs) stops before it begins. Someone else's
/// job is `NotFound`, exactly like a missing one.
pub(crate) enum JobRefusal {
    Unauthorized(ErrorJson),
    Forbidden(ErrorJson),
    NotFound(ErrorJson),
    Unavailable(ErrorJson),
}

impl From<Denied> for JobRefusal {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Unauthorized(error) => Self::Unauthorized(error),
            Denied::Forbidden(error) => Self::Forbidden(error),
            Denied::Unavailable(error) => Self::Unavailable(error),
        }
    }
}

impl From<StoreError> for JobRefusal {
    fn from(error: StoreError) -> Self {
        Self::Unavailable(store_down(error))
    }
}

/// A response that answers 400 with an error body (`@bad_job_id`, or a `BadRequest` variant).
pub(crate) trait AnswersBadRequest {
    fn bad_request(error: ErrorJson) -> Self;
}

/// A response that answers 401 (`@unauthorized`).
pub(crate) trait AnswersUnauthorized {
    fn unauthorized(error: ErrorJson) -> Self;
}

/// A response that answers 403 (`@forbidden`).
pub(crate) trait AnswersForbidden {
    fn forbidden(error: ErrorJson) -> Self;
}

/// A response that answers 404 (`@job_not_found` and the like).
pub(crate) trait AnswersNotFound {
    fn not_found(error: ErrorJson) -> Self;
}

/// A response that answers 503 (`@unavailable`).
pub(crate) trait AnswersUnavailable {
    fn down(error: ErrorJson) -> Self;
}

/// A refusal, answered in an operation's response `R`: the caller check's in any response
/// that has 401 and 503, a job's in any that also has 404, and a response in itself.
pub(crate) trait Refusal<R> {
    fn answer(self) -> R;
}

impl<R> Refusal<R> for R {
    fn answer(self) -> R {
        self
    }
}

impl<R: AnswersUnauthorized + AnswersForbidden + AnswersUnavailable> Refusal<R> for Denied {
    fn answer(self) -> R {
        match self {
            Denied::Unauthorized(error) => R::unauthorized(error),
            Denied::Forbidden(error) => R::forbidden(error),
            Denied::Unavailable(error) => R::down(error),
        }
    }
}

impl<R: AnswersUnauthorized + AnswersUnavailable> Refusal<R> for LoginDenied {
    fn answer(self) -> R {
        match self {
            LoginDenied::Unauthorized(error) => R::unauthorized(error),
            LoginDenied::Unavailable(error) => R::down(error),
        }
    }
}

impl<R: AnswersUnauthorized + AnswersForbidden + AnswersNotFound + AnswersUnavailable> Refusal<R>
    for JobRefusal
{
    fn answer(self) -> R {
        match self {
            JobRefusal::Unauthorized(error) => R::unauthorized(error),
            JobRefusal::Forbidden(error) => R::forbidden(error),
            JobRefusal::NotFound(error) => R::not_found(error),
            JobRefusal::Unavailable(error) => R::down(error),
        }
    }
}

/// What the framework refuses before an operation runs, in the operation's own answers
/// (its `bad_request_handler`): a missing token is 401; a parameter that does not parse is
/// 400 with the framework's sentence.
pub(crate) fn framework_refusal<R: AnswersUnauthorized + AnswersBadRequest>(
    error: poem::Error,
) -> R {
    let (status, body) = crate::error::framework_answer(&error);
    if status == poem::http::StatusCode::UNAUTHORIZED {
        R::unauthorized(body)
    } else {
        R::bad_request(body)
    }
}

/// As [`framework_refusal`], for operations whose only parameter is one that does not parse:
/// a 400 that says what it must be (`malformed`).
pub(crate) fn parameter_refusal<R: AnswersUnauthorized + AnswersBadRequest>(
    error: poem::Error,
    malformed: &str,
) -> R {
    if error.status() == poem::http::StatusCode::UNAUTHORIZED {
        return framework_refusal(error);
    }
    R::bad_request(ErrorBody::new(ErrorCode::BadRequest, malformed))
}

/// The framework's refusal of the operations on one job: the only parameter they parse is
/// its id.
pub(crate) fn job_id_refusal<R: AnswersUnauthorized + AnswersBadRequest>(error: poem::Error) -> R {
    parameter_refusal(
        error,
        "The job id is missing or malformed: job ids are lower-case UUIDs.",
    )
}

pub(crate) fn not_found() -> ErrorJson {
    ErrorBody::new(ErrorCode::NotFound, "There is no such job.")
}
