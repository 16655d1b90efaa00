//! OpenTelemetry traces: set up here once, and nowhere else.
//!
//! Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
//! set: then the spans made by the functions below (and only those: the intake, one per
//! delivery attempt) are exported over OTLP/HTTP in protobuf, batched on the SDK's own
//! thread. The SDK reads the other standard variables itself (`OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_*`). Off, every function here returns at
//! once: no propagation, no header, no stored context.
//!
//! Spans carry names and counts only (product, configured service, service, outcome,
//! status, attempt number, and the target as the options' redactor shows it): never an
//! option's value, a header or a payload. Numbers are recorded as `i64`: the bridge
//! exports a `u64` as a string.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Whether spans are exported: decided once, by [`init`].
static ENABLED: AtomicBool = AtomicBool::new(false);

/// The W3C header that carries a trace across a request.
pub const TRACEPARENT: &str = "traceparent";

/// The service name when `OTEL_SERVICE_NAME` says none.
const DEFAULT_SERVICE_NAME: &str = "lookout";

/// Installs the process's `tracing` subscriber: the log lines on stderr filtered by
/// `logs` (in colour when `colours`), plus the span exporter when the environment asks
/// for one. Keep the returned guard until the end of `main` (outside any async
/// runtime): dropping it sends the spans still waiting.
pub fn init(logs: EnvFilter, colours: bool) -> Telemetry {
    let (provider, problem) = match exporter_from_env() {
        Ok(provider) => (provider, None),
        Err(problem) => (None, Some(problem)),
    };
    let log_lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colours)
        .with_filter(logs);
    let spans = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("lookout"))
            .with_filter(our_spans_only())
    });
    tracing_subscriber::registry()
        .with(log_lines)
        .with(spans)
        .init();
    if let Some(problem) = problem {
        tracing::warn!("OpenTelemetry: not exporting traces: {problem}");
    }
    ENABLED.store(provider.is_some(), Ordering::Relaxed);
    Telemetry { provider }
}

/// Keeps the exporter running; flushes and stops it when dropped.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(err) = provider.shutdown()
        {
            eprintln!("OpenTelemetry: exporting the last spans failed: {err}");
        }
    }
}

/// Whether traces are exported (and so propagated).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The spans made in this module, at info: what the exporter sends. Others (a
/// dependency's spans, `debug` spans) would only be noise, or carry what must not leave.
fn our_spans_only() -> Targets {
    Targets::new().with_target(module_path!(), tracing::Level::INFO)
}

/// The OTLP/HTTP exporter the standard variables describe, or `None` when they name
/// no endpoint (or `OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none`).
fn exporter_from_env() -> Result<Option<SdkTracerProvider>, String> {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let is = |name: &str, value: &str| {
        std::env::var(name).is_ok_and(|v| v.trim().eq_ignore_ascii_case(value))
    };
    let endpoint = set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    if !endpoint || is("OTEL_SDK_DISABLED", "true") || is("OTEL_TRACES_EXPORTER", "none") {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()
        .map_err(|err| err.to_string())?;
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource())
            .build(),
    ))
}

/// What the SDK detects (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`), named
/// `lookout` when neither names the service.
fn resource() -> Resource {
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok()
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|a| a.contains("service.name="));
    let builder = Resource::builder();
    if named {
        builder.build()
    } else {
        builder.with_service_name(DEFAULT_SERVICE_NAME).build()
    }
}

/// The span of one request to the intake (`route` as routed, never the path with its
/// values). Record the product and event with [`record_intake`].
pub fn intake_span(route: &'static str) -> Span {
    tracing::info_span!(
        "intake",
        otel.kind = "server",
        http.request.method = "POST",
        http.route = route,
        http.response.status_code = Empty,
        lookout.product = Empty,
        lookout.event = Empty,
        lookout.event_id = Empty,
        lookout.deliveries = Empty,
    )
}

/// What the intake made of one event (in a batch, the last one's).
pub fn record_intake(span: &Span, product: &str, event: &str, event_id: &str, deliveries: usize) {
    span.record("lookout.product", product);
    span.record("lookout.event", event);
    span.record("lookout.event_id", event_id);
    span.record("lookout.deliveries", deliveries as i64);
}

