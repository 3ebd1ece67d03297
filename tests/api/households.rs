//! The household register through the API: the labour department pushes deltas and
//! snapshots; the register keeps every state with its dates.

use futures_util::stream;
use telesub_client::{Client, Error, proto};
use telesub_tests::TestApp;

/// A citizen ID for someone born in Đắk Nông (067) in `year`.
pub(crate) fn cid(n: u32, year: i32, female: bool) -> String {
    let century = if year >= 2000 { 2 } else { 0 } + u32::from(female);
    format!("067{century}{:02}{n:06}", year % 100)
}

pub(crate) fn member(id: String, name: &str, rel: proto::Relationship, year: i32) -> proto::HouseholdMember {
    proto::HouseholdMember { citizen_id: id, full_name: name.into(), relationship: rel.into(), birth_year: year }
}

/// A poor household of two in a commune, the head's ID built from `n`.
pub(crate) fn household(code: &str, commune: &str, n: u32) -> proto::HouseholdRecord {
    proto::HouseholdRecord {
        household_code: code.into(),
        effective_date: String::new(),
        change: Some(proto::household_record::Change::Upsert(proto::HouseholdData {
            category: proto::Category::Poor.into(),
            head_name: "Nguyễn Văn An".into(),
            commune_code: commune.into(),
            address: "Thôn 3".into(),
            certificate: Some(proto::Certificate {
                number: format!("{n}/GCN-HN.HCN"),
                issued_on: "2024-01-15".into(),
                issuing_unit_code: commune.into(),
            }),
            flags: Some(proto::HouseholdFlags { wants_device: true, ..Default::default() }),
            members: vec![
                member(cid(n, 1980, false), "Nguyễn Văn An", proto::Relationship::Head, 1980),
                member(cid(n, 1985, true), "Trần Thị Bình", proto::Relationship::Spouse, 1985),
            ],
        })),
    }
}

pub(crate) fn removal(code: &str, reason: proto::RemovalReason, date: &str) -> proto::HouseholdRecord {
    proto::HouseholdRecord {
        household_code: code.into(),
        effective_date: date.into(),
        change: Some(proto::household_record::Change::Removal(proto::Removal {
            reason: reason.into(),
            note: String::new(),
        })),
    }
}

pub(crate) fn header(id: &str, kind: proto::BatchKind, period: &str, date: &str) -> proto::BatchHeader {
    proto::BatchHeader {
        batch_id: id.into(),
        kind: kind.into(),
        review_period: period.into(),
        effective_date: date.into(),
        note: String::new(),
    }
}

pub(crate) async fn push(
    client: &Client,
    header: proto::BatchHeader,
    records: Vec<proto::HouseholdRecord>,
) -> Result<proto::BatchReceipt, Error> {
    client.push_batch(header, stream::iter(records)).await
}

fn data(v: &proto::HouseholdVersion) -> &proto::HouseholdData {
    v.data.as_ref().unwrap()
}

fn with(mut r: proto::HouseholdRecord, f: impl FnOnce(&mut proto::HouseholdData)) -> proto::HouseholdRecord {
    if let Some(proto::household_record::Change::Upsert(d)) = r.change.as_mut() {
        f(d);
    }
    r
}

fn fields(err: &Error) -> Vec<&str> {
    err.violations().iter().map(|v| v.field.as_str()).collect()
}

const DELTA: proto::BatchKind = proto::BatchKind::Delta;
const SNAPSHOT: proto::BatchKind = proto::BatchKind::Snapshot;

