//! `lookout._native`: the engine for the Python package `lookout` (python/lookout/).
//!
//! The Python side normalizes inputs (paths, dicts, bytes) to text and wraps results in
//! its own classes; this side parses, validates and sends. Reports, previews and the
//! catalogue cross as JSON text: one small conversion, and the shapes are exactly the
//! CLI's `--json` ones. Errors are raised as the package's own exception classes
//! (`lookout._errors`), with the path of what is wrong.

use std::mem::ManuallyDrop;
use std::sync::{Arc, Mutex};

use lookout::config::{ConfigFile, Problem};
use lookout::{Config, ConfigError, Event, PayloadError};
use lookout_server::policy::SECTIONS;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyString;
use services as _;

mod logs;

/// An engine: the validated services and settings of one config, and what sends for it
/// in this process (the tokio runtime and the HTTP clients), built at first use.
///
/// Fork-safe: a process forked from one that had sent (gunicorn `--preload`, uWSGI,
/// Celery's prefork pool, `multiprocessing`) has none of the runtime's threads, and its
/// copies of the runtime's epoll descriptor and pooled sockets are shared with the
/// parent: touching them there stalls the child and breaks the parent's runtime. So the
/// sending part remembers the process that built it; another process leaves it alone
/// (never drops it) and builds its own from the config.
#[pyclass(module = "lookout._native", subclass, frozen)]
struct Engine {
    config: Config,
    /// Held only to look at or replace the `Arc`: a fork while another thread holds it
    /// would leave the child's copy locked.
    sender: Mutex<Option<Arc<Sender>>>,
}

/// The runtime and the engine (its HTTP clients) of one process.
struct Sender {
    pid: u32,
    engine: ManuallyDrop<lookout::Engine>,
    runtime: ManuallyDrop<tokio::runtime::Runtime>,
}

impl Sender {
    fn start(config: Config) -> Result<Sender, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("lookout")
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?;
        let engine = {
            let _entered = runtime.enter();
            lookout::Engine::new(config).map_err(|e| e.to_string())?
        };
        Ok(Sender {
            pid: std::process::id(),
            engine: ManuallyDrop::new(engine),
            runtime: ManuallyDrop::new(runtime),
        })
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if self.pid != std::process::id() {
            // Built before a fork: its threads are not here and its descriptors are the
            // parent's too. Leaked on purpose (once per fork).
            return;
        }
        // SAFETY: each is taken once, here, and never used again.
        let (engine, runtime) = unsafe {
            (
                ManuallyDrop::take(&mut self.engine),
                ManuallyDrop::take(&mut self.runtime),
            )
        };
        drop(engine);
        // Dropping a runtime normally waits for its threads, which panics when the drop
        // happens on one of them (Python may collect the engine from a callback there).
        runtime.shutdown_background();
    }
}

#[pymethods]
impl Engine {
    /// Engine(text, origin, path): from config text (TOML, or JSON when it starts with
    /// `{`) named `origin` in errors, or, when `path` is given, from that file.
    #[new]
    #[pyo3(signature = (text=None, origin="<config>", path=None))]
    fn new(
        py: Python<'_>,
        text: Option<&str>,
        origin: &str,
        path: Option<&str>,
    ) -> PyResult<Engine> {
        logs::refresh_level(py);
        let config = read_config(text, origin, path)
            .map(Config::from)
            .map_err(|err| config_error(py, &err))?;
        Ok(Engine {
            config,
            sender: Mutex::new(None),
        })
    }

    /// Sends the payload (JSON text) to every configured service; returns the report.
    /// The GIL is released while it runs.
    fn dispatch(&self, py: Python<'_>, payload: &Bound<'_, PyString>) -> PyResult<Sent> {
        let event = parse_event(py, payload)?;
        py.detach(|| {
            let sender = self.sender()?;
            let report = sender.runtime.block_on(sender.engine.dispatch(&event));
            Ok::<_, String>(Sent(report))
        })
        .map_err(PyRuntimeError::new_err)
    }

