//! Users' own buckets end to end: a connection saved over HTTP (its secret never shown), a
//! second S3 server on loopback as the user's storage (s3s-fs, which checks signatures), a
//! job that reads its video from there and writes its MP3 back, another that writes to a
//! presigned PUT URL, and the ways they fail: wrong keys, a bucket that disappears mid-job,
//! addresses that may not be reached.

use crate::common::{self, Spawned, TestApp, free_port, is_mp3, make_mp4, required};
use crate::imports::ended;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;

pub(crate) const KEY: &str = "user-key";
pub(crate) const SECRET: &str = "user-secret-key";

/// The user's own S3 server, with its root folder (a folder per bucket); its endpoint.
pub(crate) fn user_storage(root: &Path) -> (Spawned, String) {
    let port = free_port();
    let server = Spawned::start(
        &required("TEST_S3FS_BIN"),
        &[
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--access-key",
            KEY,
            "--secret-key",
            SECRET,
            root.to_str().unwrap(),
        ],
        &root.with_extension("log"),
    );
    (server, format!("http://127.0.0.1:{port}"))
}

async fn post(app: &TestApp, token: &str, path: &str, body: &Value) -> (StatusCode, Value) {
    let response = app
        .http
        .post(app.url(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Saves a connection to `bucket` at `endpoint`; its id.
async fn connect(app: &TestApp, token: &str, endpoint: &str, bucket: &str, secret: &str) -> String {
    let body = json!({
        "name": "my storage", "endpoint": endpoint, "bucket": bucket, "prefix": "in",
        "access_key_id": KEY, "secret_access_key": secret,
    });
    let (status, saved) = post(app, token, "/connections", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{saved}");
    assert!(!saved.to_string().contains(secret), "{saved}");
    assert_eq!(saved["prefix"], "in/");
    saved["id"].as_str().unwrap().to_owned()
}

const SETTINGS: [(&str, &str); 3] = [
    ("IMPORT_ALLOW_PRIVATE", "true"),
    ("IMPORT_TIMEOUT_SECONDS", "2"),
    (
        "CONNECTION_SECRET_KEY",
        "a connection key that is long enough for tests",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_reads_its_video_from_the_users_bucket_and_writes_its_mp3_back() {
    let app = TestApp::spawn_with(&SETTINGS).await;
    let token = app.user_token("uma").await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("storage");
    std::fs::create_dir_all(root.join("videos/in")).unwrap();
    make_mp4(&root.join("videos/in"), "talk.mp4", 2, true);
    let (_server, endpoint) = user_storage(&root);
    let connection = connect(&app, &token, &endpoint, "videos", SECRET).await;
    let (_, listed) = app.get_json(&token, "/connections").await;
    assert_eq!(listed["connections"][0]["id"], connection.as_str());
    assert!(!listed.to_string().contains(SECRET));

    let body = json!({
        "from": { "connection_id": connection, "keys": ["talk.mp4"] },
        "export_to": connection, "export_key": "mp3/{stem}-{job_id}.mp3",
        "options": { "preset": "voice" },
    });
    let (status, accepted) = post(&app, &token, "/imports", &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["filename"], "talk.mp4");
    let job = accepted["job_id"].as_str().unwrap().to_owned();
    let end = ended(&app, &token, &job).await;
    assert_eq!(end["status"], "completed", "{end}");
    let steps = app.activities_run(&job).await;
    for step in ["import_source", "export_mp3", "store_mp3"] {
        assert!(steps.iter().any(|s| s == step), "{step}: {steps:?}");
    }
    let written = root.join(format!("videos/in/mp3/talk-{job}.mp3"));
    assert!(is_mp3(&written), "{} is an MP3", written.display());
    // Audiomill keeps its own copy too.
    let ours = app.download(&token, &job).await.bytes().await.unwrap();
    assert_eq!(ours.as_ref(), std::fs::read(&written).unwrap().as_slice());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_a_vanished_bucket_and_a_deleted_connection_each_fail_the_job_in_a_sentence() {
    let app = TestApp::spawn_with(&SETTINGS).await;
    let token = app.user_token("val").await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("storage");
    for bucket in ["videos/in", "vanishing/in"] {
        std::fs::create_dir_all(root.join(bucket)).unwrap();
    }
    make_mp4(&root.join("videos/in"), "talk.mp4", 1, true);
    let (server, endpoint) = user_storage(&root);
    let wrong = connect(&app, &token, &endpoint, "videos", "not-the-secret").await;
    let import =
        |connection: &str| json!({ "from": { "connection_id": connection, "keys": ["talk.mp4"] } });
    let (_, accepted) = post(&app, &token, "/imports", &import(&wrong)).await;
    let end = ended(&app, &token, accepted["job_id"].as_str().unwrap()).await;
    assert_eq!(end["failure_type"], "ImportRefused", "{end}");
    assert!(
        end["error"]
            .as_str()
            .unwrap()
            .contains("refused the connection's keys"),
        "{end}"
    );

    let good = connect(&app, &token, &endpoint, "videos", SECRET).await;
    let (_, missing) = post(
        &app,
        &token,
        "/imports",
        &json!({ "from": { "connection_id": good, "keys": ["absent.mp4"] } }),
    )
    .await;
    let end = ended(&app, &token, missing["job_id"].as_str().unwrap()).await;
    assert_eq!(
        end["error"], "The bucket videos has no object in/absent.mp4.",
        "{end}"
    );

    // A connection deleted after its job was asked for.
    let (_, later) = post(&app, &token, "/imports", &import(&good)).await;
    let removed = app
        .send_as(
            &token,
            reqwest::Method::DELETE,
            &format!("/connections/{good}"),
        )
        .await;
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let end = ended(&app, &token, later["job_id"].as_str().unwrap()).await;
    // The fetch may have begun before the deletion; if not, it says why it could not.
    if end["status"] == "failed" {
        assert_eq!(
            end["error"],
            "The connection was deleted before the job could use it."
        );
    }
    // The storage the MP3 goes to disappears while the video converts: the export is tried
    // again, then fails the job.
    let vanishing = connect(&app, &token, &endpoint, "vanishing", SECRET).await;
    let video = make_mp4(dir.path(), "clip.mp4", 3, true);
    let form = common::upload_form(&[&video], &[("export_to", &vanishing)]);
    let (status, accepted) = app.post_upload(&token, form, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    drop(server);
    let vanished = accepted["job_id"].as_str().unwrap().to_owned();
    let end = ended(&app, &token, &vanished).await;
    assert_eq!(end["status"], "failed", "{end}");
    assert_eq!(end["step"], "export_mp3", "{end}");
    assert_eq!(end["failure_type"], "ExportUnreachable", "{end}");
    assert_eq!(end["error"], "127.0.0.1 could not be reached.", "{end}");
    assert_eq!(
        end["mp3_bytes"],
        Value::Null,
        "no MP3 kept for a job that failed"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mp3_goes_to_a_presigned_put_url_and_private_addresses_are_refused_unless_allowed() {
    let app = TestApp::spawn_with(&SETTINGS).await;
    let token = app.user_token("wes").await;
    let dir = tempfile::tempdir().unwrap();
    let video = make_mp4(dir.path(), "talk.mp4", 2, true);
    let (base, seen) = crate::imports::source_server(Vec::new()).await;
    let put = format!("{base}/put/talk.mp3?X-Amz-Signature=secret-signature");
    let form = common::upload_form(&[&video], &[("export_url", &put)]);
    let (status, accepted) = app.post_upload(&token, form, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let job = accepted["job_id"].as_str().unwrap().to_owned();
    assert_eq!(ended(&app, &token, &job).await["status"], "completed");
    let ours = app.download(&token, &job).await.bytes().await.unwrap();
    {
        let seen = seen.lock().unwrap();
        let (kind, body) = seen.put.get("talk.mp3").expect("the MP3 was PUT");
        assert_eq!(kind, "audio/mpeg");
        assert_eq!(body.as_slice(), ours.as_ref());
    }
    // One upload link takes one MP3.
    let two = common::upload_form(&[&video, &video], &[("export_url", &put)]);
    let (status, refused) = app.post_upload(&token, two, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["field"], "export_url");
    app.stop().await;

    let strict = TestApp::spawn_with(&[SETTINGS[2]]).await;
    let token = strict.user_token("xia").await;
    for endpoint in [
        "http://127.0.0.1:9000",
        "http://169.254.169.254",
        "http://[::1]:9000",
        "http://localhost:9000",
    ] {
        let body = json!({ "name": "n", "endpoint": endpoint, "bucket": "videos",
            "access_key_id": KEY, "secret_access_key": SECRET });
        let (status, answer) = post(&strict, &token, "/connections", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{endpoint}: {answer}");
        assert_eq!(answer["field"], "endpoint", "{answer}");
    }
    for (field, value) in [
        ("export_url", "http://10.0.0.7/put/x.mp3"),
        ("export_to", "not-an-id"),
        ("export_key", "{stem}.mp3"),
    ] {
        let form = common::upload_form(&[&video], &[(field, value)]);
        let (status, answer) = strict.post_upload(&token, form, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {answer}");
        assert_eq!(answer["field"], field, "{answer}");
    }
    let (_, listing) = strict.get_json(&token, "/jobs").await;
    assert_eq!(
        listing["jobs"].as_array().map(Vec::len),
        Some(0),
        "nothing refused started"
    );
    strict.stop().await;
}
