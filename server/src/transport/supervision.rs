//! `telesub.v1.Supervision`: the audit reader. Converts messages to domain inputs and back.

use telesub_proto::v1::{self as pb, supervision_server::Supervision};

use crate::audit::SubjectKind;
use time::OffsetDateTime;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use std::sync::Arc;

use super::convert::page_size_or_invalid;
use super::reconciliation::{code_to_pb, status_to_pb};
use super::{
    CallContext,
    authz::STATISTICS_READERS,
    convert::timestamp,
    enrollments::enrollment_to_pb,
    households::{category_to_pb, version_to_pb},
};
use crate::{
    audit::AuditRecord,
    domain::ports::{
        PortError,
        inspections::{Finding, FindingUpdate, SampledHousehold},
    },
    domain::{
        DomainError,
        household::format_date,
        inspections::{
            Basis, FindingInput, FindingStatus, Inspection, InspectionInput, InspectionService, InspectionStatus,
            Sample, Severity, TeamMember,
        },
        registry::view,
        retention::{PurgeSummary, RetentionService},
        statistics::{PublicTable, Statistics, StatisticsService},
        supervision::{AuditQuery, SupervisionService, export_time},
        unit_registry::UnitRegistry,
    },
};

/// Chunks of an export the hub produces ahead of a slow reader.
const EXPORT_AHEAD: usize = 4;

#[derive(Debug, Clone)]
pub struct SupervisionApi {
    service: SupervisionService,
    inspections: InspectionService,
    statistics: StatisticsService,
    tree: crate::audit::AuditTree,
    units: Arc<UnitRegistry>,
    retention: RetentionService,
}

impl SupervisionApi {
    pub fn new(
        service: SupervisionService,
        inspections: InspectionService,
        statistics: StatisticsService,
        tree: crate::audit::AuditTree,
        units: Arc<UnitRegistry>,
        retention: RetentionService,
    ) -> Self {
        Self { service, inspections, statistics, tree, units, retention }
    }
}

fn statistics_to_pb(s: &Statistics) -> pb::ProgrammeStatistics {
    pb::ProgrammeStatistics {
        period: s.period.clone(),
        previous_period: s.previous_period.clone(),
        unit_code: s.unit_code.clone(),
        unit_name: s.unit_name.clone(),
        as_of: format_date(s.as_of),
        policy_version: s.policy_version,
        by_category: s
            .by_category
            .iter()
            .map(|r| pb::CategoryFigures {
                category: r.category.map(category_to_pb).unwrap_or_default().into(),
                households: r.households,
                eligible: r.eligible,
                enrolled: r.enrolled,
                devices_allocated: r.devices_allocated,
                devices_handed_over: r.devices_handed_over,
                households_before: r.households_before,
                eligible_before: r.eligible_before,
                enrolled_before: r.enrolled_before,
            })
            .collect(),
        by_operator: s
            .by_operator
            .iter()
            .map(|r| pb::OperatorFigures {
                operator: r.operator.clone().unwrap_or_default(),
                enrolled: r.enrolled,
                subscribers_claimed: r.claimed,
                amount_claimed: r.amount_claimed,
                subscribers_confirmed: r.confirmed,
                amount_confirmed: r.amount_confirmed,
                discrepancies: r
                    .discrepancies
                    .iter()
                    .map(|(code, n)| pb::CodeCount { code: code_to_pb(*code), lines: *n })
                    .collect(),
                enrolled_before: r.enrolled_before,
                subscribers_claimed_before: r.claimed_before,
                amount_claimed_before: r.amount_claimed_before,
                subscribers_confirmed_before: r.confirmed_before,
                amount_confirmed_before: r.amount_confirmed_before,
                list_status: r.list_status.map_or(pb::ReconciliationStatus::Unspecified.into(), status_to_pb),
            })
            .collect(),
        computed_at: Some(timestamp(s.computed_at)),
    }
}

