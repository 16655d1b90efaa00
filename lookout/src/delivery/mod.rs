//! Sending requests: the engine's one way out ([`Transport`]), the delivery policy
//! around it, and what a delivery reports.
//!
//! There is one pipeline. Every event leaves for a service through
//! [`Service::send`](crate::Service::send), whose default builds the requests and hands
//! them to [`Transport::send_all`]; the library, `lookout send`, `lookout test` and the
//! workers of `lookout serve` all call it (through
//! [`run_service`](crate::dispatch::run_service), which owns the deadline and catches
//! panics). HTTP requests, emails and broker publishes ([`publish`]) go through the
//! same policy and the same retry loop; only the one try differs. What differs between callers is the transport's
//! mode: in process it retries within the budget; the durable worker's
//! ([`Transport::one_try`]) tries each request once, skips the targets that already
//! answered, and records each try for the worker's own schedule.

pub mod answers;
pub mod client_tls;
pub mod platform;
pub mod publish;
pub mod ratelimit;
pub mod report;
pub mod retry;
pub mod smtp;
pub mod ssrf;
pub(crate) mod tls;

pub use answers::Verdict;
pub use answers::{Answer, Answers, Code, Means, Wait};
pub use platform::Platform;
pub use report::{Delivery, Outcome, human_duration, user_agent};

use std::borrow::Cow;
use std::collections::HashSet;
use std::error::Error as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;

use crate::job::Job;
use crate::redact::Redactor;
use crate::request::email::Email;
use crate::request::publish::Publish;
use crate::request::{HttpRequest, Outgoing};
use crate::settings::Settings;
use ratelimit::{Limiters, RateLimit};
use retry::Retry;
use ssrf::{Blocked, Guard, GuardedResolver};

/// The engine's way out: one pooled HTTP client and the delivery policy every service
/// gets, for HTTP requests, emails and broker publishes alike (see the module docs of
/// [`retry`], [`ratelimit`], [`ssrf`], [`smtp`] and [`publish`]):
///
/// - the SSRF guard: only public addresses, checked once, connected to as checked;
/// - timeouts: connect, first byte (the answer's headers), and the whole request;
/// - a cap on how much of an answer is read (`max_response_bytes`);
/// - retries with backoff, within a time budget, honouring `Retry-After`;
/// - the target's rate limit, when the service declares one;
/// - signing, per try: Standard Webhooks (a fresh timestamp, the same `webhook-id`) and
///   AWS Signature Version 4 (over the request as sent, at the time of sending).
///
/// Services send with [`Transport::send_all`], its one entry point.
///
/// Cloning is cheap: clones share the client, the connection pool, the limiters and
/// the record of a one-try transport.
#[derive(Clone)]
pub struct Transport {
    client: reqwest::Client,
    /// The clients of services that present a client certificate or trust a private CA
    /// (see [`client_tls`]): the same policy, another TLS identity each.
    identity_clients: client_tls::SharedClients,
    settings: Arc<Settings>,
    guard: Guard,
    limiters: Arc<Limiters>,
    rate_limit: Option<RateLimit>,
    /// The platform sent to, which reads its answers (waits asked for, "gone").
    platform: Option<&'static dyn Platform>,
    /// When the caller stops waiting (the dispatch deadline): tries end before it.
    until: Option<Instant>,
    mode: Mode,
}

/// How a transport tries each request.
#[derive(Clone)]
enum Mode {
    /// Again and again as the retry policy allows, within the budget: callers that wait
    /// for the result (the library, `lookout send`, `lookout test`).
    Retrying,
    /// Once, recorded: the durable worker, whose schedule is the retry policy.
    OneTry(Arc<OneTry>),
}

/// What a one-try transport knows about its delivery, and what it records.
struct OneTry {
    /// The [`Outgoing::target_key`]s of the targets that already answered this delivery
    /// (got it, or asked never to be sent to again): not sent to.
    answered: HashSet<String>,
    tried: Mutex<Vec<Attempt>>,
}

