//! Chroot isolation (`--isolation=chroot`), for hosts that refuse
//! namespaces and mounts: builder run under a seccomp filter that refuses
//! them (see `support::refused`) probes the sandbox, says once that steps
//! run chrooted instead, and builds the same images as the sandbox does,
//! as root and as an unprivileged user; `RUN --mount`s are stood in for by
//! files moved in and out; what it cannot give is refused, naming the line.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::build::{Home, NOBODY, can_build, give_to_nobody, tree_listing};
use support::refused::{Refused, refusing};

/// How builder is started.
#[derive(Clone, Copy)]
enum Host {
    /// As it is.
    Plain,
    /// Under the filter, as root or as uid `NOBODY`.
    Refusing(Refused, Option<u32>),
}

/// `builder build --progress plain ARGS… CONTEXT` with `home`'s store and
/// `store` as its name, as `host` says; SOURCE_DATE_EPOCH is set so that
/// two builds of the same steps make the same image.
fn build(home: &Home, store: &str, host: Host, args: &[&str], context: &Path) -> Output {
    command(home, store, host, args, context).output().unwrap()
}

/// The command [`build`] runs.
fn command(home: &Home, store: &str, host: Host, args: &[&str], context: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_builder"));
    cmd.env_clear()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("HOME", home.dir.path())
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("TMPDIR", "/tmp")
        .arg("--root")
        .arg(home.path(store))
        .args(["build", "--progress", "plain"])
        .args(args)
        .arg(context)
        .current_dir("/");
    if let Host::Refusing(refused, uid) = host {
        refusing(&mut cmd, refused, uid);
    }
    cmd
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The image ID builder wrote to `--iidfile`.
fn iid(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

const NOTICE: &str = "steps run with --isolation=chroot";

/// Builds `context` as the sandbox does and under the filter (the
/// fallback) and with `--isolation=chroot`; returns the three image IDs.
fn three_ways(home: &Home, context: &Path, name: &str) -> [String; 3] {
    let mut ids = Vec::new();
    for (run, host, isolation) in [
        ("oci", Host::Plain, "default"),
        ("fallback", Host::Refusing(Refused::All, None), "default"),
        ("chroot", Host::Plain, "chroot"),
    ] {
        let iidfile = home.path(&format!("{name}-{run}.iid"));
        let out = build(
            home,
            &format!("store-{name}-{run}"),
            host,
            &[
                "--isolation",
                isolation,
                "--iidfile",
                iidfile.to_str().unwrap(),
            ],
            context,
        );
        let text = stderr(&out);
        assert!(out.status.success(), "{name} {run}: {text}");
        let notices = text.matches(NOTICE).count();
        match run {
            "fallback" => {
                assert_eq!(notices, 1, "{name}: said once\n{text}");
                assert!(text.contains("unsharing"), "{name}: says why\n{text}");
            }
            _ => assert_eq!(notices, 0, "{name} {run}: {text}"),
        }
        ids.push(iid(&iidfile));
    }
    ids.try_into().unwrap()
}

#[test]
fn refused_namespaces_fall_back_to_chroot_and_the_images_are_the_sandboxs() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    for (name, context) in [
        ("hello", home.hello_context()),
        ("every", home.every_context()),
    ] {
        let [oci, fallback, chroot] = three_ways(&home, &context, name);
        // The same config, so the same layers (diff IDs) and history.
        assert_eq!(fallback, oci, "{name}: the fallback's image");
        assert_eq!(chroot, oci, "{name}: --isolation=chroot's image");
    }
}

#[test]
fn the_sandbox_alone_fails_where_namespaces_are_refused() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.hello_context();
    let out = build(
        &home,
        "store",
        Host::Refusing(Refused::All, None),
        &["--isolation", "oci"],
        &context,
    );
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("sandbox setup failed: unsharing the"),
        "{text}"
    );
    assert!(text.contains("Dockerfile:7"), "names the first RUN: {text}");
    assert!(!text.contains(NOTICE), "{text}");
}

#[test]
fn an_unprivileged_user_falls_back_to_chroot_in_a_user_namespace() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.hello_context();
    std::fs::set_permissions(
        home.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    give_to_nobody(home.dir.path());
    let (oci_id, chroot_id) = (home.path("oci.iid"), home.path("chroot.iid"));
    let oci = build(
        &home,
        "store-oci",
        Host::Refusing(Refused::AllButUserNamespaces, Some(NOBODY)),
        &["--isolation", "oci"],
        &context,
    );
    let text = stderr(&oci);
    if text.contains("unsharing the user namespace") {
        eprintln!("SKIPPED: the kernel refuses unprivileged user namespaces:\n{text}");
        return;
    }
    // Only mounts and the other namespaces are refused: the sandbox cannot.
    assert_eq!(oci.status.code(), Some(1), "{text}");

    let fallback = build(
        &home,
        "store-chroot",
        Host::Refusing(Refused::AllButUserNamespaces, Some(NOBODY)),
        &["--iidfile", chroot_id.to_str().unwrap()],
        &context,
    );
    let text = stderr(&fallback);
    assert!(fallback.status.success(), "{text}");
    assert_eq!(text.matches(NOTICE).count(), 1, "{text}");

    // Root's build in the sandbox: the layers record what the steps saw.
    let root = build(
        &home,
        "store-root",
        Host::Plain,
        &["--iidfile", oci_id.to_str().unwrap()],
        &context,
    );
    assert!(root.status.success(), "{}", stderr(&root));
    assert_eq!(
        iid(&chroot_id),
        iid(&oci_id),
        "the same image as root's sandbox"
    );

    // With no user namespace either, chroot cannot run as a user: said so.
    let refused = build(
        &home,
        "store-none",
        Host::Refusing(Refused::All, Some(NOBODY)),
        &[],
        &context,
    );
    let text = stderr(&refused);
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(
        text.contains("chroot isolation still needs a user namespace"),
        "{text}"
    );
    assert!(text.contains("run builder as root"), "{text}");
    assert!(text.contains("RUN steps cannot run here"), "{text}");
    assert!(
        !text.contains(NOTICE),
        "no notice of a fallback that cannot run: {text}"
    );
}

