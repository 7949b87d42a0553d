//! The deterministic layer writer: the same change always gives the same
//! bytes, so the same step gives the same layer digest on every machine.
//!
//! Entries are sorted by path (a directory's opaque marker first among its
//! children), headers are USTAR with fixed fields: no user or group names,
//! no atime/ctime, mtimes in whole seconds and clamped to
//! `SOURCE_DATE_EPOCH` when given. Long names, large ids and xattrs go in
//! PAX records. Files hardlinked to each other within the layer are written
//! once, then as hardlink entries.

use super::error::fs_err;
use super::fsmeta::{self, Xattrs};
use super::hardlinks::Hardlinks;
use super::{LayerError, OPAQUE_MARKER, WHITEOUT_PREFIX};
use crate::file_kind::{FileKind, SpecialFile};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// One path of a change, relative to the tree the change is read from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    /// The path as it now is in the source tree (added or modified).
    Put(PathBuf),
    /// The path was removed: written as a `.wh.<name>` entry.
    Whiteout(PathBuf),
    /// The directory hides all lower content: written as `<dir>/.wh..wh..opq`.
    Opaque(PathBuf),
}

impl Change {
    /// The path the change is about.
    pub fn path(&self) -> &Path {
        match self {
            Change::Put(p) | Change::Whiteout(p) | Change::Opaque(p) => p,
        }
    }

    /// The order of entries in the layer: by path components, with a
    /// directory's opaque marker before its other children.
    fn sort_key(&self) -> Vec<Vec<u8>> {
        let mut key = path_key(self.path());
        match self {
            Change::Put(_) => {}
            Change::Opaque(_) => key.push(Vec::new()),
            Change::Whiteout(_) => {
                if let Some(last) = key.last_mut() {
                    last.splice(0..0, WHITEOUT_PREFIX.bytes());
                }
            }
        }
        key
    }

    /// The entry name in the tar.
    fn entry_name(&self) -> Vec<u8> {
        let path = self.path().as_os_str().as_bytes();
        match self {
            Change::Put(_) => path.to_vec(),
            Change::Opaque(_) => join(path, OPAQUE_MARKER.as_bytes()),
            Change::Whiteout(p) => {
                let parent = p
                    .parent()
                    .map(|p| p.as_os_str().as_bytes())
                    .unwrap_or_default();
                let name = p.file_name().map(OsStrExt::as_bytes).unwrap_or_default();
                join(parent, &[WHITEOUT_PREFIX.as_bytes(), name].concat())
            }
        }
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        name.to_vec()
    } else {
        [dir, b"/", name].concat()
    }
}

/// Settings that change the bytes of a layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// `SOURCE_DATE_EPOCH`: no mtime in the layer is later than this.
    pub source_date_epoch: Option<u64>,
    /// How owners read from a tree are recorded (rootless steps' files
    /// belong to their root, not to the user on disk).
    pub owners: super::owners::OwnerMap,
}

/// One entry of a layer described by its producer (`COPY`, `ADD`) rather
/// than read from a tree: the metadata is the entry's, whatever the
/// content's source file says.
#[derive(Debug)]
pub struct LayerEntry {
    /// Path in the layer: plain relative components only.
    pub path: PathBuf,
    /// What the entry is.
    pub kind: LayerEntryKind,
    /// Permission bits, set-id and sticky included.
    pub mode: u32,
    /// Owner user ID.
    pub uid: u32,
    /// Owner group ID.
    pub gid: u32,
    /// Modification time, seconds since the epoch (clamped by `SOURCE_DATE_EPOCH`).
    pub mtime: i64,
    /// Extended attributes, written as `SCHILY.xattr.*` records.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

/// The kind of a [`LayerEntry`], with what each kind carries.
#[derive(Debug)]
pub enum LayerEntryKind {
    /// A regular file of exactly `size` bytes.
    File {
        /// Its size; content that is shorter is an error, longer is cut.
        size: u64,
        /// Where the bytes come from.
        content: Content,
    },
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink {
        /// The target, stored as is.
        target: PathBuf,
    },
    /// A hardlink to an entry earlier in the same layer.
    Hardlink {
        /// The linked entry's path in the layer.
        target: PathBuf,
    },
    /// A device or named pipe.
    Special(SpecialFile),
}

/// The content of a file entry.
pub enum Content {
    /// Bytes in memory (a heredoc).
    Bytes(Vec<u8>),
    /// A file opened only when its entry is written, so a layer of many
    /// files never holds many descriptors.
    Open(Box<dyn FnOnce() -> io::Result<File> + Send>),
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Content::Bytes(bytes) => write!(f, "Bytes({} bytes)", bytes.len()),
            Content::Open(_) => f.write_str("Open(..)"),
        }
    }
}

