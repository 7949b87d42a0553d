//! `--progress auto|tty|plain|rawjson|quiet`, shared by `build`, `pull`
//! and `push`.

use crate::progress::Style;
use miette::{Result, miette};
use std::io::IsTerminal as _;

/// How progress is shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// The live view on a terminal (without colour when NO_COLOR is set);
    /// plain otherwise, or when CI is set or TERM is dumb.
    Auto,
    /// The live view, as buildx draws it: a header, a line per step, the
    /// tail of running steps' output and their blobs.
    Tty,
    /// BuildKit's plain lines (`#N …`), always.
    Plain,
    /// One JSON object per line per event (schema in the README).
    #[value(name = "rawjson")]
    RawJson,
    /// Nothing.
    Quiet,
}

impl ProgressMode {
    /// The mode of `builder SUBCOMMAND`: its `--progress`, else
    /// `$BUILDKIT_PROGRESS` as buildx reads it, else `auto`. A bad value of
    /// the variable is a usage error naming it.
    pub fn chosen(flag: Option<ProgressMode>, subcommand: &str) -> ProgressMode {
        if let Some(mode) = flag {
            return mode;
        }
        match std::env::var("BUILDKIT_PROGRESS") {
            Ok(value) if !value.is_empty() => {
                <ProgressMode as clap::ValueEnum>::from_str(&value, false).unwrap_or_else(|_| {
                    super::usage_error(
                        subcommand,
                        &format!(
                            "BUILDKIT_PROGRESS={value:?} (the default of --progress): expected auto, tty, plain, rawjson or quiet"
                        ),
                    )
                })
            }
            _ => ProgressMode::Auto,
        }
    }

    /// The renderer this mode means here; `tty` needs a terminal on stderr.
    pub fn style(self) -> Result<Style> {
        let terminal = std::io::stderr().is_terminal();
        Ok(match self {
            ProgressMode::Auto => Style::auto(terminal, |name| std::env::var_os(name)),
            ProgressMode::Tty if !terminal => {
                return Err(miette!(
                    help = "use --progress=plain, or auto to pick by itself",
                    "--progress=tty needs a terminal on stderr"
                ));
            }
            ProgressMode::Tty => Style::Tty,
            ProgressMode::Plain => Style::Plain,
            ProgressMode::RawJson => Style::RawJson,
            ProgressMode::Quiet => Style::Quiet,
        })
    }
}
