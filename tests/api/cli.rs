//! The `telesub` command line, run in-process through its real argument parser.

use clap::Parser;
use telesub_tests::TestApp;
use telesub_tools::cli::{Cli, run_with};

async fn telesub(args: &[&str]) -> (bool, String) {
    // The first subscriber installed wins: keep the commands under test quiet.
    telesub_server::telemetry::init(telesub_server::config::LogFormat::Text, "error");
    let cli = Cli::try_parse_from(std::iter::once("telesub").chain(args.iter().copied())).expect("valid arguments");
    let mut out = Vec::new();
    let code = run_with(cli, &mut out).await;
    (code == std::process::ExitCode::SUCCESS, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn audit_verify_reports_an_intact_chain_and_names_a_tampered_record() {
    let app = TestApp::spawn().await;
    let client = app.client("DOLISA").await;
    for _ in 0..4 {
        client.who_am_i().await.unwrap();
    }
    let url = app.db.url();
    let (ok, out) = telesub(&["audit", "verify", "--database", &url]).await;
    assert!(ok, "{out}");
    assert!(out.contains("intact: 4 records"), "{out}");

    super::audit::disable_guard(&app.db).await;
    app.db.execute("UPDATE audit_log SET org_code = 'DOICT' WHERE seq = 2").await.unwrap();
    let (ok, out) = telesub(&["audit", "verify", "--database", &url]).await;
    assert!(!ok, "a broken chain must fail the command");
    assert!(out.contains("BROKEN at record 2"), "{out}");
}

#[tokio::test]
async fn migrate_creates_the_schema_once() {
    let db = telesub_tests::TestDb::new().await;
    let url = db.url();
    for _ in 0..2 {
        let (ok, out) = telesub(&["migrate", "--database", &url]).await;
        assert!(ok, "{out}");
        assert!(out.contains("migrations applied"), "{out}");
    }
    let (ok, out) = telesub(&["audit", "verify", "--database", &url]).await;
    assert!(ok && out.contains("intact: 0 records"), "{out}");
}

#[tokio::test]
async fn bootstrap_creates_the_first_ict_member_once() {
    let db = telesub_tests::TestDb::new().await;
    let url = db.url();
    let (ok, out) =
        telesub(&["bootstrap", "--database", &url, "--code", "DOICT", "--name", "Sở Thông tin và Truyền thông"]).await;
    assert!(ok, "{out}");
    let store = db.store().await;
    let member = store
        .get_member(&telesub_server::domain::member::OrgCode::parse("DOICT").unwrap())
        .await
        .unwrap()
        .expect("bootstrapped");
    assert_eq!(member.role, telesub_server::domain::member::Role::Ict);
    assert_eq!(member.display_name.as_str(), "Sở Thông tin và Truyền thông");

    let (ok, _) = telesub(&["bootstrap", "--database", &url, "--code", "OTHER", "--name", "Other"]).await;
    assert!(!ok, "a second bootstrap must be refused");
    assert!(
        store.get_member(&telesub_server::domain::member::OrgCode::parse("OTHER").unwrap()).await.unwrap().is_none()
    );
}

#[tokio::test]
async fn pki_init_and_revoke_write_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let (ok, out) = telesub(&["pki", "init", "--dir", path, "--org", "DOICT:ICT", "--org", "XA:LOCALITY:24611"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("DOICT, XA"), "{out}");
    for file in ["ca.crt", "ca.key", "server.crt", "server.key", "clients/DOICT.crt", "clients/XA.key", "members.toml"]
    {
        assert!(dir.path().join(file).exists(), "{file} missing");
    }
    let (ok, out) = telesub(&["pki", "revoke", "--dir", path, "--org", "XA"]).await;
    assert!(ok, "{out}");
    assert!(dir.path().join("crl.pem").exists());
    assert!(Cli::try_parse_from(["telesub", "pki", "init", "--dir", path, "--org", "XA:LOCALITY"]).is_err());
}

#[tokio::test]
async fn serve_refuses_to_start_without_tls() {
    let db = telesub_tests::TestDb::new().await;
    let (ok, out) = telesub(&["serve", "--database", &db.url(), "--listen", "127.0.0.1:0"]).await;
    assert!(!ok);
    assert!(out.is_empty(), "{out}");
}

#[tokio::test]
async fn a_bad_database_url_is_refused() {
    let (ok, _) = telesub(&["migrate", "--database", "mysql://localhost/telesub"]).await;
    assert!(!ok);
}

#[tokio::test]
async fn examples_and_the_demo_share_the_certificate_folder_layout() {
    // The folder `telesub pki init` writes is what `Client::builder().dev_folder()` reads.
    let app = TestApp::spawn().await;
    let client = telesub_client::Client::builder(app.endpoint())
        .dev_folder(app.tls_dir.path(), "DOET")
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert_eq!(client.who_am_i().await.unwrap().member.unwrap().code, "DOET");
}

#[tokio::test]
async fn the_demo_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("demo");
    let (ok, out) = telesub(&["demo", "--dir", work.to_str().unwrap()]).await;
    assert!(ok, "{out}");
    for step in [
        "Health check: SERVING",
        "VNPT lists the members: refused",
        "registers MOBIFONE",
        "2000 households added",
        "10 added, 20 changed, 5 removed",
        "has 2 states",
        ": eligible; enrols HH-",
        "VNPT's feed: REMOVED HH-",
        "(OUT_OF_POVERTY); support ends 2026-01-01",
        "DOICT reinstates VIETTEL",
        "VNPT submits its 2025-03 list",
        "hub: RECONCILED, 2 lines, 2 OK, 120,000 VND claimed, 120,000 VND confirmable",
        "VIETTEL submits its 2025-03 list",
        "hub: RECONCILED, 2 lines, 1 OK, 120,000 VND claimed, 60,000 VND confirmable",
        "): NOT_ENROLLED, DUPLICATE_ACROSS_OPERATORS",
        "VNPT's list is reconciled again",
        "): DUPLICATE_ACROSS_OPERATORS\n",
        "DOICT confirms VNPT's OK lines: CONFIRMED, 1 line, 60,000 VND, lines digest ",
        "DOICT rejects VIETTEL's list: REJECTED by DOICT: \"line 2:",
        "DOICT records the Ministry's decision DEMO-01/QĐ-BTTTT: 10 smartphones and 4 tablets",
        "DOET nominates 2 households with pupils",
        "The hub proposes 14 of the ",
        "and submits 13 households; list digest ",
        "UBND approves the list by decision DEMO-123/QĐ-UBND: APPROVED",
        "GIANGHIA hands a smartphone (IMEI ",
        "refused, household HH-",
        "commune_code,commune,no,head_name,category,device_type,status,handed_over_on",
        ",DEVICE_HANDED_OVER,",
        "chain intact",
    ] {
        assert!(out.contains(step), "missing {step:?} in:\n{out}");
    }
    // VIETTEL's list, and VNPT's once reconciled again: the duplicate costs each an OK line.
    assert_eq!(out.matches("hub: RECONCILED, 2 lines, 1 OK,").count(), 2, "{out}");
    assert!(work.join("telesub.db").exists());
    let pages: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".html"))
        .collect();
    assert_eq!(pages.len(), 1, "the commune's notice-board page is saved: {pages:?}");
    let (ok, _) = telesub(&["demo", "--dir", work.to_str().unwrap()]).await;
    assert!(!ok, "the demo refuses a folder that exists");
}

