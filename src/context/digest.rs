//! Content digests of files with a persisted stat memo, so that an
//! unchanged build context is not read again.
//!
//! The memo maps a file's host path and its stat identity — device, inode,
//! size, mtime and ctime to the nanosecond, and mode — to the SHA-256 of its
//! content. A file whose identity is unchanged is trusted to be unchanged:
//! any write moves its ctime (which no user call can set back), so a file
//! rewritten with the same size and a restored mtime is still read again.
//!
//! # The memo file
//!
//! `<dir>/digest-memo.json`, written whole to a temporary file in `<dir>`
//! and renamed over the old one (readers see the old or the new memo, never
//! a torn one). It is JSON:
//!
//! ```json
//! {"version":1,"entries":[{"path":"/ctx/app.txt","stat":{"dev":2049,
//!   "ino":131,"size":6,"mtime_ns":1700000000123456789,
//!   "ctime_ns":1700000000123456789,"mode":33188},"digest":"sha256:…"}]}
//! ```
//!
//! `mode` is the full `st_mode` (type and permission bits). Paths that are
//! not UTF-8 are digested but not remembered. A memo of another version, or
//! one that does not parse, is ignored and rewritten.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::Digest;
use serde::{Deserialize, Serialize};

use crate::digest::Hasher;

/// Name of the memo file inside the directory the caller gives.
pub const MEMO_FILE: &str = "digest-memo.json";
const MEMO_VERSION: u32 = 1;

/// Why a digest or the memo failed.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    /// Reading a file's content failed.
    #[error("reading {} to digest it: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Writing the memo failed.
    #[error("saving the digest memo in {}: {source}", dir.display())]
    Save {
        /// The memo's directory.
        dir: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// The stat identity of a file: if none of it changed, neither did the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatIdentity {
    /// Device of the file system.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status change time in nanoseconds since the epoch.
    pub ctime_ns: i64,
    /// The full `st_mode`.
    pub mode: u32,
}

#[derive(Serialize, Deserialize)]
struct MemoEntry {
    path: String,
    stat: StatIdentity,
    digest: String,
}

#[derive(Serialize, Deserialize)]
struct MemoFile {
    version: u32,
    entries: Vec<MemoEntry>,
}

/// Content digests with a memo kept in a directory between runs.
#[derive(Debug)]
pub struct DigestMemo {
    dir: PathBuf,
    known: HashMap<PathBuf, (StatIdentity, Digest)>,
    bytes_read: u64,
    changed: bool,
}

impl DigestMemo {
    /// Loads the memo kept in `dir` (created if missing); a missing or
    /// unreadable memo starts empty.
    pub fn load(dir: &Path) -> Self {
        let known = std::fs::read(dir.join(MEMO_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<MemoFile>(&bytes).ok())
            .filter(|memo| memo.version == MEMO_VERSION)
            .map(|memo| {
                memo.entries
                    .into_iter()
                    .filter_map(|e| {
                        let digest = e.digest.parse::<Digest>().ok()?;
                        Some((PathBuf::from(e.path), (e.stat, digest)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            dir: dir.to_path_buf(),
            known,
            bytes_read: 0,
            changed: false,
        }
    }

    /// The digest of the file at host path `path` with stat `identity`:
    /// from the memo when the identity is unchanged, else by reading the
    /// file that `open` opens.
    pub fn digest(
        &mut self,
        path: &Path,
        identity: StatIdentity,
        open: impl FnOnce() -> io::Result<File>,
    ) -> Result<Digest, DigestError> {
        if let Some((known, digest)) = self.known.get(path) {
            if *known == identity {
                return Ok(digest.clone());
            }
        }
        let read_err = |source| DigestError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut file = open().map_err(read_err)?;
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf).map_err(read_err)?;
            if n == 0 {
                break;
            }
            self.bytes_read += n as u64;
            hasher.update(buf.get(..n).unwrap_or_default());
        }
        let digest = hasher.finish();
        if path.to_str().is_some() {
            self.known
                .insert(path.to_path_buf(), (identity, digest.clone()));
            self.changed = true;
        }
        Ok(digest)
    }

    /// How many content bytes this memo has read since it was loaded.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Writes the memo back (atomically) if it learned anything.
    pub fn save(&mut self) -> Result<(), DigestError> {
        if !self.changed {
            return Ok(());
        }
        let save_err = |source| DigestError::Save {
            dir: self.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(save_err)?;
        let mut entries: Vec<MemoEntry> = self
            .known
            .iter()
            .filter_map(|(path, (identity, digest))| {
                Some(MemoEntry {
                    path: path.to_str()?.to_owned(),
                    stat: *identity,
                    digest: digest.to_string(),
                })
            })
            .collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let memo = MemoFile {
            version: MEMO_VERSION,
            entries,
        };
        let json = serde_json::to_vec(&memo).map_err(|e| save_err(io::Error::other(e)))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(save_err)?;
        tmp.write_all(&json).map_err(save_err)?;
        tmp.as_file().sync_all().map_err(save_err)?;
        tmp.persist(self.dir.join(MEMO_FILE))
            .map_err(|e| save_err(e.error))?;
        self.changed = false;
        Ok(())
    }
}
