//! The storage contract, checked on the backend under test (SQLite, or PostgreSQL when
//! `TELESUB_TEST_POSTGRES_URL` is set). Both backends must pass the same assertions.

use std::sync::Arc;

use telesub_server::{
    audit::{self, AuditEntry, GENESIS_HASH},
    domain::member::{DisplayName, MemberFilter, MemberStatus, NewMember, OrgCode, Role, UnitCode},
    storage::{MemberWrite, PortError, Store},
};
use telesub_tests::TestDb;
use time::{OffsetDateTime, macros::datetime};

fn code(s: &str) -> OrgCode {
    OrgCode::parse(s).unwrap()
}

fn new_member(c: &str, role: Role, unit: Option<&str>) -> NewMember {
    NewMember {
        code: code(c),
        display_name: DisplayName::parse(&format!("Member {c}")).unwrap(),
        role,
        unit: unit.map(|u| UnitCode::parse(u).unwrap()),
    }
}

const AT: OffsetDateTime = datetime!(2026-03-01 08:30:15.123456 UTC);

fn entry(n: usize) -> AuditEntry {
    AuditEntry {
        at: AT + time::Duration::seconds(n as i64),
        request_id: format!("request-{n:04}"),
        org_code: (!n.is_multiple_of(3)).then(|| "VNPT".to_owned()),
        person: None,
        cert_fingerprint: Some("0f".repeat(32)),
        method: "/telesub.v1.Members/WhoAmI".to_owned(),
        outcome: "OK".to_owned(),
        detail: if n.is_multiple_of(2) { String::new() } else { "thành phố Gia Nghĩa".to_owned() },
        request_digest: "e3".repeat(32),
        attached: (!n.is_multiple_of(4)).then(|| audit::attached_digest(audit::Attachments::default())),
        decisions_call: None,
    }
}

#[tokio::test]
async fn members_round_trip_exactly() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let stored = store.insert_member(&new_member("XA24611", Role::Locality, Some("24611")), AT).await.unwrap();
    assert_eq!(stored.code, code("XA24611"));
    assert_eq!(stored.unit.as_ref().map(UnitCode::as_str), Some("24611"));
    assert_eq!(stored.status, MemberStatus::Active);
    assert_eq!((stored.created_at, stored.updated_at), (AT, AT));
    assert_eq!(store.get_member(&code("XA24611")).await.unwrap(), Some(stored));
    assert_eq!(store.get_member(&code("NOBODY")).await.unwrap(), None);
}

#[tokio::test]
async fn a_second_insert_of_a_code_is_already_exists() {
    let db = TestDb::new().await;
    let store = db.store().await;
    store.insert_member(&new_member("VNPT", Role::Operator, None), AT).await.unwrap();
    let err = store.insert_member(&new_member("VNPT", Role::Labour, None), AT).await.unwrap_err();
    assert!(matches!(err, PortError::AlreadyExists), "{err:?}");
    assert_eq!(store.get_member(&code("VNPT")).await.unwrap().unwrap().role, Role::Operator);
}

#[tokio::test]
async fn listing_pages_filters_and_attaches_certificates() {
    let db = TestDb::new().await;
    let store = db.store().await;
    for (c, role) in [("A1", Role::Operator), ("B1", Role::Labour), ("C1", Role::Operator), ("D1", Role::Ict)] {
        store.insert_member(&new_member(c, role, None), AT).await.unwrap();
    }
    store.record_certificate_use(&code("C1"), &"aa".repeat(32), AT).await.unwrap();
    store.record_certificate_use(&code("C1"), &"bb".repeat(32), AT + time::Duration::hours(1)).await.unwrap();
    store.record_certificate_use(&code("C1"), &"aa".repeat(32), AT + time::Duration::hours(2)).await.unwrap();
    store.record_certificate_use(&code("A1"), &"cc".repeat(32), AT).await.unwrap();

    let all = store.list_members(&MemberFilter::default(), None, 10).await.unwrap();
    let codes: Vec<_> = all.iter().map(|m| m.code.as_str()).collect();
    assert_eq!(codes, ["A1", "B1", "C1", "D1"]);
    let c1 = &all[2];
    assert_eq!(c1.certificates.len(), 2);
    assert_eq!(c1.certificates[0].fingerprint, "aa".repeat(32));
    assert_eq!(c1.certificates[0].first_seen, AT);
    assert_eq!(c1.certificates[0].last_seen, AT + time::Duration::hours(2));
    assert_eq!(all[0].certificates.len(), 1);
    assert!(all[1].certificates.is_empty());
    assert_eq!(store.get_member(&code("C1")).await.unwrap().unwrap().certificates, c1.certificates);

    let after_b = store.list_members(&MemberFilter::default(), Some(&code("B1")), 1).await.unwrap();
    assert_eq!(after_b.iter().map(|m| m.code.as_str()).collect::<Vec<_>>(), ["C1"]);
    assert_eq!(after_b[0].certificates.len(), 2);

    let operators = MemberFilter { role: Some(Role::Operator), status: None };
    let codes: Vec<_> =
        store.list_members(&operators, None, 10).await.unwrap().into_iter().map(|m| m.code.to_string()).collect();
    assert_eq!(codes, ["A1", "C1"]);
    let suspended = MemberFilter { role: None, status: Some(MemberStatus::Suspended) };
    assert!(store.list_members(&suspended, None, 10).await.unwrap().is_empty());
}

