//! What a `COPY` or `ADD` puts in its layer, decided before anything is
//! written: the entries with their final metadata, where each one's bytes
//! come from, and the record of every source for the step's cache key.
//!
//! A plan's [`Hash`] feeds everything [`CopyPlan::cache_input`] reads but
//! the source files' digests, with each source's full stat (device,
//! inode, size, mtime, ctime, mode, owner) instead: the identity the
//! digest memo trusts (see [`crate::context::digest`]). Two plans that
//! hash alike therefore have the same cache input, which the solver uses
//! to find an unchanged step's key without a digest lookup per file.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::CopyError;
use super::chmod::Chmod;
use super::rootfs::{Node, RootfsView};
use super::user::Ids;
use crate::context::digest::{DigestMemo, FileDigests, StatIdentity};
use crate::file_kind::{FileKind, SpecialFile};
use crate::ignore::PatternMatcher;
use crate::layer::hardlinks::Hardlinks;
use crate::layer::owners::OwnerMap;
use crate::layer::tar::{Content, LayerEntry, LayerEntryKind, WriteOptions, write_entries};

/// Where a file's bytes come from.
#[derive(Debug, Hash)]
enum Body {
    /// The entry's source file ([`Planned::origin`]).
    Origin,
    /// Bytes given with the step (a heredoc).
    Bytes(Vec<u8>),
}

/// The file of a root filesystem view an entry copies.
#[derive(Debug)]
struct Origin {
    view: Arc<RootfsView>,
    node: Node,
}

/// The node alone: its stat's device and inode name the host file
/// whichever view holds it.
impl std::hash::Hash for Origin {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.node.hash(state);
    }
}

#[derive(Debug, Hash)]
enum PlannedKind {
    File { size: u64, body: Body },
    Dir,
    Symlink(PathBuf),
    Hardlink(PathBuf),
    Special(SpecialFile),
}

/// The extended attributes of a planned entry.
#[derive(Debug, Hash)]
enum Xattrs {
    /// Known when planned (none for what the step makes up).
    Known(BTreeMap<String, Vec<u8>>),
    /// The source's ([`Planned::origin`]), read when the layer is
    /// written. The cache key has their digest from the digest memo, so a
    /// hit on unchanged files reads none.
    Origin,
}

impl Xattrs {
    fn read(self, origin: Option<&Origin>) -> Result<BTreeMap<String, Vec<u8>>, CopyError> {
        match (self, origin) {
            (Self::Known(xattrs), _) => Ok(xattrs),
            (Self::Origin, Some(origin)) => Ok(origin.view.xattrs(&origin.node)?),
            (Self::Origin, None) => Ok(BTreeMap::new()),
        }
    }
}

/// One entry of the layer to write.
#[derive(Debug, Hash)]
struct Planned {
    dest: PathBuf,
    kind: PlannedKind,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Xattrs,
    /// The source file it copies, if any: its path is the entry's source
    /// in the cache record.
    origin: Option<Origin>,
    /// The source of an entry with no origin (a heredoc's `<<NAME`).
    source: Option<String>,
}

/// The record of one source for the cache key: where it came from, where
/// it goes, and everything about it that the layer depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceRecord {
    /// The source's path in its root (`<<NAME` for a heredoc).
    pub source: String,
    /// Its path in the layer.
    pub dest: String,
    /// `file`, `dir`, `symlink`, `hardlink`, `char`, `block` or `fifo`.
    pub kind: &'static str,
    /// Final permission bits.
    pub mode: u32,
    /// Final owner.
    pub uid: u32,
    /// Final group.
    pub gid: u32,
    /// Size in bytes (files only).
    pub size: u64,
    /// Content digest (files), or link target (links).
    pub content: Option<String>,
    /// Digest of the extended attributes the layer gives it (see
    /// [`xattrs_digest`]), when it has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xattrs: Option<String>,
}

/// Everything a `COPY`/`ADD` result depends on, for the step's cache key:
/// every source and the step's options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CacheInput {
    /// Every entry of the layer with where it came from.
    pub sources: Vec<SourceRecord>,
    /// The options as given (`--chown`, `--chmod`, `--link`, …).
    pub options: BTreeMap<String, String>,
}

