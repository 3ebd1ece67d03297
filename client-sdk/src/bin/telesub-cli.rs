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
//! The CSV format is described in `docs/CSV.md`. Exit status: 0 done, 1 refused or failed,
//! 2 bad command line.

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum, error::ErrorKind};
use telesub_client::{Client, Error, proto};

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

#[path = "telesub_cli/audit.rs"]
mod audit;
#[path = "telesub_cli/devices.rs"]
mod devices;
#[path = "telesub_cli/inspections.rs"]
mod inspections;
#[path = "telesub_cli/push.rs"]
mod push;
#[path = "telesub_cli/reports.rs"]
mod reports;
#[path = "telesub_cli/show.rs"]
mod show;
#[path = "telesub_cli/stats.rs"]
mod stats;

/// The command-line client for the telesub hub: push household lists, look households and
/// batches up, ask for eligibility decisions, read the programme's rules, submit monthly lists
/// and follow their reconciliation, allocate devices to households, record inspections, read
/// the programme's statistics, and read the audit trail.
#[derive(Parser)]
#[command(name = "telesub-cli", version)]
struct Cli {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: Command,
}

/// Where the hub is and which certificate to show it: either `--tls-dir` and `--org`, or
/// `--cert`, `--key` and `--ca`.
#[derive(Args)]
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
    #[arg(long, global = true, value_name = "DIR")]
    tls_dir: Option<PathBuf>,
    /// The organisation whose certificate in --tls-dir to use.
    #[arg(long, global = true, value_name = "CODE")]
    org: Option<String>,
    /// This organisation's client certificate (PEM).
    #[arg(long, global = true, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// The key of --cert (PEM).
    #[arg(long, global = true, value_name = "FILE")]
    key: Option<PathBuf>,
    /// The CA that issued the hub's certificate (PEM).
    #[arg(long, global = true, value_name = "FILE")]
    ca: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// The household register.
    #[command(subcommand)]
    Households(HouseholdCommand),
    /// Batches pushed to the register.
    #[command(subcommand)]
    Batches(BatchCommand),
    /// Eligibility decisions (operators and ICT).
    #[command(subcommand)]
    Eligibility(EligibilityCommand),
    /// The programme's rules, version by version.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Subsidised lines (operators; ICT reads).
    #[command(subcommand)]
    Enrollments(EnrollmentCommand),
    /// Monthly lists of supported lines (operators).
    #[command(subcommand)]
    Reports(reports::ReportsCommand),
    /// Monthly lists after submission: figures, discrepancies, confirmation (ICT), export.
    #[command(subcommand)]
    Reconciliation(reports::ReconciliationCommand),
    /// Tablets and smartphones for households: the decision, the list, its approval, hand-overs.
    #[command(subcommand)]
    Devices(devices::DevicesCommand),
    /// The audit trail (ICT): who did what, the chain check, an export for outside auditors.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Inspections of localities and operators (ICT): team, findings and follow-up, samples.
    #[command(subcommand)]
    Inspections(inspections::InspectionsCommand),
    /// The programme's figures for a month: by category and by operator, the public table, files.
    #[command(subcommand)]
    Stats(stats::StatsCommand),
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
    },
    /// Who the hub takes this certificate to be.
    Whoami,
}

