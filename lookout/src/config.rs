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

use serde_json::{Map, Value};

use crate::delivery::ssrf::{Blocked, Guard};
use crate::job::Job;
use crate::options::{Kind, OptionProblem, OptionSpec, Options, Schema};
use crate::payload::{Event, PayloadPath};
use crate::service::{self, Registration};
use crate::settings::Settings;
use crate::shaping::{COALESCE, DIGEST, Shaping};
use crate::text::budget::Cut;
use crate::text::template::{TEMPLATE, Templates};

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
    /// The events this configured service gets, when its table says (`events = [...]`);
    /// else the service's own default.
    pub events: Option<Arc<[String]>>,
    /// The operator's wording for parts of the message (`template.title = "…"`).
    pub templates: Templates,
    /// How `lookout serve` queues its deliveries (`order_by`, `concurrency`).
    pub lane: LaneOptions,
    /// The configured service of the same product that gets this one's events when
    /// their delivery goes dead or its target is disabled (`fallback = "NAME"`).
    pub fallback: Option<String>,
    /// How `lookout serve` shapes its messages for people (`coalesce`, `digest`).
    pub shaping: Shaping,
}

impl Instance {
    /// What this configured service gets to build for `event` when nothing is sent
    /// (previews, tests): the job with `delivery_id`, uncut, without a time of sending.
    pub fn job<'a>(&'a self, event: &'a Event, delivery_id: &'a str) -> Job<'a> {
        Job {
            event,
            options: &self.options,
            delivery_id,
            templates: &self.templates,
            cut: Cut::NONE,
            sent_at: None,
        }
    }

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
        let mut options = options.clone();
        let events = options
            .remove(EVENTS)
            .map(|patterns| event_filter(name, &patterns))
            .transpose();
        let templates = options
            .remove(TEMPLATE)
            .map_or(Ok(Templates::default()), |table| {
                Templates::parse(name, &table)
            });
        let lane = LaneOptions::take(name, &mut options);
        let fallback = take_fallback(name, &mut options);
        let shaping = Shaping::take(name, &mut options);
        let validated = Options::validate(name, &registration.schema, &options);
        let mut problems = Vec::new();
        let events = events.map_err(|more| problems.extend(more));
        let templates = templates.map_err(|more| problems.extend(more));
        let lane = lane.map_err(|more| problems.extend(more));
        let fallback = fallback.map_err(|more| problems.extend(more));
        let shaping = shaping.map_err(|more| problems.extend(more));
        let options = validated.map_err(|more| problems.extend(more));
        match (events, templates, lane, fallback, shaping, options) {
            (Ok(events), Ok(templates), Ok(lane), Ok(fallback), Ok(shaping), Ok(options)) => {
                Ok(Instance {
                    name: name.to_owned(),
                    registration,
                    options: Arc::new(options),
                    events,
                    templates,
                    lane,
                    fallback,
                    shaping,
                })
            }
            _ => Err(problems),
        }
    }

    pub fn service_name(&self) -> &'static str {
        self.registration.name()
    }

    /// Whether this configured service gets `event`: its own `events` filter when it
    /// has one, else the service's default.
    pub fn listens_to(&self, event: &Event) -> bool {
        match &self.events {
            Some(patterns) => patterns
                .iter()
                .any(|p| service::pattern_matches(p, &event.model, &event.action)),
            None => self.registration.listens_to(event),
        }
    }
}

/// The option key that replaces a service's default events for one configured service.
const EVENTS: &str = "events";

/// The keys of a `[services.NAME]` table that every service takes beside its own options
/// ([`Instance::new`] takes them out before checking those): `events`, `template`, the
/// lane's ([`LANE_OPTIONS`]), `fallback` and the shaping tables. All public by
/// declaration, so they are shown as written wherever a stored service is shown, and a
/// table shown that way reads back the same.
pub fn settings_beside_options() -> impl Iterator<Item = &'static str> {
    [EVENTS, TEMPLATE, COALESCE, DIGEST].into_iter().chain(
        LANE_OPTIONS
            .iter()
            .chain(FALLBACK_OPTIONS)
            .map(|spec| spec.name),
    )
}

