//! What a build may hand to `RUN --mount=type=secret` and `type=ssh`:
//! `--secret` and `--ssh` read as docker buildx reads them, resolved once
//! at the start of the build (which variable or file, which agent socket),
//! while a secret's bytes are read only when a step that mounts it runs,
//! and dropped (wiped) when that step ends.

use crate::plan::MountSpec;
use crate::sandbox::SecretBytes;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// BuildKit's limit on one secret (`MaxSecretSize`).
pub const MAX_SECRET_SIZE: u64 = 500 * 1024;

/// Why a `--secret` or `--ssh` flag is refused (buildx's words where it has
/// them).
#[derive(Debug, thiserror::Error)]
pub enum SecretFlagError {
    /// The value is not one CSV record.
    #[error("--secret {flag:?}: failed to parse csv secret: {reason}")]
    Csv {
        /// The flag's value.
        flag: String,
        /// `encoding/csv`'s reason.
        reason: String,
    },
    /// A field without `=`.
    #[error("--secret {flag:?}: invalid field '{field}' must be a key=value pair")]
    NotKeyValue {
        /// The flag's value.
        flag: String,
        /// The field.
        field: String,
    },
    /// `type=` other than `file` or `env`.
    #[error("--secret {flag:?}: unsupported secret type {kind:?}")]
    Type {
        /// The flag's value.
        flag: String,
        /// The type given.
        kind: String,
    },
    /// A key `--secret` does not take.
    #[error("--secret {flag:?}: unexpected key '{key}' in '{field}'")]
    Key {
        /// The flag's value.
        flag: String,
        /// The key.
        key: String,
        /// The field.
        field: String,
    },
    /// No `id=`.
    #[error("--secret {0:?}: secret missing ID")]
    MissingId(String),
    /// The secret's file cannot be read.
    #[error("--secret id={id}: failed to stat {}: {source}", path.display())]
    Stat {
        /// The secret.
        id: String,
        /// Its file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The secret's file is larger than BuildKit allows.
    #[error("--secret id={id}: secret {id} too big. max size 500 KiB ({} is {size} bytes)", path.display())]
    TooBig {
        /// The secret.
        id: String,
        /// Its file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// `--ssh` with an empty ID.
    #[error("--ssh {0:?}: the ID before '=' is empty")]
    SshEmptyId(String),
    /// The same `--ssh` ID twice.
    #[error("--ssh {0:?}: invalid duplicate ID")]
    SshDuplicate(String),
    /// `--ssh ID` without a socket, and no `SSH_AUTH_SOCK`.
    #[error("--ssh {0}: invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set")]
    SshNoAgent(String),
    /// More than one socket for one ID.
    #[error("--ssh {id}: only single socket allowed ({count} given; use one ID per agent socket)")]
    SshManySockets {
        /// The ID.
        id: String,
        /// How many were given.
        count: usize,
    },
    /// The socket path cannot be inspected.
    #[error("--ssh {id}: failed to stat {}: {source}", path.display())]
    SshStat {
        /// The ID.
        id: String,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The path is no socket (a key file, say).
    #[error(
        "--ssh {id}: {} is not a socket; builder forwards ssh-agent sockets only (load a key file into an agent with ssh-add)",
        path.display()
    )]
    SshNotSocket {
        /// The ID.
        id: String,
        /// The path.
        path: PathBuf,
    },
}

/// Why a secret could not be read when a step needed it.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Its file could not be read.
    #[error("secret {id}: reading {}: {source}", path.display())]
    Read {
        /// The secret.
        id: String,
        /// Its file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Its file grew past the limit since the build started.
    #[error("secret {id} too big. max size 500 KiB")]
    TooBig {
        /// The secret.
        id: String,
    },
}

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file, read when a step mounts the secret.
    File(PathBuf),
    /// An environment variable of builder's, read when a step mounts it.
    Env(String),
}

/// One `--secret` value as written (`[type=file|env,]id=ID[,src=…][,env=…]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretFlag {
    /// `id=`.
    pub id: String,
    /// `src=`/`source=` (a file, or with `type=env` a variable).
    pub file: Option<PathBuf>,
    /// `env=`.
    pub env: Option<String>,
}

