//! Message templates: an operator's own words for the parts of a configured service's
//! [`Message`] (`[services.NAME] template.title = "…"`), in a sandboxed Jinja-style
//! language (MiniJinja without a loader: no files, no includes).
//!
//! What a template writes is *text*, never markup: its output, literal text and inserted
//! values alike, is escaped by the service's [`Dialect`](super::Dialect) exactly like the
//! default wording, so a title such as `<!channel>` or `@everyone` arrives as written and
//! pings nobody. The one way to make a link is the `link(text, url)` helper (or the
//! ready-made `item_link`, `product_link`, `headline`): links travel out of the engine
//! as marked spans and become [`Span::Link`]s, written the platform's way.
//!
//! Templates are checked when the config is loaded (and when `serve` receives a
//! product's services): syntax, unknown variables and a trial render of every sample
//! event, each problem with its line and column. A render is bounded in work (fuel) and
//! in size.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use minijinja::value::{Object, Serde, Value as Jinja};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde_json::Value;

use super::budget::truncate;
use super::markup::{Rich, Span};
use super::message::{Message, item_link};
use super::wording::{self, count_items, full_name, humanized, item_label, reports_link};
use crate::error::BuildError;
use crate::options::OptionProblem;
use crate::payload::{Attributes, Event, Item, User};

/// The key of a configured service's table that holds its templates.
pub const TEMPLATE: &str = "template";

/// Work one render may do (MiniJinja fuel: about one per instruction or 64 bytes made).
const FUEL: u64 = 50_000;

/// The most a rendered part may hold, in bytes.
pub const MAX_OUTPUT_BYTES: usize = 8 * 1024;

/// The parts of a [`Message`] a template can write, by their key under `template`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// What happened, with links ([`Message::headline`]).
    Headline,
    /// The short title of cards and subjects ([`Message::title`]).
    Title,
    /// The one-line message of notifications and fallbacks ([`Message::summary`]).
    Summary,
    /// The quoted comment or description ([`Message::quote`]).
    Quote,
    /// A digest's headline, above its list of events (`lookout serve`'s `digest`): its
    /// own variables, [`DIGEST_VARIABLES`].
    Digest,
}

impl Part {
    pub const ALL: [Part; 5] = [
        Part::Headline,
        Part::Title,
        Part::Summary,
        Part::Quote,
        Part::Digest,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Part::Headline => "headline",
            Part::Title => "title",
            Part::Summary => "summary",
            Part::Quote => "quote",
            Part::Digest => "digest",
        }
    }

    fn from_key(key: &str) -> Option<Part> {
        Part::ALL.into_iter().find(|p| p.key() == key)
    }
}

/// What a template can use: `(name, what it is)`, the one table `lookout docs templates`
/// prints and docs/TEMPLATES.md shows.
pub const VARIABLES: &[(&str, &str)] = &[
    (
        "model",
        "The event's model: `Item`, `Comment`, `Block`, `Favorite` or `Deploy`.",
    ),
    (
        "action",
        "What happened to it: `created`, `updated` or `deleted`.",
    ),
    ("product", "The product: `product.id`, `product.name`."),
    (
        "attributes",
        "The event's attributes as sent (`attributes.title`, `attributes.created_by.first_name`…).",
    ),
    (
        "headline",
        "The default headline, its link kept: `Joe S. created the story #12 - Title`.",
    ),
    (
        "title",
        "The default title: `Story #12: Title` (`Deploy to production` for deploys).",
    ),
    (
        "summary",
        "The original one-line message: `Joe S. created the story \"Title\" (#12) http://…`.",
    ),
    (
        "quote",
        "The comment, or the item's description (trimmed, at most 500 characters); empty when none.",
    ),
    ("actor", "Who did it, short: `Joe S.`"),
    ("actor_name", "Who did it, in full: `Joe Stump`."),
    (
        "item_kind",
        "The item's type: `story`, `task`, `defect`, `test` (empty for deploys, as are all `item_` values).",
    ),
    ("item_number", "The item's number: `12`."),
    ("item_title", "The item's title."),
    ("item_url", "The item's short URL."),
    ("item_label", "`#12 - Title`, how links name an item."),
    ("item_link", "The item's label, linked to the item."),
    (
        "status",
        "The item's status in words: `In progress` (empty when it has none).",
    ),
    (
        "assignee",
        "Who the item is assigned to, short: `Craig P.` (empty when nobody).",
    ),
    (
        "excerpt",
        "A comment's first 50 characters, mentions cleaned, then `...` (empty for other events).",
    ),
    (
        "count",
        "A deploy's items in words: `3 items` (empty for other events).",
    ),
    (
        "environment",
        "A deploy's environment: `production` (empty for other events).",
    ),
    (
        "product_link",
        "The product's name, linked to its Sprint.ly report page.",
    ),
    (
        "link(text, url)",
        "A link: `{{ link(\"Board\", \"https://example.com/board\") }}`; its text is escaped like all text.",
    ),
    (
        "reports_link(param, value)",
        "The URL of a Sprint.ly report page: `{{ link(t, reports_link(\"tag\", t)) }}`.",
    ),
    (
        "text | truncate(n)",
        "At most `n` characters of the text, then `...` (a filter).",
    ),
];

