//! What the parent asks the sandbox to run: the step's root filesystem,
//! mounts, process and identity. Sent to the helper as JSON on its stdin, so
//! everything here is plain data with serde derives.

use super::cgroup::CgroupLimits;
use super::rlimits::Ulimit;
use super::seccomp::SeccompFilter;
use super::secret::{SecretEnv, SecretFile};
use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};

/// One RUN step to execute in a fresh set of namespaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// The root filesystem the step sees.
    pub rootfs: Rootfs,
    /// Extra bind mounts (RUN --mount), applied in order after the rootfs.
    pub mounts: Vec<BindMount>,
    /// Fresh tmpfs mounts (RUN --mount=type=tmpfs), attached after `mounts`.
    #[serde(default)]
    pub tmpfs: Vec<TmpfsMount>,
    /// Secrets shown as read-only files on a tmpfs (RUN --mount=type=secret).
    #[serde(default)]
    pub secrets: Vec<SecretFile>,
    /// Secrets added to the process environment only (`env=`).
    #[serde(default)]
    pub secret_env: Vec<SecretEnv>,
    /// The program and its arguments; `argv[0]` is looked up in the step's
    /// `PATH` inside the rootfs when it has no slash.
    pub argv: Vec<String>,
    /// The complete environment of the step (nothing is inherited).
    pub env: Vec<EnvVar>,
    /// Who the step runs as, already resolved against the image's
    /// `/etc/passwd` and `/etc/group` by the caller.
    pub user: User,
    /// Absolute working directory inside the rootfs; created when missing.
    pub cwd: PathBuf,
    /// Which network the step sees.
    pub network: Network,
    /// The step's hostname (also the content of `/etc/hostname`).
    pub hostname: String,
    /// The content of the step's `/etc/hosts`.
    pub hosts: String,
    /// The content of the step's `/etc/resolv.conf`.
    pub resolv_conf: String,
    /// How far the step is confined (`RUN --security`).
    #[serde(default)]
    pub security: Security,
    /// The size of the step's `/dev/shm` tmpfs, in bytes.
    #[serde(default = "default_shm_size")]
    pub shm_size: u64,
    /// The seccomp filter the step runs under; `None` runs it unconfined
    /// (`--security=insecure`, `--security-opt seccomp=unconfined`).
    #[serde(default)]
    pub seccomp: Option<SeccompFilter>,
    /// What the step's cgroup limits, where steps get one.
    #[serde(default)]
    pub cgroup: CgroupLimits,
    /// `--ulimit`s, over the RLIMITs every step starts with.
    #[serde(default)]
    pub ulimits: Vec<Ulimit>,
    /// How a foreign platform's step finds its QEMU interpreter (the step
    /// registers it in its own user namespace, or the host has); `None`
    /// for a native step.
    #[serde(default)]
    pub emulation: Option<super::emulation::Registration>,
    /// How the step is kept apart from the host (`--isolation`).
    #[serde(default)]
    pub isolation: Isolation,
}

/// How a step is kept apart from the host (`builder build --isolation`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// The step's own namespaces (mount, pid, ipc, uts, network; user when
    /// rootless), its rootfs mounted and pivoted into: the sandbox.
    #[default]
    Oci,
    /// Buildah's `chroot`: no namespace but the user namespace when
    /// rootless, no mount; the step runs chrooted into a plain-directory
    /// rootfs with the host's network, and what mounts would show is
    /// copied or moved into the rootfs for the step and taken out after it
    /// (see `chroot`). For hosts that refuse namespaces and mounts.
    Chroot,
}

/// The size of a RUN step's `/dev/shm` unless `--shm-size` says (Docker's).
pub const DEFAULT_SHM_SIZE: u64 = 64 << 20;

fn default_shm_size() -> u64 {
    DEFAULT_SHM_SIZE
}

/// The root filesystem of a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rootfs {
    /// An overlay mounted by the helper: read-only layers plus a fresh
    /// writable upper directory that collects the step's changes.
    Overlay {
        /// Read-only layers, topmost first (the order of overlayfs `lowerdir`).
        lower: Vec<PathBuf>,
        /// Receives every change of the step (the layer diff reads it).
        upper: PathBuf,
        /// Overlayfs' scratch directory, empty, on the same filesystem as `upper`.
        work: PathBuf,
    },
    /// A plain writable directory used as is (the copy-up fallback when
    /// overlayfs is unavailable); the step modifies it in place.
    Directory(PathBuf),
}

/// A host path made visible inside the step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    /// Host path (file or directory).
    pub source: PathBuf,
    /// Absolute path inside the rootfs; created when missing.
    pub target: PathBuf,
    /// Whether the step may write through the mount.
    pub readonly: bool,
}

