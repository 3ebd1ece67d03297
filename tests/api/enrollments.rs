//! The enrolment register through the API: operators enrol lines for eligible households,
//! never more than the policy allows across operators, end them, and take them over on the
//! household's written request.

use telesub_client::{Client, Code, Error, proto};
use telesub_tests::TestApp;

use crate::households::{cid, header, household, push, removal};

fn enroll_request(key: &str, code: &str, n: u32, phone: &str, start: &str) -> proto::EnrollRequest {
    proto::EnrollRequest {
        idempotency_key: key.into(),
        household_code: code.into(),
        subscriber_citizen_id: cid(n, 1980, false),
        phone_number: phone.into(),
        service: proto::SupportedService::Mobile.into(),
        start_date: start.into(),
    }
}

fn fields(err: &Error) -> Vec<String> {
    err.violations().iter().map(|v| v.field.clone()).collect()
}

async fn enrollments_of(client: &Client, code: &str) -> Vec<proto::Enrollment> {
    client
        .list_enrollments(proto::ListEnrollmentsRequest { household_code: code.into(), ..Default::default() })
        .await
        .unwrap()
        .enrollments
}

/// HH-1 (commune 24611) and HH-2 (24616), poor, on the list from 1 January 2025; HH-3
/// removed (deceased) on 1 February.
async fn with_register(app: &TestApp) {
    let labour = app.client("DOLISA").await;
    push(
        &labour,
        header("review-2024", proto::BatchKind::Snapshot, "2024", "2025-01-01"),
        vec![household("HH-1", "24611", 1), household("HH-2", "24616", 2), household("HH-3", "24616", 3)],
    )
    .await
    .unwrap();
    push(
        &labour,
        header("2025-02", proto::BatchKind::Delta, "2025-02", "2025-02-01"),
        vec![removal("HH-3", proto::RemovalReason::Deceased, "2025-02-01")],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_household_gets_one_line_and_the_second_operator_is_not_told_whose() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let (vnpt, viettel) = (app.client("VNPT").await, app.client("VIETTEL").await);

    let e = vnpt.enroll(enroll_request("k1", "HH-1", 1, "+84 912 345 678", "2025-02-01")).await.unwrap();
    assert_eq!((e.operator.as_str(), e.household_code.as_str()), ("VNPT", "HH-1"));
    assert_eq!(e.phone_number, "0912345678", "stored in its normal form");
    assert_eq!((e.start_date.as_str(), e.end_date.as_str()), ("2025-02-01", ""));
    // The decision the enrolment rests on is stored and readable.
    let d = vnpt.get_decision(&e.decision_id).await.unwrap();
    assert!(d.eligible);
    assert_eq!(d.household_code, "HH-1");

    let err = viettel.enroll(enroll_request("k1", "HH-1", 1, "0987654321", "2025-03-01")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err}");
    assert!(err.to_string().contains("another operator") && !err.to_string().contains("VNPT"), "{err}");
    let d = viettel.check_citizen(&cid(1, 1980, false), "2025-03-01").await.unwrap();
    assert!(!d.eligible);
    assert_eq!(d.reasons[0].code(), proto::ReasonCode::AlreadyEnrolledElsewhere);
    assert!(!d.reasons[0].message.contains("VNPT"), "{:?}", d.reasons);
    assert!(vnpt.check_citizen(&cid(1, 1980, false), "2025-03-01").await.unwrap().eligible, "its own subscriber");

    // Nothing of the refused enrolment was stored.
    assert_eq!(enrollments_of(&app.client("DOICT").await, "HH-1").await.len(), 1);
}

#[tokio::test]
async fn writes_are_idempotent_by_key() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let vnpt = app.client("VNPT").await;
    let first = vnpt.enroll(enroll_request("k1", "HH-1", 1, "0912345678", "2025-02-01")).await.unwrap();
    let again = vnpt.enroll(enroll_request("k1", "HH-1", 1, "0912345678", "2025-02-01")).await.unwrap();
    assert_eq!(again, first);
    let err = vnpt.enroll(enroll_request("k1", "HH-2", 2, "0912345679", "2025-02-01")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::AlreadyExists), "{err}");
    let err = vnpt.enroll(enroll_request("k2", "HH-1", 1, "0912345670", "2025-02-01")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err}");
    assert!(err.to_string().contains(&format!("already enrolled with you (enrolment {})", first.enrollment_id)));

    let end = proto::DeenrollRequest {
        idempotency_key: "k3".into(),
        enrollment_id: first.enrollment_id.clone(),
        end_date: "2025-06-01".into(),
        reason: proto::EnrollmentEndReason::HouseholdRequest.into(),
        note: String::new(),
    };
    let ended = vnpt.deenroll(end.clone()).await.unwrap();
    assert_eq!(
        (ended.end_date.as_str(), ended.end_reason()),
        ("2025-06-01", proto::EnrollmentEndReason::HouseholdRequest)
    );
    assert_eq!(vnpt.deenroll(end.clone()).await.unwrap(), ended, "replayed");
    let err = vnpt.deenroll(proto::DeenrollRequest { end_date: "2025-07-01".into(), ..end }).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::AlreadyExists), "{err}");
    assert_eq!(enrollments_of(&vnpt, "HH-1").await, [ended]);
}

