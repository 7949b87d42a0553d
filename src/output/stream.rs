//! Where a tar stream goes: a file, replaced whole only once the stream is
//! complete (a failed export leaves no half archive), stdout, which is
//! refused when it is a terminal as buildx does, or `docker load`.

use super::OutputError;
use super::spec::Destination;
use std::fs;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BUFFER: usize = 256 * 1024;

/// Runs `produce` with a writer to `dest` and completes the destination.
pub(super) fn write(
    dest: &Destination,
    produce: impl FnOnce(&mut dyn Write) -> Result<(), OutputError>,
) -> Result<(), OutputError> {
    match dest {
        Destination::Stdout => {
            let stdout = io::stdout();
            if stdout.is_terminal() {
                return Err(OutputError::Terminal);
            }
            let mut out = BufWriter::with_capacity(BUFFER, stdout.lock());
            produce(&mut out)?;
            out.flush().map_err(|source| OutputError::Write { source })
        }
        Destination::DockerLoad => docker_load(produce),
        Destination::File(path) => {
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            fs::create_dir_all(parent).map_err(OutputError::io("create directory", parent))?;
            let temp = tempfile::Builder::new()
                .prefix(".builder-")
                .tempfile_in(parent)
                .map_err(OutputError::io("create a temp file in", parent))?;
            let mut out = BufWriter::with_capacity(BUFFER, temp);
            produce(&mut out)?;
            let temp = out
                .into_inner()
                .map_err(|e| OutputError::io("write", path)(e.into_error()))?;
            fs::set_permissions(temp.path(), fs::Permissions::from_mode(0o644))
                .map_err(OutputError::io("set the mode of", temp.path()))?;
            temp.persist(path)
                .map_err(|e| OutputError::io("rename into place", path)(e.error))?;
            Ok(())
        }
    }
}

/// The docker CLI on `PATH`, which `--load` feeds.
pub fn docker_cli() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("docker"))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Streams the archive into `docker load`; its output is kept for the
/// error when it fails.
fn docker_load(
    produce: impl FnOnce(&mut dyn Write) -> Result<(), OutputError>,
) -> Result<(), OutputError> {
    let docker = docker_cli().ok_or(OutputError::NoDocker)?;
    let mut child = Command::new(&docker)
        .arg("load")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(OutputError::io("run", &docker))?;
    let written = match child.stdin.take() {
        Some(stdin) => {
            let mut out = BufWriter::with_capacity(BUFFER, stdin);
            produce(&mut out)
                .and_then(|()| out.flush().map_err(|source| OutputError::Write { source }))
        }
        None => Ok(()),
    };
    // stdin is closed here, so docker load sees the end of the archive.
    let output = child
        .wait_with_output()
        .map_err(OutputError::io("wait for", &docker))?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        return Err(OutputError::DockerLoad {
            status: output.status.to_string(),
            stderr: said
                .lines()
                .map(crate::terminal_text::displayed)
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    written
}
