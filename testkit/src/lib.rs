//! Lookout's test kit, for the tests of every crate and for the demo's local sink:
//! capture servers for HTTP ([`CaptureServer`]) and SMTP ([`SmtpCaptureServer`]), the
//! sample payloads ([`fixture`]), a throwaway PostgreSQL schema ([`postgres`]), and the
//! helpers below that send one event through a real engine.

use std::time::Duration;

mod fixtures;
mod http;
pub mod postgres;
mod smtp;

pub use fixtures::{MARKUP_TITLE, OVERSIZED, fixture, fixture_json, fixture_names, fixture_path};
pub use http::{CaptureServer, Captured, Reply};
pub use smtp::{CapturedMail, MimePart, SmtpCaptureServer, SmtpLogin};

/// The engine settings every test that sends to 127.0.0.1 uses: the defaults with short
/// deadlines, so a hung target costs little. Tests build their engines with this one
/// function only, so that what local tests need from the engine is decided in one place.
///
/// The SSRF guard lets loopback through and nothing else (`loopback_only`): a test
/// given a wrong URL fails with "blocked" before anything leaves the machine.
pub fn settings() -> lookout::Settings {
    lookout::Settings {
        deadline: Duration::from_secs(5),
        request_timeout: Duration::from_secs(4),
        // Tests send many events to one fake target; pacing is tested on its own.
        rate_limits: false,
        loopback_only: true,
        ..lookout::Settings::default()
    }
}

/// [`settings`] with every HTTP request sent to `server` instead of where the service
/// sends it (path and query kept, the intended host in the `Host` header): how a service
/// with a fixed public host is tested without an option to move it.
pub fn settings_redirected_to(server: &CaptureServer) -> lookout::Settings {
    lookout::Settings {
        redirect_to: Some(server.addr()),
        ..settings()
    }
}

/// The report as a user could see it: its JSON and its debug form, one after the other.
pub fn shown(report: &lookout::Report) -> String {
    format!(
        "{} {report:?}",
        serde_json::to_string(report).unwrap_or_default()
    )
}

/// Panics if `secret` shows anywhere in the report (see [`shown`]); returns what shows.
pub fn assert_hidden(report: &lookout::Report, secret: &str) -> String {
    let shown = shown(report);
    assert!(
        !shown.contains(secret),
        "the secret {secret:?} shows in the report: {shown}"
    );
    shown
}

/// Sends one event (payload JSON) to one configured service through a real
/// [`Engine`](lookout::Engine) with the test [`settings`], and returns the report.
pub async fn dispatch_one(
    service: &str,
    options: serde_json::Value,
    event_json: &str,
) -> lookout::Report {
    dispatch_one_with(settings(), service, options, event_json).await
}

/// [`dispatch_one`] with other settings (e.g. [`settings_redirected_to`]).
pub async fn dispatch_one_with(
    settings: lookout::Settings,
    service: &str,
    options: serde_json::Value,
    event_json: &str,
) -> lookout::Report {
    let options = options
        .as_object()
        .cloned()
        .expect("options are a JSON object");
    let instance = lookout::Instance::new(service, service, &options)
        .unwrap_or_else(|problems| panic!("{service}: options rejected: {problems:?}"));
    let event = lookout::Event::parse(event_json).expect("the event parses");
    let engine = lookout::Engine::with_settings(settings).expect("engine");
    engine.dispatch_to(&event, &[instance]).await
}

/// End to end for the in-file tests of services: starts a capture server, configures
/// `service` with the options `options` gives for it (scripting its replies, if need be),
/// delivers the event with every request redirected to that server
/// ([`settings_redirected_to`]: URL options need not point at it, and a fixed host
/// needs no option at all), and checks that it was delivered in exactly one request and
/// that `secret` shows nowhere in the report. Returns the report and the request as it
/// arrived (its `Host` header names the host the service meant).
pub async fn deliver_one(
    service: &str,
    options: impl FnOnce(&CaptureServer) -> serde_json::Value,
    event_json: &str,
    secret: &str,
) -> (lookout::Report, Captured) {
    let server = CaptureServer::start();
    let settings = settings_redirected_to(&server);
    let report = dispatch_one_with(settings, service, options(&server), event_json).await;
    let shown = assert_hidden(&report, secret);
    let delivered = |r: &lookout::ServiceResult| {
        matches!(r.delivery.outcome, lookout::Outcome::Delivered { .. })
    };
    assert!(
        !report.results.is_empty() && report.results.iter().all(delivered),
        "{service}: not delivered: {shown}"
    );
    let mut arrived = server.requests();
    assert_eq!(
        arrived.len(),
        1,
        "{service}: one request expected: {arrived:?}"
    );
    (report, arrived.remove(0))
}

