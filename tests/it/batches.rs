//! Batches: one upload with several `file` parts makes a job each, with the same choices;
//! `GET /batches/{id}` sums them and `GET /batches/{id}/download` streams their MP3s as one
//! ZIP, read back here by another implementation (Python's `zipfile`).

use crate::common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::process::Command;

/// Polls the batch until every job has ended.
async fn wait_for_batch(app: &TestApp, token: &str, batch_id: &str) -> Value {
    for _ in 0..600 {
        let (status, batch) = app.get_json(token, &format!("/batches/{batch_id}")).await;
        assert_eq!(status, StatusCode::OK, "{batch}");
        if batch["done"] == true {
            return batch;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the batch did not finish");
}

/// Each entry of a ZIP as Python's `zipfile` reads it: name and SHA-256, in order.
fn zip_entries(zip: &[u8]) -> Vec<(String, String)> {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), zip).unwrap();
    let script = "import hashlib, json, sys, zipfile\n\
                  z = zipfile.ZipFile(sys.argv[1])\n\
                  assert z.testzip() is None\n\
                  print(json.dumps([[i.filename, hashlib.sha256(z.read(i)).hexdigest()] for i in z.infolist()]))";
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The year each entry of a ZIP is dated, as Python's `zipfile` reads it.
fn zip_years(zip: &[u8]) -> Vec<i64> {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), zip).unwrap();
    let script = "import json, sys, zipfile\n\
                  print(json.dumps([i.date_time[0] for i in zipfile.ZipFile(sys.argv[1]).infolist()]))";
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(file.path())
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout).unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_files_make_a_batch_followed_and_downloaded_together() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ada").await;
    let media = tempfile::tempdir().unwrap();
    let first = make_mp4(media.path(), "talk.mp4", 2, true);
    let other_dir = media.path().join("other");
    std::fs::create_dir(&other_dir).unwrap();
    let same_name = make_mp4(&other_dir, "talk.mp4", 3, true);
    let third = make_mp4(media.path(), "Überraschung 日本.mp4", 1, true);

    let form = upload_form(
        &[&first, &same_name, &third],
        &[("tags[album]", "Serie"), ("channels", "1")],
    );
    let (status, body) = app.post_upload(&token, form, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let batch_id = body["batch_id"].as_str().expect("a batch id").to_owned();
    let jobs = body["jobs"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 3, "{body}");
    assert_eq!(body["job_id"], jobs[0]["job_id"]);
    assert_eq!(jobs[2]["filename"], "Überraschung 日本.mp4");

    let batch = wait_for_batch(&app, &token, &batch_id).await;
    assert_eq!(batch["counts"]["completed"], 3, "{batch}");
    assert_eq!(batch["progress"], 100);
    assert_eq!(batch["download"], format!("/batches/{batch_id}/download"));
    let listed: Vec<&Value> = batch["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| &j["job_id"])
        .collect();
    assert_eq!(
        listed,
        jobs.iter().map(|j| &j["job_id"]).collect::<Vec<_>>(),
        "the form's order"
    );

    // Each job has the batch's choices.
    let mut expected = Vec::new();
    for (job, name) in jobs
        .iter()
        .zip(["talk.mp3", "talk (2).mp3", "Überraschung 日本.mp3"])
    {
        let job_id = job["job_id"].as_str().unwrap();
        let (_, status) = app.status(&token, job_id).await;
        assert_eq!(status["options"]["channels"], 1, "{status}");
        assert_eq!(status["options"]["tags"]["album"], "Serie", "{status}");
        let mp3 = app.download(&token, job_id).await.bytes().await.unwrap();
        expected.push((name.to_owned(), sha256(&mp3)));
    }

    let response = app
        .http
        .get(app.url(&format!("/batches/{batch_id}/download")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/zip");
    assert_eq!(response.headers()["x-batch-files"], "3");
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"talk and 2 more.zip\"; filename*=UTF-8''talk%20and%202%20more.zip",
        "named after its files"
    );
    assert!(
        response.headers().get("content-length").is_none(),
        "streamed, not built first"
    );
    let zip = response.bytes().await.unwrap();
    assert_eq!(zip_entries(&zip), expected);
    let this_year = chrono::Utc::now().format("%Y").to_string();
    assert_eq!(
        zip_years(&zip),
        vec![this_year.parse::<i64>().unwrap(); 3],
        "each MP3 dated when it was made, not 1980"
    );

    // Someone else's batch does not exist for them; a malformed id is a 400.
    let other = app.user_token("grace").await;
    let (status, body) = app.get_json(&other, &format!("/batches/{batch_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = app
        .get_json(&other, &format!("/batches/{batch_id}/download"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app.get_json(&token, "/batches/not-a-batch").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "bad_request");

    // A single file is no batch.
    let (status, body) = app
        .post_upload(&token, upload_form(&[&first], &[]), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["batch_id"], Value::Null);
    assert_eq!(body["jobs"].as_array().unwrap().len(), 1);
    app.wait_for_workflow_closed(body["job_id"].as_str().unwrap())
        .await;
}

/// Pollers of a batch share each running job's view: the engine is asked about a running job
/// about once a second however many poll, and about a queued or finished one not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_pollers_of_a_batch_cost_the_engine_one_describe_a_second_per_running_job() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ada").await;
    let media = tempfile::tempdir().unwrap();
    let long = make_long_video(media.path(), 1500);
    let (status, body) = app
        .post_upload(&token, upload_form(&[&long, &long], &[]), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let batch_id = body["batch_id"].as_str().unwrap().to_owned();
    let path = format!("/batches/{batch_id}");

    let before = app.metric("audiomill_job_describes_total").await;
    let started = std::time::Instant::now();
    let poller = || async {
        let mut polls = 0u32;
        loop {
            let (status, batch) = app.get_json(&token, &path).await;
            assert_eq!(status, StatusCode::OK, "{batch}");
            polls += 1;
            if batch["done"] == true || started.elapsed().as_secs() >= 6 {
                return polls;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    let polls: u32 = futures::future::join_all((0..3).map(|_| poller()))
        .await
        .into_iter()
        .sum();
    let elapsed = started.elapsed().as_secs_f64();
    let describes = app.metric("audiomill_job_describes_total").await - before;
    // Two jobs, each described at most once a second while it runs and once as it closes.
    let most = 2.0 * (elapsed + 1.0) + 2.0;
    assert!(
        describes <= most,
        "{describes} describes for {polls} polls in {elapsed:.1} s (at most {most})"
    );
    assert!(polls >= 20, "the pollers polled: {polls}");
    let batch = wait_for_batch(&app, &token, &batch_id).await;
    assert_eq!(batch["counts"]["completed"], 2, "{batch}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_nothing_finished_has_no_archive() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ada").await;
    let media = tempfile::tempdir().unwrap();
    let silent = make_mp4(media.path(), "silent.mp4", 1, false);
    let (status, body) = app
        .post_upload(&token, upload_form(&[&silent, &silent], &[]), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let batch_id = body["batch_id"].as_str().unwrap().to_owned();
    let batch = wait_for_batch(&app, &token, &batch_id).await;
    assert_eq!(batch["counts"]["failed"], 2, "{batch}");
    assert_eq!(batch["download"], Value::Null);
    assert!(
        batch["jobs"][0]["error"]
            .as_str()
            .unwrap()
            .contains("audio"),
        "{batch}"
    );
    let (status, body) = app
        .get_json(&token, &format!("/batches/{batch_id}/download"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "not_ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_files_or_a_keyed_batch_are_refused_with_nothing_stored() {
    let app = TestApp::spawn_with(&[("MAX_FILES_PER_UPLOAD", "3")]).await;
    let token = app.user_token("ada").await;
    let media = tempfile::tempdir().unwrap();
    let video = make_mp4(media.path(), "talk.mp4", 1, true);

    let four = upload_form(&[&video, &video, &video, &video], &[]);
    let (status, body) = app.post_upload(&token, four, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "file", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("at most 3 files"),
        "{body}"
    );

    let keyed = upload_form(&[&video, &video], &[]);
    let (status, body) = app.post_upload(&token, keyed, Some("batch-key-1")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "file", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key"),
        "{body}"
    );

    // A bad field after the files removes every one of them.
    let late = upload_form(&[&video, &video], &[]).text("quality", "11");
    let (status, body) = app.post_upload(&token, late, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "quality");

    assert!(app.objects().is_empty(), "{:?}", app.objects());
    let (_, listing) = app.get_json(&token, "/jobs").await;
    assert_eq!(listing["jobs"].as_array().unwrap().len(), 0, "{listing}");

    // Three files are within the limit.
    let three = upload_form(&[&video, &video, &video], &[]);
    let (status, body) = app.post_upload(&token, three, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    wait_for_batch(&app, &token, body["batch_id"].as_str().unwrap()).await;
}
