//! Identity: the organisation in the certificate must be an active member; every refusal is
//! in the audit trail with the organisation and certificate that tried.

use telesub_client::{Error, proto};
use telesub_server::pki::Validity;
use telesub_tests::{TestApp, fingerprint_of, read};

#[tokio::test]
async fn who_am_i_reports_the_member_and_its_certificate() {
    let app = TestApp::spawn().await;
    let me = app.client("GIANGHIA").await.who_am_i().await.unwrap();
    let member = me.member.unwrap();
    assert_eq!(member.code, "GIANGHIA");
    assert_eq!(member.role(), proto::Role::Locality);
    assert_eq!(member.unit_code, "660");
    assert_eq!(member.status(), proto::MemberStatus::Active);
    let expected = fingerprint_of(&read(app.dir().client_cert("GIANGHIA")));
    assert_eq!(me.certificate_fingerprint, expected);
    assert!(member.certificates.iter().any(|c| c.sha256_fingerprint == expected), "the certificate used is recorded");
    assert_eq!(me.request_id.len(), 32);
}

#[tokio::test]
async fn a_member_with_two_certificates_has_both_recorded() {
    let app = TestApp::spawn().await;
    app.client("VNPT").await.who_am_i().await.unwrap();
    let second = app.client_with_new_certificate("VNPT", Validity::days(30)).await.unwrap();
    let me = second.who_am_i().await.unwrap();
    let member = me.member.unwrap();
    assert_eq!(member.certificates.len(), 2, "{:?}", member.certificates);
    assert!(member.certificates.iter().any(|c| c.sha256_fingerprint == me.certificate_fingerprint));
}

#[tokio::test]
async fn an_unknown_organisation_is_unauthenticated_and_audited() {
    let app = TestApp::spawn().await;
    let stranger = app.client_with_new_certificate("MOBIFONE", Validity::days(30)).await.unwrap();
    let err = stranger.who_am_i().await.unwrap_err();
    let Error::Unauthenticated(rejection) = &err else { panic!("expected UNAUTHENTICATED, got {err:?}") };
    assert!(rejection.message.contains("MOBIFONE"), "{}", rejection.message);
    let record = app.audit_record(err.request_id().expect("a request id")).await;
    assert_eq!(record.entry.outcome, "UNAUTHENTICATED");
    assert_eq!(record.entry.org_code.as_deref(), Some("MOBIFONE"));
    assert_eq!(record.entry.method, "/telesub.v1.Members/WhoAmI");
    assert!(record.entry.cert_fingerprint.is_some());
}

#[tokio::test]
async fn a_certificate_without_a_valid_organisation_is_unauthenticated() {
    let app = TestApp::spawn().await;
    // The SAN reads urn:telesub:org:vnpt, and codes are upper case.
    let client = app.client_with_new_certificate("vnpt", Validity::days(30)).await.unwrap();
    let err = client.who_am_i().await.unwrap_err();
    assert!(matches!(err, Error::Unauthenticated(_)), "{err:?}");
    let record = app.audit_record(err.request_id().unwrap()).await;
    assert_eq!(record.entry.org_code, None);
    assert!(record.entry.detail.contains("organisation code"), "{}", record.entry.detail);
}

#[tokio::test]
async fn a_suspended_member_is_refused_until_reinstated() {
    let app = TestApp::spawn().await;
    let ict = app.client("DOICT").await;
    let operator = app.client("VIETTEL").await;
    operator.who_am_i().await.unwrap();

    let suspended = ict.suspend_member("VIETTEL", "certificate reported lost").await.unwrap();
    assert_eq!(suspended.status(), proto::MemberStatus::Suspended);
    assert_eq!(suspended.status_reason, "certificate reported lost");

    // Takes effect on the next call, also on a connection opened before.
    let err = operator.who_am_i().await.unwrap_err();
    let Error::PermissionDenied(r) = &err else { panic!("expected PERMISSION_DENIED, got {err:?}") };
    assert!(r.message.contains("suspended"), "{}", r.message);
    let record = app.audit_record(err.request_id().unwrap()).await;
    assert_eq!(
        (record.entry.outcome.as_str(), record.entry.org_code.as_deref()),
        ("PERMISSION_DENIED", Some("VIETTEL"))
    );

    let reinstated = ict
        .update_member(proto::UpdateMemberRequest {
            code: "VIETTEL".into(),
            status: Some(proto::MemberStatus::Active.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(reinstated.status(), proto::MemberStatus::Active);
    assert_eq!(reinstated.status_reason, "");
    assert_eq!(operator.who_am_i().await.unwrap().member.unwrap().code, "VIETTEL");
}

#[tokio::test]
async fn a_member_outside_its_role_is_denied_and_the_denial_is_audited() {
    let app = TestApp::spawn().await;
    let operator = app.client("VNPT").await;
    let err = operator.list_members(proto::ListMembersRequest::default()).await.unwrap_err();
    let Error::PermissionDenied(r) = &err else { panic!("expected PERMISSION_DENIED, got {err:?}") };
    assert!(r.message.contains("OPERATOR") && r.message.contains("ListMembers"), "{}", r.message);

    let record = app.audit_record(err.request_id().unwrap()).await;
    assert_eq!(record.entry.method, "/telesub.v1.Members/ListMembers");
    assert_eq!(record.entry.outcome, "PERMISSION_DENIED");
    assert_eq!(record.entry.org_code.as_deref(), Some("VNPT"));
    let fingerprint = fingerprint_of(&read(app.dir().client_cert("VNPT")));
    assert_eq!(record.entry.cert_fingerprint.as_deref(), Some(fingerprint.as_str()));
    assert!(record.entry.detail.contains("OPERATOR"), "{}", record.entry.detail);
}

/// A fault inside the hub reaches the caller as a generic message with the request id, never
/// as database text; the log and the audit trail have the rest.
#[tokio::test]
async fn an_internal_fault_is_reported_without_its_cause() {
    let app = TestApp::spawn().await;
    app.client("DOICT").await.who_am_i().await.unwrap();
    app.db.execute("ALTER TABLE member_certificates RENAME TO member_certificates_gone").await.unwrap();

    // DOLISA has not called yet: the hub must read and write the member's certificates.
    let err = app.client("DOLISA").await.who_am_i().await.unwrap_err();
    let Error::Internal(r) = &err else { panic!("expected INTERNAL, got {err:?}") };
    let request_id = err.request_id().expect("a request id to quote");
    assert!(r.message.contains(request_id), "{}", r.message);
    for leak in ["member_certificates", "no such table", "relation", "sqlx", "SQL"] {
        assert!(!r.message.contains(leak), "the message leaks {leak:?}: {}", r.message);
    }
    let record = app.audit_record(request_id).await;
    assert_eq!(record.entry.outcome, "INTERNAL");
}
