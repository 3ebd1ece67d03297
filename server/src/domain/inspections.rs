//! Inspections of localities and operators: the inspection with its basis, subjects, team and
//! dates; findings and their follow-up; and samples of the hub's data frozen for the team.
//!
//! A sample is drawn from the households of a commune that were on the list on a date and had
//! an enrolment running that day: they are ordered by the SHA-256 of the sample's seed (16
//! random bytes, in hex), a line feed and the household code, and the first `size` taken. The
//! seed is kept with the sample, so anyone can check the draw.

use super::context::ServiceContext;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::clock::Clock;
use super::{
    DomainError, Violations,
    household::{format_date, free_text, name_enum, parse_date, person_name},
    member::{Caller, OrgCode, Role, UnitCode},
    paging::{Page, paging},
    unit_registry::UnitRegistry,
    units::UnitLevel,
};
use crate::domain::ports::{
    EnrollmentStore, InspectionStore, MemberStore, PortError, RegisterStore,
    enrollments::{Enrollment, EnrollmentFilter},
    inspections::{Finding, FindingChange, FindingUpdate, NewInspection, SampledHousehold, StoredInspection},
    register::HouseholdVersion,
};

/// The most households one sample takes.
pub const MAX_SAMPLE: u32 = 500;

name_enum! {
    /// Why an inspection is made.
    Basis {
        YearlyPlan = "YEARLY_PLAN",
        AuthorityRequest = "AUTHORITY_REQUEST",
    }
}

name_enum! {
    Severity {
        Low = "LOW",
        Medium = "MEDIUM",
        High = "HIGH",
        Critical = "CRITICAL",
    }
}

name_enum! {
    /// An inspection open for findings and samples, or closed with its conclusion.
    InspectionStatus {
        Open = "OPEN",
        Closed = "CLOSED",
    }
}

name_enum! {
    FindingStatus {
        Open = "OPEN",
        InProgress = "IN_PROGRESS",
        Resolved = "RESOLVED",
    }
}

impl FindingStatus {
    /// Whether a finding may move from `self` to `to`: forward only.
    pub fn may_become(self, to: FindingStatus) -> bool {
        matches!(
            (self, to),
            (FindingStatus::Open, FindingStatus::InProgress)
                | (FindingStatus::Open, FindingStatus::Resolved)
                | (FindingStatus::InProgress, FindingStatus::Resolved)
        )
    }
}

/// A member of an inspection team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamMember {
    pub organisation: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role: String,
}

/// An inspection as it arrives.
#[derive(Debug, Clone, Default)]
pub struct InspectionInput {
    pub title: String,
    pub basis: Option<Basis>,
    pub requested_by: String,
    pub subject_units: Vec<String>,
    pub subject_operators: Vec<String>,
    pub team: Vec<TeamMember>,
    pub starts_on: String,
    pub ends_on: String,
    pub note: String,
}

/// A finding as it arrives.
#[derive(Debug, Clone, Default)]
pub struct FindingInput {
    pub severity: Option<Severity>,
    pub subject: String,
    pub description: String,
    pub evidence_reference: String,
    pub required_action: String,
    pub due_on: String,
}

/// An inspection as callers see it.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub row: StoredInspection,
    pub subject_units: Vec<String>,
    pub subject_operators: Vec<String>,
    pub team: Vec<TeamMember>,
    /// GetInspection only.
    pub findings: Vec<(Finding, Vec<FindingUpdate>)>,
    pub samples: Vec<SampledHousehold>,
}

/// One state of a sampled household, as the register held it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrozenVersion {
    pub valid_from: String,
    pub valid_to: Option<String>,
    pub removal_reason: Option<String>,
    pub removal_note: Option<String>,
    /// The household's data in its stored form.
    pub data: String,
    pub commune_code: String,
    pub batch_id: String,
    pub recorded_at: i64,
}

/// One enrolment of a sampled household.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrozenEnrollment {
    pub id: i64,
    pub operator: String,
    pub subscriber_citizen_id: String,
    pub phone_number: String,
    pub service: String,
    pub start_date: String,
    pub end_date: Option<String>,
    pub end_reason: Option<String>,
    pub end_note: Option<String>,
    pub decision_id: String,
    pub transfer_reference: Option<String>,
    pub recorded_at: i64,
    pub ended_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrozenHousehold {
    pub household_code: String,
    pub versions: Vec<FrozenVersion>,
    pub enrollments: Vec<FrozenEnrollment>,
}

