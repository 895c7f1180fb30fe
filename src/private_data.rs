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
    path::Path,
};

/// Group and other permission bits.
const SHARED_BITS: u32 = 0o077;

/// New files and directories of this process and its children: 0600 and 0700.
pub fn create_files_private() {
    rustix::process::umask(Mode::from_raw_mode(SHARED_BITS));
}

/// Creates `dir` (0700) if it is missing, and takes group and other permissions off
/// everything in it that has any; how many entries it changed.
pub fn make_private(dir: &Path) -> io::Result<usize> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut changed = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        // Links are not followed: what they point to is not the data directory's.
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode();
        if mode & SHARED_BITS != 0 {
            let private = mode & !SHARED_BITS & 0o7777;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(private))?;
            changed += 1;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
        }
    }
    Ok(changed)
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
}
