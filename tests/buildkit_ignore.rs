//! `.dockerignore` as BuildKit applies it (a case after BuildKit's
//! `dockerfile_test.go` dockerignore tests, checked against BuildKit 0.8
//! with the same context): patterns, `**`, exceptions, directories, and an
//! ignored Dockerfile that the build still reads. Needs root; skipped
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
