//! Logging in and using credentials, through the real binary: login checks
//! the password with the registry before writing config.json, logout
//! removes it, stored credentials and credential helpers are used for auth.

mod support;

use base64::Engine as _;
use predicates::str::contains;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use support::cli::builder;
use support::image::BaseImage;
use support::registry::Registry;

fn config(home: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(home.join("docker/config.json")).expect("config.json"))
        .expect("config.json is JSON")
}

#[test]
fn login_with_a_wrong_password_fails_and_writes_nothing() {
    let Some(registry) = Registry::with_htpasswd("alice", "right") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    builder(home.path())
        .args(["login", "-u", "alice", "--password-stdin", &registry.host()])
        .write_stdin("wrong\n")
        .assert()
        .failure()
        .stderr(contains(format!(
            "{}: registry answered 401 Unauthorized",
            registry.host()
        )))
        .stderr(contains(format!("builder login {}", registry.host())));
    assert!(!home.path().join("docker/config.json").exists());
}

#[test]
fn login_writes_config_json_and_logout_removes_the_entry() {
    let Some(registry) = Registry::with_htpasswd("alice", "right") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let host = registry.host();
    builder(home.path())
        .args(["login", "-u", "alice", "--password-stdin", &host])
        .write_stdin("right\n")
        .assert()
        .success()
        .stdout(contains("Login Succeeded"));
    let auth = config(home.path())["auths"][&host]["auth"]
        .as_str()
        .expect("an auth entry for the registry")
        .to_string();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(auth)
            .unwrap(),
        b"alice:right"
    );
    let mode = std::fs::metadata(home.path().join("docker/config.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o077,
        0,
        "config.json must not be readable by others"
    );

    // The stored credentials open the registry to inspect --remote.
    let image = BaseImage::busybox(&registry);
    builder(home.path())
        .args(["inspect", "--remote", &image.reference])
        .assert()
        .success()
        .stdout(contains(&image.layer));

    builder(home.path())
        .args(["logout", &host])
        .assert()
        .success()
        .stdout(contains(format!("Removed login credentials for {host}")));
    assert!(config(home.path())["auths"].get(&host).is_none());
    builder(home.path())
        .args(["inspect", "--remote", &image.reference])
        .assert()
        .failure()
        .stderr(contains("401 Unauthorized"))
        .stderr(contains(format!("run `builder login {host}` first")));
}

#[test]
fn token_auth_login_verifies_with_the_token_server() {
    let Some(registry) = Registry::with_token_auth("bob", "hunter2") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    builder(home.path())
        .args(["login", "-u", "bob", "--password-stdin", &registry.host()])
        .write_stdin("nope\n")
        .assert()
        .failure()
        .stderr(contains("authentication failed"));
    builder(home.path())
        .args(["login", "-u", "bob", "--password-stdin", &registry.host()])
        .write_stdin("hunter2\n")
        .assert()
        .success();
    let image = BaseImage::busybox_index(&registry, "multi");
    builder(home.path())
        .args(["inspect", "--remote", &image.reference])
        .assert()
        .success()
        .stdout(contains("application/vnd.oci.image.index.v1+json"))
        .stdout(contains(&image.layer));
}

#[test]
fn a_credential_helper_supplies_the_password() {
    let Some(registry) = Registry::with_htpasswd("dave", "from-helper") else {
        return;
    };
    let image = BaseImage::busybox(&registry);
    let home = tempfile::tempdir().unwrap();
    let bin = home.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-test");
    // The helper protocol: `get` reads the server URL on stdin and answers
    // JSON; it logs what it was asked so the test can check.
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread server\necho \"$1 $server\" >> {log}\n\
             if [ \"$server\" = \"{host}\" ]; then\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"dave\",\"Secret\":\"from-helper\"}}' \"$server\"\n\
             else echo 'credentials not found in native keychain'; exit 1; fi\n",
            log = home.path().join("helper.log").display(),
            host = registry.host()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(home.path().join("docker")).unwrap();
    std::fs::write(
        home.path().join("docker/config.json"),
        serde_json::json!({"credHelpers": {registry.host(): "test"}}).to_string(),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    builder(home.path())
        .env("PATH", path)
        .args(["inspect", "--remote", &image.reference])
        .assert()
        .success()
        .stdout(contains(&image.digest));
    let log = std::fs::read_to_string(home.path().join("helper.log")).unwrap();
    assert_eq!(log.trim(), format!("get {}", registry.host()));
}

#[test]
fn login_takes_the_password_as_docker_does() {
    let home = tempfile::tempdir().unwrap();
    // --password-stdin needs -u; -p and --password-stdin exclude each other.
    builder(home.path())
        .args(["login", "--password-stdin", "127.0.0.1:1"])
        .assert()
        .code(2)
        .stderr(contains("--username"));
    builder(home.path())
        .args([
            "login",
            "-u",
            "a",
            "-p",
            "x",
            "--password-stdin",
            "127.0.0.1:1",
        ])
        .assert()
        .code(2)
        .stderr(contains("cannot be used with"));
    let Some(registry) = Registry::with_htpasswd("alice", "right") else {
        return;
    };
    let host = registry.host();
    builder(home.path())
        .args(["login", "-u", "alice", "-p", "right", &host])
        .assert()
        .success()
        .stdout(contains("Login Succeeded"))
        .stderr(contains(
            "WARNING! Using --password via the CLI is insecure",
        ));
    assert!(config(home.path())["auths"][&host]["auth"].is_string());
}
