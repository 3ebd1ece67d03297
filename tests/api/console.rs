//! The console as a browser reaches it: HTTPS requests to the hub's own port with a member's
//! client certificate (the folder's), read with hyper's HTTP/1.1 client. What a page shows is
//! what the domain says; who may see it is the authorization table's; every page asked for is
//! in the audit trail before it is answered.

use telesub_client::proto;
use telesub_tests::{
    TestApp,
    console::{Browser, Page, tls},
};

use crate::reconciliation::{claim, enroll, list_header, submit, with_register};

async fn get_as(app: &TestApp, org: Option<&str>, path: &str) -> Result<Page, String> {
    Browser::connect(app, org).await?.get(path).await
}

async fn get(app: &TestApp, org: &str, path: &str) -> Page {
    get_as(app, Some(org), path).await.unwrap_or_else(|e| panic!("{org} GET {path}: {e}"))
}

async fn post(app: &TestApp, org: &str, path: &str, form: &str, origin: Option<&str>) -> Page {
    let mut browser = Browser::connect(app, Some(org)).await.unwrap();
    browser.post(path, form, origin).await.unwrap_or_else(|e| panic!("{org} POST {path}: {e}"))
}

/// March's lists: VIETTEL's of one line, VNPT's of two (one OK, one for a household removed in
/// February).
async fn march(app: &TestApp) {
    with_register(app).await;
    let (vnpt, viettel) = (app.client("VNPT").await, app.client("VIETTEL").await);
    let e1 = vnpt.enroll(enroll("e1", "HH-1", 1, "0912000001", "2025-02-01")).await.unwrap().enrollment_id;
    let e4 = viettel.enroll(enroll("v4", "HH-4", 4, "0981000004", "2025-02-01")).await.unwrap().enrollment_id;
    let theirs =
        submit(&viettel, list_header("vt-2025-03", "2025-03", false), vec![claim("HH-4", 4, "0981000004", &e4)]);
    assert_eq!(theirs.await.unwrap().status(), proto::ReconciliationStatus::Reconciled);
    let lines = vec![claim("HH-1", 1, "0912000001", &e1), claim("HH-3", 3, "0912000003", "")];
    let ours = submit(&vnpt, list_header("vn-2025-03", "2025-03", false), lines).await.unwrap();
    assert_eq!(ours.status(), proto::ReconciliationStatus::Reconciled);
}

#[tokio::test]
async fn ict_reads_a_months_lists_by_operator_with_their_figures_and_the_page_is_audited() {
    let app = TestApp::spawn().await;
    march(&app).await;
    let page = get(&app, "DOICT", "/console/reconciliation?period=2025-03").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.headers["content-type"].to_str().unwrap().starts_with("text/html"), "{:?}", page.headers);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && !csp.contains("script-src"), "{csp}");
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    let body = &page.body;
    assert!(body.contains("Đối soát tháng 03/2025"), "{body}");
    for shown in ["VNPT", "vn-2025-03", "VIETTEL", "vt-2025-03", "Đã đối soát, chờ xác nhận"] {
        assert!(body.contains(shown), "{shown} is not on the page: {body}");
    }
    // Three claims of 60.000 ₫ in all; two of them confirmable (VNPT's second line is for a
    // household removed in February).
    assert!(body.contains("180.000 ₫") && body.contains("120.000 ₫"), "{body}");
    // HH-3, removed in February, is counted under its code; codes without lines show 0.
    let row = |code: &str| {
        body.split(&format!("<code>{code}</code>")).nth(1).map(|rest| rest.chars().take(120).collect::<String>())
    };
    assert!(row("ELIGIBILITY_ENDED").unwrap().contains("<td class=\"n\">1</td>"), "{body}");
    assert!(row("OVER_CAP").unwrap().contains("<td class=\"n\">0</td>"), "{body}");

    let request_id = page.headers["x-request-id"].to_str().unwrap().to_owned();
    let record = app.audit_record(&request_id).await;
    assert_eq!(record.entry.method, "GET /console/reconciliation?period=2025-03");
    assert_eq!((record.entry.org_code.as_deref(), record.entry.outcome.as_str()), (Some("DOICT"), "OK"));
}

#[tokio::test]
async fn an_operator_sees_its_own_lists_only_and_other_roles_are_refused() {
    let app = TestApp::spawn().await;
    march(&app).await;
    let page = get(&app, "VNPT", "/console/reconciliation?period=2025-03").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("vn-2025-03"), "{}", page.body);
    assert!(!page.body.contains("vt-2025-03") && !page.body.contains("VIETTEL"), "{}", page.body);

    // The labour department may not read monthly lists, over gRPC or here.
    let refused = get(&app, "DOLISA", "/console/reconciliation?period=2025-03").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("ListReconciliations"), "{}", refused.body);
    assert!(!refused.body.contains("vn-2025-03"), "{}", refused.body);
    let record = app.audit_record(refused.headers["x-request-id"].to_str().unwrap()).await;
    assert_eq!(
        (record.entry.org_code.as_deref(), record.entry.outcome.as_str()),
        (Some("DOLISA"), "PERMISSION_DENIED")
    );
    // Its home page does not offer the page it may not open.
    let home = get(&app, "DOLISA", "/console/").await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(!home.body.contains("/console/reconciliation"), "{}", home.body);
}

#[tokio::test]
async fn a_bad_month_is_named_on_the_page_and_unknown_pages_are_not_found() {
    let app = TestApp::spawn().await;
    let page = get(&app, "DOICT", "/console/reconciliation?period=2025-13").await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains("<code>period</code>") && page.body.contains("2025-13"), "{}", page.body);
    let missing = get(&app, "DOICT", "/console/nothing-here").await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    // What a caller typed comes back as text, never as markup.
    let typed = get(&app, "DOICT", "/console/reconciliation?period=%3Cscript%3Ealert(1)%3C/script%3E").await;
    assert_eq!(typed.status, 400, "{}", typed.body);
    assert!(!typed.body.contains("<script>") && typed.body.contains("&#60;script&#62;"), "{}", typed.body);
}

#[tokio::test]
async fn a_browser_without_a_members_certificate_gets_no_page() {
    let app = TestApp::spawn().await;
    let err = get_as(&app, None, "/console/").await.expect_err("a page without a certificate");
    assert!(!err.contains("status"), "{err}");
    let member = get(&app, "DOICT", "/console/").await;
    assert_eq!(member.status, 200, "{}", member.body);
    assert!(member.body.contains("Sở Thông tin và Truyền thông"), "{}", member.body);
    // gRPC on the same port is served as before.
    app.client("VNPT").await.who_am_i().await.unwrap();
}

#[tokio::test]
async fn a_browser_connection_that_sends_no_request_is_closed_after_the_handshake_timeout() {
    use tokio::io::AsyncReadExt;
    let app = TestApp::spawn_with(|s| s.tls.handshake_timeout_ms = 800).await;
    let tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = tls(&app, Some("DOICT")).connect(name, tcp).await.expect("the handshake completes");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    match tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("the hub sent {n} bytes to a client that never asked"),
        Err(_) => panic!("the connection is still open after 5 s"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "closed only after {:?}", started.elapsed());
    // One that asks is served.
    assert_eq!(get(&app, "DOICT", "/console/").await.status, 200);
}

