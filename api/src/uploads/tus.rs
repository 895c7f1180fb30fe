//! The tus 1.0.0 resumable upload protocol's headers, read strictly, and the checks on a
//! request's body as it streams in. The operations themselves are in `routes::resumable`.

use super::file::{self, Container, Head};
use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use md5::Md5;
use poem::http::HeaderMap;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

/// The protocol version spoken, the only one.
pub const VERSION: &str = "1.0.0";

/// The extensions offered, as `Tus-Extension` lists them.
pub const EXTENSIONS: &str = "creation,creation-with-upload,termination,expiration,checksum";

/// The checksum algorithms `Upload-Checksum` may name.
pub const CHECKSUM_ALGORITHMS: &str = "md5,sha1,sha256";

/// The content type of a request carrying an upload's bytes.
pub const CHUNK_CONTENT_TYPE: &str = "application/offset+octet-stream";

/// A header the protocol defines, refused with a sentence for the client's author.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadHeader(pub String);

/// The one value of header `name`, as text; `Ok(None)` when absent; an error when given twice
/// or not visible ASCII.
pub fn single(headers: &HeaderMap, name: &str) -> Result<Option<String>, BadHeader> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BadHeader(format!("The {name} header must be given once.")));
    }
    match value.to_str() {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(_) => Err(BadHeader(format!(
            "The {name} header must be visible ASCII."
        ))),
    }
}

/// What a request's `Tus-Resumable` says.
#[derive(Debug, PartialEq, Eq)]
pub enum Version {
    /// The version spoken here.
    Spoken,
    /// Another version (or a list of versions): the protocol answers 412.
    Other,
    /// None, or not a version at all: a malformed request (400).
    Malformed,
}

/// What the request's `Tus-Resumable` says: the protocol's 412 is for a version not spoken
/// here; a header that is missing or names no version is a malformed request.
pub fn version(headers: &HeaderMap) -> Version {
    let Ok(Some(given)) = single(headers, "tus-resumable") else {
        return Version::Malformed;
    };
    let is_version = |text: &str| {
        let parts: Vec<&str> = text.trim().split('.').collect();
        parts.len() == 3
            && parts
                .iter()
                .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
    };
    if given == VERSION {
        Version::Spoken
    } else if given.split(',').all(is_version) {
        Version::Other
    } else {
        Version::Malformed
    }
}

/// A byte count or offset: decimal digits only, no sign, no spaces inside, within `u64`.
pub fn size(headers: &HeaderMap, name: &str) -> Result<Option<u64>, BadHeader> {
    let Some(text) = single(headers, name)? else {
        return Ok(None);
    };
    let refused = || {
        BadHeader(format!(
            "The {name} header must be a whole number of bytes (0 to {}), digits only.",
            i64::MAX
        ))
    };
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refused());
    }
    // Stored as a signed 64-bit column: anything larger is refused here.
    text.parse::<i64>()
        .map(|n| Some(n as u64))
        .map_err(|_| refused())
}

/// Whether the content type is the one chunks are sent with (any letter case, parameters
/// ignored).
pub fn is_chunk(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|value| {
        value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .eq_ignore_ascii_case(CHUNK_CONTENT_TYPE)
    })
}

/// The most pairs `Upload-Metadata` may carry.
const MAX_METADATA_PAIRS: usize = 64;

/// `Upload-Metadata`: comma-separated `key base64(value)` pairs, keys unique, values UTF-8
/// text (an empty value may leave out its space).
pub fn metadata(headers: &HeaderMap) -> Result<BTreeMap<String, String>, BadHeader> {
    let mut pairs = BTreeMap::new();
    let Some(text) = single(headers, "upload-metadata")? else {
        return Ok(pairs);
    };
    if text.is_empty() {
        return Ok(pairs);
    }
    let bad = |why: &str| BadHeader(format!("The Upload-Metadata header is malformed: {why}."));
    for pair in text.split(',') {
        let pair = pair.trim();
        let (key, value) = match pair.split_once(' ') {
            Some((key, value)) => (key, value.trim()),
            None => (pair, ""),
        };
        if key.is_empty() {
            return Err(bad("a key is empty"));
        }
        let value = STANDARD
            .decode(value)
            .map_err(|_| bad(&format!("the value of `{key}` is not base64")))?;
        let value = String::from_utf8(value)
            .map_err(|_| bad(&format!("the value of `{key}` is not UTF-8 text")))?;
        if pairs.insert(key.to_owned(), value).is_some() {
            return Err(bad(&format!("`{key}` is given twice")));
        }
        if pairs.len() > MAX_METADATA_PAIRS {
            return Err(bad(&format!("it has more than {MAX_METADATA_PAIRS} pairs")));
        }
    }
    Ok(pairs)
}

