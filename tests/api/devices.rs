//! Device allocation through the API: ICT records the Ministry's decision, the hub proposes
//! the recipients by the policy's rules, ICT amends and submits, the People's Committee
//! approves, hand-overs are recorded, and the approved list is published.

use std::collections::HashSet;

use prost::Message;
use telesub_client::{Client, Code, Error, proto};
use telesub_tests::TestApp;

use crate::households::{cid, header, household, push, removal};

const DECISION: &str = "101/QĐ-BTTTT";

/// A household of `category` in `commune`, head's ID from `n`, with the device flags set.
fn hh(
    code: &str,
    commune: &str,
    n: u32,
    category: proto::Category,
    flags: proto::HouseholdFlags,
) -> proto::HouseholdRecord {
    let mut r = household(code, commune, n);
    if let Some(proto::household_record::Change::Upsert(d)) = r.change.as_mut() {
        d.category = category.into();
        d.flags = Some(flags);
    }
    r
}

fn wants() -> proto::HouseholdFlags {
    proto::HouseholdFlags { wants_device: true, ..Default::default() }
}

/// Households and where the rules put them (communes 24611 in district 660, 24616 in 661):
/// M1 meritorious-service family (first), S1 social-policy family (second), P1–P3 poor, N1–N2
/// near-poor; Q1 poor and Q2 near-poor in 661. Left out: X1 does not want a device, E1 had one
/// from the earlier programme, O1 is of a category without devices, R1 left the list in
/// February.
pub(crate) async fn with_register(app: &TestApp) {
    use proto::Category::{NearPoor, Poor, SocialPolicy};
    let labour = app.client("DOLISA").await;
    let merit = proto::HouseholdFlags { meritorious_service_family: true, ..wants() };
    let social = proto::HouseholdFlags { social_policy_family: true, ..wants() };
    let records = vec![
        hh("M1", "24611", 1, Poor, merit),
        hh("S1", "24611", 2, NearPoor, social),
        hh("P1", "24611", 3, Poor, wants()),
        hh("P2", "24611", 4, Poor, wants()),
        hh("P3", "24611", 5, Poor, wants()),
        hh("N1", "24611", 6, NearPoor, wants()),
        hh("N2", "24611", 7, NearPoor, wants()),
        hh("X1", "24611", 8, Poor, proto::HouseholdFlags::default()),
        hh("E1", "24611", 9, Poor, proto::HouseholdFlags { earlier_programme_device: true, ..wants() }),
        hh("O1", "24611", 10, SocialPolicy, wants()),
        hh("R1", "24611", 11, Poor, wants()),
        hh("Q1", "24616", 12, Poor, wants()),
        hh("Q2", "24616", 13, NearPoor, wants()),
    ];
    push(&labour, header("review-2024", proto::BatchKind::Snapshot, "2024", "2025-01-01"), records).await.unwrap();
    push(
        &labour,
        header("2025-02", proto::BatchKind::Delta, "2025-02", "2025-02-01"),
        vec![removal("R1", proto::RemovalReason::OutOfPoverty, "2025-02-01")],
    )
    .await
    .unwrap();
}

/// 6 places in district 660 (4 smartphones, 2 tablets) and 2 in 661 (one of each).
pub(crate) fn decision(number: &str) -> proto::RecordAllocationDecisionRequest {
    proto::RecordAllocationDecisionRequest {
        decision_number: number.into(),
        decision_date: "2025-03-01".into(),
        tablets: 3,
        smartphones: 5,
        unit_quotas: vec![
            proto::UnitQuota { unit_code: "660".into(), tablets: 2, smartphones: 4, ..Default::default() },
            proto::UnitQuota { unit_code: "661".into(), tablets: 1, smartphones: 1, ..Default::default() },
        ],
        cash_alternative_amount: 0,
        note: "Phân bổ thiết bị đợt 1".into(),
    }
}

fn lottery(number: &str, code: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, format!("{number}\n{code}").as_bytes()).as_ref().to_vec()
}

async fn recipients(client: &Client, number: &str) -> Vec<proto::AllocationRecipient> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_allocation_recipients(proto::ListAllocationRecipientsRequest {
                decision_number: number.into(),
                page_size: 3,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap();
        out.extend(page.recipients);
        if page.next_page_token.is_empty() {
            return out;
        }
        token = page.next_page_token;
    }
}

fn codes(list: &[proto::AllocationRecipient]) -> Vec<&str> {
    list.iter().map(|r| r.household_code.as_str()).collect()
}

fn amend(
    code: &str,
    action: proto::AmendAction,
    device: proto::DeviceType,
    reason: &str,
) -> proto::AmendProposalRequest {
    proto::AmendProposalRequest {
        decision_number: DECISION.into(),
        action: action.into(),
        household_code: code.into(),
        device_type: device.into(),
        reason: reason.into(),
    }
}

/// A 15-digit IMEI from 14 digits and their Luhn check digit.
pub(crate) fn imei(prefix: &str) -> String {
    let sum: u32 = prefix
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d }
        })
        .sum();
    format!("{prefix}{}", (10 - sum % 10) % 10)
}

