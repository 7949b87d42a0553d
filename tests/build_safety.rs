//! Builds stay safe on hostile input and on interruption: a base image
//! whose layer escapes its root (`../` names, an absolute symlink and a
//! file written through it) changes nothing outside; RUN does not see the
//! host's files and `--network=none` has only `lo`; a build killed in a
//! RUN (SIGINT, SIGKILL) leaves no corrupt blob, no cache record, no mount
//! and nothing in `$TMPDIR` (`builder prune` clears what SIGKILL left in
//! the store's `tmp/`), and the next build reuses the steps before it;
//! builds with
//! `SOURCE_DATE_EPOCH` are reproducible byte for byte. Needs root (and
//! Debian's docker-registry for the hostile base); skipped otherwise.

mod support;

use builder::digest::sha256;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use support::build::{Home, can_build, stderr_of};
use support::image::{BaseImage, NET_RAW, overlay_xattr_layer};
use support::registry::Registry;

const BASE: &str = "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";

/// A tar header with `name` (and `link`) written byte for byte, as a
/// hostile tool would: the tar crate's path checks are bypassed.
fn raw_header(kind: tar::EntryType, name: &str, link: &str, size: u64) -> tar::Header {
    let mut header = tar::Header::new_old();
    header.set_entry_type(kind);
    header.set_mode(if kind == tar::EntryType::Symlink {
        0o777
    } else {
        0o644
    });
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    let old = header.as_old_mut();
    old.name[..name.len()].copy_from_slice(name.as_bytes());
    old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    header.set_cksum();
    header
}

/// Layers that try to write into `sentinel` (a directory outside the
/// store), with the entry that does it: one by a `../` name deep enough
/// to reach `/` from anywhere, one by an absolute symlink to it and a
/// file written through the link.
fn evil_layers(sentinel: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let data = b"escaped\n";
    let dotdot = format!(
        "{}{}/dotdot",
        "../".repeat(16),
        sentinel.display().to_string().trim_start_matches('/')
    );
    let mut climbing = tar::Builder::new(Vec::new());
    climbing
        .append(
            &raw_header(tar::EntryType::Regular, &dotdot, "", data.len() as u64),
            &data[..],
        )
        .unwrap();
    let mut through_link = tar::Builder::new(Vec::new());
    let target = sentinel.display().to_string();
    through_link
        .append(
            &raw_header(tar::EntryType::Symlink, "escape-link", &target, 0),
            std::io::empty(),
        )
        .unwrap();
    through_link
        .append(
            &raw_header(
                tar::EntryType::Regular,
                "escape-link/through",
                "",
                data.len() as u64,
            ),
            &data[..],
        )
        .unwrap();
    vec![
        ("dotdot", climbing.into_inner().unwrap()),
        ("escape-link/through", through_link.into_inner().unwrap()),
    ]
}

