//! Whether RUN steps for a platform can run on this machine, and how: the
//! one place that decides it ([`Execution::for_platform`]).
//!
//! - **Native**: the host runs the platform's binaries (`linux/amd64` on
//!   amd64, `linux/arm/v7` on arm64…).
//! - **Emulated**: Debian's `qemu-user-static` runs them
//!   (`qemu-aarch64-static` for `linux/arm64`…, looked up in
//!   `$BUILDER_QEMU_DIR`, default `/usr/bin`). The interpreter is
//!   registered with binfmt_misc inside each step's own user namespace
//!   (see `binfmt`; Linux ≥ 6.7), so the host needs no set-up; where the
//!   kernel cannot, a host registration with the `F` flag
//!   (`/proc/sys/fs/binfmt_misc/qemu-aarch64`) is used instead.
//! - **Impossible**: [`EmulationError`] says what is missing and what to
//!   install, before any step runs.

pub use super::binfmt::Binfmt;
use crate::image::PlatformSpec;
use std::fmt;
use std::path::{Path, PathBuf};

/// The variable naming the directory of the `qemu-*-static` interpreters.
pub const QEMU_DIR_VAR: &str = "BUILDER_QEMU_DIR";

/// The Debian package that provides the interpreters.
pub const QEMU_PACKAGE: &str = "qemu-user-static";

/// How RUN steps for one platform run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Execution {
    /// The host runs its binaries.
    Native,
    /// QEMU user-mode emulation runs them.
    Emulated(Emulator),
}

/// A platform's emulator and how the kernel finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emulator {
    /// The emulated platform.
    pub platform: PlatformSpec,
    /// The interpreter (`/usr/bin/qemu-aarch64-static`).
    pub interpreter: PathBuf,
    /// Where it is registered.
    pub registration: Registration,
}

/// Where an emulator is registered with binfmt_misc.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    /// In each step's own user namespace, by the sandbox.
    InNamespace(Binfmt),
    /// By the host (an entry with the `F` flag), for every process.
    Host(PathBuf),
}

impl Registration {
    /// What the sandbox registers in the step, if anything.
    pub fn binfmt(&self) -> Option<&Binfmt> {
        match self {
            Registration::InNamespace(binfmt) => Some(binfmt),
            Registration::Host(_) => None,
        }
    }
}

impl Emulator {
    /// The interpreter's file name (`qemu-aarch64-static`).
    pub fn name(&self) -> String {
        self.interpreter.file_name().map_or_else(
            || self.interpreter.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// One line for the build's log: which emulator runs the platform's
    /// steps and where it is registered.
    pub fn notice(&self) -> String {
        let place = match &self.registration {
            Registration::InNamespace(_) => {
                "registered in each step's own user namespace".to_owned()
            }
            Registration::Host(entry) => format!("registered on the host ({})", entry.display()),
        };
        format!(
            "RUN steps for {} run under emulation by {} ({place})",
            self.platform,
            self.interpreter.display()
        )
    }
}

impl fmt::Display for Emulator {
    /// `emulation of linux/arm64 by qemu-aarch64-static`, for errors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "emulation of {} by {}", self.platform, self.name())
    }
}

/// Why steps for a platform cannot run here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmulationError {
    /// Only Linux images have RUN steps builder can run.
    #[error("RUN steps for {platform} cannot run here: only Linux platforms can be built")]
    NotLinux {
        /// The platform.
        platform: String,
    },
    /// No QEMU user-mode emulator exists for the architecture.
    #[error(
        "RUN steps for {platform} cannot run on {host}: builder knows no QEMU emulator for {architecture}"
    )]
    UnknownArchitecture {
        /// The platform.
        platform: String,
        /// This machine's platform.
        host: String,
        /// Its architecture.
        architecture: String,
    },
    /// The emulator is not installed.
    #[error(
        "RUN steps for {platform} need QEMU user-mode emulation, and {} is missing (install it with `apt-get install {QEMU_PACKAGE}`, or point {QEMU_DIR_VAR} at the directory holding it)",
        interpreter.display()
    )]
    NoInterpreter {
        /// The platform.
        platform: String,
        /// Where the interpreter was looked for.
        interpreter: PathBuf,
    },
    /// Neither the step's namespace nor the host can register it.
    #[error(
        "RUN steps for {platform} need {} registered with binfmt_misc: this kernel refused it in a user namespace ({reason}; Linux ≥ 6.7 allows it), and the host has no entry {} with the F flag (`apt-get install {QEMU_PACKAGE} binfmt-support` registers one)",
        interpreter.display(),
        host_entry.display()
    )]
    NoRegistration {
        /// The platform.
        platform: String,
        /// The interpreter.
        interpreter: PathBuf,
        /// Why the in-namespace registration failed.
        reason: String,
        /// The host entry looked for.
        host_entry: PathBuf,
    },
}

