//! `COPY`: planning the layer from the sources with Docker's rules.
//!
//! - A directory source copies its contents, not itself.
//! - The destination is a directory when it ends with `/` (or is `.`), when
//!   there are several sources or a wildcard, with `--parents`, or when it
//!   already is one; otherwise it is the file's new path.
//! - A relative destination is relative to `WORKDIR`.
//! - Missing parents of the destination are created 0755, owned by the
//!   `--chown` user; existing ones are in the layer as the destination has
//!   them (as in BuildKit's layers); with `--link` the destination is not
//!   looked at, so all parents are made.
//! - The destination resolves symlinks inside the destination root, a
//!   dangling one to where its target would be.
//! - Files keep their mtimes (clamped by `SOURCE_DATE_EPOCH` when the layer
//!   is written); context files become root's, files from a stage keep
//!   their owners, unless `--chown`.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::CopyError;
use super::chmod::Chmod;
use super::plan::{CopyPlan, DefaultOwner, DestRoot, Planner};
use super::rootfs::{MAX_SYMLINKS, RootfsError, RootfsView};
use super::sources::{self, Match};
use super::user::{Accounts, Ids};
use crate::file_kind::FileKind;
use crate::ignore::{PatternMatcher, clean_path, has_wildcards};
use crate::layer::owners::OwnerMap;

/// One source of a `COPY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A path or wildcard in the source root.
    Path(String),
    /// A heredoc (`COPY <<EOF /dest`): a file named `name` with this content,
    /// already expanded by the planner.
    Heredoc {
        /// The heredoc's name (the file name when the destination is a directory).
        name: String,
        /// The content.
        content: Vec<u8>,
    },
}

/// Where the sources are read from.
#[derive(Debug, Clone)]
pub enum SourceRoot {
    /// The build context (after `.dockerignore`): files become root's.
    Context(Arc<RootfsView>),
    /// A stage's or an image's root filesystem (`--from`): owners are
    /// kept, as the steps saw them (`owners` translates those on disk).
    Stage {
        /// The root filesystem.
        view: Arc<RootfsView>,
        /// How its owners on disk read as the image's.
        owners: OwnerMap,
    },
}

impl SourceRoot {
    fn view(&self) -> &Arc<RootfsView> {
        match self {
            SourceRoot::Context(view) | SourceRoot::Stage { view, .. } => view,
        }
    }
}

/// The flags of a `COPY` (and of `ADD`) that shape its layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyFlags {
    /// `--chown=user[:group]`, resolved in the destination's `/etc/passwd`.
    pub chown: Option<String>,
    /// `--chmod`, octal or symbolic.
    pub chmod: Option<String>,
    /// `--link`: an independent layer that does not look at the destination.
    pub link: bool,
    /// `--parents`: keep the sources' paths (below a `/./` pivot).
    pub parents: bool,
    /// `--exclude` patterns (`.dockerignore` syntax).
    pub excludes: Vec<String>,
}

/// A `COPY` as the executor hands it over.
#[derive(Debug, Clone)]
pub struct CopyRequest {
    /// The sources, in order.
    pub sources: Vec<Source>,
    /// The destination as written (expanded).
    pub dest: String,
    /// The stage's `WORKDIR` (absolute), for a relative destination.
    pub workdir: PathBuf,
    /// The flags.
    pub flags: CopyFlags,
}

/// Plans the layer of a `COPY` from `root` onto the destination root
/// filesystem `dest` (`None` for `FROM scratch`; ignored with `--link`).
pub fn plan_copy(
    request: &CopyRequest,
    root: &SourceRoot,
    dest: Option<DestRoot<'_>>,
) -> Result<CopyPlan, CopyError> {
    let dest = if request.flags.link { None } else { dest };
    let from_context = matches!(root, SourceRoot::Context(_));
    let default_owner = match root {
        SourceRoot::Context(_) => DefaultOwner::Root,
        SourceRoot::Stage { owners, .. } => DefaultOwner::Source(*owners),
    };
    let mut target = Target::new(request, dest, default_owner)?;
    let view = root.view();
    for source in &request.sources {
        match source {
            Source::Path(path) => {
                for found in sources::resolve(view, path, from_context, request.flags.parents)? {
                    target.place(view, &found)?;
                }
            }
            Source::Heredoc { name, content } => {
                target.place_bytes(name, content.clone())?;
            }
        }
    }
    target.finish(request)
}

