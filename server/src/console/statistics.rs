//! The programme's figures for a month: by category and by operator, beside the month before,
//! with a chart drawn by the hub as SVG (no script). The statistics service says what a caller
//! may read (a locality its own unit) and computes every figure; this page only shows them, as
//! kept for a few minutes ([`compute_kept`](crate::domain::statistics::StatisticsService::compute_kept)), with the time they were counted.

use std::sync::Arc;

use askama::Template;
use axum::{
    extract::{Query, State},
    response::Response,
};
use serde::Deserialize;

use crate::domain::{
    household::Category,
    statistics::{DEFAULT_THRESHOLD, KEPT_FRESH, public_table},
};

use super::{
    Console, format,
    households::category_name,
    pages::{Visitor, attachment, failure_in, render, who},
    words::T,
};

#[derive(Debug, Deserialize)]
pub(super) struct FileAsked {
    #[serde(default)]
    period: String,
    #[serde(default)]
    unit: String,
    #[serde(default)]
    format: String,
}

/// The month's figures as files: the internal workbook (XLSX) or the public table (CSV), of
/// the same kept figures the page shows.
pub(super) async fn file(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    Query(asked): Query<FileAsked>,
) -> Response {
    let caller = &visitor.caller;
    let period = match asked.period.trim() {
        "" => format::last_month(console.clock.today()),
        p => p.to_owned(),
    };
    let xlsx = match asked.format.as_str() {
        "xlsx" => true,
        "csv" => false,
        other => {
            let e = crate::domain::DomainError::invalid("format", format!("{other:?}: choose xlsx or csv"));
            return failure_in(visitor.lang, e);
        }
    };
    let s = match console.statistics.compute_kept(Some(caller), &period, &asked.unit).await {
        Ok(s) => s,
        Err(e) => return failure_in(visitor.lang, e),
    };
    let unit = if s.unit_code.is_empty() { "tinh".to_owned() } else { s.unit_code.clone() };
    let (data, name, content_type) = if xlsx {
        (
            crate::export::statistics::xlsx(&s),
            format!("thong-ke-{}-{unit}.xlsx", s.period),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )
    } else {
        match crate::export::statistics::public_csv(&public_table(&s, DEFAULT_THRESHOLD), true) {
            Ok(data) => (data, format!("thong-ke-cong-khai-{}-{unit}.csv", s.period), "text/csv; charset=utf-8"),
            Err(e) => return failure_in(visitor.lang, crate::domain::DomainError::Internal(Box::new(e))),
        }
    };
    attachment(&name, content_type, data)
}

#[derive(Debug, Deserialize)]
pub(super) struct Asked {
    #[serde(default)]
    period: String,
    #[serde(default)]
    unit: String,
}

struct CategoryRow {
    name: &'static str,
    total: bool,
    cells: [String; 8],
}

struct OperatorRow {
    name: String,
    total: bool,
    cells: [String; 6],
}

/// One category's bars: eligible households and enrolled ones, as widths of the chart.
struct Bars {
    name: &'static str,
    y: i64,
    eligible: (i64, String),
    enrolled: (i64, String),
}

#[derive(Template)]
#[template(path = "console/statistics.html")]
struct StatisticsPage {
    who: String,
    t: T,
    back: String,
    period: String,
    period_shown: String,
    previous_shown: String,
    unit: String,
    unit_name: String,
    as_of: String,
    policy_version: i64,
    categories: Vec<CategoryRow>,
    operators: Vec<OperatorRow>,
    bars: Vec<Bars>,
    chart_height: i64,
    computed_at: String,
    fresh_minutes: i64,
    /// The public table (small counts hidden): its headings and rows.
    public_columns: Vec<&'static str>,
    public_rows: Vec<Vec<String>>,
    threshold: i64,
    /// The query of this month and unit, for the files' links.
    query: String,
}

/// The public table's column headings.
fn public_heading(t: T, column: &str) -> &'static str {
    match column {
        "view" => t.s("Nhóm"),
        "name" => t.s("Tên"),
        "households" => t.s("Số hộ trong danh sách"),
        "eligible" => t.s("Đủ điều kiện hỗ trợ"),
        "enrolled" => t.s("Đã đăng ký"),
        "devices_allocated" => t.s("Thiết bị được phân bổ"),
        "devices_handed_over" => t.s("Thiết bị đã bàn giao"),
        "subscribers_claimed" => t.s("Thuê bao đề nghị"),
        "amount_claimed" => t.s("Số tiền đề nghị"),
        "subscribers_confirmed" => t.s("Thuê bao được xác nhận"),
        "amount_confirmed" => t.s("Số tiền được xác nhận"),
        "enrolled_before" => t.s("Đã đăng ký tháng trước"),
        _ => "",
    }
}

