//! The retention policy: what the hub keeps beyond the programme's need goes when the policy
//! says (decisions after five years, inspections' samples five years after the inspection
//! closed, households five years after they left the list), marked with the ticket of the dry
//! run before it; the audit trail stays whole and `VerifyAudit` still holds it, also after a
//! purge cut off half-way, and holds every purged decision to the dry run that marked it.

use futures_util::{StreamExt, stream};
use telesub_client::{Code, proto};
use telesub_server::domain::clock::Clock;
use telesub_tests::TestApp;
use time::macros::datetime;

use crate::households::{cid, header, household, push, removal};
use crate::inspections::inspection;
use crate::reconciliation::enroll;

fn citizen(id: &str) -> proto::CheckEligibilityRequest {
    proto::CheckEligibilityRequest {
        key: Some(proto::check_eligibility_request::Key::CitizenId(id.into())),
        as_of: String::new(),
    }
}

#[tokio::test]
async fn a_purge_lets_go_what_the_policy_no_longer_keeps_and_the_trail_still_verifies() {
    let clock = Clock::fixed(datetime!(2024-03-10 03:00 UTC));
    let app = TestApp::spawn_on(clock.clone()).await;
    let (labour, vnpt, ict) = (app.client("DOLISA").await, app.client("VNPT").await, app.client("DOICT").await);

    // March 2024: three households; a line for the first; a decision, a batch of decisions,
    // and an inspection's sample of the commune, closed.
    let households = vec![household("HH-1", "24611", 1), household("HH-2", "24611", 2), household("HH-3", "24611", 3)];
    push(&labour, header("2024-03", proto::BatchKind::Delta, "2024-03", "2024-03-01"), households).await.unwrap();
    vnpt.enroll(enroll("e1", "HH-1", 1, "0912000001", "2024-03-10")).await.unwrap();
    let old = vnpt.check_eligibility(proto::check_eligibility_request::Key::CitizenId(cid(1, 1980, false)), "").await;
    let old = old.unwrap().decision_id;
    let batch: Vec<proto::EligibilityDecision> = vnpt
        .check_eligibility_batch(stream::iter(vec![citizen(&cid(2, 1980, false)), citizen(&cid(3, 1980, false))]))
        .await
        .unwrap()
        .map(|d| d.unwrap())
        .collect()
        .await;
    let inspected = ict.create_inspection(inspection(&["660"])).await.unwrap().id;
    let pulled = ict
        .pull_sample(proto::PullSampleRequest {
            inspection_id: inspected,
            commune_code: "24611".into(),
            size: 1,
            as_of: "2024-03-10".into(),
        })
        .await
        .unwrap();
    assert_eq!(pulled.households.len(), 1);
    ict.close_inspection(inspected, "Không phát hiện sai phạm").await.unwrap();
    // HH-3 leaves the list in April 2024.
    clock.set_to(datetime!(2024-04-02 03:00 UTC));
    let leaving = vec![removal("HH-3", proto::RemovalReason::OutOfPoverty, "2024-04-01")];
    push(&labour, header("2024-04", proto::BatchKind::Delta, "2024-04", "2024-04-01"), leaving).await.unwrap();

    // June 2026: a decision the policy keeps until 2031.
    clock.set_to(datetime!(2026-06-01 03:00 UTC));
    let kept = vnpt.check_eligibility(proto::check_eligibility_request::Key::HouseholdCode("HH-1".into()), "").await;
    let kept = kept.unwrap().decision_id;

    // March 2030: six years after the first calls; the policy keeps five.
    clock.set_to(datetime!(2030-03-15 03:00 UTC));
    let err = vnpt.purge_dry_run().await.unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied), "{err}");
    let dry = ict.purge_dry_run().await.unwrap();
    assert!(dry.dry_run && dry.ticket.len() == 32, "{dry:?}");
    assert_eq!((dry.decisions_years, dry.samples_years, dry.removed_households_years), (5, 5, 5));
    assert_eq!(dry.households_removed_before, "2025-03-15");
    assert!(dry.decisions >= 1, "{dry:?}");
    assert_eq!((dry.decision_runs, dry.samples, dry.households), (1, 1, 1), "{dry:?}");
    assert!(vnpt.get_decision(&old).await.is_ok(), "a dry run changes nothing");

    // A purge names a dry run of the last day.
    for bad in ["", "not-a-ticket"] {
        let err = ict.purge_expired(bad).await.unwrap_err();
        assert_eq!(err.violations()[0].field, "ticket", "{err}");
    }
    let done = ict.purge_expired(&dry.ticket).await.unwrap();
    assert!(!done.dry_run && done.ticket == dry.ticket, "{done:?}");
    assert_eq!(
        (done.decisions, done.decision_runs, done.samples, done.households),
        (dry.decisions, dry.decision_runs, dry.samples, dry.households)
    );
    // What went says so; what the policy keeps reads as before.
    let err = vnpt.get_decision(&old).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "{err}");
    assert!(err.to_string().contains("purged on 2030-03-15"), "{err}");
    let err = vnpt.get_decision(&batch[1].decision_id).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::FailedPrecondition), "a batch's decision: {err}");
    assert_eq!(vnpt.get_decision(&kept).await.unwrap().decision_id, kept);
    let err = ict.get_household("HH-3", "2024-03-15").await.unwrap_err();
    assert_eq!(err.code(), Some(Code::NotFound), "{err}");
    assert!(err.to_string().contains("left the list on 2024-04-01") && err.to_string().contains("purged"), "{err}");
    let err = ict.household_history("HH-3").await.unwrap_err();
    assert!(err.to_string().contains("purged"), "{err}");
    assert!(ict.find_by_citizen_id(&cid(3, 1980, false), "2024-03-15").await.unwrap().is_empty(), "by citizen ID");
    assert_eq!(ict.household_history("HH-1").await.unwrap().versions.len(), 1, "a household on the list stays");
    let sample = ict.get_sample(inspected, 1).await.unwrap();
    assert!(sample.households.is_empty(), "the sample's households went");
    let summary = sample.summary.unwrap();
    assert!(summary.purged_at.is_some() && (summary.size, summary.population) == (1, 1), "the draw stays: {summary:?}");
    assert_eq!(sample.seed, pulled.seed);

    // The trail is whole: every record stays, the purged decisions held to their purge.
    let report = ict.verify_audit().await.unwrap();
    assert!(report.intact, "{report:?}");
    assert!(report.purged >= 1, "{report:?}");
    assert_eq!(
        app.db
            .count(&format!(
                "SELECT COUNT(*) FROM eligibility_decisions WHERE purged_by = '{}' AND query_value = ''",
                dry.ticket
            ))
            .await
            .unwrap(),
        done.decisions
    );

    // Again: nothing is left to go.
    let again = ict.purge_expired(&ict.purge_dry_run().await.unwrap().ticket).await.unwrap();
    assert_eq!((again.decisions, again.decision_runs, again.samples, again.households), (0, 0, 0, 0));
    // A ticket holds a day.
    let ticket = ict.purge_dry_run().await.unwrap().ticket;
    clock.set_to(datetime!(2030-03-16 04:00 UTC));
    let err = ict.purge_expired(&ticket).await.unwrap_err();
    assert_eq!(err.violations()[0].field, "ticket", "{err}");

    // An insider cannot purge a decision younger than a year…
    let fresh = vnpt.check_eligibility(proto::check_eligibility_request::Key::HouseholdCode("HH-1".into()), "").await;
    let (fresh_call, _) =
        fresh.unwrap().decision_id.rsplit_once('-').map(|(c, i)| (c.to_owned(), i.to_owned())).unwrap();
    let blank = |call: &str, by: &str| {
        format!(
            "UPDATE eligibility_decisions SET query_value = '', body = '', purged_by = '{by}', \
             purged_at = (SELECT MAX(purged_at) FROM eligibility_decisions) WHERE call_id = '{call}'"
        )
    };
    assert!(app.db.execute(&blank(&fresh_call, &dry.ticket)).await.is_err(), "the guard refuses");
    // …and one old enough, blanked without a purge, breaks the trail at its record.
    let (kept_call, _) = kept.rsplit_once('-').unwrap();
    app.db.execute(&blank(kept_call, "forged")).await.unwrap();
    let report = ict.verify_audit().await.unwrap();
    assert!(!report.intact, "{report:?}");
    assert!(report.problem.contains("their ticket forged names no purge call"), "{report:?}");
}