/// The destination of a `COPY`/`ADD` and the planner filling it.
pub(super) struct Target<'d> {
    /// The destination path in the layer (symlinks of the destination resolved).
    path: PathBuf,
    /// Whether it is a directory (by the rules or because it is one).
    is_dir: bool,
    parents: bool,
    pub(super) planner: Planner<'d>,
}

impl<'d> Target<'d> {
    /// Resolves the destination of `request` in `dest` and sets up the
    /// planner; `default_owner` is whose files are without `--chown`.
    pub(super) fn new(
        request: &CopyRequest,
        dest: Option<DestRoot<'d>>,
        default_owner: DefaultOwner,
    ) -> Result<Self, CopyError> {
        let flags = &request.flags;
        let view = dest.map(|d| d.view);
        let owner = match &flags.chown {
            Some(spec) => Some(resolve_owner(spec, view)?),
            None => None,
        };
        let chmod = flags.chmod.as_deref().map(Chmod::parse).transpose()?;
        let excludes = if flags.excludes.is_empty() {
            None
        } else {
            Some(PatternMatcher::new(&flags.excludes)?)
        };
        let written = &request.dest;
        let absolute = if written.starts_with('/') {
            written.clone()
        } else {
            format!("{}/{written}", request.workdir.display())
        };
        let cleaned = clean_path(&absolute);
        let relative = PathBuf::from(cleaned.trim_start_matches('/'));
        let several = request.sources.len() > 1
            || request
                .sources
                .iter()
                .any(|s| matches!(s, Source::Path(p) if has_wildcards(p)));
        let dir_by_rule = written.ends_with('/')
            || written.ends_with("/.")
            || written == "."
            || several
            || flags.parents;
        let (path, existing) = resolve_dest(view, &relative)?;
        let is_dir = existing == Some(FileKind::Dir) || dir_by_rule;
        if several && existing.as_ref().is_some_and(|k| *k != FileKind::Dir) {
            return Err(CopyError::DestinationNotDirectory(written.clone()));
        }
        Ok(Self {
            path,
            is_dir,
            parents: flags.parents,
            planner: Planner::new(dest, owner, default_owner, chmod, excludes),
        })
    }

    /// Places one source match.
    pub(super) fn place(&mut self, view: &Arc<RootfsView>, found: &Match) -> Result<(), CopyError> {
        if self.parents {
            let dest = self.path.join(&found.rel);
            self.planner.ensure_dir(&self.path)?;
            // The kept parents come with their source metadata.
            let mut kept = PathBuf::new();
            let ancestors: Vec<_> = found
                .rel
                .parent()
                .map(|p| p.components().collect())
                .unwrap_or_default();
            let base = strip_suffix_path(&found.node.path, &found.rel);
            for component in ancestors {
                kept.push(component);
                if let Some(dir) = view.lookup(&base.join(&kept), true)? {
                    self.planner
                        .add_dir_only(view, &dir, &self.path.join(&kept))?;
                }
            }
            return self
                .planner
                .add_tree(view, &found.node, &dest, Path::new(""));
        }
        if found.node.kind == FileKind::Dir {
            self.planner.ensure_dir(&self.path)?;
            return self.planner.add_dir_contents(view, &found.node, &self.path);
        }
        let name = found
            .rel
            .file_name()
            .or_else(|| found.node.path.file_name())
            .ok_or_else(|| CopyError::InvalidPath(found.rel.clone()))?;
        let dest = self.file_dest(name.as_ref())?;
        self.planner
            .add_tree(view, &found.node, &dest, Path::new(""))
    }

    /// Places bytes named `name` (a heredoc or a downloaded file's name).
    pub(super) fn place_bytes(&mut self, name: &str, content: Vec<u8>) -> Result<(), CopyError> {
        let dest = self.file_dest(Path::new(name))?;
        self.planner.add_bytes(dest, name, content);
        Ok(())
    }

