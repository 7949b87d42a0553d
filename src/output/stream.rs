//! Where a tar stream goes: a file, replaced whole only once the stream is
//! complete (a failed export leaves no half archive), or stdout, which is
//! refused when it is a terminal as buildx does.

use super::OutputError;
use super::spec::Destination;
use std::fs;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

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
