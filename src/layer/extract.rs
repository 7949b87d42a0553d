//! Applying an (uncompressed) OCI layer tar stream onto a snapshot directory.
//!
//! The tar crate only parses the stream; placing entries is ours, because
//! every path must stay inside the root whatever the tar says. Each entry's
//! parent directory is opened through [`Root`] (`openat2` +
//! `RESOLVE_IN_ROOT`), and the entry is made with a `*at` call on that fd
//! and its final name, never following a symlink there. `..` and absolute
//! paths, symlinked parents and absolute symlinks therefore all resolve
//! inside the root, as they would in a chroot; `..` that climbs above the
//! root is refused with the entry's name.

use super::fsmeta::{self, OverlayXattrs};
use super::resolve::{self, InRootPath, Root};
use super::{LayerError, OPAQUE_MARKER, Refusal, WHITEOUT_PREFIX};
use crate::digest::HashingReader;
use oci_spec::image::Digest;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{self as rfs, AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What to do with the whiteouts of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutStyle {
    /// The root already holds the lower layers: remove what a whiteout names
    /// and empty opaque directories (except what this layer itself wrote).
    Apply,
    /// The root holds this layer alone and will be an overlay lowerdir
    /// above the lower layers' snapshots: keep whiteouts as 0/0 character
    /// devices and opaque directories as the `opaque=y` xattr.
    Overlay(OverlayXattrs),
}

/// Whose ownership the extracted files get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// The uid/gid the tar records (extracting as root).
    Preserve,
    /// The recorded ids when both lie in these ranges (rootless: the ids
    /// mapped into the user namespace); other entries keep the extracting
    /// user's ids and are reported as warnings.
    Within {
        /// The uids that can be set.
        uids: Range<u64>,
        /// The gids that can be set.
        gids: Range<u64>,
    },
}

/// How to extract a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractOptions {
    /// What whiteouts become.
    pub whiteouts: WhiteoutStyle,
    /// Which owners are set.
    pub ownership: Ownership,
}

/// Something the extractor could not reproduce exactly and left out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ExtractWarning {
    /// A device node that cannot be created without privilege.
    #[error("`{entry}`: device node not created (no permission to mknod)")]
    DeviceSkipped {
        /// The entry's path in the tar.
        entry: String,
    },
    /// An owner outside what may be set; the entry keeps the extracting user's ids.
    #[error("`{entry}`: owner {uid}:{gid} not set (outside the mapped ids)")]
    OwnerNotSet {
        /// The entry's path in the tar.
        entry: String,
        /// The recorded uid.
        uid: u64,
        /// The recorded gid.
        gid: u64,
    },
    /// An extended attribute this process or filesystem may not set.
    #[error("`{entry}`: xattr `{name}` not set ({reason})")]
    XattrSkipped {
        /// The entry's path in the tar.
        entry: String,
        /// The attribute's name.
        name: String,
        /// The system's refusal.
        reason: String,
    },
    /// An entry type a layer should not contain (tape volume labels and the like).
    #[error("`{entry}`: entry type {type_byte:#04x} ignored")]
    UnsupportedEntryType {
        /// The entry's path in the tar.
        entry: String,
        /// The tar type flag.
        type_byte: u8,
    },
}

/// What an extraction did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExtractReport {
    /// SHA-256 of the whole uncompressed stream: the layer's diff ID.
    pub diff_id: Digest,
    /// How many entries were applied (whiteouts included).
    pub entries: u64,
    /// What was left out.
    pub warnings: Vec<ExtractWarning>,
}

/// Applies the uncompressed layer tar read from `reader` onto the directory
/// `root`. The stream is read to its end so the diff ID covers every byte.
pub fn extract(
    reader: impl Read,
    root: &Path,
    options: &ExtractOptions,
) -> Result<ExtractReport, LayerError> {
    extract_above(reader, root, options, &[])
}

