//! A `RUN --mount` value read into what it asks for: one [`Mount`] variant
//! per mount type, each holding only the options that type accepts. The
//! rules and messages follow BuildKit's `parseMount` (its keys, defaults,
//! order-sensitive checks and wording) so a Dockerfile BuildKit refuses is
//! refused here with the same words.

use super::mount::MountSpec;

/// What one `--mount` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// `type=bind` (the default): files of the context, a stage or an image.
    Bind {
        /// Where it appears in the step, as written (relative to WORKDIR when
        /// not absolute).
        target: String,
        /// The path inside the source (`source=`/`src=`), as written; empty
        /// is the source's root.
        source: String,
        /// `rw`: the step may write, and its writes are thrown away.
        writable: bool,
    },
    /// `type=cache`: a directory kept across builds, never part of a layer.
    Cache {
        /// Where it appears in the step, as written.
        target: String,
        /// Which cache (`id=`, else the target).
        id: String,
        /// How concurrent steps share it.
        sharing: Sharing,
        /// `ro`: the step may only read it.
        readonly: bool,
        /// The path inside `from=` the cache starts from, as written.
        source: String,
        /// Permissions of a new cache directory (default 0755).
        mode: u32,
        /// Owner of a new cache directory (default 0).
        uid: u32,
        /// Group of a new cache directory (default 0).
        gid: u32,
    },
    /// `type=tmpfs`: an empty in-memory file system for the step only.
    Tmpfs {
        /// Where it appears in the step, as written.
        target: String,
        /// `size=` in bytes, if limited.
        size: Option<u64>,
        /// `ro`.
        readonly: bool,
    },
    /// `type=secret`: a secret the build was given.
    Secret(SecretMount),
    /// `type=ssh`: an SSH agent socket the build was given.
    Ssh(SecretMount),
}

/// The options of `type=secret` and `type=ssh`, which take the same keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMount {
    /// `id=` (or for a secret, `source=`), if given.
    pub id: Option<String>,
    /// `target=`, if given (a default path is chosen otherwise).
    pub target: Option<String>,
    /// `env=`: also (or instead) expose a secret as this variable.
    pub env: Option<String>,
    /// `required`: fail when the build was not given it.
    pub required: bool,
    /// `mode=`, if given.
    pub mode: Option<u32>,
    /// `uid=`, if given.
    pub uid: Option<u32>,
    /// `gid=`, if given.
    pub gid: Option<u32>,
}

/// How steps running at the same time share one cache mount.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sharing {
    /// All of them use it at once (the default).
    #[default]
    Shared,
    /// One at a time; the others wait.
    Locked,
    /// A step finding it in use gets a fresh directory instead.
    Private,
}

/// Why a `--mount` value is refused, in BuildKit's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    /// A bare word that is not a flag.
    #[error("invalid field '{0}' must be a key=value pair")]
    NotKeyValue(String),
    /// A key the mount type does not take.
    #[error("unexpected key '{key}' for mount type '{kind}'")]
    KeyForType {
        /// The key.
        key: String,
        /// The mount type at that point.
        kind: &'static str,
    },
    /// A key no mount takes.
    #[error("unexpected key '{key}' in '{field}'")]
    UnknownKey {
        /// The key, lower-cased.
        key: String,
        /// The field as written.
        field: String,
    },
    /// `type=` naming no mount type.
    #[error("unsupported mount type {0:?}")]
    Type(String),
    /// `sharing=` naming no sharing mode.
    #[error("unsupported sharing value {0:?}")]
    Sharing(String),
    /// A boolean or size that does not parse.
    #[error("invalid value for {key}: {value}")]
    Value {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// A `mode`, `uid` or `gid` that does not parse.
    #[error("invalid value {value} for {key}")]
    Number {
        /// The key.
        key: &'static str,
        /// The value.
        value: String,
    },
    /// `mode`, `uid` or `gid` on a bind or tmpfs mount.
    #[error("{key} not allowed for {kind:?} type mounts")]
    FileInfo {
        /// The key.
        key: &'static str,
        /// The mount type.
        kind: &'static str,
    },
    /// A secret mount with `from=`.
    #[error("secret mount should not have a from")]
    SecretFrom,
    /// A secret mount with `sharing=`.
    #[error("secret mount should not define sharing")]
    SecretSharing,
    /// A secret mount naming nothing.
    #[error("invalid secret mount. one of source, target required")]
    SecretNothing,
    /// A secret mount with both `source=` and `id=`.
    #[error("both source and id can't be set")]
    SecretSourceAndId,
    /// An ssh mount with `source=` (BuildKit takes its agent by `id=` only).
    #[error("ssh does not support source")]
    SshSource,
    /// `sharing=` on anything but a cache mount.
    #[error("invalid cache sharing set for {0} mount")]
    SharingForType(&'static str),
}

/// The mount types, as `type=` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Bind => "bind",
            Kind::Cache => "cache",
            Kind::Tmpfs => "tmpfs",
            Kind::Secret => "secret",
            Kind::Ssh => "ssh",
        }
    }
}

