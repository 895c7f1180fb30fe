//! Imports from a link end to end: `POST /imports`, the `import_source` step fetching from a
//! real HTTP server on loopback (redirects, credentials, a server error then the video, slow,
//! oversized and endless bodies, wrong types, redirect loops), the MP3 and the e-mail, and
//! every refusal at the door (SSRF spellings, bad choices, keys, the rate limit). Files that
//! refer to other resources (playlists, concatenation lists) are refused on both ways in,
//! and nothing they name is ever fetched.

use crate::common::{self, TestApp, make_mp4};
use poem::{
    Body, EndpointExt, IntoResponse, Response, Route, Server, get, handler,
    http::{HeaderMap, StatusCode as PoemStatus},
    listener::TcpListener,
    web::{Data, Path as PoemPath},
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

/// What the source server saw: requests per path, and the `Authorization` headers sent.
#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) hits: HashMap<String, usize>,
    authorizations: Vec<String>,
    /// Bodies `PUT` to `/put/{name}`, with their content type.
    pub(crate) put: HashMap<String, (String, Vec<u8>)>,
}

#[derive(Clone)]
struct Source {
    video: Arc<Vec<u8>>,
    seen: Arc<Mutex<Seen>>,
}

/// A video server on loopback; its base URL and what it saw.
pub(crate) async fn source_server(video: Vec<u8>) -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let source = Source {
        video: Arc::new(video),
        seen: seen.clone(),
    };
    let app = Route::new()
        .at("/:name", get(serve))
        .at("/media/:name", get(serve))
        .at("/put/:name", poem::put(receive))
        .data(source);
    let port = common::free_port();
    tokio::spawn(Server::new(TcpListener::bind(format!("127.0.0.1:{port}"))).run(app));
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..50 {
        if reqwest::get(format!("{base}/ping")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (base, seen)
}

#[handler]
fn receive(
    PoemPath(name): PoemPath<String>,
    headers: &HeaderMap,
    body: Vec<u8>,
    source: Data<&Source>,
) -> PoemStatus {
    let kind = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    source.seen.lock().unwrap().put.insert(name, (kind, body));
    PoemStatus::OK
}

#[handler]
fn serve(PoemPath(name): PoemPath<String>, headers: &HeaderMap, source: Data<&Source>) -> Response {
    let hits = {
        let mut seen = source.seen.lock().unwrap();
        if let Some(auth) = headers.get("authorization") {
            seen.authorizations
                .push(auth.to_str().unwrap_or_default().to_owned());
        }
        let hits = seen.hits.entry(name.clone()).or_default();
        *hits += 1;
        *hits
    };
    let video = source.video.as_ref().clone();
    let redirect = |to: &str| {
        Response::builder()
            .status(PoemStatus::FOUND)
            .header("location", to)
            .finish()
    };
    match name.as_str() {
        "ping" => "pong".into_response(),
        "talk.mp4" => Response::builder().content_type("video/mp4").body(video),
        "r1" => redirect("/media/r2"),
        "r2" => redirect("talk.mp4"),
        // A redirect to a server's own media path, read against the URL it came from.
        "loop-a" => redirect("/loop-b"),
        "loop-b" => redirect("/loop-a"),
        "flaky.mp4" if hits == 1 => PoemStatus::SERVICE_UNAVAILABLE.into_response(),
        "flaky.mp4" => Response::builder().body(video),
        "page.mp4" => Response::builder()
            .content_type("text/html; charset=utf-8")
            .body("<!doctype html><title>Video</title><video src=talk.mp4>"),
        "empty.mp4" => Response::builder().body(Vec::new()),
        // More than the 1 MiB limit, without saying so beforehand.
        "endless.mp4" => {
            let head = video[..64].to_vec();
            let rest = futures::stream::repeat_with(|| {
                Ok::<_, std::io::Error>(bytes::Bytes::from(vec![0u8; 64 * 1024]))
            });
            let body =
                futures::stream::once(async move { Ok(bytes::Bytes::from(head)) }).chain(rest);
            Response::builder().body(Body::from_bytes_stream(body))
        }
        "declared.mp4" => Response::builder()
            .header("content-length", (5 * 1024 * 1024).to_string())
            .body(Body::from_bytes_stream(futures::stream::iter(vec![Ok::<
                _,
                std::io::Error,
            >(
                bytes::Bytes::from(video),
            )]))),
        // The head of a video, then nothing at all.
        "stall.mp4" => {
            let head = video[..64].to_vec();
            let body =
                futures::stream::once(
                    async move { Ok::<_, std::io::Error>(bytes::Bytes::from(head)) },
                )
                .chain(futures::stream::pending());
            Response::builder().body(Body::from_bytes_stream(body))
        }
        _ => PoemStatus::NOT_FOUND.into_response(),
    }
}

use futures::StreamExt;

/// `POST /imports` of `body` as the holder of `token`, with `key` as its `Idempotency-Key`.
async fn import(
    app: &TestApp,
    token: &str,
    body: &Value,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = app
        .http
        .post(app.url("/imports"))
        .bearer_auth(token)
        .json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Imports `url` and returns the job id.
async fn import_job(app: &TestApp, token: &str, url: &str) -> String {
    let (status, body) = import(app, token, &json!({ "urls": [url] }), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{url}: {body}");
    body["job_id"].as_str().unwrap().to_owned()
}

/// Loopback sources are allowed here, as an operator would for a media server on their own
/// network; a silent server is given up on after two seconds, and videos may be 1 MiB.
pub(crate) const SOURCES_ON_LOOPBACK: [(&str, &str); 3] = [
    ("IMPORT_ALLOW_PRIVATE", "true"),
    ("IMPORT_TIMEOUT_SECONDS", "2"),
    ("MAX_FILE_SIZE", "1"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_is_imported_from_a_link_through_redirects_and_converted() {
    let app = TestApp::spawn_with(&SOURCES_ON_LOOPBACK).await;
    let token = app.user_token("ida").await;
    let dir = tempfile::tempdir().unwrap();
    let video = std::fs::read(make_mp4(dir.path(), "talk.mp4", 2, true)).unwrap();
    let (base, seen) = source_server(video.clone()).await;
    let link = base.replace("http://", "http://ida:s3cret@") + "/r1?signature=hush#t=3";
    let body = json!({
        "urls": [link],
        "options": { "preset": "podcast", "tags[title]": "Imported", "channels": 1 },
    });
    let (status, accepted) = import(&app, &token, &body, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["filename"], "r1");
    let job = accepted["job_id"].as_str().unwrap().to_owned();
    let seen_statuses = app.wait_for_job(&token, &job).await;
    let last = seen_statuses.last().unwrap();
    assert_eq!(last["status"], "completed", "{last}");
    assert_eq!(last["options"]["channels"], 1);
    assert_eq!(last["options"]["tags"]["title"], "Imported");
    assert!(
        app.activities_run(&job)
            .await
            .contains(&"import_source".to_owned())
    );
    let mp3 = app.download(&token, &job).await.bytes().await.unwrap();
    assert!(mp3.starts_with(b"ID3") || mp3[0] == 0xFF, "an MP3");
    // The credentials went to the server that the link named, and nowhere else is shown.
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.hits.get("r1"), Some(&1));
        assert_eq!(seen.hits.get("talk.mp4"), Some(&1));
        let basic = seen.authorizations.iter().any(|a| a.starts_with("Basic "));
        assert!(basic, "{:?}", seen.authorizations);
    }
    let (_, listing) = app.get_json(&token, "/jobs").await;
    for shown in [
        listing.to_string(),
        accepted.to_string(),
        last.to_string(),
        app.workflow_input(&job).await.to_string(),
    ] {
        for secret in ["s3cret", "hush"] {
            assert!(!shown.contains(secret), "{secret} shown: {shown}");
        }
    }
    assert_eq!(app.mail_count().await, 1);
}

/// Waits for `job` to end and returns its last status.
pub(crate) async fn ended(app: &TestApp, token: &str, job: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let (_, status) = app.status(token, job).await;
        if matches!(
            status["status"].as_str(),
            Some("failed" | "cancelled" | "completed")
        ) {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{job} never ended: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_a_fetch_fails_ends_the_job_with_its_sentence_and_nothing_kept() {
    let app = TestApp::spawn_with(&SOURCES_ON_LOOPBACK).await;
    let token = app.user_token("jon").await;
    let dir = tempfile::tempdir().unwrap();
    let video = std::fs::read(make_mp4(dir.path(), "talk.mp4", 1, true)).unwrap();
    let (base, seen) = source_server(video).await;
    let cases = [
        (
            "missing.mp4",
            "127.0.0.1 has no video at this link (404 Not Found).",
        ),
        (
            "page.mp4",
            "The link does not lead to a video or audio file: its content is not MP4, MOV, AVI, MKV, WebM, MP3, M4A, WAV, FLAC or Ogg (the server sent text/html).",
        ),
        ("empty.mp4", "127.0.0.1 sent an empty file."),
        (
            "endless.mp4",
            "The video is larger than the 1.0 MB you may import.",
        ),
        (
            "declared.mp4",
            "The video is larger than the 1.0 MB you may import (the server announced 5.0 MB).",
        ),
        ("loop-a", "127.0.0.1 redirects in a loop."),
        ("stall.mp4", "127.0.0.1 sent nothing for 2 s."),
    ];
    let mut jobs = Vec::new();
    for (path, _) in &cases {
        jobs.push(import_job(&app, &token, &format!("{base}/{path}")).await);
    }
    let flaky = import_job(&app, &token, &format!("{base}/flaky.mp4")).await;
    for ((path, sentence), job) in cases.iter().zip(&jobs) {
        let status = ended(&app, &token, job).await;
        assert_eq!(status["status"], "failed", "{path}: {status}");
        assert_eq!(status["step"], "import_source", "{path}: {status}");
        assert_eq!(status["error"], *sentence, "{path}: {status}");
        let kind = if *path == "stall.mp4" {
            "ImportUnreachable"
        } else {
            "ImportRefused"
        };
        assert_eq!(status["failure_type"], kind, "{path}");
    }
    // A server that answered 503 once is asked again, and its video converted.
    assert_eq!(ended(&app, &token, &flaky).await["status"], "completed");
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.hits.get("flaky.mp4"), Some(&2));
        // Refusals for good are asked once; a silent server a few times.
        assert_eq!(seen.hits.get("missing.mp4"), Some(&1));
        assert_eq!(seen.hits.get("page.mp4"), Some(&1));
        assert!(seen.hits.get("stall.mp4").copied().unwrap_or(0) > 1);
    }
    // Nothing of a failed import is left in storage.
    let objects = app.objects();
    for job in &jobs {
        assert!(
            !objects.iter().any(|key| key.contains(job.as_str())),
            "{job}: {objects:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_are_checked_at_the_door_and_refused_whole() {
    let app = TestApp::spawn_with(&[("IMPORTS_PER_MINUTE", "40")]).await;
    let token = app.user_token("kay").await;
    let refused_link = |url: &str| json!({ "urls": [url] });
    for url in [
        "http://127.0.0.1:8080/v.mp4",
        "http://localhost/v.mp4",
        "http://10.0.0.7/v.mp4",
        "http://[::1]/v.mp4",
        "http://[::ffff:127.0.0.1]/v.mp4",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://[64:ff9b:1::a00:7]/v.mp4",
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/v.mp4",
        "http://[2002:a00:7::1]/v.mp4",
        "http://[::a00:7]/v.mp4",
        "http://[fec0::1]/v.mp4",
        "http://0x7f.1/v.mp4",
        "http://2130706433/v.mp4",
        "ftp://93.184.216.34/v.mp4",
        "file:///etc/passwd",
        "not a url",
        "https://no-such-host.invalid/v.mp4",
    ] {
        let (status, answer) = import(&app, &token, &refused_link(url), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {answer}");
        assert_eq!(answer["error"], "bad_request");
        assert_eq!(answer["field"], "urls", "{url}: {answer}");
    }
    let (_, answer) = import(&app, &token, &refused_link("http://localhost/v.mp4"), None).await;
    assert_eq!(
        answer["message"],
        "`urls` is not acceptable: localhost does not resolve to a public address, so it may \
         not be imported from."
    );
    let public = "https://93.184.216.34/v.mp4";
    for (body, field) in [
        (json!({ "urls": [] }), "urls"),
        (json!({ "urls": vec![public; 11] }), "urls"),
        (
            json!({ "urls": [public], "options": { "bitrate": 33, "bitrate_mode": "cbr" } }),
            "bitrate",
        ),
        (
            json!({ "urls": [public], "options": { "quality": [1] } }),
            "quality",
        ),
        (
            json!({ "urls": [public], "options": { "volume": 3 } }),
            "form",
        ),
        (
            json!({ "urls": [public], "callback_url": "http://127.0.0.1/hook" }),
            "callback_url",
        ),
    ] {
        let (status, answer) = import(&app, &token, &body, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["field"], field, "{body}: {answer}");
    }
    for body in [json!({}), json!({ "urls": "x" }), json!([])] {
        let (status, answer) = import(&app, &token, &body, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"], "bad_request", "{body}: {answer}");
    }
    let (status, _) = import(
        &app,
        &token,
        &json!({ "urls": [public, public] }),
        Some("k1"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "one link per key");
    // Nothing refused started a job.
    let (_, listing) = app.get_json(&token, "/jobs").await;
    assert_eq!(
        listing["jobs"].as_array().map(Vec::len),
        Some(0),
        "{listing}"
    );

    // A key names one import: sent again it answers with the same job, changed it is refused.
    let body = json!({ "urls": [public], "options": { "preset": "voice" } });
    let (status, first) = import(&app, &token, &body, Some("import-1")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let (status, again) = import(&app, &token, &body, Some("import-1")).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["job_id"], first["job_id"]);
    let changed = json!({ "urls": [public], "options": { "preset": "music" } });
    let (status, answer) = import(&app, &token, &changed, Some("import-1")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    // A batch of links is followed as a batch.
    let (status, batch) = import(&app, &token, &json!({ "urls": [public, public] }), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{batch}");
    assert_eq!(batch["jobs"].as_array().unwrap().len(), 2);
    assert!(batch["batch_id"].is_string(), "{batch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_are_limited_per_user_and_minute() {
    let app = TestApp::spawn_with(&[("IMPORTS_PER_MINUTE", "2")]).await;
    let token = app.user_token("lea").await;
    let other = app.user_token("max").await;
    let body = json!({ "urls": ["http://127.0.0.1/v.mp4"] });
    for _ in 0..2 {
        let (status, _) = import(&app, &token, &body, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    let response = app
        .http
        .post(app.url("//imports/"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    // Another user's imports are counted apart.
    let (status, _) = import(&app, &other, &body, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Files that name other resources: an HLS playlist, an FFmpeg concatenation list, and a
/// playlist behind an MP4's first box. Each names a file on the worker's disk and a URL on a
/// server that counts its requests.
pub(crate) fn referring_files(leak_url: &str, secret: &str) -> Vec<(&'static str, Vec<u8>)> {
    let playlist = format!(
        "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\n{leak_url}\n#EXTINF:10.0,\nfile://{secret}\n#EXT-X-ENDLIST\n"
    );
    let concat = format!("ffconcat version 1.0\nfile '{secret}'\nfile '{leak_url}'\n");
    let mut boxed = Vec::new();
    boxed.extend_from_slice(&20u32.to_be_bytes());
    boxed.extend_from_slice(b"ftypisom\0\0\x02\0isom");
    boxed.extend_from_slice(playlist.as_bytes());
    vec![
        ("playlist.mp4", playlist.into_bytes()),
        ("concat.mp4", concat.into_bytes()),
        ("boxed.mp4", boxed),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_that_refer_to_other_resources_are_never_followed_on_either_way_in() {
    let app = TestApp::spawn_with(&SOURCES_ON_LOOPBACK).await;
    let token = app.user_token("ned").await;
    let (base, seen) = source_server(Vec::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "the worker's secret").unwrap();
    let files = referring_files(&format!("{base}/leak"), secret.to_str().unwrap());
    let mut jobs = Vec::new();
    for (name, bytes) in &files {
        let response = app.upload_bytes(&token, name, bytes.clone()).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        match status {
            // The first bytes are no container: refused at the door.
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {}
            // The MP4 box passes the door; the demuxer allowed finds no media in it.
            StatusCode::ACCEPTED => jobs.push(body["job_id"].as_str().unwrap().to_owned()),
            other => panic!("{name}: {other} {body}"),
        }
    }
    assert_eq!(jobs.len(), 1, "only the boxed playlist passes the door");
    // The same files served by a link.
    let served = source_server_of(&files).await;
    for (name, _) in &files {
        jobs.push(import_job(&app, &token, &format!("{served}/{name}")).await);
    }
    for job in &jobs {
        let status = ended(&app, &token, job).await;
        assert_eq!(status["status"], "failed", "{status}");
        let error = status["error"].as_str().unwrap();
        assert!(!error.contains("secret"), "{error}");
    }
    assert_eq!(
        seen.lock().unwrap().hits.get("leak"),
        None,
        "the leak URL was never asked for"
    );
}

/// A server of fixed files, by name; its base URL.
async fn source_server_of(files: &[(&'static str, Vec<u8>)]) -> String {
    let files: HashMap<String, Vec<u8>> = files
        .iter()
        .map(|(n, b)| (n.to_string(), b.clone()))
        .collect();
    #[handler]
    fn file(PoemPath(name): PoemPath<String>, files: Data<&HashMap<String, Vec<u8>>>) -> Response {
        match files.get(&name) {
            Some(bytes) => Response::builder()
                .content_type("video/mp4")
                .body(bytes.clone()),
            None => PoemStatus::NOT_FOUND.into_response(),
        }
    }
    let app = Route::new().at("/:name", get(file)).data(files);
    let port = common::free_port();
    tokio::spawn(Server::new(TcpListener::bind(format!("127.0.0.1:{port}"))).run(app));
    tokio::time::sleep(Duration::from_millis(200)).await;
    format!("http://127.0.0.1:{port}")
}