#[derive(Subcommand)]
enum EligibilityCommand {
    /// Whether a household is entitled to support on a date, and why not when it is not.
    Check {
        #[command(flatten)]
        key: CheckKey,
        /// YYYY-MM-DD; today when left out.
        #[arg(long, value_name = "DATE")]
        as_of: Option<String>,
    },
    /// A decision given earlier, by its id.
    Decision {
        /// The id the decision was given with.
        id: String,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct CheckKey {
    /// A member's 12-digit citizen ID (CCCD).
    #[arg(value_name = "CITIZEN_ID")]
    citizen_id: Option<String>,
    /// The household code instead.
    #[arg(long, value_name = "CODE")]
    household: Option<String>,
    /// The poor / near-poor household certificate number instead, as printed.
    #[arg(long, value_name = "NUMBER")]
    certificate: Option<String>,
}

#[derive(Subcommand)]
enum EnrollmentCommand {
    /// Enrols a subsidised line for an eligible household.
    Enroll {
        #[command(flatten)]
        line: Line,
    },
    /// Takes a household's line over from another operator, on its written request.
    Transfer {
        #[command(flatten)]
        line: Line,
        /// The reference of the household's written request.
        #[arg(long)]
        reference: String,
    },
    /// Ends one of this operator's enrolments.
    End {
        /// The enrolment id.
        id: String,
        /// First day without support (YYYY-MM-DD); today when left out.
        #[arg(long, value_name = "DATE")]
        date: Option<String>,
        #[arg(long, value_enum)]
        reason: EndReasonArg,
        #[arg(long, default_value = "")]
        note: String,
        /// Idempotency key: the same key repeats the write harmlessly.
        #[arg(long)]
        key: String,
    },
    /// Enrolments: this operator's own (ICT: everyone's).
    List {
        #[arg(long, value_name = "CODE")]
        household: Option<String>,
        /// Only enrolments running on this date.
        #[arg(long, value_name = "DATE")]
        active_on: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Args)]
struct Line {
    #[arg(long, value_name = "CODE")]
    household: String,
    /// The subscriber's citizen ID (a member of the household).
    #[arg(long, value_name = "ID")]
    subscriber: String,
    #[arg(long)]
    phone: String,
    #[arg(long, value_enum, default_value = "mobile")]
    service: ServiceArg,
    /// First day of support (YYYY-MM-DD); today when left out.
    #[arg(long, value_name = "DATE")]
    start: Option<String>,
    /// Idempotency key: the same key repeats the write harmlessly.
    #[arg(long)]
    key: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum ServiceArg {
    Mobile,
    FixedBroadband,
}

impl From<ServiceArg> for proto::SupportedService {
    fn from(s: ServiceArg) -> Self {
        match s {
            ServiceArg::Mobile => proto::SupportedService::Mobile,
            ServiceArg::FixedBroadband => proto::SupportedService::FixedBroadband,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum EndReasonArg {
    HouseholdRequest,
    NoLongerEligible,
    NonUsage,
    Other,
}

impl From<EndReasonArg> for proto::EnrollmentEndReason {
    fn from(r: EndReasonArg) -> Self {
        match r {
            EndReasonArg::HouseholdRequest => proto::EnrollmentEndReason::HouseholdRequest,
            EndReasonArg::NoLongerEligible => proto::EnrollmentEndReason::NoLongerEligible,
            EndReasonArg::NonUsage => proto::EnrollmentEndReason::NonUsage,
            EndReasonArg::Other => proto::EnrollmentEndReason::Other,
        }
    }
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// The version in force on a date.
    Show {
        /// YYYY-MM-DD; today when left out.
        #[arg(long, value_name = "DATE")]
        as_of: Option<String>,
    },
    /// Every version, oldest first.
    List,
}

#[derive(Subcommand)]
enum HouseholdCommand {
    /// Pushes a CSV file of household records as one batch, applied whole or not at all.
    Push(push::PushArgs),
    /// A household as it was on a date.
    Get {
        /// The household code.
        code: String,
        /// YYYY-MM-DD; today when left out.
        #[arg(long, value_name = "DATE")]
        as_of: Option<String>,
    },
    /// Every state a household has been in, oldest first.
    History {
        /// The household code.
        code: String,
    },
    /// Households by a member's citizen ID or by certificate number.
    Find {
        #[command(flatten)]
        key: FindKey,
        /// YYYY-MM-DD; today when left out.
        #[arg(long, value_name = "DATE")]
        as_of: Option<String>,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct FindKey {
    /// A member's 12-digit citizen ID (CCCD).
    #[arg(long, value_name = "ID")]
    citizen_id: Option<String>,
    /// The poor / near-poor household certificate number, as printed.
    #[arg(long, value_name = "NUMBER")]
    certificate: Option<String>,
}

#[derive(Subcommand)]
enum BatchCommand {
    /// The receipt of a batch.
    Get {
        /// The batch id given when it was pushed.
        id: String,
    },
    /// Receipts, newest first.
    List {
        /// How many to show at most.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

/// A batch's kind, as typed on the command line.
#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    /// Changes to some households.
    Delta,
    /// The complete list of a review: households missing from it are removed.
    Snapshot,
}

impl From<Kind> for proto::BatchKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Delta => proto::BatchKind::Delta,
            Kind::Snapshot => proto::BatchKind::Snapshot,
        }
    }
}

/// Why a command failed.
enum Failure {
    /// The hub refused or failed the call, or could not be reached.
    Hub(Error),
    /// Anything else, worded for the user.
    Message(String),
    /// Already printed.
    Reported,
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Failure::Hub(err)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            match failure {
                Failure::Hub(err) => report(&err, |_| None),
                Failure::Message(message) => eprintln!("error: {message}"),
                Failure::Reported => {}
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let connection = cli.connection;
    match cli.command {
        Command::Households(HouseholdCommand::Push(args)) => push::run(&connection, args).await,
        Command::Households(HouseholdCommand::Get { code, as_of }) => {
            let version = connect(&connection).await?.get_household(&code, as_of.as_deref().unwrap_or("")).await?;
            show::version(&version);
            Ok(())
        }
        Command::Households(HouseholdCommand::History { code }) => {
            let history = connect(&connection).await?.household_history(&code).await?;
            show::history(&history);
            Ok(())
        }
        Command::Households(HouseholdCommand::Find { key, as_of }) => {
            let client = connect(&connection).await?;
            let as_of = as_of.as_deref().unwrap_or("");
            let found = match (&key.citizen_id, &key.certificate) {
                (Some(id), _) => client.find_by_citizen_id(id, as_of).await?,
                (None, Some(number)) => client.find_by_certificate(number, as_of).await?,
                (None, None) => unreachable!("clap requires one of the two"),
            };
            show::found(&found);
            Ok(())
        }
        Command::Batches(BatchCommand::Get { id }) => {
            show::receipt(&connect(&connection).await?.get_batch(&id).await?);
            Ok(())
        }
        Command::Batches(BatchCommand::List { limit }) => list_batches(&connect(&connection).await?, limit).await,
        Command::Eligibility(EligibilityCommand::Check { key, as_of }) => {
            use proto::check_eligibility_request::Key;
            let key = match (key.citizen_id, key.household, key.certificate) {
                (Some(id), _, _) => Key::CitizenId(id),
                (None, Some(code), _) => Key::HouseholdCode(code),
                (None, None, Some(number)) => Key::CertificateNumber(number),
                (None, None, None) => unreachable!("clap requires one of the three"),
            };
            let client = connect(&connection).await?;
            show::decision(&client.check_eligibility(key, as_of.as_deref().unwrap_or("")).await?);
            Ok(())
        }
        Command::Eligibility(EligibilityCommand::Decision { id }) => {
            show::decision(&connect(&connection).await?.get_decision(&id).await?);
            Ok(())
        }
        Command::Policy(PolicyCommand::Show { as_of }) => {
            show::policy(&connect(&connection).await?.get_policy(as_of.as_deref().unwrap_or("")).await?);
            Ok(())
        }
        Command::Policy(PolicyCommand::List) => {
            show::policies(&connect(&connection).await?.list_policy_versions().await?);
            Ok(())
        }
        Command::Enrollments(command) => enrollments(&connect(&connection).await?, command).await,
        Command::Reports(command) => reports::reports(&connection, command).await,
        Command::Reconciliation(command) => reports::reconciliation(&connect(&connection).await?, command).await,
        Command::Devices(command) => devices::devices(&connection, command).await,
        Command::Audit(command) => audit::audit(&connect(&connection).await?, command).await,
        Command::Inspections(command) => inspections::inspections(&connect(&connection).await?, command).await,
        Command::Stats(command) => stats::stats(&connection, command).await,
        Command::Watch { cursor, cursor_file, once } => {
            watch(&connect(&connection).await?, cursor, cursor_file, once).await
        }
        Command::Whoami => {
            show::who_am_i(&connect(&connection).await?.who_am_i().await?);
            Ok(())
        }
    }
}

async fn enrollments(client: &Client, command: EnrollmentCommand) -> Result<(), Failure> {
    match command {
        EnrollmentCommand::Enroll { line } => {
            let e = client
                .enroll(proto::EnrollRequest {
                    idempotency_key: line.key,
                    household_code: line.household,
                    subscriber_citizen_id: line.subscriber,
                    phone_number: line.phone,
                    service: proto::SupportedService::from(line.service).into(),
                    start_date: line.start.unwrap_or_default(),
                })
                .await?;
            show::enrollments(&[e]);
        }
        EnrollmentCommand::Transfer { line, reference } => {
            let moved = client
                .transfer(proto::TransferRequest {
                    idempotency_key: line.key,
                    household_code: line.household,
                    subscriber_citizen_id: line.subscriber,
                    phone_number: line.phone,
                    service: proto::SupportedService::from(line.service).into(),
                    start_date: line.start.unwrap_or_default(),
                    request_reference: reference,
                })
                .await?;
            show::enrollments(moved.enrollment.as_slice());
            outln!("the line with the other operator ends on {}", moved.previous_end_date);
        }
        EnrollmentCommand::End { id, date, reason, note, key } => {
            let e = client
                .deenroll(proto::DeenrollRequest {
                    idempotency_key: key,
                    enrollment_id: id,
                    end_date: date.unwrap_or_default(),
                    reason: proto::EnrollmentEndReason::from(reason).into(),
                    note,
                })
                .await?;
            show::enrollments(&[e]);
        }
        EnrollmentCommand::List { household, active_on, limit } => {
            let mut all = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = client
                    .list_enrollments(proto::ListEnrollmentsRequest {
                        household_code: household.clone().unwrap_or_default(),
                        active_on: active_on.clone().unwrap_or_default(),
                        operator: String::new(),
                        page_size: i32::try_from(limit - all.len()).unwrap_or(i32::MAX),
                        page_token,
                    })
                    .await?;
                all.extend(page.enrollments);
                page_token = page.next_page_token;
                if page_token.is_empty() || all.len() >= limit {
                    break;
                }
            }
            show::enrollments(&all);
        }
    }
    Ok(())
}

async fn watch(client: &Client, cursor: Option<String>, file: Option<PathBuf>, once: bool) -> Result<(), Failure> {
    use futures_util::StreamExt;
    let saved = file.as_ref().and_then(|f| std::fs::read_to_string(f).ok()).map(|s| s.trim().to_owned());
    let mut cursor = cursor.or(saved).unwrap_or_default();
    let mut feed = client.watch_changes(&cursor, 0).await?;
    while let Some(message) = feed.next().await {
        let message = message?;
        if message.events.is_empty() {
            if once {
                break;
            }
            continue;
        }
        for e in &message.events {
            show::change(e);
            cursor.clone_from(&e.cursor);
        }
        if let Some(f) = &file {
            std::fs::write(f, &cursor)
                .map_err(|e| Failure::Message(format!("cannot save the cursor in {}: {e}", f.display())))?;
        }
    }
    eprintln!("cursor: {cursor}");
    Ok(())
}

async fn list_batches(client: &Client, limit: usize) -> Result<(), Failure> {
    let mut batches = Vec::new();
    let mut page_token = String::new();
    loop {
        let page_size = i32::try_from(limit - batches.len()).unwrap_or(i32::MAX);
        let page = client.list_batches(proto::ListBatchesRequest { page_size, page_token }).await?;
        batches.extend(page.batches);
        page_token = page.next_page_token;
        if page_token.is_empty() || batches.len() >= limit {
            break;
        }
    }
    batches.truncate(limit);
    show::batches(&batches, !page_token.is_empty());
    Ok(())
}

/// Connects with the certificate the command line names; `timeout` replaces the SDK's
/// per-call deadline.
async fn connect(c: &Connection) -> Result<Client, Failure> {
    let builder = Client::builder(&c.endpoint);
    let builder = match (&c.tls_dir, &c.org, &c.cert, &c.key, &c.ca) {
        (Some(dir), Some(org), None, None, None) => builder.dev_folder(dir, org)?,
        (None, None, Some(cert), Some(key), Some(ca)) => builder.identity_files(cert, key)?.ca_file(ca)?,
        _ => Cli::command()
            .error(
                ErrorKind::ArgumentConflict,
                "give either --tls-dir DIR --org CODE, or --cert FILE --key FILE --ca FILE",
            )
            .exit(),
    };
    Ok(builder.connect().await?)
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
        Cli::command().debug_assert();
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
