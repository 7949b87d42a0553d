//! The directories of `RUN --mount=type=cache`: `<root>/cache-mounts/<name>`
//! where the name is the SHA-256 of the cache id (ids are user input and
//! must not name a path), each beside a `<name>.lock` that steps hold shared
//! or exclusive while they use it, so a prune never removes one in use.

use super::lock::FileLock;
use super::{Store, StoreError};
use std::path::{Path, PathBuf};

/// A cache mount's directory and the lock a step holds on it.
#[derive(Debug)]
pub struct CacheMount {
    /// The directory (may not exist yet).
    pub dir: PathBuf,
    /// Held for as long as the step uses the directory; `None` when a
    /// non-waiting exclusive lock found it in use.
    pub lock: Option<CacheMountLock>,
}

/// A lock on a cache mount; dropping it releases it.
#[derive(Debug)]
pub struct CacheMountLock {
    _held: FileLock,
}

/// How a step locks a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMountAccess {
    /// Beside other shared users; waits for an exclusive one.
    Shared,
    /// Alone; waits for the others.
    Exclusive,
    /// Alone, or not at all when in use.
    TryExclusive,
}

/// What [`Store::prune_cache_mounts`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheMountsPruned {
    /// Cache directories removed.
    pub removed: usize,
    /// Those kept because a step is using them.
    pub in_use: usize,
}

impl Store {
    fn cache_mounts_root(&self) -> PathBuf {
        self.layout.cache_mounts.clone()
    }

    /// Cache `id`'s directory, locked as `access` asks.
    pub fn cache_mount(
        &self,
        id: &str,
        access: CacheMountAccess,
    ) -> Result<CacheMount, StoreError> {
        let root = self.cache_mounts_root();
        let digest = crate::digest::sha256(id.as_bytes()).to_string();
        let name = digest.rsplit(':').next().unwrap_or(&digest);
        let lock_path = root.join(format!("{name}.lock"));
        let lock = match access {
            CacheMountAccess::Shared => Some(FileLock::shared(&lock_path)?),
            CacheMountAccess::Exclusive => Some(FileLock::exclusive(&lock_path)?),
            CacheMountAccess::TryExclusive => FileLock::try_exclusive(&lock_path)?,
        };
        Ok(CacheMount {
            dir: root.join(name),
            lock: lock.map(|held| CacheMountLock { _held: held }),
        })
    }

    /// Removes every cache mount directory no step is using.
    pub fn prune_cache_mounts(&self) -> Result<CacheMountsPruned, StoreError> {
        let root = self.cache_mounts_root();
        let mut pruned = CacheMountsPruned::default();
        let entries = match std::fs::read_dir(&root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(pruned),
            Err(e) => return Err(StoreError::io("read directory", &root, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("read directory", &root, e))?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "lock") {
                continue;
            }
            let Some(_lock) = FileLock::try_exclusive(&path.with_extension("lock"))? else {
                pruned.in_use += 1;
                continue;
            };
            remove(&path)?;
            pruned.removed += 1;
        }
        Ok(pruned)
    }
}

/// Removes a cache (also its read-only directories and, rootless with a
/// subordinate range, what the steps' other users own: see `remove_tree`).
fn remove(path: &Path) -> Result<(), StoreError> {
    super::remove::remove_tree(path)
}
