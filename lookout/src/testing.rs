//! A local capture server for tests and benchmarks: listens on 127.0.0.1 (port 0),
//! records every request (method, path, headers, body) and answers as scripted, with a
//! status, a delay, a slow or broken body, or never.
//!
//! [`SmtpCaptureServer`] does the same for email: a minimal SMTP server on 127.0.0.1.
//!
//! It runs on its own thread and runtime, so blocking tests (that start the `lookout`
//! binary) and async tests use it alike. Dropping it stops it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Captured {
    pub method: String,
    /// The path with its query string.
    pub path: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
    /// The status the server answered with (as scripted; sent after any delay).
    pub status: u16,
}

impl Captured {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The body as JSON (panics with the body text if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
    /// The body as form fields.
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }
    pub fn form_field(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// How the server answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: ReplyBody,
    delay: Duration,
}

#[derive(Debug, Clone)]
enum ReplyBody {
    Bytes(Vec<u8>),
    /// Never answer at all.
    Hang,
    /// `chunks` chunks of `chunk` bytes, one every `every`.
    Slow {
        chunk: usize,
        chunks: usize,
        every: Duration,
    },
    /// Some bytes, then the connection is dropped.
    Reset,
    /// Some bytes, a pause (so they surely went out), then the connection is dropped.
    ResetAfter(Duration),
    /// The connection is dropped before any answer.
    Abort,
    /// `n` bytes of filler.
    Huge(usize),
    /// The request itself, written back: what a careless error page does.
    Echo,
    /// Only the request's path, query and each query parameter, written back.
    EchoUrl,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: ReplyBody::Bytes(b"ok".to_vec()),
            delay: Duration::ZERO,
        }
    }
    pub fn ok() -> Reply {
        Reply::status(200)
    }
    /// Accepts the request and never answers.
    pub fn hang() -> Reply {
        Reply {
            body: ReplyBody::Hang,
            ..Reply::ok()
        }
    }
    /// Starts a 200 answer, then drops the connection mid-body.
    pub fn reset() -> Reply {
        Reply {
            body: ReplyBody::Reset,
            ..Reply::ok()
        }
    }
    /// Starts the answer (status, headers, some body), waits `pause`, then drops the
    /// connection: the status surely arrived before the break.
    pub fn reset_after(pause: Duration) -> Reply {
        Reply {
            body: ReplyBody::ResetAfter(pause),
            ..Reply::ok()
        }
    }
    /// Answers with the request written back (method, path and query, each query
    /// parameter, headers, body), as error pages that echo their input do. Combine
    /// with [`Reply::with_status`].
    pub fn echo() -> Reply {
        Reply {
            body: ReplyBody::Echo,
            ..Reply::ok()
        }
    }
    /// Answers with the request's path, its query and each query parameter (decoded),
    /// one per line: an error page that echoes the URL in pieces.
    pub fn echo_url() -> Reply {
        Reply {
            body: ReplyBody::EchoUrl,
            ..Reply::ok()
        }
    }
    /// Drops the connection without answering at all (no status line).
    pub fn abort() -> Reply {
        Reply {
            body: ReplyBody::Abort,
            ..Reply::ok()
        }
    }
    /// The same reply with another status.
    pub fn with_status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }
    /// A body of `chunks` × `chunk` bytes, one chunk every `every`.
    pub fn slow_body(chunk: usize, chunks: usize, every: Duration) -> Reply {
        Reply {
            body: ReplyBody::Slow {
                chunk,
                chunks,
                every,
            },
            ..Reply::ok()
        }
    }
    /// A 200 with a body of `bytes` bytes.
    pub fn huge(bytes: usize) -> Reply {
        Reply {
            body: ReplyBody::Huge(bytes),
            ..Reply::ok()
        }
    }
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        self.body = ReplyBody::Bytes(body.into());
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
    /// Waits this long before answering.
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct Shared {
    log: Mutex<Vec<Captured>>,
    arrived: Condvar,
    /// Scripted replies per path (the first matching prefix wins), used in order; the
    /// last one repeats.
    script: Mutex<HashMap<String, VecDeque<Reply>>>,
}

