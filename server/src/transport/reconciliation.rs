//! `telesub.v1.Reconciliation`: convert messages to domain inputs and back; the domain does
//! every check.

use futures_util::StreamExt;
use telesub_proto::v1::{self as pb, reconciliation_server::Reconciliation};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{
    CallContext,
    convert::{page_size_or_invalid, timestamp},
    eligibility::{service_from_pb, service_to_pb},
};
use crate::{
    domain::ports::monthly::{LineFilter, UpdateFilter},
    domain::{
        DomainError,
        reconciliation::{
            Change, Code, Discrepancy, Figures, HeaderInput, Line, LineInput, ListStatus, ReconciledLine,
            ReconciliationService, Scope, Summary, UnclaimedReason,
        },
    },
    export::{self, ExportFailure, Format, file_name},
};

/// Chunks of an export the hub produces ahead of a slow reader.
const EXPORT_AHEAD: usize = 4;

#[derive(Debug, Clone)]
pub struct ReconciliationApi {
    service: ReconciliationService,
    metrics: Option<crate::metrics::Metrics>,
}

impl ReconciliationApi {
    /// Counts each monthly list reconciled (its time and lines) in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn new(service: ReconciliationService) -> Self {
        Self { service, metrics: None }
    }
}

// Domain names and protobuf enum names differ only by the enum's prefix; the tests below map
// every domain value both ways, so that no value can fall to UNSPECIFIED.

fn change_from_pb(n: i32) -> Option<Change> {
    let name = pb::SupportChange::try_from(n).ok()?.as_str_name();
    Change::parse(name.strip_prefix("SUPPORT_CHANGE_")?).ok()
}

fn change_to_pb(c: Option<Change>) -> i32 {
    c.and_then(|c| pb::SupportChange::from_str_name(&format!("SUPPORT_CHANGE_{c}"))).unwrap_or_default().into()
}

fn unclaimed_from_pb(n: i32) -> Option<UnclaimedReason> {
    let name = pb::UnclaimedReason::try_from(n).ok()?.as_str_name();
    UnclaimedReason::parse(name.strip_prefix("UNCLAIMED_REASON_")?).ok()
}

fn unclaimed_to_pb(r: Option<UnclaimedReason>) -> i32 {
    r.and_then(|r| pb::UnclaimedReason::from_str_name(&format!("UNCLAIMED_REASON_{r}"))).unwrap_or_default().into()
}

fn code_from_pb(n: i32) -> Option<Code> {
    let name = pb::DiscrepancyCode::try_from(n).ok()?.as_str_name();
    Code::parse(name.strip_prefix("DISCREPANCY_CODE_")?).ok()
}

pub(super) fn code_to_pb(c: Code) -> i32 {
    pb::DiscrepancyCode::from_str_name(&format!("DISCREPANCY_CODE_{c}")).unwrap_or_default().into()
}

pub(super) fn status_to_pb(status: ListStatus) -> i32 {
    match status {
        ListStatus::Receiving => pb::ReconciliationStatus::Received,
        ListStatus::Reconciled => pb::ReconciliationStatus::Reconciled,
        ListStatus::Confirmed => pb::ReconciliationStatus::Confirmed,
        ListStatus::Rejected => pb::ReconciliationStatus::Rejected,
        ListStatus::Superseded => pb::ReconciliationStatus::Superseded,
    }
    .into()
}

/// The stored status a filter names (`RECEIVED` is stored as `RECEIVING`).
fn status_from_pb(n: i32) -> Result<Option<ListStatus>, DomainError> {
    let status = pb::ReconciliationStatus::try_from(n)
        .map_err(|_| DomainError::invalid("status", format!("{n} is not a reconciliation status")))?;
    Ok(match status {
        pb::ReconciliationStatus::Unspecified => None,
        pb::ReconciliationStatus::Received => Some(ListStatus::Receiving),
        pb::ReconciliationStatus::Reconciled => Some(ListStatus::Reconciled),
        pb::ReconciliationStatus::Confirmed => Some(ListStatus::Confirmed),
        pb::ReconciliationStatus::Rejected => Some(ListStatus::Rejected),
        pb::ReconciliationStatus::Superseded => Some(ListStatus::Superseded),
    })
}

