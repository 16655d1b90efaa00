//! `lookout._native`: the engine for the Python package `lookout` (python/lookout/).
//!
//! The Python side normalizes inputs (paths, dicts, bytes) to text and wraps results in
//! its own classes; this side parses, validates and sends. Reports, previews and the
//! catalogue cross as JSON text: one small conversion, and the shapes are exactly the
//! CLI's `--json` ones. Errors are raised as the package's own exception classes
//! (`lookout._errors`), with the path of what is wrong.

use lookout::config::ConfigFile;
use lookout::options::OptionProblem;
use lookout::{Config, ConfigError, Event, PayloadError};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use services as _;

/// Top-level config tables that belong to `lookout serve`, so that a config file shared
/// with the server loads here too; the binding does not read them. The same list as
/// `lookout_server::policy::SECTIONS` (the server crate, with its databases, is not linked
/// in for one constant).
const SERVER_SECTIONS: &[&str] = &["worker"];

/// An engine: the validated services and settings of one config, the shared HTTP client
/// and the tokio runtime its deliveries run on.
#[pyclass(module = "lookout._native", subclass, frozen)]
struct Engine {
    engine: lookout::Engine,
    /// Always set; taken only on drop.
    runtime: Option<tokio::runtime::Runtime>,
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
        let config = load(py, text, origin, path)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("lookout")
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the runtime: {e}")))?;
        // Building the HTTP client loads the system's certificates: not under the GIL.
        let engine = py
            .detach(|| {
                let _entered = runtime.enter();
                lookout::Engine::new(config)
            })
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        Ok(Engine {
            engine,
            runtime: Some(runtime),
        })
    }

    /// Sends the payload (JSON text) to every configured service; returns the report as
    /// JSON text. The GIL is released while it runs.
    fn dispatch(&self, py: Python<'_>, payload: &str) -> PyResult<String> {
        let event = parse_event(py, payload)?;
        let report = py.detach(|| self.runtime().block_on(self.engine.dispatch(&event)));
        Ok(to_json(&report))
    }

    /// Starts sending the payload on the engine's runtime and returns at once; calls
    /// `callback(report_json)` from a runtime thread when done. A bad payload raises here.
    fn dispatch_then(&self, py: Python<'_>, payload: &str, callback: Py<PyAny>) -> PyResult<()> {
        let event = parse_event(py, payload)?;
        let engine = self.engine.clone();
        self.runtime().spawn(async move {
            let report = to_json(&engine.dispatch(&event).await);
            Python::attach(|py| {
                if let Err(err) = callback.call1(py, (report,)) {
                    err.write_unraisable(py, None);
                }
            });
        });
        Ok(())
    }

    /// What each configured service would send (the `--dry-run` requests, secrets
    /// redacted), as JSON text.
    fn preview(&self, py: Python<'_>, payload: &str) -> PyResult<String> {
        let event = parse_event(py, payload)?;
        Ok(to_json(&self.engine.preview(&event)))
    }

    /// The configured services as (instance name, service name) pairs.
    fn instances(&self) -> Vec<(String, &'static str)> {
        self.engine
            .instances()
            .iter()
            .map(|i| (i.name.clone(), i.service_name()))
            .collect()
    }
}

impl Engine {
    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the engine")
    }
}

impl Drop for Engine {
    /// Dropping a runtime normally waits for its threads, which panics when the drop
    /// happens on one of them (Python may collect the engine from a callback there).
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Checks a config without building an engine: every problem, as (path, message) pairs;
/// empty when the config is valid.
#[pyfunction]
#[pyo3(signature = (text=None, origin="<config>", path=None))]
fn validate(text: Option<&str>, origin: &str, path: Option<&str>) -> Vec<(Option<String>, String)> {
    match read_config(text, origin, path) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Options(problems)) => problems
            .iter()
            .map(|p| (Some(problem_path(p)), p.to_string()))
            .collect(),
        Err(other) => vec![(None, other.to_string())],
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
    m.add_class::<Engine>()?;
    m.add_function(wrap_pyfunction!(validate, m)?)?;
    m.add_function(wrap_pyfunction!(catalogue, m)?)?;
    m.add_function(wrap_pyfunction!(docs, m)?)?;
    Ok(())
}

fn read_config(
    text: Option<&str>,
    origin: &str,
    path: Option<&str>,
) -> Result<ConfigFile, ConfigError> {
    match (path, text) {
        (Some(path), _) => ConfigFile::load(path, SERVER_SECTIONS),
        (None, text) => ConfigFile::parse(text.unwrap_or_default(), origin, SERVER_SECTIONS),
    }
}

fn load(py: Python<'_>, text: Option<&str>, origin: &str, path: Option<&str>) -> PyResult<Config> {
    read_config(text, origin, path)
        .map(Config::from)
        .map_err(|err| config_error(py, &err))
}

/// The payload as the CLI takes it: a bad envelope raises; a problem in the attributes
/// does not, as in the CLI and `serve` — the services that need the field report it
/// (with its path) in their rows, and those that forward the payload still deliver.
fn parse_event(py: Python<'_>, payload: &str) -> PyResult<Event> {
    Event::parse(payload).map_err(|err| payload_error(py, &err))
}

/// `services.NAME.OPTION`: where in the config the problem is.
fn problem_path(problem: &OptionProblem) -> String {
    if problem.option.is_empty() {
        format!("services.{}", problem.instance)
    } else {
        format!("services.{}.{}", problem.instance, problem.option)
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
    let problems: Vec<(Option<String>, String)> = match err {
        ConfigError::Options(problems) => problems
            .iter()
            .map(|p| (Some(problem_path(p)), p.to_string()))
            .collect(),
        other => vec![(None, other.to_string())],
    };
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
