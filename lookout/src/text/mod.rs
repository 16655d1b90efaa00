//! Text: what an event says, and how it is written in a markup. Generic markups only;
//! a platform with its own markup defines its [`Dialect`] and renderer in its service
//! file, from the building blocks here.
//!
//! - [`wording`]: Sprint.ly's words in no markup (names, excerpts, the one-line
//!   messages, colours, report links);
//! - [`message`]: [`Message`], the platform-neutral message (headline, title, quote,
//!   fields, list, colour), and its renderings as HTML, Markdown and plain text;
//! - [`markup`]: [`Rich`] text (text with links) and the [`Dialect`]s it is written in:
//!   plain, HTML, CommonMark, mrkdwn, or one a service defines;
//! - [`template`]: an operator's templates for the parts of a [`Message`];
//! - [`escape`]: the escaping primitives dialects are made of;
//! - [`attachment`]: Slack-style attachments, the de-facto format several platforms take;
//! - [`budget`]: cutting markup to a platform's length limit without breaking it.

pub mod attachment;
pub mod budget;
pub mod digest;
pub mod escape;
pub mod markup;
pub mod message;
pub mod template;
pub mod wording;

pub use markup::{Dialect, Rich, Span};
pub use message::{Field, Message};
