//! Folders of the workers' hosts that the operator lets admins watch (`WATCH_DIRECTORIES`):
//! listed as a bucket is, a page of files at a time in path order, and read by the import
//! step. A path is used only once it resolves, links and `..` followed, inside one of those
//! folders; symbolic links in a watched folder are passed over, so nothing outside is reached.

use audiomill_store::ListedObject;
use bytes::Bytes;
use futures::Stream;
use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// A file written in this last while may still be growing: it waits for a later look.
const SETTLING: Duration = Duration::from_secs(5);

/// The folders that may be watched.
#[derive(Debug, Clone, Default)]
pub struct HostFolders {
    roots: Arc<Vec<PathBuf>>,
}

impl HostFolders {
    pub fn new(roots: Vec<PathBuf>) -> Self {
        Self {
            roots: Arc::new(roots),
        }
    }

    /// `path` as it resolves, when that is inside one of the folders; a sentence otherwise.
    pub async fn inside(&self, path: &Path) -> Result<PathBuf, String> {
        let resolved = tokio::fs::canonicalize(path).await.map_err(|error| {
            format!("{} cannot be read on this server: {error}.", path.display())
        })?;
        for root in self.roots.iter() {
            if let Ok(root) = tokio::fs::canonicalize(root).await
                && resolved.starts_with(&root)
            {
                return Ok(resolved);
            }
        }
        Err(format!(
            "{} is not inside a folder this server lets be watched (WATCH_DIRECTORIES).",
            path.display()
        ))
    }

    /// Up to `max` settled files under `folder` (in it or in folders under it), in path
    /// order after `after`, each keyed by its path relative to `folder`.
    pub async fn list(
        &self,
        folder: &Path,
        after: Option<&str>,
        max: u32,
    ) -> Result<Vec<ListedObject>, String> {
        let folder = self.inside(folder).await?;
        let after = after.map(str::to_owned);
        let listed = tokio::task::spawn_blocking(move || {
            let mut files = Vec::new();
            walk(&folder, "", &mut files);
            files
        })
        .await
        .map_err(|_| "The folder could not be listed.".to_owned())?;
        let settled_before = now_millis() - SETTLING.as_millis() as i64;
        let mut files: Vec<ListedObject> = listed
            .into_iter()
            .filter(|file| {
                after
                    .as_deref()
                    .is_none_or(|after| file.key.as_str() > after)
            })
            .filter(|file| file.modified_ms.is_some_and(|at| at <= settled_before))
            .collect();
        files.sort_by(|a, b| a.key.cmp(&b.key));
        files.truncate(max as usize);
        Ok(files)
    }

    /// File `path` (inside a watched folder): its length, and its bytes as they are read.
    pub async fn open(
        &self,
        path: &Path,
    ) -> Result<
        (
            u64,
            impl Stream<Item = Result<Bytes, String>> + Send + use<>,
        ),
        String,
    > {
        let resolved = self.inside(path).await?;
        let file = tokio::fs::File::open(&resolved)
            .await
            .map_err(|error| format!("The file could not be opened: {error}."))?;
        let length = file
            .metadata()
            .await
            .map_err(|error| format!("The file could not be read: {error}."))?
            .len();
        let body = tokio_util::io::ReaderStream::new(file);
        Ok((
            length,
            futures::StreamExt::map(body, |chunk| {
                chunk.map_err(|error| format!("The file could not be read: {error}."))
            }),
        ))
    }
}

/// Adds the regular files under `dir` to `files`, keyed by their path under the watched
/// folder (`prefix` so far); hidden names and symbolic links are passed over.
fn walk(dir: &Path, prefix: &str, files: &mut Vec<ListedObject>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if name.starts_with('.') || kind.is_symlink() {
            continue;
        }
        let key = format!("{prefix}{name}");
        if kind.is_dir() {
            walk(&entry.path(), &format!("{key}/"), files);
        } else if kind.is_file()
            && let Ok(metadata) = entry.metadata()
        {
            files.push(ListedObject {
                key,
                etag: String::new(),
                size: metadata.len(),
                modified_ms: metadata.modified().ok().map(unix_millis),
            });
        }
    }
}

fn unix_millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

fn now_millis() -> i64 {
    unix_millis(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_settled_files_inside_the_folders_are_listed_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("watched");
        let outside = dir.path().join("secret.mp4");
        std::fs::create_dir_all(root.join("inbox/deeper")).unwrap();
        std::fs::write(&outside, b"not for you").unwrap();
        for name in ["inbox/b.mp4", "inbox/deeper/a.mp4", "inbox/.hidden.mp4"] {
            std::fs::write(root.join(name), b"video").unwrap();
        }
        std::os::unix::fs::symlink(&outside, root.join("inbox/link.mp4")).unwrap();
        let old = SystemTime::now() - Duration::from_secs(60);
        for name in ["inbox/b.mp4", "inbox/deeper/a.mp4"] {
            let file = std::fs::File::options()
                .write(true)
                .open(root.join(name))
                .unwrap();
            file.set_modified(old).unwrap();
        }
        std::fs::write(root.join("inbox/growing.mp4"), b"vid").unwrap();
        let folders = HostFolders::new(vec![root.clone()]);

        let listed = folders.list(&root.join("inbox"), None, 10).await.unwrap();
        let keys: Vec<&str> = listed.iter().map(|file| file.key.as_str()).collect();
        assert_eq!(keys, ["b.mp4", "deeper/a.mp4"]);
        let after = folders
            .list(&root.join("inbox"), Some("b.mp4"), 10)
            .await
            .unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(
            folders
                .list(&root.join("inbox"), None, 1)
                .await
                .unwrap()
                .len(),
            1
        );

        // Nothing outside the folders: not through a link, not through `..`, not elsewhere.
        for path in [
            root.join("inbox/link.mp4"),
            root.join("inbox/../../secret.mp4"),
            outside.clone(),
        ] {
            assert!(folders.open(&path).await.is_err(), "{}", path.display());
        }
        assert!(folders.list(dir.path(), None, 10).await.is_err());
        assert!(HostFolders::default().list(&root, None, 10).await.is_err());
        let (length, _) = folders.open(&root.join("inbox/b.mp4")).await.unwrap();
        assert_eq!(length, 5);
    }
}
