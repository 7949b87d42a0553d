//! The errors a user sees from `builder build`, produced through the CLI:
//! a failed RUN (its step, its Dockerfile lines with a marker, the exit
//! code, the last 20 lines of its output), a missing COPY source, a
//! registry that refuses or lacks the base image, a Dockerfile that does
//! not parse, a usage error — each with its exit code (1 for failures,
//! 2 for usage). Builds need root; they skip otherwise.

mod support;

use support::build::{Home, can_build, stderr_of};
use support::cli::builder;
use support::image::BaseImage;
use support::registry::Registry;

const BASE: &str = "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";

/// The report at the end of stderr (from its `×` line on), without the
/// progress lines before it.
fn report_of(stderr: &str) -> &str {
    stderr
        .find("× ")
        .and_then(|i| stderr.get(stderr.get(..i)?.rfind('\n').map_or(0, |n| n + 1)..))
        .unwrap_or_else(|| panic!("no report in:\n{stderr}"))
}

/// The lines of `text`, trimmed, for whole-line comparisons.
fn lines_of(text: &str) -> Vec<&str> {
    text.lines().map(str::trim).collect()
}

/// Runs a build of `dockerfile` (with busybox in its context) and returns
/// its exit code and stderr.
fn build(home: &Home, name: &str, dockerfile: &str, files: &[(&str, &str)]) -> (i32, String) {
    let context = home.context(name, dockerfile);
    for (file, content) in files {
        std::fs::write(context.join(file), content).unwrap();
    }
    let output = home.build(&[context.to_str().unwrap()]).output().unwrap();
    (output.status.code().unwrap_or(-1), stderr_of(&output))
}

#[test]
fn a_failed_run_shows_its_step_line_exit_code_and_last_20_lines_once() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = format!(
        "{BASE}RUN for i in $(seq 1 30); do echo \"output line $i\"; done; \\\n    exit 7\nRUN echo never\n"
    );
    let (code, stderr) = build(&home, "fail", &dockerfile, &[]);
    assert_eq!(code, 1, "{stderr}");
    let report = report_of(&stderr);
    let lines = lines_of(report);

    // The step, where it is, and why: each said once.
    assert!(
        report.contains("fail/Dockerfile:4: [4/5] RUN for i in $(seq 1 30);"),
        "{report}"
    );
    assert_eq!(
        report.matches("the command exited with code 7").count(),
        1,
        "{report}"
    );
    assert_eq!(report.matches("[4/5] RUN").count(), 1, "{report}");
    // The Dockerfile's lines with a marker on the step's two lines.
    assert!(
        report.contains("╭─[") && report.contains("Dockerfile:4:1]"),
        "{report}"
    );
    assert!(
        report.contains("4 │ ╭─▶ RUN for i in $(seq 1 30);"),
        "{report}"
    );
    assert!(report.contains("5 │ ├─▶     exit 7"), "{report}");
    assert!(report.contains("this step failed"), "{report}");
    // Exactly the last 20 lines of output, in order.
    assert!(
        report.contains("last 20 lines of its output (30 in all):"),
        "{report}"
    );
    let shown: Vec<usize> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("output line ")?.parse().ok())
        .collect();
    assert_eq!(shown, (11..=30).collect::<Vec<_>>(), "{report}");
    // The build stopped there.
    assert!(!stderr.contains("[5/5] RUN echo never"), "{stderr}");
}

#[test]
fn a_failed_runs_output_has_both_streams_and_an_unended_last_line() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile =
        format!("{BASE}RUN echo to stdout; echo to stderr >&2; printf 'no newline'; exit 2\n");
    let (code, stderr) = build(&home, "streams", &dockerfile, &[]);
    assert_eq!(code, 1, "{stderr}");
    let report = report_of(&stderr);
    assert!(
        report.contains("the command exited with code 2"),
        "{report}"
    );
    assert!(report.contains("its output (3 lines):"), "{report}");
    let lines = lines_of(report);
    for line in ["to stdout", "to stderr", "no newline"] {
        assert!(lines.contains(&line), "{line:?} missing in:\n{report}");
    }
}

#[test]
fn a_long_here_document_is_marked_on_its_first_line() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let script: String = (1..=15).map(|i| format!("echo step {i}\n")).collect();
    let dockerfile = format!("{BASE}RUN <<EOF\n{script}exit 4\nEOF\n");
    let (code, stderr) = build(&home, "heredoc", &dockerfile, &[]);
    assert_eq!(code, 1, "{stderr}");
    let report = report_of(&stderr);
    assert!(
        report.contains("the command exited with code 4"),
        "{report}"
    );
    assert!(report.contains("4 │ RUN <<EOF"), "{report}");
    assert!(report.contains("this step failed"), "{report}");
    // The script is not repeated in the snippet; its output is shown.
    assert!(!report.contains("echo step 9"), "{report}");
    assert!(lines_of(report).contains(&"step 15"), "{report}");
}

