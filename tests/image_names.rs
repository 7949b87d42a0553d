//! Naming images in the store as docker users do, through the real binary:
//! the image ID that `build -q` and `--iidfile` print (`sha256:…`, bare
//! hex) and unique ID prefixes in `inspect`, `tag`, `rmi` and `push`
//! (an ambiguous prefix names its matches), and `builder images` with
//! docker's columns, `-q`, `--digests`, `--filter` and `--format`.

mod support;

use assert_cmd::Command;
use builder::image::Reference;
use builder::image::manifest::{canonical_json, new_manifest};
use builder::store::Store;
use oci_spec::image::{Descriptor, MediaType};
use predicates::prelude::*;
use std::path::Path;

fn builder(root: &Path) -> Command {
    let mut cmd = Command::cargo_bin("builder").unwrap();
    cmd.arg("--root")
        .arg(root)
        .env_remove("BUILDER_ROOT")
        .env_remove("BUILDKIT_PROGRESS");
    cmd
}

fn put(store: &Store, media_type: MediaType, bytes: &[u8]) -> Descriptor {
    let digest = store.blobs().put(bytes).unwrap();
    Descriptor::new(media_type, bytes.len() as u64, digest)
}

/// Stores an image whose config carries `label` and was created at
/// `created` (no `created` field when empty), names it `names`, and
/// returns its ID (`sha256:…`).
fn add_image(store: &Store, names: &[&str], label: &str, created: &str) -> String {
    let created = match created {
        "" => String::new(),
        time => format!(r#""created":"{time}","#),
    };
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux",{created}"config":{{"Labels":{{"l":"{label}"}}}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
    );
    add_config(store, names, &config, label.as_bytes()).0
}

/// Stores an image of `config` and one layer, names it `names`, and
/// returns its ID and manifest.
fn add_config(store: &Store, names: &[&str], config: &str, layer: &[u8]) -> (String, Descriptor) {
    let config = put(store, MediaType::ImageConfig, config.as_bytes());
    let layer = put(store, MediaType::ImageLayerGzip, layer);
    let manifest = new_manifest(config.clone(), vec![layer]);
    let desc = put(
        store,
        MediaType::ImageManifest,
        &canonical_json(&manifest).unwrap(),
    );
    for name in names {
        store
            .refs()
            .set(&Reference::parse(name).unwrap(), desc.clone())
            .unwrap();
    }
    (config.digest().to_string(), desc)
}

fn stdout(cmd: &mut Command) -> String {
    let output = cmd.output().unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn image_ids_and_unique_prefixes_name_images_in_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let store = Store::open(root).unwrap();
    let id = add_image(&store, &["app:1"], "one", "2020-01-01T00:00:00Z");
    let hex = id.trim_start_matches("sha256:").to_owned();
    for name in [
        id.as_str(),
        &hex,
        &hex[..12],
        &format!("sha256:{}", &hex[..7]),
    ] {
        let shown = stdout(builder(root).args(["inspect", "--format", "{{.id}}", name]));
        assert_eq!(shown, format!("{id}\n"), "{name}");
    }
    // inspect suggests no pull of `docker.io/library/sha256:…` for an unknown ID.
    let unknown = format!("sha256:{}", "0".repeat(64));
    builder(root)
        .args(["inspect", &unknown])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "no such image: {unknown}"
        )))
        .stderr(predicate::str::contains("builder pull").not());
    // tag by prefix, push by ID needs a destination (a usage error).
    builder(root)
        .args(["tag", &hex[..12], "copy:2"])
        .assert()
        .success();
    let tagged = stdout(builder(root).args(["inspect", "-f", "{{.id}}", "copy:2"]));
    assert_eq!(tagged, format!("{id}\n"));
    builder(root)
        .args(["push", &hex[..12]])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "an image ID names no repository to push to",
        ));
    // rmi by ID: the names are in two repositories, so it must be forced.
    builder(root)
        .args(["rmi", &hex[..12]])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("must be forced"))
        .stderr(predicate::str::contains("app, copy"));
    builder(root)
        .args(["rmi", "-f", &hex[..12]])
        .assert()
        .success()
        .stdout("Untagged: app:1\nUntagged: copy:2\n");
    builder(root)
        .args(["inspect", &hex[..12]])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no such image"));
}

#[test]
fn rmi_by_id_of_one_repository_removes_all_its_tags() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let id = add_image(
        &store,
        &["app:1", "app:latest"],
        "x",
        "2020-01-01T00:00:00Z",
    );
    builder(dir.path())
        .args(["rmi", &id])
        .assert()
        .success()
        .stdout("Untagged: app:1\nUntagged: app:latest\n");
}

