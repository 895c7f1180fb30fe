//! A video's or audio file's sound to MP3 (or M4A, Opus, FLAC, WAV) with FFmpeg's libraries.
//! The worker runs this in a child process of its own (see [`crate::isolated`]), so a decoder
//! that crashes or hangs costs one attempt, never the worker.
//!
//! The best audio stream is decoded ([`source`]: only the wanted part, when trimmed), passed
//! through a filter graph and encoded as the [`OutputOptions`] say ([`encode`]: LAME for an
//! MP3, each other format's encoder and muxer). Loudness normalisation first measures that
//! same part in a pass of its own ([`loudness`]). The output gets tags from the source's
//! metadata and the options in its format's own way ([`tags`]: an ID3v2.4 tag for an MP3), a
//! front cover ([`picture`]) and the source's chapters ([`chapters`]).
//! Every read and decode error is checked, so a damaged file fails instead of yielding a
//! shorter output that claims success.
//!
//! Only the demuxers of the accepted containers, the `file` protocol and common audio
//! decoders may be opened, so video is never decoded, not even to probe it, except by the
//! cover step ([`picture`]) when a frame is asked for, within a bounded number of frames. What a
//! file may turn into is bounded by [`MediaLimits`]: decoded duration (measured as it decodes,
//! since a file need not declare one), decoded seconds per megabyte of input, and output size.
//! Progress comes from timestamps when the duration is known, else from the bytes read.
//!
//! When the output's format can carry the source's audio as it is and nothing asked needs its
//! samples, the packets are copied instead ([`copy`]).
//!
//! MP3s encoded separately from overlapping parts of one source join into one that decodes
//! like a single encode ([`join`]).

mod chapters;
mod copy;
mod cut;
mod encode;
pub mod join;
mod loudness;
mod picture;
mod source;
mod tags;
mod tracks;

pub use cut::{SegmentSettings, plan};
pub use encode::rate_for_bitrate;
pub use source::SourceLocation;

use audiomill_domain::{
    in_parts::SegmentPlan,
    output::{OutputOptions, SourceTrack},
};
use ffmpeg_next as ffmpeg;
use source::{Source, Span, Trim};
use std::{ops::ControlFlow, path::Path};

/// What one source may turn into at most. A file beyond any of these fails as `MediaTooLong`,
/// so a small file that unpacks into days of audio cannot keep a worker busy or fill its disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MediaLimits {
    /// Decoded audio, in seconds (`MAX_MEDIA_SECONDS`).
    pub max_seconds: u32,
    /// Size of the MP3, in MB (`MAX_OUTPUT_MB`).
    pub max_output_mb: u32,
    /// Decoded seconds per MB of input, beyond the first [`MediaLimits::FREE_SECONDS`]
    /// (`MAX_SECONDS_PER_MB`). Real videos carry far fewer: even 6 kbit/s speech is about
    /// 1400 s per MB.
    pub max_seconds_per_mb: u32,
}

impl Default for MediaLimits {
    fn default() -> Self {
        Self {
            max_seconds: 4 * 60 * 60,
            max_output_mb: 600,
            max_seconds_per_mb: 3600,
        }
    }
}

impl MediaLimits {
    /// Seconds any file may hold, however small it is.
    pub const FREE_SECONDS: u64 = 600;

    /// The decoded seconds allowed for an input of `input_bytes`.
    pub fn seconds_for(&self, input_bytes: u64) -> u64 {
        let by_size = Self::FREE_SECONDS
            + input_bytes.saturating_mul(u64::from(self.max_seconds_per_mb)) / (1024 * 1024);
        by_size.min(u64::from(self.max_seconds))
    }

