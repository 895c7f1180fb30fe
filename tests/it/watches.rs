//! Watch folders end to end, against a second S3 server on loopback as the user's bucket:
//! each new video under the folder becomes one job (a video written again, one more), its MP3
//! written back; pausing holds new videos until the watch is resumed; deleting stops it. And
//! 500 videos watched while a worker and the Temporal server are killed mid-scan: each is
//! converted once, counted on the destination and in the e-mails.

use crate::common::{TestApp, make_mp4};
use crate::connections::{KEY, SECRET, user_storage};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::{
    path::Path,
    time::{Duration, Instant},
};

const SETTINGS: [(&str, &str); 2] = [
    ("IMPORT_ALLOW_PRIVATE", "true"),
    (
        "CONNECTION_SECRET_KEY",
        "a connection key that is long enough for tests",
    ),
];

async fn send(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let mut request = app.http.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Saves a connection to bucket `videos` (prefix `in/`) at `endpoint`; its id.
pub(crate) async fn connect(app: &TestApp, token: &str, endpoint: &str) -> String {
    let body = json!({
        "name": "my storage", "endpoint": endpoint, "bucket": "videos", "prefix": "in",
        "access_key_id": KEY, "secret_access_key": SECRET,
    });
    let (status, saved) = send(
        app,
        token,
        reqwest::Method::POST,
        "/connections",
        Some(&body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{saved}");
    saved["id"].as_str().unwrap().to_owned()
}

/// Puts `source` into the folder as `name`, whole at once (as an S3 write is).
fn drop_in(folder: &Path, source: &Path, name: &str) {
    let partial = folder.join(format!(".{name}.part"));
    std::fs::copy(source, &partial).unwrap();
    std::fs::rename(&partial, folder.join(name)).unwrap();
}

/// Pauses or resumes (`act`) the watch, which then stands as `state`.
async fn turn(app: &TestApp, token: &str, watch: &str, act: &str, state: &str) {
    let path = format!("/watches/{watch}/{act}");
    let (status, shown) = send(app, token, reqwest::Method::POST, &path, None).await;
    assert_eq!(
        (status, shown["state"].as_str()),
        (StatusCode::OK, Some(state)),
        "{shown}"
    );
}

/// Waits (`seconds` at most) until the watch has made `jobs` jobs and none still runs.
pub(crate) async fn settled(
    app: &TestApp,
    token: &str,
    watch: &str,
    jobs: u64,
    seconds: u64,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let (status, shown) = app.get_json(token, &format!("/watches/{watch}")).await;
        if status == StatusCode::OK && shown["jobs"] == jobs && shown["running"] == 0 {
            return shown;
        }
        assert!(
            Instant::now() < deadline,
            "the watch did not settle at {jobs} jobs: {status} {shown}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The MP3s in `folder`.
fn mp3s_in(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                .filter(|name| name.ends_with(".mp3"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_converts_each_new_video_once_and_pauses_resumes_and_stops() {
    let app = TestApp::spawn_with(&SETTINGS).await;
    let token = app.user_token("wes").await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("storage");
    let folder = root.join("videos/in/camera");
    std::fs::create_dir_all(&folder).unwrap();
    let short = make_mp4(dir.path(), "short.mp4", 1, true);
    let longer = make_mp4(dir.path(), "longer.mp4", 2, true);
    for name in ["a.mp4", "b.mov"] {
        drop_in(&folder, &short, name);
    }
    std::fs::write(folder.join("notes.txt"), "not a video").unwrap();
    let (_server, endpoint) = user_storage(&root);
    let connection = connect(&app, &token, &endpoint).await;

    let body = json!({
        "name": "camera", "connection_id": connection, "prefix": "camera",
        "options": { "preset": "voice" }, "export_to": connection,
        "export_key": "mp3/{stem}.mp3", "max_running": 1, "interval_seconds": 10,
    });
    let (status, watch) = send(&app, &token, reqwest::Method::POST, "/watches", Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{watch}");
    assert_eq!(watch["state"], "active");
    assert_eq!(watch["prefix"], "camera/");
    assert_eq!(watch["options"]["preset"], "voice");
    let id = watch["id"].as_str().unwrap().to_owned();
    let shown = settled(&app, &token, &id, 2, 90).await;
    assert_eq!(shown["trouble"], Value::Null, "{shown}");
    // The look over the whole folder ends at its next scan, once a job's room is free.
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.get_json(&token, &format!("/watches/{id}")).await.1["scanned_at"].is_null() {
        assert!(Instant::now() < deadline, "the first look never ended");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let written = root.join("videos/in/mp3");
    assert_eq!(mp3s_in(&written), ["a.mp3", "b.mp3"]);
    // Its jobs are the user's, in the history, completed.
    let (_, listed) = app.get_json(&token, "/jobs?limit=10").await;
    let jobs = listed["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "{listed}");
    assert!(
        jobs.iter().all(|job| job["status"] == "completed"),
        "{listed}"
    );

    // A new video and one written again are converted at the next look; the rest never again.
    // Signing out everywhere leaves the watch's own login be.
    drop_in(&folder, &short, "c.webm");
    drop_in(&folder, &longer, "a.mp4");
    let (status, _) = send(&app, &token, reqwest::Method::DELETE, "/me/logins", None).await;
    assert_eq!(status, StatusCode::OK);
    let pair = app.login(&app.email("wes")).await;
    let token = pair["access_token"].as_str().unwrap().to_owned();
    settled(&app, &token, &id, 4, 60).await;
    let (_, listed) = app.get_json(&token, "/jobs?limit=10").await;
    let jobs = listed["jobs"].as_array().unwrap();
    assert!(
        jobs.iter().all(|job| job["status"] == "completed"),
        "{listed}"
    );
    assert_eq!(mp3s_in(&written), ["a.mp3", "b.mp3", "c.mp3"]);

    // Paused: a new video waits; resumed: it is converted.
    turn(&app, &token, &id, "pause", "paused").await;
    // A scan already under way when the pause came ends first.
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop_in(&folder, &short, "d.mkv");
    tokio::time::sleep(Duration::from_secs(13)).await;
    let (_, held) = app.get_json(&token, &format!("/watches/{id}")).await;
    assert_eq!(held["jobs"], 4, "{held}");
    turn(&app, &token, &id, "resume", "active").await;
    settled(&app, &token, &id, 5, 60).await;

    // The connection cannot go while the watch uses it; the watch can, and then it can.
    let connection_path = format!("/connections/{connection}");
    let (status, refusal) = send(
        &app,
        &token,
        reqwest::Method::DELETE,
        &connection_path,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refusal}");
    assert!(
        refusal["message"].as_str().unwrap().contains("camera"),
        "{refusal}"
    );
    let (status, _) = send(
        &app,
        &token,
        reqwest::Method::DELETE,
        &format!("/watches/{id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get_json(&token, &format!("/watches/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop_in(&folder, &short, "e.mp4");
    tokio::time::sleep(Duration::from_secs(12)).await;
    let (_, listed) = app.get_json(&token, "/jobs?limit=10").await;
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 5, "{listed}");
    let (status, _) = send(
        &app,
        &token,
        reqwest::Method::DELETE,
        &connection_path,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_is_refused_what_it_may_not_use_and_is_nobody_elses() {
    let app = TestApp::spawn_with(&SETTINGS).await;
    let token = app.user_token("wil").await;
    let other = app.user_token("otto").await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("storage");
    std::fs::create_dir_all(root.join("videos/in")).unwrap();
    let (_server, endpoint) = user_storage(&root);
    let connection = connect(&app, &token, &endpoint).await;
    let others = connect(&app, &other, &endpoint).await;
    let watch = |changes: Value| {
        let mut body = json!({ "name": "w", "connection_id": connection });
        for (field, value) in changes.as_object().unwrap() {
            body[field] = value.clone();
        }
        body
    };
    for (changes, field) in [
        (json!({ "connection_id": others }), "connection_id"),
        (json!({ "connection_id": "not-an-id" }), "connection_id"),
        (json!({ "prefix": "in\u{1}side" }), "prefix"),
        (json!({ "options": { "bitrate": "9000" } }), "bitrate"),
        (json!({ "options": { "preset": ["voice"] } }), "preset"),
        (json!({ "export_to": others }), "export_to"),
        (json!({ "export_key": "{stem}.mp3" }), "export_key"),
        (json!({ "name": "   " }), "name"),
    ] {
        let body = watch(changes.clone());
        let (status, refusal) =
            send(&app, &token, reqwest::Method::POST, "/watches", Some(&body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{changes}: {refusal}");
        assert_eq!(refusal["field"], field, "{changes}: {refusal}");
    }
    for changes in [
        json!({ "max_running": 0 }),
        json!({ "interval_seconds": 5 }),
        json!({ "max_running": "4" }),
    ] {
        let body = watch(changes.clone());
        let (status, refusal) =
            send(&app, &token, reqwest::Method::POST, "/watches", Some(&body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{changes}: {refusal}");
    }
    let (status, made) = send(
        &app,
        &token,
        reqwest::Method::POST,
        "/watches",
        Some(&watch(json!({}))),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let id = made["id"].as_str().unwrap();
    // Nobody else sees, pauses or deletes it.
    let (status, listed) = app.get_json(&other, "/watches").await;
    assert_eq!(
        (status, listed["watches"].as_array().unwrap().len()),
        (StatusCode::OK, 0)
    );
    for (method, path) in [
        (reqwest::Method::GET, format!("/watches/{id}")),
        (reqwest::Method::POST, format!("/watches/{id}/pause")),
        (reqwest::Method::POST, format!("/watches/{id}/resume")),
        (reqwest::Method::DELETE, format!("/watches/{id}")),
    ] {
        let (status, _) = send(&app, &other, method.clone(), &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
    }
    let (status, _) = app.get_json(&token, "/watches/not-an-id").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, listed) = app.get_json(&token, "/watches").await;
    assert_eq!(listed["watches"][0]["id"], id);
    app.stop().await;
}

/// The promise of a watch under faults: 500 videos in the folder, a watch converting ten at a
/// time on two worker processes; a worker is killed (SIGKILL) and started again while the
/// watch is busy, and so is the Temporal server a little later. Every video is converted
/// once: 500 MP3s on the destination, 500 e-mails, no job failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_of_a_worker_and_temporal_mid_scan_converts_each_of_500_videos_once() {
    const VIDEOS: u64 = 500;
    let mut test = TestApp::without_app_durable(&SETTINGS).await;
    let logs = test.data.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("storage");
    let folder = root.join("videos/in/inbox");
    std::fs::create_dir_all(&folder).unwrap();
    let clip = make_mp4(dir.path(), "clip.mp4", 1, true);
    for n in 0..VIDEOS {
        drop_in(&folder, &clip, &format!("v{n:03}.mp4"));
    }
    let (_storage, endpoint) = user_storage(&root);
    let (email, gateway, mut workers) = crate::processes::start_processes(&mut test, &logs);
    test.wait_until_ready(&gateway).await;
    let token = test.login(&email).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let connection = connect(&test, &token, &endpoint).await;
    let body = json!({
        "name": "inbox", "connection_id": connection, "prefix": "inbox",
        "export_to": connection, "export_key": "out/{stem}.mp3",
        "max_running": 10, "interval_seconds": 10,
    });
    let (status, watch) = send(
        &test,
        &token,
        reqwest::Method::POST,
        "/watches",
        Some(&body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{watch}");
    let id = watch["id"].as_str().unwrap().to_owned();

    let made = |shown: &Value| shown["jobs"].as_u64().unwrap_or(0);
    wait_for(&test, &token, &id, |shown| made(shown) >= 60).await;
    let worker = workers.get_mut("w1").unwrap();
    worker.kill();
    *worker = crate::processes::start_worker(&test, &logs, "w1");
    wait_for(&test, &token, &id, |shown| made(shown) >= 200).await;
    test.kill_temporal().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    test.start_temporal().await;

    let shown = settled(&test, &token, &id, VIDEOS, 1200).await;
    assert_eq!(shown["trouble"], Value::Null, "{shown}");
    let (_, failed) = test.get_json(&token, "/jobs?status=failed&limit=10").await;
    assert_eq!(failed["jobs"].as_array().map(Vec::len), Some(0), "{failed}");
    assert_eq!(mp3s_in(&root.join("videos/in/out")).len() as u64, VIDEOS);
    // One e-mail per video, and no more arriving later.
    let deadline = Instant::now() + Duration::from_secs(60);
    while (test.mail_count().await as u64) < VIDEOS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(test.mail_count().await as u64, VIDEOS);
    drop(gateway);
}

/// Waits (up to ten minutes) until the watch, as shown, passes `check`.
async fn wait_for(test: &TestApp, token: &str, watch: &str, check: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (_, shown) = test.get_json(token, &format!("/watches/{watch}")).await;
        if check(&shown) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the watch did not get there: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Drops `source` into `folder` as `name`, written a minute ago (settled).
fn drop_settled(folder: &Path, source: &Path, name: &str) {
    drop_in(folder, source, name);
    settle(&folder.join(name));
}

/// Dates the file at `path` a minute back, as a file written long enough ago to be whole.
fn settle(path: &Path) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(std::time::SystemTime::now() - Duration::from_secs(60))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_watches_a_folder_of_the_host_and_nothing_outside_it_is_reached() {
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("watched");
    let inbox = watched.join("inbox");
    std::fs::create_dir_all(inbox.join("later")).unwrap();
    let roots = watched.display().to_string();
    let mut settings = SETTINGS.to_vec();
    settings.push(("WATCH_DIRECTORIES", roots.as_str()));
    let app = TestApp::spawn_with(&settings).await;
    let admin = app.login(&app.add_user("ada", true).await).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let person = app.user_token("pat").await;
    let clip = make_mp4(dir.path(), "clip.mp4", 1, true);
    drop_settled(&inbox, &clip, "one.mp4");
    drop_settled(&inbox.join("later"), &clip, "two.mkv");
    // Files that name other resources are refused, and what they name never reached.
    let (leak_server, seen) = crate::imports::source_server(Vec::new()).await;
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "the worker's secret").unwrap();
    let attacks =
        crate::imports::referring_files(&format!("{leak_server}/leak"), secret.to_str().unwrap());
    for (name, bytes) in &attacks {
        std::fs::write(inbox.join(name), bytes).unwrap();
        settle(&inbox.join(name));
    }
    // A link inside the folder to a video outside it is never followed.
    let outside = dir.path().join("private.mp4");
    std::fs::copy(&clip, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, inbox.join("escape.mp4")).unwrap();

    let asked = |directory: &str| json!({ "name": "inbox", "directory": directory });
    let inbox_text = inbox.display().to_string();
    let refused = [
        (&person, inbox.display().to_string()),
        (&admin, dir.path().display().to_string()),
        (&admin, format!("{}/../private", inbox.display())),
        (&admin, "inbox".to_owned()),
    ];
    for (token, directory) in refused {
        let body = asked(&directory);
        let (status, refusal) =
            send(&app, token, reqwest::Method::POST, "/watches", Some(&body)).await;
        assert_eq!(
            (status, refusal["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("directory")),
            "{directory}: {refusal}"
        );
    }
    let (status, watch) = send(
        &app,
        &admin,
        reqwest::Method::POST,
        "/watches",
        Some(&asked(&inbox_text)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{watch}");
    assert_eq!(watch["directory"], inbox_text.as_str());
    assert_eq!(watch["connection_id"], Value::Null);
    let id = watch["id"].as_str().unwrap();
    settled(&app, &admin, id, 5, 90).await;
    let (_, listed) = app.get_json(&admin, "/jobs?limit=10").await;
    let mut ended: Vec<(&str, &str)> = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| {
            (
                job["filename"].as_str().unwrap(),
                job["status"].as_str().unwrap(),
            )
        })
        .collect();
    ended.sort();
    assert_eq!(
        ended,
        [
            ("boxed.mp4", "failed"),
            ("concat.mp4", "failed"),
            ("one.mp4", "completed"),
            ("playlist.mp4", "failed"),
            ("two.mkv", "completed"),
        ],
        "{listed}"
    );
    let leaked = seen.lock().unwrap().hits.get("leak").copied();
    assert_eq!(leaked, None, "the leak URL was never asked for");
    app.stop().await;
}