/// How `lookout serve` queues one configured service's deliveries (docs/SERVING.md,
/// "Fairness and lanes"): options every service takes beside its own ([`LANE_OPTIONS`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LaneOptions {
    /// Deliveries whose events have equal values at this path are attempted one at a
    /// time, in the order the events arrived.
    pub order_by: Option<PayloadPath>,
    /// The most attempts in flight to this service's target at once
    /// (default [`DEFAULT_CONCURRENCY`]).
    pub concurrency: Option<u32>,
}

/// A lane's cap on attempts in flight at once when its service does not set one: enough
/// for a fast target to take thousands a second, few enough that a slow one holds only
/// a few of the workers' slots.
pub const DEFAULT_CONCURRENCY: u32 = 8;

/// The options of [`LaneOptions`], checked like a service's own (the console shows them
/// with every service's form).
pub const LANE_OPTIONS: &[OptionSpec] = &[
    OptionSpec::string(
        "order_by",
        "A dotted path into the payload, e.g. `attributes.number`: deliveries whose events \
         have the same value there are sent one at a time, in the order the events arrived \
         (one that is retrying holds back only its own value; one that goes dead lets the \
         next go on). Leave empty to send in any order.",
    )
    .public()
    .optional()
    .checked(PayloadPath::check),
    OptionSpec::integer(
        "concurrency",
        "The most deliveries of this service in flight to its target at once (default 8, at \
         most 1024); a target that answers slowly is given fewer.",
    )
    .public()
    .range(1, 1_024)
    .optional(),
];

impl LaneOptions {
    /// Takes the lane's options out of a configured service's table and checks them.
    fn take(
        instance: &str,
        options: &mut Map<String, Value>,
    ) -> Result<LaneOptions, Vec<OptionProblem>> {
        let own: Map<String, Value> = LANE_OPTIONS
            .iter()
            .filter_map(|spec| Some((spec.name.to_owned(), options.remove(spec.name)?)))
            .collect();
        let checked = Options::validate(instance, &Schema::new(LANE_OPTIONS), &own)?;
        Ok(LaneOptions {
            order_by: checked
                .str("order_by")
                .and_then(|p| PayloadPath::parse(p).ok()),
            concurrency: checked
                .integer("concurrency")
                .and_then(|n| u32::try_from(n).ok()),
        })
    }
}

/// The option naming a configured service's fallback (docs/SHAPING.md, "Fallback
/// routes"), checked like a service's own; the console shows it with every service's
/// form.
pub const FALLBACK_OPTIONS: &[OptionSpec] = &[OptionSpec::string(
    "fallback",
    "The name of another service of this product that gets this one's events when their \
     delivery goes dead or its target is disabled, once each, whatever that service's own \
     `events` say (one hop: its own failures go no further). Leave empty for none.",
)
.public()
.optional()
.checked(check_name)];

/// Takes `fallback` out of a configured service's table and checks it on its own (that
/// the name exists in the product is checked with the other services).
fn take_fallback(
    instance: &str,
    options: &mut Map<String, Value>,
) -> Result<Option<String>, Vec<OptionProblem>> {
    let own: Map<String, Value> = FALLBACK_OPTIONS
        .iter()
        .filter_map(|spec| Some((spec.name.to_owned(), options.remove(spec.name)?)))
        .collect();
    let checked = Options::validate(instance, &Schema::new(FALLBACK_OPTIONS), &own)?;
    let fallback = checked.str(FALLBACK).map(str::to_owned);
    if fallback.as_deref() == Some(instance) {
        return Err(vec![OptionProblem {
            instance: instance.to_owned(),
            option: FALLBACK.to_owned(),
            problem: format!("`{instance}` cannot be its own fallback (a loop)"),
        }]);
    }
    Ok(fallback)
}

const FALLBACK: &str = "fallback";

/// What is wrong with the fallbacks of a product's services (`services`: the enabled
/// ones, validated; `table`: every table as written, to tell a switched-off service from
/// one that does not exist): each must name another enabled service, and following
/// fallbacks must never come back to where it started.
pub fn fallback_problems(
    table: &Map<String, Value>,
    services: &[ServiceTable],
) -> Vec<OptionProblem> {
    let named: Vec<(&str, Option<&str>)> = services
        .iter()
        .map(|s| (s.instance.name.as_str(), s.instance.fallback.as_deref()))
        .collect();
    check_fallbacks(&named, |name| {
        let options = table.get(name)?;
        Some(options.get("enabled") == Some(&Value::Bool(false)))
    })
}

