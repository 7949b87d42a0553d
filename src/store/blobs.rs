//! Content-addressed blobs: `blobs/sha256/<hex>` holds exactly the bytes that
//! hash to `<hex>`, or nothing.
//!
//! A blob is streamed into a temp file under `tmp/` (same filesystem), hashed
//! as it goes, fsynced, and renamed into place only when its digest (and its
//! size, when announced) match. A writer that is dropped, fails or is killed
//! leaves at most a temp file, which `prune` removes.
//!
//! The API is synchronous. From async code, move a [`BlobWriter`] into
//! `tokio::task::spawn_blocking` (or call it under
//! `tokio::task::block_in_place`) and feed it chunks there, e.g. through a
//! bounded channel from the network task; the writer is `Send + 'static`.

use super::follow::{BlobFollower, Feed};
use super::lock::{FileLock, Lease};
use super::{Layout, StoreError};
use crate::digest::{Hasher, HashingWriter};
use oci_spec::image::{Descriptor, Digest, DigestAlgorithm};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tempfile::NamedTempFile;

/// A stored blob being read, hashed as it is read (see
/// [`BlobStore::open_checked`]).
pub struct CheckedBlob {
    file: File,
    hasher: Arc<std::sync::Mutex<Hasher>>,
}

impl Read for CheckedBlob {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.hasher
            .lock()
            .map_err(|_| io::Error::other("blob hasher poisoned"))?
            .update(&buf[..n]);
        Ok(n)
    }
}

/// Whether the bytes a [`CheckedBlob`] gave were its blob's.
pub struct BlobCheck {
    digest: Digest,
    hasher: Arc<std::sync::Mutex<Hasher>>,
    blobs: BlobStore,
}

impl BlobCheck {
    /// Hashes what the reader left unread (a decompressor stops at its
    /// end marker; a failed one anywhere) and compares with the digest: a
    /// blob that does not match is removed and is [`StoreError::CorruptBlob`].
    pub fn finish(self) -> Result<(), StoreError> {
        let path = self.blobs.path(&self.digest)?;
        let mut hasher = self
            .hasher
            .lock()
            .map(|mut h| std::mem::take(&mut *h))
            .map_err(|_| StoreError::io("hash", &path, io::Error::other("poisoned")))?;
        let mut file = self.blobs.open(&self.digest)?;
        io::Seek::seek(&mut file, io::SeekFrom::Start(hasher.len()))
            .map_err(|e| StoreError::io("seek in", &path, e))?;
        let mut buf = vec![0; 256 * 1024];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| StoreError::io("read", &path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let actual = hasher.finish();
        if actual != self.digest {
            return Err(self.blobs.corrupt(&self.digest, actual));
        }
        Ok(())
    }
}

/// Blobs read whole into memory (manifests, indexes, configs) are at most this big.
pub const MAX_DOCUMENT_SIZE: u64 = 32 * 1024 * 1024;

/// What a blob being written must turn out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The digest the bytes must hash to.
    pub digest: Digest,
    /// The exact number of bytes, when known (e.g. from a descriptor).
    pub size: Option<u64>,
}

impl From<&Descriptor> for Expected {
    /// What a descriptor promises: its digest and size.
    fn from(descriptor: &Descriptor) -> Self {
        Self {
            digest: descriptor.digest().clone(),
            size: Some(descriptor.size()),
        }
    }
}

/// A blob now in the store: its digest and size, the parts of a descriptor
/// the store can vouch for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// The SHA-256 of the bytes.
    pub digest: Digest,
    /// The number of bytes.
    pub size: u64,
}

/// Where blobs the store lacks may come from: a build's imported remote
/// cache, whose layers are fetched only when something reads their bytes
/// (see [`super::Store::with_source`]).
pub trait BlobSource: Send + Sync + std::fmt::Debug {
    /// Whether the source can give the blob `digest`.
    fn has(&self, digest: &Digest) -> bool;
    /// Writes the blob `digest` into `blobs` (verified against its digest
    /// and size, as any blob is written).
    fn fetch(&self, digest: &Digest, blobs: &BlobStore) -> Result<(), StoreError>;
}

