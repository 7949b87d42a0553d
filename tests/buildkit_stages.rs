//! Multi-stage builds as BuildKit runs them (cases after BuildKit's
//! `dockerfile_test.go` multi-stage tests; each expectation checked against
//! BuildKit 0.8 with the same Dockerfile): `--target` builds only the
//! stages it needs (a broken stage it does not need is never run), and a
//! stage built on another inherits its files, ENV, WORKDIR and USER.
//! Needs root; skipped otherwise.

mod support;

use support::build::{Home, can_build};
use support::built::{BUSYBOX, write_files};

#[test]
fn target_builds_only_the_stages_it_needs() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "target",
        "FROM scratch AS a\nCOPY a /a\nFROM scratch AS broken\nCOPY missing /\nFROM a AS b\nCOPY b /b\n",
    );
    write_files(&context, &[("a", "a"), ("b", "b")]);
    let image = home.built(&context, &["--target", "b"]);
    assert_eq!(image.list("/"), ["a", "b"]);
    assert_eq!(image.text("/b"), "b");
    // The broken stage fails when it is the target.
    let stderr = home.build_fails(&context, &["--target", "broken"]);
    assert!(stderr.contains("missing"), "{stderr}");
}

#[test]
fn a_stage_inherits_files_env_workdir_and_user_of_its_base_stage() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "inherit",
        &format!(
            "{}RUN mkdir -m 777 /out && mkdir -p /etc && echo \"five:x:5:5::/:/bin/sh\" > /etc/passwd \
             && echo \"five:x:5:\" > /etc/group\n\
             ENV E=1\nWORKDIR /w\nUSER 5\n\
             FROM first AS second\nRUN echo \"$E $(pwd) $(id -u)\" > /out/inherit\n",
            BUSYBOX.replace("FROM scratch", "FROM scratch AS first")
        ),
    );
    let image = home.built(&context, &[]);
    assert_eq!(image.text("/out/inherit"), "1 /w 5\n");
    assert_eq!(image.owner("/out/inherit"), (5, 5));
    let config = image.runtime();
    assert_eq!(config["User"], "5");
    assert_eq!(config["WorkingDir"], "/w");
    assert_eq!(image.env("E").as_deref(), Some("1"));
}
