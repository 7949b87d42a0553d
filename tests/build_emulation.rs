//! Builds for a platform this machine does not run (`--platform
//! linux/arm64` on amd64): `FROM` takes the arm64 manifest of an index and
//! RUN steps run under Debian's `qemu-aarch64-static`, which builder
//! registers with binfmt_misc in each step's own user namespace (no host
//! set-up), root and rootless. A crash names the emulator; a missing
//! emulator stops the build before any step, naming the package.
//!
//! Needs root, Debian's docker-registry and qemu-user-static, and the
//! arm64 busybox-static package `.ci/install` fetches into
//! `/var/cache/builder-tests`; skipped otherwise.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use support::build::{Home, can_build, give_to_nobody, layout_image, stderr_of};
use support::image::BaseImage;
use support::registry::Registry;
use support::subids::{give_to, subid_user};

const QEMU: &str = "/usr/bin/qemu-aarch64-static";

/// A registry holding `base` (an amd64 + arm64 busybox index), or `None`
/// with a SKIPPED message where the test cannot run.
fn registry_with_base() -> Option<(Registry, BaseImage)> {
    if !can_build() {
        return None;
    }
    if !Path::new(QEMU).exists() {
        eprintln!("SKIPPED: {QEMU} is absent (Debian: qemu-user-static)");
        return None;
    }
    let registry = Registry::start()?;
    let base = BaseImage::busybox_amd64_arm64_index(&registry, "base")?;
    Some((registry, base))
}

#[test]
fn an_arm64_build_runs_its_steps_under_emulation_and_is_an_arm64_image() {
    let Some((_registry, base)) = registry_with_base() else {
        return;
    };
    let home = Home::new();
    let context = home.context(
        "arm64",
        &format!(
            "FROM {}\n\
             ARG TARGETARCH TARGETPLATFORM\n\
             RUN uname -m > /arch && echo \"$TARGETARCH $TARGETPLATFORM\" > /target\n\
             RUN mkdir -p /opt/app && for i in 1 2 3; do echo \"line $i\" >> /opt/app/lines; done \\\n\
              && ln -s lines /opt/app/link && chmod 0750 /opt/app\n",
            base.reference
        ),
    );
    let built = home.built(&context, &["--platform", "linux/arm64"]);
    assert_eq!(built.text("arch"), "aarch64\n");
    assert_eq!(built.text("target"), "arm64 linux/arm64\n");
    assert_eq!(built.text("opt/app/lines"), "line 1\nline 2\nline 3\n");
    assert_eq!(built.link("opt/app/link"), "lines");
    assert_eq!(built.mode("opt/app") & 0o7777, 0o750);
    assert_eq!(built.config["architecture"], "arm64");
    assert_eq!(built.config["os"], "linux");
    // The busybox that ran is the arm64 one of the index.
    let support::built::Kind::File(busybox) = &built.node("bin/busybox").kind else {
        panic!("/bin/busybox is not a file");
    };
    assert_eq!(&busybox[..4], b"\x7fELF");
    assert_eq!(busybox[18], 0xb7, "e_machine is EM_AARCH64");
    assert!(
        built.stderr.contains(
            "RUN steps for linux/arm64 run under emulation by /usr/bin/qemu-aarch64-static \
             (registered in each step's own user namespace)"
        ),
        "{}",
        built.stderr
    );

    // The same base for this machine: the amd64 manifest, run natively.
    let native = home.context(
        "native",
        &format!("FROM {}\nRUN uname -m > /arch\n", base.reference),
    );
    let built = home.built(&native, &[]);
    assert_eq!(built.text("arch"), "x86_64\n");
    assert_eq!(built.config["architecture"], "amd64");
    assert!(!built.stderr.contains("emulation"), "{}", built.stderr);
}

