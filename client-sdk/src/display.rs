//! Figures as people read them in a report or a terminal: `1,234,567` and `1,234,567 VND`.
//!
//! The hub's amounts are whole đồng in `i64`; a billing report, the command line and the
//! examples print them grouped by thousands. (Eight lines; the crates that group digits bring
//! locale tables this needs none of.)

/// `1,234,567` for 1234567, `-60,000` for -60000.
pub fn grouped(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut text = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value < 0 {
        text.push('-');
    }
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            text.push(',');
        }
        text.push(digit);
    }
    text
}

/// An amount of đồng: `60,000 VND`.
pub fn vnd(amount: i64) -> String {
    grouped(amount) + " VND"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_grouped_by_thousands_with_the_sign_in_front() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(-60_000), "-60,000");
        assert_eq!(grouped(i64::MIN), "-9,223,372,036,854,775,808");
        assert_eq!(vnd(60_000), "60,000 VND");
    }
}
