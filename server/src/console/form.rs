//! The *Add service* / edit form, generated from the service's option schema, and the
//! options it posts back, validated as the CLI validates a config file.

use serde_json::{Map, Value};

use crate::store::{ENABLED, StoredInstance};
use lookout::config::{FALLBACK_OPTIONS, LANE_OPTIONS, check_name};
use lookout::delivery::ssrf::Guard;
use lookout::options::{Kind, OptionProblem, OptionSpec};
use lookout::service::Registration;
use lookout::shaping::{self, SHAPING_FIELDS};

/// How an option is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Text,
    /// One item per line.
    Lines,
    Checkbox,
    Number,
    Select,
    /// Write-only: never filled in.
    Secret,
    /// A secret list (webhook URLs carrying keys): write-only, one item per line.
    SecretLines,
}

/// One field of the form.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: &'static str,
    pub input: Input,
    pub required: bool,
    pub help: &'static str,
    pub default: Option<&'static str>,
    pub choices: &'static [&'static str],
    /// What the field shows: the value posted or stored (never a secret's).
    pub value: String,
    pub checked: bool,
    /// A secret already stored: the field may be left empty to keep it.
    pub kept: bool,
    /// What is wrong with it, in the CLI's words.
    pub problems: Vec<String>,
}

impl Field {
    fn new(spec: &OptionSpec) -> Field {
        let (input, choices) = match spec.kind {
            Kind::List | Kind::UrlList if spec.is_secret() => (Input::SecretLines, &[][..]),
            _ if spec.is_secret() => (Input::Secret, &[][..]),
            Kind::String | Kind::Url => (Input::Text, &[][..]),
            Kind::List | Kind::UrlList => (Input::Lines, &[][..]),
            Kind::Bool => (Input::Checkbox, &[][..]),
            Kind::Integer => (Input::Number, &[][..]),
            Kind::Choice(words) => (Input::Select, words),
        };
        Field {
            name: spec.name,
            input,
            required: spec.required,
            help: spec.help,
            default: spec.default,
            choices,
            value: String::new(),
            checked: spec.default == Some("true"),
            kept: false,
            problems: Vec::new(),
        }
    }

    pub fn is(&self, input: &str) -> bool {
        let name = match self.input {
            Input::Text => "text",
            Input::Lines => "lines",
            Input::Checkbox => "checkbox",
            Input::Number => "number",
            Input::Select => "select",
            Input::Secret => "secret",
            Input::SecretLines => "secret-lines",
        };
        name == input
    }

    /// The form field's name (`opt.url`).
    pub fn key(&self) -> String {
        format!("opt.{}", self.name)
    }
}

/// The whole form: the instance's name, its fields, and problems not tied to a field.
#[derive(Debug, Clone)]
pub struct ServiceForm {
    pub service: &'static str,
    pub name: String,
    /// Editing a configured service (its name is fixed) rather than adding one.
    pub editing: bool,
    pub name_problems: Vec<String>,
    pub fields: Vec<Field>,
    /// The options every service takes for how it is queued ([`LANE_OPTIONS`]) and
    /// where its events go when they cannot be delivered ([`FALLBACK_OPTIONS`]).
    pub lane: Vec<Field>,
    /// How its messages are shaped for people ([`SHAPING_FIELDS`]): the keys of its
    /// `coalesce` and `digest` tables, one field each.
    pub shaping: Vec<Field>,
    pub other_problems: Vec<String>,
}

impl ServiceForm {
    /// An empty form for adding `reg` (defaults shown as placeholders, checkboxes set).
    pub fn blank(reg: &'static Registration) -> ServiceForm {
        ServiceForm {
            service: reg.name(),
            name: reg.name().to_owned(),
            editing: false,
            name_problems: Vec::new(),
            fields: reg.schema.options.iter().map(Field::new).collect(),
            lane: LANE_OPTIONS
                .iter()
                .chain(FALLBACK_OPTIONS)
                .map(Field::new)
                .collect(),
            shaping: SHAPING_FIELDS.iter().map(Field::new).collect(),
            other_problems: Vec::new(),
        }
    }

