//! Every row of the README's docker flag table through the real binary:
//! the flags builder takes as docker does (booleans with `=true`/`=false`,
//! `--load`, `--check`, `--builder`, `--provenance=false`…), those it
//! refuses (a usage error, exit code 2, naming the flag and saying it is
//! not supported yet), bad flag values (exit 2, the flag named),
//! `BUILDKIT_PROGRESS`, and the dry run numbering steps as the build does.
//! Builds need root; they are skipped otherwise.

mod support;

use predicates::str::contains;
use std::path::Path;
use support::build::{Home, can_build, stderr_of};
use support::cli::builder;

/// A context whose Dockerfile copies one file (a counted step) and sets a
/// label: it builds without RUN, so without a sandbox or network.
fn copy_context(home: &Home) -> std::path::PathBuf {
    let context = home.context("ctx", "FROM scratch\nCOPY note.txt /\nLABEL a=b\n");
    std::fs::write(context.join("note.txt"), "note").unwrap();
    context
}

/// `builder build ARGS… CONTEXT` with this home's store, nothing else set.
fn build(home: &Home, args: &[&str], context: &Path) -> std::process::Output {
    builder(home.dir.path())
        .env_remove("BUILDKIT_PROGRESS")
        .env_remove("BUILDX_BUILDER")
        .arg("build")
        .args(args)
        .arg(context)
        .output()
        .unwrap()
}

/// Asserts a usage error (exit code 2, nothing on stdout) whose message
/// contains every one of `expected`.
fn assert_usage_error(output: &std::process::Output, expected: &[&str]) {
    let stderr = stderr_of(output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(output.stdout.is_empty(), "{output:?}");
    for text in expected {
        assert!(stderr.contains(text), "{text:?} missing from:\n{stderr}");
    }
    assert!(!stderr.contains("unexpected argument"), "{stderr}");
    assert!(!stderr.contains("tip:"), "{stderr}");
}

#[test]
fn flags_not_supported_yet_are_refused_by_name_with_exit_code_2() {
    let home = Home::new();
    let context = home.context("ctx", "FROM scratch\n");
    for (args, expected) in [
        (
            &["--annotation", "a=b"][..],
            "--annotation is not supported yet",
        ),
        (
            &["--attest", "type=sbom"],
            "--attest type=sbom is not supported yet",
        ),
        (&["--sbom"], "--sbom=true is not supported yet"),
        (&["--sbom=true"], "--sbom=true is not supported yet"),
        (
            &["--provenance=mode=max"],
            "--provenance=mode=max is not supported yet",
        ),
        (&["--call=outline"], "--call=outline is not supported yet"),
        (&["--squash"], "--squash is not supported yet"),
        (
            &["--cgroup-parent", "x"],
            "--cgroup-parent is not supported yet",
        ),
        (
            &["--memory-swap", "1g"],
            "--memory-swap is not supported yet",
        ),
        (
            &["--cpu-shares", "512"],
            "--cpu-shares is not supported yet",
        ),
        (
            &["--cpu-period", "100000"],
            "--cpu-period is not supported yet",
        ),
        (
            &["--cpu-quota", "50000"],
            "--cpu-quota is not supported yet",
        ),
        (
            &["--cpuset-cpus", "0"],
            "--cpuset-cpus is not supported yet",
        ),
        (
            &["--cpuset-mems", "0"],
            "--cpuset-mems is not supported yet",
        ),
    ] {
        let output = build(&home, args, &context);
        assert_usage_error(&output, &[expected]);
    }
    // Nothing was built.
    assert!(!home.path("store/refs.json").exists());
}

#[test]
fn bad_flag_values_are_usage_errors_that_name_the_flag() {
    let home = Home::new();
    let context = home.context("ctx", "FROM scratch\n");
    for (args, expected) in [
        (
            &["-t", "Bad/Name"][..],
            &["'--tag <NAME[:TAG]>'", "must be lowercase"][..],
        ),
        (
            &["--secret", "token"],
            &["--secret", "must be a key=value pair"],
        ),
        (
            &["--secret", "id=t,src=/no/such/file"],
            &["--secret id=t", "/no/such/file"],
        ),
        (
            &["-o", "type=local"],
            &["'--output <SPEC>'", "type=local needs dest=DIR"],
        ),
        (
            &["--allow", "everything"],
            &["'--allow <ENTITLEMENT>'", "unknown entitlement"],
        ),
        (
            &["--ssh", "=sock"],
            &["--ssh", "the ID before '=' is empty"],
        ),
        (&["--push=maybe"], &["'--push[=<BOOL>]'", "maybe"]),
        (&["--push"], &["--push has no name to push", "-t NAME"]),
        (&["-o", "type=image"], &["type=image", "needs name="]),
        (
            &["-q", "--progress=plain"],
            &["-q (--quiet) cannot be used with --progress=plain"],
        ),
    ] {
        let output = build(&home, args, &context);
        assert_usage_error(&output, expected);
    }
}

#[test]
fn boolean_flags_take_values_as_ci_scripts_write_them() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = copy_context(&home);
    let first = build(
        &home,
        &["--progress=plain", "--pull=false", "--push=false"],
        &context,
    );
    assert!(first.status.success(), "{}", stderr_of(&first));
    // --no-cache=false keeps the cache, --no-cache=true does not.
    let cached = build(&home, &["--progress=plain", "--no-cache=false"], &context);
    assert!(
        stderr_of(&cached).contains("1 cached"),
        "{}",
        stderr_of(&cached)
    );
    let uncached = build(&home, &["--progress=plain", "--no-cache=true"], &context);
    assert!(
        stderr_of(&uncached).contains("1 step run, 0 cached"),
        "{}",
        stderr_of(&uncached)
    );
    // --quiet=false shows progress; a later -q wins (as docker: last one).
    let shown = build(&home, &["--quiet=false", "--progress=plain"], &context);
    assert!(shown.status.success());
    assert!(stderr_of(&shown).contains("COPY note.txt"));
    let quiet = build(&home, &["--quiet=false", "-q"], &context);
    assert!(quiet.status.success(), "{}", stderr_of(&quiet));
    assert!(String::from_utf8_lossy(&quiet.stdout).starts_with("sha256:"));
    assert_eq!(stderr_of(&quiet), "");
    // The dry run too; a false --push does not stand in its way.
    let dry = build(&home, &["--dry-run=true", "--push=false"], &context);
    assert!(String::from_utf8_lossy(&dry.stdout).starts_with("plan for "));
}