/// The scenarios of `scripts/console/browser.py` in Debian's Chromium, driven by Playwright,
/// against this test's hub. `scripts/test.sh` installs both and runs this test (its browser
/// step) with `TELESUB_BROWSER_PYTHON` naming the Python that has Playwright.
#[tokio::test]
#[ignore = "needs Chromium and Playwright: scripts/test.sh runs it in its browser step"]
async fn in_a_real_browser_members_see_what_their_certificates_allow() {
    let python = std::env::var("TELESUB_BROWSER_PYTHON")
        .expect("TELESUB_BROWSER_PYTHON names a Python with Playwright (scripts/test.sh sets it)");
    let app = TestApp::spawn().await;
    march(&app).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned();
    let shots = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("target"))
        .join("console-screenshots");
    let run = |app: &TestApp, scenario: &[&str]| {
        let dir = app.dir();
        tokio::process::Command::new(&python)
            .arg(root.join("scripts/console/browser.py"))
            .args(["--port", &app.addr.port().to_string()])
            .arg("--tls-dir")
            .arg(dir.root())
            .arg("--shots")
            .arg(&shots)
            .args(scenario)
            .env("NODE_EXTRA_CA_CERTS", dir.ca_cert())
            .output()
    };
    let officer = app.add_person("DOICT:lan:Nguyễn Thị Lan");
    // A household whose address holds a script, on the register.
    let mut scripted = crate::households::household("HH-8", "24611", 8);
    if let Some(proto::household_record::Change::Upsert(d)) = &mut scripted.change {
        d.address = "Thôn 3 <script>alert(1)</script>".into();
    }
    let header = crate::households::header("scripted", proto::BatchKind::Delta, "2025-04", "2025-04-02");
    crate::households::push(&app.client("DOLISA").await, header, vec![scripted]).await.unwrap();
    let files = tempfile::tempdir().unwrap();
    let good = crate::households::household("HH-9", "24611", 9);
    let mut bad = good.clone();
    if let Some(proto::household_record::Change::Upsert(d)) = &mut bad.change {
        d.members[0].citizen_id = "067080000".into();
        d.head_name = "<script>alert(1)</script>".into();
    }
    let (bad_csv, good_csv) = (files.path().join("bad.csv"), files.path().join("good.csv"));
    std::fs::write(&bad_csv, household_csv(&[bad])).unwrap();
    std::fs::write(&good_csv, household_csv(&[good])).unwrap();
    let csv_args = ["--bad-csv", bad_csv.to_str().unwrap(), "--good-csv", good_csv.to_str().unwrap()];
    let mut scenario =
        vec!["reconciliation", "--period", "2025-03", "--officer", &officer, "--officer-name", "Nguyễn Thị Lan"];
    scenario.extend(["--script-household", "HH-8"]);
    scenario.extend(csv_args);
    let output = run(&app, &scenario).await.expect("run the browser");
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{said}");
    assert!(shots.join("reconciliation-doict.png").exists(), "{said}");
    // What the officer confirmed in the browser, as the hub keeps it.
    let r = app.client("DOICT").await.get_reconciliation("VNPT", "vn-2025-03").await.unwrap();
    assert_eq!(r.status(), proto::ReconciliationStatus::Confirmed, "{said}");
    let confirmation = r.confirmation.unwrap();
    assert_eq!(
        (confirmation.confirmed_by.as_str(), confirmation.confirmed_by_person.as_str(), confirmation.scope.as_str()),
        ("DOICT", "Nguyễn Thị Lan", "OK_LINES")
    );

    // A generated month, on a hub of its own: the officer filters a code, opens a line and
    // confirms the OK lines.
    let generated = TestApp::spawn().await;
    let (_, list) =
        telesub_tests::bench::reconciled_month(&generated, 7, 3_000, "2025-03", time::macros::date!(2025 - 01 - 01))
            .await;
    let figures = list.figures.clone().unwrap();
    let code =
        figures.by_code.iter().filter(|c| c.lines > 0).max_by_key(|c| c.lines).expect("a code with lines").code();
    let code = code.as_str_name().trim_start_matches("DISCREPANCY_CODE_").to_owned();
    let officer = generated.add_person("DOICT:lan:Nguyễn Thị Lan");
    let output = run(&generated, &["generated", "--period", "2025-03", "--officer", &officer, "--code", &code])
        .await
        .expect("run the browser");
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{said}");
    let r = generated.client("DOICT").await.get_reconciliation("VNPT", "bench").await.unwrap();
    let confirmation = r.confirmation.unwrap();
    assert_eq!(
        (confirmation.confirmed_by_person.as_str(), confirmation.scope.as_str(), confirmation.lines),
        ("Nguyễn Thị Lan", "OK_LINES", figures.lines_ok),
        "{said}"
    );

    // Devices, on a hub of their own: the committee approves, a locality hands over.
    const D: &str = "101/QĐ-BTTTT";
    let devices = TestApp::spawn().await;
    crate::devices::with_register(&devices).await;
    let ict = devices.client("DOICT").await;
    ict.record_allocation_decision(crate::devices::decision(D)).await.unwrap();
    ict.propose_recipients(D, "2025-03-01").await.unwrap();
    ict.submit_for_approval(D).await.unwrap();
    let output = run(&devices, &["devices", "--decision", D]).await.expect("run the browser");
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{said}");
    let a = ict.get_allocation(D).await.unwrap();
    assert_eq!((a.status(), a.approval_number.as_str()), (proto::AllocationStatus::Approved, "25/QĐ-UBND"), "{said}");
}

/// The token of the forms on `page`.
fn token(page: &Page) -> String {
    let at = page.body.find("name=\"csrf\" value=\"").expect("a form with a token") + 19;
    page.body[at..].split('"').next().unwrap().to_owned()
}

fn origin(app: &TestApp) -> String {
    format!("https://localhost:{}", app.addr.port())
}

const VNPT_MARCH: &str = "/console/reconciliation/VNPT/vn%2D2025%2D03";

/// Certificates that name a person (a DoICT officer, a committee member, a district officer):
/// the console greets the person by name; the audit record of each page and call, and each
/// decision (a confirmation, an approval, a hand-over), keep the name beside the organisation;
/// the trail still verifies, and an organisation's own certificate names no one.
#[tokio::test]
async fn a_persons_certificate_puts_the_name_beside_the_organisation_in_the_trail_and_each_decision() {
    let app = TestApp::spawn().await;
    march(&app).await;
    let lan = app.add_person("DOICT:lan:Nguyễn Thị Lan");
    let list = get(&app, &lan, VNPT_MARCH).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("Nguyễn Thị Lan · "), "the page does not greet her: {}", list.body);
    let seen = app.audit_record(list.headers["x-request-id"].to_str().unwrap()).await;
    assert_eq!((seen.entry.org_code.as_deref(), seen.entry.person.as_deref()), (Some("DOICT"), Some("Nguyễn Thị Lan")));
    let confirmed = post(
        &app,
        &lan,
        &format!("{VNPT_MARCH}/confirm"),
        &format!("csrf={}&scope=OK_LINES&note=", token(&list)),
        Some(&origin(&app)),
    )
    .await;
    assert_eq!(confirmed.status, 303, "{}", confirmed.body);
    let ict = app.client("DOICT").await;
    let confirmation = ict.get_reconciliation("VNPT", "vn-2025-03").await.unwrap().confirmation.unwrap();
    assert_eq!(
        (confirmation.confirmed_by.as_str(), confirmation.confirmed_by_person.as_str()),
        ("DOICT", "Nguyễn Thị Lan")
    );
    let after = get(&app, "DOICT", VNPT_MARCH).await;
    assert!(after.body.contains("Nguyễn Thị Lan · DOICT, "), "the list does not say who confirmed: {}", after.body);

    // The same through the SDK: the committee's approval and a district's hand-over.
    const D: &str = "102/QĐ-BTTTT";
    let devices = TestApp::spawn().await;
    crate::devices::with_register(&devices).await;
    let ict = devices.client("DOICT").await;
    ict.record_allocation_decision(crate::devices::decision(D)).await.unwrap();
    ict.propose_recipients(D, "2025-03-01").await.unwrap();
    let submitted = ict.submit_for_approval(D).await.unwrap();
    let (hoa, binh) = (devices.add_person("UBND:hoa:Lê Thị Hoa"), devices.add_person("GIANGHIA:binh:Phạm Văn Bình"));
    let approved = devices
        .client(&hoa)
        .await
        .approve_allocation(proto::ApproveRequest {
            decision_number: D.into(),
            approval_number: "26/QĐ-UBND".into(),
            list_digest: submitted.list_digest.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((approved.decided_by.as_str(), approved.decided_by_person.as_str()), ("UBND", "Lê Thị Hoa"));
    let today = telesub_server::domain::household::format_date(telesub_server::domain::clock::Clock::system().today());
    let handover = devices
        .client(&binh)
        .await
        .record_handover(proto::RecordHandoverRequest {
            decision_number: D.into(),
            household_code: "M1".into(),
            handed_over_on: today,
            received_by: "Nguyễn Văn An".into(),
            kind: Some(proto::record_handover_request::Kind::Device(proto::DeviceHandover {
                device_type: proto::DeviceType::Smartphone.into(),
                serial_number: String::new(),
                imei: crate::devices::imei("35000000000001"),
            })),
        })
        .await
        .unwrap();
    assert_eq!((handover.recorded_by.as_str(), handover.recorded_by_person.as_str()), ("GIANGHIA", "Phạm Văn Bình"));
    let page = get(&devices, "DOICT", &format!("/console/devices/{}", D.replace('/', "%2F"))).await;
    assert!(page.body.contains("Lê Thị Hoa · UBND, "), "the decision page does not say who approved: {}", page.body);

    // Every record of those calls names the person; the organisations' own, no one.
    let records = devices.client("DOICT").await.query_audit(proto::QueryAuditRequest::default()).await.unwrap().records;
    let named = |method: &str| {
        records.iter().find(|r| r.method.ends_with(method)).map(|r| (r.caller.clone(), r.person.clone())).unwrap()
    };
    assert_eq!(named("/Approve"), ("UBND".to_owned(), "Lê Thị Hoa".to_owned()));
    assert_eq!(named("/RecordHandover"), ("GIANGHIA".to_owned(), "Phạm Văn Bình".to_owned()));
    assert_eq!(named("/SubmitForApproval"), ("DOICT".to_owned(), String::new()));
    // Each record's hash is the SHA-256 of its bytes as the contract documents them.
    for r in &records {
        let bytes = crate::audit_tree::record_bytes(r);
        assert_eq!(telesub_client::audit::sha256_hex(&bytes), r.hash, "record {}", r.seq);
    }
    for app in [&app, &devices] {
        let verified = app.client("DOICT").await.verify_audit().await.unwrap();
        assert!(verified.intact, "{verified:?}");
    }
}

/// A line's page: what was claimed, what the reconciliation found, the days that matter and,
/// for those who read the register, the household's states on them (noted as a look-up). An
/// operator reads its own lines without the register; another operator's are refused.
#[tokio::test]
async fn a_line_opens_with_the_households_states_on_the_days_that_matter() {
    let app = TestApp::spawn().await;
    march(&app).await;
    let list = get(&app, "DOICT", VNPT_MARCH).await;
    assert!(list.body.contains(&format!("href=\"{VNPT_MARCH}/lines/2\"")), "{}", list.body);
    let line = get(&app, "DOICT", &format!("{VNPT_MARCH}/lines/2")).await;
    assert_eq!(line.status, 200, "{}", line.body);
    for shown in [
        "Dòng 2 của danh sách vn-2025-03, tháng 03/2025",
        "0912000003",
        "ELIGIBILITY_ENDED",
        "Đã hết diện hỗ trợ",
        "01/03/2025: ngày đầu tháng",
        "31/03/2025: ngày cuối tháng",
        "Quá trình của hộ HH-3",
        "Ra khỏi danh sách: Chết",
    ] {
        assert!(line.body.contains(shown), "{shown:?} is not on the line's page: {}", line.body);
    }
    // What the reconciliation found, in the page's language.
    assert!(line.body.contains("Hộ HH-3 ") && !line.body.contains("household HH-3"), "{}", line.body);
    let request_id = line.headers["x-request-id"].to_str().unwrap().to_owned();
    let who = app
        .client("DOICT")
        .await
        .query_audit(proto::QueryAuditRequest { household_code: "HH-3".into(), ..Default::default() })
        .await
        .unwrap();
    assert!(who.records.iter().any(|r| r.request_id == request_id), "the line's look-up of HH-3 is not noted");
    let ok = get(&app, "DOICT", &format!("{VNPT_MARCH}/lines/1")).await;
    assert!(ok.body.contains("Dòng hợp lệ") && ok.body.contains("Quá trình của hộ HH-1"), "{}", ok.body);
    // Its operator reads the line, not the register; another operator reads neither.
    let own = get(&app, "VNPT", &format!("{VNPT_MARCH}/lines/2")).await;
    assert_eq!(own.status, 200, "{}", own.body);
    assert!(own.body.contains("ELIGIBILITY_ENDED") && !own.body.contains("Quá trình của hộ"), "{}", own.body);
    let other = get(&app, "VIETTEL", &format!("{VNPT_MARCH}/lines/2")).await;
    assert!(
        matches!(other.status, 403 | 404) && !other.body.contains("0912000003"),
        "{}: {}",
        other.status,
        other.body
    );
    // A line the list does not have, and one that is not a number.
    assert_eq!(get(&app, "DOICT", &format!("{VNPT_MARCH}/lines/99")).await.status, 404);
    assert_eq!(get(&app, "DOICT", &format!("{VNPT_MARCH}/lines/two")).await.status, 400);
}

/// A list's lines as files from its page: CSV and XLSX, every line or (once confirmed) the
/// confirmed ones, named for the list, each download in the audit trail; another operator's
/// list and an unknown format are refused.
#[tokio::test]
async fn a_lists_lines_download_as_csv_and_xlsx() {
    let app = TestApp::spawn().await;
    march(&app).await;
    let list = get(&app, "DOICT", VNPT_MARCH).await;
    assert!(list.body.contains(&format!("href=\"{VNPT_MARCH}/file?format=xlsx\"")), "{}", list.body);
    let csv = get(&app, "DOICT", &format!("{VNPT_MARCH}/file?format=csv")).await;
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(csv.headers["content-disposition"], "attachment; filename=\"2025-03-VNPT-vn-2025-03.csv\"");
    // For a double-click in Excel: the byte-order mark first.
    let rows: Vec<&str> = csv.body.strip_prefix('\u{feff}').expect("a byte-order mark").lines().collect();
    assert!(rows[0].starts_with("line_number,"), "{}", csv.body);
    assert_eq!(rows.len(), 3, "a header and two lines: {}", csv.body);
    assert!(rows[2].contains("HH-3") && rows[2].contains("ELIGIBILITY_ENDED"), "{}", csv.body);
    let record = app.audit_record(csv.headers["x-request-id"].to_str().unwrap()).await;
    assert_eq!(
        (record.entry.method.as_str(), record.entry.outcome.as_str()),
        (&*format!("GET {VNPT_MARCH}/file?format=csv"), "OK")
    );
    let xlsx = get(&app, "DOICT", &format!("{VNPT_MARCH}/file?format=xlsx")).await;
    assert_eq!(xlsx.status, 200);
    let xlsx = xlsx.bytes;
    assert!(xlsx.starts_with(b"PK\x03\x04"), "not a workbook: {:?}", &xlsx[..xlsx.len().min(16)]);
    // Confirmed, its confirmed lines: the OK one.
    let confirmed = post(
        &app,
        "DOICT",
        &format!("{VNPT_MARCH}/confirm"),
        &format!("csrf={}&scope=OK_LINES&note=", token(&list)),
        Some(&origin(&app)),
    )
    .await;
    assert_eq!(confirmed.status, 303, "{}", confirmed.body);
    let after = get(&app, "DOICT", VNPT_MARCH).await;
    assert!(after.body.contains("lines=confirmed"), "{}", after.body);
    let ok = get(&app, "DOICT", &format!("{VNPT_MARCH}/file?format=csv&lines=confirmed")).await;
    let rows: Vec<&str> = ok.body.lines().collect();
    assert_eq!(rows.len(), 2, "a header and the OK line: {}", ok.body);
    assert!(rows[1].contains("HH-1"), "{}", ok.body);
    // Its operator downloads it; another operator does not; a format the hub does not write.
    assert_eq!(get(&app, "VNPT", &format!("{VNPT_MARCH}/file?format=csv")).await.status, 200);
    let other = get(&app, "VIETTEL", &format!("{VNPT_MARCH}/file?format=csv")).await;
    assert!(matches!(other.status, 403 | 404) && !other.body.contains("0912000003"), "{}", other.body);
    let bad = get(&app, "DOICT", &format!("{VNPT_MARCH}/file?format=pdf")).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("<code>format</code>"), "{}", bad.body);
}