    /// The form for editing a stored service: public values as shown elsewhere (every
    /// secret redacted), secrets never.
    pub fn for_stored(reg: &'static Registration, stored: &StoredInstance) -> ServiceForm {
        let mut form = ServiceForm::blank(reg);
        form.name = stored.name.clone();
        form.editing = true;
        let shown = stored.redacted_options().unwrap_or(Value::Null);
        for field in &mut form.fields {
            let present = stored.options.contains_key(field.name);
            match (field.input, shown.get(field.name)) {
                (Input::Secret | Input::SecretLines, _) => field.kept = present,
                (Input::Checkbox, Some(value)) => field.checked = value == &Value::Bool(true),
                (Input::Lines, Some(Value::Array(items))) => {
                    let lines: Vec<String> = items.iter().map(plain).collect();
                    field.value = lines.join("\n");
                }
                (_, Some(value)) if present => field.value = plain(value),
                _ => {}
            }
        }
        // Public by declaration, and not part of the service's own (redacted) options.
        let settings = stored.settings();
        for field in &mut form.lane {
            if let Some(value) = settings.get(field.name) {
                field.value = plain(value);
            }
        }
        let shaping = shaping::flatten(&settings);
        for field in &mut form.shaping {
            if let Some(value) = shaping.get(field.name) {
                field.value = plain(value);
            }
        }
        form
    }

    /// Validates what was posted; the instance to store, or the form again with every
    /// problem beside its field. `previous` is the stored service being edited: its
    /// secrets are kept where the field was left empty, its other keys (`events`,
    /// `enabled`, pass-through options) are kept as they were.
    pub fn submit(
        reg: &'static Registration,
        posted: &[(String, String)],
        previous: Option<&StoredInstance>,
        guard: &Guard,
    ) -> Result<StoredInstance, Box<ServiceForm>> {
        let mut form = ServiceForm::blank(reg);
        let mut options = previous.map(|p| p.options.clone()).unwrap_or_default();
        form.editing = previous.is_some();
        form.name = match previous {
            Some(previous) => previous.name.clone(),
            None => posted_value(posted, "name")
                .unwrap_or_default()
                .trim()
                .to_owned(),
        };
        for field in form.fields.iter_mut().chain(&mut form.lane) {
            read_field(field, posted, &mut options);
        }
        let mut shaping = Map::new();
        for field in &mut form.shaping {
            read_field(field, posted, &mut shaping);
        }
        shaping::nest(&shaping, &mut options);
        let mut problems = match previous {
            Some(previous) => secrets_asked_again(reg, previous, posted, &mut options),
            None => Vec::new(),
        };
        let stored = StoredInstance {
            name: form.name.clone(),
            service: reg.name().to_owned(),
            options,
        };
        for asked in &problems {
            let field = form.fields.iter_mut().find(|f| f.name == asked.option);
            field.into_iter().for_each(|field| field.kept = false);
        }
        match check_name(&form.name) {
            Err(problem) => form.name_problems.push(problem),
            Ok(()) if problems.is_empty() => problems = problems_of(&stored, guard),
            Ok(()) => {}
        }
        if problems.is_empty() && form.name_problems.is_empty() {
            return Ok(stored);
        }
        form.place(problems);
        Err(Box::new(form))
    }

    /// The form for `stored`, refused with `problems` found beyond its own options (a
    /// fallback the product does not have).
    pub fn refused(
        reg: &'static Registration,
        stored: &StoredInstance,
        editing: bool,
        problems: Vec<OptionProblem>,
    ) -> ServiceForm {
        let mut form = ServiceForm::for_stored(reg, stored);
        form.editing = editing;
        form.place(problems);
        form
    }

