//! Monthly lists through the API: operators submit a month's lines, the hub reconciles each
//! against the register, the policy and the enrolments of that month, and ICT confirms or
//! rejects the list.

use std::time::Duration;

use futures_util::stream;
use telesub_client::{Client, Code, Error, proto};
use telesub_tests::TestApp;

use crate::households::{cid, header, household, push, removal};

const MARCH: &str = "2025-03";

pub(crate) fn enroll(key: &str, code: &str, n: u32, phone: &str, start: &str) -> proto::EnrollRequest {
    proto::EnrollRequest {
        idempotency_key: key.into(),
        household_code: code.into(),
        subscriber_citizen_id: cid(n, 1980, false),
        phone_number: phone.into(),
        service: proto::SupportedService::Mobile.into(),
        start_date: start.into(),
    }
}

/// A continuing claim of 60,000 VND for the whole of March by the head of household `n`.
pub(crate) fn claim(code: &str, n: u32, phone: &str, enrollment: &str) -> proto::MonthlyLine {
    proto::MonthlyLine {
        phone_number: phone.into(),
        subscriber_citizen_id: cid(n, 1980, false),
        household_code: code.into(),
        enrollment_id: enrollment.into(),
        change: proto::SupportChange::Continuing.into(),
        service: proto::SupportedService::Mobile.into(),
        package_code: "ASXH60".into(),
        tariff: 70_000,
        amount_claimed: 60_000,
        days_of_service: 31,
        used: true,
        unclaimed_reason: 0,
    }
}

pub(crate) fn list_header(id: &str, period: &str, replaces: bool) -> proto::MonthlyUpdateHeader {
    proto::MonthlyUpdateHeader {
        period: period.into(),
        update_id: id.into(),
        replaces_earlier: replaces,
        note: String::new(),
    }
}

pub(crate) async fn submit(
    client: &Client,
    header: proto::MonthlyUpdateHeader,
    lines: Vec<proto::MonthlyLine>,
) -> Result<proto::MonthlyReconciliation, Error> {
    client.submit_monthly_update(header, stream::iter(lines)).await
}

fn figures(r: &proto::MonthlyReconciliation) -> &proto::ReconciliationFigures {
    r.figures.as_ref().expect("a reconciled list has figures")
}

fn count(r: &proto::MonthlyReconciliation, code: proto::DiscrepancyCode) -> i64 {
    figures(r).by_code.iter().find(|c| c.code() == code).map_or(0, |c| c.lines)
}

fn codes(line: &proto::ReconciledLine) -> Vec<proto::DiscrepancyCode> {
    line.discrepancies.iter().map(|d| d.code()).collect()
}

async fn all_lines(client: &Client, operator: &str, id: &str, include_ok: bool) -> Vec<proto::ReconciledLine> {
    let mut lines = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_discrepancies(proto::ListDiscrepanciesRequest {
                operator: operator.into(),
                update_id: id.into(),
                include_ok,
                page_size: 3,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap();
        lines.extend(page.lines);
        if page.next_page_token.is_empty() {
            return lines;
        }
        token = page.next_page_token;
    }
}

/// A list exported as a file: its suggested name and its bytes.
async fn export(
    client: &Client,
    operator: &str,
    id: &str,
    format: proto::ExportFormat,
    confirmed_only: bool,
) -> (String, Vec<u8>) {
    use futures_util::StreamExt;
    let request = proto::ExportReconciliationRequest {
        operator: operator.into(),
        update_id: id.into(),
        format: format.into(),
        confirmed_lines_only: confirmed_only,
        without_byte_order_mark: false,
    };
    let mut chunks = std::pin::pin!(client.export_reconciliation(request).await.unwrap());
    let (mut name, mut bytes) = (String::new(), Vec::new());
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.unwrap();
        if name.is_empty() {
            name = chunk.file_name;
        }
        bytes.extend(chunk.data);
    }
    // A CSV file starts with the byte-order mark spreadsheet programs need; the checks read past it.
    if format == proto::ExportFormat::Csv {
        assert!(bytes.starts_with(b"\xEF\xBB\xBF"), "no byte-order mark");
        bytes.drain(..3);
    }
    (name, bytes)
}

async fn export_err(client: &Client, operator: &str, id: &str, format: proto::ExportFormat) -> Error {
    use futures_util::StreamExt;
    let request = proto::ExportReconciliationRequest {
        operator: operator.into(),
        update_id: id.into(),
        format: format.into(),
        confirmed_lines_only: false,
        without_byte_order_mark: false,
    };
    match client.export_reconciliation(request).await {
        Err(e) => e,
        Ok(chunks) => {
            let mut chunks = std::pin::pin!(chunks);
            loop {
                match chunks.next().await {
                    Some(Err(e)) => return e,
                    Some(Ok(_)) => {}
                    None => panic!("the export of {id} succeeded"),
                }
            }
        }
    }
}

