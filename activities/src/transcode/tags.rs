//! The output's tags and front cover, in its format's own way.
//!
//! An MP3 gets an ID3v2.4 tag: text frames, a comment and the front cover, encoded by the
//! `id3` crate (FFmpeg's muxer can write neither a real comment frame nor a picture without
//! a stream for it). The muxer writes a tag of its own, padded to exactly the size of this
//! one, so that writing this one over it once the audio is done moves no byte of the audio.
//!
//! The other formats' muxers write the tags from the output's metadata under FFmpeg's
//! generic names, each in its own way (MP4 atoms for M4A, Vorbis comments for Opus and FLAC,
//! a RIFF INFO list for WAV); the cover travels as an attached picture (M4A, FLAC) or, in
//! Ogg, as a FLAC picture block in a `METADATA_BLOCK_PICTURE` comment.

use super::{TranscodeError, chapters::Chapter, picture::Picture};
use audiomill_domain::output::AudioFormat;
use base64::Engine;
use id3::{
    Content, Encoder, Frame, Tag, TagLike, Version,
    frame::{Chapter as ChapFrame, Comment, Picture as ApicPicture, PictureType, TableOfContents},
};
use std::{io::Read, path::Path};

/// The ID3 frame each of `audiomill_domain::output::TAG_NAMES` is written as.
fn frame_id(name: &str) -> Option<&'static str> {
    Some(match name {
        "title" => "TIT2",
        "artist" => "TPE1",
        "album" => "TALB",
        "album_artist" => "TPE2",
        "date" => "TDRC",
        "track" => "TRCK",
        "genre" => "TCON",
        "composer" => "TCOM",
        _ => return None,
    })
}

/// How the output is tagged.
pub(super) enum Tagging {
    Id3(Id3),
    /// Written by the muxer: metadata under FFmpeg's names, and the cover.
    Muxed(MuxedTags),
}

impl Tagging {
    pub(super) fn new(
        format: AudioFormat,
        tags: &[(&str, String)],
        picture: Option<Picture>,
        chapters: Vec<Chapter>,
    ) -> Self {
        if format.is_mp3() {
            Tagging::Id3(Id3::new(tags, picture, &chapters))
        } else {
            Tagging::Muxed(MuxedTags::new(format, tags, picture, chapters))
        }
    }
}

/// Tags for a muxer other than MP3's.
pub(super) struct MuxedTags {
    /// Under FFmpeg's generic names (`title`, `album_artist`, `track`, ...), which each
    /// muxer turns into its own.
    pub(super) metadata: Vec<(String, String)>,
    /// The cover, for a muxer that takes it as an attached picture; Ogg's is in `metadata`.
    pub(super) picture: Option<Picture>,
    /// Where the format has a place for them (not WAV).
    pub(super) chapters: Vec<Chapter>,
}

impl MuxedTags {
    fn new(
        format: AudioFormat,
        tags: &[(&str, String)],
        picture: Option<Picture>,
        chapters: Vec<Chapter>,
    ) -> Self {
        let mut metadata: Vec<(String, String)> = tags
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect();
        let picture = picture.filter(|_| format.carries_picture());
        let picture = match (format, picture) {
            (AudioFormat::Opus, Some(picture)) => {
                let block = base64::engine::general_purpose::STANDARD.encode(picture.flac_block());
                metadata.push(("METADATA_BLOCK_PICTURE".to_owned(), block));
                None
            }
            (_, picture) => picture,
        };
        let chapters = match format {
            AudioFormat::Wav => Vec::new(),
            // FFmpeg's FLAC muxer writes no chapters of its own: they go as the comments its
            // Ogg muxer writes for Opus.
            AudioFormat::Flac => {
                metadata.extend(chapter_comments(&chapters));
                Vec::new()
            }
            _ => chapters,
        };
        Self {
            metadata,
            picture,
            chapters,
        }
    }
}