/// One try at one target, as a one-try transport records it.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The target's [`Outgoing::target_key`].
    pub key: String,
    /// `attempts` is 1; `retry` says whether and when another try makes sense.
    pub delivery: Delivery,
}

/// How long before the caller's deadline the last try must end, so that it is this
/// try's failure that gets reported rather than "deadline exceeded".
const DEADLINE_MARGIN: Duration = Duration::from_millis(50);

/// Another try is started only with at least this much of the budget left.
const SHORTEST_TRY: Duration = Duration::from_millis(50);

impl Transport {
    pub fn new(settings: Settings) -> Result<Transport, reqwest::Error> {
        let guard = Guard::for_settings(&settings);
        let client = client_builder(&settings, &guard)?.build()?;
        Ok(Transport {
            client,
            identity_clients: client_tls::SharedClients::default(),
            settings: Arc::new(settings),
            guard,
            limiters: Arc::default(),
            rate_limit: None,
            platform: None,
            until: None,
            mode: Mode::Retrying,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// This transport pacing its requests per target under `limit` (none: full speed).
    /// The limiters are shared with the original.
    pub fn with_rate_limit(&self, limit: Option<RateLimit>) -> Transport {
        Transport {
            rate_limit: limit,
            ..self.clone()
        }
    }

    /// This transport pacing its requests as the platform asks (when the settings'
    /// `rate_limits` is on, as it is by default) and reading its answers as the platform
    /// does (a registered service is one: see [`Platform`]).
    pub fn for_platform(&self, platform: &'static dyn Platform) -> Transport {
        let limit = platform.rate_limit().filter(|_| self.settings.rate_limits);
        Transport {
            platform: Some(platform),
            ..self.with_rate_limit(limit)
        }
    }

    /// The size limits of the platform it sends to, which what it sends must be built
    /// within ([`crate::limits::build_within`]).
    pub fn limits(&self) -> &'static crate::limits::Limits {
        self.platform
            .map_or(&crate::limits::Limits::UNDECLARED, |p| p.limits())
    }

    /// This transport finishing every delivery before `deadline` (the caller's own
    /// deadline, after which it stops waiting).
    pub fn with_deadline(&self, deadline: Instant) -> Transport {
        Transport {
            until: Some(deadline),
            ..self.clone()
        }
    }

    /// This transport trying each request once and recording the try (see
    /// [`Transport::attempts`]), and not sending to the targets whose
    /// [`Outgoing::target_key`] is in `answered`: for a caller that schedules its own
    /// retries and keeps its targets' pace itself (the durable worker). Its clones share
    /// the record.
    pub fn one_try(&self, answered: HashSet<String>) -> Transport {
        let one_try = OneTry {
            answered,
            tried: Mutex::default(),
        };
        Transport {
            mode: Mode::OneTry(Arc::new(one_try)),
            ..self.clone()
        }
    }

    /// What a one-try transport (and its clones) sent so far, one try each; nothing for
    /// a retrying one.
    pub fn attempts(&self) -> Vec<Attempt> {
        match &self.mode {
            Mode::OneTry(one_try) => one_try.tried.lock().expect("attempt record").clone(),
            Mode::Retrying => Vec::new(),
        }
    }

    /// Sends every request of one service, concurrently, over HTTP, SMTP or a broker's
    /// protocol; one result each, in order.
    pub async fn send_all(&self, mut outgoing: Vec<Outgoing>, job: &Job<'_>) -> Vec<Delivery> {
        // Held until the last request is answered: a list collected from an iterator
        // has room for four, which for one request in flight is three unused requests.
        outgoing.shrink_to_fit();
        match &outgoing[..] {
            // Most services send one request: no join to build (and move the future into).
            [one] => vec![self.send(one, job).await],
            all => join_all(all.iter().map(|o| self.send(o, job))).await,
        }
    }

    async fn send(&self, outgoing: &Outgoing, job: &Job<'_>) -> Delivery {
        let Mode::OneTry(one_try) = &self.mode else {
            return self
                .deliver(outgoing, job, self.settings.attempts.max(1))
                .await;
        };
        let key = outgoing.target_key();
        if one_try.answered.contains(&key) {
            return Delivery {
                target: Some(outgoing.shown_target(job.options.redactor())),
                ..Delivery::skipped("answered an earlier attempt of this delivery")
            };
        }
        let delivery = self.deliver(outgoing, job, 1).await;
        let attempt = Attempt {
            key,
            delivery: delivery.clone(),
        };
        one_try.tried.lock().expect("attempt record").push(attempt);
        delivery
    }

    /// Sends one request, trying again as the retry policy allows (`most` tries at
    /// most, all within the time budget).
    async fn deliver(&self, outgoing: &Outgoing, job: &Job<'_>, most: u32) -> Delivery {
        let target = outgoing.shown_target(job.options.redactor());
        let started = Instant::now();
        let end = self.end_of_budget(started);
        let mut tries = 0;
        loop {
            tries += 1;
            let (mut outcome, retry) = self.try_once(outgoing, job, end).await;
            let pause = match retry {
                Retry::Yes { .. } | Retry::Local if tries < most => {
                    self.pause_before_next(tries, retry, end)
                }
                _ => Pause::Stop,
            };
            if let Pause::For(pause) = pause {
                tracing::info!(
                    target = %target,
                    attempt = tries,
                    reason = outcome.reason().unwrap_or_default(),
                    pause_ms = pause.as_millis() as u64,
                    "delivery failed, trying again"
                );
                tokio::time::sleep(pause).await;
                continue;
            }
            if let Pause::BeyondBudget(asked) = pause {
                let asked = human_duration(asked);
                note(
                    &mut outcome,
                    &format!("retry after {asked}: beyond this delivery's time budget"),
                );
            }
            tracing::debug!(target = %target, attempts = tries, outcome = outcome.label(), "delivery done");
            return Delivery {
                target: Some(target),
                outcome,
                attempts: tries,
                duration: started.elapsed(),
                retry,
            };
        }
    }

    fn end_of_budget(&self, started: Instant) -> Instant {
        let end = started + self.settings.retry_budget();
        match self.until {
            Some(until) => end.min(until.checked_sub(DEADLINE_MARGIN).unwrap_or(until)),
            None => end,
        }
    }

    /// How long to wait before try `tries + 1`, if it still fits in the budget.
    fn pause_before_next(&self, tries: u32, retry: Retry, end: Instant) -> Pause {
        let left = end.saturating_duration_since(Instant::now());
        let Some(room) = left.checked_sub(SHORTEST_TRY) else {
            return Pause::Stop;
        };
        match retry.after() {
            // The target said when: never earlier (that would only earn another 429).
            Some(asked) if asked > room => Pause::BeyondBudget(asked),
            Some(asked) => Pause::For(asked),
            None => Pause::For(
                retry::backoff(tries, self.settings.backoff, self.settings.max_backoff).min(room),
            ),
        }
    }

    /// One try, over HTTP, SMTP or a broker's protocol: guard, rate limit, send, read
    /// the answer.
    async fn try_once(&self, outgoing: &Outgoing, job: &Job<'_>, end: Instant) -> (Outcome, Retry) {
        // An email's or a publish's try takes more room than an HTTP request waiting
        // for its answer; boxed, they do not make every HTTP delivery in flight as large.
        match outgoing {
            Outgoing::Http(request) => self.try_http(request, job, end).await,
            Outgoing::Email(email) => Box::pin(self.try_email(email, job, end)).await,
            Outgoing::Publish(publish) => Box::pin(self.try_publish(publish, job, end)).await,
        }
    }

    /// An HTTP request spends most of its time waiting for the answer's headers: what
    /// is held then is kept small, since every delivery in flight holds it. The redactor
    /// is made when a reason needs it, and the checks and the reading of the answer,
    /// which need more room, are boxed.
    async fn try_http(
        &self,
        request: &HttpRequest,
        job: &Job<'_>,
        end: Instant,
    ) -> (Outcome, Retry) {
        let redactor = || request_redactor(job.options.redactor(), request);
        let failed = |(reason, retry): (String, Retry)| (failure(&redactor(), &reason), retry);
        if let Err(blocked) = self
            .guard
            .check_url(&self.settings.destination(&request.url))
        {
            return failed((blocked.to_string(), Retry::No));
        }
        if self.settings.proxy.is_some()
            && let Err(refused) = Box::pin(self.check_proxied(&request.url, end)).await
        {
            return failed(refused);
        }
        let total = match self.time_for_try(&request.url, end).await {
            Ok(total) => total,
            Err(why) => return failed(why),
        };
        let first_byte = self.settings.first_byte_timeout.min(total);
        let started = Instant::now();
        let client = match self.client_for(job) {
            Ok(client) => client,
            Err(why) => return failed((why, Retry::No)),
        };
        let sending = self.request_builder(&client, request, job).send();
        let response = match tokio::time::timeout(first_byte, sending).await {
            Err(_) => {
                let why = format!("no answer within {}", human_duration(first_byte));
                return failed((why, Retry::Yes { after: None }));
            }
            Ok(Err(err)) => return failed((describe_error(&err), retry_after_error(&err))),
            Ok(Ok(response)) => response,
        };
        let answer = Box::pin(self.read_answer(response, started + total)).await;
        let verdict = self
            .platform
            .map_or(Verdict::ByStatus, |p| p.verdict(&answer.answer()));
        answer.judged(verdict, &redactor(), self.platform)
    }

    /// The proxy would resolve the name itself, past the resolver: the final target's
    /// addresses are checked here before it is handed over.
    async fn check_proxied(&self, url: &url::Url, end: Instant) -> Result<(), (String, Retry)> {
        let destination = self.settings.destination(url);
        if let (Some(host), Some(port)) =
            (destination.host_str(), destination.port_or_known_default())
        {
            self.resolve(host, port, end).await?;
        }
        Ok(())
    }

    /// The SMTP host goes through the guard like an HTTP host (names resolved here,
    /// within this try's time); the connection goes to the address it allowed.
    async fn try_email(&self, email: &Email, job: &Job<'_>, end: Instant) -> (Outcome, Retry) {
        let redactor = job.options.redactor();
        let failed = |(reason, retry): (String, Retry)| (failure(redactor, &reason), retry);
        let address = match self
            .resolve(&email.server.host, email.server.port, end)
            .await
        {
            Ok(address) => address,
            Err(why) => return failed(why),
        };
        let server = email.server.url().parse().expect("an SMTP server URL");
        match self.time_for_try(&server, end).await {
            Ok(total) => smtp::try_once(email, address, total, job.delivery_id, redactor).await,
            Err(why) => failed(why),
        }
    }

    /// The broker's host goes through the guard like an SMTP host; the service's
    /// publisher connects to the address it allowed.
    async fn try_publish(
        &self,
        publish: &Publish,
        job: &Job<'_>,
        end: Instant,
    ) -> (Outcome, Retry) {
        let redactor = &publish.redactor(job.options.redactor());
        let failed = |(reason, retry): (String, Retry)| (failure(redactor, &reason), retry);
        let address = match self.resolve(&publish.host, publish.port, end).await {
            Ok(address) => SocketAddr::new(address, publish.port),
            Err(why) => return failed(why),
        };
        let broker = match publish.broker_url() {
            Ok(broker) => broker,
            Err(why) => return failed((why, Retry::No)),
        };
        match self.time_for_try(&broker, end).await {
            Ok(total) => publish::try_once(publish, address, total, redactor).await,
            Err(why) => failed(why),
        }
    }

    /// The checked address of a host reached without HTTP (see [`Guard::resolve`]),
    /// looked up within this try's time.
    async fn resolve(
        &self,
        host: &str,
        port: u16,
        end: Instant,
    ) -> Result<IpAddr, (String, Retry)> {
        match tokio::time::timeout_at(end.into(), self.guard.resolve(host, port)).await {
            Ok(resolved) => resolved,
            Err(_) => Err(no_time_left()),
        }
    }

    /// Waits for the target's rate-limit slot, then says how long this try may take:
    /// the request timeout, or what is left of the budget.
    async fn time_for_try(
        &self,
        target: &url::Url,
        end: Instant,
    ) -> Result<Duration, (String, Retry)> {
        // A one-try transport's caller keeps the pace itself (the durable worker claims
        // a delivery only when its destination has a slot): it never waits here.
        // Boxed: most services have no pace, and their requests in flight need not hold
        // room for waiting on one.
        if let (Some(limit), Mode::Retrying) = (&self.rate_limit, &self.mode)
            && let Err(no_slot) = Box::pin(self.limiters.wait(limit, target, end)).await
        {
            // Nothing was sent; there is a slot later (beyond this budget).
            let after = Some(no_slot.wait);
            return Err((no_slot.to_string(), Retry::Yes { after }));
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(no_time_left());
        }
        Ok(self.settings.request_timeout.min(left))
    }

    /// The client for this service's requests: the shared one, or, when its options
    /// declare a client certificate or a private CA, one of its own with the same policy.
    fn client_for(&self, job: &Job<'_>) -> Result<reqwest::Client, String> {
        let Some(identity) = client_tls::Identity::of(job.options) else {
            return Ok(self.client.clone());
        };
        self.identity_clients.get_or_build(&identity, |identity| {
            let builder = client_builder(&self.settings, &self.guard)
                .map_err(|e| format!("building the TLS client failed: {}", describe_error(&e)))?;
            identity
                .apply(builder)?
                .build()
                .map_err(|e| format!("building the TLS client failed: {}", describe_error(&e)))
        })
    }

    fn request_builder(
        &self,
        client: &reqwest::Client,
        request: &HttpRequest,
        job: &Job<'_>,
    ) -> reqwest::RequestBuilder {
        let body = request.body.to_wire();
        let method =
            reqwest::Method::from_bytes(request.method.as_str().as_bytes()).expect("known method");
        let url = self.settings.destination(&request.url);
        let mut builder = client.request(method, url.as_ref().clone());
        if matches!(url, Cow::Owned(_)) {
            // Redirected (tests): the target still learns which host was meant.
            builder = builder.header(reqwest::header::HOST, host_and_port(&request.url));
        }
        if let Some(content_type) = request.body.content_type() {
            builder = builder.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        for header in &request.headers {
            let Ok(mut value) = reqwest::header::HeaderValue::from_str(&header.value) else {
                continue;
            };
            value.set_sensitive(header.sensitive);
            builder = builder.header(header.name.as_str(), value);
        }
        // Signed per try (a fresh timestamp, the delivery's stable id), over what is sent.
        for (name, value) in request.signature(job.delivery_id, &body) {
            builder = builder.header(name, value);
        }
        // The attempt's span, so that the target's own traces join the delivery's.
        if let Some(traceparent) = crate::telemetry::outgoing_traceparent() {
            builder = builder.header(crate::telemetry::TRACEPARENT, traceparent);
        }
        builder.body(body)
    }

    /// The status and headers, and at most `max_response_bytes` of the body, read until
    /// `until` at the latest (a slow or endless body is cut there).
    async fn read_answer(&self, mut response: reqwest::Response, until: Instant) -> Received {
        let status = response.status();
        // Taken, not copied: the body is all that is read from the response after this.
        let headers = std::mem::take(response.headers_mut());
        let cap = self.settings.max_response_bytes;
        let mut snippet = Vec::new();
        let mut cut_short = None;
        loop {
            match tokio::time::timeout_at(until.into(), response.chunk()).await {
                Err(_) => {
                    cut_short = Some("the rest of the answer did not come in time".to_owned());
                    break;
                }
                Ok(Err(err)) => {
                    cut_short = Some(describe_error(&err));
                    break;
                }
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => {
                    let room = cap.saturating_sub(snippet.len());
                    snippet.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if room <= chunk.len() {
                        break; // The cap is reached: stop reading, drop the connection.
                    }
                }
            }
        }
        Received {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or(""),
            headers,
            body: snippet,
            cut_short,
        }
    }
}

/// Every client of the engine is built here, with one policy: no redirects followed, no
/// proxy from the environment, the SSRF guard as the only resolver, the timeouts.
fn client_builder(
    settings: &Settings,
    guard: &Guard,
) -> Result<reqwest::ClientBuilder, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .user_agent(user_agent())
        // A redirect could lead anywhere, including inside the network: never follow.
        .redirect(reqwest::redirect::Policy::none())
        // Proxies come from explicit configuration only, never from the environment
        // (a proxy resolves names itself, past the guard: see `try_http`).
        .no_proxy();
    if let Some(proxy) = &settings.proxy {
        builder = builder.proxy(reqwest::Proxy::all(proxy.as_str())?);
    }
    Ok(builder
        // The only resolver: it checks every address and hands over only those.
        .dns_resolver(GuardedResolver::new(guard.clone()))
        .connect_timeout(settings.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(60)))
}

/// The options' redactor, plus the credential headers of this request: a target that
/// echoes its request back (`Authorization: Basic …`) must not put them in a report.
fn request_redactor<'a>(options: &'a Redactor, request: &HttpRequest) -> Cow<'a, Redactor> {
    let mut sensitive = request.headers.iter().filter(|h| h.sensitive).peekable();
    if sensitive.peek().is_none() {
        return Cow::Borrowed(options);
    }
    let mut redactor = options.clone();
    for header in sensitive {
        redactor.add(&header.value);
        // The credential alone, after its scheme (`Bearer`, `Basic`, …).
        if let Some((_, credential)) = header.value.split_once(' ') {
            redactor.add(credential.trim());
        }
    }
    Cow::Owned(redactor)
}

