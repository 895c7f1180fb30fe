//! What comes out of a conversion: its format ([`AudioFormat`]: MP3 unless asked otherwise),
//! its encoding (bitrate mode, quality or bitrate, sample rate, channels, bit depth), a trim,
//! loudness normalisation, its tags and cover picture, as an upload asks for them (multipart
//! fields, optionally starting from a named preset) and as the workflow carries them to the
//! transcode.
//!
//! [`OutputRequest`] collects the fields as they arrive; [`OutputRequest::resolve`] checks
//! each value and the combinations, and names the field at fault, before anything is stored.

mod format;
mod track;

pub use format::{AudioFormat, BIT_DEPTHS};
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

/// The output fields of an upload form as they arrive, unchecked.
#[derive(Debug, Default, Clone)]
pub struct OutputRequest {
    fields: Vec<(&'static str, String)>,
}

impl OutputRequest {
    /// The form fields this request takes.
    pub const FIELDS: [&'static str; 26] = [
        "preset",
        "format",
        "bitrate_mode",
        "quality",
        "bitrate",
        "sample_rate",
        "bit_depth",
        "channels",
        "start",
        "end",
        "normalize",
        "normalize_true_peak",
        "strip",
        "cover",
        "cover_at",
        "reencode",
        "audio_track",
        TAG_FIELDS[0],
        TAG_FIELDS[1],
        TAG_FIELDS[2],
        TAG_FIELDS[3],
        TAG_FIELDS[4],
        TAG_FIELDS[5],
        TAG_FIELDS[6],
        TAG_FIELDS[7],
        TAG_FIELDS[8],
    ];

    /// Whether `name` is one of [`OutputRequest::FIELDS`].
    pub fn takes(name: &str) -> bool {
        Self::FIELDS.contains(&name)
    }

    /// Records a field's value; a field given twice is refused.
    pub fn add(&mut self, name: &str, value: &str) -> Result<(), FieldError> {
        let field = *Self::FIELDS.iter().find(|f| **f == name).ok_or_else(|| {
            refuse(
                "form",
                format!("has a field `{name}` this upload does not take"),
            )
        })?;
        if self.fields.iter().any(|(f, _)| *f == field) {
            return Err(refuse(field, "is given more than once"));
        }
        let value = value.trim().to_owned();
        // The value alone is checked now, so a bad one is refused as it arrives; how it goes
        // with the others is checked by `resolve`, once every field is in.
        OutputRequest {
            fields: vec![(field, value.clone())],
        }
        .apply()?;
        self.fields.push((field, value));
        Ok(())
    }

    fn value(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| v.as_str())
    }

    /// The checked options: the preset's (or the defaults), each given field over them, then
    /// the combinations checked.
    pub fn resolve(&self) -> Result<OutputOptions, FieldError> {
        let (mut options, true_peak) = self.apply()?;
        self.check_format_takes(&options)?;
        options.check()?;
        if options.strip {
            if let Some(name) = options.tags.keys().next() {
                return Err(refuse(tag_field(name), "cannot be given with `strip`"));
            }
            if options.cover == Cover::Frame {
                let field = if self.value("cover").is_some() {
                    "cover"
                } else {
                    "cover_at"
                };
                return Err(refuse(field, "cannot be given with `strip`"));
            }
        }
        if let Some(peak) = true_peak {
            let Some(loudness) = options.normalize.as_mut() else {
                return Err(refuse("normalize_true_peak", "needs `normalize`"));
            };
            loudness.true_peak = peak;
        }
        Ok(options)
    }

    /// Each field read over the preset's options, unchecked as a whole; the true peak apart,
    /// since it only applies with `normalize`.
    fn apply(&self) -> Result<(OutputOptions, Option<f64>), FieldError> {
        let mut options = self.preset_options()?;
        self.apply_encoding(&mut options)?;
        self.apply_trim_and_loudness(&mut options)?;
        self.apply_tags_and_cover(&mut options)?;
        Ok((options, self.true_peak()?))
    }

