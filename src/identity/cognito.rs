//! Amazon Cognito `Identity` adapter: AdminCreateUser with `custom:tenantID`, roles as groups,
//! `ADMIN_USER_PASSWORD_AUTH`, `NEW_PASSWORD_REQUIRED`, `REFRESH_TOKEN_AUTH`, and SECRET_HASH when
//! the app client has a secret.

use super::jwt::JwtVerifier;
use super::{
    Identity, IdentityError, IdentityResult, InitialPassword, Login, NewIdentityUser, Tokens, check_password_policy,
};
use crate::config::IdentitySettings;
use crate::domain::{Email, UserId};
use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cognitoidentityprovider::types::{
    AttributeType, AuthFlowType, AuthenticationResultType, ChallengeNameType, MessageActionType,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::sync::Arc;

/// What [`CognitoIdentity::inspect`] found.
#[derive(Debug, Clone)]
pub struct PoolReport {
    /// The pool's name.
    pub pool_name: String,
    /// Whether the pool's schema declares `custom:tenantID`.
    pub has_tenant_attribute: bool,
    /// Whether the app client may write `custom:tenantID` (users could then rewrite their own
    /// tenant with their access token; kamshub checks it against the store, but it should not).
    pub client_writes_tenant: bool,
    /// Whether the app client allows `ADMIN_USER_PASSWORD_AUTH` (kamshub's sign-in flow).
    pub admin_password_auth: bool,
    /// Whether the app client has a secret.
    pub client_has_secret: bool,
    /// The pool's groups (kamshub's roles are created on first use).
    pub groups: Vec<String>,
}

/// The Cognito user pool adapter.
pub struct CognitoIdentity {
    client: Client,
    pool_id: String,
    client_id: String,
    client_secret: Option<SecretString>,
    verifier: Arc<JwtVerifier>,
}

impl CognitoIdentity {
    /// A client for the configured pool. Nothing is called until first use.
    pub async fn new(settings: &IdentitySettings) -> IdentityResult<Self> {
        let pool_id = settings.user_pool_id.clone().expect("validated: cognito has a user pool id");
        let client_id = settings.client_id.clone().expect("validated: cognito has a client id");
        let region = settings
            .region
            .clone()
            .or_else(|| pool_id.split_once('_').map(|(region, _)| region.to_owned()))
            .ok_or_else(|| {
            IdentityError::Other("cannot tell the user pool's region; set [identity] region".into())
        })?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region.clone()));
        if let Some(endpoint) = &settings.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        let client = Client::new(&loader.load().await);
        let issuer = format!("https://cognito-idp.{region}.amazonaws.com/{pool_id}");
        let jwks_url = settings.jwks_url.clone().unwrap_or_else(|| {
            let base =
                settings.endpoint_url.clone().unwrap_or_else(|| format!("https://cognito-idp.{region}.amazonaws.com"));
            format!("{}/{pool_id}/.well-known/jwks.json", base.trim_end_matches('/'))
        });
        let verifier = Arc::new(JwtVerifier::with_jwks_url(issuer, client_id.clone(), jwks_url));
        Ok(Self { client, pool_id, client_id, client_secret: settings.client_secret.clone(), verifier })
    }

    /// What `kamshub doctor` checks: the pool and app client exist, the pool declares
    /// `custom:tenantID`, whether the app client may write it, its auth flows, and the groups.
    pub async fn inspect(&self) -> IdentityResult<PoolReport> {
        let pool = self.client.describe_user_pool().user_pool_id(&self.pool_id).send().await.map_err(sdk_error)?;
        let pool = pool.user_pool().ok_or_else(|| IdentityError::Other("Cognito returned no user pool".into()))?;
        let has_tenant_attribute = pool
            .schema_attributes()
            .iter()
            .any(|a| a.name().is_some_and(|n| n == TENANT_ATTRIBUTE || format!("custom:{n}") == TENANT_ATTRIBUTE));
        let app = self
            .client
            .describe_user_pool_client()
            .user_pool_id(&self.pool_id)
            .client_id(&self.client_id)
            .send()
            .await
            .map_err(sdk_error)?;
        let app =
            app.user_pool_client().ok_or_else(|| IdentityError::Other("Cognito returned no app client".into()))?;
        // No write attributes listed means the client may write every attribute.
        let writes = app.write_attributes();
        let client_writes_tenant = writes.is_empty() || writes.iter().any(|a| a == TENANT_ATTRIBUTE);
        let flows: Vec<String> = app.explicit_auth_flows().iter().map(|f| f.as_str().to_owned()).collect();
        let admin_password_auth =
            flows.iter().any(|f| f == "ALLOW_ADMIN_USER_PASSWORD_AUTH" || f == "ADMIN_NO_SRP_AUTH");
        let groups = self.client.list_groups().user_pool_id(&self.pool_id).send().await.map_err(sdk_error)?;
        Ok(PoolReport {
            pool_name: pool.name().unwrap_or_default().to_owned(),
            has_tenant_attribute,
            client_writes_tenant,
            admin_password_auth,
            client_has_secret: app.client_secret().is_some(),
            groups: groups.groups().iter().filter_map(|g| g.group_name().map(str::to_owned)).collect(),
        })
    }

    fn secret_hash(&self, username: &str) -> Option<String> {
        self.client_secret.as_ref().map(|secret| secret_hash(secret, username, &self.client_id))
    }

    async fn ensure_group(&self, group: &str) -> IdentityResult<()> {
        match self.client.create_group().user_pool_id(&self.pool_id).group_name(group).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("GroupExistsException") => Ok(()),
            Err(e) => Err(sdk_error(e)),
        }
    }

    async fn add_and_activate(&self, user: &NewIdentityUser<'_>) -> IdentityResult<()> {
        self.ensure_group(user.role.as_str()).await?;
        self.client
            .admin_add_user_to_group()
            .user_pool_id(&self.pool_id)
            .username(user.email.as_str())
            .group_name(user.role.as_str())
            .send()
            .await
            .map_err(sdk_error)?;
        if let InitialPassword::Permanent(password) = &user.password {
            self.client
                .admin_set_user_password()
                .user_pool_id(&self.pool_id)
                .username(user.email.as_str())
                .password(password.expose_secret())
                .permanent(true)
                .send()
                .await
                .map_err(sdk_error)?;
        }
        Ok(())
    }
}