pub struct CaptureServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CaptureServer {
    /// Starts a server answering 200 `ok` to everything.
    pub fn start() -> CaptureServer {
        let shared = Arc::new(Shared::default());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("capture server runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                let app = axum::Router::new().fallback(capture).with_state(state);
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stopped => {}
                }
            });
            runtime.shutdown_background();
        });
        CaptureServer {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Scripts the replies for paths starting with `path_prefix`: used in order, the last
    /// one repeating.
    pub fn script(&self, path_prefix: &str, replies: impl IntoIterator<Item = Reply>) {
        self.shared
            .script
            .lock()
            .unwrap()
            .insert(path_prefix.to_owned(), replies.into_iter().collect());
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Captured> {
        self.shared.log.lock().unwrap().clone()
    }

    /// How many requests have arrived (without copying them, for long runs).
    pub fn count(&self) -> usize {
        self.shared.log.lock().unwrap().len()
    }

    /// The requests received on paths starting with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<Captured> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }

    /// Waits until at least `n` requests have arrived, or `timeout` passes.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Captured> {
        let log = self.shared.log.lock().unwrap();
        let (log, _) = self
            .shared
            .arrived
            .wait_timeout_while(log, timeout, |log| log.len() < n)
            .unwrap();
        log.clone()
    }
}

impl Drop for CaptureServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn capture(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    let captured = Captured {
        method: parts.method.to_string(),
        path: path.clone(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
        at: Instant::now(),
        status: 0,
    };
    // The reply is chosen as the request is logged, so the log says what each got.
    let mut reply = next_reply(&shared, &path);
    match reply.body {
        ReplyBody::Echo => reply.body = ReplyBody::Bytes(echo(&captured).into_bytes()),
        ReplyBody::EchoUrl => reply.body = ReplyBody::Bytes(echo_url(&captured).into_bytes()),
        _ => {}
    }
    shared.log.lock().unwrap().push(Captured {
        status: reply.status,
        ..captured
    });
    shared.arrived.notify_all();

    tokio::time::sleep(reply.delay).await;
    respond(reply).await
}

fn next_reply(shared: &Shared, path: &str) -> Reply {
    let mut script = shared.script.lock().unwrap();
    let best = script
        .keys()
        .filter(|prefix| path.starts_with(prefix.as_str()))
        .max_by_key(|prefix| prefix.len())
        .cloned();
    let Some(queue) = best.and_then(|prefix| script.get_mut(&prefix)) else {
        return Reply::ok();
    };
    if queue.len() > 1 {
        queue.pop_front().unwrap()
    } else {
        queue.front().cloned().unwrap_or_else(Reply::ok)
    }
}

/// A request written out in full, the way an error page that echoes its input would;
/// the parts most likely to hold a credential come first, so that they fall within the
/// excerpt of the answer that a report keeps.
fn echo(request: &Captured) -> String {
    const ORDINARY: &[&str] = &[
        "host",
        "user-agent",
        "accept",
        "content-length",
        "content-type",
    ];
    let mut out = format!("{} {}\n", request.method, request.path);
    let (ordinary, special): (Vec<_>, Vec<_>) = request
        .headers
        .iter()
        .partition(|(name, _)| ORDINARY.contains(&name.as_str()));
    for (name, value) in special.into_iter().chain(ordinary) {
        out.push_str(&format!("{name}: {value}\n"));
    }
    out.push_str(&echo_url(request));
    out.push('\n');
    out.push_str(&request.text());
    out
}

/// The path, the query and each query parameter (decoded), one per line.
fn echo_url(request: &Captured) -> String {
    let (path, query) = request
        .path
        .split_once('?')
        .unwrap_or((request.path.as_str(), ""));
    let mut out = format!("path: {path}\nquery: {query}\n");
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        out.push_str(&format!("param {name} = {value}\n"));
    }
    out
}

