//! Under faults: a batch applied whole or not at all, a hub killed at any moment starting again
//! with nothing half-done, no call answered before its record is kept. The hub is the real
//! `telesub serve` process where it is killed; the database is the backend under test.

use std::time::Duration;

use telesub_client::{Client, Code, Error, proto};
use telesub_tests::{ServeProcess, TestApp, TestDb};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::households::{header, household};

const DELTA: proto::BatchKind = proto::BatchKind::Delta;
const SNAPSHOT: proto::BatchKind = proto::BatchKind::Snapshot;

/// Households on the list now (open states that are not removals).
const ON_LIST: &str = "SELECT COUNT(*) FROM household_versions WHERE valid_to IS NULL AND removal_reason IS NULL";

fn records(range: std::ops::Range<u32>) -> Vec<proto::HouseholdRecord> {
    range.map(|n| household(&format!("HH-{n:07}"), "24611", n)).collect()
}

/// A client stream the test feeds by hand.
fn gate<T: Send + 'static>() -> (mpsc::Sender<T>, ReceiverStream<T>) {
    let (tx, rx) = mpsc::channel(100_000);
    (tx, ReceiverStream::new(rx))
}

#[tokio::test]
async fn a_second_stream_of_a_batch_being_received_is_refused_and_the_first_applies_whole() {
    let app = TestApp::spawn().await;
    let labour = app.client("DOLISA").await;
    labour
        .push_batch(header("start", DELTA, "2024-12", "2024-12-01"), tokio_stream::iter(records(1..3001)))
        .await
        .unwrap();
    assert_eq!(app.db.count(ON_LIST).await.unwrap(), 3000);

    // A: the review, streamed in two halves.
    let review = || header("review-2024", SNAPSHOT, "2024", "2025-01-01");
    let (to_a, a_records) = gate();
    let first = tokio::spawn({
        let labour = labour.clone();
        async move { labour.push_batch(review(), a_records).await }
    });
    for r in records(1..1001) {
        to_a.send(r).await.unwrap();
    }
    // The hub holds A's first half (staged) before B opens.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // B: the same header, as a client retrying while its first stream is still open.
    let started = std::time::Instant::now();
    let err = labour.push_batch(review(), tokio_stream::iter(records(1001..2001))).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "refused at once, not after the stream");
    assert_eq!(err.code(), Some(Code::Aborted), "{err:?}");
    assert!(err.to_string().contains("review-2024"), "the refusal names the batch: {err}");

    for r in records(1001..2001) {
        to_a.send(r).await.unwrap();
    }
    drop(to_a);
    let receipt = first.await.unwrap().expect("the first stream applies");
    assert_eq!((receipt.records, receipt.unchanged, receipt.removed), (2000, 2000, 1000), "{receipt:?}");
    assert_eq!(labour.get_batch("review-2024").await.unwrap().records, 2000);
    assert_eq!(app.db.count(ON_LIST).await.unwrap(), 2000, "the review lists 2000 households");
}

/// One line of a month's list; the hub reconciles it whatever it finds.
fn line(n: u32) -> proto::MonthlyLine {
    proto::MonthlyLine {
        phone_number: format!("091{n:07}"),
        subscriber_citizen_id: crate::households::cid(n, 1980, false),
        household_code: format!("HH-{n:07}"),
        enrollment_id: String::new(),
        change: proto::SupportChange::Continuing.into(),
        service: proto::SupportedService::Mobile.into(),
        package_code: "ASXH60".into(),
        tariff: 70_000,
        amount_claimed: 60_000,
        days_of_service: 30,
        used: true,
        unclaimed_reason: 0,
    }
}

fn month(update_id: &str) -> proto::MonthlyUpdateHeader {
    in_period("2025-03", update_id)
}

fn in_period(period: &str, update_id: &str) -> proto::MonthlyUpdateHeader {
    proto::MonthlyUpdateHeader {
        period: period.into(),
        update_id: update_id.into(),
        replaces_earlier: false,
        note: String::new(),
    }
}

