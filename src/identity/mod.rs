//! The `Identity` port: users' credentials and tokens. Adapters: [`local`] (embedded) and
//! [`cognito`] (Amazon Cognito). Both issue Cognito-shaped tokens that the one [`jwt`] verifier checks.

pub mod cognito;
pub mod jwt;
pub mod local;

use crate::domain::{Email, Role, TenantId, UserId};
use async_trait::async_trait;
use rand::Rng;
use rand::seq::SliceRandom;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

/// What went wrong in an identity call.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A user with this sign-in name exists already.
    #[error("a user with email {0} already exists in the identity provider")]
    AlreadyExists(String),
    /// The password does not meet the policy.
    #[error("password rejected: {0}")]
    InvalidPassword(String),
    /// Wrong credentials, unknown user, or an expired refresh token: deliberately not told apart.
    #[error("incorrect email or password")]
    NotAuthorized,
    /// The request lacks the user's sign-in name, which this provider needs for it.
    #[error("{0}")]
    UsernameRequired(&'static str),
    /// The challenge session is unknown or expired.
    #[error("the sign-in session is invalid or expired; sign in again")]
    InvalidSession,
    /// The provider cannot be reached; retrying later may succeed.
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error("identity provider error: {0}")]
    Other(String),
}

/// How a new user's first password is set.
pub enum InitialPassword {
    /// Must be replaced at first sign-in (`NEW_PASSWORD_REQUIRED`).
    Temporary(SecretString),
    /// Ready to use.
    Permanent(SecretString),
}

/// A user to create in the identity provider.
pub struct NewIdentityUser<'a> {
    /// Sign-in name.
    pub email: &'a Email,
    /// Carried as `custom:tenantID`.
    pub tenant_id: &'a TenantId,
    /// Carried as the Cognito group.
    pub role: Role,
    /// First password.
    pub password: InitialPassword,
}

/// Tokens of a signed-in user. `Debug` redacts them.
#[derive(Debug)]
pub struct Tokens {
    /// ID token: identity claims for the API (`aud` = client id).
    pub id_token: SecretString,
    /// Access token (`client_id` claim).
    pub access_token: SecretString,
    /// Refresh token; absent on refresh answers that do not rotate it.
    pub refresh_token: Option<SecretString>,
    /// Seconds until the ID and access tokens expire.
    pub expires_in: u64,
}

/// The answer to a sign-in.
#[derive(Debug)]
pub enum Login {
    /// Signed in.
    Tokens(Tokens),
    /// The password was temporary: call `complete_new_password` with this session.
    NewPasswordRequired {
        /// Opaque challenge session, valid for a few minutes.
        session: String,
    },
}

/// Result of an identity call.
pub type IdentityResult<T> = Result<T, IdentityError>;

/// Users' credentials and tokens.
#[async_trait]
pub trait Identity: Send + Sync + 'static {
    /// Adapter name for logs (`local`, `cognito`).
    fn kind(&self) -> &'static str;

    /// Creates a user; returns its subject.
    async fn create_user(&self, user: NewIdentityUser<'_>) -> IdentityResult<UserId>;

    /// Deletes a user (undoes a `create_user` whose store write failed). Missing users are fine.
    async fn delete_user(&self, email: &Email) -> IdentityResult<()>;

    /// Signs in with email and password.
    async fn login(&self, email: &Email, password: &SecretString) -> IdentityResult<Login>;

    /// Answers `NEW_PASSWORD_REQUIRED` with the user's own new password.
    async fn complete_new_password(
        &self,
        email: &Email,
        session: &str,
        new_password: &SecretString,
    ) -> IdentityResult<Tokens>;

    /// New ID and access tokens from a refresh token. `username` is the user's email when the
    /// client knows it: a Cognito app client with a secret needs it for `SECRET_HASH`.
    async fn refresh(&self, username: Option<&Email>, refresh_token: &SecretString) -> IdentityResult<Tokens>;

    /// The verifier for this provider's tokens.
    fn verifier(&self) -> Arc<jwt::JwtVerifier>;

    /// Ways the provider's setup lets users rewrite their own tenant claim, in words an operator
    /// acts on; empty when there are none (always, for the local identity).
    async fn tenant_attribute_risks(&self) -> IdentityResult<Vec<String>> {
        Ok(Vec::new())
    }
}

/// Checks a password against the policy both adapters share (Cognito's default): at least 8
/// characters with a lower-case letter, an upper-case letter, a digit and a symbol.
pub fn check_password_policy(password: &SecretString) -> IdentityResult<()> {
    let p = password.expose_secret();
    let mut missing = Vec::new();
    if p.chars().count() < 8 {
        missing.push("at least 8 characters");
    }
    if p.len() > 256 {
        return Err(IdentityError::InvalidPassword("must be at most 256 characters".to_owned()));
    }
    if !p.chars().any(|c| c.is_lowercase()) {
        missing.push("a lower-case letter");
    }
    if !p.chars().any(|c| c.is_uppercase()) {
        missing.push("an upper-case letter");
    }
    if !p.chars().any(|c| c.is_ascii_digit()) {
        missing.push("a digit");
    }
    if !p.chars().any(|c| !c.is_alphanumeric() && !c.is_whitespace()) {
        missing.push("a symbol");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(IdentityError::InvalidPassword(format!("needs {}", missing.join(", "))))
    }
}

/// A random 20-character temporary password that satisfies the policy.
pub fn generate_temporary_password() -> SecretString {
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGIT: &[u8] = b"23456789";
    const SYMBOL: &[u8] = b"!#%+-=?@^_";
    let mut rng = rand::rngs::OsRng;
    let all: Vec<u8> = [LOWER, UPPER, DIGIT, SYMBOL].concat();
    let mut chars: Vec<u8> = [LOWER, UPPER, DIGIT, SYMBOL].iter().map(|set| set[rng.gen_range(0..set.len())]).collect();
    chars.extend((0..16).map(|_| all[rng.gen_range(0..all.len())]));
    chars.shuffle(&mut rng);
    SecretString::from(String::from_utf8(chars).expect("ASCII"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_meet_the_policy_and_differ() {
        let a = generate_temporary_password();
        let b = generate_temporary_password();
        check_password_policy(&a).unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn policy_says_what_is_missing() {
        let err = check_password_policy(&SecretString::from("short")).unwrap_err().to_string();
        assert!(err.contains("at least 8 characters") && err.contains("a digit"), "{err}");
        check_password_policy(&SecretString::from("Correct-Horse-9")).unwrap();
    }
}
