//! The browser session's cookie (see `routes::session`): its name, path and attributes, read
//! from a request and written into an answer, by `POST /session` and removed by `/logout`.

use crate::gateway::Gateway;
use poem::Request;

/// The cookie that holds the refresh token.
pub const COOKIE: &str = "audiomill_session";
/// Where the browser sends it: to `/session` and below only.
const COOKIE_PATH: &str = "/session";

/// The refresh token in the request's session cookie, if it has a non-empty one.
pub(crate) fn session_cookie(request: &Request) -> Option<String> {
    cookie_named(request, COOKIE)
}

/// The value of the request's non-empty cookie `name`, if it has one.
pub(crate) fn cookie_named(request: &Request, name: &str) -> Option<String> {
    request
        .headers()
        .get_all(poem::http::header::COOKIE)
        .iter()
        .filter_map(|header| header.to_str().ok())
        .flat_map(|header| header.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(found, value)| *found == name && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn removal(request: &Request, gw: &Gateway) -> String {
    cookie("", 0, secure(request, gw))
}

pub(crate) fn cookie(value: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE}={value}; Path={COOKIE_PATH}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    )
}

/// Whether the browser reached the service over HTTPS: directly, through a proxy that says
/// so, or as the service's public address says.
pub(crate) fn secure(request: &Request, gw: &Gateway) -> bool {
    request.uri().scheme_str() == Some("https")
        || request
            .header("x-forwarded-proto")
            .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
        || gw.links.base_url().starts_with("https://")
}
