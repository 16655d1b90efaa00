//! The contracts (docs/OPERATING.md, "The API contract" and "Payload schemas").
//!
//! The OpenAPI document that `lookout openapi` prints is the one `serve` answers at
//! `/v1/openapi.json` without a token, it documents every route with one error shape,
//! and a real API fuzzer, schemathesis (from `.venv/`, installed by `make test-deps`),
//! finds nothing wrong with a live `serve` against it. The payload schemas (`lookout
//! schema`) take every sample and fixture and refuse what the intake refuses, checked by
//! a real JSON Schema validator; the AsyncAPI document is served and printed alike.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::serving::{Place, Serving};
use serde_json::Value;

const TOKEN: &str = "contract-test-token-8f2c41d9e7";

/// The checks the issue asks for, all of them.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance,negative_data_rejection,ignored_auth,\
                      missing_required_header,unsupported_method";

/// Examples per operation and phase: enough to find the classic faults, small enough
/// for `make test` on a shared machine.
const EXAMPLES_PER_OPERATION: &str = "15";

/// The fuzzer is stopped (and the test fails) past this.
const FUZZ_TIME_LIMIT: Duration = Duration::from_secs(300);

fn serve() -> (Place, Serving) {
    let place = Place::new(TOKEN, &format!("[engine]\n{}", common::test_engine_toml()));
    let serving = place.serve(&["--no-workers"]);
    (place, serving)
}

fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut request = reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(10));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("GET");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    })
}

fn printed_openapi() -> Value {
    let printed = common::stdout_of(Command::new(env!("CARGO_BIN_EXE_lookout")).arg("openapi"));
    serde_json::from_str(&printed).expect("`lookout openapi` prints JSON")
}

#[test]
fn the_served_document_is_the_printed_one_and_needs_no_token() {
    let (_place, serving) = serve();
    let (status, body) = get(&format!("{}/v1/openapi.json", serving.url), None);
    assert_eq!(status, 200, "{body}");
    let served: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(served, printed_openapi());
    assert_eq!(served["openapi"], "3.1.0");
    assert!(!body.contains(TOKEN), "the document must hold no secret");
}

#[test]
fn every_route_is_documented() {
    let document = printed_openapi();
    let paths = document["paths"].as_object().expect("paths");
    let expected = [
        ("/v1/products/{id}/events", "post"),
        ("/v1/events", "post"),
        ("/v1/events/batch", "post"),
        ("/v1/products", "get"),
        ("/v1/products/{id}", "get"),
        ("/v1/products/{id}", "put"),
        ("/v1/products/{id}", "delete"),
        ("/v1/products/{id}/services/{name}/enable", "post"),
        ("/v1/services", "get"),
        ("/v1/tokens", "get"),
        ("/v1/tokens", "post"),
        ("/v1/tokens/{id}", "delete"),
        ("/v1/deliveries", "get"),
        ("/v1/deliveries/{id}", "get"),
        ("/v1/deliveries/{id}/redeliver", "post"),
        ("/healthz", "get"),
        ("/metrics", "get"),
        ("/v1/openapi.json", "get"),
        ("/v1/asyncapi.json", "get"),
    ];
    for (path, method) in expected {
        let operation = &paths[path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        let secured = operation["security"].is_array();
        let contract = path.ends_with("api.json");
        assert_eq!(
            secured,
            path.starts_with("/v1/") && !contract,
            "{method} {path}: only /v1 routes other than the contract take a token"
        );
    }
}

#[test]
fn every_error_answer_has_the_one_error_shape() {
    let document = printed_openapi();
    let mut errors = 0;
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            for (status, answer) in operation["responses"].as_object().expect("responses") {
                if status.starts_with('4') || status.starts_with('5') {
                    let schema = &answer["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(
                        schema, "#/components/schemas/ApiError",
                        "{method} {path} {status}"
                    );
                    errors += 1;
                }
            }
        }
    }
    assert!(errors > 50, "only {errors} error answers documented");
}

