//! Dead-letter queues for operators: `dlq list` (depth and age of every queue), `dlq peek`
//! (what is stuck, for which tenant, and why, without taking anything) and the dry run of
//! `dlq redrive` (counts per tenant and reason). The redrive itself is in [`super::redrive`].
//!
//! Why a message died is read from where the pipelines recorded it, joined to the message by its
//! body's key: an inbound event's FAILED record in the store (its last error and receive count),
//! an outbox item's `last_error` and attempts. A body that cannot be parsed is its own reason.

use super::{ServiceError, ServiceResult, rfc3339};
use crate::app::App;
use crate::domain::inbound::Envelope;
use crate::domain::{Actor, ChannelId, OutboxId, SendEnvelope, TenantId};
use crate::queue::{PeekedMessage, QueueName};
use crate::store::Store;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most DLQ messages one peek or dry run reads (SQS hands them out ten per call).
pub const MAX_PEEK: usize = 10_000;

/// One queue in `dlq list` (`-o json`: `[{queue, name, visible, inFlight, oldestAgeSecs}]`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueView {
    /// `incoming`, `incoming-dlq`, `send`, `send-dlq`, `deliveries` or `deliveries-dlq`.
    pub queue: String,
    /// Its full name (`{prefix}-incoming.fifo`).
    pub name: String,
    /// Messages waiting (approximate on SQS).
    pub visible: u64,
    /// Messages received and not yet deleted (approximate on SQS).
    pub in_flight: u64,
    /// Age of the oldest message in seconds; `null` on SQS, which tells it only through
    /// CloudWatch (`ApproximateAgeOfOldestMessage`).
    pub oldest_age_secs: Option<u64>,
}

/// One DLQ message in `dlq peek`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadMessageView {
    /// The queue's id for the message.
    pub message_id: String,
    /// Owner, from the body (`null` if the body cannot be read).
    pub tenant_id: Option<String>,
    /// Channel, from the body or the outbox item.
    pub channel_id: Option<String>,
    /// FIFO group (conversation).
    pub group: String,
    /// The body's key: the provider event id (incoming) or the sendId (send).
    pub key: Option<String>,
    /// Receives (incoming) or provider attempts (send) before it died, as recorded.
    pub receive_count: Option<u32>,
    /// The error of its last attempt, as the processor or sender recorded it.
    pub reason: String,
    /// Seconds since it was first enqueued.
    pub age_secs: u64,
    /// When it was first enqueued.
    pub sent_at: String,
}

/// A dry run's count of one tenant and reason.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DryRunGroup {
    /// Owner (`unknown` when the body cannot be read).
    pub tenant_id: String,
    /// The recorded reason.
    pub reason: String,
    /// Messages with this tenant and reason.
    pub count: u64,
}

/// What a message's body says about it.
#[derive(Debug, Clone)]
pub(crate) struct BodyKey {
    pub tenant: TenantId,
    pub channel: Option<ChannelId>,
    /// Provider event id or sendId.
    pub key: String,
    /// The outbox item a send message names.
    pub outbox: Option<OutboxId>,
}

/// Reads the key of a DLQ message of `source`'s DLQ; `Err` says why the body cannot be read.
pub(crate) fn body_key(source: QueueName, body: &str) -> Result<BodyKey, String> {
    match source {
        QueueName::Incoming => {
            let e: Envelope = serde_json::from_str(body).map_err(|e| format!("unparseable envelope: {e}"))?;
            Ok(BodyKey { tenant: e.tenant_id, channel: Some(e.channel_id), key: e.provider_event_id, outbox: None })
        }
        _ => {
            let e: SendEnvelope = serde_json::from_str(body).map_err(|e| format!("unparseable send message: {e}"))?;
            Ok(BodyKey { tenant: e.tenant_id, channel: None, key: e.send_id.to_string(), outbox: Some(e.outbox_id) })
        }
    }
}