/// The digest an `Upload-Checksum` names, computed as the bytes go by.
#[derive(Clone)]
pub enum Hasher {
    Md5(Md5),
    Sha1(Sha1),
    Sha256(Sha256),
}

impl Hasher {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Md5(hasher) => hasher.update(bytes),
            Self::Sha1(hasher) => hasher.update(bytes),
            Self::Sha256(hasher) => hasher.update(bytes),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Self::Md5(hasher) => hasher.finalize().to_vec(),
            Self::Sha1(hasher) => hasher.finalize().to_vec(),
            Self::Sha256(hasher) => hasher.finalize().to_vec(),
        }
    }
}

/// An `Upload-Checksum`: the algorithm and the digest the request's body must have.
#[derive(Clone)]
pub struct Checksum {
    hasher: Hasher,
    expected: Vec<u8>,
}

impl Checksum {
    /// `Upload-Checksum: <algorithm> <base64 digest>`, if given.
    pub fn of(headers: &HeaderMap) -> Result<Option<Self>, BadHeader> {
        let Some(text) = single(headers, "upload-checksum")? else {
            return Ok(None);
        };
        let bad = || {
            BadHeader(format!(
                "The Upload-Checksum header must be an algorithm ({CHECKSUM_ALGORITHMS}) and \
                 the body's digest in base64."
            ))
        };
        let (algorithm, digest) = text.split_once(' ').ok_or_else(bad)?;
        let hasher = match algorithm.to_ascii_lowercase().as_str() {
            "md5" => Hasher::Md5(Md5::new()),
            "sha1" => Hasher::Sha1(Sha1::new()),
            "sha256" => Hasher::Sha256(Sha256::new()),
            _ => return Err(bad()),
        };
        let expected = STANDARD.decode(digest.trim()).map_err(|_| bad())?;
        Ok(Some(Self { hasher, expected }))
    }
}

/// Why a chunk's body stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkStop {
    /// The connection broke, or the body was malformed.
    Cut,
    /// Nothing arrived for the idle deadline.
    Idle,
    /// The body fell below the minimum upload rate.
    TooSlow,
    /// More bytes than `Upload-Length` leaves.
    BeyondLength,
    /// The file's first bytes are not the container its extension promises.
    NotAVideo,
}

/// What a chunk's body is checked against as it streams in.
pub struct ChunkChecks {
    /// Bytes the upload may still take.
    pub room: u64,
    /// A body that sends nothing for this long is cut off.
    pub idle: Duration,
    /// For the chunk that starts the file: the container its extension promises.
    pub sniff_for: Option<Option<Container>>,
    pub checksum: Option<Checksum>,
}

/// The checksum's verdict once the body has been read: `None` without a checksum.
#[derive(Clone)]
pub struct ChecksumVerdict(Arc<Mutex<Option<Checksum>>>);

impl ChecksumVerdict {
    /// Whether the request asked for a checksum.
    pub fn is_checked(&self) -> bool {
        self.0.lock().expect("not poisoned").is_some()
    }

    /// True when no checksum was asked for, or the body matched it.
    pub fn matches(&self) -> bool {
        match self.0.lock().expect("not poisoned").take() {
            None => true,
            Some(checksum) => checksum.hasher.finish() == checksum.expected,
        }
    }
}