#[test]
fn harmless_docker_flags_are_accepted() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = copy_context(&home);
    let output = build(
        &home,
        &[
            "--progress=plain",
            "-t",
            "app",
            "--provenance=false",
            "--sbom=false",
            "--attest",
            "type=provenance,disabled=true",
            "--rm",
            "--force-rm=true",
            "--compress",
            "--disable-content-trust=true",
            "--builder",
            "remote",
        ],
        &context,
    );
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "note: --builder remote (or BUILDX_BUILDER): builder has no builder instances"
        ),
        "{stderr}"
    );
    builder(home.dir.path())
        .args(["inspect", "app"])
        .assert()
        .success();
    // BUILDX_BUILDER as --builder; BUILDX_NO_DEFAULT_ATTESTATIONS changes nothing.
    let output = builder(home.dir.path())
        .env("BUILDX_BUILDER", "ci")
        .env("BUILDX_NO_DEFAULT_ATTESTATIONS", "1")
        .args(["build", "--progress=plain"])
        .arg(&context)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(stderr_of(&output).contains("note: --builder ci"));
}

#[test]
fn check_and_call_check_check_the_dockerfile_without_building() {
    let home = Home::new();
    let context = home.context("ctx", "FROM scratch AS a\nLABEL x=1\nFROM a\nENV B=2\n");
    for flag in ["--check", "--call=check", "--call=check,ignore=all"] {
        let output = build(&home, &[flag], &context);
        assert!(output.status.success(), "{flag}: {}", stderr_of(&output));
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("Dockerfile: ok, 2 stages, 2 steps"),
            "{flag}: {output:?}"
        );
    }
    assert!(!home.path("store/refs.json").exists());
    let bad = home.context("bad", "FROM scratch\nFROMM x\n");
    let output = build(&home, &["--check"], &bad);
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
}

