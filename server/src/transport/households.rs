//! `telesub.v1.HouseholdRegistry` and `telesub.v1.AdministrativeUnits`: convert messages to
//! domain inputs and back; the domain does every check.

use futures_util::StreamExt;
use telesub_proto::v1::{
    self as pb, administrative_units_server::AdministrativeUnits, household_registry_server::HouseholdRegistry,
};
use tonic::{Request, Response, Status, Streaming};

use super::{
    CallContext,
    convert::{page_size_or_invalid, timestamp},
};
use crate::audit::SubjectKind;
use crate::domain::{
    DomainError,
    household::{
        BatchKind, Category, CertificateInput, DataInput, HouseholdData, HouseholdFlags, MemberInput, RecordInput,
        Relationship, RemovalInput, RemovalReason, format_date, parse_date,
    },
    member::UnitCode,
    registry::{FindKey, HeaderInput, HouseholdRegistry as Registry, HouseholdView, Receipt},
    unit_registry::{UnitInput, UnitRegistry},
    units::{AdminUnit, UnitLevel},
};

#[derive(Debug, Clone)]
pub struct HouseholdsApi {
    registry: Registry,
    metrics: Option<crate::metrics::Metrics>,
}

impl HouseholdsApi {
    pub fn new(registry: Registry) -> Self {
        Self { registry, metrics: None }
    }

