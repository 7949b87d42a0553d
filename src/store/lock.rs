//! Advisory file locks (`flock`) that let several builder processes share one
//! store root: short exclusive locks around read-modify-write of small files,
//! and shared "leases" that keep garbage collection away while content that
//! is not referenced yet is being written.
//!
//! Locks are released when the value is dropped (the descriptor is closed).

use super::StoreError;
use rustix::fs::{FlockOperation, flock};
use rustix::io::Errno;
use std::fs::{File, OpenOptions};
use std::path::Path;

/// A held `flock` on a lock file; dropping it releases the lock.
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    /// Waits for an exclusive lock on `path` (created if missing).
    pub(crate) fn exclusive(path: &Path) -> Result<Self, StoreError> {
        Self::acquire(path, FlockOperation::LockExclusive)?.ok_or_else(|| unreachable_busy(path))
    }

    /// Takes an exclusive lock on `path` if nobody holds any lock on it;
    /// `None` when it is held.
    pub(crate) fn try_exclusive(path: &Path) -> Result<Option<Self>, StoreError> {
        Self::acquire(path, FlockOperation::NonBlockingLockExclusive)
    }

    /// Waits for a shared lock on `path` (created if missing).
    pub(crate) fn shared(path: &Path) -> Result<Self, StoreError> {
        Self::acquire(path, FlockOperation::LockShared)?.ok_or_else(|| unreachable_busy(path))
    }

    fn acquire(path: &Path, operation: FlockOperation) -> Result<Option<Self>, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|source| StoreError::io("open lock file", path, source))?;
        loop {
            match flock(&file, operation) {
                Ok(()) => return Ok(Some(Self { _file: file })),
                Err(Errno::INTR) => continue,
                Err(Errno::WOULDBLOCK) => return Ok(None),
                Err(errno) => {
                    return Err(StoreError::io("lock", path, errno.into()));
                }
            }
        }
    }
}

/// A blocking `flock` never reports "would block"; should the kernel do so
/// anyway, say so instead of panicking.
fn unreachable_busy(path: &Path) -> StoreError {
    StoreError::io(
        "lock",
        path,
        std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            "blocking lock reported busy",
        ),
    )
}

/// A shared hold on the store that keeps `prune` from running: take one for
/// the whole of an operation that writes blobs before a reference points at
/// them (a pull, a build), so they are not collected in between.
#[derive(Debug)]
pub struct Lease {
    _lock: FileLock,
}

impl Lease {
    pub(crate) fn new(lock: FileLock) -> Self {
        Self { _lock: lock }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_is_refused_while_shared_is_held_and_granted_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.lock");
        let a = FileLock::shared(&path).unwrap();
        let b = FileLock::shared(&path).unwrap();
        assert!(FileLock::try_exclusive(&path).unwrap().is_none());
        drop((a, b));
        let x = FileLock::try_exclusive(&path).unwrap();
        assert!(x.is_some());
        assert!(FileLock::try_exclusive(&path).unwrap().is_none());
    }
}
