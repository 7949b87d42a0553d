//! What metadata instructions write into the image config, as BuildKit
//! does (cases after BuildKit's `dockerfile_test.go` config tests; each
//! expectation checked against BuildKit 0.8 with the same Dockerfile):
//! SHELL, CMD and ENTRYPOINT forms, LABEL, EXPOSE, VOLUME, STOPSIGNAL,
//! HEALTHCHECK, ONBUILD, MAINTAINER and USER. Needs root; skipped otherwise.

mod support;

use serde_json::json;
use support::build::{Home, can_build};
use support::built::BUSYBOX;

/// [`BUSYBOX`] as a stage named `base`.
fn base_stage() -> String {
    BUSYBOX.replace("FROM scratch", "FROM scratch AS base")
}

#[test]
fn shell_sets_the_shell_of_run_and_of_shell_form_cmd() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "shell",
        &format!(
            "{BUSYBOX}SHELL [\"/bin/sh\", \"-ec\"]\nRUN echo $0 > /shell-check; echo shell\n\
             CMD echo hi\nENTRYPOINT [\"/bin/echo\"]\n"
        ),
    );
    let image = home.built(&context, &[]);
    assert_eq!(image.text("/shell-check"), "/bin/sh\n");
    let config = image.runtime();
    assert_eq!(config["Shell"], json!(["/bin/sh", "-ec"]));
    assert_eq!(config["Cmd"], json!(["/bin/sh", "-ec", "echo hi"]));
    assert_eq!(config["Entrypoint"], json!(["/bin/echo"]));
    assert_eq!(
        image.history().last().unwrap(),
        "ENTRYPOINT [\"/bin/echo\"]"
    );
}

#[test]
fn entrypoint_drops_the_cmd_of_the_stage_below() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "entrypoint",
        &format!(
            "{}CMD [\"base-cmd\"]\nFROM base\nENTRYPOINT /bin/true\n",
            base_stage()
        ),
    );
    let image = home.built(&context, &[]);
    let config = image.runtime();
    assert_eq!(config["Entrypoint"], json!(["/bin/sh", "-c", "/bin/true"]));
    assert!(
        config.get("Cmd").is_none_or(|cmd| cmd.is_null()),
        "{config}"
    );
}

#[test]
fn labels_and_exposed_ports() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "labels",
        &format!(
            "{BUSYBOX}LABEL a=1 \"b c\"=\"d e\" f='g'\nLABEL a=2\nENV P=8080\n\
             EXPOSE 80 $P/udp 90/tcp\nEXPOSE 80/tcp\n"
        ),
    );
    let image = home.built(&context, &[]);
    let config = image.runtime();
    assert_eq!(config["Labels"], json!({"a": "2", "b c": "d e", "f": "g"}));
    assert_eq!(
        config["ExposedPorts"],
        json!({"80/tcp": {}, "8080/udp": {}, "90/tcp": {}})
    );
}

#[test]
fn volumes_keep_what_later_steps_write_and_stopsignal_is_set() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "volumes",
        &format!(
            "{BUSYBOX}VOLUME /data\nVOLUME [\"/logs\", \"/cache\"]\nVOLUME /a /b\n\
             RUN mkdir -p /data && echo kept > /data/f\nSTOPSIGNAL SIGQUIT\n"
        ),
    );
    let image = home.built(&context, &[]);
    let config = image.runtime();
    assert_eq!(
        config["Volumes"],
        json!({"/a": {}, "/b": {}, "/cache": {}, "/data": {}, "/logs": {}})
    );
    assert_eq!(config["StopSignal"], "SIGQUIT");
    assert_eq!(image.text("/data/f"), "kept\n");
}

#[test]
fn healthcheck_with_options_and_none() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "healthcheck",
        &format!(
            "{}HEALTHCHECK --interval=5s --timeout=3s --start-period=2s --retries=4 CMD wget -q localhost || exit 1\n\
             FROM base AS none\nHEALTHCHECK NONE\n",
            base_stage()
        ),
    );
    let base = home.built(&context, &["--target", "base"]);
    assert_eq!(
        base.runtime()["Healthcheck"],
        json!({
            "Test": ["CMD-SHELL", "wget -q localhost || exit 1"],
            "Interval": 5_000_000_000u64,
            "Timeout": 3_000_000_000u64,
            "StartPeriod": 2_000_000_000u64,
            "Retries": 4
        })
    );
    let none = home.built(&context, &[]);
    assert_eq!(none.runtime()["Healthcheck"], json!({"Test": ["NONE"]}));
}

#[test]
fn healthcheck_exec_form() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "healthcheck-exec",
        &format!("{BUSYBOX}HEALTHCHECK CMD [\"/bin/true\"]\n"),
    );
    let image = home.built(&context, &[]);
    assert_eq!(
        image.runtime()["Healthcheck"],
        json!({"Test": ["CMD", "/bin/true"]})
    );
}

#[test]
fn onbuild_triggers_are_listed_and_run_in_a_stage_built_on_them() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "onbuild",
        &format!(
            "{}ONBUILD RUN echo triggered > /triggered\nONBUILD ENV T=1\n\
             FROM base\nRUN echo child > /child\n",
            base_stage()
        ),
    );
    let base = home.built(&context, &["--target", "base"]);
    assert_eq!(
        base.runtime()["OnBuild"],
        json!(["RUN echo triggered > /triggered", "ENV T=1"])
    );
    assert!(!base.has("/triggered"));
    let child = home.built(&context, &[]);
    assert_eq!(child.text("/triggered"), "triggered\n");
    assert_eq!(child.text("/child"), "child\n");
    assert_eq!(child.env("T").as_deref(), Some("1"));
    let runtime = child.runtime();
    assert!(
        runtime.get("OnBuild").is_none_or(|o| o.is_null()),
        "{runtime}"
    );
}