/// Today in the province: hand-overs follow the approval, which the tests make today.
fn today() -> String {
    telesub_server::domain::household::format_date(telesub_server::domain::clock::Clock::system().today())
}

fn phone(code: &str, imei: &str) -> proto::RecordHandoverRequest {
    proto::RecordHandoverRequest {
        decision_number: DECISION.into(),
        household_code: code.into(),
        handed_over_on: today(),
        received_by: "Nguyễn Văn An".into(),
        kind: Some(proto::record_handover_request::Kind::Device(proto::DeviceHandover {
            device_type: proto::DeviceType::Smartphone.into(),
            serial_number: String::new(),
            imei: imei.into(),
        })),
    }
}

fn fields(err: &Error) -> Vec<&str> {
    err.violations().iter().map(|v| v.field.as_str()).collect()
}

async fn published(
    client: &Client,
    number: &str,
    commune: &str,
    format: proto::PublishFormat,
) -> Result<(String, String), Error> {
    let file = client
        .published_recipients_file(proto::PublishedRecipientsRequest {
            decision_number: number.into(),
            commune_code: commune.into(),
            format: format.into(),
            without_byte_order_mark: false,
        })
        .await?;
    let text = String::from_utf8(file.data).expect("UTF-8");
    // A CSV file starts with the byte-order mark spreadsheet programs need.
    let text = match format {
        proto::PublishFormat::Csv => text.strip_prefix('\u{feff}').expect("a byte-order mark").to_owned(),
        _ => text,
    };
    Ok((file.file_name, text))
}

