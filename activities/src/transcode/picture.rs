//! The MP3's front-cover picture: one attached to the source (album art), kept as it is when
//! it is a JPEG or PNG of bounded size, or a frame of the video, scaled down and encoded as a
//! JPEG.
//!
//! Only this step decodes video, so only it opens the source with video decoders allowed,
//! and it decodes at most [`MAX_FRAMES`] frames after the point it seeks to.

use super::{
    TranscodeError,
    source::{self, SourceLocation},
};
use audiomill_domain::output::{Cover, OutputOptions};
use ffmpeg::{Error as AvError, Rescale, codec, filter, format, frame, media};
use ffmpeg_next as ffmpeg;
use std::ops::ControlFlow;

/// The longest side of a cover made from a frame, in pixels.
const MAX_SIDE: u32 = 800;

/// A source's own picture larger than this is re-encoded like a frame.
const MAX_KEPT_BYTES: usize = 1024 * 1024;

/// Frames decoded at most while looking for one that is not black (about ten seconds).
const MAX_FRAMES: usize = 300;

/// A frame is black when this share of its pixels is darker than [`BLACK_LUMA`].
const BLACK_SHARE: f64 = 0.98;
const BLACK_LUMA: u8 = 32;

/// JPEG quality on FFmpeg's `-q:v` scale (2 best, 31 worst).
const JPEG_QSCALE: i32 = 3;

/// Video decoders the frame grab may open: the common codecs of the accepted containers.
const VIDEO_DECODERS: &[&str] = &[
    "h264",
    "hevc",
    "mpeg4",
    "msmpeg4v1",
    "msmpeg4v2",
    "msmpeg4",
    "h263",
    "mpeg1video",
    "mpeg2video",
    "vp8",
    "vp9",
    "libdav1d",
    "libaom-av1",
    "av1",
    "mjpeg",
    "png",
    "theora",
    "prores",
    "dvvideo",
    "wmv1",
    "wmv2",
    "wmv3",
    "vc1",
    "bmp",
];

/// An encoded picture, ready to be attached.
#[derive(Debug, Clone)]
pub(super) struct Picture {
    /// `image/jpeg` or `image/png`.
    pub(super) mime_type: &'static str,
    pub(super) data: Vec<u8>,
    /// Pixels; 0 when not known.
    pub(super) width: u32,
    pub(super) height: u32,
}

/// The picture `options` ask for, if there is one to take. A frame at `cover_at` past the end
/// of the video, or a frame asked of a file with no video, fails the job.
pub(super) fn choose(
    input: &SourceLocation,
    options: &OutputOptions,
    on_progress: &mut dyn FnMut(u8) -> ControlFlow<()>,
) -> Result<Option<Picture>, TranscodeError> {
    if options.strip {
        return Ok(None);
    }
    match options.cover {
        Cover::None => Ok(None),
        Cover::Source => attached(input),
        Cover::Frame => frame_at(input, options.cover_at_ms, on_progress).map(Some),
    }
}

fn open(input: &SourceLocation) -> Result<format::context::Input, TranscodeError> {
    let decoders: Vec<&str> = source::AUDIO_DECODERS
        .iter()
        .chain(VIDEO_DECODERS)
        .copied()
        .collect();
    source::open_with_decoders(input, &decoders.join(","))
}

/// The source's attached picture: as it is when a JPEG or PNG of bounded size, else decoded
/// and re-encoded; `None` when it has none or it cannot be read (the MP3 is made regardless).
fn attached(input: &SourceLocation) -> Result<Option<Picture>, TranscodeError> {
    let mut context = open(input)?;
    let Some(stream) = context.streams().find(|s| {
        s.disposition()
            .contains(format::stream::Disposition::ATTACHED_PIC)
    }) else {
        return Ok(None);
    };
    let (index, codec) = (stream.index(), stream.parameters().id());
    let mut decoder = video_decoder(&stream);
    // The demuxer queues attached pictures ahead of everything else it reads.
    let Some(data) = context
        .packets()
        .take(64)
        .find(|(stream, _)| stream.index() == index)
        .and_then(|(_, packet)| packet.data().map(<[u8]>::to_vec))
    else {
        return Ok(None);
    };
    let mime_type = match codec {
        codec::Id::MJPEG => Some("image/jpeg"),
        codec::Id::PNG => Some("image/png"),
        _ => None,
    };
    if let Some(mime_type) = mime_type
        && data.len() <= MAX_KEPT_BYTES
    {
        let (width, height) = decoder
            .as_ref()
            .map_or((0, 0), |decoder| (decoder.width(), decoder.height()));
        return Ok(Some(Picture {
            mime_type,
            data,
            width,
            height,
        }));
    }
    let Ok(decoder) = decoder.as_mut() else {
        return Ok(None);
    };
    let mut decoded = frame::Video::empty();
    let got = decoder
        .send_packet(&ffmpeg::Packet::copy(&data))
        .and_then(|()| decoder.send_eof())
        .and_then(|()| decoder.receive_frame(&mut decoded));
    if got.is_err() {
        return Ok(None);
    }
    let scaled = scale(&decoded, (1, 25).into()).map_err(picture_error)?;
    jpeg(&scaled).map(Some)
}

