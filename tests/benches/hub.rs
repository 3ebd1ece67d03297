//! The hub's call rate, as a ratio to a ceiling measured in the same run.
//!
//! The ceiling is a bare tonic server answering `grpc.health.v1.Health/Check` over the same
//! mutual TLS (rustls, ring), with no hub layer, no database and no audit: no hub call can be
//! faster. The hub is then measured on the same machine, with the same client, for
//! `Health/Check` (through the hub layer, which answers it at once: health is not audited)
//! and `Members/WhoAmI` (member lookup, audit record: the cheapest audited call). Machines
//! here are noisy, so the ratios are what to compare.
//!
//! `cargo bench -p telesub-tests --bench hub` (SQLite); with `TELESUB_TEST_POSTGRES_URL` set,
//! the hub runs on PostgreSQL. `BENCH_SECONDS` sets each measurement's length (default 3).

use telesub_client::Client;
use telesub_tests::{
    TestApp,
    bench::{self, Measurement, clients},
};

/// The hub binary's allocator, so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: telesub_server::Allocator = telesub_server::Allocator;

const CONNECTIONS: usize = 4;
const IN_FLIGHT_PER_CONNECTION: usize = 16;

#[derive(Clone, Copy)]
enum Call {
    Health,
    WhoAmI,
}

async fn measure(clients: &[Client], in_flight: usize, call: Call, seconds: f64) -> Measurement {
    bench::measure(clients, in_flight, seconds, move |client, _| async move {
        match call {
            Call::Health => assert!(client.health().await.expect("health")),
            Call::WhoAmI => {
                client.who_am_i().await.expect("who am i");
            }
        }
    })
    .await
}

fn main() {
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let seconds = bench::seconds();
        let app = TestApp::spawn().await;
        let backend = app.store.backend();
        let ceiling_addr = bench::bare_tonic(&app).await;
        let ceiling_endpoint = format!("https://localhost:{}", ceiling_addr.port());
        let hub_endpoint = app.endpoint();

        println!("telesub hub benchmark: {workers} tokio worker threads (client and server in one process), {backend} store, {seconds} s per measurement");
        println!();
        println!("| in flight | call | calls/s | ratio to ceiling | p50 ms | p99 ms |");
        println!("|---|---|---:|---:|---:|---:|");
        for (label, connections, in_flight) in
            [("1", 1, 1), ("64 over 4 connections", CONNECTIONS, IN_FLIGHT_PER_CONNECTION)]
        {
            let ceiling_clients = clients(&app, &ceiling_endpoint, "VNPT", connections).await;
            let hub_clients = clients(&app, &hub_endpoint, "VNPT", connections).await;
            let ceiling = measure(&ceiling_clients, in_flight, Call::Health, seconds).await;
            let rows = [
                ("ceiling: bare tonic Health/Check", &ceiling),
                ("hub Health/Check (not audited)", &measure(&hub_clients, in_flight, Call::Health, seconds).await),
                ("hub Members/WhoAmI", &measure(&hub_clients, in_flight, Call::WhoAmI, seconds).await),
            ];
            for (name, m) in rows {
                println!(
                    "| {label} | {name} | {:.0} | {:.2} | {:.2} | {:.2} |",
                    m.rate,
                    m.rate / ceiling.rate,
                    m.p50_ms,
                    m.p99_ms
                );
            }
        }
        let records = app.audit().await.len();
        let report = telesub_server::audit::verify(app.store.as_ref()).await.unwrap();
        assert_eq!(report.first_break, None);
        println!();
        println!("audit trail after the run: {records} records, chain intact");
    });
}
