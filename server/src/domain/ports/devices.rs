//! Device allocations: the decision, the list of places, amendments, hand-overs.

use super::PortError;
use crate::domain::devices::AllocationStatus;
use async_trait::async_trait;
use time::{Date, OffsetDateTime};

/// A stored allocation decision with its list's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationDecision {
    pub id: i64,
    pub decision_number: String,
    pub decision_date: Date,
    pub tablets: i64,
    pub smartphones: i64,
    /// The split by unit, as JSON.
    pub quotas: String,
    pub cash_amount: i64,
    pub note: String,
    pub status: AllocationStatus,
    pub revision: i64,
    pub recorded_by: String,
    pub recorded_at: OffsetDateTime,
    pub proposal_as_of: Option<Date>,
    pub policy_version: Option<i64>,
    pub proposed_at: Option<OffsetDateTime>,
    pub eligible: i64,
    pub recipients: i64,
    pub proposal_digest: Option<String>,
    pub list_digest: Option<String>,
    pub submitted_by: Option<String>,
    pub submitted_at: Option<OffsetDateTime>,
    pub approval_number: Option<String>,
    pub decided_by: Option<String>,
    /// The person the deciding member's certificate named, if any.
    pub decided_by_person: Option<String>,
    pub decided_at: Option<OffsetDateTime>,
    pub decision_note: Option<String>,
    /// The date of the committee's approving decision.
    pub approved_on: Option<Date>,
}

/// A decision being recorded.
#[derive(Debug, Clone)]
pub struct NewAllocation<'a> {
    pub decision_number: &'a str,
    pub decision_date: Date,
    pub tablets: i64,
    pub smartphones: i64,
    pub quotas: &'a str,
    pub cash_amount: i64,
    pub note: &'a str,
    pub recorded_by: &'a str,
    pub recorded_at: OffsetDateTime,
}

/// A household's state that may qualify for a device (the caller checks the data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateState {
    pub household_code: String,
    pub commune_code: String,
    pub data: String,
}

/// A place on a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPlace {
    pub household_code: String,
    pub rank: i64,
    /// The unit of the split the place counts against (`""`: the whole province).
    pub unit_code: String,
    pub commune_code: String,
    pub district_code: Option<String>,
    pub category: String,
    /// 0 for the policy's first priority group.
    pub priority_group: i64,
    pub nominated: bool,
    /// `TABLET` or `SMARTPHONE`.
    pub device_type: String,
    pub head_name_masked: String,
    /// Added by an amendment.
    pub added: bool,
}

/// A hand-over: a device or the cash alternative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    pub household_code: String,
    pub allocation_id: i64,
    /// `DEVICE` or `CASH`.
    pub kind: String,
    pub device_type: Option<String>,
    pub serial_number: Option<String>,
    pub imei: Option<String>,
    pub cash_amount: Option<i64>,
    pub phone_bought_on: Option<Date>,
    pub receipt_reference: Option<String>,
    pub handed_over_on: Date,
    pub received_by: String,
    pub recorded_by: String,
    /// The person the recording member's certificate named, if any.
    pub recorded_by_person: Option<String>,
    pub recorded_at: OffsetDateTime,
    pub request_id: String,
}

/// A place with its hand-over, when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientView {
    pub place: ListPlace,
    pub handover: Option<Handover>,
}

/// Places and hand-overs of one unit of the split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitProgress {
    pub unit_code: String,
    pub on_list: i64,
    pub devices: i64,
    pub cash: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amendment {
    pub id: i64,
    pub revision: i64,
    /// `ADD` or `REMOVE`.
    pub action: String,
    pub household_code: String,
    pub device_type: Option<String>,
    pub reason: String,
    pub amended_by: String,
    pub amended_at: OffsetDateTime,
}

/// What a proposal records about itself.
#[derive(Debug, Clone)]
pub struct ProposalMeta {
    pub as_of: Date,
    pub policy_version: i64,
    pub proposed_at: OffsetDateTime,
    pub eligible: i64,
    pub digest: String,
}

/// One amendment of a draft.
#[derive(Debug, Clone)]
pub enum Amend<'a> {
    /// A place for a household, counted against `quota` places of its unit and device type;
    /// its rank is given by the store (after the last).
    Add {
        place: ListPlace,
        quota: i64,
    },
    Remove {
        household_code: &'a str,
    },
}

/// Who amended, why, when.
#[derive(Debug, Clone)]
pub struct AmendNote<'a> {
    pub reason: &'a str,
    pub by: &'a str,
    pub at: OffsetDateTime,
}

