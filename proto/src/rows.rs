//! What the CSV formats of the SDK share: a file with a fixed header row, read a row at a
//! time with the line each row starts on, and written with CRLF line ends and, on request, a
//! UTF-8 byte order mark. The formats themselves ([`crate::csv`], [`crate::monthly_csv`]) say
//! what the values of a row mean.

use std::io::{self, Read, Write};

use crate::csv::CsvError;

/// The UTF-8 byte order mark Excel needs to read a file as UTF-8.
pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// An error about line `line` of a file with these `columns`, naming the column at index
/// `column` when there is one.
pub(crate) fn at(columns: &[&str], line: u64, column: Option<usize>, message: impl Into<String>) -> CsvError {
    CsvError { line, column: column.and_then(|c| columns.get(c)).map(|c| (*c).to_owned()), message: message.into() }
}

/// A row of exactly the file's columns, values trimmed.
pub(crate) struct Row {
    /// The line the row starts on.
    pub(crate) line: u64,
    pub(crate) fields: Vec<String>,
}

/// A row that could not be read.
pub(crate) struct RowFailure {
    /// The row's first value, when it could be read and is not empty (it names the row).
    pub(crate) first: Option<String>,
    /// The file itself cannot be read further.
    pub(crate) fatal: bool,
    pub(crate) error: CsvError,
}

/// Rows of a CSV file whose header must be exactly `columns`, in order.
pub(crate) struct RowReader<R: Read> {
    columns: &'static [&'static str],
    rows: csv::Reader<Normalize<R>>,
    buffer: csv::ByteRecord,
}

impl<R: Read> RowReader<R> {
    /// Starts reading, checking the header row (after an optional UTF-8 BOM).
    pub(crate) fn new(reader: R, columns: &'static [&'static str]) -> Result<Self, CsvError> {
        let rows = csv::ReaderBuilder::new()
            .has_headers(false)
            // Rows of the wrong length are reported by line here, not by the csv crate.
            .flexible(true)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(Normalize::new(reader));
        let mut reader = Self { columns, rows, buffer: csv::ByteRecord::new() };
        reader.header()?;
        Ok(reader)
    }

    fn header(&mut self) -> Result<(), CsvError> {
        let columns = self.columns;
        let found = match self.rows.read_byte_record(&mut self.buffer) {
            Ok(true) => self.decode(1).map_err(|failure| failure.error)?,
            Ok(false) => return Err(at(columns, 1, None, "the file is empty; the first line must be the header row")),
            Err(e) => return Err(self.failure(e, 1).error),
        };
        let found = self.without_trailing_empty(found);
        if found.len() == 1 && found[0].contains(';') {
            return Err(at(
                columns,
                1,
                None,
                "the columns are separated by semicolons; they must be separated by commas \
                 (Excel uses the list separator of the Windows regional settings)",
            ));
        }
        for (i, expected) in columns.iter().enumerate() {
            let message = match found.get(i) {
                Some(name) if name == expected => continue,
                Some(name) if columns.contains(&name.as_str()) => {
                    format!("found column {name} where {expected} belongs; the columns must be in the documented order")
                }
                Some(name) => format!("found unknown column {name:?} where {expected} belongs"),
                None => "missing column".to_owned(),
            };
            return Err(at(columns, 1, Some(i), message));
        }
        if let Some(extra) = found.get(columns.len()) {
            let last = columns.last().copied().unwrap_or_default();
            let message = format!("unexpected column {extra:?} after the last column, {last}");
            return Err(CsvError { line: 1, column: Some(extra.clone()), message });
        }
        Ok(())
    }

    /// The next row with content (rows of empty cells are passed over); `line` is where the
    /// caller is, for an error the csv crate cannot place.
    pub(crate) fn next_row(&mut self, line: u64) -> Option<Result<Row, RowFailure>> {
        loop {
            match self.rows.read_byte_record(&mut self.buffer) {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => return Some(Err(self.failure(e, line))),
            }
            let line = self.start_line();
            let fields = match self.decode(line) {
                Ok(fields) => self.without_trailing_empty(fields),
                Err(failure) => return Some(Err(failure)),
            };
            // Spreadsheets leave rows of empty cells behind.
            if fields.iter().all(String::is_empty) {
                continue;
            }
            let width = self.columns.len();
            if fields.len() != width {
                let first = Some(fields[0].clone()).filter(|c| !c.is_empty());
                let message = format!("the row has {} values; every row must have {width}", fields.len());
                return Some(Err(RowFailure { first, fatal: false, error: at(self.columns, line, None, message) }));
            }
            return Some(Ok(Row { line, fields }));
        }
    }

    /// The line on which the row just read starts: the csv crate counts the LFs it has
    /// consumed, of which the last ended the row (see [`Normalize`]) and some were in values.
    fn start_line(&self) -> u64 {
        let in_values = self.buffer.iter().flatten().filter(|&&b| b == b'\n').count() as u64;
        self.rows.position().line().saturating_sub(in_values + 1).max(1)
    }

    /// The values of the row just read as text, trimmed; or the failure naming the first
    /// value that is not UTF-8.
    fn decode(&self, line: u64) -> Result<Vec<String>, RowFailure> {
        let mut fields = Vec::with_capacity(self.columns.len());
        for (i, raw) in self.buffer.iter().enumerate() {
            match std::str::from_utf8(raw) {
                Ok(text) => fields.push(text.trim().to_owned()),
                Err(_) => {
                    let first = fields.first().filter(|c: &&String| !c.is_empty()).cloned();
                    let message = "is not valid UTF-8; save the file as \"CSV UTF-8\"";
                    let error = if i < self.columns.len() {
                        at(self.columns, line, Some(i), message)
                    } else {
                        at(self.columns, line, None, format!("value {} {message}", i + 1))
                    };
                    return Err(RowFailure { first, fatal: false, error });
                }
            }
        }
        Ok(fields)
    }

    fn without_trailing_empty(&self, mut fields: Vec<String>) -> Vec<String> {
        // Spreadsheets write empty cells past the last column when cells there were ever touched.
        while fields.len() > self.columns.len() && fields.last().is_some_and(String::is_empty) {
            fields.pop();
        }
        fields
    }

    fn failure(&self, e: csv::Error, line: u64) -> RowFailure {
        let line = e.position().map_or(line, csv::Position::line);
        let (fatal, message) = match e.kind() {
            csv::ErrorKind::Io(io) => (true, format!("cannot read the file: {io}")),
            _ => (false, e.to_string()),
        };
        RowFailure { first: None, fatal, error: at(self.columns, line, None, message) }
    }
}

