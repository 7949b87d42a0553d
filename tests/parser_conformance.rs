//! BuildKit's own parser test files (`../shared/conformance/buildkit-parser`):
//! every positive case must dump byte for byte as BuildKit does, every
//! negative case must fail, and line numbers must match BuildKit's.

mod support;

use assert_cmd::Command;
use builder::dockerfile::{self, dump};
use std::path::{Path, PathBuf};

fn cases(dir: &Path) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("conformance case folder is readable")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.join("Dockerfile").is_file())
        .collect();
    cases.sort();
    cases
}

#[test]
fn positive_cases_dump_like_buildkit() {
    let Some(dir) = support::conformance_dir("buildkit-parser") else {
        return;
    };
    let cases = cases(&dir.join("testfiles"));
    assert!(!cases.is_empty(), "no positive cases found");
    let mut failures = Vec::new();
    for case in &cases {
        let bytes = std::fs::read(case.join("Dockerfile")).expect("Dockerfile is readable");
        let expected = std::fs::read_to_string(case.join("result")).expect("result is readable");
        match dockerfile::parse_bytes("Dockerfile", &bytes) {
            Ok(tree) => {
                let got = dump::dump(&tree);
                if got != expected {
                    failures.push(format!(
                        "{}:\n--- expected\n{expected}--- got\n{got}",
                        case.display()
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: {e}", case.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn negative_cases_fail_with_a_location() {
    let Some(dir) = support::conformance_dir("buildkit-parser") else {
        return;
    };
    let cases = cases(&dir.join("testfiles-negative"));
    assert!(!cases.is_empty(), "no negative cases found");
    for case in &cases {
        let bytes = std::fs::read(case.join("Dockerfile")).expect("Dockerfile is readable");
        // A negative case may be a syntax error or an instruction error
        // (`ENV PATH` without a value is refused by the syntax already).
        let err = dockerfile::parse_bytes("Dockerfile", &bytes)
            .expect_err(&format!("{} must not parse", case.display()));
        assert!(
            err.to_string()
                .starts_with(&format!("Dockerfile:{}:", err.line())),
            "{err}"
        );
    }
}

#[test]
fn line_numbers_match_buildkit() {
    let Some(dir) = support::conformance_dir("buildkit-parser") else {
        return;
    };
    let bytes = std::fs::read(dir.join("testfile-line/Dockerfile")).expect("readable");
    let tree = dockerfile::parse_bytes("Dockerfile", &bytes).expect("parses");
    assert_eq!(tree.line_range(), (5, 31));
    let lines: Vec<_> = tree
        .nodes
        .iter()
        .map(|n| (n.span.start.line, n.span.end.line))
        .collect();
    assert_eq!(lines, [(5, 5), (11, 12), (17, 31)]);
}

#[test]
fn cli_prints_the_dump() {
    let Some(dir) = support::conformance_dir("buildkit-parser") else {
        return;
    };
    let case = dir.join("testfiles/flags");
    let expected = std::fs::read_to_string(case.join("result")).expect("readable");
    Command::cargo_bin("builder")
        .expect("binary is built")
        .args(["debug", "parse"])
        .arg(case.join("Dockerfile"))
        .assert()
        .success()
        .stdout(expected);
}

#[test]
fn cli_reports_errors_with_the_line_and_fails() {
    let Some(dir) = support::conformance_dir("buildkit-parser") else {
        return;
    };
    Command::cargo_bin("builder")
        .expect("binary is built")
        .current_dir(dir.join("testfiles-negative/env_no_value"))
        .args(["debug", "parse", "Dockerfile"])
        .assert()
        .failure()
        .stderr(predicates::str::contains(
            "Dockerfile:3:5: ENV must have two arguments",
        ))
        .stderr(predicates::str::contains("3 │ ENV PATH"));
}
