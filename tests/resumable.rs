//! Resumable uploads (tus 1.0.0) through clients nobody here wrote: tus-js-client under Node
//! and tuspy, each killed half-way through a 200 MB upload and started again; the upload goes
//! on from the offset the server reports, and the stored video is the file, byte for byte.
//! Then the protocol's hostile spellings, termination, expiry, and two gateways sharing one
//! upload. On the production backends the bytes go into one S3 multipart upload.

mod common;

use base64::{Engine, engine::general_purpose::STANDARD};
use common::*;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// A 72-second Matroska video of raw frames: about 200 MB that ffmpeg writes in a second.
fn big_video(dir: &Path) -> PathBuf {
    let path = dir.join("lecture.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        "72",
        "-c:v",
        "rawvideo",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        path.to_str().unwrap(),
    ]);
    path
}

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// Where the object under `key` lies on disk (the file store, or s3s-fs's folder).
fn object_file(app: &TestApp, key: &str) -> PathBuf {
    match &app.bucket {
        Some(bucket) => PathBuf::from(required("TEST_S3_ROOT"))
            .join(bucket)
            .join(key),
        None => app.data.path().join("objects").join(key),
    }
}

/// A tus request to `path` as the holder of `token`.
fn tus(app: &TestApp, method: Method, path: &str, token: &str) -> RequestBuilder {
    app.http
        .request(method, app.url(path))
        .bearer_auth(token)
        .header("Tus-Resumable", "1.0.0")
}

fn metadata(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| format!("{key} {}", STANDARD.encode(value)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Creates an upload of `length` bytes named `name`: the answer.
async fn create(app: &TestApp, token: &str, length: u64, name: &str) -> Response {
    tus(app, Method::POST, "/uploads", token)
        .header("Upload-Length", length.to_string())
        .header("Upload-Metadata", metadata(&[("filename", name)]))
        .send()
        .await
        .unwrap()
}

fn location(response: &Response) -> String {
    response.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned()
}

fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap().to_owned())
}

async fn patch(app: &TestApp, token: &str, at: &str, offset: u64, bytes: Vec<u8>) -> Response {
    tus(app, Method::PATCH, at, token)
        .header("Upload-Offset", offset.to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap()
}

/// `HEAD` of the upload at `at`: the status and the offset.
async fn offset_of(app: &TestApp, token: &str, at: &str) -> (StatusCode, Option<u64>) {
    let response = tus(app, Method::HEAD, at, token).send().await.unwrap();
    let offset = header(&response, "upload-offset").map(|o| o.parse().unwrap());
    (response.status(), offset)
}

/// The offset of the upload at `at` once the gateway has kept what a cut request brought
/// (it learns of the cut a moment after the client died).
async fn kept_after_cut(app: &TestApp, token: &str, at: &str) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, offset) = offset_of(app, token, at).await;
        assert_eq!(status, StatusCode::OK);
        let offset = offset.unwrap();
        if offset > 0 || std::time::Instant::now() > deadline {
            return offset;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Runs a tus client script under `program`, returning its JSON lines and whether it ended
/// by itself (not killed).
fn run_client(
    app: &TestApp,
    token: &str,
    program: &str,
    script: &str,
    env: &[(&str, String)],
) -> (Vec<Value>, bool) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(program)
        .arg(root.join("tests/clients").join(script))
        .env("AUDIOMILL_URL", &app.base)
        .env("AUDIOMILL_TOKEN", token)
        .env("NODE_PATH", required("TEST_NODE_MODULES"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("the client runs");
    let lines = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let ended = output.status.code().is_some();
    assert!(
        !ended || output.status.success(),
        "{script} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (lines, ended)
}

fn field<'a>(lines: &'a [Value], name: &str) -> Option<&'a Value> {
    lines.iter().find_map(|line| line.get(name))
}

/// Kills `program script` half-way through a 200 MB upload, starts it again on the upload's
/// URL, and checks the resumed run went on from the offset the server reported and the job
/// made a whole MP3 of the very file. `resumed_from` names the field the client prints its
/// first offset in.
async fn killed_and_resumed(program: &str, script: &str, chunk: Option<u64>, resumed_from: &str) {
    let app = TestApp::spawn_with(&[("MAX_FILE_SIZE", "300"), ("RETENTION_SOURCE_HOURS", "1")])
        .await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let video = big_video(media.path());
    let size = std::fs::metadata(&video).unwrap().len();
    let mut env = vec![("TUS_FILE", video.display().to_string())];
    if let Some(chunk) = chunk {
        env.push(("TUS_CHUNK", chunk.to_string()));
    }
    let mut first = env.clone();
    first.push(("TUS_KILL_AT", (size / 2).to_string()));
    let (lines, ended) = run_client(&app, &token, program, script, &first);
    assert!(!ended, "the first run is killed half-way: {lines:?}");
    let url = field(&lines, "url").and_then(Value::as_str).unwrap().to_owned();
    let at = url.trim_start_matches(&app.base).to_owned();
    let reported = kept_after_cut(&app, &token, &at).await;
    assert!(0 < reported && reported < size, "{reported} of {size} kept");

    env.push(("TUS_RESUME_URL", url));
    let (lines, ended) = run_client(&app, &token, program, script, &env);
    assert!(ended, "{lines:?}");
    let resumed = field(&lines, resumed_from).and_then(Value::as_u64).unwrap();
    assert!(resumed >= reported, "resumed at {resumed}, reported {reported}");
    assert!(resumed < size, "the second run did not start over: {lines:?}");
    let job = field(&lines, "job").and_then(Value::as_str).unwrap().to_owned();

    let seen = app.wait_for_job(&token, &job).await;
    let last = seen.last().unwrap();
    assert_eq!(last["status"], "completed", "{last}");
    let source = object_file(&app, &format!("sources/{job}.mkv"));
    assert_eq!(sha256_of(&source), sha256_of(&video), "the stored video is the file");
    let mp3 = media.path().join("out.mp3");
    let bytes = app.download(&token, &job).await.bytes().await.unwrap();
    std::fs::write(&mp3, &bytes).unwrap();
    let (codec, seconds) = probe_audio(&mp3);
    assert_eq!(codec, "mp3");
    assert!((seconds - 72.0).abs() < 1.0, "{seconds} s");
    assert_eq!(app.mail_count().await, 1, "one e-mail");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_resumes_a_killed_upload_from_the_offset_the_server_reports() {
    // One request for the whole file: the kill cuts it in the middle of its body.
    killed_and_resumed("node", "tus_upload.cjs", None, "first_progress").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tuspy_resumes_a_killed_upload_from_the_offset_the_server_reports() {
    // 5 MB chunks (not a multiple of S3 parts), each with a SHA-1 checksum.
    killed_and_resumed(
        &required("TEST_TUS_PYTHON"),
        "tus_upload.py",
        Some(5 * 1024 * 1024),
        "start",
    )
    .await;
}
