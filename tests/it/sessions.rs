//! A browser's login (`/session`): the refresh token in an `HttpOnly`, `SameSite=Strict`
//! cookie scoped to `/session`, renewed only by requests a page of another site cannot make,
//! rotated on each use, and removed at sign-out.

use crate::common;

use common::*;
use reqwest::{Response, StatusCode};
use serde_json::Value;

/// The session cookie a response sets: its value and its attributes, as written.
fn set_cookie(response: &Response) -> (String, String) {
    let header = response
        .headers()
        .get("set-cookie")
        .expect("a Set-Cookie header")
        .to_str()
        .unwrap()
        .to_owned();
    let (pair, attributes) = header.split_once(';').unwrap();
    let value = pair.strip_prefix("audiomill_session=").unwrap().to_owned();
    (value, attributes.trim().to_owned())
}

async fn open(app: &TestApp, email: &str, password: &str) -> Response {
    app.http
        .post(app.url("/session"))
        .basic_auth(email, Some(password))
        .send()
        .await
        .unwrap()
}

/// `POST /session/refresh` with `cookie` (if any), the marker header (if `marked`) and more
/// headers.
async fn renew(
    app: &TestApp,
    cookie: Option<&str>,
    marked: bool,
    headers: &[(&str, &str)],
) -> Response {
    let mut request = app.http.post(app.url("/session/refresh"));
    if let Some(cookie) = cookie {
        request = request.header("cookie", format!("audiomill_session={cookie}"));
    }
    if marked {
        request = request.header("audiomill-session", "1");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_session_keeps_its_refresh_token_in_a_cookie_no_script_or_other_site_can_use() {
    let app = TestApp::spawn().await;
    let email = app.add_user("ann", false).await;

    let wrong = open(&app, &email, "not the password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get("set-cookie").is_none());

    let opened = open(&app, &email, PASSWORD).await;
    assert_eq!(opened.status(), StatusCode::OK);
    assert_eq!(opened.headers()["cache-control"], "no-store");
    let (first, attributes) = set_cookie(&opened);
    assert_eq!(
        attributes, "Path=/session; Max-Age=2592000; HttpOnly; SameSite=Strict",
        "plain HTTP: not Secure"
    );
    let body: Value = opened.json().await.unwrap();
    assert!(body.get("refresh_token").is_none(), "{body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get_json(&access, "/me").await.0, StatusCode::OK);

    // Behind a proxy that speaks HTTPS to browsers, the cookie is Secure.
    let proxied = app
        .http
        .post(app.url("/session"))
        .basic_auth(&email, Some(PASSWORD))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert!(set_cookie(&proxied).1.ends_with("; Secure"));

    // What a page of another site could send is refused before the cookie is read.
    for (marked, headers) in [
        (false, vec![]),
        (false, vec![("origin", app.base.as_str())]),
        (true, vec![("origin", "https://evil.example")]),
        (true, vec![("origin", "null")]),
    ] {
        let forged = renew(&app, Some(&first), marked, &headers).await;
        assert_eq!(forged.status(), StatusCode::FORBIDDEN, "{headers:?}");
        let body: Value = forged.json().await.unwrap();
        assert_eq!(body["error"], "forbidden");
    }
    let no_cookie = renew(&app, None, true, &[]).await;
    assert_eq!(no_cookie.status(), StatusCode::UNAUTHORIZED);

    // The page's own request renews it, and the cookie's token is rotated.
    let renewed = renew(&app, Some(&first), true, &[("origin", app.base.as_str())]).await;
    assert_eq!(renewed.status(), StatusCode::OK);
    let (second, _) = set_cookie(&renewed);
    assert_ne!(second, first);
    let body: Value = renewed.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get_json(&access, "/me").await.0, StatusCode::OK);

    // A cookie used twice (stolen and replayed) ends the whole login and is removed.
    let replayed = renew(&app, Some(&first), true, &[]).await;
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(set_cookie(&replayed).0, "", "the cookie is removed");
    assert!(set_cookie(&replayed).1.contains("Max-Age=0"));
    assert_eq!(
        renew(&app, Some(&second), true, &[]).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get_json(&access, "/me").await.0,
        StatusCode::UNAUTHORIZED
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_ends_the_session_and_removes_its_cookie() {
    let app = TestApp::spawn().await;
    let email = app.add_user("ann", false).await;
    let opened = open(&app, &email, PASSWORD).await;
    let (cookie, _) = set_cookie(&opened);
    let body: Value = opened.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap();
    let out = app
        .http
        .post(app.url("/logout"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let (value, attributes) = set_cookie(&out);
    assert_eq!(value, "");
    assert_eq!(
        attributes,
        "Path=/session; Max-Age=0; HttpOnly; SameSite=Strict"
    );
    assert_eq!(
        renew(&app, Some(&cookie), true, &[]).await.status(),
        StatusCode::UNAUTHORIZED,
        "the login ended on the server, not only in the browser"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_session_counts_against_the_login_limits() {
    let app = TestApp::spawn_with(&[("LOGIN_ATTEMPTS_PER_MINUTE", "2")]).await;
    let email = app.add_user("ann", false).await;
    for _ in 0..2 {
        assert_eq!(
            open(&app, &email, "wrong").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let third = open(&app, &email, "wrong").await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    // The two ways in share the count.
    let login = app.login_response(&email, "wrong").await;
    assert_eq!(login.status(), StatusCode::TOO_MANY_REQUESTS);
    app.stop().await;
}
