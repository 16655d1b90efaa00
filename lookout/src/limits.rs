//! What a platform accepts: the size limits a service declares in
//! [`service!`](crate::service!) (per field and for the whole message, each in the unit
//! the platform counts), how a request is measured against them, and the one fitting
//! pass every delivery and preview goes through after `build`.
//!
//! A message over its platform's limits is cut, not lost: the parts that may shrink
//! (the description or comment, the quote, lists and field values such as the tags) are
//! cut first, then the title; links, tags and entities are never cut in two, because the
//! cut happens on the event and the neutral [`Message`](crate::Message) before any markup
//! is written, and the message keeps its link to the item. A service that forwards the
//! payload as it is (webhooks, brokers) declares its limits as a refusal instead: a
//! payload over them is not cut but fails for good, naming the limit.

use std::fmt;

use serde_json::Value;

use crate::error::BuildError;
use crate::job::Job;
use crate::payload::Event;
use crate::request::{Body, Outgoing};
use crate::text::budget::{Cut, fit};

/// What a platform counts a length in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Unicode characters (code points).
    Chars,
    /// UTF-16 code units (an emoji outside the BMP is two).
    Utf16,
    /// UTF-8 bytes.
    Bytes,
    /// Entries of a list (embed fields, tags).
    Entries,
}

impl Unit {
    /// How long `text` is in this unit (entries: one).
    pub fn count(self, text: &str) -> usize {
        match self {
            Unit::Chars => text.chars().count(),
            Unit::Utf16 => text.encode_utf16().count(),
            Unit::Bytes => text.len(),
            Unit::Entries => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Unit::Chars => "characters",
            Unit::Utf16 => "UTF-16 code units",
            Unit::Bytes => "bytes",
            Unit::Entries => "entries",
        }
    }
}

/// What one limit measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measured {
    /// The whole message as sent: an HTTP body, a broker message's body, an email's
    /// text and HTML.
    Body,
    /// Every value at a JSON pointer into the body (a form field by `/name`); `*` is
    /// every element of a list or object: each must be within the limit.
    Field(&'static str),
    /// The values at several such pointers, counted together.
    Total(&'static [&'static str]),
}

/// One limit of a platform: what it measures, at most how much, in what unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub measured: Measured,
    pub max: usize,
    pub unit: Unit,
}

impl Limit {
    /// The whole body, at most `max` in `unit` (UTF-8 bytes for most platforms).
    pub const fn body(max: usize, unit: Unit) -> Limit {
        Limit {
            measured: Measured::Body,
            max,
            unit,
        }
    }

    /// Each value at the JSON pointer `pointer`, at most `max` in `unit`; with
    /// [`Unit::Entries`], the length of the list there.
    pub const fn field(pointer: &'static str, max: usize, unit: Unit) -> Limit {
        Limit {
            measured: Measured::Field(pointer),
            max,
            unit,
        }
    }

    /// The values at all of `pointers` together, at most `max` in `unit`.
    pub const fn total(pointers: &'static [&'static str], max: usize, unit: Unit) -> Limit {
        Limit {
            measured: Measured::Total(pointers),
            max,
            unit,
        }
    }

    /// What it measures, as the docs and errors say it.
    pub fn what(&self) -> String {
        match self.measured {
            Measured::Body => "the whole message".to_owned(),
            Measured::Field(pointer) => format!("`{pointer}`"),
            Measured::Total(pointers) => {
                let each: Vec<String> = pointers.iter().map(|p| format!("`{p}`")).collect();
                format!("{} together", each.join(", "))
            }
        }
    }

    /// How big the largest thing it measures in `outgoing` is, in its unit.
    pub fn size_of(&self, outgoing: &Outgoing) -> usize {
        match self.measured {
            Measured::Body => body_text(outgoing).map_or(0, |t| self.unit.count(&t)),
            Measured::Field(pointer) => document(outgoing).map_or(0, |doc| {
                values_at(&doc, pointer)
                    .into_iter()
                    .map(|v| self.size_of_value(v))
                    .max()
                    .unwrap_or(0)
            }),
            Measured::Total(pointers) => document(outgoing).map_or(0, |doc| {
                pointers
                    .iter()
                    .flat_map(|p| values_at(&doc, p))
                    .map(|v| self.size_of_value(v))
                    .sum()
            }),
        }
    }

    fn size_of_value(&self, value: &Value) -> usize {
        match (self.unit, value) {
            (Unit::Entries, Value::Array(list)) => list.len(),
            (Unit::Entries, Value::Object(map)) => map.len(),
            (unit, Value::String(text)) => unit.count(text),
            (unit, Value::Null) => unit.count(""),
            (unit, other) => unit.count(&other.to_string()),
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: at most {} {}",
            self.what(),
            thousands(self.max),
            self.unit.name()
        )
    }
}

