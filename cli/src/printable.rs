//! What the server sends, made safe for a terminal: a job's error, a file name or a message
//! may hold escape sequences that would move the cursor, retitle the window or hide text.
//! Control characters and the bidirectional overrides are shown escaped, as `\u{1b}`.

use std::borrow::Cow;

/// `text` with every character a terminal would act on escaped.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(acted_on) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if acted_on(c) {
            shown.extend(c.escape_unicode());
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

/// JSON for the terminal: serde escapes C0 controls in strings, not DEL, C1 controls or the
/// bidirectional overrides; those can only be inside strings, where `\uXXXX` means the same.
pub fn printable_json(value: &impl serde::Serialize) -> String {
    let json = serde_json::to_string_pretty(value).expect("answers serialize");
    let mut shown = String::with_capacity(json.len());
    for c in json.chars() {
        if acted_on(c) && c != '\n' {
            shown.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            shown.push(c);
        }
    }
    shown
}

/// A file name the server gave, safe to create here: no folder, nothing a terminal acts on.
pub fn file_stem(name: &str) -> String {
    let stem = std::path::Path::new(name)
        .file_stem()
        .map_or_else(String::new, |stem| stem.to_string_lossy().into_owned());
    let stem: String = stem
        .chars()
        .map(|c| if acted_on(c) || c == '/' { '_' } else { c })
        .collect();
    match stem.trim_start_matches('.') {
        "" => "audio".to_owned(),
        _ => stem,
    }
}

fn acted_on(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_shown_not_obeyed() {
        assert_eq!(printable("clip.mp4"), "clip.mp4");
        assert_eq!(
            printable("a\u{1b}]0;owned\u{7}b"),
            "a\\u{1b}]0;owned\\u{7}b"
        );
        assert_eq!(printable("x\u{9b}2Jy"), "x\\u{9b}2Jy");
        assert_eq!(printable("line\nnext\r"), "line\\u{a}next\\u{d}");
        assert_eq!(printable("evil\u{202e}4pm.exe"), "evil\\u{202e}4pm.exe");
        assert_eq!(printable("Überspielung"), "Überspielung");
    }

    #[test]
    fn json_keeps_its_meaning_and_loses_its_escapes() {
        let value = serde_json::json!({ "error": "a\u{1b}[2Jb\u{9b}c\u{7f}" });
        let shown = printable_json(&value);
        assert!(!shown.chars().any(|c| c != '\n' && acted_on(c)), "{shown}");
        let back: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn a_served_name_makes_a_plain_file_name() {
        assert_eq!(file_stem("talk.mp4"), "talk");
        assert_eq!(file_stem("../../etc/passwd"), "passwd");
        assert_eq!(file_stem("a\u{1b}[31mred.mov"), "a_[31mred");
        assert_eq!(file_stem(".."), "audio");
        assert_eq!(file_stem(""), "audio");
        assert_eq!(file_stem(".hidden.mp4"), ".hidden");
    }
}
