//! The provincial ICT department's month-end review of the operators' monthly lists: what
//! every operator sent for a month, what the hub found in each list, the department's
//! decisions, and the confirmed lists saved as workbooks.
//!
//! ```text
//! ict_reconciliation ENDPOINT TLS_DIR ORG PERIOD OUT_DIR [--confirm-ok-lines] [--reject OPERATOR:NOTE]…
//! ict_reconciliation https://localhost:50051 ./dev-tls DOICT 2025-03 ./reviews --reject VIETTEL:"line 4 twice"
//! ```
//! `TLS_DIR` is a certificate folder written by `telesub pki init` with an ICT organisation
//! (see the README: `telesub pki init --dir ./dev-tls --org DOICT:ICT …`, then
//! `telesub serve --tls-dir ./dev-tls`); operators send their lists with `operator_monthly`.
//!
//! What it does, in order:
//! 1. Reads every list of `PERIOD` and prints one line per operator: its latest list, with
//!    its status and figures, and how many earlier lists (replaced or rejected) it has. A list
//!    being reconciled again (`stale`, after another operator's list or the register changed)
//!    is waited for, since it cannot be decided until then.
//! 2. For each list waiting for a decision (RECONCILED): its lines by discrepancy code and
//!    its first few lines with a discrepancy.
//! 3. Decides each of those lists, by these rules and nothing else:
//!    - `--reject OPERATOR:NOTE` (any number of times) rejects that operator's list with the
//!      note, which the operator reads; the operator then sends a new list. A named operator
//!      without a list waiting for a decision stops the run before anything is decided.
//!    - A list without discrepancies is confirmed whole (`WHOLE_LIST`).
//!    - With `--confirm-ok-lines`, every other list is confirmed for its OK lines only
//!      (`OK_LINES`): the lines with a discrepancy are not paid, and being confirmed, the
//!      list cannot be replaced. A list without an OK line is left open.
//!    - Anything else is left open, for a decision on another run.
//!
//!    Which lines to pay is a judgement the department makes; this program makes none of it
//!    on its own, and without flags it confirms only lists the hub found nothing wrong with.
//! 4. Saves every confirmed list of the period (confirmed on this run or before) as an XLSX
//!    workbook in `OUT_DIR`, under the name the hub gives it: a summary sheet with the
//!    confirmation's figures and digest, and a sheet of the lines with their outcome.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use telesub_client::{Client, Error, display::vnd, files, proto};

/// Lines with a discrepancy printed per list.
const FIRST_FEW: i32 = 5;

struct Args {
    endpoint: String,
    tls_dir: PathBuf,
    org: String,
    period: String,
    out: PathBuf,
    confirm_ok_lines: bool,
    /// Operator and note.
    reject: BTreeMap<String, String>,
}

const USAGE: &str = "usage: ict_reconciliation ENDPOINT TLS_DIR ORG PERIOD OUT_DIR [--confirm-ok-lines] \
                     [--reject OPERATOR:NOTE]...\n\
                     e.g.   ict_reconciliation https://localhost:50051 ./dev-tls DOICT 2025-03 ./reviews";

fn args() -> Option<Args> {
    let mut positional = Vec::new();
    let (mut confirm_ok_lines, mut reject) = (false, BTreeMap::new());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--confirm-ok-lines" => confirm_ok_lines = true,
            "--reject" => {
                let value = args.next()?;
                let (operator, note) = value.split_once(':')?;
                if operator.trim().is_empty() || note.trim().is_empty() {
                    return None;
                }
                reject.insert(operator.trim().to_owned(), note.trim().to_owned());
            }
            flag if flag.starts_with("--") => return None,
            _ => positional.push(arg),
        }
    }
    let [endpoint, tls_dir, org, period, out]: [String; 5] = positional.try_into().ok()?;
    Some(Args { endpoint, tls_dir: tls_dir.into(), org, period, out: out.into(), confirm_ok_lines, reject })
}

