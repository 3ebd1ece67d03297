//! The operators' change feed: a household the labour department removes or changes reaches
//! the operators that support it, in order, exactly once from any cursor, on any hub.

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use telesub_client::{Client, Code, proto};
use telesub_tests::TestApp;

use crate::households::{cid, header, household, push, removal};

fn enroll(key: &str, code: &str, n: u32, phone: &str) -> proto::EnrollRequest {
    proto::EnrollRequest {
        idempotency_key: key.into(),
        household_code: code.into(),
        subscriber_citizen_id: cid(n, 1980, false),
        phone_number: phone.into(),
        service: proto::SupportedService::Mobile.into(),
        start_date: "2025-02-01".into(),
    }
}

fn category(mut r: proto::HouseholdRecord, c: proto::Category, date: &str) -> proto::HouseholdRecord {
    r.effective_date = date.into();
    if let Some(proto::household_record::Change::Upsert(d)) = r.change.as_mut() {
        d.category = c.into();
    }
    r
}

/// The next `n` events of a feed, skipping heartbeats; fails after `wait`.
async fn next_events(
    feed: &mut (impl Stream<Item = Result<proto::WatchChangesResponse, telesub_client::Error>> + Unpin),
    n: usize,
    wait: Duration,
) -> Vec<proto::ChangeEvent> {
    let mut events = Vec::new();
    tokio::time::timeout(wait, async {
        while events.len() < n {
            let message = feed.next().await.expect("the feed stays open").expect("a feed message");
            events.extend(message.events);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {} of {n} events within {wait:?}: {events:?}", events.len()));
    events
}

/// HH-1, HH-2, HH-3 on the list from 1 January 2025; VNPT supports HH-1 and HH-2.
async fn setup(app: &TestApp) -> (Client, Client) {
    let labour = app.client("DOLISA").await;
    push(
        &labour,
        header("review-2024", proto::BatchKind::Snapshot, "2024", "2025-01-01"),
        vec![household("HH-1", "24611", 1), household("HH-2", "24616", 2), household("HH-3", "24616", 3)],
    )
    .await
    .unwrap();
    let vnpt = app.client("VNPT").await;
    vnpt.enroll(enroll("e1", "HH-1", 1, "0912345671")).await.unwrap();
    vnpt.enroll(enroll("e2", "HH-2", 2, "0912345672")).await.unwrap();
    (labour, vnpt)
}

/// The labour department pushes HH-2's removal (reason: deceased) from 1 May 2025.
async fn push_death_of_hh2(labour: &Client) {
    push(
        labour,
        header("2025-05", proto::BatchKind::Delta, "2025-05", "2025-05-01"),
        vec![removal("HH-2", proto::RemovalReason::Deceased, "2025-05-01")],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn removals_and_changes_reach_the_operator_in_order_with_the_end_of_support() {
    let app = TestApp::spawn().await;
    let (labour, vnpt) = setup(&app).await;
    push(
        &labour,
        header("2025-03", proto::BatchKind::Delta, "2025-03", "2025-03-15"),
        vec![
            removal("HH-1", proto::RemovalReason::OutOfPoverty, "2025-03-15"),
            category(household("HH-2", "24616", 2), proto::Category::NearPoor, "2025-03-15"),
            category(household("HH-3", "24616", 3), proto::Category::Other, "2025-03-15"),
        ],
    )
    .await
    .unwrap();
    push(
        &labour,
        header("2025-04", proto::BatchKind::Delta, "2025-04", "2025-04-01"),
        vec![category(household("HH-2", "24616", 2), proto::Category::Other, "2025-04-01")],
    )
    .await
    .unwrap();

    let mut feed = vnpt.watch_changes("", 0).await.unwrap();
    let events = next_events(&mut feed, 3, Duration::from_secs(10)).await;
    let got: Vec<(proto::ChangeKind, &str, &str, &str)> = events
        .iter()
        .map(|e| (e.kind(), e.household_code.as_str(), e.effective_date.as_str(), e.support_ends.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (proto::ChangeKind::Removed, "HH-1", "2025-03-15", "2026-01-01"),
            (proto::ChangeKind::CategoryChanged, "HH-2", "2025-03-15", ""),
            (proto::ChangeKind::CategoryChanged, "HH-2", "2025-04-01", "2026-01-01"),
        ]
    );
    assert_eq!(events[0].removal_reason(), proto::RemovalReason::OutOfPoverty);
    assert_eq!(
        (events[2].previous_category(), events[2].category()),
        (proto::Category::NearPoor, proto::Category::Other)
    );
    assert_eq!(events[2].batch_id, "2025-04");
    // HH-3 is nobody's: no event. Another operator sees none of these.
    let mut other = app.client("VIETTEL").await.watch_changes("", 1).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), other.next()).await.unwrap().unwrap().unwrap();
    assert!(first.events.is_empty() && first.heartbeat_at.is_some(), "{first:?}");

    // Resuming from a cursor gives what follows it, once.
    let mut resumed = vnpt.watch_changes(&events[0].cursor, 0).await.unwrap();
    assert_eq!(next_events(&mut resumed, 2, Duration::from_secs(5)).await, events[1..]);
    let mut done = vnpt.watch_changes(&events[2].cursor, 1).await.unwrap();
    let beat = tokio::time::timeout(Duration::from_secs(5), done.next()).await.unwrap().unwrap().unwrap();
    assert!(beat.events.is_empty(), "nothing after the last cursor: {beat:?}");
}

#[tokio::test]
async fn a_change_pushed_while_the_operator_watches_arrives_at_once() {
    let app = TestApp::spawn().await;
    let (labour, vnpt) = setup(&app).await;
    let mut feed = vnpt.watch_changes("", 60).await.unwrap();
    push_death_of_hh2(&labour).await;
    let events = next_events(&mut feed, 1, Duration::from_secs(5)).await;
    assert_eq!((events[0].kind(), events[0].support_ends.as_str()), (proto::ChangeKind::Removed, "2025-05-01"));

    // A transfer tells the operator that lost the line.
    let viettel = app.client("VIETTEL").await;
    viettel
        .transfer(proto::TransferRequest {
            idempotency_key: "t".into(),
            household_code: "HH-1".into(),
            subscriber_citizen_id: cid(1, 1980, false),
            phone_number: "0912345671".into(),
            service: proto::SupportedService::Mobile.into(),
            start_date: "2025-06-01".into(),
            request_reference: "ĐƠN 7".into(),
        })
        .await
        .unwrap();
    let events = next_events(&mut feed, 1, Duration::from_secs(5)).await;
    assert_eq!((events[0].kind(), events[0].household_code.as_str()), (proto::ChangeKind::TransferredAway, "HH-1"));
    assert_eq!(events[0].support_ends, "2025-06-01");
}

#[tokio::test]
async fn a_bad_cursor_or_heartbeat_is_refused() {
    let app = TestApp::spawn().await;
    let vnpt = app.client("VNPT").await;
    for (cursor, beat, field) in [("nope", 0, "cursor"), ("f-1", 0, "cursor"), ("", 301, "heartbeat_seconds")] {
        let err = match vnpt.watch_changes(cursor, beat).await {
            Ok(mut s) => s.next().await.unwrap().unwrap_err(),
            Err(e) => e,
        };
        assert_eq!(err.code(), Some(Code::InvalidArgument), "{cursor} {beat}: {err}");
        assert_eq!(err.violations()[0].field, field);
    }
}

/// Two hubs on one database: a client that reads part of its feed from one and the rest from
/// the other, while changes keep arriving through both, misses and repeats nothing.
#[tokio::test]
async fn a_client_switching_hubs_misses_and_repeats_nothing() {
    let app = TestApp::spawn().await;
    let second = app.spawn_beside().await;
    switch_hubs_while_changes_arrive(&app, &second).await;
}

/// The same with the second hub in a process of its own: two `telesub serve` processes on one
/// database, as a province runs several behind a load balancer.
#[tokio::test]
async fn a_client_switching_between_hub_processes_misses_and_repeats_nothing() {
    let app = TestApp::spawn().await;
    let second = app.spawn_process_beside().await;
    switch_hubs_while_changes_arrive(&app, &second).await;
}

async fn switch_hubs_while_changes_arrive(app: &TestApp, second: &impl telesub_tests::OtherHub) {
    let labour = app.client("DOLISA").await;
    let labour_b = app.client_of(second, "DOLISA").await;
    let households: Vec<proto::HouseholdRecord> = (1..=20).map(|n| household(&format!("HH-{n}"), "24611", n)).collect();
    push(&labour, header("review", proto::BatchKind::Snapshot, "2024", "2025-01-01"), households).await.unwrap();
    let vnpt_a = app.client("VNPT").await;
    let vnpt_b = app.client_of(second, "VNPT").await;
    for n in 1..=20u32 {
        let client = if n % 2 == 0 { &vnpt_a } else { &vnpt_b };
        client.enroll(enroll(&format!("e{n}"), &format!("HH-{n}"), n, &format!("09123456{n:02}"))).await.unwrap();
    }
    // Twenty months of changes, pushed alternately through both hubs, while the feed is read.
    let pushing = tokio::spawn(async move {
        for month in 1..=10u32 {
            let date = format!("2025-{:02}-01", month + 1);
            for (i, labour) in [&labour, &labour_b].into_iter().enumerate() {
                let n = month * 2 - 1 + i as u32;
                let c = if month % 2 == 0 { proto::Category::Poor } else { proto::Category::NearPoor };
                let records: Vec<_> = (1..=20)
                    .filter(|h| h % 2 == n % 2)
                    .map(|h| category(household(&format!("HH-{h}"), "24611", h), c, &date))
                    .collect();
                push(labour, header(&format!("b{n}"), proto::BatchKind::Delta, "2025", &date), records).await.unwrap();
            }
        }
    });
    let mut seen: Vec<proto::ChangeEvent> = Vec::new();
    let mut cursor = String::new();
    let expected = 10 * 20;
    let mut round = 0;
    while seen.len() < expected {
        // Read a little from one hub, then reconnect to the other from the last cursor.
        let client = if round % 2 == 0 { &vnpt_a } else { &vnpt_b };
        let mut feed = client.watch_changes(&cursor, 1).await.unwrap();
        let took = tokio::time::timeout(Duration::from_secs(20), async {
            let mut took = 0;
            while took < 15 {
                let message = feed.next().await.unwrap().unwrap();
                for e in message.events {
                    cursor = e.cursor.clone();
                    seen.push(e);
                    took += 1;
                }
                if seen.len() >= expected {
                    break;
                }
            }
        })
        .await;
        assert!(took.is_ok(), "stalled after {} events", seen.len());
        round += 1;
    }
    pushing.await.unwrap();
    assert_eq!(seen.len(), expected, "no repeats");
    let seqs: Vec<i64> = seen.iter().map(|e| e.cursor[1..].parse().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order");
    // Every household got one event per batch that changed it.
    for h in 1..=20 {
        let code = format!("HH-{h}");
        assert_eq!(seen.iter().filter(|e| e.household_code == code).count(), 10, "{code}");
    }
}

#[tokio::test]
async fn a_change_that_arrives_late_still_reaches_the_feed() {
    let app = TestApp::spawn().await;
    let (labour, vnpt) = setup(&app).await;
    push(
        &labour,
        header("2025-05", proto::BatchKind::Delta, "2025-05", "2025-05-01"),
        vec![category(household("HH-1", "24611", 1), proto::Category::NearPoor, "2025-05-01")],
    )
    .await
    .unwrap();
    // Recorded later, effective earlier: placed before the May state in the history.
    push(
        &labour,
        header("2025-03-late", proto::BatchKind::Delta, "2025-03", "2025-03-01"),
        vec![category(household("HH-1", "24611", 1), proto::Category::Other, "2025-03-01")],
    )
    .await
    .unwrap();
    let mut feed = vnpt.watch_changes("", 0).await.unwrap();
    let events = next_events(&mut feed, 2, Duration::from_secs(10)).await;
    let got: Vec<(proto::ChangeKind, &str, proto::Category, &str)> =
        events.iter().map(|e| (e.kind(), e.effective_date.as_str(), e.category(), e.batch_id.as_str())).collect();
    assert_eq!(
        got,
        [
            (proto::ChangeKind::CategoryChanged, "2025-05-01", proto::Category::NearPoor, "2025-05"),
            (proto::ChangeKind::CategoryChanged, "2025-03-01", proto::Category::Other, "2025-03-late"),
        ]
    );
    assert_eq!(events[1].previous_category(), proto::Category::Poor);
    // The change to OTHER would earn a grace to 2026-01-01, but the household is covered again
    // from May, within it: its support does not end, as every decision says.
    assert_eq!(events[1].support_ends, "");
    let later =
        vnpt.check_eligibility(proto::check_eligibility_request::Key::HouseholdCode("HH-1".into()), "2025-04-15").await;
    assert!(later.unwrap().eligible);
}

/// A reader catching up reads the next page while the current one is made ready. Over two
/// full pages and a part of one, then exactly two pages: every event arrives once and in
/// order, and a change pushed after the reader has caught up still reaches it.
#[tokio::test]
async fn a_reader_catching_up_over_many_pages_misses_and_repeats_nothing() {
    let page = telesub_server::domain::feed::PAGE as usize;
    for written in [2 * page + 7, 2 * page] {
        let app = TestApp::spawn().await;
        let (labour, vnpt) = setup(&app).await;
        // Events written straight into the table (the feed reads it as it is), after the two
        // enrolments' own events, if any.
        app.db
            .execute(&format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {written}) \
                 INSERT INTO feed_events (operator, enrollment_id, household_code, kind, effective_date, recorded_at) \
                 SELECT 'VNPT', i, 'HH-' || i, 'DETAILS_CHANGED', '2025-02-01', '2025-02-01T00:00:00Z' FROM n"
            ))
            .await
            .unwrap();
        let mut feed = vnpt.watch_changes("", 60).await.unwrap();
        let events = next_events(&mut feed, written, Duration::from_secs(30)).await;
        assert_eq!(events.len(), written, "no more than were written");
        let seqs: Vec<i64> = events.iter().map(|e| e.cursor[1..].parse().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order, none twice");
        let codes: std::collections::BTreeSet<&str> = events.iter().map(|e| e.household_code.as_str()).collect();
        assert_eq!(codes.len(), written, "each event once");
        // Caught up: the heartbeat says so; then a removal pushed now arrives.
        let beat = tokio::time::timeout(Duration::from_secs(5), feed.next()).await.unwrap().unwrap().unwrap();
        assert!(beat.events.is_empty() && beat.heartbeat_at.is_some(), "{beat:?}");
        push_death_of_hh2(&labour).await;
        let later = next_events(&mut feed, 1, Duration::from_secs(5)).await;
        assert_eq!(
            (later[0].kind(), later[0].household_code.as_str()),
            (proto::ChangeKind::Removed, "HH-2"),
            "{written}"
        );
        assert!(later[0].cursor[1..].parse::<i64>().unwrap() > *seqs.last().unwrap());
    }
}

/// Readers that go away while their feed catches up (its pages being read and made ready when
/// they leave) leave nothing behind: the hub's connections serve the next reader, which
/// catches up over every event in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_leaving_mid_catch_up_leave_the_connections_to_the_next() {
    let app = TestApp::spawn().await;
    let (_, vnpt) = setup(&app).await;
    let written = 20 * telesub_server::domain::feed::PAGE as usize;
    // Removals (whose pages read histories), written straight into the table.
    app.db
        .execute(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {written}) \
             INSERT INTO feed_events (operator, enrollment_id, household_code, kind, effective_date, \
             removal_reason, recorded_at) \
             SELECT 'VNPT', i, 'HH-' || i, 'REMOVED', '2025-03-01', 'OUT_OF_POVERTY', '2025-03-01T00:00:00Z' FROM n"
        ))
        .await
        .unwrap();
    for _ in 0..30 {
        let opening = std::time::Instant::now();
        let mut feed = Box::pin(loop {
            match vnpt.watch_changes("", 60).await {
                Ok(feed) => break feed,
                // The place of the feed left just before is given back when the hub sees it go.
                Err(e) if e.code() == Some(Code::ResourceExhausted) && opening.elapsed() < Duration::from_secs(10) => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(e) => panic!("{e:?}"),
            }
        });
        let first = tokio::time::timeout(Duration::from_secs(10), feed.next()).await.unwrap().unwrap().unwrap();
        assert!(!first.events.is_empty(), "{first:?}");
    }
    let started = std::time::Instant::now();
    vnpt.who_am_i().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "a call waited {:?} for a connection", started.elapsed());
    let mut feed = vnpt.watch_changes("", 60).await.unwrap();
    let events = next_events(&mut feed, written, Duration::from_secs(60)).await;
    let seqs: Vec<i64> = events.iter().map(|e| e.cursor[1..].parse().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order, none twice");
    assert_eq!(events.len(), written, "the table's events and no more");
    assert!(events.iter().all(|e| e.kind() == proto::ChangeKind::Removed));
}