/// The blobs of one store root. Cheap to clone, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct BlobStore {
    layout: Arc<Layout>,
    source: Option<Arc<dyn BlobSource>>,
}

impl BlobStore {
    pub(super) fn new(layout: Arc<Layout>, source: Option<Arc<dyn BlobSource>>) -> Self {
        Self { layout, source }
    }

    /// Whether the blob is stored or its source can give it.
    pub fn available(&self, digest: &Digest) -> bool {
        self.contains(digest) || self.source.as_ref().is_some_and(|s| s.has(digest))
    }

    /// Fetches a missing blob from the source, if one has it; true when
    /// it is now stored.
    fn fetch_missing(&self, digest: &Digest) -> Result<bool, StoreError> {
        match &self.source {
            Some(source) if source.has(digest) => {
                let local = Self::new(Arc::clone(&self.layout), None);
                source.fetch(digest, &local)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Where the blob with `digest` lives (whether or not it is there yet).
    /// Only SHA-256 digests have a place; their hex is validated, so the path
    /// never leaves the store.
    pub fn path(&self, digest: &Digest) -> Result<PathBuf, StoreError> {
        match digest.algorithm() {
            DigestAlgorithm::Sha256 => Ok(self.layout.blobs.join(digest.digest())),
            _ => Err(StoreError::UnsupportedDigest {
                digest: digest.clone(),
            }),
        }
    }

    /// Whether the blob is stored.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_ok_and(|path| path.is_file())
    }

    /// The size in bytes of a stored blob (fetched from the source first
    /// when only it has the blob).
    pub fn size(&self, digest: &Digest) -> Result<u64, StoreError> {
        let path = self.path(digest)?;
        match std::fs::metadata(&path) {
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.fetch_missing(digest)? => {
                std::fs::metadata(&path)
                    .map(|meta| meta.len())
                    .map_err(|e| self.missing_or_io(digest, &path, "stat", e))
            }
            Err(e) => Err(self.missing_or_io(digest, &path, "stat", e)),
        }
    }

    /// Opens a stored blob for reading (fetched from the source first when
    /// only it has the blob).
    pub fn open(&self, digest: &Digest) -> Result<File, StoreError> {
        let path = self.path(digest)?;
        match File::open(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.fetch_missing(digest)? => {
                File::open(&path).map_err(|e| self.missing_or_io(digest, &path, "open", e))
            }
            opened => opened.map_err(|e| self.missing_or_io(digest, &path, "open", e)),
        }
    }

    /// Reads a small stored blob (a manifest, index or config) whole, checking
    /// its digest; larger than [`MAX_DOCUMENT_SIZE`] is refused.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.path(digest)?;
        let file = self.open(digest)?;
        let size = file
            .metadata()
            .map_err(|e| StoreError::io("stat", &path, e))?
            .len();
        if size > MAX_DOCUMENT_SIZE {
            return Err(StoreError::DocumentTooLarge {
                digest: digest.clone(),
                size,
                limit: MAX_DOCUMENT_SIZE,
            });
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.take(MAX_DOCUMENT_SIZE)
            .read_to_end(&mut bytes)
            .map_err(|e| StoreError::io("read", &path, e))?;
        let actual = crate::digest::sha256(&bytes);
        if &actual != digest {
            return Err(self.corrupt(digest, actual));
        }
        Ok(bytes)
    }

    /// Opens a stored blob for reading and hashes what is read, so that
    /// the [`BlobCheck`] can tell afterwards whether the bytes were the
    /// blob's (a layer is checked as it is unpacked, at no extra read).
    pub fn open_checked(&self, digest: &Digest) -> Result<(CheckedBlob, BlobCheck), StoreError> {
        let file = self.open(digest)?;
        let hasher = Arc::new(std::sync::Mutex::new(Hasher::new()));
        Ok((
            CheckedBlob {
                file,
                hasher: Arc::clone(&hasher),
            },
            BlobCheck {
                digest: digest.clone(),
                hasher,
                blobs: self.clone(),
            },
        ))
    }

    /// Hashes a stored blob whole; one whose bytes do not match its digest
    /// is removed and reported as [`StoreError::CorruptBlob`].
    pub fn verify(&self, digest: &Digest) -> Result<(), StoreError> {
        let (mut blob, check) = self.open_checked(digest)?;
        let path = self.path(digest)?;
        io::copy(&mut blob, &mut io::sink()).map_err(|e| StoreError::io("read", &path, e))?;
        drop(blob);
        check.finish()
    }

    /// The error for a blob found corrupt, which is removed first (a
    /// removal that fails leaves it for the next check).
    fn corrupt(&self, digest: &Digest, actual: Digest) -> StoreError {
        let _ = self.remove(digest);
        StoreError::CorruptBlob {
            digest: digest.clone(),
            actual,
        }
    }

    /// Stores `bytes` and returns their digest. A blob already stored
    /// with these bytes is left as it is (an unchanged rebuild writes the
    /// same config and manifest: no write, no fsync).
    pub fn put(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = crate::digest::sha256(bytes);
        let stored = self
            .path(&digest)
            .ok()
            .and_then(|path| std::fs::read(path).ok());
        if stored.as_deref() == Some(bytes) {
            return Ok(digest);
        }
        let mut writer = self.writer(None)?;
        writer
            .write_all(bytes)
            .map_err(|e| StoreError::io("write", writer.temp_path(), e))?;
        Ok(writer.commit()?.digest)
    }

    /// Starts writing a blob. With `expected`, the commit is refused unless
    /// the bytes match it, and writes beyond the expected size fail at once.
    pub fn writer(&self, expected: Option<Expected>) -> Result<BlobWriter, StoreError> {
        if let Some(expected) = &expected {
            self.path(&expected.digest)?;
        }
        let lease = Lease::new(FileLock::shared(&self.layout.gc_lock())?);
        let temp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&self.layout.tmp)
            .map_err(|e| StoreError::io("create temp file in", &self.layout.tmp, e))?;
        Ok(BlobWriter {
            temp_path: temp.path().to_owned(),
            inner: HashingWriter::new(BufWriter::with_capacity(256 * 1024, temp)),
            expected,
            written: 0,
            blobs: self.clone(),
            feed: None,
            _lease: lease,
        })
    }

    /// Every stored blob's digest, in no particular order.
    pub(super) fn list(&self) -> Result<Vec<Digest>, StoreError> {
        let dir = &self.layout.blobs;
        let entries =
            std::fs::read_dir(dir).map_err(|e| StoreError::io("list directory", dir, e))?;
        let mut digests = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("list directory", dir, e))?;
            // Names that are not a digest were not put there by us; leave them.
            let name = entry.file_name();
            if let Some(digest) = name
                .to_str()
                .and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok())
            {
                digests.push(digest);
            }
        }
        Ok(digests)
    }

    /// Removes a blob (one found damaged, or one nothing needs); one that
    /// is already gone is not an error.
    pub fn remove(&self, digest: &Digest) -> Result<(), StoreError> {
        let path = self.path(digest)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove", &path, e)),
        }
    }

    fn missing_or_io(
        &self,
        digest: &Digest,
        path: &Path,
        action: &'static str,
        e: io::Error,
    ) -> StoreError {
        if e.kind() == io::ErrorKind::NotFound {
            StoreError::BlobNotFound {
                digest: digest.clone(),
            }
        } else {
            StoreError::io(action, path, e)
        }
    }
}

