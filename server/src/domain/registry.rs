//! The household register: receiving batches from the labour department, and answering
//! what a household was on a date.
//!
//! A batch is checked record by record as it streams in and staged in the database in
//! chunks; nothing reaches the register until the last record has arrived and every check
//! has passed, and then the whole batch is applied in one transaction. A batch interrupted
//! on the way (the client goes away, the hub stops) leaves only staged rows, which the next
//! attempt with the same batch id replaces.

use super::context::ServiceContext;
use std::{collections::HashMap, sync::Arc};

use futures_util::{Stream, StreamExt};
use time::{Date, OffsetDateTime};

use super::clock::Clock;
use super::{
    DomainError, FieldViolation, Violations,
    household::{
        BatchHeader, BatchId, BatchKind, Change, CheckContext, HouseholdCode, HouseholdData, RecordInput,
        RemovalReason, ReviewPeriod, check_record, format_date, free_text, name_enum, parse_date,
    },
    member::{Caller, OrgCode, Role},
    paging::{self, Page},
    unit_registry::UnitRegistry,
    units::UnitTable,
};
use crate::domain::ports::{
    BatchStore, PortError, RegisterStore, Store,
    register::{ApplyProblem, Batch, HouseholdVersion, NewBatch, Staged, StagedRecord},
};

name_enum! {
    /// Where a batch is: being received (staged, not yet in the register), or applied.
    BatchStatus {
        Receiving = "RECEIVING",
        Applied = "APPLIED",
    }
}

/// What a stream receiving a batch claims ([`Store::claim`]).
pub fn batch_key(batch_id: &str) -> String {
    format!("batch {batch_id}")
}

/// Field violations kept for one batch; the transport reports as many as fit in a status.
pub const MAX_REPORTED: usize = 99;
/// Records staged per database write.
const STAGE_CHUNK: usize = 2_000;

/// A batch header as it arrives.
#[derive(Debug, Clone, Default)]
pub struct HeaderInput {
    pub batch_id: String,
    pub kind: Option<BatchKind>,
    pub review_period: String,
    pub effective_date: String,
    pub note: String,
}

/// What the register says about a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub batch: Batch,
    /// This push repeated an applied batch and changed nothing.
    pub replayed: bool,
}

/// One state of a household, with where its commune lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HouseholdView {
    pub code: String,
    pub valid_from: Date,
    pub valid_to: Option<Date>,
    pub removal: Option<(RemovalReason, String)>,
    pub data: HouseholdData,
    /// The date the commune's name, district and province are given for.
    pub located_on: Date,
    pub commune_name: String,
    pub district_code: Option<String>,
    pub province_code: Option<String>,
    pub batch_id: String,
    pub recorded_at: OffsetDateTime,
}

/// How to find households.
#[derive(Debug, Clone)]
pub enum FindKey {
    CitizenId(String),
    CertificateNumber(String),
}

#[derive(Debug, Clone)]
pub struct HouseholdRegistry {
    store: Arc<dyn Store>,
    batch_store: Arc<dyn BatchStore>,
    register_store: Arc<dyn RegisterStore>,
    units: Arc<UnitRegistry>,
    /// Woken when a batch may have written feed events.
    feed: Option<Arc<tokio::sync::Notify>>,
    /// Reconciles again the monthly lists a change touches.
    reconciliation: Option<super::reconciliation::ReconciliationService>,
    clock: Clock,
}

/// A stream of record chunks as the transport decodes them.
pub type RecordStream<'a> = std::pin::Pin<Box<dyn Stream<Item = Result<Vec<RecordInput>, DomainError>> + Send + 'a>>;

impl HouseholdRegistry {
    /// Reads and writes the register through the store's own port: what a batch wrote is read
    /// back in its transaction, not through the read model.
    pub fn new(context: &ServiceContext) -> Self {
        let store = &context.store;
        Self {
            store: store.clone(),
            batch_store: store.clone(),
            register_store: store.clone(),
            units: context.units.clone(),
            feed: None,
            reconciliation: None,
            clock: context.clock.clone(),
        }
    }

