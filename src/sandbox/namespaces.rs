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
