//! The enrolment register and the operators' change feed.

use async_trait::async_trait;
use time::{Date, OffsetDateTime};

use super::PortError;

use super::policy::StoredDecision;
use crate::domain::feed::FeedKind;

/// A stored enrolment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    pub id: i64,
    pub operator: String,
    pub household_code: String,
    pub subscriber_citizen_id: String,
    pub phone_number: String,
    pub service: String,
    pub start_date: Date,
    pub end_date: Option<Date>,
    pub end_reason: Option<String>,
    pub end_note: Option<String>,
    pub decision_id: String,
    pub transfer_reference: Option<String>,
    pub recorded_at: OffsetDateTime,
    pub ended_at: Option<OffsetDateTime>,
}

impl Enrollment {
    /// Whether the enrolment runs on some day from `date` on.
    pub fn runs_from(&self, date: Date) -> bool {
        self.end_date.is_none_or(|end| end > date)
    }

    /// Whether the enrolment runs on `date`.
    pub fn runs_on(&self, date: Date) -> bool {
        self.start_date <= date && self.runs_from(date)
    }
}

/// A write by an operator, identified by its idempotency key.
#[derive(Debug, Clone)]
pub struct WriteKey<'a> {
    pub operator: &'a str,
    pub key: &'a str,
    /// SHA-256 of the request's content: the same key with other content is refused.
    pub digest: &'a str,
}

/// A line to enrol (or to take over, for a transfer).
#[derive(Debug, Clone)]
pub struct NewEnrollment {
    pub operator: String,
    pub household_code: String,
    pub subscriber_citizen_id: String,
    pub phone_number: String,
    pub service: String,
    pub start_date: Date,
    pub transfer_reference: Option<String>,
    pub recorded_at: OffsetDateTime,
    /// The decision the enrolment rests on, stored with it.
    pub decision: StoredDecision,
}

/// What an enrolment or transfer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollOutcome {
    /// Enrolled; for a transfer, with the enrolment it ended.
    Created { enrollment: Box<Enrollment>, ended: Option<Box<Enrollment>> },
    /// The key was used before for the same request: what it did then, as it stands now.
    Replayed { enrollment: Box<Enrollment>, previous_end: Option<Date> },
    /// The key was used before for another request.
    KeyReused,
    /// The household holds its allowed lines from the start date on: the caller's own
    /// enrolments among them, and how many with other operators.
    HouseholdFull { own: Vec<Enrollment>, others: usize },
    /// The phone number has a subsidised line running from the start date on.
    PhoneTaken,
    /// A transfer found no enrolment with another operator to take over.
    NothingToTransfer,
    /// A transfer would end the other operator's enrolment on or before the day it started.
    TransferTooEarly { started: Date },
}

/// What ending an enrolment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeenrollOutcome {
    Ended(Box<Enrollment>),
    Replayed(Box<Enrollment>),
    KeyReused,
    /// No enrolment of this operator has the id.
    NotFound,
    AlreadyEnded(Box<Enrollment>),
    /// The end date is not after the start date.
    BeforeStart(Box<Enrollment>),
}

/// How to end an enrolment.
#[derive(Debug, Clone)]
pub struct Ending<'a> {
    pub id: i64,
    pub end_date: Date,
    pub reason: &'a str,
    pub note: Option<&'a str>,
    pub at: OffsetDateTime,
}

/// Which enrolments to list.
#[derive(Debug, Clone, Default)]
pub struct EnrollmentFilter {
    pub operator: Option<String>,
    pub household_code: Option<String>,
    pub active_on: Option<Date>,
}

/// One event of the operators' change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    pub seq: i64,
    pub operator: String,
    pub enrollment_id: i64,
    pub household_code: String,
    pub kind: FeedKind,
    pub effective_date: Date,
    pub category: Option<String>,
    pub previous_category: Option<String>,
    pub removal_reason: Option<String>,
    pub batch_id: Option<String>,
    pub recorded_at: OffsetDateTime,
}

/// The enrolment register and the operators' change feed.
#[async_trait]
pub trait EnrollmentStore: Send + Sync + std::fmt::Debug {
    /// Enrols a line (with `transfer`: takes over the household's line from another
    /// operator), with the decision it rests on, in one transaction; or says why not.
    async fn enroll(
        &self,
        new: &NewEnrollment,
        key: &WriteKey<'_>,
        allowed: u32,
        transfer: bool,
    ) -> Result<EnrollOutcome, PortError>;

    /// Ends one of `key.operator`'s enrolments.
    async fn deenroll(&self, key: &WriteKey<'_>, ending: &Ending<'_>) -> Result<DeenrollOutcome, PortError>;

    /// Enrolments in id order after `after`, at most `limit`.
    async fn list_enrollments(
        &self,
        filter: &EnrollmentFilter,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Enrollment>, PortError>;

    /// An operator's feed events after `after`, in order, at most `limit`.
    async fn feed_events(&self, operator: &str, after: i64, limit: u32) -> Result<Vec<FeedEntry>, PortError>;

    /// Enrolments with these ids, in no particular order.
    async fn enrollments_by_ids(&self, ids: &[i64]) -> Result<Vec<Enrollment>, PortError>;

    /// An operator's enrolments of these phone numbers, in no particular order.
    async fn enrollments_by_phones(&self, operator: &str, phones: &[String]) -> Result<Vec<Enrollment>, PortError>;

    /// The ids of an operator's enrolments running on some day of `[from, until)`.
    async fn enrollments_running(
        &self,
        operator: &str,
        from: time::Date,
        until: time::Date,
    ) -> Result<Vec<i64>, PortError>;
}
