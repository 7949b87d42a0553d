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

/// The plain-progress output of a build of `context` that succeeds.
fn build_log(home: &Home, context: &std::path::Path, out: &str) -> String {
    let out = home.path(out);
    let output = home
        .build(&["-o", out.to_str().unwrap(), context.to_str().unwrap()])
        .assert()
        .success()
        .get_output()
        .clone();
    support::build::stderr_of(&output)
}

#[test]
fn only_a_change_below_the_bound_source_reruns_the_step() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile =
        format!("{BASE}RUN --mount=type=bind,source=src,target=/s cat /s/deep/a.txt > /a\n");
    let context = home.context("edit", &dockerfile);
    std::fs::create_dir_all(context.join("src/deep")).unwrap();
    std::fs::write(context.join("src/deep/a.txt"), "one\n").unwrap();
    std::fs::write(context.join("other.txt"), "x\n").unwrap();
    build_log(&home, &context, "out1");

    // A file beside the bound source: every step still comes from the cache.
    std::fs::write(context.join("other.txt"), "y\n").unwrap();
    let log = build_log(&home, &context, "out2");
    assert_eq!(log.matches(" CACHED\n").count(), 3, "{log}");
    assert_eq!(
        std::fs::read_to_string(home.path("out2/a")).unwrap(),
        "one\n"
    );

    // Same size, new content, below the source: the step runs and sees it.
    std::fs::write(context.join("src/deep/a.txt"), "two\n").unwrap();
    let log = build_log(&home, &context, "out3");
    assert_eq!(log.matches(" CACHED\n").count(), 2, "{log}");
    assert_eq!(
        std::fs::read_to_string(home.path("out3/a")).unwrap(),
        "two\n"
    );
}

#[test]
fn a_context_given_as_a_relative_path_is_bound_too() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = format!("{BASE}RUN --mount=source=sub,target=/s cat /s/a.txt > /a\n");
    let context = home.context("relative", &dockerfile);
    std::fs::create_dir_all(context.join("sub")).unwrap();
    std::fs::write(context.join("sub/a.txt"), "relative\n").unwrap();
    let out = home.path("out");
    home.build(&["-o", out.to_str().unwrap(), "."])
        .current_dir(&context)
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(out.join("a")).unwrap(),
        "relative\n"
    );
}

#[test]
fn binds_of_the_context_hide_ignored_files_and_never_change_it() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = format!(
        "{BASE}RUN --mount=target=/all ls -A /all /all/sub > /all.txt\n\
         RUN --mount=source=clean,target=/clean ls -A /clean > /clean.txt && \
             (cat /clean/out > /out.txt 2>&1 || echo unresolved > /out.txt) && \
             (touch /clean/new 2> /refused || true)\n\
         RUN --mount=source=clean,target=/w,rw echo changed > /w/f.txt && rm /w/g.txt && \
             cat /w/f.txt > /rw.txt\n"
    );
    let context = home.context("ignored", &dockerfile);
    std::fs::write(
        context.join(".dockerignore"),
        "secret.txt\nsub/hidden.txt\n",
    )
    .unwrap();
    std::fs::write(context.join("secret.txt"), "no").unwrap();
    std::fs::create_dir_all(context.join("sub")).unwrap();
    std::fs::write(context.join("sub/hidden.txt"), "no").unwrap();
    std::fs::write(context.join("sub/shown.txt"), "yes").unwrap();
    std::fs::create_dir_all(context.join("clean")).unwrap();
    std::fs::write(context.join("clean/f.txt"), "original\n").unwrap();
    std::fs::write(context.join("clean/g.txt"), "kept\n").unwrap();
    // A link out of the context resolves inside the step's root, where
    // nothing is there.
    std::fs::write(home.path("outside.txt"), "host file\n").unwrap();
    std::os::unix::fs::symlink("../../outside.txt", context.join("clean/out")).unwrap();

    let out = build_to(&home, &context, "out");
    let all = std::fs::read_to_string(out.join("all.txt")).unwrap();
    assert!(all.contains("shown.txt"), "{all}");
    assert!(!all.contains("secret.txt"), "{all}");
    assert!(!all.contains("hidden.txt"), "{all}");
    assert_eq!(
        std::fs::read_to_string(out.join("clean.txt")).unwrap(),
        "f.txt\ng.txt\nout\n"
    );
    let seen = std::fs::read_to_string(out.join("out.txt")).unwrap();
    assert!(!seen.contains("host file"), "{seen}");
    assert!(
        std::fs::read_to_string(out.join("refused"))
            .unwrap()
            .contains("Read-only file system")
    );
    assert_eq!(
        std::fs::read_to_string(out.join("rw.txt")).unwrap(),
        "changed\n"
    );
    // The user's files are as they were.
    assert!(!context.join("clean/new").exists());
    assert_eq!(
        std::fs::read_to_string(context.join("clean/f.txt")).unwrap(),
        "original\n"
    );
    assert!(context.join("clean/g.txt").exists());
    for gone in ["all", "clean", "w"] {
        assert!(!out.join(gone).exists(), "/{gone} is in the image");
    }
}