/// Waits until a list is no longer being reconciled again, and returns it.
async fn settled(client: &Client, operator: &str, id: &str) -> proto::MonthlyReconciliation {
    for _ in 0..200 {
        let r = client.get_reconciliation(operator, id).await.unwrap();
        if !r.stale {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("list {id} of {operator} stayed stale");
}

/// HH-1 … HH-6 and HH-8 poor from 1 January 2025 (HH-5 in commune 24616, the others in
/// 24611); HH-3 removed (deceased) on 1 February; HH-4 out of poverty from 1 March (supported
/// to the end of the year); HH-7 on the list only from 1 April.
pub(crate) async fn with_register(app: &TestApp) {
    let labour = app.client("DOLISA").await;
    let mut records: Vec<_> = [1, 2, 3, 4, 6, 8].iter().map(|n| household(&format!("HH-{n}"), "24611", *n)).collect();
    records.push(household("HH-5", "24616", 5));
    push(&labour, header("review-2024", proto::BatchKind::Snapshot, "2024", "2025-01-01"), records).await.unwrap();
    push(
        &labour,
        header("2025-02", proto::BatchKind::Delta, "2025-02", "2025-02-01"),
        vec![removal("HH-3", proto::RemovalReason::Deceased, "2025-02-01")],
    )
    .await
    .unwrap();
    push(
        &labour,
        header("2025-03", proto::BatchKind::Delta, "2025-03", "2025-03-01"),
        vec![removal("HH-4", proto::RemovalReason::OutOfPoverty, "2025-03-01")],
    )
    .await
    .unwrap();
    push(
        &labour,
        header("2025-04", proto::BatchKind::Delta, "2025-04", "2025-04-01"),
        vec![household("HH-7", "24611", 7)],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn every_line_is_checked_against_the_month_and_ict_confirms_the_ok_lines() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let (vnpt, viettel, ict) = (app.client("VNPT").await, app.client("VIETTEL").await, app.client("DOICT").await);
    let e1 = vnpt.enroll(enroll("e1", "HH-1", 1, "0912000001", "2025-02-01")).await.unwrap().enrollment_id;
    let e2 = vnpt.enroll(enroll("e2", "HH-2", 2, "0912000002", "2025-03-11")).await.unwrap().enrollment_id;
    let e5 = vnpt.enroll(enroll("e5", "HH-5", 5, "0912000005", "2025-02-01")).await.unwrap().enrollment_id;
    let e6 = vnpt.enroll(enroll("e6", "HH-6", 6, "0912000006", "2025-02-01")).await.unwrap().enrollment_id;
    vnpt.enroll(enroll("e8", "HH-8", 8, "0912000008", "2025-02-01")).await.unwrap();
    let e4 = viettel.enroll(enroll("v4", "HH-4", 4, "0981000004", "2025-02-01")).await.unwrap().enrollment_id;

    // VIETTEL's list first: one line, OK.
    let theirs = submit(&viettel, list_header("vt-2025-03", MARCH, false), vec![claim("HH-4", 4, "0981000004", &e4)])
        .await
        .unwrap();
    assert_eq!(theirs.status(), proto::ReconciliationStatus::Reconciled);
    assert_eq!((figures(&theirs).lines, figures(&theirs).lines_ok), (1, 1));

    let mut spouse = claim("HH-5", 5, "0912000005", &e5);
    spouse.subscriber_citizen_id = cid(5, 1985, true);
    let mut not_claimed = claim("HH-6", 6, "0912000006", &e6);
    not_claimed.change = 0;
    not_claimed.amount_claimed = 0;
    not_claimed.unclaimed_reason = proto::UnclaimedReason::Suspended.into();
    let lines = vec![
        claim("HH-1", 1, "0912000001", &e1), // 1 OK
        claim("HH-2", 2, "0912000002", &e2), // 2 enrolled from the 11th: 21 of 31 days
        claim("HH-3", 3, "0912000003", ""),  // 3 removed in February, no enrolment
        claim("HH-1", 1, "0912000009", ""),  // 4 HH-1 again
        claim("HH-4", 4, "0912000004", ""),  // 5 VIETTEL's household
        claim("HH-99", 9, "0912000099", ""), // 6 not on the register
        not_claimed,                         // 7 suspended, claims nothing
        spouse,                              // 8 enrolment is for the head
        claim("HH-7", 7, "0912000007", ""),  // 9 on the list from April
    ];
    let ours = submit(&vnpt, list_header("vn-2025-03", MARCH, false), lines).await.unwrap();
    assert_eq!(ours.status(), proto::ReconciliationStatus::Reconciled, "{ours:?}");
    assert!(!ours.replayed);
    assert_eq!(ours.content_digest.len(), 64);
    let f = figures(&ours);
    assert_eq!((f.lines, f.claims, f.unclaimed, f.lines_ok), (9, 8, 1, 2), "{f:?}");
    assert_eq!((f.amount_claimed, f.amount_confirmable), (8 * 60_000, 60_000));
    assert_eq!(f.enrollments_not_reported, 1, "HH-8's line is missing");
    assert_eq!(f.by_unclaimed_reason.len(), 1);
    assert_eq!(f.by_unclaimed_reason[0].reason(), proto::UnclaimedReason::Suspended);

    let lines = all_lines(&vnpt, "", "vn-2025-03", false).await;
    let numbers: Vec<i64> = lines.iter().map(|l| l.line_number).collect();
    assert_eq!(numbers, [2, 3, 4, 5, 6, 8, 9], "only lines with a discrepancy, in order");
    use proto::DiscrepancyCode as C;
    assert_eq!(codes(&lines[0]), [C::OverCap]);
    assert_eq!(lines[0].discrepancies[0].allowed_amount, 60_000 * 21 / 31);
    assert!(lines[0].discrepancies[0].message.contains("21 of 31 days"), "{:?}", lines[0].discrepancies);
    assert!(codes(&lines[1]).contains(&C::EligibilityEnded) && codes(&lines[1]).contains(&C::NotEnrolled));
    let ended = lines[1].discrepancies.iter().find(|d| d.code() == C::EligibilityEnded).unwrap();
    assert_eq!(ended.date, "2025-02-01");
    assert_eq!(codes(&lines[2]), [C::NotEnrolled, C::DuplicateWithinOperator]);
    assert!(lines[2].discrepancies[1].message.contains("line 1"));
    assert_eq!(codes(&lines[3]), [C::NotEnrolled, C::DuplicateAcrossOperators]);
    assert!(!lines[3].discrepancies[1].message.contains("VIETTEL"), "the other operator is not named");
    assert_eq!(codes(&lines[4]), [C::UnknownSubscriber, C::NotEnrolled]);
    assert_eq!(codes(&lines[5]), [C::EnrolmentMismatch]);
    assert!(lines[5].discrepancies[0].message.contains(&cid(5, 1980, false)));
    assert_eq!(codes(&lines[6]), [C::BeforeStart, C::NotEnrolled]);
    assert_eq!(lines[0].commune_code, "24611");

    // Filters: by code, by commune, by household; OK lines on request.
    let over = vnpt
        .list_discrepancies(proto::ListDiscrepanciesRequest {
            update_id: "vn-2025-03".into(),
            code: C::NotEnrolled.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(over.lines.iter().map(|l| l.line_number).collect::<Vec<_>>(), [3, 4, 5, 6, 9]);
    let in_24616 = vnpt
        .list_discrepancies(proto::ListDiscrepanciesRequest {
            update_id: "vn-2025-03".into(),
            unit: "24616".into(),
            include_ok: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(in_24616.lines.iter().map(|l| l.line_number).collect::<Vec<_>>(), [8]);
    assert_eq!(all_lines(&vnpt, "", "vn-2025-03", true).await.len(), 9);
    assert_eq!(all_lines(&vnpt, "", "vn-2025-03", true).await[0].line.as_ref().unwrap().phone_number, "0912000001");

    // VIETTEL's list is reconciled again: its household is claimed by another operator too.
    let theirs = settled(&ict, "VIETTEL", "vt-2025-03").await;
    assert_eq!(count(&theirs, C::DuplicateAcrossOperators), 1, "{theirs:?}");
    assert_eq!(figures(&theirs).lines_ok, 0);

    // An operator sees only its own lists.
    let err = vnpt.get_reconciliation("VIETTEL", "vt-2025-03").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err}");
    let mine = vnpt.list_reconciliations(proto::ListReconciliationsRequest::default()).await.unwrap();
    assert_eq!(mine.reconciliations.iter().map(|r| r.update_id.as_str()).collect::<Vec<_>>(), ["vn-2025-03"]);
    let err = vnpt
        .list_reconciliations(proto::ListReconciliationsRequest { operator: "VIETTEL".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied), "{err}");

    // ICT sees every list of the month, confirms one's OK lines and rejects the other.
    let month = ict
        .list_reconciliations(proto::ListReconciliationsRequest { period: MARCH.into(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(month.reconciliations.len(), 2);
    let confirmed = ict
        .confirm_reconciliation(proto::ConfirmRequest {
            operator: "VNPT".into(),
            update_id: "vn-2025-03".into(),
            scope: proto::ConfirmationScope::OkLines.into(),
            note: "Biên bản 03/2025".into(),
        })
        .await
        .unwrap();
    assert_eq!(confirmed.status(), proto::ReconciliationStatus::Confirmed);
    let c = confirmed.confirmation.as_ref().unwrap();
    assert_eq!((c.scope.as_str(), c.confirmed_by.as_str(), c.lines, c.amount), ("OK_LINES", "DOICT", 2, 60_000));
    assert_eq!(c.lines_digest.len(), 64);
    let err = ict
        .confirm_reconciliation(proto::ConfirmRequest {
            operator: "VNPT".into(),
            update_id: "vn-2025-03".into(),
            scope: proto::ConfirmationScope::WholeList.into(),
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err}");

    // The confirmation and its lines as files: CSV of the confirmed lines, and a workbook.
    let (name, csv) = export(&ict, "VNPT", "vn-2025-03", proto::ExportFormat::Csv, true).await;
    assert_eq!(name, "2025-03-VNPT-vn-2025-03.csv");
    let csv = String::from_utf8(csv).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3, "the header and the two OK lines: {csv}");
    assert!(rows[0].starts_with("line_number,phone_number,"), "{csv}");
    assert!(rows[1].starts_with("1,0912000001,") && rows[2].starts_with("7,0912000006,"), "{csv}");
    let (name, all) = export(&vnpt, "", "vn-2025-03", proto::ExportFormat::Csv, false).await;
    assert!(name.ends_with(".csv"));
    let all = String::from_utf8(all).unwrap();
    assert_eq!(all.lines().count(), 10);
    let over = all.lines().nth(2).unwrap();
    assert!(over.starts_with("2,") && over.contains("OVER_CAP") && over.contains("40645 VND are allowed"), "{over}");
    let (name, xlsx) = export(&ict, "VNPT", "vn-2025-03", proto::ExportFormat::Xlsx, false).await;
    assert!(name.ends_with(".xlsx"));
    assert!(xlsx.starts_with(b"PK\x03\x04"), "a ZIP archive");
    assert_eq!(&xlsx[xlsx.len() - 22..xlsx.len() - 18], b"PK\x05\x06", "ending with its directory");
    // The parts are deflated; inflated, the sheets hold the list.
    let text: String =
        telesub_tests::unzip(&xlsx).iter().map(|(_, data)| String::from_utf8_lossy(data).into_owned()).collect();
    assert!(xlsx.len() * 2 < text.len(), "{} bytes hold {} of XML", xlsx.len(), text.len());
    for expected in ["Tổng hợp", "Chi tiết", "Vượt mức hỗ trợ", "Đã xác nhận", "0912000002", "Biên bản 03/2025"]
    {
        assert!(text.contains(expected), "{expected} missing from the workbook");
    }
    // Its notes are written for the people who open it, in Vietnamese; the CSV for machines
    // keeps the English messages.
    assert!(text.contains("Đề nghị 60.000 đồng; chỉ được hỗ trợ 40.645 đồng"), "the over-cap note in Vietnamese");
    assert!(!text.contains("VND are allowed"), "no English note in the workbook");
    let err = export_err(&vnpt, "VIETTEL", "vt-2025-03", proto::ExportFormat::Csv).await;
    assert_eq!(err.code(), Some(Code::NotFound), "another operator's list: {err}");
    let err = ict.reject_reconciliation("VIETTEL", "vt-2025-03", " ").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument), "{err}");
    let rejected = ict.reject_reconciliation("VIETTEL", "vt-2025-03", "household claimed twice").await.unwrap();
    assert_eq!(rejected.status(), proto::ReconciliationStatus::Rejected);
    assert_eq!((rejected.rejected_by.as_str(), rejected.rejection_note.as_str()), ("DOICT", "household claimed twice"));

    // A confirmed period is final; the rejected operator submits a new list.
    let err = submit(&vnpt, list_header("vn-2025-03-b", MARCH, true), vec![claim("HH-1", 1, "0912000001", &e1)])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err}");
    assert!(err.to_string().contains("confirmed"), "{err}");
    let again = submit(&viettel, list_header("vt-2025-03-b", MARCH, false), vec![claim("HH-4", 4, "0981000004", &e4)])
        .await
        .unwrap();
    assert_eq!(again.status(), proto::ReconciliationStatus::Reconciled);
    // VNPT's confirmed list still claims HH-4.
    assert_eq!(count(&again, C::DuplicateAcrossOperators), 1);
    // The confirmed list is frozen: not reconciled again.
    let frozen = ict.get_reconciliation("VNPT", "vn-2025-03").await.unwrap();
    assert_eq!((frozen.status(), frozen.stale), (proto::ReconciliationStatus::Confirmed, false));
    assert_eq!(frozen.confirmation, confirmed.confirmation);
}

#[tokio::test]
async fn bad_lists_are_refused_whole_with_each_line_and_field() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let (vnpt, viettel, ict) = (app.client("VNPT").await, app.client("VIETTEL").await, app.client("DOICT").await);
    let e1 = vnpt.enroll(enroll("e1", "HH-1", 1, "0912000001", "2025-02-01")).await.unwrap().enrollment_id;
    let e4 = viettel.enroll(enroll("v4", "HH-4", 4, "0981000004", "2025-02-01")).await.unwrap().enrollment_id;
    let ok = || claim("HH-1", 1, "0912000001", &e1);

    for (period, words) in [("2025-3", "YYYY-MM"), ("2999-01", "future"), ("2021-06", "before the programme")] {
        let err = submit(&vnpt, list_header("x", period, false), vec![ok()]).await.unwrap_err();
        assert_eq!(err.code(), Some(Code::InvalidArgument), "{err}");
        let v = err.violations();
        assert_eq!(v[0].field, "header.period");
        assert!(v[0].description.contains(words), "{v:?}");
    }

    let mut bad_phone = claim("HH-2", 2, "12345", "");
    bad_phone.package_code = "ASXH 60".into();
    let mut negative = claim("HH-2", 2, "0912000002", "");
    negative.amount_claimed = -5;
    let mut above_tariff = claim("HH-5", 5, "0912000005", "");
    above_tariff.amount_claimed = 80_000;
    let mut no_service = claim("HH-6", 6, "0912000006", "");
    no_service.service = 0;
    let twice = claim("HH-8", 8, "0912000001", "");
    let theirs = claim("HH-4", 4, "0912000004", &e4);
    let mut both = claim("HH-8", 8, "0912000008", "");
    both.unclaimed_reason = proto::UnclaimedReason::Other.into();
    // From March the policy lists VNPT's packages.
    let mut rules = ict.get_policy("").await.unwrap();
    rules.valid_from = "2025-03-01".into();
    let package = |code: &str, service: proto::SupportedService| proto::PackageRule {
        operator: "VNPT".into(),
        code: code.into(),
        service: service.into(),
    };
    rules.packages = vec![package("ASXH 60", proto::SupportedService::Mobile)];
    let err = ict.add_policy_version(rules.clone()).await.unwrap_err();
    assert_eq!(err.violations()[0].field, "version.packages[0].code", "{err}");
    rules.packages = vec![
        package("ASXH60", proto::SupportedService::Mobile),
        package("FTTH130", proto::SupportedService::FixedBroadband),
    ];
    ict.add_policy_version(rules).await.unwrap();
    let mut unknown_package = claim("HH-5", 5, "0912000015", "");
    unknown_package.package_code = "ZZZ".into();
    let mut other_service = claim("HH-6", 6, "0912000016", "");
    other_service.package_code = "FTTH130".into();
    let lines =
        vec![ok(), bad_phone, negative, above_tariff, no_service, twice, theirs, both, unknown_package, other_service];
    let err = submit(&vnpt, list_header("vn-bad", MARCH, false), lines).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument), "{err}");
    let fields: Vec<&str> = err.violations().iter().map(|v| v.field.as_str()).collect();
    for field in [
        "lines[2].phone_number",
        "lines[2].package_code",
        "lines[3].amount_claimed",
        "lines[4].amount_claimed",
        "lines[5].service",
        "lines[6].phone_number",
        "lines[7].enrollment_id",
        "lines[8].unclaimed_reason",
        "lines[9].package_code",
        "lines[10].package_code",
    ] {
        assert!(fields.contains(&field), "{field} missing from {fields:?}");
    }
    assert!(!fields.iter().any(|f| f.starts_with("lines[1].")), "{fields:?}");
    let package = err.violations().iter().find(|v| v.field == "lines[9].package_code").unwrap();
    assert!(package.description.contains("not one of VNPT's packages"), "{package:?}");
    let package = err.violations().iter().find(|v| v.field == "lines[10].package_code").unwrap();
    assert!(package.description.contains("FIXED_BROADBAND package"), "{package:?}");
    let theirs = err.violations().iter().find(|v| v.field == "lines[7].enrollment_id").unwrap();
    assert!(theirs.description.contains("not one of your enrolments"), "{theirs:?}");
    // Nothing was stored.
    let all = ict.list_reconciliations(proto::ListReconciliationsRequest::default()).await.unwrap();
    assert!(all.reconciliations.is_empty(), "{all:?}");
    let err = submit(&vnpt, list_header("vn-empty", MARCH, false), vec![]).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument), "{err}");

    // The same id and content again is harmless; other content under it is refused.
    let first = submit(&vnpt, list_header("vn-1", MARCH, false), vec![ok()]).await.unwrap();
    let again = submit(&vnpt, list_header("vn-1", MARCH, false), vec![ok()]).await.unwrap();
    assert!(again.replayed);
    assert_eq!((again.content_digest.as_str(), again.received_at), (first.content_digest.as_str(), first.received_at));
    let mut changed = ok();
    changed.amount_claimed = 50_000;
    let err = submit(&vnpt, list_header("vn-1", MARCH, false), vec![changed.clone()]).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::AlreadyExists), "{err}");

    // A second list for the month replaces the first only when it says so.
    let err = submit(&vnpt, list_header("vn-2", MARCH, false), vec![changed.clone()]).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err}");
    assert!(err.to_string().contains("replaces_earlier"), "{err}");
    let second = submit(&vnpt, list_header("vn-2", MARCH, true), vec![changed]).await.unwrap();
    assert_eq!(second.status(), proto::ReconciliationStatus::Reconciled);
    let old = vnpt.get_reconciliation("", "vn-1").await.unwrap();
    assert_eq!((old.status(), old.superseded_by.as_str()), (proto::ReconciliationStatus::Superseded, "vn-2"));
    let err = ict.reject_reconciliation("VNPT", "vn-1", "late").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "a superseded list is not decided: {err}");

    // Only ICT decides; only operators submit.
    let labour = app.client("DOLISA").await;
    let err = labour.reject_reconciliation("VNPT", "vn-2", "no").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied), "{err}");
    let err = vnpt.reject_reconciliation("VNPT", "vn-2", "no").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied), "{err}");
    let err = submit(&ict, list_header("ict", MARCH, false), vec![ok()]).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied), "{err}");
    let err = ict.get_reconciliation("", "vn-2").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument), "ICT names the operator: {err}");
}

