//! `stats …`: how the programme is doing in a month, for the province, a district or a
//! commune: the figures by category of household and by operator with the month before, the
//! public table with small counts suppressed, and both as files.
//!
//! ```text
//! telesub-cli --tls-dir ./dev-tls --org DOICT stats show --period 2025-03
//! telesub-cli --tls-dir ./dev-tls --org DOICT stats show --period 2025-03 --unit 24611
//! telesub-cli --tls-dir ./dev-tls --org DOICT stats public --period 2025-03 --threshold 20
//! telesub-cli --tls-dir ./dev-tls --org DOICT stats export --period 2025-03 --format xlsx -o 2025-03.xlsx
//! telesub-cli --tls-dir ./dev-tls --org VNPT stats export --period 2025-03 --unit 660 --format public-csv
//! ```

use std::path::PathBuf;

use clap::{Args, CommandFactory, Subcommand, ValueEnum, error::ErrorKind};
use telesub_client::{Error, proto};

use crate::{
    Cli, Connection, Failure,
    exit::Exit,
    output::OutputArgs,
    reports::save_file,
    rows::figures,
    show::{short, table, timestamp, vnd},
};

#[derive(Subcommand)]
pub(crate) enum StatsCommand {
    /// The month's figures by category of household and by operator, with the month before,
    /// and the discrepancies per operator (ICT and the coordinating departments; a locality
    /// its own unit).
    Show {
        #[command(flatten)]
        scope: Scope,
        /// CSV: a row per figure (period, unit, view, key, measure, value).
        #[command(flatten)]
        output: OutputArgs,
    },
    /// The same figures for publication, counts under the threshold shown as "< N" (every
    /// member).
    Public {
        #[command(flatten)]
        scope: Scope,
        #[command(flatten)]
        threshold: Threshold,
        /// CSV: the public table's own columns and rows.
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Saves the figures as a file: the XLSX workbook (as `show`), or the public table as CSV.
    Export {
        #[command(flatten)]
        scope: Scope,
        #[arg(long, value_enum)]
        format: StatsFormatArg,
        #[command(flatten)]
        threshold: Threshold,
        /// A CSV file without the UTF-8 byte-order mark (which spreadsheet programs need to
        /// show Vietnamese; scripts may not want it).
        #[arg(long)]
        no_bom: bool,
        /// Where to save it; by default the name the hub suggests, in the current folder.
        #[arg(short, long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// The month and the unit the figures are for.
#[derive(Args)]
pub(crate) struct Scope {
    /// The month: not before the programme, not after this month.
    #[arg(long, value_name = "YYYY-MM", value_parser = period)]
    period: String,
    /// A district or commune code; the whole province when left out.
    #[arg(long, value_name = "CODE")]
    unit: Option<String>,
}

#[derive(Args)]
pub(crate) struct Threshold {
    /// Counts under N are suppressed (at least 5); the hub's default (10) when left out.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(5..))]
    threshold: Option<i32>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub(crate) enum StatsFormatArg {
    /// The internal figures, one sheet per view (the programme's staff).
    Xlsx,
    /// The public table, small counts suppressed (every member).
    PublicCsv,
}

impl From<StatsFormatArg> for proto::StatisticsFormat {
    fn from(f: StatsFormatArg) -> Self {
        match f {
            StatsFormatArg::Xlsx => proto::StatisticsFormat::Xlsx,
            StatsFormatArg::PublicCsv => proto::StatisticsFormat::PublicCsv,
        }
    }
}

/// `--period`: a month as `YYYY-MM`; whether the hub has figures for it is the hub's to say.
fn period(text: &str) -> Result<String, String> {
    let text = text.trim();
    let (year, month) = text.split_once('-').unwrap_or_default();
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if digits(year, 4) && digits(month, 2) && (1..=12).contains(&month.parse::<u8>().unwrap_or(0)) {
        Ok(text.to_owned())
    } else {
        Err(format!("{text:?} is not a month: use YYYY-MM (e.g. 2025-03)"))
    }
}

/// The request of `stats export`; `--threshold` goes with the public table only.
fn export_request(
    scope: Scope,
    format: StatsFormatArg,
    threshold: Threshold,
) -> Result<proto::ExportStatisticsRequest, &'static str> {
    if format == StatsFormatArg::Xlsx && threshold.threshold.is_some() {
        return Err("--threshold goes with --format public-csv: the workbook suppresses nothing");
    }
    Ok(proto::ExportStatisticsRequest {
        period: scope.period,
        unit_code: scope.unit.unwrap_or_default(),
        format: proto::StatisticsFormat::from(format).into(),
        threshold: threshold.threshold.unwrap_or(0),
        without_byte_order_mark: false,
    })
}

/// The name to save an export under when the hub suggests none.
fn fallback_name(request: &proto::ExportStatisticsRequest) -> String {
    let (kind, extension) =
        if request.format == proto::StatisticsFormat::Xlsx as i32 { ("statistics", "xlsx") } else { ("public", "csv") };
    let unit = if request.unit_code.is_empty() { String::new() } else { format!("-{}", request.unit_code) };
    format!("{kind}-{}{unit}.{extension}", request.period)
}

/// Stops with a usage error of `stats SUBCOMMAND`, like clap's own (exit status 2).
fn usage(subcommand: &str, kind: ErrorKind, message: &str) -> ! {
    let mut cli = Cli::command();
    cli.build();
    let mut command = cli.find_subcommand("stats").and_then(|s| s.find_subcommand(subcommand)).cloned().unwrap_or(cli);
    command.error(kind, message).exit()
}

pub(crate) async fn stats(connection: &Connection, command: StatsCommand) -> Result<(), Failure> {
    match command {
        StatsCommand::Show { scope, output } => {
            let figures = crate::connect(connection)
                .await?
                .get_programme_statistics(proto::GetProgrammeStatisticsRequest {
                    period: scope.period,
                    unit_code: scope.unit.unwrap_or_default(),
                })
                .await?;
            output.list(&figures, &self::figures(&figures), || show_statistics(&figures))
        }
        StatsCommand::Public { scope, threshold, output } => {
            let public = crate::connect(connection)
                .await?
                .public_statistics(proto::PublicStatisticsRequest {
                    period: scope.period,
                    unit_code: scope.unit.unwrap_or_default(),
                    threshold: threshold.threshold.unwrap_or(0),
                })
                .await?;
            let header: Vec<&str> = public.columns.iter().map(String::as_str).collect();
            output.custom(&public, &header, public.rows.iter().map(|r| r.cells.clone()), || show_public(&public))
        }
        StatsCommand::Export { scope, format, threshold, no_bom, out } => {
            // A command line at odds with itself is a usage error, found before the hub is called.
            let mut request = export_request(scope, format, threshold)
                .unwrap_or_else(|message| usage("export", ErrorKind::ArgumentConflict, message));
            request.without_byte_order_mark = no_bom;
            let fallback = fallback_name(&request);
            let client = crate::connect(connection).await?;
            let chunks = match client.export_statistics(request).await {
                // The hub names the API's format; say it in this command's words.
                Err(Error::PermissionDenied(r)) if format == StatsFormatArg::Xlsx => {
                    let id = r.request_id.map(|id| format!(" (request id {id})")).unwrap_or_default();
                    return Err(Failure::Exit(
                        Exit::Denied,
                        format!("this organisation may read only the public statistics: use --format public-csv{id}"),
                    ));
                }
                result => result?,
            };
            save_file(chunks, out, &fallback).await
        }
    }
}

// How the figures are printed: a label column, then the value; tables for the views.

const LABEL: usize = 16;

fn field(label: &str, value: impl std::fmt::Display) {
    outln!("{label:<LABEL$} {value}");
}

/// `24611 Phường Nghĩa Đức`, or `province` (with the hub's name for it) for the whole province.
fn unit_text(code: &str, name: &str) -> String {
    match (code.is_empty(), name.is_empty()) {
        (true, true) => "province".to_owned(),
        (true, false) => format!("province ({name})"),
        (false, _) => format!("{code} {name}").trim_end().to_owned(),
    }
}

fn category_name(c: &proto::CategoryFigures) -> &'static str {
    match c.category() {
        proto::Category::Unspecified => "TOTAL",
        category => short(category.as_str_name(), "CATEGORY_"),
    }
}

fn operator_name(o: &proto::OperatorFigures) -> &str {
    if o.operator.is_empty() { "TOTAL" } else { &o.operator }
}

fn list_status(o: &proto::OperatorFigures) -> &'static str {
    match o.list_status() {
        proto::ReconciliationStatus::Unspecified => "-",
        status => short(status.as_str_name(), "RECONCILIATION_STATUS_"),
    }
}

fn show_statistics(s: &proto::ProgrammeStatistics) {
    field("period", &s.period);
    field("previous period", &s.previous_period);
    field("unit", unit_text(&s.unit_code, &s.unit_name));
    field("as of", &s.as_of);
    field("policy version", s.policy_version);
    if s.computed_at.is_some() {
        field("computed at", timestamp(s.computed_at.as_ref()));
    }

    outln!("by category");
    let rows = s
        .by_category
        .iter()
        .map(|c| {
            vec![
                category_name(c).to_owned(),
                c.households.to_string(),
                c.eligible.to_string(),
                c.enrolled.to_string(),
                c.devices_allocated.to_string(),
                c.devices_handed_over.to_string(),
                c.households_before.to_string(),
                c.enrolled_before.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "CATEGORY",
            "HOUSEHOLDS",
            "ELIGIBLE",
            "ENROLLED",
            "DEVICES",
            "HANDED OVER",
            "HOUSEHOLDS BEFORE",
            "ENROLLED BEFORE",
        ],
        rows,
        "  ",
    );

    outln!("by operator");
    let rows = s
        .by_operator
        .iter()
        .map(|o| {
            vec![
                operator_name(o).to_owned(),
                o.enrolled.to_string(),
                o.subscribers_claimed.to_string(),
                vnd(o.amount_claimed),
                o.subscribers_confirmed.to_string(),
                vnd(o.amount_confirmed),
                list_status(o).to_owned(),
                o.subscribers_claimed_before.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "OPERATOR",
            "ENROLLED",
            "CLAIMED",
            "AMOUNT CLAIMED",
            "CONFIRMED",
            "AMOUNT CONFIRMED",
            "LIST",
            "CLAIMED BEFORE",
        ],
        rows,
        "  ",
    );

    let rows: Vec<Vec<String>> = s
        .by_operator
        .iter()
        .flat_map(|o| {
            o.discrepancies.iter().map(move |d| {
                vec![
                    operator_name(o).to_owned(),
                    short(d.code().as_str_name(), "DISCREPANCY_CODE_").to_owned(),
                    d.lines.to_string(),
                ]
            })
        })
        .collect();
    if rows.is_empty() {
        field("discrepancies", "none");
    } else {
        outln!("discrepancies");
        table(&["OPERATOR", "CODE", "LINES"], rows, "  ");
    }
}

fn show_public(t: &proto::PublicStatisticsTable) {
    field("period", &t.period);
    field("unit", unit_text(&t.unit_code, &t.unit_name));
    field("threshold", t.threshold);
    let header: Vec<&str> = t.columns.iter().map(String::as_str).collect();
    let rows = t
        .rows
        .iter()
        .map(|r| r.cells.iter().map(|c| if c.is_empty() { "-".to_owned() } else { c.clone() }).collect())
        .collect();
    table(&header, rows, "");
    outln!("{}", t.legend);
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::Command;

    fn parse(args: &[&str]) -> Result<StatsCommand, clap::Error> {
        let cli = Cli::try_parse_from(["telesub-cli", "stats"].iter().chain(args))?;
        match cli.command {
            Command::Stats(command) => Ok(command),
            _ => unreachable!("a stats command"),
        }
    }

    #[test]
    fn periods_are_months() {
        assert_eq!(period("2025-03").unwrap(), "2025-03");
        assert_eq!(period(" 2025-12 ").unwrap(), "2025-12");
        assert!(period("2025-13").is_err());
        assert!(period("2025-00").is_err());
        assert!(period("2025-3").is_err());
        assert!(period("2025-03-01").is_err());
        assert!(period("March").is_err());
        assert!(period("").is_err());
    }

    #[test]
    fn show_takes_a_period_and_optionally_a_unit() {
        let Ok(StatsCommand::Show { scope, .. }) = parse(&["show", "--period", "2025-03"]) else {
            panic!("a show");
        };
        assert_eq!((scope.period.as_str(), scope.unit), ("2025-03", None));
        let Ok(StatsCommand::Show { scope, .. }) = parse(&["show", "--period", "2025-03", "--unit", "24611"]) else {
            panic!("a show");
        };
        assert_eq!(scope.unit.as_deref(), Some("24611"));
        assert!(parse(&["show"]).is_err(), "a period is required");
        let err = parse(&["show", "--period", "03/2025"]).err().expect("not a month");
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        assert_eq!(err.exit_code(), 2, "a usage error");
        assert!(parse(&["show", "--period", "2025-03", "--threshold", "10"]).is_err(), "show has no threshold");
    }

    #[test]
    fn public_thresholds_are_at_least_five() {
        let Ok(StatsCommand::Public { scope, threshold, .. }) =
            parse(&["public", "--period", "2025-03", "--unit", "660", "--threshold", "20"])
        else {
            panic!("a public table");
        };
        assert_eq!(
            (scope.period.as_str(), scope.unit.as_deref(), threshold.threshold),
            ("2025-03", Some("660"), Some(20))
        );
        let Ok(StatsCommand::Public { threshold, .. }) = parse(&["public", "--period", "2025-03"]) else {
            panic!("a public table");
        };
        assert_eq!(threshold.threshold, None, "the hub's default");
        assert!(parse(&["public", "--period", "2025-03", "--threshold", "4"]).is_err());
        assert!(parse(&["public", "--period", "2025-03", "--threshold", "ten"]).is_err());
    }

    #[test]
    fn export_takes_a_format_and_a_file() {
        let Ok(StatsCommand::Export { scope, format, threshold, out, no_bom }) =
            parse(&["export", "--period", "2025-03", "--format", "public-csv", "--threshold", "15", "-o", "p.csv"])
        else {
            panic!("an export");
        };
        assert_eq!((out, no_bom), (Some(PathBuf::from("p.csv")), false));
        let request = export_request(scope, format, threshold).unwrap();
        assert_eq!(request.format(), proto::StatisticsFormat::PublicCsv);
        assert_eq!((request.period.as_str(), request.unit_code.as_str(), request.threshold), ("2025-03", "", 15));
        assert_eq!(fallback_name(&request), "public-2025-03.csv");

        let Ok(StatsCommand::Export { scope, format, threshold, out, .. }) =
            parse(&["export", "--period", "2025-03", "--unit", "24611", "--format", "xlsx"])
        else {
            panic!("an export");
        };
        assert_eq!(out, None);
        let request = export_request(scope, format, threshold).unwrap();
        assert_eq!(request.format(), proto::StatisticsFormat::Xlsx);
        assert_eq!(request.threshold, 0);
        assert_eq!(fallback_name(&request), "statistics-2025-03-24611.xlsx");

        let Ok(StatsCommand::Export { scope, format, threshold, .. }) =
            parse(&["export", "--period", "2025-03", "--format", "xlsx", "--threshold", "10"])
        else {
            panic!("an export");
        };
        assert!(export_request(scope, format, threshold).is_err(), "the workbook suppresses nothing");
        assert!(parse(&["export", "--period", "2025-03"]).is_err(), "a format is required");
        assert!(parse(&["export", "--period", "2025-03", "--format", "pdf"]).is_err());
    }

    #[test]
    fn units_and_rows_are_named() {
        assert_eq!(unit_text("", ""), "province");
        assert_eq!(unit_text("", "Toàn tỉnh"), "province (Toàn tỉnh)");
        assert_eq!(unit_text("24611", "Phường Nghĩa Đức"), "24611 Phường Nghĩa Đức");
        assert_eq!(unit_text("660", ""), "660");
        let total = proto::CategoryFigures::default();
        assert_eq!(category_name(&total), "TOTAL");
        let poor = proto::CategoryFigures { category: proto::Category::Poor.into(), ..Default::default() };
        assert_eq!(category_name(&poor), "POOR");
        let vnpt = proto::OperatorFigures {
            operator: "VNPT".to_owned(),
            list_status: proto::ReconciliationStatus::Confirmed.into(),
            ..Default::default()
        };
        assert_eq!((operator_name(&vnpt), list_status(&vnpt)), ("VNPT", "CONFIRMED"));
        let totals = proto::OperatorFigures::default();
        assert_eq!((operator_name(&totals), list_status(&totals)), ("TOTAL", "-"));
    }
}
