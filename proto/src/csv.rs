//! The CSV form of household records, as the labour department's staff export them from
//! their own system or from Excel (the format is described in `docs/CSV.md`).
//!
//! One row per household member, the household's own columns repeated on each of its rows,
//! the rows of one household consecutive. [`CsvReader`] turns the rows back into one
//! [`proto::HouseholdRecord`] per household, streaming; [`CsvWriter`] writes records as rows.
//!
//! The reader checks only the format: column names and order, enum names, flags, birth
//! years as whole numbers, rows of one household that agree with each other. Whether a
//! citizen ID, a date or a commune code is valid is for the hub to say, naming the record
//! by its index and household code.
//!
//! ```
//! use telesub_proto::csv::{CsvReader, CsvWriter};
//!
//! let text = "household_code,change,effective_date,category,head_name,commune_code,address,\
//! certificate_number,certificate_issued_on,certificate_issuing_unit,earlier_programme_device,\
//! wants_device,meritorious_service_family,social_policy_family,removal_reason,removal_note,\
//! citizen_id,full_name,relationship,birth_year\n\
//! 0660001,REMOVE,2024-03-01,,,,,,,,,,,,OUT_OF_POVERTY,,,,,\n";
//! let records = CsvReader::new(text.as_bytes())?.collect::<Result<Vec<_>, _>>()?;
//! assert_eq!(records[0].household_code, "0660001");
//!
//! let mut writer = CsvWriter::new(Vec::new())?;
//! writer.write(&records[0])?;
//! assert_eq!(String::from_utf8(writer.finish()?)?, text.replace('\n', "\r\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::{
    collections::HashMap,
    fmt,
    io::{self, Read, Write},
};

use crate::{
    rows::{RowFailure, RowReader, RowWriter},
    v1::{self as proto, Category, Relationship, RemovalReason, household_record::Change},
};

/// The header row: exactly these columns, in this order.
pub const COLUMNS: [&str; 20] = [
    "household_code",
    "change",
    "effective_date",
    "category",
    "head_name",
    "commune_code",
    "address",
    "certificate_number",
    "certificate_issued_on",
    "certificate_issuing_unit",
    "earlier_programme_device",
    "wants_device",
    "meritorious_service_family",
    "social_policy_family",
    "removal_reason",
    "removal_note",
    "citizen_id",
    "full_name",
    "relationship",
    "birth_year",
];

const HOUSEHOLD_CODE: usize = 0;
const CHANGE: usize = 1;
const EFFECTIVE_DATE: usize = 2;
const CATEGORY: usize = 3;
const HEAD_NAME: usize = 4;
const COMMUNE_CODE: usize = 5;
const ADDRESS: usize = 6;
const CERTIFICATE_NUMBER: usize = 7;
const CERTIFICATE_ISSUED_ON: usize = 8;
const CERTIFICATE_ISSUING_UNIT: usize = 9;
const EARLIER_PROGRAMME_DEVICE: usize = 10;
const WANTS_DEVICE: usize = 11;
const MERITORIOUS_SERVICE_FAMILY: usize = 12;
const SOCIAL_POLICY_FAMILY: usize = 13;
const REMOVAL_REASON: usize = 14;
const REMOVAL_NOTE: usize = 15;
const CITIZEN_ID: usize = 16;
const FULL_NAME: usize = 17;
const RELATIONSHIP: usize = 18;
const BIRTH_YEAR: usize = 19;

/// The household's own columns, repeated on each of its rows; the rest describe one member.
const HOUSEHOLD_COLUMNS: std::ops::Range<usize> = HOUSEHOLD_CODE..CITIZEN_ID;
const MEMBER_COLUMNS: std::ops::Range<usize> = CITIZEN_ID..COLUMNS.len();
const FLAG_COLUMNS: std::ops::RangeInclusive<usize> = EARLIER_PROGRAMME_DEVICE..=SOCIAL_POLICY_FAMILY;
const ENUM_COLUMNS: [usize; 4] = [CHANGE, CATEGORY, REMOVAL_REASON, RELATIONSHIP];

const UPSERT: &str = "UPSERT";
const REMOVE: &str = "REMOVE";

const CATEGORIES: [(&str, Category); 5] = [
    ("POOR", Category::Poor),
    ("NEAR_POOR", Category::NearPoor),
    ("SOCIAL_POLICY", Category::SocialPolicy),
    ("MERITORIOUS_SERVICE", Category::MeritoriousService),
    ("OTHER", Category::Other),
];

const RELATIONSHIPS: [(&str, Relationship); 8] = [
    ("HEAD", Relationship::Head),
    ("SPOUSE", Relationship::Spouse),
    ("CHILD", Relationship::Child),
    ("PARENT", Relationship::Parent),
    ("GRANDCHILD", Relationship::Grandchild),
    ("GRANDPARENT", Relationship::Grandparent),
    ("SIBLING", Relationship::Sibling),
    ("OTHER", Relationship::Other),
];

