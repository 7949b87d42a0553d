//! USER and HOME as BuildKit gives them (cases after BuildKit's
//! `dockerfile_test.go` user tests, each expectation checked against
//! BuildKit 0.8 with the same Dockerfile): the process's gid, supplementary
//! groups and HOME in RUN steps, the owners of what it makes, and that COPY
//! ignores USER. Needs root; skipped otherwise.

mod support;

use support::build::{Home, can_build};
use support::built::BUSYBOX;

/// Accounts: root, and `x` (77, primary group 88 which /etc/group does not
/// list) in `g1` (501) and `g2` (502); `/out` for every user to write in.
const ACCOUNTS: &str = "RUN mkdir -p /etc /root /home/x /out && chmod 777 /out \
    && printf 'root:x:0:0:root:/root:/bin/sh\\nx:x:77:88:x:/home/x:/bin/sh\\n' > /etc/passwd \
    && printf 'root:x:0:\\ng1:x:501:x\\ng2:x:502:y,x\\n' > /etc/group\n";

fn dockerfile(steps: &str) -> String {
    format!("{BUSYBOX}{ACCOUNTS}{steps}")
}

#[test]
fn a_uid_without_a_passwd_line_runs_in_group_0_with_home_slash() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "uid",
        &dockerfile(
            "USER 123\n\
             RUN echo \"$HOME\" > /out/home && id -G > /out/groups && touch /out/made\n\
             USER 123:5\n\
             RUN touch /out/made-5\n",
        ),
    );
    let image = home.built(&context, &[]);
    assert_eq!(image.owner("/out/made"), (123, 0));
    assert_eq!(image.owner("/out/made-5"), (123, 5));
    assert_eq!(image.text("/out/groups"), "0\n");
    assert_eq!(image.text("/out/home"), "/\n");
    assert_eq!(image.runtime()["User"], "123:5");
}

#[test]
fn home_comes_from_the_passwd_line_of_the_uid_and_stays_out_of_the_config() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "home",
        &dockerfile(
            "RUN echo \"$HOME\" > /out/root && cd ~ && pwd > /out/root-tilde\n\
             USER x\n\
             RUN echo \"$HOME\" > /out/x\n\
             USER 77\n\
             RUN echo \"$HOME\" > /out/77\n",
        ),
    );
    let image = home.built(&context, &[]);
    assert_eq!(image.text("/out/root"), "/root\n");
    assert_eq!(image.text("/out/root-tilde"), "/root\n");
    assert_eq!(image.text("/out/x"), "/home/x\n");
    assert_eq!(image.text("/out/77"), "/home/x\n");
    assert_eq!(image.env("HOME"), None, "{}", image.runtime());
}

#[test]
fn env_home_wins_over_the_passwd_home() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "env-home",
        &dockerfile("ENV HOME=/custom\nUSER x\nRUN echo \"$HOME\" > /out/home\n"),
    );
    let image = home.built(&context, &[]);
    assert_eq!(image.text("/out/home"), "/custom\n");
    assert_eq!(image.env("HOME").as_deref(), Some("/custom"));
}

#[test]
fn home_is_slash_without_any_passwd_file() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "no-passwd",
        &format!("{BUSYBOX}RUN echo \"$HOME\" > /home\n"),
    );
    let image = home.built(&context, &[]);
    assert_eq!(image.text("/home"), "/\n");
}

#[test]
fn a_named_user_gets_its_primary_and_supplementary_groups() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "groups",
        &dockerfile(
            "USER x\n\
             RUN id -G > /out/x && touch /out/by-x\n\
             USER 77\n\
             RUN id -G > /out/77\n\
             USER x:g1\n\
             RUN id -G > /out/x-g1 && touch /out/by-x-g1\n",
        ),
    );
    let image = home.built(&context, &[]);
    assert_eq!(image.text("/out/x"), "88 501 502\n");
    assert_eq!(image.text("/out/77"), "88 501 502\n");
    assert_eq!(image.owner("/out/by-x"), (77, 88));
    // A group given with the user: that group alone.
    assert_eq!(image.text("/out/x-g1"), "501\n");
    assert_eq!(image.owner("/out/by-x-g1"), (77, 501));
}

#[test]
fn copy_ignores_user_and_chown_without_a_group_uses_the_users() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "copy-owner",
        &dockerfile(
            "USER 123\n\
             COPY a /copied\n\
             COPY --chown=123 a /copied-123\n\
             COPY --chown=x a /copied-x\n\
             COPY --chown=x:502 a /copied-x-502\n\
             COPY --chown=4242:g2 a /copied-4242-g2\n",
        ),
    );
    std::fs::write(context.join("a"), "a").unwrap();
    let image = home.built(&context, &[]);
    assert_eq!(image.owner("/copied"), (0, 0));
    assert_eq!(image.owner("/copied-123"), (123, 123));
    assert_eq!(image.owner("/copied-x"), (77, 88));
    assert_eq!(image.owner("/copied-x-502"), (77, 502));
    assert_eq!(image.owner("/copied-4242-g2"), (4242, 502));
}

#[test]
fn an_unknown_user_name_fails_the_run_step() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("unknown", &dockerfile("USER nobody\nRUN true\n"));
    let stderr = home.build_fails(&context, &[]);
    assert!(stderr.contains("nobody"), "{stderr}");
    assert!(stderr.contains("/etc/passwd"), "{stderr}");
}

#[test]
fn an_empty_home_field_gives_an_empty_home() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "empty-home",
        &format!(
            "{BUSYBOX}RUN mkdir -p /etc /out && chmod 777 /out \
             && echo \"e:x:300:300:::/bin/sh\" > /etc/passwd && echo \"e:x:300:\" > /etc/group\n\
             USER e\nRUN env | grep \"^HOME\" > /out/env\n"
        ),
    );
    let image = home.built(&context, &[]);
    assert_eq!(image.text("/out/env"), "HOME=\n");
    assert_eq!(image.owner("/out/env"), (300, 300));
}
