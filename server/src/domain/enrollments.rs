//! The enrolment register: operators enrol subsidised lines for eligible households, end
//! them, and take them over from another operator on the household's written request. A
//! household never holds more lines than the policy allows, across all operators; every
//! write is idempotent by the operator's key.

use super::context::ServiceContext;
use std::sync::Arc;

use time::Date;

use super::clock::Clock;
use super::{
    DomainError, Violations,
    eligibility::{Decision, EligibilityService, Query, QueryKind, new_call_id},
    household::{CitizenId, HouseholdCode, format_date, free_text, name_enum, parse_date},
    member::{Caller, OrgCode, Role},
    paging::{Page, paging},
    policy::Service,
};
use crate::domain::ports::{
    EnrollmentStore,
    enrollments::{DeenrollOutcome, Ending, EnrollOutcome, Enrollment, EnrollmentFilter, NewEnrollment, WriteKey},
};

name_enum! {
    /// Why an enrolment ended.
    EndReason {
        HouseholdRequest = "HOUSEHOLD_REQUEST",
        NoLongerEligible = "NO_LONGER_ELIGIBLE",
        NonUsage = "NON_USAGE",
        Other = "OTHER",
        /// Set by the hub when another operator took the line over.
        Transferred = "TRANSFERRED",
    }
}

/// How far ahead of today an enrolment may start or end.
const MAX_DAYS_AHEAD: i64 = 31;

/// A phone number in its one normal form: `0` and 9 digits (10 or 11 digits for a fixed
/// line). Spaces, dots and dashes are ignored; `+84` stands for the leading `0`.
pub fn normal_phone(s: &str, service: Option<Service>) -> Result<String, String> {
    let compact: String = s.chars().filter(|c| !matches!(c, ' ' | '.' | '-')).collect();
    let national = match compact.strip_prefix("+84") {
        Some(rest) => format!("0{rest}"),
        None => compact,
    };
    let ok_digits = national.starts_with('0') && national.bytes().all(|b| b.is_ascii_digit());
    let ok = match service {
        Some(Service::FixedBroadband) => ok_digits && (10..=11).contains(&national.len()),
        // Mobile numbers since the 2018 renumbering: 03, 05, 07, 08, 09 and 8 more digits.
        _ => ok_digits && national.len() == 10 && matches!(national.as_bytes()[1], b'3' | b'5' | b'7' | b'8' | b'9'),
    };
    if ok {
        Ok(national)
    } else {
        Err(format!(
            "{s:?} is not a {} number: use 10 digits starting with 0 (or +84 and 9 digits)",
            if service == Some(Service::FixedBroadband) { "subscriber" } else { "mobile" }
        ))
    }
}

fn idempotency_key(s: &str) -> Result<String, String> {
    let key = s.trim();
    if key.is_empty() || key.chars().count() > 100 || super::household::hidden_character(key).is_some() {
        return Err("an idempotency key of 1 to 100 printable characters is required".to_owned());
    }
    Ok(key.to_owned())
}

/// An enrolment or transfer as it arrives.
#[derive(Debug, Clone, Default)]
pub struct EnrollInput {
    pub idempotency_key: String,
    pub household_code: String,
    pub subscriber_citizen_id: String,
    pub phone_number: String,
    pub service: Option<Service>,
    pub start_date: String,
    /// Transfers only.
    pub request_reference: String,
}

/// The end of an enrolment as it arrives.
#[derive(Debug, Clone, Default)]
pub struct DeenrollInput {
    pub idempotency_key: String,
    pub enrollment_id: String,
    pub end_date: String,
    pub reason: Option<EndReason>,
    pub note: String,
}

/// What an enrolment or a transfer gives back.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub enrollment: Enrollment,
    /// Transfers: the first day without support of the line taken over.
    pub previous_end: Option<Date>,
}

/// An enrolment or transfer the hub refused; once the household's eligibility was decided,
/// with that decision, which the caller stores with the call's audit record so that the
/// lookup is on record like any other.
#[derive(Debug)]
pub struct Refused {
    pub error: DomainError,
    pub decision: Option<Box<Decision>>,
}

impl From<DomainError> for Refused {
    fn from(error: DomainError) -> Self {
        Self { error, decision: None }
    }
}

#[derive(Debug, Clone)]
pub struct EnrollmentService {
    enrollment_store: Arc<dyn EnrollmentStore>,
    eligibility: EligibilityService,
    /// Woken after a transfer wrote a feed event.
    feed: Option<Arc<tokio::sync::Notify>>,
    clock: Clock,
}

