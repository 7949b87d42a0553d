//! How steps behave in a real build: a failing RUN stops the build with
//! its line and exit code and leaves no cache record; `.dockerignore`
//! keeps files out of COPY; whiteouts made across RUN steps are applied
//! in the result. Needs root; skipped otherwise.

mod support;

use predicates::str::contains;
use support::build::{Home, can_build, stderr_of};

const BASE: &str = "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";

#[test]
fn a_failing_run_stops_the_build_with_its_line_and_code_and_is_not_cached() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = format!("{BASE}RUN echo about to fail\nRUN exit 3\nRUN echo never\n");
    let context = home.context("fail", &dockerfile);
    let dir = context.to_str().unwrap();
    let output = home
        .build(&[dir])
        .assert()
        .code(1)
        .stderr(contains("Dockerfile:5"))
        .stderr(contains("[5/6] RUN exit 3"))
        .stderr(contains("exited with code 3"))
        .get_output()
        .clone();
    let stderr = stderr_of(&output);
    assert!(stderr.contains("about to fail"), "{stderr}");
    // Never started (the report's snippet shows its line as context).
    assert!(!stderr.contains("[6/6] RUN echo never"), "{stderr}");

    // The failed step left no record: it runs (and fails) again, while
    // the steps before it are cached.
    let output = home.build(&[dir]).assert().code(1).get_output().clone();
    let stderr = stderr_of(&output);
    assert_eq!(stderr.matches(" CACHED\n").count(), 3, "{stderr}");
    assert!(stderr.contains("ERROR"), "{stderr}");
}

#[test]
fn dockerignore_keeps_files_out_of_the_context() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("ignore", &format!("{BASE}COPY . /ctx/\n"));
    std::fs::write(context.join(".dockerignore"), "secret*\n!secret-but-kept\n").unwrap();
    for name in ["kept.txt", "secret.txt", "secret-but-kept"] {
        std::fs::write(context.join(name), name).unwrap();
    }
    let out = home.path("out");
    home.build(&["-o", out.to_str().unwrap(), context.to_str().unwrap()])
        .assert()
        .success();
    assert!(out.join("ctx/kept.txt").is_file());
    assert!(out.join("ctx/secret-but-kept").is_file());
    assert!(!out.join("ctx/secret.txt").exists());

    // Naming an ignored file is an error that says so.
    let context = home.context("ignored-source", &format!("{BASE}COPY secret.txt /\n"));
    std::fs::write(context.join(".dockerignore"), "secret.txt\n").unwrap();
    std::fs::write(context.join("secret.txt"), "s").unwrap();
    home.build(&[context.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(contains("excluded by .dockerignore"));
}

#[test]
fn whiteouts_across_run_steps_show_in_the_result() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = format!(
        "{BASE}RUN mkdir -p /d/sub && echo a > /d/a && echo b > /d/b && echo s > /d/sub/s\n\
         RUN rm /d/a\n\
         RUN rm -r /d/sub && mkdir /d/sub && echo t > /d/sub/t\n"
    );
    let context = home.context("whiteouts", &dockerfile);
    let out = home.path("out");
    home.build(&["-o", out.to_str().unwrap(), context.to_str().unwrap()])
        .assert()
        .success();
    let mut names: Vec<String> = walk(&out.join("d"));
    names.sort();
    assert_eq!(names, ["b", "sub", "sub/t"]);
    assert_eq!(std::fs::read_to_string(out.join("d/b")).unwrap(), "b\n");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().unwrap().is_dir() {
            out.extend(
                walk(&entry.path())
                    .into_iter()
                    .map(|n| format!("{name}/{n}")),
            );
        }
        out.push(name);
    }
    out
}

#[test]
fn a_platform_without_an_emulator_is_refused_with_a_clear_message() {
    let home = Home::new();
    let context = home.context("platform", BASE);
    home.build(&["--platform", "linux/mips64le", context.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(contains(
            "Dockerfile:1: stage stage-0: RUN steps for linux/mips64le",
        ))
        .stderr(contains("builder knows no QEMU emulator for mips64le"));
}

#[test]
fn an_image_without_layers_has_an_empty_layer_list_like_buildkit() {
    let home = Home::new();
    let context = home.context("empty", "FROM scratch\nLABEL only=metadata\nCMD [\"x\"]\n");
    let layout = home.path("layout");
    home.build(&[
        "-o",
        &format!("type=oci,tar=false,dest={}", layout.display()),
        context.to_str().unwrap(),
    ])
    .assert()
    .success()
    .stderr(contains("0 steps run, 0 cached"));
    let (manifest, config) = support::build::layout_image(&layout);
    assert_eq!(manifest["layers"], serde_json::json!([]));
    assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!([]));
    assert_eq!(config["config"]["Labels"]["only"], "metadata");
    assert_eq!(config["config"]["WorkingDir"], "/");
}

#[test]
fn a_failure_cancels_the_stages_running_beside_it() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = format!(
        "{BASE}FROM 0 AS slow\nRUN sleep 20 && echo slept\n\
         FROM 0 AS failing\nRUN sleep 1 && exit 4\n\
         FROM 0\nCOPY --from=slow /bin/busybox /a\nCOPY --from=failing /bin/busybox /b\n"
    );
    let dockerfile = dockerfile
        .replacen("FROM scratch", "FROM scratch AS base", 1)
        .replace("FROM 0", "FROM base");
    let context = home.context("cancel", &dockerfile);
    let output = home
        .build(&[context.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(contains("exited with code 4"))
        .get_output()
        .clone();
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("RUN sleep 20 && echo slept"),
        "both ran: {stderr}"
    );
    assert!(
        !stderr
            .lines()
            .any(|l| l.ends_with(" slept") && !l.contains("RUN")),
        "the slow stage was cancelled: {stderr}"
    );
    assert!(
        !stderr.contains("built in"),
        "no summary after a failure: {stderr}"
    );
}
