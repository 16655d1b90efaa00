//! What every service sends for every fixture, recorded with insta.
//!
//! The snapshots are the requests as `--dry-run` shows them (same code path), built from
//! the service's example options: method, URL and headers with secrets redacted, and the
//! body. A service without snapshots fails here (in CI insta refuses new snapshots).
//! Record changes with `make snapshots`, then review them with `git diff tests/snapshots`.

mod common;

use lookout::catalogue;
use lookout::dispatch::preview_one;

#[test]
fn every_service_for_every_fixture() {
    let fixtures = common::fixtures();
    for reg in catalogue() {
        let instance = common::instance(reg, &common::example_options(reg));
        for (name, json) in &fixtures {
            let event = lookout::Event::parse(json).unwrap();
            let preview = preview_one(&event, &instance);
            insta::with_settings!({ description => format!("{} × {name}", reg.name()), omit_expression => true }, {
                insta::assert_yaml_snapshot!(format!("{}__{name}", reg.name()), preview);
            });
        }
    }
}
