//! Applying layer tars: hostile paths stay inside the root, and whiteouts,
//! links, modes, owners, mtimes and xattrs come out as the tar says.

mod layer_common;

use builder::digest::sha256;
use builder::layer::extract::{
    ExtractOptions, ExtractWarning, Ownership, WhiteoutStyle, extract, extract_above,
};
use builder::layer::{LayerError, OverlayXattrs, Refusal};
use layer_common::{OverlayMount, Sandbox, TarBuf, get_xattr, listing, root_or_skip};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn apply() -> ExtractOptions {
    ExtractOptions {
        whiteouts: WhiteoutStyle::Apply,
        ownership: Ownership::Preserve,
    }
}

fn refusal(
    result: Result<builder::layer::extract::ExtractReport, LayerError>,
) -> (String, Refusal) {
    match result {
        Err(LayerError::Refused { entry, reason }) => (entry, reason),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn dotdot_escape_is_refused_naming_the_entry() {
    let sandbox = Sandbox::new();
    let tar = TarBuf::new().file("../escape", b"x").finish();
    let (entry, reason) = refusal(extract(&tar[..], &sandbox.root(), &apply()));
    assert_eq!(entry, "../escape");
    assert_eq!(reason, Refusal::PathEscapes);
    assert!(sandbox.outside().is_empty());
    let err = extract(&tar[..], &sandbox.root(), &apply()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "refused tar entry `../escape`: its path climbs out of the root"
    );
}

#[test]
fn dotdot_that_stays_inside_is_cleaned() {
    let sandbox = Sandbox::new();
    let tar = TarBuf::new().file("a/../b", b"in").finish();
    extract(&tar[..], &sandbox.root(), &apply()).unwrap();
    assert_eq!(listing(&sandbox.root()), ["b file:in"]);
}

#[test]
fn absolute_path_lands_inside_the_root() {
    let sandbox = Sandbox::new();
    let tar = TarBuf::new().file("/abs", b"inside").finish();
    extract(&tar[..], &sandbox.root(), &apply()).unwrap();
    assert_eq!(listing(&sandbox.root()), ["abs file:inside"]);
    assert!(sandbox.outside().is_empty());
}

#[test]
fn symlink_to_slash_then_a_path_through_it_resolves_in_the_root() {
    let sandbox = Sandbox::new();
    let host_passwd = fs::read("/etc/passwd").unwrap();
    let tar = TarBuf::new()
        .symlink("evil", "/")
        .file("evil/etc/passwd", b"root::0:0::/:/bin/sh\n")
        .finish();
    extract(&tar[..], &sandbox.root(), &apply()).unwrap();
    assert_eq!(
        listing(&sandbox.root()),
        [
            "etc dir",
            "etc/passwd file:root::0:0::/:/bin/sh\n",
            "evil link->/"
        ]
    );
    assert_eq!(fs::read("/etc/passwd").unwrap(), host_passwd);
    assert!(sandbox.outside().is_empty());
}

#[test]
fn symlink_climbing_up_then_a_path_through_it_resolves_in_the_root() {
    let sandbox = Sandbox::new();
    let tar = TarBuf::new()
        .symlink("up", "../../..")
        .file("up/x", b"x")
        .finish();
    extract(&tar[..], &sandbox.root(), &apply()).unwrap();
    assert_eq!(listing(&sandbox.root()), ["up link->../../..", "x file:x"]);
    assert!(sandbox.outside().is_empty());
}

#[test]
fn symlinked_parent_directory_pointing_out_is_contained() {
    let sandbox = Sandbox::new();
    let tar = TarBuf::new()
        .symlink("a", "../../")
        .file("a/b", b"b")
        .dir("etc")
        .symlink("c", "/etc")
        .file("c/evil.conf", b"c")
        .finish();
    extract(&tar[..], &sandbox.root(), &apply()).unwrap();
    assert_eq!(
        listing(&sandbox.root()),
        [
            "a link->../../",
            "b file:b",
            "c link->/etc",
            "etc dir",
            "etc/evil.conf file:c"
        ]
    );
    assert!(!Path::new("/etc/evil.conf").exists());
    assert!(sandbox.outside().is_empty());
}

#[test]
fn path_through_a_dangling_symlink_is_an_error_naming_the_entry() {
    let sandbox = Sandbox::new();
    let tar = TarBuf::new()
        .symlink("c", "/nonexistent-dir")
        .file("c/evil.conf", b"c")
        .finish();
    match extract(&tar[..], &sandbox.root(), &apply()) {
        Err(LayerError::Apply { entry, .. }) => assert_eq!(entry, "c/evil.conf"),
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(!Path::new("/nonexistent-dir").exists());
    assert!(sandbox.outside().is_empty());
}

#[test]
fn file_replacing_a_symlink_does_not_write_through_it() {
    let sandbox = Sandbox::new();
    fs::write(sandbox.dir.path().join("victim"), b"untouched").unwrap();
    let layer1 = TarBuf::new().symlink("f", "../victim").finish();
    let layer2 = TarBuf::new().file("f", b"new").finish();
    extract(&layer1[..], &sandbox.root(), &apply()).unwrap();
    extract(&layer2[..], &sandbox.root(), &apply()).unwrap();
    assert_eq!(listing(&sandbox.root()), ["f file:new"]);
    assert_eq!(
        fs::read(sandbox.dir.path().join("victim")).unwrap(),
        b"untouched"
    );
}

#[test]
fn hardlink_to_a_host_path_is_refused_as_missing_in_the_root() {
    let sandbox = Sandbox::new();
    let tar = TarBuf::new().hardlink("pw", "/etc/passwd").finish();
    let (entry, reason) = refusal(extract(&tar[..], &sandbox.root(), &apply()));
    assert_eq!(entry, "pw");
    assert_eq!(reason, Refusal::LinkTargetMissing("/etc/passwd".into()));
    assert_eq!(listing(&sandbox.root()), Vec::<String>::new());
}

#[test]
fn hardlink_climbing_out_is_refused() {
    let sandbox = Sandbox::new();
    fs::write(sandbox.dir.path().join("outside"), b"secret").unwrap();
    let tar = TarBuf::new().hardlink("h", "../outside").finish();
    let (entry, reason) = refusal(extract(&tar[..], &sandbox.root(), &apply()));
    assert_eq!(entry, "h");
    assert_eq!(reason, Refusal::LinkTargetEscapes("../outside".into()));
    assert_eq!(
        fs::metadata(sandbox.dir.path().join("outside"))
            .unwrap()
            .nlink(),
        1
    );
}

#[test]
fn hardlink_through_a_symlinked_dir_is_resolved_in_the_root() {
    let sandbox = Sandbox::new();
    let tar = TarBuf::new()
        .symlink("etc", "/")
        .hardlink("pw", "etc/etc/passwd")
        .finish();
    let (_, reason) = refusal(extract(&tar[..], &sandbox.root(), &apply()));
    assert_eq!(reason, Refusal::LinkTargetMissing("etc/etc/passwd".into()));
}

#[test]
fn whiteout_of_a_parent_name_is_refused() {
    let sandbox = Sandbox::new();
    let tar = TarBuf::new().file("d/.wh...", b"").finish();
    let (entry, reason) = refusal(extract(&tar[..], &sandbox.root(), &apply()));
    assert_eq!(entry, "d/.wh...");
    assert_eq!(reason, Refusal::InvalidWhiteout);
}

fn lower_layer() -> Vec<u8> {
    TarBuf::new()
        .dir("a")
        .file("a/1", b"1")
        .file("a/2", b"2")
        .dir("b")
        .file("b/x", b"x")
        .dir("b/sub")
        .file("b/sub/deep", b"d")
        .file("c", b"c")
        .finish()
}

fn upper_layer() -> Vec<u8> {
    TarBuf::new()
        .file("a/.wh.1", b"")
        .dir("b")
        // `-` sorts before `.`: this layer's own child precedes the marker.
        .file("b/-mine", b"m")
        .file("b/.wh..wh..opq", b"")
        .file("b/y", b"y")
        .file(".wh.c", b"")
        .file(".wh.never-existed", b"")
        .finish()
}

#[test]
fn whiteouts_and_opaque_dirs_apply_across_two_layers() {
    let sandbox = Sandbox::new();
    extract(&lower_layer()[..], &sandbox.root(), &apply()).unwrap();
    extract(&upper_layer()[..], &sandbox.root(), &apply()).unwrap();
    assert_eq!(
        listing(&sandbox.root()),
        [
            "a dir",
            "a/2 file:2",
            "b dir",
            "b/-mine file:m",
            "b/y file:y"
        ]
    );
}

#[test]
fn overlay_style_snapshots_stack_as_overlay_lowerdirs() {
    if !root_or_skip("overlay_style_snapshots_stack_as_overlay_lowerdirs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let [lower, upper, merged] = ["lower", "upper", "merged"].map(|n| {
        let p = tmp.path().join(n);
        fs::create_dir(&p).unwrap();
        p
    });
    let overlay = ExtractOptions {
        whiteouts: WhiteoutStyle::Overlay(OverlayXattrs::Trusted),
        ownership: Ownership::Preserve,
    };
    extract(&lower_layer()[..], &lower, &overlay).unwrap();
    extract(&upper_layer()[..], &upper, &overlay).unwrap();
    assert_eq!(
        listing(&upper),
        [
            "a dir",
            "a/1 chr:0:0",
            "b dir",
            "b/-mine file:m",
            "b/y file:y",
            "c chr:0:0",
            "never-existed chr:0:0"
        ]
    );
    assert_eq!(
        get_xattr(&upper.join("b"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    let Some(mount) = OverlayMount::mount(&[&upper, &lower], None, &merged) else {
        return;
    };
    assert_eq!(
        listing(&mount.merged),
        [
            "a dir",
            "a/2 file:2",
            "b dir",
            "b/-mine file:m",
            "b/y file:y"
        ]
    );
}

#[test]
fn hardlinks_symlinks_and_special_files_are_recreated() {
    if !root_or_skip("hardlinks_symlinks_and_special_files_are_recreated") {
        return;
    }
    let sandbox = Sandbox::new();
    let tar = TarBuf::new()
        .file("bin/tool", b"elf")
        .hardlink("bin/alias", "bin/tool")
        .symlink("bin/sh", "/bin/tool")
        .char_device("dev/null", 1, 3)
        .fifo("run/pipe")
        .finish();
    let report = extract(&tar[..], &sandbox.root(), &apply()).unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let root = sandbox.root();
    assert_eq!(
        listing(&root),
        [
            "bin dir",
            "bin/alias file:elf",
            "bin/sh link->/bin/tool",
            "bin/tool file:elf",
            "dev dir",
            "dev/null chr:1:3",
            "run dir",
            "run/pipe fifo"
        ]
    );
    let tool = fs::metadata(root.join("bin/tool")).unwrap();
    let alias = fs::metadata(root.join("bin/alias")).unwrap();
    assert_eq!((tool.ino(), tool.nlink()), (alias.ino(), 2));
}

#[test]
fn owners_modes_setuid_mtimes_and_xattrs_are_applied() {
    if !root_or_skip("owners_modes_setuid_mtimes_and_xattrs_are_applied") {
        return;
    }
    let sandbox = Sandbox::new();
    let tar = TarBuf::new()
        .dir_with("opt", 0o750, 1_000_000)
        .file_with("opt/su", b"s", 0o4755, 1000, 1001, 2_000_000)
        .file_with("opt/ro", b"r", 0o400, 0, 0, 3_000_000)
        .file_with_xattrs(
            "opt/tagged",
            b"t",
            &[
                ("user.kind", b"layer"),
                ("trusted.note", b"\x00\x01"),
                ("security.capability", NET_RAW),
            ],
        )
        .finish();
    let report = extract(&tar[..], &sandbox.root(), &apply()).unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let root = sandbox.root();
    let su = fs::metadata(root.join("opt/su")).unwrap();
    assert_eq!(
        (su.uid(), su.gid(), su.mode() & 0o7777),
        (1000, 1001, 0o4755)
    );
    assert_eq!(su.mtime(), 2_000_000);
    let ro = fs::metadata(root.join("opt/ro")).unwrap();
    assert_eq!(ro.permissions().mode() & 0o7777, 0o400);
    let opt = fs::metadata(root.join("opt")).unwrap();
    assert_eq!((opt.mode() & 0o7777, opt.mtime()), (0o750, 1_000_000));
    assert_eq!(
        get_xattr(&root.join("opt/tagged"), "user.kind").as_deref(),
        Some(&b"layer"[..])
    );
    // Kernel state is not image content; file capabilities are.
    assert_eq!(get_xattr(&root.join("opt/tagged"), "trusted.note"), None);
    assert_eq!(
        get_xattr(&root.join("opt/tagged"), "security.capability").as_deref(),
        Some(NET_RAW)
    );
}

/// `security.capability` granting `cap_net_raw` (effective, permitted):
/// VFS_CAP_REVISION_2 with the effective flag, then permitted and
/// inheritable words.
const NET_RAW: &[u8] = &[
    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// A base layer with `etc/passwd`, and a crafted one above it whose `etc`
/// claims overlayfs' opaque marker (hiding the lower `etc`) and whose
/// `etc/hosts` claims a redirect and metacopy to the lower `etc/passwd`.
fn crafted_layers() -> (Vec<u8>, Vec<u8>) {
    let lower = TarBuf::new()
        .dir("etc")
        .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")
        .finish();
    let crafted = TarBuf::new()
        .dir_with_xattrs(
            "etc",
            &[
                ("trusted.overlay.opaque", b"y"),
                ("user.overlay.opaque", b"y"),
                ("user.kind", b"kept"),
            ],
        )
        .file_with_xattrs(
            "etc/hosts",
            b"",
            &[
                ("trusted.overlay.redirect", b"/etc/passwd"),
                ("trusted.overlay.metacopy", b""),
                ("security.selinux", b"system_u:object_r:etc_t:s0"),
                ("security.capability", NET_RAW),
            ],
        )
        .finish();
    (lower, crafted)
}

#[test]
fn a_crafted_layers_overlay_and_kernel_xattrs_reach_no_snapshot_or_export() {
    if !root_or_skip("a_crafted_layers_overlay_and_kernel_xattrs_reach_no_snapshot_or_export") {
        return;
    }
    let (lower_tar, crafted_tar) = crafted_layers();
    // As a snapshot: an overlay lowerdir above the base's.
    let tmp = tempfile::tempdir().unwrap();
    let [lower, upper, merged] = ["lower", "upper", "merged"].map(|n| {
        let p = tmp.path().join(n);
        fs::create_dir(&p).unwrap();
        p
    });
    let overlay = ExtractOptions {
        whiteouts: WhiteoutStyle::Overlay(OverlayXattrs::Trusted),
        ownership: Ownership::Preserve,
    };
    extract(&lower_tar[..], &lower, &overlay).unwrap();
    extract(&crafted_tar[..], &upper, &overlay).unwrap();
    // As an export: both applied to one directory.
    let export = Sandbox::new();
    extract(&lower_tar[..], &export.root(), &apply()).unwrap();
    extract(&crafted_tar[..], &export.root(), &apply()).unwrap();
    for root in [&upper, &export.root()] {
        for (path, name) in [
            ("etc", "trusted.overlay.opaque"),
            ("etc", "user.overlay.opaque"),
            ("etc/hosts", "trusted.overlay.redirect"),
            ("etc/hosts", "trusted.overlay.metacopy"),
            ("etc/hosts", "security.selinux"),
        ] {
            assert_eq!(
                get_xattr(&root.join(path), name),
                None,
                "{name} on {}",
                root.join(path).display()
            );
        }
        assert_eq!(
            get_xattr(&root.join("etc"), "user.kind").as_deref(),
            Some(&b"kept"[..])
        );
        assert_eq!(
            get_xattr(&root.join("etc/hosts"), "security.capability").as_deref(),
            Some(NET_RAW)
        );
    }
    assert_eq!(
        listing(&export.root()),
        [
            "etc dir",
            "etc/hosts file:",
            "etc/passwd file:root:x:0:0::/root:/bin/sh\n"
        ]
    );
    // The overlay shows both layers' `etc`, and `hosts` as the layer has it.
    let Some(mount) = OverlayMount::mount(&[&upper, &lower], None, &merged) else {
        return;
    };
    assert_eq!(listing(&mount.merged), listing(&export.root()));
}

#[test]
fn owners_outside_the_mapped_range_are_reported() {
    let sandbox = Sandbox::new();
    let me = u64::from(rustix::process::geteuid().as_raw());
    let tar = TarBuf::new()
        .file_with("mine", b"m", 0o644, me, me, 0)
        .file_with("theirs", b"t", 0o644, 70_000, 70_000, 0)
        .finish();
    let options = ExtractOptions {
        whiteouts: WhiteoutStyle::Apply,
        ownership: Ownership::Within {
            uids: me..me + 1,
            gids: me..me + 1,
        },
    };
    let report = extract(&tar[..], &sandbox.root(), &options).unwrap();
    assert_eq!(
        report.warnings,
        [ExtractWarning::OwnerNotSet {
            entry: "theirs".into(),
            uid: 70_000,
            gid: 70_000
        }]
    );
    assert_eq!(
        fs::metadata(sandbox.root().join("theirs")).unwrap().uid() as u64,
        me
    );
}

#[test]
fn report_carries_the_diff_id_of_the_whole_stream() {
    let sandbox = Sandbox::new();
    let tar = lower_layer();
    let report = extract(&tar[..], &sandbox.root(), &apply()).unwrap();
    assert_eq!(report.diff_id, sha256(&tar));
    assert_eq!(report.entries, 8);
}

#[test]
fn truncated_stream_is_an_error_not_a_panic() {
    let sandbox = Sandbox::new();
    let tar = lower_layer();
    let err = extract(&tar[..700], &sandbox.root(), &apply()).unwrap_err();
    assert!(
        matches!(err, LayerError::ReadTar { .. } | LayerError::Apply { .. }),
        "{err:?}"
    );
}

#[test]
fn empty_numeric_header_fields_read_as_zero_as_go_reads_them() {
    if !root_or_skip("empty_numeric_header_fields_read_as_zero_as_go_reads_them") {
        return;
    }
    let sandbox = Sandbox::new();
    let tar = TarBuf::new()
        .file_with_blank_numbers("nuls", b"n", 0)
        .file_with_blank_numbers("spaces", b"s", b' ')
        .finish();
    let report = extract(&tar[..], &sandbox.root(), &apply()).unwrap();
    assert_eq!(report.entries, 2);
    for name in ["nuls", "spaces"] {
        let meta = fs::metadata(sandbox.root().join(name)).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mtime(), meta.mode() & 0o7777),
            (0, 0, 0, 0o644),
            "{name}"
        );
    }
}

/// Makes the directory `path` with this mode, owner and mtime.
fn lower_dir(path: &Path, mode: u32, owner: (u32, u32), mtime: i64) {
    fs::create_dir_all(path).unwrap();
    std::os::unix::fs::chown(path, Some(owner.0), Some(owner.1)).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    let time = rustix::fs::Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    let times = rustix::fs::Timestamps {
        last_access: time,
        last_modification: time,
    };
    rustix::fs::utimensat(rustix::fs::CWD, path, &times, rustix::fs::AtFlags::empty()).unwrap();
}

#[test]
fn parents_a_layer_leaves_out_take_their_metadata_from_the_lower_snapshots() {
    if !root_or_skip("parents_a_layer_leaves_out_take_their_metadata_from_the_lower_snapshots") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let [bottom, top, upper] = ["bottom", "top", "upper"].map(|n| {
        let p = tmp.path().join(n);
        fs::create_dir(&p).unwrap();
        p
    });
    // bottom: tmp 1777, srv 0750 5:6 with an xattr, gone/, hid/den/
    lower_dir(&bottom.join("tmp"), 0o1777, (0, 0), 1_000);
    lower_dir(&bottom.join("srv"), 0o750, (5, 6), 2_000);
    rustix::fs::setxattr(
        bottom.join("srv"),
        "user.note",
        b"kept",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    lower_dir(&bottom.join("gone"), 0o700, (7, 7), 3_000);
    lower_dir(&bottom.join("hid/den"), 0o700, (8, 8), 4_000);
    // top: srv again (topmost wins), a whiteout of gone, hid opaque
    lower_dir(&top.join("srv"), 0o751, (9, 9), 5_000);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        top.join("gone"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    lower_dir(&top.join("hid"), 0o711, (0, 0), 6_000);
    rustix::fs::setxattr(
        top.join("hid"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    lower_dir(&bottom.join("deep/er"), 0o705, (3, 3), 7_000);
    let tar = TarBuf::new()
        .file("tmp/x", b"x")
        .file("srv/app/f", b"f")
        .file("gone/f", b"f")
        .file("hid/den/f", b"f")
        .file("new/f", b"f")
        .file("deep/er/f", b"f")
        .finish();
    let overlay = ExtractOptions {
        whiteouts: WhiteoutStyle::Overlay(OverlayXattrs::Trusted),
        ownership: Ownership::Preserve,
    };
    extract_above(&tar[..], &upper, &overlay, &[top.clone(), bottom.clone()]).unwrap();
    let seen = |path: &str| {
        let meta = fs::symlink_metadata(upper.join(path)).unwrap();
        (meta.mode() & 0o7777, meta.uid(), meta.gid(), meta.mtime())
    };
    assert_eq!(seen("tmp"), (0o1777, 0, 0, 1_000));
    assert_eq!(seen("srv"), (0o751, 9, 9, 5_000), "the topmost lower's");
    assert_eq!(seen("hid"), (0o711, 0, 0, 6_000));
    let deep = fs::metadata(bottom.join("deep")).unwrap();
    assert_eq!(
        seen("deep"),
        (deep.mode() & 0o7777, deep.uid(), deep.gid(), deep.mtime())
    );
    assert_eq!(seen("deep/er"), (0o705, 3, 3, 7_000));
    // Not in the stack as overlayfs shows it: Docker's 0:0 0755.
    for made in ["gone", "hid/den", "new", "srv/app"] {
        let (mode, uid, gid, _) = seen(made);
        assert_eq!((mode, uid, gid), (0o755, 0, 0), "{made}");
    }
    assert_eq!(
        get_xattr(&upper.join("srv"), "user.note"),
        None,
        "top's srv has none"
    );
    // Without lowers (a layer applied alone) nothing changes.
    let alone = tmp.path().join("alone");
    fs::create_dir(&alone).unwrap();
    extract(&tar[..], &alone, &overlay).unwrap();
    let tmp_alone = fs::metadata(alone.join("tmp")).unwrap();
    assert_eq!((tmp_alone.mode() & 0o7777, tmp_alone.uid()), (0o755, 0));
}

#[test]
fn a_missing_parent_keeps_the_lower_directorys_xattrs() {
    if !root_or_skip("a_missing_parent_keeps_the_lower_directorys_xattrs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let [lower, upper] = ["lower", "upper"].map(|n| {
        let p = tmp.path().join(n);
        fs::create_dir(&p).unwrap();
        p
    });
    lower_dir(&lower.join("srv"), 0o750, (5, 6), 2_000);
    for (name, value) in [
        ("user.note", &b"kept"[..]),
        ("trusted.overlay.opaque", b"y"),
    ] {
        rustix::fs::setxattr(
            lower.join("srv"),
            name,
            value,
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
    }
    let tar = TarBuf::new().file("srv/f", b"f").finish();
    let overlay = ExtractOptions {
        whiteouts: WhiteoutStyle::Overlay(OverlayXattrs::Trusted),
        ownership: Ownership::Preserve,
    };
    extract_above(&tar[..], &upper, &overlay, &[lower]).unwrap();
    assert_eq!(
        get_xattr(&upper.join("srv"), "user.note").as_deref(),
        Some(&b"kept"[..])
    );
    // An overlay marker is the lower's own business, not the directory's.
    assert_eq!(
        get_xattr(&upper.join("srv"), "trusted.overlay.opaque"),
        None
    );
    let srv = fs::metadata(upper.join("srv")).unwrap();
    assert_eq!(
        (srv.mode() & 0o7777, srv.uid(), srv.gid(), srv.mtime()),
        (0o750, 5, 6, 2_000)
    );
}

#[test]
fn a_directory_a_layer_changes_below_without_naming_it_keeps_its_mtime() {
    let sandbox = Sandbox::new();
    let lower = TarBuf::new()
        .dir_with("etc", 0o755, 1_000_000)
        .file("etc/a", b"a")
        .file("etc/b", b"b")
        .dir_with("opt", 0o755, 2_000_000)
        .dir_with("opt/o", 0o755, 3_000_000)
        .file("opt/o/old", b"old")
        .finish();
    // No `etc/` or `opt/o/` entry: a file replaced, one added, one whited
    // out, a directory made below, and `opt/o` emptied by its marker.
    let upper = TarBuf::new()
        .file("etc/b", b"b2")
        .file("etc/c", b"c")
        .file("etc/.wh.a", b"")
        .file("etc/new/deep", b"d")
        .file("opt/o/.wh..wh..opq", b"")
        .finish();
    extract(&lower[..], &sandbox.root(), &apply()).unwrap();
    extract(&upper[..], &sandbox.root(), &apply()).unwrap();
    let mtime = |path: &str| {
        fs::symlink_metadata(sandbox.root().join(path))
            .unwrap()
            .mtime()
    };
    assert_eq!(
        (mtime("etc"), mtime("opt"), mtime("opt/o")),
        (1_000_000, 2_000_000, 3_000_000)
    );
    assert_eq!(
        listing(&sandbox.root()),
        [
            "etc dir",
            "etc/b file:b2",
            "etc/c file:c",
            "etc/new dir",
            "etc/new/deep file:d",
            "opt dir",
            "opt/o dir"
        ]
    );
}
