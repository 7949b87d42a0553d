//! What a RUN step cannot reach, as root and rootless (issue #11): a file
//! descriptor the caller of builder left open (the runc CVE-2024-21626
//! class), the host's keyrings, and the system calls Docker's seccomp
//! profile refuses (`--security=insecure` and `--security-opt
//! seccomp=unconfined|PROFILE` change that); and what it can since
//! no_new_privs is off (issue #10): a setuid program runs with euid 0 from
//! a `USER 1000` step, as in BuildKit. The attacks are made by a static C
//! probe compiled here. Needs root, gcc -static and (for the keyring
//! tests) keyctl from keyutils; skipped otherwise.

mod support;

use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::build::{Home, can_build, stderr_of};

const NOBODY: u32 = 65534;

const BASE: &str = "FROM scratch\nCOPY busybox /bin/busybox\n\
    RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
    COPY probe /bin/probe\nRUN mkdir -m 1777 /out\n";

/// `probe syscalls`: tries what Docker's profile refuses (and a few calls
/// it allows), one line each: `what: ok` or the error.
/// `probe user-key ID`: links the user keyring into the session keyring
/// and reads key ID. `probe session-key NAME`: looks for a user key NAME in
/// the session keyring. `probe ids`: the real and effective uid.
const PROBE: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define KEYCTL_GET_KEYRING_ID 0
#define KEYCTL_LINK 8
#define KEYCTL_SEARCH 10
#define KEYCTL_READ 11
#define KEY_SPEC_SESSION_KEYRING -3
#define KEY_SPEC_USER_KEYRING -4

static void report(const char *what, long ret) {
    if (ret < 0) printf("%s: %s\n", what, strerror(errno));
    else printf("%s: ok\n", what);
}

/* A child in new namespaces exits at once; the parent reaps it. */
static long clone_with(unsigned long flags) {
    long pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid(pid, NULL, 0);
    return pid;
}

static long unshare_in_child(int flags) {
    pid_t pid = fork();
    if (pid == 0) _exit(unshare(flags) == 0 ? 0 : errno);
    int status;
    waitpid(pid, &status, 0);
    errno = WEXITSTATUS(status);
    return errno ? -1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "syscalls")) {
        report("unshare(CLONE_NEWUSER)", unshare_in_child(CLONE_NEWUSER));
        report("unshare(CLONE_NEWNS)", unshare_in_child(CLONE_NEWNS));
        report("clone(CLONE_NEWUSER)", clone_with(CLONE_NEWUSER));
        report("clone3", syscall(SYS_clone3, NULL, 0));
        char attr[128] = {0};
        report("perf_event_open", syscall(SYS_perf_event_open, attr, 0, -1, -1, 0));
        char params[120] = {0};
        report("io_uring_setup", syscall(SYS_io_uring_setup, 1, params));
        report("personality(PER_BSD)", personality(PER_BSD));
        report("personality(query)", personality(0xffffffff));
        report("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
        report("add_key", syscall(SYS_add_key, "user", "probe", "x", 1, KEY_SPEC_SESSION_KEYRING));
        report("socket(AF_VSOCK)", socket(40, SOCK_STREAM, 0));
        report("socket(AF_INET)", socket(AF_INET, SOCK_DGRAM, 0));
        report("a call newer than the profile", syscall(457, 0, 0, 0, 0));
        report("getppid", syscall(SYS_getppid));
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "user-key")) {
        syscall(SYS_keyctl, KEYCTL_LINK, KEY_SPEC_USER_KEYRING, KEY_SPEC_SESSION_KEYRING);
        char value[256] = {0};
        long n = syscall(SYS_keyctl, KEYCTL_READ, atol(argv[2]), value, sizeof value - 1);
        if (n < 0) printf("user key: %s\n", strerror(errno));
        else printf("user key: %s\n", value);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "session-key")) {
        long id = syscall(SYS_keyctl, KEYCTL_SEARCH, KEY_SPEC_SESSION_KEYRING, "user", argv[2], 0);
        report("session key", id);
        return 0;
    }
    if (argc == 2 && !strcmp(argv[1], "ids")) {
        printf("uid=%d euid=%d\n", getuid(), geteuid());
        return 0;
    }
    fprintf(stderr, "usage: probe syscalls|user-key ID|session-key NAME|ids\n");
    return 2;
}
"#;

