//! `--output csv`: the columns of each answer, and a row's values.
//!
//! Column names are the messages' field names (snake_case). Values are as in the project's
//! CSV files: enums by the short name the tables print (`POOR`, `RECONCILED`; empty when not
//! set), amounts in đồng as plain integers, dates as given, times in RFC 3339 (UTC), `true` or
//! `false`. A list inside an item becomes one cell, its entries separated by `;` (the JSON
//! output has them in full).

use prost_types::Timestamp;
use telesub_client::proto;

/// An item printed as a CSV row.
pub(crate) trait Row {
    const COLUMNS: &'static [&'static str];
    fn cells(&self) -> Vec<String>;
}

/// An enum value's short name, `prefix` taken off; empty for the unspecified value.
fn en(name: &str, prefix: &str) -> String {
    match name.strip_prefix(prefix).unwrap_or(name) {
        "UNSPECIFIED" => String::new(),
        short => short.to_owned(),
    }
}

fn time(t: Option<&Timestamp>) -> String {
    t.map(ToString::to_string).unwrap_or_default()
}

fn joined<T>(items: &[T], cell: impl Fn(&T) -> String) -> String {
    items.iter().map(cell).collect::<Vec<_>>().join(";")
}

impl Row for proto::HouseholdVersion {
    const COLUMNS: &'static [&'static str] = &[
        "household_code",
        "valid_from",
        "valid_to",
        "removal_reason",
        "removal_note",
        "category",
        "head_name",
        "commune_code",
        "commune_name",
        "district_code",
        "province_code",
        "address",
        "certificate_number",
        "certificate_issued_on",
        "certificate_issuing_unit_code",
        "earlier_programme_device",
        "wants_device",
        "meritorious_service_family",
        "social_policy_family",
        "members",
        "member_citizen_ids",
        "batch_id",
        "recorded_at",
    ];

    fn cells(&self) -> Vec<String> {
        let data = self.data.clone().unwrap_or_default();
        let certificate = data.certificate.clone().unwrap_or_default();
        let flags = data.flags.unwrap_or_default();
        vec![
            self.household_code.clone(),
            self.valid_from.clone(),
            self.valid_to.clone(),
            en(self.removal_reason().as_str_name(), "REMOVAL_REASON_"),
            self.removal_note.clone(),
            en(data.category().as_str_name(), "CATEGORY_"),
            data.head_name.clone(),
            data.commune_code.clone(),
            self.commune_name.clone(),
            self.district_code.clone(),
            self.province_code.clone(),
            data.address.clone(),
            certificate.number,
            certificate.issued_on,
            certificate.issuing_unit_code,
            flags.earlier_programme_device.to_string(),
            flags.wants_device.to_string(),
            flags.meritorious_service_family.to_string(),
            flags.social_policy_family.to_string(),
            data.members.len().to_string(),
            joined(&data.members, |m| m.citizen_id.clone()),
            self.batch_id.clone(),
            time(self.recorded_at.as_ref()),
        ]
    }
}

impl Row for proto::BatchReceipt {
    const COLUMNS: &'static [&'static str] = &[
        "batch_id",
        "kind",
        "review_period",
        "effective_date",
        "note",
        "records",
        "added",
        "changed",
        "removed",
        "unchanged",
        "content_digest",
        "pushed_by",
        "applied_at",
        "replayed",
    ];

    fn cells(&self) -> Vec<String> {
        vec![
            self.batch_id.clone(),
            en(self.kind().as_str_name(), "BATCH_KIND_"),
            self.review_period.clone(),
            self.effective_date.clone(),
            self.note.clone(),
            self.records.to_string(),
            self.added.to_string(),
            self.changed.to_string(),
            self.removed.to_string(),
            self.unchanged.to_string(),
            self.content_digest.clone(),
            self.pushed_by.clone(),
            time(self.applied_at.as_ref()),
            self.replayed.to_string(),
        ]
    }
}