/// The reasons a sender may give; `NOT_IN_REVIEW` is the hub's own, written but never read.
const REMOVAL_REASONS: [(&str, RemovalReason); 4] = [
    ("OUT_OF_POVERTY", RemovalReason::OutOfPoverty),
    ("MOVED_AWAY", RemovalReason::MovedAway),
    ("DECEASED", RemovalReason::Deceased),
    ("RECORDED_IN_ERROR", RemovalReason::RecordedInError),
];
const NOT_IN_REVIEW: &str = "NOT_IN_REVIEW";

/// A row of the file that does not fit the format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvError {
    /// 1-based line of the file (the header is line 1); for a row spanning several lines (a
    /// quoted value with line breaks), the line it starts on.
    pub line: u64,
    /// The column, when the error is about one.
    pub column: Option<String>,
    pub message: String,
}

impl CsvError {
    fn new(line: u64, column: Option<usize>, message: impl Into<String>) -> Self {
        Self { line, column: column.and_then(|c| COLUMNS.get(c)).map(|c| (*c).to_owned()), message: message.into() }
    }
}

impl fmt::Display for CsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(column) => write!(f, "line {}, column {column}: {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

impl std::error::Error for CsvError {}

/// Reads household records from CSV: one item per household, in file order.
///
/// Streaming: it holds the household being assembled and the row after it, never the file.
/// To tell a household code that reappears further down, it remembers every code it has seen
/// (a few bytes each).
///
/// After an error about one household, reading goes on with the next household, so that a
/// caller may list every error of a file; after a failure to read the file itself (I/O),
/// the iterator ends.
pub struct CsvReader<R: Read> {
    rows: RowReader<R>,
    /// The row read ahead: the first of the next household (or the failure to read it).
    pending: Option<Result<Row, RowFailure>>,
    /// The rows of a household that failed are passed over.
    skip: Option<String>,
    /// Household code → the line it first appeared on.
    seen: HashMap<String, u64>,
    line: u64,
    done: bool,
}

struct Row {
    line: u64,
    /// Exactly [`COLUMNS`]`.len()` values, trimmed.
    fields: Vec<String>,
}

impl Row {
    fn code(&self) -> &str {
        &self.fields[HOUSEHOLD_CODE]
    }

    fn error(&self, column: usize, message: impl Into<String>) -> CsvError {
        CsvError::new(self.line, Some(column), message)
    }
}

impl<R: Read> CsvReader<R> {
    /// Starts reading, checking the header row (after an optional UTF-8 BOM).
    pub fn new(reader: R) -> Result<Self, CsvError> {
        let rows = RowReader::new(reader, &COLUMNS)?;
        Ok(Self { rows, pending: None, skip: None, seen: HashMap::new(), line: 1, done: false })
    }

    /// The line on which the household last returned (or the error last returned) starts;
    /// 1, the header, before the first.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The next row with content, as found in the file.
    fn read_row(&mut self) -> Option<Result<Row, RowFailure>> {
        Some(self.rows.next_row(self.line)?.map(|row| Row { line: row.line, fields: row.fields }))
    }

    /// The next row, passing over the rest of a household that failed.
    fn next_row(&mut self) -> Option<Result<Row, RowFailure>> {
        loop {
            let row = self.pending.take().or_else(|| self.read_row())?;
            let code = match &row {
                Ok(row) => Some(row.code()),
                Err(failure) => failure.first.as_deref(),
            };
            if self.skip.is_some() && self.skip.as_deref() == code {
                continue;
            }
            self.skip = None;
            return Some(row);
        }
    }

    fn household(&mut self, first: Row) -> Result<proto::HouseholdRecord, CsvError> {
        let code = first.code().to_owned();
        if code.is_empty() {
            return Err(first.error(HOUSEHOLD_CODE, "is empty"));
        }
        if let Some(earlier) = self.seen.get(&code) {
            self.skip = Some(code.clone());
            return Err(first.error(
                HOUSEHOLD_CODE,
                format!("household {code} was already on line {earlier}; the rows of a household must be consecutive"),
            ));
        }
        self.seen.insert(code.clone(), first.line);
        let result = self.assemble(first);
        if result.is_err() {
            self.skip = Some(code);
        }
        result
    }

    /// The household that starts with `first`, from it and the rows that follow with its code.
    fn assemble(&mut self, first: Row) -> Result<proto::HouseholdRecord, CsvError> {
        let mut record = parse_household(&first)?;
        let mut first_has_member = false;
        if let Some(Change::Upsert(data)) = &mut record.change
            && let Some(member) = parse_member(&first)?
        {
            data.members.push(member);
            first_has_member = true;
        }
        let canonical = canonical_household(&first)?;
        loop {
            let row = match self.read_row() {
                None => break,
                Some(Ok(row)) if row.code() == record.household_code => row,
                Some(Err(failure)) if failure.first.as_ref().is_none_or(|c| *c == record.household_code) => {
                    self.done |= failure.fatal;
                    return Err(failure.error);
                }
                Some(other) => {
                    self.pending = Some(other);
                    break;
                }
            };
            let Some(Change::Upsert(data)) = &mut record.change else {
                let message = format!(
                    "household {} is removed on line {}; a REMOVE is a single row",
                    record.household_code, first.line
                );
                return Err(CsvError::new(row.line, None, message));
            };
            for (column, (value, expected)) in canonical_household(&row)?.iter().zip(&canonical).enumerate() {
                if value != expected {
                    return Err(row.error(
                        column,
                        format!(
                            "{:?} here but {:?} on line {}; the household's columns must be the same on each of its rows",
                            row.fields[column], first.fields[column], first.line
                        ),
                    ));
                }
            }
            if !first_has_member {
                let message = format!(
                    "no member on this row, but household {} has more rows; each must name a member",
                    record.household_code
                );
                return Err(first.error(CITIZEN_ID, message));
            }
            match parse_member(&row)? {
                Some(member) => data.members.push(member),
                None => {
                    return Err(row.error(
                        CITIZEN_ID,
                        "no member on this row; each row of a household with several rows must name a member",
                    ));
                }
            }
        }
        Ok(record)
    }
}

impl<R: Read> Iterator for CsvReader<R> {
    type Item = Result<proto::HouseholdRecord, CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let result = match self.next_row()? {
            Ok(first) => {
                self.line = first.line;
                self.household(first)
            }
            Err(failure) => {
                self.done |= failure.fatal;
                self.skip = failure.first;
                Err(failure.error)
            }
        };
        if let Err(error) = &result {
            self.line = error.line;
        }
        Some(result)
    }
}

