//! The HTTP contract: authentication, refused uploads, and the committed OpenAPI document.

use crate::common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_refreshed_once_and_reuse_is_refused() {
    let app = TestApp::spawn().await;
    let ann = app.add_user("ann", false).await;

    assert_eq!(
        app.login_response(&ann, "wrong password").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let unknown = app.login_response(&app.email("nobody"), PASSWORD).await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(unknown).await, "unauthorized");

    let pair = app.login(&ann).await;
    assert_eq!(pair["token_type"], "Bearer");
    assert!(pair["expires_in"].as_u64().unwrap() > 0);
    let access = pair["access_token"].as_str().unwrap();

    let valid = app
        .http
        .post(app.url("/validate"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(valid.status(), StatusCode::OK);
    let identity: serde_json::Value = valid.json().await.unwrap();
    assert_eq!(identity["email"], ann.as_str());
    assert_eq!(identity["admin"], false);

    // Missing, forged and expired tokens.
    let missing = app.http.post(app.url("/validate")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(missing).await, "unauthorized");
    let forged = app
        .http
        .post(app.url("/validate"))
        .bearer_auth("not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(forged).await, "unauthorized");
    let mut expired = audiomill_api::auth::TokenIssuer::new(JWT_SECRET.as_bytes());
    expired.access_ttl = std::time::Duration::ZERO;
    let user = audiomill_domain::UserId::parse(identity["sub"].as_str().unwrap()).unwrap();
    let email = audiomill_domain::EmailAddress::parse(&ann).unwrap();
    let (old, _) = expired.issue_access(user, &email, false, "s");
    tokio::time::sleep(std::time::Duration::from_secs(7)).await; // past the 5 s leeway
    let stale = app
        .http
        .post(app.url("/validate"))
        .bearer_auth(&old)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
    let upload = app.upload_bytes(&old, "x.mp4", b"whatever".to_vec()).await;
    assert_eq!(upload.status(), StatusCode::UNAUTHORIZED);

    // Rotation: the new refresh token works, the old one is refused and kills the family.
    let first = pair["refresh_token"].as_str().unwrap();
    let refresh = |token: &str| {
        app.http
            .post(app.url("/token/refresh"))
            .json(&json!({ "refresh_token": token }))
            .send()
    };
    let rotated = refresh(first).await.unwrap();
    assert_eq!(rotated.status(), StatusCode::OK);
    let second: serde_json::Value = rotated.json().await.unwrap();
    assert_ne!(second["refresh_token"], pair["refresh_token"]);
    let replay = refresh(first).await.unwrap();
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(replay).await, "unauthorized");
    let successor = refresh(second["refresh_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(
        successor.status(),
        StatusCode::UNAUTHORIZED,
        "the family must be revoked after a replay"
    );

    let garbage = app
        .http
        .post(app.url("/token/refresh"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(garbage).await, "bad_request");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_the_access_token_and_its_refresh_tokens() {
    let app = TestApp::spawn().await;
    let ann = app.add_user("ann", false).await;
    let pair = app.login(&ann).await;
    let other = app.login(&ann).await;
    let access = pair["access_token"].as_str().unwrap();
    let validate = |token: &str| {
        app.http
            .post(app.url("/validate"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(validate(access).await.unwrap().status(), StatusCode::OK);

    let logout = app
        .http
        .post(app.url("/logout"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let after = validate(access).await.unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(after).await, "unauthorized");
    let refresh = app
        .http
        .post(app.url("/token/refresh"))
        .json(&json!({ "refresh_token": pair["refresh_token"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(refresh.status(), StatusCode::UNAUTHORIZED);
    let upload = app
        .upload_bytes(access, "x.mp4", b"anything".to_vec())
        .await;
    assert_eq!(upload.status(), StatusCode::UNAUTHORIZED);

    // Another login of the same user is untouched.
    assert_eq!(
        validate(other["access_token"].as_str().unwrap())
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_uploads_answer_4xx_and_leave_nothing_behind() {
    // Over 8 MB, so the S3 backend has begun a multipart upload when the limit strikes.
    let app = TestApp::spawn_with(&[("MAX_FILE_SIZE", "10")]).await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let video = std::fs::read(make_mp4(media.path(), "ok.mp4", 1, true)).unwrap();

    // Larger than 1 MB, with a valid MP4 head.
    let mut big = video.clone();
    big.resize(40 * 1024 * 1024, 0);
    let response = app.upload_bytes(&token, "big.mp4", big).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(response).await, "payload_too_large");

    let text = app
        .upload_bytes(
            &token,
            "notes.mp4",
            "plain text, not a video at all".repeat(10).into_bytes(),
        )
        .await;
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(error_code(text).await, "unsupported_media_type");

    let wrong_extension = app.upload_bytes(&token, "video.txt", video.clone()).await;
    assert_eq!(wrong_extension.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let mismatch = app.upload_bytes(&token, "video.mkv", video.clone()).await;
    assert_eq!(
        mismatch.status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "MP4 bytes named .mkv"
    );

    let empty = app.upload_bytes(&token, "empty.mp4", Vec::new()).await;
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(empty).await, "bad_request");

    let other_field = reqwest::multipart::Form::new().text("note", "hello");
    let no_file = app
        .http
        .post(app.url("/upload"))
        .bearer_auth(&token)
        .multipart(other_field)
        .send()
        .await
        .unwrap();
    assert_eq!(no_file.status(), StatusCode::BAD_REQUEST);

    // A batch whose second file is refused: the first, already stored, is removed too.
    let two = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(video.clone()).file_name("a.mp4"),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"not a video at all".to_vec()).file_name("b.mp4"),
        );
    let two_files = app
        .http
        .post(app.url("/upload"))
        .bearer_auth(&token)
        .multipart(two)
        .send()
        .await
        .unwrap();
    assert_eq!(two_files.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let not_multipart = app
        .http
        .post(app.url("/upload"))
        .bearer_auth(&token)
        .body(video.clone())
        .header("content-type", "video/mp4")
        .send()
        .await
        .unwrap();
    assert!(
        not_multipart.status().is_client_error(),
        "{}",
        not_multipart.status()
    );
    assert!(!error_code(not_multipart).await.is_empty());

    let no_auth = app
        .http
        .post(app.url("/upload"))
        .multipart(reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(video.clone()).file_name("a.mp4"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(no_auth.status(), StatusCode::UNAUTHORIZED);

    assert!(
        app.objects().is_empty(),
        "refused uploads left objects: {:?}",
        app.objects()
    );
    // A malformed job id is refused as such (no job could have it); a well-formed unknown one
    // is not found, exactly like another user's.
    let (code, body) = app.status(&token, "not-a-job-id").await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "bad_request", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("job id"),
        "{body}"
    );
    let (code, body) = app.status(&token, &uuid::Uuid::now_v7().to_string()).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    // The same for every place a job id goes: the download path and query, the delete.
    for (method, path) in [
        (Method::GET, "/download/not-a-job-id"),
        (Method::GET, "/download?fid=not-a-job-id"),
        (Method::GET, "/download"),
        (Method::DELETE, "/jobs/not-a-job-id"),
        (Method::POST, "/jobs/not-a-job-id/cancel"),
        (Method::GET, "/status/01A20D98-61F4-7332-8A08-D08FF9937AFB"),
    ] {
        let answer = app.send_as(&token, method.clone(), path).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{method} {path}");
        assert_eq!(error_code(answer).await, "bad_request", "{method} {path}");
    }
    let unauthenticated = app
        .http
        .get(app.url("/status/not-a-job-id"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);

    // And a good one still goes through.
    let accepted = app.upload_bytes(&token, "ok.mp4", video).await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_services_live_and_ready_describe_every_dependency() {
    let app = TestApp::spawn().await;
    let get = |path: &'static str| {
        let request = app.http.get(app.url(path));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (code, body) = get("/health/services").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["status"], "ok", "{body}");
    let checks = body["services"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["database", "storage", "temporal", "smtp"], "{body}");
    for check in checks {
        assert_eq!(check["status"], "up", "{check}");
        assert!(check["latency_ms"].as_u64().unwrap() < 2_000, "{check}");
    }
    let detail = |name: &str| {
        checks.iter().find(|c| c["name"] == name).unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let database = detail("database");
    assert!(
        database.starts_with("SQLite 3.") || database.starts_with("MariaDB 1"),
        "{database}"
    );
    assert!(detail("temporal").starts_with("Temporal 1."), "{body}");
    match &app.bucket {
        Some(bucket) => assert_eq!(detail("storage"), format!("S3 bucket {bucket}")),
        None => assert_eq!(detail("storage"), "local directory"),
    }
    // No secret of any URL is shown.
    let text = body.to_string();
    for (name, value) in &app.vars {
        if name.contains("SECRET") || name.contains("PASSWORD") {
            assert!(!text.contains(value.as_str()), "{name} shown: {text}");
        }
    }
    assert!(!text.contains('@'), "no user part of any URL: {text}");

    assert_eq!(
        get("/health/live").await,
        (StatusCode::OK, serde_json::json!({"status": "alive"}))
    );
    let (code, body) = get("/health/ready").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body, serde_json::json!({"status": "ready", "failing": []}));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_route_and_never_name_a_job_or_a_user() {
    let token_for_prometheus = "metrics-token-for-the-tests";
    let app = TestApp::spawn_with(&[("METRICS_TOKEN", token_for_prometheus)]).await;
    let scrape = |bearer: Option<&str>| {
        let mut request = app.http.get(app.url("/metrics"));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        request.send()
    };
    let refused = scrape(None).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(refused).await, "unauthorized");
    let wrong = scrape(Some("metrics-token-for-the-test")).await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    // The scheme is matched in any case, as HTTP has it; another scheme is no token.
    for (value, expected) in [
        (format!("bearer {token_for_prometheus}"), StatusCode::OK),
        (format!("BEARER  {token_for_prometheus}"), StatusCode::OK),
        (
            format!("Basic {token_for_prometheus}"),
            StatusCode::UNAUTHORIZED,
        ),
        (token_for_prometheus.to_owned(), StatusCode::UNAUTHORIZED),
    ] {
        let answer = app
            .http
            .get(app.url("/metrics"))
            .header("authorization", &value)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), expected, "{value}");
    }

    let token = app.user_token("metered").await;
    let email = app.email("metered");
    let media = tempfile::tempdir().unwrap();
    let video = make_mp4(media.path(), "metered-clip.mp4", 1, true);
    let job_id = app.start_job(&token, &video).await;
    app.wait_for_job(&token, &job_id).await;
    let refused = app
        .upload_bytes(&token, "metered-notes.mp4", b"plain text".repeat(20))
        .await;
    assert_eq!(refused.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let download = app.download(&token, &job_id).await;
    assert_eq!(download.status(), StatusCode::OK);
    download.bytes().await.unwrap();

    let page = scrape(Some(token_for_prometheus)).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = page.text().await.unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    assert!(
        value(
            r#"audiomill_http_requests_total{method="GET",route="/status/{job_id}",status="200"}"#
        ) >= 1.0
    );
    assert!(
        value(r#"audiomill_http_requests_total{method="GET",route="/metrics",status="401"}"#)
            >= 2.0
    );
    assert!(value(r#"audiomill_uploads_refused_total{reason="type"}"#) >= 1.0);
    assert!(value("audiomill_jobs_started_total") >= 1.0);
    assert!(value("audiomill_uploaded_bytes_total") > 0.0);
    assert!(value("audiomill_downloaded_bytes_total") > 0.0);
    // The worker in this process measured its steps.
    for step in [
        "validate_token",
        "fetch_source",
        "transcode",
        "store_mp3",
        "send_email",
    ] {
        let series = format!(
            r#"audiomill_step_duration_seconds_count{{step="{step}",outcome="completed"}}"#
        );
        assert!(value(&series) >= 1.0, "{series}");
    }
    assert!(value("audiomill_jobs_completed_total") >= 1.0);
    assert!(value("audiomill_job_ready_seconds_count") >= 1.0);
    assert!(value("audiomill_transcode_speed_ratio_count") >= 1.0);
    assert!(value("audiomill_job_wait_seconds_count") >= 1.0);
    assert!(text.contains("audiomill_jobs_held "), "{text}");
    assert!(text.contains("audiomill_jobs_waiting_for_room "), "{text}");
    assert!(
        text.contains(r#"audiomill_http_request_duration_seconds_bucket{method="POST",route="/upload",le="0.5"}"#),
        "{text}"
    );
    // Nothing that names a job, a user or a file, whatever other tests in this process did.
    for private in [
        job_id.as_str(),
        email.as_str(),
        "metered-clip",
        "metered-notes",
    ] {
        assert!(!text.contains(private), "{private} is in the metrics");
    }
    assert!(!text.contains('@'), "an e-mail address is in the metrics");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_serves_metrics_and_health_on_metrics_listen() {
    let mut test = TestApp::without_app(&[("METRICS_TOKEN", "worker-metrics-token")]).await;
    test.worker.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let roles = audiomill::Roles {
        gateway: None,
        worker: Some(test.worker.clone()),
    };
    let mut worker = audiomill::Running::start(&test.config, roles)
        .await
        .expect("the worker starts");
    let base = format!("http://{}", worker.worker_pages_address().unwrap());
    let get = |path: &str, bearer: Option<&str>| {
        let mut request = test.http.get(format!("{base}{path}"));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        async move { request.send().await.unwrap() }
    };
    let live = get("/health/live", None).await;
    assert_eq!(live.status(), StatusCode::OK);
    let ready = get("/health/ready", None).await;
    assert_eq!(ready.status(), StatusCode::OK);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ready", "failing": []}));
    assert_eq!(
        get("/metrics", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let metrics = get("/metrics", Some("worker-metrics-token")).await;
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    // The Temporal SDK's own worker metrics are on the same page, with its labels only.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let page = get("/metrics", Some("worker-metrics-token"))
            .await
            .text()
            .await
            .unwrap();
        let slots: Vec<&str> = page
            .lines()
            .filter(|line| line.starts_with("temporal_worker_task_slots_available{"))
            .collect();
        if slots
            .iter()
            .any(|line| line.contains("task_queue=\"audiomill-fetch\""))
        {
            assert!(page.contains("temporal_num_pollers{"), "{page}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no SDK metrics: {page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }

    // Its pages are read-only, and say so in the API's error shape.
    let post = test
        .http
        .post(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    assert_eq!(error_code(post).await, "method_not_allowed");
    let missing = get("/nowhere", None).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(missing).await, "not_found");

    // A worker that no longer polls is not ready, though its pages still answer.
    worker.stop_worker().await.expect("the worker stops");
    let ready = get("/health/ready", None).await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["failing"], serde_json::json!(["temporal"]), "{body}");
    worker.stop().await.expect("the pages stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_docs_and_spec_are_served() {
    let app = TestApp::spawn().await;
    let health: serde_json::Value = json_of(app.http.get(app.url("/health"))).await;
    assert_eq!(health["status"], "ok", "{health}");
    for service in ["database", "storage", "temporal", "smtp"] {
        assert_eq!(health["services"][service], "connected", "{health}");
    }
    let docs = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger"));
    let served: serde_json::Value = json_of(app.http.get(app.url("/swagger.json"))).await;
    let generated: serde_json::Value =
        serde_json::from_str(&audiomill_api::openapi_json()).unwrap();
    assert_eq!(served, generated);
    let unknown = app.http.get(app.url("/nothing-here")).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(unknown).await, "not_found");
    app.stop().await;
}

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .expect("openapi/openapi.json is committed");
    let generated = audiomill_api::openapi_json();
    assert!(
        committed.trim() == generated.trim(),
        "openapi/openapi.json is stale: run `make openapi` and commit the result"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_attempts_and_requests_are_rate_limited_with_429() {
    let app = TestApp::spawn_with(&[
        ("LOGIN_ATTEMPTS_PER_MINUTE", "3"),
        ("RATE_LIMIT_PER_MINUTE", "5"),
    ])
    .await;
    let ann = app.add_user("ann", false).await;
    let bob = app.add_user("bob", false).await;

    for _ in 0..3 {
        assert_eq!(
            app.login_response(&ann, "wrong").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let limited = app.login_response(&ann, PASSWORD).await;
    assert_eq!(
        limited.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    assert_eq!(limited.headers()["x-ratelimit-limit"], "3");
    assert_eq!(limited.headers()["x-ratelimit-remaining"], "0");
    assert!(limited.headers().contains_key("x-ratelimit-reset"));
    assert_eq!(error_code(limited).await, "too_many_requests");

    // Another account from the same address is not blocked by ann's limit.
    let pair = app.login(&bob).await;
    let token = pair["access_token"].as_str().unwrap();
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(
            app.http
                .post(app.url("/validate"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status(),
        );
    }
    assert!(codes[..5].iter().all(|c| *c == StatusCode::OK), "{codes:?}");
    assert_eq!(codes[5], StatusCode::TOO_MANY_REQUESTS, "{codes:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_every_gateway_counts_against_the_same_limits() {
    let redis = std::env::var("TEST_REDIS_URL").expect("TEST_REDIS_URL: run through `make test`");
    let app = TestApp::spawn_with(&[
        ("REDIS_URL", redis.as_str()),
        ("RATE_LIMIT_PER_MINUTE", "6"),
    ])
    .await;
    // A second gateway (and worker) on the same backends and Redis, as a replica would be.
    let replica = audiomill::Running::start(&app.config, app.roles())
        .await
        .expect("the replica starts");
    let gateways = [app.base.clone(), replica.base_url()];
    let services: serde_json::Value = json_of(app.http.get(app.url("/health/services"))).await;
    let redis_check = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "redis")
        .cloned()
        .unwrap_or_else(|| panic!("Redis is not checked: {services}"));
    assert_eq!(redis_check["status"], "up", "{redis_check}");
    assert!(
        redis_check["detail"]
            .as_str()
            .unwrap()
            .starts_with("Redis "),
        "{redis_check}"
    );
    let minute = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 60
    };
    // Counts are kept per one-minute window: a round that straddles two windows proves
    // nothing, so it is played again by a fresh user.
    let mut round = 0;
    let codes = loop {
        round += 1;
        let started_in = minute();
        let token = app.user_token(&format!("ann{round}")).await;
        let mut codes = Vec::new();
        for n in 0..7 {
            let response = app
                .http
                .post(format!("{}/validate", gateways[n % 2]))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            codes.push(response.status());
            if response.status() == StatusCode::TOO_MANY_REQUESTS {
                assert_eq!(response.headers()["x-ratelimit-limit"], "6");
                assert!(response.headers().contains_key("retry-after"));
            }
        }
        if minute() == started_in || round == 3 {
            break codes;
        }
    };
    // Each gateway saw only three or four requests; together they are over the limit of six.
    assert!(codes[..6].iter().all(|c| *c == StatusCode::OK), "{codes:?}");
    assert_eq!(codes[6], StatusCode::TOO_MANY_REQUESTS, "{codes:?}");
    replica.stop().await.expect("the replica stops");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_json_is_refused_and_cors_admits_only_configured_origins() {
    let app = TestApp::spawn_with(&[("CORS_ALLOWED_ORIGINS", "https://app.example.com")]).await;
    let huge = json!({ "refresh_token": "x".repeat(100 * 1024) });
    let response = app
        .http
        .post(app.url("/token/refresh"))
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(response).await, "payload_too_large");

    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/upload"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let other = preflight("https://evil.example.net").await.unwrap();
    assert!(
        !other.headers().contains_key("access-control-allow-origin"),
        "{:?}",
        other.headers()
    );
    // A browser's tus client may send its headers and read the answer's.
    let tus = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/uploads/x"))
        .header("Origin", "https://app.example.com")
        .header("Access-Control-Request-Method", "PATCH")
        .header(
            "Access-Control-Request-Headers",
            "tus-resumable, upload-offset",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        tus.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let token = app.user_token("ann").await;
    let created = app
        .http
        .post(app.url("/uploads"))
        .bearer_auth(&token)
        .header("Origin", "https://app.example.com")
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "100")
        .header("Upload-Metadata", "filename dGFsay5tcDQ=")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let exposed = created.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for header in [
        "location",
        "upload-offset",
        "audiomill-job-id",
        "tus-resumable",
    ] {
        assert!(exposed.contains(header), "{header} in {exposed}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cors_origins_no_browser_origin_is_admitted() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .get(app.url("/health"))
        .header("Origin", "https://evil.example.net")
        .send()
        .await
        .unwrap();
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin"),
        "{:?}",
        response.headers()
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_may_have_only_a_few_uploads_in_progress() {
    let app = TestApp::spawn_with(&[("MAX_CONCURRENT_UPLOADS", "2")]).await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let video = std::fs::read(make_mp4(media.path(), "ok.mp4", 1, true)).unwrap();

    // Two uploads that send their first bytes and then stall.
    let stall = |n: usize| {
        let (sender, receiver) =
            futures::channel::mpsc::unbounded::<Result<Vec<u8>, std::io::Error>>();
        sender.unbounded_send(Ok(video[..1024].to_vec())).unwrap();
        let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(receiver))
            .file_name(format!("slow{n}.mp4"));
        let request = app
            .http
            .post(app.url("/upload"))
            .bearer_auth(&token)
            .multipart(reqwest::multipart::Form::new().part("file", part));
        (sender, tokio::spawn(request.send()))
    };
    let (mut senders, mut stalled): (Vec<_>, Vec<_>) = (0..2).map(stall).unzip();

    // A third is refused while they hold their slots (a text body shows 415 until then).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let third = app
            .upload_bytes(
                &token,
                "notes.mp4",
                b"not a video, just words".repeat(4).to_vec(),
            )
            .await;
        if third.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(error_code(third).await, "too_many_requests");
            break;
        }
        assert_eq!(third.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(
            std::time::Instant::now() < deadline,
            "the stalled uploads never held their slots"
        );
        // A probe that came in before a stalled upload took that one's slot (the slot is
        // taken before the body is read), and the stalled upload was refused: start it again.
        for n in 0..stalled.len() {
            if stalled[n].is_finished() {
                let status = (&mut stalled[n]).await.unwrap().unwrap().status();
                assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
                (senders[n], stalled[n]) = stall(n);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Another user is not affected.
    let bob = app.user_token("bob").await;
    let theirs = app
        .upload_bytes(
            &bob,
            "notes.mp4",
            b"not a video, just words".repeat(4).to_vec(),
        )
        .await;
    assert_eq!(theirs.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Once the stalled uploads end, the slots are free again.
    for sender in &senders {
        sender.unbounded_send(Ok(video[1024..].to_vec())).unwrap();
    }
    drop(senders);
    for upload in stalled {
        assert_eq!(
            upload.await.unwrap().unwrap().status(),
            StatusCode::ACCEPTED
        );
    }
    let after = app
        .upload_bytes(
            &token,
            "notes.mp4",
            b"not a video, just words".repeat(4).to_vec(),
        )
        .await;
    assert_eq!(after.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_file_names_and_malformed_forms_are_handled() {
    // The uploaded videos are counted below: kept past their jobs' ending.
    let app = TestApp::spawn_with(&[("RETENTION_SOURCE_HOURS", "1")]).await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let video = std::fs::read(make_mp4(media.path(), "ok.mp4", 1, true)).unwrap();

    let long = format!("{}.mp4", "long".repeat(300));
    for (sent, kept) in [
        ("../../etc/passwd.mp4", "passwd.mp4".to_owned()),
        ("C:\\Users\\ann\\clip.mp4", "clip.mp4".to_owned()),
        ("we\"ird 'quotes'.mp4", "we\"ird 'quotes'.mp4".to_owned()),
        ("Überraschung 日本.mp4", "Überraschung 日本.mp4".to_owned()),
        (long.as_str(), format!("{}.mp4", &"long".repeat(300)[..251])),
    ] {
        let response = app.upload_bytes(&token, sent, video.clone()).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{sent}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["filename"], kept.as_str(), "{sent}");
    }
    // A NUL byte in the part's headers (reqwest will not put one there itself, so the form is
    // built by hand) makes the form malformed: refused, nothing stored.
    let boundary = "nul-in-the-name";
    let mut form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"evil\0name.mp4\"\r\nContent-Type: video/mp4\r\n\r\n"
    )
    .into_bytes();
    form.extend_from_slice(&video);
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let nul = app
        .http
        .post(app.url("/upload"))
        .bearer_auth(&token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(nul.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(nul).await, "bad_request");
    let sources = app
        .objects()
        .iter()
        .filter(|key| key.starts_with("sources/"))
        .count();
    assert_eq!(
        sources,
        5,
        "one source per accepted upload: {:?}",
        app.objects()
    );

    // Storage keys never come from the name: each is a job's id under its own folder (a job may
    // have converted already, so its MP3 may be there too).
    assert!(
        app.objects().iter().all(|key| named_by_a_job(key)),
        "{:?}",
        app.objects()
    );

    let garbage = app
        .http
        .post(app.url("/upload"))
        .bearer_auth(&token)
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\nthis is not a part header\r\n\r\nbroken")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(garbage).await, "bad_request");
    let no_boundary = app
        .http
        .post(app.url("/upload"))
        .bearer_auth(&token)
        .header("content-type", "multipart/form-data")
        .body("whatever")
        .send()
        .await
        .unwrap();
    assert_eq!(no_boundary.status(), StatusCode::BAD_REQUEST);
    app.stop().await;
}

/// Whether a storage key is `sources/<job id>.mp4` or `mp3/<job id>.mp3`, nothing a caller named.
fn named_by_a_job(key: &str) -> bool {
    let named = |folder: &str, extension: &str| {
        key.strip_prefix(folder)
            .and_then(|rest| rest.strip_suffix(extension))
            .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok())
    };
    named("sources/", ".mp4") || named("mp3/", ".mp3")
}

/// The gateway's `host:port`.
fn address(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_owned()
}

/// Reads what the server sends until it closes the connection, writing `drip` one byte a
/// second meanwhile (so an idle timeout alone would never fire). Returns what was read and
/// when the connection closed, counted from `started`.
async fn read_while_dripping(
    stream: &mut tokio::net::TcpStream,
    started: std::time::Instant,
) -> (String, std::time::Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(90),
            "still connected: {}",
            String::from_utf8_lossy(&received)
        );
        tokio::select! {
            read = stream.read(&mut buffer) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            },
            _ = tick.tick() => {
                let _ = stream.write_all(b"a").await;
            }
        }
    }
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_headers_json_and_uploads() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn().await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let video = std::fs::read(make_mp4(media.path(), "slow.mp4", 1, true)).unwrap();

    let headers = async {
        let mut stream = tokio::net::TcpStream::connect(address(&app)).await.unwrap();
        let started = std::time::Instant::now();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: audiomill\r\nX-Slow: ")
            .await
            .unwrap();
        let (_, closed_after) = read_while_dripping(&mut stream, started).await;
        let window = std::time::Duration::from_secs(9)..std::time::Duration::from_secs(20);
        assert!(
            window.contains(&closed_after),
            "closed after {closed_after:?}"
        );
    };
    let json = async {
        let mut stream = tokio::net::TcpStream::connect(address(&app)).await.unwrap();
        let started = std::time::Instant::now();
        let head = "POST /token/refresh HTTP/1.1\r\nHost: audiomill\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"refresh_token\": \"";
        stream.write_all(head.as_bytes()).await.unwrap();
        let (answer, _) = read_while_dripping(&mut stream, started).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("request_timeout"), "{answer}");
    };
    let upload = async {
        let mut stream = tokio::net::TcpStream::connect(address(&app)).await.unwrap();
        let started = std::time::Instant::now();
        let boundary = "slow-upload";
        let mut head = format!(
            "POST /upload HTTP/1.1\r\nHost: audiomill\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 10000000\r\n\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.mp4\"\r\n\
             Content-Type: video/mp4\r\n\r\n"
        )
        .into_bytes();
        head.extend_from_slice(&video[..1024.min(video.len())]);
        stream.write_all(&head).await.unwrap();
        let (answer, closed_after) = read_while_dripping(&mut stream, started).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("request_timeout"), "{answer}");
        assert!(
            closed_after >= std::time::Duration::from_secs(29),
            "cut off after {closed_after:?}, before the grace period"
        );
    };
    tokio::join!(headers, json, upload);
    assert!(app.objects().is_empty(), "{:?}", app.objects());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_limits_hold_for_every_spelling_and_never_lock_the_owner_out() {
    let app = TestApp::spawn_with(&[("LOGIN_ATTEMPTS_PER_MINUTE", "3")]).await;
    let ann = app.add_user("ann", false).await;
    // The attacker connects from another loopback address than the owner.
    let attacker = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .build()
        .unwrap();
    let attempt = |client: &reqwest::Client, name: String, password: &'static str| {
        client
            .post(app.url("/login"))
            .basic_auth(name, Some(password))
            .send()
    };
    let spellings = [
        ann.clone(),
        format!(" {} ", ann.to_uppercase()),
        format!("\t{ann}"),
    ];
    for name in &spellings {
        let response = attempt(&attacker, name.clone(), "wrong").await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name:?}");
    }
    let fourth = attempt(&attacker, format!("{}  ", ann.to_uppercase()), "wrong")
        .await
        .unwrap();
    assert_eq!(
        fourth.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "another spelling buys no fresh attempts"
    );
    // The owner, from their own address, is not locked out.
    let owner = app.login_response(&ann, PASSWORD).await;
    assert_eq!(owner.status(), StatusCode::OK);

    // Names longer than any e-mail address are refused before anything is counted.
    let long = format!("{}@example.test", "a".repeat(300));
    let response = attempt(&attacker, long, "wrong").await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(error_code(response).await == "bad_request");
    app.stop().await;
}

/// Where unfinished uploads live: partial files of the file store, or the S3 server's
/// multipart uploads in progress (s3s-fs keeps each as `.upload-<id>.json` in its root).
fn unfinished_uploads(app: &TestApp) -> Vec<String> {
    let (dir, prefix) = match &app.bucket {
        None => (app.data.path().join("objects").join(".partial"), ""),
        Some(_) => (
            std::path::PathBuf::from(std::env::var("TEST_S3_ROOT").unwrap()),
            ".upload-",
        ),
    };
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_off_midway_leaves_nothing_unfinished_behind() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ann").await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let earlier = unfinished_uploads(&app);
    let mut head = format!(
        "POST /upload HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: 50000000\r\n\r\n"
    )
    .into_bytes();
    head.extend_from_slice(
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mkv\"\r\n\r\n\x1A\x45\xDF\xA3\x01\0\0\0\0\0\0\x1f",
    );
    // More than one S3 part, so that a multipart upload is under way.
    head.extend(std::iter::repeat_n(0u8, 12 * 1024 * 1024));
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stream, &head)
        .await
        .unwrap();
    let ours = |now: Vec<String>| -> Vec<String> {
        now.into_iter().filter(|n| !earlier.contains(n)).collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let begun = loop {
        let begun = ours(unfinished_uploads(&app));
        if !begun.is_empty() {
            break begun;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never began"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    // The client vanishes in the middle of its file.
    drop(stream);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let now = unfinished_uploads(&app);
        let left: Vec<&String> = begun.iter().filter(|b| now.contains(b)).collect();
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left unfinished: {left:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(app.objects().is_empty(), "{:?}", app.objects());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeclared_method_gets_405_naming_the_allowed_ones() {
    let app = TestApp::spawn().await;
    let job = uuid::Uuid::now_v7().to_string();
    for (method, path, allowed) in [
        (Method::PUT, "/upload".to_owned(), "POST"),
        (Method::DELETE, format!("/status/{job}"), "GET, HEAD"),
        (Method::POST, "/health".to_owned(), "GET, HEAD"),
        (Method::GET, format!("/jobs/{job}"), "DELETE"),
        (Method::DELETE, format!("/jobs/{job}/cancel"), "POST"),
        (Method::PATCH, "/metrics".to_owned(), "GET, HEAD"),
    ] {
        let answer = app
            .http
            .request(method.clone(), app.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            answer.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(answer.headers()["allow"], allowed, "{method} {path}");
        assert_eq!(error_code(answer).await, "method_not_allowed");
    }
    // What Allow promises holds: HEAD answers where GET does.
    let head = app.http.head(app.url("/health")).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    app.stop().await;
}
