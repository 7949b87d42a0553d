//! Hiding and freezing the parts of `/proc` and `/sys` that describe or
//! steer the host rather than the step, as runc does with Docker's default
//! spec: the masked paths read as empty, the read-only ones refuse writes.
//! `RUN --security=insecure` keeps them as `docker run --privileged` does.

use super::helper::{Context, SetupError};
use super::mounts;
use super::spec::Security;
use rustix::mount::{MountAttrFlags, MountFlags};
use std::io::ErrorKind;
use std::path::Path;

/// Paths a step sees empty: a file becomes `/dev/null`, a directory an
/// empty read-only tmpfs (Docker's `MaskedPaths`).
const MASKED: [&str; 12] = [
    "proc/asound",
    "proc/acpi",
    "proc/interrupts",
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
    "proc/scsi",
    "sys/firmware",
    "sys/devices/virtual/powercap",
];

/// Paths a step may read but not write (Docker's `ReadonlyPaths`): the
/// kernel's tunables, which are mostly not namespaced.
const READ_ONLY: [&str; 5] = [
    "proc/bus",
    "proc/fs",
    "proc/irq",
    "proc/sys",
    "proc/sysrq-trigger",
];

/// Masks and freezes the paths above under `root` (where `/proc` and
/// `/sys` are mounted already) unless `security` is insecure. A path the
/// kernel does not have is skipped.
pub(crate) fn apply(root: &Path, security: Security) -> Result<(), SetupError> {
    if security == Security::Insecure {
        return Ok(());
    }
    let locked = MountAttrFlags::MOUNT_ATTR_NOSUID
        | MountAttrFlags::MOUNT_ATTR_NODEV
        | MountAttrFlags::MOUNT_ATTR_NOEXEC;
    for name in MASKED {
        let path = root.join(name);
        match kind(&path)? {
            None => {}
            Some(true) => rustix::mount::mount(
                "tmpfs",
                &path,
                "tmpfs",
                MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
                None,
            )
            .context(|| format!("masking /{name}"))?,
            Some(false) => mounts::bind(Path::new("/dev/null"), &path, MountAttrFlags::empty())?,
        }
    }
    for name in READ_ONLY {
        let path = root.join(name);
        if kind(&path)?.is_some() {
            mounts::bind(&path, &path, locked | MountAttrFlags::MOUNT_ATTR_RDONLY)?;
        }
    }
    Ok(())
}

/// Whether `path` is a directory (`Some(true)`), something else
/// (`Some(false)`) or absent (`None`).
fn kind(path: &Path) -> Result<Option<bool>, SetupError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta.is_dir())),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).context(|| format!("inspecting {}", path.display())),
    }
}
