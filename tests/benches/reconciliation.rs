//! Reconciling a month: one operator's list of a line per household of a 1,000,000-household
//! register, generated with planted discrepancies, submitted over mutual TLS through the SDK,
//! reconciled, and its status read back — against the plain SQL join of the same lines with
//! the register and the enrolments, run straight on the database in the same run.
//!
//! `cargo bench -p telesub-tests --bench reconciliation` (SQLite); with
//! `TELESUB_TEST_POSTGRES_URL` set, on PostgreSQL. `BENCH_HOUSEHOLDS` sets the register's size
//! (default 1,000,000). The hub runs in the benchmark's process: the peak memory reported
//! (from the end of loading to the end of the measurement) includes the client generating and
//! sending the lines, so it is an upper bound for the hub's.

use std::time::Instant;

use telesub_client::proto;
use telesub_tests::{TestApp, load_enrollments, load_generated};
use telesub_tools::monthly_generator::{MonthGenerator, Shares};
use time::macros::date;

/// The hub binary's allocator, so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: telesub_server::Allocator = telesub_server::Allocator;

const SEED: u64 = 2024;
const PERIOD: &str = "2025-03";

/// Peak resident memory of this process since [`reset_peak`], in MiB (Linux).
fn peak_mib() -> Option<f64> {
    telesub_tests::bench::status_mib(["VmHWM"]).map(|[peak]| peak)
}

/// Resident memory now, in MiB: anonymous (the heap) and file-backed (mapped files).
fn resident_mib() -> Option<(f64, f64)> {
    telesub_tests::bench::status_mib(["RssAnon", "RssFile"]).map(|[heap, mapped]| (heap, mapped))
}

/// Starts the peak of [`peak_mib`] over from the current resident memory.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() {
    let n: usize = std::env::var("BENCH_HOUSEHOLDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let app = TestApp::spawn().await;
        let backend = app.store.backend();
        println!("reconciliation benchmark: {n} households, {backend} store, client and server in one process");
        let start = date!(2025 - 01 - 01);
        let started = Instant::now();
        load_generated(app.store.as_ref(), SEED, n, start).await;
        let shares = Shares { duplicate_across: 0, ..Shares::default() };
        let month = MonthGenerator::new(SEED, n, vec!["VNPT".into()], PERIOD, start, shares).unwrap();
        let enrolled = load_enrollments(&app.db, month.enrollments()).await.expect("load the enrolments");
        eprintln!("  register and {enrolled} enrolments loaded in {:.1} s", started.elapsed().as_secs_f64());
        let settle: &[&str] =
            if backend == "sqlite" { &["PRAGMA wal_checkpoint(TRUNCATE)"] } else { &["CHECKPOINT", "VACUUM ANALYZE"] };
        for statement in settle {
            app.db.execute(statement).await.expect("settle the loaded register");
        }
        // A serving SQLite hub holds the register in memory: let it finish reading the load.
        let caught_up = Instant::now();
        app.register.catch_up().await.expect("the register held in memory catches up");
        eprintln!("  register held by the hub in {:.1} s", caught_up.elapsed().as_secs_f64());
        let expected = month.expected("VNPT");

        reset_peak();
        let before = resident_mib();
        let client = app.client("VNPT").await;
        let header = proto::MonthlyUpdateHeader {
            period: PERIOD.into(),
            update_id: "bench".into(),
            replaces_earlier: false,
            note: String::new(),
        };
        // The operator's system produces its lines as it sends them (here, the generator on a
        // thread of its own).
        let (to_send, sending) = tokio::sync::mpsc::channel(4_096);
        let generator = month.clone();
        let submitted = Instant::now();
        std::thread::spawn(move || {
            for line in generator.lines("VNPT") {
                if to_send.blocking_send(line).is_err() {
                    break;
                }
            }
        });
        let lines = tokio_stream::wrappers::ReceiverStream::new(sending);
        let receipt = client.submit_monthly_update(header, lines).await.expect("the list is reconciled");
        let status = client.get_reconciliation("", "bench").await.unwrap();
        let end_to_end_s = submitted.elapsed().as_secs_f64();
        let peak = peak_mib();
        let resident = resident_mib();
        assert_eq!(receipt.status(), proto::ReconciliationStatus::Reconciled);
        assert_eq!(status.status(), proto::ReconciliationStatus::Reconciled);
        let f = status.figures.as_ref().unwrap();
        assert_eq!(
            (f.lines, f.lines_ok, f.amount_confirmable),
            (expected.lines, expected.lines_ok, expected.amount_confirmable)
        );
        assert_eq!(f.enrollments_not_reported, expected.enrollments_not_reported);

        // The plain join: each line with its household's state in the month and the operator's
        // enrolment of its number (`|| ''` keeps SQLite, which has no statistics here, from
        // reading the enrolments by operator).
        let join = "SELECT COUNT(*) FROM monthly_lines l \
             JOIN household_versions v ON v.household_code = l.household_code \
             AND v.valid_from <= '2025-03-31' AND (v.valid_to IS NULL OR v.valid_to > '2025-03-01') \
             LEFT JOIN enrollments e ON e.phone_number = l.phone_number AND e.operator || '' = 'VNPT' \
             WHERE l.update_ref = (SELECT id FROM monthly_updates WHERE operator = 'VNPT' AND update_id = 'bench')";
        let joined = Instant::now();
        let rows = app.db.count(join).await.expect("the plain join");
        let join_s = joined.elapsed().as_secs_f64();
        assert!(rows > 0);

        let lines = expected.lines as f64;
        println!();
        println!("| measurement | seconds | lines/s | plain join ÷ this |");
        println!("|---|---:|---:|---:|");
        println!(
            "| plain SQL join of the stored lines with the register and enrolments | {join_s:.1} | {:.0} | 1.00 |",
            lines / join_s
        );
        println!(
            "| submit over mTLS + reconcile + read status ({} lines) | {end_to_end_s:.1} | {:.0} | {:.2} |",
            expected.lines,
            lines / end_to_end_s,
            join_s / end_to_end_s
        );
        println!("discrepancies planted and found: {:?}", expected.by_code);
        match peak {
            Some(mib) => println!("peak resident memory during the call (hub and client): {mib:.0} MiB"),
            None => println!("peak resident memory: not available on this system"),
        }
        if let Some((anon, file)) = before {
            println!("resident before the call: {anon:.0} MiB heap, {file:.0} MiB mapped files");
        }
        if let Some((anon, file)) = resident {
            println!("resident right after the call: {anon:.0} MiB heap, {file:.0} MiB mapped files");
        }
    });
}
