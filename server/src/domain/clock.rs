//! The hub's clock. Every service takes one ([`Clock::system`] when serving), so that what a
//! rule does on a given day can be shown on that day: a test sets the clock
//! ([`Clock::set_to`]) instead of waiting for the wall clock.

use std::sync::{Arc, Mutex};

use time::{Date, OffsetDateTime, UtcOffset};

/// The province's offset from UTC (Indochina Time, no daylight saving): dates of the programme
/// (today, a month's last day) are dates there.
pub const PROVINCE_OFFSET: UtcOffset = match UtcOffset::from_hms(7, 0, 0) {
    Ok(offset) => offset,
    Err(_) => panic!("UTC+7 is a valid offset"),
};

/// Where the time comes from: the system, or a time set by hand.
#[derive(Clone, Debug, Default)]
pub struct Clock(Option<Arc<Mutex<OffsetDateTime>>>);

impl Clock {
    /// The system's clock.
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock that stays at `at` until set again.
    pub fn fixed(at: OffsetDateTime) -> Self {
        Self(Some(Arc::new(Mutex::new(at))))
    }

    /// Moves a fixed clock (and every copy of it) to `at`; a system clock does not move.
    pub fn set_to(&self, at: OffsetDateTime) {
        if let Some(time) = &self.0 {
            *time.lock().expect("clock") = at;
        }
    }

    /// Now, in UTC, to the microsecond: what the databases keep, so that a time read back
    /// equals the time written.
    pub fn now(&self) -> OffsetDateTime {
        let now = match &self.0 {
            None => OffsetDateTime::now_utc(),
            Some(time) => *time.lock().expect("clock"),
        };
        crate::audit::to_micros(now)
    }

    /// Today's date in the province.
    pub fn today(&self) -> Date {
        self.now().to_offset(PROVINCE_OFFSET).date()
    }
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    #[test]
    fn the_province_date_turns_at_17_00_utc() {
        let clock = Clock::fixed(datetime!(2025-03-31 16:59:59 UTC));
        assert_eq!(clock.today(), date!(2025 - 03 - 31));
        clock.set_to(datetime!(2025-03-31 17:00:00 UTC));
        assert_eq!(clock.today(), date!(2025 - 04 - 01));
    }

    #[test]
    fn times_are_kept_to_the_microsecond_and_copies_move_together() {
        let clock = Clock::fixed(datetime!(2025-03-31 10:00:00.123456789 UTC));
        let copy = clock.clone();
        assert_eq!(copy.now(), datetime!(2025-03-31 10:00:00.123456 UTC));
        clock.set_to(datetime!(2026-01-01 00:00:00 UTC));
        assert_eq!(copy.now(), datetime!(2026-01-01 00:00:00 UTC));
    }

    #[test]
    fn the_system_clock_moves_on_and_cannot_be_set() {
        let clock = Clock::system();
        let before = clock.now();
        clock.set_to(datetime!(2000-01-01 00:00:00 UTC));
        assert!(clock.now() >= before);
    }
}
