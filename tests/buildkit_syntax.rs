//! Dockerfile syntax as BuildKit reads it (cases after BuildKit's
//! `dockerfile_test.go` parsing tests; each expectation checked against
//! BuildKit 0.8 with the same Dockerfile): the `escape` directive, line
//! continuations, quoting in LABEL and ENV, ARG defaults built from other
//! ARGs, port ranges in EXPOSE. Needs root; skipped otherwise.

mod support;

use serde_json::json;
use support::build::{Home, can_build};
use support::built::BUSYBOX;

#[test]
fn the_escape_directive_changes_the_continuation_and_escape_character() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "escape",
        &format!("# escape=`\n{BUSYBOX}RUN echo a `\n    b > /joined\nLABEL k=\"v`\"q\"\n"),
    );
    let image = home.built(&context, &[]);
    assert_eq!(image.text("/joined"), "a b\n");
    assert_eq!(image.runtime()["Labels"], json!({"k": "v\"q"}));
}

#[test]
fn continued_lines_and_quoted_keys_in_label() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "label-lines",
        &format!("{BUSYBOX}LABEL a=1 \\\n      b=2 \\\n      \"c d\"=3\n"),
    );
    let image = home.built(&context, &[]);
    assert_eq!(
        image.runtime()["Labels"],
        json!({"a": "1", "b": "2", "c d": "3"})
    );
}

#[test]
fn arg_defaults_use_earlier_args_and_env_keeps_escaped_quotes() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "arg-chain",
        &format!(
            "{BUSYBOX}ARG A=1\nARG B=${{A}}2\nARG C=\"$B 3\"\nRUN echo \"$B|$C\" > /chain\n\
             ENV EMPTY=\nENV Q=\"x\\\"y\"\n"
        ),
    );
    let image = home.built(&context, &[]);
    assert_eq!(image.text("/chain"), "12|12 3\n");
    assert_eq!(image.env("EMPTY").as_deref(), Some(""));
    assert_eq!(image.env("Q").as_deref(), Some("x\"y"));
}

#[test]
fn expose_takes_port_ranges() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "expose-range",
        &format!("{BUSYBOX}EXPOSE 8000-8002 9000/udp\n"),
    );
    let image = home.built(&context, &[]);
    assert_eq!(
        image.runtime()["ExposedPorts"],
        json!({"8000/tcp": {}, "8001/tcp": {}, "8002/tcp": {}, "9000/udp": {}})
    );
}
