//! The output side: a filter graph (trim, loudness, then resampling, remixing and cutting the
//! frames the encoder needs) in front of the format's encoder, set up as `ffmpeg -c:a ...`
//! would be, and the format's muxer with its tags, within the [`MediaLimits`] on what a file
//! may turn into.

use super::{
    MediaLimits, TranscodeError, TranscodeReport, chapters,
    source::Source,
    tags::{Id3, MuxedTags, Tagging},
};
use audiomill_domain::output::{
    AudioFormat, BitrateMode, MPEG1_BITRATES, MPEG2_BITRATES, OutputOptions,
};
use ffmpeg::{ChannelLayout, Error as AvError, codec, filter, format, frame};
use ffmpeg_next as ffmpeg;
use std::path::Path;

/// LAME's `FF_QP2LAMBDA`: libavcodec's scale for `global_quality`.
pub(super) const QP2LAMBDA: usize = 118;

/// The muxer FFmpeg writes `format` with.
pub(super) fn muxer_name(format: AudioFormat) -> &'static str {
    match format {
        AudioFormat::Mp3 => "mp3",
        AudioFormat::M4a => "ipod",
        AudioFormat::Opus => "opus",
        AudioFormat::Flac => "flac",
        AudioFormat::Wav => "wav",
    }
}

/// The encoder `options` need: the format's, and for WAV the one of its bit depth.
fn encoder_codec(
    options: &OutputOptions,
    decoder: &codec::decoder::Audio,
) -> Result<codec::Audio, TranscodeError> {
    let name = match options.format {
        AudioFormat::Mp3 => "libmp3lame",
        AudioFormat::M4a => "aac",
        AudioFormat::Opus => "libopus",
        AudioFormat::Flac => "flac",
        AudioFormat::Wav if bit_depth(options, decoder) == 24 => "pcm_s24le",
        AudioFormat::Wav => "pcm_s16le",
    };
    ffmpeg::encoder::find_by_name(name)
        .ok_or_else(|| TranscodeError::Output(format!("the {name} encoder is not available")))?
        .audio()
        .map_err(output_error)
}

/// A lossless output's bits per sample: as asked, else 24 when the source's samples are
/// integers wider than 16 bits (a 24-bit FLAC or WAV), else 16.
fn bit_depth(options: &OutputOptions, decoder: &codec::decoder::Audio) -> u8 {
    options.bit_depth.unwrap_or(match decoder.format() {
        ffmpeg::format::Sample::I32(_) => 24,
        _ => 16,
    })
}

/// The sample format the encoder gets: for FLAC and WAV the one of the bit depth; else the
/// decoder's own when the encoder takes it, as `ffmpeg` chooses (a mix-down then rounds
/// exactly as the CLI's does), else the encoder's first.
fn sample_format(
    codec: &codec::Audio,
    decoder: &codec::decoder::Audio,
    options: &OutputOptions,
) -> Result<ffmpeg::format::Sample, TranscodeError> {
    use ffmpeg::format::sample::{Sample, Type};
    let formats: Vec<_> = codec.formats().into_iter().flatten().collect();
    let wanted = match options.format {
        AudioFormat::Flac | AudioFormat::Wav if bit_depth(options, decoder) == 24 => {
            Sample::I32(Type::Packed)
        }
        AudioFormat::Flac | AudioFormat::Wav => Sample::I16(Type::Packed),
        _ => decoder.format(),
    };
    formats
        .iter()
        .copied()
        .find(|format| *format == wanted)
        .or_else(|| formats.first().copied())
        .ok_or_else(|| TranscodeError::Output("the encoder offers no sample format".into()))
}

/// The encoder for `source`'s audio, set up as `ffmpeg` would be told: an MP3's VBR with
/// `-q:a`, CBR with `-b:a`, ABR with `-b:a -abr 1`; M4A's and Opus's `-b:a` (Opus's mode
/// with `-vbr on|off|constrained`); and `-ar`, `-ac`.
fn audio_encoder(
    octx: &mut format::context::Output,
    decoder: &codec::decoder::Audio,
    options: &OutputOptions,
) -> Result<codec::encoder::Audio, TranscodeError> {
    let codec = encoder_codec(options, decoder)?;
    let global_header = octx.format().flags().contains(format::Flags::GLOBAL_HEADER);
    let mut ost = octx.add_stream(codec).map_err(output_error)?;
    if options.format.is_mp3() {
        name_lame_encoder(&mut ost);
    }
    let mut encoder = codec::context::Context::new_with_codec(*codec)
        .encoder()
        .audio()
        .map_err(output_error)?;
    let rate = output_rate(&codec, decoder, options);
    let layout = output_layout(&codec, decoder, options);
    encoder.set_rate(rate as i32);
    encoder.set_channel_layout(layout);
    encoder.set_channels(layout.channels());
    encoder.set_format(sample_format(&codec, decoder, options)?);
    encoder.set_time_base((1, rate as i32));
    let (mut flags, private) = rate_control(&mut encoder, options);
    if global_header {
        flags |= codec::flag::Flags::GLOBAL_HEADER;
    }
    encoder.set_flags(flags);
    let encoder = encoder.open_as_with(codec, private).map_err(output_error)?;
    ost.set_parameters(&encoder);
    ost.set_time_base((1, rate as i32));
    Ok(encoder)
}