#[test]
fn an_ambiguous_prefix_names_the_images_it_matches() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // 17 IDs: two of them start with the same hex digit.
    let ids: Vec<String> = (0..17)
        .map(|i| {
            add_image(
                &store,
                &[&format!("app:{i}")],
                &format!("v{i}"),
                "2020-01-01T00:00:00Z",
            )
        })
        .collect();
    let first = |id: &String| id.trim_start_matches("sha256:").chars().next().unwrap();
    let (a, b) = ids
        .iter()
        .enumerate()
        .find_map(|(i, a)| {
            ids[i + 1..]
                .iter()
                .find(|b| first(b) == first(a))
                .map(|b| (a, b))
        })
        .unwrap();
    let prefix = first(a).to_string();
    for command in [&["inspect"][..], &["tag"], &["rmi"], &["push"]] {
        let mut args: Vec<&str> = command.to_vec();
        args.push(&prefix);
        if command == ["tag"] || command == ["push"] {
            args.push("other:1");
        }
        builder(dir.path())
            .args(&args)
            .assert()
            .code(1)
            .stderr(predicate::str::contains(format!(
                "image ID prefix {prefix} is ambiguous"
            )))
            .stderr(predicate::str::contains(a.as_str()))
            .stderr(predicate::str::contains(b.as_str()));
    }
}

#[test]
fn images_lists_docker_columns_ids_digests_and_formats() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let store = Store::open(root).unwrap();
    let old = add_image(
        &store,
        &["app:1", "team/tool:2"],
        "old",
        "2020-01-01T00:00:00Z",
    );
    let new = add_image(&store, &["app:2"], "new", "2021-06-01T12:00:00Z");
    let short = |id: &str| id.trim_start_matches("sha256:")[..12].to_owned();

    let table = stdout(builder(root).arg("images"));
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(
        rows[0],
        vec![
            "REPOSITORY",
            "TAG",
            "IMAGE ID",
            "CREATED",
            "SIZE",
            "PLATFORMS"
        ]
    );
    // Newest first, ties by name.
    assert_eq!(rows[1][..3], ["app", "2", short(&new).as_str()], "{table}");
    assert!(rows[1][3].ends_with("years ago"), "{table}");
    assert_eq!(rows[2][..3], ["app", "1", short(&old).as_str()], "{table}");
    assert_eq!(rows[3][..3], ["team/tool", "2", short(&old).as_str()]);

    // -q: each ID once; --no-trunc: whole IDs.
    assert_eq!(
        stdout(builder(root).args(["images", "-q"])),
        format!("{}\n{}\n", short(&new), short(&old))
    );
    assert_eq!(
        stdout(builder(root).args(["images", "-q", "--no-trunc"])),
        format!("{new}\n{old}\n")
    );
    // --digests adds the manifest digest after TAG.
    let digests = stdout(builder(root).args(["images", "--digests"]));
    assert!(
        digests.starts_with("REPOSITORY   TAG       DIGEST"),
        "{digests}"
    );
    assert!(
        digests.lines().nth(1).unwrap().contains("sha256:"),
        "{digests}"
    );

    // Templates, tables and JSON.
    assert_eq!(
        stdout(builder(root).args(["images", "--format", "{{.Repository}}:{{.Tag}}"])),
        "app:2\napp:1\nteam/tool:2\n"
    );
    assert_eq!(
        stdout(builder(root).args(["images", "--format", "table {{.Repository}}\\t{{.ID}}"])),
        format!(
            "REPOSITORY   IMAGE ID\napp          {}\napp          {}\nteam/tool    {}\n",
            short(&new),
            short(&old),
            short(&old)
        )
    );
    let json = stdout(builder(root).args(["images", "--format", "json"]));
    let first: serde_json::Value = serde_json::from_str(json.lines().nth(1).unwrap()).unwrap();
    assert_eq!(first["Repository"], "app");
    assert_eq!(first["Tag"], "1");
    assert_eq!(first["ID"], short(&old));
    assert_eq!(first["CreatedAt"], "2020-01-01 00:00:00 +0000 UTC");

    // Filters.
    let names = |filter: &[&str]| {
        let mut args = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        args.extend(filter);
        stdout(builder(root).args(&args))
    };
    assert_eq!(names(&["--filter", "reference=app"]), "app:2\napp:1\n");
    assert_eq!(names(&["--filter", "reference=*:2"]), "app:2\n");
    assert_eq!(names(&["--filter", "reference=team/*"]), "team/tool:2\n");
    assert_eq!(names(&["-f", "label=l=new"]), "app:2\n");
    assert_eq!(names(&["-f", "since=app:1"]), "app:2\n");
    assert_eq!(
        names(&["-f", &format!("before={}", short(&new))]),
        "app:1\nteam/tool:2\n"
    );
    assert_eq!(names(&["-f", "dangling=true"]), "");
    builder(root)
        .args(["images", "--filter", "color=red"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("'--filter <FILTER>'"))
        .stderr(predicate::str::contains("unknown filter \"color\""));
    builder(root)
        .args(["images", "--format", "{{.Repository"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unclosed action"));
}

#[test]
fn images_lists_the_newest_first_and_undated_images_last() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let store = Store::open(root).unwrap();
    add_image(&store, &["undated:1"], "u", "");
    add_image(&store, &["old:1"], "o", "2019-01-01T00:00:00Z");
    add_image(&store, &["zeta:1", "beta:1"], "z", "2022-03-04T05:06:07Z");
    add_image(&store, &["alpha:1"], "a", "2022-03-04T05:06:07Z");
    add_image(&store, &["mid:1"], "m", "2020-05-05T00:00:00.5Z");
    assert_eq!(
        stdout(builder(root).args(["images", "--format", "{{.Repository}} {{.CreatedSince}}"]))
            .lines()
            .map(|l| l.split(' ').next().unwrap())
            .collect::<Vec<_>>(),
        ["alpha", "beta", "zeta", "mid", "old", "undated"]
    );
    let table = stdout(builder(root).arg("images"));
    let last = table.lines().last().unwrap();
    assert!(
        last.starts_with("undated") && last.contains("N/A"),
        "{table}"
    );
}

#[test]
fn inspect_format_reads_the_shown_json() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    add_image(&store, &["app:1"], "lab", "2020-01-01T00:00:00Z");
    assert_eq!(
        stdout(builder(dir.path()).args([
            "inspect",
            "app:1",
            "--format",
            r#"{{index .config.config.Labels "l"}} {{json .config.config.Labels}} {{.config.os}}"#
        ])),
        "lab {\"l\":\"lab\"} linux\n"
    );
}

