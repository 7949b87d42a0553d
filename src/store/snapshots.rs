//! Unpacked layers: `snapshots/<chain-id-hex>/` holds one layer's files in
//! overlay form (whiteouts as 0/0 character devices, opaque directories
//! marked by the overlay `opaque` xattr), so a stack of snapshots is
//! directly a list of overlay lower directories.
//!
//! A snapshot is named by its chain ID (OCI image spec): the chain ID of the
//! bottom layer is its diff ID, and each layer above is
//! `sha256(<parent chain id> + " " + <diff id>)`, so the same layer on top of
//! different parents gets different snapshots. Snapshots are filled in a
//! temp directory under `tmp/` and renamed into place with
//! `RENAME_NOREPLACE`: once there, a snapshot never changes. When two builds
//! prepare the same snapshot at once, the first rename wins and the other
//! discards its copy.

use super::lock::{FileLock, Lease};
use super::remove::{remove_tree, tree_size};
use super::{BlobFollower, BlobStore, Layout, StoreError};
use crate::userns::{Stack, extract_layer};
use oci_spec::image::{Descriptor, Digest, DigestAlgorithm};
use rustix::fs::{CWD, RenameFlags};
use rustix::io::Errno;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The chain ID of a layer with diff ID `diff_id` on top of the layers whose
/// chain ID is `parent` (`None` for the bottom layer).
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(parent) => crate::digest::sha256(format!("{parent} {diff_id}").as_bytes()),
    }
}

/// The chain IDs of every prefix of a layer stack given bottom first.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = chain_id(out.last(), diff_id);
        out.push(next);
    }
    out
}

/// The unpacked layers of one store root. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    layout: Arc<Layout>,
}

impl SnapshotStore {
    pub(super) fn new(layout: Arc<Layout>) -> Self {
        Self { layout }
    }

    /// Where the snapshot of `chain_id` lives (whether or not it is there).
    /// Only SHA-256 chain IDs have a place, so the path never leaves the store.
    pub fn path(&self, chain_id: &Digest) -> Result<PathBuf, StoreError> {
        match chain_id.algorithm() {
            DigestAlgorithm::Sha256 => Ok(self.layout.snapshots.join(chain_id.digest())),
            _ => Err(StoreError::UnsupportedDigest {
                digest: chain_id.clone(),
            }),
        }
    }

    /// Whether the snapshot of `chain_id` is committed.
    pub fn contains(&self, chain_id: &Digest) -> bool {
        self.path(chain_id).is_ok_and(|path| path.is_dir())
    }