/// `.venv/bin/schemathesis` (or under `$LOOKOUT_VENV`). Missing is a failure, not a
/// skip: `make test-deps` installs it.
fn schemathesis() -> PathBuf {
    let venv = std::env::var_os("LOOKOUT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let found = venv.join("bin/schemathesis");
    assert!(
        found.exists(),
        "{} is missing: run `make test-deps`",
        found.display()
    );
    found
}

/// Waits for `child` up to `limit` (killing it then); whether it exited with success.
fn finish_within(mut child: Child, limit: Duration) -> bool {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status.success();
        }
        if started.elapsed() > limit {
            common::stop_child(&mut child);
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn schemathesis_finds_nothing() {
    let fuzzer = schemathesis();
    let (place, serving) = serve();
    let reports = place.dir.path().join("schemathesis");
    std::fs::create_dir_all(&reports).expect("dir");
    // To a file, not a pipe: a long report must not block the fuzzer on a full pipe.
    let log = reports.join("output.txt");
    let out = std::fs::File::create(&log).expect("log file");
    let child = Command::new(fuzzer)
        .arg("run")
        .arg(format!("{}/v1/openapi.json", serving.url))
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--checks", CHECKS])
        .args(["--max-examples", EXAMPLES_PER_OPERATION])
        // Reproducible in CI; a failure names its seed to replay.
        .args(["--seed", "26"])
        .args(["--request-timeout", "10"])
        .arg("--no-color")
        // Its example database and any report stay in the temp dir.
        .current_dir(&reports)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log file"))
        .stderr(out)
        .spawn()
        .expect("start schemathesis");
    let passed = finish_within(child, FUZZ_TIME_LIMIT);
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!output.contains(TOKEN), "schemathesis printed the token");
    assert!(
        passed,
        "schemathesis found problems (or ran out of time):\n{output}"
    );
}

// ---- Payload schemas (JSON Schema 2020-12) and the webhook receiver's AsyncAPI ----

fn lookout_json(args: &[&str]) -> Value {
    let printed = common::stdout_of(Command::new(env!("CARGO_BIN_EXE_lookout")).args(args));
    serde_json::from_str(&printed).expect("prints JSON")
}

/// A 2020-12 validator of `schema`; panics if the schema itself is not valid.
fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::draft202012::new(schema).expect("a valid JSON Schema")
}

/// Every problem `validator` finds in `instance`, for a failure message.
fn problems(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// The samples (`lookout/samples`) and the test fixtures (`testkit/fixtures`).
fn every_payload() -> Vec<(String, Value)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut payloads = Vec::new();
    for dir in ["lookout/samples", "testkit/fixtures"] {
        for entry in std::fs::read_dir(root.join(dir)).expect(dir) {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).expect("read");
                let payload = serde_json::from_str(&text).expect("JSON");
                payloads.push((path.display().to_string(), payload));
            }
        }
    }
    assert!(payloads.len() >= 15, "samples and fixtures not found");
    payloads
}

#[test]
fn every_sample_and_fixture_is_valid() {
    let all = validator(&lookout_json(&["schema"]));
    let models = ["Item", "Comment", "Block", "Favorite", "Deploy"];
    let by_model: Vec<_> = models
        .iter()
        .map(|m| (*m, validator(&lookout_json(&["schema", m]))))
        .collect();
    for (name, payload) in every_payload() {
        assert!(
            all.is_valid(&payload),
            "{name}: {:?}",
            problems(&all, &payload)
        );
        let model = payload["model"].as_str().unwrap_or_default();
        if let Some((_, one)) = by_model.iter().find(|(m, _)| *m == model) {
            assert!(
                one.is_valid(&payload),
                "{name}: {:?}",
                problems(one, &payload)
            );
        }
    }
}

#[test]
fn the_schemas_refuse_what_the_engine_refuses_and_no_more() {
    let all = validator(&lookout_json(&["schema"]));
    let item = validator(&lookout_json(&["schema", "item"]));
    let sample: Value =
        serde_json::from_str(lookout::samples::for_model("item").expect("sample")).expect("sample");
    let edited = |edit: &dyn Fn(&mut Value)| {
        let mut payload = sample.clone();
        edit(&mut payload);
        payload
    };
    // Refused by the intake: the schema says no too.
    let refused = [
        edited(&|p| drop(p.as_object_mut().unwrap().remove("product"))),
        edited(&|p| p["attributes"] = Value::from(vec![1, 2])),
        edited(&|p| p["model"] = Value::from("")),
        edited(&|p| p["product"]["id"] = Value::from(-1)),
        edited(&|p| p["product"] = Value::from("sprint.ly")),
    ];
    for payload in &refused {
        assert!(
            lookout::Event::parse(&payload.to_string()).is_err(),
            "{payload}"
        );
        assert!(!all.is_valid(payload), "the schema took {payload}");
    }
    // Taken by the engine (a missing title is reported only by services that need it).
    let taken = [
        edited(&|p| drop(p["attributes"].as_object_mut().unwrap().remove("title"))),
        edited(&|p| drop(p.as_object_mut().unwrap().remove("action"))),
        edited(&|p| p["attributes"]["score"] = Value::from(3)),
        edited(&|p| p["attributes"]["tags"] = Value::Null),
    ];
    for payload in &taken {
        assert!(
            lookout::Event::parse(&payload.to_string()).is_ok(),
            "{payload}"
        );
        assert!(
            item.is_valid(payload),
            "{payload}: {:?}",
            problems(&item, payload)
        );
    }
    // What each field is, when it is there.
    let mistyped = edited(&|p| p["attributes"]["title"] = Value::from(12));
    assert!(!item.is_valid(&mistyped));
    assert!(
        !all.is_valid(&mistyped),
        "the model's rule applies in the all-model schema"
    );
}

