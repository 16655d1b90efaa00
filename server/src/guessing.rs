//! Slows down guessing tokens: wrong API tokens and console sign-ins are counted per
//! client address (the trusted-proxy-aware one, an IPv6 client by its /64); past
//! [`MAX_FAILURES`] in a window, that address is answered `429` until the window ends,
//! whatever token it sends. Only the address is held back, never a token: an attacker
//! elsewhere cannot lock the right token's holder out, and a right token sent from any
//! other address passes at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clients::client_key;
use crate::metrics::Metrics;

/// Wrong tokens one address may send in a [`WINDOW`]: a person mistyping never gets
/// near it; a guesser is held to one try every two seconds.
pub const MAX_FAILURES: u32 = 30;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most; past it, those whose window has ended are forgotten.
const REMEMBERED: usize = 65_536;

/// Where a wrong token was given, for the metrics.
#[derive(Debug, Clone, Copy)]
pub enum Door {
    Api,
    Console,
}

impl Door {
    pub fn label(self) -> &'static str {
        match self {
            Door::Api => "api",
            Door::Console => "console",
        }
    }
}

/// The failures of each address in its current window.
pub struct Guesses {
    failures: Mutex<HashMap<IpAddr, Window>>,
    metrics: Arc<Metrics>,
}

#[derive(Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

impl Guesses {
    pub fn new(metrics: Arc<Metrics>) -> Guesses {
        Guesses {
            failures: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// How long `client` must wait before a token from it is looked at again, if it has
    /// used up its failures (counted in `lookout_refused_total{reason="wrong_tokens"}`).
    pub fn wait_for(&self, client: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let failures = self.lock();
        let window = failures.get(&client_key(client))?;
        let left = WINDOW.checked_sub(now.duration_since(window.started))?;
        if window.failures < MAX_FAILURES || left.is_zero() {
            return None;
        }
        self.metrics.refused("wrong_tokens");
        Some(left)
    }

    /// Counts a wrong token from `client` (in `lookout_auth_failures_total{door}`).
    pub fn failed(&self, client: IpAddr, door: Door) {
        self.metrics.auth_failed(door.label());
        let now = Instant::now();
        let mut failures = self.lock();
        if failures.len() >= REMEMBERED {
            failures.retain(|_, window| now.duration_since(window.started) < WINDOW);
        }
        let window = failures.entry(client_key(client)).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now.duration_since(window.started) >= WINDOW {
            *window = Window {
                started: now,
                failures: 0,
            };
        }
        window.failures = window.failures.saturating_add(1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Window>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whole seconds to wait, at least one (for `Retry-After`).
pub fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_past_its_failures_waits_and_others_do_not() {
        let guesses = Guesses::new(Arc::new(Metrics::new()));
        let guesser: IpAddr = "127.0.0.7".parse().unwrap();
        let neighbour: IpAddr = "127.0.0.8".parse().unwrap();
        for _ in 0..MAX_FAILURES - 1 {
            guesses.failed(guesser, Door::Api);
        }
        assert_eq!(guesses.wait_for(guesser), None);
        guesses.failed(guesser, Door::Console);
        let wait = guesses.wait_for(guesser).expect("held back");
        assert!(wait <= WINDOW && wait > WINDOW / 2, "{wait:?}");
        assert_eq!(guesses.wait_for(neighbour), None);
        // One IPv6 client is its /64, whichever address of it it uses.
        let v6: IpAddr = "::1".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            guesses.failed(v6, Door::Api);
        }
        assert!(guesses.wait_for("::2".parse().unwrap()).is_some());
    }
}