#[tokio::test]
async fn a_delta_adds_households_that_can_be_read_back() {
    let app = TestApp::spawn().await;
    let labour = app.client("DOLISA").await;
    let records = vec![household("HH-1", "24611", 1), household("HH-2", "24616", 2)];
    let receipt = push(&labour, header("2024-01-a", DELTA, "2024-01", "2024-01-01"), records).await.unwrap();
    assert_eq!((receipt.records, receipt.added, receipt.changed, receipt.removed, receipt.unchanged), (2, 2, 0, 0, 0));
    assert_eq!(receipt.pushed_by, "DOLISA");
    assert!(!receipt.replayed);
    assert_eq!(receipt.content_digest.len(), 64);

    let hh = labour.get_household("HH-1", "").await.unwrap();
    assert_eq!(hh.valid_from, "2024-01-01");
    assert_eq!(hh.valid_to, "");
    assert_eq!(hh.batch_id, "2024-01-a");
    assert_eq!((hh.district_code.as_str(), hh.province_code.as_str()), ("660", "67"));
    assert_eq!(hh.commune_name, "Phường Nghĩa Đức");
    assert_eq!(data(&hh).head_name, "Nguyễn Văn An");
    assert_eq!(data(&hh).members.len(), 2);
    let err = labour.get_household("HH-1", "2023-12-31").await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    assert!(matches!(labour.get_household("HH-9", "").await.unwrap_err(), Error::NotFound(_)));

    let ict = app.client("DOICT").await;
    assert_eq!(ict.get_batch("2024-01-a").await.unwrap(), receipt);
}

#[tokio::test]
async fn changes_and_removals_build_the_history() {
    let app = TestApp::spawn().await;
    let labour = app.client("DOLISA").await;
    let first = vec![household("HH-1", "24611", 1), household("HH-2", "24611", 2), household("HH-3", "24611", 3)];
    push(&labour, header("b1", DELTA, "2024-01", "2024-01-01"), first).await.unwrap();

    let near_poor = with(household("HH-1", "24611", 1), |d| d.category = proto::Category::NearPoor.into());
    let second = vec![
        near_poor,
        household("HH-2", "24611", 2),
        removal("HH-3", proto::RemovalReason::OutOfPoverty, "2024-03-01"),
    ];
    let receipt = push(&labour, header("b2", DELTA, "2024-02", "2024-02-01"), second).await.unwrap();
    assert_eq!((receipt.added, receipt.changed, receipt.removed, receipt.unchanged), (0, 1, 1, 1));

    let history = labour.household_history("HH-1").await.unwrap();
    let spans: Vec<(&str, &str)> =
        history.versions.iter().map(|v| (v.valid_from.as_str(), v.valid_to.as_str())).collect();
    assert_eq!(spans, [("2024-01-01", "2024-02-01"), ("2024-02-01", "")]);
    assert_eq!(data(&history.versions[0]).category(), proto::Category::Poor);
    assert_eq!(data(&history.versions[1]).category(), proto::Category::NearPoor);
    assert_eq!(data(&labour.get_household("HH-1", "2024-01-31").await.unwrap()).category(), proto::Category::Poor);
    assert_eq!(labour.household_history("HH-2").await.unwrap().versions.len(), 1, "an unchanged record adds no state");

    let removed = labour.get_household("HH-3", "2024-03-01").await.unwrap();
    assert_eq!(removed.removal_reason(), proto::RemovalReason::OutOfPoverty);
    assert_eq!(data(&removed).head_name, "Nguyễn Văn An", "a removal keeps the last data");
    let before = labour.get_household("HH-3", "2024-02-29").await.unwrap();
    assert_eq!(before.removal_reason(), proto::RemovalReason::Unspecified);

    // Removing it again: it is not on the list any more.
    let err = push(
        &labour,
        header("b3", DELTA, "2024-04", "2024-04-01"),
        vec![removal("HH-3", proto::RemovalReason::Deceased, "")],
    )
    .await
    .unwrap_err();
    assert_eq!(fields(&err), ["records[0] (HH-3).removal"]);
    // Back on the list.
    let back =
        push(&labour, header("b4", DELTA, "2024-05", "2024-05-01"), vec![household("HH-3", "24611", 3)]).await.unwrap();
    assert_eq!((back.added, back.changed), (0, 1));
    assert_eq!(labour.household_history("HH-3").await.unwrap().versions.len(), 3);
}

