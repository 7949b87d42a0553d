//! Rootless builds by a user with a subordinate ID range (`/etc/subuid`,
//! `/etc/subgid`, `newuidmap`/`newgidmap` from Debian's `uidmap`) give the
//! image a root build gives: base-image owners are real in the steps'
//! view, `chown` and adding a user work (by hand: Debian's busybox has no
//! `adduser`), files private to a step's other user are in its layer, files
//! a step touches keep their owner and mode, and the store's snapshots hold the host IDs the namespace maps
//! the image's owners to.
//!
//! The test starts as root, makes the user `builder-subids` with a range
//! (left in place: later runs reuse them), pushes a base image to its own
//! registry and builds as root and as that user.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use support::build::{Home, TarEntry, can_build, layout_image, layout_layer_entries};
use support::image::BaseImage;
use support::registry::Registry;
use support::subids::{SUB_START, give_to, subid_user};

/// A layer over the busybox base: `/etc/shadow` of group shadow (42), a
/// home of user 1000 with a private file, `/x` for a step to chown, and
/// `/tmp/from-base` without its parent directory.
fn owners_layer() -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |kind: tar::EntryType, path: &str, mode: u32, owner: (u64, u64), data: &[u8]| {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(owner.0);
        header.set_gid(owner.1);
        header.set_mtime(1_600_000_000);
        header.set_size(data.len() as u64);
        tar.append_data(&mut header, path, data).unwrap();
    };
    let file = tar::EntryType::Regular;
    let dir = tar::EntryType::Directory;
    add(
        file,
        "etc/group",
        0o644,
        (0, 0),
        b"root:x:0:\nshadow:x:42:\nnogroup:x:65534:\n",
    );
    add(
        file,
        "etc/shadow",
        0o640,
        (0, 42),
        b"root:*:19000:0:99999:7:::\n",
    );
    add(dir, "home/", 0o755, (0, 0), b"");
    add(dir, "home/app/", 0o750, (1000, 1000), b"");
    add(file, "home/app/notes", 0o600, (1000, 1000), b"private\n");
    add(file, "x", 0o644, (0, 0), b"x\n");
    // No `tmp/` entry: the base's /tmp (1777) must stay as it is.
    add(file, "tmp/from-base", 0o644, (0, 0), b"b\n");
    tar.into_inner().unwrap()
}

const DOCKERFILE: &str = "\
FROM {BASE}
COPY --chown=1000:1000 greeting.txt /srv/greeting.txt
RUN stat -c '%n %u:%g %a' /etc/shadow /home/app /home/app/notes /srv/greeting.txt > /seen.txt
RUN --mount=type=cache,target=/cache mkdir -p /cache/p && echo c > /cache/p/f \
    && chmod 700 /cache/p && chown -R 1000:1000 /cache/p
USER 1000
RUN touch /tmp/by-1000
USER 0
RUN chown 1000:1000 /x && mkdir -p /home/u/.ssh && echo key > /home/u/.ssh/id \
    && chmod 700 /home/u/.ssh && chmod 600 /home/u/.ssh/id && chown -R 1001:1001 /home/u \
    && echo 'u:x:1001:1001::/home/u:/bin/sh' >> /etc/passwd && sed -i '$a u:!:19000::::::' /etc/shadow
";

/// The content of `path` in the last layer of `layout` that holds it.
fn file_in_layout(layout: &Path, path: &str) -> String {
    let (manifest, _) = layout_image(layout);
    let mut found = None;
    for layer in manifest["layers"].as_array().unwrap() {
        let blob = support::build::layout_blob(layout, layer["digest"].as_str().unwrap());
        let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(&blob[..]));
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.path().unwrap().to_string_lossy() == path {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
                found = Some(text);
            }
        }
    }
    found.unwrap_or_else(|| panic!("{path} is in no layer"))
}

/// The entry `path` of `layer`.
fn entry<'a>(layer: &'a [TarEntry], path: &str) -> &'a TarEntry {
    layer
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("{path} is not in {layer:?}"))
}

/// Every `path` under the snapshots of `store`, with its on-disk owner.
fn snapshot_owners(store: &Path, path: &str) -> Vec<(u32, u32)> {
    std::fs::read_dir(store.join("snapshots"))
        .unwrap()
        .filter_map(|snapshot| std::fs::symlink_metadata(snapshot.unwrap().path().join(path)).ok())
        .map(|meta| (meta.uid(), meta.gid()))
        .collect()
}

