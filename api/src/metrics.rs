//! The gateway's Prometheus metrics, through the `metrics` facade and its Prometheus exporter.
//!
//! Labels are bounded by construction: a request is labelled with its route *template* (from
//! the OpenAPI document: `/status/{job_id}`, never the id itself), its method and its status;
//! refusals with a fixed reason. No label ever carries a user, an e-mail, a file name or a job
//! id. `/metrics` itself is served outside the OpenAPI operations, optionally behind a bearer
//! token (`METRICS_TOKEN`).

use crate::error::{ErrorBody, ErrorCode};
use futures::future::BoxFuture;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, http::StatusCode};
use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

/// Buckets of the latency histograms, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Buckets of the speed histograms (media seconds per wall second).
const SPEED_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];

/// The process's one recorder (the `metrics` facade has one per process), installed on first
/// use; every gateway in the process (tests run several) reports into it.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
            .expect("the buckets are not empty")
            .set_buckets_for_metric(Matcher::Suffix("_ratio".to_owned()), SPEED_BUCKETS)
            .expect("the buckets are not empty")
            .install_recorder()
            .expect("no other metrics recorder is installed")
    })
}

/// `GET /metrics`: Prometheus text, behind `token` when one is set.
pub fn page(token: Option<&str>, request: &Request) -> Response {
    use sha2::{Digest, Sha256};
    if let Some(token) = token {
        let presented = crate::auth::bearer_token(request).unwrap_or_default();
        // Compared as digests, so the time taken says nothing about how much matched.
        if Sha256::digest(presented.as_bytes()) != Sha256::digest(token.as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                ErrorBody::new(
                    ErrorCode::Unauthorized,
                    "The metrics token (METRICS_TOKEN) is required.",
                ),
            )
                .into_response();
        }
    }
    Response::builder()
        .content_type("text/plain; version=0.0.4")
        .body(handle().render())
}

/// What a worker is not ready for: the names of the failing checks (empty: ready).
pub type Readiness = Arc<dyn Fn() -> BoxFuture<'static, Vec<String>> + Send + Sync>;

/// A worker's own pages (it serves no API): `/metrics`, `/health/live`, and `/health/ready`,
/// which answers like the gateway's (`{status, failing}`, 503 when something fails).
pub fn worker_pages(token: Option<String>, readiness: Readiness) -> impl Endpoint {
    let live = poem::endpoint::make_sync(|_| {
        poem::web::Json(serde_json::json!({"status": "alive"})).into_response()
    });
    let ready = poem::endpoint::make(move |_| {
        let readiness = readiness.clone();
        async move {
            let failing = readiness().await;
            let status = if failing.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let word = if failing.is_empty() {
                "ready"
            } else {
                "not_ready"
            };
            let body = serde_json::json!({"status": word, "failing": failing});
            (status, poem::web::Json(body)).into_response()
        }
    });
    Route::new()
        .at(
            "/metrics",
            poem::get(poem::endpoint::make_sync(move |request| {
                page(token.as_deref(), &request)
            })),
        )
        .at("/health/live", poem::get(live))
        .at("/health/ready", poem::get(ready))
        .after(|answer| async move {
            // Refusals in the API's error shape; every page here is read-only, as a 405 says.
            let mut response = answer
                .unwrap_or_else(|error| crate::error::framework_answer(&error).into_response());
            if response.status() == StatusCode::METHOD_NOT_ALLOWED {
                response.headers_mut().insert(
                    poem::http::header::ALLOW,
                    poem::http::HeaderValue::from_static("GET, HEAD"),
                );
            }
            Ok::<_, poem::Error>(response)
        })
}

/// The route templates of the API with the methods each allows, in a path router
/// (`matchit`, whose `{name}` parameters are OpenAPI's): requests are labelled with their
/// template, and a 405 names the allowed methods. The lookup runs on every request.
pub struct Routes {
    router: matchit::Router<Template>,
}

struct Template {
    path: String,
    /// The `Allow` header's value: `GET, HEAD`, `POST`, ...
    allow: String,
}