#[test]
fn a_base_layer_escaping_its_root_changes_nothing_outside() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let sentinel = tempfile::Builder::new()
        .prefix("builder-sentinel-")
        .tempdir_in("/tmp")
        .unwrap();
    for (index, (entry, layer)) in evil_layers(sentinel.path()).into_iter().enumerate() {
        let evil = BaseImage::busybox_with_layer(&registry, &format!("evil{index}"), layer);
        let home = Home::new();
        let context = home.context(
            "evil",
            &format!(
                "FROM {}\nRUN echo ran > /ran; ls -la / /escape-link/; true\n",
                evil.reference
            ),
        );
        let out = home.path("out");
        let output = home
            .build(&["-o", out.to_str().unwrap(), context.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = stderr_of(&output);
        let escaped: Vec<_> = std::fs::read_dir(sentinel.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(escaped.is_empty(), "written outside: {escaped:?}\n{stderr}");
        if output.status.success() {
            // Contained: nothing reached the sentinel through the link.
            assert!(out.join("ran").is_file(), "{stderr}");
        } else {
            // Refused: the error names the entry.
            assert_eq!(output.status.code(), Some(1), "{stderr}");
            assert!(
                stderr.contains(&format!("tar entry `{entry}`"))
                    || stderr.contains(&format!("/{entry}`")),
                "the error names `{entry}`: {stderr}"
            );
        }
    }
}

#[test]
fn a_base_layers_overlay_xattrs_change_nothing_a_step_or_export_sees() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let base = BaseImage::busybox_with_layer(&registry, "xattrs", overlay_xattr_layer());
    let home = Home::new();
    let context = home.context(
        "xattrs",
        &format!(
            "FROM {}
RUN cat /etc/passwd > /passwd-seen
",
            base.reference
        ),
    );
    let out = home.path("out");
    let output = home
        .build(&["-o", out.to_str().unwrap(), context.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    // The base's /etc stays visible under the crafted layer's.
    assert!(output.status.success(), "{stderr}");
    assert!(out.join("passwd-seen").is_file(), "{stderr}");
    assert!(out.join("etc/passwd").is_file(), "{stderr}");
    let xattr = |path: &str, name: &str| {
        let mut value = vec![0u8; 256];
        rustix::fs::lgetxattr(out.join(path), name, &mut value[..])
            .ok()
            .map(|n| value[..n].to_vec())
    };
    assert_eq!(xattr("etc", "trusted.overlay.opaque"), None);
    assert_eq!(xattr("etc", "user.overlay.opaque"), None);
    assert_eq!(xattr("etc/tool", "trusted.overlay.redirect"), None);
    assert_eq!(
        xattr("etc/tool", "security.capability").as_deref(),
        Some(NET_RAW),
        "file capabilities are image content, as BuildKit keeps them"
    );
}

#[test]
fn run_does_not_see_host_files_and_network_none_has_only_loopback() {
    if !can_build() {
        return;
    }
    let host_file = tempfile::Builder::new()
        .prefix("builder-host-secret-")
        .tempfile_in("/tmp")
        .unwrap();
    std::fs::write(host_file.path(), "host secret\n").unwrap();
    let home = Home::new();
    let dockerfile = format!(
        "{BASE}RUN test ! -e {secret} && ! cat {secret}\n\
         RUN --network=none cat /proc/net/dev > /netdev\n",
        secret = host_file.path().display()
    );
    let context = home.context("isolation", &dockerfile);
    let out = home.path("out");
    home.build(&["-o", out.to_str().unwrap(), context.to_str().unwrap()])
        .assert()
        .success();
    let netdev = std::fs::read_to_string(out.join("netdev")).unwrap();
    let interfaces: Vec<&str> = netdev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(interfaces, ["lo"], "{netdev}");
}

/// A build of `context` (with `--build-arg NAP=…`) whose stderr is read
/// line by line, its `$TMPDIR` the home's `tmpdir/`.
fn spawn_build(home: &Home, context: &Path, nap: &str) -> Child {
    std::fs::create_dir_all(home.path("tmpdir")).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_builder"));
    command
        .env("HOME", home.dir.path())
        .env("TMPDIR", home.path("tmpdir"))
        .env("DOCKER_CONFIG", home.path("docker"))
        .env("BUILDER_ROOT", home.path("store"))
        .env_remove("SOURCE_DATE_EPOCH")
        .args(["build", "--progress", "plain", "--build-arg"])
        .arg(format!("NAP={nap}"))
        .arg(context)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command.spawn().unwrap()
}

/// Kills a build with `signal` once its sleeping RUN step has printed,
/// then checks the store and that the next build succeeds from cache.
fn interrupted_build_leaves_a_clean_store(signal: rustix::process::Signal) {
    let home = Home::new();
    let dockerfile = format!(
        "{BASE}RUN echo before > /before\n\
         ARG NAP\n\
         RUN echo nap-started && sleep $NAP && echo napped > /napped\n"
    );
    let context = home.context("interrupt", &dockerfile);
    let mut child = spawn_build(&home, &context, "600");
    let stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if line.ends_with(" nap-started") && !seen.contains(" nap-started\n") {
            let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
            rustix::process::kill_process(pid, signal).unwrap();
        }
        seen.push_str(&line);
        seen.push('\n');
    }
    let killed = child.id();
    let status = child.wait().unwrap();
    assert!(!status.success(), "{seen}");
    assert!(seen.contains("nap-started"), "the step started: {seen}");
    let store = home.path("store");
    let listing = |dir: &Path| -> Vec<_> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    };
    // Nothing of the step's sandbox is left outside the store.
    let left = listing(&home.path("tmpdir"));
    assert!(left.is_empty(), "left in $TMPDIR: {left:?}");
    if signal == rustix::process::Signal::KILL {
        // What the killed build left in the store's tmp/ goes with a prune.
        support::cli::builder(home.dir.path())
            .arg("prune")
            .assert()
            .success();
        let left = listing(&store.join("tmp"));
        assert!(left.is_empty(), "left in the store's tmp/: {left:?}");
    }
    if signal == rustix::process::Signal::INT {
        // Stopped cleanly: said so, and removed its scratch directories.
        assert_eq!(status.code(), Some(1), "{seen}");
        assert!(seen.contains("interrupted by SIGINT"), "{seen}");
        let left: Vec<_> = std::fs::read_dir(store.join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "left in the store's tmp/: {left:?}");
        // The cancelled step's cgroup went with it.
        let left = support::build::step_cgroups_of(killed);
        assert!(left.is_empty(), "step cgroups left: {left:?}");
    }

    // Every blob is what its name says.
    for entry in std::fs::read_dir(store.join("blobs/sha256")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            sha256(&bytes).to_string(),
            format!("sha256:{name}"),
            "a corrupt blob"
        );
    }
    // No record of the interrupted step.
    for entry in std::fs::read_dir(store.join("cache")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                !text.contains("sleep $NAP"),
                "{} records the killed step",
                path.display()
            );
        }
    }
    // No mount left under the store.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = store.display().to_string();
    assert!(
        !mounts.lines().any(|l| l.contains(&root)),
        "mounts left under {root}:\n{mounts}"
    );

    // The same build again: the earlier steps come from the cache, and the
    // step cgroup a killed builder could not remove is gone.
    let output = home
        .build(&["--build-arg", "NAP=0", context.to_str().unwrap()])
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = stderr_of(&output);
    assert!(stderr.contains("1 step run, 3 cached"), "{stderr}");
    let left = support::build::step_cgroups_of(killed);
    assert!(left.is_empty(), "step cgroups left: {left:?}");
}

#[test]
fn a_build_interrupted_by_sigint_leaves_a_clean_store() {
    if !can_build() {
        return;
    }
    interrupted_build_leaves_a_clean_store(rustix::process::Signal::INT);
}

#[test]
fn a_build_killed_by_sigkill_leaves_a_clean_store() {
    if !can_build() {
        return;
    }
    interrupted_build_leaves_a_clean_store(rustix::process::Signal::KILL);
}

#[test]
fn source_date_epoch_builds_are_reproducible() {
    if !can_build() {
        return;
    }
    let digests: Vec<(String, String)> = (0..2)
        .map(|_| {
            let home = Home::new();
            let context = home.hello_context();
            let metadata = home.path("metadata.json");
            home.build(&[
                "--metadata-file",
                metadata.to_str().unwrap(),
                context.to_str().unwrap(),
            ])
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .assert()
            .success();
            let meta: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&metadata).unwrap()).unwrap();
            (
                meta["containerimage.digest"].as_str().unwrap().to_owned(),
                meta["containerimage.config.digest"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(digests[0], digests[1]);
}