#[test]
fn a_user_with_a_subordinate_range_builds_what_root_builds() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some((uid, gid)) = subid_user() else {
        return;
    };
    let base = BaseImage::busybox_with_layer(&registry, "owners", owners_layer());
    let home = Home::new();
    let context = home.context("ctx", &DOCKERFILE.replace("{BASE}", &base.reference));
    std::fs::write(context.join("greeting.txt"), "hello\n").unwrap();
    std::fs::set_permissions(home.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    // As root, into a store of its own.
    let root_layout = home.path("root-layout");
    let as_root = home
        .build(&[
            "-o",
            &format!("type=oci,tar=false,dest={}", root_layout.display()),
            context.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&as_root.stderr);
    assert!(as_root.status.success(), "as root: {stderr}");

    let seen = "/etc/shadow 0:42 640\n/home/app 1000:1000 750\n\
        /home/app/notes 1000:1000 600\n/srv/greeting.txt 1000:1000 644\n";
    assert_eq!(file_in_layout(&root_layout, "seen.txt"), seen);
    let root_layers = layout_layer_entries(&root_layout);

    for snapshotter in ["overlay", "copy"] {
        let user_dir = home.path(&format!("user-{snapshotter}"));
        std::fs::create_dir(&user_dir).unwrap();
        give_to(&user_dir, uid, gid);
        let as_user = |args: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_builder"))
                .env_clear()
                .env("HOME", &user_dir)
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .env("TMPDIR", "/tmp")
                .env("BUILDER_SNAPSHOTTER", snapshotter)
                .arg("--root")
                .arg(user_dir.join("store"))
                .args(args)
                .current_dir("/")
                .uid(uid)
                .gid(gid)
                .output()
                .unwrap()
        };
        let user_layout = user_dir.join("layout");
        let built = as_user(&[
            "build",
            "--progress",
            "plain",
            "-o",
            &format!("type=oci,tar=false,dest={}", user_layout.display()),
            context.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&built.stderr);
        if stderr.contains("unsharing the user namespace") {
            eprintln!("SKIPPED: the kernel refuses unprivileged user namespaces:\n{stderr}");
            return;
        }
        assert!(built.status.success(), "{snapshotter}: {stderr}");
        assert!(
            !stderr.contains("/etc/subuid"),
            "no warning with a range: {stderr}"
        );
        check_user_build(&user_layout, &root_layers, seen);

        let store = user_dir.join("store");
        assert_eq!(
            std::fs::read_dir(store.join("tmp")).unwrap().count(),
            0,
            "{snapshotter}: the step's scratch directories are removed"
        );
        if snapshotter == "overlay" {
            // The snapshots hold the host IDs the namespace maps owners to.
            let host = |id: u32| SUB_START + id - 1;
            let shadow = snapshot_owners(&store, "etc/shadow");
            assert!(!shadow.is_empty());
            assert!(shadow.iter().all(|&o| o == (uid, host(42))), "{shadow:?}");
            let notes = snapshot_owners(&store, "home/app/notes");
            assert_eq!(notes, [(host(1000), host(1000))]);
            let key = snapshot_owners(&store, "home/u/.ssh/id");
            assert_eq!(key, [(host(1001), host(1001))]);
        }

        // Prune removes the snapshots and the cache mount, also the files
        // of the steps' other users (which the user alone may not unlink).
        let prune = ["prune", "--all", "--cache-mounts"];
        for args in [&["rmi", base.reference.as_str()][..], &prune] {
            let out = as_user(args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{args:?}: {stderr}");
        }
        for emptied in ["snapshots", "cache-mounts"] {
            let left: Vec<_> = std::fs::read_dir(store.join(emptied))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| !name.ends_with(".lock"))
                .collect();
            assert!(
                left.is_empty(),
                "{snapshotter}: {emptied} after prune: {left:?}"
            );
        }

        if snapshotter == "overlay" {
            // Root building on the user's store does not reuse snapshots
            // holding the user's host IDs: it sees the image's owners.
            let built = as_user(&["build", "--progress", "plain", context.to_str().unwrap()]);
            assert!(built.status.success());
            let other = home.context(
                "root-on-user-store",
                &format!(
                    "FROM {}\nRUN stat -c '%n %u:%g' /etc/shadow /home/app/notes > /seen\n",
                    base.reference
                ),
            );
            let out = home.path("root-on-user-store-out");
            let built = home
                .build(&["-o", out.to_str().unwrap(), other.to_str().unwrap()])
                .env("BUILDER_ROOT", &store)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&built.stderr);
            assert!(built.status.success(), "{stderr}");
            assert_eq!(
                std::fs::read_to_string(out.join("seen")).unwrap(),
                "/etc/shadow 0:42\n/home/app/notes 1000:1000\n"
            );
            assert!(
                stderr.contains("unpacked layer snapshot(s) made with other owners"),
                "{stderr}"
            );
        }
    }
}