impl Row for proto::EligibilityDecision {
    const COLUMNS: &'static [&'static str] = &[
        "decision_id",
        "decided_at",
        "asked_by",
        "as_of",
        "eligible",
        "household_code",
        "category",
        "head_name_masked",
        "entitlements",
        "reasons",
        "reason_messages",
        "policy_version",
    ];

    fn cells(&self) -> Vec<String> {
        vec![
            self.decision_id.clone(),
            time(self.decided_at.as_ref()),
            self.asked_by.clone(),
            self.as_of.clone(),
            self.eligible.to_string(),
            self.household_code.clone(),
            en(self.category().as_str_name(), "CATEGORY_"),
            self.head_name_masked.clone(),
            // SERVICE:MONTHLY_AMOUNT:SUBSCRIPTIONS:FROM:UNTIL
            joined(&self.entitlements, |e| {
                format!(
                    "{}:{}:{}:{}:{}",
                    en(e.service().as_str_name(), "SUPPORTED_SERVICE_"),
                    e.monthly_amount,
                    e.subscriptions_allowed,
                    e.valid_from,
                    e.valid_to
                )
            }),
            joined(&self.reasons, |r| en(r.code().as_str_name(), "REASON_CODE_")),
            joined(&self.reasons, |r| r.message.replace(';', ",")),
            self.policy_version.to_string(),
        ]
    }
}

impl Row for proto::PolicyVersion {
    const COLUMNS: &'static [&'static str] = &[
        "version",
        "valid_from",
        "valid_to",
        "note",
        "categories",
        "services",
        "subscriptions_per_household",
        "broadband_communes",
        "non_usage_months",
        "withdrawn",
        "withdrawal_reason",
        "recorded_by",
        "recorded_at",
    ];

    fn cells(&self) -> Vec<String> {
        let withdrawal = self.withdrawal.clone();
        vec![
            self.version.to_string(),
            self.valid_from.clone(),
            self.valid_to.clone(),
            self.note.clone(),
            self.categories().map(|c| en(c.as_str_name(), "CATEGORY_")).collect::<Vec<_>>().join(";"),
            // SERVICE:MONTHLY_AMOUNT
            joined(&self.services, |s| {
                format!("{}:{}", en(s.service().as_str_name(), "SUPPORTED_SERVICE_"), s.monthly_amount)
            }),
            self.subscriptions_per_household.to_string(),
            self.broadband_communes.join(";"),
            self.non_usage_months.to_string(),
            withdrawal.is_some().to_string(),
            withdrawal.map(|w| w.reason).unwrap_or_default(),
            self.recorded_by.clone(),
            time(self.recorded_at.as_ref()),
        ]
    }
}

impl Row for proto::Enrollment {
    const COLUMNS: &'static [&'static str] = &[
        "enrollment_id",
        "operator",
        "household_code",
        "subscriber_citizen_id",
        "phone_number",
        "service",
        "start_date",
        "end_date",
        "end_reason",
        "end_note",
        "decision_id",
        "transfer_reference",
        "recorded_at",
        "ended_at",
    ];

    fn cells(&self) -> Vec<String> {
        vec![
            self.enrollment_id.clone(),
            self.operator.clone(),
            self.household_code.clone(),
            self.subscriber_citizen_id.clone(),
            self.phone_number.clone(),
            en(self.service().as_str_name(), "SUPPORTED_SERVICE_"),
            self.start_date.clone(),
            self.end_date.clone(),
            en(self.end_reason().as_str_name(), "ENROLLMENT_END_REASON_"),
            self.end_note.clone(),
            self.decision_id.clone(),
            self.transfer_reference.clone(),
            time(self.recorded_at.as_ref()),
            time(self.ended_at.as_ref()),
        ]
    }
}