fn line_input(l: pb::MonthlyLine) -> LineInput {
    LineInput {
        phone_number: l.phone_number,
        subscriber_citizen_id: l.subscriber_citizen_id,
        household_code: l.household_code,
        enrollment_id: l.enrollment_id,
        change: change_from_pb(l.change),
        service: service_from_pb(l.service),
        package_code: l.package_code,
        tariff: l.tariff,
        amount_claimed: l.amount_claimed,
        days_of_service: l.days_of_service,
        used: l.used,
        unclaimed_reason: unclaimed_from_pb(l.unclaimed_reason),
    }
}

fn line_to_pb(l: &Line) -> pb::MonthlyLine {
    pb::MonthlyLine {
        phone_number: l.phone_number.clone(),
        subscriber_citizen_id: l.subscriber_citizen_id.clone(),
        household_code: l.household_code.clone(),
        enrollment_id: l.enrollment_id.map(|id| id.to_string()).unwrap_or_default(),
        change: change_to_pb(l.change),
        service: service_to_pb(l.service).into(),
        package_code: l.package_code.clone(),
        tariff: l.tariff,
        amount_claimed: l.amount_claimed,
        days_of_service: i32::try_from(l.days_of_service).unwrap_or(i32::MAX),
        used: l.used,
        unclaimed_reason: unclaimed_to_pb(l.unclaimed_reason),
    }
}

fn discrepancy_to_pb(d: &Discrepancy) -> pb::Discrepancy {
    pb::Discrepancy {
        code: code_to_pb(d.code),
        message: d.message.clone(),
        date: d.date.clone().unwrap_or_default(),
        allowed_amount: d.allowed_amount.unwrap_or_default(),
    }
}

fn reconciled_line_to_pb(l: &ReconciledLine) -> pb::ReconciledLine {
    pb::ReconciledLine {
        line_number: l.line_no,
        line: Some(line_to_pb(&l.line)),
        discrepancies: l.discrepancies.iter().map(discrepancy_to_pb).collect(),
        commune_code: l.commune_code.clone().unwrap_or_default(),
        exception: l.later.is_some(),
        later_discrepancies: l.later.iter().flatten().map(discrepancy_to_pb).collect(),
    }
}

fn figures_to_pb(f: &Figures) -> pb::ReconciliationFigures {
    pb::ReconciliationFigures {
        lines: f.lines,
        claims: f.claims,
        unclaimed: f.unclaimed,
        lines_ok: f.lines_ok,
        amount_claimed: f.amount_claimed,
        amount_confirmable: f.amount_confirmable,
        by_code: f.by_code.iter().map(|(c, n)| pb::CodeCount { code: code_to_pb(*c), lines: *n }).collect(),
        by_unclaimed_reason: f
            .by_unclaimed_reason
            .iter()
            .map(|(r, n)| pb::UnclaimedCount { reason: unclaimed_to_pb(Some(*r)), lines: *n })
            .collect(),
        missing_stops: f.missing_stops,
        enrollments_not_reported: f.enrollments_not_reported,
    }
}

fn summary_to_pb(s: &Summary) -> pb::MonthlyReconciliation {
    let r = &s.row;
    let decided = |status: ListStatus| (r.status == status).then_some(());
    pb::MonthlyReconciliation {
        operator: r.operator.clone(),
        update_id: r.update_id.clone(),
        period: r.period.clone(),
        status: status_to_pb(r.status),
        note: r.note.clone(),
        figures: r.figures.is_some().then(|| figures_to_pb(&s.figures)),
        received_at: Some(timestamp(r.received_at)),
        reconciled_at: r.reconciled_at.map(timestamp),
        superseded_by: r.superseded_by.clone().unwrap_or_default(),
        confirmation: decided(ListStatus::Confirmed).map(|()| pb::Confirmation {
            scope: r.confirmed_scope.clone().unwrap_or_default(),
            confirmed_by: r.decided_by.clone().unwrap_or_default(),
            confirmed_at: r.decided_at.map(timestamp),
            lines: r.confirmed_lines.unwrap_or_default(),
            amount: r.confirmed_amount.unwrap_or_default(),
            lines_digest: r.confirmed_digest.clone().unwrap_or_default(),
            note: r.decision_note.clone().unwrap_or_default(),
            confirmed_by_person: r.decided_by_person.clone().unwrap_or_default(),
        }),
        rejected_by: decided(ListStatus::Rejected).and(r.decided_by.clone()).unwrap_or_default(),
        rejected_at: decided(ListStatus::Rejected).and(r.decided_at).map(timestamp),
        rejection_note: decided(ListStatus::Rejected).and(r.decision_note.clone()).unwrap_or_default(),
        rejected_by_person: decided(ListStatus::Rejected).and(r.decided_by_person.clone()).unwrap_or_default(),
        content_digest: r.content_digest.clone().unwrap_or_default(),
        replayed: s.replayed,
        stale: r.stale,
        exceptions: r.exceptions,
        exceptions_checked_at: r.exceptions_at.map(timestamp),
    }
}

