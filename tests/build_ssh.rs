//! `RUN --mount=type=ssh` in real builds: a step reaches the agent given
//! with `--ssh` through `$SSH_AUTH_SOCK` (BuildKit's default target, or the
//! mount's own target, mode and ID) but cannot change it, the socket is in
//! no layer, and a `required` mount without `--ssh` fails with BuildKit's
//! words and the line. The agent is a listener of the test's speaking the
//! agent protocol; the step's client is a tiny C program compiled static
//! here (busybox has no Unix-socket client). Needs root and gcc; skipped
//! otherwise.

mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use support::build::{Home, can_build, stderr_of};

const BASE: &str = "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nCOPY agent-client /bin/agent-client\n";

/// Connects to `$SSH_AUTH_SOCK`, sends one agent message of the type
/// given as argument and copies the reply's payload to stdout.
const CLIENT: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
static int read_all(int fd, unsigned char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = read(fd, buf, len);
        if (n <= 0) return -1;
        buf += n; len -= n;
    }
    return 0;
}
int main(int argc, char **argv) {
    const char *path = getenv("SSH_AUTH_SOCK");
    if (!path || argc < 2) { fputs("usage: SSH_AUTH_SOCK=… agent-client TYPE\n", stderr); return 2; }
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) { perror("connect"); return 3; }
    unsigned char request[5] = { 0, 0, 0, 1, (unsigned char)atoi(argv[1]) };
    if (write(fd, request, 5) != 5) { perror("write"); return 4; }
    unsigned char head[4], body[4096];
    if (read_all(fd, head, 4) != 0) { fputs("no reply\n", stderr); return 5; }
    size_t len = ((size_t)head[0] << 24) | (head[1] << 16) | (head[2] << 8) | head[3];
    if (len > sizeof body || read_all(fd, body, len) != 0) { fputs("bad reply\n", stderr); return 6; }
    fwrite(body, 1, len, stdout);
    return 0;
}
"#;

/// The comment of the one key the test's agent lists.
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

/// An ssh-agent stand-in listening in `dir` for the rest of the test
/// process: it lists one key commented [`REPLY`] and fails anything else;
/// the types of the messages it receives are kept in the returned list.
fn start_agent(dir: &Path) -> (PathBuf, Arc<Mutex<Vec<u8>>>) {
    let path = dir.join("agent.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for mut client in listener.incoming().flatten() {
            let mut head = [0u8; 4];
            while client.read_exact(&mut head).is_ok() {
                let mut body = vec![0u8; u32::from_be_bytes(head) as usize];
                if client.read_exact(&mut body).is_err() || body.is_empty() {
                    break;
                }
                record.lock().unwrap().push(body[0]);
                let reply = if body[0] == 11 {
                    let mut answer = vec![12, 0, 0, 0, 1];
                    for field in [&b"fake-key"[..], REPLY.as_bytes()] {
                        answer.extend_from_slice(&(field.len() as u32).to_be_bytes());
                        answer.extend_from_slice(field);
                    }
                    answer
                } else {
                    vec![5]
                };
                let mut framed = (reply.len() as u32).to_be_bytes().to_vec();
                framed.extend_from_slice(&reply);
                if client.write_all(&framed).is_err() {
                    break;
                }
            }
        }
    });
    (path, seen)
}

#[test]
fn a_step_reaches_the_forwarded_agent() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = format!(
        "{BASE}\
         RUN --mount=type=ssh agent-client 11 > /default.reply \
             && echo \"$SSH_AUTH_SOCK\" > /default.sock \
             && stat -c '%a %u %g %F' \"$SSH_AUTH_SOCK\" > /default.stat \
             && agent-client 19 > /remove-all.reply\n\
         RUN --mount=type=ssh,id=git,target=/tmp/git.sock,mode=0666,uid=5,required \
             SSH_AUTH_SOCK=/tmp/git.sock agent-client 11 > /git.reply \
             && stat -c '%a %u %g' /tmp/git.sock > /git.stat\n"
    );
    let Some(context) = context(&home, &dockerfile) else {
        return;
    };
    let agents = tempfile::tempdir().unwrap();
    let (agent, seen) = start_agent(agents.path());
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
    let lists_the_key = |name: &str| {
        let reply = std::fs::read(local.join(name)).unwrap();
        reply.first() == Some(&12) && reply.ends_with(REPLY.as_bytes())
    };
    assert!(lists_the_key("default.reply"));
    assert!(lists_the_key("git.reply"));
    assert_eq!(read("default.sock"), "/run/buildkit/ssh_agent.0\n");
    assert_eq!(read("default.stat"), "600 0 0 socket\n");
    assert_eq!(read("git.stat"), "666 5 0\n");
    // Removing the user's keys is refused, and never reaches the agent.
    assert_eq!(std::fs::read(local.join("remove-all.reply")).unwrap(), [5]);
    assert_eq!(*seen.lock().unwrap(), [11, 11]);
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
    let dockerfile = format!("{BASE}RUN --mount=type=ssh,required agent-client 11\n");
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
