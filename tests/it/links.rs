//! Signed download links (the e-mail's, `/status`'s, `GET /jobs/{id}/link`'s), downloads
//! served by the bucket (`DOWNLOAD_REDIRECT`), and turning completion e-mails off.

use crate::common;

use audiomill_domain::{JobId, link::LinkSigner};
use common::*;
use reqwest::{StatusCode, redirect::Policy};
use serde_json::{Value, json};
use std::time::Duration;

/// The link in the job's e-mail, which points at this gateway.
async fn emailed_link(app: &TestApp, job_id: &str) -> String {
    let link = app.emailed_link(job_id).await;
    assert!(
        link.starts_with(&format!("{}/download/", app.base)),
        "{link}"
    );
    link
}

/// A client with no credentials of any kind that does not follow redirects.
fn stranger() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

async fn completed_job(app: &TestApp, token: &str, name: &str) -> String {
    let media = tempfile::tempdir().unwrap();
    let video = make_mp4(media.path(), name, 3, true);
    let job_id = app.start_job(token, &video).await;
    app.wait_for_workflow_closed(&job_id).await;
    let (_, status) = app.status(token, &job_id).await;
    assert_eq!(status["status"], "completed", "{status}");
    job_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emailed_link_downloads_the_mp3_with_nothing_else_and_only_that() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ann").await;
    let job_id = completed_job(&app, &token, "Talk é.mp4").await;
    let mp3 = app.download(&token, &job_id).await.bytes().await.unwrap();

    // The e-mail's link works with no token: the same bytes, as an attachment.
    let link = emailed_link(&app, &job_id).await;
    let http = stranger();
    let clicked = http.get(&link).send().await.unwrap();
    assert_eq!(clicked.status(), StatusCode::OK);
    assert_eq!(clicked.headers()["content-type"], "audio/mpeg");
    let disposition = clicked.headers()["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"Talk _.mp3\""),
        "{disposition}"
    );
    assert_eq!(clicked.bytes().await.unwrap(), mp3);
    // Ranges too, and the older `?fid=` form.
    let signature = link.split_once("signature=").unwrap().1.to_owned();
    let partial = http
        .get(app.url(&format!("/download?fid={job_id}&signature={signature}")))
        .header("Range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(partial.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(partial.bytes().await.unwrap(), mp3[10..20]);
    // The message says until when.
    let raw = app.raw_mails().await;
    let text = mailparse::parse_mail(&raw[0]).unwrap().subparts[0]
        .get_body()
        .unwrap();
    assert!(text.contains("The link works until"), "{text}");
    assert!(!text.contains("sign in first"), "{text}");

    // `/status` and `GET /jobs/{id}/link` hand out fresh links that work the same.
    let (_, status) = app.status(&token, &job_id).await;
    let from_status = status["download"]["url"]
        .as_str()
        .expect("a link in /status");
    assert!(from_status.starts_with(&format!("{}/download/{job_id}?signature=", app.base)));
    let issued = json_of(
        app.http
            .get(app.url(&format!("/jobs/{job_id}/link")))
            .bearer_auth(&token),
    )
    .await;
    let expires = chrono::DateTime::parse_from_rfc3339(issued["expires_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    let hours = (expires - chrono::Utc::now().timestamp()) as f64 / 3600.0;
    assert!(
        (71.9..=72.0).contains(&hours),
        "DOWNLOAD_LINK_HOURS is 72: {hours}"
    );
    for url in [from_status, issued["url"].as_str().unwrap()] {
        let response = http.get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        // The link is the credential: no cache keeps the MP3 it opened.
        assert_eq!(response.headers()["cache-control"], "no-store", "{url}");
        assert_eq!(response.bytes().await.unwrap(), mp3);
    }
    // Only its owner (or an admin) may ask for one.
    let bob = app.user_token("bob").await;
    let foreign = app
        .send_as(&bob, reqwest::Method::GET, &format!("/jobs/{job_id}/link"))
        .await;
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    let anonymous = http
        .get(app.url(&format!("/jobs/{job_id}/link")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // A changed character, a cut, another job's id: refused with 403, before anything else.
    let other_job = completed_job(&app, &token, "other.mp4").await;
    let dot = signature.find('.').unwrap();
    let mut changed = signature.clone().into_bytes();
    let at = dot + 5;
    changed[at] = if changed[at] == b'x' { b'y' } else { b'x' };
    let changed = String::from_utf8(changed).unwrap();
    let expiry_changed = signature.replacen(
        &signature[..dot],
        &(signature[..dot].parse::<i64>().unwrap() + 3600).to_string(),
        1,
    );
    for (what, url) in [
        (
            "a changed character",
            format!("/download/{job_id}?signature={changed}"),
        ),
        (
            "a later expiry",
            format!("/download/{job_id}?signature={expiry_changed}"),
        ),
        (
            "a cut",
            format!(
                "/download/{job_id}?signature={}",
                &signature[..signature.len() - 3]
            ),
        ),
        (
            "another job's id",
            format!("/download/{other_job}?signature={signature}"),
        ),
        ("no MAC", format!("/download/{job_id}?signature=")),
    ] {
        let response = http.get(app.url(&url)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{what}");
        assert_eq!(error_code(response).await, "forbidden", "{what}");
    }
    // The link's own job id, changed in the path of an otherwise intact link.
    let moved = link.replace(&job_id, &other_job);
    assert_eq!(
        http.get(&moved).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // Nothing at all: 401, naming both ways in.
    let bare = http
        .get(app.url(&format!("/download/{job_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    let body: Value = bare.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("signed download link"),
        "{body}"
    );

    // Expired (the clock moved past it): 410. The key here is the test configuration's, so a
    // link made with it that has not expired must work, or this check proves nothing.
    let links = LinkSigner::new(LINK_SECRET.as_bytes(), Duration::from_secs(3600), &app.base);
    let id = JobId::parse(&job_id).unwrap();
    let now = chrono::Utc::now().timestamp();
    let fresh = links.issue_until(id, now + 60);
    assert_eq!(
        http.get(&fresh.url).send().await.unwrap().status(),
        StatusCode::OK
    );
    let expired = links.issue_until(id, now - 1);
    let response = http.get(&expired.url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::GONE);
    assert_eq!(error_code(response).await, "gone");
    // A link made with another key is forged, whatever its expiry says.
    let elsewhere = LinkSigner::new(&[7u8; 32], Duration::from_secs(3600), &app.base);
    let response = http.get(&elsewhere.issue(id).url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // A browser gets a page saying so, with the same status.
    let page = http
        .get(app.url(&format!("/download/{job_id}?signature={changed}")))
        .header(
            "Accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("This link does not work") && html.contains("not valid"),
        "{html}"
    );
    let page = http
        .get(&expired.url)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::GONE);
    assert!(page.text().await.unwrap().contains("expired"));

    // Deleted: the link dies with its job.
    assert_eq!(
        app.delete_job(&token, &job_id).await.status(),
        StatusCode::NO_CONTENT
    );
    let response = http.get(&link).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::GONE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "gone");
    assert!(
        body["message"].as_str().unwrap().contains("deleted"),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_emails_can_be_turned_off_and_on() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ann").await;
    let me = |body: Option<Value>| {
        let request = match body {
            Some(body) => app.http.patch(app.url("/me")).json(&body),
            None => app.http.get(app.url("/me")),
        };
        request.bearer_auth(&token).send()
    };
    let account: Value = me(None).await.unwrap().json().await.unwrap();
    assert_eq!(account["email"], app.email("ann"));
    assert_eq!(account["completion_emails"], true);

    let off: Value = me(Some(json!({"completion_emails": false})))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(off["completion_emails"], false);
    // Setting it again changes nothing, and says so.
    let again = me(Some(json!({"completion_emails": false}))).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let job = completed_job(&app, &token, "quiet.mp4").await;
    assert_eq!(app.mail_count().await, 0, "mails are off");
    // The MP3 is still there, and a link can still be had.
    assert_eq!(app.download(&token, &job).await.status(), StatusCode::OK);
    let (_, status) = app.status(&token, &job).await;
    assert!(status["download"]["url"].is_string(), "{status}");

    for (what, body) in [
        ("an unknown setting", json!({"completion_mails": true})),
        ("a string for a boolean", json!({"completion_emails": "no"})),
        ("not an object", json!([true])),
    ] {
        let response = me(Some(body)).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{what}");
        assert_eq!(error_code(response).await, "bad_request", "{what}");
    }
    // The one PATCH body goes through the same body policy as every JSON body: any JSON
    // spelling, nothing else, at most 64 KiB.
    let patch = |content_type: &'static str, body: String| {
        app.http
            .patch(app.url("/me"))
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let setting = r#"{"completion_emails": false}"#.to_owned();
    for spelling in [
        "application/merge-patch+json",
        "Application/JSON; charset=utf-8",
    ] {
        let response = patch(spelling, setting.clone()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{spelling}");
    }
    let response = patch("text/plain", setting.clone()).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let padded = format!(r#"{{"completion_emails": false{}}}"#, " ".repeat(70 * 1024));
    let response = patch("application/json", padded).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let anonymous = app
        .http
        .patch(app.url("/me"))
        .json(&json!({"completion_emails": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let unchanged: Value = me(None).await.unwrap().json().await.unwrap();
    assert_eq!(unchanged["completion_emails"], false);

    let on: Value = me(Some(json!({"completion_emails": true})))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(on["completion_emails"], true);
    let job = completed_job(&app, &token, "loud.mp4").await;
    assert_eq!(app.mail_count().await, 1);
    emailed_link(&app, &job).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redirects_the_bucket_serves_downloads_and_its_urls_expire() {
    let app = TestApp::spawn_with(&[
        ("DOWNLOAD_REDIRECT", "true"),
        ("DOWNLOAD_REDIRECT_SECONDS", "2"),
    ])
    .await;
    let token = app.user_token("ann").await;
    let job_id = completed_job(&app, &token, "Song é.mp4").await;
    let http = stranger();
    let by_token = http
        .get(app.url(&format!("/download/{job_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let link = emailed_link(&app, &job_id).await;
    let by_link = http.get(&link).send().await.unwrap();
    if !production_backends() {
        // Files: only the gateway can serve them, whatever the setting says.
        assert_eq!(by_token.status(), StatusCode::OK);
        assert_eq!(by_link.status(), StatusCode::OK);
        assert_eq!(
            by_token.bytes().await.unwrap(),
            by_link.bytes().await.unwrap()
        );
        app.stop().await;
        return;
    }
    let stored = app.mp3_in_bucket(&job_id).await;
    for response in [by_token, by_link] {
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let endpoint = app.vars["AWS_ENDPOINT_URL"].clone();
        assert!(location.starts_with(&endpoint), "{location}");
        assert!(location.contains("X-Amz-Signature="), "{location}");
        // The bucket is told what to answer with (s3s-fs, the test's server, ignores it;
        // S3 and MinIO send it).
        assert!(
            location.contains("response-content-disposition=attachment"),
            "{location}"
        );
        assert!(
            location.contains("response-content-type=audio%2Fmpeg"),
            "{location}"
        );
        // The bucket serves the same bytes to anyone holding the URL, ranges included.
        let whole = http.get(&location).send().await.unwrap();
        assert_eq!(whole.status(), StatusCode::OK);
        assert_eq!(whole.bytes().await.unwrap(), stored);
        let part = http
            .get(&location)
            .header("Range", "bytes=100-199")
            .send()
            .await
            .unwrap();
        assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(part.bytes().await.unwrap(), stored[100..200]);
    }
    // A client that follows redirects gets the MP3, its token not sent to the bucket.
    let followed = app.download(&token, &job_id).await;
    assert_eq!(followed.status(), StatusCode::OK);
    assert_eq!(followed.bytes().await.unwrap(), stored);
    // A refused link is refused before any redirect.
    let forged = http.get(format!("{link}x")).send().await.unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    // The presigned URL dies after DOWNLOAD_REDIRECT_SECONDS.
    let location = http.get(&link).send().await.unwrap().headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let late = http.get(&location).send().await.unwrap();
    assert_eq!(
        late.status(),
        StatusCode::FORBIDDEN,
        "an expired presigned URL"
    );
    app.stop().await;
}