/// [`extract`] into a root that overlayfs will stack above the snapshot
/// directories `lowers` (topmost first). A parent directory the layer
/// leaves out (OCI allows it) takes the mode, owner, times and image xattrs
/// of the same directory in the topmost lower that shows one, as
/// containerd's unpack on top of the parent gives, so that it does not hide
/// that directory's metadata (`/tmp` 1777 and the like); one no lower
/// shows is 0:0 0755, as Docker makes it.
pub fn extract_above(
    reader: impl Read,
    root: &Path,
    options: &ExtractOptions,
    lowers: &[PathBuf],
) -> Result<ExtractReport, LayerError> {
    let root_dir = Root::open(root).map_err(|source| LayerError::Fs {
        action: "opening the extraction root",
        path: root.to_path_buf(),
        source,
    })?;
    let mut extractor = Extractor {
        root: root_dir,
        options,
        lowers,
        written: HashSet::new(),
        dir_times: Vec::new(),
        kept_times: HashSet::new(),
        warnings: Vec::new(),
    };
    let mut archive = tar::Archive::new(HashingReader::new(reader));
    let mut entries: u64 = 0;
    let mut last = String::new();
    {
        let read_error = |after: &str, source| LayerError::ReadTar {
            after: after.to_owned(),
            source,
        };
        let iter = archive.entries().map_err(|e| read_error(&last, e))?;
        for entry in iter {
            let mut entry = entry.map_err(|e| read_error(&last, e))?;
            last = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            extractor.apply(&mut entry, &last)?;
            entries += 1;
        }
    }
    extractor.restore_dir_times()?;
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|source| LayerError::ReadTar {
        after: last.clone(),
        source,
    })?;
    let (_, diff_id, _) = rest.finish();
    Ok(ExtractReport {
        diff_id,
        entries,
        warnings: extractor.warnings,
    })
}

/// Ownership, permissions, time and xattrs of one entry, from its header and PAX records.
struct EntryMeta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: Timespec,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl EntryMeta {
    fn read<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Self, LayerError> {
        let bad = |source| LayerError::ReadTar {
            after: name.to_owned(),
            source,
        };
        let header = entry.header();
        let fields = header.as_old();
        let mut meta = EntryMeta {
            mode: numeric(header.mode().map(u64::from), &fields.mode).map_err(bad)? as u32 & 0o7777,
            uid: numeric(header.uid(), &fields.uid).map_err(bad)?,
            gid: numeric(header.gid(), &fields.gid).map_err(bad)?,
            mtime: Timespec {
                tv_sec: i64::try_from(numeric(header.mtime(), &fields.mtime).map_err(bad)?)
                    .unwrap_or(i64::MAX),
                tv_nsec: 0,
            },
            xattrs: Vec::new(),
        };
        if let Some(pax) = entry.pax_extensions().map_err(bad)? {
            for record in pax {
                let record = record.map_err(bad)?;
                let Ok(key) = record.key() else { continue };
                if let Some(xattr) = key.strip_prefix("SCHILY.xattr.") {
                    // A crafted layer's overlay or kernel xattrs never reach
                    // a snapshot or an export.
                    if fsmeta::is_image_xattr(xattr) {
                        meta.xattrs
                            .push((xattr.to_owned(), record.value_bytes().to_vec()));
                    }
                } else if key == "mtime" {
                    if let Some(mtime) = record.value().ok().and_then(parse_pax_time) {
                        meta.mtime = mtime;
                    }
                }
            }
        }
        Ok(meta)
    }

    fn times(&self) -> Timestamps {
        times_of(self.mtime)
    }
}

/// A numeric header field as Go's `archive/tar` (BuildKit, containerd)
/// reads it: one left empty (all NUL or spaces, as some tools write) is 0.
fn numeric(parsed: io::Result<u64>, field: &[u8]) -> io::Result<u64> {
    if field.iter().all(|b| *b == 0 || *b == b' ') {
        return Ok(0);
    }
    parsed
}

