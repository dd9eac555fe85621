//! Embedded `Identity` adapter: users in `identity.sqlite3` in the data dir with argon2id hashes,
//! tokens signed with an Ed25519 key kept (0600) in the data dir and published as a JWKS.

use super::jwt::{Claims, JwtVerifier, TokenUse};
use super::{
    Identity, IdentityError, IdentityResult, InitialPassword, Login, NewIdentityUser, Tokens, check_password_policy,
};
use crate::domain::{Email, UserId};
use crate::embedded::{Database, from_millis, millis, unique_violation};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, OctetKeyPairParameters,
    OctetKeyPairType, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;
use rusqlite::{OptionalExtension, params};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Issuer named in local tokens.
pub const LOCAL_ISSUER: &str = "kamshub-local";
/// The app client id local tokens are issued for.
pub const LOCAL_CLIENT_ID: &str = "kamshub";
/// ID and access token lifetime: one hour, Cognito's default.
const TOKEN_TTL_SECS: u64 = 3600;
/// Refresh token lifetime: 30 days, Cognito's default.
const REFRESH_TTL_SECS: u64 = 30 * 24 * 3600;
/// How long a `NEW_PASSWORD_REQUIRED` session lasts: 3 minutes, as in Cognito.
const CHALLENGE_TTL_MS: i64 = 3 * 60 * 1000;

const MIGRATIONS: &[&str] = &["
    CREATE TABLE identities (
        sub            TEXT PRIMARY KEY,
        email          TEXT NOT NULL UNIQUE,
        tenant_id      TEXT NOT NULL,
        role           TEXT NOT NULL,
        password_hash  TEXT NOT NULL,          -- argon2id PHC string
        must_change    INTEGER NOT NULL,       -- temporary password: NEW_PASSWORD_REQUIRED at sign-in
        created_at     INTEGER NOT NULL
    );
    CREATE TABLE challenges (
        session_hash  TEXT PRIMARY KEY,        -- sha256 of the session handed to the client
        email         TEXT NOT NULL,
        expires_at    INTEGER NOT NULL
    );
"];

/// A hash to verify against when the user does not exist, so both cases take the same time.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| hash_password("not a real password 0!A").expect("hash"));

/// The local identity provider.
pub struct LocalIdentity {
    db: Database,
    signing: EncodingKey,
    kid: String,
    jwks: JwkSet,
    verifier: Arc<JwtVerifier>,
}

struct StoredIdentity {
    sub: String,
    email: String,
    tenant_id: String,
    role: String,
    password_hash: String,
    must_change: bool,
}

impl LocalIdentity {
    /// Opens the user database and signing key in `data_dir`, creating them on first use.
    pub fn open(data_dir: &Path) -> IdentityResult<Self> {
        let db = Database::open(&data_dir.join("identity.sqlite3"), MIGRATIONS)
            .map_err(|e| IdentityError::Unavailable(e.to_string()))?;
        let key = load_or_create_signing_key(&data_dir.join("identity-signing.key"))?;
        let public = key.verifying_key().to_bytes();
        let kid = hex_prefix(&Sha256::digest(public));
        let jwk = Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(KeyAlgorithm::EdDSA),
                key_id: Some(kid.clone()),
                ..CommonParameters::default()
            },
            algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: B64URL.encode(public),
            }),
        };
        let jwks = JwkSet { keys: vec![jwk] };
        let der = key.to_pkcs8_der().map_err(|e| IdentityError::Other(format!("signing key: {e}")))?;
        let verifier =
            Arc::new(JwtVerifier::with_keys(LOCAL_ISSUER.to_owned(), LOCAL_CLIENT_ID.to_owned(), jwks.clone()));
        Ok(Self { db, signing: EncodingKey::from_ed_der(der.as_bytes()), kid, jwks, verifier })
    }

    /// The public keys, served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    async fn find(&self, email: &Email) -> IdentityResult<Option<StoredIdentity>> {
        self.find_where("email", email.as_str()).await
    }

    async fn find_by_sub(&self, sub: &str) -> IdentityResult<Option<StoredIdentity>> {
        self.find_where("sub", sub).await
    }

    /// The identity whose `column` (`email` or `sub`, both unique) is `value`.
    async fn find_where(&self, column: &'static str, value: &str) -> IdentityResult<Option<StoredIdentity>> {
        let value = value.to_owned();
        let sql = format!(
            "SELECT sub, email, tenant_id, role, password_hash, must_change FROM identities WHERE {column} = ?1"
        );
        self.db
            .run(move |c| {
                c.query_row(&sql, [value], |r| {
                    Ok(StoredIdentity {
                        sub: r.get(0)?,
                        email: r.get(1)?,
                        tenant_id: r.get(2)?,
                        role: r.get(3)?,
                        password_hash: r.get(4)?,
                        must_change: r.get(5)?,
                    })
                })
                .optional()
            })
            .await
            .map_err(db_err)
    }

    fn issue(&self, user: &StoredIdentity, with_refresh: bool) -> IdentityResult<Tokens> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs();
        let base = Claims {
            sub: user.sub.clone(),
            iss: LOCAL_ISSUER.to_owned(),
            exp: now + TOKEN_TTL_SECS,
            iat: now,
            token_use: TokenUse::Id,
            aud: None,
            client_id: None,
            email: None,
            tenant_id: Some(user.tenant_id.clone()),
            groups: vec![user.role.clone()],
            username: Some(user.email.clone()),
        };
        let id = Claims { aud: Some(LOCAL_CLIENT_ID.to_owned()), email: Some(user.email.clone()), ..base.clone() };
        let access =
            Claims { token_use: TokenUse::Access, client_id: Some(LOCAL_CLIENT_ID.to_owned()), ..base.clone() };
        let refresh = Claims {
            token_use: TokenUse::Refresh,
            client_id: Some(LOCAL_CLIENT_ID.to_owned()),
            exp: now + REFRESH_TTL_SECS,
            groups: Vec::new(),
            ..base
        };
        Ok(Tokens {
            id_token: self.sign(&id)?,
            access_token: self.sign(&access)?,
            refresh_token: if with_refresh { Some(self.sign(&refresh)?) } else { None },
            expires_in: TOKEN_TTL_SECS,
        })
    }

    fn sign(&self, claims: &Claims) -> IdentityResult<SecretString> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.signing)
            .map(SecretString::from)
            .map_err(|e| IdentityError::Other(format!("cannot sign token: {e}")))
    }
}

