//! `builder build` flags as users type them, each exercised once on a real
//! build where it changes what the build makes: a Dockerfile on stdin,
//! archive contexts (a path, or stdin) with `.dockerignore`, `--label`,
//! `--add-host`, `--shm-size`, `--build-context`, `--platform`, `-o -`;
//! and the CLI around them: `--version`, `help build`, `completions`,
//! usage errors with exit code 2. Builds need root; they are skipped
//! otherwise.

mod support;

use predicates::str::contains;
use std::io::Write as _;
use std::path::Path;
use support::build::{Home, can_build, layout_image, stderr_of};
use support::cli::builder;

/// busybox as `/bin/sh` and friends, from the context.
const BASE: &str = "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";

/// A tar of `dir` (its files and directories, paths relative to it).
fn tar_of(dir: &Path) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir).unwrap();
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn xz(bytes: &[u8]) -> Vec<u8> {
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
    xz.write_all(bytes).unwrap();
    xz.finish().unwrap()
}

#[test]
fn version_prints_the_name_and_version() {
    let home = tempfile::tempdir().unwrap();
    builder(home.path())
        .arg("--version")
        .assert()
        .success()
        .stdout(format!("builder {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn help_build_lists_the_build_flags() {
    let home = tempfile::tempdir().unwrap();
    let assert = builder(home.path())
        .args(["help", "build"])
        .assert()
        .success();
    let help = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    for flag in [
        "--file",
        "--label",
        "--add-host",
        "--shm-size",
        "--build-context",
        "--platform",
        "--output",
        "--tag",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn completions_are_made_for_bash_zsh_and_fish() {
    let home = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let assert = builder(home.path())
            .args(["completions", shell])
            .assert()
            .success();
        let script = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
        assert!(script.contains("build"), "{shell}: {script}");
        assert!(script.contains("shm-size"), "{shell}: {script}");
    }
    builder(home.path())
        .args(["completions", "tcsh"])
        .assert()
        .code(2)
        .stderr(contains("invalid value 'tcsh'"));
}

#[test]
fn contradictory_or_unknown_flags_are_usage_errors() {
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        builder(home.path())
            .arg("build")
            .args(args)
            .assert()
            .code(2)
    };
    run(&["-f", "-", "-"]).stderr(contains("cannot both read stdin"));
    run(&["--dry-run", "-o", "out", "."]).stderr(contains("--dry-run builds nothing, so --output"));
    run(&["--dry-run", "--push", "."]).stderr(contains("--dry-run builds nothing, so --push"));
    run(&["--dry-run", "--load", "."]).stderr(contains("--dry-run builds nothing, so --load"));
    run(&["--no-such-flag", "."]).stderr(contains("unexpected argument '--no-such-flag'"));
    run(&["--add-host", "db", "."]).stderr(contains("expected HOST:IP or HOST=IP"));
    run(&["--add-host", "gw:host-gateway", "."]).stderr(contains("host-gateway is not supported"));
    run(&["--shm-size", "lots", "."]).stderr(contains("--shm-size"));
    run(&["--label", "=v", "."]).stderr(contains("non-empty KEY"));
    run(&["--build-context", "src=https://example.com/r.git", "."])
        .stderr(contains("not supported yet"));
}

#[test]
fn a_url_context_is_not_supported_yet() {
    let home = tempfile::tempdir().unwrap();
    builder(home.path())
        .args(["build", "https://github.com/moby/buildkit.git"])
        .assert()
        .code(1)
        .stderr(contains("not supported yet"));
}

#[test]
fn a_dockerfile_on_stdin_is_named_stdin_in_errors() {
    let home = tempfile::tempdir().unwrap();
    let context = tempfile::tempdir().unwrap();
    builder(home.path())
        .args(["build", "--dry-run", "-f", "-"])
        .arg(context.path())
        .write_stdin("FROM scratch\nFROMM x\n")
        .assert()
        .code(1)
        .stderr(contains("<stdin>:2:1"))
        .stderr(contains("unknown instruction: FROMM"));
    // `-` holding a Dockerfile rather than an archive: no context at all.
    builder(home.path())
        .args(["build", "--dry-run", "-"])
        .write_stdin("FROM scratch\nLABEL from=stdin\n")
        .assert()
        .success()
        .stdout(contains("plan for <stdin>"))
        .stdout(contains("LABEL from=stdin"));
}

#[test]
fn a_dockerfile_on_stdin_builds_with_the_context_directory() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("stdin-df", "FROM scratch\nCOPY nothing /\n");
    std::fs::write(context.join("note.txt"), "from the context").unwrap();
    let out = home.path("out");
    home.build(&[
        "-f",
        "-",
        "-o",
        out.to_str().unwrap(),
        context.to_str().unwrap(),
    ])
    .write_stdin(format!("{BASE}COPY note.txt /note.txt\n"))
    .assert()
    .success();
    assert_eq!(
        std::fs::read_to_string(out.join("note.txt")).unwrap(),
        "from the context"
    );
}

/// A context with a Dockerfile, an alternative one in a subdirectory, a
/// `.dockerignore` and two files, one of them ignored.
fn archive_context(home: &Home) -> std::path::PathBuf {
    let context = home.context("archive", &format!("{BASE}COPY . /ctx/\n"));
    std::fs::create_dir(context.join("sub")).unwrap();
    std::fs::write(
        context.join("sub/alt.Dockerfile"),
        format!("{BASE}COPY kept.txt /alt/\n"),
    )
    .unwrap();
    std::fs::write(context.join(".dockerignore"), "ignored.txt\n").unwrap();
    std::fs::write(context.join("kept.txt"), "kept").unwrap();
    std::fs::write(context.join("ignored.txt"), "ignored").unwrap();
    context
}

#[test]
fn a_context_archive_given_as_a_path_is_unpacked_with_dockerignore_applied() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = archive_context(&home);
    let archive = home.path("ctx.tar.gz");
    std::fs::write(&archive, gzip(&tar_of(&context))).unwrap();
    let tmp = home.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = home.path("out");
    home.build(&["-o", out.to_str().unwrap(), archive.to_str().unwrap()])
        .env("TMPDIR", &tmp)
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(out.join("ctx/kept.txt")).unwrap(),
        "kept"
    );
    assert!(out.join("ctx/sub/alt.Dockerfile").is_file());
    assert!(!out.join("ctx/ignored.txt").exists());

    // -f names a Dockerfile inside the archive.
    let alt = home.path("alt");
    home.build(&[
        "-f",
        "sub/alt.Dockerfile",
        "-o",
        alt.to_str().unwrap(),
        archive.to_str().unwrap(),
    ])
    .assert()
    .success();
    assert_eq!(
        std::fs::read_to_string(alt.join("alt/kept.txt")).unwrap(),
        "kept"
    );
    assert!(!alt.join("ctx").exists());

    // The unpacked context (made under TMPDIR) is gone afterwards.
    let leftovers: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_context_archive_on_stdin_is_unpacked_whatever_its_compression() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = archive_context(&home);
    let tar = tar_of(&context);
    for (name, archive) in [("plain", tar.clone()), ("xz", xz(&tar))] {
        let out = home.path(name);
        home.build(&["-o", out.to_str().unwrap(), "-"])
            .write_stdin(archive)
            .assert()
            .success();
        assert_eq!(
            std::fs::read_to_string(out.join("ctx/kept.txt")).unwrap(),
            "kept",
            "{name}"
        );
        assert!(!out.join("ctx/ignored.txt").exists(), "{name}");
    }
}

