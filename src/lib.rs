//! kamshub: a multi-tenant unified inbox backend.
//!
//! Map of the crate (ports and adapters; the design is docs/architecture.md):
//! - [`config`]: layered settings (defaults → `kamshub.toml` → `KAMSHUB_*` env → flags).
//! - [`domain`]: ids, validated values and entities. No I/O.
//! - [`store`]: the `Store` port with its SQLite (embedded) and MongoDB adapters.
//! - [`identity`]: the `Identity` port with local and Cognito adapters, and the one JWT verifier.
//! - [`queue`]: the `Queue` port (SQS FIFO semantics) with its SQLite (embedded) and SQS adapters.
//! - [`sealing`]: AES-256-GCM sealing of channel credentials under a master key.
//! - [`providers`]: the `Provider` abstraction over Telegram and Messenger: clients, webhook
//!   parsing and normalisation, text limits, pacing keys.
//! - [`pipeline`]: intake (webhook → queue), processor (queue → store), relay (outbox → queue),
//!   sender (queue → providers and webhook endpoints), on one worker loop.
//! - [`delivery`]: the signed HTTP client for tenants' webhook endpoints, under the address rules.
//! - [`service`]: use cases shared by the CLI and the HTTP API.
//! - [`app`]: builds the chosen adapters from settings.
//! - [`http`] and [`daemon`]: the `kamshub serve` process (HTTP and the pipeline loops).
//! - [`metrics`]: the Prometheus metric names, the recorder `serve` installs, backend gauges.
//! - [`systemd`]: readiness, status, stopping and watchdog notifications to systemd.
//! - [`cli`]: the operator command line.

pub mod app;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod domain;
mod embedded;
pub mod http;
pub mod identity;
pub mod metrics;
pub mod pipeline;
pub mod providers;
pub mod queue;
pub mod sealing;
pub mod service;
pub mod store;
pub mod systemd;
