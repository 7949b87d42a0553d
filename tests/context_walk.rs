//! The build context a build sees: the context directory walked with the
//! `.dockerignore` rules.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use builder::context::walk;
use builder::file_kind::FileKind;
use builder::ignore::{IgnoreFile, PatternMatcher};

fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// The context entries as `path` strings, with a `/` after directories.
fn listing(root: &Path, ignore: Option<&PatternMatcher>) -> Vec<String> {
    walk(root, ignore)
        .unwrap()
        .into_iter()
        .map(|e| {
            let mut p = e.path.to_string_lossy().into_owned();
            if e.kind == FileKind::Dir {
                p.push('/');
            }
            p
        })
        .collect()
}

#[test]
fn entries_come_depth_first_in_name_order_with_metadata() {
    let ctx = tempfile::tempdir().unwrap();
    let root = ctx.path();
    write(root, "b.txt", "hello");
    write(root, "a/z", "");
    write(root, "a/b/c", "");
    write(root, "a.txt", "");
    fs::set_permissions(root.join("b.txt"), fs::Permissions::from_mode(0o4751)).unwrap();
    symlink("../b.txt", root.join("a/link")).unwrap();

    assert_eq!(
        listing(root, None),
        ["a/", "a/b/", "a/b/c", "a/link", "a/z", "a.txt", "b.txt"]
    );
    let entries = walk(root, None).unwrap();
    let file = entries
        .iter()
        .find(|e| e.path == Path::new("b.txt"))
        .unwrap();
    assert_eq!(file.kind, FileKind::File);
    assert_eq!(file.size, 5);
    assert_eq!(file.mode, 0o4751);
    let meta = fs::metadata(root.join("b.txt")).unwrap();
    assert_eq!(
        file.mtime.secs,
        std::os::unix::fs::MetadataExt::mtime(&meta)
    );
    let link = entries
        .iter()
        .find(|e| e.path == Path::new("a/link"))
        .unwrap();
    assert_eq!(
        link.kind,
        FileKind::Symlink {
            target: PathBuf::from("../b.txt")
        }
    );
}

#[test]
fn symlinks_are_entries_and_never_followed() {
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret", "do not send");
    let ctx = tempfile::tempdir().unwrap();
    symlink(outside.path(), ctx.path().join("escape")).unwrap();
    symlink("/", ctx.path().join("root")).unwrap();

    let entries = walk(ctx.path(), None).unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(
        entries
            .iter()
            .all(|e| matches!(e.kind, FileKind::Symlink { .. }))
    );
}

#[test]
fn ignored_files_are_absent_and_exceptions_re_include() {
    let ctx = tempfile::tempdir().unwrap();
    let root = ctx.path();
    for f in [
        "app.py",
        "debug.log",
        "logs/today.log",
        "build/out.o",
        "build/keep.txt",
        "build/deep/x.o",
        "node_modules/pkg/index.js",
        "docs/a.md",
        "docs/README.md",
    ] {
        write(root, f, "x");
    }
    let pm = PatternMatcher::new([
        "*.log",
        "build",
        "!build/keep.txt",
        "node_modules",
        "docs/*.md",
        "!docs/README.md",
    ])
    .unwrap();
    assert_eq!(
        listing(root, Some(&pm)),
        [
            "app.py",
            // `build` is excluded but holds an exception, so it is there
            // with only that file.
            "build/",
            "build/keep.txt",
            "docs/",
            "docs/README.md",
            // `*.log` is anchored at the root: logs/today.log stays.
            "logs/",
            "logs/today.log",
        ]
    );
}

#[test]
fn wildcard_exceptions_look_inside_excluded_directories() {
    let ctx = tempfile::tempdir().unwrap();
    let root = ctx.path();
    write(root, "vendor/a/lib.go", "");
    write(root, "vendor/a/notes.txt", "");
    write(root, "vendor/b/data.bin", "");
    write(root, "main.go", "");
    let pm = PatternMatcher::new(["vendor", "!**/*.go"]).unwrap();
    assert_eq!(
        listing(root, Some(&pm)),
        ["main.go", "vendor/", "vendor/a/", "vendor/a/lib.go"]
    );
}

