//! The config file's `[server]` table: how `lookout serve` and `lookout worker` run —
//! where they listen, which database, the token file, the request path's timeouts and
//! caps, idempotency, previews, the worker's metrics listener. Every key is optional and
//! has a flag of the same name (`max_body` is `--max-body`) that overrides it; what
//! neither sets keeps the default `lookout config defaults` prints.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clients::{IpNet, TrustedProxies};
use crate::console::PreviewLimits;
use crate::listen::{self, Limits};

/// Where `lookout serve` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The store unless told otherwise: a SQLite file in the working directory.
pub const DEFAULT_DATABASE: &str = "lookout.db";

/// The `[server]` table; `None` is "not set here".
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: Option<String>,
    pub database: Option<String>,
    pub token_file: Option<PathBuf>,
    /// `false`: accept events but send nothing (`--no-workers`).
    pub workers: Option<bool>,
    pub max_body: Option<usize>,
    #[serde(default, with = "crate::policy::humantime_serde_opt")]
    pub idempotency_ttl: Option<Duration>,
    pub idempotency_field: Option<String>,
    #[serde(default, with = "crate::policy::humantime_serde_opt")]
    pub header_timeout: Option<Duration>,
    #[serde(default, with = "crate::policy::humantime_serde_opt")]
    pub body_timeout: Option<Duration>,
    #[serde(default, with = "crate::policy::humantime_serde_opt")]
    pub idle_timeout: Option<Duration>,
    pub max_connections: Option<usize>,
    pub max_connections_per_client: Option<usize>,
    pub max_requests_per_client: Option<usize>,
    #[serde(default, deserialize_with = "networks")]
    pub trusted_proxies: Option<Vec<IpNet>>,
    pub max_header_bytes: Option<usize>,
    pub max_previews: Option<usize>,
    pub max_previews_per_client: Option<usize>,
    pub preview_max_services: Option<usize>,
    pub preview_max_renders: Option<usize>,
    #[serde(default, with = "crate::policy::humantime_serde_opt")]
    pub preview_timeout: Option<Duration>,
    /// The longest a portal link may last (`lookout portal-link --ttl`).
    #[serde(default, with = "crate::policy::humantime_serde_opt")]
    pub max_link_ttl: Option<Duration>,
    /// `lookout worker`'s `/metrics` and `/healthz` listener.
    pub metrics_listen: Option<String>,
}

/// The counts that must be at least 1 (0 would refuse everything).
const AT_LEAST_ONE: &[&str] = &[
    "max_body",
    "max_connections",
    "max_connections_per_client",
    "max_requests_per_client",
    "max_header_bytes",
    "max_previews",
    "max_previews_per_client",
    "preview_max_services",
    "preview_max_renders",
];