/// The source queue named on the command line, refusing a DLQ.
pub fn source_queue(queue: QueueName) -> ServiceResult<QueueName> {
    match queue.dlq() {
        Some(_) => Ok(queue),
        None => Err(ServiceError::Invalid(format!(
            "{queue} is a DLQ; name its source queue (incoming, send or deliveries)"
        ))),
    }
}

/// Every queue with its depth and, where the backend tells, its oldest message's age.
pub async fn list(app: &App) -> ServiceResult<Vec<QueueView>> {
    let queue = app.queue().await?;
    let now_ms = crate::domain::inbound::to_ms(crate::domain::now());
    let mut views = Vec::new();
    for name in QueueName::ALL {
        let depth = queue.depth(name).await.map_err(queue_error)?;
        let oldest = queue.oldest_sent_at(name).await.map_err(queue_error)?;
        let empty = depth.visible + depth.in_flight == 0;
        views.push(QueueView {
            queue: name.to_string(),
            name: name.full_name(&app.settings.queue.prefix),
            visible: depth.visible,
            in_flight: depth.in_flight,
            oldest_age_secs: match oldest {
                Some(sent) => Some(secs_since(sent, now_ms)),
                None if empty => Some(0),
                None => None,
            },
        });
    }
    Ok(views)
}

/// What `dlq peek` saw.
#[derive(Debug)]
pub struct Peeked {
    /// The messages shown.
    pub messages: Vec<DeadMessageView>,
    /// Messages the DLQ holds (approximate on SQS).
    pub depth: u64,
    /// Messages the backend could not show: on SQS a conversation's later messages stay hidden
    /// while an earlier one is received, so a peek sees the first messages of each conversation.
    pub hidden: u64,
}

/// Up to `limit` messages of `source`'s DLQ (of one tenant, if given), in FIFO order, with the
/// reason each died; nothing is taken from the DLQ.
pub async fn peek(app: &App, source: QueueName, limit: usize, tenant: Option<&TenantId>) -> ServiceResult<Peeked> {
    let source = source_queue(source)?;
    let dlq = source.dlq().expect("a source queue has a DLQ");
    let queue = app.queue().await?;
    let store = app.store().await?;
    // With a tenant filter the first `limit` messages may be others': read as far as allowed.
    let read = if tenant.is_some() { MAX_PEEK } else { limit.min(MAX_PEEK) };
    let sqs = app.settings.queue.kind == crate::config::QueueKind::Sqs;
    let peeked = if sqs {
        // On SQS a peek receives (and so hides) messages for a moment: never during a redrive.
        let lease = super::redrive::DlqLease::take(Arc::clone(&store), dlq, "peek", &Actor::cli_operator()).await?;
        let peeked = queue.peek(dlq, read).await.map_err(queue_error);
        lease.release().await;
        peeked?
    } else {
        queue.peek(dlq, read).await.map_err(queue_error)?
    };
    let depth = queue.depth(dlq).await.map_err(queue_error)?;
    let depth = depth.visible + depth.in_flight;
    let seen = peeked.len() as u64;
    let hidden = if sqs && seen < read as u64 { depth.saturating_sub(seen) } else { 0 };
    let now_ms = crate::domain::inbound::to_ms(crate::domain::now());
    let mut messages = Vec::new();
    for message in peeked {
        let key = body_key(source, &message.body);
        if let Some(wanted) = tenant
            && key.as_ref().map_or(true, |k| &k.tenant != wanted)
        {
            continue;
        }
        messages.push(describe(store.as_ref(), &message, key, now_ms).await?);
        if messages.len() == limit {
            break;
        }
    }
    Ok(Peeked { messages, depth, hidden })
}

/// The reason a dry run gives messages SQS cannot show.
pub const HIDDEN_REASON: &str = "not visible yet (SQS shows a conversation's later messages once earlier ones leave)";

