//! A source's audio tracks: which one a job converts (`audio_track`), and each as `/status`
//! lists it once the source is read.

use serde::{Deserialize, Serialize};

/// Which of the source's audio tracks is converted: the `n`th (from 0, in the file's order),
/// or the first in a language (as its container tags it: ISO 639-2 such as `eng`, `deu`; a
/// two-letter code such as `de` matches its three-letter forms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AudioTrack {
    Index(u32),
    Language(String),
}

/// The most audio tracks a choice may name: far more than any real source has.
pub const MAX_AUDIO_TRACK: u32 = 63;

impl AudioTrack {
    /// Reads `12` as an index and `eng` or `de` as a language.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if !text.is_empty() && text.len() <= 2 && text.bytes().all(|b| b.is_ascii_digit()) {
            return text
                .parse()
                .ok()
                .filter(|n| *n <= MAX_AUDIO_TRACK)
                .map(AudioTrack::Index);
        }
        ((2..=3).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphabetic()))
            .then(|| AudioTrack::Language(text.to_ascii_lowercase()))
    }

    /// Whether a track its container tags with `language` is in the language chosen.
    pub fn speaks(&self, language: &str) -> bool {
        let AudioTrack::Language(wanted) = self else {
            return false;
        };
        let language = language.to_ascii_lowercase();
        language == *wanted || three_letter_forms(wanted).contains(&language.as_str())
    }
}

/// The ISO 639-2 codes (bibliographic and terminological) of a common ISO 639-1 code.
fn three_letter_forms(code: &str) -> &'static [&'static str] {
    match code {
        "en" => &["eng"],
        "de" => &["deu", "ger"],
        "fr" => &["fra", "fre"],
        "es" => &["spa"],
        "it" => &["ita"],
        "pt" => &["por"],
        "nl" => &["nld", "dut"],
        "ru" => &["rus"],
        "ja" => &["jpn"],
        "zh" => &["zho", "chi"],
        "ko" => &["kor"],
        "ar" => &["ara"],
        "pl" => &["pol"],
        "sv" => &["swe"],
        "da" => &["dan"],
        "no" => &["nor"],
        "fi" => &["fin"],
        "tr" => &["tur"],
        "cs" => &["ces", "cze"],
        "el" => &["ell", "gre"],
        "he" => &["heb"],
        "hi" => &["hin"],
        "hu" => &["hun"],
        "uk" => &["ukr"],
        _ => &[],
    }
}

/// One audio track of a source, as its container describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceTrack {
    /// Its number among the source's audio tracks, from 0: what `audio_track` takes.
    pub index: u32,
    /// As the container tags it (ISO 639-2: `eng`, `deu`, ...); `None` when untagged or
    /// `und`.
    pub language: Option<String>,
    /// FFmpeg's name of its codec: `aac`, `ac3`, `opus`, ...
    pub codec: String,
    pub channels: u16,
    pub title: Option<String>,
    /// Whether the container marks it as the one to play by default.
    pub default: bool,
}
