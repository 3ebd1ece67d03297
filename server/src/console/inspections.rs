//! Inspections: the list, and one inspection with its team, subjects and findings. ICT records
//! them; the coordinating departments, the committee and localities (those that concern their
//! unit) read them, as the inspection service says.

use std::sync::Arc;

use askama::Template;
use axum::{
    extract::{Path, Query, State},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use super::{
    Console, format,
    pages::{PAGE, Visitor, failure_in, forged, render, who},
    words::T,
};
use crate::domain::{
    DomainError,
    inspections::{Basis, FindingInput, FindingStatus, InspectionInput, InspectionStatus, Severity, TeamMember},
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
    /// ICT: the token of the form that opens an inspection.
    forms: Option<String>,
}

pub(super) async fn inspections(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    Query(asked): Query<Asked>,
) -> Response {
    let (caller, t) = (&visitor.caller, visitor.t());
    let page = match console.inspections.list(caller, None, 50, asked.page.trim()).await {
        Ok(page) => page,
        Err(e) => return failure_in(visitor.lang, e.renamed(&[PAGE])),
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
    let forms =
        (caller.member.role == crate::domain::member::Role::Ict).then(|| console.csrf.token(&caller.fingerprint));
    render(&InspectionsPage { who: who(caller), t, back: visitor.back.clone(), rows, next_page: page.next, forms })
}

struct FindingRow {
    number: i64,
    /// Not yet resolved: its progress can be noted.
    open: bool,
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
    /// ICT on an open inspection: the forms' token.
    forms: Option<String>,
    /// The inspection's subjects, for a finding's form.
    subject_codes: Vec<String>,
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
                open: f.status != FindingStatus::Resolved,
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
        forms: (caller.member.role == crate::domain::member::Role::Ict && i.row.status == InspectionStatus::Open)
            .then(|| console.csrf.token(&caller.fingerprint)),
        subject_codes: i.subject_units.iter().chain(&i.subject_operators).cloned().collect(),
    })
}

/// What DoICT's inspection forms send (each form its own fields).
#[derive(Debug, Default, Deserialize)]
pub(super) struct InspectionForm {
    #[serde(default)]
    csrf: String,
    // Opening an inspection.
    #[serde(default)]
    title: String,
    #[serde(default)]
    basis: String,
    #[serde(default)]
    requested_by: String,
    #[serde(default)]
    subject_units: String,
    #[serde(default)]
    subject_operators: String,
    /// One member of the team per line: name; organisation; role (the role may be left out).
    #[serde(default)]
    team: String,
    #[serde(default)]
    starts_on: String,
    #[serde(default)]
    ends_on: String,
    #[serde(default)]
    note: String,
    // A finding.
    #[serde(default)]
    severity: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    evidence_reference: String,
    #[serde(default)]
    required_action: String,
    #[serde(default)]
    due_on: String,
    // A finding's progress.
    #[serde(default)]
    status: String,
    // Closing.
    #[serde(default)]
    conclusion: String,
}

/// Codes separated by commas or spaces.
fn codes(text: &str) -> Vec<String> {
    text.split([',', ' ', ';', '\n']).map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect()
}

/// A value of a name enum chosen in a form, or `None` (the domain names the field) when empty.
fn chosen<E>(field: &str, text: &str, parse: fn(&str) -> Result<E, String>) -> Result<Option<E>, DomainError> {
    match text.trim() {
        "" => Ok(None),
        t => parse(t).map(Some).map_err(|e| DomainError::invalid(field, e)),
    }
}

/// DoICT opens an inspection; then its page.
pub(super) async fn create(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    axum::Form(form): axum::Form<InspectionForm>,
) -> Response {
    if let Some(refused) = forged(&console, &visitor, &headers, &uri, &form.csrf) {
        return refused;
    }
    let basis = match chosen("basis", &form.basis, Basis::parse) {
        Ok(b) => b,
        Err(e) => return failure_in(visitor.lang, e),
    };
    let mut team = Vec::new();
    for (i, line) in form.team.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate() {
        let mut parts = line.split(';').map(str::trim);
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(name), Some(organisation), role, None) => team.push(TeamMember {
                name: name.to_owned(),
                organisation: organisation.to_owned(),
                role: role.unwrap_or_default().to_owned(),
            }),
            _ => {
                let why = format!("line {}: {line:?} is not NAME; ORGANISATION[; ROLE]", i + 1);
                return failure_in(visitor.lang, DomainError::invalid("team", why));
            }
        }
    }
    let input = InspectionInput {
        title: form.title,
        basis,
        requested_by: form.requested_by,
        subject_units: codes(&form.subject_units),
        subject_operators: codes(&form.subject_operators),
        team,
        starts_on: form.starts_on,
        ends_on: form.ends_on,
        note: form.note,
    };
    match console.inspections.create(&visitor.caller, &input).await {
        Ok(i) => Redirect::to(&format!("/console/inspections/{}", i.row.id)).into_response(),
        Err(e) => failure_in(visitor.lang, e),
    }
}

/// DoICT's steps on an open inspection: `findings` (a finding), `findings/N` (a finding's
/// progress), `close` (with the conclusion); then the inspection's page.
pub(super) async fn step(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    Path(path): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    axum::Form(form): axum::Form<InspectionForm>,
) -> Response {
    if let Some(refused) = forged(&console, &visitor, &headers, &uri, &form.csrf) {
        return refused;
    }
    let (id, step) = path;
    let Ok(id) = id.parse::<i64>() else {
        return failure_in(
            visitor.lang,
            DomainError::invalid("inspection_id", format!("{id:?} is not an inspection's number")),
        );
    };
    let caller = &visitor.caller;
    let done = match step.as_str() {
        "findings" => {
            let severity = match chosen("severity", &form.severity, Severity::parse) {
                Ok(s) => s,
                Err(e) => return failure_in(visitor.lang, e),
            };
            let input = FindingInput {
                severity,
                subject: form.subject,
                description: form.description,
                evidence_reference: form.evidence_reference,
                required_action: form.required_action,
                due_on: form.due_on,
            };
            console.inspections.record_finding(caller, id, &input).await.map(|_| ())
        }
        "close" => console.inspections.close(caller, id, &form.conclusion).await.map(|_| ()),
        _ => return failure_in(visitor.lang, DomainError::NotFound("the console has no such page".into())),
    };
    match done {
        Ok(()) => Redirect::to(&format!("/console/inspections/{id}")).into_response(),
        Err(e) => failure_in(visitor.lang, e),
    }
}

/// DoICT notes a finding's progress; then the inspection's page.
pub(super) async fn finding_progress(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    Path((id, number)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    axum::Form(form): axum::Form<InspectionForm>,
) -> Response {
    if let Some(refused) = forged(&console, &visitor, &headers, &uri, &form.csrf) {
        return refused;
    }
    let (Ok(id), Ok(number)) = (id.parse::<i64>(), number.parse::<i64>()) else {
        return failure_in(visitor.lang, DomainError::invalid("finding", format!("{id}/{number} is not a finding")));
    };
    let status = match chosen("status", &form.status, FindingStatus::parse) {
        Ok(s) => s,
        Err(e) => return failure_in(visitor.lang, e),
    };
    match console.inspections.update_finding(&visitor.caller, id, number, status, &form.note).await {
        Ok(_) => Redirect::to(&format!("/console/inspections/{id}")).into_response(),
        Err(e) => failure_in(visitor.lang, e),
    }
}