/// The intake's answer.
pub fn record_status(span: &Span, status: u16) {
    span.record("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.record("otel.status_code", "error");
    }
}

/// Who is being delivered to in one attempt.
#[derive(Debug, Clone, Copy)]
pub struct AttemptOf<'a> {
    pub product: &'a str,
    /// The configured service: its table's name.
    pub instance: &'a str,
    pub service: &'a str,
    /// `Model.action`.
    pub event: &'a str,
    /// 1 for the first attempt of a delivery.
    pub number: u32,
}

/// The span of one delivery attempt: every request it makes carries its `traceparent`.
/// Record how it went with [`record_attempt`].
pub fn attempt_span(of: AttemptOf<'_>) -> Span {
    tracing::info_span!(
        "delivery attempt",
        otel.kind = "client",
        otel.status_code = Empty,
        lookout.product = of.product,
        lookout.configured_service = of.instance,
        lookout.service = of.service,
        lookout.event = of.event,
        lookout.attempt = i64::from(of.number),
        lookout.outcome = Empty,
        lookout.target = Empty,
        http.response.status_code = Empty,
    )
}

/// How an attempt went: its outcome's label, the target's status if one answered, and
/// the target as already redacted for reports.
pub fn record_attempt(span: &Span, outcome: &str, status: Option<u16>, target: Option<&str>) {
    span.record("lookout.outcome", outcome);
    if let Some(status) = status {
        span.record("http.response.status_code", i64::from(status));
    }
    if let Some(target) = target {
        span.record("lookout.target", target);
    }
    let failed = matches!(outcome, "failed" | "disabled");
    span.record("otel.status_code", if failed { "error" } else { "ok" });
}

/// `span`'s context as a `traceparent` value: to send with a request, or to store with
/// an event so that a later attempt continues its trace. `None` when off.
pub fn traceparent(span: &Span) -> Option<String> {
    if !enabled() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The `traceparent` for a request made now, in the current span.
pub fn outgoing_traceparent() -> Option<String> {
    traceparent(&Span::current())
}

/// Makes `span` a child of the span `traceparent` names (a caller's, or one stored with
/// the event). A missing or malformed value leaves `span` where it was.
pub fn continue_trace(span: &Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent.filter(|_| enabled()) else {
        return;
    };
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    if parent.span().span_context().is_valid() {
        // Only fails once the span has started, which it has not.
        let _ = span.set_parent(parent);
    }
}

/// For tests: a subscriber that records spans with a tracer of its own, without an
/// exporter, so that propagation can be checked in process.
#[cfg(test)]
pub(crate) fn test_subscriber(
    provider: &SdkTracerProvider,
) -> impl tracing::Subscriber + Send + Sync {
    ENABLED.store(true, Ordering::Relaxed);
    tracing_subscriber::Registry::default().with(
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("test"))
            .with_filter(our_spans_only()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_s_traceparent_is_continued_and_passed_on() {
        let provider = SdkTracerProvider::builder().build();
        let _guard = tracing::subscriber::set_default(test_subscriber(&provider));
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let span = attempt_span(AttemptOf {
            product: "p",
            instance: "hook",
            service: "webhook",
            event: "Item.created",
            number: 1,
        });
        continue_trace(&span, Some(caller));
        let ours = span.in_scope(outgoing_traceparent).expect("a traceparent");
        let parts: Vec<&str> = ours.split('-').collect();
        assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736", "{ours}");
        assert_ne!(parts[2], "00f067aa0ba902b7", "a span of its own: {ours}");
    }

    #[test]
    fn a_malformed_traceparent_starts_a_trace_of_its_own() {
        let provider = SdkTracerProvider::builder().build();
        let _guard = tracing::subscriber::set_default(test_subscriber(&provider));
        let span = intake_span("/v1/events");
        continue_trace(&span, Some("00-not-a-trace-01"));
        let ours = traceparent(&span).expect("a traceparent");
        assert_eq!(ours.len(), 55, "{ours}");
    }
}
