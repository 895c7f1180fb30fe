//! The web app people use (`web/`, built into `web/dist` by `make web`), inside the binary:
//! the page at `/`, its script and style at `/app/{file}`. The files are named by their
//! content's hash, so they are cached for good and the page itself is revalidated each time.
//! Every answer carries a policy that lets the page run only its own script and talk only to
//! its own origin, and never be framed.

use crate::error::{ErrorBody, ErrorCode};
use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use poem::{
    IntoResponse, Request, Response,
    http::{HeaderValue, Method, StatusCode, header},
};
use sha2::{Digest, Sha256};

#[derive(rust_embed::Embed)]
#[folder = "../web/dist"]
struct Built;

/// The routes the app answers, as the metrics and the `Allow` header name them.
pub const ROUTES: [&str; 2] = ["/", "/app/{file}"];

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// The app's answer to `request`, when its address is the app's.
pub fn answer(request: &Request) -> Option<Response> {
    let path = request.uri().path();
    if path == "/" {
        // The page is revalidated on every visit, so a new release is picked up at once.
        return Some(served(request, "index.html", "no-cache"));
    }
    let name = path.strip_prefix("/app/")?;
    if name.is_empty() || name.contains('/') || name.ends_with(".gz") {
        return Some(refused(StatusCode::NOT_FOUND));
    }
    // A script or style's name changes with its content: it is kept for good.
    let cache = "public, max-age=31536000, immutable";
    Some(served(request, &format!("app/{name}"), cache))
}

fn served(request: &Request, name: &str, cache: &'static str) -> Response {
    if ![Method::GET, Method::HEAD].contains(request.method()) {
        return refused(StatusCode::METHOD_NOT_ALLOWED);
    }
    let packed = format!("{name}.gz");
    let (file, gzipped) = match Built::get(&packed) {
        Some(file) if accepts_gzip(request) => (file, true),
        _ => match Built::get(name) {
            Some(file) => (file, false),
            None => return refused(StatusCode::NOT_FOUND),
        },
    };
    let etag = format!(
        "\"{}{}\"",
        hex::encode(file.metadata.sha256_hash()),
        if gzipped { "-gz" } else { "" }
    );
    let unchanged = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    let mut response = if unchanged {
        Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .finish()
    } else {
        // Hyper leaves the body out of an answer to HEAD, keeping its length.
        let mut response = Response::builder()
            .content_type(content_type(name))
            .body(file.data.into_owned());
        if gzipped {
            response
                .headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    guarded(response)
}

/// Whether the request's `Accept-Encoding` takes gzip (and does not refuse it with `q=0`).
fn accepts_gzip(request: &Request) -> bool {
    let Some(accepted) = request
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    accepted.split(',').any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or_default();
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
    })
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn refused(status: StatusCode) -> Response {
    let (code, message) = if status == StatusCode::NOT_FOUND {
        (ErrorCode::NotFound, "There is nothing at this address.")
    } else {
        (
            ErrorCode::MethodNotAllowed,
            "This method is not allowed here.",
        )
    };
    guarded((status, ErrorBody::new(code, message)).into_response())
}

/// The page's security headers, on every answer of the app.
fn guarded(response: Response) -> Response {
    secured(response, HeaderValue::from_static(POLICY))
}

/// The Swagger UI page at `/docs`, under the app's headers: it shares the app's origin, so a
/// page that frames it or a script it did not bring could act as a signed-in user. Its own
/// scripts are inline, so its policy lets in exactly those, by their hashes.
#[derive(Clone)]
pub struct Docs {
    page: String,
    policy: HeaderValue,
}

impl Docs {
    pub fn new(page: String) -> Self {
        let scripts: Vec<String> = inline_scripts(&page)
            .into_iter()
            .map(|script| format!("'sha256-{}'", BASE64.encode(Sha256::digest(script))))
            .collect();
        let policy = format!(
            "default-src 'none'; script-src {}; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
             base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            scripts.join(" ")
        );
        let policy = HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static(POLICY));
        Self { page, policy }
    }

    pub fn answer(&self) -> Response {
        let response = Response::builder()
            .content_type("text/html; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(self.page.clone());
        secured(response, self.policy.clone())
    }
}

/// The text of each `<script>` element of `page` that has no `src`, read as a browser does:
/// an element runs to the first `</script>` after it (a script's text may itself mention
/// `<script`).
fn inline_scripts(page: &str) -> Vec<&str> {
    let mut scripts = Vec::new();
    let mut rest = page;
    while let Some(start) = rest.find("<script") {
        let Some((attributes, after)) = rest[start..].split_once('>') else {
            break;
        };
        let Some((body, next)) = after.split_once("</script>") else {
            break;
        };
        if !attributes.contains("src=") {
            scripts.push(body);
        }
        rest = next;
    }
    scripts
}

/// `response` with the app's security headers and `policy` for its content.
fn secured(mut response: Response, policy: HeaderValue) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
