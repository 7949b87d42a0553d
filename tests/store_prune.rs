//! `builder prune` after real builds: the default keeps the build cache (a
//! rebuild is all CACHED and the same image), `--all` drops it (a rebuild
//! runs every step, and succeeds), snapshots no image or cached step needs
//! leave the disk, a prune during a build is refused, and what a killed
//! build left in `tmp/` is cleared. Needs root; the registry case also
//! Debian's docker-registry; skipped otherwise.

mod support;

use predicates::str::contains;
use std::collections::BTreeSet;
use std::path::Path;
use support::build::{Home, can_build, stderr_of};
use support::cli::builder;
use support::image::BaseImage;
use support::registry::Registry;

const EPOCH: &str = "1700000000";

const BASE: &str = "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";

/// Builds `args` reproducibly; returns the build's stderr.
fn build(home: &Home, args: &[&str]) -> String {
    let output = home
        .build(args)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .assert()
        .success()
        .get_output()
        .clone();
    stderr_of(&output)
}

/// The `image sha256:…` line a build ends with.
fn image_line(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.starts_with("image sha256:"))
        .unwrap_or_else(|| panic!("no image line in {stderr}"))
        .to_owned()
}

/// `builder prune ARGS…`, which must succeed; returns its stdout.
fn prune(home: &Home, args: &[&str]) -> String {
    let output = builder(home.dir.path())
        .arg("prune")
        .args(args)
        .assert()
        .success()
        .get_output()
        .clone();
    String::from_utf8(output.stdout).unwrap()
}

/// The `Total reclaimed space: …` of a prune's output.
fn reclaimed(stdout: &str) -> &str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("Total reclaimed space: "))
        .unwrap_or_else(|| panic!("no total in {stdout}"))
}

/// The names of the entries of `dir`.
fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

fn snapshots(home: &Home) -> BTreeSet<String> {
    names(&home.path("store/snapshots"))
}

/// The snapshot names (chain IDs) of the layers of image `name`.
fn image_chains(home: &Home, name: &str) -> BTreeSet<String> {
    let output = builder(home.dir.path())
        .args(["inspect", name])
        .assert()
        .success()
        .get_output()
        .clone();
    let inspected: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let diff_ids: Vec<oci_spec::image::Digest> =
        serde_json::from_value(inspected["config"]["rootfs"]["diff_ids"].clone()).unwrap();
    assert!(!diff_ids.is_empty());
    builder::store::chain_ids(&diff_ids)
        .iter()
        .map(|chain| chain.digest().to_owned())
        .collect()
}

#[test]
fn prune_keeps_the_build_cache_so_a_rebuild_is_cached_and_the_same_image() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.hello_context();
    let dir = context.to_str().unwrap();
    let first = image_line(&build(&home, &["-t", "hello", dir]));
    let cached_snapshots = snapshots(&home);

    // The image's name goes: its manifest and config go, the layers the
    // step cache names stay, and so do the snapshots cached steps use.
    builder(home.dir.path())
        .args(["rmi", "hello"])
        .assert()
        .success();
    let stdout = prune(&home, &[]);
    assert!(stdout.contains("Deleted: sha256:"), "{stdout}");
    assert_ne!(reclaimed(&stdout), "0B", "{stdout}");
    assert_eq!(snapshots(&home), cached_snapshots);

    let stderr = build(&home, &[dir]);
    assert_eq!(stderr.matches(" CACHED\n").count(), 7, "{stderr}");
    assert!(stderr.contains("0 steps run, 7 cached"), "{stderr}");
    assert_eq!(image_line(&stderr), first);

    // With a name kept, nothing it or the cache needs is removed.
    build(&home, &["-t", "hello", dir]);
    assert_eq!(prune(&home, &[]), "Total reclaimed space: 0B\n");
    let stderr = build(&home, &["-t", "hello", dir]);
    assert!(stderr.contains("0 steps run, 7 cached"), "{stderr}");
    assert_eq!(image_line(&stderr), first);
}

#[test]
fn prune_all_drops_the_build_cache_and_the_next_build_runs_every_step() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.hello_context();
    let dir = context.to_str().unwrap();
    let first = image_line(&build(&home, &["-t", "hello", dir]));

    // The named image keeps its blobs and its layers' snapshots; the
    // greeting stage's snapshot, needed only by the cache, goes.
    let stdout = prune(&home, &["--all"]);
    assert!(
        stdout.contains("Removed 7 build cache record(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Removed 1 unpacked layer snapshot(s)"),
        "{stdout}"
    );
    assert_ne!(reclaimed(&stdout), "0B", "{stdout}");
    assert_eq!(snapshots(&home), image_chains(&home, "hello"));
    assert!(names(&home.path("store/cache/positions")).is_empty());

    let stderr = build(&home, &[dir]);
    assert!(!stderr.contains(" CACHED\n"), "{stderr}");
    assert!(stderr.contains("7 steps run, 0 cached"), "{stderr}");
    assert_eq!(image_line(&stderr), first);

    // Without a name, nothing is left but the store's empty directories.
    builder(home.dir.path())
        .args(["rmi", "hello"])
        .assert()
        .success();
    prune(&home, &["-a"]);
    assert!(snapshots(&home).is_empty());
    assert!(names(&home.path("store/blobs/sha256")).is_empty());
    assert!(names(&home.path("store/tmp")).is_empty());
}

