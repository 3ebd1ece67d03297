//! The register held in memory: every household's states and enrolments, each encoded as one
//! compact record in fixed-size segments, found by household code, citizen ID or certificate
//! number without asking the database. An eligibility question then costs a few lookups in
//! memory instead of a read through the database's connection thread (see
//! docs/BENCHMARKS.md, issue 4).
//!
//! [`RegisterIndex`] is the data structure alone; the held register (`held.rs`) keeps one
//! current with the backend's change log and answers from it what the backend would otherwise
//! read with `states_matching`. A lookup gives exactly the
//! histories the database gives: every state of every household the value matched, and every
//! enrolment of those households.
//!
//! The encoding of one household (integers little-endian; a date is its Julian day as `i32`,
//! `i32::MIN` for none):
//!
//! ```text
//! code: u8 length, bytes
//! enrolments: u16 count, each: u16 operator (index into the operator table), start date,
//!             end date or none
//! states: u16 count, oldest first, each: valid from, valid to or none, u8 removal reason
//!         (0 for none, else 1 + its place in RemovalReason::ALL), u8 category (its place in
//!         Category::ALL), commune code (u8 length, bytes), head's name (u16 length, bytes),
//!         certificate number (u8: 0 none, 1 some; then u8 length, bytes), members' citizen
//!         IDs (u8 count, each a u64: the 12 digits as a number)
//! ```

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
};

use time::Date;

use crate::domain::{
    eligibility::{Facts, History, Holding, QueryKind, State},
    household::{Category, RemovalReason},
};

/// How a date that is not there is written.
const NO_DATE: i32 = i32::MIN;

/// Every household's history, by slot, and the maps from what questions ask to slots.
#[derive(Debug, Default)]
pub struct RegisterIndex {
    arena: Arena,
    /// Where each slot's record starts in the arena.
    offsets: Vec<Place>,
    /// Bytes of the arena no slot points to any more (replaced records).
    garbage: usize,
    /// The record being encoded.
    scratch: Vec<u8>,
    operators: Vec<String>,
    operator_ids: HashMap<String, u16>,
    by_code: KeyMap,
    by_citizen: KeyMap,
    by_certificate: KeyMap,
    /// The last change of the register's change log this index reflects.
    pub seq: i64,
}

/// Why a household cannot be held: a value outside what the encoding holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("household {code}: {what}")]
pub struct Unindexable {
    pub code: String,
    pub what: String,
}

impl RegisterIndex {
    /// An empty index at change `seq`.
    pub fn new(seq: i64) -> Self {
        Self { seq, ..Self::default() }
    }

    /// Households held.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Bytes held, about.
    pub fn bytes(&self) -> usize {
        self.arena.bytes()
            + self.offsets.capacity() * size_of::<Place>()
            + self.by_code.bytes()
            + self.by_citizen.bytes()
            + self.by_certificate.bytes()
    }

    /// Holds `history` in place of whatever was held for its household. Until [`Self::settle`]
    /// runs, lookups miss it, and no other history of the same household may be put.
    pub fn put(&mut self, history: &History) -> Result<(), Unindexable> {
        let unindexable = |what: String| Unindexable { code: history.code.clone(), what };
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let encoded = self.encode(history, &mut scratch);
        let slot = match encoded.and_then(|()| self.slot_to_put(&history.code)) {
            Ok(slot) => slot,
            Err(what) => {
                self.scratch = scratch;
                return Err(unindexable(what));
            }
        };
        let place = self.arena.push(&scratch);
        self.scratch = scratch;
        let slot = match slot {
            Some(slot) => {
                let old = self.offsets[slot as usize];
                self.garbage += Reader::new(self.arena.at(old)).skip_record();
                self.offsets[slot as usize] = place;
                slot
            }
            None => {
                let slot = self.offsets.len() as u32;
                self.offsets.push(place);
                self.by_code.add(text_key(&history.code), slot);
                slot
            }
        };
        for state in &history.states {
            for id in &state.facts.citizen_ids {
                if let Some(key) = citizen_key(id) {
                    self.by_citizen.add_new(key, slot);
                }
            }
            if let Some(number) = &state.facts.certificate_number {
                self.by_certificate.add_new(text_key(number), slot);
            }
        }
        Ok(())
    }

    /// The slot of the household when it is held; `None` for a new one, when there is room.
    fn slot_to_put(&self, code: &str) -> Result<Option<u32>, String> {
        match self.slot_of(code) {
            Some(slot) => Ok(Some(slot)),
            None if self.offsets.len() < MAX_SLOTS => Ok(None),
            None => Err(format!("more than {MAX_SLOTS} households: more than the index holds")),
        }
    }