/// A failure that got no answer, redacted.
fn failure(redactor: &Redactor, reason: &str) -> Outcome {
    Outcome::Failed {
        reason: redactor.redact(reason),
        status: None,
    }
}

fn no_time_left() -> (String, Retry) {
    (
        "no time left in this delivery's budget".to_owned(),
        Retry::No,
    )
}

enum Pause {
    For(Duration),
    Stop,
    /// The target (or the rate limit) asks for a longer wait than the budget has left.
    BeyondBudget(Duration),
}

/// Adds a note to a failure's reason.
fn note(outcome: &mut Outcome, text: &str) {
    if let Outcome::Failed { reason, .. } | Outcome::Disabled { reason, .. } = outcome {
        reason.push_str(&format!(" ({text})"));
    }
}

/// Whether a request that got no answer is worth another try.
fn retry_after_error(err: &reqwest::Error) -> Retry {
    // A TLS failure is final: the certificate or the plain-text port stays as it is.
    if blocked_in(err).is_some() || err.is_builder() || tls::failure_in(err).is_some() {
        Retry::No
    } else if local_cause(err) {
        Retry::Local
    } else {
        // Connection refused or reset, DNS failure, timeout: the next try may get through.
        Retry::Yes { after: None }
    }
}

/// Whether a request failed for want of this machine's own resources (file descriptors,
/// memory, buffers): the target is not to blame.
fn local_cause(err: &reqwest::Error) -> bool {
    const LOCAL: [i32; 4] = [libc::EMFILE, libc::ENFILE, libc::ENOMEM, libc::ENOBUFS];
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = cause {
        let code = current
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error);
        if code.is_some_and(|code| LOCAL.contains(&code)) {
            return true;
        }
        cause = current.source();
    }
    false
}

