//! Registries over TLS: a registry whose certificate a test CA (rcgen)
//! signed is refused until that CA is trusted through `SSL_CERT_FILE` or a
//! docker `certs.d/HOST:PORT/ca.crt`; client certificates come from
//! `certs.d` too; with no CA certificates on the system builder uses its
//! bundled roots and says so once, and plain-HTTP registries need none.
//!
//! The registry listens on 127.0.0.1, which builder speaks plain HTTP to,
//! so builder runs in a mount namespace of its own where `/etc/hosts` says
//! `registry.test` is 127.0.0.1 (the host's files are untouched); that
//! needs root, and the tests skip without it.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::registry::{Registry, TlsFiles};

const NAME: &str = "registry.test";

/// A test CA, the registry's certificate for [`NAME`] and a client
/// certificate, all signed by it, as PEM files in `dir`.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let dir = tempfile::tempdir().expect("temp dir for the PKI");
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "builder test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.pem", ca.pem());
        for (name, sans) in [("server", vec![NAME.to_string()]), ("client", vec![])] {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(sans).unwrap();
            params
                .distinguished_name
                .push(DnType::CommonName, format!("builder test {name}"));
            let cert = params.signed_by(&key, &ca).unwrap();
            write(&format!("{name}.pem"), cert.pem());
            write(&format!("{name}-key.pem"), key.serialize_pem());
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The registry's side: its certificate, and the client CA if it is
    /// to ask for client certificates.
    fn server(&self, client_certs: bool) -> TlsFiles {
        TlsFiles {
            certificate: self.path("server.pem"),
            key: self.path("server-key.pem"),
            client_ca: client_certs.then(|| self.path("ca.pem")),
        }
    }
}

/// A temp home with a context to build, and the hosts file naming the
/// registry.
struct Setup {
    home: tempfile::TempDir,
    registry: Registry,
    pki: Pki,
}

impl Setup {
    /// `None` (skipped) unless root with docker-registry and unshare.
    fn new(client_certs: bool) -> Option<Setup> {
        if !rustix::process::geteuid().is_root() {
            eprintln!("SKIPPED: needs root for a mount namespace with its own /etc/hosts");
            return None;
        }
        let pki = Pki::new();
        let registry = Registry::with_tls(&pki.server(client_certs))?;
        let home = tempfile::tempdir().unwrap();
        let context = home.path().join("context");
        std::fs::create_dir(&context).unwrap();
        std::fs::write(
            context.join("Dockerfile"),
            "FROM scratch\nCOPY hello /hello\n",
        )
        .unwrap();
        std::fs::write(context.join("hello"), "over TLS\n").unwrap();
        std::fs::write(
            home.path().join("hosts"),
            format!("127.0.0.1 localhost\n127.0.0.1 {NAME}\n"),
        )
        .unwrap();
        Some(Setup {
            home,
            registry,
            pki,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    /// `registry.test:PORT`.
    fn host(&self) -> String {
        format!(
            "{NAME}:{}",
            self.registry.host().rsplit_once(':').unwrap().1
        )
    }

    fn reference(&self) -> String {
        format!("{}/tls/app:latest", self.host())
    }

    /// `$DOCKER_CONFIG/certs.d/registry.test:PORT/`, made.
    fn docker_config_certs_d(&self) -> PathBuf {
        let dir = self.path("docker/certs.d").join(self.host());
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `builder build --push` of the context to [`Self::reference`], in a
    /// mount namespace where `/etc/hosts` names the registry and each of
    /// `binds` (source, target) is mounted; `env` is added.
    fn push(&self, env: &[(&str, &Path)], binds: &[(&Path, &str)]) -> Output {
        let metadata = self.path("metadata.json");
        let context = self.path("context");
        let reference = self.reference();
        let args = [
            "build".as_ref(),
            "--progress".as_ref(),
            "plain".as_ref(),
            "--push".as_ref(),
            "-t".as_ref(),
            reference.as_ref(),
            "--metadata-file".as_ref(),
            metadata.as_os_str(),
            context.as_os_str(),
        ];
        self.builder(&args, env, binds)
    }

    /// `builder ARGS` in the mount namespace [`Self::push`] describes.
    fn builder(
        &self,
        args: &[&std::ffi::OsStr],
        env: &[(&str, &Path)],
        binds: &[(&Path, &str)],
    ) -> Output {
        let mut script = String::from("set -e; mount --bind \"$0\" /etc/hosts; ");
        for (source, target) in binds {
            script.push_str(&format!("mount --bind '{}' '{target}'; ", source.display()));
        }
        script.push_str("exec \"$@\"");
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .arg(self.path("hosts"))
            .arg(env!("CARGO_BIN_EXE_builder"))
            .args(args)
            .env("HOME", self.home.path())
            .env("DOCKER_CONFIG", self.path("docker"))
            .env("BUILDER_ROOT", self.path("store"))
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR");
        for (name, value) in env {
            cmd.env(name, value);
        }
        cmd.output().expect("run unshare")
    }

    /// Asserts the push succeeded and the registry's tag points at the
    /// manifest the build made.
    fn assert_pushed(&self, out: &Output) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{stderr}\nregistry log:\n{}",
            self.registry.log()
        );
        let metadata: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.path("metadata.json")).unwrap()).unwrap();
        let link = self
            .registry
            .storage()
            .join("docker/registry/v2/repositories/tls/app/_manifests/tags/latest/current/link");
        assert_eq!(
            std::fs::read_to_string(&link).expect("the registry holds the tag"),
            metadata["containerimage.digest"].as_str().unwrap()
        );
        assert!(
            stderr.contains(&format!("pushed {}", self.reference())),
            "{stderr}"
        );
    }
}

