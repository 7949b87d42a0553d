//! The step's own session keyring, as runc gives each container: without
//! it a step inherits builder's session keyring, and with it the keys of
//! the host session that started builder. (Docker's seccomp profile also
//! refuses `keyctl`, `add_key` and `request_key`, which keeps a step off
//! the user keyrings too; this holds for unconfined steps as well.)

use super::helper::{Context, SetupError};

/// `KEYCTL_JOIN_SESSION_KEYRING` from `<linux/keyctl.h>`.
const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;

/// Makes the calling process join a new, empty, anonymous session keyring.
pub(crate) fn join_new_session() -> Result<(), SetupError> {
    // SAFETY: a NULL name asks for a new anonymous keyring; the kernel reads
    // no memory of ours.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if ret >= 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        // A kernel without keyrings, or keyctl filtered for builder itself
        // (as in a container): the step, which inherits that, cannot reach
        // any keyring either.
        Some(libc::ENOSYS | libc::EPERM) => Ok(()),
        _ => Err(err).context(|| "joining a new session keyring".into()),
    }
}
