//! `builder check [-f FILE] [CONTEXT]`: parse a Dockerfile, build its graph
//! and expand every stage, reporting errors without building anything.

use super::build_input::{self, BuildInput};
use super::common::print_line;
use super::plan_input::{DockerfileArgs, plan_graph};
use crate::plan::{Options, Platforms};
use miette::Result;

/// Check a Dockerfile without building: syntax, stages, references, expansion
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    dockerfile: DockerfileArgs,
}

/// Plans every stage (not only the last one's) and prints a one-line
/// summary.
pub fn run(args: CheckArgs) -> Result<()> {
    let input = build_input::resolve(&args.dockerfile.context, args.dockerfile.file.as_deref())?;
    report(&input)
}

/// Checks the Dockerfile of `input` and prints the summary (also for
/// `builder build --check` and `--call=check`).
pub fn report(input: &BuildInput) -> Result<()> {
    let options = Options {
        build_args: Default::default(),
        target: None,
        platforms: Platforms::for_target(None),
        named_contexts: Default::default(),
    };
    let graph = plan_graph(&input.dockerfile, options)?;
    for warning in graph.warnings() {
        eprintln!("warning: {warning}");
    }
    let all: Vec<usize> = (0..graph.stages().len()).collect();
    let plans = graph.plan_stages(&all, &mut |_| None)?;
    let steps: usize = plans.iter().map(|p| p.steps.len()).sum();
    print_line(format_args!(
        "{}: ok, {} {}, {} {}",
        graph.source().file,
        plans.len(),
        plural(plans.len(), "stage", "stages"),
        steps,
        plural(steps, "step", "steps"),
    ))?;
    Ok(())
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}