#[tokio::test]
async fn ict_opens_a_list_filters_a_code_and_confirms_its_ok_lines() {
    let app = TestApp::spawn().await;
    march(&app).await;
    // From the month's overview to the list.
    let month = get(&app, "DOICT", "/console/reconciliation?period=2025-03").await;
    assert!(month.body.contains(&format!("href=\"{VNPT_MARCH}\"")), "{}", month.body);
    let list = get(&app, "DOICT", VNPT_MARCH).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("HH-3") && list.body.contains("ELIGIBILITY_ENDED"), "{}", list.body);
    assert!(!list.body.contains("0912000001"), "an OK line is listed: {}", list.body);
    // Filtered by a code no line has: none; by the household: its line, and the look-up is
    // in the audit trail.
    let none = get(&app, "DOICT", &format!("{VNPT_MARCH}?code=OVER_CAP")).await;
    assert!(none.body.contains("Không có dòng nào có sai lệch") && !none.body.contains("HH-3"), "{}", none.body);
    let hh3 = get(&app, "DOICT", &format!("{VNPT_MARCH}?household=HH-3")).await;
    assert!(hh3.body.contains("0912000003"), "{}", hh3.body);
    // A commune box holding a district's code is refused by the box's own name.
    let district = get(&app, "DOICT", &format!("{VNPT_MARCH}?commune=660")).await;
    assert_eq!(district.status, 400, "{}", district.body);
    assert!(district.body.contains("<code>commune</code>") && district.body.contains("660"), "{}", district.body);
    let request_id = hh3.headers["x-request-id"].to_str().unwrap().to_owned();
    app.audit_record(&request_id).await;
    let ict = app.client("DOICT").await;
    let who = ict
        .query_audit(proto::QueryAuditRequest { household_code: "HH-3".into(), ..Default::default() })
        .await
        .unwrap();
    assert!(
        who.records.iter().any(|r| r.request_id == request_id && r.method.ends_with("?household=HH-3")),
        "the household looked up on the page is not found by who looked it up: {:?}",
        who.records
    );

    let confirmed = post(
        &app,
        "DOICT",
        &format!("{VNPT_MARCH}/confirm"),
        &format!("csrf={}&scope=OK_LINES&note=", token(&list)),
        Some(&origin(&app)),
    )
    .await;
    assert_eq!(confirmed.status, 303, "{}", confirmed.body);
    assert_eq!(confirmed.headers["location"], VNPT_MARCH);
    let record = app.audit_record(confirmed.headers["x-request-id"].to_str().unwrap()).await;
    assert_eq!(record.entry.method, format!("POST {VNPT_MARCH}/confirm"));
    assert_eq!(record.entry.outcome, "OK");
    // The hub's state, through the SDK: confirmed by DoICT, the OK line only.
    let r = app.client("DOICT").await.get_reconciliation("VNPT", "vn-2025-03").await.unwrap();
    assert_eq!(r.status(), proto::ReconciliationStatus::Confirmed);
    let confirmation = r.confirmation.unwrap();
    assert_eq!(
        (confirmation.confirmed_by.as_str(), confirmation.scope.as_str(), confirmation.lines),
        ("DOICT", "OK_LINES", 1)
    );
    let after = get(&app, "DOICT", VNPT_MARCH).await;
    assert!(after.body.contains("Đã xác nhận") && !after.body.contains("name=\"csrf\""), "{}", after.body);
}