/// The order of entries in a layer: by path components.
fn path_key(path: &Path) -> Vec<Vec<u8>> {
    path.components()
        .map(|c| c.as_os_str().as_bytes().to_vec())
        .collect()
}

fn is_plain(path: &Path) -> bool {
    !path.as_os_str().is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Writes `entries` as a layer tar to `out`, sorted by path (a later entry
/// for the same path replaces an earlier one), and returns `out` once the
/// archive is complete.
pub fn write_entries<W: Write>(
    entries: Vec<LayerEntry>,
    out: W,
    options: &WriteOptions,
) -> Result<W, LayerError> {
    let mut keyed = Vec::with_capacity(entries.len());
    for entry in entries {
        if !is_plain(&entry.path) {
            return Err(LayerError::InvalidChangePath(entry.path));
        }
        keyed.push((path_key(&entry.path), entry));
    }
    // Stable sort, then keep the last of each path.
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut writer = Writer::new(out, options);
    let mut iter = keyed.into_iter().peekable();
    while let Some((key, entry)) = iter.next() {
        if iter.peek().is_some_and(|(next, _)| *next == key) {
            continue;
        }
        let name = entry.path.as_os_str().as_bytes().to_vec();
        writer.append_entry(name, entry)?;
    }
    writer.finish()
}

/// Writes `changes`, read from the tree at `source`, as a layer tar to `out`
/// and returns `out` once the archive is complete.
pub fn write_changes<W: Write>(
    source: &Path,
    changes: Vec<Change>,
    out: W,
    options: &WriteOptions,
) -> Result<W, LayerError> {
    let mut keyed: Vec<(Vec<Vec<u8>>, Change)> = Vec::with_capacity(changes.len());
    for change in changes {
        let plain = is_plain(change.path())
            || (change.path().as_os_str().is_empty() && matches!(change, Change::Opaque(_)));
        if !plain {
            return Err(LayerError::InvalidChangePath(change.path().to_path_buf()));
        }
        keyed.push((change.sort_key(), change));
    }
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.dedup_by(|a, b| a.0 == b.0);
    let mut writer = Writer::new(out, options);
    for (_, change) in &keyed {
        writer.write(source, change)?;
    }
    writer.finish()
}

struct Writer<W: Write> {
    builder: ::tar::Builder<W>,
    options: WriteOptions,
    /// The first entry written for each multiply-linked inode.
    links: Hardlinks<Vec<u8>>,
}

/// The largest value an octal USTAR id or time field holds (7 digits / 11 digits).
const USTAR_MAX_ID: u64 = 0o7777777;
const USTAR_NAME_LEN: usize = 100;

impl<W: Write> Writer<W> {
    fn new(out: W, options: &WriteOptions) -> Self {
        Writer {
            builder: ::tar::Builder::new(out),
            options: *options,
            links: Hardlinks::default(),
        }
    }

    fn finish(self) -> Result<W, LayerError> {
        self.builder
            .into_inner()
            .map_err(|source| LayerError::Write {
                action: "finishing the tar",
                source,
            })
    }

    /// The change `change` of the tree at `source`, as the tree has it now.
    fn write(&mut self, source: &Path, change: &Change) -> Result<(), LayerError> {
        let name = change.entry_name();
        let Change::Put(rel) = change else {
            return self.append_marker(&name);
        };
        let full = source.join(rel);
        let meta = fs::symlink_metadata(&full).map_err(fs_err("reading metadata of", &full))?;
        let read_link = || fs::read_link(&full).map_err(fs_err("reading the symlink", &full));
        let rdev = meta.rdev();
        let file_kind = FileKind::from_mode(
            meta.mode(),
            rustix::fs::major(rdev),
            rustix::fs::minor(rdev),
            read_link,
        )?;
        let kind = match file_kind {
            Some(FileKind::File) => {
                match self
                    .links
                    .first_of(meta.dev(), meta.ino(), meta.nlink(), &name)
                {
                    Some(first) => LayerEntryKind::Hardlink {
                        target: PathBuf::from(std::ffi::OsStr::from_bytes(&first)),
                    },
                    None => {
                        let path = full.clone();
                        LayerEntryKind::File {
                            size: meta.len(),
                            content: Content::Open(Box::new(move || {
                                fs::OpenOptions::new()
                                    .read(true)
                                    .custom_flags(libc::O_NOFOLLOW)
                                    .open(path)
                            })),
                        }
                    }
                }
            }
            Some(FileKind::Dir) => LayerEntryKind::Dir,
            Some(FileKind::Symlink { target }) => LayerEntryKind::Symlink { target },
            Some(FileKind::Special(special)) => LayerEntryKind::Special(special),
            // Sockets cannot be carried in a tar; Docker leaves them out too.
            Some(FileKind::Socket) | None => return Ok(()),
        };
        let xattrs: Xattrs =
            fsmeta::read_xattrs(&full).map_err(fs_err("reading xattrs of", &full))?;
        let entry = LayerEntry {
            path: rel.clone(),
            kind,
            mode: meta.mode() & 0o7777,
            uid: self.options.owners.uid(meta.uid()),
            gid: self.options.owners.gid(meta.gid()),
            mtime: meta.mtime(),
            xattrs: xattrs
                .into_iter()
                .filter(|(key, _)| fsmeta::is_image_xattr(key))
                .collect(),
        };
        self.append_entry(name, entry)
    }

    /// Appends one entry named `name` (without a directory's trailing `/`).
    fn append_entry(&mut self, name: Vec<u8>, entry: LayerEntry) -> Result<(), LayerError> {
        let shown = || entry.path.clone();
        let mut header = ::tar::Header::new_ustar();
        let mut pax = BTreeMap::<String, Vec<u8>>::new();
        header.set_mode(entry.mode & 0o7777);
        header.set_size(0);
        for (key, id, set) in [
            (
                "uid",
                u64::from(entry.uid),
                ::tar::Header::set_uid as fn(&mut ::tar::Header, u64),
            ),
            ("gid", u64::from(entry.gid), ::tar::Header::set_gid),
        ] {
            if id > USTAR_MAX_ID {
                pax.insert(key.to_owned(), id.to_string().into_bytes());
                set(&mut header, 0);
            } else {
                set(&mut header, id);
            }
        }
        header.set_mtime(self.mtime(entry.mtime));
        for (key, value) in entry.xattrs {
            pax.insert(format!("SCHILY.xattr.{key}"), value);
        }
        let mut entry_name = name;
        let mut content: Option<(Box<dyn Read>, u64)> = None;
        match entry.kind {
            LayerEntryKind::File {
                size,
                content: body,
            } => {
                header.set_entry_type(::tar::EntryType::Regular);
                header.set_size(size);
                let reader: Box<dyn Read> = match body {
                    Content::Bytes(bytes) => Box::new(io::Cursor::new(bytes)),
                    Content::Open(open) => Box::new(open().map_err(|source| LayerError::Fs {
                        action: "opening",
                        path: shown(),
                        source,
                    })?),
                };
                content = Some((reader, size));
            }
            LayerEntryKind::Hardlink { target } => {
                header.set_entry_type(::tar::EntryType::Link);
                set_link(&mut header, &mut pax, target.as_os_str().as_bytes());
            }
            LayerEntryKind::Dir => {
                header.set_entry_type(::tar::EntryType::Directory);
                entry_name.push(b'/');
            }
            LayerEntryKind::Symlink { target } => {
                header.set_entry_type(::tar::EntryType::Symlink);
                set_link(&mut header, &mut pax, target.as_os_str().as_bytes());
            }
            LayerEntryKind::Special(special) => {
                let (entry_type, device) = match special {
                    SpecialFile::CharDevice { major, minor } => {
                        (::tar::EntryType::Char, Some((major, minor)))
                    }
                    SpecialFile::BlockDevice { major, minor } => {
                        (::tar::EntryType::Block, Some((major, minor)))
                    }
                    SpecialFile::Fifo => (::tar::EntryType::Fifo, None),
                };
                header.set_entry_type(entry_type);
                if let Some((major, minor)) = device {
                    let device_err = |source| LayerError::Fs {
                        action: "recording the device numbers of",
                        path: shown(),
                        source,
                    };
                    header.set_device_major(major).map_err(device_err)?;
                    header.set_device_minor(minor).map_err(device_err)?;
                }
            }
        }
        set_name(&mut header, &mut pax, &entry_name);
        self.append(&header, &pax, content)
    }

    /// A whiteout or opaque marker: an empty regular file, mode 0, owned by root.
    fn append_marker(&mut self, name: &[u8]) -> Result<(), LayerError> {
        let mut header = ::tar::Header::new_ustar();
        let mut pax = BTreeMap::new();
        header.set_entry_type(::tar::EntryType::Regular);
        header.set_mode(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(0);
        set_name(&mut header, &mut pax, name);
        self.append(&header, &pax, None)
    }

    fn append(
        &mut self,
        header: &::tar::Header,
        pax: &BTreeMap<String, Vec<u8>>,
        content: Option<(Box<dyn Read>, u64)>,
    ) -> Result<(), LayerError> {
        let write_err = |source| LayerError::Write {
            action: "appending an entry",
            source,
        };
        if !pax.is_empty() {
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(write_err)?;
        }
        let mut header = header.clone();
        header.set_cksum();
        match content {
            Some((reader, len)) => self
                .builder
                .append(&header, Exact::new(reader, len))
                .map_err(write_err),
            None => self.builder.append(&header, io::empty()).map_err(write_err),
        }
    }

    fn mtime(&self, mtime: i64) -> u64 {
        let mtime = u64::try_from(mtime).unwrap_or(0);
        match self.options.source_date_epoch {
            Some(epoch) => mtime.min(epoch),
            None => mtime,
        }
    }
}

/// Puts `name` in the header, or in a PAX `path` record when it does not fit.
fn set_name(header: &mut ::tar::Header, pax: &mut BTreeMap<String, Vec<u8>>, name: &[u8]) {
    let field = &mut header.as_old_mut().name;
    if name.len() > USTAR_NAME_LEN {
        pax.insert("path".to_owned(), name.to_vec());
    }
    field.fill(0);
    field
        .iter_mut()
        .zip(name)
        .for_each(|(slot, byte)| *slot = *byte);
}

/// Puts a link target in the header, or in a PAX `linkpath` record when it does not fit.
fn set_link(header: &mut ::tar::Header, pax: &mut BTreeMap<String, Vec<u8>>, target: &[u8]) {
    let field = &mut header.as_old_mut().linkname;
    if target.len() > USTAR_NAME_LEN {
        pax.insert("linkpath".to_owned(), target.to_vec());
    }
    field.fill(0);
    field
        .iter_mut()
        .zip(target)
        .for_each(|(slot, byte)| *slot = *byte);
}

/// Reads exactly the size the header announced; a file that shrank while
/// being read is an error instead of a corrupt archive.
struct Exact<R> {
    inner: io::Take<R>,
    remaining: u64,
}

impl<R: Read> Exact<R> {
    fn new(inner: R, len: u64) -> Self {
        Self {
            inner: inner.take(len),
            remaining: len,
        }
    }
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.remaining > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while it was being written to the layer",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}
