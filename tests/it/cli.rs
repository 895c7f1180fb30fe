//! The command-line client end to end: the `audiomill` binary's `login`, `convert`, `jobs`,
//! `status`, `download`, `cancel` and `logout` against a running `audiomill dev` (and, for
//! Ctrl-C, a gateway whose jobs wait for a worker), as a user would run them.

use crate::common;

use audiomill::{Roles, Running};
use common::*;
use reqwest::Method;
use serde_json::Value;
use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// A user's machine: its own home and config directory.
struct User {
    home: tempfile::TempDir,
}

/// How one command ended.
#[derive(Debug)]
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    /// The one sentence a failed command printed: exactly one line, no trace of a panic.
    fn sentence(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr: {self:?}");
        let line = lines[0];
        assert!(line.starts_with("audiomill: "), "{self:?}");
        assert!(line.ends_with('.'), "a whole sentence: {line}");
        line.trim_start_matches("audiomill: ")
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {self:?}"))
    }
}

impl User {
    fn new() -> Self {
        Self {
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    fn login_file(&self) -> PathBuf {
        self.path("config/audiomill/login.json")
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_audiomill"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.path("config"))
            .current_dir(self.home.path())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    async fn run(&self, args: &[&str]) -> Ran {
        self.run_with_input(args, None).await
    }

    async fn run_with_input(&self, args: &[&str], input: Option<&str>) -> Ran {
        let mut command = self.command(args);
        command
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("audiomill starts");
        if let Some(input) = input {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(input.as_bytes()).await.unwrap();
        }
        let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("audiomill {args:?} did not end"))
            .unwrap();
        Ran {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    async fn login(&self, server: &str, email: &str) {
        let ran = self
            .run_with_input(
                &[
                    "login",
                    "--server",
                    server,
                    "--email",
                    email,
                    "--password-stdin",
                ],
                Some(&format!("{PASSWORD}\n")),
            )
            .await;
        assert_eq!(ran.code, 0, "{ran:?}");
    }

    fn saved_login(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.login_file()).unwrap()).unwrap()
    }

    fn save_login(&self, login: &Value) {
        std::fs::write(self.login_file(), login.to_string()).unwrap();
    }
}

/// `audiomill dev` as its own process, on the test's Temporal server and backends.
async fn start_dev(app: &mut TestApp) -> Process {
    start_dev_on(app, "127.0.0.1", free_port()).await
}

/// `audiomill dev` listening on `host:port`, reached by the test at 127.0.0.1.
async fn start_dev_on(app: &mut TestApp, host: &str, port: u16) -> Process {
    let dev = Process::start(
        &app.vars,
        &[("LISTEN_ADDR", format!("{host}:{port}"))],
        &["dev"],
        &app.data.path().join("dev.log"),
    );
    app.base = format!("http://127.0.0.1:{port}");
    app.wait_until_ready(&dev).await;
    dev
}

/// `dev` keeps its data to its owner: a data directory left readable by others is made
/// private at start (said once), and everything it creates is private from the first byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_keeps_its_data_directory_private_to_its_owner() {
    let mut app = TestApp::without_app(&[]).await;
    let data = app.data.path().join("dev-data");
    std::fs::create_dir_all(data.join("objects")).unwrap();
    std::fs::write(data.join("notes.txt"), b"left by hand").unwrap();
    let set = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    set(&data, 0o755);
    set(&data.join("objects"), 0o755);
    set(&data.join("notes.txt"), 0o644);
    app.vars
        .insert("DATA_DIR".into(), data.display().to_string());
    let email = app.email("ann");
    run(
        &app.vars,
        &["user", "add", "--email", &email, "--password", PASSWORD],
    );
    let dev = start_dev(&mut app).await;
    let token = app.access_token(&email).await;
    let media = tempfile::tempdir().unwrap();
    let job = app
        .start_job(&token, &make_mp4(media.path(), "talk.mp4", 2, true))
        .await;
    // Its e-mail may go to the data directory: its workflow says when it is done.
    app.wait_for_workflow_closed(&job).await;
    assert_eq!(app.status(&token, &job).await.1["status"], "completed");

    let log = dev.log();
    assert_eq!(
        log.matches("readable by other users").count(),
        1,
        "said once: {log}"
    );
    let mut entries = 0;
    let mut shared = Vec::new();
    let mut pending = vec![data.clone()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        entries += 1;
        if meta.permissions().mode() & 0o077 != 0 {
            shared.push(format!(
                "{:o} {}",
                meta.permissions().mode(),
                path.display()
            ));
        }
        if meta.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    assert!(shared.is_empty(), "readable by others: {shared:#?}");
    assert!(entries > 4, "the data directory holds {entries} entries");
}

/// `dev` bound to every interface names the web app where a browser on this machine reaches
/// it, says that share links name that address unless `PUBLIC_URL` is set, and its share links
/// do name it (never `0.0.0.0`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_on_every_interface_names_an_address_a_browser_reaches() {
    let mut app = TestApp::without_app(&[]).await;
    let port = free_port();
    let dev = start_dev_on(&mut app, "0.0.0.0", port).await;
    eventually("the banner", || dev.log().contains("Press Ctrl-C")).await;
    let log = dev.log();
    assert!(
        log.contains(&format!("Web app:            http://127.0.0.1:{port}/\n")),
        "{log}"
    );
    assert!(
        log.contains(&format!("API and Swagger UI: http://127.0.0.1:{port}/docs")),
        "{log}"
    );
    assert!(log.contains("set PUBLIC_URL"), "{log}");
    let banner = &log[log.find("Audiomill is running").unwrap()..];
    assert!(!banner.contains("0.0.0.0"), "{banner}");

    let email = app.add_user("ann", false).await;
    let token = app.access_token(&email).await;
    let media = tempfile::tempdir().unwrap();
    let job = app
        .start_job(&token, &make_mp4(media.path(), "talk.mp4", 1, true))
        .await;
    app.wait_for_job(&token, &job).await;
    let (status, link) = app.get_json(&token, &format!("/jobs/{job}/link")).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{link}");
    let url = link["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{port}/")),
        "{url}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_converts_files_and_manages_jobs_against_dev() {
    let mut app = TestApp::without_app(&[]).await;
    let _dev = start_dev(&mut app).await;
    let email = app.add_user("ann", false).await;
    let user = User::new();
    let server = app.base.clone();