/// How the encoder spends bits: its bitrate or quality, and the flags and private options
/// that say which.
fn rate_control(
    encoder: &mut codec::encoder::audio::Audio,
    options: &OutputOptions,
) -> (codec::flag::Flags, ffmpeg::Dictionary<'static>) {
    let mut flags = codec::flag::Flags::empty();
    let mut private = ffmpeg::Dictionary::new();
    match (options.format, options.bitrate) {
        (AudioFormat::Mp3, _) => match (options.bitrate_mode, options.bitrate) {
            (BitrateMode::Cbr | BitrateMode::Abr, Some(kbps)) => {
                encoder.set_bit_rate(usize::from(kbps) * 1000);
                if options.bitrate_mode == BitrateMode::Abr {
                    private.set("abr", "1");
                }
            }
            _ => {
                flags |= codec::flag::Flags::QSCALE;
                encoder.set_quality(usize::from(options.quality.min(9)) * QP2LAMBDA);
            }
        },
        (AudioFormat::Opus, bitrate) => {
            if let Some(kbps) = bitrate {
                encoder.set_bit_rate(usize::from(kbps) * 1000);
            }
            let mode = match options.bitrate_mode {
                BitrateMode::Vbr => "on",
                BitrateMode::Cbr => "off",
                BitrateMode::Abr => "constrained",
            };
            private.set("vbr", mode);
        }
        (AudioFormat::M4a, Some(kbps)) => encoder.set_bit_rate(usize::from(kbps) * 1000),
        _ => {}
    }
    (flags, private)
}

/// Names the encoder in the MP3's LAME tag as `ffmpeg` does: the same settings then make the
/// same MP3 frames as the CLI, byte for byte.
fn name_lame_encoder(ost: &mut format::stream::StreamMut) {
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
}

