//! The event payload: the four-key object the product hands over.
//!
//! Parsing is two-layered on purpose. The *envelope* (`model`, `action`, `product`,
//! `attributes`) must be sound or the payload is refused. The *attributes* are then read
//! into the typed model for that `model`; when that fails (a field is missing or has the
//! wrong type) the event is still dispatched: services that forward the raw JSON (webhook)
//! send it, and services that need the missing field report it by its JSON path. Nothing a
//! product sends is lost because one service cannot format it.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A parsed event, ready for dispatch.
#[derive(Debug, Clone)]
pub struct Event {
    /// `created`, `updated`, `deleted`… (`created` when the payload had none).
    pub action: String,
    /// `Item`, `Comment`, `Block`, `Favorite`, `Deploy`, or a model unknown to us.
    pub model: String,
    pub product: Product,
    /// Shared: the engine clones the event once per dispatch, and the typed attributes
    /// are most of it (dozens of allocations to copy and, on another thread, to free).
    attributes: Arc<LazyAttributes>,
    raw: Arc<str>,
    /// For a digest (`lookout serve`'s `digest = { … }`): every event it gathers, oldest
    /// first, this one (the first) included.
    digest: Option<Arc<[Event]>>,
}

/// The attributes, read into the typed model the first time a service asks. Routing an
/// event needs only its envelope, so `serve`'s intake, which stores events, never pays
/// for decoding them.
#[derive(Debug)]
struct LazyAttributes {
    /// Where the attributes object is in the raw payload.
    span: std::ops::Range<usize>,
    decoded: OnceLock<Result<Attributes, PayloadError>>,
}

/// The typed attributes of one event, by model.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per event, held once behind an Arc"
)]
pub enum Attributes {
    Item(Item),
    Comment(Comment),
    Block(Block),
    Favorite(Favorite),
    Deploy(Deploy),
    /// Lookout's own message about a product's deliveries.
    Alert(Alert),
    /// A model this version does not know: kept as JSON.
    Other(Value),
}

/// The product the event is about. Other keys are kept and passed on.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Product {
    pub id: u64,
    pub name: String,
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: Map<String, Value>,
}

/// The payload's envelope as `Event::parse` checks it, for the API contract and the
/// payload schemas: a non-empty `model`, an `action` that may be left out (or null) for
/// `created`, a `product` with an id and a name, and `attributes`, an object read by
/// model only when a service asks. Other top-level keys are passed over.
#[derive(utoipa::ToSchema)]
#[schema(as = Payload)]
#[allow(
    dead_code,
    reason = "only its schema is used: Event::parse reads payloads"
)]
pub struct PayloadSchema {
    /// `Item`, `Comment`, `Block`, `Favorite`, `Deploy`, or a model unknown to Lookout.
    #[schema(min_length = 1, pattern = r"\S")]
    model: String,
    /// `created`, `updated`, `deleted`…; `created` when left out or null.
    #[schema(min_length = 1, pattern = r"\S", nullable, required = false)]
    action: Option<String>,
    product: Product,
    /// The model's fields (`lookout schema MODEL` describes each model's).
    #[schema(value_type = Object)]
    attributes: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: u64,
    pub first_name: String,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: Map<String, Value>,
}

