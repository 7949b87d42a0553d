//! `builder build` end to end on `fixtures/hello`: the files and config
//! of the image, build args, `--target`, and the step cache seen through
//! plain progress (a rebuild is all CACHED; an edit misses from the edited
//! step on and says why). Needs root; skipped otherwise.

mod support;

use predicates::str::contains;
use support::build::{Home, can_build, layout_image, stderr_of};

#[test]
fn hello_builds_into_a_local_directory() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.hello_context();
    let out = home.path("out");
    home.build(&[
        "-t",
        "hello",
        "-o",
        &format!("type=local,dest={}", out.display()),
        context.to_str().unwrap(),
    ])
    .assert()
    .success()
    .stderr(contains("#1 [base 2/3] COPY busybox /bin/busybox"))
    .stderr(contains("[stage-2 5/5] RUN chmod +x app.sh"))
    .stderr(contains("7 steps run, 0 cached"));
    assert_eq!(
        std::fs::read_to_string(out.join("srv/app/greeting.txt")).unwrap(),
        "hello from builder\n"
    );
    assert_eq!(
        std::fs::read_link(out.join("bin/sh")).unwrap(),
        std::path::Path::new("/bin/busybox")
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(out.join("srv/app/app.sh"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o111, 0o111, "RUN chmod +x took effect");
}

#[test]
fn a_build_arg_reaches_the_run_step() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.hello_context();
    let out = home.path("out");
    home.build(&[
        "--build-arg",
        "GREETING=hi",
        "-o",
        out.to_str().unwrap(),
        context.to_str().unwrap(),
    ])
    .assert()
    .success();
    assert_eq!(
        std::fs::read_to_string(out.join("srv/app/greeting.txt")).unwrap(),
        "hi from builder\n"
    );
}

#[test]
fn the_config_carries_user_workdir_labels_cmd_and_history() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.hello_context();
    let layout = home.path("layout");
    let iid = home.path("iid");
    let metadata = home.path("metadata.json");
    home.build(&[
        "-t",
        "hello:1",
        "--iidfile",
        iid.to_str().unwrap(),
        "--metadata-file",
        metadata.to_str().unwrap(),
        "-o",
        &format!("type=oci,tar=false,dest={}", layout.display()),
        context.to_str().unwrap(),
    ])
    .assert()
    .success();
    let (manifest, config) = layout_image(&layout);
    let run = &config["config"];
    assert_eq!(run["User"], "65534:65534");
    assert_eq!(run["WorkingDir"], "/srv/app");
    assert_eq!(run["Labels"]["org.opencontainers.image.title"], "hello");
    assert_eq!(run["Cmd"], serde_json::json!(["./app.sh"]));
    assert!(
        run["Env"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("APP_HOME=/srv/app"))
    );
    let history: Vec<&str> = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["created_by"].as_str().unwrap())
        .collect();
    assert_eq!(
        history,
        [
            "COPY busybox /bin/busybox # buildkit",
            r#"RUN /bin/busybox --install -s /bin # buildkit"#,
            "LABEL org.opencontainers.image.title=hello",
            "ENV APP_HOME=/srv/app",
            "WORKDIR /srv/app",
            "COPY /greeting.txt ./ # buildkit",
            "COPY app.sh ./ # buildkit",
            "RUN /bin/sh -c chmod +x app.sh # buildkit",
            "USER 65534:65534",
            r#"CMD ["./app.sh"]"#,
        ]
    );
    // One layer per layer-making step; diff IDs match.
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 6);
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 6);

    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), config_digest);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metadata).unwrap()).unwrap();
    assert_eq!(meta["containerimage.config.digest"], config_digest);
    assert_eq!(meta["image.name"], "docker.io/library/hello:1");
    assert_eq!(
        meta["containerimage.descriptor"]["digest"],
        meta["containerimage.digest"]
    );
}

#[test]
fn a_rebuild_is_cached_and_an_edit_misses_from_the_edited_step_on() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.hello_context();
    let dir = context.to_str().unwrap();
    home.build(&[dir]).assert().success();

    let output = home.build(&[dir]).assert().success().get_output().clone();
    let stderr = stderr_of(&output);
    assert_eq!(stderr.matches(" CACHED\n").count(), 7, "{stderr}");
    assert!(!stderr.contains(" DONE "), "{stderr}");
    assert!(stderr.contains("0 steps run, 7 cached"), "{stderr}");

    std::fs::write(context.join("app.sh"), "#!/bin/sh\necho changed\n").unwrap();
    let output = home.build(&[dir]).assert().success().get_output().clone();
    let stderr = stderr_of(&output);
    assert!(stderr.contains("2 steps run, 5 cached"), "{stderr}");
    let copy = stderr
        .lines()
        .find(|l| l.ends_with("COPY app.sh ./"))
        .and_then(|l| l.split(' ').next())
        .expect("the COPY app.sh step")
        .to_owned();
    assert!(
        stderr.contains(&format!("{copy} cache miss: `app.sh` changed (sha256 ")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("{copy} DONE ")), "{stderr}");
}

#[test]
fn target_builds_only_the_stages_it_needs() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.hello_context();
    let out = home.path("out");
    let output = home
        .build(&[
            "--target",
            "greeting",
            "-o",
            out.to_str().unwrap(),
            context.to_str().unwrap(),
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = stderr_of(&output);
    assert!(!stderr.contains("stage-2"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(out.join("greeting.txt")).unwrap(),
        "hello from builder\n"
    );
    assert!(!out.join("srv").exists());
}
