//! `builder completions bash|zsh|fish`: the shell completion script for
//! every subcommand and flag, generated from the clap definitions so it
//! never falls behind them, and a few lines of the shell's own that
//! complete the image arguments of `inspect`, `tag`, `rmi`, `push` and
//! `save` with the names in the store (`builder images --format`).

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
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "builder", &mut script);
    script.extend_from_slice(image_names(args.shell).as_bytes());
    super::common::print_line(String::from_utf8_lossy(&script).trim_end())
}

/// The commands whose arguments name images in the store.
const IMAGE_COMMANDS: &str = "inspect tag rmi push save";

/// What lists the store's image names, one a line (the store is the one
/// `$BUILDER_ROOT` names, as for the command being completed).
const LIST_IMAGES: &str =
    "builder images --filter dangling=false --format '{{.Repository}}:{{.Tag}}' 2>/dev/null";

/// Shell code completing image arguments with the names in the store,
/// before clap's completion of the rest.
fn image_names(shell: Shell) -> String {
    match shell {
        Shell::Bash => format!(
            r#"
_builder_image_names() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" word
    for word in {IMAGE_COMMANDS}; do
        if [[ "${{COMP_WORDS[1]}}" == "$word" && "$cur" != -* && $COMP_CWORD -gt 1 ]]; then
            COMPREPLY=( $(compgen -W "$({LIST_IMAGES})" -- "$cur") )
            return 0
        fi
    done
    _builder "$@"
}}
complete -F _builder_image_names -o nosort -o bashdefault -o default builder
"#
        ),
        Shell::Zsh => format!(
            r#"
_builder_image_names() {{
    if (( CURRENT > 2 )) && [[ " {IMAGE_COMMANDS} " == *" ${{words[2]}} "* && ${{words[CURRENT]}} != -* ]]; then
        local -a images
        images=(${{(f)"$({LIST_IMAGES})"}})
        compadd -a images
        return
    fi
    _builder "$@"
}}
compdef _builder_image_names builder
"#
        ),
        Shell::Fish => format!(
            "\ncomplete -c builder -n '__fish_seen_subcommand_from {IMAGE_COMMANDS}' -f -a \"({})\"\n",
            LIST_IMAGES
        ),
    }
}