#[tokio::test]
async fn two_purges_at_once_each_let_go_a_share_and_the_trail_holds_both() {
    let clock = Clock::fixed(datetime!(2024-03-10 03:00 UTC));
    let app = TestApp::spawn_on(clock.clone()).await;
    let (labour, vnpt, ict) = (app.client("DOLISA").await, app.client("VNPT").await, app.client("DOICT").await);
    let households: Vec<_> = (1..=20).map(|n| household(&format!("HH-{n}"), "24611", n)).collect();
    push(&labour, header("2024-03", proto::BatchKind::Delta, "2024-03", "2024-03-01"), households).await.unwrap();
    for n in 1..=20 {
        let key = proto::check_eligibility_request::Key::HouseholdCode(format!("HH-{n}"));
        vnpt.check_eligibility(key, "").await.unwrap();
    }
    clock.set_to(datetime!(2024-04-02 03:00 UTC));
    let leaving: Vec<_> =
        (11..=20).map(|n| removal(&format!("HH-{n}"), proto::RemovalReason::OutOfPoverty, "2024-04-01")).collect();
    push(&labour, header("2024-04", proto::BatchKind::Delta, "2024-04", "2024-04-01"), leaving).await.unwrap();

    clock.set_to(datetime!(2030-03-15 03:00 UTC));
    let dry = ict.purge_dry_run().await.unwrap();
    assert_eq!((dry.decisions, dry.households), (20, 10), "{dry:?}");
    let other = app.client("DOICT").await;
    let second = other.purge_dry_run().await.unwrap().ticket;
    let (a, b) = tokio::join!(ict.purge_expired(&dry.ticket), other.purge_expired(&second));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.decisions + b.decisions, 20, "{a:?} {b:?}");
    assert_eq!(a.households + b.households, 10, "{a:?} {b:?}");
    let report = ict.verify_audit().await.unwrap();
    assert!(report.intact, "{report:?}");
    assert_eq!(report.purged, 20, "{report:?}");
    for n in 11..=20 {
        let err = ict.get_household(&format!("HH-{n}"), "2024-03-15").await.unwrap_err();
        assert!(err.to_string().contains("purged"), "HH-{n}: {err}");
    }
    assert!(ict.get_household("HH-10", "2024-03-15").await.is_ok());
    // Eligibility reads the register as the hub holds it (in memory, on SQLite): it let go too.
    let asked =
        vnpt.check_eligibility(proto::check_eligibility_request::Key::HouseholdCode("HH-15".into()), "2024-03-15");
    let d = asked.await.unwrap();
    assert!(!d.eligible);
    assert_eq!(d.reasons[0].code(), proto::ReasonCode::NotFound, "{d:?}");
}

