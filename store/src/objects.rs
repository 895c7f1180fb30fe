//! Object storage for uploaded videos and finished MP3s: a directory (embedded) or an S3
//! bucket.
//!
//! Either way a failed write leaves nothing behind: files are written under a temporary name
//! and renamed into place when complete; S3 uploads are aborted. That holds also when the
//! writing future is dropped half-way (a client gone, a connection cut): drop guards remove
//! the partial file or abort the multipart upload. Partial files left by a process that died
//! are removed at the next start.

use crate::{
    error::StoreError,
    s3::{S3Store, StreamFailure},
};
use audiomill_domain::ObjectKey;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::{
    io,
    ops::Range,
    path::{Path, PathBuf},
};
use tokio::{
    fs,
    io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt},
};
use tokio_util::io::ReaderStream;

/// Bytes read at a time from a file being stored or served. A file read through tokio is one
/// hop to its blocking pool per read: with `ReaderStream`'s default 4 KiB, storing an 85 MB MP3
/// takes 20,000 of them.
const FILE_CHUNK: usize = 256 * 1024;

/// The most bytes [`write_pieces`] hands the kernel in one write.
const WRITE_SLICE: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub enum ObjectStore {
    /// Objects as files under a directory: the embedded default.
    Files { root: PathBuf },
    /// Objects in an S3 bucket.
    S3 { store: S3Store, create_bucket: bool },
}

/// Why `put_stream` stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum PutError<E> {
    /// The incoming stream failed; its own error is handed back unchanged.
    #[error("the upload stream failed")]
    Source(E),
    #[error(transparent)]
    Storage(#[from] StoreError),
}

impl ObjectStore {
    pub fn files(root: impl Into<PathBuf>) -> Self {
        Self::Files { root: root.into() }
    }

    pub fn s3(settings: &crate::s3::S3Settings, create_bucket: bool) -> Self {
        Self::S3 {
            store: S3Store::new(settings),
            create_bucket,
        }
    }

    /// Prepares the backend (creates the directory, or checks the bucket) and checks it is
    /// usable.
    pub async fn init(&self) -> Result<(), StoreError> {
        match self {
            Self::Files { root } => {
                let partial = root.join(".partial");
                fs::create_dir_all(&partial).await?;
                remove_stale_partials(&partial).await;
                Ok(())
            }
            Self::S3 {
                store,
                create_bucket,
            } => store.init(*create_bucket).await,
        }
    }

    /// Where objects are kept, for operators (no secrets).
    pub fn describe(&self) -> String {
        match self {
            Self::Files { .. } => "local directory".to_owned(),
            Self::S3 { store, .. } => format!("S3 bucket {}", store.bucket()),
        }
    }

    /// True when the backend is reachable.
    pub async fn ping(&self) -> bool {
        match self {
            Self::Files { root } => fs::metadata(root)
                .await
                .map(|m| m.is_dir())
                .unwrap_or(false),
            Self::S3 { store, .. } => store.ping().await,
        }
    }

    /// Stores a stream under `key` and returns its size. On any error nothing is stored.
    pub async fn put_stream<S, E>(&self, key: &ObjectKey, mut stream: S) -> Result<u64, PutError<E>>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
    {
        match self {
            Self::Files { root } => {
                let partial = PartialFile(Some(partial_path(root)));
                let path = partial.path();
                let result = async {
                    let mut file = fs::File::create(path).await.map_err(StoreError::from)?;
                    let mut size = 0u64;
                    while let Some(chunk) = stream.next().await {
                        let chunk = chunk.map_err(PutError::Source)?;
                        size += chunk.len() as u64;
                        file.write_all(&chunk).await.map_err(StoreError::from)?;
                    }
                    file.sync_all().await.map_err(StoreError::from)?;
                    publish(path, &object_path(root, key)).await?;
                    Ok(size)
                }
                .await;
                if result.is_ok() {
                    partial.published();
                }
                result
            }
            Self::S3 { store, .. } => {
                store
                    .put_stream(key, stream)
                    .await
                    .map_err(|failure| match failure {
                        StreamFailure::Source(error) => PutError::Source(error),
                        StreamFailure::Storage(error) => PutError::Storage(error),
                    })
            }
        }
    }