#[async_trait]
impl Identity for LocalIdentity {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn create_user(&self, user: NewIdentityUser<'_>) -> IdentityResult<UserId> {
        let (password, must_change) = match user.password {
            InitialPassword::Temporary(p) => (p, true),
            InitialPassword::Permanent(p) => (p, false),
        };
        check_password_policy(&password)?;
        let hash = hash_off_thread(password).await?;
        let sub = UserId::generate();
        let (email, tenant, role, created) = (
            user.email.as_str().to_owned(),
            user.tenant_id.as_str().to_owned(),
            user.role.as_str(),
            crate::domain::now(),
        );
        let row_sub = sub.as_str().to_owned();
        self.db
            .run(move |c| {
                c.execute(
                    "INSERT INTO identities (sub, email, tenant_id, role, password_hash, must_change, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![row_sub, email, tenant, role, hash, must_change, millis(created)],
                )
                .map_err(|e| match unique_violation(&e) {
                    Some(_) => IdentityError::AlreadyExists(email.clone()),
                    None => db_err(e),
                })
            })
            .await?;
        Ok(sub)
    }

    async fn delete_user(&self, email: &Email) -> IdentityResult<()> {
        let email = email.as_str().to_owned();
        self.db.run(move |c| c.execute("DELETE FROM identities WHERE email = ?1", [email])).await.map_err(db_err)?;
        Ok(())
    }

    async fn login(&self, email: &Email, password: &SecretString) -> IdentityResult<Login> {
        let found = self.find(email).await?;
        let hash = found.as_ref().map_or_else(|| DUMMY_HASH.clone(), |u| u.password_hash.clone());
        let matches = verify_off_thread(password.clone(), hash).await?;
        let user = match found {
            Some(user) if matches => user,
            _ => return Err(IdentityError::NotAuthorized),
        };
        if !user.must_change {
            return Ok(Login::Tokens(self.issue(&user, true)?));
        }
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let session = B64URL.encode(raw);
        let (session_hash, email, expires) = (
            hex_prefix(&Sha256::digest(&session)),
            user.email.clone(),
            millis(crate::domain::now()) + CHALLENGE_TTL_MS,
        );
        self.db
            .run(move |c| {
                c.execute("DELETE FROM challenges WHERE expires_at < ?1", [expires - CHALLENGE_TTL_MS])?;
                c.execute(
                    "INSERT INTO challenges (session_hash, email, expires_at) VALUES (?1, ?2, ?3)",
                    params![session_hash, email, expires],
                )
            })
            .await
            .map_err(db_err)?;
        Ok(Login::NewPasswordRequired { session })
    }

