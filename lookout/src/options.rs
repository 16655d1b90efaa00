//! Option schemas and validated option values.
//!
//! Each service declares the options it takes as a [`Schema`]; the options a product
//! stored for that service are checked against it before anything is sent, and every
//! problem is reported at once.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};
use url::Url;

use crate::redact::{REDACTED, Redactor};

/// What kind of value an option holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Free text.
    String,
    /// An absolute `http` or `https` URL.
    Url,
    /// A list of strings (a single string is taken as a list of one).
    List,
    /// A list of `http`/`https` URLs.
    UrlList,
    Bool,
    Integer,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
}

/// Written by hand because the derive cannot see through `&'static [&'static str]`; the
/// plain kinds are the serialized names of [`Kind`]'s unit variants.
impl utoipa::PartialSchema for Kind {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
        let plain = [
            Kind::String,
            Kind::Url,
            Kind::List,
            Kind::UrlList,
            Kind::Bool,
            Kind::Integer,
        ]
        .map(|kind| serde_json::to_value(kind).unwrap_or_default());
        let word = || ObjectBuilder::new().schema_type(Type::String);
        let choice = ObjectBuilder::new()
            .property("choice", ArrayBuilder::new().items(word()))
            .required("choice");
        OneOfBuilder::new()
            .item(word().enum_values(Some(plain)))
            .item(choice)
            .into()
    }
}

impl utoipa::ToSchema for Kind {}

/// A check of a string value beyond its kind: why it is unusable, if it is.
pub type ValueCheck = fn(&str) -> Result<(), String>;

/// A check of a value against another option's value (a private key against its
/// certificate; `None` when that option is unset): why they do not go together.
pub type PairCheck = fn(value: &str, other: Option<&str>) -> Result<(), String>;

/// Whether an option's value may be shown. Every option states it, with
/// [`OptionSpec::secret`] or [`OptionSpec::public`]: a credential left unmarked would be
/// printed in reports and recorded in snapshots, so the catalogue test refuses
/// [`Secrecy::Unstated`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrecy {
    Unstated,
    /// May be shown (a channel name, a colour, a port).
    Public,
    /// Never shown: tokens, passwords, URLs carrying keys.
    Secret,
}

/// One option a service takes.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct OptionSpec {
    #[schema(value_type = String)]
    pub name: &'static str,
    pub kind: Kind,
    /// Serialized as `secret: true/false`, what readers of the catalogue need.
    #[serde(rename = "secret", serialize_with = "secrecy_as_bool")]
    #[schema(value_type = bool)]
    pub secrecy: Secrecy,
    pub required: bool,
    /// For integers: the smallest and largest value accepted, both included.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<i64>, min_items = 2, max_items = 2)]
    pub range: Option<(i64, i64)>,
    /// The default, written as it would be in the config file.
    #[schema(value_type = Option<String>)]
    pub default: Option<&'static str>,
    #[schema(value_type = String)]
    pub help: &'static str,
    /// A check of the value beyond its kind (a signing secret's format), run when the
    /// options are validated; its message must not quote the value.
    #[serde(skip)]
    #[schema(ignore)]
    pub check: Option<ValueCheck>,
    /// Another option this one is checked against once both passed their own checks
    /// (see [`OptionSpec::checked_with`]); its message must not quote either value.
    #[serde(skip)]
    #[schema(ignore)]
    pub together: Option<(&'static str, PairCheck)>,
    /// Declared to decide where requests go (a host, a port, a region), beside URL
    /// options, which always do: see [`OptionSpec::decides_destination`].
    #[serde(skip)]
    pub destination: bool,
}

