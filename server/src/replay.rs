//! Replay: stored events run through a config's services, compared request by request
//! with what the product's stored services send for them — "what would this change
//! send?" before it is made — and, when asked, sent as new deliveries.
//!
//! The config's `[services.NAME]` tables stand in for the product's services of the same
//! name; the product's other services are left out of the comparison. Both sides are
//! built as `--dry-run` builds them (nothing is sent), with the stored delivery's id, so
//! only what the config changes differs; secrets are redacted on both sides. The store
//! keeps a product's current services, not past requests: the stored side is what those
//! services send for the event now.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::routing::RouteCache;
use crate::shaping::Arrivals;
use crate::store::{EventFilter, Millis, NewDelivery, Product, Store, StoreError, StoredEvent};
use lookout::config::ServiceTable;
use lookout::dispatch::{Preview, preview_with_id};
use lookout::{Event, Instance};

/// Events read from the store at a time.
const BATCH: usize = 200;
/// Events read at a time under a [`Budget`]: few stored payloads held at once.
const BUDGET_BATCH: usize = 25;

/// What to replay.
pub struct Replay<'a> {
    /// The config's services (as written and validated).
    pub services: &'a [ServiceTable],
    /// Events received at or after this time.
    pub since: Millis,
    pub product: Option<String>,
    /// Only the config's service of this name.
    pub service: Option<String>,
    /// Only the newest this many events of the range (the console's preview: a page
    /// must not take minutes); `None`: all of them.
    pub limit: Option<usize>,
    /// Bounds on time, work and memory (the console's preview); `None`: none.
    pub budget: Option<Budget>,
}

/// How far one replay may go, for the console's preview: a page must come back within
/// seconds and hold little memory, whatever the window, the table or its templates.
/// Under a budget the newest events are compared first (then shown oldest first), a
/// few stored payloads at a time.
#[derive(Clone)]
pub struct Budget {
    /// Event × service comparisons at most: with many services, fewer events.
    pub comparisons: usize,
    /// No event is begun after this instant ([`ReplayReport::stopped`]).
    pub deadline: Instant,
    /// Turned true when whoever asked has gone: no event is begun after that either.
    pub cancelled: Arc<AtomicBool>,
    /// Each comparison keeps its diff only, not both previews, and the diffs together
    /// at most this many bytes (beyond it, comparisons are counted without their diff).
    pub diff_bytes: usize,
    /// Held as long as any work of this replay runs, even after its caller has gone
    /// (the console's place among the previews running).
    pub holding: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl Budget {
    fn spent(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed) || Instant::now() >= self.deadline
    }
}

impl Replay<'_> {
    fn filter(&self, limit: usize, newest_first: bool) -> EventFilter {
        EventFilter {
            since: self.since,
            product: self.product.clone(),
            after: None,
            limit,
            newest_first,
        }
    }
}

/// How one configured service's requests for one event change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Unchanged,
    /// Both send, differently.
    Changed,
    /// The config sends; the stored service sends nothing (or there is none).
    New,
    /// The stored service sends; the config sends nothing.
    Removed,
}

/// One event through one configured service, both ways.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub event_id: String,
    pub product: String,
    /// `Model.action`.
    pub event: String,
    pub instance: String,
    pub change: Change,
    /// The id both sides were built with: the stored delivery's, or the replay's own.
    pub delivery_id: String,
    /// What the stored service sends (redacted), if the product has it.
    pub stored: Option<Preview>,
    /// What the config's service sends (redacted).
    pub config: Preview,
    /// A unified diff of the two, stored first; empty when unchanged.
    pub diff: String,
}

