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
use lookout_server::clients;
use lookout_server::console;
use lookout_server::health;
use lookout_server::http::{self, ServeConfig};
use lookout_server::policy::{self, RetrySchedule, WorkerConfig, WorkerSettings};
use lookout_server::retention;
use lookout_server::server_settings::{self, ServerSettings};
use lookout_server::shaping::fallback;
use lookout_server::store::upkeep::{ForgetRule, InstanceKey, PruneRule, Removed};
use lookout_server::store::{self, DeliveryFilter, Status, Store, StoredInstance, now_ms};
use lookout_server::tokens::{self, Scope};
use serde_json::{Map, Value};

use crate::fatal::{Fatal, runtime};
use crate::output;

/// Where the store is.
#[derive(Args)]
pub struct Database {
    /// A SQLite file (created if missing), or a `postgres://user@host:port/database` URL
    /// shared by several processes (the password: `$PGPASSWORD`, docs/SCALING.md).
    /// Default: lookout.db (for `serve` and `worker`: the config file's
    /// `[server] database`).
    #[arg(long)]
    database: Option<String>,
}

impl Database {
    /// The flag's, else the default.
    pub fn url(&self) -> &str {
        self.database
            .as_deref()
            .unwrap_or(server_settings::DEFAULT_DATABASE)
    }
}

/// The config file `serve` and `worker` read: the engine's settings, the `[worker]` and
/// `[server]` tables (empty without a file).
struct ProcessFile {
    engine: lookout::Settings,
    worker: WorkerSettings,
    server: ServerSettings,
}

/// How the workers deliver: shared by `serve` and `worker`. Each flag overrides the
/// config file's `[worker]` table.
#[derive(Args)]
pub struct WorkerOptions {
    /// A config file: its `[engine]` settings (timeouts, deadline), its `[worker]` table
    /// (schedule, lease, …) and its `[server]` table (every flag of this command; flags
    /// win). Its services are not used: a product's services live in the database.
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
    fn load(&self) -> Result<ProcessFile, Fatal> {
        let Some(path) = &self.config else {
            return Ok(ProcessFile {
                engine: lookout::Settings::default(),
                worker: WorkerSettings::default(),
                server: ServerSettings::default(),
            });
        };
        let file = ConfigFile::load(path, policy::SECTIONS)?;
        let in_file = |e: String| Fatal(format!("config {}: {e}", path.display()));
        Ok(ProcessFile {
            worker: WorkerSettings::from_sections(&file.sections).map_err(in_file)?,
            server: ServerSettings::from_sections(&file.sections).map_err(in_file)?,
            engine: file.engine,
        })
    }

    /// The engine settings, the workers' configuration (the file's `[worker]` table with
    /// the flags over it) and the file's `[server]` table.
    fn build(&self) -> Result<(lookout::Settings, WorkerConfig, ServerSettings), Fatal> {
        let file = self.load()?;
        let flags = WorkerSettings {
            retry_schedule: self.retry_schedule.as_ref().map(|s| s.delays.clone()),
            retry_jitter: self.retry_jitter,
            lease: self.lease,
            concurrency: self.concurrency,
            poll: self.poll,
            grace: self.grace,
            ..WorkerSettings::default()
        };
        let config = file
            .worker
            .overridden_by(flags)
            .apply(file.engine.deadline)
            .map_err(|e| Fatal(e.to_string()))?;
        Ok((file.engine, config, file.server))
    }
}

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    db: Database,
    /// Address to listen on. Default: 127.0.0.1:8080.
    #[arg(long)]
    listen: Option<String>,
    /// A file holding the bearer token clients must send (else $LOOKOUT_TOKEN).
    #[arg(long)]
    token_file: Option<PathBuf>,
    #[command(flatten)]
    worker: WorkerOptions,
    /// Request bodies above this many bytes are refused (413). Default: 1048576.
    #[arg(long, value_parser = at_least_one)]
    max_body: Option<usize>,
    /// Accept events but send nothing (workers run elsewhere: `lookout worker`).
    #[arg(long)]
    no_workers: bool,
    /// How long an `Idempotency-Key` is remembered: a POST repeating it within this
    /// gets the first answer instead of a second event. Default: 24h.
    #[arg(long, value_parser = humantime::parse_duration)]
    idempotency_ttl: Option<Duration>,
    /// A dotted path into the payload (`attributes.id`) whose value is the idempotency
    /// key of events posted without an `Idempotency-Key` header, and of batch events.
    #[arg(long, value_name = "PATH")]
    idempotency_field: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    previews: PreviewArgs,
    /// The longest a portal link may last: a longer one is refused when opened.
    /// Default: 7d.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    max_link_ttl: Option<Duration>,
}

