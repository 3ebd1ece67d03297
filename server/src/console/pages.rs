//! The pages. Each takes the caller the hub layer identified, asks the domain, and renders a
//! template; a refusal or a bad input becomes a page that says what was wrong, with the HTTP
//! status that matches the gRPC code the same call would get.

use std::sync::Arc;

use askama::Template;
use axum::{
    Extension,
    extract::{Query, State},
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use serde::Deserialize;
use time::Duration;

use super::{Console, format};
use crate::{
    domain::{
        DomainError,
        member::{Caller, Role},
        ports::monthly::UpdateFilter,
        reconciliation::{Code, ListStatus, Summary},
    },
    transport::CallContext,
};

/// What a page's audit record says beyond its status: the reason it was refused.
#[derive(Debug, Clone)]
pub struct Detail(pub String);

/// The page for a refusal by the hub layer.
pub(super) fn refusal(status: StatusCode, message: &str) -> Response {
    let title = match status {
        StatusCode::UNAUTHORIZED => "Chưa xác định được thành viên",
        StatusCode::FORBIDDEN => "Không có quyền",
        StatusCode::NOT_FOUND => "Không tìm thấy",
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => "Hệ thống tạm thời không phục vụ được",
        StatusCode::GATEWAY_TIMEOUT => "Quá thời gian chờ",
        _ => "Lỗi hệ thống",
    };
    let mut response =
        render(&ErrorPage { who: String::new(), title, message: message.to_owned(), fields: Vec::new() });
    *response.status_mut() = status;
    response
}

/// Lists shown on one page of a month's overview.
const LISTS_PER_PAGE: u32 = 50;

/// The name shown for the caller: the person a certificate names, else the organisation.
fn who(caller: &Caller) -> String {
    format!("{} · {}", caller.member.display_name.as_str(), caller.member.code)
}

fn caller(call: &CallContext) -> Result<&Caller, DomainError> {
    call.caller.as_deref().ok_or_else(|| {
        DomainError::PermissionDenied("the console is for members: present a member's certificate".into())
    })
}

fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a console page did not render");
            let mut response = (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
            response.extensions_mut().insert(Detail("the page did not render".into()));
            response
        }
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    who: String,
    title: &'static str,
    message: String,
    fields: Vec<(String, String)>,
}

/// A refusal or a failure as a page: the status a browser understands, the message the RPC
/// would give (an internal fault's cause stays in the log).
pub(super) fn failure(e: DomainError) -> Response {
    let (status, title) = match &e {
        DomainError::Invalid(_) | DomainError::InvalidBatch { .. } | DomainError::TooLarge(_) => {
            (StatusCode::BAD_REQUEST, "Yêu cầu chưa hợp lệ")
        }
        DomainError::NotFound(_) | DomainError::OutOfScope { .. } => (StatusCode::NOT_FOUND, "Không tìm thấy"),
        DomainError::PermissionDenied(_) => (StatusCode::FORBIDDEN, "Không có quyền"),
        DomainError::AlreadyExists(_) | DomainError::FailedPrecondition(_) | DomainError::Aborted(_) => {
            (StatusCode::CONFLICT, "Không thực hiện được")
        }
        DomainError::Unavailable(_) | DomainError::Cancelled(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "Hệ thống tạm thời không phục vụ được")
        }
        DomainError::Internal(cause) => {
            tracing::error!(error = %crate::ErrorChain(cause.as_ref()), "a console page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "Lỗi hệ thống")
        }
    };
    let fields = match &e {
        DomainError::Invalid(v) | DomainError::InvalidBatch { violations: v, .. } => {
            v.iter().map(|f| (f.field.clone(), f.description.clone())).collect()
        }
        _ => Vec::new(),
    };
    let detail = match &e {
        DomainError::OutOfScope { reason, .. } => reason.clone(),
        other => other.to_string(),
    };
    let page = ErrorPage { who: String::new(), title, message: e.to_string(), fields };
    let mut response = render(&page);
    *response.status_mut() = status;
    response.extensions_mut().insert(Detail(detail));
    response
}

