//! Proposing the recipients of 100,000 devices from a 1,000,000-household register: the
//! Ministry's decision split over the province's districts, `ProposeRecipients` called over
//! mutual TLS through the SDK (the hub reads every household state of the day, decides, orders
//! and stores the list), against the plain SQL scan of the same states run straight on the
//! database in the same run. The proposal is made twice; both lists must be byte-identical.
//!
//! `cargo bench -p telesub-tests --bench devices` (SQLite); with `TELESUB_TEST_POSTGRES_URL`
//! set, on PostgreSQL. `BENCH_HOUSEHOLDS` sets the register's size (default 1,000,000) and
//! `BENCH_DEVICES` the decision's devices (default 100,000).

use std::time::Instant;

use prost::Message;
use telesub_client::{Client, proto};
use telesub_server::domain::units::{UnitLevel, reference_units};
use telesub_tests::{TestApp, load_generated};
use time::macros::date;

/// The hub binary's allocator, so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: telesub_server::Allocator = telesub_server::Allocator;

const SEED: u64 = 2024;
const DECISION: &str = "BENCH/QĐ-BTTTT";

/// SHA-256 of every recipient of the list, encoded, in rank order.
async fn list_hash(client: &Client) -> (usize, String) {
    let all = client
        .all_allocation_recipients(proto::ListAllocationRecipientsRequest {
            decision_number: DECISION.into(),
            page_size: 1_000,
            ..Default::default()
        })
        .await
        .expect("the list");
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for r in &all {
        ctx.update(&r.encode_to_vec());
    }
    let hex: String = ctx.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
    (all.len(), hex)
}

fn main() {
    let n: usize = std::env::var("BENCH_HOUSEHOLDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let devices: i64 = std::env::var("BENCH_DEVICES").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let app = TestApp::spawn().await;
        let backend = app.store.backend();
        println!("device allocation benchmark: {n} households, {devices} devices, {backend} store");
        let started = Instant::now();
        load_generated(app.store.as_ref(), SEED, n, date!(2025 - 01 - 01)).await;
        eprintln!("  register loaded in {:.1} s", started.elapsed().as_secs_f64());
        let settle: &[&str] =
            if backend == "sqlite" { &["PRAGMA wal_checkpoint(TRUNCATE)"] } else { &["CHECKPOINT", "VACUUM ANALYZE"] };
        for statement in settle {
            app.db.execute(statement).await.expect("settle the loaded register");
        }
        // A serving SQLite hub holds the register in memory: let it finish reading the load.
        app.register.catch_up().await.expect("the register held in memory catches up");

        // 40 % tablets, 60 % smartphones, split evenly over the province's districts.
        let districts: Vec<String> = reference_units()
            .unwrap()
            .into_iter()
            .filter(|u| u.level == UnitLevel::District && u.parent.as_ref().is_some_and(|p| p.as_str() == "67"))
            .map(|u| u.code.to_string())
            .collect();
        let (tablets, smartphones) = (devices * 2 / 5, devices - devices * 2 / 5);
        let share = |total: i64, i: usize| {
            total / districts.len() as i64 + i64::from((i as i64) < total % districts.len() as i64)
        };
        let unit_quotas = districts
            .iter()
            .enumerate()
            .map(|(i, d)| proto::UnitQuota {
                unit_code: d.clone(),
                tablets: share(tablets, i),
                smartphones: share(smartphones, i),
                unit_name: String::new(),
            })
            .collect();
        let ict = app.client("DOICT").await;
        ict.record_allocation_decision(proto::RecordAllocationDecisionRequest {
            decision_number: DECISION.into(),
            decision_date: "2025-03-01".into(),
            tablets,
            smartphones,
            unit_quotas,
            cash_alternative_amount: 0,
            note: String::new(),
        })
        .await
        .expect("the decision");

        // The plain scan: the day's states of households that want a device.
        let scan = "SELECT COUNT(*) FROM household_versions WHERE valid_from <= '2025-03-01' \
             AND (valid_to IS NULL OR valid_to > '2025-03-01') AND removal_reason IS NULL \
             AND wants_device";
        let scanned = Instant::now();
        let wanting = app.db.count(scan).await.expect("the plain scan");
        let scan_s = scanned.elapsed().as_secs_f64();

        let mut runs = Vec::new();
        for _ in 0..2 {
            let proposed = Instant::now();
            let a = ict.propose_recipients(DECISION, "2025-03-01").await.expect("the proposal");
            let s = proposed.elapsed().as_secs_f64();
            let (len, hash) = list_hash(&ict).await;
            assert_eq!(len as i64, a.recipients);
            runs.push((s, a, hash));
        }
        let (first, second) = (&runs[0], &runs[1]);
        assert_eq!(first.1.proposal_digest, second.1.proposal_digest, "two proposals, two lists");
        assert_eq!(first.2, second.2, "two proposals, two lists");

        println!();
        println!("| measurement | seconds | plain scan ÷ this |");
        println!("|---|---:|---:|");
        println!("| plain SQL scan of the day's states that want a device ({wanting} rows) | {scan_s:.2} | 1.00 |");
        for (i, (s, a, _)) in runs.iter().enumerate() {
            println!(
                "| ProposeRecipients over mTLS, run {} ({} qualify, {} places) | {s:.2} | {:.2} |",
                i + 1,
                a.eligible_households,
                a.recipients,
                scan_s / s
            );
        }
        println!("both lists identical: digest {}, encoded list SHA-256 {}", first.1.proposal_digest, first.2);
    });
}
