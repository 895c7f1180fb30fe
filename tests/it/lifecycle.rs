//! What jobs leave behind, over time and per user: retention (each job's `expires_at`, the
//! scheduled `CleanExpired` workflow judged at a moved clock, 410 Gone after), quotas (jobs per
//! day and bytes stored, refused before anything is kept, with their headers, exact under
//! uploads at once), `DELETE /me/jobs`, and an admin turning an account off.

use crate::common;

use audiomill_domain::contract::{CLEANUP_SCHEDULE_ID, CLEANUP_WORKFLOW_TYPE, CleanupReport};
use common::{PASSWORD, TestApp, error_code, make_long_video, make_mp4, run};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::{path::Path, time::Duration};

const HOUR_MS: i64 = 60 * 60 * 1000;

fn millis(rfc3339: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339.as_str().expect("a time"))
        .expect("RFC 3339")
        .timestamp_millis()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn json_call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let response = app
        .http
        .request(method, app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn me(app: &TestApp, token: &str) -> Value {
    let response = app.send_as(token, Method::GET, "/me").await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// A completed job: uploaded, converted, and its run closed.
async fn finished_job(app: &TestApp, token: &str, video: &Path) -> String {
    let job = app.start_job(token, video).await;
    app.wait_for_job(token, &job).await;
    app.wait_for_workflow_closed(&job).await;
    job
}

fn header(response: &reqwest::Response, name: &str) -> Option<u64> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cleanup_removes_what_expired_and_nothing_else() {
    let app = TestApp::spawn_with(&[
        ("RETENTION_HOURS", "2"),
        ("RETENTION_SOURCE_HOURS", "1"),
        ("CLEANUP_INTERVAL_MINUTES", "5"),
    ])
    .await;

    // A worker made the Schedule that starts the cleanup, every CLEANUP_INTERVAL_MINUTES.
    let temporal = app.temporal().await;
    let schedule = temporal.get_schedule_handle(CLEANUP_SCHEDULE_ID);
    let described = schedule.describe(Default::default()).await.unwrap();
    let temporalio_client::schedules::ScheduleDescriptionAction::StartWorkflow(action) =
        described.action()
    else {
        panic!("the cleanup schedule starts a workflow");
    };
    assert_eq!(action.workflow_type(), CLEANUP_WORKFLOW_TYPE);
    let times = described.future_action_times();
    assert!(times.len() >= 2, "{times:?}");
    assert_eq!(
        times[1].duration_since(times[0]).unwrap(),
        Duration::from_secs(5 * 60)
    );

    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let video = make_mp4(media.path(), "talk.mp4", 2, true);
    let first = finished_job(&app, &token, &video).await;
    // Times are shown to the second: the second job ends over a second after the first, so
    // that a clock between their expiry times exists.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = finished_job(&app, &token, &video).await;

    // Each job shows when it expires: RETENTION_HOURS after it ended.
    let (_, first_status) = app.status(&token, &first).await;
    let (_, second_status) = app.status(&token, &second).await;
    let first_expiry = millis(&first_status["expires_at"]);
    let second_expiry = millis(&second_status["expires_at"]);
    assert_eq!(
        first_expiry - millis(&first_status["completed_at"]),
        2 * HOUR_MS,
        "{first_status}"
    );
    assert!(first_expiry < second_expiry);
    assert_eq!(first_status["expired"], false);
    let mut everything = vec![
        format!("mp3/{first}.mp3"),
        format!("mp3/{second}.mp3"),
        format!("sources/{first}.mp4"),
        format!("sources/{second}.mp4"),
    ];
    everything.sort();
    let objects = || {
        let mut objects = app.objects();
        objects.sort();
        objects
    };
    assert_eq!(objects(), everything, "the videos are kept for an hour");

    // The Schedule's run, started now: nothing has expired yet, so nothing goes.
    schedule
        .trigger(Default::default(), Default::default())
        .await
        .unwrap();
    let run = loop {
        let described = schedule.describe(Default::default()).await.unwrap();
        if let Some(run) = described.recent_actions().into_iter().next() {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let report = temporal
        .get_workflow_handle::<audiomill_workflows::CleanExpired>(run.workflow_id)
        .get_result(Default::default())
        .await
        .unwrap();
    assert_eq!(report, CleanupReport::default());
    assert_eq!(objects(), everything);

    // An hour and a half on: the videos are past their hour, the MP3s not past their two.
    let report = app.clean_expired(now_ms() + 90 * 60 * 1000).await;
    assert_eq!((report.sources_removed, report.jobs_expired), (2, 0));
    assert_eq!(report.objects_removed, 2);
    assert_eq!(objects(), everything[..2]);
    assert_eq!(app.download(&token, &first).await.status(), StatusCode::OK);

    // At the first job's expiry (the shown second's end), before the second's: the first job
    // goes, alone.
    let first_expiry = first_expiry + 999;
    let report = app.clean_expired(first_expiry).await;
    assert_eq!((report.sources_removed, report.jobs_expired), (0, 1));
    assert_eq!(report.objects_removed, 1);
    assert_eq!(objects(), [format!("mp3/{second}.mp3")]);
    let gone = app.download(&token, &first).await;
    assert_eq!(gone.status(), StatusCode::GONE);
    let body: Value = gone.json().await.unwrap();
    assert_eq!(body["error"], "gone");
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    let link = app
        .send_as(&token, Method::GET, &format!("/jobs/{first}/link"))
        .await;
    assert_eq!(link.status(), StatusCode::GONE);
    let (code, status) = app.status(&token, &first).await;
    assert_eq!(code, StatusCode::OK, "the job's record stays");
    assert_eq!(status["expired"], true);
    assert!(status["download"].is_null(), "{status}");
    assert_eq!(app.download(&token, &second).await.status(), StatusCode::OK);

    // Run again at the same time: there is nothing more to do.
    assert_eq!(
        app.clean_expired(first_expiry).await,
        CleanupReport::default()
    );
    // What the first job kept counts in its owner's storage no more.
    let quota = &me(&app, &token).await["quota"];
    let second_size = app
        .download(&token, &second)
        .await
        .bytes()
        .await
        .unwrap()
        .len();
    assert_eq!(quota["storage_used_bytes"], second_size as u64, "{quota}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_a_video_goes_as_soon_as_its_job_ends() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let job = finished_job(&app, &token, &make_mp4(media.path(), "talk.mp4", 2, true)).await;
    assert_eq!(app.objects(), [format!("mp3/{job}.mp3")]);
    let (_, status) = app.status(&token, &job).await;
    let expiry = millis(&status["expires_at"]) - millis(&status["completed_at"]);
    assert_eq!(expiry, 7 * 24 * HOUR_MS, "seven days by default");

    // A job that fails keeps nothing either.
    let broken = media.path().join("broken.mp4");
    let mut bytes = std::fs::read(media.path().join("talk.mp4")).unwrap();
    bytes.truncate(bytes.len() / 3);
    std::fs::write(&broken, bytes).unwrap();
    let failed = app.start_job(&token, &broken).await;
    app.wait_for_job(&token, &failed).await;
    app.wait_for_workflow_closed(&failed).await;
    assert_eq!(app.objects(), [format!("mp3/{job}.mp3")]);
    let (_, status) = app.status(&token, &failed).await;
    assert_eq!(status["status"], "failed", "{status}");
    assert!(status["expires_at"].is_string(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_refuse_uploads_before_anything_is_kept() {
    let app = TestApp::spawn_with(&[("QUOTA_JOBS_PER_DAY", "2"), ("QUOTA_STORAGE_MB", "0")]).await;
    let token = app.user_token("ann").await;
    let ann = app.email("ann");
    let media = tempfile::tempdir().unwrap();
    let video = make_mp4(media.path(), "talk.mp4", 1, true);

    let quota = &me(&app, &token).await["quota"];
    assert_eq!(quota["jobs_per_day_limit"], 2, "{quota}");
    assert_eq!(quota["jobs_today"], 0);
    assert!(
        quota["storage_limit_bytes"].is_null(),
        "0 is no limit: {quota}"
    );
    let first = finished_job(&app, &token, &video).await;
    let second = finished_job(&app, &token, &video).await;

    // The third job of the day: 429 with the quota's headers, nothing kept.
    let kept = app.objects();
    let refused = app.upload_file(&token, &video).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "x-quota-jobs-limit"), Some(2));
    assert_eq!(header(&refused, "x-quota-jobs-remaining"), Some(0));
    let retry = header(&refused, "retry-after").unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    assert_eq!(error_code(refused).await, "too_many_requests");
    // A batch and a deleted job change nothing: deleting gives no jobs back.
    assert_eq!(
        app.delete_job(&token, &first).await.status(),
        StatusCode::NO_CONTENT
    );
    let batch = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(&video).unwrap()).file_name("a.mp4"),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(&video).unwrap()).file_name("b.mp4"),
        );
    let refused = app
        .http
        .post(app.url("/upload"))
        .bearer_auth(&token)
        .multipart(batch)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let quota = &me(&app, &token).await["quota"];
    assert_eq!(
        (
            quota["jobs_today"].clone(),
            quota["jobs_remaining_today"].clone()
        ),
        (json!(2), json!(0))
    );
    let mut after = app.objects();
    after.retain(|key| !key.contains(&first));
    let mut before = kept.clone();
    before.retain(|key| !key.contains(&first));
    assert_eq!(after, before, "nothing kept of refused uploads");
    // Another user has their own count.
    let bob = app.user_token("bob").await;
    finished_job(&app, &bob, &video).await;

    // An admin gives ann one more a day; two uploads at once compete for it: one wins.
    run(
        &app.vars,
        &["user", "set-quota", "--email", &ann, "--jobs-per-day", "3"],
    );
    let (a, b) = tokio::join!(
        app.upload_file(&token, &video),
        app.upload_file(&token, &video)
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [202, 429]);
    let winner = if a.status() == StatusCode::ACCEPTED {
        a
    } else {
        b
    };
    let winner: Value = winner.json().await.unwrap();
    let third = winner["job_id"].as_str().unwrap();
    app.wait_for_job(&token, third).await;
    app.wait_for_workflow_closed(third).await;
    assert!(
        app.objects().iter().all(|key| key.starts_with("mp3/")),
        "{:?}",
        app.objects()
    );

    // Storage: a file larger than what is left is refused (413, with its headers), whole.
    run(
        &app.vars,
        &[
            "user",
            "set-quota",
            "--email",
            &ann,
            "--jobs-per-day",
            "0",
            "--storage-mb",
            "1",
        ],
    );
    let quota = &me(&app, &token).await["quota"];
    assert_eq!(quota["storage_limit_bytes"], 1024 * 1024, "{quota}");
    assert!(quota["jobs_per_day_limit"].is_null(), "{quota}");
    let used = quota["storage_used_bytes"].as_u64().unwrap();
    let mp3s: u64 = [&second, third]
        .iter()
        .map(|job| {
            std::fs::metadata(app.data.path().join(format!("objects/mp3/{job}.mp3")))
                .map_or(0, |m| m.len())
        })
        .sum();
    if app.bucket.is_none() {
        assert_eq!(used, mp3s, "ann keeps her two MP3s");
    }
    let kept = app.objects();
    let mut big = std::fs::read(&video).unwrap();
    big.resize(2 * 1024 * 1024, 0);
    let refused = app.upload_bytes(&token, "big.mp4", big).await;
    assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(header(&refused, "x-quota-storage-limit"), Some(1024 * 1024));
    assert_eq!(
        header(&refused, "x-quota-storage-remaining"),
        Some(1024 * 1024 - used)
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "payload_too_large");
    assert!(
        body["message"].as_str().unwrap().contains("quota"),
        "{body}"
    );
    assert_eq!(app.objects(), kept, "nothing kept of the refused upload");
    // Back to the deployment's defaults.
    run(
        &app.vars,
        &[
            "user",
            "set-quota",
            "--email",
            &ann,
            "--jobs-per-day",
            "default",
            "--storage-mb",
            "default",
        ],
    );
    let quota = &me(&app, &token).await["quota"];
    assert_eq!(quota["jobs_per_day_limit"], 2, "{quota}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_my_jobs_cancels_the_running_ones_and_removes_everything() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ann").await;
    let bob = app.user_token("bob").await;
    let media = tempfile::tempdir().unwrap();
    let short = make_mp4(media.path(), "talk.mp4", 1, true);
    let done = finished_job(&app, &token, &short).await;
    let long = app
        .start_job(&token, &make_long_video(media.path(), 1500))
        .await;
    app.wait_for_transcode(&token, &long).await;
    let bobs = finished_job(&app, &bob, &short).await;

    let response = app.send_as(&token, Method::DELETE, "/me/jobs").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({ "removed": 2, "cancelled": 1 }));
    for job in [&done, &long] {
        assert_eq!(app.status(&token, job).await.0, StatusCode::NOT_FOUND);
    }
    let listed = app.send_as(&token, Method::GET, "/jobs").await;
    let listed: Value = listed.json().await.unwrap();
    assert_eq!(listed["jobs"], json!([]));
    // The cancelled run stops, and leaves nothing behind either.
    app.wait_for_workflow_closed(&long).await;
    assert_eq!(app.objects(), [format!("mp3/{bobs}.mp3")]);
    assert_eq!(app.download(&bob, &bobs).await.status(), StatusCode::OK);
    // Again: nothing left to remove.
    let again: Value = app
        .send_as(&token, Method::DELETE, "/me/jobs")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, json!({ "removed": 0, "cancelled": 0 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_account_stops_at_once_and_its_running_jobs_are_cancelled() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ann").await;
    let admin = app.admin_token("root").await;
    let other = app.user_token("bob").await;
    let media = tempfile::tempdir().unwrap();
    let long = app
        .start_job(&token, &make_long_video(media.path(), 1500))
        .await;
    app.wait_for_transcode(&token, &long).await;
    let ann_id = me(&app, &token).await["id"].as_str().unwrap().to_owned();
    let path = format!("/users/{ann_id}");

    // Only admins, never on themselves, only existing users.
    let (status, _) = json_call(
        &app,
        &other,
        Method::PATCH,
        &path,
        json!({ "active": false }),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let root_id = me(&app, &admin).await["id"].as_str().unwrap().to_owned();
    let (status, _) = json_call(
        &app,
        &admin,
        Method::PATCH,
        &format!("/users/{root_id}"),
        json!({ "active": false }),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let missing = "/users/0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    let (status, body) = json_call(
        &app,
        &admin,
        Method::PATCH,
        missing,
        json!({ "active": false }),
    )
    .await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
    let (status, _) = json_call(
        &app,
        &admin,
        Method::PATCH,
        &path,
        json!({ "active": "no" }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = json_call(
        &app,
        &admin,
        Method::PATCH,
        "/users/not-a-user-id",
        json!({ "active": false }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = json_call(
        &app,
        &admin,
        Method::PATCH,
        &path,
        json!({ "active": false, "role": "owner" }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no other field is taken");
    let spelled = |content_type: &'static str, body: &'static str| {
        app.http
            .patch(app.url(&path))
            .bearer_auth(&admin)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let text = spelled("text/plain", r#"{"active": false}"#).await.unwrap();
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let broken = spelled("application/json", r#"{"active": fal"#)
        .await
        .unwrap();
    assert_eq!(broken.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.status(&token, &long).await.0,
        StatusCode::OK,
        "still on"
    );

    // Another spelling of JSON is JSON.
    let response = spelled("application/merge-patch+json", r#"{"active": false}"#)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["active"], false);
    assert_eq!(body["jobs_cancelled"], 1);
    // The token stops working at once, and so does the password.
    assert_eq!(app.status(&token, &long).await.0, StatusCode::UNAUTHORIZED);
    let login = app.login_response(&app.email("ann"), PASSWORD).await;
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);
    app.wait_for_workflow_closed(&long).await;
    let (_, status) = app.status(&admin, &long).await;
    assert_eq!(status["status"], "cancelled", "{status}");

    // Turned on again, the account logs in.
    let (status, body) = json_call(
        &app,
        &admin,
        Method::PATCH,
        &path,
        json!({ "active": true }),
    )
    .await;
    assert_eq!(
        (status, body["active"].clone()),
        (StatusCode::OK, json!(true))
    );
    let login = app.login_response(&app.email("ann"), PASSWORD).await;
    assert_eq!(login.status(), StatusCode::OK);
}
