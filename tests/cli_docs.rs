//! What `builder man` and `builder completions` give a user: a man page per
//! command made from the clap definitions, and completion scripts that
//! complete image arguments with the names in the store (run in a real
//! bash for that).

mod support;

use support::cli::builder;

#[test]
fn man_writes_a_page_per_command_with_its_flags() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("man1");
    builder(home.path()).arg("man").arg(&dir).assert().success();
    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for page in [
        "builder.1",
        "builder-build.1",
        "builder-images.1",
        "builder-save.1",
        "builder-load.1",
    ] {
        assert!(
            pages.contains(&page.to_owned()),
            "{page} missing: {pages:?}"
        );
    }
    assert!(!pages.iter().any(|p| p.contains("__")), "{pages:?}");
    let build = std::fs::read_to_string(dir.join("builder-build.1")).unwrap();
    assert!(
        build.starts_with(".ie \\n(.g .ds Aq") || build.contains(".TH builder-build 1"),
        "{build}"
    );
    for flag in ["shm\\-size", "iidfile", "load"] {
        assert!(build.contains(flag), "{flag} missing from builder-build.1");
    }
}

#[test]
fn bash_completion_offers_the_image_names_in_the_store() {
    if std::process::Command::new("bash")
        .arg("-c")
        .arg("true")
        .status()
        .is_err()
    {
        eprintln!("SKIPPED: no bash");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let context = home.path().join("ctx");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(context.join("Dockerfile"), "FROM scratch\nLABEL a=b\n").unwrap();
    builder(home.path())
        .args(["build", "-q", "-t", "app:1", "-t", "other/tool:2"])
        .arg(&context)
        .assert()
        .success();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_builder"))
        .parent()
        .unwrap();
    let complete = |line: &str| {
        let script = format!(
            "source <(builder completions bash)\nCOMP_WORDS=({line})\nCOMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))\n_builder_image_names builder \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"\necho \"${{COMPREPLY[*]}}\""
        );
        let output = std::process::Command::new("bash")
            .arg("-c")
            .arg(&script)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("BUILDER_ROOT", home.path().join("store"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    assert_eq!(complete("builder inspect ''"), "app:1 other/tool:2");
    assert_eq!(complete("builder rmi oth"), "other/tool:2");
    assert_eq!(complete("builder save app:1 ''"), "app:1 other/tool:2");
    // Flags and other commands still complete as clap's script does.
    assert_eq!(complete("builder inspect --rem"), "--remote");
    assert_eq!(complete("builder ima"), "images");
    // After global flags, and with `--root` the store listed is that one.
    let other = home.path().join("other-store");
    builder(home.path())
        .arg("--root")
        .arg(&other)
        .args(["build", "-q", "-t", "elsewhere:1"])
        .arg(&context)
        .assert()
        .success();
    let other = other.display();
    assert_eq!(
        complete(&format!("builder --root {other} inspect ''")),
        "elsewhere:1"
    );
    assert_eq!(
        complete(&format!("builder --root={other} rmi -f ''")),
        "elsewhere:1"
    );
    assert_eq!(
        complete(&format!("builder --root {other} build -t ''")),
        "elsewhere:1"
    );
    assert_eq!(
        complete("builder --insecure-registry h:5 inspect ap"),
        "app:1"
    );
    assert_eq!(complete("builder build --tag ''"), "app:1 other/tool:2");
    assert_eq!(
        complete("builder --root /x --insecure-registry h:5 ima"),
        "images"
    );
    assert_eq!(complete("builder --root /x inspect --rem"), "--remote");
    // The word after a flag that takes a value is that value, not an image.
    assert!(!complete("builder inspect -f ''").contains("app:1"));
    assert!(!complete("builder save -o ''").contains("app:1"));
    for shell in ["zsh", "fish"] {
        let assert = builder(home.path())
            .args(["completions", shell])
            .assert()
            .success();
        let script = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
        assert!(
            script.contains("images --filter dangling=false --format"),
            "{shell}"
        );
    }
}

#[test]
fn zsh_and_fish_complete_image_names_after_global_flags() {
    let home = tempfile::tempdir().unwrap();
    let context = home.path().join("ctx");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(context.join("Dockerfile"), "FROM scratch\nLABEL a=b\n").unwrap();
    let store = home.path().join("elsewhere");
    builder(home.path())
        .arg("--root")
        .arg(&store)
        .args(["build", "-q", "-t", "app:1", "-t", "other/tool:2"])
        .arg(&context)
        .assert()
        .success();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_builder"))
        .parent()
        .unwrap();
    let run = |shell: &str, script: String| {
        let output = std::process::Command::new(shell)
            .arg("-c")
            .arg(script)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("BUILDER_ROOT", home.path().join("default-store"))
            .output();
        match output {
            Ok(output) => {
                assert!(output.status.success(), "{shell}: {output:?}");
                Some(String::from_utf8(output.stdout).unwrap())
            }
            Err(_) => {
                eprintln!("SKIPPED: no {shell} (.ci/install installs it)");
                None
            }
        }
    };
    let store = store.display();
    // fish completes with its own engine (`complete -C`).
    let fish = |line: &str| {
        run(
            "fish",
            format!("builder completions fish | source; complete -C '{line}'"),
        )
        .map(|out| {
            out.lines()
                .map(|l| l.split('\t').next().unwrap().to_owned())
                .collect::<Vec<_>>()
        })
    };
    if let Some(names) = fish(&format!("builder --root {store} inspect ")) {
        assert_eq!(names, ["app:1", "other/tool:2"]);
        assert_eq!(
            fish(&format!("builder --root={store} build -t ")).unwrap(),
            ["app:1", "other/tool:2"]
        );
        assert_eq!(
            fish(&format!("builder --root {store} rmi oth")).unwrap(),
            ["other/tool:2"]
        );
        assert_eq!(
            fish(&format!("builder --root {store} ima")).unwrap(),
            ["images"]
        );
    }
    // zsh: the function the script adds, with compadd showing what it offers
    // (clap's own completion stands in as CLAP).
    let zsh = |words: &str| {
        run(
            "zsh",
            format!(
                "compdef() {{ }}\neval \"$(builder completions zsh)\"\n\
                 compadd() {{ shift; print -l ${{(P)1}} }}\n_builder() {{ print CLAP }}\n\
                 words=({words})\nCURRENT=${{#words}}\n_builder_image_names"
            ),
        )
    };
    if let Some(names) = zsh(&format!("builder --root {store} inspect ''")) {
        assert_eq!(names, "app:1\nother/tool:2\n");
        assert_eq!(
            zsh(&format!("builder --root {store} build --tag ''")).unwrap(),
            "app:1\nother/tool:2\n"
        );
        assert_eq!(
            zsh(&format!("builder --root {store} inspect -f ''")).unwrap(),
            "CLAP\n"
        );
        assert_eq!(
            zsh(&format!("builder --root {store} ima")).unwrap(),
            "CLAP\n"
        );
    }
}
