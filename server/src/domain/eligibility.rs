//! Eligibility decisions: whether the household a citizen ID, household code or certificate
//! number identifies is entitled to support on a date, under the policy in force then, and
//! why not when it is not. Every decision is stored with who asked; [`decide`] is a pure
//! function of the household's history and the policy, so it is tested without a database.

use super::context::ServiceContext;
use std::{collections::HashMap, fmt, sync::Arc};

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use super::clock::Clock;
use super::{
    DomainError, FieldViolation,
    household::{Category, CitizenId, HouseholdCode, HouseholdData, RemovalReason, format_date, name_enum, parse_date},
    member::{Caller, Role},
    policy::{PolicyRegistry, PolicyTable, PolicyVersion, Service},
    support,
    unit_registry::UnitRegistry,
    units::UnitTable,
};
use crate::domain::ports::{
    DecisionStore, RegisterStore,
    policy::{DecisionRun, StoredDecision},
};

/// How far ahead of today a decision may be asked for.
const MAX_DAYS_AHEAD: i64 = 31;

name_enum! {
    /// What a question identifies the household by.
    QueryKind {
        CitizenId = "CITIZEN_ID",
        HouseholdCode = "HOUSEHOLD_CODE",
        CertificateNumber = "CERTIFICATE_NUMBER",
    }
}

name_enum! {
    /// Why a household is not eligible.
    ReasonCode {
        NotFound = "NOT_FOUND",
        Removed = "REMOVED",
        CategoryNotCovered = "CATEGORY_NOT_COVERED",
        NotYetValid = "NOT_YET_VALID",
        NoLongerMember = "NO_LONGER_MEMBER",
        AlreadyEnrolledElsewhere = "ALREADY_ENROLLED_ELSEWHERE",
        InvalidQuery = "INVALID_QUERY",
    }
}

/// A question as it arrives.
#[derive(Debug, Clone, Default)]
pub struct QueryInput {
    pub kind: Option<QueryKind>,
    pub value: String,
    pub as_of: String,
}

/// A checked question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub kind: QueryKind,
    pub value: String,
    pub as_of: Date,
}

/// What a household is entitled to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entitlement {
    pub service: Service,
    pub monthly_amount: i64,
    pub subscriptions_allowed: u32,
    pub valid_from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
}

/// One reason a household is not eligible.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reason {
    pub code: ReasonCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removal_reason: Option<RemovalReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_ended: Option<String>,
}

impl Reason {
    fn new(code: ReasonCode, message: String, date: Option<Date>) -> Self {
        Self { code, message, date: date.map(format_date), removal_reason: None, support_ended: None }
    }
}

/// The answer to one question: stored as given (JSON), so that it reads back the same.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Answer {
    pub eligible: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub household_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub head_name_masked: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entitlements: Vec<Entitlement>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
    pub policy_version: i64,
}

/// A decision as given: the question, who asked, when, and the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// `<call id>-<index in the call>`.
    pub id: String,
    pub decided_at: OffsetDateTime,
    pub asked_by: String,
    pub query: Query,
    pub answer: Answer,
}

/// A batch answer: a decision, or why the question could not be asked.
#[derive(Debug, Clone)]
pub enum BatchAnswer {
    Decided(Box<Decision>),
    Invalid { input: QueryInput, violations: Vec<FieldViolation> },
}

/// One state of a household, as the decision reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub valid_from: Date,
    pub valid_to: Option<Date>,
    pub removal: Option<RemovalReason>,
    pub facts: Facts,
}

/// What decisions read of a household's state: read from the stored form without what no
/// decision uses (members' names, the address, the flags), which a batch call of a million
/// questions would otherwise parse and drop a million times.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "StoredFacts")]
pub struct Facts {
    pub category: Category,
    pub head_name: String,
    pub commune_code: String,
    pub certificate_number: Option<String>,
    /// The members' citizen IDs.
    pub citizen_ids: Vec<String>,
}

impl Facts {
    pub fn from_stored(json: &str) -> Result<Self, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }
}

impl From<&HouseholdData> for Facts {
    fn from(d: &HouseholdData) -> Self {
        Self {
            category: d.category,
            head_name: d.head_name.clone(),
            commune_code: d.commune_code.clone(),
            certificate_number: d.certificate.as_ref().map(|c| c.number.clone()),
            citizen_ids: d.members.iter().map(|m| m.citizen_id.clone()).collect(),
        }
    }
}

/// The stored form of [`HouseholdData`], as far as [`Facts`] go; other fields are skipped.
#[derive(Deserialize)]
struct StoredFacts {
    category: Category,
    head_name: String,
    commune_code: String,
    #[serde(default)]
    certificate: Option<StoredCertificate>,
    members: Vec<StoredMember>,
}

#[derive(Deserialize)]
struct StoredCertificate {
    number: String,
}

/// A member as stored: `[citizen_id, full_name, relationship, birth_year]`.
#[derive(Deserialize)]
struct StoredMember(String, serde::de::IgnoredAny, serde::de::IgnoredAny, serde::de::IgnoredAny);

impl From<StoredFacts> for Facts {
    fn from(s: StoredFacts) -> Self {
        Self {
            category: s.category,
            head_name: s.head_name,
            commune_code: s.commune_code,
            certificate_number: s.certificate.map(|c| c.number),
            citizen_ids: s.members.into_iter().map(|m| m.0).collect(),
        }
    }
}

impl State {
    fn holds_on(&self, date: Date) -> bool {
        self.valid_from <= date && self.valid_to.is_none_or(|to| date < to)
    }
}

