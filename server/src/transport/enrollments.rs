//! `telesub.v1.Enrollments`: convert messages to domain inputs and back; the domain does
//! every check.

use telesub_proto::v1::{self as pb, enrollments_server::Enrollments};
use tonic::{Request, Response, Status};

use super::{
    CallContext,
    convert::{page_size_or_invalid, timestamp},
    eligibility::{service_from_pb, service_to_pb},
    households::optional_date,
};
use crate::audit::SubjectKind;
use crate::{
    domain::ports::enrollments::{Enrollment, EnrollmentFilter},
    domain::{
        enrollments::{DeenrollInput, EndReason, EnrollInput, EnrollmentService, Refused},
        household::format_date,
        policy::Service,
    },
};

#[derive(Debug, Clone)]
pub struct EnrollmentsApi {
    service: EnrollmentService,
}

impl EnrollmentsApi {
    pub fn new(service: EnrollmentService) -> Self {
        Self { service }
    }
}

fn end_reason_from_pb(n: i32) -> Option<EndReason> {
    Some(match pb::EnrollmentEndReason::try_from(n).ok()? {
        pb::EnrollmentEndReason::Unspecified => return None,
        pb::EnrollmentEndReason::HouseholdRequest => EndReason::HouseholdRequest,
        pb::EnrollmentEndReason::NoLongerEligible => EndReason::NoLongerEligible,
        pb::EnrollmentEndReason::NonUsage => EndReason::NonUsage,
        pb::EnrollmentEndReason::Other => EndReason::Other,
        pb::EnrollmentEndReason::Transferred => EndReason::Transferred,
    })
}

fn end_reason_to_pb(r: Option<&str>) -> pb::EnrollmentEndReason {
    match r.map(EndReason::parse) {
        Some(Ok(EndReason::HouseholdRequest)) => pb::EnrollmentEndReason::HouseholdRequest,
        Some(Ok(EndReason::NoLongerEligible)) => pb::EnrollmentEndReason::NoLongerEligible,
        Some(Ok(EndReason::NonUsage)) => pb::EnrollmentEndReason::NonUsage,
        Some(Ok(EndReason::Other)) => pb::EnrollmentEndReason::Other,
        Some(Ok(EndReason::Transferred)) => pb::EnrollmentEndReason::Transferred,
        None | Some(Err(_)) => pb::EnrollmentEndReason::Unspecified,
    }
}

pub(super) fn enrollment_to_pb(e: &Enrollment) -> pb::Enrollment {
    pb::Enrollment {
        enrollment_id: e.id.to_string(),
        operator: e.operator.clone(),
        household_code: e.household_code.clone(),
        subscriber_citizen_id: e.subscriber_citizen_id.clone(),
        phone_number: e.phone_number.clone(),
        service: Service::parse(&e.service).map_or(pb::SupportedService::Unspecified, service_to_pb).into(),
        start_date: format_date(e.start_date),
        end_date: e.end_date.map(format_date).unwrap_or_default(),
        end_reason: end_reason_to_pb(e.end_reason.as_deref()).into(),
        end_note: e.end_note.clone().unwrap_or_default(),
        decision_id: e.decision_id.clone(),
        transfer_reference: e.transfer_reference.clone().unwrap_or_default(),
        recorded_at: Some(timestamp(e.recorded_at)),
        ended_at: e.ended_at.map(timestamp),
    }
}