/// What a service declares of its platform's size limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub limits: &'static [Limit],
    /// What happens to a message over them: cut to fit, or refused (a forwarded payload
    /// is never changed).
    pub when_over: WhenOver,
    /// Why a service declares no limit at all: a deliberate choice, said in its docs.
    pub none_because: Option<&'static str>,
}

/// What the engine does with a message over its platform's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenOver {
    /// Cuts the message until it fits (see the module docs).
    Cut,
    /// Sends nothing: a final failure naming the limit.
    Refuse,
}

impl Limits {
    /// A message the engine cuts to fit `limits`.
    pub const fn cut(limits: &'static [Limit]) -> Limits {
        Limits {
            limits,
            when_over: WhenOver::Cut,
            none_because: None,
        }
    }

    /// A payload forwarded as it is: over `limits`, it is not sent and fails for good.
    pub const fn refuse(limits: &'static [Limit]) -> Limits {
        Limits {
            limits,
            when_over: WhenOver::Refuse,
            none_because: None,
        }
    }

    /// No limit, on purpose, for the reason `why` (shown in the docs).
    pub const fn none(why: &'static str) -> Limits {
        Limits {
            limits: &[],
            when_over: WhenOver::Cut,
            none_because: Some(why),
        }
    }

    /// What the transport uses for a platform it knows nothing of.
    pub const UNDECLARED: Limits = Limits::none("no platform");

    /// The first limit `outgoing` is over, with its size.
    pub fn overrun(&self, outgoing: &[Outgoing]) -> Option<Overrun> {
        outgoing.iter().find_map(|one| {
            self.limits.iter().find_map(|limit| {
                let size = limit.size_of(one);
                (size > limit.max).then_some(Overrun {
                    limit: *limit,
                    size,
                })
            })
        })
    }

    /// The Markdown the docs show: one line per limit, and what happens over them.
    pub fn docs(&self) -> String {
        if let Some(why) = self.none_because {
            return format!("No size limit: {why}\n");
        }
        let mut md: String = self.limits.iter().map(|l| format!("- {l}\n")).collect();
        md.push('\n');
        md.push_str(match self.when_over {
            WhenOver::Cut => {
                "A message over them is cut to fit: first the description or comment, the \
                 lists and the field values (\"… and 12 more\"), then the title; links and \
                 markup are never cut in two, and the link to the item stays.\n"
            }
            WhenOver::Refuse => {
                "The payload is sent as it is, never cut: one over them is not sent, and \
                 the delivery fails for good, naming the limit.\n"
            }
        });
        md
    }
}

/// A request over one of its platform's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overrun {
    pub limit: Limit,
    pub size: usize,
}

impl fmt::Display for Overrun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Limit { max, unit, .. } = self.limit;
        write!(
            f,
            "too large: {} is {} {unit}, over the platform's limit of {} {unit}",
            self.limit.what(),
            thousands(self.size),
            thousands(max),
            unit = unit.name(),
        )
    }
}

