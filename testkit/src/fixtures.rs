//! The payloads the tests share: the engine's five samples (one per model, named after
//! it: `item`, `deploy`) and the edge cases in `testkit/fixtures/`.

/// The title of the `item-markup` fixture, as typed: what every service must show as
/// plain text.
pub const MARKUP_TITLE: &str =
    r#"<b>&"x"</b> *bold* _under_ `code` [link](http://evil.example) @everyone"#;

/// The fixtures over every platform's size limits, made here rather than stored (they
/// are over 150 KB): an item with a 10,000-character title full of markup and emoji, a
/// 100,000-character description and 300 tags, and a comment of 50,000 characters.
pub const OVERSIZED: [&str; 2] = ["comment-oversized", "item-oversized"];

/// One of the [`OVERSIZED`] fixtures' JSON text.
fn oversized_json(name: &str) -> Option<String> {
    let sample = |model| lookout::samples::for_model(model).map(serde_json::from_str);
    let mut event: serde_json::Value = match name {
        "item-oversized" => sample("item")?.ok()?,
        "comment-oversized" => sample("comment")?.ok()?,
        _ => return None,
    };
    let attributes = &mut event["attributes"];
    if name == "item-oversized" {
        attributes["title"] = long_text(TITLE_PIECE, 10_000).into();
        attributes["description"] = long_text(TEXT_PIECE, 100_000).into();
        let tags: Vec<String> = (1..=300).map(|i| format!("tag-{i:03}")).collect();
        attributes["tags"] = tags.into();
    } else {
        attributes["body"] = long_text(TEXT_PIECE, 50_000).into();
    }
    serde_json::to_string_pretty(&event).ok()
}

/// What the long title is made of: markup every platform must show as text, an
/// entity, a would-be mention and emoji (two UTF-16 units each).
const TITLE_PIECE: &str =
    r#"<b>&amp;"x"</b> *bold* _u_ `c` [link](http://evil.example) @everyone 🚀👀 "#;

/// What the long description and comment are made of, one line at a time.
const TEXT_PIECE: &str = "Line with <i>markup</i> & an entity &lt; *stars* — 日本語のテキスト 🚀 `code` [x](http://x.example)\n";

/// `piece` repeated to exactly `chars` characters.
fn long_text(piece: &str, chars: usize) -> String {
    piece.chars().cycle().take(chars).collect()
}

/// A payload from the test kit's `fixtures/` folder (`fixture("item")`), parsed:
/// for the tests inside service files.
pub fn fixture(name: &str) -> lookout::Event {
    lookout::Event::parse(&fixture_json(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The JSON text of one of the shared fixtures, `testkit/fixtures/{name}.json`.
pub fn fixture_json(name: &str) -> String {
    if let Some(sample) = lookout::samples::for_model(name) {
        return sample.to_owned();
    }
    if let Some(oversized) = oversized_json(name) {
        return oversized;
    }
    let path = fixture_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// Where a fixture's file is, for tests that hand it to the `lookout` binary.
pub fn fixture_path(name: &str) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    match lookout::samples::for_model(name) {
        Some(_) => format!("{root}/../lookout/samples/{name}.json"),
        None => format!("{root}/fixtures/{name}.json"),
    }
}

/// The name of every fixture: the five samples, then the edge cases (the
/// [`OVERSIZED`] ones among them).
pub fn fixture_names() -> Vec<String> {
    let samples = lookout::samples::ALL
        .iter()
        .map(|(model, _)| model.to_lowercase());
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    let mut edge_cases: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".json").map(str::to_owned)
        })
        .chain(OVERSIZED.map(str::to_owned))
        .collect();
    edge_cases.sort();
    samples.chain(edge_cases).collect()
}
