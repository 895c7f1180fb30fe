//! The whole HTTP application: the API with the layers in front of every operation (rate
//! limits, the body policy, metrics, the request log), the web app, the Swagger UI and the
//! document.

use crate::{body, document, error, gateway::Gateway, metrics, page, request_log, routes, webapp};
use poem::{Endpoint, EndpointExt, IntoResponse, Route};
use poem_openapi::OpenApiService;
use std::sync::Arc;

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
    let cors = cors(&gateway);
    let derived = api.spec();
    let spec = document::complete(&derived);
    let routes = Arc::new(metrics::Routes::from_spec(&spec));
    // The Swagger UI page embeds the document verbatim: show the completed one.
    let docs = webapp::Docs::new(api.swagger_ui_html().replace(&derived, &spec));
    Route::new()
        .nest(
            "/docs",
            Route::new().at(
                "/",
                poem::get(poem::endpoint::make_sync(move |_| docs.answer())),
            ),
        )
        .at(
            "/swagger.json",
            poem::get(poem::endpoint::make_sync(move |_| {
                poem::Response::builder()
                    .content_type("application/json")
                    .body(spec.clone())
            })),
        )
        .at("/metrics", {
            let gateway = gateway.clone();
            poem::get(poem::endpoint::make_sync(move |request| {
                metrics::page(gateway.metrics_token.as_deref(), &request)
            }))
        })
        .nest("/", api)
        // The API's nest at `/` would take the page's address too: the app is asked first.
        .around(|endpoint, request| async move {
            match webapp::answer(&request) {
                Some(answer) => Ok(answer),
                None => endpoint
                    .call(request)
                    .await
                    .map(IntoResponse::into_response),
            }
        })
        .catch_all_error(error::framework_error)
        .around(move |endpoint, request| {
            let (gateway, routes) = (gateway.clone(), routes.clone());
            async move {
                let started = std::time::Instant::now();
                let method = request.method().to_string();
                let route = routes.template_of(request.uri().path());
                let as_page = page::ROUTES.contains(&route) && page::wanted(&request);
                // A method the route does not have is answered 405 by the router, its body
                // unread: the body policy has nothing to say about it.
                let method_allowed = routes
                    .allowed_methods(request.uri().path())
                    .is_none_or(|allow| allow.split(", ").any(|m| m == method));
                let mut response = guarded(&gateway, &*endpoint, request, method_allowed).await;
                if as_page && let Ok(answer) = response {
                    response = Ok(page::from_error(answer).await);
                }
                let status = match &mut response {
                    Ok(response) => {
                        allow_on_405(response, &routes, route);
                        speak_tus(response, route);
                        stored_nowhere(response);
                        response.status()
                    }
                    Err(error) => error.status(),
                };
                metrics::request_answered(&method, route, status.as_u16(), started.elapsed());
                response
            }
        })
        .with_if(cors_enabled, cors)
        .around(|endpoint, request| async move { request_log::logged(&*endpoint, request).await })
}

/// What browsers on the origins `CORS_ALLOWED_ORIGINS` names may do.
fn cors(gateway: &Gateway) -> poem::middleware::Cors {
    poem::middleware::Cors::new()
        .allow_origins(gateway.cors_origins.iter().map(String::as_str))
        .allow_credentials(false)
        // A browser's tus client reads where its upload is and stands from these.
        .expose_headers(EXPOSED_HEADERS)
}

/// The answer headers scripts on allowed origins may read: the resumable uploads' (tus) and
/// the quotas' and rate limits'.
const EXPOSED_HEADERS: [&str; 15] = [
    "location",
    "tus-resumable",
    "tus-version",
    "tus-extension",
    "tus-max-size",
    "tus-checksum-algorithm",
    "upload-offset",
    "upload-length",
    "upload-expires",
    "audiomill-job-id",
    "audiomill-webhook-id",
    "audiomill-webhook-secret",
    "retry-after",
    "x-quota-storage-remaining",
    "x-quota-jobs-remaining",
];

/// A 405 says which methods the route allows (RFC 9110).
fn allow_on_405(response: &mut poem::Response, routes: &metrics::Routes, route: &str) {
    if response.status() != poem::http::StatusCode::METHOD_NOT_ALLOWED {
        return;
    }
    if let Some(allow) = routes
        .allowed_methods(route)
        .and_then(|allow| poem::http::HeaderValue::from_str(allow).ok())
    {
        response
            .headers_mut()
            .insert(poem::http::header::ALLOW, allow);
    }
}

/// An answer that says nothing of caching is kept by no cache: API answers carry tokens,
/// private jobs and signed MP3s. The web app's files say how long they keep.
fn stored_nowhere(response: &mut poem::Response) {
    response
        .headers_mut()
        .entry(poem::http::header::CACHE_CONTROL)
        .or_insert(poem::http::HeaderValue::from_static("no-store"));
}

/// Every answer under `/uploads` says which tus version it speaks, refusals included.
fn speak_tus(response: &mut poem::Response, route: &str) {
    if route.starts_with("/uploads") {
        response.headers_mut().insert(
            "tus-resumable",
            poem::http::HeaderValue::from_static(crate::uploads::tus::VERSION),
        );
    }
}

/// The abuse limits and (for a method the route has) the body policy, in front of every
/// operation.
async fn guarded<E: Endpoint>(
    gateway: &Gateway,
    endpoint: &E,
    mut request: poem::Request,
    method_allowed: bool,
) -> poem::Result<poem::Response> {
    if let Some(refused) = gateway.rate_limits.check(&gateway.tokens, &request).await {
        return Ok(refused);
    }
    if method_allowed && let Err(refused) = body::limit(&mut request).await {
        return Ok(refused);
    }
    Ok(endpoint.call(request).await?.into_response())
}

/// The OpenAPI document the gateway serves, as pretty JSON.
pub fn openapi_json() -> String {
    let derived = OpenApiService::new(routes::spec_only(), TITLE, env!("CARGO_PKG_VERSION"))
        .description(DESCRIPTION)
        .spec();
    document::complete(&derived)
}