impl History {
    /// The household's state on a date, if it had one.
    pub fn state_on(&self, date: Date) -> Option<&State> {
        self.states.iter().find(|s| s.holds_on(date))
    }
}

/// Every state of one household, oldest first, and its enrolments with any operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub code: String,
    pub states: Vec<State>,
    /// Its subsidised lines with any operator, ever.
    pub enrollments: Vec<Holding>,
}

/// A subsidised line a household holds or held: with which operator, and when.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "(String, String, Option<String>)")]
pub struct Holding {
    pub operator: String,
    pub start_date: Date,
    /// The first day without the line; `None` while it runs.
    pub end_date: Option<Date>,
}

impl Holding {
    /// Whether the line runs on `date`.
    pub fn runs_on(&self, date: Date) -> bool {
        self.start_date <= date && self.end_date.is_none_or(|end| end > date)
    }
}

impl TryFrom<(String, String, Option<String>)> for Holding {
    type Error = String;

    fn try_from((operator, start, end): (String, String, Option<String>)) -> Result<Self, String> {
        Ok(Self { operator, start_date: parse_date(&start)?, end_date: end.as_deref().map(parse_date).transpose()? })
    }
}

/// The head's family name and the initials of the other names: `Nguyễn Văn An` → `Nguyễn V. A.`.
pub fn mask_name(full: &str) -> String {
    let mut words = full.split_whitespace();
    let Some(family) = words.next() else { return String::new() };
    let mut masked = family.to_owned();
    for word in words {
        if let Some(first) = word.chars().next() {
            masked.push(' ');
            masked.extend(first.to_uppercase());
            masked.push('.');
        }
    }
    masked
}

/// Whether a state carries what the question asks about.
fn matches(state: &State, kind: QueryKind, value: &str) -> bool {
    match kind {
        QueryKind::CitizenId => state.facts.citizen_ids.iter().any(|id| id == value),
        QueryKind::HouseholdCode => true,
        QueryKind::CertificateNumber => state.facts.certificate_number.as_deref() == Some(value),
    }
}

fn what(kind: QueryKind) -> &'static str {
    match kind {
        QueryKind::CitizenId => "citizen ID",
        QueryKind::HouseholdCode => "household code",
        QueryKind::CertificateNumber => "certificate number",
    }
}

fn january_first(year: i32) -> Option<Date> {
    Date::from_calendar_date(year, time::Month::January, 1).ok()
}

fn earlier(a: Option<Date>, b: Option<Date>) -> Option<Date> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Decides a question from the histories of the households its value ever matched, under the
/// policy in force on the question's date. `operator`: the asking operator's code, for the
/// amounts the Ministry set per operator.
pub fn decide(
    query: &Query,
    histories: &[History],
    table: &PolicyTable,
    policy: &PolicyVersion,
    operator: Option<&str>,
) -> Answer {
    let as_of = query.as_of;
    let no = |reasons: Vec<Reason>, household: Option<&History>| Answer {
        eligible: false,
        household_code: household.map(|h| h.code.clone()),
        reasons,
        policy_version: policy.version,
        ..Answer::default()
    };

    // The household the value identifies on the date: a state holding then that carries the
    // value; one on the list rather than one taken off it.
    let mut found: Option<(&History, usize)> = None;
    for h in histories {
        if let Some(i) = h.states.iter().position(|s| s.holds_on(as_of))
            && matches(&h.states[i], query.kind, &query.value)
            && found.is_none_or(|(fh, fi)| fh.states[fi].removal.is_some() && h.states[i].removal.is_none())
        {
            found = Some((h, i));
        }
    }
    let Some((household, i)) = found else {
        // Not on the date: perhaps before, perhaps later.
        let mut reasons = Vec::new();
        let mut household = None;
        let past = histories
            .iter()
            .flat_map(|h| h.states.iter().map(move |s| (h, s)))
            .filter(|(_, s)| s.valid_to.is_some_and(|to| to <= as_of) && matches(s, query.kind, &query.value))
            .max_by_key(|(_, s)| s.valid_to);
        if let Some((h, s)) = past {
            let until = s.valid_to.expect("filtered on valid_to");
            reasons.push(Reason::new(
                ReasonCode::NoLongerMember,
                format!("the {} belonged to household {} until {until}, not on {as_of}", what(query.kind), h.code),
                Some(until),
            ));
            household = Some(h);
        }
        let later = histories
            .iter()
            .flat_map(|h| h.states.iter().map(move |s| (h, s)))
            .filter(|(_, s)| s.valid_from > as_of && matches(s, query.kind, &query.value))
            .min_by_key(|(_, s)| s.valid_from);
        if let Some((h, s)) = later {
            reasons.push(Reason::new(
                ReasonCode::NotYetValid,
                format!("household {} is on the list for this {} only from {}", h.code, what(query.kind), s.valid_from),
                Some(s.valid_from),
            ));
            household = household.or(Some(h));
        }
        if reasons.is_empty() {
            reasons.push(Reason::new(
                ReasonCode::NotFound,
                format!("no household on the register has this {}", what(query.kind)),
                None,
            ));
        }
        return no(reasons, household);
    };

    let state = &household.states[i];
    // When support runs is one function of the history and the policy's versions, whatever
    // path asks (see `support`).
    let periods = support::periods(&household.states, table);
    let (start, end) = match support::on(&periods, as_of) {
        Some(period) => (period.from, period.to),
        None => {
            // Not supported on the date: since when it does not qualify, and when support ended.
            let ended = support::ended_by(&periods, as_of);
            let mut reason = match state.removal {
                Some(removal) => {
                    let mut r = Reason::new(
                        ReasonCode::Removed,
                        format!(
                            "household {} was taken off the list on {} ({removal})",
                            household.code, state.valid_from
                        ),
                        Some(state.valid_from),
                    );
                    r.removal_reason = Some(removal);
                    r
                }
                None => {
                    let since = since_category(household, i);
                    Reason::new(
                        ReasonCode::CategoryNotCovered,
                        format!(
                            "household {} is in category {} since {since}, which the policy does not support",
                            household.code, state.facts.category
                        ),
                        Some(since),
                    )
                }
            };
            if let Some(end) = ended {
                reason.support_ended = Some(format_date(end));
                reason.message.push_str(&format!("; support ended on {end}"));
            }
            let mut answer = no(vec![reason], Some(household));
            answer.category = Some(state.facts.category);
            answer.head_name_masked = mask_name(&state.facts.head_name);
            return answer;
        }
    };

    let year_start = january_first(as_of.year());
    let next_year = january_first(as_of.year() + 1);
    let entitlements = policy
        .rules
        .services
        .iter()
        .filter(|rule| {
            !rule.listed_communes_only || policy.rules.broadband_communes.contains(&state.facts.commune_code)
        })
        .map(|rule| {
            let mut from = start.max(policy.valid_from);
            let mut to = earlier(end, policy.valid_to);
            if policy.yearly_amounts(rule.service) {
                from = year_start.map_or(from, |y| from.max(y));
                to = earlier(to, next_year);
            }
            Entitlement {
                service: rule.service,
                monthly_amount: policy.monthly_amount(rule, operator, as_of.year()),
                subscriptions_allowed: policy.rules.subscriptions_per_household,
                valid_from: format_date(from),
                valid_to: to.map(format_date),
            }
        })
        .collect();
    let mut answer = Answer {
        eligible: true,
        household_code: Some(household.code.clone()),
        category: Some(state.facts.category),
        head_name_masked: mask_name(&state.facts.head_name),
        entitlements,
        reasons: Vec::new(),
        policy_version: policy.version,
    };
    // An operator is told when the household's lines are all taken elsewhere, not by whom.
    if let Some(asker) = operator {
        let allowed = policy.rules.subscriptions_per_household as usize;
        let elsewhere = household.enrollments.iter().filter(|e| e.operator != asker && e.runs_on(as_of)).count();
        if elsewhere >= allowed {
            answer.eligible = false;
            answer.entitlements.clear();
            answer.reasons.push(Reason::new(
                ReasonCode::AlreadyEnrolledElsewhere,
                format!(
                    "household {} already holds its {allowed} subsidised subscription(s) with another operator",
                    household.code
                ),
                None,
            ));
        }
    }
    answer
}

