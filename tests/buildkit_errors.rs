//! Dockerfiles BuildKit refuses, refused too (cases after BuildKit's
//! `dockerfile_test.go` error tests; each checked against BuildKit 0.8):
//! exit code 1, the problem named (in BuildKit's words where builder uses
//! them) and the Dockerfile line it is on. No step runs, so no root is
//! needed.

mod support;

use support::build::Home;

/// Builds a context holding only `dockerfile` and returns stderr, which
/// must come with exit code 1.
fn refused(name: &str, dockerfile: &str) -> String {
    let home = Home::new();
    let context = home.context(name, dockerfile);
    home.build_fails(&context, &[])
}

#[test]
fn an_unknown_instruction_is_named_with_its_line() {
    let stderr = refused("unknown", "FROM scratch\nFOO bar\n");
    assert!(stderr.contains("unknown instruction: FOO"), "{stderr}");
    assert!(stderr.contains("Dockerfile:2"), "{stderr}");
}

#[test]
fn a_base_that_expands_to_nothing_is_refused() {
    let stderr = refused("blank-base", "FROM $UNDEFINED\n");
    assert!(
        stderr.contains("base name ($UNDEFINED) should not be blank"),
        "{stderr}"
    );
}

#[test]
fn a_missing_copy_source_is_named() {
    let stderr = refused("missing", "FROM scratch\nCOPY missing /\n");
    assert!(stderr.contains("missing"), "{stderr}");
    assert!(stderr.contains("not found"), "{stderr}");
    assert!(stderr.contains("Dockerfile:2"), "{stderr}");
}

#[test]
fn an_unknown_flag_is_named() {
    let stderr = refused("flag", "FROM scratch\nCOPY --chown=1 --bogus=2 a /\n");
    assert!(stderr.to_lowercase().contains("unknown flag"), "{stderr}");
    assert!(stderr.contains("bogus"), "{stderr}");
    assert!(stderr.contains("Dockerfile:2"), "{stderr}");
}

#[test]
fn env_without_arguments_is_refused() {
    let stderr = refused("env", "FROM scratch\nENV\n");
    assert!(
        stderr.contains("ENV requires at least one argument"),
        "{stderr}"
    );
    assert!(stderr.contains("Dockerfile:2"), "{stderr}");
}

#[test]
fn bad_healthcheck_durations_ports_and_signals_are_refused() {
    let stderr = refused(
        "duration",
        "FROM scratch\nHEALTHCHECK --interval=x CMD true\n",
    );
    assert!(stderr.contains("invalid duration \"x\""), "{stderr}");
    let stderr = refused("port", "FROM scratch\nEXPOSE http\n");
    assert!(
        stderr.contains("EXPOSE") && stderr.contains("http"),
        "{stderr}"
    );
    assert!(stderr.contains("Dockerfile:2"), "{stderr}");
    let stderr = refused("signal", "FROM scratch\nSTOPSIGNAL SIGFOO\n");
    assert!(
        stderr.contains("STOPSIGNAL") && stderr.contains("SIGFOO"),
        "{stderr}"
    );
    assert!(stderr.contains("Dockerfile:2"), "{stderr}");
}

#[test]
fn copy_from_takes_no_variables() {
    let stderr = refused(
        "from-variable",
        "FROM scratch\nARG SRC=x\nCOPY --from=$SRC /a /b\n",
    );
    assert!(
        stderr.contains("variable expansion is not supported for --from"),
        "{stderr}"
    );
    assert!(stderr.contains("Dockerfile:3"), "{stderr}");
}
