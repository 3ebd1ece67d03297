//! The `telesub` command line. Tests and tooling rely on these command and flag names.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use clap::{Args, Parser, Subcommand};
use telesub_client::{CsvWriter, MonthlyLineWriter};
use telesub_proto::v1 as proto;

use telesub_server::{
    ErrorChain, audit,
    config::{LogFormat, MetricsOverrides, Overrides, Settings, TlsOverrides},
    domain::{
        clock::Clock,
        identity::Identities,
        member::{DisplayName, NewMember, OrgCode, Role},
        members::MemberRegistry,
    },
    pki::{self, OrgSpec, PersonSpec},
    startup::{self, Hub},
    storage::backup,
    telemetry,
};

use crate::{
    demo,
    generator::HouseholdGenerator,
    monthly_generator::{MonthGenerator, Shares},
};

#[derive(Debug, Parser)]
#[command(name = "telesub", version, about = "The data-exchange hub of the telecom subsidy programme")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the hub over mutual TLS until Ctrl-C or SIGTERM (SIGHUP rereads certificates and CRLs).
    Serve(ServeArgs),
    /// Apply the database migrations and exit.
    Migrate(StoreArgs),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Development certificates (in production the province's CA issues them).
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Create the hub's first ICT member; later members are registered through the API.
    Bootstrap(BootstrapArgs),
    /// Set up and run a hub in a fresh folder, drive it through the client SDK, print a summary.
    Demo(DemoArgs),
    /// A consistent copy of an embedded (SQLite) hub's database, taken while it serves; a
    /// PostgreSQL hub is copied with pg_dump (README, Operations).
    Backup(BackupArgs),
    /// Put a backup in place as a new database (never over an existing one).
    Restore(RestoreArgs),
    /// Synthetic data for demos, tests and benchmarks.
    #[command(subcommand)]
    Gen(GenCommand),
}

/// Where the configuration and the database are.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// TOML configuration file.
    #[arg(long, env = "TELESUB_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database URL: sqlite://PATH (created when missing) or postgres://USER:PASSWORD@HOST/DB.
    #[arg(long)]
    pub database: Option<String>,
    /// Log format.
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The file to write the copy to; it must not exist yet.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup (a file `telesub backup` wrote).
    #[arg(long)]
    pub from: PathBuf,
    /// Where the database goes: sqlite://PATH, where nothing is yet.
    #[arg(long)]
    pub database: String,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The hub's verifier key (`telesub audit public-key`), or a file holding it; by default
    /// the configured signing key's.
    #[arg(long)]
    pub public_key: Option<String>,
    /// A checkpoint kept earlier (a signed note, as `telesub-cli audit checkpoint --save`
    /// writes it): the records must still give its root. Repeatable.
    #[arg(long = "checkpoint")]
    pub checkpoints: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on, e.g. 0.0.0.0:50051 (port 0 picks a free port).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Certificate folder from `telesub pki init`: its CA, server certificate and CRL are
    /// used, and the members it lists are registered when missing.
    #[arg(long)]
    pub tls_dir: Option<PathBuf>,
    /// Serve Prometheus' metrics (/metrics) and health answers (/health/live, /health/ready)
    /// in plain HTTP at this address, e.g. 127.0.0.1:9464 (config `metrics.listen`).
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the whole trail: the hash chain from the first record, what each call stored
    /// beside its record, the Merkle tree, the signed checkpoints (stored, and any given), and
    /// the append-only guards; name the first broken record. Exit 1 if anything fails.
    Verify(VerifyArgs),
    /// Print the verifier key checkpoints are checked with (`<name>+<key id>+<key>`).
    PublicKey {
        #[arg(long, env = "TELESUB_CONFIG")]
        config: Option<PathBuf>,
        /// The certificate folder whose audit-signing.key to read.
        #[arg(long)]
        tls_dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Write a development CA, a server certificate and client certificates into DIR.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// An organisation as CODE:ROLE[:UNIT], e.g. DOICT:ICT or GIANGHIA:LOCALITY:660. Repeat per organisation.
        #[arg(long = "org", required = true)]
        orgs: Vec<OrgSpec>,
        /// A person of an organisation as CODE:LOGIN:FULL NAME, e.g. "DOICT:lan:Nguyễn Thị Lan":
        /// a certificate whose subject names the person, which the hub keeps beside the
        /// organisation in its audit trail and decisions. Repeatable.
        #[arg(long = "person")]
        people: Vec<PersonSpec>,
    },
    /// Revoke organisations' client certificates: adds them to DIR/crl.pem.
    Revoke {
        #[arg(long)]
        dir: PathBuf,
        /// Organisation code whose certificate in DIR/clients/ is revoked. Repeatable.
        #[arg(long = "org", required = true)]
        orgs: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct BootstrapArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Organisation code of the ICT department, as in its certificate.
    #[arg(long)]
    pub code: String,
    /// Display name, e.g. "Sở Thông tin và Truyền thông tỉnh Đắk Nông".
    #[arg(long)]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Working folder (created; must not exist yet). Default: a new folder under the system's temp folder.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum GenCommand {
    /// Realistic synthetic households of Đắk Nông's communes as a CSV household list (docs/CSV.md);
    /// the same count and seed always give the same file.
    Households(GenHouseholdsArgs),
    /// One operator's monthly list (docs/CSV.md) for the households `gen households` gives with
    /// the same count and seed, with a chosen share of each kind of discrepancy; prints the
    /// figures the hub must find in it.
    Month(GenMonthArgs),
}