/// The first day of the unbroken run of states before and including `i` in `i`'s category.
fn since_category(household: &History, i: usize) -> Date {
    let states = &household.states;
    let mut j = i;
    while j > 0 && states[j - 1].facts.category == states[i].facts.category && states[j - 1].removal.is_none() {
        j -= 1;
    }
    states[j].valid_from
}

/// Gives and records eligibility decisions.
#[derive(Debug, Clone)]
pub struct EligibilityService {
    decision_store: Arc<dyn DecisionStore>,
    register_store: Arc<dyn RegisterStore>,
    units: Arc<UnitRegistry>,
    policy: Arc<PolicyRegistry>,
    clock: Clock,
}

/// A new call's id: 32 hex digits, the first 12 the time in milliseconds and the rest random,
/// so that ids sort by time and the index on them grows at its end. Decisions of the call
/// are `<call id>-<index>`.
pub fn new_call_id() -> String {
    use ring::rand::{SecureRandom, SystemRandom};
    let millis = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as u64;
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    SystemRandom::new().fill(&mut bytes[6..]).expect("the system random source works");
    crate::hex(&bytes)
}

/// What the checks of one question need.
#[derive(Debug)]
pub struct QueryContext {
    units: Arc<UnitTable>,
    policy: Arc<PolicyTable>,
    today: Date,
}

impl QueryContext {
    pub fn units(&self) -> &UnitTable {
        &self.units
    }

    pub fn policy(&self) -> &PolicyTable {
        &self.policy
    }

    /// The first day the programme had rules.
    pub fn first_policy_day(&self) -> Option<Date> {
        self.policy.first_day()
    }
}

impl EligibilityService {
    /// The service over its ports. Single questions read the register one at a time through
    /// `register_store`; a hub puts a read model in front that reads those asked at the same
    /// time together (`read_model::RegisterReadModel`).
    /// Reads households' histories through the context's register (the hub's read model).
    pub fn new(context: &ServiceContext) -> Self {
        Self {
            decision_store: context.store.clone(),
            register_store: context.register.clone(),
            units: context.units.clone(),
            policy: context.policy.clone(),
            clock: context.clock.clone(),
        }
    }

    /// The clock the service reads today's date from.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Decides one checked question, read together with the questions asked at the same time.
    pub async fn decide_one(
        &self,
        cx: &QueryContext,
        query: Query,
        caller: &Caller,
        call_id: &str,
    ) -> Result<Decision, DomainError> {
        Ok(self.decide_with_histories(cx, query, caller, call_id, true).await?.0)
    }

