//! A client of the tenant HTTP API for tests: sign in (answering the new-password challenge),
//! call routes with a bearer token, and mint expired tokens with the local identity's key.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::path::Path;

/// The password test users choose when replacing their temporary one.
pub const NEW_PASSWORD: &str = "Brand-New-Pass-77";

/// One answer: status, headers and the JSON body (Null when the body is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

/// Calls the API at `base`.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: impl Into<String>) -> Api {
        Api { base: base.into(), http: reqwest::Client::new() }
    }

    /// `METHOD path` with an optional bearer token and JSON body.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        answer(request.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Answer {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// Signs in with a temporary password: login answers the challenge, the new password answers
    /// tokens. Returns the tokens (`idToken`, `refreshToken`, ...).
    pub async fn first_sign_in(&self, email: &str, temporary: &str) -> Value {
        let login = self.post("/auth/login", None, &json!({"email": email, "password": temporary})).await;
        assert_eq!(login.status, 200, "{}", login.text);
        assert_eq!(login.body["challenge"], "NEW_PASSWORD_REQUIRED", "{}", login.text);
        let session = login.body["session"].as_str().unwrap();
        let done = self
            .post(
                "/auth/complete-new-password",
                None,
                &json!({"email": email, "session": session, "newPassword": NEW_PASSWORD}),
            )
            .await;
        assert_eq!(done.status, 200, "{}", done.text);
        done.body
    }

    /// Signs in with a permanent password; returns the ID token.
    pub async fn sign_in(&self, email: &str, password: &str) -> String {
        let login = self.post("/auth/login", None, &json!({"email": email, "password": password})).await;
        assert_eq!(login.status, 200, "{}", login.text);
        login.body["idToken"].as_str().expect("tokens, not a challenge").to_owned()
    }
}

pub async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer { status, headers, body, text }
}

/// `token` re-signed with the local identity's key (in `data_dir`) after `change` edits its claims:
/// a token only a key holder could mint, e.g. one that expired an hour ago.
pub fn resign_local(data_dir: &Path, token: &str, change: impl FnOnce(&mut Value)) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let header = jsonwebtoken::decode_header(token).unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    change(&mut claims);
    let key_text = std::fs::read_to_string(data_dir.join("identity-signing.key")).unwrap();
    let der = STANDARD.decode(key_text.trim()).unwrap();
    let key = jsonwebtoken::EncodingKey::from_ed_der(&der);
    let mut new_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    new_header.kid = header.kid;
    jsonwebtoken::encode(&new_header, &claims, &key).unwrap()
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}
