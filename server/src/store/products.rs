//! A product and its configured services as stored: each service's options (secrets
//! included), checked like the config file's `[services]` tables, and the targets
//! disabled.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use lookout::config::{Instance, ServiceTable, parse_services};
use lookout::options::OptionProblem;

use crate::clock::Millis;

/// One configured service of a product, as stored: its options are the raw table
/// (secrets included; the database file is the secret store, like the config file).
#[derive(Clone, PartialEq)]
pub struct StoredInstance {
    pub name: String,
    pub service: String,
    pub options: Map<String, Value>,
}

impl StoredInstance {
    /// Validates the stored options for the named service (`enabled` aside).
    pub fn instance(&self) -> std::result::Result<Instance, Vec<OptionProblem>> {
        validate_stored(&self.name, &self.service, &self.options)
    }

    /// False when it was switched off (the console keeps its options meanwhile).
    pub fn is_enabled(&self) -> bool {
        is_enabled(&self.options)
    }
}

/// The option that switches a stored service off without losing its options, as
/// `enabled = false` does in the config file.
pub const ENABLED: &str = "enabled";

/// Validates stored options for the named service, `enabled` aside.
pub fn validate_stored(
    name: &str,
    service: &str,
    options: &Map<String, Value>,
) -> std::result::Result<Instance, Vec<OptionProblem>> {
    let mut options = options.clone();
    options.remove(ENABLED);
    Instance::new(name, service, &options)
}

/// Whether stored options leave their service on.
pub fn is_enabled(options: &Map<String, Value>) -> bool {
    options.get(ENABLED) != Some(&Value::Bool(false))
}

impl StoredInstance {
    /// The options as JSON with every secret replaced; `None` when they no longer
    /// validate (then nothing of them is shown).
    /// The options as shown: secret options masked, and every secret value redacted
    /// wherever else it appears (a webhook key pasted into `channel`).
    pub fn redacted_options(&self) -> Option<Value> {
        self.instance().ok().map(|instance| {
            let options = &instance.options;
            options.redactor().redact_json(&options.to_redacted_json())
        })
    }
}

// Never print the raw options: they hold the secrets.
impl fmt::Debug for StoredInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoredInstance({} = {})", self.name, self.service)
    }
}

/// Turns a `services` table (the same shape as the config file's, parsed by the same
/// [`parse_services`]) into the instances a store keeps: the options as written.
pub fn instances_from_table(
    table: &Map<String, Value>,
) -> std::result::Result<Vec<StoredInstance>, Vec<OptionProblem>> {
    Ok(parse_services(table)?
        .into_iter()
        .map(StoredInstance::from)
        .collect())
}

impl From<ServiceTable> for StoredInstance {
    fn from(table: ServiceTable) -> StoredInstance {
        StoredInstance {
            name: table.instance.name.clone(),
            service: table.instance.service_name().to_owned(),
            options: table.options,
        }
    }
}

/// A target that answered 410 Gone: it is not sent to again for this product.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DisabledTarget {
    pub instance: String,
    /// [`target_key`](lookout::Outgoing::target_key) of the request.
    pub key: String,
    /// Where it went, redacted.
    pub target: String,
    pub reason: String,
    pub at: Millis,
}

/// A target [`Store::finish_batch`] disabled because it kept failing.
#[derive(Debug, Clone, PartialEq)]
pub struct Disabled {
    pub product: String,
    /// The delivery whose attempt was the last failure.
    pub delivery: String,
    pub target: DisabledTarget,
}

/// Counts the changes to every product's services (a trigger on `products` and
/// `instances` in both stores), so that the intake can route events with a copy of
/// them and still never store an event routed with services that changed.
pub type Generation = i64;

/// A product: its configured services and the targets that asked to be left alone.
#[derive(Debug, Clone)]
pub struct Product {
    pub id: String,
    pub instances: Vec<StoredInstance>,
    pub disabled: Vec<DisabledTarget>,
    /// The instance told when a target is disabled or a delivery dies.
    pub alerts: Option<String>,
    /// The services' [`Generation`] when they were read (read first: the services may
    /// be newer than it, never older).
    pub generation: Generation,
}

impl Product {
    /// A product from what a store read of it: its alerts and generation
    /// ([`PRODUCT_SETTINGS`](super::sql::PRODUCT_SETTINGS)), its services as name,
    /// service and options as JSON ([`PRODUCT_INSTANCES`](super::sql::PRODUCT_INSTANCES)),
    /// and its disabled targets.
    pub(super) fn from_stored(
        id: &str,
        (alerts, generation): (Option<String>, Generation),
        services: Vec<(String, String, String)>,
        disabled: Vec<DisabledTarget>,
    ) -> super::Result<Product> {
        let instances = services
            .into_iter()
            .map(|(name, service, options)| {
                let options = super::from_json(&options)?;
                Ok(StoredInstance {
                    name,
                    service,
                    options,
                })
            })
            .collect::<super::Result<_>>()?;
        Ok(Product {
            id: id.to_owned(),
            instances,
            disabled,
            alerts,
            generation,
        })
    }

