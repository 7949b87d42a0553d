//! `builder __sandbox`: the re-executed, single-threaded helper.
//!
//! It reads the [`Request`] on stdin, arms the parent-death signal, makes the
//! user namespace when rootless (and waits until the parent has mapped it),
//! makes the step's network namespace (with slirp4netns serving it, see
//! `network`), unshares the pid namespace, fills the scratch directory, and forks the
//! step's pid 1 (see `init`). It then waits for that child and reports its
//! exact end on the status pipe (fd 3).

use super::mountpoints::{self, Created};
use super::protocol::{GO, IdMapSummary, Message, Request, STATUS_FD};
use super::spec::{Isolation, Rootfs, Spec, User};
use super::targets::{self, Made, Target};
use super::{cgroup, chroot, fds, init, namespaces, network};
use std::fs;
use std::io::{BufRead, Write};
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Why the sandbox could not be set up; sent to the parent as text.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A system call failed.
    #[error("{what}: {source}")]
    Os {
        /// What the helper was doing.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The request cannot be carried out as given.
    #[error("{0}")]
    Invalid(String),
    /// overlayfs refused the step's rootfs (not mountable here, or not
    /// with these options): the caller may fall back to a copied rootfs.
    #[error(transparent)]
    Overlay(Box<SetupError>),
}

impl SetupError {
    /// The status message that reports this failure to the parent.
    pub(crate) fn message(&self) -> Message {
        match self {
            SetupError::Overlay(_) => Message::OverlayUnavailable(self.to_string()),
            _ => Message::SetupFailed(self.to_string()),
        }
    }
}

/// Adds what the helper was doing to an OS error.
pub(crate) trait Context<T> {
    /// Wraps the error with `what()`.
    fn context(self, what: impl FnOnce() -> String) -> Result<T, SetupError>;
}

impl<T, E: Into<std::io::Error>> Context<T> for Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, SetupError> {
        self.map_err(|err| SetupError::Os {
            what: what(),
            source: err.into(),
        })
    }
}

/// Exit code of the helper (and of a pid 1 that failed before exec) when
/// setup failed; the parent reads the reason from the status pipe instead.
pub(crate) const SETUP_FAILED: u8 = 125;

/// Entry point of `builder __sandbox`.
pub fn main() -> ExitCode {
    let status = match StatusPipe::take() {
        Ok(status) => status,
        Err(err) => {
            eprintln!(
                "builder __sandbox is run by builder itself, with a status pipe on fd {STATUS_FD}: {err}"
            );
            return ExitCode::from(SETUP_FAILED);
        }
    };
    // Only stdio and the status pipe are the helper's to pass on.
    if let Err(err) = fds::close_from(STATUS_FD as u32 + 1) {
        let _ = status.send(&Message::SetupFailed(format!(
            "closing inherited file descriptors: {err}"
        )));
        return ExitCode::from(SETUP_FAILED);
    }
    match supervise(&status) {
        Ok(ended) => {
            // If the parent is gone there is nobody left to tell.
            let _ = status.send(&ended);
            ExitCode::SUCCESS
        }
        Err(err) => {
            let _ = status.send(&err.message());
            ExitCode::from(SETUP_FAILED)
        }
    }
}

/// The helper's end of the status pipe.
pub(crate) struct StatusPipe(OwnedFd);

impl StatusPipe {
    fn take() -> std::io::Result<StatusPipe> {
        // SAFETY: fd 3 is only borrowed for the fstat that proves it is open.
        let stat = rustix::fs::fstat(unsafe { BorrowedFd::borrow_raw(STATUS_FD) })?;
        if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::Fifo {
            return Err(std::io::Error::other("fd 3 is not a pipe"));
        }
        // SAFETY: fd 3 is open (checked above) and nothing else in this
        // process owns it; it is inherited from the parent for us alone.
        let fd = unsafe { OwnedFd::from_raw_fd(STATUS_FD) };
        // The step must not inherit it.
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
        Ok(StatusPipe(fd))
    }

    /// Sends one message as a JSON line.
    pub(crate) fn send(&self, message: &Message) -> Result<(), SetupError> {
        let mut line = serde_json::to_vec(message)
            .map_err(|err| SetupError::Invalid(format!("encoding a status message: {err}")))?;
        line.push(b'\n');
        fs::File::from(
            self.0
                .try_clone()
                .context(|| "duplicating the status pipe".into())?,
        )
        .write_all(&line)
        .context(|| "writing to the status pipe".into())
    }
}

