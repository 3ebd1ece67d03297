//! Monthly lists through `telesub-cli`, the binary itself, against a real hub: an operator
//! submits a CSV file, ICT reads the month, confirms the list and exports it.

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

use telesub_client::{Client, MonthlyLineWriter, proto};
use telesub_tests::TestApp;

use crate::households::{cid, header, household, push, removal};

/// The `telesub-cli` binary of this build. Cargo builds the binaries of the packages under
/// test only, not those of their dependencies, so it is built here, once, into the same
/// target folder (a second or so when it is up to date). `TELESUB_CLI` names a binary to use
/// instead.
pub(crate) fn cli() -> &'static Path {
    static CLI: OnceLock<PathBuf> = OnceLock::new();
    CLI.get_or_init(|| match std::env::var_os("TELESUB_CLI") {
        Some(path) => PathBuf::from(path),
        None => telesub_tests::built_binary("telesub-cli"),
    })
}

/// What a run of the binary did.
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) out: String,
    pub(crate) err: String,
}

impl Run {
    /// The value printed after `label` (`label   value`), when there is one.
    pub(crate) fn value(&self, label: &str) -> Option<&str> {
        self.out.lines().find_map(|line| match line.split_once("  ") {
            Some((found, value)) if found.trim() == label => Some(value.trim()),
            _ => None,
        })
    }

    pub(crate) fn field(&self, label: &str) -> &str {
        self.value(label).unwrap_or_else(|| panic!("no {label:?} in:\n{}", self.out))
    }

    pub(crate) fn assert_ok(&self) {
        assert_eq!(self.code, Some(0), "stdout:\n{}\nstderr:\n{}", self.out, self.err);
    }
}

/// Runs `telesub-cli` as `org` against the hub, in `dir`.
pub(crate) async fn cli_run(app: &TestApp, org: &str, dir: &Path, args: &[&str]) -> Run {
    let output = tokio::process::Command::new(cli())
        .arg("--endpoint")
        .arg(app.endpoint())
        .arg("--tls-dir")
        .arg(app.tls_dir.path())
        .args(["--org", org])
        .args(args)
        .current_dir(dir)
        .env_remove("TELESUB_ENDPOINT")
        .env_remove("TELESUB_ORG")
        .env_remove("TELESUB_TLS_DIR")
        .output()
        .await
        .expect("run telesub-cli");
    Run {
        code: output.status.code(),
        out: String::from_utf8(output.stdout).expect("UTF-8 output"),
        err: String::from_utf8(output.stderr).expect("UTF-8 errors"),
    }
}

/// HH-1 to HH-4 poor from 1 January 2025, HH-3 removed (deceased) on 1 February; VNPT's
/// enrolments of HH-1, HH-2 and HH-4 from 1 February, by household number.
async fn with_register_and_enrolments(app: &TestApp, vnpt: &Client) -> [String; 5] {
    let labour = app.client("DOLISA").await;
    let records = (1..=4).map(|n| household(&format!("HH-{n}"), "24611", n)).collect();
    push(&labour, header("review-2024", proto::BatchKind::Snapshot, "2024", "2025-01-01"), records).await.unwrap();
    let deceased = vec![removal("HH-3", proto::RemovalReason::Deceased, "2025-02-01")];
    push(&labour, header("2025-02", proto::BatchKind::Delta, "2025-02", "2025-02-01"), deceased).await.unwrap();
    let mut ids: [String; 5] = Default::default();
    for n in [1, 2, 4] {
        let enrolment = vnpt
            .enroll(proto::EnrollRequest {
                idempotency_key: format!("e{n}"),
                household_code: format!("HH-{n}"),
                subscriber_citizen_id: cid(n, 1980, false),
                phone_number: format!("091200000{n}"),
                service: proto::SupportedService::Mobile.into(),
                start_date: "2025-02-01".into(),
            })
            .await
            .unwrap();
        ids[n as usize] = enrolment.enrollment_id;
    }
    ids
}

