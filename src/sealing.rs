//! Sealing of secrets (bot tokens, page tokens, webhook secrets, webhook endpoints' signing secrets) with
//! AES-256-GCM.
//!
//! A sealed value is `v2.<key id>.<base64(nonce ‖ ciphertext)>`. The key id names the master key
//! that sealed it, so a wrong key is reported as such instead of as garbage. The record and the
//! field it was sealed for ([`SealContext`], e.g. `chn_…:credentials`) are bound in as associated
//! data: a sealed value copied onto another channel, or into another field of the same channel
//! (a bot token as the webhook secret), does not open. Values sealed by earlier versions (`v1`,
//! bound to the record only) still open; sealing again (`channel rotate-credentials`) upgrades them.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::fmt;

/// Ciphertext of a secret, safe to store and to print in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(String);

impl Sealed {
    /// Wraps a value read from the store.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    /// The stored form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealed(..)")
    }
}

/// What a sealed secret belongs to: the owning record's id and the field within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealContext<'a> {
    record: &'a str,
    field: &'a str,
}

impl<'a> SealContext<'a> {
    /// Field `field` of the record `record`.
    pub fn new(record: &'a str, field: &'a str) -> Self {
        Self { record, field }
    }

    /// A channel's credentials (its bot token or page token).
    pub fn channel_credentials(channel_id: &'a str) -> Self {
        Self::new(channel_id, "credentials")
    }

    /// An outgoing webhook endpoint's signing secret.
    pub fn webhook_signing_secret(webhook_id: &'a str) -> Self {
        Self::new(webhook_id, "signingSecret")
    }

    /// A Telegram channel's webhook secret.
    pub fn channel_webhook_secret(channel_id: &'a str) -> Self {
        Self::new(channel_id, "webhookSecret")
    }

    /// The associated data of the current format: `record:field`.
    fn bound(&self) -> String {
        format!("{}:{}", self.record, self.field)
    }
}

/// Why a sealed value could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SealingError {
    /// The value was sealed under another master key.
    #[error("secret was sealed under master key id {found}, but the configured key has id {expected}")]
    WrongKey { found: String, expected: String },
    /// The stored value is damaged, or belongs to another record.
    #[error("sealed secret is malformed or was tampered with")]
    Corrupt,
}

/// The 32-byte master key. Never printed.
pub struct MasterKey {
    cipher: Aes256Gcm,
    key_id: String,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(id={})", self.key_id)
    }
}

