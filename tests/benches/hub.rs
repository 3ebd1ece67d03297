//! The hub's call rate, as a ratio to a ceiling measured in the same run.
//!
//! The ceiling is a bare tonic server answering `grpc.health.v1.Health/Check` over the same
//! mutual TLS (rustls, ring), with no hub layer, no database and no audit: no hub call can be
//! faster. The hub is then measured on the same machine, with the same client, for
//! `Health/Check` (which the hub audits like every call) and `Members/WhoAmI` (member lookup,
//! audit, a database read). Machines here are noisy, so the ratios are what to compare.
//!
//! `cargo bench -p telesub-tests --bench hub` (SQLite); with `TELESUB_TEST_POSTGRES_URL` set,
//! the hub runs on PostgreSQL. `BENCH_SECONDS` sets each measurement's length (default 3).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use telesub_client::Client;
use telesub_tests::{TestApp, read};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

const CONNECTIONS: usize = 4;
const IN_FLIGHT_PER_CONNECTION: usize = 16;

#[derive(Clone, Copy)]
enum Call {
    Health,
    WhoAmI,
}

struct Measurement {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Runs `call` from `connections` clients with `in_flight` calls each for `seconds`.
async fn measure(clients: &[Client], in_flight: usize, call: Call, seconds: f64) -> Measurement {
    // Warm up connections and caches.
    for client in clients {
        for _ in 0..20 {
            run(client, call).await;
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for client in clients {
        for _ in 0..in_flight {
            let (client, stop, count) = (client.clone(), stop.clone(), count.clone());
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(1 << 16);
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    run(&client, call).await;
                    latencies.push(started.elapsed());
                    count.fetch_add(1, Ordering::Relaxed);
                }
                latencies
            }));
        }
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let calls = count.load(Ordering::Relaxed);
    let mut latencies: Vec<Duration> = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64() * 1e3;
    Measurement { rate: calls as f64 / elapsed, p50_ms: pct(0.50), p99_ms: pct(0.99) }
}

async fn run(client: &Client, call: Call) {
    match call {
        Call::Health => assert!(client.health().await.expect("health")),
        Call::WhoAmI => {
            client.who_am_i().await.expect("who am i");
        }
    }
}

/// A bare tonic server with only the health service, on the hub's certificates.
async fn bare_tonic(app: &TestApp) -> std::net::SocketAddr {
    let dir = app.dir();
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(read(dir.server_cert()), read(dir.server_key())))
        .client_ca_root(Certificate::from_pem(read(dir.ca_cert())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let server = Server::builder().tls_config(tls).unwrap().add_service(health);
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tokio::spawn(server.serve_with_incoming(incoming));
    addr
}

async fn clients(app: &TestApp, endpoint: &str, n: usize) -> Vec<Client> {
    let mut clients = Vec::new();
    for _ in 0..n {
        let dir = app.dir();
        let client = Client::builder(endpoint)
            .ca_pem(read(dir.ca_cert()))
            .identity_pem(read(dir.client_cert("VNPT")), read(dir.client_key("VNPT")))
            .connect()
            .await
            .expect("connect");
        clients.push(client);
    }
    clients
}

fn main() {
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let seconds: f64 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
        let app = TestApp::spawn().await;
        let backend = app.store.backend();
        let ceiling_addr = bare_tonic(&app).await;
        let ceiling_endpoint = format!("https://localhost:{}", ceiling_addr.port());
        let hub_endpoint = app.endpoint();

        println!("telesub hub benchmark: {workers} tokio worker threads (client and server in one process), {backend} store, {seconds} s per measurement");
        println!();
        println!("| in flight | call | calls/s | ratio to ceiling | p50 ms | p99 ms |");
        println!("|---|---|---:|---:|---:|---:|");
        for (label, connections, in_flight) in
            [("1", 1, 1), ("64 over 4 connections", CONNECTIONS, IN_FLIGHT_PER_CONNECTION)]
        {
            let ceiling_clients = clients(&app, &ceiling_endpoint, connections).await;
            let hub_clients = clients(&app, &hub_endpoint, connections).await;
            let ceiling = measure(&ceiling_clients, in_flight, Call::Health, seconds).await;
            let rows = [
                ("ceiling: bare tonic Health/Check", &ceiling),
                ("hub Health/Check (audited)", &measure(&hub_clients, in_flight, Call::Health, seconds).await),
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