    /// Makes every household put since the last call findable, and gives back the space of
    /// replaced records when they take more than the live ones.
    pub fn settle(&mut self) {
        self.by_code.merge();
        self.by_citizen.merge();
        self.by_certificate.merge();
        if self.garbage > (64 << 20) && self.garbage > self.arena.len / 2 {
            let mut arena = Arena::default();
            for place in &mut self.offsets {
                let record = self.arena.at(*place);
                let len = Reader::new(record).skip_record();
                *place = arena.push(&record[..len]);
            }
            self.arena = arena;
            self.garbage = 0;
        }
    }

    /// The histories of the households `value` matches, by code: for a citizen ID, the
    /// households it was ever a member of; for a household code, that household; for a
    /// certificate number, the households that ever held it.
    pub fn find(&self, kind: QueryKind, value: &str) -> Vec<History> {
        let mut slots = Vec::new();
        match kind {
            QueryKind::CitizenId => {
                if let Some(key) = citizen_key(value) {
                    self.by_citizen.get(key, &mut slots);
                }
            }
            QueryKind::HouseholdCode => self.by_code.get(text_key(value), &mut slots),
            QueryKind::CertificateNumber => self.by_certificate.get(text_key(value), &mut slots),
        }
        slots.sort_unstable();
        slots.dedup();
        let mut found: Vec<History> = slots
            .into_iter()
            .map(|slot| self.decode(slot))
            .filter(|h| match kind {
                QueryKind::CitizenId => h.states.iter().any(|s| s.facts.citizen_ids.iter().any(|id| id == value)),
                QueryKind::HouseholdCode => h.code == value && !h.states.is_empty(),
                QueryKind::CertificateNumber => {
                    h.states.iter().any(|s| s.facts.certificate_number.as_deref() == Some(value))
                }
            })
            .collect();
        found.sort_unstable_by(|a, b| a.code.cmp(&b.code));
        found
    }

    /// The slot of a household held at the last settle.
    fn slot_of(&self, code: &str) -> Option<u32> {
        let mut slots = Vec::new();
        self.by_code.get(text_key(code), &mut slots);
        slots.into_iter().find(|slot| Reader::new(self.arena.at(self.offsets[*slot as usize])).str8() == code)
    }

    fn operator_id(&mut self, operator: &str) -> Result<u16, String> {
        if let Some(id) = self.operator_ids.get(operator) {
            return Ok(*id);
        }
        let id = u16::try_from(self.operators.len()).map_err(|_| "too many operators".to_owned())?;
        self.operators.push(operator.to_owned());
        self.operator_ids.insert(operator.to_owned(), id);
        Ok(id)
    }

    fn encode(&mut self, h: &History, out: &mut Vec<u8>) -> Result<(), String> {
        let operators: Vec<u16> =
            h.enrollments.iter().map(|e| self.operator_id(&e.operator)).collect::<Result<_, _>>()?;
        put_str8(out, &h.code, "household code")?;
        put_count16(out, h.enrollments.len(), "enrolments")?;
        for (e, operator) in h.enrollments.iter().zip(operators) {
            out.extend_from_slice(&operator.to_le_bytes());
            put_date(out, Some(e.start_date));
            put_date(out, e.end_date);
        }
        put_count16(out, h.states.len(), "states")?;
        for s in &h.states {
            put_date(out, Some(s.valid_from));
            put_date(out, s.valid_to);
            out.push(match s.removal {
                None => 0,
                Some(r) => 1 + RemovalReason::ALL.iter().position(|x| *x == r).expect("every reason is listed") as u8,
            });
            out.push(Category::ALL.iter().position(|c| *c == s.facts.category).expect("every category is listed") as u8);
            put_str8(out, &s.facts.commune_code, "commune code")?;
            let head = s.facts.head_name.as_bytes();
            let len = u16::try_from(head.len()).map_err(|_| "head's name too long".to_owned())?;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(head);
            match &s.facts.certificate_number {
                None => out.push(0),
                Some(n) => {
                    out.push(1);
                    put_str8(out, n, "certificate number")?;
                }
            }
            let count = u8::try_from(s.facts.citizen_ids.len()).map_err(|_| "too many members".to_owned())?;
            out.push(count);
            for id in &s.facts.citizen_ids {
                let key = citizen_key(id).ok_or_else(|| format!("member {id:?} is not a 12-digit citizen ID"))?;
                out.extend_from_slice(&key.to_le_bytes());
            }
        }
        Ok(())
    }

