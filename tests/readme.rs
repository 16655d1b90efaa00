//! The README's library example compiles, runs, and is quoted verbatim.

mod common;
#[path = "../examples/library.rs"]
mod library;

use lookout_testkit::CaptureServer;

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
