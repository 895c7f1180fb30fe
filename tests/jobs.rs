//! Upload to download, through a real Temporal server, with real media.

mod common;

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
    // A `bytes=` range that does not parse is refused the same way; another unit is ignored.
    let ranged = |range: &'static str| {
        app.http
            .get(app.url(&format!("/download/{job_id}")))
            .bearer_auth(&token)
            .header("Range", range)
            .send()
    };
    let garbled = ranged("bytes=abc").await.unwrap();
    assert_eq!(garbled.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(error_code(garbled).await, "range_not_satisfiable");
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
    let root = app.add_user("root", true).await;
    let admin = app.login(&root).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.status(&admin, &job_id).await.0, StatusCode::OK);

    // The scratch files of the worker are gone; the bucket holds the source and the MP3.
    let work = std::fs::read_dir(&app.config.work_dir).unwrap().count();
    assert_eq!(work, 0, "the worker left files behind");
    let mut objects = app.objects();
    objects.sort();
    assert_eq!(
        objects,
        [format!("mp3/{job_id}.mp3"), format!("sources/{job_id}.mp4")]
    );

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
    app.app
        .as_mut()
        .unwrap()
        .stop_worker()
        .await
        .expect("the worker stops");
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
    let leftovers: Vec<_> = std::fs::read_dir(&app.config.work_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
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
    let media = tempfile::tempdir().unwrap();
    let long = make_long_video(media.path(), 1500);
    let short = make_mp4(media.path(), "short.mp4", 2, true);

    let first = app.start_job(&token, &long).await;
    app.wait_for_transcode(&token, &first).await;
    let second = app.start_job(&token, &short).await;

    // The only transcode slot is taken: the second job is queued until the first transcode
    // ends.
    let mut queued_seen = 0;
    loop {
        let (_, waiting) = app.status(&token, &second).await;
        let before_transcode =
            ["validate_token", "fetch_source"].contains(&waiting["step"].as_str().unwrap_or(""));
        if waiting["status"] == "queued" {
            queued_seen += 1;
        } else if !before_transcode {
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
    let leftovers: Vec<_> = std::fs::read_dir(&app.config.work_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(leftovers.is_empty(), "the worker kept {leftovers:?}");
    app.stop().await;
}
