//! Generated histories: where two rules meet, every path gives one answer.
//!
//! Households get random sequences of changes (categories covered and not, removals for every
//! reason, additions back, some recorded after changes dated later), under policy versions added
//! later (without the year-end grace, then with it for leaving poverty only and without the
//! near-poor). Then, for every household and every day of eighteen months, the decisions of a
//! batch call are compared with themselves (an end of support is never before a day found
//! eligible), with the change feed's `support_ends`, with the reconciliation of a claim for each
//! month (its codes, and the amount it allows to the dong) and with the statistics' eligible
//! counts. Seeded: a failing seed is printed; `TELESUB_HISTORY_SEEDS=7,8` runs others.

use std::collections::{BTreeMap, HashMap};

use futures_util::StreamExt;
use telesub_client::{Client, Error, proto};
use telesub_tests::TestApp;
use time::{Date, Duration, macros::date};

use crate::households::{cid, header, household, removal};

const FIRST_DAY: Date = date!(2024 - 01 - 01);
const LAST_DAY: Date = date!(2025 - 06 - 30);
const HOUSEHOLDS: u32 = 30;

/// splitmix64: small, seeded, the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

const CATEGORIES: [proto::Category; 5] = [
    proto::Category::Poor,
    proto::Category::NearPoor,
    proto::Category::SocialPolicy,
    proto::Category::MeritoriousService,
    proto::Category::Other,
];
const REASONS: [proto::RemovalReason; 5] = [
    proto::RemovalReason::OutOfPoverty,
    proto::RemovalReason::NotInReview,
    proto::RemovalReason::Deceased,
    proto::RemovalReason::MovedAway,
    proto::RemovalReason::RecordedInError,
];

fn code(h: u32) -> String {
    format!("HH-G{h:04}")
}

