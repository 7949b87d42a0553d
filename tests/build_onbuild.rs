//! ONBUILD triggers of a registry image: a base built by builder with
//! ONBUILD lines and pushed to a local registry; a build `FROM` it runs the
//! triggers first (a RUN, a COPY from its own context, a COPY --from one of
//! its stages that nothing else needs), and its image keeps no triggers.
//! Needs root and Debian's docker-registry; skipped otherwise.

mod support;

use predicates::str::contains;
use support::build::{Home, can_build, layout_image, stderr_of};
use support::registry::Registry;

#[test]
fn the_triggers_of_a_pulled_base_run_first_and_do_not_carry_over() {
    if !can_build() {
        return;
    }
    let Some(registry) = Registry::start() else {
        return;
    };
    let base = format!("{}/base", registry.host());
    let base_home = Home::new();
    let base_context = base_home.context(
        "base",
        "FROM scratch\n\
         COPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n\
         ONBUILD RUN echo triggered > /onbuild.txt\n\
         ONBUILD COPY app.txt /app.txt\n\
         ONBUILD COPY --from=files /note.txt /note.txt\n",
    );
    let base_layout = base_home.path("layout");
    base_home
        .build(&[
            "-t",
            &base,
            "--push",
            "-o",
            &format!("type=oci,tar=false,dest={}", base_layout.display()),
            base_context.to_str().unwrap(),
        ])
        .assert()
        .success()
        .stderr(contains(format!("pushed {base}")));
    let (_, base_config) = layout_image(&base_layout);
    assert_eq!(
        base_config["config"]["OnBuild"],
        serde_json::json!([
            "RUN echo triggered > /onbuild.txt",
            "COPY app.txt /app.txt",
            "COPY --from=files /note.txt /note.txt"
        ]),
        "the base image carries its triggers"
    );

    // A fresh store: the base is pulled from the registry.
    let home = Home::new();
    let context = home.context(
        "child",
        &format!(
            "FROM scratch AS files\n\
             COPY note.txt /note.txt\n\
             FROM {base}\n\
             RUN cat /onbuild.txt /app.txt /note.txt > /seen.txt\n"
        ),
    );
    std::fs::write(context.join("app.txt"), "from the child's context\n").unwrap();
    std::fs::write(context.join("note.txt"), "from the files stage\n").unwrap();
    let (out, layout) = (home.path("out"), home.path("layout"));
    let output = home
        .build(&[
            "-o",
            out.to_str().unwrap(),
            "-o",
            &format!("type=oci,tar=false,dest={}", layout.display()),
            context.to_str().unwrap(),
        ])
        .assert()
        .success()
        .stderr(contains(
            "[stage-1 2/5] ONBUILD RUN echo triggered > /onbuild.txt",
        ))
        .stderr(contains(
            "[stage-1 4/5] ONBUILD COPY --from=files /note.txt /note.txt",
        ))
        .stderr(contains("[stage-1 5/5] RUN cat /onbuild.txt"))
        .get_output()
        .clone();
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("downloaded"),
        "the base was pulled: {stderr}"
    );
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    assert_eq!(read("onbuild.txt"), "triggered\n");
    assert_eq!(read("app.txt"), "from the child's context\n");
    assert_eq!(read("note.txt"), "from the files stage\n");
    assert_eq!(
        read("seen.txt"),
        "triggered\nfrom the child's context\nfrom the files stage\n",
        "the triggers ran before the stage's own RUN"
    );
    let (_, config) = layout_image(&layout);
    assert!(
        config["config"].get("OnBuild").is_none_or(|t| t.is_null()),
        "the triggers do not carry over: {config}"
    );

    // A second build is served from the cache, triggers included.
    home.build(&[context.to_str().unwrap()])
        .assert()
        .success()
        .stderr(contains("0 steps run, 5 cached"));
}