#[tokio::test]
async fn a_purge_cut_off_half_way_leaves_a_trail_that_verifies_and_the_next_one_finishes() {
    use telesub_server::domain::ports::retention::PurgeMark;
    let clock = Clock::fixed(datetime!(2024-03-10 03:00 UTC));
    let app = TestApp::spawn_on(clock.clone()).await;
    let (labour, vnpt, ict) = (app.client("DOLISA").await, app.client("VNPT").await, app.client("DOICT").await);
    let households: Vec<_> = (1..=5).map(|n| household(&format!("HH-{n}"), "24611", n)).collect();
    push(&labour, header("2024-03", proto::BatchKind::Delta, "2024-03", "2024-03-01"), households).await.unwrap();
    for n in 1..=5 {
        let key = proto::check_eligibility_request::Key::HouseholdCode(format!("HH-{n}"));
        vnpt.check_eligibility(key, "").await.unwrap();
    }
    clock.set_to(datetime!(2030-03-15 03:00 UTC));
    let dry = ict.purge_dry_run().await.unwrap();
    assert_eq!(dry.decisions, 5);
    // The hub stops after the purge's first piece (two decisions), before the call's record:
    // what it purged names the dry run, which the trail holds.
    let before: time::OffsetDateTime = datetime!(2025-03-15 03:00 UTC);
    let mark = PurgeMark { request_id: &dry.ticket, at: clock.now() };
    assert_eq!(app.store.purge_decisions(before, &mark, 2).await.unwrap(), (2, 0));
    let report = ict.verify_audit().await.unwrap();
    assert!(report.intact && report.purged == 2, "{report:?}");
    // A new dry run counts what is left, and its purge finishes.
    let rest = ict.purge_dry_run().await.unwrap();
    assert_eq!(rest.decisions, 3);
    assert_eq!(ict.purge_expired(&rest.ticket).await.unwrap().decisions, 3);
    let report = ict.verify_audit().await.unwrap();
    assert!(report.intact && report.purged == 5, "{report:?}");
}

