//! The commands around the durable outbox: `serve`, `products`, `deliveries`,
//! `redeliver`, `prune`, `forget` and `stats`. They parse what the user typed, call the store or the server
//! in the `lookout` crate, and hand the results to `output` for printing.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use lookout::config::ConfigFile;
use lookout_server::clients::{self, ServeSettings, TrustedProxies};
use lookout_server::console::{self, PreviewLimits};
use lookout_server::health;
use lookout_server::intake::{self, ServeConfig};
use lookout_server::listen::{self, Limits};
use lookout_server::policy::{self, RetrySchedule, WorkerConfig, WorkerSettings};
use lookout_server::retention;
use lookout_server::store::upkeep::{ForgetRule, PruneRule, Removed};
use lookout_server::store::{self, DeliveryFilter, Status, Store, StoredInstance, now_ms};
use lookout_server::tokens::{self, Scope};
use serde_json::{Map, Value};

use crate::{Fatal, output};

/// Where the store is.
#[derive(Args)]
pub struct Database {
    /// A SQLite file (created if missing), or a `postgres://user@host:port/database` URL
    /// shared by several processes (the password: `$PGPASSWORD`, docs/SCALING.md).
    #[arg(long, default_value = "lookout.db")]
    pub database: String,
}

/// How the workers deliver: shared by `serve` and `worker`. Each flag overrides the
/// config file's `[worker]` table.
#[derive(Args)]
pub struct WorkerOptions {
    /// A config file: its `[engine]` settings (timeouts, deadline) and its `[worker]`
    /// table (schedule, lease, …). Its services are not used: a product's services live
    /// in the database.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The waits between attempts, comma-separated; after the last, the delivery is
    /// dead-lettered. Default: 5s,5m,30m,2h,5h,10h,10h.
    #[arg(long, value_name = "DELAYS")]
    retry_schedule: Option<RetrySchedule>,
    /// How much each wait may vary at random, as a fraction (0.1 = ±10%).
    #[arg(long, value_name = "FRACTION")]
    retry_jitter: Option<f64>,
    /// Deliveries attempted at the same time. Default: 32.
    #[arg(long)]
    concurrency: Option<usize>,
    /// On SIGTERM/SIGINT, how long attempts and requests in flight may take to finish.
    /// Default: 10s.
    #[arg(long, value_parser = humantime::parse_duration)]
    grace: Option<Duration>,
    /// How often the workers look at the queue when nothing wakes them. Default: 1s.
    #[arg(long, value_parser = humantime::parse_duration)]
    poll: Option<Duration>,
    /// How long a claimed delivery stays with this process before another worker may
    /// take it over (if this one died). Must be longer than the engine's deadline.
    /// Default: twice the deadline plus 30s.
    #[arg(long, value_parser = humantime::parse_duration)]
    lease: Option<Duration>,
}

impl WorkerOptions {
    /// The engine settings and the workers' configuration: the config file's, with the
    /// flags over them.
    fn build(&self) -> Result<(lookout::Settings, WorkerConfig), Fatal> {
        let (settings, from_file) = match &self.config {
            Some(path) => {
                let file = ConfigFile::load(path, policy::SECTIONS)?;
                let worker = WorkerSettings::from_sections(&file.sections)
                    .map_err(|e| Fatal(format!("config {}: {e}", path.display())))?;
                (file.engine, worker)
            }
            None => (lookout::Settings::default(), WorkerSettings::default()),
        };
        let flags = WorkerSettings {
            retry_schedule: self.retry_schedule.as_ref().map(|s| s.delays.clone()),
            retry_jitter: self.retry_jitter,
            lease: self.lease,
            concurrency: self.concurrency,
            poll: self.poll,
            grace: self.grace,
            ..WorkerSettings::default()
        };
        let config = from_file
            .overridden_by(flags)
            .apply(settings.deadline)
            .map_err(|e| Fatal(e.to_string()))?;
        Ok((settings, config))
    }

