//! `builder build` of `fixtures/every`, a multi-stage Dockerfile using
//! every instruction, written both as an OCI layout and as a directory:
//! the config each instruction leaves (ENTRYPOINT clearing the base's CMD,
//! ONBUILD kept by the stage that declares it and run by the one built on
//! it), the history, the files (the trigger's, ADD's extracted tar, COPY
//! --chown/--chmod), and the documents against the image-spec schemas.
//! Needs root; skipped otherwise.

mod support;

use serde_json::{Value, json};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use support::build::{Home, can_build, layout_blob, layout_image};
use support::schema::Doc;

/// Builds the fixture (target `target`, if any) into an OCI layout and a
/// directory; returns (layout, directory).
fn build_every(home: &Home, target: Option<&str>) -> (std::path::PathBuf, std::path::PathBuf) {
    let context = home.every_context();
    let layout = home.path("layout");
    let out = home.path("out");
    let oci = format!("type=oci,dest={},tar=false", layout.display());
    let local = format!("type=local,dest={}", out.display());
    let mut args = vec!["-o", &oci, "-o", &local];
    if let Some(target) = target {
        args.extend(["--target", target]);
    }
    let context = context.to_str().unwrap().to_owned();
    args.push(&context);
    home.build(&args).assert().success();
    (layout, out)
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn owner(path: &Path) -> (u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.uid(), meta.gid())
}