#[derive(Template)]
#[template(path = "console/home.html")]
struct Home {
    who: String,
    organisation: String,
    role: &'static str,
    reads_reconciliation: bool,
}

/// Vietnamese names of the roles.
fn role_name(role: Role) -> &'static str {
    match role {
        Role::Ict => "Sở Thông tin và Truyền thông",
        Role::Labour => "Sở Lao động – Thương binh và Xã hội",
        Role::Operator => "Doanh nghiệp viễn thông",
        Role::Locality => "UBND huyện, thành phố",
        Role::ProvinceCommittee => "UBND tỉnh",
        Role::Education => "Sở Giáo dục và Đào tạo",
        Role::Health => "Sở Y tế",
    }
}

pub(super) async fn home(Extension(call): Extension<CallContext>) -> Response {
    let caller = match caller(&call) {
        Ok(c) => c,
        Err(e) => return failure(e),
    };
    let role = caller.member.role;
    render(&Home {
        who: who(caller),
        organisation: caller.member.display_name.as_str().to_owned(),
        role: role_name(role),
        reads_reconciliation: matches!(role, Role::Ict | Role::Operator),
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct MonthQuery {
    period: Option<String>,
    page: Option<String>,
}

/// One list in the month's overview.
struct ListRow {
    operator: String,
    update_id: String,
    status: &'static str,
    status_class: &'static str,
    lines: String,
    claims: String,
    amount_claimed: String,
    amount_confirmable: String,
    received: String,
    decided: String,
}

struct CodeRow {
    name: &'static str,
    label: &'static str,
    count: String,
    before: String,
}

#[derive(Template)]
#[template(path = "console/reconciliation.html")]
struct MonthOverview {
    who: String,
    period: String,
    period_shown: String,
    previous: String,
    previous_shown: String,
    next_month: String,
    rows: Vec<ListRow>,
    totals: [String; 4],
    totals_before: [String; 4],
    codes: Vec<CodeRow>,
    next_page: Option<String>,
}

fn status_name(s: ListStatus) -> (&'static str, &'static str) {
    match s {
        ListStatus::Receiving => ("Đang nhận", "receiving"),
        ListStatus::Reconciled => ("Đã đối soát, chờ xác nhận", "reconciled"),
        ListStatus::Confirmed => ("Đã xác nhận", "confirmed"),
        ListStatus::Rejected => ("Bị từ chối", "rejected"),
        ListStatus::Superseded => ("Đã được thay thế", "superseded"),
    }
}

/// Vietnamese names of the discrepancy codes.
fn code_label(c: Code) -> &'static str {
    match c {
        Code::NotEligible => "Không thuộc diện hỗ trợ",
        Code::EligibilityEnded => "Đã hết diện hỗ trợ",
        Code::BeforeStart => "Trước ngày được hỗ trợ",
        Code::OverCap => "Vượt số thuê bao được hỗ trợ",
        Code::NotEnrolled => "Chưa đăng ký hỗ trợ",
        Code::EnrolmentMismatch => "Không khớp thông tin đăng ký",
        Code::DuplicateWithinOperator => "Trùng trong cùng doanh nghiệp",
        Code::DuplicateAcrossOperators => "Trùng giữa các doanh nghiệp",
        Code::NonUsage => "Không phát sinh sử dụng",
        Code::UnknownSubscriber => "Thuê bao không xác định",
    }
}

/// The lists that count for a month: every one but those a later list replaced.
fn current(lists: &[Summary]) -> impl Iterator<Item = &Summary> {
    lists.iter().filter(|s| s.row.status != ListStatus::Superseded)
}

fn totals<'a>(lists: impl Iterator<Item = &'a Summary>) -> [String; 4] {
    let (mut lines, mut claims, mut claimed, mut confirmable) = (0, 0, 0, 0);
    for s in lists {
        lines += s.figures.lines;
        claims += s.figures.claims;
        claimed += s.figures.amount_claimed;
        confirmable += s.figures.amount_confirmable;
    }
    [format::number(lines), format::number(claims), format::vnd(claimed), format::vnd(confirmable)]
}

/// `YYYY-MM` of the month `months` after `period` (before it when negative); `period` is valid.
fn shift(period: &str, months: i32) -> String {
    let (y, m) = period.split_once('-').expect("a checked period");
    let index =
        y.parse::<i32>().expect("a checked year") * 12 + m.parse::<i32>().expect("a checked month") - 1 + months;
    format!("{:04}-{:02}", index.div_euclid(12), index.rem_euclid(12) + 1)
}

/// A month's lists by operator, with their figures and the month before's.
pub(super) async fn reconciliation(
    State(console): State<Arc<Console>>,
    Extension(call): Extension<CallContext>,
    Query(query): Query<MonthQuery>,
) -> Response {
    let caller = match caller(&call) {
        Ok(c) => c,
        Err(e) => return failure(e),
    };
    let period = match query.period.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => p.to_owned(),
        // Lists come after their month ends: the month before today's.
        None => {
            let today = console.clock.today();
            let last_month = today.replace_day(1).expect("a first day") - Duration::days(1);
            format!("{:04}-{:02}", last_month.year(), u8::from(last_month.month()))
        }
    };
    let filter = |period: &str| UpdateFilter { period: Some(period.to_owned()), ..Default::default() };
    let token = query.page.unwrap_or_default();
    let page = match console.reconciliation.list(caller, filter(&period), LISTS_PER_PAGE, &token).await {
        Ok(page) => page,
        Err(e) => return failure(e),
    };
    let previous = shift(&period, -1);
    let before = match console.reconciliation.list(caller, filter(&previous), LISTS_PER_PAGE, "").await {
        Ok(page) => page.items,
        Err(e) => return failure(e),
    };
    let count = |lists: &[Summary], code: Code| {
        format::number(current(lists).map(|s| s.figures.by_code.get(&code).copied().unwrap_or(0)).sum())
    };
    let codes = Code::ALL
        .iter()
        .map(|&c| CodeRow {
            name: c.as_str(),
            label: code_label(c),
            count: count(&page.items, c),
            before: count(&before, c),
        })
        .collect();
    let rows = page
        .items
        .iter()
        .map(|s| {
            let (status, status_class) = status_name(s.row.status);
            ListRow {
                operator: s.row.operator.clone(),
                update_id: s.row.update_id.clone(),
                status,
                status_class,
                lines: format::number(s.figures.lines),
                claims: format::number(s.figures.claims),
                amount_claimed: format::vnd(s.figures.amount_claimed),
                amount_confirmable: format::vnd(s.figures.amount_confirmable),
                received: format::time(s.row.received_at),
                decided: match (&s.row.decided_by, s.row.decided_at) {
                    (Some(by), Some(at)) => format!("{by}, {}", format::time(at)),
                    _ => String::new(),
                },
            }
        })
        .collect();
    render(&MonthOverview {
        who: who(caller),
        period_shown: format::period(&period),
        previous_shown: format::period(&previous),
        next_month: shift(&period, 1),
        totals: totals(current(&page.items)),
        totals_before: totals(current(&before)),
        rows,
        codes,
        // The token is the hub's own (`r` and a number); the period was checked by the service.
        next_page: page.next.map(|t| format!("/console/reconciliation?period={period}&page={t}")),
        previous,
        period,
    })
}

pub(super) async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../../templates/console/console.css"))
        .into_response()
}

pub(super) async fn not_found() -> Response {
    failure(DomainError::NotFound("the console has no such page".into()))
}

#[cfg(test)]
mod tests {
    use super::shift;

    #[test]
    fn months_shift_across_years() {
        assert_eq!(shift("2025-03", -1), "2025-02");
        assert_eq!(shift("2025-01", -1), "2024-12");
        assert_eq!(shift("2024-12", 1), "2025-01");
    }
}