/// Parses a PAX time (`seconds[.fraction]`, possibly negative).
fn parse_pax_time(value: &str) -> Option<Timespec> {
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    let tv_sec: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut tv_nsec: i64 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    for _ in digits.len()..9 {
        tv_nsec *= 10;
    }
    if value.starts_with('-') && tv_nsec > 0 {
        return Some(Timespec {
            tv_sec: tv_sec - 1,
            tv_nsec: 1_000_000_000 - tv_nsec,
        });
    }
    Some(Timespec { tv_sec, tv_nsec })
}

/// The state of one extraction.
struct Extractor<'o> {
    root: Root,
    options: &'o ExtractOptions,
    /// The snapshots `root` is stacked above, topmost first.
    lowers: &'o [PathBuf],
    /// Paths this layer wrote: its own whiteouts never remove them.
    written: HashSet<InRootPath>,
    /// Directory mtimes, restored once all their children exist.
    dir_times: Vec<(InRootPath, Timestamps)>,
    /// Directories this layer changes below without naming them: their
    /// mtime is already in `dir_times`, as it was before the layer.
    kept_times: HashSet<InRootPath>,
    warnings: Vec<ExtractWarning>,
}

/// Wraps an I/O error with the entry it concerns.
fn at<'a>(entry: &'a str, action: &'static str) -> impl FnOnce(io::Error) -> LayerError + 'a {
    move |source| LayerError::Apply {
        entry: entry.to_owned(),
        action,
        source,
    }
}

fn refused(entry: &str, reason: Refusal) -> LayerError {
    LayerError::Refused {
        entry: entry.to_owned(),
        reason,
    }
}