/// [`fallback_problems`] for `(name, fallback)` pairs of the enabled, valid services;
/// `written` tells about a name not among them: `None` when the product has no such
/// service, else whether it is switched off (if not, it is invalid, and its own problems
/// say why).
pub fn check_fallbacks(
    services: &[(&str, Option<&str>)],
    written: impl Fn(&str) -> Option<bool>,
) -> Vec<OptionProblem> {
    let fallback_of = |name: &str| {
        services
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, fallback)| *fallback)
    };
    let mut problems = Vec::new();
    for &(name, fallback) in services {
        let Some(fallback) = fallback else { continue };
        let problem = |text: String| OptionProblem {
            instance: name.to_owned(),
            option: FALLBACK.to_owned(),
            problem: text,
        };
        if fallback_of(fallback).is_none() {
            let known: Vec<&str> = services
                .iter()
                .map(|(n, _)| *n)
                .filter(|n| *n != name)
                .collect();
            let text = match written(fallback) {
                Some(false) => continue, // Invalid: its own problems are reported.
                Some(true) => format!(
                    "`{fallback}` is switched off (enabled = false): it cannot be a fallback"
                ),
                None => format!(
                    "no service `{fallback}` in this product (it has: {})",
                    if known.is_empty() {
                        "no other".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            };
            problems.push(problem(text));
            continue;
        }
        if let Some(path) = loop_from(name, &fallback_of) {
            problems.push(problem(format!(
                "a loop: {} (a fallback must not lead back to the service it covers)",
                path.join(" → ")
            )));
        }
    }
    problems
}

/// The fallbacks followed from `start` when they come back to it (`a → b → a`).
fn loop_from<'a>(
    start: &'a str,
    fallback_of: &impl Fn(&str) -> Option<Option<&'a str>>,
) -> Option<Vec<&'a str>> {
    let mut path = vec![start];
    let mut at = start;
    while let Some(Some(next)) = fallback_of(at) {
        path.push(next);
        if next == start {
            return Some(path);
        }
        if path[..path.len() - 1].contains(&next) {
            return None; // A loop further on, reported for the services in it.
        }
        at = next;
    }
    None
}

/// The models Sprint.ly sends, and the actions it sends them with.
const MODELS: &[&str] = &["Item", "Comment", "Block", "Favorite", "Deploy"];
const ACTIONS: &[&str] = &["created", "updated", "deleted"];

/// `events = ["Item.*", "Comment.created"]`, checked: every pattern `Model.action`
/// with a known model and action (or `*` for either), or a lone `*`.
fn event_filter(instance: &str, patterns: &Value) -> Result<Arc<[String]>, Vec<OptionProblem>> {
    let problem = |text: String| OptionProblem {
        instance: instance.to_owned(),
        option: EVENTS.to_owned(),
        problem: text,
    };
    // An empty list is allowed: the service then gets events only as a fallback.
    let Some(list) = patterns.as_array() else {
        let text = "expected a list of `Model.action` patterns, e.g. [\"Item.*\"] (or [] for \
                    events only as another service's fallback)";
        return Err(vec![problem(text.to_owned())]);
    };
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for pattern in list {
        match pattern.as_str().map(check_pattern) {
            Some(Ok(pattern)) => found.push(pattern.to_owned()),
            Some(Err(text)) => problems.push(problem(text)),
            None => problems.push(problem(format!("`{pattern}` is not a string"))),
        }
    }
    if problems.is_empty() {
        Ok(found.into())
    } else {
        Err(problems)
    }
}