impl Execution {
    /// How steps for `platform` run on this machine, or why they cannot.
    /// Probes the kernel (a forked child) for an emulated platform.
    pub fn for_platform(platform: &PlatformSpec) -> Result<Execution, EmulationError> {
        let host = PlatformSpec::host();
        if host.can_run(platform) {
            return Ok(Execution::Native);
        }
        if platform.os() != "linux" {
            return Err(EmulationError::NotLinux {
                platform: platform.to_string(),
            });
        }
        let Some(qemu) = Qemu::for_architecture(platform.architecture()) else {
            return Err(EmulationError::UnknownArchitecture {
                platform: platform.to_string(),
                host: host.to_string(),
                architecture: platform.architecture().to_owned(),
            });
        };
        let dir = std::env::var_os(QEMU_DIR_VAR)
            .filter(|d| !d.is_empty())
            .map_or_else(|| PathBuf::from("/usr/bin"), PathBuf::from);
        let interpreter = dir.join(format!("qemu-{}-static", qemu.name));
        if !is_executable(&interpreter) {
            return Err(EmulationError::NoInterpreter {
                platform: platform.to_string(),
                interpreter,
            });
        }
        let binfmt = Binfmt {
            name: format!("qemu-{}", qemu.name),
            magic: qemu.magic.to_vec(),
            mask: qemu.mask.to_vec(),
            interpreter: interpreter.clone(),
        };
        let emulator = |interpreter, registration| {
            Ok(Execution::Emulated(Emulator {
                platform: platform.clone(),
                interpreter,
                registration,
            }))
        };
        let reason = match binfmt.probe() {
            Ok(()) => return emulator(interpreter, Registration::InNamespace(binfmt)),
            Err(reason) => reason,
        };
        let host_entry = Path::new("/proc/sys/fs/binfmt_misc").join(&binfmt.name);
        match host_interpreter(&host_entry) {
            Some(host_interpreter) => emulator(host_interpreter, Registration::Host(host_entry)),
            None => Err(EmulationError::NoRegistration {
                platform: platform.to_string(),
                interpreter,
                reason,
                host_entry,
            }),
        }
    }
}

/// The interpreter of an enabled host entry with the `F` flag (without it
/// the kernel would look the interpreter up inside the step's rootfs).
fn host_interpreter(entry: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(entry).ok()?;
    let mut lines = text.lines();
    if lines.next()? != "enabled" {
        return None;
    }
    let mut interpreter = None;
    let mut fixed = false;
    for line in lines {
        if let Some(path) = line.strip_prefix("interpreter ") {
            interpreter = Some(PathBuf::from(path));
        } else if let Some(flags) = line.strip_prefix("flags: ") {
            fixed = flags.contains('F');
        }
    }
    interpreter.filter(|_| fixed)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A QEMU user-mode target: its name and the ELF header it claims, as
/// QEMU's `qemu-binfmt-conf.sh` (and Debian's binfmt.d files) give them.
struct Qemu {
    name: &'static str,
    magic: &'static [u8; 20],
    mask: &'static [u8; 20],
}

/// The mask most 64- and 32-bit little-endian targets use.
const ELF_MASK: &[u8; 20] =
    b"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff";
/// The x86 mask (also matches ELF class/data variants QEMU accepts).
const X86_MASK: &[u8; 20] =
    b"\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff";

impl Qemu {
    /// The target for an architecture in GOARCH spelling.
    fn for_architecture(architecture: &str) -> Option<Qemu> {
        let (name, magic, mask): (_, &[u8; 20], _) = match architecture {
            "arm64" => (
                "aarch64",
                b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00",
                ELF_MASK,
            ),
            "arm" => (
                "arm",
                b"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x28\x00",
                ELF_MASK,
            ),
            "riscv64" => (
                "riscv64",
                b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xf3\x00",
                ELF_MASK,
            ),
            "ppc64le" => (
                "ppc64le",
                b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x15\x00",
                b"\xff\xff\xff\xff\xff\xff\xff\xfc\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\x00",
            ),
            "s390x" => (
                "s390x",
                b"\x7fELF\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x16",
                b"\xff\xff\xff\xff\xff\xff\xff\xfc\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff",
            ),
            "amd64" => (
                "x86_64",
                b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00",
                X86_MASK,
            ),
            "386" => (
                "i386",
                b"\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x03\x00",
                X86_MASK,
            ),
            _ => return None,
        };
        Some(Qemu { name, magic, mask })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_platform_is_native() {
        assert_eq!(
            Execution::for_platform(&PlatformSpec::host()),
            Ok(Execution::Native)
        );
    }

    #[test]
    fn an_architecture_without_qemu_is_refused_by_name() {
        let err = Execution::for_platform(&PlatformSpec::parse("linux/mips64le").unwrap());
        assert!(
            matches!(&err, Err(EmulationError::UnknownArchitecture { architecture, .. }) if architecture == "mips64le"),
            "{err:?}"
        );
    }

    #[test]
    fn a_host_entry_counts_only_enabled_and_with_the_f_flag() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("qemu-aarch64");
        let write = |text: &str| std::fs::write(&entry, text).unwrap();
        write("enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: OCF\noffset 0\n");
        assert_eq!(
            host_interpreter(&entry),
            Some(PathBuf::from("/usr/bin/qemu-aarch64-static"))
        );
        write("enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: OC\noffset 0\n");
        assert_eq!(host_interpreter(&entry), None);
        write("disabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: F\n");
        assert_eq!(host_interpreter(&entry), None);
    }
}
