//! The local content store: content-addressed blobs, the reference index
//! (tags), and garbage collection, in one directory tree shared safely by
//! concurrent builder processes.
//!
//! Layout under the root:
//! - `blobs/sha256/<hex>`: every blob, named by the SHA-256 of its bytes;
//! - `tmp/`: blobs being written (same filesystem, so commit is a rename);
//! - `refs.json`: the reference index;
//! - `locks/`: `flock` files (`refs.lock` guards index updates, `gc.lock`
//!   is held shared by writers and leases and exclusively by prune);
//! - `snapshots/<chain-id-hex>/`: unpacked layers in overlay form;
//! - `cache/`: step cache records and the per-position index;
//! - `variants/<kind>/<hex>`: which blob holds layer blob `<hex>`
//!   compressed as `<kind>` (see [`VariantStore`]).

mod blobs;
mod cache;
mod cache_mounts;
mod chains;
mod follow;
mod gc;
mod images;
mod lock;
mod refs;
mod remove;
mod root;
mod snapshots;
mod variants;

pub use blobs::{
    BlobCheck, BlobSource, BlobStore, BlobWriter, CheckedBlob, Expected, MAX_DOCUMENT_SIZE,
    StoredBlob,
};
pub use cache::{CacheRecord, CacheStore, CachedLayer, CachedStep};
pub use cache_mounts::{CacheMount, CacheMountAccess, CacheMountLock, CacheMountsPruned};
pub use follow::{BlobEnding, BlobFollower};
pub use gc::{PruneReport, PruneScope};
pub use images::{NamedImage, ResolvedImage};
pub use lock::Lease;
pub use refs::RefStore;
pub use root::default_root;
pub use snapshots::{PendingSnapshot, SnapshotStore, chain_id, chain_ids};
pub use variants::{Variant, VariantStore};

use oci_spec::image::Digest;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What went wrong in the store, with the file or digest concerned.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done ("create directory", "rename", …).
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Written bytes do not hash to the digest they were announced with.
    #[error("content digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The announced digest.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
    },
    /// Written bytes are not as many as announced.
    #[error("content size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The announced digest (or the actual one when none was announced).
        digest: Digest,
        /// The announced size.
        expected: u64,
        /// The number of bytes that arrived.
        actual: u64,
    },
    /// The store keeps SHA-256 content only.
    #[error("unsupported digest algorithm in {digest} (the store keeps sha256 content)")]
    UnsupportedDigest {
        /// The digest concerned.
        digest: Digest,
    },
    /// A stored blob whose bytes no longer hash to its digest (damaged on
    /// disk); it has been removed, so the next pull or build fetches or
    /// makes it again.
    #[error(
        "blob {digest} in the store is corrupt (its bytes hash to {actual}); it was removed: pull the image or run the build again to fetch or make it anew"
    )]
    CorruptBlob {
        /// The blob.
        digest: Digest,
        /// What its bytes hash to.
        actual: Digest,
    },
    /// A blob a remote cache promised could not be fetched.
    #[error("blob {digest} of the remote cache {cache} could not be fetched: {reason}")]
    Fetch {
        /// The blob.
        digest: Digest,
        /// The cache (`REGISTRY/REPO:TAG` or a directory).
        cache: String,
        /// Why.
        reason: String,
    },
    /// A blob read as it was written was not stored in the end (the
    /// download or compression failed, or its bytes were refused).
    #[error("{what} was not stored: its writing failed or its bytes were refused")]
    BlobAbandoned {
        /// The blob (`blob sha256:…`).
        what: String,
    },
    /// No blob with that digest is stored.
    #[error("blob {digest} is not in the store")]
    BlobNotFound {
        /// The missing digest.
        digest: Digest,
    },
    /// A blob read whole into memory is larger than documents may be.
    #[error("blob {digest} is {size} bytes, more than the {limit} allowed for a document")]
    DocumentTooLarge {
        /// The blob concerned.
        digest: Digest,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Prune needs the store to itself.
    #[error(
        "the store at {root} is in use by another builder operation; run prune again when it has finished"
    )]
    Busy {
        /// The store root.
        root: PathBuf,
    },
    /// The snapshots were unpacked with other owners than this process
    /// gives files, and another builder operation is using them.
    #[error(
        "the store at {root} holds layer snapshots unpacked with other owners than this build's \
         ({mapping}), and another builder operation is using them; build again when it has \
         finished, or use a store of your own (--root)"
    )]
    OtherOwners {
        /// The store root.
        root: PathBuf,
        /// This process's owner mapping.
        mapping: String,
    },
    /// The reference index could not be read.
    #[error("reference index {path} is corrupt: {source}")]
    CorruptIndex {
        /// The index file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The index file is of a version this builder does not know.
    #[error("reference index {path} has version {version}, which this builder does not read")]
    IndexVersion {
        /// The index file.
        path: PathBuf,
        /// Its version.
        version: u32,
    },
    /// A digest-pinned reference cannot point at other content.
    #[error("{reference} cannot point to {target}: its digest differs")]
    RefDigestMismatch {
        /// The reference.
        reference: String,
        /// The digest it was to point to.
        target: Digest,
    },
    /// A manifest or index in the store cannot be read while walking images.
    #[error("stored document {digest} is unreadable: {source}")]
    BadDocument {
        /// The blob concerned.
        digest: Digest,
        /// Why.
        source: crate::image::ManifestError,
    },
    /// No reference by that name is in the index.
    #[error("no such image: {reference}")]
    RefNotFound {
        /// The reference as the user gave it.
        reference: String,
    },
    /// What names an image is neither a reference nor an image ID.
    #[error("{name:?} names no image: {source}")]
    BadImageName {
        /// What was given.
        name: String,
        /// Why it is no reference.
        source: crate::image::ReferenceError,
    },
    /// An image ID prefix matches several images.
    #[error("image ID prefix {prefix} is ambiguous: it matches {}", matches.join(", "))]
    AmbiguousImageId {
        /// The prefix as given.
        prefix: String,
        /// The IDs it matches.
        matches: Vec<String>,
    },
    /// `rmi IMAGE-ID` of an image named in several repositories, not forced.
    #[error(
        "conflict: unable to delete {id} (must be forced): the image is referenced in several repositories ({})",
        repositories.join(", ")
    )]
    ImageInRepositories {
        /// The image ID.
        id: Digest,
        /// Its repositories.
        repositories: Vec<String>,
    },
    /// A layer blob could not be unpacked into a snapshot.
    #[error("cannot unpack layer {digest}: {source}")]
    Layer {
        /// The layer blob.
        digest: Digest,
        /// Why (boxed: it is rarely built and large).
        source: Box<crate::userns::UsernsError>,
    },
    /// A layer unpacked to other content than the image config says.
    #[error("layer {layer} unpacks to diff ID {actual}, but the image config lists {expected}")]
    DiffIdMismatch {
        /// The layer blob.
        layer: Box<Digest>,
        /// The diff ID the config lists.
        expected: Box<Digest>,
        /// The diff ID of what the blob holds.
        actual: Box<Digest>,
    },
    /// A manifest lists another number of layers than its config's diff IDs.
    #[error("the image has {layers} layers but its config lists {diff_ids} diff IDs")]
    LayerCountMismatch {
        /// Layers in the manifest.
        layers: usize,
        /// Diff IDs in the config.
        diff_ids: usize,
    },
    /// A step cache record cannot be read.
    #[error("step cache record {path} is corrupt: {source}")]
    CorruptCacheRecord {
        /// The record file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// No home directory to put a per-user store under.
    #[error("cannot choose a store root: neither XDG_DATA_HOME nor HOME is set; pass --root")]
    NoHome,
}