#[test]
fn a_missing_copy_source_names_near_files_and_the_step() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = "FROM scratch\nCOPY confg.txt /etc/\n";
    let (code, stderr) = build(&home, "near", dockerfile, &[("config.txt", "x\n")]);
    assert_eq!(code, 1, "{stderr}");
    let report = report_of(&stderr);
    assert!(
        report.contains("near/Dockerfile:2: [2/2] COPY confg.txt /etc/"),
        "{report}"
    );
    assert!(
        report.contains(
            "COPY source `confg.txt` not found in the build context; did you mean `config.txt`?"
        ),
        "{report}"
    );
    assert!(report.contains("2 │ COPY confg.txt /etc/"), "{report}");
    assert!(report.contains("this step failed"), "{report}");
    // COPY prints nothing, so there is no output section.
    assert!(!report.contains("output"), "{report}");
}

#[test]
fn a_copy_source_excluded_by_dockerignore_says_so() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = "FROM scratch\nCOPY secret.txt /etc/\n";
    let files = [("secret.txt", "s\n"), (".dockerignore", "secret.txt\n")];
    let (code, stderr) = build(&home, "ignored", dockerfile, &files);
    assert_eq!(code, 1, "{stderr}");
    let report = report_of(&stderr);
    assert!(
        report.contains(
            "COPY source `secret.txt` not found in the build context: it is excluded by .dockerignore"
        ),
        "{report}"
    );
    assert!(report.contains("ignored/Dockerfile:2"), "{report}");
}

#[test]
fn a_registry_asking_for_credentials_suggests_builder_login() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::with_htpasswd("alice", "secret") else {
        return;
    };
    let home = Home::new();
    let image = format!("{}/app:1", registry.host());
    let (code, stderr) = build(&home, "auth", &format!("FROM {image}\nRUN true\n"), &[]);
    assert_eq!(code, 1, "{stderr}");
    let report = report_of(&stderr);
    assert!(
        report.contains(&format!("auth/Dockerfile:1: FROM {image}")),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "{image}: registry answered 401 Unauthorized (UNAUTHORIZED: authentication required)"
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "help: run `builder login {}` first",
            registry.host()
        )),
        "{report}"
    );
    assert!(report.contains("1 │ FROM "), "{report}");
}

#[test]
fn a_push_the_registry_refuses_suggests_builder_login() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::with_htpasswd("alice", "secret") else {
        return;
    };
    let home = Home::new();
    let context = home.context("push", "FROM scratch\nCOPY busybox /bin/\n");
    let name = format!("{}/pushed:1", registry.host());
    let output = home
        .build(&["-t", &name, "--push", context.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let report = report_of(&stderr);
    assert!(
        report.contains(&format!("{name}: registry answered 401 Unauthorized")),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "help: run `builder login {}` first",
            registry.host()
        )),
        "{report}"
    );
}

#[test]
fn a_missing_base_image_names_the_status_and_code() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let _busybox = BaseImage::busybox(&registry);
    let home = Home::new();
    let image = format!("{}/busybox:no-such-tag", registry.host());
    let (code, stderr) = build(&home, "missing", &format!("FROM {image}\n"), &[]);
    assert_eq!(code, 1, "{stderr}");
    let report = report_of(&stderr);
    assert!(
        report.contains(&format!("missing/Dockerfile:1: FROM {image}")),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "{image}: registry answered 404 Not Found (MANIFEST_UNKNOWN: manifest unknown)"
        )),
        "{report}"
    );
    // The progress line of the FROM ends in an error too.
    assert!(stderr.contains("#1 ERROR"), "{stderr}");
}

#[test]
fn a_dockerfile_that_does_not_parse_points_at_line_and_column() {
    let home = Home::new();
    let context = home.context("parse", "FROM scratch\nCOPY --usr=1 a b\n");
    let output = home.build(&[context.to_str().unwrap()]).output().unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let report = report_of(&stderr);
    assert!(
        report.contains("parse/Dockerfile:2:6: unknown flag: --usr for COPY"),
        "{report}"
    );
    assert!(report.contains("2 │ COPY --usr=1 a b"), "{report}");
    assert!(report.contains("here"), "{report}");
}

#[test]
fn a_remote_context_is_refused_with_what_to_do() {
    let home = tempfile::tempdir().unwrap();
    let url = "https://github.com/example/app.git";
    let output = builder(home.path()).args(["build", url]).output().unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "CONTEXT \"{url}\" is a remote context (git, https): not supported yet"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("help: clone or download it and pass its directory or archive"),
        "{stderr}"
    );
}

#[test]
fn a_malformed_platform_is_a_usage_error() {
    let home = tempfile::tempdir().unwrap();
    let output = builder(home.path())
        .args(["build", "--platform", "linux/amd64,linux/amd65", "."])
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--platform: invalid platform \"linux/amd65\": unknown architecture"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_with_2() {
    let home = tempfile::tempdir().unwrap();
    let output = builder(home.path())
        .args(["build", "--no-such-flag", "."])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_of(&output).contains("unexpected argument '--no-such-flag'"));
    let bare = builder(home.path()).output().unwrap();
    assert_eq!(bare.status.code(), Some(2));
}
