//! The member registry through the API: registering, listing, changing and suspending.

use telesub_client::{Error, proto};
use telesub_tests::TestApp;

fn operator(code: &str, name: &str) -> proto::RegisterMemberRequest {
    proto::RegisterMemberRequest {
        code: code.into(),
        display_name: name.into(),
        role: proto::Role::Operator.into(),
        unit_code: String::new(),
    }
}

fn fields(err: &Error) -> Vec<&str> {
    err.violations().iter().map(|v| v.field.as_str()).collect()
}

#[tokio::test]
async fn ict_registers_a_member_who_can_then_call() {
    let app = TestApp::spawn().await;
    let ict = app.client("DOICT").await;
    let member = ict.register_member(operator("MOBIFONE", "Tổng công ty Viễn thông MobiFone")).await.unwrap();
    assert_eq!(member.code, "MOBIFONE");
    assert_eq!(member.role(), proto::Role::Operator);
    assert_eq!(member.status(), proto::MemberStatus::Active);
    assert!(member.certificates.is_empty());
    assert!(member.created_at.is_some());

    // The new member's certificate comes from the province's CA; it works at once.
    let mobifone = app.client_with_new_certificate("MOBIFONE", telesub_server::pki::Validity::days(30)).await.unwrap();
    let me = mobifone.who_am_i().await.unwrap().member.unwrap();
    assert_eq!(me.display_name, "Tổng công ty Viễn thông MobiFone");
    assert_eq!(me.certificates.len(), 1);
}

#[tokio::test]
async fn names_are_stored_in_nfc() {
    let app = TestApp::spawn().await;
    let ict = app.client("DOICT").await;
    // "Việt" with the dot below and circumflex as combining marks (NFD).
    let decomposed = "Vie\u{323}\u{302}t Nam Mobile";
    let member = ict.register_member(operator("VNMOBILE", decomposed)).await.unwrap();
    assert_eq!(member.display_name, "Việt Nam Mobile");
    assert_eq!(member.display_name.chars().count(), 15);
}

#[tokio::test]
async fn a_taken_code_is_refused() {
    let app = TestApp::spawn().await;
    let ict = app.client("DOICT").await;
    let err = ict.register_member(operator("VNPT", "Another VNPT")).await.unwrap_err();
    let Error::AlreadyExists(r) = &err else { panic!("expected ALREADY_EXISTS, got {err:?}") };
    assert!(r.message.contains("VNPT"), "{}", r.message);
    let vnpt = app.client("VNPT").await.who_am_i().await.unwrap().member.unwrap();
    assert_eq!(vnpt.display_name, "VNPT", "the existing member is untouched");
}