/// What `probe syscalls` prints under Docker's default profile, for a root
/// step with Docker's default capabilities (or root of a user namespace).
const REFUSED: &str = "unshare(CLONE_NEWUSER): Operation not permitted\n\
    unshare(CLONE_NEWNS): Operation not permitted\n\
    clone(CLONE_NEWUSER): Operation not permitted\n\
    clone3: Function not implemented\n\
    perf_event_open: Operation not permitted\n\
    io_uring_setup: Operation not permitted\n\
    personality(PER_BSD): Operation not permitted\n\
    personality(query): ok\n\
    keyctl: Operation not permitted\n\
    add_key: Operation not permitted\n\
    socket(AF_VSOCK): Operation not permitted\n\
    socket(AF_INET): ok\n\
    a call newer than the profile: Function not implemented\n\
    getppid: ok\n";

/// Whether builds run as the caller (root) or as uid 65534 in a user
/// namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Root,
    Rootless,
}

/// A home with a context holding `dockerfile`, busybox and the probe;
/// `None` (with a note) when gcc cannot make a static binary here.
fn setup(dockerfile: &str) -> Option<(Home, PathBuf)> {
    let home = Home::new();
    let context = home.context("ctx", dockerfile);
    let source = home.path("probe.c");
    std::fs::write(&source, PROBE).unwrap();
    let compiled = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(context.join("probe"))
        .arg(&source)
        .status();
    if !compiled.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: gcc -static is not available");
        return None;
    }
    Some((home, context))
}

/// `builder build --progress plain -o OUT ARGS… CONTEXT` in `mode`.
fn build(home: &Home, mode: Mode, context: &Path, out: &Path, args: &[&str]) -> Command {
    command(home, mode, BUILDER, build_args(context, out, args))
}

const BUILDER: &str = env!("CARGO_BIN_EXE_builder");

fn build_args(context: &Path, out: &Path, args: &[&str]) -> Vec<OsString> {
    let mut all: Vec<OsString> = ["build", "--progress", "plain", "-o"]
        .into_iter()
        .map(OsString::from)
        .collect();
    all.push(out.into());
    all.extend(args.iter().map(OsString::from));
    all.push(context.into());
    all
}