/// What `template.digest` can use: `(name, what it is)`.
pub const DIGEST_VARIABLES: &[(&str, &str)] = &[
    (
        "events",
        "The digest's events, oldest first; each has the variables of a single event's template: `{% for e in events %}{{ e.item_link }} {% endfor %}`.",
    ),
    ("count", "How many events: `5`."),
    ("product", "The product: `product.id`, `product.name`."),
    (
        "product_link",
        "The product's name, linked to its Sprint.ly report page.",
    ),
    (
        "headline",
        "The default digest headline, its link kept: `5 events in Product`.",
    ),
    ("link(text, url)", "A link, as in any template."),
    (
        "reports_link(param, value)",
        "The URL of a Sprint.ly report page, as in any template.",
    ),
];

/// The names MiniJinja itself provides (its global functions), less `debug`: it writes
/// the whole render context (the event and every helper) into the message, a dump an
/// outside service should never get by accident; `{{ attributes }}` shows the item when
/// that is wanted. See docs/TEMPLATES.md.
const BUILTIN_GLOBALS: &[&str] = &["range", "dict", "namespace"];

// Links leave a render as `START text URL url END`; these private-use characters are
// removed from every value taken from the event, so a title cannot forge a link.
const LINK_START: char = '\u{E000}';
const LINK_URL: char = '\u{E001}';
const LINK_END: char = '\u{E002}';

/// A configured service's templates (none by default).
#[derive(Clone, Default)]
pub struct Templates(Option<Arc<Compiled>>);

struct Compiled {
    env: Environment<'static>,
    parts: Vec<Part>,
}

// The templates are the operator's text, not secrets; show which parts are set.
impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<&str> = self.parts().iter().map(|p| p.key()).collect();
        write!(f, "Templates({parts:?})")
    }
}

