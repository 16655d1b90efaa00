//! How `lookout serve` shapes one configured service's messages for people
//! (docs/SHAPING.md): `coalesce` (a burst of updates of one item becomes its latest) and
//! `digest` (a window's events become one message). Both are tables of a
//! `[services.NAME]` table, read and checked here wherever such a table is read (the
//! config file, `PUT /v1/products/{id}`, `lookout validate`); the server does the rest.
//!
//! ```toml
//! [services.board]
//! service = "slack"
//! url = "https://hooks.slack.com/services/…"
//! coalesce = { by = "attributes.number", window = "30s", max_wait = "5m" }
//!
//! [services.daily]
//! service = "email"
//! digest = { window = "5m", max_events = 50 }
//! ```

use std::time::Duration;

use serde_json::{Map, Value};

use crate::options::OptionProblem;
use crate::payload::{Event, PayloadPath};

/// The key of a configured service's table that coalesces its deliveries.
pub const COALESCE: &str = "coalesce";
/// The key of a configured service's table that gathers its events into digests.
pub const DIGEST: &str = "digest";

/// A configured service's shaping: at most one of the two.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shaping {
    pub coalesce: Option<Coalesce>,
    pub digest: Option<DigestRule>,
}

/// `coalesce = { by, window, max_wait }`: a delivery waits `window` after its event for
/// a newer event of the same model with the same value at `by`; a newer one replaces it.
#[derive(Debug, Clone, PartialEq)]
pub struct Coalesce {
    pub by: PayloadPath,
    pub window: Duration,
    /// How long a stream of updates, each within the window of the one before, may
    /// keep its key from being sent: the first one's delivery is due by then.
    pub max_wait: Duration,
}

/// `digest = { window, max_events }`: events gathered for `window` (or until
/// `max_events`) are sent as one message.
#[derive(Debug, Clone, PartialEq)]
pub struct DigestRule {
    pub window: Duration,
    pub max_events: u32,
}

/// The shortest and longest coalescing window, and the longest `max_wait`.
pub const COALESCE_WINDOW: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(3_600));
pub const MAX_WAIT_AT_MOST: Duration = Duration::from_secs(24 * 3_600);
/// `max_wait` when it is not set: ten windows, within [`MAX_WAIT_AT_MOST`].
pub const DEFAULT_MAX_WAIT_WINDOWS: u32 = 10;
/// The shortest and longest digest window.
pub const DIGEST_WINDOW: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(24 * 3_600));
/// The fewest and most events of one digest, and the default.
pub const DIGEST_EVENTS: (u32, u32) = (2, 1_000);
pub const DEFAULT_DIGEST_EVENTS: u32 = 50;

impl Shaping {
    /// Takes `coalesce` and `digest` out of a configured service's table and checks
    /// them: every problem at once, each naming its table and key.
    pub fn take(
        instance: &str,
        options: &mut Map<String, Value>,
    ) -> Result<Shaping, Vec<OptionProblem>> {
        let coalesce = options.remove(COALESCE);
        let digest = options.remove(DIGEST);
        let mut problems = Vec::new();
        let mut shaping = Shaping::default();
        if let Some(table) = &coalesce {
            let mut checked = Table::new(instance, COALESCE, table, &mut problems);
            shaping.coalesce = checked.coalesce();
        }
        if let Some(table) = &digest {
            let mut checked = Table::new(instance, DIGEST, table, &mut problems);
            shaping.digest = checked.digest();
        }
        if coalesce.is_some() && digest.is_some() {
            problems.push(OptionProblem {
                instance: instance.to_owned(),
                option: DIGEST.to_owned(),
                problem: "a service either coalesces or sends digests, not both (a digest \
                          already sends a burst as one message)"
                    .to_owned(),
            });
        }
        if problems.is_empty() {
            Ok(shaping)
        } else {
            Err(problems)
        }
    }

    /// Whether either is set.
    pub fn is_set(&self) -> bool {
        self.coalesce.is_some() || self.digest.is_some()
    }
}

impl Coalesce {
    /// What a delivery for `event` coalesces with: its model and its value at `by`
    /// (`None`: the event has no value there, and is sent alone).
    pub fn key_of(&self, event: &Event) -> Option<String> {
        let value = event.value_at(&self.by)?;
        Some(format!("{}\0{value}", event.model))
    }
}

