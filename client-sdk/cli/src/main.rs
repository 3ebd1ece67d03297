//! `telesub-cli`: the command-line client for the telesub hub.
//!
//! ```text
//! telesub-cli --tls-dir ./dev-tls --org DOLISA households push --file march.csv \
//!     --batch-id 2024-03-dolisa --kind delta --period 2024-03 --effective-date 2024-03-01
//! telesub-cli --cert dolisa.crt --key dolisa.key --ca province-ca.crt households get 0066000123
//! telesub-cli --tls-dir ./dev-tls --org VNPT eligibility check 067080001234 --as-of 2025-02-01
//! telesub-cli --tls-dir ./dev-tls --org VNPT reports submit --period 2025-03 --file vnpt-2025-03.csv
//! telesub-cli --tls-dir ./dev-tls --org DOICT reconciliation status --period 2025-03
//! telesub-cli --tls-dir ./dev-tls --org DOICT devices show 1234/QĐ-BTTTT
//! telesub-cli --tls-dir ./dev-tls --org DOICT inspections show 7
//! telesub-cli --tls-dir ./dev-tls --org DOICT stats show --period 2025-03 --unit 24611
//! ```
//!
//! The CSV format is described in `docs/CSV.md`; the command line, its output for scripts and
//! its exit statuses in `docs/CLI.md`.

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, error::ErrorKind};
use telesub_client::{Client, Error};

use crate::{exit::Exit, output::OutputArgs};

/// Prints a line on standard output, like `println!`, except that a reader that has gone
/// (`telesub-cli … | head`) ends the program quietly instead of with a panic.
macro_rules! outln {
    () => {
        crate::write_out(format_args!(""))
    };
    ($($arg:tt)*) => {
        crate::write_out(format_args!($($arg)*))
    };
}

fn write_out(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{line}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to standard output: {e}");
        std::process::exit(1);
    }
}

mod audit;
mod devices;
mod eligibility;
mod enrollments;
mod exit;
mod households;
mod inspections;
mod members;
mod output;
mod policy;
mod progress;
mod push;
mod reference;
mod reports;
mod rows;
mod show;
mod stats;

/// The command-line client for the telesub hub: push household lists, look households and
/// batches up, ask for eligibility decisions, read the programme's rules, submit monthly lists
/// and follow their reconciliation, allocate devices to households, record inspections, read
/// the programme's statistics, and read the audit trail.
#[derive(Parser)]
#[command(name = "telesub-cli", version, after_help = exit::summary(), after_long_help = exit::TABLE)]
struct Cli {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: Command,
}