    /// A fresh, empty directory (mode 0755) on the store's filesystem, to be
    /// filled and then committed as a snapshot; removed if dropped first.
    /// It holds a lease, so `prune` leaves it alone meanwhile.
    pub fn begin(&self) -> Result<PendingSnapshot, StoreError> {
        let lease = Lease::new(FileLock::shared(&self.layout.gc_lock())?);
        let dir = tempfile::Builder::new()
            .prefix("snapshot-")
            .tempdir_in(&self.layout.tmp)
            .map_err(|e| StoreError::io("create temp directory in", &self.layout.tmp, e))?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| StoreError::io("set permissions of", dir.path(), e))?;
        Ok(PendingSnapshot {
            dir: Some(dir),
            _lease: lease,
        })
    }

    /// Makes sure the snapshot of `layer` (a blob in `blobs`, with diff ID
    /// `diff_id` as the image config lists it) on top of the committed
    /// snapshots `below` (their chain IDs, bottom first) exists, unpacking
    /// the blob when it does not. Returns its chain ID. The unpacked stream
    /// must hash to `diff_id`, else nothing is committed. Parent directories
    /// the layer leaves out take their metadata from the snapshots below.
    pub fn unpack(
        &self,
        blobs: &BlobStore,
        below: &[Digest],
        layer: &Descriptor,
        diff_id: &Digest,
    ) -> Result<Digest, StoreError> {
        self.unpack_observed(blobs, below, layer, diff_id, &mut |_| {})
    }

    /// As [`SnapshotStore::unpack`], telling `read` how many bytes of the
    /// blob it has read so far (in all) as it unpacks them; not called at
    /// all when the snapshot exists.
    pub fn unpack_observed(
        &self,
        blobs: &BlobStore,
        below: &[Digest],
        layer: &Descriptor,
        diff_id: &Digest,
        read: &mut (dyn FnMut(u64) + Send),
    ) -> Result<Digest, StoreError> {
        let chain = chain_id(below.last(), diff_id);
        if self.contains(&chain) {
            return Ok(chain);
        }
        // A blob damaged on disk is named as such, not as the gzip or tar
        // error it causes.
        let (blob, check) = blobs.open_checked(layer.digest())?;
        self.unpack_from(below, layer, diff_id, blob, || check.finish(), read)
    }

    /// As [`SnapshotStore::unpack_observed`], reading the blob as it is
    /// written (a download) through `blob`: the snapshot is committed only
    /// if the blob is, so a download that fails or whose bytes do not
    /// match its digest leaves none.
    pub fn unpack_following(
        &self,
        below: &[Digest],
        layer: &Descriptor,
        diff_id: &Digest,
        blob: BlobFollower,
        read: &mut (dyn FnMut(u64) + Send),
    ) -> Result<Digest, StoreError> {
        let chain = chain_id(below.last(), diff_id);
        if self.contains(&chain) {
            return blob.ending().finish().map(|_| chain);
        }
        let ending = blob.ending();
        self.unpack_from(
            below,
            layer,
            diff_id,
            blob,
            || ending.finish().map(drop),
            read,
        )
    }

    /// Unpacks the blob of `layer` read through `blob` into a new snapshot
    /// above `below`; `finish` says (after the unpacking, whatever its
    /// outcome) whether the bytes read were the blob's, and its error
    /// comes first.
    fn unpack_from(
        &self,
        below: &[Digest],
        layer: &Descriptor,
        diff_id: &Digest,
        blob: impl std::io::Read + Send,
        finish: impl FnOnce() -> Result<(), StoreError>,
        read: &mut (dyn FnMut(u64) + Send),
    ) -> Result<Digest, StoreError> {
        let chain = chain_id(below.last(), diff_id);
        let lowers = below
            .iter()
            .rev()
            .map(|chain| self.path(chain))
            .collect::<Result<Vec<_>, _>>()?;
        let pending = self.begin()?;
        let blob = Observed {
            inner: blob,
            done: 0,
            read,
        };
        let layer_error = |source| StoreError::Layer {
            digest: layer.digest().clone(),
            source: Box::new(source),
        };
        let media_type = layer.media_type().to_string();
        // Owners as the steps must see them (also rootless: see `userns`).
        let report = crate::layer::compress::decompress(blob, &media_type)
            .map_err(|e| layer_error(e.into()))
            .map(|tar| extract_layer(tar, pending.path(), Stack::Snapshot { lowers }));
        finish()?;
        let report = report?.map_err(layer_error)?;
        if &report.diff_id != diff_id {
            return Err(StoreError::DiffIdMismatch {
                layer: Box::new(layer.digest().clone()),
                expected: Box::new(diff_id.clone()),
                actual: Box::new(report.diff_id),
            });
        }
        pending.commit(self, &chain)?;
        Ok(chain)
    }

    /// Unpacks every layer of an image (bottom first, with the config's
    /// diff IDs in the same order) and returns the chain IDs, bottom first.
    pub fn unpack_all(
        &self,
        blobs: &BlobStore,
        layers: &[Descriptor],
        diff_ids: &[Digest],
    ) -> Result<Vec<Digest>, StoreError> {
        if layers.len() != diff_ids.len() {
            return Err(StoreError::LayerCountMismatch {
                layers: layers.len(),
                diff_ids: diff_ids.len(),
            });
        }
        let mut chains: Vec<Digest> = Vec::with_capacity(layers.len());
        for (layer, diff_id) in layers.iter().zip(diff_ids) {
            let chain = self.unpack(blobs, &chains, layer, diff_id)?;
            chains.push(chain);
        }
        Ok(chains)
    }

    /// The chain IDs of the committed snapshots. Entries that are not
    /// named like a snapshot are not the store's and are left out.
    pub fn list(&self) -> Result<Vec<Digest>, StoreError> {
        let dir = &self.layout.snapshots;
        let entries =
            std::fs::read_dir(dir).map_err(|e| StoreError::io("list directory", dir, e))?;
        let mut chains = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("list directory", dir, e))?;
            let name = entry.file_name();
            let parsed = name
                .to_str()
                .and_then(|hex| Digest::try_from(format!("sha256:{hex}")).ok());
            if let Some(chain) = parsed {
                chains.push(chain);
            }
        }
        Ok(chains)
    }

    /// Removes the snapshot of `chain_id` and returns the bytes its files
    /// held. It first leaves `snapshots/` in one rename (into `tmp/`), so
    /// an interrupted removal never leaves a partial snapshot to be used:
    /// only a temp directory the next prune clears. Callers hold the gc
    /// lock exclusively (no build is looking snapshots up).
    pub(super) fn remove(&self, chain_id: &Digest) -> Result<u64, StoreError> {
        let path = self.path(chain_id)?;
        let doomed = self
            .layout
            .tmp
            .join(format!("snapshot-removed-{}", chain_id.digest()));
        remove_tree(&doomed)?;
        match std::fs::rename(&path, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(StoreError::io("move out of place", &path, e)),
        }
        let size = tree_size(&doomed);
        remove_tree(&doomed)?;
        Ok(size)
    }
}

