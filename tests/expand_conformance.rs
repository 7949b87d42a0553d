//! Shell-word expansion against BuildKit's own tables (`envVarTest`,
//! `wordsTest`, read as ../shared/conformance/buildkit-shell/README.md says)
//! and against the pattern-operator expectations of BuildKit's
//! `TestProcessWithMatches`.

mod support;

use std::collections::BTreeMap;

use builder::dockerfile::expand::{ExpandErrorKind, Lexer};

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn env_var_table() {
    let Some(dir) = support::conformance_dir("buildkit-shell") else {
        return;
    };
    let text = std::fs::read_to_string(dir.join("envVarTest")).expect("read envVarTest");
    let env = env(&[
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]);
    let lexer = Lexer::new('\\');
    let (mut checked, mut windows_only, mut failures) = (0, 0, Vec::new());
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.trim().split('|').map(str::trim).collect();
        let [platform, input, expected] = fields[..] else {
            panic!("line {}: not three fields: {line:?}", n + 1);
        };
        match platform {
            "W" => {
                windows_only += 1;
                continue;
            }
            "A" | "U" => {}
            other => panic!("line {}: unknown platform {other:?}", n + 1),
        }
        checked += 1;
        let got = lexer.expand_word(input, &env);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(word), expected) => expected != "error" && word == expected,
            (Err(_), _) => false,
        };
        if !ok {
            failures.push(format!(
                "line {}: {input:?} → {got:?}, want {expected:?}",
                n + 1
            ));
        }
    }
    eprintln!("envVarTest: {checked} cases checked, {windows_only} Windows-only skipped");
    assert!(checked > 200, "too few cases read: {checked}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn words_table() {
    let Some(dir) = support::conformance_dir("buildkit-shell") else {
        return;
    };
    let text = std::fs::read_to_string(dir.join("wordsTest")).expect("read wordsTest");
    let lexer = Lexer::new('\\');
    let mut env = BTreeMap::new();
    let (mut checked, mut failures) = (0, Vec::new());
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(assignment) = line.strip_prefix("ENV ") {
            let assignment = assignment.trim_start_matches(' ');
            let (name, value) = assignment.split_once('=').unwrap_or((assignment, ""));
            env.insert(name.to_owned(), value.to_owned());
            continue;
        }
        let fields: Vec<&str> = line.split('|').collect();
        let [input, expected] = fields[..] else {
            panic!("line {}: not two fields: {line:?}", n + 1);
        };
        let input = input.trim();
        let expected: Vec<&str> = expected.trim_start_matches(' ').split(',').collect();
        checked += 1;
        let got = lexer
            .expand_words(input, &env)
            .unwrap_or_else(|_| vec!["error".to_owned()]);
        if got != expected {
            failures.push(format!(
                "line {}: {input:?} → {got:?}, want {expected:?}",
                n + 1
            ));
        }
    }
    eprintln!("wordsTest: {checked} cases checked");
    assert!(checked > 20, "too few cases read: {checked}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One `TestProcessWithMatches`-style case: input, environment, expected
/// word (or `None` for an error), and the names expected as matched and
/// unmatched.
struct Case {
    input: &'static str,
    env: &'static [(&'static str, &'static str)],
    expected: Option<&'static str>,
    matched: &'static [&'static str],
    unmatched: &'static [&'static str],
}

const fn ok(
    input: &'static str,
    env: &'static [(&'static str, &'static str)],
    expected: &'static str,
    matched: &'static [&'static str],
    unmatched: &'static [&'static str],
) -> Case {
    Case {
        input,
        env,
        expected: Some(expected),
        matched,
        unmatched,
    }
}

const fn fails(input: &'static str, env: &'static [(&'static str, &'static str)]) -> Case {
    Case {
        input,
        env,
        expected: None,
        matched: &[],
        unmatched: &[],
    }
}

