//! Device allocation through `telesub-cli`, the binary itself, against a real hub: ICT records
//! a decision and proposes the list, the People's Committee approves it, a locality records a
//! hand-over, and the published list is saved as CSV and as the commune's HTML page.

use telesub_client::proto;
use telesub_tests::TestApp;

use crate::{
    households::{header, household, push},
    monthly_cli::cli_run,
};

#[tokio::test]
async fn the_whole_allocation_runs_from_the_command_line() {
    let app = TestApp::spawn().await;
    let labour = app.client("DOLISA").await;
    let records = (1..=3).map(|n| household(&format!("HH-{n}"), "24611", n)).collect();
    push(&labour, header("review-2024", proto::BatchKind::Snapshot, "2024", "2025-01-01"), records).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path();
    let number = "7/QĐ-BTTTT";

    let run = cli_run(
        &app,
        "DOICT",
        here,
        &["devices", "record", number, "--date", "2025-03-01", "--tablets", "1", "--smartphones", "1"],
    )
    .await;
    run.assert_ok();
    assert!(run.field("status").starts_with("RECORDED"), "{}", run.out);
    // A decision of no device is refused by the hub, naming the field: invalid input.
    let run = cli_run(
        &app,
        "DOICT",
        here,
        &["devices", "record", "8/QĐ", "--date", "2025-03-01", "--tablets", "0", "--smartphones", "0"],
    )
    .await;
    assert_eq!(run.code, Some(3), "{}{}", run.out, run.err);
    assert!(run.err.contains("tablets"), "{}", run.err);

    let run = cli_run(&app, "DOET", here, &["devices", "nominate", number, "--reason", "học sinh", "HH-3"]).await;
    run.assert_ok();
    let run = cli_run(&app, "DOICT", here, &["devices", "propose", number, "--as-of", "2025-03-01"]).await;
    run.assert_ok();
    assert!(run.field("recipients").starts_with("2 household(s)"), "{}", run.out);
    let digest = run.field("proposal digest").to_owned();
    assert_eq!(digest.len(), 64);

    // HH-3 was nominated: it comes first among equals, and gets the smartphone.
    let run = cli_run(&app, "DOICT", here, &["devices", "recipients", number]).await;
    run.assert_ok();
    let rows: Vec<&str> = run.out.lines().filter(|l| l.contains("HH-")).collect();
    assert_eq!(rows.len(), 2, "{}", run.out);
    assert!(rows[0].contains("HH-3") && rows[0].contains("smartphone"), "{}", run.out);

    cli_run(&app, "DOICT", here, &["devices", "submit", number]).await.assert_ok();
    let run = cli_run(&app, "UBND", here, &["devices", "approve", number, "--approval-number", "9/QĐ-UBND"]).await;
    run.assert_ok();
    assert!(run.field("status").starts_with("APPROVED"), "{}", run.out);

    let today = telesub_server::domain::household::format_date(telesub_server::domain::clock::Clock::system().today());
    let handover = [
        "devices",
        "handover",
        number,
        "HH-3",
        "--date",
        &today,
        "--received-by",
        "Nguyễn Văn An",
        "--device",
        "smartphone",
        "--imei",
        "490154203237518",
    ];
    cli_run(&app, "GIANGHIA", here, &handover).await.assert_ok();
    let run = cli_run(&app, "GIANGHIA", here, &{
        let mut again = handover;
        again[11] = "356938035643809";
        again
    })
    .await;
    assert_eq!(run.code, Some(7), "a second device: {}{}", run.out, run.err);

    let run = cli_run(&app, "DOICT", here, &["devices", "show", number]).await;
    run.assert_ok();
    assert!(run.out.contains("progress"), "{}", run.out);

    let run = cli_run(&app, "UBND", here, &["devices", "publish", number, "--format", "csv", "-o", "list.csv"]).await;
    run.assert_ok();
    let csv = std::fs::read_to_string(here.join("list.csv")).unwrap();
    assert!(
        csv.starts_with("\u{feff}commune_code,commune,no,head_name,category,device_type,status,handed_over_on\r\n")
    );
    assert!(csv.contains(&format!(",SMARTPHONE,DEVICE_HANDED_OVER,{today}\r\n")), "{csv}");
    let run =
        cli_run(&app, "GIANGHIA", here, &["devices", "publish", number, "--commune", "24611", "--format", "html"])
            .await;
    run.assert_ok();
    let pages: Vec<_> = std::fs::read_dir(here)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "html"))
        .collect();
    assert_eq!(pages.len(), 1, "{}", run.out);
    let page = std::fs::read_to_string(&pages[0]).unwrap();
    assert!(page.contains("Phường Nghĩa Đức") && page.contains("9/QĐ-UBND"));
}
