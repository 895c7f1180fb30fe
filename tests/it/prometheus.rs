//! A real Prometheus (Debian's `prometheus`) scrapes a gateway process and a worker process with
//! the scrape configuration the project ships (`deploy/compose/prometheus.yml`, its targets
//! pointed at this machine), and every query of the Grafana dashboard
//! (`deploy/grafana/audiomill.json`) finds series once jobs have run.

use crate::common;

use common::{PASSWORD, Process, TestApp, free_port, json_of, make_mp4, run};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};

const TOKEN: &str = "prometheus-test-metrics-token";

/// The shipped configuration with its targets on this machine and a quick scrape interval.
fn scrape_config(gateway: &str, worker: &str, token_file: &str) -> String {
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(include_str!("../../deploy/compose/prometheus.yml")).unwrap();
    config["global"]["scrape_interval"] = "1s".into();
    for job in config["scrape_configs"].as_sequence_mut().unwrap() {
        job["authorization"]["credentials_file"] = token_file.into();
        let target = match job["job_name"].as_str().unwrap() {
            "audiomill-gateway" => gateway,
            "audiomill-worker" => worker,
            other => panic!("unexpected scrape job {other}"),
        };
        // Docker's DNS is not here: the worker is named directly.
        let job = job.as_mapping_mut().unwrap();
        job.remove("dns_sd_configs");
        job.insert(
            "static_configs".into(),
            serde_yaml::from_str(&format!("[{{targets: [\"{target}\"]}}]")).unwrap(),
        );
    }
    serde_yaml::to_string(&config).unwrap()
}

