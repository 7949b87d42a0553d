//! The step's pid 1, forked by the helper: builds the step's namespaces and
//! filesystem, becomes the step's user and executes its program.

use super::emulation::Registration;
use super::helper::{Context, Scratch, SetupError};
use super::namespaces::IdentityChild;
use super::network::Nat;
use super::protocol::Request;
use super::spec::{Network, Rootfs, Spec, User};
use super::targets::Target;
use super::{capabilities, exec, fds, keyring, masks, mounts, namespaces, rlimits, secret};
use std::os::fd::{AsFd, OwnedFd};

/// Runs the step; returns only if setting it up failed.
pub(crate) fn run(
    request: &Request,
    scratch: &Scratch,
    alive: OwnedFd,
    nat: Option<&Nat>,
    identity: Option<IdentityChild>,
) -> SetupError {
    match prepare(request, scratch, alive, nat, identity) {
        // A probe only checks that the sandbox can be set up here.
        Ok(()) if request.probe => {
            // SAFETY: _exit skips destructors, which belong to the helper.
            unsafe { libc::_exit(0) }
        }
        Ok(()) if request.spec.emulation.is_some() => exec_as_child(&request.spec),
        Ok(()) => exec::exec(&request.spec),
        Err(err) => err,
    }
}

/// Runs an emulated step as pid 1's child; pid 1 reaps, then exits with
/// the step's status (128 + the signal that killed it, as a shell reports
/// it). QEMU ends a program a signal kills by sending itself that signal,
/// which the kernel never delivers to a pid 1: as pid 1 it would wait
/// forever. Returns only in the child, if executing the step failed.
fn exec_as_child(spec: &Spec) -> SetupError {
    // SAFETY: pid 1 is single-threaded (forked from the single-threaded
    // helper), so the child may keep running ordinary Rust code.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return SetupError::Os {
            what: "forking the emulated step".into(),
            source: std::io::Error::last_os_error(),
        };
    }
    if child == 0 {
        return exec::exec(spec);
    }
    // The step must not reach pid 1 (builder's own image): it keeps no
    // descriptor (the status pipe to builder, stdio), and, not dumpable,
    // its `/proc/1/{exe,fd,mem}` and ptrace are closed to the step.
    // SAFETY: plain system calls on no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
    }
    let code = loop {
        let mut status = 0;
        // SAFETY: waits for any child of pid 1 (orphans are reparented
        // here); `status` is a live local.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == child {
            break if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                libc::WEXITSTATUS(status)
            };
        }
        if pid < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break 128;
        }
    };
    // SAFETY: ends pid 1 (and with it the step's pid namespace) without
    // running destructors that belong to the helper's process image.
    unsafe { libc::_exit(code) }
}