impl Extractor<'_> {
    fn apply<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        name: &str,
    ) -> Result<(), LayerError> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        let path = InRootPath::normalize(Path::new(OsStr::from_bytes(&raw)))
            .ok_or_else(|| refused(name, Refusal::PathEscapes))?;
        let meta = EntryMeta::read(entry, name)?;
        let Some((parent, file_name)) = path.split() else {
            if !kind.is_dir() {
                return Err(refused(name, Refusal::NotADirectoryAtRoot));
            }
            let fd = self
                .root
                .open_dir(&path, OFlags::RDONLY)
                .map_err(at(name, "opening the root"))?;
            self.set_meta_fd(&fd, &meta, name)?;
            self.dir_times.push((path.clone(), meta.times()));
            self.written.insert(path);
            return Ok(());
        };
        let file_name = file_name.to_os_string();
        if let Some(target) = file_name
            .as_bytes()
            .strip_prefix(WHITEOUT_PREFIX.as_bytes())
        {
            return self.whiteout(&parent, OsStr::from_bytes(target), name);
        }
        self.keep_dir_time(&parent, name)?;
        let dir = self.create_dirs(&parent, name, "creating its parent directory")?;
        let existing =
            resolve::stat_at(&dir, &file_name).map_err(at(name, "inspecting what is there"))?;
        let keep_dir = kind.is_dir()
            && existing.is_some_and(|s| FileType::from_raw_mode(s.st_mode) == FileType::Directory);
        if existing.is_some() && !keep_dir {
            resolve::remove_all_at(&dir, &file_name)
                .map_err(at(name, "removing what it replaces"))?;
        }
        let file_name = file_name.as_os_str();
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let fd = rfs::openat(
                    &dir,
                    file_name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| at(name, "creating the file")(e.into()))?;
                let mut file = File::from(fd);
                io::copy(entry, &mut file).map_err(at(name, "writing the file's content"))?;
                self.set_meta_fd(&file, &meta, name)?;
                rfs::futimens(&file, &meta.times())
                    .map_err(|e| at(name, "setting its mtime")(e.into()))?;
            }
            tar::EntryType::Directory => {
                if !keep_dir {
                    rfs::mkdirat(&dir, file_name, Mode::from_raw_mode(0o700))
                        .map_err(|e| at(name, "creating the directory")(e.into()))?;
                }
                let fd = rfs::openat(
                    &dir,
                    file_name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| at(name, "opening the directory")(e.into()))?;
                self.set_meta_fd(&fd, &meta, name)?;
                self.dir_times.push((path.clone(), meta.times()));
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| refused(name, Refusal::NoLinkTarget))?;
                rfs::symlinkat(OsStr::from_bytes(&target), &dir, file_name)
                    .map_err(|e| at(name, "creating the symlink")(e.into()))?;
                self.set_owner_at(&dir, file_name, &meta, name)?;
                let proc_path = proc_fd_path(&dir).join(file_name);
                for (key, value) in &meta.xattrs {
                    let result = fsmeta::set_xattr_nofollow(&proc_path, key, value);
                    self.xattr_result(result, key, name)?;
                }
                rfs::utimensat(&dir, file_name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| at(name, "setting its mtime")(e.into()))?;
            }
            tar::EntryType::Link => self.hardlink(entry, &dir, file_name, name)?,
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                if !self.special_file(entry, &dir, file_name, &meta, name)? {
                    return Ok(());
                }
            }
            other => {
                self.warnings.push(ExtractWarning::UnsupportedEntryType {
                    entry: name.to_owned(),
                    type_byte: other.as_byte(),
                });
                return Ok(());
            }
        }
        self.written.insert(path);
        Ok(())
    }

    /// A hardlink to an entry already in the root; its target is resolved
    /// inside the root like any path, and must exist.
    fn hardlink<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        dir: &OwnedFd,
        file_name: &OsStr,
        name: &str,
    ) -> Result<(), LayerError> {
        let raw = entry
            .link_name_bytes()
            .ok_or_else(|| refused(name, Refusal::NoLinkTarget))?;
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let target = InRootPath::normalize(Path::new(OsStr::from_bytes(&raw)))
            .ok_or_else(|| refused(name, Refusal::LinkTargetEscapes(shown.clone())))?;
        let missing = || refused(name, Refusal::LinkTargetMissing(shown.clone()));
        let (target_parent, target_name) = target.split().ok_or_else(missing)?;
        let target_dir = match self.root.open_dir(&target_parent, OFlags::PATH) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                return Err(missing());
            }
            Err(e) => return Err(at(name, "opening the hardlink target's directory")(e)),
        };
        match rfs::linkat(&target_dir, target_name, dir, file_name, AtFlags::empty()) {
            Ok(()) => Ok(()),
            Err(Errno::NOENT) => Err(missing()),
            Err(e) => Err(at(name, "creating the hardlink")(e.into())),
        }
    }

    /// A device node or fifo; `false` when a device was skipped for lack of privilege.
    fn special_file<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        dir: &OwnedFd,
        file_name: &OsStr,
        meta: &EntryMeta,
        name: &str,
    ) -> Result<bool, LayerError> {
        let header = entry.header();
        let bad = |source| LayerError::ReadTar {
            after: name.to_owned(),
            source,
        };
        let (file_type, dev) = match header.entry_type() {
            tar::EntryType::Fifo => (FileType::Fifo, 0),
            kind => {
                let major = header.device_major().map_err(bad)?.unwrap_or(0);
                let minor = header.device_minor().map_err(bad)?.unwrap_or(0);
                let file_type = if kind == tar::EntryType::Char {
                    FileType::CharacterDevice
                } else {
                    FileType::BlockDevice
                };
                (file_type, rfs::makedev(major, minor))
            }
        };
        match rfs::mknodat(dir, file_name, file_type, Mode::from_raw_mode(0o600), dev) {
            Ok(()) => {}
            Err(Errno::PERM) if file_type != FileType::Fifo => {
                self.warnings.push(ExtractWarning::DeviceSkipped {
                    entry: name.to_owned(),
                });
                return Ok(false);
            }
            Err(e) => return Err(at(name, "creating the special file")(e.into())),
        }
        self.set_owner_at(dir, file_name, meta, name)?;
        rfs::chmodat(
            dir,
            file_name,
            Mode::from_raw_mode(meta.mode),
            AtFlags::empty(),
        )
        .map_err(|e| at(name, "setting its mode")(e.into()))?;
        rfs::utimensat(dir, file_name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| at(name, "setting its mtime")(e.into()))?;
        Ok(true)
    }

    /// `.wh.<target>` in `parent`, or the opaque marker when `target` is `.wh..opq`.
    fn whiteout(
        &mut self,
        parent: &InRootPath,
        target: &OsStr,
        name: &str,
    ) -> Result<(), LayerError> {
        let opaque_suffix = &OPAQUE_MARKER[WHITEOUT_PREFIX.len()..];
        if target == OsStr::new(opaque_suffix) {
            self.keep_dir_time(parent, name)?;
            return self.opaque(parent, name);
        }
        if target.as_bytes().starts_with(WHITEOUT_PREFIX.as_bytes()) {
            // Other `.wh..wh.*` names are AUFS bookkeeping, meaningless here.
            return Ok(());
        }
        if target.is_empty() || target == "." || target == ".." {
            return Err(refused(name, Refusal::InvalidWhiteout));
        }
        self.keep_dir_time(parent, name)?;
        let hidden = parent.join(target);
        let ours = self.written.contains(&hidden);
        match self.options.whiteouts {
            WhiteoutStyle::Apply => {
                if ours {
                    return Ok(());
                }
                let dir = match self.root.open_dir(parent, OFlags::PATH) {
                    Ok(fd) => fd,
                    Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                        return Ok(());
                    }
                    Err(e) => return Err(at(name, "opening the whiteout's directory")(e)),
                };
                resolve::remove_all_at(&dir, target)
                    .map_err(at(name, "removing the whited-out path"))
            }
            WhiteoutStyle::Overlay(_) => {
                if ours {
                    return Ok(());
                }
                let dir = self.create_dirs(parent, name, "creating the whiteout's directory")?;
                resolve::remove_all_at(&dir, target)
                    .map_err(at(name, "replacing the whited-out path"))?;
                rfs::mknodat(&dir, target, FileType::CharacterDevice, Mode::empty(), 0)
                    .map_err(|e| at(name, "creating the overlay whiteout")(e.into()))
            }
        }
    }

    /// Marks `dir` opaque: lower content below it is hidden.
    fn opaque(&mut self, dir: &InRootPath, name: &str) -> Result<(), LayerError> {
        match self.options.whiteouts {
            WhiteoutStyle::Apply => {
                let fd = match self.root.open_dir(dir, OFlags::RDONLY) {
                    Ok(fd) => fd,
                    Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                        return Ok(());
                    }
                    Err(e) => return Err(at(name, "opening the opaque directory")(e)),
                };
                let written = &self.written;
                resolve::remove_children(&fd, |child| written.contains(&dir.join(child)))
                    .map_err(at(name, "emptying the opaque directory"))
            }
            WhiteoutStyle::Overlay(xattrs) => {
                self.create_dirs(dir, name, "creating the opaque directory")?;
                let fd = self
                    .root
                    .open_dir(dir, OFlags::RDONLY)
                    .map_err(at(name, "opening the opaque directory"))?;
                fsmeta::set_xattr(&fd, xattrs.opaque_name(), b"y")
                    .map_err(at(name, "marking the directory opaque"))
            }
        }
    }

    /// Keeps the mtime of the directory `dir` (or, when it is missing, of
    /// its nearest existing parent) as it was before this layer, unless the
    /// layer names that directory itself: a layer that changes `etc/hello`
    /// without an `etc/` entry leaves `etc` as the layers below made it, as
    /// a parent taken from the lower snapshots does, so that applying the
    /// same layers twice gives the same tree.
    fn keep_dir_time(&mut self, dir: &InRootPath, name: &str) -> Result<(), LayerError> {
        let mut current = dir.clone();
        loop {
            if self.written.contains(&current) || !self.kept_times.insert(current.clone()) {
                return Ok(());
            }
            match self.root.open_dir(&current, OFlags::PATH) {
                Ok(fd) => {
                    let stat =
                        rfs::fstat(&fd).map_err(|e| at(name, "inspecting its parent")(e.into()))?;
                    self.dir_times.push((current, times_of(stat_mtime(&stat))));
                    return Ok(());
                }
                Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                    match current.split() {
                        Some((parent, _)) => current = parent,
                        None => return Ok(()),
                    }
                }
                // Not a directory: creating below it reports that.
                Err(_) => return Ok(()),
            }
        }
    }

    /// Opens the directory `path` as an `O_PATH` dirfd, creating what is
    /// missing of it; each directory made takes its metadata from the lower
    /// snapshots (see [`extract_above`]).
    fn create_dirs(
        &mut self,
        path: &InRootPath,
        name: &str,
        action: &'static str,
    ) -> Result<OwnedFd, LayerError> {
        let missing = |e: &io::Error| e.raw_os_error() == Some(Errno::NOENT.raw_os_error());
        match self.root.open_dir(path, OFlags::PATH) {
            Ok(fd) => return Ok(fd),
            Err(e) if !missing(&e) => return Err(at(name, action)(e)),
            Err(_) => {}
        }
        if !self.lowers.is_empty() {
            let mut current = InRootPath::default();
            for component in path.as_path().components() {
                current = current.join(component.as_os_str());
                match self.root.open_nofollow(&current, OFlags::PATH) {
                    Err(e) if missing(&e) => {}
                    _ => continue, // there, or an error the creation below reports
                }
                let fd = self
                    .root
                    .create_dir_all(&current)
                    .and_then(|_| self.root.open_dir(&current, OFlags::RDONLY))
                    .map_err(at(name, action))?;
                if let Some(meta) = lower_dir(self.lowers, &current)
                    .map_err(at(name, "reading the lower snapshots"))?
                {
                    self.set_meta_fd(&fd, &meta, name)?;
                    self.dir_times.push((current.clone(), meta.times()));
                }
            }
        }
        self.root.create_dir_all(path).map_err(at(name, action))
    }

    /// The ids to set for `meta`, or `None` (with a warning) when they may not be set.
    fn owner(&mut self, meta: &EntryMeta, name: &str) -> Option<(Uid, Gid)> {
        let allowed = match &self.options.ownership {
            Ownership::Preserve => true,
            Ownership::Within { uids, gids } => {
                uids.contains(&meta.uid) && gids.contains(&meta.gid)
            }
        };
        let ids = (u32::try_from(meta.uid).ok(), u32::try_from(meta.gid).ok());
        match (allowed, ids) {
            (true, (Some(uid), Some(gid))) => Some((Uid::from_raw(uid), Gid::from_raw(gid))),
            _ => {
                self.warnings.push(ExtractWarning::OwnerNotSet {
                    entry: name.to_owned(),
                    uid: meta.uid,
                    gid: meta.gid,
                });
                None
            }
        }
    }

    /// Owner, then mode (so setuid bits survive the chown), then xattrs, on an open file or directory.
    fn set_meta_fd(
        &mut self,
        fd: impl AsFd,
        meta: &EntryMeta,
        name: &str,
    ) -> Result<(), LayerError> {
        let fd = fd.as_fd();
        if let Some((uid, gid)) = self.owner(meta, name) {
            rfs::fchown(fd, Some(uid), Some(gid))
                .map_err(|e| at(name, "setting its owner")(e.into()))?;
        }
        rfs::fchmod(fd, Mode::from_raw_mode(meta.mode))
            .map_err(|e| at(name, "setting its mode")(e.into()))?;
        for (key, value) in &meta.xattrs {
            let result = fsmeta::set_xattr(fd, key, value);
            self.xattr_result(result, key, name)?;
        }
        Ok(())
    }

    /// Owner of `file_name` in `dir` itself (a symlink or special file).
    fn set_owner_at(
        &mut self,
        dir: &OwnedFd,
        file_name: &OsStr,
        meta: &EntryMeta,
        name: &str,
    ) -> Result<(), LayerError> {
        if let Some((uid, gid)) = self.owner(meta, name) {
            rfs::chownat(
                dir,
                file_name,
                Some(uid),
                Some(gid),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| at(name, "setting its owner")(e.into()))?;
        }
        Ok(())
    }

    /// Turns a refused xattr (no privilege, no support) into a warning.
    fn xattr_result(
        &mut self,
        result: io::Result<()>,
        key: &str,
        name: &str,
    ) -> Result<(), LayerError> {
        match result {
            Ok(()) => Ok(()),
            Err(e)
                if [Errno::PERM, Errno::NOTSUP, Errno::OPNOTSUPP]
                    .iter()
                    .any(|errno| e.raw_os_error() == Some(errno.raw_os_error())) =>
            {
                self.warnings.push(ExtractWarning::XattrSkipped {
                    entry: name.to_owned(),
                    name: key.to_owned(),
                    reason: e.to_string(),
                });
                Ok(())
            }
            Err(e) => Err(at(name, "setting an xattr")(e)),
        }
    }

    /// Sets directory mtimes last, since creating their children changed
    /// them. A directory that a later entry replaced is skipped.
    fn restore_dir_times(&self) -> Result<(), LayerError> {
        for (path, times) in &self.dir_times {
            let shown = path.as_path().to_string_lossy();
            let fd = match self
                .root
                .open_nofollow(path, OFlags::RDONLY | OFlags::DIRECTORY)
            {
                Ok(fd) => fd,
                Err(e)
                    if [Errno::NOENT, Errno::NOTDIR, Errno::LOOP]
                        .iter()
                        .any(|errno| e.raw_os_error() == Some(errno.raw_os_error())) =>
                {
                    continue;
                }
                Err(e) => return Err(at(&shown, "reopening the directory")(e)),
            };
            rfs::futimens(&fd, times).map_err(|e| at(&shown, "setting its mtime")(e.into()))?;
        }
        Ok(())
    }
}