async fn respond(reply: Reply) -> Response {
    let body = match reply.body {
        ReplyBody::Hang => std::future::pending().await,
        ReplyBody::Bytes(bytes) => Body::from(bytes),
        // Replaced by the echo in `capture`.
        ReplyBody::Echo | ReplyBody::EchoUrl => Body::empty(),
        ReplyBody::Huge(n) => Body::from(vec![b'x'; n]),
        ReplyBody::Slow {
            chunk,
            chunks,
            every,
        } => {
            let stream = futures::stream::unfold(0, move |sent| async move {
                if sent == chunks {
                    return None;
                }
                tokio::time::sleep(every).await;
                Some((
                    Ok::<_, std::io::Error>(Bytes::from(vec![b'.'; chunk])),
                    sent + 1,
                ))
            });
            Body::from_stream(stream)
        }
        ReplyBody::Abort => {
            let stream = futures::stream::iter([Err::<Bytes, _>(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "aborted by test",
            ))]);
            Body::from_stream(stream)
        }
        ReplyBody::ResetAfter(pause) => {
            let stream = futures::stream::unfold(0, move |step| async move {
                match step {
                    0 => Some((Ok(Bytes::from_static(b"partial")), 1)),
                    1 => {
                        tokio::time::sleep(pause).await;
                        Some((
                            Err(std::io::Error::new(
                                std::io::ErrorKind::ConnectionReset,
                                "reset by test",
                            )),
                            2,
                        ))
                    }
                    _ => None,
                }
            });
            Body::from_stream(stream)
        }
        ReplyBody::Reset => {
            let stream = futures::stream::iter([
                Ok(Bytes::from_static(b"partial")),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "reset by test",
                )),
            ]);
            Body::from_stream(stream)
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    for (name, value) in reply.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// The title of the `item-markup` fixture, as typed: what every service must show as
/// plain text.
pub const MARKUP_TITLE: &str =
    r#"<b>&"x"</b> *bold* _under_ `code` [link](http://evil.example) @everyone"#;

