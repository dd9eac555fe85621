//! Amazon SQS FIFO `Queue` adapter (aws-sdk-sqs), and `init`, which creates the six queues with
//! their redrive policies (`kamshub queues init`).

use super::{
    Depth, MAX_BODY_BYTES, MAX_RECEIVE_BATCH, OutgoingMessage, PeekedMessage, Queue, QueueError, QueueName,
    QueueResult, Receipt, ReceiveLimits, ReceivedMessage, SendBatching, check_outgoing, check_peek, check_receive,
    check_visibility,
};
use crate::config::QueueSettings;
use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
    MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::OnceCell;

/// DLQs keep messages for SQS's maximum, 14 days, so an outage's failures wait for a redrive.
const DLQ_RETENTION_SECS: &str = "1209600";
/// How long a peek hides the messages it looks at; they are released as soon as it has them, so
/// this only matters if the peeking process dies (they come back by themselves after it).
pub const PEEK_HOLD_SECS: i32 = 60;
/// The most a partial `SendMessageBatch` waits for earlier sends to answer (about one SQS round
/// trip under load): the bound on what batching adds to a webhook's acknowledgement.
const SQS_MAX_LINGER: Duration = Duration::from_millis(20);

/// The SQS FIFO queues of one environment (`{prefix}-incoming.fifo`, ...).
pub struct SqsQueue {
    client: Client,
    prefix: String,
    limits: ReceiveLimits,
    visibility_timeout_secs: u32,
    /// Queue URLs, looked up on first use (indexed like [`QueueName::ALL`]).
    urls: [OnceCell<String>; 6],
    /// API calls made, so benchmarks can tell requests per message.
    requests: AtomicU64,
}

/// What `init` did to one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitStatus {
    /// The queue did not exist and was created.
    Created,
    /// The queue existed with the wanted settings.
    Exists,
    /// The queue existed and its settings were brought in line with the configuration.
    Updated,
}

impl InitStatus {
    /// `created`, `exists`, `updated`.
    pub fn as_str(self) -> &'static str {
        match self {
            InitStatus::Created => "created",
            InitStatus::Exists => "exists",
            InitStatus::Updated => "updated",
        }
    }
}

/// One queue's settings as SQS reports them, for `kamshub doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSetup {
    /// Which queue.
    pub queue: QueueName,
    /// Its full SQS name.
    pub name: String,
    /// Whether it exists.
    pub exists: bool,
    /// `FifoQueue`.
    pub fifo: bool,
    /// `ContentBasedDeduplication` (kamshub always sets its own ids).
    pub content_based_dedupe: bool,
    /// `VisibilityTimeout`, seconds.
    pub visibility_secs: Option<u32>,
    /// `MessageRetentionPeriod`, seconds.
    pub retention_secs: Option<u32>,
    /// The redrive policy's DLQ (its queue name, from the ARN) and `maxReceiveCount`.
    pub redrive: Option<(String, u32)>,
}

/// One queue's line in the `init` report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInit {
    /// Which queue.
    pub queue: QueueName,
    /// Its full SQS name.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// What was done.
    pub status: InitStatus,
}

