//! `telesub.v1.DeviceAllocation`: convert messages to domain inputs and back; the domain does
//! every check.

use telesub_proto::v1::{self as pb, device_allocation_server::DeviceAllocation};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{
    CallContext,
    convert::{page_size_or_invalid, timestamp},
    eligibility::device_priority_to_pb,
    households::category_to_pb,
};
use crate::audit::SubjectKind;
use crate::{
    domain::ports::devices::{AllocationDecision, Handover, RecipientView},
    domain::{
        DomainError,
        devices::{
            AllocationStatus, AmendAction, DecisionInput, DeviceService, DeviceType, HandoverInput, HandoverKind, Quota,
        },
        household::{Category, format_date},
        policy::DevicePriority,
    },
    export::published,
};

#[derive(Debug, Clone)]
pub struct DevicesApi {
    service: DeviceService,
}

impl DevicesApi {
    pub fn new(service: DeviceService) -> Self {
        Self { service }
    }
}

fn device_from_pb(n: i32) -> Option<DeviceType> {
    match pb::DeviceType::try_from(n).ok()? {
        pb::DeviceType::Tablet => Some(DeviceType::Tablet),
        pb::DeviceType::Smartphone => Some(DeviceType::Smartphone),
        pb::DeviceType::Unspecified => None,
    }
}

fn device_to_pb(stored: Option<&str>) -> i32 {
    match stored.and_then(|s| DeviceType::parse(s).ok()) {
        Some(DeviceType::Tablet) => pb::DeviceType::Tablet.into(),
        Some(DeviceType::Smartphone) => pb::DeviceType::Smartphone.into(),
        None => pb::DeviceType::Unspecified.into(),
    }
}

fn status_to_pb(status: AllocationStatus) -> i32 {
    match status {
        AllocationStatus::Recorded => pb::AllocationStatus::Recorded,
        AllocationStatus::Proposed => pb::AllocationStatus::Proposed,
        AllocationStatus::Submitted => pb::AllocationStatus::Submitted,
        AllocationStatus::Returned => pb::AllocationStatus::Returned,
        AllocationStatus::Approved => pb::AllocationStatus::Approved,
    }
    .into()
}

fn allocation_to_pb(a: &crate::domain::devices::Allocation, unit_name: impl Fn(&str) -> String) -> pb::Allocation {
    let r: &AllocationDecision = &a.row;
    let quota_of = |unit: &str| a.quotas.iter().find(|q| q.unit == unit);
    pb::Allocation {
        decision_number: r.decision_number.clone(),
        decision_date: format_date(r.decision_date),
        tablets: r.tablets,
        smartphones: r.smartphones,
        unit_quotas: a
            .quotas
            .iter()
            .map(|q| pb::UnitQuota {
                unit_code: q.unit.clone(),
                tablets: q.tablets,
                smartphones: q.smartphones,
                unit_name: unit_name(&q.unit),
            })
            .collect(),
        cash_alternative_amount: r.cash_amount,
        note: r.note.clone(),
        status: status_to_pb(r.status),
        revision: r.revision,
        recorded_by: r.recorded_by.clone(),
        recorded_at: Some(timestamp(r.recorded_at)),
        proposal_as_of: r.proposal_as_of.map(format_date).unwrap_or_default(),
        policy_version: r.policy_version.unwrap_or_default(),
        proposed_at: r.proposed_at.map(timestamp),
        eligible_households: r.eligible,
        recipients: r.recipients,
        proposal_digest: r.proposal_digest.clone().unwrap_or_default(),
        list_digest: r.list_digest.clone().unwrap_or_default(),
        submitted_by: r.submitted_by.clone().unwrap_or_default(),
        submitted_at: r.submitted_at.map(timestamp),
        approval_number: r.approval_number.clone().unwrap_or_default(),
        decided_by: r.decided_by.clone().unwrap_or_default(),
        decided_by_person: r.decided_by_person.clone().unwrap_or_default(),
        decided_at: r.decided_at.map(timestamp),
        decision_note: r.decision_note.clone().unwrap_or_default(),
        approved_on: r.approved_on.map(format_date).unwrap_or_default(),
        progress: a
            .progress
            .iter()
            .map(|p| {
                let q = quota_of(&p.unit_code);
                pb::UnitProgress {
                    unit_code: p.unit_code.clone(),
                    unit_name: unit_name(&p.unit_code),
                    tablets_quota: q.map_or(0, |q| q.tablets),
                    smartphones_quota: q.map_or(0, |q| q.smartphones),
                    on_list: p.on_list,
                    devices_handed_over: p.devices,
                    cash_paid: p.cash,
                    not_yet: p.on_list - p.devices - p.cash,
                }
            })
            .collect(),
        amendments: a
            .amendments
            .iter()
            .map(|m| pb::Amendment {
                seq: m.id,
                action: match m.action.as_str() {
                    "ADD" => pb::AmendAction::Add.into(),
                    _ => pb::AmendAction::Remove.into(),
                },
                household_code: m.household_code.clone(),
                device_type: device_to_pb(m.device_type.as_deref()),
                reason: m.reason.clone(),
                amended_by: m.amended_by.clone(),
                amended_at: Some(timestamp(m.amended_at)),
                revision: m.revision,
            })
            .collect(),
    }
}

