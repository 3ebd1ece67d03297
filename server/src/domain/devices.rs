//! Device allocation: the Ministry's decision, the proposed list of recipient households,
//! amendments, the People's Committee's approval, hand-overs, and the published list.
//!
//! The list follows the policy's device rules in force on the date it is drawn from:
//!
//! 1. Only households on the register that day, of a device category (poor, near-poor), that
//!    want a device, never got one from the earlier programme, hold no place on another
//!    allocation's list and never received a device or the cash from this programme.
//! 2. Each household counts against the unit of the decision's split it lives in (its commune
//!    on that date, or the commune's district); a decision without a split is one pool.
//! 3. Within a unit, households are ordered by priority group (meritorious-service families,
//!    social-policy families, poor, near-poor: the first group a household matches), then
//!    nominated households first, then by a lottery number: the SHA-256 of the decision number,
//!    a line feed and the household code (read as a big-endian number), then by code. The
//!    lottery is reproducible by anyone with the list and the decision number, and does not
//!    favour any village by its codes.
//! 4. The unit's smartphones go to the first households in that order, its tablets to the
//!    next; the rest get no place. Ranks number the whole list, unit by unit (units in code
//!    order).
//!
//! The list's digest is the SHA-256 of one line per place in rank order:
//! `rank TAB household TAB unit TAB device LF`.

use super::context::ServiceContext;
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use serde::{Deserialize, Serialize};
use time::Date;

use super::clock::Clock;
use super::{
    DomainError, Violations,
    eligibility::mask_name,
    household::{Category, HouseholdCode, HouseholdFlags, format_date, free_text, name_enum, parse_date, person_name},
    member::{Caller, Role, UnitCode},
    paging::{Page, paging},
    policy::{DeviceRules, PolicyRegistry},
    unit_registry::UnitRegistry,
    units::{UnitLevel, UnitTable},
};
use crate::domain::ports::{
    AllocationStore, PlaceStore, PortError, RegisterStore,
    devices::{
        self as dev, AllocationDecision, Amend, AmendNote, Amendment, CommitteeDecision, Handover, HandoverOutcome,
        ListPlace, NewAllocation, ProposalMeta, RecipientFilter, RecipientView, UnitProgress,
    },
};

name_enum! {
    /// Where an allocation's list is: the decision recorded, a list proposed, submitted to the
    /// committee, returned by it, approved.
    AllocationStatus {
        Recorded = "RECORDED",
        Proposed = "PROPOSED",
        Submitted = "SUBMITTED",
        Returned = "RETURNED",
        Approved = "APPROVED",
    }
}

/// The most household codes one nomination call takes.
pub const MAX_NOMINATIONS: usize = 10_000;
/// The most devices one decision gives (of each type).
const MAX_DEVICES: i64 = 10_000_000;
/// The most VND a cash alternative may be.
const MAX_CASH: i64 = 10_000_000;

name_enum! {
    /// A device the programme hands out.
    DeviceType {
        Tablet = "TABLET",
        Smartphone = "SMARTPHONE",
    }
}

impl DeviceType {
    /// The Vietnamese name, for published lists.
    pub fn label(self) -> &'static str {
        match self {
            DeviceType::Tablet => "Máy tính bảng",
            DeviceType::Smartphone => "Điện thoại thông minh",
        }
    }
}

/// A unit's share of a decision; `unit` empty for the whole province.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub unit: String,
    pub tablets: i64,
    pub smartphones: i64,
}

impl Quota {
    fn places(&self, device: DeviceType) -> i64 {
        match device {
            DeviceType::Tablet => self.tablets,
            DeviceType::Smartphone => self.smartphones,
        }
    }
}

/// A decision as it arrives.
#[derive(Debug, Clone, Default)]
pub struct DecisionInput {
    pub decision_number: String,
    pub decision_date: String,
    pub tablets: i64,
    pub smartphones: i64,
    pub quotas: Vec<Quota>,
    pub cash_amount: i64,
    pub note: String,
}

/// An allocation as callers see it.
#[derive(Debug, Clone)]
pub struct Allocation {
    pub row: AllocationDecision,
    pub quotas: Vec<Quota>,
    /// GetAllocation only.
    pub progress: Vec<UnitProgress>,
    pub amendments: Vec<Amendment>,
}

/// What an amendment does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmendAction {
    Add,
    Remove,
}

/// A hand-over as it arrives.
#[derive(Debug, Clone, Default)]
pub struct HandoverInput {
    pub decision_number: String,
    pub household_code: String,
    pub handed_over_on: String,
    pub received_by: String,
    pub kind: Option<HandoverKind>,
}

#[derive(Debug, Clone)]
pub enum HandoverKind {
    Device { device_type: Option<DeviceType>, serial_number: String, imei: String },
    Cash { amount: i64, phone_bought_on: String, receipt_reference: String },
}

/// Whether `imei` is 15 digits whose last is the Luhn check digit of the first 14.
pub fn check_imei(imei: &str) -> Result<(), String> {
    if imei.len() != 15 || !imei.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{imei:?} is not an IMEI: it must be 15 digits"));
    }
    let digits: Vec<u32> = imei.bytes().map(|b| u32::from(b - b'0')).collect();
    let expected = luhn_digit(&digits[..14]);
    if digits[14] != expected {
        return Err(format!("{imei:?} fails the Luhn check: its last digit would be {expected}"));
    }
    Ok(())
}

/// The Luhn check digit of `digits`.
pub fn luhn_digit(digits: &[u32]) -> u32 {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    (10 - sum % 10) % 10
}

/// A decision number: 1 to 60 characters, letters, digits and `/ - . _` (e.g. `1234/QĐ-BTTTT`).
fn decision_number(s: &str) -> Result<String, String> {
    let s = free_text(s, 60)?;
    if s.is_empty() {
        return Err("a decision number is required".to_owned());
    }
    if let Some(c) = s.chars().find(|c| !(c.is_alphanumeric() || matches!(c, '/' | '-' | '.' | '_' | ' '))) {
        return Err(format!("{s:?} contains {c:?}; a decision number has letters, digits, '/', '-', '.' and '_'"));
    }
    Ok(s)
}

