//! The JWT negative corpus: every forged, altered or misused token the one verifier must refuse
//! (OWASP WSTG JWT tests, `kid` injection, JWKS fetch storms), driven through the public API with
//! real local tokens, tokens signed by keys the test controls, and a fake Cognito JWKS (wiremock).
//!
//! Each negative case starts from a token that verifies (asserted) and changes one thing, so a
//! refusal can only come from the check under test.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, OctetKeyPairParameters,
    OctetKeyPairType, PublicKeyUse, RSAKeyParameters, RSAKeyType,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use kamshub::domain::{Email, Role, TenantId, UserId};
use kamshub::identity::jwt::{Claims, JwtVerifier, Principal, TokenUse, VerifyError};
use kamshub::identity::local::{LOCAL_CLIENT_ID, LOCAL_ISSUER, LocalIdentity};
use kamshub::identity::{Identity, InitialPassword, Login, NewIdentityUser, Tokens};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

// ---------------------------------------------------------------------------------------------
// Keys the test controls
// ---------------------------------------------------------------------------------------------

/// TEST-ONLY RSA-2048 private key (PKCS#8), generated with `openssl genrsa 2048` for this file.
/// It signs nothing outside these tests and must never be used for anything else.
const TEST_RSA_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDG3vF3ReZvAVUz
FA0fhmwkz6rUIGkt2zPj+/d7gDHu+knoNif2+PFbTTZqsr2Rd55GWc+VHPtglPm2
HuOxvFD3JIxiHxXEHNLNIaKu0TAUvvJaxcdtNWg/qOZ8d/oUrOzIuWvQqYyBhOm+
O47ElRuP3zEiBSMN6fRYXHH/eodd/97wsxk7vVUjIpczvInb523SZYvmC0r80gna
luYfi+qWg22FvpKfUTuPD1hrYwhbfT46u64eCJE/DHifeBM1cKZ9hZxBGjCkGCzF
pxcFjAIdU0YuEOktWypRzoJw/66+KZE24sB1oOPEVR4cnYbnEY+Ca3O3Vr4hXCsE
wOUwC51RAgMBAAECggEABdUP+9F++o5tczwJTn1guouklOgGbaPaF7uR/Hs7+6g3
dqnv7hxK58SR7fsj+Bor+CA2KEdbT+/OivrI7rN5JGZb/5ytxLybqgxsevgDkvgu
n17hhGBmmEdZyxixqt2PbCuT7+CpEDtXp46Tl0xQLJ39EORZrNTJp7W+WiG7ypPj
HhWN1MYOc0srLnvvLMZDUXMTSI5rAfK/ILfkQ88cO08gRy1PdIs3xKvc2aZEPt1e
81xjhuTDS0XrGEQEfOUChQGTBaOYTEusdWj1PdfUcRp/9kgk49bC0G+DKPHbYTtG
ZIY/Br+2pjP/xNinhPTeEPh9fVvw6PIa/ItUlqDo4QKBgQD/PPl+wawrsQjPVHzE
2OYZkaMMWi981zKOTEEAv3QK2o5fcnrs/BnyiWxG/u5ogTb2DAwzH4hmEuau1iWZ
EWN4HfDMtG39cLRTxSml8xfVvez6ioj+XYSxXV2dxlaf4ZVEo6qyf4a0ZLrnjfZ+
e9r4nzr2haXEJDQv41p00BWSfQKBgQDHduYaCJmoES+Ptc9mFTHMsv0Bl+LKGjNz
orYyqwgmzeQPohqJ89ecJnO26pNF7cWj/TmeQMr/vwhvuOydtypLrI4lsq8jf5TD
R7GRMs+Bwl72BhSuWAJW9suE+NfmObpxXQ6OwttlulrQ80qMER9G/gVFziM4vRZo
h6bBGKK6ZQKBgGwp7d1eu9TEMGSUfE97T3/UbRFmAqvYEo+lFwL3H3keB6nBPQDD
EUfsHtuzW1skLyN0FZNwsH/5UJMVI1fLu6iCn7JQYDBAG9tIOY8fBqHI2+2M2eNZ
xErZszuSetFEatpstYDxdCdsbJyGV8hgOnqUGAuytX36jbchlQrdx9aNAoGBALqb
ySB4BVFQar+3Z4Zos8N/fOZ9s8ZChvpbMrvqeODc5M2fadbAU2oaK03o3cmhbrNC
WCJvGbv0fC8RwgS3dRGBKSepqOK8HHAp5b0i3THXp8Hh5H1LhzzW/Ya0zD/uqDgg
yFrVgC8HDqnHw2mRJ0LiqgoplZgihxFaP68NnkhlAoGBAMLVWeyYmBCblDJL0C6B
zhSiJoHccfQJlGhv41+Fwn1FKRz1+8g+PtkeklKQscwUfeBwMqMp/rJduvFjCdFu
HqaC7mht63pa1FzCgAGfF8wnxhoZ4rTUNaKhziJ3fQRy3IdRedM1AcDYC2+ClexT
q8tI6hMqJOCbWnqo6QwEiqjQ
-----END PRIVATE KEY-----
";

