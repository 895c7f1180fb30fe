//! Reading an upload: a streaming multipart body, the file's name, and its container type.

use audiomill_domain::output::AudioFormat;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio::time::Instant;

pub use audiomill_domain::container::{Container, clean_file_name, extension};

/// Collects the first bytes of a stream for sniffing, keeping every byte for the store.
pub struct Head {
    pub bytes: Vec<u8>,
}

impl Head {
    pub const WANTED: usize = 16;

    pub fn new() -> Self {
        Self {
            bytes: Vec::with_capacity(Self::WANTED),
        }
    }

    /// Adds a chunk; true once enough bytes are here.
    pub fn push(&mut self, chunk: &Bytes) -> bool {
        let missing = Self::WANTED.saturating_sub(self.bytes.len());
        self.bytes
            .extend_from_slice(&chunk[..missing.min(chunk.len())]);
        self.bytes.len() >= Self::WANTED
    }
}

impl Default for Head {
    fn default() -> Self {
        Self::new()
    }
}

/// `Content-Disposition` for a download named after the original file: an ASCII fallback in
/// `filename` and the exact name, percent-encoded, in `filename*` (RFC 6266).
pub fn content_disposition(original: &str, format: AudioFormat) -> String {
    attachment(&format!("{}.{}", stem_of(original), format.extension()))
}

/// The name of an uploaded file without its extension, cleaned (`audio` when nothing is left).
pub fn stem_of(original: &str) -> String {
    Path::new(&clean_file_name(original))
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("audio")
        .to_owned()
}

/// `Content-Disposition` for a download named `name`: an ASCII fallback in `filename` and the
/// exact name, percent-encoded, in `filename*` (RFC 6266).
pub fn attachment(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '/' | ';' | '%') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// After this grace period an upload must keep arriving at [`MIN_UPLOAD_RATE`] on average.
pub const UPLOAD_GRACE: Duration = Duration::from_secs(30);

/// Bytes per second, on average: about a 64 kbit/s link. Slower uploads are cut off, so a
/// client cannot hold a connection (and an upload slot) by trickling its body.
pub const MIN_UPLOAD_RATE: u64 = 8 * 1024;

