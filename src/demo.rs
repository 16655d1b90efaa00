//! `lookout demo`: the real thing, end to end, with nothing to install and no account
//! anywhere. It starts `lookout serve` in-process on its embedded SQLite store (in a
//! temporary folder), a local sink standing in for Slack, Discord, Zulip and the rest,
//! posts the five sample events over HTTP, and shows what was delivered, retried and
//! received.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lookout::{Event, Settings};
use lookout_server::console;
use lookout_server::http::{self, ServeConfig};
use lookout_server::store::{self, DeliveryFilter};
use lookout_testkit::{CaptureServer, Reply};

use crate::fatal::Fatal;
use crate::output;

pub fn sample(model: &str) -> Result<&'static str, Fatal> {
    lookout::samples::for_model(model).ok_or_else(|| {
        let known: Vec<&str> = lookout::samples::ALL
            .iter()
            .map(|(name, _)| *name)
            .collect();
        Fatal(format!(
            "no sample for model `{model}` (known: {})",
            known.join(", ")
        ))
    })
}

/// The demo product's services: each points at the local sink, under a path that says
/// which service it stands in for.
fn demo_services(sink: &str) -> String {
    format!(
        r#"
[webhook]
urls = ["{sink}/your-app/hooks", "{sink}/flaky/hooks"]
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

[slack]
url = "{sink}/slack/services/T000/B000/XXXX"

[discord]
url = "{sink}/discord/api/webhooks/123/token"

[zulip]
site = "{sink}/zulip"
bot_email = "sprintly-bot@example.zulipchat.com"
api_key = "demo-key-not-real"
stream = "sprint.ly"

[msteams]
url = "{sink}/teams/workflows/abc/triggers/manual/paths/invoke?sig=demo"

[matrix]
homeserver = "{sink}/matrix"
access_token = "syt_demo"
room_id = "!room:example.org"

[ntfy]
server = "{sink}/ntfy"
topic = "sprintly-demo"
"#
    )
}

/// Settings for the demo: everything lives on this machine, so loopback is allowed.
fn demo_settings() -> Settings {
    Settings {
        request_timeout: Duration::from_secs(5),
        ..Settings::default()
    }
    .allowing_loopback()
}

/// In a terminal: the console's address and a sign-in link, then serve until Ctrl-C
/// (in CI, with no terminal, the demo ends by itself).
async fn show_console(store: &dyn store::Store, address: std::net::SocketAddr, token: &str) {
    let base = format!("http://{address}");
    let hour = Duration::from_secs(3600);
    let made = console::create_link(store, token, &base, &console::Scope::Admin, (hour, hour));
    let Ok((_, link)) = made.await else {
        println!("\nThe console: {base}/ui/");
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    println!("\nThe console: {base}/ui/");
    println!("Sign in directly (valid for an hour): {link}");
    println!("Serving until Ctrl-C…");
    let _ = tokio::signal::ctrl_c().await;
}

pub async fn run() -> Result<ExitCode, Fatal> {
    let sink = CaptureServer::start();
    // One of the webhook's targets fails twice before it answers: watch the retries.
    sink.script(
        "/flaky",
        [Reply::status(503), Reply::status(503), Reply::ok()],
    );
    let dir = tempfile::tempdir()?;
    let database = dir.path().join("lookout.db").display().to_string();
    let (store, _lock) = store::open_for_serve(&database).await?;

    let services: toml::Table = toml::from_str(&demo_services(&sink.url()))?;
    let services = serde_json::to_value(services)?;
    let instances = store::instances_from_table(services.as_object().expect("a table"))
        .map_err(|problems| Fatal(format!("demo config: {problems:?}")))?;
    store.put_product("demo", &instances).await?;

    let token = "demo-token-0123456789abcdef";
    let mut config = ServeConfig::new(token);
    config.settings = demo_settings();
    config.worker.schedule.delays = vec![Duration::from_millis(300), Duration::from_millis(600)];
    config.worker.poll = Duration::from_millis(100);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(http::run(listener, store.clone(), config, async {
        let _ = stopped.await;
    }));

    println!("lookout serve is listening on http://{address}, its SQLite store is {database}");
    println!(
        "A local sink at {} stands in for: webhook, slack, discord, zulip, msteams, matrix, ntfy.\n",
        sink.url()
    );
    let client = reqwest::Client::new();
    for (model, json) in lookout::samples::ALL {
        Event::parse(json)?;
        let answer = client
            .post(format!("http://{address}/v1/products/demo/events"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(json)
            .send()
            .await
            .map_err(|e| Fatal(format!("posting the sample: {e}")))?;
        let status = answer.status();
        let body = answer.bytes().await.unwrap_or_default();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        println!(
            "POST {model:<8} → {status} {} ({} deliveries)",
            body["id"].as_str().unwrap_or("?"),
            body["deliveries"].as_array().map_or(0, Vec::len)
        );
    }

    let started = Instant::now();
    while store.stats().await?.queue_depth > 0 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("\nThe webhook's deliveries (lookout deliveries list --service webhook):");
    let filter = DeliveryFilter {
        service: Some("webhook".into()),
        ..DeliveryFilter::default()
    };
    output::deliveries(&store.deliveries(&filter).await?, false);
    println!("\nOutbox (lookout stats):");
    output::stats(&store.stats().await?, false);

    println!("\nWhat the sink received, by the service it stands in for:");
    let mut seen: Vec<(String, Vec<u16>)> = Vec::new();
    for request in sink.requests() {
        let who = request
            .path
            .split('/')
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        match seen.iter_mut().find(|(name, _)| *name == who) {
            Some((_, statuses)) => statuses.push(request.status),
            None => seen.push((who, vec![request.status])),
        }
    }
    for (who, statuses) in seen {
        let shown: Vec<String> = statuses.iter().map(u16::to_string).collect();
        println!(
            "  {who:<9} {} requests, answered {}",
            statuses.len(),
            shown.join(" ")
        );
    }
    if std::io::stdin().is_terminal() {
        show_console(store.as_ref(), address, token).await;
    }
    let _ = stop.send(());
    serving
        .await
        .map_err(|e| Fatal(e.to_string()))?
        .map_err(|e| Fatal(e.to_string()))?;
    Ok(ExitCode::SUCCESS)
}