#[tokio::test]
async fn a_form_from_elsewhere_without_its_token_or_from_an_operator_changes_nothing() {
    let app = TestApp::spawn().await;
    march(&app).await;
    let list = get(&app, "DOICT", VNPT_MARCH).await;
    let good = token(&list);
    let path = format!("{VNPT_MARCH}/reject");
    let cases = [
        ("DOICT", format!("csrf={good}&note=x"), Some("https://evil.example".to_owned()), 403),
        ("DOICT", format!("csrf={good}&note=x"), None, 403),
        ("DOICT", format!("csrf={}&note=x", "A".repeat(43)), Some(origin(&app)), 403),
        ("DOICT", format!("csrf={good}&note="), Some(origin(&app)), 400),
        // Operators may not decide lists, whatever their form says.
        ("VNPT", format!("csrf={good}&note=x"), Some(origin(&app)), 403),
    ];
    for (org, form, from, status) in cases {
        let page = post(&app, org, &path, &form, from.as_deref()).await;
        assert_eq!(page.status, status, "{org} {form} {from:?}: {}", page.body);
    }
    let r = app.client("DOICT").await.get_reconciliation("VNPT", "vn-2025-03").await.unwrap();
    assert_eq!(r.status(), proto::ReconciliationStatus::Reconciled, "a refused form changed the list");
    // The empty note is named on the page.
    let page = post(&app, "DOICT", &path, &format!("csrf={good}&note="), Some(&origin(&app))).await;
    assert!(page.body.contains("<code>note</code>"), "{}", page.body);
    let rejected =
        post(&app, "DOICT", &path, &format!("csrf={good}&note=thi%E1%BA%BFu+d%C3%B2ng"), Some(&origin(&app))).await;
    assert_eq!(rejected.status, 303, "{}", rejected.body);
    let r = app.client("DOICT").await.get_reconciliation("VNPT", "vn-2025-03").await.unwrap();
    assert_eq!((r.status(), r.rejection_note.as_str()), (proto::ReconciliationStatus::Rejected, "thiếu dòng"));
}

#[tokio::test]
async fn the_register_shows_a_households_timeline_to_those_who_may_read_it_and_notes_the_look_up() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let page = get(&app, "DOLISA", "/console/households?by=code&q=HH-3").await;
    assert_eq!(page.status, 200, "{}", page.body);
    for shown in
        ["Hộ HH-3: quá trình", "Từ 01/01/2025 đến 01/02/2025", "Ra khỏi danh sách: Chết", "Hộ nghèo", "Nguyễn Văn An"]
    {
        assert!(page.body.contains(shown), "{shown} is not on the page: {}", page.body);
    }
    let who = app
        .client("DOICT")
        .await
        .query_audit(proto::QueryAuditRequest { household_code: "HH-3".into(), ..Default::default() })
        .await
        .unwrap();
    assert!(
        who.records.iter().any(|r| r.request_id == page.request_id() && r.caller == "DOLISA"),
        "the look-up on the page is not found by who looked HH-3 up: {:?}",
        who.records
    );

    // By a member's citizen ID: the household, linked to its timeline.
    let spouse = crate::households::cid(1, 1985, true);
    let found = get(&app, "DOICT", &format!("/console/households?by=citizen&q={spouse}")).await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert!(found.body.contains("href=\"/console/households?by=code&amp;q=HH-1\""), "{}", found.body);

    // A locality reads its own unit (district 660), and outside it is told what it would be
    // told were the household not there.
    let inside = get(&app, "GIANGHIA", "/console/households?q=HH-1").await;
    assert_eq!(inside.status, 200, "{}", inside.body);
    let outside = get(&app, "GIANGHIA", "/console/households?q=HH-5").await;
    let missing = get(&app, "GIANGHIA", "/console/households?q=HH-404").await;
    assert_eq!((outside.status, missing.status), (404, 404), "{}", outside.body);
    assert!(!outside.body.contains("24616"), "{}", outside.body);
    // Operators do not read the register.
    assert_eq!(get(&app, "VNPT", "/console/households?q=HH-1").await.status, 403);
    // A bad code is named.
    let bad = get(&app, "DOLISA", "/console/households?q=x%20y").await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("<code>household_code</code>"), "{}", bad.body);
}

#[tokio::test]
async fn markup_in_what_the_register_holds_is_shown_as_text() {
    let app = TestApp::spawn().await;
    let labour = app.client("DOLISA").await;
    let mut record = crate::households::household("HH-1", "24611", 1);
    if let Some(proto::household_record::Change::Upsert(d)) = &mut record.change {
        // Names refuse markup's characters; an address is free text.
        d.address = "<script>alert(1)</script> Thôn 3".into();
    }
    crate::households::push(
        &labour,
        crate::households::header("b1", proto::BatchKind::Delta, "2025-01", "2025-01-01"),
        vec![record],
    )
    .await
    .unwrap();
    let page = get(&app, "DOLISA", "/console/households?q=HH-1").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains("<script>"), "{}", page.body);
    assert!(page.body.contains("&#60;script&#62;alert(1)&#60;/script&#62; Thôn 3"), "{}", page.body);
}

#[tokio::test]
async fn ict_sees_who_looked_a_household_up_and_checks_the_trail() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let looked = get(&app, "DOLISA", "/console/households?q=HH-3").await;
    assert_eq!(looked.status, 200, "{}", looked.body);
    app.audit_record(&looked.request_id()).await;
    let page = get(&app, "DOICT", "/console/audit?household=HH-3").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(&looked.request_id()), "the look-up is not listed: {}", page.body);
    assert!(page.body.contains("GET /console/households?q=HH-3") && page.body.contains("DOLISA"), "{}", page.body);
    // A box holding what it cannot is named as the page names it.
    let bad = get(&app, "DOICT", "/console/audit?household=h%C3%B4%CC%A3&citizen=12&member=dolisa&page=x").await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    for name in ["household", "citizen", "member", "page"] {
        assert!(bad.body.contains(&format!("<code>{name}</code>")), "{name}: {}", bad.body);
    }
    // Only ICT reads the trail.
    assert_eq!(get(&app, "DOLISA", "/console/audit?household=HH-3").await.status, 403);
    let check = get(&app, "DOICT", "/console/audit/check").await;
    assert_eq!(check.status, 200, "{}", check.body);
    assert!(check.body.contains("Nhật ký toàn vẹn."), "{}", check.body);
    // An insider changes a record: the page says where.
    crate::audit::disable_guard(&app.db).await;
    app.db.execute("UPDATE audit_log SET outcome = 'PERMISSION_DENIED' WHERE seq = 3").await.unwrap();
    let broken = get(&app, "DOICT", "/console/audit/check").await;
    assert_eq!(broken.status, 200, "{}", broken.body);
    assert!(broken.body.contains("KHÔNG toàn vẹn") && broken.body.contains("3"), "{}", broken.body);
    assert!(!broken.body.contains("Nhật ký toàn vẹn."), "{}", broken.body);
}

