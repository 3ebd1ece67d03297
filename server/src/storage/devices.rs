//! Storage of device allocations: the decision, the list of places, amendments, hand-overs.
//! Every statement reads the same in both dialects; [`impl_device_store!`] writes the
//! [`DeviceStore`] implementation of a backend from the connection and transaction it uses.

use async_trait::async_trait;
use time::{Date, OffsetDateTime};

use super::StorageError;

/// A stored allocation decision with its list's status.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AllocationRow {
    pub id: i64,
    pub decision_number: String,
    pub decision_date: Date,
    pub tablets: i64,
    pub smartphones: i64,
    /// The split by unit, as JSON.
    pub quotas: String,
    pub cash_amount: i64,
    pub note: String,
    /// `RECORDED`, `PROPOSED`, `SUBMITTED`, `RETURNED` or `APPROVED`.
    pub status: String,
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
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CandidateRow {
    pub household_code: String,
    pub commune_code: String,
    pub data: String,
}

/// A place on a list.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PlaceRow {
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
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HandoverRow {
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
    pub recorded_at: OffsetDateTime,
    pub request_id: String,
}

/// A place with its hand-over, when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientView {
    pub place: PlaceRow,
    pub handover: Option<HandoverRow>,
}

/// Places and hand-overs of one unit of the split.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ProgressRow {
    pub unit_code: String,
    pub on_list: i64,
    pub devices: i64,
    pub cash: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AmendmentRow {
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
        place: PlaceRow,
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
    AlreadyHandedOver(Box<HandoverRow>),
    /// The IMEI was recorded for another household's device.
    ImeiUsed {
        household_code: String,
    },
}

/// The guard texts of the status changes.
pub const NOT_AMENDABLE: &str = "the list is not a draft open to amendment";
pub const NOT_PROPOSABLE: &str = "the list is with the committee or approved";
pub const PLACE_TAKEN: &str = "a household of the list was put on another list meanwhile";
pub const QUOTA_FULL: &str = "the unit's places for this device are all taken";
pub const CHANGED_SINCE: &str = "the list changed since it was read";
pub const NOT_SUBMITTED: &str = "the list is not submitted";
pub const OTHER_DIGEST: &str = "the submitted list is not the one reviewed";

