//! `POST /upload`, streamed from the file with its progress reported as it goes.

use crate::{
    generated::Client, generated::ClientInfo, generated::Error, generated::ResponseValue,
    generated::types,
};
use futures::StreamExt;
use reqwest::{StatusCode, multipart};
use std::{collections::BTreeMap, path::Path};
use tokio_util::io::ReaderStream;

/// How much of the file is read and sent at a time.
const CHUNK: usize = 64 * 1024;

/// What the server answered to an accepted upload.
#[derive(Debug, Clone)]
pub struct UploadAnswer {
    pub job: types::UploadAccepted,
    /// The `Idempotency-Key` had been used for this same file before: `job` is that upload's
    /// job and nothing was stored again (the server answered 200, not 202).
    pub replayed: bool,
}

/// What the MP3 should be: each choice set is sent as the form field of the same name, and
/// the server checks it (a bad one answers 400 naming the field). All unset: VBR quality 2 at
/// the source's sample rate and channels, untrimmed, loudness untouched.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UploadOptions {
    pub preset: Option<types::PresetName>,
    /// MP3 unless given (or the preset's).
    pub format: Option<types::FormatName>,
    pub bitrate_mode: Option<types::BitrateModeName>,
    /// MP3 VBR quality, 0 (best) to 9.
    pub quality: Option<u8>,
    /// kbit/s: MP3 with CBR or ABR; M4A; Opus.
    pub bitrate: Option<u16>,
    /// Hz.
    pub sample_rate: Option<u32>,
    /// FLAC and WAV: 16 or 24.
    pub bit_depth: Option<u8>,
    /// 1 or 2.
    pub channels: Option<u8>,
    /// Seconds (`90.5`) or `HH:MM:SS.mmm`.
    pub start: Option<String>,
    pub end: Option<String>,
    /// `true`, `false` or a target loudness in LUFS (`-14`).
    pub normalize: Option<String>,
    /// dBTP, with `normalize`.
    pub normalize_true_peak: Option<f64>,
    /// Tags by name (`title`, `artist`, `album`, `album_artist`, `date`, `comment`,
    /// `track`, `genre`, `composer`), sent as `tags[NAME]`; an empty value removes the
    /// video's own.
    pub tags: BTreeMap<String, String>,
    /// No tags at all.
    pub strip: Option<bool>,
    /// Decode and encode even when the source's audio could be copied as it is.
    pub reencode: Option<bool>,
    /// The audio track to convert: its number from 0, or a language (`eng`, `de`).
    pub audio_track: Option<String>,
    pub cover: Option<types::CoverName>,
    /// Seconds or `HH:MM:SS.mmm` into the video: the cover frame.
    pub cover_at: Option<String>,
    /// A one-off webhook endpoint told when the job ends; the answer's `callback` carries
    /// the secret that signs its messages.
    pub callback_url: Option<String>,
    /// Also write the output to this storage connection of the caller's (its id).
    pub export_to: Option<String>,
    /// With `export_to`: the output's key there (`{stem}`, `{job_id}`, `{date}`, `{ext}`).
    pub export_key: Option<String>,
}

impl UploadOptions {
    /// The form fields these choices are sent as, in the order the server reads them best:
    /// before the file, so that a bad one is refused before any of the file is sent.
    pub fn fields(&self) -> Vec<(String, String)> {
        let mut fields: Vec<(String, String)> = [
            ("preset", self.preset.as_ref().map(ToString::to_string)),
            ("format", self.format.as_ref().map(ToString::to_string)),
            (
                "bitrate_mode",
                self.bitrate_mode.as_ref().map(ToString::to_string),
            ),
            ("quality", self.quality.as_ref().map(ToString::to_string)),
            ("bitrate", self.bitrate.as_ref().map(ToString::to_string)),
            (
                "sample_rate",
                self.sample_rate.as_ref().map(ToString::to_string),
            ),
            (
                "bit_depth",
                self.bit_depth.as_ref().map(ToString::to_string),
            ),
            ("channels", self.channels.as_ref().map(ToString::to_string)),
            ("start", self.start.clone()),
            ("end", self.end.clone()),
            ("normalize", self.normalize.clone()),
            (
                "normalize_true_peak",
                self.normalize_true_peak.as_ref().map(ToString::to_string),
            ),
            ("strip", self.strip.as_ref().map(ToString::to_string)),
            ("reencode", self.reencode.as_ref().map(ToString::to_string)),
            ("audio_track", self.audio_track.clone()),
            ("cover", self.cover.as_ref().map(ToString::to_string)),
            ("cover_at", self.cover_at.clone()),
            ("callback_url", self.callback_url.clone()),
            ("export_to", self.export_to.clone()),
            ("export_key", self.export_key.clone()),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|value| (name.to_owned(), value)))
        .collect();
        fields.extend(
            self.tags
                .iter()
                .map(|(name, value)| (format!("tags[{name}]"), value.clone())),
        );
        fields
    }
}

