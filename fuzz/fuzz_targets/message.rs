//! Message formatting on arbitrary JSON: the attributes of every model are fuzzed (the
//! first byte picks the model, the rest is the attributes' JSON), and the event goes
//! through `Message::from_event`, `wording::one_line`, every rendering, and every
//! registered service's `build` (via the preview). Errors are fine; panics are not.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use services as _;

const MODELS: &[&str] = &["Item", "Comment", "Block", "Favorite", "Deploy", "Other"];
const ACTIONS: &[&str] = &["created", "updated", "deleted"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(attributes) = serde_json::from_slice::<Value>(rest) else {
        return;
    };
    let payload = json!({
        "model": MODELS[pick as usize % MODELS.len()],
        "action": ACTIONS[(pick as usize / MODELS.len()) % ACTIONS.len()],
        "product": {"id": 1, "name": "fuzz"},
        "attributes": attributes,
    });
    let Ok(event) = lookout::Event::parse(&payload.to_string()) else {
        return;
    };
    let _ = lookout::text::wording::one_line(&event);
    if let Ok(message) = lookout::Message::from_event(&event) {
        use lookout::Dialect;
        let _ = (message.html(), message.markdown(&Dialect::COMMONMARK), message.plain());
        let _ = (Dialect::MRKDWN.rich(&message.headline), message.details(&Dialect::COMMONMARK));
        let _ = lookout::text::budget::fit(&message.html(), rest.len());
    }
    for instance in INSTANCES.iter() {
        let _ = lookout::dispatch::preview_one(&event, instance);
    }
});

/// Every registered service, configured with its own example.
static INSTANCES: LazyLock<Vec<lookout::Instance>> = LazyLock::new(|| {
    lookout::catalogue()
        .iter()
        .map(|reg| format!("[services.{}]\n{}", reg.name(), reg.service.example()))
        .flat_map(|text| lookout::Config::parse(&text, "example").expect("a valid example").services)
        .collect()
});