fn supervise(status: &StatusPipe) -> Result<Message, SetupError> {
    let mut stdin = std::io::stdin().lock();
    let mut request: Request = {
        // The line may hold secrets: it is wiped once parsed.
        let line = zeroize::Zeroizing::new(read_line(&mut stdin)?);
        serde_json::from_str(&line)
            .map_err(|err| SetupError::Invalid(format!("reading the sandbox request: {err}")))?
    };
    request
        .spec
        .validate()
        .map_err(|err| SetupError::Invalid(err.to_string()))?;
    namespaces::die_with_parent(request.parent_pid)?;
    // Before any namespace, so every process of the step is in it.
    cgroup::join(&request.cgroup).context(|| "setting up the step's cgroup".into())?;
    let chroot = request.spec.isolation == Isolation::Chroot;
    if let Some(map) = request.user_namespace {
        namespaces::unshare_user().map_err(|err| match chroot {
            true => SetupError::Invalid(format!(
                "{err}: run as a user other than root, chroot isolation still needs a user \
                 namespace (to chroot, and for the image's file owners), which this host \
                 refuses; run builder as root here"
            )),
            false => err,
        })?;
        status.send(&Message::UserNamespaceReady)?;
        if read_line(&mut stdin)? != GO {
            return Err(SetupError::Invalid(
                "the parent did not confirm the user namespace's id maps".into(),
            ));
        }
        check_mapped(&request.spec.user, map)?;
    }
    if chroot {
        // Chroot isolation needs nothing more of the host than that.
        if request.probe {
            return Ok(Message::Exited(0));
        }
        return chroot::supervise(status, &mut request);
    }
    // Until dropped (after the step), slirp4netns serves a private network.
    let network = network::enter(
        request.spec.network,
        request.nat.as_deref(),
        &request.scratch.join("slirp4netns.log"),
    )?;
    namespaces::unshare_pid()?;
    let scratch = Scratch::prepare(&request.scratch, &request.spec)?;
    let (alive_read, alive_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .context(|| "creating the liveness pipe".into())?;
    // Rootful, an emulated step's pid 1 enters a user namespace of its own
    // (for its binfmt_misc instance), which the helper maps.
    let registers = (request.spec.emulation.as_ref()).is_some_and(|e| e.binfmt().is_some());
    let identity = (registers && request.user_namespace.is_none())
        .then(namespaces::IdentityPipes::new)
        .transpose()?;

    // SAFETY: the helper is single-threaded (no runtime, no threads spawned),
    // so the child may keep running ordinary Rust code after fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).context(|| "forking the step's pid 1".into());
    }
    if pid == 0 {
        drop(alive_write);
        let identity = identity.map(namespaces::IdentityPipes::child);
        let err = init::run(&request, &scratch, alive_read, network.as_ref(), identity);
        let _ = status.send(&err.message());
        // SAFETY: _exit skips destructors, which belong to the helper (the
        // plain-rootfs mountpoints it removes after the step).
        unsafe { libc::_exit(i32::from(SETUP_FAILED)) };
    }
    drop(alive_read);
    // Only the step needs its secrets; the helper wipes its copies now.
    request.spec.secrets.clear();
    request.spec.secret_env.clear();
    if let Some(identity) = identity.map(namespaces::IdentityPipes::helper) {
        // On failure pid 1 reads EOF and gives up; the reason goes first.
        if let Err(err) = identity.map(pid) {
            status.send(&err.message())?;
        }
    }
    let ended = wait_for(pid);
    let cleaned = scratch.cleanup();
    drop(network);
    drop(alive_write);
    let ended = ended?;
    cleaned?;
    Ok(ended)
}

fn read_line(input: &mut impl BufRead) -> Result<String, SetupError> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context(|| "reading from the parent".into())?;
    if line.is_empty() {
        return Err(SetupError::Invalid(
            "the parent closed the request pipe".into(),
        ));
    }
    Ok(line.trim_end_matches('\n').to_string())
}

