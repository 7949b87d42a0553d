//! COPY as BuildKit does it (cases after BuildKit's `dockerfile_test.go`
//! copy tests; each expectation checked against BuildKit 0.8 with the same
//! Dockerfile and context): wildcards, directories copied by content,
//! destinations, `--chown`, `--chmod`, `--from`, symlinks, hard links,
//! empty directories, modes, JSON form and paths that leave the context.
//! Needs root; skipped otherwise.

mod support;

use std::os::unix::fs::PermissionsExt;
use support::build::{Home, can_build};
use support::built::{BUSYBOX, Kind, write_files};

#[test]
fn wildcards_pick_files_by_pattern() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "wildcards",
        &format!(
            "{BUSYBOX}COPY *.txt /all/\nCOPY sub/f?.go /go/\nCOPY [ab].md /md/\nCOPY sub/*/deep.txt /deep/\n"
        ),
    );
    write_files(
        &context,
        &[
            ("a.txt", "a"),
            ("b.txt", "b"),
            ("c.log", "c"),
            ("sub/f1.go", "1"),
            ("sub/f2.go", "2"),
            ("sub/f10.go", "10"),
            ("a.md", "am"),
            ("c.md", "cm"),
            ("sub/x/deep.txt", "dx"),
            ("sub/y/deep.txt", "dy"),
        ],
    );
    let image = home.built(&context, &[]);
    assert_eq!(image.list("/all"), ["a.txt", "b.txt"]);
    assert_eq!(image.list("/go"), ["f1.go", "f2.go"]);
    assert_eq!(image.list("/md"), ["a.md"]);
    // Two matches with one name: the last one wins.
    assert_eq!(image.list("/deep"), ["deep.txt"]);
    assert_eq!(image.text("/deep/deep.txt"), "dy");
    assert_eq!(image.owner("/all/a.txt"), (0, 0));
    assert_eq!(image.mode("/all"), 0o755);
}

#[test]
fn a_wildcard_matching_nothing_copies_nothing() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("nomatch", &format!("{BUSYBOX}COPY nomatch* /dest/\n"));
    write_files(&context, &[("a.txt", "a")]);
    let image = home.built(&context, &[]);
    assert!(!image.has("/dest"), "{:?}", image.list("/"));
}

#[test]
fn a_directory_source_copies_its_contents() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "dir-contents",
        &format!("{BUSYBOX}COPY dir /dest/\nCOPY dir /dest2\nCOPY dir/ /dest3/\n"),
    );
    write_files(&context, &[("dir/a", "a"), ("dir/sub/b", "b")]);
    let image = home.built(&context, &[]);
    for dest in ["/dest", "/dest2", "/dest3"] {
        assert_eq!(image.list(dest), ["a", "sub"], "{dest}");
        assert_eq!(image.text(&format!("{dest}/sub/b")), "b");
        assert_eq!(image.mode(&format!("{dest}/sub")), 0o755);
    }
}

#[test]
fn the_destination_names_a_file_or_with_a_slash_a_directory() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "file-dest",
        &format!("{BUSYBOX}COPY a /b\nCOPY a /dir/\nCOPY a /newdir/sub/c\n"),
    );
    write_files(&context, &[("a", "a")]);
    let image = home.built(&context, &[]);
    assert_eq!(image.text("/b"), "a");
    assert_eq!(image.text("/dir/a"), "a");
    assert_eq!(image.text("/newdir/sub/c"), "a");
    assert_eq!(image.mode("/newdir/sub"), 0o755);
}

#[test]
fn chown_owns_every_copied_file_and_directory() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "chown",
        &format!("{BUSYBOX}COPY --chown=1000:1000 dir /owned/\nCOPY --chown=7 a /seven\n"),
    );
    write_files(&context, &[("dir/a", "a"), ("dir/sub/b", "b"), ("a", "a")]);
    let image = home.built(&context, &[]);
    for path in ["/owned", "/owned/a", "/owned/sub", "/owned/sub/b"] {
        assert_eq!(image.owner(path), (1000, 1000), "{path}");
    }
    assert_eq!(image.owner("/seven"), (7, 7));
}

#[test]
fn chmod_sets_the_mode_of_files_and_directories_copied() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "chmod",
        &format!("{BUSYBOX}COPY --chmod=0755 a /a755\nCOPY --chmod=600 dir /dir600/\n"),
    );
    write_files(&context, &[("a", "a"), ("dir/b", "b"), ("dir/sub/c", "c")]);
    let image = home.built(&context, &[]);
    assert_eq!(image.mode("/a755"), 0o755);
    assert_eq!(image.mode("/dir600/b"), 0o600);
    assert_eq!(image.mode("/dir600/sub"), 0o600);
    assert_eq!(image.mode("/dir600/sub/c"), 0o600);
    assert_eq!(image.owner("/dir600/sub/c"), (0, 0));
}