#[tokio::test]
async fn a_late_change_is_placed_in_the_history() {
    let app = TestApp::spawn().await;
    let labour = app.client("DOLISA").await;
    push(&labour, header("b1", DELTA, "2024-01", "2024-01-01"), vec![household("HH-1", "24611", 1)]).await.unwrap();
    let moved = with(household("HH-1", "24611", 1), |d| d.address = "Thôn 5".into());
    push(&labour, header("b2", DELTA, "2024-03", "2024-03-01"), vec![moved]).await.unwrap();

    // A change dated February arrives after the March one.
    let mut late = with(household("HH-1", "24611", 1), |d| d.category = proto::Category::NearPoor.into());
    late.effective_date = "2024-02-01".into();
    let receipt = push(&labour, header("b3", DELTA, "2024-02", "2024-04-10"), vec![late]).await.unwrap();
    assert_eq!(receipt.changed, 1);

    let history = labour.household_history("HH-1").await.unwrap();
    let spans: Vec<(&str, &str, &str)> =
        history.versions.iter().map(|v| (v.valid_from.as_str(), v.valid_to.as_str(), v.batch_id.as_str())).collect();
    assert_eq!(
        spans,
        [("2024-01-01", "2024-02-01", "b1"), ("2024-02-01", "2024-03-01", "b3"), ("2024-03-01", "", "b2")]
    );
    let feb = labour.get_household("HH-1", "2024-02-15").await.unwrap();
    assert_eq!(data(&feb).category(), proto::Category::NearPoor);
    let march = labour.get_household("HH-1", "2024-03-15").await.unwrap();
    assert_eq!((data(&march).category(), data(&march).address.as_str()), (proto::Category::Poor, "Thôn 5"));

    // A correction for the same day replaces that day's state.
    let mut correction = with(household("HH-1", "24611", 1), |d| d.category = proto::Category::SocialPolicy.into());
    correction.effective_date = "2024-02-01".into();
    push(&labour, header("b4", DELTA, "2024-02", "2024-04-11"), vec![correction]).await.unwrap();
    let history = labour.household_history("HH-1").await.unwrap();
    assert_eq!(history.versions.len(), 3);
    assert_eq!(data(&history.versions[1]).category(), proto::Category::SocialPolicy);
    assert_eq!(history.versions[1].batch_id, "b4");
}

#[tokio::test]
async fn a_snapshot_computes_the_delta_itself() {
    let app = TestApp::spawn().await;
    let labour = app.client("DOLISA").await;
    let year = vec![household("HH-1", "24611", 1), household("HH-2", "24611", 2), household("HH-3", "24611", 3)];
    let receipt = push(&labour, header("review-2023", SNAPSHOT, "2023", "2024-01-01"), year).await.unwrap();
    assert_eq!((receipt.added, receipt.removed), (3, 0));

    let next = vec![
        household("HH-1", "24611", 1),
        with(household("HH-2", "24611", 2), |d| d.category = proto::Category::NearPoor.into()),
        household("HH-4", "24611", 4),
    ];
    let receipt = push(&labour, header("review-2024", SNAPSHOT, "2024", "2025-01-01"), next).await.unwrap();
    assert_eq!((receipt.records, receipt.added, receipt.changed, receipt.removed, receipt.unchanged), (3, 1, 1, 1, 1));
    let gone = labour.get_household("HH-3", "2025-01-01").await.unwrap();
    assert_eq!(gone.removal_reason(), proto::RemovalReason::NotInReview);

    // A snapshot older than what the register holds is refused.
    let err = push(&labour, header("review-old", SNAPSHOT, "2022", "2023-01-01"), vec![household("HH-1", "24611", 1)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::FailedPrecondition(_)), "{err:?}");
    // A snapshot takes no removals, and no empty list.
    let err = push(
        &labour,
        header("s-bad", SNAPSHOT, "2025", "2026-01-01"),
        vec![removal("HH-1", proto::RemovalReason::Deceased, "")],
    )
    .await
    .unwrap_err();
    assert_eq!(fields(&err), ["records[0] (HH-1).removal"]);
    let err = push(&labour, header("s-empty", SNAPSHOT, "2025", "2026-01-01"), vec![]).await.unwrap_err();
    assert_eq!(fields(&err), ["records"]);
}

