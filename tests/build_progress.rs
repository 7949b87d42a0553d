//! What `builder build` shows while it works, per `--progress` mode: the
//! plain and rawjson output of a small build, cold then fully cached, as
//! snapshots (digests, times and paths redacted); the live tty view in a
//! pseudo-terminal, and `auto` choosing between tty and plain; a step's
//! escape sequences and control characters reaching no terminal through
//! plain progress or the failure report (rawjson keeps them JSON-escaped); `-q`
//! printing nothing but the image ID; pull and push in rawjson, tty and
//! quiet. Builds need root and are skipped otherwise.

mod support;

use std::io::{Read as _, Write as _};
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use support::build::{Home, can_build};

/// One stage, steps in sequence (step numbers never depend on timing):
/// output on stdout ending in a partial line, then on stderr.
const SEQUENTIAL: &str = r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "echo one; echo two; printf 'no newline'"]
WORKDIR /srv
RUN ["/bin/busybox", "sh", "-c", "echo to stderr >&2"]
"#;

/// `builder build --progress MODE -t progress:1 CONTEXT` in `home`.
fn build(home: &Home, mode: &str, context: &Path) -> Output {
    support::cli::builder(home.dir.path())
        .env_remove("SOURCE_DATE_EPOCH")
        .args(["build", "--progress", mode, "-t", "progress:1"])
        .arg(context)
        .output()
        .expect("builder runs")
}

/// What a build wrote on stderr, which must have succeeded.
fn progress_of(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    stderr
}

/// Snapshot settings hiding what differs between runs.
fn redacted(home: &Home) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(
        &regex::escape(&home.dir.path().display().to_string()),
        "[HOME]",
    );
    settings.add_filter(r"sha256:[0-9a-f]{64}", "sha256:[DIGEST]");
    settings.add_filter(r"(?m)^(#\d+) \d+\.\d{3} ", "$1 [ELAPSED] ");
    settings.add_filter(r"DONE \d+\.\ds", "DONE [ELAPSED]");
    settings.add_filter(r"built in \d+\.\ds", "built in [ELAPSED]");
    settings.add_filter(r#""time":"[^"]+""#, r#""time":"[TIME]""#);
    settings.add_filter(r#""elapsed_ms":\d+"#, r#""elapsed_ms":"[MS]""#);
    settings
}

/// `text` without its extraction lines, whose count and rates depend on
/// time (plain `extracting`/`extracted`, rawjson `work.*` of kind extract).
fn without_extraction(text: &str) -> String {
    let plain = regex::Regex::new(r"^#\d+ extract(ing|ed) ").unwrap();
    text.lines()
        .filter(|l| !plain.is_match(l) && !l.contains(r#""kind":"extract""#))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn plain_progress_cold_then_cached() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("ctx", SEQUENTIAL);
    let cold = progress_of(&build(&home, "plain", &context));
    let cached = progress_of(&build(&home, "plain", &context));
    assert!(!cold.contains('\u{1b}'), "no escape sequences: {cold:?}");
    // The COPY's layer is unpacked when the RUN after it reads the files.
    assert!(
        cold.lines().any(|l| l.starts_with("#2 extracted ")),
        "{cold}"
    );
    let cold = without_extraction(&cold);
    redacted(&home).bind(|| {
        insta::assert_snapshot!("plain_cold", cold);
        insta::assert_snapshot!("plain_cached", cached);
    });
}

/// A step printing what would drive a terminal: an OSC 52 clipboard
/// write, a window title, colours, a cursor move, BEL, backspace, a C1 CSI
/// and DEL, among plain text; then failing, so the report shows it too.
const ESCAPES: &str = r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN printf 'a\033]52;c;cm0gLXJmIH4K\007b\033]0;owned\033\\c\033[31md\033[0m\033[2Ae\007\010f\302\233g\177h\tend\n'; exit 3
"#;

#[test]
fn a_steps_escape_sequences_reach_no_terminal() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("ctx", ESCAPES);
    let plain = build(&home, "plain", &context);
    assert_eq!(plain.status.code(), Some(1));
    let text = String::from_utf8(plain.stderr).unwrap();
    let controls: Vec<char> = text
        .chars()
        .filter(|c| c.is_control() && !matches!(c, '\n' | '\t'))
        .collect();
    assert!(controls.is_empty(), "{controls:?} in {text:?}");
    // The text stays: in the progress line with its tab (as BuildKit
    // prints it), in the report's fixed layout with a space.
    let progress: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with('#') && line.ends_with(" abcdefgh\tend"))
        .collect();
    let report: Vec<&str> = text
        .lines()
        .filter(|line| line.trim() == "abcdefgh end")
        .collect();
    assert!(!progress.is_empty() && !report.is_empty(), "{text}");

    let json = build(&home, "rawjson", &context);
    let text = String::from_utf8(json.stderr).unwrap();
    let logged: Vec<String> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|record| record["type"] == "step.log")
        .map(|record| record["line"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        logged.iter().any(|line| line.contains("\u{1b}]52;c;")),
        "rawjson keeps the step's bytes, escaped: {logged:?}"
    );
    assert!(!text.contains('\u{1b}'), "{text:?}");
}

#[test]
fn rawjson_progress_cold_then_cached() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("ctx", SEQUENTIAL);
    let cold = progress_of(&build(&home, "rawjson", &context));
    let cached = progress_of(&build(&home, "rawjson", &context));
    assert!(
        cold.lines()
            .any(|l| l.contains(r#""type":"work.finished","id":2,"kind":"extract""#)),
        "the COPY's layer is unpacked for the RUN after it: {cold}"
    );
    let cold = without_extraction(&cold);
    for line in cold.lines().chain(cached.lines()) {
        let record: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert_eq!(record["v"], 1, "{line}");
    }
    redacted(&home).bind(|| {
        insta::assert_snapshot!("rawjson_cold", cold);
        insta::assert_snapshot!("rawjson_cached", cached);
    });
}

#[test]
fn quiet_prints_only_the_image_id() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("ctx", SEQUENTIAL);
    let iidfile = home.path("iid");
    let output = support::cli::builder(home.dir.path())
        .args(["build", "-q", "--iidfile"])
        .arg(&iidfile)
        .arg(&context)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let id = std::fs::read_to_string(&iidfile).unwrap();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), format!("{id}\n"));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    // `--progress=quiet` shows nothing either, and leaves stdout alone.
    let output = build(&home, "quiet", &context);
    assert!(output.status.success(), "{output:?}");
    assert_eq!((output.stdout.len(), output.stderr.len()), (0, 0));
}

