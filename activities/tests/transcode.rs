//! The transcoder against real media made by the `ffmpeg` command-line tool.

use audiomill_activities::transcode::{MediaLimits, TranscodeError, transcode};
use audiomill_domain::output::BitrateMode;
use audiomill_domain::output::OutputOptions;
use std::{ops::ControlFlow, path::Path, process::Command};

fn ffmpeg(args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .status()
        .expect("the ffmpeg command is installed");
    assert!(status.success(), "ffmpeg {args:?} failed");
}

fn probe(path: &Path, entry: &str) -> String {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            entry,
            "-of",
            "default=nw=1:nk=1",
        ])
        .arg(path)
        .output()
        .expect("ffprobe is installed");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn make_video(path: &Path, seconds: u32, audio: bool) {
    let duration = seconds.to_string();
    let mut args = vec!["-f", "lavfi", "-i", "testsrc=size=160x120:rate=10"];
    if audio {
        args.extend(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
    }
    args.extend([
        "-t",
        &duration,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
    ]);
    if audio {
        args.extend(["-c:a", "aac", "-ac", "2"]);
    }
    args.push(path.to_str().unwrap());
    ffmpeg(&args);
}

fn run(input: &Path, output: &Path) -> (Result<u64, TranscodeError>, Vec<u8>) {
    let mut seen = Vec::new();
    let result = transcode(
        input,
        output,
        &OutputOptions::default(),
        MediaLimits::default(),
        &mut |percent| {
            seen.push(percent);
            ControlFlow::Continue(())
        },
    )
    .map(|report| report.duration_ms);
    (result, seen)
}

#[test]
fn an_mp4_becomes_an_mp3_of_the_same_length_with_rising_progress() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    let output = dir.path().join("out.mp3");
    make_video(&input, 5, true);

    let (result, progress) = run(&input, &output);
    let duration_ms = result.expect("transcode succeeds");
    assert!(
        (duration_ms as i64 - 5000).abs() < 200,
        "duration {duration_ms} ms"
    );
    assert_eq!(probe(&output, "stream=codec_name"), "mp3");
    let probed: f64 = probe(&output, "format=duration").parse().unwrap();
    assert!((probed - 5.0).abs() < 0.2, "ffprobe says {probed} s");
    assert_eq!(progress.last(), Some(&100));
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "progress went backwards"
    );
    assert!(
        progress.iter().any(|p| (1..100).contains(p)),
        "no intermediate progress"
    );
}

#[test]
fn mkv_webm_avi_and_mov_containers_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("in.mp4");
    make_video(&source, 2, true);
    for (name, codec) in [
        ("in.mkv", "copy"),
        ("in.mov", "copy"),
        ("in.webm", "libopus"),
        ("in.avi", "libmp3lame"),
    ] {
        let input = dir.path().join(name);
        let video = if name.ends_with(".webm") {
            "libvpx"
        } else if name.ends_with(".avi") {
            "mpeg4"
        } else {
            "copy"
        };
        ffmpeg(&[
            "-i",
            source.to_str().unwrap(),
            "-c:v",
            video,
            "-c:a",
            codec,
            input.to_str().unwrap(),
        ]);
        let (result, _) = run(&input, &dir.path().join(format!("{name}.mp3")));
        let duration_ms = result.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            (duration_ms as i64 - 2000).abs() < 200,
            "{name}: duration {duration_ms} ms"
        );
    }
}

#[test]
fn a_video_without_audio_is_refused_as_no_audio_stream() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("silent.mp4");
    make_video(&input, 1, false);
    let (result, _) = run(&input, &dir.path().join("out.mp3"));
    assert!(
        matches!(result, Err(TranscodeError::NoAudioStream)),
        "{result:?}"
    );
}

#[test]
fn a_truncated_mp4_is_corrupt_whether_its_index_is_at_the_end_or_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.mp4");
    make_video(&whole, 6, true);
    let faststart = dir.path().join("faststart.mp4");
    ffmpeg(&[
        "-i",
        whole.to_str().unwrap(),
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        faststart.to_str().unwrap(),
    ]);

    for source in [&whole, &faststart] {
        let bytes = std::fs::read(source).unwrap();
        let truncated = dir.path().join("truncated.mp4");
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        let (result, _) = run(&truncated, &dir.path().join("out.mp3"));
        assert!(
            matches!(result, Err(TranscodeError::Corrupt(_))),
            "{}: {result:?}",
            source.display()
        );
    }
}

