//! Command-line interface: clap definitions, one file per subcommand, and the
//! single place where errors become a report and an exit code.

mod build;
mod build_compat;
mod build_flags;
mod build_image;
mod build_input;
mod check;
mod common;
mod completions;
mod debug;
mod images;
mod inspect;
mod load;
mod login;
mod logout;
mod man;
mod plan_input;
mod progress_arg;
mod prune;
mod pull;
mod push;
mod rmi;
mod sandbox;
mod save;
mod secrets;
mod tag;
mod template;

use crate::store::{Store, default_root};
use clap::{Args, CommandFactory, Parser, Subcommand};
use miette::{IntoDiagnostic as _, WrapErr as _};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// builder: build OCI images from Dockerfiles, without a daemon.
#[derive(Debug, Parser)]
#[command(name = "builder", version, about, long_about = None, args_override_self = true)]
pub struct Cli {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Options every subcommand understands.
#[derive(Debug, Clone, Args)]
pub struct Globals {
    /// Where the local store lives (default: /var/lib/builder for root,
    /// $XDG_DATA_HOME/builder or ~/.local/share/builder otherwise).
    #[arg(long, global = true, env = "BUILDER_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Talk to this registry over plain HTTP (loopback registries always
    /// are); repeatable.
    #[arg(long = "insecure-registry", global = true, value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
}

impl Globals {
    /// Opens the store at `--root`, `$BUILDER_ROOT` or the default place.
    pub fn open_store(&self) -> miette::Result<Store> {
        let root = match &self.root {
            Some(root) => root.clone(),
            None => default_root().into_diagnostic()?,
        };
        // Made absolute here: store paths end up in overlay mount options
        // and sandbox specs, which take host paths from `/` only.
        let root = std::path::absolute(&root)
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot resolve the store root {}", root.display()))?;
        Store::open(root).into_diagnostic()
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Look inside builder's stages (parse trees and the like).
    Debug(debug::DebugArgs),
    Build(Box<build::BuildCommandArgs>),
    Check(check::CheckArgs),
    Images(images::ImagesArgs),
    Tag(tag::TagArgs),
    Rmi(rmi::RmiArgs),
    Prune(prune::PruneArgs),
    Pull(pull::PullArgs),
    Push(push::PushArgs),
    Login(login::LoginArgs),
    Logout(logout::LogoutArgs),
    Inspect(inspect::InspectArgs),
    Save(save::SaveArgs),
    Load(load::LoadArgs),
    Completions(completions::CompletionsArgs),
    Man(man::ManArgs),
    /// Internal: runs one RUN step in a sandbox (re-executed by builder itself).
    #[command(name = "__sandbox", hide = true)]
    Sandbox(sandbox::SandboxArgs),
    /// Internal: unpacks a layer in a rootless user namespace (re-executed by builder itself).
    #[command(name = "__userns", hide = true)]
    Userns(sandbox::UsernsArgs),
}

/// Parses the process arguments, runs the subcommand and reports its outcome.
pub fn main() -> ExitCode {
    // Before any thread or child: nothing the caller left open may reach
    // a RUN step (or any other program builder runs).
    if let Err(err) = crate::sandbox::cloexec_inherited() {
        eprintln!("builder: marking inherited file descriptors close-on-exec: {err}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    // Long lines stay whole when stderr is a log or a pipe: errors name
    // references, registries and digests that must not be broken up.
    let tty = std::io::stderr().is_terminal();
    if tty {
        // …and on a terminal, a Dockerfile line in a report is cut to fit.
        let (columns, _) = crate::progress::tty::terminal_size();
        crate::dockerfile::excerpt::fit_to_terminal(columns);
    }
    let _ = miette::set_hook(Box::new(move |_| {
        Box::new(miette::MietteHandlerOpts::new().wrap_lines(tty).build())
    }));
    let Some(command) = cli.command else {
        // A bare `builder` shows what it can do, as `docker` does.
        let _ = Cli::command().print_help();
        return ExitCode::from(2);
    };
    let globals = &cli.globals;
    let outcome = match command {
        Command::Debug(args) => return debug::run(args),
        Command::Build(args) => build::run(globals, *args),
        Command::Check(args) => check::run(args),
        Command::Images(args) => images::run(globals, args),
        Command::Tag(args) => tag::run(globals, args),
        Command::Rmi(args) => rmi::run(globals, args),
        Command::Prune(args) => prune::run(globals, args),
        Command::Pull(args) => pull::run(globals, args),
        Command::Push(args) => push::run(globals, args),
        Command::Login(args) => login::run(globals, args),
        Command::Logout(args) => logout::run(globals, args),
        Command::Inspect(args) => inspect::run(globals, args),
        Command::Save(args) => save::run(globals, args),
        Command::Load(args) => load::run(globals, args),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(args),
        // The sandbox helper reports over its own protocol, not as a CLI.
        Command::Sandbox(args) => return sandbox::run(args),
        Command::Userns(args) => return sandbox::run_userns(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::FAILURE
        }
    }
}

/// Reports a usage error of `builder SUBCOMMAND` as clap does (with the
/// usage line) and exits with code 2, for what clap cannot see (flag values
/// checked together, files a flag names, variables that stand for flags).
pub(super) fn usage_error(subcommand: &str, message: &str) -> ! {
    let mut cli = Cli::command();
    // Built, so the usage line names the subcommand as `builder build`.
    cli.build();
    let error = match cli.find_subcommand_mut(subcommand) {
        Some(command) => command.error(clap::error::ErrorKind::ValueValidation, message),
        None => cli.error(clap::error::ErrorKind::ValueValidation, message),
    };
    error.exit()
}

/// Prints an error as a miette report (source line with a marker) on stderr
/// and gives the failure exit code.
fn report(error: impl miette::Diagnostic + Send + Sync + 'static) -> ExitCode {
    eprintln!("{:?}", miette::Report::new(error));
    ExitCode::FAILURE
}