fn required_text(s: &str, max: usize, what: &str) -> Result<String, String> {
    let t = free_text(s, max)?;
    if t.is_empty() { Err(format!("{what} is required")) } else { Ok(t) }
}

/// The digest of a list: see the module documentation.
pub fn list_digest<'a>(places: impl IntoIterator<Item = &'a ListPlace>) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in places {
        ctx.update(format!("{}\t{}\t{}\t{}\n", p.rank, p.household_code, p.unit_code, p.device_type).as_bytes());
    }
    crate::hex(ctx.finish().as_ref())
}

/// The lottery number of a household in a decision: see the module documentation.
fn lottery(decision_number: &str, household_code: &str) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(decision_number.as_bytes());
    ctx.update(b"\n");
    ctx.update(household_code.as_bytes());
    ctx.finish().as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// The facts of a stored household state the device rules use.
#[derive(Debug, Deserialize)]
struct DeviceFacts {
    category: Category,
    head_name: String,
    #[serde(default)]
    flags: HouseholdFlags,
}

/// A household that qualifies, with its place in the order.
struct Candidate {
    unit: usize,
    group: usize,
    nominated: bool,
    lottery: [u8; 32],
    code: String,
    commune: String,
    category: Category,
    head_name_masked: String,
}

#[derive(Debug, Clone)]
pub struct DeviceService {
    allocation_store: Arc<dyn AllocationStore>,
    place_store: Arc<dyn PlaceStore>,
    register_store: Arc<dyn RegisterStore>,
    units: Arc<UnitRegistry>,
    policy: Arc<PolicyRegistry>,
    clock: Clock,
}

impl DeviceService {
    pub fn new(context: &ServiceContext) -> Self {
        Self {
            allocation_store: context.store.clone(),
            place_store: context.store.clone(),
            register_store: context.store.clone(),
            units: context.units.clone(),
            policy: context.policy.clone(),
            clock: context.clock.clone(),
        }
    }

    async fn rules_on(&self, date: Date) -> Result<(i64, DeviceRules), DomainError> {
        let table = self.policy.table().await?;
        let version = table.in_force(date).ok_or_else(|| {
            DomainError::FailedPrecondition(format!("no policy version is in force on {}", format_date(date)))
        })?;
        Ok((version.version, version.rules.devices.clone()))
    }

    pub async fn unit_table(&self) -> Result<Arc<UnitTable>, DomainError> {
        Ok(self.units.table().await?)
    }

    /// The priority groups of the rules an allocation's list was drawn up by.
    pub async fn priority_of(&self, number: &str) -> Result<Vec<super::policy::DevicePriority>, DomainError> {
        let row = self.find(number).await?;
        let table = self.policy.table().await?;
        let version = match row.policy_version {
            Some(n) => table.iter().find(|v| v.version == n),
            None => table.in_force(row.decision_date),
        };
        Ok(version.map(|v| v.rules.devices.priority.clone()).unwrap_or_default())
    }

