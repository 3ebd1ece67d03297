//! A month's statistics over a 1,000,000-household register with a full month of reconciled
//! lines: `GetProgrammeStatistics` through the SDK over mutual TLS for the province, a
//! district and a commune, against plain SQL scans of the same tables run straight on the
//! database in the same run.
//!
//! `cargo bench -p telesub-tests --bench statistics` (SQLite); with
//! `TELESUB_TEST_POSTGRES_URL` set, on PostgreSQL. `BENCH_HOUSEHOLDS` sets the register's size
//! (default 1,000,000); `BENCH_SAVE_DB=PATH` keeps a copy of the loaded SQLite database there.

use std::time::Instant;

use telesub_client::proto;
use telesub_tests::TestApp;
use time::macros::date;

/// The hub binary's allocator, so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: telesub_server::Allocator = telesub_server::Allocator;

const SEED: u64 = 2024;
const PERIOD: &str = "2025-03";

fn main() {
    let n: usize = std::env::var("BENCH_HOUSEHOLDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let app = TestApp::spawn().await;
        let backend = app.store.backend();
        println!("statistics benchmark: {n} households, {backend} store, client and server in one process");
        let start = date!(2025 - 01 - 01);
        let started = Instant::now();
        let (month, list) = telesub_tests::bench::reconciled_month(&app, SEED, n, PERIOD, start).await;
        let expected = month.expected("VNPT");
        eprintln!(
            "  register, enrolments and a list of {} lines loaded and reconciled in {:.1} s",
            list.figures.as_ref().map_or(0, |f| f.lines),
            started.elapsed().as_secs_f64()
        );
        if let (Ok(to), telesub_tests::TestDb::Sqlite { path, .. }) = (std::env::var("BENCH_SAVE_DB"), &app.db) {
            std::fs::copy(path, &to).expect("save the database");
        }

        // The plain scans: the day's states, the running lines, the month's lines.
        let scans = [
            "SELECT COUNT(*) FROM household_versions WHERE valid_from <= '2025-03-31' \
             AND (valid_to IS NULL OR valid_to > '2025-03-31') AND removal_reason IS NULL",
            "SELECT COUNT(*) FROM enrollments WHERE start_date <= '2025-03-31' \
             AND (end_date IS NULL OR end_date > '2025-03-31')",
            "SELECT COUNT(*) FROM monthly_lines WHERE amount_claimed > 0",
        ];
        let scanned = Instant::now();
        for sql in scans {
            assert!(app.db.count(sql).await.expect("a plain scan") > 0);
        }
        let scan_s = scanned.elapsed().as_secs_f64();

        let ict = app.client("DOICT").await;
        println!();
        println!("| measurement | seconds | plain scans ÷ this |");
        println!("|---|---:|---:|");
        println!("| plain SQL scans: the day's states, the running lines, the month's claims | {scan_s:.2} | 1.00 |");
        for (label, unit) in
            [("province", ""), ("district 660", "660"), ("commune 24611", "24611"), ("province, again", "")]
        {
            let asked = Instant::now();
            let s = ict
                .get_programme_statistics(proto::GetProgrammeStatisticsRequest {
                    period: PERIOD.into(),
                    unit_code: unit.into(),
                })
                .await
                .expect("the statistics");
            let took = asked.elapsed().as_secs_f64();
            if unit.is_empty() {
                let total = s.by_category.iter().find(|r| r.category() == proto::Category::Unspecified).unwrap();
                assert_eq!(total.households, n as i64);
                let o = s.by_operator.iter().find(|o| o.operator == "VNPT").unwrap();
                assert_eq!((o.subscribers_claimed, o.amount_claimed), (expected.claims, expected.amount_claimed));
            }
            println!("| GetProgrammeStatistics over mTLS, {label} | {took:.2} | {:.2} |", scan_s / took);
        }
    });
}
