//! Operators' monthly lists and their reconciliation: every line of a month's list is checked
//! against the household register, the policy and the enrolment register as they stood in that
//! month; ICT then confirms or rejects the list, which freezes it.
//!
//! The rules, line by line (a claim is a line with a change; a line with an unclaimed reason
//! claims nothing, and is checked only against the enrolments: `NOT_ENROLLED`,
//! `ENROLMENT_MISMATCH` and `BEFORE_START` as below):
//! - `UNKNOWN_SUBSCRIBER`: the household is not on the register in the month, or the
//!   subscriber is not one of its members then.
//! - `NOT_ELIGIBLE`, `ELIGIBILITY_ENDED` (with the first day without support),
//!   `BEFORE_START`: the household is not entitled to the line's service on any day of the
//!   month, for the reason the eligibility decision gives; `ELIGIBILITY_ENDED` also when support
//!   ends during the month and the line is not a stop.
//! - `NOT_ENROLLED`: the line names no enrolment and the operator has no enrolment of its
//!   number running in the month, or its enrolment did not run in the month (`BEFORE_START`
//!   when it started after it); `ENROLMENT_MISMATCH`: the enrolment is for another household,
//!   subscriber, number or service.
//! - `OVER_CAP`: more than the monthly amount for the operator and year, in proportion to the
//!   days the line was both enrolled and entitled (and served), rounded down to whole VND.
//! - `NON_USAGE`: no traffic this month and in the policy's number of months before it (read
//!   from the operator's earlier lists), so support had stopped.
//! - `DUPLICATE_WITHIN_OPERATOR`: the household is claimed on an earlier line of the list;
//!   `DUPLICATE_ACROSS_OPERATORS`: another operator's list for the month claims it too (both
//!   lists are flagged; the other operator is not named).
//!
//! A line with no discrepancy is OK and its amount confirmable.

use super::context::ServiceContext;
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use time::Date;

use super::clock::Clock;
use super::written;
use super::{
    DomainError, FieldViolation, Violations,
    eligibility::{self, History, Query, QueryKind, ReasonCode},
    enrollments::normal_phone,
    household::{CitizenId, HouseholdCode, format_date, free_text, name_enum},
    member::{Caller, OrgCode, Role, UnitCode},
    paging::{Page, paging},
    policy::{PolicyTable, Service},
    support,
    unit_registry::UnitRegistry,
};
use crate::domain::ports::{
    EnrollmentStore, MonthlyListStore, PortError, ReconciliationStore, RegisterStore, Store,
    enrollments::Enrollment,
    monthly::{LineFilter, ListLine, MonthlyList, NewUpdate, UpdateDecision, UpdateFilter, Verdict, period_bounds},
};

name_enum! {
    /// What happened to a line's support this month.
    Change {
        Started = "STARTED",
        Continuing = "CONTINUING",
        Stopped = "STOPPED",
        LevelChanged = "LEVEL_CHANGED",
    }
}

name_enum! {
    /// Why an enrolled subscriber is not claimed this month.
    UnclaimedReason {
        NoUsageYet = "NO_USAGE_YET",
        InNonUsageWindow = "IN_NON_USAGE_WINDOW",
        EligibilityLostNotDeenrolled = "ELIGIBILITY_LOST_NOT_DEENROLLED",
        Suspended = "SUSPENDED",
        NotFoundInOperatorSystems = "NOT_FOUND_IN_OPERATOR_SYSTEMS",
        Other = "OTHER",
    }
}

name_enum! {
    /// What is wrong with a line.
    Code {
        NotEligible = "NOT_ELIGIBLE",
        EligibilityEnded = "ELIGIBILITY_ENDED",
        BeforeStart = "BEFORE_START",
        OverCap = "OVER_CAP",
        NotEnrolled = "NOT_ENROLLED",
        EnrolmentMismatch = "ENROLMENT_MISMATCH",
        DuplicateWithinOperator = "DUPLICATE_WITHIN_OPERATOR",
        DuplicateAcrossOperators = "DUPLICATE_ACROSS_OPERATORS",
        NonUsage = "NON_USAGE",
        UnknownSubscriber = "UNKNOWN_SUBSCRIBER",
    }
}

name_enum! {
    /// What a confirmation covers.
    Scope {
        WholeList = "WHOLE_LIST",
        OkLines = "OK_LINES",
    }
}

name_enum! {
    /// Where an operator's monthly list is: being received, reconciled (figures ready), then
    /// confirmed or rejected by ICT, or superseded by a later list for its period.
    ListStatus {
        Receiving = "RECEIVING",
        Reconciled = "RECONCILED",
        Confirmed = "CONFIRMED",
        Rejected = "REJECTED",
        Superseded = "SUPERSEDED",
    }
}

/// The most a tariff or an amount may be: anything above is a typing error.
const MAX_AMOUNT: i64 = 10_000_000;
/// Lines reconciled together (one read of their households and enrolments).
const CHUNK: usize = 2_000;
/// Problems reported when a list is refused.
const MAX_REPORTED: usize = 100;

/// What a stream receiving a list claims ([`Store::claim`]).
fn list_key(operator: &str, update_id: &str) -> String {
    format!("list {operator} {update_id}")
}

/// A status as the API shows it (a list being received is `RECEIVED`).
pub fn status_name(status: ListStatus) -> &'static str {
    match status {
        ListStatus::Receiving => "RECEIVED",
        other => other.as_str(),
    }
}

/// A list's header as it arrives.
#[derive(Debug, Clone, Default)]
pub struct HeaderInput {
    pub period: String,
    pub update_id: String,
    pub replaces_earlier: bool,
    pub note: String,
}

/// A line as it arrives.
#[derive(Debug, Clone, Default)]
pub struct LineInput {
    pub phone_number: String,
    pub subscriber_citizen_id: String,
    pub household_code: String,
    pub enrollment_id: String,
    pub change: Option<Change>,
    pub service: Option<Service>,
    pub package_code: String,
    pub tariff: i64,
    pub amount_claimed: i64,
    pub days_of_service: i32,
    pub used: bool,
    pub unclaimed_reason: Option<UnclaimedReason>,
}

/// A line in normal form, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub phone_number: String,
    pub subscriber_citizen_id: String,
    pub household_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
    pub service: Service,
    pub package_code: String,
    pub tariff: i64,
    pub amount_claimed: i64,
    pub days_of_service: i64,
    pub used: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unclaimed_reason: Option<UnclaimedReason>,
}

/// One discrepancy of a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discrepancy {
    pub code: Code,
    pub message: String,
    /// The same in Vietnamese, for the people who read the lists (the workbook's notes, the
    /// console); empty for discrepancies stored before notes were kept.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_amount: Option<i64>,
}

impl Discrepancy {
    fn new(code: Code, message: String, note: String) -> Self {
        Self { code, message, note, date: None, allowed_amount: None }
    }
}

/// A commune's code, as lines are kept by (a province's or district's code matches no line).
fn commune_code(code: &str) -> Result<UnitCode, String> {
    let unit = UnitCode::parse(code)?;
    if unit.as_str().len() == 5 {
        Ok(unit)
    } else {
        Err(format!("{code:?} is a province's or a district's code; lines are found by their commune's (5 digits)"))
    }
}

/// A whole amount of đồng as the notes write it: `60.000 đồng`.
fn dong(amount: i64) -> String {
    written::number(amount) + " đồng"
}

fn dich_vu(service: Service) -> &'static str {
    match service {
        Service::Mobile => "di động",
        Service::FixedBroadband => "Internet băng rộng cố định",
    }
}

/// A stored line with its outcome.
#[derive(Debug, Clone)]
pub struct ReconciledLine {
    pub line_no: i64,
    pub line: Line,
    pub discrepancies: Vec<Discrepancy>,
    pub commune_code: Option<String>,
    /// Months without traffic up to and including this one.
    pub idle_months: i64,
    /// Confirmed lists: the discrepancies the line would have now, when a later change
    /// altered them (the confirmed outcome stands).
    pub later: Option<Vec<Discrepancy>>,
}

/// A list's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    pub lines: i64,
    pub claims: i64,
    pub unclaimed: i64,
    pub lines_ok: i64,
    pub amount_claimed: i64,
    pub amount_confirmable: i64,
    pub by_code: BTreeMap<Code, i64>,
    pub by_unclaimed_reason: BTreeMap<UnclaimedReason, i64>,
    pub missing_stops: i64,
    pub enrollments_not_reported: i64,
}

/// A list as the API shows it.
#[derive(Debug, Clone)]
pub struct Summary {
    pub row: MonthlyList,
    pub figures: Figures,
    pub replayed: bool,
}

impl Summary {
    fn of(row: MonthlyList) -> Result<Self, DomainError> {
        let figures = match row.figures.as_deref() {
            Some(json) => serde_json::from_str(json).map_err(|e| {
                DomainError::Internal(format!("figures of list {} of {}: {e}", row.update_id, row.operator).into())
            })?,
            None => Figures::default(),
        };
        Ok(Self { row, figures, replayed: false })
    }
}

