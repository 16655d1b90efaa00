//! The services table a preview edits: shown without the stored secrets, read back with
//! them kept where the table leaves them out, empty or redacted, and its problems placed
//! on their lines. The page around it is [`preview`](super::preview).

use serde_json::{Map, Value, json};

use crate::store::{Product, StoredInstance};
use lookout::config::{ConfigError, ServiceTable, parse_services, refused_targets};
use lookout::delivery::ssrf::Guard;
use lookout::options::OptionProblem;
use lookout::redact::{REDACTED, Redactor};
use lookout::service;

/// The longest table read (a product's services fit in a fraction of it).
pub(super) const MAX_TEXT: usize = 64 * 1024;

/// Something wrong with the submitted table, and the line it is on when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    pub text: String,
}

impl Problem {
    pub(super) fn general(text: impl Into<String>) -> Problem {
        Problem {
            line: None,
            text: text.into(),
        }
    }
}

// --- the table shown ------------------------------------------------------------------

/// The product's services as a `services` table to edit, their secrets left out.
pub fn prefill(instances: &[StoredInstance]) -> String {
    let tables: Vec<String> = instances.iter().map(service_text).collect();
    tables.join("\n")
}

/// One stored service as `[services.NAME]`, a comment naming what is not shown.
fn service_text(stored: &StoredInstance) -> String {
    let Some((shown, left_out)) = without_secrets(stored) else {
        return format!(
            "# [services.{}]: service `{}` is unknown to this build; not shown\n",
            stored.name, stored.service
        );
    };
    let document = json!({ "services": { stored.name.clone(): shown } });
    let Ok(table) = toml::to_string(&document) else {
        return format!(
            "# [services.{}]: not shown (not writable as TOML)\n",
            stored.name
        );
    };
    if left_out.is_empty() {
        return table;
    }
    format!(
        "# {}: {} not shown (secret); left out, the stored value is kept\n{table}",
        stored.name,
        left_out.join(", ")
    )
}

/// The stored options as the page may show them: `service` when the name is not the
/// service's, the secret options left out (their names returned), and secrets found
/// in other options redacted. `None` for a service this build does not know (which of
/// its options are secret is unknown).
fn without_secrets(stored: &StoredInstance) -> Option<(Map<String, Value>, Vec<String>)> {
    let registration = service::find(&stored.service)?;
    let secret = registration.schema.secret_names(&stored.options);
    let redactor = secrets_of(&stored.service, &stored.options);
    let mut shown = Map::new();
    if stored.name != stored.service {
        shown.insert("service".into(), stored.service.clone().into());
    }
    let mut left_out = Vec::new();
    for (key, value) in &stored.options {
        if secret.contains(&key.as_str()) {
            left_out.push(key.clone());
        } else {
            shown.insert(key.clone(), redactor.redact_json(value));
        }
    }
    Some((shown, left_out))
}

/// A redactor of the secrets of options as written for `service` (valid or not); none
/// for a service this build does not know.
fn secrets_of(service: &str, options: &Map<String, Value>) -> Redactor {
    service::find(service).map_or_else(Redactor::new, |registration| {
        registration.schema.redactor_of(options)
    })
}

// --- the table submitted --------------------------------------------------------------

