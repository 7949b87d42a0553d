//! Walking images through their documents (index → manifests → config and
//! layers), and pruning: removing what neither an image name nor (unless
//! asked) the step cache needs — blobs, unpacked snapshots — and the temp
//! files interrupted builds left behind.
//!
//! Order keeps a prune that is killed midway harmless: cache records go
//! before the blobs and snapshots they name, a blob is one unlink, and a
//! snapshot leaves `snapshots/` in one rename before it is deleted; cache
//! hits also check that their blob is still there.

use super::chains::{config_chains, record_chains};
use super::lock::FileLock;
use super::remove::{remove_tree, tree_size};
use super::{CacheRecord, CacheStore, Store, StoreError};
use crate::image::ManifestOrIndex;
use crate::image::media;
use oci_spec::image::{Descriptor, Digest};
use std::collections::{HashMap, HashSet};

/// How much a prune removes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PruneScope {
    /// What no image name and no step cache record needs: the next build
    /// still hits the cache (`docker builder prune`).
    #[default]
    Unused,
    /// The step cache records not used for this long too, then what only
    /// they needed (`docker builder prune --filter until=…`).
    UnusedFor(std::time::Duration),
    /// The step cache too, then everything no image name needs
    /// (`docker builder prune --all`): the next build runs every step.
    All,
}

impl PruneScope {
    /// Whether the record of `key` goes.
    fn drops(self, cache: &CacheStore, key: &Digest) -> bool {
        match self {
            Self::Unused => false,
            Self::All => true,
            Self::UnusedFor(age) => cache
                .last_used(key)
                .is_none_or(|used| used.elapsed().is_ok_and(|elapsed| elapsed >= age)),
        }
    }
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Blobs removed, in no particular order.
    pub removed_blobs: Vec<Digest>,
    /// Snapshots (unpacked layers) removed, by chain ID.
    pub removed_snapshots: Vec<Digest>,
    /// Step cache records removed (those the scope drops, and unreadable
    /// ones).
    pub removed_records: usize,
    /// Leftover temp files and directories removed.
    pub removed_temp_files: usize,
    /// The bytes all of that held.
    pub reclaimed_bytes: u64,
}

/// What the image names reach.
struct Reach {
    /// Every stored or absent digest the walk met.
    digests: HashSet<Digest>,
    /// The config digests of the manifests met.
    configs: Vec<Digest>,
}

impl Store {
    /// Prunes with [`PruneScope::Unused`]; see [`Store::prune_with`].
    pub fn prune(&self) -> Result<PruneReport, StoreError> {
        self.prune_with(PruneScope::Unused)
    }

    /// Removes the blobs and snapshots `scope` no longer needs and leftover
    /// temp files. Needs the store to itself: fails with
    /// [`StoreError::Busy`] while any writer or [`Lease`](super::Lease) is
    /// alive, in this process or another (every build holds one, and looks
    /// snapshots up under it).
    pub fn prune_with(&self, scope: PruneScope) -> Result<PruneReport, StoreError> {
        let Some(_exclusive) = FileLock::try_exclusive(&self.layout.gc_lock())? else {
            return Err(StoreError::Busy {
                root: self.root().to_owned(),
            });
        };
        let mut report = PruneReport::default();
        let records = self.prune_records(scope, &mut report)?;

        let roots = self.refs().list()?.into_iter().map(|(_, d)| d);
        let reach = self.reach(roots)?;
        let cached_layers = records.values().filter_map(|r| r.layer.as_ref());
        let mut live: HashSet<Digest> = reach
            .digests
            .iter()
            .chain(cached_layers.map(|layer| &layer.digest))
            .cloned()
            .collect();
        self.prune_variants(scope, &mut live)?;
        let blobs = self.blobs();
        for digest in blobs.list()? {
            if live.contains(&digest) {
                continue;
            }
            report.reclaimed_bytes += blobs.size(&digest).unwrap_or(0);
            blobs.remove(&digest)?;
            report.removed_blobs.push(digest);
        }

        // Decided after the blobs went: a base image no longer stored
        // keeps no snapshot of the steps above it.
        let mut chains: HashSet<Digest> = reach
            .configs
            .iter()
            .filter_map(|config| config_chains(&blobs, config))
            .flatten()
            .collect();
        chains.extend(record_chains(&records, |base| {
            config_chains(&blobs, base).map(|chain| chain.last().cloned())
        }));
        let snapshots = self.snapshots();
        for chain in snapshots.list()? {
            if !chains.contains(&chain) {
                report.reclaimed_bytes += snapshots.remove(&chain)?;
                report.removed_snapshots.push(chain);
            }
        }

        let (temp_files, temp_bytes) = self.clear_tmp()?;
        let (record_temps, record_temp_bytes) = self.cache().clear_temp_files()?;
        report.removed_temp_files = temp_files + record_temps;
        report.reclaimed_bytes += temp_bytes + record_temp_bytes;
        Ok(report)
    }

