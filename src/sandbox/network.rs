//! The step's network namespace.
//!
//! [`Network::Private`] (the default) and [`Network::None`] give the step a
//! network namespace of its own, made by the helper before it forks the
//! step's pid 1, so the step sees neither the host's interfaces, nor the
//! services bound to the host's 127.0.0.1, nor its abstract unix sockets
//! (those belong to a network namespace too).
//!
//! A private network gets outbound access from slirp4netns, root and
//! rootless alike: it runs on the host's side (in the helper's user
//! namespace when rootless), makes `tap0` in the step's namespace, and
//! turns the step's packets into sockets of its own on the host's side
//! (NAT). Its `--disable-host-loopback` refuses the gateway address that
//! would reach the host's 127.0.0.1, and `--disable-dns` turns off the DNS
//! forwarder at 10.0.2.3 (the step's `/etc/resolv.conf` names resolvers it
//! reaches by NAT instead). slirp4netns reports on a pipe once the
//! namespace is configured, and exits once the other pipe it watches
//! closes: when the helper is done with the step, or dies.

use super::helper::{Context, SetupError};
use super::namespaces;
use super::spec::Network;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The program that connects a private network namespace to the host's.
pub(crate) const SLIRP4NETNS: &str = "slirp4netns";

/// Options that keep slirp4netns from opening more than outbound NAT:
/// no route to the host's loopback, no DNS forwarder, and slirp4netns
/// itself in an empty mount namespace with a seccomp filter.
const SLIRP4NETNS_OPTIONS: [&str; 6] = [
    "--configure",
    "--mtu=65520",
    "--disable-host-loopback",
    "--disable-dns",
    "--enable-sandbox",
    "--enable-seccomp",
];

/// The step's interface, made by slirp4netns.
const TAP: &str = "tap0";

/// The device slirp4netns opens to make the step's `tap0`.
const TUN: &str = "/dev/net/tun";

/// Finds slirp4netns (in `PATH`) when `network` needs it, and checks that
/// the caller may open [`TUN`] (rootless, the step's user namespace has
/// the caller's rights on it); run by the parent, as the helper has no
/// environment. `None`: the network needs no helper.
pub(crate) fn nat_program(network: Network) -> Result<Option<PathBuf>, NatUnavailable> {
    match network {
        Network::Private => {
            let program =
                crate::userns::find_in_path(SLIRP4NETNS).ok_or(NatUnavailable::NotInstalled)?;
            let access = rustix::fs::Access::READ_OK | rustix::fs::Access::WRITE_OK;
            rustix::fs::access(TUN, access).map_err(|err| NatUnavailable::Tun(err.into()))?;
            Ok(Some(program))
        }
        Network::Host | Network::None => Ok(None),
    }
}

/// Why a private network cannot be set up on this machine.
#[derive(Debug, thiserror::Error)]
pub enum NatUnavailable {
    /// slirp4netns is not installed.
    #[error(
        "RUN steps get their own network through slirp4netns, which is not in PATH: install it \
         (Debian: apt-get install slirp4netns), or build with --network host (the host's \
         network) or --network none (no network)"
    )]
    NotInstalled,
    /// The tun device is missing or out of the caller's reach.
    #[error(
        "RUN steps get their own network through slirp4netns, which needs {TUN} readable and \
         writable ({0}; Debian's udev makes it mode 0666: `chmod 0666 {TUN}`, or `modprobe tun` \
         if it is missing), or build with --network host or --network none"
    )]
    Tun(std::io::Error),
}

/// Moves the helper into the step's network namespace (its children, the
/// step's pid 1 first, inherit it), connected as `network` says; `nat` is
/// the slirp4netns program for a private network and `log` where its
/// messages go. Returns the running slirp4netns, which serves the namespace
/// until dropped.
pub(crate) fn enter(
    network: Network,
    nat: Option<&Path>,
    log: &Path,
) -> Result<Option<Nat>, SetupError> {
    match (network, nat) {
        (Network::Host, _) => Ok(None),
        (Network::None, _) => namespaces::unshare_net().map(|()| None),
        (Network::Private, Some(program)) => Nat::start(program, log).map(Some),
        (Network::Private, None) => Err(SetupError::Invalid(format!(
            "a private network needs {SLIRP4NETNS}, and the request names none"
        ))),
    }
}

/// A running slirp4netns, the helper's child; dropping this closes the pipe
/// it watches, and it exits.
///
/// Its exit is not waited for: closing `tap0` unregisters the device,
/// which takes the kernel tens of milliseconds under load (RCU grace
/// periods) that the step need not wait; the helper exits next, and
/// whoever inherits slirp4netns (init, or a subreaper) reaps it.
pub(crate) struct Nat {
    /// The program, for messages.
    program: PathBuf,
    /// Where its messages go.
    log: PathBuf,
    /// Readable (one byte) once the namespace is configured; EOF if
    /// slirp4netns failed.
    ready: OwnedFd,
    /// The only write end of the pipe slirp4netns watches (`--exit-fd`).
    _exit: OwnedFd,
}

