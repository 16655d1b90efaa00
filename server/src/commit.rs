//! Group commit for the intake: events POSTed at the same time are stored in one
//! transaction, so one fsync makes many of them durable.
//!
//! Each request hands its event to the committer and waits. The committer takes every
//! event waiting (up to [`MAX_BATCH`]), commits them together, and answers each; while
//! that commit's fsync runs, the next requests queue up and become the next batch. No
//! timer: an event alone is committed at once, and a batch grows only as fast as the
//! disk is slow. A failed commit fails every event of its batch, and none is stored.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use crate::store::{Admission, NewEvent, Result, Store, StoreError};

/// The most events one transaction takes.
pub const MAX_BATCH: usize = 512;

/// Events waiting for the committer at most; more requests wait to hand theirs over.
const QUEUE: usize = 4 * MAX_BATCH;

struct Waiting {
    event: NewEvent,
    answer: oneshot::Sender<Result<Admission>>,
}

/// The intake's side of the committer (cheap to clone).
#[derive(Clone)]
pub struct Committer {
    queue: mpsc::Sender<Waiting>,
}

impl Committer {
    /// Starts the committer on `store`; it runs until every [`Committer`] is dropped.
    pub fn start(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Committer {
        let (queue, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(commit_batches(store, metrics, waiting));
        Committer { queue }
    }

    /// Stores `event` with whatever else is waiting; returns once it is committed.
    pub async fn submit(&self, event: NewEvent) -> Result<Admission> {
        let (answer, answered) = oneshot::channel();
        let stopped = || StoreError::Backend("the intake's committer has stopped".into());
        self.queue
            .send(Waiting { event, answer })
            .await
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

async fn commit_batches(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    mut waiting: mpsc::Receiver<Waiting>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while waiting.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (events, answers): (Vec<NewEvent>, Vec<_>) =
            batch.drain(..).map(|w| (w.event, w.answer)).unzip();
        let committed = store.accept_batch(&events).await;
        metrics.committed(events.len());
        match committed {
            Ok(admissions) => {
                for (answer, admission) in answers.into_iter().zip(admissions) {
                    let _ = answer.send(Ok(admission));
                }
            }
            Err(err) => {
                tracing::error!("storing {} event(s): {err}", events.len());
                for answer in answers {
                    let _ = answer.send(Err(StoreError::Backend(err.to_string())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{NewDelivery, StoredInstance};

    fn event(id: &str, delivery: &str) -> NewEvent {
        NewEvent {
            id: id.to_owned(),
            product: "p1".to_owned(),
            payload: "{}".to_owned(),
            received_at: 1,
            deliveries: vec![NewDelivery::in_own_lane("p1", delivery, "hook", "echo")],
            idempotency: None,
            routed_with: None,
            trace_context: None,
        }
    }

    /// Submits all of `events` before the committer runs (one thread): one batch.
    async fn submit_together(committer: &Committer, events: Vec<NewEvent>) -> Vec<bool> {
        let submitted = events.into_iter().map(|e| committer.submit(e));
        let results = futures::future::join_all(submitted).await;
        results.iter().map(|r| r.is_ok()).collect()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn events_posted_together_share_a_commit_and_its_failure() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path().join("l.db")).await.unwrap());
        let hook = StoredInstance {
            name: "hook".to_owned(),
            service: "echo".to_owned(),
            options: serde_json::Map::new(),
        };
        store.put_instance("p1", &hook).await.unwrap();
        let metrics = Arc::new(Metrics::new());
        let committer = Committer::start(store.clone(), metrics.clone());

        let events = (0..50).map(|n| event(&format!("evt_{n}"), &format!("msg_{n}")));
        let stored = submit_together(&committer, events.collect()).await;
        assert!(stored.iter().all(|ok| *ok));
        let commits = |text: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix("lookout_intake_commits_total "))
                .map(|n| n.parse::<u64>().unwrap())
        };
        assert_eq!(
            commits(&metrics.render(0)),
            Some(1),
            "50 events, one commit"
        );

        // One event of the batch cannot be stored (its delivery id is taken): the whole
        // batch fails, every request hears so, and nothing of it is stored.
        let mut batch: Vec<NewEvent> = (50..60)
            .map(|n| event(&format!("evt_{n}"), &format!("msg_{n}")))
            .collect();
        batch.push(event("evt_clash", "msg_3"));
        let stored = submit_together(&committer, batch).await;
        assert_eq!(stored, [false; 11]);
        assert_eq!(store.stats().await.unwrap().events, 50);
        assert_eq!(commits(&metrics.render(0)), Some(2));
    }
}
