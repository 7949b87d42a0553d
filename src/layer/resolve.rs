//! Resolving paths inside a root directory without ever leaving it.
//!
//! Every lookup goes through `openat2` with `RESOLVE_IN_ROOT` on the root's
//! directory fd: `..` stops at the root and symlinks (absolute ones too) are
//! resolved as if the root were `/`, by the kernel, in the same call that
//! opens the result. Changes are then made with `*at` calls on that fd and a
//! single final name, so no path is checked first and used later.

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Component, Path, PathBuf};

/// A path inside the root, made only of normal components; empty is the root.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct InRootPath(PathBuf);

impl InRootPath {
    /// Normalizes a path from a tar header: leading `/` and `.` are dropped
    /// (absolute paths are taken relative to the root, as Docker does) and
    /// `..` pops a component; `None` when `..` would climb above the root.
    pub(crate) fn normalize(raw: &Path) -> Option<Self> {
        let mut out = PathBuf::new();
        for component in raw.components() {
            match component {
                Component::Normal(name) => out.push(name),
                Component::ParentDir => {
                    if !out.pop() {
                        return None;
                    }
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        Some(Self(out))
    }

    /// The path relative to the root.
    pub(crate) fn as_path(&self) -> &Path {
        &self.0
    }

    /// The parent directory and final name; `None` for the root itself.
    pub(crate) fn split(&self) -> Option<(InRootPath, &OsStr)> {
        let name = self.0.file_name()?;
        let parent = self.0.parent().map(Path::to_path_buf).unwrap_or_default();
        Some((InRootPath(parent), name))
    }

    /// The child `name` of this directory.
    pub(crate) fn join(&self, name: &OsStr) -> InRootPath {
        InRootPath(self.0.join(name))
    }

    fn for_openat2(&self) -> &Path {
        if self.0.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &self.0
        }
    }
}

/// An open root directory that all lookups are confined to.
pub(crate) struct Root {
    fd: OwnedFd,
}

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

impl Root {
    /// Opens `path` as the root.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let fd = rfs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self { fd })
    }

    /// Opens the directory at `path`, resolved inside the root, with `flags`
    /// (`O_PATH` for a dirfd, `O_RDONLY` to change its metadata).
    pub(crate) fn open_dir(&self, path: &InRootPath, flags: OFlags) -> io::Result<OwnedFd> {
        self.open_at(path, flags | OFlags::DIRECTORY)
    }

    /// Opens `path`, resolved inside the root (a final symlink too), with
    /// `flags`.
    pub(crate) fn open_at(&self, path: &InRootPath, flags: OFlags) -> io::Result<OwnedFd> {
        Ok(rfs::openat2(
            &self.fd,
            path.for_openat2(),
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            IN_ROOT,
        )?)
    }

    /// The content of the file at `path`, links resolved inside the root,
    /// so a link cannot make the caller read a file outside it.
    pub(crate) fn read_file(&self, path: &InRootPath) -> io::Result<Vec<u8>> {
        let fd = self.open_at(path, OFlags::RDONLY)?;
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut std::fs::File::from(fd), &mut bytes)?;
        Ok(bytes)
    }

    /// Opens the entry at `path` itself, not following a final symlink.
    pub(crate) fn open_nofollow(&self, path: &InRootPath, flags: OFlags) -> io::Result<OwnedFd> {
        self.open_at(path, flags | OFlags::NOFOLLOW)
    }

    /// Opens the directory at `path` as an `O_PATH` dirfd, creating missing
    /// directories (mode 0755, like Docker) one at a time inside the root.
    pub(crate) fn create_dir_all(&self, path: &InRootPath) -> io::Result<OwnedFd> {
        match self.open_dir(path, OFlags::PATH) {
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {}
            other => return other,
        }
        let mut current = InRootPath::default();
        let mut fd = self.open_dir(&current, OFlags::PATH)?;
        for component in path.0.components() {
            let name = component.as_os_str();
            let next = current.join(name);
            fd = match self.open_dir(&next, OFlags::PATH) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                    match rfs::mkdirat(&fd, name, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    rfs::openat2(
                        &fd,
                        name,
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                        Mode::empty(),
                        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
                    )?
                }
                Err(e) => return Err(e),
            };
            current = next;
        }
        Ok(fd)
    }
}

impl Default for InRootPath {
    fn default() -> Self {
        Self(PathBuf::new())
    }
}

/// What is at `name` in `dir`, without following a symlink; `None` if nothing.
pub(crate) fn stat_at(dir: impl AsFd, name: &OsStr) -> io::Result<Option<rfs::Stat>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(stat)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes `name` in `dir` and, for a directory, everything below it,
/// never following a symlink. Nothing there is not an error.
pub(crate) fn remove_all_at(dir: impl AsFd, name: &OsStr) -> io::Result<()> {
    let dir = dir.as_fd();
    let Some(stat) = stat_at(dir, name)? else {
        return Ok(());
    };
    if rfs::FileType::from_raw_mode(stat.st_mode) == rfs::FileType::Directory {
        let child = rfs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        remove_children(&child, |_| false)?;
        rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    } else {
        rfs::unlinkat(dir, name, AtFlags::empty())?;
    }
    Ok(())
}

/// Removes every child of the directory `dir` (opened for reading) for
/// which `keep` is false.
pub(crate) fn remove_children(dir: &OwnedFd, keep: impl Fn(&OsStr) -> bool) -> io::Result<()> {
    for name in child_names(dir)? {
        if !keep(&name) {
            remove_all_at(dir, &name)?;
        }
    }
    Ok(())
}

/// The names in the directory `dir` (opened for reading), without `.` and `..`.
pub(crate) fn child_names(dir: &OwnedFd) -> io::Result<Vec<OsString>> {
    use std::os::unix::ffi::OsStrExt;
    let mut names = Vec::new();
    for entry in rfs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    Ok(names)
}
