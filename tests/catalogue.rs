//! The catalogue: every service file is linked and registered, named uniquely, documented,
//! has a valid example, marks its secrets, and has snapshots for every fixture.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use lookout::options::{Kind, Secrecy};
use lookout::{Event, catalogue};

fn service_files() -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("services/src");
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|name| name != "lib")
        .collect()
}

#[test]
fn every_service_file_is_registered() {
    let registered: BTreeSet<String> = catalogue().iter().map(|r| r.name().to_owned()).collect();
    assert_eq!(
        registered,
        service_files(),
        "services/src/ and the registry disagree"
    );
}

#[test]
fn names_are_unique() {
    let names: Vec<&str> = catalogue().iter().map(|r| r.name()).collect();
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(
        names.len(),
        unique.len(),
        "duplicate service names in {names:?}"
    );
}

#[test]
fn every_service_is_documented() {
    for reg in catalogue() {
        assert!(
            !reg.title().is_empty(),
            "{}: no title (first doc comment line)",
            reg.name()
        );
        let docs = reg.description();
        assert!(
            docs.trim().lines().count() >= 3,
            "{}: install docs are too short:\n{docs}",
            reg.name()
        );
        assert!(
            !reg.service.events().is_empty(),
            "{}: listens to nothing",
            reg.name()
        );
        for spec in reg.service.schema().options {
            assert!(
                !spec.help.is_empty(),
                "{}.{}: option has no help text",
                reg.name(),
                spec.name
            );
        }
    }
}

/// Install docs are steps a user follows: a title, then at least two numbered steps
/// (`1.`, `2.`, … in order), and nothing left for later.
#[test]
fn every_services_docs_are_real_steps() {
    for reg in catalogue() {
        let docs = reg.description();
        let numbers: Vec<usize> = docs
            .lines()
            .filter_map(|line| line.trim_start().split_once(". "))
            .filter_map(|(number, _)| number.parse().ok())
            .collect();
        assert!(
            numbers.len() >= 2 && numbers.iter().zip(1..).all(|(n, want)| *n == want),
            "{}: install docs need numbered steps 1., 2., …, found {numbers:?}:\n{docs}",
            reg.name()
        );
        for word in ["TODO", "FIXME", "XXX:"] {
            assert!(
                !docs.contains(word) && !reg.title().contains(word),
                "{}: docs still say {word}",
                reg.name()
            );
        }
    }
}

#[test]
fn every_example_is_valid() {
    for reg in catalogue() {
        common::instance(reg, &common::example_options(reg));
    }
}

/// Options whose names say they hold a credential must be marked secret.
#[test]
fn secret_looking_options_are_secret() {
    const CREDENTIAL_WORDS: &[&str] = &["token", "key", "password", "secret", "webhook"];
    for reg in catalogue() {
        for spec in reg.service.schema().options {
            let looks_secret = CREDENTIAL_WORDS.iter().any(|w| spec.name.contains(w))
                || (matches!(spec.kind, Kind::Url | Kind::UrlList)
                    && spec.name.contains("url")
                    && spec.required);
            assert!(
                !looks_secret || spec.is_secret(),
                "{}.{}: looks like a credential but is not marked secret",
                reg.name(),
                spec.name
            );
        }
    }
}

/// A credential left unmarked would be shown in reports and recorded in snapshots, and
/// no name gives every credential away (`user`, `topic`): each option says which it is.
#[test]
fn every_option_states_secret_or_public() {
    for reg in catalogue() {
        for spec in reg.service.schema().options {
            assert!(
                spec.secrecy != Secrecy::Unstated,
                "{}.{}: say `.secret()` or `.public()`",
                reg.name(),
                spec.name
            );
        }
    }
}

/// A default outside its own range would be refused only once someone writes it out.
#[test]
fn defaults_are_within_their_ranges() {
    for reg in catalogue() {
        for spec in reg.service.schema().options {
            let (Some((min, max)), Some(default)) = (spec.range, spec.default) else {
                continue;
            };
            let value: i64 = default.parse().unwrap();
            assert!(
                (min..=max).contains(&value),
                "{}.{}: default {value} is outside {min} to {max}",
                reg.name(),
                spec.name
            );
        }
    }
}

#[test]
fn every_service_has_a_snapshot_for_every_fixture() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    for reg in catalogue() {
        for (fixture, _) in common::fixtures() {
            let file = dir.join(format!("snapshots__{}__{fixture}.snap", reg.name()));
            assert!(
                file.exists(),
                "{} has no snapshot for {fixture}: run `make snapshots` and read `git diff tests/snapshots`",
                reg.name()
            );
        }
    }
}

#[test]
fn every_fixture_parses() {
    for (name, json) in common::fixtures() {
        Event::parse(&json).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
