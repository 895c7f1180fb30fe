//! The error shape of every failure: `{"error": "<code>", "message": "<sentence>"}`, with
//! `"field"` naming the form field at fault when one is.

use audiomill_store::StoreError;
use poem::{IntoResponse, Response, http::StatusCode};
use poem_openapi::{Enum, Object, payload::Json, types::Example};

#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct ErrorBody {
    /// A stable, machine-readable code.
    pub error: ErrorCode,
    /// A sentence for people.
    pub message: String,
    /// The request field at fault (an upload's `bitrate`, say), when one is.
    #[oai(skip_serializing_if_is_none)]
    pub field: Option<String>,
}

/// Every error code the API answers with; the OpenAPI document lists them, so generated
/// clients get an enumeration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    /// Authenticated, but not allowed to do this.
    Forbidden,
    NotFound,
    MethodNotAllowed,
    /// The request conflicts with one still in progress (an `Idempotency-Key` in use).
    Conflict,
    /// The job has not completed: its MP3 does not exist yet.
    NotReady,
    /// It existed, and no longer does: an expired download link, a deleted job.
    Gone,
    RequestTimeout,
    /// The request speaks another version of the protocol (tus's `Tus-Resumable`).
    PreconditionFailed,
    PayloadTooLarge,
    /// Well-formed but not acceptable as it stands (an `Idempotency-Key` used for another file).
    UnprocessableContent,
    UnsupportedMediaType,
    RangeNotSatisfiable,
    /// Another request is appending to this resumable upload now.
    Locked,
    /// A resumable upload's chunk does not match its `Upload-Checksum`; nothing of it was kept.
    ChecksumMismatch,
    TooManyRequests,
    ServiceUnavailable,
    Internal,
}

impl Example for ErrorBody {
    fn example() -> Self {
        ErrorBody {
            error: ErrorCode::NotFound,
            message: "No such job.".into(),
            field: None,
        }
    }
}

impl ErrorBody {
    pub fn new(error: ErrorCode, message: impl Into<String>) -> Json<ErrorBody> {
        Json(ErrorBody {
            error,
            message: message.into(),
            field: None,
        })
    }

    /// A 400 about one request field, named in the body as `field`.
    pub fn for_field(field: &str, message: impl Into<String>) -> Json<ErrorBody> {
        Json(ErrorBody {
            error: ErrorCode::BadRequest,
            message: message.into(),
            field: Some(field.to_owned()),
        })
    }
}

/// Turns the framework's own errors (bad JSON, missing auth header, unknown route, ...) into
/// the same shape, and makes sure no 5xx body carries internals.
pub async fn framework_error(error: poem::Error) -> Response {
    framework_answer(&error).into_response()
}

/// The status and body [`framework_error`] answers `error` with.
pub fn framework_answer(error: &poem::Error) -> (StatusCode, Json<ErrorBody>) {
    let status = error.status();
    let (code, message) = match status {
        StatusCode::UNAUTHORIZED => (
            ErrorCode::Unauthorized,
            "A valid access token is required.".to_owned(),
        ),
        StatusCode::NOT_FOUND => (
            ErrorCode::NotFound,
            "There is nothing at this address.".to_owned(),
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            ErrorCode::MethodNotAllowed,
            "This method is not allowed here.".to_owned(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            ErrorCode::UnsupportedMediaType,
            "The request body's content type is not accepted here.".to_owned(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            ErrorCode::PayloadTooLarge,
            "The request body is too large.".to_owned(),
        ),
        s if s.is_server_error() => {
            tracing::error!(%error, "request failed");
            (
                ErrorCode::Internal,
                "Something went wrong on our side; please try again.".to_owned(),
            )
        }
        _ => (
            ErrorCode::BadRequest,
            format!(
                "The request is invalid: {}.",
                first_line(&error.to_string())
            ),
        ),
    };
    (status, ErrorBody::new(code, message))
}

fn first_line(text: &str) -> &str {
    text.lines()
        .next()
        .unwrap_or_default()
        .trim_end_matches('.')
}

/// A refusal's body, as an operation answers it.
pub(crate) type ErrorJson = Json<ErrorBody>;

/// What a store that failed is, for people: the database or the file storage.
pub(crate) fn store_part(error: &StoreError) -> &'static str {
    match error {
        StoreError::Database(_)
        | StoreError::Migration(_)
        | StoreError::Conflict(_)
        | StoreError::Corrupt(_) => "database",
        StoreError::Io(_)
        | StoreError::Unavailable(_)
        | StoreError::NotSetUp(_)
        | StoreError::NotFound => "storage",
    }
}

/// The 503 of a store that failed, naming the part that did.
pub(crate) fn store_down(error: StoreError) -> ErrorJson {
    unavailable(store_part(&error), error)
}

pub(crate) fn unavailable(what: &str, error: impl std::fmt::Display) -> ErrorJson {
    tracing::error!(%error, "{what} is unavailable");
    ErrorBody::new(
        ErrorCode::ServiceUnavailable,
        format!("The {what} is unavailable right now; please try again shortly."),
    )
}