#[test]
fn a_text_file_is_not_a_video() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("notes.mp4");
    std::fs::write(&input, "just some words, not a video\n".repeat(50)).unwrap();
    let (result, _) = run(&input, &dir.path().join("out.mp3"));
    assert!(
        matches!(
            result,
            Err(TranscodeError::Unsupported(_) | TranscodeError::Corrupt(_))
        ),
        "{result:?}"
    );
}

#[test]
fn the_progress_callback_can_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    make_video(&input, 3, true);
    let result = transcode(
        &input,
        &dir.path().join("out.mp3"),
        &OutputOptions::default(),
        MediaLimits::default(),
        &mut |_| ControlFlow::Break(()),
    );
    assert!(
        matches!(result, Err(TranscodeError::Cancelled)),
        "{result:?}"
    );
}

/// Hours of silence in a tiny live-mode MKV: no duration is declared anywhere.
fn make_media_bomb(path: &Path, hours: u32) {
    let seconds = (hours * 3600).to_string();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "anullsrc=r=8000:cl=mono",
        "-t",
        &seconds,
        "-c:a",
        "flac",
        "-frame_size",
        "65535",
        "-live",
        "1",
        "-f",
        "matroska",
        path.to_str().unwrap(),
    ]);
}

#[test]
fn a_file_with_more_audio_than_its_size_allows_stops_early_with_progress_by_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bomb.mkv");
    let output = dir.path().join("out.mp3");
    make_media_bomb(&input, 5);
    assert!(std::fs::metadata(&input).unwrap().len() < 2 * 1024 * 1024);

    let started = std::time::Instant::now();
    let (result, progress) = run(&input, &output);
    let Err(TranscodeError::TooLong(message)) = result else {
        panic!("a media bomb must be refused: {result:?}");
    };
    assert!(message.contains("longer than"), "{message}");
    // Allowed: the free 600 s plus 3600 s per MB of input; far short of 5 hours.
    let allowed = MediaLimits::default().seconds_for(std::fs::metadata(&input).unwrap().len());
    assert!(allowed < 3600, "{allowed}");
    assert!(
        progress.iter().any(|p| *p > 0),
        "progress moves by bytes read when no duration is declared"
    );
    assert!(
        std::fs::metadata(&output).map_or(0, |m| m.len()) < 40 * 1024 * 1024,
        "the MP3 stopped growing at the limit"
    );
    eprintln!("refused after {:?}", started.elapsed());
}

#[test]
fn a_file_without_a_declared_duration_can_be_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bomb.mkv");
    make_media_bomb(&input, 1);
    let mut calls = 0;
    let result = transcode(
        &input,
        &dir.path().join("out.mp3"),
        &OutputOptions::default(),
        MediaLimits::default(),
        &mut |_| {
            calls += 1;
            if calls > 50 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    );
    assert!(
        matches!(result, Err(TranscodeError::Cancelled)),
        "{result:?}"
    );
}

fn convert(
    input: &Path,
    output: &Path,
    options: OutputOptions,
    limits: MediaLimits,
) -> Result<audiomill_activities::transcode::TranscodeReport, TranscodeError> {
    transcode(input, output, &options, limits, &mut |_| {
        ControlFlow::Continue(())
    })
}

#[test]
fn the_mp3_size_and_decoded_duration_limits_hold() {
    let dir = tempfile::tempdir().unwrap();
    // Noise: it takes LAME's full bitrate.
    let input = dir.path().join("noise.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "anoisesrc=sample_rate=44100",
        "-t",
        "90",
        "-ac",
        "2",
        "-c:a",
        "flac",
        input.to_str().unwrap(),
    ]);
    let small = MediaLimits {
        max_output_mb: 1,
        ..MediaLimits::default()
    };
    let result = convert(
        &input,
        &dir.path().join("a.mp3"),
        OutputOptions {
            quality: 0,
            ..OutputOptions::default()
        },
        small,
    );
    assert!(
        matches!(&result, Err(TranscodeError::TooLong(m)) if m.contains("larger than 1 MB")),
        "{result:?}"
    );
    let short = MediaLimits {
        max_seconds: 30,
        ..MediaLimits::default()
    };
    let result = convert(
        &input,
        &dir.path().join("b.mp3"),
        OutputOptions::default(),
        short,
    );
    assert!(
        matches!(&result, Err(TranscodeError::TooLong(m)) if m.contains("30 s")),
        "{result:?}"
    );
}