/// What the target answered.
struct Received {
    status: u16,
    reason: &'static str,
    headers: reqwest::header::HeaderMap,
    /// At most `max_response_bytes` of the body.
    body: Vec<u8>,
    /// Why the body was not read to its end, if it was not (and not because of the cap).
    cut_short: Option<String>,
}

impl Received {
    /// The answer as a platform's declaration reads it.
    fn answer(&self) -> Answer<'_> {
        Answer {
            status: self.status,
            headers: &self.headers,
            body: &self.body,
        }
    }

    fn header(&self, name: reqwest::header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// How the try ended and whether another could do better: as the status says, or
    /// as the platform's own reading of its answer says.
    fn judged(
        &self,
        verdict: Verdict,
        redactor: &Redactor,
        platform: Option<&dyn Platform>,
    ) -> (Outcome, Retry) {
        let status = self.status;
        match verdict {
            Verdict::ByStatus => (self.outcome(redactor), self.retry(platform)),
            Verdict::Gone(why) => {
                let reason = redactor.redact(&format!("HTTP {status}: gone: {why}"));
                (Outcome::Disabled { reason, status }, Retry::No)
            }
            Verdict::Refused { reason, retry } => {
                let reason = redactor.redact(&format!("HTTP {status}: refused: {reason}"));
                let outcome = Outcome::Failed {
                    reason,
                    status: Some(status),
                };
                let retry = if retry {
                    Retry::Yes {
                        after: self.retry(platform).after(),
                    }
                } else {
                    Retry::No
                };
                (outcome, retry)
            }
        }
    }

    fn outcome(&self, redactor: &Redactor) -> Outcome {
        let status = self.status;
        // A 2xx is delivered even if its body then breaks off: the target said yes.
        if (200..300).contains(&status) {
            return Outcome::Delivered { status };
        }
        let mut reason = format!("HTTP {status} {}", self.reason)
            .trim_end()
            .to_owned();
        if status == 413 {
            // Final (413 is never retried): the same message would be refused again.
            reason.push_str(": the message was too large for the platform");
        }
        if let Some(location) = self.header(reqwest::header::LOCATION) {
            reason.push_str(&format!(" (redirect to {location} not followed)"));
        }
        // Redacted whole before it is cut: a secret crossing the cut would otherwise
        // be shown minus its last characters. The body itself may end inside a secret
        // (the read cap): that tail goes too.
        let body = redactor.redact_cut_end(String::from_utf8_lossy(&self.body).trim());
        let excerpt: String = body.chars().take(200).collect();
        if !excerpt.is_empty() {
            reason.push_str(": ");
            reason.push_str(&excerpt);
        }
        if let Some(why) = &self.cut_short {
            reason.push_str(&format!(" ({why})"));
        }
        let reason = redactor.redact(&reason);
        if status == 410 {
            Outcome::Disabled { reason, status }
        } else {
            Outcome::Failed {
                reason,
                status: Some(status),
            }
        }
    }

    fn retry(&self, platform: Option<&dyn Platform>) -> Retry {
        if retry::status_is_retryable(self.status) {
            let now = std::time::SystemTime::now();
            let in_answer = platform.and_then(|p| p.wait_asked(&self.answer(), now));
            let header = self.header(reqwest::header::RETRY_AFTER);
            Retry::Yes {
                after: retry::retry_after(header, in_answer, now),
            }
        } else {
            Retry::No
        }
    }
}