impl StoreError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}

/// Paths of one store root; shared by the handles taken from a `Store`.
#[derive(Debug)]
struct Layout {
    root: PathBuf,
    blobs: PathBuf,
    tmp: PathBuf,
    locks: PathBuf,
    snapshots: PathBuf,
    cache: PathBuf,
    cache_mounts: PathBuf,
}

impl Layout {
    fn refs_index(&self) -> PathBuf {
        self.root.join("refs.json")
    }

    fn refs_lock(&self) -> PathBuf {
        self.locks.join("refs.lock")
    }

    fn gc_lock(&self) -> PathBuf {
        self.locks.join("gc.lock")
    }
}

/// An open store root. Cheap to clone; clones share the same root.
#[derive(Debug, Clone)]
pub struct Store {
    layout: Arc<Layout>,
    /// Where blobs it lacks may be fetched from (a build's remote cache).
    source: Option<Arc<dyn BlobSource>>,
}

impl Store {
    /// Opens the store at `root`, creating its directories if needed.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        let layout = Layout {
            blobs: root.join("blobs").join("sha256"),
            tmp: root.join("tmp"),
            locks: root.join("locks"),
            snapshots: root.join("snapshots"),
            cache: root.join("cache"),
            cache_mounts: root.join("cache-mounts"),
            root,
        };
        for dir in [
            &layout.blobs,
            &layout.tmp,
            &layout.locks,
            &layout.snapshots,
            &layout.cache,
        ] {
            std::fs::create_dir_all(dir)
                .map_err(|source| StoreError::io("create directory", dir, source))?;
        }
        // Unpacked layers and cache mounts hold what builds made: setuid
        // programs, device nodes, files of any owner. Only the store's
        // owner may reach them, or any local user could run a build's
        // setuid-root program from the host.
        for dir in [&layout.tmp, &layout.snapshots, &layout.cache_mounts] {
            std::fs::create_dir_all(dir)
                .and_then(|()| {
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                })
                .map_err(|source| StoreError::io("restrict the permissions of", dir, source))?;
        }
        Ok(Self {
            layout: Arc::new(layout),
            source: None,
        })
    }

    /// The same store, fetching from `source` the blobs it lacks when they
    /// are read (and only then).
    pub fn with_source(&self, source: Arc<dyn BlobSource>) -> Self {
        Self {
            layout: Arc::clone(&self.layout),
            source: Some(source),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.layout.root
    }

    /// The content-addressed blobs.
    pub fn blobs(&self) -> BlobStore {
        BlobStore::new(self.layout.clone(), self.source.clone())
    }

    /// The reference index (tags and pinned digests → manifest descriptors).
    pub fn refs(&self) -> RefStore {
        RefStore::new(self.layout.clone())
    }

    /// The unpacked layers (overlay lower directories) by chain ID.
    pub fn snapshots(&self) -> SnapshotStore {
        SnapshotStore::new(self.layout.clone())
    }

    /// The step cache records.
    pub fn cache(&self) -> CacheStore {
        CacheStore::new(self.layout.clone())
    }

    /// Keeps `prune` away until the lease is dropped; see [`Lease`].
    pub fn lease(&self) -> Result<Lease, StoreError> {
        lock::FileLock::shared(&self.layout.gc_lock()).map(Lease::new)
    }
}
