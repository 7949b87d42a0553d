//! The blobs of imported caches, fetched only when something reads them:
//! a step that runs on top of a cached layer, a COPY planned over it, or
//! an output that needs the bytes. A push to the registry a cache came
//! from mounts its blobs instead (the import records where they are).

use super::spec::CacheLocation;
use crate::progress::{ProgressSender, WeakProgressSender};
use crate::registry::sources::Sources;
use crate::solver::ClientFactory;
use crate::store::{BlobSource, BlobStore, Expected, StoreError};
use oci_spec::image::{Descriptor, Digest};
use std::collections::HashMap;
use std::io::Write as _;

/// One imported cache: where it is and the layers its manifest lists.
#[derive(Debug)]
pub(crate) struct ImportedBlobs {
    /// Where the cache is.
    pub location: CacheLocation,
    /// Its layers by digest (the cache mounts' among them).
    pub layers: HashMap<Digest, Descriptor>,
    /// Its cache mounts by the store's key: the blob and its diff ID.
    pub mounts: HashMap<String, (Descriptor, Digest)>,
}

/// The imported caches of a build, as a [`BlobSource`] for its store.
pub struct RemoteBlobs {
    caches: Vec<ImportedBlobs>,
    clients: ClientFactory,
    /// Weak: the store (and this source) may outlive the build's progress.
    progress: WeakProgressSender,
    sources: Sources,
    /// Layers that could not be fetched (or did not match their digest):
    /// no longer offered.
    refused: std::sync::Mutex<HashMap<Digest, String>>,
    /// Those not yet reported by [`RemoteBlobs::take_refused`].
    unreported: std::sync::Mutex<Vec<(Digest, String)>>,
}

impl std::fmt::Debug for RemoteBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteBlobs")
            .field("caches", &self.caches)
            .finish_non_exhaustive()
    }
}

impl RemoteBlobs {
    /// The source of `caches`, reaching registries through `clients`.
    pub(crate) fn new(
        caches: Vec<ImportedBlobs>,
        clients: ClientFactory,
        progress: ProgressSender,
        sources: Sources,
    ) -> Self {
        Self {
            caches,
            clients,
            progress: progress.downgrade(),
            sources,
            refused: std::sync::Mutex::new(HashMap::new()),
            unreported: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The layers refused since the last call, with why.
    pub fn take_refused(&self) -> Vec<(Digest, String)> {
        self.unreported
            .lock()
            .map(|mut list| std::mem::take(&mut *list))
            .unwrap_or_default()
    }

    /// The blob and diff ID of cache mount `key` in the first imported
    /// cache that has it and whose blob is not refused.
    pub(crate) fn mount(&self, key: &str) -> Option<(Descriptor, Digest)> {
        self.caches
            .iter()
            .filter_map(|c| c.mounts.get(key))
            .find(|(descriptor, _)| self.has(descriptor.digest()))
            .cloned()
    }

    /// Offers `digest` no longer, for `reason`.
    pub(crate) fn refuse(&self, digest: &Digest, reason: &str) {
        if let Ok(mut refused) = self.refused.lock() {
            refused.insert(digest.clone(), reason.to_owned());
        }
        if let Ok(mut list) = self.unreported.lock() {
            list.push((digest.clone(), reason.to_owned()));
        }
    }

    fn fetch_from(
        &self,
        location: &CacheLocation,
        descriptor: &Descriptor,
        blobs: &BlobStore,
    ) -> Result<(), String> {
        match location {
            CacheLocation::Local(dir) => copy_from_layout(dir, descriptor, blobs),
            CacheLocation::Registry(reference) => {
                // A runtime of its own on a thread of its own: the store
                // reads blobs synchronously, from async tasks and blocking
                // sections alike.
                std::thread::scope(|scope| {
                    scope
                        .spawn(|| {
                            let runtime = tokio::runtime::Builder::new_current_thread()
                                .enable_all()
                                .build()
                                .map_err(|e| e.to_string())?;
                            runtime.block_on(async {
                                let client = (self.clients)(reference.registry())
                                    .map_err(|e| e.to_string())?;
                                let subject = reference.to_string();
                                let progress = self.progress.upgrade();
                                let fetch = crate::registry::pull::BlobFetch {
                                    client: &client,
                                    blobs,
                                    sources: &self.sources,
                                    repository: reference.repository(),
                                    subject: &subject,
                                    progress: &progress,
                                };
                                fetch
                                    .blob(descriptor, None)
                                    .await
                                    .map_err(|e| e.to_string())
                            })
                        })
                        .join()
                        .unwrap_or_else(|_| Err("the fetching thread panicked".to_owned()))
                })
            }
        }
    }
}

/// Copies a blob of the OCI layout `dir` into the store, verified.
fn copy_from_layout(
    dir: &std::path::Path,
    descriptor: &Descriptor,
    blobs: &BlobStore,
) -> Result<(), String> {
    let digest = descriptor.digest();
    let path = super::import::layout_blob_path(dir, digest).map_err(|e| e.to_string())?;
    let mut file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut writer = blobs
        .writer(Some(Expected::from(descriptor)))
        .map_err(|e| e.to_string())?;
    std::io::copy(&mut file, &mut writer).map_err(|e| format!("{}: {e}", path.display()))?;
    writer.flush().map_err(|e| e.to_string())?;
    writer.commit().map_err(|e| e.to_string())?;
    Ok(())
}

impl BlobSource for RemoteBlobs {
    fn has(&self, digest: &Digest) -> bool {
        let refused = self
            .refused
            .lock()
            .map(|r| r.contains_key(digest))
            .unwrap_or(true);
        !refused && self.caches.iter().any(|c| c.layers.contains_key(digest))
    }

    fn fetch(&self, digest: &Digest, blobs: &BlobStore) -> Result<(), StoreError> {
        let mut failure = None;
        for cache in &self.caches {
            let Some(descriptor) = cache.layers.get(digest) else {
                continue;
            };
            match self.fetch_from(&cache.location, descriptor, blobs) {
                Ok(()) => return Ok(()),
                Err(reason) => {
                    self.refuse(digest, &reason);
                    failure = Some(StoreError::Fetch {
                        digest: digest.clone(),
                        cache: cache.location.to_string(),
                        reason,
                    })
                }
            }
        }
        Err(failure.unwrap_or_else(|| StoreError::BlobNotFound {
            digest: digest.clone(),
        }))
    }
}
