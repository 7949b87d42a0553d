//! Executing the step's program: `PATH` lookup inside the rootfs (with the
//! step's own `PATH`, as runc does) and `execve` with exactly the given
//! environment.

use super::helper::SetupError;
use super::spec::Spec;
use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Replaces the process with the step's program; returns only on failure.
pub(crate) fn exec(spec: &Spec) -> SetupError {
    let resolved = match resolve(spec) {
        Ok(path) => path,
        Err(err) => return err,
    };
    let to_c =
        |s: &str| CString::new(s).map_err(|_| SetupError::Invalid(format!("{s:?} contains NUL")));
    let program = match to_c(&resolved.to_string_lossy()) {
        Ok(program) => program,
        Err(err) => return err,
    };
    let argv: Result<Vec<CString>, _> = spec.argv.iter().map(|arg| to_c(arg)).collect();
    let envp = environment(spec);
    let (argv, envp) = match (argv, envp) {
        (Ok(argv), Ok(envp)) => (argv, envp),
        (Err(err), _) | (_, Err(err)) => return err,
    };
    let argv_ptrs: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp_ptrs: Vec<*const libc::c_char> = envp
        .iter()
        .map(|e| e.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    // SAFETY: both arrays are NULL-terminated and point into CStrings that
    // outlive the call; execve only returns on failure.
    unsafe { libc::execve(program.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
    SetupError::Os {
        what: format!("executing {:?}", resolved.display().to_string()),
        source: std::io::Error::last_os_error(),
    }
}

/// The step's environment: its variables, then its secret ones, which
/// replace variables of the same name.
fn environment(spec: &Spec) -> Result<Vec<CString>, SetupError> {
    let is_secret = |name: &str| spec.secret_env.iter().any(|s| s.name == name);
    let plain = spec
        .env
        .iter()
        .filter(|var| !is_secret(&var.name))
        .map(|var| format!("{}={}", var.name, var.value).into_bytes());
    let secret = spec.secret_env.iter().map(|var| {
        let mut entry = format!("{}=", var.name).into_bytes();
        entry.extend_from_slice(var.value.expose());
        entry
    });
    plain
        .chain(secret)
        .map(|entry| {
            CString::new(entry)
                .map_err(|_| SetupError::Invalid("an environment variable contains NUL".into()))
        })
        .collect()
}

/// The file to execute: `argv[0]` itself when it has a slash, otherwise the
/// first executable regular file of that name in the step's `PATH`.
fn resolve(spec: &Spec) -> Result<PathBuf, SetupError> {
    let Some(program) = spec.argv.first() else {
        return Err(SetupError::Invalid("the step has no command to run".into()));
    };
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    let path = spec.path_var().unwrap_or_default();
    path.split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(program))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| {
            SetupError::Invalid(format!(
                "exec: {program:?}: executable file not found in $PATH ({path:?})"
            ))
        })
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}
