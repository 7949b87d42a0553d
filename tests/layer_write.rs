//! Writing layers: the same tree gives the same bytes, metadata survives a
//! round trip, and compression reports the right digests in one pass.

mod layer_common;

use builder::digest::sha256;
use builder::layer::LayerError;
use builder::layer::compress::{Compression, decompress, write_compressed};
use builder::layer::diff::full_tree;
use builder::layer::extract::{ExtractOptions, Ownership, WhiteoutStyle, extract};
use builder::layer::tar::{WriteOptions, write_changes};
use layer_common::{get_xattr, listing, root_or_skip};
use rustix::fs::{Timespec, Timestamps};
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

fn set_mtime(path: &Path, secs: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn make_tree(root: &Path, mtime: i64) {
    fs::create_dir_all(root.join("a/b")).unwrap();
    fs::write(root.join("a.txt"), "dot").unwrap();
    fs::write(root.join("a/b/c"), "deep").unwrap();
    fs::write(root.join("z"), "last").unwrap();
    std::os::unix::fs::symlink("a/b/c", root.join("link")).unwrap();
    for p in ["a.txt", "a/b/c", "z", "link", "a/b", "a"] {
        set_mtime(&root.join(p), mtime);
    }
}

fn write(source: &Path, options: &WriteOptions) -> Vec<u8> {
    write_changes(source, full_tree(source).unwrap(), Vec::new(), options).unwrap()
}

fn headers(tar: &[u8]) -> Vec<(String, tar::Header)> {
    let mut archive = tar::Archive::new(tar);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                e.header().clone(),
            )
        })
        .collect()
}

fn apply() -> ExtractOptions {
    ExtractOptions {
        whiteouts: WhiteoutStyle::Apply,
        ownership: Ownership::Preserve,
    }
}

#[test]
fn entries_are_sorted_with_fixed_header_fields() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(tmp.path(), 1_700_000_000);
    let tar = write(tmp.path(), &WriteOptions::default());
    let entries = headers(&tar);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a/", "a/b/", "a/b/c", "a.txt", "link", "z"]);
    for (name, header) in &entries {
        let ustar = header
            .as_ustar()
            .unwrap_or_else(|| panic!("{name} is not USTAR"));
        assert!(ustar.uname.iter().all(|b| *b == 0), "{name} has a uname");
        assert!(ustar.gname.iter().all(|b| *b == 0), "{name} has a gname");
        assert_eq!(header.mtime().unwrap(), 1_700_000_000);
    }
}

#[test]
fn source_date_epoch_makes_trees_of_different_times_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    make_tree(&one, 1_700_000_000);
    make_tree(&two, 1_800_000_000);
    let epoch = WriteOptions {
        source_date_epoch: Some(1_000_000),
        ..WriteOptions::default()
    };
    assert_ne!(
        write(&one, &WriteOptions::default()),
        write(&two, &WriteOptions::default())
    );
    let tar = write(&one, &epoch);
    assert_eq!(tar, write(&two, &epoch));
    assert!(
        headers(&tar)
            .iter()
            .all(|(_, h)| h.mtime().unwrap() == 1_000_000)
    );
    // Older mtimes are kept as they are.
    let old = WriteOptions {
        source_date_epoch: Some(1_750_000_000),
        ..WriteOptions::default()
    };
    assert!(
        headers(&write(&one, &old))
            .iter()
            .all(|(_, h)| h.mtime().unwrap() == 1_700_000_000)
    );
}

