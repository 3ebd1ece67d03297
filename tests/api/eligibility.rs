//! Eligibility decisions and the policy through the API: an operator asks about a citizen,
//! a household or a certificate on a date, and gets an explained decision that is stored with
//! who asked and can be read again.

use futures_util::{StreamExt, stream};
use telesub_client::{Client, Code, proto};
use telesub_tests::TestApp;

use crate::households::{cid, header, household, push, removal};

/// A decision's field violations, as `field` strings.
fn fields(err: &telesub_client::Error) -> Vec<String> {
    err.violations().iter().map(|v| v.field.clone()).collect()
}

fn citizen(id: &str, as_of: &str) -> proto::CheckEligibilityRequest {
    proto::CheckEligibilityRequest {
        key: Some(proto::check_eligibility_request::Key::CitizenId(id.into())),
        as_of: as_of.into(),
    }
}

fn reason(d: &proto::EligibilityDecision) -> proto::ReasonCode {
    d.reasons.first().map_or(proto::ReasonCode::Unspecified, |r| r.code())
}

/// Two poor households on the list from 1 January 2025.
async fn with_register(app: &TestApp) -> Client {
    let labour = app.client("DOLISA").await;
    push(
        &labour,
        header("review-2024", proto::BatchKind::Snapshot, "2024", "2025-01-01"),
        vec![household("HH-1", "24611", 1), household("HH-2", "24616", 2)],
    )
    .await
    .unwrap();
    labour
}

#[tokio::test]
async fn a_counter_check_is_explained_and_can_be_read_again() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let vnpt = app.client("VNPT").await;

    // The spouse's ID finds the household.
    let d = vnpt.check_citizen(&cid(1, 1985, true), "2025-02-01").await.unwrap();
    assert!(d.eligible, "{d:?}");
    assert_eq!(d.household_code, "HH-1");
    assert_eq!(d.category(), proto::Category::Poor);
    assert_eq!(d.head_name_masked, "Nguyễn V. A.");
    assert_eq!(d.asked_by, "VNPT");
    assert_eq!(d.as_of, "2025-02-01");
    assert_eq!(d.policy_version, 1);
    assert!(d.reasons.is_empty());
    let e = &d.entitlements[..];
    assert_eq!(e.len(), 1, "no broadband commune is listed by default: {e:?}");
    assert_eq!(e[0].service(), proto::SupportedService::Mobile);
    assert_eq!((e[0].monthly_amount, e[0].subscriptions_allowed), (60_000, 1));
    assert_eq!((e[0].valid_from.as_str(), e[0].valid_to.as_str()), ("2025-01-01", ""));

    // By household code and by certificate number: the same household.
    let by_code = vnpt
        .check_eligibility(proto::check_eligibility_request::Key::HouseholdCode("HH-2".into()), "2025-02-01")
        .await
        .unwrap();
    assert!(by_code.eligible);
    let by_cert = vnpt
        .check_eligibility(proto::check_eligibility_request::Key::CertificateNumber("2/GCN-HN.HCN".into()), "")
        .await
        .unwrap();
    assert_eq!(by_cert.household_code, "HH-2");

    // Read again: the same decision, also for ICT; another operator learns nothing.
    let again = vnpt.get_decision(&d.decision_id).await.unwrap();
    assert_eq!(again, d);
    assert_eq!(app.client("DOICT").await.get_decision(&d.decision_id).await.unwrap(), d);
    let err = app.client("VIETTEL").await.get_decision(&d.decision_id).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err}");
    let err = vnpt.get_decision("0123abcd-7").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err}");
    let err = vnpt.get_decision("not-a-decision").await.unwrap_err();
    assert_eq!((err.code(), fields(&err)), (Some(Code::InvalidArgument), vec!["decision_id".to_owned()]), "{err}");
}

