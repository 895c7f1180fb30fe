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
pub mod error;
pub mod limits;
pub mod routes;
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

fn service(gateway: Arc<Gateway>) -> OpenApiService<routes::Api, ()> {
    OpenApiService::new(routes::Api::new(gateway), TITLE, env!("CARGO_PKG_VERSION"))
        .description("Upload videos, get MP3s back. Log in with HTTP Basic at /login, then send the access token as a Bearer token.")
}

/// The whole HTTP application: the API, the Swagger UI at `/docs` and the spec at `/swagger.json`.
pub fn app(gateway: Arc<Gateway>) -> impl Endpoint {
    let api = service(gateway.clone());
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    Route::new()
        .nest("/docs", docs)
        .at("/swagger.json", spec)
        .nest("/", api)
        .catch_all_error(error::framework_error)
        .around(move |endpoint, request| {
            let gateway = gateway.clone();
            async move {
                if let Some(refused) = gateway.rate_limits.check(&gateway, &request) {
                    return Ok(refused);
                }
                Ok(endpoint.call(request).await?.into_response())
            }
        })
        .with(poem::middleware::Tracing)
}

/// The OpenAPI document the gateway serves, as pretty JSON.
pub fn openapi_json() -> String {
    OpenApiService::new(routes::Api::spec_only(), TITLE, env!("CARGO_PKG_VERSION"))
        .description("Upload videos, get MP3s back. Log in with HTTP Basic at /login, then send the access token as a Bearer token.")
        .spec()
}
