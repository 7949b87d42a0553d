//! The instruction graph: ARG/ENV scoping, stage edges, target pruning and
//! parallel groups, through the library and through `builder build
//! --dry-run` / `builder check`.

mod support;

use assert_cmd::Command;
use builder::image::{PlatformSpec, Reference};
use builder::plan::{
    self, Base, BuildArgs, CopySource, ErrorKind, Graph, LoadError, NamedContext, Options,
    Platforms, Source, StagePlan, StageStart, StepKind, Via,
};
use predicates::prelude::*;
use std::path::Path;

/// Builds on linux/amd64 for linux/arm64, so build and target args differ.
fn graph(dockerfile: &str, build_args: &[&str], target: Option<&str>) -> Result<Graph, LoadError> {
    let options = Options {
        build_args: BuildArgs::from_flags(build_args.iter().copied(), |_| None),
        target: target.map(str::to_owned),
        platforms: Platforms {
            build: PlatformSpec::parse("linux/amd64").unwrap(),
            target: PlatformSpec::parse("linux/arm64").unwrap(),
        },
        named_contexts: Default::default(),
    };
    plan::load("Dockerfile", dockerfile.as_bytes(), options)
}

/// Plans the stages the target needs, with external images unresolved.
fn plans(dockerfile: &str, build_args: &[&str]) -> Vec<StagePlan> {
    let graph = graph(dockerfile, build_args, None).unwrap();
    let needed: Vec<usize> = (0..graph.stages().len())
        .filter(|&i| graph.needed()[i])
        .collect();
    graph.plan_stages(&needed, &mut |_| None).unwrap()
}

