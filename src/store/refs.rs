//! The reference index: which manifest (or index) each image name points to.
//!
//! `refs.json` maps normalized references to descriptors: tagged names
//! (`docker.io/library/busybox:latest`) and digest-pinned names
//! (`docker.io/library/busybox@sha256:…`, as recorded by a pull by digest).
//! Readers read the file as it is (it is only ever replaced whole, by
//! rename); writers hold `locks/refs.lock` for the read-modify-write and a
//! lease so prune does not run meanwhile.

use super::lock::{FileLock, Lease};
use super::{Layout, StoreError};
use crate::image::Reference;
use oci_spec::image::Descriptor;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

const INDEX_VERSION: u32 = 1;

/// The on-disk form of the index.
#[derive(Debug, Default, Serialize, Deserialize)]
struct IndexFile {
    version: u32,
    refs: BTreeMap<String, Descriptor>,
}

/// The reference index of one store root. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RefStore {
    layout: Arc<Layout>,
}

impl RefStore {
    pub(super) fn new(layout: Arc<Layout>) -> Self {
        Self { layout }
    }

    /// What `reference` points to. A digest in the reference wins over its
    /// tag, as in Docker: `name@digest` is found by its own entry or by any
    /// entry of the same repository pointing to that digest.
    pub fn get(&self, reference: &Reference) -> Result<Option<Descriptor>, StoreError> {
        let index = self.load()?;
        let found = match reference.digest() {
            Some(digest) => index.refs.get(&key(reference)).cloned().or_else(|| {
                let name = reference.name();
                index
                    .refs
                    .iter()
                    .filter(|(k, _)| repository_of(k) == name)
                    .map(|(_, d)| d)
                    .find(|d| d.digest() == digest)
                    .cloned()
            }),
            None => index.refs.get(&key(reference)).cloned(),
        };
        Ok(found)
    }

    /// Points `reference` at `target`, replacing what it pointed to. A
    /// reference with a tag is stored as `name:tag`; one with only a digest
    /// as `name@digest`, which must be the target's digest.
    pub fn set(&self, reference: &Reference, target: Descriptor) -> Result<(), StoreError> {
        if reference.tag().is_none() && reference.digest() != Some(target.digest()) {
            return Err(StoreError::RefDigestMismatch {
                reference: reference.to_string(),
                target: target.digest().clone(),
            });
        }
        self.update(|index| {
            index.refs.insert(key(reference), target);
        })
    }

    /// Removes `reference` and returns the references removed. Removing a
    /// repository's last tag for an image also removes that repository's
    /// digest entries for it, as `docker rmi` does.
    pub fn remove(&self, reference: &Reference) -> Result<Vec<Reference>, StoreError> {
        let mut removed = Vec::new();
        self.update(|index| {
            let k = key(reference);
            let Some(target) = index.refs.remove(&k) else {
                return;
            };
            removed.push(k);
            let name = reference.name();
            let same_repo_and_image = |k: &String, d: &Descriptor| {
                repository_of(k) == name && d.digest() == target.digest()
            };
            let still_tagged = index
                .refs
                .iter()
                .any(|(k, d)| !k.contains('@') && same_repo_and_image(k, d));
            if !still_tagged {
                let pinned: Vec<String> = index
                    .refs
                    .iter()
                    .filter(|(k, d)| k.contains('@') && same_repo_and_image(k, d))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in pinned {
                    index.refs.remove(&k);
                    removed.push(k);
                }
            }
        })?;
        if removed.is_empty() {
            return Err(StoreError::RefNotFound {
                reference: reference.familiar(),
            });
        }
        removed
            .iter()
            .map(|k| Reference::parse(k).map_err(|e| self.corrupt_key(e)))
            .collect()
    }

    /// Removes every reference pointing to one of `targets` and returns
    /// them (all names of an image, for `rmi IMAGE-ID`).
    pub fn remove_targets(
        &self,
        targets: &std::collections::HashSet<oci_spec::image::Digest>,
    ) -> Result<Vec<Reference>, StoreError> {
        let mut removed = Vec::new();
        self.update(|index| {
            index.refs.retain(|k, d| {
                let hit = targets.contains(d.digest());
                if hit {
                    removed.push(k.clone());
                }
                !hit
            });
        })?;
        removed
            .iter()
            .map(|k| Reference::parse(k).map_err(|e| self.corrupt_key(e)))
            .collect()
    }

    /// Every reference and its target, sorted by reference.
    pub fn list(&self) -> Result<Vec<(Reference, Descriptor)>, StoreError> {
        self.load()?
            .refs
            .into_iter()
            .map(|(k, d)| Ok((Reference::parse(&k).map_err(|e| self.corrupt_key(e))?, d)))
            .collect()
    }

    fn update(&self, change: impl FnOnce(&mut IndexFile)) -> Result<(), StoreError> {
        let _lease = Lease::new(FileLock::shared(&self.layout.gc_lock())?);
        let _lock = FileLock::exclusive(&self.layout.refs_lock())?;
        let mut index = self.load()?;
        let before = index.refs.clone();
        change(&mut index);
        // Tagging an image with the name it already has (an unchanged
        // rebuild) writes nothing.
        if index.refs == before {
            return Ok(());
        }
        self.save(&index)
    }

