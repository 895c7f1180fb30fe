//! Object storage over the S3 protocol (MinIO, AWS S3, ...), with aws-sdk-s3.
//!
//! Uploads stream through a multipart upload in bounded parts, so memory stays at one part per
//! upload whatever the file size; any failure aborts the multipart upload, leaving nothing.

use crate::error::StoreError;
use audiomill_domain::ObjectKey;
use aws_sdk_s3::{
    Client,
    config::{BehaviorVersion, Credentials, Region, http::HttpResponse},
    error::{ProvideErrorMetadata, SdkError},
    presigning::PresigningConfig,
    primitives::ByteStream,
    types::{CompletedMultipartUpload, CompletedPart},
};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use std::{ops::Range, path::Path};
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

/// Bytes per multipart part. S3 wants at least 5 MiB for every part but the last.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// How to reach a bucket.
#[derive(Clone)]
pub struct S3Settings {
    pub bucket: String,
    /// `None`: AWS itself. A custom endpoint (MinIO, ...) is addressed path-style.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct S3Store {
    pub(crate) client: Client,
    pub(crate) bucket: String,
}

/// The chunks of one part as they arrived; joined into one buffer only when sent, so a part
/// costs its size once more at most, never a doubling buffer.
#[derive(Default)]
struct PartBuffer {
    chunks: Vec<Bytes>,
    len: usize,
}

impl PartBuffer {
    /// Reads from `stream` until the part is full; true when the stream has ended.
    async fn fill<S, E>(&mut self, stream: &mut S) -> Result<bool, StreamFailure<E>>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
    {
        while self.len < PART_SIZE {
            match stream.next().await {
                Some(chunk) => self.push(chunk.map_err(StreamFailure::Source)?),
                None => return Ok(true),
            }
        }
        Ok(false)
    }

    fn push(&mut self, chunk: Bytes) {
        self.len += chunk.len();
        self.chunks.push(chunk);
    }

    fn take(&mut self) -> Bytes {
        let len = std::mem::take(&mut self.len);
        if self.chunks.len() == 1 {
            return self.chunks.pop().unwrap_or_default();
        }
        let mut joined = BytesMut::with_capacity(len);
        for chunk in self.chunks.drain(..) {
            joined.extend_from_slice(&chunk);
        }
        joined.freeze()
    }
}

/// A multipart upload in progress: aborted when it fails, or when dropped before it ended, so
/// no incomplete upload is left to hold storage.
struct AbortOnDrop {
    client: Client,
    bucket: String,
    key: String,
    upload_id: Option<String>,
}

impl AbortOnDrop {
    fn disarm(mut self) {
        self.upload_id = None;
    }

    async fn abort(mut self) {
        if let Some(upload_id) = self.upload_id.take() {
            abort_upload(&self.client, &self.bucket, &self.key, &upload_id).await;
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        let Some(upload_id) = self.upload_id.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(key = %self.key, "a dropped multipart upload could not be aborted");
            return;
        };
        let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), self.key.clone());
        runtime.spawn(async move { abort_upload(&client, &bucket, &key, &upload_id).await });
    }
}

pub(crate) async fn abort_upload(client: &Client, bucket: &str, key: &str, upload_id: &str) {
    let aborted = client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await;
    if let Err(error) = aborted {
        tracing::error!(%key, error = %storage_error(error), "could not abort a multipart upload");
    }
}

/// Why a streamed upload stopped.
pub enum StreamFailure<E> {
    Source(E),
    Storage(StoreError),
}