fn public_to_pb(s: &Statistics, t: &PublicTable) -> pb::PublicStatisticsTable {
    pb::PublicStatisticsTable {
        period: s.period.clone(),
        unit_code: s.unit_code.clone(),
        unit_name: s.unit_name.clone(),
        threshold: i32::try_from(t.threshold).unwrap_or(i32::MAX),
        columns: t.columns.iter().map(|c| (*c).to_owned()).collect(),
        rows: t.rows.iter().map(|r| pb::PublicRow { cells: r.clone() }).collect(),
        legend: t.legend.clone(),
    }
}

fn basis_from_pb(n: i32) -> Option<Basis> {
    match pb::InspectionBasis::try_from(n).ok()? {
        pb::InspectionBasis::YearlyPlan => Some(Basis::YearlyPlan),
        pb::InspectionBasis::AuthorityRequest => Some(Basis::AuthorityRequest),
        pb::InspectionBasis::Unspecified => None,
    }
}

fn severity_from_pb(n: i32) -> Option<Severity> {
    match pb::FindingSeverity::try_from(n).ok()? {
        pb::FindingSeverity::Unspecified => None,
        pb::FindingSeverity::Low => Some(Severity::Low),
        pb::FindingSeverity::Medium => Some(Severity::Medium),
        pb::FindingSeverity::High => Some(Severity::High),
        pb::FindingSeverity::Critical => Some(Severity::Critical),
    }
}

fn severity_to_pb(severity: Severity) -> i32 {
    match severity {
        Severity::Low => pb::FindingSeverity::Low,
        Severity::Medium => pb::FindingSeverity::Medium,
        Severity::High => pb::FindingSeverity::High,
        Severity::Critical => pb::FindingSeverity::Critical,
    }
    .into()
}

fn finding_status_from_pb(n: i32) -> Option<FindingStatus> {
    match pb::FindingStatus::try_from(n).ok()? {
        pb::FindingStatus::Unspecified => None,
        pb::FindingStatus::Open => Some(FindingStatus::Open),
        pb::FindingStatus::InProgress => Some(FindingStatus::InProgress),
        pb::FindingStatus::Resolved => Some(FindingStatus::Resolved),
    }
}

fn finding_status_to_pb(status: FindingStatus) -> i32 {
    match status {
        FindingStatus::Open => pb::FindingStatus::Open,
        FindingStatus::InProgress => pb::FindingStatus::InProgress,
        FindingStatus::Resolved => pb::FindingStatus::Resolved,
    }
    .into()
}

fn finding_to_pb((f, updates): &(Finding, Vec<FindingUpdate>)) -> pb::Finding {
    pb::Finding {
        inspection_id: f.inspection_id,
        number: f.number,
        severity: severity_to_pb(f.severity),
        subject: f.subject.clone(),
        description: f.description.clone(),
        evidence_reference: f.evidence_reference.clone(),
        required_action: f.required_action.clone(),
        due_on: format_date(f.due_on),
        status: finding_status_to_pb(f.status),
        recorded_by: f.recorded_by.clone(),
        recorded_at: Some(timestamp(f.recorded_at)),
        updates: updates
            .iter()
            .map(|u| pb::FindingUpdate {
                status: finding_status_to_pb(u.status),
                note: u.note.clone(),
                updated_by: u.updated_by.clone(),
                updated_at: Some(timestamp(u.updated_at)),
            })
            .collect(),
    }
}

fn summary_to_pb(s: &SampledHousehold) -> pb::SampleSummary {
    pb::SampleSummary {
        number: s.number,
        commune_code: s.commune_code.clone(),
        as_of: format_date(s.as_of),
        size: i32::try_from(s.size).unwrap_or(i32::MAX),
        population: i32::try_from(s.population).unwrap_or(i32::MAX),
        pulled_by: s.pulled_by.clone(),
        pulled_at: Some(timestamp(s.pulled_at)),
        purged_at: s.purged_at.map(timestamp),
    }
}

