//! Seccomp filters for RUN steps: Docker's default profile (`default.json`,
//! mirroring moby's), or a profile in Docker's JSON format from
//! `--security-opt seccomp=FILE`. A profile is compiled once per build
//! (Docker's default once per process) for the capabilities a sandboxed
//! step holds, travels to the helper inside the step's spec, and is
//! installed by the step's pid 1 after the sandbox is set up, before it
//! drops its capabilities and executes the step (see `init`).

mod compile;
mod profile;
mod syscalls;

pub use profile::Profile;

use base64::Engine as _;
use seccompiler::{BpfProgram, sock_filter};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;
use std::sync::OnceLock;

/// Why a profile cannot become a filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The JSON is not a profile in Docker's format.
    #[error("not a seccomp profile in Docker's format: {0}")]
    Parse(#[from] serde_json::Error),
    /// `SCMP_ACT_NOTIFY` needs a listener process builder does not run.
    #[error("syscall {call:?}: SCMP_ACT_NOTIFY is not supported (no seccomp listener)")]
    Notify {
        /// The first call the rule names.
        call: String,
    },
    /// An argument condition names an argument past the sixth.
    #[error("syscall {call:?}: argument index {index} is out of range (0 to 5)")]
    ArgIndex {
        /// The first call the rule names.
        call: String,
        /// The index given.
        index: u8,
    },
    /// A `minKernel` (or the running kernel's release) is not `MAJOR.MINOR`.
    #[error("{version:?} is not a kernel version such as 4.8")]
    KernelVersion {
        /// The text.
        version: String,
    },
    /// Filters are built for x86_64 and aarch64 only.
    #[error(
        "seccomp filters are built for x86_64 and aarch64 only, not {0} \
         (--security-opt seccomp=unconfined runs steps without one)"
    )]
    UnsupportedArch(&'static str),
    /// The program is longer than the kernel takes.
    #[error("the profile compiles to more than 4096 BPF instructions")]
    TooLarge,
    /// seccompiler refused the rules.
    #[error("compiling the seccomp filter: {0}")]
    Compile(#[from] seccompiler::BackendError),
}

/// A compiled filter: BPF programs that [`SeccompFilter::install`] loads in
/// order (see `compile` for why there are several).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompFilter {
    programs: Vec<Program>,
}

impl SeccompFilter {
    /// `profile` compiled for a sandboxed step on this machine (Docker's
    /// default capabilities, this architecture and kernel).
    pub fn compile(profile: &Profile) -> Result<SeccompFilter, SeccompError> {
        let host = compile::Host::current(super::capabilities::DOCKER_DEFAULT)?;
        let programs = compile::compile(profile, &host)?;
        Ok(SeccompFilter {
            programs: programs.into_iter().map(Program).collect(),
        })
    }

    /// Docker's default profile, compiled once per process.
    pub fn docker_default() -> Result<SeccompFilter, SeccompError> {
        static DEFAULT: OnceLock<SeccompFilter> = OnceLock::new();
        if let Some(filter) = DEFAULT.get() {
            return Ok(filter.clone());
        }
        let filter = SeccompFilter::compile(&Profile::docker_default()?)?;
        Ok(DEFAULT.get_or_init(|| filter).clone())
    }

    /// `sha256:…` of the programs, for cache keys.
    pub fn digest(&self) -> String {
        let mut hasher = sha2::Sha256::new();
        for program in &self.programs {
            hasher.update(program.to_bytes());
        }
        format!("sha256:{}", hex::encode(hasher.finalize()))
    }

