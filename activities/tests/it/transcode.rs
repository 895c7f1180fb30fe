//! The transcoder against real media made by the `ffmpeg` command-line tool.

use audiomill_activities::transcode::{MediaLimits, SourceLocation, TranscodeError, transcode};
use audiomill_domain::output::BitrateMode;
use audiomill_domain::output::OutputOptions;
use audiomill_test_kit::{Tone, ffmpeg, probe_entry as probe, python_tool, write_test_video};
use std::{ops::ControlFlow, path::Path, process::Command};

/// A test video at 48 kHz stereo, or with no audio.
fn make_video(path: &Path, seconds: u32, audio: bool) {
    let tone = Tone {
        sample_rate: 48_000,
        channels: Some(2),
    };
    write_test_video(path, seconds, audio.then_some(tone));
}

fn run(input: &Path, output: &Path) -> (Result<u64, TranscodeError>, Vec<u8>) {
    let mut seen = Vec::new();
    let result = transcode(
        &SourceLocation::file(input),
        output,
        &OutputOptions::default(),
        "",
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
        &SourceLocation::file(input),
        &dir.path().join("out.mp3"),
        &OutputOptions::default(),
        "",
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
        &SourceLocation::file(input),
        &dir.path().join("out.mp3"),
        &OutputOptions::default(),
        "",
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
    transcode(
        &SourceLocation::file(input),
        output,
        &options,
        "",
        limits,
        &mut |_| ControlFlow::Continue(()),
    )
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
    let aiff = dir.path().join("in.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine",
        "-t",
        "2",
        "-f",
        "aiff",
        aiff.to_str().unwrap(),
    ]);
    let (result, _) = run(&aiff, &dir.path().join("a.mp3"));
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
        quality,
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

/// Options as an upload form would give them.
fn options(fields: &[(&str, &str)]) -> OutputOptions {
    let mut request = audiomill_domain::output::OutputRequest::default();
    for (name, value) in fields {
        request.add(name, value).unwrap();
    }
    request.resolve().unwrap()
}

/// Converts with `fields`, collecting every progress report.
fn convert_with(
    input: &Path,
    output: &Path,
    fields: &[(&str, &str)],
) -> (Result<u64, TranscodeError>, Vec<u8>) {
    let mut seen = Vec::new();
    let result = transcode(
        &SourceLocation::file(input),
        output,
        &options(fields),
        "talk.mp4",
        MediaLimits::default(),
        &mut |percent| {
            seen.push(percent);
            ControlFlow::Continue(())
        },
    );
    (result.map(|report| report.duration_ms), seen)
}

/// Ten seconds: a 440 Hz tone for five, then 880 Hz, so that where a cut lands can be heard.
fn make_two_tones(path: &Path) {
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x48:rate=5",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100:duration=5",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=880:sample_rate=44100:duration=5",
        "-filter_complex",
        "[1:a][2:a]concat=n=2:v=0:a=1[a]",
        "-map",
        "0:v",
        "-map",
        "[a]",
        "-t",
        "10",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        path.to_str().unwrap(),
    ]);
}