    /// Wakes `feed`'s waiting readers after every applied batch.
    /// Has monthly lists the change touches reconciled again after every applied batch.
    pub fn with_reconciliation(mut self, reconciliation: super::reconciliation::ReconciliationService) -> Self {
        self.reconciliation = Some(reconciliation);
        self
    }

    pub fn with_feed(mut self, feed: Arc<tokio::sync::Notify>) -> Self {
        self.feed = Some(feed);
        self
    }

    /// Checks a batch header.
    pub fn check_header(&self, h: &HeaderInput) -> Result<BatchHeader, DomainError> {
        let mut v = Violations::new();
        let batch_id = v.check("header.batch_id", BatchId::parse(&h.batch_id));
        let kind = h.kind.or_else(|| {
            v.add("header.kind", "DELTA or SNAPSHOT is required");
            None
        });
        let review_period = v.check("header.review_period", ReviewPeriod::parse(&h.review_period));
        let effective = v.check(
            "header.effective_date",
            parse_date(&h.effective_date).and_then(|d| {
                if d > self.clock.today() + time::Duration::days(super::household::MAX_DAYS_AHEAD) {
                    Err(format!("{d} is more than a year ahead"))
                } else if d.year() < 2000 {
                    Err(format!("{d} is before the programme's records begin (2000)"))
                } else {
                    Ok(d)
                }
            }),
        );
        let note = v.check("header.note", free_text(&h.note, 500));
        v.finish()?;
        Ok(BatchHeader {
            batch_id: batch_id.expect("checked"),
            kind: kind.expect("checked"),
            review_period: review_period.expect("checked"),
            effective: effective.expect("checked"),
            note: note.expect("checked"),
        })
    }

    /// Clears what streams of hubs that stopped left: batches being received whose stream is
    /// gone (its claim ended with it) are forgotten with what they staged. Batches of live
    /// streams, on this hub's database through another hub, are left alone.
    pub async fn recover(&self) -> Result<(), DomainError> {
        for id in self.batch_store.receiving_batches().await? {
            if let Some(claim) = self.store.claim(&batch_key(&id)).await? {
                claim.hold(self.batch_store.discard_batch(&id)).await?;
                tracing::warn!(batch = %id, "a batch was cut off by a hub that stopped: what it staged was discarded, the register is as before it; push it again");
            }
        }
        Ok(())
    }

    /// Receives, checks and applies one batch.
    pub async fn push(
        &self,
        header: BatchHeader,
        pushed_by: &OrgCode,
        mut records: RecordStream<'_>,
    ) -> Result<Receipt, DomainError> {
        let id = header.batch_id.as_str();
        let mut digest = BatchDigest::new(&header);
        if let Some(existing) = self.batch_store.batch(id).await?
            && existing.status == BatchStatus::Applied
        {
            while let Some(chunk) = records.next().await {
                chunk?.iter().for_each(|r| digest.record(r));
            }
            return if existing.content_digest.as_deref() == Some(digest.finish().as_str()) {
                Ok(Receipt { batch: existing, replayed: true })
            } else {
                Err(DomainError::AlreadyExists(format!(
                    "batch {id} was applied on {} with different content; push changed content under a new batch id",
                    existing.applied_at.map(|t| t.date().to_string()).unwrap_or_default()
                )))
            };
        }
        // One stream per batch id at a time, across the hubs of the database: a second one
        // (a client retrying while its first stream is still open) is refused at once.
        let Some(claim) = self.store.claim(&batch_key(id)).await? else {
            return Err(DomainError::Aborted(format!(
                "batch {id} is being received by another stream right now: this one is refused and changed \
                 nothing, the other goes on; wait for its receipt (GetBatch), or push again once it has ended"
            )));
        };
        // Given up before the answer, so that a client pushing again at once finds it free.
        claim.hold(self.push_claimed(header, pushed_by, records, digest)).await
    }

