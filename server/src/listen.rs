//! How `lookout serve` holds its connections: its own accept loop over hyper (HTTP/1.1)
//! instead of `axum::serve`, for the limits a hostile network makes necessary.
//!
//! - **Connection cap:** a connection is accepted only with a free slot, so at the cap
//!   new ones wait in the kernel's backlog (backpressure, no busy loop) and the process
//!   keeps file descriptors for its store and its workers' outbound connections.
//! - **Connections per client:** one address may hold only its share of the slots; a
//!   connection over it is answered 429 and closed as soon as it is accepted, so that
//!   it never waits ahead of other clients. Trusted proxies are exempt (every client
//!   behind them shares their address); the total cap still holds them.
//! - **Requests per client:** one client (behind a trusted proxy: the address it
//!   forwarded for, [`clients`](crate::clients)) may have only so many requests in
//!   flight; more are answered 429 at once. Its address is in every log line of the
//!   request.
//! - **Header timeout:** a request's head must arrive within it (slowloris).
//! - **Body timeout:** a request's body must arrive within it once its head has (408).
//! - **Idle timeout:** a connection that moves no byte either way for this long is
//!   closed (idle keep-alive, stalled clients).
//! - **Header size:** a longer head is refused (431) before it is buffered whole.
//! - **Draining:** on shutdown nothing new is accepted, open requests get `drain` to
//!   finish, then every connection is closed.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt as _;
use tracing::Instrument as _;

use crate::clients::{ClientAddr, PerClient, TrustedProxies, client_address, client_key};
use crate::metrics::Metrics;

/// File descriptors kept out of the intake's reach: the store, the workers' outbound
/// connections, logs. The default connection cap is the open-file limit minus these.
pub const FD_RESERVE: usize = 256;

/// The connection limits of `serve` (docs/SERVING.md, "Security").
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// Connections one address may hold at once (a trusted proxy's: exempt).
    pub max_connections_per_client: usize,
    /// Requests one client may have in flight (behind a trusted proxy: per forwarded
    /// address).
    pub max_requests_per_client: usize,
    /// The reverse proxies whose forwarding headers name the client.
    pub trusted_proxies: TrustedProxies,
    pub max_header_bytes: usize,
    /// On shutdown, how long open requests may take before their connections are closed.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        let max_connections = default_max_connections();
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections,
            max_connections_per_client: default_per_client(max_connections),
            max_requests_per_client: default_per_client(max_connections),
            trusted_proxies: TrustedProxies::default(),
            max_header_bytes: 16 * 1024,
            drain: Duration::from_secs(10),
        }
    }
}

/// hyper's read buffer cannot be smaller than this.
const SMALLEST_HEADER_BUFFER: usize = 8 * 1024;

/// The open-file limit minus [`FD_RESERVE`], at least 16 and at most 10,000.
pub fn default_max_connections() -> usize {
    open_file_limit()
        .saturating_sub(FD_RESERVE)
        .clamp(16, 10_000)
}

/// A client's share of `max_connections` connections (and of as many requests): an
/// eighth, at least 16 (and never more than all of them).
pub fn default_per_client(max_connections: usize) -> usize {
    (max_connections / 8).max(16).min(max_connections.max(1))
}

/// The soft `RLIMIT_NOFILE` (1,024 when it cannot be read).
pub fn open_file_limit() -> usize {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            return usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX);
        }
    }
    1024
}

/// Serves `router` on `listener` under `limits` until `stop` turns true; then drains.
/// Refusals are counted in `metrics`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address = Arc::new(PerClient::default());
    let mut refused = Refusals::new(&metrics, limits.max_connections_per_client);
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(SMALLEST_HEADER_BUFFER));
    let requests = Arc::new(RequestLimit {
        trusted: limits.trusted_proxies.clone(),
        max: limits.max_requests_per_client.max(1),
        held: Arc::default(),
        metrics,
        refusals: AtomicU64::new(0),
    });
    let router = router
        .layer(axum::middleware::from_fn_with_state(
            limits.body_timeout,
            body_deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(
            requests,
            requests_per_client,
        ));
    let mut accept_failures = 0;
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = stopping(&mut stop) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(&err, &mut accept_failures).await;
                    continue;
                }
            },
            _ = stopping(&mut stop) => break,
        };
        // A trusted proxy's connections carry many clients: only the total cap holds them.
        let share = if limits.trusted_proxies.contains(peer.ip()) {
            None
        } else {
            match per_address.try_hold(client_key(peer.ip()), limits.max_connections_per_client) {
                Some(share) => Some(share),
                None => {
                    refused.connection(stream, peer);
                    continue;
                }
            }
        };
        let (stream, activity) = Watched::new(stream);
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut request: Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            },
        ));
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let idle = limits.idle_timeout;
        tokio::spawn(async move {
            tokio::select! {
                _ = connection => {}
                _ = activity.idle_for(idle) => {}
            }
            drop(share);
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still open after {}: closed",
            humantime::format_duration(limits.drain)
        );
    }
    Ok(())
}

/// Connections refused for holding more than an address's share: answered at once,
/// counted, and logged at the 1st, 2nd, 4th, 8th… refusal.
struct Refusals {
    metrics: Arc<Metrics>,
    cap: usize,
    count: u64,
    /// The answer: 429 and `Connection: close`, written without reading the request.
    answer: Vec<u8>,
}

