//! *Preview a change*: a product's services as a TOML `services` table, edited in the
//! page and run over the product's latest stored events by [`replay::compare`] — what
//! the change would send, as diffs, before it is made. Nothing is sent, nothing stored.
//!
//! The page never holds a stored secret. The table is prefilled without the secret
//! options (a comment names them), and a secret option that the submitted table leaves
//! out, leaves empty or writes with `[redacted]` in it keeps the value of the stored
//! service of the same name and service; an option the page showed redacted (a key
//! pasted into `channel`) keeps its stored value while it is left as shown. The text
//! that comes back in the box is redacted the same way.
//!
//! A preview is CPU work (every event built twice per service, templates rendered,
//! diffs): it runs on blocking threads, never on the async threads that answer the
//! intake and `/healthz`, within [`PreviewLimits`] — so many at once in all, one per
//! session and per client address (429 beyond), so many services and comparisons, so
//! much time (then it stops and says so) — and with a bounded working set.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Extension, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::auth::Session;
use super::pages::{Chrome, Refused, render, visible_product};
use super::preview_table::{MAX_TEXT, Problem, page_redactor, prefill, read};
use super::{Console, Posted};
use crate::clients::{ClientAddr, Held, PerClient, client_key};
use crate::metrics::Metrics;
use crate::replay::{self, Budget, Change, Replay, ReplayReport, Summary};
use crate::store::{Product, millis, now_ms};
use askama::Template;
use lookout::config::ServiceTable;
use lookout::redact::Redactor;

/// The most events one preview compares: the newest of the window. A page is drawn in
/// seconds, whatever the window holds.
pub const LIMIT: usize = 200;

/// The windows offered, as `humantime` reads them, and as the page says them.
const WINDOWS: [(&str, &str); 3] = [
    ("1h", "the last hour"),
    ("24h", "the last 24 hours"),
    ("7d", "the last 7 days"),
];
const DEFAULT_WINDOW: &str = "24h";

/// The largest form the preview reads: the table URL-encoded (up to three bytes a
/// character) and the other fields.
pub const MAX_FORM: usize = 3 * MAX_TEXT + 4 * 1024;

/// The most diff text one page holds; further differences are listed without theirs.
const DIFF_BYTES: usize = 1024 * 1024;

/// The limits on previews (docs/SERVING.md, "Limits on the request path"), set by
/// `serve`'s flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewLimits {
    /// Previews computed at once, in all (`--max-previews`).
    pub concurrent: usize,
    /// Previews at once for one session, and for one client address
    /// (`--max-previews-per-client`).
    pub per_client: usize,
    /// `[services.*]` tables one preview may hold (`--preview-max-services`).
    pub max_services: usize,
    /// Event × service comparisons one preview makes at most: with many services, it
    /// compares fewer events (`--preview-max-renders`).
    pub max_renders: usize,
    /// How long one preview may compare; then it stops and shows what it has
    /// (`--preview-timeout`).
    pub timeout: Duration,
}

