//! Limits on a multipart upload form, so that memory stays flat and CPU linear for any body.
//!
//! The multipart parser (multer) enforces sizes of fields and of the whole body, but it keeps
//! everything before the first boundary, and everything before the end of a part's headers, in
//! one buffer that it searches again on every read: a body with no boundary, or a part whose
//! headers never end, grows that buffer without bound at quadratic cost. [`FrameGuard`] watches
//! the raw bytes on their way into the parser and stops the body as soon as a preamble or a
//! part's headers run past a few KiB. Together with [`constraints`] and [`MAX_FIELDS`], no
//! form costs more than its file.

use memchr::memmem;
use multer::{Constraints, SizeLimit};

/// Bytes allowed before the first boundary (clients send none).
pub const MAX_PREAMBLE: usize = 4 * 1024;

/// Bytes allowed in one part's headers.
pub const MAX_PART_HEADERS: usize = 8 * 1024;

/// Parts other than files allowed in one form (files are counted by `UploadLimits::max_files`).
pub const MAX_FIELDS: usize = 32;

/// Bytes allowed in a part other than the file.
pub const MAX_TEXT_FIELD: u64 = 64 * 1024;

/// The parser's own limits for a form of up to `max_files` files of `max_file` bytes each: each
/// file part, every other part, and the whole body (the files plus room for the other parts
/// and the framing).
pub fn constraints(max_file: u64, max_files: usize) -> Constraints {
    let parts = (MAX_FIELDS + max_files) as u64;
    let framing = (MAX_PART_HEADERS + 128) as u64 * parts + MAX_PREAMBLE as u64;
    let whole = max_file * max_files as u64 + MAX_TEXT_FIELD * MAX_FIELDS as u64 + framing;
    Constraints::new().size_limit(
        SizeLimit::new()
            .whole_stream(whole)
            .per_field(MAX_TEXT_FIELD)
            // One byte over the file limit is enough to know; the handler says 413 itself.
            .for_field("file", max_file + 1),
    )
}

/// Which framing limit a body broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("no multipart boundary within the first {} KiB", MAX_PREAMBLE / 1024)]
    NoBoundary,
    #[error("a part's headers are longer than {} KiB", MAX_PART_HEADERS / 1024)]
    HeadersTooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Before the first boundary.
    Preamble,
    /// After a boundary, before the blank line that ends a part's headers.
    Headers,
    /// A part's content, up to the next boundary.
    Content,
}

/// Follows a multipart body's framing as its bytes go by, keeping only the few bytes needed
/// to find a delimiter split across two chunks.
pub struct FrameGuard {
    delimiter: Vec<u8>,
    stage: Stage,
    /// Bytes seen in the current preamble or headers.
    seen: usize,
    /// The last bytes of the previous chunk, for matches across chunks.
    tail: Vec<u8>,
}

const END_OF_HEADERS: &[u8] = b"\r\n\r\n";

impl FrameGuard {
    pub fn new(boundary: &str) -> Self {
        Self {
            delimiter: [b"\r\n--", boundary.as_bytes()].concat(),
            stage: Stage::Preamble,
            seen: 0,
            tail: Vec::new(),
        }
    }

    /// Takes the next chunk of the body; `Err` once a limit is broken.
    pub fn observe(&mut self, mut chunk: &[u8]) -> Result<(), FramingError> {
        loop {
            let pattern = match self.stage {
                Stage::Headers => END_OF_HEADERS,
                // Like the parser, take the first `--boundary` wherever it starts.
                Stage::Preamble => &self.delimiter[2..],
                Stage::Content => &self.delimiter[..],
            };
            match find_across(&self.tail, chunk, pattern) {
                Some(end) => {
                    self.count(end)?;
                    chunk = &chunk[end..];
                    self.tail.clear();
                    self.seen = 0;
                    self.stage = match self.stage {
                        Stage::Preamble | Stage::Content => Stage::Headers,
                        Stage::Headers => Stage::Content,
                    };
                }
                None => {
                    let keep = pattern.len() - 1;
                    self.count(chunk.len())?;
                    self.tail
                        .extend_from_slice(&chunk[chunk.len().saturating_sub(keep)..]);
                    let excess = self.tail.len().saturating_sub(keep);
                    self.tail.drain(..excess);
                    return Ok(());
                }
            }
        }
    }