#[tokio::test]
async fn support_stops_after_the_months_without_traffic_and_register_changes_reconcile_again() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let (vnpt, ict, labour) = (app.client("VNPT").await, app.client("DOICT").await, app.client("DOLISA").await);
    let e1 = vnpt.enroll(enroll("e1", "HH-1", 1, "0912000001", "2025-01-01")).await.unwrap().enrollment_id;
    let e2 = vnpt.enroll(enroll("e2", "HH-2", 2, "0912000002", "2025-01-01")).await.unwrap().enrollment_id;
    let idle = |code: &str, n: u32, phone: &str, e: &str, days: i32, amount: i64| {
        let mut l = claim(code, n, phone, e);
        l.used = false;
        l.days_of_service = days;
        l.amount_claimed = amount;
        l
    };
    // HH-1 has no traffic from January on; HH-2 has traffic in February.
    for (period, days, amount, hh2_used) in [("2025-01", 31, 60_000, false), ("2025-02", 28, 60_000, true)] {
        let mut hh2 = idle("HH-2", 2, "0912000002", &e2, days, amount);
        hh2.used = hh2_used;
        let r = submit(
            &vnpt,
            list_header(&format!("vn-{period}"), period, false),
            vec![idle("HH-1", 1, "0912000001", &e1, days, amount), hh2],
        )
        .await
        .unwrap();
        assert_eq!(figures(&r).lines_ok, 2, "two months without traffic are still supported: {r:?}");
    }
    let march = submit(
        &vnpt,
        list_header("vn-2025-03", MARCH, false),
        vec![idle("HH-1", 1, "0912000001", &e1, 31, 60_000), idle("HH-2", 2, "0912000002", &e2, 31, 60_000)],
    )
    .await
    .unwrap();
    let lines = all_lines(&vnpt, "", "vn-2025-03", true).await;
    assert_eq!(codes(&lines[0]), [proto::DiscrepancyCode::NonUsage], "the third month in a row");
    assert!(lines[0].discrepancies[0].message.contains("3 months"), "{:?}", lines[0].discrepancies);
    assert!(codes(&lines[1]).is_empty(), "traffic in February restarted the count");
    assert_eq!(figures(&march).lines_ok, 1);

    // HH-2's head dies on 16 March: the open list is reconciled again with the change.
    push(
        &labour,
        header("2025-03-b", proto::BatchKind::Delta, "2025-03", "2025-03-16"),
        vec![removal("HH-2", proto::RemovalReason::Deceased, "2025-03-16")],
    )
    .await
    .unwrap();
    let march = settled(&ict, "VNPT", "vn-2025-03").await;
    assert_eq!(figures(&march).lines_ok, 0, "{march:?}");
    let lines = all_lines(&vnpt, "", "vn-2025-03", true).await;
    use proto::DiscrepancyCode as C;
    assert_eq!(codes(&lines[1]), [C::EligibilityEnded, C::OverCap], "{:?}", lines[1]);
    assert_eq!(lines[1].discrepancies[0].date, "2025-03-16");
    assert_eq!(lines[1].discrepancies[1].allowed_amount, 60_000 * 15 / 31);
    assert_eq!(figures(&march).missing_stops, 1);
    // Earlier months are not touched by a change from 16 March.
    let feb = ict.get_reconciliation("VNPT", "vn-2025-02").await.unwrap();
    assert_eq!((figures(&feb).lines_ok, feb.stale), (2, false));

    // Once confirmed, March is frozen: a later change is reported against it, line by line.
    let confirmed = ict
        .confirm_reconciliation(proto::ConfirmRequest {
            operator: "VNPT".into(),
            update_id: "vn-2025-03".into(),
            scope: proto::ConfirmationScope::WholeList.into(),
            note: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(confirmed.confirmation.as_ref().map(|c| (c.lines, c.amount)), Some((2, 120_000)));
    push(
        &labour,
        header("2025-03-c", proto::BatchKind::Delta, "2025-03", "2025-03-21"),
        vec![removal("HH-1", proto::RemovalReason::Deceased, "2025-03-21")],
    )
    .await
    .unwrap();
    let mut checked = None;
    for _ in 0..200 {
        let r = ict.get_reconciliation("VNPT", "vn-2025-03").await.unwrap();
        if r.exceptions_checked_at.is_some() {
            checked = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let checked = checked.expect("the confirmed list is checked against the change");
    assert_eq!(checked.exceptions, 1, "{checked:?}");
    assert_eq!(
        (checked.status(), &checked.confirmation, &checked.figures),
        (proto::ReconciliationStatus::Confirmed, &confirmed.confirmation, &confirmed.figures)
    );
    let exceptions = vnpt
        .list_discrepancies(proto::ListDiscrepanciesRequest {
            update_id: "vn-2025-03".into(),
            exceptions_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .lines;
    assert_eq!(exceptions.len(), 1);
    let line = &exceptions[0];
    assert_eq!((line.line_number, line.exception), (1, true));
    assert_eq!(codes(line), [C::NonUsage], "the confirmed outcome stands");
    let later: Vec<_> = line.later_discrepancies.iter().map(|d| (d.code(), d.date.as_str())).collect();
    assert!(later.contains(&(C::EligibilityEnded, "2025-03-21")), "{later:?}");
}

#[tokio::test]
async fn a_generated_month_comes_back_with_the_figures_planted_in_it() {
    use telesub_tools::monthly_generator::{MonthGenerator, Shares};
    let app = TestApp::spawn().await;
    let start = time::Date::from_calendar_date(2025, time::Month::January, 1).unwrap();
    telesub_tests::load_generated(app.store.as_ref(), 11, 3_000, start).await;
    let shares = Shares {
        over_cap: 20,
        not_enrolled: 20,
        unknown_subscriber: 20,
        duplicate_within: 20,
        duplicate_across: 20,
        unclaimed: 20,
    };
    let month = MonthGenerator::new(11, 3_000, vec!["VNPT".into(), "VIETTEL".into()], MARCH, start, shares).unwrap();
    telesub_tests::load_enrollments(&app.db, month.enrollments()).await.unwrap();
    for operator in ["VNPT", "VIETTEL"] {
        let client = app.client(operator).await;
        let lines: Vec<_> = month.lines(operator).collect();
        let r = submit(&client, list_header(&format!("{operator}-gen"), MARCH, false), lines).await.unwrap();
        assert_eq!(r.status(), proto::ReconciliationStatus::Reconciled);
    }
    let ict = app.client("DOICT").await;
    for operator in ["VNPT", "VIETTEL"] {
        let r = settled(&ict, operator, &format!("{operator}-gen")).await;
        let f = figures(&r);
        let e = month.expected(operator);
        assert_eq!(
            (f.lines, f.claims, f.unclaimed, f.lines_ok, f.amount_claimed, f.amount_confirmable),
            (e.lines, e.claims, e.unclaimed, e.lines_ok, e.amount_claimed, e.amount_confirmable),
            "{operator}"
        );
        let found: std::collections::BTreeMap<&str, i64> = f
            .by_code
            .iter()
            .map(|c| (c.code().as_str_name().trim_start_matches("DISCREPANCY_CODE_"), c.lines))
            .collect();
        assert_eq!(found, e.by_code, "{operator}");
        assert_eq!(f.enrollments_not_reported, e.enrollments_not_reported, "{operator}");
        assert!(e.by_code.len() >= 7, "every kind is planted: {:?}", e.by_code);
    }
}

#[tokio::test]
async fn two_lists_received_at_the_same_time_still_find_the_household_they_share() {
    use futures_util::StreamExt;
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let (vnpt, viettel, ict) = (app.client("VNPT").await, app.client("VIETTEL").await, app.client("DOICT").await);
    let e1 = vnpt.enroll(enroll("e1", "HH-1", 1, "0912000001", "2025-02-01")).await.unwrap().enrollment_id;
    let e2 = viettel.enroll(enroll("v2", "HH-2", 2, "0981000002", "2025-02-01")).await.unwrap().enrollment_id;

    // VNPT's list stays open (received, not reconciled) until `release` fires.
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let held = stream::iter(vec![claim("HH-1", 1, "0912000001", &e1), claim("HH-2", 2, "0912000002", "")])
        .chain(stream::once(async move { released.await.ok() }).filter_map(|_| async { None }));
    let sending = tokio::spawn({
        let vnpt = vnpt.clone();
        async move { vnpt.submit_monthly_update(list_header("vn", MARCH, false), held).await }
    });
    let mut open = false;
    for _ in 0..200 {
        let lists = ict.list_reconciliations(proto::ListReconciliationsRequest::default()).await.unwrap();
        if lists.reconciliations.iter().any(|r| r.status() == proto::ReconciliationStatus::Received) {
            open = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(open, "VNPT's list is being received");
    // VIETTEL's list, claiming HH-2 too, is reconciled meanwhile: VNPT's is not counted yet.
    let theirs =
        submit(&viettel, list_header("vt", MARCH, false), vec![claim("HH-2", 2, "0981000002", &e2)]).await.unwrap();
    assert_eq!(count(&theirs, proto::DiscrepancyCode::DuplicateAcrossOperators), 0);
    release.send(()).unwrap();
    let ours = sending.await.unwrap().unwrap();
    assert_eq!(ours.status(), proto::ReconciliationStatus::Reconciled);
    // Each was received before the other was reconciled: both are reconciled again.
    for (operator, id) in [("VNPT", "vn"), ("VIETTEL", "vt")] {
        let r = settled(&ict, operator, id).await;
        assert_eq!(count(&r, proto::DiscrepancyCode::DuplicateAcrossOperators), 1, "{operator}: {r:?}");
    }
}

#[tokio::test]
async fn a_list_left_half_reconciled_again_is_finished_by_the_next_hub_to_start() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let vnpt = app.client("VNPT").await;
    let e1 = vnpt.enroll(enroll("e1", "HH-1", 1, "0912000001", "2025-02-01")).await.unwrap().enrollment_id;
    let lines = vec![claim("HH-1", 1, "0912000001", &e1), claim("HH-3", 3, "0912000003", "")];
    let list = submit(&vnpt, list_header("vn", MARCH, false), lines).await.unwrap();
    assert_eq!(figures(&list).lines_ok, 1);
    // As a hub leaves a list it was reconciling again when it stopped: marked stale, its
    // lines' outcome half rewritten.
    app.db.execute("UPDATE monthly_updates SET stale = TRUE").await.unwrap();
    app.db
        .execute("UPDATE monthly_lines SET codes = '', detail = NULL, amount_confirmable = amount_claimed")
        .await
        .unwrap();
    let ict = app.client("DOICT").await;
    let err = ict
        .confirm_reconciliation(proto::ConfirmRequest {
            operator: "VNPT".into(),
            update_id: "vn".into(),
            scope: proto::ConfirmationScope::OkLines.into(),
            note: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "a stale list is not confirmed: {err}");
    assert!(err.to_string().contains("reconciled again"), "{err}");

    let second = app.spawn_beside().await;
    let ict = app.client_of(&second, "DOICT").await;
    let again = settled(&ict, "VNPT", "vn").await;
    assert_eq!(figures(&again).lines_ok, 1, "{again:?}");
    let lines = all_lines(&ict, "VNPT", "vn", false).await;
    assert_eq!(lines.iter().map(|l| l.line_number).collect::<Vec<_>>(), [2]);
    assert!(codes(&lines[0]).contains(&proto::DiscrepancyCode::EligibilityEnded), "{:?}", lines[0]);
}

/// A line that claims nothing still says "this subscriber is enrolled with us": one the hub
/// holds no enrolment for disagrees with the register and carries a code, not OK.
#[tokio::test]
async fn an_unclaimed_line_without_an_enrolment_is_not_ok() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let vnpt = app.client("VNPT").await;
    let e1 = vnpt.enroll(enroll("e1", "HH-1", 1, "0912000001", "2025-02-01")).await.unwrap().enrollment_id;
    let e6 = vnpt.enroll(enroll("e6", "HH-6", 6, "0912000006", "2025-02-01")).await.unwrap().enrollment_id;
    let unclaimed = |mut line: proto::MonthlyLine| {
        line.change = 0;
        line.amount_claimed = 0;
        line.unclaimed_reason = proto::UnclaimedReason::NoUsageYet.into();
        line
    };
    let lines = vec![
        claim("HH-1", 1, "0912000001", &e1),            // 1 OK
        unclaimed(claim("HH-6", 6, "0912000006", &e6)), // 2 enrolled, not claimed: OK
        unclaimed(claim("HH-2", 2, "0912000002", "")),  // 3 no enrolment of the number
    ];
    let r = submit(&vnpt, list_header("vn-2025-03", MARCH, false), lines).await.unwrap();
    let f = figures(&r);
    assert_eq!((f.lines, f.claims, f.unclaimed, f.lines_ok), (3, 1, 2, 2), "{f:?}");
    assert_eq!((f.amount_claimed, f.amount_confirmable), (60_000, 60_000));
    assert_eq!(count(&r, proto::DiscrepancyCode::NotEnrolled), 1);
    let lines = all_lines(&vnpt, "", "vn-2025-03", false).await;
    let flagged: Vec<(i64, Vec<proto::DiscrepancyCode>)> = lines.iter().map(|l| (l.line_number, codes(l))).collect();
    use proto::DiscrepancyCode as C;
    assert_eq!(flagged, [(3, vec![C::NotEnrolled])]);
}