    /// The options of the preset the form names, or the defaults, in the format the form
    /// names.
    fn preset_options(&self) -> Result<OutputOptions, FieldError> {
        let options = match self.value("preset") {
            None | Some("") => OutputOptions::default(),
            Some(name) => Preset::ALL
                .into_iter()
                .find(|p| p.name() == name.to_ascii_lowercase())
                .map(Preset::options)
                .ok_or_else(|| {
                    let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
                    refuse("preset", format!("must be one of {}", names.join(", ")))
                })?,
        };
        Ok(match self.value("format") {
            None | Some("") => options,
            Some(name) => {
                let format = AudioFormat::parse(name).ok_or_else(|| {
                    let names: Vec<&str> = AudioFormat::ALL.iter().map(|f| f.name()).collect();
                    refuse("format", format!("must be one of {}", names.join(", ")))
                })?;
                options.in_format(format)
            }
        })
    }

    /// Refuses a field the chosen format has no use for, rather than ignoring it.
    fn check_format_takes(&self, options: &OutputOptions) -> Result<(), FieldError> {
        let format = options.format;
        let label = format.label();
        if options.cover == Cover::Frame && !format.carries_picture() {
            let field = if self.value("cover").is_some() {
                "cover"
            } else {
                "cover_at"
            };
            return Err(refuse(
                field,
                format!("cannot be used: a {label} file holds no picture"),
            ));
        }
        if !format.is_mp3() && self.value("quality").is_some() {
            return Err(refuse(
                "quality",
                format!("applies to MP3 only; {label} takes `bitrate`"),
            ));
        }
        if !format.takes_bitrate_mode() && self.value("bitrate_mode").is_some() {
            return Err(refuse(
                "bitrate_mode",
                format!("applies to MP3 and Opus, not {label}"),
            ));
        }
        if format.is_lossless() && self.value("bitrate").is_some() {
            return Err(refuse(
                "bitrate",
                format!("does not apply to {label}, which is lossless"),
            ));
        }
        if !format.is_lossless() && self.value("bit_depth").is_some() {
            return Err(refuse("bit_depth", "applies to FLAC and WAV only"));
        }
        Ok(())
    }

    /// Bitrate mode, quality, bitrate, sample rate, bit depth, channels, and whether to
    /// re-encode what could be copied.
    fn apply_encoding(&self, options: &mut OutputOptions) -> Result<(), FieldError> {
        if let Some(mode) = self.value("bitrate_mode") {
            options.bitrate_mode = match mode.to_ascii_lowercase().as_str() {
                "vbr" => BitrateMode::Vbr,
                "cbr" => BitrateMode::Cbr,
                "abr" => BitrateMode::Abr,
                _ => return Err(refuse("bitrate_mode", "must be vbr, cbr or abr")),
            };
        }
        if let Some(quality) = self.value("quality") {
            options.quality = quality
                .parse::<u8>()
                .ok()
                .filter(|q| *q <= 9)
                .ok_or_else(|| refuse("quality", "must be a whole number from 0 (best) to 9"))?;
        }
        // Alone, a value is checked against what any format takes; against the format's own
        // once every field is in (`check`), since `format` may come later.
        if let Some(bitrate) = self.value("bitrate") {
            let kbps = bitrate.strip_suffix('k').unwrap_or(bitrate);
            options.bitrate = Some(
                kbps.parse::<u16>()
                    .ok()
                    .filter(|kbps| {
                        AudioFormat::Opus
                            .bitrates()
                            .is_some_and(|r| r.contains(kbps))
                    })
                    .ok_or_else(|| refuse("bitrate", "must be a number of kbit/s from 6 to 510"))?,
            );
        }
        if let Some(rate) = self.value("sample_rate") {
            let any = AudioFormat::Flac.sample_rates();
            options.sample_rate = Some(one_of("sample_rate", rate, any, "Hz")?);
        }
        if let Some(depth) = self.value("bit_depth") {
            options.bit_depth = Some(one_of("bit_depth", depth, &BIT_DEPTHS, "bits")?);
        }
        if let Some(track) = self.value("audio_track") {
            options.audio_track = Some(AudioTrack::parse(track).ok_or_else(|| {
                refuse(
                    "audio_track",
                    format!(
                        "must be a track number from 0 (the first audio track) to {MAX_AUDIO_TRACK}, or a language code such as eng or de"
                    ),
                )
            })?);
        }
        if let Some(reencode) = self.value("reencode") {
            options.reencode =
                yes_or_no(reencode).ok_or_else(|| refuse("reencode", "must be true or false"))?;
        }
        if let Some(channels) = self.value("channels") {
            options.channels = Some(match channels.to_ascii_lowercase().as_str() {
                "1" | "mono" => 1,
                "2" | "stereo" => 2,
                _ => return Err(refuse("channels", "must be 1 (mono) or 2 (stereo)")),
            });
        }
        Ok(())
    }