/// What the user's build must hold: the owners its steps saw, and the
/// layers of the root build (`root_layers`).
fn check_user_build(layout: &Path, root_layers: &[Vec<TarEntry>], seen: &str) {
    // The steps saw the base image's owners and COPY --chown's.
    assert_eq!(file_in_layout(layout, "seen.txt"), seen);

    // The same files, owners and modes in every layer (mtimes aside).
    let layers = layout_layer_entries(layout);
    assert_eq!(layers, root_layers);
    let by_user = &layers[layers.len() - 2];
    let tmp = entry(by_user, "tmp/");
    assert_eq!((tmp.uid, tmp.gid, tmp.mode & 0o7777), (0, 0, 0o1777));
    assert_eq!(entry(by_user, "tmp/by-1000").uid, 1000);
    let run = layers.last().unwrap();
    let owner = |path: &str| {
        let e = entry(run, path);
        (e.uid, e.gid, e.mode & 0o7777)
    };
    assert_eq!(owner("x"), (1000, 1000, 0o644), "chown in a step");
    assert_eq!(owner("home/u/"), (1001, 1001, 0o755), "a new user's home");
    // Private to that user: read for the layer as root of the namespace.
    assert_eq!(owner("home/u/.ssh/"), (1001, 1001, 0o700));
    assert_eq!(owner("home/u/.ssh/id"), (1001, 1001, 0o600));
    assert_eq!(file_in_layout(layout, "home/u/.ssh/id"), "key\n");
    assert_eq!(owner("etc/passwd"), (0, 0, 0o644), "a touched file");
    assert_eq!(owner("etc/shadow"), (0, 42, 0o640), "a touched file");
    let passwd = file_in_layout(layout, "etc/passwd");
    assert!(
        passwd.ends_with("\nu:x:1001:1001::/home/u:/bin/sh\n"),
        "{passwd}"
    );
    let shadow = file_in_layout(layout, "etc/shadow");
    assert!(shadow.ends_with("\nu:!:19000::::::\n"), "{shadow}");
}

#[test]
fn the_unpack_helper_is_hidden_and_refuses_to_run_by_hand() {
    let help = assert_cmd::Command::new(env!("CARGO_BIN_EXE_builder"))
        .arg("--help")
        .assert()
        .success();
    assert!(!String::from_utf8_lossy(&help.get_output().stdout).contains("userns"));
    assert_cmd::Command::new(env!("CARGO_BIN_EXE_builder"))
        .arg("__userns")
        .write_stdin("not a request\n")
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "builder __userns is run by builder itself: reading its request",
        ));
}

#[test]
fn a_user_with_a_subordinate_range_builds_for_arm64_under_emulation() {
    if !can_build() {
        return;
    }
    if !Path::new("/usr/bin/qemu-aarch64-static").exists() {
        eprintln!("SKIPPED: qemu-aarch64-static is absent (Debian: qemu-user-static)");
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some((uid, gid)) = subid_user() else {
        return;
    };
    let Some(base) = BaseImage::busybox_amd64_arm64_index(&registry, "multi") else {
        return;
    };
    let home = Home::new();
    let context = home.context(
        "ctx",
        &format!(
            "FROM {}\n\
             RUN uname -m > /arch && chown 1000:42 /arch\n\
             USER 1000\n\
             RUN id -u > /tmp/uid\n",
            base.reference
        ),
    );
    std::fs::set_permissions(home.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let user_dir = home.path("user");
    std::fs::create_dir(&user_dir).unwrap();
    give_to(&user_dir, uid, gid);
    let layout = user_dir.join("layout");
    let built = Command::new(env!("CARGO_BIN_EXE_builder"))
        .env_clear()
        .env("HOME", &user_dir)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("TMPDIR", "/tmp")
        .arg("--root")
        .arg(user_dir.join("store"))
        .args([
            "build",
            "--progress",
            "plain",
            "--platform",
            "linux/arm64",
            "-o",
        ])
        .arg(format!("type=oci,tar=false,dest={}", layout.display()))
        .arg(&context)
        .current_dir("/")
        .uid(uid)
        .gid(gid)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert!(built.status.success(), "{stderr}");
    assert!(
        stderr.contains("registered in each step's own user namespace"),
        "{stderr}"
    );
    assert_eq!(file_in_layout(&layout, "arch"), "aarch64\n");
    assert_eq!(file_in_layout(&layout, "tmp/uid"), "1000\n");
    let layers = layout_layer_entries(&layout);
    let arch = entry(&layers[layers.len() - 2], "arch");
    assert_eq!((arch.uid, arch.gid), (1000, 42));
    let (_, config) = layout_image(&layout);
    assert_eq!(config["architecture"], "arm64");
}