/// An audio file decoded to mono 44.1 kHz samples, its encoder delay and padding left out
/// (as the LAME tag tells a decoder to).
fn pcm(path: &Path) -> Vec<i16> {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-ac", "1", "-ar", "44100", "-f", "s16le", "-"])
        .output()
        .unwrap();
    output
        .stdout
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// The frequency (Hz) of a tone between `from` and `to` seconds, by counting zero crossings.
fn pitch(samples: &[i16], from: f64, to: f64) -> f64 {
    let window = &samples[(from * 44100.0) as usize..(to * 44100.0) as usize];
    let crossings = window
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count();
    crossings as f64 / 2.0 / (to - from)
}

/// Seconds of audio an MP3 decodes to.
fn duration(path: &Path) -> f64 {
    pcm(path).len() as f64 / 44100.0
}

/// One MP3 frame at 44.1 kHz, in seconds: how exact a cut can be.
const FRAME_SECS: f64 = 1152.0 / 44100.0;

#[test]
fn a_trim_keeps_exactly_the_part_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("tones.mp4");
    make_two_tones(&video);
    let out = dir.path().join("cut.mp3");

    let (result, seen) = convert_with(&video, &out, &[("start", "4.5"), ("end", "00:00:07.250")]);
    assert_eq!(result.unwrap(), 2750, "the report's duration");
    let kept = duration(&out);
    assert!((kept - 2.75).abs() <= FRAME_SECS, "{kept} s");
    // Half a second of the first tone, then the second: the cut is where it was asked.
    let samples = pcm(&out);
    let first = pitch(&samples, 0.0, 0.45);
    assert!((first - 440.0).abs() < 15.0, "{first} Hz at the start");
    let second = pitch(&samples, 0.55, 2.7);
    assert!(
        (second - 880.0).abs() < 15.0,
        "{second} Hz after the switch"
    );
    // Progress runs over the kept part only, and rises.
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert_eq!(seen.last(), Some(&100));
    assert!(seen.iter().any(|p| (20..80).contains(p)), "{seen:?}");

    // Only a start, only an end.
    let (result, _) = convert_with(&video, &out, &[("start", "8")]);
    assert!(result.is_ok(), "{result:?}");
    let samples = pcm(&out);
    assert!((samples.len() as f64 / 44100.0 - 2.0).abs() <= FRAME_SECS);
    assert!((pitch(&samples, 0.0, 1.9) - 880.0).abs() < 15.0);
    let (result, _) = convert_with(&video, &out, &[("end", "1.5")]);
    assert_eq!(result.unwrap(), 1500);
    assert!((duration(&out) - 1.5).abs() <= FRAME_SECS);
}

#[test]
fn a_trim_past_the_audio_fails_with_a_sentence_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("short.mp4");
    make_video(&video, 3, true);
    let out = dir.path().join("out.mp3");
    let (result, _) = convert_with(&video, &out, &[("start", "20")]);
    assert!(
        matches!(&result, Err(TranscodeError::Trim(m)) if m.contains("`start` (20 s)") && m.contains("3.0 s")),
        "{result:?}"
    );
    let (result, _) = convert_with(&video, &out, &[("start", "1"), ("end", "1:00")]);
    assert!(
        matches!(&result, Err(TranscodeError::Trim(m)) if m.contains("`end` (60 s)")),
        "{result:?}"
    );
    // An end within the audio's last half second is taken as its end.
    let (result, _) = convert_with(&video, &out, &[("end", "3.2")]);
    assert!(result.is_ok(), "{result:?}");
}

/// The integrated loudness (LUFS) the ffmpeg CLI's own `ebur128` measures.
fn loudness(path: &Path) -> f64 {
    measure_with_cli(path).0
}

/// The integrated loudness (LUFS) and true peak (dBTP) the ffmpeg CLI's `ebur128` measures.
fn measure_with_cli(path: &Path) -> (f64, f64) {
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(path)
        .args(["-af", "ebur128=peak=true", "-f", "null", "-"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    let summary = &log[log.rfind("Summary:").expect("a summary")..];
    let value = |label: &str, unit: &str| -> f64 {
        summary
            .lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .and_then(|value| value.trim().trim_end_matches(unit).trim().parse().ok())
            .unwrap_or_else(|| panic!("no {label} in {summary}"))
    };
    (value("I:", "LUFS"), value("Peak:", "dBFS"))
}

/// Speech-like material: pink noise whose level swells and fades, at `gain_db`.
fn make_varied(path: &Path, gain_db: i32, seconds: u32) {
    let filter =
        format!("volume='{gain_db}dB':precision=float,volume='0.6+0.4*sin(2*PI*t/3)':eval=frame");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=size=32x32:rate=5",
        "-f",
        "lavfi",
        "-i",
        "anoisesrc=color=pink:sample_rate=48000:seed=7",
        "-af",
        &filter,
        "-t",
        &seconds.to_string(),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        "-b:a",
        "192k",
        "-ac",
        "2",
        path.to_str().unwrap(),
    ]);
}

