//! Supervision: the audit reader. ICT finds who did what in the audit trail, checks that the
//! chain is whole, and exports a time range with its chain hashes for an outside auditor.

use std::sync::Arc;

use time::{OffsetDateTime, UtcOffset, macros::datetime};

use super::{
    DomainError, Violations,
    household::HouseholdCode,
    member::OrgCode,
    paging::{Page, paging},
};
use crate::{
    audit::{self, AuditRecord, ChainReport, SubjectKind},
    domain::ports::{AuditFilter, AuditLog, AuditReader, Store},
};

/// Records read per database read of an export.
pub const EXPORT_CHUNK: u32 = 5_000;

/// The gRPC status code names an outcome can have.
const OUTCOMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// A query as it arrives.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub caller: String,
    pub method: String,
    pub from: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
    pub outcome: String,
    pub citizen_id: String,
    pub household_code: String,
}

/// The time bounds of a query: from the start of time to its end when left out.
fn bounds(
    v: &mut Violations,
    from: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
) -> (OffsetDateTime, OffsetDateTime) {
    let from = from.map_or(datetime!(1970-01-01 0:00 UTC), |t| t.to_offset(UtcOffset::UTC));
    let until = until.map_or(datetime!(9999-12-31 0:00 UTC), |t| t.to_offset(UtcOffset::UTC));
    if from >= until {
        v.add("until", "must be after from");
    }
    (from, until)
}

/// `(exact path, path prefix)` for a method filter: a full path, `Service/Method`, or a
/// service.
fn method_filter(method: &str) -> Result<(Option<String>, Option<String>), String> {
    let m = method.trim();
    let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_'));
    if m.is_empty() {
        return Ok((None, None));
    }
    if let Some(path) = m.strip_prefix('/') {
        return match path.split_once('/') {
            Some((service, name)) if ok(service) && ok(name) => Ok((Some(m.to_owned()), None)),
            _ => Err(format!("{m:?} is not a method path such as /telesub.v1.Eligibility/CheckEligibility")),
        };
    }
    match m.split_once('/') {
        Some((service, name)) if ok(service) && ok(name) => Ok((Some(format!("/telesub.v1.{service}/{name}")), None)),
        None if ok(m) => Ok((None, Some(format!("/telesub.v1.{m}/")))),
        _ => Err(format!("{m:?} is not a method: give a path, Service/Method or a service")),
    }
}

/// An audit time as the export writes it: RFC 3339 in UTC with microseconds.
pub fn export_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

#[derive(Debug, Clone)]
pub struct SupervisionService {
    store: Arc<dyn Store>,
    audit_log: Arc<dyn AuditLog>,
    audit_reader: Arc<dyn AuditReader>,
}

