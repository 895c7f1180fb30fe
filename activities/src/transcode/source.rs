//! The source side: a video opened with only the accepted demuxers and audio decoders, and
//! the chosen part of its best audio stream decoded frame by frame, with progress.
//!
//! A trim seeks to a little before its start (so that the decoder has settled when the kept
//! part begins) and stops reading once past its end; the filter graph cuts at the exact
//! sample (`atrim`). The end of the decoded audio is compared with the stream's announced
//! duration, so a truncated file fails instead of yielding a shorter MP3 that claims success.

use super::{TranscodeError, tracks};
use audiomill_domain::output::{AudioTrack, OutputOptions};
use ffmpeg::{ChannelLayout, Error as AvError, Rescale, codec, filter, format, frame};
use ffmpeg_next as ffmpeg;
use std::{ops::ControlFlow, path::PathBuf};

/// Audio this much shorter than announced (or than a trim's end) means it is not there.
const MISSING_AUDIO_TOLERANCE_SECS: f64 = 0.5;

/// How far before a trim's start reading begins: the decoder's warm-up, cut off again.
const SEEK_LEAD_MS: u64 = 1000;

/// Demuxers that may open a source: the accepted containers, nothing else (none that follows
/// a reference to another file or address: no playlists, no concatenation lists).
const DEMUXERS: &str = "mov,mp4,m4a,3gp,3g2,mj2,avi,matroska,webm,mp3,flac,ogg,wav";

/// Decoders that may open: common audio codecs of those containers.
pub(super) const AUDIO_DECODERS: &[&str] = &[
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

/// Where a source is read: a local file, or an object in storage read in place over HTTP (a
/// presigned URL), in the byte ranges the demuxer seeks to. A part of a long source needs
/// only its share of the file, so a worker that does not hold the job reads that much and no
/// more, instead of fetching all of it first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SourceLocation {
    File(PathBuf),
    Url { url: String, size: u64 },
}

impl SourceLocation {
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::File(path.into())
    }

    /// What may fail reading it that is not the media's fault: storage, over the network.
    fn remote(&self) -> bool {
        matches!(self, Self::Url { .. })
    }

    /// A read error: the media's fault (corrupt), unless the bytes never arrived.
    pub(super) fn read_failed(&self, error: AvError) -> TranscodeError {
        if self.remote() && error != AvError::InvalidData {
            storage_failed(error)
        } else {
            TranscodeError::Corrupt(format!("reading failed: {error}"))
        }
    }
}

/// Storage failed under a source read in place: worth another attempt, not the media's fault.
fn storage_failed(error: AvError) -> TranscodeError {
    TranscodeError::Output(format!(
        "the source could not be read from storage: {error}"
    ))
}

/// The source file, its chosen audio stream and that stream's decoder.
pub(super) struct Source {
    pub(super) input: format::context::Input,
    pub(super) input_bytes: u64,
    pub(super) stream_index: usize,
    pub(super) time_base: ffmpeg::Rational,
    pub(super) start_ticks: i64,
    /// The duration the file declares, if it declares one.
    pub(super) expected_secs: Option<f64>,
    pub(super) decoder: codec::decoder::Audio,
    location: SourceLocation,
}

