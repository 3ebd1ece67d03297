//! How people in Vietnam write numbers, days and months (`1.009.726`, `31/03/2025`, `03/2025`):
//! the domain's notes in Vietnamese, the console and the files people open write them alike.

use time::Date;

/// A whole number with dots between thousands: `1.009.726`, `-5.000`.
pub fn number(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    out
}

/// `dd/mm/yyyy`.
pub fn date(d: Date) -> String {
    format!("{:02}/{:02}/{:04}", d.day(), u8::from(d.month()), d.year())
}

/// A day kept as `YYYY-MM-DD` written `dd/mm/yyyy`; as kept when it is not a day.
pub fn iso_date(iso: &str) -> String {
    Date::parse(iso, &time::format_description::well_known::Iso8601::DATE).map_or_else(|_| iso.to_owned(), date)
}

/// A period `YYYY-MM` as `MM/YYYY`.
pub fn period(p: &str) -> String {
    match p.split_once('-') {
        Some((y, m)) => format!("{m}/{y}"),
        None => p.to_owned(),
    }
}