#[tokio::test]
async fn a_malformed_registration_names_every_bad_field() {
    let app = TestApp::spawn().await;
    let ict = app.client("DOICT").await;
    let err = ict
        .register_member(proto::RegisterMemberRequest {
            code: "bad code".into(),
            display_name: "   ".into(),
            role: 0,
            unit_code: "12ab".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    assert_eq!(fields(&err), ["code", "display_name", "role", "unit_code"]);
    assert!(err.request_id().is_some());
    assert!(err.violations()[0].description.contains("bad code"));

    let listed = ict.list_members(proto::ListMembersRequest::default()).await.unwrap();
    assert_eq!(listed.members.len(), telesub_tests::ORGS.len(), "nothing was stored");
}

#[tokio::test]
async fn unit_scope_goes_with_the_locality_role() {
    let app = TestApp::spawn().await;
    let ict = app.client("DOICT").await;
    let mut locality = operator("DAKMIL", "UBND huyện Đắk Mil");
    locality.role = proto::Role::Locality.into();
    let err = ict.register_member(locality.clone()).await.unwrap_err();
    assert_eq!(fields(&err), ["unit_code"]);
    locality.unit_code = "662".into();
    assert_eq!(ict.register_member(locality).await.unwrap().unit_code, "662");

    let mut scoped_operator = operator("REDDI", "Reddi");
    scoped_operator.unit_code = "662".into();
    let err = ict.register_member(scoped_operator).await.unwrap_err();
    assert_eq!(fields(&err), ["unit_code"]);

    // Turning a locality into an operator must also drop its scope.
    let err = ict
        .update_member(proto::UpdateMemberRequest {
            code: "DAKMIL".into(),
            role: Some(proto::Role::Operator.into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["role"]);
    let changed = ict
        .update_member(proto::UpdateMemberRequest {
            code: "DAKMIL".into(),
            role: Some(proto::Role::Operator.into()),
            unit_code: Some(String::new()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((changed.role(), changed.unit_code.as_str()), (proto::Role::Operator, ""));
}

#[tokio::test]
async fn members_come_in_pages_and_filter_by_role_and_status() {
    let app = TestApp::spawn().await;
    let ict = app.client("DOICT").await;
    for i in 0..5 {
        ict.register_member(operator(&format!("OP{i}"), &format!("Operator {i}"))).await.unwrap();
    }
    let mut codes = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = ict
            .list_members(proto::ListMembersRequest { page_size: 4, page_token: token, ..Default::default() })
            .await
            .unwrap();
        assert!(page.members.len() <= 4);
        codes.extend(page.members.into_iter().map(|m| m.code));
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let total = telesub_tests::ORGS.len() + 5;
    assert_eq!(codes.len(), total);
    assert_eq!(pages, total.div_ceil(4));
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!(codes, sorted, "pages come in code order without repeats");

    ict.suspend_member("OP3", "contract ended").await.unwrap();
    let operators = ict
        .list_members(proto::ListMembersRequest {
            role: proto::Role::Operator.into(),
            status: proto::MemberStatus::Active.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let codes: Vec<_> = operators.members.iter().map(|m| m.code.as_str()).collect();
    assert_eq!(codes, ["OP0", "OP1", "OP2", "OP4", "VIETTEL", "VNPT"]);

    let err = ict
        .list_members(proto::ListMembersRequest {
            page_size: 501,
            page_token: "not a token".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["page_size", "page_token"]);
}

#[tokio::test]
async fn suspension_needs_a_reason_and_an_existing_active_member() {
    let app = TestApp::spawn().await;
    let ict = app.client("DOICT").await;
    let err = ict.suspend_member("VNPT", "  ").await.unwrap_err();
    assert_eq!(fields(&err), ["reason"]);
    let err = ict.suspend_member("NOBODY", "gone").await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    ict.suspend_member("VNPT", "audit finding 2026-11").await.unwrap();
    let err = ict.suspend_member("VNPT", "again").await.unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition(_)), "{err:?}");
    let err = ict
        .update_member(proto::UpdateMemberRequest {
            code: "VNPT".into(),
            status: Some(proto::MemberStatus::Suspended.into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["status"]);
}

#[tokio::test]
async fn the_last_active_ict_member_cannot_lock_the_hub() {
    let app = TestApp::spawn().await;
    let ict = app.client("DOICT").await;
    let err = ict.suspend_member("DOICT", "oops").await.unwrap_err();
    let Error::FailedPrecondition(r) = &err else { panic!("expected FAILED_PRECONDITION, got {err:?}") };
    assert!(r.message.contains("last active ICT member"), "{}", r.message);
    let err = ict
        .update_member(proto::UpdateMemberRequest {
            code: "DOICT".into(),
            role: Some(proto::Role::Labour.into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition(_)), "{err:?}");
    assert_eq!(ict.who_am_i().await.unwrap().member.unwrap().role(), proto::Role::Ict);

    // With a second ICT member the first may step down.
    let mut second = operator("DOICT2", "Trung tâm CNTT-TT");
    second.role = proto::Role::Ict.into();
    ict.register_member(second).await.unwrap();
    ict.suspend_member("DOICT", "handing over").await.unwrap();
    let err = ict.who_am_i().await.unwrap_err();
    assert!(matches!(err, Error::PermissionDenied(_)), "{err:?}");
}

#[tokio::test]
async fn updates_change_only_what_is_given() {
    let app = TestApp::spawn().await;
    let ict = app.client("DOICT").await;
    let before = ict.who_am_i().await.unwrap();
    let updated = ict
        .update_member(proto::UpdateMemberRequest {
            code: "DOLISA".into(),
            display_name: Some("Sở Lao động – Thương binh và Xã hội".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(updated.display_name, "Sở Lao động – Thương binh và Xã hội");
    assert_eq!(updated.role(), proto::Role::Labour);
    assert_eq!(updated.status(), proto::MemberStatus::Active);
    assert!(updated.updated_at.unwrap().seconds >= updated.created_at.unwrap().seconds);
    let err = ict
        .update_member(proto::UpdateMemberRequest { code: "NOBODY".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    assert_eq!(before.member.unwrap().code, "DOICT");
}

/// `telesub pki init` run again adds an organisation to the folder; a serving hub (the real
/// process) registers it on SIGHUP, without a restart.
#[tokio::test]
async fn a_hub_registers_the_folders_new_members_on_sighup() {
    let app = TestApp::spawn().await;
    let hub = app.spawn_process_beside().await;
    let spec: telesub_server::pki::OrgSpec = "MOBIFONE:OPERATOR".parse().unwrap();
    let report = telesub_server::pki::init(app.tls_dir.path(), &[spec]).unwrap();
    assert!(!report.created_ca && report.issued == ["MOBIFONE"], "{report:?}");
    let mobifone = app.client_of(&hub, "MOBIFONE").await;
    let err = mobifone.who_am_i().await.unwrap_err();
    assert!(matches!(err, Error::Unauthenticated(_)), "{err:?}");

    hub.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        match mobifone.who_am_i().await {
            Ok(me) => {
                let member = me.member.unwrap();
                assert_eq!((member.code.as_str(), member.role()), ("MOBIFONE", proto::Role::Operator));
                break;
            }
            Err(Error::Unauthenticated(_)) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("MOBIFONE was not registered after SIGHUP: {e:?}"),
        }
    }
    // The members already registered are left as they were.
    let page = app.client("DOICT").await.list_members(proto::ListMembersRequest::default()).await.unwrap();
    assert_eq!(page.members.iter().filter(|m| m.code == "MOBIFONE").count(), 1);
}