/// Uploads the video at `path` with the output `options`, calling `on_progress` with the
/// bytes sent so far as they leave. With `idempotency_key`, sending the same file and options
/// again with the same key (after a network error, say) returns the first upload's job
/// instead of starting a second one.
pub async fn upload(
    client: &Client,
    path: &Path,
    options: &UploadOptions,
    idempotency_key: Option<&str>,
    on_progress: impl Fn(u64) + Send + Sync + 'static,
) -> Result<UploadAnswer, Error<types::ErrorBody>> {
    let unreadable =
        |error: std::io::Error| Error::InvalidRequest(format!("{}: {error}", path.display()));
    let file = tokio::fs::File::open(path).await.map_err(unreadable)?;
    let size = file.metadata().await.map_err(unreadable)?.len();
    let mut sent = 0;
    let counted = ReaderStream::with_capacity(file, CHUNK).map(move |chunk| {
        if let Ok(bytes) = &chunk {
            sent += bytes.len() as u64;
            on_progress(sent);
        }
        chunk
    });
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "video".into());
    let part = multipart::Part::stream_with_length(reqwest::Body::wrap_stream(counted), size)
        .file_name(name)
        .mime_str(media_type(path))
        .map_err(Error::CommunicationError)?;
    let form = options
        .fields()
        .into_iter()
        .fold(multipart::Form::new(), |form, (name, value)| {
            form.text(name, value)
        });
    let request = client
        .client()
        .post(format!("{}/upload", client.baseurl()))
        .multipart(form.part("file", part));
    started(request, idempotency_key).await
}

/// Starts a job whose video the server fetches from `url` (`POST /imports`), with the same
/// choices an upload takes; with `idempotency_key`, sending it again answers with the first
/// job (`replayed`).
pub async fn import(
    client: &Client,
    url: &str,
    options: &UploadOptions,
    idempotency_key: Option<&str>,
) -> Result<UploadAnswer, Error<types::ErrorBody>> {
    // The output choices go in `options`; where the job reports and writes, beside them.
    const BESIDE: [&str; 3] = ["callback_url", "export_to", "export_key"];
    let mut body = serde_json::json!({ "urls": [url], "options": {} });
    for (name, value) in options.fields() {
        let value = serde_json::Value::String(value);
        if BESIDE.contains(&name.as_str()) {
            body[name] = value;
        } else {
            body["options"][name] = value;
        }
    }
    let request = client
        .client()
        .post(format!("{}/imports", client.baseurl()))
        .json(&body);
    started(request, idempotency_key).await
}

/// Sends a request that starts jobs (an upload, an import) with its `Idempotency-Key`: the
/// job it started (or, `replayed`, the one the key already named), or the refusal.
async fn started(
    mut request: reqwest::RequestBuilder,
    idempotency_key: Option<&str>,
) -> Result<UploadAnswer, Error<types::ErrorBody>> {
    if let Some(key) = idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.map_err(Error::CommunicationError)?;
    let response = crate::limited::read_whole(response).await;
    let status = response.status();
    if status.is_success() {
        let job = ResponseValue::<types::UploadAccepted>::from_response(response).await?;
        return Ok(UploadAnswer {
            job: job.into_inner(),
            replayed: status == StatusCode::OK,
        });
    }
    let refusal = ResponseValue::<types::ErrorBody>::from_response(response).await?;
    Err(Error::ErrorResponse(refusal))
}

/// The part's media type, from the name's extension (the server checks the content itself).
fn media_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match extension.as_deref() {
        Some("mp4" | "m4v") => "video/mp4",
        Some("mov") => "video/quicktime",
        Some("avi") => "video/x-msvideo",
        Some("mkv") => "video/x-matroska",
        Some("webm") => "video/webm",
        _ => "application/octet-stream",
    }
}