    /// [`Self::push`] once the batch is claimed.
    async fn push_claimed(
        &self,
        header: BatchHeader,
        pushed_by: &OrgCode,
        mut records: RecordStream<'_>,
        mut digest: BatchDigest,
    ) -> Result<Receipt, DomainError> {
        let id = header.batch_id.as_str();
        let receiver = crate::random_token();
        let received_at = self.clock.now();
        let new = NewBatch {
            batch_id: id,
            kind: header.kind,
            review_period: header.review_period.as_str(),
            effective: header.effective,
            note: &header.note,
            pushed_by: pushed_by.as_str(),
            received_at,
            receiver: &receiver,
        };
        self.batch_store.begin_batch(&new).await.map_err(|e| match e {
            PortError::AlreadyExists => DomainError::FailedPrecondition(format!(
                "batch {id} is being applied by another push right now; retry in a moment"
            )),
            other => other.into(),
        })?;
        let result = self.receive_and_apply(&header, &receiver, &mut records, &mut digest).await;
        if result.is_err()
            && let Err(e) = self.batch_store.discard_batch(id).await
        {
            tracing::warn!(batch = id, error = %crate::ErrorChain(&e), "could not discard the staged records");
        }
        let counts = result?;
        tracing::info!(batch = id, kind = header.kind.as_str(), records = counts, "household batch applied");
        let batch = self
            .batch_store
            .batch(id)
            .await?
            .ok_or_else(|| DomainError::Internal("the applied batch vanished".into()))?;
        Ok(Receipt { batch, replayed: false })
    }

    async fn receive_and_apply(
        &self,
        header: &BatchHeader,
        receiver: &str,
        records: &mut RecordStream<'_>,
        digest: &mut BatchDigest,
    ) -> Result<i64, DomainError> {
        let id = header.batch_id.as_str();
        let units = self.units.table().await?;
        let mut check = BatchCheck::new(&units, header, self.clock.today());

        // Staging runs beside the checks: the next chunk is checked while the last is written.
        let (to_stage, mut staging) = tokio::sync::mpsc::channel::<Vec<StagedRecord>>(2);
        let store = self.store.clone();
        let (batch_id, stager_token) = (id.to_owned(), receiver.to_owned());
        let stager = tokio::spawn(async move {
            while let Some(chunk) = staging.recv().await {
                store.stage_records(&batch_id, &stager_token, &chunk).await?;
            }
            Ok::<_, PortError>(())
        });
        let mut buffer = Vec::with_capacity(STAGE_CHUNK);
        let received = async {
            while let Some(chunk) = records.next().await {
                for input in chunk? {
                    digest.record(&input);
                    if let Some(staged) = check.record(&input) {
                        buffer.push(staged);
                        if buffer.len() == STAGE_CHUNK
                            && to_stage
                                .send(std::mem::replace(&mut buffer, Vec::with_capacity(STAGE_CHUNK)))
                                .await
                                .is_err()
                        {
                            return Ok(()); // the stager failed; its error is reported below
                        }
                    }
                }
            }
            if !buffer.is_empty() {
                let _ = to_stage.send(std::mem::take(&mut buffer)).await;
            }
            Ok::<_, DomainError>(())
        }
        .await;
        drop(to_stage);
        let staged = stager.await.map_err(|e| DomainError::Internal(Box::new(e)))?;
        received?;
        staged.map_err(|e| match e {
            PortError::Conflict(why) => {
                DomainError::Aborted(format!("batch {id} was not received: {why}; nothing was changed: push it again"))
            }
            other => other.into(),
        })?;
        let total = check.index as i64;
        check.finish()?;

        tracing::info!(batch = id, records = total, "applying household batch");
        let staged = Staged { batch_id: id, receiver, records: total };
        let applied = self
            .batch_store
            .apply_batch(&staged, header.kind, header.effective, &digest.finish(), self.clock.now())
            .await
            .map_err(|e| match e {
                PortError::Conflict(why) => DomainError::Aborted(format!(
                    "batch {id} was not applied: {why}; nothing was changed: push it again"
                )),
                other => other.into(),
            })?;
        match applied {
            Ok(_) => {
                if let Some(feed) = &self.feed {
                    feed.notify_waiters();
                }
                if let Some(reconciliation) = &self.reconciliation
                    && let Err(e) = reconciliation.register_changed(header.effective).await
                {
                    tracing::error!(batch = id, error = %crate::ErrorChain(&e), "monthly lists could not be marked for reconciling again");
                }
                Ok(total)
            }
            Err(problems) => Err(problems_to_error(&problems, header.effective)),
        }
    }

