//! Output choices on `POST /upload`: each reaches the MP3 (checked by decoding it, not by
//! trusting our own report), shows in `/status` and in the workflow's input, and a bad value
//! or combination is a 400 naming the field with nothing stored.

use crate::common;

use common::*;
use reqwest::{StatusCode, multipart};
use serde_json::Value;
use std::{path::Path, process::Command};

/// The MP3's ID3v2 tag as mutagen reads it (`tests/tools/id3dump.py`), and its first
/// picture's bytes.
fn read_id3(mp3: &[u8]) -> (Value, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (file, picture) = (dir.path().join("a.mp3"), dir.path().join("picture"));
    std::fs::write(&file, mp3).unwrap();
    let printed = python_tool("id3dump.py", [&file, &picture]);
    (
        serde_json::from_slice(&printed).unwrap(),
        std::fs::read(&picture).unwrap_or_default(),
    )
}

/// Uploads with `fields`, waits for the job, and returns its `/status` and MP3.
async fn convert(
    app: &TestApp,
    token: &str,
    video: &Path,
    fields: &[(&str, &str)],
) -> (Value, Vec<u8>) {
    let (status, body) = app
        .post_upload(token, upload_form(&[video], fields), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let job_id = body["job_id"].as_str().unwrap().to_owned();
    app.wait_for_workflow_closed(&job_id).await;
    let (_, job) = app.status(token, &job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    let mp3 = app.download(token, &job_id).await.bytes().await.unwrap();
    (job, mp3.to_vec())
}

/// What ffprobe reads of an MP3: sample rate, channels, duration (s).
fn probe(mp3: &[u8]) -> (u32, u32, f64) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), mp3).unwrap();
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-show_entries"])
        .args([
            "stream=sample_rate,channels:format=duration",
            "-of",
            "default=nw=1",
        ])
        .arg(file.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .to_owned()
    };
    (
        field("sample_rate=").parse().unwrap(),
        field("channels=").parse().unwrap(),
        field("duration=").parse().unwrap(),
    )
}

