//! ADD as BuildKit does it (cases after BuildKit's `dockerfile_test.go`
//! ADD tests; each expectation checked against BuildKit 0.8 with the same
//! Dockerfile and context): local archives are extracted with the owners
//! and modes they record, other compressed files are copied as they are,
//! and URLs (a server on 127.0.0.1 the test starts) are downloaded, never
//! extracted, mode 0600. Needs root; skipped otherwise.

mod support;

use support::build::{Home, can_build};
use support::built::BUSYBOX;
use support::http::{Response, TestServer};

/// A gzipped tar: `p/` (0750), `p/f` (0640, owned 1000:1000), `p/l -> f`.
fn archive() -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |kind: tar::EntryType, path: &str, mode: u32, owner: u64, data: &[u8]| {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(owner);
        header.set_gid(owner);
        header.set_mtime(1_600_000_000);
        header.set_size(data.len() as u64);
        tar.append_data(&mut header, path, data).unwrap();
    };
    add(tar::EntryType::Directory, "p/", 0o750, 0, b"");
    add(tar::EntryType::Regular, "p/f", 0o640, 1000, b"file");
    let mut link = tar::Header::new_ustar();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_mode(0o777);
    link.set_uid(0);
    link.set_gid(0);
    link.set_mtime(1_600_000_000);
    link.set_size(0);
    tar.append_link(&mut link, "p/l", "f").unwrap();
    gzip(&tar.into_inner().unwrap())
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, data).unwrap();
    gz.finish().unwrap()
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

/// A gzipped tar holding one regular file.
fn one_file_archive(name: &str, mode: u32, data: &[u8]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_600_000_000);
    header.set_size(data.len() as u64);
    tar.append_data(&mut header, name, data).unwrap();
    gzip(&tar.into_inner().unwrap())
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