#[tokio::test]
async fn every_lookup_is_stored_with_who_asked_and_its_audit_record() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let vnpt = app.client("VNPT").await;
    let looked_up = cid(2, 1980, false);
    let d = vnpt.check_citizen(&looked_up, "2025-02-01").await.unwrap();

    let (call_id, idx) = d.decision_id.rsplit_once('-').unwrap();
    let row = app.store.decision(call_id, idx.parse().unwrap()).await.unwrap().expect("the decision is stored");
    assert_eq!(row.asked_by, "VNPT");
    assert_eq!((row.query_kind.as_str(), row.query_value.as_str()), ("CITIZEN_ID", looked_up.as_str()));
    assert_eq!(row.household_code.as_deref(), Some("HH-2"));
    assert!(row.eligible);
    let audit = app.audit_record(&row.request_id).await;
    assert_eq!(audit.entry.method, "/telesub.v1.Eligibility/CheckEligibility");
    assert_eq!(audit.entry.org_code.as_deref(), Some("VNPT"));
    assert_eq!(audit.entry.outcome, "OK");
}

#[tokio::test]
async fn removals_end_support_by_the_policy_s_grace_rule() {
    let app = TestApp::spawn().await;
    let labour = with_register(&app).await;
    push(
        &labour,
        header("2025-03", proto::BatchKind::Delta, "2025-03", "2025-03-15"),
        vec![
            removal("HH-1", proto::RemovalReason::OutOfPoverty, "2025-03-15"),
            removal("HH-2", proto::RemovalReason::Deceased, "2025-03-15"),
        ],
    )
    .await
    .unwrap();
    let vnpt = app.client("VNPT").await;

    // Out of poverty: supported to the end of the year.
    let d = vnpt.check_citizen(&cid(1, 1980, false), "2025-06-01").await.unwrap();
    assert!(d.eligible, "{d:?}");
    assert_eq!(d.entitlements[0].valid_to, "2026-01-01");
    let d = vnpt.check_citizen(&cid(1, 1980, false), "2026-01-01").await.unwrap();
    assert!(!d.eligible);
    assert_eq!(reason(&d), proto::ReasonCode::Removed);
    let r = &d.reasons[0];
    assert_eq!((r.date.as_str(), r.support_ended.as_str()), ("2025-03-15", "2026-01-01"));
    assert_eq!(r.removal_reason(), proto::RemovalReason::OutOfPoverty);

    // Deceased: support ends on the day.
    let d = vnpt.check_citizen(&cid(2, 1980, false), "2025-03-15").await.unwrap();
    assert_eq!(reason(&d), proto::ReasonCode::Removed);
    assert_eq!(d.reasons[0].support_ended, "2025-03-15");

    // Before the list: not yet valid. Unknown: not found.
    let d = vnpt.check_citizen(&cid(1, 1980, false), "2024-06-01").await.unwrap();
    assert_eq!((reason(&d), d.reasons[0].date.as_str()), (proto::ReasonCode::NotYetValid, "2025-01-01"));
    let d = vnpt.check_citizen(&cid(9, 1980, false), "2025-06-01").await.unwrap();
    assert_eq!(reason(&d), proto::ReasonCode::NotFound);
    assert_eq!(d.household_code, "");
}

#[tokio::test]
async fn bad_questions_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let vnpt = app.client("VNPT").await;
    let cases: [(&str, &str, &str); 5] = [
        ("06708000123", "", "citizen_id"),
        ("999080001234", "", "citizen_id"),
        (&cid(1, 1980, false), "2025-02-30", "as_of"),
        (&cid(1, 1980, false), "2020-01-01", "as_of"),
        (&cid(1, 1980, false), "2099-01-01", "as_of"),
    ];
    for (id, as_of, field) in cases {
        let err = vnpt.check_citizen(id, as_of).await.unwrap_err();
        assert_eq!(err.code(), Some(Code::InvalidArgument), "{id} {as_of}: {err}");
        assert_eq!(fields(&err), [field], "{id} {as_of}: {err}");
    }
    let err = vnpt.check_eligibility(proto::check_eligibility_request::Key::HouseholdCode(String::new()), "").await;
    assert_eq!(fields(&err.unwrap_err()), ["household_code"]);
    // Nothing was stored for refused questions.
    assert_eq!(app.db.count("SELECT COUNT(*) FROM eligibility_decisions").await.unwrap(), 0);
}