#[tokio::test]
async fn bad_enrolments_are_refused_with_the_field_and_store_nothing() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let vnpt = app.client("VNPT").await;
    let cases = [
        (enroll_request("a", "HH-1", 1, "12345", "2025-02-01"), "phone_number"),
        (enroll_request("a", "HH-1", 1, "0212345678", "2025-02-01"), "phone_number"),
        (enroll_request("", "HH-1", 1, "0912345678", "2025-02-01"), "idempotency_key"),
        (enroll_request("a", "HH-1", 1, "0912345678", "2025-02-30"), "start_date"),
        (enroll_request("a", "HH-1", 2, "0912345678", "2025-02-01"), "subscriber_citizen_id"),
        (proto::EnrollRequest { service: 0, ..enroll_request("a", "HH-1", 1, "0912345678", "") }, "service"),
    ];
    for (request, field) in cases {
        let err = vnpt.enroll(request.clone()).await.unwrap_err();
        assert_eq!(err.code(), Some(Code::InvalidArgument), "{request:?}: {err}");
        assert_eq!(fields(&err), [field], "{request:?}: {err}");
    }
    // Not eligible: removed, or before the list.
    let err = vnpt.enroll(enroll_request("a", "HH-3", 3, "0912345678", "2025-03-01")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err}");
    assert!(err.to_string().contains("taken off the list on 2025-02-01"), "{err}");
    let err = vnpt.enroll(enroll_request("a", "HH-1", 1, "0912345678", "2024-06-01")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err}");
    // Fixed broadband: not in a commune the policy lists.
    let mut broadband = enroll_request("a", "HH-1", 1, "02613812345", "2025-02-01");
    broadband.service = proto::SupportedService::FixedBroadband.into();
    let err = vnpt.enroll(broadband).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err}");
    assert!(app.client("DOICT").await.list_enrollments(Default::default()).await.unwrap().enrollments.is_empty());
}

#[tokio::test]
async fn a_refused_enrolment_names_its_decision_which_is_on_record() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let (vnpt, viettel) = (app.client("VNPT").await, app.client("VIETTEL").await);
    let err = vnpt.enroll(enroll_request("a", "HH-3", 3, "0912345678", "2025-03-01")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err}");
    let message = err.to_string();
    let id = message
        .split("(decision ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no decision named in {message:?}"));
    let d = vnpt.get_decision(id).await.unwrap();
    assert!(!d.eligible);
    assert_eq!(d.household_code, "HH-3");
    assert_eq!(d.asked_by, "VNPT");
    assert_eq!(d.reasons[0].code(), proto::ReasonCode::Removed);
    // Like any decision, it is the asker's own.
    assert_eq!(viettel.get_decision(id).await.unwrap_err().code(), Some(Code::NotFound));
}