fn write_of(m: &telesub_server::domain::member::Member) -> MemberWrite {
    MemberWrite {
        code: m.code.clone(),
        display_name: m.display_name.clone(),
        role: m.role,
        unit: m.unit.clone(),
        status: m.status,
        status_reason: m.status_reason.clone(),
        updated_at: AT + time::Duration::days(1),
    }
}

#[tokio::test]
async fn updates_keep_one_active_ict_member() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let ict = store.insert_member(&new_member("DOICT", Role::Ict, None), AT).await.unwrap();
    let mut suspend = write_of(&ict);
    suspend.status = MemberStatus::Suspended;
    suspend.status_reason = Some("test".into());
    let err = store.update_member(&suspend).await.unwrap_err();
    assert!(matches!(err, PortError::Conflict(telesub_server::domain::ports::Conflict::LastActiveIct)), "{err:?}");
    let mut demote = write_of(&ict);
    demote.role = Role::Labour;
    assert!(matches!(store.update_member(&demote).await, Err(PortError::Conflict(_))));
    assert_eq!(store.get_member(&ict.code).await.unwrap().unwrap(), ict, "nothing changed");

    // A rename of the only ICT member is fine.
    let mut rename = write_of(&ict);
    rename.display_name = DisplayName::parse("Sở TT&TT").unwrap();
    let renamed = store.update_member(&rename).await.unwrap();
    assert_eq!(renamed.display_name.as_str(), "Sở TT&TT");
    assert_eq!(renamed.updated_at, AT + time::Duration::days(1));
    assert_eq!(renamed.created_at, AT);

    store.insert_member(&new_member("DOICT2", Role::Ict, None), AT).await.unwrap();
    let suspended = store.update_member(&suspend).await.unwrap();
    assert_eq!(suspended.status, MemberStatus::Suspended);
    assert_eq!(suspended.status_reason.as_deref(), Some("test"));

    let mut ghost = write_of(&ict);
    ghost.code = code("GHOST");
    assert!(matches!(store.update_member(&ghost).await, Err(PortError::NotFound)));
}

/// Two ICT members suspend each other at the same moment (two hubs on one PostgreSQL database,
/// or two calls on one): one of them must stay active, whichever write comes first.
#[tokio::test]
async fn two_ict_members_suspended_at_once_leave_one_active() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let active = MemberFilter { role: Some(Role::Ict), status: Some(MemberStatus::Active) };
    let mut survivor = None;
    for round in 0..25 {
        let a = store.insert_member(&new_member(&format!("ICTA{round}"), Role::Ict, None), AT).await.unwrap();
        let b = store.insert_member(&new_member(&format!("ICTB{round}"), Role::Ict, None), AT).await.unwrap();
        // The last round's survivor steps down: A and B are the only active ICT members.
        if let Some(last) = survivor.take() {
            let mut retire = write_of(&last);
            retire.role = Role::Labour;
            store.update_member(&retire).await.unwrap();
        }
        let (mut sa, mut sb) = (write_of(&a), write_of(&b));
        for s in [&mut sa, &mut sb] {
            s.status = MemberStatus::Suspended;
            s.status_reason = Some("race".into());
        }
        let (ra, rb) = tokio::join!(store.update_member(&sa), store.update_member(&sb));
        let left = store.list_members(&active, None, 10).await.unwrap();
        assert_eq!(left.len(), 1, "round {round}: {ra:?} {rb:?} left {left:?}");
        let refused = [&ra, &rb].iter().filter(|r| matches!(r, Err(PortError::Conflict(_)))).count();
        assert_eq!(refused, 1, "round {round}: exactly one suspension is refused: {ra:?} {rb:?}");
        // The survivor, as the writes' own answers tell it.
        survivor = Some(if ra.is_ok() { b.clone() } else { a.clone() });
    }
}

