//! The programme's statistics through the API, on a generated register and month: the figures
//! equal what the generators planted; units, the locality's scope, the public form and the
//! workbook.

use std::collections::BTreeMap;

use telesub_client::{Code, proto};
use telesub_tests::TestApp;
use telesub_tools::{
    generator::HouseholdGenerator,
    monthly_generator::{MonthGenerator, Shares},
};

const SEED: u64 = 11;
const HOUSEHOLDS: usize = 3_000;
const MARCH: &str = "2025-03";

/// Each generated household's code, category and commune.
fn planted() -> Vec<(String, proto::Category, String)> {
    HouseholdGenerator::reference(SEED)
        .take(HOUSEHOLDS)
        .filter_map(|r| match r.change {
            Some(proto::household_record::Change::Upsert(d)) => Some((r.household_code, d.category(), d.commune_code)),
            _ => None,
        })
        .collect()
}

fn row(s: &proto::ProgrammeStatistics, category: proto::Category) -> proto::CategoryFigures {
    s.by_category.iter().find(|r| r.category() == category).cloned().unwrap_or_default()
}

fn operator<'a>(s: &'a proto::ProgrammeStatistics, name: &str) -> &'a proto::OperatorFigures {
    s.by_operator.iter().find(|r| r.operator == name).unwrap_or_else(|| panic!("no {name:?} in {s:?}"))
}

