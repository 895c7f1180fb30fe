//! Joining separately encoded MP3 parts (`transcode::join`): parts encoded by the `ffmpeg` CLI
//! from overlapping stretches of one source, joined, and judged against one encode of the
//! whole with the same settings: no decode error, the same decoded length (gapless: one Info
//! frame with the right frame count, delay and padding), and no 50 ms window more than 3 dB
//! worse (signal to noise, against the source) than the single encode's worst, for speech,
//! music and a pure sine, in VBR, CBR and ABR.

use audiomill_activities::transcode::{
    MediaLimits, SegmentSettings, SourceLocation,
    join::{JoinError, Part, join},
    plan, transcode, transcode_part,
};
use audiomill_domain::output::{BitrateMode, OutputOptions};
use audiomill_test_kit::ffmpeg;
use std::{
    ops::ControlFlow,
    path::{Path, PathBuf},
    process::Command,
};

/// Samples per MPEG-1 Layer III frame.
const FRAME: u64 = 1152;
const RATE: u64 = 44_100;
const SECONDS: u64 = 30;
/// Frames each part encodes before its share (dropped) and past the next share.
const WARM_UP: u64 = 8;
const OVERLAP: u64 = 40;

/// A source of `SECONDS` seconds, 16-bit stereo WAV at `RATE`.
fn source(dir: &Path, kind: &str) -> PathBuf {
    let path = dir.join(format!("{kind}.wav"));
    let d = SECONDS.to_string();
    let graph = match kind {
        "sine" => format!("sine=frequency=1000:sample_rate={RATE}:duration={d}"),
        // Pink noise under a tone: a dense spectrum, as in music.
        "music" => format!(
            "anoisesrc=color=pink:sample_rate={RATE}:duration={d}:seed=7[n];\
             sine=frequency=440:sample_rate={RATE}:duration={d}[s];[n][s]amix=inputs=2"
        ),
        // Band-limited noise in syllable-like bursts, with pauses: like speech.
        _ => format!(
            "anoisesrc=color=brown:sample_rate={RATE}:duration={d}:seed=3,\
             lowpass=f=3000,tremolo=f=4:d=0.9"
        ),
    };
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &graph,
        "-ac",
        "2",
        "-c:a",
        "pcm_s16le",
        path.to_str().unwrap(),
    ]);
    path
}

/// `source`'s samples `from..to`, encoded with `settings`.
fn encode(source: &Path, from: u64, to: u64, settings: &[&str], out: &Path) -> Vec<u8> {
    let trim = format!("atrim=start_sample={from}:end_sample={to},asetpts=N/SR/TB");
    let mut args = vec!["-i", source.to_str().unwrap(), "-af", &trim];
    args.extend_from_slice(settings);
    args.extend_from_slice(&["-c:a", "libmp3lame", out.to_str().unwrap()]);
    ffmpeg(&args);
    std::fs::read(out).unwrap()
}

/// Interleaved 16-bit samples, as the ffmpeg tool decodes `path` (gapless: the Info frame's
/// delay and padding applied).
fn decode(path: &Path) -> Vec<f64> {
    decode_with(path, &[])
}

