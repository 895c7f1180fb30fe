//! Video to MP3 with FFmpeg's libraries. The worker runs this in a child process of its own
//! (see [`crate::isolated`]), so a decoder that crashes or hangs costs one attempt, never the
//! worker.
//!
//! The best audio stream is decoded, converted by an `abuffer -> abuffersink` filter graph (which
//! resamples, remixes and cuts the 1152-sample frames libmp3lame needs) and encoded with LAME
//! VBR. Every read and decode error is checked, and the end of the decoded audio is compared
//! with the stream's announced duration, so a truncated file fails instead of yielding a
//! shorter MP3 that claims success.
//!
//! Only the demuxers of the accepted containers, the `file` protocol and common audio
//! decoders may be opened, so video streams are never decoded, not even to probe them. What a
//! file may turn into is bounded by [`MediaLimits`]: decoded duration (measured as it decodes,
//! since a file need not declare one), decoded seconds per megabyte of input, and MP3 size.
//! Progress comes from timestamps when the duration is known, else from the bytes read.

use audiomill_domain::output::{BitrateMode, MPEG1_BITRATES, MPEG2_BITRATES, OutputOptions};
use ffmpeg::{ChannelLayout, Error as AvError, codec, filter, format, frame, media};
use ffmpeg_next as ffmpeg;
use std::{ops::ControlFlow, path::Path};

/// LAME's `FF_QP2LAMBDA`: libavcodec's scale for `global_quality`.
const QP2LAMBDA: usize = 118;

/// Audio this much shorter than announced means the file is truncated.
const MISSING_AUDIO_TOLERANCE_SECS: f64 = 0.5;

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

/// Demuxers that may open a source: the accepted containers, nothing else.
const DEMUXERS: &str = "mov,mp4,m4a,3gp,3g2,mj2,avi,matroska,webm";

/// Decoders that may open: common audio codecs of those containers.
const AUDIO_DECODERS: &[&str] = &[
    "aac",
    "aac_fixed",
    "aac_latm",
    "mp3",
    "mp3float",
    "mp2",
    "mp2float",
    "mp1",
    "mp1float",
    "ac3",
    "ac3_fixed",
    "eac3",
    "dca",
    "truehd",
    "mlp",
    "opus",
    "libopus",
    "vorbis",
    "flac",
    "alac",
    "wmav1",
    "wmav2",
    "wmapro",
    "amrnb",
    "amrwb",
    "libopencore_amrnb",
    "libopencore_amrwb",
    "adpcm_ima_wav",
    "adpcm_ima_qt",
    "adpcm_ms",
    "pcm_s16le",
    "pcm_s16be",
    "pcm_s24le",
    "pcm_s24be",
    "pcm_s32le",
    "pcm_s32be",
    "pcm_f32le",
    "pcm_f32be",
    "pcm_f64le",
    "pcm_f64be",
    "pcm_u8",
    "pcm_s8",
    "pcm_alaw",
    "pcm_mulaw",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranscodeReport {
    pub duration_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error("the file is not in a video format that can be read ({0})")]
    Unsupported(String),
    #[error("the file has no audio track to convert")]
    NoAudioStream,
    #[error("the file is damaged or truncated ({0})")]
    Corrupt(String),
    #[error("{0}")]
    TooLong(String),
    #[error("the conversion was cancelled")]
    Cancelled,
    #[error("the MP3 could not be written ({0})")]
    Output(String),
    /// The child process running the transcode died or hung (see `crate::isolated`).
    #[error("{0}")]
    Crashed(String),
}

/// Converts the best audio stream of `input` into the MP3 file `output`.
///
/// `on_progress` receives the percentage done (0-100) after every packet and at the end; it
/// returns `ControlFlow::Break` to cancel. It is called often, so it should be cheap.
pub fn transcode(
    input: &Path,
    output: &Path,
    options: &OutputOptions,
    limits: MediaLimits,
    on_progress: &mut dyn FnMut(u8) -> ControlFlow<()>,
) -> Result<TranscodeReport, TranscodeError> {
    ffmpeg::init().map_err(|e| TranscodeError::Output(format!("FFmpeg did not start: {e}")))?;
    // Our own errors say what went wrong; FFmpeg's per-packet chatter would only flood logs.
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);

    let mut source = Source::open(input)?;
    let mut pipeline = Pipeline::open(output, &source, options, limits)?;
    let mut progress = Progress::default();
    let mut decoded = frame::Audio::empty();
    loop {
        let mut packet = ffmpeg::Packet::empty();
        match packet.read(&mut source.input) {
            Ok(()) => {}
            Err(AvError::Eof) => break,
            Err(error) => return Err(TranscodeError::Corrupt(format!("reading failed: {error}"))),
        }
        // Every packet is a chance to cancel, whatever stream it belongs to.
        if on_progress(progress.after(&packet, &source)).is_break() {
            return Err(TranscodeError::Cancelled);
        }
        if packet.stream() != source.stream_index {
            continue;
        }
        source
            .decoder
            .send_packet(&packet)
            .map_err(|e| TranscodeError::Corrupt(format!("audio could not be decoded: {e}")))?;
        pipeline.drain_decoder(&mut source.decoder, &mut decoded)?;
    }
    source
        .decoder
        .send_eof()
        .map_err(|e| TranscodeError::Corrupt(format!("audio could not be decoded: {e}")))?;
    pipeline.drain_decoder(&mut source.decoder, &mut decoded)?;
    source.check_complete(progress.last_end_ticks)?;
    let report = pipeline.finish()?;
    let _ = on_progress(100);
    Ok(report)
}

