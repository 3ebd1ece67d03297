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

// `telesub-cli`, the binary itself, for scripts: `--output json|csv`, completions and the
// manual page, exit statuses per class of failure, and no progress bar off a terminal.

mod client {
    use std::path::Path;

    use serde_json::Value;
    use telesub_client::{CsvWriter, proto};
    use telesub_tests::TestApp;

    use crate::{
        households::{cid, header, household, push},
        monthly_cli::{Run, cli, cli_run},
    };

    /// Runs `telesub-cli` with `args` only: no hub's flags, none from the environment.
    async fn cli_alone(dir: &Path, args: &[&str]) -> Run {
        let output = tokio::process::Command::new(cli())
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

    /// What a run printed, as JSON.
    fn json(run: &Run) -> Value {
        run.assert_ok();
        serde_json::from_str(&run.out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", run.out))
    }

    /// Every key of `value`, at any depth.
    fn keys(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    out.push(key.clone());
                    keys(value, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
            _ => {}
        }
    }

    /// Protobuf's JSON names: lowerCamelCase, never a field's snake_case name.
    fn assert_camel_case(value: &Value) {
        let mut all = Vec::new();
        keys(value, &mut all);
        assert!(!all.is_empty());
        for key in all {
            assert!(!key.contains('_') && key.starts_with(|c: char| c.is_ascii_lowercase()), "{key} in {value:#}");
        }
    }

    /// HH-1 to HH-3, poor from 1 January 2025, pushed by DOLISA.
    async fn with_register(app: &TestApp) {
        let labour = app.client("DOLISA").await;
        let records = (1..=3).map(|n| household(&format!("HH-{n}"), "24611", n)).collect();
        push(&labour, header("review-2024", proto::BatchKind::Snapshot, "2024", "2025-01-01"), records).await.unwrap();
    }

    #[tokio::test]
    async fn read_commands_print_the_answer_in_protobufs_json_mapping() {
        cli(); // built before the hub starts
        let app = TestApp::spawn().await;
        with_register(&app).await;
        let work = tempfile::tempdir().unwrap();
        let here = work.path();

        let run = cli_run(&app, "DOLISA", here, &["households", "get", "HH-1", "--output", "json"]).await;
        let v = json(&run);
        assert_camel_case(&v);
        assert_eq!(v["householdCode"], "HH-1");
        assert_eq!(v["validFrom"], "2025-01-01");
        assert!(v.get("validTo").is_none(), "a default value is left out: {v:#}");
        assert!(v.get("removalReason").is_none(), "an enum's zero value is left out: {v:#}");
        assert_eq!(v["batchId"], "review-2024");
        assert_eq!(v["data"]["category"], "CATEGORY_POOR", "enums by name");
        assert_eq!(v["data"]["headName"], "Nguyễn Văn An");
        assert_eq!(v["data"]["communeCode"], "24611");
        assert_eq!(v["data"]["certificate"]["issuingUnitCode"], "24611");
        assert_eq!(v["data"]["flags"]["wantsDevice"], true);
        let head = &v["data"]["members"][0];
        assert_eq!(head["citizenId"], cid(1, 1980, false).as_str());
        assert_eq!(head["relationship"], "RELATIONSHIP_HEAD");
        assert_eq!(head["birthYear"], 1980, "an int32 is a number");
        let recorded = v["recordedAt"].as_str().expect("a timestamp is a string");
        assert!(recorded.len() >= 20 && recorded.ends_with('Z') && recorded.as_bytes()[10] == b'T', "{recorded}");

        let citizen = cid(1, 1985, true);
        let check = ["eligibility", "check", &citizen, "--as-of", "2025-02-01", "--output", "json"];
        let v = json(&cli_run(&app, "VNPT", here, &check).await);
        assert_camel_case(&v);
        assert_eq!(v["eligible"], true);
        assert_eq!(v["asOf"], "2025-02-01");
        assert_eq!(v["householdCode"], "HH-1");
        assert_eq!(v["category"], "CATEGORY_POOR");
        assert_eq!(v["headNameMasked"], "Nguyễn V. A.");
        assert_eq!(v["askedBy"], "VNPT");
        assert_eq!(v["policyVersion"], "1", "an int64 is a string");
        assert_eq!(v["query"]["citizenId"], citizen.as_str(), "a oneof's member by its own name");
        let entitlement = &v["entitlements"][0];
        assert_eq!(entitlement["service"], "SUPPORTED_SERVICE_MOBILE");
        assert_eq!(entitlement["monthlyAmount"], "60000");
        assert_eq!(entitlement["subscriptionsAllowed"], 1);
        assert!(v.get("reasons").is_none(), "an empty list is left out: {v:#}");
        let id = v["decisionId"].as_str().unwrap().to_owned();
        assert!(v["decidedAt"].as_str().unwrap().ends_with('Z'));
        // The decision read again is the same document.
        let again = json(&cli_run(&app, "VNPT", here, &["eligibility", "decision", &id, "--output", "json"]).await);
        assert_eq!(again, v);
        // Refused: the reasons by name.
        let nobody = cid(9, 1990, false);
        let v = json(&cli_run(&app, "VNPT", here, &["eligibility", "check", &nobody, "--output", "json"]).await);
        assert!(v.get("eligible").is_none(), "false is left out: {v:#}");
        assert!(v["reasons"][0]["code"].as_str().unwrap().starts_with("REASON_CODE_"), "{v:#}");

        // A list: its List…Response with every page, no token when nothing was cut.
        let labour = app.client("DOLISA").await;
        push(
            &labour,
            header("2025-02", proto::BatchKind::Delta, "2025-02", "2025-02-01"),
            vec![household("HH-4", "24611", 4)],
        )
        .await
        .unwrap();
        let v = json(&cli_run(&app, "DOLISA", here, &["batches", "list", "--output", "json"]).await);
        assert_camel_case(&v);
        let batches = v["batches"].as_array().unwrap();
        assert_eq!(batches.len(), 2, "{v:#}");
        assert!(v.get("nextPageToken").is_none(), "{v:#}");
        let first = batches.iter().find(|b| b["batchId"] == "review-2024").expect("the snapshot");
        assert_eq!(first["kind"], "BATCH_KIND_SNAPSHOT");
        assert_eq!((&first["records"], &first["added"]), (&Value::from("3"), &Value::from("3")));
        assert_eq!(first["pushedBy"], "DOLISA");
        assert!(first.get("unchanged").is_none(), "0 is left out");
        let cut = json(&cli_run(&app, "DOLISA", here, &["batches", "list", "--limit", "1", "--output", "json"]).await);
        assert_eq!(cut["batches"].as_array().unwrap().len(), 1);
        assert!(cut["nextPageToken"].as_str().is_some_and(|t| !t.is_empty()), "cut short: {cut:#}");

        // whoami, and a household's history as one HouseholdHistory.
        let me = json(&cli_run(&app, "VNPT", here, &["whoami", "--output", "json"]).await);
        assert_eq!(
            (&me["member"]["code"], &me["member"]["role"]),
            (&Value::from("VNPT"), &Value::from("ROLE_OPERATOR"))
        );
        let history =
            json(&cli_run(&app, "DOLISA", here, &["households", "history", "HH-1", "--output", "json"]).await);
        assert_eq!(history["householdCode"], "HH-1");
        assert_eq!(history["versions"].as_array().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn lists_print_as_csv_with_a_header_and_a_row_per_item() {
        cli();
        let app = TestApp::spawn().await;
        with_register(&app).await;
        let work = tempfile::tempdir().unwrap();
        let here = work.path();

        let run = cli_run(&app, "DOLISA", here, &["households", "history", "HH-2", "--output", "csv"]).await;
        run.assert_ok();
        assert!(run.out.starts_with('\u{feff}'), "a byte-order mark by default: {:?}", &run.out[..20]);
        let run = cli_run(&app, "DOICT", here, &["members", "list", "--output", "csv", "--no-bom"]).await;
        run.assert_ok();
        assert!(run.out.starts_with("code,display_name,role,"), "{}", run.out);
        assert!(run.out.contains("\r\n"), "CRLF line ends");
        let mut reader = csv::Reader::from_reader(run.out.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
        assert_eq!(header[..5], ["code", "display_name", "role", "unit_code", "status"]);
        let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>().unwrap();
        let members = app.client("DOICT").await.list_members(Default::default()).await.unwrap().members;
        assert_eq!(rows.len(), members.len(), "a row per member:\n{}", run.out);
        let column = |name: &str| header.iter().position(|h| h == name).unwrap();
        let vnpt = rows.iter().find(|r| &r[column("code")] == "VNPT").expect("VNPT's row");
        assert_eq!((&vnpt[column("role")], &vnpt[column("status")]), ("OPERATOR", "ACTIVE"));
        assert!(vnpt[column("created_at")].ends_with('Z'), "{:?}", vnpt);

        // With the mark, the csv crate reads the same after it.
        let run = cli_run(&app, "DOLISA", here, &["batches", "list", "--output", "csv"]).await;
        run.assert_ok();
        let text = run.out.strip_prefix('\u{feff}').expect("the mark");
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header = reader.headers().unwrap().clone();
        let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>().unwrap();
        assert_eq!(rows.len(), 1);
        let cell = |name: &str| rows[0][header.iter().position(|h| h == name).unwrap()].to_owned();
        assert_eq!(
            [cell("batch_id"), cell("kind"), cell("records"), cell("added"), cell("replayed")],
            ["review-2024", "SNAPSHOT", "3", "3", "false"]
        );

        // A single answer is one row.
        let run = cli_run(&app, "DOLISA", here, &["households", "get", "HH-3", "--output", "csv", "--no-bom"]).await;
        run.assert_ok();
        let mut reader = csv::Reader::from_reader(run.out.as_bytes());
        let header = reader.headers().unwrap().clone();
        let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>().unwrap();
        assert_eq!(rows.len(), 1, "{}", run.out);
        let cell = |name: &str| rows[0][header.iter().position(|h| h == name).unwrap()].to_owned();
        assert_eq!([cell("household_code"), cell("category"), cell("members")], ["HH-3", "POOR", "2"]);
        assert_eq!(cell("member_citizen_ids"), format!("{};{}", cid(3, 1980, false), cid(3, 1985, true)));

        // Write commands take no --output.
        let run =
            cli_run(&app, "DOICT", here, &["members", "suspend", "VNPT", "--reason", "r", "--output", "json"]).await;
        assert_eq!(run.code, Some(2), "{}", run.err);
    }

    #[tokio::test]
    async fn completions_and_manual_pages_come_from_the_command_line() {
        let work = tempfile::tempdir().unwrap();
        let here = work.path();
        for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
            let run = cli_alone(here, &["completions", shell]).await;
            run.assert_ok();
            for name in ["households", "reconciliation", "eligibility", "--output"] {
                assert!(run.out.contains(name), "{shell}: no {name}");
            }
        }
        let run = cli_alone(here, &["man"]).await;
        run.assert_ok();
        // roff: after the two lines that define the apostrophe's string, the title.
        let first = run.out.lines().find(|l| !l.starts_with(".ie ") && !l.starts_with(".el ")).unwrap();
        assert!(first.starts_with(".TH telesub-cli 1"), "{first}");
        assert!(run.out.contains(".SH SUBCOMMANDS") && run.out.contains("TELESUB_ENDPOINT"), "{}", run.out);
        assert!(run.out.contains(".SH \"EXIT STATUS\"\nExit status:\n  0  done"), "the exit statuses: {}", run.out);
        assert!(run.out.contains("permission denied"), "the exit statuses: {}", run.out);

        let run = cli_alone(here, &["man", "--out", "pages"]).await;
        run.assert_ok();
        for page in ["telesub-cli.1", "telesub-cli-households-get.1", "telesub-cli-audit-receipt-verify.1"] {
            let text = std::fs::read_to_string(here.join("pages").join(page)).unwrap();
            assert!(text.contains(".TH "), "{page}");
        }
        let get = std::fs::read_to_string(here.join("pages/telesub-cli-households-get.1")).unwrap();
        assert!(get.contains("\\-\\-output") && get.contains("Exit status"), "{get}");
    }

    #[tokio::test]
    async fn each_class_of_failure_has_its_exit_status() {
        cli();
        let app = TestApp::spawn().await;
        with_register(&app).await;
        let work = tempfile::tempdir().unwrap();
        let here = work.path();

        let run = cli_run(&app, "DOLISA", here, &["households", "get", "HH-404"]).await;
        assert_eq!(run.code, Some(4), "not found: {}", run.err);
        assert!(run.err.contains("not found"), "{}", run.err);
        let run = cli_run(&app, "VNPT", here, &["eligibility", "check", "12345"]).await;
        assert_eq!(run.code, Some(3), "invalid input: {}", run.err);
        let run = cli_run(&app, "VNPT", here, &["members", "list"]).await;
        assert_eq!(run.code, Some(5), "ICT's only: {}", run.err);
        assert!(run.err.contains("permission denied"), "{}", run.err);
        let run = cli_run(&app, "DOLISA", here, &["households", "get", "HH-1", "--output", "yaml"]).await;
        assert_eq!(run.code, Some(2), "a bad flag: {}", run.err);
        assert!(run.out.is_empty());

        // The same batch id for other content: a conflict, the file's push refused.
        let mut writer = CsvWriter::new(Vec::new()).unwrap();
        writer.write(&household("HH-9", "24611", 9)).unwrap();
        std::fs::write(here.join("other.csv"), writer.finish().unwrap()).unwrap();
        let push = [
            "households",
            "push",
            "--file",
            "other.csv",
            "--batch-id",
            "review-2024",
            "--kind",
            "snapshot",
            "--period",
            "2024",
            "--effective-date",
            "2025-01-01",
        ];
        let run = cli_run(&app, "DOLISA", here, &push).await;
        assert_eq!(run.code, Some(7), "conflict: {}", run.err);
        assert!(run.err.contains("different content"), "{}", run.err);
        // A malformed file is invalid input, and nothing is sent.
        std::fs::write(here.join("bad.csv"), "household_code\nHH-1\n").unwrap();
        let run = cli_run(
            &app,
            "DOLISA",
            here,
            &[
                "households",
                "push",
                "--file",
                "bad.csv",
                "--batch-id",
                "b2",
                "--kind",
                "delta",
                "--period",
                "2025-03",
                "--effective-date",
                "2025-03-01",
            ],
        )
        .await;
        assert_eq!(run.code, Some(3), "{}", run.err);

        // Nothing listens there: unavailable, try again later.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let tls = app.tls_dir.path().to_str().unwrap();
        let endpoint = format!("https://127.0.0.1:{port}");
        let run = cli_alone(here, &["--endpoint", &endpoint, "--tls-dir", tls, "--org", "VNPT", "whoami"]).await;
        assert_eq!(run.code, Some(6), "unreachable: {}", run.err);

        // A check that fails has a status of its own.
        cli_run(&app, "DOICT", here, &["audit", "verify"]).await.assert_ok();
        crate::audit::disable_guard(&app.db).await;
        app.db.execute("UPDATE audit_log SET detail = 'x' WHERE seq = 1").await.unwrap();
        let run = cli_run(&app, "DOICT", here, &["audit", "verify"]).await;
        assert_eq!(run.code, Some(8), "a broken chain: {}", run.err);
        assert!(run.err.contains("broken at record 1"), "{}", run.err);
    }

    /// Standard error here is a pipe, as in a script or a log: no progress bar, nothing
    /// but what the commands said before.
    #[tokio::test]
    async fn long_commands_draw_no_progress_off_a_terminal() {
        cli();
        let app = TestApp::spawn().await;
        let work = tempfile::tempdir().unwrap();
        let here = work.path();
        let mut writer = CsvWriter::new(Vec::new()).unwrap();
        for n in 1..=200 {
            writer.write(&household(&format!("HH-{n}"), "24611", n)).unwrap();
        }
        std::fs::write(here.join("households.csv"), writer.finish().unwrap()).unwrap();
        let push = [
            "households",
            "push",
            "--file",
            "households.csv",
            "--batch-id",
            "review-2024",
            "--kind",
            "snapshot",
            "--period",
            "2024",
            "--effective-date",
            "2025-01-01",
        ];
        let run = cli_run(&app, "DOLISA", here, &push).await;
        run.assert_ok();
        assert_eq!(run.field("added"), "200");
        assert!(run.err.is_empty(), "{:?}", run.err);
        let run = cli_run(&app, "DOICT", here, &["audit", "export", "-o", "audit.csv"]).await;
        run.assert_ok();
        assert!(run.out.starts_with("saved audit.csv: "), "{}", run.out);
        assert!(run.err.is_empty(), "{:?}", run.err);
    }
}
