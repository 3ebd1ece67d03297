//! Device allocations: the decisions with where each stands, and one decision's progress by
//! unit (places on the list, devices and cash handed over). What a reader may see is the
//! device service's and the authorization table's (`ListAllocations`, `GetAllocation`).

use std::sync::Arc;

use askama::Template;
use axum::{
    Extension,
    extract::{Path, Query, State},
    response::Response,
};
use serde::Deserialize;

use super::{
    Console, format,
    pages::{caller, failure, render, who},
};
use crate::{domain::devices::AllocationStatus, transport::CallContext};

fn status_name(s: AllocationStatus) -> &'static str {
    match s {
        AllocationStatus::Recorded => "Đã ghi nhận quyết định",
        AllocationStatus::Proposed => "Đã lập danh sách đề xuất",
        AllocationStatus::Submitted => "Đã trình UBND tỉnh",
        AllocationStatus::Returned => "UBND tỉnh trả lại",
        AllocationStatus::Approved => "UBND tỉnh đã phê duyệt",
    }
}

/// The address of a decision's page.
fn address(number: &str) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    format!("/console/devices/{}", utf8_percent_encode(number, NON_ALPHANUMERIC))
}

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
    rows: Vec<DecisionRow>,
    next_page: Option<String>,
}

pub(super) async fn decisions(
    State(console): State<Arc<Console>>,
    Extension(call): Extension<CallContext>,
    Query(asked): Query<Asked>,
) -> Response {
    let caller = match caller(&call) {
        Ok(c) => c,
        Err(e) => return failure(e),
    };
    let page = match console.devices.list(50, asked.page.trim()).await {
        Ok(page) => page,
        Err(e) => return failure(e),
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
            status: status_name(a.row.status),
            recipients: format::number(a.row.recipients),
            approval: a.row.approval_number.clone().unwrap_or_default(),
        })
        .collect();
    render(&DecisionsPage { who: who(caller), rows, next_page: page.next })
}

struct ProgressRow {
    unit: String,
    on_list: String,
    devices: String,
    cash: String,
    waiting: String,
}

#[derive(Template)]
#[template(path = "console/device_decision.html")]
struct DecisionPage {
    who: String,
    number: String,
    date: String,
    status: &'static str,
    tablets: String,
    smartphones: String,
    cash_amount: String,
    note: String,
    recipients: String,
    approval: String,
    progress: Vec<ProgressRow>,
    amendments: usize,
}

pub(super) async fn decision(
    State(console): State<Arc<Console>>,
    Extension(call): Extension<CallContext>,
    Path(number): Path<String>,
) -> Response {
    let caller = match caller(&call) {
        Ok(c) => c,
        Err(e) => return failure(e),
    };
    let allocation = match console.devices.get(&number).await {
        Ok(a) => a,
        Err(e) => return failure(e),
    };
    let units = match console.devices.unit_table().await {
        Ok(units) => units,
        Err(e) => return failure(e),
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
    render(&DecisionPage {
        who: who(caller),
        number: a.decision_number.clone(),
        date: format::date(a.decision_date),
        status: status_name(a.status),
        tablets: format::number(a.tablets),
        smartphones: format::number(a.smartphones),
        cash_amount: format::vnd(a.cash_amount),
        note: a.note.clone(),
        recipients: format::number(a.recipients),
        approval: a.approval_number.clone().unwrap_or_default(),
        progress,
        amendments: allocation.amendments.len(),
    })
}