fn notices(out: &Output) -> usize {
    String::from_utf8_lossy(&out.stderr)
        .matches("no CA certificates found")
        .count()
}

#[test]
fn an_untrusted_certificate_is_refused_naming_the_registry_and_the_problem() {
    let Some(setup) = Setup::new(false) else {
        return;
    };
    let out = setup.push(&[], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot reach registry {} over TLS: its certificate is signed by a certificate \
             authority builder does not trust (UnknownIssuer)",
            setup.host()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("certs.d/{}/ca.crt", setup.host())),
        "the help says where a CA goes: {stderr}"
    );
}

#[test]
fn a_ca_named_by_ssl_cert_file_is_trusted() {
    let Some(setup) = Setup::new(false) else {
        return;
    };
    let out = setup.push(&[("SSL_CERT_FILE", &setup.pki.path("ca.pem"))], &[]);
    setup.assert_pushed(&out);
    assert_eq!(notices(&out), 0);
}

#[test]
fn a_ca_in_docker_config_certs_d_is_trusted() {
    let Some(setup) = Setup::new(false) else {
        return;
    };
    let dir = setup.docker_config_certs_d();
    std::fs::copy(setup.pki.path("ca.pem"), dir.join("ca.crt")).unwrap();
    setup.assert_pushed(&setup.push(&[], &[]));
}

#[test]
fn a_ca_in_etc_docker_certs_d_is_trusted() {
    let Some(setup) = Setup::new(false) else {
        return;
    };
    if !Path::new("/etc/docker").is_dir() {
        eprintln!("SKIPPED: no /etc/docker to mount a test certs.d over");
        return;
    }
    let etc_docker = setup.path("etc-docker");
    let dir = etc_docker.join("certs.d").join(setup.host());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(setup.pki.path("ca.pem"), dir.join("ca.crt")).unwrap();
    setup.assert_pushed(&setup.push(&[], &[(&etc_docker, "/etc/docker")]));
}

#[test]
fn without_system_cas_the_bundled_roots_are_used_and_said_once() {
    let Some(setup) = Setup::new(false) else {
        return;
    };
    // What the loader reads instead of the system's store: nothing.
    let empty_file = setup.path("no-cas.pem");
    std::fs::write(&empty_file, "").unwrap();
    let empty_dir = setup.path("no-cas");
    std::fs::create_dir(&empty_dir).unwrap();
    let env: [(&str, &Path); 2] = [("SSL_CERT_FILE", &empty_file), ("SSL_CERT_DIR", &empty_dir)];

    // The registry's own CA still works beside the bundled roots.
    let dir = setup.docker_config_certs_d();
    std::fs::copy(setup.pki.path("ca.pem"), dir.join("ca.crt")).unwrap();
    let out = setup.push(&env, &[]);
    setup.assert_pushed(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(notices(&out), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "notice: no CA certificates found in SSL_CERT_FILE={} and SSL_CERT_DIR={}: \
             registries are checked against the",
            empty_file.display(),
            empty_dir.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("Mozilla root certificates built into builder instead"),
        "{stderr}"
    );

    // `pull` says it too, once, in its progress.
    let out = setup.builder(
        &[
            "pull".as_ref(),
            "--progress".as_ref(),
            "plain".as_ref(),
            setup.reference().as_ref(),
        ],
        &env,
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(notices(&out), 1, "{stderr}");

    // The bundled roots do not include the test CA: without certs.d the
    // registry is refused, not reached through some other trust.
    std::fs::remove_file(dir.join("ca.crt")).unwrap();
    let out = setup.push(&env, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("(UnknownIssuer)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_plain_http_registry_needs_no_ca_certificates() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let home = support::build::Home::new();
    let context = home.context("plain", "FROM scratch\nCOPY Dockerfile /\n");
    let empty_file = home.path("no-cas.pem");
    std::fs::write(&empty_file, "").unwrap();
    let out = home
        .build(&["--push", "-t", &format!("{}/plain/app", registry.host())])
        .arg(&context)
        .env("SSL_CERT_FILE", &empty_file)
        .env("SSL_CERT_DIR", home.path("absent"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("pushed "), "{stderr}");
    assert_eq!(notices(&out), 0, "{stderr}");
}

#[test]
fn a_client_certificate_in_certs_d_is_presented() {
    let Some(setup) = Setup::new(true) else {
        return;
    };
    let dir = setup.docker_config_certs_d();
    std::fs::copy(setup.pki.path("ca.pem"), dir.join("ca.crt")).unwrap();

    let out = setup.push(&[], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // TLS 1.3 servers refuse a missing client certificate after the
    // handshake: the client sees the connection closed, and says why.
    assert!(
        stderr.contains(&format!("cannot reach registry {}", setup.host())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "(the registry asked for a client certificate and builder has none for it: put \
             NAME.cert and NAME.key in {}/",
            dir.display()
        )),
        "{stderr}"
    );

    std::fs::copy(setup.pki.path("client.pem"), dir.join("client.cert")).unwrap();
    std::fs::copy(setup.pki.path("client-key.pem"), dir.join("client.key")).unwrap();
    setup.assert_pushed(&setup.push(&[], &[]));
}

#[test]
fn a_client_key_without_its_certificate_is_an_error_naming_both() {
    let Some(setup) = Setup::new(false) else {
        return;
    };
    let dir = setup.docker_config_certs_d();
    std::fs::copy(setup.pki.path("client-key.pem"), dir.join("client.key")).unwrap();
    let out = setup.push(&[], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "registry {}: {} has no {} beside it",
            setup.host(),
            dir.join("client.key").display(),
            dir.join("client.cert").display()
        )),
        "{stderr}"
    );
}