/// The intake's connection limits (docs/SERVING.md, "Security").
#[derive(Args)]
pub struct LimitArgs {
    /// A request's line and headers must arrive within this. Default: 10s.
    #[arg(long, value_parser = humantime::parse_duration)]
    header_timeout: Option<Duration>,
    /// A request's body must arrive within this once its headers have (else 408).
    /// Default: 30s.
    #[arg(long, value_parser = humantime::parse_duration)]
    body_timeout: Option<Duration>,
    /// A connection that moves no byte for this long is closed. Default: 60s.
    #[arg(long, value_parser = humantime::parse_duration)]
    idle_timeout: Option<Duration>,
    /// Connections held at once; more wait to be accepted. Default: the open-file
    /// limit minus 256 kept for the store and the workers.
    #[arg(long, value_parser = at_least_one)]
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
    /// the config file's `[server] trusted_proxies`.
    #[arg(long = "trusted-proxy", value_name = "NETWORK", value_parser = clients::parse_network)]
    trusted_proxies: Vec<clients::IpNet>,
    /// Longer request heads (line and headers) are refused (431). Default: 16384.
    #[arg(long, value_parser = at_least_one)]
    max_header_bytes: Option<usize>,
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
    /// Console previews computed at once, in all; more are answered 429. Default: 2.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    max_previews: Option<usize>,
    /// Previews at once for one console session, and for one client address.
    /// Default: 1.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    max_previews_per_client: Option<usize>,
    /// `[services.*]` tables one preview may hold (more: 413). Default: 20.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    preview_max_services: Option<usize>,
    /// Event × service comparisons one preview makes at most (with many services, it
    /// compares fewer events, and says so). Default: 2000.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    preview_max_renders: Option<usize>,
    /// How long one preview may compare; then it stops and shows what it has.
    /// Default: 10s.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    preview_timeout: Option<Duration>,
}

