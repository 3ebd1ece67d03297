//! Inspections through the API: ICT plans an inspection of a district and an operator,
//! records findings and their follow-up, freezes a sample of the hub's data for the team, and
//! closes it; the coordinating departments and the locality read it.

use std::time::Duration;

use telesub_client::{Client, Code, Error, proto};
use telesub_tests::TestApp;

use crate::households::{cid, header, household, push, removal};

fn fields(err: &Error) -> Vec<&str> {
    err.violations().iter().map(|v| v.field.as_str()).collect()
}

fn member(org: &str, name: &str, role: &str) -> proto::TeamMember {
    proto::TeamMember { organisation: org.into(), name: name.into(), role: role.into() }
}

pub(crate) fn inspection(units: &[&str]) -> proto::CreateInspectionRequest {
    proto::CreateInspectionRequest {
        title: "Kiểm tra việc hỗ trợ dịch vụ viễn thông năm 2025".into(),
        basis: proto::InspectionBasis::AuthorityRequest.into(),
        requested_by: "Công văn 123/UBND-KGVX của UBND tỉnh".into(),
        subject_units: units.iter().map(|u| u.to_string()).collect(),
        subject_operators: vec!["VNPT".into()],
        team: vec![member("DOICT", "Lê Văn Tâm", "trưởng đoàn"), member("DOLISA", "Phạm Thị Hạnh", "thành viên")],
        starts_on: "2025-04-01".into(),
        ends_on: "2025-04-15".into(),
        note: String::new(),
    }
}

pub(crate) fn finding(inspection_id: i64, subject: &str) -> proto::RecordFindingRequest {
    proto::RecordFindingRequest {
        inspection_id,
        severity: proto::FindingSeverity::High.into(),
        subject: subject.into(),
        description: "Hai thuê bao được báo cáo hỗ trợ sau khi hộ đã thoát nghèo".into(),
        evidence_reference: "Biên bản số 05/BB-ĐKT".into(),
        required_action: "Thu hồi kinh phí đã hỗ trợ".into(),
        due_on: "2025-05-30".into(),
    }
}

/// HH-1 … HH-6 in 24611 (district 660), HH-7 in 24616 (661); VNPT enrols HH-1 … HH-4 and
/// HH-7 from February, VIETTEL HH-5; HH-6 holds no line.
async fn with_register(app: &TestApp) {
    let labour = app.client("DOLISA").await;
    let mut records: Vec<_> = (1..=6).map(|n| household(&format!("HH-{n}"), "24611", n)).collect();
    records.push(household("HH-7", "24616", 7));
    push(&labour, header("review-2024", proto::BatchKind::Snapshot, "2024", "2025-01-01"), records).await.unwrap();
    let (vnpt, viettel) = (app.client("VNPT").await, app.client("VIETTEL").await);
    for n in [1, 2, 3, 4, 7, 5] {
        let operator: &Client = if n == 5 { &viettel } else { &vnpt };
        operator
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
    }
}