    /// Stores a local file under `key` and returns its size.
    pub async fn put_file(&self, key: &ObjectKey, path: &Path) -> Result<u64, StoreError> {
        if let Self::Files { root } = self {
            // Copied by the kernel (`copy_file_range`) and synced once, on a blocking thread:
            // streamed through an async file, an hour's MP3 took hundreds of small hops.
            let partial = PartialFile(Some(partial_path(root)));
            let (from, to) = (path.to_owned(), partial.path().to_owned());
            let size = tokio::task::spawn_blocking(move || {
                let size = std::fs::copy(&from, &to)?;
                std::fs::File::open(&to)?.sync_all()?;
                Ok::<_, io::Error>(size)
            })
            .await
            .map_err(|_| StoreError::Unavailable("the copy did not finish".into()))??;
            publish(partial.path(), &object_path(root, key)).await?;
            partial.published();
            return Ok(size);
        }
        let file = fs::File::open(path).await?;
        let stream = ReaderStream::with_capacity(file, FILE_CHUNK);
        self.put_stream(key, stream)
            .await
            .map_err(|error| match error {
                PutError::Source(error) => StoreError::Io(error),
                PutError::Storage(error) => error,
            })
    }

    /// Stores `pieces`, one after the other, under `key` and returns their size.
    pub async fn put_pieces(&self, key: &ObjectKey, pieces: Vec<Bytes>) -> Result<u64, StoreError> {
        let size = pieces.iter().map(|piece| piece.len() as u64).sum();
        if let Self::Files { root } = self {
            // Plain writes and one sync on a blocking thread: an hour's MP3 (some 100 MB)
            // passed through an async file in small buffers took twice as long.
            let partial = PartialFile(Some(partial_path(root)));
            let path = partial.path().to_owned();
            tokio::task::spawn_blocking(move || {
                let mut file = std::fs::File::create(&path)?;
                write_pieces(&mut file, &pieces)?;
                file.sync_all()
            })
            .await
            .map_err(|_| StoreError::Unavailable("the write did not finish".into()))??;
            publish(partial.path(), &object_path(root, key)).await?;
            partial.published();
            return Ok(size);
        }
        let pieces =
            futures::stream::iter(pieces.into_iter().map(Ok::<_, std::convert::Infallible>));
        self.put_stream(key, pieces)
            .await
            .map_err(|error| match error {
                PutError::Source(never) => match never {},
                PutError::Storage(error) => error,
            })
    }

    /// Copies the object to a local file (replacing it) and returns its size. The caller
    /// only reads the copy (and removes it): from local files it is a hard link where it can
    /// be (on the same file system), as a stored object is never written again. Copying a
    /// long video's source would write all of it again, taking disk and CPU from the
    /// transcodes that follow.
    pub async fn get_to_file(&self, key: &ObjectKey, path: &Path) -> Result<u64, StoreError> {
        match self {
            Self::Files { root } => {
                let source = object_path(root, key);
                let _ = fs::remove_file(path).await;
                let linked = match fs::hard_link(&source, path).await {
                    Ok(()) => fs::metadata(path).await.map(|meta| meta.len()),
                    Err(error) if error.kind() == io::ErrorKind::NotFound => Err(error),
                    Err(_) => fs::copy(&source, path).await,
                };
                match linked {
                    Ok(size) => Ok(size),
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {
                        Err(StoreError::NotFound)
                    }
                    Err(error) => Err(error.into()),
                }
            }
            Self::S3 { store, .. } => store.get_to_file(key, path).await,
        }
    }