    /// The config file's `[serve]` table (defaults without a file).
    fn serve_settings(&self) -> Result<ServeSettings, Fatal> {
        let Some(path) = &self.config else {
            return Ok(ServeSettings::default());
        };
        let file = ConfigFile::load(path, policy::SECTIONS)?;
        ServeSettings::from_sections(&file.sections)
            .map_err(|e| Fatal(format!("config {}: {e}", path.display())))
    }
}

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    db: Database,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// A file holding the bearer token clients must send (else $LOOKOUT_TOKEN).
    #[arg(long)]
    token_file: Option<PathBuf>,
    #[command(flatten)]
    worker: WorkerOptions,
    /// Request bodies above this many bytes are refused (413).
    #[arg(long, default_value_t = 1024 * 1024)]
    max_body: usize,
    /// Accept events but send nothing (workers run elsewhere: `lookout worker`).
    #[arg(long)]
    no_workers: bool,
    /// How long an `Idempotency-Key` is remembered: a POST repeating it within this
    /// gets the first answer instead of a second event.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    idempotency_ttl: Duration,
    /// A dotted path into the payload (`attributes.id`) whose value is the idempotency
    /// key of events posted without an `Idempotency-Key` header, and of batch events.
    #[arg(long, value_name = "PATH")]
    idempotency_field: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    previews: PreviewArgs,
}

/// The intake's connection limits (docs/SERVING.md, "Security").
#[derive(Args)]
pub struct LimitArgs {
    /// A request's line and headers must arrive within this.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    header_timeout: Duration,
    /// A request's body must arrive within this once its headers have (else 408).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    body_timeout: Duration,
    /// A connection that moves no byte for this long is closed.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,
    /// Connections held at once; more wait to be accepted. Default: the open-file
    /// limit minus 256 kept for the store and the workers.
    #[arg(long)]
    max_connections: Option<usize>,
    /// Connections one client address may hold at once; more are answered 429 and
    /// closed (trusted proxies are exempt). Default: an eighth of --max-connections,
    /// at least 16.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    max_connections_per_client: Option<usize>,
    /// Requests one client may have in flight (behind a trusted proxy: per forwarded
    /// address); more are answered 429. Default: as --max-connections-per-client.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    max_requests_per_client: Option<usize>,
    /// A reverse proxy (address or network, `10.0.0.7`, `10.0.0.0/24`) whose
    /// `Forwarded` / `X-Forwarded-For` headers name the client; repeat for more. Replaces
    /// the config file's `[serve] trusted_proxies`.
    #[arg(long = "trusted-proxy", value_name = "NETWORK", value_parser = clients::parse_network)]
    trusted_proxies: Vec<clients::IpNet>,
    /// Longer request heads (line and headers) are refused (431).
    #[arg(long, default_value_t = 16 * 1024)]
    max_header_bytes: usize,
}

/// A count of at least 1.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(err) => Err(err.to_string()),
    }
}

/// The limits on the console's previews (docs/SERVING.md, "Limits on the request
/// path").
#[derive(Args)]
pub struct PreviewArgs {
    /// Console previews computed at once, in all; more are answered 429.
    #[arg(long, value_name = "N", default_value_t = PreviewLimits::default().concurrent, value_parser = at_least_one)]
    max_previews: usize,
    /// Previews at once for one console session, and for one client address.
    #[arg(long, value_name = "N", default_value_t = PreviewLimits::default().per_client, value_parser = at_least_one)]
    max_previews_per_client: usize,
    /// `[services.*]` tables one preview may hold (more: 413).
    #[arg(long, value_name = "N", default_value_t = PreviewLimits::default().max_services, value_parser = at_least_one)]
    preview_max_services: usize,
    /// Event × service comparisons one preview makes at most (with many services, it
    /// compares fewer events, and says so).
    #[arg(long, value_name = "N", default_value_t = PreviewLimits::default().max_renders, value_parser = at_least_one)]
    preview_max_renders: usize,
    /// How long one preview may compare; then it stops and shows what it has.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    preview_timeout: Duration,
}

