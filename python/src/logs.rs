//! The engine's log events (`tracing`), handed to Python's `logging` as records of the
//! logger `lookout`: a retry is INFO, a finished delivery DEBUG. What they carry is
//! redacted where it is made (targets, reasons), as in the reports.
//!
//! Handing a record over takes the GIL, so events below the logger's level are dropped
//! here without it: the level is read from Python when an engine is built and then at
//! most once a second (a level changed meanwhile applies within that second).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

/// The `lookout` logger's effective level as last read (Python's numbers: 10 is DEBUG);
/// above CRITICAL until read, so that nothing is forwarded before.
static LEVEL: AtomicU32 = AtomicU32::new(u32::MAX);
/// When it was last read, in milliseconds since the epoch.
static READ_AT: AtomicU64 = AtomicU64::new(0);
const REREAD_AFTER_MS: u64 = 1_000;

/// Installs the forwarding as the process's `tracing` subscriber (once; a subscriber the
/// host set up first is left in place).
pub fn forward_to_python() {
    let _ = tracing::subscriber::set_global_default(ToPython);
}

/// Reads the `lookout` logger's level now (the package calls it when an engine is built
/// and when logging is configured).
#[pyfunction]
pub fn refresh_level(py: Python<'_>) {
    let level = logger(py)
        .and_then(|logger| logger.call_method0("getEffectiveLevel")?.extract::<u32>())
        .unwrap_or(u32::MAX);
    LEVEL.store(level, Ordering::Relaxed);
    READ_AT.store(now_ms(), Ordering::Relaxed);
}

fn logger(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    py.import("logging")?
        .call_method1("getLogger", ("lookout",))
}

fn python_level(level: &Level) -> u32 {
    match *level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 5,
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn wanted(level: &Level) -> bool {
    if now_ms().saturating_sub(READ_AT.load(Ordering::Relaxed)) > REREAD_AFTER_MS {
        Python::attach(refresh_level);
    }
    python_level(level) >= LEVEL.load(Ordering::Relaxed)
}

/// Only the engine's own events: not those of the libraries under it.
fn ours(metadata: &Metadata<'_>) -> bool {
    metadata.target().starts_with("lookout")
}

struct ToPython;

impl Subscriber for ToPython {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        // Asked again at each event: the logger's level may change.
        if ours(metadata) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        ours(metadata) && metadata.is_event() && wanted(metadata.level())
    }

    fn event(&self, event: &Event<'_>) {
        let mut line = Line::default();
        event.record(&mut line);
        let level = python_level(event.metadata().level());
        Python::attach(|py| {
            let logged = logger(py)
                .and_then(|logger| logger.call_method1("log", (level, "%s", line.text())));
            if let Err(err) = logged {
                err.write_unraisable(py, None);
            }
        });
    }

    // No spans: the engine opens none, and nothing of theirs would be shown.
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// An event as one line: its message, then its fields as `name=value`.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Line {
    fn text(&self) -> String {
        format!("{}{}", self.message, self.fields)
    }
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}
