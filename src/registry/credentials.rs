//! Registry credentials the way Docker keeps them: `config.json` in
//! `$DOCKER_CONFIG` (default `~/.docker`) with `auths` entries (base64
//! `user:password`, or an `identitytoken`), and `credsStore` / `credHelpers`
//! naming `docker-credential-<name>` helper programs.
//!
//! One module reads and writes the file, so `builder login` and `builder
//! pull` always agree on its format; fields we do not know are kept as they
//! are when we write it back.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The key Docker uses for Docker Hub in `config.json` and helpers.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// What a client presents to a registry. Debug output hides the secrets.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or personal access token).
    Basic { username: String, password: String },
    /// An OAuth2 refresh token from a previous login (`identitytoken`).
    IdentityToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { username, .. } => {
                write!(f, "Basic {{ username: {username:?}, password: <hidden> }}")
            }
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<hidden>)"),
        }
    }
}

/// Errors reading or writing credentials.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CredentialsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid Docker config: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("credential helper docker-credential-{helper} failed for {registry}: {reason}")]
    Helper {
        helper: String,
        registry: String,
        reason: String,
    },
    #[error("cannot find the Docker config directory: set $DOCKER_CONFIG or $HOME")]
    NoConfigDir,
}

/// A loaded `config.json` (empty when the file does not exist yet).
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
    doc: Map<String, Value>,
}

impl DockerConfig {
    /// `$DOCKER_CONFIG`, or `~/.docker`.
    pub fn default_dir() -> Result<PathBuf, CredentialsError> {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
            return Ok(PathBuf::from(dir));
        }
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".docker"))
            .ok_or(CredentialsError::NoConfigDir)
    }

    /// Loads `config.json` from the default directory.
    pub fn load_default() -> Result<Self, CredentialsError> {
        Self::load(&Self::default_dir()?)
    }

    /// Loads `<dir>/config.json`; a missing file is an empty config.
    pub fn load(dir: &Path) -> Result<Self, CredentialsError> {
        let path = dir.join("config.json");
        let doc = match std::fs::read(&path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => map,
                Ok(_) => {
                    return Err(CredentialsError::Parse {
                        path,
                        reason: "the top level is not a JSON object".into(),
                    });
                }
                Err(e) => {
                    return Err(CredentialsError::Parse {
                        path,
                        reason: e.to_string(),
                    });
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(source) => return Err(CredentialsError::Read { path, source }),
        };
        Ok(Self { path, doc })
    }

    /// The file this config is read from and written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The credential for `registry` (`host[:port]`, `docker.io` for Docker
    /// Hub): from its `credHelpers` entry, else `credsStore`, else `auths`.
    pub fn get(&self, registry: &str) -> Result<Option<Credential>, CredentialsError> {
        let key = server_key(registry);
        if let Some(helper) = self.helper_for(registry) {
            return helper_get(&helper, registry, &key);
        }
        let Some(auths) = self.doc.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        let entry = auths.get(&key).or_else(|| {
            auths
                .iter()
                .find(|(k, _)| normalize_key(k) == normalize_key(&key))
                .map(|(_, v)| v)
        });
        Ok(entry.and_then(|e| self.decode_entry(e)))
    }

    /// Records `credential` for `registry`: through its helper when one is
    /// configured, else base64 in `auths`. Call [`save`](Self::save) after.
    pub fn store(
        &mut self,
        registry: &str,
        credential: &Credential,
    ) -> Result<(), CredentialsError> {
        let key = server_key(registry);
        if let Some(helper) = self.helper_for(registry) {
            let (user, secret) = match credential {
                Credential::Basic { username, password } => (username.as_str(), password.as_str()),
                Credential::IdentityToken(t) => ("<token>", t.as_str()),
            };
            let input = json!({"ServerURL": key, "Username": user, "Secret": secret}).to_string();
            run_helper(&helper, "store", &input, registry)?;
            // The file only remembers that the registry has credentials.
            self.auths_mut().insert(key, json!({}));
            return Ok(());
        }
        let entry = match credential {
            Credential::Basic { username, password } => {
                json!({"auth": STANDARD.encode(format!("{username}:{password}"))})
            }
            Credential::IdentityToken(t) => json!({"identitytoken": t}),
        };
        self.auths_mut().insert(key, entry);
        Ok(())
    }

    /// Forgets the credential for `registry`; false if there was none.
    pub fn erase(&mut self, registry: &str) -> Result<bool, CredentialsError> {
        let key = server_key(registry);
        let mut found = false;
        if let Some(helper) = self.helper_for(registry) {
            found = run_helper(&helper, "erase", &key, registry).is_ok();
        }
        if let Some(auths) = self.doc.get_mut("auths").and_then(Value::as_object_mut) {
            let keys: Vec<String> = auths
                .keys()
                .filter(|k| normalize_key(k) == normalize_key(&key))
                .cloned()
                .collect();
            for k in keys {
                found |= auths.remove(&k).is_some();
            }
        }
        Ok(found)
    }

    /// Writes the config back atomically, readable only by its owner.
    pub fn save(&self) -> Result<(), CredentialsError> {
        let write_err = |source| CredentialsError::Write {
            path: self.path.clone(),
            source,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(write_err)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(write_err)?;
        let text = serde_json::to_string_pretty(&self.doc).map_err(|e| write_err(e.into()))?;
        tmp.write_all(text.as_bytes()).map_err(write_err)?;
        tmp.write_all(b"\n").map_err(write_err)?;
        // NamedTempFile is created 0600, which is what a secret file wants.
        tmp.persist(&self.path).map_err(|e| write_err(e.error))?;
        Ok(())
    }

    fn auths_mut(&mut self) -> &mut Map<String, Value> {
        let auths = self
            .doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        auths
            .as_object_mut()
            .expect("auths was just made an object")
    }

    fn helper_for(&self, registry: &str) -> Option<String> {
        let key = server_key(registry);
        let from_helpers = self
            .doc
            .get("credHelpers")
            .and_then(Value::as_object)
            .and_then(|h| {
                h.get(registry)
                    .or_else(|| h.get(&key))
                    .or_else(|| {
                        h.iter()
                            .find(|(k, _)| normalize_key(k) == normalize_key(&key))
                            .map(|(_, v)| v)
                    })
                    .and_then(Value::as_str)
            });
        from_helpers
            .or_else(|| self.doc.get("credsStore").and_then(Value::as_str))
            .filter(|h| !h.is_empty())
            .map(str::to_string)
    }

    fn decode_entry(&self, entry: &Value) -> Option<Credential> {
        if let Some(token) = entry
            .get("identitytoken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            return Some(Credential::IdentityToken(token.to_string()));
        }
        if let Some(auth) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            let decoded = STANDARD.decode(auth.trim()).ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (username, password) = text.split_once(':')?;
            return Some(Credential::Basic {
                username: username.to_string(),
                password: password.to_string(),
            });
        }
        let username = entry.get("username").and_then(Value::as_str)?;
        let password = entry.get("password").and_then(Value::as_str)?;
        Some(Credential::Basic {
            username: username.to_string(),
            password: password.to_string(),
        })
    }
}

