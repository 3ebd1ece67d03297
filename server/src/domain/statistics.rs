//! The programme's statistics for a month and a unit, computed from the stored data: by
//! category of household (households on the list, eligible — supported that day by the rule
//! decisions follow, so also households in a grace after they stopped qualifying —, lines
//! running, device places and hand-overs) and by operator (lines running; subscribers and amounts claimed and
//! confirmed from the month's lists; discrepancies by code), each with the month before.
//! "On the list" and "running" are counted on the last day of each month (today, for the month
//! under way); households and lines count in the commune of the household's state that day.
//! The database counts for the unit's communes; a public form suppresses small counts.

use super::context::ServiceContext;
use std::{collections::BTreeMap, sync::Arc};

use time::{Date, Duration, OffsetDateTime};

use super::clock::Clock;
use super::{
    DomainError, Violations,
    eligibility::QueryKind,
    household::{Category, format_date},
    member::{Caller, Role, UnitCode},
    policy::{PolicyRegistry, PolicyTable},
    reconciliation::{Code, ListStatus, check_period},
    support,
    unit_registry::UnitRegistry,
    units::{UnitLevel, UnitTable},
};
use crate::domain::ports::{
    RegisterStore, StatisticsStore,
    statistics::{DeviceCount, EnrolledCount, HouseholdCount, LineCount},
};