/// Rows written under a header, each line ending in CRLF (RFC 4180).
pub(crate) struct RowWriter<W: Write> {
    rows: csv::Writer<W>,
}

impl<W: Write> RowWriter<W> {
    /// Starts a file with the header row, after a byte order mark when `bom`.
    pub(crate) fn new(mut w: W, columns: &[&str], bom: bool) -> io::Result<Self> {
        if bom {
            w.write_all(BOM)?;
        }
        let mut rows = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(w);
        rows.write_record(columns)?;
        Ok(Self { rows })
    }

    pub(crate) fn write(&mut self, row: &[&str]) -> io::Result<()> {
        Ok(self.rows.write_record(row)?)
    }

    /// Flushes the rows written and returns the writer.
    pub(crate) fn finish(self) -> io::Result<W> {
        self.rows.into_inner().map_err(csv::IntoInnerError::into_error)
    }
}

/// Passes a reader through in the one shape whose line numbers the csv crate counts right:
/// no UTF-8 byte order mark, every line break (CRLF, LF or CR) a single LF, and an LF after
/// the last row.
struct Normalize<R> {
    inner: R,
    /// The first bytes, read to look for the BOM, not yet passed on.
    head: [u8; 3],
    head_start: usize,
    head_end: usize,
    checked_bom: bool,
    /// The last byte read was a CR: an LF right after it belongs to the same line break.
    after_cr: bool,
    /// The last byte passed on, to end the input with an LF.
    last: Option<u8>,
    ended: bool,
}

