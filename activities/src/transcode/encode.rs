//! The MP3 side: a filter graph (trim, loudness, then resampling, remixing and cutting the
//! 1152-sample frames libmp3lame needs) in front of LAME, set up as `ffmpeg -c:a libmp3lame`
//! would be, and the MP3 muxer, within the [`MediaLimits`] on what a file may turn into.

use super::{MediaLimits, TranscodeError, TranscodeReport, source::Source, tags::Id3};
use audiomill_domain::output::{BitrateMode, MPEG1_BITRATES, MPEG2_BITRATES, OutputOptions};
use ffmpeg::{ChannelLayout, Error as AvError, codec, filter, format, frame};
use ffmpeg_next as ffmpeg;
use std::path::Path;

/// LAME's `FF_QP2LAMBDA`: libavcodec's scale for `global_quality`.
pub(super) const QP2LAMBDA: usize = 118;

/// The MP3 side: the libmp3lame encoder for `source`'s audio, set up as `ffmpeg -c:a
/// libmp3lame` would be told: VBR with `-q:a`, CBR with `-b:a`, ABR with `-b:a -abr 1`, and
/// `-ar`, `-ac`.
fn mp3_encoder(
    octx: &mut format::context::Output,
    decoder: &codec::decoder::Audio,
    options: &OutputOptions,
) -> Result<codec::encoder::Audio, TranscodeError> {
    let lame = ffmpeg::encoder::find_by_name("libmp3lame")
        .ok_or_else(|| TranscodeError::Output("the libmp3lame encoder is not available".into()))?
        .audio()
        .map_err(output_error)?;
    let mut ost = octx.add_stream(lame).map_err(output_error)?;
    // The muxer names the encoder in the LAME tag from this, as `ffmpeg` does: the same
    // settings then make the same MP3 frames as the CLI, byte for byte.
    let version = ffmpeg::codec::version();
    let mut metadata = ffmpeg::Dictionary::new();
    metadata.set(
        "encoder",
        &format!(
            "Lavc{}.{}.{} libmp3lame",
            version >> 16,
            (version >> 8) & 0xff,
            version & 0xff
        ),
    );
    ost.set_metadata(metadata);
    let mut encoder = codec::context::Context::new_with_codec(*lame)
        .encoder()
        .audio()
        .map_err(output_error)?;
    let rate = mp3_rate(&lame, decoder, options);
    let layout = output_layout(&lame, decoder, options);
    encoder.set_rate(rate as i32);
    encoder.set_channel_layout(layout);
    encoder.set_channels(layout.channels());
    // The decoder's own format when LAME takes it, as `ffmpeg` chooses: a mix-down then
    // rounds exactly as the CLI's does.
    let formats: Vec<_> = lame.formats().into_iter().flatten().collect();
    encoder.set_format(
        formats
            .iter()
            .copied()
            .find(|format| *format == decoder.format())
            .or_else(|| formats.first().copied())
            .ok_or_else(|| TranscodeError::Output("libmp3lame offers no sample format".into()))?,
    );
    encoder.set_time_base((1, rate as i32));
    let mut private = ffmpeg::Dictionary::new();
    match (options.bitrate_mode, options.bitrate) {
        (BitrateMode::Cbr | BitrateMode::Abr, Some(kbps)) => {
            encoder.set_bit_rate(usize::from(kbps) * 1000);
            if options.bitrate_mode == BitrateMode::Abr {
                private.set("abr", "1");
            }
        }
        _ => {
            encoder.set_flags(codec::flag::Flags::QSCALE);
            encoder.set_quality(usize::from(options.quality.min(9)) * QP2LAMBDA);
        }
    }
    let encoder = encoder.open_as_with(lame, private).map_err(output_error)?;
    ost.set_parameters(&encoder);
    ost.set_time_base((1, rate as i32));
    Ok(encoder)
}

/// The MP3's sample rate: as asked, else the source's, the nearest LAME encodes (and one
/// whose MPEG version has the CBR bitrate asked for).
fn mp3_rate(lame: &codec::Audio, decoder: &codec::decoder::Audio, options: &OutputOptions) -> u32 {
    let rate = pick_rate(lame, options.sample_rate.unwrap_or(decoder.rate()));
    match (options.bitrate_mode, options.bitrate) {
        (BitrateMode::Cbr, Some(kbps)) => rate_for_bitrate(rate, kbps),
        _ => rate,
    }
}