/// As [`decode`], through the ffmpeg tool's options `args` (filters, say).
fn decode_with(path: &Path, args: &[&str]) -> Vec<f64> {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-i", path.to_str().unwrap()])
        .args(args)
        .args(["-f", "s16le", "-ac", "2", "-"])
        .output()
        .unwrap();
    assert!(
        output.stderr.is_empty(),
        "{} decodes with errors: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    output
        .stdout
        .chunks_exact(2)
        .map(|pair| f64::from(i16::from_le_bytes([pair[0], pair[1]])))
        .collect()
}

/// Joins `files` (each part's MP3 and first frame) whose shares begin at `shares`, into
/// `path`.
fn join_into(files: &[(Vec<u8>, u64)], shares: &[u64], path: &Path) {
    let parts: Vec<Part> = files
        .iter()
        .map(|(bytes, first_frame)| Part {
            bytes,
            first_frame: *first_frame,
        })
        .collect();
    let joined = join(&parts, shares).expect("the parts join");
    assert_lame_checksums_hold(&joined, "the joined file");
    std::fs::write(path, joined).unwrap();
}

/// The LAME tag's checksums match the file: the music CRC its audio frames', the tag CRC its
/// own bytes' (both CRC-16/ARC, worked out here a bit at a time).
fn assert_lame_checksums_hold(mp3: &[u8], what: &str) {
    fn crc16_arc(bytes: &[u8]) -> u16 {
        bytes.iter().fold(0, |crc, &byte| {
            (0..8).fold(crc ^ u16::from(byte), |crc, _| {
                if crc & 1 == 1 {
                    (crc >> 1) ^ 0xA001
                } else {
                    crc >> 1
                }
            })
        })
    }
    let mut info = 0;
    if mp3.starts_with(b"ID3") {
        let size = mp3[6..10]
            .iter()
            .fold(0, |size, &b| (size << 7) | usize::from(b & 0x7F));
        info = 10 + size;
    }
    let header = u32::from_be_bytes(mp3[info..info + 4].try_into().unwrap());
    assert_eq!((header >> 19) & 3, 3, "{what}: MPEG-1 frames");
    const KBPS: [usize; 15] = [
        0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ];
    let rate = [44_100, 48_000, 32_000][((header >> 10) & 3) as usize];
    let len = 144_000 * KBPS[((header >> 12) & 15) as usize] / rate + ((header >> 9) & 1) as usize;
    let frame = &mp3[info..info + len];
    let lame = frame
        .windows(4)
        .position(|name| name == b"LAME" || name == b"Lavc")
        .unwrap_or_else(|| panic!("{what}: a LAME tag"));
    let field = |at: usize| u16::from_be_bytes([frame[lame + at], frame[lame + at + 1]]);
    let music_length = (usize::from(field(28)) << 16) | usize::from(field(30));
    let audio = &mp3[info + len..info + music_length];
    assert_eq!(field(32), crc16_arc(audio), "{what}: the music CRC");
    assert_eq!(
        field(34),
        crc16_arc(&frame[..lame + 34]),
        "{what}: the tag CRC"
    );
}

/// Signal-to-noise ratio (dB) of `decoded` against `source`, in 50 ms windows.
fn windows(source: &[f64], decoded: &[f64]) -> Vec<f64> {
    let window = (RATE / 20 * 2) as usize;
    source
        .chunks_exact(window)
        .zip(decoded.chunks_exact(window))
        .map(|(s, d)| {
            let signal: f64 = s.iter().map(|x| x * x).sum();
            let noise: f64 = s.iter().zip(d).map(|(x, y)| (x - y) * (x - y)).sum();
            10.0 * (signal / noise.max(1e-9)).log10()
        })
        .collect()
}

fn worst(snr: &[f64]) -> f64 {
    snr.iter().copied().fold(f64::INFINITY, f64::min)
}

/// Makes an MP3 of `source` whole and one of each of three overlapping parts with `make` (an
/// MP3 of samples `from..to`, written to the path given and returned), joins the parts, and
/// returns the worst window of the whole's MP3 and of the joined one.
fn single_and_joined(
    dir: &Path,
    source: &Path,
    make: impl Fn(u64, u64, &Path) -> Vec<u8>,
) -> (f64, f64) {
    let total = SECONDS * RATE;
    let single = dir.join("single.mp3");
    assert_lame_checksums_hold(&make(0, total, &single), "the single encode");
    let shares: [u64; 3] = [0, 300, 700];
    let mut files = Vec::new();
    for (i, &share) in shares.iter().enumerate() {
        let first = share.saturating_sub(WARM_UP);
        let to = match shares.get(i + 1) {
            Some(next) => ((next + OVERLAP) * FRAME).min(total),
            None => total,
        };
        let out = dir.join(format!("part{i}.mp3"));
        files.push((make(first * FRAME, to, &out), first));
    }
    let joined_path = dir.join("joined.mp3");
    join_into(&files, &shares, &joined_path);

    let original = decode(source);
    let single = decode(&single);
    let joined = decode(&joined_path);
    assert_eq!(
        joined.len(),
        single.len(),
        "the joined file lasts as long as the single encode"
    );
    (
        worst(&windows(&original, &single)),
        worst(&windows(&original, &joined)),
    )
}

#[test]
fn joins_are_as_clean_as_the_rest_of_a_single_encode() {
    let dir = tempfile::tempdir().unwrap();
    for kind in ["speech", "music", "sine"] {
        let source = source(dir.path(), kind);
        for settings in [
            &["-q:a", "2"][..],
            &["-b:a", "128k"][..],
            &["-abr", "1", "-b:a", "96k"][..],
        ] {
            let (single, joined) = single_and_joined(dir.path(), &source, |from, to, out| {
                encode(&source, from, to, settings, out)
            });
            eprintln!(
                "{kind} {settings:?}: worst 50 ms window {single:.2} dB single, {joined:.2} dB joined"
            );
            assert!(
                joined >= single - 3.0,
                "{kind} {settings:?}: the joined file's worst window is {joined:.1} dB, \
                 the single encode's {single:.1} dB"
            );
        }
    }
}

#[test]
fn parts_that_do_not_overlap_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = source(dir.path(), "sine");
    let settings = ["-q:a", "2"];
    let first = encode(
        &source,
        0,
        300 * FRAME,
        &settings,
        &dir.path().join("a.mp3"),
    );
    let second = encode(
        &source,
        300 * FRAME,
        SECONDS * RATE,
        &settings,
        &dir.path().join("b.mp3"),
    );
    let parts = [
        Part {
            bytes: &first,
            first_frame: 0,
        },
        Part {
            bytes: &second,
            first_frame: 300,
        },
    ];
    // The first part ends where the second begins: no frame both have to join at.
    assert_eq!(join(&parts, &[0, 300]), Err(JoinError::NoJoin { part: 0 }));
    // A part that starts after its share cannot cover it.
    assert_eq!(
        join(&parts, &[0, 200]),
        Err(JoinError::Coverage { part: 1 })
    );
    let garbage = [Part {
        bytes: b"not an mp3",
        first_frame: 0,
    }];
    assert!(matches!(
        join(&garbage, &[0]),
        Err(JoinError::Malformed { part: 0, .. })
    ));
}

