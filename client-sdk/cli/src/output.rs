//! `--output table|json|csv` of the commands that read: the table for people (each command's
//! own printing), or the hub's answer for programs.
//!
//! - `json`: one JSON document, the answer in protobuf's JSON mapping (proto3 JSON). A list
//!   command prints its `List…Response` message with every page gathered (`nextPageToken`
//!   only when `--limit` cut the list short); `watch` prints JSON Lines, one event a line, as
//!   they come.
//! - `csv`: a header row, then a row per item of a list, or one row for a single answer; values
//!   as the project's CSV files have them (see [`crate::rows`]). UTF-8 with a byte-order mark
//!   unless `--no-bom`, CRLF line ends.

use std::io::Write;

use clap::{Args, ValueEnum};
use telesub_proto::json::ToJson;

use crate::{Failure, rows::Row};

/// The UTF-8 byte-order mark that spreadsheet programs need to read Vietnamese right.
const BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// For people: labels and aligned columns.
    Table,
    /// Protobuf's JSON mapping of the hub's answer.
    Json,
    /// A header row, then one row per item (one row for a single answer).
    Csv,
}

/// How a command that reads prints its answer.
#[derive(Args, Clone, Copy, Debug)]
#[command(next_help_heading = "Output")]
pub(crate) struct OutputArgs {
    /// `table` for people; `json` (protobuf's JSON mapping) or `csv` for programs.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = Format::Table)]
    pub(crate) output: Format,
    /// With --output csv: no UTF-8 byte-order mark before the header row.
    #[arg(long)]
    pub(crate) no_bom: bool,
}

impl OutputArgs {
    /// Prints a single answer: `table` prints it for people.
    pub(crate) fn one<M: ToJson + Row>(&self, message: &M, table: impl FnOnce(&M)) -> Result<(), Failure> {
        match self.output {
            Format::Table => {
                table(message);
                Ok(())
            }
            Format::Json => json(message),
            Format::Csv => self.csv(M::COLUMNS, std::slice::from_ref(message).iter().map(Row::cells)),
        }
    }

    /// Prints a list: JSON the whole `response`, CSV a row per one of `items`.
    pub(crate) fn list<R: ToJson, T: Row>(
        &self,
        response: &R,
        items: &[T],
        table: impl FnOnce(),
    ) -> Result<(), Failure> {
        match self.output {
            Format::Table => {
                table();
                Ok(())
            }
            Format::Json => json(response),
            Format::Csv => self.csv(T::COLUMNS, items.iter().map(Row::cells)),
        }
    }

    /// Prints an answer whose CSV columns are the answer's own (the public statistics).
    pub(crate) fn custom<R: ToJson>(
        &self,
        response: &R,
        header: &[&str],
        rows: impl Iterator<Item = Vec<String>>,
        table: impl FnOnce(),
    ) -> Result<(), Failure> {
        match self.output {
            Format::Table => {
                table();
                Ok(())
            }
            Format::Json => json(response),
            Format::Csv => self.csv(header, rows),
        }
    }

    fn csv<S: AsRef<str>>(&self, header: &[S], rows: impl Iterator<Item = Vec<String>>) -> Result<(), Failure> {
        let mut writer = self.csv_writer();
        writer.write_record(header.iter().map(AsRef::as_ref)).map_err(csv_failure)?;
        for row in rows {
            writer.write_record(&row).map_err(csv_failure)?;
        }
        let bytes = writer.into_inner().map_err(|e| Failure::Message(format!("writing CSV: {e}")))?;
        write_stdout(&bytes)
    }

    /// A CSV writer into memory, the byte-order mark already in unless `--no-bom`.
    fn csv_writer(&self) -> csv::Writer<Vec<u8>> {
        let start = if self.no_bom { Vec::new() } else { BOM.to_vec() };
        csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(start)
    }

    /// For an answer that comes in pieces (`watch`): prints each as it comes, JSON Lines or
    /// CSV rows under one header.
    pub(crate) fn stream<T: ToJson + Row>(&self) -> Stream<T> {
        Stream { output: *self, started: false, _item: std::marker::PhantomData }
    }
}

/// The printer of [`OutputArgs::stream`].
pub(crate) struct Stream<T> {
    output: OutputArgs,
    started: bool,
    _item: std::marker::PhantomData<fn(&T)>,
}

impl<T: ToJson + Row> Stream<T> {
    /// Prints one item, `table` for people.
    pub(crate) fn item(&mut self, item: &T, table: impl FnOnce(&T)) -> Result<(), Failure> {
        match self.output.output {
            Format::Table => {
                table(item);
                Ok(())
            }
            Format::Json => {
                let mut line = serde_json::to_vec(&item.to_json()).map_err(json_failure)?;
                line.push(b'\n');
                write_stdout(&line)
            }
            Format::Csv => {
                let mut writer = if self.started {
                    csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new())
                } else {
                    let mut writer = self.output.csv_writer();
                    writer.write_record(T::COLUMNS).map_err(csv_failure)?;
                    writer
                };
                self.started = true;
                writer.write_record(item.cells()).map_err(csv_failure)?;
                let bytes = writer.into_inner().map_err(|e| Failure::Message(format!("writing CSV: {e}")))?;
                write_stdout(&bytes)
            }
        }
    }

    /// Ends the stream: a CSV of no item still has its header.
    pub(crate) fn finish(self) -> Result<(), Failure> {
        if self.output.output == Format::Csv && !self.started {
            return self.output.csv::<&str>(T::COLUMNS, std::iter::empty());
        }
        Ok(())
    }
}

/// Prints `message` as one pretty-printed JSON document.
fn json<M: ToJson>(message: &M) -> Result<(), Failure> {
    let mut text = serde_json::to_vec_pretty(&message.to_json()).map_err(json_failure)?;
    text.push(b'\n');
    write_stdout(&text)
}

fn json_failure(e: serde_json::Error) -> Failure {
    // An enum value this build does not know, from a newer hub.
    Failure::Message(format!("the hub's answer cannot be written as JSON: {e}"))
}

fn csv_failure(e: csv::Error) -> Failure {
    Failure::Message(format!("writing CSV: {e}"))
}

/// Writes to standard output; a reader that has gone (`| head`) ends the program quietly.
pub(crate) fn write_stdout(bytes: &[u8]) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(Failure::Message(format!("writing to standard output: {e}"))),
    }
}
