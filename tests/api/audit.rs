//! The audit trail: one record per call with what the hub knew of it, chained so that any
//! change to a stored record is found.

use telesub_client::proto;
use telesub_server::audit::{self, ChainBreak};
use telesub_tests::{TestApp, fingerprint_of, read, sha256_hex};

#[tokio::test]
async fn each_call_leaves_a_record_with_its_request_digest() {
    let app = TestApp::spawn().await;
    let me = app.client("DOLISA").await.who_am_i().await.unwrap();
    let record = app.audit_record(&me.request_id).await;
    assert_eq!(record.entry.method, "/telesub.v1.Members/WhoAmI");
    assert_eq!(record.entry.outcome, "OK");
    assert_eq!(record.entry.detail, "");
    assert_eq!(record.entry.org_code.as_deref(), Some("DOLISA"));
    let fingerprint = fingerprint_of(&read(app.dir().client_cert("DOLISA")));
    assert_eq!(record.entry.cert_fingerprint.as_deref(), Some(fingerprint.as_str()));
    // An empty WhoAmIRequest travels as one gRPC frame: no compression, length 0.
    assert_eq!(record.entry.request_digest, sha256_hex(&[0, 0, 0, 0, 0]));
    let age = time::OffsetDateTime::now_utc() - record.entry.at;
    assert!(age.whole_seconds() < 60, "recorded at {}", record.entry.at);
}

#[tokio::test]
async fn failed_calls_are_recorded_with_their_outcome() {
    let app = TestApp::spawn().await;
    let ict = app.client("DOICT").await;
    let err = ict.suspend_member("NOBODY", "no such member").await.unwrap_err();
    let record = app.audit_record(err.request_id().unwrap()).await;
    assert_eq!(record.entry.outcome, "NOT_FOUND");
    assert!(record.entry.detail.contains("NOBODY"), "{}", record.entry.detail);
    // The digest covers the request the hub read: code and reason.
    let request = proto::SuspendMemberRequest { code: "NOBODY".into(), reason: "no such member".into() };
    let body = prost::Message::encode_to_vec(&request);
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    assert_eq!(record.entry.request_digest, sha256_hex(&frame));
}

#[tokio::test]
async fn the_chain_of_many_concurrent_calls_verifies() {
    let app = TestApp::spawn().await;
    let mut calls = Vec::new();
    for org in ["DOICT", "DOLISA", "VNPT", "VIETTEL"] {
        let client = app.client(org).await;
        calls.push(tokio::spawn(async move {
            for _ in 0..25 {
                client.who_am_i().await.unwrap();
            }
        }));
    }
    for call in calls {
        call.await.unwrap();
    }
    let report = audit::verify(app.store.as_ref()).await.unwrap();
    assert_eq!(report.first_break, None);
    assert_eq!(report.records, 100);
    let records = app.audit().await;
    let seqs: Vec<i64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
}

#[tokio::test]
async fn the_store_refuses_to_change_or_remove_records() {
    let app = TestApp::spawn().await;
    app.client("DOICT").await.who_am_i().await.unwrap();
    let change = app.db.execute("UPDATE audit_log SET outcome = 'PERMISSION_DENIED' WHERE seq = 1").await;
    assert!(change.unwrap_err().to_string().contains("append-only"));
    let remove = app.db.execute("DELETE FROM audit_log WHERE seq = 1").await;
    assert!(remove.unwrap_err().to_string().contains("append-only"));
    assert_eq!(audit::verify(app.store.as_ref()).await.unwrap().first_break, None);
}

/// Disables the append-only triggers, as someone with full database access could.
pub(crate) async fn disable_guard(db: &telesub_tests::TestDb) {
    let tables = telesub_server::storage::audit_trail::GUARDED;
    for table in tables {
        let sql = if db.is_postgres() {
            format!("ALTER TABLE {table} DISABLE TRIGGER USER")
        } else {
            format!("DROP TRIGGER IF EXISTS {table}_no_update; DROP TRIGGER IF EXISTS {table}_no_delete")
        };
        db.execute(&sql).await.expect("disable the guard");
    }
}

#[tokio::test]
async fn tampering_is_found_at_the_first_changed_record() {
    let app = TestApp::spawn().await;
    let client = app.client("VNPT").await;
    for _ in 0..6 {
        client.who_am_i().await.unwrap();
    }
    assert_eq!(audit::verify(app.store.as_ref()).await.unwrap().first_break, None);
    disable_guard(&app.db).await;

    // A changed outcome.
    app.db.execute("UPDATE audit_log SET outcome = 'PERMISSION_DENIED' WHERE seq = 3").await.unwrap();
    let report = audit::verify(app.store.as_ref()).await.unwrap();
    assert_eq!(report.first_break, Some(ChainBreak::Content { seq: 3 }));
    assert_eq!(report.records, 2);
    app.db.execute("UPDATE audit_log SET outcome = 'OK' WHERE seq = 3").await.unwrap();
    assert_eq!(audit::verify(app.store.as_ref()).await.unwrap().first_break, None);

    // A removed record.
    app.db.execute("DELETE FROM audit_log WHERE seq = 5").await.unwrap();
    let report = audit::verify(app.store.as_ref()).await.unwrap();
    assert_eq!(report.first_break, Some(ChainBreak::Gap { expected: 5, found: 6 }));

    // A removed tail.
    app.db.execute("DELETE FROM audit_log WHERE seq >= 5").await.unwrap();
    let report = audit::verify(app.store.as_ref()).await.unwrap();
    assert_eq!(report.first_break, Some(ChainBreak::Head { head_seq: 6, last_seq: 4 }));
}
