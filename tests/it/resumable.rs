//! Resumable uploads (tus 1.0.0) through clients nobody here wrote: tus-js-client under Node
//! and tuspy, each killed half-way through a 200 MB upload and started again; the upload goes
//! on from the offset the server reports, and the stored video is the file, byte for byte.
//! Then the protocol's hostile spellings, termination, expiry, and two gateways sharing one
//! upload. On the production backends the bytes go into one S3 multipart upload.

use crate::common;

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
    raw_video(dir, 72)
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
    response.headers()["location"].to_str().unwrap().to_owned()
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
    let app =
        TestApp::spawn_with(&[("MAX_FILE_SIZE", "300"), ("RETENTION_SOURCE_HOURS", "1")]).await;
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
    let url = field(&lines, "url")
        .and_then(Value::as_str)
        .unwrap()
        .to_owned();
    let at = url.trim_start_matches(&app.base).to_owned();
    let reported = kept_after_cut(&app, &token, &at).await;
    assert!(0 < reported && reported < size, "{reported} of {size} kept");

    env.push(("TUS_RESUME_URL", url));
    let (lines, ended) = run_client(&app, &token, program, script, &env);
    assert!(ended, "{lines:?}");
    let resumed = field(&lines, resumed_from).and_then(Value::as_u64).unwrap();
    assert!(
        resumed >= reported,
        "resumed at {resumed}, reported {reported}"
    );
    assert!(
        resumed < size,
        "the second run did not start over: {lines:?}"
    );
    let job = field(&lines, "job")
        .and_then(Value::as_str)
        .unwrap()
        .to_owned();

    let seen = app.wait_for_job(&token, &job).await;
    let last = seen.last().unwrap();
    assert_eq!(last["status"], "completed", "{last}");
    let source = object_file(&app, &format!("sources/{job}.mkv"));
    assert_eq!(
        sha256_of(&source),
        sha256_of(&video),
        "the stored video is the file"
    );
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

