//! The ordered list of `.dockerignore` patterns and Docker's rule for
//! applying it: the last pattern that matches a path, or one of its parent
//! directories, decides; `!` patterns re-include.

use super::PatternError;
use super::clean::{clean, dir};
use super::glob_syntax;
use super::pattern::Pattern;

/// Compiled `.dockerignore` patterns.
#[derive(Debug, Clone)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
    /// No `!` pattern has a wildcard (other than a trailing `/*` or `/**`),
    /// so what an exception can re-include is known from its text.
    literal_exceptions: bool,
}

/// What matched a directory, handed to the matching of its entries so a
/// tree walk evaluates each pattern once per entry instead of once per
/// ancestor. [`MatchInfo::default()`] means "nothing known about the parent".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

impl PatternMatcher {
    /// Cleans and checks `patterns` (as read by
    /// [`IgnoreFile::parse`](super::IgnoreFile::parse) or given on a command
    /// line): blank ones are dropped, `!` marks an exception.
    pub fn new<I, S>(patterns: I) -> Result<Self, PatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut compiled = Vec::new();
        let mut exclusions = false;
        for raw in patterns {
            let trimmed = raw.as_ref().trim();
            if trimmed.is_empty() {
                continue;
            }
            let cleaned = clean(trimmed);
            let (text, exclusion) = match cleaned.strip_prefix('!') {
                Some("") => return Err(PatternError::LoneExclamation),
                Some(rest) => (rest.to_owned(), true),
                None => (cleaned, false),
            };
            exclusions |= exclusion;
            if !glob_syntax::is_valid(&text) {
                return Err(PatternError::BadPattern { pattern: text });
            }
            compiled.push(Pattern::compile(text, exclusion));
        }
        let literal_exceptions = compiled
            .iter()
            .filter(|p| p.is_exclusion())
            .all(|p| !without_trailing_glob(p.as_str()).contains(['*', '[', ']', '?', '^', '\\']));
        Ok(PatternMatcher {
            patterns: compiled,
            exclusions,
            literal_exceptions,
        })
    }

    /// Whether any pattern is a `!` exception. Without exceptions, an
    /// excluded directory can be skipped without looking inside it.
    pub fn exclusions(&self) -> bool {
        self.exclusions
    }

    /// Whether a walk may skip everything inside the excluded directory
    /// `dir` (as BuildKit does): true when no `!` pattern could re-include
    /// something below it.
    pub fn can_skip_excluded_dir(&self, dir: &str) -> bool {
        if !self.exclusions {
            return true;
        }
        if !self.literal_exceptions {
            return false;
        }
        let dir_slash = format!("{dir}/");
        !self
            .patterns
            .iter()
            .filter(|p| p.is_exclusion())
            .any(|p| format!("{}/", without_trailing_glob(p.as_str())).starts_with(&dir_slash))
    }

    /// The patterns in order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether `path` (slash-separated, relative to the context root) is
    /// excluded: it, or one of its parent directories, matches a pattern and
    /// no later `!` pattern re-includes it.
    pub fn matches_or_parent_matches(&self, path: &str) -> Result<bool, PatternError> {
        let parents = parent_dirs(path);
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.is_exclusion() != matched {
                continue;
            }
            let hit = self.matches(pattern, path)?
                || parents.iter().any(|p| pattern.matches(p) == Some(true));
            if hit {
                matched = !pattern.is_exclusion();
            }
        }
        Ok(matched)
    }

    /// [`matches_or_parent_matches`](Self::matches_or_parent_matches) for a
    /// tree walk: `parent` is the [`MatchInfo`] returned for the directory
    /// holding `path` (or the default for entries of the root), and the
    /// returned one is what to pass for `path`'s own entries.
    pub fn matches_using_parent_results(
        &self,
        path: &str,
        parent: &MatchInfo,
    ) -> Result<(bool, MatchInfo), PatternError> {
        let known = !parent.parent_matched.is_empty();
        if known && parent.parent_matched.len() != self.patterns.len() {
            return Err(PatternError::ForeignMatchInfo);
        }
        let mut info = MatchInfo {
            parent_matched: vec![false; self.patterns.len()],
        };
        let mut matched = false;
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut hit = known && parent.parent_matched[i];
            if !hit {
                if pattern.is_exclusion() != matched {
                    continue;
                }
                hit = self.matches(pattern, path)?;
                if !hit && !known {
                    hit = parent_dirs(path)
                        .iter()
                        .any(|p| pattern.matches(p) == Some(true));
                }
            }
            info.parent_matched[i] = hit;
            if hit {
                matched = !pattern.is_exclusion();
            }
        }
        Ok((matched, info))
    }

    fn matches(&self, pattern: &Pattern, path: &str) -> Result<bool, PatternError> {
        pattern
            .matches(path)
            .ok_or_else(|| PatternError::BadPattern {
                pattern: pattern.as_str().to_owned(),
            })
    }
}

/// A pattern without a trailing `/**` or `/*`, whose re-inclusions are
/// then all below the remaining text.
fn without_trailing_glob(pattern: &str) -> &str {
    let p = pattern.strip_suffix("/**").unwrap_or(pattern);
    p.strip_suffix("/*").unwrap_or(p)
}

/// `a`, `a/b` for `a/b/c` (nothing for a top-level name), as Docker
/// derives them with `filepath.Dir` and a split on `/`.
fn parent_dirs(path: &str) -> Vec<String> {
    let parent = dir(path);
    if parent == "." {
        return Vec::new();
    }
    let mut prefixes = Vec::new();
    let mut end = 0;
    for element in parent.split('/') {
        end += element.len();
        prefixes.push(parent[..end].to_owned());
        end += 1;
    }
    prefixes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipping_excluded_dirs() {
        let none = PatternMatcher::new(["build"]).unwrap();
        assert!(none.can_skip_excluded_dir("build"));
        let literal = PatternMatcher::new(["build", "!build/keep/**"]).unwrap();
        assert!(!literal.can_skip_excluded_dir("build"));
        assert!(!literal.can_skip_excluded_dir("build/keep"));
        assert!(literal.can_skip_excluded_dir("build/other"));
        let wild = PatternMatcher::new(["build", "!**/*.go"]).unwrap();
        assert!(!wild.can_skip_excluded_dir("build/other"));
    }

    #[test]
    fn parent_dirs_follow_go() {
        assert!(parent_dirs("file").is_empty());
        assert_eq!(parent_dirs("a/b/c"), ["a", "a/b"]);
        assert_eq!(parent_dirs("/a/b"), ["", "/a"]);
        assert_eq!(parent_dirs("file/"), ["file"]);
    }
}