/// A continuing claim of 60,000 VND for the whole of March by the head of household `n`.
fn claim(n: u32, enrollment: &str) -> proto::MonthlyLine {
    proto::MonthlyLine {
        phone_number: format!("091200000{n}"),
        subscriber_citizen_id: cid(n, 1980, false),
        household_code: format!("HH-{n}"),
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

fn write_csv(path: &Path, lines: &[proto::MonthlyLine]) -> Vec<u8> {
    let mut writer = MonthlyLineWriter::new(Vec::new()).unwrap();
    for line in lines {
        writer.write(line).unwrap();
    }
    let bytes = writer.finish().unwrap();
    std::fs::write(path, &bytes).unwrap();
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `12,345` for 12345.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let pieces: Vec<&str> = digits.as_bytes().rchunks(3).rev().map(|c| std::str::from_utf8(c).unwrap()).collect();
    pieces.join(",")
}

async fn lists(client: &Client, period: &str) -> Vec<proto::MonthlyReconciliation> {
    let request = proto::ListReconciliationsRequest { period: period.into(), ..Default::default() };
    client.list_reconciliations(request).await.unwrap().reconciliations
}

#[tokio::test]
async fn an_operator_submits_a_month_from_csv_and_ict_confirms_and_exports_it() {
    cli(); // built before the hub starts
    let app = TestApp::spawn().await;
    let (vnpt, ict) = (app.client("VNPT").await, app.client("DOICT").await);
    let enrolled = with_register_and_enrolments(&app, &vnpt).await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();

    // Line 1 OK; line 2 a household removed in February, not enrolled; line 3 enrolled but not
    // claimed. HH-4's enrolment is on no line.
    let mut unclaimed = claim(2, &enrolled[2]);
    unclaimed.change = 0;
    unclaimed.amount_claimed = 0;
    unclaimed.days_of_service = 0;
    unclaimed.used = false;
    unclaimed.unclaimed_reason = proto::UnclaimedReason::NoUsageYet.into();
    let file = dir.join("vnpt-2025-03.csv");
    let bytes = write_csv(&file, &[claim(1, &enrolled[1]), claim(3, ""), unclaimed]);
    let digest = hex(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref());
    let update_id = format!("2025-03-{}", &digest[..12]);

    let submit = ["reports", "submit", "--period", "2025-03", "--file", file.to_str().unwrap()];
    let first = cli_run(&app, "VNPT", dir, &submit).await;
    first.assert_ok();
    assert_eq!(first.field("update id"), update_id, "the id comes from the file's SHA-256");
    assert_eq!(first.field("operator"), "VNPT");
    assert_eq!(first.field("period"), "2025-03");
    assert_eq!(first.field("status"), "RECONCILED");
    // HH-3's support ended, and the line does not stop it; HH-4 is not reported.
    assert_eq!(
        ["lines", "claims", "unclaimed", "OK lines", "missing stops", "not reported"].map(|label| first.field(label)),
        ["3", "2", "1", "2", "1", "1"],
        "{}",
        first.out
    );
    assert_eq!(first.field("claimed"), "120,000 VND");
    assert_eq!(first.field("confirmable"), "60,000 VND");
    assert_eq!(first.field("by code"), "ELIGIBILITY_ENDED 1, NOT_ENROLLED 1");
    assert_eq!(first.field("by reason"), "NO_USAGE_YET 1");
    assert_eq!(first.value("replayed"), None);
    // What the CLI printed is what the hub holds.
    let held = vnpt.get_reconciliation("", &update_id).await.unwrap();
    let figures = held.figures.unwrap();
    assert_eq!((figures.lines, figures.lines_ok, figures.amount_claimed, figures.missing_stops), (3, 2, 120_000, 1));
    assert_eq!(first.field("digest"), held.content_digest);

    // The same command again is a replay: same list, nothing new.
    let again = cli_run(&app, "VNPT", dir, &submit).await;
    again.assert_ok();
    assert_eq!(again.field("update id"), update_id);
    assert!(again.field("replayed").starts_with("yes"), "{}", again.out);
    assert_eq!(again.field("digest"), held.content_digest);
    assert_eq!(lists(&ict, "2025-03").await.len(), 1);

    // The operator's discrepancies: line 2 only, with both codes.
    let lines = cli_run(&app, "VNPT", dir, &["reconciliation", "discrepancies", "--update-id", &update_id]).await;
    lines.assert_ok();
    let rows: Vec<&str> = lines.out.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{}", lines.out);
    let columns: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(columns[..5], ["2", "0912000003", "HH-3", "24611", "60,000"], "{}", lines.out);
    assert!(rows[0].contains("ELIGIBILITY_ENDED: ") && rows[0].contains("NOT_ENROLLED: "), "{}", lines.out);
    let all = ["reconciliation", "discrepancies", "--update-id", &update_id, "--all", "--code", "not_enrolled"];
    let only = cli_run(&app, "VNPT", dir, &all).await;
    only.assert_ok();
    assert_eq!(only.out.lines().count(), 2, "one line has NOT_ENROLLED:\n{}", only.out);

    // ICT: the month, one row per list.
    let status = cli_run(&app, "DOICT", dir, &["reconciliation", "status", "--period", "2025-03"]).await;
    status.assert_ok();
    let rows: Vec<Vec<&str>> = status.out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0][..3], ["PERIOD", "OPERATOR", "UPDATE"], "{}", status.out);
    assert_eq!(rows.len(), 2, "{}", status.out);
    assert_eq!(rows[1], ["2025-03", "VNPT", &update_id, "RECONCILED", "3", "2", "120,000", "60,000", "0"]);
    let none = cli_run(&app, "DOICT", dir, &["reconciliation", "status", "--status", "confirmed"]).await;
    none.assert_ok();
    assert_eq!(none.out.trim(), "no lists");

    // Only ICT confirms.
    let confirm = ["reconciliation", "confirm", "--operator", "VNPT", "--update-id", &update_id, "--scope", "ok-lines"];
    let refused = cli_run(&app, "VNPT", dir, &confirm).await;
    assert_eq!(refused.code, Some(5), "{}", refused.out);
    assert!(refused.err.contains("permission denied"), "{}", refused.err);
    let confirmed = cli_run(&app, "DOICT", dir, &[&confirm[..], &["--note", "Biên bản 03/2025"]].concat()).await;
    confirmed.assert_ok();
    assert_eq!(confirmed.field("status"), "CONFIRMED");
    let line = confirmed.field("confirmed");
    assert!(line.starts_with("OK_LINES by DOICT at ") && line.ends_with(": 2 lines, 60,000 VND"), "{line}");
    assert_eq!(confirmed.field("confirm note"), "Biên bản 03/2025");
    let held = ict.get_reconciliation("VNPT", &update_id).await.unwrap();
    assert_eq!(held.status(), proto::ReconciliationStatus::Confirmed);
    assert_eq!(confirmed.field("lines digest"), held.confirmation.unwrap().lines_digest);
    let shown = cli_run(&app, "VNPT", dir, &["reconciliation", "show", "--update-id", &update_id]).await;
    shown.assert_ok();
    assert_eq!((shown.field("status"), shown.field("exceptions")), ("CONFIRMED", "0"));

    // The confirmed lines as CSV, under the name the hub suggests; the whole list as XLSX.
    let export = ["reconciliation", "export", "--operator", "VNPT", "--update-id", &update_id, "--format", "csv"];
    let saved = cli_run(&app, "DOICT", dir, &[&export[..], &["--confirmed-lines-only"]].concat()).await;
    saved.assert_ok();
    let name = format!("2025-03-VNPT-{update_id}.csv");
    let csv = std::fs::read_to_string(dir.join(&name)).unwrap();
    let size = grouped(csv.len());
    assert!(saved.out.starts_with(&format!("saved {name}: {size} bytes, text/csv")), "{}", saved.out);
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("\u{feff}line_number,phone_number,"), "{csv}");
    let numbers: Vec<&str> = rows[1..].iter().map(|r| r.split(',').next().unwrap()).collect();
    assert_eq!(numbers, ["1", "3"], "the lines the confirmation covers:\n{csv}");
    assert!(!dir.join(format!("{name}.part")).exists());

    let workbook = dir.join("march.xlsx");
    let xlsx = ["reconciliation", "export", "--update-id", &update_id, "--format", "xlsx", "--out", "march.xlsx"];
    let saved = cli_run(&app, "VNPT", dir, &xlsx).await;
    saved.assert_ok();
    let data = std::fs::read(&workbook).unwrap();
    assert!(data.starts_with(b"PK"), "an XLSX workbook is a ZIP archive");
    assert!(saved.out.starts_with(&format!("saved march.xlsx: {} bytes, ", grouped(data.len()))), "{}", saved.out);
}

