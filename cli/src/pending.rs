//! Resumable uploads under way, kept beside the login (`uploads.json`, readable by its owner
//! alone), so that `convert` run again after a crash or a cut connection goes on where the
//! last run stopped instead of from byte zero. An upload is found again only for the same
//! server, file (path, size and modification time) and output choices.

use crate::problem::Problem;
use serde::{Deserialize, Serialize};
use std::{
    fs,
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
    time::UNIX_EPOCH,
};

/// The most uploads remembered; the oldest are forgotten first (the server expires them
/// anyway).
const MAX_REMEMBERED: usize = 100;

/// What an upload is of: the same key later means the same bytes and choices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadKey {
    pub server: String,
    pub file: PathBuf,
    pub size: u64,
    /// Modification time, Unix nanoseconds: a file changed since is sent afresh.
    pub modified: u128,
    /// The output choices, as the form fields they are sent as.
    pub choices: Vec<(String, String)>,
}

impl UploadKey {
    /// The key of the file at `path` as it is now.
    pub fn of(server: &str, path: &Path, choices: Vec<(String, String)>) -> io::Result<Self> {
        let metadata = fs::metadata(path)?;
        let modified = metadata
            .modified()?
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_nanos());
        Ok(Self {
            server: server.to_owned(),
            file: fs::canonicalize(path)?,
            size: metadata.len(),
            modified,
            choices,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Remembered {
    key: UploadKey,
    url: String,
}

/// The uploads file in the config directory `dir`.
pub struct PendingUploads {
    dir: PathBuf,
}

impl PendingUploads {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    fn file(&self) -> PathBuf {
        self.dir.join("uploads.json")
    }

    /// The URL of the unfinished upload of `key`, if one is remembered.
    pub fn find(&self, key: &UploadKey) -> Option<String> {
        self.read()
            .into_iter()
            .find(|remembered| &remembered.key == key)
            .map(|remembered| remembered.url)
    }

    /// Remembers that `url` is the upload of `key` (in place of any other of it).
    pub fn remember(&self, key: &UploadKey, url: &str) -> Result<(), Problem> {
        let mut all = self.read();
        all.retain(|remembered| &remembered.key != key);
        all.push(Remembered {
            key: key.clone(),
            url: url.to_owned(),
        });
        let excess = all.len().saturating_sub(MAX_REMEMBERED);
        all.drain(..excess);
        self.write(&all)
    }

    /// Forgets the upload at `url` (finished, or gone from the server).
    pub fn forget(&self, url: &str) -> Result<(), Problem> {
        let mut all = self.read();
        let before = all.len();
        all.retain(|remembered| remembered.url != url);
        if all.len() == before {
            return Ok(());
        }
        self.write(&all)
    }

    /// What is remembered; a file that is missing or damaged remembers nothing (the uploads
    /// it named are sent afresh).
    fn read(&self) -> Vec<Remembered> {
        fs::read(self.file())
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Replaces the file whole (0600, in a 0700 directory).
    fn write(&self, all: &[Remembered]) -> Result<(), Problem> {
        let path = self.file();
        let saving = |error: io::Error| Problem::saving(&path, &error);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(saving)?;
        let partial = self
            .dir
            .join(format!(".uploads.json.{}", std::process::id()));
        let text = serde_json::to_vec_pretty(all).expect("uploads serialize");
        let written = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .and_then(|mut file| file.write_all(&text).and_then(|()| file.sync_all()))
            .and_then(|()| fs::rename(&partial, &path));
        written.map_err(|error| {
            let _ = fs::remove_file(&partial);
            saving(error)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_is_found_again_only_for_the_same_file_and_choices() {
        let home = tempfile::tempdir().unwrap();
        let video = home.path().join("talk.mp4");
        fs::write(&video, b"0123456789").unwrap();
        let store = PendingUploads::in_dir(&home.path().join("audiomill"));
        let key = UploadKey::of("http://s", &video, vec![]).unwrap();
        assert_eq!(store.find(&key), None);
        store.remember(&key, "http://s/uploads/1").unwrap();
        assert_eq!(store.find(&key).as_deref(), Some("http://s/uploads/1"));
        let other_choices = UploadKey::of("http://s", &video, vec![("quality".into(), "4".into())]);
        assert_eq!(store.find(&other_choices.unwrap()), None);
        let other_server = UploadKey::of("http://t", &video, vec![]).unwrap();
        assert_eq!(store.find(&other_server), None);
        fs::write(&video, b"01234567890").unwrap();
        assert_eq!(
            store.find(&UploadKey::of("http://s", &video, vec![]).unwrap()),
            None
        );
        store.forget("http://s/uploads/1").unwrap();
        assert_eq!(store.find(&key), None);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(store.file()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