/// The product an item belongs to, as embedded in the item.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct ItemProduct {
    pub id: u64,
    pub name: String,
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Item {
    pub number: u64,
    pub title: String,
    /// `story`, `task`, `defect`, `test`.
    #[serde(rename = "type")]
    pub kind: String,
    pub short_url: String,
    pub created_by: User,
    #[serde(default)]
    pub assigned_to: Option<User>,
    #[serde(default)]
    pub status: Option<String>,
    /// Sprint.ly scores are sizes (`~`, `S`, `M`, `L`, `XL`); numbers are accepted too.
    #[serde(default, deserialize_with = "string_or_number")]
    #[schema(schema_with = crate::field_schemas::score)]
    pub score: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[schema(schema_with = crate::field_schemas::tags)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub product: Option<ItemProduct>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Comment {
    pub body: String,
    pub created_by: User,
    pub item: Item,
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Block {
    /// The item that is blocked…
    pub blocked: Item,
    /// …by this one.
    pub item: Item,
    pub user: User,
    #[serde(default)]
    pub unblocked: bool,
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Favorite {
    pub item: Item,
    pub user: User,
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: Map<String, Value>,
}

/// The model of [`Alert`] events.
pub const ALERT_MODEL: &str = "Alert";

/// What Lookout itself tells a product's `alerts` service (a target was disabled, a
/// delivery went dead): an event `{"model": "Alert", "action": KIND, "attributes":
/// {"title", "body", "instance", "target"}}` that message services render as a title
/// and a paragraph, and webhooks forward as it is.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Alert {
    pub title: String,
    pub body: String,
    /// The configured service it is about.
    #[serde(default)]
    pub instance: Option<String>,
    /// The target it is about, redacted.
    #[serde(default)]
    pub target: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
pub struct Deploy {
    pub environment: String,
    #[serde(default)]
    pub items: Vec<Item>,
    pub user: User,
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: Map<String, Value>,
}

/// What is wrong with a payload, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("payload is not valid JSON: {message} at line {line}, column {column}")]
    Syntax {
        message: String,
        line: usize,
        column: usize,
    },
    /// A field is missing or has the wrong shape; `path` is the JSON path, e.g.
    /// `attributes.created_by.first_name`.
    #[error("{path}: {problem}")]
    Field { path: String, problem: String },
}

impl PayloadError {
    fn field(path: impl Into<String>, problem: impl Into<String>) -> Self {
        PayloadError::Field {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

/// The payload's four keys, each as its raw JSON (a slice of the payload); any other key
/// is passed over. Read by hand rather than into a map: no allocation, no hashing, and
/// the last of duplicate keys wins, as in a JSON value.
#[derive(Default)]
struct Envelope<'a> {
    model: Option<&'a RawValue>,
    action: Option<&'a RawValue>,
    product: Option<&'a RawValue>,
    attributes: Option<&'a RawValue>,
}

impl<'a> Envelope<'a> {
    fn take(&mut self, name: &str) -> Option<&'a RawValue> {
        match name {
            "model" => self.model.take(),
            "action" => self.action.take(),
            "product" => self.product.take(),
            "attributes" => self.attributes.take(),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Envelope<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Keys<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Keys<'a> {
            type Value = Envelope<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let mut envelope = Envelope::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let slot = match key.as_ref() {
                        "model" => &mut envelope.model,
                        "action" => &mut envelope.action,
                        "product" => &mut envelope.product,
                        "attributes" => &mut envelope.attributes,
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value()?);
                }
                Ok(envelope)
            }
        }
        deserializer.deserialize_map(Keys(std::marker::PhantomData))
    }
}

impl Event {
    /// Parses a payload from its JSON text: the envelope now, the attributes when first
    /// asked for ([`Event::attributes`]).
    pub fn parse(json: &str) -> Result<Event, PayloadError> {
        let mut envelope: Envelope<'_> = serde_json::from_str(json).map_err(|e| {
            if e.is_data() {
                PayloadError::field("(root)", "expected a JSON object")
            } else {
                PayloadError::Syntax {
                    message: syntax_message(&e),
                    line: e.line(),
                    column: e.column(),
                }
            }
        })?;
        let mut field = |name: &str| envelope.take(name).map(|raw| small_value(name, raw));
        let model = match field("model").transpose()? {
            Some(Value::String(m)) if !m.trim().is_empty() => m,
            Some(Value::String(_)) => return Err(PayloadError::field("model", "empty")),
            Some(other) => return Err(PayloadError::field("model", expected("a string", &other))),
            None => return Err(PayloadError::field("model", "missing")),
        };
        let action = match field("action").transpose()? {
            None | Some(Value::Null) => "created".to_owned(),
            Some(Value::String(a)) if !a.trim().is_empty() => a,
            Some(Value::String(_)) => return Err(PayloadError::field("action", "empty")),
            Some(other) => return Err(PayloadError::field("action", expected("a string", &other))),
        };
        let product = match field("product").transpose()? {
            Some(product) => decode_at::<Product>("product", product)?,
            None => return Err(PayloadError::field("product", "missing")),
        };
        let attributes = match envelope.attributes.take() {
            Some(attributes) if attributes.get().starts_with('{') => attributes,
            Some(other) => {
                let other = small_value("attributes", other)?;
                return Err(PayloadError::field(
                    "attributes",
                    expected("an object", &other),
                ));
            }
            None => return Err(PayloadError::field("attributes", "missing")),
        };
        // A raw value is a slice of `json`: its place there is its span in the copy.
        let start = attributes.get().as_ptr() as usize - json.as_ptr() as usize;
        let span = start..start + attributes.get().len();
        Ok(Event {
            action,
            model,
            product,
            attributes: Arc::new(LazyAttributes {
                span,
                decoded: OnceLock::new(),
            }),
            raw: Arc::from(json),
            digest: None,
        })
    }

    /// Builds an event from an already decoded JSON value.
    pub fn from_value(value: Value) -> Result<Event, PayloadError> {
        Event::parse(&value.to_string())
    }

    /// This event with its attributes changed by `edit` (the fitting pass cuts long
    /// texts so); the event as it is when the edit leaves something that does not parse.
    /// A digest's events are edited each.
    pub fn edited(&self, edit: impl Fn(&mut Value)) -> Event {
        self.edited_by(&edit)
    }

    fn edited_by(&self, edit: &dyn Fn(&mut Value)) -> Event {
        let Ok(mut value) = serde_json::from_str::<Value>(&self.raw) else {
            return self.clone();
        };
        if let Some(attributes) = value.get_mut("attributes") {
            edit(attributes);
        }
        let mut edited = Event::from_value(value).unwrap_or_else(|_| self.clone());
        edited.digest = self.digest.as_ref().map(|events| {
            let each: Vec<Event> = events.iter().map(|event| event.edited_by(edit)).collect();
            each.into()
        });
        edited
    }

    /// A digest of `events`, oldest first (`None` for none): the first event, carrying
    /// them all. A service that writes messages writes one for them all
    /// ([`Message::digest`](crate::text::Message::digest)); one that forwards payloads
    /// forwards them as one JSON array ([`Event::forwarded`]).
    pub fn digest_of(events: Vec<Event>) -> Option<Event> {
        let mut first = events.first()?.clone();
        first.digest = Some(events.into());
        Some(first)
    }

    /// The events of a digest, oldest first; `None` for a single event.
    pub fn digest(&self) -> Option<&[Event]> {
        self.digest.as_deref()
    }

    /// What a service that forwards the payload sends: the payload exactly as received,
    /// or for a digest a JSON array of its events' payloads, each as received.
    pub fn forwarded(&self) -> Arc<str> {
        let Some(events) = &self.digest else {
            return self.raw.clone();
        };
        let payloads: Vec<&str> = events.iter().map(|event| &*event.raw).collect();
        Arc::from(format!("[{}]", payloads.join(",")))
    }

    /// The typed attributes, or the first problem found in them (with its JSON path).
    pub fn attributes(&self) -> Result<&Attributes, &PayloadError> {
        let lazy = &*self.attributes;
        let decoded = lazy.decoded.get_or_init(|| {
            // Checked when the envelope was parsed: a JSON object, so this cannot fail
            // but for nesting deeper than serde_json's limit, reported like a bad field.
            let value = serde_json::from_str(&self.raw[lazy.span.clone()])
                .map_err(|e| PayloadError::field("attributes", syntax_message(&e)))?;
            Attributes::decode(&self.model, value)
        });
        decoded.as_ref()
    }

    /// The payload exactly as it was received.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// [`Event::raw`], shared without copying.
    pub fn raw_shared(&self) -> Arc<str> {
        self.raw.clone()
    }

    /// `Model.action`, the key event filters match against.
    pub fn kind(&self) -> String {
        format!("{}.{}", self.model, self.action)
    }
}