/// A review snapshot is complete as of its date: a late delta dated before it cannot keep a
/// household on the list that the review did not list, unless a later batch says so.
#[tokio::test]
async fn a_snapshot_settles_a_late_delta_dated_before_it() {
    let app = TestApp::spawn().await;
    let labour = app.client("DOLISA").await;
    let year = vec![household("HH-1", "24611", 1), household("HH-2", "24611", 2), household("HH-3", "24611", 3)];
    push(&labour, header("b0", DELTA, "2024-01", "2024-01-01"), year).await.unwrap();
    push(
        &labour,
        header("b1", DELTA, "2024-02", "2024-02-01"),
        vec![removal("HH-3", proto::RemovalReason::MovedAway, "2024-02-01")],
    )
    .await
    .unwrap();
    // The review lists HH-1 only: HH-2 is taken off the list.
    push(&labour, header("review-2024", SNAPSHOT, "2024", "2025-01-01"), vec![household("HH-1", "24611", 1)])
        .await
        .unwrap();
    // Late news about 2024: HH-9, new, from March; HH-3 back from April.
    let mut new = household("HH-9", "24611", 9);
    new.effective_date = "2024-03-01".into();
    let mut back = household("HH-3", "24611", 3);
    back.effective_date = "2024-04-01".into();
    let receipt = push(&labour, header("late-2024", DELTA, "2024-03", "2024-03-01"), vec![new, back]).await.unwrap();
    assert_eq!((receipt.added, receipt.changed), (1, 1), "{receipt:?}");

    let spans = |h: &proto::HouseholdHistory| -> Vec<(String, String, proto::RemovalReason)> {
        h.versions.iter().map(|v| (v.valid_from.clone(), v.valid_to.clone(), v.removal_reason())).collect()
    };
    let off = |from: &str, to: &str, r| (from.to_owned(), to.to_owned(), r);
    use proto::RemovalReason as R;
    assert_eq!(
        spans(&labour.household_history("HH-9").await.unwrap()),
        [off("2024-03-01", "2025-01-01", R::Unspecified), off("2025-01-01", "", R::NotInReview)]
    );
    assert_eq!(
        spans(&labour.household_history("HH-3").await.unwrap()),
        [
            off("2024-01-01", "2024-02-01", R::Unspecified),
            off("2024-02-01", "2024-04-01", R::MovedAway),
            off("2024-04-01", "2025-01-01", R::Unspecified),
            off("2025-01-01", "", R::NotInReview),
        ]
    );
    let on = labour.get_household("HH-9", "2024-06-01").await.unwrap();
    assert_eq!(on.removal_reason(), R::Unspecified);
    let after = labour.get_household("HH-9", "2025-02-01").await.unwrap();
    assert_eq!(after.removal_reason(), R::NotInReview);

    // Every path answers for HH-9 as for HH-2, which the same review left out.
    let vnpt = app.client("VNPT").await;
    for day in ["2024-06-01", "2025-02-01", "2026-02-01"] {
        let ask =
            |code: &str| vnpt.check_eligibility(proto::check_eligibility_request::Key::HouseholdCode(code.into()), day);
        let (nine, two) = (ask("HH-9").await.unwrap(), ask("HH-2").await.unwrap());
        assert_eq!(nine.eligible, two.eligible, "{day}: {nine:?} / {two:?}");
        let ends = |d: &proto::EligibilityDecision| {
            d.entitlements
                .iter()
                .map(|e| e.valid_to.clone())
                .chain(d.reasons.iter().map(|r| r.support_ended.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(ends(&nine), ends(&two), "{day}");
    }

    // A later batch may put it back.
    let mut again = household("HH-9", "24611", 9);
    again.effective_date = "2025-03-01".into();
    push(&labour, header("2025-03", DELTA, "2025-03", "2025-03-01"), vec![again]).await.unwrap();
    let back = labour.get_household("HH-9", "2025-03-15").await.unwrap();
    assert_eq!(back.removal_reason(), R::Unspecified);
}

#[tokio::test]
async fn the_same_batch_twice_changes_nothing_and_other_content_is_refused() {
    let app = TestApp::spawn().await;
    let labour = app.client("DOLISA").await;
    let records = vec![household("HH-1", "24611", 1), household("HH-2", "24611", 2)];
    let first = push(&labour, header("b1", DELTA, "2024-01", "2024-01-01"), records.clone()).await.unwrap();
    let again = push(&labour, header("b1", DELTA, "2024-01", "2024-01-01"), records.clone()).await.unwrap();
    assert!(again.replayed);
    assert_eq!(proto::BatchReceipt { replayed: false, ..again }, first);
    assert_eq!(labour.household_history("HH-1").await.unwrap().versions.len(), 1);

    let mut other = records;
    other[1] = household("HH-3", "24611", 3);
    let err = push(&labour, header("b1", DELTA, "2024-01", "2024-01-01"), other).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    assert!(matches!(labour.get_household("HH-3", "").await.unwrap_err(), Error::NotFound(_)));
}

#[tokio::test]
async fn a_batch_with_a_bad_record_changes_nothing_and_names_every_problem() {
    let app = TestApp::spawn().await;
    let labour = app.client("DOLISA").await;
    let records = vec![
        household("HH-1", "24611", 1),
        with(household("HH-2", "99999", 2), |d| d.members[0].citizen_id = "067080".into()),
        with(household("HH-3", "24611", 3), |d| d.members[1].birth_year = 1990),
        household("HH-1", "24611", 4),
        with(household("HH-5", "24611", 5), |d| {
            d.members[1] = member(cid(1, 1980, false), "Nguyễn Văn An", proto::Relationship::Spouse, 1980)
        }),
    ];
    let err = push(&labour, header("bad", DELTA, "2024-01", "2024-01-01"), records).await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    assert_eq!(
        fields(&err),
        [
            "records[1] (HH-2).upsert.commune_code",
            "records[1] (HH-2).upsert.certificate.issuing_unit",
            "records[1] (HH-2).upsert.members[0].citizen_id",
            "records[2] (HH-3).upsert.members[1].birth_year",
            "records[3] (HH-1).household_code",
            "records[4] (HH-5).upsert.members[1].citizen_id",
        ]
    );
    assert!(err.violations()[5].description.contains("records[0] (HH-1)"), "{:?}", err.violations()[5]);
    assert!(matches!(labour.get_household("HH-1", "").await.unwrap_err(), Error::NotFound(_)), "nothing applied");
    assert!(matches!(labour.get_batch("bad").await.unwrap_err(), Error::NotFound(_)));

    // The same batch id, corrected, goes through.
    let fixed = vec![household("HH-1", "24611", 1), household("HH-2", "24611", 2)];
    assert_eq!(push(&labour, header("bad", DELTA, "2024-01", "2024-01-01"), fixed).await.unwrap().added, 2);
}

#[tokio::test]
async fn a_refused_batch_can_be_pushed_again_at_once() {
    // A clerk's system retries as soon as it is told what was wrong: each push is answered on
    // its own merits, never "being received by another stream" for a stream that has ended.
    let app = TestApp::spawn().await;
    let labour = app.client("DOLISA").await;
    let bad = || vec![with(household("HH-1", "24611", 1), |d| d.members[0].citizen_id = "067080".into())];
    for round in 0..25 {
        let err = push(&labour, header("again", DELTA, "2024-01", "2024-01-01"), bad()).await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "round {round}: {err:?}");
    }
    let good = vec![household("HH-1", "24611", 1)];
    assert_eq!(push(&labour, header("again", DELTA, "2024-01", "2024-01-01"), good).await.unwrap().added, 1);
}

#[tokio::test]
async fn the_problems_listed_are_capped_and_counted() {
    let app = TestApp::spawn().await;
    let labour = app.client("DOLISA").await;
    let records: Vec<_> = (0..150)
        .map(|i| with(household(&format!("HH-{i}"), "24611", i), |d| d.commune_code = "00000".into()))
        .collect();
    let err = push(&labour, header("many", DELTA, "2024-01", "2024-01-01"), records).await.unwrap_err();
    let violations = err.violations();
    // As many as fit in a status (clients refuse metadata over 8 KiB), then the total.
    let listed = violations.len() - 1;
    assert!((30..100).contains(&listed), "{listed} listed");
    let bytes: usize = violations.iter().map(|v| v.field.len() + v.description.len()).sum();
    assert!(bytes < 7 * 1024, "{bytes} bytes of details");
    assert_eq!(violations[0].field, "records[0] (HH-0).upsert.commune_code");
    let summary = &violations[listed];
    assert_eq!(summary.field, "records");
    assert_eq!(summary.description, format!("150 problems in all; the first {listed} are listed"));
}

#[tokio::test]
async fn a_person_belongs_to_one_household_on_the_list() {
    let app = TestApp::spawn().await;
    let labour = app.client("DOLISA").await;
    push(&labour, header("b1", DELTA, "2024-01", "2024-01-01"), vec![household("HH-1", "24611", 1)]).await.unwrap();
    // The spouse of HH-1 heads a new household, but is still a member of HH-1.
    let split = with(household("HH-2", "24611", 2), |d| {
        d.members[1] = member(cid(1, 1985, true), "Trần Thị Bình", proto::Relationship::Spouse, 1985)
    });
    let err = push(&labour, header("b2", DELTA, "2024-02", "2024-02-01"), vec![split.clone()]).await.unwrap_err();
    assert_eq!(fields(&err), ["records[0] (HH-2).upsert.members[1].citizen_id"]);
    assert!(err.violations()[0].description.contains("HH-1"), "{:?}", err.violations()[0]);

    // Moving her out of HH-1 in the same batch is fine.
    let hh1_without = with(household("HH-1", "24611", 1), |d| {
        d.members.truncate(1);
    });
    let receipt = push(&labour, header("b2", DELTA, "2024-02", "2024-02-01"), vec![hh1_without, split]).await.unwrap();
    assert_eq!((receipt.added, receipt.changed), (1, 1));
    let found = labour.find_by_citizen_id(&cid(1, 1985, true), "2024-02-01").await.unwrap();
    assert_eq!(found.iter().map(|h| h.household_code.as_str()).collect::<Vec<_>>(), ["HH-2"]);
    let found = labour.find_by_citizen_id(&cid(1, 1985, true), "2024-01-15").await.unwrap();
    assert_eq!(found.iter().map(|h| h.household_code.as_str()).collect::<Vec<_>>(), ["HH-1"]);

    // HH-1, still on the list, once listed her: only HH-2, which lists her now, is in the way.
    let third = with(household("HH-3", "24611", 3), |d| {
        d.members[1] = member(cid(1, 1985, true), "Trần Thị Bình", proto::Relationship::Spouse, 1985)
    });
    let err = push(&labour, header("b3", DELTA, "2024-03", "2024-03-01"), vec![third]).await.unwrap_err();
    assert_eq!(fields(&err), ["records[0] (HH-3).upsert.members[1].citizen_id"]);
    assert!(err.violations()[0].description.contains("HH-2"), "{:?}", err.violations()[0]);
    assert!(!err.violations()[0].description.contains("HH-1"), "{:?}", err.violations()[0]);
    let found = labour.find_by_citizen_id(&cid(1, 1985, true), "2024-03-01").await.unwrap();
    assert_eq!(found.iter().map(|h| h.household_code.as_str()).collect::<Vec<_>>(), ["HH-2"]);
}

#[tokio::test]
async fn households_are_found_by_citizen_id_and_certificate() {
    let app = TestApp::spawn().await;
    let labour = app.client("DOLISA").await;
    push(
        &labour,
        header("b1", DELTA, "2024-01", "2024-01-01"),
        vec![household("HH-1", "24611", 1), household("HH-2", "24616", 2)],
    )
    .await
    .unwrap();
    let by_id = labour.find_by_citizen_id(&cid(2, 1985, true), "").await.unwrap();
    assert_eq!(by_id.len(), 1);
    assert_eq!(by_id[0].household_code, "HH-2");
    let by_cert = labour.find_by_certificate("1/GCN-HN.HCN", "").await.unwrap();
    assert_eq!(by_cert.iter().map(|h| h.household_code.as_str()).collect::<Vec<_>>(), ["HH-1"]);
    assert!(labour.find_by_citizen_id(&cid(9, 1980, false), "").await.unwrap().is_empty());
    assert!(labour.find_by_citizen_id(&cid(1, 1980, false), "2023-06-01").await.unwrap().is_empty());
    let err = labour.find_by_citizen_id("12345", "").await.unwrap_err();
    assert_eq!(fields(&err), ["citizen_id"]);
}

#[tokio::test]
async fn a_locality_reads_only_its_own_unit() {
    let app = TestApp::spawn().await;
    let labour = app.client("DOLISA").await;
    // 24611 lies in Gia Nghĩa (660), the locality's unit; 24616 in Đắk Song (661).
    push(
        &labour,
        header("b1", DELTA, "2024-01", "2024-01-01"),
        vec![household("HH-1", "24611", 1), household("HH-2", "24616", 2)],
    )
    .await
    .unwrap();
    let locality = app.client("GIANGHIA").await;
    assert_eq!(locality.get_household("HH-1", "").await.unwrap().household_code, "HH-1");
    assert_eq!(locality.household_history("HH-1").await.unwrap().versions.len(), 1);
    // A household of another unit reads exactly as one that does not exist (as seen: it was
    // PERMISSION_DENIED naming the unit, so a locality could tell what exists elsewhere).
    let answer = |err: Error, code: &str| (err.code(), err.rejection().unwrap().message.replace(code, "<code>"));
    let elsewhere = answer(locality.get_household("HH-2", "").await.unwrap_err(), "HH-2");
    let nowhere = answer(locality.get_household("HH-404", "").await.unwrap_err(), "HH-404");
    assert_eq!(elsewhere, nowhere);
    assert_eq!(elsewhere.0, Some(telesub_client::Code::NotFound));
    let elsewhere = answer(locality.household_history("HH-2").await.unwrap_err(), "HH-2");
    let nowhere = answer(locality.household_history("HH-404").await.unwrap_err(), "HH-404");
    assert_eq!(elsewhere, nowhere);
    // Not yet on the register on a date, elsewhere: still nothing to see.
    let elsewhere = answer(locality.get_household("HH-2", "2023-12-01").await.unwrap_err(), "HH-2");
    assert_eq!(elsewhere, nowhere);
    assert!(locality.get_household("HH-1", "2023-12-01").await.unwrap_err().to_string().contains("not yet"));
    // The audit trail keeps the real reason.
    let records = app.audit().await;
    let refused: Vec<_> = records.iter().filter(|r| r.entry.detail.contains("lies outside unit 660")).collect();
    assert_eq!(refused.len(), 2, "{records:#?}");
    assert!(refused.iter().all(|r| r.entry.outcome == "NOT_FOUND"));
    assert!(locality.find_by_citizen_id(&cid(2, 1980, false), "").await.unwrap().is_empty());
    assert_eq!(locality.find_by_citizen_id(&cid(1, 1980, false), "").await.unwrap().len(), 1);
    // Pushing is the labour department's alone.
    let err = push(&locality, header("x", DELTA, "2024-01", "2024-01-01"), vec![]).await.unwrap_err();
    assert!(matches!(err, Error::PermissionDenied(_)), "{err:?}");
}

#[tokio::test]
async fn batches_are_listed_newest_first() {
    let app = TestApp::spawn().await;
    let labour = app.client("DOLISA").await;
    for i in 1..=5 {
        push(
            &labour,
            header(&format!("b{i}"), DELTA, "2024-01", "2024-01-01"),
            vec![household(&format!("HH-{i}"), "24611", i)],
        )
        .await
        .unwrap();
    }
    let page =
        labour.list_batches(proto::ListBatchesRequest { page_size: 3, page_token: String::new() }).await.unwrap();
    assert_eq!(page.batches.iter().map(|b| b.batch_id.as_str()).collect::<Vec<_>>(), ["b5", "b4", "b3"]);
    let page = labour
        .list_batches(proto::ListBatchesRequest { page_size: 3, page_token: page.next_page_token })
        .await
        .unwrap();
    assert_eq!(page.batches.iter().map(|b| b.batch_id.as_str()).collect::<Vec<_>>(), ["b2", "b1"]);
    assert!(page.next_page_token.is_empty());
}

#[tokio::test]
async fn a_bad_header_is_refused_before_any_record() {
    let app = TestApp::spawn().await;
    let labour = app.client("DOLISA").await;
    let mut h = header("bad id!", proto::BatchKind::Unspecified, "2024-13", "2024-02-30");
    h.note = "x".repeat(600);
    let err = push(&labour, h, vec![household("HH-1", "24611", 1)]).await.unwrap_err();
    assert_eq!(
        fields(&err),
        ["header.batch_id", "header.kind", "header.review_period", "header.effective_date", "header.note"]
    );
}