/// The env the `n`-th RUN of the last planned stage runs with.
fn run_env(plans: &[StagePlan], n: usize) -> Vec<(String, String)> {
    let runs: Vec<_> = plans
        .last()
        .unwrap()
        .steps
        .iter()
        .filter_map(|s| match &s.kind {
            StepKind::Run(run) => Some(run),
            _ => None,
        })
        .collect();
    runs[n]
        .env
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn var(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn plan_error(dockerfile: &str, target: Option<&str>) -> plan::Error {
    match graph(dockerfile, &[], target) {
        Err(LoadError::Plan(e)) => e,
        Err(LoadError::Dockerfile(e)) => panic!("parse error instead of a plan error: {e}"),
        Ok(_) => panic!("planned without error"),
    }
}

#[test]
fn global_arg_names_the_base_image() {
    let g = graph(
        "ARG BASE=alpine\nARG TAG=3.19\nFROM ${BASE}:$TAG\n",
        &[],
        None,
    )
    .unwrap();
    let Base::Image(reference) = &g.stages()[0].base else {
        panic!("expected an image base");
    };
    assert_eq!(reference.to_string(), "docker.io/library/alpine:3.19");
    let g = graph("ARG BASE=alpine\nFROM $BASE\n", &["BASE=debian:12"], None).unwrap();
    let Base::Image(reference) = &g.stages()[0].base else {
        panic!("expected an image base");
    };
    assert_eq!(reference.to_string(), "docker.io/library/debian:12");
}

#[test]
fn global_platform_args_expand_in_from_platform() {
    let g = graph("FROM --platform=$BUILDPLATFORM alpine\n", &[], None).unwrap();
    assert_eq!(
        g.stages()[0].platform.as_ref().unwrap().to_string(),
        "linux/amd64"
    );
}

#[test]
fn redeclared_arg_takes_the_global_value_and_undeclared_is_invisible() {
    let plans = plans(
        "ARG V=1\nFROM scratch\nRUN a\nARG V\nRUN b\nENV W=x$V\n",
        &[],
    );
    assert_eq!(var(&run_env(&plans, 0), "V"), None);
    assert_eq!(var(&run_env(&plans, 1), "V"), Some("1".into()));
    let env = plans[0].env.config_env.to_config();
    assert!(env.contains(&"W=x1".to_owned()), "{env:?}");
    assert!(
        !env.iter().any(|e| e.starts_with("V=")),
        "ARG reached the config: {env:?}"
    );

    let plans = self::plans("ARG V=1\nFROM scratch\nENV W=x$V\n", &[]);
    assert!(
        plans[0]
            .env
            .config_env
            .to_config()
            .contains(&"W=x".to_owned())
    );
}

#[test]
fn build_args_override_defaults_and_defaults_expand_with_the_stage_env() {
    let plans = plans(
        "ARG G=global\nFROM scratch\nARG G\nENV A=1\nARG S=${A}2\nARG T=default\nRUN x\n",
        &["T=given", "G=cli"],
    );
    let env = run_env(&plans, 0);
    assert_eq!(var(&env, "S"), Some("12".into()));
    assert_eq!(var(&env, "T"), Some("given".into()));
    assert_eq!(var(&env, "G"), Some("cli".into()));
}

#[test]
fn env_wins_over_an_earlier_arg_of_the_same_name() {
    let plans = plans(
        "FROM scratch\nARG X=arg\nENV X=env\nRUN x\nENV Y=$X\n",
        &["X=cli"],
    );
    assert_eq!(var(&run_env(&plans, 0), "X"), Some("env".into()));
    assert!(
        plans[0]
            .env
            .config_env
            .to_config()
            .contains(&"Y=env".to_owned())
    );
}

#[test]
fn predefined_platform_args_are_seen_only_after_arg() {
    let plans = plans(
        "FROM scratch\nRUN a\nARG TARGETARCH\nARG BUILDPLATFORM\nRUN b\n",
        &[],
    );
    assert_eq!(var(&run_env(&plans, 0), "TARGETARCH"), None);
    let env = run_env(&plans, 1);
    assert_eq!(var(&env, "TARGETARCH"), Some("arm64".into()));
    assert_eq!(var(&env, "BUILDPLATFORM"), Some("linux/amd64".into()));
}

#[test]
fn proxy_args_reach_run_but_not_the_config() {
    let g = graph(
        "FROM scratch\nRUN x\n",
        &["HTTP_PROXY=http://proxy:3128", "no_proxy=local"],
        None,
    )
    .unwrap();
    let plans = g.plan_stages(&[0], &mut |_| None).unwrap();
    let StepKind::Run(run) = &plans[0].steps[0].kind else {
        panic!("expected RUN");
    };
    assert_eq!(run.proxy_env.get("HTTP_PROXY"), Some("http://proxy:3128"));
    assert_eq!(run.proxy_env.get("no_proxy"), Some("local"));
    assert_eq!(run.env.get("HTTP_PROXY"), None);
    assert!(plans[0].env.config_env.get("HTTP_PROXY").is_none());
    assert!(g.unused_build_args().is_empty());
}

#[test]
fn unused_build_args_are_listed() {
    let g = graph(
        "ARG USED\nFROM scratch\n",
        &["USED=1", "NOPE=2", "TARGETARCH=x"],
        None,
    )
    .unwrap();
    assert_eq!(g.unused_build_args(), ["NOPE"]);
}

const THREE_STAGES: &str = "\
FROM scratch AS a
RUN a
FROM scratch AS b
RUN b
FROM a AS c
COPY --from=b /b /b
FROM scratch AS d
";

#[test]
fn target_keeps_only_the_stages_it_needs() {
    let g = graph(THREE_STAGES, &[], Some("C")).unwrap();
    assert_eq!(g.target(), 2);
    assert_eq!(g.needed(), [true, true, true, false]);
    let skipped: Vec<usize> = g.skipped().into_iter().map(|(i, _)| i).collect();
    assert_eq!(skipped, [3]);
    let g = graph(THREE_STAGES, &[], Some("a")).unwrap();
    assert_eq!(g.needed(), [true, false, false, false]);
}

#[test]
fn independent_stages_share_a_parallel_group() {
    let g = graph(THREE_STAGES, &[], Some("c")).unwrap();
    assert_eq!(g.parallel_groups(), vec![vec![0, 1], vec![2]]);
    assert_eq!(g.stages()[2].stage_deps(), [0, 1]);
}

#[test]
fn copy_from_a_name_an_index_or_an_image() {
    let g = graph(
        "FROM scratch AS Build\nFROM scratch\nCOPY --from=BUILD /a /a\nCOPY --from=0 /b /b\nCOPY --from=busybox:1.36 /bin/sh /sh\n",
        &[],
        None,
    )
    .unwrap();
    let sources: Vec<&Source> = g.stages()[1].deps.iter().map(|d| &d.source).collect();
    assert_eq!(sources[0], &Source::Stage(0));
    assert_eq!(sources[1], &Source::Stage(0));
    let Source::Image(image) = sources[2] else {
        panic!("expected an image source");
    };
    assert_eq!(image.to_string(), "docker.io/library/busybox:1.36");
    assert!(g.stages()[1].deps.iter().all(|d| d.via == Via::CopyFrom));
    assert_eq!(g.parallel_groups(), vec![vec![0], vec![1]]);
}

#[test]
fn named_contexts_take_the_place_of_images_and_stages_of_their_name() {
    let options = Options {
        build_args: BuildArgs::default(),
        target: None,
        platforms: Platforms::for_target(None),
        named_contexts: [
            ("extra".to_owned(), NamedContext::Local),
            (
                "base".to_owned(),
                NamedContext::Image(Reference::parse("alpine:3.20").unwrap()),
            ),
        ]
        .into(),
    };
    let g = plan::load(
        "Dockerfile",
        b"FROM busybox AS extra\nRUN false\nFROM base AS b\nCOPY --from=Extra /x /x\nRUN --mount=from=extra,target=/m true\nFROM extra\nCOPY --from=b / /\n",
        options,
    )
    .unwrap();
    let Base::Image(reference) = &g.stages()[1].base else {
        panic!("expected the docker-image:// context as the base");
    };
    assert_eq!(reference.to_string(), "docker.io/library/alpine:3.20");
    let sources: Vec<&Source> = g.stages()[1].deps.iter().map(|d| &d.source).collect();
    let extra = Source::Context("extra".to_owned());
    assert_eq!(sources, [&extra, &extra]);
    assert_eq!(g.stages()[2].base, Base::Context("extra".to_owned()));
    // The stage the context replaces is not built.
    assert_eq!(g.needed(), [false, true, true]);
}

#[test]
fn run_mount_from_adds_an_edge() {
    let g = graph(
        "FROM scratch AS tools\nFROM scratch\nRUN --mount=type=bind,from=tools,target=/t --mount=type=cache,target=/c true\n",
        &[],
        None,
    )
    .unwrap();
    let deps = &g.stages()[1].deps;
    assert_eq!(deps.len(), 1);
    assert_eq!(
        (deps[0].via, &deps[0].source),
        (Via::RunMount, &Source::Stage(0))
    );
    let e = plan_error("FROM scratch\nRUN --mount=from=$X true\n", None);
    assert!(matches!(e.kind(), ErrorKind::MountFromExpansion));
}

#[test]
fn unknown_stage_index_points_at_the_line() {
    let e = plan_error(
        "FROM scratch AS a\nRUN a\nFROM scratch\nCOPY --from=5 /a /b\n",
        None,
    );
    assert_eq!(e.kind(), &ErrorKind::InvalidStageIndex(5));
    assert_eq!(e.location(), Some((4, 6)));
    assert!(
        e.to_string()
            .contains("Dockerfile:4:6: invalid stage index 5"),
        "{e}"
    );
}

#[test]
fn forward_references_and_cycles_are_errors() {
    let e = plan_error(
        "FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\n",
        None,
    );
    assert!(
        e.to_string().contains(
            "cannot copy from stage \"b\", it needs to be defined before current stage \"a\""
        ),
        "{e}"
    );
    assert_eq!(e.location().map(|l| l.0), Some(2));
    let e = plan_error("FROM scratch AS a\nCOPY --from=a /x /x\n", None);
    assert_eq!(e.kind(), &ErrorKind::CircularDependency("a".into()));
    let e = plan_error("FROM scratch\nCOPY --from=1 /x /x\nFROM scratch\n", None);
    assert!(matches!(e.kind(), ErrorKind::CopyFromLaterStage { .. }));
    let e = plan_error(
        "ARG S=a\nFROM scratch AS a\nFROM scratch\nCOPY --from=$S /x /x\n",
        None,
    );
    assert_eq!(e.kind(), &ErrorKind::CopyFromExpansion);
}

#[test]
fn missing_target_suggests_the_near_name() {
    let e = plan_error(
        "FROM scratch AS builder\nFROM scratch AS runtime\n",
        Some("buidler"),
    );
    assert_eq!(e.kind(), &ErrorKind::TargetNotFound("buidler".into()));
    assert_eq!(e.hint(), Some("did you mean builder?"));
}

#[test]
fn required_variable_in_from_fails_with_its_message() {
    let e = plan_error("ARG X\nFROM ${X:?needs-a-base}\n", None);
    assert!(e.to_string().contains("X: needs-a-base"), "{e}");
    assert_eq!(e.location(), Some((2, 6)));
    let e = plan_error("ARG X\nFROM $X\n", None);
    assert_eq!(e.kind(), &ErrorKind::BlankBaseName("$X".into()));
}

#[test]
fn copy_heredocs_expand_unless_the_delimiter_is_quoted() {
    let plans = plans(
        "FROM scratch\nENV V=value\nCOPY <<EOF /a\n$V\nEOF\nCOPY <<\"EOF\" /b\n$V\nEOF\n",
        &[],
    );
    let contents: Vec<String> = plans[0]
        .steps
        .iter()
        .filter_map(|s| match &s.kind {
            StepKind::Copy(copy) => match &copy.sources[0] {
                CopySource::Inline { content, .. } => Some(content.clone()),
                CopySource::Path(_) => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(contents, ["value\n", "$V\n"]);
}

#[test]
fn copy_flags_and_paths_expand() {
    let plans = plans(
        "FROM scratch AS app\nARG UID=1000\nENV DIR=/srv/app\nCOPY --chown=${UID}:${UID} --chmod=755 --exclude=*.$UID app.sh $DIR/\n",
        &[],
    );
    assert_eq!(
        plans[0].steps[2].to_string(),
        "COPY --chown=1000:1000 --chmod=755 --exclude=*.1000 app.sh /srv/app/"
    );
}

#[test]
fn onbuild_triggers_run_first_in_a_stage_built_on_it() {
    let plans = plans(
        "FROM scratch AS base\nENV V=1\nONBUILD RUN echo $V\nONBUILD COPY --from=0 /a /a\nFROM base\nRUN done\n",
        &[],
    );
    let child = &plans[1];
    assert!(child.steps[0].onbuild && child.steps[1].onbuild && !child.steps[2].onbuild);
    assert_eq!(child.steps[0].to_string(), "ONBUILD RUN echo $V");
    assert!(matches!(plans[0].steps[1].kind, StepKind::Onbuild(ref t) if t == "RUN echo $V"));
}

#[test]
fn a_stage_is_planned_again_once_its_base_image_env_is_known() {
    let g = graph("FROM alpine\nWORKDIR $HOME/app\n", &[], None).unwrap();
    let unresolved = g.plan_stage(0, StageStart::unresolved_image()).unwrap();
    assert!(!unresolved.base_env_resolved);
    assert_eq!(unresolved.steps[0].to_string(), "WORKDIR /app");
    let resolved = g
        .plan_stage(0, StageStart::image(&["HOME=/root".into()]))
        .unwrap();
    assert!(resolved.base_env_resolved);
    assert_eq!(resolved.steps[0].to_string(), "WORKDIR /root/app");
    assert_eq!(resolved.final_env().get("PATH"), Some(plan::DEFAULT_PATH));
}

#[test]
fn a_child_stage_inherits_the_base_stage_env_and_args() {
    let plans = plans("FROM scratch AS a\nARG A=1\nENV E=2\nFROM a\nRUN x\n", &[]);
    let env = run_env(&plans, 0);
    assert_eq!(var(&env, "A"), Some("1".into()));
    assert_eq!(var(&env, "E"), Some("2".into()));
}

/// Every real-world Dockerfile plans with default arguments (no
/// `--build-arg`): none of them needs one to name its base images. The
/// docker-library jq templates in the corpus (`{{ … }}` first line) are not
/// Dockerfiles and fail to parse, in BuildKit too.
#[test]
fn realworld_corpus_plans_with_default_arguments() {
    let Some(dir) = support::conformance_dir("corpus") else {
        return;
    };
    let mut files: Vec<_> = std::fs::read_dir(dir.join("realworld"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "Dockerfile"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(file).unwrap();
        if bytes.starts_with(b"{{") {
            assert!(matches!(
                plan::load(
                    &name,
                    &bytes,
                    Options {
                        build_args: BuildArgs::default(),
                        target: None,
                        platforms: Platforms::for_target(None),
                        named_contexts: Default::default(),
                    }
                ),
                Err(LoadError::Dockerfile(_))
            ));
            continue;
        }
        let options = Options {
            build_args: BuildArgs::default(),
            target: None,
            platforms: Platforms::for_target(PlatformSpec::parse("linux/amd64").ok()),
            named_contexts: Default::default(),
        };
        let outcome = plan::load(&name, &bytes, options)
            .map_err(|e| e.to_string())
            .and_then(|g| {
                let needed: Vec<usize> = (0..g.stages().len()).filter(|&i| g.needed()[i]).collect();
                g.plan_stages(&needed, &mut |_| None)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = outcome {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn hello() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/hello"))
}

#[test]
fn dry_run_prints_the_hello_plan() {
    Command::cargo_bin("builder")
        .unwrap()
        .args(["build", "--dry-run"])
        .arg(hello())
        .assert()
        .success()
        .stdout(predicate::str::contains("base (stage 0): FROM scratch"))
        // Numbered as the build's progress numbers them: metadata steps
        // (ARG, LABEL, ENV, USER) share the number of the step before them.
        .stdout(predicate::str::contains(
            "[greeting 1/2] ARG GREETING=hello",
        ))
        .stdout(predicate::str::contains(
            "[stage-2 1/5] ENV APP_HOME=/srv/app",
        ))
        .stdout(predicate::str::contains("[stage-2 2/5] WORKDIR /srv/app"))
        .stdout(predicate::str::contains(
            "[stage-2 3/5] COPY --from=greeting /greeting.txt ./",
        ))
        .stdout(predicate::str::contains("[stage-2 5/5] USER 65534:65534"))
        .stdout(predicate::str::contains("  2: greeting (stage 1)\n"));
}

#[test]
fn dry_run_with_target_lists_skipped_stages() {
    Command::cargo_bin("builder")
        .unwrap()
        .args([
            "build",
            "--dry-run",
            "--target",
            "base",
            "--build-arg",
            "GREETING=hi",
        ])
        .arg(hello())
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "greeting (stage 1): not needed by the target base (stage 0)",
        ))
        .stdout(predicate::str::contains(
            "stage 2: not needed by the target base (stage 0)",
        ));
}

#[test]
fn dry_run_warns_about_unused_build_args_and_hides_proxy_values() {
    Command::cargo_bin("builder")
        .unwrap()
        .args(["build", "--dry-run", "--build-arg", "NOPE=1"])
        .args(["--build-arg", "HTTPS_PROXY=http://user:secret@proxy"])
        .arg(hello())
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "[Warning] One or more build-args [NOPE] were not consumed",
        ))
        .stdout(predicate::str::contains(
            "proxy env (not kept in the image): HTTPS_PROXY",
        ))
        .stdout(predicate::str::contains("user:secret").not());
}

#[test]
fn bare_build_arg_reads_the_environment() {
    Command::cargo_bin("builder")
        .unwrap()
        .env("GREETING", "from-env")
        .args(["build", "--dry-run", "--build-arg", "GREETING"])
        .arg(hello())
        .assert()
        .success()
        .stdout(predicate::str::contains("ARG GREETING=from-env"));
}

#[test]
fn missing_target_is_reported_with_a_suggestion() {
    Command::cargo_bin("builder")
        .unwrap()
        .args(["build", "--dry-run", "--target", "greting"])
        .arg(hello())
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "target stage \"greting\" could not be found",
        ))
        .stderr(predicate::str::contains("did you mean greeting?"));
}

#[test]
fn check_summarizes_or_points_at_the_error() {
    Command::cargo_bin("builder")
        .unwrap()
        .arg("check")
        .arg(hello())
        .assert()
        .success()
        .stdout(predicate::str::ends_with("ok, 3 stages, 12 steps\n"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch AS a\nFROM scratch\nCOPY --from=7 /a /b\n",
    )
    .unwrap();
    Command::cargo_bin("builder")
        .unwrap()
        .arg("check")
        .arg(dir.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "Dockerfile:3:6: invalid stage index 7",
        ))
        .stderr(predicate::str::contains("COPY --from=7 /a /b"));
}

#[test]
fn a_base_images_onbuild_triggers_are_planned_first() {
    let graph = graph(
        "FROM scratch AS files\nCOPY a /a\nFROM example.com/base\nRUN echo own\n",
        &[],
        None,
    )
    .unwrap();
    assert_eq!(graph.needed(), [false, true], "no edge is known yet");
    let start = StageStart::image(&["GREETING=hi".to_owned()]).with_onbuild(&[
        "RUN echo $GREETING".to_owned(),
        "COPY --from=files /a /b".to_owned(),
    ]);
    let plan = graph.plan_stage(1, start).unwrap();
    let onbuild: Vec<bool> = plan.steps.iter().map(|s| s.onbuild).collect();
    assert_eq!(onbuild, [true, true, false]);
    let StepKind::Run(run) = &plan.steps[0].kind else {
        panic!("{:?}", plan.steps[0]);
    };
    assert!(
        run.env.iter().any(|(k, v)| k == "GREETING" && v == "hi"),
        "the trigger sees the image's env"
    );
    assert_eq!(plan.trigger_stages(), [0], "the trigger's COPY --from");
    // Triggers are steps of this stage only.
    assert!(
        plan.as_base()
            == graph
                .plan_stage(1, StageStart::image(&["GREETING=hi".to_owned()]))
                .unwrap()
                .as_base()
    );
}

#[test]
fn invalid_onbuild_triggers_of_a_base_image_are_refused() {
    let graph = graph("FROM example.com/base\nRUN echo own\n", &[], None).unwrap();
    for bad in [
        "MAINTAINER x",
        "ONBUILD RUN x",
        "FROM scratch",
        "RUN a\nRUN b",
        "",
    ] {
        let start = StageStart::image(&[]).with_onbuild(&[bad.to_owned()]);
        let error = graph.plan_stage(0, start).unwrap_err().to_string();
        assert!(
            error.contains(&format!(
                "the base image's ONBUILD trigger {bad:?} is invalid"
            )),
            "{bad:?}: {error}"
        );
        assert!(
            error.starts_with("Dockerfile:1"),
            "at the FROM line: {error}"
        );
    }
}