    /// The trim and loudness normalisation.
    fn apply_trim_and_loudness(&self, options: &mut OutputOptions) -> Result<(), FieldError> {
        if let Some(start) = self.value("start") {
            options.start_ms = Some(trim_point(start).map_err(|m| refuse("start", m))?);
        }
        if let Some(end) = self.value("end") {
            options.end_ms = Some(trim_point(end).map_err(|m| refuse("end", m))?);
        }
        if let Some(normalize) = self.value("normalize") {
            options.normalize = match normalize.to_ascii_lowercase().as_str() {
                "false" | "0" | "no" | "off" => None,
                "true" | "yes" | "on" => Some(options.normalize.unwrap_or(Loudness::DEFAULT)),
                target => {
                    let integrated = target
                        .trim_end_matches("lufs")
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|i| (-70.0..=-5.0).contains(i))
                        .ok_or_else(|| {
                            refuse(
                                "normalize",
                                "must be true, false or a target loudness from -70 to -5 (LUFS)",
                            )
                        })?;
                    Some(Loudness {
                        integrated,
                        ..options.normalize.unwrap_or(Loudness::DEFAULT)
                    })
                }
            };
        }
        Ok(())
    }

    /// The tags: stripped or not, the cover, the text.
    fn apply_tags_and_cover(&self, options: &mut OutputOptions) -> Result<(), FieldError> {
        if let Some(strip) = self.value("strip") {
            options.strip =
                yes_or_no(strip).ok_or_else(|| refuse("strip", "must be true or false"))?;
        }

        if let Some(cover) = self.value("cover") {
            options.cover = match cover.to_ascii_lowercase().as_str() {
                "source" => Cover::Source,
                "frame" => Cover::Frame,
                "none" => Cover::None,
                _ => return Err(refuse("cover", "must be source, frame or none")),
            };
        }
        if let Some(at) = self.value("cover_at") {
            options.cover_at_ms = Some(trim_point(at).map_err(|m| refuse("cover_at", m))?);
            match self.value("cover") {
                // A place for the frame says which picture is wanted.
                None => options.cover = Cover::Frame,
                Some(_) if options.cover == Cover::Frame => {}
                Some(_) => return Err(refuse("cover_at", "applies to `cover=frame`")),
            }
        }
        for (field, name) in TAG_FIELDS.into_iter().zip(TAG_NAMES) {
            if let Some(value) = self.value(field) {
                check_tag(name, value).map_err(|m| refuse(field, m))?;
                options.tags.insert(name.to_owned(), value.to_owned());
            }
        }
        Ok(())
    }

    /// The true peak asked for with `normalize`, if any.
    fn true_peak(&self) -> Result<Option<f64>, FieldError> {
        self.value("normalize_true_peak")
            .map(|peak| {
                peak.parse::<f64>()
                    .ok()
                    .filter(|p| (-9.0..=0.0).contains(p))
                    .ok_or_else(|| {
                        refuse(
                            "normalize_true_peak",
                            "must be a number from -9 to 0 (dBTP)",
                        )
                    })
            })
            .transpose()
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

/// The form field of tag `name`.
fn tag_field(name: &str) -> &'static str {
    TAG_NAMES
        .iter()
        .position(|n| *n == name)
        .map_or("form", |i| TAG_FIELDS[i])
}