/// The record of a household from its first row, members aside.
fn parse_household(row: &Row) -> Result<proto::HouseholdRecord, CsvError> {
    let field = |column: usize| row.fields[column].clone();
    let change = match row.fields[CHANGE].to_ascii_uppercase().as_str() {
        UPSERT => {
            for column in [REMOVAL_REASON, REMOVAL_NOTE] {
                if !row.fields[column].is_empty() {
                    return Err(row.error(column, "must be empty on an UPSERT row"));
                }
            }
            let certificate = [CERTIFICATE_NUMBER, CERTIFICATE_ISSUED_ON, CERTIFICATE_ISSUING_UNIT]
                .iter()
                .any(|&c| !row.fields[c].is_empty())
                .then(|| proto::Certificate {
                    number: field(CERTIFICATE_NUMBER),
                    issued_on: field(CERTIFICATE_ISSUED_ON),
                    issuing_unit_code: field(CERTIFICATE_ISSUING_UNIT),
                });
            let flags = proto::HouseholdFlags {
                earlier_programme_device: parse_flag(row, EARLIER_PROGRAMME_DEVICE)?,
                wants_device: parse_flag(row, WANTS_DEVICE)?,
                meritorious_service_family: parse_flag(row, MERITORIOUS_SERVICE_FAMILY)?,
                social_policy_family: parse_flag(row, SOCIAL_POLICY_FAMILY)?,
            };
            Change::Upsert(proto::HouseholdData {
                category: parse_enum(row, CATEGORY, &CATEGORIES, "category")?.map_or(0, |c| c as i32),
                head_name: field(HEAD_NAME),
                commune_code: field(COMMUNE_CODE),
                address: field(ADDRESS),
                certificate,
                flags: Some(flags),
                members: Vec::new(),
            })
        }
        REMOVE => {
            let filled =
                (EFFECTIVE_DATE + 1..REMOVAL_REASON).chain(MEMBER_COLUMNS).find(|&c| !row.fields[c].is_empty());
            if let Some(column) = filled {
                return Err(row.error(column, "must be empty on a REMOVE row"));
            }
            if row.fields[REMOVAL_REASON].eq_ignore_ascii_case(NOT_IN_REVIEW) {
                return Err(row.error(
                    REMOVAL_REASON,
                    format!(
                        "{NOT_IN_REVIEW} is set by the hub for households missing from a snapshot; {}",
                        expected(&REMOVAL_REASONS)
                    ),
                ));
            }
            let reason = parse_enum(row, REMOVAL_REASON, &REMOVAL_REASONS, "removal reason")?;
            Change::Removal(proto::Removal { reason: reason.map_or(0, |r| r as i32), note: field(REMOVAL_NOTE) })
        }
        "" => return Err(row.error(CHANGE, "is empty; expected UPSERT or REMOVE")),
        _ => {
            return Err(
                row.error(CHANGE, format!("{:?} is not a change; expected UPSERT or REMOVE", row.fields[CHANGE]))
            );
        }
    };
    Ok(proto::HouseholdRecord {
        household_code: field(HOUSEHOLD_CODE),
        effective_date: field(EFFECTIVE_DATE),
        change: Some(change),
    })
}