#[tokio::test]
async fn the_figures_of_a_generated_month_are_the_ones_planted() {
    let app = TestApp::spawn().await;
    let start = time::Date::from_calendar_date(2025, time::Month::January, 1).unwrap();
    telesub_tests::load_generated(app.store.as_ref(), SEED, HOUSEHOLDS, start).await;
    let shares = Shares {
        over_cap: 20,
        not_enrolled: 20,
        unknown_subscriber: 20,
        duplicate_within: 20,
        duplicate_across: 0,
        unclaimed: 20,
    };
    let month =
        MonthGenerator::new(SEED, HOUSEHOLDS, vec!["VNPT".into(), "VIETTEL".into()], MARCH, start, shares).unwrap();
    telesub_tests::load_enrollments(&app.db, month.enrollments()).await.unwrap();
    for op in ["VNPT", "VIETTEL"] {
        let client = app.client(op).await;
        let header = proto::MonthlyUpdateHeader {
            period: MARCH.into(),
            update_id: format!("{op}-gen"),
            replaces_earlier: false,
            note: String::new(),
        };
        client
            .submit_monthly_update(header, futures_util::stream::iter(month.lines(op).collect::<Vec<_>>()))
            .await
            .unwrap();
    }
    let ict = app.client("DOICT").await;
    let confirmed = ict
        .confirm_reconciliation(proto::ConfirmRequest {
            operator: "VNPT".into(),
            update_id: "VNPT-gen".into(),
            scope: proto::ConfirmationScope::OkLines.into(),
            note: String::new(),
        })
        .await
        .unwrap();

    let s = ict
        .get_programme_statistics(proto::GetProgrammeStatisticsRequest {
            period: MARCH.into(),
            unit_code: String::new(),
        })
        .await
        .unwrap();
    assert_eq!((s.as_of.as_str(), s.previous_period.as_str()), ("2025-03-31", "2025-02"));

    // By category: the register as generated, every household on the list since January.
    let households = planted();
    let category_of: BTreeMap<&str, proto::Category> =
        households.iter().map(|(c, cat, _)| (c.as_str(), *cat)).collect();
    let mut by_category: BTreeMap<i32, i64> = BTreeMap::new();
    for (_, c, _) in &households {
        *by_category.entry(*c as i32).or_default() += 1;
    }
    let mut enrolled: BTreeMap<i32, i64> = BTreeMap::new();
    let mut enrolled_by_operator: BTreeMap<String, i64> = BTreeMap::new();
    for e in month.enrollments() {
        *enrolled.entry(category_of[e.household_code.as_str()] as i32).or_default() += 1;
        *enrolled_by_operator.entry(e.operator).or_default() += 1;
    }
    assert!(by_category.len() >= 4, "{by_category:?}");
    for (category, n) in &by_category {
        let c = proto::Category::try_from(*category).unwrap();
        let r = row(&s, c);
        let eligible = if c == proto::Category::Other { 0 } else { *n };
        assert_eq!((r.households, r.eligible, r.households_before), (*n, eligible, *n), "{c:?}");
        assert_eq!(r.enrolled, enrolled.get(category).copied().unwrap_or(0), "{c:?}");
        assert_eq!(r.enrolled_before, r.enrolled, "{c:?}: every line runs from January");
    }
    let total = row(&s, proto::Category::Unspecified);
    assert_eq!(total.households, HOUSEHOLDS as i64);

    // By operator: the month's lists as planted.
    for op in ["VNPT", "VIETTEL"] {
        let o = operator(&s, op);
        let e = month.expected(op);
        assert_eq!(o.enrolled, enrolled_by_operator[op], "{op}");
        assert_eq!((o.subscribers_claimed, o.amount_claimed), (e.claims, e.amount_claimed), "{op}");
        let codes: BTreeMap<&str, i64> = o
            .discrepancies
            .iter()
            .map(|c| (c.code().as_str_name().trim_start_matches("DISCREPANCY_CODE_"), c.lines))
            .collect();
        assert_eq!(codes, e.by_code, "{op}");
        assert_eq!((o.subscribers_claimed_before, o.amount_claimed_before), (0, 0), "no list in February");
    }
    let vnpt = operator(&s, "VNPT");
    let c = confirmed.confirmation.unwrap();
    assert_eq!(vnpt.list_status(), proto::ReconciliationStatus::Confirmed);
    assert_eq!(vnpt.amount_confirmed, c.amount, "the confirmation's amount");
    assert!(vnpt.subscribers_confirmed > 0 && vnpt.subscribers_confirmed <= c.lines);
    assert_eq!(operator(&s, "VIETTEL").subscribers_confirmed, 0, "not confirmed");
    assert_eq!(
        operator(&s, "").amount_claimed,
        month.expected("VNPT").amount_claimed + month.expected("VIETTEL").amount_claimed
    );

    // A commune, and a district as its locality sees it.
    let commune = households[0].2.clone();
    let one = ict
        .get_programme_statistics(proto::GetProgrammeStatisticsRequest {
            period: MARCH.into(),
            unit_code: commune.clone(),
        })
        .await
        .unwrap();
    let there = households.iter().filter(|(_, _, c)| *c == commune).count() as i64;
    assert_eq!(row(&one, proto::Category::Unspecified).households, there);
    assert!(there > 0 && there < HOUSEHOLDS as i64);
    let locality = app.client("GIANGHIA").await;
    let own = locality
        .get_programme_statistics(proto::GetProgrammeStatisticsRequest {
            period: MARCH.into(),
            unit_code: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(own.unit_code, "660");
    // The name is the unit's the figures are for, not the province's.
    assert_eq!(own.unit_name, "Thành phố Gia Nghĩa");
    // The communes of Gia Nghĩa (district 660) in the reference data.
    let gia_nghia = ["24611", "24612", "24614", "24615", "24617", "24618", "24619", "24628"];
    let in_660 = households.iter().filter(|(_, _, c)| gia_nghia.contains(&c.as_str())).count() as i64;
    assert!(in_660 > 0);
    assert_eq!(row(&own, proto::Category::Unspecified).households, in_660);
    let err = locality
        .get_programme_statistics(proto::GetProgrammeStatisticsRequest {
            period: MARCH.into(),
            unit_code: "661".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied));

    // The public form: small counts hidden.
    let vnpt_client = app.client("VNPT").await;
    let public = vnpt_client
        .public_statistics(proto::PublicStatisticsRequest {
            period: MARCH.into(),
            unit_code: commune.clone(),
            threshold: 0,
        })
        .await
        .unwrap();
    assert_eq!(public.threshold, 10);
    assert_eq!(public.columns[..3], ["view".to_owned(), "name".to_owned(), "households".to_owned()]);
    for r in &public.rows {
        for cell in &r.cells[2..] {
            assert!(
                cell.is_empty() || cell == "< 10" || cell == "x" || cell.parse::<i64>().is_ok_and(|n| n >= 10),
                "{cell:?} in {r:?}"
            );
        }
    }
    assert!(public.legend.contains("< 10: fewer than 10") && public.legend.contains("x: hidden"), "{}", public.legend);
    let err = vnpt_client
        .public_statistics(proto::PublicStatisticsRequest {
            period: MARCH.into(),
            unit_code: String::new(),
            threshold: 2,
        })
        .await
        .unwrap_err();
    assert_eq!(err.violations()[0].field, "threshold");

    // Files: the workbook for the staff, the public CSV for everyone.
    let export = |format: proto::StatisticsFormat| proto::ExportStatisticsRequest {
        period: MARCH.into(),
        unit_code: String::new(),
        format: format.into(),
        threshold: 0,
        without_byte_order_mark: false,
    };
    let book = ict.export_statistics_file(export(proto::StatisticsFormat::Xlsx)).await.unwrap();
    assert!(book.file_name.ends_with(".xlsx") && book.data.starts_with(b"PK"), "{}", book.file_name);
    let text: String =
        telesub_tests::unzip(&book.data).iter().map(|(_, data)| String::from_utf8_lossy(data).into_owned()).collect();
    assert!(text.contains("Theo diện hộ") && text.contains("Theo doanh nghiệp") && text.contains("Sai lệch"));
    let err = vnpt_client.export_statistics_file(export(proto::StatisticsFormat::Xlsx)).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied));
    let csv = vnpt_client.export_statistics_file(export(proto::StatisticsFormat::PublicCsv)).await.unwrap();
    assert!(String::from_utf8(csv.data).unwrap().starts_with("\u{feff}view,name,households,eligible,"));

    // Devices: places on approved lists and hand-overs, counted in the month they happen.
    let committee = app.client("UBND").await;
    ict.record_allocation_decision(proto::RecordAllocationDecisionRequest {
        decision_number: "STAT/QĐ".into(),
        decision_date: "2025-03-01".into(),
        tablets: 0,
        smartphones: 5,
        unit_quotas: vec![],
        cash_alternative_amount: 0,
        note: String::new(),
    })
    .await
    .unwrap();
    ict.propose_recipients("STAT/QĐ", "2025-03-01").await.unwrap();
    let submitted = ict.submit_for_approval("STAT/QĐ").await.unwrap();
    committee
        .approve_allocation(proto::ApproveRequest {
            decision_number: "STAT/QĐ".into(),
            approval_number: "1/QĐ-UBND".into(),
            note: String::new(),
            list_digest: submitted.list_digest,
            approved_on: String::new(),
        })
        .await
        .unwrap();
    let places = ict
        .all_allocation_recipients(proto::ListAllocationRecipientsRequest {
            decision_number: "STAT/QĐ".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let today = telesub_server::domain::clock::Clock::system().today();
    ict.record_handover(proto::RecordHandoverRequest {
        decision_number: "STAT/QĐ".into(),
        household_code: places[0].household_code.clone(),
        handed_over_on: telesub_server::domain::household::format_date(today),
        received_by: "Nguyễn Văn An".into(),
        kind: Some(proto::record_handover_request::Kind::Cash(proto::CashPayment {
            amount: 500_000,
            phone_bought_on: "2024-01-02".into(),
            receipt_reference: "PC-1".into(),
        })),
    })
    .await
    .unwrap();
    let this_month = format!("{:04}-{:02}", today.year(), u8::from(today.month()));
    let now = ict
        .get_programme_statistics(proto::GetProgrammeStatisticsRequest { period: this_month, unit_code: String::new() })
        .await
        .unwrap();
    let total = row(&now, proto::Category::Unspecified);
    assert_eq!((total.devices_allocated, total.devices_handed_over), (5, 1));
    let first = places[0].category();
    assert!(row(&now, first).devices_handed_over == 1, "{first:?}");
    assert_eq!(row(&s, proto::Category::Unspecified).devices_allocated, 0, "approved after March");

    // The same from the command line.
    {
        use crate::monthly_cli::cli_run;
        let dir = tempfile::tempdir().unwrap();
        let here = dir.path();
        let run = cli_run(&app, "DOICT", here, &["stats", "show", "--period", MARCH, "--unit", &commune]).await;
        run.assert_ok();
        assert_eq!(run.field("period"), MARCH);
        assert!(run.out.contains("by category") && run.out.contains("by operator"), "{}", run.out);
        let total_line = run.out.lines().find(|l| l.trim_start().starts_with("TOTAL")).unwrap_or_default();
        assert!(total_line.contains(&there.to_string()), "{total_line:?} in\n{}", run.out);
        let run = cli_run(&app, "VNPT", here, &["stats", "public", "--period", MARCH]).await;
        run.assert_ok();
        assert!(run.out.contains("< 10") || run.out.contains("TOTAL"), "{}", run.out);
        let run =
            cli_run(&app, "DOICT", here, &["stats", "export", "--period", MARCH, "--format", "xlsx", "-o", "s.xlsx"])
                .await;
        run.assert_ok();
        assert!(std::fs::read(here.join("s.xlsx")).unwrap().starts_with(b"PK"));
        let run = cli_run(&app, "VNPT", here, &["stats", "show", "--period", MARCH]).await;
        assert_eq!(run.code, Some(5), "operators read the public figures only: {}", run.err);
    }

    // Bad requests.
    for (period, unit, field) in
        [("2025-13", "", "period"), ("2099-01", "", "period"), (MARCH, "999", "unit_code"), (MARCH, "67", "unit_code")]
    {
        let err = ict
            .get_programme_statistics(proto::GetProgrammeStatisticsRequest {
                period: period.into(),
                unit_code: unit.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.violations().first().map(|v| v.field.as_str()), Some(field), "{period} {unit}: {err}");
    }
    let err = vnpt_client
        .get_programme_statistics(proto::GetProgrammeStatisticsRequest {
            period: MARCH.into(),
            unit_code: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied));
}
