//! The CSV form of an operator's monthly list: one row per subscriber line, as an operator's
//! billing staff export it from their own system or from Excel (the format is described in
//! `docs/CSV.md`).
//!
//! [`MonthlyLineReader`] turns rows into [`proto::MonthlyLine`]s, streaming;
//! [`MonthlyLineWriter`] writes lines as rows. The reader checks only the format: column
//! names and order, the names of changes, services and reasons, `used` as a yes or no, and
//! amounts and days as whole numbers. Whether a phone number, a citizen ID or an amount is
//! acceptable is for the hub to say, naming the line as `lines[N].field`.
//!
//! ```
//! use telesub_proto::monthly_csv::{MonthlyLineReader, MonthlyLineWriter};
//!
//! let text = "phone_number,subscriber_citizen_id,household_code,enrollment_id,change,service,\
//! package_code,tariff,amount_claimed,days_of_service,used,unclaimed_reason\n\
//! 0912000001,067080000001,HN-24611-0001,17,CONTINUING,MOBILE,ASXH60,70000,60000,31,true,\n";
//! let lines = MonthlyLineReader::new(text.as_bytes())?.collect::<Result<Vec<_>, _>>()?;
//! assert_eq!((lines[0].phone_number.as_str(), lines[0].amount_claimed), ("0912000001", 60_000));
//!
//! let mut writer = MonthlyLineWriter::new(Vec::new())?;
//! writer.write(&lines[0])?;
//! assert_eq!(String::from_utf8(writer.finish()?)?, text.replace('\n', "\r\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::{
    io::{self, Read, Write},
    str::FromStr,
};

use crate::{
    csv::CsvError,
    rows::{self, RowReader, RowWriter},
    v1::{self as proto, SupportChange, SupportedService, UnclaimedReason},
};

/// The header row: exactly these columns, in this order.
pub use crate::MONTHLY_LIST_COLUMNS as COLUMNS;

const PHONE_NUMBER: usize = 0;
const SUBSCRIBER_CITIZEN_ID: usize = 1;
const HOUSEHOLD_CODE: usize = 2;
const ENROLLMENT_ID: usize = 3;
const CHANGE: usize = 4;
const SERVICE: usize = 5;
const PACKAGE_CODE: usize = 6;
const TARIFF: usize = 7;
const AMOUNT_CLAIMED: usize = 8;
const DAYS_OF_SERVICE: usize = 9;
const USED: usize = 10;
const UNCLAIMED_REASON: usize = 11;

const CHANGES: [(&str, SupportChange); 4] = [
    ("STARTED", SupportChange::Started),
    ("CONTINUING", SupportChange::Continuing),
    ("STOPPED", SupportChange::Stopped),
    ("LEVEL_CHANGED", SupportChange::LevelChanged),
];

const SERVICES: [(&str, SupportedService); 2] =
    [("MOBILE", SupportedService::Mobile), ("FIXED_BROADBAND", SupportedService::FixedBroadband)];

const UNCLAIMED_REASONS: [(&str, UnclaimedReason); 6] = [
    ("NO_USAGE_YET", UnclaimedReason::NoUsageYet),
    ("IN_NON_USAGE_WINDOW", UnclaimedReason::InNonUsageWindow),
    ("ELIGIBILITY_LOST_NOT_DEENROLLED", UnclaimedReason::EligibilityLostNotDeenrolled),
    ("SUSPENDED", UnclaimedReason::Suspended),
    ("NOT_FOUND_IN_OPERATOR_SYSTEMS", UnclaimedReason::NotFoundInOperatorSystems),
    ("OTHER", UnclaimedReason::Other),
];

/// An error about line `line`, naming the column at index `column` when there is one.
fn error(line: u64, column: Option<usize>, message: impl Into<String>) -> CsvError {
    rows::at(&COLUMNS, line, column, message)
}

/// Reads monthly lines from CSV: one item per row, in file order.
///
/// Streaming: it holds one row at a time. Rows are independent, so after an error about one
/// row reading goes on with the next, and a caller may list every error of a file; after a
/// failure to read the file itself (I/O), the iterator ends.
pub struct MonthlyLineReader<R: Read> {
    rows: RowReader<R>,
    line: u64,
    done: bool,
}

impl<R: Read> MonthlyLineReader<R> {
    /// Starts reading, checking the header row (after an optional UTF-8 BOM).
    pub fn new(reader: R) -> Result<Self, CsvError> {
        Ok(Self { rows: RowReader::new(reader, &COLUMNS)?, line: 1, done: false })
    }

