//! `builder completions bash|zsh|fish`: the shell completion script for
//! every subcommand and flag, generated from the clap definitions so it
//! never falls behind them.

use clap::CommandFactory as _;
use miette::Result;

/// Print a shell completion script for bash, zsh or fish
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete in
    #[arg(value_enum)]
    shell: Shell,
}

/// The shells a script can be made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Shell {
    /// GNU bash.
    Bash,
    /// The Z shell.
    Zsh,
    /// fish.
    Fish,
}

/// Writes the script on stdout.
pub fn run(args: CompletionsArgs) -> Result<()> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut command = super::Cli::command();
    clap_complete::generate(shell, &mut command, "builder", &mut std::io::stdout());
    Ok(())
}
