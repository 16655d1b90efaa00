//! Lookout's durable server, `lookout serve` and `lookout worker`: events are accepted
//! over HTTP into an outbox ([`store`]: SQLite embedded, or PostgreSQL shared by many
//! processes), and [`worker`]s deliver them through the engine, on a retry schedule that
//! survives restarts.
//!
//! Layout: [`http`] (the HTTP API, a file per job), [`commit`] (its group commit), [`routing`] (which services an event goes to), [`listen`] (its connections and their limits),
//! [`clients`] (who a request comes from, behind trusted proxies too; counts per client),
//! [`store`] (the outbox), [`lanes`] (how claims share the workers fairly), [`worker`]
//! (claims, records), [`attempt`] (one attempt and what is recorded of it), [`policy`] (the retry schedule,
//! lease and the rest of the workers' settings, from the config file and flags),
//! [`server_settings`] (the `[server]` table: listener, database, limits),
//! [`metrics`] (`/metrics`), [`tokens`] (API tokens and their scopes), [`replay`] (stored
//! events through a new config, compared and resent), [`console`] (the web console at
//! `/ui`).

pub mod api;
pub mod attempt;
pub mod clients;
pub mod clock;
pub mod commit;
pub mod config_defaults;
pub mod console;
#[cfg(test)]
mod echo;
pub mod guessing;
pub mod health;
pub mod http;
pub mod lanes;
pub mod listen;
pub mod metrics;
#[cfg(test)]
mod panics;
pub mod policy;
pub mod replay;
pub mod retention;
pub mod routing;
pub mod server_settings;
pub mod shaping;
pub mod store;
pub mod tokens;
pub mod worker;