#[tokio::test]
async fn a_second_stream_of_a_monthly_list_being_received_is_refused() {
    let app = TestApp::spawn().await;
    let vnpt = app.client("VNPT").await;
    let (to_a, a_lines) = gate();
    let first = tokio::spawn({
        let vnpt = vnpt.clone();
        async move { vnpt.submit_monthly_update(month("vn-2025-03"), a_lines).await }
    });
    for n in 1..501 {
        to_a.send(line(n)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let err =
        vnpt.submit_monthly_update(month("vn-2025-03"), tokio_stream::iter((501..1001).map(line))).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::Aborted), "{err:?}");
    assert!(err.to_string().contains("vn-2025-03"), "{err}");
    for n in 501..1001 {
        to_a.send(line(n)).await.unwrap();
    }
    drop(to_a);
    let list = first.await.unwrap().expect("the first stream is reconciled");
    assert_eq!(list.status(), proto::ReconciliationStatus::Reconciled);
    assert_eq!(list.figures.unwrap().lines, 1000);
}

/// The register's households and the audit trail after a restart.
async fn check_after_restart(db: &TestDb, allowed: &[i64]) {
    let on_list = db.count(ON_LIST).await.unwrap();
    assert!(allowed.contains(&on_list), "{on_list} households on the list: the register is half-changed");
    if let TestDb::Sqlite { path, .. } = db {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        let ok: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut c).await.unwrap();
        assert_eq!(ok, "ok");
    }
    let verify = tokio::process::Command::new(telesub_tests::hub_binary())
        .args(["audit", "verify", "--database", &db.url()])
        .env("RUST_LOG", "error")
        .output()
        .await
        .unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}

const LARGE: u32 = 40_000;

/// Kills the hub while a large batch is streamed, staged or applied, at each moment asked for,
/// and starts it again every time: it starts unaided, with the register as before the batch
/// or after it; the batch then goes through once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_killed_at_any_moment_of_a_batch_starts_again() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    telesub_server::pki::init(&tls, &["DOLISA:LABOUR".parse().unwrap()]).unwrap();
    let log = |n: usize| dir.path().join(format!("hub-{n}.log"));
    let mut hub = ServeProcess::start(&tls, &db.url(), &log(0), &[]).await.unwrap();
    let labour = hub.client("DOLISA").await;
    labour
        .push_batch(header("before", DELTA, "2024-12", "2024-12-01"), tokio_stream::iter(records(0..5)))
        .await
        .unwrap();
    // A batch id of its own for every attempt: a kill that lands after a batch's commit
    // (a fast machine) leaves it applied, and the next attempt must still reach its apply.
    let big = |n: usize| header(&format!("big-{n}"), DELTA, "2025-01", "2025-01-01");
    let large = || tokio_stream::iter(records(1_000..1_000 + LARGE));

    /// When to kill: after this many records are sent, or this long after the hub says it
    /// is applying the batch.
    enum Moment {
        Sent(usize),
        Applying(Duration),
    }
    let moments = [
        Moment::Sent(LARGE as usize / 4),
        Moment::Applying(Duration::ZERO),
        Moment::Applying(Duration::from_millis(150)),
        Moment::Applying(Duration::from_millis(600)),
    ];
    for (n, moment) in moments.iter().enumerate() {
        let labour = hub.client("DOLISA").await;
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counting = {
            let sent = sent.clone();
            tokio_stream::StreamExt::map(large(), move |r| {
                sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                r
            })
        };
        let push = tokio::spawn(async move { labour.push_batch(big(n), counting).await });
        match moment {
            Moment::Sent(count) => {
                while sent.load(std::sync::atomic::Ordering::Relaxed) < *count && !push.is_finished() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            Moment::Applying(after) => {
                assert!(
                    hub.wait_for_log("applying household batch", Duration::from_secs(300)).await,
                    "the hub never said it was applying the batch:\n{}",
                    hub.log()
                );
                tokio::time::sleep(*after).await;
            }
        }
        hub.kill().await;
        let outcome = push.await.unwrap();

        hub = match ServeProcess::start(&tls, &db.url(), &log(n + 1), &[]).await {
            Ok(hub) => hub,
            Err(why) => panic!("kill {n}: the hub does not start again: {why}"),
        };
        check_after_restart(&db, &[5, 5 + i64::from(LARGE)]).await;
        if outcome.is_ok() {
            // Answered before the kill: then it was kept.
            assert_eq!(db.count(ON_LIST).await.unwrap(), 5 + i64::from(LARGE), "kill {n}: answered OK, not kept");
        }
    }
    let labour = hub.client("DOLISA").await;
    let receipt = labour.push_batch(big(moments.len()), large()).await.unwrap();
    assert_eq!(receipt.records, i64::from(LARGE));
    assert!(!receipt.replayed, "no kill let the batch through");
    assert_eq!(db.count(ON_LIST).await.unwrap(), 5 + i64::from(LARGE));
    assert!(hub.terminate().await.success());
    check_after_restart(&db, &[5 + i64::from(LARGE)]).await;
}

