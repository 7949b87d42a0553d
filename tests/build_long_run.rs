//! A RUN step that outlives the async runtime's idle-thread timeout (10 s)
//! after a COPY (which moves the build task through `block_in_place`) still
//! runs to its end: the sandbox helper dies with the thread that spawned it,
//! so that thread must not retire while the step runs.

mod support;

use support::build::{Home, can_build, stderr_of};

#[test]
fn a_run_step_longer_than_ten_seconds_after_a_copy_completes() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "ctx",
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY Dockerfile /Dockerfile\n\
         RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox sleep 12 && /bin/busybox echo slept > /slept\"]\n",
    );
    let dest = home.path("out");
    let output = home
        .build(&[
            "-o",
            &format!("type=local,dest={}", dest.display()),
            context.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(
        std::fs::read_to_string(dest.join("slept")).unwrap(),
        "slept\n"
    );
}