#[test]
fn pull_and_push_take_the_same_progress_modes() {
    let Some(registry) = support::registry::Registry::start() else {
        return;
    };
    let image = support::image::BaseImage::busybox(&registry);
    let home = tempfile::tempdir().unwrap();
    let output = support::cli::builder(home.path())
        .args(["pull", "--progress", "rawjson", &image.reference])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stderr)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let layer = |kind: &str| {
        records.iter().any(|r| {
            r["type"] == kind && r["digest"] == image.layer.as_str() && r["direction"] == "pull"
        })
    };
    assert!(
        layer("blob.started") && layer("blob.finished"),
        "{records:#?}"
    );
    assert!(
        records.iter().all(|r| r["v"] == 1 && r["time"].is_string()),
        "{records:#?}"
    );

    // On a terminal the layer's bar collapses into one line with its size.
    let fresh = tempfile::tempdir().unwrap();
    let mut pull = support::cli::process(fresh.path());
    pull.args(["pull", "--progress", "tty", &image.reference]);
    let rows = screen_rows(&OnTerminal::spawn(pull, COLUMNS).finish(), COLUMNS);
    let layer_line = format!(
        r"^{} downloaded +[0-9.]+ (B|KiB|MiB)$",
        &image.layer.trim_start_matches("sha256:")[..12]
    );
    assert!(shows(&rows, &layer_line), "{rows:#?}");
    // A pull is no build: no `[+] Building` header.
    assert!(!shows(&rows, r"^\[\+\]"), "{rows:#?}");

    let copy = format!("{}/copy:quiet", registry.host());
    let output = support::cli::builder(home.path())
        .args(["push", "--progress", "quiet", &image.reference, &copy])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(&format!("Digest: {}", image.digest)),
        "{output:?}"
    );
}