    /// [`Self::decide_one`], with the histories it read; without `enrollments`, whatever
    /// lines the household holds do not count (a transfer takes one over).
    pub async fn decide_with_histories(
        &self,
        cx: &QueryContext,
        query: Query,
        caller: &Caller,
        call_id: &str,
        enrollments: bool,
    ) -> Result<(Decision, Vec<History>), DomainError> {
        let values = std::slice::from_ref(&query.value);
        let mut histories = self
            .register_store
            .histories_matching(query.kind, values, false)
            .await?
            .pop()
            .map(|(_, h)| h)
            .unwrap_or_default();
        if !enrollments {
            histories.iter_mut().for_each(|h| h.enrollments.clear());
        }
        let policy = cx
            .policy
            .in_force(query.as_of)
            .ok_or_else(|| DomainError::FailedPrecondition(format!("no policy was in force on {}", query.as_of)))?;
        let operator = (caller.member.role == Role::Operator).then(|| caller.member.code.as_str());
        let answer = decide(&query, &histories, &cx.policy, policy, operator);
        let decision = Decision {
            id: format!("{call_id}-0"),
            decided_at: self.clock.now(),
            asked_by: caller.member.code.as_str().to_owned(),
            query,
            answer,
        };
        Ok((decision, histories))
    }

    pub fn policy(&self) -> &Arc<PolicyRegistry> {
        &self.policy
    }

    pub async fn context(&self) -> Result<QueryContext, DomainError> {
        Ok(QueryContext {
            units: self.units.table().await?,
            policy: self.policy.table().await?,
            today: self.clock.today(),
        })
    }

    /// Checks a question; `field` prefixes the names of bad fields.
    pub fn check_query(cx: &QueryContext, input: &QueryInput, field: &str) -> Result<Query, Vec<FieldViolation>> {
        let mut v = Vec::new();
        let f = |name: &str| if field.is_empty() { name.to_owned() } else { format!("{field}.{name}") };
        let value = match input.kind {
            None => {
                v.push(FieldViolation::new(f("key"), "give one of citizen_id, household_code or certificate_number"));
                None
            }
            Some(kind) => {
                let field = f(&kind.as_str().to_ascii_lowercase());
                let parsed = match kind {
                    QueryKind::CitizenId => CitizenId::parse(&input.value, &cx.units).map(|c| c.as_str().to_owned()),
                    QueryKind::HouseholdCode => HouseholdCode::parse(&input.value).map(|c| c.as_str().to_owned()),
                    QueryKind::CertificateNumber => {
                        let n = input.value.trim();
                        if n.is_empty() || n.chars().count() > 100 {
                            Err("a certificate number of 1 to 100 characters is required".to_owned())
                        } else {
                            Ok(n.to_owned())
                        }
                    }
                };
                parsed.map_err(|e| v.push(FieldViolation::new(field, e))).ok().map(|value| (kind, value))
            }
        };
        let as_of = if input.as_of.is_empty() {
            Some(cx.today)
        } else {
            match parse_date(&input.as_of) {
                Err(e) => {
                    v.push(FieldViolation::new(f("as_of"), e));
                    None
                }
                Ok(d) => {
                    let first = cx.policy.first_day();
                    if first.is_none_or(|first| d < first) {
                        let since = first.map_or("no policy is recorded".to_owned(), |f| format!("the first from {f}"));
                        v.push(FieldViolation::new(
                            f("as_of"),
                            format!("{d} is before the programme's rules ({since})"),
                        ));
                        None
                    } else if d > cx.today + time::Duration::days(MAX_DAYS_AHEAD) {
                        v.push(FieldViolation::new(
                            f("as_of"),
                            format!("{d} is more than {MAX_DAYS_AHEAD} days after today ({})", cx.today),
                        ));
                        None
                    } else {
                        Some(d)
                    }
                }
            }
        };
        match (value, as_of) {
            (Some((kind, value)), Some(as_of)) if v.is_empty() => Ok(Query { kind, value, as_of }),
            _ => Err(v),
        }
    }