/// The body with `checks` applied: it ends early with a [`ChunkStop`] when one fails.
pub fn checked<S, E>(
    body: S,
    checks: ChunkChecks,
) -> (
    impl Stream<Item = Result<Bytes, ChunkStop>> + Send + Unpin + 'static,
    ChecksumVerdict,
)
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: Into<std::io::Error>,
{
    let too_slow = Arc::new(AtomicBool::new(false));
    let slow_flag = too_slow.clone();
    let verdict = ChecksumVerdict(Arc::new(Mutex::new(checks.checksum)));
    let hashing = verdict.clone();
    let state = Progress {
        room: checks.room,
        sniff: checks.sniff_for.map(|expected| (Head::new(), expected)),
    };
    let idle = checks.idle;
    let rated = Box::pin(file::at_minimum_rate(body, too_slow));
    let stream = futures::stream::unfold(
        (rated, state, false),
        move |(mut body, mut state, ended)| {
            let slow_flag = slow_flag.clone();
            let hashing = hashing.clone();
            async move {
                if ended {
                    return None;
                }
                let chunk = match tokio::time::timeout(idle, body.next()).await {
                    Err(_) => Err(ChunkStop::Idle),
                    Ok(None) => return None,
                    Ok(Some(Err(_))) if slow_flag.load(Ordering::Relaxed) => {
                        Err(ChunkStop::TooSlow)
                    }
                    Ok(Some(Err(_))) => Err(ChunkStop::Cut),
                    Ok(Some(Ok(chunk))) => Ok(chunk),
                };
                let checked = chunk.and_then(|chunk| state.take(chunk, &hashing));
                let ended = checked.is_err();
                Some((checked, (body, state, ended)))
            }
        },
    );
    (Box::pin(stream), verdict)
}

/// What the checks remember between chunks.
struct Progress {
    room: u64,
    sniff: Option<(Head, Option<Container>)>,
}

impl Progress {
    fn take(&mut self, chunk: Bytes, hashing: &ChecksumVerdict) -> Result<Bytes, ChunkStop> {
        if chunk.len() as u64 > self.room {
            return Err(ChunkStop::BeyondLength);
        }
        self.room -= chunk.len() as u64;
        if let Some((head, expected)) = &mut self.sniff
            && head.push(&chunk)
        {
            let seen = Container::sniff(&head.bytes);
            if seen.is_none() || seen != *expected {
                return Err(ChunkStop::NotAVideo);
            }
            self.sniff = None;
        }
        if let Some(checksum) = hashing.0.lock().expect("not poisoned").as_mut() {
            checksum.hasher.update(&chunk);
        }
        Ok(chunk)
    }
}

