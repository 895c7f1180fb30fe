//! Dependency outages in the middle of a job, on the production backends. Each test runs the
//! dependency it breaks as a process of its own (the S3 server, the SMTP sink, MariaDB,
//! Temporal), kills it at a bad moment and starts it again. The promise under test: while it is
//! down the gateway says so (503 where it needs it, `degraded` in `/health`, never a 500), and
//! once it is back every accepted job completes, with one MP3 and one e-mail.
//!
//! `make test` runs these in its production pass (their names start with `outage_`).

use crate::common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A backend process of this test's own, to kill and start again on the same port and data.
struct Private {
    program: PathBuf,
    args: Vec<String>,
    /// The port it serves on; it is up once every one of `ports` accepts connections.
    port: u16,
    ports: Vec<u16>,
    log: PathBuf,
    child: Option<Child>,
}

impl Private {
    fn new(program: impl Into<PathBuf>, args: Vec<String>, ports: Vec<u16>, log: PathBuf) -> Self {
        let mut private = Self {
            program: program.into(),
            args,
            port: ports[0],
            ports,
            log,
            child: None,
        };
        private.start();
        private
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", self.program.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self
            .ports
            .iter()
            .all(|port| TcpStream::connect(("127.0.0.1", *port)).is_ok())
        {
            assert!(
                Instant::now() < deadline,
                "{} did not listen; see {}",
                self.program.display(),
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: the dependency vanishes without a goodbye.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        self.kill();
    }
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run through `make test`"))
}

fn s3_server(dir: &Path) -> Private {
    let port = free_port();
    let root = dir.join("s3");
    std::fs::create_dir_all(&root).unwrap();
    let args = [
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--access-key",
        &env("TEST_S3_KEY"),
        "--secret-key",
        &env("TEST_S3_SECRET"),
        root.to_str().unwrap(),
    ];
    let args = args.iter().map(|a| a.to_string()).collect();
    Private::new(env("TEST_S3FS_BIN"), args, vec![port], dir.join("s3.log"))
}

/// The S3 settings that point the app at `server`.
fn s3_settings(server: &Private) -> Vec<(&'static str, String)> {
    vec![
        ("S3_BUCKET", "outage".into()),
        ("S3_CREATE_BUCKET", "true".into()),
        (
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", server.port),
        ),
        ("AWS_ACCESS_KEY_ID", env("TEST_S3_KEY")),
        ("AWS_SECRET_ACCESS_KEY", env("TEST_S3_SECRET")),
    ]
}

/// An SMTP sink, and the address of its REST API (where the tests read the mail).
fn smtp_sink(dir: &Path) -> (Private, String) {
    let (smtp, web) = (free_port(), free_port());
    let mail = dir.join("mail");
    let args = [
        "--smtp",
        &smtp.to_string(),
        "--web",
        &web.to_string(),
        "--ip",
        "127.0.0.1",
        "--web-ip",
        "127.0.0.1",
        "--mail-directory",
        mail.to_str().unwrap(),
    ];
    let args = args.iter().map(|a| a.to_string()).collect();
    let sink = Private::new(
        env("TEST_MAILDEV_BIN"),
        args,
        vec![smtp, web],
        dir.join("maildev.log"),
    );
    (sink, format!("http://127.0.0.1:{web}"))
}

/// A MariaDB server with its own data directory, and the URL of a database on it.
fn mariadb(dir: &Path) -> (Private, String) {
    let data = dir.join("mariadb");
    let socket = dir.join("mariadb.sock");
    let installed = Command::new("mariadb-install-db")
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args([
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("mariadb-install-db runs");
    assert!(installed.success());
    let port = free_port();
    let args = vec![
        "--no-defaults".to_owned(),
        format!("--datadir={}", data.display()),
        "--user=root".into(),
        "--bind-address=127.0.0.1".into(),
        format!("--port={port}"),
        format!("--socket={}", socket.display()),
        "--skip-name-resolve".into(),
        "--skip-log-bin".into(),
    ];
    let server = Private::new("mariadbd", args, vec![port], dir.join("mariadb.log"));
    let created = Command::new("mariadb")
        .arg("--no-defaults")
        .arg(format!("--socket={}", socket.display()))
        .args([
            "-uroot",
            "-e",
            "CREATE DATABASE audiomill; CREATE USER 'audiomill'@'%' IDENTIFIED BY 'audiomill'; \
             GRANT ALL ON audiomill.* TO 'audiomill'@'%';",
        ])
        .status()
        .expect("the mariadb client runs");
    assert!(created.success());
    let url = format!("mysql://audiomill:audiomill@127.0.0.1:{port}/audiomill");
    (server, url)
}

async fn health(app: &TestApp) -> Value {
    let response = app.http.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// `/health` names `service` unreachable and the whole `degraded`; `/health/services` says
/// it is down within the check timeout (2 s, plus slack for a busy machine), and `/health/ready`
/// is 503 exactly when the gateway needs the service to take uploads.
async fn assert_degraded(app: &TestApp, service: &str) {
    let body = health(app).await;
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["services"][service], "unreachable", "{body}");

    let started = Instant::now();
    let response = app
        .http
        .get(app.url("/health/services"))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(took < Duration::from_secs(4), "{took:?}: {body}");
    assert_eq!(body["status"], "degraded", "{body}");
    let checks = body["services"].as_array().unwrap();
    let down: Vec<&str> = checks
        .iter()
        .filter(|c| c["status"] == "down")
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(down, [service], "{body}");
    for check in checks {
        assert!(check["latency_ms"].as_u64().unwrap() <= 2_500, "{check}");
    }

    let ready = app.http.get(app.url("/health/ready")).send().await.unwrap();
    let needed = ["database", "storage", "temporal"].contains(&service);
    let expected = if needed {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    assert_eq!(ready.status(), expected);
    let body: Value = ready.json().await.unwrap();
    if needed {
        assert_eq!(body["failing"], serde_json::json!([service]), "{body}");
    }
}

/// Waits until `/status` shows a failed attempt being retried (the outage reached the job).
async fn wait_for_retry(app: &TestApp, token: &str, job_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (code, body) = app.status(token, job_id).await;
        if code == StatusCode::OK
            && body["error"]
                .as_str()
                .is_some_and(|e| e.contains("retrying"))
        {
            let error = body["error"].as_str().unwrap();
            assert!(
                !error.contains("127.0.0.1") && !error.contains("://") && !error.contains("error"),
                "the retry is told in a sentence of ours, naming no host or cause: {error}"
            );
            return body;
        }
        assert!(Instant::now() < deadline, "no retry seen: {code} {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The job completed, its MP3 downloads, and its owner got exactly one e-mail about it.
async fn assert_delivered(app: &TestApp, token: &str, job_id: &str) {
    let seen = app.wait_for_job(token, job_id).await;
    assert_eq!(seen.last().unwrap()["status"], "completed", "{seen:?}");
    let download = app.download(token, job_id).await;
    assert_eq!(download.status(), StatusCode::OK);
    assert!(!download.bytes().await.unwrap().is_empty());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mails: Vec<String> = app
            .mails()
            .await
            .into_iter()
            .filter(|m| m.contains(job_id))
            .collect();
        if mails.len() == 1 {
            break;
        }
        assert!(mails.len() < 2, "two e-mails for one job: {mails:?}");
        assert!(Instant::now() < deadline, "the e-mail never came");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // And no second one on its heels: once the workflow has closed, no step runs again.
    app.wait_for_workflow_closed(job_id).await;
    let count = app
        .mails()
        .await
        .iter()
        .filter(|m| m.contains(job_id))
        .count();
    assert_eq!(count, 1);
}

fn settings<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_of_object_storage_mid_job() {
    let dir = tempfile::tempdir().unwrap();
    let mut s3 = s3_server(dir.path());
    let pairs = s3_settings(&s3);
    let app = TestApp::spawn_with(&settings(&pairs)).await;
    let token = app.user_token("ann").await;
    let long = make_long_video(dir.path(), 1500);
    let job_id = app.start_job(&token, &long).await;
    app.wait_for_transcode(&token, &job_id).await;

    s3.kill();
    assert_degraded(&app, "storage").await;
    let refused = app
        .upload_bytes(&token, "clip.mkv", std::fs::read(&long).unwrap())
        .await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(refused).await, "service_unavailable");
    // The MP3 cannot be stored: the step is retried, and /status says so.
    wait_for_retry(&app, &token, &job_id).await;

    s3.start();
    assert_delivered(&app, &token, &job_id).await;
    assert_eq!(health(&app).await["status"], "ok");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_of_object_storage_mid_cleanup() {
    use audiomill_domain::contract::{CleanExpiredInput, CleanupReport, TASK_QUEUE};
    use temporalio_client::{WorkflowDescribeOptions, WorkflowStartOptions};

    let dir = tempfile::tempdir().unwrap();
    let mut s3 = s3_server(dir.path());
    let mut pairs = s3_settings(&s3);
    pairs.push(("RETENTION_HOURS", "1".into()));
    pairs.push(("RETENTION_SOURCE_HOURS", "1".into()));
    let app = TestApp::spawn_with(&settings(&pairs)).await;
    let bucket = dir.path().join("s3/outage");
    let token = app.user_token("ann").await;
    let mut jobs = Vec::new();
    for n in 0..3 {
        let video = make_mp4(dir.path(), &format!("clip{n}.mp4"), 1, true);
        let job = app.start_job(&token, &video).await;
        app.wait_for_job(&token, &job).await;
        app.wait_for_workflow_closed(&job).await;
        jobs.push(job);
    }
    assert_eq!(objects_in(&bucket).len(), 6, "three videos and three MP3s");

    // Storage goes down; a cleanup starts at a clock past every expiry, and its batch fails.
    s3.kill();
    let as_of = chrono::Utc::now().timestamp_millis() + 2 * 60 * 60 * 1000;
    let handle = app
        .temporal()
        .await
        .start_workflow(
            audiomill_workflows::CleanExpired::run,
            CleanExpiredInput { as_of: Some(as_of) },
            WorkflowStartOptions::new(TASK_QUEUE, "cleanup-through-an-outage").build(),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let described = handle
            .describe(WorkflowDescribeOptions::default())
            .await
            .unwrap()
            .into_raw();
        if described.pending_activities.iter().any(|a| a.attempt >= 2) {
            break;
        }
        assert!(Instant::now() < deadline, "the batch was never retried");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(objects_in(&bucket).len(), 6, "nothing removed meanwhile");

    // Back: the same run finishes, having removed each object once and marked each job.
    s3.start();
    let report = tokio::time::timeout(
        Duration::from_secs(120),
        handle.get_result(Default::default()),
    )
    .await
    .expect("the cleanup finishes once storage is back")
    .unwrap();
    assert_eq!(
        (
            report.sources_removed,
            report.jobs_expired,
            report.objects_removed
        ),
        (3, 3, 3 + 3),
        "{report:?}"
    );
    assert!(objects_in(&bucket).is_empty(), "{:?}", objects_in(&bucket));
    for job in &jobs {
        assert_eq!(app.download(&token, job).await.status(), StatusCode::GONE);
    }
    assert_eq!(app.clean_expired(as_of).await, CleanupReport::default());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_of_the_mail_server_when_the_mail_is_due() {
    let dir = tempfile::tempdir().unwrap();
    let (mut sink, rest) = smtp_sink(dir.path());
    let url = format!("smtp://127.0.0.1:{}", sink.port);
    let mut app = TestApp::spawn_with(&[("SMTP_URL", url.as_str())]).await;
    app.maildev = Some(rest);
    let token = app.user_token("ann").await;
    let clip = make_mp4(dir.path(), "clip.mp4", 2, true);

    sink.kill();
    assert_degraded(&app, "smtp").await;
    let job_id = app.start_job(&token, &clip).await;
    // The MP3 is ready and downloadable; the e-mail's failed attempts show in /status.
    let status = wait_for_retry(&app, &token, &job_id).await;
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["step"], "send_email", "{status}");

    sink.start();
    assert_delivered(&app, &token, &job_id).await;
    // The failed attempts and the delivery are counted.
    let metrics = app.metrics_page().await;
    for counter in [
        "audiomill_emails_failed_total",
        "audiomill_emails_sent_total",
    ] {
        let count: f64 = metrics
            .lines()
            .find_map(|line| line.strip_prefix(counter)?.trim().parse().ok())
            .unwrap_or_default();
        assert!(count >= 1.0, "{counter}: {count}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_of_the_database_mid_job() {
    let dir = tempfile::tempdir().unwrap();
    let (mut db, url) = mariadb(dir.path());
    let app = TestApp::spawn_with(&[("DATABASE_URL", url.as_str())]).await;
    let token = app.user_token("ann").await;
    let long = make_long_video(dir.path(), 1500);
    let job_id = app.start_job(&token, &long).await;
    app.wait_for_transcode(&token, &job_id).await;

    db.kill();
    assert_degraded(&app, "database").await;
    let (code, body) = app.status(&token, &job_id).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "service_unavailable", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("database")),
        "{body}"
    );
    // The transcode ends and recording the MP3 fails, and is retried, while the database is out.
    app.wait_for_retry_of(&job_id, "store_mp3").await;

    db.start();
    assert_delivered(&app, &token, &job_id).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_of_temporal_mid_job() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = TestApp::spawn_with_durable_temporal(&[]).await;
    let token = app.user_token("ann").await;
    let long = make_long_video(dir.path(), 1500);
    let job_id = app.start_job(&token, &long).await;
    app.wait_for_transcode(&token, &job_id).await;

    app.kill_temporal().await;
    assert_degraded(&app, "temporal").await;
    // Status still answers from the job row; an upload cannot start a job and leaves nothing.
    let (code, body) = app.status(&token, &job_id).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let objects_before = app.objects().len();
    let refused = app
        .upload_bytes(&token, "clip.mkv", std::fs::read(&long).unwrap())
        .await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(refused).await, "service_unavailable");
    assert_eq!(app.objects().len(), objects_before, "{:?}", app.objects());
    // The outage lasts a few seconds: long enough for the worker's polls to fail.
    tokio::time::sleep(Duration::from_secs(3)).await;

    app.start_temporal().await;
    assert_delivered(&app, &token, &job_id).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_of_redis_lets_requests_through_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let args = [
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--save",
        "",
        "--appendonly",
        "no",
    ];
    let args = args.iter().map(|a| a.to_string()).collect();
    let mut redis = Private::new(
        "redis-server",
        args,
        vec![port],
        dir.path().join("redis.log"),
    );
    let url = format!("redis://127.0.0.1:{port}");
    let app =
        TestApp::spawn_with(&[("REDIS_URL", url.as_str()), ("RATE_LIMIT_PER_MINUTE", "4")]).await;
    let token = app.user_token("ann").await;
    let validate = || async {
        app.http
            .post(app.url("/validate"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
    };
    // Without Redis the limit cannot be counted: users are served rather than refused.
    redis.kill();
    for _ in 0..8 {
        assert_eq!(validate().await, StatusCode::OK);
    }
    // Back: the limit holds again. Nine requests overrun a limit of four even if they straddle
    // two of its one-minute windows.
    redis.start();
    let mut codes = Vec::new();
    for _ in 0..9 {
        codes.push(validate().await);
    }
    assert!(
        codes.contains(&StatusCode::TOO_MANY_REQUESTS),
        "no limit after Redis came back: {codes:?}"
    );
    app.stop().await;
}
