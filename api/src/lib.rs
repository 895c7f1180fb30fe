//! The Audiomill gateway: a poem-openapi service.
//!
//! - [`auth`]: password hashing, access JWTs and refresh tokens.
//! - [`routes`]: the operations (`/login`, `/validate`, `/token/refresh`, `/upload`,
//!   `/status/{id}`, `/download/{id}`, `/health`), each returning a typed response.
//! - [`error`]: the one error shape, `{"error", "message"}`, for every failure, including
//!   the framework's own.
//! - [`upload`]: the streaming multipart reader and the container sniffing.
//! - [`limits`]: rate limits in front of every operation.
//! - [`status`]: a job's status, read from the job row and Temporal's describe.

pub mod auth;
mod document;
pub mod error;
pub mod limits;
pub mod routes;
pub mod server;
pub mod status;
pub mod upload;

use audiomill_store::{Database, ObjectStore};
use poem::{Endpoint, EndpointExt, IntoResponse, Route};
use poem_openapi::OpenApiService;
use std::sync::Arc;
use temporalio_client::Client;

/// Everything the gateway's handlers use.
pub struct Gateway {
    pub db: Database,
    pub objects: ObjectStore,
    pub temporal: Client,
    pub tokens: auth::TokenIssuer,
    pub passwords: auth::Passwords,
    pub limits: UploadLimits,
    pub rate_limits: limits::Limits,
    pub uploads: limits::UploadSlots,
    /// Final views of jobs whose workflow has closed.
    pub closed_views: status::ClosedViews,
    /// Origins allowed to call the API from a browser (CORS); empty: none.
    pub cors_origins: Vec<String>,
    /// How the mail transport is doing, reported by `/health` (`None`: not checked here).
    pub mail_probe:
        Option<Arc<dyn Fn() -> futures::future::BoxFuture<'static, bool> + Send + Sync>>,
}

#[derive(Debug, Clone)]
pub struct UploadLimits {
    pub max_bytes: u64,
    pub allowed_extensions: Vec<String>,
}

const TITLE: &str = "Audiomill";
const DESCRIPTION: &str = "Upload videos, get MP3s back. Log in with HTTP Basic at /login, then send the access token as a Bearer token.";

fn service(gateway: Arc<Gateway>) -> OpenApiService<routes::Api, ()> {
    OpenApiService::new(routes::api(gateway), TITLE, env!("CARGO_PKG_VERSION"))
        .description(DESCRIPTION)
}

/// The whole HTTP application: the API, the Swagger UI at `/docs` and the spec at `/swagger.json`.
pub fn app(gateway: Arc<Gateway>) -> impl Endpoint {
    let api = service(gateway.clone());
    // Browsers on other origins are let in only when CORS_ALLOWED_ORIGINS names them (an
    // empty list would make poem's Cors allow every origin, so it is left out then).
    let cors_enabled = !gateway.cors_origins.is_empty();
    let cors = poem::middleware::Cors::new()
        .allow_origins(gateway.cors_origins.iter().map(String::as_str))
        .allow_credentials(false);
    let derived = api.spec();
    let spec = document::complete(&derived);
    // The Swagger UI page embeds the document verbatim: show the completed one.
    let docs_page = api.swagger_ui_html().replace(&derived, &spec);
    Route::new()
        .nest(
            "/docs",
            Route::new().at(
                "/",
                poem::endpoint::make_sync(move |_| poem::web::Html(docs_page.clone())),
            ),
        )
        .at(
            "/swagger.json",
            poem::endpoint::make_sync(move |_| {
                poem::Response::builder()
                    .content_type("application/json")
                    .body(spec.clone())
            }),
        )
        .nest("/", api)
        .catch_all_error(error::framework_error)
        .around(move |endpoint, mut request| {
            let gateway = gateway.clone();
            async move {
                if let Some(refused) = gateway.rate_limits.check(&gateway, &request).await {
                    return Ok(refused);
                }
                if let Err(too_large) = limit_json_body(&mut request).await {
                    return Ok(too_large);
                }
                Ok(endpoint.call(request).await?.into_response())
            }
        })
        .with_if(cors_enabled, cors)
        .with(poem::middleware::Tracing)
}

/// The most a JSON request body may carry; uploads are multipart and have their own limit.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// How long a JSON body (at most 64 KiB) may take to arrive.
const JSON_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads a JSON body up front with a cap, so no client can make the gateway buffer an
/// unbounded document (a chunked body has no length to check in advance).
async fn limit_json_body(request: &mut poem::Request) -> Result<(), poem::Response> {
    let is_json = request
        .content_type()
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/json"));
    if !is_json {
        return Ok(());
    }
    let too_large = || {
        let body = error::ErrorBody::new(
            "payload_too_large",
            format!("JSON bodies are limited to {} KiB.", MAX_JSON_BODY / 1024),
        );
        (poem::http::StatusCode::PAYLOAD_TOO_LARGE, body).into_response()
    };
    let read = request.take_body().into_bytes_limit(MAX_JSON_BODY);
    let Ok(read) = tokio::time::timeout(JSON_BODY_TIMEOUT, read).await else {
        let body = error::ErrorBody::new(
            "request_timeout",
            "The request body did not arrive in time.",
        );
        return Err((poem::http::StatusCode::REQUEST_TIMEOUT, body).into_response());
    };
    match read {
        Ok(bytes) => {
            request.set_body(bytes);
            Ok(())
        }
        Err(poem::error::ReadBodyError::PayloadTooLarge) => Err(too_large()),
        Err(_) => {
            let body = error::ErrorBody::new("bad_request", "The request body could not be read.");
            Err((poem::http::StatusCode::BAD_REQUEST, body).into_response())
        }
    }
}

/// The OpenAPI document the gateway serves, as pretty JSON.
pub fn openapi_json() -> String {
    let derived = OpenApiService::new(routes::spec_only(), TITLE, env!("CARGO_PKG_VERSION"))
        .description(DESCRIPTION)
        .spec();
    document::complete(&derived)
}
