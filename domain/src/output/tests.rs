//! The tests of `output`.

use super::{request::trim_point, *};

fn resolve(fields: &[(&str, &str)]) -> Result<OutputOptions, FieldError> {
    let mut request = OutputRequest::default();
    for (name, value) in fields {
        request.add(name, value)?;
    }
    request.resolve()
}

fn refused_field(fields: &[(&str, &str)]) -> &'static str {
    resolve(fields).expect_err("refused").field
}

#[test]
fn no_fields_are_the_defaults() {
    let options = resolve(&[]).unwrap();
    assert!(options.is_default());
    assert_eq!(options.quality, 2);
    assert_eq!(options.bitrate_mode, BitrateMode::Vbr);
}

#[test]
fn each_field_is_read() {
    let options = resolve(&[
        ("bitrate_mode", "CBR"),
        ("bitrate", "128"),
        ("sample_rate", "44100"),
        ("channels", "mono"),
        ("start", "00:01:02.5"),
        ("end", "90"),
        ("normalize", "-14"),
        ("normalize_true_peak", "-1"),
    ])
    .unwrap();
    assert_eq!(options.bitrate_mode, BitrateMode::Cbr);
    assert_eq!(options.bitrate, Some(128));
    assert_eq!(options.sample_rate, Some(44100));
    assert_eq!(options.channels, Some(1));
    assert_eq!(options.start_ms, Some(62_500));
    assert_eq!(options.end_ms, Some(90_000));
    let loudness = options.normalize.unwrap();
    assert_eq!((loudness.integrated, loudness.true_peak), (-14.0, -1.0));
}

#[test]
fn trim_points_take_seconds_or_clock_times() {
    for (text, millis) in [
        ("0", 0),
        ("90", 90_000),
        ("90.5", 90_500),
        ("1.25", 1_250),
        ("1.005", 1_005),
        ("01:30", 90_000),
        ("1:02:03.4", 3_723_400),
        ("00:00:00.001", 1),
    ] {
        assert_eq!(trim_point(text), Ok(millis), "{text}");
    }
    for bad in [
        "",
        "-1",
        "1.2345",
        "1:60",
        "1:5",
        "a",
        "1::2",
        "1.",
        "1:02:03:04",
        "+5",
        "1e3",
        " 1",
        "99999999999999999999",
    ] {
        assert!(trim_point(bad).is_err(), "{bad:?}");
    }
    assert!(trim_point("25:00:00").unwrap_err().contains("24 hours"));
}

#[test]
fn presets_start_and_fields_win() {
    let podcast = resolve(&[("preset", "podcast")]).unwrap();
    assert_eq!(podcast.preset, Some(Preset::Podcast));
    assert_eq!(
        (podcast.bitrate_mode, podcast.bitrate),
        (BitrateMode::Cbr, Some(96))
    );
    assert_eq!(podcast.channels, Some(1));
    assert_eq!(podcast.normalize.unwrap().integrated, -16.0);
    let louder = resolve(&[
        ("preset", "Podcast"),
        ("normalize", "-14"),
        ("channels", "2"),
    ])
    .unwrap();
    assert_eq!(louder.normalize.unwrap().integrated, -14.0);
    assert_eq!(louder.channels, Some(2));
    let quiet = resolve(&[("preset", "voice"), ("normalize", "false")]).unwrap();
    assert_eq!(quiet.normalize, None);
    // Every preset is valid as it stands.
    for preset in Preset::ALL {
        let mut options = preset.options();
        assert_eq!(options.check(), Ok(()), "{}", preset.name());
    }
}

#[test]
fn bad_values_name_their_field() {
    for (fields, field) in [
        (&[("preset", "loud")][..], "preset"),
        (&[("bitrate_mode", "vbr2")][..], "bitrate_mode"),
        (&[("quality", "10")][..], "quality"),
        (&[("quality", "-1")][..], "quality"),
        (&[("quality", "2.5")][..], "quality"),
        (
            &[("bitrate_mode", "cbr"), ("bitrate", "100")][..],
            "bitrate",
        ),
        (&[("bitrate_mode", "cbr"), ("bitrate", "16")][..], "bitrate"),
        (
            &[("bitrate_mode", "cbr"), ("bitrate", "999999999999")][..],
            "bitrate",
        ),
        (&[("bitrate_mode", "cbr")][..], "bitrate"),
        (&[("bitrate", "128")][..], "bitrate"),
        (&[("sample_rate", "44000")][..], "sample_rate"),
        (&[("channels", "6")][..], "channels"),
        (&[("start", "abc")][..], "start"),
        (&[("end", "1:99")][..], "end"),
        (&[("start", "10"), ("end", "5")][..], "end"),
        (&[("start", "10"), ("end", "10")][..], "end"),
        (&[("normalize", "-80")][..], "normalize"),
        (&[("normalize", "loud")][..], "normalize"),
        (&[("normalize_true_peak", "-1")][..], "normalize_true_peak"),
        (
            &[("normalize", "true"), ("normalize_true_peak", "3")][..],
            "normalize_true_peak",
        ),
    ] {
        assert_eq!(refused_field(fields), field, "{fields:?}");
    }
}

