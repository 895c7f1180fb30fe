//! What comes out of a conversion: its format ([`AudioFormat`]: MP3 unless asked otherwise),
//! its encoding (bitrate mode, quality or bitrate, sample rate, channels, bit depth), a trim,
//! loudness normalisation, its tags and cover picture, as an upload asks for them (multipart
//! fields, optionally starting from a named preset) and as the workflow carries them to the
//! transcode.
//!
//! [`OutputRequest`] collects the fields as they arrive (`request`); [`OutputRequest::resolve`]
//! checks each value and the combinations, and names the field at fault, before anything is
//! stored.

mod format;
mod request;
mod track;

pub use format::{AudioFormat, BIT_DEPTHS};
pub use request::OutputRequest;
pub use track::{AudioTrack, MAX_AUDIO_TRACK, SourceTrack};

use serde::{Deserialize, Serialize};
use std::{collections::BTreeMap, fmt};

/// Bitrates (kbit/s) an MP3 frame header can carry at MPEG-1 sample rates (32-48 kHz).
pub const MPEG1_BITRATES: [u16; 14] = [
    32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
];

/// Bitrates (kbit/s) at MPEG-2 and 2.5 sample rates (8-24 kHz), from 32 up.
pub const MPEG2_BITRATES: [u16; 11] = [32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];

/// Every bitrate (kbit/s) an MP3's `bitrate` takes: those of either table.
pub const BITRATES: [u16; 15] = [
    32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 192, 224, 256, 320,
];

/// The sample rates an MP3 can have.
pub const SAMPLE_RATES: [u32; 9] = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000];

/// The longest trim point accepted: a day (no source is that long; `MAX_MEDIA_SECONDS` caps
/// what a worker decodes anyway).
const MAX_TRIM_MS: u64 = 24 * 3600 * 1000;

/// The ID3 tags an MP3 may carry, by the names the source's metadata and the `tags[...]`
/// fields use.
pub const TAG_NAMES: [&str; 9] = [
    "title",
    "artist",
    "album",
    "album_artist",
    "date",
    "comment",
    "track",
    "genre",
    "composer",
];

/// The form fields that set them: `tags[title]` and so on, in the order of [`TAG_NAMES`].
pub const TAG_FIELDS: [&str; 9] = [
    "tags[title]",
    "tags[artist]",
    "tags[album]",
    "tags[album_artist]",
    "tags[date]",
    "tags[comment]",
    "tags[track]",
    "tags[genre]",
    "tags[composer]",
];

/// The longest tag value, in characters, from a field or from the source's metadata (which
/// is cut there, since nobody chose it).
pub const MAX_TAG_CHARS: usize = 1024;

/// How LAME spends bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BitrateMode {
    /// Variable: a quality level (`quality`), bits where the sound needs them.
    #[default]
    Vbr,
    /// Constant: every frame at `bitrate`, for old players and streaming.
    Cbr,
    /// Average: about `bitrate` overall, varying per frame.
    Abr,
}

/// The loudness to normalise to (EBU R128 / ITU-R BS.1770), in two passes: measure, then
/// apply, so the result lands within 1 LU of `integrated`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Loudness {
    /// Integrated loudness, LUFS (-70 to -5).
    pub integrated: f64,
    /// Maximum true peak, dBTP (-9 to 0).
    pub true_peak: f64,
    /// Loudness range, LU (1 to 50).
    pub range: f64,
}

impl Loudness {
    /// What streaming services and podcasts aim at.
    pub const DEFAULT: Loudness = Loudness {
        integrated: -16.0,
        true_peak: -1.5,
        range: 11.0,
    };
}

/// Where the MP3's front-cover picture comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Cover {
    /// A picture attached to the source (album art in an MP4, say), if it has one.
    #[default]
    Source,
    /// A frame of the video: at `cover_at_ms`, else the first one that is not black past
    /// the first tenth.
    Frame,
    /// No picture.
    None,
}

impl Cover {
    pub fn name(self) -> &'static str {
        match self {
            Cover::Source => "source",
            Cover::Frame => "frame",
            Cover::None => "none",
        }
    }
}