fn handover_to_pb(decision_number: &str, h: &Handover) -> pb::Handover {
    let kind = if h.kind == "CASH" {
        pb::handover::Kind::Cash(pb::CashPayment {
            amount: h.cash_amount.unwrap_or_default(),
            phone_bought_on: h.phone_bought_on.map(format_date).unwrap_or_default(),
            receipt_reference: h.receipt_reference.clone().unwrap_or_default(),
        })
    } else {
        pb::handover::Kind::Device(pb::DeviceHandover {
            device_type: device_to_pb(h.device_type.as_deref()),
            serial_number: h.serial_number.clone().unwrap_or_default(),
            imei: h.imei.clone().unwrap_or_default(),
        })
    };
    pb::Handover {
        decision_number: decision_number.to_owned(),
        household_code: h.household_code.clone(),
        handed_over_on: format_date(h.handed_over_on),
        received_by: h.received_by.clone(),
        kind: Some(kind),
        recorded_by: h.recorded_by.clone(),
        recorded_by_person: h.recorded_by_person.clone().unwrap_or_default(),
        recorded_at: Some(timestamp(h.recorded_at)),
        replayed: false,
    }
}

fn recipient_to_pb(decision_number: &str, r: &RecipientView, priority: &[DevicePriority]) -> pb::AllocationRecipient {
    let p = &r.place;
    pb::AllocationRecipient {
        rank: p.rank,
        household_code: p.household_code.clone(),
        commune_code: p.commune_code.clone(),
        unit_code: p.unit_code.clone(),
        category: Category::parse(&p.category).map(category_to_pb).unwrap_or_default().into(),
        priority: usize::try_from(p.priority_group)
            .ok()
            .and_then(|g| priority.get(g))
            .map(|g| device_priority_to_pb(*g))
            .unwrap_or_default()
            .into(),
        nominated: p.nominated,
        device_type: device_to_pb(Some(&p.device_type)),
        head_name_masked: p.head_name_masked.clone(),
        added: p.added,
        handover: r.handover.as_ref().map(|h| handover_to_pb(decision_number, h)),
    }
}

#[tonic::async_trait]
impl DeviceAllocation for DevicesApi {
    type PublishedRecipientsStream = ReceiverStream<Result<pb::FileChunk, Status>>;

