//! Files the hub hands out: a monthly list with its reconciliation as CSV (one row per line)
//! or as an XLSX workbook (a summary sheet and a lines sheet, with Vietnamese headings for
//! the province's staff). Both are produced a piece at a time, so that a list of a million
//! lines is never held in memory.

pub mod published;
pub mod statistics;
pub mod xlsx;

use crate::domain::{
    DomainError,
    reconciliation::{Code, LineReader, ListStatus, ReconciledLine, Summary},
};
use xlsx::{Cell, XlsxWriter};

/// UTF-8's byte-order mark: at the start of a CSV file, it tells spreadsheet programs (Excel on
/// a double-click) that the text is UTF-8, so that Vietnamese reads right. Machine readers
/// (the SDK's, Python's `utf-8-sig`) pass over it.
pub const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// A CSV writer into memory, with lines ended CRLF, starting with the byte-order mark when `bom`.
pub fn csv_file(bom: bool) -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(if bom {
        BYTE_ORDER_MARK.to_vec()
    } else {
        Vec::new()
    })
}

/// Why a list's file stopped part way.
#[derive(Debug, thiserror::Error)]
pub enum ExportFailure {
    /// The lines could not be read.
    #[error(transparent)]
    Read(#[from] DomainError),
    /// The file could not be written.
    #[error("the file could not be written")]
    Write(#[source] std::io::Error),
}

/// The name a list's file is given: `PERIOD-OPERATOR-ID.EXT`, with the id's characters other
/// than ASCII letters, digits, `-` and `_` as `_`.
pub fn file_name(summary: &Summary, format: Format) -> String {
    let safe: String = summary
        .row
        .update_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    format!("{}-{}-{safe}.{}", summary.row.period, summary.row.operator, format.extension())
}

/// A list's file a piece at a time (one per chunk of lines read, a few hundred kilobytes, then
/// the end of the file), written by a task of its own at most `ahead` pieces before the
/// reader. A failure is the last item; a reader that goes away stops the task.
pub fn pieces(
    format: Format,
    summary: Summary,
    mut lines: LineReader,
    ahead: usize,
    bom: bool,
) -> tokio::sync::mpsc::Receiver<Result<Vec<u8>, ExportFailure>> {
    let (out, rx) = tokio::sync::mpsc::channel(ahead);
    tokio::spawn(async move {
        let mut renderer = match Renderer::start(format, &summary, bom) {
            Ok(r) => r,
            Err(e) => return drop(out.send(Err(ExportFailure::Write(e))).await),
        };
        loop {
            let piece = match lines.next().await {
                Ok(Some(batch)) => batch
                    .iter()
                    .try_for_each(|l| renderer.line(l))
                    .and_then(|()| renderer.take())
                    .map_err(ExportFailure::Write),
                Ok(None) => break,
                Err(e) => Err(ExportFailure::Read(e)),
            };
            let failed = piece.is_err();
            if out.send(piece).await.is_err() || failed {
                return; // the reader went away, or was told why the file ends here
            }
        }
        let _ = out.send(renderer.finish().map_err(ExportFailure::Write)).await;
    });
    rx
}

/// The format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }
}

/// The CSV columns after a line's own (the monthly-lines columns of `docs/CSV.md`, preceded by
/// `line_number`): the outcome of its reconciliation.
pub const OUTCOME_COLUMNS: [&str; 6] =
    ["commune_code", "discrepancies", "messages", "amount_confirmable", "exception", "later_discrepancies"];

/// The CSV header of a reconciled line: its number, the line as the operator sent it (the same
/// columns as the monthly-lines CSV), then the outcome.
pub fn csv_columns() -> impl Iterator<Item = &'static str> {
    std::iter::once("line_number").chain(telesub_proto::MONTHLY_LIST_COLUMNS).chain(OUTCOME_COLUMNS)
}