const FOO_BAR: &[(&str, &str)] = &[("FOO", "xxx"), ("BAR", "")];
const XXYY: &[(&str, &str)] = &[("FOO", "xxyy")];

const CASES: &[Case] = &[
    ok("x", &[("DUMMY", "dummy")], "x", &[], &[]),
    ok("x ${UNUSED}", &[("DUMMY", "dummy")], "x ", &[], &["UNUSED"]),
    ok("x ${FOO}", &[("FOO", "y")], "x y", &["FOO"], &[]),
    ok(
        "${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}",
        FOO_BAR,
        "xxx  ccc",
        &["FOO", "BAR"],
        &["BAZ"],
    ),
    ok(
        "${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}",
        FOO_BAR,
        "xxx bbb ccc",
        &["FOO", "BAR"],
        &["BAZ"],
    ),
    ok("${FOO:-}", FOO_BAR, "xxx", &["FOO"], &[]),
    ok("${FOO:-}", &[], "", &[], &["FOO"]),
    ok(
        "${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}",
        FOO_BAR,
        "aaa bbb ",
        &["FOO", "BAR"],
        &["BAZ"],
    ),
    ok(
        "${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}",
        FOO_BAR,
        "aaa  ",
        &["FOO", "BAR"],
        &["BAZ"],
    ),
    ok("${FOO?aaa}", FOO_BAR, "xxx", &["FOO"], &[]),
    ok("${BAR?bbb}", FOO_BAR, "", &["BAR"], &[]),
    fails("${BAZ?ccc}", FOO_BAR),
    ok("${FOO:?aaa}", FOO_BAR, "xxx", &["FOO"], &[]),
    fails("${BAR:?bbb}", FOO_BAR),
    fails("${BAZ:?ccc}", FOO_BAR),
    fails("${BAZ:?}", FOO_BAR),
    fails("${FOO=aaa}", FOO_BAR),
    fails("${FOO=:aaa}", FOO_BAR),
    fails("${FOO=}", &[]),
    // Regex metacharacters are literal; `}` is escaped to stay inside ${}.
    ok(
        r"${FOO#()[]{\}^$.\*\?|\\}",
        &[("FOO", r"()[]{}^$.*?|\x")],
        "x",
        &["FOO"],
        &[],
    ),
    ok(r"${FOO%%\**}", &[("FOO", "xx**")], "xx", &["FOO"], &[]),
    ok("${FOO#*x*y}", XXYY, "y", &["FOO"], &[]),
    ok("${FOO#*}", XXYY, "xxyy", &["FOO"], &[]),
    ok(
        "${FOO#$BAR}",
        &[("FOO", "xxyy"), ("BAR", "x")],
        "xyy",
        &["FOO", "BAR"],
        &[],
    ),
    ok(
        "${FOO#$BAR}",
        &[("FOO", "xxyy"), ("BAR", "")],
        "xxyy",
        &["FOO", "BAR"],
        &[],
    ),
    ok("${FOO#}", XXYY, "xxyy", &["FOO"], &[]),
    ok("${FOO##*x}", XXYY, "yy", &["FOO"], &[]),
    ok("${FOO##}", XXYY, "xxyy", &["FOO"], &[]),
    ok(r"${FOO#?\?}", &[("FOO", "???y")], "?y", &["FOO"], &[]),
    ok(
        "${ABC:-.}${FOO%x}${ABC:-.}",
        XXYY,
        ".xxyy.",
        &["FOO"],
        &["ABC"],
    ),
    ok(r"${FOO%%\**\*}", &[("FOO", "a***yy*")], "a", &["FOO"], &[]),
    ok("${FOO%}", XXYY, "xxyy", &["FOO"], &[]),
    ok(
        "${FOO%%$BAR}",
        &[("FOO", "xxyy"), ("BAR", "")],
        "xxyy",
        &["FOO", "BAR"],
        &[],
    ),
    ok(
        "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
        &[("FOO", "/foo*/*/*.txt"), ("NEEDLE", r"\*/")],
        "/foo.*/*.txt - /foo..*.txt",
        &["FOO", "NEEDLE"],
        &[],
    ),
    ok(
        "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
        &[("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")],
        "/tmp/bar.txt - /bar.txt",
        &["FOO", "NEEDLE"],
        &[],
    ),
    ok(
        "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
        &[
            ("FOO", "/a/foo/b/c.txt"),
            ("NEEDLE", "/?/"),
            ("REPLACEMENT", "/"),
        ],
        "/foo/b/c.txt - /foo/c.txt",
        &["FOO", "NEEDLE", "REPLACEMENT"],
        &[],
    ),
    ok(
        "${FOO/$NEEDLE/$REPLACEMENT}",
        &[
            ("FOO", "http://google.de"),
            ("NEEDLE", "http://"),
            ("REPLACEMENT", "https://"),
        ],
        "https://google.de",
        &["FOO", "NEEDLE", "REPLACEMENT"],
        &[],
    ),
    ok(
        r"${FOO//\//\/}",
        &[("FOO", "/tmp/foo.txt")],
        r"\/tmp\/foo.txt",
        &["FOO"],
        &[],
    ),
    ok(
        "${FOO/$BAR/ww}",
        &[("FOO", "xxyy"), ("BAR", "")],
        "wwxxyy",
        &["FOO", "BAR"],
        &[],
    ),
    fails("${FOO//ww}", XXYY),
    fails("${FOO//}", XXYY),
    ok("${FOO///}", XXYY, "xxyy", &["FOO"], &[]),
    ok("${FOO///}", &[], "", &[], &["FOO"]),
];