    /// Decides checked questions; decision `i` is numbered `<call_id>-<numbers[i]>`. Nothing
    /// is stored here: the caller stores the decisions before the asker sees them.
    pub async fn decide_all(
        &self,
        cx: &QueryContext,
        queries: &[Query],
        caller: &Caller,
        call_id: &str,
        numbers: &[usize],
    ) -> Result<Vec<Decision>, DomainError> {
        let mut by_kind: HashMap<QueryKind, Vec<String>> = HashMap::new();
        for q in queries {
            by_kind.entry(q.kind).or_default().push(q.value.clone());
        }
        let mut histories: HashMap<QueryKind, HashMap<String, Vec<History>>> = HashMap::new();
        for (kind, mut values) in by_kind {
            values.sort_unstable();
            values.dedup();
            let found = self.register_store.histories_matching(kind, &values, true).await?;
            histories.entry(kind).or_default().extend(found);
        }
        let operator = (caller.member.role == Role::Operator).then(|| caller.member.code.as_str());
        let decided_at = self.clock.now();
        let empty = Vec::new();
        queries
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let policy = cx
                    .policy
                    .in_force(q.as_of)
                    .ok_or_else(|| DomainError::FailedPrecondition(format!("no policy was in force on {}", q.as_of)))?;
                let found = histories.get(&q.kind).and_then(|h| h.get(q.value.as_str())).unwrap_or(&empty);
                Ok(Decision {
                    id: format!("{call_id}-{}", numbers[i]),
                    decided_at,
                    asked_by: caller.member.code.as_str().to_owned(),
                    query: q.clone(),
                    answer: decide(q, found, &cx.policy, policy, operator),
                })
            })
            .collect()
    }

    /// Stores the decisions of a batch call, run by run (single checks are stored with the
    /// call's audit record). `decisions` are in the order of the call.
    /// Returns what the call's audit record covers of the runs stored.
    pub async fn record_batch(
        &self,
        decisions: &[&Decision],
        request_id: &str,
    ) -> Result<Vec<crate::audit::RunSummary>, DomainError> {
        if decisions.is_empty() {
            return Ok(Vec::new());
        }
        let runs = decision_runs(decisions, request_id).map_err(|e| DomainError::Internal(e.into()))?;
        self.decision_store.record_decision_runs(&runs).await?;
        Ok(runs.iter().map(crate::audit::RunSummary::of).collect())
    }

    /// A decision given earlier. An operator reads only the decisions it asked for.
    pub async fn get(&self, id: &str, caller: &Caller) -> Result<Decision, DomainError> {
        let not_found = || DomainError::NotFound(format!("no decision {id:?}"));
        let (call_id, idx) = split_id(id).map_err(|e| DomainError::invalid("decision_id", e))?;
        let purged = |asked_by: &str, at: Option<OffsetDateTime>| {
            at.map(|at| {
                if caller.member.role == Role::Operator && asked_by != caller.member.code.as_str() {
                    return not_found();
                }
                DomainError::FailedPrecondition(format!(
                    "decision {id} was purged on {} under the retention policy: the value asked and the answer are \
                     no longer kept; the audit record of its call stays",
                    format_date(at.date())
                ))
            })
        };
        let decision = match self.decision_store.decision(call_id, idx).await? {
            Some(row) => match purged(&row.asked_by, row.purged_at) {
                Some(e) => return Err(e),
                None => Decision::from_row(row),
            },
            None => match self.decision_store.decision_run(call_id, idx).await? {
                Some(run) if run.purged_at.is_some() => {
                    return Err(purged(&run.asked_by, run.purged_at).expect("purged"));
                }
                Some(run) => match Decision::from_run(run, idx) {
                    Ok(Some(d)) => Ok(d),
                    // The run holds no decision at idx: the question there could not be asked.
                    Ok(None) => return Err(not_found()),
                    Err(e) => Err(e),
                },
                None => return Err(not_found()),
            },
        }
        .map_err(|e| DomainError::Internal(e.into()))?;
        if caller.member.role == Role::Operator && decision.asked_by != caller.member.code.as_str() {
            // Not "permission denied": whether a decision exists is not another operator's business.
            return Err(not_found());
        }
        Ok(decision)
    }
}

/// Decisions of a batch call stored in one row at most.
const DECISIONS_PER_RUN: usize = 1_024;

/// A run's decisions as stored: the question's kind and date said once for the run (an entry
/// says its own only where it differs), and each distinct answer once, without the
/// household's code and masked name, which each entry carries. A million decisions take some
/// 70 bytes each instead of 300.
#[derive(Serialize)]
struct RunBody<'a> {
    kind: &'static str,
    as_of: String,
    answers: Vec<Answer>,
    entries: Vec<RunEntry<'a>>,
}

#[derive(Serialize)]
struct RunEntry<'a> {
    #[serde(rename = "i")]
    idx: i64,
    #[serde(rename = "v")]
    value: &'a str,
    /// Index into the run's answers.
    #[serde(rename = "a")]
    answer: usize,
    #[serde(rename = "h", skip_serializing_if = "Option::is_none")]
    household_code: Option<&'a str>,
    #[serde(rename = "m", skip_serializing_if = "str::is_empty")]
    head_name_masked: &'a str,
    #[serde(rename = "k", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(rename = "d", skip_serializing_if = "Option::is_none")]
    as_of: Option<String>,
}

#[derive(Deserialize)]
struct StoredRunBody {
    kind: String,
    as_of: String,
    answers: Vec<Answer>,
    entries: Vec<StoredRunItem>,
}

#[derive(Deserialize)]
struct StoredRunItem {
    #[serde(rename = "i")]
    idx: i64,
    #[serde(rename = "v")]
    value: String,
    #[serde(rename = "a")]
    answer: usize,
    #[serde(rename = "h", default)]
    household_code: Option<String>,
    #[serde(rename = "m", default)]
    head_name_masked: String,
    #[serde(rename = "k", default)]
    kind: Option<String>,
    #[serde(rename = "d", default)]
    as_of: Option<String>,
}

/// The first form of a run (before the compact one): every decision whole.
#[derive(Deserialize)]
struct StoredRunEntry {
    idx: i64,
    kind: String,
    value: String,
    as_of: String,
    answer: Answer,
}

/// A run's body: the decisions of `decisions` (one run, in order) with their indexes.
fn run_body(decisions: &[&Decision], ids: &[(&str, i64)]) -> String {
    let first = decisions[0];
    let (kind, as_of) = (first.query.kind.as_str(), first.query.as_of);
    let mut answers: Vec<Answer> = Vec::new();
    let mut known: HashMap<Answer, usize> = HashMap::new();
    let entries = decisions
        .iter()
        .zip(ids)
        .map(|(d, (_, idx))| {
            let shared = Answer { household_code: None, head_name_masked: String::new(), ..d.answer.clone() };
            let answer = match known.get(&shared) {
                Some(&i) => i,
                None => {
                    answers.push(shared.clone());
                    known.insert(shared, answers.len() - 1);
                    answers.len() - 1
                }
            };
            RunEntry {
                idx: *idx,
                value: &d.query.value,
                answer,
                household_code: d.answer.household_code.as_deref(),
                head_name_masked: &d.answer.head_name_masked,
                kind: (d.query.kind.as_str() != kind).then(|| d.query.kind.as_str()),
                as_of: (d.query.as_of != as_of).then(|| format_date(d.query.as_of)),
            }
        })
        .collect();
    serde_json::to_string(&RunBody { kind, as_of: format_date(as_of), answers, entries }).expect("answers serialise")
}