/// A payload from the repository's `tests/fixtures/` folder (`fixture("item")`), parsed:
/// for the tests inside service files.
pub fn fixture(name: &str) -> crate::Event {
    let path = fixture_path(name);
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    crate::Event::parse(&json).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The JSON text of one of the shared fixtures, `tests/fixtures/{name}.json`.
pub fn fixture_json(name: &str) -> String {
    let path = fixture_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

fn fixture_path(name: &str) -> String {
    format!(
        "{}/../tests/fixtures/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A local SMTP server for tests: listens on 127.0.0.1 (port 0), speaks just enough
/// SMTP for a client to submit mail (EHLO/HELO, AUTH PLAIN and LOGIN, MAIL FROM, RCPT TO,
/// DATA, RSET, NOOP, QUIT, no TLS), and records every message. Dropping it stops it.
pub struct SmtpCaptureServer {
    addr: SocketAddr,
    shared: Arc<SmtpShared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct SmtpShared {
    mails: Mutex<Vec<CapturedMail>>,
    arrived: Condvar,
    reject_auth: std::sync::atomic::AtomicBool,
    stop: std::sync::atomic::AtomicBool,
}

/// The credentials a client logged in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpLogin {
    /// `PLAIN` or `LOGIN`.
    pub mechanism: String,
    pub username: String,
    pub password: String,
}

/// One message as it arrived.
#[derive(Debug, Clone)]
pub struct CapturedMail {
    /// The name the client gave in EHLO or HELO.
    pub helo: String,
    pub login: Option<SmtpLogin>,
    /// The envelope: `MAIL FROM` and `RCPT TO` addresses, without the angle brackets.
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The message after DATA, dot-unstuffed, without the final `.` line.
    pub data: Vec<u8>,
}

/// One part of a MIME message, its body decoded.
#[derive(Debug, Clone)]
pub struct MimePart {
    /// The `Content-Type` header, as sent.
    pub content_type: String,
    pub body: String,
}

impl CapturedMail {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// A top-level header's value, unfolded (not RFC 2047-decoded).
    pub fn header(&self, name: &str) -> Option<String> {
        header_in(head_of(&self.text()), name)
    }

    /// The leaf parts of the message (one part for a message that is not multipart),
    /// each body decoded from quoted-printable or base64.
    pub fn parts(&self) -> Vec<MimePart> {
        mime_parts(&self.text())
    }
}

/// The header block of a MIME entity (before the first blank line).
fn head_of(entity: &str) -> &str {
    entity
        .split_once("\r\n\r\n")
        .or_else(|| entity.split_once("\n\n"))
        .map_or(entity, |(head, _)| head)
}

fn body_of(entity: &str) -> &str {
    entity
        .split_once("\r\n\r\n")
        .or_else(|| entity.split_once("\n\n"))
        .map_or("", |(_, body)| body)
}

fn header_in(head: &str, name: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(value) = found.as_mut() {
                value.push_str(line.trim_end());
            }
            continue;
        }
        if found.is_some() {
            break;
        }
        if let Some((n, value)) = line.split_once(':')
            && n.trim().eq_ignore_ascii_case(name)
        {
            found = Some(value.trim().to_owned());
        }
    }
    found
}

fn mime_parts(entity: &str) -> Vec<MimePart> {
    let head = head_of(entity);
    let content_type = header_in(head, "content-type").unwrap_or_else(|| "text/plain".into());
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned());
    match boundary {
        Some(boundary) if content_type.to_ascii_lowercase().starts_with("multipart/") => {
            let delimiter = format!("--{boundary}");
            body_of(entity)
                .split(delimiter.as_str())
                .skip(1) // the preamble
                .take_while(|part| !part.starts_with("--")) // the closing delimiter
                .flat_map(|part| mime_parts(part.trim_start_matches(['\r', '\n'])))
                .collect()
        }
        _ => {
            let encoding = header_in(head, "content-transfer-encoding")
                .unwrap_or_default()
                .to_ascii_lowercase();
            let raw = body_of(entity);
            let body = match encoding.as_str() {
                "base64" => {
                    use base64::Engine as _;
                    let compact: String = raw.split_whitespace().collect();
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(compact)
                        .unwrap_or_default();
                    String::from_utf8_lossy(&bytes).into_owned()
                }
                "quoted-printable" => decode_quoted_printable(raw),
                _ => raw.to_owned(),
            };
            vec![MimePart {
                content_type,
                body: body.trim_end_matches(['\r', '\n']).to_owned(),
            }]
        }
    }
}

fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(hex) = joined.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl SmtpCaptureServer {
    pub fn start() -> SmtpCaptureServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(SmtpShared::default());
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if state.stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let state = state.clone();
                std::thread::spawn(move || {
                    let _ = smtp_session(stream, &state);
                });
            }
        });
        SmtpCaptureServer {
            addr,
            shared,
            thread: Some(thread),
        }
    }

    pub fn host(&self) -> String {
        self.addr.ip().to_string()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// From now on, answer every AUTH with 535, echoing the credentials in the reply (as
    /// a careless server might) so tests can check they are redacted.
    pub fn reject_auth(&self) {
        self.shared
            .reject_auth
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every message received so far.
    pub fn mails(&self) -> Vec<CapturedMail> {
        self.shared.mails.lock().unwrap().clone()
    }

    /// Waits until at least `n` messages have arrived, or `timeout` passes.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<CapturedMail> {
        let mails = self.shared.mails.lock().unwrap();
        let (mails, _) = self
            .shared
            .arrived
            .wait_timeout_while(mails, timeout, |m| m.len() < n)
            .unwrap();
        mails.clone()
    }
}

