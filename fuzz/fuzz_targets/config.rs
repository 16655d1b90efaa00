//! Config and option parsing: any text (TOML, or JSON when it starts with `{`) is either
//! a valid config or an error, never a panic. A config that parses is previewed against
//! a sample event, which runs every configured service's option handling.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use services as _;

static EVENT: LazyLock<lookout::Event> = LazyLock::new(|| {
    lookout::Event::parse(lookout::samples::ALL[0].1).expect("fixture")
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match lookout::Config::parse(text, "fuzz") {
        Ok(config) => {
            for instance in &config.services {
                let preview = lookout::dispatch::preview_one(&EVENT, instance);
                let _ = serde_json::to_string(&preview);
                let _ = instance.options.to_string();
            }
        }
        Err(err) => {
            let _ = err.to_string();
        }
    }
});