/// Everything that decides the output, checked. `Default` is what a plain upload gets: an
/// MP3 at VBR quality 2, the source's sample rate and channels (more than two mixed down to
/// stereo), the whole length, loudness untouched, the source's tags (the file name as the
/// title when it has none) and attached picture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutputOptions {
    /// Left out when MP3, so an MP3 job's options read as they always have.
    #[serde(skip_serializing_if = "AudioFormat::is_mp3")]
    pub format: AudioFormat,
    /// MP3: LAME's mode. Opus: VBR, hard CBR, or constrained VBR (`Abr`). Others: unused.
    pub bitrate_mode: BitrateMode,
    /// MP3 VBR quality, 0 (best) to 9.
    pub quality: u8,
    /// kbit/s: an MP3's with CBR and ABR; M4A's and Opus's in any mode (`None`: the
    /// encoder's default, 128 kbit/s for M4A, about 96 for stereo Opus).
    pub bitrate: Option<u16>,
    /// `None`: the source's, or the nearest the format can have.
    pub sample_rate: Option<u32>,
    /// FLAC and WAV: 16 or 24 bits a sample; `None`: 16, or 24 when the source has more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bit_depth: Option<u8>,
    /// 1 or 2; `None`: the source's (more than two mixed down to stereo).
    pub channels: Option<u8>,
    /// Where the MP3 starts in the source, in milliseconds.
    pub start_ms: Option<u64>,
    /// Where it ends, in milliseconds.
    pub end_ms: Option<u64>,
    pub normalize: Option<Loudness>,
    /// Tags given with the upload, by [`TAG_NAMES`]; over the source's, and an empty value
    /// removes the source's.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// No tags and no picture at all.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub strip: bool,
    pub cover: Cover,
    /// With `Cover::Frame`: where the frame is, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cover_at_ms: Option<u64>,
    /// The preset these options started from, for people reading `/status`.
    pub preset: Option<Preset>,
    /// Decode and encode even when the source's audio could be copied as it is.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reencode: bool,
    /// `None`: the track the container marks default, else the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_track: Option<AudioTrack>,
}

impl Default for OutputOptions {
    fn default() -> Self {
        Self {
            format: AudioFormat::Mp3,
            bitrate_mode: BitrateMode::Vbr,
            quality: 2,
            bitrate: None,
            sample_rate: None,
            bit_depth: None,
            channels: None,
            start_ms: None,
            end_ms: None,
            normalize: None,
            tags: BTreeMap::new(),
            strip: false,
            cover: Cover::Source,
            cover_at_ms: None,
            preset: None,
            reencode: false,
            audio_track: None,
        }
    }
}

/// Named starting points; any field given beside a preset wins over it, and a `format` given
/// beside one keeps what of the preset that format can take (see [`OutputOptions::in_format`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Speech: mono, 64 kbit/s ABR at 22.05 kHz, normalised to -16 LUFS.
    Voice,
    /// Podcasts: mono, 96 kbit/s CBR at 44.1 kHz, normalised to -16 LUFS.
    Podcast,
    /// Audiobooks: mono, 64 kbit/s CBR at 44.1 kHz, normalised to -18 LUFS.
    Audiobook,
    /// Music: stereo, VBR quality 0 (about 245 kbit/s), loudness untouched.
    Music,
    /// Old players and car stereos: stereo, 128 kbit/s CBR at 44.1 kHz.
    Compatible,
    /// Speech at half `voice`'s size: Opus, mono, 32 kbit/s VBR, normalised to -16 LUFS.
    Speech,
    /// Apple's players: M4A (AAC-LC), stereo, 256 kbit/s.
    Apple,
    /// Keeping the sound as it is: FLAC at the source's rate, loudness untouched.
    Archive,
}

