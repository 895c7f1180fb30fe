//! Single sign-on with an OpenID provider: npm's oidc-provider (a certified implementation)
//! on loopback, run by tests/tools/oidc_provider.mjs, and a person in headless Chromium
//! (tests/clients/sign_on.py); and what the gateway answers a program at the sign-on
//! addresses, with password sign-in on and off.

use crate::common;
use crate::webapp::{facts_of, playwright, root};

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const CLIENT_ID: &str = "audiomill-test";
const CLIENT_SECRET: &str = "a client secret of the test provider";

/// The provider's process (stopped when dropped) and its issuer.
struct Provider {
    _process: tokio::process::Child,
    issuer: String,
}

impl Provider {
    /// Starts the provider at `issuer` (`http://localhost:<port>`), sending people back to
    /// `app`; `accounts` gives logins their claims.
    async fn start(issuer: &str, app: &TestApp, accounts: Value) -> Self {
        let port = issuer.rsplit(':').next().unwrap();
        let process = tokio::process::Command::new("node")
            .arg(root().join("tests/tools/oidc_provider.mjs"))
            .env("TEST_NODE_MODULES", required("TEST_NODE_MODULES"))
            .env("OIDC_TEST_PORT", port)
            .env("OIDC_TEST_ISSUER", issuer)
            .env("OIDC_TEST_CLIENT_ID", CLIENT_ID)
            .env("OIDC_TEST_CLIENT_SECRET", CLIENT_SECRET)
            .env("OIDC_TEST_REDIRECT_URI", app.url("/oidc/callback"))
            .env("OIDC_TEST_ACCOUNTS", accounts.to_string())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs the OpenID provider");
        let discovery = format!("{issuer}/.well-known/openid-configuration");
        for _ in 0..100 {
            if let Ok(answer) = reqwest::get(&discovery).await
                && answer.status().is_success()
            {
                return Self {
                    _process: process,
                    issuer: issuer.to_owned(),
                };
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the OpenID provider did not start at {issuer}");
    }
}

/// The gateway's settings for single sign-on with the provider at `issuer`.
fn sign_on_settings(issuer: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OIDC_ISSUER", issuer.to_owned()),
        ("OIDC_CLIENT_ID", CLIENT_ID.into()),
        ("OIDC_CLIENT_SECRET", CLIENT_SECRET.into()),
        ("OIDC_NAME", "Example ID".into()),
        ("OIDC_ADMIN_GROUPS", "ops".into()),
        (
            "OIDC_GROUP_LIMITS",
            json!({"pro": {"storage_limit_mb": 500, "jobs_per_day_limit": 0},
                   "free": {"storage_limit_mb": 50, "jobs_per_day_limit": 5}})
            .to_string(),
        ),
    ]
}

async fn spawn_with(settings: &[(&'static str, String)]) -> TestApp {
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    TestApp::spawn_with(&settings).await
}

/// A person signs in through the provider, gets an account (an admin, with the limits of
/// their groups) and keeps it over a reload; a replayed answer, a tampered ID token and an ID
/// token of another issuer are refused, a rotated signing key is not, nor are a sign-in
/// cancelled at the provider and an address it did not verify; an account made with a
/// password is taken only once an admin allows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_sign_in_with_the_provider_and_its_bad_answers_are_refused() {
    let issuer = format!("http://localhost:{}", free_port());
    let app = spawn_with(&sign_on_settings(&issuer)).await;
    let admin = app.add_user("root", true).await;
    let taken = app.add_user("zoe", false).await;
    let boss = app.email("boss");
    let accounts = json!({
        "boss": {"email": boss, "groups": ["ops", "pro", "free"]},
        "taken": {"email": taken, "groups": []},
        "una": {"email": app.email("una"), "email_verified": false},
    });
    let provider = Provider::start(&issuer, &app, accounts).await;
    let mut person = playwright("sign_on.py", &app);
    person
        .env("PROVIDER", &provider.issuer)
        .env("ADMIN_EMAIL", &admin)
        .env("ADMIN_PASSWORD", PASSWORD)
        .env("TAKEN_EMAIL", &taken)
        .env("SHOTS", root().join("target/screenshots"));
    let facts = facts_of(person).await;
    let state = "That sign-in had expired or was already used; please sign in again.";
    let token = "The sign-in service's answer failed our checks; please sign in again, \
                 and tell your administrator if it keeps happening.";
    assert_eq!(facts["boss_signed_in"], true, "{facts}");
    assert_eq!(facts["boss_is_admin"], true, "{facts}");
    assert_eq!(facts["kept_on_reload"], true, "{facts}");
    assert_eq!(facts["replayed"], state, "{facts}");
    assert_eq!(facts["replay_signed_in"], false, "{facts}");
    assert_eq!(facts["error_left_in_address"], false, "{facts}");
    assert_eq!(facts["tampered"], token, "{facts}");
    assert_eq!(facts["tampered_signed_in"], false, "{facts}");
    assert_eq!(facts["signed_in_after_rotation"], true, "{facts}");
    assert_eq!(facts["wrong_issuer"], token, "{facts}");
    assert_eq!(facts["wrong_issuer_signed_in"], false, "{facts}");
    assert_eq!(facts["unnamed_wrong_issuer"], token, "{facts}");
    assert_eq!(facts["unnamed_wrong_issuer_signed_in"], false, "{facts}");
    assert_eq!(
        facts["cancelled"], "The sign-in service did not sign you in.",
        "{facts}"
    );
    assert_eq!(
        facts["unverified"],
        "The sign-in service did not confirm an e-mail address for you; ask your administrator.",
        "{facts}"
    );
    assert_eq!(facts["unverified_signed_in"], false, "{facts}");
    assert_eq!(
        facts["taken_refused"],
        "An account with your e-mail address already exists here; ask an administrator to \
         link it to single sign-on.",
        "{facts}"
    );
    assert_eq!(facts["taken_signed_in"], true, "{facts}");
    assert_eq!(facts["console_errors"], json!([]), "{facts}");

    let admin_token = app.access_token(&admin).await;
    let (_, page) = app.get_json(&admin_token, "/users?search=boss").await;
    let account = &page["users"][0];
    assert_eq!(account["email"], boss.as_str(), "{page}");
    assert_eq!(account["admin"], true, "{page}");
    assert_eq!(account["single_sign_on"], true, "{page}");
    assert_eq!(
        account["limits"],
        json!({"storage_limit_mb": 500, "jobs_per_day_limit": 0}),
        "the most generous of the groups' limits"
    );
    let (_, page) = app.get_json(&admin_token, "/users?search=una").await;
    assert_eq!(
        page["users"],
        json!([]),
        "no account for an unverified address"
    );
    let (_, page) = app.get_json(&admin_token, "/users?search=zoe").await;
    let zoe = &page["users"][0];
    assert_eq!(
        (&zoe["single_sign_on"], &zoe["sign_on_link"]),
        (&json!(true), &json!(false))
    );
    let password = app.login_response(&taken, PASSWORD).await;
    assert_eq!(
        password.status(),
        StatusCode::OK,
        "its password still works"
    );
    let made = app.login_response(&boss, "!").await;
    assert_eq!(
        made.status(),
        StatusCode::UNAUTHORIZED,
        "no password signs in to it"
    );
    app.stop().await;
}

/// A client that shows redirects instead of following them.
fn not_following() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Where a sign-on answer sends the browser, and the cookie it sets.
async fn sent_to(app: &TestApp, path: &str, cookie: Option<&str>) -> (String, Option<String>) {
    let mut request = not_following().get(app.url(path));
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    let answer = request.send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER, "{path}");
    let header = |name: &str| {
        answer
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    (header("location").unwrap(), header("set-cookie"))
}

/// With password sign-in off, e-mail and password open no login (an API key still works),
/// and the page is told to offer single sign-on only; answers that no browser began are
/// refused without a login, and a provider that is down is said to be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_password_sign_in_off_only_the_provider_signs_people_in() {
    let down = format!("http://localhost:{}", free_port());
    let mut settings = sign_on_settings(&down);
    settings.push(("PASSWORD_SIGN_IN", "false".into()));
    let app = spawn_with(&settings).await;
    let (status, methods) = app.get_json("", "/sign-in/methods").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        methods,
        json!({"password": false, "signup": false,
               "single_sign_on": {"name": "Example ID", "url": "/oidc/sign-in"}})
    );
    let email = app.add_user("ann", false).await;
    let refused = app.login_response(&email, PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Password sign-in is turned off"),
        "{body}"
    );
    let session = app
        .http
        .post(app.url("/session"))
        .basic_auth(&email, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(session.status(), StatusCode::UNAUTHORIZED);

    let (location, cookie) = sent_to(&app, "/oidc/sign-in", None).await;
    assert_eq!(location, "/?sign_in_error=unavailable");
    assert_eq!(cookie, None);
    for cookie in [None, Some("audiomill_sign_on=made-up")] {
        let path = "/oidc/callback?code=stolen&state=made-up";
        let (location, set) = sent_to(&app, path, cookie).await;
        assert_eq!(location, "/?sign_in_error=state", "{cookie:?}");
        assert_eq!(set, None, "no session cookie");
    }
    app.stop().await;
}

/// Without a provider set up, the sign-on addresses are not found, in the error shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_provider_there_is_no_single_sign_on() {
    let app = TestApp::spawn().await;
    let (_, methods) = app.get_json("", "/sign-in/methods").await;
    assert_eq!(methods["password"], true);
    assert_eq!(methods["single_sign_on"], Value::Null);
    for path in ["/oidc/sign-in", "/oidc/callback?code=a&state=b"] {
        let answer = not_following().get(app.url(path)).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["error"], "not_found", "{body}");
    }
    app.stop().await;
}