/// The MP3's sample rate and the samples in each of its frames (1152 for MPEG-1 rates,
/// 576 below 32 kHz), for `decoder`'s audio encoded as `options` say.
pub(super) fn mp3_timing(
    decoder: &codec::decoder::Audio,
    options: &OutputOptions,
) -> Result<(u32, u32), TranscodeError> {
    let lame = ffmpeg::encoder::find_by_name("libmp3lame")
        .ok_or_else(|| TranscodeError::Output("the libmp3lame encoder is not available".into()))?
        .audio()
        .map_err(output_error)?;
    let rate = mp3_rate(&lame, decoder, options);
    Ok((rate, if rate >= 32_000 { 1152 } else { 576 }))
}

/// The MP3's channel layout: as asked, else the source's, the nearest LAME can encode (more
/// than two channels mixed down to stereo).
fn output_layout(
    lame: &codec::Audio,
    decoder: &codec::decoder::Audio,
    options: &OutputOptions,
) -> ChannelLayout {
    let channels = options
        .channels
        .map_or(decoder.channel_layout().channels(), i32::from);
    lame.channel_layouts()
        .map(|layouts| layouts.best(channels))
        .unwrap_or(ChannelLayout::STEREO)
}

/// The filter that mixes `decoder`'s audio to the MP3's channel layout, for the loudness
/// measurement to hear what LAME will.
pub(super) fn layout_filter(decoder: &codec::decoder::Audio, options: &OutputOptions) -> String {
    let mono = ffmpeg::encoder::find_by_name("libmp3lame")
        .and_then(|lame| lame.audio().ok())
        .map(|lame| output_layout(&lame, decoder, options).channels() == 1)
        .unwrap_or(options.channels == Some(1));
    let layout = if mono { "mono" } else { "stereo" };
    format!("aformat=channel_layouts={layout}")
}

fn output_error(error: AvError) -> TranscodeError {
    TranscodeError::Output(error.to_string())
}

/// The rate for a CBR `kbps`: `rate` when its MPEG version has that bitrate, else the nearest
/// rate of the version that has (an MP3 frame cannot carry 320 kbit/s at 22.05 kHz).
pub fn rate_for_bitrate(rate: u32, kbps: u16) -> u32 {
    let mpeg1 = rate >= 32_000;
    if mpeg1 && !MPEG1_BITRATES.contains(&kbps) && MPEG2_BITRATES.contains(&kbps) {
        24_000
    } else if !mpeg1 && !MPEG2_BITRATES.contains(&kbps) && MPEG1_BITRATES.contains(&kbps) {
        32_000
    } else {
        rate
    }
}

/// The decoder's rate when LAME supports it, else the closest supported one.
fn pick_rate(lame: &codec::Audio, wanted: u32) -> u32 {
    let Some(rates) = lame.rates() else {
        return wanted;
    };
    let rates: Vec<i32> = rates.collect();
    if rates.contains(&(wanted as i32)) {
        return wanted;
    }
    rates
        .into_iter()
        .min_by_key(|rate| (i64::from(*rate) - i64::from(wanted)).abs())
        .map_or(44_100, |rate| rate as u32)
}

/// The source's graph with `chain`, its sink giving what `encoder` takes: LAME's format,
/// layout and rate, in the fixed-size frames it needs (only the last one may be short).
fn filter_graph(
    source: &Source,
    encoder: &codec::encoder::Audio,
    chain: &str,
) -> Result<filter::Graph, AvError> {
    let mut graph = source.filter_graph(chain, |out| {
        out.set_sample_format(encoder.format());
        out.set_channel_layout(encoder.channel_layout());
        out.set_sample_rate(encoder.rate());
    })?;
    graph
        .get("out")
        .ok_or(AvError::FilterNotFound)?
        .sink()
        .set_frame_size(encoder.frame_size());
    Ok(graph)
}

/// Decoder output -> filter graph -> encoder -> muxer.
pub(super) struct Pipeline {
    graph: filter::Graph,
    encoder: codec::encoder::Audio,
    octx: format::context::Output,
    encoder_time_base: ffmpeg::Rational,
    out_time_base: ffmpeg::Rational,
    samples_sent: i64,
    /// Decoded samples allowed (see [`MediaLimits`]).
    max_samples: i64,
    bytes_written: u64,
    max_bytes: u64,
    /// The whole file's samples before this part's first (0 for a whole file).
    samples_before: u64,
    id3: Option<Id3>,
    output: std::path::PathBuf,
}