#[derive(Debug, Args)]
pub struct GenMonthArgs {
    /// How many households the register has (as given to `gen households`).
    #[arg(long)]
    pub households: usize,
    /// Seed of the register (as given to `gen households`).
    #[arg(long)]
    pub seed: u64,
    /// The month, YYYY-MM.
    #[arg(long)]
    pub period: String,
    /// The operators the households are spread over, in order (household i goes to operator
    /// i mod their number).
    #[arg(long, value_delimiter = ',', default_value = "VNPT,VIETTEL")]
    pub operators: Vec<String>,
    /// Whose list to write.
    #[arg(long)]
    pub operator: String,
    /// The day the register and its enrolments start (before the month).
    #[arg(long, default_value = "2025-01-01")]
    pub register_start: String,
    /// Per thousand covered households: claims over the monthly amount.
    #[arg(long, default_value_t = 10)]
    pub over_cap: u32,
    /// … claims from a number no enrolment holds.
    #[arg(long, default_value_t = 10)]
    pub not_enrolled: u32,
    /// … claims naming someone who is not a member.
    #[arg(long, default_value_t = 10)]
    pub unknown_subscriber: u32,
    /// … households claimed twice in the list.
    #[arg(long, default_value_t = 10)]
    pub duplicate_within: u32,
    /// … households claimed by the next operator too.
    #[arg(long, default_value_t = 10)]
    pub duplicate_across: u32,
    /// … enrolled subscribers not claimed, with a reason.
    #[arg(long, default_value_t = 20)]
    pub unclaimed: u32,
    /// CSV file to write (replaced when present). Default: standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the enrolments the lines assume (operator, household, subscriber, number,
    /// start) as CSV to this file, for loading them into a hub.
    #[arg(long, value_name = "FILE")]
    pub enrollments: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GenHouseholdsArgs {
    /// How many households.
    #[arg(long)]
    pub count: usize,
    /// Seed of the generator.
    #[arg(long)]
    pub seed: u64,
    /// CSV file to write (replaced when present). Default: standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Where a copy's audit trail ends, as `backup` and `restore` print it.
fn trail_end(end: &backup::TrailEnd) -> String {
    format!(
        "audit trail to record {} (hash {}), last checkpoint of {} records",
        end.records,
        if end.last_hash.is_empty() { "-" } else { &end.last_hash },
        end.checkpoint
    )
}

fn settings(store: &StoreArgs, overrides: Overrides) -> Result<Settings, Box<dyn std::error::Error>> {
    let overrides = Overrides { database_url: store.database.clone(), log_format: store.log_format, ..overrides };
    let settings = Settings::load(store.config.as_deref(), &overrides)?;
    telemetry::init_with(settings.log_format, &settings.log_filter, &settings.traces)?;
    Ok(settings)
}

/// Runs a parsed command line, printing to standard output; the exit code is 0 on success,
/// 1 on failure (a broken audit chain included).
pub async fn run(cli: Cli) -> ExitCode {
    run_with(cli, &mut std::io::stdout()).await
}

/// Runs a parsed command line, printing results to `out` and errors to standard error.
pub async fn run_with(cli: Cli, out: &mut (dyn Write + Send)) -> ExitCode {
    match dispatch(cli.command, out).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("telesub: {}", ErrorChain(&*err));
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command, out: &mut (dyn Write + Send)) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match command {
        Command::Serve(args) => {
            let overrides = Overrides {
                listen: args.listen,
                tls: args.tls_dir.map(|dir| TlsOverrides { dir }),
                metrics: args.metrics_listen.map(|listen| MetricsOverrides { listen }),
                ..Overrides::default()
            };
            let settings = settings(&args.store, overrides)?;
            let hub = Hub::build(settings).await?;
            writeln!(out, "telesub listening on {}", hub.local_addr())?;
            if let Some(addr) = hub.metrics_addr() {
                writeln!(out, "metrics and health on http://{addr}/metrics")?;
            }
            out.flush()?;
            let ran = hub.run(startup::shutdown_signal()).await;
            telemetry::flush();
            ran?;
        }
        Command::Migrate(args) => {
            let settings = settings(&args, Overrides::default())?;
            let store = startup::open_store(&settings).await?;
            tracing::info!(backend = store.backend(), database = %settings.database_url, "migrations applied");
            writeln!(out, "migrations applied ({} at {})", store.backend(), settings.database_url)?;
        }
        Command::Audit(AuditCommand::Verify(args)) => {
            let settings = settings(&args.store, Overrides::default())?;
            let key = match &args.public_key {
                Some(text) => Some(audit::checkpoint::VerifierKey::read(text)?),
                None => settings.audit_key().ok().map(|k| k.verifier()),
            };
            let mut kept = Vec::new();
            for path in &args.checkpoints {
                kept.push(std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?);
            }
            if !kept.is_empty() && key.is_none() {
                return Err("a kept checkpoint is checked with the hub's verifier key: give --public-key".into());
            }
            let store = startup::open_store(&settings).await?;
            let report = audit::verify_with(store.as_ref(), &audit::VerifyOptions { key, kept }).await?;
            if !report.guards_missing.is_empty() {
                writeln!(
                    out,
                    "append-only guards MISSING or disabled: {} (the trail may have been changed)",
                    report.guards_missing.join(", ")
                )?;
            }
            if report.purged > 0 {
                writeln!(
                    out,
                    "records whose calls' decisions were purged under the retention policy: {} \
                     (each held to the purge call that marked it)",
                    report.purged
                )?;
            }
            match &report.first_break {
                None if report.guards_missing.is_empty() => writeln!(
                    out,
                    "audit trail intact: {} records, last record {}, last hash {}, {} checkpoints checked",
                    report.records, report.last_seq, report.last_hash, report.checkpoints
                )?,
                None => return Ok(ExitCode::FAILURE),
                Some(brk) => {
                    writeln!(out, "audit trail BROKEN at record {}: {brk}", brk.seq())?;
                    writeln!(out, "records before it verified: {}", report.records)?;
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        Command::Audit(AuditCommand::PublicKey { config, tls_dir }) => {
            let overrides = Overrides { tls: tls_dir.map(|dir| TlsOverrides { dir }), ..Overrides::default() };
            let settings = Settings::load(config.as_deref(), &overrides)?;
            writeln!(out, "{}", settings.audit_key()?.verifier().to_text())?;
        }
        Command::Pki(PkiCommand::Init { dir, orgs, people }) => {
            let report = pki::init_with_people(&dir, &orgs, &people)?;
            let ca = if report.created_ca { "created" } else { "kept" };
            writeln!(out, "{}: CA {ca}; certificates issued for: {}", dir.display(), list(&report.issued))?;
            if !report.kept.is_empty() {
                writeln!(out, "already present, kept: {}", list(&report.kept))?;
            }
            writeln!(out, "for a browser: {}/clients/CODE.p12, its password in CODE.p12.password", dir.display())?;
        }
        Command::Pki(PkiCommand::Revoke { dir, orgs }) => {
            let crl = pki::revoke(&dir, &orgs)?;
            writeln!(
                out,
                "{} now revokes: {} (send SIGHUP to a running hub to reload)",
                crl.display(),
                orgs.join(", ")
            )?;
        }
        Command::Bootstrap(args) => {
            let settings = settings(&args.store, Overrides::default())?;
            let store = startup::open_store(&settings).await?;
            let identities = Arc::new(Identities::new(store.clone(), Duration::ZERO, Clock::system()));
            let new = NewMember {
                code: OrgCode::parse(&args.code).map_err(|e| format!("--code: {e}"))?,
                display_name: DisplayName::parse(&args.name).map_err(|e| format!("--name: {e}"))?,
                role: Role::Ict,
                unit: None,
            };
            let member = MemberRegistry::new(store, identities, Clock::system()).bootstrap(new).await?;
            writeln!(out, "created ICT member {} ({})", member.code, member.display_name.as_str())?;
        }
        Command::Demo(args) => demo::run(args.dir, out).await?,
        Command::Backup(args) => {
            let settings = settings(&args.store, Overrides::default())?;
            let Some(path) = backup::sqlite_path(&settings.database_url.0) else {
                return Err(
                    "a PostgreSQL hub is copied with pg_dump and pg_restore (README: Operations, backup)".into()
                );
            };
            let bytes = backup::sqlite_backup(&path, &args.out).await?;
            let end = backup::sqlite_trail_end(&args.out).await?;
            writeln!(out, "backup of {} written to {}: {bytes} bytes", path.display(), args.out.display())?;
            writeln!(out, "{}", trail_end(&end))?;
        }
        Command::Restore(args) => {
            let Some(path) = backup::sqlite_path(&args.database) else {
                return Err("restore writes an embedded (sqlite://) database; pg_restore a PostgreSQL one".into());
            };
            let bytes = backup::sqlite_restore(&args.from, &path).await?;
            let end = backup::sqlite_trail_end(&path).await?;
            writeln!(out, "{} restored to {}: {bytes} bytes", args.from.display(), path.display())?;
            writeln!(out, "{}", trail_end(&end))?;
            writeln!(out, "check it with: telesub audit verify --database {}", args.database)?;
        }
        Command::Gen(GenCommand::Households(args)) => gen_households(&args, out)?,
        Command::Gen(GenCommand::Month(args)) => gen_month(&args, out)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the households as CSV to `--out` or `out`, and a summary to standard error.
fn gen_households(args: &GenHouseholdsArgs, out: &mut (dyn Write + Send)) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let households = HouseholdGenerator::reference(args.seed).take(args.count);
    let (members, to) = match &args.out {
        Some(path) => {
            let file = File::create(path).map_err(|e| format!("--out {}: {e}", path.display()))?;
            let members = write_households(households, file).map_err(|e| format!("--out {}: {e}", path.display()))?;
            (members, path.display().to_string())
        }
        None => (write_households(households, out)?, "standard output".to_owned()),
    };
    eprintln!(
        "telesub: {} households ({members} members, seed {}) written to {to} in {:.1} s",
        args.count,
        args.seed,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Writes one operator's month as CSV to `--out` or `out`, and the figures the hub must find
/// to standard error.
fn gen_month(args: &GenMonthArgs, out: &mut (dyn Write + Send)) -> Result<(), Box<dyn std::error::Error>> {
    let start = telesub_server::domain::household::parse_date(&args.register_start)
        .map_err(|e| format!("--register-start: {e}"))?;
    let shares = Shares {
        over_cap: args.over_cap,
        not_enrolled: args.not_enrolled,
        unknown_subscriber: args.unknown_subscriber,
        duplicate_within: args.duplicate_within,
        duplicate_across: args.duplicate_across,
        unclaimed: args.unclaimed,
    };
    let month = MonthGenerator::new(args.seed, args.households, args.operators.clone(), &args.period, start, shares)?;
    if !args.operators.contains(&args.operator) {
        return Err(
            format!("--operator {} is not among --operators {}", args.operator, args.operators.join(",")).into()
        );
    }
    let write = |w: &mut dyn Write| -> io::Result<()> {
        let mut csv = MonthlyLineWriter::new(BufWriter::with_capacity(1 << 16, w))?;
        for line in month.lines(&args.operator) {
            csv.write(&line)?;
        }
        csv.finish()?.flush()
    };
    match &args.out {
        Some(path) => {
            let mut file = File::create(path).map_err(|e| format!("--out {}: {e}", path.display()))?;
            write(&mut file).map_err(|e| format!("--out {}: {e}", path.display()))?;
        }
        None => write(out)?,
    }
    if let Some(path) = &args.enrollments {
        let failed = |e: &dyn std::fmt::Display| format!("--enrollments {}: {e}", path.display());
        let file = File::create(path).map_err(|e| failed(&e))?;
        let mut w = BufWriter::new(file);
        writeln!(w, "operator,household_code,subscriber_citizen_id,phone_number,start_date\r")
            .map_err(|e| failed(&e))?;
        for e in month.enrollments() {
            writeln!(
                w,
                "{},{},{},{},{}\r",
                e.operator, e.household_code, e.subscriber_citizen_id, e.phone_number, e.start_date
            )
            .map_err(|e| failed(&e))?;
        }
        w.flush().map_err(|e| failed(&e))?;
    }
    let e = month.expected(&args.operator);
    eprintln!(
        "telesub: {} lines of {} for {} ({} claims, {} unclaimed); the hub must find {} OK, {} VND claimed, {} VND \
         confirmable, {} enrolments not reported, and by code: {}",
        e.lines,
        args.operator,
        args.period,
        e.claims,
        e.unclaimed,
        e.lines_ok,
        e.amount_claimed,
        e.amount_confirmable,
        e.enrollments_not_reported,
        e.by_code.iter().map(|(c, n)| format!("{c} {n}")).collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

/// Writes records as CSV through a buffer; returns the number of member rows.
fn write_households(records: impl Iterator<Item = proto::HouseholdRecord>, w: impl Write) -> io::Result<u64> {
    let mut csv = CsvWriter::new(BufWriter::with_capacity(1 << 16, w))?;
    let mut members = 0;
    for record in records {
        if let Some(proto::household_record::Change::Upsert(data)) = &record.change {
            members += data.members.len() as u64;
        }
        csv.write(&record)?;
    }
    csv.finish()?.flush()?;
    Ok(members)
}

fn list(items: &[String]) -> String {
    if items.is_empty() { "none".to_owned() } else { items.join(", ") }
}