#[test]
fn an_unknown_model_is_refused_by_name() {
    let output = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["schema", "Widget"])
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown model `Widget`"));
}

#[test]
fn the_asyncapi_document_is_served_printed_and_describes_what_is_sent() {
    let printed = lookout_json(&["schema", "--asyncapi"]);
    let (_place, serving) = serve();
    let (status, body) = get(&format!("{}/v1/asyncapi.json", serving.url), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).expect("JSON"), printed);
    assert_eq!(printed["asyncapi"], "3.0.0");

    // The message's payload schema, made a standalone document, takes every payload.
    let mut payload = printed["components"]["schemas"]["Event"].clone();
    payload["components"] = printed["components"].clone();
    let payloads = validator(&payload);
    for (name, sample) in every_payload() {
        assert!(
            payloads.is_valid(&sample),
            "{name}: {:?}",
            problems(&payloads, &sample)
        );
    }

    // The headers a signed request really carries fit the documented ones.
    let message = &printed["components"]["messages"]["event"];
    let headers = validator(&message["headers"]);
    let keys = [
        b"first key 16 bytes".to_vec(),
        b"second key 16 bytes".to_vec(),
    ];
    let signed = lookout::request::signing::standard_webhooks(&keys, "msg_1", 1_700_000_000, b"{}");
    let sent: serde_json::Map<String, Value> = signed
        .into_iter()
        .map(|(name, value)| (name.to_owned(), Value::from(value)))
        .collect();
    for name in sent.keys() {
        assert!(
            message["headers"]["properties"][name].is_object(),
            "{name} undocumented"
        );
    }
    let sent = Value::Object(sent);
    assert!(headers.is_valid(&sent), "{:?}", problems(&headers, &sent));
}

/// The official AsyncAPI parser (`tests/asyncapi`, installed by `make test-deps`) finds
/// no error in the document. Missing is a failure, not a skip.
#[test]
fn the_asyncapi_parser_takes_the_document() {
    let checker = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/asyncapi");
    assert!(
        checker.join("node_modules/@asyncapi/parser").is_dir(),
        "@asyncapi/parser is missing: run `make test-deps`"
    );
    let place = tempfile::tempdir().expect("temp dir");
    let document = place.path().join("asyncapi.json");
    let printed = lookout_json(&["schema", "--asyncapi"]);
    std::fs::write(&document, printed.to_string()).expect("write");
    let log = place.path().join("parser.txt");
    let out = std::fs::File::create(&log).expect("log file");
    let child = Command::new("node")
        .arg(checker.join("check.mjs"))
        .arg(&document)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log file"))
        .stderr(out)
        .spawn()
        .expect("start node");
    let passed = finish_within(child, Duration::from_secs(60));
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(passed, "the AsyncAPI parser refused the document:\n{said}");
}

/// `method` on `url` with the test's token: the status, the content type, the `Allow`
/// header and the body as JSON.
fn refused(method: &str, url: &str) -> (u16, String, String, Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = reqwest::Client::new()
            .request(method, url)
            .bearer_auth(TOKEN)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("request");
        let header = |name| {
            let value = response.headers().get(name);
            value
                .map(|v| v.to_str().unwrap_or_default().to_owned())
                .unwrap_or_default()
        };
        let (content_type, allow) = (header("content-type"), header("allow"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, content_type, allow, body)
    })
}

#[test]
fn the_frameworks_own_refusals_have_the_error_shape_too() {
    let (_place, serving) = serve();
    let base = &serving.url;
    let cases = [
        ("GET", format!("{base}/v1/deliveries?limit=abc"), 400),
        ("GET", format!("{base}/v1/deliveries/%FF"), 400),
        ("PATCH", format!("{base}/v1/tokens"), 405),
        ("GET", format!("{base}/v1/nothing-here"), 404),
    ];
    for (method, url, status) in cases {
        let (got, content_type, allow, body) = refused(method, &url);
        assert_eq!(got, status, "{method} {url}: {body}");
        assert!(
            content_type.starts_with("application/json"),
            "{method} {url}: {content_type}"
        );
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
        if status == 405 {
            assert_eq!(allow, "GET,HEAD,POST", "the 405 keeps its Allow header");
        }
    }
}
