//! `builder build [--dry-run] [--target T] [--build-arg K[=V]]…
//! [--platform P] [-f FILE|-] [--label K=V]… [--add-host H:IP]…
//! [--shm-size N] [--build-context NAME=SRC]… [--security-opt seccomp=…]
//! CONTEXT|ARCHIVE|-`.
//!
//! Without `--dry-run` it builds the image (see [`super::build_image`]).
//! `--dry-run` prints the plan: the stages in order with their bases, every
//! step after expansion, the stages left out and why, and which stages can
//! run at the same time.

use super::Globals;
use super::build_compat::{Call, CompatFlags};
use super::build_flags::RunAndImageFlags;
use super::build_image::{ImageArgs, build_image};
use super::build_input;
use super::common::print_line;
use super::plan_input::plan_graph;
use crate::image::PlatformSpec;
use crate::plan::{
    Base, BuildArgs, Graph, Options, Platforms, SkipReason, StagePlan, StepCounter, StepKind,
};
use clap::ArgAction;
use clap::builder::BoolishValueParser;
use miette::Result;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Build an image from a Dockerfile
#[derive(Debug, clap::Args)]
pub struct BuildCommandArgs {
    /// Print the plan (stages, expanded steps, parallel groups) and stop
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", hide_default_value = true, value_parser = BoolishValueParser::new(), action = ArgAction::Set, value_name = "BOOL")]
    dry_run: bool,
    /// The stage to build (default: the last one)
    #[arg(long, value_name = "STAGE")]
    target: Option<String>,
    /// A build argument; KEY alone takes its value from the environment
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    build_args: Vec<String>,
    /// The platforms to build for, comma-separated (repeatable; default:
    /// this machine's); several give one image index; RUN steps of other
    /// architectures run under QEMU user-mode emulation
    #[arg(long, value_name = "OS/ARCH[/VARIANT],…")]
    platform: Vec<String>,
    /// The Dockerfile (default: CONTEXT/Dockerfile); - reads it from
    /// stdin; with an archive context, a path inside the archive
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    #[command(flatten)]
    flags: RunAndImageFlags,
    #[command(flatten)]
    compat: CompatFlags,
    #[command(flatten)]
    image: ImageArgs,
    /// The build context: a directory, a tar archive (plain, gzip, bzip2,
    /// xz or zstd), or - for an archive (or a Dockerfile) on stdin
    #[arg(value_name = "CONTEXT")]
    context: PathBuf,
}

/// Runs `builder build`.
pub fn run(globals: &Globals, args: BuildCommandArgs) -> Result<()> {
    let call = match args.compat.validate().and_then(|notes| {
        for note in notes {
            eprintln!("note: {note}");
        }
        args.compat.call()
    }) {
        Ok(call) => call,
        Err(message) => usage_error(&message),
    };
    if args.dry_run
        && let Some(flag) = args.image.delivery_flag()
    {
        usage_error(&format!(
            "--dry-run builds nothing, so {flag} has nothing to deliver: drop one of them"
        ));
    }
    let targets = match target_platforms(&args.platform) {
        Ok(targets) => targets,
        Err(message) => usage_error(&message),
    };
    let build_args = BuildArgs::from_flags(args.build_args.iter().map(String::as_str), |k| {
        std::env::var(k).ok()
    });
    // A usage error (exit code 2) rather than the build's failure.
    if build_input::both_read_stdin(&args.context, args.file.as_deref()) {
        usage_error(build_input::BOTH_READ_STDIN);
    }
    let input = build_input::resolve(&args.context, args.file.as_deref())?;
    if call == Call::Check {
        return super::check::report(&input);
    }
    // One graph per target platform: the predefined platform args, and so
    // every expansion, differ between them.
    let graphs = targets
        .into_iter()
        .map(|target| {
            plan_graph(
                &input.dockerfile,
                Options {
                    build_args: build_args.clone(),
                    target: args.target.clone(),
                    platforms: Platforms::for_target(target),
                    named_contexts: args.flags.plan_contexts(),
                },
            )
        })
        .collect::<Result<Vec<Graph>>>()?;
    // The warnings do not depend on the platform: said once.
    if let Some(graph) = graphs.first() {
        for warning in graph.warnings() {
            eprintln!("warning: {warning}");
        }
        let unused = graph.unused_build_args();
        if !unused.is_empty() {
            eprintln!(
                "[Warning] One or more build-args [{}] were not consumed",
                unused.join(" ")
            );
        }
    }
    if !args.dry_run {
        return build_image(globals, &input, &args.flags, graphs, args.image);
    }
    let mut reports = Vec::with_capacity(graphs.len());
    for graph in &graphs {
        let needed = graph.needed_stages();
        let plans = graph.plan_stages(&needed, &mut |_| None)?;
        reports.push(render(graph, &plans).trim_end().to_owned());
    }
    print_line(reports.join("\n\n"))?;
    Ok(())
}