#[test]
fn plain_progress_from_a_stored_image_is_done_and_a_push_is_said_once() {
    if !can_build() {
        return;
    }
    let Some(registry) = support::registry::Registry::start() else {
        return;
    };
    let base = support::image::BaseImage::busybox(&registry);
    let home = Home::new();
    let context = home.context(
        "from-image",
        &format!("FROM {}\nRUN echo built > /built\n", base.reference),
    );
    let target = format!("{}/progress:push", registry.host());
    let build = || {
        support::cli::builder(home.dir.path())
            .env_remove("SOURCE_DATE_EPOCH")
            .args(["build", "--progress", "plain", "-t", &target, "--push"])
            .arg(&context)
            .output()
            .expect("builder runs")
    };
    // Blob lines come in whatever order the transfers end, how many
    // `extracting` lines a layer gets depends on time, and so does where
    // the FROM's `extracted` comes (its layer is unpacked as it downloads,
    // so before or after `pulled …`): left out, the last checked below.
    let steps = |output: &str| -> String {
        let blob = regex::Regex::new(r"^[0-9a-f]{12} ").unwrap();
        let under_way = regex::Regex::new(r"^#\d+ (extracting|extracted|compressing) ").unwrap();
        output
            .lines()
            .filter(|line| !blob.is_match(line) && !under_way.is_match(line))
            .map(|line| format!("{line}\n"))
            .collect()
    };
    let pulled_log = progress_of(&build());
    let unpacked = format!("#1 extracted {} ", &base.layer["sha256:".len()..][..12]);
    assert!(
        pulled_log.lines().any(|l| l.starts_with(&unpacked)),
        "the FROM unpacks its layer: {pulled_log}"
    );
    let pulled = steps(&pulled_log);
    let stored = steps(&progress_of(&build()));
    for output in [&pulled, &stored] {
        let pushed = output.lines().filter(|l| l.starts_with("pushed "));
        assert_eq!(pushed.count(), 1, "{output}");
    }
    let mut settings = redacted(&home);
    settings.add_filter(&regex::escape(&registry.host()), "[REGISTRY]");
    settings.add_filter(r"\d+(\.\d+)? (B|KiB|MiB)", "[SIZE]");
    settings.add_filter(r" in \d+\.\ds ", " in [ELAPSED] ");
    settings.bind(|| {
        insta::assert_snapshot!("plain_from_image_pulled_and_pushed", pulled);
        insta::assert_snapshot!("plain_from_image_stored_and_pushed", stored);
    });
}

/// The terminal the tty tests draw on: columns and rows (enough that
/// nothing scrolls away).
const COLUMNS: u16 = 60;
const ROWS: u16 = 200;

/// How long a test waits for something to be drawn before it fails.
const PATIENCE: Duration = Duration::from_secs(120);

/// A long command and long output lines, which must be cut to the
/// terminal's width; the step waits (in `wget`) until the test answers on
/// `127.0.0.1:$PORT` (the build has `--network host` for it), so the test
/// sees it running.
const WAITING: &str = r#"FROM scratch
COPY busybox /bin/busybox
ARG PORT
RUN ["/bin/busybox", "sh", "-c", "echo one; echo two; echo three-with-a-line-much-longer-than-the-terminal-is-wide-xxxxxxxxxxxxxxxxxx; /bin/busybox wget -q -O /dev/null http://127.0.0.1:$PORT/ && echo four-and-more-than-sixty-columns-wide-to-be-cut-yyyyyyyyyyyyyyyyyyyy"]
"#;

/// What a pseudo-terminal's master side has read so far.
#[derive(Default)]
struct Screen {
    seen: Mutex<(Vec<u8>, bool)>,
    changed: Condvar,
}

impl Screen {
    fn bytes(&self) -> Vec<u8> {
        self.seen.lock().unwrap().0.clone()
    }

    /// Blocks until `done` holds for what was drawn so far and whether the
    /// terminal was closed; panics after [`PATIENCE`] (naming `what`)
    /// rather than hanging the suite.
    fn wait_until(&self, what: &str, done: impl Fn(&[u8], bool) -> bool) {
        let mut seen = self.seen.lock().unwrap();
        loop {
            if done(&seen.0, seen.1) {
                return;
            }
            let (guard, timeout) = self.changed.wait_timeout(seen, PATIENCE).unwrap();
            assert!(
                !timeout.timed_out(),
                "{what} never happened; drawn: {:?}",
                String::from_utf8_lossy(&guard.0)
            );
            seen = guard;
        }
    }

    /// Blocks until `needle` has been drawn.
    fn wait_for(&self, needle: &str) {
        self.wait_until(&format!("{needle:?} drawn"), |seen, _| {
            String::from_utf8_lossy(seen).contains(needle)
        });
    }
}