/// A checked header.
#[derive(Debug, Clone)]
pub struct Header {
    pub period: String,
    pub first: Date,
    /// The first day of the next month.
    pub next: Date,
    pub update_id: String,
    pub replaces_earlier: bool,
    pub note: String,
}

/// Lines as they arrive, in messages.
pub type LineStream<'a> = std::pin::Pin<Box<dyn Stream<Item = Result<Vec<LineInput>, DomainError>> + Send + 'a>>;

/// The checks a list's lines need across the list.
struct Intake<'a> {
    units: &'a super::units::UnitTable,
    /// The rules in force on the first day of the month, and whose list it is: for the
    /// packages the operator may claim for.
    policy: Option<Arc<super::policy::PolicyVersion>>,
    operator: &'a str,
    days_in_month: i64,
    /// Numbers seen so far (as [`phone_key`]), with their line.
    phones: HashMap<u64, i64>,
    violations: Vec<FieldViolation>,
    total: usize,
}

impl Intake<'_> {
    fn problem(&mut self, field: String, description: String) {
        self.total += 1;
        if self.violations.len() < MAX_REPORTED {
            self.violations.push(FieldViolation::new(field, description));
        }
    }

    /// Checks a line; `None` when it has problems (recorded).
    fn line(&mut self, n: i64, input: &LineInput) -> Option<Line> {
        let mut v = Violations::new();
        let f = |name: &str| format!("lines[{n}].{name}");
        let service = input.service.or_else(|| {
            v.add(f("service"), "a service is required: MOBILE or FIXED_BROADBAND");
            None
        });
        let phone = v.check(&f("phone_number"), normal_phone(&input.phone_number, service));
        let subscriber =
            v.check(&f("subscriber_citizen_id"), CitizenId::parse(&input.subscriber_citizen_id, self.units));
        let household = v.check(&f("household_code"), HouseholdCode::parse(&input.household_code));
        let enrollment_id = match input.enrollment_id.trim() {
            "" => Some(None),
            s => match s.parse::<i64>() {
                Ok(id) if id > 0 => Some(Some(id)),
                _ => {
                    v.add(f("enrollment_id"), format!("{s:?} is not an enrolment id of the hub"));
                    None
                }
            },
        };
        let claim = match (input.change, input.unclaimed_reason) {
            (Some(_), Some(_)) => {
                v.add(f("unclaimed_reason"), "a line has either a change (a claim) or an unclaimed reason, not both");
                None
            }
            (None, None) => {
                v.add(
                    f("change"),
                    "a change (STARTED, CONTINUING, STOPPED, LEVEL_CHANGED) or an unclaimed reason is required",
                );
                None
            }
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
        };
        let package = input.package_code.trim();
        let package_ok = package.len() <= 30
            && package.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !package_ok {
            v.add(
                f("package_code"),
                format!("{package:?} is not a package code: use 1 to 30 letters, digits, '-', '_', '.'"),
            );
        } else if package.is_empty() && claim == Some(true) {
            v.add(f("package_code"), "a claim names the package it supports");
        } else if let (Some(true), Some(policy), Some(service)) = (claim, &self.policy, service)
            && let Err(e) = policy.package_allowed(self.operator, package, service)
        {
            v.add(f("package_code"), e);
        }
        if !(0..=MAX_AMOUNT).contains(&input.tariff) {
            v.add(f("tariff"), format!("{} VND is not a monthly tariff: use 0 to {MAX_AMOUNT}", input.tariff));
        }
        if !(0..=MAX_AMOUNT).contains(&input.amount_claimed) {
            v.add(f("amount_claimed"), format!("{} VND is not an amount: use 0 to {MAX_AMOUNT}", input.amount_claimed));
        } else if input.amount_claimed > input.tariff && (0..=MAX_AMOUNT).contains(&input.tariff) {
            v.add(
                f("amount_claimed"),
                format!("{} VND is more than the package's tariff of {} VND", input.amount_claimed, input.tariff),
            );
        } else if claim == Some(false) && input.amount_claimed != 0 {
            v.add(f("amount_claimed"), "a line with an unclaimed reason claims nothing: use 0");
        }
        let days = i64::from(input.days_of_service);
        if !(0..=self.days_in_month).contains(&days) {
            v.add(
                f("days_of_service"),
                format!("{days} is not a number of days of the month: use 0 to {}", self.days_in_month),
            );
        } else if claim == Some(true) && input.amount_claimed > 0 && days == 0 {
            v.add(f("days_of_service"), "a claim with an amount needs at least one day of service");
        }
        if let Some(phone) = &phone
            && let Some(first) = self.phones.insert(phone_key(phone), n)
        {
            self.phones.insert(phone_key(phone), first);
            v.add(f("phone_number"), format!("{phone} is already on line {first}; one line per number"));
        }
        if let Err(DomainError::Invalid(problems)) = v.finish() {
            for p in problems {
                self.problem(p.field, p.description);
            }
            return None;
        }
        Some(Line {
            phone_number: phone?,
            subscriber_citizen_id: subscriber?.as_str().to_owned(),
            household_code: household?.as_str().to_owned(),
            enrollment_id: enrollment_id?,
            change: input.change,
            service: service?,
            package_code: package.to_owned(),
            tariff: input.tariff,
            amount_claimed: input.amount_claimed,
            days_of_service: days,
            used: input.used,
            unclaimed_reason: input.unclaimed_reason,
        })
    }
}

/// A number in normal form (`0` and 9 or 10 digits) as a small key: its value and its length.
fn phone_key(phone: &str) -> u64 {
    phone.bytes().fold(phone.len() as u64, |key, b| key * 10 + u64::from(b - b'0'))
}

/// SHA-256 over a list's header and lines, as received.
struct ContentDigest(ring::digest::Context);

impl ContentDigest {
    fn new(h: &Header) -> Self {
        let mut d = Self(ring::digest::Context::new(&ring::digest::SHA256));
        d.field(&h.period);
        d.field(if h.replaces_earlier { "replaces" } else { "new" });
        d.field(&h.note);
        d
    }

    fn field(&mut self, s: &str) {
        self.0.update(&(s.len() as u64).to_be_bytes());
        self.0.update(s.as_bytes());
    }

    fn line(&mut self, l: &LineInput) {
        for s in [&l.phone_number, &l.subscriber_citizen_id, &l.household_code, &l.enrollment_id, &l.package_code] {
            self.field(s);
        }
        self.field(l.change.map_or("", Change::as_str));
        self.field(l.service.map_or("", Service::as_str));
        self.field(l.unclaimed_reason.map_or("", UnclaimedReason::as_str));
        for n in [l.tariff, l.amount_claimed, i64::from(l.days_of_service), i64::from(l.used)] {
            self.0.update(&n.to_be_bytes());
        }
    }

    fn finish(self) -> String {
        crate::hex(self.0.finish().as_ref())
    }
}

/// What the reconciliation of one list carries from line to line.
struct Run {
    operator: String,
    period: String,
    first: Date,
    next: Date,
    policy: Arc<PolicyTable>,
    /// Households other operators' lists claim this month, with those lists.
    elsewhere: HashMap<String, Vec<i64>>,
    /// Months without traffic of each number in the operator's list for the month before.
    idle_before: HashMap<String, i64>,
    /// Households claimed so far, with their line.
    claimed: HashMap<Box<str>, i64>,
    reported: HashSet<i64>,
    /// Other operators' lists this one shares a household with.
    touched: HashSet<i64>,
    figures: Figures,
}

fn days_between(a: Date, b: Date) -> i64 {
    (b - a).whole_days().max(0)
}

/// The period before `period` (`YYYY-MM`).
fn previous_period(first: Date) -> String {
    let before = first.previous_day().unwrap_or(first);
    format!("{:04}-{:02}", before.year(), u8::from(before.month()))
}

impl Run {
    fn days_in_month(&self) -> i64 {
        days_between(self.first, self.next)
    }

    /// The days of `[from, until)` inside the month.
    fn clip(&self, from: Date, until: Option<Date>) -> Option<(Date, Date)> {
        let a = from.max(self.first);
        let b = until.map_or(self.next, |u| u.min(self.next));
        (a < b).then_some((a, b))
    }

