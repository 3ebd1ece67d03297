//! `reports submit` and `reconciliation …`: operators' monthly lists, from the CSV file to
//! ICT's confirmation and the exported file.
//!
//! A list is submitted in two passes over the file. The first checks the whole file's format
//! and takes its SHA-256, before anything is sent: every format error is listed at once, and
//! the digest names the list when no update id is given, so that running the same command
//! again is a harmless replay. The second streams the lines to the hub through a bounded
//! channel, never holding the file; should the file no longer be what the first pass read,
//! the stream is dropped without its end and the hub stores nothing.

use std::{
    fs::File,
    io::Read,
    path::{Path, PathBuf},
};

use clap::{Args, Subcommand, ValueEnum};
use futures_util::StreamExt;
use telesub_client::{
    Client, Error, LINES_PER_CHUNK, files,
    monthly_csv::MonthlyLineReader,
    proto::{self, ReconciliationStatus},
};
use tokio::sync::{mpsc, oneshot};

use crate::{
    Connection, Failure,
    exit::Exit,
    output::OutputArgs,
    progress,
    show::{grouped, short, table, timestamp, vnd},
};

#[derive(Subcommand)]
pub(crate) enum ReportsCommand {
    /// Submits a month's list of supported lines from a CSV file (operators).
    Submit(SubmitArgs),
}

#[derive(Args)]
pub(crate) struct SubmitArgs {
    /// The month the list is for.
    #[arg(long, value_name = "YYYY-MM")]
    period: String,
    /// The CSV file, one row per line (format: docs/CSV.md).
    #[arg(long, value_name = "FILE.csv")]
    file: PathBuf,
    /// The list's id; by default PERIOD-HASH, HASH the first 12 hex digits of the file's
    /// SHA-256, so that submitting the same file again changes nothing.
    #[arg(long, value_name = "ID")]
    update_id: Option<String>,
    /// Replaces the period's earlier list, which ICT has not confirmed.
    #[arg(long)]
    replaces: bool,
    /// Kept with the list.
    #[arg(long, value_name = "TEXT")]
    note: Option<String>,
}