    // Logging in: a wrong password and a wrong server are one sentence each.
    let wrong = user
        .run_with_input(
            &[
                "login",
                "--server",
                &server,
                "--email",
                &email,
                "--password-stdin",
            ],
            Some("not the password\n"),
        )
        .await;
    assert_eq!(wrong.code, 1);
    assert_eq!(
        wrong.sentence(),
        format!("{server} refused the e-mail address or the password.")
    );
    let closed = format!("http://127.0.0.1:{}", free_port());
    let nowhere = user
        .run_with_input(
            &[
                "login",
                "--server",
                &closed,
                "--email",
                &email,
                "--password-stdin",
            ],
            Some("x\n"),
        )
        .await;
    assert_eq!(nowhere.code, 1);
    assert!(
        nowhere.sentence().starts_with("Could not connect to"),
        "{nowhere:?}"
    );
    let not_a_url = user
        .run(&["login", "--server", "audiomill", "--email", &email])
        .await;
    assert!(not_a_url.sentence().contains("is not a server address"));
    assert!(!user.login_file().exists(), "no login saved after failures");
    let not_logged_in = user.run(&["jobs"]).await;
    assert_eq!(not_logged_in.code, 1);
    assert!(
        not_logged_in
            .sentence()
            .starts_with("You are not logged in")
    );

