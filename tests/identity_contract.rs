//! The `Identity` port contract, run against the local identity always and against Cognito on
//! the AWS stand-in (moto) when `KAMSHUB_TEST_AWS_ENDPOINT` is set. Tokens of both are checked
//! by the one JWT verifier.

mod common;

use kamshub::domain::{Email, Role, TenantId, UserId};
use kamshub::identity::jwt::TokenUse;
use kamshub::identity::{Identity, IdentityError, InitialPassword, Login, NewIdentityUser, Tokens};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

struct Fixture {
    identity: Arc<dyn Identity>,
    _dir: Option<tempfile::TempDir>,
}

async fn local() -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let identity = kamshub::identity::local::LocalIdentity::open(dir.path()).unwrap();
    Some(Fixture { identity: Arc::new(identity), _dir: Some(dir) })
}

async fn cognito() -> Option<Fixture> {
    let endpoint = common::aws_endpoint()?;
    let pool = common::TestPool::create(&endpoint).await;
    let identity = kamshub::identity::cognito::CognitoIdentity::new(&pool.settings()).await.unwrap();
    Some(Fixture { identity: Arc::new(identity), _dir: None })
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod local {
            $(#[tokio::test] async fn $case() { super::$case(super::local().await.unwrap().identity).await })*
        }
        mod cognito {
            $(#[tokio::test] async fn $case() {
                let Some(fixture) = super::cognito().await else { return };
                super::$case(fixture.identity).await
            })*
        }
    };
}

contract!(
    a_temporary_password_must_be_replaced_at_first_sign_in,
    a_permanent_password_signs_in_directly,
    wrong_passwords_and_unknown_users_read_the_same,
    one_email_is_one_user,
    weak_passwords_are_refused_and_create_nothing,
    refresh_gives_fresh_tokens,
    deleted_users_cannot_sign_in,
);

const GOOD: &str = "Correct-Horse-42";
const NEWER: &str = "Battery-Staple-77";