impl OptionSpec {
    /// A required option of the given kind.
    pub const fn new(name: &'static str, kind: Kind, help: &'static str) -> Self {
        OptionSpec {
            name,
            kind,
            secrecy: Secrecy::Unstated,
            required: true,
            range: None,
            default: None,
            help,
            check: None,
            together: None,
            destination: false,
        }
    }
    pub const fn string(name: &'static str, help: &'static str) -> Self {
        Self::new(name, Kind::String, help)
    }
    pub const fn url(name: &'static str, help: &'static str) -> Self {
        Self::new(name, Kind::Url, help)
    }
    pub const fn list(name: &'static str, help: &'static str) -> Self {
        Self::new(name, Kind::List, help)
    }
    pub const fn bool(name: &'static str, help: &'static str) -> Self {
        Self::new(name, Kind::Bool, help)
    }
    pub const fn integer(name: &'static str, help: &'static str) -> Self {
        Self::new(name, Kind::Integer, help)
    }
    pub const fn choice(
        name: &'static str,
        words: &'static [&'static str],
        help: &'static str,
    ) -> Self {
        Self::new(name, Kind::Choice(words), help)
    }
    /// Checks the value (each item of a list) with `check` at validation time.
    pub const fn checked(mut self, check: ValueCheck) -> Self {
        self.check = Some(check);
        self
    }
    /// Checks the value against option `other`'s with `check` at validation time, when
    /// this one is set and both passed their own checks.
    pub const fn checked_with(mut self, other: &'static str, check: PairCheck) -> Self {
        self.together = Some((other, check));
        self
    }
    /// Marks the option secret: redacted wherever it could be printed.
    pub const fn secret(mut self) -> Self {
        self.secrecy = Secrecy::Secret;
        self
    }
    /// States that the option holds nothing secret: it may be shown as it is.
    pub const fn public(mut self) -> Self {
        self.secrecy = Secrecy::Public;
        self
    }
    /// Accepts only whole numbers from `min` to `max`, both included.
    pub const fn range(mut self, min: i64, max: i64) -> Self {
        self.range = Some((min, max));
        self
    }
    pub const fn is_secret(&self) -> bool {
        matches!(self.secrecy, Secrecy::Secret)
    }
    /// Declares that the option decides where requests go although it is not a URL (an
    /// SMTP host, a broker's address, an AWS region): changing it asks for the service's
    /// secrets again, so that a stored secret is never sent where it was not entered.
    pub const fn destination(mut self) -> Self {
        self.destination = true;
        self
    }
    /// Whether a new value sends requests elsewhere: URL options always do, others when
    /// declared with [`OptionSpec::destination`].
    pub const fn decides_destination(&self) -> bool {
        self.destination || matches!(self.kind, Kind::Url | Kind::UrlList)
    }
    /// The value's problem beyond its kind (out of range), if any.
    fn check_bounds(&self, value: &Value) -> Result<(), Mismatch> {
        match (self.range, value.as_i64()) {
            (Some((min, max)), Some(n)) if n < min || n > max => Err(Mismatch::new(
                format!("a whole number from {min} to {max}"),
                Some(&n.to_string()),
            )),
            _ => Ok(()),
        }
    }
    pub const fn optional(mut self) -> Self {
        self.required = false;
        self
    }
    /// An optional option with a default value.
    pub const fn default(mut self, value: &'static str) -> Self {
        self.required = false;
        self.default = Some(value);
        self
    }
}

fn secrecy_as_bool<S: serde::Serializer>(secrecy: &Secrecy, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(matches!(secrecy, Secrecy::Secret))
}

/// The options a service takes.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct Schema {
    #[schema(value_type = Vec<OptionSpec>)]
    pub options: &'static [OptionSpec],
    /// Whether options not in the list are accepted (and passed through, e.g. merged
    /// into a message body).
    pub extra_allowed: bool,
}

impl Schema {
    pub const fn new(options: &'static [OptionSpec]) -> Self {
        Schema {
            options,
            extra_allowed: false,
        }
    }
    pub const fn with_extra(options: &'static [OptionSpec]) -> Self {
        Schema {
            options,
            extra_allowed: true,
        }
    }
    pub fn get(&self, name: &str) -> Option<&OptionSpec> {
        self.options.iter().find(|o| o.name == name)
    }