/// What a discrepancy code is called on the province's paperwork.
pub fn code_label(code: Code) -> &'static str {
    match code {
        Code::NotEligible => "Không đủ điều kiện",
        Code::EligibilityEnded => "Đã hết điều kiện hỗ trợ",
        Code::BeforeStart => "Trước thời điểm bắt đầu",
        Code::OverCap => "Vượt mức hỗ trợ",
        Code::NotEnrolled => "Chưa đăng ký thuê bao",
        Code::EnrolmentMismatch => "Sai thông tin đăng ký",
        Code::DuplicateWithinOperator => "Trùng trong doanh nghiệp",
        Code::DuplicateAcrossOperators => "Trùng giữa các doanh nghiệp",
        Code::NonUsage => "Không phát sinh lưu lượng",
        Code::UnknownSubscriber => "Không xác định được thuê bao",
    }
}

fn status_label(status: ListStatus) -> &'static str {
    match status {
        ListStatus::Receiving => "Đã nhận",
        ListStatus::Reconciled => "Đã đối soát",
        ListStatus::Confirmed => "Đã xác nhận",
        ListStatus::Rejected => "Bị từ chối",
        ListStatus::Superseded => "Đã được thay thế",
    }
}

fn codes(line: &ReconciledLine) -> String {
    line.discrepancies.iter().map(|d| d.code.as_str()).collect::<Vec<_>>().join(" ")
}

fn messages(line: &ReconciledLine) -> String {
    line.discrepancies.iter().map(|d| d.message.as_str()).collect::<Vec<_>>().join("; ")
}

/// The line's discrepancies as its readers' notes, in Vietnamese; a discrepancy stored before
/// notes were kept is named by its code's label and its day.
pub fn notes(line: &ReconciledLine) -> String {
    line.discrepancies.iter().map(note).collect::<Vec<_>>().join("; ")
}

/// One discrepancy's note in Vietnamese (see [`notes`]).
pub fn note(d: &crate::domain::reconciliation::Discrepancy) -> String {
    if !d.note.is_empty() {
        return d.note.clone();
    }
    match d.date.as_deref() {
        Some(day) => format!("{} (ngày {})", code_label(d.code), crate::domain::written::iso_date(day)),
        None => code_label(d.code).to_owned(),
    }
}

fn confirmable(line: &ReconciledLine) -> i64 {
    if line.discrepancies.is_empty() { line.line.amount_claimed } else { 0 }
}

fn later(line: &ReconciledLine) -> String {
    line.later.iter().flatten().map(|d| d.code.as_str()).collect::<Vec<_>>().join(" ")
}

/// A time in the province's time, as its staff read it: `07/12/2026 08:32:05 (+07:00)`.
pub fn local_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(crate::domain::clock::PROVINCE_OFFSET);
    format!(
        "{:02}/{:02}/{} {:02}:{:02}:{:02} (+07:00)",
        t.day(),
        u8::from(t.month()),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn csv_writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new())
}

/// Turns a list and its lines into a file's bytes, a piece at a time.
pub struct Renderer {
    inner: Inner,
}

enum Inner {
    Csv(Box<csv::Writer<Vec<u8>>>),
    Xlsx(Box<XlsxWriter>),
}

/// Column widths of the lines sheet.
const LINE_WIDTHS: [f64; 18] =
    [7.0, 13.0, 15.0, 18.0, 10.0, 14.0, 16.0, 12.0, 11.0, 13.0, 9.0, 9.0, 22.0, 9.0, 40.0, 60.0, 13.0, 30.0];

impl Renderer {
    /// Starts a file: the CSV header, or the workbook's summary sheet and the lines sheet's
    /// headings.
    /// A CSV file starts with the byte-order mark when `bom`.
    pub fn start(format: Format, summary: &Summary, bom: bool) -> Result<Self, std::io::Error> {
        match format {
            Format::Csv => {
                let mut w = csv_file(bom);
                w.write_record(csv_columns())?;
                Ok(Self { inner: Inner::Csv(Box::new(w)) })
            }
            Format::Xlsx => {
                let mut w = Box::new(XlsxWriter::new());
                summary_sheet(&mut w, summary);
                w.start_table("Chi tiết", &LINE_WIDTHS);
                let headings = [
                    "STT",
                    "Số thuê bao",
                    "Số CCCD thuê bao",
                    "Mã hộ",
                    "Mã đăng ký",
                    "Thay đổi",
                    "Dịch vụ",
                    "Mã gói cước",
                    "Giá gói (đồng)",
                    "Số tiền đề nghị (đồng)",
                    "Số ngày hỗ trợ",
                    "Có lưu lượng",
                    "Lý do không đề nghị",
                    "Mã xã",
                    "Kết quả đối soát",
                    "Ghi chú",
                    "Số tiền xác nhận được (đồng)",
                    "Thay đổi sau xác nhận",
                ];
                w.row(&headings.map(Cell::Text), true);
                Ok(Self { inner: Inner::Xlsx(w) })
            }
        }
    }

