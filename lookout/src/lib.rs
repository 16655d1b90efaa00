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
//! [`delivery`] (sending, with its retry, rate limit, SSRF guard, signing and SMTP),
//! [`request`] (what services build), [`limits`] (what platforms accept, and the
//! fitting pass), [`text`] (wording, messages and markups),
//! [`redact`], [`docs`]; [`prelude`] is what a service file imports.

pub mod config;
pub mod delivery;
pub mod dispatch;
pub mod docs;
pub mod error;
mod field_schemas;
pub mod job;
pub mod limits;
pub mod options;
pub mod payload;
pub mod prelude;
pub mod redact;
pub mod request;
pub mod samples;
pub mod schemas;
pub mod service;
pub mod settings;
pub mod shaping;
pub mod telemetry;
pub mod text;

pub use config::{Config, ConfigError, Instance};
pub use delivery::ratelimit::RateLimit;
pub use delivery::{Answers, Means, Verdict, Wait};
pub use delivery::{Attempt, Delivery, Outcome, Transport};
pub use dispatch::{Engine, Preview, Report, ServiceResult};
pub use error::BuildError;
pub use job::Job;
pub use limits::{Limit, Limits, Unit};
pub use options::{Kind, OptionSpec, Options, Schema};
pub use payload::{Attributes, Event, PayloadError};
pub use request::{Body, HttpRequest, Method, Outgoing, RequestPreview};
pub use service::{Category, Registered, Registration, SERVICES, Service, catalogue};
pub use settings::Settings;
pub use text::{Dialect, Message, Rich};

// Used by the `service!` macro from the services crate.
#[doc(hidden)]
pub use async_trait::async_trait;
#[doc(hidden)]
pub use linkme;