    /// Counts each batch applied (its time and records) in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

pub(super) fn category(n: i32) -> Option<Category> {
    match pb::Category::try_from(n).ok()? {
        pb::Category::Unspecified => None,
        pb::Category::Poor => Some(Category::Poor),
        pb::Category::NearPoor => Some(Category::NearPoor),
        pb::Category::SocialPolicy => Some(Category::SocialPolicy),
        pb::Category::MeritoriousService => Some(Category::MeritoriousService),
        pb::Category::Other => Some(Category::Other),
    }
}

pub(super) fn category_to_pb(c: Category) -> pb::Category {
    match c {
        Category::Poor => pb::Category::Poor,
        Category::NearPoor => pb::Category::NearPoor,
        Category::SocialPolicy => pb::Category::SocialPolicy,
        Category::MeritoriousService => pb::Category::MeritoriousService,
        Category::Other => pb::Category::Other,
    }
}

fn relationship(n: i32) -> Option<Relationship> {
    Some(match pb::Relationship::try_from(n).ok()? {
        pb::Relationship::Unspecified => return None,
        pb::Relationship::Head => Relationship::Head,
        pb::Relationship::Spouse => Relationship::Spouse,
        pb::Relationship::Child => Relationship::Child,
        pb::Relationship::Parent => Relationship::Parent,
        pb::Relationship::Grandchild => Relationship::Grandchild,
        pb::Relationship::Grandparent => Relationship::Grandparent,
        pb::Relationship::Sibling => Relationship::Sibling,
        pb::Relationship::Other => Relationship::Other,
    })
}

fn relationship_to_pb(r: Relationship) -> pb::Relationship {
    match r {
        Relationship::Head => pb::Relationship::Head,
        Relationship::Spouse => pb::Relationship::Spouse,
        Relationship::Child => pb::Relationship::Child,
        Relationship::Parent => pb::Relationship::Parent,
        Relationship::Grandchild => pb::Relationship::Grandchild,
        Relationship::Grandparent => pb::Relationship::Grandparent,
        Relationship::Sibling => pb::Relationship::Sibling,
        Relationship::Other => pb::Relationship::Other,
    }
}

pub(super) fn removal_reason(n: i32) -> Option<RemovalReason> {
    Some(match pb::RemovalReason::try_from(n).ok()? {
        pb::RemovalReason::Unspecified => return None,
        pb::RemovalReason::OutOfPoverty => RemovalReason::OutOfPoverty,
        pb::RemovalReason::MovedAway => RemovalReason::MovedAway,
        pb::RemovalReason::Deceased => RemovalReason::Deceased,
        pb::RemovalReason::RecordedInError => RemovalReason::RecordedInError,
        pb::RemovalReason::NotInReview => RemovalReason::NotInReview,
    })
}

pub(super) fn removal_reason_to_pb(r: RemovalReason) -> pb::RemovalReason {
    match r {
        RemovalReason::OutOfPoverty => pb::RemovalReason::OutOfPoverty,
        RemovalReason::MovedAway => pb::RemovalReason::MovedAway,
        RemovalReason::Deceased => pb::RemovalReason::Deceased,
        RemovalReason::RecordedInError => pb::RemovalReason::RecordedInError,
        RemovalReason::NotInReview => pb::RemovalReason::NotInReview,
    }
}

fn batch_kind(n: i32) -> Option<BatchKind> {
    match pb::BatchKind::try_from(n).ok()? {
        pb::BatchKind::Unspecified => None,
        pb::BatchKind::Delta => Some(BatchKind::Delta),
        pb::BatchKind::Snapshot => Some(BatchKind::Snapshot),
    }
}

/// A record as the domain checks it. Unknown enum numbers become "missing", which the
/// checks report against the field.
pub fn record_input(r: pb::HouseholdRecord) -> RecordInput {
    use pb::household_record::Change;
    let (upsert, removal) = match r.change {
        Some(Change::Upsert(d)) => (Some(data_input(d)), None),
        Some(Change::Removal(x)) => (None, Some(RemovalInput { reason: removal_reason(x.reason), note: x.note })),
        None => (None, None),
    };
    RecordInput { household_code: r.household_code, effective_date: r.effective_date, upsert, removal }
}

fn data_input(d: pb::HouseholdData) -> DataInput {
    let flags = d.flags.unwrap_or_default();
    DataInput {
        category: category(d.category),
        head_name: d.head_name,
        commune_code: d.commune_code,
        address: d.address,
        certificate: d.certificate.map(|c| CertificateInput {
            number: c.number,
            issued_on: c.issued_on,
            issuing_unit: c.issuing_unit_code,
        }),
        flags: HouseholdFlags {
            earlier_programme_device: flags.earlier_programme_device,
            wants_device: flags.wants_device,
            meritorious_service_family: flags.meritorious_service_family,
            social_policy_family: flags.social_policy_family,
        },
        members: d
            .members
            .into_iter()
            .map(|m| MemberInput {
                citizen_id: m.citizen_id,
                full_name: m.full_name,
                relationship: relationship(m.relationship),
                birth_year: m.birth_year,
            })
            .collect(),
    }
}

fn data_to_pb(d: &HouseholdData) -> pb::HouseholdData {
    pb::HouseholdData {
        category: category_to_pb(d.category).into(),
        head_name: d.head_name.clone(),
        commune_code: d.commune_code.clone(),
        address: d.address.clone(),
        certificate: d.certificate.as_ref().map(|c| pb::Certificate {
            number: c.number.clone(),
            issued_on: c.issued_on.clone(),
            issuing_unit_code: c.issuing_unit.clone(),
        }),
        flags: Some(pb::HouseholdFlags {
            earlier_programme_device: d.flags.earlier_programme_device,
            wants_device: d.flags.wants_device,
            meritorious_service_family: d.flags.meritorious_service_family,
            social_policy_family: d.flags.social_policy_family,
        }),
        members: d
            .members
            .iter()
            .map(|m| pb::HouseholdMember {
                citizen_id: m.citizen_id.clone(),
                full_name: m.full_name.clone(),
                relationship: relationship_to_pb(m.relationship).into(),
                birth_year: m.birth_year,
            })
            .collect(),
    }
}

pub(super) fn version_to_pb(v: &HouseholdView) -> pb::HouseholdVersion {
    pb::HouseholdVersion {
        household_code: v.code.clone(),
        valid_from: format_date(v.valid_from),
        valid_to: v.valid_to.map(format_date).unwrap_or_default(),
        removal_reason: v
            .removal
            .as_ref()
            .map_or(pb::RemovalReason::Unspecified, |(r, _)| removal_reason_to_pb(*r))
            .into(),
        removal_note: v.removal.as_ref().map(|(_, n)| n.clone()).unwrap_or_default(),
        data: Some(data_to_pb(&v.data)),
        district_code: v.district_code.clone().unwrap_or_default(),
        province_code: v.province_code.clone().unwrap_or_default(),
        commune_name: v.commune_name.clone(),
        batch_id: v.batch_id.clone(),
        recorded_at: Some(timestamp(v.recorded_at)),
    }
}

fn receipt_to_pb(r: &Receipt) -> pb::BatchReceipt {
    let b = &r.batch;
    pb::BatchReceipt {
        batch_id: b.batch_id.clone(),
        kind: match BatchKind::parse(&b.kind) {
            Ok(BatchKind::Delta) => pb::BatchKind::Delta,
            Ok(BatchKind::Snapshot) => pb::BatchKind::Snapshot,
            Err(_) => pb::BatchKind::Unspecified,
        }
        .into(),
        review_period: b.review_period.clone(),
        effective_date: format_date(b.effective_date),
        note: b.note.clone(),
        records: b.records,
        added: b.added,
        changed: b.changed,
        removed: b.removed,
        unchanged: b.unchanged,
        content_digest: b.content_digest.clone().unwrap_or_default(),
        pushed_by: b.pushed_by.clone(),
        applied_at: b.applied_at.map(timestamp),
        replayed: r.replayed,
    }
}

pub(super) fn optional_date(field: &str, s: &str) -> Result<Option<time::Date>, DomainError> {
    if s.is_empty() { Ok(None) } else { parse_date(s).map(Some).map_err(|e| DomainError::invalid(field, e)) }
}

#[tonic::async_trait]
impl HouseholdRegistry for HouseholdsApi {
    async fn push_batch(
        &self,
        request: Request<Streaming<pb::PushBatchRequest>>,
    ) -> Result<Response<pb::BatchReceipt>, Status> {
        let ctx = CallContext::of(&request)?;
        let caller = ctx.caller()?.member.code.clone();
        let mut stream = request.into_inner();
        let header = match stream.message().await? {
            Some(pb::PushBatchRequest { item: Some(pb::push_batch_request::Item::Header(h)) }) => h,
            _ => return Err(ctx.fail(DomainError::invalid("header", "the first message of a batch is its header"))),
        };
        let header = self
            .registry
            .check_header(&HeaderInput {
                batch_id: header.batch_id,
                kind: batch_kind(header.kind),
                review_period: header.review_period,
                effective_date: header.effective_date,
                note: header.note,
            })
            .map_err(|e| ctx.fail(e))?;
        let records = stream.map(|message| match message {
            Ok(pb::PushBatchRequest { item: Some(pb::push_batch_request::Item::Records(chunk)) }) => {
                Ok(chunk.records.into_iter().map(record_input).collect())
            }
            Ok(_) => Err(DomainError::invalid("header", "a batch has one header, in its first message")),
            Err(status) => Err(super::status::stream_fault(&status, "the batch")),
        });
        let started = std::time::Instant::now();
        let receipt = self.registry.push(header, &caller, Box::pin(records)).await.map_err(|e| ctx.fail(e))?;
        if let Some(m) = self.metrics.as_ref().filter(|_| !receipt.replayed) {
            m.batch_seconds.observe(started.elapsed().as_secs_f64());
            m.batch_records.observe(receipt.batch.records as f64);
        }
        Ok(Response::new(receipt_to_pb(&receipt)))
    }