    /// The first option deciding where requests go whose value differs between two sets
    /// of options as written: a stored secret must not follow such a change unasked.
    pub fn moved_destination(
        &self,
        before: &Map<String, Value>,
        after: &Map<String, Value>,
    ) -> Option<&'static str> {
        self.options
            .iter()
            .filter(|o| o.decides_destination())
            .find(|o| before.get(o.name) != after.get(o.name))
            .map(|o| o.name)
    }

    /// The keys of `raw` (options as written) that hold secrets: the secret options of
    /// the schema and the pass-through options listed in `secret_options`. What a page
    /// must leave out when it shows options as written.
    pub fn secret_names<'a>(&'a self, raw: &'a Map<String, Value>) -> Vec<&'a str> {
        let mut names: Vec<&str> = self
            .options
            .iter()
            .filter(|o| o.is_secret())
            .map(|o| o.name)
            .collect();
        names.extend(marked_secret_extras(self, raw));
        names
    }

    /// A redactor of the secrets in `raw` (options as written, valid or not), each the
    /// way validated options know it (URLs as URLs).
    pub fn redactor_of(&self, raw: &Map<String, Value>) -> Redactor {
        let mut redactor = Redactor::new();
        for name in self.secret_names(raw) {
            let kind = self.get(name).map_or(Kind::String, |spec| spec.kind);
            if let Some(value) = raw.get(name) {
                add_secret(&mut redactor, kind, value);
            }
        }
        redactor
    }
}

/// One thing wrong with the options of one configured service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionProblem {
    /// The configured instance (the `[services.NAME]` table).
    pub instance: String,
    pub option: String,
    pub problem: String,
}

impl fmt::Display for OptionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.option.is_empty() {
            write!(f, "[services.{}]: {}", self.instance, self.problem)
        } else {
            write!(
                f,
                "[services.{}] {}: {}",
                self.instance, self.option, self.problem
            )
        }
    }
}

/// Options that passed validation: every required option is there with the right kind,
/// defaults are filled in, and the secrets are known to a [`Redactor`].
#[derive(Clone, Default)]
pub struct Options {
    values: Map<String, Value>,
    secret: Vec<String>,
    extra: Vec<String>,
    redactor: Redactor,
}

impl Options {
    /// Checks `raw` against `schema`; `instance` names the config table in problems.
    pub fn validate(
        instance: &str,
        schema: &Schema,
        raw: &Map<String, Value>,
    ) -> Result<Options, Vec<OptionProblem>> {
        let problem = |option: &str, problem: String| OptionProblem {
            instance: instance.to_owned(),
            option: option.to_owned(),
            problem,
        };
        let mut problems = Vec::new();
        let mut options = Options::default();

        for spec in schema.options {
            let value = match raw.get(spec.name) {
                Some(Value::Null) | None => match spec.default {
                    Some(default) => default_value(spec.kind, default),
                    None if spec.required => {
                        problems.push(problem(spec.name, "required option is missing".into()));
                        continue;
                    }
                    None => continue,
                },
                Some(value) => match coerce(spec.kind, value)
                    .and_then(|value| spec.check_bounds(&value).map(|()| value))
                {
                    Ok(value) => value,
                    Err(why) => {
                        // Never echo a secret's value back, even a malformed one.
                        let why = if spec.is_secret() {
                            why.replace_value(REDACTED)
                        } else {
                            why.text()
                        };
                        problems.push(problem(spec.name, why));
                        continue;
                    }
                },
            };
            if let Some(why) = spec.check.and_then(|check| failed_check(check, &value)) {
                problems.push(problem(spec.name, why));
                continue;
            }
            if spec.is_secret() {
                options.secret.push(spec.name.to_owned());
                add_secret(&mut options.redactor, spec.kind, &value);
            }
            options.values.insert(spec.name.to_owned(), value);
        }

        problems.extend(
            pair_problems(schema, &options, &problems)
                .into_iter()
                .map(|(option, why)| problem(option, why)),
        );

        let marked = marked_secret_extras(schema, raw);
        for (name, value) in raw {
            if schema.get(name).is_some() || (schema.extra_allowed && name == SECRET_EXTRAS) {
                continue;
            }
            if schema.extra_allowed {
                if marked.contains(&name.as_str()) {
                    options.secret.push(name.clone());
                    add_secret(&mut options.redactor, Kind::String, value);
                } else if looks_like_a_credential(name) {
                    problems.push(problem(
                        name,
                        format!(
                            "looks like a credential, and pass-through options are shown as \
                             written: list it in `{SECRET_EXTRAS}` to send it as a secret"
                        ),
                    ));
                    continue;
                }
                options.extra.push(name.clone());
                options.values.insert(name.clone(), value.clone());
            } else {
                let hint = schema
                    .options
                    .iter()
                    .map(|o| o.name)
                    .find(|known| strsim::levenshtein(known, name) <= 2)
                    .map(|known| format!(" (did you mean `{known}`?)"))
                    .unwrap_or_default();
                problems.push(problem(name, format!("unknown option{hint}")));
            }
        }

        if problems.is_empty() {
            Ok(options)
        } else {
            Err(problems)
        }
    }

