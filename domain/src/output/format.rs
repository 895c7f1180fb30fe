//! The audio formats a job can make, and what each of them takes: its encoder's settings, its
//! sample rates, how its tags and cover travel, its file name and content type.

use serde::{Deserialize, Serialize};
use std::ops::RangeInclusive;

/// The sample rates FLAC, WAV and M4A take: an MP3's and the high-resolution ones.
const WIDE_SAMPLE_RATES: [u32; 11] = [
    8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000,
];

/// The sample rates an Opus stream can be encoded at.
const OPUS_SAMPLE_RATES: [u32; 5] = [8000, 12000, 16000, 24000, 48000];

/// Bit depths of the lossless formats' samples.
pub const BIT_DEPTHS: [u8; 2] = [16, 24];

/// What the job makes. MP3 unless asked otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AudioFormat {
    /// MPEG-1/2 Layer III by LAME, with an ID3v2.4 tag.
    #[default]
    Mp3,
    /// AAC-LC in an MP4 (iTunes-style atoms for tags and cover).
    M4a,
    /// Opus in Ogg, with Vorbis comments (the cover as a picture block).
    Opus,
    /// Free Lossless Audio Codec, with Vorbis comments and a picture block.
    Flac,
    /// PCM in RIFF WAVE, with a RIFF INFO list (no picture).
    Wav,
}

impl AudioFormat {
    pub const ALL: [AudioFormat; 5] = [
        AudioFormat::Mp3,
        AudioFormat::M4a,
        AudioFormat::Opus,
        AudioFormat::Flac,
        AudioFormat::Wav,
    ];

    /// The name the API and the command line use, which is also the file extension.
    pub fn name(self) -> &'static str {
        match self {
            AudioFormat::Mp3 => "mp3",
            AudioFormat::M4a => "m4a",
            AudioFormat::Opus => "opus",
            AudioFormat::Flac => "flac",
            AudioFormat::Wav => "wav",
        }
    }

    /// The name people read: "MP3", "M4A", ...
    pub fn label(self) -> &'static str {
        match self {
            AudioFormat::Mp3 => "MP3",
            AudioFormat::M4a => "M4A",
            AudioFormat::Opus => "Opus",
            AudioFormat::Flac => "FLAC",
            AudioFormat::Wav => "WAV",
        }
    }

    pub fn extension(self) -> &'static str {
        self.name()
    }

    /// The `Content-Type` a download of this format has.
    pub fn content_type(self) -> &'static str {
        match self {
            AudioFormat::Mp3 => "audio/mpeg",
            AudioFormat::M4a => "audio/mp4",
            AudioFormat::Opus => "audio/ogg",
            AudioFormat::Flac => "audio/flac",
            AudioFormat::Wav => "audio/wav",
        }
    }

    /// The format `text` names (any case; `aac` for M4A, `ogg` for Opus).
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "aac" => Some(AudioFormat::M4a),
            "ogg" => Some(AudioFormat::Opus),
            name => Self::ALL.into_iter().find(|format| format.name() == name),
        }
    }

    pub fn is_mp3(&self) -> bool {
        *self == AudioFormat::Mp3
    }

    pub fn is_lossless(self) -> bool {
        matches!(self, AudioFormat::Flac | AudioFormat::Wav)
    }

    /// The bitrates (kbit/s) `bitrate` may ask of this format; none for the lossless ones.
    /// MP3 takes only its frame header's values, checked apart (`super::BITRATES`).
    pub fn bitrates(self) -> Option<RangeInclusive<u16>> {
        match self {
            AudioFormat::Mp3 | AudioFormat::M4a => Some(32..=320),
            AudioFormat::Opus => Some(6..=510),
            AudioFormat::Flac | AudioFormat::Wav => None,
        }
    }

    /// Whether `bitrate_mode` means something: LAME's VBR, CBR and ABR, and libopus's VBR,
    /// hard CBR and constrained VBR.
    pub fn takes_bitrate_mode(self) -> bool {
        matches!(self, AudioFormat::Mp3 | AudioFormat::Opus)
    }

    pub fn sample_rates(self) -> &'static [u32] {
        match self {
            AudioFormat::Mp3 => &super::SAMPLE_RATES,
            AudioFormat::Opus => &OPUS_SAMPLE_RATES,
            AudioFormat::M4a | AudioFormat::Flac | AudioFormat::Wav => &WIDE_SAMPLE_RATES,
        }
    }

    /// Whether the file can hold a front-cover picture.
    pub fn carries_picture(self) -> bool {
        self != AudioFormat::Wav
    }

    /// Whether a long source may be converted in parts joined afterwards: only where parts
    /// join without a gap or a click (MP3 frames, with the bit reservoir kept; see
    /// `in_parts`). The others are converted in one pass.
    pub fn converts_in_parts(self) -> bool {
        self == AudioFormat::Mp3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_aliases_are_understood() {
        for format in AudioFormat::ALL {
            assert_eq!(AudioFormat::parse(format.name()), Some(format));
            assert_eq!(
                AudioFormat::parse(&format.label().to_uppercase()),
                Some(format)
            );
        }
        assert_eq!(AudioFormat::parse(" AAC "), Some(AudioFormat::M4a));
        assert_eq!(AudioFormat::parse("ogg"), Some(AudioFormat::Opus));
        assert_eq!(AudioFormat::parse("wma"), None);
        assert_eq!(AudioFormat::parse(""), None);
    }

    #[test]
    fn formats_travel_by_name_and_mp3_is_the_default() {
        assert_eq!(AudioFormat::default(), AudioFormat::Mp3);
        assert_eq!(
            serde_json::to_string(&AudioFormat::Flac).unwrap(),
            "\"flac\""
        );
        let rates = AudioFormat::Opus.sample_rates();
        assert!(!rates.contains(&44100) && rates.contains(&48000));
        assert!(AudioFormat::Wav.sample_rates().contains(&96000));
        assert!(!AudioFormat::Wav.carries_picture());
    }
}
