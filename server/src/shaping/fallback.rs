//! Fallback routes (docs/SHAPING.md, "Fallback routes"): `fallback = "NAME"` in a
//! configured service's table names another service of the same product that gets the
//! event, once, when its delivery goes dead or its target is disabled.
//!
//! The worker decides here, after the attempt, which delivery the fallback would be
//! ([`fallback_delivery`]); the store keeps it in the same transaction as the outcome
//! that ended the first ([`Finish::fallback`]), only while that outcome is recorded by
//! the worker holding the lease, and only once per delivery (a unique key): nothing is
//! lost or doubled by a crash between the two or by two workers recording the same end.
//! A fallback's own end never falls back again (one hop), and it is sent whatever its
//! service's `events` filter says ([`listening_to_all`]).

use std::sync::Arc;

use lookout::config::{Instance, check_fallbacks};
use lookout::dispatch::new_delivery_id;
use lookout::options::OptionProblem;
use lookout::payload::Event;

use crate::routing::Routes;
use crate::store::fallback::falls_back;
use crate::store::{Claimed, Finish, NewDelivery, Product, StoredInstance};

/// The delivery to `claimed`'s fallback service that its `finish` calls for, if any:
/// it ended dead or disabled, is not a fallback itself, and its service names a
/// fallback that the product has, switched on.
pub fn fallback_delivery(
    claimed: &Claimed,
    routes: Option<&Routes>,
    finish: &Finish,
) -> Option<NewDelivery> {
    if !falls_back(finish.status) || claimed.fallback_for.is_some() {
        return None;
    }
    let routes = routes?;
    let covered = routes.route(&claimed.instance)?.instance.as_ref().ok()?;
    let name = covered.fallback.as_deref()?;
    let Some(route) = routes.route(name).filter(|route| route.enabled) else {
        tracing::warn!(
            product = %routes.product,
            "`{}` falls back to `{name}`, which is gone or switched off: delivery {} is not \
             sent there",
            claimed.instance,
            claimed.id
        );
        return None;
    };
    let event = Event::parse(&claimed.payload).ok()?;
    Some(route.delivery(&routes.product, &event, new_delivery_id()))
}

/// The fallback's service as it sends a fallback delivery: listening to every event,
/// since it was chosen for this one whatever its own `events` say.
pub fn listening_to_all(instance: &Instance) -> Instance {
    Instance {
        events: Some(Arc::from(["*".to_owned()])),
        ..instance.clone()
    }
}

/// What is wrong with `changed`'s fallback once it is stored in `product` (added, or
/// replacing the service of its name): a name the product does not have (or has
/// switched off), or a loop through it. The whole product's table is checked the same
/// way by `PUT` and `lookout validate`; this is for storing one service (the console,
/// `lookout products add`).
pub fn problems_in(product: Option<&Product>, changed: &StoredInstance) -> Vec<OptionProblem> {
    let others = product
        .into_iter()
        .flat_map(|p| &p.instances)
        .filter(|stored| stored.name != changed.name);
    let instances: Vec<&StoredInstance> = others.chain([changed]).collect();
    let valid: Vec<(&str, Option<String>)> = instances
        .iter()
        .filter(|stored| stored.is_enabled())
        .filter_map(|stored| Some((stored.name.as_str(), stored.instance().ok()?.fallback)))
        .collect();
    let named: Vec<(&str, Option<&str>)> = valid
        .iter()
        .map(|(name, fallback)| (*name, fallback.as_deref()))
        .collect();
    let written = |name: &str| {
        let stored = instances.iter().find(|stored| stored.name == name)?;
        Some(!stored.is_enabled())
    };
    check_fallbacks(&named, written)
        .into_iter()
        .filter(|problem| problem.instance == changed.name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lookout::config::{Config, ConfigError};

    fn problems_of(text: &str) -> Vec<String> {
        match Config::parse(text, "test.toml") {
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid(problems)) => {
                problems.iter().map(|p| p.message.clone()).collect()
            }
            Err(other) => vec![other.to_string()],
        }
    }

    const HOOKS: &str = r#"
[services.chat]
service = "echo"
urls = "http://127.0.0.1:1/chat"
fallback = "mail"

[services.mail]
service = "echo"
urls = "http://127.0.0.1:1/mail"
events = []
"#;

    #[test]
    fn a_fallback_names_another_service_and_events_may_be_empty() {
        let config = Config::parse(HOOKS, "test.toml").expect("valid");
        let chat = &config.services[0];
        assert_eq!(chat.fallback.as_deref(), Some("mail"));
        let mail = &config.services[1];
        assert_eq!(mail.fallback, None);
        let event = Event::parse(
            r#"{"model":"Item","action":"created","product":{"id":1,"name":"P"},"attributes":{}}"#,
        )
        .unwrap();
        assert!(chat.listens_to(&event));
        assert!(
            !mail.listens_to(&event),
            "events = [] gets nothing directly"
        );
    }

    #[test]
    fn unknown_names_and_loops_are_refused_naming_the_service_and_the_option() {
        let unknown = HOOKS.replace("fallback = \"mail\"", "fallback = \"pager\"");
        assert_eq!(
            problems_of(&unknown),
            ["[services.chat] fallback: no service `pager` in this product (it has: mail)"]
        );
        let itself = HOOKS.replace("fallback = \"mail\"", "fallback = \"chat\"");
        assert_eq!(
            problems_of(&itself),
            ["[services.chat] fallback: `chat` cannot be its own fallback (a loop)"]
        );
        let both = HOOKS.replace("events = []", "events = []\nfallback = \"chat\"");
        assert_eq!(
            problems_of(&both),
            [
                "[services.chat] fallback: a loop: chat → mail → chat (a fallback must not \
                 lead back to the service it covers)",
                "[services.mail] fallback: a loop: mail → chat → mail (a fallback must not \
                 lead back to the service it covers)",
            ]
        );
        let off = HOOKS.replace("events = []", "events = []\nenabled = false");
        assert_eq!(
            problems_of(&off),
            [
                "[services.chat] fallback: `mail` is switched off (enabled = false): it cannot \
              be a fallback"
            ]
        );
        let wrong = HOOKS.replace("fallback = \"mail\"", "fallback = \"no way\"");
        assert!(
            problems_of(&wrong)[0]
                .starts_with("[services.chat] fallback: `no way` is not a valid name"),
            "{:?}",
            problems_of(&wrong)
        );
    }

    #[test]
    fn a_chain_is_not_a_loop() {
        let chain = format!(
            "{HOOKS}fallback = \"pager\"\n\n[services.pager]\nservice = \"echo\"\nurls = \"http://127.0.0.1:1/p\"\n"
        );
        assert_eq!(problems_of(&chain), Vec::<String>::new());
        let three = chain.replace(
            "urls = \"http://127.0.0.1:1/p\"",
            "urls = \"http://127.0.0.1:1/p\"\nfallback = \"chat\"",
        );
        assert_eq!(problems_of(&three).len(), 3, "{:?}", problems_of(&three));
    }
}

