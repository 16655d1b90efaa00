//! `lookout config defaults`: a complete config file for `serve` and `worker` with every
//! setting at its default, each with what it does. The values come from the defaults the
//! code runs with (never retyped here); a setting whose default is computed (from the
//! deadline, the open-file limit) or absent is shown commented out, with an example.

use std::fmt::Write as _;
use std::time::Duration;

use crate::console::PreviewLimits;
use crate::http::ServeConfig;
use crate::listen::Limits;
use crate::policy::WorkerConfig;
use crate::server_settings::{DEFAULT_DATABASE, DEFAULT_LISTEN};

/// One key of a table: its value at the default (`None`: not set by default, shown
/// commented out with `example`), and what it does.
struct Key {
    name: &'static str,
    value: Option<String>,
    example: &'static str,
    what: &'static str,
}

fn set(name: &'static str, value: impl Into<String>, what: &'static str) -> Key {
    Key {
        name,
        value: Some(value.into()),
        example: "",
        what,
    }
}

fn unset(name: &'static str, example: &'static str, what: &'static str) -> Key {
    Key {
        name,
        value: None,
        example,
        what,
    }
}

fn text(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

fn duration(value: Duration) -> String {
    text(&humantime::format_duration(value).to_string())
}

/// The whole document.
pub fn document() -> String {
    let mut out = String::from(
        "# Lookout's config file for `lookout serve` and `lookout worker`, every setting at\n\
         # its default (`lookout config defaults`). Keep only what you change; a flag of\n\
         # the same name (`max_body` is `--max-body`) overrides the file. Check it with\n\
         # `lookout validate --config FILE`. Services are not set here for `serve`: each\n\
         # product's live in the database (`PUT /v1/products/{id}`, the console).\n",
    );
    table(&mut out, "engine", &engine_keys());
    table(&mut out, "worker", &worker_keys());
    table(&mut out, "server", &server_keys());
    out
}

fn table(out: &mut String, name: &str, keys: &[Key]) {
    let _ = write!(out, "\n[{name}]\n");
    for key in keys {
        for line in key.what.lines() {
            let _ = writeln!(out, "# {line}");
        }
        match &key.value {
            Some(value) => {
                let _ = writeln!(out, "{} = {value}", key.name);
            }
            None => {
                let _ = writeln!(out, "# {} = {}", key.name, key.example);
            }
        }
    }
}

fn engine_keys() -> Vec<Key> {
    let engine = lookout::Settings::default();
    vec![
        set(
            "deadline",
            duration(engine.deadline),
            "The longest one service may take for one event, all its requests included.",
        ),
        set(
            "request_timeout",
            duration(engine.request_timeout),
            "The longest one request may take, from connecting to the last byte of the answer.",
        ),
        set(
            "connect_timeout",
            duration(engine.connect_timeout),
            "The longest to wait for a connection.",
        ),
        set(
            "first_byte_timeout",
            duration(engine.first_byte_timeout),
            "The longest to wait for an answer's status and headers once the request is sent.",
        ),
        set(
            "max_response_bytes",
            engine.max_response_bytes.to_string(),
            "At most this much of an answer is read.",
        ),
        set(
            "attempts",
            engine.attempts.to_string(),
            "Tries per request, the first included: connection errors, timeouts, 429 and\n5xx are tried again; 1 sends once.",
        ),
        unset(
            "retry_budget",
            "\"8s\"",
            "All tries of one request must fit in this (default: in the deadline).",
        ),
        set(
            "backoff",
            duration(engine.backoff),
            "The first pause between tries; it doubles each time, up to max_backoff.",
        ),
        set(
            "max_backoff",
            duration(engine.max_backoff),
            "The longest pause between tries.",
        ),
        set(
            "allow_networks",
            "[]",
            "Networks the SSRF guard lets through (CIDR, e.g. \"10.1.2.0/24\"); by default\nevery loopback, private and other internal address is refused.",
        ),
        set(
            "loopback_only",
            engine.loopback_only.to_string(),
            "Refuse every address that is not loopback (for tests).",
        ),
        set(
            "rate_limits",
            engine.rate_limits.to_string(),
            "Pace requests to services that declare a rate limit (chat webhooks).",
        ),
        unset(
            "proxy",
            "\"http://10.0.0.3:3128\"",
            "An HTTP proxy every outgoing HTTP request goes through (default: none).",
        ),
    ]
}

fn worker_keys() -> Vec<Key> {
    let worker = WorkerConfig::default();
    let delays: Vec<String> = worker
        .schedule
        .delays
        .iter()
        .map(|d| duration(*d))
        .collect();
    let rule = worker.disable_after;
    vec![
        set(
            "retry_schedule",
            format!("[{}]", delays.join(", ")),
            "The waits between attempts; after the last, the delivery is dead-lettered.",
        ),
        set(
            "retry_jitter",
            worker.schedule.jitter.to_string(),
            "How much each wait may vary at random, as a fraction (0.1 = ±10%).",
        ),
        unset(
            "lease",
            "\"50s\"",
            "How long a claimed delivery stays with one process before another may take it\nover; longer than the deadline (default: twice the deadline plus 30s).",
        ),
        set(
            "concurrency",
            worker.concurrency.to_string(),
            "Deliveries attempted at the same time.",
        ),
        set(
            "poll",
            duration(worker.poll),
            "How often the workers look at the queue when nothing wakes them.",
        ),
        set(
            "grace",
            duration(worker.grace),
            "On SIGTERM/SIGINT, how long attempts and requests in flight may take to finish.",
        ),
        set(
            "disable_after",
            format!(
                "{{ failures = {}, over = {} }}",
                rule.failures,
                duration(rule.over)
            ),
            "A target failing this many times over this long is disabled.",
        ),
        unset(
            "retention",
            "\"30d\"",
            "Prune finished events older than this (default: keep them all).",
        ),
        unset(
            "dead_retention",
            "\"90d\"",
            "Prune events with a dead delivery older than this (default: keep until\nredelivered).",
        ),
    ]
}

fn server_keys() -> Vec<Key> {
    let serve = ServeConfig::new("");
    let (limits, previews) = (Limits::default(), PreviewLimits::default());
    vec![
        set(
            "listen",
            text(DEFAULT_LISTEN),
            "Address `serve` listens on.",
        ),
        set(
            "database",
            text(DEFAULT_DATABASE),
            "A SQLite file (created if missing), or a postgres://user@host:port/database URL\n(the password: $PGPASSWORD).",
        ),
        unset(
            "token_file",
            "\"/etc/lookout/token\"",
            "A file holding the admin bearer token (default: $LOOKOUT_TOKEN).",
        ),
        set(
            "workers",
            serve.workers.to_string(),
            "false: `serve` accepts events but sends nothing (workers run elsewhere).",
        ),
        set(
            "max_body",
            serve.max_body.to_string(),
            "Request bodies above this many bytes are refused (413).",
        ),
        set(
            "idempotency_ttl",
            duration(serve.idempotency.ttl),
            "How long an Idempotency-Key is remembered.",
        ),
        unset(
            "idempotency_field",
            "\"attributes.id\"",
            "A dotted path into the payload whose value is the idempotency key of events\nposted without an Idempotency-Key header (default: none).",
        ),
        set(
            "header_timeout",
            duration(limits.header_timeout),
            "A request's line and headers must arrive within this.",
        ),
        set(
            "body_timeout",
            duration(limits.body_timeout),
            "A request's body must arrive within this once its headers have (else 408).",
        ),
        set(
            "idle_timeout",
            duration(limits.idle_timeout),
            "A connection that moves no byte for this long is closed.",
        ),
        unset(
            "max_connections",
            "4096",
            "Connections held at once (default: the open-file limit minus 256).",
        ),
        unset(
            "max_connections_per_client",
            "512",
            "Connections one client address may hold (default: an eighth of\nmax_connections, at least 16).",
        ),
        unset(
            "max_requests_per_client",
            "512",
            "Requests one client may have in flight (default: as\nmax_connections_per_client).",
        ),
        set(
            "trusted_proxies",
            "[]",
            "Reverse proxies (addresses or networks) whose Forwarded / X-Forwarded-For\nheaders name the client.",
        ),
        set(
            "max_header_bytes",
            limits.max_header_bytes.to_string(),
            "Longer request heads are refused (431).",
        ),
        set(
            "max_previews",
            previews.concurrent.to_string(),
            "Console previews computed at once, in all.",
        ),
        set(
            "max_previews_per_client",
            previews.per_client.to_string(),
            "Previews at once for one console session or client address.",
        ),
        set(
            "preview_max_services",
            previews.max_services.to_string(),
            "[services.*] tables one preview may hold.",
        ),
        set(
            "preview_max_renders",
            previews.max_renders.to_string(),
            "Event × service comparisons one preview makes at most.",
        ),
        set(
            "preview_timeout",
            duration(previews.timeout),
            "How long one preview may compare.",
        ),
        set(
            "max_link_ttl",
            duration(serve.max_link_ttl),
            "The longest a portal link may last: serve refuses to open a longer one,\n`lookout portal-link` to make one.",
        ),
        unset(
            "metrics_listen",
            "\"127.0.0.1:9464\"",
            "`worker`: serve GET /metrics and /healthz here (default: not served).",
        ),
    ]
}