impl Nat {
    /// Starts slirp4netns for a new network namespace and enters it.
    ///
    /// slirp4netns must run in the host's network namespace, and the step's
    /// namespace must exist before it starts: so a child forked here (still
    /// in the host's namespace) waits until the helper has unshared its own,
    /// then executes slirp4netns on it. It configures the namespace while
    /// the step's pid 1 prepares its mounts; [`Nat::wait_until_ready`].
    fn start(program: &Path, log: &Path) -> Result<Nat, SetupError> {
        let pipe = || {
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .context(|| "creating a pipe for slirp4netns".into())
        };
        let (go_read, go_write) = pipe()?;
        let (ready_read, ready_write) = pipe()?;
        let (exit_read, exit_write) = pipe()?;
        let log_file = std::fs::File::create(log)
            .context(|| format!("creating the slirp4netns log {}", log.display()))?;
        let helper = rustix::process::getpid();
        let argv = arguments(
            program,
            &format!("/proc/{}/ns/net", helper.as_raw_nonzero()),
            ready_write.as_raw_fd(),
            exit_read.as_raw_fd(),
        )?;

        // SAFETY: the helper is single-threaded, so the child may run
        // ordinary code until it executes slirp4netns.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(std::io::Error::last_os_error())
                .context(|| "forking for slirp4netns".into());
        }
        if pid == 0 {
            drop((go_write, ready_read, exit_write));
            // Its messages go to the log, which the helper reports on failure.
            let err = match redirect_stdio(log_file) {
                Ok(()) => launch(helper, &go_read, &[&ready_write, &exit_read], &argv),
                Err(err) => err,
            };
            eprintln!("starting {}: {err}", program.display());
            // SAFETY: _exit skips destructors, which belong to the helper.
            unsafe { libc::_exit(127) };
        }
        drop((go_read, ready_write, exit_read, log_file));
        let nat = Nat {
            program: program.to_path_buf(),
            log: log.to_path_buf(),
            ready: ready_read,
            _exit: exit_write,
        };
        namespaces::unshare_net()?;
        rustix::io::write(&go_write, b"g").context(|| "starting slirp4netns".into())?;
        Ok(nat)
    }

    /// Waits until slirp4netns has configured the namespace (`tap0` up,
    /// its address and default route set): run by the step's pid 1 before
    /// it leaves the host's file system (the log is there).
    pub(crate) fn wait_until_ready(&self) -> Result<(), SetupError> {
        let mut ready = [0u8; 1];
        let read = rustix::io::retry_on_intr(|| rustix::io::read(&self.ready, &mut ready))
            .context(|| "waiting for slirp4netns".into())?;
        if read == 0 {
            return Err(SetupError::Invalid(format!(
                "{} could not set up the step's network: {}",
                self.program.display(),
                last_lines(&self.log)
            )));
        }
        Ok(())
    }
}

/// slirp4netns' command line: the namespace by path, the pipes by number.
fn arguments(
    program: &Path,
    netns: &str,
    ready: i32,
    exit: i32,
) -> Result<Vec<CString>, SetupError> {
    let cstring = |bytes: &[u8]| {
        CString::new(bytes)
            .map_err(|_| SetupError::Invalid("a NUL byte in the slirp4netns path".into()))
    };
    let mut argv = vec![cstring(program.as_os_str().as_bytes())?];
    for arg in SLIRP4NETNS_OPTIONS
        .iter()
        .map(|option| (*option).to_owned())
        .chain([
            format!("--ready-fd={ready}"),
            format!("--exit-fd={exit}"),
            "--netns-type=path".to_owned(),
            netns.to_owned(),
            TAP.to_owned(),
        ])
    {
        argv.push(cstring(arg.as_bytes())?);
    }
    Ok(argv)
}

/// The forked child's part: waits for the helper's namespace, then becomes
/// slirp4netns; returns only on failure.
fn launch(
    helper: rustix::process::Pid,
    go: &OwnedFd,
    inherited: &[&OwnedFd],
    argv: &[CString],
) -> SetupError {
    let run = || -> Result<std::convert::Infallible, SetupError> {
        namespaces::die_with_parent(helper.as_raw_nonzero().get())?;
        // Out of the terminal's reach: it ends when the helper does.
        rustix::process::setsid().context(|| "starting a new session".into())?;
        let mut byte = [0u8; 1];
        let read = rustix::io::retry_on_intr(|| rustix::io::read(go, &mut byte))
            .context(|| "waiting for the step's network namespace".into())?;
        if read == 0 {
            return Err(SetupError::Invalid(
                "the helper ended before the step's network namespace existed".into(),
            ));
        }
        for fd in inherited {
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())
                .context(|| "passing a pipe to slirp4netns".into())?;
        }
        let mut pointers: Vec<*const libc::c_char> = argv.iter().map(|arg| arg.as_ptr()).collect();
        pointers.push(std::ptr::null());
        let environment: [*const libc::c_char; 1] = [std::ptr::null()];
        // SAFETY: both arrays are NULL-terminated and point at CStrings that
        // outlive the call.
        unsafe { libc::execve(pointers[0], pointers.as_ptr(), environment.as_ptr()) };
        Err(std::io::Error::last_os_error()).context(|| "executing slirp4netns".into())
    };
    match run() {
        Ok(never) => match never {},
        Err(err) => err,
    }
}

/// Points the child's stdin and stdout at `/dev/null`, its stderr at `log`.
fn redirect_stdio(log: std::fs::File) -> Result<(), SetupError> {
    let null = rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .context(|| "opening /dev/null".into())?;
    redirect(&null, 0)?;
    redirect(&null, 1)?;
    redirect(&OwnedFd::from(log), 2)
}

/// Makes `fd` number `number` (stdin, stdout or stderr) of the child.
fn redirect(fd: &OwnedFd, number: i32) -> Result<(), SetupError> {
    // SAFETY: dup2 onto a standard stream the child is about to replace.
    if unsafe { libc::dup2(fd.as_raw_fd(), number) } < 0 {
        return Err(std::io::Error::last_os_error()).context(|| format!("redirecting fd {number}"));
    }
    Ok(())
}

/// The end of slirp4netns' log, for an error message.
fn last_lines(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    match lines.len() {
        0 => "it exited without a message".to_owned(),
        n => lines[n.saturating_sub(5)..].join("; "),
    }
}