#[test]
fn labels_from_the_command_line_override_the_dockerfile() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("labels", "FROM scratch\nLABEL a=dockerfile keep=yes\n");
    let layout = home.path("layout");
    home.build(&[
        "--label",
        "a=flag",
        "--label",
        "b=two=2",
        "-o",
        &format!("type=oci,tar=false,dest={}", layout.display()),
        context.to_str().unwrap(),
    ])
    .assert()
    .success();
    let (_, config) = layout_image(&layout);
    let labels = &config["config"]["Labels"];
    assert_eq!(labels["a"], "flag");
    assert_eq!(labels["b"], "two=2");
    assert_eq!(labels["keep"], "yes");
}

#[test]
fn added_hosts_are_seen_by_run_steps_but_not_kept_in_the_image() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "hosts",
        &format!("{BASE}RUN cat /etc/hosts > /seen-hosts\n"),
    );
    let out = home.path("out");
    home.build(&[
        "--add-host",
        "db:10.1.2.3",
        "--add-host",
        "v6=[fd00::7]",
        "-o",
        out.to_str().unwrap(),
        context.to_str().unwrap(),
    ])
    .assert()
    .success();
    let seen = std::fs::read_to_string(out.join("seen-hosts")).unwrap();
    assert!(seen.contains("10.1.2.3\tdb\n"), "{seen}");
    assert!(seen.contains("fd00::7\tv6\n"), "{seen}");
    let kept = std::fs::read_to_string(out.join("etc/hosts")).unwrap_or_default();
    assert!(!kept.contains("10.1.2.3"), "{kept}");

    // The hosts are part of the step: another address runs it again.
    let again = home.path("again");
    home.build(&[
        "--add-host",
        "db:10.9.9.9",
        "-o",
        again.to_str().unwrap(),
        context.to_str().unwrap(),
    ])
    .assert()
    .success();
    let seen = std::fs::read_to_string(again.join("seen-hosts")).unwrap();
    assert!(seen.contains("10.9.9.9\tdb\n"), "{seen}");
    assert!(!seen.contains("10.1.2.3"), "{seen}");
}