/// The statistics page answers from figures kept for a few minutes and says when they were
/// counted: a change after that shows once they are counted again (in the background, the
/// kept ones answered meanwhile), while the RPC always counts. Who may read which unit is
/// checked on every page, kept figures or not.
#[tokio::test]
async fn the_statistics_page_answers_from_figures_kept_a_few_minutes_and_says_when_they_were_counted() {
    use telesub_server::domain::clock::Clock;
    let at = time::macros::datetime!(2025-04-10 03:00:00 UTC);
    let clock = Clock::fixed(at);
    let app = TestApp::spawn_on(clock.clone()).await;
    march(&app).await;
    let total = |page: &Page| {
        let row = page.body.split("<tr class=\"total\"><th>Cộng</th>").nth(1).expect("a total row");
        row.split("</tr>").next().unwrap().to_owned()
    };
    const PAGE: &str = "/console/statistics?period=2025-03";
    let first = get(&app, "DOICT", PAGE).await;
    assert!(first.body.contains("tính lúc 10/04/2025 10:00"), "{}", first.body);
    // VNPT enrols HH-2 from March: the RPC counts it at once, the page keeps its figures.
    let vnpt = app.client("VNPT").await;
    vnpt.enroll(crate::reconciliation::enroll("e2", "HH-2", 2, "0912000002", "2025-03-01")).await.unwrap();
    let ict = app.client("DOICT").await;
    let live = ict
        .get_programme_statistics(proto::GetProgrammeStatisticsRequest {
            period: "2025-03".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let enrolled = |s: &proto::ProgrammeStatistics| s.by_category.iter().map(|c| c.enrolled).max().unwrap_or(0);
    let kept = get(&app, "DOICT", PAGE).await;
    assert_eq!(total(&kept), total(&first), "the kept figures changed before their time");
    assert!(kept.body.contains("tính lúc 10/04/2025 10:00"), "{}", kept.body);
    // Kept figures do not widen what a locality reads.
    let other = get(&app, "GIANGHIA", "/console/statistics?period=2025-03&unit=661").await;
    assert_eq!(other.status, 403, "{}", other.body);
    // Six minutes on: the kept figures once more while they are counted again, then the new.
    clock.set_to(at + time::Duration::minutes(6));
    let stale = get(&app, "DOICT", PAGE).await;
    assert_eq!(total(&stale), total(&first));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let fresh = loop {
        let page = get(&app, "DOICT", PAGE).await;
        if page.body.contains("tính lúc 10/04/2025 10:06") {
            break page;
        }
        assert!(std::time::Instant::now() < deadline, "the figures were not counted again: {}", page.body);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_ne!(total(&fresh), total(&first), "the new enrolment is not counted");
    assert!(
        total(&fresh).contains(&format!(">{}</td>", enrolled(&live))),
        "the page's total {} does not hold the RPC's {} enrolled",
        total(&fresh),
        enrolled(&live)
    );
}

#[tokio::test]
async fn the_months_figures_are_shown_with_a_chart_to_the_programmes_readers() {
    let app = TestApp::spawn().await;
    march(&app).await;
    let page = get(&app, "DOICT", "/console/statistics?period=2025-03").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Số liệu tháng 03/2025: Toàn tỉnh"), "{}", page.body);
    // March: HH-1, HH-2, HH-5, HH-6, HH-8 on the list (HH-3 and HH-4 removed, HH-7 from April);
    // VNPT enrolled HH-1, VIETTEL HH-4.
    let total = page.body.split("<tr class=\"total\"><th>Cộng</th>").nth(1).expect("a total row");
    assert!(total.starts_with("<td class=\"n\">5</td>"), "{total}");
    assert!(page.body.contains("<svg class=\"chart\"") && page.body.contains("<rect"), "{}", page.body);
    assert!(page.body.contains("VNPT") && page.body.contains("VIETTEL"), "{}", page.body);
    // A locality reads its own district; another unit is refused; operators read no statistics.
    let own = get(&app, "GIANGHIA", "/console/statistics?period=2025-03").await;
    assert_eq!(own.status, 200, "{}", own.body);
    assert!(own.body.contains("Thành phố Gia Nghĩa"), "{}", own.body);
    let other = get(&app, "GIANGHIA", "/console/statistics?period=2025-03&unit=661").await;
    assert_eq!(other.status, 403, "{}", other.body);
    assert_eq!(get(&app, "VNPT", "/console/statistics?period=2025-03").await.status, 403);
    let bad = get(&app, "DOICT", "/console/statistics?period=2025-3").await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("<code>period</code>"), "{}", bad.body);
    // The public table as published: March's counts under 10 shown as "< 10".
    assert!(page.body.contains("Bảng công khai") && page.body.contains("&lt; 10"), "{}", page.body);
    // The month's figures as files: the workbook, and the public table.
    let xlsx = get(&app, "DOICT", "/console/statistics/file?period=2025-03&unit=&format=xlsx").await;
    assert_eq!(xlsx.status, 200, "{}", xlsx.body);
    assert!(xlsx.bytes.starts_with(b"PK\x03\x04"), "not a workbook");
    let csv = get(&app, "DOICT", "/console/statistics/file?period=2025-03&unit=&format=csv").await;
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert!(csv.body.starts_with("\u{feff}view,name,households"), "{}", csv.body);
    assert!(csv.body.contains("< 10"), "{}", csv.body);
    let theirs = get(&app, "GIANGHIA", "/console/statistics/file?period=2025-03&unit=661&format=csv").await;
    assert_eq!(theirs.status, 403, "{}", theirs.body);
    assert_eq!(get(&app, "VNPT", "/console/statistics/file?period=2025-03&format=csv").await.status, 403);
}

#[tokio::test]
async fn the_batches_are_listed_with_their_receipts_for_labour_and_ict() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let page = get(&app, "DOLISA", "/console/batches").await;
    assert_eq!(page.status, 200, "{}", page.body);
    // Newest first: April's delta, March's, February's, then the review.
    let at = |id: &str| page.body.find(&format!("<td>{id}</td>")).unwrap_or_else(|| panic!("{id}: {}", page.body));
    assert!(at("2025-04") < at("2025-03") && at("2025-02") < at("review-2024"), "{}", page.body);
    assert!(page.body.contains("Rà soát (toàn bộ danh sách)"), "{}", page.body);
    assert_eq!(get(&app, "VNPT", "/console/batches").await.status, 403);
    assert_eq!(get(&app, "DOICT", "/console/batches").await.status, 200);
}

#[tokio::test]
async fn device_decisions_are_shown_with_their_progress_by_unit() {
    let app = TestApp::spawn().await;
    crate::devices::with_register(&app).await;
    let ict = app.client("DOICT").await;
    ict.record_allocation_decision(crate::devices::decision("101/QĐ-BTTTT")).await.unwrap();
    ict.propose_recipients("101/QĐ-BTTTT", "2025-03-01").await.unwrap();
    let list = get(&app, "UBND", "/console/devices").await;
    assert_eq!(list.status, 200, "{}", list.body);
    let link = "/console/devices/101%2FQ%C4%90%2DBTTTT";
    assert!(
        list.body.contains(&format!("href=\"{link}\"")) && list.body.contains("Đã lập danh sách đề xuất"),
        "{}",
        list.body
    );
    let one = get(&app, "DOET", link).await;
    assert_eq!(one.status, 200, "{}", one.body);
    assert!(one.body.contains("Quyết định 101/QĐ-BTTTT ngày 01/03/2025"), "{}", one.body);
    // 6 places in district 660, 2 in 661, none handed over yet.
    assert!(one.body.contains("Thành phố Gia Nghĩa (660)</td><td class=\"n\">6</td>"), "{}", one.body);
    assert_eq!(get(&app, "VNPT", "/console/devices").await.status, 403);
    assert_eq!(get(&app, "DOICT", "/console/devices/404%2FQ%C4%90").await.status, 404);
}

/// DoICT draws the list up from the rules, amends it with reasons and submits it from the
/// decision's page; the list's page shows its order with the reasons for it; once approved,
/// the published list downloads. Bad forms name their field; other roles get no such forms.
#[tokio::test]
async fn ict_proposes_amends_and_submits_a_device_list_from_its_page() {
    const D: &str = "101/QĐ-BTTTT";
    let link = "/console/devices/101%2FQ%C4%90%2DBTTTT";
    let app = TestApp::spawn().await;
    crate::devices::with_register(&app).await;
    let ict = app.client("DOICT").await;
    ict.record_allocation_decision(crate::devices::decision(D)).await.unwrap();
    let recorded = get(&app, "DOICT", link).await;
    assert!(recorded.body.contains("action=\"/console/devices/101%2FQ%C4%90%2DBTTTT/propose\""), "{}", recorded.body);
    assert!(!recorded.body.contains("/amend\""), "a list not drawn up offers amendments: {}", recorded.body);
    assert!(!get(&app, "UBND", link).await.body.contains("/propose\""), "the committee is offered ICT's forms");
    let at = |path: &str| format!("{link}/{path}");
    let form = |page: &Page, rest: &str| format!("csrf={}&{rest}", token(page));
    let proposed = post(&app, "DOICT", &at("propose"), &form(&recorded, "as_of=2025-03-01"), Some(&origin(&app))).await;
    assert_eq!(proposed.status, 303, "{}", proposed.body);
    assert_eq!(ict.get_allocation(D).await.unwrap().status(), proto::AllocationStatus::Proposed);

    // The list in its order, with the reasons for it.
    let places = get(&app, "DOICT", &at("places")).await;
    assert_eq!(places.status, 200, "{}", places.body);
    let first = places.body.split("<tbody>").nth(1).unwrap().split("</tr>").next().unwrap().to_owned();
    assert!(first.contains(">1</td><td>M1</td>") && first.contains("Nguyễn V. A."), "{first}");
    let own = get(&app, "GIANGHIA", &at("places")).await;
    assert!(own.body.contains("M1") && !own.body.contains("Q1"), "a locality sees another unit's places: {}", own.body);

    // Amendments: a reason is required; each is kept and shown.
    let page = get(&app, "DOICT", link).await;
    let bad =
        post(&app, "DOICT", &at("amend"), &form(&page, "action=REMOVE&household_code=M1&reason="), Some(&origin(&app)))
            .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("<code>reason</code>"), "{}", bad.body);
    for rest in [
        "action=REMOVE&household_code=M1&device_type=&reason=chuy%E1%BB%83n+%C4%91i",
        "action=ADD&household_code=M1&device_type=SMARTPHONE&reason=quay+v%E1%BB%81",
    ] {
        let done = post(&app, "DOICT", &at("amend"), &form(&page, rest), Some(&origin(&app))).await;
        assert_eq!(done.status, 303, "{rest}: {}", done.body);
    }
    let page = get(&app, "DOICT", link).await;
    assert!(
        page.body.contains("Các lần điều chỉnh") && page.body.contains("chuyển đi") && page.body.contains("quay về"),
        "{}",
        page.body
    );
    let submitted = post(&app, "DOICT", &at("submit"), &form(&page, ""), Some(&origin(&app))).await;
    assert_eq!(submitted.status, 303, "{}", submitted.body);
    let a = ict.get_allocation(D).await.unwrap();
    assert_eq!((a.status(), a.amendments.len()), (proto::AllocationStatus::Submitted, 2));
    assert!(!get(&app, "DOICT", link).await.body.contains("/amend\""), "a submitted list offers amendments");
    // A forged step, and one by a role that may not take it.
    let forged = post(&app, "DOICT", &at("propose"), "csrf=x&as_of=", Some(&origin(&app))).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert_eq!(post(&app, "UBND", &at("submit"), "csrf=x", Some(&origin(&app))).await.status, 403);

    // Approved, it is published: as CSV, and a commune's notice board.
    let committee = app.client("UBND").await;
    committee
        .approve_allocation(proto::ApproveRequest {
            decision_number: D.into(),
            approval_number: "25/QĐ-UBND".into(),
            list_digest: a.list_digest.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let page = get(&app, "DOLISA", link).await;
    assert!(page.body.contains("/published?format=csv"), "{}", page.body);
    let csv = get(&app, "DOLISA", &at("published?format=csv")).await;
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert!(csv.headers["content-disposition"].to_str().unwrap().ends_with(".csv\""), "{:?}", csv.headers);
    assert!(
        csv.body.contains("Nguyễn V. A.") && !csv.body.contains("M1"),
        "the public list names no household code: {}",
        csv.body
    );
    let board = get(&app, "DOLISA", &at("published?format=html&commune=24611")).await;
    assert_eq!(board.status, 200, "{}", board.body);
    assert!(board.headers["content-disposition"].to_str().unwrap().starts_with("attachment"), "{:?}", board.headers);
    let no_commune = get(&app, "DOLISA", &at("published?format=html")).await;
    assert_eq!(no_commune.status, 400, "{}", no_commune.body);
    assert!(no_commune.body.contains("<code>commune</code>"), "{}", no_commune.body);
}

/// The value of the form field `name` on `page`.
fn field(page: &Page, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = page.body.find(&marker).unwrap_or_else(|| panic!("no {name} on the page: {}", page.body)) + marker.len();
    page.body[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_committee_approves_a_list_and_a_locality_hands_over_in_its_unit_only() {
    const D: &str = "101/QĐ-BTTTT";
    let link = "/console/devices/101%2FQ%C4%90%2DBTTTT";
    let app = TestApp::spawn().await;
    crate::devices::with_register(&app).await;
    let ict = app.client("DOICT").await;
    ict.record_allocation_decision(crate::devices::decision(D)).await.unwrap();
    ict.propose_recipients(D, "2025-03-01").await.unwrap();
    let submitted = ict.submit_for_approval(D).await.unwrap();
    // Only the People's Committee is offered the decision.
    assert!(!get(&app, "DOICT", link).await.body.contains("name=\"approval_number\""));
    let page = get(&app, "UBND", link).await;
    assert_eq!(field(&page, "list_digest"), submitted.list_digest);
    let form = format!(
        "csrf={}&list_digest={}&approval_number=25%2FQ%C4%90-UBND&approved_on=&note=",
        token(&page),
        submitted.list_digest
    );
    let approved = post(&app, "UBND", &format!("{link}/approve"), &form, Some(&origin(&app))).await;
    assert_eq!(approved.status, 303, "{}", approved.body);
    let a = ict.get_allocation(D).await.unwrap();
    assert_eq!((a.status(), a.approval_number.as_str()), (proto::AllocationStatus::Approved, "25/QĐ-UBND"));

    // Gia Nghĩa (district 660) hands a phone over to M1; Q1 lies in district 661.
    let page = get(&app, "GIANGHIA", link).await;
    let handover = |code: &str, imei: &str| {
        format!(
            "csrf={}&household_code={code}&handed_over_on={}&received_by=Nguy%E1%BB%85n+V%C4%83n+An&device_type=SMARTPHONE&serial_number=&imei={imei}",
            token(&page),
            field(&page, "handed_over_on")
        )
    };
    let m1 = post(
        &app,
        "GIANGHIA",
        &format!("{link}/handover"),
        &handover("M1", &crate::devices::imei("35000000000001")),
        Some(&origin(&app)),
    )
    .await;
    assert_eq!(m1.status, 303, "{}", m1.body);
    let q1 = post(
        &app,
        "GIANGHIA",
        &format!("{link}/handover"),
        &handover("Q1", &crate::devices::imei("35000000000002")),
        Some(&origin(&app)),
    )
    .await;
    assert!(matches!(q1.status, 403 | 404), "{}: {}", q1.status, q1.body);
    let progress = get(&app, "DOICT", link).await;
    assert!(
        progress.body.contains("Thành phố Gia Nghĩa (660)</td><td class=\"n\">6</td><td class=\"n\">1</td>"),
        "{}",
        progress.body
    );
    assert!(progress.body.contains("(661)</td><td class=\"n\">2</td><td class=\"n\">0</td>"), "{}", progress.body);
    // An operator may do neither.
    let refused = post(&app, "VNPT", &format!("{link}/handover"), &handover("M1", "1"), Some(&origin(&app))).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
}

/// Two officers decide the same list at the same moment from two browsers, one confirming,
/// one rejecting: one decision stands, the other is refused as already decided, and both
/// attempts are in the trail with their outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_officers_deciding_one_list_at_once_leave_one_decision() {
    let app = TestApp::spawn().await;
    march(&app).await;
    let lan = app.add_person("DOICT:lan:Nguyễn Thị Lan");
    let (page, her_page) = (get(&app, "DOICT", VNPT_MARCH).await, get(&app, &lan, VNPT_MARCH).await);
    let (mut one, mut two) =
        (Browser::connect(&app, Some("DOICT")).await.unwrap(), Browser::connect(&app, Some(&lan)).await.unwrap());
    let (confirm, reject) = (format!("{VNPT_MARCH}/confirm"), format!("{VNPT_MARCH}/reject"));
    let (a, b) = (
        format!("csrf={}&scope=WHOLE_LIST&note=", token(&page)),
        format!("csrf={}&note=s%E1%BB%91+li%E1%BB%87u+sai", token(&her_page)),
    );
    let from = origin(&app);
    let (first, second) = tokio::join!(one.post(&confirm, &a, Some(&from)), two.post(&reject, &b, Some(&from)));
    let (first, second) = (first.unwrap(), second.unwrap());
    let statuses = [first.status, second.status];
    assert!(statuses.contains(&303) && statuses.contains(&409), "{statuses:?}: {} / {}", first.body, second.body);
    let r = app.client("DOICT").await.get_reconciliation("VNPT", "vn-2025-03").await.unwrap();
    let stood = if first.status == 303 {
        proto::ReconciliationStatus::Confirmed
    } else {
        proto::ReconciliationStatus::Rejected
    };
    assert_eq!(r.status(), stood);
    let outcomes = [app.audit_record(&first.request_id()).await, app.audit_record(&second.request_id()).await]
        .map(|r| r.entry.outcome);
    let expected = if first.status == 303 { ["OK", "FAILED_PRECONDITION"] } else { ["FAILED_PRECONDITION", "OK"] };
    assert_eq!(outcomes, expected);
}

/// A form shown by one hub is taken by another hub of the province behind the same address
/// (their form keys come from the audit signing key they share), as after a restart.
#[tokio::test]
async fn a_form_shown_by_one_hub_is_taken_by_another_of_the_province() {
    let app = TestApp::spawn().await;
    march(&app).await;
    let page = get(&app, "DOICT", VNPT_MARCH).await;
    let second = app.spawn_beside().await;
    let mut there = Browser::connect_to(second.addr, &app.dir(), Some("DOICT")).await.unwrap();
    let form = format!("csrf={}&scope=OK_LINES&note=", token(&page));
    let from = there.origin();
    let confirmed = there.post(&format!("{VNPT_MARCH}/confirm"), &form, Some(&from)).await.unwrap();
    assert_eq!(confirmed.status, 303, "{}", confirmed.body);
    let r = app.client("DOICT").await.get_reconciliation("VNPT", "vn-2025-03").await.unwrap();
    assert_eq!(r.status(), proto::ReconciliationStatus::Confirmed);
}

/// A query of 10 MB, and a page address of 10 MB: refused before any page runs (the HTTP
/// layer's limit on a request's head), and the hub serves the next browser as before.
#[tokio::test]
async fn a_ten_megabyte_query_is_refused_and_the_hub_serves_on() {
    let app = TestApp::spawn().await;
    march(&app).await;
    let before = app.audit().await.len();
    for path in [
        format!("/console/reconciliation?period={}", "9".repeat(10 << 20)),
        format!("/console/{}", "a".repeat(10 << 20)),
    ] {
        // Written as bytes: HTTP libraries refuse to send such an address.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut stream = tls(&app, Some("DOICT")).connect(name, tcp).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n");
        // The hub may close the connection before it has read it all.
        let _ = stream.write_all(request.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
        let head = String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned();
        assert!(!head.starts_with("HTTP/1.1 2"), "a 10 MB request was answered: {head}");
    }
    let page = get(&app, "DOICT", "/console/reconciliation?period=2025-03").await;
    assert_eq!(page.status, 200, "{}", page.body);
    // What never reached a page is not a member's act: no record for it.
    let records = app.audit().await;
    assert!(records[before..].iter().all(|r| r.entry.method.len() <= 600), "a 10 MB method was recorded");
}

#[tokio::test]
async fn forms_that_cannot_be_read_are_refused_and_recorded_as_the_callers_fault() {
    let app = TestApp::spawn().await;
    march(&app).await;
    let list = get(&app, "DOICT", VNPT_MARCH).await;
    let path = format!("{VNPT_MARCH}/reject");
    // Over the form limit: refused before any page runs, nothing changed.
    let huge = format!("csrf={}&note={}", token(&list), "x".repeat(100_000));
    let refused = post(&app, "DOICT", &path, &huge, Some(&origin(&app))).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    let record = app.audit_record(&refused.request_id()).await;
    assert_eq!(record.entry.outcome, "INVALID_ARGUMENT");
    // Not a form at all (a body that is not UTF-8 form encoding).
    let mut browser = Browser::connect(&app, Some("DOICT")).await.unwrap();
    let garbage = browser.post(&path, "csrf=%ZZ&&&=\u{0}", Some(&origin(&app))).await.unwrap();
    assert!(garbage.status == 400 || garbage.status == 403 || garbage.status == 422, "{}", garbage.status);
    let record = app.audit_record(&garbage.request_id()).await;
    assert!(["INVALID_ARGUMENT", "PERMISSION_DENIED"].contains(&record.entry.outcome.as_str()), "{record:?}");
    let r = app.client("DOICT").await.get_reconciliation("VNPT", "vn-2025-03").await.unwrap();
    assert_eq!(r.status(), proto::ReconciliationStatus::Reconciled);
}

#[tokio::test]
async fn ict_registers_and_suspends_members_by_the_registrys_rules() {
    let app = TestApp::spawn().await;
    let page = get(&app, "DOICT", "/console/members").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<code>VIETTEL</code>") && page.body.contains("Đang hoạt động"), "{}", page.body);
    let t = token(&page);
    let o = origin(&app);
    let registered = post(
        &app,
        "DOICT",
        "/console/members",
        &format!("csrf={t}&code=MOBIFONE&display_name=MobiFone&role=OPERATOR&unit_code="),
        Some(&o),
    )
    .await;
    assert_eq!(registered.status, 303, "{}", registered.body);
    let ict = app.client("DOICT").await;
    let listed = ict.list_members(proto::ListMembersRequest::default()).await.unwrap();
    assert!(listed.members.iter().any(|m| m.code == "MOBIFONE"), "{listed:?}");
    // A locality needs its unit; the registry names the field.
    let bad = post(
        &app,
        "DOICT",
        "/console/members",
        &format!("csrf={t}&code=DAKMIL&display_name=Dak+Mil&role=LOCALITY&unit_code="),
        Some(&o),
    )
    .await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("<code>unit_code</code>"), "{}", bad.body);
    // VIETTEL suspended: its next call is refused.
    let viettel = app.client("VIETTEL").await;
    viettel.who_am_i().await.unwrap();
    let suspended = post(
        &app,
        "DOICT",
        "/console/members/VIETTEL/suspend",
        &format!("csrf={t}&reason=h%E1%BA%BFt+h%E1%BB%A3p+%C4%91%E1%BB%93ng"),
        Some(&o),
    )
    .await;
    assert_eq!(suspended.status, 303, "{}", suspended.body);
    let err = viettel.who_am_i().await.expect_err("a suspended member is still served");
    assert_eq!(err.code(), Some(telesub_client::Code::PermissionDenied), "{err:?}");
    // The last active ICT member cannot lock the hub out.
    let last = post(&app, "DOICT", "/console/members/DOICT/suspend", &format!("csrf={t}&reason=x"), Some(&o)).await;
    assert!(matches!(last.status, 400 | 409), "{}: {}", last.status, last.body);
    ict.who_am_i().await.unwrap();
    assert_eq!(get(&app, "DOLISA", "/console/members").await.status, 403);
}

/// A household list as the labour department's staff export it (`docs/CSV.md`).
fn household_csv(records: &[proto::HouseholdRecord]) -> Vec<u8> {
    let mut writer = telesub_client::CsvWriter::new(Vec::new()).unwrap();
    for r in records {
        writer.write(r).unwrap();
    }
    writer.finish().unwrap()
}

#[tokio::test]
async fn a_clerk_uploads_a_household_list_sees_every_bad_field_named_then_the_receipt() {
    let app = TestApp::spawn().await;
    let form = get(&app, "DOLISA", "/console/batches/new").await;
    assert_eq!(form.status, 200, "{}", form.body);
    let t = token(&form);
    let o = origin(&app);
    let fields = |id: &'static str| -> Vec<(&'static str, String)> {
        vec![
            ("csrf", t.clone()),
            ("batch_id", id.to_owned()),
            ("kind", "DELTA".to_owned()),
            ("review_period", "2025-01".to_owned()),
            ("effective_date", "2025-01-01".to_owned()),
            ("note", String::new()),
        ]
    };
    let send = |org: &'static str, id: &'static str, csv: Vec<u8>| {
        let app = &app;
        let o = o.clone();
        let fields = fields(id);
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let mut browser = Browser::connect(app, Some(org)).await.unwrap();
            browser.post_multipart("/console/batches", &fields, ("file", &csv), Some(&o)).await.unwrap()
        }
    };
    let good = crate::households::household("HH-1", "24611", 1);
    let mut bad = crate::households::household("HH-2", "24611", 2);
    if let Some(proto::household_record::Change::Upsert(d)) = &mut bad.change {
        d.members[0].citizen_id = "067080000".into();
    }
    // A bad citizen ID: named, nothing stored.
    let refused = send("DOLISA", "b1", household_csv(&[good.clone(), bad])).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("HH-2") && refused.body.contains("citizen_id"), "{}", refused.body);
    let labour = app.client("DOLISA").await;
    assert!(labour.list_batches(proto::ListBatchesRequest::default()).await.unwrap().batches.is_empty());
    // A file not in the format: its line named.
    let garbled = send("DOLISA", "b1", b"household_code,oops\r\nHH-1,x\r\n".to_vec()).await;
    assert_eq!(garbled.status, 400, "{}", garbled.body);
    assert!(garbled.body.contains("<code>line 1"), "{}", garbled.body);
    // The good list: its receipt.
    let receipt = send("DOLISA", "b1", household_csv(&[good])).await;
    assert_eq!(receipt.status, 200, "{}", receipt.body);
    assert!(receipt.body.contains("Biên nhận đợt b1") && receipt.body.contains("Đã áp dụng."), "{}", receipt.body);
    let batches = labour.list_batches(proto::ListBatchesRequest::default()).await.unwrap().batches;
    assert_eq!((batches.len(), batches[0].added), (1, 1), "{batches:?}");
    // Operators may not push the register.
    assert_eq!(send("VNPT", "b2", household_csv(&[])).await.status, 403);
}

