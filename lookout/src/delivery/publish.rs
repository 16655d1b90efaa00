//! Publishing to a broker: one try at handing a [`Publish`] (what a broker service
//! builds, described in [`crate::request::publish`]) to its own publisher, at the
//! address the SSRF guard checked, within the try's time.

use std::net::SocketAddr;
use std::time::Duration;

use super::report::{Outcome, human_duration};
use super::retry::Retry;
use crate::redact::Redactor;
use crate::request::publish::{Publish, PublishTry};

/// One try at publishing `publish` to `address` (checked by the guard), within
/// `timeout`: how it ended, and whether another try could do better.
pub(crate) async fn try_once(
    publish: &Publish,
    address: SocketAddr,
    timeout: Duration,
    redactor: &Redactor,
) -> (Outcome, Retry) {
    let publishing = publish.publisher.publish_once(PublishTry {
        address,
        message: &publish.message,
        timeout,
    });
    let (reason, retry) = match tokio::time::timeout(timeout, publishing).await {
        Ok(Ok(())) => return (Outcome::Delivered { status: 0 }, Retry::No),
        Ok(Err(err)) => (err.reason, err.retry),
        Err(_) => {
            let waited = human_duration(timeout);
            (format!("no acknowledgement within {waited}"), true)
        }
    };
    let outcome = Outcome::Failed {
        reason: redactor.redact(&reason),
        status: None,
    };
    let retry = if retry {
        Retry::Yes { after: None }
    } else {
        Retry::No
    };
    (outcome, retry)
}
