//! The hub's clock: a hub started on a set clock dates its audit records by it, and its rules
//! take "today" from it, in the province's time (UTC+7).

use telesub_client::proto::{self, check_eligibility_request::Key};
use telesub_server::domain::clock::Clock;
use telesub_tests::TestApp;
use time::macros::datetime;

use crate::households::{header, household, push};

#[tokio::test]
async fn a_hub_on_a_set_clock_dates_its_records_and_its_decisions_by_it() {
    // 23:59:30 in the province on 31 March 2031: years after the wall clock's today.
    let before = datetime!(2031-03-31 16:59:30 UTC);
    let after = datetime!(2031-03-31 17:00:00 UTC);
    let clock = Clock::fixed(before);
    let app = TestApp::spawn_on(clock.clone()).await;

    // A review effective on the clock's today is not a date in the future.
    let labour = app.client("DOLISA").await;
    push(
        &labour,
        header("review-2030", proto::BatchKind::Snapshot, "2030", "2031-03-31"),
        vec![household("HH-1", "24611", 1)],
    )
    .await
    .unwrap();
    let vnpt = app.client("VNPT").await;
    let d = vnpt.check_eligibility(Key::HouseholdCode("HH-1".into()), "").await.unwrap();
    assert_eq!(d.as_of, "2031-03-31", "a decision without a date is for the clock's today: {d:?}");
    assert!(d.eligible, "{d:?}");

    // At 17:00 UTC the province's date turns.
    clock.set_to(after);
    let d = vnpt.check_eligibility(Key::HouseholdCode("HH-1".into()), "").await.unwrap();
    assert_eq!(d.as_of, "2031-04-01", "{d:?}");

    // Every call is recorded at the clock's time when it arrived.
    let records = app.audit().await;
    assert!(records.len() >= 3, "{records:?}");
    assert!(records.iter().all(|r| r.entry.at == before || r.entry.at == after), "{records:?}");
    let last = records.iter().rfind(|r| r.entry.method.ends_with("/CheckEligibility")).expect("the last check");
    assert_eq!(last.entry.at, after);
}