    /// Forgets the compressed variants `scope` drops (all with
    /// [`PruneScope::All`], else those of a source blob that goes) and
    /// adds the blobs of those it keeps to `live`.
    fn prune_variants(
        &self,
        scope: PruneScope,
        live: &mut HashSet<Digest>,
    ) -> Result<(), StoreError> {
        let variants = self.variants();
        for entry in variants.list()? {
            if scope != PruneScope::All && live.contains(&entry.source) {
                live.insert(entry.variant.digest().clone());
            } else {
                variants.remove(&entry.source, &entry.kind)?;
            }
        }
        Ok(())
    }

    /// The step cache records `scope` keeps, by key, after removing the
    /// others: those `scope` drops, and the unreadable ones (which would
    /// fail every build that looks them up).
    fn prune_records(
        &self,
        scope: PruneScope,
        report: &mut PruneReport,
    ) -> Result<HashMap<Digest, CacheRecord>, StoreError> {
        let cache = self.cache();
        let mut kept = HashMap::new();
        for key in cache.keys()? {
            let record = if scope.drops(&cache, &key) {
                None
            } else {
                match cache.peek(&key) {
                    Ok(record) => record,
                    Err(StoreError::CorruptCacheRecord { .. }) => None,
                    Err(other) => return Err(other),
                }
            };
            match record {
                Some(record) => {
                    kept.insert(key, record);
                }
                None => {
                    cache.remove(&key)?;
                    report.removed_records += 1;
                }
            }
        }
        if scope == PruneScope::All {
            cache.clear_positions()?;
        }
        cache.prune_aliases(|key| kept.contains_key(key))?;
        Ok(kept)
    }

    /// The total size of the stored blobs `target` reaches (each counted
    /// once): what the image takes in this store.
    pub fn content_size(&self, target: &Descriptor) -> Result<u64, StoreError> {
        let blobs = self.blobs();
        Ok(self
            .reach(std::iter::once(target.clone()))?
            .digests
            .iter()
            .filter_map(|d| blobs.size(d).ok())
            .sum())
    }

    /// What `roots` reach. Documents that are not stored (the other
    /// platforms of a pulled index) end the walk there.
    fn reach(&self, roots: impl IntoIterator<Item = Descriptor>) -> Result<Reach, StoreError> {
        let blobs = self.blobs();
        let mut reach = Reach {
            digests: HashSet::new(),
            configs: Vec::new(),
        };
        let mut pending: Vec<Descriptor> = roots.into_iter().collect();
        while let Some(descriptor) = pending.pop() {
            let digest = descriptor.digest().clone();
            if !reach.digests.insert(digest.clone()) {
                continue;
            }
            let media_type = descriptor.media_type().to_string();
            if media::document_kind(&media_type).is_none() || !blobs.contains(&digest) {
                continue;
            }
            let bytes = blobs.read(&digest)?;
            let document = ManifestOrIndex::parse(&bytes, Some(&media_type))
                .map_err(|source| StoreError::BadDocument { digest, source })?;
            if let ManifestOrIndex::Manifest(manifest) = &document {
                reach.configs.push(manifest.config().digest().clone());
            }
            pending.extend(document.children().into_iter().cloned());
        }
        Ok(reach)
    }

    /// Removes everything in `tmp/`: blobs and snapshots being written by
    /// builds that were killed, snapshots whose removal was cut short.
    /// Returns how many entries went and their bytes.
    fn clear_tmp(&self) -> Result<(usize, u64), StoreError> {
        let dir = &self.layout.tmp;
        let entries =
            std::fs::read_dir(dir).map_err(|e| StoreError::io("list directory", dir, e))?;
        let (mut removed, mut bytes) = (0, 0);
        for entry in entries {
            let path = entry
                .map_err(|e| StoreError::io("list directory", dir, e))?
                .path();
            bytes += tree_size(&path);
            remove_tree(&path)?;
            removed += 1;
        }
        Ok((removed, bytes))
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

    /// Commits a snapshot named `chain` holding one file, under a
    /// read-only directory as layers often have.
    fn snapshot(store: &Store, chain: &Digest) {
        use std::os::unix::fs::PermissionsExt;
        let pending = store.snapshots().begin().unwrap();
        let dir = pending.path().join("usr");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("file"), b"unpacked").unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        pending.commit(&store.snapshots(), chain).unwrap();
    }

