//! `--root` given as a relative path: the store lands under the working
//! directory and RUN steps (overlay mounts, which need host paths from `/`)
//! still work.

mod support;

use support::build::{Home, can_build, stderr_of};

#[test]
fn a_relative_root_builds_with_run_steps_and_caches_them() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "ctx",
        "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"touch\", \"/ran\"]\n",
    );
    let run = || {
        let mut cmd = home.build(&["-t", "rel", context.to_str().unwrap()]);
        cmd.env_remove("BUILDER_ROOT")
            .args(["--root", "relative-store"])
            .current_dir(home.dir.path());
        cmd.output().unwrap()
    };
    let first = run();
    assert!(first.status.success(), "{}", stderr_of(&first));
    assert!(home.path("relative-store/blobs/sha256").is_dir());

    let again = run();
    assert!(again.status.success(), "{}", stderr_of(&again));
    let progress = stderr_of(&again);
    assert!(
        progress.contains("CACHED") && !progress.contains("ERROR"),
        "{progress}"
    );
}
