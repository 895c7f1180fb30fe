//! The container families Audiomill converts, video and audio, each known by its first bytes:
//! an upload's or an import's content is sniffed before it is stored, so that nothing else (a
//! playlist, a concatenation list, a web page) ever reaches a demuxer. And the name a source
//! is known by.

use std::path::Path;

/// Container families we convert, each recognised by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// MP4, QuickTime MOV, and M4A audio.
    IsoBmff,
    /// AVI.
    Riff,
    /// Matroska and WebM.
    Ebml,
    /// MP3 audio: an ID3v2 tag, or an MPEG audio frame from the first byte.
    Mp3,
    /// FLAC audio.
    Flac,
    /// Ogg: Opus or Vorbis audio.
    Ogg,
    /// WAV audio (RIFF WAVE).
    Wave,
}

/// Every extension a source may have, video then audio: what `ALLOWED_EXTENSIONS` may name.
pub const EXTENSIONS: [&str; 13] = [
    "mp4", "m4v", "mov", "avi", "mkv", "webm", "mp3", "m4a", "wav", "flac", "ogg", "oga", "opus",
];

impl Container {
    /// The family an extension promises.
    pub fn for_extension(extension: &str) -> Option<Self> {
        match extension {
            "mp4" | "m4v" | "mov" | "m4a" => Some(Self::IsoBmff),
            "avi" => Some(Self::Riff),
            "mkv" | "webm" => Some(Self::Ebml),
            "mp3" => Some(Self::Mp3),
            "flac" => Some(Self::Flac),
            "ogg" | "oga" | "opus" => Some(Self::Ogg),
            "wav" => Some(Self::Wave),
            _ => None,
        }
    }

    /// How many first bytes [`Container::sniff`] reads.
    pub const SNIFFED: usize = 16;

    /// The family the first bytes of a file show. Needs at least 12 bytes.
    pub fn sniff(head: &[u8]) -> Option<Self> {
        if head.len() < 12 {
            return None;
        }
        if head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
            return Some(Self::Ebml);
        }
        match (&head[0..4], &head[8..12]) {
            (b"RIFF", b"AVI ") => return Some(Self::Riff),
            (b"RIFF", b"WAVE") => return Some(Self::Wave),
            (b"fLaC", _) => return Some(Self::Flac),
            (b"OggS", _) => return Some(Self::Ogg),
            _ => {}
        }
        if is_id3_header(head) || is_mpeg_audio_frame(head) {
            return Some(Self::Mp3);
        }
        // ISO-BMFF starts with a box: a 4-byte size, then its type. Old QuickTime files may
        // open with a box other than `ftyp`.
        if matches!(
            &head[4..8],
            b"ftyp" | b"moov" | b"mdat" | b"wide" | b"free" | b"skip"
        ) {
            return Some(Self::IsoBmff);
        }
        None
    }

    /// The usual extension of a file of this family.
    pub fn extension(self) -> &'static str {
        match self {
            Self::IsoBmff => "mp4",
            Self::Riff => "avi",
            Self::Ebml => "mkv",
            Self::Mp3 => "mp3",
            Self::Flac => "flac",
            Self::Ogg => "ogg",
            Self::Wave => "wav",
        }
    }
}

/// Whether `head` starts with an ID3v2 tag's header: `ID3`, a version from 2 to 4, and a size
/// in four 7-bit bytes.
fn is_id3_header(head: &[u8]) -> bool {
    head.len() >= 10
        && head.starts_with(b"ID3")
        && (2..=4).contains(&head[3])
        && head[4] != 0xFF
        && head[6..10].iter().all(|byte| byte & 0x80 == 0)
}

/// Whether `head` starts with an MPEG-1/2/2.5 Layer III frame header: the 11-bit sync, a
/// known version, layer III, and a bitrate and sample rate that exist (ADTS AAC has the same
/// sync with layer 0, and is no MP3).
fn is_mpeg_audio_frame(head: &[u8]) -> bool {
    let [first, second, third, ..] = head else {
        return false;
    };
    let version = (second >> 3) & 0b11;
    let layer = (second >> 1) & 0b11;
    let bitrate = third >> 4;
    let rate = (third >> 2) & 0b11;
    *first == 0xFF
        && second & 0xE0 == 0xE0
        && version != 0b01
        && layer == 0b01
        && bitrate != 0
        && bitrate != 0xF
        && rate != 0b11
}
/// The lower-case extension of a file name, if any.
pub fn extension(file_name: &str) -> Option<String> {
    Path::new(file_name)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

/// Longest name kept, in characters.
const MAX_NAME_CHARS: usize = 255;

/// The name to keep for a file: its last path component, without control characters, at most
/// 255 characters (a long name loses the end of its stem, never its extension). Browsers may
/// send `C:\videos\clip.mp4`; only `clip.mp4` is the user's name.
pub fn clean_file_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last.chars().filter(|c| !c.is_control()).collect();
    let cleaned = cleaned.trim();
    if cleaned.chars().count() <= MAX_NAME_CHARS {
        return cleaned.to_owned();
    }
    let extension = Path::new(cleaned)
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| e.chars().count() <= 10);
    let suffix = extension.map(|e| format!(".{e}")).unwrap_or_default();
    let stem: String = cleaned
        .chars()
        .take(MAX_NAME_CHARS - suffix.chars().count())
        .collect();
    format!("{}{suffix}", stem.trim_end())
}