    /// Installs the programs on the calling thread, for good: it and every
    /// process it starts stay filtered. Without `no_new_privs` this needs
    /// CAP_SYS_ADMIN in the thread's user namespace.
    pub fn install(&self) -> std::io::Result<()> {
        for Program(program) in &self.programs {
            let fprog = libc::sock_fprog {
                // At most 4096 instructions (checked when compiled and decoded).
                len: program.len() as u16,
                filter: program.as_ptr().cast_mut().cast::<libc::sock_filter>(),
            };
            // SAFETY: seccompiler's sock_filter is #[repr(C)] with the kernel's
            // layout (as libc's); the kernel copies the program during the
            // call, while `program` is alive.
            let ret = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0,
                    &raw const fprog,
                )
            };
            if ret != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// Which filter RUN steps get (`--security-opt seccomp=`); steps with
/// `--security=insecure` get none whatever this says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SeccompPolicy {
    /// Docker's default profile.
    #[default]
    DockerDefault,
    /// A profile of the user's, compiled.
    Profile(SeccompFilter),
    /// No filter (`seccomp=unconfined`).
    Unconfined,
}

impl SeccompPolicy {
    /// The filter a sandboxed step gets; `None` when unconfined.
    pub fn filter(&self) -> Result<Option<SeccompFilter>, SeccompError> {
        match self {
            SeccompPolicy::DockerDefault => SeccompFilter::docker_default().map(Some),
            SeccompPolicy::Profile(filter) => Ok(Some(filter.clone())),
            SeccompPolicy::Unconfined => Ok(None),
        }
    }

    /// What a step's cache key records: nothing for Docker's default, so
    /// the keys of earlier builds still match.
    pub fn cache_flag(&self) -> Option<String> {
        match self {
            SeccompPolicy::DockerDefault => None,
            SeccompPolicy::Profile(filter) => Some(filter.digest()),
            SeccompPolicy::Unconfined => Some("unconfined".to_owned()),
        }
    }
}

/// One BPF program; crosses to the helper as base64 of the kernel's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Program(BpfProgram);

/// Size of one instruction (`struct sock_filter`).
const INSTRUCTION: usize = 8;

impl Program {
    fn to_bytes(&self) -> Vec<u8> {
        self.0
            .iter()
            .flat_map(|i| {
                let mut bytes = [0u8; INSTRUCTION];
                bytes[..2].copy_from_slice(&i.code.to_ne_bytes());
                bytes[2] = i.jt;
                bytes[3] = i.jf;
                bytes[4..].copy_from_slice(&i.k.to_ne_bytes());
                bytes
            })
            .collect()
    }

    fn from_bytes(bytes: &[u8]) -> Result<Program, String> {
        let count = bytes.len() / INSTRUCTION;
        if bytes.len() % INSTRUCTION != 0 || count == 0 || count > 4096 {
            return Err(format!("{} bytes are not a BPF program", bytes.len()));
        }
        Ok(Program(
            bytes
                .chunks_exact(INSTRUCTION)
                .map(|b| sock_filter {
                    code: u16::from_ne_bytes([b[0], b[1]]),
                    jt: b[2],
                    jf: b[3],
                    k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
                })
                .collect(),
        ))
    }
}

impl Serialize for Program {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(self.to_bytes()))
    }
}

impl<'de> Deserialize<'de> for Program {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)?;
        Program::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_default_compiles_to_an_allow_list_and_the_clone3_answer() {
        let filter = SeccompFilter::docker_default().unwrap();
        assert_eq!(filter.programs.len(), 2, "{filter:?}");
        assert!(filter.programs.iter().all(|p| p.0.len() <= 4096));
    }

    #[test]
    fn a_filter_crosses_to_the_helper_unchanged() {
        let filter = SeccompFilter::docker_default().unwrap();
        let json = serde_json::to_string(&filter).unwrap();
        assert_eq!(
            serde_json::from_str::<SeccompFilter>(&json).unwrap(),
            filter
        );
        assert!(serde_json::from_str::<SeccompFilter>(r#"{"programs":["AAAA"]}"#).is_err());
    }

    #[test]
    fn only_a_non_default_policy_is_in_the_cache_key() {
        assert_eq!(SeccompPolicy::DockerDefault.cache_flag(), None);
        assert_eq!(
            SeccompPolicy::Unconfined.cache_flag().as_deref(),
            Some("unconfined")
        );
        let custom = SeccompPolicy::Profile(SeccompFilter::docker_default().unwrap());
        assert!(custom.cache_flag().unwrap().starts_with("sha256:"));
    }
}
