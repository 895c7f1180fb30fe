//! What integrators build on, driven through the generated Rust client (`audiomill-client`):
//! idempotent uploads and the job list.

use crate::common;

use audiomill_client::{Error, types};
use common::*;
use futures::StreamExt;

/// The error code of a refusal from the generated client.
fn refusal<T: std::fmt::Debug>(result: Result<T, Error<types::ErrorBody>>) -> (u16, String) {
    match result {
        Err(Error::ErrorResponse(answer)) => (
            answer.status().as_u16(),
            answer.into_inner().error.to_string(),
        ),
        other => panic!("expected a refusal in the error shape, got {other:?}"),
    }
}

async fn upload(
    client: &audiomill_client::Client,
    path: &std::path::Path,
    key: Option<&str>,
) -> Result<audiomill_client::UploadAnswer, Error<types::ErrorBody>> {
    audiomill_client::upload(client, path, &Default::default(), key, |_| {}).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_upload_with_its_idempotency_key_returns_the_first_job() {
    let app = TestApp::spawn().await;
    let ann = app.client(&app.user_token("ann").await);
    let bob = app.client(&app.user_token("bob").await);
    let media = tempfile::tempdir().unwrap();
    let talk = make_mp4(media.path(), "talk.mp4", 2, true);
    let other = make_mp4(media.path(), "other.mp4", 3, true);

    let first = upload(&ann, &talk, Some("key-1")).await.unwrap();
    assert!(!first.replayed);
    let stored = app.objects().len();
    let again = upload(&ann, &talk, Some("key-1")).await.unwrap();
    assert!(again.replayed, "200, not 202");
    assert_eq!(again.job.job_id, first.job.job_id);
    assert_eq!(again.job.filename, "talk.mp4");
    assert_eq!(app.objects().len(), stored, "nothing stored again");

    let (status, code) = refusal(upload(&ann, &other, Some("key-1")).await);
    assert_eq!((status, code.as_str()), (422, "unprocessable_content"));
    assert_eq!(
        app.objects().len(),
        stored,
        "a refused retry stores nothing"
    );

    let bobs = upload(&bob, &talk, Some("key-1")).await.unwrap();
    assert!(!bobs.replayed, "keys are scoped per user");
    assert_ne!(bobs.job.job_id, first.job.job_id);

    let unkeyed = upload(&ann, &talk, None).await.unwrap();
    assert_ne!(unkeyed.job.job_id, first.job.job_id, "no key, a new job");

    for bad in ["", &"k".repeat(256), "two words"] {
        let (status, code) = refusal(upload(&ann, &talk, Some(bad)).await);
        assert_eq!((status, code.as_str()), (400, "bad_request"), "key {bad:?}");
    }

    // A key whose upload was refused is free again.
    let empty = media.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let (status, _) = refusal(upload(&ann, &empty, Some("key-2")).await);
    assert_eq!(status, 400);
    let later = upload(&ann, &talk, Some("key-2")).await.unwrap();
    assert!(!later.replayed);

    let page = ann.list_jobs().send().await.unwrap().into_inner();
    let mut listed: Vec<_> = page.jobs.iter().map(|job| job.job_id).collect();
    listed.sort();
    let mut expected = vec![first.job.job_id, unkeyed.job.job_id, later.job.job_id];
    expected.sort();
    assert_eq!(listed, expected, "one job per key, whatever the retries");
    assert!(
        app.metrics_page()
            .await
            .contains("audiomill_uploads_replayed_total 1")
    );
}

/// An `Idempotency-Key` that cannot name a key is refused, never ignored (ignored, each retry
/// would start another job): non-ASCII text, obs-text bytes, control characters, the header
/// twice; over HTTP/1.1 and HTTP/1.0 alike. Nothing is stored and no job starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_that_names_no_key_is_refused_over_every_protocol() {
    use reqwest::header::{HeaderMap, HeaderValue};
    let app = TestApp::spawn().await;
    let token = app.user_token("ann").await;
    let media = tempfile::tempdir().unwrap();
    let talk = make_mp4(media.path(), "talk.mp4", 2, true);
    let one = |value: &[u8]| {
        let mut headers = HeaderMap::new();
        headers.insert("idempotency-key", HeaderValue::from_bytes(value).unwrap());
        headers
    };
    let mut twice = one(b"key-a");
    twice.append("idempotency-key", HeaderValue::from_static("key-b"));
    let mut same_twice = one(b"key-a");
    same_twice.append("idempotency-key", HeaderValue::from_static("key-a"));
    let cases = [
        ("Cyrillic", one("ключ".as_bytes())),
        ("obs-text", one(b"key-\xe9")),
        ("a tab", one(b"key\tone")),
        ("a space", one(b"key one")),
        ("an empty value", one(b"")),
        ("two keys", twice),
        ("one key twice", same_twice),
    ];
    for version in [reqwest::Version::HTTP_11, reqwest::Version::HTTP_10] {
        for (what, headers) in &cases {
            for _ in 0..2 {
                let answer = app
                    .http
                    .post(app.url("/upload"))
                    .version(version)
                    .bearer_auth(&token)
                    .headers(headers.clone())
                    .multipart(upload_form(&[&talk], &[]))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(answer.status(), 400, "{what} over {version:?}");
                let body: serde_json::Value = answer.json().await.unwrap();
                assert_eq!(body["error"], "bad_request", "{body}");
                assert!(
                    body["message"]
                        .as_str()
                        .unwrap()
                        .contains("Idempotency-Key"),
                    "{body}"
                );
            }
        }
    }
    // The gateway speaks HTTP/1 only: HTTP/2 is refused at its first bytes, key or not.
    let http2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let refused = http2
        .post(app.url("/upload"))
        .bearer_auth(&token)
        .headers(cases[0].1.clone())
        .multipart(upload_form(&[&talk], &[]))
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(app.objects().is_empty(), "{:?}", app.objects());
    let page = app
        .client(&token)
        .list_jobs()
        .send()
        .await
        .unwrap()
        .into_inner();
    assert!(page.jobs.is_empty(), "no job started: {:?}", page.jobs);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_client_reads_jobs_and_their_refusals() {
    let app = TestApp::spawn().await;
    let token = app.user_token("cy").await;
    let client = app.client(&token);
    let media = tempfile::tempdir().unwrap();
    let video = make_mp4(media.path(), "short.mp4", 2, true);
    let job = audiomill_client::upload(&client, &video, &Default::default(), None, |_| {})
        .await
        .unwrap()
        .job;
    app.wait_for_job(&token, &job.job_id.to_string()).await;

    // An upload's one-off webhook: its secret comes back once; a URL that may not be reached
    // is refused naming the field.
    let with_callback = |url: &str| audiomill_client::UploadOptions {
        callback_url: Some(url.to_owned()),
        ..Default::default()
    };
    let answer = audiomill_client::upload(
        &client,
        &video,
        &with_callback("https://93.184.216.34/hooks/audiomill"),
        None,
        |_| {},
    )
    .await
    .unwrap();
    let callback = answer.job.callback.expect("the callback endpoint");
    assert!(callback.secret.starts_with("whsec_"), "{callback:?}");
    let refused = audiomill_client::upload(
        &client,
        &video,
        &with_callback("http://127.0.0.1:9/hook"),
        None,
        |_| {},
    )
    .await;
    match refused {
        Err(Error::ErrorResponse(answer)) => {
            assert_eq!(answer.status().as_u16(), 400);
            assert_eq!(answer.into_inner().field.as_deref(), Some("callback_url"));
        }
        other => panic!("expected a 400, got {other:?}"),
    }

    let status = client
        .get_job_status()
        .job_id(job.job_id)
        .send()
        .await
        .unwrap();
    assert_eq!(status.status, types::JobState::Completed);
    let page = client
        .list_jobs()
        .status(types::StatusFilter::Completed)
        .limit(std::num::NonZeroU32::new(5).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page.jobs.len(), 1);
    assert_eq!(page.jobs[0].job_id, job.job_id);
    assert!(page.next_cursor.is_none());

    let over = client
        .list_jobs()
        .limit(std::num::NonZeroU32::new(101).unwrap())
        .send()
        .await;
    assert_eq!(refusal(over), (400, "bad_request".into()));
    let missing = client
        .get_job_status()
        .job_id(uuid::Uuid::new_v4())
        .send()
        .await;
    assert_eq!(refusal(missing), (404, "not_found".into()));
    let stranger = app.client("not-a-token");
    assert_eq!(
        refusal(stranger.list_jobs().send().await),
        (401, "unauthorized".into())
    );
}

/// Every event of `job` from its stream, until the stream closes.
async fn all_events(
    client: &audiomill_client::Client,
    job: uuid::Uuid,
    last_event_id: Option<&str>,
) -> Option<Vec<audiomill_client::JobEvent>> {
    use futures::TryStreamExt;
    let stream = audiomill_client::events(client, job, last_event_id)
        .await
        .expect("the stream opens")?;
    let read = stream.try_collect::<Vec<_>>();
    Some(
        tokio::time::timeout(std::time::Duration::from_secs(180), read)
            .await
            .expect("the stream ends with the job")
            .expect("well-formed events"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_followed_live_by_many_clients_through_one_watcher() {
    let app = TestApp::spawn().await;
    let token = app.user_token("dee").await;
    let client = app.client(&token);
    let media = tempfile::tempdir().unwrap();
    let video = make_mp4(media.path(), "long.mp4", 60, true);
    let job = audiomill_client::upload(&client, &video, &Default::default(), None, |_| {})
        .await
        .unwrap()
        .job
        .job_id;

    // Ten followers at once, as ten browser tabs would.
    let started = std::time::Instant::now();
    let followers = (0..10).map(|_| all_events(&client, job, None));
    let streams: Vec<_> = futures::future::join_all(followers)
        .await
        .into_iter()
        .map(Option::unwrap)
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    for events in &streams {
        let last = events.last().expect("at least the end");
        assert!(last.is_end(), "{events:?}");
        assert_eq!(last.data.status, types::JobState::Completed);
        assert_eq!(
            last.data.download_url.as_deref(),
            Some(format!("/download/{job}").as_str())
        );
        assert_eq!(last.data.progress, 100);
        assert!(events.iter().all(|e| e.data.job_id == job));
        assert!(
            events.windows(2).all(|pair| pair[0].id != pair[1].id
                || pair[0].data.eta_seconds != pair[1].data.eta_seconds),
            "no state twice in a row: {events:?}"
        );
        assert!(events[..events.len() - 1].iter().all(|e| !e.is_end()));
    }
    let page = app.metrics_page().await;
    let reads = metric(&page, "audiomill_job_watch_reads_total");
    assert!(
        reads <= elapsed + 3.0,
        "one watcher, about one read a second, not one per follower: {reads} reads in {elapsed:.1} s"
    );
    assert_eq!(
        metric(&page, "audiomill_job_watchers"),
        0.0,
        "the watcher left with the job"
    );
    assert_eq!(
        metric(&page, "audiomill_event_streams"),
        0.0,
        "every stream closed"
    );

    // Resuming: the end already seen means nothing more (204, which stops an EventSource);
    // an older id gets the end at once.
    let end_id = streams[0].last().unwrap().id.clone();
    assert!(all_events(&client, job, Some(&end_id)).await.is_none());
    let resumed = all_events(&client, job, Some("running.3.1.0"))
        .await
        .unwrap();
    assert_eq!(resumed.len(), 1);
    assert!(resumed[0].is_end());

    // The same refusals as every job route.
    let stranger = app.client(&app.user_token("eve").await);
    let refused = audiomill_client::events(&stranger, job, None).await;
    assert_eq!(refusal(refused.map(|_| ())), (404, "not_found".into()));
    let anonymous = app.client("not-a-token");
    let refused = audiomill_client::events(&anonymous, job, None).await;
    assert_eq!(refusal(refused.map(|_| ())), (401, "unauthorized".into()));
    let malformed = app
        .http
        .get(app.url("/jobs/not-a-uuid/events"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(error_code(malformed).await, "bad_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_never_touches_an_ended_job_or_another_users() {
    let app = TestApp::spawn().await;
    let ann_token = app.user_token("ann").await;
    let ann = app.client(&ann_token);
    let bob = app.client(&app.user_token("bob").await);
    let media = tempfile::tempdir().unwrap();
    let talk = make_mp4(media.path(), "talk.mp4", 2, true);
    let job = upload(&ann, &talk, None).await.unwrap().job.job_id;

    let (status, code) = refusal(bob.cancel_job().job_id(job).send().await);
    assert_eq!((status, code.as_str()), (404, "not_found"));
    app.wait_for_job(&ann_token, &job.to_string()).await;
    let (status, code) = refusal(ann.cancel_job().job_id(job).send().await);
    assert_eq!((status, code.as_str()), (409, "conflict"));
    let status = ann.get_job_status().job_id(job).send().await.unwrap();
    assert_eq!(status.status, types::JobState::Completed, "left as it was");
    assert!(ann.download_mp3().job_id(job).send().await.is_ok());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_shutting_down_ends_its_event_streams_at_once() {
    // A gateway alone: its job stays queued, so its stream would never end by itself.
    let mut app = TestApp::without_app(&[]).await;
    let roles = audiomill::Roles {
        gateway: Some(app.gateway.clone()),
        worker: None,
    };
    let gateway = audiomill::Running::start(&app.config, roles).await.unwrap();
    app.base = gateway.base_url();
    let client = app.client(&app.user_token("ann").await);
    let media = tempfile::tempdir().unwrap();
    let talk = make_mp4(media.path(), "talk.mp4", 2, true);
    let job = upload(&client, &talk, None).await.unwrap().job.job_id;
    let mut events = audiomill_client::events(&client, job, None)
        .await
        .unwrap()
        .expect("a stream");
    let first = events.next().await.unwrap().unwrap();
    assert_eq!(first.data.status, types::JobState::Queued);

    // Well within the 30 s the gateway gives requests in flight.
    let stopping = std::time::Instant::now();
    tokio::time::timeout(std::time::Duration::from_secs(10), gateway.stop())
        .await
        .expect("the gateway stops without waiting for the stream")
        .unwrap();
    let rest = tokio::time::timeout(std::time::Duration::from_secs(5), events.next())
        .await
        .expect("the stream has ended");
    assert!(
        !matches!(rest, Some(Ok(ref event)) if event.is_end()),
        "no end event for a job that goes on: {rest:?}"
    );
    assert!(stopping.elapsed() < std::time::Duration::from_secs(10));
}

/// Event streams are capped per user and per gateway: beyond either, a 429 in the error shape
/// with `Retry-After`, and a stream that closes gives its place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_streams_are_capped_per_user_and_per_gateway() {
    let mut app = TestApp::spawn_with(&[
        ("MAX_EVENT_STREAMS_PER_USER", "3"),
        ("MAX_EVENT_STREAMS", "5"),
    ])
    .await;
    // No worker: the jobs stay queued, and their streams open.
    app.stop_worker().await;
    let media = tempfile::tempdir().unwrap();
    let clip = make_mp4(media.path(), "clip.mp4", 1, true);
    let ann = app.user_token("ann").await;
    let bob = app.user_token("bob").await;
    let ann_job = app.start_job(&ann, &clip).await;
    let bob_job = app.start_job(&bob, &clip).await;
    let open = |token: &str, job: &str| {
        app.http
            .get(app.url(&format!("/jobs/{job}/events")))
            .bearer_auth(token)
            .send()
    };
    let mut streams = Vec::new();
    for _ in 0..3 {
        let stream = open(&ann, &ann_job).await.unwrap();
        assert_eq!(stream.status(), 200);
        streams.push(stream);
    }
    let over = open(&ann, &ann_job).await.unwrap();
    assert_eq!(over.status(), 429);
    assert!(over.headers().contains_key("retry-after"));
    let body: serde_json::Value = over.json().await.unwrap();
    assert_eq!(body["error"], "too_many_requests", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("At most 3"),
        "{body}"
    );
    // Bob has streams of his own, up to what the gateway serves in all.
    for _ in 0..2 {
        let stream = open(&bob, &bob_job).await.unwrap();
        assert_eq!(stream.status(), 200);
        streams.push(stream);
    }
    let full = open(&bob, &bob_job).await.unwrap();
    assert_eq!(full.status(), 429);
    let body: serde_json::Value = full.json().await.unwrap();
    assert!(
        !body["message"].as_str().unwrap().contains("At most"),
        "{body}"
    );
    // A stream closed gives its place back.
    drop(streams.remove(0));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let again = open(&bob, &bob_job).await.unwrap();
        if again.status() == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", again.status());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
