//! The audit reader through the API: ICT queries the trail, verifies the chain, and exports a
//! time range that an outside auditor checks without the hub's code.

use telesub_client::{Client, Code, proto};
use telesub_tests::TestApp;

use crate::audit::disable_guard;

fn ts(t: time::OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.unix_timestamp(), nanos: t.nanosecond() as i32 }
}

async fn all(client: &Client, query: proto::QueryAuditRequest) -> Vec<proto::AuditRecord> {
    let mut out = Vec::new();
    let mut query = proto::QueryAuditRequest { page_size: 2, ..query };
    loop {
        let page = client.query_audit(query.clone()).await.unwrap();
        out.extend(page.records);
        if page.next_page_token.is_empty() {
            return out;
        }
        query.page_token = page.next_page_token;
    }
}

/// The chain hash as the contract documents it, written here apart from the hub's code: the
/// last field is the attached digest, which a `telesub-audit-v1` record (empty) leaves out.
fn chain_hash(prev: &str, seq: i64, micros: i128, fields: [&str; 8]) -> String {
    let bytes = record_bytes(prev, seq, micros, fields);
    ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A record's canonical bytes, as the README describes them.
pub(crate) fn record_bytes(prev: &str, seq: i64, micros: i128, fields: [&str; 8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut field = |b: &[u8]| {
        bytes.extend_from_slice(&(b.len() as u64).to_be_bytes());
        bytes.extend_from_slice(b);
    };
    let v2 = !fields[7].is_empty();
    field(if v2 { b"telesub-audit-v2" } else { b"telesub-audit-v1" });
    field(prev.as_bytes());
    field(&seq.to_be_bytes());
    field(&micros.to_be_bytes());
    for f in &fields[..if v2 { 8 } else { 7 }] {
        field(f.as_bytes());
    }
    bytes
}

/// `2026-11-26T11:38:14.258760Z` as microseconds since 1970.
fn micros(text: &str) -> i128 {
    let format = time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::parse(text, &format).unwrap().unix_timestamp_nanos() / 1_000
}

#[tokio::test]
async fn ict_finds_who_did_what_and_the_chain_checks_inside_and_outside_the_hub() {
    let app = TestApp::spawn().await;
    let (ict, vnpt, labour) = (app.client("DOICT").await, app.client("VNPT").await, app.client("DOLISA").await);
    ict.who_am_i().await.unwrap(); // a record before the exported range
    let started = time::OffsetDateTime::now_utc();
    vnpt.who_am_i().await.unwrap();
    let refused = vnpt.list_members(proto::ListMembersRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), Some(Code::PermissionDenied));
    vnpt.check_citizen("067080000001", "").await.unwrap();
    labour.who_am_i().await.unwrap();
    let middle = time::OffsetDateTime::now_utc();
    vnpt.who_am_i().await.unwrap();

    let by_vnpt = all(&ict, proto::QueryAuditRequest { caller: "VNPT".into(), ..Default::default() }).await;
    let methods: Vec<&str> = by_vnpt.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(
        methods,
        [
            "/telesub.v1.Members/WhoAmI",
            "/telesub.v1.Members/ListMembers",
            "/telesub.v1.Eligibility/CheckEligibility",
            "/telesub.v1.Members/WhoAmI"
        ]
    );
    assert!(by_vnpt.windows(2).all(|w| w[0].seq < w[1].seq && w[1].prev_hash.len() == 64));
    let denied =
        all(&ict, proto::QueryAuditRequest { outcome: "PERMISSION_DENIED".into(), ..Default::default() }).await;
    assert_eq!(denied.len(), 1);
    assert_eq!((denied[0].caller.as_str(), denied[0].request_id.as_str()), ("VNPT", refused.request_id().unwrap()));
    let checks = all(&ict, proto::QueryAuditRequest { method: "Eligibility".into(), ..Default::default() }).await;
    assert_eq!(checks.len(), 1);
    let exact =
        all(&ict, proto::QueryAuditRequest { method: "Eligibility/CheckEligibility".into(), ..Default::default() })
            .await;
    assert_eq!(exact, checks);
    let window =
        all(&ict, proto::QueryAuditRequest { from: Some(ts(started)), until: Some(ts(middle)), ..Default::default() })
            .await;
    assert_eq!(window.len(), 4, "{window:?}");
    let later =
        all(&ict, proto::QueryAuditRequest { from: Some(ts(middle)), caller: "VNPT".into(), ..Default::default() })
            .await;
    assert_eq!(later.len(), 1);

    // Bad queries name their fields; only ICT reads the trail.
    let err = ict
        .query_audit(proto::QueryAuditRequest {
            caller: "bad code".into(),
            method: "a/b/c".into(),
            outcome: "NOPE".into(),
            from: Some(ts(middle)),
            until: Some(ts(started)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let fields: Vec<&str> = err.violations().iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["caller", "method", "outcome", "until"], "{err}");
    for outsider in [&vnpt, &labour] {
        let err = outsider.query_audit(proto::QueryAuditRequest::default()).await.unwrap_err();
        assert_eq!(err.code(), Some(Code::PermissionDenied));
        assert_eq!(outsider.verify_audit().await.unwrap_err().code(), Some(Code::PermissionDenied));
    }

    // The whole chain checks on the hub.
    let report = ict.verify_audit().await.unwrap();
    assert!(report.intact, "{report:?}");
    assert!(report.records >= 10, "{report:?}");

    // The export of a time range checks without the hub's code: every record's hash from its
    // fields and the hash before it, starting from the record before the range.
    // For a script: without the byte-order mark spreadsheet programs need.
    let request = proto::ExportAuditRequest {
        from: Some(ts(started)),
        until: None,
        with_proof: true,
        without_byte_order_mark: true,
    };
    let mut files = ict.export_audit_files(request).await.unwrap().into_iter();
    let (file, proof) = (files.next().unwrap(), files.next().expect("the proof follows the CSV"));
    assert!(file.file_name.ends_with(".csv"), "{}", file.file_name);
    assert_eq!(proof.file_name, format!("{}.proof", file.file_name));
    let text = String::from_utf8(file.data).unwrap();
    let mut rows = text.split("\r\n").filter(|l| !l.is_empty());
    assert_eq!(
        rows.next().unwrap(),
        "seq,at,request_id,caller,cert_fingerprint,method,outcome,detail,request_digest,attached,prev_hash,hash,person"
    );
    let rows: Vec<Vec<String>> = rows.map(split_csv).collect();
    assert!(rows.len() >= 6, "{text}");
    let first_seq: i64 = rows[0][0].parse().unwrap();
    let before = all(&ict, proto::QueryAuditRequest::default()).await;
    assert!(first_seq > 1, "the range starts after the first record");
    let anchor = before.iter().find(|r| r.seq == first_seq - 1).map(|r| r.hash.clone()).unwrap();
    let mut prev = anchor;
    for r in &rows {
        assert_eq!(r[10], prev, "record {} follows the one before", r[0]);
        assert_eq!(r[9].len(), 64, "record {} has its attached digest", r[0]);
        let fields = [&*r[2], &r[3], &r[4], &r[5], &r[6], &r[7], &r[8], &r[9]];
        let hash = chain_hash(&r[10], r[0].parse().unwrap(), micros(&r[1]), fields);
        assert_eq!(hash, r[11], "record {} recomputes", r[0]);
        prev = hash;
    }
    // The last record is in the hub's signed tree (the chain ties the others to it): its
    // bytes, folded up the proof, give the signed checkpoint's root.
    let proof = String::from_utf8(proof.data).unwrap();
    let section = |name: &str| {
        let begin = format!("-----BEGIN TELESUB {name}-----\n");
        let start = proof.find(&begin).unwrap() + begin.len();
        proof[start..proof.find(&format!("-----END TELESUB {name}-----")).unwrap()].to_owned()
    };
    let key = ict.get_audit_checkpoint(0).await.unwrap().verifier_key;
    let signed = crate::audit_tree::note_text_if_signed(&section("CHECKPOINT"), &key).expect("signed by the hub");
    let lines: Vec<&str> = signed.lines().collect();
    let size: u64 = lines[1].parse().unwrap();
    use base64::{Engine, engine::general_purpose::STANDARD};
    let root: crate::audit_tree::rfc::Hash = STANDARD.decode(lines[2]).unwrap().try_into().unwrap();
    let path: Vec<_> = section("INCLUSION PROOF").lines().map(crate::audit_tree::rfc::unhex).collect();
    let last = rows.last().unwrap();
    let fields = [&*last[2], &last[3], &last[4], &last[5], &last[6], &last[7], &last[8], &last[9]];
    let leaf =
        crate::audit_tree::rfc::leaf(&record_bytes(&last[10], last[0].parse().unwrap(), micros(&last[1]), fields));
    let seq: u64 = last[0].parse().unwrap();
    assert_eq!(crate::audit_tree::rfc::root_from_inclusion(seq - 1, size, leaf, &path), Some(root));
    let mut changed = fields.map(str::to_owned);
    changed[4].push('!');
    let changed = changed.each_ref().map(String::as_str);
    let other = crate::audit_tree::rfc::leaf(&record_bytes(&last[10], seq as i64, micros(&last[1]), changed));
    assert_ne!(crate::audit_tree::rfc::root_from_inclusion(seq - 1, size, other, &path), Some(root));

    // A changed record: the hub's check names it.
    disable_guard(&app.db).await;
    let seq = by_vnpt[1].seq;
    app.db.execute(&format!("UPDATE audit_log SET outcome = 'OK' WHERE seq = {seq}")).await.unwrap();
    let report = ict.verify_audit().await.unwrap();
    assert!(!report.intact);
    assert_eq!(report.first_broken_seq, seq);
    assert!(report.problem.contains("changed"), "{}", report.problem);
}

/// Splits one CSV row (quoted fields may hold commas and doubled quotes).
fn split_csv(row: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = row.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            (c, _) => out.last_mut().unwrap().push(c),
        }
    }
    out
}

#[tokio::test]
async fn the_audit_reader_runs_from_the_command_line() {
    use crate::monthly_cli::cli_run;
    let app = TestApp::spawn().await;
    app.client("VNPT").await.who_am_i().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path();

    let run = cli_run(&app, "DOICT", here, &["audit", "query", "--caller", "VNPT", "--from", "2025-01-01"]).await;
    run.assert_ok();
    assert!(run.out.contains("Members/WhoAmI") && run.out.contains(" OK "), "{}", run.out);
    let run = cli_run(&app, "DOICT", here, &["audit", "query", "--household", "HH-404"]).await;
    run.assert_ok();
    assert!(!run.out.contains("WhoAmI"), "nobody looked HH-404 up: {}", run.out);
    let run = cli_run(&app, "DOICT", here, &["audit", "verify"]).await;
    run.assert_ok();
    assert!(run.out.starts_with("audit trail intact: "), "{}", run.out);
    cli_run(&app, "DOICT", here, &["audit", "export", "-o", "audit.csv"]).await.assert_ok();
    let csv = std::fs::read_to_string(here.join("audit.csv")).unwrap();
    assert!(csv.starts_with("\u{feff}seq,at,request_id,caller,"), "{csv}");
    // For a script: --no-bom.
    cli_run(&app, "DOICT", here, &["audit", "export", "--no-bom", "-o", "plain.csv"]).await.assert_ok();
    assert!(std::fs::read_to_string(here.join("plain.csv")).unwrap().starts_with("seq,at,request_id,caller,"));
    assert!(csv.contains(",VNPT,") && csv.contains("/telesub.v1.Members/WhoAmI"), "{csv}");
    let run = cli_run(&app, "VNPT", here, &["audit", "verify"]).await;
    assert_eq!(run.code, Some(5), "only ICT reads the trail: {}{}", run.out, run.err);
    let run = cli_run(&app, "DOICT", here, &["audit", "query", "--from", "yesterday"]).await;
    assert_eq!(run.code, Some(2), "a bad time is a bad command line: {}", run.err);

    // A broken chain is an error.
    disable_guard(&app.db).await;
    app.db.execute("UPDATE audit_log SET detail = 'x' WHERE seq = 1").await.unwrap();
    let run = cli_run(&app, "DOICT", here, &["audit", "verify"]).await;
    assert_eq!(run.code, Some(8));
    assert!(run.err.contains("broken at record 1"), "{}", run.err);
}

#[tokio::test]
async fn an_auditor_finds_who_looked_up_a_citizen_or_a_household() {
    use crate::households::{cid, header, household, push};
    use futures_util::StreamExt;
    let app = TestApp::spawn().await;
    let labour = app.client("DOLISA").await;
    let records = vec![household("HH-1", "24611", 1), household("HH-2", "24611", 2), household("HH_3", "24616", 3)];
    push(&labour, header("review-2024", proto::BatchKind::Snapshot, "2024", "2025-01-01"), records).await.unwrap();
    let (ict, vnpt, viettel, locality) = (
        app.client("DOICT").await,
        app.client("VNPT").await,
        app.client("VIETTEL").await,
        app.client("GIANGHIA").await,
    );
    let citizen = cid(1, 1980, false);

    let single = vnpt.check_citizen(&citizen, "").await.unwrap();
    let question = |key| proto::CheckEligibilityRequest { key: Some(key), as_of: String::new() };
    use proto::check_eligibility_request::Key;
    let batch = vec![
        question(Key::CitizenId(cid(2, 1980, false))),
        question(Key::CitizenId(citizen.clone())),
        question(Key::HouseholdCode("HH-2".into())),
    ];
    let answers: Vec<_> =
        viettel.check_eligibility_batch(futures_util::stream::iter(batch)).await.unwrap().collect().await;
    assert_eq!(answers.len(), 3);
    locality.get_household("HH-1", "").await.unwrap();
    ict.find_by_citizen_id(&citizen, "").await.unwrap();
    ict.get_household("HH-2", "").await.unwrap(); // not about HH-1
    ict.get_household("HH_3", "").await.unwrap(); // "_" is not a wildcard
    vnpt.enroll(proto::EnrollRequest {
        idempotency_key: "e1".into(),
        household_code: "HH-1".into(),
        subscriber_citizen_id: citizen.clone(),
        phone_number: "0912000001".into(),
        service: proto::SupportedService::Mobile.into(),
        start_date: "2025-02-01".into(),
    })
    .await
    .unwrap();
    // A locality reading a household outside its unit is refused, and recorded as looking.
    let refused = locality.get_household("HH_3", "").await.unwrap_err();
    assert_eq!(refused.code(), Some(Code::NotFound), "outside its unit reads as not there");

    let who = |records: &[proto::AuditRecord]| -> Vec<(String, String)> {
        records.iter().map(|r| (r.caller.clone(), r.method.trim_start_matches("/telesub.v1.").to_owned())).collect()
    };
    let by_citizen = all(&ict, proto::QueryAuditRequest { citizen_id: citizen.clone(), ..Default::default() }).await;
    let expected = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs.iter().map(|(c, m)| (c.to_string(), m.to_string())).collect()
    };
    assert_eq!(
        who(&by_citizen),
        expected(&[
            ("VNPT", "Eligibility/CheckEligibility"),
            ("VIETTEL", "Eligibility/CheckEligibilityBatch"),
            ("DOICT", "HouseholdRegistry/FindHouseholds"),
            ("VNPT", "Enrollments/Enroll"),
        ])
    );
    assert!(single.decision_id.ends_with("-0"), "a single decision: {}", single.decision_id);
    let by_household =
        all(&ict, proto::QueryAuditRequest { household_code: "HH-1".into(), ..Default::default() }).await;
    assert_eq!(
        who(&by_household),
        expected(&[
            ("VNPT", "Eligibility/CheckEligibility"),
            ("VIETTEL", "Eligibility/CheckEligibilityBatch"),
            ("GIANGHIA", "HouseholdRegistry/GetHousehold"),
            ("DOICT", "HouseholdRegistry/FindHouseholds"),
            ("VNPT", "Enrollments/Enroll"),
        ])
    );
    let odd = all(&ict, proto::QueryAuditRequest { household_code: "HH_3".into(), ..Default::default() }).await;
    assert_eq!(
        who(&odd),
        expected(&[("DOICT", "HouseholdRegistry/GetHousehold"), ("GIANGHIA", "HouseholdRegistry/GetHousehold")])
    );
    assert_eq!(odd[1].outcome, "NOT_FOUND");
    assert!(odd[1].detail.contains("lies outside unit"), "the trail keeps the real reason: {}", odd[1].detail);
    // Both: the calls that looked up both; other filters apply too.
    let both = all(
        &ict,
        proto::QueryAuditRequest {
            citizen_id: citizen.clone(),
            household_code: "HH-1".into(),
            caller: "VNPT".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(who(&both), expected(&[("VNPT", "Eligibility/CheckEligibility"), ("VNPT", "Enrollments/Enroll")]));
    let nobody = all(&ict, proto::QueryAuditRequest { citizen_id: cid(9, 1990, true), ..Default::default() }).await;
    assert!(nobody.is_empty());
    let err = ict
        .query_audit(proto::QueryAuditRequest {
            citizen_id: "123".into(),
            household_code: "a b".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let fields: Vec<&str> = err.violations().iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["citizen_id", "household_code"]);
}

/// As seen: an operator refused `GetHousehold`, or the labour department refused
/// `CheckEligibility`, was in the trail but not found by the household or citizen it named.
/// Every call that names a citizen or household is found by it, whatever its outcome.
#[tokio::test]
async fn refused_and_failed_attempts_are_found_by_whom_they_named() {
    use crate::households::{cid, header, household, push};
    use proto::check_eligibility_request::Key;
    use telesub_server::pki::Validity;
    let app = TestApp::spawn().await;
    let labour = app.client("DOLISA").await;
    push(
        &labour,
        header("review-2024", proto::BatchKind::Snapshot, "2024", "2025-01-01"),
        vec![household("HH-7", "24611", 7)],
    )
    .await
    .unwrap();
    let ict = app.client("DOICT").await;
    let citizen = cid(7, 1980, false);
    let other = cid(8, 1981, true);

    // Refused by role.
    let vnpt = app.client("VNPT").await;
    assert_eq!(vnpt.get_household("HH-7", "").await.unwrap_err().code(), Some(Code::PermissionDenied));
    assert_eq!(labour.check_citizen(&citizen, "").await.unwrap_err().code(), Some(Code::PermissionDenied));
    // By an organisation that is no member.
    let stranger = app.client_with_new_certificate("MOBIFONE", Validity::days(30)).await.unwrap();
    let err = stranger.check_eligibility(Key::HouseholdCode("HH-7".into()), "").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::Unauthenticated));
    // A batch of questions refused by role names its citizens too.
    let asked = cid(9, 1990, true);
    let questions =
        vec![proto::CheckEligibilityRequest { key: Some(Key::CitizenId(asked.clone())), as_of: String::new() }];
    let refused = match labour.check_eligibility_batch(futures_util::stream::iter(questions)).await {
        Err(e) => e,
        Ok(answers) => {
            use futures_util::StreamExt;
            let answers: Vec<_> = answers.collect().await;
            answers.into_iter().find_map(Result::err).expect("refused")
        }
    };
    assert_eq!(refused.code(), Some(Code::PermissionDenied));
    // A bad argument beside an ID that parses.
    let err = vnpt.check_citizen(&other, "not-a-date").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument));
    // Not found.
    let err = ict.get_household("HH-404", "").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound));

    let found = |records: &[proto::AuditRecord]| -> Vec<(String, String, String)> {
        records
            .iter()
            .map(|r| (r.caller.clone(), r.method.trim_start_matches("/telesub.v1.").to_owned(), r.outcome.clone()))
            .collect()
    };
    let triple = |c: &str, m: &str, o: &str| (c.to_owned(), m.to_owned(), o.to_owned());
    let by_household =
        all(&ict, proto::QueryAuditRequest { household_code: "HH-7".into(), ..Default::default() }).await;
    assert_eq!(
        found(&by_household),
        [
            triple("VNPT", "HouseholdRegistry/GetHousehold", "PERMISSION_DENIED"),
            triple("MOBIFONE", "Eligibility/CheckEligibility", "UNAUTHENTICATED"),
        ]
    );
    let by_citizen = all(&ict, proto::QueryAuditRequest { citizen_id: citizen.clone(), ..Default::default() }).await;
    assert_eq!(found(&by_citizen), [triple("DOLISA", "Eligibility/CheckEligibility", "PERMISSION_DENIED")]);
    let by_other = all(&ict, proto::QueryAuditRequest { citizen_id: other, ..Default::default() }).await;
    assert_eq!(found(&by_other), [triple("VNPT", "Eligibility/CheckEligibility", "INVALID_ARGUMENT")]);
    let by_asked = all(&ict, proto::QueryAuditRequest { citizen_id: asked, ..Default::default() }).await;
    assert_eq!(found(&by_asked), [triple("DOLISA", "Eligibility/CheckEligibilityBatch", "PERMISSION_DENIED")]);
    let missing = all(&ict, proto::QueryAuditRequest { household_code: "HH-404".into(), ..Default::default() }).await;
    assert_eq!(found(&missing), [triple("DOICT", "HouseholdRegistry/GetHousehold", "NOT_FOUND")]);
}