/// Counts `source`'s DLQ messages (of one tenant, if given; at most `max`) per tenant and reason,
/// taking nothing: what `dlq redrive --dry-run` prints. On SQS, messages a peek cannot see are
/// counted under tenant `unknown` and [`HIDDEN_REASON`].
pub async fn dry_run(
    app: &App,
    source: QueueName,
    tenant: Option<&TenantId>,
    max: Option<u64>,
) -> ServiceResult<Vec<DryRunGroup>> {
    let limit = max.map_or(MAX_PEEK, |m| usize::try_from(m).unwrap_or(MAX_PEEK).min(MAX_PEEK));
    let peeked = peek(app, source, limit, tenant).await?;
    let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
    for m in peeked.messages {
        let tenant = m.tenant_id.unwrap_or_else(|| "unknown".to_owned());
        *counts.entry((tenant, m.reason)).or_default() += 1;
    }
    let shown: u64 = counts.values().sum();
    let hidden = max.map_or(peeked.hidden, |m| peeked.hidden.min(m.saturating_sub(shown)));
    if hidden > 0 && tenant.is_none() {
        counts.insert(("unknown".to_owned(), HIDDEN_REASON.to_owned()), hidden);
    }
    Ok(counts.into_iter().map(|((tenant_id, reason), count)| DryRunGroup { tenant_id, reason, count }).collect())
}

/// A peeked message with the reason recorded for it.
async fn describe(
    store: &dyn Store,
    message: &PeekedMessage,
    key: Result<BodyKey, String>,
    now_ms: i64,
) -> ServiceResult<DeadMessageView> {
    let mut view = DeadMessageView {
        message_id: message.message_id.clone(),
        tenant_id: None,
        channel_id: None,
        group: message.group_id.clone(),
        key: None,
        receive_count: None,
        reason: String::new(),
        age_secs: secs_since(message.sent_at_ms, now_ms),
        sent_at: time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(message.sent_at_ms) * 1_000_000)
            .map_or_else(|_| String::new(), rfc3339),
    };
    let key = match key {
        Ok(key) => key,
        Err(why) => {
            view.reason = why;
            return Ok(view);
        }
    };
    view.tenant_id = Some(key.tenant.to_string());
    view.channel_id = key.channel.as_ref().map(ToString::to_string);
    view.key = Some(key.key.clone());
    match (&key.outbox, &key.channel) {
        (Some(outbox), _) => match store.get_outbox(&key.tenant, outbox).await? {
            Some(item) => {
                view.channel_id = item.reply().map(|reply| reply.channel_id.to_string());
                view.receive_count = Some(item.attempts);
                view.reason = match item.last_error {
                    Some(error) => format!("{}: {error}", item.status),
                    None => format!("{} (no error recorded)", item.status),
                };
            }
            None => view.reason = format!("outbox item `{outbox}` does not exist"),
        },
        (None, Some(channel)) => match store.inbound_failure(&key.tenant, channel, &key.key).await? {
            Some(failure) => {
                view.receive_count = Some(failure.receive_count);
                view.reason = failure.error;
            }
            None => view.reason = "no failure recorded".to_owned(),
        },
        (None, None) => view.reason = "no failure recorded".to_owned(),
    }
    Ok(view)
}

fn secs_since(sent_ms: i64, now_ms: i64) -> u64 {
    u64::try_from((now_ms - sent_ms).max(0) / 1000).unwrap_or(0)
}

/// A queue failure as a service error: an outage is retryable, a missing queue names the fix.
pub(crate) fn queue_error(e: crate::queue::QueueError) -> ServiceError {
    use crate::queue::QueueError;
    match e {
        QueueError::Unavailable(_) => ServiceError::Unavailable(e.to_string()),
        QueueError::Missing(_) => ServiceError::NotFound(e.to_string()),
        QueueError::Invalid(why) => ServiceError::Invalid(why),
        other => ServiceError::Internal(other.to_string()),
    }
}
