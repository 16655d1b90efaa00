//! *Preview a change*: a product's services as a TOML `services` table, edited in the
//! page and run over the product's latest stored events by [`replay::compare`] — what
//! the change would send, as diffs, before it is made. Nothing is sent, nothing stored.
//!
//! The page never holds a stored secret. The table is prefilled without the secret
//! options (a comment names them), and a secret option that the submitted table leaves
//! out, leaves empty or writes with `[redacted]` in it keeps the value of the stored
//! service of the same name and service; an option the page showed redacted (a key
//! pasted into `channel`) keeps its stored value while it is left as shown. The text
//! that comes back in the box is redacted the same way.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::auth::Session;
use super::pages::{Chrome, Refused, render, visible_product};
use super::{Console, Posted};
use crate::replay::{self, Change, Replay, ReplayReport, Summary};
use crate::store::{Product, StoredInstance, millis, now_ms};
use askama::Template;
use lookout::config::{ConfigError, ServiceTable, parse_services, refused_targets};
use lookout::delivery::ssrf::Guard;
use lookout::options::OptionProblem;
use lookout::redact::{REDACTED, Redactor};
use lookout::service;

/// The most events one preview compares: the newest of the window. A page is drawn in
/// seconds, whatever the window holds.
pub const LIMIT: usize = 200;

/// The windows offered, as `humantime` reads them, and as the page says them.
const WINDOWS: [(&str, &str); 3] = [
    ("1h", "the last hour"),
    ("24h", "the last 24 hours"),
    ("7d", "the last 7 days"),
];
const DEFAULT_WINDOW: &str = "24h";

/// The longest table read (a product's services fit in a fraction of it).
const MAX_TEXT: usize = 64 * 1024;

/// Something wrong with the submitted table, and the line it is on when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    pub text: String,
}