impl ServeArgs {
    /// What the flags set, as a `[server]` table to lay over the file's.
    fn flags(&self) -> ServerSettings {
        let (limits, previews) = (&self.limits, &self.previews);
        ServerSettings {
            listen: self.listen.clone(),
            database: self.db.database.clone(),
            token_file: self.token_file.clone(),
            workers: self.no_workers.then_some(false),
            max_body: self.max_body,
            idempotency_ttl: self.idempotency_ttl,
            idempotency_field: self.idempotency_field.clone(),
            header_timeout: limits.header_timeout,
            body_timeout: limits.body_timeout,
            idle_timeout: limits.idle_timeout,
            max_connections: limits.max_connections,
            max_connections_per_client: limits.max_connections_per_client,
            max_requests_per_client: limits.max_requests_per_client,
            trusted_proxies: Some(limits.trusted_proxies.clone()).filter(|p| !p.is_empty()),
            max_header_bytes: limits.max_header_bytes,
            max_previews: previews.max_previews,
            max_previews_per_client: previews.max_previews_per_client,
            preview_max_services: previews.preview_max_services,
            preview_max_renders: previews.preview_max_renders,
            preview_timeout: previews.preview_timeout,
            max_link_ttl: self.max_link_ttl,
            metrics_listen: None,
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

/// `lookout portal-link PRODUCT` makes a link; `list` and `revoke ID` manage them.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct PortalLinkArgs {
    #[command(subcommand)]
    command: Option<PortalLinkCommand>,
    #[command(flatten)]
    new: NewLinkArgs,
}

#[derive(Args)]
pub struct NewLinkArgs {
    /// The product the link may see and change (and nothing else).
    #[arg(required = true)]
    product: Option<String>,
    /// How long the link and the session it opens last (`1h`, `30m`, `7d`), at most
    /// the cap (`[server] max_link_ttl` of --config, default 7d).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1h")]
    ttl: Duration,
    /// Where `lookout serve` is reached by whoever gets the link.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A file holding the admin token `serve` runs with (else $LOOKOUT_TOKEN): links
    /// are signed with a key derived from it.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The config file `serve` runs with: its `[server] max_link_ttl` caps --ttl.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    db: Database,
}

#[derive(Subcommand)]
pub enum PortalLinkCommand {
    /// List the links not expired yet (ids and products, never the links themselves).
    List {
        #[command(flatten)]
        db: Database,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a link by its id (`lnk_…`): it opens nothing more, and every session it
    /// opened ends.
    Revoke {
        id: String,
        #[command(flatten)]
        db: Database,
    },
}

#[derive(Subcommand)]
pub enum SessionsCommand {
    /// List the console sessions not expired yet (ids, never their cookies).
    List {
        #[command(flatten)]
        db: Database,
        #[arg(long)]
        json: bool,
    },
    /// End a session by its id (`ses_…`): its cookie opens nothing more.
    Revoke {
        id: String,
        #[command(flatten)]
        db: Database,
    },
}

/// Makes a portal link (printed on stdout, its id on stderr), or lists or revokes links.
pub fn portal_link(args: PortalLinkArgs) -> Result<ExitCode, Fatal> {
    runtime()?.block_on(async move {
        match args.command {
            None => new_link(args.new).await?,
            Some(PortalLinkCommand::List { db, json }) => {
                output::links(&open(&db).await?.links(now_ms()).await?, json);
            }
            Some(PortalLinkCommand::Revoke { id, db }) => {
                if !open(&db).await?.revoke_link(&id).await? {
                    return Err(Fatal(format!("no portal link `{id}`")));
                }
                println!("portal link {id} revoked, and the sessions it opened ended");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

async fn new_link(args: NewLinkArgs) -> Result<(), Fatal> {
    let product = args.product.unwrap_or_default();
    lookout::config::check_name(&product).map_err(|p| Fatal(format!("product: {p}")))?;
    let max_ttl = link_cap(args.config.as_ref())?;
    console::check_link_ttl(args.ttl, max_ttl).map_err(|e| Fatal(format!("--ttl: {e}")))?;
    let token = read_token(args.token_file.as_ref())?;
    let store = open(&args.db).await?;
    let scope = console::Scope::Product(product);
    let made = console::create_link(
        store.as_ref(),
        &token,
        &args.url,
        &scope,
        (args.ttl, max_ttl),
    );
    let (link, url) = made.await.map_err(|err| match err {
        console::LinkError::TooLong(why) => Fatal(format!("--ttl: {why}")),
        console::LinkError::Store(err) => Fatal(err.to_string()),
    })?;
    println!("{url}");
    eprintln!(
        "portal link {} (revoke it with `lookout portal-link revoke {}`)",
        link.id, link.id
    );
    Ok(())
}

/// The cap on a link's TTL: the config file's `[server] max_link_ttl`, else 7 days.
fn link_cap(config: Option<&PathBuf>) -> Result<Duration, Fatal> {
    let Some(path) = config else {
        return Ok(console::MAX_LINK_TTL);
    };
    let file = ConfigFile::load(path, policy::SECTIONS)?;
    let server = ServerSettings::from_sections(&file.sections)
        .map_err(|e| Fatal(format!("config {}: {e}", path.display())))?;
    Ok(server.max_link_ttl())
}

/// Lists or ends console sessions.
pub fn sessions(command: SessionsCommand) -> Result<ExitCode, Fatal> {
    runtime()?.block_on(async move {
        match command {
            SessionsCommand::List { db, json } => {
                output::sessions(&open(&db).await?.sessions(now_ms()).await?, json);
            }
            SessionsCommand::Revoke { id, db } => {
                if !open(&db).await?.end_session(&id).await? {
                    return Err(Fatal(format!("no session `{id}`")));
                }
                println!("session {id} ended");
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

async fn open(db: &Database) -> Result<Arc<dyn Store>, Fatal> {
    Ok(store::open(db.url()).await?)
}

pub fn serve(args: ServeArgs) -> Result<ExitCode, Fatal> {
    let (settings, worker, file) = args.worker.build()?;
    let server = file.overridden_by(args.flags());
    let token = read_token(server.token_file.as_ref())?;
    let mut config = ServeConfig::new(token);
    (config.settings, config.worker) = (settings, worker);
    config.apply(&server);
    let (listen, database) = (server.listen().to_owned(), server.database().to_owned());

    runtime()?.block_on(async move {
        let (store, _lock) = store::open_for_serve(&database).await?;
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| Fatal(format!("cannot listen on {listen}: {e}")))?;
        let address = listener.local_addr()?;
        println!(
            "lookout serve: listening on http://{address} (database {})",
            store::shown_database(&database)
        );
        println!("lookout serve: console at http://{address}/ui/ (sign in with the admin token)");
        std::io::stdout().flush()?;
        http::run(listener, store, config, http::shutdown_signal()).await?;
        println!("lookout serve: stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Workers only, on a shared database: any number of these, on any machines, next to
/// `serve --no-workers` intakes.
pub fn worker(args: WorkerArgs) -> Result<ExitCode, Fatal> {
    let (settings, config, file) = args.worker.build()?;
    let server = file.overridden_by(ServerSettings {
        database: args.db.database.clone(),
        metrics_listen: args.metrics_listen.clone(),
        ..ServerSettings::default()
    });
    let database = server.database().to_owned();
    if !store::is_postgres(&database) {
        return Err(Fatal(
            "`lookout worker` needs a database several processes share: \
             --database postgres://… (on a SQLite file, `lookout serve` runs the workers)"
                .into(),
        ));
    }
    runtime()?.block_on(async move {
        let store = store::open(&database).await?;
        println!(
            "lookout worker: {} delivering from {} ({} at once)",
            config.owner,
            store::shown_database(&database),
            config.concurrency
        );
        std::io::stdout().flush()?;
        let metrics = match &server.metrics_listen {
            Some(address) => {
                let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
                    Fatal(format!("metrics_listen: cannot listen on {address}: {e}"))
                })?;
                println!(
                    "lookout worker: metrics on http://{}/metrics",
                    listener.local_addr()?
                );
                Some(listener)
            }
            None => None,
        };
        http::run_workers(store, settings, config, metrics, http::shutdown_signal()).await?;
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
                let product = store.product(&id).await?;
                let problems = fallback::problems_in(product.as_ref(), &instance);
                if !problems.is_empty() {
                    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
                    return Err(Fatal(shown.join("\n")));
                }
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
                    .enable_targets(
                        InstanceKey {
                            product: &id,
                            instance: &name,
                        },
                        redeliver.then(now_ms),
                    )
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
                let shaped = store.shaped_into(&id).await?;
                output::delivery((&row, &shaped), &attempts, waiting.as_ref(), now, json);
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
