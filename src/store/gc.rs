//! Walking images through their documents (index → manifests → config and
//! layers), and pruning: removing every blob no reference reaches, and the
//! temp files interrupted writers left behind.

use super::lock::FileLock;
use super::{Store, StoreError};
use crate::image::ManifestOrIndex;
use crate::image::media;
use oci_spec::image::{Descriptor, Digest};
use std::collections::HashSet;

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Blobs removed, in no particular order.
    pub removed_blobs: Vec<Digest>,
    /// Total size of the removed blobs.
    pub reclaimed_bytes: u64,
    /// Leftover temp files removed.
    pub removed_temp_files: usize,
}

impl Store {
    /// Removes blobs that no reference reaches and leftover temp files.
    /// Needs the store to itself: fails with [`StoreError::Busy`] while any
    /// writer or [`Lease`](super::Lease) is alive, in this process or another.
    pub fn prune(&self) -> Result<PruneReport, StoreError> {
        let Some(_exclusive) = FileLock::try_exclusive(&self.layout.gc_lock())? else {
            return Err(StoreError::Busy {
                root: self.root().to_owned(),
            });
        };
        let roots = self.refs().list()?.into_iter().map(|(_, d)| d);
        let live = self.reachable(roots)?;

        let blobs = self.blobs();
        let mut report = PruneReport::default();
        for digest in blobs.list()? {
            if live.contains(&digest) {
                continue;
            }
            report.reclaimed_bytes += blobs.size(&digest).unwrap_or(0);
            blobs.remove(&digest)?;
            report.removed_blobs.push(digest);
        }
        report.removed_temp_files = self.clear_tmp()?;
        Ok(report)
    }

    /// The total size of the stored blobs `target` reaches (each counted
    /// once): what the image takes in this store.
    pub fn content_size(&self, target: &Descriptor) -> Result<u64, StoreError> {
        let blobs = self.blobs();
        Ok(self
            .reachable(std::iter::once(target.clone()))?
            .iter()
            .filter_map(|d| blobs.size(d).ok())
            .sum())
    }

    /// Digests reachable from `roots`. Documents that are not stored (the
    /// other platforms of a pulled index) end the walk there.
    fn reachable(
        &self,
        roots: impl IntoIterator<Item = Descriptor>,
    ) -> Result<HashSet<Digest>, StoreError> {
        let blobs = self.blobs();
        let mut seen = HashSet::new();
        let mut pending: Vec<Descriptor> = roots.into_iter().collect();
        while let Some(descriptor) = pending.pop() {
            let digest = descriptor.digest().clone();
            if !seen.insert(digest.clone()) {
                continue;
            }
            let media_type = descriptor.media_type().to_string();
            if media::document_kind(&media_type).is_none() || !blobs.contains(&digest) {
                continue;
            }
            let bytes = blobs.read(&digest)?;
            let document = ManifestOrIndex::parse(&bytes, Some(&media_type))
                .map_err(|source| StoreError::BadDocument { digest, source })?;
            pending.extend(document.children().into_iter().cloned());
        }
        Ok(seen)
    }

    fn clear_tmp(&self) -> Result<usize, StoreError> {
        let dir = &self.layout.tmp;
        let entries =
            std::fs::read_dir(dir).map_err(|e| StoreError::io("list directory", dir, e))?;
        let mut removed = 0;
        for entry in entries {
            let path = entry
                .map_err(|e| StoreError::io("list directory", dir, e))?
                .path();
            let result = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            result.map_err(|e| StoreError::io("remove", &path, e))?;
            removed += 1;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Reference;
    use crate::image::manifest::{canonical_json, new_index, new_manifest};
    use oci_spec::image::MediaType;

    fn put(store: &Store, media_type: MediaType, bytes: &[u8]) -> Descriptor {
        let digest = store.blobs().put(bytes).unwrap();
        Descriptor::new(media_type, bytes.len() as u64, digest)
    }

    /// A stored single-layer image; returns its manifest descriptor and the
    /// digests of its config and layer.
    fn image(store: &Store, seed: &str) -> (Descriptor, Vec<Digest>) {
        let config = put(
            store,
            MediaType::ImageConfig,
            format!("{{\"c\":\"{seed}\"}}").as_bytes(),
        );
        let layer = put(
            store,
            MediaType::ImageLayerGzip,
            format!("layer {seed}").as_bytes(),
        );
        let parts = vec![config.digest().clone(), layer.digest().clone()];
        let manifest = new_manifest(config, vec![layer]);
        let desc = put(
            store,
            MediaType::ImageManifest,
            &canonical_json(&manifest).unwrap(),
        );
        (desc, parts)
    }

    #[test]
    fn prune_keeps_what_refs_reach_and_removes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();

        let (kept, kept_parts) = image(&store, "kept");
        store
            .refs()
            .set(&Reference::parse("kept").unwrap(), kept.clone())
            .unwrap();

        // Reached only through an index, whose other platform is absent.
        let (child, child_parts) = image(&store, "child");
        let absent = Descriptor::new(MediaType::ImageManifest, 9, crate::digest::sha256(b"gone"));
        let index = new_index(vec![child.clone(), absent]);
        let index_desc = put(
            &store,
            MediaType::ImageIndex,
            &canonical_json(&index).unwrap(),
        );
        let pinned = Reference::parse("multi")
            .unwrap()
            .with_digest(index_desc.digest().clone());
        store.refs().set(&pinned, index_desc.clone()).unwrap();

        let (dropped, dropped_parts) = image(&store, "dropped");
        let stray = store.blobs().put(b"stray").unwrap();
        // What a writer killed mid-blob leaves: a temp file nobody holds.
        std::fs::write(dir.path().join("tmp/blob-killed"), b"half").unwrap();

        let report = store.prune().unwrap();

        let mut expected_removed: Vec<Digest> = dropped_parts;
        expected_removed.push(dropped.digest().clone());
        expected_removed.push(stray);
        let mut removed = report.removed_blobs.clone();
        removed.sort_by_key(|d| d.to_string());
        expected_removed.sort_by_key(|d| d.to_string());
        assert_eq!(removed, expected_removed);
        assert_eq!(report.removed_temp_files, 1);
        assert!(report.reclaimed_bytes > 0);

        for d in kept_parts.iter().chain(&child_parts).chain([
            kept.digest(),
            child.digest(),
            index_desc.digest(),
        ]) {
            assert!(store.blobs().contains(d), "{d} should be kept");
        }
        assert!(
            std::fs::read_dir(dir.path().join("tmp"))
                .unwrap()
                .next()
                .is_none()
        );
        // A second prune finds nothing more.
        assert_eq!(store.prune().unwrap(), PruneReport::default());
    }

    #[test]
    fn prune_waits_for_writers_and_leases() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let writer = store.blobs().writer(None).unwrap();
        assert!(matches!(store.prune(), Err(StoreError::Busy { .. })));
        drop(writer);
        let lease = store.lease().unwrap();
        assert!(matches!(store.prune(), Err(StoreError::Busy { .. })));
        drop(lease);
        assert!(store.prune().is_ok());
    }

    #[test]
    fn content_size_counts_each_reachable_blob_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (manifest, parts) = image(&store, "x");
        let expected: u64 = parts
            .iter()
            .chain([manifest.digest()])
            .map(|d| store.blobs().size(d).unwrap())
            .sum();
        assert_eq!(store.content_size(&manifest).unwrap(), expected);
    }
}
