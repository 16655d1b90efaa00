//! A digest's message (`lookout serve`'s `digest = { window, max_events }`): one message
//! for many events, written once here for every service that writes messages.
//!
//! Its headline says how many events and where (`5 events in Sprint.ly`, the product
//! linked); its list is each event's own headline, links kept, oldest first. The list is
//! what a platform's limits cut: as many headlines as fit, then `… and 12 more`
//! ([`Message::cut`]), so a digest of fifty events fits a chat message of a few
//! thousand characters.

use super::markup::{Dialect, Rich};
use super::message::Message;
use super::wording::{DEFAULT_COLOR, reports_link};
use crate::error::BuildError;
use crate::payload::Event;

impl Message {
    /// The message of a digest of `events` (oldest first). An event without a message
    /// of its own (an unknown model, a payload lacking a field) is left out; a digest of
    /// none of them is skipped like such an event.
    pub fn digest(events: &[Event]) -> Result<Message, BuildError> {
        let Some(first) = events.first() else {
            return Err(BuildError::Skip("an empty digest".to_owned()));
        };
        let headlines: Vec<Rich> = events
            .iter()
            .filter_map(|event| Message::from_event(event).ok())
            .map(|message| message.headline)
            .collect();
        if headlines.is_empty() {
            return Err(BuildError::no_message_for(first));
        }
        let product = &first.product;
        let url = reports_link("product", &product.id.to_string());
        let what = match headlines.len() {
            1 => "1 event".to_owned(),
            n => format!("{n} events"),
        };
        Ok(Message {
            summary: format!("{what} in {}", product.name),
            headline: Rich::text(format!("{what} in ")).append(Rich::link(&product.name, &url)),
            title: format!("{what} in {}", product.name),
            url: Some(url),
            actor: String::new(),
            quote: None,
            fields: Vec::new(),
            list: headlines,
            color: DEFAULT_COLOR,
        })
    }

    /// The headline, then one `- ` line per item of the list, in `dialect`: a digest as
    /// one text, for platforms whose messages are one text (a Slack `text`).
    pub fn headline_and_list(&self, dialect: &Dialect) -> String {
        let mut lines = vec![dialect.rich(&self.headline)];
        lines.extend(dialect.list_lines(&self.list));
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::budget::Cut;

    fn events(count: usize) -> Vec<Event> {
        (0..count)
            .map(|n| {
                let mut item: serde_json::Value =
                    serde_json::from_str(crate::samples::ALL[0].1).unwrap();
                item["attributes"]["title"] = serde_json::json!(format!("Story {n}"));
                item["attributes"]["number"] = serde_json::json!(100 + n);
                Event::from_value(item).unwrap()
            })
            .collect()
    }

    #[test]
    fn a_digest_names_every_event_with_its_link() {
        let message = Message::digest(&events(5)).unwrap();
        let text = message.headline_and_list(&Dialect::PLAIN_WITH_URLS);
        assert!(text.starts_with("5 events in "), "{text}");
        for n in 0..5 {
            assert!(text.contains(&format!("Story {n}")), "{text}");
            assert!(text.contains(&format!("#10{n}")), "{text}");
        }
        assert_eq!(text.lines().count(), 6, "{text}");
        let slack = message.headline_and_list(&Dialect::MRKDWN);
        let mut lines = slack.lines();
        assert_eq!(
            lines.next(),
            Some("5 events in <https://sprint.ly/reports?product=1111|sprint.ly>")
        );
        assert_eq!(
            lines.next(),
            Some("- Joe S. created the story <http://sprint.ly/i/1/116550/|#100 - Story 0>")
        );
    }

    #[test]
    fn a_long_digest_is_cut_with_how_many_more() {
        let message = Message::digest(&events(50)).unwrap().cut(Cut::parts(400));
        let last = message.list.last().unwrap();
        let shown = Dialect::PLAIN.rich(last);
        assert!(shown.starts_with("… and "), "{shown}");
        let hidden: usize = shown
            .trim_start_matches("… and ")
            .trim_end_matches(" more")
            .parse()
            .unwrap();
        assert_eq!(message.list.len() - 1 + hidden, 50);
    }

    #[test]
    fn the_digest_forwards_every_payload_as_one_array() {
        let all = events(3);
        let digest = Event::digest_of(all.clone()).unwrap();
        let array: Vec<serde_json::Value> = serde_json::from_str(&digest.forwarded()).unwrap();
        assert_eq!(array.len(), 3);
        assert_eq!(array[2]["attributes"]["title"], "Story 2");
        assert_eq!(
            &*all[0].forwarded(),
            all[0].raw(),
            "a single event is as received"
        );
    }
}

#[cfg(test)]
mod template_tests {
    use super::*;
    use crate::text::template::Templates;

    fn events() -> Vec<Event> {
        ["Story A", "Story B"]
            .iter()
            .map(|title| {
                let mut item: serde_json::Value =
                    serde_json::from_str(crate::samples::ALL[0].1).unwrap();
                item["attributes"]["title"] = serde_json::json!(title);
                Event::from_value(item).unwrap()
            })
            .collect()
    }

    #[test]
    fn template_digest_writes_the_headline_with_the_events() {
        let table = serde_json::json!({
            "digest": "{{ count }} changes: {% for e in events %}{{ e.item_title }}{% if not loop.last %}, {% endif %}{% endfor %}",
        });
        let templates = Templates::parse("chat", &table).unwrap();
        let events = events();
        let message = templates
            .apply_digest(&events, Message::digest(&events).unwrap())
            .unwrap();
        assert_eq!(
            Dialect::PLAIN.rich(&message.headline),
            "2 changes: Story A, Story B"
        );
        assert_eq!(message.list.len(), 2, "the list stays, cut by the limits");
    }

    #[test]
    fn a_digest_template_knows_only_the_digest_variables() {
        let table = serde_json::json!({ "digest": "{{ model }} x{{ count }}" });
        let problems = Templates::parse("chat", &table).unwrap_err();
        let shown = problems[0].to_string();
        assert!(
            shown.contains("template.digest: line 1, column 4: unknown variable `model`"),
            "{shown}"
        );
    }
}
