//! A rebuild where every step is a cache hit names the identical image
//! (same config, same manifest digest), as BuildKit's does: cached steps
//! keep the time they first ran, metadata steps take the time of the layer
//! step around them, and the image's `created` is its last step's. Cache
//! records written before times were kept still hit. Needs root; skipped
//! otherwise.

mod support;

use support::build::{Home, can_build};
use support::built::{BUSYBOX, Built, Kind};

const STEPS: &str = "ENV A=1\n\
    RUN echo one > /one\n\
    LABEL x=y\n\
    COPY a /a\n\
    ENV B=2\n\
    RUN echo two > /two\n\
    CMD [\"sh\"]\n";

/// The image ID `--iidfile` gets from a build of `context`, and the image.
fn build_with_id(home: &Home, context: &std::path::Path) -> (String, Built) {
    let iid = home.path("iid");
    let image = home.built(context, &["--iidfile", iid.to_str().unwrap()]);
    (std::fs::read_to_string(iid).unwrap(), image)
}

fn created(image: &Built) -> Vec<String> {
    image.config["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            h["created"]
                .as_str()
                .expect("every entry has a time")
                .to_owned()
        })
        .collect()
}

#[test]
fn an_unchanged_rebuild_names_the_identical_image() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("rebuild", &format!("{BUSYBOX}{STEPS}"));
    std::fs::write(context.join("a"), "a").unwrap();
    let (id, first) = build_with_id(&home, &context);
    let (id_again, again) = build_with_id(&home, &context);
    assert_eq!(
        again.stderr.matches(" CACHED\n").count(),
        5,
        "{}",
        again.stderr
    );
    assert_eq!(id_again, id);
    assert_eq!(again.config, first.config);
    // The same manifest: the same manifest digest, nothing new to push.
    assert_eq!(again.manifest, first.manifest);

    // BuildKit's times: a metadata step before the first new layer takes
    // that layer's time, later ones the time of the step before them.
    let times = created(&first);
    let history = first.history();
    assert_eq!(history[2], "ENV A=1");
    assert_eq!(
        times[2], times[3],
        "ENV A=1 takes the time of the RUN after it"
    );
    assert_eq!(times[4], times[3], "LABEL after the RUN");
    assert_eq!(times[6], times[5], "ENV B=2 after the COPY");
    assert_eq!(times[8], times[7], "CMD after the last RUN");
    assert_eq!(first.config["created"].as_str(), Some(times[8].as_str()));
}

#[test]
fn records_without_a_time_still_hit_and_the_rebuild_after_is_stable() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("old-records", &format!("{BUSYBOX}{STEPS}"));
    std::fs::write(context.join("a"), "a").unwrap();
    home.built(&context, &[]);
    // As a build from before times were kept left them.
    let records = home.path("store/cache");
    let mut stripped = 0;
    for entry in std::fs::read_dir(&records).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let mut record: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            if record.as_object_mut().unwrap().remove("created").is_some() {
                stripped += 1;
            }
            std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
        }
    }
    assert_eq!(stripped, 5, "one record per layer step");
    let upgraded = home.built(&context, &[]);
    assert_eq!(
        upgraded.stderr.matches(" CACHED\n").count(),
        5,
        "{}",
        upgraded.stderr
    );
    let again = home.built(&context, &[]);
    assert_eq!(
        again.stderr.matches(" CACHED\n").count(),
        5,
        "{}",
        again.stderr
    );
    assert_eq!(again.config, upgraded.config);
    assert_eq!(again.manifest, upgraded.manifest);
}

#[test]
fn records_with_inline_inputs_still_hit_and_an_edit_reruns_only_what_it_touches() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("inline-inputs", &format!("{BUSYBOX}{STEPS}"));
    std::fs::write(context.join("a"), "a").unwrap();
    let first = home.built(&context, &[]);
    // As a build from before the inputs had a file of their own left them:
    // inline in the record, no inputs file.
    let records = home.path("store/cache");
    let mut inlined = 0;
    for entry in std::fs::read_dir(&records).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let inputs_path = records.join("inputs").join(path.file_name().unwrap());
            let inputs: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&inputs_path).unwrap()).unwrap();
            let mut record: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            assert_eq!(
                record["inputs"],
                serde_json::Value::Null,
                "a hit's record is small"
            );
            record["inputs"] = inputs;
            std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
            std::fs::remove_file(inputs_path).unwrap();
            inlined += 1;
        }
    }
    assert_eq!(inlined, 5, "one record per layer step");
    let again = home.built(&context, &[]);
    assert_eq!(
        again.stderr.matches(" CACHED\n").count(),
        5,
        "{}",
        again.stderr
    );
    assert_eq!(again.manifest, first.manifest);

    // An edit of the copied file: the steps before the COPY hit, the COPY
    // reruns saying which file changed (read from the old record), and so
    // does the RUN above it.
    std::fs::write(context.join("a"), "edited").unwrap();
    let edited = home.built(&context, &[]);
    assert_eq!(
        edited.stderr.matches(" CACHED\n").count(),
        3,
        "{}",
        edited.stderr
    );
    assert!(
        edited.stderr.contains("cache miss: `a` changed (sha256 "),
        "{}",
        edited.stderr
    );
    assert_eq!(
        edited.stderr.matches("cache miss:").count(),
        2,
        "{}",
        edited.stderr
    );
}