/// The config/helper key of a registry: Docker Hub's legacy URL for
/// `docker.io`, else the host itself.
pub fn server_key(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_KEY.to_string(),
        other => other.to_string(),
    }
}

/// `https://host:5000/v1/` and `host:5000` name the same registry.
fn normalize_key(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

fn helper_get(
    helper: &str,
    registry: &str,
    key: &str,
) -> Result<Option<Credential>, CredentialsError> {
    #[derive(serde::Deserialize)]
    struct Reply {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let out = match run_helper(helper, "get", key, registry) {
        Ok(out) => out,
        // The helper protocol's "no credentials" answer is a failure whose
        // output says so; every helper words it the same way.
        Err(CredentialsError::Helper { reason, .. })
            if reason.contains("credentials not found") =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let reply: Reply = serde_json::from_slice(&out).map_err(|e| CredentialsError::Helper {
        helper: helper.to_string(),
        registry: registry.to_string(),
        reason: format!("unreadable reply: {e}"),
    })?;
    if reply.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if reply.username == "<token>" {
        Credential::IdentityToken(reply.secret)
    } else {
        Credential::Basic {
            username: reply.username,
            password: reply.secret,
        }
    }))
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin and
/// returns its stdout.
fn run_helper(
    helper: &str,
    action: &str,
    input: &str,
    registry: &str,
) -> Result<Vec<u8>, CredentialsError> {
    let fail = |reason: String| CredentialsError::Helper {
        helper: helper.to_string(),
        registry: registry.to_string(),
        reason,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| fail(format!("cannot write to it: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("cannot read its answer: {e}")))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        let msg = String::from_utf8_lossy(if out.stdout.is_empty() {
            &out.stderr
        } else {
            &out.stdout
        })
        .trim()
        .to_string();
        Err(fail(format!("{} ({})", msg, out.status)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> (tempfile::TempDir, DockerConfig) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), text).unwrap();
        let cfg = DockerConfig::load(dir.path()).unwrap();
        (dir, cfg)
    }

    #[test]
    fn reads_base64_auth_and_identity_tokens() {
        let (_d, cfg) = config(
            r#"{"auths":{"https://reg.example:5000/v1/":{"auth":"YWxpY2U6czNjcjp0"},
                "docker.example":{"identitytoken":"refresh-me"}}}"#,
        );
        assert_eq!(
            cfg.get("reg.example:5000").unwrap(),
            Some(Credential::Basic {
                username: "alice".into(),
                password: "s3cr:t".into()
            })
        );
        assert_eq!(
            cfg.get("docker.example").unwrap(),
            Some(Credential::IdentityToken("refresh-me".into()))
        );
        assert_eq!(cfg.get("other.example").unwrap(), None);
    }

    #[test]
    fn docker_hub_uses_the_legacy_key() {
        let (_d, mut cfg) = config("{}");
        let cred = Credential::Basic {
            username: "u".into(),
            password: "p".into(),
        };
        cfg.store("docker.io", &cred).unwrap();
        cfg.save().unwrap();
        let text = std::fs::read_to_string(cfg.path()).unwrap();
        assert!(text.contains(DOCKER_HUB_KEY), "{text}");
        let again = DockerConfig::load(cfg.path().parent().unwrap()).unwrap();
        assert_eq!(again.get("docker.io").unwrap(), Some(cred));
    }

    #[test]
    fn writing_keeps_unknown_fields_and_erase_removes_the_entry() {
        let (_d, mut cfg) = config(r#"{"psFormat":"table","auths":{"a.example":{"auth":"eDp5"}}}"#);
        assert!(cfg.erase("a.example").unwrap());
        assert!(!cfg.erase("a.example").unwrap());
        cfg.save().unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(cfg.path()).unwrap()).unwrap();
        assert_eq!(v["psFormat"], "table");
        assert_eq!(v["auths"], json!({}));
    }

    #[test]
    fn broken_files_are_errors_that_name_the_file() {
        let (d, _) = config("{}");
        std::fs::write(d.path().join("config.json"), "{nope").unwrap();
        let err = DockerConfig::load(d.path()).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let c = Credential::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
