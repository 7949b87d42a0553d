//! Running the `builder` binary the way a user would, but isolated.

use assert_cmd::Command;
use std::path::Path;

/// `builder` with its own HOME, DOCKER_CONFIG (`<home>/docker`) and store
/// (`<home>/store`), so tests share no credentials or images.
pub fn builder(home: &Path) -> Command {
    let mut cmd = Command::cargo_bin("builder").expect("builder binary");
    cmd.env("HOME", home)
        .env("DOCKER_CONFIG", home.join("docker"))
        .env("BUILDER_ROOT", home.join("store"));
    cmd
}