#[tokio::test]
async fn a_decision_is_proposed_by_the_rules_amended_approved_handed_over_and_published() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let (ict, committee, education) = (app.client("DOICT").await, app.client("UBND").await, app.client("DOET").await);
    let (locality, vnpt) = (app.client("GIANGHIA").await, app.client("VNPT").await);

    let recorded = ict.record_allocation_decision(decision(DECISION)).await.unwrap();
    assert_eq!(recorded.status(), proto::AllocationStatus::Recorded);
    assert_eq!(recorded.cash_alternative_amount, 500_000, "the policy's cash alternative");
    assert_eq!(recorded.unit_quotas[0].unit_name, "Thành phố Gia Nghĩa");
    // Recording the same decision again (a retry) changes nothing.
    assert_eq!(ict.record_allocation_decision(decision(DECISION)).await.unwrap().recorded_at, recorded.recorded_at);
    let nominated = education.nominate_households(DECISION, ["N2", "N2"], "học sinh THCS Nghĩa Đức").await.unwrap();
    assert_eq!((nominated.nominated, nominated.already_nominated), (1, 0));

    let proposed = ict.propose_recipients(DECISION, "2025-03-01").await.unwrap();
    assert_eq!(proposed.status(), proto::AllocationStatus::Proposed);
    assert_eq!((proposed.eligible_households, proposed.recipients), (9, 8), "{proposed:?}");
    assert_eq!(proposed.proposal_as_of, "2025-03-01");
    let list = recipients(&ict, DECISION).await;
    // Ranks number the list; the priority groups come first, then the nominated household,
    // then the lottery decides among the poor of 660; 661 follows.
    assert_eq!(list.iter().map(|r| r.rank).collect::<Vec<_>>(), (1..=8).collect::<Vec<i64>>());
    let mut poor = ["P1", "P2", "P3"];
    poor.sort_by_key(|c| lottery(DECISION, c));
    assert_eq!(codes(&list), ["M1", "S1", poor[0], poor[1], poor[2], "N2", "Q1", "Q2"]);
    use proto::DeviceType::{Smartphone, Tablet};
    let devices: Vec<_> = list.iter().map(|r| r.device_type()).collect();
    assert_eq!(devices, [Smartphone, Smartphone, Smartphone, Smartphone, Tablet, Tablet, Smartphone, Tablet]);
    assert_eq!(list[0].priority(), proto::DevicePriority::MeritoriousServiceFamily);
    assert_eq!(list[1].priority(), proto::DevicePriority::SocialPolicyFamily);
    assert_eq!(list[2].priority(), proto::DevicePriority::Poor);
    assert_eq!(list[5].priority(), proto::DevicePriority::NearPoor);
    assert!(list[5].nominated && !list[4].nominated);
    assert_eq!((list[0].unit_code.as_str(), list[6].unit_code.as_str()), ("660", "661"));
    assert_eq!(list[0].head_name_masked, "Nguyễn V. A.");

    // The same data gives the same list, byte for byte.
    let again = ict.propose_recipients(DECISION, "2025-03-01").await.unwrap();
    assert_eq!(again.proposal_digest, proposed.proposal_digest);
    assert_eq!(again.revision, proposed.revision + 1);
    let bytes = |l: &[proto::AllocationRecipient]| l.iter().flat_map(|r| r.encode_to_vec()).collect::<Vec<u8>>();
    assert_eq!(bytes(&recipients(&ict, DECISION).await), bytes(&list));

    // Amendments: each with a reason, each kept.
    let dropped = poor[0];
    let err = ict.amend_proposal(amend(dropped, proto::AmendAction::Remove, Tablet, "")).await.unwrap_err();
    assert_eq!((err.code(), fields(&err)), (Some(Code::InvalidArgument), vec!["reason"]));
    let err = ict.amend_proposal(amend("N1", proto::AmendAction::Add, Tablet, "hộ khó khăn")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "660's tablets are taken: {err}");
    let err = ict.amend_proposal(amend("X1", proto::AmendAction::Add, Smartphone, "xin bổ sung")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "X1 did not ask for a device: {err}");
    assert!(err.to_string().contains("X1"), "{err}");
    let err = ict.amend_proposal(amend("M1", proto::AmendAction::Add, Smartphone, "lặp")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::AlreadyExists), "{err}");
    let err = ict.amend_proposal(amend("N1", proto::AmendAction::Remove, Tablet, "không có")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err}");
    ict.amend_proposal(amend(dropped, proto::AmendAction::Remove, Tablet, "đã chuyển đi nơi khác")).await.unwrap();
    let amended = ict.amend_proposal(amend("N1", proto::AmendAction::Add, Smartphone, "hộ neo đơn")).await.unwrap();
    assert_eq!(amended.recipients, 8);
    let shown = ict.get_allocation(DECISION).await.unwrap();
    assert_eq!(shown.amendments.len(), 2);
    assert_eq!(shown.amendments[0].reason, "đã chuyển đi nơi khác");
    assert_eq!(shown.amendments[1].amended_by, "DOICT");
    let list = recipients(&ict, DECISION).await;
    assert!(!codes(&list).contains(&dropped));
    let n1 = list.iter().find(|r| r.household_code == "N1").unwrap();
    assert!(n1.added && n1.rank == 9 && n1.device_type() == Smartphone);

    // The committee sees only a submitted list, and approves the list it reviewed.
    let err = committee
        .approve_allocation(proto::ApproveRequest {
            decision_number: DECISION.into(),
            approval_number: "55/QĐ-UBND".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err}");
    let submitted = ict.submit_for_approval(DECISION).await.unwrap();
    assert_eq!(submitted.status(), proto::AllocationStatus::Submitted);
    assert_eq!(submitted.list_digest.len(), 64);
    let err = ict.amend_proposal(amend("N1", proto::AmendAction::Remove, Tablet, "nhầm")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "a submitted list is not amended: {err}");
    let returned = committee.return_allocation(DECISION, "Bổ sung hộ N1 cần giải trình").await.unwrap();
    assert_eq!(returned.status(), proto::AllocationStatus::Returned);
    let resubmitted = ict.submit_for_approval(DECISION).await.unwrap();
    assert_eq!(resubmitted.list_digest, submitted.list_digest);
    let approve = |digest: &str, on: &str| proto::ApproveRequest {
        decision_number: DECISION.into(),
        approval_number: "55/QĐ-UBND".into(),
        note: String::new(),
        list_digest: digest.into(),
        approved_on: on.into(),
    };
    let err = committee.approve_allocation(approve(&"0".repeat(64), "")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err}");
    let err = ict.approve_allocation(approve("", "")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied), "{err}");
    // The approving decision's date: not in the future, not before the allocation decision.
    for bad in ["2099-01-01", "2025-02-28", "20.03.2025"] {
        let err = committee.approve_allocation(approve(&submitted.list_digest, bad)).await.unwrap_err();
        assert_eq!(fields(&err), ["approved_on"], "{bad}: {err}");
    }
    let approved = committee.approve_allocation(approve(&submitted.list_digest, "2025-03-20")).await.unwrap();
    assert_eq!(approved.status(), proto::AllocationStatus::Approved);
    assert_eq!((approved.approval_number.as_str(), approved.decided_by.as_str()), ("55/QĐ-UBND", "UBND"));
    assert_eq!(approved.approved_on, "2025-03-20");
    let err = ict.amend_proposal(amend("N1", proto::AmendAction::Remove, Tablet, "nhầm")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "an approved list is frozen: {err}");
    let err = ict.propose_recipients(DECISION, "2025-03-01").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err}");

    // Hand-overs, from the day of the approving decision (recorded today, long after it).
    let early =
        proto::RecordHandoverRequest { handed_over_on: "2025-03-19".into(), ..phone("M1", &imei("35000000000001")) };
    let err = ict.record_handover(early).await.unwrap_err();
    assert_eq!(fields(&err), ["handed_over_on"], "before the approval: {err}");
    assert!(err.to_string().contains("approved on 2025-03-20"), "{err}");
    let m1 = ict.record_handover(phone("M1", &imei("35000000000001"))).await.unwrap();
    assert_eq!((m1.recorded_by.as_str(), m1.handed_over_on.clone()), ("DOICT", today()));
    assert!(!m1.replayed);
    let replay = ict.record_handover(phone("M1", &imei("35000000000001"))).await.unwrap();
    assert_eq!(replay.recorded_at, m1.recorded_at, "the same hand-over recorded again");
    assert!(replay.replayed, "the answer says it was recorded before");
    let err = ict.record_handover(phone("M1", &imei("35000000000002"))).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::AlreadyExists), "one device per household: {err}");
    let err = ict.record_handover(phone("S1", &imei("35000000000001"))).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::AlreadyExists), "an IMEI is one device: {err}");
    let mut wrong = imei("35000000000003");
    wrong.replace_range(14.., if wrong.ends_with('0') { "1" } else { "0" });
    let err = ict.record_handover(phone("S1", &wrong)).await.unwrap_err();
    assert_eq!((err.code(), fields(&err)), (Some(Code::InvalidArgument), vec!["device.imei"]));
    let err = ict.record_handover(phone("S1", "")).await.unwrap_err();
    assert_eq!(fields(&err), ["device.imei"], "a smartphone needs its IMEI");
    let err = ict.record_handover(phone("X1", &imei("35000000000004"))).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "X1 is not on the list: {err}");
    let err = locality.record_handover(phone("Q1", &imei("35000000000005"))).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied), "Q1 lives in 661, outside GIANGHIA's 660: {err}");
    let s1 = locality.record_handover(phone("S1", &imei("35000000000006"))).await.unwrap();
    assert_eq!(s1.recorded_by, "GIANGHIA");
    let mut tablet = phone("N2", "");
    tablet.kind = Some(proto::record_handover_request::Kind::Device(proto::DeviceHandover {
        device_type: Tablet.into(),
        serial_number: "TAB-2025-0001".into(),
        imei: String::new(),
    }));
    ict.record_handover(tablet).await.unwrap();
    let cash = |bought: &str, amount: i64| proto::RecordHandoverRequest {
        kind: Some(proto::record_handover_request::Kind::Cash(proto::CashPayment {
            amount,
            phone_bought_on: bought.into(),
            receipt_reference: "PC-0012".into(),
        })),
        ..phone("N1", "")
    };
    let err = ict.record_handover(cash("2022-06-01", 400_000)).await.unwrap_err();
    assert_eq!(fields(&err), ["cash.amount", "cash.phone_bought_on"], "{err}");
    ict.record_handover(cash("2023-01-10", 500_000)).await.unwrap();
    let err = vnpt.record_handover(phone("Q1", &imei("35000000000007"))).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied));

    let shown = ict.get_allocation(DECISION).await.unwrap();
    let p660 = shown.progress.iter().find(|p| p.unit_code == "660").unwrap();
    assert_eq!((p660.on_list, p660.devices_handed_over, p660.cash_paid, p660.not_yet), (6, 3, 1, 2), "{p660:?}");
    assert_eq!((p660.smartphones_quota, p660.tablets_quota), (4, 2));
    let p661 = shown.progress.iter().find(|p| p.unit_code == "661").unwrap();
    assert_eq!((p661.on_list, p661.not_yet), (2, 2));

    // Reading by unit and status; a locality reads its own unit only.
    let waiting = ict
        .all_allocation_recipients(proto::ListAllocationRecipientsRequest {
            decision_number: DECISION.into(),
            status: proto::RecipientStatus::NotYet.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(codes(&waiting), [poor[1], poor[2], "Q1", "Q2"]);
    let theirs = locality
        .all_allocation_recipients(proto::ListAllocationRecipientsRequest {
            decision_number: DECISION.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(theirs.len(), 6, "GIANGHIA sees district 660 only");
    let err = locality
        .list_allocation_recipients(proto::ListAllocationRecipientsRequest {
            decision_number: DECISION.into(),
            unit_code: "661".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied));
    let handed = list.iter().find(|r| r.household_code == "M1").unwrap().rank;
    let with_handover = recipients(&ict, DECISION).await;
    let m1 = with_handover.iter().find(|r| r.rank == handed).unwrap();
    assert_eq!(m1.handover.as_ref().map(|h| h.handed_over_on.clone()), Some(today()));

    // The published list: commune, shortened name, category, device, status; nothing that
    // identifies a person beyond that.
    let (name, csv) = published(&committee, DECISION, "", proto::PublishFormat::Csv).await.unwrap();
    assert!(name.ends_with(".csv"), "{name}");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "commune_code,commune,no,head_name,category,device_type,status,handed_over_on");
    assert_eq!(rows.len(), 1 + 8);
    let first = format!("24611,Phường Nghĩa Đức,1,Nguyễn V. A.,POOR,SMARTPHONE,DEVICE_HANDED_OVER,{}", today());
    assert_eq!(rows[1], first);
    assert!(rows.iter().any(|r| r.contains("CASH_PAID")));
    assert!(rows.last().unwrap().starts_with("24616,Xã Quảng Sơn,2,"), "{csv}");
    for n in 1..=13 {
        assert!(!csv.contains(&cid(n, 1980, false)) && !csv.contains(&cid(n, 1985, true)), "no citizen IDs");
    }
    assert!(!csv.contains("Thôn 3") && !csv.contains("Nguyễn Văn An") && !csv.contains("M1,"), "{csv}");
    let (name, page) = published(&locality, DECISION, "24611", proto::PublishFormat::Html).await.unwrap();
    assert!(name.ends_with("-24611.html"), "{name}");
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("Phường Nghĩa Đức"));
    assert!(page.contains("55/QĐ-UBND") && page.contains("Đã nhận thiết bị") && page.contains("Chưa nhận"));
    assert_eq!(page.matches("<tr><td class=\"no\">").count(), 6);
    assert!(!page.contains("Thôn 3") && !page.contains(&cid(1, 1980, false)));
    let again = published(&locality, DECISION, "24611", proto::PublishFormat::Html).await.unwrap();
    assert_eq!(again.1, page, "the same list, the same page");
    let err = published(&ict, DECISION, "", proto::PublishFormat::Html).await.unwrap_err();
    assert_eq!(fields(&err), ["commune_code"]);
    let err = published(&vnpt, DECISION, "", proto::PublishFormat::Csv).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied));

    // A second decision: no household gets a second device.
    ict.record_allocation_decision(proto::RecordAllocationDecisionRequest {
        decision_number: "202/QĐ-BTTTT".into(),
        decision_date: "2025-06-01".into(),
        tablets: 0,
        smartphones: 10,
        unit_quotas: vec![],
        cash_alternative_amount: 0,
        note: String::new(),
    })
    .await
    .unwrap();
    let err = published(&ict, "202/QĐ-BTTTT", "", proto::PublishFormat::Csv).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "not approved: {err}");
    let second = ict.propose_recipients("202/QĐ-BTTTT", "2025-06-01").await.unwrap();
    let second_list = recipients(&ict, "202/QĐ-BTTTT").await;
    assert_eq!(codes(&second_list), [dropped], "only the household taken off the first list: {second:?}");
    assert_eq!(second_list[0].unit_code, "", "a decision without a split is one pool");
    let first: HashSet<&str> = codes(&with_handover).into_iter().collect();
    assert!(!first.contains(dropped));
}

