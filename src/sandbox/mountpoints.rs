//! The paths the sandbox mounts over — `/proc`, `/sys`, `/dev` and
//! `/etc/{hosts,hostname,resolv.conf}` — must exist in the rootfs without
//! ending up in the step's layer.
//!
//! With an overlay rootfs they live in a per-step layer stacked above the
//! image's layers (as Docker's "init layer"), so the upper directory never
//! sees them. A plain-directory rootfs gets the missing ones created before
//! the step and removed after it.

use super::helper::{Context, SetupError};
use std::fs::{self, File, FileTimes, Metadata};
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Top-level directories the sandbox mounts over.
pub(crate) const DIRS: [&str; 4] = ["proc", "sys", "dev", "etc"];
/// Files in `/etc` the sandbox bind-mounts over.
pub(crate) const ETC_FILES: [&str; 3] = ["hosts", "hostname", "resolv.conf"];

/// Fills the empty directory `layer` with the mountpoints; `image` is the
/// step's stack, topmost first, whose directories' metadata the layer copies
/// so that a step writing into `/etc` copies up `/etc` as the image has it.
pub(crate) fn build_layer(layer: &Path, image: &[PathBuf]) -> Result<(), SetupError> {
    for name in DIRS {
        let dir = layer.join(name);
        fs::create_dir(&dir).context(|| format!("creating {}", dir.display()))?;
    }
    for name in ETC_FILES {
        let file = layer.join("etc").join(name);
        File::create(&file).context(|| format!("creating {}", file.display()))?;
    }
    for name in DIRS {
        if let Some(meta) = image_entry(image, name)?.filter(Metadata::is_dir) {
            mirror(&layer.join(name), &meta)?;
        }
    }
    Ok(())
}

/// The image's entry `name` at the top of the stack, seen as overlayfs
/// would: the first layer that has it wins, a whiteout or an opaque layer
/// root hides everything below.
fn image_entry(image: &[PathBuf], name: &str) -> Result<Option<Metadata>, SetupError> {
    for layer in image {
        let path = layer.join(name);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_char_device() && meta.rdev() == 0 => return Ok(None),
            Ok(meta) => return Ok(Some(meta)),
            Err(err) if err.kind() == ErrorKind::NotFound => {
                if is_opaque(layer) {
                    return Ok(None);
                }
            }
            Err(err) => return Err(err).context(|| format!("inspecting {}", path.display())),
        }
    }
    Ok(None)
}

fn is_opaque(dir: &Path) -> bool {
    let mut value = [0u8; 1];
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(
            |name| matches!(rustix::fs::lgetxattr(dir, *name, &mut value), Ok(1) if value == *b"y"),
        )
}

/// Gives `dir` the mode, owner and times of the image's directory. An owner
/// that has no ID inside a rootless user namespace is kept as ours: overlayfs
/// could not copy such a directory up anyway.
fn mirror(dir: &Path, meta: &Metadata) -> Result<(), SetupError> {
    let what = || format!("copying the image's metadata to {}", dir.display());
    fs::set_permissions(dir, fs::Permissions::from_mode(meta.mode() & 0o7777)).context(what)?;
    match std::os::unix::fs::lchown(dir, Some(meta.uid()), Some(meta.gid())) {
        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {}
        other => other.context(what)?,
    }
    set_times(
        dir,
        meta.accessed().context(what)?,
        meta.modified().context(what)?,
    )
}

fn set_times(path: &Path, accessed: SystemTime, modified: SystemTime) -> Result<(), SetupError> {
    File::open(path)
        .and_then(|file| {
            file.set_times(
                FileTimes::new()
                    .set_accessed(accessed)
                    .set_modified(modified),
            )
        })
        .context(|| format!("setting the times of {}", path.display()))
}

/// Mountpoints created in a plain-directory rootfs, to be removed after the
/// step so the directory keeps only the step's own changes.
#[derive(Debug)]
pub(crate) struct Created {
    /// Created paths, in creation order.
    paths: Vec<PathBuf>,
    /// Directories we created entries in: their times before, and the
    /// modification time right after our creations.
    parents: Vec<ParentTimes>,
}

#[derive(Debug)]
struct ParentTimes {
    path: PathBuf,
    accessed: SystemTime,
    modified: SystemTime,
    after_ours: SystemTime,
}

impl Created {
    /// Creates the mountpoints missing from `root`. Existing ones must be of
    /// the right type and not symlinks, so a mount can never be redirected
    /// outside the rootfs.
    pub(crate) fn create_missing(root: &Path) -> Result<Created, SetupError> {
        let mut created = Created {
            paths: Vec::new(),
            parents: Vec::new(),
        };
        match created.ensure_all(root) {
            Ok(()) => Ok(created),
            Err(err) => {
                // Leave the rootfs as it was; the first error is the one to report.
                let _ = created.remove();
                Err(err)
            }
        }
    }

    fn ensure_all(&mut self, root: &Path) -> Result<(), SetupError> {
        for name in DIRS {
            self.ensure(root, name, true)?;
        }
        let etc = root.join("etc");
        for name in ETC_FILES {
            self.ensure(&etc, name, false)?;
        }
        for parent in &mut self.parents {
            parent.after_ours = modified(&parent.path)?;
        }
        Ok(())
    }