#[tokio::test]
async fn a_batch_answers_every_question_in_order() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let vnpt = app.client("VNPT").await;
    // 5,001 questions over three chunks: the two households' members, unknown IDs, and a
    // malformed one in the middle.
    let questions: Vec<proto::CheckEligibilityRequest> = (0..5_001u32)
        .map(|i| match i {
            2_500 => citizen("12345", "2025-02-01"),
            i if i % 3 == 0 => citizen(&cid(1, 1980, false), "2025-02-01"),
            i if i % 3 == 1 => citizen(&cid(2, 1985, true), "2025-02-01"),
            i => citizen(&cid(100 + i, 1990, false), "2025-02-01"),
        })
        .collect();
    let answers: Vec<proto::EligibilityDecision> = vnpt
        .check_eligibility_batch(stream::iter(questions.clone()))
        .await
        .unwrap()
        .map(|a| a.unwrap())
        .collect()
        .await;
    assert_eq!(answers.len(), questions.len());
    let mut call = None;
    for (i, (q, a)) in questions.iter().zip(&answers).enumerate() {
        assert_eq!(a.query.as_ref(), Some(q), "answer {i} is for its question");
        if i == 2_500 {
            assert_eq!(reason(a), proto::ReasonCode::InvalidQuery);
            assert!(a.decision_id.is_empty());
            assert!(a.reasons[0].message.contains("checks[2500].citizen_id"), "{:?}", a.reasons);
            continue;
        }
        let (call_id, idx) = a.decision_id.rsplit_once('-').unwrap();
        assert_eq!(idx, i.to_string());
        assert_eq!(*call.get_or_insert(call_id.to_owned()), call_id, "one call id for the whole batch");
        match i % 3 {
            0 => assert_eq!((a.eligible, a.household_code.as_str()), (true, "HH-1")),
            1 => assert_eq!((a.eligible, a.household_code.as_str()), (true, "HH-2")),
            _ => assert_eq!(reason(a), proto::ReasonCode::NotFound),
        }
    }
    // Every decision of the batch reads back as given, wherever it is in the call.
    for i in [0, 1, 1_023, 1_024, 1_999, 2_000, 2_499, 2_501, 4_095, 5_000] {
        let a = &answers[i];
        assert_eq!(&vnpt.get_decision(&a.decision_id).await.unwrap(), a, "decision {i}");
    }
    // The malformed question has no decision; another operator does not see VNPT's.
    let call = call.unwrap();
    let err = vnpt.get_decision(&format!("{call}-2500")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err}");
    let err = vnpt.get_decision(&format!("{call}-5001")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err}");
    let viettel = app.client("VIETTEL").await;
    let err = viettel.get_decision(&answers[10].decision_id).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err}");
    // Stored run by run: 5,000 decisions, none of them in the table of single checks.
    let stored = app.db.count("SELECT CAST(SUM(decisions) AS BIGINT) FROM eligibility_decision_runs").await.unwrap();
    assert_eq!(stored, 5_000);
    assert_eq!(app.db.count("SELECT COUNT(*) FROM eligibility_decisions").await.unwrap(), 0);
}