    pub fn line(&mut self, l: &ReconciledLine) -> Result<(), std::io::Error> {
        let line = &l.line;
        let enrollment = line.enrollment_id.map(|id| id.to_string()).unwrap_or_default();
        let change = line.change.map_or("", |c| c.as_str());
        let unclaimed = line.unclaimed_reason.map_or("", |r| r.as_str());
        let commune = l.commune_code.as_deref().unwrap_or("");
        match &mut self.inner {
            Inner::Csv(w) => w.write_record([
                l.line_no.to_string().as_str(),
                &line.phone_number,
                &line.subscriber_citizen_id,
                &line.household_code,
                &enrollment,
                change,
                line.service.as_str(),
                &line.package_code,
                &line.tariff.to_string(),
                &line.amount_claimed.to_string(),
                &line.days_of_service.to_string(),
                if line.used { "true" } else { "false" },
                unclaimed,
                commune,
                &codes(l),
                &messages(l),
                &confirmable(l).to_string(),
                if l.later.is_some() { "true" } else { "false" },
                &later(l),
            ])?,
            Inner::Xlsx(w) => {
                let outcome = if l.discrepancies.is_empty() {
                    "Hợp lệ".to_owned()
                } else {
                    l.discrepancies.iter().map(|d| code_label(d.code)).collect::<Vec<_>>().join("; ")
                };
                let later_text = match &l.later {
                    None => String::new(),
                    Some(ds) if ds.is_empty() => "Hợp lệ".to_owned(),
                    Some(ds) => ds.iter().map(|d| code_label(d.code)).collect::<Vec<_>>().join("; "),
                };
                w.row(
                    &[
                        Cell::Number(l.line_no),
                        Cell::Text(&line.phone_number),
                        Cell::Text(&line.subscriber_citizen_id),
                        Cell::Text(&line.household_code),
                        Cell::Text(&enrollment),
                        Cell::Text(change),
                        Cell::Text(line.service.as_str()),
                        Cell::Text(&line.package_code),
                        Cell::Amount(line.tariff),
                        Cell::Amount(line.amount_claimed),
                        Cell::Number(line.days_of_service),
                        Cell::Text(if line.used { "Có" } else { "Không" }),
                        Cell::Text(unclaimed),
                        Cell::Text(commune),
                        Cell::Text(&outcome),
                        Cell::Text(&notes(l)),
                        Cell::Amount(confirmable(l)),
                        Cell::Text(&later_text),
                    ],
                    false,
                );
            }
        }
        Ok(())
    }

    /// The bytes produced since the last call.
    pub fn take(&mut self) -> Result<Vec<u8>, std::io::Error> {
        match &mut self.inner {
            Inner::Csv(w) => std::mem::replace(w.as_mut(), csv_writer()).into_inner().map_err(|e| e.into_error()),
            Inner::Xlsx(w) => Ok(w.take()),
        }
    }

    /// Ends the file; returns its last bytes.
    pub fn finish(self) -> Result<Vec<u8>, std::io::Error> {
        match self.inner {
            Inner::Csv(w) => w.into_inner().map_err(|e| e.into_error()),
            Inner::Xlsx(mut w) => {
                w.end_sheet();
                Ok(w.finish())
            }
        }
    }
}

