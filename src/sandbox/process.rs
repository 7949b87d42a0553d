//! The parent side: spawns the helper, feeds it the spec, writes the id maps
//! when rootless, streams the step's output and reports how it ended.

use super::cgroup::{CgroupError, CgroupLimits, StepCgroup};
use super::protocol::{GO, Message, Request, STATUS_FD};
use super::spec::{DEFAULT_SHM_SIZE, Isolation, Network, Rootfs, Security, Spec, SpecError, User};
use crate::layer::owners::OwnerMap;
use crate::userns::{IdMap, IdMapError};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};

/// Which of the step's output streams a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The step's standard output.
    Stdout,
    /// The step's standard error.
    Stderr,
}

/// How the step's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It exited with this code (0 is success).
    Exited(i32),
    /// It was killed by this signal number.
    Signaled(i32),
    /// It failed after the kernel killed it, or one of its processes, for
    /// want of memory: over the step's cgroup's limit (`--memory`) or one
    /// above it.
    OutOfMemory,
}

impl Outcome {
    /// Whether the step succeeded (exit code 0).
    pub fn success(self) -> bool {
        self == Outcome::Exited(0)
    }
}

/// Why a step could not be run (as opposed to running and failing, which is
/// an [`Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The spec is malformed.
    #[error("invalid sandbox spec: {0}")]
    Spec(#[from] SpecError),
    /// The step's seccomp filter could not be compiled.
    #[error("seccomp: {0}")]
    Seccomp(#[from] super::seccomp::SeccompError),
    /// The helper process could not be started or talked to.
    #[error("sandbox helper {helper}: {source}")]
    Helper {
        /// The helper executable.
        helper: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The step's network needs slirp4netns, which cannot run here.
    #[error(transparent)]
    Nat(#[from] super::network::NatUnavailable),
    /// The rootless id maps could not be written.
    #[error("setting up the user namespace: {0}")]
    IdMap(#[from] IdMapError),
    /// The helper reported that the sandbox could not be set up (the step
    /// never ran), e.g. a failed mount or an executable not found.
    #[error("sandbox setup failed: {0}")]
    Setup(String),
    /// overlayfs could not be mounted for an overlay rootfs (the kernel
    /// lacks it, refuses it in this user namespace, or refuses the
    /// options); the step never ran. A directory rootfs avoids it.
    #[error("overlayfs cannot be mounted here: {0}")]
    OverlayUnavailable(String),
    /// The helper sent something that is not a protocol message.
    #[error("sandbox helper sent an invalid status message {line:?}: {source}")]
    Protocol {
        /// The raw line.
        line: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The step's cgroup could not be made.
    #[error("the step's cgroup: {0}")]
    Cgroup(#[from] CgroupError),
    /// The helper ended without reporting the step's outcome.
    #[error("sandbox helper ended without a result ({status})")]
    HelperDied {
        /// The helper's own exit status.
        status: std::process::ExitStatus,
    },
}

/// Longest piece of output delivered without a newline, so a step printing
/// one endless line cannot make the parent buffer without bound.
const MAX_LINE: usize = 64 * 1024;

/// Runs steps by re-executing a helper binary that understands `__sandbox`.
#[derive(Debug, Clone)]
pub struct Sandbox {
    helper: PathBuf,
    /// Where each step's scratch directory is made (`$TMPDIR` if unset).
    scratch_parent: Option<PathBuf>,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

impl Sandbox {
    /// The sandbox of the running builder binary (`/proc/self/exe`).
    pub fn new() -> Sandbox {
        Sandbox::with_helper("/proc/self/exe")
    }

    /// A sandbox whose helper is another binary that handles `__sandbox`
    /// (for programs embedding the library, and tests).
    pub fn with_helper(helper: impl Into<PathBuf>) -> Sandbox {
        Sandbox {
            helper: helper.into(),
            scratch_parent: None,
        }
    }

    /// The same sandbox, making each step's scratch directory in `dir`
    /// instead of `$TMPDIR` (a store's `tmp/`, which `builder prune` clears
    /// of what a killed build left there).
    pub fn scratch_in(self, dir: impl Into<PathBuf>) -> Sandbox {
        Sandbox {
            scratch_parent: Some(dir.into()),
            ..self
        }
    }

    /// How the owners of files the steps create are recorded in layers:
    /// as they are when running as root; when rootless, as the step's user
    /// namespace shows them (the invoking user is root).
    pub fn layer_owners(&self) -> OwnerMap {
        if rustix::process::geteuid().is_root() {
            OwnerMap::Identity
        } else {
            IdMap::detect().owner_map()
        }
    }

    /// Runs one step, passing its output to `output` line by line as it comes
    /// (a line keeps its `\n`; an unterminated tail comes last).
    ///
    /// Every process of the step ends with it: the step's shell is pid 1 of
    /// its pid namespace, so the kernel kills the rest when it exits.
    /// Dropping the returned future (cancellation) SIGKILLs the helper, whose
    /// death SIGKILLs pid 1. Where cgroups are available the step runs in a
    /// cgroup of its own with `spec.cgroup`'s limits, removed afterwards.
    /// The helper stays in the caller's process group,
    /// so a terminal's SIGINT ends it too, while the step (in its own session)
    /// never reads the terminal. The helper is forked from one thread that
    /// lives as long as the process (see [`spawn_from_lasting_thread`]), so
    /// its parent-death signal fires only when builder itself goes.
    pub async fn run(
        &self,
        spec: &Spec,
        output: impl FnMut(Stream, &[u8]),
    ) -> Result<Outcome, SandboxError> {
        self.run_request(spec, false, output).await
    }

    /// Whether steps can run here with `isolation`, running none: the
    /// sandbox ([`Isolation::Oci`]) is set up for an empty rootfs (its
    /// namespaces and mounts, with a network namespace of its own but no
    /// slirp4netns); chroot isolation only needs the user namespace when
    /// rootless. The error says what the host refused (`unsharing the pid
    /// namespace: …`).
    pub async fn probe(&self, isolation: Isolation) -> Result<(), SandboxError> {
        let mut root = tempfile::Builder::new();
        root.prefix("builder-probe-");
        let root = match &self.scratch_parent {
            Some(dir) => root.tempdir_in(dir),
            None => root.tempdir(),
        }
        .map_err(|source| SandboxError::Helper {
            helper: self.helper.clone(),
            source,
        })?;
        let spec = Spec {
            rootfs: Rootfs::Directory(root.path().to_path_buf()),
            mounts: Vec::new(),
            tmpfs: Vec::new(),
            secrets: Vec::new(),
            secret_env: Vec::new(),
            argv: vec!["/probe".to_owned()],
            env: Vec::new(),
            user: User::default(),
            cwd: "/".into(),
            network: match isolation {
                Isolation::Oci => Network::None,
                Isolation::Chroot => Network::Host,
            },
            hostname: "probe".to_owned(),
            hosts: String::new(),
            resolv_conf: String::new(),
            security: Security::Sandbox,
            shm_size: DEFAULT_SHM_SIZE,
            seccomp: None,
            cgroup: CgroupLimits::default(),
            ulimits: Vec::new(),
            emulation: None,
            isolation,
        };
        match self.run_request(&spec, true, |_, _| {}).await? {
            Outcome::Exited(0) => Ok(()),
            other => Err(SandboxError::Setup(format!(
                "the sandbox probe ended with {other:?}"
            ))),
        }
    }

    async fn run_request(
        &self,
        spec: &Spec,
        probe: bool,
        mut output: impl FnMut(Stream, &[u8]),
    ) -> Result<Outcome, SandboxError> {
        spec.validate()?;
        let nat = super::network::nat_program(spec.network)?;
        let id_map = (!rustix::process::geteuid().is_root()).then(IdMap::detect);
        let helper_err = |source| SandboxError::Helper {
            helper: self.helper.clone(),
            source,
        };
        // Dropped (removed) when this future ends or is dropped.
        let mut scratch = tempfile::Builder::new();
        scratch.prefix("builder-sandbox-");
        let scratch = match &self.scratch_parent {
            Some(dir) => scratch.tempdir_in(dir),
            None => scratch.tempdir(),
        }
        .map_err(helper_err)?;
        // Dropped (its processes killed, then removed) after the helper.
        let cgroup = StepCgroup::create(&spec.cgroup)?;
        let request = Request {
            cgroup: cgroup
                .as_ref()
                .map(|c| c.dirs().to_vec())
                .unwrap_or_default(),
            spec: spec.clone(),
            scratch: scratch.path().to_path_buf(),
            parent_pid: rustix::process::getpid().as_raw_nonzero().get(),
            user_namespace: id_map.as_ref().map(IdMap::summary),
            nat,
            probe,
        };
        // Plain structs with string keys: serializing cannot fail. The line
        // may hold secrets: it is wiped when dropped.
        let mut line = zeroize::Zeroizing::new(
            serde_json::to_vec(&request).expect("a sandbox request always serializes"),
        );
        line.push(b'\n');
        drop(request);

        let (status_read, status_write) = status_pipe().map_err(helper_err)?;
        let mut child = spawn_from_lasting_thread(&self.helper, &status_write)
            .await
            .map_err(helper_err)?;
        // The helper holds its own copy now; ours must go so EOF can arrive.
        drop(status_write);
        let pid = child.id();
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            unreachable!("all three standard streams were requested as pipes");
        };
        stdin.write_all(&line).await.map_err(helper_err)?;
        // Kept open only to confirm the id maps; otherwise EOF right away.
        let mut stdin = id_map.as_ref().map(|_| stdin);

        let status =
            tokio::net::unix::pipe::Receiver::from_owned_fd(status_read).map_err(helper_err)?;
        let mut status = BufReader::new(status).lines();
        let mut out = Lines::new(stdout);
        let mut err = Lines::new(stderr);
        let mut status_open = true;
        let mut result: Option<Message> = None;
        let mut setup_failure: Option<SandboxError> = None;

        while status_open || !out.done || !err.done {
            tokio::select! {
                chunk = out.next(), if !out.done => {
                    chunk.map_err(helper_err)?.iter().for_each(|l| output(Stream::Stdout, l));
                }
                chunk = err.next(), if !err.done => {
                    chunk.map_err(helper_err)?.iter().for_each(|l| output(Stream::Stderr, l));
                }
                next = status.next_line(), if status_open => {
                    let Some(raw) = next.map_err(helper_err)? else {
                        status_open = false;
                        continue;
                    };
                    let message = serde_json::from_str::<Message>(&raw)
                        .map_err(|source| SandboxError::Protocol { line: raw.clone(), source })?;
                    match message {
                        Message::UserNamespaceReady => {
                            let (Some(map), Some(pid), Some(mut input)) = (&id_map, pid, stdin.take()) else {
                                return Err(SandboxError::Setup(
                                    "the helper made a user namespace nobody asked for".into(),
                                ));
                            };
                            map.apply(pid).await?;
                            input.write_all(format!("{GO}\n").as_bytes()).await.map_err(helper_err)?;
                        }
                        Message::SetupFailed(reason) => {
                            setup_failure.get_or_insert(SandboxError::Setup(reason));
                        }
                        Message::OverlayUnavailable(reason) => {
                            setup_failure.get_or_insert(SandboxError::OverlayUnavailable(reason));
                        }
                        ended @ (Message::Exited(_) | Message::Signaled(_)) => result = Some(ended),
                    }
                }
            }
        }
        drop(stdin);
        let helper_status = child.wait().await.map_err(helper_err)?;
        let out_of_memory = cgroup.as_ref().is_some_and(StepCgroup::oom_killed);
        drop(cgroup);
        scratch.close().map_err(helper_err)?;
        if let Some(failure) = setup_failure {
            return Err(failure);
        }
        match result {
            Some(Message::Exited(code)) if code != 0 && out_of_memory => Ok(Outcome::OutOfMemory),
            Some(Message::Signaled(_)) if out_of_memory => Ok(Outcome::OutOfMemory),
            Some(Message::Exited(code)) => Ok(Outcome::Exited(code)),
            Some(Message::Signaled(signal)) => Ok(Outcome::Signaled(signal)),
            _ => Err(SandboxError::HelperDied {
                status: helper_status,
            }),
        }
    }
}

/// Runs one step with the running builder binary as helper; see [`Sandbox::run`].
pub async fn run(spec: &Spec, output: impl FnMut(Stream, &[u8])) -> Result<Outcome, SandboxError> {
    Sandbox::new().run(spec, output).await
}

/// The status pipe; the write end is numbered at least 3 so that setting up
/// the helper's stdio cannot overwrite it before it is moved to fd 3.
fn status_pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let write = rustix::io::fcntl_dupfd_cloexec(&write, STATUS_FD)?;
    Ok((read, write))
}

/// A job for the spawner thread.
type SpawnJob = Box<dyn FnOnce() + Send>;

/// Spawns the helper from a thread that lives as long as the process.
///
/// The helper asks for `PR_SET_PDEATHSIG`, which the kernel fires when the
/// *thread* that forked it ends, not the process. Tokio retires idle worker
/// and blocking threads (after 10 s by default), so a helper forked from one
/// of them would be SIGKILLed in the middle of a long step. Forking from this
/// one thread ties the signal to builder's own life, whatever runtime the
/// caller uses.
async fn spawn_from_lasting_thread(
    helper: &Path,
    status_write: &OwnedFd,
) -> std::io::Result<tokio::process::Child> {
    static SPAWNER: std::sync::OnceLock<std::sync::mpsc::Sender<SpawnJob>> =
        std::sync::OnceLock::new();
    let gone = || std::io::Error::other("the sandbox spawner thread has ended");
    let spawner = match SPAWNER.get() {
        Some(spawner) => spawner,
        None => {
            let (jobs, queue) = std::sync::mpsc::channel::<SpawnJob>();
            std::thread::Builder::new()
                .name("sandbox-spawner".into())
                .spawn(move || queue.into_iter().for_each(|job| job()))?;
            // A racing caller may have set it first; our thread then ends
            // with its dropped sender.
            SPAWNER.get_or_init(|| jobs)
        }
    };
    // The child's pipes register with the caller's runtime.
    let runtime = tokio::runtime::Handle::current();
    let helper = helper.to_path_buf();
    let fd = status_write.as_raw_fd();
    let (reply, spawned) = tokio::sync::oneshot::channel();
    spawner
        .send(Box::new(move || {
            let _entered = runtime.enter();
            let _ = reply.send(spawn_helper(&helper, fd));
        }))
        .map_err(|_| gone())?;
    // `status_write` stays borrowed (open) until the helper holds its copy.
    spawned.await.map_err(|_| gone())?
}

fn spawn_helper(helper: &Path, fd: RawFd) -> std::io::Result<tokio::process::Child> {
    let mut command = tokio::process::Command::new(helper);
    command
        .arg("__sandbox")
        .env_clear()
        .envs(std::env::var_os("TMPDIR").map(|dir| ("TMPDIR", dir)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Out of builder's process group: a ^C typed on the terminal reaches
        // builder alone, which cancels the build (dropping the helper kills
        // it, and the step with it); the helper killed first would fail the
        // step before the cancel was seen. Builder's own death still ends it
        // (`PR_SET_PDEATHSIG`).
        .process_group(0);
    // SAFETY: the closure runs between fork and exec and only calls dup2 and
    // fcntl, which are async-signal-safe; it touches no memory of the parent.
    unsafe {
        command.pre_exec(move || {
            let ret = if fd == STATUS_FD {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, STATUS_FD)
            };
            if ret < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        });
    }
    command.spawn()
}

/// Splits one output pipe into lines (or [`MAX_LINE`] pieces).
struct Lines<R> {
    reader: R,
    pending: Vec<u8>,
    done: bool,
}

impl<R: AsyncRead + Unpin> Lines<R> {
    fn new(reader: R) -> Self {
        Lines {
            reader,
            pending: Vec::new(),
            done: false,
        }
    }

    /// Reads once and returns the complete lines now available (all that is
    /// left, at EOF).
    async fn next(&mut self) -> std::io::Result<Vec<Vec<u8>>> {
        let mut buf = [0u8; 8192];
        let n = self.reader.read(&mut buf).await?;
        let mut lines = Vec::new();
        if n == 0 {
            self.done = true;
            if !self.pending.is_empty() {
                lines.push(std::mem::take(&mut self.pending));
            }
            return Ok(lines);
        }
        self.pending.extend_from_slice(&buf[..n]);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let rest = self.pending.split_off(end + 1);
            lines.push(std::mem::replace(&mut self.pending, rest));
        }
        while self.pending.len() >= MAX_LINE {
            let rest = self.pending.split_off(MAX_LINE);
            lines.push(std::mem::replace(&mut self.pending, rest));
        }
        Ok(lines)
    }
}
