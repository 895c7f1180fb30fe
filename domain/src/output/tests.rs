//! The tests of `output`.

use super::*;

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
