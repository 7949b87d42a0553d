//! `COPY` as a user sees it: the layer a `COPY` makes, extracted, holds the
//! right files with the right modes, owners and links, and bad sources fail
//! with a message that helps.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use builder::context::walk;
use builder::exec::copy::{CopyFlags, CopyRequest, Source, SourceRoot, plan_copy};
use builder::exec::rootfs::RootfsView;
use builder::exec::{CopyError, DestRoot};
use builder::ignore::PatternMatcher;
use builder::layer::extract::{ExtractOptions, Ownership, WhiteoutStyle, extract};
use builder::layer::owners::OwnerMap;
use builder::layer::tar::WriteOptions;

fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// The context at `dir` as a source root, after `ignore` patterns.
fn context(dir: &Path, ignore: &[&str]) -> SourceRoot {
    let matcher = (!ignore.is_empty()).then(|| PatternMatcher::new(ignore).unwrap());
    let entries = walk(dir, matcher.as_ref()).unwrap();
    SourceRoot::Context(Arc::new(RootfsView::context(dir, entries).unwrap()))
}

/// `view` as the root filesystem a COPY writes onto, owners as on disk.
fn onto(view: &RootfsView) -> Option<DestRoot<'_>> {
    Some(DestRoot {
        view,
        owners: OwnerMap::Identity,
    })
}

fn request(sources: &[&str], dest: &str, flags: CopyFlags) -> CopyRequest {
    CopyRequest {
        sources: sources
            .iter()
            .map(|s| Source::Path((*s).to_owned()))
            .collect(),
        dest: dest.to_owned(),
        workdir: PathBuf::from("/work"),
        flags,
    }
}

/// Plans, writes and extracts the layer into a fresh directory.
fn layer(
    request: &CopyRequest,
    root: &SourceRoot,
    dest: Option<&Path>,
) -> Result<tempfile::TempDir, CopyError> {
    let dest_view = dest.map(|d| RootfsView::dir(d).unwrap());
    let plan = plan_copy(request, root, dest_view.as_ref().and_then(onto))?;
    let tar = plan.write_layer(Vec::new(), &WriteOptions::default())?;
    let out = tempfile::tempdir().unwrap();
    extract(
        &tar[..],
        out.path(),
        &ExtractOptions {
            whiteouts: WhiteoutStyle::Apply,
            ownership: Ownership::Preserve,
        },
    )
    .unwrap();
    Ok(out)
}

/// Every path in `root`, with `/` after directories and `@target` after links.
fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn visit(root: &Path, rel: &Path, out: &mut Vec<String>) {
        let mut names: Vec<_> = fs::read_dir(root.join(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            let path = rel.join(&name);
            let meta = fs::symlink_metadata(root.join(&path)).unwrap();
            let shown = path.to_string_lossy().into_owned();
            if meta.is_dir() {
                out.push(format!("{shown}/"));
                visit(root, &path, out);
            } else if meta.file_type().is_symlink() {
                let target = fs::read_link(root.join(&path)).unwrap();
                out.push(format!("{shown}@{}", target.display()));
            } else {
                out.push(shown);
            }
        }
    }
    visit(root, Path::new(""), &mut out);
    out
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn owner(path: &Path) -> (u32, u32) {
    let meta = fs::symlink_metadata(path).unwrap();
    (meta.uid(), meta.gid())
}

#[test]
fn a_file_to_a_file_path_and_into_a_directory() {
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "app.txt", "hello");
    let root = context(ctx.path(), &[]);
    let out = layer(
        &request(&["app.txt"], "/srv/renamed", CopyFlags::default()),
        &root,
        None,
    )
    .unwrap();
    assert_eq!(listing(out.path()), ["srv/", "srv/renamed"]);
    assert_eq!(
        fs::read_to_string(out.path().join("srv/renamed")).unwrap(),
        "hello"
    );
    assert_eq!(mode(&out.path().join("srv")), 0o755);

    let out = layer(
        &request(&["app.txt"], "/srv/", CopyFlags::default()),
        &root,
        None,
    )
    .unwrap();
    assert_eq!(listing(out.path()), ["srv/", "srv/app.txt"]);

    // Relative to WORKDIR; an existing destination directory takes the file inside.
    let dest = tempfile::tempdir().unwrap();
    fs::create_dir_all(dest.path().join("work/existing")).unwrap();
    let out = layer(
        &request(&["app.txt"], "existing", CopyFlags::default()),
        &root,
        Some(dest.path()),
    )
    .unwrap();
    assert_eq!(
        listing(out.path()),
        ["work/", "work/existing/", "work/existing/app.txt"]
    );
}