/// The counts of a replay.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub events: usize,
    /// The config's services compared.
    pub services: usize,
    pub changed: usize,
    pub unchanged: usize,
    pub new: usize,
    pub removed: usize,
    /// Stored payloads that no longer parse (left out).
    pub unreadable: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayReport {
    /// Every comparison in which at least one side sends, oldest event first.
    pub comparisons: Vec<Comparison>,
    pub summary: Summary,
    /// The range held more events than [`Replay::limit`]: the older ones were left out.
    pub cut: bool,
    /// The most events compared: [`Replay::limit`], or fewer when the [`Budget`] allows
    /// fewer comparisons than it times the services; `None`: every event of the range.
    pub event_limit: Option<usize>,
    /// The [`Budget`]'s time ran out (or whoever asked went away) before every event
    /// was compared: only the newest ones were.
    pub stopped: bool,
    /// Differing comparisons listed without their diff: the [`Budget`]'s bytes of
    /// diffs were used up.
    pub diffs_left_out: usize,
    /// What the config's services that coalesce or send digests would have sent for
    /// the events compared ("42 events → 3 digests").
    pub shaped: Vec<crate::shaping::Shaped>,
}

/// Compares the stored events of the replay's range (all of them, in batches, or the
/// newest [`Replay::limit`]), oldest first. The building and diffing run off the async
/// runtime's threads ([`tokio::task::spawn_blocking`]), a batch of events at a time.
pub async fn compare(store: &dyn Store, replay: &Replay<'_>) -> Result<ReplayReport, StoreError> {
    let tables: Vec<ServiceTable> = replay
        .services
        .iter()
        .filter(|t| {
            replay
                .service
                .as_ref()
                .is_none_or(|s| *s == t.instance.name)
        })
        .cloned()
        .collect();
    let by_budget = replay
        .budget
        .as_ref()
        .map(|budget| (budget.comparisons / tables.len().max(1)).max(1));
    let limit = match (replay.limit, by_budget) {
        (Some(limit), Some(most)) => Some(limit.min(most)),
        (limit, most) => limit.or(most),
    };
    let mut comparer = Comparer {
        report: ReplayReport {
            summary: Summary {
                services: tables.len(),
                ..Summary::default()
            },
            event_limit: limit,
            ..ReplayReport::default()
        },
        arrivals: vec![Arrivals::default(); tables.len()],
        tables,
        products: HashMap::new(),
        instances: HashMap::new(),
        events: Vec::new(),
        budget: replay.budget.clone(),
        diff_bytes: 0,
    };
    match limit {
        Some(limit) => {
            let batch = if replay.budget.is_some() {
                BUDGET_BATCH
            } else {
                BATCH
            };
            comparer = newest(comparer, store, replay, limit, batch).await?;
            // Compared newest first; shown oldest first.
            comparer.events.reverse();
        }
        None => {
            let mut filter = replay.filter(BATCH, false);
            loop {
                let batch = store.events_since(&filter).await?;
                let Some(last) = batch.last() else {
                    break;
                };
                filter.after = Some((last.received_at, last.id.clone()));
                let full = batch.len() == BATCH;
                comparer = comparer.add(store, batch).await?;
                if !full || comparer.report.stopped {
                    break;
                }
            }
        }
    }
    let mut report = comparer.report;
    report.comparisons = comparer.events.into_iter().flatten().collect();
    report.shaped = comparer
        .tables
        .iter()
        .zip(&comparer.arrivals)
        .filter_map(|(table, arrivals)| crate::shaping::tally(&table.instance, arrivals))
        .collect();
    Ok(report)
}

/// Compares the newest `limit` events of the replay's range, newest first, `batch` at a
/// time; notes whether older ones were left out.
async fn newest(
    mut comparer: Comparer,
    store: &dyn Store,
    replay: &Replay<'_>,
    limit: usize,
    batch: usize,
) -> Result<Comparer, StoreError> {
    let mut filter = replay.filter(batch, true);
    let mut seen = 0;
    loop {
        // One more than wanted tells whether the range holds more.
        filter.limit = (limit + 1 - seen).min(batch);
        let mut events = store.events_since(&filter).await?;
        let Some(last) = events.last() else {
            break;
        };
        filter.after = Some((last.received_at, last.id.clone()));
        let full = events.len() == filter.limit;
        if seen + events.len() > limit {
            comparer.report.cut = true;
            events.truncate(limit - seen);
        }
        seen += events.len();
        if !events.is_empty() {
            comparer = comparer.add(store, events).await?;
        }
        if comparer.report.stopped {
            comparer.report.cut = true;
            break;
        }
        if !full || comparer.report.cut {
            break;
        }
    }
    Ok(comparer)
}

