//! Builds the adapters the settings choose, lazily: a command that only reads tenants never
//! touches the identity provider or the key file.

use crate::config::{IdentityKind, Settings, StoreKind};
use crate::delivery::WebhookClient;
use crate::identity::cognito::CognitoIdentity;
use crate::identity::local::LocalIdentity;
use crate::identity::{Identity, IdentityError};
use crate::providers::{Providers, messenger::MessengerClient, telegram::TelegramClient};
use crate::queue::{Queue, QueueError, metered::MeteredQueue, sqlite::SqliteQueue, sqs::SqsQueue};
use crate::sealing::MasterKey;
use crate::store::{Store, StoreError, metered::MeteredStore, mongo::MongoStore, sqlite::SqliteStore};
use secrecy::ExposeSecret;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use tokio::sync::OnceCell;

/// Why an adapter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The store could not be opened or reached.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The identity provider could not be set up.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The queues could not be opened or reached.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The data dir or key file is unusable.
    #[error("{0}")]
    Local(String),
}

/// The running application's adapters, shared by the CLI and the daemon.
pub struct App {
    /// The settings everything was built from.
    pub settings: Settings,
    store: OnceCell<Arc<dyn Store>>,
    identity: OnceCell<Arc<dyn Identity>>,
    queue: OnceCell<Arc<dyn Queue>>,
    local_identity: OnceCell<Arc<LocalIdentity>>,
    master_key: OnceLock<Arc<MasterKey>>,
    webhook_client: OnceLock<Arc<WebhookClient>>,
    providers: Providers,
}

impl App {
    /// An app over `settings`; nothing is opened yet.
    pub fn new(settings: Settings) -> Self {
        let providers = Providers::new(
            TelegramClient::new(&settings.providers.telegram_api_base),
            MessengerClient::new(&settings.providers.graph_api_base),
        );
        Self {
            settings,
            store: OnceCell::new(),
            identity: OnceCell::new(),
            queue: OnceCell::new(),
            local_identity: OnceCell::new(),
            master_key: OnceLock::new(),
            webhook_client: OnceLock::new(),
            providers,
        }
    }

    /// One line naming each chosen backend and the data dir, for the daemon's first log line.
    pub fn describe(&self) -> String {
        let s = &self.settings;
        format!(
            "store={} queue={} identity={} data_dir={}",
            match s.store.kind {
                StoreKind::Embedded => "embedded(sqlite)",
                StoreKind::Mongodb => "mongodb",
            },
            match s.queue.kind {
                crate::config::QueueKind::Embedded => "embedded(sqlite)",
                crate::config::QueueKind::Sqs => "sqs",
            },
            match s.identity.kind {
                IdentityKind::Local => "local",
                IdentityKind::Cognito => "cognito",
            },
            s.data_dir.display()
        )
    }

    /// The store, opened on first use, measured ([`MeteredStore`]).
    pub async fn store(&self) -> Result<Arc<dyn Store>, AppError> {
        self.store
            .get_or_try_init(|| async {
                let store: Arc<dyn Store> = match self.settings.store.kind {
                    StoreKind::Embedded => Arc::new(SqliteStore::open(&self.data_dir()?.join("kamshub.sqlite3"))?),
                    StoreKind::Mongodb => {
                        let uri = self.settings.store.uri.as_ref().expect("validated: mongodb has a uri");
                        Arc::new(MongoStore::connect(uri.expose_secret(), &self.settings.store.database).await?)
                    }
                };
                Ok(Arc::new(MeteredStore::new(store)) as Arc<dyn Store>)
            })
            .await
            .cloned()
    }

    /// The queues, opened on first use (`{data_dir}/queues.sqlite3` when embedded), measured
    /// ([`MeteredQueue`]).
    pub async fn queue(&self) -> Result<Arc<dyn Queue>, AppError> {
        self.queue
            .get_or_try_init(|| async {
                let s = &self.settings.queue;
                let limits = self.settings.receive_limits();
                let queue: Arc<dyn Queue> = match s.kind {
                    crate::config::QueueKind::Embedded => Arc::new(
                        SqliteQueue::open(
                            &self.data_dir()?.join("queues.sqlite3"),
                            s.max_receive_count,
                            std::time::Duration::from_secs(s.visibility_timeout_secs.into()),
                        )?
                        .with_limits(limits),
                    ),
                    crate::config::QueueKind::Sqs => Arc::new(SqsQueue::connect(s).await?.with_limits(limits)),
                };
                Ok(Arc::new(MeteredQueue::new(queue)) as Arc<dyn Queue>)
            })
            .await
            .cloned()
    }

    /// The identity provider, set up on first use.
    pub async fn identity(&self) -> Result<Arc<dyn Identity>, AppError> {
        self.identity
            .get_or_try_init(|| async {
                let identity: Arc<dyn Identity> = match self.settings.identity.kind {
                    IdentityKind::Local => self.local_identity().await?.expect("local identity is configured"),
                    IdentityKind::Cognito => Arc::new(CognitoIdentity::new(&self.settings.identity).await?),
                };
                Ok(identity)
            })
            .await
            .cloned()
    }