    fn ensure(&mut self, parent: &Path, name: &str, dir: bool) -> Result<(), SetupError> {
        let path = parent.join(name);
        match fs::symlink_metadata(&path) {
            Ok(meta) if dir && meta.is_dir() => return Ok(()),
            Ok(meta) if !dir && meta.is_file() => return Ok(()),
            Ok(_) => {
                return Err(SetupError::Invalid(format!(
                    "{} in the rootfs must be a {}, so the sandbox can mount over it",
                    path.display(),
                    if dir { "directory" } else { "regular file" }
                )));
            }
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(err) => return Err(err).context(|| format!("inspecting {}", path.display())),
        }
        if !self.parents.iter().any(|p| p.path == parent) {
            let meta =
                fs::metadata(parent).context(|| format!("inspecting {}", parent.display()))?;
            let what = || format!("reading the times of {}", parent.display());
            self.parents.push(ParentTimes {
                path: parent.to_path_buf(),
                accessed: meta.accessed().context(what)?,
                modified: meta.modified().context(what)?,
                after_ours: SystemTime::UNIX_EPOCH,
            });
        }
        let made = if dir {
            fs::create_dir(&path)
        } else {
            File::create_new(&path).map(drop)
        };
        made.context(|| format!("creating {}", path.display()))?;
        self.paths.push(path);
        Ok(())
    }

    /// Removes what [`Created::create_missing`] made. A directory the step
    /// filled stays. A parent's times are restored only when the step did
    /// not change that parent itself.
    pub(crate) fn remove(self) -> Result<(), SetupError> {
        let untouched: Vec<bool> = self
            .parents
            .iter()
            .map(|p| modified(&p.path).map(|now| now == p.after_ours))
            .collect::<Result<_, _>>()?;
        let mut kept = false;
        for path in self.paths.iter().rev() {
            let removed = if path.is_dir() {
                fs::remove_dir(path)
            } else {
                fs::remove_file(path)
            };
            match removed {
                Err(err) if err.raw_os_error() == Some(libc::ENOTEMPTY) => kept = true,
                other => other.context(|| format!("removing the mountpoint {}", path.display()))?,
            }
        }
        if kept {
            return Ok(());
        }
        for (parent, untouched) in self.parents.iter().zip(untouched) {
            // A parent we created ourselves (`/etc` of a rootfs without
            // one) is gone now.
            if untouched && !self.paths.contains(&parent.path) {
                set_times(&parent.path, parent.accessed, parent.modified)?;
            }
        }
        Ok(())
    }
}

fn modified(path: &Path) -> Result<SystemTime, SetupError> {
    fs::metadata(path)
        .and_then(|meta| meta.modified())
        .context(|| format!("reading the times of {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layer_copies_the_images_etc_metadata() {
        let tmp = tempfile::tempdir().unwrap();
        let (upper, lower, layer) = (
            tmp.path().join("u"),
            tmp.path().join("l"),
            tmp.path().join("m"),
        );
        for dir in [&upper, &lower, &layer] {
            fs::create_dir(dir).unwrap();
        }
        fs::create_dir(lower.join("etc")).unwrap();
        fs::set_permissions(lower.join("etc"), fs::Permissions::from_mode(0o750)).unwrap();
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        set_times(&lower.join("etc"), old, old).unwrap();

        build_layer(&layer, &[upper, lower]).unwrap();

        let etc = fs::metadata(layer.join("etc")).unwrap();
        assert_eq!(etc.mode() & 0o7777, 0o750);
        assert_eq!(etc.modified().unwrap(), old);
        for name in ETC_FILES {
            assert!(layer.join("etc").join(name).is_file());
        }
        for name in ["proc", "sys", "dev"] {
            assert!(layer.join(name).is_dir());
        }
    }

    #[test]
    fn a_plain_rootfs_without_etc_gets_back_to_what_it_was() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir(root.join("bin")).unwrap();
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        set_times(root, old, old).unwrap();

        let created = Created::create_missing(root).unwrap();
        assert!(root.join("etc/hosts").is_file());
        created.remove().unwrap();

        let names: Vec<_> = fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["bin"]);
        assert_eq!(fs::metadata(root).unwrap().modified().unwrap(), old);
    }

    #[test]
    fn plain_rootfs_gets_back_to_what_it_was() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fs::create_dir(root.join("etc")).unwrap();
        fs::write(root.join("etc/hosts"), "keep").unwrap();
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        set_times(root, old, old).unwrap();
        set_times(&root.join("etc"), old, old).unwrap();

        let created = Created::create_missing(root).unwrap();
        assert!(root.join("proc").is_dir());
        assert!(root.join("etc/resolv.conf").is_file());
        created.remove().unwrap();

        let mut names: Vec<_> = fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["etc"]);
        let mut etc: Vec<_> = fs::read_dir(root.join("etc"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        etc.sort();
        assert_eq!(etc, ["hosts"]);
        assert_eq!(fs::read_to_string(root.join("etc/hosts")).unwrap(), "keep");
        assert_eq!(fs::metadata(root).unwrap().modified().unwrap(), old);
        assert_eq!(
            fs::metadata(root.join("etc")).unwrap().modified().unwrap(),
            old
        );
    }

    #[test]
    fn refuses_a_symlinked_mountpoint() {
        let tmp = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/", tmp.path().join("proc")).unwrap();
        let err = Created::create_missing(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("must be a directory"), "{err}");
    }
}