    /// Starts sending the payload on the engine's runtime and returns at once; calls
    /// `callback(report)` from a runtime thread when done. A bad payload raises here.
    fn dispatch_then(
        &self,
        py: Python<'_>,
        payload: &Bound<'_, PyString>,
        callback: Py<PyAny>,
    ) -> PyResult<()> {
        let event = parse_event(py, payload)?;
        let sender = py
            .detach(|| self.sender())
            .map_err(PyRuntimeError::new_err)?;
        let sending = Arc::clone(&sender);
        sender.runtime.spawn(async move {
            let report = Sent(sending.engine.dispatch(&event).await);
            Python::attach(|py| {
                if let Err(err) = callback.call1(py, (report,)) {
                    err.write_unraisable(py, None);
                }
            });
        });
        Ok(())
    }

    /// What each configured service would send (the `--dry-run` requests, secrets
    /// redacted), as JSON text. Sends nothing, so it needs no runtime.
    fn preview(&self, py: Python<'_>, payload: &Bound<'_, PyString>) -> PyResult<String> {
        let event = parse_event(py, payload)?;
        Ok(to_json(&lookout::dispatch::preview(
            &event,
            &self.config.services,
        )))
    }

    /// The configured services as (instance name, service name) pairs.
    fn instances(&self) -> Vec<(String, &'static str)> {
        self.config
            .services
            .iter()
            .map(|i| (i.name.clone(), i.service_name()))
            .collect()
    }
}

/// A report as it came from the engine. Its rows cross as plain tuples, built here
/// without JSON: a dispatch to fifty targets would otherwise spend a sixth of its time
/// encoding and decoding its own report. The JSON (the CLI's `send --json`) is made only
/// when asked for.
#[pyclass(module = "lookout._native", frozen)]
struct Sent(lookout::Report);

/// One row as `(instance, service, outcome, status, duration_ms, attempts, target,
/// reason)`, the fields of the package's `Delivery` in its order.
type Row<'a> = (
    &'a str,
    &'static str,
    &'static str,
    Option<u16>,
    u64,
    u32,
    Option<&'a str>,
    Option<&'a str>,
);

#[pymethods]
impl Sent {
    /// The event's `Model.action`.
    fn event(&self) -> &str {
        &self.0.event
    }

    fn rows(&self) -> Vec<Row<'_>> {
        self.0.results.iter().map(row).collect()
    }

    fn json(&self) -> String {
        to_json(&self.0)
    }
}

fn row(result: &lookout::dispatch::ServiceResult) -> Row<'_> {
    let delivery = &result.delivery;
    (
        &result.instance,
        result.service,
        delivery.outcome.label(),
        delivery.outcome.status(),
        delivery.duration.as_millis() as u64,
        delivery.attempts,
        delivery.target.as_deref(),
        delivery.outcome.reason(),
    )
}

impl Engine {
    /// This process's sender, built now if there is none yet or if the one there was
    /// built before a fork. Call without the GIL: building takes a while, and another
    /// thread may wait here meanwhile.
    fn sender(&self) -> Result<Arc<Sender>, String> {
        let mut slot = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = slot.as_ref().filter(|s| s.pid == std::process::id()) {
            return Ok(Arc::clone(sender));
        }
        let sender = Arc::new(Sender::start(self.config.clone())?);
        // The one from before a fork, if any, is dropped here: its `Drop` leaves it be.
        *slot = Some(Arc::clone(&sender));
        Ok(sender)
    }
}

/// Checks a config as `lookout validate` does, without building an engine: every
/// problem, as (path, message) pairs; empty when the config is valid.
#[pyfunction]
#[pyo3(signature = (text=None, origin="<config>", path=None))]
fn validate(text: Option<&str>, origin: &str, path: Option<&str>) -> Vec<(Option<String>, String)> {
    match read_config(text, origin, path) {
        Ok(_) => Vec::new(),
        Err(err) => problems(&err),
    }
}