/// `chapters` as Vorbis comments: `CHAPTER000=00:01:02.500` and `CHAPTER000NAME=...`, as the
/// chapter extension to Vorbis comments has them.
fn chapter_comments(chapters: &[Chapter]) -> Vec<(String, String)> {
    let mut comments = Vec::with_capacity(chapters.len() * 2);
    for (i, chapter) in chapters.iter().enumerate() {
        let ms = chapter.start_ms;
        let at = format!(
            "{:02}:{:02}:{:02}.{:03}",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        );
        comments.push((format!("CHAPTER{i:03}"), at));
        if !chapter.title.is_empty() {
            comments.push((format!("CHAPTER{i:03}NAME"), chapter.title.clone()));
        }
    }
    comments
}

/// `chapters` as ID3v2 `CHAP` frames (times in milliseconds, each titled by a `TIT2`), listed
/// in order by one top-level `CTOC`, as ID3's chapter addendum has them.
fn add_chapters(tag: &mut Tag, chapters: &[Chapter]) {
    if chapters.is_empty() {
        return;
    }
    let ids: Vec<String> = (0..chapters.len()).map(|i| format!("chp{i}")).collect();
    for (id, chapter) in ids.iter().zip(chapters) {
        let title = (!chapter.title.is_empty())
            .then(|| Frame::with_content("TIT2", Content::Text(chapter.title.clone())));
        tag.add_frame(ChapFrame {
            element_id: id.clone(),
            start_time: u32::try_from(chapter.start_ms).unwrap_or(u32::MAX),
            end_time: u32::try_from(chapter.end_ms).unwrap_or(u32::MAX),
            // No byte offsets: times only.
            start_offset: u32::MAX,
            end_offset: u32::MAX,
            frames: title.into_iter().collect(),
        });
    }
    tag.add_frame(TableOfContents {
        element_id: "toc".into(),
        top_level: true,
        ordered: true,
        elements: ids,
        frames: Vec::new(),
    });
}

/// A tag ready to be written, and its size.
pub(super) struct Id3 {
    tag: Tag,
    len: usize,
}

impl Id3 {
    pub(super) fn new(
        tags: &[(&str, String)],
        picture: Option<Picture>,
        chapters: &[Chapter],
    ) -> Self {
        let mut tag = Tag::with_version(Version::Id3v24);
        for (name, value) in tags {
            if *name == "comment" {
                tag.add_frame(Comment {
                    // ISO 639-2 "undetermined": the language is not known.
                    lang: "und".into(),
                    description: String::new(),
                    text: value.clone(),
                });
            } else if let Some(id) = frame_id(name) {
                tag.add_frame(Frame::with_content(id, Content::Text(value.clone())));
            }
        }
        tag.add_frame(Frame::with_content(
            "TSSE",
            Content::Text(format!("Audiomill {}", env!("CARGO_PKG_VERSION"))),
        ));
        if let Some(picture) = picture {
            tag.add_frame(ApicPicture {
                mime_type: picture.mime_type.into(),
                picture_type: PictureType::CoverFront,
                description: String::new(),
                data: picture.data,
            });
        }
        add_chapters(&mut tag, chapters);
        let mut encoded = Vec::new();
        let len = match Encoder::new()
            .version(Version::Id3v24)
            .encode(&tag, &mut encoded)
        {
            Ok(()) => encoded.len(),
            // Checked values never fail to encode; if one did, `write_over_header` says so.
            Err(_) => 0,
        };
        Self { tag, len }
    }

    /// Bytes this tag takes, header included.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Replaces the tag the muxer wrote at the start of `mp3` with this one, padded to the
    /// same size: the audio after it stays where it is.
    pub(super) fn write_over_header(&self, mp3: &Path) -> Result<(), TranscodeError> {
        let failed = |e: &dyn std::fmt::Display| {
            TranscodeError::Output(format!("the ID3 tag could not be written: {e}"))
        };
        let mut header = [0u8; 10];
        std::fs::File::open(mp3)
            .and_then(|mut file| file.read_exact(&mut header))
            .map_err(|e| failed(&e))?;
        // The tag's size, after its 10-byte header, is a 28-bit "synchsafe" integer.
        let existing = if &header[..3] == b"ID3" {
            10 + header[6..10]
                .iter()
                .fold(0usize, |size, byte| (size << 7) | usize::from(byte & 0x7f))
        } else {
            0
        };
        Encoder::new()
            .version(Version::Id3v24)
            .padding(existing.saturating_sub(self.len))
            .write_to_path(&self.tag, mp3)
            .map_err(|e| failed(&e))
    }
}
