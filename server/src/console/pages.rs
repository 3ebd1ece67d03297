//! The pages. Each takes the caller the hub layer identified, asks the domain, and renders a
//! template; a refusal or a bad input becomes a page that says what was wrong, with the HTTP
//! status that matches the gRPC code the same call would get.

use std::sync::Arc;

use askama::Template;
use axum::{
    Form,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, Uri, header},
    response::{Html, IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use super::{
    Console, format,
    words::{Lang, T},
};
use crate::{
    audit::SubjectKind,
    domain::{
        DomainError,
        member::{Caller, Role},
        ports::monthly::{LineFilter, UpdateFilter},
        reconciliation::{Code, ListStatus, Scope, Summary},
    },
    transport::CallContext,
};

/// What a page's audit record says beyond its status: the reason it was refused.
#[derive(Debug, Clone)]
pub struct Detail(pub String);

/// The page for a refusal by the hub layer: no page ran, so no visitor chose a language, and
/// the page is Vietnamese.
pub(super) fn refusal(status: StatusCode, message: &str) -> Response {
    let t = T(Lang::Vi);
    let title = match status {
        StatusCode::UNAUTHORIZED => t.s("Chưa xác định được thành viên"),
        StatusCode::FORBIDDEN => t.s("Không có quyền"),
        StatusCode::NOT_FOUND => t.s("Không tìm thấy"),
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => t.s("Hệ thống tạm thời không phục vụ được"),
        StatusCode::GATEWAY_TIMEOUT => t.s("Quá thời gian chờ"),
        _ => t.s("Lỗi hệ thống"),
    };
    let page = ErrorPage {
        who: String::new(),
        t,
        back: String::new(),
        title,
        message: message.to_owned(),
        fields: Vec::new(),
    };
    let mut response = render(&page);
    *response.status_mut() = status;
    response
}

/// Lists shown on one page of a month's overview.
const LISTS_PER_PAGE: u32 = 50;

/// The name shown for the caller: the person a certificate names, and the organisation.
pub(super) fn who(caller: &Caller) -> String {
    let org = format!("{} · {}", caller.member.display_name.as_str(), caller.member.code);
    format::by(&org, caller.person.as_deref())
}

/// Who asks for a page: the call's context the hub layer made, with the member it identified,
/// and the language the browser chose. A page's handler takes it first; without a member the
/// page is refused.
pub(super) struct Visitor {
    pub(super) call: CallContext,
    pub(super) caller: Arc<Caller>,
    pub(super) lang: Lang,
    /// The page's own path and query, percent-encoded: where the header's language switch
    /// brings the browser back to.
    pub(super) back: String,
}

impl Visitor {
    /// The page's words, in the visitor's language.
    pub(super) fn t(&self) -> T {
        T(self.lang)
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Response> {
        let lang = Lang::of(&parts.headers);
        let refused = || {
            failure_in(
                lang,
                DomainError::PermissionDenied("the console is for members: present a member's certificate".into()),
            )
        };
        let call = parts.extensions.get::<CallContext>().cloned().ok_or_else(refused)?;
        let caller = call.caller.clone().ok_or_else(refused)?;
        let back = parts.uri.path_and_query().map(|pq| format::segment(pq.as_str()).to_string()).unwrap_or_default();
        Ok(Self { call, caller, lang, back })
    }
}

pub(super) fn render(page: &impl Template) -> Response {
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
    t: T,
    /// Empty: an error page offers no language switch.
    back: String,
    title: &'static str,
    message: String,
    fields: Vec<(String, String)>,
}

/// A list's page token as the console's addresses carry it (`?page=`), for naming a refused one.
pub(super) const PAGE: (&str, &str) = ("page_token", "page");

/// A refusal or a failure as a page in `lang`: the status a browser understands, the message
/// the RPC would give (an internal fault's cause stays in the log).
pub(super) fn failure_in(lang: Lang, e: DomainError) -> Response {
    let t = T(lang);
    let (status, title) = match &e {
        DomainError::Invalid(_) | DomainError::InvalidBatch { .. } | DomainError::TooLarge(_) => {
            (StatusCode::BAD_REQUEST, t.s("Yêu cầu chưa hợp lệ"))
        }
        DomainError::NotFound(_) | DomainError::OutOfScope { .. } => (StatusCode::NOT_FOUND, t.s("Không tìm thấy")),
        DomainError::PermissionDenied(_) => (StatusCode::FORBIDDEN, t.s("Không có quyền")),
        DomainError::AlreadyExists(_) | DomainError::FailedPrecondition(_) | DomainError::Aborted(_) => {
            (StatusCode::CONFLICT, t.s("Không thực hiện được"))
        }
        DomainError::Unavailable(_) | DomainError::Cancelled(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, t.s("Hệ thống tạm thời không phục vụ được"))
        }
        DomainError::Internal(cause) => {
            tracing::error!(error = %crate::ErrorChain(cause.as_ref()), "a console page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, t.s("Lỗi hệ thống"))
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
    let page = ErrorPage { who: String::new(), t, back: String::new(), title, message: e.to_string(), fields };
    let mut response = render(&page);
    *response.status_mut() = status;
    response.extensions_mut().insert(Detail(detail));
    response
}

#[derive(Template)]
#[template(path = "console/home.html")]
struct Home {
    who: String,
    t: T,
    back: String,
    organisation: String,
    role: &'static str,
    reads_reconciliation: bool,
    reads_register: bool,
    supervises: bool,
    /// Makes people's reports (ICT; a locality for its residents).
    reports_on_people: bool,
    reads_statistics: bool,
    reads_batches: bool,
    reads_devices: bool,
    reads_inspections: bool,
}

/// Names of the roles.
pub(super) fn role_name(t: T, role: Role) -> &'static str {
    match role {
        Role::Ict => t.s("Sở Thông tin và Truyền thông"),
        Role::Labour => t.s("Sở Lao động – Thương binh và Xã hội"),
        Role::Operator => t.s("Doanh nghiệp viễn thông"),
        Role::Locality => t.s("UBND huyện, thành phố"),
        Role::ProvinceCommittee => t.s("UBND tỉnh"),
        Role::Education => t.s("Sở Giáo dục và Đào tạo"),
        Role::Health => t.s("Sở Y tế"),
    }
}

pub(super) async fn home(visitor: Visitor) -> Response {
    let caller = &visitor.caller;
    let role = caller.member.role;
    render(&Home {
        who: who(caller),
        t: visitor.t(),
        back: visitor.back.clone(),
        organisation: caller.member.display_name.as_str().to_owned(),
        role: role_name(visitor.t(), role),
        reads_reconciliation: matches!(role, Role::Ict | Role::Operator),
        reads_register: matches!(role, Role::Ict | Role::Labour | Role::Locality),
        supervises: role == Role::Ict,
        reports_on_people: matches!(role, Role::Ict | Role::Locality),
        reads_statistics: role != Role::Operator,
        reads_batches: matches!(role, Role::Ict | Role::Labour),
        reads_devices: !matches!(role, Role::Operator | Role::Health),
        reads_inspections: role != Role::Operator,
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct MonthQuery {
    period: Option<String>,
    page: Option<String>,
}

/// One list in the month's overview.
struct ListRow {
    link: String,
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
    t: T,
    back: String,
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

fn status_name(t: T, s: ListStatus) -> (&'static str, &'static str) {
    match s {
        ListStatus::Receiving => (t.s("Đang nhận"), "receiving"),
        ListStatus::Reconciled => (t.s("Đã đối soát, chờ xác nhận"), "reconciled"),
        ListStatus::Confirmed => (t.s("Đã xác nhận"), "confirmed"),
        ListStatus::Rejected => (t.s("Bị từ chối"), "rejected"),
        ListStatus::Superseded => (t.s("Đã được thay thế"), "superseded"),
    }
}

/// Names of the discrepancy codes.
pub(super) fn code_label(t: T, c: Code) -> &'static str {
    match c {
        Code::NotEligible => t.s("Không thuộc diện hỗ trợ"),
        Code::EligibilityEnded => t.s("Đã hết diện hỗ trợ"),
        Code::BeforeStart => t.s("Trước ngày được hỗ trợ"),
        Code::OverCap => t.s("Vượt số thuê bao được hỗ trợ"),
        Code::NotEnrolled => t.s("Chưa đăng ký hỗ trợ"),
        Code::EnrolmentMismatch => t.s("Không khớp thông tin đăng ký"),
        Code::DuplicateWithinOperator => t.s("Trùng trong cùng doanh nghiệp"),
        Code::DuplicateAcrossOperators => t.s("Trùng giữa các doanh nghiệp"),
        Code::NonUsage => t.s("Không phát sinh sử dụng"),
        Code::UnknownSubscriber => t.s("Thuê bao không xác định"),
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
    visitor: Visitor,
    Query(query): Query<MonthQuery>,
) -> Response {
    let (caller, t) = (&visitor.caller, visitor.t());
    let period = match query.period.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => p.to_owned(),
        // Lists come after their month ends: the month before today's.
        None => format::last_month(console.clock.today()),
    };
    let filter = |period: &str| UpdateFilter { period: Some(period.to_owned()), ..Default::default() };
    let token = query.page.unwrap_or_default();
    let page = match console.reconciliation.list(caller, filter(&period), LISTS_PER_PAGE, &token).await {
        Ok(page) => page,
        Err(e) => return failure_in(visitor.lang, e.renamed(&[PAGE])),
    };
    let previous = shift(&period, -1);
    let before = match console.reconciliation.list(caller, filter(&previous), LISTS_PER_PAGE, "").await {
        Ok(page) => page.items,
        Err(e) => return failure_in(visitor.lang, e),
    };
    let count = |lists: &[Summary], code: Code| {
        format::number(current(lists).map(|s| s.figures.by_code.get(&code).copied().unwrap_or(0)).sum())
    };
    let codes = Code::ALL
        .iter()
        .map(|&c| CodeRow {
            name: c.as_str(),
            label: code_label(t, c),
            count: count(&page.items, c),
            before: count(&before, c),
        })
        .collect();
    let rows = page
        .items
        .iter()
        .map(|s| {
            let (status, status_class) = status_name(t, s.row.status);
            ListRow {
                link: list_address(&s.row.operator, &s.row.update_id),
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
                    (Some(by), Some(at)) => {
                        format!("{}, {}", format::by(by, s.row.decided_by_person.as_deref()), format::time(at))
                    }
                    _ => String::new(),
                },
            }
        })
        .collect();
    render(&MonthOverview {
        who: who(caller),
        t,
        back: visitor.back.clone(),
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

#[derive(Debug, Deserialize)]
pub(super) struct LinesQuery {
    code: Option<String>,
    commune: Option<String>,
    household: Option<String>,
    page: Option<String>,
}

/// Lines shown on one page of a list.
const LINES_PER_PAGE: u32 = 100;

struct LineRow {
    line_no: i64,
    phone_number: String,
    citizen_id: String,
    household_code: String,
    commune: String,
    amount: String,
    problems: Vec<(&'static str, &'static str, String)>,
}

#[derive(Template)]
#[template(path = "console/reconciliation_list.html")]
struct ListPage {
    who: String,
    t: T,
    back: String,
    operator: String,
    update_id: String,
    /// The list's own address (its operator and id percent-encoded).
    here: String,
    period_shown: String,
    status: &'static str,
    figures: [String; 6],
    received: String,
    decided: String,
    note: String,
    codes: Vec<(&'static str, &'static str, bool)>,
    commune: String,
    household: String,
    lines: Vec<LineRow>,
    next_page: Option<String>,
    /// ICT on a list that awaits its decision: the forms, with their token.
    decide: Option<String>,
    /// The list is confirmed: its confirmed lines can be downloaded.
    confirmed: bool,
}

/// The address of a list's page.
pub(super) fn list_address(operator: &str, update_id: &str) -> String {
    format!("/console/reconciliation/{}/{}", format::segment(operator), format::segment(update_id))
}

fn query_part(name: &str, value: &str) -> String {
    format!("{name}={}", format::segment(value))
}

/// One list: its figures, its lines with a discrepancy (filtered by code, commune or
/// household, a page at a time), and for ICT the forms to confirm or reject it.
pub(super) async fn list(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    Path((operator, update_id)): Path<(String, String)>,
    Query(query): Query<LinesQuery>,
) -> Response {
    let Visitor { call, caller, lang, .. } = &visitor;
    let (lang, t) = (*lang, visitor.t());
    let text = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let (code, commune, household) = (text(&query.code), text(&query.commune), text(&query.household));
    let code = match code.as_deref().map(Code::parse) {
        Some(Err(e)) => return failure_in(lang, DomainError::invalid("code", e)),
        Some(Ok(c)) => Some(c),
        None => None,
    };
    if let Some(h) = &household {
        call.looked_up(SubjectKind::HouseholdCode, [h.as_str()]);
    }
    let summary = match console.reconciliation.get(caller, &operator, &update_id).await {
        Ok(s) => s,
        Err(e) => return failure_in(visitor.lang, e),
    };
    let filter = LineFilter {
        code: code.map(|c| c.as_str().to_owned()),
        commune_code: commune.clone(),
        household_code: household.clone(),
        ..LineFilter::default()
    };
    let token = query.page.unwrap_or_default();
    let page = match console.reconciliation.lines(caller, &operator, &update_id, filter, LINES_PER_PAGE, &token).await {
        Ok(p) => p,
        // Named as the page's boxes are.
        Err(e) => {
            return failure_in(visitor.lang, e.renamed(&[("unit", "commune"), ("household_code", "household"), PAGE]));
        }
    };
    let here = list_address(&summary.row.operator, &summary.row.update_id);
    let next_page = page.next.map(|t| {
        let mut parts = vec![query_part("page", &t)];
        parts.extend(code.map(|c| query_part("code", c.as_str())));
        parts.extend(commune.as_deref().map(|c| query_part("commune", c)));
        parts.extend(household.as_deref().map(|h| query_part("household", h)));
        format!("{here}?{}", parts.join("&"))
    });
    let f = &summary.figures;
    let lines = page
        .items
        .iter()
        .map(|l| LineRow {
            line_no: l.line_no,
            phone_number: l.line.phone_number.clone(),
            citizen_id: l.line.subscriber_citizen_id.clone(),
            household_code: l.line.household_code.clone(),
            commune: l.commune_code.clone().unwrap_or_default(),
            amount: format::vnd(l.line.amount_claimed),
            problems: l
                .discrepancies
                .iter()
                .map(|d| (d.code.as_str(), code_label(t, d.code), t.discrepancy(d)))
                .collect(),
        })
        .collect();
    let awaiting = summary.row.status == ListStatus::Reconciled && !summary.row.stale;
    render(&ListPage {
        who: who(caller),
        t,
        back: visitor.back.clone(),
        operator: summary.row.operator.clone(),
        update_id: summary.row.update_id.clone(),
        period_shown: format::period(&summary.row.period),
        status: status_name(t, summary.row.status).0,
        figures: [
            format::number(f.lines),
            format::number(f.claims),
            format::number(f.lines_ok),
            format::vnd(f.amount_claimed),
            format::vnd(f.amount_confirmable),
            format::number(f.enrollments_not_reported),
        ],
        received: format::time(summary.row.received_at),
        decided: match (&summary.row.decided_by, summary.row.decided_at) {
            (Some(by), Some(at)) => {
                format!("{}, {}", format::by(by, summary.row.decided_by_person.as_deref()), format::time(at))
            }
            _ => String::new(),
        },
        note: summary.row.decision_note.clone().unwrap_or_default(),
        codes: Code::ALL.iter().map(|&c| (c.as_str(), code_label(t, c), Some(c) == code)).collect(),
        commune: commune.unwrap_or_default(),
        household: household.unwrap_or_default(),
        lines,
        next_page,
        decide: (awaiting && caller.member.role == Role::Ict).then(|| console.csrf.token(&caller.fingerprint)),
        confirmed: summary.row.status == ListStatus::Confirmed,
        here,
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    note: String,
}

/// A form that changes something is taken only from the console's own pages (see `csrf`).
pub(super) fn forged(
    console: &Console,
    visitor: &Visitor,
    headers: &HeaderMap,
    uri: &Uri,
    token: &str,
) -> Option<Response> {
    let caller = &visitor.caller;
    let why = if !super::csrf::same_origin(headers, uri) {
        "the form was not sent from the console's own page"
    } else if !console.csrf.check(&caller.fingerprint, token) {
        "the form's token is not this certificate's (or the page was shown more than a day ago): open the page again"
    } else {
        return None;
    };
    Some(failure_in(visitor.lang, DomainError::PermissionDenied(why.into())))
}

/// ICT confirms a list (its OK lines, or the whole list) or rejects it with a note; then the
/// list's page again.
pub(super) async fn decide(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    Path((operator, update_id, decision)): Path<(String, String, String)>,
    headers: HeaderMap,
    uri: Uri,
    Form(form): Form<DecisionForm>,
) -> Response {
    let (caller, lang) = (&visitor.caller, visitor.lang);
    if let Some(refused) = forged(&console, &visitor, &headers, &uri, &form.csrf) {
        return refused;
    }
    let decided = match decision.as_str() {
        "confirm" => {
            let scope = match form.scope.as_str() {
                "" => None,
                s => match Scope::parse(s) {
                    Ok(s) => Some(s),
                    Err(e) => return failure_in(lang, DomainError::invalid("scope", e)),
                },
            };
            console.reconciliation.confirm(caller, &operator, &update_id, scope, &form.note).await
        }
        "reject" => console.reconciliation.reject(caller, &operator, &update_id, &form.note).await,
        _ => return not_found(lang).await,
    };
    match decided {
        Ok(summary) => Redirect::to(&list_address(&summary.row.operator, &summary.row.update_id)).into_response(),
        Err(e) => failure_in(lang, e),
    }
}

/// A file to save: `body` of `content_type`, named `name` (a name a header cannot carry is
/// left to the browser).
pub(super) fn attachment(name: &str, content_type: &'static str, body: impl IntoResponse) -> Response {
    let disposition = http::HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or_else(|_| http::HeaderValue::from_static("attachment"));
    (
        [
            (header::CONTENT_TYPE, http::HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

pub(super) async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../../templates/console/console.css"))
        .into_response()
}

pub(super) async fn not_found(lang: Lang) -> Response {
    failure_in(lang, DomainError::NotFound("the console has no such page".into()))
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