impl Templates {
    /// The templates of a `template` table (`{ title = "…", headline = "…" }`), checked:
    /// every problem named with its key and, in the template, its line and column.
    pub fn parse(instance: &str, table: &Value) -> Result<Templates, Vec<OptionProblem>> {
        let problem = |key: &str, text: String| OptionProblem {
            instance: instance.to_owned(),
            option: if key.is_empty() {
                TEMPLATE.to_owned()
            } else {
                format!("{TEMPLATE}.{key}")
            },
            problem: text,
        };
        let Some(table) = table.as_object() else {
            let text = "expected a table of templates, e.g. `template.title = \"…\"`";
            return Err(vec![problem("", text.to_owned())]);
        };
        let mut env = sandbox();
        let mut parts = Vec::new();
        let mut problems = Vec::new();
        for (key, source) in table {
            let Some(part) = Part::from_key(key) else {
                let known: Vec<&str> = Part::ALL.iter().map(|p| p.key()).collect();
                let text = format!("unknown part `{key}` (known: {})", known.join(", "));
                problems.push(problem(key, text));
                continue;
            };
            let Some(source) = source.as_str() else {
                problems.push(problem(key, "expected a template string".to_owned()));
                continue;
            };
            match compile(&mut env, part, source) {
                Ok(()) => parts.push(part),
                Err(text) => problems.push(problem(key, text)),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let templates = Templates(Some(Arc::new(Compiled { env, parts })));
        match templates.trial_renders() {
            Ok(()) => Ok(templates),
            Err((part, text)) => Err(vec![problem(part.key(), text)]),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.parts().is_empty()
    }

    fn parts(&self) -> &[Part] {
        self.0.as_ref().map_or(&[], |c| &c.parts)
    }

    /// `message` with every templated part replaced by its template's text for `event`.
    pub fn apply(&self, event: &Event, mut message: Message) -> Result<Message, BuildError> {
        let Some(compiled) = self.0.as_ref().filter(|_| !is_alert(event)) else {
            return Ok(message);
        };
        let context = context(event, &message)?;
        for &part in &compiled.parts {
            if part == Part::Digest {
                continue; // Digests only (below).
            }
            let rich = compiled.render(part, &context)?;
            match part {
                Part::Headline => message.headline = rich,
                Part::Title => message.title = plain(&rich),
                Part::Summary => message.summary = plain(&rich),
                Part::Quote => message.quote = Some(plain(&rich)).filter(|q| !q.is_empty()),
                Part::Digest => {}
            }
        }
        Ok(message)
    }

    /// A digest's `message` ([`Message::digest`] of `events`) with its headline written
    /// by `template.digest`, when there is one.
    pub fn apply_digest(
        &self,
        events: &[Event],
        mut message: Message,
    ) -> Result<Message, BuildError> {
        let Some(compiled) = self.0.as_ref().filter(|c| c.parts.contains(&Part::Digest)) else {
            return Ok(message);
        };
        let context = digest_context(events, &message);
        message.headline = compiled.render(Part::Digest, &context)?;
        Ok(message)
    }

    /// One part's text for `event`, when there is a template for it: for services that
    /// write their own wording rather than a [`Message`] (Slack's attachment).
    pub fn render(&self, part: Part, event: &Event) -> Option<Result<Rich, BuildError>> {
        let compiled = self.0.as_ref().filter(|c| c.parts.contains(&part))?;
        if is_alert(event) {
            return None;
        }
        let rendered = Message::from_event(event)
            .and_then(|message| context(event, &message))
            .and_then(|context| compiled.render(part, &context));
        Some(rendered)
    }

    /// Renders every template for every sample event: what fails for a sample (an
    /// unknown filter, a loop out of fuel, too long a text) fails here, before anything
    /// is sent. Lookups the sample lacks (`attributes.x` on a deploy) are left to the
    /// events themselves.
    fn trial_renders(&self) -> Result<(), (Part, String)> {
        let Some(compiled) = &self.0 else {
            return Ok(());
        };
        let samples: Vec<Event> = crate::samples::ALL
            .iter()
            .map(|(_, json)| Event::parse(json).expect("the samples parse"))
            .collect();
        if compiled.parts.contains(&Part::Digest) {
            let message = Message::digest(&samples).expect("the samples have messages");
            let context = digest_context(&samples, &message);
            match compiled.render_raw(Part::Digest, &context) {
                Err(RenderError::Template(err)) if err.kind() == ErrorKind::UndefinedError => {}
                Err(err) => {
                    let source = compiled.source(Part::Digest);
                    return Err((Part::Digest, err.describe(&source)));
                }
                Ok(_) => {}
            }
        }
        for event in &samples {
            let message = Message::from_event(event).expect("the samples have messages");
            let context = context(event, &message).expect("the samples have contexts");
            for &part in compiled.parts.iter().filter(|p| **p != Part::Digest) {
                match compiled.render_raw(part, &context) {
                    Err(RenderError::Template(err)) if err.kind() == ErrorKind::UndefinedError => {}
                    Err(err) => return Err((part, err.describe(&compiled.source(part)))),
                    Ok(_) => {}
                }
            }
        }
        Ok(())
    }
}

/// The environment every template runs in: no loader (no files), strict about unknown
/// names, bounded by fuel, no HTML escaping (the service's dialect escapes), links
/// written as marked spans.
fn sandbox() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_debug(true);
    env.remove_global("debug");
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_formatter(
        |out, state, value| match value.downcast_object_ref::<Link>() {
            Some(link) => write!(
                out,
                "{LINK_START}{}{LINK_URL}{}{LINK_END}",
                link.text, link.url
            )
            .map_err(|_| minijinja::Error::from(ErrorKind::WriteFailure)),
            None => minijinja::escape_formatter(out, state, value),
        },
    );
    env.add_function("link", |text: String, url: String| {
        Jinja::from_object(Link::new(&text, &url))
    });
    // Jinja's `truncate`, which MiniJinja leaves out: at most `n` characters, then `...`.
    env.add_filter("truncate", |text: String, n: usize| truncate(&text, n));
    env.add_function("reports_link", |param: String, value: String| {
        reports_link(&clean(&param), &clean(&value))
    });
    env
}

/// Adds one part's template to `env`: its syntax, then its names.
fn compile(env: &mut Environment<'static>, part: Part, source: &str) -> Result<(), String> {
    env.add_template_owned(part.key(), source.to_owned())
        .map_err(|err| RenderError::Template(err).describe(source))?;
    let template = env.get_template(part.key()).expect("just added");
    let mut unknown: Vec<(usize, String)> = template
        .undeclared_variables(false)
        .into_iter()
        .filter(|name| !is_known(part, name))
        .map(|name| (first_use(source, &name).unwrap_or(0), name))
        .collect();
    unknown.sort();
    match unknown.first() {
        Some((offset, name)) => Err(format!(
            "{}: unknown variable `{name}`{}",
            position(source, *offset),
            suggestion(name)
        )),
        None => Ok(()),
    }
}

fn is_known(part: Part, name: &str) -> bool {
    let variables = if part == Part::Digest {
        DIGEST_VARIABLES
    } else {
        VARIABLES
    };
    BUILTIN_GLOBALS.contains(&name) || variables.iter().any(|(v, _)| variable_name(v) == name)
}

/// `link(text, url)` → `link`; filters (`text | truncate(n)`) are no variables.
fn variable_name(entry: &str) -> &str {
    if entry.contains('|') {
        return "";
    }
    entry.split('(').next().unwrap_or(entry)
}

/// ` (did you mean `title`?)` when a known name is close.
fn suggestion(name: &str) -> String {
    VARIABLES
        .iter()
        .map(|(v, _)| variable_name(v))
        .map(|v| (strsim::jaro_winkler(name, v), v))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, v)| format!(" (did you mean `{v}`?)"))
        .unwrap_or_default()
}