#[test]
fn a_cbr_bitrate_must_fit_the_sample_rate() {
    // 320 kbit/s exists only at MPEG-1 rates (32 kHz and up), 144 only at MPEG-2 ones.
    assert_eq!(
        refused_field(&[
            ("bitrate_mode", "cbr"),
            ("bitrate", "320"),
            ("sample_rate", "22050")
        ]),
        "bitrate"
    );
    assert!(
        resolve(&[
            ("bitrate_mode", "cbr"),
            ("bitrate", "320"),
            ("sample_rate", "48000")
        ])
        .is_ok()
    );
    assert_eq!(
        refused_field(&[
            ("bitrate_mode", "cbr"),
            ("bitrate", "144"),
            ("sample_rate", "44100")
        ]),
        "bitrate"
    );
    assert!(
        resolve(&[
            ("bitrate_mode", "cbr"),
            ("bitrate", "144"),
            ("sample_rate", "24000")
        ])
        .is_ok()
    );
    assert!(
        resolve(&[
            ("bitrate_mode", "cbr"),
            ("bitrate", "64"),
            ("sample_rate", "16000")
        ])
        .is_ok()
    );
    // ABR is an average: LAME picks each frame's bitrate itself.
    assert!(
        resolve(&[
            ("bitrate_mode", "abr"),
            ("bitrate", "192"),
            ("sample_rate", "22050")
        ])
        .is_ok()
    );
}

#[test]
fn a_bad_value_is_refused_as_it_arrives_and_a_combination_once_all_are_in() {
    let mut request = OutputRequest::default();
    assert_eq!(request.add("quality", "12").unwrap_err().field, "quality");
    // A bitrate alone is fine until the mode that takes it is known.
    request.add("bitrate", "128").unwrap();
    request.add("normalize_true_peak", "-2").unwrap();
    assert_eq!(request.resolve().unwrap_err().field, "bitrate");
    request.add("bitrate_mode", "cbr").unwrap();
    assert_eq!(request.resolve().unwrap_err().field, "normalize_true_peak");
    request.add("normalize", "-20").unwrap();
    let options = request.resolve().unwrap();
    assert_eq!(options.normalize.unwrap().true_peak, -2.0);
}

#[test]
fn a_field_given_twice_or_unknown_is_refused() {
    let mut request = OutputRequest::default();
    request.add("quality", "2").unwrap();
    assert_eq!(request.add("quality", "3").unwrap_err().field, "quality");
    assert_eq!(request.add("volume", "11").unwrap_err().field, "form");
}

#[test]
fn options_travel_as_json_and_old_inputs_read_as_defaults() {
    let options = resolve(&[("preset", "podcast")]).unwrap();
    let json = serde_json::to_string(&options).unwrap();
    assert_eq!(
        serde_json::from_str::<OutputOptions>(&json).unwrap(),
        options
    );
    assert!(
        serde_json::from_str::<OutputOptions>("{}")
            .unwrap()
            .is_default()
    );
}

#[test]
fn tags_cover_and_strip_are_read_and_checked() {
    let options = resolve(&[
        ("tags[title]", "Überraschung 日本 🎬"),
        ("tags[track]", "3/12"),
        ("tags[date]", "2024-02"),
        ("tags[comment]", "two\nlines"),
        ("cover_at", "1:05"),
    ])
    .unwrap();
    assert_eq!(options.tags["title"], "Überraschung 日本 🎬");
    assert_eq!(options.tags["track"], "3/12");
    assert_eq!(
        (options.cover, options.cover_at_ms),
        (Cover::Frame, Some(65_000))
    );
    let long = "é".repeat(MAX_TAG_CHARS + 1);
    for (fields, field) in [
        (&[("tags[title]", long.as_str())][..], "tags[title]"),
        (&[("tags[artist]", "a\u{0}b")][..], "tags[artist]"),
        (&[("tags[title]", "a\nb")][..], "tags[title]"),
        (&[("tags[track]", "0")][..], "tags[track]"),
        (&[("tags[track]", "3/")][..], "tags[track]"),
        (&[("tags[track]", "x")][..], "tags[track]"),
        (&[("tags[date]", "2024-13")][..], "tags[date]"),
        (&[("tags[date]", "24")][..], "tags[date]"),
        (&[("cover", "video")][..], "cover"),
        (&[("cover", "none"), ("cover_at", "5")][..], "cover_at"),
        (&[("cover_at", "soon")][..], "cover_at"),
        (&[("strip", "maybe")][..], "strip"),
        (
            &[("strip", "true"), ("tags[album]", "A")][..],
            "tags[album]",
        ),
        (&[("strip", "true"), ("cover", "frame")][..], "cover"),
        (&[("strip", "true"), ("cover_at", "3")][..], "cover_at"),
    ] {
        assert_eq!(refused_field(fields), field, "{fields:?}");
    }
    assert!(
        resolve(&[("strip", "true"), ("cover", "none")])
            .unwrap()
            .strip
    );
    assert_eq!(
        refused_field(&[("tags[title]", "a"), ("tags[title]", "b")]),
        "tags[title]"
    );
}

