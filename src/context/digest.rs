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
//! `<dir>/digest-memo`, written whole to a temporary file in `<dir>` and
//! renamed over the old one (readers see the old or the new memo, never a
//! torn one). A header line, then one line per file:
//!
//! ```text
//! builder digest memo 2
//! <sha256 hex> <dev> <ino> <size> <mtime_ns> <ctime_ns> <mode> <path>
//! ```
//!
//! `mode` is the full `st_mode` (type and permission bits); the path is the
//! rest of the line. Loading only splits the lines and indexes them by
//! path: a line's numbers and digest are parsed when that file is asked
//! for, so a large memo costs little when a build needs few of its files.
//! Paths that are not UTF-8 or hold a newline are digested but not
//! remembered. A memo with another header is ignored and rewritten.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::image::Digest;

use crate::digest::Hasher;

/// Name of the memo file inside the directory the caller gives.
pub const MEMO_FILE: &str = "digest-memo";
const HEADER: &[u8] = b"builder digest memo 2\n";

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// What the memo knows of one path.
#[derive(Debug)]
enum Known {
    /// A line of the loaded memo, not parsed yet (the byte range of what
    /// follows the path's digest and numbers, path excluded).
    Line(Range<usize>),
    /// Learned by this run.
    New(StatIdentity, Digest),
}

/// Content digests with a memo kept in a directory between runs.
#[derive(Debug)]
pub struct DigestMemo {
    dir: PathBuf,
    /// The loaded memo file (its lines are parsed on demand).
    loaded: Vec<u8>,
    known: HashMap<Box<[u8]>, Known>,
    bytes_read: u64,
    changed: bool,
}

/// The seven fields before the path on a memo line: digest hex and numbers.
const FIELDS: usize = 7;

/// Splits a memo line into its fields and the path.
fn split_line(line: &[u8]) -> Option<([&[u8]; FIELDS], &[u8])> {
    let mut fields = [&[][..]; FIELDS];
    let mut rest = line;
    for field in &mut fields {
        let space = rest.iter().position(|&b| b == b' ')?;
        *field = rest.get(..space)?;
        rest = rest.get(space + 1..)?;
    }
    Some((fields, rest))
}

/// The identity and digest of a memo line's fields.
fn parse_fields(fields: &[&[u8]; FIELDS]) -> Option<(StatIdentity, Digest)> {
    fn num<T: std::str::FromStr>(field: &[u8]) -> Option<T> {
        std::str::from_utf8(field).ok()?.parse().ok()
    }
    let [hex, dev, ino, size, mtime_ns, ctime_ns, mode] = fields;
    let identity = StatIdentity {
        dev: num(dev)?,
        ino: num(ino)?,
        size: num(size)?,
        mtime_ns: num(mtime_ns)?,
        ctime_ns: num(ctime_ns)?,
        mode: num(mode)?,
    };
    let digest = format!("sha256:{}", std::str::from_utf8(hex).ok()?)
        .parse::<Digest>()
        .ok()?;
    Some((identity, digest))
}

/// Appends one memo line.
fn write_line(out: &mut Vec<u8>, path: &[u8], identity: &StatIdentity, digest: &Digest) {
    let StatIdentity {
        dev,
        ino,
        size,
        mtime_ns,
        ctime_ns,
        mode,
    } = identity;
    out.extend_from_slice(
        format!(
            "{} {dev} {ino} {size} {mtime_ns} {ctime_ns} {mode} ",
            digest.digest()
        )
        .as_bytes(),
    );
    out.extend_from_slice(path);
    out.push(b'\n');
}

impl DigestMemo {
    /// Loads the memo kept in `dir` (created if missing); a missing or
    /// unreadable memo starts empty.
    pub fn load(dir: &Path) -> Self {
        let loaded = std::fs::read(dir.join(MEMO_FILE))
            .ok()
            .filter(|bytes| bytes.starts_with(HEADER))
            .unwrap_or_default();
        let mut known = HashMap::new();
        let mut at = HEADER.len().min(loaded.len());
        while let Some(len) = loaded
            .get(at..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
        {
            let line = at..at + len;
            at += len + 1;
            let Some((_, path)) = loaded.get(line.clone()).and_then(split_line) else {
                continue;
            };
            let fields_end = line.end - path.len();
            known.insert(Box::from(path), Known::Line(line.start..fields_end));
        }
        Self {
            dir: dir.to_path_buf(),
            loaded,
            known,
            bytes_read: 0,
            changed: false,
        }
    }

    /// What the memo knows of `path`: its identity and digest.
    fn lookup(&self, path: &[u8]) -> Option<(StatIdentity, Digest)> {
        match self.known.get(path)? {
            Known::New(identity, digest) => Some((*identity, digest.clone())),
            Known::Line(range) => {
                let (fields, _) = split_line(self.loaded.get(range.clone())?)?;
                parse_fields(&fields)
            }
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
        let key = path.as_os_str().as_bytes();
        if let Some((known, digest)) = self.lookup(key) {
            if known == identity {
                return Ok(digest);
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
        if path.to_str().is_some() && !key.contains(&b'\n') {
            self.known
                .insert(Box::from(key), Known::New(identity, digest.clone()));
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
        let mut paths: Vec<&[u8]> = self.known.keys().map(|k| &k[..]).collect();
        paths.sort_unstable();
        let mut out = Vec::with_capacity(self.loaded.len() + 4096);
        out.extend_from_slice(HEADER);
        for path in paths {
            match self.known.get(path) {
                Some(Known::Line(range)) => {
                    out.extend_from_slice(self.loaded.get(range.clone()).unwrap_or_default());
                    out.extend_from_slice(path);
                    out.push(b'\n');
                }
                Some(Known::New(identity, digest)) => write_line(&mut out, path, identity, digest),
                None => {}
            }
        }
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(save_err)?;
        tmp.write_all(&out).map_err(save_err)?;
        tmp.as_file().sync_all().map_err(save_err)?;
        tmp.persist(self.dir.join(MEMO_FILE))
            .map_err(|e| save_err(e.error))?;
        self.changed = false;
        Ok(())
    }
}
