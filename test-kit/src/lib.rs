//! Test media for the suites: videos made with the `ffmpeg` tool (a test picture with a tone,
//! music-like noise, raw frames for large files, long sources), and what `ffprobe` reads back.
//! Every suite that needs media takes it from here, so a fixture is written once.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// Runs the `ffmpeg` tool to make test media.
pub fn ffmpeg(args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .status()
        .expect("ffmpeg is installed");
    assert!(status.success(), "ffmpeg {args:?} failed");
}

/// A small MP4 with a test picture and, if `audio`, a sine tone (44.1 kHz, mono).
pub fn make_mp4(dir: &Path, name: &str, seconds: u32, audio: bool) -> PathBuf {
    let path = dir.join(name);
    let tone = Tone {
        sample_rate: 44_100,
        channels: None,
    };
    write_test_video(&path, seconds, audio.then_some(tone));
    path
}

/// The sine tone of a test video: its sample rate, and its channels when not the sine's one.
#[derive(Debug, Clone, Copy)]
pub struct Tone {
    pub sample_rate: u32,
    pub channels: Option<u32>,
}

/// Writes a test video (a test picture at 10 frames a second, H.264) of `seconds` to `path`,
/// with `tone` as its AAC audio, or no audio at all.
pub fn write_test_video(path: &Path, seconds: u32, tone: Option<Tone>) {
    let duration = seconds.to_string();
    let sine = tone.map(|tone| format!("sine=frequency=440:sample_rate={}", tone.sample_rate));
    let channels = tone.and_then(|tone| tone.channels).map(|c| c.to_string());
    let mut args = vec!["-f", "lavfi", "-i", "testsrc=size=160x120:rate=10"];
    if let Some(sine) = &sine {
        args.extend(["-f", "lavfi", "-i", sine]);
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
    if sine.is_some() {
        args.extend(["-c:a", "aac"]);
    }
    if let Some(channels) = &channels {
        args.extend(["-ac", channels]);
    }
    args.push(path.to_str().expect("test paths are UTF-8"));
    ffmpeg(&args);
}

/// `lecture.mkv`: a Matroska video of raw frames, about 2.9 MB a second that ffmpeg writes
/// at once: large files for little time.
pub fn raw_video(dir: &Path, seconds: u32) -> PathBuf {
    let path = dir.join("lecture.mkv");
    let seconds = seconds.to_string();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        &seconds,
        "-c:v",
        "rawvideo",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        path.to_str().unwrap(),
    ]);
    path
}

/// An MP4 of `seconds` of music-like audio (pink noise under a tone), AAC at 48 kHz, its
/// index at the front (as phones and `-movflags +faststart` write it).
pub fn music_video(dir: &Path, name: &str, seconds: u32) -> PathBuf {
    let path = dir.join(name);
    let duration = seconds.to_string();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=size=16x16:rate=1",
        "-f",
        "lavfi",
        "-i",
        "anoisesrc=color=pink:sample_rate=48000:amplitude=0.3:seed=5",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-filter_complex",
        "[1:a][2:a]amix=inputs=2[a]",
        "-map",
        "0:v",
        "-map",
        "[a]",
        "-t",
        &duration,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        "-movflags",
        "+faststart",
        path.to_str().unwrap(),
    ]);
    path
}

/// A video whose audio takes the transcoder a few seconds (`seconds` of noise behind a tiny
/// picture): long enough to act in the middle of a transcode.
pub fn make_long_video(dir: &Path, seconds: u32) -> PathBuf {
    let path = dir.join("long.mkv");
    let duration = seconds.to_string();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=size=16x16:rate=1",
        "-f",
        "lavfi",
        "-i",
        "anoisesrc=color=pink:sample_rate=44100",
        "-t",
        &duration,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "libopus",
        "-b:a",
        "32k",
        path.to_str().unwrap(),
    ]);
    path
}

/// Whether `path` is an MP3 of more than a second, as ffprobe reads it.
pub fn is_mp3(path: &Path) -> bool {
    let (codec, seconds) = probe_audio(path);
    codec == "mp3" && seconds > 1.0
}

/// What ffprobe says of a file's first audio stream: (codec, duration in seconds).
pub fn probe_audio(path: &Path) -> (String, f64) {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=codec_name:format=duration",
            "-of",
            "default=nw=1",
        ])
        .arg(path)
        .output()
        .expect("ffprobe is installed");
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_default()
            .to_owned()
    };
    (
        field("codec_name="),
        field("duration=").parse().unwrap_or(0.0),
    )
}

/// One entry of a file's first audio stream or its format, as ffprobe prints it
/// (`stream=codec_name`, `format=duration`, ...).
pub fn probe_entry(path: &Path, entry: &str) -> String {
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

/// Runs the repository's Python tool `tests/tools/NAME` on `args` with the project's
/// virtualenv when there is one (where `mutagen` is installed), else `python3`, and returns
/// what it prints; a tool that fails fails the test with what it said.
pub fn python_tool<I, S>(name: &str, args: I) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = root.join(".tools/venv/bin/python3");
    let python = if venv.exists() {
        venv
    } else {
        "python3".into()
    };
    let output = Command::new(python)
        .arg(root.join("tests/tools").join(name))
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}
