//! What a target answers is hostile input too: `Retry-After` headers and JSON
//! `retry_after` bodies parse into a wait of at most a day, or nothing; never a panic.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let header = std::str::from_utf8(data).ok();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    if let Some(wait) = lookout::delivery::retry::retry_after(header, data, now) {
        assert!(wait <= lookout::delivery::retry::MAX_RETRY_AFTER, "{wait:?}");
        // Callers schedule with it: this must not overflow.
        let _ = std::time::Instant::now() + wait;
    }
});