    /// A string or URL option, if set.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// A list option (empty if unset).
    pub fn list(&self, name: &str) -> Vec<&str> {
        match self.values.get(name) {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    pub fn bool(&self, name: &str) -> bool {
        self.values
            .get(name)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    pub fn integer(&self, name: &str) -> Option<i64> {
        self.values.get(name).and_then(Value::as_i64)
    }

    /// Those of the string options `names` that are set, as a JSON object: optional
    /// overrides a service passes straight into its body (`channel`, `username`, …).
    pub fn pick(&self, names: &[&str]) -> Map<String, Value> {
        names
            .iter()
            .filter_map(|name| Some((name.to_string(), Value::from(self.str(name)?))))
            .collect()
    }

    /// The options that are not in the schema, in config order (only when the schema
    /// allows extras).
    pub fn extra(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.extra
            .iter()
            .filter_map(|name| self.values.get(name).map(|v| (name.as_str(), v)))
    }

    /// Knows every secret among these options.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// The options as JSON, secrets replaced by [`REDACTED`].
    pub fn to_redacted_json(&self) -> Value {
        Value::Object(
            self.values
                .iter()
                .map(|(k, v)| {
                    let shown = if self.secret.contains(k) {
                        Value::from(REDACTED)
                    } else {
                        v.clone()
                    };
                    (k.clone(), shown)
                })
                .collect(),
        )
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Options({})", self.to_redacted_json())
    }
}

impl fmt::Display for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_redacted_json())
    }
}

/// In a schema that passes unknown options through: the option listing those of them
/// that are secrets (redacted like any secret option).
pub const SECRET_EXTRAS: &str = "secret_options";

fn marked_secret_extras<'a>(schema: &Schema, raw: &'a Map<String, Value>) -> Vec<&'a str> {
    if !schema.extra_allowed {
        return Vec::new();
    }
    match raw.get(SECRET_EXTRAS) {
        Some(Value::Array(names)) => names.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(name)) => vec![name.as_str()],
        _ => Vec::new(),
    }
}

/// Whether a pass-through option's name says it holds a credential.
fn looks_like_a_credential(name: &str) -> bool {
    const WORDS: [&str; 8] = [
        "token",
        "password",
        "passwd",
        "secret",
        "api_key",
        "apikey",
        "credential",
        "auth",
    ];
    let name = name.to_ascii_lowercase();
    WORDS.iter().any(|word| name.contains(word))
}

/// What the pair checks find wrong among options that each passed their own checks
/// (an option with a problem already, or whose partner has one, is not checked again).
fn pair_problems(
    schema: &Schema,
    options: &Options,
    found: &[OptionProblem],
) -> Vec<(&'static str, String)> {
    let has_problem = |name: &str| found.iter().any(|p| p.option == name);
    schema
        .options
        .iter()
        .filter_map(|spec| {
            let (other, check) = spec.together?;
            let value = options.str(spec.name)?;
            if has_problem(spec.name) || has_problem(other) {
                return None;
            }
            check(value, options.str(other))
                .err()
                .map(|why| (spec.name, why))
        })
        .collect()
}

