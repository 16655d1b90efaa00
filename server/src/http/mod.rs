//! `lookout serve`: the HTTP intake in front of the outbox, and the workers behind it.
//!
//! | route | what |
//! | --- | --- |
//! | `POST /v1/products/{id}/events` | accept an event for a product (202 + event id) |
//! | `POST /v1/events` | the same; the product is `?product=ID`, else the payload's `product.id` |
//! | `POST /v1/events/batch` | up to [`MAX_BATCH_EVENTS`] events (a JSON array, or NDJSON), one result each |
//! | `GET/PUT/DELETE /v1/products/{id}`, `GET /v1/products` | a product's services |
//! | `GET /v1/services` | the catalogue |
//! | `GET/POST /v1/tokens`, `DELETE /v1/tokens/{id}` | API tokens ([`tokens`](crate::tokens)) |
//! | `GET /v1/deliveries`, `GET /v1/deliveries/{id}` | deliveries (`?status=&service=&product=&limit=`, `limit` at most 10,000), one with its attempts |
//! | `POST /v1/deliveries/{id}/redeliver` | make a delivery due again now |
//! | `GET /healthz`, `GET /metrics` | health (the store can commit), Prometheus text |
//! | `GET /v1/openapi.json`, `GET /v1/asyncapi.json` | the contracts ([`api`](crate::api)), no token |
//! | `/ui/…` | the web console ([`console`](crate::console)): its own sign-in and sessions |
//!
//! Every `/v1` route but the contracts needs `Authorization: Bearer <token>` (401 without a valid one):
//! events take an admin token or an ingest token naming the product; every other `/v1`
//! route takes an admin token (403 otherwise). An event is answered 202 only once it and
//! its deliveries are committed: from then on it is the workers' job. Events arriving
//! together share one commit ([`commit`](crate::commit)). An `Idempotency-Key` (or the
//! configured payload field, [`IdempotencyConfig`]) makes a repeated POST get the first
//! answer instead of a second event.
//!
//! One file per job: [`serve`] (start-up, the routes, shut-down), [`auth`] (tokens),
//! [`events`] (the intake itself), [`admin`] (products, tokens, deliveries),
//! [`operations`] (`/healthz`, `/metrics`), [`openapi`] (the contracts), beside what
//! they share: [`config`] (how `serve` runs), [`app`] (the handlers' state) and
//! [`answer`] (what they answer).

mod admin;
mod answer;
mod app;
mod auth;
mod config;
mod events;
mod openapi;
mod operations;
mod serve;

pub use config::{IdempotencyConfig, ServeConfig};
pub use events::MAX_BATCH_EVENTS;
pub use openapi::openapi_json;
pub use serve::{run, run_workers, shutdown_signal};