/// The output's sample rate: as asked, else the source's, the nearest the encoder takes;
/// for an MP3 also one whose MPEG version has the CBR bitrate asked for.
fn output_rate(
    codec: &codec::Audio,
    decoder: &codec::decoder::Audio,
    options: &OutputOptions,
) -> u32 {
    let rate = pick_rate(codec, options.sample_rate.unwrap_or(decoder.rate()));
    match (options.format, options.bitrate_mode, options.bitrate) {
        (AudioFormat::Mp3, BitrateMode::Cbr, Some(kbps)) => rate_for_bitrate(rate, kbps),
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
    let rate = output_rate(&lame, decoder, options);
    Ok((rate, if rate >= 32_000 { 1152 } else { 576 }))
}

/// The output's channel layout: as asked, else the source's (more than two channels mixed
/// down to stereo), the nearest the encoder takes.
fn output_layout(
    codec: &codec::Audio,
    decoder: &codec::decoder::Audio,
    options: &OutputOptions,
) -> ChannelLayout {
    let channels = options
        .channels
        .map_or(decoder.channel_layout().channels().min(2), i32::from);
    codec
        .channel_layouts()
        .map(|layouts| layouts.best(channels))
        .unwrap_or(if channels == 1 {
            ChannelLayout::MONO
        } else {
            ChannelLayout::STEREO
        })
}

/// The filter that mixes `decoder`'s audio to the output's channel layout, for the loudness
/// measurement to hear what the encoder will.
pub(super) fn layout_filter(decoder: &codec::decoder::Audio, options: &OutputOptions) -> String {
    let mono = encoder_codec(options, decoder)
        .map(|codec| output_layout(&codec, decoder, options).channels() == 1)
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

/// The decoder's rate when the encoder supports it, else the closest supported one.
fn pick_rate(codec: &codec::Audio, wanted: u32) -> u32 {
    let Some(rates) = codec.rates() else {
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

/// The source's graph with `chain`, its sink giving what `encoder` takes: its format, layout
/// and rate, in the fixed-size frames it needs, if it does (only the last one may be short).
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
    if encoder.frame_size() > 0 {
        graph
            .get("out")
            .ok_or(AvError::FilterNotFound)?
            .sink()
            .set_frame_size(encoder.frame_size());
    }
    Ok(graph)
}

/// Sets the muxer up for `tagging` and writes the file's header (and cover, as an attached
/// picture); returns an MP3's ID3 tag, for which the header leaves room (see `tags`).
pub(super) fn start_file(
    octx: &mut format::context::Output,
    format: AudioFormat,
    tagging: Option<Tagging>,
) -> Result<Option<Id3>, TranscodeError> {
    let mut muxer = ffmpeg::Dictionary::new();
    let mut picture = None;
    let id3 = match tagging {
        Some(Tagging::Id3(id3)) => {
            muxer.set("id3v2_version", "4");
            muxer.set("metadata_header_padding", &id3.len().to_string());
            Some(id3)
        }
        Some(Tagging::Muxed(tags)) => {
            picture = muxed_tags(octx, tags)?;
            None
        }
        None if format.is_mp3() => {
            muxer.set("id3v2_version", "0");
            None
        }
        None => {
            // Not even the muxer's own `encoder` tag.
            muxer.set("fflags", "+bitexact");
            None
        }
    };
    if format == AudioFormat::M4a {
        // The index up front, so a player can start before the whole file is in.
        muxer.set("movflags", "+faststart");
    }
    octx.write_header_with(muxer).map_err(output_error)?;
    if let Some((index, data)) = picture {
        let mut packet = ffmpeg::Packet::copy(&data);
        packet.set_stream(index);
        packet.set_pts(Some(0));
        packet.set_dts(Some(0));
        packet.set_flags(ffmpeg::packet::Flags::KEY);
        packet
            .write_interleaved(octx)
            .map_err(|e| TranscodeError::Output(format!("the cover could not be written: {e}")))?;
    }
    Ok(id3)
}

/// Gives the muxer `tags`' metadata, and adds their cover as an attached picture stream;
/// returns that stream's index and the picture, to be written once the header is.
fn muxed_tags(
    octx: &mut format::context::Output,
    tags: MuxedTags,
) -> Result<Option<(usize, Vec<u8>)>, TranscodeError> {
    let mut metadata = ffmpeg::Dictionary::new();
    for (name, value) in &tags.metadata {
        metadata.set(name, value);
    }
    octx.set_metadata(metadata);
    chapters::add_to(octx, &tags.chapters).map_err(output_error)?;
    let Some(picture) = tags.picture else {
        return Ok(None);
    };
    let id = if picture.mime_type == "image/png" {
        codec::Id::PNG
    } else {
        codec::Id::MJPEG
    };
    let Some(codec) = ffmpeg::encoder::find(id) else {
        return Ok(None);
    };
    let mut context = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(output_error)?;
    context.set_width(picture.width);
    context.set_height(picture.height);
    let mut stream = octx.add_stream(codec).map_err(output_error)?;
    stream.set_parameters(&context);
    stream.set_time_base((1, 90_000));
    // FLAC's muxer takes the picture's type from this, by ID3's names; front cover.
    let mut kind = ffmpeg::Dictionary::new();
    kind.set("comment", "Cover (front)");
    stream.set_metadata(kind);
    // The bindings have no setter for a stream's disposition.
    // SAFETY: the stream belongs to `octx`, which outlives this borrow; only its
    // disposition field is written, before the header, as the muxer expects.
    #[allow(unsafe_code)]
    unsafe {
        (*stream.as_mut_ptr()).disposition = ffmpeg::ffi::AV_DISPOSITION_ATTACHED_PIC;
    }
    Ok(Some((stream.index(), picture.data)))
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
    /// An MP3's tag, written over the header the muxer left room for once the audio is in.
    id3: Option<Id3>,
    output: std::path::PathBuf,
    format: AudioFormat,
}

impl Pipeline {
    /// Creates the output file and everything between `source`'s decoder and it, tagged as
    /// `tagging` says; with none, the file has no tags at all.
    pub(super) fn open(
        output: &Path,
        source: &Source,
        options: &OutputOptions,
        chain: &str,
        limits: MediaLimits,
        tagging: Option<Tagging>,
        samples_before: u64,
    ) -> Result<Self, TranscodeError> {
        let format = options.format;
        let mut octx = format::output_as(output, muxer_name(format)).map_err(output_error)?;
        let encoder = audio_encoder(&mut octx, &source.decoder, options)?;
        let graph = filter_graph(source, &encoder, chain).map_err(output_error)?;
        let id3 = start_file(&mut octx, format, tagging)?;
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
            format,
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
            copied: false,
            tracks: Vec::new(),
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
                            "the {} would be larger than {} MB",
                            self.format.label(),
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
