//! `.dockerignore`: reading the file, choosing which one applies, and
//! matching paths with Docker's rules exactly (moby/patternmatcher and
//! its `ignorefile` reader).
//!
//! No crate implements these rules (gitignore-style crates differ on `[!x]`,
//! braces, anchoring and `**`), so the matcher is ours: Go's
//! `filepath.Clean` on patterns and paths, `filepath.Match` syntax checks,
//! `*`/`?` within one path element, `**` across elements, `!` exceptions,
//! and the last matching pattern wins.

mod clean;
mod glob_syntax;
mod go_regex;
mod matcher;
mod pattern;

use crate::layer::resolve::{InRootPath, Root};
use std::io;
use std::path::{Path, PathBuf};

pub use clean::clean as clean_path;
pub use matcher::{MatchInfo, PatternMatcher};
pub use pattern::Pattern;

/// Go's `filepath.Match(pattern, name)`, which BuildKit uses for the
/// wildcards of `COPY`/`ADD` sources: `*` and `?` never match a `/`.
pub fn glob_match(pattern: &str, name: &str) -> Result<bool, PatternError> {
    glob_syntax::glob_match(pattern, name).map_err(|glob_syntax::BadPattern| {
        PatternError::BadPattern {
            pattern: pattern.to_owned(),
        }
    })
}

/// Whether `text` has a wildcard (`*`, `?`, `[`) that is not `\`-escaped:
/// BuildKit's test for a path element to be matched rather than named.
pub fn has_wildcards(text: &str) -> bool {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Why a set of patterns cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A pattern that is not valid glob syntax (an unclosed `[`, a `[]`
    /// class, a trailing `\`…), reported when the matcher is built or, for
    /// the few Docker only rejects while matching, when a path is matched.
    #[error("syntax error in pattern {pattern:?}")]
    BadPattern {
        /// The pattern, cleaned and without its `!`.
        pattern: String,
    },
    /// A line consisting only of `!`.
    #[error("illegal exclusion pattern: \"!\"")]
    LoneExclamation,
    /// A [`MatchInfo`] made by a different matcher.
    #[error("match info from another pattern list (wrong number of values)")]
    ForeignMatchInfo,
}

/// Why the ignore file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum IgnoreError {
    /// The file exists but could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The patterns in the file are not valid.
    #[error("in {}: {source}", path.display())]
    Pattern {
        /// The file.
        path: PathBuf,
        /// The bad pattern.
        source: PatternError,
    },
}

/// The ignore file that applies to a build, and its patterns.
#[derive(Debug, Clone)]
pub struct IgnoreFile {
    /// Where the patterns came from.
    pub path: PathBuf,
    /// The patterns, in order, as [`IgnoreFile::parse`] returns them.
    pub patterns: Vec<String>,
}

impl IgnoreFile {
    /// The patterns of an ignore file's text, as Docker reads them: a
    /// leading BOM is dropped, lines starting with `#` are comments, lines
    /// are trimmed and blank ones skipped, and each pattern is cleaned with
    /// one leading `/` removed (`!` kept in front).
    pub fn parse(text: &str) -> Vec<String> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (body, invert) = match line.strip_prefix('!') {
                Some(rest) => (rest.trim(), true),
                None => (line, false),
            };
            let mut pattern = if body.is_empty() {
                String::new()
            } else {
                let cleaned = clean::clean(body);
                match cleaned.strip_prefix('/') {
                    Some(rest) if !rest.is_empty() => rest.to_owned(),
                    _ => cleaned,
                }
            };
            if invert {
                pattern.insert(0, '!');
            }
            patterns.push(pattern);
        }
        patterns
    }

    /// The ignore file for a build of `context_dir`: `<Dockerfile>.dockerignore`
    /// beside the Dockerfile when it exists, else `.dockerignore` at the root
    /// of the context, else none. `dockerfile` is `None` when the Dockerfile
    /// does not come from a file (stdin).
    pub fn for_build(
        context_dir: &Path,
        dockerfile: Option<&Path>,
    ) -> Result<Option<IgnoreFile>, IgnoreError> {
        let specific = dockerfile.and_then(|df| {
            let name = df.file_name()?;
            let mut ignore_name = name.to_os_string();
            ignore_name.push(".dockerignore");
            Some(df.with_file_name(ignore_name))
        });
        for path in specific
            .into_iter()
            .chain([context_dir.join(".dockerignore")])
        {
            match read_ignore_file(context_dir, &path) {
                Ok(bytes) => {
                    let patterns = IgnoreFile::parse(&String::from_utf8_lossy(&bytes));
                    return Ok(Some(IgnoreFile { path, patterns }));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(IgnoreError::Read { path, source }),
            }
        }
        Ok(None)
    }

    /// The matcher for these patterns.
    pub fn matcher(&self) -> Result<PatternMatcher, IgnoreError> {
        PatternMatcher::new(&self.patterns).map_err(|source| IgnoreError::Pattern {
            path: self.path.clone(),
            source,
        })
    }
}

/// Reads an ignore file; one inside the context (an archive's, say) is
/// read with its links resolved inside the context, so a link cannot feed
/// a host file's lines to the matcher.
fn read_ignore_file(context_dir: &Path, path: &Path) -> io::Result<Vec<u8>> {
    let Ok(relative) = path.strip_prefix(context_dir) else {
        return std::fs::read(path);
    };
    let relative = InRootPath::normalize(relative)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "outside the context"))?;
    Root::open(context_dir)?.read_file(&relative)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ignore_file_linking_out_of_the_context_is_resolved_inside_it() {
        let outside = tempfile::tempdir().unwrap();
        let host_file = outside.path().join("host-patterns");
        std::fs::write(&host_file, "from-the-host\n").unwrap();
        let context = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&host_file, context.path().join(".dockerignore")).unwrap();
        // Resolved inside the context, the link names a file that is not there.
        assert!(
            IgnoreFile::for_build(context.path(), None)
                .unwrap()
                .is_none()
        );
        // The same path inside the context is what gets read.
        let inside = context.path().join(host_file.strip_prefix("/").unwrap());
        std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
        std::fs::write(&inside, "from-the-context\n").unwrap();
        let file = IgnoreFile::for_build(context.path(), None)
            .unwrap()
            .unwrap();
        assert_eq!(file.patterns, ["from-the-context"]);
    }

    #[test]
    fn random_patterns_never_panic() {
        let alphabet: Vec<char> = "[]^-\\*?!/.:{}ab\u{e9}pPdx0E".chars().collect();
        let mut rng = fastrand::Rng::with_seed(0x2545_f491_4f6c_dd1d);
        let mut next = move || rng.u64(..);
        let mut word = |max: u64| -> String {
            let len = next() % max;
            (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect()
        };
        let mut built = 0;
        for _ in 0..5_000 {
            let patterns = [word(10), word(10)];
            let path = word(12);
            if let Ok(pm) = PatternMatcher::new(&patterns) {
                built += 1;
                let _ = pm.matches_or_parent_matches(&path);
                let _ = pm.matches_using_parent_results(&path, &MatchInfo::default());
            }
            let _ = glob_match(&patterns[0], &path);
            let _ = IgnoreFile::parse(&patterns.join("\n"));
        }
        assert!(
            built > 500,
            "the generator must produce usable patterns: {built}"
        );
    }
}
