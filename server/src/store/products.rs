//! A product and its configured services as stored: each service's options (secrets
//! included), checked like the config file's `[services]` tables, and the targets
//! disabled.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use lookout::config::{Instance, ServiceTable, parse_services, settings_beside_options};
use lookout::options::OptionProblem;
use lookout::service;

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
    /// The service's own options as shown: secret options masked, and every secret
    /// value redacted wherever else it appears (a webhook key pasted into `channel`);
    /// `None` when they no longer validate (then nothing of them is shown).
    pub fn redacted_options(&self) -> Option<Value> {
        self.instance().ok().map(|instance| {
            let options = &instance.options;
            options.redactor().redact_json(&options.to_redacted_json())
        })
    }

    /// What every service takes beside its own options (`events`, `template`,
    /// `order_by`, `concurrency`, `fallback`, `coalesce`, `digest`), as written: public
    /// by declaration ([`settings_beside_options`]). Not redacted: show it only through
    /// [`StoredInstance::shown`]; the console's form reads its fields from it.
    pub fn settings(&self) -> Map<String, Value> {
        settings_beside_options()
            .filter_map(|key| Some((key.to_owned(), self.options.get(key)?.clone())))
            .collect()
    }

    /// The whole table as shown, in the shape it is written (`PUT /v1/products/{id}`
    /// takes it back): the service's own options as [`StoredInstance::redacted_options`]
    /// shows them, then its [`settings`](StoredInstance::settings), every secret value
    /// redacted wherever it appears. `None` when the options no longer validate.
    pub fn shown(&self) -> Option<Map<String, Value>> {
        let instance = self.instance().ok()?;
        let options = &instance.options;
        let Value::Object(mut shown) = options.to_redacted_json() else {
            return None;
        };
        shown.extend(self.settings());
        if !self.is_enabled() {
            shown.insert(ENABLED.to_owned(), Value::Bool(false));
        }
        match options.redactor().redact_json(&Value::Object(shown)) {
            Value::Object(shown) => Some(shown),
            _ => None,
        }
    }

    /// Puts back into `table` (a `[services.NAME]` table written for this service's
    /// name) each stored value it repeats as [`StoredInstance::shown`] shows it redacted,
    /// so that a product read, edited and written back keeps its secrets: only for the
    /// same service, and not when the table moves the destination (a secret goes only
    /// where it was entered): then each such secret is a problem asking for it again.
    pub fn keep_redacted(&self, table: &mut Map<String, Value>) -> Vec<OptionProblem> {
        let service = table.get("service").and_then(Value::as_str);
        let (Some(registration), Some(shown)) = (service::find(&self.service), self.shown()) else {
            return Vec::new();
        };
        if service.unwrap_or(&self.name) != self.service {
            return Vec::new(); // Another service: a secret never follows it there.
        }
        let as_shown: Vec<&String> = self
            .options
            .iter()
            .filter(|(key, value)| {
                let shown = shown.get(key.as_str());
                shown.is_some_and(|shown| shown != *value) && table.get(key.as_str()) == shown
            })
            .map(|(key, _)| key)
            .collect();
        for key in &as_shown {
            table.insert((*key).clone(), self.options[key.as_str()].clone());
        }
        let Some(moved) = registration.schema.moved_destination(&self.options, table) else {
            return Vec::new();
        };
        as_shown
            .into_iter()
            .map(|key| OptionProblem {
                instance: self.name.clone(),
                option: key.clone(),
                problem: format!(
                    "`{moved}` changed: write this value out again (a stored secret is \
                     only sent where it was entered)"
                ),
            })
            .collect()
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

/// A product's services as `PUT /v1/products/{id}` stores them: as
/// [`instances_from_table`], and besides, each table written `enabled = false` stored
/// switched off with its options (checked all the same), as the console switches one off
/// and as `GET` shows it, so that a product read and written back keeps them.
pub fn product_from_table(
    table: &Map<String, Value>,
) -> std::result::Result<Vec<StoredInstance>, Vec<OptionProblem>> {
    let mut problems = Vec::new();
    let mut stored = instances_from_table(table).unwrap_or_else(|mut more| {
        problems.append(&mut more);
        Vec::new()
    });
    for (name, options) in table {
        let Value::Object(options) = options else {
            continue; // A problem of instances_from_table's.
        };
        if is_enabled(options) {
            continue;
        }
        let mut options = options.clone();
        let service = match options.remove("service") {
            Some(Value::String(service)) => service,
            _ => name.clone(),
        };
        match validate_stored(name, &service, &options) {
            Ok(_) => stored.push(StoredInstance {
                name: name.clone(),
                service,
                options,
            }),
            Err(mut more) => problems.append(&mut more),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // In the order written, switched off or not.
    stored.sort_by_key(|instance| table.keys().position(|name| *name == instance.name));
    Ok(stored)
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

    /// The product as JSON for people: each service's table as written with every
    /// secret replaced (options that no longer validate are not shown at all), and the
    /// disabled targets.
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
                match instance.shown() {
                    Some(options) => shown.extend(options),
                    None => {
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
/// its table as written (its own options, `events`, `template`, `order_by`,
/// `concurrency`, `fallback`, `coalesce`, `digest`), secrets redacted (`"invalid": true`
/// instead of options that no longer validate). `PUT /v1/products/{id}` takes it back.
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

    const URL_KEY: &str = "Sh0wnxKEYx41";
    const SIGNING: &str = "whsec_echoSECRETx2f9d7c1b";

    /// A product's services as written to `PUT /v1/products/{id}`: every setting beside
    /// the options, and secrets in the same services.
    fn written() -> Value {
        json!({
            "chat": {"service": "echo", "urls": [format!("http://127.0.0.1:1/{URL_KEY}")],
                     "secret": SIGNING, "events": ["Item.*"], "fallback": "mail",
                     "coalesce": {"by": "attributes.number", "window": "5s", "max_wait": "30s"},
                     "order_by": "attributes.number", "concurrency": 2,
                     "template": {"title": "{{ actor }} on #{{ item_number }}"}},
            "mail": {"service": "echo", "urls": [format!("http://127.0.0.1:2/{URL_KEY}")],
                     "secret": SIGNING, "digest": {"window": "5m", "max_events": 20}},
        })
    }

    fn product_of(table: &Value) -> Product {
        Product {
            id: "p1".into(),
            instances: product_from_table(table.as_object().unwrap()).unwrap(),
            disabled: Vec::new(),
            alerts: None,
            generation: 0,
        }
    }

    /// `table` with the stored values it repeats redacted put back, as `PUT` reads it.
    fn read_back(stored: &Product, mut table: Value) -> Result<Product, Vec<OptionProblem>> {
        let services = table.as_object_mut().unwrap();
        for (name, options) in services.iter_mut() {
            let previous = stored.instances.iter().find(|i| &i.name == name).unwrap();
            let problems = previous.keep_redacted(options.as_object_mut().unwrap());
            if !problems.is_empty() {
                return Err(problems);
            }
        }
        Ok(product_of(&table))
    }

    fn assert_no_secret_even_in_part(shown: &str) {
        for secret in [URL_KEY, SIGNING] {
            let (head, tail) = secret.split_at(secret.len() / 2);
            for part in [secret, head, tail] {
                assert!(!shown.contains(part), "`{part}` of a secret in {shown}");
            }
        }
    }

    #[test]
    fn every_setting_is_shown_as_written_and_reads_back_unchanged() {
        let written = written();
        let stored = product_of(&written);
        let shown = stored.to_redacted_json();
        let chat = &shown["services"]["chat"];
        for key in [
            "events",
            "fallback",
            "coalesce",
            "order_by",
            "concurrency",
            "template",
        ] {
            assert_eq!(chat[key], written["chat"][key], "{key} in {chat}");
        }
        assert_eq!(
            chat["coalesce"],
            json!({"by": "attributes.number", "window": "5s", "max_wait": "30s"})
        );
        let mail = &shown["services"]["mail"];
        assert_eq!(mail["digest"], json!({"window": "5m", "max_events": 20}));
        assert_eq!(chat["secret"], "[redacted]");
        assert_eq!(mail["urls"], "[redacted]");
        assert_no_secret_even_in_part(&shown.to_string());

        // What GET answers, written back, stores exactly what was stored.
        let again = read_back(&stored, shown["services"].clone()).unwrap();
        assert_eq!(again.instances, stored.instances);
        assert_eq!(again.to_redacted_json(), shown);
    }

    /// A service switched off (as the console does) is shown `"enabled": false` and
    /// stays stored switched off, its options and secrets kept, when written back; a
    /// switched-off table is checked like any other.
    #[test]
    fn a_switched_off_service_is_shown_so_and_reads_back_switched_off() {
        let mut stored = product_of(&written());
        let chat = stored
            .instances
            .iter_mut()
            .find(|i| i.name == "chat")
            .unwrap();
        chat.options.insert(ENABLED.into(), Value::Bool(false));
        let shown = stored.to_redacted_json();
        assert_eq!(shown["services"]["chat"]["enabled"], false, "{shown}");
        assert_eq!(shown["services"]["chat"]["secret"], "[redacted]");
        assert_eq!(shown["services"]["mail"].get("enabled"), None);
        assert_no_secret_even_in_part(&shown.to_string());

        let again = read_back(&stored, shown["services"].clone()).unwrap();
        assert_eq!(again.instances, stored.instances);
        let chat = again.instances.iter().find(|i| i.name == "chat").unwrap();
        assert!(!chat.is_enabled());
        assert_eq!(chat.options["secret"], SIGNING);

        let bad = json!({"off": {"enabled": false}, "half": {"service": "echo", "enabled": false}});
        let problems = product_from_table(bad.as_object().unwrap()).unwrap_err();
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert!(
            shown
                .iter()
                .any(|p| p == "[services.half] urls: required option is missing"),
            "{shown:?}"
        );
        assert!(
            shown.iter().any(|p| p.contains("unknown service `off`")),
            "{shown:?}"
        );
    }

    #[test]
    fn a_secret_shown_redacted_is_not_kept_for_a_moved_destination_or_another_service() {
        let stored = product_of(&written());
        let mut edited = stored.to_redacted_json()["services"].clone();
        edited["chat"]["urls"] = json!(["http://127.0.0.1:3/elsewhere"]);
        let problems = read_back(&stored, edited).unwrap_err();
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 1, "{shown:?}");
        assert!(
            shown[0].starts_with("[services.chat] secret: `urls` changed"),
            "{shown:?}"
        );

        // Renamed to another service, `[redacted]` is what it says: no secret follows.
        let mut other = stored.instances[0].to_owned();
        other.service = "other".into();
        let mut table = stored.to_redacted_json()["services"]["chat"].clone();
        let table = table.as_object_mut().unwrap();
        assert!(other.keep_redacted(table).is_empty());
        assert_eq!(table["secret"], "[redacted]");

        // A setting changed in the answer is changed; the secrets stay.
        let mut edited = stored.to_redacted_json()["services"].clone();
        edited["chat"]["concurrency"] = json!(4);
        edited["chat"]["coalesce"]["window"] = json!("10s");
        let again = read_back(&stored, edited).unwrap();
        let chat = &again.instances[0];
        assert_eq!(chat.settings()["concurrency"], 4);
        assert_eq!(chat.settings()["coalesce"]["window"], "10s");
        assert_eq!(chat.options["secret"], SIGNING);
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
