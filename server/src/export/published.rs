//! The approved device list as the public sees it: commune, the head's name shortened,
//! category, device, and whether it was handed over. No citizen IDs, no addresses, no
//! household codes. As CSV (for the provincial portal) or as a printable HTML page per
//! commune (for the notice board of the commune office). The same list gives the same bytes.

use std::fmt::Write as _;

use crate::{
    domain::ports::devices::RecipientView,
    domain::{
        devices::{Allocation, DeviceType},
        household::{Category, format_date},
        units::UnitTable,
    },
};

/// A published list as a file: `(bytes, file name, content type)`. HTML is one commune's
/// notice board (`commune` names it); CSV is the commune's list, or every commune's when
/// `commune` is empty.
pub fn file(
    allocation: &Allocation,
    commune: &str,
    places: &[RecipientView],
    units: &UnitTable,
    html_page: bool,
    bom: bool,
) -> Result<(Vec<u8>, String, &'static str), csv::Error> {
    let safe: String = allocation
        .row
        .decision_number
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    let commune = commune.trim();
    Ok(if html_page {
        (
            html(allocation, commune, places, units),
            format!("thiet-bi-{safe}-{commune}.html"),
            "text/html; charset=utf-8",
        )
    } else {
        let name =
            if commune.is_empty() { format!("thiet-bi-{safe}.csv") } else { format!("thiet-bi-{safe}-{commune}.csv") };
        (csv(allocation, places, units, bom)?, name, "text/csv; charset=utf-8")
    })
}

/// The CSV columns, in order.
pub const CSV_COLUMNS: [&str; 8] =
    ["commune_code", "commune", "no", "head_name", "category", "device_type", "status", "handed_over_on"];

pub(crate) fn category_label(code: &str) -> String {
    match Category::parse(code) {
        Ok(Category::Poor) => "Hộ nghèo".to_owned(),
        Ok(Category::NearPoor) => "Hộ cận nghèo".to_owned(),
        Ok(Category::SocialPolicy) => "Hộ chính sách xã hội".to_owned(),
        Ok(Category::MeritoriousService) => "Hộ người có công".to_owned(),
        _ => code.to_owned(),
    }
}

fn device_label(code: &str) -> &'static str {
    DeviceType::parse(code).map_or("", DeviceType::label)
}

/// `NOT_YET`, `DEVICE_HANDED_OVER` or `CASH_PAID`, and the Vietnamese words for it.
fn status(r: &RecipientView) -> (&'static str, &'static str) {
    match r.handover.as_ref().map(|h| h.kind.as_str()) {
        None => ("NOT_YET", "Chưa nhận"),
        Some("CASH") => ("CASH_PAID", "Đã nhận tiền hỗ trợ"),
        Some(_) => ("DEVICE_HANDED_OVER", "Đã nhận thiết bị"),
    }
}

fn commune_name(units: &UnitTable, code: &str, allocation: &Allocation) -> String {
    let on = allocation.row.proposal_as_of.unwrap_or(allocation.row.decision_date);
    units.on(code, on).or_else(|| units.get(code)).map_or_else(|| code.to_owned(), |u| u.name.clone())
}