    pub fn max_output_bytes(&self) -> u64 {
        u64::from(self.max_output_mb) * 1024 * 1024
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscodeReport {
    pub duration_ms: u64,
    /// The source's audio packets went into the output as they are (see `copy`).
    pub copied: bool,
    /// The source's audio tracks, as its container describes them.
    pub tracks: Vec<SourceTrack>,
}

#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error("the file is not in a video or audio format that can be read ({0})")]
    Unsupported(String),
    #[error("the file has no audio track to convert")]
    NoAudioStream,
    #[error("the file is damaged or truncated ({0})")]
    Corrupt(String),
    #[error("{0}")]
    TooLong(String),
    /// The trim asks for audio the file does not have.
    #[error("{0}")]
    Trim(String),
    /// The audio track asked for is not in the file.
    #[error("{0}")]
    Track(String),
    #[error("the conversion was cancelled")]
    Cancelled,
    #[error("the audio file could not be written ({0})")]
    Output(String),
    /// The child process running the transcode died or hung (see `crate::isolated`).
    #[error("{0}")]
    Crashed(String),
}

/// Converts the best audio stream of `input` into the MP3 file `output`, as `options` say;
/// its tags come from the source's metadata, the options, and `file_name` (the upload's, the
/// title when nothing else gives one).
///
/// `on_progress` receives the percentage done (0-100) after every packet and at the end; it
/// returns `ControlFlow::Break` to cancel. It is called often, so it should be cheap.
pub fn transcode(
    input: &SourceLocation,
    output: &Path,
    options: &OutputOptions,
    file_name: &str,
    limits: MediaLimits,
    on_progress: &mut dyn FnMut(u8) -> ControlFlow<()>,
) -> Result<TranscodeReport, TranscodeError> {
    convert(input, output, options, file_name, limits, None, on_progress)
}

/// Converts part `part` of `plan` (see [`segment`]) into the MP3 file `output`, for
/// [`join`] to join with the others: the frames of the whole file's that the part's span
/// covers, and only the first part with the tags. Progress is the part's own; the report's
/// duration reaches to the part's end in the whole file.
pub fn transcode_part(
    input: &SourceLocation,
    output: &Path,
    options: &OutputOptions,
    file_name: &str,
    limits: MediaLimits,
    (plan, part): (&SegmentPlan, usize),
    on_progress: &mut dyn FnMut(u8) -> ControlFlow<()>,
) -> Result<TranscodeReport, TranscodeError> {
    let span = Some(plan.span(part));
    convert(input, output, options, file_name, limits, span, on_progress)
}

/// Readies FFmpeg for a source: before anything opens one.
fn start_ffmpeg() -> Result<(), TranscodeError> {
    ffmpeg::init().map_err(|e| TranscodeError::Output(format!("FFmpeg did not start: {e}")))?;
    // Our own errors say what went wrong; FFmpeg's chatter (per packet, or about the video
    // decoders a source may not open) would only flood the worker's log.
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
    Ok(())
}

fn convert(
    input: &SourceLocation,
    output: &Path,
    options: &OutputOptions,
    file_name: &str,
    limits: MediaLimits,
    part: Option<audiomill_domain::in_parts::PartSpan>,
    on_progress: &mut dyn FnMut(u8) -> ControlFlow<()>,
) -> Result<TranscodeReport, TranscodeError> {
    start_ffmpeg()?;

    let trim = Trim::of(options);
    let mut source = Source::open(input, options.audio_track.as_ref())?;
    let metadata = source.metadata();
    let tags = options.tags_for(
        metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        file_name,
    );
    // The tag goes at the start of the whole file: with the first part.
    let tagged = !options.strip && part.is_none_or(|span| span.first_frame == 0);
    let picture = if tagged {
        picture::choose(input, options, on_progress)?
    } else {
        None
    };
    let chapters = chapters::of(&source.input, trim);
    let source_tracks = tracks::list(&source.input);
    let tagging = tagged.then(|| tags::Tagging::new(options.format, &tags, picture, chapters));
    if part.is_none() && copy::can_copy(&source, options) {
        let report = copy::copy(source, output, options.format, tagging, limits, on_progress)?;
        return Ok(TranscodeReport {
            tracks: source_tracks,
            ..report
        });
    }
    let mut chain = trim.filter(&source);
    let mut span = Span::WHOLE;
    let mut reading = trim;
    let mut samples_before = 0;
    if let Some(part) = part {
        let cut = cut::Cut::new(&source, options, part)?;
        (chain, reading, samples_before) = (cut.chain, cut.reading, cut.samples_before);
    } else if let Some(target) = options.normalize {
        // Measured as it will be encoded: the same part, mixed down the same way.
        let layout = encode::layout_filter(&source.decoder, options);
        let measuring = Span { from: 0, to: 50 };
        let measured = loudness::measure(
            &mut source,
            trim,
            &format!("{chain},{layout}"),
            limits,
            measuring,
            on_progress,
        )?;
        source = Source::open(input, options.audio_track.as_ref())?;
        if let Some(measured) = measured {
            chain = format!("{chain},{layout},{}", loudness::normalise(target, measured));
        }
        span = Span { from: 50, to: 100 };
    }
    let mut pipeline = encode::Pipeline::open(
        output,
        &source,
        options,
        &chain,
        limits,
        tagging,
        samples_before,
    )?;
    source::decode(&mut source, reading, span, on_progress, &mut |frame| {
        pipeline.push(frame)
    })?;
    let report = pipeline.finish()?;
    let _ = on_progress(100);
    Ok(TranscodeReport {
        tracks: source_tracks,
        ..report
    })
}