    /// The local identity, when it is the configured one (its JWKS is served over HTTP).
    pub async fn local_identity(&self) -> Result<Option<Arc<LocalIdentity>>, AppError> {
        if self.settings.identity.kind != IdentityKind::Local {
            return Ok(None);
        }
        let local = self
            .local_identity
            .get_or_try_init(|| async { Ok::<_, AppError>(Arc::new(LocalIdentity::open(&self.data_dir()?)?)) })
            .await?;
        Ok(Some(Arc::clone(local)))
    }

    /// The key that seals channel credentials: `KAMSHUB_MASTER_KEY`, else the data dir's key file
    /// (created on first use, 0600).
    pub fn master_key(&self) -> Result<Arc<MasterKey>, AppError> {
        if let Some(key) = self.master_key.get() {
            return Ok(Arc::clone(key));
        }
        let key = match &self.settings.master_key {
            Some(text) => MasterKey::from_base64(text.expose_secret()).map_err(AppError::Local)?,
            None => {
                let path = self.data_dir()?.join("master.key");
                let text = read_or_create_private_file(&path, MasterKey::generate_base64)
                    .map_err(|e| AppError::Local(format!("master key file {}: {e}", path.display())))?;
                MasterKey::from_base64(&text)
                    .map_err(|why| AppError::Local(format!("master key file {} {why}", path.display())))?
            }
        };
        Ok(Arc::clone(self.master_key.get_or_init(|| Arc::new(key))))
    }

    /// The client that delivers webhooks and checks endpoint URLs, under `[webhooks]`.
    pub fn webhook_client(&self) -> Result<Arc<WebhookClient>, AppError> {
        if let Some(client) = self.webhook_client.get() {
            return Ok(Arc::clone(client));
        }
        let hooks = &self.settings.webhooks;
        let timeout = std::time::Duration::from_secs(u64::from(hooks.timeout_secs));
        let client = WebhookClient::new(hooks.address_policy(), timeout, self.master_key()?);
        Ok(Arc::clone(self.webhook_client.get_or_init(|| Arc::new(client))))
    }

    /// The providers (one per channel kind), for the pipelines.
    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    /// Telegram Bot API client.
    pub fn telegram(&self) -> &TelegramClient {
        self.providers.telegram()
    }

    /// Meta Graph API client.
    pub fn messenger(&self) -> &MessengerClient {
        self.providers.messenger()
    }

    /// The data dir, created (0700) if missing.
    pub fn data_dir(&self) -> Result<std::path::PathBuf, AppError> {
        let dir = &self.settings.data_dir;
        if !dir.is_dir() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder
                .create(dir)
                .map_err(|e| AppError::Local(format!("cannot create data dir {}: {e}", dir.display())))?;
        }
        Ok(dir.clone())
    }
}

/// Writes `contents` to a new file readable by its owner only, synced; `AlreadyExists` if `path`
/// exists. The file appears whole: it is written under a temporary name and hard-linked into
/// place (which, unlike a rename, never replaces a file), so a reader never sees it empty or
/// half-written.
fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temp).and_then(|mut file| {
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        std::fs::hard_link(&temp, path)
    });
    let _ = std::fs::remove_file(&temp);
    written?;
    // The new name is durable once its directory is synced.
    std::fs::File::open(dir)?.sync_all()
}

/// Reads a secret file, or creates it with `generate()` if it does not exist. Safe against
/// processes creating it at once (the losers read the winner's file) and reading it while it is
/// created (it appears whole: [`write_private_file`]).
pub(crate) fn read_or_create_private_file(path: &Path, generate: impl Fn() -> String) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match write_private_file(path, &generate()) {
            Ok(()) => std::fs::read_to_string(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read_to_string(path),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::read_or_create_private_file;

    /// Processes starting on one data dir at once (the daemon, the CLI) all get the same key, and
    /// none reads the file before it is whole.
    #[test]
    fn concurrent_creators_and_readers_all_see_one_whole_file() {
        for round in 0..50 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("master.key");
            let seen: Vec<String> = std::thread::scope(|scope| {
                let tasks: Vec<_> = (0..8)
                    .map(|n| {
                        let path = &path;
                        scope.spawn(move || {
                            read_or_create_private_file(path, || format!("key-{round}-{n}-{}", "x".repeat(4000)))
                                .unwrap()
                        })
                    })
                    .collect();
                tasks.into_iter().map(|t| t.join().unwrap()).collect()
            });
            assert!(seen[0].starts_with(&format!("key-{round}-")) && seen[0].len() > 4000, "whole: {}", seen[0].len());
            assert!(seen.iter().all(|s| *s == seen[0]), "one winner");
            let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(left, [std::ffi::OsString::from("master.key")], "no temporary file left");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            }
        }
    }
}