#[tokio::test]
async fn a_transfer_ends_the_other_operators_line_the_day_the_new_one_starts() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let (vnpt, viettel) = (app.client("VNPT").await, app.client("VIETTEL").await);
    let old = vnpt.enroll(enroll_request("v1", "HH-1", 1, "0912345678", "2025-02-01")).await.unwrap();

    let transfer = proto::TransferRequest {
        idempotency_key: "t1".into(),
        household_code: "HH-1".into(),
        subscriber_citizen_id: cid(1, 1985, true),
        phone_number: "0912345678".into(),
        service: proto::SupportedService::Mobile.into(),
        start_date: "2025-05-01".into(),
        request_reference: String::new(),
    };
    let err = viettel.transfer(transfer.clone()).await.unwrap_err();
    assert_eq!(fields(&err), ["request_reference"]);
    let err = vnpt
        .transfer(proto::TransferRequest { request_reference: "ĐƠN-12/2025".into(), ..transfer.clone() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "the line is already the caller's: {err}");

    let moved =
        viettel.transfer(proto::TransferRequest { request_reference: "ĐƠN-12/2025".into(), ..transfer }).await.unwrap();
    assert_eq!(moved.previous_end_date, "2025-05-01");
    let new = moved.enrollment.unwrap();
    assert_eq!((new.operator.as_str(), new.start_date.as_str()), ("VIETTEL", "2025-05-01"));
    assert_eq!(new.transfer_reference, "ĐƠN-12/2025");
    let ended = enrollments_of(&vnpt, "HH-1").await;
    assert_eq!(ended.len(), 1, "VNPT sees only its own: {ended:?}");
    assert_eq!(ended[0].enrollment_id, old.enrollment_id);
    assert_eq!(
        (ended[0].end_date.as_str(), ended[0].end_reason()),
        ("2025-05-01", proto::EnrollmentEndReason::Transferred)
    );
    // Now VNPT is the one elsewhere.
    let d = vnpt.check_citizen(&cid(1, 1980, false), "2025-05-02").await.unwrap();
    assert_eq!(d.reasons[0].code(), proto::ReasonCode::AlreadyEnrolledElsewhere);
}

#[tokio::test]
async fn operators_read_and_end_only_their_own_enrolments() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let (vnpt, viettel) = (app.client("VNPT").await, app.client("VIETTEL").await);
    let a = vnpt.enroll(enroll_request("v1", "HH-1", 1, "0912345678", "2025-02-01")).await.unwrap();
    viettel.enroll(enroll_request("x1", "HH-2", 2, "0987654321", "2025-02-01")).await.unwrap();

    let mine = vnpt.list_enrollments(Default::default()).await.unwrap().enrollments;
    assert_eq!(mine, std::slice::from_ref(&a));
    let err = vnpt
        .list_enrollments(proto::ListEnrollmentsRequest { operator: "VIETTEL".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied), "{err}");
    let all = app.client("DOICT").await.list_enrollments(Default::default()).await.unwrap().enrollments;
    assert_eq!(all.len(), 2);
    let page = app
        .client("DOICT")
        .await
        .list_enrollments(proto::ListEnrollmentsRequest { page_size: 1, ..Default::default() })
        .await
        .unwrap();
    assert_eq!((page.enrollments.len(), page.next_page_token.is_empty()), (1, false));

    let end = |key: &str, date: &str| proto::DeenrollRequest {
        idempotency_key: key.into(),
        enrollment_id: a.enrollment_id.clone(),
        end_date: date.into(),
        reason: proto::EnrollmentEndReason::NonUsage.into(),
        note: String::new(),
    };
    let err = viettel.deenroll(end("y", "2025-03-01")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err}");
    let err = vnpt.deenroll(end("y", "2025-02-01")).await.unwrap_err();
    assert_eq!(fields(&err), ["end_date"], "{err}");
}