/// The list as CSV: one row per household, communes in code order, numbered within each.
pub fn csv(
    allocation: &Allocation,
    places: &[RecipientView],
    units: &UnitTable,
    bom: bool,
) -> Result<Vec<u8>, csv::Error> {
    let mut w = super::csv_file(bom);
    w.write_record(CSV_COLUMNS)?;
    let mut commune = "";
    let mut name = String::new();
    let mut no = 0;
    for r in places {
        if r.place.commune_code != commune {
            commune = &r.place.commune_code;
            name = commune_name(units, commune, allocation);
            no = 0;
        }
        no += 1;
        let on = r.handover.as_ref().map(|h| format_date(h.handed_over_on)).unwrap_or_default();
        w.write_record([
            commune,
            &name,
            &no.to_string(),
            &r.place.head_name_masked,
            &r.place.category,
            &r.place.device_type,
            status(r).0,
            &on,
        ])?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

/// A date as Vietnamese documents write it: `02/04/2025`.
fn vi_date(d: time::Date) -> String {
    format!("{:02}/{:02}/{}", d.day(), u8::from(d.month()), d.year())
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One commune's page, to print and post on the commune office's notice board.
pub fn html(allocation: &Allocation, commune: &str, places: &[RecipientView], units: &UnitTable) -> Vec<u8> {
    let row = &allocation.row;
    let name = commune_name(units, commune, allocation);
    let on = row.proposal_as_of.unwrap_or(row.decision_date);
    let district = units.province_and_district_on(commune, on).1.map(|d| d.name.clone());
    let handed = places.iter().filter(|r| r.handover.is_some()).count();
    let mut h = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"vi\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Danh sách hộ được hỗ trợ thiết bị – {name}</title>\n<style>\n\
         body {{ font-family: 'Times New Roman', serif; font-size: 13pt; margin: 1.5cm; }}\n\
         h1 {{ font-size: 15pt; text-align: center; text-transform: uppercase; }}\n\
         p.sub {{ text-align: center; margin: 0.2em 0; }}\n\
         table {{ border-collapse: collapse; width: 100%; margin-top: 1em; }}\n\
         th, td {{ border: 1px solid #000; padding: 3pt 6pt; }}\n\
         th {{ background: #eee; }}\n\
         td.no {{ text-align: right; width: 3em; }}\n\
         thead {{ display: table-header-group; }}\n\
         tr {{ page-break-inside: avoid; }}\n\
         @media print {{ body {{ margin: 0; }} }}\n\
         </style>\n</head>\n<body>\n\
         <h1>Danh sách hộ gia đình được hỗ trợ thiết bị đầu cuối</h1>\n\
         <p class=\"sub\">{commune_line}</p>\n\
         <p class=\"sub\">Theo Quyết định phân bổ số {decision} ngày {decision_date}</p>\n\
         <p class=\"sub\">Danh sách được Ủy ban nhân dân tỉnh phê duyệt tại Quyết định số {approval}{approved_on}</p>\n\
         <table>\n<thead><tr><th>STT</th><th>Chủ hộ</th><th>Diện hộ</th><th>Thiết bị</th>\
         <th>Tình trạng</th><th>Ngày nhận</th></tr></thead>\n<tbody>\n",
        name = escape(&name),
        commune_line = escape(&match &district {
            Some(d) => format!("{name} ({commune}), {d}"),
            None => format!("{name} ({commune})"),
        }),
        decision = escape(&row.decision_number),
        decision_date = vi_date(row.decision_date),
        approval = escape(row.approval_number.as_deref().unwrap_or_default()),
        approved_on = row.approved_on.map(|d| format!(" ngày {}", vi_date(d))).unwrap_or_default(),
    );
    for (i, r) in places.iter().enumerate() {
        let on = r.handover.as_ref().map(|h| vi_date(h.handed_over_on)).unwrap_or_default();
        let _ = writeln!(
            h,
            "<tr><td class=\"no\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            escape(&r.place.head_name_masked),
            escape(&category_label(&r.place.category)),
            device_label(&r.place.device_type),
            status(r).1,
            on
        );
    }
    let _ = write!(
        h,
        "</tbody>\n</table>\n<p>Tổng số: {} hộ; đã nhận: {handed}; chưa nhận: {}.</p>\n\
         <p>Mọi ý kiến về danh sách xin gửi Ủy ban nhân dân xã, phường hoặc Sở Thông tin và Truyền thông.</p>\n\
         </body>\n</html>\n",
        places.len(),
        places.len() - handed
    );
    h.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn html_escapes_markup() {
        assert_eq!(escape("<b>\"A\" & 'B'</b>"), "&lt;b&gt;&quot;A&quot; &amp; &#39;B&#39;&lt;/b&gt;");
    }
}