#[test]
fn shm_size_sizes_dev_shm_in_run_steps() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "shm",
        &format!(
            "{BASE}RUN df -k /dev/shm | tail -n 1 | awk '{{print $2}}' > /shm-kib\n\
             RUN if dd if=/dev/zero of=/dev/shm/fill bs=1024 count=3000 2>/dev/null; then echo fits; else echo full; fi > /fill\n"
        ),
    );
    let out = home.path("out");
    home.build(&[
        "--shm-size",
        "2m",
        "-o",
        out.to_str().unwrap(),
        context.to_str().unwrap(),
    ])
    .assert()
    .success();
    assert_eq!(
        std::fs::read_to_string(out.join("shm-kib")).unwrap(),
        "2048\n"
    );
    assert_eq!(std::fs::read_to_string(out.join("fill")).unwrap(), "full\n");

    // Docker's 64 MiB without the flag.
    let default = home.path("default");
    home.build(&["-o", default.to_str().unwrap(), context.to_str().unwrap()])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(default.join("shm-kib")).unwrap(),
        "65536\n"
    );
    assert_eq!(
        std::fs::read_to_string(default.join("fill")).unwrap(),
        "fits\n"
    );
}

#[test]
fn named_contexts_serve_from_copy_from_and_run_mounts() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let extra = home.path("extra");
    std::fs::create_dir_all(&extra).unwrap();
    std::fs::write(extra.join("data.txt"), "named").unwrap();
    std::fs::write(extra.join("skipped.txt"), "skipped").unwrap();
    // As BuildKit loads a named local context: its own .dockerignore
    // applies, the main context's does not.
    std::fs::write(extra.join(".dockerignore"), "skipped.txt\n").unwrap();
    let dockerfile = format!(
        "FROM extra AS files\n\
         {BASE}COPY --from=extra data.txt /copied.txt\n\
         RUN --mount=from=extra,target=/m cat /m/data.txt > /mounted.txt\n\
         COPY --from=files /data.txt /from-stage.txt\n\
         COPY --from=extra . /all/\n"
    );
    let context = home.context("named", &dockerfile);
    std::fs::write(context.join(".dockerignore"), "data.txt\n").unwrap();
    let out = home.path("out");
    home.build(&[
        "--build-context",
        &format!("extra={}", extra.display()),
        "-o",
        out.to_str().unwrap(),
        context.to_str().unwrap(),
    ])
    .assert()
    .success();
    for file in ["copied.txt", "mounted.txt", "from-stage.txt"] {
        assert_eq!(
            std::fs::read_to_string(out.join(file)).unwrap(),
            "named",
            "{file}"
        );
    }
    assert!(out.join("all/data.txt").is_file());
    assert!(!out.join("all/skipped.txt").exists());

    // docker-image://REF puts that image in the name's place.
    let base = home.context(
        "named-base",
        &format!("{BASE}RUN echo from-image > /marker\n"),
    );
    home.build(&["-t", "localhost/named-base:1", base.to_str().unwrap()])
        .assert()
        .success();
    let user = home.context(
        "named-user",
        "FROM base\nRUN cat /marker > /copied-marker\n",
    );
    let out = home.path("out-image");
    home.build(&[
        "--build-context",
        "base=docker-image://localhost/named-base:1",
        "-o",
        out.to_str().unwrap(),
        user.to_str().unwrap(),
    ])
    .assert()
    .success();
    assert_eq!(
        std::fs::read_to_string(out.join("copied-marker")).unwrap(),
        "from-image\n"
    );
}