impl SecretFlag {
    /// Reads a flag value as buildx's `parseSecret` does.
    pub fn parse(flag: &str) -> Result<SecretFlag, SecretFlagError> {
        let spec = MountSpec::parse(flag).map_err(|reason| SecretFlagError::Csv {
            flag: flag.to_owned(),
            reason,
        })?;
        let mut parsed = SecretFlag::default();
        let mut env_type = false;
        for field in spec.fields {
            let key = field.key;
            let Some(value) = field.value else {
                return Err(SecretFlagError::NotKeyValue {
                    flag: flag.to_owned(),
                    field: key,
                });
            };
            match key.as_str() {
                "type" if value == "file" || value == "env" => env_type = value == "env",
                "type" => {
                    return Err(SecretFlagError::Type {
                        flag: flag.to_owned(),
                        kind: value,
                    });
                }
                "id" => parsed.id = value,
                "source" | "src" => parsed.file = Some(PathBuf::from(value)),
                "env" => parsed.env = Some(value),
                _ => {
                    return Err(SecretFlagError::Key {
                        flag: flag.to_owned(),
                        field: format!("{key}={value}"),
                        key,
                    });
                }
            }
        }
        if env_type && parsed.env.as_deref().is_none_or(str::is_empty) {
            parsed.env = parsed
                .file
                .take()
                .map(|path| path.to_string_lossy().into_owned());
        }
        Ok(parsed)
    }
}

/// One `--ssh` value as written: `ID[=SOCKET[,SOCKET…]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshFlag {
    /// The ID (`default` for `RUN --mount=type=ssh` without `id=`).
    pub id: String,
    /// The sockets given after `=`; none means `$SSH_AUTH_SOCK`.
    pub paths: Vec<PathBuf>,
}

impl SshFlag {
    /// Reads a flag value as buildx's `parseSSH` does.
    pub fn parse(flag: &str) -> Result<SshFlag, SecretFlagError> {
        let (id, paths) = match flag.split_once('=') {
            Some((id, paths)) => (id, paths.split(',').map(PathBuf::from).collect()),
            None => (flag, Vec::new()),
        };
        if id.is_empty() {
            return Err(SecretFlagError::SshEmptyId(flag.to_owned()));
        }
        Ok(SshFlag {
            id: id.to_owned(),
            paths,
        })
    }
}

/// The secrets and ssh agents a build was given (`--secret`, `--ssh`).
/// Holds where values come from, never the values themselves.
#[derive(Debug, Clone, Default)]
pub struct BuildSecrets {
    secrets: BTreeMap<String, SecretSource>,
    agents: BTreeMap<String, PathBuf>,
}

impl BuildSecrets {
    /// Resolves the flags as BuildKit's client does: a secret with neither
    /// `src` nor `env` comes from the variable named by its ID when set,
    /// else from the file of that name; files are checked (they exist and
    /// are at most [`MAX_SECRET_SIZE`]); an ssh ID without a socket uses
    /// `SSH_AUTH_SOCK`. `lookup` reads builder's environment.
    pub fn from_flags(
        secrets: &[SecretFlag],
        ssh: &[SshFlag],
        lookup: impl Fn(&str) -> Option<OsString>,
    ) -> Result<BuildSecrets, SecretFlagError> {
        let mut resolved = BuildSecrets::default();
        for flag in secrets {
            if flag.id.is_empty() {
                return Err(SecretFlagError::MissingId(describe(flag)));
            }
            let source = match (&flag.env, &flag.file) {
                (Some(env), _) if !env.is_empty() => SecretSource::Env(env.clone()),
                (_, Some(file)) if !file.as_os_str().is_empty() => SecretSource::File(file.clone()),
                _ if lookup(&flag.id).is_some() => SecretSource::Env(flag.id.clone()),
                _ => SecretSource::File(PathBuf::from(&flag.id)),
            };
            if let SecretSource::File(path) = &source {
                check_file(&flag.id, path)?;
            }
            resolved.secrets.insert(flag.id.clone(), source);
        }
        for flag in ssh {
            if resolved.agents.contains_key(&flag.id) {
                return Err(SecretFlagError::SshDuplicate(flag.id.clone()));
            }
            let socket = match flag.paths.as_slice() {
                [] => lookup("SSH_AUTH_SOCK")
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .ok_or_else(|| SecretFlagError::SshNoAgent(flag.id.clone()))?,
                [one] => one.clone(),
                many => {
                    return Err(SecretFlagError::SshManySockets {
                        id: flag.id.clone(),
                        count: many.len(),
                    });
                }
            };
            check_socket(&flag.id, &socket)?;
            resolved.agents.insert(flag.id.clone(), socket);
        }
        Ok(resolved)
    }