#[test]
fn a_new_cache_takes_mode_owner_and_a_seed_from_a_stage() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = format!(
        "FROM scratch AS tools\nCOPY hello.txt /seed/hello.txt\n\
         {BASE}RUN --mount=type=cache,id=owned,target=/c,uid=7,gid=8,mode=0710 stat -c '%u %g %a' /c > /owner\n\
         RUN --mount=type=cache,id=s,target=/c,from=tools,source=/seed cat /c/hello.txt > /seeded && echo kept > /c/new\n\
         RUN --mount=type=cache,id=s,target=/d,from=tools,source=/seed,ro cat /d/new > /persisted && touch /d/x 2> /refused || true\n"
    );
    let context = home.context("seed", &dockerfile);
    std::fs::write(context.join("hello.txt"), "seed\n").unwrap();
    let out = build_to(&home, &context, "out");
    assert_eq!(
        std::fs::read_to_string(out.join("owner")).unwrap(),
        "7 8 710\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("seeded")).unwrap(),
        "seed\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("persisted")).unwrap(),
        "kept\n"
    );
    assert!(
        std::fs::read_to_string(out.join("refused"))
            .unwrap()
            .contains("Read-only file system")
    );
    for gone in ["c", "d", "seed"] {
        assert!(!out.join(gone).exists(), "/{gone} is in the image");
    }

    // A different seed is a different cache, seeded afresh.
    std::fs::write(context.join("hello.txt"), "other seed\n").unwrap();
    let again = format!(
        "FROM scratch AS tools\nCOPY hello.txt /seed/hello.txt\n\
         {BASE}RUN --mount=type=cache,id=s,target=/c,from=tools,source=/seed ls /c > /listed\n"
    );
    std::fs::write(context.join("Dockerfile"), again).unwrap();
    let out = build_to(&home, &context, "out2");
    assert_eq!(
        std::fs::read_to_string(out.join("listed")).unwrap(),
        "hello.txt\n"
    );
}

/// A base stage with busybox, two stages `a` and `b` on it running the
/// RUN `step` gives for their name, and a final stage copying their `/seen`.
fn two_parallel_stages(step: impl Fn(&str) -> String) -> String {
    format!(
        "FROM scratch AS base\nCOPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         FROM base AS a\n{}\nFROM base AS b\n{}\n\
         FROM base\nCOPY --from=a /seen /a-seen\nCOPY --from=b /seen /b-seen\n",
        step("a"),
        step("b")
    )
}

#[test]
fn parallel_steps_with_a_private_cache_each_get_their_own() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    // Both steps meet through a shared cache, so they hold the private one
    // at the same time.
    let dockerfile = two_parallel_stages(|me| {
        format!(
            "RUN --mount=type=cache,id=sync,target=/sync \
             --mount=type=cache,id=p,target=/p,sharing=private \
             touch /p/{me} /sync/{me} \
             && for i in $(seq 600); do [ -e /sync/a ] && [ -e /sync/b ] && break; sleep 0.1; done \
             && ls /p > /seen"
        )
    });
    let out = build_to(&home, &home.context("private", &dockerfile), "out");
    assert_eq!(std::fs::read_to_string(out.join("a-seen")).unwrap(), "a\n");
    assert_eq!(std::fs::read_to_string(out.join("b-seen")).unwrap(), "b\n");
}

#[test]
fn parallel_steps_with_a_locked_cache_take_turns() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    // `mkdir` fails if the other step holds the cache at the same time.
    let dockerfile = two_parallel_stages(|me| {
        format!(
            "RUN --mount=type=cache,id=l,target=/l,sharing=locked \
             mkdir /l/busy && sleep 1 && echo {me} >> /l/log && rmdir /l/busy && cp /l/log /seen"
        )
    });
    let out = build_to(&home, &home.context("locked", &dockerfile), "out");
    let first = std::fs::read_to_string(out.join("a-seen")).unwrap();
    let second = std::fs::read_to_string(out.join("b-seen")).unwrap();
    // Whichever went second saw both entries.
    let (one, both) = if first.len() < second.len() {
        (first, second)
    } else {
        (second, first)
    };
    assert!(one == "a\n" || one == "b\n", "{one}");
    assert!(
        both == format!("{one}{}", if one == "a\n" { "b\n" } else { "a\n" }),
        "{both}"
    );
}