impl Preset {
    pub const ALL: [Preset; 8] = [
        Preset::Voice,
        Preset::Podcast,
        Preset::Audiobook,
        Preset::Music,
        Preset::Compatible,
        Preset::Speech,
        Preset::Apple,
        Preset::Archive,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Voice => "voice",
            Preset::Podcast => "podcast",
            Preset::Audiobook => "audiobook",
            Preset::Music => "music",
            Preset::Compatible => "compatible",
            Preset::Speech => "speech",
            Preset::Apple => "apple",
            Preset::Archive => "archive",
        }
    }

    /// The options this preset starts from.
    pub fn options(self) -> OutputOptions {
        let base = OutputOptions {
            preset: Some(self),
            ..OutputOptions::default()
        };
        let speech = |bitrate_mode, bitrate, sample_rate, integrated| OutputOptions {
            bitrate_mode,
            bitrate: Some(bitrate),
            sample_rate,
            channels: Some(1),
            normalize: Some(Loudness {
                integrated,
                ..Loudness::DEFAULT
            }),
            ..base.clone()
        };
        match self {
            Preset::Voice => speech(BitrateMode::Abr, 64, Some(22050), -16.0),
            Preset::Podcast => speech(BitrateMode::Cbr, 96, Some(44100), -16.0),
            Preset::Audiobook => speech(BitrateMode::Cbr, 64, Some(44100), -18.0),
            Preset::Music => OutputOptions {
                quality: 0,
                channels: Some(2),
                ..base
            },
            Preset::Compatible => OutputOptions {
                bitrate_mode: BitrateMode::Cbr,
                bitrate: Some(128),
                sample_rate: Some(44100),
                channels: Some(2),
                ..base
            },
            Preset::Speech => OutputOptions {
                format: AudioFormat::Opus,
                ..speech(BitrateMode::Vbr, 32, None, -16.0)
            },
            Preset::Apple => OutputOptions {
                format: AudioFormat::M4a,
                bitrate: Some(256),
                channels: Some(2),
                ..base
            },
            Preset::Archive => OutputOptions {
                format: AudioFormat::Flac,
                ..base
            },
        }
    }
}

/// A field that cannot be taken, and why: answered as 400 naming `field`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