fn version(valid_from: &str, mobile: i64) -> proto::PolicyVersion {
    proto::PolicyVersion {
        valid_from: valid_from.into(),
        note: "Decision 1234/QĐ-BTTTT".into(),
        categories: vec![
            proto::Category::MeritoriousService.into(),
            proto::Category::SocialPolicy.into(),
            proto::Category::Poor.into(),
            proto::Category::NearPoor.into(),
        ],
        services: vec![
            proto::ServiceRule {
                service: proto::SupportedService::Mobile.into(),
                monthly_amount: mobile,
                listed_communes_only: false,
            },
            proto::ServiceRule {
                service: proto::SupportedService::FixedBroadband.into(),
                monthly_amount: 130_000,
                listed_communes_only: true,
            },
        ],
        amounts: vec![proto::AmountRule {
            operator: "VIETTEL".into(),
            year: 2026,
            service: proto::SupportedService::Mobile.into(),
            monthly_amount: 65_000,
        }],
        subscriptions_per_household: 1,
        broadband_communes: vec!["24611".into()],
        grace: Some(proto::GraceRule {
            until_end_of_year: true,
            removal_reasons: vec![proto::RemovalReason::OutOfPoverty.into(), proto::RemovalReason::NotInReview.into()],
            on_category_change: true,
        }),
        non_usage_months: 2,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_new_policy_version_applies_from_its_date_and_old_dates_keep_the_old_rules() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let ict = app.client("DOICT").await;
    let added = ict.add_policy_version(version("2026-01-01", 70_000)).await.unwrap();
    assert_eq!((added.version, added.recorded_by.as_str()), (2, "DOICT"));
    let versions = app.client("VNPT").await.list_policy_versions().await.unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0].valid_to, "2026-01-01");
    assert_eq!(ict.get_policy("2025-12-31").await.unwrap().version, 1);
    assert_eq!(ict.get_policy("2026-01-01").await.unwrap(), versions[1]);

    let vnpt = app.client("VNPT").await;
    let head = cid(1, 1980, false);
    let old = vnpt.check_citizen(&head, "2025-06-01").await.unwrap();
    assert_eq!((old.policy_version, old.entitlements.len()), (1, 1));
    assert_eq!((old.entitlements[0].monthly_amount, old.entitlements[0].valid_to.as_str()), (60_000, "2026-01-01"));
    let new = vnpt.check_citizen(&head, "2026-02-01").await.unwrap();
    assert_eq!(new.policy_version, 2);
    let got: Vec<(proto::SupportedService, i64)> =
        new.entitlements.iter().map(|e| (e.service(), e.monthly_amount)).collect();
    assert_eq!(got, [(proto::SupportedService::Mobile, 70_000), (proto::SupportedService::FixedBroadband, 130_000)]);
    // The Ministry's figure for one operator and year.
    let viettel = app.client("VIETTEL").await.check_citizen(&head, "2026-02-01").await.unwrap();
    assert_eq!(viettel.entitlements[0].monthly_amount, 65_000);
    assert_eq!(viettel.entitlements[0].valid_to, "2027-01-01");
    // HH-2's commune is not listed for broadband.
    let other = vnpt.check_citizen(&cid(2, 1980, false), "2026-02-01").await.unwrap();
    assert_eq!(other.entitlements.len(), 1);
}

#[tokio::test]
async fn a_bad_policy_version_is_refused_field_by_field_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let ict = app.client("DOICT").await;
    let err = ict.add_policy_version(version("2022-01-01", 70_000)).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument), "{err}");
    assert_eq!(fields(&err), ["version.valid_from"]);

    let mut bad = version("2026-01-01", 0);
    bad.categories.push(0);
    bad.broadband_communes.push("99999".into());
    bad.amounts[0].operator = "not a code".into();
    let err = ict.add_policy_version(bad).await.unwrap_err();
    assert_eq!(fields(&err), ["version.categories[4]"], "enum numbers are checked first: {err}");
    let mut bad = version("2026-01-01", 0);
    bad.broadband_communes.push("99999".into());
    bad.amounts[0].operator = "not a code".into();
    let err = ict.add_policy_version(bad).await.unwrap_err();
    assert_eq!(
        fields(&err),
        ["version.services[0].monthly_amount", "version.amounts[0].operator", "version.broadband_communes[1]"]
    );
    assert_eq!(ict.list_policy_versions().await.unwrap().len(), 1);
}

#[tokio::test]
async fn households_of_a_category_the_policy_does_not_cover_are_told_so() {
    let app = TestApp::spawn().await;
    let labour = app.client("DOLISA").await;
    let mut other = household("HH-9", "24611", 9);
    if let Some(proto::household_record::Change::Upsert(d)) = other.change.as_mut() {
        d.category = proto::Category::Other.into();
    }
    push(&labour, header("b1", proto::BatchKind::Delta, "2025-01", "2025-01-01"), vec![other]).await.unwrap();
    let d = app.client("DOICT").await.check_citizen(&cid(9, 1980, false), "2025-02-01").await.unwrap();
    assert!(!d.eligible);
    assert_eq!(reason(&d), proto::ReasonCode::CategoryNotCovered);
    assert_eq!(d.category(), proto::Category::Other);
}