    /// Puts each problem beside its field (one about a whole shaping table beside that
    /// table's first field); the rest above the form.
    fn place(&mut self, problems: Vec<OptionProblem>) {
        for problem in problems {
            let table = format!("{}.", problem.option);
            let mut fields = self.fields.iter_mut().chain(&mut self.lane);
            let field = match fields.find(|f| f.name == problem.option) {
                Some(field) => Some(field),
                None => self
                    .shaping
                    .iter_mut()
                    .find(|f| f.name == problem.option || f.name.starts_with(&table)),
            };
            match field {
                Some(field) => field.problems.push(problem.problem),
                None => self.other_problems.push(problem.to_string()),
            }
        }
    }
}

/// When an edit changes where the service sends (its URL, host, server…), the secrets left
/// empty are not kept but asked for again, each with a problem beside its field: kept,
/// a token entered for one host would go to whichever host the editor names, and a
/// short-lived portal link or a stolen session would yield a lasting credential.
fn secrets_asked_again(
    reg: &'static Registration,
    previous: &StoredInstance,
    posted: &[(String, String)],
    options: &mut Map<String, Value>,
) -> Vec<OptionProblem> {
    let Some(moved) = reg.schema.moved_destination(&previous.options, options) else {
        return Vec::new();
    };
    let left_empty = |spec: &&OptionSpec| {
        let key = format!("opt.{}", spec.name);
        posted_value(posted, &key).is_none_or(|text| text.trim().is_empty())
    };
    reg.schema
        .options
        .iter()
        .filter(|spec| spec.is_secret() && previous.options.contains_key(spec.name))
        .filter(left_empty)
        .map(|spec| {
            options.remove(spec.name);
            OptionProblem {
                instance: previous.name.clone(),
                option: spec.name.to_owned(),
                problem: format!(
                    "`{moved}` changed: enter this secret again (a stored secret is only \
                     sent where it was entered)"
                ),
            }
        })
        .collect()
}

/// The stored options' problems: invalid options, or targets the workers will refuse.
fn problems_of(stored: &StoredInstance, guard: &Guard) -> Vec<OptionProblem> {
    match stored.instance() {
        Ok(instance) => lookout::config::refused_targets(&instance, guard),
        Err(problems) => problems,
    }
}

/// Reads one field from the posted form into the field (to show again) and `options`.
fn read_field(field: &mut Field, posted: &[(String, String)], options: &mut Map<String, Value>) {
    let key = field.key();
    let text = posted_value(posted, &key).unwrap_or_default();
    match field.input {
        Input::Checkbox => {
            field.checked = !text.is_empty();
            options.insert(field.name.to_owned(), Value::Bool(field.checked));
        }
        Input::Secret => {
            // Left empty: keep what is stored (if anything).
            field.kept = options.contains_key(field.name);
            if !text.trim().is_empty() {
                options.insert(field.name.to_owned(), Value::from(text.trim()));
            }
        }
        Input::Lines => {
            field.value = text.to_owned();
            let items = lines(text);
            set_or_remove(
                options,
                field.name,
                (!items.is_empty()).then(|| items.into()),
            );
        }
        Input::SecretLines => {
            field.kept = options.contains_key(field.name);
            let items = lines(text);
            if !items.is_empty() {
                options.insert(field.name.to_owned(), items.into());
            }
        }
        Input::Number => {
            field.value = text.trim().to_owned();
            // Not a number: kept as text, so that validation says what it expected.
            let value = text.trim().parse::<i64>().map(Value::from);
            let value = value.unwrap_or_else(|_| Value::from(text.trim()));
            set_or_remove(
                options,
                field.name,
                (!text.trim().is_empty()).then_some(value),
            );
        }
        Input::Text | Input::Select => {
            field.value = text.trim().to_owned();
            let value = (!field.value.is_empty()).then(|| Value::from(field.value.clone()));
            set_or_remove(options, field.name, value);
        }
    }
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(Value::from)
        .collect()
}

fn set_or_remove(options: &mut Map<String, Value>, name: &str, value: Option<Value>) {
    match value {
        Some(value) => options.insert(name.to_owned(), value),
        None => options.remove(name),
    };
}