fn sha256_of(parts: &[&str]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p.as_bytes());
    }
    crate::hex(ctx.finish().as_ref())
}

fn date_within(v: &mut Violations, field: &str, s: &str, first: Option<Date>, today: Date) -> Option<Date> {
    let date = if s.is_empty() { Some(today) } else { v.check(field, parse_date(s)) }?;
    if first.is_some_and(|f| date < f) {
        v.add(field, format!("{date} is before the programme's rules (from {})", first.expect("checked")));
        return None;
    }
    if date > today + time::Duration::days(MAX_DAYS_AHEAD) {
        v.add(field, format!("{date} is more than {MAX_DAYS_AHEAD} days after today ({today})"));
        return None;
    }
    Some(date)
}

impl EnrollmentService {
    /// Admits enrolments by `eligibility`'s decisions.
    pub fn new(context: &ServiceContext, eligibility: EligibilityService) -> Self {
        Self { enrollment_store: context.store.clone(), eligibility, feed: None, clock: context.clock.clone() }
    }

    /// Wakes `feed`'s waiting readers after every transfer.
    pub fn with_feed(mut self, feed: Arc<tokio::sync::Notify>) -> Self {
        self.feed = Some(feed);
        self
    }

    fn operator(caller: &Caller) -> Result<&str, DomainError> {
        if caller.member.role != Role::Operator {
            return Err(DomainError::PermissionDenied("only operators enrol subscribers".into()));
        }
        Ok(caller.member.code.as_str())
    }

    /// Enrols a line (`transfer`: takes it over from another operator).
    pub async fn enroll(&self, input: &EnrollInput, caller: &Caller, transfer: bool) -> Result<Enrolled, Refused> {
        let operator = Self::operator(caller)?;
        let cx = self.eligibility.context().await?;
        let mut v = Violations::new();
        let key = v.check("idempotency_key", idempotency_key(&input.idempotency_key));
        let household = v.check("household_code", HouseholdCode::parse(&input.household_code));
        let subscriber = v.check("subscriber_citizen_id", CitizenId::parse(&input.subscriber_citizen_id, cx.units()));
        let service = input.service.or_else(|| {
            v.add("service", "a service is required: MOBILE or FIXED_BROADBAND");
            None
        });
        let phone = v.check("phone_number", normal_phone(&input.phone_number, service));
        let start = date_within(&mut v, "start_date", &input.start_date, cx.first_policy_day(), self.clock.today());
        let reference = if transfer {
            let r = v.check("request_reference", free_text(&input.request_reference, 200));
            if r.as_deref().is_some_and(str::is_empty) {
                v.add("request_reference", "the reference of the household's written request is required");
            }
            r
        } else {
            None
        };
        v.finish()?;
        let (key, household, subscriber, service, phone, start) = (
            key.expect("checked"),
            household.expect("checked"),
            subscriber.expect("checked"),
            service.expect("checked"),
            phone.expect("checked"),
            start.expect("checked"),
        );

        // Eligible on the start date, the subscriber a member then, the service available.
        let query = Query { kind: QueryKind::HouseholdCode, value: household.as_str().to_owned(), as_of: start };
        let (decision, histories) =
            self.eligibility.decide_with_histories(&cx, query, caller, &new_call_id(), !transfer).await?;
        // From here on a refusal rests on the decision: it goes on record with the refusal.
        let decided = async {
            if !decision.answer.eligible {
                let why: Vec<&str> = decision.answer.reasons.iter().map(|r| r.message.as_str()).collect();
                return Err(DomainError::FailedPrecondition(format!(
                    "household {household} is not eligible on {start}: {} (decision {})",
                    why.join("; "),
                    decision.id
                )));
            }
            // The subscriber must be a member then (the decision read the household's history).
            let member = histories
                .iter()
                .filter(|h| h.code == household.as_str())
                .filter_map(|h| h.state_on(start))
                .any(|s| s.facts.citizen_ids.iter().any(|id| id == subscriber.as_str()));
            if !member {
                return Err(DomainError::invalid(
                    "subscriber_citizen_id",
                    format!("{} is not a member of household {household} on {start}", subscriber.as_str()),
                ));
            }
            if !decision.answer.entitlements.iter().any(|e| e.service == service) {
                return Err(DomainError::FailedPrecondition(format!(
                    "household {household} is not entitled to {service} on {start} (fixed broadband only in \
                 the communes the policy lists; decision {})",
                    decision.id
                )));
            }
            let allowed = decision.answer.entitlements.iter().map(|e| e.subscriptions_allowed).max().unwrap_or(1);

            let digest = sha256_of(&[
                if transfer { "TRANSFER" } else { "ENROLL" },
                household.as_str(),
                subscriber.as_str(),
                &phone,
                service.as_str(),
                &format_date(start),
                reference.as_deref().unwrap_or(""),
            ]);
            let new = NewEnrollment {
                operator: operator.to_owned(),
                household_code: household.as_str().to_owned(),
                subscriber_citizen_id: subscriber.as_str().to_owned(),
                phone_number: phone,
                service: service.as_str().to_owned(),
                start_date: start,
                transfer_reference: reference,
                recorded_at: self.clock.now(),
                decision: decision.to_row(""),
            };
            let write = WriteKey { operator, key: &key, digest: &digest };
            match self.enrollment_store.enroll(&new, &write, allowed, transfer).await? {
                EnrollOutcome::Created { enrollment, ended } => {
                    tracing::info!(enrollment = enrollment.id, household = %household, transfer, "enrolled");
                    if let (true, Some(feed)) = (transfer, &self.feed) {
                        feed.notify_waiters();
                    }
                    Ok(Enrolled { enrollment: *enrollment, previous_end: ended.and_then(|e| e.end_date) })
                }
                EnrollOutcome::Replayed { enrollment, previous_end } => {
                    Ok(Enrolled { enrollment: *enrollment, previous_end })
                }
                EnrollOutcome::KeyReused => {
                    Err(DomainError::AlreadyExists(format!("idempotency key {key:?} was used for a different request")))
                }
                EnrollOutcome::HouseholdFull { own, others } => {
                    Err(DomainError::FailedPrecondition(match own.first() {
                        Some(mine) => {
                            format!("household {household} is already enrolled with you (enrolment {})", mine.id)
                        }
                        None => format!(
                            "household {household} already holds its {allowed} subsidised subscription(s) with \
                     another operator ({others} running)"
                        ),
                    }))
                }
                EnrollOutcome::PhoneTaken => Err(DomainError::FailedPrecondition(format!(
                    "phone number {} already has a subsidised line running on {start}",
                    new.phone_number
                ))),
                EnrollOutcome::NothingToTransfer => Err(DomainError::FailedPrecondition(format!(
                    "household {household} holds no line with another operator on {start}: enrol it instead"
                ))),
                EnrollOutcome::TransferTooEarly { started } => Err(DomainError::FailedPrecondition(format!(
                    "the household's line with the other operator started on {started}: a transfer must start after it"
                ))),
            }
        }
        .await;
        decided.map_err(|error| Refused { error, decision: Some(Box::new(decision)) })
    }

