//! Image config and history for each instruction, compared with what
//! BuildKit writes for the same Dockerfile.

use builder::exec::config::ImageConfig;
use builder::exec::meta::{
    CommandLine, ConfigChange, HealthcheckSpec, StageMeta, apply, finish, record_step,
    run_created_by, shell_argv, stage_config, timestamp,
};
use builder::image::PlatformSpec;
use serde_json::json;
use std::time::Duration;

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_dockerfile_gives_buildkits_config_and_history() {
    let created = timestamp(Some(1_700_000_000));
    let mut config = stage_config(None, &PlatformSpec::parse("linux/amd64").unwrap());
    let mut stage = StageMeta::default();
    let steps = vec![
        ConfigChange::Arg(vec![("VERSION".into(), Some("1.2".into()))]),
        ConfigChange::Env(pairs(&[("A", "b"), ("C", "d e")])),
        ConfigChange::Label(pairs(&[("org.example.v", "1.2")])),
        ConfigChange::Maintainer("Jane <jane@example.com>".into()),
        ConfigChange::Workdir("/srv/app".into()),
        ConfigChange::User("app".into()),
        ConfigChange::Expose(vec!["80".into(), "53/udp".into()]),
        ConfigChange::Volume(vec!["/data".into(), "/logs".into()]),
        ConfigChange::StopSignal("SIGQUIT".into()),
        ConfigChange::Healthcheck(Some(HealthcheckSpec {
            command: CommandLine::Shell("wget -q localhost".into()),
            interval: Some(Duration::from_secs(30)),
            timeout: Some(Duration::from_secs(3)),
            start_period: None,
            start_interval: None,
            retries: Some(3),
        })),
        ConfigChange::Shell(vec![
            "/bin/ash".into(),
            "-eo".into(),
            "pipefail".into(),
            "-c".into(),
        ]),
        ConfigChange::Onbuild("RUN echo child".into()),
        ConfigChange::Entrypoint(CommandLine::Exec(vec!["/entry".into()])),
        ConfigChange::Cmd(CommandLine::Exec(vec!["./app.sh".into()])),
    ];
    for step in &steps {
        apply(&mut config, &mut stage, step, Some(&created)).unwrap();
    }
    let argv = shell_argv(&config, "echo hi");
    let diff_id = builder::digest::sha256(b"layer");
    record_step(
        &mut config,
        run_created_by(&argv, &pairs(&[("VERSION", "1.2")])),
        Some(&diff_id),
        &created,
    );
    record_step(
        &mut config,
        run_created_by(&["/bin/true".into()], &[]),
        None,
        &created,
    );
    finish(&mut config, Some(&created));

    let doc: serde_json::Value = serde_json::from_slice(&config.to_canonical_json()).unwrap();
    assert_eq!(doc["created"], "2023-11-14T22:13:20Z");
    assert_eq!(doc["author"], "Jane <jane@example.com>");
    assert_eq!(
        doc["config"],
        json!({
            "Env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "A=b",
                "C=d e"
            ],
            "Labels": {"org.example.v": "1.2"},
            "WorkingDir": "/srv/app",
            "User": "app",
            "ExposedPorts": {"53/udp": {}, "80/tcp": {}},
            "Volumes": {"/data": {}, "/logs": {}},
            "StopSignal": "SIGQUIT",
            "Healthcheck": {
                "Test": ["CMD-SHELL", "wget -q localhost"],
                "Interval": 30_000_000_000i64,
                "Timeout": 3_000_000_000i64,
                "Retries": 3
            },
            "Shell": ["/bin/ash", "-eo", "pipefail", "-c"],
            "OnBuild": ["RUN echo child"],
            "Entrypoint": ["/entry"],
            "Cmd": ["./app.sh"],
            "ArgsEscaped": true
        })
    );
    assert_eq!(
        doc["rootfs"],
        json!({"type": "layers", "diff_ids": [diff_id.to_string()]})
    );
    let history: Vec<(String, bool)> = config
        .history
        .iter()
        .map(|h| {
            assert_eq!(h.comment.as_deref(), Some("buildkit.dockerfile.v0"));
            assert_eq!(h.created.as_deref(), Some("2023-11-14T22:13:20Z"));
            (h.created_by.clone().unwrap(), h.empty_layer)
        })
        .collect();
    let expected: Vec<(String, bool)> = [
        ("ARG VERSION=1.2", true),
        ("ENV A=b C=d e", true),
        ("LABEL org.example.v=1.2", true),
        ("MAINTAINER Jane <jane@example.com>", true),
        ("WORKDIR /srv/app", true),
        ("USER app", true),
        ("EXPOSE [80/tcp 53/udp]", true),
        ("VOLUME [/data /logs]", true),
        ("STOPSIGNAL SIGQUIT", true),
        (
            r#"HEALTHCHECK &{["CMD-SHELL" "wget -q localhost"] "30s" "3s" "0s" "0s" '\x03'}"#,
            true,
        ),
        ("SHELL [/bin/ash -eo pipefail -c]", true),
        (r#"ENTRYPOINT ["/entry"]"#, true),
        (r#"CMD ["./app.sh"]"#, true),
        (
            "RUN |1 VERSION=1.2 /bin/ash -eo pipefail -c echo hi # buildkit",
            false,
        ),
        ("RUN /bin/true # buildkit", true),
    ]
    .iter()
    .map(|(text, empty)| (text.to_string(), *empty))
    .collect();
    assert_eq!(history, expected);
    // empty_layer is written only when true, as BuildKit's JSON has it.
    let entries = doc["history"].as_array().unwrap();
    assert_eq!(entries[13].get("empty_layer"), None);
    assert_eq!(entries[0]["empty_layer"], true);
}

#[test]
fn the_base_images_settings_are_kept_and_invalid_values_refused() {
    let base = ImageConfig::parse(
        br#"{"architecture":"arm64","os":"linux","config":{"Env":["HOME=/root"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:aa"]},"history":[{"created_by":"base"}]}"#,
    )
    .unwrap();
    let mut config = stage_config(Some(base), &PlatformSpec::host());
    assert_eq!(config.architecture, "arm64");
    assert_eq!(config.env_value("HOME"), Some("/root"));
    assert_eq!(
        config.env_value("PATH"),
        Some("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    );
    assert_eq!(config.history.len(), 1);
    let mut stage = StageMeta::default();
    apply(
        &mut config,
        &mut stage,
        &ConfigChange::Entrypoint(CommandLine::Shell("exec app".into())),
        Some("t"),
    )
    .unwrap();
    assert_eq!(config.config.cmd, None, "ENTRYPOINT clears the base's CMD");
    assert_eq!(
        config.config.entrypoint,
        Some(vec!["/bin/sh".into(), "-c".into(), "exec app".into()])
    );
    for bad in [
        ConfigChange::Expose(vec!["http".into()]),
        ConfigChange::Volume(vec![String::new()]),
        ConfigChange::StopSignal("SIGWHATEVER".into()),
        ConfigChange::Shell(vec![]),
    ] {
        let before = config.clone();
        let err = apply(&mut config, &mut stage, &bad, Some("t")).unwrap_err();
        assert!(!err.to_string().is_empty());
        assert_eq!(config, before, "{bad:?} changed nothing");
    }
    let mut stage = StageMeta::default();
    apply(
        &mut config,
        &mut stage,
        &ConfigChange::Healthcheck(None),
        Some("t"),
    )
    .unwrap();
    assert_eq!(
        config.history.last().unwrap().created_by.as_deref(),
        Some(r#"HEALTHCHECK &{["NONE"] "0s" "0s" "0s" "0s" '\x00'}"#)
    );
}