/// An empty in-memory file system made visible inside the step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TmpfsMount {
    /// Absolute path inside the rootfs; created when missing.
    pub target: PathBuf,
    /// Size limit in bytes (the kernel's default, half the memory, if none).
    pub size: Option<u64>,
    /// Whether the step may only read it.
    pub readonly: bool,
}

/// One environment variable of the step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    /// Variable name (no `=` and no NUL).
    pub name: String,
    /// Variable value (no NUL).
    pub value: String,
}

/// The numeric identity of the step's process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// User ID inside the sandbox.
    pub uid: u32,
    /// Primary group ID inside the sandbox.
    pub gid: u32,
    /// Supplementary group IDs.
    pub additional_gids: Vec<u32>,
}

/// The network a step sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// A network namespace of the step's own (Dockerfile's
    /// `--network=default`, as BuildKit's): loopback plus a `tap0` that
    /// slirp4netns connects to the host's network by NAT, with the host's
    /// loopback (its 127.0.0.1 services) out of reach.
    #[default]
    Private,
    /// The host's network stack (`--network=host`, an entitlement).
    Host,
    /// A new network namespace with only the loopback interface, up.
    None,
}

/// How far a step is confined (`RUN --security`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Security {
    /// Docker's default capabilities and seccomp filter, a read-only `/sys`.
    #[default]
    Sandbox,
    /// Every capability, no seccomp filter, a writable `/sys`: what
    /// `docker run --privileged` gives, still in the step's namespaces and
    /// rootfs (BuildKit's `security.insecure` entitlement).
    Insecure,
}

/// Why a spec cannot be run; found before any namespace is made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// `argv` is empty.
    #[error("the step has no command to run")]
    EmptyArgv,
    /// A string that becomes a C string holds a NUL byte.
    #[error("{what} contains a NUL byte")]
    Nul {
        /// Which field.
        what: &'static str,
    },
    /// An environment variable name is empty or holds `=`.
    #[error("invalid environment variable name {name:?}")]
    EnvName {
        /// The offending name.
        name: String,
    },
    /// A path inside the rootfs is not absolute or has `..` components.
    #[error("{what} {path:?} must be an absolute path without `..`")]
    InsidePath {
        /// Which field.
        what: &'static str,
        /// The offending path.
        path: PathBuf,
    },
    /// A host path is not absolute.
    #[error("{what} {path:?} must be an absolute host path")]
    HostPath {
        /// Which field.
        what: &'static str,
        /// The offending path.
        path: PathBuf,
    },
    /// An overlay without any read-only layer.
    #[error("an overlay rootfs needs at least one lower directory")]
    NoLowerDir,
    /// Chroot isolation mounts nothing, so not an overlay either.
    #[error("chroot isolation runs steps on a plain-directory rootfs, not an overlay")]
    ChrootOverlay,
    /// Chroot isolation has no network namespace to give the step.
    #[error(
        "chroot isolation has no network namespace: steps share the host's network \
         (RUN --network=none and a private network need --isolation=oci)"
    )]
    ChrootNetwork,
    /// The hostname is longer than the kernel allows or holds a NUL.
    #[error("invalid hostname {hostname:?} (1 to 64 bytes, no NUL)")]
    Hostname {
        /// The offending hostname.
        hostname: String,
    },
}

impl Spec {
    /// Checks everything the helper would otherwise fail on half-way, so a
    /// bad spec is reported before any process or namespace exists.
    pub fn validate(&self) -> Result<(), SpecError> {
        match &self.rootfs {
            Rootfs::Overlay { lower, upper, work } => {
                if lower.is_empty() {
                    return Err(SpecError::NoLowerDir);
                }
                for dir in lower {
                    host_path("overlay lower directory", dir)?;
                }
                host_path("overlay upper directory", upper)?;
                host_path("overlay work directory", work)?;
            }
            Rootfs::Directory(dir) => host_path("rootfs directory", dir)?,
        }
        if self.isolation == Isolation::Chroot {
            if !matches!(self.rootfs, Rootfs::Directory(_)) {
                return Err(SpecError::ChrootOverlay);
            }
            if self.network != Network::Host {
                return Err(SpecError::ChrootNetwork);
            }
        }
        for mount in &self.mounts {
            host_path("bind mount source", &mount.source)?;
            inside_path("bind mount target", &mount.target)?;
        }
        for mount in &self.tmpfs {
            inside_path("tmpfs mount target", &mount.target)?;
        }
        for secret in &self.secrets {
            inside_path("secret target", &secret.target)?;
        }
        for var in &self.secret_env {
            env_name(&var.name)?;
            if var.value.expose().contains(&0) {
                return Err(SpecError::Nul {
                    what: "a secret for an environment variable",
                });
            }
        }
        let Some(program) = self.argv.first() else {
            return Err(SpecError::EmptyArgv);
        };
        if program.is_empty() {
            return Err(SpecError::EmptyArgv);
        }
        if self.argv.iter().any(|arg| arg.contains('\0')) {
            return Err(SpecError::Nul { what: "argv" });
        }
        for var in &self.env {
            env_name(&var.name)?;
            if var.value.contains('\0') {
                return Err(SpecError::Nul {
                    what: "an environment value",
                });
            }
        }
        inside_path("working directory", &self.cwd)?;
        if self.hostname.is_empty() || self.hostname.len() > 64 || self.hostname.contains('\0') {
            return Err(SpecError::Hostname {
                hostname: self.hostname.clone(),
            });
        }
        Ok(())
    }