    /// The days of the month the household is entitled to `service`: the month's days within
    /// its periods of support (the one rule decisions follow, `support`), each stretch checked
    /// by the decision on its first day for the service; with the decision that explains why not
    /// when there are none.
    fn entitled(&self, history: &History, service: Service) -> (Vec<(Date, Date)>, eligibility::Answer) {
        let mut spans = Vec::new();
        let mut why = None;
        for period in support::periods(&history.states, &self.policy) {
            let Some((a, b)) = self.clip(period.from, period.to) else { continue };
            let Some(policy) = self.policy.in_force(a) else { continue };
            let query = Query { kind: QueryKind::HouseholdCode, value: history.code.clone(), as_of: a };
            let answer = eligibility::decide(&query, std::slice::from_ref(history), &self.policy, policy, None);
            let found = answer.eligible.then(|| answer.entitlements.iter().find(|e| e.service == service)).flatten();
            if let Some(e) = found {
                let until = e.valid_to.as_deref().and_then(|t| super::household::parse_date(t).ok());
                if let Some(span) = self.clip(a, Some(until.map_or(b, |u| u.min(b)))) {
                    spans.push(span);
                }
            }
            why.get_or_insert(answer);
        }
        if spans.is_empty() {
            // Why not: the decision on the month's last day (or its first, before the policy).
            let last = self.next.previous_day().unwrap_or(self.first);
            for day in [last, self.first] {
                if let Some(policy) = self.policy.in_force(day) {
                    let query = Query { kind: QueryKind::HouseholdCode, value: history.code.clone(), as_of: day };
                    let answer = eligibility::decide(&query, std::slice::from_ref(history), &self.policy, policy, None);
                    if !answer.eligible || why.is_none() {
                        why = Some(answer);
                    }
                    break;
                }
            }
        }
        (spans, why.unwrap_or_default())
    }

    fn reconcile(
        &mut self,
        line_no: i64,
        line: &Line,
        history: Option<&History>,
        enrollment: Option<&Enrollment>,
    ) -> ReconciledLine {
        let mut found = Vec::new();
        if let Some(id) = line.enrollment_id.or(enrollment.map(|e| e.id)) {
            self.reported.insert(id);
        }
        let idle = if line.used { 0 } else { self.idle_before.get(&line.phone_number).copied().unwrap_or(0) + 1 };
        let states: Vec<&eligibility::State> = history
            .map(|h| {
                h.states
                    .iter()
                    .filter(|s| s.valid_from < self.next && s.valid_to.is_none_or(|t| t > self.first))
                    .collect()
            })
            .unwrap_or_default();
        let commune_code = states.last().map(|s| s.facts.commune_code.clone());
        let claim = line.change.is_some();
        self.figures.lines += 1;
        if !claim {
            self.figures.unclaimed += 1;
            if let Some(r) = line.unclaimed_reason {
                *self.figures.by_unclaimed_reason.entry(r).or_default() += 1;
            }
            // An unclaimed line says "enrolled with us, not claimed this month": the enrolment
            // must be one the hub holds.
            self.enrolled(line, enrollment, &mut found);
            if found.is_empty() {
                self.figures.lines_ok += 1;
            }
            for d in &found {
                *self.figures.by_code.entry(d.code).or_default() += 1;
            }
            return ReconciledLine {
                line_no,
                line: line.clone(),
                discrepancies: found,
                commune_code,
                idle_months: idle,
                later: None,
            };
        }
        self.figures.claims += 1;
        self.figures.amount_claimed += line.amount_claimed;
        let month = &self.period;
        let code = &line.household_code;

        // The household and the subscriber, on the register in the month.
        let member = states.iter().any(|s| s.facts.citizen_ids.contains(&line.subscriber_citizen_id));
        let later = history.and_then(|h| h.states.iter().map(|s| s.valid_from).find(|from| *from >= self.next));
        if let (true, Some(from)) = (states.is_empty(), later) {
            let mut d = Discrepancy::new(
                Code::BeforeStart,
                format!("household {code} is on the register only from {from}"),
                format!("Hộ {code} chỉ có trong danh sách từ ngày {}", written::date(from)),
            );
            d.date = Some(format_date(from));
            found.push(d);
        } else if states.is_empty() {
            found.push(Discrepancy::new(
                Code::UnknownSubscriber,
                format!("household {code} is not on the register in {month}"),
                format!("Hộ {code} không có trong danh sách trong tháng {}", written::period(month)),
            ));
        } else if !member {
            found.push(Discrepancy::new(
                Code::UnknownSubscriber,
                format!("{} is not a member of household {code} in {month}", line.subscriber_citizen_id),
                format!(
                    "Người có số định danh {} không thuộc hộ {code} trong tháng {}",
                    line.subscriber_citizen_id,
                    written::period(month)
                ),
            ));
        }

        // Entitled on which days.
        let entitled = match history {
            Some(h) if !states.is_empty() => {
                let (spans, answer) = self.entitled(h, line.service);
                match spans.last() {
                    Some(&(_, until)) => {
                        if until < self.next && line.change != Some(Change::Stopped) {
                            let mut d = Discrepancy::new(
                                Code::EligibilityEnded,
                                format!("support for household {code} ends on {until} and the line does not stop"),
                                format!(
                                    "Hộ {code} hết được hỗ trợ vào ngày {}, nhưng dòng không báo ngừng hỗ trợ",
                                    written::date(until)
                                ),
                            );
                            d.date = Some(format_date(until));
                            found.push(d);
                        }
                        Some(spans)
                    }
                    None => {
                        found.push(not_entitled(&answer, code, line.service, month));
                        None
                    }
                }
            }
            _ => None,
        };

        // Enrolled on which days.
        let enrolled = self.enrolled(line, enrollment, &mut found);

        // How much the days allow: the days both entitled and enrolled.
        if let (Some(spans), Some(b)) = (entitled, enrolled) {
            let both: i64 = spans.iter().map(|a| days_between(a.0.max(b.0), a.1.min(b.1))).sum();
            let days = both.min(line.days_of_service);
            let policy =
                self.policy.in_force(self.first).or_else(|| spans.first().and_then(|a| self.policy.in_force(a.0)));
            let monthly = policy
                .and_then(|p| {
                    let rule = p.rules.services.iter().find(|r| r.service == line.service)?;
                    Some(p.monthly_amount(rule, Some(&self.operator), self.first.year()))
                })
                .unwrap_or(0);
            let allowed = monthly * days / self.days_in_month();
            if line.amount_claimed > allowed {
                let mut d = Discrepancy::new(
                    Code::OverCap,
                    format!(
                        "claimed {} VND; {allowed} VND are allowed ({monthly} VND a month, {days} of {} days)",
                        line.amount_claimed,
                        self.days_in_month()
                    ),
                    format!(
                        "Đề nghị {}; chỉ được hỗ trợ {} ({}/tháng, {days}/{} ngày)",
                        dong(line.amount_claimed),
                        dong(allowed),
                        dong(monthly),
                        self.days_in_month()
                    ),
                );
                d.allowed_amount = Some(allowed);
                found.push(d);
            }
        }

        // Months without traffic.
        let limit = self.policy.in_force(self.first).map_or(2, |p| i64::from(p.rules.non_usage_months));
        if !line.used && line.amount_claimed > 0 && idle > limit {
            found.push(Discrepancy::new(
                Code::NonUsage,
                format!("no traffic for {idle} months in a row; support stops after {limit}"),
                format!("Thuê bao không phát sinh lưu lượng {idle} tháng liên tiếp; hỗ trợ dừng sau {limit} tháng"),
            ));
        }

        // Claimed twice.
        if line.amount_claimed > 0 {
            if let Some(first) = self.claimed.get(code.as_str()) {
                found.push(Discrepancy::new(
                    Code::DuplicateWithinOperator,
                    format!("household {code} is claimed on line {first} too"),
                    format!("Hộ {code} cũng được đề nghị ở dòng {first}"),
                ));
            } else {
                self.claimed.insert(code.as_str().into(), line_no);
            }
            if let Some(lists) = self.elsewhere.get(code) {
                self.touched.extend(lists.iter().copied());
                found.push(Discrepancy::new(
                    Code::DuplicateAcrossOperators,
                    format!("another operator claims household {code} for {month}"),
                    format!("Doanh nghiệp khác cũng đề nghị hỗ trợ hộ {code} trong tháng {}", written::period(month)),
                ));
            }
        }

        if found.is_empty() {
            self.figures.lines_ok += 1;
            self.figures.amount_confirmable += line.amount_claimed;
        }
        for d in &found {
            *self.figures.by_code.entry(d.code).or_default() += 1;
        }
        if found.iter().any(|d| d.code == Code::EligibilityEnded) && line.change != Some(Change::Stopped) {
            self.figures.missing_stops += 1;
        }
        ReconciledLine {
            line_no,
            line: line.clone(),
            discrepancies: found,
            commune_code,
            idle_months: idle,
            later: None,
        }
    }