impl Event {
    /// The value at `path` in the payload as text (a string as it is, any other JSON
    /// value as JSON); `None` when the path leads nowhere or to `null`.
    pub fn value_at(&self, path: &PayloadPath) -> Option<String> {
        let (first, rest) = path.segments.split_first()?;
        let found = match first.as_str() {
            "model" => return rest.is_empty().then(|| self.model.clone()),
            "action" => return rest.is_empty().then(|| self.action.clone()),
            "attributes" => {
                let raw = &self.raw[self.attributes.span.clone()];
                let attributes: Value = serde_json::from_str(raw).ok()?;
                rest.iter()
                    .try_fold(&attributes, |value, name| value.get(name))?
                    .clone()
            }
            _ => {
                // `product` is small and typed; its raw form has every field.
                let payload: Value = serde_json::from_str(&self.raw).ok()?;
                path.segments
                    .iter()
                    .try_fold(&payload, |value, name| value.get(name))?
                    .clone()
            }
        };
        match found {
            Value::Null => None,
            Value::String(text) => Some(text),
            other => Some(other.to_string()),
        }
    }
}

/// A dotted path into a payload (`attributes.number`): checked when it is configured,
/// so that a typo is refused there rather than silently matching nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadPath {
    segments: Arc<[String]>,
    text: Arc<str>,
}

impl PayloadPath {
    /// The payload's top-level keys: a path starts with one of them.
    pub const ROOTS: [&str; 4] = ["attributes", "product", "model", "action"];

