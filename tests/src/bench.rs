//! What the benchmarks share: many calls in flight over a few connections, timed.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use telesub_client::Client;

use crate::{TestApp, read};

/// Calls per second and latency percentiles of one measurement.
#[derive(Debug, Clone, Copy)]
pub struct Measurement {
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Runs `call` with `in_flight` calls at a time on each of `clients` for `seconds`, after a
/// short warm-up. `call` gets the client and a running number (to vary what it asks).
pub async fn measure<F, Fut>(clients: &[Client], in_flight: usize, seconds: f64, call: F) -> Measurement
where
    F: Fn(Client, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    for client in clients {
        for i in 0..20 {
            call(client.clone(), i).await;
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for client in clients {
        for _ in 0..in_flight {
            let (client, stop, count, call) = (client.clone(), stop.clone(), count.clone(), call.clone());
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(1 << 16);
                while !stop.load(Ordering::Relaxed) {
                    let n = count.fetch_add(1, Ordering::Relaxed);
                    let started = Instant::now();
                    call(client.clone(), n).await;
                    latencies.push(started.elapsed());
                }
                latencies
            }));
        }
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies: Vec<Duration> = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("a measuring task"));
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64() * 1e3;
    Measurement { rate: latencies.len() as f64 / elapsed, p50_ms: pct(0.50), p99_ms: pct(0.99) }
}

/// `n` separate connections to `endpoint` with `org`'s certificate from the app's folder.
pub async fn clients(app: &TestApp, endpoint: &str, org: &str, n: usize) -> Vec<Client> {
    let mut clients = Vec::new();
    for _ in 0..n {
        let dir = app.dir();
        let client = Client::builder(endpoint)
            .ca_pem(read(dir.ca_cert()))
            .identity_pem(read(dir.client_cert(org)), read(dir.client_key(org)))
            .connect()
            .await
            .expect("connect");
        clients.push(client);
    }
    clients
}

/// The seconds each measurement runs: `BENCH_SECONDS`, 3 by default.
/// Fields of this process's `/proc/self/status` (`VmHWM`, `RssAnon`, `RssFile`, …), in MiB,
/// in the order named (Linux; `None` elsewhere).
pub fn status_mib<const N: usize>(names: [&str; N]) -> Option<[f64; N]> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(':')))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    };
    let mut out = [0.0; N];
    for (slot, name) in out.iter_mut().zip(names) {
        *slot = field(name)?;
    }
    Some(out)
}

pub fn seconds() -> f64 {
    std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0)
}

/// The ceiling the benchmarks measure against: a bare tonic server with only the health
/// service, on the app's certificates (no hub layer, no database, no audit).
pub async fn bare_tonic(app: &TestApp) -> std::net::SocketAddr {
    use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
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

/// A register of `n` generated households (effective `start`), their enrolments, and VNPT's
/// list for `period` (update id `bench`) submitted through the hub and reconciled; then the
/// database settled and the held register caught up, so that what is measured next reads a
/// quiet database. Returns the month's generator (it knows what it planted) and the list.
pub async fn reconciled_month(
    app: &TestApp,
    seed: u64,
    n: usize,
    period: &str,
    start: time::Date,
) -> (telesub_tools::monthly_generator::MonthGenerator, telesub_client::proto::MonthlyReconciliation) {
    use telesub_tools::monthly_generator::{MonthGenerator, Shares};
    crate::load_generated(app.store.as_ref(), seed, n, start).await;
    let month = MonthGenerator::new(seed, n, vec!["VNPT".into()], period, start, Shares::default()).unwrap();
    crate::load_enrollments(&app.db, month.enrollments()).await.expect("load the enrolments");
    let header = telesub_client::proto::MonthlyUpdateHeader {
        period: period.into(),
        update_id: "bench".into(),
        replaces_earlier: false,
        note: String::new(),
    };
    let (to_send, sending) = tokio::sync::mpsc::channel(4_096);
    let generator = month.clone();
    std::thread::spawn(move || {
        for line in generator.lines("VNPT") {
            if to_send.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let list = app
        .client("VNPT")
        .await
        .submit_monthly_update(header, tokio_stream::wrappers::ReceiverStream::new(sending))
        .await
        .expect("the list is reconciled");
    let settle: &[&str] = if app.store.backend() == "sqlite" {
        &["PRAGMA wal_checkpoint(TRUNCATE)"]
    } else {
        &["CHECKPOINT", "VACUUM ANALYZE"]
    };
    for statement in settle {
        app.db.execute(statement).await.expect("settle");
    }
    app.register.catch_up().await.expect("the register held in memory catches up");
    (month, list)
}
