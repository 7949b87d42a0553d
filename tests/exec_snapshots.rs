//! Snapshots: a two-layer image with whiteouts unpacked into the store by
//! chain ID, read back as overlay lower directories, both through the
//! rootfs view and through a real overlay in a RUN step. Needs root (the
//! whiteouts are character devices and trusted xattrs); skipped otherwise.

mod support;

use builder::exec::LayerRef;
use builder::exec::rootfs::RootfsView;
use builder::store::{StoreError, chain_ids};
use flate2::Compression as Level;
use flate2::write::GzEncoder;
use oci_spec::image::{Descriptor, MediaType};
use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use support::exec::{Fixture, Output, block_on, is_root};

/// A tar of `(path, Some(content))` files and `(path/, None)` directories.
fn tar_of(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        match content {
            Some(text) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(text.len() as u64);
                builder
                    .append_data(&mut header, path, text.as_bytes())
                    .unwrap();
            }
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder
                    .append_data(&mut header, path, std::io::empty())
                    .unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

fn store_layer(fixture: &Fixture, tar: &[u8]) -> LayerRef {
    let mut gz = GzEncoder::new(Vec::new(), Level::default());
    gz.write_all(tar).unwrap();
    let blob = gz.finish().unwrap();
    let digest = fixture.store.blobs().put(&blob).unwrap();
    LayerRef {
        blob: Descriptor::new(MediaType::ImageLayerGzip, blob.len() as u64, digest),
        diff_id: builder::digest::sha256(tar),
    }
}

fn two_layers(fixture: &Fixture) -> [LayerRef; 2] {
    let first = tar_of(&[
        ("etc/", None),
        ("etc/a", Some("a")),
        ("etc/b", Some("b")),
        ("d/", None),
        ("d/x", Some("x")),
    ]);
    let second = tar_of(&[
        ("c", Some("c")),
        ("d/", None),
        ("d/.wh..wh..opq", Some("")),
        ("d/y", Some("y")),
        ("etc/", None),
        ("etc/.wh.a", Some("")),
    ]);
    [store_layer(fixture, &first), store_layer(fixture, &second)]
}

fn names(view: &RootfsView, dir: &str) -> Vec<String> {
    let node = view.lookup(Path::new(dir), true).unwrap().unwrap();
    view.names(&node).unwrap()
}

#[test]
fn a_two_layer_image_unpacks_into_overlay_lower_dirs() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let layers = two_layers(&fixture);
    let snapshots = fixture.store.snapshots();
    let descriptors: Vec<_> = layers.iter().map(|l| l.blob.clone()).collect();
    let diff_ids: Vec<_> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let chains = snapshots
        .unpack_all(&fixture.store.blobs(), &descriptors, &diff_ids)
        .unwrap();
    assert_eq!(chains, chain_ids(&diff_ids));
    let top = snapshots.path(&chains[1]).unwrap();
    let bottom = snapshots.path(&chains[0]).unwrap();
    // The top snapshot keeps the whiteouts in overlay form.
    assert!(
        std::fs::symlink_metadata(top.join("etc/a"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
    let mut opaque = [0u8; 1];
    rustix::fs::getxattr(top.join("d"), "trusted.overlay.opaque", &mut opaque).unwrap();
    assert_eq!(&opaque, b"y");
    // Merged, they show what the image holds.
    let view = RootfsView::layers(&[top, bottom]).unwrap();
    assert_eq!(names(&view, "/"), ["c", "d", "etc"]);
    assert_eq!(names(&view, "/etc"), ["b"]);
    assert_eq!(names(&view, "/d"), ["y"]);
    // Unpacking again finds the snapshots and changes nothing.
    assert_eq!(
        snapshots
            .unpack_all(&fixture.store.blobs(), &descriptors, &diff_ids)
            .unwrap(),
        chains
    );
}

#[test]
fn a_run_step_sees_the_merged_image_through_a_real_overlay() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let [first, second] = two_layers(&fixture);
    let chain = vec![fixture.base.clone(), first, second];
    let mut output = Output::default();
    let step = fixture.step(
        &chain,
        "ls /d; cat /c; test -e /etc/a || echo no-a; cat /etc/b",
    );
    let layer = block_on(fixture.executor.run(&step, &mut output.sink())).unwrap();
    assert_eq!(layer, None);
    assert_eq!(output.text, "y\ncno-a\nb");
}

#[test]
fn a_layer_whose_content_differs_from_the_config_is_refused() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let [first, second] = two_layers(&fixture);
    let snapshots = fixture.store.snapshots();
    let err = snapshots
        .unpack(&fixture.store.blobs(), &[], &first.blob, &second.diff_id)
        .unwrap_err();
    assert!(matches!(err, StoreError::DiffIdMismatch { .. }), "{err}");
    assert!(!snapshots.contains(&second.diff_id));
    assert_eq!(
        std::fs::read_dir(fixture.store.root().join("tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn concurrent_unpacks_of_one_layer_agree() {
    if !is_root() {
        return;
    }
    let fixture = Fixture::new();
    let [first, _] = two_layers(&fixture);
    let chains: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (snapshots, blobs, first) = (
                    fixture.store.snapshots(),
                    fixture.store.blobs(),
                    first.clone(),
                );
                scope.spawn(move || {
                    snapshots
                        .unpack(&blobs, &[], &first.blob, &first.diff_id)
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(chains.iter().all(|c| *c == first.diff_id));
    let path = fixture.store.snapshots().path(&first.diff_id).unwrap();
    assert_eq!(std::fs::read(path.join("etc/a")).unwrap(), b"a");
    assert_eq!(
        std::fs::read_dir(fixture.store.root().join("tmp"))
            .unwrap()
            .count(),
        0
    );
}