/// Every option as BuildKit collects them before checking them together.
#[derive(Default)]
struct Fields {
    from: String,
    source: String,
    target: String,
    readonly: Option<bool>,
    required: bool,
    size: Option<u64>,
    id: String,
    sharing: Option<Sharing>,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    env: Option<String>,
}

impl Mount {
    /// Reads a mount whose field values are already expanded.
    pub fn from_spec(spec: &MountSpec) -> Result<Mount, MountError> {
        let mut kind = Kind::Bind;
        let mut f = Fields::default();
        for field in &spec.fields {
            let key = field.key.as_str();
            let Some(value) = field.value.as_deref() else {
                match key {
                    "readonly" | "ro" => f.readonly = Some(true),
                    "readwrite" | "rw" => f.readonly = Some(false),
                    "required" if matches!(kind, Kind::Secret | Kind::Ssh) => f.required = true,
                    "required" => return Err(key_for_type(key, kind)),
                    _ => return Err(MountError::NotKeyValue(key.to_owned())),
                }
                continue;
            };
            let invalid = || MountError::Value {
                key: key.to_owned(),
                value: value.to_owned(),
            };
            match key {
                "type" => kind = mount_kind(value)?,
                "from" => f.from = value.to_owned(),
                "source" | "src" => f.source = value.to_owned(),
                "target" | "dst" | "destination" => f.target = value.to_owned(),
                "readonly" | "ro" => f.readonly = Some(go_bool(value).ok_or_else(invalid)?),
                "readwrite" | "rw" => f.readonly = Some(!go_bool(value).ok_or_else(invalid)?),
                "required" if matches!(kind, Kind::Secret | Kind::Ssh) => {
                    f.required = go_bool(value).ok_or_else(invalid)?;
                }
                "size" if kind == Kind::Tmpfs => {
                    f.size = Some(ram_in_bytes(value).ok_or_else(invalid)?)
                }
                // Read for any type, as BuildKit does; only secrets use it.
                "env" => f.env = Some(value.to_owned()),
                "required" | "size" => return Err(key_for_type(key, kind)),
                "id" => f.id = value.to_owned(),
                "sharing" => f.sharing = Some(sharing(value)?),
                "mode" => f.mode = Some(number("mode", value, 8)?),
                "uid" => f.uid = Some(number("uid", value, 10)?),
                "gid" => f.gid = Some(number("gid", value, 10)?),
                _ => {
                    return Err(MountError::UnknownKey {
                        key: key.to_owned(),
                        field: format!("{key}={value}"),
                    });
                }
            }
        }
        validate(kind, f)
    }
}

/// BuildKit's checks after all fields are read, and the typed result.
fn validate(kind: Kind, f: Fields) -> Result<Mount, MountError> {
    if matches!(kind, Kind::Bind | Kind::Tmpfs) {
        for (key, set) in [
            ("mode", f.mode.is_some()),
            ("uid", f.uid.is_some()),
            ("gid", f.gid.is_some()),
        ] {
            if set {
                return Err(MountError::FileInfo {
                    key,
                    kind: kind.name(),
                });
            }
        }
    }
    if kind == Kind::Secret {
        if !f.from.is_empty() {
            return Err(MountError::SecretFrom);
        }
        if f.sharing.is_some() {
            return Err(MountError::SecretSharing);
        }
        if f.source.is_empty() && f.target.is_empty() && f.id.is_empty() {
            return Err(MountError::SecretNothing);
        }
        if !f.source.is_empty() && !f.id.is_empty() {
            return Err(MountError::SecretSourceAndId);
        }
    }
    if f.sharing.is_some() && kind != Kind::Cache {
        return Err(MountError::SharingForType(kind.name()));
    }
    let non_empty = |s: String| Some(s).filter(|s| !s.is_empty());
    Ok(match kind {
        Kind::Bind => Mount::Bind {
            target: f.target,
            source: f.source,
            writable: f.readonly == Some(false),
        },
        Kind::Cache => Mount::Cache {
            id: if f.id.is_empty() {
                f.target.clone()
            } else {
                f.id
            },
            target: f.target,
            sharing: f.sharing.unwrap_or_default(),
            readonly: f.readonly == Some(true),
            source: f.source,
            mode: f.mode.unwrap_or(0o755),
            uid: f.uid.unwrap_or(0),
            gid: f.gid.unwrap_or(0),
        },
        Kind::Tmpfs => Mount::Tmpfs {
            target: f.target,
            size: f.size,
            readonly: f.readonly == Some(true),
        },
        Kind::Ssh if !f.source.is_empty() => return Err(MountError::SshSource),
        Kind::Secret | Kind::Ssh => {
            let secret = SecretMount {
                id: non_empty(f.id).or_else(|| non_empty(f.source.clone())),
                target: non_empty(f.target),
                env: f.env,
                required: f.required,
                mode: f.mode,
                uid: f.uid,
                gid: f.gid,
            };
            if kind == Kind::Secret {
                Mount::Secret(secret)
            } else {
                Mount::Ssh(secret)
            }
        }
    })
}