impl Source {
    /// Opens the source at `location` with its audio track `track` (see [`tracks::choose`]).
    pub(super) fn open(
        location: &SourceLocation,
        track: Option<&AudioTrack>,
    ) -> Result<Self, TranscodeError> {
        let input_bytes = match location {
            SourceLocation::File(path) => std::fs::metadata(path)
                .map_err(|e| TranscodeError::Output(format!("the source cannot be read: {e}")))?
                .len(),
            SourceLocation::Url { size, .. } => *size,
        };
        let input = open_source(location)?;
        let chosen = tracks::choose(&input, track)?;
        let stream = input.stream(chosen).ok_or(TranscodeError::NoAudioStream)?;
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
            .and_then(|context| {
                let mut decoder = context.decoder();
                // Frames then carry the packets' timestamps, which a trim cuts by.
                decoder.set_packet_time_base(time_base);
                decoder.audio()
            })
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
            location: location.clone(),
        })
    }

    /// The container's metadata (title, artist, ...), as the demuxer names it.
    pub(super) fn metadata(&self) -> Vec<(String, String)> {
        self.input
            .metadata()
            .iter()
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect()
    }

    /// Seconds from the stream's start to `ticks`.
    fn seconds_at(&self, ticks: i64) -> f64 {
        (ticks - self.start_ticks) as f64 * f64::from(self.time_base)
    }

    /// `abuffer -> chain -> abuffersink` for this source's decoded frames; `sink` sets what the
    /// sink must give (formats, rate) before the graph is configured.
    pub(super) fn filter_graph(
        &self,
        chain: &str,
        sink: impl FnOnce(&mut filter::Context),
    ) -> Result<filter::Graph, AvError> {
        let decoder = &self.decoder;
        let mut graph = filter::Graph::new();
        let args = format!(
            "time_base={}:sample_rate={}:sample_fmt={}:channel_layout=0x{:x}",
            self.time_base,
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
        sink(&mut graph.get("out").ok_or(AvError::FilterNotFound)?);
        graph.output("in", 0)?.input("out", 0)?.parse(chain)?;
        graph.validate()?;
        Ok(graph)
    }

    /// `ms` after the stream's start, in its ticks.
    pub(super) fn ticks_at(&self, ms: u64) -> i64 {
        self.start_ticks + (ms as i64).rescale((1, 1000), self.time_base)
    }

    /// Moves reading to the last point at or before `ms` the container can seek to.
    fn seek_before(&mut self, ms: u64) -> Result<(), TranscodeError> {
        let target = (ms as i64).rescale((1, 1000), ffmpeg::rescale::TIME_BASE);
        self.input
            .seek(target, ..target)
            .map_err(|e| TranscodeError::Corrupt(format!("seeking failed: {e}")))?;
        self.decoder.flush();
        Ok(())
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

/// Opens the source with only the accepted demuxers and audio decoders.
fn open_source(location: &SourceLocation) -> Result<format::context::Input, TranscodeError> {
    open_with_decoders(location, &AUDIO_DECODERS.join(","))
}

/// Opens the source with only the accepted demuxers and `decoders` (comma-separated), and
/// only the protocol its location needs: a URL is ours (presigned by the worker), never one
/// a file names.
pub(super) fn open_with_decoders(
    location: &SourceLocation,
    decoders: &str,
) -> Result<format::context::Input, TranscodeError> {
    let mut options = ffmpeg::Dictionary::new();
    options.set("format_whitelist", DEMUXERS);
    options.set("codec_whitelist", decoders);
    let opened = match location {
        SourceLocation::File(path) => {
            options.set("protocol_whitelist", "file");
            format::input_with_dictionary(path, options)
        }
        SourceLocation::Url { url, .. } => {
            options.set("protocol_whitelist", "http,https,tcp,tls");
            // A connection lost mid-part is taken up again where it stopped.
            options.set("reconnect", "1");
            options.set("reconnect_on_network_error", "1");
            options.set("reconnect_delay_max", "5");
            format::input_with_dictionary(url, options)
        }
    };
    opened.map_err(|error| match error {
        // The worker that planned the parts opened these same bytes: storage is at fault.
        error if location.remote() => storage_failed(error),
        AvError::InvalidData => TranscodeError::Corrupt("the container could not be parsed".into()),
        other => TranscodeError::Unsupported(other.to_string()),
    })
}

/// Refuses an audio codec that is not among the decoders we open.
pub(super) fn check_decoder(id: codec::Id) -> Result<(), TranscodeError> {
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

/// The part of the source the MP3 is made of, in milliseconds from the audio's start.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Trim {
    pub(super) start_ms: Option<u64>,
    pub(super) end_ms: Option<u64>,
}

impl Trim {
    pub(super) fn of(options: &OutputOptions) -> Self {
        Self {
            start_ms: options.start_ms.filter(|ms| *ms > 0),
            end_ms: options.end_ms,
        }
    }

    /// The `atrim` filter that cuts `source`'s frames to this part (by their timestamps, in
    /// seconds, which it turns into a sample); `anull` for the whole.
    pub(super) fn filter(&self, source: &Source) -> String {
        let start = source.start_ticks as f64 * f64::from(source.time_base);
        let at = |ms: u64| start + ms as f64 / 1000.0;
        let mut cut = Vec::new();
        if let Some(start) = self.start_ms {
            cut.push(format!("start={:.6}", at(start)));
        }
        if let Some(end) = self.end_ms {
            cut.push(format!("end={:.6}", at(end)));
        }
        if cut.is_empty() {
            "anull".into()
        } else {
            format!("atrim={}", cut.join(":"))
        }
    }

    /// Fails when the audio (which ended at `reached` seconds) does not reach the trim.
    fn check_reached(&self, reached: f64) -> Result<(), TranscodeError> {
        let seconds = |ms: u64| ms as f64 / 1000.0;
        if let Some(start) = self.start_ms
            && reached <= seconds(start)
        {
            return Err(TranscodeError::Trim(format!(
                "`start` ({} s) is past the end of the audio ({reached:.1} s)",
                seconds(start)
            )));
        }
        if let Some(end) = self.end_ms
            && seconds(end) - reached > MISSING_AUDIO_TOLERANCE_SECS
        {
            return Err(TranscodeError::Trim(format!(
                "`end` ({} s) is past the end of the audio ({reached:.1} s)",
                seconds(end)
            )));
        }
        Ok(())
    }
}

/// Where a pass's progress lands in the whole transcode's percentage.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    pub(super) from: u8,
    pub(super) to: u8,
}

impl Span {
    pub(super) const WHOLE: Span = Span { from: 0, to: 100 };
}

/// Decodes the `trim` part of `source`'s audio, handing each frame to `deliver`, and reports
/// progress within `span` to `on_progress` (which cancels with `Break`).
pub(super) fn decode(
    source: &mut Source,
    trim: Trim,
    span: Span,
    on_progress: &mut dyn FnMut(u8) -> ControlFlow<()>,
    deliver: &mut dyn FnMut(&mut frame::Audio) -> Result<(), TranscodeError>,
) -> Result<(), TranscodeError> {
    if let Some(start) = trim.start_ms {
        source.seek_before(start.saturating_sub(SEEK_LEAD_MS))?;
    }
    let end_ticks = trim.end_ms.map(|end| source.ticks_at(end));
    let mut progress = Progress::new(source, trim, span);
    let mut decoded = frame::Audio::empty();
    let undecodable =
        |e: AvError| TranscodeError::Corrupt(format!("audio could not be decoded: {e}"));
    let read = each_packet(source, &mut progress, on_progress, &mut |source, packet| {
        if let (Some(end), Some(pts)) = (end_ticks, packet.pts())
            && pts > end
        {
            return Ok(ControlFlow::Break(()));
        }
        source.decoder.send_packet(packet).map_err(undecodable)?;
        drain_decoder(&mut source.decoder, &mut decoded, deliver)?;
        Ok(ControlFlow::Continue(()))
    })?;
    source.decoder.send_eof().map_err(undecodable)?;
    drain_decoder(&mut source.decoder, &mut decoded, deliver)?;
    if read.is_continue() {
        source.check_complete(progress.last_end_ticks)?;
        let reached = progress
            .last_end_ticks
            .map_or(0.0, |end| source.seconds_at(end));
        trim.check_reached(reached)?;
    }
    Ok(())
}

/// Hands each packet of the audio stream to `deliver` as it is (for stream copy), with progress
/// and the same check of the end as decoding makes.
pub(super) fn read_packets(
    source: &mut Source,
    on_progress: &mut dyn FnMut(u8) -> ControlFlow<()>,
    deliver: &mut dyn FnMut(&mut ffmpeg::Packet) -> Result<(), TranscodeError>,
) -> Result<(), TranscodeError> {
    let mut progress = Progress::new(source, Trim::default(), Span::WHOLE);
    // `deliver` never stops the reading: it runs to the end.
    let _read = each_packet(source, &mut progress, on_progress, &mut |_, packet| {
        deliver(packet).map(|()| ControlFlow::Continue(()))
    })?;
    source.check_complete(progress.last_end_ticks)
}

/// What [`each_packet`] hands each audio packet to: `Break` stops the reading.
type PacketHandler<'a> =
    dyn FnMut(&mut Source, &mut ffmpeg::Packet) -> Result<ControlFlow<()>, TranscodeError> + 'a;

/// Reads `source` to its end, or until `each` breaks (`Break` then), handing `each` the audio
/// stream's packets. Every packet, whatever its stream, is a chance to cancel.
fn each_packet(
    source: &mut Source,
    progress: &mut Progress,
    on_progress: &mut dyn FnMut(u8) -> ControlFlow<()>,
    each: &mut PacketHandler,
) -> Result<ControlFlow<()>, TranscodeError> {
    loop {
        let mut packet = ffmpeg::Packet::empty();
        match packet.read(&mut source.input) {
            Ok(()) => {}
            Err(AvError::Eof) => return Ok(ControlFlow::Continue(())),
            Err(error) => return Err(source.location.read_failed(error)),
        }
        if on_progress(progress.after(&packet, source)).is_break() {
            return Err(TranscodeError::Cancelled);
        }
        if packet.stream() == source.stream_index && each(source, &mut packet)?.is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
}

/// Hands every frame the decoder has ready to `deliver`, timestamped.
fn drain_decoder(
    decoder: &mut codec::decoder::Audio,
    decoded: &mut frame::Audio,
    deliver: &mut dyn FnMut(&mut frame::Audio) -> Result<(), TranscodeError>,
) -> Result<(), TranscodeError> {
    loop {
        match decoder.receive_frame(decoded) {
            Ok(()) => {
                let timestamp = decoded.timestamp();
                decoded.set_pts(timestamp);
                deliver(decoded)?;
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

/// How far a pass is: from the audio's timestamps when the duration is known (within the
/// trim), else from the bytes read. It never goes back, and reaches the span's end only when
/// the pass is done.
struct Progress {
    last_end_ticks: Option<i64>,
    percent: u8,
    /// Seconds of audio where the pass starts and ends, when known.
    from_secs: f64,
    to_secs: Option<f64>,
    span: Span,
}

impl Progress {
    fn new(source: &Source, trim: Trim, span: Span) -> Self {
        let from_secs = trim.start_ms.map_or(0.0, |ms| ms as f64 / 1000.0);
        let end_secs = trim.end_ms.map(|ms| ms as f64 / 1000.0);
        let to_secs = match (source.expected_secs, end_secs) {
            (Some(total), Some(end)) => Some(total.min(end)),
            (total, end) => total.or(end),
        };
        Self {
            last_end_ticks: None,
            percent: span.from,
            from_secs,
            to_secs: to_secs.filter(|to| *to > from_secs),
            span,
        }
    }

    fn after(&mut self, packet: &ffmpeg::Packet, source: &Source) -> u8 {
        let mut done = None;
        if packet.stream() == source.stream_index
            && let Some(pts) = packet.pts()
        {
            let end = pts + packet.duration().max(0);
            self.last_end_ticks = Some(self.last_end_ticks.map_or(end, |last| last.max(end)));
            done = self
                .to_secs
                .map(|to| (source.seconds_at(end) - self.from_secs) / (to - self.from_secs));
        }
        if self.to_secs.is_none() && packet.position() > 0 {
            done = Some(packet.position() as f64 / source.input_bytes.max(1) as f64);
        }
        if let Some(done) = done {
            let width = f64::from(self.span.to - self.span.from);
            let at = f64::from(self.span.from) + done.clamp(0.0, 1.0) * width;
            self.percent = self
                .percent
                .max((at as u8).min(self.span.to.saturating_sub(1)));
        }
        self.percent
    }
}