impl Drop for SmtpCaptureServer {
    fn drop(&mut self) {
        self.shared
            .stop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One client connection, until QUIT or the client goes away.
fn smtp_session(stream: std::net::TcpStream, shared: &SmtpShared) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Write};
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let mut reply = |out: &mut std::net::TcpStream, text: &str| -> std::io::Result<()> {
        out.write_all(text.as_bytes())?;
        out.write_all(b"\r\n")
    };
    let mut read_line = move || -> std::io::Result<Option<String>> {
        let mut line = String::new();
        match reader.read_line(&mut line)? {
            0 => Ok(None),
            _ => Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned())),
        }
    };

    reply(&mut out, "220 127.0.0.1 lookout test SMTP ready")?;
    let mut helo = String::new();
    let mut login = None;
    let mut mail: Option<CapturedMail> = None;
    while let Some(line) = read_line()? {
        let (verb, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                helo = rest.trim().to_owned();
                reply(
                    &mut out,
                    "250-127.0.0.1 hello\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250 SMTPUTF8",
                )?;
            }
            "HELO" => {
                helo = rest.trim().to_owned();
                reply(&mut out, "250 127.0.0.1 hello")?;
            }
            "AUTH" => {
                let Some(got) = smtp_auth(rest, &mut out, &mut reply, &mut read_line)? else {
                    reply(&mut out, "501 5.5.2 cannot decode the credentials")?;
                    continue;
                };
                if shared.reject_auth.load(std::sync::atomic::Ordering::SeqCst) {
                    let text = format!(
                        "535 5.7.8 rejected {}:{} (this test server echoes it)",
                        got.username, got.password
                    );
                    reply(&mut out, &text)?;
                } else {
                    login = Some(got);
                    reply(&mut out, "235 2.7.0 Authentication successful")?;
                }
            }
            "MAIL" => {
                mail = Some(CapturedMail {
                    helo: helo.clone(),
                    login: login.clone(),
                    mail_from: angle_address(rest),
                    rcpt_to: Vec::new(),
                    data: Vec::new(),
                });
                reply(&mut out, "250 2.1.0 OK")?;
            }
            "RCPT" => match mail.as_mut() {
                Some(m) => {
                    m.rcpt_to.push(angle_address(rest));
                    reply(&mut out, "250 2.1.5 OK")?;
                }
                None => reply(&mut out, "503 5.5.1 MAIL first")?,
            },
            "DATA" => {
                let Some(mut m) = mail.take().filter(|m| !m.rcpt_to.is_empty()) else {
                    reply(&mut out, "503 5.5.1 RCPT first")?;
                    continue;
                };
                reply(&mut out, "354 end with <CRLF>.<CRLF>")?;
                while let Some(data_line) = read_line()? {
                    if data_line == "." {
                        break;
                    }
                    // Dot-unstuffing: a leading dot was doubled by the client.
                    let unstuffed = data_line.strip_prefix('.').unwrap_or(&data_line);
                    m.data.extend_from_slice(unstuffed.as_bytes());
                    m.data.extend_from_slice(b"\r\n");
                }
                shared.mails.lock().unwrap().push(m);
                shared.arrived.notify_all();
                reply(&mut out, "250 2.0.0 queued")?;
            }
            "RSET" => {
                mail = None;
                reply(&mut out, "250 2.0.0 OK")?;
            }
            "NOOP" => reply(&mut out, "250 2.0.0 OK")?,
            "QUIT" => {
                reply(&mut out, "221 2.0.0 bye")?;
                break;
            }
            _ => reply(&mut out, "502 5.5.2 command not implemented")?,
        }
    }
    Ok(())
}

/// `FROM:<a@b.c> SIZE=1` → `a@b.c`.
fn angle_address(rest: &str) -> String {
    match (rest.find('<'), rest.find('>')) {
        (Some(start), Some(end)) if start < end => rest[start + 1..end].to_owned(),
        _ => rest
            .split_once(':')
            .map_or(rest, |(_, a)| a)
            .trim()
            .to_owned(),
    }
}

