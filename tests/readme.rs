//! The README holds true: its library example compiles, runs and is quoted verbatim;
//! its "run the server for real" lines run as written; its list of services is the
//! registry's.

mod common;
#[path = "../examples/library.rs"]
mod library;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use lookout_testkit::CaptureServer;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// The text of the README's section `heading` (`## heading`), up to the next one.
fn section(readme: &str, heading: &str) -> String {
    let start = readme
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("README.md has no `## {heading}`"));
    let body = &readme[start + heading.len() + 5..];
    body[..body.find("\n## ").unwrap_or(body.len())].to_owned()
}

/// The first ```sh block after `marker`.
fn shell_block_after(readme: &str, marker: &str) -> String {
    let at = readme
        .find(marker)
        .unwrap_or_else(|| panic!("README.md no longer says {marker:?}"));
    let start = readme[at..].find("```sh\n").unwrap() + at + "```sh\n".len();
    let end = readme[start..].find("```").unwrap() + start;
    readme[start..end].to_owned()
}

fn quoted_part(source: &str) -> &str {
    let start = source.find("// README:start\n").unwrap() + "// README:start\n".len();
    let end = source.find("// README:end").unwrap();
    &source[start..end]
}

#[test]
fn readme_quotes_the_example() {
    let root = env!("CARGO_MANIFEST_DIR");
    let example = std::fs::read_to_string(format!("{root}/examples/library.rs")).unwrap();
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    assert!(
        readme.contains(quoted_part(&example)),
        "README.md does not quote examples/library.rs verbatim"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_delivers() {
    let server = CaptureServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lookout.toml");
    std::fs::write(
        &config,
        format!(
            "[engine]\n{}\n[services.webhook]\nurls = [\"{}/readme\"]\n",
            common::test_engine_toml(),
            server.url()
        ),
    )
    .unwrap();
    let payload = lookout_testkit::fixture_path("favorite");
    let report = library::deliver(config.to_str().unwrap(), &payload)
        .await
        .unwrap();
    assert!(!report.has_failures(), "{report:?}");
    assert_eq!(server.requests()[0].json()["model"], "Favorite");
}

#[test]
fn readme_lists_every_service_and_only_services() {
    let services = section(&readme(), "Services");
    let listed: BTreeSet<String> = services
        .lines()
        .filter_map(|line| line.strip_prefix("- "))
        .flat_map(|item| {
            let names = item.split(':').next().unwrap_or_default();
            names
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    let registered: BTreeSet<String> = lookout::catalogue()
        .iter()
        .map(|r| r.name().to_owned())
        .collect();
    let missing: Vec<&String> = registered.difference(&listed).collect();
    let extra: Vec<&String> = listed.difference(&registered).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "README.md's Services list (`- `name`: what it is`) and the registry disagree: \
         registered but not listed: {missing:?}; listed but not registered: {extra:?}"
    );
}

/// Ends the `lookout serve` the README's lines started in the background, even when
/// the test fails.
struct Serving(std::path::PathBuf);

impl Drop for Serving {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

/// The README's lines with the changes that make them safe to run in a test: the
/// binary under test for `lookout`, a capture server for Slack, a free port for 8080,
/// engine settings that reach loopback only, and the backgrounded server's id kept
/// (to end it) with a wait until it listens.
fn runnable(block: &str, slack: &str, port: u16) -> String {
    let bin = env!("CARGO_BIN_EXE_lookout");
    let mut script = String::from("set -eu\n");
    for line in block.replace("\\\n", " ").lines() {
        let line = line
            .replace("https://hooks.slack.com/services/…", slack)
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"));
        let line = match line.strip_prefix("lookout ") {
            Some(rest) => format!("'{bin}' {rest}"),
            None => line,
        };
        if line.contains(" serve ") {
            let command = line.split('#').next().unwrap().trim().trim_end_matches('&');
            script.push_str(&format!(
                "{command} --config engine.toml > serve.log 2>&1 &\n\
                 echo $! > serve.pid\n\
                 for _ in $(seq 100); do grep -q 'listening on' serve.log && break; sleep 0.1; done\n"
            ));
        } else if line.starts_with("curl ") {
            script.push_str(&format!("{line} -sS -w '\\nHTTP %{{http_code}}\\n'\n"));
        } else {
            script.push_str(&line);
            script.push('\n');
        }
    }
    script
}

#[test]
fn the_serve_quick_start_runs_as_written() {
    let block = shell_block_after(&readme(), "To run the server for real");
    let slack = CaptureServer::start();
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("lookout/samples");
    std::fs::create_dir_all(&samples).unwrap();
    std::fs::copy(
        lookout_testkit::fixture_path("item"),
        samples.join("item.json"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("engine.toml"),
        format!("[engine]\n{}\n", common::test_engine_toml()),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = runnable(
        &block,
        &format!("{}/services/T000/B000/XXXX", slack.url()),
        port,
    );
    let _serving = Serving(dir.path().join("serve.pid"));
    let output = Command::new("timeout")
        .args(["30", "bash", "-c", &script])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
    assert!(
        output.status.success() && stdout.contains("HTTP 202"),
        "the README's lines failed:\n{script}\nstdout: {stdout}\nstderr: {}\nserve: {log}",
        String::from_utf8_lossy(&output.stderr)
    );
    let started = Instant::now();
    let arrived = slack.wait_for(1, Duration::from_secs(15));
    assert_eq!(
        arrived.len(),
        1,
        "nothing reached Slack's stand-in after {:?}; serve: {log}",
        started.elapsed()
    );
    assert_eq!(arrived[0].path, "/services/T000/B000/XXXX");
    assert!(arrived[0].json().is_object(), "{:?}", arrived[0].text());
}