fn video_decoder(stream: &format::stream::Stream) -> Result<codec::decoder::Video, AvError> {
    codec::context::Context::from_parameters(stream.parameters())?
        .decoder()
        .video()
}

/// The video stream a cover frame comes from (not an attached picture): its index, time
/// base, start in its ticks, and a decoder.
fn video_stream(
    context: &format::context::Input,
) -> Result<(usize, ffmpeg::Rational, i64, codec::decoder::Video), TranscodeError> {
    let stream = context
        .streams()
        .filter(|s| {
            !s.disposition()
                .contains(format::stream::Disposition::ATTACHED_PIC)
        })
        .find(|s| s.parameters().medium() == media::Type::Video)
        .ok_or_else(|| {
            TranscodeError::Trim("`cover=frame` needs a video, and the file has none".into())
        })?;
    let start_ticks = if stream.start_time() == i64::MIN {
        0
    } else {
        stream.start_time()
    };
    let decoder = video_decoder(&stream)
        .map_err(|e| TranscodeError::Unsupported(format!("the video cannot be decoded: {e}")))?;
    Ok((stream.index(), stream.time_base(), start_ticks, decoder))
}

/// A frame of the video: the first at or after `at_ms`, or, with no `at_ms`, the first that
/// is not black from a tenth of the way in (the brightest of [`MAX_FRAMES`] if all are).
fn frame_at(
    input: &SourceLocation,
    at_ms: Option<u64>,
    on_progress: &mut dyn FnMut(u8) -> ControlFlow<()>,
) -> Result<Picture, TranscodeError> {
    let mut context = open(input)?;
    let (index, time_base, start_ticks, mut decoder) = video_stream(&context)?;
    let target_ms = seek_to_cover(&mut context, at_ms);
    let target_ticks = start_ticks + (target_ms as i64).rescale((1, 1000), time_base);

    let mut best: Option<(f64, frame::Video)> = None;
    let mut looked = 0;
    let mut decoded = frame::Video::empty();
    let mut last_seen_ms = 0;
    let mut take = |decoded: &frame::Video, best: &mut Option<(f64, frame::Video)>| {
        let Some(pts) = decoded.timestamp() else {
            return Ok::<bool, TranscodeError>(false);
        };
        last_seen_ms = (pts - start_ticks).max(0).rescale(time_base, (1, 1000)) as u64;
        if pts < target_ticks {
            return Ok(false);
        }
        looked += 1;
        let scaled = scale(decoded, time_base).map_err(picture_error)?;
        let light = light_share(&scaled);
        if best.as_ref().is_none_or(|(l, _)| light > *l) {
            *best = Some((light, scaled));
        }
        // A place chosen by hand is taken as it is; otherwise a frame that is not black.
        Ok(at_ms.is_some() || light >= 1.0 - BLACK_SHARE || looked >= MAX_FRAMES)
    };
    let mut done = false;
    for (stream, packet) in context.packets() {
        if on_progress(0).is_break() {
            return Err(TranscodeError::Cancelled);
        }
        if stream.index() != index {
            continue;
        }
        if decoder.send_packet(&packet).is_err() {
            continue;
        }
        while decoder.receive_frame(&mut decoded).is_ok() {
            if take(&decoded, &mut best)? {
                done = true;
                break;
            }
        }
        if done {
            break;
        }
    }
    if !done {
        let _ = decoder.send_eof();
        while decoder.receive_frame(&mut decoded).is_ok() {
            if take(&decoded, &mut best)? {
                break;
            }
        }
    }
    match best {
        Some((_, frame)) => jpeg(&frame),
        None => Err(no_cover_frame(at_ms, last_seen_ms)),
    }
}

/// Seeks to where the cover is looked for: `at_ms`, or a tenth of the way in; that place.
fn seek_to_cover(context: &mut format::context::Input, at_ms: Option<u64>) -> u64 {
    let duration_ms = (context.duration() > 0).then(|| {
        context
            .duration()
            .rescale(ffmpeg::rescale::TIME_BASE, (1, 1000))
    });
    let target_ms = at_ms.unwrap_or_else(|| duration_ms.map_or(0, |ms| ms as u64 / 10));
    if target_ms > 0 {
        let target = (target_ms as i64).rescale((1, 1000), ffmpeg::rescale::TIME_BASE);
        // A seek that fails reads from the start instead: slower, never wrong.
        let _ = context.seek(target, ..target);
    }
    target_ms
}