/// AUTH PLAIN (with or without an initial response) and AUTH LOGIN; `None` when the
/// credentials cannot be decoded.
fn smtp_auth(
    rest: &str,
    out: &mut std::net::TcpStream,
    reply: &mut impl FnMut(&mut std::net::TcpStream, &str) -> std::io::Result<()>,
    read_line: &mut impl FnMut() -> std::io::Result<Option<String>>,
) -> std::io::Result<Option<SmtpLogin>> {
    use base64::Engine as _;
    let decode = |text: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
    };
    let (mechanism, initial) = rest.split_once(' ').unwrap_or((rest, ""));
    let mechanism = mechanism.to_ascii_uppercase();
    let mut ask = |prompt: &str| -> std::io::Result<Option<String>> {
        reply(out, &format!("334 {prompt}"))?;
        Ok(read_line()?.and_then(|answer| decode(&answer)))
    };
    let login = match mechanism.as_str() {
        "PLAIN" => {
            let decoded = if initial.is_empty() {
                ask("")?
            } else {
                decode(initial)
            };
            // authzid \0 authcid \0 password
            decoded.and_then(|text| {
                let mut fields = text.split('\0').skip(1);
                Some((fields.next()?.to_owned(), fields.next()?.to_owned()))
            })
        }
        "LOGIN" => {
            let username = if initial.is_empty() {
                ask("VXNlcm5hbWU6")? // "Username:"
            } else {
                decode(initial)
            };
            match username {
                Some(username) => ask("UGFzc3dvcmQ6")?.map(|password| (username, password)),
                None => None,
            }
        }
        _ => None,
    };
    Ok(login.map(|(username, password)| SmtpLogin {
        mechanism,
        username,
        password,
    }))
}

/// The engine settings every test that sends to 127.0.0.1 uses: the defaults with short
/// deadlines, so a hung target costs little. Tests build their engines with this one
/// function only, so that what local tests need from the engine is decided in one place.
pub fn settings() -> crate::Settings {
    crate::Settings {
        deadline: Duration::from_secs(5),
        request_timeout: Duration::from_secs(4),
        // Tests send many events to one fake target; pacing is tested on its own.
        rate_limits: false,
        ..crate::Settings::default()
    }
    // The capture servers listen on 127.0.0.1, which the SSRF guard refuses by default.
    .allowing_loopback()
}

/// The report as a user could see it: its JSON and its debug form, one after the other.
pub fn shown(report: &crate::Report) -> String {
    format!(
        "{} {report:?}",
        serde_json::to_string(report).unwrap_or_default()
    )
}

/// Panics if `secret` shows anywhere in the report (see [`shown`]); returns what shows.
pub fn assert_hidden(report: &crate::Report, secret: &str) -> String {
    let shown = shown(report);
    assert!(
        !shown.contains(secret),
        "the secret {secret:?} shows in the report: {shown}"
    );
    shown
}

/// Sends one event (payload JSON) to one configured service through a real
/// [`Engine`](crate::Engine) with the test [`settings`], and returns the report.
pub async fn dispatch_one(
    service: &str,
    options: serde_json::Value,
    event_json: &str,
) -> crate::Report {
    let options = options
        .as_object()
        .cloned()
        .expect("options are a JSON object");
    let instance = crate::Instance::new(service, service, &options)
        .unwrap_or_else(|problems| panic!("{service}: options rejected: {problems:?}"));
    let event = crate::Event::parse(event_json).expect("the event parses");
    let engine = crate::Engine::with_settings(settings()).expect("engine");
    engine.dispatch_to(&event, &[instance]).await
}

/// End to end for the in-file tests of services: starts a capture server, configures
/// `service` with the options `options` gives for it (pointing URLs at it, scripting its
/// replies), delivers the event through [`dispatch_one`], and checks that it was
/// delivered in exactly one request and that `secret` shows nowhere in the report.
/// Returns the report and the request as it arrived.
pub async fn deliver_one(
    service: &str,
    options: impl FnOnce(&CaptureServer) -> serde_json::Value,
    event_json: &str,
    secret: &str,
) -> (crate::Report, Captured) {
    let server = CaptureServer::start();
    let report = dispatch_one(service, options(&server), event_json).await;
    let shown = assert_hidden(&report, secret);
    let delivered =
        |r: &crate::ServiceResult| matches!(r.delivery.outcome, crate::Outcome::Delivered { .. });
    assert!(
        !report.results.is_empty() && report.results.iter().all(delivered),
        "{service}: not delivered: {shown}"
    );
    let mut arrived = server.requests();
    assert_eq!(
        arrived.len(),
        1,
        "{service}: one request expected: {arrived:?}"
    );
    (report, arrived.remove(0))
}