fn nanos(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

fn from_nanos(n: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl From<HouseholdVersion> for FrozenVersion {
    fn from(v: HouseholdVersion) -> Self {
        Self {
            valid_from: format_date(v.valid_from),
            valid_to: v.valid_to.map(format_date),
            removal_reason: v.removal_reason,
            removal_note: v.removal_note,
            data: v.data,
            commune_code: v.commune_code,
            batch_id: v.batch_id,
            recorded_at: nanos(v.recorded_at),
        }
    }
}

impl FrozenVersion {
    /// Back to the register's row form, for the views the transport knows.
    pub fn to_row(&self, household_code: &str) -> Result<HouseholdVersion, String> {
        Ok(HouseholdVersion {
            id: 0,
            household_code: household_code.to_owned(),
            valid_from: parse_date(&self.valid_from)?,
            valid_to: self.valid_to.as_deref().map(parse_date).transpose()?,
            removal_reason: self.removal_reason.clone(),
            removal_note: self.removal_note.clone(),
            data: self.data.clone(),
            content_hash: String::new(),
            commune_code: self.commune_code.clone(),
            certificate_number: None,
            batch_id: self.batch_id.clone(),
            recorded_at: from_nanos(self.recorded_at),
        })
    }
}

impl From<Enrollment> for FrozenEnrollment {
    fn from(e: Enrollment) -> Self {
        Self {
            id: e.id,
            operator: e.operator,
            subscriber_citizen_id: e.subscriber_citizen_id,
            phone_number: e.phone_number,
            service: e.service,
            start_date: format_date(e.start_date),
            end_date: e.end_date.map(format_date),
            end_reason: e.end_reason,
            end_note: e.end_note,
            decision_id: e.decision_id,
            transfer_reference: e.transfer_reference,
            recorded_at: nanos(e.recorded_at),
            ended_at: e.ended_at.map(nanos),
        }
    }
}

impl FrozenEnrollment {
    pub fn to_row(&self, household_code: &str) -> Result<Enrollment, String> {
        Ok(Enrollment {
            id: self.id,
            operator: self.operator.clone(),
            household_code: household_code.to_owned(),
            subscriber_citizen_id: self.subscriber_citizen_id.clone(),
            phone_number: self.phone_number.clone(),
            service: self.service.clone(),
            start_date: parse_date(&self.start_date)?,
            end_date: self.end_date.as_deref().map(parse_date).transpose()?,
            end_reason: self.end_reason.clone(),
            end_note: self.end_note.clone(),
            decision_id: self.decision_id.clone(),
            transfer_reference: self.transfer_reference.clone(),
            recorded_at: from_nanos(self.recorded_at),
            ended_at: self.ended_at.map(from_nanos),
        })
    }
}

/// A sample with its households.
#[derive(Debug, Clone)]
pub struct Sample {
    pub row: SampledHousehold,
    pub households: Vec<FrozenHousehold>,
}

/// The order of the draw: SHA-256 of the seed, a line feed and the household code.
pub fn draw_key(seed: &str, household_code: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(seed.as_bytes());
    ctx.update(b"\n");
    ctx.update(household_code.as_bytes());
    ctx.finish().as_ref().try_into().expect("SHA-256 is 32 bytes")
}

fn required(s: &str, max: usize, what: &str) -> Result<String, String> {
    let t = free_text(s, max)?;
    if t.is_empty() { Err(format!("{what} is required")) } else { Ok(t) }
}

#[derive(Debug, Clone)]
pub struct InspectionService {
    enrollment_store: Arc<dyn EnrollmentStore>,
    inspection_store: Arc<dyn InspectionStore>,
    member_store: Arc<dyn MemberStore>,
    register_store: Arc<dyn RegisterStore>,
    units: Arc<UnitRegistry>,
    clock: Clock,
}

impl InspectionService {
    pub fn new(context: &ServiceContext) -> Self {
        Self {
            enrollment_store: context.store.clone(),
            inspection_store: context.store.clone(),
            member_store: context.store.clone(),
            register_store: context.store.clone(),
            units: context.units.clone(),
            clock: context.clock.clone(),
        }
    }

    fn inspection(row: StoredInspection) -> Result<Inspection, DomainError> {
        let corrupt = |e: serde_json::Error| PortError::Corrupt(format!("inspection {}: {e}", row.id));
        Ok(Inspection {
            subject_units: serde_json::from_str(&row.subject_units).map_err(corrupt)?,
            subject_operators: serde_json::from_str(&row.subject_operators).map_err(corrupt)?,
            team: serde_json::from_str(&row.team).map_err(corrupt)?,
            row,
            findings: Vec::new(),
            samples: Vec::new(),
        })
    }

    async fn find(&self, id: i64) -> Result<Inspection, DomainError> {
        let row = self.inspection_store.inspection(id).await?.ok_or_else(|| DomainError::NotFound(not_recorded(id)))?;
        Self::inspection(row)
    }

    /// Whether a caller may read an inspection: a locality only one with its unit, or a unit
    /// within it, among the subjects.
    async fn may_read(&self, caller: &Caller, inspection: &Inspection) -> Result<bool, DomainError> {
        if caller.member.role != Role::Locality {
            return Ok(true);
        }
        let Some(own) = &caller.member.unit else { return Ok(false) };
        let units = self.units.table().await?;
        // Its unit among the subjects, a unit within it (a commune of its district), or the
        // unit it lies in (its district).
        Ok(inspection.subject_units.iter().any(|u| {
            units.within_on(u, own, self.clock.today())
                || UnitCode::parse(u).is_ok_and(|u| units.within_on(own.as_str(), &u, self.clock.today()))
        }))
    }

    pub async fn create(&self, caller: &Caller, input: &InspectionInput) -> Result<Inspection, DomainError> {
        let units = self.units.table().await?;
        let mut v = Violations::new();
        let title = v.check("title", required(&input.title, 200, "a title"));
        match input.basis {
            None => v.add("basis", "choose YEARLY_PLAN or AUTHORITY_REQUEST"),
            Some(Basis::AuthorityRequest) if input.requested_by.trim().is_empty() => {
                v.add("requested_by", "name the authority and its document")
            }
            _ => {}
        }
        let requested_by = v.check("requested_by", free_text(&input.requested_by, 300));
        let starts = v.check("starts_on", parse_date(input.starts_on.trim()));
        let ends = v.check("ends_on", parse_date(input.ends_on.trim()));
        if let (Some(s), Some(e)) = (starts, ends)
            && e < s
        {
            v.add("ends_on", format!("{} is before the start, {}", format_date(e), format_date(s)));
        }
        if input.subject_units.is_empty() && input.subject_operators.is_empty() {
            v.add("subject_units", "an inspection has at least one subject: a unit or an operator");
        }
        let mut subject_units = Vec::new();
        for (i, u) in input.subject_units.iter().enumerate() {
            let field = format!("subject_units[{i}]");
            let Some(code) = v.check(&field, UnitCode::parse(u.trim())) else { continue };
            if !units.versions(code.as_str()).iter().any(|x| x.level != UnitLevel::Province) {
                v.add(field, format!("{code} is not a district or commune in the unit table"));
            } else if subject_units.contains(&code.to_string()) {
                v.add(field, format!("{code} is listed twice"));
            } else {
                subject_units.push(code.to_string());
            }
        }
        let mut subject_operators = Vec::new();
        for (i, o) in input.subject_operators.iter().enumerate() {
            let field = format!("subject_operators[{i}]");
            let Some(code) = v.check(&field, OrgCode::parse(o.trim())) else { continue };
            match self.member_store.get_member(&code).await? {
                Some(m) if m.role == Role::Operator => {
                    if subject_operators.contains(&code.to_string()) {
                        v.add(field, format!("{code} is listed twice"));
                    } else {
                        subject_operators.push(code.to_string());
                    }
                }
                Some(_) => v.add(field, format!("{code} is not an operator")),
                None => v.add(field, format!("{code} is not a member")),
            }
        }
        if input.team.is_empty() {
            v.add("team", "name the team's members");
        }
        let mut team = Vec::new();
        for (i, m) in input.team.iter().enumerate() {
            let org = v.check(&format!("team[{i}].organisation"), OrgCode::parse(m.organisation.trim()));
            if let Some(org) = &org
                && self.member_store.get_member(org).await?.is_none()
            {
                v.add(format!("team[{i}].organisation"), format!("{org} is not a member"));
            }
            let name = v.check(&format!("team[{i}].name"), person_name(&m.name));
            let role = v.check(&format!("team[{i}].role"), free_text(&m.role, 100));
            if let (Some(org), Some(name), Some(role)) = (org, name, role) {
                team.push(TeamMember { organisation: org.to_string(), name, role });
            }
        }
        let note = v.check("note", free_text(&input.note, 1000));
        v.finish()?;
        let units_json = serde_json::to_string(&subject_units).expect("codes serialise");
        let operators_json = serde_json::to_string(&subject_operators).expect("codes serialise");
        let team_json = serde_json::to_string(&team).expect("a team serialises");
        let id = self
            .inspection_store
            .insert_inspection(&NewInspection {
                title: &title.expect("checked"),
                basis: input.basis.expect("checked").as_str(),
                requested_by: &requested_by.unwrap_or_default(),
                subject_units: &units_json,
                subject_operators: &operators_json,
                team: &team_json,
                starts_on: starts.expect("checked"),
                ends_on: ends.expect("checked"),
                note: &note.unwrap_or_default(),
                created_by: caller.member.code.as_str(),
                created_at: self.clock.now(),
            })
            .await?;
        self.find(id).await
    }

    pub async fn record_finding(
        &self,
        caller: &Caller,
        id: i64,
        input: &FindingInput,
    ) -> Result<(Finding, Vec<FindingUpdate>), DomainError> {
        let inspection = self.find(id).await?;
        let mut v = Violations::new();
        if input.severity.is_none() {
            v.add("severity", "choose LOW, MEDIUM, HIGH or CRITICAL");
        }
        let subject = input.subject.trim();
        if !inspection.subject_units.iter().chain(&inspection.subject_operators).any(|s| s == subject) {
            let all: Vec<&str> =
                inspection.subject_units.iter().chain(&inspection.subject_operators).map(String::as_str).collect();
            v.add("subject", format!("{subject:?} is not a subject of inspection {id} ({})", all.join(", ")));
        }
        let description = v.check("description", required(&input.description, 2000, "a description"));
        let evidence = v.check("evidence_reference", free_text(&input.evidence_reference, 300));
        let action = v.check("required_action", required(&input.required_action, 1000, "the action required"));
        let due = v.check("due_on", parse_date(input.due_on.trim()));
        v.finish()?;
        if inspection.row.status == InspectionStatus::Closed {
            return Err(closed(id));
        }
        let row = Finding {
            inspection_id: id,
            number: 0,
            severity: input.severity.expect("checked"),
            subject: subject.to_owned(),
            description: description.expect("checked"),
            evidence_reference: evidence.unwrap_or_default(),
            required_action: action.expect("checked"),
            due_on: due.expect("checked"),
            status: FindingStatus::Open,
            recorded_by: caller.member.code.to_string(),
            recorded_at: self.clock.now(),
        };
        let number = match self.inspection_store.add_finding(&row).await {
            Ok(n) => n,
            Err(PortError::Conflict(_)) => return Err(closed(id)),
            Err(e) => return Err(e.into()),
        };
        Ok((Finding { number, ..row }, Vec::new()))
    }

    pub async fn update_finding(
        &self,
        caller: &Caller,
        id: i64,
        number: i64,
        to: Option<FindingStatus>,
        note: &str,
    ) -> Result<(Finding, Vec<FindingUpdate>), DomainError> {
        let mut v = Violations::new();
        let note = v.check("note", required(note, 1000, "a note on what was done"));
        let Some(to) = to else {
            v.add("status", "choose IN_PROGRESS or RESOLVED");
            return Err(v.finish().expect_err("a violation was added"));
        };
        v.finish()?;
        self.find(id).await?;
        let (finding, _) = self.finding(id, number).await?;
        let from = finding.status;
        if !from.may_become(to) {
            return Err(DomainError::FailedPrecondition(format!(
                "finding {number} of inspection {id} is {from}: it cannot become {to}"
            )));
        }
        match self
            .inspection_store
            .update_finding(
                id,
                number,
                &FindingChange {
                    from,
                    to,
                    note: &note.expect("checked"),
                    by: caller.member.code.as_str(),
                    at: self.clock.now(),
                },
            )
            .await
        {
            Ok(()) => self.finding(id, number).await,
            Err(PortError::Conflict(_)) => Err(DomainError::FailedPrecondition(format!(
                "finding {number} of inspection {id} changed meanwhile: read it again"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    async fn finding(&self, id: i64, number: i64) -> Result<(Finding, Vec<FindingUpdate>), DomainError> {
        let findings = self.inspection_store.findings(id).await?;
        let finding = findings
            .into_iter()
            .find(|f| f.number == number)
            .ok_or_else(|| DomainError::NotFound(format!("inspection {id} has no finding {number}")))?;
        let updates =
            self.inspection_store.finding_updates(id).await?.into_iter().filter(|u| u.number == number).collect();
        Ok((finding, updates))
    }

    pub async fn close(&self, caller: &Caller, id: i64, conclusion: &str) -> Result<Inspection, DomainError> {
        let conclusion =
            required(conclusion, 4000, "a conclusion").map_err(|e| DomainError::invalid("conclusion", e))?;
        match self
            .inspection_store
            .close_inspection(id, &conclusion, caller.member.code.as_str(), self.clock.now())
            .await
        {
            Ok(()) => self.get(caller, id).await,
            Err(PortError::NotFound) => Err(DomainError::NotFound(format!("no inspection {id} is recorded"))),
            Err(PortError::Conflict(_)) => Err(closed(id)),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn pull_sample(
        &self,
        caller: &Caller,
        id: i64,
        commune: &str,
        size: i32,
        as_of: &str,
    ) -> Result<Sample, DomainError> {
        let units = self.units.table().await?;
        let mut v = Violations::new();
        let commune = v.check("commune_code", UnitCode::parse(commune.trim()));
        if let Some(c) = &commune
            && !units.versions(c.as_str()).iter().any(|u| u.level == UnitLevel::Commune)
        {
            v.add("commune_code", format!("{c} is not a commune in the unit table"));
        }
        if !(1..=MAX_SAMPLE as i32).contains(&size) {
            v.add("size", format!("{size} households: take 1 to {MAX_SAMPLE}"));
        }
        let as_of = match as_of.trim() {
            "" => Some(self.clock.today()),
            s => match v.check("as_of", parse_date(s)) {
                Some(d) if d > self.clock.today() => {
                    v.add("as_of", format!("{} is in the future", format_date(d)));
                    None
                }
                other => other,
            },
        };
        v.finish()?;
        let (commune, as_of) = (commune.expect("checked"), as_of.expect("checked"));
        let inspection = self.find(id).await?;
        let inside = |u: &String| {
            UnitCode::parse(u).is_ok_and(|u| {
                units.within_on(commune.as_str(), &u, as_of)
                    || units.within_on(commune.as_str(), &u, self.clock.today())
            })
        };
        if !inspection.subject_units.iter().any(inside) {
            return Err(DomainError::invalid(
                "commune_code",
                format!("{commune} is not among inspection {id}'s units ({})", inspection.subject_units.join(", ")),
            ));
        }
        if inspection.row.status == InspectionStatus::Closed {
            return Err(closed(id));
        }
        let population = self.inspection_store.sample_population(commune.as_str(), as_of).await?;
        let seed = {
            let mut bytes = [0u8; 16];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
                .map_err(|_| DomainError::Internal("no random bytes for the draw".into()))?;
            crate::hex(&bytes)
        };
        let mut drawn: Vec<(&String, [u8; 32])> = population.iter().map(|c| (c, draw_key(&seed, c))).collect();
        drawn.sort_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
        let mut households = Vec::new();
        for (code, _) in drawn.into_iter().take(size as usize) {
            let versions =
                self.register_store.household_versions(code).await?.into_iter().map(FrozenVersion::from).collect();
            let filter = EnrollmentFilter { operator: None, household_code: Some(code.clone()), active_on: None };
            let enrollments = self
                .enrollment_store
                .list_enrollments(&filter, 0, 1_000)
                .await?
                .into_iter()
                .map(FrozenEnrollment::from)
                .collect();
            households.push(FrozenHousehold { household_code: code.clone(), versions, enrollments });
        }
        let row = SampledHousehold {
            inspection_id: id,
            number: 0,
            commune_code: commune.to_string(),
            as_of,
            size: households.len() as i64,
            population: population.len() as i64,
            seed,
            body: serde_json::to_string(&households).expect("a sample serialises"),
            pulled_by: caller.member.code.to_string(),
            pulled_at: self.clock.now(),
            purged_at: None,
        };
        let number = match self.inspection_store.insert_sample(&row).await {
            Ok(n) => n,
            Err(PortError::Conflict(_)) => return Err(closed(id)),
            Err(e) => return Err(e.into()),
        };
        Ok(Sample { row: SampledHousehold { number, ..row }, households })
    }

    pub async fn sample(&self, caller: &Caller, id: i64, number: i64) -> Result<Sample, DomainError> {
        let inspection = self.find(id).await?;
        if !self.may_read(caller, &inspection).await? {
            return Err(outside(caller, id));
        }
        let row = self
            .inspection_store
            .sample(id, number)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("inspection {id} has no sample {number}")))?;
        let households = serde_json::from_str(&row.body)
            .map_err(|e| PortError::Corrupt(format!("sample {number} of inspection {id}: {e}")))?;
        Ok(Sample { row, households })
    }

    pub async fn get(&self, caller: &Caller, id: i64) -> Result<Inspection, DomainError> {
        let mut inspection = self.find(id).await?;
        if !self.may_read(caller, &inspection).await? {
            return Err(outside(caller, id));
        }
        let (findings, updates, samples) = tokio::try_join!(
            self.inspection_store.findings(id),
            self.inspection_store.finding_updates(id),
            self.inspection_store.samples(id)
        )?;
        inspection.findings = findings
            .into_iter()
            .map(|f| {
                let own = updates.iter().filter(|u| u.number == f.number).cloned().collect();
                (f, own)
            })
            .collect();
        inspection.samples = samples;
        Ok(inspection)
    }

    pub async fn list(
        &self,
        caller: &Caller,
        status: Option<InspectionStatus>,
        page_size: u32,
        token: &str,
    ) -> Result<Page<Inspection>, DomainError> {
        let mut v = Violations::new();
        let (limit, before) = paging(&mut v, page_size, token, 'i');
        v.finish()?;
        let mut items = Vec::new();
        let mut before = before.unwrap_or(i64::MAX);
        // A locality's page skips the inspections it may not read.
        loop {
            let rows = self.inspection_store.list_inspections(status, before, limit + 1).await?;
            let exhausted = rows.len() <= limit as usize;
            for row in rows {
                before = row.id;
                let inspection = Self::inspection(row)?;
                if self.may_read(caller, &inspection).await? {
                    items.push(inspection);
                }
                if items.len() > limit as usize {
                    break;
                }
            }
            if items.len() > limit as usize || exhausted {
                break;
            }
        }
        Ok(Page::cut(items, limit, |i| format!("i{}", i.row.id)))
    }
}

fn closed(id: i64) -> DomainError {
    DomainError::FailedPrecondition(format!("inspection {id} is closed: no finding or sample is added to it"))
}

/// An inspection not about a locality's unit reads as one that does not exist.
fn outside(caller: &Caller, id: i64) -> DomainError {
    DomainError::OutOfScope {
        shown: not_recorded(id),
        reason: format!("inspection {id} is not about {}'s unit", caller.member.code),
    }
}

fn not_recorded(id: i64) -> String {
    format!("no inspection {id} is recorded")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_move_forward_only() {
        use FindingStatus::*;
        assert!(Open.may_become(InProgress) && Open.may_become(Resolved) && InProgress.may_become(Resolved));
        assert!(!Resolved.may_become(Open) && !InProgress.may_become(Open) && !Open.may_become(Open));
    }

    #[test]
    fn the_draw_is_fixed_by_its_seed() {
        assert_eq!(draw_key("ab", "HH-1"), draw_key("ab", "HH-1"));
        assert_ne!(draw_key("ab", "HH-1"), draw_key("ac", "HH-1"));
    }
}