#[tokio::test]
async fn an_inspection_is_planned_followed_up_sampled_and_closed() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let (ict, locality, education, vnpt) =
        (app.client("DOICT").await, app.client("GIANGHIA").await, app.client("DOET").await, app.client("VNPT").await);

    // Bad inspections name their fields and store nothing.
    let mut bad = inspection(&["999"]);
    bad.basis = proto::InspectionBasis::AuthorityRequest.into();
    bad.requested_by.clear();
    bad.subject_operators = vec!["DOLISA".into()];
    bad.team.push(member("NOBODY", "Trần Văn B", ""));
    bad.ends_on = "2025-03-01".into();
    let err = ict.create_inspection(bad).await.unwrap_err();
    assert_eq!(
        fields(&err),
        ["requested_by", "ends_on", "subject_units[0]", "subject_operators[0]", "team[2].organisation"],
        "{err}"
    );
    let mut no_basis = inspection(&["660"]);
    no_basis.basis = 0;
    no_basis.team.clear();
    let err = ict.create_inspection(no_basis).await.unwrap_err();
    assert_eq!(fields(&err), ["basis", "team"], "{err}");
    assert_eq!(vnpt.create_inspection(inspection(&["660"])).await.unwrap_err().code(), Some(Code::PermissionDenied));
    assert!(ict.list_inspections(proto::InspectionStatus::Unspecified, 0, "").await.unwrap().inspections.is_empty());

    let created = ict.create_inspection(inspection(&["660"])).await.unwrap();
    assert_eq!(created.status(), proto::InspectionStatus::Open);
    assert_eq!((created.created_by.as_str(), created.team.len()), ("DOICT", 2));
    let id = created.id;

    // Findings and their follow-up.
    let first = ict.record_finding(finding(id, "VNPT")).await.unwrap();
    assert_eq!((first.number, first.status()), (1, proto::FindingStatus::Open));
    let second = ict.record_finding(finding(id, "660")).await.unwrap();
    assert_eq!(second.number, 2);
    let err = ict.record_finding(finding(id, "VIETTEL")).await.unwrap_err();
    assert_eq!(fields(&err), ["subject"], "VIETTEL is not inspected: {err}");
    let mut unrated = finding(id, "VNPT");
    unrated.severity = 0;
    unrated.due_on = "soon".into();
    let err = ict.record_finding(unrated).await.unwrap_err();
    assert_eq!(fields(&err), ["severity", "due_on"]);
    let err = ict.record_finding(finding(999, "VNPT")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound));

    let moved =
        ict.update_finding_status(id, 1, proto::FindingStatus::InProgress, "VNPT đã nhận văn bản").await.unwrap();
    assert_eq!(moved.status(), proto::FindingStatus::InProgress);
    let err = ict.update_finding_status(id, 1, proto::FindingStatus::Resolved, " ").await.unwrap_err();
    assert_eq!(fields(&err), ["note"]);
    let resolved =
        ict.update_finding_status(id, 1, proto::FindingStatus::Resolved, "Đã thu hồi 120.000 đồng").await.unwrap();
    assert_eq!(resolved.updates.len(), 2);
    assert_eq!(resolved.updates[1].note, "Đã thu hồi 120.000 đồng");
    let err = ict.update_finding_status(id, 1, proto::FindingStatus::InProgress, "mở lại").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "findings move forward only: {err}");
    let err = ict.update_finding_status(id, 9, proto::FindingStatus::Resolved, "x").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound));

    // A frozen sample: the draw is reproducible from its seed, and later changes leave it.
    let pull = |commune: &str, size: i32| proto::PullSampleRequest {
        inspection_id: id,
        commune_code: commune.into(),
        size,
        as_of: "2025-03-01".into(),
    };
    let err = ict.pull_sample(pull("24616", 3)).await.unwrap_err();
    assert_eq!(fields(&err), ["commune_code"], "24616 lies in 661: {err}");
    let err = ict.pull_sample(pull("24611", 0)).await.unwrap_err();
    assert_eq!(fields(&err), ["size"]);
    let sample = ict.pull_sample(pull("24611", 3)).await.unwrap();
    let summary = sample.summary.clone().unwrap();
    assert_eq!((summary.number, summary.size, summary.population), (1, 3, 5), "HH-6 holds no line");
    let mut population: Vec<String> = (1..=5).map(|n| format!("HH-{n}")).collect();
    let key = |code: &str| ring::digest::digest(&ring::digest::SHA256, format!("{}\n{code}", sample.seed).as_bytes());
    population.sort_by(|a, b| key(a).as_ref().cmp(key(b).as_ref()));
    let drawn: Vec<&str> = sample.households.iter().map(|h| h.household_code.as_str()).collect();
    assert_eq!(drawn, population[..3].iter().map(String::as_str).collect::<Vec<_>>());
    for h in &sample.households {
        assert_eq!(h.versions.len(), 1, "{}", h.household_code);
        assert_eq!(h.enrollments.len(), 1);
        assert_eq!(h.versions[0].data.as_ref().unwrap().commune_code, "24611");
    }
    let labour = app.client("DOLISA").await;
    let leaving: Vec<_> =
        drawn.iter().map(|code| removal(code, proto::RemovalReason::OutOfPoverty, "2025-04-01")).collect();
    push(&labour, header("2025-04", proto::BatchKind::Delta, "2025-04", "2025-04-01"), leaving).await.unwrap();
    assert_eq!(ict.household_history(drawn[0]).await.unwrap().versions.len(), 2);
    let again = ict.get_sample(id, 1).await.unwrap();
    assert_eq!(again, sample, "the sample is what the hub held when it was pulled");
    let looked = ict
        .query_audit(proto::QueryAuditRequest {
            household_code: drawn[0].into(),
            method: "Supervision".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(looked.records.len(), 2, "pulling and reading the sample looked at the household");

    // Readers: the coordinating departments and the locality of the unit; not operators.
    assert_eq!(education.get_inspection(id).await.unwrap().findings.len(), 2);
    let theirs = locality.get_inspection(id).await.unwrap();
    assert_eq!(theirs.samples.len(), 1);
    assert_eq!(vnpt.get_inspection(id).await.unwrap_err().code(), Some(Code::PermissionDenied));
    let elsewhere = ict.create_inspection(inspection(&["661"])).await.unwrap();
    // Another unit's inspection reads as one that does not exist.
    let err = locality.get_inspection(elsewhere.id).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound));
    let missing = locality.get_inspection(9_999).await.unwrap_err();
    assert_eq!(
        err.rejection().unwrap().message.replace(&elsewhere.id.to_string(), "N"),
        missing.rejection().unwrap().message.replace("9999", "N")
    );
    let listed = locality.list_inspections(proto::InspectionStatus::Unspecified, 1, "").await.unwrap();
    assert_eq!(listed.inspections.iter().map(|i| i.id).collect::<Vec<_>>(), [id], "GIANGHIA sees 660's only");
    assert_eq!(ict.list_inspections(proto::InspectionStatus::Open, 0, "").await.unwrap().inspections.len(), 2);

    // Closed: no more findings or samples; follow-up goes on.
    let err = ict.close_inspection(id, "").await.unwrap_err();
    assert_eq!(fields(&err), ["conclusion"]);
    let closed = ict.close_inspection(id, "Đơn vị đã khắc phục; kiến nghị 2 đang theo dõi").await.unwrap();
    assert_eq!((closed.status(), closed.closed_by.as_str()), (proto::InspectionStatus::Closed, "DOICT"));
    let err = ict.record_finding(finding(id, "VNPT")).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err}");
    assert_eq!(ict.pull_sample(pull("24611", 2)).await.unwrap_err().code(), Some(Code::FailedPrecondition));
    assert_eq!(ict.close_inspection(id, "lại").await.unwrap_err().code(), Some(Code::FailedPrecondition));
    ict.update_finding_status(id, 2, proto::FindingStatus::Resolved, "UBND thành phố đã báo cáo").await.unwrap();
    let shown = ict.get_inspection(id).await.unwrap();
    assert!(shown.findings.iter().all(|f| f.status() == proto::FindingStatus::Resolved));
    assert_eq!(ict.list_inspections(proto::InspectionStatus::Closed, 0, "").await.unwrap().inspections.len(), 1);
}

