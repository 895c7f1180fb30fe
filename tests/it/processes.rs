//! Audiomill as it runs in production: one gateway process and two worker processes, started
//! like compose starts them, sharing the backends and a Temporal server. One worker is killed
//! with SIGKILL in the middle of a transcode; every job still completes exactly once, and is
//! told to a webhook endpoint under one message id.

use crate::common;

use audiomill_workflows::ConvertVideo;
use common::{webhooks::Receiver, *};
use serde_json::json;
use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, Instant},
};
use temporalio_client::WorkflowDescribeOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_the_jobs_and_survive_one_being_killed_mid_transcode() {
    // The webhook receiver is on loopback.
    let mut test = TestApp::without_app(&[("WEBHOOK_ALLOW_PRIVATE", "true")]).await;
    let logs = test.data.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let media = tempfile::tempdir().unwrap();
    let long = make_long_video(media.path(), 1500);

    let (email, gateway, mut workers) = start_processes(&mut test, &logs);
    test.wait_until_ready(&gateway).await;
    let pair = test.login(&email).await;
    let token = pair["access_token"].as_str().unwrap().to_owned();
    let refresh = pair["refresh_token"].as_str().unwrap().to_owned();
    let receiver = Receiver::start();
    let registered: serde_json::Value = test
        .http
        .post(test.url("/webhooks"))
        .bearer_auth(&token)
        .json(&json!({ "url": receiver.url("/ok"), "events": ["job.completed"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let webhook_secret = registered["secret"].as_str().expect("a secret").to_owned();

    // The long job first; find the worker transcoding it and kill it there.
    let long_job = test.start_job(&token, &long).await;
    let client = test.temporal().await;
    let handle = client.get_workflow_handle::<ConvertVideo>(long_job.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    let victim = loop {
        let described = handle
            .describe(WorkflowDescribeOptions::default())
            .await
            .unwrap()
            .into_raw();
        let transcoding = described.pending_activities.iter().find(|a| {
            a.activity_type
                .as_ref()
                .is_some_and(|t| t.name == "transcode")
                && !a.last_worker_identity.is_empty()
        });
        if let Some(activity) = transcoding {
            break activity.last_worker_identity.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the long job never started transcoding"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let victim: &str = if victim == "w1" {
        "w1"
    } else {
        assert_eq!(victim, "w2");
        "w2"
    };
    let killed_work_dir = test.data.path().join(format!("work-{victim}"));
    workers.get_mut(victim).unwrap().kill();
    assert!(
        !scratch_in(&killed_work_dir).is_empty(),
        "the killed worker held the source"
    );

    // Five more jobs while one worker is down; the killed worker comes back once the survivor,
    // the only one left, has finished the long job (coming back sooner, it could take the
    // long job's next attempt itself).
    let mut jobs = vec![long_job.clone()];
    for n in 0..5 {
        let clip = make_mp4(media.path(), &format!("clip{n}.mp4"), 3, true);
        jobs.push(test.start_job(&token, &clip).await);
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (_, status) = test.status(&token, &long_job).await;
        assert_ne!(status["status"], "failed", "{status}");
        if status["status"] == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "the long job never completed");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    workers.insert(victim, start_worker(&test, &logs, victim));
    // Back once it polls again, its scratch space cleared first (its log goes on where the
    // killed process's stopped).
    let deadline = Instant::now() + Duration::from_secs(60);
    while workers[victim].log().matches("worker polling").count() < 2 {
        assert!(
            Instant::now() < deadline,
            "the restarted worker never polled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Every job completes, once.
    every_job_completes(&test, &token, &jobs, 180).await;
    // Once every workflow has closed, no straggler (an old attempt) can add anything.
    for job in &jobs {
        test.wait_for_workflow_closed(job).await;
    }

    let mails = test.mails().await;
    let objects = test.objects();
    let mut signatures = Vec::new();
    for job in &jobs {
        let links = mails
            .iter()
            .filter(|m| m.contains(&format!("/download/{job}")))
            .count();
        assert_eq!(links, 1, "job {job} got {links} e-mails");
        // The link a worker process signed opens the MP3 at the gateway process, with no
        // other credentials: both read the same DOWNLOAD_LINK_SECRET.
        let link = test.emailed_link(job).await;
        let path = &link[link.find("/download/").unwrap()..];
        let clicked = reqwest::get(test.url(path)).await.unwrap();
        assert_eq!(clicked.status(), reqwest::StatusCode::OK, "{link}");
        let signature = link.split("signature=").nth(1).expect("a signed link");
        signatures.push(signature.split('&').next().unwrap().to_owned());
        let mp3s = objects
            .iter()
            .filter(|key| key.starts_with("mp3/") && key.contains(job.as_str()))
            .count();
        assert_eq!(mp3s, 1, "job {job} has {mp3s} MP3 objects: {objects:?}");
    }
    assert_eq!(
        objects.iter().filter(|key| key.starts_with("mp3/")).count(),
        jobs.len(),
        "{objects:?}"
    );

    // The long job was finished by the surviving worker after the kill.
    let survivor = if victim == "w1" { "w2" } else { "w1" };
    let survivor_log = workers[survivor].log();
    assert!(
        survivor_log.contains(&long_job) && survivor_log.contains("transcoded"),
        "the survivor did not take over: {survivor_log}"
    );
    // Both workers did work: the victim fetched and began the long job before it died.
    assert!(
        std::fs::read_to_string(logs.join(format!("{victim}.log")))
            .unwrap()
            .contains("source fetched")
    );

    // No scratch files anywhere once the jobs are done; the restart cleared the victim's.
    for id in ["w1", "w2"] {
        let dir = test.data.path().join(format!("work-{id}"));
        let left = scratch_in(&dir);
        if !left.is_empty() {
            // What every process said of the jobs whose files were left.
            let story: Vec<String> = std::fs::read_dir(&logs)
                .unwrap()
                .flatten()
                .flat_map(|entry| {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    std::fs::read_to_string(entry.path())
                        .unwrap()
                        .lines()
                        .filter(|line| {
                            left.iter().any(|path| {
                                line.contains(&*path.file_name().unwrap().to_string_lossy())
                            })
                        })
                        .map(|line| format!("{name}: {line}"))
                        .collect::<Vec<_>>()
                })
                .collect();
            panic!("{id} left {left:?}:\n{}", story.join("\n"));
        }
    }
    // Each job was told once: one message id per job, whichever worker sent it, however often.
    let deadline = Instant::now() + Duration::from_secs(60);
    let told = loop {
        let requests = receiver.at("/ok");
        let told = webhooks::verified(&webhook_secret, &requests);
        let mut ids: HashMap<String, Vec<String>> = HashMap::new();
        for (payload, request) in told.iter().zip(&requests) {
            let job = payload["data"]["job_id"].as_str().unwrap().to_owned();
            let seen = ids.entry(job).or_default();
            if !seen.contains(&request.id) {
                seen.push(request.id.clone());
            }
        }
        if ids.len() == jobs.len() {
            break ids;
        }
        assert!(Instant::now() < deadline, "not every job was told: {ids:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for job in &jobs {
        assert_eq!(told[job].len(), 1, "{job}: {:?}", told[job]);
    }
    drop(workers);

    // No secret ever reached a log: not the signing key, the password, the tokens, the
    // webhook secret, the storage credentials or a signed link's signature (each link was
    // opened at the gateway above).
    let mut secrets = vec![
        webhook_secret.clone(),
        JWT_SECRET.to_owned(),
        LINK_SECRET.to_owned(),
        PASSWORD.to_owned(),
        token.clone(),
        refresh.clone(),
    ];
    secrets.extend(test.vars.get("AWS_SECRET_ACCESS_KEY").cloned());
    secrets.extend(signatures);
    for entry in std::fs::read_dir(&logs).unwrap().flatten() {
        let log = std::fs::read_to_string(entry.path()).unwrap();
        assert!(
            log.len() > 100,
            "{} is nearly empty",
            entry.path().display()
        );
        for secret in &secrets {
            assert!(
                !log.contains(secret.as_str()),
                "{} contains a secret",
                entry.path().display()
            );
        }
    }

    // One search for a job's id over every process's log tells its story, from the upload in
    // the gateway to the e-mail from whichever worker sent it; each step's lines name the run.
    for job in &jobs {
        let story: Vec<String> = std::fs::read_dir(&logs)
            .unwrap()
            .flatten()
            .flat_map(|entry| {
                let log = std::fs::read_to_string(entry.path()).unwrap();
                log.lines()
                    .filter(|line| line.contains(job.as_str()))
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        for (event, in_a_step) in [
            ("upload accepted", false),
            ("source fetched", true),
            ("transcoded", true),
            ("notification sent", true),
        ] {
            let line = story
                .iter()
                .find(|line| line.contains(event))
                .unwrap_or_else(|| panic!("{job}: no {event:?} in {story:#?}"));
            if in_a_step {
                assert!(line.contains("\"run_id\":\""), "{line}");
            }
        }
    }
}

/// A long source in parts over two worker processes: the worker that took parts of a job it
/// does not hold (reading the source in place, sending its MP3s to storage) is killed in the
/// middle of its second; only that part runs again (on the survivor), and the job's one MP3,
/// joined from parts of both, is as long as one pass and decodes with no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_part_costs_only_that_part() {
    let mut test =
        TestApp::without_app(&[("SEGMENT_MIN_SECONDS", "60"), ("SEGMENT_SECONDS", "200")]).await;
    let logs = test.data.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let media = tempfile::tempdir().unwrap();
    let video = music_video(media.path(), "concert.mp4", 1200);

    let (email, gateway, mut workers) = start_processes(&mut test, &logs);
    test.wait_until_ready(&gateway).await;
    let token = test.access_token(&email).await;
    let job = test.start_job(&token, &video).await;

    // The worker that planned the parts holds the job; the other one is killed while it
    // converts a part.
    let client = test.temporal().await;
    let handle = client.get_workflow_handle::<ConvertVideo>(job.clone());
    // Its first part is told apart by its id: a part seen pending may already be done, its
    // completion still on its way, when its worker logs it converted.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut first_parts: HashMap<String, String> = HashMap::new();
    let victim = loop {
        let holder = ["w1", "w2"]
            .into_iter()
            .find(|id| workers[id].log().contains("converted in parts"));
        let described = handle
            .describe(WorkflowDescribeOptions::default())
            .await
            .unwrap()
            .into_raw();
        let other_part = described.pending_activities.iter().find(|a| {
            a.activity_type
                .as_ref()
                .is_some_and(|t| t.name == "transcode_segment")
                && !a.last_worker_identity.is_empty()
                && Some(a.last_worker_identity.as_str()) != holder
                && a.last_heartbeat_time.is_some()
        });
        if let (Some(_), Some(part)) = (holder, other_part) {
            let other = if part.last_worker_identity == "w1" {
                "w1"
            } else {
                "w2"
            };
            let first = first_parts
                .entry(other.to_owned())
                .or_insert_with(|| part.activity_id.clone());
            if *first != part.activity_id && workers[other].log().contains("part converted") {
                break other;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no second part ever ran beside the holder"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // It reads the source where the upload is stored, in place: from the bucket in byte
    // ranges, or the file itself; no copy of it is fetched first.
    let read = if production_backends() {
        "the part reads its source in place, from the bucket"
    } else {
        "the part reads its source in place, from its file"
    };
    let log = workers[victim].log();
    assert!(log.contains(read), "{log}");
    workers.get_mut(victim).unwrap().kill();

    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (_, status) = test.status(&token, &job).await;
        assert_ne!(status["status"], "failed", "{status}");
        if status["status"] == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "the job never completed");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    test.wait_for_workflow_closed(&job).await;

    // Six parts, each scheduled once; one of them (the victim's) took a second attempt.
    let attempts = part_attempts(&test, &job).await;
    assert_eq!(attempts.len(), 6, "{attempts:?}");
    assert_eq!(
        attempts.iter().filter(|attempt| **attempt > 1).count(),
        1,
        "only the killed worker's part ran again: {attempts:?}"
    );

    let download = test.download(&token, &job).await;
    assert_eq!(download.status(), reqwest::StatusCode::OK);
    let mp3 = media.path().join("joined.mp3");
    std::fs::write(&mp3, download.bytes().await.unwrap()).unwrap();
    let decoded = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i", mp3.to_str().unwrap()])
        .args(["-f", "s16le", "-ac", "1", "-"])
        .output()
        .unwrap();
    assert!(
        decoded.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    let seconds = decoded.stdout.len() as f64 / 2.0 / 48_000.0;
    assert!(
        (seconds - 1200.0).abs() < 0.1,
        "the joined MP3 lasts {seconds} s"
    );

    // The survivor keeps nothing of the job. It planned the parts: FFmpeg said nothing of
    // the source's video, which it does not open, into its log.
    let survivor = if victim == "w1" { "w2" } else { "w1" };
    let log = workers[survivor].log();
    assert!(log.contains("converted in parts"), "{log}");
    assert!(!log.contains(" @ 0x"), "FFmpeg's chatter in the log: {log}");
    let dir = test.data.path().join(format!("work-{survivor}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !scratch_in(&dir).is_empty() {
        assert!(Instant::now() < deadline, "files left on the survivor");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Two workers on one host with the default `WORK_DIR`, four 20-minute videos converted in
/// one pass: one worker is killed in the middle of a transcode and started again at once, while
/// the other converts. The restarted worker clears only what its dead self left; the live
/// worker's jobs go on undisturbed (never fetched again), and every job completes once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_restarted_beside_a_live_one_leaves_its_jobs_alone() {
    restart_beside_a_live_worker(&[("SEGMENT_MIN_SECONDS", "0")], "transcode").await;
}

/// As above, each video converted in parts spread over both workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_restarted_beside_a_live_one_leaves_its_parts_alone() {
    restart_beside_a_live_worker(
        &[("SEGMENT_MIN_SECONDS", "60"), ("SEGMENT_SECONDS", "200")],
        "transcode_segment",
    )
    .await;
}

/// See the two tests above: `converting` is the step both workers are seen in before the kill.
async fn restart_beside_a_live_worker(settings: &[(&str, &str)], converting: &str) {
    let mut test = TestApp::without_app(settings).await;
    let logs = test.data.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let media = tempfile::tempdir().unwrap();
    let video = music_video(media.path(), "concert.mp4", 1200);
    let (email, gateway, mut workers) =
        start_processes_with(&mut test, &logs, WorkDirs::SharedDefault);
    test.wait_until_ready(&gateway).await;
    let token = test.access_token(&email).await;
    let mut jobs = Vec::new();
    for _ in 0..4 {
        jobs.push(test.start_job(&token, &video).await);
    }

    // Both workers converting (each holding a job), then one of them killed and restarted.
    let client = test.temporal().await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut busy = Vec::new();
        for job in &jobs {
            let described = client
                .get_workflow_handle::<ConvertVideo>(job.clone())
                .describe(WorkflowDescribeOptions::default())
                .await
                .unwrap()
                .into_raw();
            busy.extend(described.pending_activities.into_iter().filter_map(|a| {
                let step = a.activity_type.as_ref().map(|t| t.name.as_str());
                (step == Some(converting)).then_some(a.last_worker_identity)
            }));
        }
        let fetched = |id: &str| workers[id].log().contains("source fetched");
        if ["w1", "w2"]
            .iter()
            .all(|id| busy.iter().any(|w| w == id) && fetched(id))
        {
            break;
        }
        let fetches: Vec<bool> = ["w1", "w2"].iter().map(|id| fetched(id)).collect();
        assert!(
            Instant::now() < deadline,
            "both workers never converted at once: {busy:?} {fetches:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    workers.get_mut("w1").unwrap().kill();
    workers.insert(
        "w1",
        start_worker_with(&test, &logs, "w1", WorkDirs::SharedDefault),
    );

    every_job_completes(&test, &token, &jobs, 300).await;
    let mut survivors_jobs = 0;
    for job in &jobs {
        test.wait_for_workflow_closed(job).await;
        let steps = steps_started(&test, job).await;
        let fetches: Vec<_> = steps.iter().filter(|s| s.step == "fetch_source").collect();
        if fetches[0].worker != "w2" {
            continue;
        }
        // Held by the live worker from the start: its files were never taken from it.
        survivors_jobs += 1;
        assert_eq!(fetches.len(), 1, "{job} was fetched again");
        let on_holder = ["transcode", "join_segments", "store_mp3"];
        for step in steps
            .iter()
            .filter(|s| on_holder.contains(&s.step.as_str()))
        {
            assert_eq!(step.attempt, 1, "{job}: {} tried again", step.step);
        }
    }
    assert!(survivors_jobs > 0, "the live worker held no job");
    let mails = test.mails().await;
    for job in &jobs {
        let told = mails
            .iter()
            .filter(|m| m.contains(&format!("/download/{job}")))
            .count();
        assert_eq!(told, 1, "{job} was told {told} times");
    }
    // Nothing left once every job is done, not even the killed worker's directory.
    let work_dir = test.data.path().join("work");
    eventually("the workers keep scratch files", || {
        scratch_in(&work_dir).is_empty()
    })
    .await;
    let claimed: Vec<_> = std::fs::read_dir(&work_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|name| !name.ends_with(".lock"))
        .collect();
    assert_eq!(
        claimed.len(),
        2,
        "one directory for each live worker: {claimed:?}"
    );
}

/// Waits (`seconds` at most) until every one of `jobs` has completed and been told by e-mail;
/// none may fail meanwhile.
async fn every_job_completes(test: &TestApp, token: &str, jobs: &[String], seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let mut done = 0;
        for job in jobs {
            let (_, status) = test.status(token, job).await;
            assert_ne!(status["status"], "failed", "{status}");
            done += usize::from(status["status"] == "completed");
        }
        if done == jobs.len() && test.mail_count().await == jobs.len() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not every job completed: {done}/{}",
            jobs.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A user `ann`, and as compose starts them a gateway and two workers, `w1` and `w2` (one
/// transcode at a time each), logging into `logs`; the app's address is the gateway's.
pub(crate) fn start_processes(
    test: &mut TestApp,
    logs: &Path,
) -> (String, Process, HashMap<&'static str, Process>) {
    start_processes_with(test, logs, WorkDirs::OwnEach)
}

/// Where the workers keep their scratch files.
#[derive(Clone, Copy)]
enum WorkDirs {
    /// `WORK_DIR` set apart for each worker.
    OwnEach,
    /// No `WORK_DIR`: both use the default one, `DATA_DIR/work`, as two workers on one host do.
    SharedDefault,
}

/// [`start_processes`], with the workers' scratch space as `work_dirs` says.
fn start_processes_with(
    test: &mut TestApp,
    logs: &Path,
    work_dirs: WorkDirs,
) -> (String, Process, HashMap<&'static str, Process>) {
    run(&test.vars, &["migrate"]);
    let email = test.email("ann");
    run(
        &test.vars,
        &["user", "add", "--email", &email, "--password", PASSWORD],
    );
    let port = free_port();
    let gateway = Process::start(
        &test.vars,
        &[("LISTEN_ADDR", format!("127.0.0.1:{port}"))],
        &["gateway"],
        &logs.join("gateway.log"),
    );
    let workers = ["w1", "w2"]
        .into_iter()
        .map(|id| (id, start_worker_with(test, logs, id, work_dirs)))
        .collect();
    test.base = format!("http://127.0.0.1:{port}");
    (email, gateway, workers)
}

/// Worker `id`, with a scratch space of its own, logging to `logs/{id}.log` (a restarted one
/// goes on where the killed one stopped).
pub(crate) fn start_worker(test: &TestApp, logs: &Path, id: &str) -> Process {
    start_worker_with(test, logs, id, WorkDirs::OwnEach)
}

/// [`start_worker`], with its scratch space as `work_dirs` says.
fn start_worker_with(test: &TestApp, logs: &Path, id: &str, work_dirs: WorkDirs) -> Process {
    let mut vars = vec![
        ("WORKER_ID", id.to_owned()),
        ("MAX_CONCURRENT_TRANSCODES", "1".to_owned()),
    ];
    if let WorkDirs::OwnEach = work_dirs {
        let work_dir = test.data.path().join(format!("work-{id}"));
        vars.push(("WORK_DIR", work_dir.display().to_string()));
    }
    Process::start(
        &test.vars,
        &vars,
        &["worker"],
        &logs.join(format!("{id}.log")),
    )
}

/// The attempt each `transcode_segment` of `job` ended with, from its history.
async fn part_attempts(test: &TestApp, job: &str) -> Vec<i32> {
    let mut last: HashMap<i64, i32> = HashMap::new();
    for started in steps_started(test, job).await {
        if started.step == "transcode_segment" {
            last.insert(started.scheduled, started.attempt);
        }
    }
    last.into_values().collect()
}

/// One start of a step of a job, from its history.
struct StepStarted {
    step: String,
    /// The event that scheduled the step: the same for each of its attempts.
    scheduled: i64,
    attempt: i32,
    /// The worker that took it (its `WORKER_ID`).
    worker: String,
}

/// Every start of every step of `job`, in order. Only the last attempt of each step is in the
/// history (Temporal records the attempt that ended it).
async fn steps_started(test: &TestApp, job: &str) -> Vec<StepStarted> {
    use temporalio_client::WorkflowFetchHistoryOptions;
    use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
    let client = test.temporal().await;
    let events: Vec<_> = client
        .get_workflow_handle::<ConvertVideo>(job.to_owned())
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .into_events()
        .await
        .unwrap();
    let mut names = HashMap::new();
    for event in &events {
        if let Some(Attributes::ActivityTaskScheduledEventAttributes(scheduled)) = &event.attributes
            && let Some(kind) = &scheduled.activity_type
        {
            names.insert(event.event_id, kind.name.clone());
        }
    }
    events
        .iter()
        .filter_map(|event| match &event.attributes {
            Some(Attributes::ActivityTaskStartedEventAttributes(started)) => Some(StepStarted {
                step: names.get(&started.scheduled_event_id)?.clone(),
                scheduled: started.scheduled_event_id,
                attempt: started.attempt,
                worker: started.identity.clone(),
            }),
            _ => None,
        })
        .collect()
}