/// `GetEnrollment`: an operator reads its own enrolment by id, another operator's is not found
/// (as one that does not exist), ICT reads any; the household read is on the audit record.
#[tokio::test]
async fn an_enrolment_is_read_by_its_id_by_its_operator_and_ict() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let (vnpt, viettel, ict) = (app.client("VNPT").await, app.client("VIETTEL").await, app.client("DOICT").await);
    let a = vnpt.enroll(enroll_request("v1", "HH-1", 1, "0912345678", "2025-02-01")).await.unwrap();
    assert_eq!(vnpt.get_enrollment(&a.enrollment_id).await.unwrap(), a);
    assert_eq!(ict.get_enrollment(&format!(" {} ", a.enrollment_id)).await.unwrap(), a);
    let err = viettel.get_enrollment(&a.enrollment_id).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err}");
    let missing = viettel.get_enrollment("999999").await.unwrap_err();
    let said = |e: &Error| e.rejection().map(|r| r.message.clone()).unwrap_or_default();
    assert_eq!((missing.code(), said(&missing)), (err.code(), "you have no enrolment 999999".into()), "{missing}");
    let err = ict.get_enrollment("999999").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err}");
    for bad in ["", "0", "-3", "e1", "1.5"] {
        let err = vnpt.get_enrollment(bad).await.unwrap_err();
        assert_eq!(
            (err.code(), fields(&err)),
            (Some(Code::InvalidArgument), vec!["enrollment_id".to_owned()]),
            "{bad:?}"
        );
        assert!(said(&err).contains(&format!("{bad:?}")), "{err}");
    }
    let err = app.client("DOLISA").await.get_enrollment(&a.enrollment_id).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied), "{err}");
    // Who read HH-1's enrolment is on record; the refused operator read nothing of it.
    let records = ict
        .query_audit(proto::QueryAuditRequest { household_code: "HH-1".into(), ..Default::default() })
        .await
        .unwrap()
        .records;
    let readers: Vec<&str> =
        records.iter().filter(|r| r.method.ends_with("/GetEnrollment")).map(|r| r.caller.as_str()).collect();
    assert_eq!(readers, ["VNPT", "DOICT"], "{records:?}");
}

#[tokio::test]
async fn two_operators_enrolling_the_same_household_at_once_get_one_line() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let (vnpt, viettel) = (app.client("VNPT").await, app.client("VIETTEL").await);
    for round in 0..5 {
        let code = if round % 2 == 0 { "HH-1" } else { "HH-2" };
        let n = if code == "HH-1" { 1 } else { 2 };
        let start = format!("2025-0{}-01", 2 + round);
        let (a, b) = tokio::join!(
            vnpt.enroll(enroll_request(&format!("v{round}"), code, n, &format!("091234567{round}"), &start)),
            viettel.enroll(enroll_request(&format!("x{round}"), code, n, &format!("098765432{round}"), &start)),
        );
        assert_eq!(usize::from(a.is_ok()) + usize::from(b.is_ok()), if round < 2 { 1 } else { 0 }, "{a:?} {b:?}");
    }
    let all = app.client("DOICT").await.list_enrollments(Default::default()).await.unwrap().enrollments;
    assert_eq!(all.len(), 2);
}

/// One idempotency key sent with two different enrolments at the same moment (a client that
/// reuses its keys): one is enrolled, the other is told the key was used for another request,
/// and nothing of it is kept. On PostgreSQL the key's table is held from outside until both
/// wait at their writes, so that both have looked the key up before either stores it.
#[tokio::test]
async fn one_key_for_two_enrolments_at_the_same_moment_enrols_one_and_names_the_key_to_the_other() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let (one, other) = (app.client("VNPT").await, app.client("VNPT").await);
    let hold = app.db.hold_writes("enrollment_writes").await;
    let released = async {
        if let Some(hold) = hold {
            hold.release_when_waiting(2).await;
        }
    };
    let (a, b, ()) = tokio::join!(
        one.enroll(enroll_request("same-key", "HH-1", 1, "0912000001", "2025-02-01")),
        other.enroll(enroll_request("same-key", "HH-2", 2, "0912000002", "2025-02-01")),
        released
    );
    let (kept, refused) = match (a, b) {
        (Ok(e), Err(r)) | (Err(r), Ok(e)) => (e, r),
        (a, b) => panic!("exactly one enrolment is kept: {a:?} {b:?}"),
    };
    assert_eq!(refused.code(), Some(Code::AlreadyExists), "{refused}");
    assert!(refused.to_string().contains("same-key"), "the refusal names the key: {refused}");
    let other_code = if kept.household_code == "HH-1" { "HH-2" } else { "HH-1" };
    assert!(enrollments_of(&one, other_code).await.is_empty(), "the refused enrolment is not kept");
}