/// A running `builder` whose stderr is a pseudo-terminal `columns` wide.
struct OnTerminal {
    child: std::process::Child,
    screen: Arc<Screen>,
    reader: std::thread::JoinHandle<()>,
    /// The master side, to type on.
    keyboard: std::fs::File,
    columns: u16,
}

impl OnTerminal {
    /// Runs `command` on a terminal `columns` wide (`NO_COLOR` unset
    /// unless the command sets it).
    fn spawn(mut command: std::process::Command, columns: u16) -> OnTerminal {
        let (master, slave) = open_pty(columns);
        if !command.get_envs().any(|(name, _)| name == "NO_COLOR") {
            command.env_remove("NO_COLOR");
        }
        // The terminal is the child's controlling one (in a session of its
        // own), so a ^C typed on it interrupts the child's process group,
        // as in a shell.
        // SAFETY: setsid and ioctl are async-signal-safe; fd 2 is the
        // slave side once the child runs.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(2, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .env("TERM", "xterm-256color")
            .env_remove("SOURCE_DATE_EPOCH")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(slave))
            .spawn()
            .expect("builder runs");
        // The command held the only other copy of the slave side: once the
        // child is gone, reads on the master end (EIO).
        drop(command);
        let screen = Arc::new(Screen::default());
        let keyboard = std::fs::File::from(master.try_clone().unwrap());
        let reader = {
            let screen = Arc::clone(&screen);
            let mut master = std::fs::File::from(master);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = master.read(&mut buf) {
                    screen.seen.lock().unwrap().0.extend_from_slice(&buf[..n]);
                    screen.changed.notify_all();
                }
                screen.seen.lock().unwrap().1 = true;
                screen.changed.notify_all();
            })
        };
        OnTerminal {
            child,
            screen,
            reader,
            keyboard,
            columns,
        }
    }

    /// What is on screen now.
    fn rows(&self) -> Vec<String> {
        screen_rows(&self.screen.bytes(), self.columns)
    }

    /// Waits (at most [`PATIENCE`]) for the build to end; returns how it
    /// ended and all it drew.
    fn end(mut self) -> (std::process::ExitStatus, Vec<u8>) {
        self.screen
            .wait_until("the build's end", |_, closed| closed);
        let status = self.child.wait().unwrap();
        self.reader.join().unwrap();
        (status, self.screen.bytes())
    }

    /// Waits for the build to succeed; returns all it drew.
    fn finish(self) -> Vec<u8> {
        let (status, drawn) = self.end();
        assert!(status.success(), "{}", String::from_utf8_lossy(&drawn));
        drawn
    }
}