/// The member named on a row; `None` when its member columns are all empty.
fn parse_member(row: &Row) -> Result<Option<proto::HouseholdMember>, CsvError> {
    if row.fields[MEMBER_COLUMNS].iter().all(String::is_empty) {
        return Ok(None);
    }
    let birth_year = match row.fields[BIRTH_YEAR].as_str() {
        "" => 0,
        text if text.bytes().all(|b| b.is_ascii_digit()) => {
            text.parse().map_err(|_| row.error(BIRTH_YEAR, format!("{text:?} is not a year")))?
        }
        text => return Err(row.error(BIRTH_YEAR, format!("{text:?} is not a year (a whole number, e.g. 1980)"))),
    };
    Ok(Some(proto::HouseholdMember {
        citizen_id: row.fields[CITIZEN_ID].clone(),
        full_name: row.fields[FULL_NAME].clone(),
        relationship: parse_enum(row, RELATIONSHIP, &RELATIONSHIPS, "relationship")?.map_or(0, |r| r as i32),
        birth_year,
    }))
}

/// The value of an enum column; `None` when empty (the hub says whether it may be).
fn parse_enum<T: Copy>(row: &Row, column: usize, names: &[(&str, T)], what: &str) -> Result<Option<T>, CsvError> {
    let text = &row.fields[column];
    if text.is_empty() {
        return Ok(None);
    }
    match names.iter().find(|(name, _)| name.eq_ignore_ascii_case(text)) {
        Some((_, value)) => Ok(Some(*value)),
        None => Err(row.error(column, format!("{text:?} is not a {what}; {}", expected(names)))),
    }
}

fn expected<T>(names: &[(&str, T)]) -> String {
    let names: Vec<&str> = names.iter().map(|(name, _)| *name).collect();
    format!("expected one of {}", names.join(", "))
}

fn parse_flag(row: &Row, column: usize) -> Result<bool, CsvError> {
    let text = &row.fields[column];
    match text.as_str() {
        "" | "0" => Ok(false),
        "1" => Ok(true),
        _ if text.eq_ignore_ascii_case("false") => Ok(false),
        _ if text.eq_ignore_ascii_case("true") => Ok(true),
        _ => Err(row.error(column, format!("{text:?} is not a flag; expected 0 or 1"))),
    }
}

/// The household columns of a row in a form where equal values are equal text: flags as
/// `0`/`1`, enum names in capitals.
fn canonical_household(row: &Row) -> Result<Vec<String>, CsvError> {
    HOUSEHOLD_COLUMNS
        .map(|column| {
            let text = &row.fields[column];
            Ok(if FLAG_COLUMNS.contains(&column) {
                if parse_flag(row, column)? { "1" } else { "0" }.to_owned()
            } else if ENUM_COLUMNS.contains(&column) {
                text.to_ascii_uppercase()
            } else {
                text.clone()
            })
        })
        .collect()
}

/// Writes household records as CSV rows, header first: a household's columns on each of its
/// member rows; one row with empty member columns for a household without members; one row
/// for a removal. Lines end in CRLF (RFC 4180).
pub struct CsvWriter<W: Write> {
    rows: RowWriter<W>,
}

impl<W: Write> CsvWriter<W> {
    /// Starts a file and writes the header.
    pub fn new(w: W) -> io::Result<Self> {
        Ok(Self { rows: RowWriter::new(w, &COLUMNS, false)? })
    }

    /// Like [`CsvWriter::new`], after a UTF-8 byte order mark: without it, Excel reads the
    /// file in the computer's legacy code page and garbles the diacritics.
    pub fn with_bom(w: W) -> io::Result<Self> {
        Ok(Self { rows: RowWriter::new(w, &COLUMNS, true)? })
    }