#[test]
fn ignoring_the_dockerfile_and_dockerignore_keeps_them_for_the_build() {
    let ctx = tempfile::tempdir().unwrap();
    let root = ctx.path();
    write(root, "Dockerfile", "FROM scratch\nCOPY . /\n");
    write(root, ".dockerignore", "Dockerfile\n.dockerignore\n");
    write(root, "app", "");

    // The build still reads both files directly…
    let ignore = IgnoreFile::for_build(root, Some(&root.join("Dockerfile")))
        .unwrap()
        .unwrap();
    assert_eq!(ignore.patterns, ["Dockerfile", ".dockerignore"]);
    // …while `COPY . /` does not see them, as with BuildKit.
    assert_eq!(listing(root, Some(&ignore.matcher().unwrap())), ["app"]);
}

#[test]
fn names_that_are_not_utf8_are_kept_as_bytes() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    let ctx = tempfile::tempdir().unwrap();
    let name = OsStr::from_bytes(b"caf\xe9");
    fs::write(ctx.path().join(name), "").unwrap();
    let entries = walk(ctx.path(), None).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].path.as_os_str(), name);
}

#[test]
fn a_missing_context_is_an_error_naming_the_cause() {
    let ctx = tempfile::tempdir().unwrap();
    let err = walk(&ctx.path().join("nope"), None).unwrap_err();
    assert!(err.to_string().contains("No such file"), "{err}");
}

/// The listing of `dir` (relative to `root`) by a plain recursive walk:
/// depth first, names in byte order, directories with a `/`.
fn serial_listing(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort_by(|a, b| {
        use std::os::unix::ffi::OsStrExt;
        a.as_bytes().cmp(b.as_bytes())
    });
    for name in names {
        let path = dir.join(&name);
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            out.push(format!("{rel}/"));
            serial_listing(root, &path, out);
        } else {
            out.push(rel);
        }
    }
}

#[test]
fn a_wide_and_deep_context_comes_in_the_same_order_as_a_serial_walk() {
    let ctx = tempfile::tempdir().unwrap();
    let root = ctx.path();
    // Many directories (scanned by several threads), some nested deep,
    // names whose byte order is not their creation order.
    for d in (0..60).rev() {
        for f in 0..15 {
            write(root, &format!("d{d:02}/f{f}"), "x");
        }
        let deep: String = (0..(d % 7)).map(|i| format!("n{i}/")).collect();
        write(root, &format!("d{d:02}/{deep}Z-leaf"), "y");
    }
    write(root, "a.txt", "");
    let mut expected = Vec::new();
    serial_listing(root, root, &mut expected);
    assert_eq!(listing(root, None), expected);

    // With rules excluding directories but re-including files deep inside
    // some of them: the excluded directories holding those come right
    // before them, and the others not at all.
    let rules = PatternMatcher::new(["d*", "!d1*/n0/n1/**"]).unwrap();
    let mut wanted: Vec<String> = vec!["a.txt".into()];
    for d in 10..20 {
        if d % 7 >= 2 {
            let deep: Vec<String> = (0..(d % 7)).map(|i| format!("n{i}")).collect();
            let mut path = format!("d{d}");
            let mut listed = vec![format!("{path}/")];
            for part in &deep {
                path = format!("{path}/{part}");
                listed.push(format!("{path}/"));
            }
            listed.push(format!("{path}/Z-leaf"));
            wanted.extend(listed);
        }
    }
    wanted.sort_by(|a, b| a.trim_end_matches('/').cmp(b.trim_end_matches('/')));
    assert_eq!(listing(root, Some(&rules)), wanted);
}
