//! `.dockerignore` as BuildKit applies it (cases after BuildKit's
//! `dockerfile_test.go` dockerignore tests, checked against BuildKit 0.8
//! with the same context): patterns, `**`, exceptions, directories, an
//! ignored Dockerfile that the build still reads, and the context's ignore
//! file used with a Dockerfile from elsewhere (`-f`). Needs root; skipped
//! otherwise.

mod support;

use support::build::{Home, can_build};
use support::built::{BUSYBOX, write_files};

#[test]
fn ignored_files_stay_out_of_copy_dot() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("ignore", &format!("{BUSYBOX}COPY . /ctx/\n"));
    write_files(
        &context,
        &[
            (
                ".dockerignore",
                "*.tmp\n**/*.log\n!keep.log\nsecret/\nDockerfile\n",
            ),
            ("a.tmp", "t"),
            ("b.txt", "b"),
            ("d/x.log", "x"),
            ("keep.log", "k"),
            ("secret/s", "s"),
        ],
    );
    let image = home.built(&context, &[]);
    assert_eq!(
        image.list("/ctx"),
        [".dockerignore", "b.txt", "busybox", "d", "keep.log"]
    );
    // The directory stays, emptied of what is ignored.
    assert!(image.list("/ctx/d").is_empty());
}

#[test]
fn a_dockerfile_outside_the_context_still_gets_the_contexts_ignore_file() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.path("ctx");
    write_files(
        &context,
        &[
            (".dockerignore", "ign.txt\n"),
            ("a", "a\n"),
            ("ign.txt", "ign\n"),
        ],
    );
    let dockerfile = home.path("other/Build.df");
    write_files(
        &home.path("other"),
        &[("Build.df", "FROM scratch\nCOPY . /ctx/\n")],
    );
    let image = home.built(&context, &["-f", dockerfile.to_str().unwrap()]);
    assert_eq!(image.list("/ctx"), [".dockerignore", "a"]);
}
