//! The console's pages over a 1,000,000-household register with a month of 1,009,726 lines
//! for one operator, submitted and reconciled through the hub: each page asked for many times
//! by a browser's connection (HTTPS, HTTP/1.1, DoICT's client certificate), one at a time,
//! and its time to the last byte reported for the first ask (before any cache holds it: the
//! statistics pages count their figures then and keep them a few minutes), then, over the
//! asks after three that warm caches, as 50th and 95th percentiles and the slowest. The
//! ceiling is the console's stylesheet, asked the same way in the same run: the cheapest page
//! the hub serves through the same layer (certificate, permission, audit record).
//!
//! `cargo bench -p telesub-tests --bench console` (SQLite); with `TELESUB_TEST_POSTGRES_URL`
//! set, on PostgreSQL. `BENCH_HOUSEHOLDS` sets the register's size (default 1,000,000),
//! `BENCH_ASKS` how often each page is asked (default 40).

use std::time::Instant;

use telesub_tests::{TestApp, console::Browser};
use time::macros::date;

/// The hub binary's allocator, so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: telesub_server::Allocator = telesub_server::Allocator;

const SEED: u64 = 2024;
const PERIOD: &str = "2025-03";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let n: usize = std::env::var("BENCH_HOUSEHOLDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let asks: usize = std::env::var("BENCH_ASKS").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let app = TestApp::spawn().await;
        let backend = app.store.backend();
        println!("console benchmark: {n} households, {backend} store, browser and hub in one process");
        let start = date!(2025 - 01 - 01);
        let started = Instant::now();
        let (month, list) = telesub_tests::bench::reconciled_month(&app, SEED, n, PERIOD, start).await;
        let lines = list.figures.as_ref().map_or(0, |f| f.lines);
        eprintln!(
            "  register and a list of {lines} lines loaded and reconciled in {:.1} s",
            started.elapsed().as_secs_f64()
        );

        let household = month.lines("VNPT").nth(lines as usize / 2).expect("a line").household_code;
        let commune = &household[3..8];
        let list_page = "/console/reconciliation/VNPT/bench";
        let pages = [
            ("stylesheet (the ceiling)", "/console/static/console.css".to_owned()),
            ("home", "/console/".to_owned()),
            ("month's overview", format!("/console/reconciliation?period={PERIOD}")),
            ("a list, first page", list_page.to_owned()),
            ("a list, by code OVER_CAP", format!("{list_page}?code=OVER_CAP")),
            ("a list, by code UNKNOWN_SUBSCRIBER", format!("{list_page}?code=UNKNOWN_SUBSCRIBER")),
            ("a list, by commune", format!("{list_page}?commune={commune}")),
            ("a list, by household", format!("{list_page}?household={household}")),
            ("a list, a page deep in it", format!("{list_page}?page=l900000")),
            ("a household's timeline", format!("/console/households?q={household}")),
            ("batches", "/console/batches".to_owned()),
            ("members", "/console/members".to_owned()),
            ("device decisions", "/console/devices".to_owned()),
            ("inspections", "/console/inspections".to_owned()),
            ("who looked a household up", format!("/console/audit?household={household}")),
            ("statistics, province", format!("/console/statistics?period={PERIOD}")),
            ("statistics, commune", format!("/console/statistics?period={PERIOD}&unit={commune}")),
        ];
        let mut browser = Browser::connect(&app, Some("DOICT")).await.expect("connect");
        println!();
        println!("| page | first ask ms | p50 ms | p95 ms | slowest ms | ceiling p95 ÷ this p95 |");
        println!("|---|---:|---:|---:|---:|---:|");
        let mut ceiling = None;
        for (label, path) in pages {
            let mut took = Vec::with_capacity(asks);
            for _ in 0..asks + 3 {
                let asked = Instant::now();
                let page = browser.get(&path).await.expect("the page");
                assert_eq!(page.status, 200, "{label}: {}", page.body);
                took.push(asked.elapsed().as_secs_f64() * 1e3);
            }
            // The first asks warm the caches.
            let first = took[0];
            let mut took = took.split_off(3);
            took.sort_by(f64::total_cmp);
            let p95 = percentile(&took, 0.95);
            let ceiling = *ceiling.get_or_insert(p95);
            println!(
                "| {label} | {first:.1} | {:.1} | {p95:.1} | {:.1} | {:.2} |",
                percentile(&took, 0.5),
                took.last().unwrap(),
                ceiling / p95
            );
        }

        // The whole list as files, once each: time to the last byte, and size.
        println!();
        println!("| download | seconds | MB |");
        println!("|---|---:|---:|");
        for format in ["csv", "xlsx"] {
            let asked = Instant::now();
            let page = browser.get(&format!("{list_page}/file?format={format}")).await.expect("the file");
            assert_eq!(page.status, 200, "{format}: {}", page.body);
            println!(
                "| the list's {lines} lines as {format} | {:.1} | {:.1} |",
                asked.elapsed().as_secs_f64(),
                page.bytes.len() as f64 / 1e6
            );
        }
    });
}
