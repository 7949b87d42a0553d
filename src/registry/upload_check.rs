//! Checking a blob's bytes against its digest while they are pushed.

use crate::digest::Hasher;
use crate::store::StoreError;
use oci_spec::image::Digest;
use std::sync::{Arc, Mutex};

/// Hashes a blob's bytes as they go out, in order, across the chunks and
/// attempts of its upload, so that a blob damaged in the store is caught
/// before the registry commits it: its last bytes are not sent.
pub struct UploadCheck {
    digest: Digest,
    size: u64,
    state: Mutex<UploadHash>,
}

#[derive(Default)]
struct UploadHash {
    hasher: Hasher,
    /// What the whole hashed to, when that was not the digest.
    corrupt: Option<Digest>,
}

impl UploadCheck {
    /// A check for blob `digest` of `size` bytes.
    pub fn new(digest: &Digest, size: u64) -> Arc<Self> {
        Arc::new(Self {
            digest: digest.clone(),
            size,
            state: Mutex::default(),
        })
    }

    /// Takes the bytes at `offset` of the blob (bytes hashed already, by an
    /// earlier attempt, are skipped); refuses the blob's last bytes when the
    /// whole does not hash to its digest.
    pub(crate) fn feed(&self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| std::io::Error::other("upload check poisoned"))?;
        let end = offset + bytes.len() as u64;
        let done = state.hasher.len();
        if (offset..end).contains(&done) {
            let skip = usize::try_from(done - offset).unwrap_or(usize::MAX);
            state.hasher.update(&bytes[skip.min(bytes.len())..]);
            if state.hasher.len() == self.size {
                let actual = std::mem::take(&mut state.hasher).finish();
                state.corrupt = (actual != self.digest).then_some(actual);
            }
        }
        match &state.corrupt {
            Some(actual) if end >= self.size => Err(std::io::Error::other(format!(
                "blob {} in the store hashes to {actual}",
                self.digest
            ))),
            _ => Ok(()),
        }
    }

    /// The store's error for the blob when its bytes did not hash to its
    /// digest.
    pub fn corrupt(&self) -> Option<StoreError> {
        let actual = self.state.lock().ok()?.corrupt.clone()?;
        Some(StoreError::CorruptBlob {
            digest: self.digest.clone(),
            actual,
        })
    }
}