/// What `check` finds wrong with a string value or any item of a list value.
fn failed_check(check: ValueCheck, value: &Value) -> Option<String> {
    match value {
        Value::String(s) => check(s).err(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .find_map(|s| check(s).err()),
        _ => None,
    }
}

fn add_secret(redactor: &mut Redactor, kind: Kind, value: &Value) {
    let strings: Vec<&str> = match value {
        Value::String(s) => vec![s],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => return,
    };
    for s in strings {
        match kind {
            Kind::Url | Kind::UrlList => redactor.add_url(s),
            _ => redactor.add(s),
        }
    }
}

/// Why a value does not fit; can be shown with or without the value itself.
struct Mismatch {
    expected: String,
    value: Option<String>,
}

impl Mismatch {
    fn new(expected: impl Into<String>, value: Option<&str>) -> Self {
        Mismatch {
            expected: expected.into(),
            value: value.map(str::to_owned),
        }
    }
    fn text(&self) -> String {
        match &self.value {
            Some(v) => format!("expected {}, got `{v}`", self.expected),
            None => format!("expected {}", self.expected),
        }
    }
    fn replace_value(&self, shown: &str) -> String {
        match &self.value {
            Some(_) => format!("expected {}, got `{shown}`", self.expected),
            None => format!("expected {}", self.expected),
        }
    }
}

fn coerce(kind: Kind, value: &Value) -> Result<Value, Mismatch> {
    match (kind, value) {
        (Kind::String, Value::String(_)) => Ok(value.clone()),
        (Kind::String, Value::Number(n)) => Ok(Value::String(n.to_string())),
        (Kind::Url, Value::String(s)) => check_url(s).map(|()| value.clone()),
        (Kind::List, Value::String(s)) => Ok(Value::Array(vec![Value::String(s.clone())])),
        (Kind::UrlList, Value::String(s)) => {
            check_url(s).map(|()| Value::Array(vec![value.clone()]))
        }
        (Kind::List | Kind::UrlList, Value::Array(items)) => {
            for item in items {
                match (kind, item) {
                    (Kind::UrlList, Value::String(s)) => check_url(s)?,
                    (_, Value::String(_)) => {}
                    _ => return Err(Mismatch::new("a list of strings", None)),
                }
            }
            Ok(value.clone())
        }
        (Kind::Bool, Value::Bool(_)) => Ok(value.clone()),
        (Kind::Bool, Value::String(s)) => match s.as_str() {
            "true" | "yes" | "on" | "1" => Ok(Value::Bool(true)),
            "false" | "no" | "off" | "0" => Ok(Value::Bool(false)),
            _ => Err(Mismatch::new("true or false", Some(s))),
        },
        (Kind::Integer, Value::Number(n)) if n.is_i64() => Ok(value.clone()),
        (Kind::Integer, Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| Mismatch::new("a whole number", Some(s))),
        (Kind::Choice(words), Value::String(s)) if words.contains(&s.as_str()) => Ok(value.clone()),
        (Kind::Choice(words), Value::String(s)) => Err(Mismatch::new(
            format!("one of {}", words.join(", ")),
            Some(s),
        )),
        (kind, _) => Err(Mismatch::new(describe(kind), None)),
    }
}

fn check_url(s: &str) -> Result<(), Mismatch> {
    match Url::parse(s) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        Ok(_) => Err(Mismatch::new("an http:// or https:// URL", Some(s))),
        Err(e) => Err(Mismatch::new(format!("a URL ({e})"), Some(s))),
    }
}

fn default_value(kind: Kind, default: &str) -> Value {
    match kind {
        Kind::Bool => Value::Bool(default == "true"),
        Kind::Integer => default
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or(Value::Null),
        Kind::List | Kind::UrlList => Value::Array(
            default
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Value::from)
                .collect(),
        ),
        _ => Value::from(default),
    }
}

