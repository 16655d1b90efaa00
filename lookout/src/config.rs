//! The config file: engine settings and the enabled services with their options.
//!
//! ```toml
//! [engine]
//! deadline = "10s"
//!
//! [services.slack]            # the table's name is the service's name…
//! url = "https://hooks.slack.com/services/…"
//!
//! [services.ops-alerts]       # …unless `service` says otherwise
//! service = "slack"
//! url = "https://hooks.slack.com/services/…"
//! channel = "#ops"
//! ```
//!
//! JSON with the same shape is accepted too. Keys (tokens, webhook URLs) belong here, in
//! a file of their own, not in scripts or payloads.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::options::{OptionProblem, Options};
use crate::service::{self, Registration};
use crate::settings::Settings;

/// A loaded, validated config.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub engine: Settings,
    /// The enabled services, in file order.
    pub services: Vec<Instance>,
}

/// One enabled service with its validated options.
#[derive(Debug, Clone)]
pub struct Instance {
    /// The config table's name (`slack`, `ops-alerts`).
    pub name: String,
    pub registration: &'static Registration,
    pub options: Arc<Options>,
}

impl Instance {
    /// Validates `options` for the named service.
    pub fn new(
        name: &str,
        service: &str,
        options: &Map<String, Value>,
    ) -> Result<Instance, Vec<OptionProblem>> {
        let Some(registration) = service::find(service) else {
            let known: Vec<&str> = service::catalogue().iter().map(|r| r.name()).collect();
            return Err(vec![OptionProblem {
                instance: name.to_owned(),
                option: String::new(),
                problem: format!("unknown service `{service}` (known: {})", known.join(", ")),
            }]);
        };
        let options = Options::validate(name, &registration.service.schema(), options)?;
        Ok(Instance {
            name: name.to_owned(),
            registration,
            options: Arc::new(options),
        })
    }

    pub fn service_name(&self) -> &'static str {
        self.registration.name()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config {origin}: {message}")]
    Syntax { origin: String, message: String },
    #[error("{}", Problems(.0))]
    Options(Vec<OptionProblem>),
}

struct Problems<'a>(&'a [OptionProblem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    engine: Settings,
    #[serde(default)]
    services: Map<String, Value>,
}

impl Config {
    /// Reads and validates a config file (TOML, or JSON when it starts with `{`).
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())?.refusing_blocked_targets()
    }

    /// This config, unless one of its services targets what the SSRF guard of its own
    /// `[engine]` will surely refuse (an operator's file, checked as a whole; configs
    /// built in code may set their engine settings after parsing).
    fn refusing_blocked_targets(self) -> Result<Config, ConfigError> {
        let guard = crate::delivery::ssrf::Guard::new(&self.engine.allow_networks);
        let problems: Vec<_> = self
            .services
            .iter()
            .flat_map(|instance| crate::delivery::ssrf::refused_targets(instance, &guard))
            .collect();
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(ConfigError::Options(problems))
        }
    }

    /// Parses config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let syntax = |message: String| ConfigError::Syntax {
            origin: origin.to_owned(),
            message: message.trim().replace('\n', " "),
        };
        let raw: RawConfig = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| syntax(e.to_string()))?
        } else {
            toml::from_str(text).map_err(|e| syntax(toml_message(&e, text)))?
        };
        let mut services = Vec::new();
        let mut problems = Vec::new();
        for (name, table) in raw.services {
            match instance_from_table(&name, table) {
                Ok(Some(instance)) => services.push(instance),
                Ok(None) => {}
                Err(mut found) => problems.append(&mut found),
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError::Options(problems));
        }
        Ok(Config {
            engine: raw.engine,
            services,
        })
    }
}

/// One `[services.NAME]` table; `None` when it says `enabled = false`.
fn instance_from_table(name: &str, table: Value) -> Result<Option<Instance>, Vec<OptionProblem>> {
    let problem = |option: &str, problem: &str| {
        vec![OptionProblem {
            instance: name.to_owned(),
            option: option.to_owned(),
            problem: problem.to_owned(),
        }]
    };
    let Value::Object(mut options) = table else {
        return Err(problem("", "expected a table of options"));
    };
    let service = match options.remove("service") {
        None => name.to_owned(),
        Some(Value::String(service)) => service,
        Some(_) => return Err(problem("service", "expected the name of a service")),
    };
    match options.remove("enabled") {
        None | Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Ok(None),
        Some(_) => return Err(problem("enabled", "expected true or false")),
    }
    Instance::new(name, &service, &options).map(Some)
}

/// toml's message is multi-line with a source excerpt; keep "line L, column C: what".
fn toml_message(err: &toml::de::Error, text: &str) -> String {
    let what = err.message();
    match err.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {what}")
        }
        None => what.to_owned(),
    }
}
