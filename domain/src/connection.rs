//! A user's own storage, reached over the S3 protocol: where a job may read its video from
//! and write its MP3 to. Its address follows the rules of links a user names (public
//! addresses only, unless an operator allows private ones); its secret key is kept encrypted
//! and never shown.

use crate::InvalidValue;
use std::fmt;

/// An S3 endpoint: `http` or `https`, a host and maybe a port, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint(url::Url);

impl Endpoint {
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let url = url::Url::parse(text.trim())
            .map_err(|_| InvalidValue("not an absolute http or https URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(InvalidValue("only http and https endpoints are reached"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(InvalidValue("the endpoint has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(InvalidValue(
                "the endpoint must not carry credentials; give the keys apart",
            ));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(InvalidValue(
                "the endpoint is a scheme, a host and a port, with no path or query",
            ));
        }
        Ok(Self(url))
    }

    pub fn as_url(&self) -> &url::Url {
        &self.0
    }

    /// The endpoint as the S3 client is given it, without the trailing `/`.
    pub fn as_str(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }

    pub fn host(&self) -> String {
        crate::address::host(&self.0)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bucket's name as S3 allows it: 3 to 63 lower-case letters, digits, dots and hyphens,
/// starting and ending with a letter or a digit.
pub fn check_bucket(name: &str) -> Result<(), InvalidValue> {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok = (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge_ok(name.chars().next())
        && edge_ok(name.chars().last());
    if ok {
        Ok(())
    } else {
        Err(InvalidValue(
            "a bucket name is 3 to 63 lower-case letters, digits, dots and hyphens",
        ))
    }
}

/// A folder within a bucket: no leading `/`, ending in `/` when not empty, at most 512 bytes.
pub fn normalized_prefix(text: &str) -> Result<String, InvalidValue> {
    let trimmed = text.trim().trim_start_matches('/');
    if trimmed.len() > 512 || trimmed.chars().any(char::is_control) {
        return Err(InvalidValue(
            "a prefix is at most 512 bytes, without control characters",
        ));
    }
    if trimmed.is_empty() || trimmed.ends_with('/') {
        Ok(trimmed.to_owned())
    } else {
        Ok(format!("{trimmed}/"))
    }
}

/// Where an output is written in a user's bucket, under the connection's prefix: text with
/// `{stem}` (the video's name without its extension), `{job_id}`, `{date}` (the day it was
/// converted, `YYYY-MM-DD`) and `{ext}` (the format's extension: `mp3`, `m4a`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate(String);

/// The template an export uses when it names none.
pub const DEFAULT_KEY_TEMPLATE: &str = "{stem}.{ext}";

impl KeyTemplate {
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let text = text.trim();
        if text.is_empty() || text.len() > 512 || text.chars().any(char::is_control) {
            return Err(InvalidValue(
                "a key template is 1 to 512 bytes, without control characters",
            ));
        }
        if text.starts_with('/') || text.split('/').any(|part| part == ".." || part == ".") {
            return Err(InvalidValue(
                "a key template may not start with / or hold . or ..",
            ));
        }
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .ok_or(InvalidValue("a key template's { is never closed"))?;
            let name = &rest[open + 1..open + close];
            if !matches!(name, "stem" | "job_id" | "date" | "ext") {
                return Err(InvalidValue(
                    "a key template knows only {stem}, {job_id}, {date} and {ext}",
                ));
            }
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return Err(InvalidValue("a key template has a } that opens nothing"));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key for one output.
    pub fn render(&self, stem: &str, job_id: &str, date: &str, extension: &str) -> String {
        self.0
            .replace("{stem}", stem)
            .replace("{job_id}", job_id)
            .replace("{date}", date)
            .replace("{ext}", extension)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_a_scheme_and_a_host() {
        for good in [
            "https://s3.example.com",
            "http://10.0.0.5:9000/",
            "https://[::1]:9000",
        ] {
            assert!(Endpoint::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "s3.example.com",
            "ftp://s3.example.com",
            "https://key:secret@s3.example.com",
            "https://s3.example.com/bucket",
            "https://s3.example.com/?x=1",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Endpoint::parse("https://s3.example.com/").unwrap().as_str(),
            "https://s3.example.com"
        );
    }

    #[test]
    fn buckets_prefixes_and_templates_follow_their_rules() {
        assert!(check_bucket("my-videos.2026").is_ok());
        for bad in [
            "ab",
            "My-Videos",
            "-videos",
            "videos-",
            "vid_eos",
            &"a".repeat(64),
        ] {
            assert!(check_bucket(bad).is_err(), "{bad}");
        }
        assert_eq!(normalized_prefix("/in/talks").unwrap(), "in/talks/");
        assert_eq!(normalized_prefix("").unwrap(), "");
        let template = KeyTemplate::parse("out/{date}/{stem}-{job_id}.{ext}").unwrap();
        assert_eq!(
            template.render("talk", "j1", "2026-12-07", "flac"),
            "out/2026-12-07/talk-j1.flac"
        );
        let default = KeyTemplate::parse(DEFAULT_KEY_TEMPLATE).unwrap();
        assert_eq!(
            default.render("talk", "j1", "2026-12-07", "mp3"),
            "talk.mp3"
        );
        for bad in [
            "",
            "/abs.mp3",
            "../up.mp3",
            "{name}.mp3",
            "{stem}.{format}",
            "{stem.mp3",
            "stem}.mp3",
        ] {
            assert!(KeyTemplate::parse(bad).is_err(), "{bad}");
        }
    }
}
