//! Per-target rate limits, so a burst of events stays within what a target accepts.
//!
//! A service declares its limit with [`Service::rate_limit`](crate::Service::rate_limit)
//! (none by default: full speed). Chat webhooks take about one message per second per
//! channel, with short bursts allowed; [`RateLimit::CHAT_WEBHOOK`] is that. The engine
//! then spaces the requests it sends to each *target* (see [`Scope`]): a burst to one
//! Slack URL is paced, while other URLs, other services and services without a limit
//! run at full speed. Each try counts, retries included. A request that cannot get a
//! slot within its time budget fails (`rate limited: …`) rather than waiting forever.
//!
//! The limiter lives in the engine's [`Transport`](crate::Transport), shared by every
//! dispatch of one engine (one process). Several processes sending to one target each
//! keep their own pace.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota};
use url::Url;

/// What one target is allowed: `burst` requests at once, then one every `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimit {
    pub every: Duration,
    pub burst: u32,
    pub scope: Scope,
}

/// What counts as one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Scheme, host, port and path (not the query): one incoming-webhook URL is one
    /// channel (Slack, Discord, Teams…), and API endpoints whose path holds the bot
    /// token (Telegram) are one bot.
    Url,
    /// Scheme, host and port: every request to one server shares the limit (an API
    /// limited per account, whatever the path).
    Origin,
}

impl RateLimit {
    /// About one message per second per webhook URL, bursts of up to 3: what Slack and
    /// most chat webhooks accept.
    pub const CHAT_WEBHOOK: RateLimit = RateLimit::every(Duration::from_secs(1)).burst(3);

    /// One request per `every`, per URL, no burst.
    pub const fn every(every: Duration) -> RateLimit {
        RateLimit {
            every,
            burst: 1,
            scope: Scope::Url,
        }
    }

    /// `n` requests per second, per URL.
    pub const fn per_second(n: u32) -> RateLimit {
        RateLimit::every(Duration::from_nanos(
            1_000_000_000 / if n == 0 { 1 } else { n } as u64,
        ))
    }

    /// Allows `burst` requests at once before pacing starts (at least 1).
    pub const fn burst(mut self, burst: u32) -> RateLimit {
        self.burst = if burst == 0 { 1 } else { burst };
        self
    }

    /// Counts every request to the same server (scheme, host, port) as one target.
    pub const fn per_origin(mut self) -> RateLimit {
        self.scope = Scope::Origin;
        self
    }

    /// One line for the docs: "at most 1 request per 1s per URL, in bursts of up to 3".
    pub fn describe(&self) -> String {
        let target = match self.scope {
            Scope::Url => "webhook URL (scheme, host and path)",
            Scope::Origin => "server (scheme, host and port)",
        };
        let burst = if self.burst > 1 {
            format!(", in bursts of up to {}", self.burst)
        } else {
            String::new()
        };
        format!(
            "at most 1 request every {} per {target}{burst}",
            crate::delivery::human_duration(self.every)
        )
    }

    /// The key requests to one target share. Never printed: a URL path may hold a key.
    fn key(&self, url: &Url) -> String {
        self.scope.key(url)
    }

    fn quota(&self) -> Quota {
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(self.every.max(Duration::from_nanos(1)))
            .expect("a non-zero period")
            .allow_burst(burst)
    }
}

impl Scope {
    /// What requests to `url` count as one target by. Never printed: a URL path may
    /// hold a key.
    pub fn key(self, url: &Url) -> String {
        let origin = match url.origin() {
            origin @ url::Origin::Tuple(..) => origin.ascii_serialization(),
            // `smtp://host:port` has no web origin: the server is the target.
            url::Origin::Opaque(_) => format!(
                "{}://{}:{}",
                url.scheme(),
                url.host_str().unwrap_or_default(),
                url.port().unwrap_or_default()
            ),
        };
        match self {
            Scope::Url => format!("{origin}{}", url.path()),
            Scope::Origin => origin,
        }
    }
}

/// Why a request got no slot in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limited: no slot for this target within the time budget ({})", .limit.describe())]
pub struct NoSlot {
    pub limit: RateLimit,
    /// How long until the next slot.
    pub wait: Duration,
}