    #[test]
    fn the_build_cache_keeps_its_blobs_and_snapshots_until_all_is_pruned() {
        use crate::store::{CacheRecord, CachedLayer};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let layer = put(&store, MediaType::ImageLayerGzip, b"cached layer");
        let diff_id = crate::digest::sha256(b"cached tar");
        let key = crate::digest::sha256(b"step inputs");
        let record = CacheRecord {
            inputs: serde_json::json!({ "parent": "scratch" }),
            layer: Some(CachedLayer {
                digest: layer.digest().clone(),
                size: layer.size(),
                media_type: layer.media_type().to_string(),
                diff_id: diff_id.clone(),
            }),
            config_change: serde_json::Value::Null,
            created: None,
        };
        store.cache().put(&key, "Dockerfile:0:0", &record).unwrap();
        // The step's snapshot (its chain ID is its diff ID: it is the
        // bottom layer), and one nothing needs.
        snapshot(&store, &diff_id);
        let orphan = crate::digest::sha256(b"orphan chain");
        snapshot(&store, &orphan);
        // A snapshot removal cut short, and a record write cut short.
        std::fs::create_dir(dir.path().join("tmp/snapshot-removed-x")).unwrap();
        std::fs::write(dir.path().join("cache/.record-killed"), b"{").unwrap();

        // An alias of the record, and one of a record that is gone.
        let (alias, stale) = (crate::digest::sha256(b"a"), crate::digest::sha256(b"s"));
        store.cache().put_alias(&alias, &key).unwrap();
        let gone = crate::digest::sha256(b"gone");
        store.cache().put_alias(&stale, &gone).unwrap();

        let report = store.prune().unwrap();
        assert_eq!(store.cache().alias(&alias).unwrap(), Some(key.clone()));
        assert_eq!(store.cache().alias(&stale).unwrap(), None);
        assert!(report.removed_blobs.is_empty());
        assert_eq!(report.removed_snapshots, vec![orphan.clone()]);
        assert_eq!(report.removed_records, 0);
        assert_eq!(report.removed_temp_files, 2);
        assert!(report.reclaimed_bytes >= b"unpacked".len() as u64);
        assert!(store.blobs().contains(layer.digest()));
        assert!(store.snapshots().contains(&diff_id));
        assert!(!store.snapshots().contains(&orphan));
        assert_eq!(store.cache().peek(&key).unwrap(), Some(record));
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );

        let report = store.prune_with(PruneScope::All).unwrap();
        assert_eq!(report.removed_records, 1);
        assert_eq!(report.removed_blobs, vec![layer.digest().clone()]);
        assert_eq!(report.removed_snapshots, vec![diff_id.clone()]);
        assert!(store.cache().get(&key).unwrap().is_none());
        assert!(store.cache().last_at("Dockerfile:0:0").unwrap().is_none());
        assert_eq!(store.cache().alias(&alias).unwrap(), None);
        // The record's inputs went with it.
        assert_eq!(
            std::fs::read_dir(dir.path().join("cache/inputs"))
                .unwrap()
                .count(),
            0
        );
        assert_eq!(store.snapshots().list().unwrap(), Vec::<Digest>::new());
    }

    #[test]
    fn records_unused_for_longer_than_asked_go_and_a_lookup_counts_as_use() {
        use crate::store::CacheRecord;
        use std::time::{Duration, SystemTime};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cache = store.cache();
        let record = CacheRecord {
            inputs: serde_json::json!({ "parent": "scratch" }),
            layer: None,
            config_change: serde_json::Value::Null,
            created: None,
        };
        let keys: Vec<Digest> = ["stale", "looked-up", "fresh"]
            .iter()
            .map(|name| crate::digest::sha256(name.as_bytes()))
            .collect();
        let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 86_400);
        for (i, key) in keys.iter().enumerate() {
            cache.put(key, &format!("p{i}"), &record).unwrap();
            if i < 2 {
                let path = dir.path().join(format!("cache/{}.json", key.digest()));
                let file = std::fs::File::options().write(true).open(path).unwrap();
                file.set_modified(two_days_ago).unwrap();
            }
        }
        assert!(cache.get(&keys[1]).unwrap().is_some());

        let report = store
            .prune_with(PruneScope::UnusedFor(Duration::from_secs(86_400)))
            .unwrap();
        assert_eq!(report.removed_records, 1);
        assert!(cache.get(&keys[0]).unwrap().is_none());
        assert!(cache.get(&keys[1]).unwrap().is_some());
        assert!(cache.get(&keys[2]).unwrap().is_some());
    }

    #[test]
    fn an_unreadable_cache_record_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = crate::digest::sha256(b"k");
        let path = dir.path().join(format!("cache/{}.json", key.digest()));
        std::fs::write(&path, b"{not json").unwrap();
        assert!(store.cache().get(&key).is_err());
        assert_eq!(store.prune().unwrap().removed_records, 1);
        assert!(store.cache().get(&key).unwrap().is_none());
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
