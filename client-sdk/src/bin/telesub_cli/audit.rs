//! `telesub-cli audit`: the audit reader (ICT): who did what, the chain check, an export for
//! an outside auditor.

use std::path::PathBuf;

use clap::Subcommand;
use telesub_client::{Client, proto};

use crate::{
    Failure,
    show::{short, table, timestamp},
};

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// Audit records in order: who called what, when, and the outcome.
    Query {
        /// The calling organisation's code.
        #[arg(long)]
        caller: Option<String>,
        /// A method path, Service/Method, or a service (e.g. Eligibility).
        #[arg(long)]
        method: Option<String>,
        /// From this time: RFC 3339 (2025-03-01T08:00:00+07:00) or a date (the province's day).
        #[arg(long, value_parser = parse_time)]
        from: Option<prost_types::Timestamp>,
        /// Until this time (exclusive), as --from.
        #[arg(long, value_parser = parse_time)]
        until: Option<prost_types::Timestamp>,
        /// A gRPC status code name, e.g. OK or PERMISSION_DENIED.
        #[arg(long)]
        outcome: Option<String>,
        /// Calls that looked up this citizen ID (eligibility questions, searches, enrolments).
        #[arg(long)]
        citizen_id: Option<String>,
        /// Calls that looked up this household (questions, reads, enrolments, device steps).
        #[arg(long)]
        household: Option<String>,
        /// Print at most this many records.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Checks the whole hash chain on the hub; exits with status 1 when it is broken.
    Verify,
    /// Saves the records of a time range as CSV with their chain hashes.
    Export {
        #[arg(long, value_parser = parse_time)]
        from: Option<prost_types::Timestamp>,
        #[arg(long, value_parser = parse_time)]
        until: Option<prost_types::Timestamp>,
        /// Where to save the file; by default the name the hub suggests, here.
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
}

/// RFC 3339, or a date taken as the start of that day in the province (UTC+7).
fn parse_time(text: &str) -> Result<prost_types::Timestamp, String> {
    let is_date = text.len() == 10 && text.bytes().enumerate().all(|(i, b)| matches!(i, 4 | 7) == (b == b'-'));
    let full = if is_date { format!("{text}T00:00:00+07:00") } else { text.to_owned() };
    full.parse().map_err(|_| format!("{text:?} is not a time: use RFC 3339 (2025-03-01T08:00:00+07:00) or a date"))
}

pub(crate) async fn audit(client: &Client, command: AuditCommand) -> Result<(), Failure> {
    match command {
        AuditCommand::Query { caller, method, from, until, outcome, citizen_id, household, limit } => {
            let mut query = proto::QueryAuditRequest {
                caller: caller.unwrap_or_default(),
                method: method.unwrap_or_default(),
                from,
                until,
                outcome: outcome.unwrap_or_default(),
                citizen_id: citizen_id.unwrap_or_default(),
                household_code: household.unwrap_or_default(),
                page_size: 500,
                page_token: String::new(),
            };
            let mut records = Vec::new();
            loop {
                let page = client.query_audit(query.clone()).await?;
                records.extend(page.records);
                if page.next_page_token.is_empty() || records.len() >= limit {
                    break;
                }
                query.page_token = page.next_page_token;
            }
            records.truncate(limit);
            let rows = records
                .iter()
                .map(|r| {
                    vec![
                        r.seq.to_string(),
                        timestamp(r.at.as_ref()),
                        if r.caller.is_empty() { "-".to_owned() } else { r.caller.clone() },
                        short(&r.method, "/telesub.v1.").to_owned(),
                        r.outcome.clone(),
                        r.request_id.clone(),
                        r.detail.clone(),
                    ]
                })
                .collect();
            table(&["SEQ", "AT", "CALLER", "METHOD", "OUTCOME", "REQUEST ID", "DETAIL"], rows, "");
            Ok(())
        }
        AuditCommand::Verify => {
            let report = client.verify_audit().await?;
            if report.intact {
                outln!(
                    "audit trail intact: {} records, last record {}, last hash {}",
                    report.records,
                    report.last_seq,
                    report.last_hash
                );
                Ok(())
            } else {
                Err(Failure::Message(format!(
                    "the audit trail is broken at record {}: {} ({} records check before it)",
                    report.first_broken_seq, report.problem, report.records
                )))
            }
        }
        AuditCommand::Export { from, until, out } => {
            let chunks = client.export_audit(proto::ExportAuditRequest { from, until }).await?;
            crate::reports::save_file(chunks, out, "audit.csv").await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_are_rfc3339_or_the_provinces_day() {
        let day = parse_time("2025-03-01").unwrap();
        assert_eq!(day, "2025-02-28T17:00:00Z".parse().unwrap());
        assert_eq!(parse_time("2025-03-01T08:00:00+07:00").unwrap(), "2025-03-01T01:00:00Z".parse().unwrap());
        assert!(parse_time("yesterday").is_err());
    }
}
