//! The memo of compressed layer variants: which blob holds layer blob
//! `source` compressed as `kind` (`gzip`, `zstd`), so a second push or
//! export of the same layer compresses nothing.
//!
//! Entries are `variants/<kind>/<source-hex>`, each a small JSON
//! descriptor of the variant blob, written atomically after the blob.
//! An entry whose blob is gone is a miss, never an error. Prune keeps a
//! variant (entry and blob) while its source blob stays, and drops every
//! variant with `--all` (they are remade on the next push or export).

use super::{Store, StoreError};
use oci_spec::image::{Descriptor, Digest, DigestAlgorithm};
use std::io::Write as _;
use std::path::PathBuf;

/// The compressed variants of the store's layer blobs.
#[derive(Debug, Clone)]
pub struct VariantStore {
    store: Store,
}

/// One memo entry: layer blob `source` compressed as `kind` is `variant`.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// The blob compressed.
    pub source: Digest,
    /// The compression (`gzip`, `zstd`).
    pub kind: String,
    /// The compressed blob.
    pub variant: Descriptor,
}

impl Store {
    /// The memo of compressed layer variants.
    pub fn variants(&self) -> VariantStore {
        VariantStore {
            store: self.clone(),
        }
    }
}

impl VariantStore {
    fn dir(&self) -> PathBuf {
        self.store.root().join("variants")
    }

    /// Where the entry of (`source`, `kind`) lives; `None` for a digest
    /// or kind that names no file of ours.
    fn entry_path(&self, source: &Digest, kind: &str) -> Option<PathBuf> {
        let plain_kind = !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_alphanumeric());
        (source.algorithm() == &DigestAlgorithm::Sha256 && plain_kind)
            .then(|| self.dir().join(kind).join(source.digest()))
    }

    /// The stored variant of `source` compressed as `kind`; `None` when
    /// there is none, its entry is unreadable, or its blob is gone.
    pub fn get(&self, source: &Digest, kind: &str) -> Option<Descriptor> {
        let path = self.entry_path(source, kind)?;
        let bytes = std::fs::read(path).ok()?;
        let variant: Descriptor = serde_json::from_slice(&bytes).ok()?;
        self.store
            .blobs()
            .contains(variant.digest())
            .then_some(variant)
    }

    /// Records that `variant` (already stored) is `source` compressed as
    /// `kind`.
    pub fn put(&self, source: &Digest, kind: &str, variant: &Descriptor) -> Result<(), StoreError> {
        let Some(path) = self.entry_path(source, kind) else {
            return Err(StoreError::UnsupportedDigest {
                digest: source.clone(),
            });
        };
        let dir = path.parent().unwrap_or(&path).to_owned();
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io("create directory", &dir, e))?;
        let mut temp = tempfile::NamedTempFile::new_in(&dir)
            .map_err(|e| StoreError::io("create temp file in", &dir, e))?;
        let bytes = serde_json::to_vec(variant).expect("a descriptor always serializes");
        temp.write_all(&bytes)
            .map_err(|e| StoreError::io("write", temp.path(), e))?;
        temp.persist(&path)
            .map_err(|e| StoreError::io("rename into place", &path, e.error))?;
        Ok(())
    }

    /// Every entry (unreadable ones left out).
    pub(super) fn list(&self) -> Result<Vec<Variant>, StoreError> {
        let mut all = Vec::new();
        let root = self.dir();
        let kinds = match std::fs::read_dir(&root) {
            Ok(kinds) => kinds,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(all),
            Err(e) => return Err(StoreError::io("list directory", &root, e)),
        };
        for kind in kinds {
            let kind = kind.map_err(|e| StoreError::io("list directory", &root, e))?;
            let Some(name) = kind.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let dir = kind.path();
            let entries =
                std::fs::read_dir(&dir).map_err(|e| StoreError::io("list directory", &dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| StoreError::io("list directory", &dir, e))?;
                let source = entry
                    .file_name()
                    .to_str()
                    .and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok());
                let variant = std::fs::read(entry.path())
                    .ok()
                    .and_then(|bytes| serde_json::from_slice::<Descriptor>(&bytes).ok());
                if let (Some(source), Some(variant)) = (source, variant) {
                    all.push(Variant {
                        source,
                        kind: name.clone(),
                        variant,
                    });
                }
            }
        }
        Ok(all)
    }

    /// Forgets the entry of (`source`, `kind`); one already gone is fine.
    pub(super) fn remove(&self, source: &Digest, kind: &str) -> Result<(), StoreError> {
        let Some(path) = self.entry_path(source, kind) else {
            return Ok(());
        };
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StoreError::io("remove", &path, e))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::MediaType;

    #[test]
    fn an_entry_whose_blob_is_gone_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let source = store.blobs().put(b"plain tar").unwrap();
        let blob = store.blobs().put(b"gzip bytes").unwrap();
        let variant = Descriptor::new(MediaType::ImageLayerGzip, 10, blob.clone());
        let variants = store.variants();
        assert_eq!(variants.get(&source, "gzip"), None);
        variants.put(&source, "gzip", &variant).unwrap();
        assert_eq!(variants.get(&source, "gzip"), Some(variant.clone()));
        assert_eq!(variants.get(&source, "zstd"), None);
        assert_eq!(variants.list().unwrap().len(), 1);
        store.blobs().remove(&blob).unwrap();
        assert_eq!(variants.get(&source, "gzip"), None);
        assert!(variants.put(&source, "../x", &variant).is_err());
    }
}