impl Row for proto::MonthlyReconciliation {
    const COLUMNS: &'static [&'static str] = &[
        "operator",
        "update_id",
        "period",
        "status",
        "stale",
        "note",
        "lines",
        "claims",
        "unclaimed",
        "lines_ok",
        "amount_claimed",
        "amount_confirmable",
        "by_code",
        "by_unclaimed_reason",
        "missing_stops",
        "enrollments_not_reported",
        "received_at",
        "reconciled_at",
        "content_digest",
        "superseded_by",
        "confirmation_scope",
        "confirmed_by",
        "confirmed_at",
        "confirmed_lines",
        "confirmed_amount",
        "lines_digest",
        "confirmation_note",
        "exceptions",
        "rejected_by",
        "rejected_at",
        "rejection_note",
        "replayed",
    ];

    fn cells(&self) -> Vec<String> {
        let f = self.figures.clone().unwrap_or_default();
        let c = self.confirmation.clone().unwrap_or_default();
        vec![
            self.operator.clone(),
            self.update_id.clone(),
            self.period.clone(),
            en(self.status().as_str_name(), "RECONCILIATION_STATUS_"),
            self.stale.to_string(),
            self.note.clone(),
            f.lines.to_string(),
            f.claims.to_string(),
            f.unclaimed.to_string(),
            f.lines_ok.to_string(),
            f.amount_claimed.to_string(),
            f.amount_confirmable.to_string(),
            // CODE:LINES
            joined(&f.by_code, |c| format!("{}:{}", en(c.code().as_str_name(), "DISCREPANCY_CODE_"), c.lines)),
            joined(&f.by_unclaimed_reason, |c| {
                format!("{}:{}", en(c.reason().as_str_name(), "UNCLAIMED_REASON_"), c.lines)
            }),
            f.missing_stops.to_string(),
            f.enrollments_not_reported.to_string(),
            time(self.received_at.as_ref()),
            time(self.reconciled_at.as_ref()),
            self.content_digest.clone(),
            self.superseded_by.clone(),
            c.scope,
            c.confirmed_by,
            time(c.confirmed_at.as_ref()),
            if self.confirmation.is_some() { c.lines.to_string() } else { String::new() },
            if self.confirmation.is_some() { c.amount.to_string() } else { String::new() },
            c.lines_digest,
            c.note,
            self.exceptions.to_string(),
            self.rejected_by.clone(),
            time(self.rejected_at.as_ref()),
            self.rejection_note.clone(),
            self.replayed.to_string(),
        ]
    }
}

impl Row for proto::ReconciledLine {
    const COLUMNS: &'static [&'static str] = &[
        "line_number",
        "phone_number",
        "subscriber_citizen_id",
        "household_code",
        "enrollment_id",
        "commune_code",
        "change",
        "service",
        "package_code",
        "tariff",
        "amount_claimed",
        "days_of_service",
        "used",
        "unclaimed_reason",
        "discrepancies",
        "messages",
        "exception",
        "later_discrepancies",
    ];

    fn cells(&self) -> Vec<String> {
        let line = self.line.clone().unwrap_or_default();
        let codes = |ds: &[proto::Discrepancy]| joined(ds, |d| en(d.code().as_str_name(), "DISCREPANCY_CODE_"));
        vec![
            self.line_number.to_string(),
            line.phone_number.clone(),
            line.subscriber_citizen_id.clone(),
            line.household_code.clone(),
            line.enrollment_id.clone(),
            self.commune_code.clone(),
            en(line.change().as_str_name(), "SUPPORT_CHANGE_"),
            en(line.service().as_str_name(), "SUPPORTED_SERVICE_"),
            line.package_code.clone(),
            line.tariff.to_string(),
            line.amount_claimed.to_string(),
            line.days_of_service.to_string(),
            line.used.to_string(),
            en(line.unclaimed_reason().as_str_name(), "UNCLAIMED_REASON_"),
            codes(&self.discrepancies),
            joined(&self.discrepancies, |d| d.message.replace(';', ",")),
            self.exception.to_string(),
            codes(&self.later_discrepancies),
        ]
    }
}

impl Row for proto::Allocation {
    const COLUMNS: &'static [&'static str] = &[
        "decision_number",
        "decision_date",
        "status",
        "revision",
        "tablets",
        "smartphones",
        "cash_alternative_amount",
        "note",
        "recorded_by",
        "recorded_at",
        "proposal_as_of",
        "policy_version",
        "proposed_at",
        "eligible_households",
        "recipients",
        "proposal_digest",
        "list_digest",
        "submitted_by",
        "submitted_at",
        "approval_number",
        "approved_on",
        "decided_by",
        "decided_at",
        "decision_note",
    ];

    fn cells(&self) -> Vec<String> {
        vec![
            self.decision_number.clone(),
            self.decision_date.clone(),
            en(self.status().as_str_name(), "ALLOCATION_STATUS_"),
            self.revision.to_string(),
            self.tablets.to_string(),
            self.smartphones.to_string(),
            self.cash_alternative_amount.to_string(),
            self.note.clone(),
            self.recorded_by.clone(),
            time(self.recorded_at.as_ref()),
            self.proposal_as_of.clone(),
            self.policy_version.to_string(),
            time(self.proposed_at.as_ref()),
            self.eligible_households.to_string(),
            self.recipients.to_string(),
            self.proposal_digest.clone(),
            self.list_digest.clone(),
            self.submitted_by.clone(),
            time(self.submitted_at.as_ref()),
            self.approval_number.clone(),
            self.approved_on.clone(),
            self.decided_by.clone(),
            time(self.decided_at.as_ref()),
            self.decision_note.clone(),
        ]
    }
}