    /// The object's size, or `None` when it does not exist.
    pub async fn size(&self, key: &ObjectKey) -> Result<Option<u64>, StoreError> {
        match self {
            Self::Files { root } => match fs::metadata(object_path(root, key)).await {
                Ok(meta) => Ok(Some(meta.len())),
                Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(error) => Err(error.into()),
            },
            Self::S3 { store, .. } => store.size(key).await,
        }
    }

    /// Streams the bytes `range` of the object (the caller has checked it against the size).
    pub async fn read_range(
        &self,
        key: &ObjectKey,
        range: Range<u64>,
    ) -> Result<crate::stream::ObjectBody, StoreError> {
        match self {
            Self::Files { root } => {
                let mut file = match fs::File::open(object_path(root, key)).await {
                    Ok(file) => file,
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {
                        return Err(StoreError::NotFound);
                    }
                    Err(error) => return Err(error.into()),
                };
                file.seek(io::SeekFrom::Start(range.start)).await?;
                let limited = file.take(range.end.saturating_sub(range.start));
                Ok(Box::pin(ReaderStream::with_capacity(limited, FILE_CHUNK)))
            }
            Self::S3 { store, .. } => store.read_range(key, range).await,
        }
    }

    /// A URL that reads the object without credentials for `lifetime`, answered with these
    /// headers; `None` for files, which only the gateway can serve.
    pub async fn presigned_get(
        &self,
        key: &ObjectKey,
        content_type: &str,
        disposition: &str,
        lifetime: std::time::Duration,
    ) -> Result<Option<String>, StoreError> {
        match self {
            Self::Files { .. } => Ok(None),
            Self::S3 { store, .. } => store
                .presigned_get(key, Some((content_type, disposition)), lifetime)
                .await
                .map(Some),
        }
    }

    /// Where a reader that seeks can read the object as it is stored, with no copy made
    /// first: the file itself, or a presigned URL (working for `lifetime`) that S3 answers in
    /// byte ranges. `NotFound` when there is no such object.
    pub async fn in_place(
        &self,
        key: &ObjectKey,
        lifetime: std::time::Duration,
    ) -> Result<InPlace, StoreError> {
        let Some(size) = self.size(key).await? else {
            return Err(StoreError::NotFound);
        };
        match self {
            Self::Files { root } => Ok(InPlace::File(object_path(root, key))),
            Self::S3 { store, .. } => Ok(InPlace::Url {
                url: store.presigned_get(key, None, lifetime).await?,
                size,
            }),
        }
    }

    /// Removes the object; removing a missing object is not an error.
    pub async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError> {
        match self {
            Self::Files { root } => {
                let path = object_path(root, key);
                match fs::remove_file(&path).await {
                    Ok(()) => {}
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => return Err(error.into()),
                }
                // A folder of one group's objects (`parts/{job}/`) goes with its last one.
                if let Some(folder) = path.parent()
                    && folder.parent().is_some_and(|above| above != root.as_path())
                {
                    let _ = fs::remove_dir(folder).await;
                }
                Ok(())
            }
            Self::S3 { store, .. } => store.delete(key).await,
        }
    }
}

/// Where an object is read in place (see [`ObjectStore::in_place`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InPlace {
    File(PathBuf),
    Url { url: String, size: u64 },
}

pub(crate) fn object_path(root: &Path, key: &ObjectKey) -> PathBuf {
    // ObjectKey guarantees relative, dot-free segments, so this stays under `root`.
    root.join(key.as_ref())
}

/// A file being written under `.partial`; removed when dropped unless it was published.
struct PartialFile(Option<PathBuf>);

impl PartialFile {
    fn path(&self) -> &Path {
        self.0.as_deref().expect("set until published")
    }