fn check_pattern(pattern: &str) -> Result<&str, String> {
    if pattern == "*" {
        return Ok(pattern);
    }
    let Some((model, action)) = pattern.split_once('.') else {
        return Err(format!(
            "`{pattern}` is not `Model.action` (e.g. `Item.created`, `*.created`)"
        ));
    };
    let known = |word: &str, known: &[&str]| {
        word == "*" || known.iter().any(|k| k.eq_ignore_ascii_case(word))
    };
    if !known(model, MODELS) {
        return Err(format!(
            "`{pattern}`: unknown model `{model}` (known: {}, or *)",
            MODELS.join(", ")
        ));
    }
    if !known(action, ACTIONS) {
        return Err(format!(
            "`{pattern}`: unknown action `{action}` (known: {}, or *)",
            ACTIONS.join(", ")
        ));
    }
    Ok(pattern)
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The text is not TOML (or JSON) with tables at the top.
    #[error("config {origin}: {message}")]
    Syntax { origin: String, message: String },
    /// Readable, but wrong: every problem of every table, at once.
    #[error("{}", Problems(.0))]
    Invalid(Vec<Problem>),
}

/// One thing wrong in a config file: where (`engine.deadline`, `services.slack.url`,
/// `worker.lease`) and what, the message saying where too (`[engine] deadline: …`), as
/// `lookout validate` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted, from the top of the file; `None` when the whole file is at fault.
    pub path: Option<String>,
    pub message: String,
}

impl Problem {
    /// A problem in the top-level table `table` at `inner` (a dotted path in it, or
    /// empty for the table itself).
    pub fn in_table(table: &str, inner: &str, what: impl fmt::Display) -> Problem {
        let (path, message) = if inner.is_empty() || inner == "." {
            (table.to_owned(), format!("[{table}]: {what}"))
        } else {
            (
                format!("{table}.{inner}"),
                format!("[{table}] {inner}: {what}"),
            )
        };
        Problem {
            path: Some(path),
            message,
        }
    }
}

impl From<&OptionProblem> for Problem {
    fn from(problem: &OptionProblem) -> Problem {
        let path = match problem.option.as_str() {
            "" => format!("services.{}", problem.instance),
            option => format!("services.{}.{option}", problem.instance),
        };
        Problem {
            path: Some(path),
            message: problem.to_string(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

fn invalid(problems: &[OptionProblem]) -> ConfigError {
    ConfigError::Invalid(problems.iter().map(Problem::from).collect())
}

struct Problems<'a>(&'a [Problem]);

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

/// A top-level table that another layer reads (`[worker]` for `lookout serve`), with
/// that layer's check of it: a file is checked whole wherever it is loaded.
#[derive(Clone, Copy)]
pub struct Section {
    pub name: &'static str,
    /// Checks the table, given the file's `[engine]` settings (a lease must outlast the
    /// deadline), or `None` when those are unreadable: then what does not depend on them.
    pub check: fn(&Value, Option<&Settings>) -> Result<(), Problem>,
}

/// A config file's top-level tables, as written.
struct RawConfig {
    engine: Option<Value>,
    services: Map<String, Value>,
    /// Every other top-level table: checked against the sections the caller reads.
    sections: Map<String, Value>,
}

/// A config file as written: the engine's settings, every enabled `[services.NAME]`
/// table (as written and validated), and the tables that belong to other layers
/// (`[worker]` for `lookout serve`), which the caller named and will read itself.
pub struct ConfigFile {
    pub engine: Settings,
    pub services: Vec<ServiceTable>,
    /// Top-level tables other than `engine` and `services`, by name.
    pub sections: Map<String, Value>,
}

/// One enabled `[services.NAME]` table.
#[derive(Clone)]
pub struct ServiceTable {
    /// The options as written, without `service` and `enabled` (a store keeps these, so
    /// that defaults apply as they are when the options are used).
    pub options: Map<String, Value>,
    /// The same, validated.
    pub instance: Instance,
}

// Never print the options as written: they hold the secrets.
impl fmt::Debug for ServiceTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let instance = &self.instance;
        write!(
            f,
            "ServiceTable({} = {})",
            instance.name,
            instance.service_name()
        )
    }
}

impl ConfigFile {
    /// Reads and validates a config file (TOML, or JSON when it starts with `{`).
    /// Top-level tables other than `engine` and `services` must be among `sections`.
    pub fn load(path: impl AsRef<Path>, sections: &[Section]) -> Result<ConfigFile, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        ConfigFile::parse(&text, &path.display().to_string(), sections)?.refusing_blocked_targets()
    }