/// One shaping table being checked, its problems added to a shared list.
struct Table<'a> {
    instance: &'a str,
    name: &'static str,
    /// `None`: not a table (already reported).
    fields: Option<Map<String, Value>>,
    problems: &'a mut Vec<OptionProblem>,
}

impl<'a> Table<'a> {
    fn new(
        instance: &'a str,
        name: &'static str,
        value: &Value,
        problems: &'a mut Vec<OptionProblem>,
    ) -> Table<'a> {
        let mut table = Table {
            instance,
            name,
            fields: None,
            problems,
        };
        match value.as_object() {
            Some(fields) => table.fields = Some(fields.clone()),
            None => table.problem(
                "",
                format!(
                    "expected a table, e.g. {name} = {}",
                    if name == COALESCE {
                        r#"{ by = "attributes.number", window = "30s" }"#
                    } else {
                        r#"{ window = "5m", max_events = 50 }"#
                    }
                ),
            ),
        }
        table
    }

    fn problem(&mut self, key: &str, text: String) {
        let option = if key.is_empty() {
            self.name.to_owned()
        } else {
            format!("{}.{key}", self.name)
        };
        self.problems.push(OptionProblem {
            instance: self.instance.to_owned(),
            option,
            problem: text,
        });
    }

    fn field(&self, key: &str) -> Option<Value> {
        self.fields.as_ref()?.get(key).cloned()
    }

    /// Refuses keys other than `known`: a typo must not pass for a default.
    fn only(&mut self, known: &[&str]) {
        let unknown: Vec<String> = self
            .fields
            .iter()
            .flat_map(Map::keys)
            .filter(|key| !known.contains(&key.as_str()))
            .cloned()
            .collect();
        for key in unknown {
            self.problem(&key, format!("unknown key (known: {})", known.join(", ")));
        }
    }

    fn coalesce(&mut self) -> Option<Coalesce> {
        self.fields.as_ref()?;
        self.only(&["by", "window", "max_wait"]);
        let by = self.path("by");
        let window = self.duration("window", COALESCE_WINDOW, None);
        let default_wait = window.map(|w| (w * DEFAULT_MAX_WAIT_WINDOWS).min(MAX_WAIT_AT_MOST));
        let least_wait = window.unwrap_or(COALESCE_WINDOW.0);
        let max_wait = self.duration("max_wait", (least_wait, MAX_WAIT_AT_MOST), default_wait);
        Some(Coalesce {
            by: by?,
            window: window?,
            max_wait: max_wait?,
        })
    }

    fn digest(&mut self) -> Option<DigestRule> {
        self.fields.as_ref()?;
        self.only(&["window", "max_events"]);
        let window = self.duration("window", DIGEST_WINDOW, None);
        let max_events = self.count("max_events", DIGEST_EVENTS, DEFAULT_DIGEST_EVENTS);
        Some(DigestRule {
            window: window?,
            max_events: max_events?,
        })
    }

    fn path(&mut self, key: &str) -> Option<PayloadPath> {
        let Some(value) = self.field(key) else {
            self.problem(
                key,
                "required: a dotted path, e.g. `attributes.number`".into(),
            );
            return None;
        };
        let Some(text) = value.as_str() else {
            self.problem(
                key,
                format!("expected a dotted path as a string, not {value}"),
            );
            return None;
        };
        PayloadPath::parse(text)
            .map_err(|text| self.problem(key, text))
            .ok()
    }

    /// A duration like `"30s"` or `"5m"` within `range`; `default` when it is missing
    /// (`None`: it is required).
    fn duration(
        &mut self,
        key: &str,
        (least, most): (Duration, Duration),
        default: Option<Duration>,
    ) -> Option<Duration> {
        let shown = |d: Duration| humantime::format_duration(d).to_string();
        let Some(value) = self.field(key) else {
            if default.is_none() {
                self.problem(
                    key,
                    "required: a duration like \"30s\" or \"5m\"".to_owned(),
                );
            }
            return default;
        };
        let parsed = value
            .as_str()
            .ok_or_else(|| format!("expected a duration like \"30s\", not {value}"))
            .and_then(|text| {
                humantime::parse_duration(text).map_err(|err| format!("`{text}`: {err}"))
            });
        match parsed {
            Ok(duration) if duration >= least && duration <= most => Some(duration),
            Ok(duration) => {
                self.problem(
                    key,
                    format!(
                        "{} is out of range: from {} to {}",
                        shown(duration),
                        shown(least),
                        shown(most)
                    ),
                );
                None
            }
            Err(text) => {
                self.problem(key, text);
                None
            }
        }
    }

    fn count(&mut self, key: &str, (least, most): (u32, u32), default: u32) -> Option<u32> {
        let Some(value) = self.field(key) else {
            return Some(default);
        };
        match value.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if (least..=most).contains(&n) => Some(n),
            _ => {
                self.problem(
                    key,
                    format!("{value} is out of range: a whole number from {least} to {most}"),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn take(table: Value) -> Result<Shaping, Vec<String>> {
        let mut options = table.as_object().unwrap().clone();
        Shaping::take("board", &mut options)
            .map_err(|problems| problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn coalescing_reads_its_table_with_a_default_max_wait() {
        let shaping =
            take(json!({"coalesce": {"by": "attributes.number", "window": "30s"}})).unwrap();
        let coalesce = shaping.coalesce.unwrap();
        assert_eq!(coalesce.window, Duration::from_secs(30));
        assert_eq!(coalesce.max_wait, Duration::from_secs(300));
        let set = take(
            json!({"coalesce": {"by": "attributes.number", "window": "30s",
                                           "max_wait": "2m"}}),
        )
        .unwrap();
        assert_eq!(set.coalesce.unwrap().max_wait, Duration::from_secs(120));
    }

    #[test]
    fn digests_read_their_table() {
        let shaping = take(json!({"digest": {"window": "5m"}})).unwrap();
        let digest = shaping.digest.unwrap();
        assert_eq!(digest.window, Duration::from_secs(300));
        assert_eq!(digest.max_events, DEFAULT_DIGEST_EVENTS);
    }

    #[test]
    fn every_problem_is_named_with_its_table_and_key() {
        let problems = take(json!({
            "coalesce": {"by": "attribute.number", "window": "0s", "max_wait": "2d",
                         "windw": "1s"},
            "digest": {"window": "soon", "max_events": 1},
        }))
        .unwrap_err();
        let all = problems.join("\n");
        for expected in [
            "[services.board] coalesce.windw: unknown key (known: by, window, max_wait)",
            "[services.board] coalesce.by: `attribute.number` must start with one of",
            "[services.board] coalesce.window: 0s is out of range: from 1s to 1h",
            "[services.board] coalesce.max_wait: 2days is out of range",
            "[services.board] digest.window: `soon`:",
            "[services.board] digest.max_events: 1 is out of range: a whole number from 2 to 1000",
            "[services.board] digest: a service either coalesces or sends digests, not both",
        ] {
            assert!(all.contains(expected), "{expected}\nnot in\n{all}");
        }
        let missing = take(json!({"coalesce": {}, "digest": 5}))
            .unwrap_err()
            .join("\n");
        assert!(missing.contains("coalesce.by: required"), "{missing}");
        assert!(missing.contains("coalesce.window: required"), "{missing}");
        assert!(
            missing.contains("[services.board] digest: expected a table"),
            "{missing}"
        );
    }

    #[test]
    fn the_key_is_the_model_and_the_value() {
        let shaping =
            take(json!({"coalesce": {"by": "attributes.number", "window": "1s"}})).unwrap();
        let coalesce = shaping.coalesce.unwrap();
        let event = |model: &str, number: u32| {
            Event::parse(&format!(
                r#"{{"model":"{model}","action":"updated","product":{{"id":1,"name":"P"}},
                    "attributes":{{"number":{number}}}}}"#
            ))
            .unwrap()
        };
        assert_eq!(
            coalesce.key_of(&event("Item", 5)),
            coalesce.key_of(&event("Item", 5))
        );
        assert_ne!(
            coalesce.key_of(&event("Item", 5)),
            coalesce.key_of(&event("Item", 6))
        );
        assert_ne!(
            coalesce.key_of(&event("Item", 5)),
            coalesce.key_of(&event("Comment", 5))
        );
    }
}