/// The guard's refusal, wherever it sits in an error's chain of causes.
fn blocked_in<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a Blocked> {
    let mut cause = Some(err);
    while let Some(current) = cause {
        if let Some(blocked) = current.downcast_ref::<Blocked>() {
            return Some(blocked);
        }
        cause = current.source();
    }
    None
}

/// A reqwest error as one line, without the URL (it may hold a key) and with the root
/// cause that says what actually went wrong.
fn describe_error(err: &reqwest::Error) -> String {
    if let Some(blocked) = blocked_in(err) {
        return blocked.to_string();
    }
    if let Some(tls) = tls::failure_in(err) {
        return tls::describe(tls);
    }
    let what = if err.is_connect() {
        "connection failed"
    } else if err.is_timeout() {
        "timed out"
    } else if err.is_body() || err.is_decode() {
        "reading the response failed"
    } else {
        "request failed"
    };
    // The error's own text names the URL, which may hold a key: use its causes only.
    let mut cause = err.source();
    let mut last = None;
    while let Some(source) = cause {
        last = Some(source.to_string());
        cause = source.source();
    }
    match last {
        Some(root) if !root.is_empty() => format!("{what}: {root}"),
        _ => what.to_owned(),
    }
}

/// `host` or `host:port` of `url`, as a `Host` header says it.
fn host_and_port(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}