    /// Where a file named `name` goes, with the destination's parents planned.
    pub(super) fn file_dest(&mut self, name: &Path) -> Result<PathBuf, CopyError> {
        let dest = if self.is_dir {
            self.planner.ensure_dir(&self.path)?;
            self.path.join(name)
        } else {
            if let Some(parent) = self.path.parent() {
                self.planner.ensure_dir(parent)?;
            }
            self.path.clone()
        };
        if dest.as_os_str().is_empty() || self.planner.dest_is_dir(&dest)? {
            return Err(CopyError::ReplaceDirectory(format!("/{}", dest.display())));
        }
        Ok(dest)
    }

    /// The destination as a directory (planned), for `ADD`'s archives.
    pub(super) fn dir(&mut self) -> Result<PathBuf, CopyError> {
        self.planner.ensure_dir(&self.path)?;
        Ok(self.path.clone())
    }

    pub(super) fn finish(self, request: &CopyRequest) -> Result<CopyPlan, CopyError> {
        let flags = &request.flags;
        let mut options = BTreeMap::new();
        options.insert("dest".to_owned(), request.dest.clone());
        options.insert("workdir".to_owned(), request.workdir.display().to_string());
        for (key, value) in [("chown", &flags.chown), ("chmod", &flags.chmod)] {
            if let Some(value) = value {
                options.insert(key.to_owned(), value.clone());
            }
        }
        for (key, on) in [("link", flags.link), ("parents", flags.parents)] {
            if on {
                options.insert(key.to_owned(), "true".to_owned());
            }
        }
        if !flags.excludes.is_empty() {
            options.insert("exclude".to_owned(), flags.excludes.join("\n"));
        }
        self.planner.finish(options)
    }
}

/// `path` without the trailing components `suffix`.
fn strip_suffix_path(path: &Path, suffix: &Path) -> PathBuf {
    let mut base = path.to_path_buf();
    for _ in suffix.components() {
        base.pop();
    }
    base
}

/// The `--chown` ids, names looked up in the destination's account files.
pub(super) fn resolve_owner(spec: &str, dest: Option<&RootfsView>) -> Result<Ids, CopyError> {
    let read = |path: &str| -> Result<Option<String>, CopyError> {
        Ok(match dest {
            Some(view) => view
                .read_small_file(Path::new(path))?
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
            None => None,
        })
    };
    let accounts = Accounts::parse(
        read("/etc/passwd")?.as_deref(),
        read("/etc/group")?.as_deref(),
    );
    Ok(accounts.resolve_chown(spec)?)
}

/// The destination path with the symlinks of its existing part resolved in
/// `dest`, and what is there now. A symlink whose target is missing leads
/// to where the target would be (`/lib64 -> usr/lib64` makes
/// `/usr/lib64/…`), as BuildKit resolves paths in the root filesystem.
pub(super) fn resolve_dest(
    dest: Option<&RootfsView>,
    path: &Path,
) -> Result<(PathBuf, Option<FileKind>), CopyError> {
    match dest {
        Some(view) => resolve_in(view, path, &mut 0),
        None => Ok((path.to_path_buf(), None)),
    }
}

/// [`resolve_dest`] in `view`; `links` counts the dangling symlinks followed.
fn resolve_in(
    view: &RootfsView,
    path: &Path,
    links: &mut usize,
) -> Result<(PathBuf, Option<FileKind>), CopyError> {
    if let Some(node) = view.lookup(path, true)? {
        return Ok((node.path, Some(node.kind)));
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok((path.to_path_buf(), None));
    };
    let (resolved, kind) = resolve_in(view, parent, links)?;
    if kind.as_ref().is_some_and(|k| *k != FileKind::Dir) {
        return Err(RootfsError::NotADirectory(resolved).into());
    }
    let here = resolved.join(name);
    if let Some(FileKind::Symlink { target }) = view.lookup(&here, false)?.map(|n| n.kind) {
        *links += 1;
        if *links > MAX_SYMLINKS {
            return Err(RootfsError::SymlinkLoop(path.to_path_buf()).into());
        }
        return resolve_in(view, &link_target(&resolved, &target), links);
    }
    Ok((here, None))
}

/// Where the symlink `target` in the directory `dir` (plain components)
/// points, `..` clamped at the root.
fn link_target(dir: &Path, target: &Path) -> PathBuf {
    let mut out = dir.to_path_buf();
    for component in target.components() {
        match component {
            Component::RootDir => out = PathBuf::new(),
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
            Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}
