//! Pushing the yearly review: one SNAPSHOT of N households (default 1,000,000) end to end —
//! generated, streamed through the SDK over mutual TLS to a real `telesub serve` process,
//! checked, staged and applied — against the storage ceiling measured in the same run: the
//! same records checked and written straight through the storage layer, no gRPC. Then a
//! 10,000-record monthly delta on top.
//!
//! `cargo bench -p telesub-tests --bench registry` (SQLite); with `TELESUB_TEST_POSTGRES_URL`
//! set, on PostgreSQL. `BENCH_HOUSEHOLDS` sets N.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::Instant,
};

use futures_util::stream;
use sqlx::{AssertSqlSafe, Connection};
use telesub_client::{Client, proto};
use telesub_server::{
    domain::clock::Clock,
    domain::{
        household::{BatchKind, CheckContext, check_record},
        registry::staged,
        units::{UnitTable, reference_units},
    },
    storage::{
        self,
        registry::{NewBatch, Staged},
    },
    transport::record_input,
};
use telesub_tools::generator::HouseholdGenerator;
use time::macros::date;

/// The hub binary's allocator, so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: telesub_server::Allocator = telesub_server::Allocator;

const SEED: u64 = 2024;

fn database_url(dir: &Path, name: &str) -> String {
    match std::env::var("TELESUB_TEST_POSTGRES_URL") {
        Ok(admin) => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let mut c =
                    sqlx::PgConnection::connect(&admin).await.expect("TELESUB_TEST_POSTGRES_URL is unreachable");
                let db = format!("bench_{name}_{}", std::process::id());
                sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {db}"))).execute(&mut c).await.unwrap();
                format!("{}/{db}", admin.rsplit_once('/').unwrap().0)
            })
        }
        Err(_) => format!("sqlite://{}", dir.join(format!("{name}.db")).display()),
    }
}

/// Removes a database [`database_url`] created on the PostgreSQL server: they are large.
fn drop_database(url: &str) {
    let (Ok(admin), Some((_, name))) = (std::env::var("TELESUB_TEST_POSTGRES_URL"), url.rsplit_once('/')) else {
        return;
    };
    if !url.starts_with("postgres") {
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = sqlx::PgConnection::connect(&admin).await.expect("TELESUB_TEST_POSTGRES_URL is unreachable");
        let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        sqlx::query(AssertSqlSafe(drop)).execute(&mut c).await.unwrap();
    });
}

fn serve(tls: &Path, database: &str) -> (Child, u16) {
    let mut child = Command::new(telesub_tests::hub_binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--database", database, "--tls-dir"])
        .arg(tls)
        .env("RUST_LOG", "warn,telesub_server::storage=info,telesub_server::read_model=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start telesub");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port = line.trim().rsplit(':').next().and_then(|p| p.parse().ok()).expect("the listening line");
    (child, port)
}

/// Passes the hub's log on and tells, each time, that the hub holds the register in memory
/// again (it builds its index after a large batch, in the background).
fn watch_log(child: &mut Child) -> std::sync::mpsc::Receiver<()> {
    let (held, rx) = std::sync::mpsc::channel();
    let log = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in log.lines().map_while(Result::ok) {
            eprintln!("{line}");
            if line.contains("the register is held in memory") {
                let _ = held.send(());
            }
        }
    });
    rx
}

/// Peak resident memory of a process, in MiB (Linux).
fn peak_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn header(id: &str, kind: proto::BatchKind, period: &str, date: &str) -> proto::BatchHeader {
    proto::BatchHeader {
        batch_id: id.into(),
        kind: kind.into(),
        review_period: period.into(),
        effective_date: date.into(),
        note: String::new(),
    }
}

/// The storage ceiling: the same records, checked and staged in chunks, then applied.
async fn ceiling(database: &str, n: usize) -> f64 {
    let store = storage::open(database, &Default::default()).await.unwrap();
    store.seed_units(&reference_units().unwrap()).await.unwrap();
    let units = UnitTable::new(reference_units().unwrap());
    let effective = date!(2025 - 01 - 01);
    let cx = CheckContext {
        units: &units,
        today: Clock::system().today(),
        batch_effective: effective,
        kind: BatchKind::Snapshot,
    };
    let started = Instant::now();
    let batch = NewBatch {
        batch_id: "ceiling",
        kind: BatchKind::Snapshot,
        review_period: "2024",
        effective,
        note: "",
        pushed_by: "DOLISA",
        received_at: Clock::system().now(),
        receiver: "ceiling",
    };
    store.begin_batch(&batch).await.unwrap();
    let mut chunk = Vec::with_capacity(2_000);
    let mut writing = std::time::Duration::ZERO;
    for (idx, record) in HouseholdGenerator::reference(SEED).take(n).enumerate() {
        let checked = check_record(idx, &record_input(record), &cx).expect("generated records are valid");
        chunk.push(staged(idx, checked));
        if chunk.len() == 2_000 {
            let t = Instant::now();
            store.stage_records("ceiling", "ceiling", &chunk).await.unwrap();
            writing += t.elapsed();
            chunk.clear();
        }
    }
    store.stage_records("ceiling", "ceiling", &chunk).await.unwrap();
    let staged_at = started.elapsed().as_secs_f64();
    eprintln!(
        "  ceiling: generated, checked and staged in {staged_at:.1} s, of which {:.1} s writing",
        writing.as_secs_f64()
    );
    let counts = store
        .apply_batch(
            &Staged { batch_id: "ceiling", receiver: "ceiling", records: n as i64 },
            BatchKind::Snapshot,
            effective,
            "-",
            Clock::system().now(),
        )
        .await
        .unwrap()
        .expect("applies");
    assert_eq!(counts.added, n as i64);
    eprintln!("  ceiling: applied in {:.1} s", started.elapsed().as_secs_f64() - staged_at);
    started.elapsed().as_secs_f64()
}