    /// Where secret `id` comes from, if the build was given it.
    pub fn source(&self, id: &str) -> Option<&SecretSource> {
        self.secrets.get(id)
    }

    /// The value of secret `id` (`None` when the build was not given it),
    /// read now; a variable unset by now reads as empty, as in BuildKit.
    pub fn load(&self, id: &str) -> Result<Option<SecretBytes>, SecretError> {
        let Some(source) = self.secrets.get(id) else {
            return Ok(None);
        };
        let bytes = match source {
            SecretSource::Env(name) => std::env::var_os(name)
                .map(|v| v.into_encoded_bytes())
                .unwrap_or_default(),
            SecretSource::File(path) => {
                std::fs::read(path).map_err(|source| SecretError::Read {
                    id: id.to_owned(),
                    path: path.clone(),
                    source,
                })?
            }
        };
        let bytes = SecretBytes::new(bytes);
        if bytes.expose().len() as u64 > MAX_SECRET_SIZE {
            return Err(SecretError::TooBig { id: id.to_owned() });
        }
        Ok(Some(bytes))
    }

    /// The agent socket forwarded as `id`, if any.
    pub fn agent(&self, id: &str) -> Option<&Path> {
        self.agents.get(id).map(PathBuf::as_path)
    }
}

/// A flag as the user could recognise it in a message (no values).
fn describe(flag: &SecretFlag) -> String {
    let mut parts = Vec::new();
    if let Some(file) = &flag.file {
        parts.push(format!("src={}", file.display()));
    }
    if let Some(env) = &flag.env {
        parts.push(format!("env={env}"));
    }
    parts.join(",")
}

fn check_file(id: &str, path: &Path) -> Result<(), SecretFlagError> {
    let meta = std::fs::metadata(path).map_err(|source| SecretFlagError::Stat {
        id: id.to_owned(),
        path: path.to_path_buf(),
        source,
    })?;
    if meta.len() > MAX_SECRET_SIZE {
        return Err(SecretFlagError::TooBig {
            id: id.to_owned(),
            path: path.to_path_buf(),
            size: meta.len(),
        });
    }
    Ok(())
}