impl Row for proto::AllocationRecipient {
    const COLUMNS: &'static [&'static str] = &[
        "rank",
        "household_code",
        "commune_code",
        "unit_code",
        "category",
        "priority",
        "device_type",
        "head_name_masked",
        "nominated",
        "added",
        "handed_over_on",
        "received_by",
        "handed_over",
        "imei",
        "serial_number",
        "cash_amount",
    ];

    fn cells(&self) -> Vec<String> {
        use proto::handover::Kind;
        let h = self.handover.clone().unwrap_or_default();
        let (what, imei, serial, cash) = match &h.kind {
            Some(Kind::Device(d)) => (
                en(d.device_type().as_str_name(), "DEVICE_TYPE_"),
                d.imei.clone(),
                d.serial_number.clone(),
                String::new(),
            ),
            Some(Kind::Cash(c)) => ("CASH".to_owned(), String::new(), String::new(), c.amount.to_string()),
            None => Default::default(),
        };
        vec![
            self.rank.to_string(),
            self.household_code.clone(),
            self.commune_code.clone(),
            self.unit_code.clone(),
            en(self.category().as_str_name(), "CATEGORY_"),
            en(self.priority().as_str_name(), "DEVICE_PRIORITY_"),
            en(self.device_type().as_str_name(), "DEVICE_TYPE_"),
            self.head_name_masked.clone(),
            self.nominated.to_string(),
            self.added.to_string(),
            h.handed_over_on,
            h.received_by,
            what,
            imei,
            serial,
            cash,
        ]
    }
}

impl Row for proto::AuditRecord {
    /// The columns of the hub's own audit export.
    const COLUMNS: &'static [&'static str] = &telesub_client::audit::EXPORT_COLUMNS;

    fn cells(&self) -> Vec<String> {
        vec![
            self.seq.to_string(),
            time(self.at.as_ref()),
            self.request_id.clone(),
            self.caller.clone(),
            self.cert_fingerprint.clone(),
            self.method.clone(),
            self.outcome.clone(),
            self.detail.clone(),
            self.request_digest.clone(),
            self.attached.clone(),
            self.prev_hash.clone(),
            self.hash.clone(),
            self.person.clone(),
        ]
    }
}

impl Row for proto::AuditCheckpoint {
    const COLUMNS: &'static [&'static str] = &["tree_size", "root_hash", "signed_at", "key_id", "verifier_key"];

    fn cells(&self) -> Vec<String> {
        vec![
            self.tree_size.to_string(),
            self.root_hash.clone(),
            time(self.signed_at.as_ref()),
            self.key_id.clone(),
            self.verifier_key.clone(),
        ]
    }
}

impl Row for proto::VerifyAuditResponse {
    const COLUMNS: &'static [&'static str] = &[
        "intact",
        "records",
        "last_seq",
        "last_hash",
        "first_broken_seq",
        "problem",
        "checkpoints",
        "guards_missing",
        "purged",
    ];

    fn cells(&self) -> Vec<String> {
        vec![
            self.intact.to_string(),
            self.records.to_string(),
            self.last_seq.to_string(),
            self.last_hash.clone(),
            self.first_broken_seq.to_string(),
            self.problem.clone(),
            self.checkpoints.to_string(),
            self.guards_missing.join(";"),
            self.purged.to_string(),
        ]
    }
}

impl Row for proto::PurgeExpiredResponse {
    const COLUMNS: &'static [&'static str] = &[
        "dry_run",
        "ticket",
        "decisions_years",
        "samples_years",
        "removed_households_years",
        "decisions_before",
        "samples_closed_before",
        "households_removed_before",
        "decisions",
        "decision_runs",
        "samples",
        "households",
    ];

    fn cells(&self) -> Vec<String> {
        vec![
            self.dry_run.to_string(),
            self.ticket.clone(),
            self.decisions_years.to_string(),
            self.samples_years.to_string(),
            self.removed_households_years.to_string(),
            time(self.decisions_before.as_ref()),
            time(self.samples_closed_before.as_ref()),
            self.households_removed_before.clone(),
            self.decisions.to_string(),
            self.decision_runs.to_string(),
            self.samples.to_string(),
            self.households.to_string(),
        ]
    }
}

