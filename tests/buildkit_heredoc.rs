//! Here-documents (Dockerfile 1.4 syntax; cases after BuildKit's
//! `dockerfile_heredoc_test.go`, expectations from the Dockerfile reference
//! since the BuildKit here predates them): a RUN script, a here-document
//! as a command's input, and COPY of inline files with variables expanded
//! unless the delimiter is quoted. Needs root; skipped otherwise.

mod support;

use support::build::{Home, can_build};
use support::built::BUSYBOX;

#[test]
fn run_and_copy_take_here_documents() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "heredoc",
        &format!(
            "{BUSYBOX}ENV NAME=world\n\
             RUN <<EOF\necho line1 > /h1\necho line2 >> /h1\nEOF\n\
             RUN cat <<EOT > /h2\nx\nEOT\n\
             COPY <<EOF /copied.txt\nhello $NAME\nEOF\n\
             COPY <<\"EOF\" /quoted.txt\nhello $NAME\nEOF\n"
        ),
    );
    let image = home.built(&context, &[]);
    assert_eq!(image.text("/h1"), "line1\nline2\n");
    assert_eq!(image.text("/h2"), "x\n");
    assert_eq!(image.text("/copied.txt"), "hello world\n");
    assert_eq!(image.text("/quoted.txt"), "hello $NAME\n");
    assert_eq!(image.owner("/copied.txt"), (0, 0));
}
