//! The filesystem side of image fidelity: the directories a COPY, ADD or
//! WORKDIR writes into keep the mode and owner the image has for them (in
//! the layer, in the next step's rootfs, in the final image), `--chown`
//! owns the parents it makes, WORKDIR resolves symlinks inside the rootfs,
//! and the config keeps WORKDIR as written; on overlays and on the copy
//! path alike. Each expectation is what BuildKit 0.8 gives for the same
//! Dockerfile. Needs root; skipped otherwise.

mod support;

use std::path::Path;

use support::build::{Home, TarEntry, can_build, layout_image, layout_layer_entries, stderr_of};

const SNAPSHOTTERS: [&str; 2] = ["overlay", "copy"];

/// A stage `base` with busybox's applets, root and nobody in `/etc/passwd`
/// and `/etc/group` (as the busybox image has them), and the `/tmp`
/// images have (1777).
const BASE: &str = "FROM scratch AS base
COPY busybox /bin/busybox
RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]
RUN mkdir -p /etc /tmp /root && chmod 1777 /tmp && \\
    printf 'root:x:0:0:root:/root:/bin/sh\\nnobody:x:65534:65534:nobody:/home:/bin/false\\n' > /etc/passwd && \\
    printf 'root:x:0:\\nnogroup:x:65534:\\n' > /etc/group
";

/// Builds `context` (target `target` when given) with `snapshotter` into
/// an OCI layout and a local directory under `home`; returns the layout's
/// path. The build must succeed.
fn build(
    home: &Home,
    context: &Path,
    snapshotter: &str,
    target: Option<&str>,
) -> std::path::PathBuf {
    let name = format!("{snapshotter}-{}", target.unwrap_or("last"));
    let layout = home.path(&format!("layout-{name}"));
    let out = home.path(&format!("out-{name}"));
    let mut args = vec![
        "-o".to_owned(),
        format!("type=oci,tar=false,dest={}", layout.display()),
        "-o".to_owned(),
        format!("type=local,dest={}", out.display()),
    ];
    if let Some(target) = target {
        args.extend(["--target".to_owned(), target.to_owned()]);
    }
    args.push(context.display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let built = home
        .build(&args)
        .env("BUILDER_SNAPSHOTTER", snapshotter)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{snapshotter} {target:?}: {}",
        stderr_of(&built)
    );
    layout
}

/// The entry `path` of a layer.
fn entry<'l>(layer: &'l [TarEntry], path: &str) -> &'l TarEntry {
    layer
        .iter()
        .find(|e| e.path.trim_end_matches('/') == path)
        .unwrap_or_else(|| panic!("no {path} in {layer:#?}"))
}

/// `(mode, uid, gid)` of an entry, mode without the file type.
fn meta(entry: &TarEntry) -> (u32, u64, u64) {
    (entry.mode & 0o7777, entry.uid, entry.gid)
}

#[test]
fn copy_and_workdir_into_existing_directories_keep_their_mode_and_owner() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "ctx",
        &format!(
            "{BASE}
FROM base
RUN mkdir -p /app && chown 1000:1000 /app && chmod 750 /app
COPY f /tmp/
COPY f /app/
WORKDIR /app/sub
RUN --mount=type=tmpfs,target=/app/cache/x --mount=type=tmpfs,target=/tmp/m/n true
RUN [ \"$(stat -c %a /tmp)\" = 1777 ] && [ \"$(stat -c %u:%g:%a /app)\" = 1000:1000:750 ] && \\
    [ ! -e /app/cache ] && [ ! -e /tmp/m ] && touch /tmp/made /app/made
"
        ),
    );
    std::fs::write(context.join("f"), "f\n").unwrap();
    for snapshotter in SNAPSHOTTERS {
        let layout = build(&home, &context, snapshotter, None);
        let layers = layout_layer_entries(&layout);
        // busybox, applets, /etc, RUN /app, COPY /tmp, COPY /app, WORKDIR, RUN
        // (the RUN with mounts changed nothing: its targets are in no layer).
        assert_eq!(layers.len(), 8, "{snapshotter}: {layers:#?}");
        // As BuildKit's layers: the existing parents with their metadata.
        assert_eq!(
            meta(entry(&layers[4], "tmp")),
            (0o1777, 0, 0),
            "{snapshotter}"
        );
        assert_eq!(
            meta(entry(&layers[5], "app")),
            (0o750, 1000, 1000),
            "{snapshotter}"
        );
        assert_eq!(
            meta(entry(&layers[6], "app")),
            (0o750, 1000, 1000),
            "{snapshotter}"
        );
        assert_eq!(
            meta(entry(&layers[6], "app/sub")),
            (0o755, 0, 0),
            "{snapshotter}"
        );
        // The RUN after them saw them so, and its layer says so too.
        assert_eq!(
            meta(entry(&layers[7], "tmp")),
            (0o1777, 0, 0),
            "{snapshotter}"
        );
        assert_eq!(
            meta(entry(&layers[7], "app")),
            (0o750, 1000, 1000),
            "{snapshotter}"
        );
        let out = home.path(&format!("out-{snapshotter}-last"));
        let tmp = std::fs::metadata(out.join("tmp")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&tmp.permissions()) & 0o7777,
            0o1777
        );
    }
}

