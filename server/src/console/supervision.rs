//! Supervision for DoICT: who looked up a citizen or a household (or what a member did), from
//! the audit trail, a page at a time; and the trail's own check. The same service answers the
//! RPCs `QueryAudit` and `VerifyAudit`.

use std::sync::Arc;

use askama::Template;
use axum::{
    extract::{Query, State},
    response::Response,
};
use serde::Deserialize;

use super::{
    Console, format,
    pages::{PAGE, Visitor, failure_in, render, who},
    words::T,
};
use crate::domain::supervision::AuditQuery;

/// Records shown on one page.
const RECORDS_PER_PAGE: u32 = 50;

#[derive(Debug, Deserialize)]
pub(super) struct Filter {
    #[serde(default)]
    citizen: String,
    #[serde(default)]
    household: String,
    #[serde(default)]
    member: String,
    #[serde(default)]
    page: String,
}

/// An audit record as the pages show it: when, who, which call, its outcome.
pub(super) struct Row {
    pub(super) at: String,
    pub(super) member: String,
    pub(super) what: String,
    pub(super) outcome: String,
    pub(super) request_id: String,
}

impl From<&crate::audit::AuditRecord> for Row {
    fn from(r: &crate::audit::AuditRecord) -> Self {
        Row {
            at: format::time(r.entry.at),
            member: match &r.entry.org_code {
                Some(org) => format::by(org, r.entry.person.as_deref()),
                None => "—".to_owned(),
            },
            what: r.entry.method.clone(),
            outcome: r.entry.outcome.clone(),
            request_id: r.entry.request_id.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    who: String,
    t: T,
    back: String,
    citizen: String,
    household: String,
    member: String,
    rows: Option<Vec<Row>>,
    next_page: Option<String>,
}

/// Who looked up what: records filtered by a citizen ID, a household code or a member.
pub(super) async fn lookups(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    Query(filter): Query<Filter>,
) -> Response {
    let caller = &visitor.caller;
    let (citizen, household, member) =
        (filter.citizen.trim().to_owned(), filter.household.trim().to_owned(), filter.member.trim().to_owned());
    let mut page = AuditPage {
        who: who(caller),
        t: visitor.t(),
        back: visitor.back.clone(),
        citizen: citizen.clone(),
        household: household.clone(),
        member: member.clone(),
        rows: None,
        next_page: None,
    };
    if citizen.is_empty() && household.is_empty() && member.is_empty() {
        return render(&page);
    }
    let query = AuditQuery {
        caller: member.clone(),
        citizen_id: citizen.clone(),
        household_code: household.clone(),
        ..AuditQuery::default()
    };
    let found = match console.supervision.query(&query, RECORDS_PER_PAGE, filter.page.trim()).await {
        Ok(found) => found,
        Err(e) => {
            let boxes = [("caller", "member"), ("citizen_id", "citizen"), ("household_code", "household"), PAGE];
            return failure_in(visitor.lang, e.renamed(&boxes));
        }
    };
    page.rows = Some(found.items.iter().map(Row::from).collect());
    page.next_page = found.next;
    render(&page)
}

#[derive(Template)]
#[template(path = "console/audit_check.html")]
struct CheckPage {
    who: String,
    t: T,
    back: String,
    intact: bool,
    records: String,
    last_seq: i64,
    last_hash: String,
    checkpoints: usize,
    problem: String,
    guards_missing: Vec<String>,
}

/// The trail checked whole: the chain, the tree's checkpoints, the database's guards.
pub(super) async fn check(State(console): State<Arc<Console>>, visitor: Visitor) -> Response {
    let caller = &visitor.caller;
    let report = match console.supervision.verify(console.verifier.clone()).await {
        Ok(report) => report,
        Err(e) => return failure_in(visitor.lang, e),
    };
    render(&CheckPage {
        who: who(caller),
        t: visitor.t(),
        back: visitor.back.clone(),
        intact: report.intact(),
        records: format::number(report.records as i64),
        last_seq: report.last_seq,
        last_hash: report.last_hash.clone(),
        checkpoints: report.checkpoints,
        problem: report.first_break.as_ref().map(ToString::to_string).unwrap_or_default(),
        guards_missing: report.guards_missing.clone(),
    })
}