/// The public table's default threshold, and the least a caller may ask for.
pub const DEFAULT_THRESHOLD: i64 = 10;
pub const MIN_THRESHOLD: i64 = 5;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CategoryFigures {
    /// `None` for the totals.
    pub category: Option<Category>,
    pub households: i64,
    pub eligible: i64,
    pub enrolled: i64,
    pub devices_allocated: i64,
    pub devices_handed_over: i64,
    pub households_before: i64,
    pub eligible_before: i64,
    pub enrolled_before: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperatorFigures {
    /// `None` for the totals.
    pub operator: Option<String>,
    pub enrolled: i64,
    pub claimed: i64,
    pub amount_claimed: i64,
    pub confirmed: i64,
    pub amount_confirmed: i64,
    pub discrepancies: BTreeMap<Code, i64>,
    pub enrolled_before: i64,
    pub claimed_before: i64,
    pub amount_claimed_before: i64,
    pub confirmed_before: i64,
    pub amount_confirmed_before: i64,
    /// `RECONCILED` or `CONFIRMED`: the operator's list for the month.
    pub list_status: Option<ListStatus>,
}

#[derive(Debug, Clone)]
pub struct Statistics {
    pub period: String,
    pub previous_period: String,
    pub unit_code: String,
    pub unit_name: String,
    pub as_of: Date,
    pub policy_version: i64,
    pub by_category: Vec<CategoryFigures>,
    pub by_operator: Vec<OperatorFigures>,
    pub computed_at: OffsetDateTime,
}

/// The public table: column names and rows of text cells.
#[derive(Debug, Clone)]
pub struct PublicTable {
    pub threshold: i64,
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
    /// What the marks in the cells mean.
    pub legend: String,
}

/// The mark of a cell hidden so that a small count cannot be worked out from the others (or
/// an amount resting on a hidden count): it says nothing of its value.
pub const HIDDEN: &str = "x";

/// The public table's columns.
pub const PUBLIC_COLUMNS: [&str; 12] = [
    "view",
    "name",
    "households",
    "eligible",
    "enrolled",
    "devices_allocated",
    "devices_handed_over",
    "subscribers_claimed",
    "amount_claimed",
    "subscribers_confirmed",
    "amount_confirmed",
    "enrolled_before",
];

fn line_codes(l: &LineCount) -> [(Code, i64); 10] {
    [
        (Code::NotEligible, l.not_eligible),
        (Code::EligibilityEnded, l.eligibility_ended),
        (Code::BeforeStart, l.before_start),
        (Code::OverCap, l.over_cap),
        (Code::NotEnrolled, l.not_enrolled),
        (Code::EnrolmentMismatch, l.enrolment_mismatch),
        (Code::DuplicateWithinOperator, l.duplicate_within_operator),
        (Code::DuplicateAcrossOperators, l.duplicate_across_operators),
        (Code::NonUsage, l.non_usage),
        (Code::UnknownSubscriber, l.unknown_subscriber),
    ]
}

/// The first day of the month before `first`.
fn month_before(first: Date) -> Date {
    let (y, m) = (first.year(), u8::from(first.month()));
    let (y, m) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
    Date::from_calendar_date(y, time::Month::try_from(m).expect("1 to 12"), 1).expect("a first day")
}

/// How long figures kept by [`StatisticsService::compute_kept`] are answered as they are.
pub const KEPT_FRESH: Duration = Duration::minutes(5);
/// How long they are answered at most, while counted again.
pub const KEPT_AT_MOST: Duration = Duration::hours(1);
/// Months and units kept at most.
const KEPT_MOST: usize = 256;

/// A month and a unit (`None`: the province).
type KeptKey = (String, Option<UnitCode>);

#[derive(Debug, Default)]
struct Kept {
    figures: std::collections::HashMap<KeptKey, Statistics>,
    /// Those being counted again.
    refreshing: std::collections::HashSet<KeptKey>,
}

/// A computation's inputs, checked.
#[derive(Debug)]
struct Plan {
    period: String,
    previous_period: String,
    day: Date,
    before_day: Date,
    unit: Option<UnitCode>,
    policy: Arc<PolicyTable>,
    units: Arc<UnitTable>,
}

#[derive(Debug, Clone)]
pub struct StatisticsService {
    register_store: Arc<dyn RegisterStore>,
    statistics_store: Arc<dyn StatisticsStore>,
    units: Arc<UnitRegistry>,
    policy: Arc<PolicyRegistry>,
    clock: Clock,
    kept: Arc<std::sync::Mutex<Kept>>,
}

impl StatisticsService {
    /// Reads households' histories through the context's register (the hub's read model).
    pub fn new(context: &ServiceContext) -> Self {
        Self {
            register_store: context.register.clone(),
            statistics_store: context.store.clone(),
            units: context.units.clone(),
            policy: context.policy.clone(),
            clock: context.clock.clone(),
            kept: Arc::default(),
        }
    }

    /// The unit a caller reads: a locality its own (or a unit within it) — its own when it
    /// names none; `None` is the province.
    fn scope(
        caller: Option<&Caller>,
        asked: Option<UnitCode>,
        units: &UnitTable,
        day: Date,
    ) -> Result<Option<UnitCode>, DomainError> {
        let Some(caller) = caller.filter(|c| c.member.role == Role::Locality) else { return Ok(asked) };
        let Some(own) = caller.member.unit.clone() else {
            return Err(DomainError::PermissionDenied(format!("{} has no unit to read", caller.member.code)));
        };
        match asked {
            None => Ok(Some(own)),
            Some(u) if units.within_on(u.as_str(), &own, day) => Ok(Some(u)),
            Some(u) => Err(DomainError::PermissionDenied(format!(
                "{} reads the statistics of its own unit {own} only, not {u}",
                caller.member.code
            ))),
        }
    }

    /// The figures of `period` for `unit` (empty: the province). `caller` is `None` for the
    /// public form, which any member reads for any unit.
    pub async fn compute(&self, caller: Option<&Caller>, period: &str, unit: &str) -> Result<Statistics, DomainError> {
        let plan = self.plan(caller, period, unit).await?;
        self.count(&plan).await
    }

    /// [`Self::compute`], answered from the figures kept for the same month and unit when they
    /// are younger than [`KEPT_FRESH`]; figures older than that but younger than [`KEPT_AT_MOST`]
    /// are answered too while the hub counts them again in the background (one count per month
    /// and unit at a time). For people's pages, which say when their figures were computed: a
    /// province's month takes seconds to count on a million households, and a page should not.
    /// Who may read which unit is checked on every call, as by [`Self::compute`].
    pub async fn compute_kept(
        &self,
        caller: Option<&Caller>,
        period: &str,
        unit: &str,
    ) -> Result<Statistics, DomainError> {
        let plan = self.plan(caller, period, unit).await?;
        let key = (plan.period.clone(), plan.unit.clone());
        let now = self.clock.now();
        let (kept, refresh) = {
            let mut kept = self.kept.lock().expect("kept statistics");
            match kept.figures.get(&key) {
                Some(s) if now - s.computed_at < KEPT_FRESH => return Ok(s.clone()),
                Some(s) if now - s.computed_at < KEPT_AT_MOST => {
                    let found = s.clone();
                    (Some(found), kept.refreshing.insert(key.clone()))
                }
                _ => (None, false),
            }
        };
        if let Some(found) = kept {
            if refresh {
                let service = self.clone();
                tokio::spawn(async move {
                    match service.count(&plan).await {
                        Ok(s) => service.keep(key, s),
                        Err(e) => {
                            tracing::warn!(period = %key.0, error = %crate::ErrorChain(&e), "statistics not counted again");
                            service.kept.lock().expect("kept statistics").refreshing.remove(&key);
                        }
                    }
                });
            }
            return Ok(found);
        }
        let counted = self.count(&plan).await?;
        self.keep(key, counted.clone());
        Ok(counted)
    }

    fn keep(&self, key: KeptKey, s: Statistics) {
        let mut kept = self.kept.lock().expect("kept statistics");
        kept.refreshing.remove(&key);
        if kept.figures.len() >= KEPT_MOST {
            // Months and units asked for once, long ago, make room.
            let oldest = kept.figures.iter().min_by_key(|(_, s)| s.computed_at).map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                kept.figures.remove(&oldest);
            }
        }
        kept.figures.insert(key, s);
    }

    /// The refusal of a request for figures with something wrong beside its period and unit
    /// (`field`, such as an export's format), naming with it whatever is wrong with those too.
    pub async fn refuse(&self, period: &str, unit: &str, field: &str, description: &str) -> DomainError {
        let mut v = Violations::new();
        v.add(field, description);
        self.plan_after(v, None, period, unit).await.err().unwrap_or_else(|| DomainError::invalid(field, description))
    }

    /// What a computation of `period` for `unit` counts, after the caller's right to read it
    /// and the input are checked.
    async fn plan(&self, caller: Option<&Caller>, period: &str, unit: &str) -> Result<Plan, DomainError> {
        self.plan_after(Violations::new(), caller, period, unit).await
    }

    /// [`Self::plan`], with `v` holding what the caller already found wrong.
    async fn plan_after(
        &self,
        mut v: Violations,
        caller: Option<&Caller>,
        period: &str,
        unit: &str,
    ) -> Result<Plan, DomainError> {
        let policy = self.policy.table().await?;
        let units = self.units.table().await?;
        let bounds = v.check("period", check_period(period.trim(), policy.first_day(), self.clock.today()));
        let asked = match unit.trim() {
            "" => None,
            u => v.check("unit_code", UnitCode::parse(u)),
        };
        v.finish()?;
        let (period, first, next) = bounds.expect("checked");
        // The month's last day, or today while the month runs.
        let day = (next - Duration::days(1)).min(self.clock.today());
        let before_first = month_before(first);
        let before_day = first - Duration::days(1);
        let previous_period = format!("{:04}-{:02}", before_first.year(), u8::from(before_first.month()));
        if let Some(u) = &asked {
            match units.on(u.as_str(), day) {
                Some(found) if found.level != UnitLevel::Province => {}
                Some(_) => {
                    return Err(DomainError::invalid(
                        "unit_code",
                        format!("{u} is a province: leave the unit empty for the whole province"),
                    ));
                }
                None => {
                    return Err(DomainError::invalid(
                        "unit_code",
                        format!("{u} is not a district or commune on {}", format_date(day)),
                    ));
                }
            }
        }
        let unit = Self::scope(caller, asked, &units, day)?;
        Ok(Plan { period, previous_period, day, before_day, unit, policy, units })
    }

    /// The figures a plan asks for.
    async fn count(&self, plan: &Plan) -> Result<Statistics, DomainError> {
        let Plan { period, previous_period, day, before_day, unit, policy, units } = plan;
        let (day, before_day) = (*day, *before_day);
        // The name of the unit the figures are for: a locality that named none reads its own.
        let unit_name = match unit {
            None => "Toàn tỉnh".to_owned(),
            Some(u) => units.on(u.as_str(), day).map_or_else(|| u.to_string(), |found| found.name.clone()),
        };
        let in_force = policy
            .in_force(day)
            .ok_or_else(|| DomainError::FailedPrecondition(format!("no policy is in force on {}", format_date(day))))?;
        let covered_before = policy.in_force(before_day).map(|p| p.rules.categories.clone()).unwrap_or_default();
        // The unit's communes on either day (a commune's district may have changed).
        let scope: Option<std::collections::BTreeSet<String>> = unit.as_ref().map(|u| {
            units
                .iter()
                .filter(|c| c.level == UnitLevel::Commune)
                .map(|c| c.code.as_str().to_owned())
                .filter(|c| units.within_on(c, u, day) || units.within_on(c, u, before_day))
                .collect()
        });
        let communes = scope.as_ref().map(|codes| serde_json::to_string(codes).expect("codes serialise"));
        let communes = communes.as_deref();
        let (households, enrolled, lines, devices, grace, grace_before) = tokio::try_join!(
            async { Ok::<_, DomainError>(self.statistics_store.household_counts(day, before_day, communes).await?) },
            async { Ok(self.statistics_store.enrolled_counts(day, before_day, communes).await?) },
            async { Ok(self.statistics_store.line_counts(period, previous_period, communes).await?) },
            async { Ok(self.statistics_store.device_counts(day, communes).await?) },
            self.in_grace(day, policy, communes, scope.as_ref(), units, unit.as_ref()),
            self.in_grace(before_day, policy, communes, scope.as_ref(), units, unit.as_ref()),
        )?;
        let by_category = category_rows(
            households.iter(),
            enrolled.iter(),
            devices.iter(),
            &in_force.rules.categories,
            &covered_before,
            (&grace, &grace_before),
        );
        let by_operator = operator_rows(enrolled.iter(), lines.iter(), period);
        Ok(Statistics {
            period: period.clone(),
            previous_period: previous_period.clone(),
            unit_code: unit.as_ref().map(|u| u.to_string()).unwrap_or_default(),
            unit_name,
            as_of: day,
            policy_version: in_force.version,
            by_category,
            by_operator,
            computed_at: self.clock.now(),
        })
    }

    /// Households supported on `day` without qualifying that day (in a grace after they
    /// stopped, by the one rule decisions follow), by the category of their state that day, in
    /// the unit: what "eligible" counts beside the households on the list in covered categories.
    async fn in_grace(
        &self,
        day: Date,
        policy: &PolicyTable,
        communes: Option<&str>,
        scope: Option<&std::collections::BTreeSet<String>>,
        units: &UnitTable,
        unit: Option<&UnitCode>,
    ) -> Result<BTreeMap<Category, i64>, DomainError> {
        // A grace runs at most to the next 1 January: only a stop after this year's first day
        // can still hold support on `day`.
        let since = Date::from_calendar_date(day.year(), time::Month::January, 1).expect("a first day");
        let covered_now = |c: &Category| policy.in_force(day).is_some_and(|p| p.covers(*c));
        let mut dropped: Vec<Category> = policy
            .iter()
            .filter(|v| v.valid_from <= day && v.valid_to.is_none_or(|to| to > since))
            .flat_map(|v| v.rules.categories.iter().copied())
            .filter(|c| !covered_now(c))
            .collect();
        dropped.sort();
        dropped.dedup();
        let dropped = (!dropped.is_empty()).then(|| {
            serde_json::to_string(&dropped.iter().map(|c| c.as_str()).collect::<Vec<_>>()).expect("names serialise")
        });
        let codes = self.statistics_store.grace_candidates(since, day, dropped.as_deref(), communes).await?;
        let mut counts = BTreeMap::new();
        for chunk in codes.chunks(10_000) {
            for (code, histories) in
                self.register_store.histories_matching(QueryKind::HouseholdCode, chunk, true).await?
            {
                let Some(h) = histories.iter().find(|h| h.code == code) else { continue };
                if support::qualifies_on(&h.states, policy, day) {
                    continue;
                }
                let Some(state) = h.state_on(day) else { continue };
                let inside = match (scope, unit) {
                    (Some(codes), Some(u)) => {
                        codes.contains(&state.facts.commune_code) && units.within_on(&state.facts.commune_code, u, day)
                    }
                    _ => true,
                };
                if inside && support::on(&support::periods(&h.states, policy), day).is_some() {
                    *counts.entry(state.facts.category).or_default() += 1;
                }
            }
        }
        Ok(counts)
    }

    /// The public form: the same figures with counts under `threshold` suppressed.
    pub async fn public(
        &self,
        period: &str,
        unit: &str,
        threshold: i32,
    ) -> Result<(Statistics, PublicTable), DomainError> {
        let threshold = match i64::from(threshold) {
            0 => DEFAULT_THRESHOLD,
            t if t < MIN_THRESHOLD => {
                return Err(DomainError::invalid(
                    "threshold",
                    format!(
                        "{t} would show counts small enough to single a household out: use {MIN_THRESHOLD} or more"
                    ),
                ));
            }
            t => t,
        };
        let stats = self.compute(None, period, unit).await?;
        let table = public_table(&stats, threshold);
        Ok((stats, table))
    }
}