#[test]
fn every_instruction_leaves_its_config_history_and_files() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let (layout, out) = build_every(&home, None);
    let (manifest, config) = layout_image(&layout);
    let run = &config["config"];

    // ENV (with the default PATH of a scratch image), LABEL (the ONBUILD
    // trigger's too, the stage ARG expanded), EXPOSE, VOLUME.
    assert_eq!(
        run["Env"],
        json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "APP_HOME=/srv/app",
            "GREETING=hello world"
        ])
    );
    assert_eq!(
        run["Labels"],
        json!({
            "description": "every instruction",
            "from.onbuild": "yes",
            "org.opencontainers.image.version": "2.0"
        })
    );
    assert_eq!(run["ExposedPorts"], json!({"53/udp": {}, "8080/tcp": {}}));
    assert_eq!(run["Volumes"], json!({"/cache": {}, "/data": {}}));
    assert_eq!(run["User"], "app");
    assert_eq!(run["WorkingDir"], "/srv/app");
    // ENTRYPOINT in a stage that set no CMD drops the base's CMD ["sh"].
    assert_eq!(run["Entrypoint"], json!(["./app.sh"]));
    assert!(run.get("Cmd").is_none_or(Value::is_null), "{run}");
    assert_eq!(run["StopSignal"], "SIGTERM");
    assert_eq!(
        run["Healthcheck"],
        json!({
            "Test": ["CMD-SHELL", "test -x /srv/app/app.sh"],
            "Interval": 30_000_000_000u64,
            "Timeout": 5_000_000_000u64,
            "Retries": 3
        })
    );
    assert_eq!(run["Shell"], json!(["/bin/sh", "-ec"]));
    // The triggers ran; the image built on them keeps none.
    assert!(run.get("OnBuild").is_none_or(Value::is_null), "{run}");
    assert_eq!(config["author"], "Builder Team <team@example.com>");

    // History: one entry per instruction (ONBUILD leaves none, as in
    // BuildKit), empty_layer exactly on those that made no layer.
    let history: Vec<(&str, bool)> = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["created_by"].as_str().unwrap(),
                h["empty_layer"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    let heredoc = "RUN /bin/sh -c mkdir -p /etc /srv\n\
                   echo 'root:x:0:0:root:/root:/bin/sh' > /etc/passwd\n\
                   echo 'app:x:1000:1000:app:/srv/app:/bin/sh' >> /etc/passwd\n\
                   echo 'root:x:0:' > /etc/group\n\
                   echo 'app:x:1000:' >> /etc/group\n # buildkit";
    let expected: Vec<(&str, bool)> = vec![
        ("COPY busybox /bin/busybox # buildkit", false),
        ("RUN /bin/busybox --install -s /bin # buildkit", false),
        (heredoc, false),
        (r#"CMD ["sh"]"#, true),
        (
            r#"RUN /bin/sh -c echo "triggered in $(pwd)" > /onbuild.txt # buildkit"#,
            false,
        ),
        ("LABEL from.onbuild=yes", true),
        ("ARG VERSION=2.0", true),
        (
            "LABEL org.opencontainers.image.version=2.0 description=every instruction",
            true,
        ),
        ("MAINTAINER Builder Team <team@example.com>", true),
        ("EXPOSE [8080/tcp 53/udp]", true),
        ("ENV APP_HOME=/srv/app GREETING=hello world", true),
        ("WORKDIR /srv/app", false),
        ("ADD payload.tar.gz /srv/ # buildkit", false),
        ("COPY /out/ ./tools/ # buildkit", false),
        ("COPY app.sh ./ # buildkit", false),
        ("COPY config.txt ./ # buildkit", false),
        (
            "RUN |1 VERSION=2.0 /bin/sh -c echo exec form > exec.txt # buildkit",
            false,
        ),
        ("SHELL [/bin/sh -ec]", true),
        (
            r#"RUN |1 VERSION=2.0 /bin/sh -ec echo "shell form $VERSION $GREETING" > shell.txt # buildkit"#,
            false,
        ),
        ("VOLUME [/data /cache]", true),
        (
            r#"HEALTHCHECK &{["CMD-SHELL" "test -x /srv/app/app.sh"] "30s" "5s" "0s" "0s" '\x03'}"#,
            true,
        ),
        ("STOPSIGNAL SIGTERM", true),
        ("USER app", true),
        (r#"ENTRYPOINT ["./app.sh"]"#, true),
    ];
    assert_eq!(history, expected);
    let layers = manifest["layers"].as_array().unwrap().len();
    assert_eq!(layers, expected.iter().filter(|(_, empty)| !empty).count());
    assert_eq!(
        config["rootfs"]["diff_ids"].as_array().unwrap().len(),
        layers
    );

    // Files: the trigger ran at the start of the stage (before WORKDIR).
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    assert_eq!(read("onbuild.txt"), "triggered in /\n");
    // The global ARG's default reached the stage that redeclared it.
    assert_eq!(read("srv/app/tools/note.txt"), "from a global arg\n");
    assert_eq!(read("srv/app/exec.txt"), "exec form\n");
    assert_eq!(read("srv/app/shell.txt"), "shell form 2.0 hello world\n");
    // ADD extracted the local tar.gz, modes, owners and links kept.
    assert_eq!(read("srv/payload/readme.txt"), "read me\n");
    assert_eq!(mode(&out.join("srv/payload/bin/run")), 0o755);
    assert_eq!(owner(&out.join("srv/payload/bin/run")), (1000, 1000));
    assert_eq!(
        std::fs::read_link(out.join("srv/payload/latest")).unwrap(),
        Path::new("readme.txt")
    );
    assert!(!out.join("srv/payload.tar.gz").exists());
    // COPY --from --chown: the directory's contents, owned as asked.
    for path in ["srv/app/tools", "srv/app/tools/note.txt"] {
        assert_eq!(owner(&out.join(path)), (1000, 1000), "{path}");
    }
    assert_eq!(owner(&out.join("srv/app/tools/note-link")), (1000, 1000));
    assert_eq!(
        std::fs::read_link(out.join("srv/app/tools/note-link")).unwrap(),
        Path::new("note.txt")
    );
    // COPY --chmod, and --chown by names from the image's /etc/passwd.
    assert_eq!(mode(&out.join("srv/app/app.sh")), 0o750);
    assert_eq!(owner(&out.join("srv/app/app.sh")), (0, 0));
    assert_eq!(mode(&out.join("srv/app/config.txt")), 0o640);
    assert_eq!(owner(&out.join("srv/app/config.txt")), (1000, 1000));
    // The `tools` stage's own files stay in it.
    assert!(!out.join("out").exists());

    validate_layout(&layout);
}

#[test]
fn the_stage_declaring_onbuild_records_its_triggers() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let (layout, out) = build_every(&home, Some("base"));
    let (_, config) = layout_image(&layout);
    let run = &config["config"];
    assert_eq!(
        run["OnBuild"],
        json!([
            r#"RUN echo "triggered in $(pwd)" > /onbuild.txt"#,
            "LABEL from.onbuild=yes"
        ])
    );
    assert_eq!(run["Cmd"], json!(["sh"]));
    assert!(run.get("Labels").is_none_or(Value::is_null), "{run}");
    assert!(
        !out.join("onbuild.txt").exists(),
        "the triggers did not run"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("etc/group")).unwrap(),
        "root:x:0:\napp:x:1000:\n",
        "the RUN <<EOF script ran"
    );
    validate_layout(&layout);
}

/// The layout's index.json, manifest and config against the image-spec
/// schemas (skipped with a message when `../shared` is absent).
fn validate_layout(layout: &Path) {
    let Some((_, validator)) = support::schema::validator() else {
        return;
    };
    let index = std::fs::read(layout.join("index.json")).unwrap();
    validator
        .validate(Doc::Index, &index)
        .unwrap_or_else(|e| panic!("index.json: {e}"));
    let index: Value = serde_json::from_slice(&index).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let manifest = layout_blob(layout, digest);
    validator
        .validate(Doc::Manifest, &manifest)
        .unwrap_or_else(|e| panic!("manifest: {e}"));
    let manifest: Value = serde_json::from_slice(&manifest).unwrap();
    let config = layout_blob(layout, manifest["config"]["digest"].as_str().unwrap());
    validator
        .validate(Doc::Config, &config)
        .unwrap_or_else(|e| panic!("config: {e}"));
    let header = std::fs::read(layout.join("oci-layout")).unwrap();
    validator
        .validate(Doc::Layout, &header)
        .unwrap_or_else(|e| panic!("oci-layout: {e}"));
}