#[tokio::test]
async fn bad_decisions_and_requests_are_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let (ict, committee, vnpt) = (app.client("DOICT").await, app.client("UBND").await, app.client("VNPT").await);
    let refused = |r: Result<proto::Allocation, Error>| r.unwrap_err();

    let mut zero = decision("1/QĐ");
    zero.tablets = 0;
    zero.smartphones = 0;
    zero.unit_quotas.clear();
    let err = refused(ict.record_allocation_decision(zero).await);
    assert_eq!((err.code(), fields(&err)), (Some(Code::InvalidArgument), vec!["tablets"]));
    let mut negative = decision("1/QĐ");
    negative.tablets = -1;
    negative.unit_quotas[0].tablets = -3;
    let err = refused(ict.record_allocation_decision(negative).await);
    assert!(fields(&err).contains(&"tablets") && fields(&err).contains(&"unit_quotas[0]"), "{err}");
    let mut short = decision("1/QĐ");
    short.smartphones = 6;
    let err = refused(ict.record_allocation_decision(short).await);
    assert_eq!(fields(&err), ["unit_quotas"], "the split gives 5 smartphones, not 6");
    let mut empty_unit = decision("1/QĐ");
    empty_unit.unit_quotas.push(proto::UnitQuota { unit_code: "662".into(), ..Default::default() });
    let err = refused(ict.record_allocation_decision(empty_unit).await);
    assert_eq!(fields(&err), ["unit_quotas[2]"], "{err}");
    let mut unknown = decision("1/QĐ");
    unknown.unit_quotas[1].unit_code = "999".into();
    let err = refused(ict.record_allocation_decision(unknown).await);
    assert_eq!(fields(&err), ["unit_quotas[1].unit_code"], "{err}");
    let mut overlapping = decision("1/QĐ");
    overlapping.unit_quotas[1].unit_code = "24611".into();
    let err = refused(ict.record_allocation_decision(overlapping).await);
    assert_eq!(fields(&err), ["unit_quotas[1].unit_code"], "24611 lies in 660: {err}");
    let mut province = decision("1/QĐ");
    province.unit_quotas[1].unit_code = "67".into();
    let err = refused(ict.record_allocation_decision(province).await);
    assert_eq!(fields(&err), ["unit_quotas[1].unit_code"], "{err}");
    let mut future = decision("1/QĐ");
    future.decision_date = "2099-01-01".into();
    future.decision_number = "1<b>".into();
    let err = refused(ict.record_allocation_decision(future).await);
    assert_eq!(fields(&err), ["decision_number", "decision_date"], "{err}");
    let err = refused(vnpt.record_allocation_decision(decision("1/QĐ")).await);
    assert_eq!(err.code(), Some(Code::PermissionDenied));
    let err = refused(committee.record_allocation_decision(decision("1/QĐ")).await);
    assert_eq!(err.code(), Some(Code::PermissionDenied));
    assert!(ict.list_allocations(0, "").await.unwrap().allocations.is_empty(), "nothing was stored");

    let err = refused(ict.propose_recipients("7/QĐ", "").await);
    assert_eq!(err.code(), Some(Code::NotFound), "a proposal for a decision not recorded: {err}");
    let err = refused(vnpt.propose_recipients("7/QĐ", "").await);
    assert_eq!(err.code(), Some(Code::PermissionDenied));
    ict.record_allocation_decision(decision("1/QĐ")).await.unwrap();
    let mut other = decision("1/QĐ");
    other.note = "khác".into();
    let err = refused(ict.record_allocation_decision(other).await);
    assert_eq!(err.code(), Some(Code::AlreadyExists), "{err}");
    let err = refused(ict.propose_recipients("1/QĐ", "2099-01-01").await);
    assert_eq!(fields(&err), ["as_of"]);
    let err = refused(ict.propose_recipients("1/QĐ", "2020-01-01").await);
    assert_eq!(fields(&err), ["as_of"], "before the programme: {err}");
    let mut early = decision("3/QĐ");
    early.decision_date = "2021-05-01".into();
    let err = refused(ict.record_allocation_decision(early).await);
    assert_eq!(fields(&err), ["decision_date"], "{err}");
    let err = refused(ict.submit_for_approval("1/QĐ").await);
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "nothing proposed yet: {err}");
    let err = refused(committee.return_allocation("1/QĐ", "").await);
    assert_eq!(fields(&err), ["note"], "a return says what to change");
    let err = ict.nominate_households("1/QĐ", ["M1", "ZZ9"], "pupils").await.unwrap_err();
    assert_eq!(fields(&err), ["household_codes[1]"], "{err}");
    let err = vnpt.nominate_households("1/QĐ", ["M1"], "pupils").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied));

    let listed = ict.list_allocations(0, "").await.unwrap().allocations;
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].status(), listed[0].revision), (proto::AllocationStatus::Recorded, 0));
    let policy = ict.get_policy("").await.unwrap();
    let devices = policy.devices.expect("the policy's device rules");
    assert_eq!(devices.cash_alternative_amount, 500_000);
    assert_eq!(devices.priority[0], proto::DevicePriority::MeritoriousServiceFamily as i32);
}