/// Passes `body` through, failing it once it falls behind the minimum rate: the next chunk
/// must arrive before `UPLOAD_GRACE + received / MIN_UPLOAD_RATE` from the start. `too_slow`
/// is set when that happens, so the handler can answer 408 rather than "malformed".
pub fn at_minimum_rate<S, E>(
    body: S,
    too_slow: Arc<AtomicBool>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: Into<std::io::Error>,
{
    let start = Instant::now();
    futures::stream::unfold((body, 0u64, false), move |(mut body, received, ended)| {
        let too_slow = too_slow.clone();
        async move {
            if ended {
                return None;
            }
            let allowed =
                UPLOAD_GRACE + Duration::from_secs_f64(received as f64 / MIN_UPLOAD_RATE as f64);
            match tokio::time::timeout_at(start + allowed, body.next()).await {
                Ok(Some(Ok(chunk))) => {
                    let received = received + chunk.len() as u64;
                    Some((Ok(chunk), (body, received, false)))
                }
                Ok(Some(Err(error))) => Some((Err(error.into()), (body, received, true))),
                Ok(None) => None,
                Err(_) => {
                    too_slow.store(true, Ordering::Relaxed);
                    let error = std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the upload arrived too slowly",
                    );
                    Some((Err(error), (body, received, true)))
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_are_recognised_by_their_first_bytes() {
        let mut mp4 = vec![0, 0, 0, 0x20];
        mp4.extend_from_slice(b"ftypisom\0\0\0\0");
        assert_eq!(Container::sniff(&mp4), Some(Container::IsoBmff));
        assert_eq!(
            Container::sniff(b"RIFF\x10\0\0\0AVI LIST"),
            Some(Container::Riff)
        );
        assert_eq!(
            Container::sniff(b"\x1A\x45\xDF\xA3\x01\0\0\0\0\0\0\x1f"),
            Some(Container::Ebml)
        );
        assert_eq!(Container::sniff(b"just text, no video here"), None);
        assert_eq!(Container::sniff(b"short"), None);
    }

    #[test]
    fn audio_containers_are_recognised_by_their_first_bytes() {
        for (head, container) in [
            (&b"RIFF\x10\0\0\0WAVEfmt "[..], Container::Wave),
            (b"fLaC\0\0\0\x22\x10\0\x10\0\0", Container::Flac),
            (b"OggS\0\x02\0\0\0\0\0\0\0\0", Container::Ogg),
            (b"ID3\x04\0\0\0\0\x10\x00\0\0", Container::Mp3),
            // MPEG-1 Layer III, 128 kbit/s, 44.1 kHz; and MPEG-2 at 22.05 kHz.
            (b"\xFF\xFB\x90\x64\0\0\0\0\0\0\0\0", Container::Mp3),
            (b"\xFF\xF3\x40\xC4\0\0\0\0\0\0\0\0", Container::Mp3),
        ] {
            assert_eq!(Container::sniff(head), Some(container), "{head:?}");
        }
        for not_mp3 in [
            // ADTS AAC (layer 0), a free-format and a bad bitrate, a reserved sample rate.
            &b"\xFF\xF1\x50\x80\0\0\0\0\0\0\0\0"[..],
            b"\xFF\xFB\x00\x64\0\0\0\0\0\0\0\0",
            b"\xFF\xFB\xF0\x64\0\0\0\0\0\0\0\0",
            b"\xFF\xFB\x9C\x64\0\0\0\0\0\0\0\0",
            b"#EXTM3U\n#EXT-X-VERSION:3\n",
            b"ID3 is how this text begins",
            b"ID3\x04\0\0\x80\0\0\0\0\0\0",
        ] {
            assert_eq!(Container::sniff(not_mp3), None, "{not_mp3:?}");
        }
        for (extension, container) in [
            ("mp3", Container::Mp3),
            ("m4a", Container::IsoBmff),
            ("opus", Container::Ogg),
            ("oga", Container::Ogg),
            ("flac", Container::Flac),
            ("wav", Container::Wave),
        ] {
            assert_eq!(Container::for_extension(extension), Some(container));
        }
        assert!(
            audiomill_domain::container::EXTENSIONS
                .iter()
                .all(|e| Container::for_extension(e).is_some())
        );
    }

    #[test]
    fn file_names_lose_their_directories_and_control_characters() {
        assert_eq!(clean_file_name("C:\\videos\\clip.mp4"), "clip.mp4");
        assert_eq!(clean_file_name("../../etc/passwd.mp4"), "passwd.mp4");
        assert_eq!(clean_file_name("a\u{0}b\nc.mp4"), "abc.mp4");
        let long = clean_file_name(&format!("{}.MP4", "é".repeat(1000)));
        assert_eq!(long.chars().count(), 255);
        assert!(long.ends_with(".MP4"), "{long}");
        assert_eq!(extension("Clip.MP4").as_deref(), Some("mp4"));
        assert_eq!(extension("noext"), None);
    }

    #[test]
    fn content_disposition_is_safe_for_any_name() {
        assert_eq!(
            content_disposition("holiday.mp4", AudioFormat::Mp3),
            "attachment; filename=\"holiday.mp3\"; filename*=UTF-8''holiday.mp3"
        );
        let tricky = content_disposition("we\"ird\\na;me/..\\é.mov", AudioFormat::Mp3);
        assert!(
            tricky.starts_with("attachment; filename=\"_.mp3\"") || !tricky.contains("\"\""),
            "{tricky}"
        );
        let unicode = content_disposition("Überraschung \"1\".mkv", AudioFormat::Mp3);
        assert!(
            unicode.contains("filename=\"_berraschung _1_.mp3\""),
            "{unicode}"
        );
        assert!(
            unicode.contains("filename*=UTF-8''%C3%9Cberraschung%20%221%22.mp3"),
            "{unicode}"
        );
        assert!(content_disposition("", AudioFormat::Mp3).contains("filename=\"audio.mp3\""));
        assert_eq!(
            content_disposition("talk.mkv", AudioFormat::Flac),
            "attachment; filename=\"talk.flac\"; filename*=UTF-8''talk.flac"
        );
    }
}
