//! What each inbound event costs on the production backends: SQS requests per inbound message
//! and MongoDB round trips per inbound event, counted on the wire by two proxies the daemon talks
//! through (the harness's own reads go around them), at several webhook concurrencies (which
//! set intake's queue batch sizes).

use crate::harness::{Backend, Cluster, Report, Scale};
use crate::provider::{FakeTelegram, Faults};
use crate::replies;
use crate::webhooks::{Poster, await_stored, workload};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Requests per operation (SQS action, MongoDB command name).
pub type Counts = Arc<Mutex<BTreeMap<String, u64>>>;

fn count(counts: &Counts, name: &str) {
    *counts.lock().unwrap().entry(name.to_owned()).or_default() += 1;
}

/// An HTTP proxy in front of the SQS endpoint that counts requests by action
/// (`X-Amz-Target: AmazonSQS.<Action>`, or `Action=` of the query protocol).
pub async fn sqs_proxy(upstream: String) -> (String, Counts) {
    let counts: Counts = Arc::default();
    let state = (upstream, reqwest::Client::new(), Arc::clone(&counts));
    let router = axum::Router::new().fallback(forward_http).with_state(Arc::new(state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, counts)
}

async fn forward_http(
    State(state): State<Arc<(String, reqwest::Client, Counts)>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (upstream, http, counts) = &*state;
    let action = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .map(str::to_owned)
        .or_else(|| {
            std::str::from_utf8(&body)
                .ok()
                .and_then(|b| b.split('&').find_map(|kv| kv.strip_prefix("Action=")).map(str::to_owned))
        })
        .unwrap_or_else(|| "other".into());
    count(counts, &action);
    // Entries of a batch request: one `ReceiptHandle` or `MessageBody` each.
    let entries = |text: &[u8], key: &str| String::from_utf8_lossy(text).matches(key).count();
    match action.as_str() {
        "SendMessageBatch" => count(counts, &format!("fill {action} {:02}", entries(&body, "\"MessageBody\""))),
        "DeleteMessageBatch" => count(counts, &format!("fill {action} {:02}", entries(&body, "\"ReceiptHandle\""))),
        _ => {}
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut request = http.request(method, format!("{upstream}{path}")).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
            let mut out = HeaderMap::new();
            for (name, value) in answer.headers() {
                if name != "content-length" && name != "transfer-encoding" {
                    out.insert(name.clone(), value.clone());
                }
            }
            let bytes = answer.bytes().await.unwrap_or_default();
            if action == "ReceiveMessage" {
                count(counts, &format!("fill {action} {:02}", entries(&bytes, "\"ReceiptHandle\"")));
            }
            (status, out, bytes).into_response()
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

/// A TCP proxy in front of MongoDB that counts each request message (OP_MSG) by command name:
/// one round trip each.
pub async fn mongo_proxy(upstream_port: u16) -> (u16, Counts) {
    let counts: Counts = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let shared = Arc::clone(&counts);
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else { return };
            let counts = Arc::clone(&shared);
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream_port)).await else { return };
                // Each message is forwarded as soon as it is whole: with Nagle's algorithm a
                // small write waits for the peer's delayed acknowledgement (40 ms on Linux), which
                // the driver's own sockets never do, and every round trip would cost that.
                if client.set_nodelay(true).is_err() || server.set_nodelay(true).is_err() {
                    return;
                }
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let answers = tokio::spawn(async move { tokio::io::copy(&mut server_read, &mut client_write).await });
                // Client → server, one wire message at a time.
                loop {
                    let mut header = [0u8; 16];
                    if client_read.read_exact(&mut header).await.is_err() {
                        break;
                    }
                    let length = i32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
                    let op_code = i32::from_le_bytes(header[12..16].try_into().unwrap());
                    let mut message = vec![0u8; length.max(16)];
                    message[..16].copy_from_slice(&header);
                    if client_read.read_exact(&mut message[16..]).await.is_err() {
                        break;
                    }
                    count(&counts, &command_name(op_code, &message[16..]));
                    if server_write.write_all(&message).await.is_err() {
                        break;
                    }
                }
                answers.abort();
            });
        }
    });
    (port, counts)
}