/// Where `name` is first used as a variable in `source`: inside `{{ }}` or `{% %}`,
/// outside string literals, not after a `.` (an attribute).
fn first_use(source: &str, name: &str) -> Option<usize> {
    let bytes = source.as_bytes();
    let mut i = 0;
    let mut in_code = false;
    while i < bytes.len() {
        let rest = &source[i..];
        // Steps are whole characters: text may be in any script.
        let step = rest.chars().next().map_or(1, char::len_utf8);
        if !in_code {
            in_code = rest.starts_with("{{") || rest.starts_with("{%");
            i += if in_code { 2 } else { step };
            continue;
        }
        match bytes[i] {
            b'}' | b'%' if rest[1..].starts_with('}') => {
                in_code = false;
                i += 2;
            }
            quote @ (b'"' | b'\'') => {
                i += 1 + rest[1..]
                    .find(quote as char)
                    .map_or(rest.len() - 1, |end| end + 1);
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let len = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                let after_dot = source[..i].trim_end().ends_with('.');
                if &rest[..len] == name && !after_dot {
                    return Some(i);
                }
                i += len;
            }
            _ => i += step,
        }
    }
    None
}

/// `line 1, column 5` for a byte offset of `source`.
fn position(source: &str, offset: usize) -> String {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}")
}

enum RenderError {
    Template(minijinja::Error),
    TooLong(usize),
}

impl RenderError {
    /// `line 1, column 5: unknown filter: filter `uper` is unknown`.
    fn describe(&self, source: &str) -> String {
        match self {
            RenderError::TooLong(bytes) => format!(
                "the text is {bytes} bytes long, more than the {MAX_OUTPUT_BYTES} a template may write"
            ),
            RenderError::Template(err) => {
                let what = match err.detail() {
                    Some(detail) => format!("{}: {detail}", err.kind()),
                    None => err.kind().to_string(),
                };
                match (err.range(), err.line()) {
                    (Some(range), _) => format!("{}: {what}", position(source, range.start)),
                    (None, Some(line)) => format!("line {line}: {what}"),
                    (None, None) => what,
                }
            }
        }
    }
}