    user.login(&server, &email).await;
    let mode = std::fs::metadata(user.login_file())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o600,
        "the tokens are readable by their owner alone"
    );

    // Converting: two videos, one refused file, one missing: the MP3s arrive, the exit
    // status is 1, and each file that failed is named with its reason.
    let media = tempfile::tempdir().unwrap();
    let talk = make_mp4(media.path(), "talk.mp4", 3, true);
    let song = media.path().join("song.mov");
    std::fs::copy(make_mp4(media.path(), "song.mp4", 2, true), &song).unwrap();
    let notes = media.path().join("notes.mp4");
    std::fs::write(&notes, "not a video").unwrap();
    let missing = media.path().join("missing.mkv");
    let ran = user
        .run(&[
            "convert",
            talk.to_str().unwrap(),
            song.to_str().unwrap(),
            notes.to_str().unwrap(),
            missing.to_str().unwrap(),
            "--output",
            "out",
        ])
        .await;
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(is_mp3(&user.path("out/talk.mp3")), "{ran:?}");
    assert!(is_mp3(&user.path("out/song.mp3")), "{ran:?}");
    let leftovers: Vec<_> = std::fs::read_dir(user.path("out")).unwrap().collect();
    assert_eq!(leftovers.len(), 2, "only the MP3s: {leftovers:?}");
    assert!(
        ran.stdout.contains("talk.mp4: uploaded as job"),
        "plain lines: {ran:?}"
    );
    assert!(ran.stdout.contains("2 of 4 converted."), "{ran:?}");
    let failures: Vec<&str> = ran.stderr.lines().collect();
    assert_eq!(failures.len(), 2, "{ran:?}");
    assert!(
        failures[0]
            .contains("notes.mp4 was not sent: The file's content is not a valid .mp4 file.")
    );
    assert!(failures[1].contains("missing.mkv was not sent: there is no such file."));

    // --json for scripts, with a job that fails on the server.
    let silent = make_mp4(media.path(), "silent.mp4", 2, false);
    let ran = user
        .run(&[
            "convert",
            talk.to_str().unwrap(),
            silent.to_str().unwrap(),
            "-o",
            "json-out",
            "--json",
        ])
        .await;
    assert_eq!(ran.code, 1, "{ran:?}");
    assert_eq!(ran.stderr, "", "--json prints only the JSON");
    let files = ran.json()["files"].as_array().unwrap().clone();
    assert_eq!(files[0]["status"], "completed", "{files:?}");
    assert_eq!(files[0]["mp3"], "json-out/talk.mp3");
    assert!(files[0]["error"].is_null());
    assert!(is_mp3(&user.path("json-out/talk.mp3")));
    assert_eq!(files[1]["status"], "failed", "{files:?}");
    assert!(files[1]["job_id"].is_string());
    assert!(files[1]["mp3"].is_null());
    assert!(
        files[1]["error"]
            .as_str()
            .unwrap()
            .contains("no audio track"),
        "{files:?}"
    );
    let failed_job = files[1]["job_id"].as_str().unwrap().to_owned();

    // --no-wait with output flags, then status and download by hand.
    let ran = user
        .run(&[
            "convert",
            talk.to_str().unwrap(),
            "--no-wait",
            "--json",
            "--bitrate-mode",
            "cbr",
            "--bitrate",
            "96",
            "--channels",
            "1",
            "--tag",
            "artist=Ärztin Ü",
            "--tag",
            "album=Live",
            "--cover-at",
            "1",
        ])
        .await;
    assert_eq!(ran.code, 0, "{ran:?}");
    let started = &ran.json()["files"][0];
    assert_eq!(started["status"], "queued");
    let job = started["job_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = user.run(&["status", &job, "--json"]).await;
        assert_eq!(status.code, 0, "{status:?}");
        if status.json()["status"] == "completed" {
            let options = &status.json()["options"];
            assert_eq!(options["bitrate_mode"], "cbr", "{status:?}");
            assert_eq!(options["bitrate"], 96);
            assert_eq!(options["channels"], 1);
            assert_eq!(options["tags"]["artist"], "Ärztin Ü");
            assert_eq!(options["tags"]["album"], "Live");
            assert_eq!(
                (&options["cover"], &options["cover_at"]),
                (&"frame".into(), &1.0.into())
            );
            break;
        }
        assert!(Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // A tag the server does not know is its refusal, in one sentence; a malformed flag is
    // wrong usage.
    let refused = user
        .run(&["convert", talk.to_str().unwrap(), "--tag", "mood=calm"])
        .await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.sentence().contains("`tags[mood]`"), "{refused:?}");
    let usage = user
        .run(&["convert", talk.to_str().unwrap(), "--tag", "calm"])
        .await;
    assert_eq!(usage.code, 2, "{usage:?}");
    let status = user.run(&["status", &failed_job]).await;
    assert!(status.stdout.contains("Status:    failed"), "{status:?}");
    assert!(status.stdout.contains("no audio track"), "{status:?}");
    let saved = user.run(&["download", &job]).await;
    assert_eq!(saved.code, 0, "{saved:?}");
    assert!(
        is_mp3(&user.path("talk.mp3")),
        "named after the video: {saved:?}"
    );
    let named = user.run(&["download", &job, "-o", "named.mp3"]).await;
    assert_eq!(named.code, 0, "{named:?}");
    assert_eq!(
        std::fs::read(user.path("named.mp3")).unwrap(),
        std::fs::read(user.path("talk.mp3")).unwrap()
    );
    let full = user.run(&["download", &job, "-o", "/dev/full"]).await;
    assert_eq!(full.code, 1);
    assert_eq!(
        full.sentence(),
        "Could not save /dev/full: the disk is full."
    );
    let not_ready = user
        .run(&["download", &failed_job, "-o", "failed.mp3"])
        .await;
    assert_eq!(not_ready.code, 1);
    not_ready.sentence();
    assert!(!user.path("failed.mp3").exists());

    // The job list, with paging and a filter.
    let page = user.run(&["jobs", "--limit", "2", "--json"]).await;
    assert_eq!(page.code, 0, "{page:?}");
    let page = page.json();
    assert_eq!(page["jobs"].as_array().unwrap().len(), 2);
    assert_eq!(page["jobs"][0]["job_id"], job.as_str(), "newest first");
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = user
        .run(&["jobs", "--cursor", cursor, "--json"])
        .await
        .json();
    assert_eq!(
        rest["jobs"].as_array().unwrap().len(),
        3,
        "5 jobs in all: {rest}"
    );
    let failed = user
        .run(&["jobs", "--status", "failed", "--json"])
        .await
        .json();
    assert_eq!(failed["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(failed["jobs"][0]["job_id"], failed_job.as_str());
    let table = user.run(&["jobs"]).await;
    assert!(table.stdout.starts_with("JOB"), "{table:?}");
    assert_eq!(
        table.stdout.lines().count(),
        6,
        "a header and 5 jobs: {table:?}"
    );
    for usage in [
        &["jobs", "--status", "done"][..],
        &["jobs", "--limit", "101"],
        &["jobs", "--limit", "0"],
        &["status", "not-a-job"],
    ] {
        let refused = user.run(usage).await;
        assert_eq!(refused.code, 2, "a usage error: {refused:?}");
    }

    // Cancelling an ended job changes nothing; a job that is not there is one sentence.
    let ended = user.run(&["cancel", &job]).await;
    assert_eq!(ended.code, 1);
    assert_eq!(
        ended.sentence(),
        "The job has already ended (completed); there is nothing to cancel."
    );
    assert_eq!(
        user.run(&["download", &job, "-o", "-"]).await.code,
        0,
        "still there"
    );
    let stranger = uuid::Uuid::new_v4().to_string();
    let unknown = user.run(&["status", &stranger]).await;
    assert_eq!(unknown.code, 1);
    assert_eq!(unknown.sentence(), "There is no such job.");

    // An access token past its time is renewed with the refresh token, once.
    let mut login = user.saved_login();
    let refresh = login["refresh_token"].clone();
    login["expires_at"] = 0.into();
    user.save_login(&login);
    assert_eq!(user.run(&["jobs"]).await.code, 0);
    let renewed = user.saved_login();
    assert_ne!(renewed["refresh_token"], refresh, "renewed");
    assert!(renewed["expires_at"].as_u64().unwrap() > 0);
    // A login that can no longer be renewed says so, with what to do.
    let mut login = renewed.clone();
    login["expires_at"] = 0.into();
    login["refresh_token"] = "no longer valid".into();
    user.save_login(&login);
    let expired = user.run(&["jobs"]).await;
    assert_eq!(expired.code, 1);
    assert_eq!(
        expired.sentence(),
        format!(
            "Your login to {server} has expired; log in again with `audiomill login --server {server}`."
        )
    );
    // A server that has gone away.
    let mut moved = renewed.clone();
    moved["server"] = closed.clone().into();
    user.save_login(&moved);
    let gone = user.run(&["status", &job]).await;
    assert_eq!(gone.code, 1);
    assert!(
        gone.sentence()
            .starts_with(&format!("Could not connect to {closed}"))
    );

    user.save_login(&renewed);
    let out = user.run(&["logout"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!user.login_file().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_convert_asks_whether_to_cancel_the_jobs() {
    // A gateway alone: the jobs wait for a worker, so they are unfinished when Ctrl-C comes.
    let mut app = TestApp::without_app(&[]).await;
    let gateway = Running::start(&app.config, roles(&app, true, false))
        .await
        .unwrap();
    app.base = gateway.base_url();
    let server = app.base.clone();
    let email = app.add_user("ann", false).await;
    let media = tempfile::tempdir().unwrap();
    let talk = make_mp4(media.path(), "talk.mp4", 2, true);

    let mut jobs = Vec::new();
    for (answer, expect) in [("n\n", "go on on the server"), ("y\n", "cancelled")] {
        let user = User::new();
        user.login(&server, &email).await;
        let mut convert = user.command(&["convert", talk.to_str().unwrap()]);
        let mut child = convert
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let job = loop {
            let line = stdout.next_line().await.unwrap().expect("convert goes on");
            if let Some(job) = line.split("uploaded as job ").nth(1) {
                break job.trim().to_owned();
            }
        };
        // Following the job: it stays queued without a worker.
        tokio::time::sleep(Duration::from_millis(500)).await;
        interrupt(child.id().unwrap());
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(answer.as_bytes()).await.unwrap();
        let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .expect("convert ends after the answer")
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(130), "{stderr}");
        assert!(
            stderr.contains("Cancel the unfinished job on the server too? [y/N]"),
            "{stderr}"
        );
        assert!(stderr.contains(expect), "{stderr}");
        assert!(stderr.contains(&job), "the job is named: {stderr}");
        jobs.push(job);
    }

    // A worker comes: the job kept goes on to completion, the cancelled one is cancelled.
    let worker = Running::start(&app.config, roles(&app, false, true))
        .await
        .unwrap();
    let token = app.access_token(&email).await;
    let kept = app.wait_for_job(&token, &jobs[0]).await.pop().unwrap();
    assert_eq!(kept["status"], "completed", "{kept}");
    let cancelled = app.wait_for_job(&token, &jobs[1]).await.pop().unwrap();
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    worker.stop().await.unwrap();
    gateway.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_sends_big_files_resumably_and_goes_on_where_a_killed_run_stopped() {
    let app = TestApp::spawn_with(&[("MAX_FILE_SIZE", "300")]).await;
    let email = app.add_user("ann", false).await;
    let user = User::new();
    user.login(&app.base, &email).await;
    let media = tempfile::tempdir().unwrap();
    let video = raw_video(media.path(), 72);
    let size = std::fs::metadata(&video).unwrap().len();
    let out = user.path("mp3s");
    let args = [
        "convert",
        video.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--resumable-above",
        "1",
        "--chunk",
        "4",
    ];
    let mut first = user.command(&args).stdout(Stdio::null()).spawn().unwrap();
    let uploads = user.path("config/audiomill/uploads.json");
    let mut url = None;
    eventually("the upload is remembered", || {
        url = std::fs::read(&uploads)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .and_then(|all| all[0]["url"].as_str().map(str::to_owned));
        url.is_some()
    })
    .await;
    let url = url.unwrap();
    let token = user.saved_login()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let offset = || async {
        let answer = app
            .http
            .head(&url)
            .bearer_auth(&token)
            .header("Tus-Resumable", "1.0.0")
            .send()
            .await
            .unwrap();
        answer.headers()["upload-offset"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while offset().await == 0 {
        assert!(Instant::now() < deadline, "no byte arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let kept = offset().await;
    assert!(0 < kept && kept < size, "{kept} of {size}");

    let ran = user.run(&args).await;
    resumed_its_one_upload(&app, &ran, &out.join("lecture.mp3")).await;
    let remembered: Value = serde_json::from_slice(&std::fs::read(&uploads).unwrap()).unwrap();
    assert_eq!(
        remembered,
        serde_json::json!([]),
        "a finished upload is forgotten"
    );
    app.stop().await;
}

/// `ran` (a `convert` of lecture.mkv) said it resumed, and saved the MP3 at `mp3`; the server
/// holds one resumable upload, complete and started: no other was created.
async fn resumed_its_one_upload(app: &TestApp, ran: &Ran, mp3: &Path) {
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(ran.stdout.contains("lecture.mkv: resuming at"), "{ran:?}");
    assert!(is_mp3(mp3), "{ran:?}");
    let all = app
        .backends
        .db
        .expired_resumables(i64::MAX, 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "the upload went on, no other was created");
    assert!(all[0].is_complete() && all[0].started_at.is_some());
}

/// A TCP proxy in front of `target` that cuts the one connection carrying the `cut_at`-th
/// byte its clients send, and passes everything else through. Its address, and whether it cut.
async fn cutting_proxy(target: String, cut_at: u64) -> (String, Arc<AtomicBool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let sent = Arc::new(AtomicU64::new(0));
    let cut = Arc::new(AtomicBool::new(false));
    let has_cut = cut.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let (sent, cut) = (sent.clone(), cut.clone());
            let mut server = tokio::net::TcpStream::connect(&target).await.unwrap();
            tokio::spawn(async move {
                let (mut from_client, mut to_client) = client.split();
                let (mut from_server, mut to_server) = server.split();
                let upstream = async {
                    let mut buffer = vec![0; 64 * 1024];
                    loop {
                        let read = from_client.read(&mut buffer).await.unwrap_or(0);
                        let before = sent.fetch_add(read as u64, Ordering::SeqCst);
                        let crossing = before < cut_at && cut_at <= before + read as u64;
                        if read == 0 || (crossing && !cut.swap(true, Ordering::SeqCst)) {
                            return;
                        }
                        if to_server.write_all(&buffer[..read]).await.is_err() {
                            return;
                        }
                    }
                };
                tokio::select! {
                    () = upstream => {}
                    _ = tokio::io::copy(&mut from_server, &mut to_client) => {}
                }
            });
        }
    });
    (address, has_cut)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_goes_on_from_the_servers_offset_when_its_connection_is_cut() {
    let app = TestApp::spawn_with(&[("MAX_FILE_SIZE", "300")]).await;
    let email = app.add_user("ann", false).await;
    let (proxy, cut) =
        cutting_proxy(app.base.trim_start_matches("http://").to_owned(), 10 << 20).await;
    let user = User::new();
    user.login(&proxy, &email).await;
    let media = tempfile::tempdir().unwrap();
    let video = raw_video(media.path(), 8);
    let out = user.path("mp3s");
    let args = [
        "convert",
        video.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--resumable-above",
        "1",
        "--chunk",
        "8",
    ];
    let ran = user.run(&args).await;
    assert!(cut.load(Ordering::SeqCst), "the proxy cut a connection");
    resumed_its_one_upload(&app, &ran, &out.join("lecture.mp3")).await;
    app.stop().await;
}

/// The conversion service is down when the last chunk arrives: the bytes are kept and the
/// job unstarted; `convert` waits, asks where the upload stands, and that look starts the job
/// once the service is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_waits_out_an_outage_that_held_back_its_job() {
    let mut app = TestApp::spawn_with_durable_temporal(&[("MAX_FILE_SIZE", "300")]).await;
    let email = app.add_user("ann", false).await;
    let user = User::new();
    user.login(&app.base, &email).await;
    let media = tempfile::tempdir().unwrap();
    let video = make_mp4(media.path(), "lecture.mp4", 2, true);
    let out = user.path("mp3s");
    let args = [
        "convert",
        video.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--resumable-above",
        "0",
    ];
    app.kill_temporal().await;
    let running = user.command(&args).stdout(Stdio::piped()).spawn().unwrap();
    app.wait_for_held_upload().await;
    app.start_temporal().await;
    let ran = running.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&ran.stdout);
    assert!(ran.status.success(), "{stdout}");
    assert!(is_mp3(&out.join("lecture.mp3")), "{stdout}");
    let uploads = app
        .backends
        .db
        .expired_resumables(i64::MAX, 10)
        .await
        .unwrap();
    assert_eq!(uploads.len(), 1, "no second upload");
    assert!(uploads[0].started_at.is_some());
    app.stop().await;
}

/// The test's gateway or worker alone.
fn roles(app: &TestApp, gateway: bool, worker: bool) -> Roles {
    Roles {
        gateway: gateway.then(|| app.gateway.clone()),
        worker: worker.then(|| app.worker.clone()),
    }
}

/// Sends SIGINT, as Ctrl-C does.
fn interrupt(pid: u32) {
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// A server that answers like Audiomill but holds hostile data: a login whose token never
/// ends (`/login` on the `endless` server), an over-long token, and jobs whose names and
/// errors carry terminal escape sequences. Counts the bytes of the endless token sent.
mod hostile {
    use poem::{
        Body, EndpointExt, Response, Route, handler,
        listener::{Acceptor, Listener, TcpListener},
        web::Data,
    };
    use serde_json::json;
    use std::sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    };

    pub const JOB: &str = "0190a0b0-0000-7000-8000-000000000001";
    pub const ESCAPES: &str = "\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}31m\u{202e}";

    fn job() -> serde_json::Value {
        json!({
            "job_id": JOB,
            "filename": format!("talk{ESCAPES}.mp4"),
            "status": "failed",
            "step": null,
            "progress": 0,
            "attempt": 1,
            "created_at": "2026-12-05T10:00:00Z",
            "completed_at": null,
            "error": format!("the file is damaged{ESCAPES}"),
            "size_bytes": 1000,
            "expired": false,
            "options": { "bitrate_mode": "vbr", "tags": {}, "strip": false, "cover": "frame" },
        })
    }

    fn json_answer(value: serde_json::Value) -> Response {
        Response::builder()
            .content_type("application/json")
            .body(value.to_string())
    }

    #[handler]
    fn login(sent: Data<&Arc<AtomicU64>>, token: Data<&Option<usize>>) -> Response {
        let Some(length) = *token.0 else {
            // A token that never ends, sent as fast as it is read.
            let sent = sent.0.clone();
            let head = futures::stream::once(async {
                Ok::<_, std::io::Error>(bytes::Bytes::from(r#"{"access_token":""#))
            });
            let endless = futures::stream::repeat_with(move || {
                sent.fetch_add(64 << 10, Ordering::Relaxed);
                Ok(bytes::Bytes::from(vec![b'a'; 64 << 10]))
            });
            use futures::StreamExt;
            return Response::builder()
                .content_type("application/json")
                .body(Body::from_bytes_stream(head.chain(endless)));
        };
        json_answer(json!({
            "access_token": "a".repeat(length),
            "token_type": "Bearer",
            "expires_in": u64::MAX,
            "refresh_token": "r".repeat(length),
        }))
    }

    #[handler]
    fn jobs() -> Response {
        json_answer(json!({ "jobs": [job()], "next_cursor": null }))
    }

    #[handler]
    fn status() -> Response {
        json_answer(job())
    }

    /// Serves on a free loopback port: `token` is the length of the tokens `/login` gives,
    /// `None` for one that never ends. Its address, and the count of endless bytes sent.
    pub async fn serve(token: Option<usize>) -> (String, Arc<AtomicU64>) {
        let sent = Arc::new(AtomicU64::new(0));
        let app = Route::new()
            .at("/login", poem::post(login))
            .at("/jobs", poem::get(jobs))
            .at("/status/:id", poem::get(status))
            .data(sent.clone())
            .data(token);
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let address = acceptor.local_addr()[0].as_socket_addr().cloned().unwrap();
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
        (format!("http://{address}"), sent)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reads_no_more_than_an_answer_needs_and_saves_no_odd_token() {
    let user = User::new();
    let login = |server: String| {
        let user = &user;
        async move {
            let args = [
                "login",
                "--server",
                &server,
                "--email",
                "ann@example.com",
                "--password-stdin",
            ];
            user.run_with_input(&args, Some("pw\n")).await
        }
    };
    let (endless, sent) = hostile::serve(None).await;
    let ran = login(endless.clone()).await;
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(ran.sentence().contains("larger than 1 MB"), "{ran:?}");
    let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        sent < 64 << 20,
        "the client read on: {sent} bytes were sent"
    );
    assert!(!user.login_file().exists(), "nothing is saved");

    // Within the answer's cap, but no token of ours: refused, nothing saved.
    let (long, _) = hostile::serve(Some(100_000)).await;
    let ran = login(long.clone()).await;
    assert_eq!(ran.code, 1, "{ran:?}");
    assert_eq!(
        ran.sentence(),
        format!("{long} does not answer like an Audiomill server; check the address.")
    );
    assert!(!user.login_file().exists(), "nothing is saved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_shows_server_strings_without_obeying_their_escapes() {
    let user = User::new();
    let (server, _) = hostile::serve(Some(300)).await;
    user.login(&server, "ann@example.com").await;
    let saved = user.saved_login();
    assert!(saved["expires_at"].as_u64().unwrap() > 0, "{saved}");
    let obeyed = |text: &str| {
        text.chars()
            .any(|c| (c.is_control() && c != '\n') || c == '\u{202e}')
    };
    for args in [
        vec!["jobs"],
        vec!["jobs", "--json"],
        vec!["status", hostile::JOB],
        vec!["status", hostile::JOB, "--json"],
    ] {
        let ran = user.run(&args).await;
        assert_eq!(ran.code, 0, "{ran:?}");
        assert!(!obeyed(&ran.stdout), "{args:?}: {:?}", ran.stdout);
        assert!(ran.stdout.contains("talk"), "{args:?}: {}", ran.stdout);
        if args.contains(&"--json") {
            // Still the server's words, for a program reading them.
            let parsed = ran.json();
            let job = parsed.get("jobs").map_or(&parsed, |jobs| &jobs[0]);
            let name = job["filename"].as_str().unwrap();
            assert_eq!(name, format!("talk{}.mp4", hostile::ESCAPES));
        }
    }
    let ran = user.run(&["status", hostile::JOB]).await;
    assert!(ran.stdout.contains("\\u{1b}]0;owned"), "{}", ran.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_works_from_a_flag_or_the_environment_with_no_login_kept() {
    let app = TestApp::spawn().await;
    let login = app.user_token("ann").await;
    let made: Value = app
        .http
        .post(app.url("/api-keys"))
        .bearer_auth(&login)
        .json(&serde_json::json!({"name": "laptop", "scopes": ["jobs:read", "jobs:write"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = made["key"].as_str().unwrap().to_owned();
    let user = User::new();
    let video = make_mp4(user.home.path(), "talk.mp4", 2, true);

    let converted = user
        .run(&[
            "convert",
            video.to_str().unwrap(),
            "--output",
            "out",
            "--api-key",
            &key,
            "--server",
            &app.base,
        ])
        .await;
    assert_eq!(converted.code, 0, "{converted:?}");
    assert!(is_mp3(&user.path("out/talk.mp3")));
    assert!(!user.login_file().exists(), "a key keeps no login");

    let mut listing = user.command(&["jobs", "--json"]);
    listing
        .env("AUDIOMILL_API_KEY", &key)
        .env("AUDIOMILL_SERVER", &app.base);
    let output = listing.output().await.unwrap();
    assert!(output.status.success(), "{output:?}");
    let page: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(page["jobs"][0]["filename"], "talk.mp4");

    let nowhere = user.run(&["jobs", "--api-key", &key]).await;
    assert_eq!(nowhere.code, 1);
    assert!(nowhere.sentence().contains("--server"), "{nowhere:?}");

    let id = made["id"].as_str().unwrap();
    app.send_as(&login, Method::DELETE, &format!("/api-keys/{id}"))
        .await;
    let refused = user
        .run(&["jobs", "--api-key", &key, "--server", &app.base])
        .await;
    assert_eq!(refused.code, 1);
    assert!(
        refused.sentence().contains("refused the API key"),
        "{refused:?}"
    );
    assert!(
        !refused.stderr.contains(&key[17..]),
        "the key is not echoed"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_has_the_server_fetch_a_link_and_never_prints_its_credentials() {
    let app = TestApp::spawn_with(&crate::imports::SOURCES_ON_LOOPBACK).await;
    let email = app.add_user("lin", false).await;
    let user = User::new();
    let video = std::fs::read(make_mp4(user.home.path(), "talk.mp4", 2, true)).unwrap();
    let (base, _) = crate::imports::source_server(video).await;
    let link = base.replace("http://", "http://lin:s3cret@") + "/talk.mp4?signature=hush";
    let logged_in = user
        .run_with_input(
            &[
                "login",
                "--server",
                &app.base,
                "--email",
                &email,
                "--password-stdin",
            ],
            Some(&format!("{}\n", common::PASSWORD)),
        )
        .await;
    assert_eq!(logged_in.code, 0, "{logged_in:?}");
    let converted = user
        .run(&[
            "convert", &link, "--output", "out", "--json", "--preset", "voice",
        ])
        .await;
    assert_eq!(converted.code, 0, "{converted:?}");
    assert!(is_mp3(&user.path("out/talk.mp3")));
    let outcomes: Value = serde_json::from_str(&converted.stdout).unwrap();
    assert_eq!(outcomes["files"][0]["status"], "completed", "{outcomes}");
    assert_eq!(outcomes["files"][0]["file"], format!("{base}/talk.mp4"));
    let refused = user
        .run(&["convert", "https://no-such-host.invalid/v.mp4"])
        .await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stdout.contains("refused"), "{refused:?}");
    for ran in [&converted, &refused] {
        for secret in ["s3cret", "hush"] {
            assert!(!format!("{ran:?}").contains(secret), "{secret}: {ran:?}");
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_writes_mp3s_to_the_users_own_bucket_too() {
    let mut settings = crate::imports::SOURCES_ON_LOOPBACK.to_vec();
    settings.push((
        "CONNECTION_SECRET_KEY",
        "a connection key that is long enough for tests",
    ));
    let app = TestApp::spawn_with(&settings).await;
    let token = app.user_token("kim").await;
    let user = User::new();
    let storage = user.home.path().join("storage");
    std::fs::create_dir_all(storage.join("videos")).unwrap();
    let (_server, endpoint) = crate::connections::user_storage(&storage);
    let saved: Value = app
        .http
        .post(app.url("/connections"))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "name": "mine", "endpoint": endpoint, "bucket": "videos",
            "access_key_id": crate::connections::KEY,
            "secret_access_key": crate::connections::SECRET,
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let connection = saved["id"].as_str().unwrap().to_owned();
    let video = make_mp4(user.home.path(), "talk.mp4", 2, true);
    let (base, _) = crate::imports::source_server(std::fs::read(&video).unwrap()).await;
    let key = jobs_key(&app, &token).await;
    let link = format!("{base}/talk.mp4");
    let converted = user
        .run(&[
            "convert",
            video.to_str().unwrap(),
            &link,
            "--output",
            "out",
            "--export-to",
            &connection,
            "--export-key",
            "cli/{stem}-{job_id}.mp3",
            "--api-key",
            &key,
            "--server",
            &app.base,
        ])
        .await;
    assert_eq!(converted.code, 0, "{converted:?}");
    let written = common::objects_in(&storage.join("videos/cli"));
    assert_eq!(
        written.len(),
        2,
        "the uploaded and the imported MP3: {written:?}"
    );
    assert!(
        written
            .iter()
            .all(|name| name.starts_with("talk-") && name.ends_with(".mp3"))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_adds_lists_pauses_resumes_and_deletes_a_watch_folder() {
    let app = TestApp::spawn_with(&[
        ("IMPORT_ALLOW_PRIVATE", "true"),
        (
            "CONNECTION_SECRET_KEY",
            "a connection key that is long enough for tests",
        ),
    ])
    .await;
    let token = app.user_token("wyn").await;
    let user = User::new();
    let storage = user.home.path().join("storage");
    let folder = storage.join("videos/in/drop");
    std::fs::create_dir_all(&folder).unwrap();
    make_mp4(&folder, "talk.mp4", 1, true);
    let (_server, endpoint) = crate::connections::user_storage(&storage);
    let connection = crate::watches::connect(&app, &token, &endpoint).await;
    let key = jobs_key(&app, &token).await;
    let watch = |args: &[&str]| {
        let mut all = vec!["watch", "--api-key", &key, "--server", &app.base];
        all.extend_from_slice(args);
        all.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let user = &user;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            user.run(&args).await
        }
    };
    let added = run(watch(&[
        "add",
        "--connection",
        &connection,
        "--prefix",
        "drop",
        "--preset",
        "voice",
        "--export-to",
        &connection,
        "--export-key",
        "mp3/{stem}.mp3",
        "--interval",
        "10",
        "--json",
    ]))
    .await;
    assert_eq!(added.code, 0, "{added:?}");
    let shown: Value = serde_json::from_str(&added.stdout).unwrap();
    assert_eq!(shown["prefix"], "drop/");
    assert_eq!(shown["options"]["preset"], "voice");
    let id = shown["id"].as_str().unwrap().to_owned();
    crate::watches::settled(&app, &token, &id, 1, 60).await;
    assert!(storage.join("videos/in/mp3/talk.mp3").exists());

    let listed = run(watch(&["list"])).await;
    assert_eq!(listed.code, 0, "{listed:?}");
    assert!(
        listed.stdout.contains(&id) && listed.stdout.contains("1 jobs"),
        "{listed:?}"
    );
    let paused = run(watch(&["pause", &id])).await;
    assert!(paused.stdout.contains("paused"), "{paused:?}");
    let resumed = run(watch(&["resume", &id])).await;
    assert!(resumed.stdout.contains("active"), "{resumed:?}");
    let deleted = run(watch(&["delete", &id])).await;
    assert_eq!(deleted.code, 0, "{deleted:?}");
    let again = run(watch(&["delete", &id])).await;
    assert_eq!(again.code, 1);
    assert!(again.sentence().contains("no such watch"), "{again:?}");
    let wrong = run(watch(&[
        "add",
        "--connection",
        &uuid::Uuid::new_v4().to_string(),
    ]))
    .await;
    assert_eq!(wrong.code, 1);
    assert!(wrong.sentence().contains("connection"), "{wrong:?}");
    app.stop().await;
}

/// A new API key of the holder of `token` that reads and starts jobs.
async fn jobs_key(app: &TestApp, token: &str) -> String {
    app.http
        .post(app.url("/api-keys"))
        .bearer_auth(token)
        .json(&serde_json::json!({"name": "cli", "scopes": ["jobs:read", "jobs:write"]}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned()
}
