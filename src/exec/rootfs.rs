//! A read-only view of a root filesystem that `COPY` and `ADD` read from
//! and look at: a plain directory (the build context, a stage's root) or a
//! stack of snapshot directories in overlay form (lower dirs top-first,
//! whiteouts as 0/0 character devices, opaque directories marked by the
//! `trusted.overlay.opaque` or `user.overlay.opaque` xattr).
//!
//! Paths resolve as inside a chroot: `..` stops at the root and symlinks,
//! absolute ones too, resolve against the root. Every host file system call
//! goes through `openat2` on a layer's directory with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS`, so no path, and no link swapped in meanwhile, can
//! lead outside the layer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags, StatxFlags};
use rustix::io::Errno;
use smallvec::{SmallVec, smallvec};

use crate::file_kind::FileKind;

/// Symlinks followed in one lookup before it fails, as Linux's `MAXSYMLINKS`.
pub(super) const MAX_SYMLINKS: usize = 40;

const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// Why a lookup in a root filesystem failed.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// A host file system call failed.
    #[error("{action} `/{}`: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path inside the root.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A path component that must be a directory is not one.
    #[error("`/{}` is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// Too many symlinks (or a loop) while resolving a path.
    #[error("too many levels of symbolic links resolving `{}`", .0.display())]
    SymlinkLoop(PathBuf),
}

/// The metadata of a file as found in one layer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeStat {
    /// Permission bits, set-id and sticky included.
    pub mode: u32,
    /// Owner user ID.
    pub uid: u32,
    /// Owner group ID.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Modification time: seconds and nanoseconds.
    pub mtime: (i64, u32),
    /// Change time: seconds and nanoseconds (for the digest memo).
    pub ctime: (i64, u32),
    /// Device of the host file (for the digest memo and hardlinks).
    pub dev: u64,
    /// Inode of the host file.
    pub ino: u64,
    /// Number of hardlinks of the host file.
    pub nlink: u64,
}

/// A file found in the view.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Node {
    /// Its path inside the root, plain components only (empty is the root).
    pub path: PathBuf,
    /// What it is.
    pub kind: FileKind,
    /// Its metadata, from the topmost layer that has it.
    pub stat: NodeStat,
    /// The layers that hold it, top-first: one, or several for a merged
    /// directory (kept inline: a context has a node per file).
    layers: SmallVec<[usize; 2]>,
}

/// One directory of the view.
#[derive(Debug)]
struct Layer {
    host: PathBuf,
    fd: OwnedFd,
}

/// A read-only root filesystem: a plain directory or an overlay stack.
#[derive(Debug)]
pub struct RootfsView {
    layers: Vec<Layer>,
    overlay: bool,
    /// When set, only these paths exist (the context after `.dockerignore`),
    /// as the context walk found them: a lookup or a listing answers from
    /// here without looking on disk again.
    visible: Option<Visible>,
}

/// The context as the walk found it.
#[derive(Debug)]
struct Visible {
    /// The walk's entries.
    entries: Vec<crate::context::Entry>,
    /// Each directory's entries, as indexes into `entries` in byte order of
    /// their names, by the directory's path (empty for the root).
    children: HashMap<PathBuf, Vec<usize>>,
}

impl Visible {
    /// The view of the walk's `entries`.
    fn new(entries: Vec<crate::context::Entry>) -> Self {
        let mut children: HashMap<PathBuf, Vec<usize>> = HashMap::new();
        // The walk gives a directory's entries in a row but for what is
        // beneath them: the list being filled only changes at a new parent.
        let mut run: Option<(&Path, Vec<usize>)> = None;
        for (at, entry) in entries.iter().enumerate() {
            let parent = entry.path.parent().unwrap_or(Path::new(""));
            if run.as_ref().is_none_or(|(dir, _)| *dir != parent) {
                if let Some((dir, list)) = run.take() {
                    children.insert(dir.to_path_buf(), list);
                }
                run = Some((parent, children.remove(parent).unwrap_or_default()));
            }
            if let Some((_, list)) = &mut run {
                list.push(at);
            }
        }
        if let Some((dir, list)) = run {
            children.insert(dir.to_path_buf(), list);
        }
        for list in children.values_mut() {
            list.sort_unstable_by(|&a, &b| name_of(&entries, a).cmp(name_of(&entries, b)));
        }
        Self { entries, children }
    }