/// What a write returned is what the next read sees, also while other readers are busy (the
/// SQLite store reads on a pool of its own).
#[tokio::test]
async fn a_read_after_a_write_sees_it_while_others_read() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..6 {
        let (store, stop) = (store.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let all = MemberFilter { role: None, status: None };
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = store.list_members(&all, None, 5).await.unwrap();
                let _ = store.get_member(&code("NONE")).await.unwrap();
            }
        }));
    }
    let active = MemberFilter { role: Some(Role::Operator), status: Some(MemberStatus::Active) };
    for i in 0..300 {
        let m = store.insert_member(&new_member(&format!("OP{i:04}"), Role::Operator, None), AT).await.unwrap();
        assert_eq!(store.get_member(&m.code).await.unwrap().as_ref(), Some(&m), "write {i} read back by code");
        let listed = store.list_members(&active, None, 1000).await.unwrap();
        assert_eq!(listed.len(), i + 1, "write {i} listed");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
}

#[tokio::test]
async fn the_schema_rejects_a_locality_without_a_unit() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let err = store.insert_member(&new_member("XA", Role::Locality, None), AT).await.unwrap_err();
    assert!(matches!(err, PortError::Fault(_)), "{err:?}");
    assert!(!store.has_ict_member().await.unwrap());
    store.insert_member(&new_member("DOICT", Role::Ict, None), AT).await.unwrap();
    assert!(store.has_ict_member().await.unwrap());
}

#[tokio::test]
async fn audit_records_round_trip_and_chain() {
    let db = TestDb::new().await;
    let store = db.store().await;
    assert_eq!(store.audit_head().await.unwrap(), (0, GENESIS_HASH.to_owned()));
    let entries: Vec<AuditEntry> = (1..=150).map(entry).collect();
    let mut answered = store.append_audit(&entries[..100], &[], &[]).await.unwrap();
    answered.extend(store.append_audit(&entries[100..], &[], &[]).await.unwrap());

    let stored = store.audit_records(0, 1_000).await.unwrap();
    let kept: Vec<(i64, String)> = stored.iter().map(|r| (r.seq, r.hash.clone())).collect();
    assert_eq!(answered, kept, "each entry's number and hash are answered");
    assert_eq!(stored.len(), 150);
    assert_eq!(stored.iter().map(|r| r.entry.clone()).collect::<Vec<_>>(), entries, "every field round-trips");
    let expected = audit::link(0, GENESIS_HASH, &entries);
    assert_eq!(stored, expected, "the store chains exactly as the hub computes");
    assert_eq!(store.audit_head().await.unwrap(), (150, expected[149].hash.clone()));
    let page = store.audit_records(140, 5).await.unwrap();
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), [141, 142, 143, 144, 145]);
    assert_eq!(audit::verify(store.as_ref()).await.unwrap().first_break, None);
}

/// A trail written before the tree was kept (no tree nodes, no right edge at the head): the next
/// append builds the tree from every record first, then extends it, so that the head's edge and
/// the stored nodes are those of the whole trail.
#[tokio::test]
async fn an_append_to_a_trail_kept_before_its_tree_builds_the_tree_first() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let entries: Vec<AuditEntry> = (1..=30).map(entry).collect();
    store.append_audit(&entries[..20], &[], &[]).await.unwrap();
    crate::audit::disable_guard(&db).await;
    db.execute("DELETE FROM audit_tree").await.unwrap();
    db.execute("UPDATE audit_head SET tree = NULL").await.unwrap();
    store.append_audit(&entries[20..], &[], &[]).await.unwrap();

    let records = store.audit_records(0, 1_000).await.unwrap();
    assert_eq!(records, audit::link(0, GENESIS_HASH, &entries), "the chain goes on unbroken");
    let mut range = audit::merkle::CompactRange::default();
    let mut expected: Vec<(i64, i64, String)> = audit::extend_tree(&mut range, &records)
        .into_iter()
        .map(|(level, idx, hash)| (i64::from(level), idx as i64, hash))
        .collect();
    expected.sort();
    let (seq, hash, edge) = store.audit_edge().await.unwrap();
    assert_eq!((seq, hash, edge), (30, records[29].hash.clone(), Some(range.encode())), "the head's edge");
    let mut stored = store.audit_nodes(0, 0, 1).await.unwrap().into_iter().map(|(i, h)| (0, i, h)).collect::<Vec<_>>();
    stored.extend(store.audit_nodes_all((0, 0), 10_000).await.unwrap());
    assert_eq!(stored, expected, "every node of the whole trail is stored");
}