/// What a store answers for every value of every kind: the histories of the households each
/// value matches.
async fn answers(
    store: &dyn telesub_server::domain::ports::RegisterStore,
    values: &[(telesub_server::domain::eligibility::QueryKind, Vec<String>)],
) -> Vec<(String, Vec<telesub_server::domain::eligibility::History>)> {
    let mut out = Vec::new();
    for (kind, values) in values {
        let mut found = store.histories_matching(*kind, values, false).await.expect("histories");
        // In no particular order.
        found.sort_by(|a, b| a.0.cmp(&b.0));
        out.extend(found);
    }
    out
}

/// Fails naming the first value answered differently, rather than printing thousands.
fn assert_same_answers(
    got: &[(String, Vec<telesub_server::domain::eligibility::History>)],
    expected: &[(String, Vec<telesub_server::domain::eligibility::History>)],
) {
    for (g, e) in got.iter().zip(expected) {
        assert_eq!(g, e, "the first value answered differently");
    }
    assert_eq!(got.len(), expected.len(), "values answered");
}

/// A hub on SQLite answers questions from the register it holds in memory. Whatever it
/// answers must be what the database says: after a load, after changes pushed through the hub,
/// and after changes made around it (enrolments written straight into the database, as
/// another process on the same file would).
#[tokio::test]
async fn the_register_held_in_memory_answers_as_the_database_does() {
    use telesub_server::domain::eligibility::QueryKind;
    use time::macros::date;

    let app = TestApp::spawn().await;
    let heads = telesub_tests::load_generated(app.store.as_ref(), 11, 1_500, date!(2025 - 01 - 01)).await;
    let month = telesub_tools::monthly_generator::MonthGenerator::new(
        11,
        1_500,
        vec!["VNPT".into(), "VIETTEL".into()],
        "2025-03",
        date!(2025 - 01 - 01),
        Default::default(),
    )
    .unwrap();
    let enrolled = telesub_tests::load_enrollments(&app.db, month.enrollments()).await.unwrap();
    assert!(enrolled > 1_000, "{enrolled}");
    // The database itself, read through the store's own register port (a store holds nothing
    // in memory: the hub's read model does).
    let database = app.db.store().await;

    let found = database.histories_matching(QueryKind::CitizenId, &heads, false).await.unwrap();
    let codes: Vec<String> = found.iter().flat_map(|(_, h)| h.iter().map(|h| h.code.clone())).collect();
    let labour = app.client("DOLISA").await;
    push(
        &labour,
        header("changes", proto::BatchKind::Delta, "2025", "2025-04-01"),
        vec![
            household("HH-1", "24611", 1),
            household("HH-2", "24616", 2),
            removal(&codes[0], proto::RemovalReason::OutOfPoverty, "2025-04-01"),
            removal(&codes[1], proto::RemovalReason::Deceased, "2025-04-10"),
        ],
    )
    .await
    .unwrap();
    let certificates: Vec<String> = found
        .iter()
        .flat_map(|(_, h)| h.iter().flat_map(|h| h.states.iter().filter_map(|s| s.facts.certificate_number.clone())))
        .take(300)
        .chain(["1/GCN-HN.HCN".to_owned(), "no such certificate".to_owned()])
        .collect();
    let mut citizens = heads.clone();
    citizens.extend([cid(1, 1985, true), cid(2, 1980, false), cid(99, 1980, false)]);
    let mut households = codes.clone();
    households.extend(["HH-1".to_owned(), "HH-2".to_owned(), "HH-404".to_owned()]);
    let values = [
        (QueryKind::CitizenId, citizens),
        (QueryKind::HouseholdCode, households),
        (QueryKind::CertificateNumber, certificates),
    ];

    app.register.catch_up().await.unwrap();
    if !app.db.is_postgres() {
        assert_eq!(app.register.held(), Some(1_502), "a serving SQLite hub holds the register");
    }
    let expected = answers(database.as_ref(), &values).await;
    assert!(expected.len() > 3_000, "{}", expected.len());
    assert_same_answers(&answers(&app.register, &values).await, &expected);

    // Changed around the hub: its next answer already says so.
    let ended = app.db.execute("UPDATE enrollments SET end_date = '2025-05-01' WHERE id % 3 = 0").await.unwrap();
    assert!(ended > 300, "{ended}");
    let expected_now = answers(database.as_ref(), &values).await;
    assert_ne!(expected_now, expected);
    assert_same_answers(&answers(&app.register, &values).await, &expected_now);
}