    /// The allocation a decision number names.
    async fn find(&self, number: &str) -> Result<AllocationDecision, DomainError> {
        let number = decision_number(number).map_err(|e| DomainError::invalid("decision_number", e))?;
        self.allocation_store
            .allocation(&number)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("no allocation decision {number} is recorded")))
    }

    fn allocation(row: AllocationDecision) -> Result<Allocation, DomainError> {
        let quotas = serde_json::from_str(&row.quotas)
            .map_err(|e| PortError::Corrupt(format!("quotas of allocation {}: {e}", row.decision_number)))?;
        Ok(Allocation { row, quotas, progress: Vec::new(), amendments: Vec::new() })
    }

    /// Records the Ministry's decision. Recording the same decision again returns it.
    pub async fn record(&self, caller: &Caller, input: &DecisionInput) -> Result<Allocation, DomainError> {
        let units = self.units.table().await?;
        let first_day = self.policy.table().await?.first_day();
        let mut v = Violations::new();
        let number = v.check("decision_number", decision_number(&input.decision_number));
        let date = v.check("decision_date", parse_date(input.decision_date.trim()));
        if let Some(d) = date {
            if d > self.clock.today() {
                v.add("decision_date", format!("{} is in the future", format_date(d)));
            }
            if let Some(first) = first_day
                && d < first
            {
                v.add(
                    "decision_date",
                    format!("{} is before the programme's rules (from {})", format_date(d), format_date(first)),
                );
            }
        }
        for (field, n) in [("tablets", input.tablets), ("smartphones", input.smartphones)] {
            if !(0..=MAX_DEVICES).contains(&n) {
                v.add(field, format!("{n} is not a number of devices: use 0 to {MAX_DEVICES}"));
            }
        }
        if input.tablets <= 0 && input.smartphones <= 0 {
            v.add("tablets", "an allocation gives at least one device: tablets and smartphones are both zero");
        }
        let note = v.check("note", free_text(&input.note, 500));
        let quotas = match date {
            Some(date) => check_quotas(&mut v, input, &units, date),
            None => Vec::new(),
        };
        if input.cash_amount != 0 && !(1..=MAX_CASH).contains(&input.cash_amount) {
            v.add(
                "cash_alternative_amount",
                format!("{} VND is not an amount: use 1 to {MAX_CASH}", input.cash_amount),
            );
        }
        v.finish()?;
        let (number, date) = (number.expect("checked"), date.expect("checked"));
        let cash =
            if input.cash_amount == 0 { self.rules_on(date).await?.1.cash_alternative } else { input.cash_amount };
        let quotas_json = serde_json::to_string(&quotas).expect("quotas serialise");
        let new = NewAllocation {
            decision_number: &number,
            decision_date: date,
            tablets: input.tablets,
            smartphones: input.smartphones,
            quotas: &quotas_json,
            cash_amount: cash,
            note: note.as_deref().unwrap_or_default(),
            recorded_by: caller.member.code.as_str(),
            recorded_at: self.clock.now(),
        };
        match self.allocation_store.insert_allocation(&new).await {
            Ok(_) => {}
            Err(PortError::AlreadyExists) => {
                let row = self.find(&number).await?;
                let same = row.decision_date == date
                    && row.tablets == new.tablets
                    && row.smartphones == new.smartphones
                    && row.quotas == quotas_json
                    && row.cash_amount == cash
                    && row.note == new.note;
                if !same {
                    return Err(DomainError::AlreadyExists(format!(
                        "allocation decision {number} is already recorded, with other figures"
                    )));
                }
            }
            Err(e) => return Err(e.into()),
        }
        Self::allocation(self.find(&number).await?)
    }

    pub async fn nominate(
        &self,
        caller: &Caller,
        number: &str,
        codes: &[String],
        reason: &str,
    ) -> Result<(u64, u64), DomainError> {
        let mut v = Violations::new();
        let reason = v.check("reason", required_text(reason, 500, "a reason"));
        if codes.is_empty() {
            v.add("household_codes", "name at least one household");
        }
        if codes.len() > MAX_NOMINATIONS {
            v.add("household_codes", format!("{} households; at most {MAX_NOMINATIONS} per call", codes.len()));
        }
        let mut unique = Vec::new();
        let mut seen = HashSet::new();
        for (i, c) in codes.iter().enumerate() {
            if let Some(code) = v.check(&format!("household_codes[{i}]"), HouseholdCode::parse(c.trim()))
                && seen.insert(code.as_str().to_owned())
            {
                unique.push(code.as_str().to_owned());
            }
        }
        v.finish()?;
        let row = self.find(number).await?;
        if row.status == AllocationStatus::Approved {
            return Err(approved(&row.decision_number));
        }
        let known =
            self.register_store.states_matching(super::eligibility::QueryKind::HouseholdCode, &unique, false).await?;
        let known: HashSet<&str> = known.iter().map(|s| s.household_code.as_str()).collect();
        let mut v = Violations::new();
        for (i, c) in codes.iter().enumerate() {
            if !known.contains(c.trim()) {
                v.add(format!("household_codes[{i}]"), format!("{:?} is not a household on the register", c.trim()));
            }
        }
        v.finish()?;
        let added = self
            .allocation_store
            .nominate_households(
                row.id,
                &unique,
                caller.member.code.as_str(),
                &reason.expect("checked"),
                self.clock.now(),
            )
            .await
            .map_err(|e| match e {
                PortError::Conflict(_) => approved(&row.decision_number),
                other => other.into(),
            })?;
        Ok((added, unique.len() as u64 - added))
    }

    /// Draws up the list; see the module documentation for the rules.
    pub async fn propose(&self, number: &str, as_of: &str) -> Result<Allocation, DomainError> {
        let as_of = match as_of.trim() {
            "" => self.clock.today(),
            s => {
                let d = parse_date(s).map_err(|e| DomainError::invalid("as_of", e))?;
                if d > self.clock.today() {
                    return Err(DomainError::invalid("as_of", format!("{} is in the future", format_date(d))));
                }
                if let Some(first) = self.policy.table().await?.first_day()
                    && d < first
                {
                    return Err(DomainError::invalid(
                        "as_of",
                        format!("{} is before the programme's rules (from {})", format_date(d), format_date(first)),
                    ));
                }
                d
            }
        };
        let row = self.find(number).await?;
        if !matches!(row.status, AllocationStatus::Recorded | AllocationStatus::Proposed | AllocationStatus::Returned) {
            return Err(DomainError::FailedPrecondition(format!(
                "the list of decision {} is {}: it can no longer be proposed again",
                row.decision_number, row.status
            )));
        }
        let allocation = Self::allocation(row)?;
        let (version, rules) = self.rules_on(as_of).await?;
        let units = self.units.table().await?;
        let (candidates, nominations) = tokio::try_join!(
            self.allocation_store.device_candidates(allocation.row.id, as_of),
            self.allocation_store.nominations(allocation.row.id)
        )?;
        let number = allocation.row.decision_number.clone();
        let quotas = allocation.quotas.clone();
        // Deciding and ordering a few hundred thousand households is CPU work.
        let places = tokio::task::spawn_blocking(move || {
            select(&number, &quotas, &rules, &units, as_of, candidates, &nominations.into_iter().collect())
        })
        .await
        .map_err(|e| DomainError::Internal(Box::new(e)))??;
        let (eligible, places) = places;
        let meta = ProposalMeta {
            as_of,
            policy_version: version,
            proposed_at: self.clock.now(),
            eligible,
            digest: list_digest(&places),
        };
        match self.allocation_store.save_proposal(allocation.row.id, &meta, &places).await {
            Ok(()) => {}
            Err(PortError::Conflict(crate::domain::ports::Conflict::PlaceTaken)) => {
                return Err(DomainError::FailedPrecondition(
                    "a household of the list was put on another allocation's list meanwhile: propose again".into(),
                ));
            }
            Err(PortError::Conflict(_)) => {
                return Err(DomainError::FailedPrecondition(format!(
                    "the list of decision {} was submitted meanwhile",
                    allocation.row.decision_number
                )));
            }
            Err(e) => return Err(e.into()),
        }
        Self::allocation(self.find(&allocation.row.decision_number).await?)
    }

    pub async fn amend(
        &self,
        caller: &Caller,
        number: &str,
        action: Option<AmendAction>,
        household: &str,
        device: Option<DeviceType>,
        reason: &str,
    ) -> Result<Allocation, DomainError> {
        let mut v = Violations::new();
        let reason = v.check("reason", required_text(reason, 500, "a reason"));
        let code = v.check("household_code", HouseholdCode::parse(household.trim()));
        match action {
            None => v.add("action", "choose ADD or REMOVE"),
            Some(AmendAction::Add) if device.is_none() => v.add("device_type", "choose TABLET or SMARTPHONE"),
            _ => {}
        }
        v.finish()?;
        let (code, reason) = (code.expect("checked"), reason.expect("checked"));
        let row = self.find(number).await?;
        if !matches!(row.status, AllocationStatus::Proposed | AllocationStatus::Returned) {
            return Err(DomainError::FailedPrecondition(format!(
                "the list of decision {} is {}: only a proposed or returned list can be amended",
                row.decision_number, row.status
            )));
        }
        let allocation = Self::allocation(row)?;
        let note = AmendNote { reason: &reason, by: caller.member.code.as_str(), at: self.clock.now() };
        let amend = match (action, device) {
            (Some(AmendAction::Remove), _) => Amend::Remove { household_code: code.as_str() },
            (_, Some(device)) => {
                let (place, quota) = self.place_for(&allocation, &code, device).await?;
                Amend::Add { place, quota }
            }
            _ => unreachable!("checked above"),
        };
        let number = &allocation.row.decision_number;
        match self.allocation_store.amend_proposal(allocation.row.id, &amend, &note).await {
            Ok(_) => {}
            Err(PortError::NotFound) => {
                return Err(DomainError::NotFound(format!("household {code} is not on the list of decision {number}")));
            }
            Err(PortError::AlreadyExists) => {
                let on = self.place_store.place_of(code.as_str()).await?.unwrap_or_default();
                return Err(DomainError::AlreadyExists(format!(
                    "household {code} already holds a place on the list of decision {on}: one device per household"
                )));
            }
            Err(PortError::Conflict(crate::domain::ports::Conflict::QuotaFull)) => {
                let Amend::Add { place, quota } = &amend else { unreachable!("only additions fill a unit") };
                return Err(DomainError::FailedPrecondition(format!(
                    "all {quota} {} places of {} are taken: remove a household first",
                    place.device_type.to_lowercase(),
                    if place.unit_code.is_empty() { "the province" } else { &place.unit_code }
                )));
            }
            Err(PortError::Conflict(_)) => {
                return Err(DomainError::FailedPrecondition(format!(
                    "the list of decision {number} was submitted meanwhile: only a proposed or returned list can be amended"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        Self::allocation(self.find(number).await?)
    }

    /// The place a household added by hand would hold, and its unit's quota of the device;
    /// refuses households the rules exclude.
    async fn place_for(
        &self,
        allocation: &Allocation,
        code: &HouseholdCode,
        device: DeviceType,
    ) -> Result<(ListPlace, i64), DomainError> {
        let as_of = allocation.row.proposal_as_of.unwrap_or_else(|| self.clock.today());
        let (_, rules) = self.rules_on(as_of).await?;
        let units = self.units.table().await?;
        let refused = |why: String| Err(DomainError::FailedPrecondition(format!("household {code} {why}")));
        if let Some(on) = self.place_store.place_of(code.as_str()).await? {
            return Err(DomainError::AlreadyExists(format!(
                "household {code} already holds a place on the list of decision {on}: one device per household"
            )));
        }
        if let Some(h) = self.place_store.handover_of(code.as_str()).await? {
            return refused(format!(
                "already received {} on {}: one device per household",
                if h.kind == "CASH" { "the cash alternative" } else { "a device" },
                format_date(h.handed_over_on)
            ));
        }
        let Some(state) = self.register_store.household_on(code.as_str(), as_of).await? else {
            return Err(DomainError::NotFound(format!(
                "household {code} is not on the register on {}",
                format_date(as_of)
            )));
        };
        if state.removal_reason.is_some() {
            return refused(format!("left the list before {}", format_date(as_of)));
        }
        let facts: DeviceFacts =
            serde_json::from_str(&state.data).map_err(|e| PortError::Corrupt(format!("household {code}: {e}")))?;
        if !rules.categories.contains(&facts.category) {
            return refused(format!("is {}: devices go to {}", facts.category, names(&rules.categories)));
        }
        if facts.flags.earlier_programme_device {
            return refused("received a device from the earlier programme".to_owned());
        }
        if !facts.flags.wants_device {
            return refused("has not asked for a device (the labour department's record says so)".to_owned());
        }
        let Some((unit, quota)) = allocation
            .quotas
            .iter()
            .find(|q| q.unit.is_empty() || units.within_on(&state.commune_code, &unit_code(&q.unit), as_of))
            .map(|q| (q.unit.clone(), q.places(device)))
        else {
            return refused(format!("lives in {}, outside the units of the decision's split", state.commune_code));
        };
        let nominated =
            self.allocation_store.nominations(allocation.row.id).await?.binary_search(&code.to_string()).is_ok();
        let group = rules.group(facts.category, &facts.flags).unwrap_or(rules.priority.len());
        let (_, district) = units.province_and_district_on(&state.commune_code, as_of);
        Ok((
            ListPlace {
                household_code: code.to_string(),
                rank: 0,
                unit_code: unit,
                commune_code: state.commune_code.clone(),
                district_code: district.map(|d| d.code.to_string()),
                category: facts.category.as_str().to_owned(),
                priority_group: group as i64,
                nominated,
                device_type: device.as_str().to_owned(),
                head_name_masked: mask_name(&facts.head_name),
                added: true,
            },
            quota,
        ))
    }

    /// Every place of a list, in rank order.
    pub async fn all_places(&self, id: i64, filter: &RecipientFilter) -> Result<Vec<RecipientView>, DomainError> {
        const CHUNK: u32 = 20_000;
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = self.place_store.allocation_recipients(id, filter, after, CHUNK).await?;
            let done = page.len() < CHUNK as usize;
            after = page.last().map_or(after, |r| r.place.rank);
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }

    pub async fn submit(&self, caller: &Caller, number: &str) -> Result<Allocation, DomainError> {
        let row = self.find(number).await?;
        if !matches!(row.status, AllocationStatus::Proposed | AllocationStatus::Returned) {
            return Err(DomainError::FailedPrecondition(format!(
                "the list of decision {} is {}: only a proposed or returned list can be submitted",
                row.decision_number, row.status
            )));
        }
        let places = self.all_places(row.id, &RecipientFilter::default()).await?;
        if places.is_empty() {
            return Err(DomainError::FailedPrecondition(format!(
                "the list of decision {} is empty: nothing to submit",
                row.decision_number
            )));
        }
        let digest = list_digest(places.iter().map(|p| &p.place));
        match self
            .allocation_store
            .submit_allocation(row.id, row.revision, &digest, caller.member.code.as_str(), self.clock.now())
            .await
        {
            Ok(()) => {}
            Err(PortError::Conflict(_)) => {
                return Err(DomainError::FailedPrecondition(format!(
                    "the list of decision {} changed while it was being submitted: submit again",
                    row.decision_number
                )));
            }
            Err(e) => return Err(e.into()),
        }
        Self::allocation(self.find(number).await?)
    }

    /// The committee approves (`Some((approval number, its date))`, the date empty for today)
    /// or returns the submitted list.
    pub async fn decide(
        &self,
        caller: &Caller,
        number: &str,
        approval_number: Option<(&str, &str)>,
        note: &str,
        expected_digest: &str,
    ) -> Result<Allocation, DomainError> {
        let mut v = Violations::new();
        let approval = approval_number.and_then(|(n, _)| v.check("approval_number", decision_number(n)));
        let approved_on = match approval_number.map(|(_, on)| on.trim()) {
            None => None,
            Some("") => Some(self.clock.today()),
            Some(on) => v.check("approved_on", parse_date(on)),
        };
        if let Some(on) = approved_on
            && on > self.clock.today()
        {
            v.add("approved_on", format!("{} is in the future", format_date(on)));
        }
        let note = match approval_number {
            Some(_) => v.check("note", free_text(note, 500)),
            None => v.check("note", required_text(note, 500, "a note saying what to change")),
        };
        let digest = expected_digest.trim().to_ascii_lowercase();
        if !digest.is_empty() && (digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit())) {
            v.add("list_digest", "is not a SHA-256 digest (64 hexadecimal digits)");
        }
        v.finish()?;
        let row = self.find(number).await?;
        if let Some(on) = approved_on
            && on < row.decision_date
        {
            return Err(DomainError::invalid(
                "approved_on",
                format!(
                    "{} is before the allocation decision {} of {}",
                    format_date(on),
                    row.decision_number,
                    format_date(row.decision_date)
                ),
            ));
        }
        let decision = CommitteeDecision {
            approve: approval.is_some(),
            approval_number: approval.as_deref(),
            by: caller.member.code.as_str(),
            by_person: caller.person.as_deref(),
            at: self.clock.now(),
            approved_on: approved_on.filter(|_| approval.is_some()),
            note: note.as_deref().unwrap_or_default(),
            expected_digest: (!digest.is_empty()).then_some(digest.as_str()),
        };
        match self.allocation_store.decide_allocation(row.id, &decision).await {
            Ok(()) => {}
            Err(PortError::Conflict(crate::domain::ports::Conflict::OtherDigest)) => {
                return Err(DomainError::FailedPrecondition(format!(
                    "the submitted list of decision {} is not the list with digest {digest}",
                    row.decision_number
                )));
            }
            Err(PortError::Conflict(_)) => {
                let now = self.find(number).await?;
                return Err(DomainError::FailedPrecondition(format!(
                    "the list of decision {} is {}, not submitted: only a submitted list can be {}",
                    row.decision_number,
                    now.status,
                    if decision.approve { "approved" } else { "returned" }
                )));
            }
            Err(e) => return Err(e.into()),
        }
        Self::allocation(self.find(number).await?)
    }

    pub async fn handover(
        &self,
        caller: &Caller,
        request_id: &str,
        input: &HandoverInput,
    ) -> Result<(AllocationDecision, Handover), DomainError> {
        let mut v = Violations::new();
        let code = v.check("household_code", HouseholdCode::parse(input.household_code.trim()));
        let on = v.check("handed_over_on", parse_date(input.handed_over_on.trim()));
        if let Some(d) = on
            && d > self.clock.today()
        {
            v.add("handed_over_on", format!("{} is in the future", format_date(d)));
        }
        let received_by = v.check("received_by", person_name(&input.received_by));
        if input.kind.is_none() {
            v.add("kind", "say what was handed over: a device or the cash alternative");
        }
        v.finish()?;
        let (code, on, received_by) = (code.expect("checked"), on.expect("checked"), received_by.expect("checked"));
        let row = self.find(&input.decision_number).await?;
        let number = row.decision_number.clone();
        if row.status != AllocationStatus::Approved {
            return Err(DomainError::FailedPrecondition(format!(
                "the list of decision {number} is {}: hand-overs are recorded against an approved list",
                row.status
            )));
        }
        let Some(place) = self.place_store.place(row.id, code.as_str()).await? else {
            return Err(DomainError::FailedPrecondition(format!(
                "household {code} is not on the approved list of decision {number}"
            )));
        };
        if caller.member.role == Role::Locality {
            let units = self.units.table().await?;
            let inside = caller.member.unit.as_ref().is_some_and(|u| {
                units.within_on(&place.place.commune_code, u, on)
                    || units.within_on(&place.place.commune_code, u, self.clock.today())
            });
            if !inside {
                return Err(DomainError::PermissionDenied(format!(
                    "household {code} lives in commune {}, outside {}'s unit",
                    place.place.commune_code, caller.member.code
                )));
            }
        }
        let (_, rules) = self.rules_on(on).await?;
        let mut v = Violations::new();
        if let Some(approved) = row.approved_on
            && on < approved
        {
            v.add(
                "handed_over_on",
                format!("{} is before the list was approved on {}", format_date(on), format_date(approved)),
            );
        }
        let place_device = DeviceType::parse(&place.place.device_type).map_err(PortError::Corrupt)?;
        let mut handover = Handover {
            household_code: code.to_string(),
            allocation_id: row.id,
            kind: String::new(),
            device_type: None,
            serial_number: None,
            imei: None,
            cash_amount: None,
            phone_bought_on: None,
            receipt_reference: None,
            handed_over_on: on,
            received_by,
            recorded_by: caller.member.code.to_string(),
            recorded_by_person: caller.person.clone(),
            recorded_at: self.clock.now(),
            request_id: request_id.to_owned(),
        };
        match input.kind.as_ref().expect("checked") {
            HandoverKind::Device { device_type, serial_number, imei } => {
                handover.kind = "DEVICE".into();
                match device_type {
                    None => v.add("device.device_type", "choose TABLET or SMARTPHONE"),
                    Some(d) if *d != place_device => v.add(
                        "device.device_type",
                        format!("household {code}'s place is for a {place_device}, not a {d}"),
                    ),
                    Some(_) => {}
                }
                let imei = imei.trim();
                if !imei.is_empty() {
                    v.check("device.imei", check_imei(imei));
                    handover.imei = Some(imei.to_owned());
                } else if place_device == DeviceType::Smartphone {
                    v.add("device.imei", "a smartphone's IMEI is required");
                }
                let serial = serial_number.trim();
                if !serial.is_empty() {
                    if serial.len() > 40
                        || !serial.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'.'))
                    {
                        v.add(
                            "device.serial_number",
                            format!("{serial:?} is not a serial number: use 1 to 40 letters, digits, '-', '/', '.'"),
                        );
                    }
                    handover.serial_number = Some(serial.to_owned());
                } else if imei.is_empty() && place_device != DeviceType::Smartphone {
                    v.add("device.serial_number", "a device without IMEI needs its serial number");
                }
                handover.device_type = Some(place_device.as_str().to_owned());
            }
            HandoverKind::Cash { amount, phone_bought_on, receipt_reference } => {
                handover.kind = "CASH".into();
                if *amount != row.cash_amount {
                    v.add(
                        "cash.amount",
                        format!("{amount} VND is not decision {number}'s cash alternative of {} VND", row.cash_amount),
                    );
                }
                handover.cash_amount = Some(*amount);
                if let Some(bought) = v.check("cash.phone_bought_on", parse_date(phone_bought_on.trim())) {
                    if bought < rules.own_phone_from() {
                        v.add(
                            "cash.phone_bought_on",
                            format!(
                                "{}: only a phone bought from {} counts",
                                format_date(bought),
                                rules.own_phone_bought_from
                            ),
                        );
                    }
                    if bought > on {
                        v.add("cash.phone_bought_on", format!("{} is after the payment", format_date(bought)));
                    }
                    handover.phone_bought_on = Some(bought);
                }
                handover.receipt_reference =
                    v.check("cash.receipt_reference", required_text(receipt_reference, 60, "the voucher's number"));
            }
        }
        v.finish()?;
        match self.place_store.record_handover(&handover).await? {
            HandoverOutcome::Recorded => Ok((row, handover)),
            HandoverOutcome::AlreadyHandedOver(earlier) => {
                let same = |a: &Handover, b: &Handover| {
                    (&a.kind, &a.device_type, &a.serial_number, &a.imei, a.cash_amount, a.phone_bought_on)
                        == (&b.kind, &b.device_type, &b.serial_number, &b.imei, b.cash_amount, b.phone_bought_on)
                        && (&a.receipt_reference, a.handed_over_on, &a.received_by, a.allocation_id)
                            == (&b.receipt_reference, b.handed_over_on, &b.received_by, b.allocation_id)
                };
                if same(&earlier, &handover) {
                    return Ok((row, *earlier)); // the same hand-over recorded again
                }
                Err(DomainError::AlreadyExists(format!(
                    "household {code} already received {} on {}: one device per household over the programme",
                    match earlier.imei.as_deref() {
                        _ if earlier.kind == "CASH" => "the cash alternative".to_owned(),
                        Some(imei) => format!("a device (IMEI {imei})"),
                        None => format!("a device (serial {})", earlier.serial_number.clone().unwrap_or_default()),
                    },
                    format_date(earlier.handed_over_on)
                )))
            }
            HandoverOutcome::ImeiUsed { household_code } => Err(DomainError::AlreadyExists(format!(
                "IMEI {} was recorded for household {household_code}'s device",
                handover.imei.unwrap_or_default()
            ))),
            HandoverOutcome::SerialUsed { household_code } => Err(DomainError::AlreadyExists(format!(
                "serial number {} was recorded for household {household_code}'s {place_device}: a device is \
                 handed over once",
                handover.serial_number.unwrap_or_default()
            ))),
            HandoverOutcome::NotOnList => Err(DomainError::FailedPrecondition(format!(
                "household {code} is not on the approved list of decision {number}"
            ))),
            HandoverOutcome::NotApproved => {
                Err(DomainError::FailedPrecondition(format!("the list of decision {number} is not approved")))
            }
        }
    }

    /// An allocation with its progress per unit and its amendments.
    pub async fn get(&self, number: &str) -> Result<Allocation, DomainError> {
        let row = self.find(number).await?;
        let mut allocation = Self::allocation(row)?;
        let (progress, amendments) = tokio::try_join!(
            self.place_store.allocation_progress(allocation.row.id),
            self.place_store.allocation_amendments(allocation.row.id)
        )?;
        allocation.progress = progress;
        allocation.amendments = amendments;
        Ok(allocation)
    }

    pub async fn list(&self, page_size: u32, token: &str) -> Result<Page<Allocation>, DomainError> {
        let mut v = Violations::new();
        let (limit, from) = paging(&mut v, page_size, token, 'a');
        v.finish()?;
        let rows = self.allocation_store.list_allocations(from.unwrap_or(i64::MAX), limit + 1).await?;
        Page::cut(rows, limit, |r| format!("a{}", r.id)).try_map(Self::allocation)
    }

    /// Places of a list in rank order; a locality sees its own unit's.
    pub async fn recipients(
        &self,
        caller: &Caller,
        number: &str,
        unit: &str,
        handed_over: Option<bool>,
        page_size: u32,
        token: &str,
    ) -> Result<Page<RecipientView>, DomainError> {
        let mut v = Violations::new();
        let (limit, from) = paging(&mut v, page_size, token, 'r');
        let unit = match unit.trim() {
            "" => None,
            u => v.check("unit_code", UnitCode::parse(u)),
        };
        v.finish()?;
        let unit = self.scope(caller, unit).await?;
        let row = self.find(number).await?;
        let filter = RecipientFilter { unit_code: unit.map(|u| u.to_string()), handed_over };
        let rows = self.place_store.allocation_recipients(row.id, &filter, from.unwrap_or(0), limit + 1).await?;
        Ok(Page::cut(rows, limit, |r| format!("r{}", r.place.rank)))
    }

    /// The unit a caller reads: a locality its own (or a unit within it), others any.
    async fn scope(&self, caller: &Caller, asked: Option<UnitCode>) -> Result<Option<UnitCode>, DomainError> {
        if caller.member.role != Role::Locality {
            return Ok(asked);
        }
        let Some(own) = caller.member.unit.clone() else {
            return Err(DomainError::PermissionDenied(format!("{} has no unit to read", caller.member.code)));
        };
        match asked {
            None => Ok(Some(own)),
            Some(u) if self.units.table().await?.within_on(u.as_str(), &own, self.clock.today()) => Ok(Some(u)),
            Some(u) => Err(DomainError::PermissionDenied(format!(
                "{} reads only its own unit {own}, not {u}",
                caller.member.code
            ))),
        }
    }

    /// An approved list's places, for publication: of one commune, or all.
    pub async fn published(
        &self,
        number: &str,
        commune: Option<&str>,
    ) -> Result<(Allocation, Vec<RecipientView>, Arc<UnitTable>), DomainError> {
        let units = self.units.table().await?;
        let commune = match commune.map(str::trim).filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => {
                let code = UnitCode::parse(c).map_err(|e| DomainError::invalid("commune_code", e))?;
                if !units.versions(c).iter().any(|u| u.level == UnitLevel::Commune) {
                    return Err(DomainError::invalid(
                        "commune_code",
                        format!("{c} is not a commune in the unit table"),
                    ));
                }
                Some(code)
            }
        };
        let row = self.find(number).await?;
        if row.status != AllocationStatus::Approved {
            return Err(DomainError::FailedPrecondition(format!(
                "the list of decision {} is {}: only an approved list is published",
                row.decision_number, row.status
            )));
        }
        let filter = RecipientFilter { unit_code: commune.as_ref().map(|c| c.to_string()), handed_over: None };
        let mut places = self.all_places(row.id, &filter).await?;
        if let Some(c) = &commune {
            places.retain(|p| p.place.commune_code == c.as_str());
        }
        places.sort_by(|a, b| (&a.place.commune_code, a.place.rank).cmp(&(&b.place.commune_code, b.place.rank)));
        Ok((Self::allocation(row)?, places, units))
    }
}