/// The command an OP_MSG carries: the first key of its body section (kind 0).
fn command_name(op_code: i32, body: &[u8]) -> String {
    const OP_MSG: i32 = 2013;
    if op_code != OP_MSG || body.len() < 11 || body[4] != 0 {
        return format!("opcode {op_code}");
    }
    // flagBits (4), section kind (1), document length (4), element type (1), then the key.
    let element_type = body[9];
    let key = &body[10..];
    let end = key.iter().position(|&b| b == 0).unwrap_or(key.len());
    let command = String::from_utf8_lossy(&key[..end]).into_owned();
    // A string value (find, insert, update, …) names the collection: `int32 length, bytes, 0`.
    let value = &key[(end + 1).min(key.len())..];
    if element_type == 0x02 && value.len() >= 4 {
        let length = i32::from_le_bytes(value[0..4].try_into().unwrap()).max(1) as usize;
        if let Some(name) = value.get(4..4 + length - 1) {
            return format!("{command} {}", String::from_utf8_lossy(name));
        }
    }
    command
}

/// Commands of the driver's server monitoring, not of kamshub's work.
fn is_monitoring(command: &str) -> bool {
    let command = command.split(' ').next().unwrap_or_default();
    matches!(command, "hello" | "isMaster" | "ismaster" | "ping" | "buildInfo" | "endSessions")
}

/// A deployment on the stand-ins whose daemons talk through the counting proxies (the harness's
/// own reads and writes, through `cluster.app`, go around them).
struct Metered {
    cluster: Cluster,
    commands: Counts,
    actions: Counts,
}

impl Metered {
    async fn new(scale: &Scale, provider_base: &str) -> Option<Metered> {
        let mongo = crate::common::mongodb_uri()?;
        let aws = crate::common::aws_endpoint()?;
        // The proxy needs the stand-in's port; a URI it cannot read fails the test, never skips it.
        let upstream_port: u16 = mongo
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(['/', '?']).next()?.parse().ok())
            .unwrap_or_else(|| panic!("the cost proxy needs a mongodb://127.0.0.1:PORT URI, not {mongo}"));
        let (mongo_port, commands) = mongo_proxy(upstream_port).await;
        let (sqs, actions) = sqs_proxy(aws).await;
        let mut cluster = Cluster::new(Backend::MongoSqs, scale.tenants, provider_base, "").await?;
        let database_uri = format!("mongodb://127.0.0.1:{mongo_port}/?directConnection=true");
        cluster.daemon_env = vec![
            ("KAMSHUB_STORE__URI".into(), database_uri),
            ("KAMSHUB_QUEUE__ENDPOINT_URL".into(), sqs),
            // The default, as in production: the heartbeat extends held messages every third of it.
            ("KAMSHUB_QUEUE__VISIBILITY_TIMEOUT_SECS".into(), "30".into()),
        ];
        Some(Metered { cluster, commands, actions })
    }

    /// Counts from now on only.
    fn reset(&self) {
        self.commands.lock().unwrap().clear();
        self.actions.lock().unwrap().clear();
    }

    /// MongoDB commands and SQS actions (with the fill histograms) counted since the reset.
    fn counted(&self) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
        (self.commands.lock().unwrap().clone(), self.actions.lock().unwrap().clone())
    }
}

/// SQS requests among `actions` (the fill histograms left out).
fn sqs_requests(actions: &BTreeMap<String, u64>) -> u64 {
    actions.iter().filter(|(a, _)| !a.starts_with("fill ")).map(|(_, n)| n).sum()
}

/// MongoDB round trips among `commands` (the driver's monitoring left out).
fn round_trips(commands: &BTreeMap<String, u64>) -> u64 {
    commands.iter().filter(|(c, _)| !is_monitoring(c)).map(|(_, n)| n).sum()
}

/// Every count, by SQS action (`sqs:…`), fill (`fill:…`) and MongoDB command (`mongo:…`).
fn counts_into(report: &mut Report, commands: &BTreeMap<String, u64>, actions: &BTreeMap<String, u64>) {
    for (action, n) in actions {
        match action.strip_prefix("fill ") {
            Some(fill) => report.other.insert(format!("fill:{fill}"), *n),
            None => report.other.insert(format!("sqs:{action}"), *n),
        };
    }
    for (command, n) in commands {
        report.other.insert(format!("mongo:{command}"), *n);
    }
}