#[test]
fn an_unprivileged_users_arm64_steps_run_under_emulation() {
    let Some((_registry, base)) = registry_with_base() else {
        return;
    };
    let home = Home::new();
    let context = home.context(
        "arm64",
        &format!(
            "FROM {}\nRUN uname -m > /arch && cat /proc/sys/fs/binfmt_misc/qemu-aarch64 > /entry\n",
            base.reference
        ),
    );
    let layout = home.path("layout");
    give_to_nobody(home.dir.path());
    let output = home
        .build_as_nobody()
        .args(["--platform", "linux/arm64", "-o"])
        .arg(format!("type=oci,dest={},tar=false", layout.display()))
        .arg(&context)
        .output()
        .expect("run builder");
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    let built = support::built::read_layout(&layout, stderr);
    assert_eq!(built.text("arch"), "aarch64\n");
    // The step saw its own instance's entry, registered with F.
    let entry = built.text("entry");
    assert!(entry.starts_with("enabled\n"), "{entry}");
    assert!(entry.contains("flags: POF\n"), "{entry}");
    assert_eq!(built.config["architecture"], "arm64");
}

#[test]
fn a_crashing_emulated_step_says_it_ran_under_emulation() {
    let Some((_registry, base)) = registry_with_base() else {
        return;
    };
    let home = Home::new();
    let context = home.context(
        "crash",
        &format!(
            "FROM {}\nRUN echo before && kill -SEGV $$\n",
            base.reference
        ),
    );
    let stderr = home.build_fails(&context, &["--platform", "linux/arm64"]);
    assert!(
        stderr.contains(
            "the command exited with code 139 under emulation of linux/arm64 by qemu-aarch64-static"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("before"), "{stderr}");
}

#[test]
fn without_the_emulator_the_build_stops_before_any_step_naming_the_package() {
    let Some((_registry, base)) = registry_with_base() else {
        return;
    };
    let home = Home::new();
    let empty = home.path("no-qemu");
    std::fs::create_dir_all(&empty).unwrap();
    let context = home.context(
        "arm64",
        &format!(
            "FROM scratch AS files\nCOPY busybox /bb\n\
             FROM {}\nCOPY --from=files /bb /bb\nRUN uname -m > /arch\n",
            base.reference
        ),
    );
    let output = home
        .build(&["--platform", "linux/arm64", context.to_str().unwrap()])
        .env("BUILDER_QEMU_DIR", &empty)
        .output()
        .expect("run builder");
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "RUN steps for linux/arm64 need QEMU user-mode emulation, and {}/qemu-aarch64-static is missing (install it with `apt-get install qemu-user-static`",
            empty.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("Dockerfile:3: stage stage-1"), "{stderr}");
    // No step started: neither the COPY stage nor the FROM.
    assert!(!stderr.lines().any(|l| l.starts_with('#')), "{stderr}");
}

#[test]
fn a_foreign_stage_without_run_steps_needs_no_emulator() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let empty = home.path("no-qemu");
    std::fs::create_dir_all(&empty).unwrap();
    let context = home.context("copy-only", "FROM scratch\nCOPY busybox /bin/busybox\n");
    let layout = home.path("layout");
    let dest = format!("type=oci,dest={},tar=false", layout.display());
    let output = home
        .build(&[
            "--platform",
            "linux/arm64",
            "-o",
            &dest,
            context.to_str().unwrap(),
        ])
        .env("BUILDER_QEMU_DIR", &empty)
        .output()
        .expect("run builder");
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    let (_, config) = layout_image(&layout);
    assert_eq!(config["architecture"], "arm64");
}

#[test]
fn an_emulated_step_reaches_neither_the_hosts_emulator_nor_builders_pid_1() {
    let Some((_registry, base)) = registry_with_base() else {
        return;
    };
    let home = Home::new();
    // The outer shell waits while a child looks at it: its interpreter is
    // QEMU, whose file the step can name through /proc.
    let context = home.context(
        "reach",
        &format!(
            "FROM {}\n\
             RUN sh -c \"readlink /proc/$$/exe > /exe; echo x >> /proc/$$/exe && echo written >> /exe\" ; \
                 readlink /proc/1/exe > /pid1 2>&1 || echo refused >> /pid1; ls /proc/1/fd > /pid1-fds 2>&1 || true\n",
            base.reference
        ),
    );
    let built = home.built(&context, &["--platform", "linux/arm64"]);
    // A sealed in-memory copy, not /usr/bin/qemu-aarch64-static.
    assert_eq!(built.text("exe"), "/memfd:qemu-aarch64-static (deleted)\n");
    assert_eq!(built.text("pid1"), "refused\n");
    // pid 1 holds no descriptor (the status pipe to builder is closed).
    assert_eq!(built.text("pid1-fds"), "");
}