#[test]
fn a_directory_copies_its_contents_and_several_sources_need_a_directory() {
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "dir/a", "a");
    write(ctx.path(), "dir/sub/b", "b");
    write(ctx.path(), "one.txt", "1");
    write(ctx.path(), "two.txt", "2");
    let root = context(ctx.path(), &[]);
    let out = layer(
        &request(&["dir"], "/app", CopyFlags::default()),
        &root,
        None,
    )
    .unwrap();
    assert_eq!(
        listing(out.path()),
        ["app/", "app/a", "app/sub/", "app/sub/b"]
    );

    let out = layer(
        &request(&["one.txt", "two.txt"], "/many", CopyFlags::default()),
        &root,
        None,
    )
    .unwrap();
    assert_eq!(
        listing(out.path()),
        ["many/", "many/one.txt", "many/two.txt"]
    );

    let out = layer(
        &request(&["*.txt"], "/glob", CopyFlags::default()),
        &root,
        None,
    )
    .unwrap();
    assert_eq!(
        listing(out.path()),
        ["glob/", "glob/one.txt", "glob/two.txt"]
    );

    // Several sources onto an existing file is an error.
    let dest = tempfile::tempdir().unwrap();
    write(dest.path(), "file", "x");
    let err = layer(
        &request(&["one.txt", "two.txt"], "/file", CopyFlags::default()),
        &root,
        Some(dest.path()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("must be a directory"), "{err}");
}

#[test]
fn wildcards_match_per_path_element() {
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "src/a/main.rs", "");
    write(ctx.path(), "src/b/main.rs", "");
    write(ctx.path(), "src/b/deep/main.rs", "");
    write(ctx.path(), "src/c.txt", "");
    let root = context(ctx.path(), &[]);
    let out = layer(
        &request(&["src/[ab]/*.rs"], "/out/", CopyFlags::default()),
        &root,
        None,
    )
    .unwrap();
    // Both match main.rs: the later one wins, nothing from deep/ (`*` stops at `/`).
    assert_eq!(listing(out.path()), ["out/", "out/main.rs"]);
    let out = layer(
        &request(&["src/?.txt", "nomatch*"], "/out/", CopyFlags::default()),
        &root,
        None,
    )
    .unwrap();
    assert_eq!(listing(out.path()), ["out/", "out/c.txt"]);
}

#[test]
fn a_missing_source_names_near_files_and_the_dockerignore() {
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "config.yaml", "");
    write(ctx.path(), "secret.env", "");
    let root = context(ctx.path(), &["*.env"]);
    let err = layer(
        &request(&["config.yml"], "/x", CopyFlags::default()),
        &root,
        None,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "COPY source `config.yml` not found in the build context; did you mean `config.yaml`?"
    );
    let err = layer(
        &request(&["secret.env"], "/x", CopyFlags::default()),
        &root,
        None,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "COPY source `secret.env` not found in the build context: it is excluded by .dockerignore"
    );
    // Excluded files are not copied with their directory either.
    let out = layer(&request(&["."], "/all/", CopyFlags::default()), &root, None).unwrap();
    assert_eq!(listing(out.path()), ["all/", "all/config.yaml"]);
}