#[test]
fn maintainer_is_the_author_and_user_is_kept_as_written() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "maintainer",
        &format!("{BUSYBOX}MAINTAINER Jane <jane@example.com>\nUSER 1:2\n"),
    );
    let image = home.built(&context, &[]);
    assert_eq!(image.config["author"], "Jane <jane@example.com>");
    assert_eq!(image.runtime()["User"], "1:2");
}

#[test]
fn history_names_each_step_as_buildkit_does() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "history",
        &format!(
            "{BUSYBOX}ENV A=1\nCOPY a /a\nWORKDIR /w\nRUN true\nARG X=1\nRUN echo hi > f\n\
             ADD a /added\nUSER 1\nLABEL l=1\n"
        ),
    );
    std::fs::write(context.join("a"), "a").unwrap();
    let image = home.built(&context, &[]);
    assert_eq!(
        image.history(),
        [
            "COPY busybox /bin/busybox # buildkit",
            "RUN /bin/busybox --install -s /bin # buildkit",
            "ENV A=1",
            "COPY a /a # buildkit",
            "WORKDIR /w",
            "RUN /bin/sh -c true # buildkit",
            "ARG X=1",
            "RUN |1 X=1 /bin/sh -c echo hi > f # buildkit",
            "ADD a /added # buildkit",
            "USER 1",
            "LABEL l=1",
        ]
    );
    let history = image.config["history"].as_array().unwrap();
    for (index, empty) in [
        (2, true),
        (3, false),
        (6, true),
        (7, false),
        (8, false),
        (9, true),
        (10, true),
    ] {
        assert_eq!(
            history[index]["empty_layer"].as_bool().unwrap_or(false),
            empty,
            "{}",
            history[index]
        );
        assert_eq!(history[index]["comment"], "buildkit.dockerfile.v0");
    }
    assert_eq!(image.text("/w/f"), "hi\n");
}

#[test]
fn shell_applies_to_a_shell_form_entrypoint() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "shell-entrypoint",
        &format!("{BUSYBOX}SHELL [\"/bin/sh\", \"-ec\"]\nENTRYPOINT echo hi\n"),
    );
    let image = home.built(&context, &[]);
    assert_eq!(
        image.runtime()["Entrypoint"],
        json!(["/bin/sh", "-ec", "echo hi"])
    );
}

#[test]
fn labels_are_inherited_from_the_base_stage_and_overridden() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "label-inherit",
        &format!(
            "{}LABEL a=base b=base\nFROM base AS Final\nLABEL b=final\n",
            BUSYBOX.replace("FROM scratch", "FROM scratch AS Base")
        ),
    );
    // Stage names are matched without regard to case.
    let image = home.built(&context, &["--target", "FINAL"]);
    assert_eq!(
        image.runtime()["Labels"],
        json!({"a": "base", "b": "final"})
    );
}

#[test]
fn the_last_cmd_and_entrypoint_win_and_an_empty_cmd_clears_it() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "cmd-last",
        &format!(
            "{}CMD [\"a\"]\nCMD [\"b\"]\nENTRYPOINT [\"x\"]\nENTRYPOINT [\"y\"]\n\
             FROM base AS cleared\nCMD []\n",
            base_stage()
        ),
    );
    let base = home.built(&context, &["--target", "base"]);
    assert_eq!(base.runtime()["Cmd"], json!(["b"]));
    assert_eq!(base.runtime()["Entrypoint"], json!(["y"]));
    let cleared = home.built(&context, &[]);
    let cmd = &cleared.runtime()["Cmd"];
    assert!(cmd.is_null() || cmd == &json!([]), "{}", cleared.runtime());
    assert_eq!(cleared.runtime()["Entrypoint"], json!(["y"]));
}

/// Checked against BuildKit 0.8 (`DOCKER_BUILDKIT=1 docker build`) and
/// Buildah 1.28 with the same Dockerfiles: BuildKit sets `ArgsEscaped`
/// with every CMD, shell or exec form, and not for an ENTRYPOINT alone
/// (Buildah never sets it, so BuildKit's is followed); a metadata-only
/// `FROM scratch` image has no `created`, in its config or its history
/// (Buildah writes the build time; BuildKit's is followed).
#[test]
fn args_escaped_comes_with_cmd_and_a_scratch_image_has_no_created_time() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    for (name, dockerfile, args_escaped, cmd) in [
        (
            "shell-cmd",
            "CMD echo hi",
            Some(true),
            json!(["/bin/sh", "-c", "echo hi"]),
        ),
        (
            "exec-cmd",
            "CMD [\"echo\", \"hi\"]",
            Some(true),
            json!(["echo", "hi"]),
        ),
        ("shell-entrypoint", "ENTRYPOINT echo hi", None, json!(null)),
        (
            "exec-entrypoint",
            "ENTRYPOINT [\"echo\"]\nCMD [\"hi\"]",
            Some(true),
            json!(["hi"]),
        ),
        ("label", "LABEL a=b", None, json!(null)),
    ] {
        let context = home.context(name, &format!("FROM scratch\n{dockerfile}\n"));
        let image = home.built(&context, &[]);
        let config = image.runtime();
        assert_eq!(
            config.get("ArgsEscaped").and_then(|v| v.as_bool()),
            args_escaped,
            "{name}: {config}"
        );
        assert_eq!(
            config.get("Cmd").cloned().unwrap_or_default(),
            cmd,
            "{name}"
        );
        assert!(
            image.config.get("created").is_none(),
            "{name}: {}",
            image.config
        );
        for entry in image.config["history"].as_array().unwrap() {
            assert!(entry.get("created").is_none(), "{name}: {entry}");
        }
    }
}