impl SqsQueue {
    /// A client for the queues `settings` name. No call is made: URLs are looked up on first use
    /// (a missing queue is then [`QueueError::Missing`]).
    pub async fn connect(settings: &QueueSettings) -> QueueResult<Self> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(Region::new(settings.region.clone()));
        if let Some(endpoint) = &settings.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        Ok(Self {
            client: Client::new(&loader.load().await),
            prefix: settings.prefix.clone(),
            limits: ReceiveLimits::uniform(settings.max_receive_count),
            visibility_timeout_secs: settings.visibility_timeout_secs,
            urls: Default::default(),
            requests: AtomicU64::new(0),
        })
    }

    /// The queues with per-queue receive limits (the deliveries queue allows more), which `init`
    /// writes into their redrive policies.
    pub fn with_limits(mut self, limits: ReceiveLimits) -> Self {
        self.limits = limits;
        self
    }

    /// How many SQS API calls this client has made.
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Creates the six FIFO queues, each DLQ before its source (which points at it), or brings
    /// existing ones in line with the settings (redrive policy, visibility timeout, also on the
    /// DLQs for `dlq redrive`). Safe to run again: a second run reports every queue as `Exists`.
    pub async fn init(&self) -> QueueResult<Vec<QueueInit>> {
        let mut report = Vec::new();
        for source in QueueName::SOURCES {
            let max_receive_count = self.limits.of(source).expect("a source queue has a receive limit");
            let dlq = source.dlq().expect("a source queue has a DLQ");
            let dlq_init = self
                .ensure(
                    dlq,
                    &[
                        (QueueAttributeName::ContentBasedDeduplication, "false".to_owned()),
                        (QueueAttributeName::MessageRetentionPeriod, DLQ_RETENTION_SECS.to_owned()),
                        // What `dlq redrive` holds a batch for; a killed redrive's batch comes back after it.
                        (QueueAttributeName::VisibilityTimeout, self.visibility_timeout_secs.to_string()),
                    ],
                )
                .await?;
            let dlq_arn = self.queue_arn(dlq, &dlq_init.url).await?;
            let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count});
            let source_init = self
                .ensure(
                    source,
                    &[
                        (QueueAttributeName::ContentBasedDeduplication, "false".to_owned()),
                        (QueueAttributeName::VisibilityTimeout, self.visibility_timeout_secs.to_string()),
                        (QueueAttributeName::RedrivePolicy, redrive.to_string()),
                    ],
                )
                .await?;
            report.push(dlq_init);
            report.push(source_init);
        }
        Ok(report)
    }

    /// The six queues' settings as SQS reports them (`exists: false` for a missing one).
    pub async fn describe(&self) -> QueueResult<Vec<QueueSetup>> {
        let mut report = Vec::new();
        for queue in QueueName::ALL {
            let name = queue.full_name(&self.prefix);
            let mut setup = QueueSetup {
                queue,
                name: name.clone(),
                exists: false,
                fifo: false,
                content_based_dedupe: false,
                visibility_secs: None,
                retention_secs: None,
                redrive: None,
            };
            let url = match self.lookup_url(queue).await {
                Ok(url) => url,
                Err(QueueError::Missing(_)) => {
                    report.push(setup);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let out = self
                .call()
                .get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::All)
                .send()
                .await
                .map_err(|e| sdk_error(e, &name))?;
            let attributes = out.attributes().cloned().unwrap_or_default();
            let get = |a: QueueAttributeName| attributes.get(&a).cloned();
            setup.exists = true;
            setup.fifo = get(QueueAttributeName::FifoQueue).as_deref() == Some("true");
            setup.content_based_dedupe = get(QueueAttributeName::ContentBasedDeduplication).as_deref() == Some("true");
            setup.visibility_secs = get(QueueAttributeName::VisibilityTimeout).and_then(|v| v.parse().ok());
            setup.retention_secs = get(QueueAttributeName::MessageRetentionPeriod).and_then(|v| v.parse().ok());
            setup.redrive = get(QueueAttributeName::RedrivePolicy).as_deref().and_then(parse_redrive_policy);
            report.push(setup);
        }
        Ok(report)
    }

    /// Creates `queue` with `wanted` attributes, or updates those of an existing one that differ.
    async fn ensure(&self, queue: QueueName, wanted: &[(QueueAttributeName, String)]) -> QueueResult<QueueInit> {
        let name = queue.full_name(&self.prefix);
        let (url, status) = match self.lookup_url(queue).await {
            Ok(url) => (url.clone(), self.update_attributes(queue, &url, wanted).await?),
            Err(QueueError::Missing(_)) => {
                let mut create =
                    self.call().create_queue().queue_name(&name).attributes(QueueAttributeName::FifoQueue, "true");
                for (attribute, value) in wanted {
                    create = create.attributes(attribute.clone(), value);
                }
                match create.send().await {
                    Ok(out) => (out.queue_url().unwrap_or_default().to_owned(), InitStatus::Created),
                    // Created by someone else meanwhile, with other attributes: update them.
                    Err(e) if e.code() == Some("QueueAlreadyExists") || e.code() == Some("QueueNameExists") => {
                        let url = self.lookup_url(queue).await?;
                        (url.clone(), self.update_attributes(queue, &url, wanted).await?)
                    }
                    Err(e) => return Err(sdk_error(e, &name)),
                }
            }
            Err(e) => return Err(e),
        };
        let _ = self.urls[slot(queue)].set(url.clone());
        Ok(QueueInit { queue, name, url, status })
    }

    async fn update_attributes(
        &self,
        queue: QueueName,
        url: &str,
        wanted: &[(QueueAttributeName, String)],
    ) -> QueueResult<InitStatus> {
        let name = queue.full_name(&self.prefix);
        let mut get = self.call().get_queue_attributes().queue_url(url);
        for (attribute, _) in wanted {
            get = get.attribute_names(attribute.clone());
        }
        let current = get.send().await.map_err(|e| sdk_error(e, &name))?;
        let current = current.attributes().cloned().unwrap_or_default();
        let changes: HashMap<QueueAttributeName, String> = wanted
            .iter()
            .filter(|(attribute, value)| !same_attribute(attribute, current.get(attribute).map(String::as_str), value))
            .cloned()
            .collect();
        if changes.is_empty() {
            return Ok(InitStatus::Exists);
        }
        tracing::info!(queue = %name, changed = ?changes.keys().collect::<Vec<_>>(), "updating queue attributes");
        self.call()
            .set_queue_attributes()
            .queue_url(url)
            .set_attributes(Some(changes))
            .send()
            .await
            .map_err(|e| sdk_error(e, &name))?;
        Ok(InitStatus::Updated)
    }

    async fn queue_arn(&self, queue: QueueName, url: &str) -> QueueResult<String> {
        let name = queue.full_name(&self.prefix);
        let out = self
            .call()
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| sdk_error(e, &name))?;
        out.attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .ok_or_else(|| QueueError::Other(format!("SQS returned no QueueArn for {name}")))
    }

    /// The queue's URL, looked up once.
    async fn url(&self, queue: QueueName) -> QueueResult<String> {
        self.urls[slot(queue)].get_or_try_init(|| self.lookup_url(queue)).await.cloned()
    }

    async fn lookup_url(&self, queue: QueueName) -> QueueResult<String> {
        let name = queue.full_name(&self.prefix);
        let out = self.call().get_queue_url().queue_name(&name).send().await.map_err(|e| sdk_error(e, &name))?;
        out.queue_url().map(str::to_owned).ok_or_else(|| QueueError::Other(format!("SQS returned no URL for {name}")))
    }

    /// The client, counting one API call.
    fn call(&self) -> &Client {
        self.requests.fetch_add(1, Ordering::Relaxed);
        &self.client
    }

    async fn send_batch(&self, queue: QueueName, url: &str, batch: &[OutgoingMessage]) -> QueueResult<()> {
        let name = queue.full_name(&self.prefix);
        let entries = batch
            .iter()
            .enumerate()
            .map(|(i, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&m.body)
                    .message_group_id(&m.group_id)
                    .message_deduplication_id(&m.dedupe_id)
                    .build()
                    .expect("id and body are set")
            })
            .collect();
        let out = self
            .call()
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| sdk_error(e, &name))?;
        // A 200 can still refuse some entries.
        if out.failed().is_empty() {
            return Ok(());
        }
        let described: Vec<String> = out
            .failed()
            .iter()
            .map(|f| {
                let dedupe = f.id().parse::<usize>().ok().and_then(|i| batch.get(i)).map(|m| m.dedupe_id.as_str());
                format!("dedupe id {} ({})", dedupe.unwrap_or(f.id()), describe_entry(f))
            })
            .collect();
        let why = format!(
            "SQS refused {} of {} messages sent to {name}: {}",
            described.len(),
            batch.len(),
            described.join("; ")
        );
        Err(if out.failed().iter().all(BatchResultErrorEntry::sender_fault) {
            QueueError::Invalid(why)
        } else {
            QueueError::Unavailable(why)
        })
    }

    /// Makes delivered messages visible again at once, ten per call; stale receipts are skipped.
    async fn release_batch(&self, queue: QueueName, url: &str, receipts: &[Receipt]) -> QueueResult<()> {
        let name = queue.full_name(&self.prefix);
        for chunk in receipts.chunks(MAX_RECEIVE_BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(&r.0)
                        .visibility_timeout(0)
                        .build()
                        .expect("id and receipt are set")
                })
                .collect();
            let out = self
                .call()
                .change_message_visibility_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| sdk_error(e, &name))?;
            let failed: Vec<String> =
                out.failed().iter().filter(|f| !stale_code(f.code())).map(describe_entry).collect();
            if !failed.is_empty() {
                return Err(QueueError::Unavailable(format!(
                    "SQS could not release {} messages of {name}: {}",
                    failed.len(),
                    failed.join("; ")
                )));
            }
        }
        Ok(())
    }

    /// One `ChangeMessageVisibilityBatch` of at most 10 receipts, answering for each: entry ids
    /// are the receipt's index in `receipts` (SQS allows only short alphanumeric ids). A call that
    /// fails as a whole fails every receipt of it.
    async fn visibility_batch(
        &self,
        queue: QueueName,
        url: &str,
        receipts: &[Receipt],
        secs: i32,
    ) -> Vec<QueueResult<()>> {
        let name = queue.full_name(&self.prefix);
        let entries = receipts
            .iter()
            .enumerate()
            .map(|(i, r)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&r.0)
                    .visibility_timeout(secs)
                    .build()
                    .expect("id and receipt are set")
            })
            .collect();
        let out = match self
            .call()
            .change_message_visibility_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let e = sdk_error(e, &name);
                return receipts.iter().map(|_| Err(e.clone())).collect();
            }
        };
        let mut answers: Vec<QueueResult<()>> = receipts
            .iter()
            .map(|_| Err(QueueError::Other(format!("SQS left an entry of a visibility change on {name} unanswered"))))
            .collect();
        let mut answer = |id: &str, result: QueueResult<()>| {
            if let Some(slot) = id.parse::<usize>().ok().and_then(|i| answers.get_mut(i)) {
                *slot = result;
            }
        };
        for entry in out.successful() {
            answer(entry.id(), Ok(()));
        }
        for entry in out.failed() {
            answer(entry.id(), Err(entry_error(entry, &name)));
        }
        answers
    }

    async fn delete_batch(&self, queue: QueueName, url: &str, receipts: &[Receipt]) -> QueueResult<()> {
        let name = queue.full_name(&self.prefix);
        let entries = receipts
            .iter()
            .enumerate()
            .map(|(i, r)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&r.0)
                    .build()
                    .expect("id and receipt are set")
            })
            .collect();
        let out = self
            .call()
            .delete_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| sdk_error(e, &name))?;
        let (stale, failed): (Vec<_>, Vec<_>) = out.failed().iter().partition(|f| stale_code(f.code()));
        if !stale.is_empty() {
            tracing::debug!(queue = %name, stale = stale.len(), "stale receipts skipped on delete");
        }
        if failed.is_empty() {
            return Ok(());
        }
        let described: Vec<String> = failed.iter().map(|f| describe_entry(f)).collect();
        Err(QueueError::Unavailable(format!(
            "SQS could not delete {} messages from {name}: {}",
            failed.len(),
            described.join("; ")
        )))
    }
}