    pub async fn batch(&self, batch_id: &str) -> Result<Receipt, DomainError> {
        let id = BatchId::parse(batch_id).map_err(|e| DomainError::invalid("batch_id", e))?;
        match self.batch_store.batch(id.as_str()).await? {
            Some(batch) if batch.status == BatchStatus::Applied => Ok(Receipt { batch, replayed: false }),
            _ => Err(DomainError::NotFound(format!("no batch {id} has been applied"))),
        }
    }

    pub async fn list_batches(&self, page_size: u32, page_token: &str) -> Result<Page<Receipt>, DomainError> {
        let mut v = Violations::new();
        if page_size > 500 {
            v.add("page_size", format!("is {page_size}; at most 500 batches come in one page"));
        }
        let before = if page_token.is_empty() {
            None
        } else {
            v.check(
                "page_token",
                paging::position(page_token).ok_or_else(|| "is not a token this hub gave out".to_owned()),
            )
        };
        v.finish()?;
        let limit = if page_size == 0 { 50 } else { page_size };
        let rows = self.batch_store.list_batches(before, limit + 1).await?;
        Ok(Page::cut(rows, limit, |r| r.seq.to_string()).map(|batch| Receipt { batch, replayed: false }))
    }

    /// A household on a date (today when `None`).
    pub async fn household(
        &self,
        caller: &Caller,
        code: &str,
        as_of: Option<Date>,
    ) -> Result<HouseholdView, DomainError> {
        let code = HouseholdCode::parse(code).map_err(|e| DomainError::invalid("household_code", e))?;
        let date = as_of.unwrap_or_else(|| self.clock.today());
        let units = self.units.table().await?;
        let Some(row) = self.register_store.household_on(code.as_str(), date).await? else {
            // Known to the caller: it has a state the caller may read.
            let known = self
                .register_store
                .household_versions(code.as_str())
                .await?
                .into_iter()
                .map(|r| view(r, &units, None))
                .any(|v| v.is_ok_and(|v| check_scope(caller, &v, &units).is_ok()));
            return Err(DomainError::NotFound(if known {
                format!("household {code} was not yet on the register on {date}")
            } else {
                self.not_on_register(&code).await?
            }));
        };
        let view = view(row, &units, Some(date))?;
        if let Err(outside) = check_scope(caller, &view, &units) {
            // The same reads as for a household not there, so that the answer takes as long.
            self.register_store.household_versions(code.as_str()).await?;
            return Err(outside);
        }
        Ok(view)
    }

    /// Why a household has no state: never on the register, or off it for so long that its
    /// states were purged under the retention policy.
    async fn not_on_register(&self, code: &HouseholdCode) -> Result<String, DomainError> {
        Ok(match self.store.purged_household(code.as_str()).await? {
            Some(p) => format!(
                "household {code} left the list on {} and its states were purged on {} under the retention policy",
                format_date(p.removed_on),
                format_date(p.purged_at.date())
            ),
            None => not_on_register(code),
        })
    }

    /// Every state of a household, oldest first.
    pub async fn history(&self, caller: &Caller, code: &str) -> Result<Vec<HouseholdView>, DomainError> {
        let code = HouseholdCode::parse(code).map_err(|e| DomainError::invalid("household_code", e))?;
        let units = self.units.table().await?;
        let rows = self.register_store.household_versions(code.as_str()).await?;
        if rows.is_empty() {
            return Err(DomainError::NotFound(self.not_on_register(&code).await?));
        }
        let views: Vec<HouseholdView> = rows.into_iter().map(|r| view(r, &units, None)).collect::<Result<_, _>>()?;
        // A locality may read a household that lies, or lay, in its unit.
        if caller.member.role == Role::Locality && !views.iter().any(|v| check_scope(caller, v, &units).is_ok()) {
            return Err(outside_scope(caller, code.as_str()));
        }
        Ok(views)
    }

