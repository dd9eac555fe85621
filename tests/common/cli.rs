//! Runs the real `kamshub` binary against chosen backends and fake providers, as a platform
//! admin's onboarding script would.

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A `kamshub` installation: working dir, data dir and environment.
pub struct Kamshub {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
    /// Everything any command printed, to check no secret ever appears.
    pub printed: std::cell::RefCell<String>,
}

/// What one command did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        assert_eq!(self.code, 0, "command failed: {}", self.stderr);
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

impl Kamshub {
    /// Embedded backends in a fresh temp dir, providers pointed at `telegram` and `graph`.
    pub fn embedded(telegram: &str, graph: &str) -> Kamshub {
        let dir = tempfile::tempdir().unwrap();
        let env = vec![
            ("KAMSHUB_PROVIDERS__TELEGRAM_API_BASE".into(), telegram.to_owned()),
            ("KAMSHUB_PROVIDERS__GRAPH_API_BASE".into(), graph.to_owned()),
            ("KAMSHUB_HTTP__PUBLIC_URL".into(), "https://inbox.example.com".into()),
            ("KAMSHUB_DATA_DIR".into(), dir.path().join("data").display().to_string()),
        ];
        Kamshub { dir, env, printed: Default::default() }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn with(mut self, key: &str, value: &str) -> Kamshub {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::cargo_bin("kamshub").unwrap();
        for (key, _) in std::env::vars() {
            if key.starts_with("KAMSHUB_") {
                cmd.env_remove(key);
            }
        }
        cmd.current_dir(self.dir.path()).envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Runs `kamshub ARGS`.
    pub fn run(&self, args: &[&str]) -> Run {
        self.finish(self.command().args(args).output().unwrap())
    }

    /// Runs `kamshub ARGS` with every log level on (`KAMSHUB_LOG=trace`), to catch leaks in logs.
    pub fn run_traced(&self, args: &[&str]) -> Run {
        self.finish(self.command().env("KAMSHUB_LOG", "trace").args(args).output().unwrap())
    }

    /// Runs `kamshub ARGS` with `stdin` as standard input.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        self.finish(self.command().args(args).write_stdin(stdin).output().unwrap())
    }

    /// Runs `kamshub -o json ARGS`, expecting success.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        self.run(&all).json()
    }

    fn finish(&self, out: Output) -> Run {
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        self.printed.borrow_mut().push_str(&run.stdout);
        self.printed.borrow_mut().push_str(&run.stderr);
        run
    }
}

/// The sorted keys of a JSON object: the shape scripts rely on.
pub fn keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().expect("a JSON object").keys().cloned().collect();
    keys.sort();
    keys
}

/// Whether any file under `dir` contains `needle`.
pub fn any_file_contains(dir: &Path, needle: &str) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p).unwrap().windows(needle.len()).any(|w| w == needle.as_bytes()) {
                return true;
            }
        }
    }
    false
}

/// A fake Telegram Bot API with the documented answers: one good token per bot.
pub struct FakeTelegram {
    pub server: MockServer,
}

impl FakeTelegram {
    pub async fn start() -> FakeTelegram {
        let server = MockServer::start().await;
        // Any token not registered below is refused, as Telegram does.
        Mock::given(path_regex(r"^/bot[^/]+/getMe$"))
            .respond_with(
                ResponseTemplate::new(401)
                    .set_body_json(serde_json::json!({"ok": false, "error_code": 401, "description": "Unauthorized"})),
            )
            .with_priority(10)
            .mount(&server)
            .await;
        FakeTelegram { server }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Accepts `token` as the bot `username`; `set_webhook_ok` false makes setWebhook fail.
    pub async fn bot(&self, token: &str, username: &str, set_webhook_ok: bool) {
        Mock::given(method("POST"))
            .and(path(format!("/bot{token}/getMe")))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "ok": true,
                "result": {"id": 7000001, "is_bot": true, "first_name": "Support", "username": username}
            })))
            .mount(&self.server)
            .await;
        let answer = if set_webhook_ok {
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"ok": true, "result": true, "description": "Webhook was set"}))
        } else {
            ResponseTemplate::new(400).set_body_json(
                serde_json::json!({"ok": false, "error_code": 400, "description": "Bad Request: bad webhook: HTTPS url must be provided for webhook"}),
            )
        };
        Mock::given(method("POST"))
            .and(path(format!("/bot{token}/setWebhook")))
            .respond_with(answer)
            .mount(&self.server)
            .await;
    }

    /// The JSON bodies of every setWebhook call for `token`.
    pub async fn set_webhook_calls(&self, token: &str) -> Vec<Value> {
        self.server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.url.path() == format!("/bot{token}/setWebhook"))
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect()
    }
}

/// A fake Graph API: `subscribed_apps` succeeds for one page token, answers code 190 otherwise.
pub struct FakeGraph {
    pub server: MockServer,
}

impl FakeGraph {
    pub async fn start(page_id: &str, page_token: &str) -> FakeGraph {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(format!("/{page_id}/subscribed_apps")))
            .and(wiremock::matchers::body_string_contains(format!("access_token={page_token}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"success": true})))
            .mount(&server)
            .await;
        Mock::given(path_regex(r"^/\d+/subscribed_apps$"))
            .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({"error": {
                "message": "Invalid OAuth access token - Cannot parse access token",
                "type": "OAuthException", "code": 190, "fbtrace_id": "AbCdEf"
            }})))
            .with_priority(10)
            .mount(&server)
            .await;
        FakeGraph { server }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The form bodies of every subscribed_apps call.
    pub async fn subscribe_calls(&self) -> Vec<String> {
        self.server
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.url.path().ends_with("/subscribed_apps"))
            .map(|r| String::from_utf8(r.body).unwrap())
            .collect()
    }
}
