//! Calling the engine from Rust, as README.md shows (tests/readme.rs runs it and checks
//! the README quotes it verbatim). Usage: `cargo run --example library CONFIG PAYLOAD`.

// README:start
use services as _; // links every service into your binary

/// Loads a config, sends one payload to every enabled service, returns the report.
pub async fn deliver(
    config: &str,
    payload: &str,
) -> Result<lookout::Report, Box<dyn std::error::Error>> {
    let engine = lookout::Engine::new(lookout::Config::load(config)?)?;
    let event = lookout::Event::parse(&std::fs::read_to_string(payload)?)?;
    let report = engine.dispatch(&event).await;
    for row in &report.results {
        println!(
            "{} ({}): {}",
            row.instance,
            row.service,
            row.delivery.outcome.label()
        );
    }
    Ok(report)
}
// README:end

#[tokio::main]
#[allow(dead_code)] // a plain function when the test includes this file
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, config, payload] = args.as_slice() else {
        return Err("usage: library CONFIG PAYLOAD".into());
    };
    let report = deliver(config, payload).await?;
    std::process::exit(if report.has_failures() { 1 } else { 0 });
}
