//! An operator's billing system at month end: it sends the month's list of supported
//! subscribers to the hub, prints what the hub found, and keeps the hub's report of the list.
//!
//! ```text
//! operator_monthly ENDPOINT TLS_DIR ORG PERIOD LINES.csv [--replace] [--out DIR]
//! operator_monthly https://localhost:50051 ./dev-tls VNPT 2025-03 vnpt-2025-03.csv
//! ```
//! `TLS_DIR` is a certificate folder written by `telesub pki init` with an OPERATOR
//! organisation (see the README: `telesub pki init --dir ./dev-tls … --org VNPT:OPERATOR`,
//! then `telesub serve --tls-dir ./dev-tls`). `LINES.csv` is a monthly list in the format of
//! `docs/CSV.md` (`telesub gen month` writes one).
//!
//! What it does, in order:
//! 1. Reads the whole file with `MonthlyLineReader` before sending anything, and stops on the
//!    first problem of format, listing every bad row with its line and column: half a list
//!    sent would be reconciled as if it were the whole month.
//! 2. Submits it for `PERIOD` under an update id made from the period and the SHA-256 of the
//!    lines (`billing-2025-03-1a2b3c4d5e6f`). Running it again with the same file is
//!    harmless: the hub recognises the list and answers as the first time (`replayed`). A
//!    corrected file has another id; the hub refuses it while the period's earlier list is
//!    open, unless `--replace` is given, which replaces that list (a confirmed list cannot be
//!    replaced).
//! 3. Prints the list's figures; when another operator's list for the month changes the
//!    outcome, the list is reconciled again (`stale`), and the figures printed are those
//!    after that.
//! 4. Prints every line with a discrepancy, a page at a time.
//! 5. Saves the hub's CSV export of the list (every line with its outcome) in `DIR` (the
//!    current folder unless `--out` is given) under the name the hub gives it.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use futures_util::stream;
use telesub_client::{Client, Error, MonthlyLineReader, MonthlyLineWriter, display::vnd, files, proto};

struct Args {
    endpoint: String,
    tls_dir: PathBuf,
    org: String,
    period: String,
    file: PathBuf,
    replace: bool,
    out: PathBuf,
}

const USAGE: &str = "usage: operator_monthly ENDPOINT TLS_DIR ORG PERIOD LINES.csv [--replace] [--out DIR]\n\
                     e.g.   operator_monthly https://localhost:50051 ./dev-tls VNPT 2025-03 vnpt-2025-03.csv";

fn args() -> Option<Args> {
    let mut positional = Vec::new();
    let (mut replace, mut out) = (false, PathBuf::from("."));
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--replace" => replace = true,
            "--out" => out = PathBuf::from(args.next()?),
            flag if flag.starts_with("--") => return None,
            _ => positional.push(arg),
        }
    }
    let [endpoint, tls_dir, org, period, file]: [String; 5] = positional.try_into().ok()?;
    Some(Args { endpoint, tls_dir: tls_dir.into(), org, period, file: file.into(), replace, out })
}

/// Every line of the file, or every problem of format it has.
fn read_lines(file: &Path) -> Result<Vec<proto::MonthlyLine>, Vec<String>> {
    let opened = std::fs::File::open(file).map_err(|e| vec![format!("cannot open {}: {e}", file.display())])?;
    let reader = MonthlyLineReader::new(std::io::BufReader::new(opened)).map_err(|e| vec![e.to_string()])?;
    let (mut lines, mut problems) = (Vec::new(), Vec::new());
    for row in reader {
        match row {
            Ok(line) => lines.push(line),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if problems.is_empty() { Ok(lines) } else { Err(problems) }
}

/// `billing-PERIOD-` and the first 12 hex digits of the SHA-256 of the lines written back in
/// the documented CSV form: the same lines give the same id however the file was saved.
fn update_id(period: &str, lines: &[proto::MonthlyLine]) -> Result<String, Box<dyn std::error::Error>> {
    let mut writer = MonthlyLineWriter::new(Vec::new())?;
    for line in lines {
        writer.write(line)?;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &writer.finish()?);
    let hex: String = digest.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("billing-{period}-{hex}"))
}

fn short(name: &str, prefix: &str) -> String {
    name.trim_start_matches(prefix).to_owned()
}

fn print_figures(r: &proto::MonthlyReconciliation) {
    let f = r.figures.clone().unwrap_or_default();
    println!(
        "{} {}: {}; lines: {}, of which {} claims, {} not claimed, {} OK",
        r.update_id,
        r.period,
        short(r.status().as_str_name(), "RECONCILIATION_STATUS_"),
        f.lines,
        f.claims,
        f.unclaimed,
        f.lines_ok
    );
    println!("  claimed {}, confirmable {}", vnd(f.amount_claimed), vnd(f.amount_confirmable));
    // A replayed answer shows the list as it stands now, decided or replaced perhaps.
    if let Some(c) = &r.confirmation {
        println!("  confirmed by {} ({}): {} line(s), {}", c.confirmed_by, c.scope, c.lines, vnd(c.amount));
    }
    if !r.rejected_by.is_empty() {
        println!("  rejected by {}: {}", r.rejected_by, r.rejection_note);
    }
    if !r.superseded_by.is_empty() {
        println!("  replaced by list {}", r.superseded_by);
    }
    for c in &f.by_code {
        println!("  {:<28} {} line(s)", short(c.code().as_str_name(), "DISCREPANCY_CODE_"), c.lines);
    }
    for u in &f.by_unclaimed_reason {
        println!("  not claimed, {:<16} {} line(s)", short(u.reason().as_str_name(), "UNCLAIMED_REASON_"), u.lines);
    }
    if f.missing_stops > 0 {
        println!("  {} claim(s) for households whose support ended, without a STOPPED change", f.missing_stops);
    }
    if f.enrollments_not_reported > 0 {
        println!("  {} of your enrolments running in {} are on no line", f.enrollments_not_reported, r.period);
    }
}

/// The list once it is no longer being reconciled again (after another operator's list or the
/// register changed).
async fn settled(client: &Client, mut r: proto::MonthlyReconciliation) -> Result<proto::MonthlyReconciliation, Error> {
    let started = Instant::now();
    while r.stale && started.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        r = client.get_reconciliation("", &r.update_id).await?;
    }
    Ok(r)
}

