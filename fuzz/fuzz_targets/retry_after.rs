//! What a target answers is hostile input too: `Retry-After` headers and JSON
//! `retry_after` bodies parse into a bounded wait or nothing, never a panic.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let header = std::str::from_utf8(data).ok();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    if let Some(wait) = lookout::retry::retry_after(header, data, now) {
        // Seconds and JSON values are bounded to a day; dates may be further off.
        let _ = wait.as_secs_f64();
    }
});