fn category_rows<'a>(
    households: impl Iterator<Item = &'a HouseholdCount>,
    enrolled: impl Iterator<Item = &'a EnrolledCount>,
    devices: impl Iterator<Item = &'a DeviceCount>,
    covered: &[Category],
    covered_before: &[Category],
    (grace, grace_before): (&BTreeMap<Category, i64>, &BTreeMap<Category, i64>),
) -> Vec<CategoryFigures> {
    let mut rows: BTreeMap<Category, CategoryFigures> = BTreeMap::new();
    let row = |rows: &mut BTreeMap<Category, CategoryFigures>, name: &str| -> Option<Category> {
        let c = Category::parse(name).ok()?;
        rows.entry(c).or_insert_with(|| CategoryFigures { category: Some(c), ..Default::default() });
        Some(c)
    };
    for h in households {
        if let Some(c) = row(&mut rows, &h.category) {
            let r = rows.get_mut(&c).expect("just added");
            r.households += h.now;
            r.households_before += h.before;
            if covered.contains(&c) {
                r.eligible += h.now;
            }
            if covered_before.contains(&c) {
                r.eligible_before += h.before;
            }
        }
    }
    // Supported in a grace, off the list or in a category no longer covered.
    for (c, n) in grace {
        rows.entry(*c).or_insert_with(|| CategoryFigures { category: Some(*c), ..Default::default() }).eligible += n;
    }
    for (c, n) in grace_before {
        rows.entry(*c)
            .or_insert_with(|| CategoryFigures { category: Some(*c), ..Default::default() })
            .eligible_before += n;
    }
    for e in enrolled {
        if let Some(c) = row(&mut rows, &e.category) {
            let r = rows.get_mut(&c).expect("just added");
            r.enrolled += e.now;
            r.enrolled_before += e.before;
        }
    }
    for d in devices {
        if let Some(c) = row(&mut rows, &d.category) {
            let r = rows.get_mut(&c).expect("just added");
            r.devices_allocated += d.allocated;
            r.devices_handed_over += d.handed_over;
        }
    }
    // Categories with nothing to show are left out.
    let mut out: Vec<CategoryFigures> = rows
        .into_values()
        .filter(|r| CategoryFigures { category: None, ..r.clone() } != CategoryFigures::default())
        .collect();
    let total = out.iter().fold(CategoryFigures::default(), |mut t, r| {
        t.households += r.households;
        t.eligible += r.eligible;
        t.enrolled += r.enrolled;
        t.devices_allocated += r.devices_allocated;
        t.devices_handed_over += r.devices_handed_over;
        t.households_before += r.households_before;
        t.eligible_before += r.eligible_before;
        t.enrolled_before += r.enrolled_before;
        t
    });
    out.push(total);
    out
}

