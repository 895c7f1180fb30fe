//! One policy for the body of every request except the uploads', whatever its content type is
//! called: a body that is not JSON (`application/json` or any `application/*+json`) is refused
//! with 415 before a byte of it is read; any other body is read with a cap and a deadline
//! before an operation sees it. Nothing downstream can then buffer an unbounded or endless
//! body, whichever spelling of JSON the framework accepts.

use crate::error::{ErrorBody, ErrorCode};
use poem::{
    IntoResponse, Request, Response,
    http::{Method, StatusCode, header},
};
use std::time::Duration;

/// The most a request body may carry; uploads are multipart and have their own limits.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// How long such a body (at most 64 KiB) may take to arrive.
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// The operations whose bodies are streams with limits of their own: the multipart upload
/// (see `routes::jobs`) and the resumable uploads' creation and chunks (`routes::resumable`).
fn is_upload(request: &Request) -> bool {
    let path = request.uri().path();
    match *request.method() {
        Method::POST => path == "/upload" || path == "/uploads",
        Method::PATCH => path.starts_with("/uploads/"),
        _ => false,
    }
}

/// True for `application/json` and the structured `application/*+json` types, with any
/// parameters and in any letter case: every spelling poem-openapi's JSON payload accepts.
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Some(subtype) = essence.strip_prefix("application/") else {
        return false;
    };
    subtype == "json" || (subtype.ends_with("+json") && !subtype.contains(['/', ' ']))
}

/// Whether the request announces a body: a non-zero length, or a chunked (or otherwise
/// framed) one whose length nobody knows in advance.
fn announces_body(request: &Request) -> bool {
    let headers = request.headers();
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|length| length > 0)
}

/// Applies the policy; `Err` is the answer to send instead of calling the operation.
pub async fn limit(request: &mut Request) -> Result<(), Response> {
    if is_upload(request) {
        return Ok(());
    }
    let declared_json = request.content_type().is_none_or(is_json);
    if !declared_json && announces_body(request) {
        return Err(refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            "Request bodies must be JSON (application/json).".into(),
        ));
    }
    let read = request.take_body().into_bytes_limit(MAX_JSON_BODY);
    let Ok(read) = tokio::time::timeout(BODY_DEADLINE, read).await else {
        return Err(refuse(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RequestTimeout,
            "The request body did not arrive in time.".into(),
        ));
    };
    match read {
        Ok(bytes) => {
            request.set_body(bytes);
            Ok(())
        }
        Err(poem::error::ReadBodyError::PayloadTooLarge) => Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!(
                "Request bodies are limited to {} KiB.",
                MAX_JSON_BODY / 1024
            ),
        )),
        Err(_) => Err(refuse(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            "The request body could not be read.".into(),
        )),
    }
}

fn refuse(status: StatusCode, code: ErrorCode, message: String) -> Response {
    (status, ErrorBody::new(code, message)).into_response()
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn every_spelling_of_json_is_recognised_and_nothing_else() {
        for json in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/x+json",
            "application/problem+json ; q=1",
            "application/vnd.api+JSON",
        ] {
            assert!(is_json(json), "{json}");
        }
        for other in [
            "text/json",
            "application/jsonx",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/plain",
            "",
            "json",
        ] {
            assert!(!is_json(other), "{other}");
        }
    }
}