#[tokio::test]
async fn inspections_run_from_the_command_line() {
    use crate::monthly_cli::cli_run;
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path();
    let create = [
        "inspections",
        "create",
        "--title",
        "Kiểm tra năm 2025",
        "--basis",
        "plan",
        "--unit",
        "660",
        "--operator",
        "VNPT",
        "--member",
        "DOICT:Lê Văn Tâm:trưởng đoàn",
        "--from",
        "2025-04-01",
        "--to",
        "2025-04-15",
    ];
    let run = cli_run(&app, "DOICT", here, &create).await;
    run.assert_ok();
    let id = run.field("id").to_owned();
    assert_eq!(run.field("status"), "OPEN");
    let finding = [
        "inspections",
        "finding",
        &id,
        "--severity",
        "high",
        "--subject",
        "VNPT",
        "--description",
        "Báo cáo thiếu",
        "--action",
        "Bổ sung báo cáo",
        "--due",
        "2025-05-30",
    ];
    cli_run(&app, "DOICT", here, &finding).await.assert_ok();
    let run = cli_run(
        &app,
        "DOICT",
        here,
        &["inspections", "sample", &id, "--commune", "24611", "--size", "2", "--as-of", "2025-03-01"],
    )
    .await;
    run.assert_ok();
    assert_eq!(run.field("population"), "5", "{}", run.out);
    assert_eq!(run.out.lines().filter(|l| l.starts_with("HH-")).count(), 2, "{}", run.out);
    let run = cli_run(
        &app,
        "DOICT",
        here,
        &["inspections", "update", &id, "1", "--status", "resolved", "--note", "Đã bổ sung"],
    )
    .await;
    run.assert_ok();
    assert_eq!(run.field("status"), "RESOLVED");
    cli_run(&app, "DOICT", here, &["inspections", "close", &id, "--conclusion", "Hoàn thành"]).await.assert_ok();
    let run = cli_run(&app, "GIANGHIA", here, &["inspections", "show", &id]).await;
    run.assert_ok();
    assert_eq!(run.field("status"), "CLOSED");
    assert!(run.out.contains("Lê Văn Tâm") && run.out.contains("Đã bổ sung"), "{}", run.out);
    let run = cli_run(&app, "DOICT", here, &finding).await;
    assert_eq!(run.code, Some(7), "a finding on a closed inspection: {}{}", run.out, run.err);
    let run = cli_run(&app, "VNPT", here, &["inspections", "list"]).await;
    assert_eq!(run.code, Some(5), "operators read no inspection: {}", run.err);
}

