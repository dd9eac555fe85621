//! A fuzzing run of the served OpenAPI document. Schemathesis (pinned in
//! `scripts/test-requirements.txt`, installed by `scripts/test` into `.venv-test/`) generates
//! requests for every operation of a running `kamshub serve` from `/openapi.json` — valid ones
//! and ones that break the document, which must be refused with a 4xx — and checks that no answer
//! is a 5xx and that every answer's status, content type, headers and body are ones the document
//! describes. Providers are fakes that refuse every token, as Telegram and Graph refuse made-up
//! ones. The number of examples per operation is bounded to keep the run short.

mod common;

use common::api::Api;
use common::cli::Kamshub;
use common::daemon::Daemon;
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use wiremock::matchers::{any, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Examples per operation and phase: enough to cover every field, small enough for CI.
const MAX_EXAMPLES: &str = "12";
/// The seed of the run, so a failure can be replayed.
const SEED: &str = "20240601";

/// The schemathesis of the test virtualenv; `None` (skip) when scripts/test has not installed it,
/// which fails instead under KAMSHUB_REQUIRE_SERVICES=1.
fn schemathesis() -> Option<PathBuf> {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-test/bin/schemathesis");
    if bin.is_file() {
        return Some(bin);
    }
    if common::services_required() {
        panic!("{} is missing but KAMSHUB_REQUIRE_SERVICES=1: run scripts/test", bin.display());
    }
    eprintln!("skipping: {} is missing (run scripts/test)", bin.display());
    None
}

/// Telegram and Graph as they answer made-up tokens.
async fn refusing_providers() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(path_regex(r"^/bot[^/]*/"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"})),
        )
        .mount(&server)
        .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": "Invalid OAuth access token - Cannot parse access token", "type": "OAuthException", "code": 190
        }})))
        .with_priority(10)
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let Some(st) = schemathesis() else { return };
    let providers = refusing_providers().await;
    let k = Kamshub::embedded(&providers.uri(), &providers.uri());
    let tenant = k.json(&["tenant", "create", "--name", "Fuzz", "--admin-email", "admin@fuzz.example"]);
    let temporary = tenant["admin"]["temporaryPassword"].as_str().unwrap().to_owned();
    let data_dir = k.data_dir().display().to_string();
    let uri = providers.uri();
    let env = [
        ("KAMSHUB_DATA_DIR", data_dir.as_str()),
        ("KAMSHUB_PROVIDERS__TELEGRAM_API_BASE", uri.as_str()),
        ("KAMSHUB_PROVIDERS__GRAPH_API_BASE", uri.as_str()),
        ("KAMSHUB_PROVIDERS__META_APP_SECRET", "fuzz-app-secret"),
        ("KAMSHUB_PROVIDERS__META_VERIFY_TOKEN", "fuzz-verify-token"),
        ("KAMSHUB_BOOTSTRAP_TOKEN", "fuzz-bootstrap-token"),
        // Sign-in limits answer 429 (documented), but would starve the run of other answers.
        ("KAMSHUB_HTTP__SIGN_INS_PER_EMAIL_PER_MINUTE", "100000"),
        ("KAMSHUB_HTTP__SIGN_INS_PER_ADDRESS_PER_MINUTE", "100000"),
    ];
    let mut daemon = Daemon::start(k.dir.path(), &env);
    let address = daemon.address();
    let api = Api::new(format!("http://{address}"));
    let tokens = api.first_sign_in("admin@fuzz.example", &temporary).await;
    let token = tokens["idToken"].as_str().unwrap().to_owned();

    let checks = [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "missing_required_header",
        "unsupported_method",
        "ignored_auth",
    ];
    let run = tokio::task::spawn_blocking(move || {
        Command::new(st)
            .args(["run", &format!("http://{address}/openapi.json")])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args(["--checks", &checks.join(",")])
            .args(["--phases", "examples,coverage,fuzzing"])
            // One worker: hypothesis describes strategies with `ast.parse`, which CPython 3.11
            // does not make safe across threads (SystemError: AST constructor recursion depth).
            .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED, "--workers", "1"])
            .args(["--generation-database", "none", "--no-color", "--request-timeout", "20"])
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let (status, log) = daemon.terminate();
    let report = String::from_utf8_lossy(&run.stdout).into_owned() + &String::from_utf8_lossy(&run.stderr);
    let cases = report
        .lines()
        .map(str::trim)
        .find(|l| l.split_whitespace().nth(1) == Some("generated") || l.split_whitespace().nth(1) == Some("generated,"))
        .unwrap_or("(no count)")
        .to_owned();
    eprintln!("schemathesis: {cases}");
    assert!(run.status.success(), "schemathesis found problems ({cases}):\n{report}");
    assert_eq!(status.code(), Some(0), "the daemon stopped cleanly");
    assert!(!log.iter().any(|l| l.contains("panicked")), "{log:#?}");
}