/// Nominations sent once the list is approved no longer change it.
fn approved(decision_number: &str) -> DomainError {
    DomainError::FailedPrecondition(format!(
        "the list of decision {decision_number} is approved: nominations no longer change it"
    ))
}

fn names(categories: &[Category]) -> String {
    categories.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
}

/// A stored quota unit as a code (checked when the decision was recorded).
fn unit_code(s: &str) -> UnitCode {
    UnitCode::parse(s).unwrap_or_else(|_| UnitCode::parse("00").expect("two digits"))
}

/// Checks a decision's split: units that exist on the decision's date, districts or
/// communes, none within another, each with a device, adding up to the totals. Returns the
/// split to store (one province-wide entry when none is given).
fn check_quotas(v: &mut Violations, input: &DecisionInput, units: &UnitTable, date: Date) -> Vec<Quota> {
    if input.quotas.is_empty() {
        return vec![Quota { unit: String::new(), tablets: input.tablets, smartphones: input.smartphones }];
    }
    let mut out = Vec::new();
    let mut codes: Vec<(usize, UnitCode)> = Vec::new();
    for (i, q) in input.quotas.iter().enumerate() {
        let at = format!("unit_quotas[{i}]");
        if q.tablets < 0 || q.smartphones < 0 {
            v.add(
                at.clone(),
                format!("{} tablets and {} smartphones: a quota is not negative", q.tablets, q.smartphones),
            );
        } else if q.tablets + q.smartphones == 0 {
            v.add(at.clone(), "a unit of the split gets at least one device; leave out units that get none");
        }
        let Some(code) = v.check(&format!("{at}.unit_code"), UnitCode::parse(q.unit.trim())) else { continue };
        match units.on(code.as_str(), date) {
            None => v.add(format!("{at}.unit_code"), format!("{code} is not a unit on {}", format_date(date))),
            Some(u) if u.level == UnitLevel::Province => {
                v.add(format!("{at}.unit_code"), format!("{code} is a province: split by district or commune"))
            }
            Some(_) => {
                for (j, other) in &codes {
                    if units.within_on(code.as_str(), other, date) || units.within_on(other.as_str(), &code, date) {
                        v.add(
                            format!("{at}.unit_code"),
                            format!("{code} overlaps unit_quotas[{j}] ({other}): each household counts in one unit"),
                        );
                    }
                }
                codes.push((i, code.clone()));
            }
        }
        out.push(Quota { unit: code.to_string(), tablets: q.tablets, smartphones: q.smartphones });
    }
    let (t, s) = input.quotas.iter().fold((0, 0), |(t, s), q| (t + q.tablets, s + q.smartphones));
    if t != input.tablets || s != input.smartphones {
        v.add(
            "unit_quotas",
            format!(
                "the split gives {t} tablets and {s} smartphones; the decision gives {} and {}",
                input.tablets, input.smartphones
            ),
        );
    }
    out.sort_by(|a, b| a.unit.cmp(&b.unit));
    out
}