impl Problem {
    fn general(text: impl Into<String>) -> Problem {
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
fn page_redactor(product: &Product, text: &str) -> Redactor {
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

// --- the page ---------------------------------------------------------------------------

/// One line of a diff, with the class that colours it.
pub struct DiffLine {
    pub class: &'static str,
    pub text: String,
}

/// One event through one service, as listed.
pub struct Shown {
    pub event: String,
    pub event_id: String,
    pub instance: String,
    pub change: &'static str,
    pub lines: Vec<DiffLine>,
}

/// The report as the page shows it: differing pairs with their diffs, unchanged ones
/// only listed.
pub struct ShownReport {
    pub summary: Summary,
    pub cut: bool,
    pub differing: Vec<Shown>,
    pub unchanged: Vec<Shown>,
}

impl ShownReport {
    fn new(report: ReplayReport, redactor: &Redactor) -> ShownReport {
        let (unchanged, differing): (Vec<Shown>, Vec<Shown>) = report
            .comparisons
            .into_iter()
            .map(|comparison| Shown {
                event: comparison.event,
                event_id: comparison.event_id,
                instance: comparison.instance,
                change: change_word(comparison.change),
                // Redacted by each side's own options already; again by every secret
                // known here, so that no stored secret can reach the page.
                lines: diff_lines(&redactor.redact(&comparison.diff)),
            })
            .partition(|shown| shown.change == "unchanged");
        ShownReport {
            summary: report.summary,
            cut: report.cut,
            differing,
            unchanged,
        }
    }
}

fn change_word(change: Change) -> &'static str {
    match change {
        Change::Unchanged => "unchanged",
        Change::Changed => "changed",
        Change::New => "new",
        Change::Removed => "removed",
    }
}

fn diff_lines(diff: &str) -> Vec<DiffLine> {
    diff.lines()
        .map(|line| {
            let class = if line.starts_with("+++") || line.starts_with("---") {
                "file"
            } else if line.starts_with("@@") {
                "hunk"
            } else if line.starts_with('+') {
                "add"
            } else if line.starts_with('-') {
                "del"
            } else {
                "same"
            };
            DiffLine {
                class,
                text: line.to_owned(),
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "console/preview.html")]
struct PreviewPage {
    chrome: Chrome,
    product: String,
    /// The table in the box.
    text: String,
    windows: [(&'static str, &'static str); 3],
    window: String,
    /// The product's services, to compare only one.
    services: Vec<String>,
    service: String,
    limit: usize,
    problems: Vec<Problem>,
    report: Option<ShownReport>,
}

impl PreviewPage {
    fn new(chrome: Chrome, product: &Product, text: String) -> PreviewPage {
        PreviewPage {
            chrome,
            product: product.id.clone(),
            text,
            windows: WINDOWS,
            window: DEFAULT_WINDOW.to_owned(),
            services: product.instances.iter().map(|i| i.name.clone()).collect(),
            service: String::new(),
            limit: LIMIT,
            problems: Vec::new(),
            report: None,
        }
    }
}

pub async fn form(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, Refused> {
    let product = visible_product(&console, &session, &id).await?;
    let text = prefill(&product.instances);
    Ok(render(
        StatusCode::OK,
        &PreviewPage::new(Chrome::of(&session), &product, text),
    ))
}

/// Runs the submitted table over the newest [`LIMIT`] events of the window (nothing is
/// sent or stored) and shows the report under the form, or the problems beside it.
pub async fn run(
    State(console): State<Console>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, Refused> {
    let product = visible_product(&console, &posted.session, &id).await?;
    // Browsers send a text box's lines with CRLF.
    let text = posted
        .field("services")
        .unwrap_or_default()
        .replace("\r\n", "\n");
    let redactor = page_redactor(&product, &text);
    let shown_text = redactor.redact(&text);
    let mut page = PreviewPage::new(Chrome::of(&posted.session), &product, shown_text);
    page.window = posted.field("window").unwrap_or(DEFAULT_WINDOW).to_owned();
    page.service = posted.field("service").unwrap_or_default().to_owned();
    let asked = window_start(&page.window).and_then(|since| {
        let tables = read(&text, &product, &console.guard)?;
        chosen(&tables, &page.service)?;
        Ok((since, tables))
    });
    let (since, tables) = match asked {
        Ok(asked) => asked,
        Err(problems) => {
            page.problems = problems;
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    let replay = Replay {
        services: &tables,
        since,
        product: Some(product.id.clone()),
        service: Some(page.service.clone()).filter(|s| !s.is_empty()),
        limit: Some(LIMIT),
        budget: None,
    };
    let report = replay::compare(console.store.as_ref(), &replay).await?;
    page.report = Some(ShownReport::new(report, &redactor));
    Ok(render(StatusCode::OK, &page))
}

/// The start of a window the page offers.
fn window_start(window: &str) -> Result<crate::store::Millis, Vec<Problem>> {
    let offered = WINDOWS.iter().any(|(w, _)| *w == window);
    match humantime::parse_duration(window) {
        Ok(length) if offered => Ok(now_ms() - millis(length)),
        _ => Err(vec![Problem::general(format!(
            "window: `{}` is not one of 1h, 24h, 7d",
            window.escape_default()
        ))]),
    }
}

/// The one service asked for is among the tables (empty: all of them).
fn chosen(tables: &[ServiceTable], service: &str) -> Result<(), Vec<Problem>> {
    if service.is_empty() || tables.iter().any(|t| t.instance.name == service) {
        return Ok(());
    }
    Err(vec![Problem::general(format!(
        "service: the table has no enabled [services.{}]",
        service.escape_default()
    ))])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo service (its `urls` and `secret` are secret) with a key in its URL.
    const KEY: &str = "hookKEY0123456789";
    const SIGNING: &str = "signing-secret-abcdef";

    fn product() -> Product {
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

    #[test]
    fn the_text_shown_again_and_the_diffs_are_redacted() {
        let product = product();
        let text = format!(
            "[services.hook]\nservice = \"echo\"\nsecret = \"{SIGNING}\"\n\
             [services.new]\nservice = \"echo\"\nurls = [\"http://127.0.0.1:9/newKEY98765432\"]\n"
        );
        let redactor = page_redactor(&product, &text);
        let shown = redactor.redact(&text);
        for secret in [SIGNING, "newKEY98765432"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        let lines = diff_lines(&redactor.redact(&format!("+ {KEY}\n- x\n@@ -1 +1 @@\n")));
        let classes: Vec<&str> = lines.iter().map(|l| l.class).collect();
        assert_eq!(classes, ["add", "del", "hunk"]);
        assert!(!lines[0].text.contains(KEY));
    }
}