#[derive(Subcommand)]
pub(crate) enum ReconciliationCommand {
    /// Monthly lists, newest first, one row each: an operator's own, or (ICT) everyone's.
    Status {
        #[arg(long, value_name = "YYYY-MM")]
        period: Option<String>,
        /// ICT: one operator's lists.
        #[arg(long, value_name = "CODE")]
        operator: Option<String>,
        /// received, reconciled, confirmed, rejected or superseded.
        #[arg(long, value_name = "STATUS", value_parser = status)]
        status: Option<ReconciliationStatus>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// One list: its figures, and its confirmation or rejection.
    Show {
        #[command(flatten)]
        list: ListId,
        /// While the list is being reconciled again (stale, after a change to the register or
        /// another operator's list), wait until it is done, up to two minutes.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// A list's lines with their outcome, in line order; by default those with a discrepancy.
    Discrepancies {
        #[command(flatten)]
        list: ListId,
        /// Only lines with this code, as printed (OVER_CAP, NOT_ENROLLED, …).
        #[arg(long, value_name = "CODE", value_parser = discrepancy_code)]
        code: Option<proto::DiscrepancyCode>,
        /// Only lines of households in this commune (its code).
        #[arg(long, value_name = "COMMUNE")]
        unit: Option<String>,
        /// Only the lines of this household.
        #[arg(long, value_name = "CODE")]
        household: Option<String>,
        /// Every line, OK ones included.
        #[arg(long)]
        all: bool,
        /// Only the lines of a confirmed list that a later change decides otherwise.
        #[arg(long)]
        exceptions: bool,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Confirms a reconciled list, whole or only its OK lines, and freezes it (ICT).
    Confirm {
        #[arg(long, value_name = "CODE")]
        operator: String,
        #[arg(long, value_name = "ID")]
        update_id: String,
        #[arg(long, value_enum)]
        scope: ScopeArg,
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
    },
    /// Rejects a reconciled list; the operator submits a new one (ICT).
    Reject {
        #[arg(long, value_name = "CODE")]
        operator: String,
        #[arg(long, value_name = "ID")]
        update_id: String,
        /// Why; required.
        #[arg(long, value_name = "TEXT")]
        note: String,
    },
    /// Saves a list with its lines and their outcome as a CSV file or an Excel workbook.
    Export {
        #[command(flatten)]
        list: ListId,
        #[arg(long, value_enum)]
        format: FormatArg,
        /// A confirmed list: only the lines its confirmation covers.
        #[arg(long)]
        confirmed_lines_only: bool,
        /// A CSV file without the UTF-8 byte-order mark (which spreadsheet programs need to
        /// show Vietnamese; scripts may not want it).
        #[arg(long)]
        no_bom: bool,
        /// Where to save it; by default the name the hub suggests, in the current folder.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Args)]
pub(crate) struct ListId {
    /// The id the list was submitted under.
    #[arg(long, value_name = "ID")]
    update_id: String,
    /// The list's operator (ICT); an operator may leave it out.
    #[arg(long, value_name = "CODE")]
    operator: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum ScopeArg {
    /// Every line, as claimed.
    WholeList,
    /// Only the lines without a discrepancy.
    OkLines,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum FormatArg {
    Csv,
    Xlsx,
}

/// `--status`: a status by its short name, in any case.
fn status(text: &str) -> Result<ReconciliationStatus, String> {
    let name = format!("RECONCILIATION_STATUS_{}", text.trim().to_ascii_uppercase().replace('-', "_"));
    ReconciliationStatus::from_str_name(&name).filter(|s| *s != ReconciliationStatus::Unspecified).ok_or_else(|| {
        format!("{text:?} is not a status; expected one of received, reconciled, confirmed, rejected, superseded")
    })
}

/// `--code`: a discrepancy code as printed (`OVER_CAP`), in any case, `-` for `_` allowed.
fn discrepancy_code(text: &str) -> Result<proto::DiscrepancyCode, String> {
    let name = format!("DISCREPANCY_CODE_{}", text.trim().to_ascii_uppercase().replace('-', "_"));
    proto::DiscrepancyCode::from_str_name(&name).filter(|c| *c != proto::DiscrepancyCode::Unspecified).ok_or_else(
        || {
            let codes: Vec<&str> = (1..=10)
                .filter_map(|n| proto::DiscrepancyCode::try_from(n).ok())
                .map(|c| short(c.as_str_name(), "DISCREPANCY_CODE_"))
                .collect();
            format!("{text:?} is not a discrepancy code; expected one of {}", codes.join(", "))
        },
    )
}

pub(crate) async fn reports(connection: &Connection, command: ReportsCommand) -> Result<(), Failure> {
    match command {
        ReportsCommand::Submit(args) => submit(connection, args).await,
    }
}

pub(crate) async fn reconciliation(client: &Client, command: ReconciliationCommand) -> Result<(), Failure> {
    match command {
        ReconciliationCommand::Status { period, operator, status, output } => {
            let mut lists = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = client
                    .list_reconciliations(proto::ListReconciliationsRequest {
                        period: period.clone().unwrap_or_default(),
                        operator: operator.clone().unwrap_or_default(),
                        status: status.map_or(0, |s| s as i32),
                        page_size: 100,
                        page_token,
                    })
                    .await?;
                lists.extend(page.reconciliations);
                page_token = page.next_page_token;
                if page_token.is_empty() {
                    break;
                }
            }
            let response =
                proto::ListReconciliationsResponse { reconciliations: lists, next_page_token: String::new() };
            output.list(&response, &response.reconciliations, || show_lists(&response.reconciliations))?;
        }
        ReconciliationCommand::Show { list, wait, output } => {
            let operator = list.operator.as_deref().unwrap_or("");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            let mut shown = client.get_reconciliation(operator, &list.update_id).await?;
            while wait && shown.stale && std::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                shown = client.get_reconciliation(operator, &list.update_id).await?;
            }
            output.one(&shown, show_list)?;
        }
        ReconciliationCommand::Discrepancies { list, code, unit, household, all, exceptions, output } => {
            let mut lines = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = client
                    .list_discrepancies(proto::ListDiscrepanciesRequest {
                        operator: list.operator.clone().unwrap_or_default(),
                        update_id: list.update_id.clone(),
                        code: code.map_or(0, |c| c as i32),
                        unit: unit.clone().unwrap_or_default(),
                        household_code: household.clone().unwrap_or_default(),
                        include_ok: all,
                        page_size: 500,
                        page_token,
                        exceptions_only: exceptions,
                    })
                    .await?;
                lines.extend(page.lines);
                page_token = page.next_page_token;
                if page_token.is_empty() {
                    break;
                }
            }
            let response = proto::ListDiscrepanciesResponse { lines, next_page_token: String::new() };
            output.list(&response, &response.lines, || show_lines(&response.lines, all))?;
        }
        ReconciliationCommand::Confirm { operator, update_id, scope, note } => {
            let scope = match scope {
                ScopeArg::WholeList => proto::ConfirmationScope::WholeList,
                ScopeArg::OkLines => proto::ConfirmationScope::OkLines,
            };
            let confirmed = client
                .confirm_reconciliation(proto::ConfirmRequest {
                    operator,
                    update_id,
                    scope: scope.into(),
                    note: note.unwrap_or_default(),
                })
                .await?;
            show_list(&confirmed);
        }
        ReconciliationCommand::Reject { operator, update_id, note } => {
            show_list(&client.reject_reconciliation(&operator, &update_id, &note).await?);
        }
        ReconciliationCommand::Export { list, format, confirmed_lines_only, no_bom, out } => {
            let format = match format {
                FormatArg::Csv => proto::ExportFormat::Csv,
                FormatArg::Xlsx => proto::ExportFormat::Xlsx,
            };
            let request = proto::ExportReconciliationRequest {
                operator: list.operator.unwrap_or_default(),
                update_id: list.update_id,
                format: format.into(),
                confirmed_lines_only,
                without_byte_order_mark: no_bom,
            };
            export(client, request, out).await?;
        }
    }
    Ok(())
}

/// What the first pass over a file found.
struct Checked {
    /// The file line each line of the list starts on: the hub names `lines[N]`, 1-based.
    lines: Vec<u64>,
    digest: [u8; 32],
}

/// Format errors listed before the rest are only counted.
const ERRORS_SHOWN: usize = 50;

async fn submit(connection: &Connection, args: SubmitArgs) -> Result<(), Failure> {
    let path = args.file.clone();
    let checked = tokio::task::spawn_blocking(move || check(&path))
        .await
        .map_err(|e| Failure::Message(format!("reading {}: {e}", args.file.display())))??;
    let update_id = args.update_id.unwrap_or_else(|| default_update_id(&args.period, &checked.digest));
    let client = crate::connect(connection).await?;
    let bar = progress::count(checked.lines.len() as u64, "lines sent");
    bar.set_message(format!("as list {update_id}"));

    let (lines_tx, lines_rx) = mpsc::channel(2 * LINES_PER_CHUNK);
    // A thread of its own, not the runtime's blocking pool: should the call end while it
    // waits on a full channel, nothing waits for it.
    std::thread::spawn({
        let (path, digest) = (args.file.clone(), checked.digest);
        move || send(&path, digest, &lines_tx)
    });
    let (error_tx, error_rx) = oneshot::channel();
    let header = proto::MonthlyUpdateHeader {
        period: args.period,
        update_id,
        replaces_earlier: args.replaces,
        note: args.note.unwrap_or_default(),
    };
    let outcome = tokio::select! {
        result = client.submit_monthly_update(header, lines(lines_rx, error_tx, bar.clone())) => result,
        Ok(message) = error_rx => {
            bar.finish_and_clear();
            eprintln!("{message}");
            eprintln!("the submission was stopped there; the hub stored nothing");
            return Err(Failure::Reported(Exit::Failed));
        }
    };
    bar.finish_and_clear();
    match outcome {
        Ok(list) => {
            show_list(&list);
            Ok(())
        }
        Err(err) => {
            report(&err, &checked.lines);
            Err(Failure::Reported(Exit::of(&err)))
        }
    }
}

/// The first pass: every format error printed, or what the second pass needs.
fn check(path: &Path) -> Result<Checked, Failure> {
    let file = File::open(path).map_err(|e| cannot_read(path, &e))?;
    let mut hash = sha256::Sha256::new();
    let mut lines = Vec::new();
    let mut errors = 0;
    {
        let mut reader = MonthlyLineReader::new(Hashing { inner: file, hash: &mut hash })
            .map_err(|e| format_errors(path, &[e.to_string()], 1))?;
        let mut shown = Vec::new();
        while let Some(item) = reader.next() {
            match item {
                Ok(_) => lines.push(reader.line()),
                Err(e) => {
                    errors += 1;
                    if shown.len() < ERRORS_SHOWN {
                        shown.push(e.to_string());
                    }
                }
            }
        }
        if errors > 0 {
            return Err(format_errors(path, &shown, errors));
        }
    }
    if lines.is_empty() {
        return Err(Failure::Exit(Exit::Invalid, format!("{} has no lines; a list has at least one", path.display())));
    }
    Ok(Checked { lines, digest: hash.finish() })
}

fn format_errors(path: &Path, shown: &[String], total: usize) -> Failure {
    for error in shown {
        eprintln!("{error}");
    }
    if total > shown.len() {
        eprintln!("… and {} more", total - shown.len());
    }
    let s = if total == 1 { "" } else { "s" };
    eprintln!("{total} format error{s} in {}; nothing was sent", path.display());
    Failure::Reported(Exit::Invalid)
}

/// The second pass: the lines into the channel, then, should the file have changed since
/// the first pass, an error in place of the end.
fn send(path: &Path, digest: [u8; 32], lines: &mpsc::Sender<Result<proto::MonthlyLine, String>>) {
    let changed = format!("{} changed while it was being sent", path.display());
    let mut hash = sha256::Sha256::new();
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) => {
            let _ = lines.blocking_send(Err(format!("cannot read {}: {e}", path.display())));
            return;
        }
    };
    let failure = match MonthlyLineReader::new(Hashing { inner: file, hash: &mut hash }) {
        Err(_) => Some(changed.clone()),
        Ok(reader) => {
            for item in reader {
                let failed = item.is_err();
                if lines.blocking_send(item.map_err(|_| changed.clone())).is_err() || failed {
                    return;
                }
            }
            None
        }
    };
    let failure = failure.or_else(|| (hash.finish() != digest).then_some(changed));
    if let Some(message) = failure {
        let _ = lines.blocking_send(Err(message));
    }
}

/// The lines from the channel, as the stream of the call, counted on `bar`. On an error it
/// hands the error over and never ends, so that the call is dropped rather than completed.
fn lines(
    rx: mpsc::Receiver<Result<proto::MonthlyLine, String>>,
    error_tx: oneshot::Sender<String>,
    bar: indicatif::ProgressBar,
) -> impl futures_util::Stream<Item = proto::MonthlyLine> + Send + 'static {
    futures_util::stream::unfold((rx, Some(error_tx)), move |(mut rx, mut error_tx)| {
        let bar = bar.clone();
        async move {
            match rx.recv().await {
                Some(Ok(line)) => {
                    bar.inc(1);
                    Some((line, (rx, error_tx)))
                }
                Some(Err(message)) => {
                    if let Some(tx) = error_tx.take() {
                        let _ = tx.send(message);
                    }
                    std::future::pending().await
                }
                None => {
                    progress::waiting(&bar, "lines sent; the hub answers once it has reconciled them…");
                    None
                }
            }
        }
    })
}

/// `PERIOD-HASH`: the same file gives the same id.
fn default_update_id(period: &str, digest: &[u8; 32]) -> String {
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{hex}", period.trim())
}

/// Prints what the hub said: for a refused list every problem on a line of its own, with the
/// file line of `lines[N]`, then the total.
fn report(err: &Error, file_lines: &[u64]) {
    let violations = err.violations();
    if !matches!(err, Error::InvalidArgument(_)) || violations.is_empty() {
        eprintln!("error: {err}");
        return;
    }
    for violation in violations {
        match list_line(&violation.field).and_then(|n| file_lines.get(n.checked_sub(1)?)) {
            Some(line) => eprintln!("line {line}: {}: {}", violation.field, violation.description),
            None => eprintln!("{}: {}", violation.field, violation.description),
        }
    }
    let total = violations
        .iter()
        .find_map(|v| crate::total_problems(&v.description))
        .unwrap_or(violations.len())
        .max(violations.len());
    let s = if total == 1 { "" } else { "s" };
    eprintln!("invalid request: {total} problem{s}; the list was refused and nothing was stored");
    if let Some(id) = err.request_id() {
        eprintln!("request id: {id}");
    }
}

/// `N` of a field path `lines[N].field`.
fn list_line(field: &str) -> Option<usize> {
    let rest = field.strip_prefix("lines[")?;
    rest[..rest.find(']')?].parse().ok()
}

fn cannot_read(path: &Path, err: &std::io::Error) -> Failure {
    Failure::Message(format!("cannot read {}: {err}", path.display()))
}

/// Hashes the bytes read through it.
struct Hashing<'a, R> {
    inner: R,
    hash: &'a mut sha256::Sha256,
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

async fn export(
    client: &Client,
    request: proto::ExportReconciliationRequest,
    out: Option<PathBuf>,
) -> Result<(), Failure> {
    let extension = if request.format == proto::ExportFormat::Xlsx as i32 { "xlsx" } else { "csv" };
    let fallback = format!("{}.{extension}", request.update_id);
    let chunks = client.export_reconciliation(request).await?;
    save_file(chunks, out, &fallback).await
}

/// Saves the files the hub sends in chunks (the SDK's [`files::save`]: written aside and
/// renamed when whole) under `out`, or by default under the name the first chunk suggests
/// (`fallback` when it suggests none) in the current folder; prints where.
pub(crate) async fn save_file(
    chunks: impl futures_util::Stream<Item = Result<proto::FileChunk, Error>>,
    out: Option<PathBuf>,
    fallback: &str,
) -> Result<(), Failure> {
    let bar = progress::download();
    let chunks = chunks.map(|chunk| {
        if let Ok(c) = &chunk {
            bar.inc(c.data.len() as u64);
        }
        chunk
    });
    let to = match &out {
        Some(path) => files::Destination::File(path),
        None => files::Destination::Folder(Path::new("")),
    };
    let saved = files::save(chunks, to, fallback).await;
    bar.finish_and_clear();
    for file in saved.map_err(|e| match e {
        files::SaveError::Hub(e) => Failure::Hub(e),
        other => Failure::Message(other.to_string()),
    })? {
        let kind = if file.content_type.is_empty() { String::new() } else { format!(", {}", file.content_type) };
        outln!("saved {}: {} bytes{kind}", file.path.display(), grouped(file.bytes as i64));
    }
    Ok(())
}

// How lists are printed: a label column, then the value; tables for lists of them.

const LABEL: usize = 14;

fn field(label: &str, value: impl std::fmt::Display) {
    outln!("{label:<LABEL$} {value}");
}

fn list_status(r: &proto::MonthlyReconciliation) -> String {
    let status = short(r.status().as_str_name(), "RECONCILIATION_STATUS_");
    if r.stale { format!("{status} (stale)") } else { status.to_owned() }
}

/// One list: header, figures, then what became of it.
fn show_list(r: &proto::MonthlyReconciliation) {
    field("update id", &r.update_id);
    field("operator", &r.operator);
    field("period", &r.period);
    field("status", list_status(r));
    if r.stale {
        field("stale", "being reconciled again after a change; it cannot be confirmed or rejected until that is done");
    }
    if !r.note.is_empty() {
        field("note", &r.note);
    }
    let f = r.figures.clone().unwrap_or_default();
    field("lines", f.lines);
    field("claims", f.claims);
    field("unclaimed", f.unclaimed);
    field("OK lines", f.lines_ok);
    field("claimed", vnd(f.amount_claimed));
    field("confirmable", vnd(f.amount_confirmable));
    let by_code: Vec<String> = f
        .by_code
        .iter()
        .map(|c| format!("{} {}", short(c.code().as_str_name(), "DISCREPANCY_CODE_"), c.lines))
        .collect();
    field("by code", if by_code.is_empty() { "none".to_owned() } else { by_code.join(", ") });
    let by_reason: Vec<String> = f
        .by_unclaimed_reason
        .iter()
        .map(|c| format!("{} {}", short(c.reason().as_str_name(), "UNCLAIMED_REASON_"), c.lines))
        .collect();
    field("by reason", if by_reason.is_empty() { "none".to_owned() } else { by_reason.join(", ") });
    field("missing stops", f.missing_stops);
    field("not reported", f.enrollments_not_reported);
    field("received", timestamp(r.received_at.as_ref()));
    if r.reconciled_at.is_some() {
        field("reconciled", timestamp(r.reconciled_at.as_ref()));
    }
    field("digest", &r.content_digest);
    if !r.superseded_by.is_empty() {
        field("superseded by", &r.superseded_by);
    }
    if let Some(c) = &r.confirmation {
        field(
            "confirmed",
            format!(
                "{} by {} at {}: {} lines, {} VND",
                c.scope,
                c.confirmed_by,
                timestamp(c.confirmed_at.as_ref()),
                c.lines,
                grouped(c.amount)
            ),
        );
        field("lines digest", &c.lines_digest);
        if !c.note.is_empty() {
            field("confirm note", &c.note);
        }
        let checked = timestamp(r.exceptions_checked_at.as_ref());
        let checked = if checked.is_empty() { String::new() } else { format!(" (checked at {checked})") };
        field("exceptions", format!("{}{checked}", r.exceptions));
    }
    if !r.rejected_by.is_empty() {
        field(
            "rejected",
            format!("by {} at {}: {}", r.rejected_by, timestamp(r.rejected_at.as_ref()), r.rejection_note),
        );
    }
    if r.replayed {
        field("replayed", "yes: this list had been submitted before with the same content; nothing changed");
    }
}

fn show_lists(lists: &[proto::MonthlyReconciliation]) {
    if lists.is_empty() {
        outln!("no lists");
        return;
    }
    let rows = lists
        .iter()
        .map(|r| {
            let f = r.figures.clone().unwrap_or_default();
            vec![
                r.period.clone(),
                r.operator.clone(),
                r.update_id.clone(),
                list_status(r),
                f.lines.to_string(),
                f.lines_ok.to_string(),
                grouped(f.amount_claimed),
                grouped(f.amount_confirmable),
                r.exceptions.to_string(),
            ]
        })
        .collect();
    let header = ["PERIOD", "OPERATOR", "UPDATE ID", "STATUS", "LINES", "OK", "CLAIMED", "CONFIRMABLE", "EXCEPTIONS"];
    table(&header, rows, "");
}

fn show_lines(lines: &[proto::ReconciledLine], all: bool) {
    if lines.is_empty() {
        outln!("{}", if all { "no lines" } else { "no lines with a discrepancy" });
        return;
    }
    let outcome = |discrepancies: &[proto::Discrepancy]| -> String {
        if discrepancies.is_empty() {
            return "OK".to_owned();
        }
        let each: Vec<String> = discrepancies
            .iter()
            .map(|d| format!("{}: {}", short(d.code().as_str_name(), "DISCREPANCY_CODE_"), d.message))
            .collect();
        each.join("; ")
    };
    let rows = lines
        .iter()
        .map(|l| {
            let line = l.line.clone().unwrap_or_default();
            let mut result = outcome(&l.discrepancies);
            if l.exception {
                result.push_str(&format!(" | EXCEPTION, now {}", outcome(&l.later_discrepancies)));
            }
            vec![
                l.line_number.to_string(),
                line.phone_number,
                line.household_code,
                l.commune_code.clone(),
                grouped(line.amount_claimed),
                result,
            ]
        })
        .collect();
    table(&["LINE", "NUMBER", "HOUSEHOLD", "COMMUNE", "CLAIMED", "OUTCOME"], rows, "");
}

/// SHA-256 of the file, for the default update id and to notice a file that changed between
/// the two passes.
mod sha256 {
    pub(super) struct Sha256(ring::digest::Context);