#[test]
fn tags_come_from_the_source_then_the_fields_then_the_file_name() {
    let source = [
        ("TITLE", "Source title"),
        ("artist", "Source artist"),
        ("comment", "keep\u{7}me"),
        ("year", "1999"),
        ("encoder", "Lavf"),
        ("creation_time", "2020-01-01"),
    ];
    let plain = OutputOptions::default().tags_for(source, "talk.mp4");
    assert_eq!(
        plain,
        vec![
            ("title", "Source title".to_owned()),
            ("artist", "Source artist".to_owned()),
            ("date", "1999".to_owned()),
            ("comment", "keepme".to_owned()),
        ]
    );
    let mut options = OutputOptions::default();
    options.tags.insert("artist".into(), "Me".into());
    options.tags.insert("comment".into(), String::new());
    options.tags.insert("title".into(), String::new());
    let given = options.tags_for(source, "talk.mp4");
    // An empty field removes the tag, and the file name does not stand in for it.
    assert_eq!(
        given,
        vec![("artist", "Me".to_owned()), ("date", "1999".to_owned())]
    );
    let named = OutputOptions::default().tags_for([], "Überraschung 日本 🎬.mp4");
    assert_eq!(named, vec![("title", "Überraschung 日本 🎬".to_owned())]);
    let huge = "x".repeat(5000);
    let cut = OutputOptions::default().tags_for([("album", huge.as_str())], "a.mp4");
    assert_eq!(cut[1], ("album", "x".repeat(MAX_TAG_CHARS)));
    let stripped = OutputOptions {
        strip: true,
        ..OutputOptions::default()
    };
    assert!(stripped.tags_for(source, "talk.mp4").is_empty());
}

#[test]
fn a_format_is_chosen_and_mp3_stays_the_default() {
    assert_eq!(resolve(&[]).unwrap().format, AudioFormat::Mp3);
    let flac = resolve(&[("format", "FLAC"), ("bit_depth", "24")]).unwrap();
    assert_eq!((flac.format, flac.bit_depth), (AudioFormat::Flac, Some(24)));
    let opus = resolve(&[
        ("format", "opus"),
        ("bitrate_mode", "cbr"),
        ("bitrate", "24"),
        ("sample_rate", "16000"),
    ])
    .unwrap();
    assert_eq!(
        (opus.bitrate_mode, opus.bitrate, opus.sample_rate),
        (BitrateMode::Cbr, Some(24), Some(16000))
    );
    // M4A and Opus take a bitrate in any mode; VBR is the default.
    let m4a = resolve(&[("bitrate", "192"), ("format", "m4a")]).unwrap();
    assert_eq!((m4a.format, m4a.bitrate), (AudioFormat::M4a, Some(192)));
    assert!(resolve(&[("format", "m4a"), ("sample_rate", "96000")]).is_ok());
}

#[test]
fn a_field_the_format_has_no_use_for_is_refused() {
    for (fields, field) in [
        (&[("format", "wma")][..], "format"),
        (&[("format", "m4a"), ("quality", "2")][..], "quality"),
        (
            &[("format", "flac"), ("bitrate_mode", "cbr")][..],
            "bitrate_mode",
        ),
        (
            &[("format", "m4a"), ("bitrate_mode", "vbr")][..],
            "bitrate_mode",
        ),
        (&[("format", "wav"), ("bitrate", "128")][..], "bitrate"),
        (&[("bit_depth", "24")][..], "bit_depth"),
        (&[("format", "opus"), ("bit_depth", "16")][..], "bit_depth"),
        (&[("format", "flac"), ("bit_depth", "20")][..], "bit_depth"),
        (&[("format", "m4a"), ("bitrate", "400")][..], "bitrate"),
        (&[("format", "m4a"), ("bitrate", "16")][..], "bitrate"),
        (&[("format", "opus"), ("bitrate", "600")][..], "bitrate"),
        (
            &[("format", "opus"), ("sample_rate", "44100")][..],
            "sample_rate",
        ),
        (&[("sample_rate", "96000")][..], "sample_rate"),
        (&[("format", "wav"), ("cover", "frame")][..], "cover"),
        (&[("format", "wav"), ("cover_at", "3")][..], "cover_at"),
    ] {
        assert_eq!(refused_field(fields), field, "{fields:?}");
    }
    let message = resolve(&[("format", "opus"), ("sample_rate", "44100")])
        .unwrap_err()
        .message;
    assert!(
        message.contains("48000") && message.contains("Opus"),
        "{message}"
    );
}

