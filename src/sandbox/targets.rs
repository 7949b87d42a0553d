//! The targets of `RUN --mount` that the rootfs lacks: made for the step
//! and kept out of its layer.
//!
//! Paths are resolved with `openat2(RESOLVE_IN_ROOT)`, so a target under a
//! symlink of the image (`/link/sub` with `/link -> /`, or `../../..`) is
//! made where the step will see it, inside the rootfs, and never on the
//! host. With an overlay rootfs the targets are made through a setup
//! overlay whose upper directory is the mountpoint layer (see
//! `mountpoints`), so the step's upper directory never holds them; a
//! plain-directory rootfs gets them removed again after the step. The
//! times of a directory a target was made in are put back either way.

use super::helper::{Context, SetupError};
use super::spec::Spec;
use crate::layer::resolve::{InRootPath, Root};
use rustix::fs::{AtFlags, Mode, OFlags};
use std::fs::{File, FileTimes};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

/// One place a mount goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// Absolute path inside the rootfs.
    path: PathBuf,
    /// A directory (else an empty file, for a bound file).
    dir: bool,
}

impl Target {
    /// Every target of `spec`'s bind, tmpfs and secret mounts, in mount order.
    pub(crate) fn of(spec: &Spec) -> Result<Vec<Target>, SetupError> {
        let mut targets = Vec::new();
        for bind in &spec.mounts {
            let meta = std::fs::metadata(&bind.source)
                .context(|| format!("inspecting {}", bind.source.display()))?;
            targets.push(Target {
                path: bind.target.clone(),
                dir: meta.is_dir(),
            });
        }
        targets.extend(spec.tmpfs.iter().map(|t| Target {
            path: t.target.clone(),
            dir: true,
        }));
        targets.extend(spec.secrets.iter().map(|s| Target {
            path: s.target.clone(),
            dir: false,
        }));
        Ok(targets)
    }
}

/// What [`create`] made, to be removed from a plain-directory rootfs.
#[derive(Debug, Default)]
pub(crate) struct Made {
    /// Paths inside the rootfs, in creation order.
    paths: Vec<PathBuf>,
    /// Directories entries were made in, with their times before.
    parents: Vec<(PathBuf, SystemTime, SystemTime)>,
}

/// Makes the missing targets (and their missing parents) inside `root`.
pub(crate) fn create(root: &Path, targets: &[Target]) -> Result<Made, SetupError> {
    let root_fd = Root::open(root).context(|| format!("opening the rootfs {}", root.display()))?;
    let mut made = Made::default();
    for target in targets {
        let names: Vec<&std::ffi::OsStr> = target
            .path
            .components()
            .filter_map(|c| match c {
                Component::Normal(name) => Some(name),
                _ => None,
            })
            .collect();
        let mut path = PathBuf::new();
        for (i, name) in names.iter().enumerate() {
            let parent = path.clone();
            path.push(name);
            match open_in(&root_fd, &path, OFlags::PATH) {
                Ok(_) => continue,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => {
                    return Err(err).context(|| format!("resolving {}", path.display()));
                }
            }
            let what = || format!("creating the mount target {}", path.display());
            let parent_fd = open_in(&root_fd, &parent, OFlags::RDONLY).context(what)?;
            if !made.parents.iter().any(|(p, ..)| *p == parent) {
                let meta = File::from(parent_fd.try_clone().context(what)?)
                    .metadata()
                    .context(what)?;
                let (accessed, modified) = (
                    meta.accessed().context(what)?,
                    meta.modified().context(what)?,
                );
                made.parents.push((parent.clone(), accessed, modified));
            }
            let last = i + 1 == names.len();
            if last && !target.dir {
                rustix::fs::openat(
                    &parent_fd,
                    *name,
                    OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                )
                .map(drop)
            } else {
                rustix::fs::mkdirat(&parent_fd, *name, Mode::from_raw_mode(0o755))
            }
            .context(what)?;
            made.paths.push(path.clone());
        }
    }
    made.restore_times(&root_fd, |_| true)?;
    Ok(made)
}