/// Sets the extended attribute `user.k` of `path` to `value`; false when
/// the file system keeps no user xattrs.
fn set_user_xattr(path: &std::path::Path, value: &[u8]) -> bool {
    match rustix::fs::setxattr(path, "user.k", value, rustix::fs::XattrFlags::empty()) {
        Ok(()) => true,
        Err(rustix::io::Errno::NOTSUP) => {
            eprintln!("SKIPPED: the temp file system keeps no user xattrs");
            false
        }
        Err(e) => panic!("setxattr {}: {e}", path.display()),
    }
}

#[test]
fn an_xattr_change_of_a_copied_file_or_directory_misses_the_cache() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("xattrs", "FROM scratch\nCOPY d /d\n");
    std::fs::create_dir_all(context.join("d/sub")).unwrap();
    std::fs::write(context.join("d/a"), "a").unwrap();
    if !set_user_xattr(&context.join("d/a"), b"v1") {
        return;
    }
    let first = home.built(&context, &[]);
    let again = home.built(&context, &[]);
    assert!(again.stderr.contains(" CACHED\n"), "{}", again.stderr);
    assert_eq!(again.manifest, first.manifest);

    // Same length, same mtime: only the ctime tells, and the layer differs.
    set_user_xattr(&context.join("d/a"), b"v2");
    let edited = home.built(&context, &[]);
    assert!(!edited.stderr.contains(" CACHED\n"), "{}", edited.stderr);
    assert!(
        edited
            .stderr
            .contains("cache miss: `d/a` extended attributes changed"),
        "{}",
        edited.stderr
    );
    assert_ne!(edited.manifest, first.manifest);

    // A directory's too (its entries are unchanged).
    set_user_xattr(&context.join("d/sub"), b"v1");
    let dir = home.built(&context, &[]);
    assert!(
        dir.stderr
            .contains("cache miss: `d/sub` extended attributes changed"),
        "{}",
        dir.stderr
    );
    assert_ne!(dir.manifest, edited.manifest);
}

#[test]
fn a_last_copy_is_written_once_and_unpacked_only_when_a_step_reads_it() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("last-copy", "FROM scratch\nCOPY . /app/\n");
    std::fs::write(context.join("a"), "a").unwrap();
    let snapshots = || -> Vec<String> {
        match std::fs::read_dir(home.path("store/snapshots")) {
            Ok(dir) => dir
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    };
    let built = home.built(&context, &[]);
    assert_eq!(built.files["app/a"].kind, Kind::File(b"a".to_vec()));
    assert_eq!(snapshots(), Vec::<String>::new(), "no step read the layer");
    std::fs::write(context.join("a"), "b").unwrap();
    let edited = home.built(&context, &[]);
    assert_eq!(edited.files["app/a"].kind, Kind::File(b"b".to_vec()));
    assert_eq!(snapshots(), Vec::<String>::new(), "no step read the layer");
}

#[test]
fn a_copy_found_by_its_sources_stat_identities_still_sees_every_change() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("stat-alias", "FROM scratch\nCOPY . /app/\n");
    support::built::write_files(
        &context,
        &[
            ("a", "aaaa"),
            ("d/b", "bbbb"),
            ("left-out", "x"),
            (".dockerignore", "left-out\n"),
        ],
    );
    let first = home.built(&context, &[]);
    // A rebuild of an unchanged context is a hit: the first build left
    // the COPY's key under its sources' stat identities.
    let hit = |why: &str| {
        let built = home.built(&context, &[]);
        assert!(
            built.stderr.contains(" CACHED\n"),
            "{why}: {}",
            built.stderr
        );
        built
    };
    let miss = |why: &str| {
        let built = home.built(&context, &[]);
        assert!(
            !built.stderr.contains(" CACHED\n"),
            "{why}: {}",
            built.stderr
        );
        built
    };
    assert_eq!(hit("unchanged").manifest, first.manifest);

    // Rewritten with the same size and its mtime set back: only the
    // ctime tells.
    let a = context.join("a");
    let mtime = std::fs::metadata(&a).unwrap().modified().unwrap();
    std::fs::write(&a, "AAAA").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&a)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(miss("content").text("app/a"), "AAAA");
    hit("unchanged after the edit");

    // The mode, a rename, a file added, and one that .dockerignore lets in.
    let b = context.join("d/b");
    std::fs::set_permissions(&b, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    assert_eq!(miss("mode").mode("app/d/b"), 0o600);
    std::fs::rename(&b, context.join("d/c")).unwrap();
    let renamed = miss("rename");
    assert!(!renamed.has("app/d/b") && renamed.text("app/d/c") == "bbbb");
    std::fs::write(context.join("d/new"), "new").unwrap();
    assert_eq!(miss("added").text("app/d/new"), "new");
    std::fs::write(context.join(".dockerignore"), "").unwrap();
    assert_eq!(miss(".dockerignore").text("app/left-out"), "x");

    // A change the layer does not carry (the owner: COPY makes files
    // root's) changes the identities but not the key: still a hit, the
    // same image.
    let before = hit("unchanged again");
    std::os::unix::fs::chown(context.join("d/new"), Some(1000), Some(1000)).unwrap();
    assert_eq!(hit("owner").manifest, before.manifest);
}
