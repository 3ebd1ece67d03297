//! A small streaming writer for XLSX (Office Open XML spreadsheet) workbooks, using only the standard library.
//!
//! The writer produces the bytes of the `.xlsx` file incrementally: rows are turned into XML and appended to an
//! internal buffer, and the caller drains that buffer with [`XlsxWriter::take`] whenever it wants to send data on
//! (for example after every few thousand rows). Only the rows written since the last `take` are held in memory, so a
//! sheet with a million rows can be streamed with a small, bounded buffer.
//!
//! The container is a ZIP archive whose entries are deflate-compressed as they are written (a sheet's XML repeats
//! itself and shrinks to about a tenth). Because the sizes and checksum of a sheet are not known when its entry
//! begins, every entry has a data descriptor after its data, and the central directory at the end of the archive
//! holds the final values. The output is deterministic: the same calls always produce the same bytes.
//!
//! ```
//! use telesub_server::export::xlsx::{Cell, XlsxWriter};
//!
//! let mut writer = XlsxWriter::new();
//! let mut sent = Vec::new();
//! writer.start_sheet("Danh sách", &[24.0, 12.0]);
//! writer.row(&[Cell::Text("Họ và tên"), Cell::Text("Số người")], true);
//! writer.row(&[Cell::Text("Nguyễn Văn An"), Cell::Number(4)], false);
//! sent.extend(writer.take()); // send these bytes to the client
//! writer.end_sheet();
//! sent.extend(writer.finish());
//! assert_eq!(&sent[..4], b"PK\x03\x04");
//! ```
//!
//! Limits: the whole archive must stay below 4 GiB (no ZIP64), a sheet holds at most 1,048,576 rows and 16,384
//! columns, and a workbook holds at most 65,000 sheets. Exceeding any of these panics, as documented on each method.

/// The largest number of rows a sheet can hold in Excel.
pub const MAX_ROWS: u32 = 1_048_576;

/// The largest number of columns a sheet can hold in Excel (column `XFD`).
pub const MAX_COLUMNS: usize = 16_384;

/// The largest number of characters (UTF-16 code units) Excel accepts in one cell; longer text is truncated.
pub const MAX_CELL_TEXT: usize = 32_767;

/// The largest number of characters (UTF-16 code units) in a sheet name.
pub const MAX_SHEET_NAME: usize = 31;

/// The largest number of sheets, kept well below the 65,535 entries a ZIP archive without ZIP64 can list.
pub const MAX_SHEETS: usize = 65_000;

/// The largest archive size in bytes: offsets and sizes in the ZIP records are 32-bit.
pub const MAX_ARCHIVE_SIZE: u64 = u32::MAX as u64;

/// The value of one cell in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell<'a> {
    /// Text, written as an inline string. Characters that XML 1.0 does not allow (control characters other than tab,
    /// line feed and carriage return) are dropped, and text longer than [`MAX_CELL_TEXT`] is truncated.
    Text(&'a str),
    /// An integer, written as a number. Spreadsheets store numbers as 64-bit floating point, so values beyond
    /// ±2^53 lose precision; write identifiers such as ID card numbers (or anything with leading zeros) as text.
    Number(i64),
    /// An amount of money: a number shown with thousands grouped (`#,##0`, which the reader's locale shows as
    /// `60.000` in Vietnamese).
    Amount(i64),
    /// A date: a real date (the spreadsheet's day number) shown as `dd/mm/yyyy`.
    Date(time::Date),
    /// No value: nothing is written, and the next cell moves one column to the right.
    Empty,
}

/// A streaming XLSX workbook writer.
///
/// Call [`start_sheet`](Self::start_sheet), then [`row`](Self::row) for each row, then
/// [`end_sheet`](Self::end_sheet), for each sheet in turn; call [`take`](Self::take) at any point to collect the bytes
/// produced so far, and [`finish`](Self::finish) at the end to collect the rest. The concatenation of everything
/// returned by `take` and `finish` is the complete `.xlsx` file.
#[derive(Debug, Default)]
pub struct XlsxWriter {
    /// Bytes produced but not yet handed to the caller.
    out: Vec<u8>,
    /// Number of bytes already handed to the caller.
    taken: u64,
    /// ZIP entries that have been completed.
    entries: Vec<ZipEntry>,
    /// The ZIP entry currently being written, if any.
    open_entry: Option<OpenEntry>,
    /// Names of all sheets started so far, after sanitizing.
    sheet_names: Vec<String>,
    /// A row's XML on its way from `out` to the compressor.
    scratch: Vec<u8>,
    /// Number of rows written to the open sheet, or `None` when no sheet is open.
    open_sheet_rows: Option<u32>,
    /// The open sheet is a table: its first row frozen and an autofilter over its rows; the most cells of a row.
    open_table: Option<usize>,
}

impl XlsxWriter {
    /// Creates a writer for an empty workbook.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the next sheet, named `name`, with the given column widths (in characters, first column first).
    ///
    /// The name is made acceptable to Excel: the characters `[ ] : * ? / \` are replaced with `_`, control
    /// characters and leading or trailing apostrophes are removed, the name is cut to [`MAX_SHEET_NAME`] characters,
    /// an empty name becomes `SheetN`, and a name already used in this workbook (ignoring case) gets a suffix such as
    /// ` (2)`. Widths that are not finite numbers are skipped; the others are clamped to the range 0 to 255.
    ///
    /// # Panics
    ///
    /// Panics if a sheet is still open (call [`end_sheet`](Self::end_sheet) first), if the workbook already has
    /// [`MAX_SHEETS`] sheets, or if the archive has grown beyond [`MAX_ARCHIVE_SIZE`].
    pub fn start_sheet(&mut self, name: &str, column_widths: &[f64]) {
        self.start(name, column_widths, false);
    }

    /// [`start_sheet`](Self::start_sheet) for a table: its first row (the headings) stays in view as the rows
    /// scroll, and an autofilter covers the rows when the sheet ends.
    pub fn start_table(&mut self, name: &str, column_widths: &[f64]) {
        self.start(name, column_widths, true);
    }