impl Row for proto::Inspection {
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "title",
        "basis",
        "requested_by",
        "subject_units",
        "subject_operators",
        "team",
        "starts_on",
        "ends_on",
        "status",
        "note",
        "created_by",
        "created_at",
        "conclusion",
        "closed_by",
        "closed_at",
        "findings",
        "findings_resolved",
        "samples",
    ];

    fn cells(&self) -> Vec<String> {
        let resolved = self.findings.iter().filter(|f| f.status() == proto::FindingStatus::Resolved).count();
        vec![
            self.id.to_string(),
            self.title.clone(),
            en(self.basis().as_str_name(), "INSPECTION_BASIS_"),
            self.requested_by.clone(),
            self.subject_units.join(";"),
            self.subject_operators.join(";"),
            // ORGANISATION:NAME:ROLE
            joined(&self.team, |m| format!("{}:{}:{}", m.organisation, m.name, m.role)),
            self.starts_on.clone(),
            self.ends_on.clone(),
            en(self.status().as_str_name(), "INSPECTION_STATUS_"),
            self.note.clone(),
            self.created_by.clone(),
            time(self.created_at.as_ref()),
            self.conclusion.clone(),
            self.closed_by.clone(),
            time(self.closed_at.as_ref()),
            self.findings.len().to_string(),
            resolved.to_string(),
            self.samples.len().to_string(),
        ]
    }
}

/// A household of a sample, with the sample it is in: `inspections show-sample` prints a row
/// per household drawn.
pub(crate) struct SampledRow<'a> {
    pub(crate) sample: &'a proto::Sample,
    pub(crate) household: &'a proto::SampledHousehold,
}

impl Row for SampledRow<'_> {
    const COLUMNS: &'static [&'static str] = &[
        "inspection_id",
        "sample",
        "sample_commune_code",
        "as_of",
        "household_code",
        "states",
        "category",
        "commune_code",
        "enrollments",
    ];

    fn cells(&self) -> Vec<String> {
        let summary = self.sample.summary.clone().unwrap_or_default();
        let h = self.household;
        let data = h.versions.last().and_then(|v| v.data.clone()).unwrap_or_default();
        vec![
            self.sample.inspection_id.to_string(),
            summary.number.to_string(),
            summary.commune_code,
            summary.as_of,
            h.household_code.clone(),
            h.versions.len().to_string(),
            en(data.category().as_str_name(), "CATEGORY_"),
            data.commune_code,
            // OPERATOR:PHONE:START:END
            joined(&h.enrollments, |e| format!("{}:{}:{}:{}", e.operator, e.phone_number, e.start_date, e.end_date)),
        ]
    }
}

/// One figure of a month's statistics: `stats show` prints a row per figure (the views side
/// by side would need a column per category and operator).
pub(crate) struct Figure {
    period: String,
    unit_code: String,
    /// `category`, `operator` or `discrepancies`.
    view: &'static str,
    /// The category (`POOR`, or `TOTAL` for all), the operator (or `TOTAL`).
    key: String,
    /// The field's name (`households`, `amount_claimed`, …) or, for discrepancies, the code.
    measure: String,
    value: String,
}

impl Row for Figure {
    const COLUMNS: &'static [&'static str] = &["period", "unit_code", "view", "key", "measure", "value"];

    fn cells(&self) -> Vec<String> {
        vec![
            self.period.clone(),
            self.unit_code.clone(),
            self.view.to_owned(),
            self.key.clone(),
            self.measure.clone(),
            self.value.clone(),
        ]
    }
}

