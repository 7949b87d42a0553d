//! What a RUN step mounts besides its rootfs (`RUN --mount`), as the
//! sandbox takes it, and the clean-up that keeps those mounts out of the
//! step's layer: the sandbox creates missing mount targets in the rootfs,
//! and the empty ones the image did not have are removed again.

use super::ExecError;
use crate::sandbox::{BindMount, SecretEnv, SecretFile, TmpfsMount};
use std::path::{Path, PathBuf};

/// The mounts of one RUN step, ready for the sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepMounts {
    /// Host directories bound into the step (bound files, cache directories).
    pub binds: Vec<BindMount>,
    /// Fresh tmpfs mounts.
    pub tmpfs: Vec<TmpfsMount>,
    /// Secret files (`type=secret`), on a tmpfs of the step's own.
    pub secrets: Vec<SecretFile>,
    /// Secret environment variables (`type=secret,env=`): in the step's
    /// process only, never in the cache key, config or history.
    pub secret_env: Vec<SecretEnv>,
    /// Variables the mounts add to the step's environment
    /// (`SSH_AUTH_SOCK` for `type=ssh`); they follow from the mount specs.
    pub env: Vec<(String, String)>,
    /// What the step's cache key records of each mount: its spec and, for
    /// bound files, a digest of their content. Cache mounts record no content.
    pub keys: Vec<String>,
}

impl StepMounts {
    /// Every mount target inside the rootfs.
    fn targets(&self) -> impl Iterator<Item = &Path> {
        self.binds
            .iter()
            .map(|b| b.target.as_path())
            .chain(self.tmpfs.iter().map(|t| t.target.as_path()))
            .chain(self.secrets.iter().map(|s| s.target.as_path()))
    }

    /// Removes from `result` (an overlay upper directory, or a rootfs copy)
    /// the mount targets and their parents that are empty and are in none
    /// of `image`'s directories, so a step's layer holds no mountpoint it
    /// did not make itself.
    pub fn remove_mountpoints(&self, result: &Path, image: &[PathBuf]) -> Result<(), ExecError> {
        let mut paths: Vec<PathBuf> = Vec::new();
        for target in self.targets() {
            let rel = target.strip_prefix("/").unwrap_or(target);
            let mut current = Some(rel);
            while let Some(path) = current.filter(|p| !p.as_os_str().is_empty()) {
                paths.push(path.to_path_buf());
                current = path.parent();
            }
        }
        // Deepest first, so a parent is looked at after its children went.
        paths.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        paths.dedup();
        for rel in paths {
            let in_image = image
                .iter()
                .any(|dir| dir.join(&rel).symlink_metadata().is_ok());
            if in_image {
                continue;
            }
            let path = result.join(&rel);
            let Ok(meta) = path.symlink_metadata() else {
                continue;
            };
            let removed = if meta.is_dir() {
                match std::fs::read_dir(&path).map(|mut entries| entries.next().is_none()) {
                    Ok(true) => std::fs::remove_dir(&path),
                    Ok(false) => Ok(()),
                    Err(e) => Err(e),
                }
            } else if meta.is_file() && meta.len() == 0 {
                std::fs::remove_file(&path)
            } else {
                Ok(())
            };
            removed.map_err(|e| ExecError::io("remove the mountpoint", &path, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_new_empty_mountpoints_are_removed() {
        let image = tempfile::tempdir().unwrap();
        let result = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(image.path().join("usr/src")).unwrap();
        for dir in ["usr/src/app", "new/deep", "kept"] {
            std::fs::create_dir_all(result.path().join(dir)).unwrap();
        }
        std::fs::write(result.path().join("kept/file"), "x").unwrap();
        std::fs::create_dir_all(result.path().join("usr/src")).unwrap();
        let mounts = StepMounts {
            tmpfs: ["/usr/src/app", "/new/deep", "/kept"]
                .into_iter()
                .map(|t| TmpfsMount {
                    target: t.into(),
                    size: None,
                    readonly: false,
                })
                .collect(),
            ..StepMounts::default()
        };
        mounts
            .remove_mountpoints(result.path(), &[image.path().to_path_buf()])
            .unwrap();
        assert!(!result.path().join("usr/src/app").exists());
        assert!(result.path().join("usr/src").exists());
        assert!(!result.path().join("new").exists());
        assert!(result.path().join("kept/file").exists());
    }
}
