//! Helpers shared by the integration tests: fixtures, example options, and options
//! pointed at a local capture server.
#![allow(dead_code)] // each test crate uses a different part

use std::path::Path;

use lookout::options::Kind;
use lookout::{Event, Instance, Registration, Settings};
use serde_json::{Map, Value};
// Links every service into the test binary.
use services as _;

/// Every fixture payload, `(name, json)`, sorted by name.
pub fn fixtures() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut all: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("tests/fixtures")
        .map(|entry| entry.expect("fixture entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).expect("fixture"))
        })
        .collect();
    all.sort();
    all
}

pub fn fixture(name: &str) -> Event {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{name}.json"));
    Event::parse(&std::fs::read_to_string(path).expect("fixture")).expect("fixture parses")
}

/// The service's example options (its `example()` TOML) as a JSON table.
pub fn example_options(reg: &Registration) -> Map<String, Value> {
    let table: toml::Table = toml::from_str(reg.service.example())
        .unwrap_or_else(|e| panic!("{}: example() is not valid TOML: {e}", reg.name()));
    serde_json::to_value(table)
        .unwrap()
        .as_object()
        .unwrap()
        .clone()
}

pub fn instance(reg: &Registration, options: &Map<String, Value>) -> Instance {
    Instance::new(reg.name(), reg.name(), options)
        .unwrap_or_else(|problems| panic!("{}: options rejected: {problems:?}", reg.name()))
}

/// The example options with every URL option (example or default value) moved to
/// `base` (`http://127.0.0.1:PORT`), path and query kept.
pub fn pointed_at(reg: &Registration, base: &str) -> Map<String, Value> {
    let mut options = example_options(reg);
    for spec in reg.service.schema().options {
        let current = options
            .get(spec.name)
            .cloned()
            .or_else(|| spec.default.map(Value::from));
        let moved = match (spec.kind, current) {
            (Kind::Url, Some(Value::String(url))) => Value::from(move_url(&url, base)),
            (Kind::UrlList, Some(Value::Array(urls))) => Value::Array(
                urls.iter()
                    .filter_map(Value::as_str)
                    .map(|u| Value::from(move_url(u, base)))
                    .collect(),
            ),
            (Kind::UrlList, Some(Value::String(url))) => Value::from(vec![move_url(&url, base)]),
            _ => continue,
        };
        options.insert(spec.name.to_owned(), moved);
    }
    options
}

fn move_url(url: &str, base: &str) -> String {
    let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("example URL {url}: {e}"));
    let mut moved = format!("{base}{}", parsed.path());
    if let Some(query) = parsed.query() {
        moved.push('?');
        moved.push_str(query);
    }
    moved
}

/// Settings for tests: short deadlines so a hung target costs little, and the SSRF
/// guard letting loopback through (the capture server listens on 127.0.0.1).
pub fn test_settings() -> Settings {
    Settings {
        deadline: std::time::Duration::from_secs(5),
        request_timeout: std::time::Duration::from_secs(4),
        ..Settings::default()
    }
    .allowing_loopback()
}
