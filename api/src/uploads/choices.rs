//! The output choices as the API shows them: the upload form's fields (documentation only; the
//! form is read by [`super::intake`], and checked by `audiomill_domain::output`) and the
//! `options` a job's status reports.

use audiomill_domain::output::{
    AudioFormat, AudioTrack, BitrateMode, Cover, Loudness, OutputOptions, Preset,
};
use poem_openapi::{Enum, Multipart, Object, types::multipart::Upload};
use std::collections::BTreeMap;

/// A named starting point for the other choices; a field given beside it wins over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub(crate) enum PresetName {
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

impl From<Preset> for PresetName {
    fn from(preset: Preset) -> Self {
        match preset {
            Preset::Voice => Self::Voice,
            Preset::Podcast => Self::Podcast,
            Preset::Audiobook => Self::Audiobook,
            Preset::Music => Self::Music,
            Preset::Compatible => Self::Compatible,
            Preset::Speech => Self::Speech,
            Preset::Apple => Self::Apple,
            Preset::Archive => Self::Archive,
        }
    }
}

/// The output's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub(crate) enum FormatName {
    /// MP3 (LAME), with an ID3v2.4 tag: `audio/mpeg`, `.mp3`.
    Mp3,
    /// AAC-LC in MP4, with iTunes-style tags and cover: `audio/mp4`, `.m4a`.
    M4a,
    /// Opus in Ogg, with Vorbis comments and a picture block: `audio/ogg`, `.opus`.
    Opus,
    /// FLAC, lossless, with Vorbis comments and a picture block: `audio/flac`, `.flac`.
    Flac,
    /// PCM WAVE, lossless, with a RIFF INFO list (no cover, composer or album artist):
    /// `audio/wav`, `.wav`.
    Wav,
}

impl From<AudioFormat> for FormatName {
    fn from(format: AudioFormat) -> Self {
        match format {
            AudioFormat::Mp3 => Self::Mp3,
            AudioFormat::M4a => Self::M4a,
            AudioFormat::Opus => Self::Opus,
            AudioFormat::Flac => Self::Flac,
            AudioFormat::Wav => Self::Wav,
        }
    }
}

/// How the encoder spends bits (MP3 and Opus).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub(crate) enum BitrateModeName {
    /// Variable: for MP3 `quality` decides; for Opus bits go where the sound needs them,
    /// about `bitrate` overall.
    Vbr,
    /// Constant: every frame at `bitrate`.
    Cbr,
    /// Average: about `bitrate` overall (for Opus, constrained VBR).
    Abr,
}

impl From<BitrateMode> for BitrateModeName {
    fn from(mode: BitrateMode) -> Self {
        match mode {
            BitrateMode::Vbr => Self::Vbr,
            BitrateMode::Cbr => Self::Cbr,
            BitrateMode::Abr => Self::Abr,
        }
    }
}

/// Where the output's front-cover picture comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub(crate) enum CoverName {
    /// The picture attached to the video (album art), if it has one.
    Source,
    /// A frame of the video: at `cover_at`, else the first one that is not black past the
    /// first tenth; at most 800 px a side, JPEG.
    Frame,
    /// No picture.
    None,
}

impl From<Cover> for CoverName {
    fn from(cover: Cover) -> Self {
        match cover {
            Cover::Source => Self::Source,
            Cover::Frame => Self::Frame,
            Cover::None => Self::None,
        }
    }
}