#[test]
fn templates_range_if_and_functions_as_docker_users_write_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let store = Store::open(root).unwrap();
    let config = r#"{"architecture":"amd64","os":"linux","created":"2020-01-01T00:00:00Z",
        "config":{"Env":["PATH=/bin","HOME=/root"],"Labels":{"v":"2","a":"x"},"Cmd":["sh"]},
        "rootfs":{"type":"layers","diff_ids":[]}}"#;
    let (id, _) = add_config(&store, &["app:1"], config, b"app");
    let (_, dangling) = add_config(&store, &[], &config.replace("2020", "2021"), b"other");
    store
        .refs()
        .set(
            &Reference::parse(&format!("other@{}", dangling.digest())).unwrap(),
            dangling.clone(),
        )
        .unwrap();
    let inspect = |format: &str| stdout(builder(root).args(["inspect", "-f", format, "app:1"]));
    assert_eq!(
        inspect("{{range .config.config.Env}}{{println .}}{{end}}"),
        "PATH=/bin\nHOME=/root\n\n"
    );
    assert_eq!(
        inspect(r#"{{range $k, $v := .config.config.Labels}}{{$k}}={{$v}}{{"\n"}}{{end}}"#),
        "a=x\nv=2\n\n"
    );
    assert_eq!(
        inspect(
            r#"{{with .config.config.Entrypoint}}{{json .}}{{else}}{{printf "%q" .config.config.Cmd}}{{end}} {{len .config.config.Env}} {{title .config.os}}"#
        ),
        "[\"sh\"] 2 Linux\n"
    );
    // Rows whose template prints nothing are empty lines, as docker prints them.
    let short = &id.trim_start_matches("sha256:")[..12];
    let dangling_id = stdout(builder(root).args(["images", "-q", "-f", "dangling=true"]));
    assert_eq!(
        stdout(builder(root).args([
            "images",
            "--format",
            r#"{{if eq .Tag "<none>"}}{{.ID}}{{end}}"#
        ])),
        format!("{dangling_id}\n")
    );
    assert_eq!(
        stdout(builder(root).args([
            "images",
            "--format",
            r#"{{.Repository}}{{if ne .Tag "<none>"}}:{{.Tag}}{{else}}@{{.Digest}}{{end}} {{.ID}}"#
        ])),
        format!("other@{} {}app:1 {short}\n", dangling.digest(), dangling_id)
    );
    // A template that cannot be read is a usage error (2) naming the column;
    // one that fails on the data an error (1) naming it too.
    builder(root)
        .args(["inspect", "-f", "{{range .config}}x", "app:1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "column 19: {{range}} at column 1 has no {{end}}",
        ));
    builder(root)
        .args(["images", "--format", "{{if}}{{end}}"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "column 1: missing value for {{if}}",
        ));
    builder(root)
        .args(["inspect", "-f", "{{.id.x}}", "app:1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "column 3: can't evaluate field x in type string",
        ));
}

#[test]
fn prune_takes_docker_s_force_flag() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["prune", "-f"][..],
        &["prune", "--force"],
        &["prune", "-a", "--force=true"],
    ] {
        builder(dir.path())
            .args(args)
            .assert()
            .success()
            .stdout(predicate::str::contains("Total reclaimed space"));
    }
}
