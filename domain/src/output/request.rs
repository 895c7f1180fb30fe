//! The output fields of an upload form as they arrive, and how they are read and checked:
//! each value alone as it comes, then together over the preset's (or the defaults') options.

use super::{
    AudioFormat, AudioTrack, BIT_DEPTHS, BitrateMode, Cover, FieldError, Loudness, MAX_AUDIO_TRACK,
    MAX_TAG_CHARS, MAX_TRIM_MS, OutputOptions, Preset, TAG_FIELDS, TAG_NAMES, list, refuse,
};
use std::fmt;

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

/// `true` or `false`, as a form spells them.
fn yes_or_no(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A trim point: seconds (`90`, `90.5`) or `[HH:]MM:SS[.mmm]`, to the millisecond.
pub(super) fn trim_point(text: &str) -> Result<u64, String> {
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