/// The comparisons so far (one list per event, in the order compared), and the
/// products they are made against (each read and validated once).
struct Comparer {
    tables: Vec<ServiceTable>,
    /// The events each table's service gets, for its shaping (same order as `tables`).
    arrivals: Vec<Arrivals>,
    products: HashMap<String, Option<Product>>,
    /// Each product's stored services that validate, by name.
    instances: HashMap<String, Vec<(String, Instance)>>,
    events: Vec<Vec<Comparison>>,
    report: ReplayReport,
    budget: Option<Budget>,
    /// Bytes of diffs kept so far.
    diff_bytes: usize,
}

impl Comparer {
    /// Reads the products of `events` not read yet, then compares the events on a
    /// blocking thread, and comes back.
    async fn add(
        mut self,
        store: &dyn Store,
        events: Vec<StoredEvent>,
    ) -> Result<Self, StoreError> {
        for stored in &events {
            if !self.products.contains_key(&stored.product) {
                let product = store.product(&stored.product).await?;
                self.products.insert(stored.product.clone(), product);
            }
        }
        let compared = tokio::task::spawn_blocking(move || {
            for stored in &events {
                if self.budget.as_ref().is_some_and(Budget::spent) {
                    self.report.stopped = true;
                    break;
                }
                self.compare(stored);
            }
            self
        })
        .await;
        match compared {
            Ok(comparer) => Ok(comparer),
            Err(failed) => std::panic::resume_unwind(failed.into_panic()),
        }
    }

    fn compare(&mut self, stored: &StoredEvent) {
        if !self.instances.contains_key(&stored.product) {
            // Validating a stored service renders its templates for every sample:
            // done once per product, not once per event.
            let instances = self.products[&stored.product]
                .iter()
                .flat_map(|product| &product.instances)
                .filter_map(|i| Some((i.name.clone(), i.instance().ok()?)))
                .collect();
            self.instances.insert(stored.product.clone(), instances);
        }
        let instances = &self.instances[&stored.product];
        let tables: Vec<&ServiceTable> = self.tables.iter().collect();
        let mut comparisons = compare_event(stored, instances, &tables, &mut self.report);
        if let Ok(event) = Event::parse(&stored.payload) {
            for (table, arrivals) in self.tables.iter().zip(&mut self.arrivals) {
                arrivals.add(&stored.product, &table.instance, &event, stored.received_at);
            }
        }
        if let Some(budget) = &self.budget {
            for comparison in &mut comparisons {
                comparison.stored = None;
                comparison.config.requests = Vec::new();
                if self.diff_bytes + comparison.diff.len() > budget.diff_bytes {
                    comparison.diff = String::new();
                    self.report.diffs_left_out += 1;
                } else {
                    self.diff_bytes += comparison.diff.len();
                }
            }
        }
        self.events.push(comparisons);
    }
}

/// One event through every table, both ways: the comparisons in which a side sends,
/// counted in the report's summary.
fn compare_event(
    stored: &StoredEvent,
    instances: &[(String, Instance)],
    tables: &[&ServiceTable],
    report: &mut ReplayReport,
) -> Vec<Comparison> {
    let mut comparisons = Vec::new();
    let Ok(event) = Event::parse(&stored.payload) else {
        report.summary.unreadable += 1;
        return comparisons;
    };
    report.summary.events += 1;
    for table in tables {
        let name = &table.instance.name;
        let delivery_id = stored
            .deliveries
            .iter()
            .find(|d| d.instance == *name)
            .map_or_else(|| replay_id(&stored.id, table), |d| d.id.clone());
        let stored_instance = instances.iter().find(|(n, _)| n == name).map(|(_, i)| i);
        let before = stored_instance.map(|i| preview_with_id(&event, i, &delivery_id));
        let after = preview_with_id(&event, &table.instance, &delivery_id);
        let Some(change) = change(before.as_ref(), &after) else {
            continue;
        };
        match change {
            Change::Unchanged => report.summary.unchanged += 1,
            Change::Changed => report.summary.changed += 1,
            Change::New => report.summary.new += 1,
            Change::Removed => report.summary.removed += 1,
        }
        let diff = match change {
            Change::Unchanged => String::new(),
            _ => unified_diff(before.as_ref(), &after),
        };
        comparisons.push(Comparison {
            event_id: stored.id.clone(),
            product: stored.product.clone(),
            event: event.kind(),
            instance: name.clone(),
            change,
            delivery_id,
            stored: before,
            config: after,
            diff,
        });
    }
    comparisons
}