    /// Ends one of the caller's enrolments.
    pub async fn deenroll(&self, input: &DeenrollInput, caller: &Caller) -> Result<Enrollment, DomainError> {
        let operator = Self::operator(caller)?;
        let mut v = Violations::new();
        let key = v.check("idempotency_key", idempotency_key(&input.idempotency_key));
        let id = v.check("enrollment_id", enrollment_id(&input.enrollment_id));
        let end = date_within(&mut v, "end_date", &input.end_date, None, self.clock.today());
        let reason = match input.reason {
            Some(EndReason::Transferred) => {
                v.add("reason", "TRANSFERRED is set by the hub; the receiving operator asks for a transfer");
                None
            }
            Some(r) => Some(r),
            None => {
                v.add("reason", "a reason is required: HOUSEHOLD_REQUEST, NO_LONGER_ELIGIBLE, NON_USAGE or OTHER");
                None
            }
        };
        let note = v.check("note", free_text(&input.note, 500));
        v.finish()?;
        let (key, id, end, reason, note) = (
            key.expect("checked"),
            id.expect("checked"),
            end.expect("checked"),
            reason.expect("checked"),
            note.expect("checked"),
        );
        let digest = sha256_of(&["DEENROLL", &id.to_string(), &format_date(end), reason.as_str(), &note]);
        let write = WriteKey { operator, key: &key, digest: &digest };
        let ending = Ending {
            id,
            end_date: end,
            reason: reason.as_str(),
            note: (!note.is_empty()).then_some(note.as_str()),
            at: self.clock.now(),
        };
        match self.enrollment_store.deenroll(&write, &ending).await? {
            DeenrollOutcome::Ended(row) | DeenrollOutcome::Replayed(row) => Ok(*row),
            DeenrollOutcome::KeyReused => {
                Err(DomainError::AlreadyExists(format!("idempotency key {key:?} was used for a different request")))
            }
            DeenrollOutcome::NotFound => Err(DomainError::NotFound(format!("you have no enrolment {id}"))),
            DeenrollOutcome::AlreadyEnded(row) => Err(DomainError::FailedPrecondition(format!(
                "enrolment {id} already ended on {}",
                row.end_date.map(format_date).unwrap_or_default()
            ))),
            DeenrollOutcome::BeforeStart(row) => Err(DomainError::invalid(
                "end_date",
                format!("{end} is not after the enrolment's start date {}", row.start_date),
            )),
        }
    }