    fn count(&mut self, bytes: usize) -> Result<(), FramingError> {
        self.seen = self.seen.saturating_add(bytes);
        match self.stage {
            Stage::Preamble if self.seen > MAX_PREAMBLE => Err(FramingError::NoBoundary),
            Stage::Headers if self.seen > MAX_PART_HEADERS => Err(FramingError::HeadersTooLong),
            _ => Ok(()),
        }
    }
}

/// Where `pattern` ends in `chunk`, when it starts in `tail` (the end of the previous chunk,
/// shorter than the pattern) or in `chunk` itself.
fn find_across(tail: &[u8], chunk: &[u8], pattern: &[u8]) -> Option<usize> {
    if !tail.is_empty() {
        let head = &chunk[..chunk.len().min(pattern.len() - 1)];
        let window = [tail, head].concat();
        if let Some(start) = memmem::find(&window, pattern) {
            return Some(start + pattern.len() - tail.len());
        }
    }
    memmem::find(chunk, pattern).map(|start| start + pattern.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(guard: &mut FrameGuard, body: &[u8], chunk: usize) -> Result<(), FramingError> {
        body.chunks(chunk).try_for_each(|c| guard.observe(c))
    }

    fn form(parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (name, content) in parts {
            body.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; name=\"");
            body.extend_from_slice(name.as_bytes());
            body.extend_from_slice(b"\"\r\n\r\n");
            body.extend_from_slice(content);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--XyZ--\r\n");
        body
    }

    #[test]
    fn well_formed_forms_pass_in_any_chunking() {
        let big = vec![b'a'; 100_000];
        let body = form(&[("note", b"hello"), ("file", &big), ("other", b"")]);
        for chunk in [1, 2, 3, 7, 64, 4096, body.len()] {
            let mut guard = FrameGuard::new("XyZ");
            assert_eq!(feed(&mut guard, &body, chunk), Ok(()), "chunks of {chunk}");
            assert_eq!(
                guard.stage,
                Stage::Headers,
                "ends after the closing delimiter"
            );
        }
    }

    #[test]
    fn a_body_without_its_boundary_stops_after_the_preamble_limit() {
        let junk = vec![b'x'; 10 * MAX_PREAMBLE];
        for chunk in [1, 1000, junk.len()] {
            let mut guard = FrameGuard::new("XyZ");
            assert_eq!(
                feed(&mut guard, &junk, chunk),
                Err(FramingError::NoBoundary)
            );
        }
        let mut guard = FrameGuard::new("XyZ");
        let mut late = vec![b'x'; MAX_PREAMBLE - 10];
        late.extend_from_slice(b"\r\n");
        late.extend_from_slice(&form(&[("file", b"data")]));
        assert_eq!(
            feed(&mut guard, &late, 100),
            Ok(()),
            "a short preamble is allowed"
        );
    }

    #[test]
    fn endless_part_headers_are_stopped() {
        let mut body =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\nX-Junk: ".to_vec();
        body.extend(std::iter::repeat_n(b'j', 2 * MAX_PART_HEADERS));
        let mut guard = FrameGuard::new("XyZ");
        assert_eq!(
            feed(&mut guard, &body, 512),
            Err(FramingError::HeadersTooLong)
        );
    }

    #[test]
    fn a_delimiter_split_across_chunks_is_found() {
        let body = form(&[("file", b"0123456789")]);
        // Every split point of the body, as two chunks.
        for split in 1..body.len() {
            let mut guard = FrameGuard::new("XyZ");
            guard.observe(&body[..split]).unwrap();
            guard.observe(&body[split..]).unwrap();
            assert_eq!(guard.stage, Stage::Headers, "split at {split}");
        }
    }
}