fn purge_to_pb(s: &PurgeSummary) -> pb::PurgeExpiredResponse {
    let years = |y: u32| i32::try_from(y).unwrap_or(i32::MAX);
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    pb::PurgeExpiredResponse {
        dry_run: s.dry_run,
        decisions_years: years(s.policy.decisions_years),
        samples_years: years(s.policy.samples_years),
        removed_households_years: years(s.policy.removed_households_years),
        decisions_before: Some(timestamp(s.cutoffs.decisions_before)),
        samples_closed_before: Some(timestamp(s.cutoffs.samples_closed_before)),
        households_removed_before: format_date(s.cutoffs.households_removed_before),
        decisions: count(s.expired.decisions),
        decision_runs: count(s.expired.runs),
        samples: count(s.expired.samples),
        households: count(s.expired.households),
        ticket: s.ticket.clone(),
    }
}

fn inspection_to_pb(i: &Inspection) -> pb::Inspection {
    let r = &i.row;
    pb::Inspection {
        id: r.id,
        title: r.title.clone(),
        basis: match r.basis.as_str() {
            "YEARLY_PLAN" => pb::InspectionBasis::YearlyPlan.into(),
            _ => pb::InspectionBasis::AuthorityRequest.into(),
        },
        requested_by: r.requested_by.clone(),
        subject_units: i.subject_units.clone(),
        subject_operators: i.subject_operators.clone(),
        team: i
            .team
            .iter()
            .map(|m| pb::TeamMember {
                organisation: m.organisation.clone(),
                name: m.name.clone(),
                role: m.role.clone(),
            })
            .collect(),
        starts_on: format_date(r.starts_on),
        ends_on: format_date(r.ends_on),
        note: r.note.clone(),
        status: match r.status {
            InspectionStatus::Open => pb::InspectionStatus::Open.into(),
            InspectionStatus::Closed => pb::InspectionStatus::Closed.into(),
        },
        created_by: r.created_by.clone(),
        created_at: Some(timestamp(r.created_at)),
        conclusion: r.conclusion.clone().unwrap_or_default(),
        closed_by: r.closed_by.clone().unwrap_or_default(),
        closed_at: r.closed_at.map(timestamp),
        findings: i.findings.iter().map(finding_to_pb).collect(),
        samples: i.samples.iter().map(summary_to_pb).collect(),
    }
}

impl SupervisionApi {
    async fn sample_to_pb(&self, s: &Sample) -> Result<pb::Sample, DomainError> {
        let units = self.units.table().await?;
        let corrupt = |e: String| DomainError::from(PortError::Corrupt(e));
        let mut households = Vec::with_capacity(s.households.len());
        for h in &s.households {
            let mut versions = Vec::with_capacity(h.versions.len());
            for v in &h.versions {
                let row = v.to_row(&h.household_code).map_err(corrupt)?;
                versions.push(version_to_pb(&view(row, &units, None)?));
            }
            let enrollments = h
                .enrollments
                .iter()
                .map(|e| e.to_row(&h.household_code).map(|row| enrollment_to_pb(&row)))
                .collect::<Result<_, _>>()
                .map_err(corrupt)?;
            households.push(pb::SampledHousehold { household_code: h.household_code.clone(), versions, enrollments });
        }
        Ok(pb::Sample {
            inspection_id: s.row.inspection_id,
            summary: Some(summary_to_pb(&s.row)),
            seed: s.row.seed.clone(),
            households,
        })
    }
}

fn time_of(field: &str, t: Option<&prost_types::Timestamp>) -> Result<Option<OffsetDateTime>, DomainError> {
    t.map(|t| {
        let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .map_err(|_| DomainError::invalid(field, "is not a time the hub can read"))
    })
    .transpose()
}