/// The limiters of one engine: one keyed limiter per distinct limit, one state per
/// target inside it.
#[derive(Default)]
pub struct Limiters {
    by_limit: Mutex<HashMap<RateLimit, Arc<DefaultKeyedRateLimiter<String>>>>,
    uses: AtomicU64,
}

/// How often (in slots handed out) idle targets are forgotten.
const FORGET_EVERY: u64 = 1024;

impl Limiters {
    /// Waits for a slot to send to `url` under `limit`, until `until` at the latest.
    /// Returns how long it waited.
    pub async fn wait(
        &self,
        limit: &RateLimit,
        url: &Url,
        until: Instant,
    ) -> Result<Duration, NoSlot> {
        let limiter = self.limiter(limit);
        let key = limit.key(url);
        let started = Instant::now();
        loop {
            let wait = match limiter.check_key(&key) {
                Ok(()) => return Ok(started.elapsed()),
                Err(not_until) => not_until.wait_time_from(limiter.clock().now()),
            };
            if Instant::now() + wait > until {
                return Err(NoSlot {
                    limit: *limit,
                    wait,
                });
            }
            tokio::time::sleep(wait).await;
        }
    }

    fn limiter(&self, limit: &RateLimit) -> Arc<DefaultKeyedRateLimiter<String>> {
        let limiter = self
            .by_limit
            .lock()
            .expect("limiter map")
            .entry(*limit)
            .or_insert_with(|| Arc::new(DefaultKeyedRateLimiter::keyed(limit.quota())))
            .clone();
        // A long-running engine meets many targets: now and then, drop the state of
        // those whose limit has fully recovered (they are as good as new).
        if self.uses.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        limiter
    }
}

impl std::fmt::Debug for Limiters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let limits = self.by_limit.lock().map(|m| m.len()).unwrap_or(0);
        write!(f, "Limiters({limits} limits)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn keys_by_url_or_origin() {
        let limit = RateLimit::CHAT_WEBHOOK;
        assert_eq!(
            limit.key(&url("https://hooks.example.com/services/A?x=1")),
            "https://hooks.example.com/services/A"
        );
        assert_eq!(
            limit
                .per_origin()
                .key(&url("https://api.example.com:8443/a/b")),
            "https://api.example.com:8443"
        );
        assert_eq!(
            limit.key(&url("smtp://smtp.example.com:587?tls=required")),
            "smtp://smtp.example.com:587"
        );
    }

    #[test]
    fn describes_itself() {
        assert_eq!(
            RateLimit::CHAT_WEBHOOK.describe(),
            "at most 1 request every 1s per webhook URL (scheme, host and path), in bursts of up to 3"
        );
        assert_eq!(RateLimit::per_second(4).every, Duration::from_millis(250));
        assert_eq!(RateLimit::per_second(0).every, Duration::from_secs(1));
    }

    #[tokio::test]
    async fn paces_one_target_and_leaves_others_alone() {
        let limiters = Limiters::default();
        let limit = RateLimit::every(Duration::from_millis(100)).burst(2);
        let until = Instant::now() + Duration::from_secs(5);
        let a = url("http://a.test/hook");
        let b = url("http://b.test/hook");
        let started = Instant::now();
        for _ in 0..4 {
            limiters.wait(&limit, &a, until).await.unwrap();
        }
        // Two at once, then one per 100ms.
        assert!(
            started.elapsed() >= Duration::from_millis(190),
            "{:?}",
            started.elapsed()
        );
        let other = Instant::now();
        limiters.wait(&limit, &b, until).await.unwrap();
        assert!(other.elapsed() < Duration::from_millis(50));
    }

    #[tokio::test]
    async fn gives_up_at_the_budget() {
        let limiters = Limiters::default();
        let limit = RateLimit::every(Duration::from_secs(10));
        let a = url("http://a.test/hook");
        let until = Instant::now() + Duration::from_millis(100);
        limiters.wait(&limit, &a, until).await.unwrap();
        let err = limiters.wait(&limit, &a, until).await.unwrap_err();
        assert!(
            err.to_string().starts_with("rate limited: no slot"),
            "{err}"
        );
    }
}
