//! `.dockerignore` matching against moby/patternmatcher's own cases, read as
//! ../shared/conformance/dockerignore/README.md says.

mod support;

use builder::ignore::{IgnoreFile, MatchInfo, PatternError, PatternMatcher};

/// The result as the table spells it: `true`, `false` or `error`.
fn outcome(result: Result<bool, PatternError>) -> &'static str {
    match result {
        Ok(true) => "true",
        Ok(false) => "false",
        Err(_) => "error",
    }
}

/// Upstream's second check of each `MatchesOrParentMatches` row: walk the
/// parent directories top-down, handing each one's `MatchInfo` to the next.
fn via_parent_results(pm: &PatternMatcher, path: &str) -> Result<bool, PatternError> {
    let mut info = MatchInfo::default();
    if let Some((parent, _)) = path.rsplit_once('/') {
        let parent = builder::ignore::clean_path(if parent.is_empty() { "/" } else { parent });
        if parent != "." {
            let mut prefix = String::new();
            for (i, element) in parent.split('/').enumerate() {
                if i > 0 {
                    prefix.push('/');
                }
                prefix.push_str(element);
                // Upstream ignores the parents' results and errors here.
                if let Ok((_, next)) = pm.matches_using_parent_results(&prefix, &info) {
                    info = next;
                }
            }
        }
    }
    pm.matches_using_parent_results(path, &info).map(|(m, _)| m)
}

#[test]
fn patternmatcher_cases() {
    let Some(dir) = support::conformance_dir("dockerignore") else {
        return;
    };
    let table = std::fs::read_to_string(dir.join("patternmatcher_cases.tsv")).expect("read table");
    let mut rows = 0;
    let mut failures = Vec::new();
    for (n, line) in table.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [api, os, path, expected, patterns @ ..] = &fields[..] else {
            panic!("line {}: too few fields: {line:?}", n + 1);
        };
        assert!(matches!(*os, "all" | "unix"), "line {}: os {os:?}", n + 1);
        rows += 1;
        let pm = PatternMatcher::new(patterns.iter().copied());
        let got = match (*api, pm) {
            (_, Err(e)) => vec![outcome(Err(e))],
            ("MatchesOrParentMatches", Ok(pm)) => vec![
                outcome(pm.matches_or_parent_matches(path)),
                outcome(via_parent_results(&pm, path)),
            ],
            // The deprecated package function `Matches`: the path is
            // cleaned and `.` never matches. Its single-parent shortcut
            // gives the same answers as the full parent check on every row,
            // so the supported API is what is checked.
            ("Matches", Ok(pm)) => {
                let path = builder::ignore::clean_path(path);
                vec![if path == "." {
                    "false"
                } else {
                    outcome(pm.matches_or_parent_matches(&path))
                }]
            }
            (other, _) => panic!("line {}: unknown api {other:?}", n + 1),
        };
        if got.iter().any(|g| g != expected) {
            failures.push(format!(
                "line {}: {api} {path:?} {patterns:?} → {got:?}, want {expected}",
                n + 1
            ));
        }
    }
    eprintln!("patternmatcher_cases: {rows} rows checked");
    assert_eq!(rows, 138, "the README promises 138 cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn ignorefile_read_all() {
    let Some(dir) = support::conformance_dir("dockerignore") else {
        return;
    };
    let case = dir.join("ignorefile_readall");
    let input = std::fs::read_to_string(case.join("input.dockerignore")).expect("read input");
    let expected = std::fs::read_to_string(case.join("expected.txt")).expect("read expected");
    let expected: Vec<&str> = expected.lines().collect();
    assert_eq!(IgnoreFile::parse(&input), expected);
}

#[test]
fn bom_comments_and_crlf() {
    let text = "\u{feff}# comment\r\n  # not a comment\r\n./a/../b/\r\n!  /c\r\n/\r\n";
    assert_eq!(IgnoreFile::parse(text), ["# not a comment", "b", "!c", "/"]);
}

#[test]
fn dockerfile_specific_ignore_file_wins() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join(".dockerignore"), "from-context\n").unwrap();
    std::fs::create_dir(ctx.path().join("build")).unwrap();
    let dockerfile = ctx.path().join("build/app.Dockerfile");
    std::fs::write(&dockerfile, "FROM scratch\n").unwrap();

    let chosen = IgnoreFile::for_build(ctx.path(), Some(&dockerfile))
        .unwrap()
        .unwrap();
    assert_eq!(chosen.path, ctx.path().join(".dockerignore"));
    assert_eq!(chosen.patterns, ["from-context"]);

    std::fs::write(
        ctx.path().join("build/app.Dockerfile.dockerignore"),
        "specific\n",
    )
    .unwrap();
    let chosen = IgnoreFile::for_build(ctx.path(), Some(&dockerfile))
        .unwrap()
        .unwrap();
    assert_eq!(
        chosen.path,
        ctx.path().join("build/app.Dockerfile.dockerignore")
    );
    assert_eq!(chosen.patterns, ["specific"]);

    // From stdin there is no Dockerfile-specific file.
    let chosen = IgnoreFile::for_build(ctx.path(), None).unwrap().unwrap();
    assert_eq!(chosen.patterns, ["from-context"]);

    let empty = tempfile::tempdir().unwrap();
    assert!(IgnoreFile::for_build(empty.path(), None).unwrap().is_none());
}

#[test]
fn bad_patterns_name_the_file_and_pattern() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join(".dockerignore"), "ok\nsrc/[a-\n").unwrap();
    let file = IgnoreFile::for_build(ctx.path(), None).unwrap().unwrap();
    let message = file.matcher().unwrap_err().to_string();
    assert!(message.contains(".dockerignore"), "{message}");
    assert!(message.contains("src/[a-"), "{message}");
}

#[test]
fn exceptions_and_last_match_wins() {
    let pm = PatternMatcher::new(["*.md", "!README.md", "docs/**", "!docs/keep/*.md"]).unwrap();
    assert!(pm.exclusions());
    let excluded = |p: &str| pm.matches_or_parent_matches(p).unwrap();
    assert!(excluded("CHANGES.md"));
    assert!(!excluded("README.md"));
    assert!(excluded("docs/x/y.txt"));
    assert!(!excluded("docs/keep/a.md"));
    assert!(excluded("docs/keep/a.txt"));
    // `*` stays within one element; the pattern is anchored at the root.
    assert!(!excluded("sub/CHANGES.md"));
    // Docker's classes: `[!x]` is a class of `!` and `x`, not a negation.
    let bang = PatternMatcher::new(["[!x]"]).unwrap();
    assert!(bang.matches_or_parent_matches("!").unwrap());
    assert!(!bang.matches_or_parent_matches("y").unwrap());
    // Braces are literal.
    let braces = PatternMatcher::new(["{a,b}"]).unwrap();
    assert!(braces.matches_or_parent_matches("{a,b}").unwrap());
    assert!(!braces.matches_or_parent_matches("a").unwrap());
    assert_eq!(
        PatternMatcher::new(["a", " ! "]).unwrap_err(),
        PatternError::LoneExclamation
    );
}
