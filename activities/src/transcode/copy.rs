//! Stream copy: when the output's format can carry the source's audio as it is and nothing
//! asked needs its samples, the audio packets go into the output's muxer untouched, with the
//! tags, cover and chapters a transcode would give it. The sound is the source's, bit for bit,
//! and the job takes the time of reading the file.

use super::{
    MediaLimits, TranscodeError, TranscodeReport, encode,
    source::{self, Source},
    tags::Tagging,
};
use audiomill_domain::output::{AudioFormat, BitrateMode, OutputOptions};
use ffmpeg::{codec, format};
use ffmpeg_next as ffmpeg;
use std::{ops::ControlFlow, path::Path};

/// Whether `source`'s audio goes into the output as it is: its codec is the format's own (MP3;
/// AAC-LC for M4A; Opus; FLAC; 16- or 24-bit PCM for WAV), it has at most two channels, and
/// no choice needs the samples: the format's default encoding, no other sample rate, channel
/// count or bit depth, no trim, no loudness normalisation, and no `reencode`.
pub(super) fn can_copy(source: &Source, options: &OutputOptions) -> bool {
    let decoder = &source.decoder;
    let depth = match decoder.format() {
        ffmpeg::format::Sample::I32(_) => 24,
        _ => 16,
    };
    let codec_fits = match (options.format, decoder.id()) {
        (AudioFormat::Mp3, codec::Id::MP3) => true,
        (AudioFormat::M4a, codec::Id::AAC) => matches!(
            decoder.profile(),
            codec::Profile::AAC(codec::profile::AAC::Low)
        ),
        (AudioFormat::Opus, codec::Id::OPUS) => true,
        (AudioFormat::Flac, codec::Id::FLAC) => true,
        (AudioFormat::Wav, codec::Id::PCM_S16LE | codec::Id::PCM_S24LE) => true,
        _ => false,
    };
    let channels = decoder.channels();
    let untouched = !options.reencode
        && options.normalize.is_none()
        && options.start_ms.is_none()
        && options.end_ms.is_none()
        && options
            .sample_rate
            .is_none_or(|rate| rate == decoder.rate())
        && options
            .channels
            .is_none_or(|wanted| u16::from(wanted) == channels)
        && options.bit_depth.is_none_or(|bits| bits == depth);
    codec_fits && untouched && channels <= 2 && default_encoding(options)
}

/// Whether `options` ask nothing of the encoder beyond what their format does by default.
fn default_encoding(options: &OutputOptions) -> bool {
    let defaults = OutputOptions::default();
    options.bitrate.is_none()
        && options.bitrate_mode == BitrateMode::Vbr
        && (!options.format.is_mp3() || options.quality == defaults.quality)
}

/// Writes `source`'s audio packets into `output` as `format`, tagged as `tagging` says, within
/// `limits`; the report says the audio was copied.
pub(super) fn copy(
    mut source: Source,
    output: &Path,
    format: AudioFormat,
    tagging: Option<Tagging>,
    limits: MediaLimits,
    on_progress: &mut dyn FnMut(u8) -> ControlFlow<()>,
) -> Result<TranscodeReport, TranscodeError> {
    let failed = |e: ffmpeg::Error| TranscodeError::Output(e.to_string());
    let mut octx = format::output_as(output, encode::muxer_name(format)).map_err(failed)?;
    let (in_time_base, parameters) = {
        let stream = source
            .input
            .stream(source.stream_index)
            .ok_or(TranscodeError::NoAudioStream)?;
        (stream.time_base(), stream.parameters())
    };
    let mut stream = octx
        .add_stream(ffmpeg::encoder::find(codec::Id::None))
        .map_err(failed)?;
    stream.set_parameters(parameters);
    stream.set_time_base(in_time_base);
    let id3 = encode::start_file(&mut octx, format, tagging)?;
    let out_time_base = octx
        .stream(0)
        .map_or(in_time_base, |stream| stream.time_base());
    let max_seconds = limits.seconds_for(source.input_bytes) as f64;
    let max_bytes = limits.max_output_bytes();
    let (mut bytes, mut first, mut last_end) = (0u64, None::<i64>, 0i64);
    source::read_packets(&mut source, on_progress, &mut |packet| {
        bytes += packet.size() as u64;
        if bytes > max_bytes {
            return Err(TranscodeError::TooLong(format!(
                "the {} would be larger than {} MB",
                format.label(),
                max_bytes / (1024 * 1024)
            )));
        }
        if let Some(pts) = packet.pts() {
            let start = *first.get_or_insert(pts);
            last_end = last_end.max(pts + packet.duration().max(0));
            if (last_end - start) as f64 * f64::from(in_time_base) > max_seconds {
                return Err(TranscodeError::TooLong(format!(
                    "the audio runs longer than the {max_seconds:.0} s this file may hold"
                )));
            }
        }
        packet.rescale_ts(in_time_base, out_time_base);
        packet.set_stream(0);
        packet.set_position(-1);
        packet.write_interleaved(&mut octx).map_err(failed)
    })?;
    octx.write_trailer().map_err(failed)?;
    if bytes == 0 {
        return Err(TranscodeError::Corrupt("the audio track is empty".into()));
    }
    if let Some(id3) = id3 {
        id3.write_over_header(output)?;
    }
    let seconds = (last_end - first.unwrap_or(0)).max(0) as f64 * f64::from(in_time_base);
    let _ = on_progress(100);
    Ok(TranscodeReport {
        duration_ms: (seconds * 1000.0).round() as u64,
        copied: true,
        tracks: Vec::new(),
    })
}
