//! One line of a monthly list: what the operator claimed, what the reconciliation found, and,
//! for those who may read the register, the household's states on the days that matter (the
//! month's first and last day and each discrepancy's date).

use std::sync::Arc;

use askama::Template;
use axum::{
    extract::{Path, State},
    response::Response,
};
use time::Date;

use super::{
    Console, format,
    households::{TimelineState, state},
    pages::{Visitor, code_label, failure_in, list_address, render, who},
    words::T,
};
use crate::{
    audit::SubjectKind,
    domain::{DomainError, ports::monthly::period_bounds},
    transport::authz,
};

/// The permission the register's history needs; the line's page shows it only to those who
/// have it (an operator reads its lines, not the register).
const HISTORY: &str = "/telesub.v1.HouseholdRegistry/GetHouseholdHistory";

#[derive(Template)]
#[template(path = "console/reconciliation_line.html")]
struct LinePage {
    who: String,
    t: T,
    back: String,
    operator: String,
    update_id: String,
    period_shown: String,
    list: String,
    line_no: i64,
    fields: Vec<(&'static str, String)>,
    problems: Vec<(&'static str, &'static str, String, String)>,
    /// The days that matter, each with why.
    days: Vec<(String, String)>,
    /// The household's states, newest first, each with the days that matter it covers; `None`
    /// when the member may not read the register.
    history: Option<Vec<(TimelineState, Vec<String>)>>,
}

pub(super) async fn line(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    Path((operator, update_id, line_no)): Path<(String, String, String)>,
) -> Response {
    let Visitor { call, caller, lang, .. } = &visitor;
    let (lang, t) = (*lang, visitor.t());
    let Ok(line_no) = line_no.parse::<i64>() else {
        return failure_in(lang, DomainError::invalid("line_no", format!("{line_no:?} is not a line number")));
    };
    let summary = match console.reconciliation.get(caller, &operator, &update_id).await {
        Ok(s) => s,
        Err(e) => return failure_in(lang, e),
    };
    let l = match console.reconciliation.line(caller, &operator, &update_id, line_no).await {
        Ok(l) => l,
        Err(e) => return failure_in(lang, e),
    };
    let row = &summary.row;
    let mut days: Vec<(Date, String)> = Vec::new();
    if let Some((first, next)) = period_bounds(&row.period) {
        days.push((first, t.s("ngày đầu tháng").to_owned()));
        days.push((next.previous_day().unwrap_or(first), t.s("ngày cuối tháng").to_owned()));
    }
    for d in &l.discrepancies {
        if let Some(on) =
            d.date.as_deref().and_then(|s| Date::parse(s, &time::format_description::well_known::Iso8601::DATE).ok())
        {
            days.push((on, format!("{} ({})", code_label(t, d.code), d.code.as_str())));
        }
    }
    days.sort_by_key(|(on, _)| *on);
    let may_read_register = authz::rule_for(HISTORY).is_some_and(|rule| rule.access.allows(caller.member.role));
    let history = if may_read_register && !l.line.household_code.is_empty() {
        call.looked_up(SubjectKind::HouseholdCode, [l.line.household_code.as_str()]);
        match console.registry.history(caller, &l.line.household_code).await {
            Ok(views) => Some(
                views
                    .iter()
                    .rev()
                    .map(|v| {
                        let covers = days
                            .iter()
                            .filter(|(on, _)| v.valid_from <= *on && v.valid_to.is_none_or(|to| *on < to))
                            .map(|(on, _)| format::date(*on))
                            .collect();
                        (state(t, v), covers)
                    })
                    .collect(),
            ),
            // Not on the register (an unknown subscriber's line), or outside a locality's unit.
            Err(DomainError::NotFound(_) | DomainError::PermissionDenied(_)) => Some(Vec::new()),
            Err(e) => return failure_in(lang, e),
        }
    } else {
        None
    };
    let text = |b: bool| if b { t.s("có") } else { t.s("không") }.to_owned();
    let fields = vec![
        (t.s("Số thuê bao"), l.line.phone_number.clone()),
        (t.s("CCCD của chủ thuê bao"), l.line.subscriber_citizen_id.clone()),
        (t.s("Mã hộ"), l.line.household_code.clone()),
        (t.s("Mã xã"), l.commune_code.clone().unwrap_or_default()),
        (t.s("Mã đăng ký hỗ trợ"), l.line.enrollment_id.map(|id| id.to_string()).unwrap_or_default()),
        (t.s("Dịch vụ"), l.line.service.as_str().to_owned()),
        (t.s("Gói cước"), l.line.package_code.clone()),
        (t.s("Giá cước"), format::vnd(l.line.tariff)),
        (t.s("Số ngày sử dụng dịch vụ"), format::number(l.line.days_of_service)),
        (t.s("Có phát sinh sử dụng"), text(l.line.used)),
        (t.s("Số tháng liền không sử dụng"), format::number(l.idle_months)),
        (t.s("Số tiền đề nghị"), format::vnd(l.line.amount_claimed)),
    ];
    render(&LinePage {
        who: who(caller),
        t,
        back: visitor.back.clone(),
        operator: row.operator.clone(),
        update_id: row.update_id.clone(),
        period_shown: format::period(&row.period),
        list: list_address(&row.operator, &row.update_id),
        line_no,
        fields,
        problems: l
            .discrepancies
            .iter()
            .map(|d| {
                let allowed = d.allowed_amount.map(format::vnd).unwrap_or_default();
                (d.code.as_str(), code_label(t, d.code), t.discrepancy(d), allowed)
            })
            .collect(),
        days: days.into_iter().map(|(on, why)| (format::date(on), why)).collect(),
        history,
    })
}
