//! Long sources in parts: which sources may be converted in parts ([`plan`]), and how one
//! part is cut from the source so that its MP3 frames line up with the whole file's
//! ([`Cut`]), for [`super::join`] to join them.
//!
//! A part must encode exactly the samples the whole would have at the same places, or its
//! joins click: its first sample is found by the decoded frames' timestamps, so parts are only
//! made of streams whose timestamps count samples (a time base of one sample, as MP4 and MOV
//! have). Resampled audio starts each part at an input sample that falls on an output
//! sample (every `in_rate / gcd` input samples), where the resampler's phase is the same as
//! in one pass; the samples before the part's first frame are cut after resampling.
//! Loudness normalisation works on the whole and is not done in parts; such jobs, and
//! streams without sample timestamps (Matroska counts milliseconds), take the single path.

use super::{
    MediaLimits, TranscodeError, encode,
    source::{Source, SourceLocation, Trim},
};
use audiomill_domain::{
    in_parts::{PartSpan, SegmentPlan},
    output::OutputOptions,
};

/// When a source is converted in parts (`SEGMENT_MIN_SECONDS`, `SEGMENT_SECONDS`,
/// `SEGMENT_MAX_PARTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SegmentSettings {
    /// Sources shorter than this (after any trim) are converted in one pass.
    pub min_seconds: u32,
    /// About the audio each part encodes (see `SegmentPlan::new`).
    pub share_seconds: u32,
    /// The most parts a source is cut into (longer parts then); `None`: as `share_seconds`
    /// gives.
    #[serde(default)]
    pub max_parts: Option<u32>,
}

impl Default for SegmentSettings {
    fn default() -> Self {
        Self {
            min_seconds: 300,
            share_seconds: 300,
            max_parts: None,
        }
    }
}

/// The parts `input` is converted in, when it is long enough, its format joins parts (MP3)
/// and it can be cut exactly; `None`:
/// one pass. Reads only the container's header.
pub fn plan(
    input: &SourceLocation,
    options: &OutputOptions,
    limits: MediaLimits,
    settings: SegmentSettings,
) -> Result<Option<SegmentPlan>, TranscodeError> {
    if !options.format.converts_in_parts() {
        return Ok(None);
    }
    super::start_ffmpeg()?;
    let source = Source::open(input, options.audio_track.as_ref())?;
    if super::copy::can_copy(&source, options) {
        // Copied in one pass, at the pace of reading the file.
        return Ok(None);
    }
    let Some(declared) = source.expected_secs else {
        // With no declared length the parts could not be planned; the single pass measures.
        return Ok(None);
    };
    if options.normalize.is_some() || !counts_samples(&source) {
        return Ok(None);
    }
    let trim = Trim::of(options);
    let start = trim.start_ms.unwrap_or(0) as f64 / 1000.0;
    let end = trim
        .end_ms
        .map_or(declared, |ms| declared.min(ms as f64 / 1000.0));
    let seconds = end - start;
    if seconds < f64::from(settings.min_seconds)
        || declared > limits.seconds_for(source.input_bytes) as f64
    {
        return Ok(None);
    }
    let (rate, frame_samples) = encode::mp3_timing(&source.decoder, options)?;
    let plan = SegmentPlan::new(
        (seconds * 1000.0) as u64,
        settings.share_seconds,
        settings.max_parts,
        rate,
        frame_samples,
    );
    Ok((plan.parts() > 1).then_some(plan))
}

/// Whether the stream's timestamps count its samples, so that a decoded frame's first
/// sample is known exactly after a seek.
fn counts_samples(source: &Source) -> bool {
    let time_base = source.time_base;
    time_base.numerator() == 1 && time_base.denominator() == source.decoder.rate() as i32
}

/// How one part is read and cut from the source.
pub(super) struct Cut {
    /// The filters in front of the encoder: the exact input samples, resampled, cut to the
    /// part's frames.
    pub(super) chain: String,
    /// What to read of the source: from a little before the part to a little after it.
    pub(super) reading: Trim,
    /// The whole MP3's samples before the part's first one.
    pub(super) samples_before: u64,
}

/// How far past a part's end reading goes: the decoder's own delay.
const READ_PAST_MS: u64 = 250;

impl Cut {
    pub(super) fn new(
        source: &Source,
        options: &OutputOptions,
        span: PartSpan,
    ) -> Result<Self, TranscodeError> {
        if options.normalize.is_some() || !counts_samples(source) {
            return Err(TranscodeError::Output(
                "this source cannot be converted in parts".into(),
            ));
        }
        let in_rate = u64::from(source.decoder.rate());
        let (out_rate, frame_samples) = encode::mp3_timing(&source.decoder, options)?;
        let out_rate = u64::from(out_rate);
        let common = gcd(in_rate, out_rate);
        let (in_step, out_step) = (in_rate / common, out_rate / common);

        // The part's first output sample, and the nearest output sample at or before it
        // that an input sample falls on.
        let first = span.first_frame * u64::from(frame_samples);
        let aligned = first / out_step * out_step;
        let trim = Trim::of(options);
        let sample_at = |ms: u64| (ms * in_rate + 500) / 1000;
        let trim_start = trim.start_ms.map_or(0, sample_at);
        let from = trim_start + aligned / out_step * in_step;
        // Timestamps are in samples here (see `counts_samples`).
        let origin = source.start_ticks.max(0) as u64;
        let mut input_cut = format!("atrim=start_pts={}", origin + from);
        if let Some(end) = trim.end_ms {
            input_cut.push_str(&format!(":end_pts={}", origin + sample_at(end)));
        }
        let resample = if in_rate == out_rate {
            String::new()
        } else {
            format!(",aresample={out_rate}")
        };
        let mut output_cut = format!("atrim=start_sample={}", first - aligned);
        let mut reading_end = trim.end_ms;
        if let Some(end_frame) = span.end_frame {
            let end = end_frame * u64::from(frame_samples);
            output_cut.push_str(&format!(":end_sample={}", end - aligned));
            let end_ms = (trim_start * 1000 / in_rate) + end * 1000 / out_rate + READ_PAST_MS;
            reading_end = Some(reading_end.map_or(end_ms, |trimmed| trimmed.min(end_ms)));
        }
        let from_ms = from * 1000 / in_rate;
        Ok(Self {
            chain: format!("{input_cut}{resample},{output_cut}"),
            reading: Trim {
                start_ms: (from_ms > 0).then_some(from_ms),
                end_ms: reading_end,
            },
            samples_before: first,
        })
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a.max(1) } else { gcd(b, a % b) }
}