fn posted_value<'a>(posted: &'a [(String, String)], key: &str) -> Option<&'a str> {
    posted
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A JSON value as a form shows it.
fn plain(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Switches a stored service on or off, its options untouched.
pub fn switched(stored: &StoredInstance, on: bool) -> StoredInstance {
    let mut switched = stored.clone();
    if on {
        switched.options.remove(ENABLED);
    } else {
        switched
            .options
            .insert(ENABLED.to_owned(), Value::Bool(false));
    }
    switched
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posted(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn problems_show_beside_their_field_and_secrets_are_kept_when_left_empty() {
        let reg = lookout::service::find("echo").expect("the test service");
        let guard = Guard::for_settings(&lookout::settings::Settings::default());
        let missing = ServiceForm::submit(reg, &posted(&[("name", "hook")]), None, &guard)
            .expect_err("url is required");
        let urls = missing.fields.iter().find(|f| f.name == "urls").unwrap();
        assert!(!urls.problems.is_empty(), "{missing:#?}");

        let saved = ServiceForm::submit(
            reg,
            &posted(&[("name", "hook"), ("opt.urls", "http://127.0.0.1:9/key-123")]),
            None,
            &Guard::for_settings(&loopback_allowed()),
        )
        .expect("valid");
        let form = ServiceForm::for_stored(reg, &saved);
        let field = form.fields.iter().find(|f| f.name == "urls").unwrap();
        assert!(field.kept && field.value.is_empty(), "{field:?}");
        let edited = ServiceForm::submit(
            reg,
            &posted(&[("opt.urls", "")]),
            Some(&saved),
            &Guard::for_settings(&loopback_allowed()),
        )
        .expect("left empty: kept");
        assert_eq!(edited.options, saved.options);
    }

    #[test]
    fn a_changed_destination_asks_for_every_stored_secret_again() {
        let reg = lookout::service::find("echo").expect("the test service");
        let guard = Guard::for_settings(&loopback_allowed());
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let saved = ServiceForm::submit(
            reg,
            &posted(&[
                ("name", "hook"),
                ("opt.urls", "http://127.0.0.1:9/first"),
                ("opt.secret", secret),
            ]),
            None,
            &guard,
        )
        .expect("valid");

        let moved = posted(&[("opt.urls", "http://127.0.0.1:9/elsewhere")]);
        let refused = ServiceForm::submit(reg, &moved, Some(&saved), &guard)
            .expect_err("the signing secret must be entered again");
        let field = refused.fields.iter().find(|f| f.name == "secret").unwrap();
        assert!(!field.kept, "{field:?}");
        assert_eq!(
            field.problems,
            [
                "`urls` changed: enter this secret again (a stored secret is only sent where it was entered)"
            ]
        );

        let entered = posted(&[
            ("opt.urls", "http://127.0.0.1:9/elsewhere"),
            ("opt.secret", secret),
        ]);
        let edited = ServiceForm::submit(reg, &entered, Some(&saved), &guard).expect("entered");
        assert_eq!(edited.options["secret"], secret);
    }

    #[test]
    fn every_service_takes_the_lane_options_with_its_own() {
        let reg = lookout::service::find("echo").expect("the test service");
        let guard = Guard::for_settings(&loopback_allowed());
        let wrong = posted(&[
            ("name", "hook"),
            ("opt.urls", "http://127.0.0.1:9/a"),
            ("opt.order_by", "attribute.number"),
            ("opt.concurrency", "5000"),
        ]);
        let refused = ServiceForm::submit(reg, &wrong, None, &guard).expect_err("both wrong");
        let problem = |name: &str| {
            let field = refused.lane.iter().find(|f| f.name == name).unwrap();
            field.problems.join("; ")
        };
        assert!(
            problem("order_by").contains("must start with one of"),
            "{refused:#?}"
        );
        assert!(
            problem("concurrency").contains("from 1 to 1024"),
            "{refused:#?}"
        );

        let right = posted(&[
            ("name", "hook"),
            ("opt.urls", "http://127.0.0.1:9/a"),
            ("opt.order_by", "attributes.number"),
            ("opt.concurrency", "4"),
        ]);
        let saved = ServiceForm::submit(reg, &right, None, &guard).expect("valid");
        assert_eq!(saved.options["order_by"], "attributes.number");
        assert_eq!(saved.options["concurrency"], 4);
        let instance = saved.instance().unwrap();
        assert_eq!(instance.lane.concurrency, Some(4));
        let shown = ServiceForm::for_stored(reg, &saved);
        let values: Vec<&str> = shown.lane.iter().map(|f| f.value.as_str()).collect();
        assert_eq!(values, ["attributes.number", "4", ""]);
    }

    #[test]
    fn coalescing_and_digests_are_set_in_the_delivery_part() {
        let reg = lookout::service::find("echo").expect("the test service");
        let guard = Guard::for_settings(&loopback_allowed());
        let wrong = posted(&[
            ("name", "hook"),
            ("opt.urls", "http://127.0.0.1:9/a"),
            ("opt.coalesce.by", "attributes.number"),
            ("opt.coalesce.window", "2h"),
            ("opt.digest.window", "5m"),
        ]);
        let refused = ServiceForm::submit(reg, &wrong, None, &guard).expect_err("out of range");
        let problem = |name: &str| {
            let field = refused.shaping.iter().find(|f| f.name == name).unwrap();
            field.problems.join("; ")
        };
        assert_eq!(
            problem("coalesce.window"),
            "2h is out of range: from 1s to 1h"
        );
        assert!(
            problem("digest.window").contains("either coalesces or sends digests, not both"),
            "{refused:#?}"
        );
        assert!(refused.other_problems.is_empty(), "{refused:#?}");
        assert_eq!(refused.shaping[1].value, "2h", "shown as posted");

        let right = posted(&[
            ("name", "hook"),
            ("opt.urls", "http://127.0.0.1:9/a"),
            ("opt.coalesce.by", "attributes.number"),
            ("opt.coalesce.window", "30s"),
            ("opt.coalesce.max_wait", ""),
            ("opt.digest.window", ""),
            ("opt.digest.max_events", ""),
        ]);
        let saved = ServiceForm::submit(reg, &right, None, &guard).expect("valid");
        assert_eq!(
            Value::Object(saved.options.clone())["coalesce"],
            serde_json::json!({"by": "attributes.number", "window": "30s"})
        );
        assert!(
            !saved.options.contains_key("digest"),
            "no key set: no table"
        );
        let coalesce = saved.instance().unwrap().shaping.coalesce.unwrap();
        assert_eq!(coalesce.window, std::time::Duration::from_secs(30));
        assert_eq!(coalesce.max_wait, std::time::Duration::from_secs(300));

        let shown = ServiceForm::for_stored(reg, &saved);
        let values: Vec<&str> = shown.shaping.iter().map(|f| f.value.as_str()).collect();
        assert_eq!(values, ["attributes.number", "30s", "", "", ""]);
        let cleared = posted(&[("opt.coalesce.by", ""), ("opt.coalesce.window", "")]);
        let edited = ServiceForm::submit(reg, &cleared, Some(&saved), &guard).expect("valid");
        assert!(!edited.options.contains_key("coalesce"), "emptied: removed");
        let digest = posted(&[("opt.digest.window", "5m"), ("opt.digest.max_events", "20")]);
        let edited = ServiceForm::submit(reg, &digest, Some(&saved), &guard).expect("valid");
        assert_eq!(
            edited.options["digest"],
            serde_json::json!({"window": "5m", "max_events": 20})
        );
        assert_eq!(
            edited
                .instance()
                .unwrap()
                .shaping
                .digest
                .unwrap()
                .max_events,
            20
        );
    }

    fn loopback_allowed() -> lookout::settings::Settings {
        lookout::settings::Settings {
            allow_networks: vec!["127.0.0.0/8".parse().unwrap()],
            ..Default::default()
        }
    }
}