#[cfg(test)]
mod storing_one {
    use super::*;
    use crate::echo::instance as echo;

    fn with_fallback(name: &str, fallback: &str) -> StoredInstance {
        let mut stored = echo(name, "http://127.0.0.1:9/".to_owned());
        stored.options.insert("fallback".into(), fallback.into());
        stored
    }

    fn product(instances: Vec<StoredInstance>) -> Product {
        Product {
            id: "p1".to_owned(),
            instances,
            disabled: Vec::new(),
            alerts: None,
            generation: 1,
        }
    }

    fn claimed(instance: &str, fallback_for: Option<&str>) -> Claimed {
        Claimed {
            attempts: 3,
            step: 3,
            fallback_for: fallback_for.map(str::to_owned),
            ..Claimed::for_tests("msg_1", instance)
        }
    }

    fn ended(status: crate::store::Status) -> Finish {
        Finish {
            step: 3,
            ..Finish::to(status)
        }
    }

    #[test]
    fn only_an_ended_delivery_that_is_no_fallback_itself_falls_back_to_a_service_on() {
        use crate::store::Status;
        let mut mail = echo("mail", "http://127.0.0.1:9/".to_owned());
        mail.options.insert("events".into(), serde_json::json!([]));
        let both = product(vec![with_fallback("chat", "mail"), mail.clone()]);
        let routes = Routes::of(&both, &lookout::Settings::default());
        let chat = claimed("chat", None);
        let made = fallback_delivery(&chat, Some(&routes), &ended(Status::Dead))
            .expect("dead: falls back");
        assert_eq!(
            (made.instance.as_str(), made.service.as_str()),
            ("mail", "echo")
        );
        assert_ne!(made.id, chat.id, "a delivery of its own");
        assert!(fallback_delivery(&chat, Some(&routes), &ended(Status::Disabled)).is_some());
        for status in [Status::Delivered, Status::Skipped, Status::Failed] {
            assert!(fallback_delivery(&chat, Some(&routes), &ended(status)).is_none());
        }
        let second_hop = claimed("chat", Some("msg_0"));
        assert!(fallback_delivery(&second_hop, Some(&routes), &ended(Status::Dead)).is_none());
        assert!(
            fallback_delivery(&chat, None, &ended(Status::Dead)).is_none(),
            "no product"
        );

        mail.options.insert("enabled".into(), false.into());
        let off = product(vec![with_fallback("chat", "mail"), mail]);
        let routes = Routes::of(&off, &lookout::Settings::default());
        assert!(fallback_delivery(&chat, Some(&routes), &ended(Status::Dead)).is_none());

        let instance = routes.route("mail").unwrap().instance.as_ref().unwrap();
        let event = Event::parse(crate::echo::PAYLOAD).unwrap();
        assert!(!instance.listens_to(&event), "events = []");
        assert!(listening_to_all(instance).listens_to(&event));
    }

    #[test]
    fn one_service_stored_is_checked_against_the_product() {
        let product = Product {
            id: "p1".to_owned(),
            instances: vec![with_fallback("mail", "chat")],
            disabled: Vec::new(),
            alerts: None,
            generation: 1,
        };
        let shown = |problems: Vec<OptionProblem>| -> Vec<String> {
            problems.iter().map(ToString::to_string).collect()
        };
        assert_eq!(
            shown(problems_in(Some(&product), &with_fallback("chat", "mail"))),
            [
                "[services.chat] fallback: a loop: chat → mail → chat (a fallback must not lead \
              back to the service it covers)"
            ]
        );
        assert_eq!(
            shown(problems_in(Some(&product), &with_fallback("chat", "pager"))),
            ["[services.chat] fallback: no service `pager` in this product (it has: mail)"]
        );
        assert_eq!(
            shown(problems_in(None, &with_fallback("chat", "mail"))),
            ["[services.chat] fallback: no service `mail` in this product (it has: no other)"]
        );
        let plain = echo("chat", "http://127.0.0.1:9/".to_owned());
        assert!(problems_in(Some(&product), &plain).is_empty());
    }
}
