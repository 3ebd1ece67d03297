//! `households push`: streams a CSV file to the hub as one batch.
//!
//! A blocking thread reads the file household by household into a bounded channel that feeds
//! the gRPC stream, so the file is never held in memory. A format error stops the stream
//! without ending it and the call is dropped: the hub sees the stream reset, never its end,
//! and applies nothing.

use std::{
    fs::File,
    io::Read,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use clap::Args;
use indicatif::ProgressBar;
use telesub_client::{
    RECORDS_PER_CHUNK,
    csv::{CsvError, CsvReader},
    proto,
};
use tokio::sync::{mpsc, oneshot};

use crate::{Connection, Failure, exit::Exit, households::Kind, progress, show};

#[derive(Args)]
pub(crate) struct PushArgs {
    /// The CSV file (format: docs/CSV.md).
    #[arg(long, value_name = "FILE.csv")]
    file: PathBuf,
    /// Chosen by you; pushing the same file again under the same id changes nothing.
    #[arg(long, value_name = "ID")]
    batch_id: String,
    /// What the file holds.
    #[arg(long, value_enum)]
    kind: Kind,
    /// `2024` for a yearly review, `2024-03` for a month.
    #[arg(long, value_name = "PERIOD")]
    period: String,
    /// YYYY-MM-DD: the date the batch takes effect (rows may carry their own, deltas only).
    #[arg(long, value_name = "DATE")]
    effective_date: String,
    /// Kept with the batch's receipt.
    #[arg(long, value_name = "TEXT")]
    note: Option<String>,
}

pub(crate) async fn run(connection: &Connection, args: PushArgs) -> Result<(), Failure> {
    let file = File::open(&args.file).map_err(|e| cannot_read(&args.file, &e))?;
    let size = file.metadata().map_err(|e| cannot_read(&args.file, &e))?.len();
    // The bytes read against the file's size, the records sent as its message.
    let bar = progress::file(size);
    // The header is checked before connecting: a wrong file fails at once.
    let reader = CsvReader::new(bar.wrap_read(file)).map_err(|e| {
        bar.finish_and_clear();
        eprintln!("{e}");
        Failure::Reported(Exit::Invalid)
    })?;
    let client = crate::connect(connection).await?;

    let (records_tx, records_rx) = mpsc::channel(2 * RECORDS_PER_CHUNK);
    let lines = Arc::new(Mutex::new(Vec::new()));
    // A thread of its own, not the runtime's blocking pool: should the call end while it
    // waits on a full channel, nothing waits for it.
    std::thread::spawn({
        let lines = Arc::clone(&lines);
        move || read(reader, &records_tx, &lines)
    });
    let (error_tx, error_rx) = oneshot::channel();
    let header = proto::BatchHeader {
        batch_id: args.batch_id,
        kind: proto::BatchKind::from(args.kind) as i32,
        review_period: args.period,
        effective_date: args.effective_date,
        note: args.note.unwrap_or_default(),
    };
    let outcome = tokio::select! {
        result = client.push_batch(header, records(records_rx, error_tx, bar.clone())) => Ok(result),
        Ok(error) = error_rx => Err(error),
    };
    bar.finish_and_clear();
    match outcome {
        Err(csv_error) => Err(csv_failure(csv_error)),
        Ok(Ok(receipt)) => {
            show::receipt(&receipt);
            Ok(())
        }
        Ok(Err(err)) => {
            let lines = lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            crate::report(&err, |index| lines.get(index).copied());
            Err(Failure::Reported(Exit::of(&err)))
        }
    }
}

/// Reads households into the channel until the file ends, a format error (sent too), or the
/// stream is dropped, noting in `lines` the line each record starts on (for the hub's
/// `records[INDEX]`).
fn read<R: Read>(
    mut reader: CsvReader<R>,
    records: &mpsc::Sender<Result<proto::HouseholdRecord, CsvError>>,
    lines: &Mutex<Vec<u64>>,
) {
    while let Some(item) = reader.next() {
        let failed = item.is_err();
        if item.is_ok() {
            lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(reader.line());
        }
        if records.blocking_send(item).is_err() || failed {
            break;
        }
    }
}

/// The records from the channel, as the stream of the call, counted on `bar`. On a format
/// error it hands the error over and never ends, so that the call is dropped rather than
/// completed.
fn records(
    rx: mpsc::Receiver<Result<proto::HouseholdRecord, CsvError>>,
    error_tx: oneshot::Sender<CsvError>,
    bar: ProgressBar,
) -> impl futures_util::Stream<Item = proto::HouseholdRecord> + Send + 'static {
    futures_util::stream::unfold((rx, Some(error_tx), 0_u64), move |(mut rx, mut error_tx, sent)| {
        let bar = bar.clone();
        async move {
            match rx.recv().await {
                Some(Ok(record)) => {
                    if sent % 500 == 0 {
                        bar.set_message(format!("{sent} records sent"));
                    }
                    Some((record, (rx, error_tx, sent + 1)))
                }
                Some(Err(error)) => {
                    if let Some(tx) = error_tx.take() {
                        let _ = tx.send(error);
                    }
                    std::future::pending().await
                }
                None => {
                    progress::waiting(&bar, format!("{sent} records sent; waiting for the hub to apply them…"));
                    None
                }
            }
        }
    })
}

fn cannot_read(path: &Path, err: &std::io::Error) -> Failure {
    Failure::Message(format!("cannot read {}: {err}", path.display()))
}

fn csv_failure(error: CsvError) -> Failure {
    eprintln!("{error}");
    eprintln!("the push was stopped there; the hub applied nothing");
    Failure::Reported(Exit::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A format error ends reading and hands the error over; the record stream never ends.
    #[tokio::test]
    async fn format_error_holds_the_stream_open() {
        use futures_util::StreamExt;

        let text = format!(
            "{}\n001,UPSERT,,POOR,A,24611,,,,,0,0,0,0,,,067080000001,A,HEAD,1980\n\
             002,UPSERT,,POOR,B,24611,,,,,0,0,0,0,,,067080000002,B,NIECE,1980\n\
             003,UPSERT,,POOR,C,24611,,,,,0,0,0,0,,,067080000003,C,HEAD,1980\n",
            telesub_client::csv::COLUMNS.join(",")
        );
        let reader = CsvReader::new(std::io::Cursor::new(text.into_bytes())).unwrap();
        let (tx, rx) = mpsc::channel(4);
        let lines = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            s.spawn(|| read(reader, &tx, &lines));
        });
        assert_eq!(*lines.lock().unwrap(), vec![2]);
        let (error_tx, mut error_rx) = oneshot::channel();
        let mut stream = Box::pin(records(rx, error_tx, ProgressBar::hidden()));
        assert_eq!(stream.next().await.unwrap().household_code, "001");
        let next = tokio::time::timeout(std::time::Duration::from_millis(50), stream.next()).await;
        assert!(next.is_err(), "the stream must stay open");
        let error = error_rx.try_recv().unwrap();
        assert_eq!((error.line, error.column.as_deref()), (3, Some("relationship")));
    }
}