#[test]
fn a_format_beside_a_preset_keeps_what_it_can_take() {
    let voice = resolve(&[("preset", "voice"), ("format", "opus")]).unwrap();
    assert_eq!(voice.format, AudioFormat::Opus);
    assert_eq!(voice.preset, Some(Preset::Voice));
    // Mono, loudness and the bitrate carry over; 22.05 kHz is no Opus rate.
    assert_eq!((voice.channels, voice.bitrate), (Some(1), Some(64)));
    assert_eq!(voice.sample_rate, None);
    assert_eq!(voice.normalize.unwrap().integrated, -16.0);
    let podcast = resolve(&[("preset", "podcast"), ("format", "flac")]).unwrap();
    assert_eq!(
        (podcast.bitrate, podcast.bitrate_mode, podcast.sample_rate),
        (None, BitrateMode::Vbr, Some(44100))
    );
    let apple = resolve(&[("preset", "apple"), ("format", "mp3")]).unwrap();
    assert_eq!(
        (apple.bitrate, apple.bitrate_mode),
        (None, BitrateMode::Vbr)
    );
    assert_eq!(
        resolve(&[("preset", "archive")]).unwrap().format,
        AudioFormat::Flac
    );
    assert_eq!(
        resolve(&[("preset", "speech")]).unwrap().format,
        AudioFormat::Opus
    );
    // Every preset is valid in every format.
    for preset in Preset::ALL {
        for format in AudioFormat::ALL {
            let mut options = preset.options().in_format(format);
            assert_eq!(
                options.check(),
                Ok(()),
                "{} as {}",
                preset.name(),
                format.name()
            );
        }
    }
}

#[test]
fn an_mp3_jobs_options_do_not_name_the_format() {
    let mp3 = serde_json::to_value(resolve(&[("preset", "music")]).unwrap()).unwrap();
    assert!(
        mp3.get("format").is_none() && mp3.get("bit_depth").is_none(),
        "{mp3}"
    );
    let flac = resolve(&[("format", "flac")]).unwrap();
    let json = serde_json::to_value(&flac).unwrap();
    assert_eq!(json["format"], "flac");
    assert_eq!(serde_json::from_value::<OutputOptions>(json).unwrap(), flac);
}

#[test]
fn reencoding_is_asked_for_and_travels_only_when_asked() {
    assert!(!resolve(&[]).unwrap().reencode);
    let forced = resolve(&[("reencode", "true")]).unwrap();
    assert!(forced.reencode);
    assert_eq!(serde_json::to_value(&forced).unwrap()["reencode"], true);
    assert!(
        serde_json::to_value(resolve(&[]).unwrap())
            .unwrap()
            .get("reencode")
            .is_none()
    );
    assert_eq!(refused_field(&[("reencode", "sometimes")]), "reencode");
}

#[test]
fn an_audio_track_is_chosen_by_number_or_language() {
    assert_eq!(resolve(&[]).unwrap().audio_track, None);
    let second = resolve(&[("audio_track", "1")]).unwrap();
    assert_eq!(second.audio_track, Some(AudioTrack::Index(1)));
    let german = resolve(&[("audio_track", "DE")]).unwrap();
    let track = german.audio_track.unwrap();
    assert!(track.speaks("ger") && track.speaks("deu") && track.speaks("de"));
    assert!(!track.speaks("eng"));
    assert!(AudioTrack::parse("eng").unwrap().speaks("ENG"));
    for bad in ["-1", "64", "123", "e", "engl", "e1", "", "über"] {
        assert_eq!(
            refused_field(&[("audio_track", bad)]),
            "audio_track",
            "{bad:?}"
        );
    }
    // It travels as a number or a text, and only when chosen.
    assert_eq!(serde_json::to_value(&second).unwrap()["audio_track"], 1);
    let json = serde_json::to_string(&resolve(&[("audio_track", "fra")]).unwrap()).unwrap();
    let back: OutputOptions = serde_json::from_str(&json).unwrap();
    assert_eq!(back.audio_track, Some(AudioTrack::Language("fra".into())));
    assert!(
        serde_json::to_value(resolve(&[]).unwrap())
            .unwrap()
            .get("audio_track")
            .is_none()
    );
}
