//! Resumable uploads (tus 1.0.0, `/uploads`): create one, ask where it stands, send the rest
//! of the file in chunks from there, or terminate it. A chunk cut off keeps what arrived: ask
//! [`resumable_offset`] and call [`send_resumable`] again, in this process or a later one
//! (the upload's URL is all it takes).

use crate::{
    generated::Client, generated::ClientInfo, generated::Error, generated::ResponseValue,
    generated::types, upload::UploadOptions,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use futures::StreamExt;
use reqwest::{Method, RequestBuilder, Response, StatusCode, header::HeaderMap};
use std::{io::SeekFrom, path::Path};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;
use uuid::Uuid;

/// The protocol version spoken.
const TUS_VERSION: &str = "1.0.0";

/// Bytes read from the file at a time.
const READ_CHUNK: usize = 256 * 1024;

/// An upload on the server: where it is and how far its bytes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumable {
    /// Its absolute URL (`{server}/uploads/{upload_id}`).
    pub url: String,
    /// Bytes the server has kept: the next chunk starts here.
    pub offset: u64,
    /// The file's size.
    pub length: u64,
    /// The job, once the last byte is in.
    pub job_id: Option<Uuid>,
}

impl Resumable {
    pub fn is_complete(&self) -> bool {
        self.offset == self.length
    }
}

/// Creates an upload of the video at `path` with the output `options`, checked by the server
/// now (a bad one is refused before any byte is sent). With `idempotency_key`, creating again
/// with the same key answers the same upload.
pub async fn create_resumable(
    client: &Client,
    path: &Path,
    options: &UploadOptions,
    idempotency_key: Option<&str>,
) -> Result<Resumable, Error<types::ErrorBody>> {
    let length = tokio::fs::metadata(path)
        .await
        .map_err(|error| Error::InvalidRequest(format!("{}: {error}", path.display())))?
        .len();
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "video".into());
    let metadata = std::iter::once(("filename".to_owned(), name))
        .chain(options.fields())
        .map(|(key, value)| format!("{key} {}", STANDARD.encode(value)))
        .collect::<Vec<_>>()
        .join(",");
    let mut request = tus(
        client,
        Method::POST,
        &format!("{}/uploads", client.baseurl()),
    )
    .header("Upload-Length", length.to_string())
    .header("Upload-Metadata", metadata);
    if let Some(key) = idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    let response = send(request).await?;
    let location = header(response.headers(), "location")
        .ok_or_else(|| Error::InvalidRequest("the server named no upload URL".into()))?;
    let url = match location.starts_with('/') {
        true => format!("{}{location}", client.baseurl()),
        false => location,
    };
    Ok(Resumable {
        url,
        offset: offset_in(response.headers()),
        length,
        job_id: job_in(response.headers()),
    })
}

/// Where the upload at `url` stands.
pub async fn resumable_offset(
    client: &Client,
    url: &str,
) -> Result<Resumable, Error<types::ErrorBody>> {
    let response = tus(client, Method::HEAD, url)
        .send()
        .await
        .map_err(Error::CommunicationError)?;
    let status = response.status();
    if !status.is_success() {
        // A HEAD answer has no body: the status says it.
        let (code, message) = match status {
            StatusCode::NOT_FOUND => (types::ErrorCode::NotFound, "There is no such upload."),
            StatusCode::GONE => (types::ErrorCode::Gone, "The upload expired."),
            StatusCode::UNAUTHORIZED => (types::ErrorCode::Unauthorized, "Not logged in."),
            _ => (
                types::ErrorCode::ServiceUnavailable,
                "The server could not say where the upload stands.",
            ),
        };
        let body = types::ErrorBody {
            error: code,
            message: message.into(),
            field: None,
        };
        let headers = response.headers().clone();
        return Err(Error::ErrorResponse(ResponseValue::new(
            body, status, headers,
        )));
    }
    let headers = response.headers();
    Ok(Resumable {
        url: url.to_owned(),
        offset: offset_in(headers),
        length: header(headers, "upload-length")
            .and_then(|length| length.parse().ok())
            .unwrap_or_default(),
        job_id: job_in(headers),
    })
}

/// Sends the file at `path` from `upload.offset` on, in requests of at most `chunk` bytes,
/// calling `on_progress` with the bytes the server has (or is being sent) as they go. On
/// success the upload is complete and names its job; on failure `upload.offset` is what the
/// server had last said it kept.
pub async fn send_resumable(
    client: &Client,
    upload: &mut Resumable,
    path: &Path,
    chunk: u64,
    on_progress: impl Fn(u64) + Clone + Send + Sync + 'static,
) -> Result<Uuid, Error<types::ErrorBody>> {
    let unreadable =
        |error: std::io::Error| Error::InvalidRequest(format!("{}: {error}", path.display()));
    on_progress(upload.offset);
    while !upload.is_complete() {
        let mut file = tokio::fs::File::open(path).await.map_err(unreadable)?;
        file.seek(SeekFrom::Start(upload.offset))
            .await
            .map_err(unreadable)?;
        let size = chunk.min(upload.length - upload.offset);
        let start = upload.offset;
        let progress = on_progress.clone();
        let mut sent = 0;
        let body = ReaderStream::with_capacity(file.take(size), READ_CHUNK).map(move |bytes| {
            if let Ok(bytes) = &bytes {
                sent += bytes.len() as u64;
                progress(start + sent);
            }
            bytes
        });
        let request = tus(client, Method::PATCH, &upload.url)
            .header("Upload-Offset", upload.offset.to_string())
            .header("Content-Type", "application/offset+octet-stream")
            .header("Content-Length", size.to_string())
            .body(reqwest::Body::wrap_stream(body));
        let response = send(request).await?;
        upload.offset = offset_in(response.headers());
        upload.job_id = job_in(response.headers());
    }
    upload
        .job_id
        .ok_or_else(|| Error::InvalidRequest("the server named no job for the upload".into()))
}

/// Removes the upload at `url` and its bytes.
pub async fn terminate_resumable(
    client: &Client,
    url: &str,
) -> Result<(), Error<types::ErrorBody>> {
    send(tus(client, Method::DELETE, url)).await.map(drop)
}

fn tus(client: &Client, method: Method, url: &str) -> RequestBuilder {
    client
        .client()
        .request(method, url)
        .header("Tus-Resumable", TUS_VERSION)
}

/// The answer, if a success; else the refusal in the error shape.
async fn send(request: RequestBuilder) -> Result<Response, Error<types::ErrorBody>> {
    let response = request.send().await.map_err(Error::CommunicationError)?;
    if response.status().is_success() {
        return Ok(response);
    }
    let response = crate::limited::read_whole(response).await;
    let refusal = ResponseValue::<types::ErrorBody>::from_response(response).await?;
    Err(Error::ErrorResponse(refusal))
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

fn offset_in(headers: &HeaderMap) -> u64 {
    header(headers, "upload-offset")
        .and_then(|offset| offset.parse().ok())
        .unwrap_or_default()
}

fn job_in(headers: &HeaderMap) -> Option<Uuid> {
    header(headers, "audiomill-job-id").and_then(|job| job.parse().ok())
}
