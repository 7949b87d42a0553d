//! A build cache shared through any OCI registry (or an OCI layout
//! directory), for CI runners that start with an empty store.
//!
//! - [`spec`]: `--cache-from` / `--cache-to` values;
//! - [`format`]: the cache as an image manifest and a config of records;
//! - [`import`]: reading a cache's records into the step cache;
//! - [`source`]: its layers, fetched only when something reads them;
//! - [`export`]: writing the build's records and layers out.
//!
//! Cache keys name no host path, inode, store or time (see
//! [`crate::exec::cache_key`]), so every machine computes the same keys
//! for the same Dockerfile and context, and imported records hit.

mod export;
mod format;
mod import;
mod source;
mod spec;

pub use export::ExportError;
pub(crate) use export::{StepsUsed, UsedStep};
pub use format::{CACHE_CONFIG_MEDIA_TYPE, INLINE_KEY};
pub use import::ImportError;
pub use source::RemoteBlobs;
pub use spec::{CacheFrom, CacheLocation, CacheMode, CacheSpecError, CacheTo};

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
                    "imported cache {location}: {added} new step records, {} layers (fetched when needed)",
                    blobs.layers.len()
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

/// Exports the build's records to every `--cache-to` but inline (which
/// the image config holds); a failure is an error unless the cache says
/// `ignore-error=true`, then a warning.
pub(crate) async fn export_all(
    store: &Store,
    to: &[CacheTo],
    used: &StepsUsed,
    compression: crate::layer::compress::Compression,
    clients: &ClientFactory,
    progress: &ProgressSender,
) -> Result<(), ExportError> {
    for target in to {
        let CacheTo::Remote {
            location,
            mode,
            compression: wanted,
            ignore_error,
        } = target
        else {
            continue;
        };
        if wanted.is_some_and(|w| w != compression) {
            progress.send(Event::Status(format!(
                "warning: --cache-to {location}: its layers are the build's own, compressed with {} (set --compression to change it)",
                compression.media_type()
            )));
        }
        let config = used.config(store, *mode);
        let count = config.records.len();
        match export::export(store, clients, location, &config, progress).await {
            Ok(()) => progress.send(Event::Status(format!(
                "exported cache {location}: {count} step records, {} layers",
                config.layers().len()
            ))),
            Err(e) if *ignore_error => {
                progress.send(Event::Status(format!("warning: {e} (ignore-error=true)")));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The inline cache of the build's final image (mode=min), as the JSON
/// value its config keeps under [`INLINE_KEY`].
pub(crate) fn inline_value(store: &Store, used: &StepsUsed) -> serde_json::Value {
    serde_json::to_value(used.config(store, CacheMode::Min))
        .expect("a cache config always serializes")
}
