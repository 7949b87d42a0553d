//! `RUN --mount=type=ssh` in real builds: a step reaches the agent given
//! with `--ssh` through `$SSH_AUTH_SOCK` (BuildKit's default target, or the
//! mount's own target, mode and ID), the socket is in no layer, and a
//! `required` mount without `--ssh` fails with BuildKit's words and the
//! line. The agent is a listener of the test's answering a fixed reply; the
//! step's client is a tiny C program compiled static here (busybox has no
//! Unix-socket client). Needs root and gcc; skipped otherwise.

mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use support::build::{Home, can_build, stderr_of};

const BASE: &str = "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCOPY agent-client /bin/agent-client\n";

/// Connects to `$SSH_AUTH_SOCK`, sends one line and copies the reply to
/// stdout.
const CLIENT: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int main(void) {
    const char *path = getenv("SSH_AUTH_SOCK");
    if (!path) { fputs("no SSH_AUTH_SOCK\n", stderr); return 2; }
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) { perror("connect"); return 3; }
    if (write(fd, "hello agent\n", 12) != 12) { perror("write"); return 4; }
    char buf[256];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) fwrite(buf, 1, n, stdout);
    return n < 0 ? 5 : 0;
}
"#;

/// The agent's fixed reply.
const REPLY: &str = "agent-reply-7f3a91";

/// A context with the Dockerfile, busybox and the compiled client; `None`
/// (with a note) when gcc cannot make a static binary here.
fn context(home: &Home, dockerfile: &str) -> Option<PathBuf> {
    let dir = home.context("ctx", dockerfile);
    let source = home.path("agent-client.c");
    std::fs::write(&source, CLIENT).unwrap();
    let compiled = std::process::Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(dir.join("agent-client"))
        .arg(&source)
        .status();
    if !compiled.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED: gcc -static is not available");
        return None;
    }
    Some(dir)
}

/// A Unix socket in `dir` that reads a line of each client and answers
/// [`REPLY`], for the rest of the test process.
fn start_agent(dir: &Path) -> PathBuf {
    let path = dir.join("agent.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        for mut client in listener.incoming().flatten() {
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while client.read(&mut byte).is_ok_and(|n| n == 1) && byte[0] != b'\n' {
                line.push(byte[0]);
            }
            if line == b"hello agent" {
                let _ = client.write_all(REPLY.as_bytes());
            }
        }
    });
    path
}

#[test]
fn a_step_reaches_the_forwarded_agent() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = format!(
        "{BASE}\
         RUN --mount=type=ssh agent-client > /default.reply \
             && echo \"$SSH_AUTH_SOCK\" > /default.sock \
             && stat -c '%a %u %g %F' \"$SSH_AUTH_SOCK\" > /default.stat\n\
         RUN --mount=type=ssh,id=git,target=/tmp/git.sock,mode=0666,uid=5,required \
             SSH_AUTH_SOCK=/tmp/git.sock agent-client > /git.reply \
             && stat -c '%a %u %g' /tmp/git.sock > /git.stat\n"
    );
    let Some(context) = context(&home, &dockerfile) else {
        return;
    };
    let agents = tempfile::tempdir().unwrap();
    let agent = start_agent(agents.path());
    let local = home.path("local");
    let output = home
        .build(&[
            "--ssh",
            "default",
            "--ssh",
            &format!("git={}", agent.display()),
            "-o",
            local.to_str().unwrap(),
            context.to_str().unwrap(),
        ])
        .env("SSH_AUTH_SOCK", &agent)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let read = |name: &str| std::fs::read_to_string(local.join(name)).unwrap();
    assert_eq!(read("default.reply"), REPLY);
    assert_eq!(read("default.sock"), "/run/buildkit/ssh_agent.0\n");
    assert_eq!(read("default.stat"), "600 0 0 socket\n");
    assert_eq!(read("git.reply"), REPLY);
    assert_eq!(read("git.stat"), "666 5 0\n");
    // The sockets are in no layer.
    assert!(!local.join("run").exists());
    assert!(!local.join("tmp/git.sock").exists());
}

#[test]
fn a_required_ssh_mount_without_ssh_fails_like_buildkit() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = format!("{BASE}RUN --mount=type=ssh,required agent-client\n");
    let Some(context) = context(&home, &dockerfile) else {
        return;
    };
    let output = home.build(&[context.to_str().unwrap()]).output().unwrap();
    let stderr = stderr_of(&output);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("Dockerfile:5"), "{stderr}");
    assert!(
        stderr.contains("no SSH key \"default\" forwarded from the client"),
        "{stderr}"
    );
}

#[test]
fn an_optional_ssh_mount_without_ssh_is_left_out() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile =
        format!("{BASE}RUN --mount=type=ssh test ! -e \"$SSH_AUTH_SOCK\" && echo ran > /ran\n");
    let Some(context) = context(&home, &dockerfile) else {
        return;
    };
    let local = home.path("local");
    let output = home
        .build(&["-o", local.to_str().unwrap(), context.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(std::fs::read_to_string(local.join("ran")).unwrap(), "ran\n");
    assert!(!local.join("run").exists());
}