impl PreviewArgs {
    fn build(&self) -> PreviewLimits {
        PreviewLimits {
            concurrent: self.max_previews,
            per_client: self.max_previews_per_client,
            max_services: self.preview_max_services,
            max_renders: self.preview_max_renders,
            timeout: self.preview_timeout,
        }
    }
}

impl LimitArgs {
    /// The limits, with `grace` as the time open requests get on shutdown, and the
    /// config file's `[serve]` table under the flags.
    fn build(&self, grace: Duration, file: &ServeSettings) -> Limits {
        let ceiling = listen::default_max_connections();
        let max_connections = self.max_connections.unwrap_or(ceiling);
        if max_connections > ceiling {
            tracing::warn!(
                "--max-connections {max_connections} leaves fewer than {} of the {} open \
                 files to the store and the workers",
                listen::FD_RESERVE,
                listen::open_file_limit()
            );
        }
        let per_client = listen::default_per_client(max_connections);
        let max_connections_per_client = self.max_connections_per_client.unwrap_or(per_client);
        let trusted_proxies = if self.trusted_proxies.is_empty() {
            file.trusted_proxies.clone().unwrap_or_default()
        } else {
            self.trusted_proxies.clone()
        };
        Limits {
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            idle_timeout: self.idle_timeout,
            max_connections,
            max_connections_per_client,
            max_requests_per_client: self
                .max_requests_per_client
                .unwrap_or(max_connections_per_client),
            trusted_proxies: TrustedProxies::new(trusted_proxies),
            max_header_bytes: self.max_header_bytes,
            drain: grace,
        }
    }
}

#[derive(Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    db: Database,
    /// Serve `GET /metrics` (Prometheus) and `GET /healthz` (the store commits) on this
    /// address, e.g. `127.0.0.1:9464`.
    #[arg(long, value_name = "ADDRESS")]
    metrics_listen: Option<String>,
    #[command(flatten)]
    worker: WorkerOptions,
}

#[derive(Subcommand)]
pub enum ProductsCommand {
    /// List products and their services.
    List {
        #[command(flatten)]
        db: Database,
        #[arg(long)]
        json: bool,
    },
    /// Show one product: its services (secrets redacted) and disabled targets.
    Show {
        id: String,
        #[command(flatten)]
        db: Database,
        #[arg(long)]
        json: bool,
    },
    /// Add (or replace) one service of a product.
    Add {
        /// The product's id.
        id: String,
        /// The name of this configured service (like a `[services.NAME]` table).
        name: String,
        /// Which service (default: NAME).
        #[arg(long)]
        service: Option<String>,
        /// An option, `KEY=VALUE`; repeat a key for a list.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        #[command(flatten)]
        db: Database,
    },
    /// Replace a product's services with those of a config file (`[services.*]`).
    Import {
        id: String,
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        db: Database,
    },
    /// Remove one service of a product, or the whole product.
    Remove {
        id: String,
        name: Option<String>,
        #[command(flatten)]
        db: Database,
    },
    /// Name the service told when a target is disabled or a delivery goes dead.
    Alerts {
        id: String,
        /// One of the product's configured services.
        #[arg(required_unless_present = "off", conflicts_with = "off")]
        name: Option<String>,
        /// Tell nobody.
        #[arg(long)]
        off: bool,
        #[command(flatten)]
        db: Database,
    },
    /// Enable the disabled targets of a product's service again.
    EnableTarget {
        id: String,
        name: String,
        /// Also send its dead and disabled deliveries again, in the same step.
        #[arg(long)]
        redeliver: bool,
        #[command(flatten)]
        db: Database,
    },
}