    impl Sha256 {
        pub(super) fn new() -> Self {
            Self(ring::digest::Context::new(&ring::digest::SHA256))
        }

        pub(super) fn update(&mut self, data: &[u8]) {
            self.0.update(data);
        }

        pub(super) fn finish(self) -> [u8; 32] {
            let mut out = [0; 32];
            out.copy_from_slice(self.0.finish().as_ref());
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn sha256(data: &[u8]) -> String {
        hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
    }

    #[test]
    fn the_default_id_is_the_period_and_the_start_of_the_digest() {
        let mut hash = sha256::Sha256::new();
        hash.update(b"abc");
        assert_eq!(default_update_id(" 2025-03 ", &hash.finish()), "2025-03-ba7816bf8f01");
    }

    #[test]
    fn violations_name_their_line() {
        assert_eq!(list_line("lines[12].amount_claimed"), Some(12));
        assert_eq!(list_line("header.period"), None);
        assert_eq!(list_line("lines"), None);
        assert_eq!(list_line("lines[x].tariff"), None);
    }

    #[test]
    fn statuses_and_codes_are_read_as_printed() {
        assert_eq!(status("reconciled"), Ok(ReconciliationStatus::Reconciled));
        assert_eq!(status("CONFIRMED"), Ok(ReconciliationStatus::Confirmed));
        assert!(status("unspecified").is_err());
        assert!(status("done").unwrap_err().contains("superseded"));
        assert_eq!(discrepancy_code("OVER_CAP"), Ok(proto::DiscrepancyCode::OverCap));
        assert_eq!(discrepancy_code("not-enrolled"), Ok(proto::DiscrepancyCode::NotEnrolled));
        let e = discrepancy_code("LATE").unwrap_err();
        assert!(e.contains("NOT_ELIGIBLE, ") && e.ends_with("UNKNOWN_SUBSCRIBER"), "{e}");
    }

    #[test]
    fn amounts_are_grouped() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(60_000), "60,000");
        assert_eq!(grouped(-1_234_567), "-1,234,567");
    }