impl SupervisionService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store: store.clone(), audit_log: store.clone(), audit_reader: store.clone() }
    }

    fn filter(&self, q: &AuditQuery, v: &mut Violations) -> AuditFilter {
        let org_code = match q.caller.trim() {
            "" => None,
            c => v.check("caller", OrgCode::parse(c)).map(|c| c.as_str().to_owned()),
        };
        let (method, method_prefix) = v.check("method", method_filter(&q.method)).unwrap_or_default();
        let outcome = match q.outcome.trim() {
            "" => None,
            o if OUTCOMES.contains(&o) => Some(o.to_owned()),
            o => {
                v.add("outcome", format!("{o:?} is not a gRPC status code name such as OK or PERMISSION_DENIED"));
                None
            }
        };
        let (from, until) = bounds(v, q.from, q.until);
        AuditFilter { from, until, org_code, method, method_prefix, outcome }
    }

    pub async fn query(&self, q: &AuditQuery, page_size: u32, token: &str) -> Result<Page<AuditRecord>, DomainError> {
        let mut v = Violations::new();
        let filter = self.filter(q, &mut v);
        let (limit, after) = paging(&mut v, page_size, token, 's');
        let citizen = match q.citizen_id.trim() {
            "" => None,
            id if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) => Some(id.to_owned()),
            id => {
                v.add("citizen_id", format!("{id:?} is not a citizen ID: it must be 12 digits"));
                None
            }
        };
        let household = match q.household_code.trim() {
            "" => None,
            code => v.check("household_code", HouseholdCode::parse(code)).map(|c| c.as_str().to_owned()),
        };
        v.finish()?;
        let after = after.unwrap_or(0);
        let records = if citizen.is_some() || household.is_some() {
            let mut seqs: Option<Vec<i64>> = None;
            for (kind, value) in [(SubjectKind::CitizenId, citizen), (SubjectKind::HouseholdCode, household)] {
                let Some(value) = value else { continue };
                let found = self.looked_up(kind, &value, &filter).await?;
                seqs = Some(match seqs {
                    None => found,
                    Some(before) => before.into_iter().filter(|s| found.binary_search(s).is_ok()).collect(),
                });
            }
            self.records_at(seqs.unwrap_or_default(), &filter, after, limit + 1).await?
        } else {
            self.audit_log.query_audit(&filter, after, limit + 1).await?
        };
        Ok(Page::cut(records, limit, |r| format!("s{}", r.seq)))
    }

    /// The sequence numbers, in order, of the calls that looked up a value.
    async fn looked_up(&self, kind: SubjectKind, value: &str, filter: &AuditFilter) -> Result<Vec<i64>, DomainError> {
        let mut seqs = self.audit_reader.subject_seqs(kind, value).await?;
        let answered = kind == SubjectKind::HouseholdCode;
        let mut calls = self.audit_reader.decision_calls(value, answered, filter.from, filter.until).await?;
        calls.extend(self.audit_reader.run_calls(value, answered, filter.from, filter.until).await?);
        for call in &calls {
            if let Some(seq) = self.audit_reader.audit_seq_of(call).await? {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        seqs.dedup();
        Ok(seqs)
    }

    /// Up to `limit` records among `seqs` after `after` that pass the filter.
    async fn records_at(
        &self,
        seqs: Vec<i64>,
        filter: &AuditFilter,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, DomainError> {
        let mut out = Vec::new();
        let candidates: Vec<i64> = seqs.into_iter().filter(|s| *s > after).collect();
        for chunk in candidates.chunks(500) {
            let records = self.audit_reader.audit_records_at(chunk).await?;
            out.extend(records.into_iter().filter(|r| filter.matches(r)));
            if out.len() >= limit as usize {
                out.truncate(limit as usize);
                break;
            }
        }
        Ok(out)
    }

    /// Checks the whole trail, the checkpoints' signatures with `key`.
    pub async fn verify(&self, key: Option<audit::checkpoint::VerifierKey>) -> Result<ChainReport, DomainError> {
        Ok(audit::verify_with(self.store.as_ref(), &audit::VerifyOptions { key, kept: Vec::new() }).await?)
    }

    /// The filter of an export; its records are read with [`SupervisionService::export_page`].
    pub fn export_filter(
        &self,
        from: Option<OffsetDateTime>,
        until: Option<OffsetDateTime>,
    ) -> Result<AuditFilter, DomainError> {
        let mut v = Violations::new();
        let (from, until) = bounds(&mut v, from, until);
        v.finish()?;
        Ok(AuditFilter { from, until, org_code: None, method: None, method_prefix: None, outcome: None })
    }

    pub async fn export_page(&self, filter: &AuditFilter, after: i64) -> Result<Vec<AuditRecord>, DomainError> {
        Ok(self.audit_log.query_audit(filter, after, EXPORT_CHUNK).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_paths_service_and_method_or_services() {
        assert_eq!(
            method_filter("/telesub.v1.Eligibility/CheckEligibility").unwrap(),
            (Some("/telesub.v1.Eligibility/CheckEligibility".into()), None)
        );
        assert_eq!(
            method_filter("Eligibility/CheckEligibility").unwrap(),
            (Some("/telesub.v1.Eligibility/CheckEligibility".into()), None)
        );
        assert_eq!(method_filter("Eligibility").unwrap(), (None, Some("/telesub.v1.Eligibility/".into())));
        assert_eq!(method_filter(" ").unwrap(), (None, None));
        assert!(method_filter("Eligibility/Check/More").is_err());
        assert!(method_filter("/x").is_err());
    }

    #[test]
    fn export_times_keep_microseconds_in_utc() {
        let t = datetime!(2026-11-26 18:38:14.258760 +7);
        assert_eq!(export_time(t), "2026-11-26T11:38:14.258760Z");
    }
}