/// The submitted table, with what the page did not show taken from the product's
/// stored services, validated: the services to compare, or every problem with its line.
pub fn read(
    text: &str,
    product: &Product,
    guard: &Guard,
) -> Result<Vec<ServiceTable>, Vec<Problem>> {
    if text.len() > MAX_TEXT {
        let limit = MAX_TEXT / 1024;
        return Err(vec![Problem::general(format!(
            "the table is longer than {limit} KiB"
        ))]);
    }
    let mut table = match lookout::config::services_table(text, "preview") {
        Ok(table) => table,
        Err(ConfigError::Syntax { message, .. }) => return Err(vec![Problem::general(message)]),
        Err(other) => return Err(vec![Problem::general(other.to_string())]),
    };
    if table.is_empty() {
        return Err(vec![Problem::general(
            "no [services.NAME] table: write at least one",
        )]);
    }
    for (name, options) in table.iter_mut() {
        let stored = product.instances.iter().find(|i| i.name == *name);
        if let (Value::Object(options), Some(stored)) = (options, stored) {
            keep_stored(options, stored);
        }
    }
    let tables = parse_services(&table).map_err(|problems| placed(text, &problems))?;
    let refused: Vec<OptionProblem> = tables
        .iter()
        .flat_map(|t| refused_targets(&t.instance, guard))
        .collect();
    if refused.is_empty() {
        Ok(tables)
    } else {
        Err(placed(text, &refused))
    }
}

/// Fills into a submitted table what the page did not show of the stored service of
/// the same name, if it is the same service: secret options left out, empty or
/// `[redacted]`, and other options still as the page showed them redacted.
fn keep_stored(table: &mut Map<String, Value>, stored: &StoredInstance) {
    let service = table.get("service").and_then(Value::as_str);
    if service.unwrap_or(&stored.name) != stored.service {
        // Another service: a secret is never carried over to where it does not belong.
        return;
    }
    let Some((shown, _)) = without_secrets(stored) else {
        return;
    };
    for (key, value) in &stored.options {
        let submitted = table.get(key);
        let keep = match shown.get(key) {
            None => submitted.is_none_or(blank_or_redacted),
            Some(as_shown) => as_shown != value && submitted == Some(as_shown),
        };
        if keep {
            table.insert(key.clone(), value.clone());
        }
    }
}

fn blank_or_redacted(value: &Value) -> bool {
    match value {
        Value::String(text) => text.trim().is_empty() || text.contains(REDACTED),
        Value::Array(items) => items.is_empty() || items.iter().any(blank_or_redacted),
        _ => false,
    }
}

/// The problems, each with the line of its option (or of its table) in `text`.
fn placed(text: &str, problems: &[OptionProblem]) -> Vec<Problem> {
    problems
        .iter()
        .map(|problem| Problem {
            line: line_of(text, &problem.instance, &problem.option),
            text: problem.to_string(),
        })
        .collect()
}

/// The line (from 1) of `option = …` in the table `[services.NAME]` of `text`, else
/// of the table's header; `None` when the text is not laid out that way (JSON, inline
/// tables).
fn line_of(text: &str, instance: &str, option: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let header = lines.iter().position(|line| is_header(line, instance))?;
    let found = lines[header + 1..]
        .iter()
        .take_while(|line| !line.trim_start().starts_with('['))
        .position(|line| !option.is_empty() && assigns(line, option));
    Some(header + 1 + found.map_or(0, |at| at + 1))
}

fn is_header(line: &str, instance: &str) -> bool {
    let inner = line
        .split('#')
        .next()
        .unwrap_or_default()
        .trim()
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'));
    let Some(inner) = inner else {
        return false;
    };
    let inner: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
    inner == format!("services.{instance}") || inner == format!("services.\"{instance}\"")
}

/// Whether the line sets `option` (`option = …`, or `option.part = …`).
fn assigns(line: &str, option: &str) -> bool {
    let rest = line.trim_start().strip_prefix(option).map(str::trim_start);
    rest.is_some_and(|rest| rest.starts_with('=') || rest.starts_with('.'))
}

