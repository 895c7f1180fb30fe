//! A load run against one gateway (used by `make bench`): concurrent clients mixing status
//! polls, token validation and small uploads for a fixed time. Prints requests per second,
//! latency percentiles and errors per endpoint, then waits for every uploaded job and counts
//! the ones that never completed.
//!
//!   cargo run --example load -- URL EMAIL PASSWORD VIDEO [CLIENTS] [SECONDS] [UPLOADS]

use reqwest::{Client, StatusCode, multipart};
use serde_json::Value;
use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

#[derive(Default)]
struct Samples {
    latencies: Vec<Duration>,
    errors: usize,
}

type Results = Arc<Mutex<BTreeMap<&'static str, Samples>>>;

fn record(results: &Results, endpoint: &'static str, took: Duration, ok: bool) {
    let mut results = results.lock().unwrap();
    let samples = results.entry(endpoint).or_default();
    samples.latencies.push(took);
    if !ok {
        samples.errors += 1;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, email, password, video, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: load URL EMAIL PASSWORD VIDEO [CLIENTS] [SECONDS] [UPLOADS]");
    };
    let number =
        |i: usize, default: usize| rest.get(i).and_then(|n| n.parse().ok()).unwrap_or(default);
    let (clients, seconds, max_uploads) = (number(0, 50), number(1, 60), number(2, 100));
    let base = base.trim_end_matches('/').to_owned();
    let video = Arc::new(std::fs::read(video)?);
    let http = Client::builder().pool_max_idle_per_host(clients).build()?;

    let token = log_in(&http, &base, email, password).await?;
    // One job to poll from the start.
    let first = upload(&http, &base, &token, &video).await?;
    let jobs = Arc::new(Mutex::new(vec![first]));

    let results: Results = Arc::default();
    let uploads = Arc::new(AtomicUsize::new(1));
    let started = Instant::now();
    let run_for = Duration::from_secs(seconds as u64);
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (http, base, token, video) = (http.clone(), base.clone(), token.clone(), video.clone());
        let (results, jobs, uploads) = (results.clone(), jobs.clone(), uploads.clone());
        tasks.push(tokio::spawn(async move {
            let mut round = client;
            while started.elapsed() < run_for {
                round += 1;
                // Uploads are spread evenly over the run, up to `max_uploads` in all.
                let due = (started.elapsed().as_secs_f64() / run_for.as_secs_f64()
                    * max_uploads as f64) as usize;
                let upload_now = round % 10 == 0
                    && uploads
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                            (n < due).then_some(n + 1)
                        })
                        .is_ok();
                let begun = Instant::now();
                if upload_now {
                    let done = upload(&http, &base, &token, &video).await;
                    record(&results, "POST /upload", begun.elapsed(), done.is_ok());
                    if let Ok(job) = done {
                        jobs.lock().unwrap().push(job);
                    }
                } else if round % 3 == 0 {
                    let ok = answers_ok(http.post(format!("{base}/validate")), &token).await;
                    record(&results, "POST /validate", begun.elapsed(), ok);
                } else {
                    let job = {
                        let jobs = jobs.lock().unwrap();
                        jobs[round % jobs.len()].clone()
                    };
                    let ok = answers_ok(http.get(format!("{base}/status/{job}")), &token).await;
                    record(&results, "GET /status/{id}", begun.elapsed(), ok);
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();

    print_table(&results, elapsed);
    let jobs = jobs.lock().unwrap().clone();
    let lost = not_completed(&http, &base, &token, &jobs).await?;
    println!("jobs: {} accepted, {lost} not completed", jobs.len());
    Ok(())
}

/// The access token of `email`, logged in with HTTP Basic.
async fn log_in(http: &Client, base: &str, email: &str, password: &str) -> anyhow::Result<String> {
    let login: Value = http
        .post(format!("{base}/login"))
        .basic_auth(email, Some(password))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(login["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// Requests, rate, median and 99th percentile latency and errors per endpoint, as a table.
fn print_table(results: &Results, elapsed: f64) {
    println!("| endpoint | requests | per second | p50 | p99 | errors |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (endpoint, samples) in results.lock().unwrap().iter_mut() {
        samples.latencies.sort();
        let at = |q: f64| {
            let i = ((samples.latencies.len() as f64 - 1.0) * q).round() as usize;
            samples.latencies[i].as_secs_f64() * 1000.0
        };
        println!(
            "| {endpoint} | {} | {:.0} | {:.1} ms | {:.1} ms | {} |",
            samples.latencies.len(),
            samples.latencies.len() as f64 / elapsed,
            at(0.5),
            at(0.99),
            samples.errors
        );
    }
}

/// How many of `jobs` did not complete within five minutes (every accepted job must).
async fn not_completed(
    http: &Client,
    base: &str,
    token: &str,
    jobs: &[String],
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut lost = jobs.len();
    while Instant::now() < deadline {
        let mut open = 0;
        for job in jobs {
            let status: Value = http
                .get(format!("{base}/status/{job}"))
                .bearer_auth(token)
                .send()
                .await?
                .json()
                .await?;
            if status["status"] != "completed" {
                open += 1;
            }
        }
        lost = open;
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(lost)
}

/// Sends `request` with the access token; whether it answered 200.
async fn answers_ok(request: reqwest::RequestBuilder, token: &str) -> bool {
    request
        .bearer_auth(token)
        .send()
        .await
        .is_ok_and(|r| r.status() == StatusCode::OK)
}

async fn upload(http: &Client, base: &str, token: &str, video: &[u8]) -> anyhow::Result<String> {
    let part = multipart::Part::bytes(video.to_vec()).file_name("load.mp4");
    let accepted: Value = http
        .post(format!("{base}/upload"))
        .bearer_auth(token)
        .multipart(multipart::Form::new().part("file", part))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(accepted["job_id"].as_str().unwrap_or_default().to_owned())
}