impl MasterKey {
    /// Builds a key from 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let digest = Sha256::new().chain_update(b"kamshub master key id\0").chain_update(bytes).finalize();
        let key_id = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        Self { cipher: Aes256Gcm::new(bytes.into()), key_id }
    }

    /// Parses the base64 form used by `KAMSHUB_MASTER_KEY` and the key file.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = B64.decode(text.trim()).map_err(|e| format!("is not base64: {e}"))?;
        let bytes: [u8; 32] =
            bytes.try_into().map_err(|b: Vec<u8>| format!("must decode to 32 bytes, got {}", b.len()))?;
        Ok(Self::from_bytes(&bytes))
    }

    /// A fresh random key in its base64 form, for a new key file.
    pub fn generate_base64() -> String {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        B64.encode(bytes)
    }

    /// Short public fingerprint of the key, stored with every sealed value.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Encrypts `secret`, bound to `context` (record and field).
    pub fn seal(&self, secret: &SecretString, context: SealContext<'_>) -> Sealed {
        Sealed(format!("v2.{}.{}", self.key_id, B64.encode(self.encrypt(secret, &context.bound()))))
    }

    fn encrypt(&self, secret: &SecretString, aad: &str) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let payload = Payload { msg: secret.expose_secret().as_bytes(), aad: aad.as_bytes() };
        let ciphertext =
            self.cipher.encrypt(Nonce::from_slice(&nonce), payload).expect("AES-GCM encryption of a short secret");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ciphertext);
        blob
    }

    /// Decrypts a value sealed by [`MasterKey::seal`] with the same `context`, or by an earlier
    /// kamshub for the same record (`v1`, which bound the record only).
    pub fn open(&self, sealed: &Sealed, context: SealContext<'_>) -> Result<SecretString, SealingError> {
        let mut parts = sealed.0.splitn(3, '.');
        let (Some(version), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SealingError::Corrupt);
        };
        let aad = match version {
            "v2" => context.bound(),
            "v1" => context.record.to_owned(),
            _ => return Err(SealingError::Corrupt),
        };
        if key_id != self.key_id {
            return Err(SealingError::WrongKey { found: key_id.to_owned(), expected: self.key_id.clone() });
        }
        let blob = B64.decode(body).map_err(|_| SealingError::Corrupt)?;
        if blob.len() < 12 + 16 {
            return Err(SealingError::Corrupt);
        }
        let (nonce, ciphertext) = blob.split_at(12);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: aad.as_bytes() })
            .map_err(|_| SealingError::Corrupt)?;
        let text = String::from_utf8(plain).map_err(|_| SealingError::Corrupt)?;
        Ok(SecretString::from(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_bytes(&[byte; 32])
    }

    const TOKEN: SealContext<'static> = SealContext { record: "chn_1", field: "credentials" };
    const HOOK: SealContext<'static> = SealContext { record: "chn_1", field: "webhookSecret" };

    #[test]
    fn round_trips_and_hides_the_plaintext() {
        let k = key(7);
        let sealed = k.seal(&SecretString::from("123456:ABC-secret-token"), TOKEN);
        assert!(sealed.as_str().starts_with("v2."));
        assert!(!sealed.as_str().contains("ABC-secret-token"));
        assert!(!format!("{sealed:?}").contains("v2."));
        assert_eq!(k.open(&sealed, TOKEN).unwrap().expose_secret(), "123456:ABC-secret-token");
    }

    #[test]
    fn same_secret_seals_differently_each_time() {
        let k = key(7);
        let s = SecretString::from("token");
        assert_ne!(k.seal(&s, TOKEN), k.seal(&s, TOKEN));
    }

    #[test]
    fn refuses_another_records_context_and_tampering() {
        let k = key(7);
        let sealed = k.seal(&SecretString::from("token"), TOKEN);
        assert!(matches!(k.open(&sealed, SealContext::channel_credentials("chn_2")), Err(SealingError::Corrupt)));
        let mut text = sealed.as_str().to_owned();
        let last = text.pop().unwrap();
        text.push(if last == 'A' { 'B' } else { 'A' });
        assert!(matches!(k.open(&Sealed::from_stored(text), TOKEN), Err(SealingError::Corrupt)));
    }

    #[test]
    fn fields_of_one_record_cannot_be_swapped() {
        let k = key(7);
        let token = k.seal(&SecretString::from("123456:bot-token"), TOKEN);
        let hook = k.seal(&SecretString::from("webhook-secret"), HOOK);
        assert!(matches!(k.open(&token, HOOK), Err(SealingError::Corrupt)), "a bot token is no webhook secret");
        assert!(matches!(k.open(&hook, TOKEN), Err(SealingError::Corrupt)), "nor the other way round");
        assert_eq!(k.open(&hook, HOOK).unwrap().expose_secret(), "webhook-secret");
    }

    #[test]
    fn values_sealed_before_fields_were_bound_still_open() {
        let k = key(7);
        // The v1 format: the record id alone as associated data.
        let blob = k.encrypt(&SecretString::from("legacy-token"), "chn_1");
        let legacy = Sealed::from_stored(format!("v1.{}.{}", k.key_id(), B64.encode(blob)));
        assert_eq!(k.open(&legacy, TOKEN).unwrap().expose_secret(), "legacy-token");
        assert!(k.open(&legacy, SealContext::channel_credentials("chn_2")).is_err(), "still bound to its record");
    }

    #[test]
    fn names_the_key_mismatch() {
        let sealed = key(1).seal(&SecretString::from("token"), TOKEN);
        let err = key(2).open(&sealed, TOKEN).unwrap_err();
        assert!(matches!(err, SealingError::WrongKey { .. }), "{err}");
    }

    #[test]
    fn master_key_parse_explains_bad_lengths() {
        assert!(MasterKey::from_base64("AAAA").unwrap_err().contains("32 bytes"));
        assert!(MasterKey::from_base64(&MasterKey::generate_base64()).is_ok());
    }
}