    /// The days of the month the line's enrolment ran, or why it did not: the line names none
    /// and the operator holds none of its number, it names one that does not exist, or one for
    /// another household, subscriber, number or service, or one that did not run in the month.
    fn enrolled(
        &self,
        line: &Line,
        enrollment: Option<&Enrollment>,
        found: &mut Vec<Discrepancy>,
    ) -> Option<(Date, Date)> {
        let month = &self.period;
        match (line.enrollment_id, enrollment) {
            (None, None) => {
                found.push(Discrepancy::new(
                    Code::NotEnrolled,
                    format!("the line names no enrolment, and you have none of {} in {month}", line.phone_number),
                    format!(
                        "Dòng không ghi mã đăng ký, và doanh nghiệp không có đăng ký nào của số {} trong tháng {}",
                        line.phone_number,
                        written::period(month)
                    ),
                ));
                None
            }
            (Some(id), None) => {
                found.push(Discrepancy::new(
                    Code::NotEnrolled,
                    format!("enrolment {id} is not on the register"),
                    format!("Mã đăng ký {id} không có trong sổ đăng ký thuê bao"),
                ));
                None
            }
            (_, Some(e)) => {
                let id = e.id;
                let (mut differs, mut khac) = (Vec::new(), Vec::new());
                if e.household_code != line.household_code {
                    differs.push(format!("household {}", e.household_code));
                    khac.push(format!("hộ {}", e.household_code));
                }
                if e.subscriber_citizen_id != line.subscriber_citizen_id {
                    differs.push(format!("subscriber {}", e.subscriber_citizen_id));
                    khac.push(format!("người có số định danh {}", e.subscriber_citizen_id));
                }
                if e.phone_number != line.phone_number {
                    differs.push(format!("number {}", e.phone_number));
                    khac.push(format!("số {}", e.phone_number));
                }
                if e.service != line.service.as_str() {
                    differs.push(format!("service {}", e.service));
                    khac.push(match Service::parse(&e.service) {
                        Ok(s) => format!("dịch vụ {}", dich_vu(s)),
                        Err(_) => format!("dịch vụ {}", e.service),
                    });
                }
                if !differs.is_empty() {
                    found.push(Discrepancy::new(
                        Code::EnrolmentMismatch,
                        format!("enrolment {id} is for {}", differs.join(", ")),
                        format!("Đăng ký {id} là của {}", khac.join(", ")),
                    ));
                }
                let span = self.clip(e.start_date, e.end_date);
                if span.is_none() {
                    if e.start_date >= self.next {
                        let mut d = Discrepancy::new(
                            Code::BeforeStart,
                            format!("enrolment {id} starts on {}, after {month}", e.start_date),
                            format!(
                                "Đăng ký {id} bắt đầu từ ngày {}, sau tháng {}",
                                written::date(e.start_date),
                                written::period(month)
                            ),
                        );
                        d.date = Some(format_date(e.start_date));
                        found.push(d);
                    } else {
                        let end = e.end_date.map(format_date).unwrap_or_default();
                        found.push(Discrepancy::new(
                            Code::NotEnrolled,
                            format!("enrolment {id} ended on {end}, before {month}"),
                            format!(
                                "Đăng ký {id} đã kết thúc ngày {}, trước tháng {}",
                                e.end_date.map(written::date).unwrap_or_default(),
                                written::period(month)
                            ),
                        ));
                    }
                }
                span
            }
        }
    }

    fn finish(&mut self, running: &[i64]) -> Figures {
        self.figures.enrollments_not_reported = running.iter().filter(|id| !self.reported.contains(id)).count() as i64;
        self.figures.clone()
    }
}

/// Why a household has no entitlement in the month, from the decision.
fn not_entitled(answer: &eligibility::Answer, code: &str, service: Service, month: &str) -> Discrepancy {
    if answer.eligible {
        return Discrepancy::new(
            Code::NotEligible,
            format!("household {code} is not entitled to {service} in {month}"),
            format!("Hộ {code} không được hỗ trợ dịch vụ {} trong tháng {}", dich_vu(service), written::period(month)),
        );
    }
    let reason = answer.reasons.first();
    let message = reason.map_or_else(|| format!("household {code} is not eligible in {month}"), |r| r.message.clone());
    let on = |day: Option<&String>| day.map(|d| format!(" từ ngày {}", written::iso_date(d))).unwrap_or_default();
    let note = match reason {
        Some(r) => match r.code {
            ReasonCode::NotFound => format!("Hộ {code} không có trong danh sách"),
            ReasonCode::Removed => {
                format!("Hộ {code} đã ra khỏi danh sách{}", on(r.support_ended.as_ref().or(r.date.as_ref())))
            }
            ReasonCode::CategoryNotCovered => format!(
                "Diện của hộ {code} không thuộc đối tượng được hỗ trợ{}",
                on(r.support_ended.as_ref().or(r.date.as_ref()))
            ),
            ReasonCode::NotYetValid => format!("Hộ {code} chỉ được hỗ trợ{}", on(r.date.as_ref())),
            ReasonCode::NoLongerMember => format!("Người được hỏi không còn là thành viên của hộ {code}"),
            ReasonCode::AlreadyEnrolledElsewhere => {
                format!("Hộ {code} đã đăng ký thuê bao hỗ trợ ở doanh nghiệp khác")
            }
            ReasonCode::InvalidQuery => {
                format!("Hộ {code} không đủ điều kiện hỗ trợ trong tháng {}", written::period(month))
            }
        },
        None => format!("Hộ {code} không đủ điều kiện hỗ trợ trong tháng {}", written::period(month)),
    };
    match reason.map(|r| r.code) {
        Some(ReasonCode::NotYetValid) => {
            let mut d = Discrepancy::new(Code::BeforeStart, message, note);
            d.date = reason.and_then(|r| r.date.clone());
            d
        }
        // Supported once, and no longer: the decision says when support ended.
        Some(ReasonCode::Removed | ReasonCode::CategoryNotCovered)
            if reason.is_some_and(|r| r.support_ended.is_some()) =>
        {
            let mut d = Discrepancy::new(Code::EligibilityEnded, message, note);
            d.date = reason.and_then(|r| r.support_ended.clone());
            d
        }
        _ => Discrepancy::new(Code::NotEligible, message, note),
    }
}

impl ReconciledLine {
    fn to_row(&self) -> Result<ListLine, DomainError> {
        let internal = |e: serde_json::Error| DomainError::Internal(e.into());
        let codes: Vec<&str> = self.discrepancies.iter().map(|d| d.code.as_str()).collect();
        Ok(ListLine {
            line_no: self.line_no,
            household_code: self.line.household_code.clone(),
            phone_number: self.line.phone_number.clone(),
            commune_code: self.commune_code.clone(),
            line: serde_json::to_string(&self.line).map_err(internal)?,
            codes: codes.join(" "),
            detail: if self.discrepancies.is_empty() {
                None
            } else {
                Some(serde_json::to_string(&self.discrepancies).map_err(internal)?)
            },
            amount_claimed: self.line.amount_claimed,
            amount_confirmable: if self.discrepancies.is_empty() { self.line.amount_claimed } else { 0 },
            idle_months: self.idle_months,
            later_detail: None,
        })
    }

    fn from_row(row: &ListLine) -> Result<Self, DomainError> {
        let bad = |what: &str, e: serde_json::Error| {
            DomainError::Internal(format!("stored {what} of line {}: {e}", row.line_no).into())
        };
        Ok(Self {
            line_no: row.line_no,
            line: serde_json::from_str(&row.line).map_err(|e| bad("content", e))?,
            discrepancies: match row.detail.as_deref() {
                Some(d) => serde_json::from_str(d).map_err(|e| bad("discrepancies", e))?,
                None => Vec::new(),
            },
            commune_code: row.commune_code.clone(),
            idle_months: row.idle_months,
            later: match row.later_detail.as_deref() {
                Some(d) => Some(serde_json::from_str(d).map_err(|e| bad("later discrepancies", e))?),
                None => None,
            },
        })
    }
}

/// A chunk of lines with the reads it needs, under way.
type Ahead = tokio::task::JoinHandle<(Vec<(i64, Line)>, Result<Fetched, DomainError>)>;

/// What reconciling a chunk of lines read.
struct Fetched {
    histories: HashMap<String, History>,
    /// Enrolments the lines name, by id.
    named: HashMap<i64, Enrollment>,
    /// The operator's enrolments running in the month, by number.
    by_phone: HashMap<String, Enrollment>,
}

impl Fetched {
    fn apply(&self, run: &mut Run, lines: &[(i64, Line)]) -> Result<Vec<ListLine>, DomainError> {
        lines
            .iter()
            .map(|(n, line)| {
                let enrollment = match line.enrollment_id {
                    Some(id) => self.named.get(&id),
                    None => self.by_phone.get(&line.phone_number),
                };
                run.reconcile(*n, line, self.histories.get(&line.household_code), enrollment).to_row()
            })
            .collect()
    }
}

/// Reads a list's lines in order, a chunk at a time.
#[derive(Debug)]
pub struct LineReader {
    lists: Arc<dyn ReconciliationStore>,
    id: i64,
    after: i64,
    /// Only the lines without a discrepancy.
    ok_only: bool,
    done: bool,
}

impl LineReader {
    /// The next lines; `None` after the last.
    pub async fn next(&mut self) -> Result<Option<Vec<ReconciledLine>>, DomainError> {
        while !self.done {
            let all = LineFilter { include_ok: true, ..LineFilter::default() };
            let rows = self.lists.monthly_lines(self.id, &all, self.after, CHUNK as u32).await?;
            let Some(last) = rows.last() else {
                self.done = true;
                break;
            };
            self.after = last.line_no;
            let lines: Vec<ReconciledLine> = rows
                .iter()
                .filter(|r| !self.ok_only || r.codes.is_empty())
                .map(ReconciledLine::from_row)
                .collect::<Result<_, _>>()?;
            if !lines.is_empty() {
                return Ok(Some(lines));
            }
        }
        Ok(None)
    }
}