#[test]
fn sources_cannot_leave_the_context() {
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "dir/file", "inside");
    symlink("/etc/passwd", ctx.path().join("dir/abs-link")).unwrap();
    symlink(
        "../../../../../../etc/passwd",
        ctx.path().join("dir/rel-link"),
    )
    .unwrap();
    let root = context(ctx.path(), &[]);
    let err = layer(
        &request(&["../../etc/passwd"], "/x", CopyFlags::default()),
        &root,
        None,
    )
    .unwrap_err();
    assert!(matches!(err, CopyError::SourceNotFound { .. }), "{err}");
    let err = layer(
        &request(&["/etc/passwd"], "/x", CopyFlags::default()),
        &root,
        None,
    )
    .unwrap_err();
    assert!(matches!(err, CopyError::SourceNotFound { .. }), "{err}");
    // Following a link that points out resolves inside the context: nothing there.
    let err = layer(
        &request(&["dir/abs-link"], "/x", CopyFlags::default()),
        &root,
        None,
    )
    .unwrap_err();
    assert!(matches!(err, CopyError::SourceNotFound { .. }), "{err}");
    // Inside a copied directory, links are copied as links.
    let out = layer(&request(&["dir"], "/d", CopyFlags::default()), &root, None).unwrap();
    assert_eq!(
        listing(out.path()),
        [
            "d/",
            "d/abs-link@/etc/passwd",
            "d/file",
            "d/rel-link@../../../../../../etc/passwd"
        ]
    );
    // `..` that climbs above the context stays at its root.
    let out = layer(
        &request(&["../../dir/file"], "/f", CopyFlags::default()),
        &root,
        None,
    )
    .unwrap();
    assert_eq!(fs::read_to_string(out.path().join("f")).unwrap(), "inside");
}

#[test]
fn chown_by_name_chmod_and_kept_mtimes() {
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "run.sh", "#!/bin/sh");
    fs::set_permissions(ctx.path().join("run.sh"), fs::Permissions::from_mode(0o640)).unwrap();
    let mtime = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 1_500_000_000,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 1_500_000_000,
            tv_nsec: 0,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        ctx.path().join("run.sh"),
        &mtime,
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
    let dest = tempfile::tempdir().unwrap();
    write(
        dest.path(),
        "etc/passwd",
        "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
    );
    write(
        dest.path(),
        "etc/group",
        "root:x:0:\napp:x:1000:\nstaff:x:50:\n",
    );
    let root = context(ctx.path(), &[]);
    let flags = CopyFlags {
        chown: Some("app:staff".into()),
        chmod: Some("u+x,g-r".into()),
        ..CopyFlags::default()
    };
    let out = layer(
        &request(&["run.sh"], "/opt/tools/", flags),
        &root,
        Some(dest.path()),
    )
    .unwrap();
    let file = out.path().join("opt/tools/run.sh");
    assert_eq!(owner(&file), (1000, 50));
    assert_eq!(mode(&file), 0o700);
    assert_eq!(fs::metadata(&file).unwrap().mtime(), 1_500_000_000);
    // Created parents belong to the --chown user.
    assert_eq!(owner(&out.path().join("opt/tools")), (1000, 50));

    let octal = CopyFlags {
        chmod: Some("0755".into()),
        ..CopyFlags::default()
    };
    let out = layer(&request(&["run.sh"], "/x", octal), &root, Some(dest.path())).unwrap();
    assert_eq!(mode(&out.path().join("x")), 0o755);
    assert_eq!(owner(&out.path().join("x")), (0, 0));

    let unknown = CopyFlags {
        chown: Some("nobody".into()),
        ..CopyFlags::default()
    };
    let err = layer(
        &request(&["run.sh"], "/x", unknown),
        &root,
        Some(dest.path()),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "--chown: unknown user `nobody`: not in the image's /etc/passwd"
    );
}

#[test]
fn parents_and_excludes() {
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "a/b/one.txt", "1");
    write(ctx.path(), "a/c/two.txt", "2");
    write(ctx.path(), "a/c/skip.log", "");
    let root = context(ctx.path(), &[]);
    let parents = CopyFlags {
        parents: true,
        ..CopyFlags::default()
    };
    let out = layer(
        &request(&["a/*/*.txt"], "/keep", parents.clone()),
        &root,
        None,
    )
    .unwrap();
    assert_eq!(
        listing(out.path()),
        [
            "keep/",
            "keep/a/",
            "keep/a/b/",
            "keep/a/b/one.txt",
            "keep/a/c/",
            "keep/a/c/two.txt"
        ]
    );
    let out = layer(
        &request(&["./a/./c/two.txt"], "/pivot", parents),
        &root,
        None,
    )
    .unwrap();
    assert_eq!(
        listing(out.path()),
        ["pivot/", "pivot/c/", "pivot/c/two.txt"]
    );

    let exclude = CopyFlags {
        excludes: vec!["**/*.log".into(), "b".into()],
        ..CopyFlags::default()
    };
    let out = layer(&request(&["a"], "/ex", exclude), &root, None).unwrap();
    assert_eq!(listing(out.path()), ["ex/", "ex/c/", "ex/c/two.txt"]);
}

