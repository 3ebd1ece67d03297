//! Audit proofs on a long trail: `GetInclusionProof` for records anywhere in a trail of
//! `AUDIT_BENCH_RECORDS` records (10 million by default) and `GetConsistencyProof` from sizes
//! anywhere in it to the latest checkpoint, through the real hub (TLS, layer, audit record of
//! the proof call itself), each as a ratio to the bare tonic ceiling of the same run.
//!
//! The trail is written straight through the store's append (the path the hub's audit writer
//! takes, 10,000 records per transaction), with records shaped as the hub writes them.
//!
//! `cargo bench -p telesub-tests --bench audit`; `AUDIT_BENCH_RECORDS=1000000` for a
//! shorter trail; `TELESUB_TEST_POSTGRES_URL` for PostgreSQL; `BENCH_SECONDS` per measurement.

use std::time::Instant;

use telesub_client::audit::{Checkpoint, VerifierKey, leaf_hash, parse_hash, record_bytes, verify_inclusion};
use telesub_server::audit::AuditEntry;
use telesub_tests::{
    TestApp,
    bench::{self, clients},
};

#[global_allocator]
static ALLOCATOR: telesub_server::Allocator = telesub_server::Allocator;

const PER_TRANSACTION: usize = 10_000;

fn entry(n: u64) -> AuditEntry {
    let digest = |what: &str| {
        telesub_server::hex(ring::digest::digest(&ring::digest::SHA256, format!("{what}{n}").as_bytes()).as_ref())
    };
    let (org, method) = match n % 4 {
        0 => ("VNPT", "/telesub.v1.Eligibility/CheckEligibility"),
        1 => ("VIETTEL", "/telesub.v1.Enrollments/Enroll"),
        2 => ("DOLISA", "/telesub.v1.HouseholdRegistry/GetHousehold"),
        _ => ("DOICT", "/telesub.v1.Reconciliation/GetReconciliation"),
    };
    AuditEntry {
        at: time::OffsetDateTime::from_unix_timestamp(1_760_000_000 + (n / 100) as i64).unwrap(),
        request_id: format!("{n:032x}"),
        org_code: Some(org.to_owned()),
        person: None,
        cert_fingerprint: Some(digest("certificate")),
        method: method.to_owned(),
        outcome: "OK".to_owned(),
        detail: String::new(),
        request_digest: digest("request"),
        attached: Some(digest("attached")),
        decisions_call: None,
    }
}

/// A pseudo-random number in `1..=n` from a running number.
fn spread(i: u64, n: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29) % n + 1
}

fn main() {
    let records: u64 = std::env::var("AUDIT_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let seconds = bench::seconds();
        let app = TestApp::spawn_with(|s| s.audit.checkpoint_interval_ms = 500).await;
        let backend = app.store.backend();
        let started = Instant::now();
        let mut written = app.audit().await.len() as u64;
        let mut n = 0;
        while written < records {
            let batch: Vec<AuditEntry> = (0..PER_TRANSACTION as u64).map(|i| entry(n + i)).collect();
            n += PER_TRANSACTION as u64;
            app.store.append_audit(&batch, &[], &[]).await.expect("append");
            written += PER_TRANSACTION as u64;
            if written.is_multiple_of(1_000_000) {
                eprintln!("{written} records written in {:.0} s", started.elapsed().as_secs_f64());
            }
        }
        let fill = started.elapsed().as_secs_f64();
        let ict = app.client("DOICT").await;
        // The hub signs once it sees activity: the proof calls below are some.
        let checkpoint = loop {
            if let Ok(c) = ict.get_audit_checkpoint(0).await
                && c.tree_size as u64 >= records
            {
                break c;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        };
        let size = checkpoint.tree_size as u64;
        let key = VerifierKey::parse(&checkpoint.verifier_key).unwrap();
        let signed: Checkpoint = key.open(&checkpoint.note).unwrap();
        // The proofs are right, not just fast: a few checked in full.
        for i in 0..50 {
            let seq = spread(i, size);
            let proof = ict.get_inclusion_proof(seq as i64, size as i64).await.unwrap();
            let path: Vec<_> = proof.hashes.iter().map(|h| parse_hash(h).unwrap()).collect();
            let leaf = leaf_hash(&record_bytes(&proof.record.unwrap()));
            verify_inclusion(seq - 1, size, &leaf, &path, &signed.root).expect("a proof that checks");
        }

        let ceiling_endpoint = format!("https://localhost:{}", bench::bare_tonic(&app).await.port());
        println!(
            "telesub audit proof benchmark: {backend} store, a trail of {size} records (written in {fill:.0} s), {seconds} s per measurement"
        );
        println!();
        println!("| in flight | call | calls/s | ratio to ceiling | p50 ms | p99 ms |");
        println!("|---|---|---:|---:|---:|---:|");
        for (label, connections, in_flight) in [("1", 1, 1), ("16 over 2 connections", 2, 8)] {
            let ceiling_clients = clients(&app, &ceiling_endpoint, "DOICT", connections).await;
            let hub_clients = clients(&app, &app.endpoint(), "DOICT", connections).await;
            let ceiling = bench::measure(&ceiling_clients, in_flight, seconds, |client, _| async move {
                assert!(client.health().await.unwrap());
            })
            .await;
            let inclusion = bench::measure(&hub_clients, in_flight, seconds, move |client, i| async move {
                client.get_inclusion_proof(spread(i, size) as i64, size as i64).await.expect("inclusion proof");
            })
            .await;
            let consistency = bench::measure(&hub_clients, in_flight, seconds, move |client, i| async move {
                client.get_consistency_proof(spread(i, size) as i64, size as i64).await.expect("consistency proof");
            })
            .await;
            for (name, m) in [
                ("ceiling: bare tonic Health/Check", &ceiling),
                ("hub GetInclusionProof, any record", &inclusion),
                ("hub GetConsistencyProof, from any size", &consistency),
            ] {
                println!(
                    "| {label} | {name} | {:.0} | {:.2} | {:.2} | {:.2} |",
                    m.rate,
                    m.rate / ceiling.rate,
                    m.p50_ms,
                    m.p99_ms
                );
            }
        }
    });
}