/// A pseudo-terminal (master, slave) of `columns` × `ROWS`.
fn open_pty(columns: u16) -> (OwnedFd, OwnedFd) {
    let size = libc::winsize {
        ws_row: ROWS,
        ws_col: columns,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two new descriptors, which we then own; the
    // name and termios pointers may be null.
    let ret = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(ret, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and belong to nobody else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// The terminal `columns` × `ROWS` that has drawn `drawn`.
fn terminal(drawn: &[u8], columns: u16) -> vt100::Parser {
    let size = |n| std::num::NonZeroU16::new(n).expect("a terminal size");
    let mut terminal = vt100::Parser::new(size(ROWS), size(columns), 0);
    terminal.process(drawn);
    terminal
}

/// The rows a terminal `columns` × `ROWS` shows once it has drawn
/// `drawn` (right-trimmed, blank ones left out).
fn screen_rows(drawn: &[u8], columns: u16) -> Vec<String> {
    terminal(drawn, columns)
        .screen()
        .rows(0, columns)
        .map(|row| row.trim_end().to_owned())
        .filter(|row| !row.is_empty())
        .collect()
}

/// Whether some row matches `pattern`.
fn shows(rows: &[String], pattern: &str) -> bool {
    let pattern = regex::Regex::new(pattern).unwrap();
    rows.iter().any(|row| pattern.is_match(row))
}

/// Whether `drawn` moves the cursor up or clears lines, as a live view
/// does to redraw itself.
fn has_cursor_codes(drawn: &[u8]) -> bool {
    regex::bytes::Regex::new(r"\x1b\[[0-9]*[AK]")
        .unwrap()
        .is_match(drawn)
}

/// Whether `drawn` sets colours (SGR sequences).
fn has_colour(drawn: &[u8]) -> bool {
    regex::bytes::Regex::new(r"\x1b\[[0-9;]*m")
        .unwrap()
        .is_match(drawn)
}

/// Waits (at most [`PATIENCE`]) for the build to connect to `listener`.
fn accept(listener: &std::net::TcpListener) -> std::net::TcpStream {
    let mut ready = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(listener),
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = PATIENCE.as_millis() as libc::c_int;
    // SAFETY: one valid pollfd, for the duration of the call.
    let ret = unsafe { libc::poll(&mut ready, 1, millis) };
    assert_eq!(ret, 1, "the build never connected to the test");
    listener.accept().unwrap().0
}

/// The whole view's header once a build ends: `[+] Building 1.2s (N/N) FINISHED`.
const FINISHED: &str = r"^\[\+\] Building \d+\.\ds \((\d+)/(\d+)\) FINISHED$";

#[test]
fn tty_shows_running_steps_with_their_output_and_auto_picks_by_terminal_and_ci() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("ctx", WAITING);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = format!("PORT={}", listener.local_addr().unwrap().port());
    let build = |mode: &str| {
        let mut command = support::cli::process(home.dir.path());
        command
            .args([
                "build",
                "--progress",
                mode,
                "--build-arg",
                &port,
                "--network",
                "host",
                "-t",
                "tty:1",
            ])
            .arg(&context);
        command
    };

    let mut cold = build("tty");
    cold.env_remove("CI");
    let running = OnTerminal::spawn(cold, COLUMNS);
    // The RUN step is on screen, running, with the tail of its output
    // under it (its last line cut), before it can finish; the header
    // counts what is done: the Dockerfile, .dockerignore and context
    // loaded, the COPY.
    running.screen.wait_for("# three-with");
    let now = running.rows();
    assert!(
        shows(&now, r"^\[\+\] Building \d+\.\ds \(4/5\)$"),
        "{now:#?}"
    );
    assert!(shows(&now, r"^ => \[3/3\] RUN .* \d+\.\ds$"), "{now:#?}");
    assert!(shows(&now, r"^ => => # one$"), "{now:#?}");
    assert!(shows(&now, r"^ => => # two$"), "{now:#?}");
    assert!(
        shows(&now, r"^ => => # three-with-a-line-much-.*…$"),
        "{now:#?}"
    );
    let mut answer = accept(&listener);
    answer
        .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    drop(answer);
    let drawn = running.finish();
    assert!(has_cursor_codes(&drawn));
    // Finished steps are blue.
    assert!(
        String::from_utf8_lossy(&drawn).contains("\x1b[34m => [2/3] COPY busybox"),
        "{drawn:?}"
    );
    let rows = screen_rows(&drawn, COLUMNS);
    // The header, at the top, counts both steps, the export and the
    // internal phases, each on its own lines as buildx shows them.
    assert!(
        regex::Regex::new(FINISHED).unwrap().is_match(&rows[0])
            && rows[0].ends_with("(6/6) FINISHED"),
        "{rows:#?}"
    );
    for internal in [
        r"^ => \[internal\] load build definition from Dockerfile +\d+\.\ds$",
        r"^ => => transferring dockerfile: \d+ B$",
        r"^ => \[internal\] load \.dockerignore +\d+\.\ds$",
        r"^ => \[internal\] load build context +\d+\.\ds$",
        r"^ => => transferring context: [0-9.]+ (B|KiB|MiB)$",
    ] {
        assert!(shows(&rows, internal), "{internal} in {rows:#?}");
    }
    // Finished steps are one line each, with their time; the tail is gone.
    assert!(
        shows(&rows, r"^ => \[2/3\] COPY busybox /bin/busybox +\d+\.\ds$"),
        "{rows:#?}"
    );
    // The RUN line is cut to fit, the time at the right edge.
    assert!(
        shows(&rows, r"^ => \[3/3\] RUN \[.*echo o.*… \d+\.\ds$"),
        "{rows:#?}"
    );
    assert!(!shows(&rows, " => => #"), "{rows:#?}");
    assert!(
        shows(&rows, r"^ => exporting to image +\d+\.\ds$"),
        "{rows:#?}"
    );
    assert!(
        shows(&rows, r"^ => => writing image sha256:[0-9a-f]+…$"),
        "{rows:#?}"
    );
    assert!(
        shows(&rows, r"^ => => naming to docker.io/library/tty:1$"),
        "{rows:#?}"
    );
    // Above the summary, every row is one whole line of the view: nothing
    // spilt over into the next row.
    let summary = rows
        .iter()
        .position(|row| row.starts_with("built in "))
        .expect("a summary");
    assert!(
        rows[1..summary].iter().all(|row| row.starts_with(" => ")),
        "{rows:#?}"
    );
    assert!(rows[summary].contains("2 steps run, 0 cached"), "{rows:#?}");
    assert!(shows(&rows, r"^image sha256:[0-9a-f]+…$"), "{rows:#?}");
    assert!(
        shows(&rows, r"^named docker.io/library/tty:1$"),
        "{rows:#?}"
    );

    // `auto` on a terminal draws the same way: everything is cached now,
    // each step one line with CACHED; NO_COLOR takes the colour away, not
    // the view (as buildx does).
    let mut again = build("auto");
    again.env_remove("CI").env("NO_COLOR", "1");
    let drawn = OnTerminal::spawn(again, COLUMNS).finish();
    assert!(!has_colour(&drawn), "{drawn:?}");
    let rows = screen_rows(&drawn, COLUMNS);
    assert!(shows(&rows, FINISHED), "{rows:#?}");
    let cached = regex::Regex::new(r"^ => CACHED \[\d/3\] .* 0\.0s$").unwrap();
    assert_eq!(
        rows.iter().filter(|row| cached.is_match(row)).count(),
        2,
        "{rows:#?}"
    );
    assert!(
        shows(&rows, r"^built in .*0 steps run, 2 cached"),
        "{rows:#?}"
    );

    // …but plain lines, without escape sequences, where CI is set.
    let mut in_ci = build("auto");
    in_ci.env("CI", "1");
    let drawn = String::from_utf8(OnTerminal::spawn(in_ci, COLUMNS).finish()).unwrap();
    assert!(!drawn.contains('\u{1b}'), "{drawn:?}");
    assert!(
        drawn.contains("#1 [2/3] COPY busybox /bin/busybox\r\n#1 CACHED"),
        "{drawn:?}"
    );
}

/// The processes (by pid) whose process group is `group`, from /proc.
fn processes_in_group(group: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, after)) = stat.rsplit_once(')') else {
            continue;
        };
        if after.split_whitespace().nth(2).and_then(|g| g.parse().ok()) == Some(group) {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn sigint_leaves_no_live_line_behind() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context("ctx", WAITING);
    // Never answered: the step runs until the build is interrupted.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = format!("PORT={}", listener.local_addr().unwrap().port());
    let mut command = support::cli::process(home.dir.path());
    command
        .args(["build", "--progress", "tty", "--network", "host"])
        .args(["--build-arg", &port])
        .arg(&context);
    let running = OnTerminal::spawn(command, COLUMNS);
    running.screen.wait_for("# two");
    // A ^C reaches builder alone: nothing it started is in the terminal's
    // process group (builder's, as the session's leader), so no helper of
    // the step dies of it first and fails the step before the cancel.
    let builder_pid = running.child.id();
    let in_group: Vec<u32> = processes_in_group(builder_pid)
        .into_iter()
        .filter(|pid| *pid != builder_pid)
        .collect();
    assert!(
        in_group.is_empty(),
        "in builder's process group: {in_group:?}"
    );
    // Ctrl-C, typed: SIGINT to the terminal's process group.
    (&running.keyboard).write_all(b"\x03").unwrap();
    let (status, drawn) = running.end();
    assert_eq!(
        status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&drawn)
    );
    let parser = terminal(&drawn, COLUMNS);
    let rows = screen_rows(&drawn, COLUMNS);
    assert!(shows(&rows, FINISHED), "{rows:#?}");
    assert!(
        shows(&rows, r"^ => CANCELED \[3/3\] RUN .* \d+\.\ds$"),
        "{rows:#?}"
    );
    // Nothing of the live view is left: no running step, no output tail.
    assert!(!shows(&rows, r"^ => \[3/3\]|^ => => #"), "{rows:#?}");
    assert!(shows(&rows, "interrupted by SIGINT"), "{rows:#?}");
    // The shell's prompt comes on a clean line: the cursor at its start,
    // nothing at or below it.
    let screen = parser.screen();
    let (row, column) = screen.cursor_position();
    assert_eq!(column, 0, "{rows:#?}");
    let below: Vec<String> = screen.rows(0, COLUMNS).skip(usize::from(row)).collect();
    assert!(below.iter().all(|r| r.trim().is_empty()), "{below:#?}");
}