#[test]
fn load_feeds_docker_load_when_a_docker_cli_is_on_path() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = copy_context(&home);
    // No docker CLI: a note, and the image is in the store.
    let empty = home.path("empty-path");
    std::fs::create_dir(&empty).unwrap();
    let output = builder(home.dir.path())
        .env("PATH", &empty)
        .args(["build", "--progress=plain", "--load", "-t", "app:1"])
        .arg(&context)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains("note: --load: no docker CLI on PATH"),
        "{}",
        stderr_of(&output)
    );
    // -o type=docker without dest asks for docker itself: a usage error without it.
    let output = builder(home.dir.path())
        .env("PATH", &empty)
        .args(["build", "-o", "type=docker"])
        .arg(&context)
        .output()
        .unwrap();
    assert_usage_error(&output, &["no docker CLI on PATH", "dest=FILE"]);

    // A docker CLI that keeps what `docker load` reads.
    let bin = home.path("bin");
    std::fs::create_dir(&bin).unwrap();
    let received = home.path("received.tar");
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = load ] || exit 9\ncat > '{}'\necho 'Loaded image: app:1'\n",
        received.display()
    );
    std::fs::write(bin.join("docker"), script).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(bin.join("docker"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let output = builder(home.dir.path())
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .args(["build", "--progress=plain", "--load", "-t", "app:1"])
        .arg(&context)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("loaded into docker"));
    // A docker archive naming the image.
    let mut archive = tar::Archive::new(std::fs::File::open(&received).unwrap());
    let mut manifest = String::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some("manifest.json") {
            std::io::Read::read_to_string(&mut entry, &mut manifest).unwrap();
        }
    }
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!(["app:1"]));

    // docker load failing fails the build, saying what docker said.
    std::fs::write(
        bin.join("docker"),
        "#!/bin/sh\ncat >/dev/null\necho 'no daemon' >&2\nexit 1\n",
    )
    .unwrap();
    let output = builder(home.dir.path())
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .args(["build", "--progress=plain", "--load"])
        .arg(&context)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_of(&output).contains("docker load failed"),
        "{}",
        stderr_of(&output)
    );
    assert!(stderr_of(&output).contains("no daemon"));
}

#[test]
fn buildkit_progress_is_the_default_of_progress() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = copy_context(&home);
    let output = builder(home.dir.path())
        .env("BUILDKIT_PROGRESS", "rawjson")
        .arg("build")
        .arg(&context)
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = stderr_of(&output);
    assert!(
        stderr.lines().all(|l| l.starts_with("{\"v\":1,")),
        "{stderr}"
    );
    // The flag wins over it, and so does -q.
    let output = builder(home.dir.path())
        .env("BUILDKIT_PROGRESS", "rawjson")
        .args(["build", "--progress=plain"])
        .arg(&context)
        .output()
        .unwrap();
    assert!(
        stderr_of(&output).contains("#1 [2/2] COPY note.txt /"),
        "{}",
        stderr_of(&output)
    );
    let output = builder(home.dir.path())
        .env("BUILDKIT_PROGRESS", "plain")
        .args(["build", "-q"])
        .arg(&context)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(stderr_of(&output), "");
    builder(home.dir.path())
        .env("BUILDKIT_PROGRESS", "fancy")
        .arg("build")
        .arg(&context)
        .assert()
        .code(2)
        .stderr(contains("BUILDKIT_PROGRESS=\"fancy\""));
}

#[test]
fn the_dry_run_numbers_steps_as_the_build_does() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.hello_context();
    let dry = build(&home, &["--dry-run"], &context);
    let plan = String::from_utf8_lossy(&dry.stdout).into_owned();
    let built = build(&home, &["--progress=plain"], &context);
    let progress = stderr_of(&built);
    assert!(built.status.success(), "{progress}");
    let mut compared = 0;
    for line in progress.lines() {
        // `#N [stage i/n] INSTRUCTION`
        let Some((_, step)) = line.split_once(' ') else {
            continue;
        };
        if line.starts_with('#') && step.starts_with('[') {
            assert!(
                plan.contains(&format!("  {step}\n")),
                "{step:?} not in:\n{plan}"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 7, "{progress}");
}

#[test]
fn push_without_tags_pushes_the_type_image_names() {
    if !can_build() {
        return;
    }
    let Some(registry) = support::registry::Registry::start() else {
        return;
    };
    let home = Home::new();
    let context = copy_context(&home);
    let name = format!("{}/named:1", registry.host());
    let output = build(
        &home,
        &[
            "--progress=plain",
            "--push",
            "-o",
            &format!("type=image,name={name}"),
        ],
        &context,
    );
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("pushed {name}@sha256:")),
        "{stderr}"
    );
    builder(home.dir.path())
        .args(["inspect", "--remote", &name])
        .assert()
        .success();
}