#[tokio::test]
async fn gen_writes_households_the_csv_reader_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("households.csv");
    let (ok, out) =
        telesub(&["gen", "households", "--count", "50", "--seed", "3", "--out", file.to_str().unwrap()]).await;
    assert!(ok, "{out}");
    let reader = telesub_client::csv::CsvReader::new(std::fs::File::open(&file).unwrap()).unwrap();
    let records: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
    assert_eq!(records.len(), 50);
    let again: Vec<_> = telesub_tools::generator::HouseholdGenerator::reference(3).take(50).collect();
    assert_eq!(records, again, "the file holds exactly what the generator makes");
}

#[tokio::test]
async fn gen_month_writes_an_operators_list_as_the_generator_plans_it() {
    use telesub_tools::monthly_generator::{MonthGenerator, Shares};
    let dir = tempfile::tempdir().unwrap();
    let (lines, enrolments) = (dir.path().join("vnpt.csv"), dir.path().join("enrolments.csv"));
    let (ok, out) = telesub(&[
        "gen",
        "month",
        "--households",
        "800",
        "--seed",
        "3",
        "--period",
        "2025-03",
        "--operator",
        "VIETTEL",
        "--over-cap",
        "50",
        "--out",
        lines.to_str().unwrap(),
        "--enrollments",
        enrolments.to_str().unwrap(),
    ])
    .await;
    assert!(ok, "{out}");
    let read: Vec<_> = telesub_client::MonthlyLineReader::new(std::fs::File::open(&lines).unwrap())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let start = time::Date::from_calendar_date(2025, time::Month::January, 1).unwrap();
    let shares = Shares { over_cap: 50, ..Shares::default() };
    let month = MonthGenerator::new(3, 800, vec!["VNPT".into(), "VIETTEL".into()], "2025-03", start, shares).unwrap();
    let planned: Vec<_> = month.lines("VIETTEL").collect();
    assert_eq!(read, planned);
    assert!(read.iter().any(|l| l.amount_claimed == 65_000), "over-cap claims are planted");
    let enrolled = std::fs::read_to_string(&enrolments).unwrap();
    assert_eq!(enrolled.lines().count(), 1 + month.enrollments().count());
    assert!(enrolled.starts_with("operator,household_code,subscriber_citizen_id,phone_number,start_date"));
    let (ok, _) =
        telesub(&["gen", "month", "--households", "10", "--seed", "3", "--period", "2025-13", "--operator", "VNPT"])
            .await;
    assert!(!ok, "a malformed period is refused");
}