    /// Parses `attributes.number`: names of letters, digits and `_`, joined by dots,
    /// starting at one of the payload's four keys.
    pub fn parse(text: &str) -> Result<PayloadPath, String> {
        let segments: Vec<String> = text.split('.').map(str::to_owned).collect();
        let plain = |s: &String| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if text.len() > 256 || !segments.iter().all(plain) {
            return Err(format!(
                "`{}` is not a dotted path of names (e.g. `attributes.number`)",
                text.chars()
                    .take(64)
                    .flat_map(char::escape_default)
                    .collect::<String>()
            ));
        }
        if !Self::ROOTS.contains(&segments[0].as_str()) {
            return Err(format!(
                "`{text}` must start with one of the payload's keys: {}",
                Self::ROOTS.join(", ")
            ));
        }
        if matches!(segments[0].as_str(), "model" | "action") && segments.len() > 1 {
            return Err(format!("`{text}`: `{}` is a plain string", segments[0]));
        }
        Ok(PayloadPath {
            segments: segments.into(),
            text: Arc::from(text),
        })
    }

    /// [`PayloadPath::parse`] as an option's value check.
    pub fn check(text: &str) -> Result<(), String> {
        PayloadPath::parse(text).map(|_| ())
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for PayloadPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{} in {}", self.model, self.action, self.product.name)
    }
}

impl Attributes {
    fn decode(model: &str, value: Value) -> Result<Attributes, PayloadError> {
        Ok(match model {
            "Item" => Attributes::Item(decode_at("attributes", value)?),
            "Comment" => Attributes::Comment(decode_at("attributes", value)?),
            "Block" => Attributes::Block(decode_at("attributes", value)?),
            "Favorite" => Attributes::Favorite(decode_at("attributes", value)?),
            "Deploy" => Attributes::Deploy(decode_at("attributes", value)?),
            ALERT_MODEL => Attributes::Alert(decode_at("attributes", value)?),
            _ => Attributes::Other(value),
        })
    }
}

/// Decodes `value` as `T`, turning serde's error into one that names the JSON path,
/// starting with `prefix`.
fn decode_at<T: serde::de::DeserializeOwned>(
    prefix: &str,
    value: Value,
) -> Result<T, PayloadError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let inner = err.path().to_string();
        let mut path = if inner == "." {
            prefix.to_owned()
        } else {
            format!("{prefix}.{inner}")
        };
        let message = err.inner().to_string();
        // serde reports a missing field at its parent; name the field itself instead.
        let problem = match message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            Some(field) => {
                path = format!("{path}.{field}");
                "missing".to_owned()
            }
            None => message
                .replace("invalid type: ", "")
                .replace("null", "null value"),
        };
        PayloadError::field(path, problem)
    })
}

/// One of the envelope's small fields as a value (it is valid JSON, but may be nested
/// deeper than serde_json reads).
fn small_value(name: &str, raw: &RawValue) -> Result<Value, PayloadError> {
    serde_json::from_str(raw.get()).map_err(|e| PayloadError::field(name, syntax_message(&e)))
}

fn expected(what: &str, got: &Value) -> String {
    let kind = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    format!("expected {what}, got {kind}")
}

