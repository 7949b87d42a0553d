//! `--cache-to`: the records of the build's steps (mode=min: the final
//! image's stages; mode=max: every stage) as a cache config blob and an
//! image manifest over it and their layers, pushed to a registry (every
//! blob checked with HEAD first, mounted from another repository of the
//! same registry when the store knows one, uploaded in parallel otherwise)
//! or written into an OCI layout directory.

use super::format::{self, CacheConfig, ExportedRecord};
use super::spec::{CacheLocation, CacheMode};
use crate::image::manifest::canonical_json;
use crate::output::OutputError;
use crate::progress::ProgressSender;
use crate::registry::{PushOptions, RegistryError};
use crate::solver::ClientFactory;
use crate::store::{Store, StoreError};
use oci_spec::image::{Descriptor, Digest, MediaType};
use std::collections::HashSet;

/// Why a cache export failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ExportError {
    /// The registry could not be reached, refused us, or failed.
    #[error("--cache-to {location}: {source}")]
    Registry {
        /// The cache.
        location: String,
        /// Why.
        #[source]
        #[diagnostic_source]
        source: RegistryError,
    },
    /// The local layout could not be written.
    #[error("--cache-to {location}: {source}")]
    Output {
        /// The cache.
        location: String,
        /// Why.
        #[source]
        source: OutputError,
    },
    /// A cache mount could not be written (`mounts=true`).
    #[error("--cache-to {location}: cache mount {id:?}: {source}")]
    Mount {
        /// The cache.
        location: String,
        /// The mount's id.
        id: String,
        /// Why.
        #[source]
        source: Box<super::mounts::MountCacheError>,
    },
    /// The compression attributes ask for a level the compression does
    /// not take.
    #[error("--cache-to {location}: {source}")]
    Compression {
        /// The cache.
        location: String,
        /// Why.
        source: crate::layer::compression_attrs::CompressionAttrError,
    },
    /// The layers could not be compressed.
    #[error("--cache-to {location}: {source}")]
    Distribute {
        /// The cache.
        location: String,
        /// Why.
        #[source]
        source: crate::layer::distribute::DistributeError,
    },
    /// The store could not give or keep a blob.
    #[error("--cache-to {location}: {source}")]
    Store {
        /// The cache.
        location: String,
        /// Why.
        #[source]
        source: StoreError,
    },
}

/// A step of the build, as the export finds its record.
#[derive(Debug, Clone)]
pub(crate) struct UsedStep {
    /// Its stage's index.
    pub stage: usize,
    /// Its cache key.
    pub key: Digest,
    /// Its position without the Dockerfile's path (`STAGE:INDEX`).
    pub position: String,
    /// Its key by sources (COPY, WORKDIR), when computed.
    pub alias: Option<Digest>,
}

/// The steps a build ran or found cached, and which stages make its image.
#[derive(Debug, Clone, Default)]
pub(crate) struct StepsUsed {
    /// Every step, in the order they finished.
    pub steps: Vec<UsedStep>,
    /// The target stage and the stages it is built on.
    pub final_stages: HashSet<usize>,
    /// The `RUN --mount=type=cache` directories the steps that ran used.
    pub mounts: super::mounts::MountsUsed,
}

impl StepsUsed {
    /// The config of the records of `mode`'s steps. Steps whose record or
    /// layer blob is gone (a concurrent prune) are left out: a build from
    /// the cache runs them.
    pub fn config(&self, store: &Store, mode: CacheMode) -> CacheConfig {
        let cache = store.cache();
        let blobs = store.blobs();
        let records = self
            .steps
            .iter()
            .filter(|step| mode == CacheMode::Max || self.final_stages.contains(&step.stage))
            .filter_map(|step| {
                let record = cache.peek(&step.key).ok().flatten()?;
                let present = record
                    .layer
                    .as_ref()
                    .is_none_or(|l| blobs.available(&l.digest));
                present.then(|| ExportedRecord {
                    key: step.key.clone(),
                    position: Some(step.position.clone()),
                    alias: step.alias.clone(),
                    record,
                })
            })
            .collect();
        CacheConfig::new(records)
    }
}

/// Stores the cache manifest of `config` (and the config) in `store`;
/// returns the manifest's descriptor.
fn store_manifest(store: &Store, config: &CacheConfig) -> Result<Descriptor, StoreError> {
    let blobs = store.blobs();
    let config_bytes = config.to_bytes();
    let config_digest = blobs.put(&config_bytes)?;
    let manifest = format::manifest(config_digest, config_bytes.len() as u64, config.layers());
    let bytes = canonical_json(&manifest).expect("an image manifest always serializes");
    let digest = blobs.put(&bytes)?;
    Ok(Descriptor::new(
        MediaType::ImageManifest,
        bytes.len() as u64,
        digest,
    ))
}

/// Exports `config` to `location`.
pub(crate) async fn export(
    store: &Store,
    clients: &ClientFactory,
    location: &CacheLocation,
    config: &CacheConfig,
    progress: &ProgressSender,
) -> Result<(), ExportError> {
    let name = location.to_string();
    let manifest = store_manifest(store, config).map_err(|source| ExportError::Store {
        location: name.clone(),
        source,
    })?;
    match location {
        CacheLocation::Registry(reference) => {
            let registry = |source| ExportError::Registry {
                location: name.clone(),
                source,
            };
            let client = clients(reference.registry()).map_err(registry)?;
            crate::registry::push(
                &client,
                store,
                manifest.digest(),
                reference,
                &PushOptions::default(),
                progress,
            )
            .await
            .map_err(registry)?;
        }
        CacheLocation::Local(dir) => {
            let store = store.clone();
            let dir = dir.clone();
            tokio::task::block_in_place(|| {
                crate::output::write_dir_tagged(&store, &manifest, "latest", &dir)
            })
            .map_err(|source| ExportError::Output {
                location: name.clone(),
                source,
            })?;
        }
    }
    Ok(())
}
