//! The error shape of every failure: `{"error": "<code>", "message": "<sentence>"}`.

use poem::{IntoResponse, Response, http::StatusCode};
use poem_openapi::{Object, payload::Json};

#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    /// A stable, machine-readable code such as `unauthorized` or `unsupported_media_type`.
    pub error: String,
    /// A sentence for people.
    pub message: String,
}

impl ErrorBody {
    pub fn new(error: &str, message: impl Into<String>) -> Json<ErrorBody> {
        Json(ErrorBody {
            error: error.to_owned(),
            message: message.into(),
        })
    }
}

/// Turns the framework's own errors (bad JSON, missing auth header, unknown route, ...) into
/// the same shape, and makes sure no 5xx body carries internals.
pub async fn framework_error(error: poem::Error) -> Response {
    let status = error.status();
    let (code, message) = match status {
        StatusCode::UNAUTHORIZED => (
            "unauthorized",
            "A valid access token is required.".to_owned(),
        ),
        StatusCode::NOT_FOUND => ("not_found", "There is nothing at this address.".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "This method is not allowed here.".to_owned(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "The request body's content type is not accepted here.".to_owned(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            "The request body is too large.".to_owned(),
        ),
        s if s.is_server_error() => {
            tracing::error!(%error, "request failed");
            (
                "internal",
                "Something went wrong on our side; please try again.".to_owned(),
            )
        }
        _ => (
            "bad_request",
            format!(
                "The request is invalid: {}.",
                first_line(&error.to_string())
            ),
        ),
    };
    (status, ErrorBody::new(code, message)).into_response()
}

fn first_line(text: &str) -> &str {
    text.lines()
        .next()
        .unwrap_or_default()
        .trim_end_matches('.')
}
