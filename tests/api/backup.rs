//! Keeping a hub: an embedded hub's database copied while it serves under load, the copy
//! restored into a new folder and its audit trail verified with the same last record and
//! checkpoint; a copy cut short by a kill never passes for a finished one. A PostgreSQL hub
//! is copied with `pg_dump` and `pg_restore`, as the README says, and its trail verifies too.

use std::{path::Path, time::Duration};

use telesub_client::proto;
use telesub_tests::{ServeProcess, TestApp, TestDb, hub_binary};

use crate::households::{header, household};

async fn telesub(args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new(hub_binary()).args(args).output().await.expect("run telesub");
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), said)
}

/// The line `backup` and `restore` print about the copy's audit trail.
fn trail_line(said: &str) -> String {
    said.lines()
        .find(|l| l.starts_with("audit trail to record"))
        .unwrap_or_else(|| panic!("no trail line: {said}"))
        .to_owned()
}

/// `(records, hash)` of `audit trail to record N (hash H), …`.
fn trail_end(line: &str) -> (String, String) {
    let rest = line.strip_prefix("audit trail to record ").unwrap();
    let (records, rest) = rest.split_once(" (hash ").unwrap();
    (records.to_owned(), rest.split(')').next().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serving_hub_is_copied_under_load_restored_elsewhere_and_its_trail_verifies() {
    if std::env::var(telesub_tests::POSTGRES_ENV).is_ok() {
        return; // the embedded hub's copy; the PostgreSQL pass copies with pg_dump (below)
    }
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    telesub_server::pki::init(&tls, &["DOLISA:LABOUR".parse().unwrap(), "VNPT:OPERATOR".parse().unwrap()]).unwrap();
    let database = dir.path().join("hub.db");
    let url = format!("sqlite://{}", database.display());
    let hub = ServeProcess::start(&tls, &url, &dir.path().join("hub.log"), &[]).await.unwrap();
    let (labour, vnpt) = (hub.client("DOLISA").await, hub.client("VNPT").await);
    let first: Vec<_> = (1..=200).map(|n| household(&format!("HH-{n}"), "24611", n)).collect();
    labour
        .push_batch(header("start", proto::BatchKind::Snapshot, "2024", "2025-01-01"), tokio_stream::iter(first))
        .await
        .unwrap();

    // Load: questions and batches while the copy is taken.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (labour, vnpt, stop) = (labour.clone(), vnpt.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let key = proto::check_eligibility_request::Key::HouseholdCode(format!("HH-{}", n % 200 + 1));
                vnpt.check_eligibility(key, "2025-01-15").await.unwrap();
                if n.is_multiple_of(5) {
                    let record = household(&format!("HH-{}", 1000 + n), "24611", 1000 + n);
                    let batch = header(&format!("during-{n}"), proto::BatchKind::Delta, "2025-01", "2025-01-01");
                    labour.push_batch(batch, tokio_stream::iter(vec![record])).await.unwrap();
                }
            }
            n
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A copy cut short by a kill leaves no file under the copy's name.
    let cut = dir.path().join("cut.db");
    let mut child = tokio::process::Command::new(hub_binary())
        .args(["backup", "--database", &url, "--out", cut.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(15)).await;
    child.start_kill().unwrap();
    let status = child.wait().await.unwrap();
    if cut.exists() {
        assert!(status.success(), "a killed backup left {}", cut.display());
    }

    let copy = dir.path().join("copy.db");
    let (ok, said) = telesub(&["backup", "--database", &url, "--out", copy.to_str().unwrap()]).await;
    assert!(ok, "{said}");
    let backed_up = trail_line(&said);
    // Never over a file.
    let (ok, again) = telesub(&["backup", "--database", &url, "--out", copy.to_str().unwrap()]).await;
    assert!(!ok && again.contains("exists"), "{again}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let asked = load.await.unwrap();
    assert!(asked > 5, "the load ran: {asked} questions");
    drop(hub);

    // Restored into a new folder: the same last record and checkpoint, and the trail verifies.
    let restored = dir.path().join("restored").join("hub.db");
    std::fs::create_dir_all(restored.parent().unwrap()).unwrap();
    let restored_url = format!("sqlite://{}", restored.display());
    let (ok, said) = telesub(&["restore", "--from", copy.to_str().unwrap(), "--database", &restored_url]).await;
    assert!(ok, "{said}");
    assert_eq!(trail_line(&said), backed_up, "the restored trail ends where the copy's does");
    let (ok, again) = telesub(&["restore", "--from", copy.to_str().unwrap(), "--database", &restored_url]).await;
    assert!(!ok && again.contains("never writes over"), "{again}");
    let (records, hash) = trail_end(&backed_up);
    assert!(records.parse::<i64>().unwrap() > 10, "{backed_up}");
    let key = telesub(&["audit", "public-key", "--tls-dir", tls.to_str().unwrap()]).await.1.trim().to_owned();
    let (ok, verified) = telesub(&["audit", "verify", "--database", &restored_url, "--public-key", &key]).await;
    assert!(ok, "{verified}");
    assert!(
        verified.contains(&format!("audit trail intact: {records} records, last record {records}, last hash {hash}")),
        "{verified} / {backed_up}"
    );

    // The restored hub serves: a household pushed before the copy is there.
    let hub = ServeProcess::start(&tls, &restored_url, &dir.path().join("restored.log"), &[]).await.unwrap();
    let found = hub
        .client("VNPT")
        .await
        .check_eligibility(proto::check_eligibility_request::Key::HouseholdCode("HH-7".into()), "2025-01-15")
        .await
        .unwrap();
    assert!(found.eligible, "{found:?}");
}

/// A PostgreSQL hub: `pg_dump` while it serves, `pg_restore` into a new database, and the
/// restored trail verifies, each of its records the source's.
#[tokio::test]
async fn a_postgres_hub_is_copied_with_pg_dump_and_restored_with_pg_restore() {
    if std::env::var(telesub_tests::POSTGRES_ENV).is_err() {
        return; // the embedded pass copies with `telesub backup` (above)
    }
    let (Some(pg_dump), Some(pg_restore)) = (telesub_tests::pg_tool("pg_dump"), telesub_tests::pg_tool("pg_restore"))
    else {
        panic!("pg_dump and pg_restore are not beside initdb: the README's backup steps cannot be run");
    };
    let app = TestApp::spawn().await;
    let labour = app.client("DOLISA").await;
    let records: Vec<_> = (1..=50).map(|n| household(&format!("HH-{n}"), "24611", n)).collect();
    labour
        .push_batch(header("start", proto::BatchKind::Snapshot, "2024", "2025-01-01"), tokio_stream::iter(records))
        .await
        .unwrap();
    let dump = tempfile::tempdir().unwrap();
    let file = dump.path().join("hub.dump");
    let run = |tool: &Path, args: Vec<String>| {
        let out = std::process::Command::new(tool).args(&args).output().expect("run the tool");
        assert!(out.status.success(), "{} {args:?}: {}", tool.display(), String::from_utf8_lossy(&out.stderr));
    };
    // The steps of the README: a custom-format dump, restored without owners into a new database.
    run(
        &pg_dump,
        vec!["--format=custom".into(), format!("--file={}", file.display()), format!("--dbname={}", app.db.url())],
    );
    let target = TestDb::new().await;
    run(
        &pg_restore,
        vec![
            "--no-owner".into(),
            "--exit-on-error".into(),
            format!("--dbname={}", target.url()),
            file.display().to_string(),
        ],
    );
    let key =
        telesub(&["audit", "public-key", "--tls-dir", app.tls_dir.path().to_str().unwrap()]).await.1.trim().to_owned();
    let (ok, verified) = telesub(&["audit", "verify", "--database", &target.url(), "--public-key", &key]).await;
    assert!(ok, "{verified}");
    let line = verified.lines().find(|l| l.starts_with("audit trail intact")).unwrap_or_else(|| panic!("{verified}"));
    let last: i64 = line.split("last record ").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
    let hash = line.split("last hash ").nth(1).unwrap().split(',').next().unwrap().to_owned();
    let source = app.audit().await;
    let same = source.iter().find(|r| r.seq == last).expect("the restored last record is the source's");
    assert_eq!(same.hash, hash);
}