fn operator_rows<'a>(
    enrolled: impl Iterator<Item = &'a EnrolledCount>,
    lines: impl Iterator<Item = &'a LineCount>,
    period: &str,
) -> Vec<OperatorFigures> {
    let mut rows: BTreeMap<String, OperatorFigures> = BTreeMap::new();
    fn row<'r>(rows: &'r mut BTreeMap<String, OperatorFigures>, name: &str) -> &'r mut OperatorFigures {
        rows.entry(name.to_owned())
            .or_insert_with(|| OperatorFigures { operator: Some(name.to_owned()), ..Default::default() })
    }
    for e in enrolled {
        let r = row(&mut rows, &e.operator);
        r.enrolled += e.now;
        r.enrolled_before += e.before;
    }
    for l in lines {
        let (confirmed, amount_confirmed) = match (l.status, l.confirmed_scope.as_deref()) {
            (ListStatus::Confirmed, Some("OK_LINES")) => (l.ok_claims, l.ok_amount),
            (ListStatus::Confirmed, _) => (l.claims, l.amount),
            _ => (0, 0),
        };
        let r = row(&mut rows, &l.operator);
        if l.period == period {
            r.claimed += l.claims;
            r.amount_claimed += l.amount;
            r.confirmed += confirmed;
            r.amount_confirmed += amount_confirmed;
            for (code, n) in line_codes(l) {
                if n > 0 {
                    *r.discrepancies.entry(code).or_default() += n;
                }
            }
            if r.list_status != Some(ListStatus::Confirmed) {
                r.list_status = Some(l.status);
            }
        } else {
            r.claimed_before += l.claims;
            r.amount_claimed_before += l.amount;
            r.confirmed_before += confirmed;
            r.amount_confirmed_before += amount_confirmed;
        }
    }
    let mut out: Vec<OperatorFigures> = rows.into_values().collect();
    let mut total = OperatorFigures::default();
    for r in &out {
        total.enrolled += r.enrolled;
        total.claimed += r.claimed;
        total.amount_claimed += r.amount_claimed;
        total.confirmed += r.confirmed;
        total.amount_confirmed += r.amount_confirmed;
        total.enrolled_before += r.enrolled_before;
        total.claimed_before += r.claimed_before;
        total.amount_claimed_before += r.amount_claimed_before;
        total.confirmed_before += r.confirmed_before;
        total.amount_confirmed_before += r.amount_confirmed_before;
        for (code, n) in &r.discrepancies {
            *total.discrepancies.entry(*code).or_default() += n;
        }
    }
    out.push(total);
    out
}