#[test]
fn copy_from_a_stage_by_name_index_or_name_in_other_case() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "from-stage",
        &format!(
            "{}RUN mkdir -p /out/sub && echo built > /out/sub/f && chmod 700 /out/sub && chown 5:6 /out/sub/f\n\
             FROM scratch\n\
             COPY --from=build /out /copied/\n\
             COPY --from=0 /out/sub/f /index-f\n\
             COPY --from=BUILD /out/sub /case/\n",
            BUSYBOX.replace("FROM scratch", "FROM scratch AS build")
        ),
    );
    let image = home.built(&context, &[]);
    assert_eq!(image.list("/"), ["case", "copied", "index-f"]);
    assert_eq!(image.mode("/copied/sub"), 0o700);
    assert_eq!(image.owner("/copied/sub/f"), (5, 6));
    assert_eq!(image.text("/copied/sub/f"), "built\n");
    assert_eq!(image.owner("/index-f"), (5, 6));
    assert_eq!(image.text("/case/f"), "built\n");
}

#[test]
fn a_symlink_source_is_followed_and_links_inside_directories_are_kept() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "symlinks",
        &format!("{BUSYBOX}COPY link /top-link\nCOPY dir /dir/\nCOPY dirlink /dirlink-copied/\n"),
    );
    write_files(&context, &[("target.txt", "target"), ("dir/real", "real")]);
    std::os::unix::fs::symlink("target.txt", context.join("link")).unwrap();
    std::os::unix::fs::symlink("real", context.join("dir/rel-link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", context.join("dir/abs-link")).unwrap();
    std::os::unix::fs::symlink("dir", context.join("dirlink")).unwrap();
    let image = home.built(&context, &[]);
    assert_eq!(image.text("/top-link"), "target");
    for dir in ["/dir", "/dirlink-copied"] {
        assert_eq!(image.link(&format!("{dir}/rel-link")), "real");
        assert_eq!(image.link(&format!("{dir}/abs-link")), "/etc/passwd");
        assert_eq!(image.text(&format!("{dir}/real")), "real");
    }
}

#[test]
fn empty_directories_are_copied() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "empty-dirs",
        &format!("{BUSYBOX}COPY empty /e/\nCOPY tree /t/\n"),
    );
    std::fs::create_dir_all(context.join("empty")).unwrap();
    std::fs::create_dir_all(context.join("tree/emptysub")).unwrap();
    write_files(&context, &[("tree/f", "f")]);
    let image = home.built(&context, &[]);
    assert_eq!(image.node("/e").kind, Kind::Dir);
    assert!(image.list("/e").is_empty());
    assert_eq!(image.list("/t"), ["emptysub", "f"]);
    assert_eq!(image.mode("/t/emptysub"), 0o755);
}

#[test]
fn hard_links_in_the_context_stay_hard_links() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("hardlinks", &format!("{BUSYBOX}COPY dir /h/\n"));
    write_files(&context, &[("dir/a", "same")]);
    std::fs::hard_link(context.join("dir/a"), context.join("dir/b")).unwrap();
    let image = home.built(&context, &[]);
    assert_eq!(image.text("/h/a"), "same");
    assert_eq!(image.node("/h/b").kind, Kind::Hardlink("h/a".into()));
}

#[test]
fn relative_destinations_are_under_the_workdir() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "workdir-rel",
        &format!("{BUSYBOX}WORKDIR /w\nCOPY a rel/\nCOPY a ./here\nCOPY a .\n"),
    );
    write_files(&context, &[("a", "a")]);
    let image = home.built(&context, &[]);
    assert_eq!(image.list("/w"), ["a", "here", "rel"]);
    assert_eq!(image.text("/w/rel/a"), "a");
    assert_eq!(image.runtime()["WorkingDir"], "/w");
}

#[test]
fn modes_of_context_files_are_kept_and_owners_are_root() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("modes", &format!("{BUSYBOX}COPY . /ctx/\n"));
    write_files(&context, &[("x.sh", "x"), ("p", "p"), ("d/f", "f")]);
    let chmod = |path: &str, mode: u32| {
        std::fs::set_permissions(context.join(path), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    chmod("x.sh", 0o755);
    chmod("p", 0o600);
    chmod("d", 0o700);
    let image = home.built(&context, &[]);
    assert_eq!(
        image.list("/ctx"),
        ["Dockerfile", "busybox", "d", "p", "x.sh"]
    );
    assert_eq!(image.mode("/ctx/x.sh"), 0o755);
    assert_eq!(image.mode("/ctx/p"), 0o600);
    assert_eq!(image.mode("/ctx/d"), 0o700);
    assert_eq!(image.mode("/ctx/d/f"), 0o644);
    assert_eq!(image.owner("/ctx/d/f"), (0, 0));
}

#[test]
fn the_json_form_takes_spaces_and_destinations_expand_env() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "json",
        &format!(
            "{BUSYBOX}COPY [\"a b.txt\", \"/dest dir/\"]\nENV D=/env-dest\nCOPY a $D/\nCOPY a ${{D}}2/x\n"
        ),
    );
    write_files(&context, &[("a b.txt", "ab"), ("a", "a")]);
    let image = home.built(&context, &[]);
    assert_eq!(image.text("/dest dir/a b.txt"), "ab");
    assert_eq!(image.text("/env-dest/a"), "a");
    assert_eq!(image.text("/env-dest2/x"), "a");
}

