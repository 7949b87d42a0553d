//! `builder completions bash|zsh|fish`: the shell completion script for
//! every subcommand and flag, generated from the clap definitions so it
//! never falls behind them, and a few lines of the shell's own that
//! complete the image arguments of `inspect`, `tag`, `rmi`, `push` and
//! `save` (and `build -t`) with the names in the store (`builder images
//! --format`), also after global flags (`builder --root DIR inspect …`,
//! whose store is the one listed).

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
const IMAGE_COMMANDS: [&str; 5] = ["inspect", "tag", "rmi", "push", "save"];

/// What lists the store's image names, one a line, after `builder` and
/// the `--root` of the command line being completed (if it has one).
const LIST_IMAGES: &str =
    "images --filter dangling=false --format '{{.Repository}}:{{.Tag}}' 2>/dev/null";

/// The flags whose next word is their value, as `SUBCOMMAND FLAG` case
/// patterns (`*" --root"` for the global ones, which go anywhere): the
/// words to skip looking for the subcommand, and after which the word
/// being completed is no image name.
fn value_flag_patterns() -> String {
    let command = super::Cli::command();
    let takes_value = |arg: &&clap::Arg| {
        arg.get_action().takes_values() && !arg.is_require_equals_set() && !arg.is_positional()
    };
    let flags = |arg: &clap::Arg| {
        let mut flags: Vec<String> = arg
            .get_long()
            .map(|l| format!("--{l}"))
            .into_iter()
            .collect();
        flags.extend(arg.get_short().map(|s| format!("-{s}")));
        flags
    };
    let mut patterns: Vec<String> = command
        .get_arguments()
        .filter(|arg| arg.is_global_set())
        .filter(takes_value)
        .flat_map(flags)
        .map(|flag| format!("*\" {flag}\""))
        .collect();
    for sub in command
        .get_subcommands()
        .filter(|sub| IMAGE_COMMANDS.contains(&sub.get_name()))
    {
        for arg in sub.get_arguments().filter(takes_value) {
            patterns.extend(
                flags(arg)
                    .into_iter()
                    .map(|flag| format!("\"{} {flag}\"", sub.get_name())),
            );
        }
    }
    patterns.join("|")
}

/// A bash and zsh function: whether flag `$2` of subcommand `$1` (empty
/// before the subcommand) takes the next word as its value.
fn takes_value_function() -> String {
    format!(
        r#"
_builder_takes_value() {{
    case "$1 $2" in
        {}) return 0 ;;
    esac
    return 1
}}
"#,
        value_flag_patterns()
    )
}

/// Shell code completing image arguments (and `build -t`) with the names
/// in the store, before clap's completion of the rest; global flags such
/// as `--root DIR` may come first, and that store is the one listed.
fn image_names(shell: Shell) -> String {
    let commands = IMAGE_COMMANDS.join(" ");
    let pick = IMAGE_COMMANDS.join("|");
    // One loop for bash and zsh: `$words`, `$first` and `$cword` are set
    // by each before it.
    let scan = r#"
    local sub="" root="" word i
    local -a rootflag
    for (( i = first; i < cword; i++ )); do
        word="${words[i]}"
        case "$word" in
            --root) root="${words[i+1]}"; i=$(( i + 1 )) ;;
            --root=*) root="${word#--root=}" ;;
            -*) _builder_takes_value "$sub" "$word" && i=$(( i + 1 )) ;;
            *) [[ -z "$sub" ]] && sub="$word" ;;
        esac
    done
    [[ -n "$root" ]] && rootflag=(--root "$root")
    local prev="${words[cword-1]}" cur="${words[cword]}" list=0
    if [[ "$sub" == build && ( "$prev" == -t || "$prev" == --tag ) ]]; then
        list=1
    elif [[ "$cur" != -* ]] && ! _builder_takes_value "$sub" "$prev"; then
        case "$sub" in
            PICK) list=1 ;;
        esac
    fi
"#
    .replace("PICK", &pick);
    match shell {
        Shell::Bash => format!(
            r#"{helpers}
_builder_image_names() {{
    local -a words=("${{COMP_WORDS[@]}}")
    local first=1 cword=$COMP_CWORD{scan}
    if (( list )); then
        COMPREPLY=( $(compgen -W "$(builder "${{rootflag[@]}}" {LIST_IMAGES})" -- "$cur") )
        return 0
    fi
    _builder "$@"
}}
complete -F _builder_image_names -o nosort -o bashdefault -o default builder
"#,
            helpers = takes_value_function()
        ),
        Shell::Zsh => format!(
            r#"{helpers}
_builder_image_names() {{
    local first=2 cword=$CURRENT{scan}
    if (( list )); then
        local -a images
        images=(${{(f)"$(builder "${{rootflag[@]}}" {LIST_IMAGES})"}})
        compadd -a images
        return
    fi
    _builder "$@"
}}
compdef _builder_image_names builder
"#,
            helpers = takes_value_function()
        ),
        Shell::Fish => format!(
            r#"
function __builder_images
    set -l tokens (commandline -opc)
    set -l root
    for i in (seq (count $tokens))
        switch $tokens[$i]
            case --root
                test $i -lt (count $tokens); and set root --root $tokens[(math $i + 1)]
            case '--root=*'
                set root --root (string replace -- --root= '' $tokens[$i])
        end
    end
    builder $root {LIST_IMAGES}
end
complete -c builder -n '__fish_seen_subcommand_from {commands}' -f -a "(__builder_images)"
complete -c builder -n '__fish_seen_subcommand_from build' -s t -l tag -x -a "(__builder_images)"
"#
        ),
    }
}