fn fmt(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

fn upsert(h: u32, category: proto::Category, day: Date) -> proto::HouseholdRecord {
    let mut r = household(&code(h), "24611", h);
    r.effective_date = fmt(day);
    if let Some(proto::household_record::Change::Upsert(d)) = r.change.as_mut() {
        d.category = category.into();
    }
    r
}

/// Each household's changes, in the order the labour department records them.
fn plan(rng: &mut Rng) -> Vec<Vec<proto::HouseholdRecord>> {
    let days = (LAST_DAY - FIRST_DAY).whole_days() as u64;
    (1..=HOUSEHOLDS)
        .map(|h| {
            let mut changes = vec![upsert(h, rng.pick(&CATEGORIES[..4]), FIRST_DAY)];
            let mut dates: Vec<Date> =
                (0..1 + rng.below(5)).map(|_| FIRST_DAY + Duration::days(1 + rng.below(days) as i64)).collect();
            dates.sort();
            dates.dedup();
            let mut on_list = true;
            for day in dates {
                let change = if on_list && rng.below(2) == 0 {
                    on_list = false;
                    removal(&code(h), rng.pick(&REASONS), &fmt(day))
                } else {
                    on_list = true;
                    upsert(h, rng.pick(&CATEGORIES), day)
                };
                changes.push(change);
            }
            // Some changes arrive after one dated later.
            for i in 2..changes.len() {
                if rng.below(4) == 0 {
                    changes.swap(i - 1, i);
                }
            }
            changes
        })
        .collect()
}

/// Pushes one batch; records the register refuses (a late change it cannot place) are left
/// out and the rest pushed again.
async fn push(labour: &Client, id: &str, mut records: Vec<proto::HouseholdRecord>) {
    for attempt in 0..10 {
        if records.is_empty() {
            return;
        }
        let first = records.iter().map(|r| r.effective_date.clone()).min().unwrap_or_default();
        let batch = header(&format!("{id}-{attempt}"), proto::BatchKind::Delta, &first[..7], &first);
        match labour.push_batch(batch, futures_util::stream::iter(records.clone())).await {
            Ok(_) => return,
            Err(Error::InvalidArgument(r)) => {
                let bad: Vec<usize> = r
                    .violations
                    .iter()
                    .filter_map(|v| v.field.strip_prefix("records[")?.split(']').next()?.parse().ok())
                    .collect();
                assert!(!bad.is_empty(), "batch {id} refused without naming a record: {r}");
                records = records.into_iter().enumerate().filter(|(i, _)| !bad.contains(i)).map(|(_, r)| r).collect();
            }
            Err(e) => panic!("batch {id}: {e}"),
        }
    }
}

fn version(valid_from: &str, mobile: i64, grace: proto::GraceRule, near_poor: bool) -> proto::PolicyVersion {
    let mut categories =
        vec![proto::Category::MeritoriousService, proto::Category::SocialPolicy, proto::Category::Poor];
    if near_poor {
        categories.push(proto::Category::NearPoor);
    }
    proto::PolicyVersion {
        valid_from: valid_from.into(),
        note: "generated".into(),
        categories: categories.into_iter().map(Into::into).collect(),
        services: vec![proto::ServiceRule {
            service: proto::SupportedService::Mobile.into(),
            monthly_amount: mobile,
            listed_communes_only: false,
        }],
        subscriptions_per_household: 1,
        grace: Some(grace),
        non_usage_months: 2,
        ..Default::default()
    }
}

/// The mobile amount of each version, by the month it starts holding.
fn monthly_amount(first: Date) -> i64 {
    match first {
        d if d < date!(2024 - 07 - 01) => 60_000,
        d if d < date!(2025 - 01 - 01) => 70_000,
        _ => 80_000,
    }
}

/// What the decisions said of one household on one day.
#[derive(Debug, Clone)]
struct Said {
    eligible: bool,
    valid_to: Option<Date>,
    support_ended: Option<Date>,
}

fn date_of(s: &str) -> Option<Date> {
    (!s.is_empty()).then(|| {
        Date::parse(s, &time::format_description::well_known::Iso8601::DATE).unwrap_or_else(|e| panic!("{s}: {e}"))
    })
}

fn months() -> Vec<(Date, Date)> {
    let mut out = Vec::new();
    let mut first = FIRST_DAY;
    while first <= LAST_DAY {
        let next = if first.month() == time::Month::December {
            Date::from_calendar_date(first.year() + 1, time::Month::January, 1).unwrap()
        } else {
            Date::from_calendar_date(first.year(), first.month().next(), 1).unwrap()
        };
        out.push((first, next));
        first = next;
    }
    out
}

async fn one_seed(seed: u64) {
    let app = TestApp::spawn().await;
    let (labour, vnpt, ict) = (app.client("DOLISA").await, app.client("VNPT").await, app.client("DOICT").await);
    let mut rng = Rng(seed);

    // The versions: from July 2024 no grace at all; from 2025 the grace for leaving poverty only,
    // and near-poor households no longer covered.
    let no_grace = proto::GraceRule { until_end_of_year: false, ..Default::default() };
    ict.add_policy_version(version("2024-07-01", 70_000, no_grace, true)).await.unwrap();
    let some_grace = proto::GraceRule {
        until_end_of_year: true,
        removal_reasons: vec![proto::RemovalReason::OutOfPoverty.into()],
        on_category_change: false,
    };
    ict.add_policy_version(version("2025-01-01", 80_000, some_grace, false)).await.unwrap();

    // The register, its lines with VNPT from the first day, then the changes.
    let plans = plan(&mut rng);
    let rounds = plans.iter().map(Vec::len).max().unwrap_or(0);
    let round = |r: usize| plans.iter().filter_map(|p| p.get(r).cloned()).collect::<Vec<_>>();
    push(&labour, "g-0", round(0)).await;
    let lines = (1..=HOUSEHOLDS).map(|h| telesub_tools::monthly_generator::PlannedEnrollment {
        operator: "VNPT".into(),
        household_code: code(h),
        subscriber_citizen_id: cid(h, 1980, false),
        phone_number: format!("0915{h:06}"),
        start_date: FIRST_DAY,
    });
    telesub_tests::load_enrollments(&app.db, lines).await.unwrap();
    for r in 1..rounds {
        push(&labour, &format!("g-{r}"), round(r)).await;
    }

    // Every household on every day, in one batch call.
    let days: Vec<Date> = (0..=(LAST_DAY - FIRST_DAY).whole_days()).map(|n| FIRST_DAY + Duration::days(n)).collect();
    let questions: Vec<proto::CheckEligibilityRequest> = (1..=HOUSEHOLDS)
        .flat_map(|h| {
            days.iter().map(move |d| proto::CheckEligibilityRequest {
                key: Some(proto::check_eligibility_request::Key::HouseholdCode(code(h))),
                as_of: fmt(*d),
            })
        })
        .collect();
    let answers: Vec<proto::EligibilityDecision> = vnpt
        .check_eligibility_batch(futures_util::stream::iter(questions))
        .await
        .unwrap()
        .map(|a| a.unwrap())
        .collect()
        .await;
    let mut said: HashMap<(u32, Date), Said> = HashMap::new();
    for (i, a) in answers.iter().enumerate() {
        let (h, d) = (1 + (i / days.len()) as u32, days[i % days.len()]);
        let valid_to = a.entitlements.first().and_then(|e| date_of(&e.valid_to));
        let support_ended = a.reasons.first().and_then(|r| date_of(&r.support_ended));
        said.insert((h, d), Said { eligible: a.eligible, valid_to, support_ended });
    }
    let eligible = |h: u32, d: Date| said.get(&(h, d)).is_some_and(|s| s.eligible);

    // 1. The decisions agree with themselves.
    for h in 1..=HOUSEHOLDS {
        for &d in &days {
            let s = &said[&(h, d)];
            if s.eligible {
                // The entitlement ends no later than support: the first day not eligible.
                let end = days.iter().copied().find(|&x| x > d && !eligible(h, x));
                if let (Some(to), Some(end)) = (s.valid_to, end) {
                    assert!(to <= end, "seed {seed}, {} on {d}: valid to {to}, yet not eligible from {end}", code(h));
                }
                if let Some(to) = s.valid_to.filter(|to| *to <= LAST_DAY) {
                    assert!(!eligible(h, to) || to.day() == 1, "seed {seed}, {} on {d}: valid to {to}", code(h));
                }
            } else if let Some(ended) = s.support_ended {
                assert!(ended <= d, "seed {seed}, {} on {d}: support ended {ended}, after the day", code(h));
                for x in days.iter().copied().filter(|x| *x >= ended && *x <= d) {
                    assert!(
                        !eligible(h, x),
                        "seed {seed}, {} on {d}: support ended {ended}, yet eligible on {x}",
                        code(h)
                    );
                }
                if ended > FIRST_DAY {
                    assert!(
                        eligible(h, ended - Duration::days(1)),
                        "seed {seed}, {} on {d}: support ended {ended}, yet not supported the day before",
                        code(h)
                    );
                }
            }
        }
    }

    // 2. The feed's end of support is the decisions'.
    let mut feed = Box::pin(vnpt.watch_changes("", 1).await.unwrap());
    let mut events = Vec::new();
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(30), feed.next())
            .await
            .expect("the feed answers")
            .expect("the feed stays open")
            .unwrap();
        if message.heartbeat_at.is_some() && message.events.is_empty() {
            break;
        }
        events.extend(message.events);
    }
    let mut checked = 0;
    for e in &events {
        let Some(h) = e.household_code.strip_prefix("HH-G").and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Some(day) = date_of(&e.effective_date) else { continue };
        if !matches!(e.kind(), proto::ChangeKind::Removed | proto::ChangeKind::CategoryChanged) || day > LAST_DAY {
            continue;
        }
        match date_of(&e.support_ends) {
            Some(end) => {
                if end <= LAST_DAY {
                    assert!(!eligible(h, end), "seed {seed}: feed says support of {} ends {end}: {e:?}", code(h));
                }
                if end > FIRST_DAY && end <= LAST_DAY + Duration::days(1) && end > day {
                    assert!(
                        eligible(h, end - Duration::days(1)),
                        "seed {seed}: feed says support of {} ends {end}, the day before is not eligible: {e:?}",
                        code(h)
                    );
                }
            }
            None => assert!(eligible(h, day), "seed {seed}: feed says support of {} goes on: {e:?}", code(h)),
        }
        checked += 1;
    }
    assert!(checked > 0, "seed {seed}: no event to check");
    let supported = said.values().filter(|s| s.eligible).count();
    eprintln!("seed {seed}: {} decisions ({supported} eligible), {checked} feed events checked", said.len());

    // 3. Each month's claim reconciles as the decisions say, to the dong.
    for (n, (first, next)) in months().into_iter().enumerate() {
        let month_days: Vec<Date> = days.iter().copied().filter(|d| *d >= first && *d < next).collect();
        let in_month = month_days.len() as i64;
        let mut expected = BTreeMap::new();
        let lines: Vec<proto::MonthlyLine> = (1..=HOUSEHOLDS)
            .map(|h| {
                let supported: Vec<Date> = month_days.iter().copied().filter(|d| eligible(h, *d)).collect();
                let allowed = monthly_amount(first) * supported.len() as i64 / in_month;
                expected.insert(code(h), (supported, allowed));
                proto::MonthlyLine {
                    phone_number: format!("0915{h:06}"),
                    subscriber_citizen_id: cid(h, 1980, false),
                    household_code: code(h),
                    change: proto::SupportChange::Continuing.into(),
                    service: proto::SupportedService::Mobile.into(),
                    package_code: "ASXH60".into(),
                    tariff: 100_000,
                    // One dong more than the days allow: the hub must say exactly how much.
                    amount_claimed: allowed + 1,
                    days_of_service: in_month as i32,
                    used: true,
                    ..Default::default()
                }
            })
            .collect();
        let period = format!("{:04}-{:02}", first.year(), u8::from(first.month()));
        let header =
            proto::MonthlyUpdateHeader { period: period.clone(), update_id: format!("g-{n}"), ..Default::default() };
        vnpt.submit_monthly_update(header, futures_util::stream::iter(lines)).await.unwrap();
        let page = vnpt
            .list_discrepancies(proto::ListDiscrepanciesRequest {
                update_id: format!("g-{n}"),
                include_ok: true,
                page_size: 1_000,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page.lines.len(), HOUSEHOLDS as usize);
        for line in page.lines {
            let household = line.line.as_ref().unwrap().household_code.clone();
            let (supported, allowed) = &expected[&household];
            let codes: Vec<proto::DiscrepancyCode> = line.discrepancies.iter().map(|d| d.code()).collect();
            let context =
                format!("seed {seed}, {household} in {period}: eligible {} days, got {codes:?}", supported.len());
            use proto::DiscrepancyCode as C;
            if supported.is_empty() {
                assert!(
                    codes.iter().any(|c| matches!(c, C::NotEligible | C::EligibilityEnded | C::BeforeStart)),
                    "{context}"
                );
                continue;
            }
            assert!(!codes.contains(&C::NotEligible) && !codes.contains(&C::BeforeStart), "{context}");
            let ends_early = *supported.last().unwrap() < next - Duration::days(1);
            assert_eq!(codes.contains(&C::EligibilityEnded), ends_early, "{context}");
            let over = line.discrepancies.iter().find(|d| d.code() == C::OverCap);
            assert_eq!(over.map(|d| d.allowed_amount), Some(*allowed), "{context}");
        }

        // 4. The statistics count the eligible ones.
        let stats = ict
            .get_programme_statistics(proto::GetProgrammeStatisticsRequest {
                period: period.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
        let total = stats.by_category.iter().find(|r| r.category() == proto::Category::Unspecified).unwrap();
        let last = next - Duration::days(1);
        let count = (1..=HOUSEHOLDS).filter(|h| eligible(*h, last)).count() as i64;
        assert_eq!(total.eligible, count, "seed {seed}: households eligible on {last}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_gives_one_answer_on_generated_histories() {
    let seeds: Vec<u64> = match std::env::var("TELESUB_HISTORY_SEEDS") {
        Ok(list) => list.split(',').map(|s| s.trim().parse().expect("a seed")).collect(),
        Err(_) => vec![1, 2, 3],
    };
    for seed in seeds {
        eprintln!("generated histories, seed {seed}");
        one_seed(seed).await;
    }
}

/// The two cases as seen. A household whose category stops being covered on 2024-04-01 (a
/// grace to the year's end starts) and which moves away on 2024-08-01 is supported until
/// 2024-08-01, not 2025; a household that left poverty on 2024-03-01, under a version with the
/// grace, keeps it to 2025-01-01 although a version without grace holds from 2024-07-01.
#[tokio::test]
async fn a_later_removal_ends_a_grace_and_a_later_version_keeps_an_earned_one() {
    let app = TestApp::spawn().await;
    let (labour, vnpt, ict) = (app.client("DOLISA").await, app.client("VNPT").await, app.client("DOICT").await);
    let no_grace = proto::GraceRule { until_end_of_year: false, ..Default::default() };
    ict.add_policy_version(version("2024-07-01", 70_000, no_grace, true)).await.unwrap();
    push(
        &labour,
        "start",
        vec![upsert(1, proto::Category::Poor, FIRST_DAY), upsert(2, proto::Category::Poor, FIRST_DAY)],
    )
    .await;
    let lines = (1..=2).map(|h| telesub_tools::monthly_generator::PlannedEnrollment {
        operator: "VNPT".into(),
        household_code: code(h),
        subscriber_citizen_id: cid(h, 1980, false),
        phone_number: format!("0915{h:06}"),
        start_date: FIRST_DAY,
    });
    telesub_tests::load_enrollments(&app.db, lines).await.unwrap();
    push(
        &labour,
        "changes",
        vec![
            upsert(1, proto::Category::Other, date!(2024 - 04 - 01)),
            removal(&code(2), proto::RemovalReason::OutOfPoverty, "2024-03-01"),
        ],
    )
    .await;
    push(&labour, "moved", vec![removal(&code(1), proto::RemovalReason::MovedAway, "2024-08-01")]).await;

    let check = |h: u32, day: &'static str| {
        let vnpt = vnpt.clone();
        async move {
            let key = proto::check_eligibility_request::Key::HouseholdCode(code(h));
            vnpt.check_eligibility(key, day).await.unwrap()
        }
    };
    let before = check(1, "2024-07-15").await;
    assert!(before.eligible);
    assert_eq!(before.entitlements[0].valid_to, "2024-08-01");
    let after = check(1, "2024-08-15").await;
    assert!(!after.eligible);
    assert_eq!(after.reasons[0].code(), proto::ReasonCode::Removed);
    assert_eq!(after.reasons[0].support_ended, "2024-08-01");

    // (An entitlement under the first version runs to the day the next takes over.)
    assert_eq!(check(2, "2024-06-30").await.entitlements[0].valid_to, "2024-07-01");
    for day in ["2024-09-01", "2024-12-31"] {
        let d = check(2, day).await;
        assert!(d.eligible, "HH-G0002 on {day}: {d:?}");
        assert_eq!(d.entitlements[0].valid_to, "2025-01-01");
    }
    let ended = check(2, "2025-01-01").await;
    assert_eq!((ended.eligible, ended.reasons[0].support_ended.as_str()), (false, "2025-01-01"));

    // The feed says the same.
    let mut feed = Box::pin(vnpt.watch_changes("", 1).await.unwrap());
    let mut ends = BTreeMap::new();
    loop {
        let message = feed.next().await.unwrap().unwrap();
        if message.events.is_empty() {
            break;
        }
        for e in message.events {
            if e.kind() == proto::ChangeKind::Removed {
                ends.insert(e.household_code.clone(), e.support_ends.clone());
            }
        }
    }
    assert_eq!(ends.get(&code(1)).map(String::as_str), Some("2024-08-01"));
    assert_eq!(ends.get(&code(2)).map(String::as_str), Some("2025-01-01"));
}