fn status_name(r: &proto::MonthlyReconciliation) -> &'static str {
    r.status().as_str_name().trim_start_matches("RECONCILIATION_STATUS_")
}

fn code_name(code: proto::DiscrepancyCode) -> &'static str {
    code.as_str_name().trim_start_matches("DISCREPANCY_CODE_")
}

fn figures(r: &proto::MonthlyReconciliation) -> proto::ReconciliationFigures {
    r.figures.clone().unwrap_or_default()
}

/// Every list of the period, newest first.
async fn all_lists(client: &Client, period: &str) -> Result<Vec<proto::MonthlyReconciliation>, Error> {
    let mut query =
        proto::ListReconciliationsRequest { period: period.to_owned(), page_size: 100, ..Default::default() };
    let mut lists = Vec::new();
    loop {
        let page = client.list_reconciliations(query.clone()).await?;
        lists.extend(page.reconciliations);
        if page.next_page_token.is_empty() {
            return Ok(lists);
        }
        query.page_token = page.next_page_token;
    }
}

/// The list once it is no longer being reconciled again.
async fn settled(client: &Client, mut r: proto::MonthlyReconciliation) -> Result<proto::MonthlyReconciliation, Error> {
    let started = Instant::now();
    while r.stale && started.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        r = client.get_reconciliation(&r.operator, &r.update_id).await?;
    }
    Ok(r)
}

/// The first few lines with a discrepancy.
async fn print_first_lines(client: &Client, r: &proto::MonthlyReconciliation) -> Result<(), Error> {
    let page = client
        .list_discrepancies(proto::ListDiscrepanciesRequest {
            operator: r.operator.clone(),
            update_id: r.update_id.clone(),
            page_size: FIRST_FEW,
            ..Default::default()
        })
        .await?;
    for l in &page.lines {
        let line = l.line.clone().unwrap_or_default();
        let found: Vec<String> =
            l.discrepancies.iter().map(|d| format!("{} ({})", code_name(d.code()), d.message)).collect();
        println!("    line {} {} {}: {}", l.line_number, line.phone_number, line.household_code, found.join("; "));
    }
    if !page.next_page_token.is_empty() {
        println!("    …");
    }
    Ok(())
}

/// What the department does with a list waiting for a decision.
enum Decision {
    Reject(String),
    Confirm(proto::ConfirmationScope),
    LeaveOpen(&'static str),
}

fn decide(args: &Args, r: &proto::MonthlyReconciliation) -> Decision {
    let f = figures(r);
    if let Some(note) = args.reject.get(&r.operator) {
        Decision::Reject(note.clone())
    } else if f.lines_ok == f.lines {
        Decision::Confirm(proto::ConfirmationScope::WholeList)
    } else if !args.confirm_ok_lines {
        Decision::LeaveOpen("lines with discrepancies (--confirm-ok-lines or --reject to decide)")
    } else if f.lines_ok == 0 {
        Decision::LeaveOpen("no OK line to confirm")
    } else {
        Decision::Confirm(proto::ConfirmationScope::OkLines)
    }
}

/// Saves a list as a workbook in `dir`; returns the file's path.
async fn save_workbook(
    client: &Client,
    r: &proto::MonthlyReconciliation,
    dir: &Path,
) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let request = proto::ExportReconciliationRequest {
        operator: r.operator.clone(),
        update_id: r.update_id.clone(),
        format: proto::ExportFormat::Xlsx.into(),
        confirmed_lines_only: false,
        without_byte_order_mark: false,
    };
    let chunks = client.export_reconciliation(request).await?;
    // Written aside and renamed when whole, under the name the hub suggests (only its name:
    // the hub does not choose the folder).
    let fallback = format!("{}-{}-{}.xlsx", r.period, r.operator, r.update_id);
    let saved = files::save(chunks, files::Destination::Folder(dir), &fallback).await?;
    Ok(saved.into_iter().next().map(|f| f.path).unwrap_or_default())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(args) = args() else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let client = Client::builder(args.endpoint.clone()).dev_folder(&args.tls_dir, &args.org)?.connect().await?;

