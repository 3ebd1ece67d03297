//! A hub killed (SIGKILL) in the middle of a large batch leaves the register as it was; the
//! client's retry of the same batch then applies it, once.
//!
//! Runs the real `telesub` binary, on SQLite or, with `TELESUB_TEST_POSTGRES_URL`, on a new
//! PostgreSQL database.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::{StreamExt, stream};
use sqlx::{AssertSqlSafe, Connection};
use telesub_client::{Client, Error, proto};

fn database_url(dir: &Path) -> String {
    match std::env::var("TELESUB_TEST_POSTGRES_URL") {
        Ok(admin) => {
            let name = format!(
                "crash_{}_{}",
                std::process::id(),
                time::OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_007
            );
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    let mut c = sqlx::PgConnection::connect(&admin)
                        .await
                        .expect("TELESUB_TEST_POSTGRES_URL is set but unreachable");
                    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut c).await.unwrap();
                })
            });
            format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
        }
        Err(_) => format!("sqlite://{}", dir.join("hub.db").display()),
    }
}

/// Removes a database [`database_url`] created on the PostgreSQL server.
async fn drop_database(url: &str) {
    let (Ok(admin), Some((_, name))) = (std::env::var("TELESUB_TEST_POSTGRES_URL"), url.rsplit_once('/')) else {
        return;
    };
    if url.starts_with("postgres") {
        let mut c =
            sqlx::PgConnection::connect(&admin).await.expect("TELESUB_TEST_POSTGRES_URL is set but unreachable");
        let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        sqlx::query(AssertSqlSafe(drop)).execute(&mut c).await.unwrap();
    }
}

/// Starts `telesub serve` and returns it with its port.
fn serve(tls: &Path, database: &str) -> (Child, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_telesub"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database", database, "--tls-dir"])
        .arg(tls)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start telesub");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port =
        line.trim().rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no port in {line:?}"));
    (child, port)
}

async fn client(port: u16, tls: &Path) -> Client {
    Client::builder(format!("https://localhost:{port}")).dev_folder(tls, "DOLISA").unwrap().connect().await.unwrap()
}

fn record(n: u32) -> proto::HouseholdRecord {
    let member = |year: i32, female: bool, rel: proto::Relationship, name: &str| proto::HouseholdMember {
        citizen_id: format!("067{}{:02}{n:06}", u32::from(female), year % 100),
        full_name: name.into(),
        relationship: rel.into(),
        birth_year: year,
    };
    proto::HouseholdRecord {
        household_code: format!("HH-{n:07}"),
        effective_date: String::new(),
        change: Some(proto::household_record::Change::Upsert(proto::HouseholdData {
            category: proto::Category::Poor.into(),
            head_name: "Lê Văn Hùng".into(),
            commune_code: "24611".into(),
            address: String::new(),
            certificate: None,
            flags: None,
            members: vec![
                member(1980, false, proto::Relationship::Head, "Lê Văn Hùng"),
                member(1984, true, proto::Relationship::Spouse, "Phạm Thị Lan"),
            ],
        })),
    }
}

fn batch(id: &str) -> proto::BatchHeader {
    proto::BatchHeader {
        batch_id: id.into(),
        kind: proto::BatchKind::Delta.into(),
        review_period: "2024-03".into(),
        effective_date: "2024-03-01".into(),
        note: String::new(),
    }
}

const LARGE: u32 = 60_000;

async fn killed_during(kill_after_sent: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let tls = tmp.path().join("tls");
    telesub_server::pki::init(&tls, &["DOLISA:LABOUR".parse().unwrap()]).unwrap();
    let database = database_url(tmp.path());

    let (mut hub, port) = serve(&tls, &database);
    let labour = client(port, &tls).await;
    // What the register held before: one household from an earlier batch.
    labour.push_batch(batch("before"), stream::iter(vec![record(LARGE + 1)])).await.unwrap();

    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let records = stream::iter(0..LARGE).map(move |n| {
        counter.fetch_add(1, Ordering::Relaxed);
        record(n)
    });
    let push = tokio::spawn({
        let labour = labour.clone();
        async move { labour.push_batch(batch("big"), records).await }
    });
    while sent.load(Ordering::Relaxed) < kill_after_sent && !push.is_finished() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    hub.kill().unwrap(); // SIGKILL: no shutdown, no cleanup
    hub.wait().unwrap();
    let outcome = push.await.unwrap();
    assert!(
        outcome.is_err(),
        "the push cannot have succeeded: the hub was killed ({} sent)",
        sent.load(Ordering::Relaxed)
    );

    let (mut hub, port) = serve(&tls, &database);
    let labour = client(port, &tls).await;
    assert!(matches!(labour.get_batch("big").await.unwrap_err(), Error::NotFound(_)));
    for n in [0, LARGE / 2, LARGE - 1] {
        let err = labour.get_household(&format!("HH-{n:07}"), "").await.unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "HH-{n:07}: {err:?}");
    }
    assert_eq!(labour.household_history(&format!("HH-{:07}", LARGE + 1)).await.unwrap().versions.len(), 1);

    // The retry applies the batch once; a second retry is a replay.
    let receipt = labour.push_batch(batch("big"), stream::iter((0..LARGE).map(record))).await.unwrap();
    assert_eq!((receipt.records, receipt.added, receipt.replayed), (i64::from(LARGE), i64::from(LARGE), false));
    let again = labour.push_batch(batch("big"), stream::iter((0..LARGE).map(record))).await.unwrap();
    assert!(again.replayed);
    assert_eq!(labour.household_history("HH-0000000").await.unwrap().versions.len(), 1);
    hub.kill().unwrap();
    hub.wait().unwrap();
    drop_database(&database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_receiving_records() {
    killed_during(LARGE as usize / 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_the_last_record() {
    // The stream has been read to its end: the hub is checking or applying when it dies.
    killed_during(LARGE as usize).await;
}