impl Made {
    /// Removes what [`create`] made from `root`, deepest first. A directory
    /// the step filled, or a file it wrote, stays. A parent's times are put
    /// back when the step left that parent alone.
    pub(crate) fn remove(self, root: &Path) -> Result<(), SetupError> {
        let root_fd =
            Root::open(root).context(|| format!("opening the rootfs {}", root.display()))?;
        let untouched: Vec<PathBuf> = self
            .parents
            .iter()
            .filter(|(path, _, modified)| {
                times_of(&root_fd, path).is_ok_and(|(_, now)| now == *modified)
            })
            .map(|(path, ..)| path.clone())
            .collect();
        for path in self.paths.iter().rev() {
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                continue;
            };
            let what = || format!("removing the mount target {}", path.display());
            let parent_fd = match open_in(&root_fd, parent, OFlags::PATH) {
                Ok(fd) => fd,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err).context(what),
            };
            let stat = match rustix::fs::statat(&parent_fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => stat,
                Err(rustix::io::Errno::NOENT) => continue,
                Err(err) => return Err(err).context(what),
            };
            let kind = rustix::fs::FileType::from_raw_mode(stat.st_mode);
            let removed = match kind {
                rustix::fs::FileType::Directory => {
                    rustix::fs::unlinkat(&parent_fd, name, AtFlags::REMOVEDIR)
                }
                rustix::fs::FileType::RegularFile if stat.st_size == 0 => {
                    rustix::fs::unlinkat(&parent_fd, name, AtFlags::empty())
                }
                _ => Ok(()),
            };
            match removed {
                Ok(()) | Err(rustix::io::Errno::NOTEMPTY) => {}
                Err(err) => return Err(err).context(what),
            }
        }
        self.restore_times(&root_fd, |path| untouched.contains(path))
    }

    /// Puts back the times of the parents `which` selects (those still there).
    fn restore_times(
        &self,
        root_fd: &Root,
        which: impl Fn(&PathBuf) -> bool,
    ) -> Result<(), SetupError> {
        for (path, accessed, modified) in self.parents.iter().filter(|(p, ..)| which(p)) {
            let fd = match open_in(root_fd, path, OFlags::RDONLY) {
                Ok(fd) => fd,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => {
                    return Err(err).context(|| format!("opening {}", path.display()));
                }
            };
            File::from(fd)
                .set_times(
                    FileTimes::new()
                        .set_accessed(*accessed)
                        .set_modified(*modified),
                )
                .context(|| format!("setting the times of {}", path.display()))?;
        }
        Ok(())
    }
}

/// The access and modification times of `path` inside the rootfs.
fn times_of(root_fd: &Root, path: &Path) -> std::io::Result<(SystemTime, SystemTime)> {
    let meta = File::from(open_in(root_fd, path, OFlags::PATH)?).metadata()?;
    Ok((meta.accessed()?, meta.modified()?))
}

/// Opens `path` (relative; empty is the root) as if `root_fd` were `/`:
/// symlinks and `..` cannot leave it.
fn open_in(root_fd: &Root, path: &Path, flags: OFlags) -> std::io::Result<OwnedFd> {
    let path = InRootPath::normalize(path)
        .ok_or_else(|| std::io::Error::other(format!("{} leaves the root", path.display())))?;
    root_fd.open_at(&path, flags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn target(path: &str, dir: bool) -> Target {
        Target {
            path: path.into(),
            dir,
        }
    }

    #[test]
    fn targets_under_symlinks_stay_in_the_root_and_go_away_again() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("data")).unwrap();
        symlink("/data", root.join("link")).unwrap();
        symlink("../../../..", root.join("up")).unwrap();
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        File::open(root.join("data"))
            .unwrap()
            .set_times(FileTimes::new().set_modified(old).set_accessed(old))
            .unwrap();

        let made = create(
            &root,
            &[target("/link/sub", true), target("/up/escaped/file", false)],
        )
        .unwrap();
        assert!(root.join("data/sub").is_dir());
        assert!(root.join("escaped/file").is_file());
        assert!(!tmp.path().join("escaped").exists());
        let data = std::fs::metadata(root.join("data")).unwrap();
        assert_eq!(data.modified().unwrap(), old);

        made.remove(&root).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["data", "link", "up"]);
        assert_eq!(std::fs::read_dir(root.join("data")).unwrap().count(), 0);
        let data = std::fs::metadata(root.join("data")).unwrap();
        assert_eq!(data.modified().unwrap(), old);
    }

    #[test]
    fn what_the_step_filled_stays() {
        let tmp = tempfile::tempdir().unwrap();
        let made = create(tmp.path(), &[target("/a/b", true)]).unwrap();
        std::fs::write(tmp.path().join("a/kept"), "x").unwrap();
        made.remove(tmp.path()).unwrap();
        assert!(tmp.path().join("a/kept").is_file());
        assert!(!tmp.path().join("a/b").exists());
    }
}