/// Every figure of `s`, by category, then by operator, then the discrepancies per operator.
pub(crate) fn figures(s: &proto::ProgrammeStatistics) -> Vec<Figure> {
    let mut out = Vec::new();
    let mut add = |view: &'static str, key: &str, measure: &str, value: String| {
        out.push(Figure {
            period: s.period.clone(),
            unit_code: s.unit_code.clone(),
            view,
            key: key.to_owned(),
            measure: measure.to_owned(),
            value,
        });
    };
    for c in &s.by_category {
        let key = match en(c.category().as_str_name(), "CATEGORY_") {
            all if all.is_empty() => "TOTAL".to_owned(),
            category => category,
        };
        for (measure, value) in [
            ("households", c.households),
            ("eligible", c.eligible),
            ("enrolled", c.enrolled),
            ("devices_allocated", c.devices_allocated),
            ("devices_handed_over", c.devices_handed_over),
            ("households_before", c.households_before),
            ("eligible_before", c.eligible_before),
            ("enrolled_before", c.enrolled_before),
        ] {
            add("category", &key, measure, value.to_string());
        }
    }
    for o in &s.by_operator {
        let key = if o.operator.is_empty() { "TOTAL" } else { o.operator.as_str() };
        for (measure, value) in [
            ("enrolled", o.enrolled),
            ("subscribers_claimed", o.subscribers_claimed),
            ("amount_claimed", o.amount_claimed),
            ("subscribers_confirmed", o.subscribers_confirmed),
            ("amount_confirmed", o.amount_confirmed),
            ("enrolled_before", o.enrolled_before),
            ("subscribers_claimed_before", o.subscribers_claimed_before),
            ("amount_claimed_before", o.amount_claimed_before),
            ("subscribers_confirmed_before", o.subscribers_confirmed_before),
            ("amount_confirmed_before", o.amount_confirmed_before),
        ] {
            add("operator", key, measure, value.to_string());
        }
        add("operator", key, "list_status", en(o.list_status().as_str_name(), "RECONCILIATION_STATUS_"));
    }
    for o in &s.by_operator {
        let key = if o.operator.is_empty() { "TOTAL" } else { o.operator.as_str() };
        for d in &o.discrepancies {
            add("discrepancies", key, &en(d.code().as_str_name(), "DISCREPANCY_CODE_"), d.lines.to_string());
        }
    }
    out
}

impl Row for proto::Member {
    const COLUMNS: &'static [&'static str] = &[
        "code",
        "display_name",
        "role",
        "unit_code",
        "status",
        "status_reason",
        "certificates",
        "created_at",
        "updated_at",
    ];

    fn cells(&self) -> Vec<String> {
        vec![
            self.code.clone(),
            self.display_name.clone(),
            en(self.role().as_str_name(), "ROLE_"),
            self.unit_code.clone(),
            en(self.status().as_str_name(), "MEMBER_STATUS_"),
            self.status_reason.clone(),
            self.certificates.len().to_string(),
            time(self.created_at.as_ref()),
            time(self.updated_at.as_ref()),
        ]
    }
}

impl Row for proto::WhoAmIResponse {
    const COLUMNS: &'static [&'static str] =
        &["code", "display_name", "role", "unit_code", "status", "certificate_fingerprint", "request_id"];

    fn cells(&self) -> Vec<String> {
        let m = self.member.clone().unwrap_or_default();
        vec![
            m.code.clone(),
            m.display_name.clone(),
            en(m.role().as_str_name(), "ROLE_"),
            m.unit_code.clone(),
            en(m.status().as_str_name(), "MEMBER_STATUS_"),
            self.certificate_fingerprint.clone(),
            self.request_id.clone(),
        ]
    }
}