fn slot(queue: QueueName) -> usize {
    queue.slot()
}

/// Whether an existing attribute already has the wanted value. A redrive policy is JSON whose
/// `maxReceiveCount` may come back as a number or a string.
fn same_attribute(attribute: &QueueAttributeName, current: Option<&str>, wanted: &str) -> bool {
    let Some(current) = current else { return false };
    if *attribute != QueueAttributeName::RedrivePolicy {
        return current == wanted;
    }
    let parse = |text: &str| -> Option<(String, String)> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let arn = v.get("deadLetterTargetArn")?.as_str()?.to_owned();
        let count = match v.get("maxReceiveCount")? {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Some((arn, count))
    };
    parse(current).is_some_and(|c| Some(c) == parse(wanted))
}

/// A redrive policy's DLQ name (the ARN's last part) and `maxReceiveCount` (number or string).
fn parse_redrive_policy(text: &str) -> Option<(String, u32)> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let arn = v.get("deadLetterTargetArn")?.as_str()?;
    let count = match v.get("maxReceiveCount")? {
        serde_json::Value::String(s) => s.parse().ok()?,
        other => u32::try_from(other.as_u64()?).ok()?,
    };
    Some((arn.rsplit(':').next()?.to_owned(), count))
}

/// Splits messages into SQS batches, in order: at most 10 entries and 1 MiB of bodies each.
fn batches(messages: &[OutgoingMessage]) -> Vec<&[OutgoingMessage]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, m) in messages.iter().enumerate() {
        if i > start && (i - start == MAX_RECEIVE_BATCH || bytes + m.body.len() > MAX_BODY_BYTES) {
            out.push(&messages[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += m.body.len();
    }
    if start < messages.len() {
        out.push(&messages[start..]);
    }
    out
}

fn describe_entry(f: &BatchResultErrorEntry) -> String {
    format!("{}: {}", f.code(), f.message().unwrap_or("no message"))
}

/// A failed entry of a batch on queue `name`, in the port's terms.
fn entry_error(f: &BatchResultErrorEntry, name: &str) -> QueueError {
    if stale_code(f.code()) {
        return QueueError::StaleReceipt;
    }
    let why = format!("SQS {} on {name}", describe_entry(f));
    if f.sender_fault() { QueueError::Other(why) } else { QueueError::Unavailable(why) }
}

/// Codes that mean the receipt no longer names an in-flight delivery.
fn stale_code(code: &str) -> bool {
    matches!(
        code,
        "ReceiptHandleIsInvalid"
            | "AWS.SimpleQueueService.MessageNotInflight"
            | "MessageNotInflight"
            | "InvalidReceiptHandle"
    )
}

/// Whole seconds for SQS, rounding a fraction up so a wait or timeout is never cut short.
fn ceil_secs(d: Duration) -> i32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(secs).unwrap_or(i32::MAX)
}

/// Translates an SDK error on queue `name` into the port's terms.
fn sdk_error<E>(e: SdkError<E, HttpResponse>, name: &str) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let server_fault = match &e {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            return QueueError::Unavailable(format!("cannot reach SQS for {name}: {}", error_chain(&e)));
        }
        SdkError::ServiceError(se) => se.raw().status().is_server_error(),
        _ => return QueueError::Other(format!("SQS call for {name} failed: {}", error_chain(&e))),
    };
    let code = e.code().unwrap_or("unknown error");
    let why = format!("SQS {code} on {name}: {}", e.message().unwrap_or("no message"));
    match code {
        "AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist" => QueueError::Missing(name.to_owned()),
        code if stale_code(code) => QueueError::StaleReceipt,
        "RequestThrottled"
        | "ThrottlingException"
        | "KMS.ThrottlingException"
        | "OverLimit"
        | "ServiceUnavailable"
        | "InternalFailure"
        | "InternalError"
        | "AWS.SimpleQueueService.PurgeQueueInProgress" => QueueError::Unavailable(why),
        "InvalidParameterValue"
        | "MissingParameter"
        | "InvalidMessageContents"
        | "InvalidAttributeName"
        | "InvalidAttributeValue"
        | "InvalidIdFormat"
        | "ValidationError"
        | "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"
        | "AWS.SimpleQueueService.BatchRequestTooLong"
        | "AWS.SimpleQueueService.EmptyBatchRequest"
        | "AWS.SimpleQueueService.InvalidBatchEntryId"
        | "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
        | "AWS.SimpleQueueService.UnsupportedOperation" => QueueError::Invalid(why),
        _ if server_fault => QueueError::Unavailable(why),
        _ => QueueError::Other(why),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[async_trait]
impl Queue for SqsQueue {
    fn kind(&self) -> &'static str {
        "sqs"
    }

    /// Ten messages fill a `SendMessageBatch`, and every call is billed alike: a partial batch
    /// waits, while earlier sends are in flight, for them to answer (up to 20 ms in all), so
    /// concurrent webhooks share calls (docs/reliability.md, "Cost").
    fn send_batching(&self) -> SendBatching {
        SendBatching { max_messages: MAX_RECEIVE_BATCH, linger: Duration::from_millis(2), max_linger: SQS_MAX_LINGER }
    }

    /// Batches go one after another, in order, so a group's order holds across batches.
    async fn send(&self, queue: QueueName, messages: &[OutgoingMessage]) -> QueueResult<()> {
        if messages.is_empty() {
            return Ok(());
        }
        messages.iter().try_for_each(check_outgoing)?;
        let url = self.url(queue).await?;
        for batch in batches(messages) {
            self.send_batch(queue, &url, batch).await?;
        }
        Ok(())
    }

    async fn receive(&self, queue: QueueName, max: usize, wait: Duration) -> QueueResult<Vec<ReceivedMessage>> {
        check_receive(max, MAX_RECEIVE_BATCH, wait)?;
        let url = self.url(queue).await?;
        let name = queue.full_name(&self.prefix);
        let out = self
            .call()
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(i32::try_from(max).expect("checked: at most 10"))
            .wait_time_seconds(ceil_secs(wait))
            // The timeout the consumers' heartbeat is paced by (a third of it), not whatever the
            // queue's attribute says: a queue created with another (an older `queues init`, a
            // hand-made queue) would let every batch held longer than that lapse.
            .visibility_timeout(i32::try_from(self.visibility_timeout_secs).unwrap_or(i32::MAX))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .send()
            .await
            .map_err(|e| sdk_error(e, &name))?;
        out.messages()
            .iter()
            .map(|m| {
                let attribute = |a: MessageSystemAttributeName| m.attributes().and_then(|all| all.get(&a)).cloned();
                let missing = |what: &str| QueueError::Other(format!("SQS message from {name} has no {what}"));
                Ok(ReceivedMessage {
                    message_id: m.message_id().ok_or_else(|| missing("MessageId"))?.to_owned(),
                    receipt: Receipt(m.receipt_handle().ok_or_else(|| missing("ReceiptHandle"))?.to_owned()),
                    group_id: attribute(MessageSystemAttributeName::MessageGroupId)
                        .ok_or_else(|| missing("MessageGroupId"))?,
                    body: m.body().unwrap_or_default().to_owned(),
                    receive_count: attribute(MessageSystemAttributeName::ApproximateReceiveCount)
                        .and_then(|c| c.parse().ok())
                        .ok_or_else(|| missing("ApproximateReceiveCount"))?,
                })
            })
            .collect()
    }

    /// Batches of 10 go concurrently (deletes have no order).
    async fn delete(&self, queue: QueueName, receipts: &[Receipt]) -> QueueResult<()> {
        if receipts.is_empty() {
            return Ok(());
        }
        let url = self.url(queue).await?;
        let batches = receipts.chunks(MAX_RECEIVE_BATCH).map(|batch| self.delete_batch(queue, &url, batch));
        futures::future::try_join_all(batches).await?;
        Ok(())
    }

    async fn set_visibility(&self, queue: QueueName, receipt: &Receipt, timeout: Duration) -> QueueResult<()> {
        check_visibility(timeout)?;
        let url = self.url(queue).await?;
        self.call()
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(&receipt.0)
            .visibility_timeout(ceil_secs(timeout))
            .send()
            .await
            .map_err(|e| sdk_error(e, &queue.full_name(&self.prefix)))?;
        Ok(())
    }

    /// Chunks of 10 go concurrently, one `ChangeMessageVisibilityBatch` each.
    async fn set_visibility_batch(
        &self,
        queue: QueueName,
        receipts: &[Receipt],
        timeout: Duration,
    ) -> QueueResult<Vec<QueueResult<()>>> {
        check_visibility(timeout)?;
        if receipts.is_empty() {
            return Ok(Vec::new());
        }
        let url = self.url(queue).await?;
        let secs = ceil_secs(timeout);
        let chunks = receipts.chunks(MAX_RECEIVE_BATCH).map(|chunk| self.visibility_batch(queue, &url, chunk, secs));
        Ok(futures::future::join_all(chunks).await.into_iter().flatten().collect())
    }

    /// A send to the DLQ (deduplicated by message id, so a retry does not copy it twice), then a
    /// delete from the source.
    async fn dead_letter(&self, queue: QueueName, message: &ReceivedMessage) -> QueueResult<()> {
        let dlq = queue.dlq().ok_or_else(|| QueueError::Invalid(format!("{queue} is a DLQ; it has no DLQ")))?;
        let (url, dlq_url) = (self.url(queue).await?, self.url(dlq).await?);
        self.call()
            .send_message()
            .queue_url(dlq_url)
            .message_body(&message.body)
            .message_group_id(&message.group_id)
            .message_deduplication_id(format!("dlq-{}", message.message_id))
            .send()
            .await
            .map_err(|e| sdk_error(e, &dlq.full_name(&self.prefix)))?;
        self.call()
            .delete_message()
            .queue_url(url)
            .receipt_handle(&message.receipt.0)
            .send()
            .await
            .map_err(|e| sdk_error(e, &queue.full_name(&self.prefix)))?;
        Ok(())
    }

    async fn depth(&self, queue: QueueName) -> QueueResult<Depth> {
        let url = self.url(queue).await?;
        let name = queue.full_name(&self.prefix);
        let out = self
            .call()
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| sdk_error(e, &name))?;
        let count = |a: QueueAttributeName| -> u64 {
            out.attributes().and_then(|all| all.get(&a)).and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        Ok(Depth {
            visible: count(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        })
    }

    /// Receives (hiding for [`PEEK_HOLD_SECS`]) until `max` messages or an empty answer, then
    /// releases everything it received. Holding the earlier messages is what lets a FIFO queue
    /// hand out the later messages of their groups.
    async fn peek(&self, queue: QueueName, max: usize) -> QueueResult<Vec<PeekedMessage>> {
        check_peek(queue, max)?;
        let url = self.url(queue).await?;
        let name = queue.full_name(&self.prefix);
        let mut seen: Vec<(PeekedMessage, Receipt)> = Vec::new();
        let outcome = async {
            while seen.len() < max {
                let want = (max - seen.len()).min(MAX_RECEIVE_BATCH);
                let out = self
                    .call()
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(i32::try_from(want).expect("at most 10"))
                    .visibility_timeout(PEEK_HOLD_SECS)
                    .wait_time_seconds(1)
                    .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
                    .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
                    .send()
                    .await
                    .map_err(|e| sdk_error(e, &name))?;
                let batch = peeked(&out);
                if batch.is_empty() {
                    break;
                }
                seen.extend(batch);
            }
            Ok::<_, QueueError>(())
        }
        .await;
        let receipts: Vec<Receipt> = seen.iter().map(|(_, r)| r.clone()).collect();
        let released = self.release_batch(queue, &url, &receipts).await;
        outcome?;
        released?;
        Ok(seen.into_iter().map(|(m, _)| m).collect())
    }

    async fn oldest_sent_at(&self, _queue: QueueName) -> QueueResult<Option<i64>> {
        Ok(None)
    }
}

/// Reads the messages of one receive as peeked messages, keeping their receipts to release them.
fn peeked(out: &aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput) -> Vec<(PeekedMessage, Receipt)> {
    out.messages()
        .iter()
        .filter_map(|m| {
            let attribute = |a: MessageSystemAttributeName| m.attributes().and_then(|all| all.get(&a)).cloned();
            let message = PeekedMessage {
                message_id: m.message_id()?.to_owned(),
                group_id: attribute(MessageSystemAttributeName::MessageGroupId)?,
                body: m.body().unwrap_or_default().to_owned(),
                sent_at_ms: attribute(MessageSystemAttributeName::SentTimestamp)
                    .and_then(|t| t.parse().ok())
                    .unwrap_or_default(),
            };
            Some((message, Receipt(m.receipt_handle()?.to_owned())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body_len: usize) -> OutgoingMessage {
        OutgoingMessage { group_id: "g".into(), dedupe_id: "d".into(), body: "x".repeat(body_len) }
    }

    #[test]
    fn batches_hold_at_most_ten_messages_and_one_mib_in_order() {
        let small: Vec<_> = (0..23).map(|_| message(10)).collect();
        let sizes: Vec<usize> = batches(&small).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![10, 10, 3]);
        let big: Vec<_> = (0..3).map(|_| message(MAX_BODY_BYTES / 2 + 1)).collect();
        let sizes: Vec<usize> = batches(&big).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![1, 1, 1]);
        assert!(batches(&[]).is_empty());
    }

    #[test]
    fn redrive_policies_compare_by_meaning() {
        let wanted = r#"{"deadLetterTargetArn":"arn:x","maxReceiveCount":5}"#;
        let a = QueueAttributeName::RedrivePolicy;
        assert!(same_attribute(&a, Some(r#"{"maxReceiveCount": "5", "deadLetterTargetArn": "arn:x"}"#), wanted));
        assert!(!same_attribute(&a, Some(r#"{"deadLetterTargetArn":"arn:x","maxReceiveCount":4}"#), wanted));
        assert!(!same_attribute(&a, None, wanted));
        assert!(same_attribute(&QueueAttributeName::VisibilityTimeout, Some("30"), "30"));
    }

    #[test]
    fn redrive_policies_name_their_dlq_and_count() {
        let policy =
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-2:123456789012:p-incoming-dlq.fifo","maxReceiveCount":"5"}"#;
        assert_eq!(parse_redrive_policy(policy), Some(("p-incoming-dlq.fifo".to_owned(), 5)));
        assert_eq!(
            parse_redrive_policy(r#"{"deadLetterTargetArn":"arn:x:q","maxReceiveCount":3}"#),
            Some(("q".into(), 3))
        );
        assert_eq!(parse_redrive_policy("{}"), None);
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(ceil_secs(Duration::ZERO), 0);
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(20)), 20);
    }
}
