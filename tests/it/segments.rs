//! Long sources converted in parts (`SEGMENT_MIN_SECONDS`, `SEGMENT_SECONDS`): the parts run
//! as `transcode_segment` activities and are joined into one MP3 that lasts what one pass
//! makes and decodes with no error; progress is the job's, from all parts; cancelling stops
//! every part; a damaged region fails the job as the single path would; parts that cannot be
//! joined give way to one pass; nothing is left in scratch space or storage.

use crate::common;

use common::{TestApp, converter_script, eventually, ffmpeg, music_video};
use reqwest::StatusCode;
use serde_json::Value;
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

/// Parts of 8 s for sources of 20 s and more, as many as that gives (not only one per slot,
/// `dev`'s default): short videos exercise many parts.
const IN_PARTS: [(&str, &str); 4] = [
    ("SEGMENT_MIN_SECONDS", "20"),
    ("SEGMENT_SECONDS", "8"),
    ("SEGMENT_MAX_PARTS", "0"),
    ("MAX_CONCURRENT_TRANSCODES", "2"),
];

/// Samples per channel the ffmpeg tool decodes from `mp3` (gapless), and what it complained
/// about while decoding.
fn decode(mp3: &Path) -> (usize, String) {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-i", mp3.to_str().unwrap()])
        .args(["-f", "s16le", "-ac", "1", "-"])
        .output()
        .unwrap();
    (
        output.stdout.len() / 2,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Waits until no scratch file and no object of the app's jobs is left.
async fn nothing_left(app: &TestApp) {
    eventually("no scratch file outlives the job", || {
        app.scratch_files().is_empty()
    })
    .await;
    eventually("nothing of the job is left in storage", || {
        app.objects().is_empty()
    })
    .await;
}

/// Waits until no scratch file is left, and checks that no part is left in storage (the MP3
/// of a completed job stays).
async fn no_scratch_and_no_parts_left(app: &TestApp) {
    eventually("no scratch file outlives the job", || {
        app.scratch_files().is_empty()
    })
    .await;
    let objects = app.objects();
    assert!(
        objects.iter().all(|key| !key.starts_with("parts")),
        "no part is left in storage: {objects:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_video_is_converted_in_parts_into_one_gapless_mp3() {
    let app = TestApp::spawn_with(&IN_PARTS).await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let video = music_video(media.path(), "concert.mp4", 45);

    let job_id = app.start_job(&token, &video).await;
    let seen = app.wait_for_job(&token, &job_id).await;
    let last = seen.last().unwrap();
    assert_eq!(last["status"], "completed", "{last}");
    // One percentage for the job, from all its parts, never going back.
    let progress: Vec<u64> = seen
        .iter()
        .filter(|s| s["step"] == "transcode")
        .map(|s| s["progress"].as_u64().unwrap())
        .collect();
    assert!(
        progress.windows(2).all(|pair| pair[0] <= pair[1]),
        "progress went back: {progress:?}"
    );

    let activities = app.activities_run(&job_id).await;
    assert_eq!(
        runs_of(&activities, "transcode_segment"),
        6,
        "45 s in parts of 8 s: {activities:?}"
    );
    // Each part is named in the history (and the Web UI) by which it is and of how many.
    let named: Vec<String> = (1..=6).map(|n| format!("round-1-part-{n}-of-6")).collect();
    assert_eq!(app.activity_ids(&job_id, "transcode_segment").await, named);
    // Planned by its transcode, which converted nothing itself (one pass would be a second
    // `transcode`, had the parts not joined); joined in a step of its own, then stored.
    let count = |step: &str| runs_of(&activities, step);
    assert_eq!(count("transcode"), 1, "the plan: {activities:?}");
    assert_eq!(count("join_segments"), 1, "{activities:?}");
    assert_eq!(count("store_mp3"), 1, "{activities:?}");
    // Ann has no endpoint: no deliveries are started, of progress or of the completion.
    let children = app.children_started(&job_id).await;
    assert_eq!(children, Vec::<String>::new());

    let download = app.download(&token, &job_id).await;
    assert_eq!(download.status(), StatusCode::OK);
    let mp3 = media.path().join("joined.mp3");
    std::fs::write(&mp3, download.bytes().await.unwrap()).unwrap();
    let (joined, complaints) = decode(&mp3);
    assert_eq!(complaints, "", "the joined MP3 decodes with no error");
    // The same settings in one pass, by the ffmpeg tool.
    let single = media.path().join("single.mp3");
    ffmpeg(&[
        "-i",
        video.to_str().unwrap(),
        "-vn",
        "-c:a",
        "libmp3lame",
        "-q:a",
        "2",
        single.to_str().unwrap(),
    ]);
    let (expected, _) = decode(&single);
    assert!(
        joined.abs_diff(expected) <= 1152,
        "the joined MP3 has {joined} samples, one pass {expected}"
    );
    // The length the job reports (in the e-mail, in whole seconds up) is the whole one.
    let seconds = (expected as u64).div_ceil(48_000);
    let mails = app.mails().await;
    assert!(
        mails
            .iter()
            .any(|mail| mail.contains(&format!("({seconds} s,"))),
        "{mails:?}"
    );

    no_scratch_and_no_parts_left(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_job_in_parts_stops_every_part_and_leaves_nothing() {
    let app = TestApp::spawn_with(&IN_PARTS).await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let video = music_video(media.path(), "lecture.mp4", 600);

    let job_id = app.start_job(&token, &video).await;
    app.wait_for_transcode(&token, &job_id).await;
    // Parts are under way.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, pending) = app.workflow(&job_id).await;
        if pending.iter().any(|(name, _)| name == "transcode_segment") {
            break;
        }
        assert!(Instant::now() < deadline, "no part started: {pending:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cancel = app
        .send_as(
            &token,
            reqwest::Method::POST,
            &format!("/jobs/{job_id}/cancel"),
        )
        .await;
    assert_eq!(cancel.status(), StatusCode::ACCEPTED);
    let seen = app.wait_for_job(&token, &job_id).await;
    assert_eq!(seen.last().unwrap()["status"], "cancelled");
    app.wait_for_workflow_closed(&job_id).await;
    let (_, pending) = app.workflow(&job_id).await;
    assert!(pending.is_empty(), "every part stopped: {pending:?}");
    let activities = app.activities_run(&job_id).await;
    let parts = activities
        .iter()
        .filter(|name| *name == "transcode_segment")
        .count();
    assert!(parts > 2, "the job was in parts: {activities:?}");
    assert!(!activities.contains(&"store_mp3".to_owned()));

    nothing_left(&app).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_long_video_fails_as_in_one_pass() {
    let app = TestApp::spawn_with(&IN_PARTS).await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let whole = music_video(media.path(), "whole.mp4", 60);
    // The index at the front still announces 60 s; the audio stops at about half.
    let bytes = std::fs::read(&whole).unwrap();
    let truncated = media.path().join("truncated.mp4");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();

    let job_id = app.start_job(&token, &truncated).await;
    let seen = app.wait_for_job(&token, &job_id).await;
    let last: &Value = seen.last().unwrap();
    assert_eq!(last["status"], "failed", "{last}");
    assert_eq!(last["step"], "transcode", "{last}");
    let error = last["error"].as_str().unwrap();
    assert!(error.contains("damaged or truncated"), "{error}");
    let activities = app.activities_run(&job_id).await;
    assert!(
        activities.iter().any(|name| name == "transcode_segment"),
        "it failed in its parts: {activities:?}"
    );
    nothing_left(&app).await;
    app.stop().await;
}

/// How many times `step` ran, of the `activities` a job ran.
fn runs_of(activities: &[String], step: &str) -> usize {
    activities.iter().filter(|name| *name == step).count()
}

/// Converts a 45 s concert video for a new user: the job completes with an MP3 of 45 s that
/// decodes with no error. The steps its run took.
async fn concert_converted(app: &TestApp) -> Vec<String> {
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let video = music_video(media.path(), "concert.mp4", 45);
    let job_id = app.start_job(&token, &video).await;
    let seen = app.wait_for_job(&token, &job_id).await;
    let last = seen.last().unwrap();
    assert_eq!(last["status"], "completed", "{last}");

    let download = app.download(&token, &job_id).await;
    assert_eq!(download.status(), StatusCode::OK);
    let mp3 = media.path().join("concert.mp3");
    std::fs::write(&mp3, download.bytes().await.unwrap()).unwrap();
    let (samples, complaints) = decode(&mp3);
    assert_eq!(complaints, "", "the MP3 decodes with no error");
    let seconds = samples as f64 / 48_000.0;
    assert!((seconds - 45.0).abs() < 0.05, "the MP3 lasts {seconds} s");
    app.activities_run(&job_id).await
}

/// A converter that cuts the first part it made short after each run, as a bad disk or a
/// broken encoder might: the parts can no longer be joined.
fn converter_spoiling_the_first_part(real: &Path, dir: &Path, work_dir: &Path) -> PathBuf {
    converter_script(
        dir,
        &format!(
            "'{real}' \"$@\"\nstatus=$?\n\
             for part in '{work}'/*/*/part-0.mp3; do\n\
               [ -f \"$part\" ] && truncate -s 3000 \"$part\"\n\
             done\n\
             exit $status\n",
            real = real.display(),
            work = work_dir.display()
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_that_cannot_be_joined_give_way_to_one_pass() {
    let scripts = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_tuned(&IN_PARTS, |worker| {
        worker.transcoder.executable = converter_spoiling_the_first_part(
            &worker.transcoder.executable,
            scripts.path(),
            &worker.work_dir,
        );
    })
    .await;
    // The parts the transcode planned; the join refused (`PartsUnjoinable`, not retried);
    // one pass on the worker holding the source, and that MP3 stored.
    let activities = concert_converted(&app).await;
    let count = |step: &str| runs_of(&activities, step);
    assert_eq!(count("transcode_segment"), 6, "{activities:?}");
    assert_eq!(count("join_segments"), 1, "{activities:?}");
    assert_eq!(
        count("transcode"),
        2,
        "the plan, then one pass: {activities:?}"
    );
    assert_eq!(count("store_mp3"), 1, "{activities:?}");
    no_scratch_and_no_parts_left(&app).await;
    app.stop().await;
}
