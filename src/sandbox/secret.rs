//! Secrets a step sees (`RUN --mount=type=secret`): their bytes travel to
//! the helper inside the request on its stdin pipe, never through a file.
//! The step's pid 1 mounts a tmpfs in its own mount namespace, writes each
//! secret there and binds the file read-only onto its target, so the bytes
//! live only in that tmpfs (gone with the step) and the step's memory.

use super::helper::{Context, Scratch, SetupError};
use super::spec::BindMount;
use rustix::mount::MountFlags;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

/// A secret's bytes: shown by `Debug` as their length only, and wiped
/// from memory when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(zeroize::Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of `bytes` (they are wiped when this is dropped).
    pub fn new(bytes: Vec<u8>) -> SecretBytes {
        SecretBytes(zeroize::Zeroizing::new(bytes))
    }

    /// The bytes, for writing them where the step reads them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes(<{} bytes, redacted>)", self.0.len())
    }
}

impl Serialize for SecretBytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<u8>::deserialize(deserializer).map(SecretBytes::new)
    }
}

/// A secret shown to the step as a read-only file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretFile {
    /// Absolute path inside the rootfs; created when missing, outside the
    /// step's layer (see `targets`).
    pub target: PathBuf,
    /// The content.
    pub data: SecretBytes,
    /// Permission bits of the file.
    pub mode: u32,
    /// Owner of the file, as the step sees it.
    pub uid: u32,
    /// Group of the file, as the step sees it.
    pub gid: u32,
}

/// A secret shown to the step as an environment variable of its process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretEnv {
    /// The variable's name.
    pub name: String,
    /// Its value.
    pub value: SecretBytes,
}

/// Mounts a tmpfs on the scratch directory's `secrets` (in the step's own
/// mount namespace, so the host never sees it), writes the secret files
/// into it and returns the read-only binds that put them at their targets.
pub(crate) fn stage_files(
    files: &[SecretFile],
    scratch: &Scratch,
) -> Result<Vec<BindMount>, SetupError> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let dir = scratch.secrets();
    std::fs::create_dir(&dir).context(|| "creating the secrets mountpoint".into())?;
    // Executable only when a secret asks for it, as BuildKit mounts them.
    let mut flags = MountFlags::NOSUID | MountFlags::NODEV;
    if files.iter().all(|file| file.mode & 0o111 == 0) {
        flags |= MountFlags::NOEXEC;
    }
    rustix::mount::mount("tmpfs", &dir, "tmpfs", flags, Some(c"mode=0700"))
        .context(|| "mounting the secrets tmpfs".into())?;
    files
        .iter()
        .enumerate()
        .map(|(index, file)| {
            let path = dir.join(index.to_string());
            let what = || format!("writing the secret for {}", file.target.display());
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .context(what)?;
            out.write_all(file.data.expose()).context(what)?;
            std::os::unix::fs::fchown(&out, Some(file.uid), Some(file.gid)).context(|| {
                format!(
                    "setting the owner {}:{} of the secret for {}",
                    file.uid,
                    file.gid,
                    file.target.display()
                )
            })?;
            out.set_permissions(std::fs::Permissions::from_mode(file.mode & 0o7777))
                .context(what)?;
            Ok(BindMount {
                source: path,
                target: file.target.clone(),
                readonly: true,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_bytes() {
        let file = SecretFile {
            target: "/run/secrets/tok".into(),
            data: SecretBytes::new(b"hunter2-value".to_vec()),
            mode: 0o400,
            uid: 0,
            gid: 0,
        };
        let shown = format!("{file:?} {:?}", file.data);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("13 bytes, redacted"), "{shown}");
    }

    #[test]
    fn bytes_survive_the_request_json() {
        let data = SecretBytes::new(vec![0, 1, 255, b'a']);
        let json = serde_json::to_string(&data).unwrap();
        let back: SecretBytes = serde_json::from_str(&json).unwrap();
        assert_eq!(back.expose(), &[0, 1, 255, b'a']);
    }
}