    fn start(&mut self, name: &str, column_widths: &[f64], table: bool) {
        assert!(self.open_sheet_rows.is_none(), "XlsxWriter::start_sheet: the previous sheet has not been ended");
        assert!(self.sheet_names.len() < MAX_SHEETS, "XlsxWriter::start_sheet: too many sheets");
        let index = self.sheet_names.len() + 1;
        let name = sanitize_sheet_name(name, index, &self.sheet_names);
        self.sheet_names.push(name);
        self.begin_entry(format!("xl/worksheets/sheet{index}.xml"));

        let start = self.out.len();
        let out = &mut self.out;
        out.extend_from_slice(XML_DECLARATION.as_bytes());
        out.extend_from_slice(b"<worksheet xmlns=\"");
        out.extend_from_slice(NS_MAIN);
        out.extend_from_slice(b"\" xmlns:r=\"");
        out.extend_from_slice(NS_REL);
        out.extend_from_slice(b"\">");
        if table {
            out.extend_from_slice(
                b"<sheetViews><sheetView workbookViewId=\"0\"><pane ySplit=\"1\" topLeftCell=\"A2\" \
                  activePane=\"bottomLeft\" state=\"frozen\"/></sheetView></sheetViews>",
            );
        }
        let widths: Vec<(usize, f64)> = column_widths
            .iter()
            .take(MAX_COLUMNS)
            .enumerate()
            .filter(|(_, w)| w.is_finite())
            .map(|(i, w)| (i + 1, w.clamp(0.0, 255.0) + 0.0)) // adding 0.0 turns -0.0 into 0.0
            .collect();
        if !widths.is_empty() {
            out.extend_from_slice(b"<cols>");
            for (column, width) in widths {
                let line = format!("<col min=\"{column}\" max=\"{column}\" width=\"{width}\" customWidth=\"1\"/>");
                out.extend_from_slice(line.as_bytes());
            }
            out.extend_from_slice(b"</cols>");
        }
        out.extend_from_slice(b"<sheetData>");
        self.account(start);
        self.open_sheet_rows = Some(0);
        self.open_table = table.then_some(0);
    }

