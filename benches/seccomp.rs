//! What Docker's seccomp filter costs a RUN step: compiling the profile
//! (once per build; Docker's default once per process), carrying it to the
//! helper inside the spec (JSON encode + decode, every step), installing
//! it in a fresh process (every step), and what it adds to each system call
//! the step makes afterwards. Not a test; `cargo bench --bench seccomp`.
//! Runs unprivileged: the measuring children set no_new_privs, which the
//! real steps do not need as they hold CAP_SYS_ADMIN when installing.

use builder::sandbox::seccomp::{Profile, SeccompFilter};
use std::time::{Duration, Instant};

/// Mean time of `f` over `runs` runs.
fn mean(runs: u32, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..runs {
        f();
    }
    start.elapsed() / runs
}

/// Forks a child that runs `child` and exits; waits for it.
fn in_child(child: impl FnOnce()) {
    // SAFETY: the bench is single-threaded; the child only makes system
    // calls and exits with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        child();
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child status {status:#x}"
    );
}

fn no_new_privs() {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integers only.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
}

/// Nanoseconds per getppid(2) over `calls` calls.
fn syscall_ns(calls: u32) -> f64 {
    let start = Instant::now();
    for _ in 0..calls {
        // SAFETY: getppid takes no arguments.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
    start.elapsed().as_nanos() as f64 / f64::from(calls)
}

fn main() {
    let compile = mean(200, || {
        let profile = Profile::docker_default().expect("parses");
        std::hint::black_box(SeccompFilter::compile(&profile).expect("compiles"));
    });
    let filter = SeccompFilter::docker_default().expect("compiles");
    let encoded = serde_json::to_string(&filter).expect("encodes");
    let carry = mean(2000, || {
        let text = serde_json::to_string(&filter).expect("encodes");
        std::hint::black_box(serde_json::from_str::<SeccompFilter>(&text).expect("decodes"));
    });

    let forks = 500;
    let bare = mean(forks, || in_child(no_new_privs));
    let filtered = mean(forks, || {
        in_child(|| {
            no_new_privs();
            filter.install().expect("installs");
        })
    });

    let calls = 2_000_000;
    let unfiltered_ns = syscall_ns(calls);
    println!(
        "seccomp filter (Docker's default profile, {} arch):",
        std::env::consts::ARCH
    );
    println!(
        "  compile (parse + BPF, once per build):      {:>8.1} µs",
        compile.as_secs_f64() * 1e6
    );
    println!(
        "  carry in the spec (JSON, {:>5} bytes):       {:>8.1} µs per step",
        encoded.len(),
        carry.as_secs_f64() * 1e6
    );
    println!(
        "  install (fork+exit {:.1} µs → {:.1} µs):       {:>8.1} µs per step",
        bare.as_secs_f64() * 1e6,
        filtered.as_secs_f64() * 1e6,
        (filtered.as_secs_f64() - bare.as_secs_f64()) * 1e6
    );
    println!("  getppid(2) unfiltered:                      {unfiltered_ns:>8.1} ns");
    // A filter stays for good: the filtered loop runs in a child.
    in_child(|| {
        no_new_privs();
        filter.install().expect("installs");
        let filtered_ns = syscall_ns(calls);
        println!(
            "  getppid(2) filtered:                        {filtered_ns:>8.1} ns ({:+.1} ns per call)",
            filtered_ns - unfiltered_ns
        );
    });
}