async fn query(http: &reqwest::Client, prometheus: &str, expr: &str) -> Vec<Value> {
    let answer = json_of(
        http.get(format!("{prometheus}/api/v1/query"))
            .query(&[("query", expr)]),
    )
    .await;
    assert_eq!(answer["status"], "success", "{expr}: {answer}");
    answer["data"]["result"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_both_roles_and_every_dashboard_query_finds_series() {
    let test = TestApp::without_app(&[]).await;
    let dir = test.data.path().join("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    run(&test.vars, &["migrate"]);
    let email = test.email("scraped");
    run(
        &test.vars,
        &["user", "add", "--email", &email, "--password", PASSWORD],
    );
    let (gateway_address, worker_address) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let shared = [("METRICS_TOKEN", TOKEN.to_owned())];
    let mut gateway_env = shared.to_vec();
    gateway_env.extend([
        ("LISTEN_ADDR", gateway_address.clone()),
        ("LOGIN_ATTEMPTS_PER_MINUTE", "2".to_owned()),
    ]);
    let mut worker_env = shared.to_vec();
    worker_env.push(("METRICS_LISTEN", worker_address.clone()));
    let _gateway = Process::start(
        &test.vars,
        &gateway_env,
        &["gateway"],
        &dir.join("gateway.log"),
    );
    let _worker = Process::start(
        &test.vars,
        &worker_env,
        &["worker"],
        &dir.join("worker.log"),
    );

    let token_file = dir.join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        scrape_config(
            &gateway_address,
            &worker_address,
            token_file.to_str().unwrap(),
        ),
    )
    .unwrap();
    let prometheus_address = format!("127.0.0.1:{}", free_port());
    let _prometheus = common::Spawned::start(
        "prometheus",
        &[
            &format!("--config.file={}", config.display()),
            &format!("--storage.tsdb.path={}", dir.join("data").display()),
            &format!("--web.listen-address={prometheus_address}"),
        ],
        &dir.join("prometheus.log"),
    );
    let prometheus = format!("http://{prometheus_address}");
    let http = reqwest::Client::new();
    let api = format!("http://{gateway_address}");

    // Traffic of every kind the dashboard shows: a job to its end, a broken one, a refused
    // upload, a refused login run.
    let deadline = Instant::now() + Duration::from_secs(60);
    while http
        .get(format!("{api}/health/ready"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the gateway did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let login = || {
        http.post(format!("{api}/login"))
            .basic_auth(&email, Some(PASSWORD))
    };
    let body = json_of(login()).await;
    let bearer = body["access_token"].as_str().unwrap().to_owned();
    let media = tempfile::tempdir().unwrap();
    let whole = make_mp4(media.path(), "whole.mp4", 2, true);
    let bytes = std::fs::read(&whole).unwrap();
    let upload = |name: &'static str, bytes: Vec<u8>| {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name),
        );
        http.post(format!("{api}/upload"))
            .bearer_auth(&bearer)
            .multipart(form)
            .send()
    };
    let accepted = upload("whole.mp4", bytes.clone()).await.unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let job: Value = accepted.json().await.unwrap();
    let broken = upload("broken.mp4", bytes[..bytes.len() / 2].to_vec())
        .await
        .unwrap();
    assert_eq!(broken.status(), StatusCode::ACCEPTED);
    let broken: Value = broken.json().await.unwrap();
    let refused = upload("notes.mp4", b"plain text".repeat(20)).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    for _ in 0..4 {
        http.post(format!("{api}/login"))
            .basic_auth(&email, Some("wrong password"))
            .send()
            .await
            .unwrap();
    }
    for (job, ending) in [(&job, "completed"), (&broken, "failed")] {
        let id = job["job_id"].as_str().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let status = json_of(http.get(format!("{api}/status/{id}")).bearer_auth(&bearer)).await;
            if status["status"] == ending {
                break;
            }
            assert!(Instant::now() < deadline, "{id} never {ending}: {status}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // The MP3 is downloaded (bytes out).
    let id = job["job_id"].as_str().unwrap();
    let mp3 = http
        .get(format!("{api}/download/{id}"))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(mp3.status(), StatusCode::OK);
    mp3.bytes().await.unwrap();

    // Prometheus has both targets up and the counts of what just happened.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = query(&http, &prometheus, "up").await;
        let healthy = up.len() == 2 && up.iter().all(|s| s["value"][1] == "1");
        let started = query(&http, &prometheus, "audiomill_jobs_started_total").await;
        let steps = query(
            &http,
            &prometheus,
            r#"audiomill_step_duration_seconds_count{job="audiomill-worker",step="transcode"}"#,
        )
        .await;
        let settled = started.first().is_some_and(|s| s["value"][1] == "2")
            && steps
                .iter()
                .map(|s| s["value"][1].as_str().unwrap())
                .any(|v| v != "0");
        if healthy && settled {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "up: {up:?}, jobs started: {started:?}, transcode steps: {steps:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let failures = query(
        &http,
        &prometheus,
        &format!(
            r#"audiomill_step_failures_total{{step="transcode",type="{}"}}"#,
            audiomill_domain::contract::FailureKind::CorruptMedia.name()
        ),
    )
    .await;
    assert_eq!(failures.len(), 1, "{failures:?}");
    let failed_jobs = query(
        &http,
        &prometheus,
        r#"audiomill_jobs_failed_total{job="audiomill-worker"}"#,
    )
    .await;
    assert_eq!(failed_jobs.len(), 1, "{failed_jobs:?}");
    assert_eq!(failed_jobs[0]["value"][1], "1", "{failed_jobs:?}");
    // The SDK's schedule-to-start latency of the activities, as the worker exported it.
    let scheduled = query(
        &http,
        &prometheus,
        r#"temporal_activity_schedule_to_start_latency_seconds_count{job="audiomill-worker",task_queue="audiomill-fetch"}"#,
    )
    .await;
    assert!(
        scheduled.iter().any(|s| s["value"][1] != "0"),
        "{scheduled:?}"
    );

    // Every dashboard query names series that exist (rates need two scrapes: wait for them).
    let dashboard: Value =
        serde_json::from_str(include_str!("../../deploy/grafana/audiomill.json")).unwrap();
    let expressions: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().unwrap().clone())
        .map(|target| target["expr"].as_str().unwrap().to_owned())
        .collect();
    assert!(expressions.len() >= 10, "{expressions:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    for expr in &expressions {
        while query(&http, &prometheus, expr).await.is_empty() {
            assert!(Instant::now() < deadline, "no series for {expr}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