/// Documents the multipart form; the handler reads the body as a stream instead, so memory
/// stays flat whatever the file size. Every field but `file` is optional; a bad value, or
/// fields that do not go together, answer 400 naming the field (`field` in the error body)
/// and nothing is stored.
#[derive(Multipart)]
#[allow(dead_code)]
pub(crate) struct UploadForm {
    /// The video (MP4, MOV, AVI, MKV, WebM) or audio file (MP3, M4A, WAV, FLAC, Ogg: Opus or
    /// Vorbis), as `ALLOWED_EXTENSIONS` allows. Several `file` parts (up to
    /// `MAX_FILES_PER_UPLOAD`, 10 by default; one with an `Idempotency-Key`) make a batch: a
    /// job each, with the same choices, followed together at `/batches/{batch_id}`.
    file: Vec<Upload>,
    /// A named starting point for the choices below.
    preset: Option<PresetName>,
    /// The output's format: `mp3` (the default, or the preset's), `m4a`, `opus`, `flac` or
    /// `wav`. Beside a preset, what of the preset the format can take is kept (channels,
    /// loudness, a bitrate it has, a sample rate it has). A field the format has no use for
    /// (`quality` but for MP3, `bitrate_mode` but for MP3 and Opus, `bitrate` for FLAC and
    /// WAV, `bit_depth` but for them) is refused.
    format: Option<FormatName>,
    /// MP3: `vbr` (the default), `cbr` or `abr`. Opus: `vbr` (the default), `cbr` (hard
    /// CBR) or `abr` (constrained VBR).
    bitrate_mode: Option<BitrateModeName>,
    /// MP3 VBR quality, 0 (best, about 245 kbit/s) to 9 (smallest); default 2.
    #[oai(validator(minimum(value = "0"), maximum(value = "9")))]
    quality: Option<u8>,
    /// kbit/s. MP3, with `cbr` or `abr` (and required by them): 32, 40, 48, 56, 64, 80, 96,
    /// 112, 128, 144, 160, 192, 224, 256 or 320; a CBR bitrate must exist at the sample rate
    /// (144 only below 32 kHz, 192 and up only from 32 kHz). M4A: 32 to 320, default 128.
    /// Opus: 6 to 510, default libopus's own (about 96 for stereo).
    #[oai(validator(minimum(value = "6"), maximum(value = "510")))]
    bitrate: Option<u16>,
    /// Hz; default the source's (or the nearest the format has). MP3: 8000, 11025, 12000,
    /// 16000, 22050, 24000, 32000, 44100 or 48000; M4A, FLAC and WAV also 88200 and 96000;
    /// Opus: 8000, 12000, 16000, 24000 or 48000.
    #[oai(validator(minimum(value = "8000"), maximum(value = "96000")))]
    sample_rate: Option<u32>,
    /// FLAC and WAV: bits a sample, 16 or 24; default 16, or 24 for a source with wider
    /// integer samples.
    #[oai(validator(minimum(value = "16"), maximum(value = "24")))]
    bit_depth: Option<u8>,
    /// 1 (mono) or 2 (stereo); default the source's, more than two mixed down to stereo.
    #[oai(validator(minimum(value = "1"), maximum(value = "2")))]
    channels: Option<u8>,
    /// Where the MP3 starts in the video: seconds (`90`, `90.5`) or `HH:MM:SS.mmm`.
    start: Option<String>,
    /// Where it ends, after `start`; seconds or `HH:MM:SS.mmm`.
    end: Option<String>,
    /// Loudness normalisation (EBU R128, two passes): `true` for -16 LUFS, `false`, or a
    /// target integrated loudness from -70 to -5 LUFS.
    normalize: Option<String>,
    /// With `normalize`: the highest true peak, -9 to 0 dBTP; default -1.5.
    #[oai(validator(minimum(value = "-9"), maximum(value = "0")))]
    normalize_true_peak: Option<f64>,
    /// `true`: the output carries no tags at all (no tags, no picture); `tags[...]` and a
    /// cover frame cannot be given with it.
    strip: Option<bool>,
    /// The front-cover picture: `source` (the default), `frame` or `none`. A WAV holds none.
    cover: Option<CoverName>,
    /// Where the cover frame is: seconds or `HH:MM:SS.mmm`; implies `cover=frame`.
    cover_at: Option<String>,
    /// `true`: decode and encode even when the source's audio could be copied as it is. By
    /// default a source whose codec is the format's own (MP3 to MP3, AAC-LC to M4A, Opus to
    /// Opus, FLAC to FLAC, 16- or 24-bit PCM to WAV), at most stereo, is copied packet for
    /// packet when nothing asked needs decoding (no trim, loudness, other rate, channels, bit
    /// depth or encoding settings); `/status` says which was done (`stream_copy`).
    reencode: Option<bool>,
    /// Which audio track to convert: its number (0 for the first, as `/status` lists them in
    /// `audio_tracks`), or a language as the container tags it (`eng`, `deu`; `en`, `de`
    /// match those). Default: the track the container marks default, else the first. A track
    /// the file does not have fails the job (`NoSuchAudioTrack`) with a sentence listing those
    /// it has.
    #[oai(validator(max_length = 3))]
    audio_track: Option<String>,
    /// The title (ID3 `TIT2`; in the other formats their own title tag). Each `tags[...]`
    /// field overrides what the video's metadata says; an empty one removes it. Up to 1024
    /// characters, UTF-8, no control characters. With no title anywhere, the file name
    /// (without extension) is the title.
    #[oai(rename = "tags[title]", validator(max_length = 1024))]
    tag_title: Option<String>,
    /// Artist (`TPE1`).
    #[oai(rename = "tags[artist]", validator(max_length = 1024))]
    tag_artist: Option<String>,
    /// Album (`TALB`).
    #[oai(rename = "tags[album]", validator(max_length = 1024))]
    tag_album: Option<String>,
    /// Album artist (`TPE2`).
    #[oai(rename = "tags[album_artist]", validator(max_length = 1024))]
    tag_album_artist: Option<String>,
    /// Recording date (`TDRC`): `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
    #[oai(rename = "tags[date]", validator(max_length = 10))]
    tag_date: Option<String>,
    /// Comment (`COMM`); line breaks allowed.
    #[oai(rename = "tags[comment]", validator(max_length = 1024))]
    tag_comment: Option<String>,
    /// Track (`TRCK`): `3` or `3/12`.
    #[oai(rename = "tags[track]", validator(max_length = 9))]
    tag_track: Option<String>,
    /// Genre (`TCON`).
    #[oai(rename = "tags[genre]", validator(max_length = 1024))]
    tag_genre: Option<String>,
    /// Composer (`TCOM`).
    #[oai(rename = "tags[composer]", validator(max_length = 1024))]
    tag_composer: Option<String>,
    /// A one-off webhook endpoint for this upload's jobs: an `http` or `https` URL that
    /// resolves to public addresses only (unless the operator allows private ones), told of
    /// `job.completed`, `job.failed` and `job.cancelled` like a registered endpoint, signed
    /// with the secret the answer's `callback` shows.
    #[oai(validator(max_length = 2048))]
    callback_url: Option<String>,
}