/// The catalogue as JSON text: every service with its events and option schema, as
/// `lookout services --json` prints it.
#[pyfunction]
fn catalogue() -> String {
    let all: Vec<_> = lookout::catalogue().iter().map(|r| r.summary()).collect();
    to_json(&all)
}

/// A service's install docs in Markdown, or rendered to HTML; None for an unknown name.
#[pyfunction]
#[pyo3(signature = (name, html=false))]
fn docs(name: &str, html: bool) -> Option<String> {
    let markdown = lookout::docs::service_markdown(lookout::service::find(name)?);
    Some(if html {
        lookout::docs::markdown_to_html(&markdown)
    } else {
        markdown
    })
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Engine>()?;
    m.add_class::<Sent>()?;
    m.add_function(wrap_pyfunction!(validate, m)?)?;
    m.add_function(wrap_pyfunction!(catalogue, m)?)?;
    m.add_function(wrap_pyfunction!(docs, m)?)?;
    m.add_function(wrap_pyfunction!(logs::refresh_level, m)?)?;
    logs::forward_to_python();
    Ok(())
}

/// The config as the CLI reads it: its `[worker]` and `[server]` tables checked by the
/// server's own code, an operator's file refused when its targets are blocked.
fn read_config(
    text: Option<&str>,
    origin: &str,
    path: Option<&str>,
) -> Result<ConfigFile, ConfigError> {
    match (path, text) {
        (Some(path), _) => ConfigFile::load(path, SECTIONS),
        (None, text) => ConfigFile::parse(text.unwrap_or_default(), origin, SECTIONS),
    }
}

/// The payload as the CLI takes it: a bad envelope raises; a problem in the attributes
/// does not, as in the CLI and `serve` — the services that need the field report it
/// (with its path) in their rows, and those that forward the payload still deliver.
/// Text that is not Unicode (a lone surrogate) is a bad payload too.
fn parse_event(py: Python<'_>, payload: &Bound<'_, PyString>) -> PyResult<Event> {
    let Ok(text) = payload.to_cow() else {
        let message = "payload is not UTF-8 text: it holds a lone surrogate";
        return Err(raise(
            py,
            "PayloadError",
            (message, None::<String>, Vec::<()>::new()),
        ));
    };
    Event::parse(&text).map_err(|err| payload_error(py, &err))
}

/// Every problem of a config error, each with its path (none when the whole file is
/// unreadable).
fn problems(err: &ConfigError) -> Vec<(Option<String>, String)> {
    match err {
        ConfigError::Invalid(problems) => problems
            .iter()
            .map(|Problem { path, message }| (path.clone(), message.clone()))
            .collect(),
        other => vec![(None, other.to_string())],
    }
}

fn payload_error(py: Python<'_>, err: &PayloadError) -> PyErr {
    let path = match err {
        PayloadError::Field { path, .. } => Some(path.clone()),
        PayloadError::Syntax { .. } => None,
    };
    raise(
        py,
        "PayloadError",
        (err.to_string(), path, Vec::<()>::new()),
    )
}

fn config_error(py: Python<'_>, err: &ConfigError) -> PyErr {
    let problems = problems(err);
    let path = problems.first().and_then(|(path, _)| path.clone());
    raise(py, "ConfigError", (err.to_string(), path, problems))
}

/// An instance of `lookout._errors.<class>` built from `args`, as a Python exception.
fn raise<'py>(py: Python<'py>, class: &str, args: impl pyo3::call::PyCallArgs<'py>) -> PyErr {
    let built = py
        .import("lookout._errors")
        .and_then(|module| module.getattr(class))
        .and_then(|class| class.call1(args));
    match built {
        Ok(exception) => PyErr::from_value(exception),
        Err(err) => err,
    }
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("reports serialize")
}
