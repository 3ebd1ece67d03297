//! Device allocations: the decisions with where each stands, and one decision's progress by
//! unit (places on the list, devices and cash handed over). What a reader may see is the
//! device service's and the authorization table's (`ListAllocations`, `GetAllocation`).

use std::sync::Arc;

use askama::Template;
use axum::{
    Form,
    extract::{Path, Query, State},
    http::{HeaderMap, Uri},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use super::{
    Console, format,
    pages::{PAGE, Visitor, failure_in, forged, render, who},
    words::T,
};
use crate::{
    audit::SubjectKind,
    domain::{
        DomainError,
        devices::{AllocationStatus, DeviceType, HandoverInput, HandoverKind},
        member::Role,
    },
};

fn status_name(t: T, s: AllocationStatus) -> &'static str {
    match s {
        AllocationStatus::Recorded => t.s("Đã ghi nhận quyết định"),
        AllocationStatus::Proposed => t.s("Đã lập danh sách đề xuất"),
        AllocationStatus::Submitted => t.s("Đã trình UBND tỉnh"),
        AllocationStatus::Returned => t.s("UBND tỉnh trả lại"),
        AllocationStatus::Approved => t.s("UBND tỉnh đã phê duyệt"),
    }
}

use super::device_lists::{IctForm, address, device_name, ict_step};

#[derive(Debug, Deserialize)]
pub(super) struct Asked {
    #[serde(default)]
    page: String,
}

struct DecisionRow {
    link: String,
    number: String,
    date: String,
    tablets: String,
    smartphones: String,
    status: &'static str,
    recipients: String,
    approval: String,
}

#[derive(Template)]
#[template(path = "console/devices.html")]
struct DecisionsPage {
    who: String,
    t: T,
    back: String,
    rows: Vec<DecisionRow>,
    next_page: Option<String>,
}

pub(super) async fn decisions(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    Query(asked): Query<Asked>,
) -> Response {
    let (caller, t) = (&visitor.caller, visitor.t());
    let page = match console.devices.list(50, asked.page.trim()).await {
        Ok(page) => page,
        Err(e) => return failure_in(visitor.lang, e.renamed(&[PAGE])),
    };
    let rows = page
        .items
        .iter()
        .map(|a| DecisionRow {
            link: address(&a.row.decision_number),
            number: a.row.decision_number.clone(),
            date: format::date(a.row.decision_date),
            tablets: format::number(a.row.tablets),
            smartphones: format::number(a.row.smartphones),
            status: status_name(t, a.row.status),
            recipients: format::number(a.row.recipients),
            approval: a.row.approval_number.clone().unwrap_or_default(),
        })
        .collect();
    render(&DecisionsPage { who: who(caller), t, back: visitor.back.clone(), rows, next_page: page.next })
}

struct ProgressRow {
    unit: String,
    on_list: String,
    devices: String,
    cash: String,
    waiting: String,
}

struct AmendmentRow {
    revision: i64,
    action: &'static str,
    household: String,
    device: &'static str,
    reason: String,
    by: String,
}

struct IctForms {
    token: String,
    /// The list can be drawn up (again) from the rules.
    propose: bool,
    /// The proposed (or returned) list can be amended and submitted.
    amend: bool,
}

#[derive(Template)]
#[template(path = "console/device_decision.html")]
struct DecisionPage {
    who: String,
    t: T,
    back: String,
    number: String,
    date: String,
    status: &'static str,
    tablets: String,
    smartphones: String,
    cash_amount: String,
    note: String,
    recipients: String,
    approval: String,
    /// Who approved or returned the list, and when.
    decided: String,
    progress: Vec<ProgressRow>,
    amendments: Vec<AmendmentRow>,
    /// The approved list is published.
    published: bool,
    /// ICT on a list it may still change: the forms' token and which forms.
    ict: Option<IctForms>,
    /// The page's own address, for its forms.
    here: String,
    /// The People's Committee on a submitted list: the forms' token, and the digest of the
    /// list it is shown (an approval is of that list and no other).
    committee: Option<(String, String)>,
    /// ICT or a locality on an approved list: the hand-over form's token.
    handover: Option<String>,
    today: String,
}