    /// The enrolments of `household` in the name of `citizen`, whoever's they are: for a
    /// person's report ([`crate::domain::person`]), whose caller's right to the person is
    /// established there.
    pub async fn in_the_name_of(&self, household: &str, citizen: &str) -> Result<Vec<Enrollment>, DomainError> {
        let filter = EnrollmentFilter { household_code: Some(household.to_owned()), ..EnrollmentFilter::default() };
        let mut lines = Vec::new();
        let mut after = 0;
        loop {
            let page = self.enrollment_store.list_enrollments(&filter, after, 1_000).await?;
            lines.extend(page.iter().filter(|e| e.subscriber_citizen_id == citizen).cloned());
            match page.last() {
                Some(last) if page.len() == 1_000 => after = last.id,
                _ => return Ok(lines),
            }
        }
    }

    /// Who reads enrolments: an operator (its own: `Some` of its code) or ICT (all: `None`).
    fn reader(caller: &Caller) -> Result<Option<&str>, DomainError> {
        match caller.member.role {
            Role::Operator => Ok(Some(caller.member.code.as_str())),
            Role::Ict => Ok(None),
            _ => Err(DomainError::PermissionDenied("only operators and ICT read enrolments".into())),
        }
    }

    /// One enrolment by its id: an operator's own (another operator's is not found, as one
    /// that does not exist), any for ICT.
    pub async fn get(&self, caller: &Caller, enrollment_id_text: &str) -> Result<Enrollment, DomainError> {
        let own = Self::reader(caller)?;
        let id = enrollment_id(enrollment_id_text).map_err(|e| DomainError::invalid("enrollment_id", e))?;
        let found = self.enrollment_store.enrollments_by_ids(&[id]).await?;
        found.into_iter().find(|e| e.id == id && own.is_none_or(|o| e.operator == o)).ok_or_else(|| {
            DomainError::NotFound(match own {
                Some(_) => format!("you have no enrolment {id}"),
                None => format!("no enrolment {id}"),
            })
        })
    }

    /// A page of enrolments, oldest first: an operator's own, any for ICT. `page_size` 0 asks
    /// for the default, more than [`MAX_PAGE`](super::paging::MAX_PAGE) is refused;
    /// `page_token` is empty for the first page.
    pub async fn list(
        &self,
        caller: &Caller,
        mut filter: EnrollmentFilter,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<Enrollment>, DomainError> {
        if let Some(own) = Self::reader(caller)? {
            if filter.operator.as_deref().is_some_and(|o| o != own) {
                return Err(DomainError::PermissionDenied("an operator reads only its own enrolments".into()));
            }
            filter.operator = Some(own.to_owned());
        }
        let mut v = Violations::new();
        if let Some(h) = &filter.household_code {
            v.check("household_code", HouseholdCode::parse(h));
        }
        if let Some(o) = &filter.operator {
            v.check("operator", OrgCode::parse(o));
        }
        let (limit, after) = paging(&mut v, page_size, page_token, 'e');
        v.finish()?;
        let rows = self.enrollment_store.list_enrollments(&filter, after.unwrap_or(0), limit + 1).await?;
        Ok(Page::cut(rows, limit, |e| format!("e{}", e.id)))
    }
}

/// An enrolment id as callers write it (the id the hub gave, in decimal).
fn enrollment_id(text: &str) -> Result<i64, String> {
    text.trim().parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| format!("{text:?} is not an enrolment id"))
}

/// Whether a line may be enrolled (or, with `transfer`, taken over), by the household's
/// enrolments running from its start date on: the rule storage runs inside the enrolment's
/// transaction, with the household and the phone number locked. A phone number taken by
/// another line is checked after, in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Enrol; for a transfer, ending this enrolment of another operator on the start date.
    Enrol { ending: Option<Box<Enrollment>> },
    /// The household holds its allowed lines: the operator's own among them, and how many
    /// with other operators.
    HouseholdFull { own: Vec<Enrollment>, others: usize },
    /// A transfer found no enrolment with another operator to take over.
    NothingToTransfer,
    /// A transfer would end the other operator's enrolment on or before the day it started.
    TransferTooEarly { started: Date },
}

