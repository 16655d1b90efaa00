//! `lookout replay`: stored events through a config's services, as diffs of the
//! requests against what the products' stored services send (docs/SERVING.md, "Replay").
//! The work is [`lookout_server::replay`]'s; this file reads the arguments and prints.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use lookout::config::ConfigFile;
use lookout_server::replay::{self, Change, Replay, ReplayReport, Sent};
use lookout_server::routing::RouteCache;
use lookout_server::store::{self, millis};

use crate::fatal::{Fatal, runtime};
use crate::outbox::Database;
use crate::output::escaped_but;

#[derive(Args)]
pub struct ReplayArgs {
    /// The config whose `[services.NAME]` tables stand in for the products' services of
    /// the same name (its other tables are not used).
    #[arg(long)]
    config: PathBuf,
    /// How far back: the events received within this long (`7d`, `12h`, `30m`).
    #[arg(long, value_parser = humantime::parse_duration)]
    since: Duration,
    /// Only this product's events.
    #[arg(long)]
    product: Option<String>,
    /// Only the config's service of this name.
    #[arg(long)]
    service: Option<String>,
    #[command(flatten)]
    db: Database,
    /// Store the config's services in the product and add a delivery for every changed
    /// or new request (needs --product; sending again adds nothing).
    #[arg(long)]
    send: bool,
    /// Print the comparisons and the summary as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ReplayArgs) -> Result<ExitCode, Fatal> {
    if args.send && args.product.is_none() {
        return Err(Fatal(
            "--send needs --product: it stores the config's services in that product".into(),
        ));
    }
    let file = ConfigFile::load(&args.config, lookout_server::policy::SECTIONS)?;
    if let Some(name) = &args.service
        && !file.services.iter().any(|t| t.instance.name == *name)
    {
        return Err(Fatal(format!("no [services.{name}] in the config")));
    }
    runtime()?.block_on(async move {
        let store = store::open(args.db.url()).await?;
        let now = store::now_ms();
        let request = Replay {
            services: &file.services,
            since: now.saturating_sub(millis(args.since)),
            product: args.product.clone(),
            service: args.service.clone(),
            limit: None,
            budget: None,
        };
        let report = replay::compare(store.as_ref(), &request).await?;
        let sent = match (&args.product, args.send) {
            (Some(product), true) => {
                let services = chosen(&file, args.service.as_deref());
                let routes = RouteCache::new(file.engine.clone());
                let sent = replay::send(store.as_ref(), &routes, product, &services, &report, now);
                Some(sent.await?)
            }
            _ => None,
        };
        if args.json {
            let json = serde_json::json!({
                "comparisons": report.comparisons,
                "summary": report.summary,
                "shaped": report.shaped,
                "sent": sent,
            });
            println!("{}", serde_json::to_string_pretty(&json)?);
        } else {
            print_report(&report, sent.as_ref(), args.product.as_deref());
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The config's services a `--service` leaves in.
fn chosen(file: &ConfigFile, service: Option<&str>) -> Vec<lookout::config::ServiceTable> {
    file.services
        .iter()
        .filter(|t| service.is_none_or(|s| s == t.instance.name))
        .cloned()
        .collect()
}

fn print_report(report: &ReplayReport, sent: Option<&Sent>, product: Option<&str>) {
    for comparison in &report.comparisons {
        if comparison.change == Change::Unchanged {
            continue;
        }
        let change = serde_json::to_value(comparison.change).unwrap_or_default();
        // Payload text in a terminal: control characters written as escapes.
        println!(
            "{} {} (product {}) · {}: {}",
            comparison.event,
            comparison.event_id,
            escaped_but(&comparison.product, &[]),
            comparison.instance,
            change.as_str().unwrap_or_default()
        );
        print!("{}", escaped_but(&comparison.diff, &['\n']));
    }
    let s = &report.summary;
    println!(
        "{} events, {} services: {} changed, {} unchanged, {} new, {} removed",
        s.events, s.services, s.changed, s.unchanged, s.new, s.removed
    );
    for shaped in &report.shaped {
        println!("{}", escaped_but(&shaped.describe(), &[]));
    }
    if s.unreadable > 0 {
        println!(
            "{} stored payloads no longer parse (left out)",
            s.unreadable
        );
    }
    if let Some(sent) = sent {
        let product = product.unwrap_or_default();
        if !sent.stored_services.is_empty() {
            println!(
                "stored in product {product}: {}",
                sent.stored_services.join(", ")
            );
        }
        println!(
            "added {} deliveries ({} were already there)",
            sent.added, sent.already
        );
    }
}