    async fn complete_new_password(
        &self,
        email: &Email,
        session: &str,
        new_password: &SecretString,
    ) -> IdentityResult<Tokens> {
        check_password_policy(new_password)?;
        let session_hash = hex_prefix(&Sha256::digest(session));
        let (lookup_hash, lookup_email) = (session_hash.clone(), email.as_str().to_owned());
        let valid = self
            .db
            .run(move |c| {
                let expires: Option<i64> = c
                    .query_row(
                        "SELECT expires_at FROM challenges WHERE session_hash = ?1 AND email = ?2",
                        [lookup_hash, lookup_email],
                        |r| r.get(0),
                    )
                    .optional()?;
                let now = millis(crate::domain::now());
                Ok::<_, rusqlite::Error>(expires.is_some_and(|e| from_millis(e).map(|_| e > now).unwrap_or(false)))
            })
            .await
            .map_err(db_err)?;
        if !valid {
            return Err(IdentityError::InvalidSession);
        }
        let hash = hash_off_thread(new_password.clone()).await?;
        let email_text = email.as_str().to_owned();
        self.db
            .run(move |c| {
                let work = |tx: &rusqlite::Transaction<'_>| {
                    tx.execute(
                        "UPDATE identities SET password_hash = ?1, must_change = 0 WHERE email = ?2",
                        params![hash, email_text],
                    )?;
                    tx.execute("DELETE FROM challenges WHERE session_hash = ?1", [&session_hash])
                };
                crate::embedded::write_immediate(c, work, |e| e, crate::embedded::is_busy)
            })
            .await
            .map_err(db_err)?;
        let user = self.find(email).await?.ok_or(IdentityError::NotAuthorized)?;
        self.issue(&user, true)
    }

    async fn refresh(&self, username: Option<&Email>, refresh_token: &SecretString) -> IdentityResult<Tokens> {
        let claims = self
            .verifier
            .verify_claims(refresh_token.expose_secret(), TokenUse::Refresh)
            .await
            .map_err(|_| IdentityError::NotAuthorized)?;
        if claims.client_id.as_deref() != Some(LOCAL_CLIENT_ID) {
            return Err(IdentityError::NotAuthorized);
        }
        let user = self.find_by_sub(&claims.sub).await?.ok_or(IdentityError::NotAuthorized)?;
        if username.is_some_and(|email| email.as_str() != user.email) {
            return Err(IdentityError::NotAuthorized);
        }
        self.issue(&user, false)
    }

    fn verifier(&self) -> Arc<JwtVerifier> {
        Arc::clone(&self.verifier)
    }
}

fn db_err(e: rusqlite::Error) -> IdentityError {
    if crate::embedded::is_busy(&e) {
        IdentityError::Unavailable(e.to_string())
    } else {
        IdentityError::Other(e.to_string())
    }
}

fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Ok(Argon2::default().hash_password(password.as_bytes(), &salt)?.to_string())
}

async fn hash_off_thread(password: SecretString) -> IdentityResult<String> {
    tokio::task::spawn_blocking(move || hash_password(password.expose_secret()))
        .await
        .map_err(|e| IdentityError::Other(format!("hashing task failed: {e}")))?
        .map_err(|e| IdentityError::Other(format!("cannot hash password: {e}")))
}

async fn verify_off_thread(password: SecretString, hash: String) -> IdentityResult<bool> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&hash).map_err(|e| IdentityError::Other(format!("stored hash: {e}")))?;
        Ok(Argon2::default().verify_password(password.expose_secret().as_bytes(), &parsed).is_ok())
    })
    .await
    .map_err(|e| IdentityError::Other(format!("verify task failed: {e}")))?
}

fn hex_prefix(digest: &[u8]) -> String {
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Reads the PKCS#8 signing key (base64 in a 0600 file), or creates one.
fn load_or_create_signing_key(path: &Path) -> IdentityResult<SigningKey> {
    let unreadable = |e: String| IdentityError::Other(format!("signing key {}: {e}", path.display()));
    let generate = || {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        B64.encode(key.to_pkcs8_der().expect("an Ed25519 key encodes as PKCS#8").as_bytes())
    };
    let text = crate::app::read_or_create_private_file(path, generate).map_err(|e| unreadable(e.to_string()))?;
    let der = B64.decode(text.trim()).map_err(|e| unreadable(e.to_string()))?;
    SigningKey::from_pkcs8_der(&der).map_err(|e| unreadable(e.to_string()))
}