#[tokio::test]
async fn the_purge_runs_from_the_command_line_in_two_steps() {
    use crate::monthly_cli::{cli, cli_run};
    cli(); // built before the hub starts
    let clock = Clock::fixed(datetime!(2024-03-10 03:00 UTC));
    let app = TestApp::spawn_on(clock.clone()).await;
    let (labour, vnpt) = (app.client("DOLISA").await, app.client("VNPT").await);
    push(
        &labour,
        header("2024-03", proto::BatchKind::Delta, "2024-03", "2024-03-01"),
        vec![household("HH-1", "24611", 1)],
    )
    .await
    .unwrap();
    vnpt.check_eligibility(proto::check_eligibility_request::Key::HouseholdCode("HH-1".into()), "").await.unwrap();
    clock.set_to(datetime!(2030-03-15 03:00 UTC));
    let work = tempfile::tempdir().unwrap();

    let dry = cli_run(&app, "DOICT", work.path(), &["audit", "purge", "--dry-run"]).await;
    dry.assert_ok();
    assert_eq!(dry.value("decisions would go"), Some("1 single, 0 runs of a batch call"), "{}", dry.out);
    let ticket = dry.value("ticket").expect("the ticket").to_owned();
    // A ticket that is not one: invalid input, nothing changed.
    let bad = cli_run(&app, "DOICT", work.path(), &["audit", "purge", "--ticket", "nope"]).await;
    assert_eq!(bad.code, Some(3), "{}", bad.err);
    assert!(bad.err.contains("ticket"), "{}", bad.err);
    // Neither step named: a usage error.
    assert_eq!(cli_run(&app, "DOICT", work.path(), &["audit", "purge"]).await.code, Some(2));
    // An operator may not.
    assert_eq!(cli_run(&app, "VNPT", work.path(), &["audit", "purge", "--dry-run"]).await.code, Some(5));

    let done = cli_run(&app, "DOICT", work.path(), &["audit", "purge", "--ticket", &ticket, "--output", "json"]).await;
    done.assert_ok();
    let answer: serde_json::Value = serde_json::from_str(&done.out).unwrap();
    assert_eq!(
        (answer["ticket"].as_str(), answer["decisions"].as_str()),
        (Some(ticket.as_str()), Some("1")),
        "{answer}"
    );
    let verify = cli_run(&app, "DOICT", work.path(), &["audit", "verify", "--output", "csv", "--no-bom"]).await;
    verify.assert_ok();
    let row = verify.out.lines().nth(1).expect("a row");
    assert!(row.starts_with("true,") && row.ends_with(",1"), "intact, one record's decisions purged: {}", verify.out);
}