#[tokio::test]
async fn two_proposals_at_the_same_time_never_give_a_household_two_places() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let ict = app.client("DOICT").await;
    let whole = |number: &str| proto::RecordAllocationDecisionRequest {
        decision_number: number.into(),
        decision_date: "2025-03-01".into(),
        tablets: 0,
        smartphones: 20,
        unit_quotas: vec![],
        cash_alternative_amount: 0,
        note: String::new(),
    };
    ict.record_allocation_decision(whole("A/QĐ")).await.unwrap();
    ict.record_allocation_decision(whole("B/QĐ")).await.unwrap();
    let other = app.client("DOICT").await;
    let (a, b) =
        tokio::join!(ict.propose_recipients("A/QĐ", "2025-03-01"), other.propose_recipients("B/QĐ", "2025-03-01"));
    // Each may take every qualifying household when it reads; the second to store finds them
    // taken and is told to propose again, or it read after the first stored and took none.
    let outcomes = [&a, &b];
    for r in outcomes {
        if let Err(e) = r {
            assert_eq!(e.code(), Some(Code::FailedPrecondition), "{e}");
        }
    }
    assert!(a.is_ok() || b.is_ok());
    let (list_a, list_b) = (recipients(&ict, "A/QĐ").await, recipients(&ict, "B/QĐ").await);
    let in_a: HashSet<&str> = codes(&list_a).into_iter().collect();
    assert!(codes(&list_b).iter().all(|c| !in_a.contains(c)), "{:?} and {:?}", codes(&list_a), codes(&list_b));
    assert_eq!(list_a.len() + list_b.len(), 9, "every qualifying household holds exactly one place");
    if a.is_err() || b.is_err() {
        let retried = if a.is_err() { "A/QĐ" } else { "B/QĐ" };
        let again = ict.propose_recipients(retried, "2025-03-01").await.unwrap();
        assert_eq!(again.recipients, 0, "nothing is left for the second list");
    }
}

