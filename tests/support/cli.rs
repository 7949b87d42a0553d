//! Running the `builder` binary the way a user would, but isolated.

use assert_cmd::Command;
use std::path::Path;

/// `builder` with its own HOME, DOCKER_CONFIG (`<home>/docker`) and store
/// (`<home>/store`), so tests share no credentials or images.
pub fn builder(home: &Path) -> Command {
    Command::from_std(process(home))
}

/// [`builder`] as a std command, for tests that set up its stdio (a
/// pseudo-terminal) themselves.
pub fn process(home: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("builder"));
    cmd.env("HOME", home)
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("BUILDER_ROOT", home.join("store"));
    cmd
}
