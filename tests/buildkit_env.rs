//! ENV and ARG as BuildKit does them (cases after BuildKit's
//! `dockerfile_test.go` env and build-arg tests; each expectation checked
//! against BuildKit 0.8 with the same Dockerfile): expansion and its
//! modifiers, quoting and escapes, the legacy `ENV name value` form,
//! overriding in place, ARG scoping across FROM, `--build-arg`, the
//! predefined platform args, and ENV over ARG. Needs root; skipped otherwise.

mod support;

use support::build::{Home, can_build};
use support::built::BUSYBOX;

#[test]
fn env_expands_with_modifiers_quotes_and_escapes() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "env-expansion",
        &format!(
            "{BUSYBOX}ENV A=a B=${{A}}b\n\
             ENV C=\"$B c\" D=${{UNSET:-def}} E=${{A:+alt}} F=${{UNSET:+alt}}\n\
             ENV G=\\$A H='$A'\n\
             ENV LEGACY one two  three\n\
             LABEL l=$C\n\
             WORKDIR /$A\n\
             RUN echo \"$A|$B|$C|$D|$E|$F|$G|$H|$LEGACY\" > /env.txt && pwd > /pwd.txt\n"
        ),
    );
    let image = home.built(&context, &[]);
    assert_eq!(
        image.text("/env.txt"),
        "a|b|b c|def|alt||$A|$A|one two  three\n"
    );
    assert_eq!(image.text("/pwd.txt"), "/a\n");
    assert_eq!(
        image.runtime()["Env"],
        serde_json::json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "A=a",
            "B=b",
            "C=b c",
            "D=def",
            "E=alt",
            "F=",
            "G=$A",
            "H=$A",
            "LEGACY=one two  three"
        ])
    );
    assert_eq!(image.runtime()["Labels"]["l"], "b c");
    assert_eq!(image.runtime()["WorkingDir"], "/a");
}

#[test]
fn env_set_again_keeps_its_place() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "env-override",
        &format!("{BUSYBOX}ENV A=1 B=2\nENV A=3\nRUN echo \"$A$B\" > /ab\n"),
    );
    let image = home.built(&context, &[]);
    assert_eq!(image.text("/ab"), "32\n");
    assert_eq!(
        image.runtime()["Env"],
        serde_json::json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "A=3",
            "B=2"
        ])
    );
}

#[test]
fn args_before_from_are_for_from_and_redeclared_ones_get_the_global_default() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "arg-scope",
        "ARG V=global\nARG BASE=scratch\nFROM $BASE\n\
         COPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         RUN echo \"[$V]\" > /before\nARG V\nRUN echo \"[$V]\" > /after\n\
         ARG L=local\nRUN echo \"[$L]\" > /local\n\
         ARG NOVAL\nRUN echo \"[${NOVAL-unset}]\" > /noval\n",
    );
    let image = home.built(&context, &[]);
    assert_eq!(image.text("/before"), "[]\n");
    assert_eq!(image.text("/after"), "[global]\n");
    assert_eq!(image.text("/local"), "[local]\n");
    assert_eq!(image.text("/noval"), "[unset]\n");
    assert_eq!(image.env("V"), None);
    assert_eq!(image.env("L"), None);
}

#[test]
fn build_args_reach_run_but_not_the_config() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "build-arg",
        &format!("{BUSYBOX}ARG A=default\nARG B\nRUN echo \"$A|$B\" > /args\n"),
    );
    let image = home.built(&context, &["--build-arg", "A=cli", "--build-arg", "B=bee"]);
    assert_eq!(image.text("/args"), "cli|bee\n");
    assert_eq!(image.env("A"), None);
    assert_eq!(image.env("B"), None);
    assert_eq!(
        image.history().last().unwrap(),
        "RUN |2 A=cli B=bee /bin/sh -c echo \"$A|$B\" > /args # buildkit"
    );
}

#[test]
fn platform_args_name_this_machine() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "platform-args",
        &format!(
            "{BUSYBOX}ARG TARGETARCH\nARG TARGETOS\nARG TARGETPLATFORM\nARG BUILDPLATFORM\n\
             RUN echo \"$TARGETOS/$TARGETARCH $TARGETPLATFORM $BUILDPLATFORM\" > /plat\n"
        ),
    );
    let image = home.built(&context, &[]);
    let platform = format!("linux/{}", support::image::host_arch());
    assert_eq!(
        image.text("/plat"),
        format!("{platform} {platform} {platform}\n")
    );
}

#[test]
fn env_wins_over_an_earlier_arg_of_the_same_name() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "arg-env",
        &format!("{BUSYBOX}ARG A=arg\nENV A=env\nRUN echo $A > /a\n"),
    );
    let image = home.built(&context, &["--build-arg", "A=cli"]);
    assert_eq!(image.text("/a"), "env\n");
    assert_eq!(image.env("A").as_deref(), Some("env"));
}

#[test]
fn an_undeclared_build_arg_does_not_reach_run() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "undeclared",
        &format!("{BUSYBOX}RUN echo \"[$UNDECLARED]\" > /u\n"),
    );
    let image = home.built(&context, &["--build-arg", "UNDECLARED=x"]);
    assert_eq!(image.text("/u"), "[]\n");
}

#[test]
fn one_env_instruction_expands_with_the_values_from_before_it() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "env-self",
        &format!("{BUSYBOX}ENV PATH=$PATH:/x P2=${{PATH}}\n"),
    );
    let image = home.built(&context, &[]);
    let path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    assert_eq!(image.env("PATH"), Some(format!("{path}:/x")));
    assert_eq!(image.env("P2").as_deref(), Some(path));
}
