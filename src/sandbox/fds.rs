//! Keeping inherited file descriptors out of RUN steps (the runc
//! CVE-2024-21626 class): whatever the caller of builder left open without
//! close-on-exec (`exec 7</dir` in a shell) would otherwise reach the step,
//! which could then read and write host files through `/proc/self/fd/7`.
//!
//! builder marks them close-on-exec when it starts ([`cloexec_inherited`]),
//! the `__sandbox` helper closes every descriptor it did not ask for, and
//! the step's pid 1 marks everything above stdio close-on-exec right before
//! the step executes. Each layer alone keeps them out.

use std::io;

/// Marks every descriptor above stdin, stdout and stderr close-on-exec, so
/// that no program builder runs inherits what builder's caller left open;
/// builder itself can still use them (`-f /dev/fd/63`). Call first thing,
/// before any thread starts.
pub fn cloexec_inherited() -> io::Result<()> {
    cloexec_from(3)
}

/// Marks every descriptor from `first` up close-on-exec.
pub(crate) fn cloexec_from(first: u32) -> io::Result<()> {
    range(first, Action::Cloexec)
}

/// Closes every descriptor from `first` up.
pub(crate) fn close_from(first: u32) -> io::Result<()> {
    range(first, Action::Close)
}

#[derive(Clone, Copy)]
enum Action {
    Close,
    Cloexec,
}

fn range(first: u32, action: Action) -> io::Result<()> {
    let flags = match action {
        Action::Close => 0,
        Action::Cloexec => libc::CLOSE_RANGE_CLOEXEC,
    };
    // SAFETY: close_range takes plain integers; nothing in this process
    // uses the descriptors it closes (callers own the whole range).
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, flags) };
    if ret == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    // Before Linux 5.9 (5.11 for CLOSE_RANGE_CLOEXEC): one by one.
    match err.raw_os_error() {
        Some(libc::ENOSYS | libc::EINVAL) => one_by_one(first, action),
        _ => Err(err),
    }
}

fn one_by_one(first: u32, action: Action) -> io::Result<()> {
    // Listed before acting, so the listing's own descriptor is gone.
    let open: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| u32::try_from(*fd).is_ok_and(|fd| fd >= first))
        .collect();
    for fd in open {
        // SAFETY: as above; an fd closed meanwhile (EBADF) is fine.
        unsafe {
            match action {
                Action::Close => libc::close(fd),
                Action::Cloexec => libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC),
            };
        }
    }
    Ok(())
}