/// Splits a batch call's decisions (in order) into runs decided together.
fn decision_runs(decisions: &[&Decision], request_id: &str) -> Result<Vec<DecisionRun>, String> {
    // Each id read once: (call id, index) beside its decision.
    let ids = decisions.iter().map(|d| split_id(&d.id)).collect::<Result<Vec<_>, _>>()?;
    let mut runs = Vec::new();
    let mut start = 0;
    while start < decisions.len() {
        let (first, (call_id, _)) = (decisions[start], ids[start]);
        let len = decisions[start..]
            .iter()
            .zip(&ids[start..])
            .take(DECISIONS_PER_RUN)
            .take_while(|(d, (c, _))| d.decided_at == first.decided_at && d.asked_by == first.asked_by && *c == call_id)
            .count();
        let end = start + len;
        if ids[start..end].windows(2).any(|w| w[0].1 >= w[1].1) {
            return Err(format!("the decisions of call {call_id} are not in order"));
        }
        runs.push(DecisionRun {
            call_id: call_id.to_owned(),
            first_idx: ids[start].1,
            last_idx: ids[end - 1].1,
            request_id: request_id.to_owned(),
            asked_by: first.asked_by.clone(),
            decided_at: first.decided_at,
            decisions: len as i64,
            body: run_body(&decisions[start..end], &ids[start..end]),
            purged_by: None,
            purged_at: None,
            body_digest: None,
        });
        start = end;
    }
    Ok(runs)
}

/// `<call id>-<index>`.
fn split_id(id: &str) -> Result<(&str, i64), String> {
    id.rsplit_once('-')
        .and_then(|(call, idx)| Some((call, idx.parse().ok()?)))
        .ok_or_else(|| format!("{id:?} is not a decision id"))
}

impl Decision {
    pub fn to_row(&self, request_id: &str) -> StoredDecision {
        let (call_id, idx) = split_id(&self.id).expect("decision ids are <call>-<index>");
        StoredDecision {
            call_id: call_id.to_owned(),
            idx,
            request_id: request_id.to_owned(),
            asked_by: self.asked_by.clone(),
            decided_at: self.decided_at,
            query_kind: self.query.kind.as_str().to_owned(),
            query_value: self.query.value.clone(),
            as_of: self.query.as_of,
            household_code: self.answer.household_code.clone(),
            eligible: self.answer.eligible,
            policy_version: self.answer.policy_version,
            body: serde_json::to_string(&self.answer).expect("answers serialise"),
            purged_by: None,
            purged_at: None,
        }
    }

    /// Decision `idx` of a stored run, when the run holds one.
    fn from_run(run: DecisionRun, idx: i64) -> Result<Option<Self>, String> {
        let bad = |e: serde_json::Error| format!("stored decisions of call {}: {e}", run.call_id);
        let (kind, value, as_of, answer) = if run.body.starts_with('[') {
            let entries: Vec<StoredRunEntry> = serde_json::from_str(&run.body).map_err(bad)?;
            let Some(e) = entries.into_iter().find(|e| e.idx == idx) else { return Ok(None) };
            (e.kind, e.value, e.as_of, e.answer)
        } else {
            let mut body: StoredRunBody = serde_json::from_str(&run.body).map_err(bad)?;
            let Some(e) = body.entries.into_iter().find(|e| e.idx == idx) else { return Ok(None) };
            let count = body.answers.len();
            let shared = body.answers.get_mut(e.answer).ok_or_else(|| {
                format!("stored decisions of call {}: decision {idx} names answer {} of {count}", run.call_id, e.answer)
            })?;
            let answer = Answer {
                household_code: e.household_code,
                head_name_masked: e.head_name_masked,
                ..std::mem::take(shared)
            };
            (e.kind.unwrap_or(body.kind), e.value, e.as_of.unwrap_or(body.as_of), answer)
        };
        Ok(Some(Self {
            id: format!("{}-{idx}", run.call_id),
            decided_at: run.decided_at,
            asked_by: run.asked_by,
            query: Query { kind: QueryKind::parse(&kind)?, value, as_of: parse_date(&as_of)? },
            answer,
        }))
    }

