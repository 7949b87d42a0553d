//! Turning a step's change into a layer: from a real overlay upperdir, and
//! from a copy-up snapshot compared with its parent; both give the same
//! entries, and applying the layer onto the parent reproduces the result.

mod layer_common;

use builder::layer::copy::copy_tree;
use builder::layer::diff::{full_tree, overlay_changes, tree_changes};
use builder::layer::extract::{ExtractOptions, Ownership, WhiteoutStyle, extract};
use builder::layer::tar::{WriteOptions, write_changes};
use layer_common::{OverlayMount, listing, root_or_skip};
use std::fs;
use std::path::Path;

/// The parent tree every test starts from.
fn make_lower(root: &Path) {
    for dir in ["keep", "mod", "dir", "rmdir/sub", "replace"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    for (file, content) in [
        ("keep/file", "same"),
        ("mod/file", "old"),
        ("gone.txt", "bye"),
        ("dir/a", "a"),
        ("dir/b", "b"),
        ("rmdir/x", "x"),
        ("rmdir/sub/y", "y"),
        ("replace/old1", "1"),
        ("replace/old2", "2"),
    ] {
        fs::write(root.join(file), content).unwrap();
    }
}

/// The step: create, modify, delete a file, delete a dir, replace a dir.
fn make_change(root: &Path) {
    fs::write(root.join("new.txt"), "new").unwrap();
    fs::write(root.join("mod/file"), "changed").unwrap();
    fs::remove_file(root.join("gone.txt")).unwrap();
    fs::remove_file(root.join("dir/a")).unwrap();
    fs::remove_dir_all(root.join("rmdir")).unwrap();
    fs::remove_dir_all(root.join("replace")).unwrap();
    fs::create_dir(root.join("replace")).unwrap();
    fs::write(root.join("replace/fresh"), "fresh").unwrap();
}

const EXPECTED: [&str; 10] = [
    ".wh.gone.txt 0 0",
    ".wh.rmdir 0 0",
    "dir/ 5 755",
    "dir/.wh.a 0 0",
    "mod/ 5 755",
    "mod/file 0 644 changed",
    "new.txt 0 644 new",
    "replace/ 5 755",
    "replace/.wh..wh..opq 0 0",
    "replace/fresh 0 644 fresh",
];

/// Each entry as `name type mode [content]`, plus every PAX key seen.
fn entries(tar: &[u8]) -> (Vec<String>, Vec<String>) {
    let mut archive = tar::Archive::new(tar);
    let mut out = Vec::new();
    let mut pax_keys = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if let Some(pax) = entry.pax_extensions().unwrap() {
            for record in pax {
                pax_keys.push(record.unwrap().key().unwrap().to_owned());
            }
        }
        let header = entry.header().clone();
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mut content = String::new();
        std::io::Read::read_to_string(&mut entry, &mut content).unwrap();
        let line = format!(
            "{name} {} {:o} {content}",
            header.entry_type().as_byte() - b'0',
            header.mode().unwrap()
        );
        out.push(line.trim_end().to_owned());
    }
    (out, pax_keys)
}

fn layer(source: &Path, changes: Vec<builder::layer::tar::Change>) -> Vec<u8> {
    write_changes(source, changes, Vec::new(), &WriteOptions::default()).unwrap()
}

fn apply_onto(lower: &Path, tar: &[u8], dest: &Path) {
    fs::create_dir_all(dest).unwrap();
    copy_tree(lower, dest).unwrap();
    let options = ExtractOptions {
        whiteouts: WhiteoutStyle::Apply,
        ownership: Ownership::Preserve,
    };
    extract(tar, dest, &options).unwrap();
}

#[test]
fn tree_diff_of_a_copy_up_snapshot_gives_the_change_as_whiteouts_and_opaque_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let (lower, snapshot) = (tmp.path().join("lower"), tmp.path().join("snapshot"));
    fs::create_dir(&lower).unwrap();
    fs::create_dir(&snapshot).unwrap();
    make_lower(&lower);
    copy_tree(&lower, &snapshot).unwrap();
    assert_eq!(listing(&snapshot), listing(&lower));
    assert!(tree_changes(&lower, &snapshot).unwrap().is_empty());

    make_change(&snapshot);
    let tar = layer(&snapshot, tree_changes(&lower, &snapshot).unwrap());
    assert_eq!(entries(&tar).0, EXPECTED);

    let applied = tmp.path().join("applied");
    apply_onto(&lower, &tar, &applied);
    assert_eq!(listing(&applied), listing(&snapshot));
}

#[test]
fn overlay_upperdir_diff_matches_the_tree_diff_and_drops_overlay_xattrs() {
    if !root_or_skip("overlay_upperdir_diff_matches_the_tree_diff_and_drops_overlay_xattrs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map(|n| {
        let p = tmp.path().join(n);
        fs::create_dir(&p).unwrap();
        p
    });
    make_lower(&lower);
    let Some(mount) = OverlayMount::mount(&[&lower], Some((&upper, &work)), &merged) else {
        return;
    };
    make_change(&mount.merged);
    let after = listing(&mount.merged);
    drop(mount);

    let tar = layer(&upper, overlay_changes(&upper).unwrap());
    let (names, pax_keys) = entries(&tar);
    assert_eq!(names, EXPECTED);
    assert!(
        pax_keys.iter().all(|k| !k.contains("overlay")),
        "overlay bookkeeping leaked into the layer: {pax_keys:?}"
    );

    let applied = tmp.path().join("applied");
    apply_onto(&lower, &tar, &applied);
    assert_eq!(listing(&applied), after);
}

#[test]
fn full_tree_layer_recreates_the_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, dest) = (tmp.path().join("source"), tmp.path().join("dest"));
    fs::create_dir(&source).unwrap();
    make_lower(&source);
    let tar = layer(&source, full_tree(&source).unwrap());
    fs::create_dir(&dest).unwrap();
    let options = ExtractOptions {
        whiteouts: WhiteoutStyle::Apply,
        ownership: Ownership::Preserve,
    };
    extract(&tar[..], &dest, &options).unwrap();
    assert_eq!(listing(&dest), listing(&source));
}