impl Default for PreviewLimits {
    fn default() -> Self {
        PreviewLimits {
            concurrent: 2,
            per_client: 1,
            max_services: 20,
            max_renders: 2_000,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Who is previewing now: the gate every preview passes, under [`PreviewLimits`].
pub struct Previews {
    limits: PreviewLimits,
    running: Arc<Semaphore>,
    sessions: Arc<PerClient<String>>,
    clients: Arc<PerClient<IpAddr>>,
    metrics: Arc<Metrics>,
}

impl Default for Previews {
    fn default() -> Self {
        Previews::new(PreviewLimits::default(), Arc::default())
    }
}

impl Previews {
    /// The gate, counting its refusals in `metrics`.
    pub fn new(limits: PreviewLimits, metrics: Arc<Metrics>) -> Previews {
        Previews {
            running: Arc::new(Semaphore::new(limits.concurrent.max(1))),
            limits,
            sessions: Arc::default(),
            clients: Arc::default(),
            metrics,
        }
    }

    pub fn limits(&self) -> &PreviewLimits {
        &self.limits
    }

    /// A pass for one preview of `session` from `client`, or why not, in the page's
    /// words.
    fn enter(&self, session: &str, client: Option<IpAddr>) -> Result<Pass, String> {
        let per_client = self.limits.per_client.max(1);
        let entered = self.try_enter(session, client, per_client);
        if entered.is_err() {
            self.metrics.refused("previews");
        }
        entered
    }

    fn try_enter(&self, session: &str, client: Option<IpAddr>, cap: usize) -> Result<Pass, String> {
        let Some(session) = self.sessions.try_hold(session.to_owned(), cap) else {
            return Err(
                "A preview of yours is already running: wait for its page, then preview again."
                    .into(),
            );
        };
        let client = match client {
            Some(address) => match self.clients.try_hold(client_key(address), cap) {
                Some(held) => Some(held),
                None => {
                    return Err("A preview from your network address is already running: \
                                wait for it to finish, then preview again."
                        .into());
                }
            },
            None => None,
        };
        let Ok(running) = self.running.clone().try_acquire_owned() else {
            return Err(format!(
                "{} previews are already running, the most this server runs at once: \
                 try again in a few seconds.",
                self.limits.concurrent.max(1)
            ));
        };
        Ok(Pass {
            _running: running,
            _session: session,
            _client: client,
        })
    }
}

/// A preview's place: held while any of its work runs, also after its request has gone.
struct Pass {
    _running: OwnedSemaphorePermit,
    _session: Held<String>,
    _client: Option<Held<IpAddr>>,
}

/// Tells a preview's work to stop when its request is dropped (the visitor left).
struct Cancel(Arc<AtomicBool>);

impl Drop for Cancel {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

// --- the page ---------------------------------------------------------------------------

/// One line of a diff, with the class that colours it.
pub struct DiffLine {
    pub class: &'static str,
    pub text: String,
}

/// One event through one service, as listed.
pub struct Shown {
    pub event: String,
    pub event_id: String,
    pub instance: String,
    pub change: &'static str,
    pub lines: Vec<DiffLine>,
}

/// The report as the page shows it: differing pairs with their diffs, unchanged ones
/// only listed.
pub struct ShownReport {
    pub summary: Summary,
    pub cut: bool,
    /// The most events compared (fewer than [`LIMIT`] with many services).
    pub event_limit: usize,
    /// The time limit ended the comparison.
    pub stopped: bool,
    /// Differences listed without their diff (the page's share of diffs was used up).
    pub diffs_left_out: usize,
    pub differing: Vec<Shown>,
    pub unchanged: Vec<Shown>,
}

impl ShownReport {
    fn new(report: ReplayReport, redactor: &Redactor) -> ShownReport {
        let (unchanged, differing): (Vec<Shown>, Vec<Shown>) = report
            .comparisons
            .into_iter()
            .map(|comparison| Shown {
                event: comparison.event,
                event_id: comparison.event_id,
                instance: comparison.instance,
                change: change_word(comparison.change),
                // Redacted by each side's own options already; again by every secret
                // known here, so that no stored secret can reach the page.
                lines: diff_lines(&redactor.redact(&comparison.diff)),
            })
            .partition(|shown| shown.change == "unchanged");
        ShownReport {
            summary: report.summary,
            cut: report.cut,
            event_limit: report.event_limit.unwrap_or(LIMIT),
            stopped: report.stopped,
            diffs_left_out: report.diffs_left_out,
            differing,
            unchanged,
        }
    }
}

fn change_word(change: Change) -> &'static str {
    match change {
        Change::Unchanged => "unchanged",
        Change::Changed => "changed",
        Change::New => "new",
        Change::Removed => "removed",
    }
}

fn diff_lines(diff: &str) -> Vec<DiffLine> {
    diff.lines()
        .map(|line| {
            let class = if line.starts_with("+++") || line.starts_with("---") {
                "file"
            } else if line.starts_with("@@") {
                "hunk"
            } else if line.starts_with('+') {
                "add"
            } else if line.starts_with('-') {
                "del"
            } else {
                "same"
            };
            DiffLine {
                class,
                text: line.to_owned(),
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "console/preview.html")]
struct PreviewPage {
    chrome: Chrome,
    product: String,
    /// The table in the box.
    text: String,
    windows: [(&'static str, &'static str); 3],
    window: String,
    /// The product's services, to compare only one.
    services: Vec<String>,
    service: String,
    limit: usize,
    /// The limits, as the page says them.
    max_renders: usize,
    timeout: String,
    diff_kib: usize,
    problems: Vec<Problem>,
    report: Option<ShownReport>,
}

impl PreviewPage {
    fn new(chrome: Chrome, product: &Product, text: String, limits: &PreviewLimits) -> PreviewPage {
        PreviewPage {
            chrome,
            product: product.id.clone(),
            text,
            windows: WINDOWS,
            window: DEFAULT_WINDOW.to_owned(),
            services: product.instances.iter().map(|i| i.name.clone()).collect(),
            service: String::new(),
            limit: LIMIT,
            max_renders: limits.max_renders,
            timeout: humantime::format_duration(limits.timeout).to_string(),
            diff_kib: DIFF_BYTES / 1024,
            problems: Vec::new(),
            report: None,
        }
    }
}

pub async fn form(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, Refused> {
    let product = visible_product(&console, &session, &id).await?;
    let text = prefill(&product.instances);
    Ok(render(
        StatusCode::OK,
        &PreviewPage::new(
            Chrome::of(&session),
            &product,
            text,
            console.previews.limits(),
        ),
    ))
}

/// Runs the submitted table over the newest [`LIMIT`] events of the window (nothing is
/// sent or stored) and shows the report under the form, or the problems beside it.
///
/// Past the gate ([`Previews`]), everything that costs CPU — reading and validating the
/// table (its templates are rendered for every sample), comparing, drawing the page —
/// runs on blocking threads holding the preview's [`Pass`]; the async threads only read
/// the store.
pub async fn run(
    State(console): State<Console>,
    Path(id): Path<String>,
    client: Option<Extension<ClientAddr>>,
    posted: Posted,
) -> Result<Response, Refused> {
    let product = visible_product(&console, &posted.session, &id).await?;
    let limits = console.previews.limits().clone();
    // Browsers send a text box's lines with CRLF.
    let text = posted
        .field("services")
        .unwrap_or_default()
        .replace("\r\n", "\n");
    let mut page = PreviewPage::new(
        Chrome::of(&posted.session),
        &product,
        String::new(),
        &limits,
    );
    page.window = posted.field("window").unwrap_or(DEFAULT_WINDOW).to_owned();
    page.service = posted.field("service").unwrap_or_default().to_owned();
    if text.len() > MAX_TEXT {
        // Not shown again (nor read): the stored table instead.
        page.text = prefill(&product.instances);
        page.problems = vec![Problem::general(format!(
            "the table is {} KiB long; a preview reads at most {} KiB: preview fewer \
             services at once",
            text.len().div_ceil(1024),
            MAX_TEXT / 1024
        ))];
        return Ok(render(StatusCode::PAYLOAD_TOO_LARGE, &page));
    }
    let client = client.map(|Extension(ClientAddr(address))| address);
    let pass = match console.previews.enter(&posted.session.csrf, client) {
        Ok(pass) => Arc::new(pass),
        Err(busy) => {
            page.problems = vec![Problem::general(busy)];
            let mut answer = blocking(move || {
                page.text = page_redactor(&product, &text).redact(&text);
                render(StatusCode::TOO_MANY_REQUESTS, &page)
            })
            .await;
            let retry = HeaderValue::from_static("5");
            answer.headers_mut().insert(header::RETRY_AFTER, retry);
            return Ok(answer);
        }
    };
    let deadline = Instant::now() + limits.timeout;
    let cancel = Cancel(Arc::new(AtomicBool::new(false)));
    let guard = console.guard.clone();
    let (reading, max_services) = (pass.clone(), limits.max_services);
    let (mut page, product, redactor, asked) = blocking(move || {
        let _pass = reading;
        let redactor = page_redactor(&product, &text);
        page.text = redactor.redact(&text);
        let asked = window_start(&page.window)
            .map_err(|problems| (StatusCode::UNPROCESSABLE_ENTITY, problems))
            .and_then(|since| {
                within_services(&text, max_services)?;
                let tables = read(&text, &product, &guard)
                    .map_err(|problems| (StatusCode::UNPROCESSABLE_ENTITY, problems))?;
                chosen(&tables, &page.service)
                    .map_err(|problems| (StatusCode::UNPROCESSABLE_ENTITY, problems))?;
                Ok((since, tables))
            });
        (page, product, redactor, asked)
    })
    .await;
    let (since, tables) = match asked {
        Ok(asked) => asked,
        Err((status, problems)) => {
            page.problems = problems;
            return Ok(render(status, &page));
        }
    };
    let replay = Replay {
        services: &tables,
        since,
        product: Some(product.id.clone()),
        service: Some(page.service.clone()).filter(|s| !s.is_empty()),
        limit: Some(LIMIT),
        budget: Some(Budget {
            comparisons: limits.max_renders.max(1),
            deadline,
            cancelled: cancel.0.clone(),
            diff_bytes: DIFF_BYTES,
            holding: Some(pass.clone()),
        }),
    };
    let report = replay::compare(console.store.as_ref(), &replay).await?;
    if report.stopped && !cancel.0.load(Ordering::Relaxed) {
        tracing::info!(
            "console: a preview of product {} stopped at its time limit ({}) after {} events",
            product.id,
            page.timeout,
            report.summary.events
        );
    }
    let answer = blocking(move || {
        let _pass = pass;
        page.report = Some(ShownReport::new(report, &redactor));
        render(StatusCode::OK, &page)
    })
    .await;
    drop(cancel);
    Ok(answer)
}

/// Runs `work` on a blocking thread (a panic in it is the caller's).
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(done) => done,
        Err(failed) => std::panic::resume_unwind(failed.into_panic()),
    }
}

/// The table holds at most `max` `[services.*]` tables (else 413, with the count).
fn within_services(text: &str, max: usize) -> Result<(), (StatusCode, Vec<Problem>)> {
    // A table that does not parse is left to `read`, which says where.
    let count = lookout::config::services_table(text, "preview").map_or(0, |t| t.len());
    if count <= max {
        return Ok(());
    }
    Err((
        StatusCode::PAYLOAD_TOO_LARGE,
        vec![Problem::general(format!(
            "the table has {count} [services.NAME] tables; a preview compares at most \
             {max}: preview fewer services at once"
        ))],
    ))
}

/// The start of a window the page offers.
fn window_start(window: &str) -> Result<crate::store::Millis, Vec<Problem>> {
    let offered = WINDOWS.iter().any(|(w, _)| *w == window);
    match humantime::parse_duration(window) {
        Ok(length) if offered => Ok(now_ms() - millis(length)),
        _ => Err(vec![Problem::general(format!(
            "window: `{}` is not one of 1h, 24h, 7d",
            window.escape_default()
        ))]),
    }
}

/// The one service asked for is among the tables (empty: all of them).
fn chosen(tables: &[ServiceTable], service: &str) -> Result<(), Vec<Problem>> {
    if service.is_empty() || tables.iter().any(|t| t.instance.name == service) {
        return Ok(());
    }
    Err(vec![Problem::general(format!(
        "service: the table has no enabled [services.{}]",
        service.escape_default()
    ))])
}

#[cfg(test)]
mod tests {
    use super::super::preview_table::tests::{KEY, SIGNING, product};
    use super::*;

    #[test]
    fn previews_are_limited_per_session_per_address_and_in_all() {
        let metrics = Arc::new(Metrics::new());
        let previews = Previews::new(PreviewLimits::default(), metrics.clone());
        let (a, b, c) = (
            Some("192.0.2.1".parse().unwrap()),
            Some("192.0.2.2".parse().unwrap()),
            Some("192.0.2.3".parse().unwrap()),
        );
        let first = previews.enter("session-1", a).expect("the first");
        let again = previews
            .enter("session-1", b)
            .err()
            .expect("the same session");
        assert!(
            again.starts_with("A preview of yours is already running"),
            "{again}"
        );
        // Another session (a second portal link opened) from the same address.
        let same_address = previews
            .enter("session-2", a)
            .err()
            .expect("the same address");
        assert!(
            same_address.contains("from your network address"),
            "{same_address}"
        );
        let second = previews.enter("session-2", b).expect("another client");
        let full = previews.enter("session-3", c).err().expect("two in all");
        assert!(full.starts_with("2 previews are already running"), "{full}");
        drop(first);
        let third = previews.enter("session-3", c).expect("a place again");
        drop((second, third));
        assert!(
            previews.enter("session-1", a).is_ok(),
            "every place given back"
        );
        assert!(
            metrics
                .render(0)
                .contains("lookout_refused_total{reason=\"previews\"} 3")
        );
    }

    #[test]
    fn the_text_shown_again_and_the_diffs_are_redacted() {
        let product = product();
        let text = format!(
            "[services.hook]\nservice = \"echo\"\nsecret = \"{SIGNING}\"\n\
             [services.new]\nservice = \"echo\"\nurls = [\"http://127.0.0.1:9/newKEY98765432\"]\n"
        );
        let redactor = page_redactor(&product, &text);
        let shown = redactor.redact(&text);
        for secret in [SIGNING, "newKEY98765432"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        let lines = diff_lines(&redactor.redact(&format!("+ {KEY}\n- x\n@@ -1 +1 @@\n")));
        let classes: Vec<&str> = lines.iter().map(|l| l.class).collect();
        assert_eq!(classes, ["add", "del", "hunk"]);
        assert!(!lines[0].text.contains(KEY));
    }
}
