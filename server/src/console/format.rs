//! How the console writes numbers, amounts, dates and times: as people in Vietnam read them
//! (`1.009.726`, `60.000 ₫`, `31/03/2025`, times in the province's time, +07:00).

use time::{Date, OffsetDateTime};

use crate::domain::clock::PROVINCE_OFFSET;

pub use crate::domain::written::{date, number, period};

/// Who did something: the person a certificate named beside the organisation
/// (`Nguyễn Thị Lan · DOICT`), or the organisation alone.
pub fn by(org: &str, person: Option<&str>) -> String {
    match person {
        Some(person) => format!("{person} · {org}"),
        None => org.to_owned(),
    }
}

/// An amount of đồng: `60.000 ₫`.
pub fn vnd(amount: i64) -> String {
    format!("{} ₫", number(amount))
}

/// `dd/mm/yyyy HH:MM` in the province's time.
pub fn time(t: OffsetDateTime) -> String {
    let t = t.to_offset(PROVINCE_OFFSET);
    format!("{} {:02}:{:02}", date(t.date()), t.hour(), t.minute())
}

/// A value as one segment of a path or a query's value: everything but letters and digits
/// percent-encoded (an update id or a decision number may hold `/`, `?` or `<`).
pub fn segment(value: &str) -> percent_encoding::PercentEncode<'_> {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
}

/// `YYYY-MM` of the month before `today`'s: the month whose lists and figures are looked at
/// first, since they come after it ends.
pub fn last_month(today: Date) -> String {
    let last = today.replace_day(1).expect("a first day") - time::Duration::days(1);
    format!("{:04}-{:02}", last.year(), u8::from(last.month()))
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    #[test]
    fn numbers_amounts_and_dates_read_as_in_vietnam() {
        assert_eq!(number(0), "0");
        assert_eq!(number(999), "999");
        assert_eq!(number(1_000), "1.000");
        assert_eq!(number(1_009_726), "1.009.726");
        assert_eq!(number(-5_000), "-5.000");
        assert_eq!(vnd(60_000), "60.000 ₫");
        assert_eq!(date(date!(2025 - 03 - 01)), "01/03/2025");
        // 23:30 UTC on 31 March is 06:30 on 1 April in the province.
        assert_eq!(time(datetime!(2025-03-31 23:30 UTC)), "01/04/2025 06:30");
        assert_eq!(period("2025-03"), "03/2025");
        assert_eq!(
            (last_month(date!(2025 - 03 - 15)), last_month(date!(2025 - 01 - 01))),
            ("2025-02".into(), "2024-12".into())
        );
        assert_eq!(segment("101/QĐ-BTTTT").to_string(), "101%2FQ%C4%90%2DBTTTT");
    }
}
