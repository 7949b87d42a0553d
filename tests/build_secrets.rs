//! `RUN --mount=type=secret` in real builds: secrets from a file and from
//! a variable reach their step (as a file, as an env var), and their bytes
//! are nowhere builder wrote — store, outputs, progress — nor in the
//! config, history or layers; a new value keeps the step cached; a missing
//! `required` secret fails with its ID and line when the step runs (a
//! cached step needs none), a missing optional one is left out. Needs root; skipped otherwise.

mod support;

use std::io::Read;
use std::path::Path;
use support::build::{Home, can_build, layout_image, layout_layer_entries, stderr_of};

const BASE: &str = "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n";

/// A value no file of the test has by chance.
fn random_value(label: &str) -> String {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    format!("{label}-{}", hex::encode(bytes))
}

fn sha256_hex(value: &str) -> String {
    builder::digest::sha256(value.as_bytes())
        .to_string()
        .trim_start_matches("sha256:")
        .to_owned()
}

/// Paths (with nesting: a blob inside a tar inside a file) whose bytes hold
/// `needle`, looking into gzip streams and tar archives too, so compressed
/// layers are searched as well.
fn holders(name: &str, bytes: &[u8], needle: &[u8], found: &mut Vec<String>) {
    if bytes.windows(needle.len()).any(|w| w == needle) {
        found.push(name.to_owned());
    }
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut plain = Vec::new();
        if flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut plain)
            .is_ok()
        {
            holders(&format!("{name} (gunzipped)"), &plain, needle, found);
        }
    }
    if bytes.len() > 262 && &bytes[257..262] == b"ustar" {
        let mut archive = tar::Archive::new(bytes);
        if let Ok(entries) = archive.entries() {
            for entry in entries.flatten() {
                let path = entry
                    .path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                let mut content = Vec::new();
                let mut entry = entry;
                if entry.read_to_end(&mut content).is_ok() {
                    holders(&format!("{name}!{path}"), &content, needle, found);
                }
            }
        }
    }
}

/// Every regular file under `root` that holds `needle` (see [`holders`]).
fn files_holding(root: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                pending.push(path);
            } else if meta.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                holders(
                    &path.display().to_string(),
                    &bytes,
                    needle.as_bytes(),
                    &mut found,
                );
            }
        }
    }
    found
}

#[test]
fn secrets_reach_their_step_and_nothing_builder_keeps() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    // The secret's file lives outside the home, which is searched whole.
    let outside = tempfile::tempdir().unwrap();
    let file_value = random_value("file-secret");
    let env_value = random_value("env-secret");
    let secret_file = outside.path().join("tok.txt");
    std::fs::write(&secret_file, &file_value).unwrap();
    let file_sha = sha256_hex(&file_value);
    let env_sha = sha256_hex(&env_value);

    let dockerfile = format!(
        "{BASE}\
         RUN --mount=type=secret,id=tok test \"$(sha256sum /run/secrets/tok | cut -c1-64)\" = {file_sha} \
             && sha256sum < /run/secrets/tok | cut -c1-64 > /tok.sha \
             && stat -c '%a %u %g' /run/secrets/tok > /tok.stat \
             && if (echo x >> /run/secrets/tok) 2>/dev/null; then echo writable; else echo read-only; fi > /tok.write\n\
         RUN --mount=type=secret,id=api,env=API_TOKEN printf %s \"$API_TOKEN\" | sha256sum | cut -c1-64 > /api.sha \
             && if test -e /run/secrets/api; then echo file; else echo no-file; fi > /api.file\n\
         RUN --mount=type=secret,id=tok,target=/opt/cfg/tok,mode=0440,uid=7,gid=8,env=TOK \
             stat -c '%a %u %g' /opt/cfg/tok > /custom.stat \
             && test \"$(printf %s \"$TOK\" | sha256sum | cut -c1-64)\" = {file_sha} \
             && echo both > /custom.env\n"
    );
    let context = home.context("ctx", &dockerfile);
    let local = home.path("local");
    let layout = home.path("layout");
    let tar = home.path("image.tar");
    let tmp = home.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let output = home
        .build(&[
            "--secret",
            &format!("id=tok,src={}", secret_file.display()),
            "--secret",
            "id=api,env=SECRET_API_VALUE",
            "-o",
            &format!("type=local,dest={}", local.display()),
            "-o",
            &format!("type=oci,dest={},tar=false", layout.display()),
            "-o",
            &format!("type=oci,dest={}", tar.display()),
            context.to_str().unwrap(),
        ])
        .env("SECRET_API_VALUE", &env_value)
        // The sandbox's scratch directories too are in the searched home.
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");

    // The steps saw the secrets, as files and as a variable.
    let read = |name: &str| std::fs::read_to_string(local.join(name)).unwrap();
    assert_eq!(read("tok.sha").trim(), file_sha);
    assert_eq!(read("tok.stat"), "400 0 0\n");
    assert_eq!(read("tok.write"), "read-only\n");
    assert_eq!(read("api.sha").trim(), env_sha);
    assert_eq!(read("api.file"), "no-file\n");
    assert_eq!(read("custom.stat"), "440 7 8\n");
    assert_eq!(read("custom.env"), "both\n");

    // The mount targets are in no layer.
    assert!(!local.join("run").exists());
    assert!(!local.join("opt").exists());
    for entry in layout_layer_entries(&layout).iter().flatten() {
        assert!(
            !entry.path.starts_with("run") && !entry.path.starts_with("opt"),
            "{entry:?}"
        );
    }

    // Neither the config nor the history holds them or their variable.
    let (_, config) = layout_image(&layout);
    let env = config["config"]["Env"].to_string();
    assert!(!env.contains("API_TOKEN") && !env.contains("TOK="), "{env}");
    let history = config["history"].to_string();
    assert!(history.contains("sha256sum /run/secrets/tok"), "{history}");
    assert!(
        !history.contains(&file_value) && !history.contains(&env_value),
        "{history}"
    );

    // No byte builder wrote holds either value: store (blobs, snapshots,
    // cache records, refs), the three outputs, its temporary files, stdout
    // and stderr.
    for value in [&file_value, &env_value] {
        let found = files_holding(home.dir.path(), value);
        assert!(found.is_empty(), "{value} found in {found:?}");
        let mut found = Vec::new();
        holders("stdout", &output.stdout, value.as_bytes(), &mut found);
        holders("stderr", &output.stderr, value.as_bytes(), &mut found);
        assert!(found.is_empty(), "{value} found in {found:?}");
    }
    // The search does look into the store: the step's hash is there.
    assert!(!files_holding(&home.path("store"), &file_sha).is_empty());
}