/// Why no cover frame was found: the place asked for is past the video's last frame (seen at
/// `last_seen_ms`), or no frame decoded at all.
fn no_cover_frame(at_ms: Option<u64>, last_seen_ms: u64) -> TranscodeError {
    TranscodeError::Trim(match at_ms {
        Some(ms) => format!(
            "`cover_at` ({} s) is past the end of the video ({:.1} s)",
            ms as f64 / 1000.0,
            last_seen_ms as f64 / 1000.0
        ),
        None => "no frame of the video could be decoded for the cover".into(),
    })
}

/// `decoded` within [`MAX_SIDE`] (aspect kept, never enlarged), in the full-range YUV 4:2:0
/// a JPEG holds.
fn scale(decoded: &frame::Video, time_base: ffmpeg::Rational) -> Result<frame::Video, AvError> {
    let mut graph = filter::Graph::new();
    let aspect = decoded.aspect_ratio();
    let args = format!(
        "video_size={}x{}:pix_fmt={}:time_base={}:pixel_aspect={}/{}",
        decoded.width(),
        decoded.height(),
        ffmpeg::ffi::AVPixelFormat::from(decoded.format()) as i32,
        time_base,
        aspect.numerator().max(1),
        aspect.denominator().max(1),
    );
    graph.add(
        &filter::find("buffer").ok_or(AvError::FilterNotFound)?,
        "in",
        &args,
    )?;
    graph.add(
        &filter::find("buffersink").ok_or(AvError::FilterNotFound)?,
        "out",
        "",
    )?;
    graph.output("in", 0)?.input("out", 0)?.parse(&format!(
        "scale=w='min({MAX_SIDE},iw)':h='min({MAX_SIDE},ih)':force_original_aspect_ratio=decrease,\
         format=yuvj420p"
    ))?;
    graph.validate()?;
    graph
        .get("in")
        .ok_or(AvError::FilterNotFound)?
        .source()
        .add(decoded)?;
    let mut scaled = frame::Video::empty();
    graph
        .get("out")
        .ok_or(AvError::FilterNotFound)?
        .sink()
        .frame(&mut scaled)?;
    Ok(scaled)
}

/// The share of `frame`'s pixels (full-range luma) that are not dark.
fn light_share(frame: &frame::Video) -> f64 {
    let (width, height) = (frame.width() as usize, frame.height() as usize);
    let stride = frame.stride(0);
    let luma = frame.data(0);
    let light: usize = (0..height)
        .map(|row| {
            luma[row * stride..row * stride + width]
                .iter()
                .filter(|y| **y >= BLACK_LUMA)
                .count()
        })
        .sum();
    light as f64 / (width * height).max(1) as f64
}

/// `frame` (full-range 4:2:0) as a baseline JPEG.
fn jpeg(frame: &frame::Video) -> Result<Picture, TranscodeError> {
    let codec = ffmpeg::encoder::find(codec::Id::MJPEG)
        .ok_or_else(|| TranscodeError::Output("the JPEG encoder is not available".into()))?;
    let mut encoder = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(picture_error)?;
    encoder.set_width(frame.width());
    encoder.set_height(frame.height());
    encoder.set_format(frame.format());
    encoder.set_time_base((1, 25));
    // A fixed quantiser: the frame carries no quality of its own, so the encoder keeps to
    // the bounds, and equal bounds make it this one.
    encoder.set_flags(codec::flag::Flags::QSCALE);
    encoder.set_qmin(JPEG_QSCALE);
    encoder.set_qmax(JPEG_QSCALE);
    let mut encoder = encoder.open_as(codec).map_err(picture_error)?;
    let mut frame = frame.clone();
    frame.set_pts(Some(0));
    let mut packet = ffmpeg::Packet::empty();
    encoder
        .send_frame(&frame)
        .and_then(|()| encoder.send_eof())
        .and_then(|()| encoder.receive_packet(&mut packet))
        .map_err(picture_error)?;
    Ok(Picture {
        mime_type: "image/jpeg",
        data: packet.data().unwrap_or_default().to_vec(),
        width: frame.width(),
        height: frame.height(),
    })
}

fn picture_error(error: AvError) -> TranscodeError {
    TranscodeError::Output(format!("the cover picture could not be made: {error}"))
}

impl Picture {
    /// The picture as a FLAC `PICTURE` metadata block's body (front cover), which is how an
    /// Ogg stream's Vorbis comments carry one.
    pub(super) fn flac_block(&self) -> Vec<u8> {
        const FRONT_COVER: u32 = 3;
        let mut block = Vec::with_capacity(32 + self.mime_type.len() + self.data.len());
        block.extend_from_slice(&FRONT_COVER.to_be_bytes());
        block.extend_from_slice(&(self.mime_type.len() as u32).to_be_bytes());
        block.extend_from_slice(self.mime_type.as_bytes());
        // No description; then width, height, colour depth and palette size.
        for n in [0, self.width, self.height, 24, 0, self.data.len() as u32] {
            block.extend_from_slice(&n.to_be_bytes());
        }
        block.extend_from_slice(&self.data);
        block
    }
}
