//! A worker's scratch space: a directory of its own under `WORK_DIR`, held by a lock.
//!
//! Several workers may share one `WORK_DIR` (two on one host, with the default one). Each
//! claims `WORK_DIR/worker-{instance}/` and holds an exclusive lock on
//! `WORK_DIR/worker-{instance}.lock` for as long as it lives; the kernel drops the lock when
//! the process ends, however it ends. At start a worker removes only what no live process
//! holds: every entry whose lock it can take. A live worker's files are never touched.
//!
//! Paths of a job's files are made here from the job id alone, never taken from workflow
//! history, so nobody who can write to Temporal can point a step at another file.

use audiomill_domain::{JobId, output::AudioFormat};
use std::{
    fs::{File, OpenOptions, TryLockError},
    io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
};

/// How often a claim is tried again when a sweeping worker removed its lock file in between.
const CLAIM_ATTEMPTS: usize = 3;

/// This worker's own directory under `WORK_DIR`, locked while the value lives.
#[derive(Debug, Clone)]
pub struct WorkDir {
    own: PathBuf,
    _lock: Arc<Lock>,
}

impl WorkDir {
    /// Claims `root/worker-{instance}` for this process and removes what dead workers left
    /// under `root`. Blocking: run it off the async runtime's threads.
    pub fn claim(root: &Path, instance: &str) -> io::Result<Self> {
        std::fs::create_dir_all(root)?;
        let name = format!("worker-{instance}");
        let own = root.join(&name);
        let lock = Lock::take(&own)?;
        let swept = sweep(root, &name)?;
        if swept > 0 {
            tracing::info!(
                entries = swept,
                "removed what stopped workers left in WORK_DIR"
            );
        }
        std::fs::create_dir_all(&own)?;
        Ok(Self {
            own,
            _lock: Arc::new(lock),
        })
    }

    /// This worker's directory.
    pub fn path(&self) -> &Path {
        &self.own
    }

    /// A job's directory: its source, its output and the parts it holds.
    pub fn job_dir(&self, job: JobId) -> PathBuf {
        self.own.join(job.to_string())
    }

    /// A job's converted audio, in `format`: a fixed name, so a retried attempt overwrites
    /// the earlier output, never adds one.
    pub fn output_file(&self, job: JobId, format: AudioFormat) -> PathBuf {
        self.job_dir(job)
            .join(format!("output.{}", format.extension()))
    }

    /// A file of this worker's outside any job directory (a part of a job held elsewhere).
    pub fn loose_file(&self, name: &str) -> PathBuf {
        self.own.join(name)
    }
}

/// An exclusive lock on an entry of `WORK_DIR` (held on the file beside it, `{entry}.lock`).
/// Released, it takes the entry and its lock file with it.
#[derive(Debug)]
struct Lock {
    file: File,
    entry: PathBuf,
    path: PathBuf,
}

impl Lock {
    /// Takes the lock of `entry`. Refused while another process holds it.
    fn take(entry: &Path) -> io::Result<Self> {
        let path = lock_path(entry);
        for _ in 0..CLAIM_ATTEMPTS {
            match Self::try_take(entry)? {
                Some(lock) => return Ok(lock),
                None => continue,
            }
        }
        Err(io::Error::other(format!(
            "{} is locked by another process",
            path.display()
        )))
    }

    /// `None` when the lock is held elsewhere, or its file was removed before it was locked.
    fn try_take(entry: &Path) -> io::Result<Option<Self>> {
        let path = lock_path(entry);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(error)) => return Err(error),
        }
        // A sweeping worker may have removed the file between its opening and its locking:
        // a lock on a file no longer at `path` protects nothing.
        let still_there = match std::fs::metadata(&path) {
            Ok(at_path) => {
                let locked = file.metadata()?;
                at_path.ino() == locked.ino() && at_path.dev() == locked.dev()
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => false,
            Err(error) => return Err(error),
        };
        Ok(still_there.then(|| Self {
            file,
            entry: entry.to_owned(),
            path,
        }))
    }

    /// Removes the locked entry, whatever it is.
    fn remove_entry(&self) -> io::Result<()> {
        match std::fs::symlink_metadata(&self.entry) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&self.entry),
            Ok(_) => std::fs::remove_file(&self.entry),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error),
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Both removed while the lock is still held, so no other process takes a lock on a
        // file going away.
        let _ = self.remove_entry();
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

fn lock_path(entry: &Path) -> PathBuf {
    let mut name = entry.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Removes every entry of `root` but `own` (and its lock) that no live process holds; how
/// many went.
fn sweep(root: &Path, own: &str) -> io::Result<usize> {
    let own_lock = format!("{own}.lock");
    let mut swept = 0;
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == own || name == own_lock.as_str() {
            continue;
        }
        let path = entry.path();
        // A lock file is judged with the entry it locks.
        let locked = match path.to_str().and_then(|p| p.strip_suffix(".lock")) {
            Some(locked) => PathBuf::from(locked),
            None => path,
        };
        let Some(lock) = Lock::try_take(&locked)? else {
            continue;
        };
        lock.remove_entry()?;
        swept += 1;
    }
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_worker_keeps_the_first_ones_files_and_removes_a_dead_ones() {
        let root = tempfile::tempdir().unwrap();
        let first = WorkDir::claim(root.path(), "a").unwrap();
        std::fs::create_dir_all(first.path().join("job")).unwrap();
        std::fs::write(first.path().join("job/source"), b"video").unwrap();
        // A dead worker's directory (no lock held) and an entry of no worker at all.
        std::fs::create_dir_all(root.path().join("worker-dead/job")).unwrap();
        std::fs::write(root.path().join("worker-dead.lock"), b"").unwrap();
        std::fs::write(root.path().join("stray-part-1.mp3"), b"mp3").unwrap();

        let second = WorkDir::claim(root.path(), "b").unwrap();
        assert_eq!(
            std::fs::read(first.path().join("job/source")).unwrap(),
            b"video"
        );
        let mut left: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["worker-a", "worker-a.lock", "worker-b", "worker-b.lock"]
        );

        // A worker that stops takes its directory and its lock with it.
        drop(second);
        assert!(!root.path().join("worker-b").exists());
        assert!(!root.path().join("worker-b.lock").exists());
        assert!(first.path().join("job/source").exists());
    }

    #[test]
    fn a_claimed_name_is_refused_to_a_second_claim() {
        let root = tempfile::tempdir().unwrap();
        let _first = WorkDir::claim(root.path(), "a").unwrap();
        let error = WorkDir::claim(root.path(), "a").unwrap_err();
        assert!(error.to_string().contains("locked"), "{error}");
    }
}