impl SnapshotStore {
    /// Makes the snapshots ones unpacked with on-disk owners `mapping` (see
    /// [`crate::userns::owner_mapping`]), recorded in `snapshot-owners`.
    /// Snapshots of another mapping — a store used by root and rootless, a
    /// changed `/etc/subuid` range, or a store from before the record —
    /// would show steps other owners than the image's, so they are removed
    /// (a layer unpacks again when next needed). Returns how many were.
    /// Must be called before this process takes a [`Lease`].
    pub fn claim(&self, mapping: &str) -> Result<usize, StoreError> {
        let record = self.layout.root.join("snapshot-owners");
        let found = match std::fs::read_to_string(&record) {
            Ok(found) => Some(found),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(StoreError::io("read", &record, e)),
        };
        if found.as_deref().map(str::trim_end) == Some(mapping) {
            return Ok(0);
        }
        let mut removed = 0;
        if !self.list()?.is_empty() {
            let Some(_exclusive) = FileLock::try_exclusive(&self.layout.gc_lock())? else {
                return Err(StoreError::OtherOwners {
                    root: self.layout.root.clone(),
                    mapping: mapping.to_owned(),
                });
            };
            for chain in self.list()? {
                self.remove(&chain)?;
                removed += 1;
            }
        }
        let pending = self
            .layout
            .tmp
            .join(format!("snapshot-owners-{}", std::process::id()));
        std::fs::write(&pending, format!("{mapping}\n"))
            .and_then(|()| std::fs::rename(&pending, &record))
            .map_err(|e| StoreError::io("write", &record, e))?;
        Ok(removed)
    }
}

/// A reader that tells `read` how many bytes went through it so far.
struct Observed<'a, R> {
    inner: R,
    done: u64,
    read: &'a mut (dyn FnMut(u64) + Send),
}

impl<R: std::io::Read> std::io::Read for Observed<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        (self.read)(self.done);
        Ok(n)
    }
}

/// A snapshot being filled; see [`SnapshotStore::begin`].
#[derive(Debug)]
pub struct PendingSnapshot {
    dir: Option<tempfile::TempDir>,
    _lease: Lease,
}

impl Drop for PendingSnapshot {
    /// Removes the directory when not committed. Rootless with a
    /// subordinate range, a step's other users' files in it may need root
    /// of the user namespace (see [`remove_tree`]).
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            if dir.close().is_err() {
                let _ = remove_tree(&path);
            }
        }
    }
}

impl PendingSnapshot {
    /// The directory to fill.
    pub fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .map(tempfile::TempDir::path)
            .expect("a pending snapshot has its directory until committed")
    }

    /// Moves the directory to the snapshot of `chain_id`. When that snapshot
    /// already exists (another build committed it first), this copy is
    /// discarded and the existing one kept. Returns the snapshot's path.
    pub fn commit(
        mut self,
        snapshots: &SnapshotStore,
        chain_id: &Digest,
    ) -> Result<PathBuf, StoreError> {
        let dest = snapshots.path(chain_id)?;
        let Some(dir) = self.dir.take() else {
            return Ok(dest);
        };
        match rustix::fs::renameat_with(CWD, dir.path(), CWD, &dest, RenameFlags::NOREPLACE) {
            Ok(()) => {
                // The directory now lives at `dest`: nothing to clean up.
                let _ = dir.keep();
                Ok(dest)
            }
            // The loser of a race: `dir` is removed when dropped.
            Err(Errno::EXIST | Errno::NOTEMPTY) => Ok(dest),
            Err(e) => Err(StoreError::io("rename into place", &dest, e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        let a = crate::digest::sha256(b"a");
        let b = crate::digest::sha256(b"b");
        let chains = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chains[0], a);
        assert_eq!(
            chains[1],
            crate::digest::sha256(format!("{a} {b}").as_bytes())
        );
    }

    #[test]
    fn the_first_commit_wins_and_the_second_copy_is_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let snapshots = store.snapshots();
        let chain = crate::digest::sha256(b"layer");
        let first = snapshots.begin().unwrap();
        std::fs::write(first.path().join("f"), b"first").unwrap();
        let second = snapshots.begin().unwrap();
        std::fs::write(second.path().join("f"), b"second").unwrap();
        let second_tmp = second.path().to_path_buf();
        let path = first.commit(&snapshots, &chain).unwrap();
        assert_eq!(second.commit(&snapshots, &chain).unwrap(), path);
        assert_eq!(std::fs::read(path.join("f")).unwrap(), b"first");
        assert!(!second_tmp.exists());
        assert!(snapshots.contains(&chain));
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }
}