    /// The entry `name` of the directory at `dir`.
    fn child(&self, dir: &Path, name: &OsStr) -> Option<&crate::context::Entry> {
        let list = self.children.get(dir)?;
        let at = list
            .binary_search_by(|&at| name_of(&self.entries, at).cmp(name.as_bytes()))
            .ok()?;
        self.entries.get(*list.get(at)?)
    }

    /// The entries of the directory at `dir`, in name order.
    fn list(&self, dir: &Path) -> impl Iterator<Item = &crate::context::Entry> {
        self.children
            .get(dir)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter_map(|&at| self.entries.get(at))
    }
}

/// The name of entry `at` of `entries`, as bytes.
fn name_of(entries: &[crate::context::Entry], at: usize) -> &[u8] {
    entries
        .get(at)
        .and_then(|e| e.path.file_name())
        .map_or(&[][..], OsStr::as_bytes)
}

/// A node of the context view for the walk's `entry`.
fn context_node(entry: &crate::context::Entry) -> Node {
    Node {
        path: entry.path.clone(),
        kind: entry.kind.clone(),
        stat: context_stat(entry),
        layers: smallvec![0],
    }
}

impl RootfsView {
    /// The directory `dir` as a root filesystem.
    pub fn dir(dir: &Path) -> Result<Self, RootfsError> {
        Ok(Self {
            layers: vec![open_layer(dir)?],
            overlay: false,
            visible: None,
        })
    }

    /// The build context at `dir`, where only `entries` (the walk's result
    /// after `.dockerignore`) exist, with the metadata the walk read: the
    /// walk opened every directory beneath `dir` without following links,
    /// so its entries are the context's, and a file's metadata is read once.
    pub fn context(dir: &Path, entries: Vec<crate::context::Entry>) -> Result<Self, RootfsError> {
        let mut view = Self::dir(dir)?;
        view.visible = Some(Visible::new(entries));
        Ok(view)
    }

    /// An overlay stack of snapshot directories, topmost first.
    pub fn layers(top_first: &[PathBuf]) -> Result<Self, RootfsError> {
        Ok(Self {
            layers: top_first
                .iter()
                .map(|p| open_layer(p))
                .collect::<Result<_, _>>()?,
            overlay: true,
            visible: None,
        })
    }