async fn settled(client: &Client, update_id: &str) -> proto::MonthlyReconciliation {
    for _ in 0..600 {
        let list = client.get_reconciliation("", update_id).await.unwrap();
        if !list.stale {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("list {update_id} stayed stale");
}

async fn lists_of(client: &Client, period: &str) -> Vec<proto::MonthlyReconciliation> {
    client
        .list_reconciliations(proto::ListReconciliationsRequest { period: period.into(), ..Default::default() })
        .await
        .unwrap()
        .reconciliations
}

/// A monthly list whose hub was killed while receiving it never shows and never blocks its
/// period; one killed after the last line is reconciled on start, or gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monthly_list_cut_off_by_a_kill_never_blocks_its_period() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    telesub_server::pki::init(&tls, &["VNPT:OPERATOR".parse().unwrap(), "DOICT:ICT".parse().unwrap()]).unwrap();
    let log = |n: usize| dir.path().join(format!("hub-{n}.log"));
    const LINES: u32 = 20_000;

    for (n, (period, after_last_line)) in [("2025-03", false), ("2025-04", true)].into_iter().enumerate() {
        let mut hub = ServeProcess::start(&tls, &db.url(), &log(2 * n), &[]).await.unwrap();
        let vnpt = hub.client("VNPT").await;
        let update = format!("cut-{n}");
        // Mid-stream, the test feeds half the lines and holds the stream open: the kill lands
        // while the list is being received, however fast the hub is.
        let (to_hub, lines) = gate();
        let fed = if after_last_line { LINES } else { LINES / 2 };
        for n in 1..=fed {
            to_hub.send(line(n)).await.unwrap();
        }
        let open = (!after_last_line).then_some(to_hub);
        let submit = tokio::spawn({
            let header = in_period(period, &update);
            async move { vnpt.submit_monthly_update(header, lines).await }
        });
        if after_last_line {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
            while !hub.log().contains("monthly list received") {
                assert!(!submit.is_finished(), "the list was answered before it was received:\n{}", hub.log());
                assert!(tokio::time::Instant::now() < deadline, "the hub never said it had the whole list");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        } else {
            // The hub holding the list, with its first lines.
            let received = format!("SELECT COUNT(*) FROM monthly_updates WHERE update_id = '{update}'");
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            while db.count(&received).await.unwrap_or(0) == 0 {
                assert!(!submit.is_finished(), "the list was answered while its stream was open");
                assert!(tokio::time::Instant::now() < deadline, "the hub never held the list");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        hub.kill().await;
        drop(open);
        let answered = submit.await.unwrap();
        // Killed just after the last line, the hub may have finished the list before the kill:
        // then it was kept, as answered.
        assert!(after_last_line || answered.is_err(), "answered by a hub that was killed: {answered:?}");
        let kept = answered.is_ok();

        let hub = match ServeProcess::start(&tls, &db.url(), &log(2 * n + 1), &[]).await {
            Ok(hub) => hub,
            Err(why) => panic!("the hub does not start again: {why}"),
        };
        let (vnpt, ict) = (hub.client("VNPT").await, hub.client("DOICT").await);
        // (Killed just after the last line, the list may also have been finished before the kill.)
        if !after_last_line {
            assert!(hub.log().contains("was cut off"), "the hub did not say it cleared the list:\n{}", hub.log());
        }
        let shown = lists_of(&ict, period).await;
        match vnpt.get_reconciliation("", &update).await {
            Err(Error::NotFound(_)) => {
                assert!(!kept, "a list answered before the kill is gone");
                assert!(shown.iter().all(|l| l.update_id != update), "{shown:?}");
            }
            Ok(list) => {
                assert!(after_last_line, "a list cut off halfway shows: {list:?}");
                let list = settled(&vnpt, &update).await;
                assert_eq!(list.status(), proto::ReconciliationStatus::Reconciled, "{list:?}");
                assert_eq!(list.figures.map(|f| f.lines), Some(i64::from(LINES)));
            }
            Err(e) => panic!("{e:?}"),
        }
        for list in &shown {
            assert_ne!(
                list.status(),
                proto::ReconciliationStatus::Received,
                "a list left half received shows: {list:?}"
            );
        }
        // The period is free: a list under another update id goes through (replacing the
        // resumed one, if there is one).
        let replaces = !shown.is_empty();
        let next = proto::MonthlyUpdateHeader { replaces_earlier: replaces, ..in_period(period, &format!("next-{n}")) };
        let list = vnpt.submit_monthly_update(next, tokio_stream::iter((1..=10).map(line))).await.unwrap();
        assert_eq!(list.status(), proto::ReconciliationStatus::Reconciled);
        let mut hub = hub;
        hub.kill().await;
    }
}

/// A small filesystem of the test's own (tmpfs), so that the database's disk can fill up.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` (with a loud line) where mounting is not allowed: not root, or no tmpfs.
    fn mount(mib: u32) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("!!! WARNING: cannot mount a tmpfs here (not root?): the disk-full test does not run");
            return None;
        }
        Some(Self { dir })
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

fn is_refusal_for_room(err: &Error) -> bool {
    matches!(err.code(), Some(Code::Unavailable | Code::ResourceExhausted))
}

/// SQLite on a disk that fills up and empties again, under the same running hub: while
/// space is short, writes fail with UNAVAILABLE (or RESOURCE_EXHAUSTED) and nothing is
/// half-written, no call is answered OK without its record and decision; once space is back,
/// the next write succeeds without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_fills_up_and_empties_again() {
    let Some(disk) = SmallDisk::mount(48) else { return };
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    telesub_server::pki::init(&tls, &["DOLISA:LABOUR".parse().unwrap(), "VNPT:OPERATOR".parse().unwrap()]).unwrap();
    let database = format!("sqlite://{}", disk.path().join("hub.db").display());
    let hub = ServeProcess::start(&tls, &database, &dir.path().join("hub.log"), &[]).await.unwrap();
    let (labour, vnpt) = (hub.client("DOLISA").await, hub.client("VNPT").await);
    labour
        .push_batch(header("first", DELTA, "2024-12", "2024-12-01"), tokio_stream::iter(records(0..100)))
        .await
        .unwrap();
    // Most of the room goes to a file the test deletes later.
    let used = disk.path().join("hub.db").metadata().unwrap().len() + 4 * 1024 * 1024;
    let ballast = disk.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; (40 * 1024 * 1024 - used) as usize]).unwrap();

    // Batches until the disk is full.
    let mut full = None;
    let mut applied = 0;
    for n in 0..200u32 {
        let batch = header(&format!("fill-{n}"), DELTA, "2025-01", "2025-01-01");
        let from = 1_000 + n * 2_000;
        match labour.push_batch(batch, tokio_stream::iter(records(from..from + 2_000))).await {
            Ok(_) => applied += 1,
            Err(e) => {
                full = Some(e);
                break;
            }
        }
    }
    let err = full.expect("the disk filled up");
    assert!(is_refusal_for_room(&err), "a full disk is not a fault of the hub's: {err:?}");
    assert!(err.request_id().is_some(), "{err:?}");
    let on_list = |applied: i64| 100 + applied * 2_000;
    // The failed batch gave its staged records' room back: take every byte left, so that the
    // calls below find none (the hub may still write into room its files hold already).
    let rest = disk.path().join("rest");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&rest).unwrap();
        while file.write_all(&[0u8; 4096]).is_ok() {}
        let _ = file.sync_all();
    }
    // Calls that write go on failing honestly: never OK without their record.
    let key = proto::check_eligibility_request::Key::HouseholdCode("HH-0000001".into());
    let mut refused = 0;
    let mut answered = Vec::new();
    for _ in 0..300 {
        if refused == 3 {
            break;
        }
        match vnpt.check_eligibility(key.clone(), "2025-02-01").await {
            // Answered: then its decision is kept (read back once there is room for the
            // reading call's own record).
            Ok(decision) => answered.push(decision.decision_id),
            Err(e) => {
                assert!(is_refusal_for_room(&e), "{e:?}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "the disk is full, yet every decision was stored");

    // Room again: the next write succeeds on the same hub.
    std::fs::remove_file(&ballast).unwrap();
    std::fs::remove_file(&rest).unwrap();
    let batch = header("after", DELTA, "2025-02", "2025-02-01");
    let receipt = labour.push_batch(batch, tokio_stream::iter(records(900_000..900_010))).await.unwrap();
    assert_eq!(receipt.added, 10);
    let decision = vnpt.check_eligibility(key, "2025-02-01").await.unwrap();
    vnpt.get_decision(&decision.decision_id).await.unwrap();
    for id in answered {
        vnpt.get_decision(&id).await.expect("a decision answered while the disk was full is stored");
    }
    vnpt.who_am_i().await.unwrap();

    // Nothing half-written: the register holds whole batches only, and the trail is intact.
    let db =
        TestDb::Sqlite { _dir: std::sync::Arc::new(tempfile::tempdir().unwrap()), path: disk.path().join("hub.db") };
    check_after_restart(&db, &[on_list(applied) + 10]).await;
    drop(hub);
}

/// What one call of the traffic during an outage got.
#[derive(Debug)]
enum Answer {
    /// Answered: a decision id, or the request id of a `WhoAmI`.
    Kept(String),
    /// Refused as it must be, after this long, with this request id.
    Unavailable(Duration, String),
    /// Anything else.
    Wrong(Error),
}

/// For the PostgreSQL pass (`None` on SQLite's, or where no cluster can be started): a real
/// `telesub serve` with `members` (`CODE:ROLE`) and `args`, on a PostgreSQL cluster of its own
/// that the test may stop; the folder holds its certificates (`tls`) and its log.
async fn hub_on_its_own_cluster(
    members: &[&str],
    args: &[&str],
) -> Option<(telesub_tests::PgCluster, tempfile::TempDir, ServeProcess)> {
    std::env::var(telesub_tests::POSTGRES_ENV).ok()?;
    let cluster = telesub_tests::PgCluster::start().await?;
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    let members: Vec<_> = members.iter().map(|m| m.parse().unwrap()).collect();
    telesub_server::pki::init(&tls, &members).unwrap();
    let hub = ServeProcess::start(&tls, &cluster.url(), &dir.path().join("hub.log"), args).await.unwrap();
    Some((cluster, dir, hub))
}

/// PostgreSQL stopped under traffic and started again: calls are UNAVAILABLE within the
/// database timeout, never OK without their record and decision; health says NOT_SERVING
/// while the database is away and SERVING once it is back; the same hub serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_under_traffic_and_started_again() {
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let listen = metrics.to_string();
    let Some((mut cluster, dir, hub)) =
        hub_on_its_own_cluster(&["DOLISA:LABOUR", "VNPT:OPERATOR"], &["--metrics-listen", &listen]).await
    else {
        return;
    };
    let tls = dir.path().join("tls");
    assert_eq!(telesub_tests::plain_get(metrics, "/health/ready").await.0, 200);
    let (labour, vnpt) = (hub.client("DOLISA").await, hub.client("VNPT").await);
    labour
        .push_batch(header("start", DELTA, "2024-12", "2024-12-01"), tokio_stream::iter(records(0..200)))
        .await
        .unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut traffic = Vec::new();
    for worker in 0..4u32 {
        let (vnpt, stop) = (vnpt.clone(), stop.clone());
        traffic.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            let mut n = worker;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n = (n + 7) % 200;
                let started = std::time::Instant::now();
                let outcome = if n % 2 == 0 {
                    let key = proto::check_eligibility_request::Key::HouseholdCode(format!("HH-{n:07}"));
                    vnpt.check_eligibility(key, "2025-01-15").await.map(|d| d.decision_id)
                } else {
                    vnpt.who_am_i().await.map(|me| format!("request {}", me.request_id))
                };
                answers.push(match outcome {
                    Ok(kept) => Answer::Kept(kept),
                    Err(e) if e.code() == Some(Code::Unavailable) => {
                        Answer::Unavailable(started.elapsed(), e.request_id().unwrap_or_default().to_owned())
                    }
                    Err(e) => Answer::Wrong(e),
                });
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answers
        }));
    }
    let health = |client: Client| async move {
        let started = std::time::Instant::now();
        let serving = client.health().await;
        (serving, started.elapsed())
    };

    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.stop().await;
    // Health follows within a few seconds, and answers at once.
    let mut not_serving = false;
    for _ in 0..50 {
        let (serving, took) = health(vnpt.clone()).await;
        assert!(took < Duration::from_secs(1), "health took {took:?}");
        if serving.as_ref().is_ok_and(|s| !s) {
            not_serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(not_serving, "health still says SERVING with the database stopped");
    // The orchestrator's view: alive, not ready.
    assert_eq!(telesub_tests::plain_get(metrics, "/health/live").await.0, 200);
    let (status, said) = telesub_tests::plain_get(metrics, "/health/ready").await;
    assert_eq!(status, 503, "{said}");
    let (_, scrape) = telesub_tests::plain_get(metrics, "/metrics").await;
    assert!(scrape.lines().any(|l| l == "telesub_database_up 0"), "{scrape}");
    // A console page while the database is away: refused as unavailable, never a page
    // without its record.
    let dir = telesub_server::pki::PkiDir::new(&tls);
    let page = telesub_tests::console::Browser::connect_to(hub.addr, &dir, Some("VNPT"))
        .await
        .unwrap()
        .get("/console/reconciliation?period=2025-03")
        .await
        .unwrap();
    assert_eq!(page.status, 503, "a console page with the database away: {}", page.body);
    assert!(page.body.contains("Hệ thống tạm thời không phục vụ được"), "{}", page.body);
    tokio::time::sleep(Duration::from_secs(4)).await;
    cluster.start_again().await;
    let mut serving_again = false;
    for _ in 0..100 {
        if health(vnpt.clone()).await.0.is_ok_and(|s| s) {
            serving_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(serving_again, "health does not say SERVING once the database is back");
    assert_eq!(telesub_tests::plain_get(metrics, "/health/ready").await.0, 200);
    let page = telesub_tests::console::Browser::connect_to(hub.addr, &dir, Some("VNPT"))
        .await
        .unwrap()
        .get("/console/reconciliation?period=2025-03")
        .await
        .unwrap();
    assert_eq!(page.status, 200, "the console once the database is back: {}", page.body);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let mut answers = Vec::new();
    for t in traffic {
        answers.extend(t.await.unwrap());
    }
    for answer in &answers {
        if let Answer::Wrong(e) = answer {
            let id = e.request_id().unwrap_or("-");
            let log: Vec<String> = hub.log().lines().filter(|l| l.contains(id)).map(str::to_owned).collect();
            panic!("during the outage: {e:?}\n{}", log.join("\n"));
        }
    }
    let refused: Vec<(Duration, &str)> = answers
        .iter()
        .filter_map(|a| if let Answer::Unavailable(d, id) = a { Some((*d, id.as_str())) } else { None })
        .collect();
    assert!(!refused.is_empty(), "no call was refused during the outage: {answers:?}");
    let (slowest, id) = refused.iter().max().copied().unwrap_or_default();
    // The database timeout is 2 s; a call waits on the database once at most.
    let log: Vec<String> = hub.log().lines().filter(|l| !id.is_empty() && l.contains(id)).map(str::to_owned).collect();
    assert!(
        slowest < Duration::from_millis(3_000),
        "a refusal took {slowest:?}, past the database timeout:\n{}",
        log.join("\n")
    );
    // Every answered call's record is kept: its decision can be read, its audit record exists.
    let mut c = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&cluster.url()).await.unwrap()
    };
    for answer in &answers {
        if let Answer::Kept(kept) = answer {
            match kept.strip_prefix("request ") {
                Some(request_id) => {
                    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE request_id = $1")
                        .bind(request_id)
                        .fetch_one(&mut c)
                        .await
                        .unwrap();
                    assert_eq!(n, 1, "WhoAmI {request_id} was answered OK without its audit record");
                }
                None => {
                    vnpt.get_decision(kept).await.unwrap_or_else(|e| panic!("decision {kept} was not kept: {e:?}"));
                }
            }
        }
    }
    // The same hub serves on.
    vnpt.who_am_i().await.unwrap();
    let mut hub = hub;
    assert!(hub.terminate().await.success());
}

/// PostgreSQL stopped while an operator's feed catches up over many pages: the stream ends with
/// UNAVAILABLE after the pages it had in hand, in order and with none missing, never a
/// heartbeat saying the reader is caught up; once the database is back, the reader resumes
/// from the last cursor it holds and receives every other event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_while_a_feed_catches_up() {
    let Some((mut cluster, _dir, hub)) = hub_on_its_own_cluster(&["VNPT:OPERATOR"], &[]).await else { return };
    let vnpt = hub.client("VNPT").await;
    // A hundred pages of events (more than the connection holds for a reader that does not
    // read), written straight into the table: the feed reads it as it is.
    let written = 100 * telesub_server::domain::feed::PAGE as usize;
    {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&cluster.url()).await.unwrap();
        sqlx::query(
            "INSERT INTO feed_events (operator, enrollment_id, household_code, kind, effective_date, recorded_at) \
             SELECT 'VNPT', i, 'HH-' || i, 'DETAILS_CHANGED', '2025-02-01', '2025-02-01T00:00:00Z' \
             FROM generate_series(1, $1::bigint) AS i",
        )
        .bind(written as i64)
        .execute(&mut c)
        .await
        .unwrap();
    }
    // Reads a stream from the cursor until it ends or says the reader is caught up (stopping
    // the cluster, if given, after the first message): the error it ended with, if any.
    let mut seen: Vec<String> = Vec::new();
    let mut cursor = String::new();
    let read = async |seen: &mut Vec<String>, cursor: &mut String, mut stop: Option<&mut telesub_tests::PgCluster>| {
        use tokio_stream::StreamExt;
        let mut feed = Box::pin(vnpt.watch_changes(cursor, 60).await.unwrap());
        loop {
            let message = match tokio::time::timeout(Duration::from_secs(30), feed.next()).await.expect("an answer") {
                Some(Ok(message)) => message,
                Some(Err(e)) => return Some(e),
                None => panic!("the stream ended without an error after {} of {written} events", seen.len()),
            };
            if message.events.is_empty() {
                assert_eq!(seen.len(), written, "a heartbeat with events left unread: {message:?}");
                return None;
            }
            seen.extend(message.events.iter().map(|e| e.household_code.clone()));
            *cursor = message.events.last().unwrap().cursor.clone();
            if let Some(cluster) = stop.take() {
                cluster.stop().await;
            }
        }
    };
    let ended = read(&mut seen, &mut cursor, Some(&mut cluster)).await.expect("the stream ends with an error");
    assert_eq!(ended.code(), Some(Code::Unavailable), "{ended:?}");
    assert!(seen.len() < written, "the database stopped before the reader caught up");
    cluster.start_again().await;
    let mut caught_up = false;
    for _ in 0..100 {
        match read(&mut seen, &mut cursor, None).await {
            None => {
                caught_up = true;
                break;
            }
            Some(e) if e.code() == Some(Code::Unavailable) => tokio::time::sleep(Duration::from_millis(200)).await,
            Some(e) => panic!("{e:?}"),
        }
    }
    assert!(caught_up, "the feed serves again once the database is back");
    let expected: Vec<String> = (1..=written).map(|i| format!("HH-{i}")).collect();
    assert!(seen == expected, "{} events seen, not each once in order", seen.len());
    let mut hub = hub;
    assert!(hub.terminate().await.success());
}