/// Two samples pulled from one inspection at the same moment (two of its team) are both kept,
/// numbered one after the other; an inspection closed while a sample is being stored closes
/// after it.
#[tokio::test]
async fn samples_pulled_at_the_same_moment_are_numbered_apart_and_a_closing_waits_for_them() {
    let app = TestApp::spawn().await;
    with_register(&app).await;
    let (one, other) = (app.client("DOICT").await, app.client("DOICT").await);
    let id = one.create_inspection(inspection(&["660"])).await.unwrap().id;
    let pull = |size: i32| proto::PullSampleRequest {
        inspection_id: id,
        commune_code: "24611".into(),
        size,
        as_of: "2025-03-01".into(),
    };
    let held = |table: &'static str| {
        let db = &app.db;
        async move {
            if let Some(hold) = db.hold_writes(table).await {
                hold.release_when_waiting(2).await;
            }
        }
    };
    // On PostgreSQL the samples' table is held from outside until both pulls wait at their
    // writes: each has read the inspection's samples before either is stored.
    let (a, b, ()) = tokio::join!(one.pull_sample(pull(2)), other.pull_sample(pull(3)), held("inspection_samples"));
    let (a, b) = (a.unwrap().summary.unwrap(), b.unwrap().summary.unwrap());
    let mut numbers = [a.number, b.number];
    numbers.sort();
    assert_eq!(numbers, [1, 2]);
    assert_eq!(one.get_sample(id, a.number).await.unwrap().summary.unwrap().size, 2);
    assert_eq!(one.get_sample(id, b.number).await.unwrap().summary.unwrap().size, 3);
    // Closing while a sample is being stored: the closing waits for it (on PostgreSQL the
    // sample is held at its write until the closing has had time to finish before it).
    let hold = app.db.hold_writes("inspection_samples").await;
    let ordered = hold.is_some();
    let pulling = tokio::spawn({
        let (one, request) = (one.clone(), pull(1));
        async move { one.pull_sample(request).await }
    });
    if let Some(hold) = hold {
        assert!(hold.wait_for(1).await, "the sample waits at its write");
        let closing = other.close_inspection(id, "Kết thúc");
        tokio::pin!(closing);
        let early = tokio::time::timeout(Duration::from_secs(1), &mut closing).await;
        assert!(early.is_err(), "the inspection closed while a sample was being stored: {early:?}");
        hold.release().await;
        closing.await.unwrap();
    } else {
        other.close_inspection(id, "Kết thúc").await.unwrap();
    }
    let sample = pulling.await.unwrap();
    let shown = one.get_inspection(id).await.unwrap();
    match sample {
        Ok(s) => {
            let kept = s.summary.unwrap().number;
            assert!(shown.samples.iter().any(|k| k.number == kept), "a sample answered as kept is kept");
        }
        // Without the hold (SQLite) the closing may come first: then the sample is refused.
        Err(e) => {
            assert!(!ordered, "the sample came first: {e}");
            assert_eq!(e.code(), Some(Code::FailedPrecondition), "{e}");
            assert_eq!(shown.samples.len(), 2, "a refused sample is not kept: {:?}", shown.samples);
        }
    }
}
