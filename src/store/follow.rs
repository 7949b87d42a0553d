//! Reading a blob while it is written: a [`BlobFollower`] reads the
//! writer's temp file up to what has landed, waits for more, and ends only
//! once the writer has committed the blob (its digest and size checked),
//! so whatever is made from the bytes (a snapshot unpacked as a layer
//! downloads, a compressed layer pushed as it is compressed) is made from
//! the blob the store keeps, or fails.

use super::{StoreError, StoredBlob};
use crate::watched::Watched;
use oci_spec::image::Digest;
use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;

/// How a followed blob's writing ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// The blob is in the store.
    Committed(StoredBlob),
    /// The writer was dropped or its bytes were refused: nothing stored.
    Abandoned,
}

/// What a writer tells its follower.
#[derive(Debug, Default)]
struct Landed {
    /// Bytes in the temp file so far.
    bytes: u64,
    /// How it ended, once it has.
    end: Option<End>,
}

/// The state writer and follower share.
type Shared = Watched<Landed>;

/// The writer's side: says how many bytes landed and how it ended; a
/// feed dropped before [`Feed::committed`] tells the follower the blob
/// was abandoned.
#[derive(Debug)]
pub(super) struct Feed(Arc<Shared>);

impl Feed {
    /// `bytes` bytes are in the temp file.
    pub(super) fn landed(&self, bytes: u64) {
        self.0.update(|l| l.bytes = bytes);
    }

    /// The blob is committed as `stored`.
    pub(super) fn committed(self, stored: StoredBlob) {
        self.0.update(|l| l.end = Some(End::Committed(stored)));
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.0.update(|l| {
            l.end.get_or_insert(End::Abandoned);
        });
    }
}

/// Reads a blob as its writer writes it (see [`super::BlobWriter::follow`]).
/// A read waits for bytes not yet written; the end of the stream comes
/// only once the blob is committed, and an error instead when it was
/// abandoned. A reader that stops early (a decompressor at its end marker)
/// learns how the blob ended from its [`BlobFollower::ending`].
#[derive(Debug)]
pub struct BlobFollower {
    file: File,
    /// The digest announced for the blob; `None` when it is known only
    /// once written (a compressed layer).
    digest: Option<Digest>,
    read: u64,
    shared: Arc<Shared>,
}

impl BlobFollower {
    /// A follower reading `file` (the writer's temp file, opened anew) and
    /// the feed its writer keeps.
    pub(super) fn new(file: File, digest: Option<Digest>) -> (Self, Feed) {
        let shared = Arc::new(Shared::default());
        let feed = Feed(Arc::clone(&shared));
        let follower = Self {
            file,
            digest,
            read: 0,
            shared,
        };
        (follower, feed)
    }

    /// What tells how the writing ended, for after the reading (a reader
    /// that stops early, such as a decompressor at its end marker, has not
    /// seen the end).
    pub fn ending(&self) -> BlobEnding {
        BlobEnding {
            digest: self.digest.clone(),
            shared: Arc::clone(&self.shared),
        }
    }

    /// Bytes that may be read now, waiting until there are some or the
    /// writing ended (0: the blob is complete).
    fn available(&self) -> io::Result<u64> {
        let mut landed = self.shared.lock();
        loop {
            if landed.bytes > self.read {
                return Ok(landed.bytes - self.read);
            }
            match landed.end {
                Some(End::Committed(_)) => return Ok(0),
                Some(End::Abandoned) => {
                    return Err(io::Error::other(format!(
                        "the writing of {} was abandoned",
                        named(self.digest.as_ref())
                    )));
                }
                None => landed = self.shared.wait(landed),
            }
        }
    }
}

/// How a followed blob's writing ended (see [`BlobFollower::ending`]).
#[derive(Debug)]
pub struct BlobEnding {
    digest: Option<Digest>,
    shared: Arc<Shared>,
}

impl BlobEnding {
    /// Waits until the writer is done: the blob as stored once it is
    /// committed, [`StoreError::BlobAbandoned`] when it was not.
    pub fn finish(self) -> Result<StoredBlob, StoreError> {
        let mut landed = self.shared.lock();
        loop {
            match &landed.end {
                Some(End::Committed(stored)) => return Ok(stored.clone()),
                Some(End::Abandoned) => {
                    return Err(StoreError::BlobAbandoned {
                        what: named(self.digest.as_ref()),
                    });
                }
                None => landed = self.shared.wait(landed),
            }
        }
    }
}

/// The followed blob, for errors: the blob announced, or one whose digest
/// was to come from its bytes.
fn named(digest: Option<&Digest>) -> String {
    match digest {
        Some(digest) => format!("blob {digest}"),
        None => "the blob being written".to_owned(),
    }
}

impl Read for BlobFollower {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let available = self.available()?;
        let want = buf
            .len()
            .min(usize::try_from(available).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} ended before its written bytes",
                    named(self.digest.as_ref())
                ),
            ));
        }
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Expected, Store};
    use std::io::Write as _;

    fn writer(store: &Store, bytes: &[u8]) -> crate::store::BlobWriter {
        store
            .blobs()
            .writer(Some(Expected {
                digest: crate::digest::sha256(bytes),
                size: Some(bytes.len() as u64),
            }))
            .unwrap()
    }

    #[test]
    fn a_follower_reads_what_lands_and_ends_at_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let bytes = b"first part, second part".to_vec();
        let mut writer = writer(&store, &bytes);
        let mut follower = writer.follow().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            follower.read_to_end(&mut got).map(|_| got)
        });
        writer.write_all(&bytes[..11]).unwrap();
        writer.write_all(&bytes[11..]).unwrap();
        writer.commit().unwrap();
        assert_eq!(reader.join().unwrap().unwrap(), bytes);
    }

    #[test]
    fn a_follower_of_refused_bytes_fails() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut writer = writer(&store, b"expected");
        let mut follower = writer.follow().unwrap();
        writer.write_all(b"whatever").unwrap();
        assert!(writer.commit().is_err());
        let mut got = Vec::new();
        assert!(follower.read_to_end(&mut got).is_err());
        assert!(matches!(
            follower.ending().finish(),
            Err(StoreError::BlobAbandoned { .. })
        ));
    }
}