#[async_trait]
impl Identity for CognitoIdentity {
    fn kind(&self) -> &'static str {
        "cognito"
    }

    async fn create_user(&self, user: NewIdentityUser<'_>) -> IdentityResult<UserId> {
        let password = match &user.password {
            InitialPassword::Temporary(p) | InitialPassword::Permanent(p) => p,
        };
        check_password_policy(password)?;
        let attribute = |name: &str, value: &str| {
            AttributeType::builder().name(name).value(value).build().expect("attribute name is set")
        };
        let created = self
            .client
            .admin_create_user()
            .user_pool_id(&self.pool_id)
            .username(user.email.as_str())
            .temporary_password(password.expose_secret())
            .message_action(MessageActionType::Suppress)
            .user_attributes(attribute("email", user.email.as_str()))
            .user_attributes(attribute("email_verified", "true"))
            .user_attributes(attribute(TENANT_ATTRIBUTE, user.tenant_id.as_str()))
            .send()
            .await
            .map_err(|e| match e.code() {
                Some("UsernameExistsException" | "AliasExistsException") => {
                    IdentityError::AlreadyExists(user.email.to_string())
                }
                _ => sdk_error(e),
            })?;
        let sub = created
            .user()
            .map(|u| u.attributes())
            .unwrap_or_default()
            .iter()
            .find(|a| a.name() == "sub")
            .and_then(|a| a.value())
            .ok_or_else(|| IdentityError::Other("AdminCreateUser answered without the user's sub".into()))?;
        let sub = UserId::parse(sub).map_err(|e| IdentityError::Other(e.to_string()))?;
        if let Err(e) = self.add_and_activate(&user).await {
            let _ = self.delete_user(user.email).await;
            return Err(e);
        }
        Ok(sub)
    }

    async fn delete_user(&self, email: &Email) -> IdentityResult<()> {
        match self.client.admin_delete_user().user_pool_id(&self.pool_id).username(email.as_str()).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("UserNotFoundException") => Ok(()),
            Err(e) => Err(sdk_error(e)),
        }
    }

    async fn login(&self, email: &Email, password: &SecretString) -> IdentityResult<Login> {
        let mut request = self
            .client
            .admin_initiate_auth()
            .user_pool_id(&self.pool_id)
            .client_id(&self.client_id)
            .auth_flow(AuthFlowType::AdminUserPasswordAuth)
            .auth_parameters("USERNAME", email.as_str())
            .auth_parameters("PASSWORD", password.expose_secret());
        if let Some(hash) = self.secret_hash(email.as_str()) {
            request = request.auth_parameters("SECRET_HASH", hash);
        }
        let answer = request.send().await.map_err(auth_error)?;
        match answer.challenge_name() {
            Some(ChallengeNameType::NewPasswordRequired) => Ok(Login::NewPasswordRequired {
                session: answer
                    .session()
                    .map(str::to_owned)
                    .ok_or_else(|| IdentityError::Other("NEW_PASSWORD_REQUIRED without a session".into()))?,
            }),
            Some(other) => Err(IdentityError::Other(format!("unsupported sign-in challenge {}", other.as_str()))),
            None => tokens(answer.authentication_result()).map(Login::Tokens),
        }
    }

    async fn complete_new_password(
        &self,
        email: &Email,
        session: &str,
        new_password: &SecretString,
    ) -> IdentityResult<Tokens> {
        check_password_policy(new_password)?;
        let mut request = self
            .client
            .admin_respond_to_auth_challenge()
            .user_pool_id(&self.pool_id)
            .client_id(&self.client_id)
            .challenge_name(ChallengeNameType::NewPasswordRequired)
            .session(session)
            .challenge_responses("USERNAME", email.as_str())
            .challenge_responses("NEW_PASSWORD", new_password.expose_secret());
        if let Some(hash) = self.secret_hash(email.as_str()) {
            request = request.challenge_responses("SECRET_HASH", hash);
        }
        let answer = request.send().await.map_err(|e| match e.code() {
            Some("CodeMismatchException" | "ExpiredCodeException") => IdentityError::InvalidSession,
            Some("NotAuthorizedException") if e.message().is_some_and(|m| m.contains("session")) => {
                IdentityError::InvalidSession
            }
            _ => auth_error(e),
        })?;
        tokens(answer.authentication_result())
    }

    async fn refresh(&self, username: Option<&Email>, refresh_token: &SecretString) -> IdentityResult<Tokens> {
        let mut request = self
            .client
            .admin_initiate_auth()
            .user_pool_id(&self.pool_id)
            .client_id(&self.client_id)
            .auth_flow(AuthFlowType::RefreshTokenAuth)
            .auth_parameters("REFRESH_TOKEN", refresh_token.expose_secret());
        if self.client_secret.is_some() {
            let email = username.ok_or(IdentityError::UsernameRequired(
                "this deployment's Cognito app client has a secret: send the user's email with the refresh token",
            ))?;
            request =
                request.auth_parameters("SECRET_HASH", self.secret_hash(email.as_str()).expect("a secret is set"));
        }
        let answer = request.send().await.map_err(auth_error)?;
        tokens(answer.authentication_result())
    }

    fn verifier(&self) -> Arc<JwtVerifier> {
        Arc::clone(&self.verifier)
    }

    /// `custom:tenantID` is safe when the pool declares it immutable, or when the app client's
    /// write attributes leave it out (an app client without a `WriteAttributes` list may write
    /// every mutable attribute).
    async fn tenant_attribute_risks(&self) -> IdentityResult<Vec<String>> {
        let pool = self.client.describe_user_pool().user_pool_id(&self.pool_id).send().await.map_err(sdk_error)?;
        let mutable = pool
            .user_pool()
            .map(|p| p.schema_attributes())
            .unwrap_or_default()
            .iter()
            .find(|a| a.name() == Some(TENANT_ATTRIBUTE) || a.name() == Some("tenantID"))
            .map(|a| a.mutable().unwrap_or(true));
        let Some(true) = mutable else {
            return Ok(match mutable {
                None => vec![format!("user pool {} declares no {TENANT_ATTRIBUTE} attribute", self.pool_id)],
                Some(_) => Vec::new(),
            });
        };
        let client = self
            .client
            .describe_user_pool_client()
            .user_pool_id(&self.pool_id)
            .client_id(&self.client_id)
            .send()
            .await
            .map_err(sdk_error)?;
        let writable = client.user_pool_client().map(|c| c.write_attributes()).unwrap_or_default();
        let risk = if writable.is_empty() {
            Some("has no WriteAttributes list, so users may write every mutable attribute")
        } else if writable.iter().any(|a| a == TENANT_ATTRIBUTE) {
            Some("lists it in its WriteAttributes")
        } else {
            None
        };
        Ok(risk
            .map(|why| {
                format!(
                    "{TENANT_ATTRIBUTE} is mutable in user pool {} and app client {} {why}: a user can rewrite \
                     their own tenant with their access token (kamshub refuses such tokens, as their tenant \
                     no longer matches the stored user). Remove {TENANT_ATTRIBUTE} from the app client's \
                     WriteAttributes; new pools should declare it immutable",
                    self.pool_id, self.client_id
                )
            })
            .into_iter()
            .collect())
    }
}