/// Device allocations, for both backends.
#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// `AlreadyExists` when the decision number is taken.
    async fn insert_allocation(&self, new: &NewAllocation<'_>) -> Result<i64, StorageError>;

    async fn allocation(&self, decision_number: &str) -> Result<Option<AllocationRow>, StorageError>;

    /// Allocations with ids below `before`, newest first.
    async fn list_allocations(&self, before: i64, limit: u32) -> Result<Vec<AllocationRow>, StorageError>;

    /// Nominates households not yet nominated for the allocation; returns how many it added.
    async fn nominate_households(
        &self,
        id: i64,
        codes: &[String],
        by: &str,
        reason: &str,
        at: OffsetDateTime,
    ) -> Result<u64, StorageError>;

    async fn nominations(&self, id: i64) -> Result<Vec<String>, StorageError>;

    /// States on `as_of` of households on the list that say they want a device, hold no place
    /// on another allocation's list and never received a device or the cash.
    async fn device_candidates(&self, id: i64, as_of: Date) -> Result<Vec<CandidateRow>, StorageError>;

    /// Replaces the allocation's list, in one transaction. `Precondition` when the list is not
    /// open to a proposal, or a household took a place on another list meanwhile.
    async fn save_proposal(&self, id: i64, meta: &ProposalMeta, places: &[PlaceRow]) -> Result<(), StorageError>;

    /// Amends a draft; returns the list's new revision. `Precondition` when it is not open to
    /// amendment or the unit's places are taken; `NotFound` when removing a household not on
    /// it; `AlreadyExists` when adding one that holds a place (on any list).
    async fn amend_proposal(&self, id: i64, amend: &Amend<'_>, note: &AmendNote<'_>) -> Result<i64, StorageError>;

    /// Submits the draft as it stood in `revision`, with its digest.
    async fn submit_allocation(
        &self,
        id: i64,
        revision: i64,
        digest: &str,
        by: &str,
        at: OffsetDateTime,
    ) -> Result<(), StorageError>;

    async fn decide_allocation(&self, id: i64, decision: &CommitteeDecision<'_>) -> Result<(), StorageError>;

    async fn record_handover(&self, row: &HandoverRow) -> Result<HandoverOutcome, StorageError>;

    /// Places after rank `after`, in rank order, with their hand-overs.
    async fn allocation_recipients(
        &self,
        id: i64,
        filter: &RecipientFilter,
        after: i64,
        limit: u32,
    ) -> Result<Vec<RecipientView>, StorageError>;

    /// A household's place on the allocation's list, with its hand-over.
    async fn place(&self, id: i64, household_code: &str) -> Result<Option<RecipientView>, StorageError>;

    async fn allocation_progress(&self, id: i64) -> Result<Vec<ProgressRow>, StorageError>;

    async fn allocation_amendments(&self, id: i64) -> Result<Vec<AmendmentRow>, StorageError>;

    /// The decision number of the allocation whose list holds the household, if any.
    async fn place_of(&self, household_code: &str) -> Result<Option<String>, StorageError>;

    /// The household's hand-over, if it had one.
    async fn handover_of(&self, household_code: &str) -> Result<Option<HandoverRow>, StorageError>;
}

/// `SELECT` of every column of `device_allocations` with a condition, as one literal.
macro_rules! select_allocations {
    ($condition:literal) => {
        concat!(
            "SELECT id, decision_number, decision_date, tablets, smartphones, quotas, cash_amount, note, status, \
             revision, recorded_by, recorded_at, proposal_as_of, policy_version, proposed_at, eligible, recipients, \
             proposal_digest, list_digest, submitted_by, submitted_at, approval_number, decided_by, decided_at, \
             decision_note, approved_on FROM device_allocations WHERE ",
            $condition
        )
    };
}
pub(super) use select_allocations;

/// Places joined with their hand-overs (columns prefixed `h_`), with a condition.
macro_rules! select_recipients {
    ($condition:literal) => {
        concat!(
            "SELECT r.household_code, r.rank, r.unit_code, r.commune_code, r.district_code, r.category, \
             r.priority_group, r.nominated, r.device_type, r.head_name_masked, r.added, \
             h.allocation_id AS h_allocation_id, h.kind AS h_kind, h.device_type AS h_device_type, \
             h.serial_number AS h_serial_number, h.imei AS h_imei, h.cash_amount AS h_cash_amount, \
             h.phone_bought_on AS h_phone_bought_on, h.receipt_reference AS h_receipt_reference, \
             h.handed_over_on AS h_handed_over_on, h.received_by AS h_received_by, h.recorded_by AS h_recorded_by, \
             h.recorded_at AS h_recorded_at, h.request_id AS h_request_id \
             FROM device_recipients r \
             LEFT JOIN device_handovers h ON h.household_code = r.household_code AND h.allocation_id = r.allocation_id \
             WHERE ",
            $condition
        )
    };
}
pub(super) use select_recipients;

/// A place with the columns of its hand-over, as read by [`select_recipients!`].
#[derive(Debug, sqlx::FromRow)]
pub(super) struct RecipientRead {
    #[sqlx(flatten)]
    place: PlaceRow,
    h_allocation_id: Option<i64>,
    h_kind: Option<String>,
    h_device_type: Option<String>,
    h_serial_number: Option<String>,
    h_imei: Option<String>,
    h_cash_amount: Option<i64>,
    h_phone_bought_on: Option<Date>,
    h_receipt_reference: Option<String>,
    h_handed_over_on: Option<Date>,
    h_received_by: Option<String>,
    h_recorded_by: Option<String>,
    h_recorded_at: Option<OffsetDateTime>,
    h_request_id: Option<String>,
}

impl From<RecipientRead> for RecipientView {
    fn from(r: RecipientRead) -> Self {
        let handover = match (r.h_allocation_id, r.h_kind, r.h_handed_over_on, r.h_recorded_at) {
            (Some(allocation_id), Some(kind), Some(handed_over_on), Some(recorded_at)) => Some(HandoverRow {
                household_code: r.place.household_code.clone(),
                allocation_id,
                kind,
                device_type: r.h_device_type,
                serial_number: r.h_serial_number,
                imei: r.h_imei,
                cash_amount: r.h_cash_amount,
                phone_bought_on: r.h_phone_bought_on,
                receipt_reference: r.h_receipt_reference,
                handed_over_on,
                received_by: r.h_received_by.unwrap_or_default(),
                recorded_by: r.h_recorded_by.unwrap_or_default(),
                recorded_at,
                request_id: r.h_request_id.unwrap_or_default(),
            }),
            _ => None,
        };
        RecipientView { place: r.place, handover }
    }
}

/// Places written per statement (12 values each).
pub(super) const PLACES_PER_INSERT: usize = 1_000;

/// Writes the [`DeviceStore`] implementation of a backend: `$store` holds pools `$read`
/// (point reads), `$bulk` (large reads) and `$write`; transactions start with `$begin`.
macro_rules! impl_device_store {
    ($store:ty, $db:ty, read: $read:ident, bulk: $bulk:ident, write: $write:ident, begin: $begin:literal) => {
        #[async_trait::async_trait]
        impl $crate::storage::devices::DeviceStore for $store {
            async fn insert_allocation(
                &self,
                new: &$crate::storage::devices::NewAllocation<'_>,
            ) -> Result<i64, StorageError> {
                let mut tx = self.$write.begin_with($begin).await?;
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO device_allocations (decision_number, decision_date, tablets, smartphones, quotas, \
                     cash_amount, note, status, recorded_by, recorded_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'RECORDED', $8, $9) RETURNING id",
                )
                .bind(new.decision_number)
                .bind(new.decision_date)
                .bind(new.tablets)
                .bind(new.smartphones)
                .bind(new.quotas)
                .bind(new.cash_amount)
                .bind(new.note)
                .bind(new.recorded_by)
                .bind(new.recorded_at)
                .fetch_one(&mut *tx)
                .await
                .map_err(StorageError::from_insert)?;
                tx.commit().await?;
                Ok(id)
            }

            async fn allocation(
                &self,
                decision_number: &str,
            ) -> Result<Option<$crate::storage::devices::AllocationRow>, StorageError> {
                Ok(sqlx::query_as($crate::storage::devices::select_allocations!("decision_number = $1"))
                    .bind(decision_number)
                    .fetch_optional(&self.$read)
                    .await?)
            }

            async fn list_allocations(
                &self,
                before: i64,
                limit: u32,
            ) -> Result<Vec<$crate::storage::devices::AllocationRow>, StorageError> {
                Ok(sqlx::query_as($crate::storage::devices::select_allocations!("id < $1 ORDER BY id DESC LIMIT $2"))
                    .bind(before)
                    .bind(i64::from(limit))
                    .fetch_all(&self.$read)
                    .await?)
            }

            async fn nominate_households(
                &self,
                id: i64,
                codes: &[String],
                by: &str,
                reason: &str,
                at: time::OffsetDateTime,
            ) -> Result<u64, StorageError> {
                let mut tx = self.$write.begin_with($begin).await?;
                let mut added = 0;
                for chunk in codes.chunks($crate::storage::devices::PLACES_PER_INSERT) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO device_nominations (allocation_id, household_code, nominated_by, reason, \
                         nominated_at) ",
                    );
                    insert.push_values(chunk, |mut row, code| {
                        row.push_bind(id).push_bind(code.clone()).push_bind(by).push_bind(reason).push_bind(at);
                    });
                    insert.push(" ON CONFLICT DO NOTHING");
                    added += insert.build().execute(&mut *tx).await?.rows_affected();
                }
                tx.commit().await?;
                Ok(added)
            }

            async fn nominations(&self, id: i64) -> Result<Vec<String>, StorageError> {
                let rows: Vec<(String,)> = sqlx::query_as(
                    "SELECT household_code FROM device_nominations WHERE allocation_id = $1 ORDER BY household_code",
                )
                .bind(id)
                .fetch_all(&self.$read)
                .await?;
                Ok(rows.into_iter().map(|(c,)| c).collect())
            }

            async fn device_candidates(
                &self,
                id: i64,
                as_of: time::Date,
            ) -> Result<Vec<$crate::storage::devices::CandidateRow>, StorageError> {
                // The flag is stored only when set: the text test keeps the states to parse
                // few; the caller decides on the parsed data.
                Ok(sqlx::query_as(
                    "SELECT v.household_code, v.commune_code, v.data FROM household_versions v \
                     WHERE v.valid_from <= $1 AND (v.valid_to IS NULL OR v.valid_to > $1) \
                     AND v.removal_reason IS NULL AND v.data LIKE '%\"wants_device\":true%' \
                     AND NOT EXISTS (SELECT 1 FROM device_recipients r \
                                     WHERE r.household_code = v.household_code AND r.allocation_id <> $2) \
                     AND NOT EXISTS (SELECT 1 FROM device_handovers h WHERE h.household_code = v.household_code)",
                )
                .bind(as_of)
                .bind(id)
                .fetch_all(&self.$bulk)
                .await?)
            }

            async fn save_proposal(
                &self,
                id: i64,
                meta: &$crate::storage::devices::ProposalMeta,
                places: &[$crate::storage::devices::PlaceRow],
            ) -> Result<(), StorageError> {
                use $crate::storage::devices as dev;
                let mut tx = self.$write.begin_with($begin).await?;
                let done = sqlx::query(
                    "UPDATE device_allocations SET status = 'PROPOSED', revision = revision + 1, \
                     proposal_as_of = $2, policy_version = $3, proposed_at = $4, eligible = $5, recipients = $6, \
                     proposal_digest = $7, list_digest = NULL, submitted_by = NULL, submitted_at = NULL \
                     WHERE id = $1 AND status IN ('RECORDED', 'PROPOSED', 'RETURNED')",
                )
                .bind(id)
                .bind(meta.as_of)
                .bind(meta.policy_version)
                .bind(meta.proposed_at)
                .bind(meta.eligible)
                .bind(places.len() as i64)
                .bind(&meta.digest)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Err(StorageError::Precondition(dev::NOT_PROPOSABLE));
                }
                sqlx::query("DELETE FROM device_recipients WHERE allocation_id = $1").bind(id).execute(&mut *tx).await?;
                for chunk in places.chunks(dev::PLACES_PER_INSERT) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO device_recipients (household_code, allocation_id, rank, unit_code, commune_code, \
                         district_code, category, priority_group, nominated, device_type, head_name_masked, added) ",
                    );
                    insert.push_values(chunk, |mut row, p: &dev::PlaceRow| {
                        row.push_bind(p.household_code.clone())
                            .push_bind(id)
                            .push_bind(p.rank)
                            .push_bind(p.unit_code.clone())
                            .push_bind(p.commune_code.clone())
                            .push_bind(p.district_code.clone())
                            .push_bind(p.category.clone())
                            .push_bind(p.priority_group)
                            .push_bind(p.nominated)
                            .push_bind(p.device_type.clone())
                            .push_bind(p.head_name_masked.clone())
                            .push_bind(p.added);
                    });
                    insert.build().execute(&mut *tx).await.map_err(|e| match StorageError::from_insert(e) {
                        StorageError::AlreadyExists => StorageError::Precondition(dev::PLACE_TAKEN),
                        other => other,
                    })?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn amend_proposal(
                &self,
                id: i64,
                amend: &$crate::storage::devices::Amend<'_>,
                note: &$crate::storage::devices::AmendNote<'_>,
            ) -> Result<i64, StorageError> {
                use $crate::storage::devices::{self as dev, Amend};
                let mut tx = self.$write.begin_with($begin).await?;
                let delta: i64 = if matches!(amend, Amend::Add { .. }) { 1 } else { -1 };
                let revision: Option<(i64,)> = sqlx::query_as(
                    "UPDATE device_allocations SET revision = revision + 1, recipients = recipients + $2, \
                     list_digest = NULL WHERE id = $1 AND status IN ('PROPOSED', 'RETURNED') RETURNING revision",
                )
                .bind(id)
                .bind(delta)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((revision,)) = revision else {
                    return Err(StorageError::Precondition(dev::NOT_AMENDABLE));
                };
                let (household, device_type) = match amend {
                    Amend::Remove { household_code } => {
                        let done =
                            sqlx::query("DELETE FROM device_recipients WHERE allocation_id = $1 AND household_code = $2")
                                .bind(id)
                                .bind(*household_code)
                                .execute(&mut *tx)
                                .await?;
                        if done.rows_affected() != 1 {
                            return Err(StorageError::NotFound);
                        }
                        (household_code.to_string(), None)
                    }
                    Amend::Add { place, quota } => {
                        let (taken, last): (i64, Option<i64>) = sqlx::query_as(
                            "SELECT (SELECT COUNT(*) FROM device_recipients \
                                     WHERE allocation_id = $1 AND unit_code = $2 AND device_type = $3), \
                                    (SELECT MAX(rank) FROM device_recipients WHERE allocation_id = $1)",
                        )
                        .bind(id)
                        .bind(&place.unit_code)
                        .bind(&place.device_type)
                        .fetch_one(&mut *tx)
                        .await?;
                        if taken >= *quota {
                            return Err(StorageError::Precondition(dev::QUOTA_FULL));
                        }
                        sqlx::query(
                            "INSERT INTO device_recipients (household_code, allocation_id, rank, unit_code, \
                             commune_code, district_code, category, priority_group, nominated, device_type, \
                             head_name_masked, added) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                        )
                        .bind(&place.household_code)
                        .bind(id)
                        .bind(last.unwrap_or(0) + 1)
                        .bind(&place.unit_code)
                        .bind(&place.commune_code)
                        .bind(&place.district_code)
                        .bind(&place.category)
                        .bind(place.priority_group)
                        .bind(place.nominated)
                        .bind(&place.device_type)
                        .bind(&place.head_name_masked)
                        .bind(true)
                        .execute(&mut *tx)
                        .await
                        .map_err(StorageError::from_insert)?;
                        (place.household_code.clone(), Some(place.device_type.clone()))
                    }
                };
                sqlx::query(
                    "INSERT INTO device_amendments (allocation_id, revision, action, household_code, device_type, \
                     reason, amended_by, amended_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(id)
                .bind(revision)
                .bind(if delta > 0 { "ADD" } else { "REMOVE" })
                .bind(household)
                .bind(device_type)
                .bind(note.reason)
                .bind(note.by)
                .bind(note.at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(revision)
            }

            async fn submit_allocation(
                &self,
                id: i64,
                revision: i64,
                digest: &str,
                by: &str,
                at: time::OffsetDateTime,
            ) -> Result<(), StorageError> {
                let mut tx = self.$write.begin_with($begin).await?;
                let done = sqlx::query(
                    "UPDATE device_allocations SET status = 'SUBMITTED', list_digest = $3, submitted_by = $4, \
                     submitted_at = $5 WHERE id = $1 AND revision = $2 AND status IN ('PROPOSED', 'RETURNED')",
                )
                .bind(id)
                .bind(revision)
                .bind(digest)
                .bind(by)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Err(StorageError::Precondition($crate::storage::devices::CHANGED_SINCE));
                }
                tx.commit().await?;
                Ok(())
            }

            async fn decide_allocation(
                &self,
                id: i64,
                d: &$crate::storage::devices::CommitteeDecision<'_>,
            ) -> Result<(), StorageError> {
                use $crate::storage::devices as dev;
                let mut tx = self.$write.begin_with($begin).await?;
                let row: Option<(String, Option<String>)> =
                    sqlx::query_as("SELECT status, list_digest FROM device_allocations WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                match row {
                    Some((status, _)) if status != "SUBMITTED" => {
                        return Err(StorageError::Precondition(dev::NOT_SUBMITTED));
                    }
                    Some((_, digest)) if d.expected_digest.is_some_and(|e| Some(e) != digest.as_deref()) => {
                        return Err(StorageError::Precondition(dev::OTHER_DIGEST));
                    }
                    None => return Err(StorageError::NotFound),
                    Some(_) => {}
                }
                sqlx::query(
                    "UPDATE device_allocations SET status = $2, approval_number = $3, decided_by = $4, \
                     decided_at = $5, decision_note = $6, approved_on = $7 WHERE id = $1 AND status = 'SUBMITTED'",
                )
                .bind(id)
                .bind(if d.approve { "APPROVED" } else { "RETURNED" })
                .bind(d.approval_number)
                .bind(d.by)
                .bind(d.at)
                .bind(d.note)
                .bind(d.approved_on)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn record_handover(
                &self,
                h: &$crate::storage::devices::HandoverRow,
            ) -> Result<$crate::storage::devices::HandoverOutcome, StorageError> {
                use $crate::storage::devices::{HandoverOutcome, HandoverRow};
                let mut tx = self.$write.begin_with($begin).await?;
                let status: Option<(String,)> = sqlx::query_as("SELECT status FROM device_allocations WHERE id = $1")
                    .bind(h.allocation_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if status.is_none_or(|(s,)| s != "APPROVED") {
                    return Ok(HandoverOutcome::NotApproved);
                }
                let earlier: Option<HandoverRow> = sqlx::query_as(
                    "SELECT household_code, allocation_id, kind, device_type, serial_number, imei, cash_amount, \
                     phone_bought_on, receipt_reference, handed_over_on, received_by, recorded_by, recorded_at, \
                     request_id FROM device_handovers WHERE household_code = $1",
                )
                .bind(&h.household_code)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(earlier) = earlier {
                    return Ok(HandoverOutcome::AlreadyHandedOver(Box::new(earlier)));
                }
                let place: Option<(i64,)> = sqlx::query_as(
                    "SELECT rank FROM device_recipients WHERE allocation_id = $1 AND household_code = $2",
                )
                .bind(h.allocation_id)
                .bind(&h.household_code)
                .fetch_optional(&mut *tx)
                .await?;
                if place.is_none() {
                    return Ok(HandoverOutcome::NotOnList);
                }
                if let Some(imei) = &h.imei {
                    let used: Option<(String,)> =
                        sqlx::query_as("SELECT household_code FROM device_handovers WHERE imei = $1")
                            .bind(imei)
                            .fetch_optional(&mut *tx)
                            .await?;
                    if let Some((household_code,)) = used {
                        return Ok(HandoverOutcome::ImeiUsed { household_code });
                    }
                }
                sqlx::query(
                    "INSERT INTO device_handovers (household_code, allocation_id, kind, device_type, serial_number, \
                     imei, cash_amount, phone_bought_on, receipt_reference, handed_over_on, received_by, \
                     recorded_by, recorded_at, request_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                )
                .bind(&h.household_code)
                .bind(h.allocation_id)
                .bind(&h.kind)
                .bind(&h.device_type)
                .bind(&h.serial_number)
                .bind(&h.imei)
                .bind(h.cash_amount)
                .bind(h.phone_bought_on)
                .bind(&h.receipt_reference)
                .bind(h.handed_over_on)
                .bind(&h.received_by)
                .bind(&h.recorded_by)
                .bind(h.recorded_at)
                .bind(&h.request_id)
                .execute(&mut *tx)
                .await
                .map_err(StorageError::from_insert)?;
                tx.commit().await?;
                Ok(HandoverOutcome::Recorded)
            }

            async fn allocation_recipients(
                &self,
                id: i64,
                filter: &$crate::storage::devices::RecipientFilter,
                after: i64,
                limit: u32,
            ) -> Result<Vec<$crate::storage::devices::RecipientView>, StorageError> {
                use $crate::storage::devices::{RecipientRead, RecipientView};
                let state = match filter.handed_over {
                    None => 0_i64,
                    Some(false) => 1,
                    Some(true) => 2,
                };
                let rows: Vec<RecipientRead> = sqlx::query_as($crate::storage::devices::select_recipients!(
                    "r.allocation_id = $1 AND r.rank > $2 \
                     AND (CAST($3 AS TEXT) IS NULL OR r.commune_code = $3 OR r.unit_code = $3 OR r.district_code = $3) \
                     AND ($4 = 0 OR ($4 = 1 AND h.household_code IS NULL) OR ($4 = 2 AND h.household_code IS NOT NULL)) \
                     ORDER BY r.rank LIMIT $5"
                ))
                .bind(id)
                .bind(after)
                .bind(filter.unit_code.as_deref())
                .bind(state)
                .bind(i64::from(limit))
                .fetch_all(&self.$bulk)
                .await?;
                Ok(rows.into_iter().map(RecipientView::from).collect())
            }

            async fn place(
                &self,
                id: i64,
                household_code: &str,
            ) -> Result<Option<$crate::storage::devices::RecipientView>, StorageError> {
                use $crate::storage::devices::{RecipientRead, RecipientView};
                let row: Option<RecipientRead> = sqlx::query_as($crate::storage::devices::select_recipients!(
                    "r.allocation_id = $1 AND r.household_code = $2"
                ))
                .bind(id)
                .bind(household_code)
                .fetch_optional(&self.$read)
                .await?;
                Ok(row.map(RecipientView::from))
            }

            async fn allocation_progress(
                &self,
                id: i64,
            ) -> Result<Vec<$crate::storage::devices::ProgressRow>, StorageError> {
                Ok(sqlx::query_as(
                    "SELECT r.unit_code, COUNT(*) AS on_list, \
                     SUM(CASE WHEN h.kind = 'DEVICE' THEN 1 ELSE 0 END) AS devices, \
                     SUM(CASE WHEN h.kind = 'CASH' THEN 1 ELSE 0 END) AS cash \
                     FROM device_recipients r \
                     LEFT JOIN device_handovers h ON h.household_code = r.household_code \
                     WHERE r.allocation_id = $1 GROUP BY r.unit_code ORDER BY r.unit_code",
                )
                .bind(id)
                .fetch_all(&self.$read)
                .await?)
            }

            async fn allocation_amendments(
                &self,
                id: i64,
            ) -> Result<Vec<$crate::storage::devices::AmendmentRow>, StorageError> {
                Ok(sqlx::query_as(
                    "SELECT id, revision, action, household_code, device_type, reason, amended_by, amended_at \
                     FROM device_amendments WHERE allocation_id = $1 ORDER BY id",
                )
                .bind(id)
                .fetch_all(&self.$read)
                .await?)
            }

            async fn place_of(&self, household_code: &str) -> Result<Option<String>, StorageError> {
                let row: Option<(String,)> = sqlx::query_as(
                    "SELECT a.decision_number FROM device_recipients r \
                     JOIN device_allocations a ON a.id = r.allocation_id WHERE r.household_code = $1",
                )
                .bind(household_code)
                .fetch_optional(&self.$read)
                .await?;
                Ok(row.map(|(n,)| n))
            }

            async fn handover_of(
                &self,
                household_code: &str,
            ) -> Result<Option<$crate::storage::devices::HandoverRow>, StorageError> {
                Ok(sqlx::query_as(
                    "SELECT household_code, allocation_id, kind, device_type, serial_number, imei, cash_amount, \
                     phone_bought_on, receipt_reference, handed_over_on, received_by, recorded_by, recorded_at, \
                     request_id FROM device_handovers WHERE household_code = $1",
                )
                .bind(household_code)
                .fetch_optional(&self.$read)
                .await?)
            }
        }
    };
}
pub(super) use impl_device_store;
