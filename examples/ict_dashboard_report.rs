//! The provincial ICT department's overview of a month, for the province or one district or
//! commune: the register, the lines running, what each operator claimed and what was
//! confirmed, the most frequent discrepancies, the devices, and how much of the public table
//! is suppressed.
//!
//! ```text
//! ict_dashboard_report ENDPOINT TLS_DIR ORG PERIOD [UNIT]
//! ict_dashboard_report https://localhost:50051 ./dev-tls DOICT 2025-03
//! ict_dashboard_report https://localhost:50051 ./dev-tls DOICT 2025-03 24611
//! ```
//! `TLS_DIR` is a certificate folder written by `telesub pki init` with an ICT organisation
//! (see the README: `telesub pki init --dir ./dev-tls --org DOICT:ICT …`, then
//! `telesub serve --tls-dir ./dev-tls`) and `ORG` its code; another role that may read the
//! figures (PROVINCE_COMMITTEE, LABOUR, EDUCATION, HEALTH, or a LOCALITY for its own unit)
//! works as well. `PERIOD` is the month, `YYYY-MM`; `UNIT` a district or commune code, the
//! whole province when left out.
//!
//! What it prints, from `GetProgrammeStatistics` and `PublicStatistics`:
//! 1. The unit, the month and the day the figures are counted on.
//! 2. `households on the list`, the eligible households and the lines running, each with the
//!    change from the month before (e.g. `+12`).
//! 3. Per operator: the subscribers and amounts claimed and confirmed, and the status of its
//!    list for the month.
//! 4. The three most frequent discrepancy codes over all operators.
//! 5. The places on approved device lists and the hand-overs.
//! 6. The public table's row count and how many of its cells are suppressed (`< N`).
//!
//! Exit status: 0 done, 1 the hub refused (the error is printed) or could not be reached,
//! 2 bad command line.

use telesub_client::{Client, Error, display::vnd, proto};

const USAGE: &str = "usage: ict_dashboard_report ENDPOINT TLS_DIR ORG PERIOD [UNIT]\n\
                     e.g.   ict_dashboard_report https://localhost:50051 ./dev-tls DOICT 2025-03";

/// Discrepancy codes printed.
const TOP_CODES: usize = 3;

#[derive(Debug, PartialEq, Eq)]
struct Args {
    endpoint: String,
    tls_dir: String,
    org: String,
    period: String,
    /// Empty for the whole province.
    unit: String,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Option<Args> {
    let mut positional: Vec<String> = args.into_iter().collect();
    if positional.iter().any(|a| a.starts_with('-')) {
        return None;
    }
    let unit = if positional.len() == 5 { positional.pop().unwrap_or_default() } else { String::new() };
    let [endpoint, tls_dir, org, period]: [String; 4] = positional.try_into().ok()?;
    if !is_month(&period) || org.is_empty() {
        return None;
    }
    Some(Args { endpoint, tls_dir, org, period, unit })
}

/// `YYYY-MM`, month 01 to 12; whether the hub has figures for it is the hub's to say.
fn is_month(text: &str) -> bool {
    let Some((year, month)) = text.split_once('-') else {
        return false;
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    digits(year, 4) && digits(month, 2) && (1..=12).contains(&month.parse::<u8>().unwrap_or(0))
}

/// Prints a line like `println!`, except that a reader that has gone (`… | grep -q …`, `… |
/// head`) ends the program quietly with status 0 instead of a panic.
macro_rules! say {
    ($($arg:tt)*) => {
        write_line(format_args!($($arg)*))
    };
}

fn write_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{line}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to standard output: {e}");
        std::process::exit(1);
    }
}

/// `+12`, `-3`, `+0`: the change from the month before.
fn change(now: i64, before: i64) -> String {
    format!("{:+}", now - before)
}