    /// The line on which the row last returned (or the error last returned) starts; 1, the
    /// header, before the first.
    pub fn line(&self) -> u64 {
        self.line
    }
}

impl<R: Read> Iterator for MonthlyLineReader<R> {
    type Item = Result<proto::MonthlyLine, CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.rows.next_row(self.line) {
            None => {
                self.done = true;
                None
            }
            Some(Ok(row)) => {
                self.line = row.line;
                Some(Row { line: row.line, fields: row.fields }.parse())
            }
            Some(Err(failure)) => {
                self.done = failure.fatal;
                self.line = failure.error.line;
                Some(Err(failure.error))
            }
        }
    }
}

struct Row {
    line: u64,
    /// Exactly [`COLUMNS`]`.len()` values, trimmed.
    fields: Vec<String>,
}

impl Row {
    fn error(&self, column: usize, message: impl Into<String>) -> CsvError {
        error(self.line, Some(column), message)
    }

    fn parse(mut self) -> Result<proto::MonthlyLine, CsvError> {
        let change = self.name(CHANGE, &CHANGES, "change")?;
        let service = self.name(SERVICE, &SERVICES, "service")?;
        let unclaimed_reason = self.name(UNCLAIMED_REASON, &UNCLAIMED_REASONS, "reason for not claiming")?;
        let tariff = self.number(TARIFF)?;
        let amount_claimed = self.number(AMOUNT_CLAIMED)?;
        let days_of_service = self.number(DAYS_OF_SERVICE)?;
        let used = self.yes_or_no(USED)?;
        let mut take = |column: usize| std::mem::take(&mut self.fields[column]);
        Ok(proto::MonthlyLine {
            phone_number: take(PHONE_NUMBER),
            subscriber_citizen_id: take(SUBSCRIBER_CITIZEN_ID),
            household_code: take(HOUSEHOLD_CODE),
            enrollment_id: take(ENROLLMENT_ID),
            change: change.map_or(0, |c| c as i32),
            service: service.map_or(0, |s| s as i32),
            package_code: take(PACKAGE_CODE),
            tariff,
            amount_claimed,
            days_of_service,
            used,
            unclaimed_reason: unclaimed_reason.map_or(0, |r| r as i32),
        })
    }

    /// The value of an enum column, in any case; `None` when empty (the hub says whether it
    /// may be).
    fn name<T: Copy>(&self, column: usize, names: &[(&str, T)], what: &str) -> Result<Option<T>, CsvError> {
        let text = &self.fields[column];
        if text.is_empty() {
            return Ok(None);
        }
        match names.iter().find(|(name, _)| name.eq_ignore_ascii_case(text)) {
            Some((_, value)) => Ok(Some(*value)),
            None => {
                let names: Vec<&str> = names.iter().map(|(name, _)| *name).collect();
                Err(self.error(column, format!("{text:?} is not a {what}; expected one of {}", names.join(", "))))
            }
        }
    }

    /// A whole number, digits with an optional minus sign; 0 when empty.
    fn number<T: FromStr + Default>(&self, column: usize) -> Result<T, CsvError> {
        let text = self.fields[column].as_str();
        if text.is_empty() {
            return Ok(T::default());
        }
        let digits = text.strip_prefix('-').unwrap_or(text);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.error(
                column,
                format!("{text:?} is not a whole number; write digits only, without separators (e.g. 60000)"),
            ));
        }
        text.parse().map_err(|_| self.error(column, format!("{text} is too large")))
    }

    fn yes_or_no(&self, column: usize) -> Result<bool, CsvError> {
        let text = self.fields[column].as_str();
        const YES: [&str; 3] = ["true", "1", "yes"];
        const NO: [&str; 3] = ["false", "0", "no"];
        if text.is_empty() || NO.iter().any(|no| no.eq_ignore_ascii_case(text)) {
            Ok(false)
        } else if YES.iter().any(|yes| yes.eq_ignore_ascii_case(text)) {
            Ok(true)
        } else {
            Err(self.error(column, format!("{text:?} is not a yes or no; expected true or false")))
        }
    }
}

/// Writes monthly lines as CSV rows, header first, one row per line. Lines end in CRLF
/// (RFC 4180).
pub struct MonthlyLineWriter<W: Write> {
    rows: RowWriter<W>,
}

impl<W: Write> MonthlyLineWriter<W> {
    /// Starts a file and writes the header.
    pub fn new(w: W) -> io::Result<Self> {
        Ok(Self { rows: RowWriter::new(w, &COLUMNS, false)? })
    }