/// `source`'s samples `from..to` as 16-bit PCM in Matroska: a stretch of decoded audio, as a
/// container the transcoder opens.
fn chunk(source: &Path, from: u64, to: u64, out: &Path) {
    let trim = format!("atrim=start_sample={from}:end_sample={to},asetpts=N/SR/TB");
    ffmpeg(&[
        "-i",
        source.to_str().unwrap(),
        "-af",
        &trim,
        "-c:a",
        "pcm_s16le",
        out.to_str().unwrap(),
    ]);
}

fn transcoded(input: &Path, output: &Path, options: &OutputOptions) -> Vec<u8> {
    transcode(
        &SourceLocation::file(input),
        output,
        options,
        "",
        MediaLimits::default(),
        &mut |_| ControlFlow::Continue(()),
    )
    .expect("the transcode succeeds");
    std::fs::read(output).unwrap()
}

#[test]
fn parts_from_the_transcoder_join_into_what_its_single_path_makes() {
    let dir = tempfile::tempdir().unwrap();
    let source = source(dir.path(), "music");
    for options in [
        OutputOptions {
            strip: true,
            ..OutputOptions::default()
        },
        OutputOptions {
            bitrate_mode: BitrateMode::Cbr,
            bitrate: Some(128),
            strip: true,
            ..OutputOptions::default()
        },
    ] {
        let (single, joined) = single_and_joined(dir.path(), &source, |from, to, out| {
            let stretch = out.with_extension("mkv");
            chunk(&source, from, to, &stretch);
            transcoded(&stretch, out, &options)
        });
        eprintln!(
            "transcoder {options:?}: worst window {single:.2} dB single, {joined:.2} dB joined"
        );
        assert!(
            joined >= single - 3.0,
            "{joined:.1} dB against {single:.1} dB"
        );
    }
}

/// `source` as AAC in MP4, the way phones and cameras record: parts are cut from it by the
/// decoded frames' timestamps.
fn as_mp4(source: &Path) -> PathBuf {
    let mp4 = source.with_extension("mp4");
    ffmpeg(&[
        "-i",
        source.to_str().unwrap(),
        "-ar",
        "48000",
        "-c:a",
        "aac",
        "-b:a",
        "160k",
        mp4.to_str().unwrap(),
    ]);
    mp4
}

