//! One sample event per model, as Sprint.ly sends them: what `lookout test`, the demo and
//! the docs send when a user wants to see a service work.

/// `(model, payload JSON)` for every model, in the order users meet them.
pub const ALL: [(&str, &str); 5] = [
    ("Item", include_str!("../samples/item.json")),
    ("Comment", include_str!("../samples/comment.json")),
    ("Block", include_str!("../samples/block.json")),
    ("Favorite", include_str!("../samples/favorite.json")),
    ("Deploy", include_str!("../samples/deploy.json")),
];

/// The sample payload for a model (`item`, `Deploy`: any case).
pub fn for_model(model: &str) -> Option<&'static str> {
    ALL.iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(model))
        .map(|(_, json)| *json)
}

/// A sample, edited into one of the edge cases the engine's own tests need (the test
/// kit's fixtures of the same names, which this crate cannot depend on).
#[cfg(test)]
pub(crate) fn edge_case(name: &str) -> crate::Event {
    use serde_json::{Value, json};
    let base = name.split('-').next().unwrap_or(name);
    let mut event: Value = serde_json::from_str(for_model(base).unwrap_or(ALL[0].1)).unwrap();
    let attributes = &mut event["attributes"];
    match name {
        "item-no-last-name" => {
            attributes["type"] = "task".into();
            attributes["title"] = "Document the outbound services API".into();
            attributes["created_by"]["last_name"] = "".into();
            attributes["assigned_to"] =
                json!({"id": 2222, "first_name": "Craig", "last_name": null});
        }
        "comment-mentions" => {
            attributes["body"] =
                "@[Craig Pattison](pk:2222) can you pair with @[Joe Stump](pk:1111) on this?"
                    .into();
        }
        "deploy-single" => {
            attributes["environment"] = "staging".into();
            attributes["items"].as_array_mut().unwrap().truncate(1);
        }
        "item-missing-title" => {
            attributes.as_object_mut().unwrap().remove("title");
        }
        "item-markup" => {
            attributes["title"] = Value::from(MARKUP_TITLE);
            attributes["tags"] = json!(["<script>", "a&b"]);
        }
        "unknown-model" => {
            event["model"] = "Widget".into();
            event["attributes"] = json!({"id": 42, "name": "A widget the product added later"});
        }
        _ => {}
    }
    crate::Event::parse(&event.to_string()).unwrap()
}

/// The title of the `item-markup` edge case: every markup character a platform knows.
#[cfg(test)]
pub(crate) const MARKUP_TITLE: &str =
    r#"<b>&"x"</b> *bold* _under_ `code` [link](http://evil.example) @everyone"#;

#[cfg(test)]
mod tests {
    #[test]
    fn every_sample_parses_as_its_model() {
        for (model, json) in super::ALL {
            let event = crate::Event::parse(json).unwrap();
            assert_eq!(event.model, model);
            assert!(event.attributes().is_ok(), "{model}");
        }
        assert_eq!(super::for_model("deploy"), Some(super::ALL[4].1));
        assert_eq!(super::for_model("Widget"), None);
    }
}