#[test]
fn a_failed_steps_output_is_shown_once() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "ctx",
        r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "echo the-failing-steps-output-$((6 * 7)); exit 3"]
"#,
    );
    let mut command = support::cli::process(home.dir.path());
    command.args(["build", "--progress", "tty"]).arg(&context);
    let (status, drawn) = OnTerminal::spawn(command, 100).end();
    assert_eq!(status.code(), Some(1));
    let rows = screen_rows(&drawn, 100);
    assert!(
        shows(&rows, r"^ => ERROR \[3/3\] RUN .* \d+\.\ds$"),
        "{rows:#?}"
    );
    assert!(
        String::from_utf8_lossy(&drawn).contains("\x1b[31m => ERROR [3/3] RUN"),
        "red: {drawn:?}"
    );
    let shown = rows
        .iter()
        .filter(|row| row.contains("the-failing-steps-output-42"))
        .count();
    assert_eq!(shown, 1, "{rows:#?}");
}

#[test]
fn nothing_wraps_at_40_or_100_columns() {
    if !can_build() {
        return;
    }
    let Some(registry) = support::registry::Registry::start() else {
        return;
    };
    let base = support::image::BaseImage::busybox(&registry);
    let home = Home::new();
    let context = home.context(
        "narrow",
        &format!("FROM {}\nRUN echo built > /built\n", base.reference),
    );
    let layer = &base.layer.trim_start_matches("sha256:")[..12];
    let continued = regex::Regex::new(r"^[0-9a-f]*\)?$").unwrap();
    let timed = regex::Regex::new(r" \d+\.\ds$").unwrap();
    for columns in [40, 100] {
        // Fresh each time, so the base is pulled.
        let store = tempfile::tempdir().unwrap();
        let mut command = support::cli::process(store.path());
        command
            .args(["build", "--progress", "tty", "-t"])
            .arg("a-rather-long-repository-name/for-the-narrow-test:with-a-long-tag")
            .arg(&context);
        let drawn = OnTerminal::spawn(command, columns).finish();
        let rows = screen_rows(&drawn, columns);
        let full = |prefix: &str, pattern: &str| {
            let whole = regex::Regex::new(pattern).unwrap();
            let at = rows
                .iter()
                .position(|row| row.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix:?} row in {rows:#?}"));
            // Whole or cut with `…`, and nothing of it on the next row.
            let row = &rows[at];
            assert!(
                whole.is_match(row) || row.ends_with('…'),
                "{columns} columns: {row:?} in {rows:#?}"
            );
            if let Some(next) = rows.get(at + 1) {
                assert!(
                    !continued.is_match(next),
                    "{columns} columns: {row:?} goes on in {next:?}"
                );
            }
        };
        full("pulled ", r"^pulled \S+ \(sha256:[0-9a-f]{64}\)$");
        full(
            "image ",
            r"^image sha256:[0-9a-f]{64} \(id sha256:[0-9a-f]{64}\)$",
        );
        for row in &rows {
            assert!(
                unicode_width::UnicodeWidthStr::width(row.as_str()) < usize::from(columns)
                    || row.ends_with('…')
                    || timed.is_match(row),
                "{columns} columns: {row:?} may go on in the next row: {rows:#?}"
            );
        }
        // Resolving the base is buildx's internal phase, above the steps.
        let metadata = rows
            .iter()
            .position(|row| row.starts_with(" => [internal] load metadata"))
            .unwrap_or_else(|| panic!("no metadata phase in {rows:#?}"));
        let from = rows
            .iter()
            .position(|row| row.starts_with(" => [1/2] FROM"))
            .unwrap_or_else(|| panic!("no FROM step in {rows:#?}"));
        assert!(metadata < from, "{rows:#?}");
        // The FROM's blob lived under it and went when it finished.
        assert!(shows(&rows, r"^ => \[1/2\] FROM .* \d+\.\ds$"), "{rows:#?}");
        assert!(!rows.iter().any(|row| row.contains(layer)), "{rows:#?}");
    }
}

/// The `work.*` records of a rawjson log: `(type, id, kind, done, total)`.
fn work_records(log: &str) -> Vec<(String, u64, String, u64, Option<u64>)> {
    log.lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("a JSON line"))
        .filter(|r| r["type"].as_str().is_some_and(|t| t.starts_with("work.")))
        .map(|r| {
            (
                r["type"].as_str().unwrap().to_owned(),
                r["id"].as_u64().unwrap(),
                r["kind"].as_str().unwrap().to_owned(),
                r["done"].as_u64().unwrap(),
                r["total"].as_u64(),
            )
        })
        .collect()
}