#[tokio::test]
async fn inspections_and_their_findings_are_read_by_those_they_concern() {
    let app = TestApp::spawn().await;
    let ict = app.client("DOICT").await;
    let in_661 = ict.create_inspection(crate::inspections::inspection(&["661"])).await.unwrap();
    let in_660 = ict.create_inspection(crate::inspections::inspection(&["660"])).await.unwrap();
    ict.record_finding(crate::inspections::finding(in_660.id, "VNPT")).await.unwrap();
    let list = get(&app, "UBND", "/console/inspections").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains(&format!("/console/inspections/{}", in_661.id)), "{}", list.body);
    let one = get(&app, "DOLISA", &format!("/console/inspections/{}", in_660.id)).await;
    assert_eq!(one.status, 200, "{}", one.body);
    for shown in ["Lê Văn Tâm", "Thu hồi kinh phí đã hỗ trợ", "Cao", "30/05/2025", "Chưa xử lý"] {
        assert!(one.body.contains(shown), "{shown}: {}", one.body);
    }
    // Gia Nghĩa (660) reads what concerns its unit only.
    let own = get(&app, "GIANGHIA", "/console/inspections").await;
    assert!(own.body.contains(&format!("/console/inspections/{}\"", in_660.id)), "{}", own.body);
    assert!(!own.body.contains(&format!("/console/inspections/{}\"", in_661.id)), "{}", own.body);
    assert!(matches!(get(&app, "GIANGHIA", &format!("/console/inspections/{}", in_661.id)).await.status, 403 | 404));
    assert_eq!(get(&app, "VNPT", "/console/inspections").await.status, 403);
    assert_eq!(get(&app, "DOICT", "/console/inspections/x").await.status, 400);
}

