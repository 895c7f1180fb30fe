//! One span and one line per request, with nothing in them that works as a credential.
//!
//! A signed download link carries its credential in the query (`signature`), and a client may
//! put anything else there; the span shows the path, and of the query only the values of
//! parameters known to carry none. Every other value is `***`.

use poem::{Endpoint, FromRequest, IntoResponse, Request, Response, Result, web::RealIp};
use std::time::Instant;
use tracing::Instrument;

/// Query parameters whose values are shown: the operations' own filters and pages.
const SHOWN_PARAMETERS: [&str; 9] = [
    "limit",
    "cursor",
    "status",
    "created_after",
    "created_before",
    "user",
    "scope",
    "fid",
    "expires",
];

/// Runs `endpoint` for `request` inside the request's span, and logs how it was answered.
pub async fn logged<E: Endpoint>(endpoint: &E, request: Request) -> Result<Response> {
    let remote_addr = match RealIp::from_request_without_body(&request).await {
        Ok(RealIp(Some(address))) => address.to_string(),
        _ => request.remote_addr().to_string(),
    };
    let span = tracing::info_span!(
        "request",
        remote_addr = %remote_addr,
        version = ?request.version(),
        method = %request.method(),
        uri = %loggable_uri(request.original_uri()),
    );
    async move {
        let started = Instant::now();
        match endpoint.call(request).await {
            Ok(response) => {
                let response = response.into_response();
                let duration = started.elapsed();
                tracing::info!(status = %response.status(), ?duration, "response");
                Ok(response)
            }
            Err(error) => {
                let duration = started.elapsed();
                tracing::info!(status = %error.status(), %error, ?duration, "error");
                Err(error)
            }
        }
    }
    .instrument(span)
    .await
}

/// The path and the query with every value but the shown ones' as `***`.
fn loggable_uri(uri: &poem::http::Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.path().to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if SHOWN_PARAMETERS.contains(&name) => format!("{name}={value}"),
            Some((name, _)) => format!("{name}=***"),
            // A bare word may be a credential itself.
            None => "***".to_owned(),
        })
        .collect();
    format!("{}?{}", uri.path(), pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(uri: &str) -> String {
        loggable_uri(&uri.parse().unwrap())
    }

    #[test]
    fn credentials_in_the_query_are_hidden_and_filters_shown() {
        assert_eq!(
            logged("/download/abc?expires=17&signature=s3cr3t"),
            "/download/abc?expires=17&signature=***"
        );
        assert_eq!(
            logged("/jobs?limit=5&status=failed&access_token=t0k3n"),
            "/jobs?limit=5&status=failed&access_token=***"
        );
        // Spelled another way, a credential is still not a shown parameter.
        assert_eq!(
            logged("/download/abc?Signature=s&signature%3D=x&%73ignature=y"),
            "/download/abc?Signature=***&signature%3D=***&%73ignature=***"
        );
        assert_eq!(logged("/health"), "/health");
        assert_eq!(logged("/x?s3cr3t&token=z"), "/x?***&token=***");
    }
}
