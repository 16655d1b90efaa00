//! The payloads as JSON Schema (2020-12), and what a webhook receiver gets as an
//! AsyncAPI 3 document (`lookout schema`, `GET /v1/asyncapi.json`; docs/OPERATING.md,
//! "Payload schemas").
//!
//! Both are derived (utoipa) from the types the engine reads payloads into
//! ([`payload`](crate::payload)), then made exactly as lenient as the engine: the
//! envelope is checked as [`Event::parse`](crate::Event::parse) checks it (`model`,
//! `product` with an id and a name, `attributes` an object; `action` may be left out),
//! but nothing inside `attributes` is required. The engine accepts an event whose
//! attributes are incomplete (webhooks forward it as it is; a service that needs a
//! missing field reports it by its path), so the schemas say what each field is when it
//! is there, not that it must be. Other keys are allowed everywhere and passed on.

use serde_json::{Map, Value, json};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

use crate::payload::{ALERT_MODEL, Alert, Block, Comment, Deploy, Favorite, Item, PayloadSchema};
use crate::request::signing::STANDARD_WEBHOOKS_HEADERS;

/// The models a product sends, then Lookout's own [`Alert`].
pub const MODELS: [&str; 6] = [
    "Item",
    "Comment",
    "Block",
    "Favorite",
    "Deploy",
    ALERT_MODEL,
];

const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// Where the schemas refer to each other: in a JSON Schema document, and in AsyncAPI.
const DEFS: &str = "#/$defs/";
const COMPONENTS: &str = "#/components/schemas/";

/// The only schemas whose `required` stays: what the intake refuses a payload without.
const ENVELOPE: [&str; 2] = ["Payload", "Product"];

/// `T` and every schema it refers to, by name.
fn collect<T: ToSchema>(into: &mut Vec<(String, RefOr<Schema>)>) {
    into.push((T::name().into_owned(), T::schema()));
    T::schemas(into);
}

/// Every schema the payloads use, by name, as JSON whose references start with `prefix`.
fn definitions(prefix: &str) -> Map<String, Value> {
    let mut found = Vec::new();
    collect::<PayloadSchema>(&mut found);
    collect::<Item>(&mut found);
    collect::<Comment>(&mut found);
    collect::<Block>(&mut found);
    collect::<Favorite>(&mut found);
    collect::<Deploy>(&mut found);
    collect::<Alert>(&mut found);
    found
        .into_iter()
        .map(|(name, schema)| {
            let mut value = serde_json::to_value(schema).expect("a schema serializes");
            point_refs(&mut value, prefix);
            if !ENVELOPE.contains(&name.as_str()) {
                drop_required(&mut value);
            }
            (name, value)
        })
        .collect()
}

/// Rewrites utoipa's `#/components/schemas/X` references to `prefix` + `X`.
fn point_refs(value: &mut Value, prefix: &str) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                match field {
                    Value::String(target) if key == "$ref" => {
                        *target = target.replace(COMPONENTS, prefix);
                    }
                    _ => point_refs(field, prefix),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| point_refs(item, prefix)),
        _ => {}
    }
}

/// Removes every `required` list: see the module docs for why attributes need none.
fn drop_required(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            if fields.get("required").is_some_and(Value::is_array) {
                fields.remove("required");
            }
            fields.values_mut().for_each(drop_required);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_required),
        _ => {}
    }
}

/// The model's name as the engine spells it (`item` → `Item`), if it is one.
pub fn model_named(name: &str) -> Option<&'static str> {
    MODELS
        .into_iter()
        .find(|model| model.eq_ignore_ascii_case(name))
}

/// For each model, the rule "when `model` is this, `attributes` are that model's".
fn attributes_by_model(prefix: &str) -> Vec<Value> {
    MODELS
        .iter()
        .map(|model| {
            json!({
                "if": { "properties": { "model": { "const": model } }, "required": ["model"] },
                "then": { "properties": { "attributes": { "$ref": format!("{prefix}{model}") } } },
            })
        })
        .collect()
}

/// Any payload: the envelope, and a known model's attributes when `model` names one (an
/// unknown model is still a valid payload: the engine forwards it).
fn any_payload(prefix: &str) -> Value {
    json!({
        "$ref": format!("{prefix}Payload"),
        "allOf": attributes_by_model(prefix),
    })
}

