//! `--cache-from`: reads a cache's manifest and config (small documents;
//! no layer), checks them, and adds their records to the store's step
//! cache, their step positions under this build's Dockerfile. Layers stay
//! where they are until read (see [`super::source`]). A cache that cannot
//! be read is a warning: the build goes on without it.

use super::format::{CACHE_CONFIG_MEDIA_TYPE, CacheConfig, FormatError};
use super::source::ImportedBlobs;
use super::spec::CacheLocation;
use crate::image::ManifestOrIndex;
use crate::image::media::{DOCKER_CONFIG, OCI_CONFIG};
use crate::registry::RegistryError;
use crate::registry::sources::Sources;
use crate::solver::ClientFactory;
use crate::store::{MAX_DOCUMENT_SIZE, Store, StoreError};
use oci_spec::image::{Descriptor, Digest, ImageIndex, ImageManifest};
use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// Why a cache was not imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The registry has no such tag, or the directory no layout.
    #[error("not found")]
    NotFound,
    /// The registry could not be reached, refused us, or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The manifest or config is not a cache.
    #[error("refused: {0}")]
    Format(#[from] FormatError),
    /// An index or a manifest that does not parse.
    #[error("refused: its manifest {digest} is unreadable: {reason}")]
    Manifest {
        /// The document.
        digest: String,
        /// Why.
        reason: String,
    },
    /// A file of a local layout cannot be read or is damaged.
    #[error("cannot read {path}: {reason}")]
    Layout {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The records could not be added to the store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A cache read and checked, before its records are added.
pub(crate) struct Loaded {
    config: CacheConfig,
    layers: Vec<Descriptor>,
}

/// Reads and checks the cache at `location`.
pub(crate) async fn load(
    location: &CacheLocation,
    clients: &ClientFactory,
) -> Result<Loaded, ImportError> {
    let (manifest, config) = match location {
        CacheLocation::Registry(reference) => {
            let client = clients(reference.registry())?;
            let subject = reference.to_string();
            let repository = reference.repository();
            let wanted = match (reference.digest(), reference.tag()) {
                (Some(digest), _) => digest.to_string(),
                (None, Some(tag)) => tag.to_owned(),
                (None, None) => "latest".to_owned(),
            };
            let fetched = match client.get_manifest(repository, &wanted, &subject).await {
                Err(RegistryError::Status { status, .. }) if status.as_u16() == 404 => {
                    return Err(ImportError::NotFound);
                }
                other => other?,
            };
            let manifest = manifest_of(&fetched.bytes, Some(&fetched.media_type), &fetched.digest)?;
            let config = client
                .get_blob_bytes(repository, manifest.config().digest(), &subject)
                .await?;
            (manifest, config.to_vec())
        }
        CacheLocation::Local(dir) => {
            let top = layout_entry(dir)?;
            let bytes = read_layout_blob(dir, top.digest())?;
            let manifest = manifest_of(&bytes, Some(top.media_type().as_ref()), top.digest())?;
            let config = read_layout_blob(dir, manifest.config().digest())?;
            (manifest, config)
        }
    };
    let media_type = manifest.config().media_type().to_string();
    let layers = manifest.layers().clone();
    let config = match media_type.as_str() {
        CACHE_CONFIG_MEDIA_TYPE => CacheConfig::parse(&config)?,
        OCI_CONFIG | DOCKER_CONFIG => {
            let mut cache =
                CacheConfig::from_image_config(&config)?.ok_or(FormatError::NoInlineCache)?;
            // The records name the layers as the build stored them
            // (uncompressed); the image lists them as pushed: the same
            // content, by diff ID (which unpacking checks).
            let diff_ids = crate::image::config::parse_config(&config)
                .map(|c| c.rootfs().diff_ids().clone())
                .unwrap_or_default();
            let pushed: HashMap<String, Descriptor> =
                diff_ids.into_iter().zip(layers.iter().cloned()).collect();
            cache.relink_layers(|layer| pushed.get(&layer.diff_id.to_string()).cloned());
            cache
        }
        other => return Err(FormatError::NotACache(other.to_owned()).into()),
    };
    config.check(&layers)?;
    Ok(Loaded { config, layers })
}

fn manifest_of(
    bytes: &[u8],
    media_type: Option<&str>,
    digest: &Digest,
) -> Result<ImageManifest, ImportError> {
    match ManifestOrIndex::parse(bytes, media_type) {
        Ok(ManifestOrIndex::Manifest(manifest)) => Ok(*manifest),
        Ok(ManifestOrIndex::Index(_)) => Err(ImportError::Manifest {
            digest: digest.to_string(),
            reason: "it is an index, not an image manifest".to_owned(),
        }),
        Err(e) => Err(ImportError::Manifest {
            digest: digest.to_string(),
            reason: e.to_string(),
        }),
    }
}

/// Adds the records of `loaded` (from `location`) to the store, their
/// positions under the Dockerfile `file`; returns the blobs they name
/// and how many records were new.
pub(crate) fn install(
    store: &Store,
    location: &CacheLocation,
    loaded: Loaded,
    file: &str,
) -> Result<(ImportedBlobs, usize), ImportError> {
    let cache = store.cache();
    let mut added = 0;
    for exported in &loaded.config.records {
        let position = exported.position.as_ref().map(|p| format!("{file}:{p}"));
        if cache.import(&exported.key, position.as_deref(), &exported.record)? {
            added += 1;
        }
        if let Some(alias) = &exported.alias {
            if cache.alias(alias)?.is_none() {
                cache.put_alias(alias, &exported.key)?;
            }
        }
    }
    if let CacheLocation::Registry(reference) = location {
        // A push to this registry mounts these blobs from the cache.
        let sources = Sources::new(store.root());
        for layer in &loaded.layers {
            sources.record(layer.digest(), reference.registry(), reference.repository());
        }
    }
    let blobs = ImportedBlobs {
        location: location.clone(),
        layers: loaded
            .layers
            .into_iter()
            .map(|d| (d.digest().clone(), d))
            .collect(),
        mounts: loaded
            .config
            .mounts
            .iter()
            .map(|m| {
                let layer = &m.layer;
                let descriptor = Descriptor::new(
                    oci_spec::image::MediaType::from(layer.media_type.as_str()),
                    layer.size,
                    layer.digest.clone(),
                );
                (m.key.clone(), (descriptor, layer.diff_id.clone()))
            })
            .collect(),
    };
    Ok((blobs, added))
}

/// The manifest tagged `latest` in the layout `dir` (its only one when
/// none is tagged).
fn layout_entry(dir: &Path) -> Result<Descriptor, ImportError> {
    let path = dir.join("index.json");
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ImportError::NotFound),
        Err(e) => {
            return Err(ImportError::Layout {
                path,
                reason: e.to_string(),
            });
        }
    };
    let index: ImageIndex = serde_json::from_slice(&bytes).map_err(|e| ImportError::Layout {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let tagged = index.manifests().iter().find(|d| {
        d.annotations()
            .as_ref()
            .and_then(|a| a.get(crate::output::ANNOTATION_REF_NAME))
            .is_some_and(|t| t == "latest")
    });
    match (tagged, index.manifests().as_slice()) {
        (Some(entry), _) | (None, [entry]) => Ok(entry.clone()),
        _ => Err(ImportError::NotFound),
    }
}

/// Where blob `digest` is in the layout `dir`.
pub(crate) fn layout_blob_path(dir: &Path, digest: &Digest) -> Result<PathBuf, ImportError> {
    let hex = digest.digest();
    let valid = digest.algorithm().to_string() == "sha256"
        && hex.len() == 64
        && hex.bytes().all(|b| b.is_ascii_hexdigit());
    if !valid {
        return Err(ImportError::Layout {
            path: dir.to_owned(),
            reason: format!("{digest} is not a sha256 digest"),
        });
    }
    Ok(dir.join("blobs").join("sha256").join(hex))
}

/// A document of the layout `dir`, checked against its digest.
fn read_layout_blob(dir: &Path, digest: &Digest) -> Result<Vec<u8>, ImportError> {
    let path = layout_blob_path(dir, digest)?;
    let failed = |reason: String| ImportError::Layout {
        path: path.clone(),
        reason,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(MAX_DOCUMENT_SIZE + 1).read_to_end(&mut bytes))
        .map_err(|e| failed(e.to_string()))?;
    let actual = crate::digest::sha256(&bytes);
    if &actual != digest {
        return Err(failed(format!("its bytes hash to {actual}, not {digest}")));
    }
    Ok(bytes)
}