#[test]
fn prune_is_refused_during_a_build_and_clears_what_a_killed_build_left() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    // The step leaves a read-only tree in its upper directory, then waits.
    let dockerfile = format!(
        "{BASE}RUN mkdir -p /data/ro && echo left > /data/ro/f && chmod 555 /data/ro /data && touch /started && sleep 600\n"
    );
    let context = home.context("killed", &dockerfile);
    let mut child = support::cli::process(home.dir.path())
        .args(["build", "--progress", "plain", context.to_str().unwrap()])
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let tmp = home.path("store/tmp");
    let mut polls = 0;
    // The store is made by the build: until then, nothing has started.
    let started = || {
        std::fs::read_dir(&tmp)
            .into_iter()
            .flatten()
            .any(|e| e.is_ok_and(|e| e.path().join("started").exists()))
    };
    while !started() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the build ended early: {status}");
        }
        polls += 1;
        assert!(polls < 12_000, "the RUN step never started");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }

    builder(home.dir.path())
        .arg("prune")
        .assert()
        .code(1)
        .stderr(contains("is in use by another builder operation"));
    assert!(!names(&tmp).is_empty());

    child.kill().unwrap();
    child.wait().unwrap();
    let stdout = prune(&home, &[]);
    assert!(stdout.contains("leftover temporary file(s)"), "{stdout}");
    assert_ne!(reclaimed(&stdout), "0B", "{stdout}");
    assert!(names(&tmp).is_empty(), "{:?}", names(&tmp));

    // The steps that finished before the kill are still cached.
    let context = home.context("after", BASE);
    let stderr = build(&home, &[context.to_str().unwrap()]);
    assert!(stderr.contains("0 steps run, 2 cached"), "{stderr}");
}

#[test]
fn snapshots_of_a_removed_base_image_leave_the_disk_and_the_rebuild_pulls_it_again() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let base = BaseImage::busybox(&registry);
    let home = Home::new();
    let dockerfile = format!("FROM {}\nRUN echo hi > /hi\n", base.reference);
    let context = home.context("based", &dockerfile);
    let dir = context.to_str().unwrap();
    build(&home, &["-t", "out", dir]);
    let base_chains = image_chains(&home, &base.reference);
    let out_chains = image_chains(&home, "out");
    assert!(base_chains.is_subset(&snapshots(&home)));

    // While the base is named, its snapshots and the step's stay.
    builder(home.dir.path())
        .args(["rmi", "out"])
        .assert()
        .success();
    prune(&home, &[]);
    assert!(out_chains.is_subset(&snapshots(&home)));

    builder(home.dir.path())
        .args(["rmi", &base.reference])
        .assert()
        .success();
    let stdout = prune(&home, &[]);
    assert!(stdout.contains("unpacked layer snapshot(s)"), "{stdout}");
    assert!(snapshots(&home).is_empty(), "{:?}", snapshots(&home));

    // The base is pulled again; the step's cached layer is still stored.
    let stderr = build(&home, &[dir]);
    assert!(stderr.contains("downloaded"), "{stderr}");
    assert!(stderr.contains("0 steps run, 1 cached"), "{stderr}");
}

#[test]
fn prune_filter_until_drops_only_the_build_cache_unused_for_that_long() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.hello_context();
    let dir = context.to_str().unwrap();
    build(&home, &["-t", "hello", dir]);

    assert_eq!(
        prune(&home, &["--filter", "until=24h"]),
        "Total reclaimed space: 0B\n"
    );
    let stderr = build(&home, &["-t", "hello", dir]);
    assert!(stderr.contains("0 steps run, 7 cached"), "{stderr}");

    let stdout = prune(&home, &["--filter", "until=0s"]);
    assert!(
        stdout.contains("Removed 7 build cache record(s)"),
        "{stdout}"
    );
    let stderr = build(&home, &["-t", "hello", dir]);
    assert!(stderr.contains("7 steps run, 0 cached"), "{stderr}");

    builder(home.dir.path())
        .args(["prune", "--filter", "label=x"])
        .assert()
        .code(2)
        .stderr(contains("prune knows only until=DURATION"));
}