fn unit_text(code: &str, name: &str) -> String {
    match (code.is_empty(), name.is_empty()) {
        (true, true) => "the province".to_owned(),
        (true, false) => format!("the province ({name})"),
        (false, _) => format!("{code} {name}").trim_end().to_owned(),
    }
}

fn status_name(o: &proto::OperatorFigures) -> &'static str {
    match o.list_status() {
        proto::ReconciliationStatus::Unspecified => "no list",
        status => status.as_str_name().trim_start_matches("RECONCILIATION_STATUS_"),
    }
}

fn code_name(code: proto::DiscrepancyCode) -> &'static str {
    code.as_str_name().trim_start_matches("DISCREPANCY_CODE_")
}

/// The `n` codes with the most lines over all operators, most first (ties in the codes'
/// order). The totals row (operator empty) holds the sums when the hub sends one; otherwise
/// the operators' rows are added up.
fn top_codes(operators: &[proto::OperatorFigures], n: usize) -> Vec<(proto::DiscrepancyCode, i64)> {
    let totals: Vec<&proto::OperatorFigures> = operators.iter().filter(|o| o.operator.is_empty()).collect();
    let rows = if totals.is_empty() { operators.iter().collect() } else { totals };
    let mut sums: Vec<(proto::DiscrepancyCode, i64)> = Vec::new();
    for c in rows.iter().flat_map(|o| &o.discrepancies) {
        match sums.iter_mut().find(|(code, _)| *code == c.code()) {
            Some((_, lines)) => *lines += c.lines,
            None => sums.push((c.code(), c.lines)),
        }
    }
    sums.retain(|&(_, lines)| lines > 0);
    sums.sort_by_key(|&(code, lines)| (std::cmp::Reverse(lines), code as i32));
    sums.truncate(n);
    sums
}

/// Cells the public table shows as `< N`.
fn suppressed_cells(table: &proto::PublicStatisticsTable) -> usize {
    table.rows.iter().flat_map(|r| &r.cells).filter(|c| c.trim_start().starts_with('<')).count()
}

