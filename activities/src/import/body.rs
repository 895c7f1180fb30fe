//! A video's bytes on their way into storage, checked as they stream: a container we
//! convert, under the size limit, at a minimum pace; and the sentences of those refusals.

use super::{PACE_GRACE, Stop};
use audiomill_domain::container::Container;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

/// Why the body stopped on its way into storage.
#[derive(Debug)]
pub(super) enum BodyStop {
    NotVideo,
    Empty,
    TooLarge,
    TooSlow,
    /// The body broke off: why, in a sentence.
    Broken(String),
}

/// The response's body, checked as it streams: its first bytes a container we convert, no
/// more than `limit` bytes, and a pace of at least `min_rate` bytes a second on average once
/// [`PACE_GRACE`] has passed.
pub(super) fn checked_body<'a>(
    body: BoxStream<'static, Result<Bytes, String>>,
    limit: u64,
    received: &'a AtomicU64,
    min_rate: u64,
) -> impl futures::Stream<Item = Result<Bytes, BodyStop>> + Send + 'a {
    let started = Instant::now();
    let mut head: Vec<u8> = Vec::with_capacity(Container::SNIFFED);
    let mut held: Vec<Bytes> = Vec::new();
    let body = body.map_err(BodyStop::Broken);
    // Chunks are held back until the head is sniffed, then released together.
    let checked = body.map(move |chunk| -> Result<Vec<Bytes>, BodyStop> {
        let chunk = chunk?;
        let seen = received.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
        if seen > limit {
            return Err(BodyStop::TooLarge);
        }
        let elapsed = started.elapsed();
        if elapsed > PACE_GRACE && seen < min_rate.saturating_mul(elapsed.as_secs()) {
            return Err(BodyStop::TooSlow);
        }
        if head.len() >= Container::SNIFFED {
            return Ok(vec![chunk]);
        }
        let missing = Container::SNIFFED - head.len();
        head.extend_from_slice(&chunk[..missing.min(chunk.len())]);
        held.push(chunk);
        if head.len() < Container::SNIFFED {
            return Ok(Vec::new());
        }
        match Container::sniff(&head) {
            Some(_) => Ok(std::mem::take(&mut held)),
            None => Err(BodyStop::NotVideo),
        }
    });
    sniffed_to_the_end(checked, received)
}

/// The chunks, flattened; a body that ended before its head could be sniffed is refused
/// (empty, or too short to be a video).
fn sniffed_to_the_end<'a>(
    checked: impl futures::Stream<Item = Result<Vec<Bytes>, BodyStop>> + Send + 'a,
    received: &'a AtomicU64,
) -> impl futures::Stream<Item = Result<Bytes, BodyStop>> + Send + 'a {
    checked
        .chain(futures::stream::once(async move {
            match received.load(Ordering::Relaxed) {
                0 => Err(BodyStop::Empty),
                n if (n as usize) < Container::SNIFFED => Err(BodyStop::NotVideo),
                _ => Ok(Vec::new()),
            }
        }))
        .map_ok(|chunks| futures::stream::iter(chunks.into_iter().map(Ok)))
        .try_flatten()
}

/// The refusal of a video over `limit`, with the length the server announced, if it did.
pub(super) fn too_large(limit: u64, announced: Option<u64>) -> Stop {
    let announced = announced
        .map(|size| format!(" (the server announced {})", megabytes(size)))
        .unwrap_or_default();
    Stop::Refused(format!(
        "The video is larger than the {} you may import{announced}.",
        megabytes(limit)
    ))
}

/// The refusal of content that is no video: from a link, with the type its server named;
/// else a stored file's (`from_link` false).
pub(super) fn not_video(media_type: Option<&str>, from_link: bool) -> Stop {
    let sent = media_type
        .filter(|t| !t.is_empty())
        .map(|t| format!(" (the server sent {t})"))
        .unwrap_or_default();
    let what = if from_link {
        "The link does not lead to a video or audio file"
    } else {
        "The file is not a video or audio file"
    };
    Stop::Refused(format!(
        "{what}: its content is not MP4, MOV, AVI, MKV, WebM, MP3, M4A, WAV, FLAC or Ogg{sent}."
    ))
}

/// Bytes as people read a limit: MB (of 1024 KiB, as `MAX_FILE_SIZE` counts them), with
/// one decimal.
pub(super) fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
}