#[test]
fn sources_are_paths_inside_the_context() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("dotdot", &format!("{BUSYBOX}COPY ../a /up\nCOPY /a /abs\n"));
    write_files(&context, &[("a", "a")]);
    std::fs::write(home.path("a"), "outside").unwrap();
    let image = home.built(&context, &[]);
    assert_eq!(image.text("/up"), "a");
    assert_eq!(image.text("/abs"), "a");
}

#[test]
fn copy_from_a_stage_with_chown() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "from-chown",
        "FROM scratch AS src\nCOPY a /d/a\nFROM scratch\nCOPY --from=src --chown=4:5 /d /d2/\n",
    );
    write_files(&context, &[("a", "a")]);
    let image = home.built(&context, &[]);
    assert_eq!(image.owner("/d2"), (4, 5));
    assert_eq!(image.owner("/d2/a"), (4, 5));
    assert_eq!(image.text("/d2/a"), "a");
}

#[test]
fn a_destination_through_a_symlinked_directory_lands_in_its_target() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "over-link",
        &format!("{BUSYBOX}RUN mkdir /real && ln -s /real /link\nCOPY a /link/\n"),
    );
    write_files(&context, &[("a", "a")]);
    let image = home.built(&context, &[]);
    assert_eq!(image.link("/link"), "/real");
    assert_eq!(image.text("/real/a"), "a");
}

#[test]
fn copy_over_a_file_replaces_its_content_mode_and_owner() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "replace",
        &format!("{BUSYBOX}RUN echo old > /f && chmod 600 /f && chown 3:3 /f\nCOPY f /f\n"),
    );
    write_files(&context, &[("f", "new")]);
    let image = home.built(&context, &[]);
    assert_eq!(image.text("/f"), "new");
    assert_eq!(image.mode("/f"), 0o644);
    assert_eq!(image.owner("/f"), (0, 0));
}

#[test]
fn relative_sources_of_copy_from_are_under_the_stage_root_not_its_workdir() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "from-relative",
        &format!(
            "{}WORKDIR /w\nRUN echo inw > /w/f && echo atroot > /f\nFROM scratch\nCOPY --from=src f /got\n",
            BUSYBOX.replace("FROM scratch", "FROM scratch AS src")
        ),
    );
    let image = home.built(&context, &[]);
    assert_eq!(image.list("/"), ["got"]);
    assert_eq!(image.text("/got"), "atroot\n");
}

#[test]
fn chown_expands_args_and_env() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "chown-args",
        &format!(
            "{BUSYBOX}ARG U=12\nARG G=34\nENV E=56\nCOPY --chown=$U:$G a /a\nCOPY --chown=${{E}} a /e\n"
        ),
    );
    write_files(&context, &[("a", "a")]);
    let image = home.built(&context, &[]);
    assert_eq!(image.owner("/a"), (12, 34));
    assert_eq!(image.owner("/e"), (56, 56));
}

/// `COPY --parents` matches each source as a `.dockerignore`-style pattern
/// below its pivot, as BuildKit's frontend does (the source becomes an
/// include pattern; BuildKit 0.8 has no `--parents`, so this follows the
/// frontend and fsutil rather than a 0.8 build): `**` spans any number of
/// directories, and what matches is copied as it is, so a symlink stays a
/// symlink.
#[test]
fn parents_match_the_source_as_a_pattern() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "parents-pattern",
        &format!(
            "{BUSYBOX}COPY --parents x/**/*.js /star/\nCOPY --parents ./x/./**/c.js /pivot/\nCOPY --parents x/lnk.js /one/\n"
        ),
    );
    write_files(
        &context,
        &[
            ("x/a.js", "a"),
            ("x/a.txt", "t"),
            ("x/y/b.js", "b"),
            ("x/y/z/c.js", "c"),
            ("x/y/z/d.txt", "d"),
        ],
    );
    std::fs::set_permissions(context.join("x"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink("a.js", context.join("x/lnk.js")).unwrap();
    let image = home.built(&context, &[]);
    assert_eq!(image.list("/star/x"), ["a.js", "lnk.js", "y"]);
    assert_eq!(image.list("/star/x/y"), ["b.js", "z"]);
    assert_eq!(image.list("/star/x/y/z"), ["c.js"]);
    assert_eq!(image.text("/star/x/y/z/c.js"), "c");
    assert_eq!(image.link("/star/x/lnk.js"), "a.js");
    // The kept parent comes with its source mode.
    assert_eq!(image.mode("/star/x"), 0o700);
    assert_eq!(image.list("/pivot"), ["y"]);
    assert_eq!(image.list("/pivot/y/z"), ["c.js"]);
    assert_eq!(image.link("/one/x/lnk.js"), "a.js");
}