/// One measurement: `scale`'s workload posted once each by `concurrency` posters to a daemon
/// (all roles) talking through the proxies.
pub async fn measure(scale: Scale, concurrency: usize) -> Option<Report> {
    let started = Instant::now();
    let metered = Metered::new(&scale, "http://127.0.0.1:9").await?;
    let cluster = &metered.cluster;
    let mut report = Report::new(&format!("cost-concurrency-{concurrency}"), Backend::MongoSqs, &scale);
    let updates = Arc::new(workload(&scale));
    // The inbound path only: http and processor.
    let mut daemon = cluster.start("http,processor");
    cluster.wait_ready(&mut daemon).await;
    // Settled start: count only the load.
    tokio::time::sleep(Duration::from_millis(500)).await;
    metered.reset();
    let poster = Poster::new(cluster);
    poster.post_all(&updates, (0..updates.len()).map(|i| (i, 1)).collect(), concurrency).await;
    poster.retry_unacknowledged(&updates, concurrency).await;
    let acked = poster.acked.lock().unwrap().clone();
    let stored = await_stored(cluster, &acked, updates.len(), Duration::from_secs(60)).await;
    let (commands, actions) = metered.counted();
    daemon.kill9();

    let events = stored.copies.len() as u64;
    let (sqs_total, work) = (sqs_requests(&actions), round_trips(&commands));
    stored.count_into(&mut report, updates.len(), &poster, &acked);
    let per = |n: u64| (n as f64 * 1000.0 / events.max(1) as f64).round() as u64;
    report.other.insert("posters".into(), concurrency as u64);
    report.other.insert("sqsRequestsPerMessageX1000".into(), per(sqs_total));
    report.other.insert("mongoRoundTripsPerEventX1000".into(), per(work));
    let sends =
        actions.get("SendMessageBatch").copied().unwrap_or(0) + actions.get("SendMessage").copied().unwrap_or(0);
    let receives = actions.get("ReceiveMessage").copied().unwrap_or(0);
    report.other.insert("messagesPerSendX1000".into(), (events * 1000).checked_div(sends).unwrap_or(0));
    report.other.insert("messagesPerReceiveX1000".into(), (events * 1000).checked_div(receives).unwrap_or(0));
    let deletes = actions.get("DeleteMessageBatch").copied().unwrap_or(0);
    report.other.insert("messagesPerDeleteX1000".into(), (events * 1000).checked_div(deletes).unwrap_or(0));
    counts_into(&mut report, &commands, &actions);
    report.seconds = started.elapsed().as_secs_f64();
    report.publish();
    Some(report)
}

/// What a reply costs: `scale.replies` replies over the workload's conversations, created
/// through the library as `kamshub message send` creates them (that transaction goes around the
/// proxies), sent by a daemon with every role to a fake provider that answers every call. The
/// counts cover the daemon's work from the first reply until none is PENDING, ENQUEUED or
/// SENDING: the relay's publishing, the sender's receives, deletes and outbox writes.
pub async fn measure_replies(scale: Scale) -> Option<Report> {
    let started = Instant::now();
    let fake = FakeTelegram::start(Faults::default(), BTreeMap::new()).await;
    let metered = Metered::new(&scale, &fake.base).await?;
    let cluster = &metered.cluster;
    let mut report = Report::new("cost-replies", Backend::MongoSqs, &scale);
    let mut daemon = cluster.start("http,processor,relay,sender");
    cluster.wait_ready(&mut daemon).await;
    let conversations = replies::open_conversations(cluster, &scale).await;
    let store = cluster.app.store().await.unwrap();
    metered.reset();
    let created = replies::create_replies(cluster, &conversations, scale.replies).await;
    let deadline = Instant::now() + Duration::from_secs(if scale.full { 600 } else { 120 });
    while replies::open_replies(&store).await > 0 {
        assert!(Instant::now() < deadline, "replies still open at the deadline; log: {}", daemon.log_tail());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (commands, actions) = metered.counted();
    daemon.kill9();

    let record = fake.take_record();
    let mut delivered: BTreeMap<&str, u64> = BTreeMap::new();
    for d in &record.deliveries {
        *delivered.entry(d.text.as_str()).or_default() += 1;
    }
    report.attempted = created.len();
    report.acknowledged = created.len();
    report.requests = record.deliveries.len();
    report.stored = created.keys().filter(|text| delivered.contains_key(text.as_str())).count();
    report.lost = report.attempted - report.stored;
    report.double_sent = delivered.values().map(|n| n - 1).sum::<u64>() as usize;
    let replies = created.len().max(1) as f64;
    let per = |n: u64| (n as f64 * 1000.0 / replies).round() as u64;
    report.other.insert("sqsRequestsPerReplyX1000".into(), per(sqs_requests(&actions)));
    report.other.insert("mongoRoundTripsPerReplyX1000".into(), per(round_trips(&commands)));
    counts_into(&mut report, &commands, &actions);
    report.seconds = started.elapsed().as_secs_f64();
    report.publish();
    Some(report)
}
