//! Registering a QEMU user-mode interpreter with binfmt_misc inside the
//! step's own user namespace (Linux ≥ 6.7 gives each user namespace that
//! mounts binfmt_misc an instance of its own), so a foreign binary the step
//! executes runs under it without any set-up on the host.
//!
//! The entry has the `F` flag: the kernel opens the interpreter when it is
//! registered (a sealed in-memory copy pid 1 made of the host's file before
//! `pivot_root`) and keeps it, so it works inside the step's rootfs, which
//! does not hold it. `O` hands the interpreter the binary as a descriptor
//! (programs that are executable but unreadable run), `P` keeps `argv[0]`
//! (busybox applets, login shells). There is no `C`: a setuid binary does
//! not run its interpreter with raised credentials (the interpreter reads
//! `QEMU_*` variables its caller sets), as Debian registers them.
//!
//! The instance lives as long as its mount: it is attached, read-only, at
//! the step's `/proc/sys/fs/binfmt_misc`, where the step sees its entry.

use super::helper::{Context, SetupError};
use super::mounts;
use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// A binfmt_misc entry for one QEMU user-mode interpreter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binfmt {
    /// The entry's name (`qemu-aarch64`).
    pub name: String,
    /// The ELF header bytes that select the interpreter…
    pub magic: Vec<u8>,
    /// …compared under this mask.
    pub mask: Vec<u8>,
    /// The interpreter on the host (`/usr/bin/qemu-aarch64-static`).
    pub interpreter: PathBuf,
}

/// Where the step sees its binfmt_misc instance.
const MOUNTPOINT: &str = "/proc/sys/fs/binfmt_misc";

impl Binfmt {
    /// The line written to `register`, naming the interpreter as `path`.
    /// Every magic and mask byte is escaped, so none can end a field.
    fn line(&self, path: &str) -> Vec<u8> {
        let hex = |bytes: &[u8]| {
            bytes.iter().fold(String::new(), |mut out, b| {
                let _ = write!(out, "\\x{b:02x}");
                out
            })
        };
        format!(
            ":{}:M::{}:{}:{path}:POF",
            self.name,
            hex(&self.magic),
            hex(&self.mask)
        )
        .into_bytes()
    }

    /// A sealed in-memory copy of the interpreter for
    /// [`Binfmt::register`], made while the host's filesystem is still the
    /// process's root. The step reaches the interpreter its processes run
    /// (`/proc/PID/exe`); a copy that can never be written leaves the
    /// host's file out of its reach (as runc guards itself against
    /// CVE-2019-5736), whatever a root step may open.
    pub(crate) fn open_interpreter(&self) -> Result<OwnedFd, SetupError> {
        let what = || format!("copying the emulator {}", self.interpreter.display());
        let mut host = std::fs::File::open(&self.interpreter).context(what)?;
        let name = self
            .interpreter
            .file_name()
            .map_or_else(|| "qemu".into(), |n| n.to_string_lossy());
        let copy = rustix::fs::memfd_create(
            name.as_ref(),
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )
        .context(what)?;
        let mut file = std::fs::File::from(copy);
        std::io::copy(&mut host, &mut file).context(what)?;
        let copy = OwnedFd::from(file);
        rustix::fs::fcntl_add_seals(
            &copy,
            SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE,
        )
        .context(what)?;
        Ok(copy)
    }

    /// Registers the interpreter (open as `interpreter`) in the current
    /// user namespace's own binfmt_misc instance and attaches that
    /// instance read-only at `/proc/sys/fs/binfmt_misc`. Needs
    /// CAP_SYS_ADMIN over the current mount namespace and a `/proc`.
    pub(crate) fn register(&self, interpreter: &OwnedFd) -> Result<(), SetupError> {
        let path = format!("/proc/self/fd/{}", interpreter.as_raw_fd());
        let instance = new_instance(&self.line(&path)).map_err(|(what, errno)| SetupError::Os {
            what: format!("registering {} with binfmt_misc: {what}", self.name),
            source: errno.into(),
        })?;
        mounts::set_attrs_recursive(&instance, MountAttrFlags::MOUNT_ATTR_RDONLY)
            .context(|| "making the binfmt_misc instance read-only".into())?;
        mounts::attach(&instance, Path::new(MOUNTPOINT))
    }

