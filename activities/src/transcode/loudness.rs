//! Loudness normalisation in two passes (EBU R128 / ITU-R BS.1770): the first measures what
//! will be encoded (the trimmed part, in the MP3's channel layout) with `ebur128`; the second
//! applies the one gain that takes it to the target, with a limiter holding the true peak.
//! Only audio whose loudness range is wider than the target's goes through `loudnorm`'s
//! dynamic mode, which narrows it. A single pass could only guess at what is still to come.

use super::{
    MediaLimits, TranscodeError,
    source::{self, Source, Span, Trim},
};
use audiomill_domain::output::Loudness;
use ffmpeg::{Error as AvError, filter, frame};
use ffmpeg_next as ffmpeg;
use std::ops::ControlFlow;

/// Below this integrated loudness (LUFS) the audio is silence: there is nothing to raise, and
/// it is left as it is.
const SILENCE_LUFS: f64 = -69.0;

/// The rate the limiter works at: four times 48 kHz, where true peaks show as samples.
const OVERSAMPLED_RATE: u32 = 192_000;

/// How far below the target true peak the limiter holds the audio: lossy encoding raises
/// peaks by about this much.
const ENCODER_HEADROOM_DB: f64 = 1.0;

/// What the first pass measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Measured {
    /// Integrated loudness, LUFS.
    integrated: f64,
    /// Loudness range, LU.
    range: f64,
    /// True peak, dBTP.
    true_peak: f64,
}

/// Decodes the `trim` part of `source` through `chain` and `ebur128`; `None` for silence.
pub(super) fn measure(
    source: &mut Source,
    trim: Trim,
    chain: &str,
    limits: MediaLimits,
    span: Span,
    on_progress: &mut dyn FnMut(u8) -> ControlFlow<()>,
) -> Result<Option<Measured>, TranscodeError> {
    let failed = |e: AvError| TranscodeError::Output(format!("loudness measurement: {e}"));
    // The meter attaches its running measurements to each frame it passes on.
    let mut graph = source
        .filter_graph(&format!("{chain},ebur128=peak=true:metadata=1"), |_| {})
        .map_err(failed)?;
    let rate = f64::from(source.decoder.rate().max(1));
    let max_samples = limits.seconds_for(source.input_bytes) as f64 * rate;
    let mut meter = Meter::default();
    source::decode(source, trim, span, on_progress, &mut |decoded| {
        if decoded.samples() > 0 {
            meter.decoded += decoded.samples() as f64;
            if meter.decoded > max_samples {
                return Err(TranscodeError::TooLong(format!(
                    "the audio runs longer than the {:.0} s this file may hold",
                    max_samples / rate
                )));
            }
        }
        graph
            .get("in")
            .expect("graph has an input")
            .source()
            .add(decoded)
            .map_err(|e| TranscodeError::Corrupt(format!("audio could not be converted: {e}")))?;
        meter.read(&mut graph).map_err(failed)
    })?;
    graph
        .get("in")
        .expect("graph has an input")
        .source()
        .flush()
        .map_err(failed)?;
    meter.read(&mut graph).map_err(failed)?;
    Ok(meter.last.filter(|m| m.integrated > SILENCE_LUFS))
}

/// The filters that take audio measured as `measured` to `target`: one gain, and a limiter
/// only where that gain would push peaks past the target's true peak (it touches too little
/// of the audio to move its loudness much). A loudness range wider than the target's needs
/// the range itself narrowed: `loudnorm`'s dynamic mode does that.
pub(super) fn normalise(target: Loudness, measured: Measured) -> String {
    if measured.range > target.range {
        return loudnorm(target, measured);
    }
    let gain = target.integrated - measured.integrated;
    let mut chain = format!("volume={gain:.2}dB");
    if measured.true_peak + gain > target.true_peak {
        // Limited four times oversampled, so that it holds the peaks between the samples
        // too, and with headroom for what MP3 encoding adds to them.
        let limit = 10f64.powf((target.true_peak - ENCODER_HEADROOM_DB) / 20.0);
        chain.push_str(&format!(
            ",aresample={OVERSAMPLED_RATE},alimiter=limit={limit:.4}:level=false"
        ));
    }
    chain
}

/// `loudnorm` told what the first pass measured, as its second pass is run.
fn loudnorm(target: Loudness, measured: Measured) -> String {
    // loudnorm's own ranges for the measurements; its relative gate is 10 LU below.
    let integrated = measured.integrated.clamp(-99.0, 0.0);
    format!(
        "loudnorm=I={:.1}:TP={:.1}:LRA={:.1}:measured_I={integrated:.2}:measured_TP={:.2}:\
         measured_LRA={:.2}:measured_thresh={:.2}:offset=0:linear=true",
        target.integrated,
        target.true_peak,
        target.range,
        measured.true_peak.clamp(-99.0, 99.0),
        measured.range.clamp(0.0, 99.0),
        (integrated - 10.0).max(-99.0),
    )
}

/// The meter's latest reading: the one on its last frame covers the whole pass.
#[derive(Default)]
struct Meter {
    last: Option<Measured>,
    decoded: f64,
}

impl Meter {
    fn read(&mut self, graph: &mut filter::Graph) -> Result<(), AvError> {
        let mut metered = frame::Audio::empty();
        loop {
            match graph
                .get("out")
                .expect("graph has an output")
                .sink()
                .frame(&mut metered)
            {
                Ok(()) => {
                    let metadata = metered.metadata();
                    let value = |key: &str| metadata.get(key).and_then(|v| v.parse::<f64>().ok());
                    if let (Some(integrated), Some(range), Some(peak)) = (
                        value("lavfi.r128.I"),
                        value("lavfi.r128.LRA"),
                        value("lavfi.r128.true_peak"),
                    ) {
                        self.last = Some(Measured {
                            integrated,
                            range,
                            // Linear in the metadata.
                            true_peak: if peak > 0.0 {
                                20.0 * peak.log10()
                            } else {
                                -99.0
                            },
                        });
                    }
                }
                Err(AvError::Eof) => return Ok(()),
                Err(AvError::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    return Ok(());
                }
                Err(error) => return Err(error),
            }
        }
    }
}