/// The planned layer of a `COPY` or `ADD` (see the module's note on its
/// [`Hash`]).
#[derive(Debug, Hash)]
pub struct CopyPlan {
    entries: Vec<Planned>,
    options: BTreeMap<String, String>,
}

impl CopyPlan {
    /// The record of every source, with the digests of contents and
    /// extended attributes taken through `memo` (so unchanged files are
    /// not read again).
    pub fn cache_input(&self, memo: &mut DigestMemo) -> Result<CacheInput, CopyError> {
        let mut sources = Vec::with_capacity(self.entries.len());
        for entry in &self.entries {
            // What the layer copies of a source file or directory: its
            // content and its extended attributes.
            let digests = match &entry.origin {
                Some(Origin { view, node })
                    if matches!(node.kind, FileKind::File | FileKind::Dir) =>
                {
                    Some(source_digests(view, node, memo)?)
                }
                _ => None,
            };
            let xattrs = digests
                .as_ref()
                .and_then(|d| d.xattrs.as_ref())
                .map(ToString::to_string);
            let (kind, size, content) = match &entry.kind {
                PlannedKind::File { size, body } => {
                    let digest = match (body, digests) {
                        (Body::Bytes(bytes), _) => crate::digest::sha256(bytes),
                        (Body::Origin, Some(digests)) => digests.content,
                        (Body::Origin, None) => crate::digest::sha256(&[]),
                    };
                    ("file", *size, Some(digest.to_string()))
                }
                PlannedKind::Dir => ("dir", 0, None),
                PlannedKind::Symlink(target) => {
                    ("symlink", 0, Some(target.to_string_lossy().into_owned()))
                }
                PlannedKind::Hardlink(target) => {
                    ("hardlink", 0, Some(target.to_string_lossy().into_owned()))
                }
                PlannedKind::Special(SpecialFile::CharDevice { major, minor }) => {
                    ("char", 0, Some(format!("{major}:{minor}")))
                }
                PlannedKind::Special(SpecialFile::BlockDevice { major, minor }) => {
                    ("block", 0, Some(format!("{major}:{minor}")))
                }
                PlannedKind::Special(SpecialFile::Fifo) => ("fifo", 0, None),
            };
            sources.push(SourceRecord {
                source: match (&entry.origin, &entry.source) {
                    (Some(origin), _) => origin.node.path.to_string_lossy().into_owned(),
                    (None, source) => source.clone().unwrap_or_default(),
                },
                dest: entry.dest.to_string_lossy().into_owned(),
                kind,
                mode: entry.mode,
                uid: entry.uid,
                gid: entry.gid,
                size,
                content,
                xattrs,
            });
        }
        sources.sort_by(|a, b| a.dest.cmp(&b.dest));
        Ok(CacheInput {
            sources,
            options: self.options.clone(),
        })
    }

    /// The paths the layer will hold, in layer order.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.entries.iter().map(|e| e.dest.clone()).collect();
        paths.sort();
        paths.dedup();
        paths
    }

    /// Writes the layer as a deterministic tar to `out`.
    pub fn write_layer<W: Write>(self, out: W, options: &WriteOptions) -> Result<W, CopyError> {
        let entries = self
            .entries
            .into_iter()
            .map(|p| {
                let xattrs = p.xattrs.read(p.origin.as_ref())?;
                Ok(LayerEntry {
                    path: p.dest,
                    kind: match p.kind {
                        PlannedKind::File { size, body } => LayerEntryKind::File {
                            size,
                            content: match (body, p.origin) {
                                (Body::Bytes(bytes), _) => Content::Bytes(bytes),
                                (Body::Origin, Some(Origin { view, node })) => {
                                    Content::Open(Box::new(move || {
                                        view.open(&node).map_err(std::io::Error::other)
                                    }))
                                }
                                (Body::Origin, None) => Content::Bytes(Vec::new()),
                            },
                        },
                        PlannedKind::Dir => LayerEntryKind::Dir,
                        PlannedKind::Symlink(target) => LayerEntryKind::Symlink { target },
                        PlannedKind::Hardlink(target) => LayerEntryKind::Hardlink { target },
                        PlannedKind::Special(special) => LayerEntryKind::Special(special),
                    },
                    mode: p.mode,
                    uid: p.uid,
                    gid: p.gid,
                    mtime: p.mtime,
                    xattrs,
                })
            })
            .collect::<Result<Vec<_>, CopyError>>()?;
        Ok(write_entries(entries, out, options)?)
    }
}