fn main() {
    let n: usize = std::env::var("BENCH_HOUSEHOLDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let tls = tmp.path().join("tls");
    telesub_server::pki::init(&tls, &["DOLISA:LABOUR".parse().unwrap()]).unwrap();
    let ceiling_db = database_url(tmp.path(), "ceiling");
    let hub_db = database_url(tmp.path(), "hub");
    let backend = if hub_db.starts_with("sqlite") { "SQLite" } else { "PostgreSQL" };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    if std::env::var_os("BENCH_TRACE").is_some() {
        telesub_server::telemetry::init(telesub_server::config::LogFormat::Text, "sqlx::query=debug");
    }

    println!("registry benchmark: one SNAPSHOT of {n} households, {backend}, 2-core machine");
    let ceiling_s = runtime.block_on(ceiling(&ceiling_db, n));

    let (mut hub, port) = serve(&tls, &hub_db);
    let held = watch_log(&mut hub);
    let hub_id = hub.id();
    // An SQLite hub holds the register in memory, built from the empty register at start;
    // a PostgreSQL hub reads it from the database.
    let holds = backend == "SQLite";
    if holds {
        held.recv_timeout(std::time::Duration::from_secs(60)).expect("the hub holds the register");
    }
    let (snapshot_s, delta_s, receipt) = runtime.block_on(async {
        let client = Client::builder(format!("https://localhost:{port}"))
            .dev_folder(&tls, "DOLISA")
            .unwrap()
            .connect()
            .await
            .unwrap();
        let started = Instant::now();
        let records = stream::iter(HouseholdGenerator::reference(SEED).take(n));
        let receipt = client
            .push_batch(header("review-2024", proto::BatchKind::Snapshot, "2024", "2025-01-01"), records)
            .await
            .unwrap();
        let snapshot_s = started.elapsed().as_secs_f64();
        assert_eq!(receipt.added, n as i64);
        // The hub reads the new register into memory; the delta comes a month later.
        let reading = Instant::now();
        if let Some(mib) = peak_mib(hub_id) {
            eprintln!("  hub peak resident memory after the snapshot: {mib:.0} MiB");
        }
        if holds {
            held.recv_timeout(std::time::Duration::from_secs(600)).expect("the hub holds the new register");
            eprintln!("  the hub held the new register {:.1} s after the snapshot", reading.elapsed().as_secs_f64());
            if let Some(mib) = peak_mib(hub_id) {
                eprintln!("  hub peak resident memory once it holds the register: {mib:.0} MiB");
            }
        }

        // A month later: 10,000 records — new households, changed ones, and removals.
        let mut delta: Vec<proto::HouseholdRecord> = Vec::with_capacity(10_000);
        // New households: the generator's next ones, whose citizen IDs are not on the list.
        delta.extend(HouseholdGenerator::reference(SEED).skip(n).take(4_000));
        for mut r in HouseholdGenerator::reference(SEED).take(4_000) {
            if let Some(proto::household_record::Change::Upsert(d)) = r.change.as_mut() {
                d.address = "Thôn mới".into();
            }
            delta.push(r);
        }
        for r in HouseholdGenerator::reference(SEED).skip(4_000).take(2_000) {
            delta.push(proto::HouseholdRecord {
                household_code: r.household_code,
                effective_date: String::new(),
                change: Some(proto::household_record::Change::Removal(proto::Removal {
                    reason: proto::RemovalReason::OutOfPoverty.into(),
                    note: String::new(),
                })),
            });
        }
        let started = Instant::now();
        let d = client
            .push_batch(header("2025-02", proto::BatchKind::Delta, "2025-02", "2025-02-01"), stream::iter(delta))
            .await;
        let delta_s = started.elapsed().as_secs_f64();
        (snapshot_s, delta_s, d)
    });
    let peak = peak_mib(hub.id());
    hub.kill().ok();
    hub.wait().ok();
    drop_database(&ceiling_db);
    drop_database(&hub_db);
    let d = receipt.expect("the delta applies");
    assert_eq!((d.added, d.changed, d.removed), (4_000, 4_000, 2_000));

    println!();
    println!("| measurement | seconds | households/s | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| storage ceiling (check + stage + apply, no gRPC) | {ceiling_s:.1} | {:.0} | 1.00 |",
        n as f64 / ceiling_s
    );
    println!(
        "| SNAPSHOT end to end (SDK, mTLS, hub process) | {snapshot_s:.1} | {:.0} | {:.2} |",
        n as f64 / snapshot_s,
        ceiling_s / snapshot_s
    );
    println!("| 10,000-record DELTA end to end | {delta_s:.2} | {:.0} | |", 10_000.0 / delta_s);
    match peak {
        Some(mib) => println!("\npeak resident memory of the hub process: {mib:.0} MiB"),
        None => println!("\npeak resident memory of the hub process: not available on this system"),
    }
}