    /// Like [`MonthlyLineWriter::new`], after a UTF-8 byte order mark, for files meant to be
    /// opened in Excel.
    pub fn with_bom(w: W) -> io::Result<Self> {
        Ok(Self { rows: RowWriter::new(w, &COLUMNS, true)? })
    }

    /// Writes the row of one line. Enum values the format has no name for are refused
    /// (`InvalidInput`); unspecified ones are written as empty cells.
    pub fn write(&mut self, line: &proto::MonthlyLine) -> io::Result<()> {
        let change = name_of(line, &CHANGES, line.change, "change")?;
        let service = name_of(line, &SERVICES, line.service, "service")?;
        let reason = name_of(line, &UNCLAIMED_REASONS, line.unclaimed_reason, "unclaimed reason")?;
        let (tariff, amount, days) =
            (line.tariff.to_string(), line.amount_claimed.to_string(), line.days_of_service.to_string());
        let mut row: [&str; 12] = [""; 12];
        row[PHONE_NUMBER] = &line.phone_number;
        row[SUBSCRIBER_CITIZEN_ID] = &line.subscriber_citizen_id;
        row[HOUSEHOLD_CODE] = &line.household_code;
        row[ENROLLMENT_ID] = &line.enrollment_id;
        row[CHANGE] = change;
        row[SERVICE] = service;
        row[PACKAGE_CODE] = &line.package_code;
        row[TARIFF] = &tariff;
        row[AMOUNT_CLAIMED] = &amount;
        row[DAYS_OF_SERVICE] = &days;
        row[USED] = if line.used { "true" } else { "false" };
        row[UNCLAIMED_REASON] = reason;
        self.rows.write(&row)
    }

    /// Flushes the rows written and returns the writer.
    pub fn finish(self) -> io::Result<W> {
        self.rows.finish()
    }
}

