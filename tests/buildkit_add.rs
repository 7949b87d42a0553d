//! ADD as BuildKit does it (cases after BuildKit's `dockerfile_test.go`
//! ADD tests; each expectation checked against BuildKit 0.8 with the same
//! Dockerfile and context): local archives are extracted with the owners
//! and modes they record, other compressed files are copied as they are,
//! and URLs (a server on 127.0.0.1 the test starts) are downloaded, never
//! extracted, mode 0600. Needs root; skipped otherwise.

mod support;

use support::build::{Home, TarGz, can_build, gzip};
use support::built::BUSYBOX;
use support::http::{Response, TestServer};

/// A gzipped tar: `p/` (0750), `p/f` (0640, owned 1000:1000), `p/l -> f`.
fn archive() -> Vec<u8> {
    let mut tar = TarGz::new();
    tar.entry(tar::EntryType::Directory, "p/", 0o750, 0, b"");
    tar.entry(tar::EntryType::Regular, "p/f", 0o640, 1000, b"file");
    tar.symlink("p/l", "f");
    tar.finish()
}

#[test]
fn a_local_archive_is_extracted_with_its_owners_and_modes() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "add-tar",
        &format!("{BUSYBOX}ADD a.tar.gz /x/\nADD plain.gz /plain/\n"),
    );
    std::fs::write(context.join("a.tar.gz"), archive()).unwrap();
    let plain = gzip(b"not a tar\n");
    std::fs::write(context.join("plain.gz"), &plain).unwrap();
    let image = home.built(&context, &[]);
    assert_eq!(image.mode("/x/p"), 0o750);
    assert_eq!(image.owner("/x/p/f"), (1000, 1000));
    assert_eq!(image.mode("/x/p/f"), 0o640);
    assert_eq!(image.text("/x/p/f"), "file");
    assert_eq!(image.link("/x/p/l"), "f");
    // A compressed file that is no tar is copied as it is.
    assert_eq!(
        image.node("/plain/plain.gz").kind,
        support::built::Kind::File(plain)
    );
}

#[test]
fn add_chown_owns_the_directories_it_creates_and_the_archive_keeps_its_owners() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "add-tar-chown",
        &format!("{BUSYBOX}ADD --chown=3:4 a.tar.gz /y/z/\nADD --chown=3:4 plain.gz /w/\n"),
    );
    std::fs::write(context.join("a.tar.gz"), archive()).unwrap();
    std::fs::write(context.join("plain.gz"), gzip(b"not a tar\n")).unwrap();
    let image = home.built(&context, &[]);
    // BuildKit 0.8 and Buildah 1.28 alike: the destination directories the
    // step makes are the --chown user's, the archive's entries keep theirs.
    assert_eq!(image.owner("/y"), (3, 4));
    assert_eq!(image.owner("/y/z"), (3, 4));
    assert_eq!(image.owner("/y/z/p"), (0, 0));
    assert_eq!(image.owner("/y/z/p/f"), (1000, 1000));
    assert_eq!(image.owner("/y/z/p/l"), (0, 0));
    // A file that is no archive is the --chown user's.
    assert_eq!(image.owner("/w/plain.gz"), (3, 4));
}

#[test]
fn a_url_is_downloaded_mode_0600_and_never_extracted() {
    if !can_build() {
        return;
    }
    let tarball = archive();
    let served = tarball.clone();
    let server = TestServer::start(move |request| match request.path() {
        "/file.txt" => Response::new(200).body("remote\n"),
        "/remote.tar.gz" => Response::new(200).body(served.clone()),
        _ => Response::new(404),
    });
    let url = server.url();
    let home = Home::new();
    let context = home.context(
        "add-url",
        &format!(
            "{BUSYBOX}ADD {url}/file.txt /remote/\nADD {url}/file.txt /named\n\
             ADD {url}/remote.tar.gz /tars/\nADD --chown=9:8 {url}/file.txt /owned\n"
        ),
    );
    let image = home.built(&context, &[]);
    assert_eq!(image.text("/remote/file.txt"), "remote\n");
    assert_eq!(image.mode("/remote/file.txt"), 0o600);
    assert_eq!(image.owner("/remote/file.txt"), (0, 0));
    assert_eq!(image.text("/named"), "remote\n");
    assert_eq!(
        image.node("/tars/remote.tar.gz").kind,
        support::built::Kind::File(tarball)
    );
    assert_eq!(image.owner("/owned"), (9, 8));
    assert_eq!(image.mode("/owned"), 0o600);
}

#[test]
fn a_plain_http_url_needs_no_ca_certificates() {
    if !can_build() {
        return;
    }
    let server = TestServer::start(|request| match request.path() {
        "/file.txt" => Response::new(200).body("remote\n"),
        _ => Response::new(404),
    });
    let home = Home::new();
    let context = home.context(
        "add-url-no-cas",
        &format!("FROM scratch\nADD {}/file.txt /remote\n", server.url()),
    );
    // What the CA loader reads instead of the system's store: nothing.
    let empty = home.path("no-cas.pem");
    std::fs::write(&empty, "").unwrap();
    let out = home
        .build(&["-o"])
        .arg(format!("type=local,dest={}", home.path("out").display()))
        .arg(&context)
        .env("SSL_CERT_FILE", &empty)
        .env("SSL_CERT_DIR", home.path("absent"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(home.path("out/remote")).unwrap(),
        "remote\n"
    );
}

/// A gzipped tar holding one regular file.
fn one_file_archive(name: &str, mode: u32, data: &[u8]) -> Vec<u8> {
    let mut tar = TarGz::new();
    tar.entry(tar::EntryType::Regular, name, mode, 0, data);
    tar.finish()
}

#[test]
fn a_wildcard_extracts_each_archive_and_a_directory_is_copied() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "add-wildcard",
        &format!("{BUSYBOX}ADD *.tar.gz /x/\nADD dir /addeddir/\n"),
    );
    std::fs::write(
        context.join("one.tar.gz"),
        one_file_archive("one.txt", 0o644, b"1"),
    )
    .unwrap();
    std::fs::write(
        context.join("two.tar.gz"),
        one_file_archive("two.txt", 0o600, b"2"),
    )
    .unwrap();
    std::fs::create_dir(context.join("dir")).unwrap();
    std::fs::write(context.join("dir/f"), "f").unwrap();
    let image = home.built(&context, &[]);
    assert_eq!(image.list("/x"), ["one.txt", "two.txt"]);
    assert_eq!(image.text("/x/two.txt"), "2");
    assert_eq!(image.mode("/x/two.txt"), 0o600);
    assert_eq!(image.list("/addeddir"), ["f"]);
    assert_eq!(image.mode("/addeddir/f"), 0o644);
}
