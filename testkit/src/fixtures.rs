//! The payloads the tests share: the engine's five samples (one per model, named after
//! it: `item`, `deploy`) and the edge cases in `testkit/fixtures/`.

/// The title of the `item-markup` fixture, as typed: what every service must show as
/// plain text.
pub const MARKUP_TITLE: &str =
    r#"<b>&"x"</b> *bold* _under_ `code` [link](http://evil.example) @everyone"#;

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

/// The name of every fixture: the five samples, then the edge cases.
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
        .collect();
    edge_cases.sort();
    samples.chain(edge_cases).collect()
}