    /// This file, unless one of its services targets what the SSRF guard of its own
    /// `[engine]` will surely refuse (an operator's file, checked as a whole; configs
    /// built in code may set their engine settings after parsing).
    fn refusing_blocked_targets(self) -> Result<ConfigFile, ConfigError> {
        let guard = Guard::for_settings(&self.engine);
        let problems: Vec<_> = self
            .services
            .iter()
            .flat_map(|table| refused_targets(&table.instance, &guard))
            .collect();
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(invalid(&problems))
        }
    }

    /// Parses config text; `origin` names it in errors. Every problem of every table is
    /// reported at once, each with its path: the engine's settings, each service, and
    /// each of `sections` (the only other tables allowed), checked by its own reader.
    pub fn parse(
        text: &str,
        origin: &str,
        sections: &[Section],
    ) -> Result<ConfigFile, ConfigError> {
        let raw = RawConfig::parse(text, origin)?;
        let mut problems = Vec::new();
        let engine = raw.engine_settings().map_err(|p| problems.push(p));
        let services = parse_services(&raw.services)
            .map_err(|more| problems.extend(more.iter().map(Problem::from)));
        problems.extend(raw.section_problems(sections, engine.as_ref().ok()));
        match (engine, services) {
            (Ok(engine), Ok(services)) if problems.is_empty() => Ok(ConfigFile {
                engine,
                services,
                sections: raw.sections,
            }),
            _ => Err(ConfigError::Invalid(problems)),
        }
    }
}

impl RawConfig {
    /// Config text as written, split into its top-level tables, nothing validated.
    fn parse(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
        let syntax = |message: String| ConfigError::Syntax {
            origin: origin.to_owned(),
            message: message.trim().replace('\n', " "),
        };
        let mut tables: Map<String, Value> = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| syntax(e.to_string()))?
        } else {
            toml::from_str(text).map_err(|e| syntax(toml_message(&e, text)))?
        };
        let engine = tables.shift_remove("engine");
        let services = match tables.shift_remove("services") {
            None => Map::new(),
            Some(Value::Object(services)) => services,
            Some(_) => return Err(syntax("`services` must be a table".to_owned())),
        };
        Ok(RawConfig {
            engine,
            services,
            sections: tables,
        })
    }

    /// The `[engine]` table checked; its defaults when the file has none.
    fn engine_settings(&self) -> Result<Settings, Problem> {
        let Some(table) = &self.engine else {
            return Ok(Settings::default());
        };
        serde_path_to_error::deserialize(table)
            .map_err(|e| Problem::in_table("engine", &e.path().to_string(), e.inner()))
    }

    /// What is wrong with the other top-level tables: unknown ones, and what each
    /// known one's reader finds.
    fn section_problems(&self, sections: &[Section], engine: Option<&Settings>) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (name, table) in &self.sections {
            match sections.iter().find(|s| s.name == name) {
                None => problems.push(Problem {
                    path: Some(name.clone()),
                    message: unknown_section(name, sections),
                }),
                Some(section) => problems.extend((section.check)(table, engine).err()),
            }
        }
        problems
    }
}

fn unknown_section(name: &str, sections: &[Section]) -> String {
    let mut known = vec!["engine", "services"];
    known.extend(sections.iter().map(|s| s.name));
    format!("unknown section `{name}` (known: {})", known.join(", "))
}

/// The `services` table of config text, as written (its `[engine]` left out): not yet
/// validated, so that a caller can fill in what the text leaves out (the console's
/// preview keeps stored secrets) before [`parse_services`] checks it.
pub fn services_table(text: &str, origin: &str) -> Result<Map<String, Value>, ConfigError> {
    let raw = RawConfig::parse(text, origin)?;
    if let Some(name) = raw.sections.keys().next() {
        return Err(ConfigError::Syntax {
            origin: origin.to_owned(),
            message: unknown_section(name, &[]),
        });
    }
    Ok(raw.services)
}

impl From<ConfigFile> for Config {
    fn from(file: ConfigFile) -> Config {
        Config {
            engine: file.engine,
            services: file.services.into_iter().map(|t| t.instance).collect(),
        }
    }
}