/// What a job's output is to be, as its upload asked.
#[derive(Debug, Clone, Object)]
pub(crate) struct OutputChoices {
    /// The preset the choices started from; `null` for none.
    #[oai(nullable)]
    preset: Option<PresetName>,
    /// Always sent; a client reads its absence (a server without formats) as `mp3`.
    #[oai(skip_serializing_if_is_none)]
    format: Option<FormatName>,
    /// MP3 and Opus; `null` for the other formats.
    #[oai(nullable)]
    bitrate_mode: Option<BitrateModeName>,
    /// MP3 VBR quality, 0-9; `null` otherwise.
    #[oai(nullable)]
    quality: Option<u8>,
    /// kbit/s: an MP3's with `cbr` and `abr`, M4A's and Opus's; `null`: none (MP3 `vbr`,
    /// FLAC, WAV) or the encoder's default.
    #[oai(nullable)]
    bitrate: Option<u16>,
    /// Hz; `null`: the source's.
    #[oai(nullable)]
    sample_rate: Option<u32>,
    /// FLAC and WAV: bits a sample; `null`: 16, or 24 for a wider source (and for the lossy
    /// formats).
    #[oai(nullable)]
    bit_depth: Option<u8>,
    /// 1 or 2; `null`: the source's (more than two mixed down to stereo).
    #[oai(nullable)]
    channels: Option<u8>,
    /// Seconds into the video where the MP3 starts; `null`: the beginning.
    #[oai(nullable)]
    start: Option<f64>,
    /// Seconds into the video where it ends; `null`: the end.
    #[oai(nullable)]
    end: Option<f64>,
    /// The loudness it is normalised to; `null`: as the source.
    #[oai(nullable)]
    normalize: Option<LoudnessTarget>,
    /// Tags given with the upload (`title`, `artist`, ...), over the video's own; an empty
    /// value removes that tag.
    tags: BTreeMap<String, String>,
    /// No tags at all.
    strip: bool,
    cover: CoverName,
    /// Seconds into the video of the cover frame; `null`: chosen (or no frame).
    #[oai(nullable)]
    cover_at: Option<f64>,
    /// Decoded and encoded even where the audio could be copied.
    #[oai(default)]
    reencode: bool,
    /// The audio track asked for: a number or a language; left out for the default track.
    #[oai(skip_serializing_if_is_none)]
    audio_track: Option<String>,
}

/// A loudness target (EBU R128).
#[derive(Debug, Clone, Object)]
pub(crate) struct LoudnessTarget {
    /// Integrated loudness, LUFS.
    integrated: f64,
    /// Highest true peak, dBTP.
    true_peak: f64,
    /// Loudness range, LU.
    range: f64,
}

impl From<Loudness> for LoudnessTarget {
    fn from(loudness: Loudness) -> Self {
        Self {
            integrated: loudness.integrated,
            true_peak: loudness.true_peak,
            range: loudness.range,
        }
    }
}

impl From<&OutputOptions> for OutputChoices {
    fn from(options: &OutputOptions) -> Self {
        let seconds = |ms: u64| ms as f64 / 1000.0;
        let format = options.format;
        let mp3_vbr = format.is_mp3() && options.bitrate_mode == BitrateMode::Vbr;
        Self {
            preset: options.preset.map(PresetName::from),
            format: Some(format.into()),
            bitrate_mode: format
                .takes_bitrate_mode()
                .then(|| options.bitrate_mode.into()),
            quality: mp3_vbr.then_some(options.quality),
            bitrate: options.bitrate.filter(|_| !mp3_vbr),
            sample_rate: options.sample_rate,
            bit_depth: options.bit_depth,
            channels: options.channels,
            start: options.start_ms.map(seconds),
            end: options.end_ms.map(seconds),
            normalize: options.normalize.map(LoudnessTarget::from),
            tags: options.tags.clone(),
            strip: options.strip,
            cover: options.cover.into(),
            cover_at: options.cover_at_ms.map(seconds),
            reencode: options.reencode,
            audio_track: options.audio_track.as_ref().map(|track| match track {
                AudioTrack::Index(n) => n.to_string(),
                AudioTrack::Language(code) => code.clone(),
            }),
        }
    }
}

impl OutputChoices {
    pub(crate) fn example() -> Self {
        (&Preset::Podcast.options()).into()
    }
}