/// A context whose RUN step uses every mount type BuildKit has but ssh.
fn mounts_context(home: &Home) -> PathBuf {
    let context = home.context(
        "mounts",
        "FROM scratch\n\
         COPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         COPY hosts /etc/hosts\n\
         RUN mkdir -p /srv/keep && echo image > /srv/keep/file\n\
         RUN --mount=type=bind,target=/ctx,rw --mount=type=cache,target=/cache \\\n\
             --mount=type=tmpfs,target=/srv/keep --mount=type=secret,id=tok \\\n\
             cat /ctx/data.txt > /seen-bind && test ! -e /srv/keep/file && \\\n\
             cp /run/secrets/tok /srv/keep/ && grep -q buildkitsandbox /etc/hosts && \\\n\
             echo run >> /cache/count && wc -l < /cache/count > /seen-cache && \\\n\
             echo x > /ctx/written && echo > /dev/null\n",
    );
    std::fs::write(context.join("data.txt"), "from the context\n").unwrap();
    std::fs::write(context.join("hosts"), "image\n").unwrap();
    std::fs::write(home.path("tok"), "s3cret-value\n").unwrap();
    context
}

#[test]
fn mounts_are_moved_in_and_out_and_leave_the_sandboxs_layers() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = mounts_context(&home);
    let secret = format!("id=tok,src={}", home.path("tok").display());
    let mut ids = Vec::new();
    for (store, isolation) in [("store-oci", "oci"), ("store-chroot", "chroot")] {
        let iidfile = home.path(&format!("{store}.iid"));
        let out_dir = home.path(&format!("{store}-out"));
        for run in 1..=2 {
            let out = build(
                &home,
                store,
                Host::Plain,
                &[
                    "--isolation",
                    isolation,
                    "--no-cache",
                    "--secret",
                    &secret,
                    "--iidfile",
                    iidfile.to_str().unwrap(),
                    "-o",
                    &format!("type=local,dest={}", out_dir.display()),
                ],
                &context,
            );
            assert!(out.status.success(), "{isolation} {run}: {}", stderr(&out));
            let seen = |path: &str| std::fs::read_to_string(out_dir.join(path)).unwrap();
            assert_eq!(seen("seen-bind"), "from the context\n", "{isolation}");
            // The cache outlives the step, and the build.
            assert_eq!(seen("seen-cache").trim(), run.to_string(), "{isolation}");
            // What the mounts hid is the image's again; the rest is gone.
            assert_eq!(seen("srv/keep/file"), "image\n", "{isolation}");
            assert_eq!(seen("etc/hosts"), "image\n", "{isolation}");
            let listing = tree_listing(&out_dir).join("\n");
            for gone in ["ctx", "cache", "run", "srv/keep/tok", "dev/null"] {
                assert!(
                    !out_dir.join(gone).exists(),
                    "{isolation}: /{gone}\n{listing}"
                );
            }
            for entry in walk(&out_dir) {
                let bytes = std::fs::read(&entry).unwrap_or_default();
                assert!(
                    !String::from_utf8_lossy(&bytes).contains("s3cret-value"),
                    "{isolation}: the secret is in {}",
                    entry.display()
                );
            }
        }
        assert!(
            !context.join("written").exists(),
            "a bind's writes are dropped"
        );
        ids.push(iid(&iidfile));
    }
    assert_eq!(ids[0], ids[1], "chroot's image is the sandbox's");
}

/// Every regular file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files.extend(walk(&entry.path()));
        } else if kind.is_file() {
            files.push(entry.path());
        }
    }
    files
}

#[test]
fn a_step_chroot_cannot_isolate_is_refused_naming_its_line() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "none",
        "FROM scratch\n\
         COPY busybox /bin/busybox\n\
         RUN --network=none [\"/bin/busybox\", \"true\"]\n",
    );
    let out = build(
        &home,
        "store",
        Host::Plain,
        &["--isolation", "chroot"],
        &context,
    );
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("Dockerfile:3"), "{text}");
    assert!(
        text.contains(
            "RUN --network=none (or --network none) is not supported with chroot isolation"
        ),
        "{text}"
    );
    assert!(text.contains("--isolation=oci"), "{text}");
}

#[test]
fn a_mount_chroot_cannot_move_in_is_refused_naming_its_line() {
    if !can_build() {
        return;
    }
    // The ssh agent's socket is made in $TMPDIR; on another file system
    // than the store it cannot be moved into the step's rootfs.
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        eprintln!("SKIPPED: no /dev/shm to put $TMPDIR on another file system");
        return;
    }
    let home = Home::new();
    let agent = home.path("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&agent).unwrap();
    let context = home.context(
        "ssh",
        "FROM scratch\n\
         COPY busybox /bin/busybox\n\
         RUN --mount=type=ssh [\"/bin/busybox\", \"true\"]\n",
    );
    let out = command(
        &home,
        "store",
        Host::Plain,
        &["--isolation", "chroot", "--ssh", "default"],
        &context,
    )
    .env("TMPDIR", shm)
    .env("SSH_AUTH_SOCK", &agent)
    .output()
    .unwrap();
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("Dockerfile:3"), "{text}");
    assert!(
        text.contains(
            "RUN --mount with target /run/buildkit/ssh_agent.0: not supported with chroot isolation"
        ),
        "{text}"
    );
    assert!(text.contains("--isolation=oci"), "{text}");
}