/// The target platforms of `--platform` values (each a comma-separated
/// list): one `None` (this machine's) when there are none. A malformed or
/// repeated platform is a usage error, returned as its message.
fn target_platforms(values: &[String]) -> Result<Vec<Option<PlatformSpec>>, String> {
    let mut targets: Vec<PlatformSpec> = Vec::new();
    for item in values.iter().flat_map(|v| v.split(',')) {
        let platform = PlatformSpec::parse(item.trim()).map_err(|e| {
            format!("--platform: {e} (expected os/arch[/variant], e.g. linux/arm64)")
        })?;
        if let Some(same) = targets.iter().find(|t| **t == platform) {
            return Err(format!(
                "--platform: {item:?} is listed twice (as {same}); name each platform once"
            ));
        }
        targets.push(platform);
    }
    if targets.is_empty() {
        return Ok(vec![None]);
    }
    Ok(targets.into_iter().map(Some).collect())
}

/// Reports a usage error of `builder build` (exit code 2).
pub(super) fn usage_error(message: &str) -> ! {
    super::usage_error("build", message)
}

/// The dry-run report.
fn render(graph: &Graph, plans: &[StagePlan]) -> String {
    let mut out = String::new();
    let platforms = graph.platforms();
    let _ = writeln!(
        out,
        "plan for {}: target {}, platform {} (building on {})",
        graph.source().file,
        stage_ref(graph, graph.target()),
        platforms.target,
        platforms.build,
    );
    for plan in plans {
        out.push('\n');
        render_stage(&mut out, graph, plan);
    }
    let skipped = graph.skipped();
    if !skipped.is_empty() {
        out.push_str("\nskipped stages:\n");
        for (index, reason) in skipped {
            let SkipReason::NotNeededBy { target } = reason;
            let _ = writeln!(
                out,
                "  {}: not needed by the target {}",
                stage_ref(graph, index),
                stage_ref(graph, target)
            );
        }
    }
    out.push_str("\nparallel groups (the stages of a group can run at the same time):\n");
    for (i, group) in graph.parallel_groups().iter().enumerate() {
        let names: Vec<String> = group.iter().map(|&s| stage_ref(graph, s)).collect();
        let _ = writeln!(out, "  {}: {}", i + 1, names.join(", "));
    }
    out
}

/// `name (stage 2)` or `stage 2`.
fn stage_ref(graph: &Graph, index: usize) -> String {
    match graph.stages().get(index).and_then(|s| s.name.as_deref()) {
        Some(name) => format!("{name} (stage {index})"),
        None => format!("stage {index}"),
    }
}

fn render_stage(out: &mut String, graph: &Graph, plan: &StagePlan) {
    let from = match &plan.base {
        Base::Scratch => "scratch".to_owned(),
        Base::Image(reference) => reference.to_string(),
        Base::Stage(b) => stage_ref(graph, *b),
        Base::Context(name) => format!("{name} (build context)"),
    };
    let _ = writeln!(
        out,
        "{}: FROM {from} [{}]",
        stage_ref(graph, plan.index),
        plan.platform
    );
    if matches!(plan.base, Base::Image(_)) && !plan.base_env_resolved {
        out.push_str("  note: the base image's environment is not resolved in a dry run; steps are expanded without it\n");
    } else if !plan.base_env_resolved {
        out.push_str(
            "  note: built on a stage whose base image's environment is not resolved in a dry run\n",
        );
    }
    // Numbered as the build's progress numbers them.
    let mut counter = StepCounter::new(graph.display_name(plan.index), StepCounter::total_of(plan));
    let _ = writeln!(out, "  {} FROM {from}", counter.current());
    for step in &plan.steps {
        let _ = writeln!(out, "  {} {step}", counter.step(&step.kind));
        if let StepKind::Run(run) = &step.kind {
            let args: Vec<String> = run
                .args
                .iter()
                .filter_map(|a| Some(format!("{}={}", a.name, a.value.as_ref()?)))
                .collect();
            if !args.is_empty() {
                let _ = writeln!(out, "      with args: {}", args.join(" "));
            }
            let proxies: Vec<&str> = run.proxy_env.iter().map(|(k, _)| k).collect();
            if !proxies.is_empty() {
                let _ = writeln!(
                    out,
                    "      proxy env (not kept in the image): {}",
                    proxies.join(" ")
                );
            }
        }
    }
}