/// The public half of [`TEST_RSA_PRIVATE_PEM`] (SubjectPublicKeyInfo), as an attacker would
/// rebuild it from the published JWKS to try HS256 key confusion.
const TEST_RSA_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAxt7xd0XmbwFVMxQNH4Zs
JM+q1CBpLdsz4/v3e4Ax7vpJ6DYn9vjxW002arK9kXeeRlnPlRz7YJT5th7jsbxQ
9ySMYh8VxBzSzSGirtEwFL7yWsXHbTVoP6jmfHf6FKzsyLlr0KmMgYTpvjuOxJUb
j98xIgUjDen0WFxx/3qHXf/e8LMZO71VIyKXM7yJ2+dt0mWL5gtK/NIJ2pbmH4vq
loNthb6Sn1E7jw9Ya2MIW30+OruuHgiRPwx4n3gTNXCmfYWcQRowpBgsxacXBYwC
HVNGLhDpLVsqUc6CcP+uvimRNuLAdaDjxFUeHJ2G5xGPgmtzt1a+IVwrBMDlMAud
UQIDAQAB
-----END PUBLIC KEY-----
";

/// JWK modulus `n` (base64url) of the test RSA key.
const TEST_RSA_N: &str = "xt7xd0XmbwFVMxQNH4ZsJM-q1CBpLdsz4_v3e4Ax7vpJ6DYn9vjxW002arK9kXeeRlnPlRz7YJT5th7jsbxQ9ySMYh8VxBzSzSGirtEwFL7yWsXHbTVoP6jmfHf6FKzsyLlr0KmMgYTpvjuOxJUbj98xIgUjDen0WFxx_3qHXf_e8LMZO71VIyKXM7yJ2-dt0mWL5gtK_NIJ2pbmH4vqloNthb6Sn1E7jw9Ya2MIW30-OruuHgiRPwx4n3gTNXCmfYWcQRowpBgsxacXBYwCHVNGLhDpLVsqUc6CcP-uvimRNuLAdaDjxFUeHJ2G5xGPgmtzt1a-IVwrBMDlMAudUQ";
/// JWK exponent `e` of the test RSA key (65537).
const TEST_RSA_E: &str = "AQAB";

/// A Cognito-style issuer and app client for the remote (RS256) verifier.
const COGNITO_ISSUER: &str = "https://cognito-idp.us-east-2.amazonaws.com/us-east-2_TestPool1";
const COGNITO_CLIENT_ID: &str = "4tcognitotestclient0000000";
const JWKS_PATH: &str = "/pool/.well-known/jwks.json";

/// A signing key the test holds, with its public JWK under `kid`.
struct TestKey {
    kid: String,
    algorithm: Algorithm,
    signing: EncodingKey,
    jwk: Jwk,
}

impl TestKey {
    /// A fresh Ed25519 key (EdDSA), like the local identity's.
    fn ed25519(kid: &str) -> Self {
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let der = key.to_pkcs8_der().expect("Ed25519 key encodes as PKCS#8");
        let params = AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: B64URL.encode(key.verifying_key().to_bytes()),
        });
        Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::EdDSA,
            signing: EncodingKey::from_ed_der(der.as_bytes()),
            jwk: jwk(kid, KeyAlgorithm::EdDSA, params),
        }
    }

    /// The fixed test RSA key (RS256), like a Cognito user pool's.
    fn rsa(kid: &str) -> Self {
        let params = AlgorithmParameters::RSA(RSAKeyParameters {
            key_type: RSAKeyType::RSA,
            n: TEST_RSA_N.to_owned(),
            e: TEST_RSA_E.to_owned(),
        });
        Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::RS256,
            signing: EncodingKey::from_rsa_pem(TEST_RSA_PRIVATE_PEM.as_bytes()).expect("test RSA key parses"),
            jwk: jwk(kid, KeyAlgorithm::RS256, params),
        }
    }

    fn jwks(&self) -> JwkSet {
        JwkSet { keys: vec![self.jwk.clone()] }
    }

    /// The header a well-behaved issuer writes: this key's algorithm and kid.
    fn header(&self) -> Header {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        header
    }

    fn sign(&self, claims: &impl Serialize) -> String {
        self.sign_with(&self.header(), claims)
    }

    fn sign_with(&self, header: &Header, claims: &impl Serialize) -> String {
        jsonwebtoken::encode(header, claims, &self.signing).expect("test token signs")
    }
}

fn jwk(kid: &str, algorithm: KeyAlgorithm, params: AlgorithmParameters) -> Jwk {
    Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(algorithm),
            key_id: Some(kid.to_owned()),
            ..CommonParameters::default()
        },
        algorithm: params,
    }
}

// ---------------------------------------------------------------------------------------------
// Claims and hand-built tokens
// ---------------------------------------------------------------------------------------------

