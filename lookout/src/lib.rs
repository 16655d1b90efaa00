//! Lookout: delivers a product's events to outside services.
//!
//! The product hands over a payload (four keys: `action`, `product`, `attributes`,
//! `model`); the engine sends it to every enabled service at once and reports, per
//! service, what happened.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // In a binary, also `use services as _;` so that every service is linked in.
//! let config = lookout::Config::load("lookout.toml")?;
//! let engine = lookout::Engine::new(config)?;
//! let event = lookout::Event::parse(&std::fs::read_to_string("event.json")?)?;
//! let report = engine.dispatch(&event).await;
//! println!("{}", serde_json::to_string_pretty(&report)?);
//! # Ok(()) }
//! ```
//!
//! Layout: [`payload`] (the event), [`service`] (the trait and the registry),
//! [`options`] (schemas and validation), [`config`], [`dispatch`] (the engine),
//! [`delivery`] (sending, with [`retry`], [`ratelimit`] and the [`ssrf`] guard),
//! [`request`] (what services build), [`email`] (SMTP), [`redact`], [`docs`].

pub mod config;
pub mod delivery;
pub mod dispatch;
pub mod docs;
#[cfg(test)]
mod echo;
pub mod email;
pub mod format;
pub mod message;
#[cfg(feature = "serve")]
pub mod metrics;
pub mod options;
pub mod payload;
pub mod ratelimit;
pub mod redact;
pub mod render;
pub mod request;
pub mod retry;
#[cfg(feature = "serve")]
pub mod server;
pub mod service;
pub mod settings;
pub mod signing;
pub mod ssrf;
#[cfg(feature = "serve")]
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "serve")]
pub mod worker;

pub use config::{Config, ConfigError, Instance};
pub use delivery::{Attempt, Delivery, Outcome, Transport};
pub use dispatch::{Engine, Preview, Report, ServiceResult};
pub use message::{Message, Rich};
pub use options::{Kind, OptionSpec, Options, Schema};
pub use payload::{Attributes, Event, PayloadError};
pub use ratelimit::RateLimit;
pub use request::{Body, HttpRequest, Method, RequestPreview};
pub use service::{BuildError, Job, Outgoing, Registration, SERVICES, Service, catalogue};
pub use settings::Settings;

// Used by the `service!` macro from the services crate.
#[doc(hidden)]
pub use async_trait::async_trait;
#[doc(hidden)]
pub use linkme;