#[test]
fn pattern_operators_and_matches() {
    let lexer = Lexer::new('\\');
    for case in CASES {
        let got = lexer.expand(case.input, &env(case.env));
        match (case.expected, got) {
            (None, Err(_)) => {}
            (None, Ok(e)) => panic!("{:?}: expected an error, got {:?}", case.input, e.word),
            (Some(_), Err(e)) => panic!("{:?}: unexpected error {e}", case.input),
            (Some(want), Ok(e)) => {
                assert_eq!(e.word, want, "{:?}", case.input);
                let matched: Vec<&str> = e.matched.iter().map(String::as_str).collect();
                let unmatched: Vec<&str> = e.unmatched.iter().map(String::as_str).collect();
                let mut want_matched = case.matched.to_vec();
                want_matched.sort_unstable();
                let mut want_unmatched = case.unmatched.to_vec();
                want_unmatched.sort_unstable();
                assert_eq!(matched, want_matched, "matched of {:?}", case.input);
                assert_eq!(unmatched, want_unmatched, "unmatched of {:?}", case.input);
            }
        }
    }
}

#[test]
fn platform_release_name() {
    let word =
        "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz";
    let lexer = Lexer::new('\\');
    let full = env(&[
        ("VERSION", "v1.2.3"),
        ("TARGETOS", "linux"),
        ("TARGETARCH", "arm"),
        ("TARGETVARIANT", "v7"),
    ]);
    assert_eq!(
        lexer.expand_word(word, &full).unwrap(),
        "something-v1.2.3.linux-arm-v7.tar.gz"
    );
    let no_variant = env(&[
        ("VERSION", "v1.2.3"),
        ("TARGETOS", "linux"),
        ("TARGETARCH", "amd64"),
        ("TARGETVARIANT", ""),
    ]);
    assert_eq!(
        lexer.expand_word(word, &no_variant).unwrap(),
        "something-v1.2.3.linux-amd64.tar.gz"
    );
}