fn prepare(
    request: &Request,
    scratch: &Scratch,
    alive: OwnedFd,
    nat: Option<&Nat>,
    identity: Option<IdentityChild>,
) -> Result<(), SetupError> {
    let spec = &request.spec;
    let rootless = request.user_namespace.is_some();
    namespaces::die_with_helper(&alive)?;
    drop(alive);
    // The emulator is opened while the host's files are in view.
    let emulator = match spec.emulation.as_ref().and_then(Registration::binfmt) {
        Some(binfmt) => Some((binfmt, binfmt.open_interpreter()?)),
        None => None,
    };
    // Detach from the caller's terminal: the step cannot read it nor get
    // its signals (a ^C reaches builder, which cancels the step).
    rustix::process::setsid().context(|| "starting a new session".into())?;
    namespaces::unshare_step()?;

    mounts::make_private()?;
    if let Rootfs::Overlay { lower, .. } = &spec.rootfs {
        mounts::make_targets_in_layer(lower, &Target::of(spec)?, scratch, rootless)?;
    }
    mounts::mount_rootfs(&spec.rootfs, scratch, rootless, spec.security)?;
    let root = scratch.root();
    mounts::mount_proc(&root)?;
    // devpts refuses a gid the user namespace does not map.
    let tty_gid = request.user_namespace.is_none_or(|map| map.gids > 5);
    mounts::mount_dev(&root, tty_gid.then_some(5), spec.shm_size, spec.security)?;
    mounts::mount_sys(&root, spec.security)?;
    masks::apply(&root, spec.security)?;
    mounts::mount_etc_files(&root, scratch)?;
    let mut binds = mounts::detach_binds(&spec.mounts, spec.security)?;
    binds.extend(mounts::detach_tmpfs(&spec.tmpfs)?);
    binds.extend(mounts::detach_binds(
        &secret::stage_files(&spec.secrets, scratch)?,
        spec.security,
    )?);
    // slirp4netns has configured the network meanwhile, or says why not.
    nat.map_or(Ok(()), Nat::wait_until_ready)?;
    mounts::pivot(&root)?;
    mounts::attach_binds(binds)?;

    namespaces::set_hostname(&spec.hostname)?;
    if spec.network != Network::Host {
        namespaces::loopback_up()?;
    }
    std::fs::create_dir_all(&spec.cwd)
        .context(|| format!("creating the working directory {}", spec.cwd.display()))?;
    rustix::process::chdir(&spec.cwd)
        .context(|| format!("entering the working directory {}", spec.cwd.display()))?;
    stdin_from_null()?;
    // While pid 1 may still raise hard limits (root's CAP_SYS_RESOURCE).
    let pids_fallback = spec
        .cgroup
        .pids
        .filter(|_| rootless && request.cgroup.is_empty());
    rlimits::apply(&spec.ulimits, pids_fallback).map_err(SetupError::Invalid)?;
    // After what needs the host's user namespace (hard limits, the rootfs
    // and network set-up), before the capabilities go.
    if let Some((binfmt, interpreter)) = emulator {
        if let Some(identity) = identity {
            identity.enter()?;
        }
        binfmt.register(&interpreter)?;
    }

    keyring::join_new_session()?;
    // Nothing builder's caller left open reaches the step.
    fds::cloexec_from(3).context(|| "marking inherited file descriptors close-on-exec".into())?;
    // no_new_privs stays off, as in Docker and BuildKit, so setuid programs
    // work; what they can gain is bounded by the bounding set, the filter
    // (which outlives every exec) and the user namespace when rootless.
    capabilities::limit_bounding_set(spec.security, spec.isolation)?;
    install_seccomp(spec)?;
    become_user(
        &spec.user,
        request.user_namespace.is_none_or(|map| map.setgroups),
    )?;
    capabilities::set_final(spec.user.uid, spec.security, spec.isolation)
}

/// Installs the step's filter, if it has one. It must come before the
/// capabilities go: without no_new_privs the kernel wants CAP_SYS_ADMIN
/// for it. The calls left to make (setgroups, setresuid, capset, prctl,
/// execve) are ones Docker's profile allows.
fn install_seccomp(spec: &Spec) -> Result<(), SetupError> {
    match &spec.seccomp {
        Some(filter) => filter
            .install()
            .context(|| "installing the seccomp filter".into()),
        None => Ok(()),
    }
}

fn stdin_from_null() -> Result<(), SetupError> {
    let null = rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .context(|| "opening /dev/null".into())?;
    // SAFETY: fd 0 is the helper's request pipe, which the step must not
    // inherit; replacing it is the point.
    let mut stdin = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(0) };
    let duplicated =
        rustix::io::dup2(null.as_fd(), &mut stdin).context(|| "redirecting stdin".into());
    // fd 0 must stay open for the step.
    std::mem::forget(stdin);
    duplicated
}

/// Switches to the step's groups and user. Capabilities other than the
/// bounding set are left to [`capabilities::set_final`].
pub(crate) fn become_user(user: &User, may_setgroups: bool) -> Result<(), SetupError> {
    use rustix::process::{Gid, Uid};
    if may_setgroups {
        let groups: Vec<Gid> = user
            .additional_gids
            .iter()
            .map(|&gid| Gid::from_raw(gid))
            .collect();
        rustix::thread::set_thread_groups(&groups)
            .context(|| format!("setting the groups {:?}", user.additional_gids))?;
    }
    let gid = Gid::from_raw(user.gid);
    rustix::thread::set_thread_res_gid(gid, gid, gid)
        .context(|| format!("setting gid {}", user.gid))?;
    let uid = Uid::from_raw(user.uid);
    rustix::thread::set_thread_res_uid(uid, uid, uid)
        .context(|| format!("setting uid {}", user.uid))
}
