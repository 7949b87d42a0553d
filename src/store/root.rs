//! Where the store lives when `--root` / `$BUILDER_ROOT` do not say:
//! `/var/lib/builder` for root, `$XDG_DATA_HOME/builder` (or
//! `~/.local/share/builder`) for everyone else, like other daemonless tools.

use super::StoreError;
use std::ffi::OsString;
use std::path::PathBuf;

/// The default store root for the current user.
pub fn default_root() -> Result<PathBuf, StoreError> {
    choose(
        rustix::process::geteuid().is_root(),
        std::env::var_os("XDG_DATA_HOME"),
        std::env::var_os("HOME"),
    )
}

fn choose(
    is_root: bool,
    xdg_data_home: Option<OsString>,
    home: Option<OsString>,
) -> Result<PathBuf, StoreError> {
    if is_root {
        return Ok(PathBuf::from("/var/lib/builder"));
    }
    // The XDG spec says relative values are invalid and must be ignored.
    let absolute = |v: OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    if let Some(data) = xdg_data_home.and_then(absolute) {
        return Ok(data.join("builder"));
    }
    match home.and_then(absolute) {
        Some(home) => Ok(home.join(".local/share/builder")),
        None => Err(StoreError::NoHome),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_user_uses_var_lib() {
        assert_eq!(
            choose(true, Some("/x".into()), Some("/root".into())).unwrap(),
            PathBuf::from("/var/lib/builder")
        );
    }

    #[test]
    fn other_users_prefer_xdg_then_home() {
        assert_eq!(
            choose(false, Some("/data".into()), Some("/home/u".into())).unwrap(),
            PathBuf::from("/data/builder")
        );
        assert_eq!(
            choose(false, Some("relative".into()), Some("/home/u".into())).unwrap(),
            PathBuf::from("/home/u/.local/share/builder")
        );
        assert!(matches!(choose(false, None, None), Err(StoreError::NoHome)));
    }
}