#[test]
fn required_variable_messages() {
    let lexer = Lexer::new('\\');
    let word = "${VAR:?message here$ARG}";
    assert_eq!(
        lexer
            .expand_word(word, &env(&[("VAR", "plain"), ("ARG", "x")]))
            .unwrap(),
        "plain"
    );
    for vars in [&[("VAR", ""), ("ARG", "x")][..], &[("ARG", "x")][..]] {
        let err = lexer.expand_word(word, &env(vars)).unwrap_err();
        assert_eq!(
            err.kind,
            ExpandErrorKind::Required {
                name: "VAR".into(),
                message: "message herex".into()
            }
        );
        assert!(err.to_string().contains("VAR: message herex"), "{err}");
    }
    let unset = lexer.expand_word("${VAR?}", &env(&[])).unwrap_err();
    assert!(
        unset
            .to_string()
            .contains("VAR: is not allowed to be unset")
    );
    let empty = lexer
        .expand_word("${VAR:?}", &env(&[("VAR", "")]))
        .unwrap_err();
    assert!(
        empty
            .to_string()
            .contains("VAR: is not allowed to be empty")
    );
}

#[test]
fn modes_for_instructions() {
    let vars = env(&[("SET", "v")]);
    let lexer = Lexer::new('\\').raw_quotes(true).skip_unset(true);
    assert_eq!(
        lexer
            .expand_word(
                r#"'$SET' "$SET" $UNSET ${UNSET} ${UNSET:-d} ${UNSET/a/b}"#,
                &vars
            )
            .unwrap(),
        r#"'$SET' "v" $UNSET ${UNSET} ${UNSET:-d} ${UNSET/a/b}"#
    );
    let backtick = Lexer::new('`');
    assert_eq!(
        backtick
            .expand_word(r"C:\dir `$SET `` $SET", &vars)
            .unwrap(),
        r"C:\dir $SET ` v"
    );
    let heredoc = Lexer::new('\\')
        .raw_quotes(true)
        .raw_escapes(true)
        .skip_process_quotes(true);
    assert_eq!(
        heredoc
            .expand_word(r#"echo "$SET" '$SET' \$SET"#, &vars)
            .unwrap(),
        r#"echo "v" 'v' \$SET"#
    );
}

#[test]
fn replace_all_empty_matches_and_templates_follow_go() {
    let lexer = Lexer::new('\\');
    let vars = env(&[("FOO", "xxyy"), ("EMPTY", ""), ("T", "<$0>")]);
    // An empty pattern matches between every character, as Go's ReplaceAll.
    assert_eq!(
        lexer.expand_word("${FOO//$EMPTY/-}", &vars).unwrap(),
        "-x-x-y-y-"
    );
    // `$0` in a `//` replacement is the matched text (Go template); in `/`
    // the replacement is literal.
    assert_eq!(
        lexer.expand_word("${FOO//x/$T}", &vars).unwrap(),
        "<x><x>yy"
    );
    assert_eq!(lexer.expand_word("${FOO/x/$T}", &vars).unwrap(), "<$0>xyy");
    // A newline is not matched by `*` or `?`.
    let nl = env(&[("V", "a\nb")]);
    assert_eq!(lexer.expand_word("${V#*b}", &nl).unwrap(), "a\nb");
    assert_eq!(lexer.expand_word("${V%%?b}", &nl).unwrap(), "a\nb");
}

#[test]
fn invalid_patterns_are_reported() {
    let lexer = Lexer::new('\\');
    let vars = env(&[("FOO", "abc"), ("P", r"a\x")]);
    let err = lexer.expand_word("${FOO#$P}", &vars).unwrap_err();
    assert!(
        matches!(err.kind, ExpandErrorKind::InvalidPattern { ref pattern, .. } if pattern == r"a\x"),
        "{err}"
    );
    let err = lexer.expand_word("${FOO^^}", &vars).unwrap_err();
    assert_eq!(
        err.kind,
        ExpandErrorKind::UnsupportedModifier {
            modifier: "^".into()
        }
    );
    let err = lexer.expand_word("${}", &vars).unwrap_err();
    assert_eq!(err.kind, ExpandErrorKind::BadSubstitution);
}
