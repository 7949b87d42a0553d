//! Images a build starts from (`FROM <image>`) or copies from
//! (`COPY --from=<image>`): found in the store by name, or pulled through
//! the registry client when missing (always with `--pull`) and then named
//! in the store as `builder pull` names them.

use super::error::BaseError;
use super::unpack::Unpacking;
use crate::exec::LayerRef;
use crate::exec::config::ImageConfig;
use crate::image::{ManifestOrIndex, PlatformSpec, Reference};
use crate::progress::ProgressSender;
use crate::registry::{Client, LayerFeed, PullOptions, pull};
use crate::store::{Store, StoreError};
use oci_spec::image::{Descriptor, Digest};
use std::sync::Arc;

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
/// With `unpack_for` (a step that reads the image's files), a pulled
/// image's layers are unpacked into snapshots while they download, shown
/// as that step's progress; else (or when the image is stored) they are
/// unpacked when first needed.
pub(super) async fn resolve(
    store: &Store,
    client: impl FnOnce() -> Result<Client, BaseError>,
    reference: &Reference,
    platform: &PlatformSpec,
    pull_always: bool,
    progress: &ProgressSender,
    unpack_for: Option<u64>,
) -> Result<ImageBase, BaseError> {
    if !pull_always {
        if let Some(descriptor) = store.refs().get(reference)? {
            // A blob removed as corrupt (or damaged in its size) is fetched
            // again by pulling, which fetches only what is missing; so is
            // a platform the stored image or index does not have.
            match read_for(store, &descriptor, platform) {
                Ok(Some(base)) if base.layers.iter().all(|l| blob_intact(store, &l.blob)) => {
                    return Ok(base);
                }
                Ok(None) => {}
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
        metadata_phase: true,
        ..PullOptions::default()
    };
    let unpacking =
        unpack_for.map(|step| Arc::new(Unpacking::new(store.clone(), progress.clone(), step)));
    // The pull future is not provably `Send` (a compiler limit with its
    // higher-ranked closures), so it runs on a blocking thread of its own.
    let (task_store, task_reference, task_progress, task_unpacking) = (
        store.clone(),
        reference.clone(),
        progress.clone(),
        unpacking.clone(),
    );
    let pulled = tokio::task::spawn_blocking(move || {
        let pulled = tokio::runtime::Handle::current().block_on(pull(
            &client,
            &task_store,
            &task_reference,
            &options,
            &task_progress,
            task_unpacking.as_deref().map(|u| u as &dyn LayerFeed),
        ));
        // A failed pull's unpacking stops at its first missing layer and
        // is of no interest: the pull's error is the one to report.
        let unpacked = task_unpacking.as_deref().map_or(Ok(()), Unpacking::finish);
        pulled.map(|pulled| (pulled, unpacked))
    })
    .await
    .map_err(|e| BaseError::Task(e.to_string()))?;
    let (pulled, unpacked) = pulled?;
    unpacked?;
    let name = match reference.tag() {
        Some(_) => reference.clone(),
        None => reference.with_digest(pulled.resolved.clone()),
    };
    // The index when the name is one: other platforms' builds find theirs
    // in it (pulled when missing).
    store.refs().set(&name, pulled.named())?;
    let base = read(store, &pulled.descriptor())?;
    match own_platform(&base) {
        Some(own) if !platform.can_run(&own) => Err(BaseError::WrongPlatform {
            wanted: platform.to_string(),
            has: own.to_string(),
        }),
        _ => Ok(base),
    }
}

/// The platform an image's config names, if it names one.
fn own_platform(base: &ImageBase) -> Option<PlatformSpec> {
    let config = &base.config;
    (!config.os.is_empty() && !config.architecture.is_empty())
        .then(|| PlatformSpec::new(&config.os, &config.architecture, config.variant.as_deref()))
}

/// The stored image for `platform` under `descriptor`: the index's entry
/// for it, or the manifest itself when its config is for that platform;
/// `None` when the store does not have that platform's image.
fn read_for(
    store: &Store,
    descriptor: &Descriptor,
    platform: &PlatformSpec,
) -> Result<Option<ImageBase>, BaseError> {
    let digest = descriptor.digest();
    let bytes = store.blobs().read(digest)?;
    let media_type = descriptor.media_type().to_string();
    match ManifestOrIndex::parse(&bytes, Some(&media_type)) {
        Ok(ManifestOrIndex::Index(index)) => match platform.select(index.manifests()) {
            Some(entry) if store.blobs().contains(entry.digest()) => read(store, entry).map(Some),
            _ => Ok(None),
        },
        Ok(ManifestOrIndex::Manifest(_)) => {
            let base = read(store, descriptor)?;
            // A config that names no platform serves any.
            match own_platform(&base) {
                Some(own) if !platform.can_run(&own) => Ok(None),
                _ => Ok(Some(base)),
            }
        }
        Err(source) => Err(BaseError::Manifest {
            digest: digest.to_string(),
            source,
        }),
    }
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
    let diff_ids = config.rootfs.digests().map_err(BaseError::DiffId)?;
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
        .map(|(blob, diff_id)| LayerRef {
            blob: blob.clone(),
            diff_id,
        })
        .collect();
    Ok(ImageBase {
        config,
        config_digest,
        layers,
    })
}