/// How the requests change; `None` when neither side sends anything.
fn change(before: Option<&Preview>, after: &Preview) -> Option<Change> {
    let sends = |p: &Preview| !p.requests.is_empty();
    let before = before.filter(|p| sends(p));
    match (before, sends(after)) {
        (None, false) => None,
        (None, true) => Some(Change::New),
        (Some(_), false) => Some(Change::Removed),
        (Some(before), true) if shown(before) == shown(after) => Some(Change::Unchanged),
        (Some(_), true) => Some(Change::Changed),
    }
}

/// A preview as the diff shows it: the service and its requests, pretty JSON.
fn shown(preview: &Preview) -> String {
    let value = serde_json::json!({
        "service": preview.service,
        "requests": preview.requests,
        "not_sent": preview.not_sent,
    });
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

fn unified_diff(before: Option<&Preview>, after: &Preview) -> String {
    let old = before.map(shown).unwrap_or_default();
    let new = shown(after);
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header("stored", "config")
        .to_string()
}

/// The id of the delivery a replay adds for one event and configured service: the
/// same for the same event, service and options, so sending again adds nothing.
pub fn replay_id(event_id: &str, table: &ServiceTable) -> String {
    let options = Value::Object(table.options.clone()).to_string();
    let mut hash = Sha256::new();
    for part in [
        event_id,
        &table.instance.name,
        table.instance.service_name(),
        &options,
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("msg_{hex}")
}

/// What `--send` did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Sent {
    /// The config's services stored in the product (they differed).
    pub stored_services: Vec<String>,
    /// Deliveries added (changed and new requests).
    pub added: usize,
    /// Deliveries that were already there (an earlier `--send`).
    pub already: usize,
}

/// Sends a replay of one product: stores the config's services that differ from the
/// product's (the workers deliver with the product's stored services), then adds one
/// delivery per event and service whose requests changed or are new, due now, with
/// [`replay_id`]s, in the lanes of the product's services as now stored (`routes`).
pub async fn send(
    store: &dyn Store,
    routes: &RouteCache,
    product: &str,
    services: &[ServiceTable],
    report: &ReplayReport,
    now: Millis,
) -> Result<Sent, StoreError> {
    let mut sent = Sent::default();
    let stored = store.product(product).await?;
    for table in services {
        let same = stored.as_ref().is_some_and(|p| {
            p.instances
                .iter()
                .any(|i| i.name == table.instance.name && i.options == table.options)
        });
        if !same {
            store.put_instance(product, &table.clone().into()).await?;
            sent.stored_services.push(table.instance.name.clone());
        }
    }
    let Some(routes) = routes.routes(store, product).await? else {
        return Ok(sent);
    };
    let mut by_event: Vec<(&str, Vec<&ServiceTable>)> = Vec::new();
    for comparison in &report.comparisons {
        if comparison.product != product
            || !matches!(comparison.change, Change::Changed | Change::New)
        {
            continue;
        }
        let Some(table) = services
            .iter()
            .find(|t| t.instance.name == comparison.instance)
        else {
            continue;
        };
        match by_event
            .iter_mut()
            .find(|(id, _)| *id == comparison.event_id)
        {
            Some((_, tables)) => tables.push(table),
            None => by_event.push((&comparison.event_id, vec![table])),
        }
    }
    for (event_id, tables) in &by_event {
        let Some(payload) = store.event_payload(event_id).await? else {
            continue;
        };
        let Ok(event) = Event::parse(&payload) else {
            continue;
        };
        let deliveries: Vec<NewDelivery> = tables
            .iter()
            .filter_map(|table| {
                let route = routes.route(&table.instance.name)?;
                Some(route.delivery(product, &event, replay_id(event_id, table)))
            })
            .collect();
        let added = store.enqueue(event_id, &deliveries, now).await?;
        sent.added += added;
        sent.already += deliveries.len() - added;
    }
    Ok(sent)
}