/// The source file, its chosen audio stream and that stream's decoder.
struct Source {
    input: format::context::Input,
    input_bytes: u64,
    stream_index: usize,
    time_base: ffmpeg::Rational,
    start_ticks: i64,
    /// The duration the file declares, if it declares one.
    expected_secs: Option<f64>,
    decoder: codec::decoder::Audio,
}

impl Source {
    fn open(path: &Path) -> Result<Self, TranscodeError> {
        let input_bytes = std::fs::metadata(path)
            .map_err(|e| TranscodeError::Output(format!("the source cannot be read: {e}")))?
            .len();
        let input = open_source(path)?;
        let stream = input
            .streams()
            .best(media::Type::Audio)
            .ok_or(TranscodeError::NoAudioStream)?;
        check_decoder(stream.parameters().id())?;
        let time_base = stream.time_base();
        let expected_secs = if stream.duration() > 0 {
            Some(stream.duration() as f64 * f64::from(time_base))
        } else if input.duration() > 0 {
            Some(input.duration() as f64 / f64::from(ffmpeg::ffi::AV_TIME_BASE))
        } else {
            None
        };
        let mut decoder = codec::context::Context::from_parameters(stream.parameters())
            .and_then(|context| context.decoder().audio())
            .map_err(|e| {
                TranscodeError::Unsupported(format!("no decoder for the audio codec: {e}"))
            })?;
        if decoder.channel_layout().is_empty() {
            decoder.set_channel_layout(ChannelLayout::default(i32::from(decoder.channels())));
        }
        Ok(Self {
            stream_index: stream.index(),
            start_ticks: if stream.start_time() == i64::MIN {
                0
            } else {
                stream.start_time()
            },
            time_base,
            expected_secs,
            input_bytes,
            decoder,
            input,
        })
    }

    /// Seconds from the stream's start to `ticks`.
    fn seconds_at(&self, ticks: i64) -> f64 {
        (ticks - self.start_ticks) as f64 * f64::from(self.time_base)
    }

    /// Refuses audio that ends well before the declared duration: a truncated file.
    fn check_complete(&self, last_end_ticks: Option<i64>) -> Result<(), TranscodeError> {
        if let (Some(expected), Some(end)) = (self.expected_secs, last_end_ticks) {
            let got = self.seconds_at(end);
            if expected - got > MISSING_AUDIO_TOLERANCE_SECS {
                return Err(TranscodeError::Corrupt(format!(
                    "the audio stops at {got:.1} s of {expected:.1} s"
                )));
            }
        }
        Ok(())
    }
}

/// How far the transcode is: from the audio's timestamps when the duration is known, else
/// from the bytes read. It never goes back, and says 100 only at the very end.
#[derive(Default)]
struct Progress {
    last_end_ticks: Option<i64>,
    percent: u8,
}

impl Progress {
    fn after(&mut self, packet: &ffmpeg::Packet, source: &Source) -> u8 {
        let mut done = None;
        if packet.stream() == source.stream_index
            && let Some(pts) = packet.pts()
        {
            let end = pts + packet.duration().max(0);
            self.last_end_ticks = Some(self.last_end_ticks.map_or(end, |last| last.max(end)));
            done = source
                .expected_secs
                .filter(|total| *total > 0.0)
                .map(|total| source.seconds_at(end) / total * 100.0);
        }
        if source.expected_secs.is_none() && packet.position() > 0 {
            done = Some(packet.position() as f64 / source.input_bytes.max(1) as f64 * 100.0);
        }
        if let Some(done) = done {
            self.percent = self.percent.max(done.clamp(0.0, 99.0) as u8);
        }
        self.percent
    }
}

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
    let mut rate = pick_rate(&lame, options.sample_rate.unwrap_or(decoder.rate()));
    if let (BitrateMode::Cbr, Some(kbps)) = (options.bitrate_mode, options.bitrate) {
        rate = rate_for_bitrate(rate, kbps);
    }
    let channels = options
        .channels
        .map_or(decoder.channel_layout().channels(), i32::from);
    let layout = lame
        .channel_layouts()
        .map(|layouts| layouts.best(channels))
        .unwrap_or(ChannelLayout::STEREO);
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

