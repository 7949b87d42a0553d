//! A tiny HTTP/1.1 server on 127.0.0.1 for tests that need a peer the real
//! registry cannot play: a token server, a registry that sends wrong bytes,
//! one that cuts the connection. One thread per connection, `Connection:
//! close` on every answer, so there is no keep-alive state to get wrong.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

/// One request as the server read it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent (`/v2/app/manifests/latest`).
    pub target: String,
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// All values of query parameter `name`, percent-decoded.
    pub fn query(&self, name: &str) -> Vec<String> {
        let Some((_, q)) = self.target.split_once('?') else {
            return Vec::new();
        };
        url::form_urlencoded::parse(q.as_bytes())
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// An answer; `cut_after` sends a `Content-Length` for the whole body but
/// closes the connection after that many body bytes; `stall` sends part of
/// it (or nothing) and then neither sends nor closes.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub cut_after: Option<usize>,
    pub stall: Option<Stall>,
}

/// Where a stalling answer stops.
#[derive(Debug, Clone, Copy)]
pub enum Stall {
    /// Before its status line: the connection is accepted, nothing comes.
    BeforeHead,
    /// After its head and this many body bytes.
    AfterBody(usize),
}

impl Response {
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            cut_after: None,
            stall: None,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn json(self, value: &serde_json::Value) -> Self {
        self.header("Content-Type", "application/json")
            .body(value.to_string())
    }

    pub fn cut_after(mut self, n: usize) -> Self {
        self.cut_after = Some(n);
        self
    }

    pub fn stall(mut self, at: Stall) -> Self {
        self.stall = Some(at);
        self
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync + 'static;

/// A running server; stops accepting when dropped.
pub struct TestServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl TestServer {
    /// Serves every request with `handler` on a free port of 127.0.0.1.
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a test server port");
        Self::serve(listener, handler)
    }

    /// Serves every request on `listener` (bound wherever the test needs,
    /// e.g. in a network namespace of its own) with `handler`.
    pub fn serve(
        listener: TcpListener,
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> Self {
        let addr = listener
            .local_addr()
            .expect("local address of a bound socket");
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let stop2 = stop.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let handler = handler.clone();
                thread::spawn(move || serve(conn, &*handler));
            }
        });
        Self { addr, stop }
    }

    /// `ADDRESS:PORT` (`127.0.0.1:PORT` for [`TestServer::start`]).
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(conn: TcpStream, handler: &Handler) {
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let Some(request) = read_request(&mut reader) else {
        return;
    };
    let response = handler(&request);
    let _ = write_response(conn, &request, &response);
}

fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}

/// Holds the connection open without a byte more, until the test's
/// process ends.
fn stall_forever(conn: TcpStream) -> ! {
    loop {
        thread::park();
        let _ = &conn;
    }
}

fn write_response(mut conn: TcpStream, request: &Request, r: &Response) -> std::io::Result<()> {
    if let Some(Stall::BeforeHead) = r.stall {
        stall_forever(conn);
    }
    let mut head = format!("HTTP/1.1 {} X\r\n", r.status);
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        r.body.len()
    ));
    conn.write_all(head.as_bytes())?;
    if request.method != "HEAD" {
        let end = r.cut_after.unwrap_or(r.body.len()).min(r.body.len());
        if let Some(Stall::AfterBody(n)) = r.stall {
            conn.write_all(&r.body[..n.min(end)])?;
            conn.flush()?;
            stall_forever(conn);
        }
        conn.write_all(&r.body[..end])?;
    }
    conn.flush()
    // Dropping `conn` closes it, short of the promised length when cut.
}
