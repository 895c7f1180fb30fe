//! Runs of every workflow, recorded afresh and replayed, so that the recorder itself is checked
//! on every run. With `AUDIOMILL_RECORD_HISTORIES` set (`make histories`) the runs are kept in
//! `tests/histories/<patch set>/`, the folder of the patches live today, which must not exist
//! yet: recordings are never overwritten. `workflows/tests/replay.rs` replays every folder.

use crate::common;

use audiomill_workflows::{
    CleanExpired, ConvertVideo, DeliverWebhooks, SendAccountMail, WatchFolder, patch_set,
};
use common::{webhooks::Receiver, *};
use serde_json::json;
use std::path::{Path, PathBuf};
use temporalio_client::{WorkflowFetchHistoryOptions, WorkflowHistory};
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};

/// Set to write the runs the test records into `tests/histories/` (`make histories`).
const RECORD: &str = "AUDIOMILL_RECORD_HISTORIES";

/// The kinds of runs each recording holds.
const KINDS: [&str; 10] = [
    "completed",
    "imported",
    "failed",
    "cancelled",
    "in-parts",
    "webhooks-completed",
    "webhooks-delivery",
    "cleanup",
    "password-reset",
    "watched",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/histories")
}

fn replayer() -> WorkflowReplayer {
    let options = WorkflowReplayerOptions::new()
        .register_workflow::<ConvertVideo>()
        .and_then(|options| options.register_workflow::<DeliverWebhooks>())
        .and_then(|options| options.register_workflow::<CleanExpired>())
        .and_then(|options| options.register_workflow::<SendAccountMail>())
        .and_then(|options| options.register_workflow::<WatchFolder>())
        .expect("the workflows register")
        .build();
    WorkflowReplayer::new(options).expect("a replayer")
}

/// Replays `json` (a history as `WorkflowHistory::to_json` writes it); why not, if it fails.
async fn replay(replayer: &WorkflowReplayer, json: &[u8]) -> Result<(), String> {
    let history = WorkflowHistory::from_json(json).map_err(|error| error.to_string())?;
    replayer
        .replay_workflow(history)
        .await
        .map_err(|error| error.to_string())
}