const TENANT: &str = "tnt_acme";
const SUBJECT: &str = "8f14e45f-ceea-467f-a8f1-7c6c7d2bd1a1";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

/// Valid claims for `token_use` from `issuer` for `client_id`, shaped as Cognito shapes them
/// (ID tokens carry `aud` and `email`, access tokens `client_id`), as JSON so cases can edit them.
fn claims(issuer: &str, client_id: &str, token_use: TokenUse) -> Value {
    let now = now();
    let claims = Claims {
        sub: SUBJECT.to_owned(),
        iss: issuer.to_owned(),
        exp: now + 600,
        iat: now,
        token_use,
        aud: (token_use == TokenUse::Id).then(|| client_id.to_owned()),
        client_id: (token_use != TokenUse::Id).then(|| client_id.to_owned()),
        email: (token_use == TokenUse::Id).then(|| "ann@example.com".to_owned()),
        tenant_id: Some(TENANT.to_owned()),
        groups: vec!["tenant_manager".to_owned()],
        username: Some("ann@example.com".to_owned()),
    };
    serde_json::to_value(claims).expect("claims serialize")
}

/// `claims` with `key` set to `value` (or removed when `value` is null).
fn with(mut claims: Value, key: &str, value: Value) -> Value {
    let map = claims.as_object_mut().expect("claims are an object");
    if value.is_null() {
        map.remove(key);
    } else {
        map.insert(key.to_owned(), value);
    }
    claims
}

fn b64_json(value: &Value) -> String {
    B64URL.encode(serde_json::to_vec(value).expect("JSON serializes"))
}

/// A token assembled by hand: any header (even one jsonwebtoken cannot express), any signature.
fn hand_built(header: &Value, payload: &Value, signature: &str) -> String {
    format!("{}.{}.{signature}", b64_json(header), b64_json(payload))
}

/// The decoded payload of a token, without any verification.
fn payload_of(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(&B64URL.decode(part).expect("payload is base64url")).expect("payload is JSON")
}

/// The token's signature segment.
fn signature_of(token: &str) -> &str {
    token.rsplit('.').next().expect("a JWT has a signature")
}

/// An HS256 token under `kid`, with `secret` as the HMAC key.
fn hs256(kid: &str, claims: &Value, secret: &[u8]) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).expect("HS256 signs")
}

// ---------------------------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------------------------

/// One token and how it is presented.
struct Case {
    name: &'static str,
    token: String,
    token_use: TokenUse,
}

fn case(name: &'static str, token: String, token_use: TokenUse) -> Case {
    Case { name, token, token_use }
}

async fn assert_accepted(verifier: &JwtVerifier, what: &str, token: &str, token_use: TokenUse) -> Principal {
    match verifier.verify(token, token_use).await {
        Ok(principal) => principal,
        Err(e) => panic!("control case `{what}` should verify as {token_use:?}, but was refused: {e}"),
    }
}

/// Presents every case and fails naming each one that was accepted, or refused for a reason
/// other than the token being invalid.
async fn assert_all_refused(verifier: &JwtVerifier, cases: &[Case]) {
    let mut wrong = Vec::new();
    for Case { name, token, token_use } in cases {
        match verifier.verify(token, *token_use).await {
            Err(VerifyError::Invalid(_)) => {}
            Ok(principal) => wrong.push(format!("{name}: ACCEPTED as {token_use:?}: {principal:?}")),
            Err(other) => wrong.push(format!("{name}: refused, but not as invalid: {other}")),
        }
    }
    assert!(wrong.is_empty(), "{} of {} tokens were not refused:\n  {}", wrong.len(), cases.len(), wrong.join("\n  "));
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// A local identity in a temp dir with one signed-in tenant admin.
struct LocalUser {
    identity: LocalIdentity,
    user_id: UserId,
    email: Email,
    tenant: TenantId,
    tokens: Tokens,
    _dir: tempfile::TempDir,
}

impl LocalUser {
    async fn signed_in() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let identity = LocalIdentity::open(dir.path()).expect("local identity opens");
        let email = Email::parse("ann@example.com").expect("valid email");
        let tenant = TenantId::parse(TENANT).expect("valid tenant id");
        let password = SecretString::from("Correct-Horse-9");
        let user_id = identity
            .create_user(NewIdentityUser {
                email: &email,
                tenant_id: &tenant,
                role: Role::TenantAdmin,
                password: InitialPassword::Permanent(password.clone()),
            })
            .await
            .expect("user is created");
        let tokens = match identity.login(&email, &password).await.expect("login succeeds") {
            Login::Tokens(tokens) => tokens,
            Login::NewPasswordRequired { .. } => panic!("a permanent password needs no new password"),
        };
        Self { identity, user_id, email, tenant, tokens, _dir: dir }
    }

    fn id_token(&self) -> &str {
        self.tokens.id_token.expose_secret()
    }

    fn access_token(&self) -> &str {
        self.tokens.access_token.expose_secret()
    }

    fn refresh_token(&self) -> &str {
        self.tokens.refresh_token.as_ref().expect("login issues a refresh token").expose_secret()
    }

    /// The kid and public `x` the local identity publishes.
    fn published_key(&self) -> (String, String) {
        let jwk = &self.identity.jwks().keys[0];
        let kid = jwk.common.key_id.clone().expect("published key has a kid");
        let AlgorithmParameters::OctetKeyPair(params) = &jwk.algorithm else {
            panic!("the local identity publishes an Ed25519 key");
        };
        (kid, params.x.clone())
    }
}

