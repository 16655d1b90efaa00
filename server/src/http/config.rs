//! How `serve` runs: its settings, from the defaults, the config file's `[server]`
//! table and the flags.

use std::time::Duration;

use crate::console::{self, PreviewLimits};
use crate::listen::Limits;
use crate::policy::WorkerConfig;
use crate::server_settings::ServerSettings;
use lookout::settings::Settings;

/// How `serve` runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The bearer token every `/v1` request must carry.
    pub token: String,
    /// Larger request bodies are refused with 413.
    pub max_body: usize,
    /// The engine settings (timeouts, deadline) the workers send with.
    pub settings: Settings,
    pub worker: WorkerConfig,
    /// Whether this process also runs workers (false: intake only).
    pub workers: bool,
    /// Timeouts and caps on the intake's connections.
    pub limits: Limits,
    pub idempotency: IdempotencyConfig,
    /// The limits on the console's previews.
    pub previews: PreviewLimits,
    /// A portal link lasting longer than this is refused.
    pub max_link_ttl: Duration,
}

/// How repeated POSTs are recognised (docs/SERVING.md, "Idempotent intake").
#[derive(Debug, Clone)]
pub struct IdempotencyConfig {
    /// How long a key is remembered.
    pub ttl: Duration,
    /// A dotted path into the payload (`attributes.id`) whose value is the key of an
    /// event posted without an `Idempotency-Key` header (and of every event of a batch).
    pub field: Option<String>,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        IdempotencyConfig {
            ttl: Duration::from_secs(24 * 60 * 60),
            field: None,
        }
    }
}

impl ServeConfig {
    pub fn new(token: impl Into<String>) -> Self {
        ServeConfig {
            token: token.into(),
            max_body: 1024 * 1024,
            settings: Settings::default(),
            worker: WorkerConfig::default(),
            workers: true,
            limits: Limits::default(),
            idempotency: IdempotencyConfig::default(),
            previews: PreviewLimits::default(),
            max_link_ttl: console::MAX_LINK_TTL,
        }
    }

    /// These settings (their defaults, the workers' decided) with what `server` sets:
    /// the config file's `[server]` table with the flags over it.
    pub fn apply(&mut self, server: &ServerSettings) {
        if let Some(max) = server.max_body {
            self.max_body = max;
        }
        if let Some(workers) = server.workers {
            self.workers = workers;
        }
        if let Some(ttl) = server.idempotency_ttl {
            self.idempotency.ttl = ttl;
        }
        if let Some(field) = &server.idempotency_field {
            self.idempotency.field = Some(field.clone());
        }
        self.limits = server.limits(self.worker.grace);
        self.previews = server.previews();
        self.max_link_ttl = server.max_link_ttl();
    }
}
