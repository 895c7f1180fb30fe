//! Webhooks end to end: endpoints registered over HTTP, jobs that end, deliveries made by the
//! `DeliverWebhooks` workflow to a receiver on loopback (`tests/tools/webhook_receiver.py`),
//! and every recorded request verified with the Standard Webhooks reference implementation
//! (`tests/tools/verify_webhook.py`, Python's `standardwebhooks`), not with our own code.

use crate::common;

use common::{
    TestApp, make_mp4, upload_form,
    webhooks::{Receiver, try_verify, verified},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Loopback receivers are allowed here, as an operator would for receivers on their own
/// network; deliveries give up on a receiver after two seconds.
const RECEIVERS_ON_LOOPBACK: [(&str, &str); 2] = [
    ("WEBHOOK_ALLOW_PRIVATE", "true"),
    ("WEBHOOK_TIMEOUT_SECONDS", "2"),
];

async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Registers an endpoint, asserting 201; its id and secret.
async fn register(app: &TestApp, token: &str, url: &str, events: &[&str]) -> (String, String) {
    let (status, body) = call(
        app,
        token,
        Method::POST,
        "/webhooks",
        Some(json!({ "url": url, "events": events })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["enabled"], true);
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{body}");
    (body["id"].as_str().unwrap().to_owned(), secret)
}

async fn deliveries(app: &TestApp, token: &str, webhook: &str) -> Vec<Value> {
    let (status, body) = call(
        app,
        token,
        Method::GET,
        &format!("/webhooks/{webhook}/deliveries"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["deliveries"].as_array().unwrap().clone()
}

/// Waits (up to a minute) until the endpoint's newest delivery has `attempts` attempts.
async fn wait_for_attempts(app: &TestApp, token: &str, webhook: &str, attempts: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = deliveries(app, token, webhook).await;
        if let Some(newest) = list.first()
            && newest["attempts"].as_array().unwrap().len() >= attempts
        {
            return newest.clone();
        }
        assert!(
            Instant::now() < deadline,
            "never {attempts} attempts: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn status_codes(delivery: &Value) -> Vec<Value> {
    delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_job_is_told_signed_once_per_endpoint_through_retries_and_replays() {
    let app = TestApp::spawn_with(&RECEIVERS_ON_LOOPBACK).await;
    let receiver = Receiver::start();
    let token = app.user_token("ann").await;
    let (ok, ok_secret) = register(
        &app,
        &token,
        &receiver.url("/ok"),
        &["job.completed", "job.failed"],
    )
    .await;
    let (flaky, flaky_secret) =
        register(&app, &token, &receiver.url("/flaky/2"), &["job.completed"]).await;

    let dir = tempfile::tempdir().unwrap();
    let video = make_mp4(dir.path(), "holiday.mp4", 2, true);
    let job = app.start_job(&token, &video).await;
    app.wait_for_job(&token, &job).await;

    // One message per endpoint; the flaky one's first two attempts answered 500, so it came
    // three times, with one id.
    let told = receiver.wait_for("/ok", 1).await;
    let payload = &verified(&ok_secret, &told)[0];
    assert_eq!(payload["type"], "job.completed", "{payload}");
    assert_eq!(payload["data"]["job_id"], job.as_str());
    assert_eq!(payload["data"]["status"], "completed");
    assert_eq!(payload["data"]["filename"], "holiday.mp4");
    let flaky_told = receiver.wait_for("/flaky/2", 3).await;
    assert_eq!(flaky_told.len(), 3);
    assert!(
        flaky_told.iter().all(|r| r.id == flaky_told[0].id),
        "{flaky_told:?}"
    );
    assert_ne!(
        flaky_told[0].id, told[0].id,
        "each endpoint has its own message"
    );
    let flaky_payloads = verified(&flaky_secret, &flaky_told);
    assert!(
        flaky_payloads.iter().all(|p| p == &flaky_payloads[0]),
        "the same body each time"
    );
    assert!(
        try_verify(&ok_secret, &flaky_told).is_err(),
        "another endpoint's secret does not verify it"
    );

    // The signed link in the message opens the MP3 without a token.
    let link = payload["data"]["download_url"]
        .as_str()
        .expect("a download link");
    let mp3 = app.http.get(link).send().await.unwrap();
    assert_eq!(mp3.status(), StatusCode::OK);
    assert_eq!(mp3.headers()["content-type"], "audio/mpeg");

    // The delivery log: each attempt with its status code.
    let delivery = wait_for_attempts(&app, &token, &flaky, 3).await;
    assert_eq!(
        status_codes(&delivery),
        [json!(500), json!(500), json!(200)]
    );
    assert_eq!(delivery["delivery_id"], flaky_told[0].id.as_str());
    assert_eq!(delivery["job_id"], job.as_str());
    assert_eq!(delivery["event"], "job.completed");
    assert!(delivery["delivered_at"].is_string(), "{delivery}");
    let first = &delivery["attempts"][0];
    assert_eq!(first["error"], "The receiver answered 500.");
    assert!(first["latency_ms"].is_u64());

    // A replay: the same id and body, signed anew, recorded as a replay.
    let delivery_id = told[0].id.clone();
    let (status, body) = call(
        &app,
        &token,
        Method::POST,
        &format!("/webhooks/{ok}/deliveries/{delivery_id}/replay"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let again = receiver.wait_for("/ok", 2).await;
    assert_eq!(again[1].id, delivery_id);
    let replayed = verified(&ok_secret, &again[1..]);
    assert_eq!(replayed[0], *payload, "the same body");
    let delivery = wait_for_attempts(&app, &token, &ok, 2).await;
    let replays: Vec<_> = delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["replay"].clone())
        .collect();
    assert_eq!(replays, [json!(false), json!(true)]);

    // A failed job is told to the endpoint that wants failures, and only to it.
    let silent = make_mp4(dir.path(), "silent.mp4", 1, false);
    let failed = app.start_job(&token, &silent).await;
    app.wait_for_job(&token, &failed).await;
    let told = receiver.wait_for("/ok", 3).await;
    let payload = &verified(&ok_secret, &told[2..])[0];
    assert_eq!(payload["type"], "job.failed", "{payload}");
    assert_eq!(payload["data"]["job_id"], failed.as_str());
    assert!(payload["data"]["download_url"].is_null());
    assert!(payload["data"]["error"].is_string(), "{payload}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        receiver.at("/flaky/2").len(),
        3,
        "no failure went to /flaky"
    );

    // A rotated secret: messages carry both signatures for a day, so either verifies.
    let (status, body) = call(
        &app,
        &token,
        Method::POST,
        &format!("/webhooks/{ok}/secret"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new_secret = body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, ok_secret);
    let after_rotation = app.start_job(&token, &video).await;
    app.wait_for_job(&token, &after_rotation).await;
    let told = receiver.wait_for("/ok", 4).await;
    for secret in [&new_secret, &ok_secret] {
        let payload = &verified(secret, &told[3..])[0];
        assert_eq!(payload["data"]["job_id"], after_rotation.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_that_refuse_hang_flood_or_redirect_never_hold_up_the_job() {
    let app = TestApp::spawn_with(&RECEIVERS_ON_LOOPBACK).await;
    let receiver = Receiver::start();
    let token = app.user_token("bea").await;
    let events = ["job.completed"];
    let (gone, _) = register(&app, &token, &receiver.url("/gone"), &events).await;
    let (hang, _) = register(&app, &token, &receiver.url("/hang"), &events).await;
    let (huge, _) = register(&app, &token, &receiver.url("/huge"), &events).await;
    let (redirect, _) = register(&app, &token, &receiver.url("/redirect"), &events).await;

    let dir = tempfile::tempdir().unwrap();
    let video = make_mp4(dir.path(), "talk.mp4", 2, true);
    let job = app.start_job(&token, &video).await;
    // The job ends as soon as its MP3 is stored and mailed, whatever its receivers do.
    app.wait_for_job(&token, &job).await;
    app.wait_for_workflow_closed(&job).await;

    // 410 Gone: delivered no more, the endpoint off with the reason.
    let delivery = wait_for_attempts(&app, &token, &gone, 1).await;
    assert_eq!(status_codes(&delivery), [json!(410)]);
    let (_, endpoint) = call(
        &app,
        &token,
        Method::GET,
        &format!("/webhooks/{gone}"),
        None,
    )
    .await;
    assert_eq!(endpoint["enabled"], false, "{endpoint}");
    assert!(
        endpoint["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("410")
    );

    // A 1 GiB answer: read only as far as needed, delivered.
    let delivery = wait_for_attempts(&app, &token, &huge, 1).await;
    assert_eq!(status_codes(&delivery), [json!(200)]);
    assert!(delivery["attempts"][0]["latency_ms"].as_u64().unwrap() < 10_000);

    // A redirect is not followed: the attempt records the 302, the target hears nothing.
    let delivery = wait_for_attempts(&app, &token, &redirect, 2).await;
    assert_eq!(delivery["attempts"][0]["status_code"], 302);
    assert!(
        delivery["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("redirects are not followed")
    );
    assert!(receiver.at("/ok?redirected").is_empty());

    // A receiver that never answers: each attempt ends at the timeout, and is retried.
    let delivery = wait_for_attempts(&app, &token, &hang, 2).await;
    for attempt in delivery["attempts"].as_array().unwrap() {
        assert!(attempt["status_code"].is_null(), "{attempt}");
        assert_eq!(attempt["error"], "The receiver did not answer within 2 s.");
        let latency = attempt["latency_ms"].as_u64().unwrap();
        assert!((1_900..5_000).contains(&latency), "{latency}");
    }
    assert!(delivery["delivered_at"].is_null());

    // A disabled endpoint gets nothing more; turned on again, it does.
    let second = app.start_job(&token, &video).await;
    app.wait_for_job(&token, &second).await;
    receiver.wait_for("/huge", 2).await;
    assert_eq!(
        receiver.at("/gone").len(),
        1,
        "nothing more to a disabled endpoint"
    );
    let (status, body) = call(
        &app,
        &token,
        Method::PATCH,
        &format!("/webhooks/{gone}"),
        Some(json!({ "enabled": true })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["enabled"], true);
    assert!(body["disabled_reason"].is_null());
    // Deleted endpoints hear nothing either.
    for endpoint in [&hang, &huge, &redirect] {
        let response = app
            .send_as(&token, Method::DELETE, &format!("/webhooks/{endpoint}"))
            .await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }
    let third = app.start_job(&token, &video).await;
    app.wait_for_job(&token, &third).await;
    receiver.wait_for("/gone", 2).await;
    assert_eq!(receiver.at("/huge").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_resolves_to_a_private_address_is_refused_at_delivery_too() {
    // Private addresses are not allowed here; the endpoint is put in the database as if its
    // name had resolved to a public address when it was registered.
    let app = TestApp::spawn().await;
    let receiver = Receiver::start();
    let token = app.user_token("cal").await;
    let user = app
        .backends
        .db
        .user_by_email(&audiomill_domain::EmailAddress::parse(&app.email("cal")).unwrap())
        .await
        .unwrap()
        .unwrap();
    let endpoint = app
        .backends
        .db
        .create_webhook(&audiomill_store::NewEndpoint {
            user_id: user.id,
            url: audiomill_domain::webhook::WebhookUrl::parse(&receiver.url("/ok")).unwrap(),
            events: vec![audiomill_domain::webhook::WebhookEvent::JobCompleted],
        })
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let job = app
        .start_job(&token, &make_mp4(dir.path(), "a.mp4", 1, true))
        .await;
    app.wait_for_job(&token, &job).await;
    let delivery = wait_for_attempts(&app, &token, &endpoint.id.to_string(), 1).await;
    let attempt = &delivery["attempts"][0];
    assert!(attempt["status_code"].is_null());
    assert!(
        attempt["error"].as_str().unwrap().contains("127.0.0.1"),
        "{attempt}"
    );
    // Not retried: the address is the problem, and it is refused every time.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let delivery = deliveries(&app, &token, &endpoint.id.to_string()).await;
    assert_eq!(delivery[0]["attempts"].as_array().unwrap().len(), 1);
    assert!(receiver.received().is_empty(), "the receiver heard nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_checked_when_registered_and_belong_to_their_owner() {
    let app = TestApp::spawn().await;
    let token = app.user_token("dan").await;
    let other = app.user_token("eve").await;
    let refused = |url: &str| json!({ "url": url, "events": ["job.completed"] });
    for (body, field) in [
        (refused("http://127.0.0.1:8080/hook"), "url"),
        (refused("http://localhost/hook"), "url"),
        (refused("http://10.0.0.7/hook"), "url"),
        (refused("http://[::1]/hook"), "url"),
        (refused("http://[::ffff:127.0.0.1]/hook"), "url"),
        (refused("http://169.254.169.254/latest/meta-data/"), "url"),
        (refused("http://[fd00:ec2::254]/"), "url"),
        (refused("http://[64:ff9b:1::a00:7]/hook"), "url"),
        (
            refused("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook"),
            "url",
        ),
        (refused("http://[2002:a00:7::1]/hook"), "url"),
        (refused("http://[::a00:7]/hook"), "url"),
        (refused("http://[fec0::1]/hook"), "url"),
        (refused("ftp://93.184.216.34/hook"), "url"),
        (refused("https://user:secret@93.184.216.34/hook"), "url"),
        (refused("not a url"), "url"),
        (refused("https://no-such-host.invalid/hook"), "url"),
        (
            json!({ "url": "https://93.184.216.34/hook", "events": [] }),
            "events",
        ),
    ] {
        let (status, answer) =
            call(&app, &token, Method::POST, "/webhooks", Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"], "bad_request");
        assert_eq!(answer["field"], field, "{body}: {answer}");
        // Where a name resolves to is never told back: a private name reads like none.
        if body["url"] == "http://localhost/hook" {
            let message = answer["message"].as_str().unwrap();
            assert_eq!(
                message,
                "The URL is not acceptable: localhost does not resolve to a public address \
                 that webhooks may reach."
            );
        }
    }
    for body in [
        json!({ "url": "https://93.184.216.34/hook", "events": ["job.started"] }),
        json!({ "url": "https://93.184.216.34/hook", "events": "job.completed" }),
        json!({ "url": "https://93.184.216.34/hook" }),
        json!({ "url": "https://93.184.216.34/hook", "events": ["job.completed"], "extra": 1 }),
        json!([]),
    ] {
        let (status, answer) =
            call(&app, &token, Method::POST, "/webhooks", Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"], "bad_request", "{answer}");
    }
    // Another spelling of JSON is JSON; a body that is not JSON is refused as such.
    let response = app
        .http
        .post(app.url("/webhooks"))
        .bearer_auth(&token)
        .header("content-type", "application/vnd.api+json; charset=utf-8")
        .body(r#"{"url": "https://93.184.216.34/a", "events": ["job.failed"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = app
        .http
        .post(app.url("/webhooks"))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body(r#"{"url": "https://93.184.216.34/a", "events": ["job.failed"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let response = app.http.get(app.url("/webhooks")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // A public address by IP literal needs no DNS: accepted, listed, private to its owner.
    let (id, _) = register(
        &app,
        &token,
        "https://93.184.216.34/hook",
        &["job.completed", "job.completed", "job.cancelled"],
    )
    .await;
    let (_, list) = call(&app, &token, Method::GET, "/webhooks", None).await;
    let listed = &list["webhooks"][1];
    assert_eq!(listed["id"], id.as_str());
    assert_eq!(listed["events"], json!(["job.completed", "job.cancelled"]));
    assert!(listed.get("secret").is_none(), "the secret is shown once");
    let (_, list) = call(&app, &other, Method::GET, "/webhooks", None).await;
    assert_eq!(list["webhooks"], json!([]));
    for (method, path) in [
        (Method::GET, format!("/webhooks/{id}")),
        (Method::DELETE, format!("/webhooks/{id}")),
        (Method::POST, format!("/webhooks/{id}/secret")),
        (Method::GET, format!("/webhooks/{id}/deliveries")),
    ] {
        let response = app.send_as(&other, method.clone(), &path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{method} {path}");
    }
    let (status, _) = call(
        &app,
        &other,
        Method::PATCH,
        &format!("/webhooks/{id}"),
        Some(json!({ "enabled": false })),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Malformed ids and limits.
    for path in [
        "/webhooks/not-an-id".to_owned(),
        format!("/webhooks/{id}/deliveries?limit=0"),
        format!("/webhooks/{id}/deliveries?limit=101"),
    ] {
        let response = app.send_as(&token, Method::GET, &path).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    let response = app
        .send_as(
            &token,
            Method::POST,
            &format!("/webhooks/{id}/deliveries/msg_nope/replay"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = app
        .send_as(
            &token,
            Method::POST,
            &format!("/webhooks/{id}/deliveries/msg_AAAAAAAAAAAAAAAAAAAAAAAA/replay"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // Changes are checked like a new endpoint.
    let (status, answer) = call(
        &app,
        &token,
        Method::PATCH,
        &format!("/webhooks/{id}"),
        Some(json!({ "url": "http://192.168.0.1/" })),
    )
    .await;
    assert_eq!(
        (status, &answer["field"]),
        (StatusCode::BAD_REQUEST, &json!("url"))
    );
    let (status, answer) = call(
        &app,
        &token,
        Method::PATCH,
        &format!("/webhooks/{id}"),
        Some(json!({ "events": ["job.failed"], "enabled": false })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["events"], json!(["job.failed"]));
    assert_eq!(answer["enabled"], false);

    // A limit on endpoints per account, also for registrations sent all at once.
    let registrations = (0..25).map(|n| {
        let body = json!({ "url": format!("https://93.184.216.34/{n}"), "events": ["job.failed"] });
        call(&app, &token, Method::POST, "/webhooks", Some(body))
    });
    let answers = futures::future::join_all(registrations).await;
    let created = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    let refused: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CONFLICT)
        .collect();
    let limit = audiomill_store::MAX_ENDPOINTS_PER_USER as usize;
    assert_eq!(
        created,
        limit - 2,
        "two were registered before: {answers:?}"
    );
    assert_eq!(refused.len(), 25 - created, "{answers:?}");
    assert_eq!(refused[0].1["error"], "conflict");
    let (_, list) = call(&app, &token, Method::GET, "/webhooks", None).await;
    assert_eq!(list["webhooks"].as_array().unwrap().len(), limit);
    let response = app
        .send_as(&token, Method::DELETE, &format!("/webhooks/{id}"))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = app
        .send_as(&token, Method::GET, &format!("/webhooks/{id}"))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_is_told_as_cancelled() {
    let app = TestApp::spawn_with(&RECEIVERS_ON_LOOPBACK).await;
    let receiver = Receiver::start();
    let token = app.user_token("fay").await;
    let (_, secret) = register(&app, &token, &receiver.url("/ok"), &["job.cancelled"]).await;
    let dir = tempfile::tempdir().unwrap();
    let job = app
        .start_job(&token, &common::make_long_video(dir.path(), 1500))
        .await;
    app.wait_for_transcode(&token, &job).await;
    let response = app
        .send_as(&token, Method::POST, &format!("/jobs/{job}/cancel"))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let told = receiver.wait_for("/ok", 1).await;
    let payload = &verified(&secret, &told)[0];
    assert_eq!(payload["type"], "job.cancelled", "{payload}");
    assert_eq!(payload["data"]["job_id"], job.as_str());
    assert_eq!(payload["data"]["status"], "cancelled");
    let (_, status) = app.status(&token, &job).await;
    assert_eq!(status["status"], "cancelled", "{status}");
}

/// Replays cannot multiply a worker's requests: one replay of a delivery at a time (409
/// while one is being sent), and a per-user rate over every delivery and endpoint (429 with
/// `Retry-After`, in the error shape).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_are_one_at_a_time_per_delivery_and_rate_limited_per_user() {
    let mut settings = RECEIVERS_ON_LOOPBACK.to_vec();
    settings.push(("REPLAYS_PER_MINUTE", "3"));
    let app = TestApp::spawn_with(&settings).await;
    let receiver = Receiver::start();
    let token = app.user_token("hal").await;
    // Receivers that never take a message: every delivery and replay keeps retrying.
    let (one, _) = register(
        &app,
        &token,
        &receiver.url("/flaky/100000"),
        &["job.completed"],
    )
    .await;
    let (two, _) = register(
        &app,
        &token,
        &receiver.url("/flaky/99999"),
        &["job.completed"],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    for name in ["a.mp4", "b.mp4"] {
        let job = app
            .start_job(&token, &make_mp4(dir.path(), name, 1, true))
            .await;
        app.wait_for_job(&token, &job).await;
    }
    receiver.wait_for("/flaky/100000", 2).await;
    receiver.wait_for("/flaky/99999", 2).await;
    let ids = |list: Vec<Value>| -> Vec<String> {
        list.iter()
            .map(|d| d["delivery_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let firsts = ids(deliveries(&app, &token, &one).await);
    let seconds = ids(deliveries(&app, &token, &two).await);
    assert_eq!((firsts.len(), seconds.len()), (2, 2));
    let replay = |webhook: &str, delivery: &str| {
        let path = format!("/webhooks/{webhook}/deliveries/{delivery}/replay");
        app.http.post(app.url(&path)).bearer_auth(&token).send()
    };
    let answer = replay(&one, &firsts[0]).await.unwrap();
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    let again = replay(&one, &firsts[0]).await.unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"], "conflict", "{body}");
    let answer = replay(&two, &seconds[0]).await.unwrap();
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    // The fourth replay this minute, of another delivery: over the rate.
    let over = replay(&two, &seconds[1]).await.unwrap();
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = over.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    let body: Value = over.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests", "{body}");
    // The rate is the replays', not the user's: other requests go on.
    let (status, _) = call(&app, &token, Method::GET, "/webhooks", None).await;
    assert_eq!(status, StatusCode::OK);
    // Two replay runs in all: one per accepted replay.
    let client = app.temporal().await;
    for (webhook, delivery, expected) in [
        (&one, &firsts[0], true),
        (&two, &seconds[0], true),
        (&two, &seconds[1], false),
    ] {
        let described = client
            .get_workflow_handle::<audiomill_workflows::DeliverWebhooks>(format!(
                "webhook-replay-{delivery}"
            ))
            .describe(temporalio_client::WorkflowDescribeOptions::default())
            .await;
        assert_eq!(described.is_ok(), expected, "{webhook} {delivery}");
    }
}

/// An account turned off is told nothing more: not a delivery that was retrying, not the
/// `job.cancelled` of the jobs the turning off cancels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turned_off_account_is_told_nothing_more() {
    let app = TestApp::spawn_with(&RECEIVERS_ON_LOOPBACK).await;
    let receiver = Receiver::start();
    let admin = app.admin_token("root").await;
    let token = app.user_token("gil").await;
    // Fails three times (retried after about 1, 2 and 4 seconds), then takes it.
    register(&app, &token, &receiver.url("/flaky/3"), &["job.completed"]).await;
    register(&app, &token, &receiver.url("/ok"), &["job.cancelled"]).await;
    let dir = tempfile::tempdir().unwrap();
    let clip = app
        .start_job(&token, &make_mp4(dir.path(), "clip.mp4", 2, true))
        .await;
    app.wait_for_job(&token, &clip).await;
    let long = app
        .start_job(&token, &common::make_long_video(dir.path(), 1500))
        .await;
    app.wait_for_transcode(&token, &long).await;
    receiver.wait_for("/flaky/3", 1).await;

    let (_, me) = call(&app, &token, Method::GET, "/me", None).await;
    let user = me["id"].as_str().unwrap();
    let (status, body) = call(
        &app,
        &admin,
        Method::PATCH,
        &format!("/users/{user}"),
        Some(json!({ "active": false })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tried_before = receiver.at("/flaky/3").len();
    let (_, job) = app.status(&admin, &long).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while app.status(&admin, &long).await.1["status"] != "cancelled" {
        assert!(
            Instant::now() < deadline,
            "the long job was never cancelled: {job}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Long enough for three more retries and the cancellation's message.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let tried = receiver.at("/flaky/3").len();
    // One attempt may have been on its way as the account was turned off.
    assert!(
        tried <= tried_before + 1,
        "retried after the account was turned off: {tried_before} then {tried}"
    );
    assert!(receiver.at("/ok").is_empty(), "{:?}", receiver.at("/ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploads_callback_url_is_told_of_its_own_jobs_only() {
    let app = TestApp::spawn_with(&RECEIVERS_ON_LOOPBACK).await;
    let receiver = Receiver::start();
    let token = app.user_token("dee").await;
    let dir = tempfile::tempdir().unwrap();
    let one = make_mp4(dir.path(), "one.mp4", 1, true);
    let two = make_mp4(dir.path(), "two.mp4", 1, true);

    // Refused before anything is kept: a URL of another scheme, a host that does not resolve.
    for bad in [
        "ftp://127.0.0.1/x",
        "http://nowhere.invalid/hook",
        "not a url",
    ] {
        let (status, body) = app
            .post_upload(&token, upload_form(&[&one], &[("callback_url", bad)]), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["field"], "callback_url", "{body}");
        assert!(app.objects().is_empty(), "{bad}: nothing kept");
    }

    // One job with a callback, a batch of two with another, and a job with none.
    let (status, single) = app
        .post_upload(
            &token,
            upload_form(&[&one], &[("callback_url", &receiver.url("/ok/single"))]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{single}");
    let single_job = single["job_id"].as_str().unwrap().to_owned();
    let single_secret = single["callback"]["secret"].as_str().unwrap().to_owned();
    let single_hook = single["callback"]["webhook_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, batch) = app
        .post_upload(
            &token,
            upload_form(
                &[&one, &two],
                &[("callback_url", &receiver.url("/ok/batch"))],
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{batch}");
    let batch_secret = batch["callback"]["secret"].as_str().unwrap().to_owned();
    let batch_jobs: Vec<String> = batch["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["job_id"].as_str().unwrap().to_owned())
        .collect();
    let (status, plain) = app
        .post_upload(&token, upload_form(&[&two], &[]), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{plain}");
    assert!(plain["callback"].is_null(), "{plain}");
    let plain_job = plain["job_id"].as_str().unwrap().to_owned();

    for job in batch_jobs.iter().chain([&single_job, &plain_job]) {
        app.wait_for_job(&token, job).await;
        app.wait_for_workflow_closed(job).await;
    }
    let told = verified(&single_secret, &receiver.wait_for("/ok/single", 1).await);
    assert_eq!(told.len(), 1);
    assert_eq!(told[0]["type"], "job.completed");
    assert_eq!(told[0]["data"]["job_id"], single_job.as_str());
    let batch_told = receiver.wait_for("/ok/batch", 2).await;
    assert!(
        try_verify(&single_secret, &batch_told).is_err(),
        "each upload has its own secret"
    );
    let mut told: Vec<String> = verified(&batch_secret, &batch_told)
        .iter()
        .map(|payload| payload["data"]["job_id"].as_str().unwrap().to_owned())
        .collect();
    told.sort();
    let mut expected = batch_jobs.clone();
    expected.sort();
    assert_eq!(told, expected, "each of the batch's jobs, once");
    assert_eq!(
        receiver.received().len(),
        3,
        "the job without a callback told no one: {:?}",
        receiver.received()
    );

    // One-off endpoints are listed nowhere, count in no limit, show their deliveries, and go
    // with their jobs.
    let (_, list) = call(&app, &token, Method::GET, "/webhooks", None).await;
    assert_eq!(list["webhooks"], json!([]), "{list}");
    let delivered = deliveries(&app, &token, &single_hook).await;
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(status_codes(&delivered[0]), [json!(204)]);
    assert_eq!(
        app.delete_job(&token, &single_job).await.status(),
        StatusCode::NO_CONTENT
    );
    let (status, _) = call(
        &app,
        &token,
        Method::GET,
        &format!("/webhooks/{single_hook}/deliveries"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_told_once_per_milestone_to_the_endpoints_that_want_it() {
    progress_is_told_once_per_milestone(&[], |dir| common::make_long_video(dir, 600)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_in_parts_tells_its_progress_once_per_milestone_too() {
    let in_parts = [
        ("SEGMENT_MIN_SECONDS", "20"),
        ("SEGMENT_SECONDS", "8"),
        ("SEGMENT_MAX_PARTS", "0"),
    ];
    progress_is_told_once_per_milestone(&in_parts, |dir| {
        common::music_video(dir, "concert.mp4", 60)
    })
    .await;
}

/// A job of the video `make` makes, on an app with `settings`: each milestone told once under
/// its own id to the endpoint that wants progress, the ending too, and nothing but the ending
/// to the endpoint that wants only that.
async fn progress_is_told_once_per_milestone(
    settings: &[(&str, &str)],
    make: impl Fn(&std::path::Path) -> std::path::PathBuf,
) {
    let mut settings = settings.to_vec();
    settings.extend(RECEIVERS_ON_LOOPBACK);
    let app = TestApp::spawn_with(&settings).await;
    let receiver = Receiver::start();
    let token = app.user_token("eve").await;
    let (progress, secret) = register(
        &app,
        &token,
        &receiver.url("/ok/progress"),
        &["job.progress", "job.completed"],
    )
    .await;
    register(
        &app,
        &token,
        &receiver.url("/ok/endings"),
        &["job.completed"],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let job = app.start_job(&token, &make(dir.path())).await;
    app.wait_for_job(&token, &job).await;
    app.wait_for_workflow_closed(&job).await;
    let in_parts = app
        .activities_run(&job)
        .await
        .contains(&"transcode_segment".to_owned());
    assert_eq!(
        in_parts,
        !settings.is_empty() && settings[0].0 == "SEGMENT_MIN_SECONDS"
    );

    // 25, 50 and 75 percent, each once and under its own id, and the ending; in any order.
    receiver.wait_for("/ok/progress", 4).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let requests = receiver.at("/ok/progress");
    assert_eq!(requests.len(), 4, "{requests:?}");
    let told = verified(&secret, &requests);
    let mut ids: Vec<&str> = requests.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "one id per message");
    let mut percents: Vec<u64> = told
        .iter()
        .filter(|payload| payload["type"] == "job.progress")
        .map(|payload| {
            assert_eq!(payload["data"]["job_id"], job.as_str());
            assert_eq!(payload["data"]["status"], "running", "{payload}");
            payload["data"]["progress"].as_u64().unwrap()
        })
        .collect();
    percents.sort();
    assert_eq!(percents, [25, 50, 75]);
    let completed: Vec<&Value> = told
        .iter()
        .filter(|payload| payload["type"] == "job.completed")
        .collect();
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0]["data"]["progress"], 100);

    // An endpoint that wants only endings hears only the ending.
    let endings = receiver.wait_for("/ok/endings", 1).await;
    assert_eq!(endings.len(), 1);
    assert!(
        !endings[0].record["body"]
            .as_str()
            .unwrap()
            .contains("job.progress")
    );
    let listed = deliveries(&app, &token, &progress).await;
    let events: Vec<&str> = listed
        .iter()
        .map(|delivery| delivery["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events
            .iter()
            .filter(|event| **event == "job.progress")
            .count(),
        3,
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_start_only_for_a_completion_some_endpoint_wants() {
    let app = TestApp::spawn_with(&RECEIVERS_ON_LOOPBACK).await;
    let receiver = Receiver::start();
    let token = app.user_token("ann").await;
    register(&app, &token, &receiver.url("/failures"), &["job.failed"]).await;
    let dir = tempfile::tempdir().unwrap();
    let video = make_mp4(dir.path(), "holiday.mp4", 2, true);

    let untold = app.start_job(&token, &video).await;
    app.wait_for_job(&token, &untold).await;
    app.wait_for_workflow_closed(&untold).await;
    assert_eq!(app.children_started(&untold).await, Vec::<String>::new());

    let (_, secret) = register(&app, &token, &receiver.url("/done"), &["job.completed"]).await;
    let told = app.start_job(&token, &video).await;
    app.wait_for_job(&token, &told).await;
    let payload = &verified(&secret, &receiver.wait_for("/done", 1).await)[0];
    assert_eq!(payload["data"]["job_id"], told.as_str());
    assert_eq!(
        app.children_started(&told).await,
        [format!("webhooks-{told}")]
    );
    assert!(receiver.at("/failures").is_empty());
    app.stop().await;
}
