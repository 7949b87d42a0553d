//! Docker's default capability set, and dropping everything else; or, for
//! `RUN --security=insecure`, every capability builder holds.

use super::helper::{Context, SetupError};
use super::spec::{Isolation, Security};
use rustix::thread::{CapabilitySet, CapabilitySets};

/// The capabilities Docker grants a container by default. CAP_MKNOD stays
/// (debootstrap and package scripts make nodes for the image, and BuildKit
/// keeps it); without a devices cgroup, the `nodev` mounts of `mounts` are
/// what stop such a node from being opened.
pub(crate) const DOCKER_DEFAULT: CapabilitySet = CapabilitySet::CHOWN
    .union(CapabilitySet::DAC_OVERRIDE)
    .union(CapabilitySet::FSETID)
    .union(CapabilitySet::FOWNER)
    .union(CapabilitySet::MKNOD)
    .union(CapabilitySet::NET_RAW)
    .union(CapabilitySet::SETGID)
    .union(CapabilitySet::SETUID)
    .union(CapabilitySet::SETFCAP)
    .union(CapabilitySet::SETPCAP)
    .union(CapabilitySet::NET_BIND_SERVICE)
    .union(CapabilitySet::SYS_CHROOT)
    .union(CapabilitySet::KILL)
    .union(CapabilitySet::AUDIT_WRITE);

/// What a step that is not `--security=insecure` keeps: Docker's default
/// set; under chroot isolation without CAP_MKNOD (no `nodev` mount keeps a
/// node shut there) and CAP_SYS_CHROOT (with which root leaves a chroot).
fn default_for(isolation: Isolation) -> CapabilitySet {
    match isolation {
        Isolation::Oci => DOCKER_DEFAULT,
        Isolation::Chroot => DOCKER_DEFAULT
            .difference(CapabilitySet::MKNOD)
            .difference(CapabilitySet::SYS_CHROOT),
    }
}

/// Removes every capability outside what `security` grants from the
/// bounding set, so no later exec can regain it. Needs CAP_SETPCAP: call
/// before switching to the step's user.
pub(crate) fn limit_bounding_set(
    security: Security,
    isolation: Isolation,
) -> Result<(), SetupError> {
    if security == Security::Insecure {
        return Ok(());
    }
    let kept = default_for(isolation);
    let last = last_capability()?;
    for cap in 0..=last {
        let bit = 1u64.checked_shl(cap).unwrap_or(0);
        if kept.bits() & bit != 0 {
            continue;
        }
        // SAFETY: PR_CAPBSET_DROP takes an integer argument and no pointers.
        let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        if ret < 0 {
            return Err(std::io::Error::last_os_error())
                .context(|| format!("dropping capability {cap} from the bounding set"));
        }
    }
    Ok(())
}

/// Sets the effective and permitted sets to what `security` grants root
/// (a non-root user gets none, as with Docker) and empties the inheritable
/// and ambient sets, as Docker does since CVE-2022-24769.
pub(crate) fn set_final(
    uid: u32,
    security: Security,
    isolation: Isolation,
) -> Result<(), SetupError> {
    let granted = match (uid, security) {
        (0, Security::Sandbox) => default_for(isolation),
        (0, Security::Insecure) => held()?,
        _ => CapabilitySet::empty(),
    };
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: granted,
            permitted: granted,
            inheritable: CapabilitySet::empty(),
        },
    )
    .context(|| "setting the step's capabilities".into())?;
    rustix::thread::clear_ambient_capability_set()
        .context(|| "clearing the ambient capabilities".into())
}

/// Every capability the helper holds (all of root's, unless builder itself
/// runs with fewer, as in a container).
fn held() -> Result<CapabilitySet, SetupError> {
    rustix::thread::capabilities(None)
        .map(|sets| sets.permitted)
        .context(|| "reading the helper's capabilities".into())
}

/// The kernel's capability names (`CAP_…`), by number.
const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The capability called `name` (`CAP_SYS_ADMIN`), as seccomp profiles
/// name them; `None` for a name the kernel does not have.
pub(crate) fn named(name: &str) -> Option<CapabilitySet> {
    let number = NAMES.iter().position(|known| *known == name)?;
    Some(CapabilitySet::from_bits_retain(1 << number))
}

/// The highest capability number the running kernel knows.
/// The highest capability number the kernel knows, read from `/proc` once
/// (chroot isolation reads it before it leaves `/proc` behind).
pub(crate) fn last_capability() -> Result<u32, SetupError> {
    static LAST: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    if let Some(last) = LAST.get() {
        return Ok(*last);
    }
    let last = read_last_capability()?;
    Ok(*LAST.get_or_init(|| last))
}

fn read_last_capability() -> Result<u32, SetupError> {
    let path = "/proc/sys/kernel/cap_last_cap";
    let text = std::fs::read_to_string(path).context(|| format!("reading {path}"))?;
    text.trim()
        .parse()
        .map_err(|err| SetupError::Invalid(format!("{path} holds {text:?}: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_set_is_dockers() {
        // CapEff of a root process in `docker run` on Linux.
        assert_eq!(DOCKER_DEFAULT.bits(), 0x00000000a80425fb);
    }

    #[test]
    fn chroot_steps_can_neither_make_nodes_nor_chroot() {
        let chroot = default_for(Isolation::Chroot);
        assert!(!chroot.contains(CapabilitySet::MKNOD));
        assert!(!chroot.contains(CapabilitySet::SYS_CHROOT));
        assert_eq!(
            chroot.union(CapabilitySet::MKNOD | CapabilitySet::SYS_CHROOT),
            default_for(Isolation::Oci)
        );
    }

    #[test]
    fn names_are_the_kernels() {
        assert_eq!(named("CAP_CHOWN"), Some(CapabilitySet::CHOWN));
        assert_eq!(named("CAP_SYS_ADMIN"), Some(CapabilitySet::SYS_ADMIN));
        assert_eq!(named("CAP_AUDIT_WRITE"), Some(CapabilitySet::AUDIT_WRITE));
        assert_eq!(named("CAP_BPF"), Some(CapabilitySet::BPF));
        assert_eq!(
            named("CAP_CHECKPOINT_RESTORE"),
            Some(CapabilitySet::CHECKPOINT_RESTORE)
        );
        assert_eq!(named("CAP_NOPE"), None);
    }
}