impl Refusals {
    fn new(metrics: &Arc<Metrics>, cap: usize) -> Refusals {
        let body = serde_json::json!({
            "error": format!(
                "too many connections from this address: it holds {cap} already \
                 (--max-connections-per-client); close idle ones or wait for answers"
            )
        })
        .to_string();
        let answer = format!(
            "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
             retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        Refusals {
            metrics: metrics.clone(),
            cap,
            count: 0,
            answer: answer.into_bytes(),
        }
    }

    /// Answers 429 if the socket takes it without waiting, then closes the connection.
    fn connection(&mut self, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.try_write(&self.answer);
        drop(stream);
        self.metrics.refused("connections_per_client");
        self.count += 1;
        if self.count.is_power_of_two() {
            tracing::warn!(
                "refused a connection from {}: it holds {} already \
                 (--max-connections-per-client); {} refused so far",
                peer.ip(),
                self.cap,
                self.count
            );
        }
    }
}

/// The cap on requests in flight per client, and who holds what.
struct RequestLimit {
    trusted: TrustedProxies,
    max: usize,
    held: Arc<PerClient>,
    metrics: Arc<Metrics>,
    refusals: AtomicU64,
}

/// Names the request's client ([`ClientAddr`], and in the logs of everything the request
/// does), and holds one of the client's request slots until the answer is made: a client
/// holding all of its slots is answered 429 at once.
async fn requests_per_client(
    State(limit): State<Arc<RequestLimit>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(ConnectInfo(peer)) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .copied()
    else {
        return next.run(request).await;
    };
    let client = client_address(peer.ip(), request.headers(), &limit.trusted);
    request.extensions_mut().insert(ClientAddr(client));
    let span = tracing::info_span!("request", %client);
    let Some(held) = limit.held.try_hold(client_key(client), limit.max) else {
        limit.metrics.refused("requests_per_client");
        let count = limit.refusals.fetch_add(1, Ordering::Relaxed) + 1;
        if count.is_power_of_two() {
            tracing::warn!(
                "refused a request from {client}: it has {} in flight already \
                 (--max-requests-per-client); {count} refused so far",
                limit.max
            );
        }
        return too_many_requests(request.uri().path(), limit.max);
    };
    let response = next.run(request).instrument(span).await;
    drop(held);
    response
}

fn too_many_requests(path: &str, max: usize) -> Response {
    let message = format!(
        "too many requests in flight from this client: {max} at most \
         (--max-requests-per-client); wait for answers before sending more"
    );
    let mut response = if path.starts_with("/ui") {
        (StatusCode::TOO_MANY_REQUESTS, format!("{message}\n")).into_response()
    } else {
        (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(serde_json::json!({ "error": message })),
        )
            .into_response()
    };
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, "1".parse().expect("static"));
    response
}

/// Resolves once `stop` turns true.
async fn stopping(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: dropped here, before any other await.
    let _ = stop.wait_for(|stop| *stop).await.map(|_| ());
}

/// An accept error (out of file descriptors, mostly): paused on, so that a full table
/// is not retried in a tight loop, and said at the 1st, 2nd, 4th, 8th… failure.
async fn accept_failed(err: &io::Error, failures: &mut u64) {
    *failures += 1;
    if failures.is_power_of_two() {
        tracing::warn!("accepting a connection failed ({failures} times): {err}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// A TCP stream that notes when a byte last went through it, either way.
struct Watched {
    stream: TcpStream,
    activity: Activity,
}

/// When a [`Watched`] stream last moved a byte, in milliseconds since it was accepted.
#[derive(Clone)]
struct Activity {
    opened: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    fn touch(&self) {
        let now = self.opened.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// Resolves once no byte has moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let quiet = self.opened.elapsed().saturating_sub(last);
            if quiet >= idle {
                return;
            }
            tokio::time::sleep(idle - quiet).await;
        }
    }
}

impl Watched {
    fn new(stream: TcpStream) -> (Watched, Activity) {
        let activity = Activity {
            opened: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        };
        let watched = Watched {
            stream,
            activity: activity.clone(),
        };
        (watched, activity)
    }

    fn moved<T>(&self, polled: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if matches!(polled, Poll::Ready(Ok(_))) {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        self.moved(polled)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.moved(polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.moved(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Gives the request's body `limit` to arrive; a body that does not is answered 408 and
/// its connection closed.
async fn body_deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    let expired = Arc::new(AtomicBool::new(false));
    let timed = {
        let expired = expired.clone();
        request.map(|body| {
            Body::new(TimedBody {
                inner: body,
                deadline: Box::pin(tokio::time::sleep(limit)),
                expired,
            })
        })
    };
    let response = next.run(timed).await;
    if !expired.load(Ordering::Relaxed) {
        return response;
    }
    let message = format!(
        "the request body did not arrive within {}",
        humantime::format_duration(limit)
    );
    let mut response = (
        StatusCode::REQUEST_TIMEOUT,
        axum::Json(serde_json::json!({ "error": message })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, "close".parse().expect("static"));
    response
}

/// A request body that fails once its deadline has passed.
struct TimedBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Relaxed);
            let late = io::Error::new(io::ErrorKind::TimedOut, "request body timeout");
            return Poll::Ready(Some(Err(axum::Error::new(late))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