#[test]
fn a_native_build_runs_a_from_platform_arm64_stage_under_emulation() {
    let Some((_registry, base)) = registry_with_base() else {
        return;
    };
    let home = Home::new();
    let context = home.context(
        "mixed",
        &format!(
            "FROM --platform=linux/arm64 {base} AS arm\n\
             ARG TARGETARCH\n\
             RUN echo \"$(uname -m) for $TARGETARCH\" > /arch\n\
             FROM {base}\n\
             COPY --from=arm /arch /arm-arch\n\
             RUN uname -m > /arch\n",
            base = base.reference
        ),
    );
    let built = home.built(&context, &[]);
    // TARGETARCH is the build's target, as BuildKit has it.
    assert_eq!(built.text("arm-arch"), "aarch64 for amd64\n");
    assert_eq!(built.text("arch"), "x86_64\n");
    assert_eq!(built.config["architecture"], "amd64");
}

/// The `arch` image of the index in the OCI layout `layout`, as `skopeo
/// copy --override-arch` picks it, copied into `<layout>-<arch>`.
fn platform_image_of(layout: &Path, arch: &str) -> support::built::Built {
    let single = layout.with_file_name(format!(
        "{}-{arch}",
        layout.file_name().unwrap().to_string_lossy()
    ));
    let copied = std::process::Command::new("skopeo")
        .args([
            "--insecure-policy",
            "--override-arch",
            arch,
            "copy",
            "--quiet",
        ])
        .arg(format!("oci:{}", layout.display()))
        .arg(format!("oci:{}", single.display()))
        .output()
        .expect("run skopeo");
    assert!(copied.status.success(), "{}", stderr_of(&copied));
    support::built::read_layout(&single, String::new())
}

#[test]
fn two_platforms_run_natively_and_under_emulation_into_one_index_root_and_rootless() {
    let Some((_registry, base)) = registry_with_base() else {
        return;
    };
    let Some((uid, gid)) = subid_user() else {
        return;
    };
    let home = Home::new();
    let context = home.context(
        "two",
        &format!("FROM {}\nRUN uname -m > /arch\n", base.reference),
    );
    std::fs::set_permissions(home.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let user_dir = home.path("user");
    std::fs::create_dir(&user_dir).unwrap();
    give_to(&user_dir, uid, gid);
    let platforms = ["--platform", "linux/amd64,linux/arm64", "-o"];

    let root_layout = home.path("root-layout");
    let as_root = home
        .build(&platforms)
        .arg(format!("type=oci,tar=false,dest={}", root_layout.display()))
        .arg(&context)
        .output()
        .expect("run builder");
    assert!(as_root.status.success(), "{}", stderr_of(&as_root));

    let user_layout = user_dir.join("layout");
    let as_user = std::process::Command::new(env!("CARGO_BIN_EXE_builder"))
        .env_clear()
        .env("HOME", &user_dir)
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("TMPDIR", "/tmp")
        .arg("--root")
        .arg(user_dir.join("store"))
        .args(["build", "--progress", "plain"])
        .args(platforms)
        .arg(format!("type=oci,tar=false,dest={}", user_layout.display()))
        .arg(&context)
        .current_dir("/")
        .uid(uid)
        .gid(gid)
        .output()
        .expect("run builder");
    let stderr = stderr_of(&as_user);
    assert!(as_user.status.success(), "{stderr}");
    assert!(
        stderr.contains("registered in each step's own user namespace"),
        "{stderr}"
    );

    for layout in [&root_layout, &user_layout] {
        for (arch, machine) in [("amd64", "x86_64\n"), ("arm64", "aarch64\n")] {
            let built = platform_image_of(layout, arch);
            assert_eq!(
                built.text("arch"),
                machine,
                "{arch} in {}",
                layout.display()
            );
            assert_eq!(built.config["architecture"], arch);
        }
    }
}
