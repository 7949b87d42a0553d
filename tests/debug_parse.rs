//! `builder debug parse`: the syntax dump, `--check`, and how errors look.

use assert_cmd::Command;
use predicates::str::contains;

fn dockerfile(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("Dockerfile"), text).expect("write Dockerfile");
    dir
}

fn debug_parse(dir: &tempfile::TempDir, extra: &[&str]) -> assert_cmd::assert::Assert {
    Command::cargo_bin("builder")
        .expect("binary is built")
        .current_dir(dir.path())
        .args(["debug", "parse", "Dockerfile"])
        .args(extra)
        .assert()
}

#[test]
fn check_reports_flags_the_instruction_does_not_take() {
    let dir = dockerfile("FROM alpine\nCOPY --user=me a b\n");
    debug_parse(&dir, &[])
        .success()
        .stdout("(from \"alpine\")\n(copy [\"--user=me\"] \"a\" \"b\")\n");
    debug_parse(&dir, &["--check"])
        .failure()
        .stdout("")
        .stderr(contains("Dockerfile:2:6: unknown flag: --user for COPY"))
        .stderr(contains("2 │ COPY --user=me a b"));
}

#[test]
fn typos_get_a_suggestion_and_a_marker() {
    let dir = dockerfile("FROM alpine\nRUN true\nCPY a b\n");
    debug_parse(&dir, &[])
        .failure()
        .stderr(contains(
            "Dockerfile:3:1: unknown instruction: CPY (did you mean COPY?)",
        ))
        .stderr(contains("3 │ CPY a b"));
}

#[test]
fn missing_file_and_binary_input_fail_cleanly() {
    let dir = tempfile::tempdir().expect("temp dir");
    debug_parse(&dir, &[])
        .failure()
        .stderr(contains("cannot read Dockerfile"));
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("Dockerfile"), b"FROM a\nRUN \xff\xfe\n").expect("write");
    debug_parse(&dir, &[])
        .failure()
        .stderr(contains("Dockerfile:2:5: the file is not valid UTF-8"));
}