/// Every secret the page might come across: the stored services' and the submitted
/// table's (as far as it parses). The text shown again in the box passes through it.
pub(super) fn page_redactor(product: &Product, text: &str) -> Redactor {
    let mut redactor = Redactor::new();
    for stored in &product.instances {
        redactor.extend(&secrets_of(&stored.service, &stored.options));
    }
    let submitted = lookout::config::services_table(text, "preview").unwrap_or_default();
    for (name, options) in &submitted {
        let Value::Object(options) = options else {
            continue;
        };
        let service = options.get("service").and_then(Value::as_str);
        redactor.extend(&secrets_of(service.unwrap_or(name), options));
    }
    redactor
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An echo service (its `urls` and `secret` are secret) with a key in its URL.
    pub(crate) const KEY: &str = "hookKEY0123456789";
    pub(crate) const SIGNING: &str = "signing-secret-abcdef";

    pub(crate) fn product() -> Product {
        let options = json!({
            "urls": [format!("http://127.0.0.1:9/{KEY}")],
            "secret": SIGNING,
            "events": ["Item.*"],
        });
        Product {
            id: "p1".into(),
            instances: vec![StoredInstance {
                name: "hook".into(),
                service: "echo".into(),
                options: options.as_object().unwrap().clone(),
            }],
            disabled: Vec::new(),
            alerts: None,
            generation: 0,
        }
    }

    fn guard() -> Guard {
        Guard::for_settings(&lookout::settings::Settings {
            allow_networks: vec!["127.0.0.0/8".parse().unwrap()],
            ..Default::default()
        })
    }

    #[test]
    fn the_prefilled_table_has_no_secret_and_reads_back_as_stored() {
        let product = product();
        let text = prefill(&product.instances);
        assert!(!text.contains(KEY) && !text.contains(SIGNING), "{text}");
        assert!(
            text.contains("# hook: urls, secret not shown (secret)"),
            "{text}"
        );
        assert!(
            text.contains("[services.hook]\nservice = \"echo\"\n"),
            "{text}"
        );
        let tables = read(&text, &product, &guard()).expect("valid");
        assert_eq!(tables.len(), 1);
        assert_eq!(tables[0].options, product.instances[0].options);
    }

    #[test]
    fn secrets_are_kept_when_left_out_empty_or_redacted_and_used_when_written() {
        let product = product();
        let table = |extra: &str| format!("[services.hook]\nservice = \"echo\"\n{extra}");
        for kept in [
            "",
            "urls = []\nsecret = \"\"\n",
            "urls = [\"[redacted]\"]\n",
        ] {
            let tables = read(&table(kept), &product, &guard()).expect(kept);
            assert_eq!(
                tables[0].options["urls"],
                product.instances[0].options["urls"]
            );
            assert_eq!(tables[0].options["secret"], SIGNING, "{kept}");
        }
        let written = read(
            &table("urls = [\"http://127.0.0.1:9/other-key\"]\n"),
            &product,
            &guard(),
        )
        .expect("valid");
        assert_eq!(tables_url(&written), "http://127.0.0.1:9/other-key");
        // Another service by the same name gets none of the stored secrets.
        let moved = read(
            "[services.hook]\nservice = \"echo\"\n",
            &Product {
                instances: vec![StoredInstance {
                    service: "other".into(),
                    ..product.instances[0].clone()
                }],
                ..product.clone()
            },
            &guard(),
        );
        assert!(moved.is_err(), "urls is required and was not carried over");
    }

    fn tables_url(tables: &[ServiceTable]) -> &str {
        tables[0].options["urls"][0].as_str().unwrap()
    }

    #[test]
    fn problems_name_their_line_and_nothing_is_read() {
        let product = product();
        let text = "# a comment\n[services.hook]\nservice = \"echo\"\ncolour = \"red\"\n";
        let problems = read(text, &product, &guard()).expect_err("unknown option");
        assert_eq!(
            problems,
            [Problem {
                line: Some(4),
                text: "[services.hook] colour: unknown option".into()
            }]
        );
        let syntax = read("[services.hook\n", &product, &guard()).expect_err("syntax");
        assert!(
            syntax[0].text.starts_with("line 1, column 15:"),
            "{syntax:?}"
        );
        let refused = "[services.x]\nservice = \"echo\"\nurls = [\"http://10.0.0.1/\"]\n";
        let problems = read(refused, &product, &guard()).expect_err("SSRF");
        assert_eq!(problems[0].line, Some(3), "{problems:?}");
    }
}
