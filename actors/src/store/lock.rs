//! The cache lock: one process at a time may change a cache directory.
//!
//! `serve` holds an exclusive advisory lock on `<root>/ociregistry.lock` for its whole life;
//! `prune` and `load` take the same lock before they touch the files, so they refuse to run
//! while a server keeps the cache in memory (a server would not see their changes, and a prune
//! could delete a blob the server is about to serve). The lock is released by the kernel when
//! the process exits, however it exits, so a crash never leaves a stale lock. The file holds
//! the owner's process id, for the error message, and, once a server listens, where its admin
//! API answers (`admin URL`): `load`, `list` and `prune` run beside a running server by asking
//! it there instead of touching the files.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;

/// The lock file's name in the cache root. Not a Go directory, so the Go server ignores it.
pub const LOCK_FILE: &str = "ociregistry.lock";

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "the cache {} is in use by another ociregistry process{}; stop it first",
        root.display(),
        owner.as_ref().map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Busy {
        root: PathBuf,
        owner: Option<String>,
        /// Where the owner's admin API answers, when it is a server that said so.
        admin: Option<String>,
    },
    #[error("cannot lock the cache: {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An exclusive hold on a cache directory, released when dropped (or when the process ends).
#[derive(Debug)]
pub struct CacheLock {
    file: File,
    path: PathBuf,
}

impl CacheLock {
    /// Takes the lock on the cache at `root` (created if missing), without waiting.
    pub fn acquire(root: &Path) -> Result<CacheLock, LockError> {
        let io = |path: &Path, source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(root).map_err(|e| io(root, e))?;
        let path = root.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        if !FileExt::try_lock_exclusive(&file).map_err(|e| io(&path, e))? {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let mut lines = text.lines().map(str::trim);
            let owner = lines.next().map(str::to_string).filter(|o| !o.is_empty());
            let admin = lines
                .find_map(|l| l.strip_prefix(ADMIN_PREFIX))
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty());
            return Err(LockError::Busy {
                root: root.to_path_buf(),
                owner,
                admin,
            });
        }
        let pid = std::process::id().to_string();
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(pid.as_bytes()))
            .map_err(|e| io(&path, e))?;
        Ok(CacheLock { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the admin API of the server holding the cache at `root` answers; `None` when no
    /// process holds the lock (a URL left in the file by a server that has exited is not
    /// trusted: another server may listen there now) or the holder advertises none. Reads only:
    /// the lock is probed with a shared lock released at once.
    pub fn holder_admin(root: &Path) -> Option<String> {
        let path = root.join(LOCK_FILE);
        let mut file = File::open(&path).ok()?;
        match FileExt::try_lock_shared(&file) {
            Ok(true) => {
                let _ = FileExt::unlock(&file);
                None
            }
            Ok(false) => {
                let mut text = String::new();
                file.read_to_string(&mut text).ok()?;
                text.lines()
                    .find_map(|l| l.trim().strip_prefix(ADMIN_PREFIX))
                    .map(|u| u.trim().to_string())
                    .filter(|u| !u.is_empty())
            }
            Err(_) => None,
        }
    }

    /// Records where this process's admin API answers (`http://127.0.0.1:8080`), for the
    /// commands that find the cache locked.
    pub fn advertise(&mut self, admin_url: &str) -> Result<(), LockError> {
        let text = format!("{}\n{ADMIN_PREFIX}{admin_url}\n", std::process::id());
        self.file
            .set_len(0)
            .and_then(|()| self.file.seek(SeekFrom::Start(0)))
            .and_then(|_| self.file.write_all(text.as_bytes()))
            .map_err(|source| LockError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

/// How the lock file's line naming the admin API starts.
const ADMIN_PREFIX: &str = "admin ";

impl Drop for CacheLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = CacheLock::acquire(dir.path()).unwrap();
        assert!(first.path().ends_with(LOCK_FILE));
        match CacheLock::acquire(dir.path()) {
            Err(LockError::Busy { owner, admin, .. }) => {
                assert_eq!(owner, Some(std::process::id().to_string()));
                assert_eq!(admin, None);
            }
            other => panic!("expected Busy, got {other:?}"),
        }
        let mut first = first;
        first.advertise("http://127.0.0.1:8080").unwrap();
        match CacheLock::acquire(dir.path()) {
            Err(LockError::Busy { owner, admin, .. }) => {
                assert_eq!(owner, Some(std::process::id().to_string()));
                assert_eq!(admin.as_deref(), Some("http://127.0.0.1:8080"));
            }
            other => panic!("expected Busy, got {other:?}"),
        }
        assert_eq!(
            CacheLock::holder_admin(dir.path()).as_deref(),
            Some("http://127.0.0.1:8080")
        );
        drop(first);
        assert_eq!(
            CacheLock::holder_admin(dir.path()),
            None,
            "the holder is gone"
        );
        let again = CacheLock::acquire(dir.path()).unwrap();
        drop(again);
    }

    #[test]
    fn the_message_says_the_cache_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let _held = CacheLock::acquire(dir.path()).unwrap();
        let msg = CacheLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("in use"), "{msg}");
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    }
}