fn refuse(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

impl OutputOptions {
    /// The combinations: the format's own bitrates and sample rates, an MP3's bitrate only
    /// with CBR or ABR (and then one is needed) and one its MPEG version can carry, and a
    /// trim that ends after it starts.
    fn check(&mut self) -> Result<(), FieldError> {
        let label = self.format.label();
        if self.format.is_mp3() {
            self.check_mp3_bitrate()?;
        } else if let (Some(kbps), Some(range)) = (self.bitrate, self.format.bitrates())
            && !range.contains(&kbps)
        {
            return Err(refuse(
                "bitrate",
                format!(
                    "must be from {} to {} kbit/s for {label}",
                    range.start(),
                    range.end()
                ),
            ));
        }
        if let Some(rate) = self.sample_rate
            && !self.format.sample_rates().contains(&rate)
        {
            return Err(refuse(
                "sample_rate",
                format!(
                    "must be one of {} (Hz) for {label}",
                    list(self.format.sample_rates())
                ),
            ));
        }
        if let (Some(start), Some(end)) = (self.start_ms, self.end_ms)
            && end <= start
        {
            return Err(refuse("end", "must be after `start`"));
        }
        Ok(())
    }

    /// An MP3's bitrate: one of its frame header's, with the mode that takes one, at a
    /// sample rate whose MPEG version has it.
    fn check_mp3_bitrate(&self) -> Result<(), FieldError> {
        match (self.bitrate_mode, self.bitrate) {
            (BitrateMode::Vbr, Some(_)) => Err(refuse(
                "bitrate",
                "applies to bitrate_mode cbr or abr; vbr takes `quality`",
            )),
            (BitrateMode::Cbr | BitrateMode::Abr, None) => Err(refuse(
                "bitrate",
                "is required with bitrate_mode cbr or abr",
            )),
            (_, Some(kbps)) if !BITRATES.contains(&kbps) => Err(refuse(
                "bitrate",
                format!("must be one of {} (kbit/s) for MP3", list(&BITRATES)),
            )),
            (BitrateMode::Cbr, Some(kbps)) => match self.sample_rate {
                Some(rate) => {
                    let (allowed, version) = if rate >= 32000 {
                        (&MPEG1_BITRATES[..], "MPEG-1")
                    } else {
                        (&MPEG2_BITRATES[..], "MPEG-2")
                    };
                    if allowed.contains(&kbps) {
                        Ok(())
                    } else {
                        Err(refuse(
                            "bitrate",
                            format!(
                                "{kbps} kbit/s cannot be used at {rate} Hz ({version}): choose one of {}",
                                list(allowed)
                            ),
                        ))
                    }
                }
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// These options for `format`: what of them it can take is kept (channels, loudness,
    /// trim, tags, a bitrate in its range, a sample rate it has), the rest falls back to its
    /// own defaults. How a preset goes with a `format` given beside it.
    pub fn in_format(mut self, format: AudioFormat) -> Self {
        if format == self.format {
            return self;
        }
        let mp3_default = OutputOptions::default();
        self.format = format;
        if !format.is_mp3() {
            self.quality = mp3_default.quality;
        }
        if !format.takes_bitrate_mode() {
            self.bitrate_mode = BitrateMode::Vbr;
        }
        let fits = |kbps: &u16| match format {
            AudioFormat::Mp3 => BITRATES.contains(kbps),
            _ => format.bitrates().is_some_and(|range| range.contains(kbps)),
        };
        self.bitrate = self.bitrate.filter(fits);
        if format.is_mp3() && self.bitrate.is_none() {
            self.bitrate_mode = BitrateMode::Vbr;
        }
        if format.is_mp3() && self.bitrate_mode == BitrateMode::Vbr {
            self.bitrate = None;
        }
        self.sample_rate = self
            .sample_rate
            .filter(|rate| format.sample_rates().contains(rate));
        if !format.is_lossless() {
            self.bit_depth = None;
        }
        if !format.carries_picture() && self.cover == Cover::Frame {
            self.cover = Cover::Source;
            self.cover_at_ms = None;
        }
        self
    }

    /// The tags the output gets: none when stripped; else the `source`'s metadata (names in
    /// any case; values cut to [`MAX_TAG_CHARS`], control characters dropped), the upload's
    /// fields over it (an empty one removes the tag), and `file_name` without its extension
    /// as the title when there is no other.
    pub fn tags_for<'a>(
        &self,
        source: impl IntoIterator<Item = (&'a str, &'a str)>,
        file_name: &str,
    ) -> Vec<(&'static str, String)> {
        if self.strip {
            return Vec::new();
        }
        let mut tags: BTreeMap<&'static str, String> = BTreeMap::new();
        for (key, value) in source {
            let key = key.to_ascii_lowercase();
            let name = if key == "year" { "date" } else { key.as_str() };
            if let Some(name) = TAG_NAMES.into_iter().find(|n| *n == name) {
                let value = clean_tag(value);
                // A year says less than a date: it fills in only for a missing one.
                let less_than_known = key == "year" && tags.contains_key("date");
                if !value.is_empty() && !less_than_known {
                    tags.insert(name, value);
                }
            }
        }
        for (name, value) in &self.tags {
            if let Some(name) = TAG_NAMES.into_iter().find(|n| n == name) {
                tags.insert(name, value.clone());
            }
        }
        if !tags.contains_key("title") {
            let stem = std::path::Path::new(file_name)
                .file_stem()
                .and_then(|stem| stem.to_str())
                .map(clean_tag)
                .unwrap_or_default();
            if !stem.is_empty() {
                tags.insert("title", stem);
            }
        }
        TAG_NAMES
            .into_iter()
            .filter_map(|name| tags.remove(name).map(|value| (name, value)))
            .filter(|(_, value)| !value.is_empty())
            .collect()
    }

    /// Whether these are the defaults, so that nothing about them needs saying.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// A value from the source's metadata, fit to be a tag: no control characters, trimmed, and
/// within [`MAX_TAG_CHARS`].
pub fn clean_tag(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_TAG_CHARS)
        .collect::<String>()
        .trim()
        .to_owned()
}

fn list<T: fmt::Display>(values: &[T]) -> String {
    values
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
