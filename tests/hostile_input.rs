//! Hostile Dockerfiles: small files whose expansion would take gigabytes,
//! files and lines too large to read or show, configs too large for any
//! reader. Each is a clear error naming the file and line (exit 1), never
//! an allocation abort, and the report stays a few lines long.

mod support;

use support::build::{Home, stderr_of};
use support::cli::builder;

/// `builder check` of `dockerfile` (written as `<name>/Dockerfile`):
/// exit code and stderr.
fn check(home: &Home, name: &str, dockerfile: &[u8]) -> (i32, String) {
    let dir = home.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    let output = builder(home.dir.path())
        .args(["check", dir.to_str().unwrap()])
        .output()
        .unwrap();
    (output.status.code().unwrap_or(-1), stderr_of(&output))
}

/// `ENV a=xxxxxxxx` and then `lines` lines of `ENV a=$a$a`, after FROM.
fn doubling(keyword: &str, lines: usize) -> String {
    let mut text = format!("FROM scratch\n{keyword} a=xxxxxxxx\n");
    for _ in 0..lines {
        text.push_str(&format!("{keyword} a=$a$a\n"));
    }
    text
}

#[test]
fn a_variable_doubled_on_every_line_stops_at_the_line_that_passes_4_mib() {
    let home = Home::new();
    for keyword in ["ENV", "ARG"] {
        // 830 bytes: 8 bytes doubled 30 times would be 8 GiB.
        let (code, stderr) = check(&home, keyword, doubling(keyword, 30).as_bytes());
        assert_eq!(code, 1, "{stderr}");
        // Doubling 19 makes 4 MiB; doubling 20, on line 22, is refused.
        assert!(
            stderr.contains(&format!("{keyword}/Dockerfile:22:")),
            "{stderr}"
        );
        assert!(
            stderr.contains("the expanded word would be more than 4 MiB longer than written"),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("22 │ {keyword} a=$a$a")),
            "{stderr}"
        );
        assert!(stderr.len() < 4000, "{} bytes:\n{stderr}", stderr.len());
    }
}

#[test]
fn a_big_variable_copied_under_many_names_is_refused_at_8_mib() {
    let home = Home::new();
    // `a` is 2 MiB; with PATH, a, b and c take just under 8 MiB; d passes.
    let mut dockerfile = doubling("ENV", 18);
    for name in ["b", "c", "d", "e", "f"] {
        dockerfile.push_str(&format!("ENV {name}=$a\n"));
    }
    let (code, stderr) = check(&home, "copies", dockerfile.as_bytes());
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("copies/Dockerfile:23:1:"), "{stderr}");
    assert!(
        stderr.contains("the variables would take 8388676 bytes, more than the 8 MiB"),
        "{stderr}"
    );
    assert!(stderr.len() < 4000, "{} bytes:\n{stderr}", stderr.len());
}

#[test]
fn many_run_steps_with_a_big_environment_are_refused() {
    let home = Home::new();
    // A 4 MiB variable kept by each RUN: the 64th passes 256 MiB.
    let mut dockerfile = doubling("ENV", 19);
    for _ in 0..70 {
        dockerfile.push_str("RUN true\n");
    }
    let (code, stderr) = check(&home, "runs", dockerfile.as_bytes());
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("runs/Dockerfile:85:1:"), "{stderr}");
    assert!(
        stderr.contains("the RUN steps up to here hold more than 256 MiB of variables"),
        "{stderr}"
    );
}

#[test]
fn labels_and_here_documents_are_bounded_too() {
    let home = Home::new();
    let big = doubling("ARG", 19);
    for (name, tail, line) in [
        ("label", "LABEL l=$a$a\n", 22),
        ("heredoc", "COPY <<EOF /x\n$a\n$a\nEOF\n", 23),
        ("replace", "ENV b=${a//x/yy}\n", 22),
    ] {
        let (code, stderr) = check(&home, name, format!("{big}{tail}").as_bytes());
        assert_eq!(code, 1, "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("{name}/Dockerfile:{line}:")),
            "{name}: {stderr}"
        );
        assert!(
            stderr.contains("more than 4 MiB longer"),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn a_dockerfile_over_16_mib_is_refused_naming_the_file() {
    let home = Home::new();
    let mut dockerfile = b"FROM scratch\n".to_vec();
    let comment = format!("# {}\n", "x".repeat(1000));
    while dockerfile.len() <= 16 << 20 {
        dockerfile.extend_from_slice(comment.as_bytes());
    }
    let (code, stderr) = check(&home, "huge", &dockerfile);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("huge/Dockerfile:1:1: the file is larger than 16 MiB"),
        "{stderr}"
    );
    assert!(stderr.len() < 4000, "{} bytes:\n{stderr}", stderr.len());
}

#[test]
fn an_endless_dockerfile_is_refused_not_read_forever() {
    let home = Home::new();
    let context = home.path("ctx");
    std::fs::create_dir_all(&context).unwrap();
    let output = builder(home.dir.path())
        .args(["check", "-f", "/dev/zero", context.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("/dev/zero:1:1: the file is larger than 16 MiB"),
        "{stderr}"
    );
}

#[test]
fn errors_on_long_lines_show_a_cut_line() {
    let home = Home::new();
    let long = "y".repeat(60_000);
    for (name, dockerfile, marker) in [
        (
            "unknown",
            format!("FROM scratch\nFROB {long}\nLABEL a=b\n"),
            "2 │ FROB yyyy",
        ),
        (
            "toolong",
            format!("FROM scratch\nLABEL a={long}{long}\n"),
            "2 │ LABEL a=yyyy",
        ),
        (
            "expand",
            format!("FROM scratch\nLABEL a={long} b=${{x\n"),
            "2 │ …yyyy",
        ),
    ] {
        let (code, stderr) = check(&home, name, dockerfile.as_bytes());
        assert_eq!(code, 1, "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("{name}/Dockerfile:2:")),
            "{stderr}"
        );
        assert!(stderr.contains(marker), "{name}: {stderr}");
        assert!(
            stderr.len() < 4000,
            "{name}: {} bytes:\n{}",
            stderr.len(),
            &stderr[..4000]
        );
    }
}

#[test]
fn a_config_larger_than_a_config_may_be_is_refused_at_its_step() {
    let home = Home::new();
    // A 4 MiB ARG (not in the config's Env) copied into labels: each label
    // adds 8 MiB (the label and its history entry); the third passes 32 MiB
    // (with the ARGs' history).
    let mut dockerfile = doubling("ARG", 19);
    for i in 1..=10 {
        dockerfile.push_str(&format!("LABEL l{i}=$a\n"));
    }
    let context = home.context("config", &dockerfile);
    let output = home.build(&[context.to_str().unwrap()]).output().unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("config/Dockerfile:24: [1/1] LABEL l3=xxxx"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the image config would be") && stderr.contains("more than the 32 MiB"),
        "{stderr}"
    );
    assert!(stderr.len() < 8000, "{} bytes", stderr.len());
}
