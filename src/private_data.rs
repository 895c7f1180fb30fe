//! Files only their owner reads: the data directory holds password hashes, webhook secrets,
//! signing keys and everyone's MP3s.
//!
//! Every file and directory a server-side command creates is private to the owner (a umask of
//! 077, inherited by the Temporal dev server `dev` starts). `dev` also makes its data directory
//! private when an earlier run, or another tool, left it readable by others, and says so once.

use rustix::fs::Mode;
use std::{
    io,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
};

/// Group and other permission bits.
const SHARED_BITS: u32 = 0o077;

/// New files and directories of this process and its children: 0600 and 0700.
pub fn create_files_private() {
    rustix::process::umask(Mode::from_raw_mode(SHARED_BITS));
}

/// Creates `dir` (0700) if it is missing, and takes group and other permissions off
/// everything in it that has any; how many entries it changed. Other processes (SQLite's
/// journals, a running Temporal dev server) create and remove files meanwhile: an entry that
/// vanishes during the walk has nothing left to protect and is passed over.
pub fn make_private(dir: &Path) -> io::Result<usize> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut changed = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        if let Some(entry) = unless_gone(tighten(&path))? {
            changed += usize::from(entry.changed);
            pending.extend(entry.children);
        }
    }
    Ok(changed)
}

/// What tightening one entry did.
struct Tightened {
    changed: bool,
    /// A directory's entries, to walk next.
    children: Vec<PathBuf>,
}

/// Takes group and other permissions off `path`, and lists its entries if it is a directory.
fn tighten(path: &Path) -> io::Result<Tightened> {
    // Links are not followed: what they point to is not the data directory's.
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(Tightened {
            changed: false,
            children: Vec::new(),
        });
    }
    let mode = meta.permissions().mode();
    let changed = mode & SHARED_BITS != 0;
    if changed {
        let private = mode & !SHARED_BITS & 0o7777;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(private))?;
    }
    let mut children = Vec::new();
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            // An entry removed while listed is passed over, like one removed before.
            if let Some(entry) = unless_gone(entry)? {
                children.push(entry.path());
            }
        }
    }
    Ok(Tightened { changed, children })
}

/// `None` for what another process removed meanwhile; other errors stay errors.
fn unless_gone<T>(result: io::Result<T>) -> io::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_data_directory_becomes_private_to_its_owner() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir_all(data.join("objects/mp3")).unwrap();
        std::fs::write(data.join("audiomill.db"), b"").unwrap();
        std::fs::write(data.join("objects/mp3/a.mp3"), b"").unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        for path in [&data, &data.join("objects"), &data.join("objects/mp3")] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        for file in ["audiomill.db", "objects/mp3/a.mp3"] {
            std::fs::set_permissions(data.join(file), std::fs::Permissions::from_mode(0o644))
                .unwrap();
        }
        assert_eq!(make_private(&data).unwrap(), 5);
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("objects/mp3")), 0o700);
        assert_eq!(mode(&data.join("audiomill.db")), 0o600);
        assert_eq!(mode(&data.join("objects/mp3/a.mp3")), 0o600);
        // Once private, nothing more to change.
        assert_eq!(make_private(&data).unwrap(), 0);
        // A missing one is created private.
        let fresh = root.path().join("fresh/data");
        assert_eq!(make_private(&fresh).unwrap(), 0);
        assert_eq!(mode(&fresh), 0o700);
    }

    #[test]
    fn files_that_come_and_go_during_the_walk_do_not_stop_it() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        // An entry gone before it is looked at, as a journal removed after the listing.
        assert!(
            unless_gone(tighten(&data.join("gone-journal")))
                .unwrap()
                .is_none()
        );
        // And for real: another thread creates and removes shared files all along.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let churn = {
            let (data, stop) = (data.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let file = data.join(format!("journal-{}", n % 50));
                    let _ = std::fs::write(&file, b"x");
                    let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644));
                    let _ = std::fs::remove_file(data.join(format!("journal-{}", (n + 25) % 50)));
                    n += 1;
                }
            })
        };
        for _ in 0..300 {
            make_private(&data).expect("a vanishing file does not stop the walk");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        churn.join().unwrap();
    }
}
