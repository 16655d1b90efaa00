//! The bench's sink: a lean HTTP server on 127.0.0.1 that reads each request, waits as
//! its path says and answers `200 ok`. Unlike `lookout_testkit::CaptureServer` it keeps
//! nothing but counters, so 20,000 requests cost it no memory and no locks.
//!
//! Paths: `/ms/<delay>/…` answers after `<delay>` milliseconds, `/hang/…` never answers,
//! anything else answers at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

pub struct Sink {
    addr: SocketAddr,
    counters: Arc<Counters>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sink {
    /// Starts the sink on its own thread and runtime with `workers` threads, so that it
    /// serves the same way whichever client is being measured.
    pub fn start(workers: usize) -> Sink {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("local address");
        let counters = Arc::new(Counters::default());
        let state = counters.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .thread_name("sink")
                .enable_all()
                .build()
                .expect("sink runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = axum::Router::new().fallback(answer).with_state(state);
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stopped => {}
                }
            });
            // Hanging handlers would otherwise keep the runtime from shutting down.
            runtime.shutdown_background();
        });
        Sink {
            addr,
            counters,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/ms/<delay_ms>/t<target>`.
    pub fn url(&self, delay_ms: u64, target: usize) -> String {
        format!("http://{}/ms/{delay_ms}/t{target}", self.addr)
    }

    /// A URL that never answers.
    pub fn hanging_url(&self, target: usize) -> String {
        format!("http://{}/hang/t{target}", self.addr)
    }

    pub fn received(&self) -> u64 {
        self.counters.received.load(Ordering::Relaxed)
    }

    /// The most requests held at once since the last [`Sink::reset_max_in_flight`].
    pub fn max_in_flight(&self) -> u64 {
        self.counters.max_in_flight.load(Ordering::Relaxed)
    }

    pub fn reset_max_in_flight(&self) {
        let now = self.counters.in_flight.load(Ordering::Relaxed);
        self.counters.max_in_flight.store(now, Ordering::Relaxed);
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Counts a request as in flight until it is answered or its connection is dropped.
struct InFlight(Arc<Counters>);

impl InFlight {
    fn enter(counters: &Arc<Counters>) -> InFlight {
        counters.received.fetch_add(1, Ordering::Relaxed);
        let now = counters.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        counters.max_in_flight.fetch_max(now, Ordering::Relaxed);
        InFlight(counters.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn answer(State(counters): State<Arc<Counters>>, request: Request) -> Response {
    let _in_flight = InFlight::enter(&counters);
    let (parts, body) = request.into_parts();
    // Read the whole body, as a real receiver would.
    let _ = axum::body::to_bytes(body, 1024 * 1024).await;
    let mut segments = parts.uri.path().trim_start_matches('/').split('/');
    match (segments.next(), segments.next()) {
        (Some("hang"), _) => std::future::pending().await,
        (Some("ms"), Some(ms)) => {
            let delay = ms.parse().unwrap_or(0);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
        }
        _ => {}
    }
    Response::new(Body::from("ok"))
}