    /// The value of `PATH` in the step's environment, if set.
    pub(crate) fn path_var(&self) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|var| var.name == "PATH")
            .map(|var| var.value.as_str())
    }
}

fn env_name(name: &str) -> Result<(), SpecError> {
    if name.is_empty() || name.contains('=') || name.contains('\0') {
        return Err(SpecError::EnvName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

fn host_path(what: &'static str, path: &Path) -> Result<(), SpecError> {
    if !path.is_absolute() {
        return Err(SpecError::HostPath {
            what,
            path: path.to_path_buf(),
        });
    }
    if path.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(SpecError::Nul { what });
    }
    Ok(())
}

fn inside_path(what: &'static str, path: &Path) -> Result<(), SpecError> {
    let bad = || SpecError::InsidePath {
        what,
        path: path.to_path_buf(),
    };
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return Err(bad());
    }
    if path.as_os_str().as_encoded_bytes().contains(&0) {
        return Err(SpecError::Nul { what });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            rootfs: Rootfs::Directory("/srv/root".into()),
            mounts: vec![],
            tmpfs: vec![],
            secrets: vec![],
            secret_env: vec![],
            argv: vec!["/bin/sh".into(), "-c".into(), "true".into()],
            env: vec![EnvVar {
                name: "PATH".into(),
                value: "/bin".into(),
            }],
            user: User::default(),
            cwd: "/".into(),
            network: Network::default(),
            hostname: "step".into(),
            hosts: String::new(),
            resolv_conf: String::new(),
            security: Security::default(),
            shm_size: default_shm_size(),
            seccomp: None,
            cgroup: CgroupLimits::default(),
            ulimits: vec![],
            emulation: None,
            isolation: Isolation::Oci,
        }
    }

    #[test]
    fn a_well_formed_spec_passes() {
        assert_eq!(spec().validate(), Ok(()));
    }

    #[test]
    fn rejects_what_the_helper_could_not_run() {
        let mut s = spec();
        s.argv.clear();
        assert_eq!(s.validate(), Err(SpecError::EmptyArgv));

        let mut s = spec();
        s.cwd = "/a/../../etc".into();
        assert!(matches!(s.validate(), Err(SpecError::InsidePath { .. })));

        let mut s = spec();
        s.env.push(EnvVar {
            name: "A=B".into(),
            value: String::new(),
        });
        assert!(matches!(s.validate(), Err(SpecError::EnvName { .. })));

        let mut s = spec();
        s.rootfs = Rootfs::Overlay {
            lower: vec![],
            upper: "/u".into(),
            work: "/w".into(),
        };
        assert_eq!(s.validate(), Err(SpecError::NoLowerDir));

        let mut s = spec();
        s.mounts.push(BindMount {
            source: "relative".into(),
            target: "/mnt".into(),
            readonly: true,
        });
        assert!(matches!(s.validate(), Err(SpecError::HostPath { .. })));

        let mut s = spec();
        s.hostname = "x".repeat(65);
        assert!(matches!(s.validate(), Err(SpecError::Hostname { .. })));
    }

    #[test]
    fn chroot_isolation_takes_a_plain_rootfs_and_the_hosts_network_only() {
        let mut s = spec();
        s.isolation = Isolation::Chroot;
        assert_eq!(s.validate(), Err(SpecError::ChrootNetwork));
        s.network = Network::Host;
        assert_eq!(s.validate(), Ok(()));
        s.rootfs = Rootfs::Overlay {
            lower: vec!["/l".into()],
            upper: "/u".into(),
            work: "/w".into(),
        };
        assert_eq!(s.validate(), Err(SpecError::ChrootOverlay));
    }

    #[test]
    fn network_defaults_to_a_namespace_of_the_steps_own() {
        assert_eq!(Network::default(), Network::Private);
    }
}
