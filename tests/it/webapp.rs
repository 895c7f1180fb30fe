//! The web app at `/`: what the gateway serves (the page, its hashed assets, their headers),
//! that the committed build is what the sources and the OpenAPI document make, and a person's
//! whole visit in headless Chromium (tests/clients/webapp.py, driven by Playwright).

use crate::common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};
use tokio::io::{AsyncBufReadExt, BufReader};

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

pub(crate) fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A Playwright script of tests/clients against `app`, in Debian's Chromium.
pub(crate) fn playwright(script: &str, app: &TestApp) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(required("TEST_PLAYWRIGHT_PYTHON"));
    command
        .arg(root().join("tests/clients").join(script))
        .env("AUDIOMILL_URL", &app.base)
        .env("CHROMIUM", required("TEST_CHROMIUM"));
    command
}

/// The facts a Playwright script printed as its last line, once it ran to its end.
pub(crate) async fn facts_of(mut script: tokio::process::Command) -> Value {
    facts_of_run(
        script
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("Playwright runs"),
    )
    .await
}

/// As [`facts_of`], for a script that waits for a mailed link (containing `part`) in
/// `link_file`: the test reads the mail and hands the link over (unless the person stopped
/// before asking for it).
async fn facts_with_mailed_link(
    mut script: tokio::process::Command,
    app: &TestApp,
    part: &str,
    link_file: &Path,
) -> Value {
    let piped = std::process::Stdio::piped;
    let mut running = script
        .stdout(piped())
        .stderr(piped())
        .spawn()
        .expect("Playwright runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    while running.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        if let Some(link) = app.mailed_links(part).await.pop() {
            std::fs::write(link_file, link).unwrap();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    facts_of_run(running).await
}

/// As [`facts_of`], for a script already started (its output piped).
async fn facts_of_run(running: tokio::process::Child) -> Value {
    let ran = running.wait_with_output().await.expect("Playwright runs");
    let stdout = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// The names of the page's script and style, as the page refers to them.
fn assets_of(page: &str) -> Vec<String> {
    page.split("\"/app/")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

#[test]
fn the_committed_app_is_what_its_sources_and_the_api_document_build() {
    let output = Command::new("node")
        .arg(root().join("web/build.mjs"))
        .arg("--check")
        .output()
        .expect("node runs (scripts/test-services.sh installs it)");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_are_served_with_their_policy_and_cache_headers() {
    let app = TestApp::spawn().await;
    let page = app.http.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["content-security-policy"], POLICY);
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script>"), "no inline script");
    assert!(
        html.contains("href=\"/docs\""),
        "the app links to the API docs"
    );
    let assets = assets_of(&html);
    assert_eq!(assets.len(), 2, "{html}");

    // What a first visit downloads, as a browser asks for it (compressed).
    let mut first_load = html.len();
    for asset in &assets {
        let url = app.url(&format!("/app/{asset}"));
        let plain = app.http.get(&url).header("Accept-Encoding", "identity");
        let plain = plain.send().await.unwrap();
        assert_eq!(plain.status(), StatusCode::OK);
        assert_eq!(
            plain.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(plain.headers()["content-security-policy"], POLICY);
        assert!(plain.headers().get("content-encoding").is_none());
        let etag = plain.headers()["etag"].clone();
        let body = plain.bytes().await.unwrap();
        for spelling in ["gzip", "GZIP;q=1", "br, gzip", "*"] {
            let packed = app.http.get(&url).header("Accept-Encoding", spelling);
            let packed = packed.send().await.unwrap();
            assert_eq!(packed.headers()["content-encoding"], "gzip", "{spelling}");
            assert_eq!(packed.headers()["vary"], "Accept-Encoding");
            let length: usize = packed.headers()["content-length"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                length < body.len(),
                "{spelling}: {length} of {}",
                body.len()
            );
            if spelling == "gzip" {
                first_load += length;
            }
        }
        let refused = app.http.get(&url).header("Accept-Encoding", "gzip;q=0");
        let refused = refused.send().await.unwrap();
        assert!(refused.headers().get("content-encoding").is_none());
        let again = app.http.get(&url).header("Accept-Encoding", "identity");
        let again = again.header("If-None-Match", etag).send().await.unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let head = app.http.head(&url).header("Accept-Encoding", "identity");
        let head = head.send().await.unwrap();
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(head.headers()["content-length"], body.len().to_string());
    }

    assert!(
        first_load < 200 * 1024,
        "the first load is {first_load} bytes, over 200 KB"
    );

    // Anything else under /app is not there, in the API's error shape and with the policy.
    for path in [
        "/app/",
        "/app/nothing.js",
        "/app/index.html",
        &format!("/app/{}.gz", assets[0]),
        "/app/..%2findex.html",
        "/app/a/b.js",
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(response.headers()["content-security-policy"], POLICY);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "not_found", "{path}");
    }
    for method in [Method::POST, Method::PUT, Method::DELETE] {
        for path in ["/".to_owned(), format!("/app/{}", assets[0])] {
            let response = app.http.request(method.clone(), app.url(&path)).send();
            let response = response.await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_eq!(response.headers()["allow"], "GET, HEAD");
        }
    }
    // The API around it is untouched.
    let health = app.http.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    app.stop().await;
}

/// The clips the visit uses, in `dir`.
fn media(dir: &Path) {
    make_mp4(dir, "talk.mp4", 2, true);
    make_mp4(dir, "song.mp4", 3, true);
    make_mp4(dir, "silent.mp4", 1, false);
    make_long_video(dir, 1500);
    std::fs::write(dir.join("notes.txt"), "not a video").unwrap();
    let big = std::fs::File::create(dir.join("big.mp4")).unwrap();
    big.set_len(11 * 1024 * 1024).unwrap();
}

/// The MP3s of the ZIP at `zip`, unpacked into `into` by another implementation (Python's
/// `zipfile`).
fn unzipped(zip: &Path, into: &Path) -> Vec<String> {
    let script = "import sys, zipfile\n\
                  z = zipfile.ZipFile(sys.argv[1])\n\
                  assert z.testzip() is None\n\
                  z.extractall(sys.argv[2])\n\
                  print('\\n'.join(z.namelist()))";
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(zip)
        .arg(into)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let mut names: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

/// The MP3, the batch's ZIP and the screenshots the visit saved in `out` are what they should be.
fn downloaded_and_shot(out: &Path, facts: &Value) {
    assert_eq!(facts["mp3"], "talk.mp3");
    assert_eq!(facts["from_history"], "song.mp3");
    assert!(is_mp3(&out.join("talk.mp3")));
    let unpacked = out.join("zip");
    let names = unzipped(&out.join("all.zip"), &unpacked);
    assert_eq!(names, ["song.mp3", "talk.mp3"]);
    for name in names {
        assert!(is_mp3(&unpacked.join(name)));
    }
    for shot in [
        "sign-in-desktop",
        "convert-desktop",
        "history-desktop",
        "account-desktop",
        "sign-in-phone",
        "convert-phone",
    ] {
        let png = std::fs::read(out.join(format!("screenshots/{shot}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{shot}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_converts_videos_in_the_web_app_from_sign_in_to_sign_out() {
    let app = TestApp::spawn_with(&[
        ("MAX_FILES_PER_UPLOAD", "25"),
        ("MAX_FILE_SIZE", "10"),
        ("ALLOWED_EXTENSIONS", "mp4,mkv,webm"),
    ])
    .await;
    let email = app.add_user("ann", false).await;
    let token = app.access_token(&email).await;
    // The rules the app checks files by, before sending them.
    let (_, me) = app.get_json(&token, "/me").await;
    assert_eq!(
        me["uploads"],
        serde_json::json!({
            "max_file_bytes": 10 * 1024 * 1024,
            "max_files_per_upload": 25,
            "allowed_extensions": ["mp4", "mkv", "webm"],
            "max_uploads_in_progress": 3,
            "max_unfinished_uploads": 10,
        })
    );
    let media_dir = tempfile::tempdir().unwrap();
    media(media_dir.path());
    // Earlier jobs, so that the history has more than one page.
    let earlier = vec![media_dir.path().join("talk.mp4"); 20];
    let earlier: Vec<&Path> = earlier.iter().map(|p| p.as_path()).collect();
    let (status, started) = app
        .post_upload(&token, upload_form(&earlier, &[]), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // Ended before the visit: running ones would be followed on the page as rows of their own.
    for job in started["jobs"].as_array().unwrap() {
        app.wait_for_job(&token, job["job_id"].as_str().unwrap())
            .await;
    }

    let out = root().join("target/webapp");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let mut visit = playwright("webapp.py", &app);
    visit
        .arg((earlier.len() + 4).to_string())
        .env("AUDIOMILL_EMAIL", &email)
        .env("AUDIOMILL_PASSWORD", PASSWORD)
        .env("AXE", root().join("web/node_modules/axe-core/axe.min.js"))
        .env("MEDIA", media_dir.path())
        .env("OUT", &out);
    let facts = facts_of(visit).await;
    assert_eq!(facts["page_problems"], serde_json::json!([]), "{facts}");
    let checked = facts["accessibility"].as_object().unwrap();
    assert_eq!(checked.len(), 7, "{facts}");
    assert_eq!(facts["phone_light_overflow"], false, "{facts}");
    for (view, found) in checked {
        assert_eq!(found, &serde_json::json!([]), "axe-core on {view}");
    }
    assert!(
        facts["wrong_password"]
            .as_str()
            .unwrap()
            .contains("password"),
        "the server's own sentence: {facts}"
    );
    assert_eq!(
        facts["failed"], "Failed: The video has no sound to convert. Choose a video with sound.",
        "the reason in the person's words, with what to do: {facts}"
    );
    assert_eq!(
        facts["german"],
        serde_json::json!({
            "lang": "de",
            "settings": "Einstellungen für die nächsten Dateien",
            "trim": "Das ganze Video.",
            "back_in_english": "en",
        }),
        "{facts}"
    );
    assert!(
        facts["expired"]
            .as_str()
            .unwrap()
            .contains("session has ended"),
        "{facts}"
    );
    assert!(
        facts["uploads_stored_before_sign_out"].as_u64().unwrap() > 0,
        "{facts}"
    );
    assert_eq!(
        facts["uploads_stored_after_sign_out"],
        serde_json::json!([]),
        "sign-out leaves nothing of the uploads in the browser: {facts}"
    );
    assert_eq!(
        facts["token_after_sign_out"], 401,
        "signing out ends the login"
    );
    assert_eq!(
        facts["session_cookies"],
        serde_json::json!([{"name": "audiomill_session", "path": "/session",
            "httpOnly": true, "sameSite": "Strict", "secure": false}]),
        "one session cookie, for /session only, out of scripts' reach: {facts}"
    );
    assert_eq!(facts["cookies_scripts_see"], "", "{facts}");
    assert!(facts["drop_headings"].as_u64().unwrap() >= 1, "{facts}");
    let zip = facts["history_zip"].as_str().unwrap();
    assert!(
        zip.starts_with("talk and ") && zip.ends_with(" more.zip"),
        "{facts}"
    );
    assert_eq!(
        facts["view_after_reload"][0], facts["view_after_reload"][1],
        "a reload stays signed in, on the same view: {facts}"
    );
    assert_eq!(facts["tokens_stored"], serde_json::json!([]), "{facts}");
    assert_eq!(facts["cookies_after_sign_out"], 0, "{facts}");

    downloaded_and_shot(&out, &facts);
    assert_eq!(
        facts["choices_kept"], "Holiday",
        "the choices outlive a reload when the person asks"
    );
    assert_eq!(facts["title_after_reset"], "", "{facts}");
    assert_eq!(facts["settings_stored_after_reset"], Value::Null, "{facts}");
    assert_eq!(
        facts["trim_preview"], "1:30 of each video, from 30 s to 2:00.",
        "{facts}"
    );
    assert_eq!(
        facts["settings_applied"], "Converted with: good quality, mono.",
        "{facts}"
    );

    // What the server holds agrees with what the person saw.
    let (_, listed) = app.get_json(&token, "/jobs?limit=100").await;
    let statuses: Vec<&str> = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|job| job["filename"] != "talk.mp4" || job["status"] != "completed")
        .map(|job| job["status"].as_str().unwrap())
        .collect();
    // The choices made reached the jobs dropped after them.
    let song = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|job| job["filename"] == "song.mp4")
        .unwrap();
    let (_, status) = app.status(&token, song["job_id"].as_str().unwrap()).await;
    assert_eq!(status["options"]["channels"], 1, "{status}");
    assert_eq!(status["options"]["quality"], 4, "{status}");
    assert_eq!(status["options"]["tags"]["title"], "Holiday", "{status}");
    assert_eq!(
        statuses,
        ["cancelled", "completed"],
        "newest first: long, song (silent deleted): {listed}"
    );
    app.stop().await;
}

/// Every answer that carries a credential or private data says no cache may keep it, and the
/// Swagger UI (on the app's origin) runs under the app's headers: a policy that lets in its
/// own scripts only, in no other page's frame. Checked in Chromium, where the policy binds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_answers_are_stored_nowhere_and_the_docs_run_under_the_apps_headers() {
    let app = TestApp::spawn().await;
    let email = app.add_user("ann", false).await;
    let login = app.login_response(&email, PASSWORD).await;
    assert_eq!(login.headers()["cache-control"], "no-store");
    let pair: Value = login.json().await.unwrap();
    let token = pair["access_token"].as_str().unwrap();
    let refresh = app.http.post(app.url("/token/refresh"));
    let refresh = refresh.json(&serde_json::json!({"refresh_token": pair["refresh_token"]}));
    let refresh = refresh.send().await.unwrap();
    assert_eq!(refresh.status(), StatusCode::OK);
    assert_eq!(refresh.headers()["cache-control"], "no-store");
    let job = "01a24d6c-0391-7095-8f3b-c618c2b55ba9";
    for (method, path) in [
        (Method::GET, "/me".to_owned()),
        (Method::POST, "/validate".to_owned()),
        (Method::GET, "/jobs".to_owned()),
        (Method::GET, format!("/status/{job}")),
        (Method::GET, format!("/jobs/{job}/link")),
        (Method::GET, "/stats/uploads".to_owned()),
    ] {
        let answer = app.send_as(token, method, &path).await;
        assert_eq!(answer.headers()["cache-control"], "no-store", "{path}");
    }

    let docs = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    let headers = docs.headers();
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let policy = headers["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    let scripts = policy
        .split(';')
        .find(|directive| directive.trim().starts_with("script-src"))
        .unwrap();
    assert!(scripts.contains("'sha256-"), "{policy}");
    assert!(!scripts.contains("unsafe"), "{policy}");

    let facts = facts_of(playwright("docs.py", &app)).await;
    assert_eq!(facts["problems"], serde_json::json!([]), "{facts}");
    assert!(facts["operations"].as_u64().unwrap() > 30, "{facts}");
    assert_eq!(facts["framed_operations"], 0, "{facts}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dozen_files_dropped_at_once_are_sent_a_few_at_a_time_and_all_good_ones_convert_and_a_folder_too()
 {
    // Two uploads at once per account, so that ten files must queue.
    let app = TestApp::spawn_with(&[("MAX_CONCURRENT_UPLOADS", "2")]).await;
    let email = app.add_user("ann", false).await;
    let media_dir = tempfile::tempdir().unwrap();
    let clip = make_mp4(media_dir.path(), "clip.mp4", 1, true);
    std::fs::write(media_dir.path().join("notes.txt"), "not a video").unwrap();
    let album = media_dir.path().join("album");
    std::fs::create_dir(&album).unwrap();
    for name in ["10 outro.mp4", "02 song.mp4", "01 intro.mp4", ".hidden.mp4"] {
        std::fs::copy(&clip, album.join(name)).unwrap();
    }
    std::fs::write(album.join("readme.txt"), "not a video").unwrap();
    let mut drop = playwright("many_files.py", &app);
    drop.env("AUDIOMILL_EMAIL", &email)
        .env("AUDIOMILL_PASSWORD", PASSWORD)
        .env("MEDIA", media_dir.path());
    let facts = facts_of(drop).await;
    assert_eq!(facts["done"], 10, "{facts}");
    assert_eq!(facts["failed"], 0, "{facts}");
    let most = facts["most_chunks_at_once"].as_u64().unwrap();
    assert!(
        (1..=2).contains(&most),
        "two at a time, the rest queued: {facts}"
    );
    assert!(
        facts["statuses"].get("429").is_none(),
        "never more sent at once than the account may: {facts}"
    );
    assert_eq!(facts["asks_before_leaving_while_sending"], true, "{facts}");
    assert_eq!(facts["asks_before_leaving_when_sent"], false, "{facts}");
    // What a row said on the way is for people: each one a text of the catalogue, and no
    // internal step name.
    assert_eq!(
        facts["states_not_in_catalogue"],
        serde_json::json!([]),
        "{facts}"
    );
    let states = facts["states"].as_array().unwrap();
    assert!(
        states.iter().any(|s| s == "Waiting to be sent"),
        "{states:?}"
    );
    for state in states {
        let state = state.as_str().unwrap();
        for step in [
            "validate_token",
            "fetch_source",
            "transcode",
            "store_mp3",
            "send_email",
        ] {
            assert!(!state.contains(step), "{state:?} names a step");
        }
    }
    assert_eq!(
        facts["folder_rows"],
        serde_json::json!(["01 intro.mp4", "02 song.mp4", "10 outro.mp4", "readme.txt"]),
        "the folder's files in name order, the hidden one left out: {facts}"
    );
    assert_eq!(
        facts["folder_settings"], "Converted with: constant 192 kbit/s.",
        "{facts}"
    );
    // Thirteen jobs, one for each clip and each video of the folder, the folder's with the
    // advanced choices.
    let token = app.access_token(&email).await;
    let (_, jobs) = app.get_json(&token, "/jobs?limit=20").await;
    let jobs = jobs["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 13, "{jobs:?}");
    let intro = jobs
        .iter()
        .find(|job| job["filename"] == "01 intro.mp4")
        .unwrap();
    let (_, status) = app.status(&token, intro["job_id"].as_str().unwrap()).await;
    assert_eq!(status["options"]["bitrate_mode"], "cbr", "{status}");
    assert_eq!(status["options"]["bitrate"], 192, "{status}");
    let (_, me) = app.get_json(&token, "/me").await;
    assert_eq!(me["quota"]["jobs_today"], 13, "{me}");
}

/// The conversion service is down when a person's upload ends: the page says it waits, and
/// follows the job to "Done" once the service is back, with nothing to click.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_ends_in_an_outage_converts_in_the_web_app_once_the_service_is_back() {
    let mut app = TestApp::spawn_with_durable_temporal(&[]).await;
    let email = app.add_user("ann", false).await;
    let media_dir = tempfile::tempdir().unwrap();
    make_mp4(media_dir.path(), "clip.mp4", 1, true);
    app.kill_temporal().await;
    let mut person = playwright("outage.py", &app);
    person
        .env("AUDIOMILL_EMAIL", &email)
        .env("AUDIOMILL_PASSWORD", PASSWORD)
        .env("MEDIA", media_dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut visit = person.spawn().unwrap();
    let mut said = BufReader::new(visit.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(240), said.next_line()).await;
    if !matches!(&first, Ok(Ok(Some(line))) if line == "waiting") {
        let ran = visit.wait_with_output().await.unwrap();
        panic!("{first:?}{}", String::from_utf8_lossy(&ran.stderr));
    }
    app.wait_for_held_upload().await;
    app.start_temporal().await;
    let last = said.next_line().await.unwrap().unwrap_or_default();
    let ran = visit.wait_with_output().await.unwrap();
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let facts: Value = serde_json::from_str(&last).unwrap();
    let states = facts["states"].as_array().unwrap();
    assert!(
        states
            .iter()
            .all(|s| !s.as_str().unwrap().starts_with("Failed")),
        "{facts}"
    );
    assert!(
        states.iter().any(|s| s.as_str().unwrap()
            == "The conversion service is unavailable right now; trying again by itself"),
        "the wait is said: {facts}"
    );
    assert_eq!(facts["buttons"][0], "Download MP3", "{facts}");
    let token = app.access_token(&email).await;
    let (_, jobs) = app.get_json(&token, "/jobs").await;
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 1, "one job: {jobs}");
    assert_eq!(jobs["jobs"][0]["status"], "completed", "{jobs}");
    app.stop().await;
}

/// A reload mid-upload and mid-conversion loses nothing: the converting job is followed again
/// (with its cancel button), and the half-sent file, chosen again, goes on from where it stood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_mid_upload_and_mid_conversion_finds_everything_again() {
    let app = TestApp::spawn().await;
    let email = app.add_user("ann", false).await;
    let media_dir = tempfile::tempdir().unwrap();
    // Long enough to be converting still when the history is looked at after the reload.
    make_long_video(media_dir.path(), 3000);
    let concert = music_video(media_dir.path(), "concert.mp4", 240);
    let size = std::fs::metadata(&concert).unwrap().len();
    assert!(
        size > 2 << 20,
        "slow enough to reload mid-upload: {size} bytes"
    );
    let mut person = playwright("reloads.py", &app);
    person
        .env("AUDIOMILL_EMAIL", &email)
        .env("AUDIOMILL_PASSWORD", PASSWORD)
        .env("MEDIA", media_dir.path());
    let facts = facts_of(person).await;
    assert_eq!(facts["failed"], 0, "{facts}");
    assert!(
        facts["unfinished"]
            .as_str()
            .unwrap()
            .starts_with("concert.mp4"),
        "{facts}"
    );
    assert_eq!(facts["unfinished_left"], 0, "{facts}");
    assert_eq!(
        facts["history_buttons"],
        serde_json::json!(["Cancel", "Delete"]),
        "{facts}"
    );
    let first = facts["offsets"][0].as_i64().unwrap();
    assert!(first > 0, "the upload went on, not from 0: {facts}");
    assert!(
        facts["followed_again_with"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b == "Cancel" || b == "Download MP3"),
        "{facts}"
    );
    let token = app.access_token(&email).await;
    let (_, jobs) = app.get_json(&token, "/jobs").await;
    let statuses: Vec<&Value> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| &job["status"])
        .collect();
    assert_eq!(statuses, ["completed", "completed"], "{jobs}");
    app.stop().await;
}

/// The account page: an API key made (shown once, working from outside the browser with only
/// what was ticked), listed without its secret and revoked; the password changed; signing out
/// everywhere from a second browser ends the first one's sign-in too; and a forgotten password
/// chosen again through the mailed link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_manages_keys_the_password_and_sign_ins_on_the_account_page() {
    let app = TestApp::spawn().await;
    let email = app.add_user("ann", false).await;
    let link_file = app.data.path().join("reset-link");
    let mut person = playwright("account.py", &app);
    person
        .env("AUDIOMILL_EMAIL", &email)
        .env("AUDIOMILL_PASSWORD", PASSWORD)
        .env("LINK_FILE", &link_file)
        .env("SHOTS", root().join("target/screenshots"));
    let facts = facts_with_mailed_link(person, &app, "/#/reset?token=", &link_file).await;
    assert_eq!(facts["admin_scope_offered"], false, "{facts}");
    assert_eq!(facts["admin_link_shown"], false, "{facts}");
    assert_eq!(facts["key_shape"], true, "{facts}");
    assert_eq!(facts["key_works"], 200, "{facts}");
    assert_eq!(facts["key_may_not_read_webhooks"], 403, "{facts}");
    assert!(
        facts["listed"]
            .as_str()
            .unwrap()
            .starts_with("phone shortcut: amk_"),
        "{facts}"
    );
    assert_eq!(facts["secret_listed"], false, "{facts}");
    assert_eq!(facts["revoked_key"], 401, "{facts}");
    assert_eq!(
        facts["wrong_current"], "The current password is wrong.",
        "{facts}"
    );
    assert_eq!(facts["first_browser_signed_out"], true, "{facts}");
    assert_eq!(facts["console_errors"], serde_json::json!([]), "{facts}");
    assert_eq!(
        facts["after_reset"], "Your password is changed; sign in with it.",
        "{facts}"
    );
    assert_eq!(facts["token_left_in_address"], false, "{facts}");
    assert_eq!(facts["signed_in_with_chosen"], true, "{facts}");
    let renewed = app.login_response(&email, "chosen through the link").await;
    assert_eq!(renewed.status(), reqwest::StatusCode::OK);
    app.stop().await;
}

/// The admin page: accounts found by part of their address, one added, given its own limits,
/// made an admin and turned off, each change as the API then reports it; and someone invited,
/// who makes their account through the mailed link and signs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_finds_adds_limits_promotes_turns_off_and_invites_accounts() {
    let app = TestApp::spawn().await;
    let admin = app.add_user("root", true).await;
    let other = app.add_user("zoe", false).await;
    let newcomer = app.email("carl");
    let invitee = app.email("ida");
    let link_file = app.data.path().join("invitation-link");
    let mut person = playwright("admin.py", &app);
    person
        .env("AUDIOMILL_EMAIL", &admin)
        .env("AUDIOMILL_PASSWORD", PASSWORD)
        .env("NEWCOMER", &newcomer)
        .env("OTHER", &other)
        .env("INVITEE", &invitee)
        .env("LINK_FILE", &link_file)
        .env("SHOTS", root().join("target/screenshots"));
    let facts = facts_with_mailed_link(person, &app, "/#/join?token=", &link_file).await;
    assert_eq!(
        facts["invited"],
        format!("An invitation is on its way to {invitee}; its link works for 7 days."),
        "{facts}"
    );
    assert_eq!(facts["joined"], "Your account is made; sign in.", "{facts}");
    assert_eq!(facts["invitee_signed_in"], true, "{facts}");
    assert_eq!(facts["newcomer_state"], "turned off, admin", "{facts}");
    assert_eq!(facts["console_errors"], serde_json::json!([]), "{facts}");

    let token = app.access_token(&admin).await;
    let (_, page) = app.get_json(&token, "/users?search=carl").await;
    let carl = &page["users"][0];
    assert_eq!(carl["email"], newcomer.as_str(), "{page}");
    assert_eq!(
        (&carl["admin"], &carl["active"]),
        (&true.into(), &false.into())
    );
    assert_eq!(
        carl["limits"],
        serde_json::json!({"storage_limit_mb": 100, "jobs_per_day_limit": 5})
    );
    let refused = app.login_response(&newcomer, "a first password").await;
    assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);
    app.stop().await;
}

/// A link pasted in the web app: the server fetches the video (its credentials never shown on
/// the page), converts it with the settings chosen, and a link to nothing says why it failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_converts_a_video_from_a_pasted_link() {
    let app = TestApp::spawn_with(&crate::imports::SOURCES_ON_LOOPBACK).await;
    let email = app.add_user("ann", false).await;
    let dir = tempfile::tempdir().unwrap();
    let video = std::fs::read(make_mp4(dir.path(), "talk.mp4", 2, true)).unwrap();
    let (base, seen) = crate::imports::source_server(video).await;
    let link = base.replace("http://", "http://ann:s3cret@") + "/talk.mp4?signature=hush";
    let mut person = playwright("link.py", &app);
    person
        .env("AUDIOMILL_EMAIL", &email)
        .env("AUDIOMILL_PASSWORD", PASSWORD)
        .env("VIDEO_LINK", &link)
        .env("MISSING_LINK", format!("{base}/missing.mp4"))
        .env("SHOTS", root().join("target/screenshots"));
    let facts = facts_of(person).await;
    assert_eq!(facts["name"], "talk.mp4", "{facts}");
    assert_eq!(facts["size"], "link", "{facts}");
    assert_eq!(facts["field_emptied"], true, "{facts}");
    assert_eq!(
        facts["failure"], "Failed: 127.0.0.1 has no video at this link (404 Not Found).",
        "{facts}"
    );
    let page = facts["page_text"].as_str().unwrap();
    assert!(!page.contains("s3cret") && !page.contains("hush"), "{page}");
    assert_eq!(facts["console_errors"], serde_json::json!([]), "{facts}");
    assert_eq!(seen.lock().unwrap().hits.get("talk.mp4"), Some(&1));
    let token = app.access_token(&email).await;
    let (_, listing) = app.get_json(&token, "/jobs").await;
    let job = &listing["jobs"][1];
    assert_eq!(job["status"], "completed", "{listing}");
    let (_, status) = app.status(&token, job["job_id"].as_str().unwrap()).await;
    assert_eq!(status["options"]["preset"], "voice", "{status}");
    app.stop().await;
}

/// The account page keeps a bucket of the person's (its secret key never shown again), and
/// the converter's page writes a dropped video's MP3 there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_saves_their_bucket_and_has_an_mp3_written_there_too() {
    let app = TestApp::spawn_with(&[
        ("IMPORT_ALLOW_PRIVATE", "true"),
        (
            "CONNECTION_SECRET_KEY",
            "a connection key that is long enough for tests",
        ),
    ])
    .await;
    let email = app.add_user("ann", false).await;
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    std::fs::create_dir_all(storage.join("videos")).unwrap();
    let (_server, endpoint) = crate::connections::user_storage(&storage);
    let video = make_mp4(dir.path(), "talk.mp4", 2, true);
    let mut person = playwright("storage.py", &app);
    person
        .env("AUDIOMILL_EMAIL", &email)
        .env("AUDIOMILL_PASSWORD", PASSWORD)
        .env("ENDPOINT", &endpoint)
        .env("BUCKET", "videos")
        .env("ACCESS_KEY", crate::connections::KEY)
        .env("SECRET_KEY", crate::connections::SECRET)
        .env("VIDEO", &video)
        .env("SHOTS", root().join("target/screenshots"));
    let facts = facts_of(person).await;
    assert_eq!(
        facts["listed"],
        format!("my bucket: videos/mp3s/ at {endpoint}"),
        "{facts}"
    );
    assert_eq!(facts["secret_shown"], false, "{facts}");
    assert_eq!(facts["console_errors"], serde_json::json!([]), "{facts}");
    assert!(
        is_mp3(&storage.join("videos/mp3s/talk.mp3")),
        "the MP3 is in the bucket"
    );
    app.stop().await;
}

/// The account page watches a folder of the person's bucket: a video there is converted and
/// its MP3 written back; the watch is paused, resumed and deleted from the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_watches_a_folder_of_their_bucket_from_the_account_page() {
    let app = TestApp::spawn_with(&[
        ("IMPORT_ALLOW_PRIVATE", "true"),
        (
            "CONNECTION_SECRET_KEY",
            "a connection key that is long enough for tests",
        ),
    ])
    .await;
    let email = app.add_user("wendy", false).await;
    let token = app.login(&email).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    std::fs::create_dir_all(storage.join("videos/in/camera")).unwrap();
    make_mp4(&storage.join("videos/in/camera"), "talk.mp4", 1, true);
    let (_server, endpoint) = crate::connections::user_storage(&storage);
    crate::watches::connect(&app, &token, &endpoint).await;
    let mut person = playwright("watches.py", &app);
    person
        .env("AUDIOMILL_EMAIL", &email)
        .env("AUDIOMILL_PASSWORD", PASSWORD)
        .env("CONNECTION_NAME", "my storage")
        .env("SHOTS", root().join("target/screenshots"));
    let facts = facts_of(person).await;
    assert_eq!(facts["listed"], "camera: camera/ in my storage", "{facts}");
    assert_eq!(
        facts["converted"], "watching, 1 converted or under way (0 now)",
        "{facts}"
    );
    assert_eq!(facts["none_shown"], true, "{facts}");
    assert_eq!(facts["console_errors"], serde_json::json!([]), "{facts}");
    assert!(
        is_mp3(&storage.join("videos/in/mp3/talk.mp3")),
        "the MP3 is in the bucket"
    );
    app.stop().await;
}
