//! What a target answers is hostile input too: `Retry-After` headers, and the waits
//! every service declares (`retry_after`, `parameters.retry_after`, `retry_after_ms`
//! in the body; a header's seconds or moment), parse into a wait of at most a day, or
//! nothing; never a panic.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use lookout::delivery::answers::{Answer, HeaderMap, HeaderValue};
use lookout::delivery::retry::{MAX_RETRY_AFTER, retry_after};
use services as _;

fuzz_target!(|data: &[u8]| {
    let header = std::str::from_utf8(data).ok();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    // The same bytes as the body and as the value of every header a service may read.
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(data) {
        for name in ["x-ratelimit-reset", "x-ratelimit-reset-after", "retry-after"] {
            headers.insert(name, value.clone());
        }
    }
    let answer = Answer {
        status: 429,
        headers: &headers,
        body: data,
    };
    for registration in lookout::catalogue() {
        let in_answer = registration.answers.wait_asked(&answer, now);
        if let Some(wait) = retry_after(header, in_answer, now) {
            assert!(wait <= MAX_RETRY_AFTER, "{wait:?}");
            // Callers schedule with it: this must not overflow.
            let _ = std::time::Instant::now() + wait;
        }
    }
});
