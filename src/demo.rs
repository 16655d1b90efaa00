//! `lookout demo`: real deliveries to a local sink, so a newcomer sees the engine work
//! without any account anywhere.

use std::process::ExitCode;

use lookout::testing::CaptureServer;
use lookout::{Config, Engine, Event};

use crate::Fatal;

/// The built-in sample events, by model.
const SAMPLES: &[(&str, &str)] = &[
    ("Item", include_str!("../tests/fixtures/item.json")),
    ("Comment", include_str!("../tests/fixtures/comment.json")),
    ("Block", include_str!("../tests/fixtures/block.json")),
    ("Favorite", include_str!("../tests/fixtures/favorite.json")),
    ("Deploy", include_str!("../tests/fixtures/deploy.json")),
];

pub fn sample(model: &str) -> Result<&'static str, Fatal> {
    SAMPLES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(model))
        .map(|(_, json)| *json)
        .ok_or_else(|| {
            let known: Vec<&str> = SAMPLES.iter().map(|(name, _)| *name).collect();
            Fatal(format!(
                "no sample for model `{model}` (known: {})",
                known.join(", ")
            ))
        })
}

/// The demo config: every service that can point at a plain URL points at the sink. The
/// sink is on 127.0.0.1, which the SSRF guard refuses unless allowed.
fn demo_config(sink: &str) -> String {
    format!(
        r#"
[engine]
allow_networks = ["127.0.0.0/8", "::1/128"]

[services.webhook]
urls = ["{sink}/hooks/sprintly", "{sink}/hooks/archive"]
"#
    )
}

pub async fn run() -> Result<ExitCode, Fatal> {
    let sink = CaptureServer::start();
    let config_text = demo_config(&sink.url());
    println!(
        "A local sink is listening on {}. Config used:\n{config_text}",
        sink.url()
    );
    let engine = Engine::new(Config::parse(&config_text, "demo config")?)?;
    for (model, json) in SAMPLES {
        let event = Event::parse(json)?;
        println!("--- sample {model} event");
        crate::output::report(&engine.dispatch(&event).await, false);
        println!();
    }
    let received = sink.requests();
    println!("The sink received {} requests:", received.len());
    for request in &received {
        println!(
            "  {} {} ({}, {} bytes)",
            request.method,
            request.path,
            request.header("content-type").unwrap_or("no content type"),
            request.body.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
