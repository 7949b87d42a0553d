//! Unpacking a base image's layers while it is pulled: the pull feeds each
//! layer's bytes as they land (see [`LayerFeed`]) to one worker thread,
//! which unpacks the layers bottom first, each into its snapshot as soon as
//! the snapshots below it are made, reading its blob as it downloads (or
//! from the store, when the store had it). A layer's snapshot takes the
//! metadata of the parent directories it leaves out from the snapshots
//! below, so layers are unpacked one after another, never side by side;
//! their downloads still run in parallel. A snapshot is committed only
//! once its blob is (digest and size checked) and its diff ID matches, so
//! a failed pull leaves none but temp directories.

use crate::exec::config::ImageConfig;
use crate::progress::work::{Work, WorkKind, WorkMeter};
use crate::progress::{Event, ProgressSender, StepProgress};
use crate::registry::LayerFeed;
use crate::store::{BlobFollower, BlobStore, Store, StoreError, chain_id};
use crate::watched::Watched;
use oci_spec::image::{Descriptor, Digest};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The layers of one pull being unpacked; the pull's [`LayerFeed`].
pub(super) struct Unpacking {
    store: Store,
    /// Where extraction progress goes: under the step `step`.
    progress: ProgressSender,
    step: u64,
    arrivals: Arc<Arrivals>,
    worker: Mutex<Option<JoinHandle<Result<(), StoreError>>>>,
}

impl Unpacking {
    /// Unpacking into `store`'s snapshots, shown as progress of step `step`.
    pub fn new(store: Store, progress: ProgressSender, step: u64) -> Self {
        Self {
            store,
            progress,
            step,
            arrivals: Arc::default(),
            worker: Mutex::new(None),
        }
    }

    /// The pull is over: waits for the unpacking to end. After a pull
    /// that succeeded every layer has its snapshot, or the error says why
    /// one could not be made; after one that failed the unpacking stops
    /// at the first layer not stored (its outcome is then of no interest).
    pub fn finish(&self) -> Result<(), StoreError> {
        self.arrivals.update(|a| a.pull_over = true);
        let worker = self
            .worker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match worker.map(JoinHandle::join) {
            None => Ok(()),
            Some(Ok(outcome)) => outcome,
            Some(Err(_)) => Err(StoreError::io(
                "unpack layers into",
                &self.store.root().join("snapshots"),
                std::io::Error::other("the unpacking thread panicked"),
            )),
        }
    }
}

impl LayerFeed for Unpacking {
    fn image(&self, config: &Digest, layers: &[Descriptor]) {
        // A config that cannot be read, or whose diff IDs do not match the
        // layers, is reported when the pulled image is read: no unpacking.
        let Ok(bytes) = self.store.blobs().read(config) else {
            return;
        };
        let Ok(config) = ImageConfig::parse(&bytes) else {
            return;
        };
        let Ok(diff_ids) = config.rootfs.digests() else {
            return;
        };
        if diff_ids.len() != layers.len() {
            return;
        }
        let job = Job {
            store: self.store.clone(),
            layers: layers.iter().cloned().zip(diff_ids).collect(),
            arrivals: Arc::clone(&self.arrivals),
            progress: self.progress.clone(),
            step: self.step,
        };
        let worker = std::thread::Builder::new()
            .name("unpack".into())
            .spawn(move || job.run());
        // Without a thread, the layers are unpacked when a step needs them.
        if let Ok(worker) = worker {
            *self
                .worker
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(worker);
        }
    }

    fn layer(&self, layer: &Descriptor, bytes: BlobFollower) {
        self.arrivals.update(|a| {
            a.downloads.insert(layer.digest().clone(), bytes);
        });
    }
}

/// What the pull has handed over so far.
#[derive(Default)]
struct Arrived {
    /// The latest download of each layer not yet taken by the worker.
    downloads: HashMap<Digest, BlobFollower>,
    /// Whether the pull is over (no more downloads come).
    pull_over: bool,
}

/// [`Arrived`], and a signal when it changes.
type Arrivals = Watched<Arrived>;

/// Where a layer's bytes come from.
enum Source {
    /// Its download, as it lands.
    Download(BlobFollower),
    /// The store, which has the blob.
    Stored,
    /// Nowhere: the pull ended without it.
    Gone,
}

impl Arrivals {
    /// Where the blob `digest` can be read from, waiting until it is
    /// downloading, stored, or known not to come.
    fn source(&self, digest: &Digest, blobs: &BlobStore) -> Source {
        let mut arrived = self.lock();
        loop {
            if let Some(download) = arrived.downloads.remove(digest) {
                return Source::Download(download);
            }
            if blobs.contains(digest) {
                return Source::Stored;
            }
            if arrived.pull_over {
                return Source::Gone;
            }
            arrived = self.wait(arrived);
        }
    }
}

/// The worker's task: an image's layers with their diff IDs, bottom first.
struct Job {
    store: Store,
    layers: Vec<(Descriptor, Digest)>,
    arrivals: Arc<Arrivals>,
    progress: ProgressSender,
    step: u64,
}

impl Job {
    fn run(self) -> Result<(), StoreError> {
        let snapshots = self.store.snapshots();
        let blobs = self.store.blobs();
        let mut chains: Vec<Digest> = Vec::with_capacity(self.layers.len());
        for (layer, diff_id) in &self.layers {
            let chain = chain_id(chains.last(), diff_id);
            // A download abandoned (a dropped connection) is followed by
            // the next attempt's, or by the stored blob.
            while !snapshots.contains(&chain) {
                let kind = WorkKind::Extract {
                    layer: layer.digest().clone(),
                };
                let (progress, step) = (&self.progress, self.step);
                let mut meter = WorkMeter::new(kind, Some(layer.size()), |work: Work| {
                    progress.send(Event::Step(StepProgress::Work { id: step, work }));
                });
                let mut read = |done| meter.advance(done);
                let unpacked = match self.arrivals.source(layer.digest(), &blobs) {
                    Source::Download(bytes) => {
                        snapshots.unpack_following(&chains, layer, diff_id, bytes, &mut read)
                    }
                    Source::Stored => {
                        snapshots.unpack_observed(&blobs, &chains, layer, diff_id, &mut read)
                    }
                    Source::Gone => return Ok(()),
                };
                match unpacked {
                    Ok(_) => meter.finish(),
                    Err(StoreError::BlobAbandoned { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            chains.push(chain);
        }
        Ok(())
    }
}