    /// Appends a row to the open sheet. The first cell goes in column A; set `bold` for a header row.
    ///
    /// # Panics
    ///
    /// Panics if no sheet is open, if the sheet already has [`MAX_ROWS`] rows, if `cells` is longer than
    /// [`MAX_COLUMNS`], or if the archive grows beyond [`MAX_ARCHIVE_SIZE`] (see [`bytes_written`](Self::bytes_written)
    /// to stop before that happens).
    pub fn row(&mut self, cells: &[Cell<'_>], bold: bool) {
        let rows = self.open_sheet_rows.as_mut().expect("XlsxWriter::row: no sheet is open");
        assert!(*rows < MAX_ROWS, "XlsxWriter::row: a sheet holds at most {MAX_ROWS} rows");
        assert!(cells.len() <= MAX_COLUMNS, "XlsxWriter::row: a row holds at most {MAX_COLUMNS} cells");
        *rows += 1;
        if let Some(widest) = self.open_table.as_mut() {
            *widest = (*widest).max(cells.len());
        }
        let mut digits = [0u8; 20];
        let row_ref = format_u64(u64::from(*rows), &mut digits);

        let start = self.out.len();
        let out = &mut self.out;
        out.extend_from_slice(b"<row r=\"");
        out.extend_from_slice(row_ref);
        out.extend_from_slice(b"\">");
        for (column, cell) in cells.iter().enumerate() {
            match *cell {
                Cell::Text(text) => {
                    push_cell_start(out, column, row_ref, if bold { STYLE_BOLD } else { 0 });
                    out.extend_from_slice(b" t=\"inlineStr\"><is><t xml:space=\"preserve\">");
                    push_escaped(out, truncate_utf16(text, MAX_CELL_TEXT), true);
                    out.extend_from_slice(b"</t></is></c>");
                }
                Cell::Number(value) => push_number(out, column, row_ref, if bold { STYLE_BOLD } else { 0 }, value),
                Cell::Amount(value) => push_number(out, column, row_ref, STYLE_AMOUNT, value),
                Cell::Date(date) => {
                    let day = (date - time::macros::date!(1899 - 12 - 30)).whole_days();
                    push_number(out, column, row_ref, STYLE_DATE, day);
                }
                Cell::Empty => {}
            }
        }
        out.extend_from_slice(b"</row>");
        self.account(start);
    }

    /// Ends the open sheet.
    ///
    /// # Panics
    ///
    /// Panics if no sheet is open or if the archive grows beyond [`MAX_ARCHIVE_SIZE`].
    pub fn end_sheet(&mut self) {
        let rows = self.open_sheet_rows.take().expect("XlsxWriter::end_sheet: no sheet is open");
        let mut end = b"</sheetData>".to_vec();
        if let Some(widest) = self.open_table.take().filter(|&w| w > 0 && rows > 0) {
            end.extend_from_slice(b"<autoFilter ref=\"A1:");
            push_column_name(&mut end, widest - 1);
            end.extend_from_slice(rows.to_string().as_bytes());
            end.extend_from_slice(b"\"/>");
        }
        end.extend_from_slice(b"</worksheet>");
        self.write_entry_data(&end);
        self.end_entry();
    }

    /// Returns the bytes produced since the previous call (or since the start) and forgets them, so they can be sent
    /// on. The returned chunks, followed by the result of [`finish`](Self::finish), form the complete file.
    pub fn take(&mut self) -> Vec<u8> {
        let chunk = std::mem::take(&mut self.out);
        self.taken += chunk.len() as u64;
        chunk
    }

    /// Returns the number of bytes produced but not yet collected with [`take`](Self::take).
    pub fn buffered_len(&self) -> usize {
        self.out.len()
    }

    /// Returns the total number of bytes produced so far, collected or not. This is the current size of the archive,
    /// which must stay below [`MAX_ARCHIVE_SIZE`].
    pub fn bytes_written(&self) -> u64 {
        self.taken + self.out.len() as u64
    }

    /// Ends the workbook and returns the bytes not yet collected with [`take`](Self::take).
    ///
    /// A sheet that is still open is ended first. A workbook without sheets gets one empty sheet, `Sheet1`, because
    /// spreadsheet programs refuse workbooks that have none.
    ///
    /// # Panics
    ///
    /// Panics if the archive grows beyond [`MAX_ARCHIVE_SIZE`].
    pub fn finish(mut self) -> Vec<u8> {
        if self.open_sheet_rows.is_some() {
            self.end_sheet();
        }
        if self.sheet_names.is_empty() {
            self.start_sheet("Sheet1", &[]);
            self.end_sheet();
        }
        let count = self.sheet_names.len();

        let mut types = String::new();
        types.push_str(XML_DECLARATION);
        types.push_str(
            "<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
             <Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
             <Default Extension=\"xml\" ContentType=\"application/xml\"/>\
             <Override PartName=\"/xl/workbook.xml\" \
             ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/>\
             <Override PartName=\"/xl/styles.xml\" \
             ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml\"/>",
        );
        for index in 1..=count {
            types.push_str(&format!(
                "<Override PartName=\"/xl/worksheets/sheet{index}.xml\" \
                 ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/>"
            ));
        }
        types.push_str("</Types>");
        self.write_part("[Content_Types].xml", types.as_bytes());

        self.write_part("_rels/.rels", ROOT_RELS);

        let mut workbook = Vec::new();
        workbook.extend_from_slice(XML_DECLARATION.as_bytes());
        workbook.extend_from_slice(b"<workbook xmlns=\"");
        workbook.extend_from_slice(NS_MAIN);
        workbook.extend_from_slice(b"\" xmlns:r=\"");
        workbook.extend_from_slice(NS_REL);
        workbook.extend_from_slice(b"\"><bookViews><workbookView/></bookViews><sheets>");
        for (i, name) in self.sheet_names.iter().enumerate() {
            workbook.extend_from_slice(b"<sheet name=\"");
            push_escaped(&mut workbook, name, false);
            let id = i + 1;
            workbook.extend_from_slice(format!("\" sheetId=\"{id}\" r:id=\"rId{id}\"/>").as_bytes());
        }
        workbook.extend_from_slice(b"</sheets></workbook>");
        self.write_part("xl/workbook.xml", &workbook);

        let mut rels = String::new();
        rels.push_str(XML_DECLARATION);
        rels.push_str("<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">");
        for id in 1..=count {
            rels.push_str(&format!(
                "<Relationship Id=\"rId{id}\" \
                 Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet\" \
                 Target=\"worksheets/sheet{id}.xml\"/>"
            ));
        }
        rels.push_str(&format!(
            "<Relationship Id=\"rId{}\" \
             Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles\" \
             Target=\"styles.xml\"/></Relationships>",
            count + 1
        ));
        self.write_part("xl/_rels/workbook.xml.rels", rels.as_bytes());

        self.write_part("xl/styles.xml", STYLES);

        self.write_central_directory();
        self.out
    }

    /// Writes a complete ZIP entry with the given contents.
    fn write_part(&mut self, name: &str, data: &[u8]) {
        self.begin_entry(name.to_string());
        self.write_entry_data(data);
        self.end_entry();
    }

    /// Writes the local file header of a new entry and makes it the open entry.
    fn begin_entry(&mut self, name: String) {
        debug_assert!(self.open_entry.is_none());
        let offset = self.checked_position();
        let out = &mut self.out;
        put_u32(out, LOCAL_HEADER_SIGNATURE);
        put_u16(out, ZIP_VERSION);
        put_u16(out, ZIP_FLAGS);
        put_u16(out, DEFLATE);
        put_u16(out, DOS_TIME);
        put_u16(out, DOS_DATE);
        put_u32(out, 0); // CRC-32, in the data descriptor
        put_u32(out, 0); // compressed size, in the data descriptor
        put_u32(out, 0); // uncompressed size, in the data descriptor
        put_u16(out, name.len() as u16);
        put_u16(out, 0); // extra field length
        out.extend_from_slice(name.as_bytes());
        let encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        self.open_entry = Some(OpenEntry { name, offset, crc: 0, size: 0, compressed: 0, encoder });
    }

    /// Appends data to the open entry.
    fn write_entry_data(&mut self, data: &[u8]) {
        let start = self.out.len();
        self.out.extend_from_slice(data);
        self.account(start);
    }

    /// Takes the bytes appended to the buffer since `start` as data of the open entry: counts them, and puts them
    /// back compressed (what the compressor has let out so far).
    fn account(&mut self, start: usize) {
        use std::io::Write as _;
        let entry = self.open_entry.as_mut().expect("no open ZIP entry");
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.out[start..]);
        self.out.truncate(start);
        entry.crc = crc32_update(entry.crc, &self.scratch);
        entry.size += self.scratch.len() as u64;
        assert!(
            entry.size <= MAX_ARCHIVE_SIZE,
            "XlsxWriter: a part exceeds 4 GiB, which ZIP without ZIP64 cannot hold"
        );
        entry.encoder.write_all(&self.scratch).expect("compressing into memory");
        let compressed = entry.encoder.get_mut();
        entry.compressed += compressed.len() as u64;
        self.out.append(compressed);
        self.checked_position();
    }

    /// Writes the data descriptor of the open entry and records it for the central directory.
    fn end_entry(&mut self) {
        let entry = self.open_entry.take().expect("no open ZIP entry");
        let mut rest = entry.encoder.finish().expect("compressing into memory");
        let compressed = (entry.compressed + rest.len() as u64) as u32; // the archive is checked to stay below 4 GiB
        self.out.append(&mut rest);
        let size = entry.size as u32; // checked in `account`
        put_u32(&mut self.out, DATA_DESCRIPTOR_SIGNATURE);
        put_u32(&mut self.out, entry.crc);
        put_u32(&mut self.out, compressed);
        put_u32(&mut self.out, size);
        self.checked_position();
        self.entries.push(ZipEntry { name: entry.name, offset: entry.offset, crc: entry.crc, compressed, size });
    }

    /// Writes the central directory and the end-of-central-directory record.
    fn write_central_directory(&mut self) {
        let directory_offset = self.checked_position();
        for entry in &self.entries {
            let out = &mut self.out;
            put_u32(out, CENTRAL_HEADER_SIGNATURE);
            put_u16(out, ZIP_VERSION); // version made by: MS-DOS, 2.0
            put_u16(out, ZIP_VERSION);
            put_u16(out, ZIP_FLAGS);
            put_u16(out, DEFLATE);
            put_u16(out, DOS_TIME);
            put_u16(out, DOS_DATE);
            put_u32(out, entry.crc);
            put_u32(out, entry.compressed);
            put_u32(out, entry.size);
            put_u16(out, entry.name.len() as u16);
            put_u16(out, 0); // extra field length
            put_u16(out, 0); // comment length
            put_u16(out, 0); // disk number
            put_u16(out, 0); // internal attributes
            put_u32(out, 0); // external attributes
            put_u32(out, entry.offset);
            out.extend_from_slice(entry.name.as_bytes());
        }
        let directory_size = (self.bytes_written() - u64::from(directory_offset)) as u32;
        let count = self.entries.len() as u16;
        let out = &mut self.out;
        put_u32(out, END_OF_DIRECTORY_SIGNATURE);
        put_u16(out, 0); // this disk
        put_u16(out, 0); // disk with the central directory
        put_u16(out, count);
        put_u16(out, count);
        put_u32(out, directory_size);
        put_u32(out, directory_offset);
        put_u16(out, 0); // comment length
        self.checked_position();
    }

    /// Returns the current archive size as a 32-bit offset, panicking if it no longer fits.
    fn checked_position(&self) -> u32 {
        let position = self.bytes_written();
        assert!(
            position <= MAX_ARCHIVE_SIZE,
            "XlsxWriter: the workbook exceeds 4 GiB, which ZIP without ZIP64 cannot hold"
        );
        position as u32
    }
}

/// A completed ZIP entry, as listed in the central directory.
#[derive(Debug)]
struct ZipEntry {
    name: String,
    offset: u32,
    crc: u32,
    compressed: u32,
    size: u32,
}

/// The ZIP entry being written.
#[derive(Debug)]
struct OpenEntry {
    name: String,
    offset: u32,
    crc: u32,
    /// Bytes of the part, before compression.
    size: u64,
    /// Compressed bytes already let out.
    compressed: u64,
    encoder: flate2::write::DeflateEncoder<Vec<u8>>,
}

const LOCAL_HEADER_SIGNATURE: u32 = 0x0403_4b50;
const DATA_DESCRIPTOR_SIGNATURE: u32 = 0x0807_4b50;
const CENTRAL_HEADER_SIGNATURE: u32 = 0x0201_4b50;
const END_OF_DIRECTORY_SIGNATURE: u32 = 0x0605_4b50;
/// Compression method 8, deflate.
const DEFLATE: u16 = 8;
/// ZIP version 2.0, needed for data descriptors and deflate.
const ZIP_VERSION: u16 = 20;
/// General-purpose flags: bit 3 (sizes and CRC in a data descriptor) and bit 11 (file names are UTF-8).
const ZIP_FLAGS: u16 = 0x0808;
/// 00:00:00 in MS-DOS time format.
const DOS_TIME: u16 = 0;
/// 1 January 2024 in MS-DOS date format: years since 1980, month and day.
const DOS_DATE: u16 = ((2024 - 1980) << 9) | (1 << 5) | 1;

const XML_DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n";
const NS_MAIN: &[u8] = b"http://schemas.openxmlformats.org/spreadsheetml/2006/main";
const NS_REL: &[u8] = b"http://schemas.openxmlformats.org/officeDocument/2006/relationships";

const ROOT_RELS: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
<Relationship Id=\"rId1\" \
Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" \
Target=\"xl/workbook.xml\"/></Relationships>";

/// A minimal stylesheet. Cell format 0 is the default; 1 uses a bold font (header rows); 2 shows an amount with
/// thousands grouped (built-in format 3, `#,##0`); 3 shows a date as `dd/mm/yyyy` (format 164). Excel requires
/// the two fills (`none` and `gray125`) to be present.
const STYLES: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n\
<styleSheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">\
<numFmts count=\"1\"><numFmt numFmtId=\"164\" formatCode=\"dd/mm/yyyy\"/></numFmts>\
<fonts count=\"2\">\
<font><sz val=\"11\"/><name val=\"Calibri\"/><family val=\"2\"/></font>\
<font><b/><sz val=\"11\"/><name val=\"Calibri\"/><family val=\"2\"/></font>\
</fonts>\
<fills count=\"2\"><fill><patternFill patternType=\"none\"/></fill><fill><patternFill patternType=\"gray125\"/></fill>\
</fills>\
<borders count=\"1\"><border><left/><right/><top/><bottom/><diagonal/></border></borders>\
<cellStyleXfs count=\"1\"><xf numFmtId=\"0\" fontId=\"0\" fillId=\"0\" borderId=\"0\"/></cellStyleXfs>\
<cellXfs count=\"4\">\
<xf numFmtId=\"0\" fontId=\"0\" fillId=\"0\" borderId=\"0\" xfId=\"0\"/>\
<xf numFmtId=\"0\" fontId=\"1\" fillId=\"0\" borderId=\"0\" xfId=\"0\" applyFont=\"1\"/>\
<xf numFmtId=\"3\" fontId=\"0\" fillId=\"0\" borderId=\"0\" xfId=\"0\" applyNumberFormat=\"1\"/>\
<xf numFmtId=\"164\" fontId=\"0\" fillId=\"0\" borderId=\"0\" xfId=\"0\" applyNumberFormat=\"1\"/>\
</cellXfs>\
<cellStyles count=\"1\"><cellStyle name=\"Normal\" xfId=\"0\" builtinId=\"0\"/></cellStyles>\
</styleSheet>";

fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// Tables for CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), processing eight bytes per step. `table[0]` is
/// the classic byte-at-a-time table; `table[k][b]` is the CRC of byte `b` followed by `k` zero bytes.
const fn crc32_tables() -> [[u32; 256]; 8] {
    let mut tables = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 { 0xEDB8_8320 ^ (crc >> 1) } else { crc >> 1 };
            bit += 1;
        }
        tables[0][i] = crc;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut k = 1;
        while k < 8 {
            let previous = tables[k - 1][i];
            tables[k][i] = (previous >> 8) ^ tables[0][(previous & 0xFF) as usize];
            k += 1;
        }
        i += 1;
    }
    tables
}

