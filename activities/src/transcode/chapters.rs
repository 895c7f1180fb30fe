//! The source's chapters, carried into the output shifted and cut to the trim: as ID3 `CHAP`
//! frames under a `CTOC` in an MP3 (see `tags`), and as the muxer's own chapters in the other
//! formats (MP4 chapter atoms for M4A, `CHAPTERxx` comments for Opus and FLAC). A WAV has no
//! place for them.

use super::source::Trim;
use audiomill_domain::output::clean_tag;
use ffmpeg::{Rational, Rescale, format};
use ffmpeg_next as ffmpeg;

/// The most chapters carried: a real source has tens; a crafted one may claim millions.
const MAX_CHAPTERS: usize = 1000;

/// One chapter of the output, in milliseconds from the output's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Chapter {
    pub(super) start_ms: u64,
    pub(super) end_ms: u64,
    pub(super) title: String,
}

/// `input`'s chapters as the output has them: each moved back by the trim's start and cut at
/// its end; those wholly outside the trim, and empty ones, dropped; their titles cleaned as
/// tags are (`clean_tag`).
pub(super) fn of(input: &format::context::Input, trim: Trim) -> Vec<Chapter> {
    let from = trim.start_ms.unwrap_or(0);
    let to = trim.end_ms.unwrap_or(u64::MAX);
    input
        .chapters()
        .filter_map(|chapter| {
            let millis = |ticks: i64| -> u64 {
                ticks
                    .rescale(chapter.time_base(), Rational::new(1, 1000))
                    .max(0) as u64
            };
            let start = millis(chapter.start()).max(from);
            let end = millis(chapter.end()).min(to);
            let title = chapter
                .metadata()
                .get("title")
                .map(clean_tag)
                .unwrap_or_default();
            (end > start).then(|| Chapter {
                start_ms: start - from,
                end_ms: end - from,
                title,
            })
        })
        .take(MAX_CHAPTERS)
        .collect()
}

/// Gives the muxer `chapters`, before its header is written.
pub(super) fn add_to(
    octx: &mut format::context::Output,
    chapters: &[Chapter],
) -> Result<(), ffmpeg::Error> {
    for (id, chapter) in chapters.iter().enumerate() {
        octx.add_chapter(
            id as i64,
            Rational::new(1, 1000),
            chapter.start_ms as i64,
            chapter.end_ms as i64,
            &chapter.title,
        )?;
    }
    Ok(())
}