    /// Households by a member's citizen ID or by certificate number, on a date; a locality
    /// sees only those in its unit.
    pub async fn find(
        &self,
        caller: &Caller,
        key: FindKey,
        as_of: Option<Date>,
    ) -> Result<Vec<HouseholdView>, DomainError> {
        let date = as_of.unwrap_or_else(|| self.clock.today());
        let units = self.units.table().await?;
        let rows = match &key {
            FindKey::CitizenId(id) => {
                let id = super::household::CitizenId::parse(id, &units)
                    .map_err(|e| DomainError::invalid("citizen_id", e))?;
                self.register_store.find_by_citizen(id.as_str(), date).await?
            }
            FindKey::CertificateNumber(n) => {
                let n = free_text(n, 60).map_err(|e| DomainError::invalid("certificate_number", e))?;
                if n.is_empty() {
                    return Err(DomainError::invalid("certificate_number", "a certificate number is required"));
                }
                self.register_store.find_by_certificate(&n, date).await?
            }
        };
        let views: Vec<HouseholdView> =
            rows.into_iter().map(|r| view(r, &units, Some(date))).collect::<Result<_, _>>()?;
        Ok(views.into_iter().filter(|v| check_scope(caller, v, &units).is_ok()).collect())
    }
}

impl HouseholdRegistry {
    /// What the register holds about a person: every household the citizen ID ever belonged
    /// to, each with its whole history (a locality: those that lie, or lay, in its unit).
    pub async fn households_of_citizen(
        &self,
        caller: &Caller,
        citizen_id: &str,
    ) -> Result<Vec<Vec<HouseholdView>>, DomainError> {
        let units = self.units.table().await?;
        let id = super::household::CitizenId::parse(citizen_id.trim(), &units)
            .map_err(|e| DomainError::invalid("citizen_id", e))?;
        let states = self
            .register_store
            .states_matching(super::eligibility::QueryKind::CitizenId, &[id.as_str().to_owned()], false)
            .await?;
        let mut codes: Vec<String> = states.into_iter().map(|s| s.household_code).collect();
        codes.sort();
        codes.dedup();
        let mut households = Vec::with_capacity(codes.len());
        for code in codes {
            match self.history(caller, &code).await {
                Ok(views) => households.push(views),
                // A household the caller may not read (a locality's outside its unit) is left out.
                Err(DomainError::PermissionDenied(_) | DomainError::OutOfScope { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(households)
    }
}

fn not_on_register(code: &impl std::fmt::Display) -> String {
    format!("household {code} is not on the register")
}

/// A household outside a locality's unit reads as one that does not exist.
fn outside_scope(caller: &Caller, code: &str) -> DomainError {
    DomainError::OutOfScope {
        shown: not_on_register(&code),
        reason: format!(
            "household {code} lies outside unit {}, the scope of member {}",
            caller.member.unit.as_ref().map(|u| u.as_str()).unwrap_or("-"),
            caller.member.code
        ),
    }
}

/// A locality reads only households whose commune lies in its unit.
fn check_scope(caller: &Caller, view: &HouseholdView, units: &UnitTable) -> Result<(), DomainError> {
    match (&caller.member.role, &caller.member.unit) {
        (Role::Locality, Some(scope)) if !units.within_on(&view.data.commune_code, scope, view.located_on) => {
            Err(outside_scope(caller, &view.code))
        }
        (Role::Locality, None) => {
            Err(DomainError::PermissionDenied("a locality member without a unit reads nothing".into()))
        }
        _ => Ok(()),
    }
}

/// A stored state, with its commune placed as it was on `on` (the version's start when `None`).
pub(crate) fn view(row: HouseholdVersion, units: &UnitTable, on: Option<Date>) -> Result<HouseholdView, DomainError> {
    let corrupt = |e: String| DomainError::Internal(format!("household {}: {e}", row.household_code).into());
    let data = HouseholdData::from_stored(&row.data).map_err(corrupt)?;
    let removal = match &row.removal_reason {
        Some(r) => Some((RemovalReason::parse(r).map_err(corrupt)?, row.removal_note.clone().unwrap_or_default())),
        None => None,
    };
    let located_on = on.unwrap_or(row.valid_from);
    let (province, district) = units.province_and_district_on(&row.commune_code, located_on);
    Ok(HouseholdView {
        located_on,
        commune_name: units
            .on(&row.commune_code, located_on)
            .or_else(|| units.get(&row.commune_code))
            .map(|u| u.name.clone())
            .unwrap_or_default(),
        district_code: district.map(|u| u.code.as_str().to_owned()),
        province_code: province.map(|u| u.code.as_str().to_owned()),
        code: row.household_code,
        valid_from: row.valid_from,
        valid_to: row.valid_to,
        removal,
        data,
        batch_id: row.batch_id,
        recorded_at: row.recorded_at,
    })
}

fn problems_to_error(problems: &[ApplyProblem], effective: Date) -> DomainError {
    if let Some(ApplyProblem::SnapshotBeforeRecorded { household_code, valid_from }) = problems.first() {
        return DomainError::FailedPrecondition(format!(
            "the register holds states dated after this snapshot's effective date {effective} \
             (household {household_code} from {valid_from}); a snapshot must be the newest list"
        ));
    }
    let violations: Vec<FieldViolation> = problems
        .iter()
        .take(MAX_REPORTED)
        .map(|p| match p {
            ApplyProblem::CitizenElsewhere { idx, household_code, member, citizen_id, other_household } => {
                FieldViolation::new(
                    format!("records[{idx}] ({household_code}).upsert.members[{member}].citizen_id"),
                    format!(
                        "{citizen_id} is a member of household {other_household}, which is on the list; \
                         a person belongs to one household at a time (move them out of {other_household} first)"
                    ),
                )
            }
            ApplyProblem::NotOnList { idx, household_code } => FieldViolation::new(
                format!("records[{idx}] ({household_code}).removal"),
                format!("household {household_code} is not on the list on that date"),
            ),
            ApplyProblem::SnapshotBeforeRecorded { household_code, valid_from } => FieldViolation::new(
                "header.effective_date",
                format!("household {household_code} has a state from {valid_from}, after this snapshot"),
            ),
        })
        .collect();
    DomainError::InvalidBatch { violations, total: problems.len() }
}

/// The checks that span a batch: repeated household codes and citizen IDs, and the count.
struct BatchCheck<'a> {
    cx: CheckContext<'a>,
    index: usize,
    codes: HashMap<Box<str>, u32>,
    citizens: HashMap<u64, u32>,
    violations: Vec<FieldViolation>,
    problems: usize,
}

impl<'a> BatchCheck<'a> {
    fn new(units: &'a UnitTable, header: &BatchHeader, today: Date) -> Self {
        Self {
            cx: CheckContext { units, today, batch_effective: header.effective, kind: header.kind },
            index: 0,
            codes: HashMap::new(),
            citizens: HashMap::new(),
            violations: Vec::new(),
            problems: 0,
        }
    }

    fn report(&mut self, v: FieldViolation) {
        self.problems += 1;
        if self.violations.len() < MAX_REPORTED {
            self.violations.push(v);
        }
    }

    fn code_at(&self, idx: u32) -> &str {
        self.codes.iter().find(|(_, i)| **i == idx).map_or("?", |(c, _)| c)
    }

    /// Checks one record; returns its staged form while the batch has no problems so far.
    fn record(&mut self, input: &RecordInput) -> Option<StagedRecord> {
        let idx = self.index;
        self.index += 1;
        let record = match check_record(idx, input, &self.cx) {
            Ok(r) => r,
            Err(vs) => {
                vs.into_iter().for_each(|v| self.report(v));
                return None;
            }
        };
        let prefix = format!("records[{idx}] ({})", record.code);
        if let Some(first) = self.codes.get(record.code.as_str()).copied() {
            self.report(FieldViolation::new(
                format!("{prefix}.household_code"),
                format!("{} appears again; it was first at records[{first}]", record.code),
            ));
        } else {
            self.codes.insert(record.code.as_str().into(), idx as u32);
        }
        if let Change::Upsert(data) = &record.change {
            for (m, member) in data.members.iter().enumerate() {
                let key: u64 = member.citizen_id.parse().expect("checked: 12 digits");
                if let Some(other) = self.citizens.get(&key).copied() {
                    let other_code = self.code_at(other).to_owned();
                    self.report(FieldViolation::new(
                        format!("{prefix}.upsert.members[{m}].citizen_id"),
                        format!(
                            "{} is also a member of records[{other}] ({other_code}); a person belongs to one household",
                            member.citizen_id
                        ),
                    ));
                } else {
                    self.citizens.insert(key, idx as u32);
                }
            }
        }
        (self.problems == 0).then(|| staged(idx, record))
    }

    fn finish(self) -> Result<(), DomainError> {
        if self.index == 0 && self.cx.kind == BatchKind::Snapshot {
            return Err(DomainError::invalid(
                "records",
                "a snapshot without households would take every household off the list",
            ));
        }
        if self.problems == 0 {
            return Ok(());
        }
        Err(DomainError::InvalidBatch { violations: self.violations, total: self.problems })
    }
}

/// The staged (stored) form of a checked record: what the register writes for it.
pub fn staged(idx: usize, record: super::household::HouseholdRecord) -> StagedRecord {
    let mut staged = StagedRecord {
        idx: idx as i64,
        household_code: record.code.as_str().to_owned(),
        effective: record.effective,
        removal_reason: None,
        removal_note: None,
        data: None,
        content_hash: None,
        commune_code: None,
        certificate_number: None,
        member_ids: None,
        category: None,
        wants_device: false,
    };
    match record.change {
        Change::Upsert(data) => {
            let (json, hash) = data.stored_form();
            staged.category = Some(data.category);
            staged.wants_device = data.flags.wants_device;
            staged.commune_code = Some(data.commune_code.clone());
            staged.certificate_number = data.certificate.as_ref().map(|c| c.number.clone());
            let ids: Vec<&str> = data.members.iter().map(|m| m.citizen_id.as_str()).collect();
            staged.member_ids = Some(ids.join(" "));
            staged.data = Some(json);
            staged.content_hash = Some(hash);
        }
        Change::Remove { reason, note } => {
            staged.removal_reason = Some(reason.as_str().to_owned());
            staged.removal_note = Some(note);
        }
    }
    staged
}

/// SHA-256 over a batch's content as sent: the header and every record, field by field,
/// length-prefixed, so that chunking does not matter and different content never collides.
struct BatchDigest(ring::digest::Context);

impl BatchDigest {
    fn new(h: &BatchHeader) -> Self {
        let mut d = Self(ring::digest::Context::new(&ring::digest::SHA256));
        d.field(b"telesub-batch-v1");
        d.field(h.kind.as_str().as_bytes());
        d.field(h.review_period.as_str().as_bytes());
        d.field(h.effective.to_string().as_bytes());
        d.field(h.note.as_bytes());
        d
    }

    fn field(&mut self, bytes: &[u8]) {
        self.0.update(&(bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
    }

    fn record(&mut self, r: &RecordInput) {
        self.field(b"record");
        self.field(r.household_code.as_bytes());
        self.field(r.effective_date.as_bytes());
        if let Some(d) = &r.upsert {
            self.field(b"upsert");
            self.field(d.category.map_or("", |c| c.as_str()).as_bytes());
            self.field(d.head_name.as_bytes());
            self.field(d.commune_code.as_bytes());
            self.field(d.address.as_bytes());
            if let Some(c) = &d.certificate {
                self.field(b"certificate");
                self.field(c.number.as_bytes());
                self.field(c.issued_on.as_bytes());
                self.field(c.issuing_unit.as_bytes());
            }
            let f = d.flags;
            self.field(&[
                u8::from(f.earlier_programme_device),
                u8::from(f.wants_device),
                u8::from(f.meritorious_service_family),
                u8::from(f.social_policy_family),
            ]);
            for m in &d.members {
                self.field(b"member");
                self.field(m.citizen_id.as_bytes());
                self.field(m.full_name.as_bytes());
                self.field(m.relationship.map_or("", |r| r.as_str()).as_bytes());
                self.field(&m.birth_year.to_be_bytes());
            }
        }
        if let Some(removal) = &r.removal {
            self.field(b"removal");
            self.field(removal.reason.map_or("", |r| r.as_str()).as_bytes());
            self.field(removal.note.as_bytes());
        }
    }

    fn finish(&self) -> String {
        crate::hex(self.0.clone().finish().as_ref())
    }
}