#[test]
fn normalisation_lands_within_one_lu_of_the_target_as_measured_by_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = dir.path().join("quiet.mkv");
    make_varied(&quiet, -30, 12);
    let loud = dir.path().join("loud.mkv");
    make_varied(&loud, 0, 12);
    let before = (loudness(&quiet), loudness(&loud));
    assert!(before.0 < -30.0 && before.1 > -20.0, "{before:?}");
    for (video, fields, target) in [
        (&quiet, &[("normalize", "true")][..], -16.0),
        (&loud, &[("normalize", "-23")][..], -23.0),
        (
            &quiet,
            &[
                ("normalize", "-14"),
                ("normalize_true_peak", "-1"),
                ("channels", "1"),
            ][..],
            -14.0,
        ),
        // Measured over the trimmed part only.
        (
            &loud,
            &[("normalize", "-20"), ("start", "2"), ("end", "8")][..],
            -20.0,
        ),
    ] {
        let out = dir.path().join("normalised.mp3");
        let (result, seen) = convert_with(video, &out, fields);
        assert!(result.is_ok(), "{fields:?}: {result:?}");
        let (measured, peak) = measure_with_cli(&out);
        assert!(
            (measured - target).abs() <= 1.0,
            "{fields:?}: {measured} LUFS for a target of {target}"
        );
        // The limiter holds the peak (MP3 encoding may overshoot it by a fraction of a dB).
        let ceiling = options(fields).normalize.unwrap().true_peak;
        assert!(
            peak <= ceiling + 0.5,
            "{fields:?}: true peak {peak} dBTP over {ceiling}"
        );
        // Two passes, one progress: it passes the middle once and never goes back.
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
        assert!(seen.iter().any(|p| (40..60).contains(p)), "{seen:?}");
        assert_eq!(seen.last(), Some(&100));
    }
}

#[test]
fn silence_is_left_as_it_is_when_normalised() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("silent.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=size=32x32:rate=5",
        "-f",
        "lavfi",
        "-i",
        "anullsrc=sample_rate=44100",
        "-t",
        "3",
        "-c:v",
        "libx264",
        "-c:a",
        "flac",
        video.to_str().unwrap(),
    ]);
    let out = dir.path().join("out.mp3");
    let (result, _) = convert_with(&video, &out, &[("normalize", "true")]);
    assert_eq!(result.unwrap(), 3000);
}

#[test]
fn a_file_that_declares_no_duration_is_trimmed_and_normalised_all_the_same() {
    let dir = tempfile::tempdir().unwrap();
    // Matroska written as a live stream: no duration in its header.
    let video = dir.path().join("live.mkv");
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi"])
        .args(["-i", "sine=frequency=440:sample_rate=44100:duration=4"])
        .args(["-c:a", "flac", "-f", "matroska", "-live", "1", "pipe:1"])
        .output()
        .unwrap();
    std::fs::write(&video, output.stdout).unwrap();
    assert_eq!(
        probe(&video, "format=duration"),
        "N/A",
        "no declared duration"
    );
    let out = dir.path().join("out.mp3");

    // Matroska stamps in milliseconds: the cut is exact to within one of them.
    let within_a_frame =
        |ms: u64, expected: u64| ms.abs_diff(expected) as f64 <= FRAME_SECS * 1000.0;
    let (result, seen) = convert_with(&video, &out, &[("start", "1"), ("end", "2.5")]);
    assert!(within_a_frame(result.unwrap(), 1500));
    assert!((duration(&out) - 1.5).abs() <= FRAME_SECS);
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert_eq!(seen.last(), Some(&100));

    let (result, _) = convert_with(&video, &out, &[("normalize", "-20"), ("start", "0.5")]);
    assert!(within_a_frame(result.unwrap(), 3500));
    assert!((loudness(&out) + 20.0).abs() <= 1.0);

    let (result, _) = convert_with(&video, &out, &[("start", "9")]);
    assert!(
        matches!(&result, Err(TranscodeError::Trim(m)) if m.contains("`start` (9 s)")),
        "{result:?}"
    );
}