fn check_socket(id: &str, path: &Path) -> Result<(), SecretFlagError> {
    let meta = std::fs::metadata(path).map_err(|source| SecretFlagError::SshStat {
        id: id.to_owned(),
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.file_type().is_socket() {
        return Err(SecretFlagError::SshNotSocket {
            id: id.to_owned(),
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(id: &str, file: Option<&str>, env: Option<&str>) -> SecretFlag {
        SecretFlag {
            id: id.into(),
            file: file.map(PathBuf::from),
            env: env.map(str::to_owned),
        }
    }

    #[test]
    fn secret_flags_as_buildx_reads_them() {
        let cases = [
            ("id=tok,src=/a/b", flag("tok", Some("/a/b"), None)),
            ("id=tok,source=f", flag("tok", Some("f"), None)),
            ("ID=tok,ENV=TOKEN", flag("tok", None, Some("TOKEN"))),
            (
                "type=env,id=tok,src=TOKEN",
                flag("tok", None, Some("TOKEN")),
            ),
            ("type=file,id=tok,src=f", flag("tok", Some("f"), None)),
            ("id=tok", flag("tok", None, None)),
            ("\"id=a,b\",src=f", flag("a,b", Some("f"), None)),
        ];
        for (text, expected) in cases {
            assert_eq!(SecretFlag::parse(text).unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn bad_secret_flags_say_why() {
        let cases = [
            ("id=tok,src", "invalid field 'src' must be a key=value pair"),
            ("type=vault,id=tok", "unsupported secret type \"vault\""),
            ("id=tok,path=/x", "unexpected key 'path' in 'path=/x'"),
            ("id=\"tok", "failed to parse csv secret"),
        ];
        for (text, message) in cases {
            let err = SecretFlag::parse(text).unwrap_err().to_string();
            assert!(err.contains(message), "{text}: {err}");
            assert!(err.starts_with("--secret "), "{err}");
        }
    }

    #[test]
    fn ssh_flags_as_buildx_reads_them() {
        let parsed = SshFlag::parse("default").unwrap();
        assert_eq!((parsed.id.as_str(), parsed.paths.len()), ("default", 0));
        let parsed = SshFlag::parse("git=/run/a.sock,/run/b.sock").unwrap();
        assert_eq!(parsed.id, "git");
        assert_eq!(
            parsed.paths,
            vec![PathBuf::from("/run/a.sock"), PathBuf::from("/run/b.sock")]
        );
        let err = SshFlag::parse("=/run/a.sock").unwrap_err().to_string();
        assert!(err.contains("ID before '=' is empty"), "{err}");
    }

    #[test]
    fn secrets_resolve_to_a_variable_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tok.txt");
        std::fs::write(&file, "file-value").unwrap();
        let lookup = |name: &str| (name == "FROM_ENV").then(|| OsString::from("x"));
        let resolved = BuildSecrets::from_flags(
            &[
                flag("a", Some(file.to_str().unwrap()), None),
                flag("FROM_ENV", None, None),
                flag("b", None, Some("SOME_VAR")),
            ],
            &[],
            lookup,
        )
        .unwrap();
        assert_eq!(resolved.source("a"), Some(&SecretSource::File(file)));
        assert_eq!(
            resolved.source("FROM_ENV"),
            Some(&SecretSource::Env("FROM_ENV".into()))
        );
        assert_eq!(
            resolved.source("b"),
            Some(&SecretSource::Env("SOME_VAR".into()))
        );
        assert_eq!(resolved.load("a").unwrap().unwrap().expose(), b"file-value");
        assert!(resolved.load("missing").unwrap().is_none());
    }

    #[test]
    fn unusable_secrets_are_refused_at_the_start() {
        let none = |_: &str| None;
        let err = BuildSecrets::from_flags(&[flag("", Some("f"), None)], &[], none).unwrap_err();
        assert_eq!(err.to_string(), "--secret \"src=f\": secret missing ID");
        let err = BuildSecrets::from_flags(&[flag("nofile", None, None)], &[], none).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--secret id=nofile: failed to stat nofile:"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; MAX_SECRET_SIZE as usize + 1]).unwrap();
        let err = BuildSecrets::from_flags(&[flag("big", big.to_str(), None)], &[], none)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("secret big too big. max size 500 KiB"),
            "{err}"
        );
    }

    #[test]
    fn ssh_agents_must_be_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let key = dir.path().join("id_ed25519");
        std::fs::write(&key, "not a socket").unwrap();
        let agent = socket.clone();
        let lookup = move |name: &str| (name == "SSH_AUTH_SOCK").then(|| agent.clone().into());
        let ssh = |text: &str| SshFlag::parse(text).unwrap();
        let resolved = BuildSecrets::from_flags(
            &[],
            &[ssh("default"), ssh(&format!("git={}", socket.display()))],
            &lookup,
        )
        .unwrap();
        assert_eq!(resolved.agent("default"), Some(socket.as_path()));
        assert_eq!(resolved.agent("git"), Some(socket.as_path()));
        assert_eq!(resolved.agent("other"), None);

        let refused = |flags: &[SshFlag], lookup: &dyn Fn(&str) -> Option<OsString>| {
            BuildSecrets::from_flags(&[], flags, lookup)
                .unwrap_err()
                .to_string()
        };
        let none = |_: &str| None;
        assert_eq!(
            refused(&[ssh("default")], &none),
            "--ssh default: invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set"
        );
        let err = refused(&[ssh(&format!("k={}", key.display()))], &none);
        assert!(err.contains("is not a socket"), "{err}");
        let err = refused(&[ssh("default"), ssh("default")], &lookup);
        assert!(err.contains("invalid duplicate ID"), "{err}");
        let two = format!("k={0},{0}", socket.display());
        let err = refused(&[ssh(&two)], &none);
        assert!(err.contains("only single socket allowed (2 given"), "{err}");
        let err = refused(&[ssh("k=/nonexistent/agent")], &none);
        assert!(err.contains("failed to stat /nonexistent/agent"), "{err}");
    }
}
