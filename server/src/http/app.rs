//! What every handler of the API shares: the store, the group commit, the routes and
//! the rest of one `serve` process's state.

use std::sync::Arc;

use tokio::sync::Notify;

use super::config::IdempotencyConfig;
use crate::commit::Committer;
use crate::guessing::Guesses;
use crate::metrics::Metrics;
use crate::routing::RouteCache;
use crate::store::Store;
use lookout::delivery::ssrf::Guard;

#[derive(Clone)]
pub(crate) struct App {
    pub(super) store: Arc<dyn Store>,
    pub(super) committer: Committer,
    pub(super) routes: Arc<RouteCache>,
    pub(super) idempotency: Arc<IdempotencyConfig>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) wake: Arc<Notify>,
    /// SHA-256 of the token: comparing digests keeps the comparison constant-time
    /// whatever the lengths.
    pub(super) token_digest: [u8; 32],
    /// The workers' SSRF guard: targets it will refuse are refused when configured.
    pub(super) guard: Guard,
    /// Wrong tokens per client address, shared with the console's sign-in.
    pub(super) guesses: Arc<Guesses>,
}