/// The MP3's ID3v2 tag as mutagen reads it (`tests/tools/id3dump.py`), the first picture's
/// bytes written to `picture` when given.
fn read_tag(mp3: &Path, picture: Option<&Path>) -> serde_json::Value {
    let mut args = vec![mp3];
    args.extend(picture);
    serde_json::from_slice(&python_tool("id3dump.py", args)).expect("id3dump prints JSON")
}

/// A picture's size and the mean of its luma (0-255), decoded by the CLI.
fn picture_luma(picture: &Path) -> ((u32, u32), f64) {
    let size = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(picture)
        .output()
        .expect("ffprobe runs");
    let size = String::from_utf8_lossy(&size.stdout);
    let (width, height) = size.trim().split_once(',').expect("width,height");
    let gray = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(picture)
        .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .expect("ffmpeg runs");
    let mean = gray.stdout.iter().map(|y| f64::from(*y)).sum::<f64>() / gray.stdout.len() as f64;
    ((width.parse().unwrap(), height.parse().unwrap()), mean)
}

/// A video of 2 s of black, then 8 s of a bright test pattern (1280x720), with a tone and
/// the metadata `tags` (name=value).
fn make_tagged_video(path: &Path, tags: &[&str]) {
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "color=black:size=1280x720:rate=10:duration=2",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=1280x720:rate=10:duration=8",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100:duration=10",
        "-filter_complex",
        "[0][1]concat=n=2:v=1:a=0[v]",
        "-map",
        "[v]",
        "-map",
        "2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
    ];
    for tag in tags {
        args.extend(["-metadata", tag]);
    }
    args.push(path.to_str().unwrap());
    ffmpeg(&args);
}

#[test]
fn tags_come_from_the_source_and_the_fields_and_a_cover_frame_is_not_black() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("in.mp4");
    make_tagged_video(
        &video,
        &[
            "title=Überraschung 日本 🎬",
            "artist=Ärtist",
            "comment=from the source",
            "date=2019",
            "genre=Speech",
        ],
    );
    let plain = dir.path().join("plain.mp3");
    convert_with(&video, &plain, &[]).0.expect("converts");
    let tagged = dir.path().join("tagged.mp3");
    convert_with(
        &video,
        &tagged,
        &[
            ("tags[album]", "Vorlesungen ✓"),
            ("tags[track]", "3/12"),
            ("tags[comment]", "Zweite Zeile\nfolgt"),
            ("tags[genre]", ""),
            ("cover", "frame"),
        ],
    )
    .0
    .expect("converts with tags and a cover");

    let source_only = read_tag(&plain, None);
    assert_eq!(source_only["version"], "2.4");
    assert_eq!(source_only["frames"]["TIT2"], "Überraschung 日本 🎬");
    assert_eq!(source_only["frames"]["TPE1"], "Ärtist");
    assert_eq!(source_only["frames"]["COMM"], "from the source");
    assert_eq!(source_only["frames"]["TDRC"], "2019");
    assert_eq!(source_only["frames"]["TCON"], "Speech");
    assert_eq!(source_only["pictures"], serde_json::json!([]));

    let picture = dir.path().join("cover.jpg");
    let both = read_tag(&tagged, Some(&picture));
    assert_eq!(both["frames"]["TIT2"], "Überraschung 日本 🎬");
    assert_eq!(both["frames"]["TALB"], "Vorlesungen ✓");
    assert_eq!(both["frames"]["TRCK"], "3/12");
    assert_eq!(both["frames"]["COMM"], "Zweite Zeile\nfolgt");
    assert!(
        both["frames"].get("TCON").is_none(),
        "an empty field removes the tag"
    );
    let pictures = both["pictures"].as_array().unwrap();
    assert_eq!(pictures.len(), 1);
    assert_eq!(pictures[0]["mime"], "image/jpeg");
    assert_eq!(pictures[0]["type"], 3, "the front cover");
    let ((width, height), luma) = picture_luma(&picture);
    assert_eq!(
        (width, height),
        (800, 450),
        "scaled within 800 px, aspect kept"
    );
    assert!(
        luma > 60.0,
        "the cover is the test pattern, not black: {luma}"
    );
    assert!(pictures[0]["size"].as_u64().unwrap() < 300_000);

    // The audio is the same, byte for byte, whatever the tag holds.
    assert!(frames(&std::fs::read(&plain).unwrap()) == frames(&std::fs::read(&tagged).unwrap()));
}

