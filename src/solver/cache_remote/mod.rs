//! A build cache shared through any OCI registry (or an OCI layout
//! directory), for CI runners that start with an empty store.
//!
//! - [`spec`]: `--cache-from` / `--cache-to` values;
//! - [`format`]: the cache as an image manifest and a config of records;
//! - [`import`]: reading a cache's records into the step cache;
//! - [`source`]: its layers, fetched only when something reads them;
//! - [`export`]: writing the build's records and layers out;
//! - [`mounts`]: `RUN --mount=type=cache` directories as layer blobs.
//!
//! Cache keys name no host path, inode, store or time (see
//! [`crate::exec::cache_key`]), so every machine computes the same keys
//! for the same Dockerfile and context, and imported records hit.

mod export;
mod format;
mod import;
mod mounts;
mod source;
mod spec;

pub use export::ExportError;
pub(crate) use export::{StepsUsed, UsedStep};
pub use format::{CACHE_CONFIG_MEDIA_TYPE, INLINE_KEY};
pub use import::ImportError;
pub use mounts::MountCacheError;
pub(crate) use mounts::{MountsUsed, is_empty as mount_is_empty, seed as seed_mount};
pub use source::RemoteBlobs;
pub use spec::{CacheFrom, CacheLocation, CacheMode, CacheSpecError, CacheTo};

use crate::layer::distribute::{DistributeError, Distribution, Observers, distribution_layers};
use crate::progress::{Event, ProgressSender};
use crate::registry::sources::Sources;
use crate::solver::ClientFactory;
use crate::store::Store;
use std::sync::Arc;

/// Imports every `--cache-from` cache into `store` (records under the
/// Dockerfile `file`) and returns the store that fetches their layers
/// when read, and that source; a cache that cannot be imported is a
/// warning.
pub(crate) async fn import_all(
    store: &Store,
    from: &[CacheFrom],
    clients: &ClientFactory,
    progress: &ProgressSender,
    file: &str,
) -> (Store, Option<Arc<RemoteBlobs>>) {
    let mut caches = Vec::new();
    for CacheFrom(location) in from {
        let installed = match import::load(location, clients).await {
            Ok(loaded) => {
                tokio::task::block_in_place(|| import::install(store, location, loaded, file))
            }
            Err(e) => Err(e),
        };
        match installed {
            Ok((blobs, added)) => {
                progress.send(Event::Status(format!(
                    "imported cache {location}: {added} new step records, {} layers, {} cache mounts (fetched when needed)",
                    blobs.layers.len(),
                    blobs.mounts.len()
                )));
                caches.push(blobs);
            }
            Err(e) => progress.send(Event::Status(format!(
                "warning: --cache-from {location}: {e}; building without it"
            ))),
        }
    }
    if caches.is_empty() {
        return (store.clone(), None);
    }
    let source = Arc::new(RemoteBlobs::new(
        caches,
        Arc::clone(clients),
        progress.clone(),
        Sources::new(store.root()),
    ));
    (store.with_source(source.clone()), Some(source))
}

/// Exports the build's records (and with `mounts=true` its cache
/// mounts) to every `--cache-to` but inline (which the image config
/// holds); a failure is an error unless the cache says
/// `ignore-error=true`, then a warning.
pub(crate) async fn export_all(
    store: &Store,
    to: &[CacheTo],
    used: &StepsUsed,
    distribution: Distribution,
    clients: &ClientFactory,
    progress: &ProgressSender,
) -> Result<(), ExportError> {
    for target in to {
        let CacheTo::Remote {
            location,
            mode,
            compression: wanted,
            ignore_error,
            mounts,
        } = target
        else {
            continue;
        };
        let distribution = match wanted.resolve(distribution) {
            Ok(resolved) => resolved,
            Err(source) => {
                return Err(ExportError::Compression {
                    location: location.to_string(),
                    source,
                });
            }
        };
        let exported = match *mounts {
            false => Ok(used.config(store, *mode)),
            true => export_mounts(store, &used.mounts, distribution.codec, location)
                .map(|exported| used.config(store, *mode).with_mounts(exported))
                .map_err(|e| *e),
        };
        let exported = match exported {
            Ok(config) => compressed(store, config, distribution, progress).map_err(|source| {
                ExportError::Distribute {
                    location: location.to_string(),
                    source,
                }
            }),
            Err(e) => Err(e),
        };
        let result = match exported {
            Ok(config) => export::export(store, clients, location, &config, progress)
                .await
                .map(|()| config),
            Err(e) => Err(e),
        };
        match result {
            Ok(config) => progress.send(Event::Status(format!(
                "exported cache {location}: {} step records, {} layers, {} cache mounts",
                config.records.len(),
                config.layers().len(),
                config.mounts.len()
            ))),
            Err(e) if *ignore_error => {
                progress.send(Event::Status(format!("warning: {e} (ignore-error=true)")));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `config` with its layers as they are sent: the build's plain layers
/// compressed as `distribution` says (each once: the store remembers).
fn compressed(
    store: &Store,
    mut config: format::CacheConfig,
    distribution: Distribution,
    progress: &ProgressSender,
) -> Result<format::CacheConfig, DistributeError> {
    let layers = config.layers();
    let on_work = |work| progress.send(Event::Work(work));
    let sent = tokio::task::block_in_place(|| {
        distribution_layers(
            store,
            &layers,
            distribution,
            Observers {
                on_work: &on_work,
                on_writing: None,
            },
        )
    })?;
    let by_stored: std::collections::HashMap<_, _> = layers
        .iter()
        .map(|l| l.digest().clone())
        .zip(sent)
        .collect();
    config.relink_layers(|layer| by_stored.get(&layer.digest).cloned());
    Ok(config)
}

/// The blobs of the cache mounts `used` (the non-empty ones).
fn export_mounts(
    store: &Store,
    used: &MountsUsed,
    codec: crate::layer::compress::Codec,
    location: &CacheLocation,
) -> Result<Vec<format::ExportedMount>, Box<ExportError>> {
    tokio::task::block_in_place(|| {
        used.iter()
            .filter_map(|(key, id)| {
                mounts::export(store, key, id, codec)
                    .map_err(|source| {
                        Box::new(ExportError::Mount {
                            location: location.to_string(),
                            id: id.clone(),
                            source: Box::new(source),
                        })
                    })
                    .transpose()
            })
            .collect()
    })
}

/// The inline cache of the build's final image (mode=min), as the JSON
/// value its config keeps under [`INLINE_KEY`]. Its records name the
/// layers as the push sends them (compressed now, and remembered for the
/// push), so the config is the same whichever store built the image.
pub(crate) fn inline_value(
    store: &Store,
    used: &StepsUsed,
    distribution: Distribution,
    progress: &ProgressSender,
) -> Result<serde_json::Value, DistributeError> {
    let config = compressed(
        store,
        used.config(store, CacheMode::Min),
        distribution,
        progress,
    )?;
    Ok(serde_json::to_value(config).expect("a cache config always serializes"))
}