#[test]
fn long_names_hardlinks_and_xattrs_round_trip_through_extract() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, dest) = (tmp.path().join("source"), tmp.path().join("dest"));
    let long_dir = "d".repeat(90);
    let long_name = format!("{long_dir}/{}", "f".repeat(60));
    fs::create_dir_all(source.join(&long_dir)).unwrap();
    fs::write(source.join(&long_name), "long").unwrap();
    fs::hard_link(source.join(&long_name), source.join("hard")).unwrap();
    std::os::unix::fs::symlink(&long_name, source.join("sym")).unwrap();
    rustix::fs::setxattr(
        source.join("hard"),
        "user.origin",
        b"test",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();

    let tar = write(&source, &WriteOptions::default());
    let entries = headers(&tar);
    let kind = |name: &str| {
        entries
            .iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1
            .entry_type()
    };
    assert_eq!(
        kind(&long_name),
        tar::EntryType::Regular,
        "the first path in order holds the content"
    );
    assert_eq!(
        kind("hard"),
        tar::EntryType::Link,
        "the later path becomes the link"
    );

    fs::create_dir(&dest).unwrap();
    extract(&tar[..], &dest, &apply()).unwrap();
    assert_eq!(listing(&dest), listing(&source));
    let (a, b) = (
        fs::metadata(dest.join("hard")).unwrap(),
        fs::metadata(dest.join(&long_name)).unwrap(),
    );
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
    assert_eq!(
        get_xattr(&dest.join("hard"), "user.origin").as_deref(),
        Some(&b"test"[..])
    );
}

#[test]
fn owners_and_setuid_modes_are_recorded() {
    if !root_or_skip("owners_and_setuid_modes_are_recorded") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("su");
    fs::write(&file, "x").unwrap();
    std::os::unix::fs::chown(&file, Some(1234), Some(5678)).unwrap();
    rustix::fs::chmod(&file, rustix::fs::Mode::from_raw_mode(0o4750)).unwrap();
    let tar = write(tmp.path(), &WriteOptions::default());
    let (_, header) = &headers(&tar)[0];
    assert_eq!(
        (
            header.uid().unwrap(),
            header.gid().unwrap(),
            header.mode().unwrap()
        ),
        (1234, 5678, 0o4750)
    );
}

#[test]
fn one_pass_gives_diff_id_digest_and_size_for_every_compression() {
    let tmp = tempfile::tempdir().unwrap();
    make_tree(tmp.path(), 1_700_000_000);
    fs::write(tmp.path().join("big"), b"layer bytes ".repeat(200_000)).unwrap();
    let plain = write(tmp.path(), &WriteOptions::default());
    for compression in [
        Compression::Gzip,
        Compression::Zstd,
        Compression::Uncompressed,
    ] {
        let produce = |w: &mut dyn std::io::Write| {
            write_changes(
                tmp.path(),
                full_tree(tmp.path())?,
                w,
                &WriteOptions::default(),
            )
            .map(|_| ())
        };
        let (blob, digests) = write_compressed(Vec::new(), compression, produce).unwrap();
        assert_eq!(digests.diff_id, sha256(&plain), "{compression:?}");
        assert_eq!(digests.digest, sha256(&blob), "{compression:?}");
        assert_eq!(digests.size, blob.len() as u64, "{compression:?}");
        let (again, _) = write_compressed(Vec::new(), compression, produce).unwrap();
        assert_eq!(again, blob, "{compression:?} output is not deterministic");

        for media_type in [compression.media_type(), "application/octet-stream"] {
            let mut tar = Vec::new();
            decompress(&blob[..], media_type)
                .unwrap()
                .read_to_end(&mut tar)
                .unwrap();
            assert_eq!(tar, plain, "{compression:?} read back as {media_type}");
        }
    }
}

#[test]
fn producer_errors_surface_and_non_layer_media_types_are_refused() {
    let missing = Path::new("/nonexistent/tree");
    let err = write_compressed(Vec::new(), Compression::Gzip, |w| {
        write_changes(missing, full_tree(missing)?, w, &WriteOptions::default()).map(|_| ())
    })
    .unwrap_err();
    assert!(
        matches!(err, LayerError::Fs { ref path, .. } if path == missing),
        "{err:?}"
    );

    let err = decompress(&b""[..], "application/vnd.oci.image.config.v1+json")
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "unsupported layer media type `application/vnd.oci.image.config.v1+json`"
    );
    assert_eq!(
        Compression::from_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip").unwrap(),
        Some(Compression::Gzip)
    );
}