/// Replays each of `histories`, failing on the first that does not replay.
async fn replay_all(histories: &[(&'static str, Vec<u8>)]) {
    // The replayer's worker is not `Send`: it runs on this thread.
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let replayer = replayer();
            for (kind, json) in histories {
                if let Err(why) = replay(&replayer, json).await {
                    panic!("the fresh {kind} run does not replay: {why}");
                }
            }
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_of_every_kind_replay_as_they_are_recorded() {
    let histories = record_runs().await;
    assert_eq!(
        histories.iter().map(|(kind, _)| *kind).collect::<Vec<_>>(),
        KINDS
    );
    replay_all(&histories).await;
    if std::env::var_os(RECORD).is_some() {
        // Only kinds the set lacks are written (a kind new since it was recorded): a recording
        // is never overwritten, so a workflow change that needs new ones needs a new patch.
        let set = fixtures().join(patch_set());
        std::fs::create_dir_all(&set).unwrap();
        let mut written = 0;
        for (kind, json) in &histories {
            let file = set.join(format!("{kind}.json"));
            if !file.exists() {
                std::fs::write(file, json).unwrap();
                written += 1;
            }
        }
        assert!(
            written > 0,
            "{} holds every kind: runs under today's patches are recorded already",
            set.display()
        );
    }
}

/// One run of each kind in [`KINDS`], as history JSON, in that order.
async fn record_runs() -> Vec<(&'static str, Vec<u8>)> {
    let app = TestApp::spawn_with(&[
        ("WEBHOOK_ALLOW_PRIVATE", "true"),
        ("IMPORT_ALLOW_PRIVATE", "true"),
        ("SEGMENT_MIN_SECONDS", "20"),
        ("SEGMENT_SECONDS", "8"),
        (
            "CONNECTION_SECRET_KEY",
            "a connection key that is long enough for tests",
        ),
    ])
    .await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();

    let clip = make_mp4(media.path(), "clip.mp4", 2, true);
    let completed = finished(&app, &token, &clip).await;
    runs.push(("completed", history(&app, &completed).await));
    let imported = imported_run(&app, &token, &clip).await;
    runs.push(("imported", history(&app, &imported).await));
    let silent = make_mp4(media.path(), "silent.mp4", 1, false);
    let failed = finished(&app, &token, &silent).await;
    runs.push(("failed", history(&app, &failed).await));
    let long = app
        .start_job(&token, &make_long_video(media.path(), 1500))
        .await;
    app.wait_for_transcode(&token, &long).await;
    let cancelled = app
        .send_as(
            &token,
            reqwest::Method::POST,
            &format!("/jobs/{long}/cancel"),
        )
        .await;
    assert_eq!(cancelled.status(), 202);
    app.wait_for_workflow_closed(&long).await;
    runs.push(("cancelled", history(&app, &long).await));
    let concert = music_video(media.path(), "concert.mp4", 45);
    let in_parts = finished(&app, &token, &concert).await;
    let steps = app.activities_run(&in_parts).await;
    assert!(steps.iter().any(|s| s == "join_segments"), "{steps:?}");
    runs.push(("in-parts", history(&app, &in_parts).await));

    let receiver = Receiver::start();
    let registered = app
        .http
        .post(app.url("/webhooks"))
        .bearer_auth(&token)
        .json(&json!({ "url": receiver.url("/ok"), "events": ["job.completed"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let told = finished(&app, &token, &clip).await;
    receiver.wait_for("/ok", 1).await;
    let delivery = format!("webhooks-{told}");
    app.wait_for_workflow_closed(&delivery).await;
    runs.push(("webhooks-completed", history(&app, &told).await));
    runs.push(("webhooks-delivery", history(&app, &delivery).await));

    let cleanup = cleanup_run(&app).await;
    runs.push(("cleanup", history(&app, &cleanup).await));
    let reset = password_reset_run(&app, &token).await;
    runs.push(("password-reset", history(&app, &reset).await));
    let watched = watched_run(&app, &token, &clip).await;
    runs.push(("watched", history(&app, &watched).await));
    runs
}

/// A `WatchFolder` run that finds one video, starts its job and ends once the watch is paused;
/// its workflow id.
async fn watched_run(app: &TestApp, token: &str, video: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("storage");
    std::fs::create_dir_all(root.join("videos/in/drop")).unwrap();
    std::fs::copy(video, root.join("videos/in/drop/clip.mp4")).unwrap();
    let (_storage, endpoint) = crate::connections::user_storage(&root);
    let connection = crate::watches::connect(app, token, &endpoint).await;
    let created = app
        .http
        .post(app.url("/watches"))
        .bearer_auth(token)
        .json(
            &json!({ "name": "drop", "connection_id": connection, "prefix": "drop",
            "max_running": 1, "interval_seconds": 10 }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let watch = created.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    crate::watches::settled(app, token, &watch, 1, 60).await;
    let paused = app
        .send_as(
            token,
            reqwest::Method::POST,
            &format!("/watches/{watch}/pause"),
        )
        .await;
    assert_eq!(paused.status(), 200);
    let run =
        audiomill_domain::watch::workflow_id(audiomill_domain::WatchId::parse(&watch).unwrap());
    app.wait_for_workflow_closed(&run).await;
    run
}

/// A job whose video was imported from a link, run to its end; its id.
async fn imported_run(app: &TestApp, token: &str, video: &Path) -> String {
    let (base, _) = crate::imports::source_server(std::fs::read(video).unwrap()).await;
    let answer = app
        .http
        .post(app.url("/imports"))
        .bearer_auth(token)
        .json(&json!({ "urls": [format!("{base}/talk.mp4")] }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let job = answer.json::<serde_json::Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_for_job(token, &job).await;
    app.wait_for_workflow_closed(&job).await;
    let steps = app.activities_run(&job).await;
    assert!(steps.iter().any(|s| s == "import_source"), "{steps:?}");
    job
}

/// A `SendAccountMail` run that mails a password reset link to the holder of `token`; its id.
async fn password_reset_run(app: &TestApp, token: &str) -> String {
    use audiomill_domain::contract::{AccountMailInput, TASK_QUEUE};
    use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};
    let (_, me) = app.get_json(token, "/me").await;
    let user = audiomill_domain::UserId::parse(me["id"].as_str().unwrap()).unwrap();
    let reset_id = app
        .backends
        .db
        .request_password_reset(user)
        .await
        .unwrap()
        .expect("a reset is recorded");
    let id = format!("password-reset-{reset_id}");
    let started = app
        .temporal()
        .await
        .start_workflow(
            SendAccountMail::run,
            AccountMailInput::PasswordReset { reset_id },
            WorkflowStartOptions::new(TASK_QUEUE, id.clone()).build(),
        )
        .await
        .expect("the mail's run starts");
    let sent = started
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("the mail's run succeeds");
    assert!(sent, "the link was mailed");
    id
}

/// A `CleanExpired` run judged far in the future, so that it removes every ended job; its id.
async fn cleanup_run(app: &TestApp) -> String {
    use audiomill_domain::contract::{CleanExpiredInput, TASK_QUEUE};
    use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};
    let id = format!("cleanup-history-{}", uuid::Uuid::now_v7());
    let input = CleanExpiredInput {
        as_of: Some(i64::MAX / 2),
    };
    let started = app
        .temporal()
        .await
        .start_workflow(
            CleanExpired::run,
            input,
            WorkflowStartOptions::new(TASK_QUEUE, id.clone()).build(),
        )
        .await
        .expect("the cleanup starts");
    let report = started
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("the cleanup succeeds");
    assert!(report.jobs_expired > 0, "{report:?}");
    id
}

/// A job uploaded and run to its end (its run closed).
async fn finished(app: &TestApp, token: &str, video: &Path) -> String {
    let job = app.start_job(token, video).await;
    app.wait_for_job(token, &job).await;
    app.wait_for_workflow_closed(&job).await;
    job
}

/// The history of the run with this workflow id, as JSON.
async fn history(app: &TestApp, workflow_id: &str) -> Vec<u8> {
    app.temporal()
        .await
        .get_workflow_handle::<ConvertVideo>(workflow_id.to_owned())
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .to_json()
        .await
        .expect("the history is fetched")
}
