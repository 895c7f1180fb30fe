//! A source's audio tracks: listed as its container describes them, and the one a job converts
//! chosen: the one `audio_track` names, else the one the container marks default, else the
//! first.

use super::TranscodeError;
use audiomill_domain::output::{AudioTrack, SourceTrack};
use ffmpeg::{codec, format, media};
use ffmpeg_next as ffmpeg;

/// The most tracks listed: a real source has a handful; a crafted one may claim thousands.
const MAX_LISTED: usize = 32;

/// `input`'s audio streams, in the file's order.
fn audio_streams(input: &format::context::Input) -> Vec<format::stream::Stream<'_>> {
    input
        .streams()
        .filter(|stream| stream.parameters().medium() == media::Type::Audio)
        .collect()
}

/// `input`'s audio tracks as `/status` lists them.
pub(super) fn list(input: &format::context::Input) -> Vec<SourceTrack> {
    audio_streams(input)
        .iter()
        .take(MAX_LISTED)
        .enumerate()
        .map(|(index, stream)| {
            let metadata = stream.metadata();
            let tag = |name: &str| {
                metadata
                    .get(name)
                    .map(|value| {
                        value
                            .chars()
                            .filter(|c| !c.is_control())
                            .take(256)
                            .collect()
                    })
                    .filter(|value: &String| !value.is_empty())
            };
            let parameters = stream.parameters();
            // The channel count is the opened decoder's: only one of those that may open.
            let channels = match super::source::check_decoder(parameters.id()) {
                Ok(()) => codec::context::Context::from_parameters(parameters.clone())
                    .and_then(|context| context.decoder().audio())
                    .map_or(0, |decoder| decoder.channels()),
                Err(_) => 0,
            };
            SourceTrack {
                index: index as u32,
                language: tag("language").filter(|language| language != "und"),
                codec: parameters.id().name().to_owned(),
                channels,
                title: tag("title"),
                default: stream
                    .disposition()
                    .contains(format::stream::Disposition::DEFAULT),
            }
        })
        .collect()
}

/// The stream index of the audio track `wanted` names, else of the one marked default, else
/// of the first; a track that is not there is refused with a sentence listing those that are.
pub(super) fn choose(
    input: &format::context::Input,
    wanted: Option<&AudioTrack>,
) -> Result<usize, TranscodeError> {
    let streams = audio_streams(input);
    let first = streams.first().ok_or(TranscodeError::NoAudioStream)?;
    let chosen = match wanted {
        None => streams
            .iter()
            .find(|s| {
                s.disposition()
                    .contains(format::stream::Disposition::DEFAULT)
            })
            .unwrap_or(first),
        Some(AudioTrack::Index(n)) => streams.get(*n as usize).ok_or_else(|| {
            TranscodeError::Track(format!(
                "there is no audio track {n}: {}",
                described(&list(input))
            ))
        })?,
        Some(track @ AudioTrack::Language(code)) => streams
            .iter()
            .find(|s| {
                s.metadata()
                    .get("language")
                    .is_some_and(|l| track.speaks(l))
            })
            .ok_or_else(|| {
                TranscodeError::Track(format!(
                    "no audio track is in `{code}`: {}",
                    described(&list(input))
                ))
            })?,
    };
    Ok(chosen.index())
}

/// "the source has 2 audio tracks: 0 (eng), 1 (deu)".
fn described(tracks: &[SourceTrack]) -> String {
    let each: Vec<String> = tracks
        .iter()
        .map(|track| match &track.language {
            Some(language) => format!("{} ({language})", track.index),
            None => track.index.to_string(),
        })
        .collect();
    match tracks.len() {
        1 => format!("the source has one audio track: {}", each.join(", ")),
        n => format!("the source has {n} audio tracks: {}", each.join(", ")),
    }
}