    fn from_row(row: StoredDecision) -> Result<Self, String> {
        let answer: Answer = serde_json::from_str(&row.body).map_err(|e| format!("stored decision: {e}"))?;
        Ok(Self {
            id: format!("{}-{}", row.call_id, row.idx),
            decided_at: row.decided_at,
            asked_by: row.asked_by,
            query: Query { kind: QueryKind::parse(&row.query_kind)?, value: row.query_value, as_of: row.as_of },
            answer,
        })
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} as of {}", self.kind, self.value, self.as_of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        household::{HouseholdFlags, HouseholdMember, Relationship},
        policy::{AmountRule, reference_policy},
    };
    use time::macros::date;

    const HEAD: &str = "067080001234";
    const CHILD: &str = "067210004321";

    fn policy() -> PolicyVersion {
        PolicyVersion {
            version: 1,
            valid_from: date!(2022 - 12 - 12),
            valid_to: None,
            rules: reference_policy().unwrap().remove(0),
            recorded_by: None,
            recorded_at: None,
            withdrawal: None,
        }
    }

    fn data(category: Category, members: &[&str]) -> HouseholdData {
        HouseholdData {
            category,
            head_name: "Nguyễn Văn An".into(),
            commune_code: "24611".into(),
            address: String::new(),
            certificate: None,
            flags: HouseholdFlags::default(),
            members: members
                .iter()
                .map(|id| HouseholdMember {
                    citizen_id: (*id).into(),
                    full_name: "Nguyễn Văn An".into(),
                    relationship: Relationship::Head,
                    birth_year: 1980,
                })
                .collect(),
        }
    }

    fn state(from: Date, to: Option<Date>, removal: Option<RemovalReason>, data: HouseholdData) -> State {
        State { valid_from: from, valid_to: to, removal, facts: Facts::from(&data) }
    }

    fn ask(value: &str, as_of: Date, histories: &[History], policy: &PolicyVersion) -> Answer {
        let table = PolicyTable::new(vec![policy.clone()]);
        decide(
            &Query { kind: QueryKind::CitizenId, value: value.into(), as_of },
            histories,
            &table,
            policy,
            Some("VNPT"),
        )
    }

    fn removed_on(day: Date, reason: RemovalReason) -> Vec<History> {
        vec![History {
            code: "HH-1".into(),
            states: vec![
                state(date!(2024 - 01 - 01), Some(day), None, data(Category::Poor, &[HEAD])),
                state(day, None, Some(reason), data(Category::Poor, &[HEAD])),
            ],
            enrollments: Vec::new(),
        }]
    }

    #[test]
    fn a_member_of_a_poor_household_is_entitled_to_mobile_support() {
        let h = vec![History {
            code: "HH-1".into(),
            states: vec![state(date!(2024 - 01 - 01), None, None, data(Category::Poor, &[HEAD, CHILD]))],
            enrollments: Vec::new(),
        }];
        let a = ask(CHILD, date!(2025 - 02 - 01), &h, &policy());
        assert!(a.eligible, "{a:?}");
        assert_eq!(a.household_code.as_deref(), Some("HH-1"));
        assert_eq!(a.head_name_masked, "Nguyễn V. A.");
        assert_eq!(
            a.entitlements,
            [Entitlement {
                service: Service::Mobile,
                monthly_amount: 60_000,
                subscriptions_allowed: 1,
                valid_from: "2024-01-01".into(),
                valid_to: None,
            }]
        );
    }

    #[test]
    fn a_household_out_of_poverty_keeps_support_to_the_end_of_the_year() {
        let h = removed_on(date!(2025 - 03 - 15), RemovalReason::OutOfPoverty);
        let a = ask(HEAD, date!(2025 - 06 - 01), &h, &policy());
        assert!(a.eligible, "{a:?}");
        assert_eq!(a.entitlements[0].valid_to.as_deref(), Some("2026-01-01"));
        // Before the removal, the end is already known.
        let a = ask(HEAD, date!(2025 - 02 - 01), &h, &policy());
        assert_eq!(a.entitlements[0].valid_to.as_deref(), Some("2026-01-01"));

        let a = ask(HEAD, date!(2026 - 01 - 01), &h, &policy());
        assert!(!a.eligible);
        let r = &a.reasons[0];
        assert_eq!(r.code, ReasonCode::Removed);
        assert_eq!(r.date.as_deref(), Some("2025-03-15"));
        assert_eq!(r.removal_reason, Some(RemovalReason::OutOfPoverty));
        assert_eq!(r.support_ended.as_deref(), Some("2026-01-01"));
    }

    #[test]
    fn a_household_removed_for_a_death_loses_support_on_the_day() {
        let h = removed_on(date!(2025 - 03 - 15), RemovalReason::Deceased);
        assert!(ask(HEAD, date!(2025 - 03 - 14), &h, &policy()).eligible);
        let a = ask(HEAD, date!(2025 - 03 - 15), &h, &policy());
        assert!(!a.eligible);
        assert_eq!(a.reasons[0].code, ReasonCode::Removed);
        assert_eq!(a.reasons[0].support_ended.as_deref(), Some("2025-03-15"));
    }

    #[test]
    fn a_category_the_policy_does_not_cover_is_named() {
        let h = vec![History {
            code: "HH-1".into(),
            states: vec![state(date!(2024 - 01 - 01), None, None, data(Category::Other, &[HEAD]))],
            enrollments: Vec::new(),
        }];
        let a = ask(HEAD, date!(2025 - 02 - 01), &h, &policy());
        assert!(!a.eligible);
        assert_eq!(a.reasons[0].code, ReasonCode::CategoryNotCovered);
        assert_eq!(a.reasons[0].support_ended, None);
    }

    #[test]
    fn unknown_later_and_former_members_get_their_own_reasons() {
        let h = vec![History {
            code: "HH-1".into(),
            states: vec![
                state(date!(2024 - 01 - 01), Some(date!(2025 - 01 - 01)), None, data(Category::Poor, &[HEAD, CHILD])),
                state(date!(2025 - 01 - 01), None, None, data(Category::Poor, &[HEAD])),
            ],
            enrollments: Vec::new(),
        }];
        let a = ask(CHILD, date!(2025 - 02 - 01), &h, &policy());
        assert_eq!(a.reasons[0].code, ReasonCode::NoLongerMember);
        assert_eq!(a.reasons[0].date.as_deref(), Some("2025-01-01"));
        let a = ask(HEAD, date!(2023 - 06 - 01), &h, &policy());
        assert_eq!(a.reasons[0].code, ReasonCode::NotYetValid);
        assert_eq!(a.reasons[0].date.as_deref(), Some("2024-01-01"));
        let a = ask("067080009999", date!(2025 - 02 - 01), &[], &policy());
        assert_eq!(a.reasons[0].code, ReasonCode::NotFound);
        assert_eq!(a.household_code, None);
    }

    #[test]
    fn broadband_communes_and_operator_amounts_come_from_the_policy() {
        let mut p = policy();
        p.rules.broadband_communes = vec!["24611".into()];
        p.rules.amounts.push(AmountRule {
            operator: "VNPT".into(),
            year: 2025,
            service: Service::Mobile,
            monthly_amount: 55_000,
        });
        let h = vec![History {
            code: "HH-1".into(),
            states: vec![state(date!(2024 - 01 - 01), None, None, data(Category::NearPoor, &[HEAD]))],
            enrollments: Vec::new(),
        }];
        let a = ask(HEAD, date!(2025 - 02 - 01), &h, &p);
        let got: Vec<(Service, i64, &str, Option<&str>)> = a
            .entitlements
            .iter()
            .map(|e| (e.service, e.monthly_amount, e.valid_from.as_str(), e.valid_to.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (Service::Mobile, 55_000, "2025-01-01", Some("2026-01-01")),
                (Service::FixedBroadband, 130_000, "2024-01-01", None),
            ]
        );
    }

    #[test]
    fn facts_read_from_the_stored_form_are_the_data_s() {
        let mut d = data(Category::NearPoor, &[HEAD, CHILD]);
        d.address = "Thôn 5".into();
        d.certificate = Some(crate::domain::household::Certificate {
            number: "12/GCN".into(),
            issued_on: "2024-01-02".into(),
            issuing_unit: "24611".into(),
        });
        d.flags.wants_device = true;
        let (stored, _) = d.stored_form();
        let facts = Facts::from_stored(&stored).unwrap();
        assert_eq!(facts, Facts::from(&d));
        assert_eq!(facts.citizen_ids, [HEAD, CHILD]);
        assert_eq!(facts.certificate_number.as_deref(), Some("12/GCN"));
        d.certificate = None;
        assert_eq!(Facts::from_stored(&d.stored_form().0).unwrap().certificate_number, None);
        assert!(Facts::from_stored(r#"{"category":"POOR"}"#).is_err());
    }

    #[test]
    fn a_run_reads_back_every_decision_as_given_in_either_stored_form() {
        let eligible = |code: &str, name: &str| Answer {
            eligible: true,
            household_code: Some(code.into()),
            category: Some(Category::Poor),
            head_name_masked: name.into(),
            entitlements: vec![Entitlement {
                service: Service::Mobile,
                monthly_amount: 60_000,
                subscriptions_allowed: 1,
                valid_from: "2025-01-01".into(),
                valid_to: None,
            }],
            reasons: Vec::new(),
            policy_version: 1,
        };
        let not_found = Answer {
            reasons: vec![Reason::new(ReasonCode::NotFound, "no household on the list".into(), None)],
            policy_version: 1,
            ..Answer::default()
        };
        let decision = |idx: i64, kind: QueryKind, value: &str, as_of: Date, answer: Answer| Decision {
            id: format!("c1-{idx}"),
            decided_at: OffsetDateTime::UNIX_EPOCH,
            asked_by: "VNPT".into(),
            query: Query { kind, value: value.into(), as_of },
            answer,
        };
        let asked = [
            decision(0, QueryKind::CitizenId, HEAD, date!(2025 - 06 - 01), eligible("HH-1", "Nguyễn V. A.")),
            decision(1, QueryKind::CitizenId, CHILD, date!(2025 - 06 - 01), eligible("HH-2", "Trần T. B.")),
            // Index 2 was a malformed question: no decision.
            decision(3, QueryKind::HouseholdCode, "HH-9", date!(2024 - 01 - 01), not_found),
        ];
        let runs = decision_runs(&asked.iter().collect::<Vec<_>>(), "r1").unwrap();
        assert_eq!(runs.len(), 1);
        let run = &runs[0];
        assert_eq!((run.first_idx, run.last_idx, run.decisions), (0, 3, 3));
        // The two eligible answers differ only in the household: stored once.
        assert_eq!(run.body.matches("\"entitlements\"").count(), 1, "{}", run.body);
        for d in &asked {
            let idx = split_id(&d.id).unwrap().1;
            assert_eq!(Decision::from_run(run.clone(), idx).unwrap().as_ref(), Some(d));
        }
        assert_eq!(Decision::from_run(run.clone(), 2).unwrap(), None);

        // Runs stored before the compact form: every decision whole.
        let whole: Vec<serde_json::Value> = asked
            .iter()
            .map(|d| {
                serde_json::json!({"idx": split_id(&d.id).unwrap().1, "kind": d.query.kind.as_str(),
                    "value": d.query.value, "as_of": format_date(d.query.as_of), "answer": d.answer})
            })
            .collect();
        let old = DecisionRun { body: serde_json::to_string(&whole).unwrap(), ..run.clone() };
        assert_eq!(Decision::from_run(old.clone(), 3).unwrap().as_ref(), Some(&asked[2]));
        assert_eq!(Decision::from_run(old, 2).unwrap(), None);
    }

    #[test]
    fn names_are_masked_to_family_name_and_initials() {
        assert_eq!(mask_name("Nguyễn Văn An"), "Nguyễn V. A.");
        assert_eq!(mask_name("Đặng thị  Ánh Ngọc"), "Đặng T. Á. N.");
        assert_eq!(mask_name(""), "");
    }
}
