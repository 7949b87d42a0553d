//! RUN flags in real builds: `--security=insecure` runs with every
//! capability and a writable `/sys` only when the build is given
//! `--allow security.insecure` (refused with its line before anything runs
//! otherwise), `--network=host` needs `--allow network.host` (or the
//! build-wide `--network host`), `--network=none` sees only loopback and the
//! default a network namespace of the step's own (loopback and `tap0`).
//! Needs root; skipped otherwise.

mod support;

use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use support::build::{Home, can_build};

const BASE: &str = "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";

/// Builds `context` with `extra` flags into a fresh local output `out`.
fn build_to(
    home: &Home,
    context: &std::path::Path,
    out: &str,
    extra: &[&str],
) -> std::path::PathBuf {
    let out = home.path(out);
    let mut args = extra.to_vec();
    args.extend(["-o", out.to_str().unwrap(), context.to_str().unwrap()]);
    home.build(&args).assert().success();
    out
}

fn read(path: std::path::PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn insecure_steps_get_every_capability_only_when_allowed() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = format!(
        "{BASE}RUN echo ran-before > /before\n\
         RUN --security=insecure mkdir /m && mount -t tmpfs none /m && echo mounted > /mounted \
         && grep CapEff /proc/self/status > /caps && grep ' /sys ' /proc/mounts > /sys-mount\n"
    );
    let context = home.context("insecure", &dockerfile);

    // Without the entitlement: refused with its line, before any step runs.
    home.build(&[context.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(contains("Dockerfile:5"))
        .stderr(contains(
            "RUN --security=insecure needs the security.insecure entitlement",
        ))
        .stderr(contains("--allow security.insecure"))
        .stderr(contains("ran-before").not());

    let out = build_to(
        &home,
        &context,
        "out",
        &["--allow", "security.insecure", "--allow", "network.host"],
    );
    assert_eq!(read(out.join("mounted")), "mounted\n");
    // Docker's default set is 00000000a80425fb; an insecure step has all
    // that builder holds, as this test does.
    let caps = read(out.join("caps"));
    assert_eq!(caps, own_effective_capabilities());
    let sys = read(out.join("sys-mount"));
    assert!(sys.contains(" rw,"), "{sys}");
    // The tmpfs lived in the step's namespace only; its mountpoint stays.
    assert!(out.join("m").is_dir());
}

/// The `CapEff:` line of this test process.
fn own_effective_capabilities() -> String {
    let status = read("/proc/self/status".into());
    let line = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    format!("{line}\n")
}

#[test]
fn the_same_step_fails_in_the_default_sandbox() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let explicit = format!(
        "{BASE}RUN --security=sandbox grep CapEff /proc/self/status > /caps && grep ' /sys ' /proc/mounts > /sys-mount\n"
    );
    let out = build_to(&home, &home.context("sandbox", &explicit), "out", &[]);
    assert!(read(out.join("caps")).contains("00000000a80425fb"));
    assert!(read(out.join("sys-mount")).contains(" ro,"));

    let mount = format!("{BASE}RUN mkdir /m && mount -t tmpfs none /m\n");
    home.build(&[home.context("mount", &mount).to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(contains("Dockerfile:4"))
        .stderr(contains("exited with code"));
}

#[test]
fn host_network_steps_need_the_network_host_entitlement() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = format!("{BASE}RUN --network=host cat /proc/net/dev > /dev-list\n");
    let context = home.context("host", &dockerfile);
    home.build(&[context.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(contains(
            "Dockerfile:4: RUN --network=host needs the network.host entitlement",
        ))
        .stderr(contains("--allow network.host"));
    build_to(&home, &context, "allowed", &["--allow", "network.host"]);
    // `--network host` for the whole build grants it too, as with buildx.
    build_to(&home, &context, "cli", &["--no-cache", "--network", "host"]);
    // A stage the target does not need asks for nothing.
    let skipped = format!(
        "FROM scratch AS unused\nRUN --security=insecure --network=host true\n{BASE}RUN true\n"
    );
    home.build(&[home.context("skipped", &skipped).to_str().unwrap()])
        .assert()
        .success();
    home.build(&["--allow", "device", context.to_str().unwrap()])
        .assert()
        .failure()
        .stderr(contains("unknown entitlement \"device\""));
}

/// Interface names in a `/proc/net/dev` listing.
fn interfaces(listing: &str) -> Vec<String> {
    let mut names: Vec<String> = listing
        .lines()
        .skip(2)
        .filter_map(|line| line.split(':').next())
        .map(|name| name.trim().to_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_step_with_network_none_sees_only_loopback_while_the_default_has_its_own_tap() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = format!(
        "{BASE}RUN cat /proc/net/dev > /default\n\
         RUN --network=none cat /proc/net/dev > /none\n\
         RUN --network=default cat /proc/net/dev > /explicit-default\n"
    );
    let out = build_to(&home, &home.context("net", &dockerfile), "out", &[]);
    assert_eq!(interfaces(&read(out.join("default"))), ["lo", "tap0"]);
    assert_eq!(
        interfaces(&read(out.join("explicit-default"))),
        ["lo", "tap0"]
    );
    assert_eq!(interfaces(&read(out.join("none"))), ["lo"]);

    // With `--network host` for the build, the default steps have the host's.
    let out = build_to(
        &home,
        &home.context("net", &dockerfile),
        "out-host",
        &["--network", "host"],
    );
    assert_eq!(
        interfaces(&read(out.join("default"))),
        interfaces(&read("/proc/net/dev".into()))
    );

    // With `--network none` for the build, the default steps lose it too.
    let out = build_to(
        &home,
        &home.context("net", &dockerfile),
        "out-none",
        &["--network", "none"],
    );
    assert_eq!(interfaces(&read(out.join("default"))), ["lo"]);
}