    /// The same files without the `.dockerignore` filter: to tell a user
    /// that a missing source exists but was excluded.
    pub fn unfiltered(&self) -> Result<Self, RootfsError> {
        let layers = self
            .layers
            .iter()
            .map(|l| open_layer(&l.host))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            layers,
            overlay: self.overlay,
            visible: None,
        })
    }

    /// Where the file `node` is on the host (its topmost layer's copy):
    /// the key of the content digest memo.
    pub fn host_path(&self, node: &Node) -> Result<PathBuf, RootfsError> {
        Ok(self.top_layer(node)?.host.join(&node.path))
    }

    /// The root directory.
    pub fn root(&self) -> Result<Node, RootfsError> {
        let layers: SmallVec<[usize; 2]> = (0..self.layers.len()).collect();
        let top = layers.first().copied().unwrap_or_default();
        let stat = self
            .stat_in(top, Path::new(""))?
            .ok_or_else(|| RootfsError::Io {
                action: "reading",
                path: PathBuf::new(),
                source: io::Error::from(io::ErrorKind::NotFound),
            })?;
        Ok(Node {
            path: PathBuf::new(),
            kind: FileKind::Dir,
            stat: stat.1.stat,
            layers,
        })
    }

    /// Resolves `path` (absolute or relative to the root; `..` is clamped at
    /// the root). Symlinks on the way are followed inside the root; a final
    /// symlink is followed when `follow` is set. `None` when nothing is there.
    pub fn lookup(&self, path: &Path, follow: bool) -> Result<Option<Node>, RootfsError> {
        let mut pending: Vec<OsString> = components_reversed(path);
        let mut stack: Vec<Node> = vec![self.root()?];
        let mut links = 0;
        while let Some(name) = pending.pop() {
            if name == ".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let dir = stack
                .last()
                .ok_or_else(|| RootfsError::NotADirectory(PathBuf::new()))?;
            if dir.kind != FileKind::Dir {
                return Err(RootfsError::NotADirectory(dir.path.clone()));
            }
            let Some(child) = self.child(dir, &name)? else {
                return Ok(None);
            };
            if let FileKind::Symlink { target } = &child.kind {
                if follow || !pending.is_empty() {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(RootfsError::SymlinkLoop(path.to_path_buf()));
                    }
                    if target.is_absolute() {
                        stack.truncate(1);
                    }
                    pending.extend(components_reversed(target));
                    continue;
                }
            }
            stack.push(child);
        }
        Ok(stack.pop())
    }

    /// The entries of the directory `dir`, in byte order of their names.
    pub fn read_dir(&self, dir: &Node) -> Result<Vec<Node>, RootfsError> {
        if let Some(visible) = &self.visible {
            return Ok(visible.list(&dir.path).map(context_node).collect());
        }
        let mut names = BTreeMap::<Vec<u8>, OsString>::new();
        let mut hidden = HashSet::<OsString>::new();
        for &layer in &dir.layers {
            for name in self.names_in(layer, &dir.path)? {
                if hidden.contains(&name) || names.contains_key(name.as_bytes()) {
                    continue;
                }
                if self.overlay {
                    if let Some((_, _, kind)) = self.stat_kind(layer, &dir.path.join(&name))? {
                        if kind.is_overlay_whiteout() {
                            hidden.insert(name);
                            continue;
                        }
                    }
                }
                names.insert(name.as_bytes().to_vec(), name);
            }
        }
        let mut nodes = Vec::with_capacity(names.len());
        for name in names.into_values() {
            if let Some(node) = self.child(dir, &name)? {
                nodes.push(node);
            }
        }
        Ok(nodes)
    }

    /// Opens the regular file `node` for reading.
    pub fn open(&self, node: &Node) -> Result<File, RootfsError> {
        let layer = self.top_layer(node)?;
        let fd = openat_beneath(layer, &node.path, OFlags::RDONLY).map_err(|source| {
            RootfsError::Io {
                action: "opening",
                path: node.path.clone(),
                source,
            }
        })?;
        Ok(File::from(fd))
    }

    /// Reads the whole regular file at `path` (links followed), `None` when
    /// there is none: for `/etc/passwd` and the like.
    pub fn read_small_file(&self, path: &Path) -> Result<Option<Vec<u8>>, RootfsError> {
        use std::io::Read;
        let Some(node) = self.lookup(path, true)? else {
            return Ok(None);
        };
        if node.kind != FileKind::File {
            return Ok(None);
        }
        let mut content = Vec::new();
        self.open(&node)?
            .take(16 << 20)
            .read_to_end(&mut content)
            .map_err(|source| RootfsError::Io {
                action: "reading",
                path: node.path.clone(),
                source,
            })?;
        Ok(Some(content))
    }

    /// The extended attributes of a file or directory (overlay bookkeeping
    /// left out), in name order.
    pub fn xattrs(&self, node: &Node) -> Result<BTreeMap<String, Vec<u8>>, RootfsError> {
        let mut out = BTreeMap::new();
        if !matches!(node.kind, FileKind::File | FileKind::Dir) {
            return Ok(out);
        }
        let err = |source: io::Error| RootfsError::Io {
            action: "reading the xattrs of",
            path: node.path.clone(),
            source,
        };
        let fd = openat_beneath(self.top_layer(node)?, &node.path, OFlags::PATH).map_err(err)?;
        let proc = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        let mut list = vec![0u8; 4096];
        let n = match rfs::listxattr(&proc, &mut list[..]) {
            Ok(n) => n,
            Err(Errno::NOTSUP) => return Ok(out),
            Err(Errno::RANGE) => {
                let size = rfs::listxattr_query(&proc).map_err(|e| err(e.into()))?;
                list.resize(size, 0);
                rfs::listxattr(&proc, &mut list[..]).map_err(|e| err(e.into()))?
            }
            Err(e) => return Err(err(e.into())),
        };
        for name in list.get(..n).unwrap_or_default().split(|b| *b == 0) {
            let Ok(name) = std::str::from_utf8(name) else {
                continue;
            };
            if name.is_empty()
                || name.starts_with("trusted.overlay.")
                || name.starts_with("user.overlay.")
            {
                continue;
            }
            // The query form: a zero-length buffer would give back 0, not the size.
            let size = match rfs::getxattr_query(&proc, name) {
                Ok(size) => size,
                Err(Errno::NODATA) => continue,
                Err(e) => return Err(err(e.into())),
            };
            let mut value = vec![0u8; size];
            let got = rfs::getxattr(&proc, name, &mut value[..]).map_err(|e| err(e.into()))?;
            value.truncate(got);
            out.insert(name.to_owned(), value);
        }
        Ok(out)
    }

    /// Whether the view hides an entry of the directory `dir` that is on
    /// disk (one `.dockerignore` left out of the context).
    pub fn hides_in(&self, dir: &Node) -> Result<bool, RootfsError> {
        let Some(visible) = &self.visible else {
            return Ok(false);
        };
        for &layer in &dir.layers {
            for name in self.names_in(layer, &dir.path)? {
                if visible.child(&dir.path, &name).is_none() {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// The names of the directory `dir` that exist (visible, not whited
    /// out), for "did you mean" hints.
    pub fn names(&self, dir: &Node) -> Result<Vec<String>, RootfsError> {
        Ok(self
            .read_dir(dir)?
            .iter()
            .filter_map(|n| n.path.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect())
    }

    fn top_layer(&self, node: &Node) -> Result<&Layer, RootfsError> {
        node.layers
            .first()
            .and_then(|&i| self.layers.get(i))
            .ok_or_else(|| RootfsError::NotADirectory(node.path.clone()))
    }

    /// The child `name` of the directory `dir`, merged across its layers.
    fn child(&self, dir: &Node, name: &OsStr) -> Result<Option<Node>, RootfsError> {
        if let Some(visible) = &self.visible {
            // A context view is one plain directory: the walk saw it all.
            return Ok(visible.child(&dir.path, name).map(context_node));
        }
        let path = dir.path.join(name);
        let mut found: Option<Node> = None;
        for &layer in &dir.layers {
            let Some((opaque, stat, kind)) = self.stat_kind(layer, &path)? else {
                continue;
            };
            if self.overlay && kind.is_overlay_whiteout() {
                break;
            }
            match &mut found {
                None => {
                    let is_dir = kind == FileKind::Dir;
                    found = Some(Node {
                        path: path.clone(),
                        kind,
                        stat,
                        layers: smallvec![layer],
                    });
                    if !is_dir || opaque {
                        break;
                    }
                }
                Some(node) => {
                    if kind != FileKind::Dir {
                        break;
                    }
                    node.layers.push(layer);
                    if opaque {
                        break;
                    }
                }
            }
        }
        Ok(found)
    }

    /// What `path` is in one layer: whether it is an opaque directory, its
    /// metadata and kind. `None` when the layer does not have it.
    fn stat_kind(
        &self,
        layer: usize,
        path: &Path,
    ) -> Result<Option<(bool, NodeStat, FileKind)>, RootfsError> {
        let Some((fd, stat)) = self.stat_in(layer, path)? else {
            return Ok(None);
        };
        let err = |action| {
            move |e: Errno| RootfsError::Io {
                action,
                path: path.to_path_buf(),
                source: e.into(),
            }
        };
        let read_link = || {
            let target = rfs::readlinkat(&fd, c"", Vec::new()).map_err(err("reading the link"))?;
            Ok(PathBuf::from(OsStr::from_bytes(target.as_bytes())))
        };
        // A file type the kernel does not name is left out of any layer, as a socket is.
        let kind = FileKind::from_mode(stat.mode_raw, stat.rdev.0, stat.rdev.1, read_link)?
            .unwrap_or(FileKind::Socket);
        let opaque = kind == FileKind::Dir && self.overlay && self.is_opaque(layer, path)?;
        Ok(Some((opaque, stat.stat, kind)))
    }

    /// An `O_PATH` descriptor of `path` in one layer (not following a final
    /// link) and its metadata; `None` when the layer does not have it.
    fn stat_in(
        &self,
        layer: usize,
        path: &Path,
    ) -> Result<Option<(OwnedFd, RawStat)>, RootfsError> {
        let layer_dir = self
            .layers
            .get(layer)
            .ok_or_else(|| RootfsError::NotADirectory(path.to_path_buf()))?;
        let fd = match openat_beneath(layer_dir, path, OFlags::PATH | OFlags::NOFOLLOW) {
            Ok(fd) => fd,
            Err(e)
                if [Errno::NOENT, Errno::NOTDIR, Errno::LOOP, Errno::XDEV]
                    .iter()
                    .any(|errno| e.raw_os_error() == Some(errno.raw_os_error())) =>
            {
                return Ok(None);
            }
            Err(source) => {
                return Err(RootfsError::Io {
                    action: "looking up",
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let st =
            rfs::statx(&fd, c"", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS).map_err(|e| {
                RootfsError::Io {
                    action: "reading metadata of",
                    path: path.to_path_buf(),
                    source: e.into(),
                }
            })?;
        let mode_raw = u32::from(st.stx_mode);
        let stat = NodeStat {
            mode: mode_raw & 0o7777,
            uid: st.stx_uid,
            gid: st.stx_gid,
            size: st.stx_size,
            mtime: (st.stx_mtime.tv_sec, st.stx_mtime.tv_nsec),
            ctime: (st.stx_ctime.tv_sec, st.stx_ctime.tv_nsec),
            dev: rfs::makedev(st.stx_dev_major, st.stx_dev_minor),
            ino: st.stx_ino,
            nlink: u64::from(st.stx_nlink),
        };
        Ok(Some((
            fd,
            RawStat {
                mode_raw,
                rdev: (st.stx_rdev_major, st.stx_rdev_minor),
                stat,
            },
        )))
    }

    fn is_opaque(&self, layer: usize, path: &Path) -> Result<bool, RootfsError> {
        let layer_dir = self
            .layers
            .get(layer)
            .ok_or_else(|| RootfsError::NotADirectory(path.to_path_buf()))?;
        let fd = openat_beneath(layer_dir, path, OFlags::RDONLY | OFlags::DIRECTORY).map_err(
            |source| RootfsError::Io {
                action: "opening",
                path: path.to_path_buf(),
                source,
            },
        )?;
        for name in ["trusted.overlay.opaque", "user.overlay.opaque"] {
            let mut value = [0u8; 1];
            match rfs::fgetxattr(&fd, name, &mut value[..]) {
                Ok(1) if value == *b"y" => return Ok(true),
                Ok(_) | Err(Errno::NODATA | Errno::NOTSUP | Errno::RANGE | Errno::PERM) => {}
                Err(e) => {
                    return Err(RootfsError::Io {
                        action: "reading the xattrs of",
                        path: path.to_path_buf(),
                        source: e.into(),
                    });
                }
            }
        }
        Ok(false)
    }

    fn names_in(&self, layer: usize, dir: &Path) -> Result<Vec<OsString>, RootfsError> {
        let err = |e: io::Error| RootfsError::Io {
            action: "listing",
            path: dir.to_path_buf(),
            source: e,
        };
        let layer_dir = self
            .layers
            .get(layer)
            .ok_or_else(|| RootfsError::NotADirectory(dir.to_path_buf()))?;
        let fd = match openat_beneath(layer_dir, dir, OFlags::RDONLY | OFlags::DIRECTORY) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(err(e)),
        };
        let mut names = Vec::new();
        for entry in rfs::Dir::read_from(&fd).map_err(|e| err(e.into()))? {
            let entry = entry.map_err(|e| err(e.into()))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(OsStr::from_bytes(name).to_os_string());
            }
        }
        Ok(names)
    }
}

/// A context entry's metadata as a [`NodeStat`].
fn context_stat(entry: &crate::context::Entry) -> NodeStat {
    NodeStat {
        mode: entry.mode,
        uid: entry.uid,
        gid: entry.gid,
        size: entry.size,
        mtime: (entry.mtime.secs, entry.mtime.nanos),
        ctime: (entry.ctime.secs, entry.ctime.nanos),
        dev: entry.dev,
        ino: entry.ino,
        nlink: entry.nlink,
    }
}

/// Metadata plus the raw fields the kind needs.
struct RawStat {
    mode_raw: u32,
    rdev: (u32, u32),
    stat: NodeStat,
}

fn open_layer(dir: &Path) -> Result<Layer, RootfsError> {
    let fd = rfs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RootfsError::Io {
        action: "opening the root directory",
        path: dir.to_path_buf(),
        source: e.into(),
    })?;
    Ok(Layer {
        host: dir.to_path_buf(),
        fd,
    })
}

/// Opens `path` (plain components) beneath a layer, following no symlink at all.
fn openat_beneath(layer: &Layer, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    Ok(rfs::openat2(
        &layer.fd,
        path,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        BENEATH,
    )?)
}

/// The components of `path` that name something (not `/` or `.`), last first.
fn components_reversed(path: &Path) -> Vec<OsString> {
    let mut names: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    names.reverse();
    names
}