/// A blob being written: `Write` the bytes, then [`commit`](Self::commit).
/// Dropping it without committing removes the temp file and stores nothing.
/// While it lives, it holds a lease so `prune` cannot remove its temp file.
pub struct BlobWriter {
    inner: HashingWriter<BufWriter<NamedTempFile>>,
    temp_path: PathBuf,
    expected: Option<Expected>,
    written: u64,
    blobs: BlobStore,
    /// What the follower learns, once there is one.
    feed: Option<Feed>,
    _lease: Lease,
}

impl BlobWriter {
    /// How many bytes have been written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Verifies the bytes against the expected digest and size, makes them
    /// durable and moves them to their digest's place. On a mismatch nothing
    /// is stored and the temp file is removed.
    pub fn commit(self) -> Result<StoredBlob, StoreError> {
        let temp_path = self.temp_path;
        // Dropped on any error below: the follower learns the blob was abandoned.
        let feed = self.feed;
        let (buffered, digest, size) = self.inner.finish();
        if let Some(expected) = &self.expected {
            if let Some(expected_size) = expected.size {
                if expected_size != size {
                    return Err(StoreError::SizeMismatch {
                        digest: expected.digest.clone(),
                        expected: expected_size,
                        actual: size,
                    });
                }
            }
            if expected.digest != digest {
                return Err(StoreError::DigestMismatch {
                    expected: expected.digest.clone(),
                    actual: digest,
                });
            }
        }
        let temp = buffered
            .into_inner()
            .map_err(|e| StoreError::io("write", &temp_path, e.into_error()))?;
        temp.as_file()
            .sync_all()
            .map_err(|e| StoreError::io("sync", &temp_path, e))?;
        let dest = self.blobs.path(&digest)?;
        // Another writer may have stored the same content meanwhile; the
        // rename atomically replaces it with identical bytes.
        temp.persist(&dest)
            .map_err(|e| StoreError::io("rename into place", &dest, e.error))?;
        let dir = &self.blobs.layout.blobs;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StoreError::io("sync directory", dir, e))?;
        let stored = StoredBlob { digest, size };
        if let Some(feed) = feed {
            feed.committed(stored.clone());
        }
        Ok(stored)
    }

    /// A reader of the bytes as they are written (see [`BlobFollower`]):
    /// from now on each write goes to the temp file at once, where the
    /// follower reads it. A writer has one follower at most; one of a
    /// blob with no expected digest learns it from the commit.
    pub fn follow(&mut self) -> Result<BlobFollower, StoreError> {
        if self.feed.is_some() {
            let twice = io::Error::other("a blob being written has one follower at most");
            return Err(StoreError::io("follow", &self.temp_path, twice));
        }
        let digest = self.expected.as_ref().map(|e| e.digest.clone());
        self.inner
            .flush()
            .map_err(|e| StoreError::io("write", &self.temp_path, e))?;
        let file =
            File::open(&self.temp_path).map_err(|e| StoreError::io("open", &self.temp_path, e))?;
        let (follower, feed) = BlobFollower::new(file, digest);
        feed.landed(self.written);
        self.feed = Some(feed);
        Ok(follower)
    }

    fn temp_path(&self) -> &Path {
        &self.temp_path
    }
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("temp_path", &self.temp_path)
            .field("expected", &self.expected)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let limit = self.expected.as_ref().and_then(|e| e.size);
        if let Some(limit) = limit {
            let after = self.written.saturating_add(buf.len() as u64);
            if after > limit {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("blob is larger than the expected {limit} bytes"),
                ));
            }
        }
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        if let Some(feed) = &self.feed {
            self.inner.flush()?;
            feed.landed(self.written);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256;
    use crate::store::Store;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("root")).unwrap();
        (dir, store)
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn put_stores_under_the_digest_and_reads_back() {
        let (_dir, store) = store();
        let blobs = store.blobs();
        let digest = blobs.put(b"hello").unwrap();
        assert_eq!(digest, sha256(b"hello"));
        let path = blobs.path(&digest).unwrap();
        assert_eq!(
            path,
            store.root().join("blobs/sha256").join(digest.digest())
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
        assert!(blobs.contains(&digest));
        assert_eq!(blobs.size(&digest).unwrap(), 5);
        assert_eq!(blobs.read(&digest).unwrap(), b"hello");
        let mut s = String::new();
        blobs.open(&digest).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
        assert!(names_in(&store.root().join("tmp")).is_empty());
    }

    #[test]
    fn streamed_writer_with_expected_digest_and_size_commits() {
        let (_dir, store) = store();
        let data = b"layer bytes ".repeat(100_000);
        let descriptor = Descriptor::new(
            oci_spec::image::MediaType::ImageLayerGzip,
            data.len() as u64,
            sha256(&data),
        );
        let expected = Expected::from(&descriptor);
        let mut w = store.blobs().writer(Some(expected.clone())).unwrap();
        for chunk in data.chunks(4093) {
            w.write_all(chunk).unwrap();
        }
        assert_eq!(w.written(), data.len() as u64);
        let stored = w.commit().unwrap();
        assert_eq!(stored.digest, expected.digest);
        assert_eq!(stored.size, data.len() as u64);
        assert_eq!(
            std::fs::read(store.blobs().path(&stored.digest).unwrap()).unwrap(),
            data
        );
    }

    #[test]
    fn writer_dropped_midway_leaves_nothing() {
        let (_dir, store) = store();
        let mut w = store.blobs().writer(None).unwrap();
        w.write_all(&[7u8; 100_000]).unwrap();
        assert_eq!(names_in(&store.root().join("tmp")).len(), 1);
        drop(w);
        assert!(names_in(&store.root().join("blobs/sha256")).is_empty());
        assert!(names_in(&store.root().join("tmp")).is_empty());
    }

    #[test]
    fn wrong_digest_is_refused_and_leaves_nothing() {
        let (_dir, store) = store();
        let claimed = sha256(b"what the registry promised");
        let mut w = store
            .blobs()
            .writer(Some(Expected {
                digest: claimed.clone(),
                size: None,
            }))
            .unwrap();
        w.write_all(b"what arrived").unwrap();
        match w.commit() {
            Err(StoreError::DigestMismatch { expected, actual }) => {
                assert_eq!(expected, claimed);
                assert_eq!(actual, sha256(b"what arrived"));
            }
            other => panic!("expected a digest mismatch, got {other:?}"),
        }
        assert!(!store.blobs().contains(&claimed));
        assert!(names_in(&store.root().join("blobs/sha256")).is_empty());
        assert!(names_in(&store.root().join("tmp")).is_empty());
    }

    #[test]
    fn sizes_other_than_expected_are_refused() {
        let (_dir, store) = store();
        let data = b"0123456789";
        let expected = |size| {
            Some(Expected {
                digest: sha256(data),
                size: Some(size),
            })
        };
        // Too long: the write that crosses the limit fails at once.
        let mut w = store.blobs().writer(expected(4)).unwrap();
        let err = w.write_all(data).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(
            w.commit(),
            Err(StoreError::SizeMismatch {
                expected: 4,
                actual: 0,
                ..
            })
        ));
        // Too short: refused at commit.
        let mut w = store.blobs().writer(expected(11)).unwrap();
        w.write_all(data).unwrap();
        assert!(matches!(
            w.commit(),
            Err(StoreError::SizeMismatch {
                expected: 11,
                actual: 10,
                ..
            })
        ));
        assert!(names_in(&store.root().join("blobs/sha256")).is_empty());
        assert!(names_in(&store.root().join("tmp")).is_empty());
    }

    #[test]
    fn concurrent_writers_of_the_same_content_agree() {
        let (_dir, store) = store();
        let data = b"same content".repeat(10_000);
        std::thread::scope(|s| {
            for _ in 0..8 {
                let blobs = store.blobs();
                let data = &data;
                s.spawn(move || {
                    let mut w = blobs.writer(None).unwrap();
                    for chunk in data.chunks(1000) {
                        w.write_all(chunk).unwrap();
                    }
                    assert_eq!(w.commit().unwrap().digest, sha256(data));
                });
            }
        });
        assert_eq!(names_in(&store.root().join("blobs/sha256")).len(), 1);
        assert_eq!(store.blobs().read(&sha256(&data)).unwrap(), data);
        assert!(names_in(&store.root().join("tmp")).is_empty());
    }

    #[test]
    fn a_checked_read_tells_a_corrupt_blob_wherever_the_reader_stopped() {
        let (_dir, store) = store();
        let blobs = store.blobs();
        let digest = blobs.put(&vec![7; 100_000]).unwrap();
        for read in [0, 10, 100_000] {
            let (mut blob, check) = blobs.open_checked(&digest).unwrap();
            std::io::copy(&mut (&mut blob).take(read), &mut std::io::sink()).unwrap();
            check.finish().unwrap();
        }
        let mut damaged = vec![7; 100_000];
        damaged[50_000] = 8;
        std::fs::write(blobs.path(&digest).unwrap(), &damaged).unwrap();
        let (mut blob, check) = blobs.open_checked(&digest).unwrap();
        std::io::copy(&mut (&mut blob).take(10), &mut std::io::sink()).unwrap();
        assert!(matches!(
            check.finish(),
            Err(StoreError::CorruptBlob { actual, .. }) if actual == sha256(&damaged)
        ));
        assert!(!blobs.contains(&digest), "a corrupt blob is removed");
    }

    #[test]
    fn missing_corrupt_and_foreign_digests_are_errors() {
        let (_dir, store) = store();
        let blobs = store.blobs();
        let absent = sha256(b"absent");
        assert!(!blobs.contains(&absent));
        assert!(matches!(
            blobs.read(&absent),
            Err(StoreError::BlobNotFound { .. })
        ));
        assert!(matches!(
            blobs.size(&absent),
            Err(StoreError::BlobNotFound { .. })
        ));

        let digest = blobs.put(b"original").unwrap();
        std::fs::write(blobs.path(&digest).unwrap(), b"tampered").unwrap();
        assert!(matches!(
            blobs.read(&digest),
            Err(StoreError::CorruptBlob { actual, .. }) if actual == sha256(b"tampered")
        ));
        assert!(!blobs.contains(&digest), "a corrupt blob is removed");

        let sha512: Digest = format!("sha512:{}", "a".repeat(128)).parse().unwrap();
        assert!(!blobs.contains(&sha512));
        assert!(matches!(
            blobs.path(&sha512),
            Err(StoreError::UnsupportedDigest { .. })
        ));
        assert!(matches!(
            blobs.writer(Some(Expected {
                digest: sha512,
                size: None
            })),
            Err(StoreError::UnsupportedDigest { .. })
        ));
    }

    #[test]
    fn writer_can_be_fed_from_async_code() {
        let (_dir, store) = store();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let blobs = store.blobs();
        let stored = rt
            .block_on(async move {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
                let sink = tokio::task::spawn_blocking(move || {
                    let mut w = blobs.writer(None)?;
                    while let Some(chunk) = rx.blocking_recv() {
                        w.write_all(&chunk)
                            .map_err(|e| StoreError::io("write", Path::new("chunk"), e))?;
                    }
                    w.commit()
                });
                for i in 0..10u8 {
                    tx.send(vec![i; 1000]).await.unwrap();
                }
                drop(tx);
                sink.await.unwrap()
            })
            .unwrap();
        assert_eq!(stored.size, 10_000);
        assert!(store.blobs().contains(&stored.digest));
    }
}
