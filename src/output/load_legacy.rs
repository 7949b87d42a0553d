//! `docker save`'s archives from before docker 25: no `index.json`, a
//! `manifest.json` naming each image's config (`<hex>.json`), its layers
//! (`<id>/layer.tar`, uncompressed tars, maybe symlinks to another
//! layer's) and its `RepoTags`. Each layer is stored as an OCI tar layer
//! after its digest is checked against the config's `rootfs.diff_ids`,
//! and the image gets an OCI manifest.

use super::load::LoadError;
use super::oci_layout::{Blobs, SavedImage};
use crate::image::Reference;
use crate::image::manifest::{canonical_json, new_manifest};
use crate::store::Store;
use oci_spec::image::{Descriptor, Digest, MediaType};
use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

/// The files of an archive that may be a legacy image's layers or
/// config, stored as blobs as they are read (before `manifest.json`,
/// which docker writes last, says what they are).
#[derive(Debug, Default)]
pub(super) struct LegacyFiles {
    /// Each stored file's digest and size.
    stored: HashMap<PathBuf, (Digest, u64)>,
    /// Symlinked layers: the link and the path it points to.
    links: HashMap<PathBuf, PathBuf>,
}

impl LegacyFiles {
    /// Whether `path` may be a layer (`<id>/layer.tar`) or a config
    /// (`<hex>.json` at the top).
    pub(super) fn wanted(path: &Path) -> bool {
        let parts: Vec<&str> = path.iter().filter_map(|p| p.to_str()).collect();
        match parts.as_slice() {
            [_, "layer.tar"] => true,
            [name] => name.ends_with(".json") && !matches!(*name, "manifest.json" | "index.json"),
            _ => false,
        }
    }

    /// Stores the file at `path` as a blob.
    pub(super) fn store(
        &mut self,
        store: &Store,
        path: &Path,
        entry: &mut impl Read,
    ) -> Result<(), LoadError> {
        let blob_error = |source| LoadError::Blob {
            path: path.display().to_string(),
            source: Box::new(source),
        };
        let mut writer = store.blobs().writer(None).map_err(blob_error)?;
        io::copy(entry, &mut writer).map_err(LoadError::Read)?;
        let blob = writer.commit().map_err(blob_error)?;
        self.stored
            .insert(path.to_owned(), (blob.digest, blob.size));
        Ok(())
    }

    /// Records a symlink at `path` to `target` (relative to its directory).
    pub(super) fn link(&mut self, path: &Path, target: &Path) {
        let mut resolved = PathBuf::new();
        for part in path
            .parent()
            .unwrap_or(Path::new(""))
            .join(target)
            .components()
        {
            match part {
                Component::ParentDir => {
                    resolved.pop();
                }
                Component::Normal(name) => resolved.push(name),
                _ => {}
            }
        }
        self.links.insert(path.to_owned(), resolved);
    }

    /// The digest and size of the file `name` in `manifest.json`
    /// (following a symlink or two).
    fn get(&self, name: &str) -> Result<&(Digest, u64), LoadError> {
        let mut path = PathBuf::from(name.trim_start_matches("./"));
        for _ in 0..8 {
            match self.links.get(&path) {
                Some(target) => path = target.clone(),
                None => break,
            }
        }
        self.stored.get(&path).ok_or_else(|| LoadError::Missing {
            file: name.to_owned(),
        })
    }
}

/// One image in a docker archive's `manifest.json` (every docker writes
/// one; before docker 25 it is the only index).
#[derive(serde::Deserialize)]
pub(super) struct Item {
    /// The config's path in the archive (`<hex>.json`, or
    /// `blobs/sha256/<hex>` since docker 25).
    #[serde(rename = "Config")]
    pub(super) config: String,
    /// The names the image was saved under.
    #[serde(rename = "RepoTags", default)]
    pub(super) repo_tags: Option<Vec<String>>,
    /// The layer tars' paths, bottom first.
    #[serde(rename = "Layers", default)]
    pub(super) layers: Vec<String>,
}

/// Makes and names an image of each `manifest.json` entry from `files`.
pub(super) fn import(
    store: &Store,
    manifest: &[u8],
    files: &LegacyFiles,
) -> Result<Vec<(SavedImage, Digest)>, LoadError> {
    let bad = |reason: String| LoadError::BadFile {
        file: "manifest.json",
        reason,
    };
    let items: Vec<Item> = serde_json::from_slice(manifest).map_err(|e| bad(e.to_string()))?;
    if items.is_empty() {
        return Err(bad("it lists no image".to_owned()));
    }
    let mut loaded: Vec<(SavedImage, Digest)> = Vec::new();
    for item in items {
        let top = image(store, &item, files)?;
        let names: Vec<Reference> = item
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|tag| Reference::parse(tag).map_err(|e| bad(format!("RepoTags {tag:?}: {e}"))))
            .collect::<Result<_, _>>()?;
        for name in &names {
            store.refs().set(name, top.clone())?;
        }
        let id = store.image_id(&top)?;
        match loaded.iter_mut().find(|(image, _)| image.top == top) {
            Some((image, _)) => image.names.extend(names),
            None => loaded.push((SavedImage { top, names }, id)),
        }
    }
    Ok(loaded)
}

/// Stores the manifest of one entry, after checking its config against
/// its file name and its layers against the config's `diff_ids`.
fn image(store: &Store, item: &Item, files: &LegacyFiles) -> Result<Descriptor, LoadError> {
    let (config_digest, config_size) = files.get(&item.config)?;
    let named = item
        .config
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .trim_end_matches(".json");
    if config_digest.digest() != named {
        return Err(LoadError::Mismatch {
            file: item.config.clone(),
            actual: config_digest.to_string(),
            expected: format!("sha256:{named} (its name)"),
        });
    }
    let config: serde_json::Value = serde_json::from_slice(&store.blobs().read(config_digest)?)
        .map_err(|e| LoadError::BadConfig {
            file: item.config.clone(),
            reason: e.to_string(),
        })?;
    let diff_ids: Vec<&str> = config["rootfs"]["diff_ids"]
        .as_array()
        .map(|ids| ids.iter().filter_map(|id| id.as_str()).collect())
        .unwrap_or_default();
    if diff_ids.len() != item.layers.len() {
        return Err(LoadError::BadConfig {
            file: item.config.clone(),
            reason: format!(
                "its rootfs.diff_ids name {} layers, manifest.json lists {}",
                diff_ids.len(),
                item.layers.len()
            ),
        });
    }
    let mut layers = Vec::new();
    for (path, diff_id) in item.layers.iter().zip(diff_ids) {
        let (digest, size) = files.get(path)?;
        if digest.to_string() != diff_id {
            return Err(LoadError::Mismatch {
                file: path.clone(),
                actual: digest.to_string(),
                expected: format!("{diff_id} (the config's rootfs.diff_ids)"),
            });
        }
        layers.push(Descriptor::new(
            MediaType::ImageLayer,
            *size,
            digest.clone(),
        ));
    }
    let config = Descriptor::new(MediaType::ImageConfig, *config_size, config_digest.clone());
    let manifest =
        canonical_json(&new_manifest(config, layers)).map_err(|e| LoadError::BadFile {
            file: "manifest.json",
            reason: e.to_string(),
        })?;
    let digest = store.blobs().put(&manifest)?;
    let top = Descriptor::new(MediaType::ImageManifest, manifest.len() as u64, digest);
    Blobs::collect(store, [&top])?;
    Ok(top)
}
