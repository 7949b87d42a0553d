//! `RUN --mount=type=cache` directories in a remote cache
//! (`--cache-to …,mounts=true`): each one the build used, when not empty,
//! becomes a layer blob written as a step's layer is (deterministic tar,
//! the build's compression); `--cache-from` unpacks one into a cache
//! directory the store does not have yet (or has empty), as a snapshot
//! is unpacked (digest and diff ID checked, extraction contained), and
//! copies it into place. A directory the store has wins.

use super::format::ExportedMount;
use super::source::RemoteBlobs;
use crate::layer::LayerError;
use crate::layer::compress::{Codec, write_compressed};
use crate::layer::diff::full_tree;
use crate::layer::tar::{WriteOptions, write_changes};
use crate::store::{CacheMountAccess, CachedLayer, Store, StoreError};
use std::collections::BTreeMap;
use std::path::Path;

/// Why a cache mount could not be exported or seeded.
#[derive(Debug, thiserror::Error)]
pub enum MountCacheError {
    /// The store could not lock, give or keep something.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The directory could not be read or its blob written or unpacked.
    #[error(transparent)]
    Layer(#[from] LayerError),
}

/// The cache mounts a build used: the store's key of each, with its id.
pub(crate) type MountsUsed = BTreeMap<String, String>;

/// Writes the cache mount `key` (of id `id`) as a layer blob of `store`,
/// compressed with `codec`; `None` when it is absent or empty. The
/// directory is locked shared while it is read.
pub(crate) fn export(
    store: &Store,
    key: &str,
    id: &str,
    codec: Codec,
) -> Result<Option<ExportedMount>, MountCacheError> {
    let mount = store.cache_mount(key, CacheMountAccess::Shared)?;
    let dir = &mount.dir;
    if is_empty(dir) {
        return Ok(None);
    }
    let changes = full_tree(dir)?;
    let writer = store.blobs().writer(None)?;
    let (writer, digests) = write_compressed(writer, codec, |out| {
        write_changes(dir, changes, out, &WriteOptions::default()).map(drop)
    })?;
    let stored = writer.commit()?;
    Ok(Some(ExportedMount {
        id: id.to_owned(),
        key: key.to_owned(),
        layer: CachedLayer {
            digest: stored.digest,
            size: stored.size,
            media_type: codec.compression().media_type().to_owned(),
            diff_id: digests.diff_id,
        },
    }))
}

/// Whether the cache directory `dir` is absent or holds nothing.
pub(crate) fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut entries| entries.next().is_none())
}

/// Fills the empty directory `into` with the content `remote` holds for
/// the cache mount `key`; `false` when no imported cache has it. A blob
/// that cannot be fetched or does not match its digest or diff ID is an
/// error (and no longer offered).
pub(crate) fn seed(
    store: &Store,
    remote: &RemoteBlobs,
    key: &str,
    into: &Path,
) -> Result<bool, MountCacheError> {
    let Some((descriptor, diff_id)) = remote.mount(key) else {
        return Ok(false);
    };
    let snapshots = store.snapshots();
    let unpacked = snapshots
        .unpack(&store.blobs(), &[], &descriptor, &diff_id)
        .inspect_err(|e| remote.refuse(descriptor.digest(), &e.to_string()))?;
    crate::layer::copy::copy_tree(&snapshots.path(&unpacked)?, into)?;
    Ok(true)
}
