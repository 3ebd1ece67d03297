//! Households, as the labour department records them, and the checks every record passes
//! before the registry takes it.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Date, format_description::BorrowedFormatItem, macros::format_description};
use unicode_normalization::UnicodeNormalization;

use super::{FieldViolation, member::UnitCode, units::UnitTable};

static DATE_FORMAT: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<Date, String> {
    Date::parse(s, DATE_FORMAT).map_err(|_| format!("{s:?} is not a date in the form YYYY-MM-DD"))
}

/// Formats `YYYY-MM-DD`.
pub fn format_date(d: Date) -> String {
    d.format(DATE_FORMAT).expect("a date always formats")
}

/// A 12-digit citizen ID number (CCCD): 3 digits of the province of birth, 1 for sex and
/// century, 2 for the year of birth, 6 more.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CitizenId(String);

impl CitizenId {
    /// Checks the form, the province code (against the unit table) and the century digit.
    pub fn parse(s: &str, units: &UnitTable) -> Result<Self, String> {
        if s.len() != 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{s:?} is not a citizen ID: it must be 12 digits"));
        }
        if !s.starts_with('0') || !units.is_province(&s[1..3]) {
            return Err(format!("{s:?} does not begin with a province code (0 and the 2-digit code, e.g. 067)"));
        }
        if !matches!(s.as_bytes()[3], b'0'..=b'3') {
            return Err(format!(
                "{s:?} has {:?} as its 4th digit; for people born 1900-2099 it is 0-3",
                s.as_bytes()[3] as char
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The year of birth the number encodes.
    pub fn birth_year(&self) -> i32 {
        let b = self.0.as_bytes();
        let century = match b[3] {
            b'0' | b'1' => 1900,
            _ => 2000,
        };
        century + i32::from(b[4] - b'0') * 10 + i32::from(b[5] - b'0')
    }

    /// The number as an integer, for compact sets.
    pub fn as_u64(&self) -> u64 {
        self.0.parse().expect("12 digits fit in u64")
    }
}

impl fmt::Display for CitizenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The labour department's code for a household: 1 to 40 characters of letters, digits,
/// `.`, `-`, `_` and `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HouseholdCode(String);

impl HouseholdCode {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = (1..=40).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/'));
        if ok {
            Ok(Self(s.to_owned()))
        } else if s.is_empty() {
            Err("a household code is required".to_owned())
        } else {
            Err(format!("{s:?} is not a household code: use 1 to 40 letters, digits, '.', '-', '_' or '/'"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HouseholdCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A person's name: trimmed, Unicode NFC, inner spaces collapsed, 1 to 100 characters,
/// letters, spaces and a few marks only.
pub fn person_name(s: &str) -> Result<String, String> {
    let nfc = nfc_single_spaced(s);
    let len = nfc.chars().count();
    if len == 0 {
        return Err("a name is required".to_owned());
    }
    if len > 100 {
        return Err(format!("is {len} characters long; at most 100 are allowed"));
    }
    if let Some(c) = nfc.chars().find(|c| !(c.is_alphabetic() || matches!(c, ' ' | '\'' | '-' | '.'))) {
        return Err(format!("{nfc:?} contains {c:?}; a name has letters, spaces, apostrophes, hyphens and dots"));
    }
    Ok(nfc)
}

/// `s` trimmed, with inner runs of white space made one space, in NFC. Most names arrive in
/// that form already; they are then copied once, not rebuilt.
fn nfc_single_spaced(s: &str) -> String {
    use unicode_normalization::{IsNormalized, is_nfc_quick};
    let trimmed = s.trim();
    let spaced = !trimmed.contains("  ") && !trimmed.chars().any(|c| c.is_whitespace() && c != ' ');
    match (spaced, is_nfc_quick(trimmed.chars())) {
        (true, IsNormalized::Yes) => trimmed.to_owned(),
        (true, _) => trimmed.nfc().collect(),
        (false, _) => s.split_whitespace().collect::<Vec<_>>().join(" ").nfc().collect(),
    }
}

/// Why `s` may not be shown as it is stored, when it has a character that hides or reorders
/// what a reader sees: a control character, or a bidirectional or zero-width formatting one
/// (U+202E RIGHT-TO-LEFT OVERRIDE makes "Nguyễn", U+202E, "cba" read backwards on screen). Such text
/// in a name, a note or a reason could show one thing to ICT and store another.
pub fn hidden_character(s: &str) -> Option<String> {
    let c = s.chars().find(|&c| {
        c.is_control()
            || matches!(c, '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}')
            || matches!(c, '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
    })?;
    Some(format!(
        "contains U+{:04X}, a control or formatting character that hides or reorders what is shown; remove it",
        u32::from(c)
    ))
}

/// Free text (an address line, a note): trimmed NFC, no control characters, at most `max`.
pub fn free_text(s: &str, max: usize) -> Result<String, String> {
    let trimmed = s.trim();
    let nfc: String =
        if unicode_normalization::is_nfc_quick(trimmed.chars()) == unicode_normalization::IsNormalized::Yes {
            trimmed.to_owned()
        } else {
            trimmed.nfc().collect()
        };
    let len = nfc.chars().count();
    if len > max {
        return Err(format!("is {len} characters long; at most {max} are allowed"));
    }
    if let Some(why) = hidden_character(&nfc) {
        return Err(why);
    }
    Ok(nfc)
}

macro_rules! name_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $name { $( $(#[$vdoc])* #[serde(rename = $text)] $variant ),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "{other:?} is not one of {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// The stored form read back (storage parses a stored status with it).
        impl ::std::convert::TryFrom<String> for $name {
            type Error = String;

            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s)
            }
        }
    };
}

pub(crate) use name_enum;

name_enum! {
    /// Why a household is supported.
    Category {
        Poor = "POOR",
        NearPoor = "NEAR_POOR",
        SocialPolicy = "SOCIAL_POLICY",
        MeritoriousService = "MERITORIOUS_SERVICE",
        Other = "OTHER",
    }
}

name_enum! {
    /// A member's relationship to the head of the household.
    Relationship {
        Head = "HEAD",
        Spouse = "SPOUSE",
        Child = "CHILD",
        Parent = "PARENT",
        Grandchild = "GRANDCHILD",
        Grandparent = "GRANDPARENT",
        Sibling = "SIBLING",
        Other = "OTHER",
    }
}

name_enum! {
    /// Why a household left the list.
    RemovalReason {
        OutOfPoverty = "OUT_OF_POVERTY",
        MovedAway = "MOVED_AWAY",
        Deceased = "DECEASED",
        RecordedInError = "RECORDED_IN_ERROR",
        /// Missing from a review snapshot: the hub removed it.
        NotInReview = "NOT_IN_REVIEW",
    }
}

name_enum! {
    /// A monthly change list, or the full list of a review.
    BatchKind {
        Delta = "DELTA",
        Snapshot = "SNAPSHOT",
    }
}

/// Stored as `[citizen_id, full_name, relationship, birth_year]`: a million households carry
/// some four million members, and the field names would be a third of the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(String, String, Relationship, i32)", into = "(String, String, Relationship, i32)")]
pub struct HouseholdMember {
    pub citizen_id: String,
    pub full_name: String,
    pub relationship: Relationship,
    pub birth_year: i32,
}

impl From<(String, String, Relationship, i32)> for HouseholdMember {
    fn from((citizen_id, full_name, relationship, birth_year): (String, String, Relationship, i32)) -> Self {
        Self { citizen_id, full_name, relationship, birth_year }
    }
}

impl From<HouseholdMember> for (String, String, Relationship, i32) {
    fn from(m: HouseholdMember) -> Self {
        (m.citizen_id, m.full_name, m.relationship, m.birth_year)
    }
}

/// The poor / near-poor household certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    pub number: String,
    pub issued_on: String,
    pub issuing_unit: String,
}

/// Facts the programme's rules use besides the category; stored only when set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HouseholdFlags {
    /// Received a device from an earlier programme ("Sóng và máy tính cho em").
    #[serde(default, skip_serializing_if = "is_false")]
    pub earlier_programme_device: bool,
    /// Wants a device from this programme.
    #[serde(default, skip_serializing_if = "is_false")]
    pub wants_device: bool,
    /// A family of people with meritorious service (device priority 1).
    #[serde(default, skip_serializing_if = "is_false")]
    pub meritorious_service_family: bool,
    /// A social-policy family (device priority 2).
    #[serde(default, skip_serializing_if = "is_false")]
    pub social_policy_family: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A household's state: what one version of its history holds. Serialised as the stored
/// form, so the field order here is the stored order; the content hash is over that form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HouseholdData {
    pub category: Category,
    pub head_name: String,
    pub commune_code: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Certificate>,
    pub flags: HouseholdFlags,
    pub members: Vec<HouseholdMember>,
}

/// What is kept beside a household state's stored form, so that counting by category and
/// finding device candidates need not read it: its category and whether it asks for a device.
pub fn stored_traits(stored: &str) -> Result<(Category, bool), String> {
    let data: HouseholdData = serde_json::from_str(stored).map_err(|e| format!("stored household data: {e}"))?;
    Ok((data.category, data.flags.wants_device))
}

impl HouseholdData {
    /// The stored form (JSON), and its SHA-256: equal states have equal hashes.
    pub fn stored_form(&self) -> (String, String) {
        let json = serde_json::to_string(self).expect("household data serialises");
        let hash = crate::hex(ring::digest::digest(&ring::digest::SHA256, json.as_bytes()).as_ref());
        (json, hash)
    }

    pub fn from_stored(json: &str) -> Result<Self, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }
}

/// What a record does to a household.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Upsert(HouseholdData),
    Remove { reason: RemovalReason, note: String },
}

/// One validated record of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HouseholdRecord {
    pub code: HouseholdCode,
    pub effective: Date,
    pub change: Change,
}

/// A review period: a year (`2024`, the yearly review) or a month (`2024-03`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewPeriod(String);

impl ReviewPeriod {
    pub fn parse(s: &str) -> Result<Self, String> {
        let err = || format!("{s:?} is not a review period: use YYYY (a yearly review) or YYYY-MM (a month)");
        let year = |y: &str| y.len() == 4 && y.parse::<u16>().is_ok_and(|y| (2000..=2100).contains(&y));
        match s.split_once('-') {
            None if year(s) => Ok(Self(s.to_owned())),
            Some((y, m)) if year(y) && m.len() == 2 && m.parse::<u8>().is_ok_and(|m| (1..=12).contains(&m)) => {
                Ok(Self(s.to_owned()))
            }
            _ => Err(err()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A client-chosen batch id: 1 to 64 letters, digits, `.`, `-` and `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BatchId(String);

impl BatchId {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!("{s:?} is not a batch id: use 1 to 64 letters, digits, '.', '-' or '_'"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The header of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchHeader {
    pub batch_id: BatchId,
    pub kind: BatchKind,
    pub review_period: ReviewPeriod,
    pub effective: Date,
    pub note: String,
}

/// A record as it arrives, before any check: the transport fills it from protobuf, the CSV
/// reader from a file.
#[derive(Debug, Clone, Default)]
pub struct RecordInput {
    pub household_code: String,
    /// Empty: the batch's effective date.
    pub effective_date: String,
    pub upsert: Option<DataInput>,
    pub removal: Option<RemovalInput>,
}

#[derive(Debug, Clone, Default)]
pub struct DataInput {
    pub category: Option<Category>,
    pub head_name: String,
    pub commune_code: String,
    pub address: String,
    pub certificate: Option<CertificateInput>,
    pub flags: HouseholdFlags,
    pub members: Vec<MemberInput>,
}

#[derive(Debug, Clone, Default)]
pub struct CertificateInput {
    pub number: String,
    pub issued_on: String,
    pub issuing_unit: String,
}

#[derive(Debug, Clone, Default)]
pub struct MemberInput {
    pub citizen_id: String,
    pub full_name: String,
    pub relationship: Option<Relationship>,
    pub birth_year: i32,
}

#[derive(Debug, Clone, Default)]
pub struct RemovalInput {
    pub reason: Option<RemovalReason>,
    pub note: String,
}

/// At most this many members in one household.
pub const MAX_MEMBERS: usize = 30;
/// How far ahead an effective date may lie.
pub const MAX_DAYS_AHEAD: i64 = 366;

/// What checking a record needs besides the record.
#[derive(Debug)]
pub struct CheckContext<'a> {
    pub units: &'a UnitTable,
    pub today: Date,
    pub batch_effective: Date,
    pub kind: BatchKind,
}

/// Checks one record; every problem is reported, each against its field, prefixed with
/// `records[INDEX] (CODE)` so that the labour department finds the row.
pub fn check_record(
    index: usize,
    input: &RecordInput,
    cx: &CheckContext<'_>,
) -> Result<HouseholdRecord, Vec<FieldViolation>> {
    let prefix = if input.household_code.is_empty() {
        format!("records[{index}]")
    } else {
        format!("records[{index}] ({})", input.household_code.chars().take(40).collect::<String>())
    };
    let mut v: Vec<FieldViolation> = Vec::new();
    let mut bad =
        |field: &str, description: String| v.push(FieldViolation::new(format!("{prefix}.{field}"), description));

    let code = HouseholdCode::parse(&input.household_code).map_err(|e| bad("household_code", e)).ok();
    let effective = if input.effective_date.is_empty() {
        Some(cx.batch_effective)
    } else {
        parse_date(&input.effective_date)
            .and_then(|d| check_effective(d, cx.today))
            .map_err(|e| bad("effective_date", e))
            .ok()
    };
    if cx.kind == BatchKind::Snapshot && effective.is_some_and(|d| d != cx.batch_effective) {
        bad("effective_date", "a snapshot takes effect as a whole, on the batch's effective date".to_owned());
    }
    let date = effective.unwrap_or(cx.batch_effective);

    let change = match (&input.upsert, &input.removal) {
        (Some(data), None) => check_data(data, date, cx, &mut bad).map(Change::Upsert),
        (None, Some(_)) if cx.kind == BatchKind::Snapshot => {
            bad(
                "removal",
                "a snapshot lists the households on the list; leave a household out to remove it".to_owned(),
            );
            None
        }
        (None, Some(removal)) => match removal.reason {
            Some(RemovalReason::NotInReview) | None => {
                bad(
                    "removal.reason",
                    "a reason is required: OUT_OF_POVERTY, MOVED_AWAY, DECEASED or RECORDED_IN_ERROR".to_owned(),
                );
                None
            }
            Some(reason) => free_text(&removal.note, 500)
                .map_err(|e| bad("removal.note", e))
                .ok()
                .map(|note| Change::Remove { reason, note }),
        },
        _ => {
            bad("change", "a record is either an upsert (the household's data) or a removal".to_owned());
            None
        }
    };
    match (code, effective, change) {
        (Some(code), Some(effective), Some(change)) if v.is_empty() => Ok(HouseholdRecord { code, effective, change }),
        _ => Err(v),
    }
}

fn check_effective(d: Date, today: Date) -> Result<Date, String> {
    if d > today + time::Duration::days(MAX_DAYS_AHEAD) {
        return Err(format!("{d} is more than a year ahead"));
    }
    if d.year() < 2000 {
        return Err(format!("{d} is before the programme's records begin (2000)"));
    }
    Ok(d)
}

fn check_data(
    d: &DataInput,
    effective: Date,
    cx: &CheckContext<'_>,
    bad: &mut impl FnMut(&str, String),
) -> Option<HouseholdData> {
    let mut ok = true;
    let mut fail = |field: &str, e: String| {
        ok = false;
        bad(field, e);
    };
    let category = d.category.or_else(|| {
        fail(
            "upsert.category",
            "a category is required: POOR, NEAR_POOR, SOCIAL_POLICY, MERITORIOUS_SERVICE or OTHER".to_owned(),
        );
        None
    });
    let head_name = person_name(&d.head_name).map_err(|e| fail("upsert.head_name", e)).unwrap_or_default();
    if let Err(e) = cx.units.commune_on(&d.commune_code, effective) {
        fail("upsert.commune_code", e);
    }
    let address = free_text(&d.address, 200).map_err(|e| fail("upsert.address", e)).unwrap_or_default();
    let certificate = d.certificate.as_ref().map(|c| {
        let number = free_text(&c.number, 60).map_err(|e| fail("upsert.certificate.number", e)).unwrap_or_default();
        if number.is_empty() {
            fail("upsert.certificate.number", "a certificate needs its number".to_owned());
        }
        match parse_date(&c.issued_on) {
            Ok(issued) if issued > cx.today => {
                fail("upsert.certificate.issued_on", format!("{issued} is in the future"))
            }
            Ok(issued) if issued.year() < 2000 => {
                fail("upsert.certificate.issued_on", format!("{issued} is before 2000"))
            }
            Ok(_) => {}
            Err(e) => fail("upsert.certificate.issued_on", e),
        }
        if let Err(e) = UnitCode::parse(&c.issuing_unit).and_then(|u| {
            cx.units.get(u.as_str()).map(|_| ()).ok_or_else(|| format!("{u} is not a known administrative unit"))
        }) {
            fail("upsert.certificate.issuing_unit", e);
        }
        Certificate { number, issued_on: c.issued_on.clone(), issuing_unit: c.issuing_unit.clone() }
    });

    if d.members.is_empty() {
        fail("upsert.members", "a household has at least one member (its head)".to_owned());
    }
    if d.members.len() > MAX_MEMBERS {
        fail("upsert.members", format!("{} members; at most {MAX_MEMBERS} are allowed", d.members.len()));
    }
    let mut members = Vec::with_capacity(d.members.len());
    let mut seen: Vec<&str> = Vec::with_capacity(d.members.len());
    for (i, m) in d.members.iter().enumerate() {
        let field = |f: &str| format!("upsert.members[{i}].{f}");
        let id = CitizenId::parse(&m.citizen_id, cx.units).map_err(|e| fail(&field("citizen_id"), e)).ok();
        if seen.contains(&m.citizen_id.as_str()) {
            fail(&field("citizen_id"), format!("{} appears twice in this household", m.citizen_id));
        }
        seen.push(&m.citizen_id);
        let name = person_name(&m.full_name).map_err(|e| fail(&field("full_name"), e)).unwrap_or_default();
        let relationship = m.relationship.unwrap_or_else(|| {
            fail(&field("relationship"), "a relationship to the head is required".to_owned());
            Relationship::Other
        });
        if m.birth_year > cx.today.year() || m.birth_year < 1900 {
            fail(&field("birth_year"), format!("{} is not a plausible year of birth", m.birth_year));
        } else if let Some(id) = &id
            && id.birth_year() != m.birth_year
        {
            fail(
                &field("birth_year"),
                format!("{} does not match the citizen ID, which says {}", m.birth_year, id.birth_year()),
            );
        }
        members.push(HouseholdMember {
            citizen_id: m.citizen_id.clone(),
            full_name: name,
            relationship,
            birth_year: m.birth_year,
        });
    }
    let heads = members.iter().filter(|m| m.relationship == Relationship::Head).count();
    if !d.members.is_empty() && heads != 1 {
        fail("upsert.members", format!("{heads} members are marked HEAD; exactly one is"));
    }
    if ok {
        Some(HouseholdData {
            category: category.expect("checked"),
            head_name,
            commune_code: d.commune_code.clone(),
            address,
            certificate,
            flags: d.flags,
            members,
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::units::{UnitTable, reference_units};
    use time::macros::date;

    fn units() -> UnitTable {
        UnitTable::new(reference_units().unwrap())
    }

    #[test]
    fn text_that_would_show_other_than_it_is_is_refused() {
        for bad in ["Nguyễn\u{202E}cba", "thôn\u{200B}3", "a\u{2066}b", "x\u{0007}", "\u{FEFF}note"] {
            let why = free_text(bad, 100).unwrap_err();
            assert!(why.contains("U+"), "{bad:?}: {why}");
            assert!(person_name(bad).is_err(), "{bad:?}");
            assert!(crate::domain::member::DisplayName::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(free_text("Tổ dân phố 3, Bon N'Drung", 100).unwrap(), "Tổ dân phố 3, Bon N'Drung");
    }

    fn member(id: &str, name: &str, rel: Relationship, year: i32) -> MemberInput {
        MemberInput { citizen_id: id.into(), full_name: name.into(), relationship: Some(rel), birth_year: year }
    }

    fn good() -> RecordInput {
        RecordInput {
            household_code: "HN-24611-0001".into(),
            effective_date: String::new(),
            upsert: Some(DataInput {
                category: Some(Category::Poor),
                head_name: "Nguyễn Văn An".into(),
                commune_code: "24611".into(),
                address: "Thôn 3".into(),
                certificate: Some(CertificateInput {
                    number: "123/GCN-HN.HCN".into(),
                    issued_on: "2024-01-15".into(),
                    issuing_unit: "24611".into(),
                }),
                flags: HouseholdFlags { wants_device: true, ..Default::default() },
                members: vec![
                    member("067080001234", "Nguyễn Văn An", Relationship::Head, 1980),
                    member("067185004321", "Trần Thị Bình", Relationship::Spouse, 1985),
                    member("067212000001", "Nguyễn Văn Cường", Relationship::Child, 2012),
                ],
            }),
            removal: None,
        }
    }

    fn cx(units: &UnitTable) -> CheckContext<'_> {
        CheckContext {
            units,
            today: date!(2026 - 11 - 25),
            batch_effective: date!(2026 - 11 - 01),
            kind: BatchKind::Delta,
        }
    }

    fn fields(r: Result<HouseholdRecord, Vec<FieldViolation>>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn a_good_record_passes_in_nfc() {
        let units = units();
        let mut input = good();
        input.upsert.as_mut().unwrap().head_name = "Nguye\u{302}\u{303}n  Văn An ".into();
        let record = check_record(0, &input, &cx(&units)).unwrap();
        assert_eq!(record.effective, date!(2026 - 11 - 01));
        let Change::Upsert(data) = record.change else { panic!() };
        assert_eq!(data.head_name, "Nguyễn Văn An");
        assert_eq!(data.members.len(), 3);
    }

    #[test]
    fn citizen_ids() {
        let units = units();
        let id = CitizenId::parse("067080001234", &units).unwrap();
        assert_eq!(id.birth_year(), 1980);
        assert_eq!(CitizenId::parse("067212000001", &units).unwrap().birth_year(), 2012);
        assert!(CitizenId::parse("06708000123", &units).unwrap_err().contains("12 digits"));
        assert!(CitizenId::parse("099080001234", &units).unwrap_err().contains("province"));
        assert!(CitizenId::parse("167080001234", &units).unwrap_err().contains("province"));
        assert!(CitizenId::parse("067580001234", &units).unwrap_err().contains("4th digit"));
    }

    #[test]
    fn every_bad_field_is_named_with_its_record() {
        let units = units();
        let mut input = good();
        {
            let d = input.upsert.as_mut().unwrap();
            d.category = None;
            d.commune_code = "99999".into();
            d.members[0].citizen_id = "067080001".into();
            d.members[1].birth_year = 1986;
            d.members[2].full_name = "  ".into();
        }
        let f = fields(check_record(7, &input, &cx(&units)));
        let p = "records[7] (HN-24611-0001).upsert";
        assert_eq!(
            f,
            [
                format!("{p}.category"),
                format!("{p}.commune_code"),
                format!("{p}.members[0].citizen_id"),
                format!("{p}.members[1].birth_year"),
                format!("{p}.members[2].full_name"),
            ]
        );
    }

    #[test]
    fn dates_and_heads_and_duplicates() {
        let units = units();
        let mut input = good();
        input.effective_date = "2029-01-01".into();
        input.upsert.as_mut().unwrap().members[1].relationship = Some(Relationship::Head);
        input.upsert.as_mut().unwrap().members[2].citizen_id = "067080001234".into();
        input.upsert.as_mut().unwrap().members[2].birth_year = 1980;
        let f = fields(check_record(0, &input, &cx(&units)));
        assert!(f.iter().any(|f| f.ends_with("effective_date")), "{f:?}");
        assert!(f.iter().any(|f| f.ends_with("members[2].citizen_id")), "{f:?}");
        assert!(f.iter().any(|f| f.ends_with("upsert.members")), "{f:?}");
        input.effective_date = "2026-02-30".into();
        assert!(fields(check_record(0, &input, &cx(&units))).iter().any(|f| f.ends_with("effective_date")));
    }

    #[test]
    fn removals_need_a_reason_and_are_not_part_of_snapshots() {
        let units = units();
        let removal = RecordInput {
            household_code: "HN-1".into(),
            removal: Some(RemovalInput { reason: None, note: String::new() }),
            ..Default::default()
        };
        assert_eq!(fields(check_record(0, &removal, &cx(&units))), ["records[0] (HN-1).removal.reason"]);
        let mut snapshot = cx(&units);
        snapshot.kind = BatchKind::Snapshot;
        assert_eq!(fields(check_record(0, &removal, &snapshot)), ["records[0] (HN-1).removal"]);
        let neither = RecordInput { household_code: String::new(), ..Default::default() };
        assert_eq!(fields(check_record(3, &neither, &cx(&units))), ["records[3].household_code", "records[3].change"]);
    }

    #[test]
    fn equal_states_hash_alike() {
        let units = units();
        let a = check_record(0, &good(), &cx(&units)).unwrap();
        let b = check_record(1, &good(), &cx(&units)).unwrap();
        let (Change::Upsert(a), Change::Upsert(b)) = (a.change, b.change) else { panic!() };
        assert_eq!(a.stored_form(), b.stored_form());
        let mut c = a.clone();
        c.flags.wants_device = false;
        assert_ne!(a.stored_form().1, c.stored_form().1);
        assert_eq!(HouseholdData::from_stored(&a.stored_form().0).unwrap(), a);
    }

    #[test]
    fn what_is_kept_beside_a_state_is_read_from_the_state_itself() {
        let units = units();
        let record = check_record(0, &good(), &cx(&units)).unwrap();
        let Change::Upsert(mut data) = record.change else { panic!() };
        assert_eq!(stored_traits(&data.stored_form().0), Ok((Category::Poor, true)));
        data.category = Category::NearPoor;
        data.flags.wants_device = false;
        assert_eq!(stored_traits(&data.stored_form().0), Ok((Category::NearPoor, false)));
        // Field order in the stored form does not matter, unlike a test on its text.
        let reordered = r#"{"flags":{"wants_device":true},"members":[],"head_name":"A","commune_code":"24611","category":"SOCIAL_POLICY"}"#;
        assert_eq!(stored_traits(reordered), Ok((Category::SocialPolicy, true)));
        assert!(stored_traits("{}").is_err());
    }

    #[test]
    fn review_periods_and_batch_ids() {
        assert!(ReviewPeriod::parse("2024").is_ok());
        assert!(ReviewPeriod::parse("2024-03").is_ok());
        for bad in ["24", "2024-13", "2024-3", "202403", "1999"] {
            assert!(ReviewPeriod::parse(bad).is_err(), "{bad}");
        }
        assert!(BatchId::parse("dolisa-2024-03.1").is_ok());
        assert!(BatchId::parse("a b").is_err());
    }
}