    /// A file that fails the first pass is reported whole; one that passes is ready to send.
    #[test]
    fn the_first_pass_reads_the_whole_file() {
        let dir = std::env::temp_dir().join(format!("telesub-cli-reports-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let header = telesub_client::monthly_csv::COLUMNS.join(",");
        let good = format!(
            "{header}\n0912000001,067080000001,HN-1,,CONTINUING,MOBILE,ASXH60,70000,60000,31,true,\n\n\
             0912000002,067080000002,HN-2,,CONTINUING,MOBILE,ASXH60,70000,60000,31,true,\n"
        );
        let path = dir.join("good.csv");
        std::fs::write(&path, &good).unwrap();
        let checked = check(&path).ok().unwrap();
        assert_eq!(checked.lines, [2, 4]);
        assert_eq!(hex(&checked.digest), sha256(good.as_bytes()));

        let bad = good.replace("MOBILE", "ADSL");
        std::fs::write(&path, bad).unwrap();
        assert!(matches!(check(&path), Err(Failure::Reported(Exit::Invalid))));
        std::fs::write(&path, format!("{header}\n")).unwrap();
        assert!(matches!(check(&path), Err(Failure::Exit(Exit::Invalid, m)) if m.contains("no lines")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The second pass sends the lines, then ends the stream only if the file is unchanged.
    #[test]
    fn the_second_pass_ends_only_on_the_same_file() {
        let dir = std::env::temp_dir().join(format!("telesub-cli-send-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let header = telesub_client::monthly_csv::COLUMNS.join(",");
        let text = format!("{header}\n0912000001,067080000001,HN-1,,CONTINUING,MOBILE,ASXH60,70000,60000,31,true,\n");
        let path = dir.join("list.csv");
        std::fs::write(&path, &text).unwrap();
        let digest = check(&path).ok().unwrap().digest;

        let (tx, mut rx) = mpsc::channel(8);
        send(&path, digest, &tx);
        drop(tx);
        assert_eq!(rx.blocking_recv().unwrap().unwrap().phone_number, "0912000001");
        assert!(rx.blocking_recv().is_none(), "the end, and nothing else");

        std::fs::write(&path, text.replace("60000,31", "50000,31")).unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        send(&path, digest, &tx);
        drop(tx);
        assert!(rx.blocking_recv().unwrap().is_ok());
        assert!(rx.blocking_recv().unwrap().unwrap_err().contains("changed while it was being sent"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