    async fn get_batch(&self, request: Request<pb::GetBatchRequest>) -> Result<Response<pb::BatchReceipt>, Status> {
        let ctx = CallContext::of(&request)?;
        let receipt = self.registry.batch(&request.get_ref().batch_id).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(receipt_to_pb(&receipt)))
    }

    async fn list_batches(
        &self,
        request: Request<pb::ListBatchesRequest>,
    ) -> Result<Response<pb::ListBatchesResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let size = page_size_or_invalid(r.page_size).map_err(|e| ctx.fail(e))?;
        let page = self.registry.list_batches(size, &r.page_token).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::ListBatchesResponse {
            batches: page.items.iter().map(receipt_to_pb).collect(),
            next_page_token: page.next.unwrap_or_default(),
        }))
    }

    async fn get_household(
        &self,
        request: Request<pb::GetHouseholdRequest>,
    ) -> Result<Response<pb::HouseholdVersion>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        ctx.looked_up(SubjectKind::HouseholdCode, [r.household_code.as_str()]);
        let as_of = optional_date("as_of", &r.as_of).map_err(|e| ctx.fail(e))?;
        let view = self.registry.household(ctx.caller()?, &r.household_code, as_of).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(version_to_pb(&view)))
    }

    async fn get_household_history(
        &self,
        request: Request<pb::GetHouseholdHistoryRequest>,
    ) -> Result<Response<pb::HouseholdHistory>, Status> {
        let ctx = CallContext::of(&request)?;
        let code = &request.get_ref().household_code;
        ctx.looked_up(SubjectKind::HouseholdCode, [code.as_str()]);
        let views = self.registry.history(ctx.caller()?, code).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::HouseholdHistory {
            household_code: code.clone(),
            versions: views.iter().map(version_to_pb).collect(),
        }))
    }

    async fn find_households(
        &self,
        request: Request<pb::FindHouseholdsRequest>,
    ) -> Result<Response<pb::FindHouseholdsResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let as_of = optional_date("as_of", &r.as_of).map_err(|e| ctx.fail(e))?;
        let key = match &r.key {
            Some(pb::find_households_request::Key::CitizenId(id)) => FindKey::CitizenId(id.clone()),
            Some(pb::find_households_request::Key::CertificateNumber(n)) => FindKey::CertificateNumber(n.clone()),
            None => return Err(ctx.fail(DomainError::invalid("key", "give a citizen_id or a certificate_number"))),
        };
        if let FindKey::CitizenId(id) = &key {
            ctx.looked_up(SubjectKind::CitizenId, [id.as_str()]);
        }
        let views = self.registry.find(ctx.caller()?, key, as_of).await.map_err(|e| ctx.fail(e))?;
        // The households found were looked at too.
        ctx.looked_up(SubjectKind::HouseholdCode, views.iter().map(|v| v.code.as_str()));
        Ok(Response::new(pb::FindHouseholdsResponse { households: views.iter().map(version_to_pb).collect() }))
    }
}