/// A tag value as given: within [`MAX_TAG_CHARS`], no control characters (but line breaks
/// and tabs in a comment), and a track or date in the forms ID3v2.4 defines.
fn check_tag(name: &str, value: &str) -> Result<(), String> {
    if value.chars().count() > MAX_TAG_CHARS {
        return Err(format!("is longer than {MAX_TAG_CHARS} characters"));
    }
    let allowed = |c: char| !c.is_control() || (name == "comment" && matches!(c, '\n' | '\t'));
    if !value.chars().all(allowed) {
        return Err("must not hold control characters".into());
    }
    if value.is_empty() {
        return Ok(());
    }
    let number = |text: &str| {
        !text.is_empty()
            && text.len() <= 4
            && text.bytes().all(|b| b.is_ascii_digit())
            && text.parse::<u16>().is_ok_and(|n| n > 0)
    };
    match name {
        "track" => {
            let valid = match value.split_once('/') {
                Some((track, total)) => number(track) && number(total),
                None => number(value),
            };
            if !valid {
                return Err("must be a track number, or number/total (3 or 3/12)".into());
            }
        }
        "date" if !is_id3_date(value) => {
            return Err("must be a date: YYYY, YYYY-MM or YYYY-MM-DD".into());
        }
        _ => {}
    }
    Ok(())
}

/// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, as ID3v2.4's recording time takes it.
fn is_id3_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let digits =
        |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_digit());
    let in_range = |part: &str, max: u8| part.parse::<u8>().is_ok_and(|n| (1..=max).contains(&n));
    match parts.as_slice() {
        [year] => digits(year, 4),
        [year, month] => digits(year, 4) && digits(month, 2) && in_range(month, 12),
        [year, month, day] => {
            digits(year, 4)
                && digits(month, 2)
                && in_range(month, 12)
                && digits(day, 2)
                && in_range(day, 31)
        }
        _ => false,
    }
}

/// A value from the source's metadata, fit to be a tag: no control characters, trimmed, and
/// within [`MAX_TAG_CHARS`].
fn clean_tag(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_TAG_CHARS)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// `true` or `false`, as a form spells them.
fn yes_or_no(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A trim point: seconds (`90`, `90.5`) or `[HH:]MM:SS[.mmm]`, to the millisecond.
fn trim_point(text: &str) -> Result<u64, String> {
    let bad = || "must be seconds (90 or 90.5) or HH:MM:SS.mmm".to_owned();
    let (whole, fraction) = match text.split_once('.') {
        Some((_, "")) => return Err(bad()),
        Some((whole, fraction)) => (whole, fraction),
        None => (text, ""),
    };
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let millis = format!("{fraction:0<3}")
        .parse::<u64>()
        .map_err(|_| bad())?;
    let parts: Vec<&str> = whole.split(':').collect();
    if parts.len() > 3
        || parts
            .iter()
            .any(|p| p.is_empty() || p.len() > 6 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    let numbers: Vec<u64> = parts
        .iter()
        .map(|p| p.parse().unwrap_or(u64::MAX))
        .collect();
    // After the first, minutes and seconds are two digits under 60.
    if parts.len() > 1
        && parts[1..]
            .iter()
            .zip(&numbers[1..])
            .any(|(p, n)| p.len() != 2 || *n >= 60)
    {
        return Err(bad());
    }
    let seconds = numbers
        .iter()
        .fold(0u64, |total, n| total.saturating_mul(60).saturating_add(*n));
    let total = seconds.saturating_mul(1000).saturating_add(millis);
    if total > MAX_TRIM_MS {
        return Err("is beyond 24 hours".into());
    }
    Ok(total)
}

/// `text` as one of the `allowed` values (in `unit`), or a refusal listing them.
fn one_of<T>(field: &'static str, text: &str, allowed: &[T], unit: &str) -> Result<T, FieldError>
where
    T: std::str::FromStr + PartialEq + Copy + fmt::Display,
{
    text.parse::<T>()
        .ok()
        .filter(|value| allowed.contains(value))
        .ok_or_else(|| refuse(field, format!("must be one of {} ({unit})", list(allowed))))
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
