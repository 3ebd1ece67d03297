//! Storage of device allocations: the decision, the list of places, amendments, hand-overs.
//! Every statement reads the same in both dialects: one implementation of the
//! [`AllocationStore`] and [`PlaceStore`] ports serves both backends.

use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Type};
use time::{Date, OffsetDateTime};

use super::backend::{Column, Param, Record, SqlStore, hold_row};
use crate::domain::ports::PortError;

pub use crate::domain::ports::devices::{
    AllocationDecision, Amend, AmendNote, Amendment, CandidateState, CommitteeDecision, Handover, HandoverOutcome,
    ListPlace, NewAllocation, ProposalMeta, RecipientFilter, RecipientView, UnitProgress,
};

/// `SELECT` of every column of `device_allocations` with a condition, as one literal.
macro_rules! select_allocations {
    ($condition:literal) => {
        concat!(
            "SELECT id, decision_number, decision_date, tablets, smartphones, quotas, cash_amount, note, status, \
             revision, recorded_by, recorded_at, proposal_as_of, policy_version, proposed_at, eligible, recipients, \
             proposal_digest, list_digest, submitted_by, submitted_at, approval_number, decided_by, decided_at, \
             decision_note, approved_on, decided_by_person FROM device_allocations WHERE ",
            $condition
        )
    };
}

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
             h.recorded_by_person AS h_recorded_by_person, h.recorded_at AS h_recorded_at, h.request_id AS h_request_id \
             FROM device_recipients r \
             LEFT JOIN device_handovers h ON h.household_code = r.household_code AND h.allocation_id = r.allocation_id \
             WHERE ",
            $condition
        )
    };
}

/// A place with the columns of its hand-over, as read by [`select_recipients!`].
#[derive(Debug, sqlx::FromRow)]
pub(super) struct RecipientRead {
    #[sqlx(flatten)]
    place: ListPlace,
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
    h_recorded_by_person: Option<String>,
    h_recorded_at: Option<OffsetDateTime>,
    h_request_id: Option<String>,
}

