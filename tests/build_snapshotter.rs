//! The copy snapshotter (`BUILDER_SNAPSHOTTER=copy`), the path RUN steps
//! take where overlayfs cannot be mounted: `fixtures/hello` built with it
//! and with overlays gives the same files and the same layer entries, and
//! an unknown snapshotter is refused. Needs root; skipped otherwise.

mod support;

use predicates::str::contains;
use support::build::{Home, can_build, layout_layer_entries, tree_listing};

#[test]
fn hello_is_the_same_built_on_copies_and_on_overlays() {
    if !can_build() {
        return;
    }
    let mut results = Vec::new();
    for snapshotter in ["overlay", "copy"] {
        let home = Home::new();
        let context = home.hello_context();
        let (out, layout) = (home.path("out"), home.path("layout"));
        home.build(&[
            "-o",
            &format!("type=local,dest={}", out.display()),
            "-o",
            &format!("type=oci,tar=false,dest={}", layout.display()),
            context.to_str().unwrap(),
        ])
        .env("BUILDER_SNAPSHOTTER", snapshotter)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .assert()
        .success()
        .stderr(contains("7 steps run, 0 cached"));
        let listing = tree_listing(&out);
        assert!(
            listing.iter().any(|l| l.starts_with("srv/app/app.sh 755 ")),
            "{listing:?}"
        );
        assert!(listing.contains(&"bin/sh -> /bin/busybox".to_owned()));
        results.push((listing, layout_layer_entries(&layout)));
    }
    let (copy, overlay) = (results.pop().unwrap(), results.pop().unwrap());
    assert_eq!(copy.0, overlay.0, "the same files in the local output");
    assert_eq!(copy.1, overlay.1, "the same layer entries");
}

#[test]
fn an_unknown_snapshotter_is_refused() {
    let home = Home::new();
    let context = home.context("ctx", "FROM scratch\n");
    home.build(&[context.to_str().unwrap()])
        .env("BUILDER_SNAPSHOTTER", "zfs")
        .assert()
        .failure()
        .stderr(contains(
            "BUILDER_SNAPSHOTTER=\"zfs\": expected \"overlay\" or \"copy\"",
        ));
}
