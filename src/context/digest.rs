//! Content digests of files with a persisted stat memo, so that an
//! unchanged build context is not read again.
//!
//! The memo maps a file's (or directory's) host path and its stat identity
//! — device, inode, size, mtime and ctime to the nanosecond, and mode — to
//! the SHA-256 of its content and of its extended attributes. A file whose
//! identity is unchanged is trusted to be unchanged: any write, and any
//! change of an extended attribute, moves its ctime (which no user call can
//! set back), so a file rewritten with the same size and a restored mtime
//! is still read again.
//!
//! # The memo file
//!
//! `<dir>/digest-memo`, written whole to a temporary file in `<dir>` and
//! renamed over the old one (readers see the old or the new memo, never a
//! torn one). A header line, then one line per file:
//!
//! ```text
//! builder digest memo 3
//! <sha256 hex> <xattrs sha256 hex or -> <dev> <ino> <size> <mtime_ns> <ctime_ns> <mode> <path>
//! ```
//!
//! The first digest is of the content (of nothing for a directory), the
//! second of the extended attributes (`-` when there are none); `mode` is
//! the full `st_mode` (type and permission bits); the path is the rest of
//! the line. Lines are sorted by path (in byte order). The file is read
//! when a digest is first asked for (a build whose steps are all found by
//! their stat identities reads none), and loading
//! only finds where each line starts (one `memchr` pass): a line's path,
//! numbers and digest are split and parsed when that file is asked for,
//! so a large memo costs little when a build needs few of its files. A
//! build asks in walk order, which is nearly the memo's: the line after
//! the last one found is tried first, then a binary search. A memo whose
//! lines are out of order (not one this module wrote) only makes some
//! files read again; a damaged line is as good as absent.
//! Paths that are not UTF-8 or hold a newline are digested but not
//! remembered. A memo with another header is ignored and rewritten.

use std::borrow::Cow;
use std::cell::{Cell, OnceCell};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::image::Digest;

use crate::digest::Hasher;

/// Name of the memo file inside the directory the caller gives.
pub const MEMO_FILE: &str = "digest-memo";
const HEADER: &[u8] = b"builder digest memo 3\n";

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

/// What the memo knows of a file: the digests of its content and of its
/// extended attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigests {
    /// The SHA-256 of the content (of no bytes for a directory).
    pub content: Digest,
    /// The digest of the extended attributes, as the caller makes it;
    /// `None` when there are none.
    pub xattrs: Option<Digest>,
}

/// Content digests with a memo kept in a directory between runs.
#[derive(Debug)]
pub struct DigestMemo {
    dir: PathBuf,
    /// The memo file, read when first needed.
    lines: OnceCell<Lines>,
    /// The line after the one last found: where the next lookup looks first.
    hint: Cell<usize>,
    /// What this run learned, by path: it overrides the loaded lines.
    learned: HashMap<Box<[u8]>, (StatIdentity, FileDigests)>,
    bytes_read: u64,
}

/// A loaded memo file (its lines are split and parsed on demand).
#[derive(Debug)]
struct Lines {
    bytes: Vec<u8>,
    /// Where each line starts, in file order; one more entry at the end
    /// marks where the last line ends (past its newline).
    starts: Vec<usize>,
}

impl Lines {
    /// The lines of the memo file `dir/MEMO_FILE`; none when it is
    /// missing, unreadable or has another header.
    fn read(dir: &Path) -> Self {
        let bytes = std::fs::read(dir.join(MEMO_FILE))
            .ok()
            .filter(|bytes| bytes.starts_with(HEADER))
            .unwrap_or_default();
        Self::new(bytes)
    }

    /// The lines of the memo file holding `bytes`.
    fn new(bytes: Vec<u8>) -> Self {
        let body = HEADER.len().min(bytes.len());
        let mut starts = vec![body];
        starts.extend(
            memchr::memchr_iter(b'\n', bytes.get(body..).unwrap_or_default())
                .map(|nl| body + nl + 1),
        );
        Self { bytes, starts }
    }
}

/// The eight fields before the path on a memo line: digests and numbers.
const FIELDS: usize = 8;

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