    // 1. Each operator's latest list (lists come newest first), and how many came before it.
    let mut latest: BTreeMap<String, (proto::MonthlyReconciliation, usize)> = BTreeMap::new();
    for r in all_lists(&client, &args.period).await? {
        latest.entry(r.operator.clone()).and_modify(|(_, earlier)| *earlier += 1).or_insert((r, 0));
    }
    if latest.is_empty() {
        println!("{}: no operator has sent a list", args.period);
        return Ok(());
    }
    println!("{}: lists of {} operator(s)", args.period, latest.len());
    let width = latest.values().map(|(r, _)| r.update_id.chars().count()).max().unwrap_or(0);
    for (list, earlier) in latest.values_mut() {
        *list = settled(&client, list.clone()).await?;
        let f = figures(list);
        println!(
            "  {:<10} {:<width$} {:<11} {} lines, {} OK, {} claimed, {} confirmable{}{}",
            list.operator,
            list.update_id,
            status_name(list),
            f.lines,
            f.lines_ok,
            vnd(f.amount_claimed),
            vnd(f.amount_confirmable),
            if list.stale { " (still being reconciled again)" } else { "" },
            if *earlier > 0 { format!(" ({earlier} earlier list(s))") } else { String::new() }
        );
    }

    // 2. What the hub found in the lists waiting for a decision.
    let open: Vec<proto::MonthlyReconciliation> = latest
        .into_values()
        .map(|(list, _)| list)
        .filter(|r| r.status() == proto::ReconciliationStatus::Reconciled)
        .collect();
    for r in &open {
        let f = figures(r);
        if f.by_code.is_empty() {
            continue;
        }
        println!("{} {}:", r.operator, r.update_id);
        for c in &f.by_code {
            println!("    {:<28} {} line(s)", code_name(c.code()), c.lines);
        }
        print_first_lines(&client, r).await?;
    }

    // 3. Decisions.
    for operator in args.reject.keys() {
        if !open.iter().any(|r| &r.operator == operator) {
            eprintln!("--reject {operator}: {operator} has no list for {} waiting for a decision", args.period);
            eprintln!("nothing was decided");
            std::process::exit(2);
        }
    }
    for r in &open {
        let (who, id) = (r.operator.as_str(), r.update_id.as_str());
        let done = match decide(&args, r) {
            Decision::LeaveOpen(why) => {
                println!("left open {who} {id}: {why}");
                continue;
            }
            Decision::Reject(note) => client.reject_reconciliation(who, id, &note).await.map(|d| {
                println!("rejected {who} {id}: {:?}", d.rejection_note);
            }),
            Decision::Confirm(scope) => client
                .confirm_reconciliation(proto::ConfirmRequest {
                    operator: who.to_owned(),
                    update_id: id.to_owned(),
                    scope: scope.into(),
                    note: format!("month-end review {}", args.period),
                })
                .await
                .map(|d| {
                    let c = d.confirmation.unwrap_or_default();
                    println!(
                        "confirmed {who} {id} ({}): {} line(s), {}, lines digest {}",
                        c.scope,
                        c.lines,
                        vnd(c.amount),
                        c.lines_digest
                    );
                }),
        };
        match done {
            Ok(()) => {}
            // Reconciled again or decided by someone else since it was read: next run.
            Err(Error::FailedPrecondition(e)) => println!("not decided {who} {id}: {}", e.message),
            Err(e) => return Err(e.into()),
        }
    }

    // 4. Every confirmed list of the period as a workbook.
    std::fs::create_dir_all(&args.out)?;
    let confirmed = all_lists(&client, &args.period).await?;
    for r in confirmed.iter().filter(|r| r.status() == proto::ReconciliationStatus::Confirmed) {
        let path = save_workbook(&client, r, &args.out).await?;
        println!("saved {} {} in {}", r.operator, r.update_id, path.display());
    }
    Ok(())
}