#[test]
fn heredoc_is_a_root_owned_0644_file() {
    let ctx = tempfile::tempdir().unwrap();
    let root = context(ctx.path(), &[]);
    let request = CopyRequest {
        sources: vec![Source::Heredoc {
            name: "EOF".into(),
            content: b"line\n".to_vec(),
        }],
        dest: "/etc/motd".into(),
        workdir: PathBuf::from("/"),
        flags: CopyFlags::default(),
    };
    let out = layer(&request, &root, None).unwrap();
    let file = out.path().join("etc/motd");
    assert_eq!(fs::read_to_string(&file).unwrap(), "line\n");
    assert_eq!(mode(&file), 0o644);
    assert_eq!(owner(&file), (0, 0));
}

#[test]
fn from_a_layer_stack_with_whiteouts_and_owners_kept() {
    let lower = tempfile::tempdir().unwrap();
    let upper = tempfile::tempdir().unwrap();
    write(lower.path(), "app/bin/tool", "old");
    write(lower.path(), "app/bin/gone", "gone");
    write(lower.path(), "app/lib/x", "x");
    write(upper.path(), "app/bin/tool", "new");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        upper.path().join("app/bin/gone"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        0,
    )
    .unwrap();
    std::os::unix::fs::chown(upper.path().join("app/bin/tool"), Some(7), Some(8)).unwrap();
    symlink("/app/bin", upper.path().join("bin")).unwrap();
    let view =
        RootfsView::layers(&[upper.path().to_path_buf(), lower.path().to_path_buf()]).unwrap();
    let root = SourceRoot::Stage {
        view: Arc::new(view),
        owners: OwnerMap::Identity,
    };
    let out = layer(
        &request(&["/app"], "/copy", CopyFlags::default()),
        &root,
        None,
    )
    .unwrap();
    assert_eq!(
        listing(out.path()),
        [
            "copy/",
            "copy/bin/",
            "copy/bin/tool",
            "copy/lib/",
            "copy/lib/x"
        ]
    );
    assert_eq!(
        fs::read_to_string(out.path().join("copy/bin/tool")).unwrap(),
        "new"
    );
    assert_eq!(owner(&out.path().join("copy/bin/tool")), (7, 8));
    // A symlink in the source path resolves inside the stage's root.
    let out = layer(
        &request(&["/bin/tool"], "/t", CopyFlags::default()),
        &root,
        None,
    )
    .unwrap();
    assert_eq!(fs::read_to_string(out.path().join("t")).unwrap(), "new");
}

#[test]
fn link_layers_do_not_look_at_the_destination() {
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "f", "f");
    let dest = tempfile::tempdir().unwrap();
    fs::create_dir_all(dest.path().join("app")).unwrap();
    let root = context(ctx.path(), &[]);
    // Without --link, `/app` exists as a directory: the file goes inside,
    // `app/` is in the layer as the destination has it.
    let dest_view = RootfsView::dir(dest.path()).unwrap();
    let plan = plan_copy(
        &request(&["f"], "/app", CopyFlags::default()),
        &root,
        onto(&dest_view),
    )
    .unwrap();
    assert_eq!(plan.paths(), [PathBuf::from("app"), PathBuf::from("app/f")]);
    // With --link, `/app` is the file's path and its parents are in the layer.
    let link = CopyFlags {
        link: true,
        ..CopyFlags::default()
    };
    let plan = plan_copy(&request(&["f"], "/x/app", link), &root, onto(&dest_view)).unwrap();
    assert_eq!(plan.paths(), [PathBuf::from("x"), PathBuf::from("x/app")]);
}