/// The metadata of the directory `path` as the stack of `lowers` (topmost
/// first) shows it, as overlayfs would: from the topmost lower that has it,
/// unless a higher one hides it (a whiteout or other file there or at a
/// parent, or an opaque parent). Links inside a lower resolve in that lower.
fn lower_dir(lowers: &[PathBuf], path: &InRootPath) -> io::Result<Option<EntryMeta>> {
    for lower in lowers {
        let root = Root::open(lower)?;
        let mut current = InRootPath::default();
        let mut parent = root.open_dir(&current, OFlags::PATH)?;
        let mut hides_below = false;
        let mut components = path.as_path().components().peekable();
        while let Some(component) = components.next() {
            let file_name = component.as_os_str();
            current = current.join(file_name);
            let Some(stat) = resolve::stat_at(&parent, file_name)? else {
                break; // not in this lower
            };
            if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
                return Ok(None); // hidden by a whiteout or a file
            }
            let at_path = proc_fd_path(&parent).join(file_name);
            if components.peek().is_none() {
                let xattrs = fsmeta::read_xattrs(&at_path)?
                    .into_iter()
                    .filter(|(key, _)| fsmeta::is_image_xattr(key))
                    .collect();
                return Ok(Some(EntryMeta {
                    mode: stat.st_mode & 0o7777,
                    uid: u64::from(stat.st_uid),
                    gid: u64::from(stat.st_gid),
                    mtime: stat_mtime(&stat),
                    xattrs,
                }));
            }
            hides_below |= fsmeta::is_opaque_dir(&at_path)?;
            parent = root.open_nofollow(&current, OFlags::PATH | OFlags::DIRECTORY)?;
        }
        if hides_below {
            return Ok(None);
        }
    }
    Ok(None)
}

/// The times set on what is extracted: `mtime` for both (a layer keeps
/// no access time).
fn times_of(mtime: Timespec) -> Timestamps {
    Timestamps {
        last_access: mtime,
        last_modification: mtime,
    }
}

/// The modification time `stat` gives.
fn stat_mtime(stat: &rfs::Stat) -> Timespec {
    Timespec {
        tv_sec: stat.st_mtime,
        tv_nsec: i64::try_from(stat.st_mtime_nsec).unwrap_or(0),
    }
}

/// The `/proc/self/fd` path of an open directory, for calls that only take paths.
fn proc_fd_path(fd: &OwnedFd) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}