/// `program ARGS…` with the build's environment, as root or as uid 65534
/// (who then owns the home).
fn command(home: &Home, mode: Mode, program: &str, args: Vec<OsString>) -> Command {
    let mut command = Command::new(program);
    command
        .env_clear()
        .env("HOME", home.dir.path())
        .env("BUILDER_ROOT", home.path("store"))
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("TMPDIR", "/tmp")
        .current_dir("/")
        .args(args);
    if mode == Mode::Rootless {
        give_to_nobody(home.dir.path());
        std::fs::set_permissions(home.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        command.uid(NOBODY).gid(NOBODY);
    }
    command
}

/// Gives every entry under `dir` (and `dir`) to uid/gid 65534.
fn give_to_nobody(dir: &Path) {
    std::os::unix::fs::lchown(dir, Some(NOBODY), Some(NOBODY)).unwrap();
    if std::fs::symlink_metadata(dir).unwrap().is_dir() {
        for entry in std::fs::read_dir(dir).unwrap() {
            give_to_nobody(&entry.unwrap().path());
        }
    }
}

/// Runs the build; `None` (with a note) where the kernel refuses
/// unprivileged user namespaces. The build must pass.
fn passes(mut command: Command) -> Option<()> {
    let output = command.output().unwrap();
    let stderr = stderr_of(&output);
    if stderr.contains("unsharing the user namespace") {
        eprintln!("SKIPPED: the kernel refuses unprivileged user namespaces:\n{stderr}");
        return None;
    }
    assert!(output.status.success(), "{stderr}");
    Some(())
}

fn read(out: &Path, name: &str) -> String {
    std::fs::read_to_string(out.join("out").join(name)).unwrap()
}

#[test]
fn a_descriptor_left_open_by_the_caller_does_not_reach_the_step() {
    if !can_build() {
        return;
    }
    for mode in [Mode::Root, Mode::Rootless] {
        let Some((home, context)) = setup(&format!(
            "{BASE}RUN ls /proc/self/fd > /out/fds; \
             cat /proc/self/fd/7/secret.txt > /out/secret 2>&1 || true\n"
        )) else {
            return;
        };
        // A host directory the caller opened without close-on-exec, as
        // `exec 7< /dir` in a shell does; readable by all, so only the
        // descriptor stands between the step and the file.
        let secret = home.path("host-dir");
        std::fs::create_dir(&secret).unwrap();
        std::fs::write(secret.join("secret.txt"), "host secret\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = std::fs::File::open(&secret).unwrap();
        let fd = dir.as_raw_fd();
        let out = home.path("out");
        let mut command = build(&home, mode, &context, &out, &[]);
        // SAFETY: dup2 is async-signal-safe and touches no memory; the
        // copy on fd 7 is not close-on-exec.
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(fd, 7) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let Some(()) = passes(command) else { return };
        // stdio, and the directory `ls` reads.
        assert_eq!(read(&out, "fds"), "0\n1\n2\n3\n", "{mode:?}");
        let leaked = read(&out, "secret");
        assert!(
            leaked.contains("No such file or directory"),
            "{mode:?}: {leaked}"
        );
    }
}

#[test]
fn dockers_seccomp_profile_refuses_namespaces_perf_io_uring_keyrings_and_vsock() {
    if !can_build() {
        return;
    }
    for mode in [Mode::Root, Mode::Rootless] {
        let Some((home, context)) = setup(&format!(
            "{BASE}RUN probe syscalls > /out/default && grep NoNewPrivs /proc/self/status > /out/nnp\n\
             RUN --security=insecure probe syscalls > /out/insecure\n"
        )) else {
            return;
        };
        let out = home.path("out");
        let command = build(
            &home,
            mode,
            &context,
            &out,
            &["--allow", "security.insecure"],
        );
        let Some(()) = passes(command) else { return };
        assert_eq!(read(&out, "default"), REFUSED, "{mode:?}");
        assert_eq!(read(&out, "nnp"), "NoNewPrivs:\t0\n", "{mode:?}");
        // An insecure step runs unfiltered with every capability.
        let insecure = read(&out, "insecure");
        for line in [
            "unshare(CLONE_NEWNS): ok",
            "personality(PER_BSD): ok",
            "keyctl: ok",
            "clone3: Invalid argument",
        ] {
            assert!(insecure.contains(line), "{mode:?}: {line} in\n{insecure}");
        }
    }
}

#[test]
fn security_opt_seccomp_takes_a_profile_or_unconfined() {
    if !can_build() {
        return;
    }
    let Some((home, context)) = setup(&format!(
        "{BASE}RUN probe syscalls > /out/syscalls; ln /bin/probe /out/linked 2> /out/ln; true\n"
    )) else {
        return;
    };
    let unconfined = home.path("unconfined");
    let command = build(
        &home,
        Mode::Root,
        &context,
        &unconfined,
        &["--security-opt", "seccomp=unconfined"],
    );
    passes(command).unwrap();
    let syscalls = read(&unconfined, "syscalls");
    for line in [
        "personality(PER_BSD): ok",
        "keyctl: ok",
        "clone3: Invalid argument",
    ] {
        assert!(syscalls.contains(line), "{line} in\n{syscalls}");
    }
    // Docker's format, with an errno of its own; the step is run again
    // (another filter is another cache key).
    let profile = home.path("no-hard-links.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["link", "linkat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    let custom = home.path("custom");
    let option = format!("seccomp={}", profile.display());
    let command = build(
        &home,
        Mode::Root,
        &context,
        &custom,
        &["--security-opt", &option],
    );
    passes(command).unwrap();
    assert!(
        read(&custom, "ln").contains("Permission denied"),
        "{}",
        read(&custom, "ln")
    );
    assert!(!custom.join("out/linked").exists());
    assert!(read(&custom, "syscalls").contains("keyctl: ok"));
}

#[test]
fn a_bad_seccomp_option_is_a_usage_error_and_a_bad_profile_names_its_file() {
    let home = Home::new();
    let context = home.context("ctx", "FROM scratch\nCOPY busybox /bin/busybox\n");
    let run = |option: &str| {
        home.build(&["--security-opt", option, context.to_str().unwrap()])
            .output()
            .unwrap()
    };
    for (option, message) in [
        ("seccomp=", "seccomp= needs a profile file or unconfined"),
        ("apparmor=unconfined", "expected seccomp=PROFILE.json"),
    ] {
        let output = run(option);
        assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
        assert!(
            stderr_of(&output).contains(message),
            "{}",
            stderr_of(&output)
        );
    }
    let missing = home.path("missing.json");
    let bad = home.path("bad.json");
    std::fs::write(&bad, r#"{"defaultAction": "SCMP_ACT_MAYBE"}"#).unwrap();
    for (path, message) in [
        (&missing, "No such file or directory"),
        (
            &bad,
            "not a seccomp profile in Docker's format: unknown variant `SCMP_ACT_MAYBE`",
        ),
    ] {
        let output = run(&format!("seccomp={}", path.display()));
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("--security-opt seccomp={}: ", path.display())),
            "{stderr}"
        );
        assert!(stderr.contains(message), "{stderr}");
    }
}

/// `keyctl ARGS…`, or `None` (with a note) without keyutils.
fn keyctl(args: &[&str]) -> Option<String> {
    let Ok(output) = Command::new("keyctl").args(args).output() else {
        eprintln!("SKIPPED: keyctl (keyutils) is not installed");
        return None;
    };
    assert!(
        output.status.success(),
        "keyctl {args:?}: {}",
        stderr_of(&output)
    );
    Some(String::from_utf8(output.stdout).unwrap().trim().to_owned())
}

/// Unlinks a key from root's user keyring when the test ends.
struct UserKey(String);

impl Drop for UserKey {
    fn drop(&mut self) {
        let _ = Command::new("keyctl")
            .args(["unlink", &self.0, "@u"])
            .output();
    }
}

/// The build run inside a new session keyring holding a user key
/// `builder-test-session` (as a login session's keyring holds the user's
/// keys); the step gets the key's name as `SESSION_KEY`.
fn in_session_with_a_key(home: &Home, mode: Mode, build_args: Vec<OsString>) -> Command {
    let mut args: Vec<OsString> = [
        "session",
        "-",
        "sh",
        "-c",
        "keyctl add user builder-test-session session-secret @s > /dev/null && \
         exec \"$@\" --build-arg SESSION_KEY=builder-test-session",
        "sh",
        BUILDER,
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    args.extend(build_args);
    command(home, mode, "keyctl", args)
}

#[test]
fn the_hosts_keyrings_are_out_of_reach() {
    if !can_build() {
        return;
    }
    let dockerfile = format!(
        "{BASE}ARG USER_KEY=0\nARG SESSION_KEY\n\
         RUN probe user-key $USER_KEY > /out/keys; probe session-key $SESSION_KEY >> /out/keys\n"
    );
    // A key of root's on the host, in its user keyring.
    let Some(id) = keyctl(&["add", "user", "builder-test-user", "user-secret", "@u"]) else {
        return;
    };
    let _key = UserKey(id.clone());
    let user_key = format!("USER_KEY={id}");
    for mode in [Mode::Root, Mode::Rootless] {
        let Some((home, context)) = setup(&dockerfile) else {
            return;
        };
        let filtered = home.path("filtered");
        let args = build_args(&context, &filtered, &["--build-arg", &user_key]);
        let Some(()) = passes(in_session_with_a_key(&home, mode, args)) else {
            return;
        };
        assert_eq!(
            read(&filtered, "keys"),
            "user key: Operation not permitted\nsession key: Operation not permitted\n",
            "{mode:?}"
        );
        // Unconfined, keyctl works, but in a session keyring of the step's own.
        let unconfined = home.path("unconfined");
        let args = build_args(
            &context,
            &unconfined,
            &[
                "--build-arg",
                &user_key,
                "--security-opt",
                "seccomp=unconfined",
            ],
        );
        passes(in_session_with_a_key(&home, mode, args)).unwrap();
        let keys = read(&unconfined, "keys");
        assert!(
            keys.ends_with("session key: Required key not available\n"),
            "{mode:?}: {keys}"
        );
    }
}

#[test]
fn a_setuid_program_runs_as_its_owner_from_a_user_step() {
    if !can_build() {
        return;
    }
    let Some((home, context)) = setup(&format!(
        "{BASE}RUN chown 0:0 /bin/probe && chmod 4755 /bin/probe\nUSER 1000\n\
         RUN probe ids > /out/ids && grep NoNewPrivs /proc/self/status > /out/nnp\n"
    )) else {
        return;
    };
    let out = home.path("out");
    passes(build(&home, Mode::Root, &context, &out, &[])).unwrap();
    assert_eq!(read(&out, "ids"), "uid=1000 euid=0\n");
    assert_eq!(read(&out, "nnp"), "NoNewPrivs:\t0\n");
}