/// Several hubs share one PostgreSQL database (or one SQLite file): their appends interleave
/// into a single unbroken chain.
#[tokio::test]
async fn concurrent_appenders_extend_one_chain() {
    let db = TestDb::new().await;
    let stores: Vec<Arc<dyn Store>> = vec![db.store().await, db.store().await, db.store().await];
    let mut tasks = Vec::new();
    for (i, store) in stores.iter().enumerate() {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for batch in 0..10 {
                let entries: Vec<AuditEntry> = (0..7).map(|k| entry(i * 1_000 + batch * 10 + k)).collect();
                store.append_audit(&entries, &[], &[]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let report = audit::verify(stores[0].as_ref()).await.unwrap();
    assert_eq!(report.first_break, None);
    assert_eq!(report.records, 3 * 10 * 7);
}

/// `verify` reads a long run of checkpoints a page at a time (a hub signs one every few seconds
/// of activity) and still checks each: its signature, and its root against the records.
#[tokio::test]
async fn verify_checks_every_checkpoint_of_a_long_run() {
    use telesub_server::audit::{
        AuditTree, VerifyOptions,
        checkpoint::{DEFAULT_ORIGIN, SigningKey, generate_pem},
    };
    let db = TestDb::new().await;
    let store = db.store().await;
    let key = Arc::new(SigningKey::from_pem(&generate_pem(), DEFAULT_ORIGIN).unwrap());
    let tree = AuditTree::new(store.clone(), Some(key.clone()), DEFAULT_ORIGIN);
    for n in 0..1_100 {
        store.append_audit(&[entry(n)], &[], &[]).await.unwrap();
        tree.sign_checkpoint().await.unwrap();
    }
    let options = VerifyOptions { key: Some(key.verifier()), kept: Vec::new() };
    let report = audit::verify_with(store.as_ref(), &options).await.unwrap();
    assert_eq!((report.first_break, report.checkpoints), (None, 1_100));

    // A checkpoint of the second page given another root: its row no longer says what its
    // signed note says.
    crate::audit::disable_guard(&db).await;
    let other = "ab".repeat(32);
    db.execute(&format!("UPDATE audit_checkpoints SET root_hash = '{other}' WHERE tree_size = 1050")).await.unwrap();
    let report = audit::verify_with(store.as_ref(), &options).await.unwrap();
    let brk = report.first_break.expect("the changed checkpoint is caught");
    assert_eq!(brk.seq(), 1_050, "{brk}");
}

#[tokio::test]
async fn migrations_run_once_and_again_without_harm() {
    let db = TestDb::new().await;
    let store = db.store().await;
    store.insert_member(&new_member("DOICT", Role::Ict, None), AT).await.unwrap();
    store.migrate().await.unwrap();
    let again = db.store().await;
    assert!(again.get_member(&code("DOICT")).await.unwrap().is_some());
    assert_eq!(again.backend(), if db.is_postgres() { "postgres" } else { "sqlite" });
}

/// Large reads (here the statistics' count of the register) asked for at once by more callers
/// than there are connections for them wait their turn, however long the database timeout is
/// short: none is refused because the others held the connections. (SQLite keeps connections
/// of its own for large reads; PostgreSQL gives large work turns at its pool.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_reads_asked_at_once_wait_their_turn() {
    use telesub_server::storage::StoreOptions;
    const READS: usize = 32;
    let db = TestDb::new().await;
    let options = StoreOptions {
        max_connections: 4,
        acquire_timeout: std::time::Duration::from_millis(100),
        write_wait: std::time::Duration::from_secs(60),
    };
    let store = telesub_server::storage::open(&db.url(), &options).await.unwrap();
    store.seed_units(&telesub_server::domain::units::reference_units().unwrap()).await.unwrap();
    telesub_tests::load_generated(store.as_ref(), 11, 20_000, time::macros::date!(2025 - 01 - 01)).await;
    let (day, before) = (time::macros::date!(2025 - 03 - 01), time::macros::date!(2025 - 02 - 01));
    let reads: Vec<_> = (0..READS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.household_counts(day, before, None).await })
        })
        .collect();
    let mut answers = Vec::new();
    for read in reads {
        answers.push(read.await.unwrap().map_err(|e| e.to_string()));
    }
    let refused: Vec<&String> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    assert!(refused.is_empty(), "{} of {READS} large reads refused, first: {}", refused.len(), refused[0]);
    let first = format!("{:?}", answers[0]);
    assert!(answers.iter().all(|a| format!("{a:?}") == first), "every read counts the same");
}
