//! A video part's way into storage: its name, extension and first bytes checked before
//! anything is kept, then streamed under the size limit (or only hashed, for a retried
//! `Idempotency-Key`); whatever a later step refuses is removed again.

use super::allowance::Allowance;
use super::refusal::{UploadError, over_limit, too_large};
use crate::{
    gateway::UploadLimits,
    uploads::file::{self, Container, Head},
};
use audiomill_domain::{JobId, ObjectKey, output::OutputOptions};
use audiomill_store::{ObjectStore, PutError};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream::BoxStream};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The form's video part, checked and not yet stored: its first bytes, and the rest to come.
pub struct VideoPart {
    pub filename: String,
    pub extension: String,
    head: Vec<Bytes>,
    rest: BoxStream<'static, Result<Bytes, multer::Error>>,
}

/// A video in storage, not yet a job.
pub struct StoredSource {
    pub job_id: JobId,
    pub key: ObjectKey,
    pub filename: String,
    pub size: u64,
    /// The file's SHA-256 (hex), when asked for.
    pub fingerprint: Option<String>,
    /// Where the job imports the video from, for a video not stored yet (`size` is 0 then).
    pub import: Option<audiomill_store::JobImport>,
}

/// An upload, known by its file's name and content and the MP3 it asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Fingerprint {
    pub filename: String,
    /// SHA-256, hex.
    pub sha256: String,
    pub options: OutputOptions,
}

/// What becomes of the form's checked video part.
pub(crate) trait VideoSink {
    type Kept;
    async fn keep(&self, part: VideoPart) -> Result<Self::Kept, UploadError>;
    /// Undoes [`VideoSink::keep`] when the form turns out bad after the file.
    async fn undo(&self, kept: &Self::Kept);
}

/// Streamed into storage under a new job id.
pub(crate) struct IntoStorage<'a> {
    pub(crate) objects: &'a ObjectStore,
    pub(crate) limits: &'a UploadLimits,
    pub(crate) fingerprint: bool,
    pub(crate) allowance: Allowance,
}

impl VideoSink for IntoStorage<'_> {
    type Kept = StoredSource;

    async fn keep(&self, part: VideoPart) -> Result<StoredSource, UploadError> {
        store_source(
            self.objects,
            part,
            self.limits,
            self.fingerprint,
            &self.allowance,
        )
        .await
    }

    async fn undo(&self, kept: &StoredSource) {
        discard(self.objects, Some(kept)).await;
    }
}

/// Read to its end and hashed, under the same size limit, and kept nowhere.
pub(crate) struct HashOnly<'a> {
    pub(crate) limits: &'a UploadLimits,
}

impl VideoSink for HashOnly<'_> {
    type Kept = Fingerprint;

    async fn keep(&self, part: VideoPart) -> Result<Fingerprint, UploadError> {
        let mut hasher = Sha256::new();
        let mut seen = 0u64;
        let mut chunks = futures::stream::iter(part.head.into_iter().map(Ok)).chain(part.rest);
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|error| match over_limit(&error) {
                Some(_) => too_large(self.limits),
                None => UploadError::bad("The upload was interrupted or malformed."),
            })?;
            seen += chunk.len() as u64;
            if seen > self.limits.max_bytes {
                return Err(too_large(self.limits));
            }
            hasher.update(&chunk);
        }
        Ok(Fingerprint {
            filename: part.filename,
            sha256: hex::encode(hasher.finalize()),
            options: OutputOptions::default(),
        })
    }

    async fn undo(&self, _: &Fingerprint) {}
}