#[test]
fn a_big_layer_is_shown_compressing_and_unpacking() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    // 4 MiB of random bytes: past the 1 MiB from which a phase is shown.
    let context = home.context(
        "big",
        r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "dd", "if=/dev/urandom", "of=/big", "bs=1048576", "count=4"]
RUN ["/bin/busybox", "true"]
"#,
    );
    let cold = progress_of(&build(&home, "rawjson", &context));
    let work = work_records(&cold);
    let compress: Vec<_> = work.iter().filter(|w| w.2 == "compress").collect();
    assert_eq!(
        compress.first().map(|w| (w.0.as_str(), w.1)),
        Some(("work.started", 2)),
        "{cold}"
    );
    let finished = compress.last().unwrap();
    assert_eq!(
        (finished.0.as_str(), finished.1),
        ("work.finished", 2),
        "{cold}"
    );
    assert!(finished.3 > 4 << 20, "the tar holds the 4 MiB: {cold}");
    assert!(
        work.iter().all(|w| w.1 == 2),
        "only the big step's layer is shown: {cold}"
    );

    // Without its snapshot, the cache hit unpacks the big layer again.
    std::fs::remove_dir_all(home.dir.path().join("store/snapshots")).unwrap();
    let plain = progress_of(&build(&home, "plain", &context));
    let extracted: Vec<&str> = plain
        .lines()
        .filter(|l| l.starts_with("#2 extract"))
        .collect();
    assert!(
        extracted
            .first()
            .is_some_and(|l| l.starts_with("#2 extracting ")),
        "{plain}"
    );
    assert!(
        extracted
            .last()
            .is_some_and(|l| l.starts_with("#2 extracted ") && l.contains(" MiB in ")),
        "{plain}"
    );
    std::fs::remove_dir_all(home.dir.path().join("store/snapshots")).unwrap();
    let json = progress_of(&build(&home, "rawjson", &context));
    let extract: Vec<_> = work_records(&json)
        .into_iter()
        .filter(|w| w.2 == "extract")
        .collect();
    let last = extract.last().expect("extract records");
    assert_eq!((last.0.as_str(), last.1), ("work.finished", 2), "{json}");
    assert_eq!(Some(last.3), last.4, "all of the blob was read: {json}");
}