/// `telesub.v1.AdministrativeUnits`.
#[derive(Debug, Clone)]
pub struct UnitsApi {
    units: std::sync::Arc<UnitRegistry>,
}

impl UnitsApi {
    pub fn new(units: std::sync::Arc<UnitRegistry>) -> Self {
        Self { units }
    }
}

/// The level a number names (`None` for none); a number the enum does not have is refused.
fn level(n: i32) -> Result<Option<UnitLevel>, String> {
    match pb::UnitLevel::try_from(n) {
        Ok(pb::UnitLevel::Unspecified) => Ok(None),
        Ok(pb::UnitLevel::Province) => Ok(Some(UnitLevel::Province)),
        Ok(pb::UnitLevel::District) => Ok(Some(UnitLevel::District)),
        Ok(pb::UnitLevel::Commune) => Ok(Some(UnitLevel::Commune)),
        Err(_) => Err(format!("{n} is not a unit level: PROVINCE, DISTRICT or COMMUNE, or none for all")),
    }
}

fn unit_to_pb(u: &AdminUnit) -> pb::AdministrativeUnit {
    pb::AdministrativeUnit {
        code: u.code.as_str().to_owned(),
        level: match u.level {
            UnitLevel::Province => pb::UnitLevel::Province,
            UnitLevel::District => pb::UnitLevel::District,
            UnitLevel::Commune => pb::UnitLevel::Commune,
        }
        .into(),
        name: u.name.clone(),
        parent_code: u.parent.as_ref().map(|p| p.as_str().to_owned()).unwrap_or_default(),
        valid_from: u.valid_from.map(format_date).unwrap_or_default(),
        valid_to: u.valid_to.map(format_date).unwrap_or_default(),
        successor_code: u.successor.as_ref().map(|s| s.as_str().to_owned()).unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl AdministrativeUnits for UnitsApi {
    async fn list_units(
        &self,
        request: Request<pb::ListUnitsRequest>,
    ) -> Result<Response<pb::ListUnitsResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let as_of = optional_date("as_of", &r.as_of).map_err(|e| ctx.fail(e))?;
        let parent = if r.parent_code.is_empty() {
            None
        } else {
            Some(UnitCode::parse(&r.parent_code).map_err(|e| ctx.fail(DomainError::invalid("parent_code", e)))?)
        };
        let level = level(r.level).map_err(|e| ctx.fail(DomainError::invalid("level", e)))?;
        let units = self.units.list(as_of, level, parent.as_ref()).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::ListUnitsResponse { units: units.iter().map(unit_to_pb).collect() }))
    }

    async fn record_units(
        &self,
        request: Request<pb::RecordUnitsRequest>,
    ) -> Result<Response<pb::RecordUnitsResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let inputs: Vec<UnitInput> = request
            .into_inner()
            .units
            .into_iter()
            .map(|u| UnitInput {
                // An unknown number is a level not given: the register names the field and
                // the levels it takes.
                level: level(u.level).ok().flatten(),
                code: u.code,
                name: u.name,
                parent_code: u.parent_code,
                valid_from: u.valid_from,
                valid_to: u.valid_to,
                successor_code: u.successor_code,
            })
            .collect();
        let (added, changed) = self.units.record(&inputs).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::RecordUnitsResponse { added: added as i32, changed: changed as i32 }))
    }
}
