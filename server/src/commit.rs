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
