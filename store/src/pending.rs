//! Objects that arrive over many requests (resumable uploads): appended to where the last
//! request stopped, kept durable between requests, and made one object when the last byte is
//! in.
//!
//! In a directory the bytes go into one partial file under `.resumable/`, renamed into place
//! at the end. In S3 they go into one multipart upload of [`PART_SIZE`] parts; what does not
//! yet fill a part waits in a small `tail` object between requests (read back into memory by
//! the next one), so a request holds at most one part in memory and any gateway can take the
//! next one. Part `n` always holds bytes `n * PART_SIZE ..`, so where the tail starts and
//! which part comes next follow from the offset alone.

use crate::{
    error::StoreError,
    objects::ObjectStore,
    objects::{object_path, publish},
    s3::{PART_SIZE, S3Store, abort_upload, is_not_found, storage_error},
};
use audiomill_domain::ObjectKey;
use aws_sdk_s3::{
    primitives::ByteStream,
    types::{CompletedMultipartUpload, CompletedPart},
};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use std::path::{Path, PathBuf};
use tokio::{
    fs,
    io::{AsyncSeekExt, AsyncWriteExt},
};

/// An unfinished object: where its bytes wait, and how far they go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingObject {
    /// Where the whole object goes once complete.
    pub key: ObjectKey,
    /// The S3 multipart upload's id; `None` in a directory.
    pub storage_id: Option<String>,
    /// Bytes kept so far.
    pub offset: u64,
    /// The S3 parts stored so far (their ETags, in order).
    pub part_tags: Vec<String>,
}

/// What one request appended: how far the object would then go, and why the request's
/// stream stopped early, if it did. Nothing of it counts until [`ObjectStore::keep_appended`]
/// (or [`ObjectStore::complete_pending`]) and the caller's record of the new offset.
pub struct Appended<E> {
    pub reached: PendingObject,
    /// Bytes after the last whole part, still in memory (S3 only).
    tail: Bytes,
    /// The stream's own error, when it stopped before its end.
    pub stopped: Option<E>,
}

impl ObjectStore {
    /// Starts an unfinished object under `key`; its storage id, if the backend has one.
    pub async fn begin_pending(&self, key: &ObjectKey) -> Result<Option<String>, StoreError> {
        match self {
            Self::Files { root } => {
                let path = pending_path(root, key);
                fs::create_dir_all(path.parent().expect("under the root")).await?;
                fs::File::create(&path).await?;
                Ok(None)
            }
            Self::S3 { store, .. } => {
                let created = store
                    .client
                    .create_multipart_upload()
                    .bucket(&store.bucket)
                    .key(key.as_ref())
                    .send()
                    .await
                    .map_err(storage_error)?;
                Ok(created.upload_id().map(str::to_owned))
            }
        }
    }

    /// Appends `stream` to the object at `at.offset` (whatever a failed request wrote past it
    /// is overwritten). A stream error stops the append and is handed back in
    /// [`Appended::stopped`], with everything before it appended.
    pub async fn append_pending<S, E>(
        &self,
        at: &PendingObject,
        stream: S,
    ) -> Result<Appended<E>, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
    {
        match self {
            Self::Files { root } => append_to_file(&pending_path(root, &at.key), at, stream).await,
            Self::S3 { store, .. } => append_parts(store, at, stream).await,
        }
    }

    /// Makes what was appended durable, short of completing the object.
    pub async fn keep_appended<E>(&self, appended: &Appended<E>) -> Result<(), StoreError> {
        let reached = &appended.reached;
        match self {
            Self::Files { root } => {
                let file = fs::OpenOptions::new()
                    .write(true)
                    .open(pending_path(root, &reached.key))
                    .await?;
                file.sync_data().await?;
                Ok(())
            }
            Self::S3 { store, .. } if !appended.tail.is_empty() => {
                store
                    .client
                    .put_object()
                    .bucket(&store.bucket)
                    .key(tail_key(reached).as_ref())
                    .body(ByteStream::from(appended.tail.clone()))
                    .send()
                    .await
                    .map_err(storage_error)?;
                Ok(())
            }
            Self::S3 { .. } => Ok(()),
        }
    }

    /// Removes the tail `before` left, once the caller recorded a newer offset.
    pub async fn drop_superseded(&self, before: &PendingObject, now: &PendingObject) {
        if let Self::S3 { store, .. } = self
            && has_tail(before)
            && before.offset != now.offset
            && let Err(error) = store.delete(&tail_key(before)).await
        {
            tracing::warn!(%error, key = %before.key, "could not remove an upload's old tail");
        }
    }

    /// Makes the appended object whole under its key.
    pub async fn complete_pending<E>(&self, appended: Appended<E>) -> Result<(), StoreError> {
        let reached = appended.reached;
        match self {
            Self::Files { root } => {
                let path = pending_path(root, &reached.key);
                fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .await?
                    .sync_all()
                    .await?;
                publish(&path, &object_path(root, &reached.key)).await
            }
            Self::S3 { store, .. } => complete_parts(store, reached, appended.tail).await,
        }
    }

    /// Removes everything of an unfinished object (a terminated or expired upload). Removing
    /// what is already gone succeeds.
    pub async fn abort_pending(&self, pending: &PendingObject) -> Result<(), StoreError> {
        match self {
            Self::Files { root } => match fs::remove_file(pending_path(root, &pending.key)).await {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error.into()),
                _ => Ok(()),
            },
            Self::S3 { store, .. } => {
                if let Some(upload_id) = &pending.storage_id {
                    abort_upload(
                        &store.client,
                        &store.bucket,
                        pending.key.as_ref(),
                        upload_id,
                    )
                    .await;
                }
                if has_tail(pending) {
                    store.delete(&tail_key(pending)).await?;
                }
                Ok(())
            }
        }
    }
}

