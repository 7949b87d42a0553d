//! Other tools read what builder makes: `fixtures/every` pushed to a real
//! registry, copied out by `skopeo copy` into an OCI layout and unpacked
//! by `umoci unpack`, gives the same tree, file by file (paths, types,
//! modes, owners, symlink targets, contents), as builder's own
//! `--output type=local`. Needs root and Debian's docker-registry;
//! skipped otherwise.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::build::{Home, can_build};
use support::registry::Registry;

/// What is compared of one path.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    /// A file's bytes or a symlink's target.
    content: Vec<u8>,
}

/// Every path under `root` (relative), with its entry.
fn tree(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut entries = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for child in std::fs::read_dir(&dir).unwrap() {
            let path = child.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let kind = meta.file_type();
            let (kind, content) = if kind.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                ("symlink", target.into_os_string().into_encoded_bytes())
            } else if kind.is_dir() {
                pending.push(path.clone());
                ("dir", Vec::new())
            } else if kind.is_file() {
                ("file", std::fs::read(&path).unwrap())
            } else if kind.is_fifo() {
                ("fifo", Vec::new())
            } else {
                ("device", meta.rdev().to_le_bytes().to_vec())
            };
            let relative = path.strip_prefix(root).unwrap().to_path_buf();
            entries.insert(
                relative,
                Entry {
                    kind,
                    mode: meta.mode() & 0o7777,
                    uid: meta.uid(),
                    gid: meta.gid(),
                    content,
                },
            );
        }
    }
    entries
}

fn run(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn skopeo_and_umoci_unpack_the_pushed_image_as_builder_exports_it() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let home = Home::new();
    let context = home.every_context();
    let image = format!("{}/every:1", registry.host());
    let out = home.path("out");
    home.build(&[
        "-t",
        &image,
        "--push",
        "-o",
        &format!("type=local,dest={}", out.display()),
        context.to_str().unwrap(),
    ])
    .assert()
    .success();

    let layout = home.path("copied");
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{image}"),
        &format!("oci:{}:every", layout.display()),
    ]));
    let bundle = home.path("bundle");
    run(Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{}:every", layout.display()),
        bundle.to_str().unwrap(),
    ]));

    let ours = tree(&out);
    let theirs = tree(&bundle.join("rootfs"));
    assert!(ours.contains_key(Path::new("srv/payload/bin/run")));
    let only_ours: Vec<_> = ours.keys().filter(|p| !theirs.contains_key(*p)).collect();
    let only_theirs: Vec<_> = theirs.keys().filter(|p| !ours.contains_key(*p)).collect();
    assert!(
        only_ours.is_empty() && only_theirs.is_empty(),
        "only in builder's export: {only_ours:?}; only in umoci's: {only_theirs:?}"
    );
    for (path, entry) in &ours {
        assert_eq!(Some(entry), theirs.get(path), "{}", path.display());
    }
}