    async fn record_allocation_decision(
        &self,
        request: Request<pb::RecordAllocationDecisionRequest>,
    ) -> Result<Response<pb::Allocation>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let input = DecisionInput {
            decision_number: r.decision_number,
            decision_date: r.decision_date,
            tablets: r.tablets,
            smartphones: r.smartphones,
            quotas: r
                .unit_quotas
                .into_iter()
                .map(|q| Quota { unit: q.unit_code, tablets: q.tablets, smartphones: q.smartphones })
                .collect(),
            cash_amount: r.cash_alternative_amount,
            note: r.note,
        };
        let a = self.service.record(ctx.caller()?, &input).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(self.to_pb(&a).await))
    }

    async fn nominate_households(
        &self,
        request: Request<pb::NominateHouseholdsRequest>,
    ) -> Result<Response<pb::NominateHouseholdsResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        ctx.looked_up(SubjectKind::HouseholdCode, r.household_codes.iter().map(String::as_str));
        let (nominated, already) = self
            .service
            .nominate(ctx.caller()?, &r.decision_number, &r.household_codes, &r.reason)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::NominateHouseholdsResponse {
            nominated: nominated as i64,
            already_nominated: already as i64,
        }))
    }

    async fn propose_recipients(
        &self,
        request: Request<pb::ProposeRecipientsRequest>,
    ) -> Result<Response<pb::Allocation>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let a = self.service.propose(&r.decision_number, &r.as_of).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(self.to_pb(&a).await))
    }

    async fn amend_proposal(
        &self,
        request: Request<pb::AmendProposalRequest>,
    ) -> Result<Response<pb::Allocation>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let action = match pb::AmendAction::try_from(r.action) {
            Ok(pb::AmendAction::Add) => Some(AmendAction::Add),
            Ok(pb::AmendAction::Remove) => Some(AmendAction::Remove),
            _ => None,
        };
        ctx.looked_up(SubjectKind::HouseholdCode, [r.household_code.as_str()]);
        let a = self
            .service
            .amend(
                ctx.caller()?,
                &r.decision_number,
                action,
                &r.household_code,
                device_from_pb(r.device_type),
                &r.reason,
            )
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(self.to_pb(&a).await))
    }

    async fn submit_for_approval(
        &self,
        request: Request<pb::SubmitForApprovalRequest>,
    ) -> Result<Response<pb::Allocation>, Status> {
        let ctx = CallContext::of(&request)?;
        let a =
            self.service.submit(ctx.caller()?, &request.get_ref().decision_number).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(self.to_pb(&a).await))
    }

    async fn approve(&self, request: Request<pb::ApproveRequest>) -> Result<Response<pb::Allocation>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let a = self
            .service
            .decide(
                ctx.caller()?,
                &r.decision_number,
                Some((&r.approval_number, &r.approved_on)),
                &r.note,
                &r.list_digest,
            )
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(self.to_pb(&a).await))
    }

    async fn return_for_revision(
        &self,
        request: Request<pb::ReturnForRevisionRequest>,
    ) -> Result<Response<pb::Allocation>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let a =
            self.service.decide(ctx.caller()?, &r.decision_number, None, &r.note, "").await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(self.to_pb(&a).await))
    }

    async fn record_handover(
        &self,
        request: Request<pb::RecordHandoverRequest>,
    ) -> Result<Response<pb::Handover>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        ctx.looked_up(SubjectKind::HouseholdCode, [r.household_code.as_str()]);
        let input = HandoverInput {
            decision_number: r.decision_number,
            household_code: r.household_code,
            handed_over_on: r.handed_over_on,
            received_by: r.received_by,
            kind: r.kind.map(|k| match k {
                pb::record_handover_request::Kind::Device(d) => HandoverKind::Device {
                    device_type: device_from_pb(d.device_type),
                    serial_number: d.serial_number,
                    imei: d.imei,
                },
                pb::record_handover_request::Kind::Cash(c) => HandoverKind::Cash {
                    amount: c.amount,
                    phone_bought_on: c.phone_bought_on,
                    receipt_reference: c.receipt_reference,
                },
            }),
        };
        let (row, handover) =
            self.service.handover(ctx.caller()?, &ctx.request_id, &input).await.map_err(|e| ctx.fail(e))?;
        let mut pb = handover_to_pb(&row.decision_number, &handover);
        // The same hand-over again answers with the first record, made by another call.
        pb.replayed = handover.request_id != ctx.request_id;
        Ok(Response::new(pb))
    }

    async fn get_allocation(
        &self,
        request: Request<pb::GetAllocationRequest>,
    ) -> Result<Response<pb::Allocation>, Status> {
        let ctx = CallContext::of(&request)?;
        let a = self.service.get(&request.get_ref().decision_number).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(self.to_pb(&a).await))
    }

    async fn list_allocations(
        &self,
        request: Request<pb::ListAllocationsRequest>,
    ) -> Result<Response<pb::ListAllocationsResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let page = async { self.service.list(page_size_or_invalid(r.page_size)?, &r.page_token).await }
            .await
            .map_err(|e| ctx.fail(e))?;
        let mut allocations = Vec::with_capacity(page.items.len());
        for a in &page.items {
            allocations.push(self.to_pb(a).await);
        }
        Ok(Response::new(pb::ListAllocationsResponse { allocations, next_page_token: page.next.unwrap_or_default() }))
    }

    async fn list_allocation_recipients(
        &self,
        request: Request<pb::ListAllocationRecipientsRequest>,
    ) -> Result<Response<pb::ListAllocationRecipientsResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let page = async {
            let handed_over = match pb::RecipientStatus::try_from(r.status) {
                Ok(pb::RecipientStatus::Unspecified) => None,
                Ok(pb::RecipientStatus::NotYet) => Some(false),
                Ok(pb::RecipientStatus::HandedOver) => Some(true),
                Err(_) => {
                    return Err(DomainError::invalid(
                        "status",
                        format!("{} is not a recipient status: NOT_YET or HANDED_OVER, or none for all", r.status),
                    ));
                }
            };
            self.service
                .recipients(
                    ctx.caller().map_err(|_| DomainError::Internal("no caller".into()))?,
                    &r.decision_number,
                    &r.unit_code,
                    handed_over,
                    page_size_or_invalid(r.page_size)?,
                    &r.page_token,
                )
                .await
        }
        .await
        .map_err(|e| ctx.fail(e))?;
        let priority = self.service.priority_of(&r.decision_number).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::ListAllocationRecipientsResponse {
            recipients: page.items.iter().map(|p| recipient_to_pb(&r.decision_number, p, &priority)).collect(),
            next_page_token: page.next.unwrap_or_default(),
        }))
    }

    async fn published_recipients(
        &self,
        request: Request<pb::PublishedRecipientsRequest>,
    ) -> Result<Response<Self::PublishedRecipientsStream>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let html = match pb::PublishFormat::try_from(r.format) {
            Ok(pb::PublishFormat::Csv) => false,
            Ok(pb::PublishFormat::Html) if r.commune_code.trim().is_empty() => {
                return Err(ctx.fail(DomainError::invalid("commune_code", "an HTML page is for one commune: name it")));
            }
            Ok(pb::PublishFormat::Html) => true,
            _ => return Err(ctx.fail(DomainError::invalid("format", "choose CSV or HTML"))),
        };
        let (allocation, places, units) =
            self.service.published(&r.decision_number, Some(&r.commune_code)).await.map_err(|e| ctx.fail(e))?;
        let (data, file_name, content_type) =
            published::file(&allocation, &r.commune_code, &places, &units, html, !r.without_byte_order_mark).map_err(
                |e| {
                    tracing::error!(request_id = %ctx.request_id, error = %e, "a published list failed");
                    super::status::internal(&ctx.request_id)
                },
            )?;
        Ok(Response::new(super::file_stream(data, file_name, content_type)))
    }
}

impl DevicesApi {
    async fn to_pb(&self, a: &crate::domain::devices::Allocation) -> pb::Allocation {
        let units = self.service.unit_table().await.ok();
        let on = a.row.decision_date;
        allocation_to_pb(a, |code: &str| {
            if code.is_empty() {
                return String::new();
            }
            units
                .as_ref()
                .and_then(|t| t.on(code, on).or_else(|| t.get(code)).map(|u| u.name.clone()))
                .unwrap_or_default()
        })
    }
}
