//! Creating the step's namespaces and setting up what lives in them
//! (hostname, loopback), plus the parent-death wiring that ties the step's
//! lifetime to the parent's.

use super::helper::{Context, SetupError};
use rustix::thread::UnshareFlags;
use std::os::fd::{AsRawFd, OwnedFd};

/// Arms SIGKILL on parent death, then checks the parent did not die first.
pub(crate) fn die_with_parent(parent: i32) -> Result<(), SetupError> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .context(|| "arming the parent-death signal".into())?;
    let current = rustix::process::getppid().map_or(0, |pid| pid.as_raw_nonzero().get());
    if current != parent {
        return Err(SetupError::Invalid(
            "the parent exited before the step started".into(),
        ));
    }
    Ok(())
}

/// The pid-1 child's version of [`die_with_parent`]: its parent (the helper)
/// lives outside its pid namespace, so liveness is read from a pipe whose
/// write end only the helper holds.
pub(crate) fn die_with_helper(alive: &OwnedFd) -> Result<(), SetupError> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .context(|| "arming the parent-death signal".into())?;
    let mut poll = [rustix::event::PollFd::new(
        alive,
        rustix::event::PollFlags::IN,
    )];
    let ready = rustix::event::poll(&mut poll, Some(&rustix::event::Timespec::default()))
        .context(|| "checking the helper is alive".into())?;
    if ready > 0 {
        return Err(SetupError::Invalid(
            "the sandbox helper exited before the step started".into(),
        ));
    }
    Ok(())
}

/// Makes the user namespace (rootless only); the parent maps it afterwards.
pub(crate) fn unshare_user() -> Result<(), SetupError> {
    unshare(UnshareFlags::NEWUSER, "the user namespace")
}

/// Makes the pid namespace that the next forked child becomes pid 1 of.
pub(crate) fn unshare_pid() -> Result<(), SetupError> {
    unshare(UnshareFlags::NEWPID, "the pid namespace")
}

/// Makes the step's own mount, uts and ipc namespaces (its network
/// namespace is the helper's; see `network`).
pub(crate) fn unshare_step() -> Result<(), SetupError> {
    let flags = UnshareFlags::NEWNS | UnshareFlags::NEWUTS | UnshareFlags::NEWIPC;
    unshare(flags, "the mount, uts and ipc namespaces")
}

/// Makes the network namespace the step's pid 1 will inherit.
pub(crate) fn unshare_net() -> Result<(), SetupError> {
    unshare(UnshareFlags::NEWNET, "the network namespace")
}

fn unshare(flags: UnshareFlags, what: &str) -> Result<(), SetupError> {
    // SAFETY: none of the flags is CLONE_FILES or CLONE_FS-sharing related,
    // which is what makes unshare unsafe in rustix's terms (file descriptor
    // tables shared with other threads); the helper is single-threaded.
    unsafe { rustix::thread::unshare_unsafe(flags) }.context(|| format!("unsharing {what}"))
}

/// Sets the hostname of the step's uts namespace.
pub(crate) fn set_hostname(name: &str) -> Result<(), SetupError> {
    rustix::system::sethostname(name.as_bytes())
        .context(|| format!("setting the hostname {name:?}"))
}

/// Brings `lo` up in a fresh network namespace (it starts down).
pub(crate) fn loopback_up() -> Result<(), SetupError> {
    let what = || "bringing up the loopback interface".to_string();
    let socket = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )
    .context(what)?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own.
    unsafe {
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) < 0 {
            return Err(std::io::Error::last_os_error()).context(what);
        }
        request.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) < 0 {
            return Err(std::io::Error::last_os_error()).context(what);
        }
    }
    Ok(())
}

/// The pipes by which a rootful step's pid 1, entering a user namespace
/// of its own (so that it has a binfmt_misc instance of its own, for an
/// emulated step), has the helper map every ID in it to itself: the step's
/// IDs, files and capabilities keep their meaning, now relative to that
/// namespace. Made before the fork; each side takes its ends.
pub(crate) struct IdentityPipes {
    ready: (OwnedFd, OwnedFd),
    go: (OwnedFd, OwnedFd),
}

/// Pid 1's ends of [`IdentityPipes`].
pub(crate) struct IdentityChild {
    ready: OwnedFd,
    go: OwnedFd,
}

/// The helper's ends of [`IdentityPipes`].
pub(crate) struct IdentityHelper {
    ready: OwnedFd,
    go: OwnedFd,
}

impl IdentityPipes {
    /// Both pipes, close-on-exec.
    pub(crate) fn new() -> Result<IdentityPipes, SetupError> {
        let pipe = || {
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .context(|| "creating a user namespace pipe".into())
        };
        Ok(IdentityPipes {
            ready: pipe()?,
            go: pipe()?,
        })
    }

    /// Pid 1's ends (the helper's close with this value).
    pub(crate) fn child(self) -> IdentityChild {
        IdentityChild {
            ready: self.ready.1,
            go: self.go.0,
        }
    }

    /// The helper's ends (pid 1's close with this value).
    pub(crate) fn helper(self) -> IdentityHelper {
        IdentityHelper {
            ready: self.ready.0,
            go: self.go.1,
        }
    }
}

impl IdentityChild {
    /// Makes the user namespace, waits until the helper has mapped it,
    /// then makes a mount namespace it owns (a copy of the current one,
    /// whose mounts the step can then neither change nor remove).
    pub(crate) fn enter(self) -> Result<(), SetupError> {
        unshare(UnshareFlags::NEWUSER, "the emulated step's user namespace")?;
        rustix::io::write(&self.ready, b"u").context(|| "asking the helper for ID maps".into())?;
        let mut go = [0u8; 1];
        let read = rustix::io::read(&self.go, &mut go).context(|| "waiting for ID maps".into())?;
        if read == 0 {
            return Err(SetupError::Invalid(
                "the helper did not map the emulated step's user namespace".into(),
            ));
        }
        unshare(UnshareFlags::NEWNS, "the emulated step's mount namespace")
    }
}

impl IdentityHelper {
    /// Once pid 1 (`pid`) has made its user namespace, maps every user
    /// and group ID to itself. Nothing to do when pid 1 failed first.
    pub(crate) fn map(self, pid: libc::pid_t) -> Result<(), SetupError> {
        let mut ready = [0u8; 1];
        let read = rustix::io::read(&self.ready, &mut ready)
            .context(|| "waiting for the step's user namespace".into())?;
        if read == 0 {
            return Ok(());
        }
        for file in ["uid_map", "gid_map"] {
            let path = format!("/proc/{pid}/{file}");
            std::fs::write(&path, "0 0 4294967295\n").context(|| format!("writing {path}"))?;
        }
        rustix::io::write(&self.go, b"g")
            .map(drop)
            .context(|| "confirming the ID maps".into())
    }
}