    fn published(mut self) {
        self.0 = None;
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            // Synchronous: a drop cannot wait, and unlinking one file is quick.
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Writes `pieces` one after the other into `file`, a megabyte at a time: one write of tens of
/// megabytes into a new file took ten times as long as the same bytes in slices on this
/// project's test machines (0.45 s against 0.04 s for 48 MB, sync included).
pub fn write_pieces(file: &mut std::fs::File, pieces: &[Bytes]) -> io::Result<()> {
    use std::io::Write;
    for slice in pieces.iter().flat_map(|piece| piece.chunks(WRITE_SLICE)) {
        file.write_all(slice)?;
    }
    Ok(())
}

/// Partial files older than this belong to a writer that is gone: a live upload writes at
/// least every few seconds (slower ones are cut off), so it never looks this old.
const STALE_PARTIAL: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Removes partial files a dead process left behind, sparing any another process (sharing
/// the directory) is writing now.
async fn remove_stale_partials(dir: &Path) {
    let Ok(mut entries) = fs::read_dir(dir).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let stale = entry
            .metadata()
            .await
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age > STALE_PARTIAL);
        if stale {
            let _ = fs::remove_file(entry.path()).await;
        }
    }
}

fn partial_path(root: &Path) -> PathBuf {
    root.join(".partial").join(uuid::Uuid::new_v4().to_string())
}

pub(crate) async fn publish(partial: &Path, destination: &Path) -> Result<(), StoreError> {
    if let Some(parent) = destination.parent() {
        fs::create_dir_all(parent).await?;
    }
    fs::rename(partial, destination).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;

    fn key(text: &str) -> ObjectKey {
        ObjectKey::parse(text).unwrap()
    }

    #[tokio::test]
    async fn a_stored_stream_reads_back_whole_and_in_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::files(dir.path());
        store.init().await.unwrap();
        let chunks = vec![
            Ok::<_, io::Error>(Bytes::from_static(b"hello ")),
            Ok(Bytes::from_static(b"world")),
        ];
        let size = store
            .put_stream(&key("a/b.bin"), stream::iter(chunks))
            .await
            .unwrap();
        assert_eq!(size, 11);
        assert_eq!(store.size(&key("a/b.bin")).await.unwrap(), Some(11));
        let mut body = store.read_range(&key("a/b.bin"), 6..11).await.unwrap();
        let mut read = Vec::new();
        while let Some(chunk) = body.next().await {
            read.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(read, b"world");
    }

    /// Local files, or a new bucket on the S3 server when the suite runs on the production
    /// backends (see `scripts/test.sh`).
    async fn fresh_store(dir: &Path) -> ObjectStore {
        let store = match std::env::var("AUDIOMILL_TEST_BACKENDS").as_deref() {
            Ok("production") => {
                let variable = |name: &str| std::env::var(name).expect(name);
                let settings = crate::s3::S3Settings {
                    bucket: format!("store-{}", uuid::Uuid::new_v4().simple()),
                    endpoint: Some(variable("TEST_S3_ENDPOINT")),
                    region: "us-east-1".into(),
                    access_key_id: variable("TEST_S3_KEY"),
                    secret_access_key: variable("TEST_S3_SECRET"),
                };
                ObjectStore::s3(&settings, true)
            }
            _ => ObjectStore::files(dir),
        };
        store.init().await.unwrap();
        store
    }

    #[tokio::test]
    async fn stored_bytes_read_back_whole_across_part_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let store = fresh_store(dir.path()).await;
        let bytes: Vec<u8> = (0..crate::s3::PART_SIZE * 2 + 3).map(|i| i as u8).collect();
        // In pieces that cross the write slices and S3's parts, an empty one among them.
        let whole = Bytes::from(bytes.clone());
        let cuts = [
            0,
            5,
            WRITE_SLICE + 7,
            WRITE_SLICE + 7,
            crate::s3::PART_SIZE + 1,
            bytes.len(),
        ];
        let pieces = cuts
            .windows(2)
            .map(|cut| whole.slice(cut[0]..cut[1]))
            .collect();
        let size = store.put_pieces(&key("m/p3.mp3"), pieces).await;
        assert_eq!(size.unwrap(), bytes.len() as u64);
        let copy = dir.path().join("copy");
        store.get_to_file(&key("m/p3.mp3"), &copy).await.unwrap();
        assert!(std::fs::read(&copy).unwrap() == bytes);
        // Got again over the copy, and still whole once the object is gone.
        store.get_to_file(&key("m/p3.mp3"), &copy).await.unwrap();
        store.delete(&key("m/p3.mp3")).await.unwrap();
        assert!(std::fs::read(&copy).unwrap() == bytes);
        assert_eq!(
            store.put_pieces(&key("m/empty"), Vec::new()).await.unwrap(),
            0
        );
        assert_eq!(store.size(&key("m/empty")).await.unwrap(), Some(0));
    }