impl<R: Read> Normalize<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            head: [0; 3],
            head_start: 0,
            head_end: 0,
            checked_bom: false,
            after_cr: false,
            last: None,
            ended: false,
        }
    }

    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.checked_bom {
            // A read may return fewer bytes than asked: the BOM may come in pieces.
            while self.head_end < BOM.len() {
                match self.inner.read(&mut self.head[self.head_end..]) {
                    Ok(0) => break,
                    Ok(n) => self.head_end += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            self.checked_bom = true;
            if self.head[..self.head_end] == *BOM {
                self.head_start = BOM.len();
            }
        }
        if self.head_start < self.head_end {
            let n = buf.len().min(self.head_end - self.head_start);
            buf[..n].copy_from_slice(&self.head[self.head_start..self.head_start + n]);
            self.head_start += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

impl<R: Read> Read for Normalize<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.ended {
            return Ok(0);
        }
        loop {
            let n = self.fill(buf)?;
            if n == 0 {
                self.ended = true;
                if self.last.is_some_and(|b| b != b'\n') {
                    buf[0] = b'\n';
                    return Ok(1);
                }
                return Ok(0);
            }
            let mut out = 0;
            for i in 0..n {
                let byte = buf[i];
                let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
                if byte == b'\n' && after_cr {
                    continue;
                }
                buf[out] = if byte == b'\r' { b'\n' } else { byte };
                out += 1;
            }
            // All that came was the LF of a CRLF: 0 would mean the end, so read on.
            if out > 0 {
                self.last = Some(buf[out - 1]);
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: [&str; 3] = ["code", "name", "year"];

    fn header_error(header: &str) -> CsvError {
        RowReader::new(format!("{header}\n").as_bytes(), &COLUMNS).err().expect("an error")
    }

    #[test]
    fn the_header_must_name_every_column_in_order_and_nothing_else() {
        assert!(RowReader::new(&b"code,name,year\n"[..], &COLUMNS).is_ok());
        // Empty cells past the last column are not columns.
        assert!(RowReader::new(&b"code,name,year,,\n"[..], &COLUMNS).is_ok());

        let e = header_error("code,name");
        assert_eq!(e.to_string(), "line 1, column year: missing column");
        let e = header_error("code,year,name");
        assert_eq!(e.column.as_deref(), Some("name"));
        assert!(e.message.contains("found column year") && e.message.contains("documented order"), "{e}");
        let e = header_error("ma,name,year");
        assert_eq!(e.to_string(), "line 1, column code: found unknown column \"ma\" where code belongs");
        let e = header_error("code,name,year,note");
        assert_eq!((e.line, e.column.as_deref()), (1, Some("note")));
        assert_eq!(e.message, "unexpected column \"note\" after the last column, year");
        let e = header_error("code;name;year");
        assert!(e.message.contains("semicolons"), "{e}");
        let e = RowReader::new(&b""[..], &COLUMNS).err().unwrap();
        assert_eq!(e.to_string(), "line 1: the file is empty; the first line must be the header row");
    }

    #[test]
    fn a_bom_is_passed_over_even_when_it_arrives_a_byte_at_a_time() {
        // A reader that hands out one byte at a time splits the BOM.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let Some((first, rest)) = self.0.split_first() else { return Ok(0) };
                buf[0] = *first;
                self.0 = rest;
                Ok(1)
            }
        }
        let mut w = RowWriter::new(Vec::new(), &COLUMNS, true).unwrap();
        w.write(&["1", "Y Nhuần", "1999"]).unwrap();
        let file = w.finish().unwrap();
        assert!(file.starts_with(BOM));
        let mut rows = RowReader::new(Trickle(&file), &COLUMNS).unwrap();
        let row = rows.next_row(1).unwrap().ok().unwrap();
        assert_eq!((row.line, row.fields), (2, vec!["1".to_owned(), "Y Nhuần".to_owned(), "1999".to_owned()]));
        assert!(rows.next_row(2).is_none());
        // Short files are not mistaken for a BOM.
        assert_eq!(RowReader::new(&b"c"[..], &COLUMNS).err().unwrap().column.as_deref(), Some("code"));
    }

    #[test]
    fn rows_of_the_wrong_width_or_not_utf8_are_named_by_line_and_first_value() {
        let file = b"code,name,year\n,,\n7,A\n8,\xff,1\n9,B,1\n";
        let mut rows = RowReader::new(&file[..], &COLUMNS).unwrap();
        let short = rows.next_row(1).unwrap().err().unwrap();
        assert_eq!((short.first.as_deref(), short.fatal, short.error.line), (Some("7"), false, 3));
        let latin = rows.next_row(3).unwrap().err().unwrap();
        assert_eq!((latin.first.as_deref(), latin.error.column.as_deref()), (Some("8"), Some("name")));
        assert_eq!(rows.next_row(4).unwrap().ok().unwrap().line, 5, "reading goes on after a bad row");
    }
}