/// moby's `integration/build/testdata/Dockerfile.TestBuildPreserveOwnership`,
/// on a base made from the static busybox (which has no `addgroup` or
/// `adduser`: the account lines are written as they would write them).
#[test]
fn copy_from_a_stage_preserves_ownership_as_moby_tests_it() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "ctx",
        &format!(
            "{BASE}
FROM base as source
RUN echo group:x:1000: >> /etc/group && echo user:x:1000:1000::/home/user:/bin/sh >> /etc/passwd && \\
    mkdir -p /bin/foo/bar && \\
    chown -R 1000:1000 /bin/foo && \\
    touch /bin/foo/bar/baz && \\
    chown 1000:1000 /bin/foo/bar/baz

FROM base as test1
RUN echo group:x:1000: >> /etc/group && echo user:x:1000:1000::/home/user:/bin/sh >> /etc/passwd
COPY --from=source /bin/foo /bin/foo
RUN [ $(stat -c %U:%G /bin/foo) = 'root:root' ] && \\
    [ $(stat -c %U:%G /bin/foo/bar) = 'user:group' ] && \\
    [ $(stat -c %U:%G /bin/foo/bar/baz) = 'user:group' ]

FROM base as test2
RUN echo group:x:1000: >> /etc/group && echo user:x:1000:1000::/home/user:/bin/sh >> /etc/passwd
COPY --from=source --chown=user:group /bin/foo /bin/foo
RUN [ $(stat -c %U:%G /bin/foo) = 'user:group' ] && \\
    [ $(stat -c %U:%G /bin/foo/bar) = 'user:group' ] && \\
    [ $(stat -c %U:%G /bin/foo/bar/baz) = 'user:group' ]
"
        ),
    );
    for snapshotter in SNAPSHOTTERS {
        for target in ["test1", "test2"] {
            build(&home, &context, snapshotter, Some(target));
        }
    }
}

#[test]
fn chown_owns_the_parents_copy_makes() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "ctx",
        &format!(
            "{BASE}
FROM base
COPY --chown=65534 --chmod=755 a b /c/c1/
COPY --chown=65534 a /d/d1/
COPY --chown=65534 a /e/e1/e2
COPY --chown=65534:7 --chmod=700 a /g/g1/
"
        ),
    );
    std::fs::write(context.join("a"), "a\n").unwrap();
    std::fs::write(context.join("b"), "b\n").unwrap();
    for snapshotter in SNAPSHOTTERS {
        let layers = layout_layer_entries(&build(&home, &context, snapshotter, None));
        let nobody = |mode| (mode, 65534, 65534);
        let listed = |layer: &[TarEntry]| -> Vec<(String, (u32, u64, u64))> {
            layer
                .iter()
                .map(|e| (e.path.trim_end_matches('/').to_owned(), meta(e)))
                .collect()
        };
        let expect = |entries: &[(&str, (u32, u64, u64))]| -> Vec<(String, (u32, u64, u64))> {
            entries.iter().map(|(p, m)| ((*p).to_owned(), *m)).collect()
        };
        assert_eq!(
            listed(&layers[3]),
            expect(&[
                ("c", nobody(0o755)),
                ("c/c1", nobody(0o755)),
                ("c/c1/a", nobody(0o755)),
                ("c/c1/b", nobody(0o755)),
            ]),
            "{snapshotter}"
        );
        assert_eq!(
            listed(&layers[4]),
            expect(&[
                ("d", nobody(0o755)),
                ("d/d1", nobody(0o755)),
                ("d/d1/a", nobody(0o644)),
            ]),
            "{snapshotter}"
        );
        assert_eq!(
            listed(&layers[5]),
            expect(&[
                ("e", nobody(0o755)),
                ("e/e1", nobody(0o755)),
                ("e/e1/e2", nobody(0o644)),
            ]),
            "{snapshotter}"
        );
        assert_eq!(
            listed(&layers[6]),
            expect(&[
                ("g", (0o755, 65534, 7)),
                ("g/g1", (0o755, 65534, 7)),
                ("g/g1/a", (0o700, 65534, 7)),
            ]),
            "{snapshotter}"
        );
    }
}