/// A single-ID map only has root: refuse a user it cannot represent rather
/// than let `setuid` fail half-way with a bare EINVAL.
fn check_mapped(user: &User, map: IdMapSummary) -> Result<(), SetupError> {
    let bad_gid = std::iter::once(&user.gid)
        .chain(&user.additional_gids)
        .find(|gid| **gid >= map.gids);
    if user.uid >= map.uids || bad_gid.is_some() {
        return Err(SetupError::Invalid(format!(
            "user {}:{} (groups {:?}) is not mapped in the rootless user namespace, which has \
             uids 0..{} and gids 0..{}; grant a range in /etc/subuid and /etc/subgid and \
             install newuidmap/newgidmap",
            user.uid, user.gid, user.additional_gids, map.uids, map.gids
        )));
    }
    if !map.setgroups && !user.additional_gids.is_empty() {
        return Err(SetupError::Invalid(
            "supplementary groups need a subordinate id range (/etc/subgid) when rootless".into(),
        ));
    }
    Ok(())
}

pub(crate) fn wait_for(pid: libc::pid_t) -> Result<Message, SetupError> {
    let pid = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| SetupError::Invalid("fork returned pid 0 to the parent".into()))?;
    loop {
        match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(err) => return Err(err).context(|| "waiting for the step".into()),
            Ok(Some((_, status))) => {
                if let Some(code) = status.exit_status() {
                    return Ok(Message::Exited(code));
                }
                if let Some(signal) = status.terminating_signal() {
                    return Ok(Message::Signaled(signal));
                }
            }
            Ok(None) => {}
        }
    }
}

/// The step's scratch directory (made and removed by the parent, so that
/// even a killed helper leaves nothing behind): the rootfs mountpoint, the
/// `/etc` files bind-mounted into the step, and the mountpoint layer.
pub(crate) struct Scratch {
    dir: PathBuf,
    /// Mountpoints created in a plain-directory rootfs.
    created: Option<Created>,
    /// Mount targets created in a plain-directory rootfs, and that rootfs.
    targets: Option<(PathBuf, Made)>,
}

impl Scratch {
    fn prepare(dir: &Path, spec: &Spec) -> Result<Scratch, SetupError> {
        let scratch = Scratch {
            dir: dir.to_path_buf(),
            created: None,
            targets: None,
        };
        fs::create_dir(scratch.root()).context(|| "creating the rootfs mountpoint".into())?;
        fs::create_dir(scratch.dir.join("etc")).context(|| "creating etc".into())?;
        for (name, content) in [
            ("hosts", spec.hosts.as_str()),
            ("hostname", &format!("{}\n", spec.hostname)),
            ("resolv.conf", spec.resolv_conf.as_str()),
        ] {
            let path = scratch.etc_file(name);
            fs::write(&path, content).context(|| format!("writing {}", path.display()))?;
        }
        match &spec.rootfs {
            Rootfs::Overlay { lower, upper, .. } => {
                fs::create_dir(scratch.mountpoint_layer())
                    .context(|| "creating the mountpoint layer".into())?;
                let stack: Vec<PathBuf> = std::iter::once(upper).chain(lower).cloned().collect();
                mountpoints::build_layer(&scratch.mountpoint_layer(), &stack)?;
                Ok(scratch)
            }
            Rootfs::Directory(root) => {
                let created = Created::create_missing(root)?;
                let made = match Target::of(spec).and_then(|t| targets::create(root, &t)) {
                    Ok(made) => made,
                    Err(err) => {
                        let _ = created.remove();
                        return Err(err);
                    }
                };
                Ok(Scratch {
                    created: Some(created),
                    targets: Some((root.clone(), made)),
                    ..scratch
                })
            }
        }
    }

    /// Where the step's rootfs is mounted before pivot_root.
    pub(crate) fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// The host file behind the step's `/etc/<name>`.
    pub(crate) fn etc_file(&self, name: &str) -> PathBuf {
        self.dir.join("etc").join(name)
    }

    /// Where the step's pid 1 mounts the tmpfs holding its secret files;
    /// on the host it stays an empty directory.
    pub(crate) fn secrets(&self) -> PathBuf {
        self.dir.join("secrets")
    }

    /// The top lower layer holding the mountpoints (overlay rootfs only).
    pub(crate) fn mountpoint_layer(&self) -> PathBuf {
        self.dir.join("mountpoints")
    }

    /// The workdir of the overlay that makes mount targets in the
    /// mountpoint layer.
    pub(crate) fn setup_work(&self) -> PathBuf {
        self.dir.join("setup-work")
    }

    /// Removes the mountpoints and mount targets made in a plain-directory
    /// rootfs.
    fn cleanup(self) -> Result<(), SetupError> {
        let targets = self
            .targets
            .map_or(Ok(()), |(root, made)| made.remove(&root));
        let created = self.created.map_or(Ok(()), Created::remove);
        targets.and(created)
    }
}