/// Every answer of a refusal: its status and its error code, in the contract's shape.
async fn refusal(response: Response) -> (StatusCode, String) {
    let status = response.status();
    assert_eq!(
        header(&response, "tus-resumable").as_deref(),
        Some("1.0.0"),
        "every answer names the protocol"
    );
    (status, error_code(response).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_a_bad_creation_is_refused_before_a_byte_is_sent() {
    let app =
        TestApp::spawn_with(&[("MAX_FILE_SIZE", "10"), ("MAX_UNFINISHED_UPLOADS", "2")]).await;
    let token = app.user_token("ann").await;
    let with = |length: &str, pairs: &str| {
        tus(&app, Method::POST, "/uploads", &token)
            .header("Upload-Length", length.to_owned())
            .header("Upload-Metadata", pairs.to_owned())
    };
    let name = metadata(&[("filename", "talk.mp4")]);
    for length in [
        "-1",
        "+5",
        "1e6",
        "0x10",
        "12 34",
        "",
        "abc",
        "1.5",
        "9223372036854775808",
        "18446744073709551616",
        "99999999999999999999999",
        "0",
    ] {
        let answer = refusal(with(length, &name).send().await.unwrap()).await;
        assert_eq!(
            answer,
            (StatusCode::BAD_REQUEST, "bad_request".into()),
            "{length:?}"
        );
    }
    let too_big = (10 * 1024 * 1024 + 1).to_string();
    let answer = refusal(with(&too_big, &name).send().await.unwrap()).await;
    assert_eq!(answer.0, StatusCode::PAYLOAD_TOO_LARGE);
    let deferred = tus(&app, Method::POST, "/uploads", &token)
        .header("Upload-Defer-Length", "1")
        .header("Upload-Metadata", name.clone());
    assert_eq!(
        refusal(deferred.send().await.unwrap()).await.0,
        StatusCode::BAD_REQUEST
    );
    let twice = with("100", &name).header("Upload-Length", "100");
    assert_eq!(
        refusal(twice.send().await.unwrap()).await.0,
        StatusCode::BAD_REQUEST
    );

    for (pairs, status) in [
        (String::new(), StatusCode::BAD_REQUEST),
        (
            metadata(&[("filetype", "video/mp4")]),
            StatusCode::BAD_REQUEST,
        ),
        (
            metadata(&[("filename", "talk.gif")]),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            metadata(&[("filename", "talk")]),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        ("filename not*base64".into(), StatusCode::BAD_REQUEST),
        (format!("{name},{name}"), StatusCode::BAD_REQUEST),
        (
            metadata(&[("filename", "talk.mp4"), ("batch_id", "not-a-uuid")]),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let answer = refusal(with("100", &pairs).send().await.unwrap()).await;
        assert_eq!(answer.0, status, "{pairs:?}");
    }
    for (field, value) in [
        ("bitrate_mode", "loud"),
        ("quality", "11"),
        ("start", "-3"),
        ("callback_url", "http://127.0.0.1:9/hook"),
    ] {
        let pairs = metadata(&[("filename", "talk.mp4"), (field, value)]);
        let response = with("100", &pairs).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["field"], field, "{body}");
    }
    // Another version is the protocol's 412; a missing or malformed header is a 400.
    for (version, status) in [
        (None, StatusCode::BAD_REQUEST),
        (Some("{}"), StatusCode::BAD_REQUEST),
        (Some("0.2.2"), StatusCode::PRECONDITION_FAILED),
        (Some("1.0.0, 1.0.0"), StatusCode::PRECONDITION_FAILED),
    ] {
        let mut request = app
            .http
            .post(app.url("/uploads"))
            .bearer_auth(&token)
            .header("Upload-Length", "100")
            .header("Upload-Metadata", name.clone());
        if let Some(version) = version {
            request = request.header("Tus-Resumable", version);
        }
        let response = request.send().await.unwrap();
        if status == StatusCode::PRECONDITION_FAILED {
            assert_eq!(header(&response, "tus-version").as_deref(), Some("1.0.0"));
        }
        assert_eq!(refusal(response).await.0, status, "{version:?}");
    }
    let anonymous = app
        .http
        .post(app.url("/uploads"))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "100");
    assert_eq!(
        refusal(anonymous.send().await.unwrap()).await.0,
        StatusCode::UNAUTHORIZED
    );

    for _ in 0..2 {
        assert_eq!(
            create(&app, &token, 100, "a.mp4").await.status(),
            StatusCode::CREATED
        );
    }
    let third = refusal(create(&app, &token, 100, "a.mp4").await).await;
    assert_eq!(
        third.0,
        StatusCode::TOO_MANY_REQUESTS,
        "MAX_UNFINISHED_UPLOADS"
    );
    assert!(app.objects().iter().all(|key| !key.starts_with("sources/")));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_a_bad_chunk_is_refused_and_keeps_nothing() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let video = std::fs::read(make_mp4(media.path(), "talk.mp4", 2, true)).unwrap();
    let created = create(&app, &token, video.len() as u64, "talk.mp4").await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let at = location(&created);
    let head = video[..1000].to_vec();
    for offset in ["-1", "abc", "1e3", "", "18446744073709551616", " 0 0"] {
        let response = tus(&app, Method::PATCH, &at, &token)
            .header("Upload-Offset", offset)
            .header("Content-Type", "application/offset+octet-stream")
            .body(head.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            refusal(response).await.0,
            StatusCode::BAD_REQUEST,
            "{offset:?}"
        );
    }
    let wrong = patch(&app, &token, &at, 5, head.clone()).await;
    assert_eq!(header(&wrong, "upload-offset").as_deref(), Some("0"));
    assert_eq!(refusal(wrong).await.0, StatusCode::CONFLICT);
    for content_type in [None, Some("application/octet-stream"), Some("text/plain")] {
        let mut request = tus(&app, Method::PATCH, &at, &token)
            .header("Upload-Offset", "0")
            .body(head.clone());
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        let answer = refusal(request.send().await.unwrap()).await;
        assert_eq!(
            answer.0,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
    }
    let mut longer = video.clone();
    longer.push(0);
    let beyond = patch(&app, &token, &at, 0, longer).await;
    assert_eq!(refusal(beyond).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    for (checksum, status) in [
        (
            format!("sha256 {}", STANDARD.encode(Sha256::digest(b"other"))),
            460,
        ),
        ("md5 AAAA".to_owned(), 460),
        ("crc32 AAAA".to_owned(), 400),
        ("sha256".to_owned(), 400),
    ] {
        let response = tus(&app, Method::PATCH, &at, &token)
            .header("Upload-Offset", "0")
            .header("Upload-Checksum", checksum.clone())
            .header("Content-Type", "application/offset+octet-stream")
            .body(head.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(refusal(response).await.0.as_u16(), status, "{checksum}");
    }
    assert_eq!(
        offset_of(&app, &token, &at).await,
        (StatusCode::OK, Some(0)),
        "nothing kept"
    );

    let other = app.user_token("bob").await;
    for method in [Method::HEAD, Method::PATCH, Method::DELETE] {
        let response = tus(&app, method.clone(), &at, &other)
            .header("Upload-Offset", "0")
            .header("Content-Type", "application/offset+octet-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::NOT_FOUND,
            "{method} of another's"
        );
    }
    let malformed = tus(&app, Method::HEAD, "/uploads/not-an-id", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);

    let checksum = format!("md5 {}", STANDARD.encode(md5::Md5::digest(&video[..1000])));
    let good = tus(&app, Method::PATCH, &at, &token)
        .header("Upload-Offset", "0")
        .header("Upload-Checksum", checksum)
        .header("Content-Type", "application/offset+octet-stream")
        .body(head)
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), StatusCode::NO_CONTENT);
    let rest = patch(&app, &token, &at, 1000, video[1000..].to_vec()).await;
    assert_eq!(rest.status(), StatusCode::NO_CONTENT);
    let job = header(&rest, "audiomill-job-id").expect("the last chunk names the job");
    let seen = app.wait_for_job(&token, &job).await;
    assert_eq!(seen.last().unwrap()["status"], "completed");
    let again = patch(&app, &token, &at, video.len() as u64, Vec::new()).await;
    assert_eq!(
        header(&again, "audiomill-job-id"),
        Some(job),
        "a finished upload says so"
    );
    app.stop().await;
}

/// What is left in storage besides finished objects: the partial files, tails and S3
/// multipart uploads of unfinished uploads.
fn unfinished_bytes(app: &TestApp) -> Vec<String> {
    app.objects()
        .into_iter()
        .filter(|key| !key.starts_with("mp3/"))
        .collect()
}

/// The parts s3s-fs keeps of the S3 multipart upload behind the upload at `at` (none with the
/// file store).
async fn s3_parts(app: &TestApp, at: &str) -> Vec<PathBuf> {
    let id = audiomill_domain::UploadId::parse(at.trim_start_matches("/uploads/")).unwrap();
    let upload = app.backends.db.resumable(id).await.unwrap().unwrap();
    let Some(storage_id) = upload.upload.storage_id else {
        return Vec::new();
    };
    let prefix = format!(".upload_id-{storage_id}.part-");
    std::fs::read_dir(required("TEST_S3_ROOT"))
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
        .map(|entry| entry.path())
        .collect()
}

fn s3_parts_left(parts: &[PathBuf]) -> Vec<String> {
    parts
        .iter()
        .filter(|part| part.exists())
        .map(|part| part.display().to_string())
        .collect()
}

/// An upload of `length` bytes whose `first` bytes are sent: where it is.
async fn half_sent(app: &TestApp, token: &str, length: usize, first: &[u8], name: &str) -> String {
    let created = create(app, token, length as u64, name).await;
    let at = location(&created);
    let response = patch(app, token, &at, 0, first.to_vec()).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_expired_and_refused_uploads_leave_nothing_behind() {
    let app = TestApp::spawn_with(&[("MAX_FILE_SIZE", "300")]).await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let video = std::fs::read(raw_video(media.path(), 8)).unwrap();
    // More than one S3 part, and a tail that fills none.
    let first = &video[..10 * 1024 * 1024];
    let terminated = half_sent(&app, &token, video.len(), first, "a.mkv").await;
    assert!(
        !unfinished_bytes(&app).is_empty(),
        "the bytes wait in storage"
    );
    let parts = s3_parts(&app, &terminated).await;
    assert_eq!(parts.len(), usize::from(app.bucket.is_some()), "{parts:?}");
    let response = tus(&app, Method::DELETE, &terminated, &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        offset_of(&app, &token, &terminated).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(unfinished_bytes(&app), Vec::<String>::new(), "termination");
    assert_eq!(
        s3_parts_left(&parts),
        Vec::<String>::new(),
        "the multipart upload is aborted"
    );

    let expiring = half_sent(&app, &token, video.len(), first, "b.mkv").await;
    let parts = s3_parts(&app, &expiring).await;
    let now = audiomill_store::time::now_millis();
    let report = app.clean_expired(now + 23 * 3600 * 1000).await;
    assert_eq!(report.uploads_removed, 0, "not yet expired");
    // Expired but not yet cleaned: gone for the client, bytes still waiting for the cleanup.
    let id = expiring.trim_start_matches("/uploads/");
    app.set_resumable_expiry(id, now - 1000).await;
    assert_eq!(offset_of(&app, &token, &expiring).await.0, StatusCode::GONE);
    let late = patch(&app, &token, &expiring, first.len() as u64, vec![0; 10]).await;
    assert_eq!(refusal(late).await, (StatusCode::GONE, "gone".to_owned()));
    let report = app.clean_expired(now + 25 * 3600 * 1000).await;
    assert_eq!(report.uploads_removed, 1);
    assert_eq!(
        offset_of(&app, &token, &expiring).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(unfinished_bytes(&app), Vec::<String>::new(), "expiry");
    assert_eq!(
        s3_parts_left(&parts),
        Vec::<String>::new(),
        "the multipart upload is aborted"
    );

    let created = create(&app, &token, 5000, "fake.mp4").await;
    let at = location(&created);
    let response = patch(&app, &token, &at, 0, vec![b'G'; 5000]).await;
    assert_eq!(
        refusal(response).await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(offset_of(&app, &token, &at).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        unfinished_bytes(&app),
        Vec::<String>::new(),
        "a refused file"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_chunk_is_cut_off_keeping_what_arrived_and_holds_off_others_meanwhile() {
    let app = TestApp::spawn_with(&[("UPLOAD_IDLE_SECONDS", "2")]).await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let video = std::fs::read(make_mp4(media.path(), "talk.mp4", 2, true)).unwrap();
    let created = create(&app, &token, video.len() as u64, "talk.mp4").await;
    let at = location(&created);
    // 3000 bytes, then nothing: the connection stays open.
    let (sender, receiver) = futures::channel::mpsc::unbounded::<Result<Vec<u8>, std::io::Error>>();
    sender.unbounded_send(Ok(video[..3000].to_vec())).unwrap();
    let stalled = tus(&app, Method::PATCH, &at, &token)
        .header("Upload-Offset", "0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Content-Length", video.len().to_string())
        .body(reqwest::Body::wrap_stream(receiver))
        .send();
    let stalled = tokio::spawn(stalled);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let meanwhile = patch(&app, &token, &at, 0, video.clone()).await;
    assert_eq!(
        refusal(meanwhile).await.0,
        StatusCode::LOCKED,
        "one request at a time"
    );

    let answer = stalled.await.unwrap().unwrap();
    assert_eq!(header(&answer, "upload-offset").as_deref(), Some("3000"));
    assert_eq!(refusal(answer).await.0, StatusCode::REQUEST_TIMEOUT);
    drop(sender);
    assert_eq!(
        offset_of(&app, &token, &at).await,
        (StatusCode::OK, Some(3000))
    );
    let rest = patch(&app, &token, &at, 3000, video[3000..].to_vec()).await;
    assert_eq!(rest.status(), StatusCode::NO_CONTENT);
    let job = header(&rest, "audiomill-job-id").unwrap();
    assert_eq!(
        app.wait_for_job(&token, &job).await.last().unwrap()["status"],
        "completed"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_take_turns_at_one_upload() {
    let app =
        TestApp::spawn_with(&[("MAX_FILE_SIZE", "300"), ("RETENTION_SOURCE_HOURS", "1")]).await;
    let token = app.user_token("ann").await;
    let logs = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut second = Process::start(
        &app.vars,
        &[("LISTEN_ADDR", format!("127.0.0.1:{port}"))],
        &["gateway"],
        &logs.path().join("gateway.log"),
    );
    let bases = [app.base.clone(), format!("http://127.0.0.1:{port}")];
    eventually("the second gateway answers", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    let media = tempfile::tempdir().unwrap();
    let path = raw_video(media.path(), 12);
    let video = std::fs::read(&path).unwrap();
    let created = create(&app, &token, video.len() as u64, "lecture.mkv").await;
    let at = location(&created);
    // 3 MB chunks: parts of S3's 8 MB are made across requests and gateways.
    let mut offset = 0;
    let mut job = None;
    for (turn, chunk) in video.chunks(3 * 1024 * 1024).enumerate() {
        let response = app
            .http
            .patch(format!("{}{at}", bases[turn % 2]))
            .bearer_auth(&token)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Offset", offset.to_string())
            .header("Content-Type", "application/offset+octet-stream")
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "turn {turn}");
        offset += chunk.len();
        job = header(&response, "audiomill-job-id");
    }
    let job = job.expect("the last chunk started the job");
    assert_eq!(
        app.wait_for_job(&token, &job).await.last().unwrap()["status"],
        "completed"
    );
    let source = object_file(&app, &format!("sources/{job}.mkv"));
    assert_eq!(sha256_of(&source), sha256_of(&path));
    second.kill();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_file_in_its_creation_starts_the_job_at_once() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let video = std::fs::read(make_mp4(media.path(), "talk.mp4", 2, true)).unwrap();
    let creation = |client: &reqwest::Client| {
        client
            .post(app.url("/uploads"))
            .bearer_auth(&token)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", video.len().to_string())
            .header(
                "Upload-Metadata",
                metadata(&[("filename", "talk.mp4"), ("preset", "podcast")]),
            )
            .header("Content-Type", "application/offset+octet-stream")
            .body(video.clone())
    };
    // The gateway speaks HTTP/1 only: HTTP/2 is refused at its first bytes.
    let http2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    assert!(creation(&http2).send().await.is_err());
    assert_eq!(unfinished_bytes(&app), Vec::<String>::new());

    let response = creation(&app.http).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        header(&response, "upload-offset"),
        Some(video.len().to_string())
    );
    let job = header(&response, "audiomill-job-id").expect("the whole file started the job");
    let seen = app.wait_for_job(&token, &job).await;
    let last = seen.last().unwrap();
    assert_eq!(last["status"], "completed");
    assert_eq!(
        last["options"]["preset"], "podcast",
        "the metadata's choices: {last}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_naming_one_batch_are_followed_and_zipped_together_for_their_owner_only() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let video = std::fs::read(make_mp4(media.path(), "talk.mp4", 1, true)).unwrap();
    let batch = uuid::Uuid::new_v4().to_string();
    let send = |token: String, name: &'static str| {
        let video = video.clone();
        let batch = batch.clone();
        let app = &app;
        async move {
            let response = tus(app, Method::POST, "/uploads", &token)
                .header("Upload-Length", video.len().to_string())
                .header(
                    "Upload-Metadata",
                    metadata(&[("filename", name), ("batch_id", &batch)]),
                )
                .header("Content-Type", "application/offset+octet-stream")
                .body(video)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::CREATED);
            header(&response, "audiomill-job-id").expect("the job started")
        }
    };
    for job in [
        send(token.clone(), "one.mp4").await,
        send(token.clone(), "two.mp4").await,
    ] {
        let seen = app.wait_for_job(&token, &job).await;
        assert_eq!(seen.last().unwrap()["status"], "completed");
    }
    let (status, body) = app.get_json(&token, &format!("/batches/{batch}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["jobs"].as_array().unwrap().len(), 2, "{body}");
    let zip = app
        .send_as(&token, Method::GET, &format!("/batches/{batch}/download"))
        .await;
    assert_eq!(zip.status(), StatusCode::OK);
    assert_eq!(zip.headers()["x-batch-files"], "2");

    // The same batch id in another account is another batch: each sees only their own.
    let other = app.user_token("bob").await;
    let (status, _) = app.get_json(&other, &format!("/batches/{batch}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    send(other.clone(), "three.mp4").await;
    let (_, body) = app.get_json(&other, &format!("/batches/{batch}")).await;
    assert_eq!(body["jobs"].as_array().unwrap().len(), 1, "{body}");
    let (_, body) = app.get_json(&token, &format!("/batches/{batch}")).await;
    assert_eq!(body["jobs"].as_array().unwrap().len(), 2, "{body}");
    app.stop().await;
}

/// `GET /me`'s storage in use, in bytes.
async fn storage_used(app: &TestApp, token: &str) -> u64 {
    let (status, me) = app.get_json(token, "/me").await;
    assert_eq!(status, StatusCode::OK, "{me}");
    me["quota"]["storage_used_bytes"].as_u64().unwrap()
}

/// The answers to `count` creations sent at once.
async fn burst(app: &TestApp, token: &str, count: usize) -> Vec<StatusCode> {
    let creations = (0..count).map(|n| async move {
        let name = format!("clip-{n}.mp4");
        create(app, token, 1000, &name).await.status()
    });
    futures::future::join_all(creations).await
}

/// An unfinished upload holds its whole length against the storage quota from its creation,
/// as `GET /me` shows; creations sent all at once pass no limit, per account or per address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_uploads_hold_their_room_and_a_burst_of_creations_passes_no_limit() {
    let app = TestApp::spawn_with(&[
        ("QUOTA_STORAGE_MB", "1"),
        ("MAX_UNFINISHED_UPLOADS", "5"),
        ("MAX_UNFINISHED_UPLOADS_PER_ADDRESS", "7"),
    ])
    .await;
    let ann = app.user_token("ann").await;
    let first = create(&app, &ann, 600_000, "talk.mp4").await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(storage_used(&app, &ann).await, 600_000);
    let second = create(&app, &ann, 600_000, "more.mp4").await;
    assert_eq!(second.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        header(&second, "x-quota-storage-remaining").as_deref(),
        Some("448576")
    );
    // Terminating gives the room back.
    let gone = tus(&app, Method::DELETE, &location(&first), &ann);
    assert_eq!(gone.send().await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(storage_used(&app, &ann).await, 0);

    // 40 creations at once: exactly the limit is made, the rest refused with 429.
    let answers = burst(&app, &ann, 40).await;
    let made = answers
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = answers
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS);
    assert_eq!((made, refused.count()), (5, 35), "{answers:?}");
    // Another account on the same address has room for 2 more: the address's limit.
    let bob = app.user_token("bob").await;
    let answers = burst(&app, &bob, 10).await;
    let made = answers
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    assert_eq!(made, 2, "{answers:?}");
    app.stop().await;
}

/// Sends two requests at once; their answers.
async fn both(first: RequestBuilder, second: RequestBuilder) -> (Response, Response) {
    let (a, b) = tokio::join!(first.send(), second.send());
    (a.unwrap(), b.unwrap())
}

fn chunk_at(app: &TestApp, token: &str, at: &str, offset: usize, bytes: &[u8]) -> RequestBuilder {
    tus(app, Method::PATCH, at, token)
        .header("Upload-Offset", offset.to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .body(bytes.to_vec())
}

/// Every pair of requests that can race on one upload is taken one at a time: two chunks at
/// one offset (one kept), the last chunk beside an empty one at the end (one job, which runs,
/// even with the account at its last job of the day), a termination beside a chunk (423 until
/// the chunk is done, never a 5xx).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_requests_on_one_upload_are_taken_one_at_a_time() {
    let app = TestApp::spawn_with(&[("QUOTA_JOBS_PER_DAY", "1")]).await;
    let media = tempfile::tempdir().unwrap();
    let video = std::fs::read(make_mp4(media.path(), "talk.mp4", 2, true)).unwrap();
    let half = video.len() / 2;
    for round in 0..6 {
        let token = app.user_token(&format!("racer{round}")).await;
        let at = location(&create(&app, &token, video.len() as u64, "talk.mp4").await);
        let (a, b) = both(
            chunk_at(&app, &token, &at, 0, &video[..half]),
            chunk_at(&app, &token, &at, 0, &video[..half]),
        )
        .await;
        let mut statuses = [a.status(), b.status()];
        statuses.sort();
        assert_eq!(
            statuses[0],
            StatusCode::NO_CONTENT,
            "round {round}: {statuses:?}"
        );
        assert!(
            [StatusCode::CONFLICT, StatusCode::LOCKED].contains(&statuses[1]),
            "round {round}: {statuses:?}"
        );
        assert_eq!(offset_of(&app, &token, &at).await.1, Some(half as u64));

        // The last bytes and an empty chunk at the end, at once: one job, named by both or
        // refused to one for now, and it converts.
        let last = chunk_at(&app, &token, &at, half, &video[half..]);
        let empty = chunk_at(&app, &token, &at, video.len(), &[]);
        let (a, b) = both(last, empty).await;
        let mut jobs: Vec<String> = [&a, &b]
            .iter()
            .filter_map(|r| header(r, "audiomill-job-id"))
            .collect();
        if jobs.is_empty() {
            // Each held the other off (423 beside 409): the client sends its chunk again.
            assert!(
                [a.status(), b.status()].contains(&StatusCode::LOCKED),
                "{a:?} {b:?}"
            );
            let again = chunk_at(&app, &token, &at, half, &video[half..]);
            let again = again.send().await.unwrap();
            jobs.extend(header(&again, "audiomill-job-id"));
            assert_eq!(jobs.len(), 1, "{again:?}");
        }
        assert!(jobs.windows(2).all(|w| w[0] == w[1]), "{jobs:?}");
        for answer in [&a, &b] {
            assert!(!answer.status().is_server_error(), "{answer:?}");
        }
        let done = app.wait_for_job(&token, &jobs[0]).await;
        assert_eq!(done.last().unwrap()["status"], "completed", "{done:?}");
    }

    // A termination while a chunk streams in waits for it.
    let token = app.user_token("terminator").await;
    let at = location(&create(&app, &token, video.len() as u64, "talk.mp4").await);
    let (sender, receiver) = futures::channel::mpsc::unbounded::<Result<Vec<u8>, std::io::Error>>();
    sender.unbounded_send(Ok(video[..3000].to_vec())).unwrap();
    let streaming = tus(&app, Method::PATCH, &at, &token)
        .header("Upload-Offset", "0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Content-Length", "6000")
        .body(reqwest::Body::wrap_stream(receiver))
        .send();
    let streaming = tokio::spawn(streaming);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let early = tus(&app, Method::DELETE, &at, &token).send().await.unwrap();
    assert_eq!(refusal(early).await.0, StatusCode::LOCKED);
    sender
        .unbounded_send(Ok(video[3000..6000].to_vec()))
        .unwrap();
    drop(sender);
    let appended = streaming.await.unwrap().unwrap();
    assert_eq!(appended.status(), StatusCode::NO_CONTENT);
    let late = tus(&app, Method::DELETE, &at, &token).send().await.unwrap();
    assert_eq!(late.status(), StatusCode::NO_CONTENT);
    assert_eq!(offset_of(&app, &token, &at).await.0, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// A creation whose body is refused leaves no upload behind (its client has no `Location`
/// for it); one whose body stops coming is named in the answer, to go on with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_creation_leaves_nothing_and_a_stalled_one_names_its_upload() {
    let app = TestApp::spawn_with(&[("UPLOAD_IDLE_SECONDS", "2")]).await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let video = std::fs::read(make_mp4(media.path(), "talk.mp4", 2, true)).unwrap();
    let creating = |length: usize| {
        tus(&app, Method::POST, "/uploads", &token)
            .header("Upload-Length", length.to_string())
            .header("Upload-Metadata", metadata(&[("filename", "talk.mp4")]))
            .header("Content-Type", "application/offset+octet-stream")
    };
    // Past its length (413), a wrong checksum (460), not a video (415).
    let beyond = creating(100)
        .body(video[..200].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(refusal(beyond).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    let wrong_sum = creating(video.len())
        .header(
            "Upload-Checksum",
            format!("sha256 {}", STANDARD.encode([0u8; 32])),
        )
        .body(video[..1000].to_vec());
    let wrong_sum = wrong_sum.send().await.unwrap();
    assert_eq!(wrong_sum.status().as_u16(), 460);
    let text = creating(1000).body(vec![b'x'; 1000]).send().await.unwrap();
    assert_eq!(refusal(text).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Cut mid-body by a client that goes away.
    let (sender, receiver) = futures::channel::mpsc::unbounded::<Result<Vec<u8>, std::io::Error>>();
    sender.unbounded_send(Ok(video[..3000].to_vec())).unwrap();
    let cut = creating(video.len())
        .body(reqwest::Body::wrap_stream(receiver))
        .send();
    let cut = tokio::spawn(cut);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    sender
        .unbounded_send(Err(std::io::Error::other("client gone")))
        .unwrap();
    let _ = cut.await;
    // The gateway learns of the cut a moment after the client went.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while storage_used(&app, &token).await != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the cut creation holds room"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    eventually("the cut creation's bytes are removed", || {
        unfinished_bytes(&app).is_empty()
    })
    .await;

    // Stalled: the answer names the upload, which goes on from what arrived.
    let (sender, receiver) = futures::channel::mpsc::unbounded::<Result<Vec<u8>, std::io::Error>>();
    sender.unbounded_send(Ok(video[..3000].to_vec())).unwrap();
    let stalled = creating(video.len()).body(reqwest::Body::wrap_stream(receiver));
    let stalled = stalled.send().await.unwrap();
    assert_eq!(stalled.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(header(&stalled, "upload-offset").as_deref(), Some("3000"));
    let at = location(&stalled);
    drop(sender);
    let rest = patch(&app, &token, &at, 3000, video[3000..].to_vec()).await;
    assert_eq!(rest.status(), StatusCode::NO_CONTENT);
    assert!(header(&rest, "audiomill-job-id").is_some());
    app.stop().await;
}

/// The last chunk arrives while the conversion service is down: the bytes are kept and the
/// job unstarted (503); once it is back, `HEAD` starts the job and names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_the_last_chunk_could_not_start_is_started_by_the_next_head() {
    let mut app = TestApp::spawn_with_durable_temporal(&[]).await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let video = std::fs::read(make_mp4(media.path(), "talk.mp4", 2, true)).unwrap();
    let at = location(&create(&app, &token, video.len() as u64, "talk.mp4").await);
    app.kill_temporal().await;
    let last = patch(&app, &token, &at, 0, video.clone()).await;
    assert_eq!(refusal(last).await.0, StatusCode::SERVICE_UNAVAILABLE);
    let (status, offset) = offset_of(&app, &token, &at).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "still down: {offset:?}"
    );
    app.start_temporal().await;
    let head = tus(&app, Method::HEAD, &at, &token).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        header(&head, "upload-offset"),
        Some(video.len().to_string())
    );
    let job = header(&head, "audiomill-job-id").expect("HEAD started the job");
    let again = tus(&app, Method::HEAD, &at, &token).send().await.unwrap();
    assert_eq!(
        header(&again, "audiomill-job-id"),
        Some(job.clone()),
        "once"
    );
    let done = app.wait_for_job(&token, &job).await;
    assert_eq!(done.last().unwrap()["status"], "completed", "{done:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audio_file_goes_resumably_and_one_whose_content_is_not_its_names_is_refused() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let (flac, wav) = (
        media.path().join("take.flac"),
        media.path().join("memo.wav"),
    );
    for (file, codec) in [(&flac, "flac"), (&wav, "pcm_s16le")] {
        let out = file.to_string_lossy().into_owned();
        ffmpeg(&["-f", "lavfi", "-i", "sine=duration=2", "-c:a", codec, &out]);
    }
    let bytes = std::fs::read(&flac).unwrap();
    let created = create(&app, &token, bytes.len() as u64, "take.flac").await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let at = location(&created);
    let sent = patch(&app, &token, &at, 0, bytes).await;
    assert_eq!(sent.status(), StatusCode::NO_CONTENT);
    let job = header(&sent, "audiomill-job-id").expect("the last chunk names the job");
    app.wait_for_workflow_closed(&job).await;
    let (_, status) = app.status(&token, &job).await;
    assert_eq!(status["status"], "completed", "{status}");

    // A WAV's bytes under a FLAC's name: refused at its first chunk, and nothing kept.
    let bytes = std::fs::read(&wav).unwrap();
    let created = create(&app, &token, bytes.len() as u64, "memo.flac").await;
    let at = location(&created);
    let refused = patch(&app, &token, &at, 0, bytes).await;
    assert_eq!(refused.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(offset_of(&app, &token, &at).await.0, StatusCode::NOT_FOUND);
}