/// The committee's answer to a submitted list.
#[derive(Debug, Clone)]
pub struct CommitteeDecision<'a> {
    pub approve: bool,
    pub approval_number: Option<&'a str>,
    pub by: &'a str,
    pub by_person: Option<&'a str>,
    pub at: OffsetDateTime,
    /// The date of the approving decision (`None` when returning).
    pub approved_on: Option<Date>,
    pub note: &'a str,
    /// When set, the submitted list must have this digest.
    pub expected_digest: Option<&'a str>,
}

/// Which places to read.
#[derive(Debug, Clone, Default)]
pub struct RecipientFilter {
    /// A commune, district or unit of the split.
    pub unit_code: Option<String>,
    /// `Some(false)`: not handed over yet; `Some(true)`: handed over.
    pub handed_over: Option<bool>,
}

/// What recording a hand-over did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandoverOutcome {
    Recorded,
    /// The allocation's list is not approved.
    NotApproved,
    /// The household holds no place on the allocation's list.
    NotOnList,
    /// The household already received a device or the cash (this hand-over).
    AlreadyHandedOver(Box<Handover>),
    /// The IMEI was recorded for another household's device.
    ImeiUsed {
        household_code: String,
    },
    /// The serial number was recorded for another household's device of the same type.
    SerialUsed {
        household_code: String,
    },
}

/// Device allocations: the decision, its list of places as proposed and amended, the
/// committee's decision.
#[async_trait]
pub trait AllocationStore: Send + Sync + std::fmt::Debug {
    /// `AlreadyExists` when the decision number is taken.
    async fn insert_allocation(&self, new: &NewAllocation<'_>) -> Result<i64, PortError>;

    async fn allocation(&self, decision_number: &str) -> Result<Option<AllocationDecision>, PortError>;

    /// Allocations with ids below `before`, newest first.
    async fn list_allocations(&self, before: i64, limit: u32) -> Result<Vec<AllocationDecision>, PortError>;

    /// Nominates households not yet nominated for the allocation; returns how many it added.
    /// `Conflict(Approved)` once the list is approved: an approval waits for a nomination
    /// being stored, and a nomination for an approval.
    async fn nominate_households(
        &self,
        id: i64,
        codes: &[String],
        by: &str,
        reason: &str,
        at: OffsetDateTime,
    ) -> Result<u64, PortError>;

    async fn nominations(&self, id: i64) -> Result<Vec<String>, PortError>;

    /// States on `as_of` of households on the list that say they want a device, hold no place
    /// on another allocation's list and never received a device or the cash.
    async fn device_candidates(&self, id: i64, as_of: Date) -> Result<Vec<CandidateState>, PortError>;

    /// Replaces the allocation's list, in one transaction. `Conflict` when the list is not
    /// open to a proposal, or a household took a place on another list meanwhile.
    async fn save_proposal(&self, id: i64, meta: &ProposalMeta, places: &[ListPlace]) -> Result<(), PortError>;

    /// Amends a draft; returns the list's new revision. `Conflict` when it is not open to
    /// amendment or the unit's places are taken; `NotFound` when removing a household not on
    /// it; `AlreadyExists` when adding one that holds a place (on any list).
    async fn amend_proposal(&self, id: i64, amend: &Amend<'_>, note: &AmendNote<'_>) -> Result<i64, PortError>;

    /// Submits the draft as it stood in `revision`, with its digest.
    async fn submit_allocation(
        &self,
        id: i64,
        revision: i64,
        digest: &str,
        by: &str,
        at: OffsetDateTime,
    ) -> Result<(), PortError>;

    async fn decide_allocation(&self, id: i64, decision: &CommitteeDecision<'_>) -> Result<(), PortError>;
}

/// The places of approved lists and the devices handed over on them.
#[async_trait]
pub trait PlaceStore: Send + Sync + std::fmt::Debug {
    async fn record_handover(&self, row: &Handover) -> Result<HandoverOutcome, PortError>;

    /// Places after rank `after`, in rank order, with their hand-overs.
    async fn allocation_recipients(
        &self,
        id: i64,
        filter: &RecipientFilter,
        after: i64,
        limit: u32,
    ) -> Result<Vec<RecipientView>, PortError>;

    /// A household's place on the allocation's list, with its hand-over.
    async fn place(&self, id: i64, household_code: &str) -> Result<Option<RecipientView>, PortError>;

    async fn allocation_progress(&self, id: i64) -> Result<Vec<UnitProgress>, PortError>;

    async fn allocation_amendments(&self, id: i64) -> Result<Vec<Amendment>, PortError>;

    /// The decision number of the allocation whose list holds the household, if any.
    async fn place_of(&self, household_code: &str) -> Result<Option<String>, PortError>;

    /// The household's hand-over, if it had one.
    async fn handover_of(&self, household_code: &str) -> Result<Option<Handover>, PortError>;
}