#[test]
fn a_cover_at_a_chosen_time_is_taken_as_it_is_and_past_the_end_fails() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("in.mp4");
    make_tagged_video(&video, &[]);
    let output = dir.path().join("out.mp3");
    convert_with(&video, &output, &[("cover_at", "0.5")])
        .0
        .expect("converts");
    let picture = dir.path().join("cover.jpg");
    let tag = read_tag(&output, Some(&picture));
    assert_eq!(tag["frames"]["TIT2"], "talk", "the file name is the title");
    let (_, luma) = picture_luma(&picture);
    assert!(luma < 20.0, "at 0.5 s the video is black: {luma}");

    let (result, _) = convert_with(&video, &output, &[("cover_at", "00:01:00")]);
    match result {
        Err(TranscodeError::Trim(message)) => {
            assert!(message.contains("`cover_at`"), "{message}");
        }
        other => panic!("expected a cover_at failure, got {other:?}"),
    }
}

#[test]
fn a_picture_in_the_source_is_kept_and_strip_or_none_leave_it_out() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("plain.mp4");
    make_video(&video, 3, true);
    let art = dir.path().join("art.png");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=300x300:duration=1",
        "-frames:v",
        "1",
        art.to_str().unwrap(),
    ]);
    let with_art = dir.path().join("with-art.mp4");
    ffmpeg(&[
        "-i",
        video.to_str().unwrap(),
        "-i",
        art.to_str().unwrap(),
        "-map",
        "0",
        "-map",
        "1",
        "-c",
        "copy",
        "-disposition:v:1",
        "attached_pic",
        "-metadata",
        "title=With art",
        with_art.to_str().unwrap(),
    ]);
    let kept = dir.path().join("kept.mp3");
    convert_with(&with_art, &kept, &[]).0.expect("converts");
    let picture = dir.path().join("kept.png");
    let tag = read_tag(&kept, Some(&picture));
    assert_eq!(tag["pictures"][0]["mime"], "image/png");
    assert_eq!(
        std::fs::read(&picture).unwrap(),
        std::fs::read(&art).unwrap(),
        "the source's picture, as it was"
    );

    let none = dir.path().join("none.mp3");
    convert_with(&with_art, &none, &[("cover", "none")])
        .0
        .expect("converts");
    let tag = read_tag(&none, None);
    assert_eq!(tag["pictures"], serde_json::json!([]));
    assert_eq!(tag["frames"]["TIT2"], "With art");

    let stripped = dir.path().join("stripped.mp3");
    convert_with(&with_art, &stripped, &[("strip", "true")])
        .0
        .expect("converts");
    assert_eq!(
        read_tag(&stripped, None)["version"],
        serde_json::Value::Null
    );
    let bytes = std::fs::read(&stripped).unwrap();
    assert_eq!(bytes[0], 0xff, "the file starts with an MPEG frame");
    assert!(bytes[..] == *frames(&std::fs::read(&none).unwrap()));
}

#[test]
fn a_cover_frame_is_found_in_a_video_that_declares_no_duration() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("in.mp4");
    make_tagged_video(&video, &[]);
    // Matroska written live: no duration and no cues, so the search starts at the beginning
    // and must pass the 2 s of black.
    let live = dir.path().join("live.mkv");
    ffmpeg(&[
        "-i",
        video.to_str().unwrap(),
        "-c",
        "copy",
        "-live",
        "1",
        live.to_str().unwrap(),
    ]);
    assert_eq!(
        probe(&live, "format=duration"),
        "N/A",
        "no declared duration"
    );
    let output = dir.path().join("out.mp3");
    convert_with(&live, &output, &[("cover", "frame")])
        .0
        .expect("converts");
    let picture = dir.path().join("cover.jpg");
    read_tag(&output, Some(&picture));
    let (_, luma) = picture_luma(&picture);
    assert!(luma > 60.0, "past the black opening: {luma}");
}
