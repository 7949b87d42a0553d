//! Finding what a `COPY`/`ADD` source names in its root: a path clamped to
//! the root (`../x` and `/x` name `x`), resolved with symlinks followed
//! inside the root, or a wildcard expanded per path element with Go's
//! `filepath.Match`, as BuildKit does. With `--parents`, BuildKit matches a
//! source as a `.dockerignore`-style pattern over the tree below its pivot
//! (`**` spans directories) and takes what matches as it is (a symlink stays
//! a symlink). A missing source is reported with the near names that exist
//! and whether `.dockerignore` excluded it.

use std::path::{Path, PathBuf};

use super::CopyError;
use super::rootfs::{Node, RootfsView};
use crate::file_kind::FileKind;
use crate::ignore::{PatternMatcher, clean_path, glob_match, has_wildcards};

/// One file or directory a source names.
#[derive(Debug, Clone)]
pub(super) struct Match {
    /// What is there (symlinks followed).
    pub node: Node,
    /// The matched path as written (relative to the `--parents` pivot, `/./`,
    /// when there is one), for `--parents` and for the destination name.
    pub rel: PathBuf,
}

/// The source as a clean path relative to the root, and the part of it
/// `--parents` keeps (after a `/./` pivot, else all of it).
fn split_source(source: &str) -> (String, String) {
    let clean = |s: &str| {
        clean_path(&format!("/{s}"))
            .trim_start_matches('/')
            .to_owned()
    };
    let whole = clean(source);
    let kept = match source.find("/./") {
        Some(at) => clean(source.get(at + 3..).unwrap_or_default()),
        None => whole.clone(),
    };
    (whole, kept)
}

/// What `source` names in `view` (for `COPY --parents` when `parents`). A
/// wildcard that matches nothing gives no matches (BuildKit allows it); a
/// plain path that names nothing is an error.
pub(super) fn resolve(
    view: &RootfsView,
    source: &str,
    from_context: bool,
    parents: bool,
) -> Result<Vec<Match>, CopyError> {
    let (whole, kept) = split_source(source);
    let kept_base = whole
        .strip_suffix(kept.as_str())
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned();
    let elements: Vec<&str> = whole.split('/').filter(|e| !e.is_empty()).collect();
    let Some(first_wild) = elements.iter().position(|e| has_wildcards(e)) else {
        let node = view
            .lookup(Path::new(&whole), !parents)?
            .ok_or_else(|| not_found(view, source, &whole, from_context))?;
        return Ok(vec![Match {
            node,
            rel: PathBuf::from(kept),
        }]);
    };
    let prefix: PathBuf = elements.iter().take(first_wild).collect();
    let mut matches = Vec::new();
    if let Some(dir) = view.lookup(&prefix, true)? {
        if dir.kind == FileKind::Dir && parents {
            let walk = PatternWalk {
                matcher: PatternMatcher::new([kept.as_str()])?,
                base: Path::new(&kept_base),
                max_depth: (!kept.contains("**")).then(|| kept.split('/').count()),
            };
            walk.run(view, &dir, &prefix, &mut matches)?;
        } else if dir.kind == FileKind::Dir {
            let patterns = elements.get(first_wild..).unwrap_or_default();
            expand(view, &dir, &prefix, patterns, &mut matches)?;
        }
    }
    for m in &mut matches {
        // The matched path, relative to the `--parents` pivot.
        let rel = m
            .rel
            .strip_prefix(&kept_base)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| m.rel.clone());
        m.rel = rel;
    }
    Ok(matches)
}

/// Matches `patterns` (one per path element) below `dir`, whose path as
/// written is `written`. Like Go's `filepath.Walk`, symlinked directories
/// are not descended into; a final match is resolved with links followed.
fn expand(
    view: &RootfsView,
    dir: &Node,
    written: &Path,
    patterns: &[&str],
    out: &mut Vec<Match>,
) -> Result<(), CopyError> {
    let Some((pattern, rest)) = patterns.split_first() else {
        return Ok(());
    };
    for child in view.read_dir(dir)? {
        let Some(name) = child.path.file_name() else {
            continue;
        };
        let Some(name_str) = name.to_str() else {
            continue;
        };
        if !glob_match(pattern, name_str)? {
            continue;
        }
        let path = written.join(name);
        if rest.is_empty() {
            if let Some(node) = view.lookup(&child.path, true)? {
                out.push(Match { node, rel: path });
            }
        } else if child.kind == FileKind::Dir {
            expand(view, &child, &path, rest, out)?;
        }
    }
    Ok(())
}