impl Compiled {
    fn source(&self, part: Part) -> String {
        self.env
            .get_template(part.key())
            .map_or(String::new(), |template| template.source().to_owned())
    }

    fn render_raw(&self, part: Part, context: &Jinja) -> Result<String, RenderError> {
        let template = self
            .env
            .get_template(part.key())
            .map_err(RenderError::Template)?;
        let text = template.render(context).map_err(RenderError::Template)?;
        if text.len() > MAX_OUTPUT_BYTES {
            return Err(RenderError::TooLong(text.len()));
        }
        Ok(text)
    }

    /// One part for one event: a failure names the part and where in its template.
    fn render(&self, part: Part, context: &Jinja) -> Result<Rich, BuildError> {
        match self.render_raw(part, context) {
            Ok(text) => Ok(spans(&text)),
            Err(err) => Err(BuildError::Invalid(format!(
                "{TEMPLATE}.{}: {}",
                part.key(),
                err.describe(&self.source(part))
            ))),
        }
    }
}

/// A link made in a template (or given to it), as the formatter writes it.
#[derive(Debug)]
struct Link {
    text: String,
    url: String,
}

impl Link {
    fn new(text: &str, url: &str) -> Link {
        Link {
            text: clean(text),
            url: clean(url),
        }
    }
}

