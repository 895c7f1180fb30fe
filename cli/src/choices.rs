//! `audiomill convert`'s flags for what the outputs should be: the upload form's output
//! fields, one flag each (the server checks the values and how they go together).

use audiomill_client::{UploadOptions, types};

/// A named starting point; a flag given beside it wins over it.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum PresetFlag {
    /// Speech: mono, 64 kbit/s ABR at 22.05 kHz, normalised to -16 LUFS.
    Voice,
    /// Podcasts: mono, 96 kbit/s CBR at 44.1 kHz, normalised to -16 LUFS.
    Podcast,
    /// Audiobooks: mono, 64 kbit/s CBR at 44.1 kHz, normalised to -18 LUFS.
    Audiobook,
    /// Music: stereo, VBR quality 0, loudness untouched.
    Music,
    /// Old players: stereo, 128 kbit/s CBR at 44.1 kHz.
    Compatible,
    /// Speech, smaller: Opus, mono, 32 kbit/s, normalised to -16 LUFS.
    Speech,
    /// Apple's players: M4A (AAC), stereo, 256 kbit/s.
    Apple,
    /// The sound as it is: FLAC.
    Archive,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum FormatFlag {
    /// MP3 (LAME), ID3 tags.
    Mp3,
    /// AAC-LC in MP4.
    M4a,
    /// Opus in Ogg.
    Opus,
    /// FLAC, lossless.
    Flac,
    /// PCM WAVE, lossless.
    Wav,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum BitrateModeFlag {
    /// Variable bitrate, by --quality.
    Vbr,
    /// Constant bitrate, --bitrate.
    Cbr,
    /// Average bitrate, about --bitrate.
    Abr,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum CoverFlag {
    /// The picture attached to the video, if any.
    Source,
    /// A frame of the video (see --cover-at).
    Frame,
    /// No picture.
    None,
}

#[derive(clap::Args, Debug, Clone, Default)]
#[command(next_help_heading = "Output")]
pub struct OutputFlags {
    /// Start from a named set of choices.
    #[arg(long, value_enum)]
    pub preset: Option<PresetFlag>,
    /// The output's format [server default: mp3, or the preset's].
    #[arg(long, value_enum)]
    pub format: Option<FormatFlag>,
    /// How the encoder spends bits, for MP3 and Opus [server default: vbr].
    #[arg(long, value_enum)]
    pub bitrate_mode: Option<BitrateModeFlag>,
    /// MP3 VBR quality, 0 (best) to 9 [server default: 2].
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=9))]
    pub quality: Option<u8>,
    /// kbit/s: an MP3 bitrate for CBR or ABR (32-320); M4A 32-320; Opus 6-510.
    #[arg(long, value_name = "KBPS")]
    pub bitrate: Option<u16>,
    /// Hz (8000-96000, one the format has) [server default: the video's].
    #[arg(long, value_name = "HZ")]
    pub sample_rate: Option<u32>,
    /// FLAC and WAV: 16 or 24 bits a sample [server default: 16, or the video's wider].
    #[arg(long, value_name = "BITS")]
    pub bit_depth: Option<u8>,
    /// 1 (mono) or 2 (stereo) [server default: the video's].
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub channels: Option<u8>,
    /// Where the output starts: seconds or HH:MM:SS.mmm.
    #[arg(long, value_name = "TIME")]
    pub start: Option<String>,
    /// Where it ends: seconds or HH:MM:SS.mmm.
    #[arg(long, value_name = "TIME")]
    pub end: Option<String>,
    /// Normalise loudness (EBU R128): true (-16 LUFS), false, or a target in LUFS.
    #[arg(long, value_name = "TARGET", allow_hyphen_values = true)]
    pub normalize: Option<String>,
    /// With --normalize: the highest true peak, -9 to 0 dBTP.
    #[arg(long, value_name = "DBTP", allow_hyphen_values = true)]
    pub normalize_true_peak: Option<f64>,
    /// A tag over the video's own, as NAME=VALUE (title, artist, album, album_artist,
    /// date, comment, track, genre, composer); an empty VALUE removes it. Repeatable.
    #[arg(long = "tag", value_name = "NAME=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// Write no tags at all.
    #[arg(long)]
    pub strip: bool,
    /// Decode and encode even when the source's audio could be copied as it is (by default
    /// an MP3 to MP3, AAC to M4A, Opus, FLAC or PCM to WAV with nothing to change is copied).
    #[arg(long)]
    pub reencode: bool,
    /// The audio track to convert: its number from 0 (`audiomill status` lists a source's),
    /// or a language such as eng or de [server default: the one marked default].
    #[arg(long, value_name = "NUMBER|LANGUAGE")]
    pub audio_track: Option<String>,
    /// The front-cover picture [server default: source].
    #[arg(long, value_enum)]
    pub cover: Option<CoverFlag>,
    /// Where the cover frame is: seconds or HH:MM:SS.mmm (implies --cover frame).
    #[arg(long, value_name = "TIME")]
    pub cover_at: Option<String>,
    /// Also write each output to this storage connection of yours (its id: the web app's account
    /// page, or GET /connections).
    #[arg(long, value_name = "CONNECTION_ID")]
    pub export_to: Option<String>,
    /// With --export-to: each output's key there, from {stem}, {job_id}, {date} and {ext}
    /// [server default: {stem}.{ext}].
    #[arg(long, value_name = "TEMPLATE", requires = "export_to")]
    pub export_key: Option<String>,
}