/// DoICT opens an inspection, records a finding, notes its progress and closes the inspection
/// from the console; each bad form names its field; what the forms did is what the SDK reads;
/// a reader is offered no forms and may not post them.
#[tokio::test]
async fn ict_opens_an_inspection_records_findings_and_closes_it_from_the_console() {
    let app = TestApp::spawn().await;
    let list = get(&app, "DOICT", "/console/inspections").await;
    assert!(list.body.contains("action=\"/console/inspections\""), "{}", list.body);
    assert!(!get(&app, "UBND", "/console/inspections").await.body.contains("name=\"csrf\""));
    let open = |team: &str, title: &str| {
        format!(
            "csrf={}&title={title}&basis=AUTHORITY_REQUEST&requested_by=UBND&subject_units=660&subject_operators=VNPT\
             &team={team}&starts_on=2025-04-01&ends_on=2025-04-15&note=",
            token(&list)
        )
    };
    let team = "L%C3%AA+V%C4%83n+T%C3%A2m%3B+DOICT%3B+tr%C6%B0%E1%BB%9Fng+%C4%91o%C3%A0n%0APh%E1%BA%A1m+Th%E1%BB%8B+H%E1%BA%A1nh%3B+DOLISA";
    for (form, field) in [(open("Ch%E1%BB%89+t%C3%AAn", "Ki%E1%BB%83m+tra"), "team"), (open(team, ""), "title")] {
        let bad = post(&app, "DOICT", "/console/inspections", &form, Some(&origin(&app))).await;
        assert_eq!(bad.status, 400, "{field}: {}", bad.body);
        assert!(bad.body.contains(&format!("<code>{field}</code>")), "{field}: {}", bad.body);
    }
    let opened =
        post(&app, "DOICT", "/console/inspections", &open(team, "Ki%E1%BB%83m+tra+2025"), Some(&origin(&app))).await;
    assert_eq!(opened.status, 303, "{}", opened.body);
    let here = opened.headers["location"].to_str().unwrap().to_owned();
    let id: i64 = here.rsplit('/').next().unwrap().parse().unwrap();
    let page = get(&app, "DOICT", &here).await;
    assert!(page.body.contains("Lê Văn Tâm") && page.body.contains("<option value=\"VNPT\">"), "{}", page.body);

    let finding = |description: &str| {
        format!(
            "csrf={}&severity=HIGH&subject=VNPT&description={description}&evidence_reference=BB+05\
             &required_action=Thu+h%E1%BB%93i&due_on=2025-05-30",
            token(&page)
        )
    };
    let bad = post(&app, "DOICT", &format!("{here}/findings"), &finding(""), Some(&origin(&app))).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("<code>description</code>"), "{}", bad.body);
    let recorded =
        post(&app, "DOICT", &format!("{here}/findings"), &finding("Hai+thu%C3%AA+bao"), Some(&origin(&app))).await;
    assert_eq!(recorded.status, 303, "{}", recorded.body);
    // A reader may not post the forms.
    let refused = post(&app, "UBND", &format!("{here}/findings"), &finding("x"), Some(&origin(&app))).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let progress = format!("csrf={}&status=RESOLVED&note=%C4%90%C3%A3+thu+h%E1%BB%93i", token(&page));
    let noted = post(&app, "DOICT", &format!("{here}/findings/1"), &progress, Some(&origin(&app))).await;
    assert_eq!(noted.status, 303, "{}", noted.body);
    let closed = post(
        &app,
        "DOICT",
        &format!("{here}/close"),
        &format!("csrf={}&conclusion=%C4%90%C3%BAng+quy+%C4%91%E1%BB%8Bnh", token(&page)),
        Some(&origin(&app)),
    )
    .await;
    assert_eq!(closed.status, 303, "{}", closed.body);
    let page = get(&app, "DOICT", &here).await;
    for shown in ["Hai thuê bao", "Đã khắc phục", "Đã thu hồi", "Đúng quy định", "Đã kết thúc"] {
        assert!(page.body.contains(shown), "{shown}: {}", page.body);
    }
    assert!(!page.body.contains("name=\"csrf\""), "a closed inspection offers forms: {}", page.body);
    let i = app.client("DOICT").await.get_inspection(id).await.unwrap();
    assert_eq!((i.findings.len(), i.conclusion.as_str()), (1, "Đúng quy định"));
}