/// A verifier for the local issuer and client that trusts only `key`.
fn local_verifier_for(key: &TestKey) -> JwtVerifier {
    JwtVerifier::with_keys(LOCAL_ISSUER.to_owned(), LOCAL_CLIENT_ID.to_owned(), key.jwks())
}

/// A fake Cognito user pool serving `keys` at [`JWKS_PATH`], and a verifier pointed at it.
async fn fake_cognito(keys: &JwkSet) -> (MockServer, Arc<JwtVerifier>) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(keys))
        .mount(&server)
        .await;
    let verifier = remote_verifier(&server);
    (server, verifier)
}

fn remote_verifier(server: &MockServer) -> Arc<JwtVerifier> {
    let url = format!("{}{JWKS_PATH}", server.uri());
    Arc::new(JwtVerifier::with_jwks_url(COGNITO_ISSUER.to_owned(), COGNITO_CLIENT_ID.to_owned(), url))
}

async fn jwks_fetches(server: &MockServer) -> usize {
    let requests = server.received_requests().await.expect("wiremock records requests");
    for request in &requests {
        assert_eq!(request.url.path(), JWKS_PATH, "the verifier fetched something other than the JWKS");
    }
    requests.len()
}

// ---------------------------------------------------------------------------------------------
// Local tokens: the right use, and only that use
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn local_id_token_verifies_with_tenant_email_and_role() {
    let user = LocalUser::signed_in().await;
    let verifier = user.identity.verifier();

    let principal = assert_accepted(&verifier, "local ID token", user.id_token(), TokenUse::Id).await;
    assert_eq!(principal.user_id, user.user_id);
    assert_eq!(principal.tenant_id.as_ref(), Some(&user.tenant));
    assert_eq!(principal.email.as_ref(), Some(&user.email));
    assert_eq!(principal.role, Some(Role::TenantAdmin));

    let principal = assert_accepted(&verifier, "local access token", user.access_token(), TokenUse::Access).await;
    assert_eq!(principal.user_id, user.user_id);
    assert_eq!(principal.tenant_id.as_ref(), Some(&user.tenant));
    assert_eq!(principal.role, Some(Role::TenantAdmin));
}

