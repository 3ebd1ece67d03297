//! The programme's statistics as an XLSX workbook for the province's staff: a summary sheet,
//! then one sheet per view, with Vietnamese headings; and the public table as CSV.

use super::{
    published::category_label,
    xlsx::{Cell, XlsxWriter},
};
use crate::domain::{
    household::format_date,
    reconciliation::ListStatus,
    statistics::{PublicTable, Statistics},
};

/// The workbook of a month's figures.
pub fn xlsx(s: &Statistics) -> Vec<u8> {
    let mut w = XlsxWriter::new();
    fn text(t: &str) -> Cell<'_> {
        Cell::Text(t)
    }
    w.start_sheet("Tổng hợp", &[32.0, 40.0]);
    let computed = super::local_time(s.computed_at);
    let version = s.policy_version.to_string();
    let as_of = format_date(s.as_of);
    for (label, value) in [
        ("Kỳ báo cáo", s.period.as_str()),
        ("Kỳ trước", s.previous_period.as_str()),
        ("Đơn vị", if s.unit_code.is_empty() { "Toàn tỉnh" } else { s.unit_code.as_str() }),
        ("Tên đơn vị", s.unit_name.as_str()),
        ("Số liệu tính đến ngày", as_of.as_str()),
        ("Phiên bản chính sách", version.as_str()),
        ("Ngày lập", computed.as_str()),
    ] {
        w.row(&[text(label), text(value)], false);
    }
    w.end_sheet();

    w.start_table("Theo diện hộ", &[26.0, 12.0, 14.0, 16.0, 16.0, 16.0, 16.0, 18.0, 18.0]);
    w.row(
        &[
            text("Diện hộ"),
            text("Số hộ"),
            text("Đủ điều kiện"),
            text("Thuê bao được hỗ trợ"),
            text("Thiết bị được phân bổ"),
            text("Thiết bị đã bàn giao"),
            text("Số hộ kỳ trước"),
            text("Đủ điều kiện kỳ trước"),
            text("Thuê bao kỳ trước"),
        ],
        true,
    );
    for r in &s.by_category {
        let name = r.category.map_or_else(|| "Tổng cộng".to_owned(), |c| category_label(c.as_str()));
        w.row(
            &[
                Cell::Text(&name),
                Cell::Number(r.households),
                Cell::Number(r.eligible),
                Cell::Number(r.enrolled),
                Cell::Number(r.devices_allocated),
                Cell::Number(r.devices_handed_over),
                Cell::Number(r.households_before),
                Cell::Number(r.eligible_before),
                Cell::Number(r.enrolled_before),
            ],
            r.category.is_none(),
        );
    }
    w.end_sheet();

    w.start_table("Theo doanh nghiệp", &[18.0, 16.0, 16.0, 18.0, 18.0, 20.0, 16.0, 16.0, 16.0, 18.0, 18.0, 20.0]);
    w.row(
        &[
            text("Doanh nghiệp"),
            text("Thuê bao được hỗ trợ"),
            text("Thuê bao đề nghị"),
            text("Số tiền đề nghị (đồng)"),
            text("Thuê bao được xác nhận"),
            text("Số tiền được xác nhận (đồng)"),
            text("Trạng thái danh sách"),
            text("Thuê bao kỳ trước"),
            text("Đề nghị kỳ trước"),
            text("Số tiền đề nghị kỳ trước"),
            text("Xác nhận kỳ trước"),
            text("Số tiền xác nhận kỳ trước"),
        ],
        true,
    );
    for r in &s.by_operator {
        let status = match r.list_status {
            Some(ListStatus::Confirmed) => "Đã xác nhận",
            Some(_) => "Đã đối soát",
            None => "",
        };
        w.row(
            &[
                Cell::Text(r.operator.as_deref().unwrap_or("Tổng cộng")),
                Cell::Number(r.enrolled),
                Cell::Number(r.claimed),
                Cell::Amount(r.amount_claimed),
                Cell::Number(r.confirmed),
                Cell::Amount(r.amount_confirmed),
                if r.operator.is_some() { Cell::Text(status) } else { Cell::Empty },
                Cell::Number(r.enrolled_before),
                Cell::Number(r.claimed_before),
                Cell::Amount(r.amount_claimed_before),
                Cell::Number(r.confirmed_before),
                Cell::Amount(r.amount_confirmed_before),
            ],
            r.operator.is_none(),
        );
    }
    w.end_sheet();

    w.start_table("Sai lệch", &[18.0, 32.0, 12.0]);
    w.row(&[text("Doanh nghiệp"), text("Mã sai lệch"), text("Số dòng")], true);
    for r in &s.by_operator {
        for (code, n) in &r.discrepancies {
            w.row(
                &[
                    Cell::Text(r.operator.as_deref().unwrap_or("Tổng cộng")),
                    Cell::Text(code.as_str()),
                    Cell::Number(*n),
                ],
                r.operator.is_none(),
            );
        }
    }
    w.end_sheet();
    w.finish()
}

/// The public table as CSV (UTF-8, CRLF).
pub fn public_csv(t: &PublicTable, bom: bool) -> Result<Vec<u8>, csv::Error> {
    let mut w = super::csv_file(bom);
    w.write_record(&t.columns)?;
    for row in &t.rows {
        w.write_record(row)?;
    }
    // The legend, in the first cell of a row of its own.
    let mut legend = vec![String::new(); t.columns.len()];
    legend[0] = t.legend.clone();
    w.write_record(&legend)?;
    w.into_inner().map_err(|e| e.into_error().into())
}