impl Routes {
    /// The templates of every path in the OpenAPI document `spec`, plus the gateway's own
    /// pages outside it.
    pub fn from_spec(spec: &str) -> Self {
        let document: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        let mut templates: Vec<(String, Vec<String>)> = document["paths"]
            .as_object()
            .map(|paths| {
                paths
                    .iter()
                    .map(|(path, operations)| {
                        let methods = operations
                            .as_object()
                            .map(|o| o.keys().map(|m| m.to_uppercase()).collect())
                            .unwrap_or_default();
                        (path.clone(), methods)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let pages = ["/docs", "/swagger.json", "/metrics"];
        for page in pages.into_iter().chain(crate::webapp::ROUTES) {
            templates.push((page.to_owned(), vec!["GET".to_owned()]));
        }
        let mut router = matchit::Router::new();
        for (path, mut methods) in templates {
            // A GET route answers HEAD too.
            if methods.iter().any(|m| m == "GET") {
                methods.push("HEAD".to_owned());
            }
            let allow = methods.join(", ");
            // The document's paths are distinct; a clash would only lose a label.
            let _ = router.insert(path.clone(), Template { path, allow });
        }
        Self { router }
    }

    /// The template `path` matches, or `unmatched` (which keeps unknown paths out of the
    /// label values).
    pub fn template_of(&self, path: &str) -> &str {
        self.router
            .at(path)
            .map_or("unmatched", |found| found.value.path.as_str())
    }

    /// The methods `path` allows, as an `Allow` header says them; `None` for unknown paths.
    pub fn allowed_methods(&self, path: &str) -> Option<&str> {
        self.router
            .at(path)
            .ok()
            .map(|found| found.value.allow.as_str())
    }
}

/// One answered request.
pub fn request_answered(method: &str, route: &str, status: u16, took: Duration) {
    metrics::counter!(
        "audiomill_http_requests_total",
        "method" => method.to_owned(),
        "route" => route.to_owned(),
        "status" => status.to_string(),
    )
    .increment(1);
    metrics::histogram!(
        "audiomill_http_request_duration_seconds",
        "method" => method.to_owned(),
        "route" => route.to_owned(),
    )
    .record(took.as_secs_f64());
}

/// A request refused by a rate limit (`login_pair`, `login_address`, `requests`).
pub fn rate_limited(limit: &'static str) {
    metrics::counter!("audiomill_rate_limited_total", "limit" => limit).increment(1);
}

/// An upload refused before it became a job, by reason (`size`, `type`, `form`, `auth`,
/// `busy`, `slow`, `unavailable`).
pub fn upload_refused(reason: &'static str) {
    metrics::counter!("audiomill_uploads_refused_total", "reason" => reason).increment(1);
}

/// An upload stored and its job started.
pub fn upload_accepted(bytes: u64) {
    metrics::counter!("audiomill_uploaded_bytes_total").increment(bytes);
    metrics::counter!("audiomill_jobs_started_total").increment(1);
}

/// A retried upload answered with the job its `Idempotency-Key` had started.
pub fn upload_replayed() {
    metrics::counter!("audiomill_uploads_replayed_total").increment(1);
}

/// One description of a job's workflow asked of the engine (for a status, a listing or a
/// batch), counted so that an operator sees what polling costs the engine.
pub fn job_described() {
    metrics::counter!("audiomill_job_describes_total").increment(1);
}

/// How many jobs this gateway watches for live progress.
pub fn job_watchers(count: usize) {
    metrics::gauge!("audiomill_job_watchers").set(count as f64);
}

/// One read of a watched job's state (one call to Temporal while it runs).
pub fn job_watch_read() {
    metrics::counter!("audiomill_job_watch_reads_total").increment(1);
}

/// Event streams open now.
pub fn event_streams(change: f64) {
    metrics::gauge!("audiomill_event_streams").increment(change);
}

/// Bytes of MP3 sent.
pub fn downloaded(bytes: u64) {
    metrics::counter!("audiomill_downloaded_bytes_total").increment(bytes);
}

/// A download sent to the bucket (`DOWNLOAD_REDIRECT`) instead of served here.
pub fn download_redirected() {
    metrics::counter!("audiomill_download_redirects_total").increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_labelled_with_their_template_never_their_values() {
        let routes = Routes::from_spec(
            r#"{"paths": {"/status/{job_id}": {"get": {}}, "/upload": {"post": {}},
                "/download": {"get": {}}}}"#,
        );
        assert_eq!(
            routes.template_of("/status/01a20d98-61f4-7332-8a08-d08ff9937afb"),
            "/status/{job_id}"
        );
        assert_eq!(routes.template_of("/upload"), "/upload");
        assert_eq!(routes.template_of("/download"), "/download");
        assert_eq!(routes.template_of("/metrics"), "/metrics");
        assert_eq!(routes.template_of("/ann@example.com/x"), "unmatched");
        assert_eq!(routes.template_of("/status/a/b"), "unmatched");
        assert_eq!(routes.allowed_methods("/upload"), Some("POST"));
        assert_eq!(
            routes.allowed_methods("/status/{job_id}"),
            Some("GET, HEAD")
        );
        assert_eq!(routes.allowed_methods("/metrics"), Some("GET, HEAD"));
        assert_eq!(routes.allowed_methods("/nowhere"), None);
    }
}