/// As seen: a version from 9999-12-31 was accepted, and every later version was then refused
/// for ever. A version starts within the horizon (five years ahead); one that has not taken
/// effect may be withdrawn, with a reason, and is kept as withdrawn; one in force never is.
#[tokio::test]
async fn a_far_future_version_is_refused_and_one_not_yet_in_force_can_be_withdrawn() {
    let app = TestApp::spawn().await;
    let ict = app.client("DOICT").await;
    let err = ict.add_policy_version(version("9999-12-31", 70_000)).await.unwrap_err();
    assert_eq!(fields(&err), ["version.valid_from"], "{err}");
    assert!(err.violations()[0].description.contains("more than 5 years ahead"), "{err}");

    // Next year's version, recorded, then withdrawn before it takes effect.
    let next_year = (time::OffsetDateTime::now_utc().year() + 1).to_string();
    let planned = ict.add_policy_version(version(&format!("{next_year}-01-01"), 70_000)).await.unwrap();
    let err = ict.withdraw_policy_version(planned.version, "  ").await.unwrap_err();
    assert_eq!(fields(&err), ["reason"]);
    let withdrawn = ict.withdraw_policy_version(planned.version, "ban hành nhầm").await.unwrap();
    let w = withdrawn.withdrawal.expect("marked withdrawn");
    assert_eq!((w.withdrawn_by.as_str(), w.reason.as_str()), ("DOICT", "ban hành nhầm"));
    let again = ict.withdraw_policy_version(planned.version, "again").await.unwrap_err();
    assert_eq!(again.code(), Some(Code::FailedPrecondition));
    // It never holds; the version before holds on, and the date is free for another.
    assert_eq!(ict.get_policy(&format!("{next_year}-06-01")).await.unwrap().version, 1);
    let listed = ict.list_policy_versions().await.unwrap();
    assert_eq!(listed.len(), 2, "kept in the history");
    assert!(listed[1].withdrawal.is_some() && listed[0].withdrawal.is_none());
    assert_eq!(listed[0].valid_to, "", "version 1 holds on");
    let replacement = ict.add_policy_version(version(&format!("{next_year}-01-01"), 80_000)).await.unwrap();
    assert_eq!(replacement.version, 3);
    assert_eq!(ict.get_policy(&format!("{next_year}-06-01")).await.unwrap().version, 3);

    // A version in force (or past) is never withdrawn; nor by anyone but ICT.
    let err = ict.withdraw_policy_version(1, "no").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition));
    assert!(err.to_string().contains("never"), "{err}");
    let err = app.client("VNPT").await.withdraw_policy_version(3, "no").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied));
    let err = ict.withdraw_policy_version(42, "no").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound));
    // Audited, with the caller.
    let records = app.audit().await;
    let withdrawals: Vec<_> = records
        .iter()
        .filter(|r| r.entry.method == "/telesub.v1.Policy/WithdrawPolicyVersion")
        .map(|r| r.entry.outcome.as_str())
        .collect();
    assert_eq!(
        withdrawals,
        ["INVALID_ARGUMENT", "OK", "FAILED_PRECONDITION", "FAILED_PRECONDITION", "PERMISSION_DENIED", "NOT_FOUND"]
    );
}
