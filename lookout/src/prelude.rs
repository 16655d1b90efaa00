//! What a service file needs, in one line: `use lookout::prelude::*;`.
//!
//! The trait and what `build` takes and returns, the option schema, the shared wording
//! and markups ([`Message`], [`Dialect`], [`escape`], [`wording`], [`budget`]), the
//! payload types, URL joins ([`endpoint`]) and `serde_json`'s `json!`. Anything rarer is
//! imported by its path as usual.

pub use crate::delivery::ratelimit::RateLimit;
pub use crate::delivery::{Answers, Means, Verdict, Wait};
pub use crate::error::BuildError;
pub use crate::job::Job;
pub use crate::limits::{Limit, Limits, Unit};
pub use crate::options::{Kind, OptionSpec, Schema};
pub use crate::payload::{Attributes, Event, Item};
pub use crate::request::{HttpRequest, Outgoing, endpoint};
pub use crate::service::{Category, Registered, Service};
pub use crate::text::{Dialect, Field, Message, Rich, budget, escape, wording};
pub use serde_json::{Map, Value, json};