#[test]
fn chown_owns_the_parents_copy_from_a_stage_and_add_make() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "ctx",
        &format!(
            "{BASE}
FROM base AS s0
RUN mkdir -p /opt/o/d7/e && echo x > /opt/o/d7/e/f && echo y > /opt/o/f1
FROM base
COPY --from=s0 --chown=33 /opt/o/d7 /from/c9
COPY --from=s0 --chown=33 /opt/o/f1 /fromf/n1/n2/
ADD --chown=33 a /addf/n1/n2/
"
        ),
    );
    std::fs::write(context.join("a"), "a\n").unwrap();
    // BuildKit 0.8 (its layers, read from `docker save`) owns every entry
    // 33:33, the directories made on the way included.
    let layers = layout_layer_entries(&build(&home, &context, "overlay", None));
    let listed = |layer: &[TarEntry]| -> Vec<(String, (u32, u64, u64))> {
        layer
            .iter()
            .map(|e| (e.path.trim_end_matches('/').to_owned(), meta(e)))
            .collect()
    };
    let owned = |paths: &[(&str, u32)]| -> Vec<(String, (u32, u64, u64))> {
        paths
            .iter()
            .map(|(p, mode)| ((*p).to_owned(), (*mode, 33, 33)))
            .collect()
    };
    assert_eq!(
        listed(&layers[3]),
        owned(&[
            ("from", 0o755),
            ("from/c9", 0o755),
            ("from/c9/e", 0o755),
            ("from/c9/e/f", 0o644)
        ])
    );
    assert_eq!(
        listed(&layers[4]),
        owned(&[
            ("fromf", 0o755),
            ("fromf/n1", 0o755),
            ("fromf/n1/n2", 0o755),
            ("fromf/n1/n2/f1", 0o644)
        ])
    );
    assert_eq!(
        listed(&layers[5]),
        owned(&[
            ("addf", 0o755),
            ("addf/n1", 0o755),
            ("addf/n1/n2", 0o755),
            ("addf/n1/n2/a", 0o644)
        ])
    );
}

#[test]
fn workdir_resolves_symlinks_inside_the_rootfs() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    // A merged-/usr layout: /lib -> usr/lib, the shell found through it;
    // /lib64 -> usr/lib64, which is missing.
    let context = home.context(
        "ctx",
        "FROM scratch AS base
COPY busybox /usr/lib/busybox
RUN [\"/usr/lib/busybox\", \"ln\", \"-s\", \"usr/lib\", \"/lib\"]
RUN [\"/lib/busybox\", \"mkdir\", \"/bin\"]
RUN [\"/lib/busybox\", \"ln\", \"-s\", \"/lib/busybox\", \"/bin/sh\"]
RUN /lib/busybox ln -s usr/lib64 /lib64

FROM base
WORKDIR /lib/myapp
RUN [ \"$(/lib/busybox readlink /lib)\" = usr/lib ] && [ -d /usr/lib/myapp ] && \\
    /lib/busybox touch made
WORKDIR /lib64/app
RUN [ \"$(/lib/busybox readlink /lib64)\" = usr/lib64 ] && [ -d /usr/lib64/app ]
",
    );
    for snapshotter in SNAPSHOTTERS {
        let layout = build(&home, &context, snapshotter, None);
        let layers = layout_layer_entries(&layout);
        let paths =
            |layer: &[TarEntry]| -> Vec<String> { layer.iter().map(|e| e.path.clone()).collect() };
        assert_eq!(
            paths(&layers[5]),
            ["usr/", "usr/lib/", "usr/lib/myapp/"],
            "{snapshotter}"
        );
        assert_eq!(
            paths(&layers[7]),
            ["usr/", "usr/lib64/", "usr/lib64/app/"],
            "{snapshotter}"
        );
        let out = home.path(&format!("out-{snapshotter}-last"));
        for (link, target) in [("lib", "usr/lib"), ("lib64", "usr/lib64")] {
            assert_eq!(
                std::fs::read_link(out.join(link)).unwrap(),
                Path::new(target)
            );
        }
        assert!(out.join("usr/lib/myapp/made").is_file());
        let (_, config) = layout_image(&layout);
        assert_eq!(config["config"]["WorkingDir"], "/lib64/app");
    }
}

#[test]
fn workdir_is_kept_as_written_and_relative_ones_are_joined() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "ctx",
        &format!(
            "{BASE}
FROM base AS abs
WORKDIR /usr/src/
RUN [ \"$(pwd)\" = /usr/src ]

FROM abs AS rel
WORKDIR a/
RUN [ \"$(pwd)\" = /usr/src/a ]

FROM abs AS dots
WORKDIR /x/../y/
RUN [ \"$(pwd)\" = /y ] && [ ! -e /x ]
"
        ),
    );
    let expected = [
        ("abs", "/usr/src/"),
        ("rel", "/usr/src/a"),
        ("dots", "/x/../y/"),
    ];
    for (target, workdir) in expected {
        let layout = build(&home, &context, "overlay", Some(target));
        let (_, config) = layout_image(&layout);
        assert_eq!(config["config"]["WorkingDir"], workdir, "{target}");
        let history: Vec<&str> = config["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|h| h["created_by"].as_str())
            .collect();
        assert!(
            history.contains(&format!("WORKDIR {workdir}").as_str()),
            "{target}: {history:?}"
        );
    }
}