/// The JSON Schema of every payload (`lookout schema`).
pub fn payload_schema() -> Value {
    let mut schema = json!({
        "$schema": DIALECT,
        "title": "A Lookout event payload",
        "description": "The envelope and, for each known model, its attributes. Nothing in \
                        `attributes` is required: the engine takes incomplete attributes.",
    });
    merge(&mut schema, any_payload(DEFS));
    schema["$defs"] = Value::Object(definitions(DEFS));
    schema
}

/// The JSON Schema of one model's payloads (`lookout schema Item`); `None` for a model
/// Lookout does not know.
pub fn model_schema(name: &str) -> Option<Value> {
    let model = model_named(name)?;
    Some(json!({
        "$schema": DIALECT,
        "title": format!("A Lookout {model} event payload"),
        "$ref": format!("{DEFS}Payload"),
        "properties": {
            "model": { "const": model },
            "attributes": { "$ref": format!("{DEFS}{model}") },
        },
        "$defs": definitions(DEFS),
    }))
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(into), Value::Object(from)) = (into, from) {
        into.extend(from);
    }
}

/// The AsyncAPI 3 document of what a webhook receiver gets (`lookout schema
/// --asyncapi`, `GET /v1/asyncapi.json`): one JSON `POST` per event to each URL, the
/// payload as the product sent it, and the Standard Webhooks headers when signed.
pub fn asyncapi(version: &str) -> Value {
    let mut schemas = definitions(COMPONENTS);
    schemas.insert("Event".into(), any_payload(COMPONENTS));
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Lookout webhook deliveries",
            "version": version,
            "description": "What an endpoint configured in a `webhook` service receives: \
                            every event as a JSON POST, byte for byte as the product sent \
                            it. Answer 2xx to accept; 410 disables the URL; other answers \
                            are retried (`lookout docs webhook`).",
        },
        "defaultContentType": "application/json",
        "channels": {
            "webhook": {
                "description": "Each URL in the service's `urls`; each gets its own copy.",
                "messages": { "event": { "$ref": "#/components/messages/event" } },
            },
        },
        "operations": {
            "receiveEvent": {
                "action": "receive",
                "channel": { "$ref": "#/channels/webhook" },
                "summary": "Receive one event",
                "messages": [{ "$ref": "#/channels/webhook/messages/event" }],
            },
        },
        "components": {
            "messages": {
                "event": {
                    "name": "event",
                    "title": "A product event",
                    "contentType": "application/json",
                    "headers": signing_headers(),
                    "payload": { "$ref": format!("{COMPONENTS}Event") },
                },
            },
            "schemas": schemas,
        },
    })
}

/// The Standard Webhooks headers, sent when the service has a signing `secret`.
fn signing_headers() -> Value {
    let [id, timestamp, signature] = STANDARD_WEBHOOKS_HEADERS;
    json!({
        "type": "object",
        "description": "Sent when the service has a `secret` (Standard Webhooks): verify \
                        before trusting the body.",
        "properties": {
            id: {
                "type": "string",
                "description": "The delivery's id (`msg_…`): the same on every attempt, so \
                                a receiver can drop duplicates.",
            },
            timestamp: {
                "type": "string",
                "pattern": "^[0-9]+$",
                "description": "When this attempt was signed, in Unix seconds.",
            },
            signature: {
                "type": "string",
                "pattern": "^v1,[A-Za-z0-9+/=]+( v1,[A-Za-z0-9+/=]+)*$",
                "description": "`v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` \
                                per active secret, space-separated (two during a rotation).",
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves() {
        let schema = payload_schema();
        let text = schema.to_string();
        for name in schema["$defs"].as_object().expect("$defs").keys() {
            assert!(text.contains(&format!("\"{DEFS}{name}\"")) || name == "Payload");
        }
        assert!(
            !text.contains(COMPONENTS),
            "a reference was left pointing at components"
        );
    }

    #[test]
    fn models_are_found_in_any_case() {
        assert_eq!(model_named("item"), Some("Item"));
        assert_eq!(model_named("Widget"), None);
        assert!(model_schema("deploy").is_some());
    }
}
