//! Images a build starts from (`FROM <image>`) or copies from
//! (`COPY --from=<image>`): found in the store by name, or pulled through
//! the registry client when missing (always with `--pull`) and then named
//! in the store as `builder pull` names them.

use super::error::BaseError;
use crate::exec::LayerRef;
use crate::exec::config::ImageConfig;
use crate::image::{ManifestOrIndex, PlatformSpec, Reference};
use crate::progress::ProgressSender;
use crate::registry::{Client, PullOptions, pull};
use crate::store::{Store, StoreError};
use oci_spec::image::{Descriptor, Digest};

/// An image's parts as a build uses them.
#[derive(Debug, Clone)]
pub(super) struct ImageBase {
    /// Its config.
    pub config: ImageConfig,
    /// The config's digest (what the first step's cache key builds on).
    pub config_digest: Digest,
    /// Its layers, bottom first.
    pub layers: Vec<LayerRef>,
}

/// The image `reference` for `platform`: from the store unless `pull` or
/// missing there, else pulled with `client()` and named in the store.
pub(super) async fn resolve(
    store: &Store,
    client: impl FnOnce() -> Result<Client, BaseError>,
    reference: &Reference,
    platform: &PlatformSpec,
    pull_always: bool,
    progress: &ProgressSender,
) -> Result<ImageBase, BaseError> {
    if !pull_always {
        if let Some(descriptor) = store.refs().get(reference)? {
            // A blob removed as corrupt (or damaged in its size) is fetched
            // again by pulling, which fetches only what is missing.
            // A stored image of another platform (the name was last pulled
            // for it) is pulled again for this one.
            match read(store, &descriptor) {
                Ok(base)
                    if for_platform(&base.config, platform)
                        && base.layers.iter().all(|l| blob_intact(store, &l.blob)) =>
                {
                    return Ok(base);
                }
                Ok(_)
                | Err(BaseError::Store(
                    StoreError::BlobNotFound { .. } | StoreError::CorruptBlob { .. },
                )) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let client = client()?;
    let options = PullOptions {
        platform: platform.clone(),
        ..PullOptions::default()
    };
    // The pull future is not provably `Send` (a compiler limit with its
    // higher-ranked closures), so it runs on a blocking thread of its own.
    let (task_store, task_reference, task_progress) =
        (store.clone(), reference.clone(), progress.clone());
    let pulled = tokio::task::spawn_blocking(move || {
        tokio::runtime::Handle::current().block_on(pull(
            &client,
            &task_store,
            &task_reference,
            &options,
            &task_progress,
        ))
    })
    .await
    .map_err(|e| BaseError::Task(e.to_string()))??;
    let name = match reference.tag() {
        Some(_) => reference.clone(),
        None => reference.with_digest(pulled.manifest.clone()),
    };
    store.refs().set(&name, pulled.descriptor())?;
    read(store, &pulled.descriptor())
}

/// Whether an image with `config` serves `platform`: its platform is one
/// `platform` runs (an image that names none serves any, as it always has).
fn for_platform(config: &ImageConfig, platform: &PlatformSpec) -> bool {
    config.architecture.is_empty()
        || platform.can_run(&PlatformSpec::new(
            &config.os,
            &config.architecture,
            config.variant.as_deref(),
        ))
}

/// Whether the store has the blob `descriptor` names, of its size.
fn blob_intact(store: &Store, descriptor: &Descriptor) -> bool {
    store
        .blobs()
        .size(descriptor.digest())
        .is_ok_and(|size| size == descriptor.size())
}

/// Reads the manifest `descriptor` names and its config from the store.
fn read(store: &Store, descriptor: &Descriptor) -> Result<ImageBase, BaseError> {
    let blobs = store.blobs();
    let digest = descriptor.digest();
    let bytes = blobs.read(digest)?;
    let media_type = descriptor.media_type().to_string();
    let manifest = match ManifestOrIndex::parse(&bytes, Some(&media_type)) {
        Ok(ManifestOrIndex::Manifest(manifest)) => manifest,
        Ok(ManifestOrIndex::Index(_)) => return Err(BaseError::NotAManifest(digest.to_string())),
        Err(source) => {
            return Err(BaseError::Manifest {
                digest: digest.to_string(),
                source,
            });
        }
    };
    let config_digest = manifest.config().digest().clone();
    let config_bytes = blobs.read(&config_digest)?;
    let config = ImageConfig::parse(&config_bytes).map_err(|source| BaseError::Config {
        digest: config_digest.to_string(),
        source,
    })?;
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers().len() {
        return Err(BaseError::LayerCount {
            layers: manifest.layers().len(),
            diff_ids: diff_ids.len(),
        });
    }
    let layers = manifest
        .layers()
        .iter()
        .zip(diff_ids)
        .map(|(blob, diff_id)| {
            Ok(LayerRef {
                blob: blob.clone(),
                diff_id: diff_id
                    .parse()
                    .map_err(|_| BaseError::DiffId(diff_id.clone()))?,
            })
        })
        .collect::<Result<_, BaseError>>()?;
    Ok(ImageBase {
        config,
        config_digest,
        layers,
    })
}