impl Config {
    /// Reads and validates a config file (TOML, or JSON when it starts with `{`).
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        ConfigFile::load(path, &[]).map(Config::from)
    }

    /// Parses config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        ConfigFile::parse(text, origin, &[]).map(Config::from)
    }
}

/// Turns a `services` table (instance name → options, with optional `service` and
/// `enabled` keys) into the enabled, validated services: the one parser for the config
/// file and for a product's services in `lookout serve`. Every problem is reported at
/// once; tables with `enabled = false` are left out.
pub fn parse_services(table: &Map<String, Value>) -> Result<Vec<ServiceTable>, Vec<OptionProblem>> {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for (name, value) in table {
        match service_table(name, value) {
            Ok(Some(table)) => found.push(table),
            Ok(None) => {}
            Err(mut more) => problems.append(&mut more),
        }
    }
    problems.extend(fallback_problems(table, &found));
    if problems.is_empty() {
        Ok(found)
    } else {
        Err(problems)
    }
}

/// One `[services.NAME]` table; `None` when it says `enabled = false`.
fn service_table(name: &str, table: &Value) -> Result<Option<ServiceTable>, Vec<OptionProblem>> {
    let problem = |option: &str, problem: &str| {
        vec![OptionProblem {
            instance: name.to_owned(),
            option: option.to_owned(),
            problem: problem.to_owned(),
        }]
    };
    check_name(name).map_err(|text| problem("", &text))?;
    let Value::Object(options) = table else {
        return Err(problem("", "expected a table of options"));
    };
    let mut options = options.clone();
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
    let instance = Instance::new(name, &service, &options)?;
    Ok(Some(ServiceTable { options, instance }))
}

/// Names of configured services (and of products) end up in URLs, tables and reports:
/// keep them plain.
pub fn check_name(name: &str) -> Result<(), String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > 64 || !name.chars().all(plain) {
        // Cut and escaped: a name sent by anyone must not fill or drive a screen.
        let mut shown: String = name
            .chars()
            .take(64)
            .flat_map(char::escape_default)
            .collect();
        if name.chars().count() > 64 {
            shown.push('…');
        }
        Err(format!(
            "`{shown}` is not a valid name (1 to 64 letters, digits, `-`, `_` or `.`)"
        ))
    } else {
        Ok(())
    }
}

/// The options of `instance` naming a target that the guard will surely refuse, each as
/// a problem naming the option: URL options, and declared destinations that hold a host
/// (an SMTP `host`, a broker's `url`), whose host is an IP address (or `localhost`)
/// outside `allow_networks`. Known when the options are configured, without resolving a
/// name or connecting anywhere.
pub fn refused_targets(instance: &Instance, guard: &Guard) -> Vec<OptionProblem> {
    let options = &instance.options;
    let mut problems = Vec::new();
    for spec in instance.registration.schema.options {
        let refused = match spec.kind {
            Kind::Url => refused_url(options.str(spec.name), guard),
            Kind::UrlList => refused_url(options.list(spec.name), guard),
            Kind::String if spec.decides_destination() => options
                .str(spec.name)
                .and_then(host_written)
                .and_then(|host| guard.check_host_literal(&host).err()),
            _ => None,
        };
        if let Some(blocked) = refused {
            problems.push(OptionProblem {
                instance: instance.name.clone(),
                option: spec.name.to_owned(),
                problem: format!("the SSRF guard will refuse this target: {blocked}"),
            });
        }
    }
    problems
}

fn refused_url<'a>(urls: impl IntoIterator<Item = &'a str>, guard: &Guard) -> Option<Blocked> {
    urls.into_iter()
        .filter_map(|raw| url::Url::parse(raw).ok())
        .find_map(|url| guard.check_literal(&url).err())
}

/// The host a destination option names: a URL's (`redis://:pw@host:6379`), or the
/// value itself (`smtp.example.com`). Never its credentials.
fn host_written(value: &str) -> Option<String> {
    if !value.contains("://") {
        return Some(value.trim().to_owned());
    }
    let url = url::Url::parse(value).ok()?;
    url.host_str().map(str::to_owned)
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
