//! Caps on what is read from a server: whatever answers at a server's address cannot make a
//! client hold more than an answer needs, however long the body it sends.
//!
//! Every generated operation goes through [`Client`]'s `exec` hook: an answer is read whole
//! before it is parsed, at most [`MAX_ANSWER_BYTES`]; a longer one reads as a broken body.
//! The MP3 and ZIP downloads are streamed to their files, not held, and pass as they come.

use crate::generated::Client;
use futures::StreamExt;
use progenitor_client::{ClientHooks, ClientInfo, OperationInfo};

/// The largest answer read whole. A page of 100 jobs is about 60 KB.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// The largest event a job's stream may send. Events are a few hundred bytes.
pub const MAX_EVENT_BYTES: usize = 64 << 10;

/// Operations whose answers are files, streamed where they go.
const STREAMED: [&str; 3] = ["download_mp3", "download_mp3_by_fid", "download_batch"];

impl ClientHooks for Client {
    async fn exec(
        &self,
        request: reqwest::Request,
        info: &OperationInfo,
    ) -> reqwest::Result<reqwest::Response> {
        let response = self.client().execute(request).await?;
        if STREAMED.contains(&info.operation_id) {
            return Ok(response);
        }
        Ok(read_whole(response).await)
    }
}

/// `response` with its body read, if it is at most [`MAX_ANSWER_BYTES`]; otherwise its body
/// fails when read, saying it was too large.
pub async fn read_whole(mut response: reqwest::Response) -> reqwest::Response {
    let mut head = http::Response::builder()
        .status(response.status())
        .version(response.version());
    if let Some(headers) = head.headers_mut() {
        *headers = std::mem::take(response.headers_mut());
    }
    let declared = response.content_length().unwrap_or(0);
    let mut body = Vec::new();
    let read = if declared > MAX_ANSWER_BYTES as u64 {
        Err(too_large())
    } else {
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if body.len() + chunk.len() > MAX_ANSWER_BYTES => {
                    break Err(too_large());
                }
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break Ok(()),
                Err(error) => break Err(std::io::Error::other(error)),
            }
        }
    };
    let body = match read {
        Ok(()) => reqwest::Body::from(body),
        Err(error) => reqwest::Body::wrap_stream(futures::stream::once(async move {
            Err::<bytes::Bytes, _>(error)
        })),
    };
    reqwest::Response::from(
        head.body(body)
            .expect("a status and headers taken from a response"),
    )
}

fn too_large() -> std::io::Error {
    std::io::Error::other(format!(
        "the answer was larger than {} MB, more than any answer of Audiomill's",
        MAX_ANSWER_BYTES >> 20
    ))
}

/// `bytes` cut off with an error once more than [`MAX_EVENT_BYTES`] come without the blank
/// line that ends an event.
pub fn events_capped<E: std::error::Error + Send + Sync + 'static>(
    bytes: impl futures::Stream<Item = Result<bytes::Bytes, E>>,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    let mut in_event = 0usize;
    let mut previous = 0u8;
    let mut over = false;
    bytes.map(move |chunk| {
        if over {
            return Err(event_too_large());
        }
        let chunk = chunk.map_err(std::io::Error::other)?;
        for &byte in chunk.iter() {
            let ends_event = byte == b'\n' && previous == b'\n';
            in_event = if ends_event { 0 } else { in_event + 1 };
            if byte != b'\r' {
                previous = byte;
            }
        }
        if in_event > MAX_EVENT_BYTES {
            over = true;
            return Err(event_too_large());
        }
        Ok(chunk)
    })
}

fn event_too_large() -> std::io::Error {
    std::io::Error::other(format!(
        "an event was larger than {} KB, more than any event of Audiomill's",
        MAX_EVENT_BYTES >> 10
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_event_without_end_is_cut_off_and_events_pass() {
        let small = bytes::Bytes::from("event: progress\ndata: {}\n\n".repeat(10_000));
        let passed: Vec<Result<bytes::Bytes, std::io::Error>> = events_capped(
            futures::stream::iter(vec![Ok::<_, std::io::Error>(small.clone())]),
        )
        .collect()
        .await;
        assert!(passed.iter().all(Result::is_ok));
        let endless = bytes::Bytes::from(vec![b'x'; 8 << 10]);
        let chunks = (0..100).map(|_| Ok::<_, std::io::Error>(endless.clone()));
        let read: Vec<Result<bytes::Bytes, std::io::Error>> =
            events_capped(futures::stream::iter(chunks)).collect().await;
        let first_error = read.iter().position(Result::is_err).unwrap();
        assert!(first_error <= 9, "{first_error}");
        assert!(read[first_error..].iter().all(Result::is_err));
    }
}
