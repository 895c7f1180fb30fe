//! The compose stack run for real: `make compose-test` (scripts/compose-test.sh) starts a Docker
//! engine and builds the images the compose file names (stand-ins where no registry has the
//! real one, see tests/compose/stand-ins); this test brings deploy/compose/docker-compose.yml
//! up, unchanged, with the `.env.example` values filled, and sends work through it the way an
//! operator and a user would. Everything goes down at the end, volumes included.

use crate::common::required;
use audiomill_test_kit::make_mp4;
use reqwest::{StatusCode, multipart};
use serde_json::Value;
use std::{
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

const GATEWAY: &str = "http://127.0.0.1:8080";
const EMAIL: &str = "operator@example.com";
const PASSWORD: &str = "a long operator password";
const PROJECT: &str = "audiomill-compose-test";

/// The stack of this test: `docker compose` on the project's file, downed when dropped.
struct Stack {
    env_file: tempfile::NamedTempFile,
}

impl Stack {
    /// `.env.example` with every required value filled, as an operator fills it.
    fn env_file() -> tempfile::NamedTempFile {
        let example = include_str!("../../deploy/compose/.env.example");
        let filled: String = example
            .lines()
            .map(|line| match line.split_once('=') {
                Some((name, "")) if !line.starts_with('#') => {
                    format!("{name}={}\n", secret_for(name))
                }
                _ => format!("{line}\n"),
            })
            .collect();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), filled).unwrap();
        file
    }

    fn compose(&self, args: &[&str]) -> Output {
        self.compose_with_input(args, "")
    }

    /// `docker compose ARGS`, with `input` on its standard input; it must succeed.
    fn compose_with_input(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/compose/docker-compose.yml");
        let mut child = Command::new(required("TEST_COMPOSE"))
            .arg("--env-file")
            .arg(self.env_file.path())
            .args(["-p", PROJECT, "-f"])
            .arg(file)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker compose runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "docker compose {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// The ids of the service's running containers.
    fn containers(&self, service: &str) -> Vec<String> {
        let listed = self.compose(&["ps", "-q", service]);
        String::from_utf8_lossy(&listed.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn logs(&self) -> String {
        let output = self.compose(&["logs", "--no-color", "--tail", "60"]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        self.compose(&["down", "--volumes", "--remove-orphans", "--timeout", "5"]);
    }
}

/// A value for a required setting of `.env.example`: long enough for every key.
fn secret_for(name: &str) -> String {
    format!(
        "{}-compose-test-0123456789abcdef0123456789",
        name.to_lowercase()
    )
}

fn docker(args: &[&str]) -> Output {
    Command::new(required("TEST_DOCKER"))
        .args(args)
        .output()
        .expect("docker runs")
}

/// Polls `check` four times a second until it gives a value, for at most `limit`.
async fn within<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn json(http: &reqwest::Client, url: &str) -> Option<Value> {
    let answer = http.get(url).send().await.ok()?;
    answer.status().is_success().then_some(())?;
    answer.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_stack_converts_scales_and_survives_a_killed_worker() {
    let stack = Stack {
        env_file: Stack::env_file(),
    };
    stack.compose(&["down", "--volumes", "--remove-orphans"]);
    stack.compose(&["up", "-d", "--no-build"]);
    let http = reqwest::Client::new();
    within(
        Duration::from_secs(300),
        "the gateway is healthy",
        || async {
            let health = json(&http, &format!("{GATEWAY}/health")).await?;
            (health["status"] == "ok").then_some(())
        },
    )
    .await;
    only_the_gateway_is_published_beyond_loopback(&stack);

    // An account, the README's way.
    stack.compose(&[
        "exec",
        "-T",
        "gateway",
        "audiomill",
        "user",
        "add",
        "--email",
        EMAIL,
        "--password",
        PASSWORD,
        "--admin",
    ]);
    let token = login(&http).await;
    let videos = tempfile::tempdir().unwrap();
    let job = upload(&http, &token, &make_mp4(videos.path(), "talk.mp4", 3, true)).await;
    let view = finished(&http, &token, &job).await;
    assert_eq!(view["status"], "completed", "{view}");
    let mp3 = http
        .get(format!("{GATEWAY}/download/{job}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(mp3.status(), StatusCode::OK);
    assert!(is_mp3(&mp3.bytes().await.unwrap()));
    the_mail_carries_a_link_that_downloads(&http, &job).await;
    the_temporal_ui_shows_the_run(&http, &job).await;

    stack.compose(&[
        "up",
        "-d",
        "--no-build",
        "--no-recreate",
        "--scale",
        "worker=3",
    ]);
    prometheus_scrapes_every_worker(&http, 3).await;
    a_killed_worker_costs_a_retry_not_the_job(&stack, &http, &token, videos.path()).await;
}

fn only_the_gateway_is_published_beyond_loopback(stack: &Stack) {
    let mut published = Vec::new();
    for service in [
        "mysql",
        "minio",
        "temporal",
        "temporal-ui",
        "redis",
        "mailpit",
        "gateway",
    ] {
        for container in stack.containers(service) {
            let ports = docker(&["port", &container]);
            for line in String::from_utf8_lossy(&ports.stdout).lines() {
                let host = line.rsplit_once(" -> ").map(|(_, host)| host).unwrap_or("");
                if !host.starts_with("127.0.0.1:") {
                    published.push(format!("{service}: {line}"));
                }
            }
        }
    }
    published.sort();
    published.dedup_by(|a, b| a.split(" -> ").next() == b.split(" -> ").next());
    assert_eq!(
        published
            .iter()
            .map(|line| line.split(" -> ").next().unwrap())
            .collect::<Vec<_>>(),
        ["gateway: 8080/tcp"],
        "{published:?}"
    );
}

async fn login(http: &reqwest::Client) -> String {
    let answer: Value = http
        .post(format!("{GATEWAY}/login"))
        .basic_auth(EMAIL, Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["access_token"].as_str().unwrap().to_owned()
}

async fn upload(http: &reqwest::Client, token: &str, video: &Path) -> String {
    let name = video.file_name().unwrap().to_string_lossy().into_owned();
    let part = multipart::Part::bytes(std::fs::read(video).unwrap()).file_name(name);
    let answer = http
        .post(format!("{GATEWAY}/upload"))
        .bearer_auth(token)
        .multipart(multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    let body: Value = answer.json().await.unwrap();
    body["job_id"].as_str().unwrap().to_owned()
}

async fn status(http: &reqwest::Client, token: &str, job: &str) -> Option<Value> {
    let answer = http
        .get(format!("{GATEWAY}/status/{job}"))
        .bearer_auth(token)
        .send()
        .await
        .ok()?;
    answer.json().await.ok()
}

/// The job's view once it ended.
async fn finished(http: &reqwest::Client, token: &str, job: &str) -> Value {
    within(Duration::from_secs(300), "the job ends", || async {
        let view = status(http, token, job).await?;
        ["completed", "failed", "cancelled"]
            .contains(&view["status"].as_str()?)
            .then_some(view)
    })
    .await
}

fn is_mp3(bytes: &[u8]) -> bool {
    bytes.starts_with(b"ID3")
        || bytes.starts_with(&[0xFF, 0xFB])
        || bytes.starts_with(&[0xFF, 0xF3])
}

async fn the_mail_carries_a_link_that_downloads(http: &reqwest::Client, job: &str) {
    let mailpit = "http://127.0.0.1:8025/api/v1";
    let id = within(Duration::from_secs(120), "the job's e-mail", || async {
        let listed = json(http, &format!("{mailpit}/messages")).await?;
        let mail = listed["messages"]
            .as_array()?
            .iter()
            .find(|mail| mail["To"][0]["Address"] == EMAIL)?;
        mail["ID"].as_str().map(str::to_owned)
    })
    .await;
    let raw = http
        .get(format!("{mailpit}/message/{id}/raw"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let unfolded = raw
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let start = unfolded
        .find("http://localhost:8080/")
        .unwrap_or_else(|| panic!("no download link in the mail of {job}: {raw}"));
    let link: String = unfolded[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<' && *c != '>')
        .collect();
    let link = link.replace("http://localhost:8080", GATEWAY);
    let mp3 = http.get(&link).send().await.unwrap();
    assert_eq!(mp3.status(), StatusCode::OK, "{link}");
    assert!(is_mp3(&mp3.bytes().await.unwrap()), "{link}");
}

async fn the_temporal_ui_shows_the_run(http: &reqwest::Client, job: &str) {
    let page = http.get("http://127.0.0.1:8233/").send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let runs = json(
        http,
        "http://127.0.0.1:8233/api/v1/namespaces/default/workflows?query=WorkflowType%3D%22ConvertVideo%22",
    )
    .await
    .expect("the UI's API answers");
    assert!(runs.to_string().contains(job), "{runs}");
}

async fn prometheus_scrapes_every_worker(http: &reqwest::Client, workers: usize) {
    within(
        Duration::from_secs(180),
        "Prometheus scrapes every worker",
        || async {
            let targets = json(http, "http://127.0.0.1:9090/api/v1/targets").await?;
            let active = targets["data"]["activeTargets"].as_array()?;
            let up = |job: &str| {
                active
                    .iter()
                    .filter(|t| t["labels"]["job"] == job && t["health"] == "up")
                    .count()
            };
            (up("audiomill-worker") == workers && up("audiomill-gateway") == 1).then_some(())
        },
    )
    .await;
}

/// A job of a longer video; the worker that fetched its source is killed before it has
/// transcoded it; another worker takes the job's step again, and the job completes.
async fn a_killed_worker_costs_a_retry_not_the_job(
    stack: &Stack,
    http: &reqwest::Client,
    token: &str,
    videos: &Path,
) {
    // A transcode takes well under a second here: the workers get a fifth of a core, so that
    // one is caught at it.
    for worker in stack.containers("worker") {
        let slowed = docker(&["update", "--cpus", "0.2", &worker]);
        assert!(slowed.status.success(), "{slowed:?}");
    }
    let job = upload(http, token, &make_mp4(videos, "long.mp4", 280, true)).await;
    let said = |container: &str, message: &str| {
        let logs = docker(&["logs", container]);
        let text = [logs.stdout, logs.stderr].concat();
        String::from_utf8_lossy(&text)
            .lines()
            .any(|line| line.contains(&format!("\"message\":\"{message}\"")) && line.contains(&job))
    };
    let busy = within(
        Duration::from_secs(180),
        "a worker fetches the source",
        || async {
            stack
                .containers("worker")
                .into_iter()
                .find(|container| said(container, "source fetched"))
        },
    )
    .await;
    assert!(
        !said(&busy, "transcoded"),
        "caught before its transcode ended"
    );
    let killed = docker(&["kill", &busy]);
    assert!(killed.status.success(), "{killed:?}");
    let view = finished(http, token, &job).await;
    assert_eq!(view["status"], "completed", "{view}");
    // The step began again elsewhere: another worker fetched the source and transcoded it.
    let others: Vec<String> = stack
        .containers("worker")
        .into_iter()
        .filter(|other| *other != busy)
        .collect();
    assert!(
        others
            .iter()
            .any(|other| said(other, "source fetched") && said(other, "transcoded")),
        "another worker fetched and transcoded it"
    );
}
