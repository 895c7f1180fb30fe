//! Credentials: API keys with scopes (every operation that names a scope refuses a credential
//! without it), ending every login at once, changing the password, and secrets kept out of
//! the log.

use crate::common;

use common::*;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Every scope a key may hold.
const KEY_SCOPES: [&str; 7] = [
    "jobs:read",
    "jobs:write",
    "webhooks:read",
    "webhooks:write",
    "account:read",
    "account:write",
    "admin",
];

/// `POST /api-keys` as the holder of `login`.
async fn make_key(app: &TestApp, login: &str, body: Value) -> Response {
    app.http
        .post(app.url("/api-keys"))
        .bearer_auth(login)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A new key with `scopes`; the key itself.
async fn key_with(app: &TestApp, login: &str, scopes: &[&str]) -> String {
    let response = make_key(app, login, json!({"name": "test", "scopes": scopes})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let made: Value = response.json().await.unwrap();
    made["key"].as_str().unwrap().to_owned()
}

/// A JSON body each operation that takes one accepts, so that what answers is its scope check.
fn body_for(operation: &str) -> Option<Value> {
    let body = match operation {
        "createApiKey" => json!({"name": "from the matrix", "scopes": ["jobs:read"]}),
        "changePassword" => json!({"current_password": "wrong", "new_password": "long enough"}),
        "createWebhook" => json!({"url": "https://example.com/hook", "events": ["job.completed"]}),
        "updateAccount" | "updateWebhook" | "updateUser" => json!({}),
        "addUser" => json!({"email": "added@example.com", "password": "long enough"}),
        "inviteUser" => json!({"email": "invited@example.com"}),
        "createUploadToken" => json!({}),
        "createConnection" => json!({"name": "mine", "bucket": "videos",
            "access_key_id": "key", "secret_access_key": "secret"}),
        "importVideos" => json!({"urls": ["https://93.184.216.34/v.mp4"]}),
        "createWatch" => json!({"name": "mine",
            "connection_id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a60"}),
        _ => return None,
    };
    Some(body)
}

/// `path` with every parameter given a well-formed value naming nothing.
fn filled(path: &str) -> String {
    let values = [
        ("{job_id}", "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
        ("{batch_id}", "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c"),
        ("{webhook_id}", "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d"),
        ("{upload_id}", "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5e"),
        ("{user_id}", "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5f"),
        ("{key_id}", "AAAAAAAAAAAA"),
        ("{delivery_id}", "msg_AAAAAAAAAAAAAAAAAAAAAAAA"),
        ("{connection_id}", "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a60"),
        ("{watch_id}", "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a61"),
    ];
    let filled = values.iter().fold(path.to_owned(), |path, (name, value)| {
        path.replace(name, value)
    });
    assert!(!filled.contains('{'), "give {filled} a value");
    if filled == "/download" {
        return "/download?fid=0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into();
    }
    filled
}

/// Sends operation `id` (`method path`) as the holder of `token`, with what it needs to get as
/// far as its scope check.
async fn call(app: &TestApp, token: &str, method: &str, path: &str, id: &str) -> Response {
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let mut request = app
        .http
        .request(method, app.url(&filled(path)))
        .bearer_auth(token);
    if path.starts_with("/uploads") {
        request = request
            .header("tus-resumable", "1.0.0")
            .header("upload-length", "1000")
            .header("upload-offset", "0");
        if id == "appendToResumableUpload" {
            request = request
                .header("content-type", "application/offset+octet-stream")
                .body(vec![0u8; 10]);
        }
    } else if id == "uploadVideo" {
        request = request.multipart(reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(vec![0u8; 100]).file_name("a.mp4"),
        ));
    } else if let Some(body) = body_for(id) {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_refuses_a_credential_without_the_scope_it_names() {
    let app = TestApp::spawn().await;
    let email = app.add_user("root", true).await;
    let mut login = app.access_token(&email).await;
    let document: Value = app
        .http
        .get(app.url("/swagger.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut lacking: HashMap<String, String> = HashMap::new();
    let mut holding: HashMap<String, String> = HashMap::new();
    let mut checked = 0;
    for (path, methods) in document["paths"].as_object().unwrap() {
        for (method, operation) in methods.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap();
            let Some(requirements) = operation["security"].as_array() else {
                continue;
            };
            let Some(need) = requirements
                .iter()
                .find_map(|r| r["BearerAuth"].as_array()?.first()?.as_str())
            else {
                continue;
            };
            let without: Vec<&str> = KEY_SCOPES.into_iter().filter(|s| *s != need).collect();
            if !lacking.contains_key(need) {
                let key = key_with(&app, &login, &without).await;
                lacking.insert(need.to_owned(), key);
            }
            let answer = call(&app, &lacking[need], method, path, id).await;
            assert_eq!(
                answer.status(),
                StatusCode::FORBIDDEN,
                "{method} {path} without {need}"
            );
            if method != "head" {
                let body: Value = answer.json().await.unwrap();
                assert_eq!(body["error"], "forbidden", "{method} {path}: {body}");
                assert!(
                    body["message"].as_str().unwrap().contains(need),
                    "{method} {path}: {body}"
                );
            }

            // A credential with the scope gets past the check: a key, or (for `credentials`,
            // which no key holds) a login of its own, since one operation ends every login.
            let with = if need == "credentials" {
                app.access_token(&email).await
            } else {
                if !holding.contains_key(need) {
                    holding.insert(need.to_owned(), key_with(&app, &login, &[need]).await);
                }
                holding[need].clone()
            };
            let answer = call(&app, &with, method, path, id).await;
            assert_ne!(
                answer.status(),
                StatusCode::FORBIDDEN,
                "{method} {path} with {need}"
            );
            assert_ne!(answer.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
            if id == "endAllLogins" {
                login = app.access_token(&email).await;
            }
            checked += 1;
        }
    }
    assert!(checked >= 33, "only {checked} operations name a scope");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_is_shown_once_works_for_uploads_and_stops_at_once_when_revoked() {
    let app = TestApp::spawn().await;
    let login = app.user_token("ann").await;
    let made = make_key(
        &app,
        &login,
        json!({"name": "nightly import", "scopes": ["jobs:read", "jobs:write"]}),
    )
    .await;
    assert_eq!(made.status(), StatusCode::CREATED);
    let made: Value = made.json().await.unwrap();
    let key = made["key"].as_str().unwrap().to_owned();
    let id = made["id"].as_str().unwrap().to_owned();
    // `amk_[0-9A-Za-z]{12}_[0-9A-Za-z]{40}`, as documented for secret scanners.
    let (id_part, secret) = key.strip_prefix("amk_").unwrap().split_once('_').unwrap();
    assert_eq!((id_part.len(), secret.len()), (12, 40), "{key}");
    assert!(
        key[4..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "{key}"
    );
    assert_eq!(made["prefix"], format!("amk_{id}"));
    assert!(key.starts_with(made["prefix"].as_str().unwrap()));
    assert_eq!(made["scopes"], json!(["jobs:read", "jobs:write"]));
    // The scheme's name is read in any case, as HTTP has it.
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let listed = app
            .http
            .get(app.url("/jobs"))
            .header("Authorization", format!("{scheme} {key}"))
            .send()
            .await
            .unwrap();
        assert_eq!(listed.status(), StatusCode::OK, "{scheme}");
    }

    // A multipart upload and a tus creation with the key; the job runs to the end.
    let job = app
        .start_job(&key, &make_mp4(app.data.path(), "clip.mp4", 2, true))
        .await;
    let events = app.wait_for_job(&key, &job).await;
    assert_eq!(events.last().unwrap()["status"], "completed", "{events:?}");
    let created = app
        .http
        .post(app.url("/uploads"))
        .bearer_auth(&key)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", "1000")
        .header("upload-metadata", "filename YS5tcDQ=")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);

    let (status, listed) = app.get_json(&login, "/api-keys").await;
    assert_eq!(status, StatusCode::OK);
    let listed = &listed["keys"][0];
    assert_eq!(listed["id"], id.as_str());
    assert_eq!(listed["name"], "nightly import");
    assert!(listed["last_used_at"].is_string(), "{listed}");
    assert!(listed.get("key").is_none(), "the list never shows a key");
    assert!(!listed.to_string().contains(&key[17..]), "nor its secret");

    let identity: Value = app
        .send_as(&key, Method::POST, "/validate")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(identity["key_id"], id.as_str());
    assert_eq!(identity["scopes"], json!(["jobs:read", "jobs:write"]));

    let revoked = app
        .send_as(&login, Method::DELETE, &format!("/api-keys/{id}"))
        .await;
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let (status, body) = app.get_json(&key, "/jobs").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "unauthorized");
    let again = app
        .send_as(&login, Method::DELETE, &format!("/api-keys/{id}"))
        .await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let (_, listed) = app.get_json(&login, "/api-keys").await;
    assert_eq!(listed["keys"], json!([]));

    // A key whose secret is changed is no key, and says nothing about the real one.
    let forged = format!("{}{}", &key[..17], "A".repeat(40));
    let (status, _) = app.get_json(&forged, "/jobs").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_hold_only_what_their_maker_may_give_and_end_with_their_account() {
    let app = TestApp::spawn().await;
    let ann = app.user_token("ann").await;
    let refusals = [
        (json!({"name": "k", "scopes": ["credentials"]}), "scopes"),
        (json!({"name": "k", "scopes": ["admin"]}), "scopes"),
        (
            json!({"name": "k", "scopes": ["jobs:read"], "expires_at": "2020-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (json!({"name": " ", "scopes": ["jobs:read"]}), "name"),
    ];
    for (body, field) in refusals {
        let answer = make_key(&app, &ann, body.clone()).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{body}");
        let error: Value = answer.json().await.unwrap();
        assert_eq!(error["field"], field, "{body}: {error}");
    }
    for body in [
        json!({"name": "k", "scopes": []}),
        json!({"name": "k", "scopes": ["jobs:everything"]}),
        json!({"name": "k"}),
    ] {
        let answer = make_key(&app, &ann, body.clone()).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{body}");
    }

    // A key makes no keys, whatever it holds.
    let key = key_with(&app, &ann, &KEY_SCOPES[..6]).await;
    let answer = make_key(&app, &key, json!({"name": "k", "scopes": ["jobs:read"]})).await;
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);

    // At most 20 live keys; a revoked one makes room.
    for _ in 1..20 {
        key_with(&app, &ann, &["jobs:read"]).await;
    }
    let answer = make_key(&app, &ann, json!({"name": "k", "scopes": ["jobs:read"]})).await;
    assert_eq!(answer.status(), StatusCode::CONFLICT);
    let (_, listed) = app.get_json(&ann, "/api-keys").await;
    assert_eq!(
        listed["keys"].as_array().map(Vec::len),
        Some(20),
        "{listed}"
    );
    // The newest, one of the `jobs:read` keys (the first key, with more scopes, is used below).
    let last = listed["keys"][0]["id"].as_str().unwrap().to_owned();
    app.send_as(&ann, Method::DELETE, &format!("/api-keys/{last}"))
        .await;
    key_with(&app, &ann, &["jobs:read"]).await;

    // An admin's key acts as an admin only with `admin`.
    let root = app.admin_token("root").await;
    let plain = key_with(&app, &root, &["jobs:read"]).await;
    let (status, _) = app.get_json(&plain, "/stats/uploads?scope=all").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let admin = key_with(&app, &root, &["jobs:read", "admin"]).await;
    let (status, _) = app.get_json(&admin, "/stats/uploads?scope=all").await;
    assert_eq!(status, StatusCode::OK);

    // A key that expires stops then.
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let answer = make_key(
        &app,
        &root,
        json!({"name": "short", "scopes": ["jobs:read"], "expires_at": soon}),
    )
    .await;
    let short: Value = answer.json().await.unwrap();
    let short = short["key"].as_str().unwrap().to_owned();
    assert_eq!(app.get_json(&short, "/jobs").await.0, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (status, body) = app.get_json(&short, "/jobs").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );

    // `/logout` with a key revokes that key.
    let leaving = key_with(&app, &root, &["jobs:read"]).await;
    let out = app.send_as(&leaving, Method::POST, "/logout").await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_json(&leaving, "/jobs").await.0,
        StatusCode::UNAUTHORIZED
    );

    // Deactivating the account stops its keys at once.
    let ann_id = app.get_json(&ann, "/me").await.1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let off = app
        .http
        .patch(app.url(&format!("/users/{ann_id}")))
        .bearer_auth(&root)
        .json(&json!({"active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(off.status(), StatusCode::OK);
    let (status, body) = app.get_json(&key, "/jobs").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("disabled"),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_everywhere_ends_every_login_and_keeps_the_keys() {
    let app = TestApp::spawn().await;
    let email = app.add_user("ann", false).await;
    let laptop = app.login(&email).await;
    let phone = app.login(&email).await;
    let laptop_token = laptop["access_token"].as_str().unwrap();
    let phone_token = phone["access_token"].as_str().unwrap();
    let key = key_with(&app, laptop_token, &["jobs:read"]).await;

    let ended = app
        .send_as(laptop_token, Method::DELETE, "/me/logins")
        .await;
    assert_eq!(ended.status(), StatusCode::OK);
    let cookie = ended.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("Max-Age=0"), "{cookie}");
    let ended: Value = ended.json().await.unwrap();
    assert_eq!(ended, json!({"ended": 2, "api_keys_kept": 1}));

    for token in [laptop_token, phone_token] {
        assert_eq!(
            app.get_json(token, "/jobs").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let renewed = app
        .http
        .post(app.url("/token/refresh"))
        .json(&json!({"refresh_token": phone["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(renewed.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.get_json(&key, "/jobs").await.0, StatusCode::OK);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_takes_the_current_one_and_ends_the_other_logins() {
    let app = TestApp::spawn().await;
    let email = app.add_user("ann", false).await;
    let here = app.access_token(&email).await;
    let elsewhere = app.access_token(&email).await;
    let change = |current: &str, new: &str| {
        app.http
            .put(app.url("/me/password"))
            .bearer_auth(&here)
            .json(&json!({"current_password": current, "new_password": new}))
            .send()
    };
    let wrong = change("not it", "a new password").await.unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    let wrong: Value = wrong.json().await.unwrap();
    assert_eq!(wrong["field"], "current_password");
    let short = change(PASSWORD, "short").await.unwrap();
    assert_eq!(short.status(), StatusCode::BAD_REQUEST);

    let changed = change(PASSWORD, "a new password").await.unwrap();
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get_json(&here, "/jobs").await.0, StatusCode::OK);
    assert_eq!(
        app.get_json(&elsewhere, "/jobs").await.0,
        StatusCode::UNAUTHORIZED
    );
    let old = app.login_response(&email, PASSWORD).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let new = app.login_response(&email, "a new password").await;
    assert_eq!(new.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_password_or_token_reaches_the_log() {
    let client_secret = "the client secret of single sign-on";
    let gateway = GatewayProcess::start(&[
        ("RUST_LOG", "debug".into()),
        ("OIDC_ISSUER", format!("http://localhost:{}", free_port())),
        ("OIDC_CLIENT_ID", "audiomill".into()),
        ("OIDC_CLIENT_SECRET", client_secret.into()),
    ])
    .await;
    let base = format!("http://{}", gateway.address);
    let http = reqwest::Client::new();
    let login = gateway.token().await;
    let made: Value = http
        .post(format!("{base}/api-keys"))
        .bearer_auth(&login)
        .json(&json!({"name": "k", "scopes": ["jobs:read"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = made["key"].as_str().unwrap();
    let forged = format!("{}{}", &key[..17], "B".repeat(40));
    for token in [key, forged.as_str(), login.as_str()] {
        http.get(format!("{base}/jobs"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
    }
    http.post(format!("{base}/login"))
        .basic_auth(&gateway.email, Some("a wrong password"))
        .send()
        .await
        .unwrap();
    let changed = http
        .put(format!("{base}/me/password"))
        .bearer_auth(&login)
        .json(&json!({"current_password": PASSWORD, "new_password": "the next password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    let (code, state) = ("an-authorization-code-7731", "a-sign-in-state-5190");
    http.get(format!("{base}/oidc/callback?code={code}&state={state}"))
        .header("Cookie", format!("audiomill_sign_on={state}"))
        .send()
        .await
        .unwrap();

    let log = gateway.process.log();
    assert!(log.contains("a single sign-on was refused"), "{log}");
    assert!(log.contains("API key made"), "the log is written: {log}");
    for secret in [
        &key[17..],
        &forged[17..],
        &login,
        PASSWORD,
        "a wrong password",
        "the next password",
        client_secret,
        code,
        state,
    ] {
        assert!(!log.contains(secret), "{secret} is in the log");
    }
}

/// The reset links mailed so far, waiting until there are `count`.
async fn reset_links(app: &TestApp, count: usize) -> Vec<String> {
    app.mailed_links_awaited("/#/reset?token=", count).await
}

async fn forgot(app: &TestApp, email: &str) -> (StatusCode, Value) {
    let answer = app
        .http
        .post(app.url("/password/forgot"))
        .json(&json!({ "email": email }))
        .send()
        .await
        .unwrap();
    (answer.status(), answer.json().await.unwrap())
}

async fn reset(app: &TestApp, link: &str, password: &str) -> Response {
    let token = link.split("token=").nth(1).unwrap();
    app.http
        .post(app.url("/password/reset"))
        .json(&json!({ "token": token, "new_password": password }))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_password_is_chosen_again_through_a_link_that_works_once() {
    let app = TestApp::spawn().await;
    let email = app.add_user("ann", false).await;
    let before = app.access_token(&email).await;

    // An unknown address gets the very answer a known one gets, and no mail.
    let unknown = forgot(&app, &app.email("nobody")).await;
    let known = forgot(&app, &email).await;
    assert_eq!(unknown, known);
    assert_eq!(known.0, StatusCode::ACCEPTED);
    let first = reset_links(&app, 1).await;
    assert_eq!(first.len(), 1, "one mail, to the account: {first:?}");
    assert!(first[0].starts_with(&app.base), "{first:?}");

    // Asking again sends a new link, and only the newest works.
    forgot(&app, &email).await;
    let links = reset_links(&app, 2).await;
    let newest = links
        .iter()
        .find(|link| **link != first[0])
        .unwrap()
        .clone();
    let old = reset(&app, &first[0], "a password from the old link").await;
    assert_eq!(old.status(), StatusCode::BAD_REQUEST);
    let short = reset(&app, &newest, "short").await;
    assert_eq!(short.status(), StatusCode::BAD_REQUEST);
    let changed = reset(&app, &newest, "the chosen password").await;
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    let again = reset(&app, &newest, "another password entirely").await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["field"], "token");

    // The reset ended every login; the new password opens one.
    assert_eq!(
        app.get_json(&before, "/jobs").await.0,
        StatusCode::UNAUTHORIZED
    );
    let old_password = app.login_response(&email, PASSWORD).await;
    assert_eq!(old_password.status(), StatusCode::UNAUTHORIZED);
    let new_password = app.login_response(&email, "the chosen password").await;
    assert_eq!(new_password.status(), StatusCode::OK);

    let malformed = forgot(&app, "not an address").await;
    assert_eq!(malformed.0, StatusCode::BAD_REQUEST);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_adds_finds_and_changes_accounts_through_the_api() {
    let app = TestApp::spawn().await;
    let root_email = app.add_user("root", true).await;
    let root = app.access_token(&root_email).await;
    let add = |body: Value| {
        app.http
            .post(app.url("/users"))
            .bearer_auth(&root)
            .json(&body)
            .send()
    };
    let carl = app.email("carl");
    let added = add(json!({"email": carl, "password": "a first password"}))
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);
    let added: Value = added.json().await.unwrap();
    assert_eq!(
        added["limits"],
        json!({"storage_limit_mb": null, "jobs_per_day_limit": null})
    );
    let again = add(json!({"email": carl, "password": "a first password"}))
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let refused = add(json!({"email": "nobody", "password": "long enough"}))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["field"], "email");
    let short = add(json!({"email": app.email("dan"), "password": "short"}))
        .await
        .unwrap();
    assert_eq!(short.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.login_response(&carl, "a first password").await.status(),
        StatusCode::OK
    );

    let change = |id: String, body: Value| {
        app.http
            .patch(app.url(&format!("/users/{id}")))
            .bearer_auth(&root)
            .json(&body)
            .send()
    };
    let carl_id = added["id"].as_str().unwrap().to_owned();
    let limits = json!({"storage_limit_mb": 10, "jobs_per_day_limit": 0});
    let changed = change(carl_id.clone(), json!({"admin": true, "limits": limits}))
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    let (_, page) = app.get_json(&root, "/users?search=CARL").await;
    assert_eq!(page["users"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["users"][0]["admin"], true);
    assert_eq!(page["users"][0]["limits"], limits);
    let carl_login: Value = app
        .login_response(&carl, "a first password")
        .await
        .json()
        .await
        .unwrap();
    let carl_token = carl_login["access_token"].as_str().unwrap().to_owned();
    let (_, me) = app.get_json(&carl_token, "/me").await;
    assert_eq!(me["quota"]["storage_limit_bytes"], 10 * 1024 * 1024, "{me}");
    assert_eq!(
        me["quota"]["jobs_per_day_limit"],
        Value::Null,
        "0 is no limit: {me}"
    );

    let root_id = app.get_json(&root, "/me").await.1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let own = change(root_id, json!({"admin": false})).await.unwrap();
    assert_eq!(own.status(), StatusCode::FORBIDDEN);

    let (_, first) = app.get_json(&root, "/users?limit=1").await;
    assert_eq!(first["users"].as_array().unwrap().len(), 1);
    let after = first["next_after"].as_str().unwrap();
    let (_, second) = app
        .get_json(&root, &format!("/users?limit=1&after={after}"))
        .await;
    assert_ne!(second["users"][0]["email"], first["users"][0]["email"]);
    app.stop().await;
}

async fn sign_up(app: &TestApp, body: Value) -> Response {
    app.http
        .post(app.url("/signup"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_makes_one_account_and_sign_up_is_closed_unless_allowed() {
    let app = TestApp::spawn().await;
    let (_, open) = app.get_json("", "/signup").await;
    assert_eq!(open, json!({"open": false}));
    let closed = sign_up(
        &app,
        json!({"email": app.email("eve"), "password": "long enough"}),
    )
    .await;
    assert_eq!(closed.status(), StatusCode::FORBIDDEN);

    let root = app.admin_token("root").await;
    let invite = |email: String| {
        app.http
            .post(app.url("/invitations"))
            .bearer_auth(&root)
            .json(&json!({ "email": email, "admin": true }))
            .send()
    };
    let ida = app.email("ida");
    assert_eq!(
        invite(ida.clone()).await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    let taken = invite(app.email("root")).await.unwrap();
    assert_eq!(taken.status(), StatusCode::CONFLICT);
    let link = app
        .mailed_links_awaited("/#/join?token=", 1)
        .await
        .remove(0);
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let joined = sign_up(&app, json!({"token": token, "password": "ida's password"})).await;
    assert_eq!(joined.status(), StatusCode::CREATED);
    let joined: Value = joined.json().await.unwrap();
    assert_eq!(joined["email"], ida.as_str());
    let again = sign_up(&app, json!({"token": token, "password": "ida's password"})).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let login: Value = app
        .login_response(&ida, "ida's password")
        .await
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap();
    let (_, me) = app.get_json(token, "/me").await;
    assert_eq!(me["admin"], true, "invited as an admin: {me}");
    app.stop().await;

    let open = TestApp::spawn_with(&[("ALLOW_SIGNUP", "true")]).await;
    assert_eq!(open.get_json("", "/signup").await.1, json!({"open": true}));
    let eve = open.email("eve");
    let made = sign_up(&open, json!({"email": eve, "password": "eve's password"})).await;
    assert_eq!(made.status(), StatusCode::CREATED);
    let twice = sign_up(&open, json!({"email": eve, "password": "eve's password"})).await;
    assert_eq!(twice.status(), StatusCode::CONFLICT);
    let login = open.login_response(&eve, "eve's password").await;
    assert_eq!(login.status(), StatusCode::OK);
    let (_, me) = open
        .get_json(
            login.json::<Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap(),
            "/me",
        )
        .await;
    assert_eq!(me["admin"], false);
    open.stop().await;
}

async fn mint(app: &TestApp, key: &str, body: Value) -> Response {
    app.http
        .post(app.url("/upload-tokens"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// `POST /uploads` for `length` bytes named `a.mp4`, as the holder of `token`.
async fn create_upload(app: &TestApp, token: &str, length: u64) -> Response {
    app.http
        .post(app.url("/uploads"))
        .bearer_auth(token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", length.to_string())
        .header("upload-metadata", "filename YS5tcDQ=")
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_token_uploads_only_what_it_allows_and_ends_with_its_key() {
    let app = TestApp::spawn().await;
    let login = app.user_token("ann").await;
    let key = key_with(&app, &login, &["jobs:read", "jobs:write"]).await;
    let fixed = json!({"channels": "1", "tags[title]": "Fixed"});
    let made = mint(
        &app,
        &key,
        json!({"uploads": 3, "max_file_mb": 1, "options": fixed}),
    )
    .await;
    assert_eq!(made.status(), StatusCode::CREATED);
    let made: Value = made.json().await.unwrap();
    let token = made["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("amu_") && token.len() == 57, "{token}");
    assert_eq!(made["uploads"], 3);

    // Nothing but uploads.
    assert_eq!(app.get_json(&token, "/jobs").await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        mint(&app, &token, json!({})).await.status(),
        StatusCode::FORBIDDEN
    );

    // Choices of its own are refused; the token's are the job's.
    let clip = make_mp4(app.data.path(), "clip.mp4", 2, true);
    let form = upload_form(&[&clip], &[("bitrate_mode", "cbr"), ("bitrate", "128")]);
    let (status, own) = app.post_upload(&token, form, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{own}");
    let job = app.start_job(&token, &clip).await;
    let (_, status) = app.status(&key, &job).await;
    assert_eq!(status["options"]["channels"], 1, "{status}");
    assert_eq!(status["options"]["tags"]["title"], "Fixed", "{status}");

    // A file over its size, then no uploads left.
    let mut big = std::fs::read(&clip).unwrap();
    big.resize(2 << 20, 0);
    let over = app.upload_bytes(&token, "big.mp4", big).await;
    assert_eq!(over.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let spent = app
        .upload_bytes(&token, "clip.mp4", std::fs::read(&clip).unwrap())
        .await;
    assert_eq!(spent.status(), StatusCode::FORBIDDEN);

    // With tus: its own uploads only, within its size.
    let tus: Value = mint(&app, &key, json!({"uploads": 2, "max_file_mb": 1}))
        .await
        .json()
        .await
        .unwrap();
    let tus = tus["token"].as_str().unwrap().to_owned();
    assert_eq!(
        create_upload(&app, &tus, 2 << 20).await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let mine = create_upload(&app, &tus, 1000).await;
    assert_eq!(mine.status(), StatusCode::CREATED);
    let mine = mine.headers()["location"].to_str().unwrap().to_owned();
    let theirs = create_upload(&app, &key, 1000).await;
    let theirs = theirs.headers()["location"].to_str().unwrap().to_owned();
    let head = |location: String| {
        app.http
            .head(app.url(&location))
            .bearer_auth(&tus)
            .header("tus-resumable", "1.0.0")
            .send()
    };
    assert_eq!(head(mine).await.unwrap().status(), StatusCode::OK);
    assert_eq!(head(theirs).await.unwrap().status(), StatusCode::NOT_FOUND);

    // Bad choices are refused when it is made; it ends with the key that made it.
    let bad = mint(&app, &key, json!({"options": {"bitrate": "7"}})).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(bad["field"], "bitrate", "{bad}");
    let too_big = mint(&app, &key, json!({"max_file_mb": 1_000_000})).await;
    assert_eq!(too_big.status(), StatusCode::BAD_REQUEST);
    let key_id = &key[4..16];
    app.send_as(&login, Method::DELETE, &format!("/api-keys/{key_id}"))
        .await;
    let (status, body) = app.get_json(&tus, "/jobs").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    app.stop().await;
}