/// [`Admission`] of a new line of `operator` from `start`, given the household's enrolments
/// (`running`: those running on some day from `start` on) and the subscriptions `allowed`.
/// A transfer takes over the earliest other operator's line and is refused while the
/// operator holds one of its own.
pub fn admit(operator: &str, start: Date, running: Vec<Enrollment>, allowed: u32, transfer: bool) -> Admission {
    let (own, others): (Vec<Enrollment>, Vec<Enrollment>) =
        running.into_iter().filter(|e| e.runs_from(start)).partition(|e| e.operator == operator);
    if transfer {
        if !own.is_empty() {
            return Admission::HouseholdFull { own, others: others.len() };
        }
        let Some(old) = others.into_iter().min_by_key(|e| e.start_date) else {
            return Admission::NothingToTransfer;
        };
        if old.start_date >= start {
            return Admission::TransferTooEarly { started: old.start_date };
        }
        return Admission::Enrol { ending: Some(Box::new(old)) };
    }
    if own.len() + others.len() >= allowed as usize {
        return Admission::HouseholdFull { own, others: others.len() };
    }
    Admission::Enrol { ending: None }
}

#[cfg(test)]
mod admission_tests {
    use time::macros::{date, datetime};

    use super::*;

    fn line(id: i64, operator: &str, start: Date, end: Option<Date>) -> Enrollment {
        Enrollment {
            id,
            operator: operator.into(),
            household_code: "HH-1".into(),
            subscriber_citizen_id: "067080001234".into(),
            phone_number: format!("09{id:08}"),
            service: "MOBILE".into(),
            start_date: start,
            end_date: end,
            end_reason: None,
            end_note: None,
            decision_id: "d-0".into(),
            transfer_reference: None,
            recorded_at: datetime!(2025-01-01 00:00 UTC),
            ended_at: None,
        }
    }

    #[test]
    fn a_household_holds_its_allowed_lines_counting_every_operator() {
        let start = date!(2025 - 03 - 01);
        assert_eq!(admit("VNPT", start, vec![], 1, false), Admission::Enrol { ending: None });
        let viettel = line(1, "VIETTEL", date!(2025 - 01 - 01), None);
        assert_eq!(
            admit("VNPT", start, vec![viettel.clone()], 1, false),
            Admission::HouseholdFull { own: vec![], others: 1 }
        );
        assert_eq!(admit("VNPT", start, vec![viettel.clone()], 2, false), Admission::Enrol { ending: None });
        // A line that ends by the start date no longer counts.
        let ended = line(2, "VNPT", date!(2025 - 01 - 01), Some(start));
        assert_eq!(admit("VNPT", start, vec![ended], 1, false), Admission::Enrol { ending: None });
        let own = line(3, "VNPT", date!(2025 - 01 - 01), Some(date!(2025 - 03 - 02)));
        assert_eq!(
            admit("VNPT", start, vec![own.clone()], 1, false),
            Admission::HouseholdFull { own: vec![own], others: 0 }
        );
    }

    #[test]
    fn a_transfer_takes_over_the_earliest_other_line_after_it_began() {
        let start = date!(2025 - 03 - 01);
        let older = line(1, "VIETTEL", date!(2024 - 06 - 01), None);
        let newer = line(2, "MOBIFONE", date!(2025 - 01 - 01), None);
        assert_eq!(
            admit("VNPT", start, vec![newer.clone(), older.clone()], 2, true),
            Admission::Enrol { ending: Some(Box::new(older)) }
        );
        assert_eq!(admit("VNPT", start, vec![], 1, true), Admission::NothingToTransfer);
        let same_day = line(3, "VIETTEL", start, None);
        assert_eq!(admit("VNPT", start, vec![same_day], 1, true), Admission::TransferTooEarly { started: start });
        let own = line(4, "VNPT", date!(2025 - 01 - 01), None);
        assert_eq!(
            admit("VNPT", start, vec![own.clone(), newer], 2, true),
            Admission::HouseholdFull { own: vec![own], others: 1 }
        );
    }
}

#[cfg(test)]
mod id_tests {
    #[test]
    fn an_enrolment_id_is_a_positive_decimal_number() {
        assert_eq!(super::enrollment_id(" 42 "), Ok(42));
        for refused in ["", "0", "-1", "e42", "4 2", "99999999999999999999"] {
            let said = super::enrollment_id(refused).unwrap_err();
            assert!(said.contains(&format!("{refused:?}")), "{said}");
        }
    }
}