#[test]
fn a_destination_symlink_is_followed_inside_the_destination() {
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "f", "f");
    let dest = tempfile::tempdir().unwrap();
    fs::create_dir_all(dest.path().join("srv/real")).unwrap();
    symlink("/srv/real", dest.path().join("app")).unwrap();
    let root = context(ctx.path(), &[]);
    let dest_view = RootfsView::dir(dest.path()).unwrap();
    let plan = plan_copy(
        &request(&["f"], "/app/", CopyFlags::default()),
        &root,
        onto(&dest_view),
    )
    .unwrap();
    assert_eq!(
        plan.paths(),
        ["srv", "srv/real", "srv/real/f"].map(PathBuf::from)
    );
}

#[test]
fn cache_input_digests_are_memoized_until_a_file_changes() {
    use builder::context::digest::{DigestMemo, MEMO_FILE};
    let ctx = tempfile::tempdir().unwrap();
    let memo_dir = tempfile::tempdir().unwrap();
    write(ctx.path(), "a.txt", "aaaa");
    write(ctx.path(), "b.txt", "bbbb");
    let req = request(
        &["."],
        "/app/",
        CopyFlags {
            chmod: Some("0600".into()),
            ..CopyFlags::default()
        },
    );
    let inputs = |memo: &mut DigestMemo| {
        let root = context(ctx.path(), &[]);
        plan_copy(&req, &root, None)
            .unwrap()
            .cache_input(memo)
            .unwrap()
    };
    let mut memo = DigestMemo::load(memo_dir.path());
    let first = inputs(&mut memo);
    assert_eq!(memo.bytes_read(), 8);
    memo.save().unwrap();
    assert!(memo_dir.path().join(MEMO_FILE).exists());
    let a = first
        .sources
        .iter()
        .find(|s| s.dest == "app/a.txt")
        .unwrap();
    assert_eq!(
        a.content.as_deref(),
        Some(builder::digest::sha256(b"aaaa").to_string().as_str())
    );
    assert_eq!((a.mode, a.uid, a.gid, a.size), (0o600, 0, 0, 4));
    assert_eq!(first.options.get("chmod").map(String::as_str), Some("0600"));

    // A second run reads no content at all.
    let mut memo = DigestMemo::load(memo_dir.path());
    assert_eq!(inputs(&mut memo), first);
    assert_eq!(memo.bytes_read(), 0);

    // Same size, mtime put back: the ctime still changed, so it is read again.
    let path = ctx.path().join("a.txt");
    let before = fs::metadata(&path).unwrap();
    fs::write(&path, "AAAA").unwrap();
    let times = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: before.atime(),
            tv_nsec: before.atime_nsec(),
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: before.mtime(),
            tv_nsec: before.mtime_nsec(),
        },
    };
    rustix::fs::utimensat(rustix::fs::CWD, &path, &times, rustix::fs::AtFlags::empty()).unwrap();
    let mut memo = DigestMemo::load(memo_dir.path());
    let third = inputs(&mut memo);
    assert_eq!(memo.bytes_read(), 4);
    let a = third
        .sources
        .iter()
        .find(|s| s.dest == "app/a.txt")
        .unwrap();
    assert_eq!(
        a.content.as_deref(),
        Some(builder::digest::sha256(b"AAAA").to_string().as_str())
    );
}