    /// Writes the rows of one record.
    pub fn write(&mut self, record: &proto::HouseholdRecord) -> io::Result<()> {
        let mut row: [&str; 20] = [""; 20];
        row[HOUSEHOLD_CODE] = &record.household_code;
        row[EFFECTIVE_DATE] = &record.effective_date;
        let data = match &record.change {
            Some(Change::Upsert(data)) => data,
            Some(Change::Removal(removal)) => {
                row[CHANGE] = REMOVE;
                row[REMOVAL_REASON] = match RemovalReason::try_from(removal.reason) {
                    Ok(RemovalReason::Unspecified) => "",
                    Ok(RemovalReason::NotInReview) => NOT_IN_REVIEW,
                    Ok(reason) => name_of(&REMOVAL_REASONS, reason).unwrap_or_default(),
                    Err(_) => return Err(unknown(record, "removal reason", removal.reason)),
                };
                row[REMOVAL_NOTE] = &removal.note;
                return self.rows.write(&row);
            }
            None => return Err(invalid(format!("household {} has neither data nor a removal", record.household_code))),
        };
        row[CHANGE] = UPSERT;
        row[CATEGORY] = match Category::try_from(data.category) {
            Ok(category) => name_of(&CATEGORIES, category).unwrap_or_default(),
            Err(_) => return Err(unknown(record, "category", data.category)),
        };
        row[HEAD_NAME] = &data.head_name;
        row[COMMUNE_CODE] = &data.commune_code;
        row[ADDRESS] = &data.address;
        if let Some(certificate) = &data.certificate {
            row[CERTIFICATE_NUMBER] = &certificate.number;
            row[CERTIFICATE_ISSUED_ON] = &certificate.issued_on;
            row[CERTIFICATE_ISSUING_UNIT] = &certificate.issuing_unit_code;
        }
        let flags = data.flags.unwrap_or_default();
        let flag = |set: bool| if set { "1" } else { "0" };
        row[EARLIER_PROGRAMME_DEVICE] = flag(flags.earlier_programme_device);
        row[WANTS_DEVICE] = flag(flags.wants_device);
        row[MERITORIOUS_SERVICE_FAMILY] = flag(flags.meritorious_service_family);
        row[SOCIAL_POLICY_FAMILY] = flag(flags.social_policy_family);
        if data.members.is_empty() {
            return self.rows.write(&row);
        }
        for member in &data.members {
            let birth_year = if member.birth_year == 0 { String::new() } else { member.birth_year.to_string() };
            let mut row = row;
            row[CITIZEN_ID] = &member.citizen_id;
            row[FULL_NAME] = &member.full_name;
            row[RELATIONSHIP] = match Relationship::try_from(member.relationship) {
                Ok(relationship) => name_of(&RELATIONSHIPS, relationship).unwrap_or_default(),
                Err(_) => return Err(unknown(record, "relationship", member.relationship)),
            };
            row[BIRTH_YEAR] = &birth_year;
            self.rows.write(&row)?;
        }
        Ok(())
    }

    /// Flushes the rows written and returns the writer.
    pub fn finish(self) -> io::Result<W> {
        self.rows.finish()
    }
}

