//! Output formats: each of M4A, Opus, FLAC and WAV is made from a video with its settings,
//! trim, tags and cover, read back by readers that are not the writer (ffprobe, mutagen), and
//! served as itself (content type, file name, ZIP entry); a field a format cannot take is a
//! 400 naming it, with nothing stored.

use crate::common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use std::{path::Path, process::Command};

/// A file's tags, cover and length as mutagen reads them (`tests/tools/tagdump.py`).
fn read_tags(file: &Path) -> Value {
    serde_json::from_slice(&python_tool("tagdump.py", [file])).unwrap()
}

/// What ffprobe says of a file: its audio stream's and container's fields, as `key=value`.
fn probe(file: &Path) -> Value {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-of",
            "json",
            "-show_streams",
            "-show_format",
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(output.status.success(), "ffprobe could not read {file:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

fn audio_stream(probed: &Value) -> &Value {
    probed["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == "audio")
        .expect("an audio stream")
}

/// Uploads `video` with `fields`, waits for the job, and returns its status, the download's
/// `Content-Type` and `Content-Disposition`, and the file saved in `dir` under `name`.
async fn convert(
    app: &TestApp,
    token: &str,
    video: &Path,
    fields: &[(&str, &str)],
    saved: &Path,
) -> (Value, String, String) {
    let (status, body) = app
        .post_upload(token, upload_form(&[video], fields), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let job_id = body["job_id"].as_str().unwrap().to_owned();
    app.wait_for_workflow_closed(&job_id).await;
    let (_, job) = app.status(token, &job_id).await;
    assert_eq!(job["status"], "completed", "{job}");
    let response = app.download(token, &job_id).await;
    assert_eq!(response.status(), StatusCode::OK);
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    let (content_type, disposition) = (header("content-type"), header("content-disposition"));
    std::fs::write(saved, response.bytes().await.unwrap()).unwrap();
    (job, content_type, disposition)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_format_is_made_trimmed_tagged_and_served_as_itself() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ada").await;
    let media = tempfile::tempdir().unwrap();
    let video = make_mp4(media.path(), "Vortrag über Zürich.mp4", 4, true);
    // format, codec ffprobe names, content type, whether it holds a cover.
    for (format, codec, content_type, cover) in [
        ("m4a", "aac", "audio/mp4", true),
        ("opus", "opus", "audio/ogg", true),
        ("flac", "flac", "audio/flac", true),
        ("wav", "pcm_s16le", "audio/wav", false),
    ] {
        let saved = media.path().join(format!("out.{format}"));
        let mut fields = vec![
            ("format", format),
            ("start", "0.5"),
            ("end", "2.5"),
            ("tags[artist]", "Ärztin 日本 🎬"),
            ("tags[album]", "Vorlesungen"),
            ("tags[track]", "2/9"),
        ];
        if cover {
            fields.push(("cover", "frame"));
        }
        let (job, served_as, disposition) = convert(&app, &token, &video, &fields, &saved).await;
        assert_eq!(job["options"]["format"], format, "{job}");
        assert_eq!(served_as, content_type, "{format}");
        assert!(
            disposition.contains(&format!("filename=\"Vortrag _ber Z_rich.{format}\"")),
            "{disposition}"
        );
        let probed = probe(&saved);
        let stream = audio_stream(&probed);
        assert_eq!(stream["codec_name"], codec, "{format}: {probed}");
        let seconds: f64 = probed["format"]["duration"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (seconds - 2.0).abs() < 0.1,
            "{format}: trimmed to 2 s, {seconds}"
        );
        if format == "wav" {
            // mutagen reads only an ID3 chunk in a WAV; the RIFF INFO list is ffprobe's.
            let tags = &probed["format"]["tags"];
            assert_eq!(tags["artist"], "Ärztin 日本 🎬", "{probed}");
            assert_eq!(tags["album"], "Vorlesungen");
            assert_eq!(tags["title"], "Vortrag über Zürich");
            continue;
        }
        let read = read_tags(&saved);
        let tags = &read["tags"];
        assert_eq!(tags["title"], "Vortrag über Zürich", "{format}: {read}");
        assert_eq!(tags["artist"], "Ärztin 日本 🎬", "{format}: {read}");
        assert_eq!(tags["album"], "Vorlesungen", "{format}: {read}");
        assert_eq!(tags["track"], "2/9", "{format}: {read}");
        assert_eq!(read["cover"]["mime"], "image/jpeg", "{format}: {read}");
        assert_eq!(read["cover"]["type"], 3, "{format}: the front cover");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_formats_settings_reach_the_file() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ada").await;
    let media = tempfile::tempdir().unwrap();
    let video = make_mp4(media.path(), "talk.mp4", 3, true);
    let file = media.path().join("out");

    let (job, _, _) = convert(
        &app,
        &token,
        &video,
        &[
            ("format", "m4a"),
            ("bitrate", "96"),
            ("channels", "1"),
            ("sample_rate", "22050"),
        ],
        &file,
    )
    .await;
    assert_eq!(job["options"]["bitrate"], 96, "{job}");
    assert_eq!(
        job["options"]["bitrate_mode"],
        Value::Null,
        "M4A has no mode"
    );
    let probed = probe(&file);
    let stream = audio_stream(&probed);
    assert_eq!(
        (stream["sample_rate"].as_str(), stream["channels"].as_u64()),
        (Some("22050"), Some(1))
    );

    let (_, _, _) = convert(
        &app,
        &token,
        &video,
        &[("format", "wav"), ("bit_depth", "24"), ("strip", "true")],
        &file,
    )
    .await;
    let probed = probe(&file);
    assert_eq!(audio_stream(&probed)["codec_name"], "pcm_s24le", "{probed}");
    assert!(probed["format"]["tags"].is_null(), "stripped: {probed}");

    let (job, _, disposition) =
        convert(&app, &token, &video, &[("preset", "archive")], &file).await;
    assert_eq!(job["options"]["format"], "flac", "{job}");
    assert!(disposition.contains("talk.flac"), "{disposition}");
    let probed = probe(&file);
    assert_eq!(
        audio_stream(&probed)["bits_per_raw_sample"],
        "16",
        "{probed}"
    );

    let (job, _, _) = convert(&app, &token, &video, &[("preset", "speech")], &file).await;
    assert_eq!(
        (&job["options"]["format"], &job["options"]["bitrate"]),
        (&Value::from("opus"), &Value::from(32)),
        "{job}"
    );
    let probed = probe(&file);
    let stream = audio_stream(&probed);
    assert_eq!(stream["channels"], 1, "{probed}");
    let bits: f64 = probed["format"]["bit_rate"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        bits < 48_000.0,
        "about 32 kbit/s and the container's own: {bits}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_the_format_cannot_take_is_refused_naming_it() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ada").await;
    let media = tempfile::tempdir().unwrap();
    let video = make_mp4(media.path(), "talk.mp4", 1, true);
    for (fields, field) in [
        (&[("format", "wma")][..], "format"),
        (&[("format", "flac"), ("bitrate", "128")][..], "bitrate"),
        (&[("format", "m4a"), ("quality", "2")][..], "quality"),
        (
            &[("format", "opus"), ("sample_rate", "44100")][..],
            "sample_rate",
        ),
        (&[("format", "wav"), ("cover", "frame")][..], "cover"),
        (&[("bit_depth", "24")][..], "bit_depth"),
    ] {
        let (status, body) = app
            .post_upload(&token, upload_form(&[&video], fields), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{fields:?}: {body}");
        assert_eq!(body["field"], field, "{fields:?}: {body}");
        assert!(body["message"].as_str().unwrap().contains(field), "{body}");
    }
    assert!(
        app.objects().is_empty(),
        "nothing stored: {:?}",
        app.objects()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batchs_zip_names_each_entry_for_its_format() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ada").await;
    let media = tempfile::tempdir().unwrap();
    let one = make_mp4(media.path(), "one.mp4", 1, true);
    let two = make_mp4(media.path(), "two.mov", 1, true);
    let (status, body) = app
        .post_upload(
            &token,
            upload_form(&[&one, &two], &[("format", "opus")]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    for job in body["jobs"].as_array().unwrap() {
        app.wait_for_workflow_closed(job["job_id"].as_str().unwrap())
            .await;
    }
    let batch_id = body["batch_id"].as_str().unwrap();
    let response = app
        .http
        .get(app.url(&format!("/batches/{batch_id}/download")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let zip = media.path().join("batch.zip");
    std::fs::write(&zip, response.bytes().await.unwrap()).unwrap();
    let script = "import json, sys, zipfile\n\
                  print(json.dumps(sorted(zipfile.ZipFile(sys.argv[1]).namelist())))";
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(&zip)
        .output()
        .unwrap();
    let names: Vec<String> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(names, ["one.opus", "two.opus"]);
}

/// An audio file of `seconds` made by the ffmpeg tool from a tone, with `extra` arguments
/// before the output (its codec and tags).
fn audio_file(dir: &Path, name: &str, seconds: u32, extra: &[&str]) -> std::path::PathBuf {
    let path = dir.join(name);
    let tone = format!("sine=frequency=440:sample_rate=48000:duration={seconds}");
    let mut args = vec!["-f", "lavfi", "-i", &tone, "-ac", "2"];
    args.extend_from_slice(extra);
    let out = path.to_string_lossy().into_owned();
    args.push(&out);
    ffmpeg(&args);
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_files_are_sources_too() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ada").await;
    let media = tempfile::tempdir().unwrap();
    let dir = media.path();
    let sources = [
        audio_file(dir, "memo.wav", 3, &["-metadata", "title=Memo"]),
        audio_file(dir, "take.flac", 3, &["-metadata", "title=Take"]),
        audio_file(
            dir,
            "song.mp3",
            3,
            &["-c:a", "libmp3lame", "-metadata", "title=Song"],
        ),
        audio_file(
            dir,
            "talk.m4a",
            3,
            &["-c:a", "aac", "-metadata", "title=Talk"],
        ),
        audio_file(
            dir,
            "voice.opus",
            3,
            &["-c:a", "libopus", "-metadata", "title=Voice"],
        ),
        audio_file(
            dir,
            "old.ogg",
            3,
            &["-c:a", "libvorbis", "-metadata", "title=Old"],
        ),
    ];
    let file = dir.join("out");
    for source in &sources {
        // Each to an MP3 shortened to two seconds, the source's own title kept.
        let (job, content_type, _) = convert(&app, &token, source, &[("end", "2")], &file).await;
        assert_eq!(content_type, "audio/mpeg", "{job}");
        let read = read_tags(&file);
        let stem = source.file_stem().unwrap().to_string_lossy();
        let title = read["tags"]["title"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase();
        assert_eq!(title, stem, "{source:?}: {read}");
        let seconds = read["seconds"].as_f64().unwrap();
        assert!((seconds - 2.0).abs() < 0.1, "{source:?}: {seconds}");
    }
    // And between audio formats: a WAV memo kept lossless in FLAC.
    let (job, content_type, disposition) =
        convert(&app, &token, &sources[0], &[("format", "flac")], &file).await;
    assert_eq!(
        (content_type.as_str(), job["options"]["format"].as_str()),
        ("audio/flac", Some("flac"))
    );
    assert!(disposition.contains("memo.flac"), "{disposition}");

    // The name must match the content, as for videos.
    let wav = std::fs::read(&sources[0]).unwrap();
    let named_mp3 = app.upload_bytes(&token, "memo.mp3", wav).await;
    assert_eq!(named_mp3.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let text = app
        .upload_bytes(&token, "notes.mp3", b"ID3 is how this text begins".to_vec())
        .await;
    assert_eq!(
        text.status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "no ID3 header"
    );
}

/// A copy of `video` with `chapters` (start and end in milliseconds, title).
fn chaptered(video: &Path, chapters: &[(usize, usize, String)]) -> std::path::PathBuf {
    let dir = video.parent().unwrap();
    let meta = dir.join("chapters.txt");
    let mut text = String::from(";FFMETADATA1\n");
    for (start, end, title) in chapters {
        text += &format!("[CHAPTER]\nTIMEBASE=1/1000\nSTART={start}\nEND={end}\ntitle={title}\n");
    }
    std::fs::write(&meta, text).unwrap();
    let out = dir.join("chaptered.mp4");
    let (video, meta_arg, out_arg) = (
        video.to_string_lossy(),
        meta.to_string_lossy(),
        out.to_string_lossy(),
    );
    ffmpeg(&[
        "-i",
        &video,
        "-i",
        &meta_arg,
        "-map",
        "0",
        "-map_chapters",
        "1",
        "-c",
        "copy",
        &out_arg,
    ]);
    out
}

/// The chapters ffprobe reads: start (s) and title of each.
fn chapters_of(file: &Path) -> Vec<(f64, String)> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json", "-show_chapters"])
        .arg(file)
        .output()
        .unwrap();
    let probed: Value = serde_json::from_slice(&output.stdout).unwrap();
    probed["chapters"]
        .as_array()
        .map(|chapters| {
            chapters
                .iter()
                .map(|c| {
                    let start = c["start_time"].as_str().unwrap().parse::<f64>().unwrap();
                    let title = c["tags"]["title"].as_str().unwrap_or_default().to_owned();
                    ((start * 1000.0).round() / 1000.0, title)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chapters_are_carried_and_cut_with_the_trim() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ada").await;
    let media = tempfile::tempdir().unwrap();
    // Three chapters, two seconds each.
    let titles = ["Intro", "Middle", "Ende ü"];
    let chapters: Vec<_> = (0..3)
        .map(|i| (i * 2000, (i + 1) * 2000, titles[i].to_owned()))
        .collect();
    let video = chaptered(&make_mp4(media.path(), "talk.mp4", 6, true), &chapters);
    assert_eq!(chapters_of(&video).len(), 3, "the source has its chapters");
    let file = media.path().join("out");
    let expected = vec![
        (0.0, "Intro".to_owned()),
        (1.0, "Middle".to_owned()),
        (3.0, "Ende ü".to_owned()),
    ];
    for format in ["mp3", "m4a", "opus", "flac"] {
        // Trimmed to 1-5 s: Intro keeps its last second, Ende ü its first.
        convert(
            &app,
            &token,
            &video,
            &[("format", format), ("start", "1"), ("end", "5")],
            &file,
        )
        .await;
        assert_eq!(chapters_of(&file), expected, "{format}");
    }
    convert(
        &app,
        &token,
        &video,
        &[("format", "flac"), ("strip", "true")],
        &file,
    )
    .await;
    assert!(chapters_of(&file).is_empty(), "stripped of everything");
    convert(&app, &token, &video, &[("format", "wav")], &file).await;
    assert!(chapters_of(&file).is_empty(), "a WAV has no chapters");
}

/// The SHA-256 of a file's first audio track decoded by the ffmpeg tool (as 32-bit floats):
/// equal for two files whose sound is the same, sample for sample.
fn decoded_hash(file: &Path) -> String {
    use sha2::{Digest, Sha256};
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-map", "0:a:0", "-f", "f32le", "-"])
        .output()
        .unwrap();
    assert!(
        output.status.success() && !output.stdout.is_empty(),
        "{file:?}"
    );
    format!("{:x}", Sha256::digest(&output.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_the_format_can_carry_is_copied_bit_for_bit() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ada").await;
    let media = tempfile::tempdir().unwrap();
    let dir = media.path();
    let sources = [
        (make_mp4(dir, "clip.mp4", 3, true), "m4a"),
        (
            audio_file(dir, "song.mp3", 3, &["-c:a", "libmp3lame", "-b:a", "160k"]),
            "mp3",
        ),
        (
            audio_file(dir, "voice.opus", 3, &["-c:a", "libopus"]),
            "opus",
        ),
        (audio_file(dir, "take.flac", 3, &[]), "flac"),
        (
            audio_file(dir, "memo.wav", 3, &["-c:a", "pcm_s24le"]),
            "wav",
        ),
    ];
    let file = dir.join("out");
    for (source, format) in &sources {
        let (job, _, _) = convert(
            &app,
            &token,
            source,
            &[("format", format), ("tags[album]", "Kept")],
            &file,
        )
        .await;
        assert_eq!(job["stream_copy"], true, "{format}: {job}");
        assert_eq!(
            decoded_hash(&file),
            decoded_hash(source),
            "{format}: the same sound"
        );
        let album = if *format == "wav" {
            probe(&file)["format"]["tags"]["album"].clone()
        } else {
            read_tags(&file)["tags"]["album"].clone()
        };
        assert_eq!(album, "Kept", "{format}: tagged as ever");
    }
    // Anything that needs the samples decodes them, and reencode forces it.
    let (mp3, _) = &sources[1];
    for fields in [
        &[("end", "2")][..],
        &[("normalize", "true")][..],
        &[("channels", "1")][..],
        &[("bitrate_mode", "cbr"), ("bitrate", "128")][..],
        &[("reencode", "true")][..],
    ] {
        let (job, _, _) = convert(&app, &token, mp3, fields, &file).await;
        assert_eq!(job["stream_copy"], false, "{fields:?}: {job}");
        assert_ne!(
            decoded_hash(&file),
            decoded_hash(mp3),
            "{fields:?}: encoded anew"
        );
    }
    // Another codec than the format's is always encoded.
    let (job, _, _) = convert(&app, &token, &sources[0].0, &[], &file).await;
    assert_eq!(job["stream_copy"], false, "AAC to MP3: {job}");
}

/// A Matroska file with two audio tracks: English in mono, then German in stereo, which the
/// container marks default.
fn two_languages(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("film.mkv");
    let out = path.to_string_lossy().into_owned();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=3",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=880:duration=3",
        "-map",
        "0:a",
        "-map",
        "1:a",
        "-ac:a:0",
        "1",
        "-ac:a:1",
        "2",
        "-c:a",
        "flac",
        "-metadata:s:a:0",
        "language=eng",
        "-metadata:s:a:1",
        "language=ger",
        "-metadata:s:a:1",
        "title=Deutsch",
        "-disposition:a:0",
        "0",
        "-disposition:a:1",
        "default",
        &out,
    ]);
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audio_track_is_the_one_asked_for_else_the_default_one() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ada").await;
    let media = tempfile::tempdir().unwrap();
    let film = two_languages(media.path());
    let file = media.path().join("out");
    let channels = |file: &Path| audio_stream(&probe(file))["channels"].as_u64().unwrap();

    let (job, _, _) = convert(&app, &token, &film, &[], &file).await;
    assert_eq!(channels(&file), 2, "the default track: {job}");
    let tracks = &job["audio_tracks"];
    assert_eq!(tracks[0]["language"], "eng", "{job}");
    assert_eq!(
        (
            tracks[0]["channels"].as_u64(),
            tracks[0]["default"].as_bool()
        ),
        (Some(1), Some(false))
    );
    assert_eq!(
        (tracks[1]["language"].as_str(), tracks[1]["title"].as_str()),
        (Some("ger"), Some("Deutsch"))
    );
    assert_eq!(tracks[1]["default"], true);
    for (choice, wanted) in [("0", 1), ("eng", 1), ("en", 1), ("1", 2), ("de", 2)] {
        let (job, _, _) = convert(&app, &token, &film, &[("audio_track", choice)], &file).await;
        assert_eq!(channels(&file), wanted, "{choice}: {job}");
        assert_eq!(
            job["options"]["audio_track"],
            choice.to_lowercase(),
            "{job}"
        );
    }
    for (choice, said) in [
        ("fra", "no audio track is in `fra`"),
        ("5", "there is no audio track 5"),
    ] {
        let (status, body) = app
            .post_upload(
                &token,
                upload_form(&[&film], &[("audio_track", choice)]),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let job_id = body["job_id"].as_str().unwrap().to_owned();
        app.wait_for_workflow_closed(&job_id).await;
        let (_, job) = app.status(&token, &job_id).await;
        assert_eq!(job["status"], "failed", "{job}");
        assert_eq!(job["failure_type"], "NoSuchAudioTrack", "{job}");
        let error = job["error"].as_str().unwrap().to_lowercase();
        assert!(
            error.contains(said) && error.contains("0 (eng), 1 (ger)"),
            "{error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_claiming_thousands_of_chapters_gives_the_first_thousand() {
    let app = TestApp::spawn().await;
    let token = app.user_token("ada").await;
    let media = tempfile::tempdir().unwrap();
    let dir = media.path();
    // 1 200 chapters of 2 ms each in a 3-second video.
    let chapters: Vec<_> = (0..1200)
        .map(|i| (i * 2, i * 2 + 2, format!("c{i}")))
        .collect();
    let many = chaptered(&make_mp4(dir, "talk.mp4", 3, true), &chapters);
    assert_eq!(chapters_of(&many).len(), 1200, "the source has them all");
    let file = dir.join("out");
    convert(&app, &token, &many, &[], &file).await;
    let chapters = chapters_of(&file);
    assert_eq!(chapters.len(), 1000);
    assert_eq!(chapters[999].1, "c999");
}
