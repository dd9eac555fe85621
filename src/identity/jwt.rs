//! The one token verifier, for local and Cognito tokens alike: signature by a JWKS key chosen by
//! `kid` (the algorithm comes from the key, never from the token), then `exp`, `iss`, `token_use`,
//! and `aud` (ID token) or `client_id` (access token). A remote JWKS is cached and fetched again
//! only for an unknown `kid`, at most once per 10 seconds. The fetch happens outside the cache's
//! lock: tokens under known keys never wait for it, and concurrent unknown `kid`s share one fetch.

use crate::domain::{Email, Role, TenantId, UserId};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The least time between two JWKS downloads, so random `kid`s cannot drive a fetch storm.
const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// Which token a caller expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenUse {
    /// ID token.
    Id,
    /// Access token.
    Access,
    /// Local refresh token (Cognito's are opaque and never reach the verifier).
    Refresh,
}

/// The claims kamshub reads, named as Cognito names them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Subject: the user id.
    pub sub: String,
    /// Issuer.
    pub iss: String,
    /// Expiry (Unix seconds).
    pub exp: u64,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// `id`, `access` or `refresh`.
    pub token_use: TokenUse,
    /// Audience: the app client id (ID tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// The app client id (access tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Email (ID tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The user's tenant.
    #[serde(rename = "custom:tenantID", default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Groups: the role.
    #[serde(rename = "cognito:groups", default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Sign-in name.
    #[serde(rename = "cognito:username", default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// What a verified token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Subject.
    pub user_id: UserId,
    /// Email, when the token carries it.
    pub email: Option<Email>,
    /// Tenant from `custom:tenantID`, when the token carries it.
    pub tenant_id: Option<TenantId>,
    /// The most powerful role among the token's groups.
    pub role: Option<Role>,
    /// Every kamshub role among the token's groups (`cognito:groups`), most powerful first.
    pub roles: Vec<Role>,
    /// When the token expires (`exp`, Unix seconds): what a long-lived request (an event stream)
    /// must not outlive.
    pub expires_at: u64,
}

/// Why a token was refused. Callers answer 401 without telling which.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Signature, algorithm, claims or shape are wrong.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The JWKS could not be fetched.
    #[error("cannot fetch signing keys: {0}")]
    KeysUnavailable(String),
}

/// Where verification keys come from.
enum KeySource {
    /// Keys held in memory (the local identity's own key).
    Static(JwkSet),
    /// A JWKS URL, cached.
    Remote(RemoteKeys),
}

/// A remote JWKS and its cache.
struct RemoteKeys {
    url: String,
    http: reqwest::Client,
    /// The keys last fetched. Its lock is held only to read or swap the set, never across a fetch.
    keys: RwLock<Arc<JwkSet>>,
    /// When the last fetch started; held across a fetch, so unknown `kid`s arriving meanwhile wait
    /// for that one fetch instead of starting their own.
    fetching: Mutex<Option<Instant>>,
}

/// Verifies tokens of one issuer and app client.
pub struct JwtVerifier {
    issuer: String,
    client_id: String,
    keys: KeySource,
}

impl JwtVerifier {
    /// A verifier whose keys are known up front.
    pub fn with_keys(issuer: String, client_id: String, keys: JwkSet) -> Self {
        Self { issuer, client_id, keys: KeySource::Static(keys) }
    }