/// The `--parents` match of a wildcard source: every entry whose path below
/// the pivot `base` matches the pattern, found by walking down from the
/// source's literal prefix. A matched entry is taken as it is (its subtree
/// comes with it); symlinked directories are not descended into.
struct PatternWalk<'a> {
    matcher: PatternMatcher,
    /// The pivot, relative to the root (empty without `/./`).
    base: &'a Path,
    /// How deep below the pivot a match can be (`None` with `**`).
    max_depth: Option<usize>,
}

impl PatternWalk<'_> {
    /// Matches the entries of `dir`, whose path relative to the root is
    /// `written`, and below.
    fn run(
        &self,
        view: &RootfsView,
        dir: &Node,
        written: &Path,
        out: &mut Vec<Match>,
    ) -> Result<(), CopyError> {
        for child in view.read_dir(dir)? {
            let Some(name) = child.path.file_name() else {
                continue;
            };
            let path = written.join(name);
            let rel = path.strip_prefix(self.base).unwrap_or(&path).to_path_buf();
            if self
                .matcher
                .matches_or_parent_matches(&rel.to_string_lossy())?
            {
                out.push(Match {
                    node: child,
                    rel: path,
                });
            } else if child.kind == FileKind::Dir
                && self
                    .max_depth
                    .is_none_or(|max| rel.components().count() < max)
            {
                self.run(view, &child, &path, out)?;
            }
        }
        Ok(())
    }
}

/// The error for a source that names nothing, with what is there instead.
fn not_found(view: &RootfsView, source: &str, whole: &str, from_context: bool) -> CopyError {
    let excluded = view
        .unfiltered()
        .and_then(|all| all.lookup(Path::new(whole), true))
        .is_ok_and(|found| found.is_some());
    let path = Path::new(whole);
    let near = match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => view
            .lookup(parent, true)
            .ok()
            .flatten()
            .filter(|dir| dir.kind == FileKind::Dir)
            .and_then(|dir| view.names(&dir).ok())
            .map(|names| near_names(&name.to_string_lossy(), names))
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    CopyError::SourceNotFound {
        source_path: source.to_owned(),
        excluded,
        near,
        from_context,
    }
}

/// Up to three of `names` within a small edit distance of `wanted`
/// (case ignored), closest first.
fn near_names(wanted: &str, names: Vec<String>) -> Vec<String> {
    let wanted_lower = wanted.to_lowercase();
    let limit = (wanted.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, String)> = names
        .into_iter()
        .map(|name| (edit_distance(&wanted_lower, &name.to_lowercase()), name))
        .filter(|(distance, _)| *distance <= limit)
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, name)| name).collect()
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row.first().copied().unwrap_or_default();
        if let Some(first) = row.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let above = row.get(j + 1).copied().unwrap_or_default();
            let left = row.get(j).copied().unwrap_or_default();
            let value = (above + 1)
                .min(left + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
            if let Some(slot) = row.get_mut(j + 1) {
                *slot = value;
            }
        }
    }
    row.last().copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_clamped_and_pivoted() {
        assert_eq!(split_source("../../etc/passwd").0, "etc/passwd");
        assert_eq!(split_source("/abs/x").0, "abs/x");
        assert_eq!(split_source("./a/./b/c"), ("a/b/c".into(), "b/c".into()));
        assert_eq!(split_source("."), (String::new(), String::new()));
    }

    #[test]
    fn near_names_by_distance() {
        let names = vec!["app.txt".into(), "App.text".into(), "other".into()];
        assert_eq!(near_names("app.tx", names), ["app.txt", "App.text"]);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