/// Checks the part's file name and extension, and that its first bytes are a container of
/// the kind the extension promises.
pub async fn read_video_part(
    field: multer::Field<'static>,
    limits: &UploadLimits,
) -> Result<VideoPart, UploadError> {
    let (filename, extension) = accepted_name(field.file_name().unwrap_or_default(), limits)?;
    let mut rest = field.boxed();
    let mut sniffed = Head::new();
    let mut head = Vec::new();
    while let Some(chunk) = rest.next().await {
        let chunk = chunk.map_err(|_| UploadError::bad("The multipart body is malformed."))?;
        let enough = sniffed.push(&chunk);
        head.push(chunk);
        if enough {
            break;
        }
    }
    if sniffed.bytes.is_empty() {
        return Err(UploadError::bad("The file is empty."));
    }
    let container = Container::sniff(&sniffed.bytes);
    if container.is_none() || container != Container::for_extension(&extension) {
        return Err(UploadError::UnsupportedMedia(format!(
            "The file's content is not a valid .{extension} file."
        )));
    }
    Ok(VideoPart {
        filename,
        extension,
        head,
        rest,
    })
}

/// Why the stream into storage stopped.
#[derive(Debug)]
enum StreamStop {
    TooLarge,
    Parser(multer::Error),
}

/// Streams the part into storage under a new job id, refusing it past the size limit or the
/// room the caller's storage quota leaves, and hashes it on the way with `fingerprint`.
async fn store_source(
    objects: &ObjectStore,
    part: VideoPart,
    limits: &UploadLimits,
    fingerprint: bool,
    allowance: &Allowance,
) -> Result<StoredSource, UploadError> {
    let job_id = JobId::generate();
    tracing::Span::current().record("job_id", tracing::field::display(job_id));
    let key = ObjectKey::source(job_id, &part.extension);
    let room = allowance.room().filter(|room| *room < limits.max_bytes);
    let limit = room.unwrap_or(limits.max_bytes);
    let too_large = |limits: &UploadLimits| match room {
        Some(_) => allowance.storage_refusal(),
        None => too_large(limits),
    };
    let mut seen = 0u64;
    let hasher = Arc::new(std::sync::Mutex::new(fingerprint.then(Sha256::new)));
    let hashing = hasher.clone();
    let stream = futures::stream::iter(part.head.into_iter().map(Ok))
        .chain(part.rest)
        .map_err(StreamStop::Parser)
        .and_then(move |chunk| {
            seen += chunk.len() as u64;
            if let Some(hasher) = hashing.lock().expect("not poisoned").as_mut() {
                hasher.update(&chunk);
            }
            let over = seen > limit;
            async move {
                if over {
                    Err(StreamStop::TooLarge)
                } else {
                    Ok(chunk)
                }
            }
        });
    let size = match objects.put_stream(&key, Box::pin(stream)).await {
        Ok(size) => size,
        Err(PutError::Source(StreamStop::TooLarge)) => return Err(too_large(limits)),
        Err(PutError::Source(StreamStop::Parser(error))) => {
            return Err(match over_limit(&error) {
                Some(_) => too_large(limits),
                None => UploadError::bad("The upload was interrupted or malformed."),
            });
        }
        Err(PutError::Storage(error)) => return Err(error.into()),
    };
    let fingerprint = hasher
        .lock()
        .expect("not poisoned")
        .take()
        .map(|hasher| hex::encode(hasher.finalize()));
    Ok(StoredSource {
        job_id,
        key,
        filename: part.filename,
        size,
        fingerprint,
        import: None,
    })
}

/// Removes what a refused upload had stored.
pub(crate) async fn discard(objects: &ObjectStore, stored: Option<&StoredSource>) {
    if let Some(source) = stored
        && let Err(error) = objects.delete(&source.key).await
    {
        tracing::error!(%error, key = %source.key, "could not remove a refused upload");
    }
}

/// A file's name as kept (see [`file::clean_file_name`]) and its extension, if the
/// extension is one accepted.
pub fn accepted_name(raw: &str, limits: &UploadLimits) -> Result<(String, String), UploadError> {
    let accepted = || limits.allowed_extensions.join(", ");
    let filename = file::clean_file_name(raw);
    let Some(extension) = file::extension(&filename) else {
        return Err(UploadError::UnsupportedMedia(format!(
            "The file needs an extension; accepted: {}.",
            accepted()
        )));
    };
    if !limits.allowed_extensions.contains(&extension) {
        return Err(UploadError::UnsupportedMedia(format!(
            "`.{extension}` files are not accepted; accepted: {}.",
            accepted()
        )));
    }
    Ok((filename, extension))
}