    /// The product as JSON for people: options with every secret replaced (options that
    /// no longer validate are not shown at all), and the disabled targets.
    pub fn to_redacted_json(&self) -> Value {
        serde_json::to_value(self.redacted()).unwrap_or_default()
    }

    /// [`Product::to_redacted_json`], typed: what `GET /v1/products/{id}` answers.
    pub fn redacted(&self) -> ProductView {
        let services: Map<String, Value> = self
            .instances
            .iter()
            .map(|instance| {
                let mut shown = Map::new();
                shown.insert("service".into(), Value::from(instance.service.clone()));
                match instance.redacted_options() {
                    Some(Value::Object(options)) => shown.extend(options),
                    _ => {
                        shown.insert("invalid".into(), Value::Bool(true));
                    }
                }
                (instance.name.clone(), Value::Object(shown))
            })
            .collect();
        ProductView {
            id: self.id.clone(),
            services,
            disabled_targets: self.disabled.clone(),
            alerts: self.alerts.clone(),
        }
    }
}

/// A product as shown: its configured services by name, each with its `service` and
/// its options, secrets redacted (`"invalid": true` instead of options that no longer
/// validate).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProductView {
    pub id: String,
    #[schema(value_type = Object)]
    pub services: Map<String, Value>,
    pub disabled_targets: Vec<DisabledTarget>,
    /// The configured service told about disabled targets and dead deliveries.
    pub alerts: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_events_filter_replaces_the_services_default_and_is_kept_in_store() {
        let table = json!({
            "hook": {"service": "echo", "urls": "http://127.0.0.1:1/x",
                     "events": ["Item.*", "comment.created"]},
        });
        let stored = instances_from_table(table.as_object().unwrap()).unwrap();
        let instance = stored[0].instance().unwrap();
        let event = |model: &str, action: &str| {
            let json = format!(
                r#"{{"model":"{model}","action":"{action}","product":{{"id":1,"name":"P"}},"attributes":{{}}}}"#
            );
            lookout::Event::parse(&json).unwrap()
        };
        assert!(instance.listens_to(&event("Item", "updated")));
        assert!(instance.listens_to(&event("Comment", "created")));
        assert!(!instance.listens_to(&event("Comment", "deleted")));
        assert!(
            !instance.listens_to(&event("Block", "created")),
            "echo's own default is *"
        );

        let bad = json!({
            "a": {"service": "echo", "urls": "http://127.0.0.1:1/x", "events": ["Widget.*"]},
            "b": {"service": "echo", "urls": "http://127.0.0.1:1/x", "events": ["Item.archived", "Item"]},
            "c": {"service": "echo", "urls": "http://127.0.0.1:1/x", "events": "Item.*"},
        });
        let problems = instances_from_table(bad.as_object().unwrap()).unwrap_err();
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 4, "{shown:#?}");
        assert!(
            shown[0].starts_with("[services.a] events: `Widget.*`: unknown model `Widget`"),
            "{shown:#?}"
        );
        assert!(shown[1].contains("unknown action `archived`"), "{shown:#?}");
        assert!(
            shown[2].contains("`Item` is not `Model.action`"),
            "{shown:#?}"
        );
        assert!(
            shown[3].starts_with("[services.c] events: expected a list"),
            "{shown:#?}"
        );
    }

    #[test]
    fn tables_validate_like_the_config_file() {
        let table = json!({
            "hook": {"service": "echo", "urls": "http://127.0.0.1:1/x"},
            "off": {"service": "echo", "enabled": false},
            "bad": {"service": "echo", "ur": "x"},
            "what": {"service": "nope"},
            "sp ace": {}
        });
        let problems = instances_from_table(table.as_object().unwrap()).unwrap_err();
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 4, "{shown:?}");
        assert!(shown.iter().any(|p| p.contains("unknown service `nope`")));
        assert!(shown.iter().any(|p| p.contains("not a valid name")));
        let ok = json!({
            "hook": {"service": "echo", "urls": "http://127.0.0.1:1/x"},
            "off": {"enabled": false}
        });
        let found = instances_from_table(ok.as_object().unwrap()).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].service, "echo");
        assert!(!format!("{:?}", found[0]).contains("127.0.0.1"));
    }
}
