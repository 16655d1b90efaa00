//! A local HTTP capture server: listens on 127.0.0.1 (port 0), records every request
//! (method, path, headers, body) and answers as scripted, with a status, a delay, a slow
//! or broken body, or never.
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