fn text(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

#[tonic::async_trait]
impl Reconciliation for ReconciliationApi {
    type ExportReconciliationStream =
        std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<pb::FileChunk, Status>> + Send + 'static>>;

    async fn export_reconciliation(
        &self,
        request: Request<pb::ExportReconciliationRequest>,
    ) -> Result<Response<Self::ExportReconciliationStream>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let format = match pb::ExportFormat::try_from(r.format) {
            Ok(pb::ExportFormat::Csv) => Format::Csv,
            Ok(pb::ExportFormat::Xlsx) => Format::Xlsx,
            _ => return Err(ctx.fail(DomainError::invalid("format", "choose CSV or XLSX"))),
        };
        let (summary, lines) = self
            .service
            .export(ctx.caller()?, &r.operator, &r.update_id, r.confirmed_lines_only)
            .await
            .map_err(|e| ctx.fail(e))?;
        // The first chunk names the file, even when it carries no data yet.
        let mut named = Some((file_name(&summary, format), format.content_type().to_owned()));
        let rx = export::pieces(format, summary, lines, EXPORT_AHEAD, !r.without_byte_order_mark);
        let chunks = ReceiverStream::new(rx).map(move |piece| match piece {
            Ok(data) => {
                let (file_name, content_type) = named.take().unwrap_or_default();
                Ok(pb::FileChunk { file_name, content_type, data })
            }
            Err(ExportFailure::Read(e)) => Err(ctx.fail(e)),
            Err(ExportFailure::Write(e)) => {
                tracing::error!(request_id = %ctx.request_id, error = %crate::ErrorChain(&e), "an export failed");
                Err(super::status::internal(&ctx.request_id))
            }
        });
        Ok(Response::new(Box::pin(chunks) as Self::ExportReconciliationStream))
    }

    async fn submit_monthly_update(
        &self,
        request: Request<Streaming<pb::SubmitMonthlyUpdateRequest>>,
    ) -> Result<Response<pb::MonthlyReconciliation>, Status> {
        let ctx = CallContext::of(&request)?;
        let caller = ctx.caller()?.clone();
        let mut stream = request.into_inner();
        let header = match stream.message().await? {
            Some(pb::SubmitMonthlyUpdateRequest { item: Some(pb::submit_monthly_update_request::Item::Header(h)) }) => {
                h
            }
            _ => return Err(ctx.fail(DomainError::invalid("header", "the first message of a list is its header"))),
        };
        let header = self
            .service
            .check_header(&HeaderInput {
                period: header.period,
                update_id: header.update_id,
                replaces_earlier: header.replaces_earlier,
                note: header.note,
            })
            .await
            .map_err(|e| ctx.fail(e))?;
        let lines = stream.map(|message| match message {
            Ok(pb::SubmitMonthlyUpdateRequest {
                item: Some(pb::submit_monthly_update_request::Item::Lines(chunk)),
            }) => Ok(chunk.lines.into_iter().map(line_input).collect()),
            Ok(_) => Err(DomainError::invalid("header", "a list has one header, in its first message")),
            Err(status) => Err(super::status::stream_fault(&status, "the list")),
        });
        let started = std::time::Instant::now();
        let summary =
            self.service.submit(header, &caller, &ctx.request_id, Box::pin(lines)).await.map_err(|e| ctx.fail(e))?;
        if let Some(m) = self.metrics.as_ref().filter(|_| !summary.replayed) {
            m.list_seconds.observe(started.elapsed().as_secs_f64());
            m.list_lines.observe(summary.figures.lines as f64);
        }
        Ok(Response::new(summary_to_pb(&summary)))
    }

    async fn list_reconciliations(
        &self,
        request: Request<pb::ListReconciliationsRequest>,
    ) -> Result<Response<pb::ListReconciliationsResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let page = async {
            let filter = UpdateFilter {
                period: text(&r.period),
                operator: text(&r.operator),
                status: status_from_pb(r.status)?,
            };
            self.service
                .list(
                    ctx.caller().map_err(|_| DomainError::Internal("no caller".into()))?,
                    filter,
                    page_size_or_invalid(r.page_size)?,
                    &r.page_token,
                )
                .await
        }
        .await
        .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::ListReconciliationsResponse {
            reconciliations: page.items.iter().map(summary_to_pb).collect(),
            next_page_token: page.next.unwrap_or_default(),
        }))
    }

    async fn get_reconciliation(
        &self,
        request: Request<pb::GetReconciliationRequest>,
    ) -> Result<Response<pb::MonthlyReconciliation>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let summary = self.service.get(ctx.caller()?, &r.operator, &r.update_id).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(summary_to_pb(&summary)))
    }

    async fn list_discrepancies(
        &self,
        request: Request<pb::ListDiscrepanciesRequest>,
    ) -> Result<Response<pb::ListDiscrepanciesResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let caller = ctx.caller()?;
        let page = async {
            let code = match r.code {
                0 => None,
                n => Some(
                    code_from_pb(n)
                        .ok_or_else(|| DomainError::invalid("code", format!("{n} is not a discrepancy code")))?
                        .as_str()
                        .to_owned(),
                ),
            };
            let filter = LineFilter {
                code,
                commune_code: text(&r.unit),
                household_code: text(&r.household_code),
                include_ok: r.include_ok,
                exceptions_only: r.exceptions_only,
            };
            self.service
                .lines(caller, &r.operator, &r.update_id, filter, page_size_or_invalid(r.page_size)?, &r.page_token)
                .await
        }
        .await
        .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::ListDiscrepanciesResponse {
            lines: page.items.iter().map(reconciled_line_to_pb).collect(),
            next_page_token: page.next.unwrap_or_default(),
        }))
    }

    async fn confirm(
        &self,
        request: Request<pb::ConfirmRequest>,
    ) -> Result<Response<pb::MonthlyReconciliation>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let scope = match pb::ConfirmationScope::try_from(r.scope) {
            Ok(pb::ConfirmationScope::WholeList) => Some(Scope::WholeList),
            Ok(pb::ConfirmationScope::OkLines) => Some(Scope::OkLines),
            _ => None,
        };
        let summary = self
            .service
            .confirm(ctx.caller()?, &r.operator, &r.update_id, scope, &r.note)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(summary_to_pb(&summary)))
    }

    async fn reject(&self, request: Request<pb::RejectRequest>) -> Result<Response<pb::MonthlyReconciliation>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let summary =
            self.service.reject(ctx.caller()?, &r.operator, &r.update_id, &r.note).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(summary_to_pb(&summary)))
    }
}

#[cfg(test)]
mod mapping_tests {
    use super::*;

    #[test]
    fn every_domain_value_has_its_protobuf_value_and_back() {
        for &c in Change::ALL {
            let n = change_to_pb(Some(c));
            assert_ne!(n, 0, "{c} maps to UNSPECIFIED");
            assert_eq!(change_from_pb(n), Some(c));
        }
        for &r in UnclaimedReason::ALL {
            let n = unclaimed_to_pb(Some(r));
            assert_ne!(n, 0, "{r} maps to UNSPECIFIED");
            assert_eq!(unclaimed_from_pb(n), Some(r));
        }
        for &c in Code::ALL {
            let n = code_to_pb(c);
            assert_ne!(n, 0, "{c} maps to UNSPECIFIED");
            assert_eq!(code_from_pb(n), Some(c));
        }
        for &s in ListStatus::ALL {
            let n = status_to_pb(s);
            assert_eq!(status_from_pb(n).unwrap(), Some(s));
        }
        assert_eq!(change_to_pb(None), 0);
        assert_eq!(unclaimed_to_pb(None), 0);
    }
}
