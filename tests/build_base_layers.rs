//! Base-image layers as other tools write them, and ADD archives likewise:
//! a layer that leaves out the parent directories of its entries (the OCI
//! spec allows it) keeps the lower layers' directories as they are (`/tmp`
//! stays 1777, as containerd unpacks it), and numeric header fields left
//! empty read as 0, as Go's `archive/tar` (BuildKit, containerd) reads
//! them. Needs root (and Debian's docker-registry for the base images);
//! skipped otherwise.

mod support;

use support::build::{Home, can_build, stderr_of};
use support::built::{BUSYBOX, Node, read_layout};
use support::image::BaseImage;
use support::registry::Registry;

/// A tar entry for a regular file, written as is (`builder.append` does not
/// touch the header): `blank` leaves uid, gid and mtime all that byte.
fn file_entry(tar: &mut tar::Builder<Vec<u8>>, name: &str, content: &[u8], blank: Option<u8>) {
    let mut header = tar::Header::new_ustar();
    header.set_path(name).unwrap();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(content.len() as u64);
    if let Some(byte) = blank {
        let fields = header.as_old_mut();
        fields.uid.fill(byte);
        fields.gid.fill(byte);
        fields.mtime.fill(byte);
    }
    header.set_cksum();
    tar.append(&header, content).unwrap();
}

/// A layer with `tmp/x` and `srv/blank` (empty numeric fields), and no
/// `tmp/` or `srv/` entries.
fn parentless_layer() -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    file_entry(&mut tar, "tmp/x", b"x", None);
    file_entry(&mut tar, "srv/blank", b"b", Some(0));
    tar.into_inner().unwrap()
}

fn node<'a>(files: &'a std::collections::BTreeMap<String, Node>, path: &str) -> &'a Node {
    files
        .get(path)
        .unwrap_or_else(|| panic!("{path} is not in the image"))
}

#[test]
fn a_base_layer_without_its_parent_directories_keeps_the_lower_tmp() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let base = BaseImage::busybox_with_layer(&registry, "parentless", parentless_layer());
    for snapshotter in ["overlay", "copy"] {
        let home = Home::new();
        let context = home.context(
            "parentless",
            &format!(
                "FROM {}\nUSER 1000\nRUN touch /tmp/y && cat /srv/blank /tmp/x > /tmp/z\n",
                base.reference
            ),
        );
        let layout = home.path("layout");
        let dest = format!("type=oci,dest={},tar=false", layout.display());
        let output = home
            .build(&["-o", &dest, context.to_str().unwrap()])
            .env("BUILDER_SNAPSHOTTER", snapshotter)
            .output()
            .unwrap();
        let stderr = stderr_of(&output);
        assert!(output.status.success(), "{snapshotter}: {stderr}");
        let built = read_layout(&layout, stderr);
        let tmp = node(&built.files, "tmp");
        assert_eq!(
            (tmp.mode, tmp.uid, tmp.gid),
            (0o1777, 0, 0),
            "{snapshotter}"
        );
        let y = node(&built.files, "tmp/y");
        assert_eq!((y.uid, y.gid), (1000, 0), "{snapshotter}");
        let blank = node(&built.files, "srv/blank");
        assert_eq!((blank.uid, blank.gid), (0, 0), "{snapshotter}");
    }
}

#[test]
fn add_of_an_archive_with_empty_numeric_fields_reads_them_as_zero() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("blank", &format!("{BUSYBOX}ADD blank.tar /in/\n"));
    let mut tar = tar::Builder::new(Vec::new());
    file_entry(&mut tar, "nuls", b"n", Some(0));
    file_entry(&mut tar, "spaces", b"s", Some(b' '));
    std::fs::write(context.join("blank.tar"), tar.into_inner().unwrap()).unwrap();
    let built = home.built(&context, &[]);
    for name in ["in/nuls", "in/spaces"] {
        let file = node(&built.files, name);
        assert_eq!((file.uid, file.gid, file.mode), (0, 0, 0o644), "{name}");
    }
}
