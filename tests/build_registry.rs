//! Builds that reach a registry: a multi-stage Dockerfile FROM an image
//! in a real local registry (pulled into the store on first use, found
//! there afterwards), and `--push` of the result, read back by skopeo.
//! Needs root and Debian's docker-registry; skipped otherwise.

mod support;

use predicates::str::contains;
use support::build::{Home, can_build, layout_image, stderr_of};
use support::image::BaseImage;
use support::registry::Registry;

#[test]
fn a_multi_stage_build_from_a_registry_image_is_pushed_and_read_back() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let base = BaseImage::busybox(&registry);
    let home = Home::new();
    let dockerfile = format!(
        "FROM {image} AS build\n\
         RUN echo built > /artifact\n\
         FROM {image}\n\
         COPY --from=build /artifact /srv/artifact\n\
         RUN cat /srv/artifact > /srv/copy && rm /bin/vi\n\
         CMD [\"cat\", \"/srv/copy\"]\n",
        image = base.reference
    );
    let context = home.context("multi", &dockerfile);
    let target = format!("{}/built:1", registry.host());
    let out = home.path("out");
    let layout = home.path("layout");
    let output = home
        .build(&[
            "-t",
            &target,
            "--push",
            "-o",
            out.to_str().unwrap(),
            "-o",
            &format!("type=oci,tar=false,dest={}", layout.display()),
            context.to_str().unwrap(),
        ])
        .assert()
        .success()
        .stderr(contains(format!("FROM {}", base.reference)))
        .stderr(contains(format!("pushed {target}")))
        .get_output()
        .clone();
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("downloaded"),
        "the base was pulled: {stderr}"
    );

    assert_eq!(
        std::fs::read_to_string(out.join("srv/copy")).unwrap(),
        "built\n"
    );
    assert!(out.join("bin/busybox").is_file(), "the base layer is there");
    assert!(!out.join("bin/vi").exists(), "the removed applet is gone");
    assert!(!out.join("artifact").exists(), "the build stage stays out");

    let (manifest, config) = layout_image(&layout);
    let base_layer = manifest["layers"][0]["digest"].as_str().unwrap();
    assert_eq!(base_layer, base.layer, "the base layer is reused as is");
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["cat", "/srv/copy"])
    );

    let inspected = std::process::Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{target}"),
        ])
        .output()
        .unwrap();
    assert!(
        inspected.status.success(),
        "{}",
        String::from_utf8_lossy(&inspected.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(info["Digest"], index["manifests"][0]["digest"]);
    assert_eq!(info["Layers"].as_array().unwrap().len(), 3);

    // A second build finds the base in the store: nothing is downloaded.
    let output = home
        .build(&[context.to_str().unwrap()])
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = stderr_of(&output);
    assert!(!stderr.contains("downloaded"), "{stderr}");
    assert!(stderr.contains("0 steps run, 3 cached"), "{stderr}");
}