fn record_to_pb(r: &AuditRecord) -> pb::AuditRecord {
    pb::AuditRecord {
        seq: r.seq,
        at: Some(timestamp(r.entry.at)),
        request_id: r.entry.request_id.clone(),
        caller: r.entry.org_code.clone().unwrap_or_default(),
        cert_fingerprint: r.entry.cert_fingerprint.clone().unwrap_or_default(),
        method: r.entry.method.clone(),
        outcome: r.entry.outcome.clone(),
        detail: r.entry.detail.clone(),
        request_digest: r.entry.request_digest.clone(),
        prev_hash: r.prev_hash.clone(),
        hash: r.hash.clone(),
        attached: r.entry.attached.clone().unwrap_or_default(),
        person: r.entry.person.clone().unwrap_or_default(),
    }
}

fn checkpoint_to_pb(
    c: &crate::domain::ports::audit::StoredCheckpoint,
    tree: &crate::audit::AuditTree,
) -> pb::AuditCheckpoint {
    pb::AuditCheckpoint {
        tree_size: c.tree_size,
        root_hash: c.root_hash.clone(),
        signed_at: Some(timestamp(c.signed_at)),
        key_id: c.key_id.clone(),
        note: c.note.clone(),
        verifier_key: tree.verifier().map(|k| k.to_text()).unwrap_or_default(),
    }
}

fn csv_row(w: &mut csv::Writer<Vec<u8>>, r: &AuditRecord) -> csv::Result<()> {
    w.write_record([
        r.seq.to_string().as_str(),
        &export_time(r.entry.at),
        &r.entry.request_id,
        r.entry.org_code.as_deref().unwrap_or_default(),
        r.entry.cert_fingerprint.as_deref().unwrap_or_default(),
        &r.entry.method,
        &r.entry.outcome,
        &r.entry.detail,
        &r.entry.request_digest,
        r.entry.attached.as_deref().unwrap_or_default(),
        &r.prev_hash,
        &r.hash,
        r.entry.person.as_deref().unwrap_or_default(),
    ])
}

#[tonic::async_trait]
impl Supervision for SupervisionApi {
    type ExportAuditStream = ReceiverStream<Result<pb::FileChunk, Status>>;
    type ExportStatisticsStream = ReceiverStream<Result<pb::FileChunk, Status>>;