/// The notice board dates the committee's approval in the province's time: approved at 01:30
/// on 2 April in Vietnam (18:30 UTC on 1 April) without a date given, it reads 02/04/2025.
#[tokio::test]
async fn the_notice_board_dates_the_approval_in_the_provinces_time() {
    let clock = telesub_server::domain::clock::Clock::fixed(time::macros::datetime!(2025-04-01 18:30:00 UTC));
    let app = TestApp::spawn_on(clock).await;
    with_register(&app).await;
    let ict = app.client("DOICT").await;
    const D: &str = "TZ/QĐ-BTTTT";
    ict.record_allocation_decision(decision(D)).await.unwrap();
    ict.propose_recipients(D, "2025-03-01").await.unwrap();
    let submitted = ict.submit_for_approval(D).await.unwrap();
    let approved = app
        .client("UBND")
        .await
        .approve_allocation(proto::ApproveRequest {
            decision_number: D.into(),
            approval_number: "27/QĐ-UBND".into(),
            list_digest: submitted.list_digest,
            approved_on: String::new(),
            note: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(approved.approved_on, "2025-04-02", "{approved:?}");
    let (_, page) = published(&ict, D, "24611", proto::PublishFormat::Html).await.unwrap();
    assert!(page.contains("27/QĐ-UBND ngày 02/04/2025"), "{page}");
}

/// Two hand-overs of one household, or of one IMEI, recorded at the same moment (a clerk's
/// second click, an SDK's retry, two communes' clerks) get the answers they would get one
/// after the other: the same hand-over twice is recorded once and both are told so; a second
/// device for the household, or a second household for the device, is refused by name.
#[tokio::test]
async fn hand_overs_recorded_at_the_same_moment_get_the_answers_they_would_one_after_the_other() {
    let app = TestApp::spawn().await;
    let labour = app.client("DOLISA").await;
    let codes: Vec<String> = (1..=16).map(|n| format!("H{n:02}")).collect();
    let records =
        codes.iter().zip(1..).map(|(c, n)| hh(c, "24611", n, proto::Category::Poor, wants())).collect::<Vec<_>>();
    push(&labour, header("review-2024", proto::BatchKind::Snapshot, "2024", "2025-01-01"), records).await.unwrap();
    let (ict, committee) = (app.client("DOICT").await, app.client("UBND").await);
    ict.record_allocation_decision(proto::RecordAllocationDecisionRequest {
        tablets: 0,
        smartphones: 16,
        unit_quotas: vec![],
        ..decision(DECISION)
    })
    .await
    .unwrap();
    assert_eq!(ict.propose_recipients(DECISION, "2025-03-01").await.unwrap().recipients, 16);
    let submitted = ict.submit_for_approval(DECISION).await.unwrap();
    committee
        .approve_allocation(proto::ApproveRequest {
            decision_number: DECISION.into(),
            approval_number: "55/QĐ-UBND".into(),
            list_digest: submitted.list_digest,
            ..Default::default()
        })
        .await
        .unwrap();
    let (one, other) = (app.client("DOICT").await, app.client("GIANGHIA").await);
    let device = |n: usize| imei(&format!("3500000000{n:04}"));
    // H01–H04: the same hand-over twice; H05–H08: two devices; H09–H16 in pairs: one IMEI.
    let races = (0..4).map(|i| (phone(&codes[i], &device(i)), phone(&codes[i], &device(i))));
    let races = races.chain((4..8).map(|i| (phone(&codes[i], &device(i)), phone(&codes[i], &device(100 + i)))));
    let races =
        races.chain((8..16).step_by(2).map(|i| (phone(&codes[i], &device(i)), phone(&codes[i + 1], &device(i)))));
    let mut answers = Vec::new();
    for (a, b) in races {
        // On PostgreSQL the hand-overs' table is held from outside until both of the hub's
        // transactions wait: each has read that nothing is recorded before either writes.
        let hold = app.db.hold_writes("device_handovers").await;
        let released = async {
            if let Some(hold) = hold {
                hold.release_when_waiting(2).await;
            }
        };
        let (x, y, ()) = tokio::join!(one.record_handover(a.clone()), other.record_handover(b.clone()), released);
        answers.push(((a, x), (b, y)));
    }
    let mut recorded = 0;
    for (i, ((a, x), (b, y))) in answers.into_iter().enumerate() {
        let code = &a.household_code;
        match i {
            0..4 => {
                let (x, y) = (x.unwrap(), y.unwrap());
                assert_eq!(x.recorded_at, y.recorded_at, "{code}: one hand-over, recorded once");
                assert!(x.replayed != y.replayed, "{code}: one of the two was recorded before: {x:?} {y:?}");
                recorded += 1;
            }
            _ => {
                let (refused, with) = match (x, y) {
                    (Ok(_), Err(e)) => (e, &b),
                    (Err(e), Ok(_)) => (e, &a),
                    (x, y) => panic!("{code}: exactly one of the two is recorded: {x:?} {y:?}"),
                };
                assert_eq!(refused.code(), Some(Code::AlreadyExists), "{code}: {refused}");
                let named = if i < 8 { format!("household {code}") } else { imei_of(with) };
                assert!(refused.to_string().contains(&named), "{code}: the refusal names {named}: {refused}");
                recorded += 1;
            }
        }
    }
    let shown = ict.get_allocation(DECISION).await.unwrap();
    let handed: i64 = shown.progress.iter().map(|p| p.devices_handed_over).sum();
    assert_eq!(handed, recorded, "{:?}", shown.progress);
}

fn imei_of(r: &proto::RecordHandoverRequest) -> String {
    match &r.kind {
        Some(proto::record_handover_request::Kind::Device(d)) => format!("IMEI {}", d.imei),
        _ => unreachable!("a device hand-over"),
    }
}

/// A hub whose list of [`DECISION`] (from [`with_register`]) is submitted to the committee,
/// and the list's digest.
async fn submitted_list() -> (TestApp, String) {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let ict = app.client("DOICT").await;
    ict.record_allocation_decision(decision(DECISION)).await.unwrap();
    ict.propose_recipients(DECISION, "2025-03-01").await.unwrap();
    let digest = ict.submit_for_approval(DECISION).await.unwrap().list_digest;
    (app, digest)
}

/// The committee approving a list while it is returned at the same moment (two of its clerks):
/// one decision is kept and answered so; the other is refused, never told it was kept.
#[tokio::test]
async fn an_approval_and_a_return_at_the_same_moment_keep_one_and_refuse_the_other() {
    let (app, digest) = submitted_list().await;
    let (ict, one, other) = (app.client("DOICT").await, app.client("UBND").await, app.client("UBND").await);
    // On PostgreSQL the allocations' table is held from outside until both decisions wait at
    // their writes: each has read that the list is submitted.
    let hold = app.db.hold_writes("device_allocations").await;
    let released = async {
        if let Some(hold) = hold {
            hold.release_when_waiting(2).await;
        }
    };
    let approve = proto::ApproveRequest {
        decision_number: DECISION.into(),
        approval_number: "55/QĐ-UBND".into(),
        list_digest: digest,
        ..Default::default()
    };
    let (approved, returned, ()) =
        tokio::join!(one.approve_allocation(approve), other.return_allocation(DECISION, "Cần giải trình"), released);
    let stored = ict.get_allocation(DECISION).await.unwrap();
    match (approved, returned) {
        (Ok(a), Err(e)) => {
            assert_eq!((a.status(), stored.status()), (proto::AllocationStatus::Approved, a.status()));
            assert_eq!(e.code(), Some(Code::FailedPrecondition), "{e}");
            assert!(e.to_string().contains("APPROVED"), "the refusal says what the list is now: {e}");
        }
        (Err(e), Ok(r)) => {
            assert_eq!((r.status(), stored.status()), (proto::AllocationStatus::Returned, r.status()));
            assert_eq!(e.code(), Some(Code::FailedPrecondition), "{e}");
            assert!(e.to_string().contains("RETURNED"), "the refusal says what the list is now: {e}");
        }
        (a, r) => panic!("exactly one decision is kept, the list is {:?}: {a:?} {r:?}", stored.status()),
    }
}

/// A nomination sent while the committee approves the list: the approval waits for it, so
/// that a nomination answered as kept was made before the list was approved (on PostgreSQL
/// the nomination is held at its write until the approval has had time to finish first).
#[tokio::test]
async fn a_nomination_answered_as_kept_came_before_the_approval() {
    let (app, digest) = submitted_list().await;
    let (education, committee) = (app.client("DOET").await, app.client("UBND").await);
    let hold = app.db.hold_writes("device_nominations").await;
    let ordered = hold.is_some();
    let nominating = tokio::spawn(async move { education.nominate_households(DECISION, ["N1"], "học sinh").await });
    let approve = proto::ApproveRequest {
        decision_number: DECISION.into(),
        approval_number: "55/QĐ-UBND".into(),
        list_digest: digest,
        ..Default::default()
    };
    if let Some(hold) = hold {
        assert!(hold.wait_for(1).await, "the nomination waits at its write");
        let approving = committee.approve_allocation(approve);
        tokio::pin!(approving);
        let early = tokio::time::timeout(std::time::Duration::from_secs(1), &mut approving).await;
        assert!(early.is_err(), "the list was approved while a nomination was being stored: {early:?}");
        hold.release().await;
        approving.await.unwrap();
    } else {
        committee.approve_allocation(approve).await.unwrap();
    }
    match nominating.await.unwrap() {
        Ok(n) => assert_eq!(n.nominated, 1),
        // Without the hold (SQLite) the approval may come first: then the nomination is refused.
        Err(e) => {
            assert!(!ordered, "the nomination came first: {e}");
            assert_eq!(e.code(), Some(Code::FailedPrecondition), "{e}");
        }
    }
}

/// A device is handed over once: a tablet's serial number recorded for one household is
/// refused for another, by name, also when both are recorded at the same moment (on
/// PostgreSQL the hand-overs' table is held from outside until both wait at their writes).
#[tokio::test]
async fn a_serial_number_is_one_device_handed_over_once() {
    let (app, digest) = submitted_list().await;
    let (ict, committee) = (app.client("DOICT").await, app.client("UBND").await);
    committee
        .approve_allocation(proto::ApproveRequest {
            decision_number: DECISION.into(),
            approval_number: "55/QĐ-UBND".into(),
            list_digest: digest,
            ..Default::default()
        })
        .await
        .unwrap();
    let tablets: Vec<String> = recipients(&ict, DECISION)
        .await
        .into_iter()
        .filter(|r| r.device_type() == proto::DeviceType::Tablet)
        .map(|r| r.household_code)
        .collect();
    assert_eq!(tablets.len(), 3, "{tablets:?}");
    let tablet = |code: &str, serial: &str| proto::RecordHandoverRequest {
        kind: Some(proto::record_handover_request::Kind::Device(proto::DeviceHandover {
            device_type: proto::DeviceType::Tablet.into(),
            serial_number: serial.into(),
            imei: String::new(),
        })),
        ..phone(code, "")
    };
    ict.record_handover(tablet(&tablets[0], "TAB-2025-0001")).await.unwrap();
    let err = ict.record_handover(tablet(&tablets[1], "TAB-2025-0001")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::AlreadyExists), "{err}");
    assert!(
        err.to_string().contains("TAB-2025-0001") && err.to_string().contains(&tablets[0]),
        "the refusal names the serial number and who has the device: {err}"
    );
    let other = app.client("DOICT").await;
    let hold = app.db.hold_writes("device_handovers").await;
    let released = async {
        if let Some(hold) = hold {
            hold.release_when_waiting(2).await;
        }
    };
    let (x, y, ()) = tokio::join!(
        ict.record_handover(tablet(&tablets[1], "TAB-2025-0002")),
        other.record_handover(tablet(&tablets[2], "TAB-2025-0002")),
        released
    );
    match (x, y) {
        (Ok(_), Err(e)) | (Err(e), Ok(_)) => assert_eq!(e.code(), Some(Code::AlreadyExists), "{e}"),
        (x, y) => panic!("one of the two is recorded: {x:?} {y:?}"),
    }
}