static CRC32_TABLES: [[u32; 256]; 8] = crc32_tables();

/// Continues a CRC-32 computation: `crc` is the checksum of the data so far (0 for none), and the result is the
/// checksum of that data followed by `data`.
fn crc32_update(crc: u32, data: &[u8]) -> u32 {
    let t = &CRC32_TABLES;
    let mut crc = !crc;
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let low = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ crc;
        let high = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        crc = t[7][(low & 0xFF) as usize]
            ^ t[6][((low >> 8) & 0xFF) as usize]
            ^ t[5][((low >> 16) & 0xFF) as usize]
            ^ t[4][(low >> 24) as usize]
            ^ t[3][(high & 0xFF) as usize]
            ^ t[2][((high >> 8) & 0xFF) as usize]
            ^ t[1][((high >> 16) & 0xFF) as usize]
            ^ t[0][(high >> 24) as usize];
    }
    for &byte in chunks.remainder() {
        crc = t[0][((crc ^ u32::from(byte)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

/// Writes the decimal digits of `value` into the end of `buf` and returns them.
fn format_u64(mut value: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return &buf[start..];
        }
    }
}

/// Appends the letters of a zero-based column index: 0 is `A`, 25 is `Z`, 26 is `AA`, 16383 is `XFD`.
fn push_column_name(out: &mut Vec<u8>, column: usize) {
    let mut letters = [0u8; 4];
    let mut start = letters.len();
    let mut n = column + 1;
    while n > 0 {
        n -= 1;
        start -= 1;
        letters[start] = b'A' + (n % 26) as u8;
        n /= 26;
    }
    out.extend_from_slice(&letters[start..]);
}

/// Appends the start of a cell element, up to but not including the `t` attribute and the closing `>`.
/// The cell formats of [`STYLES`]: bold (headings), an amount (`#,##0`), a date (`dd/mm/yyyy`).
const STYLE_BOLD: u8 = 1;
const STYLE_AMOUNT: u8 = 2;
const STYLE_DATE: u8 = 3;

fn push_cell_start(out: &mut Vec<u8>, column: usize, row_ref: &[u8], style: u8) {
    out.extend_from_slice(b"<c r=\"");
    push_column_name(out, column);
    out.extend_from_slice(row_ref);
    out.push(b'"');
    if style != 0 {
        out.extend_from_slice(b" s=\"");
        out.push(b'0' + style);
        out.push(b'"');
    }
}

fn push_number(out: &mut Vec<u8>, column: usize, row_ref: &[u8], style: u8, value: i64) {
    push_cell_start(out, column, row_ref, style);
    out.extend_from_slice(b"><v>");
    if value < 0 {
        out.push(b'-');
    }
    let mut buf = [0u8; 20];
    out.extend_from_slice(format_u64(value.unsigned_abs(), &mut buf));
    out.extend_from_slice(b"</v></c>");
}

/// Returns the longest prefix of `text` that has at most `max` UTF-16 code units.
fn truncate_utf16(text: &str, max: usize) -> &str {
    // A character takes at least as many UTF-8 bytes as UTF-16 units, so short strings need no counting.
    if text.len() <= max {
        return text;
    }
    let mut units = 0;
    for (index, ch) in text.char_indices() {
        units += ch.len_utf16();
        if units > max {
            return &text[..index];
        }
    }
    text
}

/// Appends `text` escaped for XML content or a double-quoted attribute value.
///
/// `&`, `<`, `>` and `"` become entity references, a carriage return becomes `&#13;` (so it survives line-end
/// normalization), and characters XML 1.0 does not allow (C0 controls other than tab, line feed and carriage return,
/// U+FFFE and U+FFFF) are dropped. With `escape_underscore`, an underscore that starts a sequence such as `_x0041_`
/// is written as `_x005F_`, because spreadsheet programs read `_xHHHH_` in cell text as an escaped character.
fn push_escaped(out: &mut Vec<u8>, text: &str, escape_underscore: bool) {
    let bytes = text.as_bytes();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let (replacement, skip): (&[u8], usize) = match bytes[i] {
            b'&' => (b"&amp;", 1),
            b'<' => (b"&lt;", 1),
            b'>' => (b"&gt;", 1),
            b'"' => (b"&quot;", 1),
            b'\r' => (b"&#13;", 1),
            b'\t' | b'\n' => {
                i += 1;
                continue;
            }
            0..=0x1F => (b"", 1),
            b'_' if escape_underscore && is_underscore_escape(&bytes[i..]) => (b"_x005F_", 1),
            // U+FFFE and U+FFFF are EF BF BE and EF BF BF in UTF-8.
            0xEF if bytes.get(i + 1) == Some(&0xBF) && matches!(bytes.get(i + 2), Some(0xBE | 0xBF)) => (b"", 3),
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[copied..i]);
        out.extend_from_slice(replacement);
        i += skip;
        copied = i;
    }
    out.extend_from_slice(&bytes[copied..]);
}

/// Tells whether `bytes` starts with `_xHHHH_`, where each `H` is a hexadecimal digit.
fn is_underscore_escape(bytes: &[u8]) -> bool {
    bytes.len() >= 7 && bytes[1] == b'x' && bytes[2..6].iter().all(u8::is_ascii_hexdigit) && bytes[6] == b'_'
}

/// Makes `name` a valid sheet name that differs (ignoring case) from every name in `existing`.
fn sanitize_sheet_name(name: &str, index: usize, existing: &[String]) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '\u{FFFE}' | '\u{FFFF}'))
        .map(|c| if matches!(c, '[' | ']' | ':' | '*' | '?' | '/' | '\\') { '_' } else { c })
        .collect();
    let mut base = truncate_utf16(cleaned.trim_matches('\''), MAX_SHEET_NAME).trim_end_matches('\'').to_string();
    if base.is_empty() {
        base = format!("Sheet{index}");
    }
    // Excel reserves the name "History" for its change tracking.
    if base.eq_ignore_ascii_case("history") {
        base.push('_');
    }
    let taken = |candidate: &str| {
        let lower = candidate.to_lowercase();
        existing.iter().any(|name| name.to_lowercase() == lower)
    };
    let mut candidate = base.clone();
    let mut counter = 2;
    while taken(&candidate) {
        let suffix = format!(" ({counter})");
        let head = truncate_utf16(&base, MAX_SHEET_NAME - suffix.len());
        candidate = format!("{head}{suffix}");
        counter += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-by-bit CRC-32, independent of the tables.
    fn crc32_reference(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    fn u16_at(bytes: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([bytes[at], bytes[at + 1]])
    }

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
    }

    /// Reads a ZIP archive through its central directory and checks that every local header, data block and data
    /// descriptor agree with it and that the entries are laid out back to back. Returns the entries in order.
    fn read_zip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
        let eocd = bytes.len() - 22;
        assert_eq!(u32_at(bytes, eocd), END_OF_DIRECTORY_SIGNATURE);
        assert_eq!(u16_at(bytes, eocd + 4), 0);
        assert_eq!(u16_at(bytes, eocd + 6), 0);
        let count = usize::from(u16_at(bytes, eocd + 8));
        assert_eq!(u16_at(bytes, eocd + 10) as usize, count);
        let directory_size = u32_at(bytes, eocd + 12) as usize;
        let directory_offset = u32_at(bytes, eocd + 16) as usize;
        assert_eq!(u16_at(bytes, eocd + 20), 0, "no archive comment");
        assert_eq!(directory_offset + directory_size, eocd);

        let mut entries = Vec::new();
        let mut central = directory_offset;
        let mut next_local = 0;
        for _ in 0..count {
            let c = central;
            assert_eq!(u32_at(bytes, c), CENTRAL_HEADER_SIGNATURE);
            assert_eq!(u16_at(bytes, c + 4), 20);
            assert_eq!(u16_at(bytes, c + 6), 20);
            assert_eq!(u16_at(bytes, c + 8), 0x0808, "data descriptor and UTF-8 flags");
            assert_eq!(u16_at(bytes, c + 10), 8, "deflated");
            assert_eq!(u16_at(bytes, c + 12), 0);
            assert_eq!(u16_at(bytes, c + 14), 0x5821, "1 January 2024");
            let crc = u32_at(bytes, c + 16);
            let compressed = u32_at(bytes, c + 20) as usize;
            let size = u32_at(bytes, c + 24) as usize;
            let name_len = usize::from(u16_at(bytes, c + 28));
            assert_eq!(u16_at(bytes, c + 30), 0);
            assert_eq!(u16_at(bytes, c + 32), 0);
            let local = u32_at(bytes, c + 42) as usize;
            let name = std::str::from_utf8(&bytes[c + 46..c + 46 + name_len]).unwrap().to_string();
            central = c + 46 + name_len;

            assert_eq!(local, next_local, "entries are contiguous");
            assert_eq!(u32_at(bytes, local), LOCAL_HEADER_SIGNATURE);
            assert_eq!(u16_at(bytes, local + 4), 20);
            assert_eq!(u16_at(bytes, local + 6), 0x0808);
            assert_eq!(u16_at(bytes, local + 8), 8);
            assert_eq!(u16_at(bytes, local + 10), 0);
            assert_eq!(u16_at(bytes, local + 12), 0x5821);
            assert_eq!(u32_at(bytes, local + 14), 0);
            assert_eq!(u32_at(bytes, local + 18), 0);
            assert_eq!(u32_at(bytes, local + 22), 0);
            assert_eq!(usize::from(u16_at(bytes, local + 26)), name_len);
            assert_eq!(u16_at(bytes, local + 28), 0);
            assert_eq!(&bytes[local + 30..local + 30 + name_len], name.as_bytes());
            let data_start = local + 30 + name_len;
            let mut data = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::DeflateDecoder::new(&bytes[data_start..data_start + compressed]),
                &mut data,
            )
            .unwrap();
            assert_eq!(data.len(), size, "size of {name}");
            assert_eq!(crc32_reference(&data), crc, "CRC of {name}");
            let descriptor = data_start + compressed;
            assert_eq!(u32_at(bytes, descriptor), DATA_DESCRIPTOR_SIGNATURE);
            assert_eq!(u32_at(bytes, descriptor + 4), crc);
            assert_eq!(u32_at(bytes, descriptor + 8) as usize, compressed);
            assert_eq!(u32_at(bytes, descriptor + 12) as usize, size);
            next_local = descriptor + 16;
            entries.push((name, data));
        }
        assert_eq!(next_local, directory_offset, "central directory follows the last entry");
        assert_eq!(central, directory_offset + directory_size);
        entries
    }

    fn part<'a>(entries: &'a [(String, Vec<u8>)], name: &str) -> &'a str {
        let (_, data) = entries.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("missing part {name}"));
        std::str::from_utf8(data).unwrap()
    }

    /// Writes a two-sheet workbook, calling `take` after every row when `chunked` is set.
    fn sample_workbook(chunked: bool) -> (Vec<u8>, Vec<usize>) {
        let mut writer = XlsxWriter::new();
        let mut bytes = Vec::new();
        let mut chunk_sizes = Vec::new();
        let mut collect = |writer: &mut XlsxWriter| {
            if chunked {
                let chunk = writer.take();
                chunk_sizes.push(chunk.len());
                bytes.extend(chunk);
            }
        };
        writer.start_sheet("Hộ gia đình", &[28.0, 12.5, 40.0]);
        collect(&mut writer);
        writer.row(&[Cell::Text("Họ và tên"), Cell::Text("Số người"), Cell::Text("Ghi chú")], true);
        collect(&mut writer);
        writer.row(&[Cell::Text("Nguyễn Văn An"), Cell::Number(4), Cell::Text("Hộ nghèo")], false);
        collect(&mut writer);
        writer.row(&[Cell::Text("Trần Thị <Bình> & \"Con\""), Cell::Number(-17), Cell::Empty], false);
        collect(&mut writer);
        writer.end_sheet();
        collect(&mut writer);
        writer.start_sheet("Tổng hợp", &[]);
        writer.row(&[Cell::Text("Tỉnh"), Cell::Text("Số hộ")], true);
        for i in 0..30 {
            let mut cells = vec![Cell::Empty; 27];
            cells[0] = Cell::Text("Hà Nội");
            cells[26] = Cell::Number(i64::from(i) * 1000);
            writer.row(&cells, false);
            collect(&mut writer);
        }
        writer.end_sheet();
        bytes.extend(writer.finish());
        (bytes, chunk_sizes)
    }

    /// The example in the module documentation.
    #[test]
    fn module_example() {
        let mut writer = XlsxWriter::new();
        let mut sent = Vec::new();
        writer.start_sheet("Danh sách", &[24.0, 12.0]);
        writer.row(&[Cell::Text("Họ và tên"), Cell::Text("Số người")], true);
        writer.row(&[Cell::Text("Nguyễn Văn An"), Cell::Number(4)], false);
        sent.extend(writer.take());
        writer.end_sheet();
        sent.extend(writer.finish());
        assert_eq!(&sent[..4], b"PK\x03\x04");
        let entries = read_zip(&sent);
        assert!(part(&entries, "xl/worksheets/sheet1.xml").contains("<c r=\"B2\"><v>4</v></c>"));
    }

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32_update(0, b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32_reference(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32_update(0, b""), 0);
    }

    #[test]
    fn crc32_matches_reference_in_pieces() {
        let mut state = 0x1234_5678u32;
        let data: Vec<u8> = (0..1000)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 24) as u8
            })
            .collect();
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 63, 1000] {
            let expected = crc32_reference(&data[..len]);
            assert_eq!(crc32_update(0, &data[..len]), expected);
            for split in [0, 1, 3, len / 2, len] {
                let split = split.min(len);
                let crc = crc32_update(crc32_update(0, &data[..split]), &data[split..len]);
                assert_eq!(crc, expected, "len {len} split {split}");
            }
        }
    }

    #[test]
    fn dos_date_is_first_of_january_2024() {
        assert_eq!(DOS_DATE, 0x5821);
        assert_eq!(DOS_DATE >> 9, 44);
        assert_eq!((DOS_DATE >> 5) & 0xF, 1);
        assert_eq!(DOS_DATE & 0x1F, 1);
    }

    #[test]
    fn two_sheet_workbook_round_trips() {
        let (bytes, _) = sample_workbook(false);
        let entries = read_zip(&bytes);
        let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "xl/worksheets/sheet1.xml",
                "xl/worksheets/sheet2.xml",
                "[Content_Types].xml",
                "_rels/.rels",
                "xl/workbook.xml",
                "xl/_rels/workbook.xml.rels",
                "xl/styles.xml",
            ]
        );

        let sheet1 = part(&entries, "xl/worksheets/sheet1.xml");
        assert!(sheet1.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>"));
        let cols = "<cols><col min=\"1\" max=\"1\" width=\"28\" customWidth=\"1\"/>\
                    <col min=\"2\" max=\"2\" width=\"12.5\" customWidth=\"1\"/>\
                    <col min=\"3\" max=\"3\" width=\"40\" customWidth=\"1\"/></cols><sheetData>";
        assert!(sheet1.contains(cols), "{sheet1}");
        assert!(sheet1.contains(
            "<row r=\"1\"><c r=\"A1\" s=\"1\" t=\"inlineStr\"><is><t xml:space=\"preserve\">Họ và tên</t></is></c>"
        ));
        assert!(sheet1.contains(
            "<row r=\"2\"><c r=\"A2\" t=\"inlineStr\"><is><t xml:space=\"preserve\">Nguyễn Văn An</t></is></c>\
             <c r=\"B2\"><v>4</v></c>\
             <c r=\"C2\" t=\"inlineStr\"><is><t xml:space=\"preserve\">Hộ nghèo</t></is></c></row>"
        ));
        assert!(sheet1.contains("Trần Thị &lt;Bình&gt; &amp; &quot;Con&quot;"));
        assert!(sheet1.contains("<c r=\"B3\"><v>-17</v></c></row>"), "empty cell C3 is not written");
        assert!(sheet1.ends_with("</row></sheetData></worksheet>"));

        let sheet2 = part(&entries, "xl/worksheets/sheet2.xml");
        assert!(!sheet2.contains("<cols>"));
        assert!(sheet2.contains("<c r=\"B1\" s=\"1\" t=\"inlineStr\"><is><t xml:space=\"preserve\">Số hộ</t>"));
        assert!(sheet2.contains("<c r=\"AA31\"><v>29000</v></c></row></sheetData>"));
        assert!(!sheet2.contains("r=\"B2\""), "empty cells are skipped");

        let workbook = part(&entries, "xl/workbook.xml");
        assert!(workbook.contains("<sheet name=\"Hộ gia đình\" sheetId=\"1\" r:id=\"rId1\"/>"));
        assert!(workbook.contains("<sheet name=\"Tổng hợp\" sheetId=\"2\" r:id=\"rId2\"/>"));
        let rels = part(&entries, "xl/_rels/workbook.xml.rels");
        assert!(rels.contains("Id=\"rId2\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet\" Target=\"worksheets/sheet2.xml\""));
        assert!(rels.contains(
            "Id=\"rId3\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles\""
        ));
        let types = part(&entries, "[Content_Types].xml");
        assert!(types.contains("PartName=\"/xl/worksheets/sheet1.xml\""));
        assert!(types.contains("PartName=\"/xl/worksheets/sheet2.xml\""));
        assert!(part(&entries, "_rels/.rels").contains("Target=\"xl/workbook.xml\""));
        let styles = part(&entries, "xl/styles.xml");
        assert!(styles.contains("<cellXfs count=\"4\">") && styles.contains("fontId=\"1\""));
        assert!(styles.contains("numFmtId=\"3\"") && styles.contains("formatCode=\"dd/mm/yyyy\""));
    }

    #[test]
    fn take_returns_incremental_bytes() {
        let (whole, none) = sample_workbook(false);
        assert!(none.is_empty());
        let (chunked, sizes) = sample_workbook(true);
        assert_eq!(chunked, whole);
        // The compressor lets bytes out in runs, so a step may give none; none gives many.
        assert!(sizes.iter().all(|&size| size < 2000), "chunks stay small: {sizes:?}");

        let mut writer = XlsxWriter::new();
        assert!(writer.take().is_empty());
        writer.start_sheet("A", &[]);
        let first = writer.take();
        assert_eq!(&first[..4], b"PK\x03\x04");
        assert_eq!(writer.buffered_len(), 0);
        writer.row(&[Cell::Number(1)], false);
        let buffered = writer.buffered_len();
        let second = writer.take();
        assert_eq!(buffered, second.len());
        assert_eq!(writer.bytes_written(), (first.len() + second.len()) as u64);
        let file = [first, second, writer.finish()].concat();
        let entries = read_zip(&file);
        assert!(part(&entries, "xl/worksheets/sheet1.xml").contains("<row r=\"1\"><c r=\"A1\"><v>1</v></c></row>"));
    }

    /// A table keeps its headings in view and filters its rows; amounts and dates are numbers with formats.
    #[test]
    fn a_table_freezes_its_headings_filters_its_rows_and_formats_amounts_and_dates() {
        let mut writer = XlsxWriter::new();
        writer.start_table("Chi tiết", &[10.0, 10.0, 12.0]);
        writer.row(&[Cell::Text("Mã"), Cell::Text("Số tiền"), Cell::Text("Ngày")], true);
        writer.row(&[Cell::Text("HH-1"), Cell::Amount(60_000), Cell::Date(time::macros::date!(2025 - 03 - 31))], false);
        writer.row(&[Cell::Text("HH-2"), Cell::Amount(-5_000)], false);
        writer.end_sheet();
        writer.start_sheet("Khác", &[]);
        writer.row(&[Cell::Number(1)], false);
        let entries = read_zip(&writer.finish());
        let table = part(&entries, "xl/worksheets/sheet1.xml");
        assert!(
            table.contains("<pane ySplit=\"1\" topLeftCell=\"A2\" activePane=\"bottomLeft\" state=\"frozen\"/>"),
            "{table}"
        );
        assert!(table.contains("</sheetData><autoFilter ref=\"A1:C3\"/></worksheet>"), "{table}");
        assert!(table.contains("<c r=\"B2\" s=\"2\"><v>60000</v></c>"), "{table}");
        assert!(table.contains("<c r=\"B3\" s=\"2\"><v>-5000</v></c>"), "{table}");
        // 31 March 2025 is day 45747 of the spreadsheet's calendar.
        assert!(table.contains("<c r=\"C2\" s=\"3\"><v>45747</v></c>"), "{table}");
        let plain = part(&entries, "xl/worksheets/sheet2.xml");
        assert!(!plain.contains("<pane") && !plain.contains("autoFilter"), "{plain}");
    }

    /// A sheet of many alike rows leaves the writer compressed to a fraction of its XML, and the
    /// writer holds little of it at any time.
    #[test]
    fn rows_are_compressed_as_they_are_written() {
        let mut writer = XlsxWriter::new();
        writer.start_sheet("Dòng", &[]);
        let (mut sent, mut most_held) = (0usize, 0usize);
        for n in 0..20_000 {
            writer.row(
                &[Cell::Number(n), Cell::Text("Nguyễn Văn An"), Cell::Text("0912345678"), Cell::Number(60_000)],
                false,
            );
            most_held = most_held.max(writer.buffered_len());
            sent += writer.take().len();
        }
        writer.end_sheet();
        let rest = writer.finish();
        sent += rest.len();
        // Each row's XML is some 200 bytes: 4 MB in all.
        assert!(sent < 600_000, "{sent} bytes for 20,000 rows");
        assert!(most_held < 200_000, "the writer held {most_held} bytes at once");
    }

    #[test]
    fn output_is_deterministic() {
        assert_eq!(sample_workbook(false).0, sample_workbook(false).0);
    }

    #[test]
    fn text_is_escaped_and_invalid_characters_dropped() {
        let mut out = Vec::new();
        push_escaped(&mut out, "a<b&c>d\"e'\u{1}f\tg\nh\ri\u{1F}j\u{FFFE}k\u{FFFF}l\u{FFFD}m", true);
        assert_eq!(std::str::from_utf8(&out).unwrap(), "a&lt;b&amp;c&gt;d&quot;e'f\tg\nh&#13;ijkl\u{FFFD}m");

        let mut out = Vec::new();
        push_escaped(&mut out, "x_x0041_y_x12_z_X0041_", true);
        assert_eq!(std::str::from_utf8(&out).unwrap(), "x_x005F_x0041_y_x12_z_X0041_");
        let mut out = Vec::new();
        push_escaped(&mut out, "_x0041_", false);
        assert_eq!(out, b"_x0041_");

        let mut writer = XlsxWriter::new();
        writer.start_sheet("S", &[]);
        writer.row(&[Cell::Text("<&>\""), Cell::Text("x\u{1}y")], false);
        let entries = read_zip(&writer.finish());
        let sheet = part(&entries, "xl/worksheets/sheet1.xml");
        assert!(sheet.contains("<t xml:space=\"preserve\">&lt;&amp;&gt;&quot;</t>"));
        assert!(sheet.contains("<c r=\"B1\" t=\"inlineStr\"><is><t xml:space=\"preserve\">xy</t>"));
        assert!(!sheet.contains('\u{1}'));
    }

    #[test]
    fn long_text_is_truncated_to_excel_limit() {
        let text = "ễ".repeat(MAX_CELL_TEXT + 10);
        assert_eq!(truncate_utf16(&text, MAX_CELL_TEXT).chars().count(), MAX_CELL_TEXT);
        let emoji = "😀".repeat(20);
        assert_eq!(truncate_utf16(&emoji, 5), "😀😀");
        assert_eq!(truncate_utf16("abc", 5), "abc");
    }

    #[test]
    fn column_names() {
        let name = |column| {
            let mut out = Vec::new();
            push_column_name(&mut out, column);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(name(0), "A");
        assert_eq!(name(1), "B");
        assert_eq!(name(25), "Z");
        assert_eq!(name(26), "AA");
        assert_eq!(name(27), "AB");
        assert_eq!(name(701), "ZZ");
        assert_eq!(name(702), "AAA");
        assert_eq!(name(MAX_COLUMNS - 1), "XFD");
    }

    #[test]
    fn numbers_are_formatted() {
        let mut writer = XlsxWriter::new();
        writer.start_sheet("N", &[]);
        writer.row(&[Cell::Number(0), Cell::Number(i64::MIN), Cell::Number(i64::MAX)], false);
        let entries = read_zip(&writer.finish());
        let sheet = part(&entries, "xl/worksheets/sheet1.xml");
        assert!(sheet.contains(
            "<c r=\"A1\"><v>0</v></c><c r=\"B1\"><v>-9223372036854775808</v></c>\
             <c r=\"C1\"><v>9223372036854775807</v></c>"
        ));
    }

    #[test]
    fn sheet_names_are_sanitized() {
        let existing = vec!["Dữ liệu".to_string(), "Báo cáo".to_string()];
        assert_eq!(sanitize_sheet_name("a[b]c:d*e?f/g\\h", 3, &existing), "a_b_c_d_e_f_g_h");
        assert_eq!(sanitize_sheet_name("", 3, &existing), "Sheet3");
        assert_eq!(sanitize_sheet_name("''", 3, &existing), "Sheet3");
        assert_eq!(sanitize_sheet_name("'Tên'", 3, &existing), "Tên");
        assert_eq!(sanitize_sheet_name("x\u{1}y\n", 3, &existing), "xy");
        assert_eq!(sanitize_sheet_name("History", 3, &existing), "History_");
        assert_eq!(sanitize_sheet_name("DỮ LIỆU", 3, &existing), "DỮ LIỆU (2)");
        let long = "Danh sách hộ nghèo và cận nghèo năm 2024";
        let cut = sanitize_sheet_name(long, 3, &existing);
        assert_eq!(cut.chars().count(), 31);
        assert!(long.starts_with(&cut));
        let mut names = existing.clone();
        names.push(cut.clone());
        let again = sanitize_sheet_name(long, 4, &names);
        assert_eq!(again.chars().count(), 31);
        assert!(again.ends_with(" (2)"));
        names.push(again);
        assert!(sanitize_sheet_name(long, 5, &names).ends_with(" (3)"));

        let mut writer = XlsxWriter::new();
        writer.start_sheet("A/B", &[]);
        writer.end_sheet();
        writer.start_sheet("a_b", &[]);
        writer.end_sheet();
        let entries = read_zip(&writer.finish());
        let workbook = part(&entries, "xl/workbook.xml");
        assert!(workbook.contains("name=\"A_B\"") && workbook.contains("name=\"a_b (2)\""));
    }

    #[test]
    fn column_widths_skip_invalid_values() {
        let mut writer = XlsxWriter::new();
        writer.start_sheet("W", &[f64::NAN, -3.0, 300.0, 8.43, -0.0, f64::INFINITY]);
        let entries = read_zip(&writer.finish());
        let sheet = part(&entries, "xl/worksheets/sheet1.xml");
        assert!(sheet.contains(
            "<cols><col min=\"2\" max=\"2\" width=\"0\" customWidth=\"1\"/>\
             <col min=\"3\" max=\"3\" width=\"255\" customWidth=\"1\"/>\
             <col min=\"4\" max=\"4\" width=\"8.43\" customWidth=\"1\"/>\
             <col min=\"5\" max=\"5\" width=\"0\" customWidth=\"1\"/></cols><sheetData>"
        ));
    }

    #[test]
    fn empty_workbook_gets_one_sheet_and_open_sheet_is_ended() {
        let entries = read_zip(&XlsxWriter::new().finish());
        assert!(part(&entries, "xl/workbook.xml").contains("<sheet name=\"Sheet1\""));
        assert_eq!(part(&entries, "xl/worksheets/sheet1.xml").matches("<sheetData></sheetData>").count(), 1);

        let mut writer = XlsxWriter::new();
        writer.start_sheet("Open", &[]);
        writer.row(&[Cell::Text("x")], false);
        let entries = read_zip(&writer.finish());
        assert!(part(&entries, "xl/worksheets/sheet1.xml").ends_with("</row></sheetData></worksheet>"));
    }

    #[test]
    #[should_panic(expected = "previous sheet has not been ended")]
    fn starting_a_sheet_twice_panics() {
        let mut writer = XlsxWriter::new();
        writer.start_sheet("A", &[]);
        writer.start_sheet("B", &[]);
    }

    #[test]
    #[should_panic(expected = "exceeds 4 GiB")]
    fn archive_beyond_4_gib_panics() {
        let mut writer = XlsxWriter::new();
        writer.start_sheet("A", &[]);
        writer.taken = MAX_ARCHIVE_SIZE - 10; // pretend almost 4 GiB were already sent
        writer.row(&[Cell::Text("more than ten bytes")], false);
    }

    #[test]
    #[should_panic(expected = "at most 1048576 rows")]
    fn too_many_rows_panics() {
        let mut writer = XlsxWriter::new();
        writer.start_sheet("A", &[]);
        writer.open_sheet_rows = Some(MAX_ROWS - 1);
        writer.row(&[Cell::Number(1)], false); // row 1,048,576 is allowed
        writer.row(&[Cell::Number(1)], false);
    }

    #[test]
    #[should_panic(expected = "no sheet is open")]
    fn row_without_sheet_panics() {
        XlsxWriter::new().row(&[Cell::Number(1)], false);
    }
}
