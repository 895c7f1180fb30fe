//! Upload to download, through a real Temporal server, with real media.

use crate::common;

use common::*;
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploaded_mp4_becomes_a_downloadable_mp3_with_one_email() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let video = make_mp4(media.path(), "Holiday \"2026\" é.mp4", 10, true);

    let job_id = app.start_job(&token, &video).await;
    let seen = app.wait_for_job(&token, &job_id).await;
    let last = seen.last().unwrap();
    assert_eq!(last["status"], "completed", "{last}");
    assert_eq!(last["progress"], 100);
    assert_eq!(last["filename"], "Holiday \"2026\" é.mp4");
    assert!(
        last["completed_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert!(
        last["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    for status in &seen {
        let progress = status["progress"].as_u64().unwrap();
        assert!(progress <= 100);
    }
    // The step only moves forward (it may be null between two steps).
    let order = [
        "validate_token",
        "fetch_source",
        "transcode",
        "store_mp3",
        "send_email",
    ];
    let steps: Vec<usize> = seen
        .iter()
        .filter_map(|s| s["step"].as_str())
        .map(|step| order.iter().position(|o| *o == step).unwrap())
        .collect();
    assert!(steps.is_sorted(), "the step went back: {seen:?}");

    // The MP3 itself.
    let response = app.download(&token, &job_id).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "audio/mpeg");
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"Holiday _2026_ _.mp3\""),
        "{disposition}"
    );
    assert!(
        disposition.contains("filename*=UTF-8''Holiday%20%222026%22%20%C3%A9.mp3"),
        "{disposition}"
    );
    let mp3 = response.bytes().await.unwrap();
    let mp3_path = media.path().join("out.mp3");
    std::fs::write(&mp3_path, &mp3).unwrap();
    let (codec, duration) = probe_audio(&mp3_path);
    assert_eq!(codec, "mp3");
    assert!((duration - 10.0).abs() <= 0.2, "the MP3 lasts {duration} s");

    // A byte range, and the older `?fid=` form.
    let partial = app
        .http
        .get(app.url(&format!("/download?fid={job_id}")))
        .bearer_auth(&token)
        .header("Range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(partial.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        partial.headers()["content-range"],
        format!("bytes 100-199/{}", mp3.len())
    );
    assert_eq!(partial.bytes().await.unwrap(), mp3[100..200]);
    let beyond = app
        .http
        .get(app.url(&format!("/download/{job_id}")))
        .bearer_auth(&token)
        .header("Range", format!("bytes={}-", mp3.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(error_code(beyond).await, "range_not_satisfiable");
    // A `bytes=` range that does not parse is ignored (RFC 9110), like another unit.
    let ranged = |range: &'static str| {
        app.http
            .get(app.url(&format!("/download/{job_id}")))
            .bearer_auth(&token)
            .header("Range", range)
            .send()
    };
    for garbled in ["bytes=abc", "bytes=5-1", "bytes=-"] {
        let whole = ranged(garbled).await.unwrap();
        assert_eq!(whole.status(), StatusCode::OK, "{garbled}");
        assert_eq!(whole.bytes().await.unwrap(), mp3, "{garbled}");
    }
    let other_unit = ranged("items=0-1").await.unwrap();
    assert_eq!(other_unit.status(), StatusCode::OK);
    assert_eq!(other_unit.bytes().await.unwrap(), mp3);

    // Exactly one e-mail, naming the file and linking to the download.
    let mails = app.mails().await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(
        mails[0].contains(&format!("To: {}", app.email("ann"))),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains(&format!("/download/{job_id}")));
    assert!(mails[0].contains("Holiday"));
    // As sent: valid MIME, a text and an HTML part, and a Message-ID naming the job.
    let raw = app.raw_mails().await;
    assert_eq!(raw.len(), 1);
    let mail = mailparse::parse_mail(&raw[0]).expect("the message parses as MIME");
    assert_eq!(mail.ctype.mimetype, "multipart/alternative");
    let parts: Vec<(String, String)> = mail
        .subparts
        .iter()
        .map(|part| (part.ctype.mimetype.clone(), part.get_body().unwrap()))
        .collect();
    assert_eq!(parts[0].0, "text/plain");
    assert_eq!(parts[1].0, "text/html");
    for (kind, body) in &parts {
        assert!(
            body.contains(&format!("/download/{job_id}")),
            "{kind}: {body}"
        );
        assert!(body.contains("Holiday"), "{kind}: {body}");
    }
    let message_id = mail
        .headers
        .iter()
        .find(|h| h.get_key().eq_ignore_ascii_case("message-id"))
        .map(|h| h.get_value())
        .expect("a Message-ID");
    assert!(
        message_id.starts_with(&format!("<{job_id}.")),
        "{message_id}"
    );

    // Another user sees nothing; an admin sees it.
    let other = app.user_token("bob").await;
    let (code, body) = app.status(&other, &job_id).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    let (missing_code, missing_body) = app
        .status(&other, "01936d5e-7c1a-7d2e-8f00-4b1e2a3c4d5e")
        .await;
    assert_eq!(
        (missing_code, &missing_body),
        (code, &body),
        "another user's job must look missing"
    );
    let download = app.download(&other, &job_id).await;
    assert_eq!(download.status(), StatusCode::NOT_FOUND);
    let admin = app.admin_token("root").await;
    assert_eq!(app.status(&admin, &job_id).await.0, StatusCode::OK);

    // The scratch files of the worker are gone; once the run has ended, the bucket holds the
    // MP3 alone (by default the video goes as soon as its MP3 is stored).
    app.wait_for_workflow_closed(&job_id).await;
    let work = app.scratch_files();
    assert!(work.is_empty(), "the worker left {work:?}");
    assert_eq!(app.objects(), [format!("mp3/{job_id}.mp3")]);

    // An admin may delete any user's data; then the job is gone for its owner too.
    let deleted = app.delete_job(&admin, &job_id).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(app.objects().is_empty(), "{:?}", app.objects());
    assert_eq!(app.status(&token, &job_id).await.0, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_media_ends_failed_with_a_clear_sentence_and_no_email() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();

    let whole = make_mp4(media.path(), "whole.mp4", 6, true);
    let bytes = std::fs::read(&whole).unwrap();
    let truncated = media.path().join("truncated.mp4");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let silent = make_mp4(media.path(), "silent.mp4", 2, false);

    for (path, expected) in [
        (&truncated, "damaged or truncated"),
        (&silent, "no audio track"),
    ] {
        let job_id = app.start_job(&token, path).await;
        let seen = app.wait_for_job(&token, &job_id).await;
        let last = seen.last().unwrap();
        assert_eq!(last["status"], "failed", "{last}");
        assert_eq!(last["step"], "transcode", "{last}");
        assert!(last["completed_at"].is_null(), "nothing completed: {last}");
        let error = last["error"].as_str().unwrap();
        assert!(error.contains(expected), "{}: {error}", path.display());
        assert!(
            !error.contains("Activity") && !error.contains('/'),
            "internals leaked: {error}"
        );

        let download = app.download(&token, &job_id).await;
        assert_eq!(download.status(), StatusCode::CONFLICT);
        assert_eq!(error_code(download).await, "not_ready");
    }
    assert_eq!(app.mail_count().await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_answers_while_no_worker_runs_and_the_job_waits_for_one() {
    let mut app = TestApp::spawn().await;
    app.stop_worker().await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let video = make_mp4(media.path(), "waiting.mp4", 2, true);

    let job_id = app.start_job(&token, &video).await;
    for _ in 0..5 {
        let (code, body) = app.status(&token, &job_id).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "queued", "{body}");
        assert_eq!(body["progress"], 0);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let download = app.download(&token, &job_id).await;
    assert_eq!(download.status(), StatusCode::CONFLICT);
    app.stop().await;
}

/// The token is checked before the source is fetched: a job whose login was revoked before
/// any worker took it fails at `validate_token`, fetches and converts nothing, sends nothing,
/// and leaves nothing on any worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_login_was_revoked_fails_at_validation_and_leaves_nothing() {
    let mut app = TestApp::spawn().await;
    app.stop_worker().await;
    let ann = app.add_user("ann", false).await;
    let revoked = app.access_token(&ann).await;
    let media = tempfile::tempdir().unwrap();
    let video = make_mp4(media.path(), "talk.mp4", 2, true);
    let job_id = app.start_job(&revoked, &video).await;
    let logout = app
        .http
        .post(app.url("/logout"))
        .bearer_auth(&revoked)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);

    let worker = app.start_worker().await;
    let token = app.access_token(&ann).await;
    let seen = app.wait_for_job(&token, &job_id).await;
    let last = seen.last().unwrap();
    assert_eq!(last["status"], "failed", "{last}");
    assert_eq!(last["step"], "validate_token", "{last}");
    let error = last["error"].as_str().unwrap();
    assert!(error.contains("revoked"), "{error}");
    app.wait_for_workflow_closed(&job_id).await;
    let steps = app.activities_run(&job_id).await;
    assert!(
        !steps
            .iter()
            .any(|s| s == "fetch_source" || s.starts_with("transcode")),
        "{steps:?}"
    );
    eventually("the worker keeps nothing of the job", || {
        app.scratch_files().is_empty()
    })
    .await;
    assert!(
        app.objects().iter().all(|key| !key.starts_with("mp3/")),
        "{:?}",
        app.objects()
    );
    assert_eq!(app.mail_count().await, 0);
    worker.stop().await.unwrap();
    app.stop().await;
}

/// A worker with one transcode slot kept busy: a long job transcoding, a short one after it.
struct BusyWorker {
    first: String,
    second: String,
    /// A short video, for more jobs.
    short: std::path::PathBuf,
    _media: tempfile::TempDir,
}

impl BusyWorker {
    async fn start(app: &TestApp, token: &str) -> Self {
        let media = tempfile::tempdir().unwrap();
        let long = make_long_video(media.path(), 1500);
        let short = make_mp4(media.path(), "short.mp4", 2, true);
        let first = app.start_job(token, &long).await;
        app.wait_for_transcode(token, &first).await;
        let second = app.start_job(token, &short).await;
        Self {
            first,
            second,
            short,
            _media: media,
        }
    }
}

/// A job that waits for a worker's room is checked again when the worker takes it: its login
/// ended meanwhile, so it fetches, converts and sends nothing, while the jobs ahead of it (of
/// the same user's other login) complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_job_whose_login_ended_while_it_waited_is_not_fetched() {
    let app = TestApp::spawn_with(&[("MAX_CONCURRENT_TRANSCODES", "1")]).await;
    let ann = app.add_user("ann", false).await;
    let token = app.access_token(&ann).await;
    // One transcode slot and one job fetched ahead: the worker's room is full.
    let busy = BusyWorker::start(&app, &token).await;
    let (first, second, short) = (busy.first, busy.second, busy.short);
    let leaving = app.access_token(&ann).await;
    let third = app.start_job(&leaving, &short).await;
    let (_, waiting) = app.status(&token, &third).await;
    assert_eq!(waiting["status"], "queued", "{waiting}");
    let logout = app.http.post(app.url("/logout")).bearer_auth(&leaving);
    assert_eq!(
        logout.send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );

    for job in [&first, &second] {
        let seen = app.wait_for_job(&token, job).await;
        assert_eq!(seen.last().unwrap()["status"], "completed", "{seen:?}");
    }
    let seen = app.wait_for_job(&token, &third).await;
    let last = seen.last().unwrap();
    assert_eq!(last["status"], "failed", "{last}");
    assert!(
        last["error"].as_str().unwrap().contains("revoked"),
        "{last}"
    );
    app.wait_for_workflow_closed(&third).await;
    let steps = app.activities_run(&third).await;
    assert!(
        !steps.iter().any(|s| s.starts_with("transcode")),
        "{steps:?}"
    );
    let mp3s = app
        .objects()
        .into_iter()
        .filter(|key| key.starts_with("mp3/"));
    assert_eq!(mp3s.count(), 2, "{:?}", app.objects());
    // "completed" comes with the MP3; the e-mail follows before the run closes.
    for job in [&first, &second] {
        app.wait_for_workflow_closed(job).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while app.mail_count().await < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the two e-mails never came"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(app.mail_count().await, 2, "none for the refused job");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_mid_transcode_stops_cleanly_and_can_then_be_deleted() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let long = make_long_video(media.path(), 1500);
    let job_id = app.start_job(&token, &long).await;

    app.wait_for_transcode(&token, &job_id).await;
    let cancelling = app.delete_job(&token, &job_id).await;
    assert_eq!(cancelling.status(), StatusCode::ACCEPTED);
    let body: serde_json::Value = cancelling.json().await.unwrap();
    assert_eq!(body["status"], "cancelling");

    let seen = app.wait_for_job(&token, &job_id).await;
    let last = seen.last().unwrap();
    assert_eq!(last["status"], "cancelled", "{last}");
    assert!(
        last["error"]
            .as_str()
            .is_some_and(|e| e.contains("cancelled")),
        "{last}"
    );
    let leftovers = app.scratch_files();
    assert!(leftovers.is_empty(), "the worker kept {leftovers:?}");
    assert_eq!(app.mail_count().await, 0, "a cancelled job sends no e-mail");
    assert!(
        app.objects().iter().all(|key| !key.starts_with("mp3/")),
        "{:?}",
        app.objects()
    );

    // Another user cannot delete it; its owner deletes the data.
    let other = app.user_token("bob").await;
    let foreign = app.delete_job(&other, &job_id).await;
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.delete_job(&token, &job_id).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(app.objects().is_empty(), "{:?}", app.objects());
    assert_eq!(app.status(&token, &job_id).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.delete_job(&token, &job_id).await.status(),
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_worker_leaves_new_jobs_queued_until_it_has_room() {
    let app = TestApp::spawn_with(&[("MAX_CONCURRENT_TRANSCODES", "1")]).await;
    let token = app.user_token("ann").await;
    let busy = BusyWorker::start(&app, &token).await;
    let (first, second) = (busy.first, busy.second);

    // The only transcode slot is taken: the second job is queued until the first transcode
    // ends.
    let mut queued_seen = 0;
    loop {
        let (_, waiting) = app.status(&token, &second).await;
        // Between two steps no step is named: that is not yet the transcode either.
        let transcoding = waiting["status"] == "completed"
            || ["transcode", "store_mp3", "send_email"]
                .contains(&waiting["step"].as_str().unwrap_or(""));
        if waiting["status"] == "queued" {
            queued_seen += 1;
        } else if transcoding {
            let (_, busy) = app.status(&token, &first).await;
            let transcoded = busy["status"] == "completed"
                || ["store_mp3", "send_email"].contains(&busy["step"].as_str().unwrap_or(""));
            assert!(
                transcoded,
                "the second job started ({waiting}) while the first was {busy}"
            );
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(queued_seen > 3, "the second job was never seen queued");

    for job in [&first, &second] {
        let seen = app.wait_for_job(&token, job).await;
        assert_eq!(seen.last().unwrap()["status"], "completed", "{seen:?}");
    }
    let leftovers = app.scratch_files();
    assert!(leftovers.is_empty(), "the worker kept {leftovers:?}");
    app.stop().await;
}

/// Hours of silence in a tiny live-mode MKV: no duration is declared anywhere.
fn make_media_bomb(dir: &std::path::Path, hours: u32) -> std::path::PathBuf {
    let path = dir.join("bomb.mkv");
    let seconds = (hours * 3600).to_string();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "anullsrc=r=8000:cl=mono",
        "-t",
        &seconds,
        "-c:a",
        "flac",
        "-frame_size",
        "65535",
        "-live",
        "1",
        "-f",
        "matroska",
        path.to_str().unwrap(),
    ]);
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_media_bomb_fails_as_too_long_without_filling_the_worker() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let bomb = make_media_bomb(media.path(), 5);
    let job_id = app.start_job(&token, &bomb).await;
    let seen = app.wait_for_job(&token, &job_id).await;
    let last = seen.last().unwrap();
    assert_eq!(last["status"], "failed", "{last}");
    assert_eq!(last["step"], "transcode", "{last}");
    let error = last["error"].as_str().unwrap();
    assert!(error.contains("longer than"), "{error}");
    assert_eq!(app.mail_count().await, 0);
    assert!(
        app.objects().iter().all(|key| !key.starts_with("mp3/")),
        "{:?}",
        app.objects()
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_without_a_duration_shows_progress_and_can_be_cancelled() {
    // Allow the five hours, so the transcode runs long enough to be cancelled.
    let app = TestApp::spawn_with(&[
        ("MAX_SECONDS_PER_MB", "100000000"),
        ("MAX_MEDIA_SECONDS", "100000"),
    ])
    .await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let bomb = make_media_bomb(media.path(), 24);
    let job_id = app.start_job(&token, &bomb).await;
    // Progress moves (by bytes read) although no duration is declared.
    app.wait_for_transcode(&token, &job_id).await;
    let asked = std::time::Instant::now();
    assert_eq!(
        app.delete_job(&token, &job_id).await.status(),
        StatusCode::ACCEPTED
    );
    let seen = app.wait_for_job(&token, &job_id).await;
    assert_eq!(seen.last().unwrap()["status"], "cancelled", "{seen:?}");
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(20),
        "the cancel took {:?}",
        asked.elapsed()
    );
    let leftovers = app.scratch_files();
    assert!(leftovers.is_empty(), "the worker kept {leftovers:?}");
    app.stop().await;
}

/// A stand-in for the converter's child process that counts the jobs it is given (in `runs`)
/// and then misbehaves. Like the real one it waits for its job on stdin (the worker starts
/// children ahead) and ends quietly when stdin closes before one comes.
fn misbehaving_converter(dir: &std::path::Path, action: &str) -> std::path::PathBuf {
    converter_script(
        dir,
        &format!(
            "read -r job || exit 0\necho run >> '{runs}'\n{action}\n",
            runs = dir.join("runs").display()
        ),
    )
}

/// Runs one short job with a converter that misbehaves as `action` says; returns the job's
/// last status and how many jobs the converter was given (a fetch gives it none).
async fn job_with_misbehaving_converter(
    action: &str,
    silence: std::time::Duration,
) -> (serde_json::Value, usize) {
    let scripts = tempfile::tempdir().unwrap();
    let converter = misbehaving_converter(scripts.path(), action);
    let app = TestApp::spawn_tuned(&[], |worker| {
        worker.transcoder.executable = converter;
        worker.transcoder.silence = silence;
    })
    .await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let video = make_mp4(media.path(), "clip.mp4", 2, true);
    let job_id = app.start_job(&token, &video).await;
    let last = app.wait_for_job(&token, &job_id).await.pop().unwrap();
    // The process holding gateway and worker is alive and answers.
    let health = app.http.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    app.stop().await;
    let runs = std::fs::read_to_string(scripts.path().join("runs")).unwrap_or_default();
    (last, runs.lines().count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_converter_that_crashes_fails_its_job_after_one_retry_and_the_worker_lives_on() {
    let (last, runs) =
        job_with_misbehaving_converter("kill -SEGV $$", std::time::Duration::from_secs(60)).await;
    assert_eq!(last["status"], "failed", "{last}");
    let error = last["error"].as_str().unwrap();
    assert!(error.contains("crashed (signal 11)"), "{error}");
    assert_eq!(runs, 2, "one attempt and one retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_converter_that_hangs_is_stopped_and_its_job_fails() {
    let (last, runs) =
        job_with_misbehaving_converter("exec sleep 600", std::time::Duration::from_secs(2)).await;
    assert_eq!(last["status"], "failed", "{last}");
    let error = last["error"].as_str().unwrap();
    assert!(error.contains("stopped responding"), "{error}");
    assert_eq!(runs, 2, "one attempt and one retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_statistics_count_every_job_by_how_it_ended() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let good = make_mp4(media.path(), "good.mp4", 2, true);
    let silent = make_mp4(media.path(), "silent.mp4", 2, false);
    let long = make_long_video(media.path(), 1500);
    let size = |path: &std::path::Path| std::fs::metadata(path).unwrap().len();

    let completed = app.start_job(&token, &good).await;
    let failed = app.start_job(&token, &silent).await;
    for job_id in [&completed, &failed] {
        app.wait_for_job(&token, job_id).await;
    }
    let cancelled = app.start_job(&token, &long).await;
    app.wait_for_transcode(&token, &cancelled).await;
    assert_eq!(
        app.delete_job(&token, &cancelled).await.status(),
        StatusCode::ACCEPTED
    );
    let last = app.wait_for_job(&token, &cancelled).await;
    assert_eq!(last.last().unwrap()["status"], "cancelled");

    let stats = |token: &str, query: &str| {
        app.http
            .get(app.url(&format!("/stats/uploads{query}")))
            .bearer_auth(token)
            .send()
    };
    let mine: serde_json::Value = stats(&token, "").await.unwrap().json().await.unwrap();
    assert_eq!(mine["scope"], "mine");
    assert_eq!(mine["uploads"], 3, "{mine}");
    let by_status = &mine["by_status"];
    for (status, count) in [
        ("completed", 1),
        ("failed", 1),
        ("cancelled", 1),
        ("in_progress", 0),
    ] {
        assert_eq!(by_status[status], count, "{status}: {mine}");
    }
    let bytes = size(&good) + size(&silent) + size(&long);
    assert_eq!(mine["bytes_uploaded"], bytes);
    assert_eq!(mine["file_size"]["p95_bytes"], size(&long).max(size(&good)));
    assert_eq!(mine["conversion"]["jobs"], 1);
    assert!(mine["conversion"]["p95_seconds"].as_f64().unwrap() > 0.0);
    let days = mine["per_day"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    assert_eq!(days.last().unwrap()["uploads"], 3, "today: {mine}");
    assert_eq!(
        days.last().unwrap()["date"],
        chrono::Utc::now().format("%Y-%m-%d").to_string()
    );

    // Someone else sees only their own, may not see everyone's; an admin may.
    let bob = app.user_token("bob").await;
    let theirs: serde_json::Value = stats(&bob, "?scope=mine")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["uploads"], 0);
    assert!(theirs["file_size"]["p50_bytes"].is_null());
    let forbidden = stats(&bob, "?scope=all").await.unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    assert_eq!(error_code(forbidden).await, "forbidden");
    let invalid = stats(&bob, "?scope=everyone").await.unwrap();
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(invalid).await, "bad_request");
    let anonymous = app
        .http
        .get(app.url("/stats/uploads"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let admin = app.admin_token("root").await;
    let all: serde_json::Value = stats(&admin, "?scope=all")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["scope"], "all");
    assert!(all["uploads"].as_u64().unwrap() >= 3, "{all}");

    // The worker counted the failure by its type and the cancellation.
    let metrics = app.metrics_page().await;
    for series in [
        "audiomill_jobs_failed_total{type=\"NoAudioStream\"}",
        "audiomill_jobs_cancelled_total",
    ] {
        assert!(
            metrics.lines().any(|line| line.starts_with(series)),
            "{series} missing"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_listed_newest_first_a_page_at_a_time() {
    let app = TestApp::spawn_with(&[("MAX_CONCURRENT_UPLOADS", "50")]).await;
    let ann = app.add_user("ann", false).await;
    let token = app.access_token(&ann).await;
    let media = tempfile::tempdir().unwrap();
    let clip = make_mp4(media.path(), "clip.mp4", 1, true);
    let mut started = Vec::new();
    for _ in 0..5 {
        started.push(app.start_job(&token, &clip).await);
    }
    let list = |token: String, query: String| {
        let request = app
            .http
            .get(app.url(&format!("/jobs{query}")))
            .bearer_auth(token);
        async move { request.send().await.unwrap() }
    };
    let page = |token: &str, query: &str| {
        let answer = list(token.to_owned(), query.to_owned());
        async move {
            let answer = answer.await;
            assert_eq!(answer.status(), StatusCode::OK);
            answer.json::<serde_json::Value>().await.unwrap()
        }
    };

    // Pages of two, newest first; a job uploaded between two pages does not shift them.
    let first = page(&token, "?limit=2").await;
    let late = app.start_job(&token, &clip).await;
    let mut seen: Vec<String> = Vec::new();
    let mut body = first;
    loop {
        let jobs = body["jobs"].as_array().unwrap();
        assert!(jobs.len() <= 2, "{body}");
        for job in jobs {
            assert_eq!(job["filename"], "clip.mp4");
            assert!(job["size_bytes"].as_u64().unwrap() > 0);
            seen.push(job["job_id"].as_str().unwrap().to_owned());
        }
        let Some(cursor) = body["next_cursor"].as_str() else {
            break;
        };
        body = page(&token, &format!("?limit=2&cursor={cursor}")).await;
    }
    let newest_first: Vec<String> = started.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    let all = page(&token, "?limit=100").await;
    assert_eq!(all["jobs"][0]["job_id"], late.as_str());
    assert_eq!(all["jobs"].as_array().unwrap().len(), 6);
    assert!(all["next_cursor"].is_null());

    // Filters: by how the jobs stand, and by creation time.
    for job_id in started.iter().chain([&late]) {
        app.wait_for_job(&token, job_id).await;
    }
    let completed = page(&token, "?status=completed").await;
    assert_eq!(
        completed["jobs"].as_array().unwrap().len(),
        6,
        "{completed}"
    );
    assert_eq!(completed["jobs"][0]["status"], "completed");
    assert!(completed["jobs"][0]["mp3_bytes"].as_u64().unwrap() > 0);
    let none_failed = page(&token, "?status=failed").await;
    assert_eq!(none_failed["jobs"], serde_json::json!([]));
    let future = page(&token, "?created_after=2999-01-01T00:00:00Z").await;
    assert_eq!(future["jobs"], serde_json::json!([]));
    let past = page(&token, "?created_before=2999-01-01T00:00:00Z&limit=3").await;
    assert_eq!(past["jobs"].as_array().unwrap().len(), 3);

    // Bad parameters are refused in the error shape.
    for query in [
        "?limit=101",
        "?limit=0",
        "?status=lost",
        "?cursor=not-a-cursor",
        "?created_after=yesterday",
    ] {
        let answer = list(token.clone(), query.to_owned()).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(error_code(answer).await, "bad_request", "{query}");
    }
    let anonymous = app.http.get(app.url("/jobs")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // Another user sees none of them and may not ask for them; an admin may.
    let bob = app.user_token("bob").await;
    assert_eq!(page(&bob, "").await["jobs"], serde_json::json!([]));
    let forbidden = list(bob.clone(), format!("?user={ann}")).await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    let admin = app.admin_token("root").await;
    let anns = page(&admin, &format!("?user={ann}&limit=100")).await;
    assert_eq!(anns["jobs"].as_array().unwrap().len(), 6);
    let unknown = list(admin.clone(), "?user=nobody@example.com".to_owned()).await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    app.stop().await;
}
