//! `telesub.v1.Supervision`: the audit reader. Converts messages to domain inputs and back.

use telesub_proto::v1::{self as pb, supervision_server::Supervision};
use time::OffsetDateTime;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{CallContext, convert::timestamp};
use crate::{
    audit::AuditRecord,
    domain::{
        DomainError,
        supervision::{AuditQuery, EXPORT_COLUMNS, SupervisionService, export_time},
    },
};

/// Chunks of an export the hub produces ahead of a slow reader.
const EXPORT_AHEAD: usize = 4;

#[derive(Debug, Clone)]
pub struct SupervisionApi {
    service: SupervisionService,
}

impl SupervisionApi {
    pub fn new(service: SupervisionService) -> Self {
        Self { service }
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
        &r.prev_hash,
        &r.hash,
    ])
}

#[tonic::async_trait]
impl Supervision for SupervisionApi {
    type ExportAuditStream = ReceiverStream<Result<pb::FileChunk, Status>>;

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
            let size =
                u32::try_from(r.page_size).map_err(|_| DomainError::invalid("page_size", "is not a page size"))?;
            self.service.query(&query, size, &r.page_token).await
        }
        .await
        .map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::QueryAuditResponse {
            records: page.items.iter().map(record_to_pb).collect(),
            next_page_token: page.next.unwrap_or_default(),
        }))
    }

    async fn verify_audit(
        &self,
        request: Request<pb::VerifyAuditRequest>,
    ) -> Result<Response<pb::VerifyAuditResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let report = self.service.verify().await.map_err(|e| ctx.fail(e))?;
        Ok(Response::new(pb::VerifyAuditResponse {
            records: report.records as i64,
            last_seq: report.last_seq,
            last_hash: report.last_hash.clone(),
            intact: report.first_break.is_none(),
            first_broken_seq: report.first_break.as_ref().map_or(0, |b| b.seq()),
            problem: report.first_break.as_ref().map(ToString::to_string).unwrap_or_default(),
        }))
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
        let (out, rx) = tokio::sync::mpsc::channel(EXPORT_AHEAD);
        tokio::spawn(async move {
            let mut named = Some((file_name, "text/csv; charset=utf-8".to_owned()));
            let writer = || csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
            let mut w = writer();
            let mut after = 0;
            let mut header = Some(EXPORT_COLUMNS);
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
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