/// The identity and digests of a memo line's fields.
fn parse_fields(fields: &[&[u8]; FIELDS]) -> Option<(StatIdentity, FileDigests)> {
    fn num<T: std::str::FromStr>(field: &[u8]) -> Option<T> {
        std::str::from_utf8(field).ok()?.parse().ok()
    }
    fn sha256(hex: &[u8]) -> Option<Digest> {
        format!("sha256:{}", std::str::from_utf8(hex).ok()?)
            .parse::<Digest>()
            .ok()
    }
    let [content, xattrs, dev, ino, size, mtime_ns, ctime_ns, mode] = fields;
    let identity = StatIdentity {
        dev: num(dev)?,
        ino: num(ino)?,
        size: num(size)?,
        mtime_ns: num(mtime_ns)?,
        ctime_ns: num(ctime_ns)?,
        mode: num(mode)?,
    };
    let digests = FileDigests {
        content: sha256(content)?,
        xattrs: match *xattrs {
            b"-" => None,
            hex => Some(sha256(hex)?),
        },
    };
    Some((identity, digests))
}

/// Appends one memo line.
fn write_line(out: &mut Vec<u8>, path: &[u8], identity: &StatIdentity, digests: &FileDigests) {
    let StatIdentity {
        dev,
        ino,
        size,
        mtime_ns,
        ctime_ns,
        mode,
    } = identity;
    let xattrs = digests.xattrs.as_ref().map_or("-", |d| d.digest());
    out.extend_from_slice(
        format!(
            "{} {xattrs} {dev} {ino} {size} {mtime_ns} {ctime_ns} {mode} ",
            digests.content.digest()
        )
        .as_bytes(),
    );
    out.extend_from_slice(path);
    out.push(b'\n');
}