/// Where the hub is and which certificate to show it: either `--tls-dir` and `--org`, or
/// `--cert`, `--key` and `--ca`.
#[derive(Args, Clone)]
#[command(next_help_heading = "Connection")]
struct Connection {
    /// The hub's address.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "TELESUB_ENDPOINT",
        default_value = "https://localhost:50051"
    )]
    endpoint: String,
    /// A certificate folder written by `telesub pki init` (DIR/ca.crt, DIR/clients/CODE.crt and .key).
    #[arg(long, global = true, value_name = "DIR", env = "TELESUB_TLS_DIR")]
    tls_dir: Option<PathBuf>,
    /// The organisation whose certificate in --tls-dir to use.
    #[arg(long, global = true, value_name = "CODE", env = "TELESUB_ORG")]
    org: Option<String>,
    /// This organisation's client certificate (PEM).
    #[arg(long, global = true, value_name = "FILE", env = "TELESUB_CERT")]
    cert: Option<PathBuf>,
    /// The key of --cert (PEM).
    #[arg(long, global = true, value_name = "FILE", env = "TELESUB_KEY")]
    key: Option<PathBuf>,
    /// The CA that issued the hub's certificate (PEM).
    #[arg(long, global = true, value_name = "FILE", env = "TELESUB_CA")]
    ca: Option<PathBuf>,
    /// Saves the hub's signed receipt of every write in DIR, as DIR/RECORD.receipt (the audit
    /// record's number); `audit receipt prove` adds its proof, `audit receipt verify` checks it.
    #[arg(long, global = true, value_name = "DIR", env = "TELESUB_RECEIPTS")]
    receipts: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// The household register.
    #[command(subcommand)]
    Households(households::HouseholdCommand),
    /// Batches pushed to the register.
    #[command(subcommand)]
    Batches(households::BatchCommand),
    /// Eligibility decisions (operators and ICT).
    #[command(subcommand)]
    Eligibility(eligibility::EligibilityCommand),
    /// The programme's rules, version by version.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Subsidised lines (operators; ICT reads).
    #[command(subcommand)]
    Enrollments(enrollments::EnrollmentCommand),
    /// Monthly lists of supported lines (operators).
    #[command(subcommand)]
    Reports(reports::ReportsCommand),
    /// Monthly lists after submission: figures, discrepancies, confirmation (ICT), export.
    #[command(subcommand)]
    Reconciliation(reports::ReconciliationCommand),
    /// Tablets and smartphones for households: the decision, the list, its approval, hand-overs.
    #[command(subcommand)]
    Devices(devices::DevicesCommand),
    /// The audit trail: who did what, the chain check, an export for outside auditors (ICT);
    /// checkpoints kept and checked, receipts proven and verified (every member).
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Inspections of localities and operators (ICT): team, findings and follow-up, samples.
    #[command(subcommand)]
    Inspections(inspections::InspectionsCommand),
    /// The programme's figures for a month: by category and by operator, the public table, files.
    #[command(subcommand)]
    Stats(stats::StatsCommand),
    /// The organisations that may use the hub (ICT): list, register, suspend, reinstate.
    #[command(subcommand)]
    Members(members::MembersCommand),
    /// Follows the change feed of this operator's enrolled households.
    Watch {
        /// Start after this cursor (default: the one saved in --cursor-file, or the beginning).
        #[arg(long)]
        cursor: Option<String>,
        /// Keep the cursor of the last event printed in this file, and start from it.
        #[arg(long, value_name = "FILE")]
        cursor_file: Option<PathBuf>,
        /// Stop once caught up instead of following new events.
        #[arg(long)]
        once: bool,
        /// With json, one event a line (JSON Lines); with csv, the header then a row per event.
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Who the hub takes this certificate to be.
    Whoami {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Prints a completion script for a shell (installation: docs/CLI.md).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Prints the manual page (roff), or writes one page per command into a folder.
    Man {
        /// Writes telesub-cli.1, telesub-cli-households.1, telesub-cli-households-get.1, … here.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// Why a command failed.
enum Failure {
    /// The hub refused or failed the call, or could not be reached.
    Hub(Error),
    /// Anything else, worded for the user (exit status 1).
    Message(String),
    /// Worded for the user, with its exit status.
    Exit(Exit, String),
    /// Already printed.
    Reported(Exit),
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Failure::Hub(err)
    }
}

/// The command line as clap parses it and prints its help and manual pages: [`Cli`], with the
/// exit statuses under every command's help.
fn command() -> clap::Command {
    fn with_statuses(command: clap::Command, path: &str) -> clap::Command {
        let command = if command.has_subcommands() {
            command.mut_subcommands(|sub| {
                let path = format!("{path} {}", sub.get_name()).trim().to_owned();
                with_statuses(sub, &path)
            })
        } else {
            command
        };
        if path.is_empty() {
            return command;
        }
        match exit::OWN.iter().find(|(name, _)| *name == path) {
            Some((_, own)) => command.after_help(exit::own_summary(own)),
            None => command.after_help(exit::summary()),
        }
    }
    with_statuses(Cli::command(), "")
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit());
    let connection = cli.connection.clone();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let status = match failure {
                Failure::Hub(err) => {
                    let err = explained(err, &connection).await;
                    report(&err, |_| None);
                    Exit::of(&err)
                }
                Failure::Message(message) => {
                    eprintln!("error: {message}");
                    Exit::Failed
                }
                Failure::Exit(status, message) => {
                    eprintln!("error: {message}");
                    status
                }
                Failure::Reported(status) => status,
            };
            ExitCode::from(status.code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let connection = cli.connection;
    match cli.command {
        Command::Households(command) => households::households(&connection, command).await,
        Command::Batches(command) => households::batches(&connect(&connection).await?, command).await,
        Command::Eligibility(command) => eligibility::eligibility(&connect(&connection).await?, command).await,
        Command::Policy(command) => policy::policy(&connect(&connection).await?, command).await,
        Command::Enrollments(command) => enrollments::enrollments(&connect(&connection).await?, command).await,
        Command::Reports(command) => reports::reports(&connection, command).await,
        Command::Reconciliation(command) => reports::reconciliation(&connect(&connection).await?, command).await,
        Command::Devices(command) => devices::devices(&connection, command).await,
        Command::Audit(command) => audit::audit(&connection, command).await,
        Command::Inspections(command) => inspections::inspections(&connect(&connection).await?, command).await,
        Command::Stats(command) => stats::stats(&connection, command).await,
        Command::Members(command) => members::members(&connect(&connection).await?, command).await,
        Command::Watch { cursor, cursor_file, once, output } => {
            enrollments::watch(&connect(&connection).await?, cursor, cursor_file, once, output).await
        }
        Command::Whoami { output } => output.one(&connect(&connection).await?.who_am_i().await?, show::who_am_i),
        Command::Completions { shell } => reference::completions(shell),
        Command::Man { out } => reference::man(out.as_deref()),
    }
}

/// A connection that failed without a word from the hub may have been a refused
/// certificate whose alert was lost: a handshake of its own finds out.
async fn explained(err: Error, c: &Connection) -> Error {
    let unexplained = match &err {
        Error::Unavailable(r) => r.request_id.is_none(),
        Error::Connect { .. } => true,
        _ => false,
    };
    if !unexplained {
        return err;
    }
    match builder(c) {
        Ok(builder) => match builder.check_certificate().await {
            Err(refused @ Error::CertificateRefused { .. }) => refused,
            _ => err,
        },
        Err(_) => err,
    }
}

fn builder(c: &Connection) -> Result<telesub_client::ClientBuilder, Error> {
    let mut builder = Client::builder(&c.endpoint);
    if let Some(dir) = c.receipts.clone() {
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Config(format!("cannot make the receipts folder {}: {e}", dir.display())))?;
        builder = builder.on_receipt(move |note| audit::save_receipt(&dir, &note));
    }
    match (&c.tls_dir, &c.org, &c.cert, &c.key, &c.ca) {
        (Some(dir), Some(org), None, None, None) => builder.dev_folder(dir, org),
        (None, None, Some(cert), Some(key), Some(ca)) => builder.identity_files(cert, key)?.ca_file(ca),
        _ => command()
            .error(
                ErrorKind::ArgumentConflict,
                "give either --tls-dir DIR --org CODE, or --cert FILE --key FILE --ca FILE",
            )
            .exit(),
    }
}

/// Connects with the certificate the command line names; `timeout` replaces the SDK's
/// per-call deadline.
async fn connect(c: &Connection) -> Result<Client, Failure> {
    Ok(builder(c)?.connect().await?)
}

/// Prints what the hub said: for a rejected request every field violation on a line of its
/// own, `line_of` giving the CSV line of `records[INDEX]` where known, then the total.
fn report(err: &Error, line_of: impl Fn(usize) -> Option<u64>) {
    let violations = err.violations();
    if !matches!(err, Error::InvalidArgument(_)) || violations.is_empty() {
        eprintln!("error: {err}");
        return;
    }
    for violation in violations {
        match record_index(&violation.field).and_then(&line_of) {
            Some(line) => eprintln!("line {line}: {}: {}", violation.field, violation.description),
            None => eprintln!("{}: {}", violation.field, violation.description),
        }
    }
    let total = violations
        .iter()
        .find_map(|v| total_problems(&v.description))
        .unwrap_or(violations.len())
        .max(violations.len());
    eprintln!("invalid request: {total} problem{}; nothing was changed", if total == 1 { "" } else { "s" });
    if let Some(id) = err.request_id() {
        eprintln!("request id: {id}");
    }
}

/// The total in the hub's last violation when it could not list them all:
/// `N problems in all; the first K are listed`.
fn total_problems(description: &str) -> Option<usize> {
    description.split_once(" problems in all")?.0.parse().ok()
}

/// `INDEX` of a field path `records[INDEX] (CODE).field`.
fn record_index(field: &str) -> Option<usize> {
    let rest = field.strip_prefix("records[")?;
    rest[..rest.find(']')?].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_well_formed() {
        command().debug_assert();
    }

    #[test]
    fn total_comes_from_the_summary() {
        assert_eq!(total_problems("143 problems in all; the first 68 are listed"), Some(143));
        assert_eq!(total_problems("\"00000\" is not a known administrative unit"), None);
    }

    #[test]
    fn violations_name_their_record() {
        assert_eq!(record_index("records[12] (0066000123).members[0].citizen_id"), Some(12));
        assert_eq!(record_index("header.effective_date"), None);
        assert_eq!(record_index("records[x]"), None);
    }

    /// One command line per command, with its required arguments (and some optional ones).
    const SAMPLES: &[&str] = &[
        "households push --file h.csv --batch-id b1 --kind delta --period 2025-03 --effective-date 2025-03-01",
        "households get HH-1 --as-of 2025-02-01",
        "households history HH-1",
        "households find --citizen-id 067080001234",
        "batches get b1",
        "batches list --limit 5",
        "eligibility check 067080001234 --as-of 2025-02-01",
        "eligibility check --household HH-1",
        "eligibility decision d1",
        "policy show --as-of 2025-01-01",
        "policy list",
        "policy withdraw 3 --reason issued-in-error",
        "enrollments enroll --household HH-1 --subscriber 067080001234 --phone 0912345678 --idempotency-key k1",
        "enrollments transfer --household HH-1 --subscriber 067080001234 --phone 0912345678 --idempotency-key k2 \
         --reference R1 --start 2025-03-01",
        "enrollments end 7 --reason household-request --idempotency-key k3 --date 2025-04-01",
        "enrollments import e.csv",
        "enrollments get 7",
        "enrollments list --household HH-1",
        "reports submit --period 2025-03 --file m.csv",
        "reconciliation status --period 2025-03",
        "reconciliation show --update-id u1",
        "reconciliation discrepancies --update-id u1 --code OVER_CAP",
        "reconciliation confirm --operator VNPT --update-id u1 --scope ok-lines",
        "reconciliation reject --operator VNPT --update-id u1 --note n",
        "reconciliation export --update-id u1 --format xlsx",
        "devices record 1/QĐ --date 2025-03-01 --tablets 1 --smartphones 2 --unit 660:1:2",
        "devices nominate 1/QĐ --reason r HH-1",
        "devices propose 1/QĐ --as-of 2025-03-01",
        "devices amend 1/QĐ add HH-1 --device tablet --reason r",
        "devices amend 1/QĐ remove HH-1 --reason r",
        "devices submit 1/QĐ",
        "devices approve 1/QĐ --approval-number 2/QĐ --date 2025-03-20",
        "devices return 1/QĐ --note n",
        "devices handover 1/QĐ HH-1 --date 2025-04-02 --received-by A --device smartphone --imei 352099001761481",
        "devices handover 1/QĐ HH-1 --date 2025-04-02 --received-by A --cash 500000 --bought-on 2023-01-01 --receipt R",
        "devices show 1/QĐ",
        "devices list",
        "devices recipients 1/QĐ --unit 660",
        "devices publish 1/QĐ --commune 24611 --format html",
        "audit query --caller VNPT",
        "audit verify",
        "audit purge --dry-run",
        "audit purge --ticket 4bf92f3577b34da6a3ce929d0e0e4736",
        "audit export --from 2025-03-01 --until 2025-04-01 -o a.csv",
        "audit checkpoint --save kept.note",
        "audit checkpoints --after 100",
        "audit check --against kept.note --public-key k.pub",
        "audit receipt prove 12.receipt",
        "audit receipt verify 12.receipt --public-key k.pub",
        "inspections create --title t --basis plan --member DOICT:A:B --from 2025-04-01 --to 2025-04-15",
        "inspections finding 1 --severity high --subject VNPT --description d --action a --due 2025-05-30",
        "inspections update 1 1 --status resolved --note n",
        "inspections close 1 --conclusion c",
        "inspections sample 1 --commune 24611 --size 5",
        "inspections show 1",
        "inspections list",
        "inspections show-sample 1 1",
        "stats show --period 2025-03 --unit 660",
        "stats public --period 2025-03",
        "stats export --period 2025-03 --format public-csv",
        "members list",
        "members register MOBIFONE --role operator --name M",
        "members register DAKMIL --role locality --unit 662 --name D",
        "members suspend MOBIFONE --reason r",
        "members reinstate MOBIFONE",
        "watch --once --cursor-file c --output json",
        "whoami --output csv --no-bom",
        "completions zsh",
        "man --out pages",
    ];

    /// The commands that take no further subcommand, as paths.
    fn leaves(command: &clap::Command, path: &mut Vec<String>, out: &mut Vec<String>) {
        let subs: Vec<&clap::Command> = command.get_subcommands().filter(|c| c.get_name() != "help").collect();
        if subs.is_empty() {
            out.push(path.join(" "));
        }
        for sub in subs {
            path.push(sub.get_name().to_owned());
            leaves(sub, path, out);
            path.pop();
        }
    }

    /// Every command parses, with the connection flags of either kind beside its own: a
    /// command's argument colliding with a global one (both `--key`) fails here, not in a
    /// user's hands.
    #[test]
    fn every_command_parses_with_the_connection_flags() {
        let mut all = Vec::new();
        leaves(&Cli::command(), &mut Vec::new(), &mut all);
        for leaf in &all {
            let covered = SAMPLES.iter().any(|s| {
                let words: Vec<&str> = s.split_whitespace().collect();
                let named: Vec<&str> = leaf.split(' ').collect();
                // `devices amend NUMBER add`: the number sits between the two names.
                let mut rest = words.iter();
                named.iter().all(|n| rest.any(|w| w == n))
            });
            assert!(covered, "no sample command line for `{leaf}`");
        }
        let connections: [&[&str]; 2] =
            [&["--tls-dir", "dev-tls", "--org", "VNPT"], &["--cert", "v.crt", "--key", "v.key", "--ca", "ca.crt"]];
        for sample in SAMPLES {
            for connection in connections {
                let argv: Vec<&str> = ["telesub-cli"]
                    .into_iter()
                    .chain(sample.split_whitespace())
                    .chain(connection.iter().copied())
                    .collect();
                // A definition that does not match its use panics inside the parser.
                let parsed = std::panic::catch_unwind(|| Cli::try_parse_from(&argv).map(|_| ()));
                match parsed {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => panic!("`{}` does not parse: {e}", argv.join(" ")),
                    Err(_) => panic!("`{}` panics in the parser", argv.join(" ")),
                }
                let cli = Cli::try_parse_from(&argv).unwrap();
                assert!(cli.connection.org.is_some() || cli.connection.key.is_some(), "{argv:?}");
            }
        }
    }

    /// The commands with statuses of their own are commands, and their help says so.
    #[test]
    fn own_statuses_name_real_commands() {
        let mut all = Vec::new();
        leaves(&Cli::command(), &mut Vec::new(), &mut all);
        let mut cli = command();
        for (path, own) in exit::OWN {
            assert!(all.iter().any(|leaf| leaf == path), "no command `{path}`");
            let mut sub = &mut cli;
            for name in path.split(' ') {
                sub = sub.find_subcommand_mut(name).unwrap();
            }
            let help = sub.render_help().to_string();
            assert!(help.contains(own) && help.contains("4 not found"), "{help}");
        }
    }

    #[test]
    fn connection_flags_go_anywhere() {
        let cli = Cli::try_parse_from([
            "telesub-cli",
            "households",
            "find",
            "--citizen-id",
            "067080001234",
            "--tls-dir",
            "dev-tls",
            "--org",
            "DOLISA",
        ])
        .unwrap();
        assert_eq!(cli.connection.org.as_deref(), Some("DOLISA"));
        assert!(
            Cli::try_parse_from(["telesub-cli", "households", "find", "--citizen-id", "1", "--certificate", "2"])
                .is_err()
        );
    }
}