fn output_error(error: AvError) -> TranscodeError {
    TranscodeError::Output(error.to_string())
}

/// Opens the source with only the accepted demuxers and audio decoders, from a local file.
fn open_source(input: &Path) -> Result<format::context::Input, TranscodeError> {
    let mut options = ffmpeg::Dictionary::new();
    options.set("format_whitelist", DEMUXERS);
    options.set("codec_whitelist", &AUDIO_DECODERS.join(","));
    options.set("protocol_whitelist", "file");
    format::input_with_dictionary(&input, options).map_err(|error| match error {
        AvError::InvalidData => TranscodeError::Corrupt("the container could not be parsed".into()),
        other => TranscodeError::Unsupported(other.to_string()),
    })
}

/// Refuses an audio codec that is not among the decoders we open.
fn check_decoder(id: codec::Id) -> Result<(), TranscodeError> {
    let name = ffmpeg::decoder::find(id).map(|codec| codec.name().to_owned());
    match name {
        Some(name) if AUDIO_DECODERS.contains(&name.as_str()) => Ok(()),
        Some(name) => Err(TranscodeError::Unsupported(format!(
            "the audio codec {name} is not supported"
        ))),
        None => Err(TranscodeError::Unsupported(
            "no decoder for the audio codec".into(),
        )),
    }
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

fn filter_graph(
    decoder: &codec::decoder::Audio,
    encoder: &codec::encoder::Audio,
    time_base: ffmpeg::Rational,
) -> Result<filter::Graph, AvError> {
    let mut graph = filter::Graph::new();
    let args = format!(
        "time_base={}:sample_rate={}:sample_fmt={}:channel_layout=0x{:x}",
        time_base,
        decoder.rate(),
        decoder.format().name(),
        decoder.channel_layout().bits()
    );
    graph.add(
        &filter::find("abuffer").ok_or(AvError::FilterNotFound)?,
        "in",
        &args,
    )?;
    graph.add(
        &filter::find("abuffersink").ok_or(AvError::FilterNotFound)?,
        "out",
        "",
    )?;
    {
        let mut out = graph.get("out").ok_or(AvError::FilterNotFound)?;
        out.set_sample_format(encoder.format());
        out.set_channel_layout(encoder.channel_layout());
        out.set_sample_rate(encoder.rate());
    }
    graph.output("in", 0)?.input("out", 0)?.parse("anull")?;
    graph.validate()?;
    // Fixed-size frames for LAME; only the last one may be short.
    graph
        .get("out")
        .ok_or(AvError::FilterNotFound)?
        .sink()
        .set_frame_size(encoder.frame_size());
    Ok(graph)
}

/// Decoder output -> filter graph -> encoder -> muxer.
struct Pipeline {
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
}

impl Pipeline {
    /// Creates the MP3 file and everything between `source`'s decoder and it.
    fn open(
        output: &Path,
        source: &Source,
        options: &OutputOptions,
        limits: MediaLimits,
    ) -> Result<Self, TranscodeError> {
        let mut octx = format::output_as(output, "mp3").map_err(output_error)?;
        let encoder = mp3_encoder(&mut octx, &source.decoder, options)?;
        let graph =
            filter_graph(&source.decoder, &encoder, source.time_base).map_err(output_error)?;
        octx.write_header().map_err(output_error)?;
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
            max_samples: limits
                .seconds_for(source.input_bytes)
                .saturating_mul(rate as u64) as i64,
            bytes_written: 0,
            max_bytes: limits.max_output_bytes(),
        })
    }

    /// Flushes the graph and the encoder and closes the file.
    fn finish(mut self) -> Result<TranscodeReport, TranscodeError> {
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
        Ok(TranscodeReport {
            duration_ms: (self.samples_sent as u64).saturating_mul(1000)
                / u64::from(self.encoder.rate().max(1)),
        })
    }

    fn drain_decoder(
        &mut self,
        decoder: &mut codec::decoder::Audio,
        decoded: &mut frame::Audio,
    ) -> Result<(), TranscodeError> {
        loop {
            match decoder.receive_frame(decoded) {
                Ok(()) => {
                    let timestamp = decoded.timestamp();
                    decoded.set_pts(timestamp);
                    self.graph
                        .get("in")
                        .expect("graph has an input")
                        .source()
                        .add(decoded)
                        .map_err(|e| {
                            TranscodeError::Corrupt(format!("audio could not be converted: {e}"))
                        })?;
                    self.drain_graph()?;
                }
                Err(AvError::Eof) => return Ok(()),
                Err(AvError::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    return Ok(());
                }
                Err(error) => {
                    return Err(TranscodeError::Corrupt(format!(
                        "audio could not be decoded: {error}"
                    )));
                }
            }
        }
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