/// A person's report: for a citizen ID, the household states that name them, the subsidised
/// lines in their name and every look-up of the ID (who, when, which call, outcome), as a page
/// and as a CSV file; making it is itself recorded as a look-up. DoICT for anyone, a locality
/// for its residents.
#[tokio::test]
async fn a_persons_report_shows_what_the_hub_holds_and_who_looked_them_up() {
    let app = TestApp::spawn().await;
    march(&app).await;
    // HH-1's head: VNPT enrolled a line in their name (march), and checks their eligibility.
    let citizen = crate::households::cid(1, 1980, false);
    let key = proto::check_eligibility_request::Key::CitizenId(citizen.clone());
    app.client("VNPT").await.check_eligibility(key, "2025-03-15").await.unwrap();
    let page = get(&app, "DOICT", &format!("/console/subject?citizen={citizen}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for shown in [
        "HH-1",
        "Nguyễn Văn An",
        "Chủ hộ",
        "0912000001",
        "VNPT",
        "/telesub.v1.Eligibility/CheckEligibility",
        "/telesub.v1.Enrollments/Enroll",
    ] {
        assert!(page.body.contains(shown), "{shown} is not in the report: {}", page.body);
    }
    // The report itself is a look-up of the person: the next report lists it.
    let request_id = page.headers["x-request-id"].to_str().unwrap().to_owned();
    let file = get(&app, "DOICT", &format!("/console/subject/file?citizen={citizen}")).await;
    assert_eq!(file.status, 200, "{}", file.body);
    let csv = file.body.strip_prefix('\u{feff}').expect("a byte-order mark");
    assert!(csv.starts_with("section,household,from,to,detail,by,outcome,request_id\r\n"), "{csv}");
    assert!(csv.contains("household_state,HH-1,") && csv.contains("subsidised_line,HH-1,"), "{csv}");
    assert!(csv.contains(&request_id), "the first report's look-up is not in the second: {csv}");
    // A locality makes it for a person of a household in its unit (Gia Nghĩa, 660, holds
    // 24611), and only with those households; not for a person elsewhere (24616 lies in 661).
    let local = get(&app, "GIANGHIA", &format!("/console/subject?citizen={citizen}")).await;
    assert_eq!(local.status, 200, "{}", local.body);
    assert!(local.body.contains("HH-1") && local.body.contains("0912000001"), "{}", local.body);
    let labour = app.client("DOLISA").await;
    let elsewhere = vec![crate::households::household("HH-661", "24616", 661)];
    crate::households::push(
        &labour,
        crate::households::header("b-661", proto::BatchKind::Delta, "2025-03", "2025-03-01"),
        elsewhere,
    )
    .await
    .unwrap();
    let outsider = crate::households::cid(661, 1980, false);
    let refused = get(&app, "GIANGHIA", &format!("/console/subject?citizen={outsider}")).await;
    assert!(matches!(refused.status, 403 | 404) && !refused.body.contains("HH-661"), "{}", refused.body);
    assert_eq!(get(&app, "DOICT", &format!("/console/subject?citizen={outsider}")).await.status, 200);
    // The home page offers it to those who may make it.
    assert!(get(&app, "GIANGHIA", "/console/").await.body.contains("href=\"/console/subject\""));
    assert!(!get(&app, "DOLISA", "/console/").await.body.contains("href=\"/console/subject\""));
    // Nobody else makes it; a bad ID is named.
    assert_eq!(get(&app, "VNPT", &format!("/console/subject?citizen={citizen}")).await.status, 403);
    assert_eq!(get(&app, "DOLISA", &format!("/console/subject?citizen={citizen}")).await.status, 403);
    let bad = get(&app, "DOICT", "/console/subject?citizen=12345").await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("<code>citizen_id</code>"), "{}", bad.body);
}

/// The console is Vietnamese first, with an English switch in every page's header: the switch
/// keeps the browser's choice in a cookie and brings it back to its page (a console page, never
/// another site); numbers, amounts and dates read the same in both languages.
#[tokio::test]
async fn the_language_switch_keeps_english_in_a_cookie_and_brings_the_browser_back() {
    let app = TestApp::spawn().await;
    march(&app).await;
    const MARCH: &str = "/console/reconciliation?period=2025-03";
    let dated = |body: &str| {
        body.as_bytes()
            .windows(10)
            .any(|w| w.iter().enumerate().all(|(i, b)| if i == 2 || i == 5 { *b == b'/' } else { b.is_ascii_digit() }))
    };

    // Without the cookie, Vietnamese as before, with the switch to English back to this page.
    let vi = get(&app, "DOICT", MARCH).await;
    assert_eq!(vi.status, 200, "{}", vi.body);
    assert!(vi.body.contains("<html lang=\"vi\"") && vi.body.contains("Đối soát tháng 03/2025"), "{}", vi.body);
    assert!(
        vi.body.contains("href=\"/console/language?to=en&amp;back=%2Fconsole%2Freconciliation%3Fperiod%3D2025%2D03\"")
            && vi.body.contains(">English</a>"),
        "{}",
        vi.body
    );

    let switched = get(&app, "DOICT", "/console/language?to=en&back=/console/reconciliation%3Fperiod%3D2025-03").await;
    assert_eq!(switched.status, 303, "{}", switched.body);
    let cookie = switched.headers["set-cookie"].to_str().unwrap();
    for part in ["telesub_lang=en", "Path=/console", "Secure", "HttpOnly", "SameSite=Strict", "Max-Age=31536000"] {
        assert!(cookie.contains(part), "{part}: {cookie}");
    }
    assert_eq!(switched.headers["location"], MARCH);

    // With the cookie, the same page in English; amounts and dates as before.
    let mut browser = Browser::connect(&app, Some("DOICT")).await.unwrap();
    let en = browser.get_with(MARCH, &[("cookie", "telesub_lang=en")]).await.unwrap();
    assert_eq!(en.status, 200, "{}", en.body);
    let body = &en.body;
    assert!(body.contains("<html lang=\"en\""), "{body}");
    for shown in [
        "Reconciliation for 03/2025",
        "Reconciled, awaiting confirmation",
        "Discrepancies by code",
        "Eligibility ended",
        "Amount claimed",
        ">Tiếng Việt</a>",
        "/console/language?to=vi&amp;back=%2Fconsole%2Freconciliation%3Fperiod%3D2025%2D03",
    ] {
        assert!(body.contains(shown), "{shown} is not on the page: {body}");
    }
    assert!(!body.contains("Đối soát tháng") && !body.contains("Đã đối soát, chờ xác nhận"), "{body}");
    assert!(body.contains("180.000 ₫") && body.contains("120.000 ₫") && dated(body), "{body}");
    assert!(dated(&vi.body), "{}", vi.body);
    // Beside other cookies too; an error page in English, its message as the RPC gives it.
    let bad = browser
        .get_with("/console/reconciliation?period=2025-13", &[("cookie", "a=b; telesub_lang=en")])
        .await
        .unwrap();
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("Invalid request") && bad.body.contains("<code>period</code>"), "{}", bad.body);
    // Back to Vietnamese.
    let back = browser.get_with("/console/language?to=vi&back=%2Fconsole%2F", &[("cookie", "telesub_lang=en")]).await;
    let back = back.unwrap();
    assert_eq!(back.status, 303, "{}", back.body);
    assert!(back.headers["set-cookie"].to_str().unwrap().starts_with("telesub_lang=vi;"), "{:?}", back.headers);
    assert_eq!(back.headers["location"], "/console/");
    let home = browser.get_with("/console/", &[("cookie", "telesub_lang=vi")]).await.unwrap();
    assert!(home.body.contains("<html lang=\"vi\"") && home.body.contains("Vai trò"), "{}", home.body);

    // The switch brings the browser back to console pages only.
    for elsewhere in ["https://evil.example/", "//evil.example/", "/console//evil.example", "/elsewhere", ""] {
        let path = format!("/console/language?to=en&back={elsewhere}");
        let page = get(&app, "DOICT", &path).await;
        assert_eq!(page.status, 303, "{path}: {}", page.body);
        assert_eq!(page.headers["location"], "/console/", "{path}");
    }
}