/// Receives, reconciles, and has ICT decide operators' monthly lists.
#[derive(Debug, Clone)]
pub struct ReconciliationService {
    store: Arc<dyn Store>,
    enrollment_store: Arc<dyn EnrollmentStore>,
    monthly_list_store: Arc<dyn MonthlyListStore>,
    reconciliation_store: Arc<dyn ReconciliationStore>,
    register_store: Arc<dyn RegisterStore>,
    units: Arc<UnitRegistry>,
    policy: Arc<super::policy::PolicyRegistry>,
    clock: Clock,
}

/// Whose lists a caller may read: an operator its own, ICT any.
fn owner<'a>(caller: &'a Caller, asked: &'a str) -> Result<&'a str, DomainError> {
    match caller.member.role {
        Role::Operator => Ok(caller.member.code.as_str()),
        Role::Ict if asked.trim().is_empty() => Err(DomainError::invalid("operator", "name the list's operator")),
        Role::Ict => Ok(asked.trim()),
        _ => Err(DomainError::PermissionDenied("only operators and ICT read monthly lists".into())),
    }
}

fn update_id(s: &str) -> Result<String, String> {
    let id = s.trim();
    if id.is_empty() || id.chars().count() > 100 || super::household::hidden_character(id).is_some() {
        return Err("an update id of 1 to 100 printable characters is required".to_owned());
    }
    Ok(id.to_owned())
}

/// A period `YYYY-MM` in the programme, not after this month.
pub(crate) fn check_period(
    s: &str,
    first_policy_day: Option<Date>,
    today: Date,
) -> Result<(String, Date, Date), String> {
    let bounds = (s.len() == 7 && s.as_bytes()[4] == b'-').then(|| period_bounds(s)).flatten();
    let Some((first, next)) = bounds else {
        return Err(format!("{s:?} is not a period: use YYYY-MM"));
    };
    if first > today {
        return Err(format!("{s} is in the future (today is {today})"));
    }
    if let Some(start) = first_policy_day
        && next <= start
    {
        return Err(format!("{s} is before the programme (its rules hold from {start})"));
    }
    Ok((s.to_owned(), first, next))
}

impl ReconciliationService {
    /// Reads households' histories through the context's register (the hub's read model).
    pub fn new(context: &ServiceContext) -> Self {
        let store = &context.store;
        Self {
            store: store.clone(),
            enrollment_store: store.clone(),
            monthly_list_store: store.clone(),
            reconciliation_store: store.clone(),
            register_store: context.register.clone(),
            units: context.units.clone(),
            policy: context.policy.clone(),
            clock: context.clock.clone(),
        }
    }

    pub async fn check_header(&self, h: &HeaderInput) -> Result<Header, DomainError> {
        let policy = self.policy.table().await?;
        let mut v = Violations::new();
        let period = v.check("header.period", check_period(h.period.trim(), policy.first_day(), self.clock.today()));
        let id = v.check("header.update_id", update_id(&h.update_id));
        let note = v.check("header.note", free_text(&h.note, 500));
        v.finish()?;
        let (period, first, next) = period.expect("checked");
        Ok(Header {
            period,
            first,
            next,
            update_id: id.expect("checked"),
            replaces_earlier: h.replaces_earlier,
            note: note.expect("checked"),
        })
    }

    /// Settles what streams of hubs that stopped left: each list being received whose stream
    /// is gone is finished when every line of it had been stored (and reconciled again in the
    /// background), forgotten otherwise.
    pub async fn recover(&self) -> Result<(), DomainError> {
        let receiving = UpdateFilter { status: Some(ListStatus::Receiving), ..UpdateFilter::default() };
        for row in self.monthly_list_store.list_monthly_updates(&receiving, i64::MAX, 10_000).await? {
            self.settle_abandoned(&row).await?;
        }
        Ok(())
    }

    /// For a list being received: `false` while its stream lives; else settles it (see
    /// [`Self::recover`]) and says `true`.
    async fn settle_abandoned(&self, row: &MonthlyList) -> Result<bool, DomainError> {
        if row.status != ListStatus::Receiving {
            return Ok(false);
        }
        let Some(claim) = self.store.claim(&list_key(&row.operator, &row.update_id)).await? else {
            return Ok(false);
        };
        claim.hold(self.settle_claimed(row)).await
    }