    fn decode(&self, slot: u32) -> History {
        let mut r = Reader::new(self.arena.at(self.offsets[slot as usize]));
        let code = r.str8().to_owned();
        let enrollments = (0..r.u16())
            .map(|_| {
                let operator = self.operators[usize::from(r.u16())].clone();
                let start_date = r.date().expect("an enrolment has a start");
                Holding { operator, start_date, end_date: r.date() }
            })
            .collect();
        let states = (0..r.u16())
            .map(|_| {
                let valid_from = r.date().expect("a state has a start");
                let valid_to = r.date();
                let removal = match r.u8() {
                    0 => None,
                    n => Some(RemovalReason::ALL[usize::from(n - 1)]),
                };
                let category = Category::ALL[usize::from(r.u8())];
                let commune_code = r.str8().to_owned();
                let len = usize::from(r.u16());
                let head_name = std::str::from_utf8(r.take(len)).expect("encoded from a string").to_owned();
                let certificate_number = (r.u8() == 1).then(|| r.str8().to_owned());
                let citizen_ids = (0..r.u8()).map(|_| format!("{:012}", r.u64())).collect();
                State {
                    valid_from,
                    valid_to,
                    removal,
                    facts: Facts { category, head_name, commune_code, certificate_number, citizen_ids },
                }
            })
            .collect();
        History { code, states, enrollments }
    }
}

fn put_str8(out: &mut Vec<u8>, s: &str, what: &str) -> Result<(), String> {
    let len = u8::try_from(s.len()).map_err(|_| format!("{what} too long"))?;
    out.push(len);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_count16(out: &mut Vec<u8>, n: usize, what: &str) -> Result<(), String> {
    let n = u16::try_from(n).map_err(|_| format!("too many {what}"))?;
    out.extend_from_slice(&n.to_le_bytes());
    Ok(())
}

fn put_date(out: &mut Vec<u8>, d: Option<Date>) {
    out.extend_from_slice(&d.map_or(NO_DATE, Date::to_julian_day).to_le_bytes());
}

/// A citizen ID as a number: exact for the 12-digit IDs the register holds.
fn citizen_key(id: &str) -> Option<u64> {
    (id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.parse().ok()).flatten()
}

/// A text's key: its hash. Lookups check the text itself, so two texts sharing a hash only
/// cost a look at both.
fn text_key(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// Reads a record back; records are written by this module only, so a short one is a bug.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        out
    }

    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take(2).try_into().expect("two bytes"))
    }

    fn i32(&mut self) -> i32 {
        i32::from_le_bytes(self.take(4).try_into().expect("four bytes"))
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take(8).try_into().expect("eight bytes"))
    }

    fn date(&mut self) -> Option<Date> {
        match self.i32() {
            NO_DATE => None,
            day => Some(Date::from_julian_day(day).expect("encoded from a date")),
        }
    }

    fn str8(&mut self) -> &'a str {
        let len = usize::from(self.u8());
        std::str::from_utf8(self.take(len)).expect("encoded from a string")
    }

    /// Passes over one record; returns its length.
    fn skip_record(&mut self) -> usize {
        let code = usize::from(self.u8());
        self.take(code);
        let enrollments = usize::from(self.u16());
        self.take(enrollments * 10);
        for _ in 0..self.u16() {
            self.take(10);
            let commune = usize::from(self.u8());
            self.take(commune);
            let head = usize::from(self.u16());
            self.take(head);
            if self.u8() == 1 {
                let n = usize::from(self.u8());
                self.take(n);
            }
            let members = usize::from(self.u8());
            self.take(members * 8);
        }
        self.at
    }
}

/// The most households the index holds: a slot takes 24 bits of a key map's entry.
const MAX_SLOTS: usize = (1 << SLOT_BITS) - 1;
const SLOT_BITS: u32 = 24;
/// A key map's entry: 40 bits of key, then the slot.
const KEY_BITS: u32 = 64 - SLOT_BITS;

/// Where a record is: its segment, and where it starts in it.
#[derive(Debug, Clone, Copy)]
struct Place {
    segment: u32,
    start: u32,
}

/// Records, in segments of a fixed size: the arena grows a segment at a time, never by
/// copying everything into an allocation twice the size.
#[derive(Debug, Default)]
struct Arena {
    segments: Vec<Vec<u8>>,
    /// Bytes of records held.
    len: usize,
}

/// Bytes in a segment (a larger record gets a segment of its own).
const SEGMENT: usize = 4 << 20;

