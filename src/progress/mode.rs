//! Which renderer draws the progress stream, and how `auto` picks one.

use std::ffi::OsString;

/// A way of showing progress, as `--progress` names it once resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// buildx's live view on a terminal: a header, a line per step, the
    /// tail of running steps' output and their blobs ([`super::tty`]).
    Tty,
    /// BuildKit's plain lines (`#N …`), for logs and pipes ([`super::plain`]).
    Plain,
    /// One JSON object per line per event, for tools ([`super::json`]).
    RawJson,
    /// Nothing at all.
    Quiet,
}

impl Style {
    /// What `--progress=auto` means: [`Style::Tty`] when stderr is a
    /// terminal that can redraw lines (`TERM` is not `dumb`) and `CI` is
    /// not set to a non-empty value (as CI systems set it), else
    /// [`Style::Plain`]. `NO_COLOR` keeps the terminal view, without
    /// colour, as buildx does (see [`super::tty::colour_wanted`]). `env`
    /// reads an environment variable.
    pub fn auto(stderr_is_terminal: bool, env: impl Fn(&str) -> Option<OsString>) -> Style {
        let set = |name: &str| env(name).is_some_and(|value| !value.is_empty());
        let dumb = env("TERM").is_some_and(|term| term == "dumb");
        if stderr_is_terminal && !set("CI") && !dumb {
            Style::Tty
        } else {
            Style::Plain
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn auto_draws_on_a_terminal_unless_ci_is_set_or_it_is_dumb() {
        assert_eq!(Style::auto(true, env(&[])), Style::Tty);
        assert_eq!(Style::auto(false, env(&[])), Style::Plain);
        assert_eq!(Style::auto(true, env(&[("CI", "true")])), Style::Plain);
        assert_eq!(Style::auto(true, env(&[("TERM", "dumb")])), Style::Plain);
        // NO_COLOR takes the colour away, not the live view.
        assert_eq!(Style::auto(true, env(&[("NO_COLOR", "1")])), Style::Tty);
        // Empty values count as unset.
        assert_eq!(
            Style::auto(true, env(&[("CI", ""), ("NO_COLOR", "")])),
            Style::Tty
        );
    }
}