impl ServerSettings {
    /// The `[server]` table of a config file's other sections (none: nothing set).
    pub fn from_sections(
        sections: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<ServerSettings, String> {
        let Some(table) = sections.get("server") else {
            return Ok(ServerSettings::default());
        };
        let settings: ServerSettings = serde_path_to_error::deserialize(table)
            .map_err(|e| format!("server.{}: {}", e.path(), e.inner()))?;
        settings
            .check()
            .map_err(|(key, what)| format!("server.{key}: {what}"))?;
        Ok(settings)
    }

    /// Each setting from `flags` where they set it, else from here (flags over the file).
    pub fn overridden_by(self, flags: ServerSettings) -> ServerSettings {
        ServerSettings {
            listen: flags.listen.or(self.listen),
            database: flags.database.or(self.database),
            token_file: flags.token_file.or(self.token_file),
            workers: flags.workers.or(self.workers),
            max_body: flags.max_body.or(self.max_body),
            idempotency_ttl: flags.idempotency_ttl.or(self.idempotency_ttl),
            idempotency_field: flags.idempotency_field.or(self.idempotency_field),
            header_timeout: flags.header_timeout.or(self.header_timeout),
            body_timeout: flags.body_timeout.or(self.body_timeout),
            idle_timeout: flags.idle_timeout.or(self.idle_timeout),
            max_connections: flags.max_connections.or(self.max_connections),
            max_connections_per_client: flags
                .max_connections_per_client
                .or(self.max_connections_per_client),
            max_requests_per_client: flags
                .max_requests_per_client
                .or(self.max_requests_per_client),
            trusted_proxies: flags.trusted_proxies.or(self.trusted_proxies),
            max_header_bytes: flags.max_header_bytes.or(self.max_header_bytes),
            max_previews: flags.max_previews.or(self.max_previews),
            max_previews_per_client: flags
                .max_previews_per_client
                .or(self.max_previews_per_client),
            preview_max_services: flags.preview_max_services.or(self.preview_max_services),
            preview_max_renders: flags.preview_max_renders.or(self.preview_max_renders),
            preview_timeout: flags.preview_timeout.or(self.preview_timeout),
            max_link_ttl: flags.max_link_ttl.or(self.max_link_ttl),
            metrics_listen: flags.metrics_listen.or(self.metrics_listen),
        }
    }

    pub fn listen(&self) -> &str {
        self.listen.as_deref().unwrap_or(DEFAULT_LISTEN)
    }

    pub fn database(&self) -> &str {
        self.database.as_deref().unwrap_or(DEFAULT_DATABASE)
    }

    /// The cap on a portal link's TTL: `serve` refuses to open a longer link,
    /// `lookout portal-link` to make one.
    pub fn max_link_ttl(&self) -> Duration {
        self.max_link_ttl.unwrap_or(crate::console::MAX_LINK_TTL)
    }

    /// The request path's limits; `grace` is how long open requests get on shutdown.
    pub fn limits(&self, grace: Duration) -> Limits {
        let defaults = Limits::default();
        let ceiling = defaults.max_connections;
        let max_connections = self.max_connections.unwrap_or(ceiling);
        if max_connections > ceiling {
            tracing::warn!(
                "max_connections {max_connections} leaves fewer than {} of the {} open \
                 files to the store and the workers",
                listen::FD_RESERVE,
                listen::open_file_limit()
            );
        }
        let per_client = self
            .max_connections_per_client
            .unwrap_or_else(|| listen::default_per_client(max_connections));
        Limits {
            header_timeout: self.header_timeout.unwrap_or(defaults.header_timeout),
            body_timeout: self.body_timeout.unwrap_or(defaults.body_timeout),
            idle_timeout: self.idle_timeout.unwrap_or(defaults.idle_timeout),
            max_connections,
            max_connections_per_client: per_client,
            max_requests_per_client: self.max_requests_per_client.unwrap_or(per_client),
            trusted_proxies: TrustedProxies::new(self.trusted_proxies.clone().unwrap_or_default()),
            max_header_bytes: self.max_header_bytes.unwrap_or(defaults.max_header_bytes),
            drain: grace,
        }
    }

    pub fn previews(&self) -> PreviewLimits {
        let defaults = PreviewLimits::default();
        PreviewLimits {
            concurrent: self.max_previews.unwrap_or(defaults.concurrent),
            per_client: self.max_previews_per_client.unwrap_or(defaults.per_client),
            max_services: self.preview_max_services.unwrap_or(defaults.max_services),
            max_renders: self.preview_max_renders.unwrap_or(defaults.max_renders),
            timeout: self.preview_timeout.unwrap_or(defaults.timeout),
        }
    }

    /// The first setting that cannot be used: its key and why.
    fn check(&self) -> Result<(), (&'static str, String)> {
        let counts = serde_json::to_value(self).unwrap_or_default();
        for key in AT_LEAST_ONE {
            if counts[key].as_u64() == Some(0) {
                return Err((key, "must be at least 1".into()));
            }
        }
        for (key, text) in [
            ("listen", &self.listen),
            ("database", &self.database),
            ("metrics_listen", &self.metrics_listen),
            ("idempotency_field", &self.idempotency_field),
        ] {
            if text.as_deref().is_some_and(|t| t.trim().is_empty()) {
                return Err((key, "is empty".into()));
            }
        }
        Ok(())
    }
}

/// The `[server]` table, checked as `serve` and `worker` will read it.
pub fn check_server(
    table: &serde_json::Value,
    _engine: Option<&lookout::Settings>,
) -> Result<(), lookout::config::Problem> {
    use lookout::config::Problem;
    let settings: ServerSettings = serde_path_to_error::deserialize(table)
        .map_err(|e| Problem::in_table("server", &e.path().to_string(), e.inner()))?;
    settings
        .check()
        .map_err(|(key, what)| Problem::in_table("server", key, what))
}

/// The table this one replaced says where its keys went.
pub fn check_renamed_serve(
    _table: &serde_json::Value,
    _engine: Option<&lookout::Settings>,
) -> Result<(), lookout::config::Problem> {
    Err(lookout::config::Problem::in_table(
        "serve",
        "",
        "the [serve] table is now [server] (same keys, and every flag of `lookout serve`)",
    ))
}

fn networks<'de, D>(deserializer: D) -> Result<Option<Vec<IpNet>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let texts = Vec::<String>::deserialize(deserializer)?;
    texts
        .iter()
        .map(|text| crate::clients::parse_network(text))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
        .map_err(serde::de::Error::custom)
}