    fn load(&self) -> Result<IndexFile, StoreError> {
        let path = self.layout.refs_index();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(IndexFile {
                    version: INDEX_VERSION,
                    refs: BTreeMap::new(),
                });
            }
            Err(e) => return Err(StoreError::io("read", &path, e)),
        };
        let index: IndexFile =
            serde_json::from_slice(&bytes).map_err(|source| StoreError::CorruptIndex {
                path: path.clone(),
                source,
            })?;
        if index.version != INDEX_VERSION {
            return Err(StoreError::IndexVersion {
                path,
                version: index.version,
            });
        }
        Ok(index)
    }

    /// Replaces the index file atomically: temp file, fsync, rename.
    fn save(&self, index: &IndexFile) -> Result<(), StoreError> {
        let path = self.layout.refs_index();
        let tmp_dir = &self.layout.tmp;
        let mut temp = tempfile::Builder::new()
            .prefix("refs-")
            .tempfile_in(tmp_dir)
            .map_err(|e| StoreError::io("create temp file in", tmp_dir, e))?;
        let bytes = serde_json::to_vec_pretty(index)
            .map_err(|e| StoreError::io("serialize", &path, e.into()))?;
        temp.write_all(&bytes)
            .and_then(|()| temp.as_file().sync_all())
            .map_err(|e| StoreError::io("write", temp.path(), e))?;
        temp.persist(&path)
            .map_err(|e| StoreError::io("rename into place", &path, e.error))?;
        Ok(())
    }

    fn corrupt_key(&self, e: crate::image::ReferenceError) -> StoreError {
        StoreError::CorruptIndex {
            path: self.layout.refs_index(),
            source: serde::de::Error::custom(e),
        }
    }
}

/// The index key of a reference: `name:tag` when it has a tag (any digest
/// dropped), else `name@digest`.
fn key(reference: &Reference) -> String {
    match reference.tag() {
        Some(tag) => format!("{}:{tag}", reference.name()),
        // Without a tag, a reference is `name@digest`.
        None => reference.to_string(),
    }
}

/// The `registry/repository` part of an index key.
fn repository_of(key: &str) -> &str {
    if let Some((name, _)) = key.split_once('@') {
        return name;
    }
    let last_slash = key.rfind('/').unwrap_or(0);
    match key[last_slash..].rfind(':') {
        Some(i) => &key[..last_slash + i],
        None => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256;
    use crate::store::Store;
    use oci_spec::image::MediaType;

    fn r(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    fn manifest(n: u8) -> Descriptor {
        Descriptor::new(MediaType::ImageManifest, 100 + u64::from(n), sha256(&[n]))
    }

    #[test]
    fn set_get_list_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let refs = store.refs();
        assert!(refs.list().unwrap().is_empty());
        assert_eq!(refs.get(&r("busybox")).unwrap(), None);

        refs.set(&r("busybox"), manifest(1)).unwrap();
        refs.set(&r("localhost:5000/app:v1"), manifest(2)).unwrap();
        let pinned = r("busybox").with_digest(manifest(1).digest().clone());
        refs.set(&pinned, manifest(1)).unwrap();

        assert_eq!(refs.get(&r("busybox:latest")).unwrap(), Some(manifest(1)));
        assert_eq!(refs.get(&pinned).unwrap(), Some(manifest(1)));
        // By digest through the tag entry of the same repository.
        let by_digest = r("localhost:5000/app").with_digest(manifest(2).digest().clone());
        assert_eq!(refs.get(&by_digest).unwrap(), Some(manifest(2)));
        // Not through another repository's entry.
        let other = r("other").with_digest(manifest(2).digest().clone());
        assert_eq!(refs.get(&other).unwrap(), None);

        let listed: Vec<String> = refs
            .list()
            .unwrap()
            .into_iter()
            .map(|(r, _)| r.to_string())
            .collect();
        assert_eq!(
            listed,
            vec![
                "docker.io/library/busybox:latest".to_owned(),
                pinned.to_string(),
                "localhost:5000/app:v1".to_owned(),
            ]
        );

        // Removing the last tag takes the repository's digest entry with it.
        let removed = refs.remove(&r("busybox")).unwrap();
        assert_eq!(removed, vec![r("busybox"), pinned]);
        assert!(matches!(
            refs.remove(&r("busybox")),
            Err(StoreError::RefNotFound { .. })
        ));
        assert_eq!(refs.list().unwrap().len(), 1);
    }

    #[test]
    fn a_digest_reference_must_match_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let refs = Store::open(dir.path()).unwrap().refs();
        let pinned = r("busybox").with_digest(manifest(1).digest().clone());
        assert!(matches!(
            refs.set(&pinned, manifest(2)),
            Err(StoreError::RefDigestMismatch { .. })
        ));
    }

    #[test]
    fn a_corrupt_index_is_reported_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("refs.json"), b"{not json").unwrap();
        assert!(matches!(
            store.refs().list(),
            Err(StoreError::CorruptIndex { .. })
        ));
        assert!(store.refs().set(&r("busybox"), manifest(1)).is_err());
        assert_eq!(
            std::fs::read(dir.path().join("refs.json")).unwrap(),
            b"{not json"
        );
    }

    #[test]
    fn repository_of_strips_tag_or_digest_only() {
        assert_eq!(repository_of("localhost:5000/a/b:v1"), "localhost:5000/a/b");
        assert_eq!(
            repository_of("localhost:5000/a/b@sha256:00"),
            "localhost:5000/a/b"
        );
        assert_eq!(repository_of("localhost:5000/a"), "localhost:5000/a");
    }
}