impl S3Store {
    pub fn new(settings: &S3Settings) -> Self {
        let credentials = Credentials::new(
            &settings.access_key_id,
            &settings.secret_access_key,
            None,
            None,
            "audiomill",
        );
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .credentials_provider(credentials);
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint).force_path_style(true);
        }
        Self {
            client: Client::from_conf(config.build()),
            bucket: settings.bucket.clone(),
        }
    }

    /// Checks the bucket exists, creating it when `create` allows.
    pub async fn init(&self, create: bool) -> Result<(), StoreError> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(error) if is_not_found(&error) && create => {
                match self
                    .client
                    .create_bucket()
                    .bucket(&self.bucket)
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    // The gateway and the workers start together: another may have made it
                    // first. Then it is there now, and ours to use.
                    Err(_) if self.ping().await => Ok(()),
                    Err(error) => Err(storage_error(error)),
                }
            }
            Err(error) if is_not_found(&error) => Err(StoreError::NotSetUp(format!(
                "the bucket {:?} does not exist; create it or set S3_CREATE_BUCKET=true",
                self.bucket
            ))),
            Err(error) => Err(storage_error(error)),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub async fn ping(&self) -> bool {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .is_ok()
    }

    /// Stores the stream under `key`: a small object in one PUT, a larger one as a multipart
    /// upload in [`PART_SIZE`] parts, aborted if anything fails or this future is dropped.
    pub async fn put_stream<S, E>(
        &self,
        key: &ObjectKey,
        mut stream: S,
    ) -> Result<u64, StreamFailure<E>>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
    {
        // Fill the first part before deciding: a small object takes one plain PUT.
        let mut first = PartBuffer::default();
        let ended = first.fill(&mut stream).await?;
        if ended {
            let size = first.len as u64;
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key.as_ref())
                .body(ByteStream::from(first.take()))
                .send()
                .await
                .map_err(|e| StreamFailure::Storage(storage_error(e)))?;
            return Ok(size);
        }
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_ref())
            .send()
            .await
            .map_err(|e| StreamFailure::Storage(storage_error(e)))?;
        let guard = AbortOnDrop {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.as_ref().to_owned(),
            upload_id: Some(created.upload_id().unwrap_or_default().to_owned()),
        };
        let result = self.put_parts(&guard, first, stream).await;
        match result {
            Ok(_) => guard.disarm(),
            Err(_) => guard.abort().await,
        }
        result
    }

    /// Sends `first` and the rest of `stream` as the parts of `upload`, then completes it.
    async fn put_parts<S, E>(
        &self,
        upload: &AbortOnDrop,
        first: PartBuffer,
        mut stream: S,
    ) -> Result<u64, StreamFailure<E>>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
    {
        let upload_id = upload.upload_id.as_deref().unwrap_or_default();
        let key = &upload.key;
        let mut part = first;
        let mut parts = Vec::new();
        let mut size = 0u64;
        loop {
            let ended = part.fill(&mut stream).await?;
            if part.len > 0 || parts.is_empty() {
                size += part.len as u64;
                let number = parts.len() as i32 + 1;
                parts.push(
                    self.upload_part(key, upload_id, number, part.take())
                        .await?,
                );
            }
            if ended {
                break;
            }
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| StreamFailure::Storage(storage_error(e)))?;
        Ok(size)
    }

    async fn upload_part<E>(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        bytes: Bytes,
    ) -> Result<CompletedPart, StreamFailure<E>> {
        let uploaded = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| StreamFailure::Storage(storage_error(e)))?;
        Ok(CompletedPart::builder()
            .set_e_tag(uploaded.e_tag().map(str::to_owned))
            .part_number(number)
            .build())
    }

    pub async fn get_to_file(&self, key: &ObjectKey, path: &Path) -> Result<u64, StoreError> {
        let object = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_ref())
            .send()
            .await
        {
            Ok(object) => object,
            Err(error) if is_not_found(&error) => return Err(StoreError::NotFound),
            Err(error) => return Err(storage_error(error)),
        };
        let mut reader = object.body.into_async_read();
        let mut file = tokio::fs::File::create(path).await?;
        let size = tokio::io::copy(&mut reader, &mut file).await?;
        file.flush().await?;
        Ok(size)
    }

    pub async fn size(&self, key: &ObjectKey) -> Result<Option<u64>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_ref())
            .send()
            .await
        {
            Ok(head) => Ok(Some(head.content_length().unwrap_or_default().max(0) as u64)),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(storage_error(error)),
        }
    }

    pub async fn read_range(
        &self,
        key: &ObjectKey,
        range: Range<u64>,
    ) -> Result<crate::stream::ObjectBody, StoreError> {
        if range.start >= range.end {
            return Ok(Box::pin(futures::stream::empty()));
        }
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_ref())
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await;
        match object {
            Ok(object) => Ok(Box::pin(ReaderStream::new(object.body.into_async_read()))),
            Err(error) if is_not_found(&error) => Err(StoreError::NotFound),
            Err(error) => Err(storage_error(error)),
        }
    }

    /// A URL that reads the object without credentials for `lifetime`, the bucket answering
    /// with these `Content-Type` and `Content-Disposition` (signed into the URL). Made
    /// offline: nothing is sent to the bucket.
    /// A URL that reads the object for `lifetime`, answered with `headers` (content type and
    /// disposition) when given, else with what was stored.
    pub async fn presigned_get(
        &self,
        key: &ObjectKey,
        headers: Option<(&str, &str)>,
        lifetime: std::time::Duration,
    ) -> Result<String, StoreError> {
        let presigning = PresigningConfig::expires_in(lifetime)
            .map_err(|e| StoreError::Unavailable(format!("cannot presign: {e}")))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_ref())
            .set_response_content_type(headers.map(|(content_type, _)| content_type.to_owned()))
            .set_response_content_disposition(
                headers.map(|(_, disposition)| disposition.to_owned()),
            )
            .presigned(presigning)
            .await
            .map_err(storage_error)?;
        Ok(request.uri().to_owned())
    }

    pub async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key.as_ref())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if is_not_found(&error) => Ok(()),
            Err(error) => Err(storage_error(error)),
        }
    }
}

pub(crate) fn is_not_found<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    match error {
        SdkError::ServiceError(service) => {
            service.raw().status().as_u16() == 404
                || matches!(
                    service.err().code(),
                    Some("NoSuchKey" | "NoSuchBucket" | "NotFound")
                )
        }
        _ => false,
    }
}

pub(crate) fn storage_error<E: std::error::Error + Send + Sync + 'static, R: std::fmt::Debug>(
    error: SdkError<E, R>,
) -> StoreError {
    let message = match &error {
        SdkError::ServiceError(service) => format!(
            "S3 refused the request: {}",
            aws_sdk_s3::error::DisplayErrorContext(service.err())
        ),
        other => format!(
            "S3 is unreachable: {}",
            aws_sdk_s3::error::DisplayErrorContext(other)
        ),
    };
    StoreError::Unavailable(message)
}