/// Decides, orders and cuts: returns how many households qualified (inside the split) and
/// the places, ranked.
fn select(
    number: &str,
    quotas: &[Quota],
    rules: &DeviceRules,
    units: &UnitTable,
    as_of: Date,
    candidates: Vec<dev::CandidateState>,
    nominated: &HashSet<String>,
) -> Result<(i64, Vec<ListPlace>), DomainError> {
    let quota_units: Vec<Option<UnitCode>> =
        quotas.iter().map(|q| (!q.unit.is_empty()).then(|| unit_code(&q.unit))).collect();
    // Communes repeat: find each one's unit once.
    let mut unit_of: HashMap<String, Option<usize>> = HashMap::new();
    let mut district_of: HashMap<String, Option<String>> = HashMap::new();
    let mut chosen = Vec::new();
    for c in candidates {
        let facts: DeviceFacts = serde_json::from_str(&c.data)
            .map_err(|e| PortError::Corrupt(format!("household {}: {e}", c.household_code)))?;
        let Some(group) = rules.group(facts.category, &facts.flags) else { continue };
        let unit = *unit_of.entry(c.commune_code.clone()).or_insert_with(|| {
            quota_units.iter().position(|q| match q {
                None => true,
                Some(q) => units.within_on(&c.commune_code, q, as_of),
            })
        });
        let Some(unit) = unit else { continue };
        district_of
            .entry(c.commune_code.clone())
            .or_insert_with(|| units.province_and_district_on(&c.commune_code, as_of).1.map(|d| d.code.to_string()));
        chosen.push(Candidate {
            unit,
            group,
            nominated: nominated.contains(&c.household_code),
            lottery: lottery(number, &c.household_code),
            code: c.household_code,
            commune: c.commune_code,
            category: facts.category,
            head_name_masked: mask_name(&facts.head_name),
        });
    }
    let eligible = chosen.len() as i64;
    chosen.sort_unstable_by(|a, b| {
        (a.unit, a.group, !a.nominated, a.lottery, &a.code).cmp(&(b.unit, b.group, !b.nominated, b.lottery, &b.code))
    });
    let mut places = Vec::new();
    let mut taken = vec![0_i64; quotas.len()];
    for c in chosen {
        let q = &quotas[c.unit];
        let n = taken[c.unit];
        let device = if n < q.smartphones {
            DeviceType::Smartphone
        } else if n < q.smartphones + q.tablets {
            DeviceType::Tablet
        } else {
            continue;
        };
        taken[c.unit] += 1;
        places.push(ListPlace {
            household_code: c.code,
            rank: places.len() as i64 + 1,
            unit_code: q.unit.clone(),
            district_code: district_of.get(&c.commune).cloned().flatten(),
            commune_code: c.commune,
            category: c.category.as_str().to_owned(),
            priority_group: c.group as i64,
            nominated: c.nominated,
            device_type: device.as_str().to_owned(),
            head_name_masked: c.head_name_masked,
            added: false,
        });
    }
    Ok((eligible, places))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imei_check_digits() {
        // The example IMEI of the GSMA's documentation, and its neighbours.
        assert!(check_imei("490154203237518").is_ok());
        assert!(check_imei("490154203237517").unwrap_err().contains("Luhn"));
        assert!(check_imei("49015420323751").unwrap_err().contains("15 digits"));
        assert!(check_imei("49015420323751X").is_err());
        assert_eq!(luhn_digit(&[4, 9, 0, 1, 5, 4, 2, 0, 3, 2, 3, 7, 5, 1]), 8);
    }

    #[test]
    fn lottery_is_fixed_by_the_decision_and_household() {
        assert_eq!(lottery("1/QĐ", "HH-1"), lottery("1/QĐ", "HH-1"));
        assert_ne!(lottery("1/QĐ", "HH-1"), lottery("2/QĐ", "HH-1"));
        assert_ne!(lottery("1/QĐ", "HH-1"), lottery("1/QĐ", "HH-2"));
    }

    #[test]
    fn decision_numbers() {
        assert_eq!(decision_number(" 1234/QĐ-BTTTT ").unwrap(), "1234/QĐ-BTTTT");
        assert!(decision_number("").is_err());
        assert!(decision_number("12<script>").is_err());
    }

    #[test]
    fn the_digest_covers_rank_household_unit_and_device() {
        let place = |rank, code: &str, device: &str| ListPlace {
            household_code: code.into(),
            rank,
            unit_code: "660".into(),
            commune_code: "24611".into(),
            district_code: None,
            category: "POOR".into(),
            priority_group: 2,
            nominated: false,
            device_type: device.into(),
            head_name_masked: "Nguyễn V. A.".into(),
            added: false,
        };
        let a = [place(1, "A", "SMARTPHONE"), place(2, "B", "TABLET")];
        let b = [place(1, "A", "SMARTPHONE"), place(2, "B", "SMARTPHONE")];
        assert_ne!(list_digest(&a), list_digest(&b));
        assert_eq!(list_digest(&a), list_digest(&a.clone()));
    }
}
