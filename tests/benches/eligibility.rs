//! Eligibility decisions on a register of 1,000,000 households: single checks over mutual TLS
//! against the hub's cheapest audited call, `Members/WhoAmI` (the member from the hub's cache,
//! the audit record), on the same connections, and a batch call of 1,000,000 questions.
//! (Until health checks left the audit trail, the ceiling was the audited `Health/Check`.)
//!
//! `cargo bench -p telesub-tests --bench eligibility` (SQLite); with
//! `TELESUB_TEST_POSTGRES_URL` set, on PostgreSQL. `BENCH_HOUSEHOLDS` sets the register's size
//! (default 1,000,000), `BENCH_SECONDS` each rate measurement's length (default 3),
//! `BENCH_PARTS` which parts run (any of `single,batch,feed`; default all).

use std::time::Instant;

use futures_util::StreamExt;
use telesub_client::proto;
use telesub_tests::{
    TestApp,
    bench::{self, clients},
    load_generated,
};
use time::macros::date;

/// The hub binary's allocator, so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: telesub_server::Allocator = telesub_server::Allocator;

const CONNECTIONS: usize = 4;
const IN_FLIGHT_PER_CONNECTION: usize = 16;
const SEED: u64 = 2024;

/// This process's resident heap and its peak so far (all resident memory), in MiB (Linux).
fn memory() -> Option<(f64, f64)> {
    bench::status_mib(["RssAnon", "VmHWM"]).map(|[heap, peak]| (heap, peak))
}

fn main() {
    let n: usize = std::env::var("BENCH_HOUSEHOLDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let seconds = bench::seconds();
        let parts = std::env::var("BENCH_PARTS").unwrap_or_else(|_| "single,batch,feed".into());
        let part = |name: &str| parts.split(',').any(|p| p.trim() == name);
        let app = TestApp::spawn().await;
        let backend = app.store.backend();
        println!("eligibility benchmark: {n} households, {backend} store, client and server in one process");
        let started = Instant::now();
        let heads = std::sync::Arc::new(load_generated(app.store.as_ref(), SEED, n, date!(2025 - 01 - 01)).await);
        eprintln!("  register loaded in {:.1} s", started.elapsed().as_secs_f64());
        // The questions come long after the register was loaded: let the database finish
        // writing the load back (SQLite copies its log into the file; PostgreSQL checkpoints
        // and vacuums) before measuring, rather than measuring the two together.
        let settled = Instant::now();
        let settle: &[&str] =
            if backend == "sqlite" { &["PRAGMA wal_checkpoint(TRUNCATE)"] } else { &["CHECKPOINT", "VACUUM ANALYZE"] };
        for statement in settle {
            app.db.execute(statement).await.expect("settle the loaded register");
        }
        eprintln!("  settled in {:.1} s", settled.elapsed().as_secs_f64());
        // A serving SQLite hub holds the register in memory: let it finish reading the load.
        let caught_up = Instant::now();
        let before = memory();
        app.register.catch_up().await.expect("the register held in memory catches up");
        let after = memory();
        eprintln!("  register held by the hub in {:.1} s", caught_up.elapsed().as_secs_f64());
        if let (Some(held), Some(before), Some(after)) = (app.register.held(), before, after) {
            println!(
                "register held in memory: {held} households; process heap {:.0} → {:.0} MiB (peak {:.0} MiB)",
                before.0, after.0, after.1
            );
        }

        if part("single") {
            println!();
            println!("| in flight | call | calls/s | ratio to hub WhoAmI | p50 ms | p99 ms |");
            println!("|---|---|---:|---:|---:|---:|");
            for (label, connections, in_flight) in
                [("1", 1, 1), ("64 over 4 connections", CONNECTIONS, IN_FLIGHT_PER_CONNECTION)]
            {
                let hub = clients(&app, &app.endpoint(), "VNPT", connections).await;
                let health = bench::measure(&hub, in_flight, seconds, |client, _| async move {
                    client.who_am_i().await.expect("who am i");
                })
                .await;
                let ids = heads.clone();
                let check = bench::measure(&hub, in_flight, seconds, move |client, i| {
                    // Spread over the register: a different household each time.
                    let id = ids[(i.wrapping_mul(2_654_435_761) % ids.len() as u64) as usize].clone();
                    async move {
                        let d = client.check_citizen(&id, "2025-06-01").await.expect("check");
                        assert!(!d.decision_id.is_empty());
                    }
                })
                .await;
                for (name, m) in [("hub Members/WhoAmI (audited)", &health), ("CheckEligibility by citizen ID", &check)]
                {
                    println!(
                        "| {label} | {name} | {:.0} | {:.2} | {:.2} | {:.2} |",
                        m.rate,
                        m.rate / health.rate,
                        m.p50_ms,
                        m.p99_ms
                    );
                }
            }
        }

        // Every head's ID, once, in one batch call.
        if part("batch") {
            let client = app.client("VNPT").await;
            let questions = heads.iter().map(|id| proto::CheckEligibilityRequest {
                key: Some(proto::check_eligibility_request::Key::CitizenId(id.clone())),
                as_of: "2025-06-01".into(),
            });
            let questions: Vec<_> = questions.collect();
            let started = Instant::now();
            let mut answers = client.check_eligibility_batch(futures_util::stream::iter(questions)).await.unwrap();
            let (mut count, mut eligible) = (0usize, 0usize);
            while let Some(answer) = answers.next().await {
                let answer = answer.expect("an answer");
                count += 1;
                eligible += usize::from(answer.eligible);
            }
            let batch_s = started.elapsed().as_secs_f64();
            assert_eq!(count, n);
            println!();
            println!(
                "CheckEligibilityBatch of {n} citizen IDs: {batch_s:.1} s ({:.0} decisions/s; {eligible} eligible)",
                n as f64 / batch_s
            );
        }

        // A feed of one event per household (as if every one had been removed), caught up
        // from the beginning. The events are written straight into the table.
        if part("feed") {
            let inserted = app
                .db
                .execute(
                    "INSERT INTO feed_events (operator, enrollment_id, household_code, kind, effective_date, \
                 removal_reason, batch_id, recorded_at) \
                 SELECT 'VNPT', id, household_code, 'REMOVED', valid_from, 'OUT_OF_POVERTY', 'bench', \
                 '2025-03-01T00:00:00Z' FROM household_versions",
                )
                .await
                .unwrap();
            let started = Instant::now();
            let client = app.client("VNPT").await;
            let mut feed = client.watch_changes("", 30).await.unwrap();
            let mut events = 0u64;
            let mut last = String::new();
            while let Some(message) = feed.next().await {
                let message = message.unwrap();
                if message.events.is_empty() {
                    break;
                }
                events += message.events.len() as u64;
                last = message.events.last().unwrap().cursor.clone();
            }
            let feed_s = started.elapsed().as_secs_f64();
            assert_eq!(events, inserted);
            println!(
                "WatchChanges catching up {events} events: {feed_s:.1} s ({:.0} events/s; last cursor {last})",
                events as f64 / feed_s
            );
        }
    });
}