    /// [`Self::settle_abandoned`] once the list is claimed.
    async fn settle_claimed(&self, row: &MonthlyList) -> Result<bool, DomainError> {
        // The row may have moved on while the claim was being taken.
        let Some(row) =
            self.monthly_list_store.monthly_update_by_ref(row.id).await?.filter(|r| r.status == ListStatus::Receiving)
        else {
            return Ok(true);
        };
        let finished = match &row.content_digest {
            None => false,
            Some(digest) => {
                let open = self.monthly_list_store.open_monthly_updates(&row.operator, &row.period).await?;
                let replaces = open
                    .iter()
                    .find(|o| o.status == ListStatus::Reconciled)
                    .map(|o| o.id)
                    .filter(|_| row.replaces_earlier);
                let figures =
                    serde_json::to_string(&Figures::default()).map_err(|e| DomainError::Internal(e.into()))?;
                match self
                    .monthly_list_store
                    .finish_monthly_update(row.id, digest, &figures, self.clock.now(), replaces)
                    .await
                {
                    Ok(()) => true,
                    Err(PortError::Conflict(_)) => false,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if finished {
            tracing::warn!(operator = %row.operator, update = %row.update_id, "a monthly list received whole by a hub that stopped is finished: it is reconciled again now");
            self.reconcile_again(vec![row.id]).await?;
        } else {
            self.monthly_list_store.discard_monthly_update(row.id).await?;
            tracing::warn!(operator = %row.operator, update = %row.update_id, "a monthly list was cut off by a hub that stopped: it was discarded, and its period is free; submit it again");
        }
        Ok(true)
    }

    /// Receives a list, reconciles it, and makes it the operator's list for its period.
    pub async fn submit(
        &self,
        header: Header,
        caller: &Caller,
        request_id: &str,
        mut lines: LineStream<'_>,
    ) -> Result<Summary, DomainError> {
        if caller.member.role != Role::Operator {
            return Err(DomainError::PermissionDenied("only operators submit monthly lists".into()));
        }
        let operator = caller.member.code.as_str();
        let mut digest = ContentDigest::new(&header);
        if let Some(existing) = self.monthly_list_store.monthly_update(operator, &header.update_id).await?
            && existing.status != ListStatus::Receiving
        {
            while let Some(chunk) = lines.next().await {
                chunk?.iter().for_each(|l| digest.line(l));
            }
            let same = existing.content_digest.as_deref() == Some(digest.finish().as_str());
            if !same {
                return Err(DomainError::AlreadyExists(format!(
                    "list {} was received on {} with other content; send changed content under a new update id",
                    header.update_id,
                    existing.received_at.date()
                )));
            }
            let mut summary = Summary::of(existing)?;
            summary.replayed = true;
            return Ok(summary);
        }
        // One stream per list at a time, across the hubs of the database.
        let Some(claim) = self.store.claim(&list_key(operator, &header.update_id)).await? else {
            return Err(DomainError::Aborted(format!(
                "list {} is being received by another stream right now: this one is refused and changed nothing, \
                 the other goes on; wait for its answer, or submit again once it has ended",
                header.update_id
            )));
        };
        // Given up before the answer, so that an operator submitting again at once finds it free.
        claim.hold(self.submit_claimed(header, operator, request_id, lines, digest)).await
    }

    /// [`Self::submit`] once the list is claimed.
    async fn submit_claimed(
        &self,
        header: Header,
        operator: &str,
        request_id: &str,
        mut lines: LineStream<'_>,
        mut digest: ContentDigest,
    ) -> Result<Summary, DomainError> {
        let replaces = self.replaced(operator, &header).await?;
        let received_at = self.clock.now();
        let id = self
            .monthly_list_store
            .begin_monthly_update(&NewUpdate {
                operator,
                update_id: &header.update_id,
                period: &header.period,
                replaces_earlier: header.replaces_earlier,
                note: &header.note,
                received_at,
                request_id,
            })
            .await
            .map_err(|e| match e {
                PortError::AlreadyExists => DomainError::FailedPrecondition(format!(
                    "list {} is being received by another call right now; retry in a moment",
                    header.update_id
                )),
                other => other.into(),
            })?;
        let result = self.receive(id, &header, operator, &mut lines, &mut digest).await;
        let content_digest = digest.finish();
        let result = match result {
            // Every line is stored: from here a hub that stops finishes the list on its start.
            Ok(done) => self
                .monthly_list_store
                .mark_monthly_received(id, &content_digest)
                .await
                .map(|()| done)
                .map_err(DomainError::from),
            Err(e) => Err(e),
        };
        let (figures, touched) = match result {
            Ok(done) => done,
            Err(e) => {
                if let Err(d) = self.monthly_list_store.discard_monthly_update(id).await {
                    tracing::warn!(update = %header.update_id, error = %crate::ErrorChain(&d), "could not discard the received lines");
                }
                return Err(e);
            }
        };
        tracing::info!(operator, update = %header.update_id, "monthly list received; reconciling");
        let figures_json = serde_json::to_string(&figures).map_err(|e| DomainError::Internal(e.into()))?;
        let finished = self
            .monthly_list_store
            .finish_monthly_update(id, &content_digest, &figures_json, self.clock.now(), replaces)
            .await;
        if let Err(e) = finished {
            let _ = self.monthly_list_store.discard_monthly_update(id).await;
            return Err(match e {
                PortError::Conflict(why) => DomainError::FailedPrecondition(format!(
                    "list {} was not recorded: {why}; look at the period's lists and submit again",
                    header.update_id
                )),
                other => other.into(),
            });
        }
        tracing::info!(operator, update = %header.update_id, period = %header.period, lines = figures.lines, "monthly list reconciled");
        // Other operators' lists that share households with this one (or with the list it
        // replaced) are reconciled again.
        let mut others: HashSet<i64> = touched;
        if replaces.is_some() {
            for (_, list) in self.reconciliation_store.claimed_elsewhere(&header.period, operator).await? {
                others.insert(list);
            }
        }
        // Lists of other operators for the month that were reconciled while this one was being
        // received did not see it, nor it them: both are reconciled again.
        let period = UpdateFilter {
            period: Some(header.period.clone()),
            status: Some(ListStatus::Reconciled),
            ..UpdateFilter::default()
        };
        let mut crossed = false;
        for list in self.monthly_list_store.list_monthly_updates(&period, i64::MAX, 10_000).await? {
            if list.operator != operator && list.reconciled_at.is_some_and(|at| at >= received_at) {
                others.insert(list.id);
                crossed = true;
            }
        }
        if crossed {
            others.insert(id);
        }
        self.reconcile_again(others.into_iter().collect()).await?;
        let row = self
            .monthly_list_store
            .monthly_update_by_ref(id)
            .await?
            .ok_or_else(|| DomainError::Internal("the list vanished".into()))?;
        Summary::of(row)
    }

    /// The list a new one replaces, after checking that it may.
    async fn replaced(&self, operator: &str, header: &Header) -> Result<Option<i64>, DomainError> {
        let open = self.monthly_list_store.open_monthly_updates(operator, &header.period).await?;
        if let Some(c) = open.iter().find(|o| o.status == ListStatus::Confirmed) {
            return Err(DomainError::FailedPrecondition(format!(
                "the list for {} ({}) was confirmed on {}; a confirmed list is final",
                header.period,
                c.update_id,
                c.decided_at.map(|t| t.date().to_string()).unwrap_or_default()
            )));
        }
        let mut open = open;
        let mut settled = false;
        for r in open.iter().filter(|o| o.status == ListStatus::Receiving && o.update_id != header.update_id) {
            settled |= self.settle_abandoned(r).await?;
        }
        if settled {
            open = self.monthly_list_store.open_monthly_updates(operator, &header.period).await?;
        }
        if let Some(r) = open.iter().find(|o| o.status == ListStatus::Receiving && o.update_id != header.update_id) {
            return Err(DomainError::FailedPrecondition(format!(
                "list {} for {} is being received right now; wait for it, then replace it",
                r.update_id, header.period
            )));
        }
        match open.iter().find(|o| o.status == ListStatus::Reconciled) {
            Some(old) if !header.replaces_earlier => Err(DomainError::FailedPrecondition(format!(
                "the period {} has list {} already (reconciled, not confirmed); set replaces_earlier to replace it",
                header.period, old.update_id
            ))),
            Some(old) => Ok(Some(old.id)),
            None => Ok(None),
        }
    }

    /// What a list's reconciliation needs besides its lines.
    async fn run_for(&self, operator: &str, period: &str, first: Date, next: Date) -> Result<Run, DomainError> {
        let mut elsewhere: HashMap<String, Vec<i64>> = HashMap::new();
        for (household, list) in self.reconciliation_store.claimed_elsewhere(period, operator).await? {
            let lists = elsewhere.entry(household).or_default();
            if !lists.contains(&list) {
                lists.push(list);
            }
        }
        let before = previous_period(first);
        let idle_before = match self
            .monthly_list_store
            .open_monthly_updates(operator, &before)
            .await?
            .into_iter()
            .rfind(|r| r.status != ListStatus::Receiving)
        {
            Some(list) => self.reconciliation_store.idle_months(list.id).await?.into_iter().collect(),
            None => HashMap::new(),
        };
        Ok(Run {
            operator: operator.to_owned(),
            period: period.to_owned(),
            first,
            next,
            policy: self.policy.table().await?,
            elsewhere,
            idle_before,
            claimed: HashMap::new(),
            reported: HashSet::new(),
            touched: HashSet::new(),
            figures: Figures::default(),
        })
    }

    /// Reconciles lines: reads their households and enrolments at once.
    async fn reconcile_chunk(&self, run: &mut Run, lines: &[(i64, Line)]) -> Result<Vec<ListLine>, DomainError> {
        let fetched = self.fetch(&run.operator, run.first, run.next, lines).await?;
        fetched.apply(run, lines)
    }

    /// What reconciling lines reads: their households' histories, the enrolments they name,
    /// and the operator's enrolments of the numbers of the others; the three reads run at once.
    async fn fetch(
        &self,
        operator: &str,
        first: Date,
        next: Date,
        lines: &[(i64, Line)],
    ) -> Result<Fetched, DomainError> {
        let mut codes: Vec<String> = lines.iter().map(|(_, l)| l.household_code.clone()).collect();
        codes.sort_unstable();
        codes.dedup();
        let ids: Vec<i64> = lines.iter().filter_map(|(_, l)| l.enrollment_id).collect();
        let phones: Vec<String> =
            lines.iter().filter(|(_, l)| l.enrollment_id.is_none()).map(|(_, l)| l.phone_number.clone()).collect();
        let (states, named, numbered) = tokio::try_join!(
            self.register_store.histories_matching(QueryKind::HouseholdCode, &codes, true),
            async {
                if ids.is_empty() { Ok(Vec::new()) } else { self.enrollment_store.enrollments_by_ids(&ids).await }
            },
            async {
                if phones.is_empty() {
                    Ok(Vec::new())
                } else {
                    self.enrollment_store.enrollments_by_phones(operator, &phones).await
                }
            },
        )?;
        let histories = states.into_iter().filter_map(|(code, mut found)| Some((code, found.pop()?))).collect();
        // A line that names no enrolment is matched by its number: the operator's enrolment of
        // the number that ran in the month (the latest, if several did).
        let mut by_phone: HashMap<String, Enrollment> = HashMap::new();
        for e in numbered {
            if e.start_date >= next || e.end_date.is_some_and(|end| end <= first) {
                continue;
            }
            match by_phone.get(&e.phone_number) {
                Some(kept) if kept.start_date >= e.start_date => {}
                _ => {
                    by_phone.insert(e.phone_number.clone(), e);
                }
            }
        }
        Ok(Fetched { histories, named: named.into_iter().map(|e| (e.id, e)).collect(), by_phone })
    }

    async fn receive(
        &self,
        id: i64,
        header: &Header,
        operator: &str,
        lines: &mut LineStream<'_>,
        digest: &mut ContentDigest,
    ) -> Result<(Figures, HashSet<i64>), DomainError> {
        let units = self.units.table().await?;
        let policy = self.policy.table().await?.in_force(header.first).cloned();
        let mut intake = Intake {
            units: &units,
            policy,
            operator,
            days_in_month: days_between(header.first, header.next),
            phones: HashMap::new(),
            violations: Vec::new(),
            total: 0,
        };
        let mut run = self.run_for(operator, &header.period, header.first, header.next).await?;

        // Three things overlap: the reads of the next chunk of lines, the reconciliation of
        // this one, and the writing of the last one.
        let (to_store, mut storing) = tokio::sync::mpsc::channel::<Vec<ListLine>>(2);
        let store = self.store.clone();
        let stager = tokio::spawn(async move {
            while let Some(rows) = storing.recv().await {
                store.store_monthly_lines(id, &rows).await?;
            }
            Ok::<_, PortError>(())
        });
        let mut ahead: Option<Ahead> = None;
        let mut pending: Vec<(i64, Line)> = Vec::with_capacity(CHUNK);
        let mut n = 0i64;
        let received = async {
            while let Some(chunk) = lines.next().await {
                for input in chunk? {
                    n += 1;
                    digest.line(&input);
                    if let Some(line) = intake.line(n, &input) {
                        pending.push((n, line));
                    }
                }
                if pending.len() >= CHUNK {
                    let next = self.fetch_ahead(&run, std::mem::take(&mut pending));
                    if let Some(done) = ahead.replace(next) {
                        self.settle(done, &mut run, &mut intake, &to_store).await?;
                    }
                }
            }
            if !pending.is_empty() {
                let next = self.fetch_ahead(&run, std::mem::take(&mut pending));
                if let Some(done) = ahead.replace(next) {
                    self.settle(done, &mut run, &mut intake, &to_store).await?;
                }
            }
            if let Some(done) = ahead.take() {
                self.settle(done, &mut run, &mut intake, &to_store).await?;
            }
            Ok::<_, DomainError>(())
        }
        .await;
        drop(to_store);
        let stored = stager.await.map_err(|e| DomainError::Internal(Box::new(e)))?;
        received?;
        stored?;
        if n == 0 {
            intake.problem("lines".to_owned(), "a list has at least one line".to_owned());
        }
        if intake.total > 0 {
            return Err(DomainError::InvalidBatch { violations: intake.violations, total: intake.total });
        }
        let running = self.enrollment_store.enrollments_running(operator, header.first, header.next).await?;
        let figures = run.finish(&running);
        Ok((figures, run.touched))
    }

    /// Starts reading what a chunk of checked lines needs.
    fn fetch_ahead(&self, run: &Run, lines: Vec<(i64, Line)>) -> Ahead {
        let this = self.clone();
        let (operator, first, next) = (run.operator.clone(), run.first, run.next);
        tokio::spawn(async move {
            let fetched = this.fetch(&operator, first, next, &lines).await;
            (lines, fetched)
        })
    }

    /// Checks that the enrolments a chunk of lines names are the operator's, and, while the
    /// list has no problems so far, reconciles the lines and hands them to be stored.
    async fn settle(
        &self,
        ahead: Ahead,
        run: &mut Run,
        intake: &mut Intake<'_>,
        to_store: &tokio::sync::mpsc::Sender<Vec<ListLine>>,
    ) -> Result<(), DomainError> {
        let (lines, fetched) = ahead.await.map_err(|e| DomainError::Internal(Box::new(e)))?;
        let fetched = fetched?;
        for (n, line) in &lines {
            if let Some(e) = line.enrollment_id
                && fetched.named.get(&e).is_none_or(|row| row.operator != run.operator)
            {
                intake.problem(format!("lines[{n}].enrollment_id"), format!("{e} is not one of your enrolments"));
            }
        }
        if intake.total > 0 {
            return Ok(()); // the list will be refused; the rest is only checked
        }
        let rows = fetched.apply(run, &lines)?;
        // A closed channel means the writer failed; its error is reported when it is joined.
        let _ = to_store.send(rows).await;
        Ok(())
    }

    /// Reconciles lists again (after another list or the register changed), one after the
    /// other: an open list is marked stale first, so that none is confirmed meanwhile, and its
    /// outcome rewritten; a confirmed list keeps its outcome, and the lines the change alters
    /// are noted against it as exceptions.
    pub async fn reconcile_again(&self, ids: Vec<i64>) -> Result<(), DomainError> {
        let mut lists = Vec::new();
        for id in ids {
            // Marks an open list stale; `false` for any other.
            let open = self.reconciliation_store.rewrite_line_outcomes(id, &[]).await?;
            if open
                || self
                    .monthly_list_store
                    .monthly_update_by_ref(id)
                    .await?
                    .is_some_and(|r| r.status == ListStatus::Confirmed)
            {
                lists.push(id);
            }
        }
        if lists.is_empty() {
            return Ok(());
        }
        let this = self.clone();
        tokio::spawn(async move {
            for id in lists {
                if let Err(e) = this.rerun(id).await {
                    tracing::error!(list = id, error = %crate::ErrorChain(&e), "a monthly list could not be reconciled again");
                }
            }
        });
        Ok(())
    }

    /// Has the lists of the months from `effective` on reconciled again after a change to the
    /// register that takes effect then (earlier months are not touched by it).
    pub async fn register_changed(&self, effective: Date) -> Result<(), DomainError> {
        let period = format!("{:04}-{:02}", effective.year(), u8::from(effective.month()));
        let mut ids = self.reconciliation_store.mark_stale_updates(&period).await?;
        ids.extend(self.reconciliation_store.confirmed_updates_since(&period).await?);
        self.reconcile_again(ids).await
    }

    /// Reconciles the lists marked stale (a hub stopped while it reconciled them).
    pub async fn resume(&self) -> Result<(), DomainError> {
        let stale = self.reconciliation_store.stale_monthly_updates().await?;
        self.reconcile_again(stale).await
    }

    async fn rerun(&self, id: i64) -> Result<(), DomainError> {
        let Some(list) = self
            .monthly_list_store
            .monthly_update_by_ref(id)
            .await?
            .filter(|r| r.status == ListStatus::Reconciled || r.status == ListStatus::Confirmed)
        else {
            return Ok(());
        };
        let confirmed = list.status == ListStatus::Confirmed;
        let (first, next) = period_bounds(&list.period)
            .ok_or_else(|| DomainError::Internal(format!("stored period {:?}", list.period).into()))?;
        let mut run = self.run_for(&list.operator, &list.period, first, next).await?;
        let all = LineFilter { include_ok: true, ..LineFilter::default() };
        let (mut after, mut exceptions) = (0, 0i64);
        loop {
            let rows = self.reconciliation_store.monthly_lines(id, &all, after, CHUNK as u32).await?;
            let Some(last) = rows.last() else { break };
            after = last.line_no;
            let lines: Vec<(i64, Line)> = rows
                .iter()
                .map(|r| ReconciledLine::from_row(r).map(|l| (l.line_no, l.line)))
                .collect::<Result<_, _>>()?;
            let redone = self.reconcile_chunk(&mut run, &lines).await?;
            let still_open = if confirmed {
                let mut changed = Vec::new();
                for (old, new) in rows.iter().zip(&redone) {
                    let later =
                        (new.detail != old.detail).then(|| new.detail.clone().unwrap_or_else(|| "[]".to_owned()));
                    exceptions += i64::from(later.is_some());
                    if later != old.later_detail {
                        changed.push((old.line_no, later));
                    }
                }
                self.reconciliation_store.note_line_exceptions(id, &changed).await?
            } else {
                self.reconciliation_store.rewrite_line_outcomes(id, &redone).await?
            };
            if !still_open {
                return Ok(()); // decided or replaced meanwhile
            }
        }
        if confirmed {
            self.reconciliation_store.count_exceptions(id, exceptions, self.clock.now()).await?;
            tracing::info!(operator = %list.operator, update = %list.update_id, exceptions, "confirmed monthly list checked against later changes");
            return Ok(());
        }
        let running = self.enrollment_store.enrollments_running(&list.operator, first, next).await?;
        let figures = serde_json::to_string(&run.finish(&running)).map_err(|e| DomainError::Internal(e.into()))?;
        self.reconciliation_store.refigure_monthly_update(id, &figures, self.clock.now()).await?;
        tracing::info!(operator = %list.operator, update = %list.update_id, "monthly list reconciled again");
        Ok(())
    }

    async fn find(&self, caller: &Caller, operator: &str, update_id: &str) -> Result<MonthlyList, DomainError> {
        let operator = owner(caller, operator)?;
        let id = update_id.trim();
        if id.is_empty() {
            return Err(DomainError::invalid("update_id", "name the list"));
        }
        let mut row = self.monthly_list_store.monthly_update(operator, id).await?;
        if let Some(r) = &row
            && self.settle_abandoned(r).await?
        {
            row = self.monthly_list_store.monthly_update(operator, id).await?;
        }
        row.ok_or_else(|| DomainError::NotFound(format!("operator {operator} has no list {id}")))
    }

    pub async fn get(&self, caller: &Caller, operator: &str, update_id: &str) -> Result<Summary, DomainError> {
        Summary::of(self.find(caller, operator, update_id).await?)
    }

    pub async fn list(
        &self,
        caller: &Caller,
        mut filter: UpdateFilter,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<Summary>, DomainError> {
        let mut v = Violations::new();
        match caller.member.role {
            Role::Operator => {
                if filter.operator.as_deref().is_some_and(|o| o != caller.member.code.as_str()) {
                    return Err(DomainError::PermissionDenied("an operator reads only its own lists".into()));
                }
                filter.operator = Some(caller.member.code.as_str().to_owned());
            }
            Role::Ict => {}
            _ => return Err(DomainError::PermissionDenied("only operators and ICT read monthly lists".into())),
        }
        if let Some(o) = &filter.operator {
            v.check("operator", OrgCode::parse(o));
        }
        if let Some(p) = &filter.period
            && (p.len() != 7 || period_bounds(p).is_none())
        {
            v.add("period", format!("{p:?} is not a period: use YYYY-MM"));
        }
        let (limit, before) = paging(&mut v, page_size, page_token, 'r');
        let before = before.unwrap_or(i64::MAX);
        v.finish()?;
        let mut rows = self.monthly_list_store.list_monthly_updates(&filter, before, limit + 1).await?;
        let mut settled = false;
        for row in &rows {
            settled |= self.settle_abandoned(row).await?;
        }
        if settled {
            rows = self.monthly_list_store.list_monthly_updates(&filter, before, limit + 1).await?;
        }
        Page::cut(rows, limit, |r| format!("r{}", r.id)).try_map(Summary::of)
    }

    pub async fn lines(
        &self,
        caller: &Caller,
        operator: &str,
        update_id: &str,
        filter: LineFilter,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<ReconciledLine>, DomainError> {
        // The request's own fields first: a bad one is refused as such whichever list it names.
        let mut v = Violations::new();
        if let Some(h) = &filter.household_code {
            v.check("household_code", HouseholdCode::parse(h));
        }
        if let Some(c) = &filter.commune_code {
            v.check("unit", commune_code(c));
        }
        let (limit, after) = paging(&mut v, page_size, page_token, 'l');
        let after = after.unwrap_or(0);
        v.finish()?;
        let list = self.find(caller, operator, update_id).await?;
        let rows = self.reconciliation_store.monthly_lines(list.id, &filter, after, limit + 1).await?;
        Page::cut(rows, limit, |r| format!("l{}", r.line_no)).try_map(|r| ReconciledLine::from_row(&r))
    }

    /// Line `line_no` of a list, with or without a discrepancy.
    pub async fn line(
        &self,
        caller: &Caller,
        operator: &str,
        update_id: &str,
        line_no: i64,
    ) -> Result<ReconciledLine, DomainError> {
        let list = self.find(caller, operator, update_id).await?;
        if line_no < 1 {
            return Err(DomainError::invalid("line_no", format!("{line_no}: lines are numbered from 1")));
        }
        let every = LineFilter { include_ok: true, ..LineFilter::default() };
        let rows = self.reconciliation_store.monthly_lines(list.id, &every, line_no - 1, 1).await?;
        match rows.into_iter().next().filter(|r| r.line_no == line_no) {
            Some(row) => ReconciledLine::from_row(&row),
            None => Err(DomainError::NotFound(format!(
                "list {} of operator {} has no line {line_no}",
                list.update_id, list.operator
            ))),
        }
    }

    /// A list and a reader of its lines in order, for an export: every line, or, with
    /// `confirmed_only`, the lines its confirmation covers.
    pub async fn export(
        &self,
        caller: &Caller,
        operator: &str,
        update_id: &str,
        confirmed_only: bool,
    ) -> Result<(Summary, LineReader), DomainError> {
        let list = self.find(caller, operator, update_id).await?;
        if list.status == ListStatus::Receiving {
            return Err(DomainError::FailedPrecondition(format!(
                "list {} is still being received; export it once it is reconciled",
                list.update_id
            )));
        }
        let ok_only = match (confirmed_only, list.confirmed_scope.as_deref()) {
            (false, _) => false,
            (true, Some(scope)) => scope == Scope::OkLines.as_str(),
            (true, None) => {
                return Err(DomainError::FailedPrecondition(format!(
                    "list {} of {} is {}, not confirmed: it has no confirmed lines",
                    list.update_id,
                    list.operator,
                    status_name(list.status)
                )));
            }
        };
        let reader =
            LineReader { lists: self.reconciliation_store.clone(), id: list.id, after: 0, ok_only, done: false };
        Ok((Summary::of(list)?, reader))
    }

    fn ict(caller: &Caller) -> Result<(), DomainError> {
        if caller.member.role != Role::Ict {
            return Err(DomainError::PermissionDenied("only ICT confirms or rejects monthly lists".into()));
        }
        Ok(())
    }

    fn open_for_decision(list: &MonthlyList) -> Result<(), DomainError> {
        if list.status != ListStatus::Reconciled {
            return Err(DomainError::FailedPrecondition(format!(
                "list {} of {} is {}; only a reconciled list is confirmed or rejected",
                list.update_id,
                list.operator,
                status_name(list.status)
            )));
        }
        if list.stale {
            return Err(DomainError::FailedPrecondition(format!(
                "list {} of {} is being reconciled again after a change; retry in a moment",
                list.update_id, list.operator
            )));
        }
        Ok(())
    }

    async fn decide(&self, list: &MonthlyList, decision: UpdateDecision<'_>) -> Result<Summary, DomainError> {
        self.reconciliation_store.decide_monthly_update(list.id, &decision).await.map_err(|e| match e {
            PortError::Conflict(crate::domain::ports::Conflict::ReconciledAgain) => {
                DomainError::FailedPrecondition(format!(
                    "list {} of {} was reconciled again meanwhile; read it and decide again",
                    list.update_id, list.operator
                ))
            }
            PortError::Conflict(_) => DomainError::FailedPrecondition(format!(
                "list {} of {} was decided or replaced meanwhile",
                list.update_id, list.operator
            )),
            other => other.into(),
        })?;
        let row = self
            .monthly_list_store
            .monthly_update_by_ref(list.id)
            .await?
            .ok_or_else(|| DomainError::Internal("the list vanished".into()))?;
        Summary::of(row)
    }

    /// Confirms a list, whole or its OK lines; the digest covers exactly the lines confirmed.
    pub async fn confirm(
        &self,
        caller: &Caller,
        operator: &str,
        update_id: &str,
        scope: Option<Scope>,
        note: &str,
    ) -> Result<Summary, DomainError> {
        Self::ict(caller)?;
        let mut v = Violations::new();
        let scope = scope.or_else(|| {
            v.add("scope", "say what the confirmation covers: WHOLE_LIST or OK_LINES");
            None
        });
        let note = v.check("note", free_text(note, 500));
        v.finish()?;
        let (scope, note) = (scope.expect("checked"), note.expect("checked"));
        let list = self.find(caller, operator, update_id).await?;
        Self::open_for_decision(&list)?;
        let filter = LineFilter { include_ok: true, ..LineFilter::default() };
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        let (mut lines, mut amount, mut after) = (0i64, 0i64, 0i64);
        loop {
            let rows = self.reconciliation_store.monthly_lines(list.id, &filter, after, CHUNK as u32).await?;
            let Some(last) = rows.last() else { break };
            after = last.line_no;
            for r in rows.iter().filter(|r| scope == Scope::WholeList || r.codes.is_empty()) {
                lines += 1;
                amount += r.amount_claimed;
                digest.update(&r.line_no.to_be_bytes());
                digest.update(&(r.line.len() as u64).to_be_bytes());
                digest.update(r.line.as_bytes());
            }
        }
        let verdict = Verdict::Confirmed {
            scope: scope.as_str().to_owned(),
            lines,
            amount,
            digest: crate::hex(digest.finish().as_ref()),
        };
        let by = caller.member.code.as_str();
        let summary = self
            .decide(
                &list,
                UpdateDecision {
                    revision: list.revision,
                    verdict,
                    by,
                    by_person: caller.person.as_deref(),
                    at: self.clock.now(),
                    note: &note,
                },
            )
            .await?;
        tracing::info!(operator = %list.operator, update = %list.update_id, scope = scope.as_str(), lines, amount, "monthly list confirmed");
        Ok(summary)
    }

    pub async fn reject(
        &self,
        caller: &Caller,
        operator: &str,
        update_id: &str,
        note: &str,
    ) -> Result<Summary, DomainError> {
        Self::ict(caller)?;
        let note = free_text(note, 500).map_err(|e| DomainError::invalid("note", e))?;
        if note.is_empty() {
            return Err(DomainError::invalid("note", "say why the list is rejected"));
        }
        let list = self.find(caller, operator, update_id).await?;
        Self::open_for_decision(&list)?;
        let by = caller.member.code.as_str();
        self.decide(
            &list,
            UpdateDecision {
                revision: list.revision,
                verdict: Verdict::Rejected,
                by,
                by_person: caller.person.as_deref(),
                at: self.clock.now(),
                note: &note,
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_found_by_a_communes_code_only() {
        assert_eq!(commune_code("66001").unwrap().as_str(), "66001");
        for refused in ["660", "66", "6600", "Gia Nghĩa", ""] {
            assert!(commune_code(refused).unwrap_err().contains(&format!("{refused:?}")), "{refused:?}");
        }
    }

    #[test]
    fn periods_are_months_of_the_programme_up_to_this_one() {
        let date = |y, m, d| Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d).unwrap();
        let start = Some(date(2022, 12, 12));
        let today = date(2025, 6, 15);
        assert!(check_period("2022-12", start, today).is_ok());
        assert!(check_period("2025-06", start, today).is_ok(), "this month is a period");
        assert!(check_period("2022-11", start, today).unwrap_err().contains("before the programme"));
        assert!(check_period("2024-13", start, today).unwrap_err().contains("YYYY-MM"));
        assert!(check_period("2024-3", start, today).unwrap_err().contains("YYYY-MM"));
        assert!(check_period("2025-07", start, today).unwrap_err().contains("future"));
        assert_eq!(previous_period(date(2024, 1, 1)), "2023-12");
        assert_eq!(period_bounds("2024-02").map(|(a, b)| days_between(a, b)), Some(29));
    }
}
