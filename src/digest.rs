//! Content digests: hashing bytes while they stream, into the OCI `Digest`
//! type every other module uses (`oci_spec::image::Digest`).
//!
//! One place computes digests so that the store, the layer writer, the
//! registry client and the context walker always agree on how.

use oci_spec::image::{Digest, Sha256Digest};
use sha2::{Digest as _, Sha256};
use std::io::{self, Read, Write};
use std::str::FromStr;

/// A running SHA-256 over bytes fed in order; `finish` yields the digest.
#[derive(Clone, Default)]
pub struct Hasher {
    inner: Sha256,
    len: u64,
}

impl Hasher {
    /// A hasher that has seen no bytes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// How many bytes have been fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no bytes have been fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed, as `sha256:<hex>`.
    pub fn finish(self) -> Digest {
        let hex = hex::encode(self.inner.finalize());
        Sha256Digest::from_str(&hex)
            .expect("a SHA-256 output is always 64 lowercase hex digits")
            .into()
    }
}

/// The SHA-256 digest of a byte slice.
pub fn sha256(bytes: &[u8]) -> Digest {
    let mut hasher = Hasher::new();
    hasher.update(bytes);
    hasher.finish()
}

/// The SHA-256 of the bytes `value`'s [`std::hash::Hash`] feeds a hasher:
/// a digest that moves when any hashed field does. Those bytes follow std's
/// `Hash` encoding, which another Rust release may change: fit to key a
/// memo whose stale entries only miss, never to name content.
pub fn sha256_of_hash(value: &impl std::hash::Hash) -> Digest {
    let mut state = HashFeed {
        hasher: Hasher::new(),
        buf: Vec::with_capacity(HASH_FEED_BUF),
    };
    value.hash(&mut state);
    state.hasher.update(&state.buf);
    state.hasher.finish()
}

/// How many bytes [`HashFeed`] gathers before it hashes them: `Hash`
/// feeds a few bytes at a time, which SHA-256 takes better in bulk.
const HASH_FEED_BUF: usize = 64 * 1024;

/// A [`std::hash::Hasher`] feeding a SHA-256 (see [`sha256_of_hash`]).
struct HashFeed {
    hasher: Hasher,
    buf: Vec<u8>,
}

impl std::hash::Hasher for HashFeed {
    fn write(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= HASH_FEED_BUF {
            self.hasher.update(&self.buf);
            self.buf.clear();
        }
    }

    /// The first 8 bytes of the SHA-256 so far.
    fn finish(&self) -> u64 {
        let mut hasher = self.hasher.clone();
        hasher.update(&self.buf);
        let digest = hasher.finish();
        u64::from_str_radix(digest.digest().get(..16).unwrap_or_default(), 16).unwrap_or_default()
    }
}

/// A writer that hashes every byte it passes on to `inner`.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`; nothing has been hashed yet.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// The inner writer, the digest and the size of everything written.
    pub fn finish(self) -> (W, Digest, u64) {
        let len = self.hasher.len();
        (self.inner, self.hasher.finish(), len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes every byte read through it from `inner`.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`; nothing has been hashed yet.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// The inner reader, the digest and the size of everything read.
    pub fn finish(self) -> (R, Digest, u64) {
        let len = self.hasher.len();
        (self.inner, self.hasher.finish(), len)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_has_the_well_known_digest() {
        assert_eq!(
            sha256(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn streaming_and_one_shot_agree() {
        let data = b"hello, layers".repeat(1000);
        let mut w = HashingWriter::new(Vec::new());
        for chunk in data.chunks(7) {
            w.write_all(chunk).unwrap();
        }
        let (out, digest, len) = w.finish();
        assert_eq!(out, data);
        assert_eq!(len, data.len() as u64);
        assert_eq!(digest, sha256(&data));

        let mut r = HashingReader::new(&data[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(r.finish().1, sha256(&data));
    }

    #[test]
    fn a_hash_digest_is_stable_and_moves_with_any_field() {
        let value = |name: &str, size: u64| (name.to_owned(), size, vec![1u8; 100_000]);
        let first = sha256_of_hash(&value("a", 1));
        assert_eq!(sha256_of_hash(&value("a", 1)), first);
        assert_ne!(sha256_of_hash(&value("b", 1)), first);
        assert_ne!(sha256_of_hash(&value("a", 2)), first);
        // Field boundaries count: ("ab", "") is not ("a", "b").
        assert_ne!(sha256_of_hash(&("ab", "")), sha256_of_hash(&("a", "b")));
    }
}
