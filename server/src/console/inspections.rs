//! Inspections: the list, and one inspection with its team, subjects and findings. ICT records
//! them; the coordinating departments, the committee and localities (those that concern their
//! unit) read them, as the inspection service says.

use std::sync::Arc;

use askama::Template;
use axum::{
    extract::{Path, Query, State},
    response::Response,
};
use serde::Deserialize;

use super::{
    Console, format,
    pages::{Visitor, failure_in, render, who},
    words::T,
};
use crate::domain::{
    DomainError,
    inspections::{FindingStatus, InspectionStatus, Severity},
};

fn severity_name(t: T, s: Severity) -> &'static str {
    match s {
        Severity::Low => t.s("Thấp"),
        Severity::Medium => t.s("Trung bình"),
        Severity::High => t.s("Cao"),
        Severity::Critical => t.s("Nghiêm trọng"),
    }
}

fn finding_status_name(t: T, s: FindingStatus) -> &'static str {
    match s {
        FindingStatus::Open => t.s("Chưa xử lý"),
        FindingStatus::InProgress => t.s("Đang khắc phục"),
        FindingStatus::Resolved => t.s("Đã khắc phục"),
    }
}

fn status_name(t: T, s: InspectionStatus) -> &'static str {
    match s {
        InspectionStatus::Open => t.s("Đang kiểm tra"),
        InspectionStatus::Closed => t.s("Đã kết thúc"),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Asked {
    #[serde(default)]
    page: String,
}

struct InspectionRow {
    id: i64,
    title: String,
    period: String,
    subjects: String,
    status: &'static str,
}

#[derive(Template)]
#[template(path = "console/inspections.html")]
struct InspectionsPage {
    who: String,
    t: T,
    back: String,
    rows: Vec<InspectionRow>,
    next_page: Option<String>,
}

pub(super) async fn inspections(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    Query(asked): Query<Asked>,
) -> Response {
    let (caller, t) = (&visitor.caller, visitor.t());
    let page = match console.inspections.list(caller, None, 50, asked.page.trim()).await {
        Ok(page) => page,
        Err(e) => return failure_in(visitor.lang, e),
    };
    let rows = page
        .items
        .iter()
        .map(|i| InspectionRow {
            id: i.row.id,
            title: i.row.title.clone(),
            period: format!("{} – {}", format::date(i.row.starts_on), format::date(i.row.ends_on)),
            subjects: i.subject_units.iter().chain(&i.subject_operators).cloned().collect::<Vec<_>>().join(", "),
            status: status_name(t, i.row.status),
        })
        .collect();
    render(&InspectionsPage { who: who(caller), t, back: visitor.back.clone(), rows, next_page: page.next })
}

struct FindingRow {
    number: i64,
    severity: &'static str,
    subject: String,
    description: String,
    required_action: String,
    due_on: String,
    status: &'static str,
    updates: Vec<(String, &'static str, String)>,
}

#[derive(Template)]
#[template(path = "console/inspection.html")]
struct InspectionPage {
    who: String,
    t: T,
    back: String,
    id: i64,
    title: String,
    period: String,
    status: &'static str,
    subjects: String,
    team: Vec<(String, String, String)>,
    note: String,
    conclusion: String,
    findings: Vec<FindingRow>,
    samples: usize,
}

pub(super) async fn inspection(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Response {
    let (caller, t) = (&visitor.caller, visitor.t());
    let Ok(id) = id.parse::<i64>() else {
        return failure_in(
            visitor.lang,
            DomainError::invalid("inspection_id", format!("{id:?} is not an inspection's number")),
        );
    };
    let i = match console.inspections.get(caller, id).await {
        Ok(i) => i,
        Err(e) => return failure_in(visitor.lang, e),
    };
    render(&InspectionPage {
        who: who(caller),
        t,
        back: visitor.back.clone(),
        id: i.row.id,
        title: i.row.title.clone(),
        period: format!("{} – {}", format::date(i.row.starts_on), format::date(i.row.ends_on)),
        status: status_name(t, i.row.status),
        subjects: i.subject_units.iter().chain(&i.subject_operators).cloned().collect::<Vec<_>>().join(", "),
        team: i.team.iter().map(|t| (t.name.clone(), t.organisation.clone(), t.role.clone())).collect(),
        note: i.row.note.clone(),
        conclusion: i.row.conclusion.clone().unwrap_or_default(),
        findings: i
            .findings
            .iter()
            .map(|(f, updates)| FindingRow {
                number: f.number,
                severity: severity_name(t, f.severity),
                subject: f.subject.clone(),
                description: f.description.clone(),
                required_action: f.required_action.clone(),
                due_on: format::date(f.due_on),
                status: finding_status_name(t, f.status),
                updates: updates
                    .iter()
                    .map(|u| (format::time(u.updated_at), finding_status_name(t, u.status), u.note.clone()))
                    .collect(),
            })
            .collect(),
        samples: i.samples.len(),
    })
}