/// serde_json's message without its own " at line L column C" tail (we add ours).
fn syntax_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(serde::de::Error::custom(expected(
                "a string or number",
                &other,
            )));
        }
    })
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item_payload() -> Value {
        serde_json::json!({
            "model": "Item",
            "product": {"id": 1, "name": "p"},
            "attributes": {
                "number": 7, "title": "t", "type": "story", "short_url": "http://x/7",
                "created_by": {"id": 1, "first_name": "Joe", "last_name": null},
                "assigned_to": null
            }
        })
    }

    #[test]
    fn paths_lead_to_values_as_text() {
        let event = Event::from_value(item_payload()).unwrap();
        let at = |path: &str| event.value_at(&PayloadPath::parse(path).unwrap());
        assert_eq!(at("attributes.number").as_deref(), Some("7"));
        assert_eq!(at("attributes.title").as_deref(), Some("t"));
        assert_eq!(
            at("attributes.created_by.first_name").as_deref(),
            Some("Joe")
        );
        assert_eq!(
            at("attributes.created_by.last_name"),
            None,
            "null is no value"
        );
        assert_eq!(at("attributes.nope"), None);
        assert_eq!(at("product.id").as_deref(), Some("1"));
        assert_eq!(at("model").as_deref(), Some("Item"));
        assert_eq!(at("action").as_deref(), Some("created"));
        assert_eq!(
            at("attributes.created_by").as_deref(),
            Some(r#"{"id":1,"first_name":"Joe","last_name":null}"#)
        );

        let refused = |path: &str| PayloadPath::parse(path).unwrap_err();
        assert!(refused("attribute.number").contains("must start with one of"));
        assert!(refused("attributes..number").contains("not a dotted path"));
        assert!(refused("attributes.num ber").contains("not a dotted path"));
        assert!(refused("model.name").contains("plain string"));
    }

    #[test]
    fn missing_action_means_created() {
        let event = Event::from_value(item_payload()).unwrap();
        assert_eq!(event.action, "created");
        assert_eq!(event.kind(), "Item.created");
        let Ok(Attributes::Item(item)) = event.attributes() else {
            panic!("not an item: {:?}", event.attributes());
        };
        assert!(item.assigned_to.is_none());
        assert!(item.tags.is_empty());
        assert_eq!(item.created_by.last_name, None);
    }

    #[test]
    fn missing_model_is_refused() {
        let mut payload = item_payload();
        payload.as_object_mut().unwrap().remove("model");
        let err = Event::from_value(payload).unwrap_err();
        assert_eq!(err.to_string(), "model: missing");
    }

    #[test]
    fn missing_nested_field_names_its_path() {
        let mut payload = item_payload();
        payload["attributes"]["created_by"]
            .as_object_mut()
            .unwrap()
            .remove("first_name");
        let event = Event::from_value(payload).unwrap();
        let err = event.attributes().unwrap_err();
        assert_eq!(err.to_string(), "attributes.created_by.first_name: missing");
    }

    #[test]
    fn wrong_type_names_its_path() {
        let mut payload = item_payload();
        payload["attributes"]["number"] = Value::from("seven");
        let event = Event::from_value(payload).unwrap();
        let err = event.attributes().unwrap_err().to_string();
        assert!(err.starts_with("attributes.number: "), "{err}");
    }

    #[test]
    fn syntax_errors_give_line_and_column() {
        let err = Event::parse("{\n  \"model\": \"Item\",\n  oops\n}").unwrap_err();
        let PayloadError::Syntax { line, column, .. } = err else {
            panic!("{err:?}");
        };
        assert_eq!((line, column), (3, 3));
    }

    #[test]
    fn the_last_of_duplicate_keys_wins_as_in_a_json_value() {
        let text = r#"{"model": "Widget", "model": "Item", "product": {"id": 1, "name": "p"},
            "attributes": [], "attributes": {"number": 7, "title": "t", "type": "story",
            "short_url": "http://x/7", "created_by": {"id": 1, "first_name": "Joe"}}}"#;
        let event = Event::parse(text).unwrap();
        assert_eq!(event.model, "Item");
        assert!(matches!(event.attributes(), Ok(Attributes::Item(_))));
    }

    #[test]
    fn a_root_that_is_not_an_object_is_refused_by_name() {
        for text in ["[]", "7", "\"model\"", "null"] {
            let err = Event::parse(text).unwrap_err();
            assert_eq!(err.to_string(), "(root): expected a JSON object", "{text}");
        }
        let err = Event::parse(
            r#"{"model": "Item", "product": {"id": 1, "name": "p"}, "attributes": 3}"#,
        );
        assert_eq!(
            err.unwrap_err().to_string(),
            "attributes: expected an object, got a number"
        );
    }

    /// Nesting deeper than serde_json reads (128) inside the attributes: the envelope is
    /// sound, so the event is taken (a webhook forwards it as it is) and the services that
    /// need the attributes hear why they cannot have them.
    #[test]
    fn attributes_nested_too_deep_fail_only_the_services_that_read_them() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let text = format!(
            r#"{{"model": "Item", "product": {{"id": 1, "name": "p"}}, "attributes": {{"x": {deep}}}}}"#
        );
        let event = Event::parse(&text).unwrap();
        assert_eq!(event.raw(), text);
        let err = event.attributes().unwrap_err().to_string();
        assert!(
            err.starts_with("attributes: recursion limit exceeded"),
            "{err}"
        );
        let deep_product = text.replace(r#"{"id": 1, "name": "p"}"#, &deep);
        let err = Event::parse(&deep_product).unwrap_err().to_string();
        assert!(
            err.starts_with("product: recursion limit exceeded"),
            "{err}"
        );
    }

    #[test]
    fn unknown_model_is_kept_as_json() {
        let mut payload = item_payload();
        payload["model"] = Value::from("Widget");
        let event = Event::from_value(payload).unwrap();
        assert!(matches!(event.attributes(), Ok(Attributes::Other(_))));
    }

    #[test]
    fn raw_text_is_kept_byte_for_byte() {
        let text = "{\"model\":\"Widget\",  \"product\":{\"id\":1,\"name\":\"p\"},\"attributes\":{\"z\":1,\"a\":2}}";
        assert_eq!(Event::parse(text).unwrap().raw(), text);
    }
}