/// Prints every line with a discrepancy, in line order.
async fn print_discrepancies(client: &Client, update_id: &str) -> Result<(), Error> {
    let mut query =
        proto::ListDiscrepanciesRequest { update_id: update_id.to_owned(), page_size: 500, ..Default::default() };
    loop {
        let page = client.list_discrepancies(query.clone()).await?;
        for l in &page.lines {
            let line = l.line.clone().unwrap_or_default();
            println!("  line {} {} {}:", l.line_number, line.phone_number, line.household_code);
            for d in &l.discrepancies {
                println!("    {}: {}", short(d.code().as_str_name(), "DISCREPANCY_CODE_"), d.message);
            }
        }
        if page.next_page_token.is_empty() {
            return Ok(());
        }
        query.page_token = page.next_page_token;
    }
}

/// Saves the hub's CSV of the list in `dir`; returns the file's path.
async fn save_export(client: &Client, update_id: &str, dir: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let request = proto::ExportReconciliationRequest {
        operator: String::new(),
        update_id: update_id.to_owned(),
        format: proto::ExportFormat::Csv.into(),
        confirmed_lines_only: false,
        without_byte_order_mark: false,
    };
    let chunks = client.export_reconciliation(request).await?;
    // Written aside and renamed when whole, under the name the hub suggests (only its name:
    // the hub does not choose the folder).
    let saved = files::save(chunks, files::Destination::Folder(dir), &format!("{update_id}.csv")).await?;
    Ok(saved.into_iter().next().map(|f| f.path).unwrap_or_default())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(args) = args() else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let lines = match read_lines(&args.file) {
        Ok(lines) => lines,
        Err(problems) => {
            eprintln!("{}: not sent, {} problem(s):", args.file.display(), problems.len());
            for p in &problems {
                eprintln!("  {p}");
            }
            std::process::exit(1);
        }
    };
    let header = proto::MonthlyUpdateHeader {
        period: args.period.clone(),
        update_id: update_id(&args.period, &lines)?,
        replaces_earlier: args.replace,
        // Part of what the hub compares when the same id comes again: nothing that changes
        // from run to run (such as the file's name) belongs here.
        note: "month-end billing export".to_owned(),
    };
    let client = Client::builder(args.endpoint).dev_folder(&args.tls_dir, &args.org)?.connect().await?;

    println!("sending {} lines for {} as {}", lines.len(), args.period, header.update_id);
    let answer = match client.submit_monthly_update(header, stream::iter(lines)).await {
        Ok(answer) => answer,
        Err(Error::InvalidArgument(r)) => {
            eprintln!("refused, nothing recorded: {}", r.message);
            for v in &r.violations {
                eprintln!("  {}: {}", v.field, v.description);
            }
            std::process::exit(1);
        }
        // The period has an open list (use --replace) or a confirmed one (final).
        Err(Error::FailedPrecondition(r)) => {
            eprintln!("refused: {}", r.message);
            if !args.replace {
                eprintln!("to replace the period's open list with this one, run again with --replace");
            }
            std::process::exit(1);
        }
        // Whether a list replaces the earlier one is part of its content.
        Err(Error::AlreadyExists(r)) => {
            eprintln!("refused: {}", r.message);
            eprintln!(
                "these lines were sent before with{} --replace; run as then",
                if args.replace { "out" } else { "" }
            );
            std::process::exit(1);
        }
        Err(e) => return Err(e.into()),
    };
    if answer.replayed {
        println!("already sent: the hub's answer is the one it gave then");
    }
    let answer = settled(&client, answer).await?;
    print_figures(&answer);
    if answer.stale {
        println!("  (still being reconciled again: these figures may change)");
    }
    if answer.figures.as_ref().is_some_and(|f| f.lines_ok < f.lines) {
        println!("discrepancies:");
        print_discrepancies(&client, &answer.update_id).await?;
    }
    std::fs::create_dir_all(&args.out)?;
    let saved = save_export(&client, &answer.update_id, &args.out).await?;
    println!("saved the hub's report of the list in {}", saved.display());
    Ok(())
}
