//! Poison among good traffic: one message in each of many conversations is refused by the
//! database (a rule that rejects its text: a SQLite trigger, a MongoDB collection validator, as
//! a DBA's rule would). The poison must reach the incoming DLQ after its receives, the rest of
//! each conversation must be applied meanwhile; once the rule is removed, `kamshub dlq redrive
//! incoming` (the real CLI) must bring every poison message in exactly once, in provider order.

use crate::harness::{Backend, Cluster, Report, Scale};
use crate::webhooks::{Poster, dlq_depth, read_store, workload_with};
use kamshub::queue::QueueName;
use rand::{Rng, SeedableRng};
use secrecy::ExposeSecret;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn run(backend: Backend, scale: Scale) -> Option<Report> {
    let started = Instant::now();
    // Half as many conversations, twice as long, each with one poison message: in the full
    // embedded run, 100 conversations of 101 messages (10,000 good ones and 100 poison).
    let scale = Scale {
        conversations_per_tenant: (scale.conversations_per_tenant / 2).max(1),
        messages_per_conversation: scale.messages_per_conversation * 2 + 1,
        ..scale
    };
    let cluster = Arc::new(Cluster::new(backend, scale.tenants, "http://127.0.0.1:9", "").await?);
    let mut report = Report::new("poison-dlq-redrive", backend, &scale);
    let seed = rand::random::<u64>();
    report.other.insert("seed".into(), seed);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // One poison message per conversation, at a random position (never the first: that one
    // creates the conversation).
    let conversations = scale.tenants * scale.conversations_per_tenant;
    let poison_round: Vec<usize> =
        (0..conversations).map(|_| rng.gen_range(1..scale.messages_per_conversation)).collect();
    let is_poison = |i: usize| poison_round[i % conversations] == i / conversations;
    let updates =
        Arc::new(workload_with(&scale, |i| if is_poison(i) { format!("w{i} poison") } else { format!("w{i}") }));
    let poison: BTreeSet<usize> = (0..updates.len()).filter(|&i| is_poison(i)).collect();

    // The store exists once the library opened it; the rule goes on before any message.
    cluster.app.store().await.unwrap();
    if backend == Backend::MongoSqs {
        // The collection must exist for collMod.
        let uri = cluster.app.settings.store.uri.as_ref().unwrap().expose_secret().to_owned();
        let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
        let _ = client.database(&cluster.app.settings.store.database).create_collection("messages").await;
    }
    crate::common::poison::rule(&cluster.app.settings, true).await;
    let mut daemon = cluster.start("http,processor,relay,sender");
    cluster.wait_ready(&mut daemon).await;
    let poster = Poster::new(&cluster);
    poster.post_all(&updates, (0..updates.len()).map(|i| (i, 1)).collect(), scale.posters).await;
    poster.retry_unacknowledged(&updates, scale.posters).await;

    // Every good message applied, every poison one in the DLQ.
    let deadline = Instant::now() + Duration::from_secs(if scale.full { 900 } else { 150 });
    loop {
        let stored = read_store(&cluster, updates.len()).await;
        let dead = dlq_depth(&cluster, QueueName::IncomingDlq).await;
        if stored.copies.len() + poison.len() >= updates.len() && dead >= poison.len() {
            report.other.insert("storedBeforeRedrive".into(), stored.copies.len() as u64);
            report.other.insert(
                "poisonStoredBeforeRedrive".into(),
                poison.iter().filter(|i| stored.copies.contains_key(i)).count() as u64,
            );
            report.other.insert("dlqBeforeRedrive".into(), dead as u64);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "good messages stored: {} of {}, DLQ {dead} of {}",
            stored.copies.len(),
            updates.len() - poison.len(),
            poison.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    report.other.insert("poisonInDlqAtMs".into(), started.elapsed().as_millis() as u64);

    // The fix, then the operator's redrive with the real CLI while the daemon runs.
    crate::common::poison::rule(&cluster.app.settings, false).await;
    let redrive = cluster.cli(&["-o", "json", "dlq", "redrive", "incoming", "--yes"]);
    report.other.insert("redriveMoved".into(), redrive["moved"].as_u64().unwrap_or_default());

    let acked = poster.acked.lock().unwrap().clone();
    let stored = crate::webhooks::await_stored(&cluster, &acked, updates.len(), Duration::from_secs(60)).await;
    stored.count_into(&mut report, updates.len(), &poster, &acked);
    report.dead_lettered = dlq_depth(&cluster, QueueName::IncomingDlq).await;
    report.other.insert("poison".into(), poison.len() as u64);
    daemon.kill9();
    report.seconds = started.elapsed().as_secs_f64();
    report.publish();
    Some(report)
}
