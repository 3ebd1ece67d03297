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
#[path = "telesub_cli/members.rs"]
mod members;
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
    /// Saves the hub's signed receipt of every write in DIR, as DIR/RECORD.receipt (the audit
    /// record's number); `audit receipt prove` adds its proof, `audit receipt verify` checks it.
    #[arg(long, global = true, value_name = "DIR", env = "TELESUB_RECEIPTS")]
    receipts: Option<PathBuf>,
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
        #[arg(long, value_name = "KEY")]
        idempotency_key: String,
    },
    /// Enrols the lines of a CSV file of enrolments (docs/CSV.md), the rows of this operator;
    /// a row enrolled before (the same row again) is harmless.
    Import {
        /// `operator,household_code,subscriber_citizen_id,phone_number,start_date`, as
        /// `telesub gen month --enrollments FILE` writes it.
        file: PathBuf,
        #[arg(long, value_enum, default_value = "mobile")]
        service: ServiceArg,
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
    #[arg(long, value_name = "KEY")]
    idempotency_key: String,
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
    /// Every version, oldest first, withdrawn ones too.
    List,
    /// Withdraws a version that has not yet taken effect (ICT).
    Withdraw {
        version: i64,
        /// Why, for the record.
        #[arg(long)]
        reason: String,
    },
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
    let connection = cli.connection.clone();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            match failure {
                Failure::Hub(err) => report(&explained(err, &connection).await, |_| None),
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
        Command::Policy(PolicyCommand::Withdraw { version, reason }) => {
            let withdrawn = connect(&connection).await?.withdraw_policy_version(version, &reason).await?;
            println!("version {} from {} withdrawn: {reason}", withdrawn.version, withdrawn.valid_from);
            Ok(())
        }
        Command::Enrollments(command) => enrollments(&connect(&connection).await?, command).await,
        Command::Reports(command) => reports::reports(&connection, command).await,
        Command::Reconciliation(command) => reports::reconciliation(&connect(&connection).await?, command).await,
        Command::Devices(command) => devices::devices(&connection, command).await,
        Command::Audit(command) => audit::audit(&connection, command).await,
        Command::Inspections(command) => inspections::inspections(&connect(&connection).await?, command).await,
        Command::Stats(command) => stats::stats(&connection, command).await,
        Command::Members(command) => members::members(&connect(&connection).await?, command).await,
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
                    idempotency_key: line.idempotency_key,
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
                    idempotency_key: line.idempotency_key,
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
        EnrollmentCommand::End { id, date, reason, note, idempotency_key } => {
            let e = client
                .deenroll(proto::DeenrollRequest {
                    idempotency_key,
                    enrollment_id: id,
                    end_date: date.unwrap_or_default(),
                    reason: proto::EnrollmentEndReason::from(reason).into(),
                    note,
                })
                .await?;
            show::enrollments(&[e]);
        }
        EnrollmentCommand::Import { file, service } => return import_enrollments(client, &file, service).await,
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

/// The columns of a file of enrolments.
const ENROLMENT_COLUMNS: [&str; 5] =
    ["operator", "household_code", "subscriber_citizen_id", "phone_number", "start_date"];

async fn import_enrollments(client: &Client, file: &std::path::Path, service: ServiceArg) -> Result<(), Failure> {
    use futures_util::StreamExt;
    let me = client.who_am_i().await?.member.unwrap_or_default().code;
    let cannot = |e: &dyn std::fmt::Display| Failure::Message(format!("{}: {e}", file.display()));
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_path(file).map_err(|e| cannot(&e))?;
    let header = reader.headers().map_err(|e| cannot(&e))?.clone();
    if header.iter().collect::<Vec<_>>() != ENROLMENT_COLUMNS {
        return Err(cannot(&format!("the header must be {}", ENROLMENT_COLUMNS.join(","))));
    }
    let mut mine = Vec::new();
    let mut others = 0;
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| cannot(&e))?;
        let line = i + 2;
        let cell = |n: usize| record.get(n).unwrap_or_default().to_owned();
        if cell(0) != me {
            others += 1;
            continue;
        }
        let (household, phone, start) = (cell(1), cell(3), cell(4));
        let request = proto::EnrollRequest {
            // The row itself is the key: importing the file again repeats nothing.
            idempotency_key: format!("import:{household}:{phone}:{start}"),
            household_code: household,
            subscriber_citizen_id: cell(2),
            phone_number: phone,
            service: proto::SupportedService::from(service).into(),
            start_date: start,
        };
        mine.push((line, request));
    }
    // Rows the operator already holds exactly (enrolled by hand, or an earlier import under
    // another key) are left as they are.
    let mut held = std::collections::HashSet::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_enrollments(proto::ListEnrollmentsRequest { page_size: 1000, page_token, ..Default::default() })
            .await?;
        for e in page.enrollments {
            held.insert((e.household_code, e.subscriber_citizen_id, e.phone_number, e.start_date));
        }
        page_token = page.next_page_token;
        if page_token.is_empty() {
            break;
        }
    }
    let before = mine.len();
    mine.retain(|(_, r)| {
        let key =
            (r.household_code.clone(), r.subscriber_citizen_id.clone(), r.phone_number.clone(), r.start_date.clone());
        !held.contains(&key)
    });
    let already = before - mine.len();
    let total = mine.len();
    let mut refused = Vec::new();
    let mut results = futures_util::stream::iter(mine)
        .map(|(line, request)| async move {
            let household = request.household_code.clone();
            (line, household, client.enroll(request).await)
        })
        .buffer_unordered(16);
    while let Some((line, household, result)) = results.next().await {
        if let Err(e) = result {
            refused.push((line, household, e));
        }
    }
    refused.sort_by_key(|(line, _, _)| *line);
    for (line, household, e) in &refused {
        eprintln!("line {line}: household {household}: {e}");
    }
    outln!(
        "{} of {total} rows of {me} enrolled; {already} already enrolled, left as they were; {others} rows of \
         other operators left out",
        total - refused.len()
    );
    if refused.is_empty() { Ok(()) } else { Err(Failure::Message(format!("{} rows were refused", refused.len()))) }
}

async fn watch(client: &Client, cursor: Option<String>, file: Option<PathBuf>, once: bool) -> Result<(), Failure> {
    use futures_util::StreamExt;
    let saved = file.as_ref().and_then(|f| std::fs::read_to_string(f).ok()).map(|s| s.trim().to_owned());
    let start = cursor.or(saved).unwrap_or_default();
    let mut cursor = start.clone();
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
    match (cursor == start, start.is_empty()) {
        (true, true) => eprintln!("nothing new: no event yet about this operator's enrolled households"),
        (true, false) => eprintln!("nothing new since cursor {start}"),
        (false, _) => match &file {
            Some(f) => eprintln!("cursor: {cursor} (saved in {})", f.display()),
            None => eprintln!("cursor: {cursor}"),
        },
    }
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
        _ => Cli::command()
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
        "watch --once --cursor-file c",
        "whoami",
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