mod add {
    use super::*;
    use builder::exec::add::{AddRequest, plan_add};
    use std::io::{Read as _, Write as _};

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, content) in entries {
            let mut header = tar::Header::new_ustar();
            // Raw names, so `../` entries can be written.
            let field = &mut header.as_old_mut().name;
            field[..name.len()].copy_from_slice(name.as_bytes());
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o640);
            header.set_uid(33);
            header.set_gid(34);
            header.set_mtime(1_400_000_000);
            header.set_size(content.len() as u64);
            header.set_cksum();
            builder.append(&header, *content).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn add_request(sources: &[&str], dest: &str) -> AddRequest {
        AddRequest {
            copy: request(sources, dest, CopyFlags::default()),
            checksum: None,
            unpack: None,
            keep_git_dir: false,
        }
    }

    fn run(request: &AddRequest, ctx: &Path) -> Result<tempfile::TempDir, CopyError> {
        let root = context(ctx, &[]);
        let scratch = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let plan = runtime.block_on(plan_add(request, &root, None, scratch.path()))?;
        let tar = plan.write_layer(Vec::new(), &WriteOptions::default())?;
        let out = tempfile::tempdir().unwrap();
        let options = ExtractOptions {
            whiteouts: WhiteoutStyle::Apply,
            ownership: Ownership::Preserve,
        };
        extract(&tar[..], out.path(), &options).unwrap();
        Ok(out)
    }

    #[test]
    fn local_archives_are_extracted_whatever_their_compression() {
        let ctx = tempfile::tempdir().unwrap();
        let plain = tar_of(&[("pkg/a.txt", b"a"), ("pkg/b.txt", b"b")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&plain).unwrap();
        fs::write(ctx.path().join("p.tar.gz"), gz.finish().unwrap()).unwrap();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        bz.write_all(&plain).unwrap();
        fs::write(ctx.path().join("p.tbz"), bz.finish().unwrap()).unwrap();
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
        xz.write_all(&plain).unwrap();
        fs::write(ctx.path().join("p.txz"), xz.finish().unwrap()).unwrap();
        fs::write(
            ctx.path().join("p.zst"),
            zstd::encode_all(&plain[..], 3).unwrap(),
        )
        .unwrap();
        fs::write(ctx.path().join("p.tar"), &plain).unwrap();
        for name in ["p.tar.gz", "p.tbz", "p.txz", "p.zst", "p.tar"] {
            let out = run(&add_request(&[name], "/opt"), ctx.path()).unwrap();
            assert_eq!(
                listing(out.path()),
                ["opt/", "opt/pkg/", "opt/pkg/a.txt", "opt/pkg/b.txt"],
                "{name}"
            );
            let a = out.path().join("opt/pkg/a.txt");
            assert_eq!(owner(&a), (33, 34), "{name}: the archive's owners are kept");
            assert_eq!(mode(&a), 0o640);
        }
        // --unpack=false copies the archive as a file; a non-archive is copied too.
        let mut keep = add_request(&["p.tar.gz"], "/opt/");
        keep.unpack = Some(false);
        assert_eq!(
            listing(run(&keep, ctx.path()).unwrap().path()),
            ["opt/", "opt/p.tar.gz"]
        );
        write(ctx.path(), "notes.txt", "just text");
        let out = run(&add_request(&["notes.txt"], "/n"), ctx.path()).unwrap();
        assert_eq!(
            fs::read_to_string(out.path().join("n")).unwrap(),
            "just text"
        );
    }

    #[test]
    fn archive_entries_cannot_leave_the_destination() {
        let ctx = tempfile::tempdir().unwrap();
        fs::write(
            ctx.path().join("evil.tar"),
            tar_of(&[("../../escape", b"x")]),
        )
        .unwrap();
        let err = run(&add_request(&["evil.tar"], "/opt"), ctx.path()).unwrap_err();
        assert!(
            err.to_string().contains("refused tar entry `../../escape`"),
            "{err}"
        );
    }

    #[test]
    fn git_sources_are_not_supported_yet() {
        let ctx = tempfile::tempdir().unwrap();
        let err = run(
            &add_request(&["https://example.com/repo.git#main"], "/src"),
            ctx.path(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "ADD of a git repository is not supported yet"
        );
        let mut keep = add_request(&["x"], "/src");
        keep.keep_git_dir = true;
        assert!(
            run(&keep, ctx.path())
                .unwrap_err()
                .to_string()
                .contains("--keep-git-dir")
        );
    }

    /// Serves `body` to every request on 127.0.0.1, with a Last-Modified date.
    fn serve(body: &'static [u8]) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(body);
            }
        });
        format!("http://{addr}")
    }

    #[test]
    fn urls_are_downloaded_and_checked() {
        let base = serve(b"downloaded\n");
        let ctx = tempfile::tempdir().unwrap();
        let mut good = add_request(&[&format!("{base}/files/tool.sh")], "/usr/local/bin/");
        good.checksum = Some(builder::digest::sha256(b"downloaded\n").to_string());
        let out = run(&good, ctx.path()).unwrap();
        let file = out.path().join("usr/local/bin/tool.sh");
        assert_eq!(fs::read_to_string(&file).unwrap(), "downloaded\n");
        assert_eq!(mode(&file), 0o600);
        assert_eq!(fs::metadata(&file).unwrap().mtime(), 784_111_777);

        // A file destination names the download.
        let out = run(
            &add_request(&[&format!("{base}/x")], "/renamed"),
            ctx.path(),
        )
        .unwrap();
        assert_eq!(listing(out.path()), ["renamed"]);

        let mut bad = add_request(&[&format!("{base}/files/tool.sh")], "/usr/local/bin/");
        let wrong = builder::digest::sha256(b"something else").to_string();
        bad.checksum = Some(wrong.clone());
        let err = run(&bad, ctx.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "checksum mismatch for {base}/files/tool.sh: expected {wrong}, got {}",
                builder::digest::sha256(b"downloaded\n")
            )
        );
    }
}