/// How a cell of the public table is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shown {
    Value,
    /// Under the threshold: `< N`, which is true of it.
    Small,
    /// Hidden to protect another cell: [`HIDDEN`].
    Hidden,
}

/// A count or amount and how it is shown; `None` where the row has no such figure.
type Cell = Option<(i64, Shown)>;

/// A row of the public table being built: its cells, and for an amount the cell of the count
/// it rests on.
struct PublicLine {
    view: &'static str,
    name: String,
    cells: Vec<Cell>,
    rests_on: Vec<Option<usize>>,
}

/// The public table: one row per category and per operator (and their totals). A count under
/// the threshold reads `< N`; where one row alone of a section is under it in a column, the
/// next smallest is hidden too (`x`), so that the total does not give the small one away; an
/// amount resting on a count that does not show reads `x` as well. No cell reads as a range its
/// value is not in.
pub fn public_table(s: &Statistics, threshold: i64) -> PublicTable {
    // Each row: view, name, then 10 cells (count or amount with the count it rests on).
    let mut sections: Vec<Vec<PublicLine>> = Vec::new();
    let count = |n: i64| Some((n, Shown::Value));
    let mut categories = Vec::new();
    for r in &s.by_category {
        let name = r.category.map_or_else(|| "TOTAL".to_owned(), |c| c.as_str().to_owned());
        let cells = vec![
            count(r.households),
            count(r.eligible),
            count(r.enrolled),
            count(r.devices_allocated),
            count(r.devices_handed_over),
            None,
            None,
            None,
            None,
            count(r.enrolled_before),
        ];
        categories.push(PublicLine { view: "category", name, cells, rests_on: vec![None; 10] });
    }
    sections.push(categories);
    let mut operators = Vec::new();
    for r in &s.by_operator {
        let name = r.operator.clone().unwrap_or_else(|| "TOTAL".to_owned());
        let cells = vec![
            None,
            None,
            count(r.enrolled),
            None,
            None,
            count(r.claimed),
            count(r.amount_claimed),
            count(r.confirmed),
            count(r.amount_confirmed),
            count(r.enrolled_before),
        ];
        // The amounts rest on the counts beside them.
        let rests = vec![None, None, None, None, None, None, Some(5), None, Some(7), None];
        operators.push(PublicLine { view: "operator", name, cells, rests_on: rests });
    }
    sections.push(operators);
    for section in &mut sections {
        let last = section.len().saturating_sub(1); // the totals
        for col in 0..10 {
            if section.iter().any(|row| row.rests_on[col].is_some()) {
                continue; // amounts follow their counts below
            }
            let mut small = 0;
            for (i, row) in section.iter_mut().enumerate() {
                if let Some((n, shown)) = &mut row.cells[col]
                    && *n < threshold
                {
                    *shown = Shown::Small;
                    if i != last {
                        small += 1;
                    }
                }
            }
            if small == 1 {
                // The next smallest shown value of the column, totals aside.
                let next = section
                    .iter()
                    .enumerate()
                    .filter(|(i, row)| *i != last && row.cells[col].is_some_and(|(_, s)| s == Shown::Value))
                    .min_by_key(|(_, row)| row.cells[col].map_or(i64::MAX, |(n, _)| n))
                    .map(|(i, _)| i);
                if let Some(i) = next
                    && let Some((_, shown)) = &mut section[i].cells[col]
                {
                    *shown = Shown::Hidden;
                }
            }
        }
        for row in section.iter_mut() {
            for col in 0..10 {
                if let Some(base) = row.rests_on[col]
                    && let (Some((_, base_shown)), Some((_, shown))) = (row.cells[base], &mut row.cells[col])
                    && base_shown != Shown::Value
                {
                    *shown = Shown::Hidden;
                }
            }
        }
    }
    let rows = sections
        .into_iter()
        .flatten()
        .map(|line| {
            let mut out = vec![line.view.to_owned(), line.name];
            out.extend(line.cells.into_iter().map(|c| match c {
                None => String::new(),
                Some((_, Shown::Small)) => format!("< {threshold}"),
                Some((_, Shown::Hidden)) => HIDDEN.to_owned(),
                Some((n, Shown::Value)) => n.to_string(),
            }));
            out
        })
        .collect();
    let legend = format!(
        "< {threshold}: fewer than {threshold}; {HIDDEN}: hidden so that a small figure cannot be worked out from \
         the others (it says nothing of its value)"
    );
    PublicTable { threshold, columns: PUBLIC_COLUMNS.to_vec(), rows, legend }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(households: &[(Category, i64)]) -> Statistics {
        let mut by_category: Vec<CategoryFigures> = households
            .iter()
            .map(|(c, n)| CategoryFigures { category: Some(*c), households: *n, ..Default::default() })
            .collect();
        by_category.push(CategoryFigures { households: households.iter().map(|(_, n)| n).sum(), ..Default::default() });
        Statistics {
            period: "2025-03".into(),
            previous_period: "2025-02".into(),
            unit_code: String::new(),
            unit_name: String::new(),
            as_of: time::macros::date!(2025 - 03 - 31),
            policy_version: 1,
            by_category,
            by_operator: vec![OperatorFigures::default()],
            computed_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn small_counts_are_hidden_and_cannot_be_recovered_from_the_total() {
        let s = stats(&[(Category::Poor, 120), (Category::NearPoor, 40), (Category::SocialPolicy, 3)]);
        let t = public_table(&s, 10);
        let households: Vec<&str> = t.rows.iter().take(4).map(|r| r[2].as_str()).collect();
        // SOCIAL_POLICY's 3 reads "< 10"; NEAR_POOR's 40, the next smallest, is hidden: the
        // total of 163 then gives neither away, and no cell reads as a range it is not in.
        assert_eq!(households, ["120", "x", "< 10", "163"]);
        assert!(t.legend.contains("< 10: fewer than 10") && t.legend.contains("x: hidden"), "{}", t.legend);
    }

    #[test]
    fn amounts_resting_on_a_count_that_does_not_show_are_hidden() {
        let mut s = stats(&[(Category::Poor, 120)]);
        let operator = |name: &str, claimed: i64| OperatorFigures {
            operator: Some(name.into()),
            claimed,
            amount_claimed: claimed * 60_000,
            ..Default::default()
        };
        s.by_operator = vec![operator("VNPT", 500), operator("VIETTEL", 56), operator("MOBIFONE", 4), operator("", 0)];
        s.by_operator[3] =
            OperatorFigures { operator: None, claimed: 560, amount_claimed: 560 * 60_000, ..Default::default() };
        let t = public_table(&s, 10);
        let operators: Vec<(&str, &str, &str)> = t
            .rows
            .iter()
            .filter(|r| r[0] == "operator")
            .map(|r| (r[1].as_str(), r[7].as_str(), r[8].as_str()))
            .collect();
        assert_eq!(
            operators,
            [
                ("VNPT", "500", "30000000"),
                ("VIETTEL", "x", "x"),
                ("MOBIFONE", "< 10", "x"),
                ("TOTAL", "560", "33600000"),
            ]
        );
    }

    #[test]
    fn months_before() {
        assert_eq!(month_before(time::macros::date!(2025 - 01 - 01)), time::macros::date!(2024 - 12 - 01));
        assert_eq!(month_before(time::macros::date!(2025 - 03 - 01)), time::macros::date!(2025 - 02 - 01));
    }
}
