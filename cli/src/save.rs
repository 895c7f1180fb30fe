//! Saving a downloaded MP3: whole or not at all under its final name.

use crate::problem::Problem;
use audiomill_client::ByteStream;
use futures::StreamExt;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Writes `body` to `target` and returns the bytes written. A file is written beside the
/// target under a hidden name and renamed into place once complete, so an interrupted or
/// failed download never leaves a partial MP3 that looks whole. `-` is standard output; a
/// target that exists and is not a regular file (a device, a pipe) is written directly.
pub async fn save(server: &str, body: ByteStream, target: &Path) -> Result<u64, Problem> {
    let failed = |error: std::io::Error| Problem::saving(target, &error);
    if target == Path::new("-") {
        return copy(server, body, &mut tokio::io::stdout(), target).await;
    }
    if tokio::fs::metadata(target)
        .await
        .is_ok_and(|metadata| !metadata.is_file())
    {
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(target)
            .await
            .map_err(failed)?;
        return copy(server, body, &mut file, target).await;
    }
    let partial = partial_name(target);
    let written = async {
        let mut file = tokio::fs::File::create(&partial).await.map_err(failed)?;
        let written = copy(server, body, &mut file, target).await?;
        file.sync_all().await.map_err(failed)?;
        tokio::fs::rename(&partial, target).await.map_err(failed)?;
        Ok(written)
    }
    .await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(&partial).await;
    }
    written
}

async fn copy(
    server: &str,
    mut body: ByteStream,
    out: &mut (impl AsyncWrite + Unpin),
    target: &Path,
) -> Result<u64, Problem> {
    let mut written = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|error| Problem::connection(server, &error))?;
        out.write_all(&chunk)
            .await
            .map_err(|error| Problem::saving(target, &error))?;
        written += chunk.len() as u64;
    }
    out.flush()
        .await
        .map_err(|error| Problem::saving(target, &error))?;
    Ok(written)
}

/// `dir/.name.partial` for `dir/name`.
fn partial_name(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map_or_else(|| "download".into(), |name| name.to_string_lossy());
    target.with_file_name(format!(".{name}.partial"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(chunks: Vec<&'static [u8]>) -> ByteStream {
        let chunks = chunks
            .into_iter()
            .map(|chunk| Ok(bytes::Bytes::from_static(chunk)));
        ByteStream::new(Box::pin(futures::stream::iter(chunks.collect::<Vec<_>>())))
    }

    #[tokio::test]
    async fn a_saved_file_is_whole_and_nothing_else_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("clip.mp3");
        let written = save("http://test", body(vec![b"ID3", b"rest"]), &target)
            .await
            .unwrap();
        assert_eq!(written, 7);
        assert_eq!(std::fs::read(&target).unwrap(), b"ID3rest");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "only the MP3 is left");
    }

    #[tokio::test]
    async fn a_full_device_is_told_as_a_full_disk() {
        let problem = save("http://test", body(vec![b"ID3"]), Path::new("/dev/full"))
            .await
            .unwrap_err();
        assert_eq!(
            problem.to_string(),
            "Could not save /dev/full: the disk is full."
        );
    }

    #[tokio::test]
    async fn a_missing_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("nowhere/clip.mp3");
        let problem = save("http://test", body(vec![b"ID3"]), &target)
            .await
            .unwrap_err();
        assert!(
            problem.to_string().ends_with("its folder does not exist."),
            "{problem}"
        );
    }
}