fn email(local: &str) -> Email {
    Email::parse(&format!("{local}@{}.example.com", common::unique_name("d").replace('_', "-"))).unwrap()
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

async fn create(
    identity: &Arc<dyn Identity>,
    email: &Email,
    tenant: &TenantId,
    role: Role,
    password: InitialPassword,
) -> UserId {
    identity.create_user(NewIdentityUser { email, tenant_id: tenant, role, password }).await.unwrap()
}

fn tokens(login: Login) -> Tokens {
    match login {
        Login::Tokens(t) => t,
        Login::NewPasswordRequired { .. } => panic!("expected tokens, got NEW_PASSWORD_REQUIRED"),
    }
}

/// The ID and access tokens verify with the provider's verifier and carry the user's claims.
async fn assert_tokens_name(
    identity: &Arc<dyn Identity>,
    tokens: &Tokens,
    user: &UserId,
    tenant: &TenantId,
    role: Role,
) {
    let verifier = identity.verifier();
    let id = verifier.verify(tokens.id_token.expose_secret(), TokenUse::Id).await.unwrap();
    assert_eq!(&id.user_id, user);
    assert_eq!(id.tenant_id.as_ref(), Some(tenant));
    assert_eq!(id.role, Some(role));
    let access = verifier.verify(tokens.access_token.expose_secret(), TokenUse::Access).await.unwrap();
    assert_eq!(&access.user_id, user);
    assert_eq!(access.role, Some(role));
    assert!(
        verifier.verify(tokens.id_token.expose_secret(), TokenUse::Access).await.is_err(),
        "ID token is not an access token"
    );
    assert!(tokens.expires_in > 0);
}

async fn a_temporary_password_must_be_replaced_at_first_sign_in(identity: Arc<dyn Identity>) {
    let (who, tenant) = (email("temp"), TenantId::generate());
    let user = create(&identity, &who, &tenant, Role::TenantAdmin, InitialPassword::Temporary(secret(GOOD))).await;
    let Login::NewPasswordRequired { session } = identity.login(&who, &secret(GOOD)).await.unwrap() else {
        panic!("a temporary password must answer NEW_PASSWORD_REQUIRED");
    };
    let weak = identity.complete_new_password(&who, &session, &secret("weak")).await;
    assert!(matches!(weak, Err(IdentityError::InvalidPassword(_))), "weak new password is refused");
    let t = identity.complete_new_password(&who, &session, &secret(NEWER)).await.unwrap();
    assert_tokens_name(&identity, &t, &user, &tenant, Role::TenantAdmin).await;
    let again = tokens(identity.login(&who, &secret(NEWER)).await.unwrap());
    assert_tokens_name(&identity, &again, &user, &tenant, Role::TenantAdmin).await;
    assert!(matches!(identity.login(&who, &secret(GOOD)).await, Err(IdentityError::NotAuthorized)));
}

async fn a_permanent_password_signs_in_directly(identity: Arc<dyn Identity>) {
    let (who, tenant) = (email("perm"), TenantId::platform());
    let user = create(&identity, &who, &tenant, Role::PlatformAdmin, InitialPassword::Permanent(secret(GOOD))).await;
    let t = tokens(identity.login(&who, &secret(GOOD)).await.unwrap());
    assert!(t.refresh_token.is_some());
    assert_tokens_name(&identity, &t, &user, &tenant, Role::PlatformAdmin).await;
}

async fn wrong_passwords_and_unknown_users_read_the_same(identity: Arc<dyn Identity>) {
    let who = email("known");
    create(&identity, &who, &TenantId::generate(), Role::TenantManager, InitialPassword::Permanent(secret(GOOD))).await;
    assert!(matches!(identity.login(&who, &secret("Wrong-Pass-1")).await, Err(IdentityError::NotAuthorized)));
    assert!(matches!(identity.login(&email("ghost"), &secret(GOOD)).await, Err(IdentityError::NotAuthorized)));
}

async fn one_email_is_one_user(identity: Arc<dyn Identity>) {
    let who = email("dup");
    create(&identity, &who, &TenantId::generate(), Role::TenantAdmin, InitialPassword::Permanent(secret(GOOD))).await;
    let again = identity
        .create_user(NewIdentityUser {
            email: &who,
            tenant_id: &TenantId::generate(),
            role: Role::TenantManager,
            password: InitialPassword::Permanent(secret(NEWER)),
        })
        .await;
    assert!(matches!(again, Err(IdentityError::AlreadyExists(_))), "{:?}", again.err());
    // The first user is untouched.
    tokens(identity.login(&who, &secret(GOOD)).await.unwrap());
}

async fn weak_passwords_are_refused_and_create_nothing(identity: Arc<dyn Identity>) {
    let who = email("weak");
    let refused = identity
        .create_user(NewIdentityUser {
            email: &who,
            tenant_id: &TenantId::generate(),
            role: Role::TenantAdmin,
            password: InitialPassword::Permanent(secret("password")),
        })
        .await;
    assert!(
        matches!(&refused, Err(IdentityError::InvalidPassword(m)) if m.contains("upper-case")),
        "{:?}",
        refused.err()
    );
    create(&identity, &who, &TenantId::generate(), Role::TenantAdmin, InitialPassword::Permanent(secret(GOOD))).await;
}

async fn refresh_gives_fresh_tokens(identity: Arc<dyn Identity>) {
    let (who, tenant) = (email("refresh"), TenantId::generate());
    let user = create(&identity, &who, &tenant, Role::TenantManager, InitialPassword::Permanent(secret(GOOD))).await;
    let first = tokens(identity.login(&who, &secret(GOOD)).await.unwrap());
    let refreshed = identity.refresh(Some(&who), first.refresh_token.as_ref().unwrap()).await.unwrap();
    assert_tokens_name(&identity, &refreshed, &user, &tenant, Role::TenantManager).await;
}

async fn deleted_users_cannot_sign_in(identity: Arc<dyn Identity>) {
    let who = email("gone");
    create(&identity, &who, &TenantId::generate(), Role::TenantAdmin, InitialPassword::Permanent(secret(GOOD))).await;
    identity.delete_user(&who).await.unwrap();
    assert!(matches!(identity.login(&who, &secret(GOOD)).await, Err(IdentityError::NotAuthorized)));
    identity.delete_user(&who).await.expect("deleting a missing user is not an error");
}

/// Local only: moto answers an unknown challenge session with ResourceNotFoundException (real
/// Cognito: NotAuthorizedException) and a bad refresh token with HTTP 500, so these run here.
mod local_only {
    use super::*;

    #[tokio::test]
    async fn an_unknown_challenge_session_is_refused() {
        let identity = local().await.unwrap().identity;
        let who = email("session");
        create(&identity, &who, &TenantId::generate(), Role::TenantAdmin, InitialPassword::Temporary(secret(GOOD)))
            .await;
        let err = identity.complete_new_password(&who, "forged-session", &secret(NEWER)).await.unwrap_err();
        assert!(matches!(err, IdentityError::InvalidSession), "{err:?}");
        // The temporary password still stands.
        assert!(matches!(identity.login(&who, &secret(GOOD)).await.unwrap(), Login::NewPasswordRequired { .. }));
    }

    #[tokio::test]
    async fn a_session_serves_only_its_own_user() {
        let identity = local().await.unwrap().identity;
        let (a, b) = (email("a"), email("b"));
        for who in [&a, &b] {
            create(&identity, who, &TenantId::generate(), Role::TenantAdmin, InitialPassword::Temporary(secret(GOOD)))
                .await;
        }
        let Login::NewPasswordRequired { session } = identity.login(&a, &secret(GOOD)).await.unwrap() else { panic!() };
        let err = identity.complete_new_password(&b, &session, &secret(NEWER)).await.unwrap_err();
        assert!(matches!(err, IdentityError::InvalidSession), "{err:?}");
    }

    #[tokio::test]
    async fn a_refresh_token_is_not_an_id_token_and_a_forged_one_fails() {
        let identity = local().await.unwrap().identity;
        let who = email("r");
        create(&identity, &who, &TenantId::generate(), Role::TenantAdmin, InitialPassword::Permanent(secret(GOOD)))
            .await;
        let t = tokens(identity.login(&who, &secret(GOOD)).await.unwrap());
        let refresh = t.refresh_token.unwrap();
        assert!(identity.verifier().verify(refresh.expose_secret(), TokenUse::Id).await.is_err());
        assert!(matches!(identity.refresh(Some(&who), &t.id_token).await, Err(IdentityError::NotAuthorized)));
        assert!(matches!(
            identity.refresh(Some(&who), &secret("not-a-token")).await,
            Err(IdentityError::NotAuthorized)
        ));
    }

    #[tokio::test]
    async fn tokens_outlive_a_restart_because_the_signing_key_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let who = email("restart");
        let first = kamshub::identity::local::LocalIdentity::open(dir.path()).unwrap();
        let user = first
            .create_user(NewIdentityUser {
                email: &who,
                tenant_id: &TenantId::platform(),
                role: Role::PlatformAdmin,
                password: InitialPassword::Permanent(secret(GOOD)),
            })
            .await
            .unwrap();
        let t = tokens(first.login(&who, &secret(GOOD)).await.unwrap());
        drop(first);
        let reopened = kamshub::identity::local::LocalIdentity::open(dir.path()).unwrap();
        let principal = reopened.verifier().verify(t.id_token.expose_secret(), TokenUse::Id).await.unwrap();
        assert_eq!(principal.user_id, user);
        tokens(reopened.login(&who, &secret(GOOD)).await.unwrap());
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("identity-signing.key")).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "the signing key is readable by its owner only");
    }
}
