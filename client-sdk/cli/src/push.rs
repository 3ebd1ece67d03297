//! `households push`: streams a CSV file to the hub as one batch.
//!
//! A blocking thread reads the file household by household into a bounded channel that feeds
//! the gRPC stream, so the file is never held in memory. A format error stops the stream
//! without ending it and the call is dropped: the hub sees the stream reset, never its end,
//! and applies nothing.

use std::{
    fs::File,
    io::{IsTerminal, Read},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Args;
use telesub_client::{
    RECORDS_PER_CHUNK,
    csv::{CsvError, CsvReader},
    proto,
};
use tokio::sync::{mpsc, oneshot};

use crate::{Connection, Failure, households::Kind, show};

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

/// What the reading side has done, for the progress line.
#[derive(Default)]
struct Progress {
    bytes_read: AtomicU64,
    records_sent: AtomicU64,
    all_sent: AtomicBool,
}

pub(crate) async fn run(connection: &Connection, args: PushArgs) -> Result<(), Failure> {
    let file = File::open(&args.file).map_err(|e| cannot_read(&args.file, &e))?;
    let size = file.metadata().map_err(|e| cannot_read(&args.file, &e))?.len();
    let progress = Arc::new(Progress::default());
    // The header is checked before connecting: a wrong file fails at once.
    let reader = CsvReader::new(Counted { inner: file, progress: Arc::clone(&progress) }).map_err(|e| {
        eprintln!("{e}");
        Failure::Reported
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
    let display = tokio::spawn(show_progress(Arc::clone(&progress), size));
    let outcome = tokio::select! {
        result = client.push_batch(header, records(records_rx, error_tx, Arc::clone(&progress))) => Ok(result),
        Ok(error) = error_rx => Err(error),
    };
    display.abort();
    // Once it has stopped, so that no progress line lands after the clearing.
    let _ = display.await;
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K");
    }
    match outcome {
        Err(csv_error) => Err(csv_failure(csv_error)),
        Ok(Ok(receipt)) => {
            show::receipt(&receipt);
            Ok(())
        }
        Ok(Err(err)) => {
            let lines = lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            crate::report(&err, |index| lines.get(index).copied());
            Err(Failure::Reported)
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

/// The records from the channel, as the stream of the call. On a format error it hands the
/// error over and never ends, so that the call is dropped rather than completed.
fn records(
    rx: mpsc::Receiver<Result<proto::HouseholdRecord, CsvError>>,
    error_tx: oneshot::Sender<CsvError>,
    progress: Arc<Progress>,
) -> impl futures_util::Stream<Item = proto::HouseholdRecord> + Send + 'static {
    futures_util::stream::unfold((rx, Some(error_tx)), move |(mut rx, mut error_tx)| {
        let progress = Arc::clone(&progress);
        async move {
            match rx.recv().await {
                Some(Ok(record)) => {
                    progress.records_sent.fetch_add(1, Ordering::Relaxed);
                    Some((record, (rx, error_tx)))
                }
                Some(Err(error)) => {
                    if let Some(tx) = error_tx.take() {
                        let _ = tx.send(error);
                    }
                    std::future::pending().await
                }
                None => {
                    progress.all_sent.store(true, Ordering::Relaxed);
                    None
                }
            }
        }
    })
}

/// Shows progress on stderr until aborted: a line rewritten a few times a second on a
/// terminal, a plain line now and then otherwise.
async fn show_progress(progress: Arc<Progress>, size: u64) {
    let terminal = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut ticks = tokio::time::interval(if terminal { Duration::from_millis(250) } else { Duration::from_secs(10) });
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let line = progress_line(&progress, size, start.elapsed());
        if terminal {
            eprint!("\r\x1b[K{line}");
        } else {
            eprintln!("{line}");
        }
    }
}

fn progress_line(progress: &Progress, size: u64, elapsed: Duration) -> String {
    let records = progress.records_sent.load(Ordering::Relaxed);
    if progress.all_sent.load(Ordering::Relaxed) {
        return format!("{records} records sent; waiting for the hub to apply them…");
    }
    let seconds = elapsed.as_secs_f64().max(0.001);
    let mut line = format!("{records} records sent, {:.0} records/s", records as f64 / seconds);
    let read = progress.bytes_read.load(Ordering::Relaxed).min(size);
    if size > 0 && read > 0 {
        let done = read as f64 / size as f64;
        let left = Duration::from_secs_f64(seconds * (1.0 - done) / done);
        line.push_str(&format!(", {:.0} %, about {} left", done * 100.0, duration(left)));
    }
    line
}

fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
    }
}

fn cannot_read(path: &Path, err: &std::io::Error) -> Failure {
    Failure::Message(format!("cannot read {}: {err}", path.display()))
}

fn csv_failure(error: CsvError) -> Failure {
    eprintln!("{error}");
    eprintln!("the push was stopped there; the hub applied nothing");
    Failure::Reported
}

/// Counts the bytes read from the file, for the share done.
struct Counted<R> {
    inner: R,
    progress: Arc<Progress>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(Duration::from_secs(42)), "42 s");
        assert_eq!(duration(Duration::from_secs(65)), "1 min 05 s");
        assert_eq!(duration(Duration::from_secs(7300)), "2 h 01 min");
    }

    #[test]
    fn progress_estimates_from_bytes() {
        let progress = Progress::default();
        progress.records_sent.store(500, Ordering::Relaxed);
        progress.bytes_read.store(250, Ordering::Relaxed);
        let line = progress_line(&progress, 1000, Duration::from_secs(10));
        assert_eq!(line, "500 records sent, 50 records/s, 25 %, about 30 s left");
        progress.all_sent.store(true, Ordering::Relaxed);
        assert!(progress_line(&progress, 1000, Duration::from_secs(10)).contains("waiting for the hub"));
    }

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
        let progress = Arc::new(Progress::default());
        let mut stream = Box::pin(records(rx, error_tx, Arc::clone(&progress)));
        assert_eq!(stream.next().await.unwrap().household_code, "001");
        let next = tokio::time::timeout(Duration::from_millis(50), stream.next()).await;
        assert!(next.is_err(), "the stream must stay open");
        let error = error_rx.try_recv().unwrap();
        assert_eq!((error.line, error.column.as_deref()), (3, Some("relationship")));
        assert!(!progress.all_sent.load(Ordering::Relaxed));
    }
}
