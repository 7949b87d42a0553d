//! The RUN sandbox: a step runs in fresh mount, pid, ipc, uts and network
//! namespaces (plus user when rootless; the host's network only with
//! `--network=host`; outbound NAT through slirp4netns by default, see
//! `network`), on an overlay of
//! the image's layers, with Docker's default capabilities (every one for
//! `RUN --security=insecure`).
//!
//! Without a devices cgroup, `nodev` is what keeps a step off the host's
//! devices: every mount it can write to or that holds image, context or
//! cache files is `nodev`, and only the curated `/dev` nodes (binds of the
//! host's) open. `/proc` and `/sys` carry Docker's masked and read-only
//! paths (see `masks`). Docker's seccomp filter (or the build's own, see
//! `seccomp`) is installed last, and each step gets a session keyring of
//! its own and no file descriptor builder's caller left open (`fds`).
//! `no_new_privs` stays off, as with Docker, so setuid programs work. An
//! insecure step keeps neither the masks nor the filter, as with
//! `docker run --privileged`.
//!
//! A step for a foreign platform runs its binaries under QEMU user-mode
//! emulation (`emulation` decides whether and how; `binfmt` registers the
//! interpreter in the step's own user namespace; rootful, the step's pid 1
//! enters a user namespace that maps every ID to itself for that).
//!
//! Each step runs in a cgroup of its own where the host lets builder make
//! one (`cgroup`: a pids limit, `--memory`), and with RLIMITs of its own
//! rather than builder's caller's (`rlimits`: Docker's, `--ulimit` over
//! them).
//!
//! Where namespaces and mounts are refused (an unprivileged container),
//! `chroot` runs the step chrooted into a plain-directory rootfs instead,
//! without namespaces (but the user namespace when rootless) or mounts
//! ([`Isolation::Chroot`]); [`Sandbox::probe`] tells which one works.
//!
//! The async parent never forks itself to build namespaces: it re-executes
//! the builder binary as `builder __sandbox` (the `helper` module) with a JSON
//! [`Spec`] on stdin. The helper is single-threaded, so it may unshare and
//! fork safely; its pid-1 child becomes the step. [`Sandbox::run`] streams the
//! step's output and returns its exact [`Outcome`].
//!
//! After a step, an overlay upper directory holds only what the step changed:
//! the mountpoints for `/proc`, `/sys`, `/dev` and `/etc/{hosts,hostname,
//! resolv.conf}` live in an extra top lower layer made per step (as Docker's
//! init layer), so they never reach the upper directory; so do the missing
//! targets of RUN --mount (see `targets`). Only the working directory, when
//! missing, is created there. Secrets reach the step inside the request
//! (never through a host file) and are written to a tmpfs of the step's own
//! mount namespace (`secret`).
//! That layer's `/etc`, `/proc`, `/sys` and `/dev` copy the image's mode,
//! owner and times, so a step writing into `/etc` copies `/etc` up as the
//! image has it (extended attributes of those four directories are not
//! copied). A plain-directory rootfs gets the missing mountpoints created
//! before the step and removed after it.

mod binfmt;
mod capabilities;
mod cgroup;
mod chroot;
pub mod emulation;
mod exec;
mod fds;
pub(crate) mod helper;
mod init;
mod keyring;
mod masks;
mod mountpoints;
mod mounts;
mod namespaces;
mod network;
mod process;
mod protocol;
mod rlimits;
pub mod seccomp;
mod secret;
pub mod spec;
mod targets;

pub use crate::userns::IdMapError;
pub use cgroup::{
    CgroupError, CgroupLimits, DEFAULT_PIDS_LIMIT, unavailable_notice as cgroup_unavailable_notice,
};
pub use fds::cloexec_inherited;
pub use network::NatUnavailable;
pub use process::{Outcome, Sandbox, SandboxError, Stream, run};
pub use rlimits::{Resource, Ulimit, UlimitError};
pub use secret::{SecretBytes, SecretEnv, SecretFile};
pub use spec::{
    BindMount, DEFAULT_SHM_SIZE, EnvVar, Isolation, Network, Rootfs, Security, Spec, SpecError,
    TmpfsMount, User,
};