fn summary_sheet(w: &mut XlsxWriter, s: &Summary) {
    let r = &s.row;
    let f = &s.figures;
    w.start_sheet("Tổng hợp", &[42.0, 70.0]);
    w.row(&[Cell::Text("Danh sách thuê bao được hỗ trợ"), Cell::Text("")], true);
    let text_rows = [
        ("Doanh nghiệp viễn thông", r.operator.clone()),
        ("Mã danh sách", r.update_id.clone()),
        ("Kỳ", r.period.clone()),
        ("Trạng thái", status_label(r.status).to_owned()),
        ("Ghi chú của doanh nghiệp", r.note.clone()),
        ("Thời điểm nhận", local_time(r.received_at)),
        ("Thời điểm đối soát", r.reconciled_at.map(local_time).unwrap_or_default()),
        ("Mã băm nội dung (SHA-256)", r.content_digest.clone().unwrap_or_default()),
    ];
    for (label, value) in &text_rows {
        w.row(&[Cell::Text(label), Cell::Text(value)], false);
    }
    let number_rows = [
        ("Số dòng", f.lines),
        ("Số dòng đề nghị hỗ trợ", f.claims),
        ("Số dòng không đề nghị", f.unclaimed),
        ("Số dòng hợp lệ", f.lines_ok),
        ("Số tiền đề nghị (đồng)", f.amount_claimed),
        ("Số tiền xác nhận được (đồng)", f.amount_confirmable),
        ("Hộ đã hết điều kiện nhưng chưa dừng hỗ trợ", f.missing_stops),
        ("Thuê bao đã đăng ký không có trong danh sách", f.enrollments_not_reported),
    ];
    for (label, value) in number_rows {
        let value = if label.ends_with("(đồng)") { Cell::Amount(value) } else { Cell::Number(value) };
        w.row(&[Cell::Text(label), value], false);
    }
    for (code, n) in &f.by_code {
        w.row(&[Cell::Text(&format!("Sai lệch: {}", code_label(*code))), Cell::Number(*n)], false);
    }
    match r.status {
        ListStatus::Confirmed => {
            let scope = match r.confirmed_scope.as_deref() {
                Some("OK_LINES") => "Chỉ các dòng hợp lệ",
                _ => "Toàn bộ danh sách",
            };
            w.row(&[Cell::Text("Xác nhận"), Cell::Text("")], true);
            let rows = [
                ("Người xác nhận", r.decided_by.clone().unwrap_or_default()),
                ("Thời điểm xác nhận", r.decided_at.map(local_time).unwrap_or_default()),
                ("Phạm vi xác nhận", scope.to_owned()),
                ("Ghi chú xác nhận", r.decision_note.clone().unwrap_or_default()),
                ("Mã băm các dòng được xác nhận (SHA-256)", r.confirmed_digest.clone().unwrap_or_default()),
            ];
            for (label, value) in &rows {
                w.row(&[Cell::Text(label), Cell::Text(value)], false);
            }
            w.row(&[Cell::Text("Số dòng được xác nhận"), Cell::Number(r.confirmed_lines.unwrap_or_default())], false);
            w.row(
                &[Cell::Text("Số tiền được xác nhận (đồng)"), Cell::Amount(r.confirmed_amount.unwrap_or_default())],
                false,
            );
            w.row(&[Cell::Text("Số dòng thay đổi sau xác nhận"), Cell::Number(r.exceptions)], false);
        }
        ListStatus::Rejected => {
            w.row(&[Cell::Text("Từ chối"), Cell::Text("")], true);
            w.row(&[Cell::Text("Người từ chối"), Cell::Text(r.decided_by.as_deref().unwrap_or(""))], false);
            w.row(&[Cell::Text("Lý do"), Cell::Text(r.decision_note.as_deref().unwrap_or(""))], false);
        }
        _ => {}
    }
    w.end_sheet();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::reconciliation::Discrepancy;

    #[test]
    fn a_note_is_the_vietnamese_one_kept_or_else_the_code_and_its_day() {
        let kept = Discrepancy {
            code: Code::OverCap,
            message: "claimed 60000 VND; 40645 VND are allowed".into(),
            note: "Đề nghị 60.000 đồng; chỉ được hỗ trợ 40.645 đồng".into(),
            date: None,
            allowed_amount: Some(40_645),
        };
        assert_eq!(note(&kept), kept.note);
        // Stored before notes were kept: the code's label, and its day as people write it.
        let older = Discrepancy {
            code: Code::EligibilityEnded,
            message: "support for household HH-1 ends on 2025-03-10".into(),
            note: String::new(),
            date: Some("2025-03-10".into()),
            allowed_amount: None,
        };
        assert_eq!(note(&older), "Đã hết điều kiện hỗ trợ (ngày 10/03/2025)");
        let bare = Discrepancy { date: None, ..older };
        assert_eq!(note(&bare), "Đã hết điều kiện hỗ trợ");
    }
}