/// `lookout prune`: remove old history now.
#[derive(Args)]
pub struct PruneArgs {
    /// Events received longer ago than this (`30d`) whose deliveries are all finished.
    #[arg(long, value_parser = humantime::parse_duration)]
    older_than: Duration,
    /// Also events with a dead delivery last touched longer ago than this (default:
    /// kept until redelivered).
    #[arg(long, value_parser = humantime::parse_duration)]
    dead_older_than: Option<Duration>,
    #[command(flatten)]
    db: Database,
}

/// `lookout forget`: erase stored payloads, their deliveries and attempts.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true)))]
pub struct ForgetArgs {
    /// Every event of this product.
    #[arg(long, group = "what")]
    product: Option<String>,
    /// Events whose payload has this value at this path: `attributes.created_by.id=1111`.
    #[arg(long = "where", value_name = "PATH=VALUE", group = "what",
          value_parser = ForgetRule::parse_where)]
    field: Option<(Vec<String>, String)>,
    #[command(flatten)]
    db: Database,
}

#[derive(Subcommand)]
pub enum DeliveriesCommand {
    /// List deliveries, most recently changed first.
    List {
        /// Only these: pending, failed, delivered, skipped, disabled or dead.
        #[arg(long)]
        status: Option<Status>,
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        product: Option<String>,
        /// At most this many (0: all).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        db: Database,
        #[arg(long)]
        json: bool,
    },
    /// Show one delivery with every attempt.
    Show {
        id: String,
        #[command(flatten)]
        db: Database,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Create a token and print it, once: only its SHA-256 is kept.
    Create {
        /// admin (every route) or ingest (posting events for --product only).
        #[arg(long)]
        scope: Scope,
        /// With --scope ingest: a product it may post events for (repeat for more).
        #[arg(long = "product", value_name = "PRODUCT")]
        products: Vec<String>,
        /// How long it is valid (`90d`, `12h`); default: until revoked.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
        #[command(flatten)]
        db: Database,
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never the tokens themselves).
    List {
        #[command(flatten)]
        db: Database,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (`tok_…`).
    Revoke {
        id: String,
        #[command(flatten)]
        db: Database,
    },
}

#[derive(Args)]
pub struct RedeliverArgs {
    /// The delivery to send again.
    #[arg(required_unless_present = "dead", conflicts_with = "dead")]
    id: Option<String>,
    /// Every dead-lettered delivery (see --since and --service).
    #[arg(long)]
    dead: bool,
    /// With --dead: only those dead-lettered within this long (`1h`, `2d`).
    #[arg(long, value_parser = humantime::parse_duration, requires = "dead")]
    since: Option<Duration>,
    /// With --dead: only this service's.
    #[arg(long, requires = "dead")]
    service: Option<String>,
    #[command(flatten)]
    db: Database,
}

#[derive(Args)]
pub struct PortalLinkArgs {
    /// The product the link may see and change (and nothing else).
    product: String,
    /// How long the link and the session it opens last (`1h`, `30m`, `7d`).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1h")]
    ttl: Duration,
    /// Where `lookout serve` is reached by whoever gets the link.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A file holding the admin token `serve` runs with (else $LOOKOUT_TOKEN): links
    /// are signed with a key derived from it.
    #[arg(long)]
    token_file: Option<PathBuf>,
}

/// Prints a signed, expiring link that opens the console for one product only.
pub fn portal_link(args: PortalLinkArgs) -> Result<ExitCode, Fatal> {
    lookout::config::check_name(&args.product).map_err(|p| Fatal(format!("product: {p}")))?;
    let token = read_token(args.token_file.as_ref())?;
    let scope = console::Scope::Product(args.product);
    println!(
        "{}",
        console::signed_link(&args.url, &token, &scope, args.ttl)
    );
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> Result<tokio::runtime::Runtime, Fatal> {
    crate::runtime()
}

async fn open(db: &Database) -> Result<Arc<dyn Store>, Fatal> {
    Ok(store::open(&db.database).await?)
}

pub fn serve(args: ServeArgs) -> Result<ExitCode, Fatal> {
    let token = read_token(args.token_file.as_ref())?;
    let mut config = ServeConfig::new(token);
    (config.settings, config.worker) = args.worker.build()?;
    config.max_body = args.max_body;
    config.workers = !args.no_workers;
    config.idempotency = intake::IdempotencyConfig {
        ttl: args.idempotency_ttl,
        field: args.idempotency_field.clone(),
    };
    let file = args.worker.serve_settings()?;
    config.limits = args.limits.build(config.worker.grace, &file);
    config.previews = args.previews.build();

    runtime()?.block_on(async move {
        let (store, _lock) = store::open_for_serve(&args.db.database).await?;
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| Fatal(format!("cannot listen on {}: {e}", args.listen)))?;
        let address = listener.local_addr()?;
        println!(
            "lookout serve: listening on http://{address} (database {})",
            store::shown_database(&args.db.database)
        );
        println!("lookout serve: console at http://{address}/ui/ (sign in with the admin token)");
        std::io::stdout().flush()?;
        intake::run(listener, store, config, intake::shutdown_signal()).await?;
        println!("lookout serve: stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Workers only, on a shared database: any number of these, on any machines, next to
/// `serve --no-workers` intakes.
pub fn worker(args: WorkerArgs) -> Result<ExitCode, Fatal> {
    if !store::is_postgres(&args.db.database) {
        return Err(Fatal(
            "`lookout worker` needs a database several processes share: \
             --database postgres://… (on a SQLite file, `lookout serve` runs the workers)"
                .into(),
        ));
    }
    let (settings, config) = args.worker.build()?;
    runtime()?.block_on(async move {
        let store = store::open(&args.db.database).await?;
        println!(
            "lookout worker: {} delivering from {} ({} at once)",
            config.owner,
            store::shown_database(&args.db.database),
            config.concurrency
        );
        std::io::stdout().flush()?;
        let metrics = match &args.metrics_listen {
            Some(address) => {
                let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
                    Fatal(format!("--metrics-listen: cannot listen on {address}: {e}"))
                })?;
                println!(
                    "lookout worker: metrics on http://{}/metrics",
                    listener.local_addr()?
                );
                Some(listener)
            }
            None => None,
        };
        intake::run_workers(store, settings, config, metrics, intake::shutdown_signal()).await?;
        println!("lookout worker: stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// The bearer token: from `--token-file`, else `$LOOKOUT_TOKEN`. Never from the command
/// line, where every user of the machine could read it.
fn read_token(file: Option<&PathBuf>) -> Result<String, Fatal> {
    let token = match file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| Fatal(format!("cannot read {}: {e}", path.display())))?,
        None => std::env::var("LOOKOUT_TOKEN").unwrap_or_default(),
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        return Err(Fatal(
            "serve needs a bootstrap admin token: set LOOKOUT_TOKEN \
             (e.g. `export LOOKOUT_TOKEN=$(openssl rand -hex 32)`) or pass --token-file"
                .into(),
        ));
    }
    tokens::check_strength(&token)
        .map_err(|problem| Fatal(format!("the bearer token is too weak: {problem}")))?;
    Ok(token)
}

pub fn products(command: ProductsCommand) -> Result<ExitCode, Fatal> {
    runtime()?.block_on(async move {
        match command {
            ProductsCommand::List { db, json } => {
                output::products(&open(&db).await?.products().await?, json);
            }
            ProductsCommand::Show { id, db, json } => {
                let product = open(&db)
                    .await?
                    .product(&id)
                    .await?
                    .ok_or_else(|| Fatal(format!("no product `{id}`")))?;
                output::product(&product, json);
            }
            ProductsCommand::Add {
                id,
                name,
                service,
                set,
                db,
            } => {
                lookout::config::check_name(&id).map_err(|e| Fatal(format!("product: {e}")))?;
                let instance = instance_from_args(&name, service, &set)?;
                let store = open(&db).await?;
                store.put_instance(&id, &instance).await?;
                println!("product {id}: service {name} ({}) saved", instance.service);
            }
            ProductsCommand::Import { id, config, db } => {
                lookout::config::check_name(&id).map_err(|e| Fatal(format!("product: {e}")))?;
                let instances = instances_from_file(&config)?;
                open(&db).await?.put_product(&id, &instances).await?;
                println!(
                    "product {id}: {} service(s) imported from {}",
                    instances.len(),
                    config.display()
                );
            }
            ProductsCommand::Remove { id, name, db } => {
                let store = open(&db).await?;
                let removed = match &name {
                    Some(name) => store.remove_instance(&id, name).await?,
                    None => store.remove_product(&id).await?,
                };
                let what = match &name {
                    Some(name) => format!("service {name} of product {id}"),
                    None => format!("product {id}"),
                };
                if !removed {
                    return Err(Fatal(format!("no {what}")));
                }
                println!("{what} removed");
            }
            ProductsCommand::Alerts { id, name, off, db } => {
                let store = open(&db).await?;
                let product = store
                    .product(&id)
                    .await?
                    .ok_or_else(|| Fatal(format!("no product `{id}`")))?;
                let alerts = name.filter(|_| !off);
                if let Some(alerts) = &alerts {
                    health::check_alerts(&product, alerts).map_err(Fatal)?;
                }
                store.set_alerts(&id, alerts.as_deref()).await?;
                match alerts {
                    Some(alerts) => println!("product {id}: alerts go to {alerts}"),
                    None => println!("product {id}: no alerts"),
                }
            }
            ProductsCommand::EnableTarget {
                id,
                name,
                redeliver,
                db,
            } => {
                let store = open(&db).await?;
                let product = store.product(&id).await?;
                if product.is_none_or(|p| p.instances.iter().all(|i| i.name != name)) {
                    return Err(Fatal(format!("no service `{name}` in product `{id}`")));
                }
                let enabled = store
                    .enable_targets(&id, &name, redeliver, now_ms())
                    .await?;
                println!(
                    "product {id}, service {name}: {} target(s) enabled, {} deliveries due again",
                    enabled.targets, enabled.redelivered
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `--set KEY=VALUE` pairs as an options table (a repeated key makes a list), validated.
fn instance_from_args(
    name: &str,
    service: Option<String>,
    set: &[String],
) -> Result<StoredInstance, Fatal> {
    let mut options = Map::new();
    for pair in set {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| Fatal(format!("--set {pair}: expected KEY=VALUE")))?;
        let value = Value::from(value);
        match options.get_mut(key) {
            None => {
                options.insert(key.to_owned(), value);
            }
            Some(Value::Array(items)) => items.push(value),
            Some(single) => *single = Value::Array(vec![single.take(), value]),
        }
    }
    if let Some(service) = service {
        options.insert("service".into(), Value::from(service));
    }
    let mut table = Map::new();
    table.insert(name.to_owned(), Value::Object(options));
    validated(&table)?
        .pop()
        .ok_or_else(|| Fatal(format!("service {name} is marked disabled")))
}

fn validated(table: &Map<String, Value>) -> Result<Vec<StoredInstance>, Fatal> {
    store::instances_from_table(table).map_err(|problems| {
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        Fatal(shown.join("\n"))
    })
}

/// The `[services]` tables of a config file (TOML, or JSON when it starts with `{`).
fn instances_from_file(path: &PathBuf) -> Result<Vec<StoredInstance>, Fatal> {
    let file = ConfigFile::load(path, policy::SECTIONS)?;
    Ok(file
        .services
        .into_iter()
        .map(StoredInstance::from)
        .collect())
}

pub fn deliveries(command: DeliveriesCommand) -> Result<ExitCode, Fatal> {
    runtime()?.block_on(async move {
        match command {
            DeliveriesCommand::List {
                status,
                service,
                product,
                limit,
                db,
                json,
            } => {
                let filter = DeliveryFilter {
                    status,
                    service,
                    product,
                    updated_since: None,
                    limit,
                    after: None,
                };
                output::deliveries(&open(&db).await?.deliveries(&filter).await?, json);
            }
            DeliveriesCommand::Show { id, db, json } => {
                let store = open(&db).await?;
                let (row, attempts) = store
                    .delivery(&id)
                    .await?
                    .ok_or_else(|| Fatal(format!("no delivery `{id}`")))?;
                let now = store::now_ms();
                let waiting = store.waiting(&id, now).await?;
                output::delivery(&row, &attempts, waiting.as_ref(), now, json);
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn redeliver(args: RedeliverArgs) -> Result<ExitCode, Fatal> {
    runtime()?.block_on(async move {
        let store = open(&args.db).await?;
        let now = store::now_ms();
        if let Some(id) = &args.id {
            if !store.redeliver(id, now).await? {
                return Err(Fatal(format!("no delivery `{id}`")));
            }
            println!("delivery {id} is due again");
            return Ok(ExitCode::SUCCESS);
        }
        let filter = DeliveryFilter {
            status: Some(Status::Dead),
            service: args.service.clone(),
            product: None,
            updated_since: args.since.map(|since| now - store::millis(since)),
            limit: 0,
            after: None,
        };
        let dead = store.deliveries(&filter).await?;
        let bar = ProgressBar::new(dead.len() as u64).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} redelivered ({eta} left)")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        for delivery in &dead {
            store.redeliver(&delivery.id, now).await?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        println!("{} dead delivery(ies) are due again", dead.len());
        Ok(ExitCode::SUCCESS)
    })
}

pub fn prune(args: PruneArgs) -> Result<ExitCode, Fatal> {
    runtime()?.block_on(async move {
        let store = open(&args.db).await?;
        let now = now_ms();
        let rule = PruneRule {
            before: now - store::millis(args.older_than),
            dead_before: args.dead_older_than.map(|d| now - store::millis(d)),
        };
        let removed = retention::prune(store.as_ref(), &rule).await?;
        print_removed("pruned", &removed);
        Ok(ExitCode::SUCCESS)
    })
}

pub fn forget(args: ForgetArgs) -> Result<ExitCode, Fatal> {
    runtime()?.block_on(async move {
        let store = open(&args.db).await?;
        let rule = ForgetRule {
            product: args.product,
            field: args.field,
        };
        let removed = retention::forget(store.as_ref(), &rule).await?;
        print_removed("erased", &removed);
        Ok(ExitCode::SUCCESS)
    })
}

fn print_removed(what: &str, removed: &Removed) {
    println!(
        "{what} {} events, {} deliveries, {} attempts",
        removed.events, removed.deliveries, removed.attempts
    );
}

pub fn stats(db: Database, json: bool) -> Result<ExitCode, Fatal> {
    runtime()?.block_on(async move {
        output::stats(&open(&db).await?.stats().await?, json);
        Ok(ExitCode::SUCCESS)
    })
}

pub fn tokens(command: TokensCommand) -> Result<ExitCode, Fatal> {
    runtime()?.block_on(async move {
        match command {
            TokensCommand::Create {
                scope,
                products,
                expires,
                db,
                json,
            } => {
                let (secret, new) = tokens::create(scope, products, expires).map_err(Fatal)?;
                open(&db).await?.put_token(&new).await?;
                output::new_token(&new.token, &secret, json);
            }
            TokensCommand::List { db, json } => {
                output::tokens(&open(&db).await?.tokens().await?, json);
            }
            TokensCommand::Revoke { id, db } => {
                if !open(&db).await?.revoke_token(&id).await? {
                    return Err(Fatal(format!("no token `{id}`")));
                }
                println!("token {id} revoked");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