/// The content digest of the regular file `node` of `view`, read only
/// when `memo` does not know the file's stat identity.
pub fn file_digest(
    view: &RootfsView,
    node: &Node,
    memo: &mut DigestMemo,
) -> Result<oci_spec::image::Digest, CopyError> {
    Ok(source_digests(view, node, memo)?.content)
}

/// The digests of the file or directory `node` of `view` (its content,
/// its extended attributes), read only when `memo` does not know its stat
/// identity: an unchanged file costs no read and no `listxattr`.
fn source_digests(
    view: &RootfsView,
    node: &Node,
    memo: &mut DigestMemo,
) -> Result<FileDigests, CopyError> {
    let host = view.host_path(node)?;
    let open = || match node.kind {
        FileKind::File => view.open(node).map(Some).map_err(std::io::Error::other),
        _ => Ok(None),
    };
    let xattrs = || {
        view.xattrs(node)
            .map(|xattrs| xattrs_digest(&xattrs))
            .map_err(std::io::Error::other)
    };
    Ok(memo.digests(&host, identity(node), open, xattrs)?)
}

/// The digest of extended attributes as a layer records them (`None` for
/// none): each name, a NUL, the value's length and the value, in name order.
pub fn xattrs_digest(xattrs: &BTreeMap<String, Vec<u8>>) -> Option<oci_spec::image::Digest> {
    if xattrs.is_empty() {
        return None;
    }
    let mut hasher = crate::digest::Hasher::new();
    for (name, value) in xattrs {
        hasher.update(name.as_bytes());
        hasher.update(&[0]);
        hasher.update(&(value.len() as u64).to_le_bytes());
        hasher.update(value);
    }
    Some(hasher.finish())
}

fn identity(node: &Node) -> StatIdentity {
    let ns = |(secs, nanos): (i64, u32)| {
        secs.saturating_mul(1_000_000_000)
            .saturating_add(i64::from(nanos))
    };
    StatIdentity {
        dev: node.stat.dev,
        ino: node.stat.ino,
        size: node.stat.size,
        mtime_ns: ns(node.stat.mtime),
        ctime_ns: ns(node.stat.ctime),
        mode: node.stat.mode,
    }
}

/// Whose the copied files become when `--chown` is not given (an unpacked
/// archive's keep their owners also when it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultOwner {
    /// root (files from the build context).
    Root,
    /// The owner the source has (files from a stage or an image), read
    /// through the map from owners on disk to the image's.
    Source(OwnerMap),
    /// The owners an unpacked `ADD` archive records, read through the map:
    /// kept even with `--chown`, which only owns the directories the step
    /// creates (as BuildKit and Buildah do).
    Archive(OwnerMap),
}

/// The root filesystem a `COPY`, `ADD` or `WORKDIR` writes its layer
/// onto: the parent layers as a view, and how the owners on disk read in
/// the image (the map of the executor's snapshots).
#[derive(Debug, Clone, Copy)]
pub struct DestRoot<'d> {
    /// The parent layers.
    pub view: &'d RootfsView,
    /// From owners on disk to the image's.
    pub owners: OwnerMap,
}

/// Builds a [`CopyPlan`] entry by entry.
pub(super) struct Planner<'d> {
    dest: Option<DestRoot<'d>>,
    owner: Option<Ids>,
    default_owner: DefaultOwner,
    chmod: Option<Chmod>,
    excludes: Option<PatternMatcher>,
    entries: Vec<Planned>,
    planned_dirs: HashSet<PathBuf>,
    /// The first destination of each multiply-linked source inode.
    links: Hardlinks<PathBuf>,
}

impl<'d> Planner<'d> {
    pub(super) fn new(
        dest: Option<DestRoot<'d>>,
        owner: Option<Ids>,
        default_owner: DefaultOwner,
        chmod: Option<Chmod>,
        excludes: Option<PatternMatcher>,
    ) -> Self {
        Self {
            dest,
            owner,
            default_owner,
            chmod,
            excludes,
            entries: Vec::new(),
            planned_dirs: HashSet::new(),
            links: Hardlinks::default(),
        }
    }