impl Object for Link {
    // Where a link is used as text (`item_link | upper`), it is its text.
    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Rich text as a template value: a lone link stays a link; mixed text becomes a
/// string in which the links are marked.
fn rich_value(rich: &Rich) -> Jinja {
    if let [Span::Link { text, url }] = rich.0.as_slice() {
        return Jinja::from_object(Link::new(text, url));
    }
    let marked: String = rich
        .0
        .iter()
        .map(|span| match span {
            Span::Text(text) => clean(text),
            Span::Link { text, url } => {
                format!(
                    "{LINK_START}{}{LINK_URL}{}{LINK_END}",
                    clean(text),
                    clean(url)
                )
            }
        })
        .collect();
    Jinja::from(marked)
}

/// A render's output as rich text: the marked links become links.
fn spans(output: &str) -> Rich {
    let mut rich = Rich::default();
    let mut rest = output;
    while let Some(start) = rest.find(LINK_START) {
        let marked = &rest[start + LINK_START.len_utf8()..];
        let Some((text, url, after)) = marked.split_once(LINK_END).and_then(|(link, after)| {
            link.split_once(LINK_URL)
                .map(|(text, url)| (text, url, after))
        }) else {
            break;
        };
        if start > 0 {
            rich = rich.push(&rest[..start]);
        }
        rich = rich.push_link(text, url);
        rest = after;
    }
    let rest = clean(rest);
    if !rest.is_empty() || rich.0.is_empty() {
        rich = rich.push(rest);
    }
    rich
}

/// Rich text as plain text (links as their text), for the plain parts.
fn plain(rich: &Rich) -> String {
    super::Dialect::PLAIN.rich(rich)
}

/// `text` without the link markers.
fn clean(text: &str) -> String {
    text.replace([LINK_START, LINK_URL, LINK_END], "")
}

/// JSON with the link markers removed from every string.
fn clean_json(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(clean(s)),
        Value::Array(items) => items.iter().map(clean_json).collect(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| (clean(k), clean_json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        other => other.clone(),
    }
}

fn json_value(value: Value) -> Jinja {
    Jinja::from(Serde(value))
}

/// The variables of [`VARIABLES`] for one event and its default message.
/// What `template.digest` renders with ([`DIGEST_VARIABLES`]): each event's own
/// context (events without one are left out), and the digest's.
fn digest_context(events: &[Event], message: &Message) -> Jinja {
    let each: Vec<Jinja> = events
        .iter()
        .filter_map(|event| context(event, &Message::from_event(event).ok()?).ok())
        .collect();
    let first = events.first();
    let product = first.map_or(
        Value::Null,
        |e| serde_json::json!({ "id": e.product.id, "name": e.product.name }),
    );
    let product_link = first.map_or(Jinja::from(""), |e| {
        Jinja::from_object(Link::new(
            &e.product.name,
            &reports_link("product", &e.product.id.to_string()),
        ))
    });
    let mut vars: BTreeMap<String, Jinja> = BTreeMap::new();
    vars.insert("count".into(), Jinja::from(each.len()));
    vars.insert("events".into(), Jinja::from(each));
    vars.insert("product".into(), json_value(clean_json(&product)));
    vars.insert("product_link".into(), product_link);
    vars.insert("headline".into(), rich_value(&message.headline));
    Jinja::from(vars)
}

fn context(event: &Event, message: &Message) -> Result<Jinja, BuildError> {
    let raw: Value = serde_json::from_str(event.raw()).unwrap_or_default();
    let mut vars: BTreeMap<&str, Jinja> = BTreeMap::new();
    vars.insert("model", clean(&event.model).into());
    vars.insert("action", clean(&event.action).into());
    vars.insert(
        "product",
        json_value(clean_json(&serde_json::json!({
            "id": event.product.id,
            "name": event.product.name,
        }))),
    );
    vars.insert(
        "attributes",
        json_value(clean_json(raw.get("attributes").unwrap_or(&Value::Null))),
    );
    vars.insert("headline", rich_value(&message.headline));
    vars.insert("title", clean(&message.title).into());
    vars.insert("summary", clean(&message.summary).into());
    let quote = message.quote.as_deref().unwrap_or_default();
    vars.insert("quote", clean(quote).into());
    vars.insert("actor", clean(&message.actor).into());
    vars.insert(
        "product_link",
        Jinja::from_object(Link::new(
            &event.product.name,
            &reports_link("product", &event.product.id.to_string()),
        )),
    );
    let about = about(event)?;
    vars.insert("actor_name", clean(&full_name(about.actor)).into());
    let item = |f: &dyn Fn(&Item) -> Jinja| about.item.map_or_else(|| Jinja::from(""), f);
    vars.insert("item_kind", item(&|i| clean(&i.kind).into()));
    vars.insert("item_number", item(&|i| i.number.into()));
    vars.insert("item_title", item(&|i| clean(&i.title).into()));
    vars.insert("item_url", item(&|i| clean(&i.short_url).into()));
    vars.insert("item_label", item(&|i| clean(&item_label(i)).into()));
    vars.insert("item_link", item(&|i| rich_value(&item_link(i))));
    vars.insert(
        "status",
        item(&|i| clean(&humanized(i.status.as_deref().unwrap_or_default())).into()),
    );
    vars.insert(
        "assignee",
        item(&|i| {
            let short = i.assigned_to.as_ref().map(wording::short_name);
            clean(&short.unwrap_or_default()).into()
        }),
    );
    vars.insert("excerpt", clean(&about.excerpt).into());
    vars.insert("count", clean(&about.count).into());
    vars.insert("environment", clean(&about.environment).into());
    let vars: BTreeMap<String, Jinja> = vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    Ok(Jinja::from(vars))
}

/// What an event is about, for the helpers.
struct About<'a> {
    actor: &'a User,
    item: Option<&'a Item>,
    excerpt: String,
    count: String,
    environment: String,
}

fn about(event: &Event) -> Result<About<'_>, BuildError> {
    let on = |actor, item| About {
        actor,
        item: Some(item),
        excerpt: String::new(),
        count: String::new(),
        environment: String::new(),
    };
    Ok(match wording::attributes(event)? {
        Attributes::Item(item) => on(&item.created_by, item),
        Attributes::Comment(comment) => About {
            excerpt: wording::excerpt(&comment.body),
            ..on(&comment.created_by, &comment.item)
        },
        Attributes::Block(block) => on(&block.user, &block.item),
        Attributes::Favorite(favorite) => on(&favorite.user, &favorite.item),
        Attributes::Deploy(deploy) => About {
            actor: &deploy.user,
            item: None,
            excerpt: String::new(),
            count: count_items(deploy.items.len()),
            environment: deploy.environment.clone(),
        },
        Attributes::Alert(_) | Attributes::Other(_) => {
            return Err(BuildError::no_message_for(event));
        }
    })
}