pub(super) async fn decision(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    Path(number): Path<String>,
) -> Response {
    let (caller, t) = (&visitor.caller, visitor.t());
    let allocation = match console.devices.get(&number).await {
        Ok(a) => a,
        Err(e) => return failure_in(visitor.lang, e),
    };
    let units = match console.devices.unit_table().await {
        Ok(units) => units,
        Err(e) => return failure_in(visitor.lang, e),
    };
    let today = console.clock.today();
    let a = &allocation.row;
    let progress = allocation
        .progress
        .iter()
        .map(|p| ProgressRow {
            unit: match units.on(&p.unit_code, today) {
                Some(u) => format!("{} ({})", u.name, p.unit_code),
                None => p.unit_code.clone(),
            },
            on_list: format::number(p.on_list),
            devices: format::number(p.devices),
            cash: format::number(p.cash),
            waiting: format::number(p.on_list - p.devices - p.cash),
        })
        .collect();
    let token = || console.csrf.token(&caller.fingerprint);
    let role = caller.member.role;
    render(&DecisionPage {
        who: who(caller),
        t,
        back: visitor.back.clone(),
        here: address(&a.decision_number),
        committee: (a.status == AllocationStatus::Submitted && role == Role::ProvinceCommittee)
            .then(|| (token(), a.list_digest.clone().unwrap_or_default())),
        handover: (a.status == AllocationStatus::Approved && matches!(role, Role::Ict | Role::Locality)).then(token),
        published: a.status == AllocationStatus::Approved,
        ict: (role == Role::Ict
            && matches!(
                a.status,
                AllocationStatus::Recorded | AllocationStatus::Proposed | AllocationStatus::Returned
            ))
        .then(|| IctForms {
            token: token(),
            propose: true,
            amend: matches!(a.status, AllocationStatus::Proposed | AllocationStatus::Returned),
        }),
        today: today.to_string(),
        number: a.decision_number.clone(),
        date: format::date(a.decision_date),
        status: status_name(t, a.status),
        tablets: format::number(a.tablets),
        smartphones: format::number(a.smartphones),
        cash_amount: format::vnd(a.cash_amount),
        note: a.note.clone(),
        recipients: format::number(a.recipients),
        approval: a.approval_number.clone().unwrap_or_default(),
        decided: match (&a.decided_by, a.decided_at) {
            (Some(by), Some(at)) => format!("{}, {}", format::by(by, a.decided_by_person.as_deref()), format::time(at)),
            _ => String::new(),
        },
        progress,
        amendments: allocation
            .amendments
            .iter()
            .map(|m| AmendmentRow {
                revision: m.revision,
                action: if m.action == "ADD" { t.s("Thêm") } else { t.s("Bớt") },
                household: m.household_code.clone(),
                device: m.device_type.as_deref().map_or("", |d| device_name(t, d)),
                reason: m.reason.clone(),
                by: format!("{}, {}", m.amended_by, format::time(m.amended_at)),
            })
            .collect(),
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct StepForm {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    committee: CommitteeForm,
    #[serde(flatten)]
    ict: IctForm,
}

#[derive(Debug, Deserialize)]
pub(super) struct CommitteeForm {
    #[serde(default)]
    approval_number: String,
    #[serde(default)]
    approved_on: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    list_digest: String,
}

/// A step on a list: DoICT's (`propose`, `amend`, `submit`) or the People's Committee's
/// (`approve` with its decision's number, `return` with a note); then the decision's page.
pub(super) async fn step(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    Path((number, step)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<StepForm>,
) -> Response {
    let caller = &visitor.caller;
    if let Some(refused) = forged(&console, &visitor, &headers, &uri, &form.csrf) {
        return refused;
    }
    let form = match step.as_str() {
        "approve" | "return" => form.committee,
        _ => return ict_step(&console, &visitor, &number, &step, form.ict).await,
    };
    let approval = (step == "approve").then_some((form.approval_number.as_str(), form.approved_on.as_str()));
    let digest = if approval.is_some() { form.list_digest.as_str() } else { "" };
    match console.devices.decide(caller, &number, approval, &form.note, digest).await {
        Ok(a) => Redirect::to(&address(&a.row.decision_number)).into_response(),
        Err(e) => failure_in(visitor.lang, e),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct HandoverForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    household_code: String,
    #[serde(default)]
    handed_over_on: String,
    #[serde(default)]
    received_by: String,
    #[serde(default)]
    device_type: String,
    #[serde(default)]
    serial_number: String,
    #[serde(default)]
    imei: String,
}

/// A device handed over to a household on the approved list (ICT, or a locality in its unit);
/// then the decision's page again.
pub(super) async fn handover(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    Path(number): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<HandoverForm>,
) -> Response {
    let Visitor { call, caller, .. } = &visitor;
    if let Some(refused) = forged(&console, &visitor, &headers, &uri, &form.csrf) {
        return refused;
    }
    call.looked_up(SubjectKind::HouseholdCode, [form.household_code.as_str()]);
    let device_type = match form.device_type.as_str() {
        "" => None,
        t => match DeviceType::parse(t) {
            Ok(t) => Some(t),
            Err(e) => return failure_in(visitor.lang, DomainError::invalid("device_type", e)),
        },
    };
    let input = HandoverInput {
        decision_number: number,
        household_code: form.household_code,
        handed_over_on: form.handed_over_on,
        received_by: form.received_by,
        kind: Some(HandoverKind::Device { device_type, serial_number: form.serial_number, imei: form.imei }),
    };
    match console.devices.handover(caller, &call.request_id, &input).await {
        Ok((row, _)) => Redirect::to(&address(&row.decision_number)).into_response(),
        Err(e) => failure_in(visitor.lang, e),
    }
}
