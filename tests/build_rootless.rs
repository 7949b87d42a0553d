//! `builder build` run by an unprivileged user (uid 65534) on
//! `fixtures/hello`: steps run in a user namespace where that user is root,
//! and the layers record what the step saw (0:0 for files its root made),
//! not the user who owns them on disk, on overlays and on the copy path
//! alike; secrets and an ssh agent reach its steps. The test itself must
//! start as root
//! (to become 65534); it skips where the kernel refuses user namespaces.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use support::build::{Home, can_build, give_to_nobody, layout_layer_entries};

/// `builder build ARGS…` as uid 65534 with this home and store, RUN
/// steps on `snapshotter`.
fn build_as_nobody(home: &Home, snapshotter: &str, args: &[&str]) -> std::process::Output {
    home.build_as_nobody()
        .env("BUILDER_SNAPSHOTTER", snapshotter)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn an_unprivileged_user_builds_hello_and_its_layers_are_owned_by_root() {
    if !can_build() {
        return;
    }
    let mut layers_by_snapshotter = Vec::new();
    for snapshotter in ["overlay", "copy"] {
        match build_hello_as_nobody(snapshotter) {
            Some(layers) => layers_by_snapshotter.push(layers),
            None => return,
        }
    }
    assert_eq!(
        layers_by_snapshotter[0], layers_by_snapshotter[1],
        "the copy path writes the same layers"
    );
}

/// Builds `fixtures/hello` as uid 65534 and checks what a user sees;
/// returns the layers' entries (`None`: user namespaces are refused).
fn build_hello_as_nobody(snapshotter: &str) -> Option<Vec<Vec<support::build::TarEntry>>> {
    let home = Home::new();
    let context = home.hello_context();
    std::fs::set_permissions(home.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    give_to_nobody(home.dir.path());
    let out = home.path("out");
    let layout = home.path("layout");
    let built = build_as_nobody(
        &home,
        snapshotter,
        &[
            "-o",
            &format!("type=local,dest={}", out.display()),
            "-o",
            &format!("type=oci,tar=false,dest={}", layout.display()),
            context.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&built.stderr);
    if stderr.contains("unsharing the user namespace") {
        eprintln!("SKIPPED: the kernel refuses unprivileged user namespaces:\n{stderr}");
        return None;
    }
    assert!(built.status.success(), "{snapshotter}: {stderr}");
    assert!(stderr.contains("7 steps run, 0 cached"), "{stderr}");
    // Where overlayfs refuses this user, the copy path runs: said once.
    assert!(
        stderr.matches("overlayfs cannot be mounted").count() <= 1,
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("srv/app/greeting.txt")).unwrap(),
        "hello from builder\n"
    );
    assert_eq!(
        std::fs::read_link(out.join("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    let app = std::fs::metadata(out.join("srv/app/app.sh")).unwrap();
    assert_eq!(app.permissions().mode() & 0o111, 0o111, "RUN chmod +x ran");
    // One line says the exported files keep the user's own owner.
    assert_eq!(
        stderr.matches("keep the exporting user as owner").count(),
        1,
        "{stderr}"
    );

    let layers = layout_layer_entries(&layout);
    assert_eq!(layers.len(), 6, "COPY, RUN, WORKDIR, COPY, COPY, RUN");
    let not_root: Vec<_> = layers
        .iter()
        .flatten()
        .filter(|e| e.uid != 0 || e.gid != 0)
        .collect();
    assert!(
        not_root.is_empty(),
        "entries not owned by 0:0: {not_root:?}"
    );
    // The RUN layers are there with their files (made by the step's root).
    assert!(layers[1].iter().any(|e| e.path == "bin/sh"));
    assert!(
        layers[5]
            .iter()
            .any(|e| e.path == "srv/app/app.sh" && e.mode & 0o111 == 0o111)
    );

    // A second build is served from the cache.
    let again = build_as_nobody(
        &home,
        snapshotter,
        &["-o", out.to_str().unwrap(), context.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(stderr.contains("0 steps run, 7 cached"), "{stderr}");
    Some(layers)
}

#[test]
fn an_archive_added_rootless_keeps_roots_files_as_roots() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("add", "FROM scratch\nADD files.tar /x/\n");
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(3);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_cksum();
    archive
        .append_data(&mut header, "hi.txt", &b"hi\n"[..])
        .unwrap();
    std::fs::write(context.join("files.tar"), archive.into_inner().unwrap()).unwrap();
    std::fs::set_permissions(home.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    give_to_nobody(home.dir.path());
    let layout = home.path("layout");
    let built = build_as_nobody(
        &home,
        "overlay",
        &[
            "-o",
            &format!("type=oci,tar=false,dest={}", layout.display()),
            context.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert!(built.status.success(), "{stderr}");
    let layers = layout_layer_entries(&layout);
    let entries: Vec<(String, u64, u64)> = layers
        .iter()
        .flatten()
        .map(|e| (e.path.clone(), e.uid, e.gid))
        .collect();
    assert_eq!(
        entries,
        [("x/".to_owned(), 0, 0), ("x/hi.txt".to_owned(), 0, 0)]
    );
}

/// RUN --mount as uid 65534: a cache owned by the step's root, a bound file
/// and a tmpfs at paths the image lacks; nothing of them is left in the
/// image, on overlays and on the copy path alike.
#[test]
fn an_unprivileged_user_mounts_caches_binds_and_tmpfs() {
    if !can_build() {
        return;
    }
    for snapshotter in ["overlay", "copy"] {
        let home = Home::new();
        let dockerfile = "FROM scratch\nCOPY busybox /bin/busybox\n\
            RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
            RUN --mount=type=tmpfs,target=/new/t --mount=type=bind,source=busybox,target=/etc/b/bb \
            --mount=type=cache,target=/var/c,uid=0,mode=0700 \
            test -x /etc/b/bb && stat -c '%u %a' /var/c > /cache-owner\n";
        let context = home.context("mounts", dockerfile);
        std::fs::set_permissions(home.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        give_to_nobody(home.dir.path());
        let out = home.path("out");
        let built = build_as_nobody(
            &home,
            snapshotter,
            &["-o", out.to_str().unwrap(), context.to_str().unwrap()],
        );
        let stderr = String::from_utf8_lossy(&built.stderr);
        if stderr.contains("unsharing the user namespace") {
            eprintln!("SKIPPED: the kernel refuses unprivileged user namespaces:\n{stderr}");
            return;
        }
        assert!(built.status.success(), "{snapshotter}: {stderr}");
        assert_eq!(
            std::fs::read_to_string(out.join("cache-owner")).unwrap(),
            "0 700\n"
        );
        for gone in ["new", "etc", "var"] {
            assert!(
                !out.join(gone).exists(),
                "{snapshotter}: /{gone} is in the image"
            );
        }
    }
}

#[test]
fn an_unprivileged_user_passes_secrets_and_its_agent_to_steps() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = "FROM scratch\nCOPY busybox /bin/busybox\n\
        RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
        RUN --mount=type=secret,id=tok,required stat -c '%a %u %g' /run/secrets/tok > /tok.stat \
            && wc -c < /run/secrets/tok > /tok.len\n\
        RUN --mount=type=secret,id=tok,env=TOK printf %s \"$TOK\" | wc -c > /env.len\n\
        RUN --mount=type=ssh,required stat -c '%a %u %g %F' \"$SSH_AUTH_SOCK\" > /ssh.stat\n";
    let context = home.context("secrets", dockerfile);
    let value = "rootless-secret-4b1d9e0c";
    std::fs::write(home.path("tok.txt"), value).unwrap();
    // The agent's socket is the user's own, as an agent's is.
    let agent = home.path("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&agent).unwrap();
    std::fs::set_permissions(home.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    give_to_nobody(home.dir.path());
    let out = home.path("out");
    let built = build_as_nobody(
        &home,
        "overlay",
        &[
            "--secret",
            &format!("id=tok,src={}", home.path("tok.txt").display()),
            "--ssh",
            &format!("default={}", agent.display()),
            "-o",
            out.to_str().unwrap(),
            context.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&built.stderr);
    if stderr.contains("unsharing the user namespace") {
        eprintln!("SKIPPED: the kernel refuses unprivileged user namespaces:\n{stderr}");
        return;
    }
    assert!(built.status.success(), "{stderr}");
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    assert_eq!(read("tok.stat"), "400 0 0\n");
    assert_eq!(read("tok.len").trim(), value.len().to_string());
    assert_eq!(read("env.len").trim(), value.len().to_string());
    assert_eq!(read("ssh.stat"), "600 0 0 socket\n");
    assert!(!out.join("run").exists());
    assert!(!stderr.contains(value));
}

#[test]
fn an_unprivileged_users_copy_into_tmp_keeps_its_mode() {
    if !can_build() {
        return;
    }
    for snapshotter in ["overlay", "copy"] {
        let home = Home::new();
        let dockerfile = "FROM scratch\nCOPY busybox /bin/busybox\n\
            RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
            RUN mkdir -p /tmp && chmod 1777 /tmp\n\
            COPY f /tmp/\n\
            RUN [ \"$(stat -c %a /tmp)\" = 1777 ] && touch /tmp/made\n";
        let context = home.context("tmp", dockerfile);
        std::fs::write(context.join("f"), "f\n").unwrap();
        std::fs::set_permissions(home.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        give_to_nobody(home.dir.path());
        let layout = home.path("layout");
        let built = build_as_nobody(
            &home,
            snapshotter,
            &[
                "-o",
                &format!("type=oci,tar=false,dest={}", layout.display()),
                context.to_str().unwrap(),
            ],
        );
        let stderr = String::from_utf8_lossy(&built.stderr);
        if stderr.contains("unsharing the user namespace") {
            eprintln!("SKIPPED: the kernel refuses unprivileged user namespaces:\n{stderr}");
            return;
        }
        assert!(built.status.success(), "{snapshotter}: {stderr}");
        // The COPY's layer and the RUN's after it carry /tmp as it is, as BuildKit's do.
        let layers = layout_layer_entries(&layout);
        assert_eq!(layers.len(), 5, "COPY, RUN, RUN, COPY, RUN");
        for layer in &layers[3..] {
            let tmp = layer.iter().find(|e| e.path == "tmp/").unwrap();
            assert_eq!(
                (tmp.mode & 0o7777, tmp.uid, tmp.gid),
                (0o1777, 0, 0),
                "{snapshotter}"
            );
        }
    }
}

/// Without a subordinate range (uid 65534 has none), one warning says
/// which owners cannot be kept, and a step whose chown fails with EINVAL
/// gets a hint naming `/etc/subuid`.
#[test]
fn without_a_range_the_build_says_which_owners_it_cannot_keep() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = "FROM scratch\nCOPY busybox /bin/busybox\n\
        RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
        RUN touch /x && chown 1000:1000 /x\n";
    let context = home.context("chown", dockerfile);
    std::fs::set_permissions(home.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    give_to_nobody(home.dir.path());
    let built = build_as_nobody(&home, "overlay", &[context.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&built.stderr);
    if stderr.contains("unsharing the user namespace") {
        eprintln!("SKIPPED: the kernel refuses unprivileged user namespaces:\n{stderr}");
        return;
    }
    assert_eq!(built.status.code(), Some(1), "{stderr}");
    let warning = "warning: rootless without a subordinate ID range (uid 65534 has none in \
        /etc/subuid and /etc/subgid";
    assert_eq!(stderr.matches(warning).count(), 1, "{stderr}");
    assert!(
        stderr.find(warning) < stderr.find("[2/4] COPY"),
        "said before the steps: {stderr}"
    );
    assert!(stderr.contains("Invalid argument"), "{stderr}");
    let hint = "hint: this rootless build maps only your own user (root in the step), so chown \
        to any other owner fails with EINVAL; grant your user a range in /etc/subuid and \
        /etc/subgid";
    assert_eq!(stderr.matches(hint).count(), 1, "{stderr}");
}

/// As uid 65534: `--ulimit` within the user's hard limits applies,
/// `--ulimit nproc` binds the step's root (the user, on the host), and
/// where no cgroup can be made for steps the build says so once.
#[test]
fn an_unprivileged_users_steps_get_their_ulimits() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "limits",
        "FROM scratch\nCOPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         RUN echo \"nofile $(ulimit -n) $(ulimit -Hn)\"\n\
         RUN i=0; while [ $i -lt 100 ]; do sleep 300 & i=$((i+1)); done; echo \"started $i\"\n",
    );
    std::fs::set_permissions(home.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    give_to_nobody(home.dir.path());
    let built = build_as_nobody(
        &home,
        "overlay",
        &[
            "--ulimit",
            "nofile=512:1024",
            "--ulimit",
            "nproc=30:30",
            context.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&built.stderr);
    if stderr.contains("unsharing the user namespace") {
        eprintln!("SKIPPED: the kernel refuses unprivileged user namespaces:\n{stderr}");
        return;
    }
    assert_eq!(built.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(" nofile 512 1024\n"), "{stderr}");
    assert!(!stderr.contains("started 100"), "{stderr}");
    assert!(
        stderr
            .matches("steps run without a cgroup of their own")
            .count()
            <= 1,
        "{stderr}"
    );
}

/// As uid 65534 with `BUILDER_PIDS_LIMIT=30`: a step cannot start 100
/// processes, in a cgroup where one is delegated, else through the
/// `nproc` rlimit of its own user namespace (which the build says once).
#[test]
fn an_unprivileged_users_fork_bomb_stops_at_the_pids_limit() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "bomb",
        "FROM scratch\nCOPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         RUN i=0; while [ $i -lt 100 ]; do sleep 300 & i=$((i+1)); done; echo \"started $i\"\n",
    );
    std::fs::set_permissions(home.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    give_to_nobody(home.dir.path());
    let built = home
        .build_as_nobody()
        .env("BUILDER_PIDS_LIMIT", "30")
        .arg(&context)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&built.stderr);
    if stderr.contains("unsharing the user namespace") {
        eprintln!("SKIPPED: the kernel refuses unprivileged user namespaces:\n{stderr}");
        return;
    }
    assert_eq!(built.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("started 100"), "{stderr}");
    assert!(
        stderr.contains("Resource temporarily unavailable"),
        "{stderr}"
    );
    let said = stderr
        .matches("steps run without a cgroup of their own")
        .count();
    assert!(said <= 1, "{stderr}");
    if said == 1 {
        assert!(
            stderr.contains("the process limit holds as an nproc rlimit"),
            "{stderr}"
        );
    }
}

/// A base layer claiming `user.overlay.opaque` (what rootless overlays,
/// mounted with `userxattr`, read) hides nothing from a rootless step.
#[test]
fn an_unprivileged_users_steps_see_through_a_base_layers_overlay_xattrs() {
    if !can_build() {
        return;
    }
    let Some(registry) = support::registry::Registry::start() else {
        return;
    };
    let base = support::image::BaseImage::busybox_with_layer(
        &registry,
        "xattrs",
        support::image::overlay_xattr_layer(),
    );
    let home = Home::new();
    let context = home.context(
        "xattrs",
        &format!("FROM {}\nRUN cat /etc/passwd\n", base.reference),
    );
    std::fs::set_permissions(home.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    give_to_nobody(home.dir.path());
    let built = build_as_nobody(&home, "overlay", &[context.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&built.stderr);
    if stderr.contains("unsharing the user namespace") {
        eprintln!("SKIPPED: the kernel refuses unprivileged user namespaces:\n{stderr}");
        return;
    }
    assert!(built.status.success(), "{stderr}");
    assert!(stderr.contains(" root:x:0:0:"), "{stderr}");
}