    /// Whether this kernel lets a fresh user namespace register the
    /// interpreter in an instance of its own; `Err` says which call failed
    /// and why. Runs in a forked child, so the caller may be threaded.
    pub fn probe(&self) -> Result<(), String> {
        let line = self.line(&self.interpreter.to_string_lossy());
        // The child maps its own IDs (root inside), as a step's namespace is
        // mapped: binfmt_misc's files belong to the namespace's root.
        let uid_map = format!("0 {} 1", rustix::process::geteuid().as_raw());
        let gid_map = format!("0 {} 1", rustix::process::getegid().as_raw());
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| format!("creating a pipe: {e}"))?;
        // SAFETY: the child only makes raw system calls on memory prepared
        // before the fork (no allocation, no lock), then `_exit`s.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(format!(
                "forking the probe: {}",
                std::io::Error::last_os_error()
            ));
        }
        if pid == 0 {
            drop(read);
            let code = match probe_child(&line, uid_map.as_bytes(), gid_map.as_bytes()) {
                Ok(()) => 0,
                Err((step, errno)) => {
                    let report = [step as u8, 0, 0, 0];
                    let errno = errno.raw_os_error().to_ne_bytes();
                    let _ = rustix::io::write(&write, &report);
                    let _ = rustix::io::write(&write, &errno);
                    1
                }
            };
            // SAFETY: ends the forked child without running the parent's
            // destructors or atexit handlers.
            unsafe { libc::_exit(code) };
        }
        drop(write);
        let mut report = [0u8; 8];
        let mut got = 0;
        while got < report.len() {
            match rustix::io::read(&read, &mut report[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => break,
            }
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above, which nobody else reaps.
        while unsafe { libc::waitpid(pid, &mut status, 0) } < 0
            && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
        {}
        if got == report.len() {
            let step = PROBE_STEPS
                .get(usize::from(report[0]))
                .copied()
                .unwrap_or("probing");
            let errno = i32::from_ne_bytes([report[4], report[5], report[6], report[7]]);
            return Err(format!(
                "{step}: {}",
                std::io::Error::from_raw_os_error(errno)
            ));
        }
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            Ok(())
        } else {
            Err(format!("the probe ended with status {status}"))
        }
    }
}

/// What each step of [`new_instance`] does, by its number.
const PROBE_STEPS: [&str; 7] = [
    "making a user namespace",
    "mapping it",
    "opening a binfmt_misc filesystem",
    "creating a binfmt_misc instance in a user namespace (Linux ≥ 6.7)",
    "mounting the binfmt_misc instance",
    "opening its register file",
    "registering the interpreter",
];

fn probe_child(
    line: &[u8],
    uid_map: &[u8],
    gid_map: &[u8],
) -> Result<(), (usize, rustix::io::Errno)> {
    // SAFETY: the forked child is single-threaded; no descriptor table is
    // shared with another thread.
    unsafe {
        rustix::thread::unshare_unsafe(
            rustix::thread::UnshareFlags::NEWUSER | rustix::thread::UnshareFlags::NEWNS,
        )
    }
    .map_err(|e| (0, e))?;
    for (file, content) in [
        (c"/proc/self/uid_map", uid_map),
        (c"/proc/self/setgroups", b"deny".as_slice()),
        (c"/proc/self/gid_map", gid_map),
    ] {
        let fd = rustix::fs::open(file, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| (1, e))?;
        rustix::io::write(&fd, content).map_err(|e| (1, e))?;
    }
    new_instance(line).map(drop).map_err(|(what, errno)| {
        let step = PROBE_STEPS.iter().position(|s| *s == what).unwrap_or(2);
        (step, errno)
    })
}

/// A detached mount of a new binfmt_misc instance of the current user
/// namespace with `line` registered; on failure, which step failed
/// (one of [`PROBE_STEPS`]). Allocates nothing (the probe's child runs it).
fn new_instance(line: &[u8]) -> Result<OwnedFd, (&'static str, rustix::io::Errno)> {
    let fs = rustix::mount::fsopen(c"binfmt_misc", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| (PROBE_STEPS[2], e))?;
    rustix::mount::fsconfig_create(&fs).map_err(|e| (PROBE_STEPS[3], e))?;
    let attrs = MountAttrFlags::MOUNT_ATTR_NOSUID
        | MountAttrFlags::MOUNT_ATTR_NODEV
        | MountAttrFlags::MOUNT_ATTR_NOEXEC;
    let mount = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(|e| (PROBE_STEPS[4], e))?;
    let register = rustix::fs::openat(
        &mount,
        c"register",
        OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| (PROBE_STEPS[5], e))?;
    match rustix::io::write(&register, line) {
        Ok(n) if n == line.len() => Ok(mount),
        Ok(_) => Err((PROBE_STEPS[6], rustix::io::Errno::INVAL)),
        Err(e) => Err((PROBE_STEPS[6], e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_line_escapes_every_byte_and_sets_pof() {
        let binfmt = Binfmt {
            name: "qemu-test".into(),
            magic: vec![0x7f, b':', 0],
            mask: vec![0xff, 0xff, 0xfe],
            interpreter: "/usr/bin/qemu-test-static".into(),
        };
        assert_eq!(
            String::from_utf8(binfmt.line("/proc/self/fd/5")).unwrap(),
            r":qemu-test:M::\x7f\x3a\x00:\xff\xff\xfe:/proc/self/fd/5:POF"
        );
    }
}
