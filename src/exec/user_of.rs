//! `USER` for a RUN step: the image's `/etc/passwd` and `/etc/group`, read
//! through the merged view of the step's rootfs (the topmost layer holding
//! the file, whiteouts respected), resolved to the process's ids.

use super::ExecError;
use super::rootfs::RootfsView;
use super::user::Accounts;
use crate::sandbox::User;
use std::path::{Path, PathBuf};

/// Who a RUN step's process is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StepUser {
    /// Its ids.
    pub user: User,
    /// `HOME` unless the step's environment sets it.
    pub home: String,
}

/// Resolves `spec` against the rootfs made of `layers` (an overlay stack,
/// top first, when `overlay`; else one plain directory). An empty spec is
/// root (whose home still comes from the image's `/etc/passwd`).
pub(crate) fn resolve(
    layers: &[PathBuf],
    overlay: bool,
    spec: &str,
) -> Result<StepUser, ExecError> {
    let spec = if spec.is_empty() { "0" } else { spec };
    let failed = |reason: String| ExecError::User {
        spec: spec.to_owned(),
        reason,
    };
    let view = if overlay {
        RootfsView::layers(layers)
    } else {
        RootfsView::dir(
            layers
                .first()
                .map_or(Path::new("/nonexistent"), PathBuf::as_path),
        )
    }
    .map_err(|e| failed(e.to_string()))?;
    let read = |path: &str| -> Result<Option<String>, ExecError> {
        let bytes = view
            .read_small_file(Path::new(path))
            .map_err(|e| failed(e.to_string()))?;
        Ok(bytes.map(|b| String::from_utf8_lossy(&b).into_owned()))
    };
    let passwd = read("/etc/passwd")?;
    let group = read("/etc/group")?;
    let accounts = Accounts::parse(passwd.as_deref(), group.as_deref());
    let user = accounts
        .resolve_process_user(spec)
        .map_err(|e| failed(e.to_string()))?;
    Ok(StepUser {
        user: User {
            uid: user.ids.uid,
            gid: user.ids.gid,
            additional_gids: user.additional_gids,
        },
        home: user.home,
    })
}