/// The user attribute that carries a user's tenant.
pub const TENANT_ATTRIBUTE: &str = "custom:tenantID";

/// `SECRET_HASH` = Base64(HMAC-SHA256(key = client secret, message = username ‖ client id)).
pub fn secret_hash(client_secret: &SecretString, username: &str, client_id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(client_secret.expose_secret().as_bytes()).expect("HMAC takes any key");
    mac.update(username.as_bytes());
    mac.update(client_id.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

fn tokens(result: Option<&AuthenticationResultType>) -> IdentityResult<Tokens> {
    let result = result.ok_or_else(|| IdentityError::Other("sign-in answered without tokens".into()))?;
    let required = |t: Option<&str>, what: &str| {
        t.map(|t| SecretString::from(t.to_owned()))
            .ok_or_else(|| IdentityError::Other(format!("sign-in answered without an {what}")))
    };
    Ok(Tokens {
        id_token: required(result.id_token(), "ID token")?,
        access_token: required(result.access_token(), "access token")?,
        refresh_token: result.refresh_token().map(|t| SecretString::from(t.to_owned())),
        expires_in: u64::try_from(result.expires_in()).unwrap_or(3600),
    })
}

/// Sign-in errors: wrong credentials and unknown users read the same.
fn auth_error<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static, R: std::fmt::Debug>(
    e: SdkError<E, R>,
) -> IdentityError {
    match e.code() {
        Some("NotAuthorizedException" | "UserNotFoundException" | "UserNotConfirmedException") => {
            IdentityError::NotAuthorized
        }
        Some("InvalidPasswordException") => {
            IdentityError::InvalidPassword(e.message().unwrap_or("rejected by the pool's policy").to_owned())
        }
        _ => sdk_error(e),
    }
}

fn sdk_error<E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static, R: std::fmt::Debug>(
    e: SdkError<E, R>,
) -> IdentityError {
    match &e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            IdentityError::Unavailable(format!("cannot reach Cognito: {}", aws_error_chain(&e)))
        }
        SdkError::ServiceError(_) => match e.code() {
            Some("InvalidPasswordException") => {
                IdentityError::InvalidPassword(e.message().unwrap_or("rejected by the pool's policy").to_owned())
            }
            Some("TooManyRequestsException" | "InternalErrorException") => IdentityError::Unavailable(format!(
                "{}: {}",
                e.code().unwrap_or_default(),
                e.message().unwrap_or_default()
            )),
            code => IdentityError::Other(format!(
                "{}: {}",
                code.unwrap_or("unknown error"),
                e.message().unwrap_or("no message")
            )),
        },
        _ => IdentityError::Other(aws_error_chain(&e)),
    }
}

fn aws_error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vector computed independently with Python's `hmac` and `base64` modules:
    /// b64(hmac.new(secret, username + client_id, sha256).digest()).
    #[test]
    fn secret_hash_matches_a_known_vector() {
        let secret = SecretString::from("1example23456789secretexample");
        assert_eq!(
            secret_hash(&secret, "ops@example.com", "7example23456789clientid"),
            "PymUQ6WIB44eI8oB74krzzWlDzdFljRVpC2MYRcBh+U="
        );
    }
}