async fn run(args: &Args) -> Result<(), Error> {
    let client = Client::builder(args.endpoint.clone()).dev_folder(&args.tls_dir, &args.org)?.connect().await?;
    let s = client
        .get_programme_statistics(proto::GetProgrammeStatisticsRequest {
            period: args.period.clone(),
            unit_code: args.unit.clone(),
        })
        .await?;

    // 1. Where and when.
    say!(
        "{} in {}, as of {} (policy version {})",
        s.period,
        unit_text(&s.unit_code, &s.unit_name),
        s.as_of,
        s.policy_version
    );

    // 2. The register and the lines, against the month before.
    let total =
        s.by_category.iter().find(|c| c.category() == proto::Category::Unspecified).cloned().unwrap_or_default();
    say!(
        "households on the list  {} ({} from {})",
        total.households,
        change(total.households, total.households_before),
        s.previous_period
    );
    say!("eligible                {} ({})", total.eligible, change(total.eligible, total.eligible_before));
    say!("lines running           {} ({})", total.enrolled, change(total.enrolled, total.enrolled_before));

    // 3. Each operator's month.
    let operators: Vec<&proto::OperatorFigures> = s.by_operator.iter().filter(|o| !o.operator.is_empty()).collect();
    if operators.is_empty() {
        say!("operators               none with a line or a list");
    } else {
        say!("operators");
        let width = operators.iter().map(|o| o.operator.chars().count()).max().unwrap_or(0);
        for o in &operators {
            say!(
                "  {:<width$}  claimed {} subscribers, {}; confirmed {} subscribers, {}; list {}",
                o.operator,
                o.subscribers_claimed,
                vnd(o.amount_claimed),
                o.subscribers_confirmed,
                vnd(o.amount_confirmed),
                status_name(o)
            );
        }
    }

    // 4. What the hub found most often in the operators' lists.
    let top = top_codes(&s.by_operator, TOP_CODES);
    if top.is_empty() {
        say!("discrepancies           none");
    } else {
        let each: Vec<String> =
            top.iter().map(|&(code, lines)| format!("{} {lines} line(s)", code_name(code))).collect();
        say!("most discrepancies      {}", each.join(", "));
    }

    // 5. Devices.
    say!("device places           {} ({} handed over)", total.devices_allocated, total.devices_handed_over);

    // 6. The public form of the same figures, at the hub's default threshold.
    let public = client
        .public_statistics(proto::PublicStatisticsRequest {
            period: args.period.clone(),
            unit_code: args.unit.clone(),
            threshold: 0,
        })
        .await?;
    say!(
        "public table            {} row(s), {} cell(s) suppressed (counts under {})",
        public.rows.len(),
        suppressed_cells(&public),
        public.threshold
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Some(args) = parse_args(std::env::args().skip(1)) else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    if let Err(err) = run(&args).await {
        // The message carries the hub's request id, to quote when reporting a problem.
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Option<Args> {
        parse_args(args.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn the_unit_is_optional() {
        let a = parse(&["https://localhost:50051", "./dev-tls", "DOICT", "2025-03"]).unwrap();
        assert_eq!((a.org.as_str(), a.period.as_str(), a.unit.as_str()), ("DOICT", "2025-03", ""));
        let a = parse(&["https://localhost:50051", "./dev-tls", "DOICT", "2025-03", "24611"]).unwrap();
        assert_eq!(a.unit, "24611");
        assert_eq!(parse(&["https://localhost:50051", "./dev-tls", "DOICT"]), None);
        assert_eq!(parse(&["https://localhost:50051", "./dev-tls", "DOICT", "2025-03", "24611", "x"]), None);
        assert_eq!(parse(&["https://localhost:50051", "./dev-tls", "DOICT", "03/2025"]), None);
        assert_eq!(parse(&["https://localhost:50051", "./dev-tls", "DOICT", "2025-13"]), None);
        assert_eq!(parse(&["--help"]), None);
    }

    #[test]
    fn changes_carry_their_sign() {
        assert_eq!(change(112, 100), "+12");
        assert_eq!(change(97, 100), "-3");
        assert_eq!(change(5, 5), "+0");
        assert_eq!(vnd(1_234_567), "1,234,567 VND");
    }

    fn figures(operator: &str, codes: &[(proto::DiscrepancyCode, i64)]) -> proto::OperatorFigures {
        proto::OperatorFigures {
            operator: operator.to_owned(),
            discrepancies: codes.iter().map(|&(code, lines)| proto::CodeCount { code: code.into(), lines }).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_most_frequent_codes_come_first() {
        use proto::DiscrepancyCode::{NonUsage, NotEligible, NotEnrolled, OverCap};
        let vnpt = figures("VNPT", &[(OverCap, 4), (NotEnrolled, 2)]);
        let viettel = figures("VIETTEL", &[(NotEnrolled, 3), (NonUsage, 1), (NotEligible, 1)]);
        let expected = vec![(NotEnrolled, 5), (OverCap, 4), (NotEligible, 1)];
        assert_eq!(top_codes(&[vnpt.clone(), viettel.clone()], 3), expected);
        // The totals row is used when there is one, not added to the operators' rows.
        let totals = figures("", &[(NotEnrolled, 5), (OverCap, 4), (NotEligible, 1), (NonUsage, 1)]);
        assert_eq!(top_codes(&[vnpt, viettel, totals], 3), expected);
        assert!(top_codes(&[], 3).is_empty());
    }

    #[test]
    fn suppressed_cells_are_counted() {
        let table = proto::PublicStatisticsTable {
            rows: vec![
                proto::PublicRow { cells: vec!["category".into(), "POOR".into(), "120".into(), "< 10".into()] },
                proto::PublicRow { cells: vec!["operator".into(), "VNPT".into(), String::new(), "< 10".into()] },
            ],
            ..Default::default()
        };
        assert_eq!(suppressed_cells(&table), 2);
    }
}