impl Pipeline {
    /// Creates the MP3 file and everything between `source`'s decoder and it. The muxer
    /// leaves room at the start for `id3` (written by [`Pipeline::finish`]); with none, the
    /// file has no tag at all.
    pub(super) fn open(
        output: &Path,
        source: &Source,
        options: &OutputOptions,
        chain: &str,
        limits: MediaLimits,
        id3: Option<Id3>,
        samples_before: u64,
    ) -> Result<Self, TranscodeError> {
        let mut octx = format::output_as(output, "mp3").map_err(output_error)?;
        let encoder = mp3_encoder(&mut octx, &source.decoder, options)?;
        let graph = filter_graph(source, &encoder, chain).map_err(output_error)?;
        let mut muxer = ffmpeg::Dictionary::new();
        match &id3 {
            Some(id3) => {
                muxer.set("id3v2_version", "4");
                muxer.set("metadata_header_padding", &id3.len().to_string());
            }
            None => muxer.set("id3v2_version", "0"),
        }
        octx.write_header_with(muxer).map_err(output_error)?;
        let rate = encoder.rate() as i32;
        let out_time_base = octx
            .stream(0)
            .map(|s| s.time_base())
            .unwrap_or((1, rate).into());
        Ok(Self {
            graph,
            encoder,
            octx,
            encoder_time_base: (1, rate).into(),
            out_time_base,
            samples_sent: 0,
            // A part of the whole may hold what the whole may, less what comes before it.
            max_samples: limits
                .seconds_for(source.input_bytes)
                .saturating_mul(rate as u64)
                .saturating_sub(samples_before) as i64,
            bytes_written: 0,
            max_bytes: limits.max_output_bytes(),
            samples_before,
            id3,
            output: output.to_owned(),
        })
    }

    /// Flushes the graph and the encoder and closes the file.
    pub(super) fn finish(mut self) -> Result<TranscodeReport, TranscodeError> {
        self.graph
            .get("in")
            .expect("graph has an input")
            .source()
            .flush()
            .map_err(output_error)?;
        self.drain_graph()?;
        self.encoder.send_eof().map_err(output_error)?;
        self.drain_encoder()?;
        self.octx.write_trailer().map_err(output_error)?;
        if self.samples_sent == 0 {
            return Err(TranscodeError::Corrupt("no audio could be decoded".into()));
        }
        if let Some(id3) = &self.id3 {
            id3.write_over_header(&self.output)?;
        }
        // A part's report reaches to its end in the whole file.
        let samples = self.samples_before + self.samples_sent as u64;
        Ok(TranscodeReport {
            duration_ms: samples.saturating_mul(1000) / u64::from(self.encoder.rate().max(1)),
        })
    }

    /// Sends one decoded frame through the graph and on into the MP3.
    pub(super) fn push(&mut self, decoded: &mut frame::Audio) -> Result<(), TranscodeError> {
        self.graph
            .get("in")
            .expect("graph has an input")
            .source()
            .add(decoded)
            .map_err(|e| TranscodeError::Corrupt(format!("audio could not be converted: {e}")))?;
        self.drain_graph()
    }

    fn drain_graph(&mut self) -> Result<(), TranscodeError> {
        let mut filtered = frame::Audio::empty();
        loop {
            let pulled = self
                .graph
                .get("out")
                .expect("graph has an output")
                .sink()
                .frame(&mut filtered);
            match pulled {
                Ok(()) => {
                    // Timestamps count samples, in the encoder's 1/rate time base: monotonic
                    // and gap-free whatever the input's timestamps looked like.
                    filtered.set_pts(Some(self.samples_sent));
                    self.samples_sent += filtered.samples() as i64;
                    if self.samples_sent > self.max_samples {
                        let rate = f64::from(self.encoder.rate().max(1));
                        return Err(TranscodeError::TooLong(format!(
                            "the audio runs longer than the {:.0} s this file may hold",
                            self.max_samples as f64 / rate
                        )));
                    }
                    self.encoder
                        .send_frame(&filtered)
                        .map_err(|e| TranscodeError::Output(e.to_string()))?;
                    self.drain_encoder()?;
                }
                Err(AvError::Eof) => return Ok(()),
                Err(AvError::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    return Ok(());
                }
                Err(error) => return Err(TranscodeError::Output(error.to_string())),
            }
        }
    }

    fn drain_encoder(&mut self) -> Result<(), TranscodeError> {
        let mut encoded = ffmpeg::Packet::empty();
        loop {
            match self.encoder.receive_packet(&mut encoded) {
                Ok(()) => {
                    self.bytes_written += encoded.size() as u64;
                    if self.bytes_written > self.max_bytes {
                        return Err(TranscodeError::TooLong(format!(
                            "the MP3 would be larger than {} MB",
                            self.max_bytes / (1024 * 1024)
                        )));
                    }
                    encoded.set_stream(0);
                    encoded.rescale_ts(self.encoder_time_base, self.out_time_base);
                    encoded
                        .write_interleaved(&mut self.octx)
                        .map_err(|e| TranscodeError::Output(e.to_string()))?;
                }
                Err(AvError::Eof) => return Ok(()),
                Err(AvError::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    return Ok(());
                }
                Err(error) => return Err(TranscodeError::Output(error.to_string())),
            }
        }
    }
}