#[test]
fn the_reports_marker_sits_under_its_step_at_40_columns() {
    if !can_build() {
        return;
    }
    let home = Home::new();
    let context = home.context(
        "ctx",
        r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "echo a-line-too-long-for-a-terminal-forty-columns-wide; exit 3"]
"#,
    );
    let mut command = support::cli::process(home.dir.path());
    command.args(["build", "--progress", "tty"]).arg(&context);
    let (status, drawn) = OnTerminal::spawn(command, 40).end();
    assert_eq!(status.code(), Some(1));
    let rows = screen_rows(&drawn, 40);
    // ` 3 │ RUN ["/bin/busybox", "sh", "-c"…`: cut, not wrapped.
    let line = rows
        .iter()
        .position(|row| row.starts_with(" 3 │ "))
        .unwrap_or_else(|| panic!("no Dockerfile line in {rows:#?}"));
    let text = &rows[line];
    assert!(
        text.starts_with(" 3 │ RUN [\"/bin/busybox\"") && text.ends_with('…'),
        "{rows:#?}"
    );
    // The marker on the next row, under the instruction from its first
    // column, and its label whole on the row after.
    let column = |row: &str, what: char| row.chars().position(|c| c == what);
    let marker = &rows[line + 1];
    assert!(marker.starts_with("   · "), "{rows:#?}");
    assert_eq!(column(marker, '─'), column(text, 'R'), "{rows:#?}");
    assert!(
        rows[line + 2].ends_with("╰── this step failed"),
        "{rows:#?}"
    );
    assert!(rows[line + 3].trim_start().starts_with("╰──"), "{rows:#?}");
}