/// Paths in the last layer of the single-image OCI layout at `layout`.
fn last_layer_paths(layout: &std::path::Path) -> Vec<String> {
    let layers = support::build::layout_layer_entries(layout);
    let mut paths: Vec<String> = layers
        .last()
        .unwrap()
        .iter()
        .map(|e| e.path.trim_end_matches('/').to_owned())
        .collect();
    paths.sort();
    paths
}

#[test]
fn mount_targets_hide_the_image_and_leave_nothing_in_the_layer() {
    mount_targets_leave_nothing("overlay");
}

#[test]
fn mount_targets_leave_nothing_on_the_copy_snapshotter_either() {
    mount_targets_leave_nothing("copy");
}

/// Several mounts on one RUN: over image content, at missing paths (deep
/// ones, a file), under a symlink and under a `..` symlink that climbs
/// past the root.
fn mount_targets_leave_nothing(snapshotter: &str) {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = format!(
        "{BASE}RUN mkdir -p /usr/src/app /data && echo image > /usr/src/app/f \
         && ln -s /data /link && ln -s ../../../.. /up\n\
         RUN --mount=type=tmpfs,target=/usr/src/app \
         --mount=type=bind,target=/new/deep/ctx \
         --mount=type=cache,target=/usr/src/cache \
         --mount=type=bind,source=hello.txt,target=/etc/conf/hello.txt \
         --mount=type=tmpfs,target=/link/sub \
         --mount=type=tmpfs,target=/up/escaped \
         test ! -e /usr/src/app/f && echo hidden > /usr/src/app/g \
         && cat /new/deep/ctx/hello.txt /etc/conf/hello.txt > /seen \
         && echo x > /data/sub/x && echo y > /escaped/y && echo ran > /ran\n"
    );
    let context = home.context("targets", &dockerfile);
    std::fs::write(context.join("hello.txt"), "hello\n").unwrap();
    let layout = home.path("layout");
    let out = home.path("out");
    home.build(&[
        "-o",
        &format!("type=oci,dest={},tar=false", layout.display()),
        "-o",
        out.to_str().unwrap(),
        context.to_str().unwrap(),
    ])
    .env("BUILDER_SNAPSHOTTER", snapshotter)
    .assert()
    .success();
    // The step's layer holds only what it wrote outside its mounts.
    assert_eq!(last_layer_paths(&layout), ["ran", "seen"]);
    assert_eq!(
        std::fs::read_to_string(out.join("seen")).unwrap(),
        "hello\nhello\n"
    );
    // The image's content under a mount is back, unchanged.
    assert_eq!(
        std::fs::read_to_string(out.join("usr/src/app/f")).unwrap(),
        "image\n"
    );
    assert!(!out.join("usr/src/app/g").exists());
    assert!(!out.join("data/sub").exists());
    assert!(!out.join("escaped").exists());
    assert!(
        !std::path::Path::new("/escaped").exists(),
        "a mount left the rootfs"
    );
}

/// The `AS` names of a Dockerfile's stages (those without variables).
fn stage_names(dockerfile: &str) -> Vec<String> {
    dockerfile
        .lines()
        .filter(|line| line.trim_start().to_ascii_uppercase().starts_with("FROM "))
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let at = words.iter().position(|w| w.eq_ignore_ascii_case("as"))?;
            words.get(at + 1).map(|name| name.to_string())
        })
        .filter(|name| !name.contains('$'))
        .collect()
}

/// Every real-world Dockerfile that uses RUN --mount plans with
/// `builder build --dry-run`, with each of its stages as the target (so
/// every stage's mounts are read), and the plan shows the mounts.
#[test]
fn realworld_files_with_mounts_plan_in_a_dry_run() {
    let Some(dir) = support::conformance_dir("corpus") else {
        return;
    };
    let context = tempfile::tempdir().unwrap();
    let mut files: Vec<_> = std::fs::read_dir(dir.join("realworld"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "Dockerfile"))
        .filter(|p| std::fs::read_to_string(p).unwrap().contains("--mount"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no real-world file uses --mount");
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let targets = std::iter::once(None).chain(stage_names(&text).into_iter().map(Some));
        let mut shown = false;
        for target in targets {
            let mut cmd = assert_cmd::Command::cargo_bin("builder").unwrap();
            cmd.args(["build", "--dry-run", "-f"]).arg(file);
            if let Some(target) = &target {
                cmd.args(["--target", target]);
            }
            let output = cmd.arg(context.path()).output().unwrap();
            if !output.status.success() {
                failures.push(format!(
                    "{} (target {target:?}): {}",
                    file.display(),
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            shown |= String::from_utf8_lossy(&output.stdout).contains("--mount=");
        }
        if !shown {
            failures.push(format!("{}: no plan shows a --mount", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