impl Row for proto::ChangeEvent {
    const COLUMNS: &'static [&'static str] = &[
        "cursor",
        "kind",
        "household_code",
        "enrollment_id",
        "effective_date",
        "category",
        "previous_category",
        "removal_reason",
        "support_ends",
        "batch_id",
        "recorded_at",
    ];

    fn cells(&self) -> Vec<String> {
        vec![
            self.cursor.clone(),
            en(self.kind().as_str_name(), "CHANGE_KIND_"),
            self.household_code.clone(),
            self.enrollment_id.clone(),
            self.effective_date.clone(),
            en(self.category().as_str_name(), "CATEGORY_"),
            en(self.previous_category().as_str_name(), "CATEGORY_"),
            en(self.removal_reason().as_str_name(), "REMOVAL_REASON_"),
            self.support_ends.clone(),
            self.batch_id.clone(),
            time(self.recorded_at.as_ref()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn width<T: Row>(item: &T) -> (usize, usize) {
        (T::COLUMNS.len(), item.cells().len())
    }

    /// A row has exactly a value per column, every type.
    #[test]
    fn rows_fill_their_columns() {
        let sample = proto::Sample { households: vec![Default::default()], ..Default::default() };
        let widths = [
            width(&proto::HouseholdVersion::default()),
            width(&proto::BatchReceipt::default()),
            width(&proto::EligibilityDecision { entitlements: vec![Default::default()], ..Default::default() }),
            width(&proto::PolicyVersion::default()),
            width(&proto::Enrollment::default()),
            width(&proto::MonthlyReconciliation::default()),
            width(&proto::ReconciledLine::default()),
            width(&proto::Allocation::default()),
            width(&proto::AllocationRecipient::default()),
            width(&proto::AuditRecord::default()),
            width(&proto::AuditCheckpoint::default()),
            width(&proto::VerifyAuditResponse::default()),
            width(&proto::PurgeExpiredResponse::default()),
            width(&proto::Inspection::default()),
            width(&SampledRow { sample: &sample, household: &sample.households[0] }),
            width(&proto::Member::default()),
            width(&proto::WhoAmIResponse::default()),
            width(&proto::ChangeEvent::default()),
        ];
        for (i, (columns, cells)) in widths.into_iter().enumerate() {
            assert_eq!(columns, cells, "row type {i}");
        }
        for figure in figures(&proto::ProgrammeStatistics {
            by_category: vec![Default::default()],
            by_operator: vec![proto::OperatorFigures { discrepancies: vec![Default::default()], ..Default::default() }],
            ..Default::default()
        }) {
            assert_eq!(width(&figure).0, width(&figure).1);
        }
    }

    /// docs/CLI.md lists the columns of every row, in order, as the code writes them.
    #[test]
    fn the_reference_lists_every_column() {
        let doc = include_str!("../../../docs/CLI.md");
        let all: [&[&str]; 19] = [
            proto::HouseholdVersion::COLUMNS,
            proto::BatchReceipt::COLUMNS,
            proto::EligibilityDecision::COLUMNS,
            proto::PolicyVersion::COLUMNS,
            proto::Enrollment::COLUMNS,
            proto::MonthlyReconciliation::COLUMNS,
            proto::ReconciledLine::COLUMNS,
            proto::Allocation::COLUMNS,
            proto::AllocationRecipient::COLUMNS,
            proto::AuditRecord::COLUMNS,
            proto::AuditCheckpoint::COLUMNS,
            proto::VerifyAuditResponse::COLUMNS,
            proto::PurgeExpiredResponse::COLUMNS,
            proto::Inspection::COLUMNS,
            SampledRow::COLUMNS,
            Figure::COLUMNS,
            proto::Member::COLUMNS,
            proto::WhoAmIResponse::COLUMNS,
            proto::ChangeEvent::COLUMNS,
        ];
        for columns in all {
            let line = format!("`{}`", columns.join(","));
            assert!(doc.contains(&line), "docs/CLI.md does not list {line}");
        }
    }

    #[test]
    fn values_read_as_in_the_csv_files() {
        assert_eq!(en("CATEGORY_NEAR_POOR", "CATEGORY_"), "NEAR_POOR");
        assert_eq!(en("CATEGORY_UNSPECIFIED", "CATEGORY_"), "");
        let v = proto::HouseholdVersion {
            household_code: "HH-1".into(),
            data: Some(proto::HouseholdData {
                category: proto::Category::Poor.into(),
                members: vec![
                    proto::HouseholdMember { citizen_id: "067080000001".into(), ..Default::default() },
                    proto::HouseholdMember { citizen_id: "067080000002".into(), ..Default::default() },
                ],
                ..Default::default()
            }),
            recorded_at: Some(Timestamp { seconds: 1_740_787_200, nanos: 0 }),
            ..Default::default()
        };
        let cells = v.cells();
        let cell = |name: &str| {
            let i = proto::HouseholdVersion::COLUMNS.iter().position(|c| *c == name).unwrap();
            cells[i].clone()
        };
        assert_eq!(cell("category"), "POOR");
        assert_eq!(cell("members"), "2");
        assert_eq!(cell("member_citizen_ids"), "067080000001;067080000002");
        assert_eq!(cell("recorded_at"), "2025-03-01T00:00:00Z");
        assert_eq!(cell("wants_device"), "false");
    }
}