    /// What a part of a long source reads on a worker that does not hold the job.
    #[tokio::test]
    async fn an_object_is_read_in_place_in_byte_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let store = fresh_store(dir.path()).await;
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        store
            .put_pieces(&key("uploads/v"), vec![Bytes::from(bytes.clone())])
            .await
            .unwrap();
        let lifetime = std::time::Duration::from_secs(60);
        match store.in_place(&key("uploads/v"), lifetime).await.unwrap() {
            InPlace::File(path) => assert!(std::fs::read(path).unwrap() == bytes),
            InPlace::Url { url, size } => {
                assert_eq!(size, bytes.len() as u64);
                let answer = reqwest::Client::new()
                    .get(&url)
                    .header("range", "bytes=70000-70009")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(answer.status(), reqwest::StatusCode::PARTIAL_CONTENT);
                assert_eq!(answer.bytes().await.unwrap(), bytes[70_000..70_010]);
            }
        }
        assert!(matches!(
            store.in_place(&key("uploads/none"), lifetime).await,
            Err(StoreError::NotFound)
        ));
    }

    #[tokio::test]
    async fn a_failed_stream_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::files(dir.path());
        store.init().await.unwrap();
        let chunks = vec![Ok(Bytes::from_static(b"partial")), Err("client went away")];
        let result = store.put_stream(&key("x.bin"), stream::iter(chunks)).await;
        assert!(matches!(result, Err(PutError::Source("client went away"))));
        assert_eq!(store.size(&key("x.bin")).await.unwrap(), None);
        let leftovers = std::fs::read_dir(dir.path().join(".partial"))
            .unwrap()
            .count();
        assert_eq!(leftovers, 0);
    }

    #[tokio::test]
    async fn a_write_dropped_half_way_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::files(dir.path());
        store.init().await.unwrap();
        // A stream that sends a little and then never ends, as a client that went silent.
        let chunks = stream::iter(vec![Ok::<_, io::Error>(Bytes::from_static(b"partial"))])
            .chain(stream::pending());
        let target = key("x.bin");
        let write = store.put_stream(&target, Box::pin(chunks));
        let timed_out = tokio::time::timeout(std::time::Duration::from_millis(200), write).await;
        assert!(timed_out.is_err(), "the write was still waiting");
        let leftovers = std::fs::read_dir(dir.path().join(".partial"))
            .unwrap()
            .count();
        assert_eq!(leftovers, 0, "the dropped write removed its partial file");
    }

    #[tokio::test]
    async fn stale_partial_files_are_removed_at_start_and_fresh_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join(".partial");
        std::fs::create_dir_all(&partial).unwrap();
        let stale = partial.join("stale");
        std::fs::write(&stale, b"old").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(old)
            .unwrap();
        std::fs::write(partial.join("fresh"), b"in flight").unwrap();
        ObjectStore::files(dir.path()).init().await.unwrap();
        assert!(!stale.exists());
        assert!(partial.join("fresh").exists());
    }

    #[tokio::test]
    async fn deleting_a_missing_object_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::files(dir.path());
        store.init().await.unwrap();
        store.delete(&key("nothing/here")).await.unwrap();
        assert!(matches!(
            store
                .get_to_file(&key("nothing/here"), &dir.path().join("out"))
                .await,
            Err(StoreError::NotFound)
        ));
    }
}