    /// A verifier that fetches keys from `jwks_url` when it meets a `kid` it does not know.
    pub fn with_jwks_url(issuer: String, client_id: String, jwks_url: String) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("HTTP client");
        let keys = RwLock::new(Arc::new(JwkSet { keys: Vec::new() }));
        let remote = RemoteKeys { url: jwks_url, http, keys, fetching: Mutex::new(None) };
        Self { issuer, client_id, keys: KeySource::Remote(remote) }
    }

    /// The issuer tokens must name.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Checks `token` and that it is of the `expected` use; returns its bearer.
    pub async fn verify(&self, token: &str, expected: TokenUse) -> Result<Principal, VerifyError> {
        principal(self.verify_claims(token, expected).await?)
    }

    /// Like [`JwtVerifier::verify`], returning the raw claims.
    pub async fn verify_claims(&self, token: &str, expected: TokenUse) -> Result<Claims, VerifyError> {
        let invalid = |why: &str| VerifyError::Invalid(why.to_owned());
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed header"))?;
        if header.jwk.is_some() || header.jku.is_some() || header.x5u.is_some() {
            return Err(invalid("embedded or remote keys in the header are not accepted"));
        }
        let kid = header.kid.ok_or_else(|| invalid("no kid"))?;
        let jwk = self.key(&kid).await?;
        let algorithm = key_algorithm(&jwk).ok_or_else(|| invalid("unsupported key type"))?;
        if header.alg != algorithm {
            return Err(invalid("algorithm does not match the key"));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| invalid("unusable key"))?;
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.leeway = 30;
        if expected == TokenUse::Id {
            // jsonwebtoken checks `aud` only when the token has one: an ID token must name our client.
            validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
            validation.set_audience(&[&self.client_id]);
        } else {
            validation.set_required_spec_claims(&["exp", "iss", "sub"]);
            validation.validate_aud = false;
        }
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| VerifyError::Invalid(e.to_string()))?;
        let claims = data.claims;
        if claims.token_use != expected {
            return Err(invalid("wrong token_use"));
        }
        if expected == TokenUse::Access && claims.client_id.as_deref() != Some(self.client_id.as_str()) {
            return Err(invalid("wrong client_id"));
        }
        Ok(claims)
    }

    async fn key(&self, kid: &str) -> Result<Jwk, VerifyError> {
        let unknown = || VerifyError::Invalid("unknown kid".to_owned());
        match &self.keys {
            KeySource::Static(set) => set.find(kid).cloned().ok_or_else(unknown),
            KeySource::Remote(remote) => remote.key(kid).await?.ok_or_else(unknown),
        }
    }
}

impl RemoteKeys {
    /// The key `kid` names, fetching the JWKS again when the `kid` is unknown (at most once per
    /// [`JWKS_REFETCH_INTERVAL`], and once for all the lookups waiting on it).
    async fn key(&self, kid: &str) -> Result<Option<Jwk>, VerifyError> {
        if let Some(jwk) = self.cached(kid) {
            return Ok(Some(jwk));
        }
        let mut last_fetch = self.fetching.lock().await;
        // A fetch that finished while this lookup waited may have brought the key.
        if let Some(jwk) = self.cached(kid) {
            return Ok(Some(jwk));
        }
        if last_fetch.is_some_and(|at| at.elapsed() < JWKS_REFETCH_INTERVAL) {
            return Ok(None);
        }
        *last_fetch = Some(Instant::now());
        let fresh = Arc::new(fetch_jwks(&self.http, &self.url).await?);
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&fresh);
        Ok(fresh.find(kid).cloned())
    }

    fn cached(&self, kid: &str) -> Option<Jwk> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner).find(kid).cloned()
    }
}

async fn fetch_jwks(http: &reqwest::Client, url: &str) -> Result<JwkSet, VerifyError> {
    let unavailable = |e: reqwest::Error| VerifyError::KeysUnavailable(e.without_url().to_string());
    let response = http.get(url).send().await.map_err(unavailable)?.error_for_status().map_err(unavailable)?;
    response.json::<JwkSet>().await.map_err(unavailable)
}

/// The one algorithm a key may verify: RSA keys RS256 (Cognito), Ed25519 keys EdDSA (local).
fn key_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
        _ => None,
    }
}

fn principal(claims: Claims) -> Result<Principal, VerifyError> {
    let invalid = |what: &str| VerifyError::Invalid(format!("malformed {what} claim"));
    let roles: Vec<Role> = Role::ALL.into_iter().filter(|r| claims.groups.iter().any(|g| g == r.as_str())).collect();
    Ok(Principal {
        user_id: UserId::parse(&claims.sub).map_err(|_| invalid("sub"))?,
        email: claims.email.as_deref().map(Email::parse).transpose().map_err(|_| invalid("email"))?,
        tenant_id: claims.tenant_id.as_deref().map(TenantId::parse).transpose().map_err(|_| invalid("tenant"))?,
        role: roles.first().copied(),
        roles,
        expires_at: claims.exp,
    })
}