impl From<RecipientRead> for RecipientView {
    fn from(r: RecipientRead) -> Self {
        let handover = match (r.h_allocation_id, r.h_kind, r.h_handed_over_on, r.h_recorded_at) {
            (Some(allocation_id), Some(kind), Some(handed_over_on), Some(recorded_at)) => Some(Handover {
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
                recorded_by_person: r.h_recorded_by_person,
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

/// One implementation for both backends: every statement reads the same in both dialects.
#[async_trait::async_trait]
impl<S> crate::domain::ports::AllocationStore for S
where
    S: SqlStore,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    usize: ColumnIndex<<S::Db as Database>::Row>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<&'q str>: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> &'q String: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<&'q String>: Encode<'q, S::Db> + Type<S::Db>,
    i64: Param<S::Db> + Column<S::Db>,
    String: Param<S::Db> + Column<S::Db>,
    bool: Param<S::Db>,
    Date: Param<S::Db> + Column<S::Db>,
    OffsetDateTime: Param<S::Db> + Column<S::Db>,
    for<'a> &'a str: ColumnIndex<<S::Db as Database>::Row>,
    AllocationDecision: Record<S::Db>,
    Amendment: Record<S::Db>,
    CandidateState: Record<S::Db>,
    Handover: Record<S::Db>,
    ListPlace: Record<S::Db>,
    UnitProgress: Record<S::Db>,
    Option<i64>: Param<S::Db>,
    Option<String>: Param<S::Db>,
    Option<Date>: Param<S::Db>,
{
    async fn insert_allocation(&self, new: &NewAllocation<'_>) -> Result<i64, PortError> {
        let mut tx = self.begin_write().await?;
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
        .map_err(PortError::from_insert)?;
        tx.commit().await?;
        Ok(id)
    }

    async fn allocation(&self, decision_number: &str) -> Result<Option<AllocationDecision>, PortError> {
        Ok(sqlx::query_as(select_allocations!("decision_number = $1"))
            .bind(decision_number)
            .fetch_optional(self.reader())
            .await?)
    }

    async fn list_allocations(&self, before: i64, limit: u32) -> Result<Vec<AllocationDecision>, PortError> {
        Ok(sqlx::query_as(select_allocations!("id < $1 ORDER BY id DESC LIMIT $2"))
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(self.reader())
            .await?)
    }

    async fn nominate_households(
        &self,
        id: i64,
        codes: &[String],
        by: &str,
        reason: &str,
        at: time::OffsetDateTime,
    ) -> Result<u64, PortError> {
        let mut tx = self.begin_write().await?;
        // An approval waits for the nomination, or the nomination sees the approval.
        let not_approved = "UPDATE device_allocations SET status = status WHERE id = $1 AND status <> 'APPROVED'";
        hold_row::<S>(&mut tx, not_approved, id, crate::domain::ports::Conflict::Approved).await?;
        let mut added = 0;
        for chunk in codes.chunks(PLACES_PER_INSERT) {
            let mut insert = sqlx::QueryBuilder::<S::Db>::new(
                "INSERT INTO device_nominations (allocation_id, household_code, nominated_by, reason, \
                 nominated_at) ",
            );
            insert.push_values(chunk, |mut row, code| {
                row.push_bind(id).push_bind(code.clone()).push_bind(by).push_bind(reason).push_bind(at);
            });
            insert.push(" ON CONFLICT DO NOTHING");
            added += S::rows_affected(&insert.build().execute(&mut *tx).await?);
        }
        tx.commit().await?;
        Ok(added)
    }

    async fn nominations(&self, id: i64) -> Result<Vec<String>, PortError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT household_code FROM device_nominations WHERE allocation_id = $1 ORDER BY household_code",
        )
        .bind(id)
        .fetch_all(self.reader())
        .await?;
        Ok(rows.into_iter().map(|(c,)| c).collect())
    }

    async fn device_candidates(&self, id: i64, as_of: time::Date) -> Result<Vec<CandidateState>, PortError> {
        // The flag kept beside each state keeps the states to parse few; the caller
        // decides on the parsed data.
        Ok(sqlx::query_as(
            "SELECT v.household_code, v.commune_code, v.data FROM household_versions v \
             WHERE v.valid_from <= $1 AND (v.valid_to IS NULL OR v.valid_to > $1) \
             AND v.removal_reason IS NULL AND v.wants_device \
             AND NOT EXISTS (SELECT 1 FROM device_recipients r \
                             WHERE r.household_code = v.household_code AND r.allocation_id <> $2) \
             AND NOT EXISTS (SELECT 1 FROM device_handovers h WHERE h.household_code = v.household_code)",
        )
        .bind(as_of)
        .bind(id)
        .fetch_all(&mut *self.scan().await?)
        .await?)
    }

    async fn save_proposal(&self, id: i64, meta: &ProposalMeta, places: &[ListPlace]) -> Result<(), PortError> {
        use crate::storage::devices as dev;
        let mut tx = self.begin_write().await?;
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
        if S::rows_affected(&done) != 1 {
            return Err(PortError::Conflict(crate::domain::ports::Conflict::NotProposable));
        }
        sqlx::query("DELETE FROM device_recipients WHERE allocation_id = $1").bind(id).execute(&mut *tx).await?;
        for chunk in places.chunks(dev::PLACES_PER_INSERT) {
            let mut insert = sqlx::QueryBuilder::<S::Db>::new(
                "INSERT INTO device_recipients (household_code, allocation_id, rank, unit_code, commune_code, \
                 district_code, category, priority_group, nominated, device_type, head_name_masked, added) ",
            );
            insert.push_values(chunk, |mut row, p: &dev::ListPlace| {
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
            insert.build().execute(&mut *tx).await.map_err(|e| match PortError::from_insert(e) {
                PortError::AlreadyExists => PortError::Conflict(crate::domain::ports::Conflict::PlaceTaken),
                other => other,
            })?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn amend_proposal(&self, id: i64, amend: &Amend<'_>, note: &AmendNote<'_>) -> Result<i64, PortError> {
        use Amend;
        let mut tx = self.begin_write().await?;
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
            return Err(PortError::Conflict(crate::domain::ports::Conflict::NotAmendable));
        };
        let (household, device_type) = match amend {
            Amend::Remove { household_code } => {
                let done =
                    sqlx::query("DELETE FROM device_recipients WHERE allocation_id = $1 AND household_code = $2")
                        .bind(id)
                        .bind(*household_code)
                        .execute(&mut *tx)
                        .await?;
                if S::rows_affected(&done) != 1 {
                    return Err(PortError::NotFound);
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
                    return Err(PortError::Conflict(crate::domain::ports::Conflict::QuotaFull));
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
                .map_err(PortError::from_insert)?;
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
    ) -> Result<(), PortError> {
        let mut tx = self.begin_write().await?;
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
        if S::rows_affected(&done) != 1 {
            return Err(PortError::Conflict(crate::domain::ports::Conflict::ChangedSince));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn decide_allocation(&self, id: i64, d: &CommitteeDecision<'_>) -> Result<(), PortError> {
        let mut tx = self.begin_write().await?;
        let row: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT status, list_digest FROM device_allocations WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        match row {
            Some((status, _)) if status != "SUBMITTED" => {
                return Err(PortError::Conflict(crate::domain::ports::Conflict::NotSubmitted));
            }
            Some((_, digest)) if d.expected_digest.is_some_and(|e| Some(e) != digest.as_deref()) => {
                return Err(PortError::Conflict(crate::domain::ports::Conflict::OtherDigest));
            }
            None => return Err(PortError::NotFound),
            Some(_) => {}
        }
        let done = sqlx::query(
            "UPDATE device_allocations SET status = $2, approval_number = $3, decided_by = $4, \
             decided_at = $5, decision_note = $6, approved_on = $7, decided_by_person = $8 \
             WHERE id = $1 AND status = 'SUBMITTED'",
        )
        .bind(id)
        .bind(if d.approve { "APPROVED" } else { "RETURNED" })
        .bind(d.approval_number)
        .bind(d.by)
        .bind(d.at)
        .bind(d.note)
        .bind(d.approved_on)
        .bind(d.by_person)
        .execute(&mut *tx)
        .await?;
        // Another decision may have been stored since the status was read (PostgreSQL reads
        // without holding the row): then this one is not kept, and says so.
        if S::rows_affected(&done) != 1 {
            return Err(PortError::Conflict(crate::domain::ports::Conflict::NotSubmitted));
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl<S> crate::domain::ports::PlaceStore for S
where
    S: SqlStore,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    usize: ColumnIndex<<S::Db as Database>::Row>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<&'q str>: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> &'q String: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<&'q String>: Encode<'q, S::Db> + Type<S::Db>,
    i64: Param<S::Db> + Column<S::Db>,
    String: Param<S::Db> + Column<S::Db>,
    bool: Param<S::Db>,
    Date: Param<S::Db> + Column<S::Db>,
    OffsetDateTime: Param<S::Db> + Column<S::Db>,
    for<'a> &'a str: ColumnIndex<<S::Db as Database>::Row>,
    AllocationDecision: Record<S::Db>,
    Amendment: Record<S::Db>,
    CandidateState: Record<S::Db>,
    Handover: Record<S::Db>,
    ListPlace: Record<S::Db>,
    UnitProgress: Record<S::Db>,
    Option<i64>: Param<S::Db>,
    Option<String>: Param<S::Db>,
    Option<Date>: Param<S::Db>,
{
    async fn record_handover(&self, h: &Handover) -> Result<HandoverOutcome, PortError> {
        use {Handover, HandoverOutcome};
        let mut tx = self.begin_write().await?;
        // A second hand-over of the household, or of the device, waits here for the first to
        // commit, and then reads it: without the locks both read "none" and the second's insert
        // breaks the table's keys instead of being answered.
        S::lock_key(&mut *tx, &format!("handover:{}", h.household_code)).await?;
        if let Some(imei) = &h.imei {
            S::lock_key(&mut *tx, &format!("imei:{imei}")).await?;
        }
        let serial = h.serial_number.as_ref().zip(h.device_type.as_ref());
        if let Some((serial, device_type)) = serial {
            S::lock_key(&mut *tx, &format!("serial:{device_type}:{serial}")).await?;
        }
        let status: Option<(String,)> = sqlx::query_as("SELECT status FROM device_allocations WHERE id = $1")
            .bind(h.allocation_id)
            .fetch_optional(&mut *tx)
            .await?;
        if status.is_none_or(|(s,)| s != "APPROVED") {
            return Ok(HandoverOutcome::NotApproved);
        }
        let earlier: Option<Handover> = sqlx::query_as(
            "SELECT household_code, allocation_id, kind, device_type, serial_number, imei, cash_amount, \
             phone_bought_on, receipt_reference, handed_over_on, received_by, recorded_by, recorded_at, \
             request_id, recorded_by_person FROM device_handovers WHERE household_code = $1",
        )
        .bind(&h.household_code)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(earlier) = earlier {
            return Ok(HandoverOutcome::AlreadyHandedOver(Box::new(earlier)));
        }
        let place: Option<(i64,)> =
            sqlx::query_as("SELECT rank FROM device_recipients WHERE allocation_id = $1 AND household_code = $2")
                .bind(h.allocation_id)
                .bind(&h.household_code)
                .fetch_optional(&mut *tx)
                .await?;
        if place.is_none() {
            return Ok(HandoverOutcome::NotOnList);
        }
        if let Some(imei) = &h.imei {
            let used: Option<(String,)> = sqlx::query_as("SELECT household_code FROM device_handovers WHERE imei = $1")
                .bind(imei)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some((household_code,)) = used {
                return Ok(HandoverOutcome::ImeiUsed { household_code });
            }
        }
        if let Some((serial, device_type)) = serial {
            let used: Option<(String,)> = sqlx::query_as(
                "SELECT household_code FROM device_handovers WHERE serial_number = $1 AND device_type = $2",
            )
            .bind(serial)
            .bind(device_type)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((household_code,)) = used {
                return Ok(HandoverOutcome::SerialUsed { household_code });
            }
        }
        sqlx::query(
            "INSERT INTO device_handovers (household_code, allocation_id, kind, device_type, serial_number, \
             imei, cash_amount, phone_bought_on, receipt_reference, handed_over_on, received_by, \
             recorded_by, recorded_at, request_id, recorded_by_person) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
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
        .bind(&h.recorded_by_person)
        .execute(&mut *tx)
        .await
        .map_err(PortError::from_insert)?;
        tx.commit().await?;
        Ok(HandoverOutcome::Recorded)
    }

    async fn allocation_recipients(
        &self,
        id: i64,
        filter: &RecipientFilter,
        after: i64,
        limit: u32,
    ) -> Result<Vec<RecipientView>, PortError> {
        use {RecipientRead, RecipientView};
        let state = match filter.handed_over {
            None => 0_i64,
            Some(false) => 1,
            Some(true) => 2,
        };
        let rows: Vec<RecipientRead> = sqlx::query_as(select_recipients!(
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
        .fetch_all(&mut *self.scan().await?)
        .await?;
        Ok(rows.into_iter().map(RecipientView::from).collect())
    }

    async fn place(&self, id: i64, household_code: &str) -> Result<Option<RecipientView>, PortError> {
        use {RecipientRead, RecipientView};
        let row: Option<RecipientRead> =
            sqlx::query_as(select_recipients!("r.allocation_id = $1 AND r.household_code = $2"))
                .bind(id)
                .bind(household_code)
                .fetch_optional(self.reader())
                .await?;
        Ok(row.map(RecipientView::from))
    }

    async fn allocation_progress(&self, id: i64) -> Result<Vec<UnitProgress>, PortError> {
        Ok(sqlx::query_as(
            "SELECT r.unit_code, COUNT(*) AS on_list, \
             SUM(CASE WHEN h.kind = 'DEVICE' THEN 1 ELSE 0 END) AS devices, \
             SUM(CASE WHEN h.kind = 'CASH' THEN 1 ELSE 0 END) AS cash \
             FROM device_recipients r \
             LEFT JOIN device_handovers h ON h.household_code = r.household_code \
             WHERE r.allocation_id = $1 GROUP BY r.unit_code ORDER BY r.unit_code",
        )
        .bind(id)
        .fetch_all(self.reader())
        .await?)
    }

    async fn allocation_amendments(&self, id: i64) -> Result<Vec<Amendment>, PortError> {
        Ok(sqlx::query_as(
            "SELECT id, revision, action, household_code, device_type, reason, amended_by, amended_at \
             FROM device_amendments WHERE allocation_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(self.reader())
        .await?)
    }

    async fn place_of(&self, household_code: &str) -> Result<Option<String>, PortError> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT a.decision_number FROM device_recipients r \
             JOIN device_allocations a ON a.id = r.allocation_id WHERE r.household_code = $1",
        )
        .bind(household_code)
        .fetch_optional(self.reader())
        .await?;
        Ok(row.map(|(n,)| n))
    }

    async fn handover_of(&self, household_code: &str) -> Result<Option<Handover>, PortError> {
        Ok(sqlx::query_as(
            "SELECT household_code, allocation_id, kind, device_type, serial_number, imei, cash_amount, \
             phone_bought_on, receipt_reference, handed_over_on, received_by, recorded_by, recorded_at, \
             request_id, recorded_by_person FROM device_handovers WHERE household_code = $1",
        )
        .bind(household_code)
        .fetch_optional(self.reader())
        .await?)
    }
}