#[test]
fn hardlinked_sources_stay_one_file_in_the_layer() {
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "dir/a", "shared");
    fs::hard_link(ctx.path().join("dir/a"), ctx.path().join("dir/b")).unwrap();
    write(ctx.path(), "dir/c", "shared");
    let root = context(ctx.path(), &[]);
    let out = layer(
        &request(&["dir"], "/app", CopyFlags::default()),
        &root,
        None,
    )
    .unwrap();
    assert_eq!(listing(out.path()), ["app/", "app/a", "app/b", "app/c"]);
    let inode = |name: &str| {
        fs::metadata(out.path().join("app").join(name))
            .unwrap()
            .ino()
    };
    assert_eq!(
        inode("a"),
        inode("b"),
        "a and b are one file, as in the context"
    );
    assert_ne!(inode("a"), inode("c"), "c only has the same content");
    assert_eq!(
        fs::read_to_string(out.path().join("app/b")).unwrap(),
        "shared"
    );
}

#[test]
fn a_dangling_destination_symlink_leads_where_its_target_would_be() {
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "f", "f");
    let dest = tempfile::tempdir().unwrap();
    fs::create_dir_all(dest.path().join("usr")).unwrap();
    symlink("usr/lib64", dest.path().join("lib64")).unwrap();
    symlink("../gone", dest.path().join("usr/rel")).unwrap();
    let root = context(ctx.path(), &[]);
    let dest_view = RootfsView::dir(dest.path()).unwrap();
    let paths = |dest: &str| {
        plan_copy(
            &request(&["f"], dest, CopyFlags::default()),
            &root,
            onto(&dest_view),
        )
        .unwrap()
        .paths()
    };
    assert_eq!(
        paths("/lib64/x/"),
        ["usr", "usr/lib64", "usr/lib64/x", "usr/lib64/x/f"].map(PathBuf::from)
    );
    assert_eq!(
        paths("/usr/rel/sub/"),
        ["gone", "gone/sub", "gone/sub/f"].map(PathBuf::from)
    );
    // A loop of links is an error, not a hang.
    symlink("loop2", dest.path().join("loop1")).unwrap();
    symlink("loop1", dest.path().join("loop2")).unwrap();
    let looped = plan_copy(
        &request(&["f"], "/loop1/", CopyFlags::default()),
        &root,
        onto(&dest_view),
    );
    assert!(
        looped
            .unwrap_err()
            .to_string()
            .contains("too many levels of symbolic links"),
    );
}

#[test]
fn a_context_files_and_directorys_xattrs_are_in_the_layer() {
    let ctx = tempfile::tempdir().unwrap();
    write(ctx.path(), "dir/f", "f");
    let set = |rel: &str| {
        rustix::fs::setxattr(
            ctx.path().join(rel),
            "user.origin",
            b"ctx",
            rustix::fs::XattrFlags::empty(),
        )
    };
    if let Err(e) = set("dir/f").and_then(|()| set("dir")) {
        eprintln!("skipping: this file system takes no user.* xattrs ({e})");
        return;
    }
    let root = context(ctx.path(), &[]);
    let out = layer(&request(&["."], "/app/", CopyFlags::default()), &root, None).unwrap();
    for rel in ["app/dir", "app/dir/f"] {
        let mut value = [0u8; 16];
        let n = rustix::fs::getxattr(out.path().join(rel), "user.origin", &mut value[..]).unwrap();
        assert_eq!(&value[..n], b"ctx", "{rel}");
    }
}