    /// The plan, with the existing parents of its entries added (see
    /// [`Planner::keep_parents`]).
    pub(super) fn finish(
        mut self,
        options: BTreeMap<String, String>,
    ) -> Result<CopyPlan, CopyError> {
        self.keep_parents()?;
        Ok(CopyPlan {
            entries: self.entries,
            options,
        })
    }

    /// Adds the directories above the planned entries that the
    /// destination already has, with their metadata as it is there. A
    /// layer carries the parents of what it changes, as BuildKit's diff
    /// writes them: unpacked as a snapshot over its parents, the layer then
    /// has `/tmp` as 1777 and an app directory with its owner, instead of
    /// directories made up on the way that would hide the real ones.
    fn keep_parents(&mut self) -> Result<(), CopyError> {
        let Some(dest) = self.dest else {
            return Ok(());
        };
        let planned: HashSet<&Path> = self.entries.iter().map(|e| e.dest.as_path()).collect();
        let parents: BTreeSet<&Path> = self
            .entries
            .iter()
            .flat_map(|e| e.dest.ancestors().skip(1))
            .filter(|p| !p.as_os_str().is_empty() && !planned.contains(p))
            .collect();
        let mut kept = Vec::with_capacity(parents.len());
        for parent in parents {
            let Some(node) = dest.view.lookup(parent, false)? else {
                continue;
            };
            if node.kind != FileKind::Dir {
                continue;
            }
            kept.push(Planned {
                dest: parent.to_path_buf(),
                kind: PlannedKind::Dir,
                mode: node.stat.mode,
                uid: dest.owners.uid(node.stat.uid),
                gid: dest.owners.gid(node.stat.gid),
                mtime: node.stat.mtime.0,
                xattrs: Xattrs::Known(dest.view.xattrs(&node)?),
                origin: None,
                source: None,
            });
        }
        self.entries.extend(kept);
        Ok(())
    }

    /// The destination directory `dir` and its parents: those the
    /// destination lacks are created 0755, owned by the `--chown` user,
    /// with mtime 0; existing ones keep their metadata and stay out of the layer.
    pub(super) fn ensure_dir(&mut self, dir: &Path) -> Result<(), CopyError> {
        let mut current = PathBuf::new();
        for component in dir.components() {
            current.push(component);
            if self.planned_dirs.contains(&current) {
                continue;
            }
            let exists = match self.dest {
                Some(dest) => dest
                    .view
                    .lookup(&current, true)?
                    .is_some_and(|n| n.kind == FileKind::Dir),
                None => false,
            };
            self.planned_dirs.insert(current.clone());
            if !exists {
                let ids = self.owner.unwrap_or(Ids { uid: 0, gid: 0 });
                self.entries.push(Planned {
                    dest: current.clone(),
                    kind: PlannedKind::Dir,
                    mode: 0o755,
                    uid: ids.uid,
                    gid: ids.gid,
                    mtime: 0,
                    xattrs: Xattrs::Known(BTreeMap::new()),
                    origin: None,
                    source: None,
                });
            }
        }
        Ok(())
    }

    /// Whose files are without `--chown` from now on (`ADD` mixes archives,
    /// whose owners are kept, with other sources).
    pub(super) fn set_default_owner(&mut self, owner: DefaultOwner) {
        self.default_owner = owner;
    }

    /// Whether the destination already has a directory at `path`.
    pub(super) fn dest_is_dir(&self, path: &Path) -> Result<bool, CopyError> {
        Ok(self.planned_dirs.contains(path)
            || match self.dest {
                Some(dest) => dest
                    .view
                    .lookup(path, true)?
                    .is_some_and(|n| n.kind == FileKind::Dir),
                None => false,
            })
    }

    /// A file with the given bytes (a heredoc): mode 0644 unless `--chmod`.
    pub(super) fn add_bytes(&mut self, dest: PathBuf, name: &str, bytes: Vec<u8>) {
        let ids = self.owner.unwrap_or(Ids { uid: 0, gid: 0 });
        let mode = self.chmod.as_ref().map_or(0o644, |c| c.apply(0o644, false));
        self.entries.push(Planned {
            dest,
            kind: PlannedKind::File {
                size: bytes.len() as u64,
                body: Body::Bytes(bytes),
            },
            mode,
            uid: ids.uid,
            gid: ids.gid,
            mtime: 0,
            xattrs: Xattrs::Known(BTreeMap::new()),
            origin: None,
            source: Some(format!("<<{name}")),
        });
    }

