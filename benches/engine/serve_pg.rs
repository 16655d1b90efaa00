//! Figure 7 on PostgreSQL: intake, drain and latency with 1, 2 and 4 worker processes
//! (in-process, each with its own connection pool and `LISTEN` connection, as
//! `lookout worker` processes have), each on a fresh schema of the database
//! `LOOKOUT_TEST_DATABASE_URL` names (scripts/with-postgres.sh starts a throwaway
//! cluster). Without it, the figure says it was not run.

use std::sync::Arc;

use lookout_server::store::{self, Store};
use lookout_testkit::postgres::TestSchema;
use serde_json::{Value, json};

use crate::serve::{self, Serving};
use crate::{Bench, sink};

/// Worker processes in each variant.
const PROCESSES: [usize; 3] = [1, 2, 4];

pub async fn run(bench: &Bench) -> Value {
    if std::env::var(TestSchema::VAR).is_err() {
        return json!({ "skipped": format!("{} is not set (run under scripts/with-postgres.sh)", TestSchema::VAR) });
    }
    let mut variants = Vec::new();
    for processes in PROCESSES {
        variants.push(variant(bench, processes).await);
    }
    json!({ "events": bench.plan.serve_events, "variants": variants })
}

async fn variant(bench: &Bench, processes: usize) -> Value {
    let events = bench.plan.serve_events;
    let schema = TestSchema::create().await;
    let open = || async { store::open(&schema.url).await.expect("PostgreSQL store") };
    let intake = open().await;
    let probe_sink = sink::Sink::start(1);
    serve::put_product(&*intake, "bench", &bench.sink.url(0, 0)).await;
    serve::put_product(&*intake, "probe", &probe_sink.url(0, 0)).await;

    let accepted = serve::accept(intake.clone(), &bench.event, events).await;
    let drained =
        serve::drain_all(intake.clone(), stores(open, processes).await, bench, events).await;

    let serving = Serving::start(intake.clone(), false).await;
    let workers = serve::start_workers(stores(open, processes).await);
    let latency = serve::latency(bench, &serving.base, &probe_sink, drained / 2.0).await;
    serving.stop().await;
    serve::stop_workers(workers).await;
    drop(intake);
    schema.drop_schema().await;
    json!({
        "workers": processes,
        "accepted_per_s": accepted.round(),
        "drain_per_s": drained.round(),
        "latency": latency,
    })
}

async fn stores<F, Fut>(open: F, n: usize) -> Vec<Arc<dyn Store>>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let mut opened = Vec::with_capacity(n);
    for _ in 0..n {
        opened.push(open().await);
    }
    opened
}