#[test]
fn another_platform_builds_when_no_step_runs() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("platform", "FROM scratch\nCOPY busybox /\n");
    let (other, arch) = if cfg!(target_arch = "s390x") {
        ("linux/amd64", "amd64")
    } else {
        ("linux/s390x", "s390x")
    };
    let layout = home.path("layout");
    home.build(&[
        "--platform",
        other,
        "-o",
        &format!("type=oci,tar=false,dest={}", layout.display()),
        context.to_str().unwrap(),
    ])
    .assert()
    .success();
    let (_, config) = layout_image(&layout);
    assert_eq!(config["architecture"], arch);
    assert_eq!(config["os"], "linux");
}

#[test]
fn output_dash_streams_a_tar_on_stdout_with_progress_on_stderr() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("stream", &format!("{BASE}RUN echo streamed > /s.txt\n"));
    let output = home
        .build(&["-o", "-", context.to_str().unwrap()])
        .assert()
        .success()
        .get_output()
        .clone();
    let mut archive = tar::Archive::new(output.stdout.as_slice());
    let mut found = None;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry
            .path()
            .unwrap()
            .to_str()
            .map(|p| p.trim_start_matches("./"))
            == Some("s.txt")
        {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            found = Some(text);
        }
    }
    assert_eq!(found.as_deref(), Some("streamed\n"));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("RUN echo streamed"), "{stderr}");
}

#[test]
fn stdout_can_carry_only_one_of_quiet_and_an_output() {
    let home = tempfile::tempdir().unwrap();
    let context = home.path().join("ctx");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(context.join("Dockerfile"), "FROM scratch\nENV A=1\n").unwrap();
    let run = |args: &[&str]| {
        builder(home.path())
            .arg("build")
            .args(args)
            .arg(&context)
            .assert()
            .code(2)
            .stdout("")
    };
    run(&["-q", "-o", "-"]).stderr(contains(
        "-q prints the image ID on stdout, where an -o output writes its tar",
    ));
    run(&["-o", "-", "-o", "type=oci,dest=-"])
        .stderr(contains("only one -o output can write to stdout"));
}

#[test]
fn bad_compression_attributes_are_usage_errors_naming_the_attribute() {
    let home = tempfile::tempdir().unwrap();
    let context = home.path().join("ctx");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(context.join("Dockerfile"), "FROM scratch\nENV A=1\n").unwrap();
    let run = |args: &[&str]| {
        builder(home.path())
            .arg("build")
            .args(args)
            .arg(&context)
            .assert()
            .code(2)
    };
    run(&["-o", "type=registry,name=a/b,compression=estargz"]).stderr(contains(
        "compression=\"estargz\" is not supported: builder writes gzip, zstd or uncompressed layers",
    ));
    run(&[
        "-o",
        "type=oci,dest=x.tar,compression=zstd,compression-level=23",
    ])
    .stderr(contains(
        "compression-level=23 is out of range for zstd (0-22)",
    ));
    // The level is checked against the compression --compression gives.
    run(&["-o", "type=image,name=a/b,push=true,compression-level=12"]).stderr(contains(
        "compression-level=12 is out of range for gzip (0-9)",
    ));
    run(&[
        "--compression",
        "zstd",
        "--cache-to",
        "type=local,dest=cache,compression-level=40",
    ])
    .stderr(contains(
        "compression-level=40 is out of range for zstd (0-22)",
    ));
    run(&["-o", "type=docker,dest=x.tar,force-compression=maybe"])
        .stderr(contains("force-compression=\"maybe\" is not a boolean"));
    run(&["--cache-to", "type=registry,ref=a/b,compression=lz4"]).stderr(contains(
        "compression=\"lz4\": expected gzip, zstd or uncompressed",
    ));
}