#[tokio::test]
async fn local_tokens_are_refused_for_any_other_use() {
    let user = LocalUser::signed_in().await;
    assert_all_refused(
        &user.identity.verifier(),
        &[
            case("ID token as access token", user.id_token().to_owned(), TokenUse::Access),
            case("access token as ID token", user.access_token().to_owned(), TokenUse::Id),
            case("refresh token as ID token", user.refresh_token().to_owned(), TokenUse::Id),
            case("refresh token as access token", user.refresh_token().to_owned(), TokenUse::Access),
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Forged headers and signatures against the local identity's real key
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn alg_none_is_refused_in_any_spelling() {
    let user = LocalUser::signed_in().await;
    let (kid, _) = user.published_key();
    let payload = payload_of(user.id_token());
    let none =
        |alg: &str, signature: &str| hand_built(&json!({"alg": alg, "typ": "JWT", "kid": kid}), &payload, signature);
    assert_all_refused(
        &user.identity.verifier(),
        &[
            case("alg none, empty signature", none("none", ""), TokenUse::Id),
            case("alg none, junk signature", none("none", "AAAA"), TokenUse::Id),
            case("alg none, the real signature", none("none", signature_of(user.id_token())), TokenUse::Id),
            case("alg NoNe, empty signature", none("NoNe", ""), TokenUse::Id),
            case("alg NoNe, junk signature", none("NoNe", "c2lnbmF0dXJl"), TokenUse::Id),
            case("alg NONE, empty signature", none("NONE", ""), TokenUse::Id),
            case("no alg at all", hand_built(&json!({"typ": "JWT", "kid": kid}), &payload, ""), TokenUse::Id),
        ],
    )
    .await;
}

#[tokio::test]
async fn hs256_signed_with_the_published_public_key_is_refused() {
    let user = LocalUser::signed_in().await;
    let (kid, x) = user.published_key();
    let payload = payload_of(user.id_token());
    let raw_public = B64URL.decode(&x).expect("x is base64url");
    let jwks_json = serde_json::to_vec(user.identity.jwks()).expect("JWKS serializes");
    assert_all_refused(
        &user.identity.verifier(),
        &[
            case("HS256 keyed with the JWK `x` text", hs256(&kid, &payload, x.as_bytes()), TokenUse::Id),
            case("HS256 keyed with the raw public key", hs256(&kid, &payload, &raw_public), TokenUse::Id),
            case("HS256 keyed with the JWKS document", hs256(&kid, &payload, &jwks_json), TokenUse::Id),
        ],
    )
    .await;
}

#[tokio::test]
async fn tampered_payload_with_the_original_signature_is_refused() {
    let user = LocalUser::signed_in().await;
    let verifier = user.identity.verifier();
    let original = user.id_token();
    assert_accepted(&verifier, "untampered ID token", original, TokenUse::Id).await;

    let header = original.split('.').next().expect("a JWT has a header");
    let signature = signature_of(original);
    let resigned = |payload: Value| format!("{header}.{}.{signature}", b64_json(&payload));
    let payload = payload_of(original);
    let respaced = serde_json::to_string(&payload).expect("JSON serializes").replacen('{', "{ ", 1);
    assert_all_refused(
        &verifier,
        &[
            case(
                "tenant changed",
                resigned(with(payload.clone(), "custom:tenantID", json!("tnt_other"))),
                TokenUse::Id,
            ),
            case(
                "role raised to platform_admin",
                resigned(with(payload.clone(), "cognito:groups", json!(["platform_admin"]))),
                TokenUse::Id,
            ),
            case("expiry extended", resigned(with(payload.clone(), "exp", json!(now() + 86_400))), TokenUse::Id),
            case(
                "same claims re-encoded with a space",
                format!("{header}.{}.{signature}", B64URL.encode(respaced)),
                TokenUse::Id,
            ),
            case("signature stripped", format!("{header}.{}.", b64_json(&payload)), TokenUse::Id),
            case(
                "signature truncated",
                format!("{header}.{}.{}", b64_json(&payload), &signature[..signature.len() - 4]),
                TokenUse::Id,
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn token_signed_by_another_ed25519_key_under_the_same_kid_is_refused() {
    let user = LocalUser::signed_in().await;
    let (kid, _) = user.published_key();
    let impostor = TestKey::ed25519(&kid);
    assert_all_refused(
        &user.identity.verifier(),
        &[
            case("real claims, impostor key", impostor.sign(&payload_of(user.id_token())), TokenUse::Id),
            case("real access claims, impostor key", impostor.sign(&payload_of(user.access_token())), TokenUse::Access),
        ],
    )
    .await;
}

#[tokio::test]
async fn keys_carried_in_the_header_are_never_trusted() {
    let user = LocalUser::signed_in().await;
    let (kid, _) = user.published_key();
    let payload = payload_of(user.id_token());
    let attacker = TestKey::ed25519("attacker");
    let key_server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(attacker.jwks()))
        .mount(&key_server)
        .await;

    let embedded = |kid: Option<&str>| Header {
        kid: kid.map(str::to_owned),
        jwk: Some(attacker.jwk.clone()),
        ..Header::new(Algorithm::EdDSA)
    };
    let remote = Header { jku: Some(format!("{}/jwks.json", key_server.uri())), ..attacker.header() };
    let x5u = Header { x5u: Some(format!("{}/cert.pem", key_server.uri())), ..attacker.header() };
    assert_all_refused(
        &user.identity.verifier(),
        &[
            case(
                "embedded jwk, kid of the real key",
                attacker.sign_with(&embedded(Some(&kid)), &payload),
                TokenUse::Id,
            ),
            case(
                "embedded jwk, kid of the jwk",
                attacker.sign_with(&embedded(Some("attacker")), &payload),
                TokenUse::Id,
            ),
            case("embedded jwk, no kid", attacker.sign_with(&embedded(None), &payload), TokenUse::Id),
            case("jku pointing at the attacker's JWKS", attacker.sign_with(&remote, &payload), TokenUse::Id),
            case("x5u pointing at the attacker's server", attacker.sign_with(&x5u, &payload), TokenUse::Id),
        ],
    )
    .await;
    let requests = key_server.received_requests().await.expect("wiremock records requests");
    assert!(requests.is_empty(), "the verifier fetched keys named by the token: {requests:?}");
}

#[tokio::test]
async fn header_keys_are_refused_even_on_a_token_the_trusted_key_signed() {
    let trusted = TestKey::ed25519("test-key");
    let verifier = local_verifier_for(&trusted);
    let id = claims(LOCAL_ISSUER, LOCAL_CLIENT_ID, TokenUse::Id);
    assert_accepted(&verifier, "ID token with a plain header", &trusted.sign(&id), TokenUse::Id).await;

    let carrying = |header: Header| trusted.sign_with(&header, &id);
    let jwk = Some(TestKey::ed25519("other").jwk);
    let url = Some("https://keys.example.com/jwks.json".to_owned());
    assert_all_refused(
        &verifier,
        &[
            case("embedded jwk", carrying(Header { jwk, ..trusted.header() }), TokenUse::Id),
            case("jku", carrying(Header { jku: url.clone(), ..trusted.header() }), TokenUse::Id),
            case("x5u", carrying(Header { x5u: url, ..trusted.header() }), TokenUse::Id),
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Claims, signed by a key the test controls
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn expired_token_is_refused() {
    let key = TestKey::ed25519("test-key");
    let verifier = local_verifier_for(&key);
    let fresh = claims(LOCAL_ISSUER, LOCAL_CLIENT_ID, TokenUse::Id);
    assert_accepted(&verifier, "fresh ID token", &key.sign(&fresh), TokenUse::Id).await;

    let expired = |ago: u64| with(with(fresh.clone(), "exp", json!(now() - ago)), "iat", json!(now() - ago - 3600));
    let access = claims(LOCAL_ISSUER, LOCAL_CLIENT_ID, TokenUse::Access);
    assert_all_refused(
        &verifier,
        &[
            case("ID token expired an hour ago", key.sign(&expired(3600)), TokenUse::Id),
            case("ID token expired two minutes ago (beyond leeway)", key.sign(&expired(120)), TokenUse::Id),
            case("ID token expired in 1970", key.sign(&with(fresh.clone(), "exp", json!(1))), TokenUse::Id),
            case("access token expired", key.sign(&with(access, "exp", json!(now() - 3600))), TokenUse::Access),
            case("no exp claim", key.sign(&with(fresh.clone(), "exp", Value::Null)), TokenUse::Id),
        ],
    )
    .await;
}

#[tokio::test]
async fn wrong_issuer_is_refused() {
    let key = TestKey::ed25519("test-key");
    let verifier = local_verifier_for(&key);
    let id = claims(LOCAL_ISSUER, LOCAL_CLIENT_ID, TokenUse::Id);
    assert_accepted(&verifier, "ID token of the right issuer", &key.sign(&id), TokenUse::Id).await;

    let iss = |value: Value| key.sign(&with(id.clone(), "iss", value));
    assert_all_refused(
        &verifier,
        &[
            case("another issuer", iss(json!("https://evil.example.com")), TokenUse::Id),
            case("issuer with a suffix", iss(json!(format!("{LOCAL_ISSUER}/other"))), TokenUse::Id),
            case("issuer in upper case", iss(json!(LOCAL_ISSUER.to_uppercase())), TokenUse::Id),
            case("empty issuer", iss(json!("")), TokenUse::Id),
            case("no issuer", iss(Value::Null), TokenUse::Id),
            case("Cognito issuer", iss(json!(COGNITO_ISSUER)), TokenUse::Id),
        ],
    )
    .await;
}

#[tokio::test]
async fn id_token_for_another_audience_is_refused() {
    let key = TestKey::ed25519("test-key");
    let verifier = local_verifier_for(&key);
    let id = claims(LOCAL_ISSUER, LOCAL_CLIENT_ID, TokenUse::Id);
    assert_accepted(&verifier, "ID token for our client", &key.sign(&id), TokenUse::Id).await;

    let aud = |value: Value| key.sign(&with(id.clone(), "aud", value));
    assert_all_refused(
        &verifier,
        &[
            case("aud of another client", aud(json!("another-client")), TokenUse::Id),
            case("empty aud", aud(json!("")), TokenUse::Id),
            case("no aud", aud(Value::Null), TokenUse::Id),
            case(
                "no aud, right client_id instead",
                key.sign(&with(with(id.clone(), "aud", Value::Null), "client_id", json!(LOCAL_CLIENT_ID))),
                TokenUse::Id,
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn access_token_for_another_client_is_refused() {
    let key = TestKey::ed25519("test-key");
    let verifier = local_verifier_for(&key);
    let access = claims(LOCAL_ISSUER, LOCAL_CLIENT_ID, TokenUse::Access);
    assert_accepted(&verifier, "access token for our client", &key.sign(&access), TokenUse::Access).await;

    let client = |value: Value| key.sign(&with(access.clone(), "client_id", value));
    assert_all_refused(
        &verifier,
        &[
            case("client_id of another client", client(json!("another-client")), TokenUse::Access),
            case("empty client_id", client(json!("")), TokenUse::Access),
            case("no client_id", client(Value::Null), TokenUse::Access),
            case(
                "no client_id, right aud instead",
                key.sign(&with(with(access.clone(), "client_id", Value::Null), "aud", json!(LOCAL_CLIENT_ID))),
                TokenUse::Access,
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn unknown_and_malicious_kids_are_refused() {
    let key = TestKey::ed25519("test-key");
    let verifier = local_verifier_for(&key);
    let id = claims(LOCAL_ISSUER, LOCAL_CLIENT_ID, TokenUse::Id);
    assert_accepted(&verifier, "ID token under the known kid", &key.sign(&id), TokenUse::Id).await;

    // Same key and valid claims; only the kid differs, so only the kid lookup can refuse them.
    let under = |kid: Option<&str>| key.sign_with(&Header { kid: kid.map(str::to_owned), ..key.header() }, &id);
    assert_all_refused(
        &verifier,
        &[
            case("unknown kid", under(Some("some-other-key")), TokenUse::Id),
            case("kid differing in case", under(Some("TEST-KEY")), TokenUse::Id),
            case("kid with a prefix match", under(Some("test-key-2")), TokenUse::Id),
            case("empty kid", under(Some("")), TokenUse::Id),
            case("no kid", under(None), TokenUse::Id),
            case("kid path traversal", under(Some("../../etc/passwd")), TokenUse::Id),
            case("kid path traversal to the known kid", under(Some("../test-key")), TokenUse::Id),
            case("kid absolute path", under(Some("/dev/null")), TokenUse::Id),
            case("kid SQL injection", under(Some("' OR '1'='1")), TokenUse::Id),
            case("kid SQL injection with comment", under(Some("test-key' --")), TokenUse::Id),
            case("kid with a NUL byte", under(Some("test-key\0")), TokenUse::Id),
        ],
    )
    .await;
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let key = TestKey::ed25519("test-key");
    let verifier = local_verifier_for(&key);
    let valid = key.sign(&claims(LOCAL_ISSUER, LOCAL_CLIENT_ID, TokenUse::Id));
    assert_accepted(&verifier, "well-formed ID token", &valid, TokenUse::Id).await;

    let segments: Vec<&str> = valid.split('.').collect();
    assert_all_refused(
        &verifier,
        &[
            case("empty string", String::new(), TokenUse::Id),
            case("not a JWT", "Bearer nonsense".to_owned(), TokenUse::Id),
            case("header and payload only", format!("{}.{}", segments[0], segments[1]), TokenUse::Id),
            case("four segments", format!("{valid}.{}", segments[2]), TokenUse::Id),
            case("header is not JSON", format!("{}.{}.{}", B64URL.encode("{"), segments[1], segments[2]), TokenUse::Id),
            case(
                "payload is not JSON",
                format!("{}.{}.{}", segments[0], B64URL.encode("]"), segments[2]),
                TokenUse::Id,
            ),
            case(
                "payload has the wrong token_use value",
                key.sign(&with(claims(LOCAL_ISSUER, LOCAL_CLIENT_ID, TokenUse::Id), "token_use", json!("admin"))),
                TokenUse::Id,
            ),
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Remote JWKS (Cognito style, RS256)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn cognito_style_rs256_tokens_verify_from_a_remote_jwks() {
    let key = TestKey::rsa("rsa-test-1");
    let (server, verifier) = fake_cognito(&key.jwks()).await;

    let access = key.sign(&claims(COGNITO_ISSUER, COGNITO_CLIENT_ID, TokenUse::Access));
    let principal = assert_accepted(&verifier, "RS256 access token", &access, TokenUse::Access).await;
    assert_eq!(principal.user_id, UserId::parse(SUBJECT).unwrap());
    assert_eq!(principal.tenant_id, Some(TenantId::parse(TENANT).unwrap()));
    assert_eq!(principal.role, Some(Role::TenantManager));

    let id = key.sign(&claims(COGNITO_ISSUER, COGNITO_CLIENT_ID, TokenUse::Id));
    let principal = assert_accepted(&verifier, "RS256 ID token", &id, TokenUse::Id).await;
    assert_eq!(principal.email, Some(Email::parse("ann@example.com").unwrap()));

    assert_eq!(jwks_fetches(&server).await, 1, "a known kid is served from the cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_unknown_kids_cannot_drive_a_jwks_fetch_storm() {
    const STORM: usize = 10_000;
    let key = TestKey::rsa("rsa-test-1");
    let (server, verifier) = fake_cognito(&key.jwks()).await;
    let valid = key.sign(&claims(COGNITO_ISSUER, COGNITO_CLIENT_ID, TokenUse::Access));
    assert_accepted(&verifier, "RS256 access token", &valid, TokenUse::Access).await;
    assert_eq!(jwks_fetches(&server).await, 1);

    // The kid is read before the signature, so the storm reuses the valid payload and signature
    // under a fresh random kid each time, some of them shaped like path traversal.
    let payload = payload_of(&valid);
    let signature = signature_of(&valid).to_owned();
    let tasks: Vec<_> = (0..STORM)
        .map(|i| {
            let kid = match i % 3 {
                0 => format!("../../{}", uuid::Uuid::new_v4()),
                _ => uuid::Uuid::new_v4().to_string(),
            };
            let token = hand_built(&json!({"alg": "RS256", "typ": "JWT", "kid": kid}), &payload, &signature);
            let verifier = Arc::clone(&verifier);
            tokio::spawn(async move { verifier.verify(&token, TokenUse::Access).await })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        match task.await.expect("verification task ran") {
            Err(VerifyError::Invalid(_)) => {}
            Ok(_) => accepted += 1,
            Err(other) => panic!("an unknown kid should be invalid, not: {other}"),
        }
    }
    assert_eq!(accepted, 0, "tokens with unknown kids were accepted");

    let fetches = jwks_fetches(&server).await;
    assert!(
        fetches <= 2,
        "{STORM} unknown kids caused {} JWKS fetches after the first (at most 1 allowed)",
        fetches - 1
    );
    assert_accepted(&verifier, "valid token after the storm", &valid, TokenUse::Access).await;
    assert_eq!(jwks_fetches(&server).await, fetches, "the known key is still cached after the storm");
}

#[tokio::test]
async fn a_rotated_key_is_fetched_once_for_every_lookup_and_known_keys_never_wait_for_it() {
    let old = TestKey::rsa("rsa-test-1");
    let new = TestKey::ed25519("rotated-key");
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(old.jwks()))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    // The refetch is slow: tokens under the known key must not wait for it.
    let rotated = JwkSet { keys: vec![old.jwk.clone(), new.jwk.clone()] };
    Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(rotated).set_delay(Duration::from_secs(3)))
        .mount(&server)
        .await;
    let verifier = remote_verifier(&server);

    let old_token = old.sign(&claims(COGNITO_ISSUER, COGNITO_CLIENT_ID, TokenUse::Access));
    let new_token = new.sign(&claims(COGNITO_ISSUER, COGNITO_CLIENT_ID, TokenUse::Access));
    assert_accepted(&verifier, "token under the first key", &old_token, TokenUse::Access).await;
    assert_all_refused(&verifier, &[case("new kid inside the penalty interval", new_token.clone(), TokenUse::Access)])
        .await;
    assert_eq!(jwks_fetches(&server).await, 1, "no refetch inside the penalty interval");

    tokio::time::sleep(Duration::from_millis(10_200)).await;
    // Ten tokens under the rotated key arrive at once: one fetch serves them all.
    let mut rotated_lookups: Vec<_> = (0..10)
        .map(|_| {
            let (verifier, token) = (Arc::clone(&verifier), new_token.clone());
            tokio::spawn(async move { verifier.verify(&token, TokenUse::Access).await })
        })
        .collect();
    while jwks_fetches(&server).await < 2 {
        tokio::task::yield_now().await;
    }
    // While that fetch is under way, a token under the known key verifies without waiting for it.
    let first_rotated = rotated_lookups.remove(0);
    tokio::pin!(first_rotated);
    tokio::select! {
        biased;
        _ = &mut first_rotated => panic!("the fetch finished first: the known key waited for it"),
        known = verifier.verify(&old_token, TokenUse::Access) => {
            known.expect("the known key still verifies");
        }
    }
    first_rotated.await.unwrap().expect("the rotated key verifies once fetched");
    for lookup in rotated_lookups {
        lookup.await.unwrap().expect("the rotated key verifies once fetched");
    }
    assert_eq!(jwks_fetches(&server).await, 2, "one refetch for all the lookups, once the interval has passed");
}

#[tokio::test]
async fn an_rs256_key_cannot_verify_an_hs256_token() {
    let key = TestKey::rsa("rsa-test-1");
    let (_server, verifier) = fake_cognito(&key.jwks()).await;
    let access = claims(COGNITO_ISSUER, COGNITO_CLIENT_ID, TokenUse::Access);
    assert_accepted(&verifier, "RS256 access token", &key.sign(&access), TokenUse::Access).await;

    let jwk_json = serde_json::to_vec(&key.jwk).expect("JWK serializes");
    let modulus = B64URL.decode(TEST_RSA_N).expect("n is base64url");
    let kid = key.kid.as_str();
    assert_all_refused(
        &verifier,
        &[
            case(
                "HS256 keyed with the public key PEM",
                hs256(kid, &access, TEST_RSA_PUBLIC_PEM.as_bytes()),
                TokenUse::Access,
            ),
            case("HS256 keyed with the JWK `n` text", hs256(kid, &access, TEST_RSA_N.as_bytes()), TokenUse::Access),
            case("HS256 keyed with the raw modulus", hs256(kid, &access, &modulus), TokenUse::Access),
            case("HS256 keyed with the JWK document", hs256(kid, &access, &jwk_json), TokenUse::Access),
            case(
                "RS512 signed by the right key",
                key.sign_with(&Header { alg: Algorithm::RS512, ..key.header() }, &access),
                TokenUse::Access,
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn an_unreachable_jwks_refuses_tokens_as_keys_unavailable() {
    let key = TestKey::rsa("rsa-test-1");
    let server = MockServer::start().await;
    Mock::given(method("GET")).and(path(JWKS_PATH)).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    let verifier = remote_verifier(&server);
    let token = key.sign(&claims(COGNITO_ISSUER, COGNITO_CLIENT_ID, TokenUse::Access));
    match verifier.verify(&token, TokenUse::Access).await {
        Err(VerifyError::KeysUnavailable(_)) => {}
        other => panic!("a JWKS answering 503 should give KeysUnavailable, got {other:?}"),
    }
}
