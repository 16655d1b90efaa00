//! Every service keeps within its platform's declared size limits, for every fixture,
//! the oversized ones included: what it would send is measured against each limit, in
//! the limit's own unit. A service with no limit is one of a deliberate list.

mod common;

use lookout::limits::{Limits, WhenOver, build_within};
use lookout::text::budget::Cut;
use lookout::{BuildError, Event, Instance, Job, Outgoing, Registration, catalogue};

/// The services that declare no size limit, each for the reason it gives in its docs.
/// A service joins this list on purpose, never by forgetting to declare its limits.
const NO_LIMIT: &[&str] = &[
    "apprise",
    "email",
    "errbot",
    "flowdock",
    "gotify",
    "homeassistant",
    "pushbullet",
    "signal",
    "splunk",
    "webhook",
    "zoom",
];

/// What `instance` builds for `event`: as sent when `fitted`, as `build` made it when not.
fn built(instance: &Instance, event: &Event, fitted: bool) -> Result<Vec<Outgoing>, BuildError> {
    let reg = instance.registration;
    let job = Job {
        event,
        options: &instance.options,
        delivery_id: "msg_limits",
        templates: &instance.templates,
        cut: Cut::NONE,
        sent_at: None,
    };
    let build = |job: &Job<'_>| reg.service.build(job);
    if fitted {
        build_within(&reg.limits, &job, build)
    } else {
        build(&job)
    }
}

fn example(reg: &Registration) -> Instance {
    common::instance(reg, &common::example_options(reg))
}

#[test]
fn no_service_sends_more_than_its_platform_accepts() {
    for (name, json) in common::fixtures() {
        let event = Event::parse(&json).unwrap();
        for reg in catalogue() {
            let instance = example(reg);
            if !instance.listens_to(&event) {
                continue;
            }
            match built(&instance, &event, true) {
                Ok(outgoing) => {
                    for limit in reg.limits.limits {
                        for one in &outgoing {
                            let size = limit.size_of(one);
                            assert!(
                                size <= limit.max,
                                "{} × {name}: {limit} but sends {size}",
                                reg.name()
                            );
                        }
                    }
                }
                Err(BuildError::TooLarge(why)) => {
                    assert_eq!(
                        reg.limits.when_over,
                        WhenOver::Refuse,
                        "{}: {why}",
                        reg.name()
                    );
                    assert!(
                        name.ends_with("oversized"),
                        "{} × {name}: {why}",
                        reg.name()
                    );
                }
                Err(_) => {}
            }
        }
    }
}

#[test]
fn a_service_without_a_limit_is_a_listed_choice() {
    let without: Vec<&str> = catalogue()
        .into_iter()
        .filter(|reg| reg.limits.none_because.is_some())
        .map(|reg| reg.name())
        .collect();
    assert_eq!(
        without, NO_LIMIT,
        "a service declares no limit off the list"
    );
    for reg in catalogue() {
        let Limits {
            limits,
            none_because,
            ..
        } = reg.limits;
        match none_because {
            Some(why) => assert!(why.len() > 20, "{}: say why there is no limit", reg.name()),
            None => assert!(!limits.is_empty(), "{}: declares no limit", reg.name()),
        }
    }
}

#[test]
fn the_docs_state_each_services_limits() {
    for reg in catalogue() {
        let docs = lookout::docs::service_markdown(reg);
        assert!(docs.contains("## Size limits"), "{}", reg.name());
        for limit in reg.limits.limits {
            assert!(docs.contains(&limit.to_string()), "{}: {limit}", reg.name());
        }
    }
}

#[test]
fn a_forwarded_payload_over_its_limit_fails_for_good_naming_it() {
    let reg = lookout::service::find("sqs").unwrap();
    let mut event: serde_json::Value =
        serde_json::from_str(&lookout_testkit::fixture_json("item-oversized")).unwrap();
    event["attributes"]["description"] = "x".repeat(300_000).into();
    let event = Event::from_value(event).unwrap();
    let err = built(&example(reg), &event, true).unwrap_err();
    assert!(matches!(err, BuildError::TooLarge(_)), "{err:?}");
    assert!(err.to_string().contains("262,144 bytes"), "{err}");
    let delivery = lookout::Delivery::not_sent(err, &lookout::redact::Redactor::default());
    assert!(matches!(delivery.outcome, lookout::Outcome::Failed { .. }));
    assert!(
        matches!(delivery.retry, lookout::delivery::retry::Retry::No),
        "a payload too large is not tried again"
    );
}

/// The sizes of what each service sends for the oversized fixtures, before the fitting
/// pass and after it: `cargo test --test limits sizes -- --nocapture` prints them.
#[test]
fn sizes_of_the_oversized_fixtures_before_and_after() {
    println!("| service | fixture | before (bytes) | after (bytes) |");
    println!("|---|---|---|---|");
    for name in lookout_testkit::OVERSIZED {
        let event = Event::parse(&lookout_testkit::fixture_json(name)).unwrap();
        for reg in catalogue() {
            let instance = example(reg);
            if !instance.listens_to(&event) {
                continue;
            }
            let size = |fitted| match built(&instance, &event, fitted) {
                Ok(outgoing) => total_bytes(&outgoing).to_string(),
                Err(BuildError::TooLarge(_)) => "not sent: too large".to_owned(),
                Err(err) => format!("not sent: {err}"),
            };
            println!(
                "| {} | {name} | {} | {} |",
                reg.name(),
                size(false),
                size(true)
            );
        }
    }
}

fn total_bytes(outgoing: &[Outgoing]) -> usize {
    let body = lookout::Limit::body(0, lookout::Unit::Bytes);
    outgoing.iter().map(|o| body.size_of(o)).sum()
}

#[test]
fn a_templated_message_goes_through_the_same_pass() {
    // The title twice over, and the link: a template can make a message longer still.
    let headline = "{{ item_title }} · {{ item_title }} · {{ item_link }}";
    let event = lookout_testkit::fixture("item-oversized");
    for service in ["zulip", "matrix", "msteams", "googlechat", "mattermost"] {
        let reg = lookout::service::find(service).unwrap();
        let mut options = common::example_options(reg);
        options.insert(
            "template".into(),
            serde_json::json!({ "headline": headline }),
        );
        let instance = common::instance(reg, &options);
        let outgoing = built(&instance, &event, true).unwrap();
        assert!(reg.limits.overrun(&outgoing).is_none(), "{service}");
        // Uncut, it is over the platform's limits or the template's own size cap.
        let whole = built(&instance, &event, false);
        assert!(
            whole.is_err() || reg.limits.overrun(&whole.unwrap()).is_some(),
            "{service}: not over"
        );
    }
}
