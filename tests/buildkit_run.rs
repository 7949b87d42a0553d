//! RUN as BuildKit runs it (cases after BuildKit's `dockerfile_test.go` run
//! tests; each expectation checked against BuildKit 0.8 with the same
//! Dockerfile): exec and shell forms, the working directory, and what
//! later steps delete or replace (whiteouts, opaque directories, a hard
//! link outliving its first name). Needs root; skipped otherwise.

mod support;

use serde_json::json;
use support::build::{Home, can_build};
use support::built::BUSYBOX;

#[test]
fn exec_form_runs_without_a_shell_in_the_workdir() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "exec-form",
        &format!(
            "{BUSYBOX}ENV A=val\n\
             RUN [\"sh\", \"-c\", \"echo $A > /shell\"]\n\
             RUN [\"/bin/sh\", \"-c\", \"echo \\\"$0\\\" > /argv0\"]\n\
             WORKDIR /w\nRUN [\"touch\", \"rel\"]\nCMD echo $A\n"
        ),
    );
    let image = home.built(&context, &[]);
    assert_eq!(image.text("/shell"), "val\n");
    assert_eq!(image.text("/argv0"), "/bin/sh\n");
    assert_eq!(image.text("/w/rel"), "");
    assert_eq!(image.runtime()["Cmd"], json!(["/bin/sh", "-c", "echo $A"]));
}

#[test]
fn deletions_and_replacements_in_later_steps_show_in_the_image() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "file-ops",
        &format!(
            "{BUSYBOX}RUN mkdir -p /x/y && echo 1 > /x/y/f && ln -s y /x/l && ln /x/y/f /x/hard\n\
             RUN rm -rf /x/y && mkdir /x/y && echo 2 > /x/y/g\n\
             RUN rm /x/l\n"
        ),
    );
    let image = home.built(&context, &[]);
    assert_eq!(image.list("/x"), ["hard", "y"]);
    assert_eq!(image.text("/x/hard"), "1\n");
    assert_eq!(image.list("/x/y"), ["g"]);
    assert_eq!(image.text("/x/y/g"), "2\n");
    assert_eq!(image.mode("/x/y"), 0o755);
}

#[test]
fn an_exec_form_cmd_is_not_expanded_and_a_shell_form_entrypoint_gets_the_shell() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "env-in-cmd",
        &format!("{BUSYBOX}ENV A=val\nCMD [\"echo\", \"$A\"]\nENTRYPOINT echo $A\n"),
    );
    let image = home.built(&context, &[]);
    let config = image.runtime();
    // ENTRYPOINT after CMD in the same stage keeps the CMD.
    assert_eq!(config["Cmd"], json!(["echo", "$A"]));
    assert_eq!(config["Entrypoint"], json!(["/bin/sh", "-c", "echo $A"]));
}
