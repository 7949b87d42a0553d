//! `RUN --mount` in real builds: cache mounts persist across builds and
//! steps but stay out of the image, binds from a stage or the context are
//! read without leaving anything in the layer, tmpfs writes vanish, and
//! bad mount specs are refused with their line and BuildKit's words.
//! Needs root; skipped otherwise.

mod support;

use predicates::str::contains;
use support::build::{Home, can_build};

const BASE: &str = "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";

/// Builds `context` into a fresh local output directory named `out`.
fn build_to(home: &Home, context: &std::path::Path, out: &str) -> std::path::PathBuf {
    let out = home.path(out);
    home.build(&["-o", out.to_str().unwrap(), context.to_str().unwrap()])
        .assert()
        .success();
    out
}

#[test]
fn a_cache_mount_is_shared_across_steps_and_builds_but_not_in_the_image() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let first = format!(
        "{BASE}RUN --mount=type=cache,id=c,target=/cache echo one > /cache/f\n\
         RUN --mount=type=cache,id=c,target=/other,sharing=locked cp /other/f /seen-in-step\n"
    );
    let out = build_to(&home, &home.context("first", &first), "out1");
    assert_eq!(
        std::fs::read_to_string(out.join("seen-in-step")).unwrap(),
        "one\n"
    );
    assert!(!out.join("cache").exists());
    assert!(!out.join("other").exists());

    let second = format!(
        "{BASE}RUN --mount=type=cache,id=c,target=/var/c2,uid=7,mode=0700 cp /var/c2/f /seen-in-build\n"
    );
    let out = build_to(&home, &home.context("second", &second), "out2");
    assert_eq!(
        std::fs::read_to_string(out.join("seen-in-build")).unwrap(),
        "one\n"
    );
    assert!(!out.join("var").exists());

    // `prune --cache-mounts` empties it.
    assert_cmd::Command::cargo_bin("builder")
        .unwrap()
        .env("BUILDER_ROOT", home.path("store"))
        .args(["prune", "--cache-mounts"])
        .assert()
        .success()
        .stdout(contains("Removed 1 cache mount(s)"));
    let third = format!(
        "{BASE}RUN --mount=type=cache,id=c,target=/c3 test ! -e /c3/f && echo empty > /after-prune\n"
    );
    let out = build_to(&home, &home.context("third", &third), "out3");
    assert_eq!(
        std::fs::read_to_string(out.join("after-prune")).unwrap(),
        "empty\n"
    );
}

#[test]
fn a_bind_from_a_stage_or_the_context_reads_files_and_leaves_nothing() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = format!(
        "FROM scratch AS tools\nCOPY hello.txt /x/hello.txt\n\
         {BASE}RUN --mount=type=bind,from=tools,source=/x,target=/mnt cat /mnt/hello.txt > /read\n\
         RUN --mount=type=bind,target=/src/ctx,rw echo new > /src/ctx/new && ls /src/ctx > /listed\n\
         RUN --mount=target=/ro touch /ro/x 2> /refused || true\n"
    );
    let context = home.context("bind", &dockerfile);
    std::fs::write(context.join("hello.txt"), "hello from tools\n").unwrap();
    std::fs::write(context.join(".dockerignore"), "ignored.txt\n").unwrap();
    std::fs::write(context.join("ignored.txt"), "no").unwrap();
    let out = build_to(&home, &context, "out");
    assert_eq!(
        std::fs::read_to_string(out.join("read")).unwrap(),
        "hello from tools\n"
    );
    let listed = std::fs::read_to_string(out.join("listed")).unwrap();
    assert!(listed.contains("hello.txt\nnew\n"), "{listed}");
    assert!(!listed.contains("ignored.txt"), "{listed}");
    assert!(!context.join("new").exists(), "rw writes reach the context");
    assert!(
        std::fs::read_to_string(out.join("refused"))
            .unwrap()
            .contains("Read-only file system")
    );
    for gone in ["mnt", "src", "ro"] {
        assert!(!out.join(gone).exists(), "/{gone} is in the image");
    }
}

#[test]
fn tmpfs_writes_are_gone_after_the_step() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = format!(
        "{BASE}RUN --mount=type=tmpfs,target=/t,size=1m echo gone > /t/f && cat /t/f > /was\n\
         RUN test ! -e /t/f && echo absent > /after\n"
    );
    let out = build_to(&home, &home.context("tmpfs", &dockerfile), "out");
    assert_eq!(std::fs::read_to_string(out.join("was")).unwrap(), "gone\n");
    assert_eq!(
        std::fs::read_to_string(out.join("after")).unwrap(),
        "absent\n"
    );
    assert!(!out.join("t").exists());
}

#[test]
fn bad_mounts_are_refused_with_their_line() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let bad = format!("{BASE}RUN --mount=type=cache,target=/a,size=1g true\n");
    home.build(&[home.context("bad", &bad).to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(contains("Dockerfile:4"))
        .stderr(contains("unexpected key 'size' for mount type 'cache'"));
}

#[test]
fn bound_content_is_part_of_the_cache_key() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = format!("{BASE}RUN --mount=target=/ctx cat /ctx/v.txt > /v\n");
    let context = home.context("key", &dockerfile);
    std::fs::write(context.join("v.txt"), "one\n").unwrap();
    let out = build_to(&home, &context, "out1");
    assert_eq!(std::fs::read_to_string(out.join("v")).unwrap(), "one\n");
    std::fs::write(context.join("v.txt"), "two\n").unwrap();
    let out = build_to(&home, &context, "out2");
    assert_eq!(std::fs::read_to_string(out.join("v")).unwrap(), "two\n");
    // Unchanged content: the step comes from the cache.
    let output = home
        .build(&[context.to_str().unwrap()])
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = support::build::stderr_of(&output);
    assert_eq!(stderr.matches(" CACHED\n").count(), 3, "{stderr}");
}