fn describe(kind: Kind) -> String {
    match kind {
        Kind::String => "a string".into(),
        Kind::Url => "a URL string".into(),
        Kind::List => "a list of strings".into(),
        Kind::UrlList => "a list of URLs".into(),
        Kind::Bool => "true or false".into(),
        Kind::Integer => "a whole number".into(),
        Kind::Choice(words) => format!("one of {}", words.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SPECS: &[OptionSpec] = &[
        OptionSpec::url("url", "webhook").secret(),
        OptionSpec::string("channel", "channel").public().optional(),
        OptionSpec::integer("port", "port")
            .public()
            .range(1, 65535)
            .default("587"),
        OptionSpec::choice("format", &["json", "form"], "body format")
            .public()
            .default("json"),
    ];

    fn validate(raw: Value) -> Result<Options, Vec<OptionProblem>> {
        Options::validate("slack", &Schema::new(SPECS), raw.as_object().unwrap())
    }

    #[test]
    fn reports_every_problem_at_once() {
        let problems =
            validate(json!({"chanel": "#x", "port": "many", "format": "xml"})).unwrap_err();
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "[services.slack] url: required option is missing",
                "[services.slack] port: expected a whole number, got `many`",
                "[services.slack] format: expected one of json, form, got `xml`",
                "[services.slack] chanel: unknown option (did you mean `channel`?)",
            ]
        );
    }

    #[test]
    fn bad_secret_values_are_not_echoed() {
        let problems = validate(json!({"url": "ftp://k3y"})).unwrap_err();
        assert!(!problems[0].to_string().contains("k3y"), "{}", problems[0]);
    }

    #[test]
    fn defaults_and_secrets() {
        let options = validate(json!({"url": "https://h.example/T/KEY"})).unwrap();
        assert_eq!(options.integer("port"), Some(587));
        assert_eq!(options.str("format"), Some("json"));
        assert!(!format!("{options} {options:?}").contains("KEY"));
        assert_eq!(
            options.redactor().redact("https://h.example/T/KEY"),
            "https://h.example/[redacted]"
        );
    }

    #[test]
    fn numbers_out_of_range_name_the_option_and_the_range() {
        let url = "https://h.example/T/KEY";
        for (port, accepted) in [(1, true), (65535, true), (0, false), (70000, false)] {
            let result = validate(json!({"url": url, "port": port}));
            match (result, accepted) {
                (Ok(options), true) => assert_eq!(options.integer("port"), Some(port)),
                (Err(problems), false) => assert_eq!(
                    problems[0].to_string(),
                    format!(
                        "[services.slack] port: expected a whole number from 1 to 65535, \
                         got `{port}`"
                    )
                ),
                (result, _) => panic!("port {port}: {result:?}"),
            }
        }
        let written_as_text = validate(json!({"url": url, "port": "0"})).unwrap_err();
        assert!(written_as_text[0].to_string().contains("from 1 to 65535"));
    }

    #[test]
    fn every_option_states_its_secrecy_or_is_unstated() {
        assert_eq!(SPECS[0].secrecy, Secrecy::Secret);
        assert_eq!(SPECS[1].secrecy, Secrecy::Public);
        assert_eq!(OptionSpec::string("user", "who").secrecy, Secrecy::Unstated);
        let shown = serde_json::to_value(SPECS[0]).unwrap();
        assert_eq!(shown["secret"], true);
        assert_eq!(
            serde_json::to_value(SPECS[2]).unwrap()["range"],
            json!([1, 65535])
        );
    }

    #[test]
    fn pair_checks_run_once_both_options_passed_their_own() {
        fn same_length(value: &str, other: Option<&str>) -> Result<(), String> {
            match other {
                Some(other) if other.len() == value.len() => Ok(()),
                Some(_) => Err("not as long as `left`".into()),
                None => Err("set `left` too".into()),
            }
        }
        fn short(value: &str) -> Result<(), String> {
            (value.len() < 5)
                .then_some(())
                .ok_or_else(|| "too long".to_owned())
        }
        const PAIRED: &[OptionSpec] = &[
            OptionSpec::string("left", "")
                .public()
                .optional()
                .checked(short),
            OptionSpec::string("right", "")
                .public()
                .optional()
                .checked_with("left", same_length),
        ];
        let problems = |raw: Value| -> Vec<String> {
            match Options::validate("t", &Schema::new(PAIRED), raw.as_object().unwrap()) {
                Ok(_) => Vec::new(),
                Err(problems) => problems.iter().map(ToString::to_string).collect(),
            }
        };
        assert!(problems(json!({"left": "ab", "right": "cd"})).is_empty());
        assert!(
            problems(json!({})).is_empty(),
            "neither set: nothing to pair"
        );
        assert_eq!(
            problems(json!({"left": "ab", "right": "cde"})),
            ["[services.t] right: not as long as `left`"]
        );
        assert_eq!(
            problems(json!({"right": "cd"})),
            ["[services.t] right: set `left` too"]
        );
        // `left` has a problem of its own: `right` is not judged against it.
        assert_eq!(
            problems(json!({"left": "abcdef", "right": "cd"})),
            ["[services.t] left: too long"]
        );
    }
}