/// How one delivery of `service` ends when its target answers `reply` (every request
/// is redirected to a capture server scripted with it): for tests of a platform's own
/// answers, such as those that mean "this hook is gone". Panics unless exactly one
/// result comes back; `secret` must show nowhere in it.
pub async fn outcome_of_reply(
    service: &str,
    options: serde_json::Value,
    event_json: &str,
    reply: Reply,
    secret: &str,
) -> lookout::Outcome {
    let server = CaptureServer::start();
    server.script("/", std::iter::repeat_n(reply, 8));
    let settings = lookout::Settings {
        attempts: 1,
        ..settings_redirected_to(&server)
    };
    let report = dispatch_one_with(settings, service, options, event_json).await;
    assert_hidden(&report, secret);
    assert_eq!(report.results.len(), 1, "{service}: {report:?}");
    report.results[0].delivery.outcome.clone()
}

/// What a verdict says, without its reason: `"by status"`, `"gone"`, `"final"` (refused,
/// not tried again) or `"retry"` (refused, tried again). For tables of a platform's
/// answers ([`assert_verdicts`]).
pub fn verdict_kind(verdict: &lookout::Verdict) -> &'static str {
    match verdict {
        lookout::Verdict::ByStatus => "by status",
        lookout::Verdict::Gone(_) => "gone",
        lookout::Verdict::Refused { retry: false, .. } => "final",
        lookout::Verdict::Refused { retry: true, .. } => "retry",
    }
}

/// Checks what `service` makes of each answer in `cases` (as it declares its answers,
/// then by its own `verdict`), a table of `(status, code, kind)`: the answer is
/// `status` with the body `answer(code)` (the platform's error document for that code),
/// and `kind` is what [`verdict_kind`] must say of the verdict.
pub fn assert_verdicts(
    service: &impl lookout::Registered,
    answer: impl Fn(&str) -> Vec<u8>,
    cases: &[(u16, &str, &str)],
) {
    for &(status, code, kind) in cases {
        let body = answer(code);
        let answer = lookout::delivery::Answer::new(status, &body);
        let verdict = service.registration().verdict_on(&answer);
        assert_eq!(verdict_kind(&verdict), kind, "{status} {code}: {verdict:?}");
    }
}

/// [`assert_verdicts`] for an AWS API service (answers declared with
/// `Answers::aws`): the codes every AWS API shares (refused credentials are final, a
/// server error goes by status), then the service's own `cases`.
pub fn assert_aws_verdicts(
    service: &impl lookout::Registered,
    answer: impl Fn(&str) -> Vec<u8>,
    cases: &[(u16, &str, &str)],
) {
    let shared = [
        (403, "InvalidClientTokenId", "final"),
        (403, "SignatureDoesNotMatch", "final"),
        (500, "InternalError", "by status"),
    ];
    assert_verdicts(service, &answer, &shared);
    assert_verdicts(service, answer, cases);
}

/// Panics unless `outcome` disabled the target, with the status `status` when one is
/// given, for a reason that contains `why`.
pub fn assert_disabled(outcome: &lookout::Outcome, status: Option<u16>, why: &str) {
    assert!(
        matches!(outcome, lookout::Outcome::Disabled { reason, status: got }
            if status.is_none_or(|s| s == *got) && reason.contains(why)),
        "disabled{} for {why:?} expected: {outcome:?}",
        status.map(|s| format!(" with {s}")).unwrap_or_default()
    );
}

/// Panics unless `outcome` is a failure (not disabling the target), with the status
/// `status` when one is given, for a reason that contains `why` (`""`: any reason).
pub fn assert_failed(outcome: &lookout::Outcome, status: Option<u16>, why: &str) {
    assert!(
        matches!(outcome, lookout::Outcome::Failed { reason, status: got }
            if status.is_none_or(|s| *got == Some(s)) && reason.contains(why)),
        "failed{} for {why:?} expected: {outcome:?}",
        status.map(|s| format!(" with {s}")).unwrap_or_default()
    );
}
