//! What a target answers is hostile input too: `Retry-After` headers, and the waits
//! every service reads in an answer's body (`retry_after`, `parameters.retry_after`,
//! `retry_after_ms`), parse into a wait of at most a day, or nothing; never a panic.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use lookout::delivery::retry::{MAX_RETRY_AFTER, retry_after};
use services as _;

fuzz_target!(|data: &[u8]| {
    let header = std::str::from_utf8(data).ok();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for registration in lookout::catalogue() {
        let in_body = registration.service.wait_asked(data);
        if let Some(wait) = retry_after(header, in_body, now) {
            assert!(wait <= MAX_RETRY_AFTER, "{wait:?}");
            // Callers schedule with it: this must not overflow.
            let _ = std::time::Instant::now() + wait;
        }
    }
});