#[tonic::async_trait]
impl Enrollments for EnrollmentsApi {
    async fn enroll(&self, request: Request<pb::EnrollRequest>) -> Result<Response<pb::Enrollment>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let input = EnrollInput {
            idempotency_key: r.idempotency_key.clone(),
            household_code: r.household_code.clone(),
            subscriber_citizen_id: r.subscriber_citizen_id.clone(),
            phone_number: r.phone_number.clone(),
            service: service_from_pb(r.service),
            start_date: r.start_date.clone(),
            request_reference: String::new(),
        };
        ctx.looked_up(SubjectKind::HouseholdCode, [input.household_code.as_str()]);
        ctx.looked_up(SubjectKind::CitizenId, [input.subscriber_citizen_id.as_str()]);
        let done = self.service.enroll(&input, ctx.caller()?, false).await.map_err(|r| refused(&ctx, r))?;
        Ok(Response::new(enrollment_to_pb(&done.enrollment)))
    }

    async fn deenroll(&self, request: Request<pb::DeenrollRequest>) -> Result<Response<pb::Enrollment>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let input = DeenrollInput {
            idempotency_key: r.idempotency_key.clone(),
            enrollment_id: r.enrollment_id.clone(),
            end_date: r.end_date.clone(),
            reason: end_reason_from_pb(r.reason),
            note: r.note.clone(),
        };
        let row = self.service.deenroll(&input, ctx.caller()?).await.map_err(|e| ctx.fail(e))?;
        ctx.looked_up(SubjectKind::HouseholdCode, [row.household_code.as_str()]);
        Ok(Response::new(enrollment_to_pb(&row)))
    }

    async fn transfer(&self, request: Request<pb::TransferRequest>) -> Result<Response<pb::TransferResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let input = EnrollInput {
            idempotency_key: r.idempotency_key.clone(),
            household_code: r.household_code.clone(),
            subscriber_citizen_id: r.subscriber_citizen_id.clone(),
            phone_number: r.phone_number.clone(),
            service: service_from_pb(r.service),
            start_date: r.start_date.clone(),
            request_reference: r.request_reference.clone(),
        };
        ctx.looked_up(SubjectKind::HouseholdCode, [input.household_code.as_str()]);
        ctx.looked_up(SubjectKind::CitizenId, [input.subscriber_citizen_id.as_str()]);
        let done = self.service.enroll(&input, ctx.caller()?, true).await.map_err(|r| refused(&ctx, r))?;
        Ok(Response::new(pb::TransferResponse {
            enrollment: Some(enrollment_to_pb(&done.enrollment)),
            previous_end_date: done.previous_end.map(format_date).unwrap_or_default(),
        }))
    }

    async fn get_enrollment(
        &self,
        request: Request<pb::GetEnrollmentRequest>,
    ) -> Result<Response<pb::Enrollment>, Status> {
        let ctx = CallContext::of(&request)?;
        let found = self.service.get(ctx.caller()?, &request.get_ref().enrollment_id).await.map_err(|e| ctx.fail(e))?;
        ctx.looked_up(SubjectKind::HouseholdCode, [found.household_code.as_str()]);
        Ok(Response::new(enrollment_to_pb(&found)))
    }

    async fn list_enrollments(
        &self,
        request: Request<pb::ListEnrollmentsRequest>,
    ) -> Result<Response<pb::ListEnrollmentsResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let active_on = optional_date("active_on", &r.active_on).map_err(|e| ctx.fail(e))?;
        let size = page_size_or_invalid(r.page_size).map_err(|e| ctx.fail(e))?;
        let filter = EnrollmentFilter {
            operator: (!r.operator.is_empty()).then(|| r.operator.clone()),
            household_code: (!r.household_code.is_empty()).then(|| r.household_code.clone()),
            active_on,
        };
        ctx.looked_up(SubjectKind::HouseholdCode, [r.household_code.as_str()]);
        let page = self.service.list(ctx.caller()?, filter, size, &r.page_token).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::ListEnrollmentsResponse {
            enrollments: page.items.iter().map(enrollment_to_pb).collect(),
            next_page_token: page.next.unwrap_or_default(),
        }))
    }
}

/// A refused enrolment's status; the decision it rests on, if any, is stored with the call's
/// audit record.
fn refused(ctx: &CallContext, refusal: Refused) -> Status {
    if let Some(decision) = &refusal.decision {
        ctx.store_with_audit([decision.to_row(&ctx.request_id)]);
    }
    ctx.fail(refusal.error)
}
