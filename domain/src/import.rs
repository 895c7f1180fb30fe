//! Sources fetched from a link: the `http` or `https` URL a job imports its video from, and
//! what of it may be shown. The URL may carry credentials (a user name and password, or the
//! signature of a presigned link): it is kept where only the job's own fetch reads it, and
//! shown anywhere else only as [`ImportUrl::redacted`].

use crate::InvalidValue;
use std::fmt;

/// The longest source URL accepted: presigned links run long.
pub const MAX_IMPORT_URL_LENGTH: usize = 8192;

/// The most redirects one fetch follows, each checked like the first address.
pub const MAX_REDIRECTS: usize = 5;

/// A video's address: absolute `http` or `https`, with a host. A fragment is dropped (it never
/// reaches the server).
#[derive(Clone, PartialEq, Eq)]
pub struct ImportUrl(url::Url);

impl ImportUrl {
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        if text.len() > MAX_IMPORT_URL_LENGTH {
            return Err(InvalidValue("longer than 8192 characters"));
        }
        let mut url = url::Url::parse(text.trim())
            .map_err(|_| InvalidValue("not an absolute http or https URL"))?;
        Self::check(&url)?;
        url.set_fragment(None);
        Ok(Self(url))
    }

    /// Where a redirect from this URL leads: `location` read against it, held to the same
    /// rules.
    pub fn redirected(&self, location: &str) -> Result<Self, InvalidValue> {
        let mut url = self
            .0
            .join(location)
            .map_err(|_| InvalidValue("the redirect's Location is not a URL"))?;
        Self::check(&url)?;
        url.set_fragment(None);
        Ok(Self(url))
    }

    fn check(url: &url::Url) -> Result<(), InvalidValue> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(InvalidValue("only http and https URLs can be imported"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(InvalidValue("the URL has no host"));
        }
        Ok(())
    }

    /// The URL as fetched, credentials and all: for the fetch alone.
    pub fn as_url(&self) -> &url::Url {
        &self.0
    }

    /// The host (an IPv6 literal without its brackets).
    pub fn host(&self) -> String {
        crate::address::host(&self.0)
    }

    /// What may be shown of the URL: scheme, host, port and path, without a user name,
    /// password or query (where presigned links keep their signatures).
    pub fn redacted(&self) -> String {
        let mut shown = self.0.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        shown.set_query(None);
        shown.to_string()
    }

    /// The file name the path ends in, decoded; `None` when it ends in `/` or names nothing.
    pub fn file_name(&self) -> Option<String> {
        let last = self.0.path_segments()?.next_back()?;
        let decoded = percent_decoded(last);
        let trimmed = decoded.trim();
        (!trimmed.is_empty()).then(|| trimmed.to_owned())
    }
}

/// `%xx` sequences decoded, the result read as UTF-8 (invalid bytes replaced).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(high), Some(low)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((high * 16 + low) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Shown redacted, so that neither a log line nor a debug print carries credentials.
impl fmt::Debug for ImportUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImportUrl({})", self.redacted())
    }
}

impl fmt::Display for ImportUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The addresses `url` reaches now, all public unless `allow_private` (`IMPORT_ALLOW_PRIVATE`).
#[cfg(feature = "resolve")]
pub async fn resolve(
    url: &ImportUrl,
    allow_private: bool,
) -> Result<Vec<std::net::SocketAddr>, crate::address::Unreachable> {
    crate::address::resolve(&url.0, allow_private).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_with_a_host() {
        for bad in [
            "ftp://example.com/a.mp4",
            "file:///etc/passwd",
            "gopher://example.com/",
            "data:video/mp4;base64,AAAA",
            "/relative.mp4",
            "http://",
            "",
        ] {
            assert!(ImportUrl::parse(bad).is_err(), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_IMPORT_URL_LENGTH));
        assert!(ImportUrl::parse(&long).is_err());
        let url = ImportUrl::parse(" https://example.com/v.mp4#t=10 ").unwrap();
        assert_eq!(url.as_url().as_str(), "https://example.com/v.mp4");
    }

    #[test]
    fn credentials_and_queries_are_never_shown() {
        let url = ImportUrl::parse(
            "https://alice:s3cret@bucket.example.com:8443/dir/talk%20one.mp4?X-Amz-Signature=abc",
        )
        .unwrap();
        let shown = url.redacted();
        assert_eq!(shown, "https://bucket.example.com:8443/dir/talk%20one.mp4");
        for secret in ["alice", "s3cret", "Signature", "abc"] {
            assert!(!format!("{url} {url:?}").contains(secret), "{secret}");
        }
        assert_eq!(url.file_name().as_deref(), Some("talk one.mp4"));
        assert_eq!(
            ImportUrl::parse("https://example.com/")
                .unwrap()
                .file_name(),
            None
        );
        assert_eq!(
            ImportUrl::parse("https://example.com").unwrap().file_name(),
            None
        );
    }

    #[test]
    fn redirects_are_read_against_the_url_and_held_to_its_rules() {
        let url = ImportUrl::parse("https://example.com/a/b.mp4").unwrap();
        assert_eq!(
            url.redirected("../c.mp4").unwrap().as_url().as_str(),
            "https://example.com/c.mp4"
        );
        assert_eq!(
            url.redirected("//other.example/x").unwrap().host(),
            "other.example"
        );
        assert!(url.redirected("file:///etc/passwd").is_err());
        assert!(url.redirected("ftp://example.com/").is_err());
    }
}