impl Arena {
    fn push(&mut self, record: &[u8]) -> Place {
        let fits = self.segments.last().is_some_and(|s| s.capacity() - s.len() >= record.len());
        if !fits {
            self.segments.push(Vec::with_capacity(SEGMENT.max(record.len())));
        }
        let segment = self.segments.len() - 1;
        let last = &mut self.segments[segment];
        let start = last.len();
        last.extend_from_slice(record);
        self.len += record.len();
        Place { segment: segment as u32, start: start as u32 }
    }

    /// The bytes from a record's start to its segment's end.
    fn at(&self, place: Place) -> &[u8] {
        &self.segments[place.segment as usize][place.start as usize..]
    }

    fn bytes(&self) -> usize {
        self.segments.iter().map(Vec::capacity).sum()
    }
}

/// A many-to-many map from keys (40 bits: a citizen ID's number, or a text's hash cut to 40
/// bits) to slots, each pair packed in one `u64` and kept sorted; pairs added since the last
/// merge wait beside.
#[derive(Debug, Default)]
struct KeyMap {
    entries: Vec<u64>,
    added: Vec<u64>,
}

fn entry(key: u64, slot: u32) -> u64 {
    (key & ((1 << KEY_BITS) - 1)) << SLOT_BITS | u64::from(slot)
}

impl KeyMap {
    fn bytes(&self) -> usize {
        (self.entries.capacity() + self.added.capacity()) * 8
    }

    fn add(&mut self, key: u64, slot: u32) {
        self.added.push(entry(key, slot));
    }

    /// Adds the pair unless the merged entries hold it already.
    fn add_new(&mut self, key: u64, slot: u32) {
        let e = entry(key, slot);
        if self.entries.binary_search(&e).is_err() {
            self.added.push(e);
        }
    }

    /// The slots of a key, as of the last merge.
    fn get(&self, key: u64, out: &mut Vec<u32>) {
        let first = entry(key, 0);
        let from = self.entries.partition_point(|e| *e < first);
        out.extend(
            self.entries[from..]
                .iter()
                .take_while(|e| *e >> SLOT_BITS == first >> SLOT_BITS)
                .map(|e| (*e & ((1 << SLOT_BITS) - 1)) as u32),
        );
    }