    async fn get_programme_statistics(
        &self,
        request: Request<pb::GetProgrammeStatisticsRequest>,
    ) -> Result<Response<pb::ProgrammeStatistics>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let s = self.statistics.compute(Some(ctx.caller()?), &r.period, &r.unit_code).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(statistics_to_pb(&s)))
    }

    async fn public_statistics(
        &self,
        request: Request<pb::PublicStatisticsRequest>,
    ) -> Result<Response<pb::PublicStatisticsTable>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let (s, t) = self.statistics.public(&r.period, &r.unit_code, r.threshold).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(public_to_pb(&s, &t)))
    }

    async fn export_statistics(
        &self,
        request: Request<pb::ExportStatisticsRequest>,
    ) -> Result<Response<Self::ExportStatisticsStream>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let caller = ctx.caller()?;
        let (data, file_name, content_type) = match pb::StatisticsFormat::try_from(r.format) {
            Ok(pb::StatisticsFormat::Xlsx) => {
                if !STATISTICS_READERS.allows(caller.member.role) {
                    return Err(ctx.fail(DomainError::PermissionDenied(format!(
                        "{} reads the public statistics only: ask for PUBLIC_CSV",
                        caller.member.code
                    ))));
                }
                let s =
                    self.statistics.compute(Some(caller), &r.period, &r.unit_code).await.map_err(|e| ctx.fail(e))?;
                let unit = if s.unit_code.is_empty() { "tinh".to_owned() } else { s.unit_code.clone() };
                (
                    crate::export::statistics::xlsx(&s),
                    format!("thong-ke-{}-{unit}.xlsx", s.period),
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                )
            }
            Ok(pb::StatisticsFormat::PublicCsv) => {
                let (s, t) =
                    self.statistics.public(&r.period, &r.unit_code, r.threshold).await.map_err(|e| ctx.fail(e))?;
                let data = crate::export::statistics::public_csv(&t, !r.without_byte_order_mark).map_err(|e| {
                    tracing::error!(request_id = %ctx.request_id, error = %e, "a statistics export failed");
                    super::status::internal(&ctx.request_id)
                })?;
                let unit = if s.unit_code.is_empty() { "tinh".to_owned() } else { s.unit_code.clone() };
                (data, format!("thong-ke-cong-khai-{}-{unit}.csv", s.period), "text/csv; charset=utf-8")
            }
            _ => {
                let refusal =
                    self.statistics.refuse(&r.period, &r.unit_code, "format", "choose XLSX or PUBLIC_CSV").await;
                return Err(ctx.fail(refusal));
            }
        };
        Ok(Response::new(super::file_stream(data, file_name, content_type)))
    }

    async fn create_inspection(
        &self,
        request: Request<pb::CreateInspectionRequest>,
    ) -> Result<Response<pb::Inspection>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let input = InspectionInput {
            title: r.title,
            basis: basis_from_pb(r.basis),
            requested_by: r.requested_by,
            subject_units: r.subject_units,
            subject_operators: r.subject_operators,
            team: r
                .team
                .into_iter()
                .map(|m| TeamMember { organisation: m.organisation, name: m.name, role: m.role })
                .collect(),
            starts_on: r.starts_on,
            ends_on: r.ends_on,
            note: r.note,
        };
        let i = self.inspections.create(ctx.caller()?, &input).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(inspection_to_pb(&i)))
    }

    async fn record_finding(
        &self,
        request: Request<pb::RecordFindingRequest>,
    ) -> Result<Response<pb::Finding>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let input = FindingInput {
            severity: severity_from_pb(r.severity),
            subject: r.subject,
            description: r.description,
            evidence_reference: r.evidence_reference,
            required_action: r.required_action,
            due_on: r.due_on,
        };
        let f =
            self.inspections.record_finding(ctx.caller()?, r.inspection_id, &input).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(finding_to_pb(&f)))
    }

    async fn update_finding_status(
        &self,
        request: Request<pb::UpdateFindingStatusRequest>,
    ) -> Result<Response<pb::Finding>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let f = self
            .inspections
            .update_finding(ctx.caller()?, r.inspection_id, r.number, finding_status_from_pb(r.status), &r.note)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(finding_to_pb(&f)))
    }

    async fn close_inspection(
        &self,
        request: Request<pb::CloseInspectionRequest>,
    ) -> Result<Response<pb::Inspection>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let i = self.inspections.close(ctx.caller()?, r.inspection_id, &r.conclusion).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(inspection_to_pb(&i)))
    }

    async fn pull_sample(&self, request: Request<pb::PullSampleRequest>) -> Result<Response<pb::Sample>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let sample = self
            .inspections
            .pull_sample(ctx.caller()?, r.inspection_id, &r.commune_code, r.size, &r.as_of)
            .await
            .map_err(|e| ctx.fail(e))?;
        ctx.looked_up(SubjectKind::HouseholdCode, sample.households.iter().map(|h| h.household_code.as_str()));
        Ok(Response::new(self.sample_to_pb(&sample).await.map_err(|e| ctx.fail(e))?))
    }

    async fn list_inspections(
        &self,
        request: Request<pb::ListInspectionsRequest>,
    ) -> Result<Response<pb::ListInspectionsResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let page = async {
            let status = match pb::InspectionStatus::try_from(r.status) {
                Ok(pb::InspectionStatus::Unspecified) => None,
                Ok(pb::InspectionStatus::Open) => Some(InspectionStatus::Open),
                Ok(pb::InspectionStatus::Closed) => Some(InspectionStatus::Closed),
                Err(_) => {
                    return Err(DomainError::invalid(
                        "status",
                        format!("{} is not an inspection status: OPEN or CLOSED, or none for all", r.status),
                    ));
                }
            };
            let size = page_size_or_invalid(r.page_size)?;
            let caller = ctx.caller().map_err(|_| DomainError::Internal("no caller".into()))?;
            self.inspections.list(caller, status, size, &r.page_token).await
        }
        .await
        .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::ListInspectionsResponse {
            inspections: page.items.iter().map(inspection_to_pb).collect(),
            next_page_token: page.next.unwrap_or_default(),
        }))
    }

    async fn get_inspection(
        &self,
        request: Request<pb::GetInspectionRequest>,
    ) -> Result<Response<pb::Inspection>, Status> {
        let ctx = CallContext::of(&request)?;
        let i = self.inspections.get(ctx.caller()?, request.get_ref().inspection_id).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(inspection_to_pb(&i)))
    }

    async fn get_sample(&self, request: Request<pb::GetSampleRequest>) -> Result<Response<pb::Sample>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let sample =
            self.inspections.sample(ctx.caller()?, r.inspection_id, r.number).await.map_err(|e| ctx.fail(e))?;
        ctx.looked_up(SubjectKind::HouseholdCode, sample.households.iter().map(|h| h.household_code.as_str()));
        Ok(Response::new(self.sample_to_pb(&sample).await.map_err(|e| ctx.fail(e))?))
    }

    async fn query_audit(
        &self,
        request: Request<pb::QueryAuditRequest>,
    ) -> Result<Response<pb::QueryAuditResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let page = async {
            let query = AuditQuery {
                caller: r.caller.clone(),
                method: r.method.clone(),
                from: time_of("from", r.from.as_ref())?,
                until: time_of("until", r.until.as_ref())?,
                outcome: r.outcome.clone(),
                citizen_id: r.citizen_id.clone(),
                household_code: r.household_code.clone(),
            };
            let size = page_size_or_invalid(r.page_size)?;
            self.service.query(&query, size, &r.page_token).await
        }
        .await
        .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::QueryAuditResponse {
            records: page.items.iter().map(record_to_pb).collect(),
            next_page_token: page.next.unwrap_or_default(),
        }))
    }

    async fn get_audit_checkpoint(
        &self,
        request: Request<pb::GetAuditCheckpointRequest>,
    ) -> Result<Response<pb::AuditCheckpoint>, Status> {
        let ctx = CallContext::of(&request)?;
        let found = self.tree.checkpoint(request.get_ref().tree_size).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(checkpoint_to_pb(&found, &self.tree)))
    }

    async fn list_audit_checkpoints(
        &self,
        request: Request<pb::ListAuditCheckpointsRequest>,
    ) -> Result<Response<pb::ListAuditCheckpointsResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let (page, next) = async { self.tree.list_checkpoints(r.after_size, page_size_or_invalid(r.page_size)?).await }
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::ListAuditCheckpointsResponse {
            checkpoints: page.iter().map(|c| checkpoint_to_pb(c, &self.tree)).collect(),
            next_after_size: next,
        }))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProof>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let found = self.tree.inclusion(r.seq, r.tree_size, ctx.caller()?).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::InclusionProof {
            record: Some(record_to_pb(&found.record)),
            leaf_hash: crate::hex(&found.leaf),
            hashes: found.proof.iter().map(|h| crate::hex(h)).collect(),
            checkpoint: Some(checkpoint_to_pb(&found.checkpoint, &self.tree)),
        }))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProof>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let found = self.tree.consistency(r.old_size, r.new_size).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::ConsistencyProof {
            old_size: found.old_size as i64,
            hashes: found.proof.iter().map(|h| crate::hex(h)).collect(),
            old_root_hash: crate::hex(&found.old_root),
            checkpoint: Some(checkpoint_to_pb(&found.checkpoint, &self.tree)),
        }))
    }

    async fn verify_audit(
        &self,
        request: Request<pb::VerifyAuditRequest>,
    ) -> Result<Response<pb::VerifyAuditResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let report = self.service.verify(self.tree.verifier()).await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::VerifyAuditResponse {
            records: report.records as i64,
            last_seq: report.last_seq,
            last_hash: report.last_hash.clone(),
            intact: report.intact(),
            checkpoints: report.checkpoints as i64,
            guards_missing: report.guards_missing.clone(),
            purged: report.purged as i64,
            first_broken_seq: report.first_break.as_ref().map_or(0, |b| b.seq()),
            problem: report.first_break.as_ref().map(ToString::to_string).unwrap_or_default(),
        }))
    }

    async fn purge_expired(
        &self,
        request: Request<pb::PurgeExpiredRequest>,
    ) -> Result<Response<pb::PurgeExpiredResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let summary = self
            .retention
            .purge(ctx.caller()?, &ctx.request_id, r.dry_run, &r.ticket)
            .await
            .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(purge_to_pb(&summary)))
    }

    async fn export_audit(
        &self,
        request: Request<pb::ExportAuditRequest>,
    ) -> Result<Response<Self::ExportAuditStream>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.get_ref();
        let filter = async {
            self.service.export_filter(time_of("from", r.from.as_ref())?, time_of("until", r.until.as_ref())?)
        }
        .await
        .map_err(|e| ctx.fail(e))?;
        let file_name =
            format!("audit-{}-{}.csv", export_time(filter.from), export_time(filter.until)).replace(':', "");
        let service = self.service.clone();
        let (tree, with_proof, bom) = (self.tree.clone(), r.with_proof, !r.without_byte_order_mark);
        let (out, rx) = tokio::sync::mpsc::channel(EXPORT_AHEAD);
        tokio::spawn(async move {
            let proof_name = format!("{file_name}.proof");
            let mut named = Some((file_name, "text/csv; charset=utf-8".to_owned()));
            let writer = || crate::export::csv_file(false);
            // The file's first piece starts with the byte-order mark.
            let mut w = crate::export::csv_file(bom);
            let mut after = 0;
            let mut header = Some(telesub_proto::audit::EXPORT_COLUMNS);
            loop {
                let page = match service.export_page(&filter, after).await {
                    Ok(page) => page,
                    Err(e) => return drop(out.send(Err(ctx.fail(e))).await),
                };
                let last = page.len() < crate::domain::supervision::EXPORT_CHUNK as usize;
                let written = header
                    .take()
                    .map_or(Ok(()), |h| w.write_record(h))
                    .and_then(|()| page.iter().try_for_each(|r| csv_row(&mut w, r)));
                let data = match written
                    .and_then(|()| std::mem::replace(&mut w, writer()).into_inner().map_err(|e| e.into_error().into()))
                {
                    Ok(data) => data,
                    Err(e) => {
                        tracing::error!(request_id = %ctx.request_id, error = %e, "an audit export failed");
                        return drop(out.send(Err(super::status::internal(&ctx.request_id))).await);
                    }
                };
                after = page.last().map_or(after, |r| r.seq);
                let (file_name, content_type) = named.take().unwrap_or_default();
                if out.send(Ok(pb::FileChunk { file_name, content_type, data })).await.is_err() {
                    return; // the caller went away
                }
                if last {
                    break;
                }
            }
            if with_proof && after > 0 {
                let chunk = match tree.export_proof(after).await {
                    Ok(proof) => Ok(pb::FileChunk {
                        file_name: proof_name,
                        content_type: "text/plain; charset=utf-8".to_owned(),
                        data: proof.to_text().into_bytes(),
                    }),
                    Err(e) => Err(ctx.fail(crate::domain::DomainError::from(e))),
                };
                let _ = out.send(chunk).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
