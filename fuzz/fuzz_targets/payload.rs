//! Payload parsing: any bytes either parse into an event or give an error, never a
//! panic; an event that parses can be described and dispatched-to (filters matched).
#![no_main]

use libfuzzer_sys::fuzz_target;
use services as _;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(event) = lookout::Event::parse(text) else {
        return;
    };
    let _ = event.kind();
    let _ = event.attributes().map(|a| serde_json::to_string(a));
    assert_eq!(event.raw(), text, "the raw payload is kept byte for byte");
    for reg in lookout::catalogue() {
        let _ = reg.listens_to(&event);
    }
});