#[test]
fn only_the_accepted_containers_and_audio_codecs_are_opened() {
    let dir = tempfile::tempdir().unwrap();
    // A container we do not accept, whatever its name says.
    let wav = dir.path().join("in.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine",
        "-t",
        "2",
        "-f",
        "wav",
        wav.to_str().unwrap(),
    ]);
    let (result, _) = run(&wav, &dir.path().join("a.mp3"));
    assert!(
        matches!(result, Err(TranscodeError::Unsupported(_))),
        "{result:?}"
    );

    // An accepted container holding an audio codec outside the list.
    let tta = dir.path().join("in.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine",
        "-t",
        "2",
        "-c:a",
        "tta",
        tta.to_str().unwrap(),
    ]);
    let (result, _) = run(&tta, &dir.path().join("b.mp3"));
    assert!(
        matches!(&result, Err(TranscodeError::Unsupported(m)) if m.contains("tta")),
        "{result:?}"
    );
}

/// A 5.1 source (48 kHz, audio only), so that channel and rate choices are visible.
fn make_surround(path: &Path, seconds: u32) {
    let mix = "pan=5.1|c0=c0|c1=0.5*c0|c2=0.3*c0|c3=0.1*c0|c4=0.2*c0|c5=0.4*c0";
    let source = format!("sine=frequency=440:sample_rate=48000:duration={seconds}");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &source,
        "-af",
        mix,
        "-c:a",
        "aac",
        path.to_str().unwrap(),
    ]);
}

#[test]
fn each_encoding_choice_makes_the_same_file_as_the_ffmpeg_cli() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("in.mp4");
    make_surround(&video, 4);
    assert_eq!(probe(&video, "stream=channels"), "6", "a 5.1 source");
    let vbr = |quality| OutputOptions {
        quality: quality,
        ..OutputOptions::default()
    };
    let at = |bitrate_mode, kbps, rate, channels| OutputOptions {
        bitrate_mode,
        bitrate: Some(kbps),
        sample_rate: rate,
        channels,
        ..OutputOptions::default()
    };
    for (name, settings, cli, expect) in [
        (
            "vbr-default",
            OutputOptions::default(),
            &["-q:a", "2"][..],
            ("48000", "2", "Xing"),
        ),
        (
            "vbr-5-mono-16k",
            OutputOptions {
                sample_rate: Some(16000),
                channels: Some(1),
                ..vbr(5)
            },
            &["-q:a", "5", "-ar", "16000", "-ac", "1"][..],
            ("16000", "1", "Xing"),
        ),
        (
            "cbr-128-mono-22k",
            at(BitrateMode::Cbr, 128, Some(22050), Some(1)),
            &["-b:a", "128k", "-ar", "22050", "-ac", "1"][..],
            ("22050", "1", "Info"),
        ),
        (
            "cbr-320",
            at(BitrateMode::Cbr, 320, None, Some(2)),
            &["-b:a", "320k", "-ac", "2"][..],
            ("48000", "2", "Info"),
        ),
        (
            "abr-96-44k",
            at(BitrateMode::Abr, 96, Some(44100), None),
            &["-b:a", "96k", "-abr", "1", "-ar", "44100", "-ac", "2"][..],
            ("44100", "2", "Xing"),
        ),
    ] {
        let ours = dir.path().join(format!("{name}.mp3"));
        convert(&video, &ours, settings, MediaLimits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let theirs = dir.path().join(format!("{name}-cli.mp3"));
        let mut args = vec!["-i", video.to_str().unwrap(), "-vn", "-c:a", "libmp3lame"];
        args.extend(cli);
        args.push(theirs.to_str().unwrap());
        ffmpeg(&args);
        let (rate, channels, tag) = expect;
        assert_eq!(probe(&ours, "stream=sample_rate"), rate, "{name}");
        assert_eq!(probe(&ours, "stream=channels"), channels, "{name}");
        let bytes = std::fs::read(&ours).unwrap();
        // LAME marks a CBR file's first frame "Info", a VBR or ABR one's "Xing".
        let head = &bytes[..bytes.len().min(4096)];
        assert!(
            head.windows(4).any(|w| w == tag.as_bytes()),
            "{name}: no {tag} frame"
        );
        // The frames, from the LAME tag on: the ID3 tag before them differs (the CLI copies
        // the source's metadata into it).
        assert!(
            frames(&bytes) == frames(&std::fs::read(&theirs).unwrap()),
            "{name}: differs from `ffmpeg -c:a libmp3lame {}`",
            cli.join(" ")
        );
    }
}

/// An MP3's bytes after its ID3v2 tag.
fn frames(mp3: &[u8]) -> &[u8] {
    assert_eq!(&mp3[..3], b"ID3", "an ID3v2 tag first");
    let size = mp3[6..10]
        .iter()
        .fold(0usize, |size, byte| (size << 7) | usize::from(byte & 0x7f));
    &mp3[10 + size..]
}