fn name_of<T: PartialEq>(names: &[(&'static str, T)], value: T) -> Option<&'static str> {
    names.iter().find(|(_, v)| *v == value).map(|(name, _)| *name)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn unknown(record: &proto::HouseholdRecord, what: &str, value: i32) -> io::Error {
    invalid(format!("household {}: {value} is not a known {what}", record.household_code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::BOM;

    const HEADER: &str = "household_code,change,effective_date,category,head_name,commune_code,address,\
        certificate_number,certificate_issued_on,certificate_issuing_unit,earlier_programme_device,wants_device,\
        meritorious_service_family,social_policy_family,removal_reason,removal_note,citizen_id,full_name,\
        relationship,birth_year";

    fn member(
        citizen_id: &str,
        full_name: &str,
        relationship: Relationship,
        birth_year: i32,
    ) -> proto::HouseholdMember {
        proto::HouseholdMember {
            citizen_id: citizen_id.to_owned(),
            full_name: full_name.to_owned(),
            relationship: relationship as i32,
            birth_year,
        }
    }

    fn records() -> Vec<proto::HouseholdRecord> {
        vec![
            proto::HouseholdRecord {
                household_code: "0066000123".to_owned(),
                effective_date: "2024-03-01".to_owned(),
                change: Some(Change::Upsert(proto::HouseholdData {
                    category: Category::Poor as i32,
                    head_name: "Nguyễn Văn An".to_owned(),
                    commune_code: "24611".to_owned(),
                    address: "Thôn 3, \"Bon\" Bu Prăng".to_owned(),
                    certificate: Some(proto::Certificate {
                        number: "012/GCN-HN.HCN".to_owned(),
                        issued_on: "2024-01-15".to_owned(),
                        issuing_unit_code: "24611".to_owned(),
                    }),
                    flags: Some(proto::HouseholdFlags {
                        earlier_programme_device: false,
                        wants_device: true,
                        meritorious_service_family: true,
                        social_policy_family: false,
                    }),
                    members: vec![
                        member("067080001234", "Nguyễn Văn An", Relationship::Head, 1980),
                        member("067182000456", "Trần Thị Bích, \"Bé\"", Relationship::Spouse, 1982),
                        member("067210009876", "Nguyễn Thị\nHoa", Relationship::Child, 2010),
                    ],
                })),
            },
            proto::HouseholdRecord {
                household_code: "0066000124".to_owned(),
                effective_date: String::new(),
                change: Some(Change::Upsert(proto::HouseholdData {
                    category: Category::NearPoor as i32,
                    head_name: "H'Blin Niê".to_owned(),
                    commune_code: "24612".to_owned(),
                    address: String::new(),
                    certificate: None,
                    flags: Some(proto::HouseholdFlags::default()),
                    members: vec![member("066195000001", "H'Blin Niê", Relationship::Head, 1995)],
                })),
            },
            proto::HouseholdRecord {
                household_code: "0066000099".to_owned(),
                effective_date: "2024-03-15".to_owned(),
                change: Some(Change::Removal(proto::Removal {
                    reason: RemovalReason::OutOfPoverty as i32,
                    note: "Quyết định số 45/QĐ-UBND, thoát nghèo".to_owned(),
                })),
            },
            proto::HouseholdRecord {
                household_code: "0066000125".to_owned(),
                effective_date: String::new(),
                change: Some(Change::Upsert(proto::HouseholdData {
                    category: Category::Other as i32,
                    head_name: "Lê Văn Đức".to_owned(),
                    commune_code: "24615".to_owned(),
                    address: String::new(),
                    certificate: None,
                    flags: Some(proto::HouseholdFlags::default()),
                    members: Vec::new(),
                })),
            },
        ]
    }

    fn write(records: &[proto::HouseholdRecord], bom: bool) -> Vec<u8> {
        let mut writer = if bom { CsvWriter::with_bom(Vec::new()) } else { CsvWriter::new(Vec::new()) }.unwrap();
        for record in records {
            writer.write(record).unwrap();
        }
        writer.finish().unwrap()
    }

    fn read(text: &[u8]) -> Vec<Result<proto::HouseholdRecord, CsvError>> {
        CsvReader::new(text).unwrap().collect()
    }

    fn read_ok(text: &[u8]) -> Vec<proto::HouseholdRecord> {
        read(text).into_iter().collect::<Result<_, _>>().unwrap()
    }

    /// The file of `rows` under the header, `\n`-separated.
    fn file(rows: &[&str]) -> Vec<u8> {
        let mut text = String::from(HEADER);
        for row in rows {
            text.push('\n');
            text.push_str(row);
        }
        text.push('\n');
        text.into_bytes()
    }

    fn error(text: &[u8]) -> CsvError {
        read(text).into_iter().find_map(Result::err).expect("an error")
    }

    #[test]
    fn records_survive_a_round_trip() {
        let written = write(&records(), false);
        let text = String::from_utf8(written.clone()).unwrap();
        assert!(text.starts_with(&format!("{HEADER}\r\n")));
        assert!(
            text.contains("0066000123,UPSERT,2024-03-01,POOR,Nguyễn Văn An,24611,\"Thôn 3, \"\"Bon\"\" Bu Prăng\"")
        );
        assert!(text.contains(",067080001234,"), "citizen IDs keep their leading zero: {text}");
        assert!(text.contains("0066000099,REMOVE,2024-03-15,,,,,,,,,,,,OUT_OF_POVERTY,"));
        assert_eq!(read_ok(&written), records());
    }

    #[test]
    fn reader_streams_one_household_at_a_time() {
        let written = write(&records(), false);
        let mut reader = CsvReader::new(written.as_slice()).unwrap();
        assert_eq!(reader.line(), 1);
        assert_eq!(reader.next().unwrap().unwrap().household_code, "0066000123");
        assert_eq!(reader.line(), 2);
        assert_eq!(reader.next().unwrap().unwrap().household_code, "0066000124");
        // The third member's name spans two lines.
        assert_eq!(reader.line(), 6);
        assert_eq!(reader.count(), 2);
    }

    #[test]
    fn bom_is_written_on_request_and_accepted_on_read() {
        let with = write(&records(), true);
        assert!(with.starts_with(BOM));
        assert!(!write(&records(), false).starts_with(BOM));
        assert_eq!(read_ok(&with), records());
    }

    #[test]
    fn values_are_trimmed_and_kept_as_text() {
        let rows = [
            " 00123 , upsert ,, poor , Y Nhuần Byă ,  02461 ,,,,, true , 1 ,FALSE,, , , 001099000042 , Y Nhuần Byă , head , 1999 ",
            ",,,,,,,,,,,,,,,,,,,",
        ];
        let records = read_ok(&file(&rows));
        assert_eq!(records.len(), 1);
        let Some(Change::Upsert(data)) = &records[0].change else { panic!("an upsert") };
        assert_eq!(records[0].household_code, "00123");
        assert_eq!(data.commune_code, "02461");
        assert_eq!(data.category, Category::Poor as i32);
        assert_eq!(data.certificate, None);
        let flags = data.flags.unwrap();
        assert!(flags.earlier_programme_device && flags.wants_device && !flags.meritorious_service_family);
        assert_eq!(data.members, vec![member("001099000042", "Y Nhuần Byă", Relationship::Head, 1999)]);
    }

    #[test]
    fn header_must_be_exact() {
        // How the header is checked is the rows' (see `rows.rs`); here, that it is this one.
        let e = CsvReader::new(format!("{}\n", HEADER.replace(",birth_year", "")).as_bytes()).err().unwrap();
        assert_eq!(e.to_string(), "line 1, column birth_year: missing column");
        let e = CsvReader::new(format!("{HEADER},phone\n").as_bytes()).err().unwrap();
        assert_eq!(e.message, "unexpected column \"phone\" after the last column, birth_year");
    }

    #[test]
    fn households_must_be_consecutive() {
        let rows = [
            "001,UPSERT,,POOR,A,24611,,,,,0,0,0,0,,,067080000001,A,HEAD,1980",
            "002,UPSERT,,POOR,B,24611,,,,,0,0,0,0,,,067080000002,B,HEAD,1980",
            "001,UPSERT,,POOR,A,24611,,,,,0,0,0,0,,,067080000003,C,CHILD,2010",
            "001,UPSERT,,POOR,A,24611,,,,,0,0,0,0,,,067080000004,D,CHILD,2012",
            "003,REMOVE,,,,,,,,,,,,,DECEASED,,,,,",
        ];
        let results = read(&file(&rows));
        assert_eq!(results.len(), 4);
        let e = results[2].as_ref().unwrap_err();
        assert_eq!(e.line, 4);
        assert_eq!(e.column.as_deref(), Some("household_code"));
        assert!(e.message.contains("already on line 2"), "{e}");
        // The rest of the repeated household is passed over; the next one is read.
        assert_eq!(results[3].as_ref().unwrap().household_code, "003");
    }

    #[test]
    fn household_columns_must_agree() {
        let rows = [
            "001,UPSERT,,POOR,Nguyễn Văn An,24611,,,,,0,1,0,0,,,067080000001,Nguyễn Văn An,HEAD,1980",
            "001,upsert,,poor,Nguyễn Văn An,24611,,,,,false,true,,0,,,067180000002,Trần Thị Bích,SPOUSE,1980",
            "001,UPSERT,,POOR,Nguyễn Văn An,24612,,,,,0,1,0,0,,,067210000003,Nguyễn Văn Bình,CHILD,2010",
            "001,UPSERT,,POOR,Nguyễn Văn An,24611,,,,,0,1,0,0,,,067210000004,Nguyễn Thị Cúc,CHILD,2012",
            "002,UPSERT,,NEAR_POOR,Lê Thị Dung,24611,,,,,0,0,0,0,,,067180000005,Lê Thị Dung,HEAD,1985",
        ];
        let results = read(&file(&rows));
        assert_eq!(results.len(), 2);
        let e = results[0].as_ref().unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 4, column commune_code: \"24612\" here but \"24611\" on line 2; \
             the household's columns must be the same on each of its rows"
        );
        assert_eq!(results[1].as_ref().unwrap().household_code, "002");

        let rows = [
            "001,UPSERT,,POOR,A,24611,,,,,0,1,0,0,,,,,,",
            "001,UPSERT,,POOR,A,24611,,,,,0,1,0,0,,,067080000001,A,HEAD,1980",
        ];
        let e = error(&file(&rows));
        assert_eq!((e.line, e.column.as_deref()), (2, Some("citizen_id")));

        let rows = ["001,REMOVE,,,,,,,,,,,,,DECEASED,,,,,", "001,REMOVE,,,,,,,,,,,,,DECEASED,,,,,"];
        let e = error(&file(&rows));
        assert_eq!(e.to_string(), "line 3: household 001 is removed on line 2; a REMOVE is a single row");
    }

    #[test]
    fn bad_values_are_named_by_line_and_column() {
        let cases = [
            ("001,UPSERT,,VERY_POOR,A,24611,,,,,0,0,0,0,,,067080000001,A,HEAD,1980", "category"),
            ("001,UPSERT,,POOR,A,24611,,,,,0,0,0,0,,,067080000001,A,COUSIN,1980", "relationship"),
            ("001,UPSERT,,POOR,A,24611,,,,,0,0,0,0,,,067080000001,A,HEAD,1980.0", "birth_year"),
            ("001,UPSERT,,POOR,A,24611,,,,,0,yes,0,0,,,067080000001,A,HEAD,1980", "wants_device"),
            ("001,UPSERT,,POOR,A,24611,,,,,0,0,0,0,DECEASED,,067080000001,A,HEAD,1980", "removal_reason"),
            ("001,CHANGE,,POOR,A,24611,,,,,0,0,0,0,,,067080000001,A,HEAD,1980", "change"),
            ("001,,,POOR,A,24611,,,,,0,0,0,0,,,067080000001,A,HEAD,1980", "change"),
            (",UPSERT,,POOR,A,24611,,,,,0,0,0,0,,,067080000001,A,HEAD,1980", "household_code"),
            ("001,REMOVE,,,,,,,,,,,,,SOLD_HOUSE,,,,,", "removal_reason"),
            ("001,REMOVE,,,,,,,,,,,,,NOT_IN_REVIEW,,,,,", "removal_reason"),
            ("001,REMOVE,,POOR,,,,,,,,,,,DECEASED,,,,,", "category"),
            ("001,REMOVE,,,,,,,,,,,,,DECEASED,,067080000001,,,", "citizen_id"),
        ];
        let ok = "000,UPSERT,,POOR,A,24611,,,,,0,0,0,0,,,067080000009,A,HEAD,1980";
        for (row, column) in cases {
            let e = error(&file(&[ok, row]));
            assert_eq!((e.line, e.column.as_deref()), (3, Some(column)), "{row}: {e}");
        }
        let e = error(&file(&[ok, "001,UPSERT,,VERY_POOR,A,24611,,,,,0,0,0,0,,,067080000001,A,HEAD,1980"]));
        assert_eq!(
            e.to_string(),
            "line 3, column category: \"VERY_POOR\" is not a category; \
             expected one of POOR, NEAR_POOR, SOCIAL_POLICY, MERITORIOUS_SERVICE, OTHER"
        );

        let e = error(&file(&[ok, "001,UPSERT,,POOR"]));
        assert_eq!(e.to_string(), "line 3: the row has 4 values; every row must have 20");

        let mut latin1 = file(&[ok]);
        latin1.extend_from_slice(b"001,UPSERT,,POOR,Nguy\xEAn,24611,,,,,0,0,0,0,,,067080000001,A,HEAD,1980\n");
        let e = error(&latin1);
        assert_eq!((e.line, e.column.as_deref()), (3, Some("head_name")));
    }

    #[test]
    fn lines_count_quoted_line_breaks() {
        let rows = [
            "001,UPSERT,,POOR,A,24611,\"Thôn 1\nBuôn Ja Ráh\",,,,0,0,0,0,,,067080000001,A,HEAD,1980",
            "002,UPSERT,,POOR,B,24611,,,,,0,0,0,0,,,067080000002,B,HEAD,1880x",
        ];
        let e = error(&file(&rows));
        assert_eq!((e.line, e.column.as_deref()), (4, Some("birth_year")));
    }

    #[test]
    fn lines_are_counted_whatever_the_line_breaks() {
        let rows = [
            "001,UPSERT,,POOR,A,24611,\"Thôn 1\r\nBuôn Ja Ráh\",,,,0,0,0,0,,,067080000001,A,HEAD,1980",
            "",
            "002,UPSERT,,POOR,B,24611,,,,,0,0,0,0,,,067080000002,B,HEAD,1980",
            "003,UPSERT,,POOR,C,24611,,,,,0,0,0,0,,,067080000003,C,HEAD,19x",
        ];
        for (name, terminator) in [("LF", "\n"), ("CRLF", "\r\n"), ("CR", "\r")] {
            for last in ["", terminator] {
                let text = format!("{HEADER}{terminator}{}{last}", rows.join(terminator));
                let results = read(text.as_bytes());
                let Some(Change::Upsert(data)) = &results[0].as_ref().unwrap().change else { panic!("an upsert") };
                assert_eq!(data.address, "Thôn 1\nBuôn Ja Ráh", "{name}");
                let e = results[2].as_ref().unwrap_err();
                assert_eq!((e.line, e.column.as_deref()), (6, Some("birth_year")), "{name} {last:?}: {e}");
            }
        }
    }

    #[test]
    fn documented_example_reads_as_described() {
        let doc = include_str!("../../docs/CSV.md");
        let example = doc
            .split("```csv thang-03-2025.csv\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("an example");
        let records = read_ok(example.as_bytes());
        let codes: Vec<&str> = records.iter().map(|r| r.household_code.as_str()).collect();
        assert_eq!(codes, ["HN-24611-0001", "HCN-24718-0032", "HH-24628-0000237"]);
        let Some(Change::Upsert(data)) = &records[1].change else { panic!("an upsert") };
        assert_eq!((data.members.len(), data.address.as_str()), (2, "Bon Bu N'Drung, thôn 4"));
        assert!(data.certificate.is_none());
        assert!(
            matches!(&records[2].change, Some(Change::Removal(r)) if r.reason == RemovalReason::OutOfPoverty as i32)
        );
        // Written back, it is the same file.
        assert_eq!(String::from_utf8(write(&records, false)).unwrap(), example.replace('\n', "\r\n"));
    }

    #[test]
    fn writer_refuses_what_the_format_cannot_hold() {
        let mut writer = CsvWriter::new(Vec::new()).unwrap();
        let empty = proto::HouseholdRecord { household_code: "001".to_owned(), ..Default::default() };
        assert_eq!(writer.write(&empty).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        let mut bad = records().remove(1);
        if let Some(Change::Upsert(data)) = &mut bad.change {
            data.category = 42;
        }
        assert!(writer.write(&bad).unwrap_err().to_string().contains("42 is not a known category"));
    }
}