    fn merge(&mut self) {
        if self.added.is_empty() {
            return;
        }
        let mut added = std::mem::take(&mut self.added);
        added.sort_unstable();
        added.dedup();
        if self.entries.is_empty() {
            // Building: the added pairs are the map.
            self.entries = added;
            return;
        }
        let mut merged = Vec::with_capacity(self.entries.len() + added.len());
        let (mut i, mut j) = (0, 0);
        while i < self.entries.len() || j < added.len() {
            let e = if j == added.len() || (i < self.entries.len() && self.entries[i] <= added[j]) {
                i += 1;
                self.entries[i - 1]
            } else {
                j += 1;
                added[j - 1]
            };
            if merged.last() != Some(&e) {
                merged.push(e);
            }
        }
        self.entries = merged;
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn state(from: Date, to: Option<Date>, category: Category, certificate: Option<&str>, members: &[&str]) -> State {
        State {
            valid_from: from,
            valid_to: to,
            removal: None,
            facts: Facts {
                category,
                head_name: "Nguyễn Văn An".into(),
                commune_code: "24611".into(),
                certificate_number: certificate.map(Into::into),
                citizen_ids: members.iter().map(|m| (*m).to_owned()).collect(),
            },
        }
    }

    fn history(code: &str, states: Vec<State>, enrollments: Vec<Holding>) -> History {
        History { code: code.into(), states, enrollments }
    }

    #[test]
    fn a_household_reads_back_as_put_by_each_key() {
        let mut removed = state(date!(2025 - 03 - 01), None, Category::NearPoor, None, &["067080001234"]);
        removed.removal = Some(RemovalReason::ALL[1]);
        let h = history(
            "HH-1",
            vec![
                state(
                    date!(2025 - 01 - 01),
                    Some(date!(2025 - 03 - 01)),
                    Category::Poor,
                    Some("GCN/1"),
                    &["067080001234", "067190005678"],
                ),
                removed,
            ],
            vec![
                Holding { operator: "VNPT".into(), start_date: date!(2025 - 01 - 05), end_date: None },
                Holding {
                    operator: "VIETTEL".into(),
                    start_date: date!(2024 - 06 - 01),
                    end_date: Some(date!(2025 - 01 - 05)),
                },
            ],
        );
        let mut index = RegisterIndex::new(7);
        index.put(&h).unwrap();
        index
            .put(&history(
                "HH-2",
                vec![state(date!(2025 - 01 - 01), None, Category::Poor, None, &["067190005678"])],
                vec![],
            ))
            .unwrap();
        index.settle();
        assert_eq!(index.find(QueryKind::HouseholdCode, "HH-1"), std::slice::from_ref(&h));
        assert_eq!(index.find(QueryKind::CertificateNumber, "GCN/1"), std::slice::from_ref(&h));
        assert_eq!(index.find(QueryKind::CitizenId, "067080001234"), std::slice::from_ref(&h));
        let both = index.find(QueryKind::CitizenId, "067190005678");
        assert_eq!(both.iter().map(|h| h.code.as_str()).collect::<Vec<_>>(), ["HH-1", "HH-2"]);
        assert!(index.find(QueryKind::HouseholdCode, "HH-3").is_empty());
        assert!(index.find(QueryKind::CitizenId, "067080009999").is_empty());
        assert!(index.find(QueryKind::CitizenId, "not an id").is_empty());
    }

    #[test]
    fn a_household_put_again_replaces_the_first_and_keeps_every_key() {
        let mut index = RegisterIndex::new(0);
        let first = history(
            "HH-1",
            vec![state(date!(2025 - 01 - 01), None, Category::Poor, Some("A"), &["067080001234"])],
            vec![],
        );
        index.put(&first).unwrap();
        index.settle();
        let mut second = first.clone();
        second.states[0].valid_to = Some(date!(2025 - 02 - 01));
        second.states.push(state(date!(2025 - 02 - 01), None, Category::NearPoor, Some("B"), &["067190005678"]));
        second.enrollments.push(Holding { operator: "VNPT".into(), start_date: date!(2025 - 01 - 10), end_date: None });
        index.put(&second).unwrap();
        index.settle();
        assert_eq!(index.len(), 1);
        for (kind, value) in [
            (QueryKind::HouseholdCode, "HH-1"),
            (QueryKind::CitizenId, "067080001234"),
            (QueryKind::CitizenId, "067190005678"),
            (QueryKind::CertificateNumber, "A"),
            (QueryKind::CertificateNumber, "B"),
        ] {
            assert_eq!(index.find(kind, value), [second.clone()], "{value}");
        }
    }

    #[test]
    fn replaced_records_are_given_back() {
        let mut index = RegisterIndex::new(0);
        let mut h =
            history("HH-1", vec![state(date!(2025 - 01 - 01), None, Category::Poor, None, &["067080001234"])], vec![]);
        let name = "Trần Thị Bình ".repeat(200);
        h.states[0].facts.head_name = name.trim().to_owned();
        for _ in 0..30_000 {
            index.put(&h).unwrap();
            index.settle();
        }
        assert_eq!(index.len(), 1);
        assert!(index.arena.len < 64 << 20, "{}", index.arena.len);
        assert_eq!(index.find(QueryKind::HouseholdCode, "HH-1"), [h]);
    }

    #[test]
    fn many_households_fill_several_segments_and_are_all_found() {
        let mut index = RegisterIndex::new(0);
        let households: Vec<History> = (0..40_000u64)
            .map(|n| {
                let mut s = state(date!(2025 - 01 - 01), None, Category::Poor, Some(&format!("{n}/GCN")), &[]);
                s.facts.citizen_ids =
                    vec![format!("{:012}", 67_000_000_000 + n), format!("{:012}", 68_000_000_000 + n)];
                s.facts.head_name = format!("Nguyễn Văn {n} ").repeat(8);
                history(&format!("HH-{n:07}"), vec![s], vec![])
            })
            .collect();
        for h in &households {
            index.put(h).unwrap();
        }
        index.settle();
        assert!(index.arena.segments.len() > 2, "{}", index.arena.segments.len());
        for (n, h) in households.iter().enumerate().step_by(997) {
            assert_eq!(index.find(QueryKind::HouseholdCode, &h.code), std::slice::from_ref(h));
            assert_eq!(
                index.find(QueryKind::CitizenId, &format!("{:012}", 68_000_000_000 + n as u64)),
                std::slice::from_ref(h)
            );
            assert_eq!(index.find(QueryKind::CertificateNumber, &format!("{n}/GCN")), std::slice::from_ref(h));
        }
    }

    #[test]
    fn what_the_encoding_cannot_hold_is_refused_and_leaves_nothing() {
        let mut index = RegisterIndex::new(0);
        let bad = history("HH-1", vec![state(date!(2025 - 01 - 01), None, Category::Poor, None, &["12345"])], vec![]);
        let err = index.put(&bad).unwrap_err();
        assert!(err.to_string().contains("HH-1") && err.to_string().contains("12345"), "{err}");
        assert!(index.is_empty());
        assert_eq!(index.arena.len, 0);
    }
}