/// `Upload-Expires`: an HTTP date (RFC 9110's IMF-fixdate).
pub fn http_date(unix_millis: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(unix_millis)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem::http::HeaderValue;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                poem::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn sizes_are_digits_only_within_range() {
        let read = |value: &[u8]| size(&headers(&[("upload-length", value)]), "Upload-Length");
        assert_eq!(read(b"0"), Ok(Some(0)));
        assert_eq!(read(b"123456"), Ok(Some(123_456)));
        assert_eq!(read(b"9223372036854775807"), Ok(Some(i64::MAX as u64)));
        for bad in [
            &b"-1"[..],
            b"+5",
            b"1e6",
            b"0x10",
            b"12 34",
            b"",
            b"9223372036854775808",
            b"18446744073709551616",
            b"99999999999999999999999",
            b"1.5",
            b"\xc3\xa9",
        ] {
            assert!(read(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(size(&HeaderMap::new(), "Upload-Length"), Ok(None));
        let twice = headers(&[("upload-offset", b"1"), ("upload-offset", b"1")]);
        assert!(size(&twice, "Upload-Offset").is_err());
    }

    #[test]
    fn metadata_pairs_are_decoded_and_checked() {
        let read = |value: &str| metadata(&headers(&[("upload-metadata", value.as_bytes())]));
        let pairs = read("filename dGFsay5tcDQ=,bitrate MTI4, normalize").unwrap();
        assert_eq!(pairs["filename"], "talk.mp4");
        assert_eq!(pairs["bitrate"], "128");
        assert_eq!(pairs["normalize"], "");
        for bad in [
            "filename dGFsay5tcDQ=,filename YQ==",
            "filename not*base64",
            " ,x",
            "name /w==",
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..65).map(|i| format!("k{i} YQ==")).collect();
        assert!(read(&many.join(",")).is_err());
    }

    #[test]
    fn checksums_name_a_known_algorithm_and_a_base64_digest() {
        let read = |value: &str| Checksum::of(&headers(&[("upload-checksum", value.as_bytes())]));
        assert!(read("sha256 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=").is_ok());
        assert!(read("MD5 1B2M2Y8AsgTpgAmY7PhCfg==").is_ok());
        for bad in ["crc32 AAAA", "sha256", "sha256 ***", ""] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_the_chunk_content_type_carries_bytes() {
        for good in [
            "application/offset+octet-stream",
            "Application/Offset+Octet-Stream; charset=x",
        ] {
            assert!(is_chunk(Some(good)), "{good}");
        }
        for bad in [
            None,
            Some("application/octet-stream"),
            Some("application/offset+octet-streamx"),
            Some(""),
        ] {
            assert!(!is_chunk(bad), "{bad:?}");
        }
    }

    async fn run(
        chunks: Vec<&'static [u8]>,
        checks: ChunkChecks,
    ) -> (Vec<Result<Bytes, ChunkStop>>, bool) {
        let body = futures::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c))),
        );
        let (stream, verdict) = checked(body, checks);
        let items = stream.collect().await;
        (items, verdict.matches())
    }

    fn checks(room: u64) -> ChunkChecks {
        ChunkChecks {
            room,
            idle: Duration::from_secs(5),
            sniff_for: None,
            checksum: None,
        }
    }

    #[tokio::test]
    async fn a_body_past_its_room_stops() {
        let (items, _) = run(vec![b"abcd", b"efgh"], checks(6)).await;
        assert_eq!(items.len(), 2);
        assert_eq!(items[1], Err(ChunkStop::BeyondLength));
    }

    #[tokio::test]
    async fn the_first_bytes_must_be_the_promised_container() {
        let mkv = ChunkChecks {
            sniff_for: Some(Container::for_extension("mkv")),
            ..checks(100)
        };
        let (items, _) = run(
            vec![
                b"\x1a\x45\xdf\xa3",
                b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
            ],
            mkv,
        )
        .await;
        assert!(items.iter().all(Result::is_ok));
        let mp4 = ChunkChecks {
            sniff_for: Some(Container::for_extension("mp4")),
            ..checks(100)
        };
        let (items, _) = run(vec![b"GIF89a0000000000000"], mp4).await;
        assert_eq!(items, vec![Err(ChunkStop::NotAVideo)]);
    }

    #[tokio::test]
    async fn the_checksum_covers_the_whole_body() {
        let digest = STANDARD.encode(Sha256::digest(b"hello world"));
        let with = |value: String| ChunkChecks {
            checksum: Checksum::of(&headers(&[("upload-checksum", value.as_bytes())])).unwrap(),
            ..checks(100)
        };
        let (_, matched) = run(vec![b"hello ", b"world"], with(format!("sha256 {digest}"))).await;
        assert!(matched);
        let (_, matched) = run(vec![b"hello ", b"w0rld"], with(format!("sha256 {digest}"))).await;
        assert!(!matched);
    }

    #[tokio::test]
    async fn a_silent_body_is_cut_off_at_the_idle_deadline() {
        let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"ab"))])
            .chain(futures::stream::pending());
        let quick = ChunkChecks {
            idle: Duration::from_millis(100),
            ..checks(100)
        };
        let (stream, _) = checked(Box::pin(body), quick);
        let items: Vec<_> = stream.collect().await;
        assert_eq!(
            items,
            vec![Ok(Bytes::from_static(b"ab")), Err(ChunkStop::Idle)]
        );
    }

    #[test]
    fn expiry_is_an_http_date() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn a_missing_or_malformed_version_is_told_from_another_version() {
        let with = |value: Option<&str>| {
            let mut headers = HeaderMap::new();
            if let Some(value) = value {
                headers.insert("tus-resumable", value.parse().unwrap());
            }
            version(&headers)
        };
        assert_eq!(with(Some("1.0.0")), Version::Spoken);
        assert_eq!(with(Some(" 1.0.0 ")), Version::Spoken);
        for other in ["0.2.2", "1.0.0, 1.0.0", "2.0.0,0.2.2"] {
            assert_eq!(with(Some(other)), Version::Other, "{other}");
        }
        for malformed in [
            None,
            Some(""),
            Some("{}"),
            Some("1.0"),
            Some("1..0"),
            Some("v1.0.0"),
        ] {
            assert_eq!(with(malformed), Version::Malformed, "{malformed:?}");
        }
    }
}