fn key_for_type(key: &str, kind: Kind) -> MountError {
    MountError::KeyForType {
        key: key.to_owned(),
        kind: kind.name(),
    }
}

fn mount_kind(value: &str) -> Result<Kind, MountError> {
    Ok(match value.to_lowercase().as_str() {
        "bind" => Kind::Bind,
        "cache" => Kind::Cache,
        "tmpfs" => Kind::Tmpfs,
        "secret" => Kind::Secret,
        "ssh" => Kind::Ssh,
        _ => return Err(MountError::Type(value.to_owned())),
    })
}

fn sharing(value: &str) -> Result<Sharing, MountError> {
    Ok(match value.to_lowercase().as_str() {
        "shared" => Sharing::Shared,
        "locked" => Sharing::Locked,
        "private" => Sharing::Private,
        _ => return Err(MountError::Sharing(value.to_owned())),
    })
}

/// Go's `strconv.ParseBool`.
fn go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseUint(value, radix, 32)`: digits only, no sign.
fn number(key: &'static str, value: &str, radix: u32) -> Result<u32, MountError> {
    let digits_only = !value.is_empty() && value.chars().all(|c| c.is_digit(radix));
    digits_only
        .then(|| u32::from_str_radix(value, radix).ok())
        .flatten()
        .ok_or_else(|| MountError::Number {
            key,
            value: value.to_owned(),
        })
}

/// go-units' `RAMInBytes`: a decimal number, optional space, then an
/// optional `k`/`m`/`g`/`t`/`p` (powers of 1024), optional `i`, optional `b`.
pub fn ram_in_bytes(value: &str) -> Option<u64> {
    let number_end = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(number_end);
    let well_formed = number.split('.').all(|part| !part.is_empty())
        && number.starts_with(|c: char| c.is_ascii_digit());
    if !well_formed {
        return None;
    }
    // `1.2.3` is accepted by the pattern; Go's ParseFloat then refuses it.
    let number: f64 = number.parse().ok()?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let power = match unit {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return None,
    };
    let bytes = number * 1024f64.powi(power);
    // Go converts the float to int64; values past it are refused here.
    (bytes < 9.2e18).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Mount, String> {
        let spec = MountSpec::parse(text)?;
        Mount::from_spec(&spec).map_err(|e| e.to_string())
    }

    fn bind(target: &str, source: &str, writable: bool) -> Mount {
        Mount::Bind {
            target: target.into(),
            source: source.into(),
            writable,
        }
    }

    #[test]
    fn accepted_mounts_as_buildkit_reads_them() {
        let cache = |target: &str, id: &str, sharing, readonly, mode, uid| Mount::Cache {
            target: target.into(),
            id: id.into(),
            sharing,
            readonly,
            source: String::new(),
            mode,
            uid,
            gid: 0,
        };
        let cases: Vec<(&str, Mount)> = vec![
            ("target=/src", bind("/src", "", false)),
            ("type=BIND,dst=/a,src=b,rw", bind("/a", "b", true)),
            ("destination=/a,readwrite=true", bind("/a", "", true)),
            ("target=/a,rw=1,ro", bind("/a", "", false)),
            ("target=/a,ro=false", bind("/a", "", true)),
            ("target=/a,from=x,source=/out", bind("/a", "/out", false)),
            ("target=/a,env=IGNORED", bind("/a", "", false)),
            (
                "type=cache,target=/root/.cache",
                cache(
                    "/root/.cache",
                    "/root/.cache",
                    Sharing::Shared,
                    false,
                    0o755,
                    0,
                ),
            ),
            (
                "type=cache,id=go,target=/go,sharing=LOCKED,mode=0700,uid=1000,ro",
                cache("/go", "go", Sharing::Locked, true, 0o700, 1000),
            ),
            (
                "type=cache,target=/c,sharing=private",
                cache("/c", "/c", Sharing::Private, false, 0o755, 0),
            ),
            (
                "type=tmpfs,target=/t,size=64m",
                Mount::Tmpfs {
                    target: "/t".into(),
                    size: Some(64 << 20),
                    readonly: false,
                },
            ),
            (
                "type=tmpfs,target=/t,size=1.5 KiB",
                Mount::Tmpfs {
                    target: "/t".into(),
                    size: Some(1536),
                    readonly: false,
                },
            ),
            (
                "type=secret,id=npmrc,target=/root/.npmrc,required,mode=0444",
                Mount::Secret(SecretMount {
                    id: Some("npmrc".into()),
                    target: Some("/root/.npmrc".into()),
                    env: None,
                    required: true,
                    mode: Some(0o444),
                    uid: None,
                    gid: None,
                }),
            ),
            (
                "type=secret,source=tok,env=TOKEN",
                Mount::Secret(SecretMount {
                    id: Some("tok".into()),
                    target: None,
                    env: Some("TOKEN".into()),
                    required: false,
                    mode: None,
                    uid: None,
                    gid: None,
                }),
            ),
            (
                "type=ssh,required=false",
                Mount::Ssh(SecretMount {
                    id: None,
                    target: None,
                    env: None,
                    required: false,
                    mode: None,
                    uid: None,
                    gid: None,
                }),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn refused_mounts_in_buildkits_words() {
        let cases = [
            (
                "target=/a,foo",
                "invalid field 'foo' must be a key=value pair",
            ),
            ("type=volume", "unsupported mount type \"volume\""),
            ("target=/a,ro=maybe", "invalid value for ro: maybe"),
            ("target=/a,readwrite=2", "invalid value for readwrite: 2"),
            (
                "required,type=secret,id=x",
                "unexpected key 'required' for mount type 'bind'",
            ),
            (
                "type=cache,target=/a,size=1g",
                "unexpected key 'size' for mount type 'cache'",
            ),
            (
                "type=tmpfs,target=/a,size=lots",
                "invalid value for size: lots",
            ),
            (
                "target=/a,colour=red",
                "unexpected key 'colour' in 'colour=red'",
            ),
            (
                "type=cache,target=/a,sharing=all",
                "unsupported sharing value \"all\"",
            ),
            (
                "type=cache,target=/a,mode=0999",
                "invalid value 0999 for mode",
            ),
            ("type=cache,target=/a,uid=-1", "invalid value -1 for uid"),
            ("type=cache,target=/a,gid=", "invalid value  for gid"),
            (
                "target=/a,mode=0644",
                "mode not allowed for \"bind\" type mounts",
            ),
            (
                "type=tmpfs,target=/a,uid=1",
                "uid not allowed for \"tmpfs\" type mounts",
            ),
            (
                "type=secret,id=a,from=x",
                "secret mount should not have a from",
            ),
            (
                "type=secret,id=a,sharing=locked",
                "secret mount should not define sharing",
            ),
            (
                "type=secret",
                "invalid secret mount. one of source, target required",
            ),
            (
                "type=secret,id=a,source=b",
                "both source and id can't be set",
            ),
            (
                "target=/a,sharing=shared",
                "invalid cache sharing set for bind mount",
            ),
            ("type=ssh,source=default", "ssh does not support source"),
        ];
        for (text, message) in cases {
            assert_eq!(parse(text), Err(message.to_owned()), "{text}");
        }
    }

    #[test]
    fn sizes_follow_go_units() {
        assert_eq!(ram_in_bytes("10"), Some(10));
        assert_eq!(ram_in_bytes("1k"), Some(1024));
        assert_eq!(ram_in_bytes("2GB"), Some(2 << 30));
        assert_eq!(ram_in_bytes("3 mib"), Some(3 << 20));
        assert_eq!(ram_in_bytes(""), None);
        assert_eq!(ram_in_bytes("-1"), None);
        assert_eq!(ram_in_bytes("1.2.3"), None);
        assert_eq!(ram_in_bytes("1x"), None);
        assert_eq!(ram_in_bytes("99999999p"), None);
    }
}