/// The bitrate (kbit/s) of every audio frame, read from the frame headers themselves; the
/// first frame (the Xing/Info tag) is left out.
fn frame_bitrates(mp3: &[u8]) -> Vec<u16> {
    const MPEG1: [u16; 15] = [
        0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ];
    const MPEG2: [u16; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    const RATES: [[u32; 3]; 3] = [
        [44100, 48000, 32000],
        [22050, 24000, 16000],
        [11025, 12000, 8000],
    ];
    // Past the ID3v2 tag, if any.
    let mut at = if mp3.starts_with(b"ID3") {
        let size = mp3[6..10]
            .iter()
            .fold(0usize, |n, b| (n << 7) | usize::from(*b));
        10 + size
    } else {
        0
    };
    let mut rates = Vec::new();
    while at + 4 <= mp3.len() {
        let header = u32::from_be_bytes(mp3[at..at + 4].try_into().unwrap());
        if header >> 21 != 0x7ff {
            break; // An ID3v1 tag or the end.
        }
        let version = (header >> 19) & 3; // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
        let index = ((header >> 12) & 0xf) as usize;
        let rate_index = ((header >> 10) & 3) as usize;
        let padding = (header >> 9) & 1;
        let (kbps, rate, per_frame) = match version {
            3 => (MPEG1[index], RATES[0][rate_index], 144),
            2 => (MPEG2[index], RATES[1][rate_index], 72),
            _ => (MPEG2[index], RATES[2][rate_index], 72),
        };
        let length = (per_frame * u32::from(kbps) * 1000 / rate + padding) as usize;
        assert!(length > 4, "a broken frame header at {at}");
        rates.push(kbps);
        at += length;
    }
    rates.remove(0);
    rates
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_encoding_choice_reaches_the_mp3_and_the_status() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ada").await;
    let media = tempfile::tempdir().unwrap();
    let video = make_mp4(media.path(), "talk.mp4", 4, true);

    // CBR at an MPEG-2 rate, mixed down to mono.
    let fields = [
        ("bitrate_mode", "cbr"),
        ("bitrate", "96"),
        ("sample_rate", "22050"),
        ("channels", "1"),
    ];
    let (job, mp3) = convert(&app, &token, &video, &fields).await;
    let (rate, channels, _) = probe(&mp3);
    assert_eq!((rate, channels), (22050, 1));
    let rates = frame_bitrates(&mp3);
    assert!(rates.len() > 100, "{} frames", rates.len());
    assert!(rates.iter().all(|kbps| *kbps == 96), "{rates:?}");
    let options = &job["options"];
    assert_eq!(options["bitrate_mode"], "cbr", "{job}");
    assert_eq!(options["bitrate"], 96);
    assert_eq!(options["sample_rate"], 22050);
    assert_eq!(options["channels"], 1);
    assert_eq!(options["quality"], Value::Null);
    assert_eq!(options["preset"], Value::Null);
    // The workflow carries them: operators see them in the Web UI's input.
    let input = app.workflow_input(job["job_id"].as_str().unwrap()).await;
    assert_eq!(input["options"]["bitrate"], 96, "{input}");
    assert_eq!(input["options"]["bitrate_mode"], "cbr", "{input}");

    // ABR: the frames vary around the average asked for.
    let (job, mp3) = convert(
        &app,
        &token,
        &video,
        &[("bitrate_mode", "ABR"), ("bitrate", "64k")],
    )
    .await;
    assert_eq!(job["options"]["bitrate_mode"], "abr");
    let rates = frame_bitrates(&mp3);
    let mean = rates.iter().map(|r| f64::from(*r)).sum::<f64>() / rates.len() as f64;
    assert!((48.0..=80.0).contains(&mean), "mean {mean} kbit/s");

    // VBR quality 9 makes a smaller file than quality 0 from the same video, at the source's
    // rate and channels.
    let (best_job, best) = convert(&app, &token, &video, &[("quality", "0")]).await;
    let (_, small) = convert(&app, &token, &video, &[("quality", "9")]).await;
    assert_eq!(best_job["options"]["quality"], 0);
    assert_eq!(best_job["options"]["bitrate_mode"], "vbr");
    assert!(
        small.len() < best.len(),
        "{} vs {}",
        small.len(),
        best.len()
    );
    let (rate, channels, duration) = probe(&best);
    assert_eq!((rate, channels), (44100, 1), "the source's");
    assert!((duration - 4.0).abs() < 0.1, "{duration}");

    // A plain upload shows the defaults.
    let job_id = app.start_job(&token, &video).await;
    let (_, job) = app.status(&token, &job_id).await;
    assert_eq!(job["options"]["bitrate_mode"], "vbr");
    assert_eq!(job["options"]["quality"], 2);
    assert_eq!(job["options"]["sample_rate"], Value::Null);
    app.wait_for_workflow_closed(&job_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_choice_is_refused_naming_its_field_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ada").await;
    let media = tempfile::tempdir().unwrap();
    let video = make_mp4(media.path(), "talk.mp4", 1, true);
    let long_title = "ü".repeat(1025);
    for (fields, field) in [
        (&[("tags[title]", long_title.as_str())][..], "tags[title]"),
        (&[("tags[date]", "2024-13")][..], "tags[date]"),
        (&[("tags[track]", "B-side")][..], "tags[track]"),
        (&[("tags[artist]", "a\u{1b}[31m")][..], "tags[artist]"),
        (
            &[("strip", "true"), ("tags[album]", "A")][..],
            "tags[album]",
        ),
        (&[("strip", "yes"), ("cover", "frame")][..], "cover"),
        (&[("cover", "video")][..], "cover"),
        (&[("cover", "none"), ("cover_at", "3")][..], "cover_at"),
        (&[("quality", "10")][..], "quality"),
        (&[("quality", "")][..], "quality"),
        (&[("bitrate", "128")][..], "bitrate"),
        (&[("bitrate_mode", "cbr")][..], "bitrate"),
        (
            &[
                ("bitrate_mode", "cbr"),
                ("bitrate", "320"),
                ("sample_rate", "22050"),
            ][..],
            "bitrate",
        ),
        (
            &[("bitrate_mode", "cbr"), ("bitrate", "100")][..],
            "bitrate",
        ),
        (&[("sample_rate", "44000")][..], "sample_rate"),
        (&[("channels", "6")][..], "channels"),
        (&[("start", "10"), ("end", "5")][..], "end"),
        (&[("start", "1:75")][..], "start"),
        (&[("normalize", "-90")][..], "normalize"),
        (&[("normalize_true_peak", "-1")][..], "normalize_true_peak"),
        (&[("preset", "loud")][..], "preset"),
        (&[("quality", "2"), ("quality", "3")][..], "quality"),
    ] {
        let (status, body) = app
            .post_upload(&token, upload_form(&[&video], fields), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{fields:?}: {body}");
        assert_eq!(body["error"], "bad_request", "{body}");
        assert_eq!(body["field"], field, "{fields:?}: {body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(&format!("`{field}`")), "{message}");
    }

    // A field that is not UTF-8.
    let bad_text = multipart::Form::new()
        .part("start", multipart::Part::bytes(vec![0xff, 0xfe]))
        .part(
            "file",
            multipart::Part::bytes(std::fs::read(&video).unwrap()).file_name("talk.mp4"),
        );
    let (status, body) = app.post_upload(&token, bad_text, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "start", "{body}");
    let bad_tag = multipart::Form::new()
        .part("tags[title]", multipart::Part::bytes(b"caf\xe9".to_vec()))
        .part(
            "file",
            multipart::Part::bytes(std::fs::read(&video).unwrap()).file_name("talk.mp4"),
        );
    let (status, body) = app.post_upload(&token, bad_tag, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "tags[title]", "{body}");
    let (status, body) = app
        .post_upload(
            &token,
            upload_form(&[&video], &[("tags[mood]", "calm")]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("`tags[mood]`"),
        "{body}"
    );

    // A field the upload does not take, before or after the file.
    let (status, body) = app
        .post_upload(&token, upload_form(&[&video], &[("volume", "11")]), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("`volume`"),
        "{body}"
    );
    let after = upload_form(&[&video], &[]).text("Quality", "2");
    let (status, body) = app.post_upload(&token, after, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("`Quality`"),
        "{body}"
    );

    // A combination broken by a field after the file: refused, and the stored video removed.
    let late = upload_form(&[&video], &[("bitrate_mode", "cbr")]).text("bitrate", "999");
    let (status, body) = app.post_upload(&token, late, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "bitrate", "{body}");
    // ... and fields after the file that complete a combination are taken.
    let completed = upload_form(&[&video], &[("bitrate", "128")]).text("bitrate_mode", "cbr");
    let (status, body) = app.post_upload(&token, completed, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let job_id = body["job_id"].as_str().unwrap().to_owned();
    app.wait_for_workflow_closed(&job_id).await;
    let response = app.delete_job(&token, &job_id).await;
    assert!(response.status().is_success());

    assert!(app.objects().is_empty(), "{:?}", app.objects());
    let listing: Value = app
        .http
        .get(app.url("/jobs"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listing["jobs"].as_array().unwrap().len(), 0, "{listing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_replays_only_the_same_choices() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ada").await;
    let media = tempfile::tempdir().unwrap();
    let video = make_mp4(media.path(), "talk.mp4", 1, true);
    let send = |fields: &'static [(&'static str, &'static str)]| {
        app.http
            .post(app.url("/upload"))
            .bearer_auth(&token)
            .header("Idempotency-Key", "choices-1")
            .multipart(upload_form(&[&video], fields))
            .send()
    };
    let first = send(&[("quality", "4")]).await.unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let again = send(&[("quality", "4")]).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let other = send(&[("quality", "5")]).await.unwrap();
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let job: Value = first.json().await.unwrap();
    app.wait_for_workflow_closed(job["job_id"].as_str().unwrap())
        .await;
}

/// The integrated loudness (LUFS) the ffmpeg CLI's own `ebur128` measures in an MP3.
fn loudness(mp3: &[u8]) -> f64 {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), mp3).unwrap();
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-f", "mp3", "-i"])
        .arg(file.path())
        .args(["-af", "ebur128", "-f", "null", "-"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    let summary = &log[log.rfind("Summary:").expect("a summary")..];
    summary
        .lines()
        .find_map(|line| line.trim().strip_prefix("I:"))
        .and_then(|value| value.trim().trim_end_matches("LUFS").trim().parse().ok())
        .unwrap_or_else(|| panic!("no integrated loudness in {summary}"))
}

/// Seconds of audio an MP3 decodes to (its encoder delay and padding left out).
fn decoded_seconds(mp3: &[u8]) -> f64 {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), mp3).unwrap();
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "mp3", "-i"])
        .arg(file.path())
        .args(["-ac", "1", "-ar", "44100", "-f", "s16le", "-"])
        .output()
        .unwrap();
    output.stdout.len() as f64 / 2.0 / 44100.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preset_with_a_trim_is_encoded_cut_and_normalised() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ada").await;
    let media = tempfile::tempdir().unwrap();
    let video = make_mp4(media.path(), "talk.mp4", 5, true);
    let fields = [
        ("preset", "podcast"),
        ("start", "1"),
        ("end", "00:00:03.500"),
    ];
    let (job, mp3) = convert(&app, &token, &video, &fields).await;
    let options = &job["options"];
    assert_eq!(options["preset"], "podcast", "{job}");
    assert_eq!(options["bitrate_mode"], "cbr");
    assert_eq!(options["bitrate"], 96);
    assert_eq!(options["channels"], 1);
    assert_eq!(options["start"], 1.0);
    assert_eq!(options["end"], 3.5);
    assert_eq!(options["normalize"]["integrated"], -16.0);
    let seconds = decoded_seconds(&mp3);
    assert!((seconds - 2.5).abs() < 0.03, "{seconds} s");
    assert!(frame_bitrates(&mp3).iter().all(|kbps| *kbps == 96));
    let (rate, channels, _) = probe(&mp3);
    assert_eq!((rate, channels), (44100, 1));
    let lufs = loudness(&mp3);
    assert!((lufs + 16.0).abs() <= 1.0, "{lufs} LUFS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trim_past_the_audio_fails_the_job_with_a_sentence_at_once() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ada").await;
    let media = tempfile::tempdir().unwrap();
    let video = make_mp4(media.path(), "talk.mp4", 2, true);
    let (status, body) = app
        .post_upload(&token, upload_form(&[&video], &[("start", "30")]), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let job_id = body["job_id"].as_str().unwrap();
    app.wait_for_workflow_closed(job_id).await;
    let (_, job) = app.status(&token, job_id).await;
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("`start` (30 s) is past the end of the audio"),
        "{error}"
    );
    assert_eq!(job["attempt"], 1, "not retried: {job}");
    // No MP3 was stored (the video goes when the job ends, as retention says by default).
    let objects = app.objects();
    assert!(
        objects.iter().all(|key| key.starts_with("sources/")),
        "{objects:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_and_a_cover_frame_reach_the_mp3_and_strip_leaves_no_tag() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ada").await;
    let media = tempfile::tempdir().unwrap();
    let video = make_mp4(media.path(), "Vortrag über Zürich.mp4", 3, true);

    let (job, mp3) = convert(
        &app,
        &token,
        &video,
        &[
            ("tags[artist]", "Ärztin 日本 🎬"),
            ("tags[album]", "Vorlesungen"),
            ("tags[track]", "2/9"),
            ("tags[date]", "2026-11"),
            ("tags[comment]", "mit Zeilen\numbruch"),
            ("cover", "frame"),
            ("cover_at", "1.5"),
        ],
    )
    .await;
    let options = &job["options"];
    assert_eq!(options["tags"]["artist"], "Ärztin 日本 🎬", "{job}");
    assert_eq!(options["cover"], "frame");
    assert_eq!(options["cover_at"], 1.5);
    assert_eq!(options["strip"], false);
    let (tag, picture) = read_id3(&mp3);
    assert_eq!(tag["version"], "2.4", "{tag}");
    let frames = &tag["frames"];
    assert_eq!(
        frames["TIT2"], "Vortrag über Zürich",
        "the file name: {tag}"
    );
    assert_eq!(frames["TPE1"], "Ärztin 日本 🎬");
    assert_eq!(frames["TALB"], "Vorlesungen");
    assert_eq!(frames["TRCK"], "2/9");
    assert_eq!(frames["TDRC"], "2026-11");
    assert_eq!(frames["COMM"], "mit Zeilen\numbruch");
    assert_eq!(tag["pictures"][0]["mime"], "image/jpeg", "{tag}");
    assert_eq!(tag["pictures"][0]["type"], 3, "the front cover");
    assert_eq!(&picture[..3], &[0xff, 0xd8, 0xff], "a JPEG");

    let (job, mp3) = convert(&app, &token, &video, &[("strip", "true")]).await;
    assert_eq!(job["options"]["strip"], true);
    let (tag, _) = read_id3(&mp3);
    assert_eq!(tag["version"], Value::Null, "no ID3 tag: {tag}");
    let (rate, _, duration) = probe(&mp3);
    assert_eq!(rate, 44100);
    assert!((duration - 3.0).abs() < 0.1, "{duration}");
}
