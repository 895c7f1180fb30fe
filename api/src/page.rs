//! Errors as a page, for people: a download link is opened in a browser, which asks for
//! `text/html`, and a person should read a sentence there, not JSON. The page says what the
//! JSON says (the same status and message); programs, which ask for JSON or anything else,
//! get the JSON.

use poem::{
    Request, Response,
    http::{StatusCode, header},
};

/// The routes whose refusals a browser may meet: the download links.
pub const ROUTES: [&str; 2] = ["/download/{job_id}", "/download"];

/// True when the request prefers HTML to JSON (`Accept` ranks `text/html` above
/// `application/json`; wildcards rank neither).
pub fn wanted(request: &Request) -> bool {
    let Some(accept) = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let weight = |wanted: &str| {
        accept
            .split(',')
            .filter_map(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next()?;
                media.eq_ignore_ascii_case(wanted).then(|| {
                    parts
                        .filter_map(|p| p.strip_prefix("q="))
                        .find_map(|q| q.parse::<f32>().ok())
                        .unwrap_or(1.0)
                })
            })
            .fold(0.0f32, f32::max)
    };
    let html = weight("text/html");
    html > 0.0 && html > weight("application/json")
}

/// The JSON error `response` as a page with the same status and headers; anything else
/// unchanged.
pub async fn from_error(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || !is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Error bodies are a sentence long; anything unreadable keeps the status's own words.
    let message = body
        .into_vec()
        .await
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|json| json["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("Error").to_owned());
    let mut page = Response::from_parts(parts, render(status, &message).into());
    page.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    page.headers_mut().remove(header::CONTENT_LENGTH);
    page
}

/// A small self-contained page: no scripts, nothing fetched from elsewhere.
fn render(status: StatusCode, message: &str) -> String {
    let title = match status {
        StatusCode::UNAUTHORIZED => "Sign in needed",
        StatusCode::FORBIDDEN => "This link does not work",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::CONFLICT => "Not ready yet",
        StatusCode::GONE => "This download is no longer available",
        StatusCode::RANGE_NOT_SATISFIABLE => "Nothing in that range",
        StatusCode::TOO_MANY_REQUESTS => "Too many requests",
        s if s.is_server_error() => "Audiomill is unavailable right now",
        _ => "This request did not work",
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} - Audiomill</title></head>\n\
         <body style=\"font-family: sans-serif; max-width: 36em; margin: 4em auto; padding: 0 1em\">\n\
         <h1>{title}</h1>\n<p>{message}</p>\n<p><small>Audiomill &middot; {code}</small></p>\n\
         </body></html>\n",
        message = html_escape::encode_text(message),
        code = status.as_u16(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepting(accept: &str) -> bool {
        wanted(&Request::builder().header(header::ACCEPT, accept).finish())
    }

    #[test]
    fn browsers_get_pages_and_programs_get_json() {
        // What Firefox and Chrome send for a link opened in a tab.
        assert!(accepting(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(accepting(
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
        ));
        assert!(accepting("TEXT/HTML"));
        assert!(!accepting("*/*"), "curl");
        assert!(!accepting("application/json"));
        assert!(!accepting("application/json, text/html;q=0.5"));
        assert!(!accepting("text/html;q=0"));
        assert!(accepting("application/json;q=0.2, text/html"));
        assert!(!wanted(&Request::builder().finish()), "no Accept at all");
    }

    #[tokio::test]
    async fn a_json_error_becomes_a_page_with_its_status_and_sentence() {
        let json = Response::builder()
            .status(StatusCode::GONE)
            .content_type("application/json; charset=utf-8")
            .body(r#"{"error":"gone","message":"This <link> has expired."}"#);
        let page = from_error(json).await;
        assert_eq!(page.status(), StatusCode::GONE);
        assert_eq!(page.content_type(), Some("text/html; charset=utf-8"));
        let html = page.into_body().into_string().await.unwrap();
        assert!(html.contains("This &lt;link&gt; has expired."), "{html}");
        assert!(!html.contains("<script"), "{html}");

        let mp3 = Response::builder()
            .status(StatusCode::OK)
            .content_type("audio/mpeg")
            .body("ID3");
        let unchanged = from_error(mp3).await;
        assert_eq!(unchanged.content_type(), Some("audio/mpeg"));
    }
}
