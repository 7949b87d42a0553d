//! `builder help` and the README agree: every command has a one-line
//! description, and the README's command list is what `builder help`
//! prints.

mod support;

use support::cli::builder;

/// The `Commands:` lines of a help text, without clap's own `help`.
fn command_lines(text: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| l.trim_end() != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l.trim_start().starts_with("help "))
        .map(|l| l.trim_end().to_owned())
        .collect()
}

#[test]
fn every_command_has_a_description_and_the_readme_lists_them_as_help_does() {
    let home = tempfile::tempdir().unwrap();
    let output = builder(home.path()).arg("help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    let commands = command_lines(&help);
    assert!(commands.len() >= 12, "{help}");
    for line in &commands {
        let mut words = line.split_whitespace();
        let name = words.next().unwrap_or_default();
        assert!(
            words.next().is_some(),
            "`{name}` has no description:\n{help}"
        );
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert_eq!(
        command_lines(&readme),
        commands,
        "the README's command list differs from `builder help`"
    );
}
