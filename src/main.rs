//! `lookout`, the command line: parses arguments, loads config and payloads, calls the
//! engine and prints what it reports. Everything else lives in the `lookout` crate.

mod demo;
mod fatal;
mod outbox;
mod output;
mod replay;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lookout::config::ConfigFile;
use lookout::{Config, Engine, Event};
use lookout_server::policy;
// Links every service into the binary (a dependency alone is not enough for linkme).
use services as _;

use fatal::{Fatal, runtime};

/// Delivers a product's events (Sprint.ly-style payloads) to outside services.
#[derive(Parser)]
#[command(name = "lookout", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Send one event to every service enabled in the config.
    Send {
        /// The payload JSON file, or `-` for standard input.
        #[arg(long)]
        payload: String,
        /// The config file (TOML, or JSON) listing the enabled services and their options.
        #[arg(long)]
        config: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Print the requests each service would make (secrets redacted); send nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Send a built-in sample event to one configured service, to try an installation.
    Test {
        /// The service (or the name of its `[services.NAME]` table).
        service: String,
        #[arg(long)]
        config: PathBuf,
        /// Which sample: Item, Comment, Block, Favorite or Deploy.
        #[arg(long, default_value = "Item")]
        model: String,
        #[arg(long)]
        json: bool,
    },
    /// List the services this build knows.
    Services {
        #[arg(long)]
        json: bool,
    },
    /// Show install docs: one service's, or all of them; `templates`: what message
    /// templates can use.
    Docs {
        service: Option<String>,
        /// Render HTML (all services: one browsable page).
        #[arg(long)]
        html: bool,
    },
    /// Config files: `lookout config defaults` prints one with every setting of `serve`
    /// and `worker` at its default, each explained.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Check a config without sending anything.
    Validate {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run every sample event through a config against a local sink it starts itself.
    Demo,
    /// Accept events over HTTP and deliver them durably, retrying for hours (docs/SERVING.md).
    Serve(Box<outbox::ServeArgs>),
    /// Deliver events from a shared PostgreSQL database, without intake (docs/SCALING.md).
    Worker(outbox::WorkerArgs),
    /// Manage products: which services each one's events go to, with which options.
    Products {
        #[command(subcommand)]
        command: outbox::ProductsCommand,
    },
    /// Look at deliveries and their attempts.
    Deliveries {
        #[command(subcommand)]
        command: outbox::DeliveriesCommand,
    },
    /// Send a delivery again, or every dead-lettered one.
    Redeliver(outbox::RedeliverArgs),
    /// Remove old history now: finished events and their attempts (docs/SERVING.md).
    Prune(outbox::PruneArgs),
    /// Erase stored payloads, deliveries and attempts of a product or a person.
    Forget(outbox::ForgetArgs),
    /// Manage API tokens for `serve`: admin, or ingest for some products (docs/SERVING.md).
    Tokens {
        #[command(subcommand)]
        command: outbox::TokensCommand,
    },
    /// Run stored events through a config's services and show, per event and service,
    /// how the requests would change; `--send` sends the changed ones (docs/SERVING.md).
    Replay(replay::ReplayArgs),
    /// Make a link that opens the console of `serve` for one product only, until it
    /// expires or is revoked (for a product's own people); or list and revoke links.
    PortalLink(outbox::PortalLinkArgs),
    /// Print the JSON Schema (2020-12) of payloads: of every model, or of one; with
    /// `--asyncapi`, the AsyncAPI 3 document of what a webhook receiver gets.
    Schema {
        /// Item, Comment, Block, Favorite, Deploy or Alert.
        model: Option<String>,
        #[arg(long, conflicts_with = "model")]
        asyncapi: bool,
    },
    /// Print the OpenAPI 3.1 document of `serve`'s HTTP API (also at `GET /v1/openapi.json`).
    Openapi,
    /// List and revoke console sessions (signed in, or opened by a portal link).
    Sessions {
        #[command(subcommand)]
        command: outbox::SessionsCommand,
    },
    /// Counts of events, deliveries by status and service, and the queue.
    Stats {
        #[command(flatten)]
        db: outbox::Database,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print a complete config file: [engine], [worker] and [server], every setting at
    /// its default.
    Defaults,
}

impl Command {
    /// Whether the command only reads and prints (`lookout stats | head -1`), rather
    /// than sending or serving over sockets, where a peer hanging up is an error to
    /// report, not a reason to die.
    fn only_prints(&self) -> bool {
        matches!(
            self,
            Command::Services { .. }
                | Command::Docs { .. }
                | Command::Validate { .. }
                | Command::Config { .. }
                | Command::Products { .. }
                | Command::Deliveries { .. }
                | Command::Tokens { .. }
                | Command::Stats { .. }
                | Command::PortalLink(_)
                | Command::Openapi
                | Command::Schema { .. }
                | Command::Sessions { .. }
        )
    }
}

/// Lets a write to a closed pipe end the process (exit by SIGPIPE, as `cat` does)
/// instead of Rust's default of ignoring the signal and panicking in `println!`.
fn end_quietly_on_a_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: restores the default disposition of one signal, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    // Dropped at the end of main, after every runtime: it sends the last spans.
    let _telemetry = lookout::telemetry::init(
        tracing_subscriber::EnvFilter::try_from_env("LOOKOUT_LOG")
            .unwrap_or_else(|_| "warn".into()),
        output::stderr_takes_colours(),
    );
    let cli = Cli::parse();
    if cli.command.only_prints() {
        end_quietly_on_a_closed_pipe();
    }
    match run(cli) {
        Ok(code) => code,
        Err(Fatal(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

/// A config file, its `[worker]` and `[server]` tables checked too (every problem at
/// once): one file serves `send`, `serve` and `worker` alike.
fn load_config(path: &Path) -> Result<Config, Fatal> {
    Ok(Config::from(ConfigFile::load(path, policy::SECTIONS)?))
}

fn run(cli: Cli) -> Result<ExitCode, Fatal> {
    match cli.command {
        Command::Send {
            payload,
            config,
            json,
            dry_run,
        } => {
            let event = Event::parse(&read_payload(&payload)?)
                .map_err(|e| Fatal(format!("{payload}: {e}")))?;
            let config = load_config(&config)?;
            if dry_run {
                // Nothing is sent, so no engine (no HTTP client, no CA certificates).
                let previews = lookout::dispatch::preview(&event, &config.services);
                output::previews(&previews, json);
                return Ok(ExitCode::SUCCESS);
            }
            let engine = Engine::new(config)?;
            let report = runtime()?.block_on(engine.dispatch(&event));
            output::report(&report, json);
            Ok(exit_code(&report))
        }
        Command::Test {
            service,
            config,
            model,
            json,
        } => {
            let config = load_config(&config)?;
            let chosen: Vec<_> = config
                .services
                .iter()
                .filter(|i| i.name == service || i.service_name() == service)
                .cloned()
                .collect();
            if chosen.is_empty() {
                return Err(Fatal(format!(
                    "no service `{service}` is configured in the config"
                )));
            }
            let event = Event::parse(demo::sample(&model)?)?;
            let engine = Engine::new(Config {
                engine: config.engine,
                services: chosen,
            })?;
            let report = runtime()?.block_on(engine.dispatch(&event));
            output::report(&report, json);
            Ok(exit_code(&report))
        }
        Command::Services { json } => {
            output::services(json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Docs { service, html } => {
            output::docs(service.as_deref(), html)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { config } => {
            let config = load_config(&config)?;
            println!(
                "config is valid: {} service(s) enabled",
                config.services.len()
            );
            for instance in &config.services {
                println!(
                    "  {} ({}): {}",
                    instance.name,
                    instance.service_name(),
                    instance.options
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo => runtime()?.block_on(demo::run()),
        Command::Serve(args) => outbox::serve(*args),
        Command::Worker(args) => outbox::worker(args),
        Command::Config {
            command: ConfigCommand::Defaults,
        } => {
            print!("{}", lookout_server::config_defaults::document());
            Ok(ExitCode::SUCCESS)
        }
        Command::Products { command } => outbox::products(command),
        Command::Deliveries { command } => outbox::deliveries(command),
        Command::Redeliver(args) => outbox::redeliver(args),
        Command::Prune(args) => outbox::prune(args),
        Command::Forget(args) => outbox::forget(args),
        Command::Tokens { command } => outbox::tokens(command),
        Command::Stats { db, json } => outbox::stats(db, json),
        Command::Replay(args) => replay::run(args),
        Command::PortalLink(args) => outbox::portal_link(args),
        Command::Schema { model, asyncapi } => {
            output::schema(model.as_deref(), asyncapi)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Openapi => {
            println!("{}", lookout_server::http::openapi_json());
            Ok(ExitCode::SUCCESS)
        }
        Command::Sessions { command } => outbox::sessions(command),
    }
}

fn read_payload(source: &str) -> Result<String, Fatal> {
    if source == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        return Ok(text);
    }
    std::fs::read_to_string(Path::new(source))
        .map_err(|e| Fatal(format!("cannot read payload {source}: {e}")))
}

/// 0 when everything was delivered or skipped, 1 when some delivery failed.
fn exit_code(report: &lookout::Report) -> ExitCode {
    if report.has_failures() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