/// The one fitting pass: what `build` makes of `job`, within `limits`. What fits is
/// returned as it is; a refused payload over them fails for good; a message over them
/// is built again from a cut event and message (see [`Cut`]), cutting as little as
/// fits: the parts that may shrink first, and the title only when they are not enough.
pub fn build_within<F>(
    limits: &Limits,
    job: &Job<'_>,
    build: F,
) -> Result<Vec<Outgoing>, BuildError>
where
    F: Fn(&Job<'_>) -> Result<Vec<Outgoing>, BuildError>,
{
    let first = build(job);
    let overrun = match &first {
        Ok(whole) => match limits.overrun(whole) {
            None => return first,
            Some(overrun) => Some(overrun),
        },
        // A template's text has a size cap of its own: cut, it may fit.
        Err(BuildError::Invalid(_)) if limits.when_over == WhenOver::Cut => None,
        Err(_) => return first,
    };
    if limits.when_over == WhenOver::Refuse {
        let overrun = overrun.map(|o| o.to_string()).unwrap_or_default();
        return Err(BuildError::TooLarge(overrun));
    }
    let failed = |even_cut: bool| match (&overrun, &first) {
        (Some(overrun), _) if even_cut => BuildError::TooLarge(format!("{overrun}, even cut")),
        (Some(overrun), _) => BuildError::TooLarge(overrun.to_string()),
        (None, Err(err)) => err.clone(),
        (None, Ok(_)) => unreachable!("a build that fits is returned"),
    };
    let attempt = |cut: Cut| -> Option<Vec<Outgoing>> {
        let event = cut_event(job.event, cut);
        let cut_job = Job {
            event: &event,
            cut,
            ..*job
        };
        let built = build(&cut_job).ok()?;
        limits.overrun(&built).is_none().then_some(built)
    };
    let title = match attempt(Cut::parts(0)) {
        Some(_) => None,
        None => {
            let (room, _) = most_that_fits(MAX_ROOM, |t| attempt(Cut::title(0, t)))
                .ok_or_else(|| failed(true))?;
            Some(room)
        }
    };
    let with_title = |parts| Cut {
        parts: Some(parts),
        title,
    };
    let (_, built) =
        most_that_fits(MAX_ROOM, |r| attempt(with_title(r))).ok_or_else(|| failed(false))?;
    Ok(built)
}

/// Room enough for any text a platform takes: what a cut never needs to exceed.
const MAX_ROOM: usize = 1 << 20;

/// The largest room in `0..=max` for which `attempt` gives something, and that; found
/// by halving (a smaller room never makes a bigger message).
fn most_that_fits<T>(max: usize, attempt: impl Fn(usize) -> Option<T>) -> Option<(usize, T)> {
    let mut best = (0, attempt(0)?);
    let (mut low, mut high) = (1, max);
    while low <= high {
        let middle = low + (high - low) / 2;
        match attempt(middle) {
            Some(built) => {
                best = (middle, built);
                low = middle + 1;
            }
            None => high = middle - 1,
        }
    }
    Some(best)
}

/// The event with its long texts cut: every `title` to the cut's title room, every
/// `description` and comment `body` to its parts room, in the attributes.
fn cut_event(event: &Event, cut: Cut) -> Event {
    event.edited(|attributes| cut_texts(attributes, cut))
}

fn cut_texts(value: &mut Value, cut: Cut) {
    match value {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                let room = match key.as_str() {
                    "title" => cut.title,
                    "description" | "body" => cut.parts,
                    _ => None,
                };
                match (room, value) {
                    (Some(room), Value::String(text)) => *text = fit(text, room),
                    (_, other) => cut_texts(other, cut),
                }
            }
        }
        Value::Array(list) => list.iter_mut().for_each(|v| cut_texts(v, cut)),
        _ => {}
    }
}