/// The chart's width for the largest bar, in SVG units.
const BAR_WIDTH: i64 = 480;
/// The height of one category's pair of bars (each 16 high, as the template draws them).
const ROW_HEIGHT: i64 = 44;

pub(super) async fn statistics(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    Query(asked): Query<Asked>,
) -> Response {
    let (caller, t) = (&visitor.caller, visitor.t());
    let period = match asked.period.trim() {
        "" => format::last_month(console.clock.today()),
        p => p.to_owned(),
    };
    // Kept figures: a province's month takes seconds to count; the page says when it was.
    let s = match console.statistics.compute_kept(Some(caller), &period, &asked.unit).await {
        Ok(s) => s,
        Err(e) => return failure_in(visitor.lang, e),
    };
    let public = public_table(&s, DEFAULT_THRESHOLD);
    let public_rows = public
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(i, cell)| match (i, cell.as_str()) {
                    (0, "category") => t.s("Diện").to_owned(),
                    (0, "operator") => t.s("Doanh nghiệp").to_owned(),
                    (1, "TOTAL") => t.s("Cộng").to_owned(),
                    (1, name) => {
                        Category::parse(name).map_or_else(|_| name.to_owned(), |c| category_name(t, c).to_owned())
                    }
                    (_, n) => n.parse::<i64>().map_or_else(|_| n.to_owned(), format::number),
                })
                .collect()
        })
        .collect();
    let categories = s
        .by_category
        .iter()
        .map(|c| CategoryRow {
            name: c.category.map_or(t.s("Cộng"), |c| category_name(t, c)),
            total: c.category.is_none(),
            cells: [
                format::number(c.households),
                format::number(c.households_before),
                format::number(c.eligible),
                format::number(c.eligible_before),
                format::number(c.enrolled),
                format::number(c.enrolled_before),
                format::number(c.devices_allocated),
                format::number(c.devices_handed_over),
            ],
        })
        .collect();
    let operators = s
        .by_operator
        .iter()
        .map(|o| OperatorRow {
            name: o.operator.clone().unwrap_or_else(|| t.s("Cộng").to_owned()),
            total: o.operator.is_none(),
            cells: [
                format::number(o.enrolled),
                format::number(o.claimed),
                format::vnd(o.amount_claimed),
                format::vnd(o.amount_claimed_before),
                format::number(o.confirmed),
                format::vnd(o.amount_confirmed),
            ],
        })
        .collect();
    let shown: Vec<_> = s.by_category.iter().filter(|c| c.category.is_some()).collect();
    let largest = shown.iter().map(|c| c.eligible.max(c.enrolled)).max().unwrap_or(0).max(1);
    let width = |n: i64| n * BAR_WIDTH / largest;
    let bars = shown
        .iter()
        .enumerate()
        .map(|(i, c)| Bars {
            name: c.category.map_or("", |c| category_name(t, c)),
            y: i as i64 * ROW_HEIGHT,
            eligible: (width(c.eligible), format::number(c.eligible)),
            enrolled: (width(c.enrolled), format::number(c.enrolled)),
        })
        .collect();
    render(&StatisticsPage {
        who: who(caller),
        t,
        back: visitor.back.clone(),
        period_shown: format::period(&s.period),
        previous_shown: format::period(&s.previous_period),
        period: s.period.clone(),
        unit: s.unit_code.clone(),
        unit_name: s.unit_name.clone(),
        as_of: format::date(s.as_of),
        policy_version: s.policy_version,
        categories,
        operators,
        chart_height: shown.len() as i64 * ROW_HEIGHT,
        bars,
        computed_at: format::time(s.computed_at),
        fresh_minutes: KEPT_FRESH.whole_minutes(),
        public_columns: public.columns.iter().map(|c| public_heading(t, c)).collect(),
        public_rows,
        threshold: public.threshold,
        query: format!("period={}&unit={}", format::segment(&s.period), format::segment(&s.unit_code)),
    })
}
