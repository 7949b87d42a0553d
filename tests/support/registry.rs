//! A real registry for tests: Debian's `docker-registry` (distribution 2.x)
//! on 127.0.0.1 with a free port, a temp storage dir and a generated config;
//! killed on drop.

use super::token::TokenServer;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BINARY: &str = "/usr/bin/docker-registry";

/// A running `docker-registry serve` process.
pub struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    /// The user and password of an htpasswd or token-auth registry.
    pub credentials: Option<(String, String)>,
    /// Kept alive as long as the registry that trusts it.
    _token_server: Option<TokenServer>,
}

/// The PEM files of a TLS registry: its certificate and key, and the CA
/// client certificates must be signed by, if it asks for them.
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// How the registry authenticates clients.
enum Auth<'a> {
    None,
    Htpasswd(&'a str, &'a str),
    Token(&'a TokenServer),
}

impl Registry {
    /// An open registry, or `None` (with a SKIPPED message) when
    /// `docker-registry` is not installed on this machine.
    pub fn start() -> Option<Self> {
        Self::launch(Auth::None)
    }

    /// A registry with basic auth for one user (`htpasswd -B`).
    pub fn with_htpasswd(user: &str, password: &str) -> Option<Self> {
        Self::launch(Auth::Htpasswd(user, password))
    }

    /// A registry with Docker Hub–style bearer auth: tokens come from a
    /// test token server that grants everything to `user`/`password` and
    /// nothing to anonymous clients.
    pub fn with_token_auth(user: &str, password: &str) -> Option<Self> {
        if !available() {
            return None;
        }
        let token = TokenServer::start(user, password);
        Self::launch(Auth::Token(&token)).map(|mut r| {
            r._token_server = Some(token);
            r
        })
    }

    /// An open registry serving HTTPS with `tls` (PEM files), still on
    /// 127.0.0.1: clients reach it by a name the certificate holds.
    pub fn with_tls(tls: &TlsFiles) -> Option<Self> {
        Self::launch_with(Auth::None, Some(tls))
    }

    fn launch(auth: Auth<'_>) -> Option<Self> {
        Self::launch_with(auth, None)
    }

    fn launch_with(auth: Auth<'_>, tls: Option<&TlsFiles>) -> Option<Self> {
        if !available() {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir for the registry");
        let credentials = match auth {
            Auth::None => None,
            Auth::Htpasswd(u, p) => Some((u.to_string(), p.to_string())),
            Auth::Token(t) => Some((t.user.clone(), t.password.clone())),
        };
        let auth_yaml = match auth {
            Auth::None => String::new(),
            Auth::Htpasswd(user, password) => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .expect("run htpasswd (apache2-utils)");
                assert!(out.status.success(), "htpasswd failed");
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, &out.stdout).expect("write htpasswd file");
                format!(
                    "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
                    file.display()
                )
            }
            Auth::Token(token) => {
                let bundle = dir.path().join("token-ca.pem");
                std::fs::write(&bundle, token.cert_pem()).expect("write the token cert bundle");
                format!(
                    "auth:\n  token:\n    realm: {}/token\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    token.url(),
                    super::token::SERVICE,
                    super::token::ISSUER,
                    bundle.display()
                )
            }
        };
        let tls_yaml = match tls {
            None => String::new(),
            Some(tls) => {
                let mut yaml = format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    tls.certificate.display(),
                    tls.key.display()
                );
                if let Some(ca) = &tls.client_ca {
                    yaml.push_str(&format!("    clientcas:\n      - {}\n", ca.display()));
                }
                yaml
            }
        };
        for _ in 0..5 {
            let port = free_port();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                     http:\n  addr: 127.0.0.1:{port}\n  secret: builder-tests\n{tls_yaml}{auth_yaml}",
                    dir.path().join("storage").display()
                ),
            )
            .expect("write the registry config");
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
            let child = Command::new(BINARY)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log file"))
                .stderr(log)
                .spawn()
                .expect("spawn docker-registry");
            let mut child = child;
            if wait_ready(&mut child, port, tls.is_some()) {
                return Some(Registry {
                    child,
                    port,
                    dir,
                    credentials,
                    _token_server: None,
                });
            }
            // The port was taken between probe and bind, or a slow start:
            // try again on another port.
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default();
        panic!("docker-registry did not come up:\n{log}");
    }

    /// `127.0.0.1:PORT`, the registry part of references to it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The registry's storage directory.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The registry's log (errors only), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Runs `skopeo --insecure-policy <args>` and returns its stdout;
    /// panics with skopeo's stderr and this registry's log if it fails.
    pub fn skopeo(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("skopeo")
            .arg("--insecure-policy")
            .args(args)
            .output()
            .expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo {args:?}: {}\nregistry log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        out.stdout
    }

    /// `--creds user:pass` / `--dest-creds user:pass` for skopeo, if any.
    pub fn skopeo_creds(&self, flag: &str) -> Vec<String> {
        match &self.credentials {
            Some((u, p)) => vec![flag.to_string(), format!("{u}:{p}")],
            None => Vec::new(),
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `/v2/` answers on `port` (a TLS server answers a plain
/// request with 400); false if the process died first.
fn wait_ready(child: &mut Child, port: u16, tls: bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        match http_status(&format!("127.0.0.1:{port}"), "/v2/") {
            Some(200 | 401) => return true,
            Some(400) if tls => return true,
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Whether the registry binary is installed; prints why tests skip if not.
fn available() -> bool {
    if Path::new(BINARY).exists() {
        true
    } else {
        eprintln!("SKIPPED: {BINARY} is absent (apt-get install docker-registry; CI installs it)");
        false
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("probe a free port")
}

/// The status code of a plain `GET path` to `host`, if anything answers.
pub fn http_status(host: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).ok()?;
    std::str::from_utf8(&buf[9..12]).ok()?.parse().ok()
}