#[test]
fn a_new_secret_value_keeps_the_step_cached() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let secret_file = home.path("tok.txt");
    std::fs::write(&secret_file, random_value("first")).unwrap();
    let dockerfile = format!(
        "{BASE}RUN --mount=type=secret,id=tok,required wc -c < /run/secrets/tok > /length\n"
    );
    let context = home.context("ctx", &dockerfile);
    let secret = format!("id=tok,src={}", secret_file.display());
    let build = |iid: &str| {
        let iidfile = home.path(iid);
        let output = home
            .build(&[
                "--secret",
                &secret,
                "--iidfile",
                iidfile.to_str().unwrap(),
                context.to_str().unwrap(),
            ])
            // Same times in both builds: the image ID then says whether
            // the layer is the first build's.
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr_of(&output));
        (
            std::fs::read_to_string(iidfile).unwrap(),
            stderr_of(&output),
        )
    };
    let (first, _) = build("iid1");
    std::fs::write(&secret_file, random_value("second-and-longer")).unwrap();
    let (second, stderr) = build("iid2");
    assert_eq!(stderr.matches(" CACHED\n").count(), 3, "{stderr}");
    assert_eq!(first, second);
}

#[test]
fn a_missing_required_secret_fails_with_its_id_and_line() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = format!("{BASE}RUN --mount=type=secret,id=npmrc,required=true true\n");
    let context = home.context("ctx", &dockerfile);
    let output = home.build(&[context.to_str().unwrap()]).output().unwrap();
    let stderr = stderr_of(&output);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("Dockerfile:4"), "{stderr}");
    assert!(stderr.contains("secret npmrc: not found"), "{stderr}");
}

#[test]
fn a_cached_step_needs_no_secret_and_a_changed_one_does() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let secret_file = home.path("tok.txt");
    std::fs::write(&secret_file, random_value("tok")).unwrap();
    let step = |command: &str| {
        format!("{BASE}RUN --mount=type=secret,id=tok,required {command} /run/secrets/tok\n")
    };
    let context = home.context("ctx", &step("test -s"));
    let secret = format!("id=tok,src={}", secret_file.display());
    let first = home
        .build(&["--secret", &secret, context.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(first.status.success(), "{}", stderr_of(&first));

    // Without --secret: the step comes from the cache, as in BuildKit.
    let cached = home.build(&[context.to_str().unwrap()]).output().unwrap();
    let stderr = stderr_of(&cached);
    assert!(cached.status.success(), "{stderr}");
    assert_eq!(stderr.matches(" CACHED\n").count(), 3, "{stderr}");

    // A step that must run needs its required secret.
    std::fs::write(context.join("Dockerfile"), step("test -r")).unwrap();
    let changed = home.build(&[context.to_str().unwrap()]).output().unwrap();
    let stderr = stderr_of(&changed);
    assert!(!changed.status.success(), "{stderr}");
    assert!(stderr.contains("Dockerfile:4"), "{stderr}");
    assert!(stderr.contains("secret tok: not found"), "{stderr}");
}

#[test]
fn a_missing_optional_secret_is_left_out() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let dockerfile = format!(
        "{BASE}RUN --mount=type=secret,id=absent,env=ABSENT \
         test ! -e /run/secrets/absent && test -z \"${{ABSENT+set}}\" && echo ran > /ran\n"
    );
    let context = home.context("ctx", &dockerfile);
    let local = home.path("local");
    let output = home
        .build(&["-o", local.to_str().unwrap(), context.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(std::fs::read_to_string(local.join("ran")).unwrap(), "ran\n");
    assert!(!local.join("run").exists());
}

#[test]
fn a_secret_file_that_is_missing_is_refused_before_the_build() {
    let home = Home::new();
    let context = home.context("ctx", "FROM scratch\n");
    home.build(&[
        "--secret",
        "id=tok,src=/nonexistent/tok.txt",
        context.to_str().unwrap(),
    ])
    .assert()
    .failure()
    .stderr(predicates::str::contains(
        "--secret id=tok: failed to stat /nonexistent/tok.txt",
    ));
}