/// The name of an enum value: empty for 0 (unspecified), an error for a value without one.
fn name_of<T: Copy + Into<i32>>(
    line: &proto::MonthlyLine,
    names: &[(&'static str, T)],
    value: i32,
    what: &str,
) -> io::Result<&'static str> {
    if value == 0 {
        return Ok("");
    }
    names.iter().find(|(_, v)| (*v).into() == value).map(|(name, _)| *name).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("line of {}: {value} is not a known {what}", line.phone_number),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::BOM;

    const HEADER: &str = "phone_number,subscriber_citizen_id,household_code,enrollment_id,change,service,\
        package_code,tariff,amount_claimed,days_of_service,used,unclaimed_reason";

    fn lines() -> Vec<proto::MonthlyLine> {
        let claim = proto::MonthlyLine {
            phone_number: "0912000001".into(),
            subscriber_citizen_id: "067080000001".into(),
            household_code: "HN-24611-0001".into(),
            enrollment_id: "17".into(),
            change: SupportChange::Continuing.into(),
            service: SupportedService::Mobile.into(),
            package_code: "ASXH60".into(),
            tariff: 70_000,
            amount_claimed: 60_000,
            days_of_service: 31,
            used: true,
            unclaimed_reason: 0,
        };
        let started = proto::MonthlyLine {
            phone_number: "+84981000002".into(),
            subscriber_citizen_id: "067185000002".into(),
            household_code: "HCN-24718-0032".into(),
            enrollment_id: String::new(),
            change: SupportChange::Started.into(),
            service: SupportedService::FixedBroadband.into(),
            package_code: "FTTH.HN_1".into(),
            tariff: 165_000,
            amount_claimed: 70_000,
            days_of_service: 12,
            used: false,
            unclaimed_reason: 0,
        };
        let unclaimed = proto::MonthlyLine {
            phone_number: "0912000003".into(),
            subscriber_citizen_id: "067080000003".into(),
            household_code: "HN-24628-0007".into(),
            enrollment_id: "21".into(),
            change: 0,
            service: SupportedService::Mobile.into(),
            package_code: "ASXH60".into(),
            tariff: 70_000,
            amount_claimed: 0,
            days_of_service: 0,
            used: false,
            unclaimed_reason: UnclaimedReason::Suspended.into(),
        };
        vec![claim, started, unclaimed]
    }

    fn write(lines: &[proto::MonthlyLine], bom: bool) -> Vec<u8> {
        let mut writer =
            if bom { MonthlyLineWriter::with_bom(Vec::new()) } else { MonthlyLineWriter::new(Vec::new()) }.unwrap();
        for line in lines {
            writer.write(line).unwrap();
        }
        writer.finish().unwrap()
    }

    fn read(text: &[u8]) -> Vec<Result<proto::MonthlyLine, CsvError>> {
        MonthlyLineReader::new(text).unwrap().collect()
    }

    fn read_ok(text: &[u8]) -> Vec<proto::MonthlyLine> {
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

    const OK: &str = "0912000001,067080000001,HN-1,17,CONTINUING,MOBILE,ASXH60,70000,60000,31,true,";

    #[test]
    fn lines_survive_a_round_trip() {
        let written = write(&lines(), false);
        let text = String::from_utf8(written.clone()).unwrap();
        assert!(text.starts_with(&format!("{HEADER}\r\n")), "{text}");
        assert!(text.contains(
            "\r\n0912000001,067080000001,HN-24611-0001,17,CONTINUING,MOBILE,ASXH60,70000,60000,31,true,\r\n"
        ));
        assert!(text.contains("\r\n+84981000002,067185000002,HCN-24718-0032,,STARTED,FIXED_BROADBAND,"));
        assert!(text.ends_with(",ASXH60,70000,0,0,false,SUSPENDED\r\n"), "{text}");
        assert_eq!(read_ok(&written), lines());
    }

    #[test]
    fn reader_streams_a_line_at_a_time_and_names_its_line() {
        let written = write(&lines(), false);
        let mut reader = MonthlyLineReader::new(written.as_slice()).unwrap();
        assert_eq!(reader.line(), 1);
        assert_eq!(reader.next().unwrap().unwrap().phone_number, "0912000001");
        assert_eq!(reader.line(), 2);
        assert_eq!(reader.next().unwrap().unwrap().phone_number, "+84981000002");
        assert_eq!(reader.line(), 3);
        assert_eq!(reader.count(), 1);
    }

    #[test]
    fn bom_is_written_on_request_and_accepted_on_read() {
        let with = write(&lines(), true);
        assert!(with.starts_with(BOM));
        assert!(!write(&lines(), false).starts_with(BOM));
        assert_eq!(read_ok(&with), lines());
    }

    #[test]
    fn header_must_be_exact() {
        // How the header is checked is the rows' (see `rows.rs`); here, that it is this one.
        let error = |header: &str| MonthlyLineReader::new(format!("{header}\n").as_bytes()).err().expect("an error");
        let e = error(&HEADER.replace(",unclaimed_reason", ""));
        assert_eq!(e.to_string(), "line 1, column unclaimed_reason: missing column");
        // The household list's header is not this one.
        let e = error(&crate::csv::COLUMNS.join(","));
        assert_eq!(e.column.as_deref(), Some("phone_number"));
    }

    #[test]
    fn values_are_trimmed_and_names_read_in_any_case() {
        let rows = [
            " 0912000001 , 067080000001 , HN-1 ,, continuing , mobile , ASXH60 , 70000 , 60000 , 31 , YES , ",
            "0912000002,067080000002,HN-2,,,Fixed_Broadband,,,,,0,suspended",
            ",,,,,,,,,,,",
            "0912000003,067080000003,HN-3,,stopped,MOBILE,ASXH60,-5,0,,No,,,",
        ];
        let read = read_ok(&file(&rows));
        assert_eq!(read.len(), 3);
        assert_eq!((read[0].phone_number.as_str(), read[0].household_code.as_str()), ("0912000001", "HN-1"));
        assert_eq!((read[0].change(), read[0].service()), (SupportChange::Continuing, SupportedService::Mobile));
        assert!(read[0].used);
        assert_eq!((read[1].change, read[1].tariff, read[1].days_of_service), (0, 0, 0));
        assert_eq!(read[1].service(), SupportedService::FixedBroadband);
        assert_eq!(read[1].unclaimed_reason(), UnclaimedReason::Suspended);
        // The format holds a negative number; the hub refuses it.
        assert_eq!((read[2].change(), read[2].tariff, read[2].used), (SupportChange::Stopped, -5, false));
    }

    #[test]
    fn bad_values_are_named_by_line_and_column() {
        let cases = [
            ("0912000002,067080000002,HN-2,,RESUMED,MOBILE,ASXH60,70000,60000,31,true,", "change"),
            ("0912000002,067080000002,HN-2,,STARTED,ADSL,ASXH60,70000,60000,31,true,", "service"),
            ("0912000002,067080000002,HN-2,,STARTED,MOBILE,ASXH60,\"70,000\",60000,31,true,", "tariff"),
            ("0912000002,067080000002,HN-2,,STARTED,MOBILE,ASXH60,70000,60.000,31,true,", "amount_claimed"),
            ("0912000002,067080000002,HN-2,,STARTED,MOBILE,ASXH60,70000,60000,3.5,true,", "days_of_service"),
            ("0912000002,067080000002,HN-2,,STARTED,MOBILE,ASXH60,70000,60000,99999999999,true,", "days_of_service"),
            ("0912000002,067080000002,HN-2,,STARTED,MOBILE,ASXH60,70000,-,31,true,", "amount_claimed"),
            ("0912000002,067080000002,HN-2,,STARTED,MOBILE,ASXH60,70000,60000,31,maybe,", "used"),
            ("0912000002,067080000002,HN-2,,,MOBILE,ASXH60,70000,0,0,false,ON_HOLIDAY", "unclaimed_reason"),
        ];
        for (row, column) in cases {
            let e = error(&file(&[OK, row]));
            assert_eq!((e.line, e.column.as_deref()), (3, Some(column)), "{row}: {e}");
        }
        let e = error(&file(&[OK, cases[1].0]));
        assert_eq!(
            e.to_string(),
            "line 3, column service: \"ADSL\" is not a service; expected one of MOBILE, FIXED_BROADBAND"
        );
        let e = error(&file(&[OK, cases[3].0]));
        assert_eq!(
            e.to_string(),
            "line 3, column amount_claimed: \"60.000\" is not a whole number; \
             write digits only, without separators (e.g. 60000)"
        );

        let e = error(&file(&[OK, "0912000002,067080000002,HN-2"]));
        assert_eq!(e.to_string(), "line 3: the row has 3 values; every row must have 12");

        let mut latin1 = file(&[OK]);
        latin1.extend_from_slice(b"0912000002,067080000002,HN-\xEA,,STARTED,MOBILE,ASXH60,70000,60000,31,true,\n");
        let e = error(&latin1);
        assert_eq!((e.line, e.column.as_deref()), (3, Some("household_code")));
    }

    #[test]
    fn reading_goes_on_after_a_bad_row() {
        let rows = [OK, "0912000002,,HN-2,,BEGUN,MOBILE,,,,,,", OK, "0912000004,,HN-4,,,,,,,,,NOPE"];
        let results = read(&file(&rows));
        assert_eq!(results.len(), 4);
        assert!(results[0].is_ok() && results[2].is_ok());
        let lines: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).map(|e| e.line).collect();
        assert_eq!(lines, [3, 5]);
    }

    #[test]
    fn lines_are_counted_whatever_the_line_breaks() {
        let rows = [
            OK,
            "",
            "\"0912000002\",067080000002,\"HN\r\n2\",,STARTED,MOBILE,ASXH60,70000,60000,31,true,",
            OK,
            "0912000004,,,,,,,,,x,,",
        ];
        for (name, terminator) in [("LF", "\n"), ("CRLF", "\r\n"), ("CR", "\r")] {
            for last in ["", terminator] {
                let text = format!("{HEADER}{terminator}{}{last}", rows.join(terminator));
                let results = read(text.as_bytes());
                assert_eq!(results[1].as_ref().unwrap().household_code, "HN\n2", "{name}");
                let e = results[3].as_ref().unwrap_err();
                assert_eq!((e.line, e.column.as_deref()), (7, Some("days_of_service")), "{name} {last:?}: {e}");
            }
        }
    }

    #[test]
    fn documented_example_reads_as_described() {
        let doc = include_str!("../../docs/CSV.md");
        let section = doc.split("## Operators' monthly lists").nth(1).expect("the monthly lists section");
        let example = section
            .split("```csv vnpt-2025-04.csv\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("an example");
        let lines = read_ok(example.as_bytes());
        let numbers: Vec<&str> = lines.iter().map(|l| l.phone_number.as_str()).collect();
        assert_eq!(numbers, ["0912345678", "0987654321", "0900000360"]);
        assert_eq!(lines[1].change(), SupportChange::Started);
        assert_eq!(lines[2].unclaimed_reason(), UnclaimedReason::NoUsageYet);
        // Written back, it is the same file.
        assert_eq!(String::from_utf8(write(&lines, false)).unwrap(), example.replace('\n', "\r\n"));
    }

    #[test]
    fn writer_refuses_what_the_format_cannot_hold() {
        let mut writer = MonthlyLineWriter::new(Vec::new()).unwrap();
        let mut bad = lines().remove(0);
        bad.service = 42;
        let e = writer.write(&bad).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("42 is not a known service"), "{e}");
    }
}