impl crate::resumable::Resumable {
    /// Where the upload's bytes wait, as far as they are recorded.
    pub fn pending(&self) -> PendingObject {
        PendingObject {
            key: self.upload.source_key.clone(),
            storage_id: self.upload.storage_id.clone(),
            offset: self.offset,
            part_tags: self.part_tags.clone(),
        }
    }
}

impl ObjectStore {
    /// Removes the bytes of a resumable upload that started no job: its object if it was
    /// made whole, else whatever waits of it. A started upload's object is its job's video,
    /// and stays.
    pub async fn discard_unstarted(
        &self,
        upload: &crate::resumable::Resumable,
    ) -> Result<(), StoreError> {
        if upload.started_at.is_some() {
            return Ok(());
        }
        if upload.is_complete() {
            self.delete(&upload.upload.source_key).await?;
        }
        self.abort_pending(&upload.pending()).await
    }
}

/// The partial file of the object under `key`.
fn pending_path(root: &Path, key: &ObjectKey) -> PathBuf {
    root.join(".resumable").join(key.as_ref().replace('/', "_"))
}

async fn append_to_file<S, E>(
    path: &Path,
    at: &PendingObject,
    mut stream: S,
) -> Result<Appended<E>, StoreError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let mut file = fs::OpenOptions::new().write(true).open(path).await?;
    file.set_len(at.offset).await?;
    file.seek(std::io::SeekFrom::Start(at.offset)).await?;
    // One hop to the blocking pool per megabyte, not per network chunk.
    let mut file = tokio::io::BufWriter::with_capacity(1024 * 1024, file);
    let mut reached = at.clone();
    let mut stopped = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                file.write_all(&chunk).await?;
                reached.offset += chunk.len() as u64;
            }
            Err(error) => {
                stopped = Some(error);
                break;
            }
        }
    }
    file.flush().await?;
    Ok(Appended {
        reached,
        tail: Bytes::new(),
        stopped,
    })
}

async fn append_parts<S, E>(
    store: &S3Store,
    at: &PendingObject,
    mut stream: S,
) -> Result<Appended<E>, StoreError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let part_size = PART_SIZE as u64;
    let mut reached = at.clone();
    reached.part_tags.truncate((at.offset / part_size) as usize);
    let mut buffer = BytesMut::new();
    if has_tail(at) {
        buffer.extend_from_slice(&read_tail(store, at).await?);
    }
    let mut stopped = None;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(error) => {
                stopped = Some(error);
                break;
            }
        };
        reached.offset += chunk.len() as u64;
        buffer.extend_from_slice(&chunk);
        while buffer.len() >= PART_SIZE {
            let part = buffer.split_to(PART_SIZE).freeze();
            let tag = upload_part(store, &reached, part).await?;
            reached.part_tags.push(tag);
        }
    }
    Ok(Appended {
        reached,
        tail: buffer.freeze(),
        stopped,
    })
}

/// Whether bytes past the last whole part wait in a tail object.
fn has_tail(pending: &PendingObject) -> bool {
    pending.storage_id.is_some() && !pending.offset.is_multiple_of(PART_SIZE as u64)
}

/// The tail object of `pending`, named after the offset it ends at: a request that fails
/// after writing its tail never overwrites the one the recorded offset names.
fn tail_key(pending: &PendingObject) -> ObjectKey {
    ObjectKey::parse(&format!("{}.tail-{}", pending.key, pending.offset))
        .expect("a key with a suffix of safe characters is a key")
}

async fn read_tail(store: &S3Store, at: &PendingObject) -> Result<Bytes, StoreError> {
    let object = store
        .client
        .get_object()
        .bucket(&store.bucket)
        .key(tail_key(at).as_ref())
        .send()
        .await
        .map_err(|error| match is_not_found(&error) {
            true => StoreError::NotFound,
            false => storage_error(error),
        })?;
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|error| StoreError::Unavailable(format!("S3 read failed: {error}")))?;
    Ok(bytes.into_bytes())
}

/// Stores `bytes` as the next part of `reached` (whose tags name the parts before it).
async fn upload_part(
    store: &S3Store,
    reached: &PendingObject,
    bytes: Bytes,
) -> Result<String, StoreError> {
    let uploaded = store
        .client
        .upload_part()
        .bucket(&store.bucket)
        .key(reached.key.as_ref())
        .upload_id(reached.storage_id.as_deref().unwrap_or_default())
        .part_number(reached.part_tags.len() as i32 + 1)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .map_err(storage_error)?;
    Ok(uploaded.e_tag().unwrap_or_default().to_owned())
}

/// Sends the tail as the last part and completes the multipart upload.
async fn complete_parts(
    store: &S3Store,
    mut reached: PendingObject,
    tail: Bytes,
) -> Result<(), StoreError> {
    if !tail.is_empty() {
        let tag = upload_part(store, &reached, tail).await?;
        reached.part_tags.push(tag);
    }
    let parts = reached
        .part_tags
        .iter()
        .enumerate()
        .map(|(index, tag)| {
            CompletedPart::builder()
                .e_tag(tag)
                .part_number(index as i32 + 1)
                .build()
        })
        .collect();
    store
        .client
        .complete_multipart_upload()
        .bucket(&store.bucket)
        .key(reached.key.as_ref())
        .upload_id(reached.storage_id.as_deref().unwrap_or_default())
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map_err(storage_error)?;
    Ok(())
}