/// The transcoder's parts of a real source (seeking into it, resampling or not), joined as
/// planned: as long as its single pass, no decode error, and no window worse than the
/// single pass's worst by more than 3 dB, with the tag and cover of the first part.
#[test]
fn parts_of_a_video_join_into_what_the_single_path_makes() {
    let dir = tempfile::tempdir().unwrap();
    for kind in ["music", "sine"] {
        let wav = source(dir.path(), kind);
        let mp4 = as_mp4(&wav);
        for options in [
            OutputOptions::default(),
            OutputOptions {
                sample_rate: Some(44_100),
                bitrate_mode: BitrateMode::Cbr,
                bitrate: Some(128),
                ..OutputOptions::default()
            },
            OutputOptions {
                start_ms: Some(1_500),
                end_ms: Some(27_000),
                ..OutputOptions::default()
            },
        ] {
            let settings = SegmentSettings {
                min_seconds: 10,
                share_seconds: 8,
                max_parts: None,
            };
            let plan = plan(
                &SourceLocation::file(&mp4),
                &options,
                MediaLimits::default(),
                settings,
            )
            .expect("the source opens")
            .expect("a long enough MP4 is converted in parts");
            assert!(plan.parts() >= 3, "{plan:?}");
            let single = dir.path().join("single.mp3");
            transcoded(&mp4, &single, &options);
            let mut files = Vec::new();
            for part in 0..plan.parts() {
                let out = dir.path().join(format!("part{part}.mp3"));
                transcode_part(
                    &SourceLocation::file(&mp4),
                    &out,
                    &options,
                    "",
                    MediaLimits::default(),
                    (&plan, part),
                    &mut |_| ControlFlow::Continue(()),
                )
                .expect("the part converts");
                files.push((std::fs::read(&out).unwrap(), plan.span(part).first_frame));
            }
            let joined_path = dir.path().join("joined.mp3");
            join_into(&files, &plan.shares, &joined_path);
            // The source as the MP3 should hold it: resampled and trimmed as asked.
            let mut filters = vec![];
            if let (Some(start), Some(end)) = (options.start_ms, options.end_ms) {
                filters.push(format!(
                    "atrim=start={}:end={}",
                    start as f64 / 1000.0,
                    end as f64 / 1000.0
                ));
            }
            filters.push(format!(
                "aresample={}",
                options.sample_rate.unwrap_or(48_000)
            ));
            let original = decode_with(&mp4, &["-af", &filters.join(",")]);
            let single = decode(&single);
            let joined = decode(&joined_path);
            assert!(
                joined.len().abs_diff(single.len()) <= 1152 * 2,
                "{kind} {options:?}: joined {} samples, single {}",
                joined.len(),
                single.len()
            );
            let (single, joined) = (
                worst(&windows(&original, &single)),
                worst(&windows(&original, &joined)),
            );
            eprintln!(
                "{kind} {options:?}: {} parts, worst 50 ms window {single:.2} dB single, \
                 {joined:.2} dB joined",
                plan.parts()
            );
            assert!(
                joined >= single - 3.0,
                "{kind} {options:?}: {joined:.1} dB joined against {single:.1} dB single"
            );
            let tag = std::fs::read(&joined_path).unwrap();
            assert!(tag.starts_with(b"ID3"), "the tag of the first part leads");
        }
    }
}

/// Parts are planned only where they can be cut exactly and the length is known: not for
/// Matroska (millisecond timestamps), a stream that declares no duration, or loudness
/// normalisation (which measures the whole); the same audio in MP4 is.
#[test]
fn only_sources_that_can_be_cut_exactly_are_planned_in_parts() {
    let dir = tempfile::tempdir().unwrap();
    let wav = source(dir.path(), "music");
    let settings = SegmentSettings {
        min_seconds: 10,
        share_seconds: 8,
        max_parts: None,
    };
    let planned = |path: &Path, options: &OutputOptions| {
        plan(
            &SourceLocation::file(path),
            options,
            MediaLimits::default(),
            settings,
        )
        .expect("the source opens")
        .map(|plan| plan.parts())
    };
    let mp4 = as_mp4(&wav);
    assert!(planned(&mp4, &OutputOptions::default()).is_some_and(|parts| parts >= 3));
    let normalised = OutputOptions {
        normalize: Some(audiomill_domain::output::Loudness::DEFAULT),
        ..OutputOptions::default()
    };
    assert_eq!(planned(&mp4, &normalised), None);
    let mkv = dir.path().join("music.mkv");
    ffmpeg(&[
        "-i",
        wav.to_str().unwrap(),
        "-c:a",
        "aac",
        mkv.to_str().unwrap(),
    ]);
    assert_eq!(planned(&mkv, &OutputOptions::default()), None);
    let live = dir.path().join("live.mkv");
    ffmpeg(&[
        "-i",
        wav.to_str().unwrap(),
        "-c:a",
        "flac",
        "-live",
        "1",
        live.to_str().unwrap(),
    ]);
    assert_eq!(planned(&live, &OutputOptions::default()), None);
    // Too short for parts: 30 s against a 60 s threshold.
    let short = SegmentSettings {
        min_seconds: 60,
        share_seconds: 8,
        max_parts: None,
    };
    assert_eq!(
        plan(
            &SourceLocation::file(&mp4),
            &OutputOptions::default(),
            MediaLimits::default(),
            short
        )
        .unwrap(),
        None
    );
}