/// The body as text, as a platform counts it.
fn body_text(outgoing: &Outgoing) -> Option<String> {
    match outgoing {
        Outgoing::Http(request) => Some(wire_text(&request.body)),
        Outgoing::Publish(publish) => Some(wire_text(&publish.message.body)),
        Outgoing::Email(email) => Some(format!("{}{}{}", email.subject, email.text, email.html)),
    }
}

fn wire_text(body: &Body) -> String {
    String::from_utf8_lossy(&body.to_bytes()).into_owned()
}

/// The body as a JSON document, for pointers: JSON as it is, form fields as an object,
/// an email's parts by name.
fn document(outgoing: &Outgoing) -> Option<Value> {
    let body = match outgoing {
        Outgoing::Http(request) => &request.body,
        Outgoing::Publish(publish) => &publish.message.body,
        Outgoing::Email(email) => {
            return Some(serde_json::json!({
                "subject": email.subject, "text": email.text, "html": email.html,
            }));
        }
    };
    match body {
        Body::Json(value) => Some(value.clone()),
        Body::RawJson(text) => serde_json::from_str(text).ok(),
        Body::Text { text, .. } => serde_json::from_str(text).ok(),
        Body::Form(fields) => Some(Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect(),
        )),
        Body::Empty => None,
    }
}

/// The values at a JSON pointer where `*` is every element.
fn values_at<'a>(doc: &'a Value, pointer: &str) -> Vec<&'a Value> {
    let mut found = vec![doc];
    for segment in pointer.split('/').skip(1) {
        found = found
            .into_iter()
            .flat_map(|value| -> Vec<&Value> {
                match (segment, value) {
                    ("*", Value::Array(list)) => list.iter().collect(),
                    ("*", Value::Object(map)) => map.values().collect(),
                    (key, Value::Object(map)) => map.get(key).into_iter().collect(),
                    (index, Value::Array(list)) => index
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| list.get(i))
                        .into_iter()
                        .collect(),
                    _ => Vec::new(),
                }
            })
            .collect();
    }
    found
}

/// `65536` as `65,536`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::HttpRequest;

    fn request(body: Value) -> Outgoing {
        HttpRequest::post("https://example.com/".parse().unwrap())
            .json(body)
            .into()
    }

    #[test]
    fn limits_measure_in_their_unit() {
        let sent = request(serde_json::json!({"a": [{"t": "é😀"}, {"t": "abcd"}]}));
        let each = |unit| Limit::field("/a/*/t", 0, unit).size_of(&sent);
        assert_eq!(each(Unit::Chars), 4);
        assert_eq!((each(Unit::Utf16), each(Unit::Bytes)), (4, 6));
        let both = Limit::total(&["/a/0/t", "/a/1/t"], 0, Unit::Chars);
        assert_eq!(both.size_of(&sent), 6);
        assert_eq!(Limit::field("/a", 0, Unit::Entries).size_of(&sent), 2);
        let body = r#"{"a":[{"t":"é😀"},{"t":"abcd"}]}"#;
        assert_eq!(Limit::body(0, Unit::Bytes).size_of(&sent), body.len());
    }

    #[test]
    fn an_overrun_names_the_limit_and_the_size() {
        const LIMITS: Limits = Limits::refuse(&[Limit::body(10, Unit::Bytes)]);
        let sent = [request(serde_json::json!({"text": "far too long"}))];
        let overrun = LIMITS.overrun(&sent).unwrap().to_string();
        assert_eq!(
            overrun,
            "too large: the whole message is 23 bytes, over the platform's limit of 10 bytes"
        );
        assert_eq!(thousands(65_536), "65,536");
    }

    #[test]
    fn halving_finds_the_most_that_fits() {
        let fits = |room: usize| (room <= 1234).then_some(room * 2);
        assert_eq!(most_that_fits(MAX_ROOM, fits), Some((1234, 2468)));
        assert_eq!(most_that_fits(10, |_| None::<()>), None);
    }
}
