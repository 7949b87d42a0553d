//! WORKDIR as BuildKit does it (cases after BuildKit's `dockerfile_test.go`
//! workdir tests; each expectation checked against BuildKit 0.8 with the
//! same Dockerfile): relative paths resolve against the current one, `..`
//! and `.` are cleaned, variables expand, the directory is made (0755,
//! root's) and RUN starts in it. Needs root; skipped otherwise.

mod support;

use support::build::{Home, can_build};
use support::built::BUSYBOX;

#[test]
fn workdir_resolves_relative_paths_and_is_made_for_run() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "workdir",
        &format!(
            "{BUSYBOX}WORKDIR /a\nWORKDIR b\nWORKDIR ../c/./d\nRUN pwd > /pwd\nENV W=/w\nWORKDIR $W/x\n"
        ),
    );
    let image = home.built(&context, &[]);
    assert_eq!(image.text("/pwd"), "/a/c/d\n");
    for dir in ["/a", "/a/b", "/a/c", "/a/c/d", "/w", "/w/x"] {
        assert_eq!(image.mode(dir), 0o755, "{dir}");
        assert_eq!(image.owner(dir), (0, 0), "{dir}");
    }
    assert_eq!(image.runtime()["WorkingDir"], "/w/x");
}

#[test]
fn workdir_made_after_user_belongs_to_that_user() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "workdir-user",
        &format!(
            "{BUSYBOX}RUN mkdir -p /etc && echo \"u:x:1000:1000::/home/u:/bin/sh\" > /etc/passwd\n\
             USER u\nWORKDIR /made-by-user\nUSER root\n"
        ),
    );
    let image = home.built(&context, &[]);
    assert_eq!(image.owner("/made-by-user"), (1000, 1000));
    assert_eq!(image.mode("/made-by-user"), 0o755);
    assert_eq!(image.runtime()["WorkingDir"], "/made-by-user");
    assert_eq!(image.runtime()["User"], "root");
}