impl DigestMemo {
    /// The memo kept in `dir` (created when saved); its file is read
    /// when first needed, and a missing or unreadable one starts empty.
    pub fn load(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            lines: OnceCell::new(),
            hint: Cell::new(0),
            learned: HashMap::new(),
            bytes_read: 0,
        }
    }

    /// The memo file's lines, read now if they were not yet.
    fn lines(&self) -> &Lines {
        self.lines.get_or_init(|| Lines::read(&self.dir))
    }

    /// How many lines the loaded memo has.
    fn line_count(&self) -> usize {
        self.lines().starts.len() - 1
    }

    /// Loaded line `at`, its newline included.
    fn raw_line(&self, at: usize) -> &[u8] {
        let lines = self.lines();
        match (lines.starts.get(at), lines.starts.get(at + 1)) {
            (Some(&start), Some(&next)) => lines.bytes.get(start..next).unwrap_or_default(),
            _ => &[],
        }
    }

    /// The fields and path of loaded line `at` (`None` when damaged).
    fn line(&self, at: usize) -> Option<([&[u8]; FIELDS], &[u8])> {
        let (_newline, line) = self.raw_line(at).split_last()?;
        split_line(line)
    }

    /// The fields of the loaded line of `path`.
    fn loaded_line(&self, path: &[u8]) -> Option<[&[u8]; FIELDS]> {
        let hint = self.hint.get();
        if let Some((fields, found)) = self.line(hint) {
            if found == path {
                self.hint.set(hint + 1);
                return Some(fields);
            }
        }
        // A damaged line sorts first: the search then only misses it.
        let (mut low, mut high) = (0, self.line_count());
        while low < high {
            let mid = low + (high - low) / 2;
            let (fields, found) = self.line(mid).unwrap_or(([&[][..]; FIELDS], &[]));
            match found.cmp(path) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => {
                    self.hint.set(mid + 1);
                    return Some(fields);
                }
            }
        }
        None
    }

    /// What the memo knows of `path`: its identity and digests.
    fn lookup(&self, path: &[u8]) -> Option<(StatIdentity, FileDigests)> {
        match self.learned.get(path) {
            Some((identity, digests)) => Some((*identity, digests.clone())),
            None => parse_fields(&self.loaded_line(path)?),
        }
    }

    /// The digests of the file (or directory) at host path `path` with
    /// stat `identity`: from the memo when the identity is unchanged, else
    /// by reading the file that `open` opens (`None` for a directory, whose
    /// content digest is of no bytes) and the extended attributes' digest
    /// that `xattrs` makes.
    pub fn digests(
        &mut self,
        path: &Path,
        identity: StatIdentity,
        open: impl FnOnce() -> io::Result<Option<File>>,
        xattrs: impl FnOnce() -> io::Result<Option<Digest>>,
    ) -> Result<FileDigests, DigestError> {
        let key = path.as_os_str().as_bytes();
        if let Some((known, digests)) = self.lookup(key) {
            if known == identity {
                return Ok(digests);
            }
        }
        let read_err = |source| DigestError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut hasher = Hasher::new();
        if let Some(mut file) = open().map_err(read_err)? {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = file.read(&mut buf).map_err(read_err)?;
                if n == 0 {
                    break;
                }
                self.bytes_read += n as u64;
                hasher.update(buf.get(..n).unwrap_or_default());
            }
        }
        let digests = FileDigests {
            content: hasher.finish(),
            xattrs: xattrs().map_err(read_err)?,
        };
        if path.to_str().is_some() && !key.contains(&b'\n') {
            self.learned
                .insert(Box::from(key), (identity, digests.clone()));
        }
        Ok(digests)
    }

    /// How many content bytes this memo has read since it was loaded.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Writes the memo back (atomically) if it learned anything.
    pub fn save(&mut self) -> Result<(), DigestError> {
        if self.learned.is_empty() {
            return Ok(());
        }
        let save_err = |source| DigestError::Save {
            dir: self.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(save_err)?;
        // The loaded lines that still hold (a path learned again replaces
        // its line), then the learned ones, merged in path order.
        let mut lines: Vec<(&[u8], Cow<'_, [u8]>)> = Vec::with_capacity(self.line_count());
        for at in 0..self.line_count() {
            let Some((_, path)) = self.line(at) else {
                continue;
            };
            if !self.learned.contains_key(path) {
                lines.push((path, Cow::Borrowed(self.raw_line(at))));
            }
        }
        for (path, (identity, digests)) in &self.learned {
            let mut line = Vec::new();
            write_line(&mut line, path, identity, digests);
            lines.push((path, Cow::Owned(line)));
        }
        lines.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut out = Vec::with_capacity(self.lines().bytes.len() + 4096);
        out.extend_from_slice(HEADER);
        for (_, line) in &lines {
            out.extend_from_slice(line);
        }
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(save_err)?;
        tmp.write_all(&out).map_err(save_err)?;
        tmp.as_file().sync_all().map_err(save_err)?;
        tmp.persist(self.dir.join(MEMO_FILE))
            .map_err(|e| save_err(e.error))?;
        // What was learned is now in the file.
        self.lines = OnceCell::from(Lines::new(out));
        self.learned.clear();
        self.hint.set(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn identity(path: &Path) -> StatIdentity {
        let meta = std::fs::metadata(path).unwrap();
        StatIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
            mode: meta.mode(),
        }
    }

    /// Digests every file of `files` through `memo`.
    fn digest_all(memo: &mut DigestMemo, files: &[PathBuf]) -> Vec<Digest> {
        files
            .iter()
            .map(|f| {
                let open = || File::open(f).map(Some);
                memo.digests(f, identity(f), open, || Ok(None))
                    .unwrap()
                    .content
            })
            .collect()
    }

    #[test]
    fn a_reloaded_memo_finds_every_path_and_an_unchanged_run_leaves_it_alone() {
        let ctx = tempfile::tempdir().unwrap();
        let memo_dir = tempfile::tempdir().unwrap();
        // Names whose byte order differs from their creation order.
        let files: Vec<PathBuf> = ["b", "a", "a b", "Z", "a/", "é", "a-1", "a0"]
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let path = ctx.path().join(name.replace('/', "_"));
                std::fs::write(&path, format!("content {i}")).unwrap();
                path
            })
            .collect();
        let mut memo = DigestMemo::load(memo_dir.path());
        let first = digest_all(&mut memo, &files);
        memo.save().unwrap();
        let memo_file = memo_dir.path().join(MEMO_FILE);
        let saved = std::fs::metadata(&memo_file).unwrap();

        let mut memo = DigestMemo::load(memo_dir.path());
        assert_eq!(digest_all(&mut memo, &files), first);
        assert_eq!(memo.bytes_read(), 0);
        memo.save().unwrap();
        let after = std::fs::metadata(&memo_file).unwrap();
        assert_eq!(
            (after.ino(), after.mtime_nsec()),
            (saved.ino(), saved.mtime_nsec())
        );

        // One file changes: only it is read, and the memo learns it.
        std::fs::write(&files[3], b"changed").unwrap();
        let mut memo = DigestMemo::load(memo_dir.path());
        let second = digest_all(&mut memo, &files);
        assert_eq!(memo.bytes_read(), 7);
        assert_ne!(second[3], first[3]);
        memo.save().unwrap();
        let mut memo = DigestMemo::load(memo_dir.path());
        assert_eq!(digest_all(&mut memo, &files), second);
        assert_eq!(memo.bytes_read(), 0);
    }

    #[test]
    fn lookups_in_any_order_find_their_lines_and_a_damaged_or_misplaced_line_is_only_read_again() {
        let ctx = tempfile::tempdir().unwrap();
        let memo_dir = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = (0..50)
            .map(|i| {
                let path = ctx.path().join(format!("f{i:02}"));
                std::fs::write(&path, format!("content {i}")).unwrap();
                path
            })
            .collect();
        let mut memo = DigestMemo::load(memo_dir.path());
        let first = digest_all(&mut memo, &files);
        memo.save().unwrap();

        // Backwards, then every third: each found without a read.
        let mut memo = DigestMemo::load(memo_dir.path());
        let backwards: Vec<PathBuf> = files.iter().rev().cloned().collect();
        let mut got = digest_all(&mut memo, &backwards);
        got.reverse();
        assert_eq!(got, first);
        let sparse: Vec<PathBuf> = files.iter().step_by(3).cloned().collect();
        digest_all(&mut memo, &sparse);
        assert_eq!(memo.bytes_read(), 0);

        // Line 10 damaged, lines 20 and 30 swapped: those three files are
        // read again, the others still come from the memo.
        let memo_file = memo_dir.path().join(MEMO_FILE);
        let text = std::fs::read_to_string(&memo_file).unwrap();
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines[1 + 10] = "damaged".to_owned();
        lines.swap(1 + 20, 1 + 30);
        std::fs::write(&memo_file, lines.join("\n") + "\n").unwrap();
        let mut memo = DigestMemo::load(memo_dir.path());
        assert_eq!(digest_all(&mut memo, &files), first);
        let size = |i: usize| std::fs::metadata(&files[i]).unwrap().len();
        assert!(memo.bytes_read() <= size(10) + size(20) + size(30));
        assert!(memo.bytes_read() >= size(10));
    }

    #[test]
    fn the_xattrs_digest_is_kept_and_asked_for_only_when_the_identity_changes() {
        let ctx = tempfile::tempdir().unwrap();
        let memo_dir = tempfile::tempdir().unwrap();
        let file = ctx.path().join("f");
        std::fs::write(&file, "f").unwrap();
        let xattrs = crate::digest::sha256(b"user.k=v");
        let mut asked = 0;
        let mut ask = |memo: &mut DigestMemo| {
            let open = || File::open(&file).map(Some);
            let made = || {
                asked += 1;
                Ok(Some(xattrs.clone()))
            };
            memo.digests(&file, identity(&file), open, made).unwrap()
        };
        let mut memo = DigestMemo::load(memo_dir.path());
        let first = ask(&mut memo);
        assert_eq!(first.xattrs.as_ref(), Some(&xattrs));
        memo.save().unwrap();
        let mut memo = DigestMemo::load(memo_dir.path());
        assert_eq!(ask(&mut memo), first);
        assert_eq!(asked, 1, "an unchanged file's xattrs are not read");

        // A directory: no content to read, its xattrs kept all the same.
        let dir = ctx.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        let got = memo
            .digests(&dir, identity(&dir), || Ok(None), || Ok(None))
            .unwrap();
        assert_eq!(got.content, crate::digest::sha256(b""));
        assert_eq!(got.xattrs, None);
    }
}