impl OutputFlags {
    /// The extension of the files these choices make: the format's, else the preset's.
    pub fn extension(&self) -> &'static str {
        match (self.format, self.preset) {
            (Some(FormatFlag::Mp3), _) => "mp3",
            (Some(FormatFlag::M4a), _) | (None, Some(PresetFlag::Apple)) => "m4a",
            (Some(FormatFlag::Opus), _) | (None, Some(PresetFlag::Speech)) => "opus",
            (Some(FormatFlag::Flac), _) | (None, Some(PresetFlag::Archive)) => "flac",
            (Some(FormatFlag::Wav), _) => "wav",
            (None, _) => "mp3",
        }
    }
}

fn parse_tag(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(name, value)| (name.trim().to_owned(), value.to_owned()))
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))
}

impl From<&OutputFlags> for UploadOptions {
    fn from(flags: &OutputFlags) -> Self {
        UploadOptions {
            preset: flags.preset.map(|preset| match preset {
                PresetFlag::Voice => types::PresetName::Voice,
                PresetFlag::Podcast => types::PresetName::Podcast,
                PresetFlag::Audiobook => types::PresetName::Audiobook,
                PresetFlag::Music => types::PresetName::Music,
                PresetFlag::Compatible => types::PresetName::Compatible,
                PresetFlag::Speech => types::PresetName::Speech,
                PresetFlag::Apple => types::PresetName::Apple,
                PresetFlag::Archive => types::PresetName::Archive,
            }),
            format: flags.format.map(|format| match format {
                FormatFlag::Mp3 => types::FormatName::Mp3,
                FormatFlag::M4a => types::FormatName::M4a,
                FormatFlag::Opus => types::FormatName::Opus,
                FormatFlag::Flac => types::FormatName::Flac,
                FormatFlag::Wav => types::FormatName::Wav,
            }),
            bitrate_mode: flags.bitrate_mode.map(|mode| match mode {
                BitrateModeFlag::Vbr => types::BitrateModeName::Vbr,
                BitrateModeFlag::Cbr => types::BitrateModeName::Cbr,
                BitrateModeFlag::Abr => types::BitrateModeName::Abr,
            }),
            quality: flags.quality,
            bitrate: flags.bitrate,
            sample_rate: flags.sample_rate,
            bit_depth: flags.bit_depth,
            channels: flags.channels,
            start: flags.start.clone(),
            end: flags.end.clone(),
            normalize: flags.normalize.clone(),
            normalize_true_peak: flags.normalize_true_peak,
            tags: flags.tags.iter().cloned().collect(),
            strip: flags.strip.then_some(true),
            reencode: flags.reencode.then_some(true),
            audio_track: flags.audio_track.clone(),
            cover: flags.cover.map(|cover| match cover {
                CoverFlag::Source => types::CoverName::Source,
                CoverFlag::Frame => types::CoverName::Frame,
                CoverFlag::None => types::CoverName::None,
            }),
            cover_at: flags.cover_at.clone(),
            callback_url: None,
            export_to: flags.export_to.clone(),
            export_key: flags.export_key.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_for_the_format_or_the_presets() {
        let named = |format, preset| {
            OutputFlags {
                format,
                preset,
                ..OutputFlags::default()
            }
            .extension()
        };
        assert_eq!(named(None, None), "mp3");
        assert_eq!(named(None, Some(PresetFlag::Voice)), "mp3");
        assert_eq!(named(None, Some(PresetFlag::Archive)), "flac");
        assert_eq!(named(None, Some(PresetFlag::Speech)), "opus");
        assert_eq!(named(None, Some(PresetFlag::Apple)), "m4a");
        assert_eq!(
            named(Some(FormatFlag::Wav), Some(PresetFlag::Archive)),
            "wav"
        );
        assert_eq!(named(Some(FormatFlag::Mp3), Some(PresetFlag::Apple)), "mp3");
    }
}
