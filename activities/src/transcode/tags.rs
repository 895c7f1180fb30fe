//! The MP3's ID3v2.4 tag: text frames, a comment and the front cover, encoded by the `id3`
//! crate (FFmpeg's muxer can write neither a real comment frame nor a picture without a
//! stream for it).
//!
//! The muxer writes a tag of its own, padded to exactly the size of this one, so that
//! writing this one over it once the audio is done moves no byte of the audio.

use super::{TranscodeError, picture::Picture};
use id3::{
    Content, Encoder, Frame, Tag, TagLike, Version,
    frame::{Comment, Picture as ApicPicture, PictureType},
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

/// A tag ready to be written, and its size.
pub(super) struct Id3 {
    tag: Tag,
    len: usize,
}

impl Id3 {
    pub(super) fn new(tags: &[(&str, String)], picture: Option<Picture>) -> Self {
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