/// Lookout's own alerts (a target disabled, a delivery dead) say what they say: the
/// templates shape the product's events, not these.
fn is_alert(event: &Event) -> bool {
    matches!(event.attributes(), Ok(Attributes::Alert(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn templates(table: Value) -> Result<Templates, String> {
        Templates::parse("chat", &table).map_err(|problems| {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            lines.join("\n")
        })
    }

    fn render(template: &str, event: &str) -> Rich {
        let templates = templates(json!({ "headline": template })).unwrap();
        templates
            .render(Part::Headline, &crate::samples::edge_case(event))
            .unwrap()
            .unwrap()
    }

    fn text(template: &str, event: &str) -> String {
        plain(&render(template, event))
    }

    #[test]
    fn every_helper_has_its_value() {
        let item = |t| text(t, "item");
        assert_eq!(item("{{ model }} {{ action }}"), "Item created");
        assert_eq!(
            item("{{ product.name }} {{ product.id }}"),
            "sprint.ly 1111"
        );
        assert_eq!(
            item("{{ attributes.number }} {{ attributes.created_by.first_name }}"),
            "1212 Joe"
        );
        assert_eq!(item("{{ actor }} / {{ actor_name }}"), "Joe S. / Joe Stump");
        assert_eq!(
            item("{{ item_kind }} {{ item_number }} {{ item_url }}"),
            "story 1212 http://sprint.ly/i/1/116550/"
        );
        assert!(item("{{ item_title }}").starts_with("As a user, I want outbound"));
        assert!(item("{{ item_label }}").starts_with("#1212 - As a user"));
        assert!(item("{{ title }}").starts_with("Story #1212: As a user"));
        assert!(item("{{ summary }}").starts_with("Joe S. created the story \""));
        assert_eq!(item("{{ status }}|{{ assignee }}"), "Backlog|Joe S.");
        assert_eq!(
            item("[{{ excerpt }}][{{ count }}][{{ environment }}]"),
            "[][][]"
        );
        let comment = |t| text(t, "comment");
        assert_eq!(
            comment("{{ excerpt }}"),
            "Hey guys, what's the status on this?"
        );
        assert_eq!(
            comment("{{ quote }}"),
            "Hey guys, what's the status on this?"
        );
        let deploy = |t| text(t, "deploy");
        assert_eq!(
            deploy("{{ actor }} shipped {{ count }} to {{ environment }}: {{ title }}"),
            "Joe S. shipped 3 items to production: Deploy to production"
        );
        assert_eq!(deploy("[{{ item_kind }}{{ item_link }}{{ status }}]"), "[]");
        assert_eq!(item("{{ item_title | truncate(9) }}"), "As a user...");
        assert_eq!(
            item("{{ reports_link('tag', 'a&b') }}"),
            "https://sprint.ly/reports?tag=a%26b"
        );
    }

    #[test]
    fn links_stay_links() {
        let rich = render("New: {{ item_link }} in {{ product_link }}", "item");
        assert_eq!(rich.0.len(), 4, "{rich:?}");
        assert!(
            matches!(&rich.0[1], Span::Link { url, .. } if url == "http://sprint.ly/i/1/116550/")
        );
        assert_eq!(
            rich.0[3],
            Span::Link {
                text: "sprint.ly".into(),
                url: "https://sprint.ly/reports?product=1111".into()
            }
        );
        let rich = render("{{ link('Board', 'https://example.com/b') }}!", "item");
        assert_eq!(rich, Rich::link("Board", "https://example.com/b").push("!"));
        // The default headline keeps its link.
        let rich = render("{{ headline }}", "item");
        assert_eq!(
            rich,
            Message::from_event(&crate::samples::edge_case("item"))
                .unwrap()
                .headline
        );
        // A link used as text is its text.
        assert_eq!(text("{{ item_link | upper }}", "deploy"), "");
        assert!(text("{{ item_link | upper }}", "item").starts_with("#1212 - AS A USER"));
    }

    #[test]
    fn a_title_cannot_forge_a_link() {
        let event = crate::samples::edge_case("item-markup");
        let mut raw: Value = serde_json::from_str(event.raw()).unwrap();
        raw["attributes"]["title"] =
            format!("x{LINK_START}evil{LINK_URL}http://evil.example{LINK_END}").into();
        let event = Event::parse(&raw.to_string()).unwrap();
        let templates =
            templates(json!({"headline": "{{ item_title }} {{ attributes.title }}"})).unwrap();
        let rich = templates.render(Part::Headline, &event).unwrap().unwrap();
        assert_eq!(
            rich,
            Rich::text("xevilhttp://evil.example xevilhttp://evil.example")
        );
    }

    #[test]
    fn templates_replace_the_parts_of_a_message() {
        let event = crate::samples::edge_case("comment");
        let templates = templates(json!({
            "title": "{{ actor }} on #{{ item_number }}",
            "summary": "{{ summary | upper }}",
            "quote": "",
        }))
        .unwrap();
        let default = Message::from_event(&event).unwrap();
        let message = templates.apply(&event, default.clone()).unwrap();
        assert_eq!(message.title, "Joe S. on #1212");
        assert_eq!(message.summary, default.summary.to_uppercase());
        assert_eq!(message.quote, None);
        assert_eq!(message.headline, default.headline);
        assert_eq!(
            Templates::default().apply(&event, default.clone()).unwrap(),
            default
        );
    }

    #[test]
    fn debug_is_not_offered() {
        let problem = templates(json!({ "title": "{{ debug() }}" })).unwrap_err();
        assert!(problem.contains("unknown variable `debug`"), "{problem}");
    }

    #[test]
    fn problems_name_the_line_and_column() {
        let problem = |template: &str| templates(json!({ "title": template })).unwrap_err();
        assert_eq!(
            problem("{{ titel }}"),
            "[services.chat] template.title: line 1, column 4: unknown variable `titel` (did you mean `title`?)"
        );
        assert_eq!(
            problem("Hi\n  {% if model %}{{ 'x' ~ nobody }}{% endif %}"),
            "[services.chat] template.title: line 2, column 26: unknown variable `nobody`"
        );
        assert_eq!(
            problem("Café ☕ {{ titel }}"),
            "[services.chat] template.title: line 1, column 11: unknown variable `titel` (did you mean `title`?)"
        );
        assert_eq!(
            problem("{{ title }"),
            "[services.chat] template.title: line 1, column 10: syntax error: unexpected `}`, expected end of variable block"
        );
        assert_eq!(
            problem("{% for x in items %}"),
            "[services.chat] template.title: line 1, column 19: syntax error: unexpected end of input, expected end of block"
        );
        assert_eq!(
            problem("\n{{ title | uper }}"),
            "[services.chat] template.title: line 2, column 12: unknown filter: filter uper is unknown"
        );
        assert_eq!(
            templates(json!({ "titel": "x" })).unwrap_err(),
            "[services.chat] template.titel: unknown part `titel` (known: headline, title, summary, quote, digest)"
        );
        assert_eq!(
            templates(json!({ "title": 1 })).unwrap_err(),
            "[services.chat] template.title: expected a template string"
        );
        assert_eq!(
            templates(json!("x")).unwrap_err(),
            "[services.chat] template: expected a table of templates, e.g. `template.title = \"…\"`"
        );
    }

    #[test]
    fn attributes_an_event_lacks_fail_that_event_only() {
        let templates = templates(json!({ "title": "{{ attributes.environment }}" })).unwrap();
        let deploy = crate::samples::edge_case("deploy");
        assert_eq!(
            plain(&templates.render(Part::Title, &deploy).unwrap().unwrap()),
            "production"
        );
        let item = crate::samples::edge_case("item");
        let err = templates.render(Part::Title, &item).unwrap().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("template.title: line 1, column 4: undefined value"),
            "{err}"
        );
    }

    #[test]
    fn renders_are_bounded_in_work_and_size() {
        let problem = |template: &str| templates(json!({ "headline": template })).unwrap_err();
        let err = problem(
            "{% for i in range(100000) %}{% for j in range(100) %}x{% endfor %}{% endfor %}",
        );
        assert!(
            err.contains("line 1, column") && err.contains("fuel"),
            "{err}"
        );
        let err = problem("{{ 'x' * 9000 }}");
        assert_eq!(
            err,
            "[services.chat] template.headline: the text is 9000 bytes long, more than the 8192 a template may write"
        );
        let err = problem("{{ 'x' * 100000000 }}");
        assert!(err.contains("fuel"), "{err}");
    }
}