    /// The children of the directory `dir` into the destination directory
    /// `dest` (a directory source copies its contents, not itself).
    pub(super) fn add_dir_contents(
        &mut self,
        view: &Arc<RootfsView>,
        dir: &Node,
        dest: &Path,
    ) -> Result<(), CopyError> {
        for child in view.read_dir(dir)? {
            let Some(name) = child.path.file_name() else {
                continue;
            };
            let (dest, rel) = (dest.join(name), PathBuf::from(name));
            self.add(view, child, dest, &rel, true)?;
        }
        Ok(())
    }

    /// The directory `dir` alone at `dest`, with its source metadata (a
    /// parent kept by `--parents`).
    pub(super) fn add_dir_only(
        &mut self,
        view: &Arc<RootfsView>,
        dir: &Node,
        dest: &Path,
    ) -> Result<(), CopyError> {
        if self.planned_dirs.contains(dest) {
            return Ok(());
        }
        self.add(view, dir.clone(), dest.to_path_buf(), Path::new(""), false)
    }

    /// `node` at `dest` and, for a directory, everything below it.
    /// `rel` is its path below the copied source, for `--exclude`.
    pub(super) fn add_tree(
        &mut self,
        view: &Arc<RootfsView>,
        node: &Node,
        dest: &Path,
        rel: &Path,
    ) -> Result<(), CopyError> {
        self.add(view, node.clone(), dest.to_path_buf(), rel, true)
    }

    fn add(
        &mut self,
        view: &Arc<RootfsView>,
        node: Node,
        dest: PathBuf,
        rel: &Path,
        recurse: bool,
    ) -> Result<(), CopyError> {
        if let Some(excludes) = &self.excludes {
            if !rel.as_os_str().is_empty()
                && excludes.matches_or_parent_matches(&rel.to_string_lossy())?
                && (node.kind != FileKind::Dir
                    || excludes.can_skip_excluded_dir(&rel.to_string_lossy()))
            {
                return Ok(());
            }
        }
        let (uid, gid) = match (self.owner, self.default_owner) {
            (_, DefaultOwner::Archive(owners)) | (None, DefaultOwner::Source(owners)) => {
                (owners.uid(node.stat.uid), owners.gid(node.stat.gid))
            }
            (Some(ids), _) => (ids.uid, ids.gid),
            (None, DefaultOwner::Root) => (0, 0),
        };
        let is_dir = node.kind == FileKind::Dir;
        let mode = self
            .chmod
            .as_ref()
            .map_or(node.stat.mode, |c| c.apply(node.stat.mode, is_dir));
        let kind = match &node.kind {
            FileKind::File => {
                let stat = &node.stat;
                match self.links.first_of(stat.dev, stat.ino, stat.nlink, &dest) {
                    Some(first) => PlannedKind::Hardlink(first),
                    None => PlannedKind::File {
                        size: node.stat.size,
                        body: Body::Origin,
                    },
                }
            }
            FileKind::Dir => PlannedKind::Dir,
            FileKind::Symlink { target } => PlannedKind::Symlink(target.clone()),
            FileKind::Special(special) => PlannedKind::Special(*special),
            FileKind::Socket => return Ok(()),
        };
        // Each child's destination and path below the source (an
        // allocation per file saved: the planned entry keeps `dest`).
        let mut children = Vec::new();
        if is_dir && recurse {
            for child in view.read_dir(&node)? {
                if let Some(name) = child.path.file_name() {
                    let (dest, rel) = (dest.join(name), rel.join(name));
                    children.push((child, dest, rel));
                }
            }
        }
        if is_dir {
            self.planned_dirs.insert(dest.clone());
        }
        self.entries.push(Planned {
            dest,
            kind,
            mode,
            uid,
            gid,
            mtime: node.stat.mtime.0,
            xattrs: Xattrs::Origin,
            origin: Some(Origin {
                view: Arc::clone(view),
                node,
            }),
            source: None,
        });
        for (child, dest, rel) in children {
            self.add(view, child, dest, &rel, true)?;
        }
        Ok(())
    }
}