#[tokio::test]
async fn a_bad_file_is_refused_naming_its_lines_and_a_corrected_one_replaces_the_list() {
    cli();
    let app = TestApp::spawn().await;
    let (vnpt, ict) = (app.client("VNPT").await, app.client("DOICT").await);
    let enrolled = with_register_and_enrolments(&app, &vnpt).await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let file = dir.join("vnpt-2025-03.csv");
    let submit = ["reports", "submit", "--period", "2025-03", "--file", file.to_str().unwrap()];

    // Format errors: every one is named, and nothing reaches the hub.
    let row = |n: u32, service: &str, amount: &str| {
        format!("091200000{n},{},HH-{n},,CONTINUING,{service},ASXH60,70000,{amount},31,true,", cid(n, 1980, false))
    };
    let header = telesub_client::monthly_csv::COLUMNS.join(",");
    let rows = [header, row(1, "MOBILE", "60000"), row(2, "ADSL", "60000"), row(4, "MOBILE", "60.000")];
    std::fs::write(&file, rows.join("\n")).unwrap();
    let run = cli_run(&app, "VNPT", dir, &submit).await;
    assert_eq!(run.code, Some(3), "{}", run.out);
    let errors: Vec<&str> = run.err.lines().collect();
    assert!(errors[0].starts_with("line 3, column service: \"ADSL\" is not a service"), "{}", run.err);
    assert!(errors[1].starts_with("line 4, column amount_claimed: \"60.000\" is not a whole number"), "{}", run.err);
    assert!(errors[2].starts_with("2 format errors in ") && errors[2].ends_with("; nothing was sent"), "{}", run.err);
    assert!(run.out.is_empty(), "{}", run.out);
    assert!(lists(&ict, "2025-03").await.is_empty());

    // The hub's refusal names the list's line and the file's.
    let mut above_tariff = claim(2, &enrolled[2]);
    above_tariff.amount_claimed = 80_000;
    write_csv(&file, &[claim(1, &enrolled[1]), above_tariff]);
    let run = cli_run(&app, "VNPT", dir, &submit).await;
    assert_eq!(run.code, Some(3), "{}", run.out);
    assert!(run.err.starts_with("line 3: lines[2].amount_claimed: 80000 VND is more than"), "{}", run.err);
    assert!(run.err.contains("\ninvalid request: 1 problem; the list was refused"), "{}", run.err);
    assert!(lists(&ict, "2025-03").await.is_empty());

    // Corrected, under an id of the operator's choosing.
    write_csv(&file, &[claim(1, &enrolled[1]), claim(2, &enrolled[2])]);
    let named = [&submit[..], &["--update-id", "vnpt-2025-03", "--note", "Danh sách tháng 3"]].concat();
    let first = cli_run(&app, "VNPT", dir, &named).await;
    first.assert_ok();
    assert_eq!((first.field("update id"), first.field("note")), ("vnpt-2025-03", "Danh sách tháng 3"));
    assert_eq!((first.field("lines"), first.field("OK lines"), first.field("by code")), ("2", "2", "none"));

    // A second list for the month replaces the first only when asked to.
    write_csv(&file, &[claim(1, &enrolled[1]), claim(2, &enrolled[2]), claim(4, &enrolled[4])]);
    let run = cli_run(&app, "VNPT", dir, &submit).await;
    assert_eq!(run.code, Some(7), "{}", run.out);
    assert!(run.err.contains("has list vnpt-2025-03 already"), "{}", run.err);
    let second = cli_run(&app, "VNPT", dir, &[&submit[..], &["--replaces"]].concat()).await;
    second.assert_ok();
    let second_id = second.field("update id");
    assert!(second_id.starts_with("2025-03-") && second_id.len() == 20, "{second_id}");
    assert_eq!((second.field("lines"), second.field("not reported")), ("3", "0"));
    let earlier =
        cli_run(&app, "DOICT", dir, &["reconciliation", "show", "--operator", "VNPT", "--update-id", "vnpt-2025-03"])
            .await;
    earlier.assert_ok();
    assert_eq!((earlier.field("status"), earlier.field("superseded by")), ("SUPERSEDED", second_id));

    // ICT rejects it, saying why.
    let reject = ["reconciliation", "reject", "--operator", "VNPT", "--update-id", second_id, "--note", "thiếu dòng"];
    let rejected = cli_run(&app, "DOICT", dir, &reject).await;
    rejected.assert_ok();
    assert_eq!(rejected.field("status"), "REJECTED");
    let line = rejected.field("rejected");
    assert!(line.starts_with("by DOICT at ") && line.ends_with(": thiếu dòng"), "{line}");
    let held = vnpt.get_reconciliation("", second_id).await.unwrap();
    assert_eq!((held.status(), held.rejection_note.as_str()), (proto::ReconciliationStatus::Rejected, "thiếu dòng"));
}

/// For scripts: the hub's address and the certificate flags from the environment
/// (`TELESUB_ENDPOINT`, `TELESUB_TLS_DIR`, `TELESUB_ORG`; `TELESUB_CERT`, `TELESUB_KEY` and
/// `TELESUB_CA` alike), a flag still winning over its variable.
#[tokio::test]
async fn the_cli_takes_its_certificate_flags_from_the_environment() {
    let app = TestApp::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let run = |org_flag: Option<&str>| {
        let mut command = tokio::process::Command::new(cli());
        command
            .env("TELESUB_ENDPOINT", app.endpoint())
            .env("TELESUB_TLS_DIR", app.tls_dir.path())
            .env("TELESUB_ORG", "VNPT")
            .current_dir(dir.path())
            .arg("whoami");
        if let Some(org) = org_flag {
            command.args(["--org", org]);
        }
        command.output()
    };
    let output = run(None).await.unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{said}");
    assert!(said.contains("VNPT") && said.contains("OPERATOR"), "{said}");
    let output = run(Some("DOICT")).await.unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && said.contains("DOICT") && said.contains("ICT"), "{said}");
}
