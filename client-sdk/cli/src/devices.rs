//! `devices …`: tablets and smartphones for households, from the Ministry's decision to the
//! hand-overs and the list published on the communes' notice boards.
//!
//! ```text
//! telesub-cli --tls-dir ./dev-tls --org DOICT devices record 1234/QĐ-BTTTT --date 2025-03-01 \
//!     --tablets 40 --smartphones 60 --unit 660:15:25 --unit 661:25:35
//! telesub-cli --tls-dir ./dev-tls --org DOET devices nominate 1234/QĐ-BTTTT --reason "pupils" --file codes.txt
//! telesub-cli --tls-dir ./dev-tls --org DOICT devices propose 1234/QĐ-BTTTT
//! telesub-cli --tls-dir ./dev-tls --org DOICT devices amend 1234/QĐ-BTTTT remove 0066000123 --reason "moved away"
//! telesub-cli --tls-dir ./dev-tls --org DOICT devices submit 1234/QĐ-BTTTT
//! telesub-cli --tls-dir ./dev-tls --org UBND devices approve 1234/QĐ-BTTTT --approval-number 567/QĐ-UBND --date 2025-03-20
//! telesub-cli --tls-dir ./dev-tls --org DOICT devices handover 1234/QĐ-BTTTT 0066000124 --date 2025-04-02 \
//!     --received-by "Hoàng Văn Sáng" --device smartphone --imei 356938035643809
//! telesub-cli --tls-dir ./dev-tls --org DOICT devices publish 1234/QĐ-BTTTT --commune 24611 --format html
//! ```

use std::{io::Write, path::PathBuf};

use clap::{CommandFactory, Subcommand, ValueEnum, error::ErrorKind};
use futures_util::StreamExt;
use telesub_client::{Client, proto};

use crate::{
    Cli, Connection, Failure,
    exit::Exit,
    output::OutputArgs,
    progress,
    reports::save_file,
    show::{short, table, timestamp, vnd},
};

#[derive(Subcommand)]
pub(crate) enum DevicesCommand {
    /// Records the Ministry's allocation decision: devices per type, optionally split by unit (ICT).
    Record {
        /// The Ministry's decision number, e.g. 1234/QĐ-BTTTT.
        number: String,
        /// The decision's date.
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: String,
        #[arg(long, value_name = "N")]
        tablets: i64,
        #[arg(long, value_name = "N")]
        smartphones: i64,
        /// A district's or commune's share; repeat per unit. The shares add up to the totals.
        #[arg(long = "unit", value_name = "CODE:TABLETS:SMARTPHONES", value_parser = unit_quota)]
        units: Vec<proto::UnitQuota>,
        /// The cash alternative for a household that bought its own phone, in VND; by default
        /// the policy's.
        #[arg(long, value_name = "AMOUNT")]
        cash: Option<i64>,
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
    },
    /// Nominates households for a device, e.g. households with pupils (EDUCATION, ICT).
    Nominate {
        /// The allocation's decision number.
        number: String,
        /// Why these households; required.
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// A file of household codes, one a line (blank lines and lines starting with # are skipped).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Household codes.
        #[arg(value_name = "CODE", required_unless_present = "file")]
        codes: Vec<String>,
    },
    /// Draws up the list of recipients from the register, replacing any earlier draft (ICT).
    Propose {
        number: String,
        /// The register's date to select from; today when left out.
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<String>,
    },
    /// Adds a household to the draft list or takes one off, with a reason (ICT).
    Amend {
        number: String,
        #[command(subcommand)]
        change: AmendCommand,
    },
    /// Submits the draft list to the People's Committee (ICT).
    Submit { number: String },
    /// Approves a submitted list and freezes it (PROVINCE_COMMITTEE).
    Approve {
        number: String,
        /// The committee's decision approving the list.
        #[arg(long, value_name = "NUMBER")]
        approval_number: String,
        /// The date of that decision; hand-overs are recorded from it. Today when left out.
        #[arg(long, value_name = "YYYY-MM-DD")]
        date: Option<String>,
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
        /// Approve only if the list is still this one: the list digest that was reviewed.
        #[arg(long, value_name = "HEX")]
        digest: Option<String>,
    },
    /// Returns a submitted list to ICT with a note saying what to change (PROVINCE_COMMITTEE).
    Return {
        number: String,
        /// What to change; required.
        #[arg(long, value_name = "TEXT")]
        note: String,
    },
    /// Records that a household on an approved list received its device or the cash
    /// alternative (ICT; LOCALITY for its own unit).
    Handover(HandoverArgs),
    /// One allocation: status, figures, digests, progress per unit and amendments.
    Show {
        number: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Allocations, newest first.
    List {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// The households on an allocation's list, in rank order.
    Recipients {
        number: String,
        /// Only households living in this district or commune, or holding a place of its quota.
        #[arg(long, value_name = "CODE")]
        unit: Option<String>,
        #[arg(long, value_enum)]
        status: Option<RecipientStatusArg>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Saves an approved list as the public sees it: CSV, or one commune's HTML page.
    Publish {
        number: String,
        /// One commune only (required for HTML).
        #[arg(long, value_name = "CODE", required_if_eq("format", "html"))]
        commune: Option<String>,
        #[arg(long, value_enum, default_value = "csv")]
        format: PublishFormatArg,
        /// Where to save it (`-` for standard output); by default the name the hub suggests,
        /// in the current folder.
        #[arg(short, long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub(crate) enum AmendCommand {
    /// Adds a household to the draft list.
    Add {
        /// The household code.
        code: String,
        /// The device its place is for.
        #[arg(long, value_enum)]
        device: DeviceArg,
        /// Why; required.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Takes a household off the draft list.
    Remove {
        /// The household code.
        code: String,
        /// Why; required.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

/// A device with its IMEI (a smartphone, or a tablet with one) or serial number, or the cash
/// alternative for a household that bought its own phone.
#[derive(clap::Args)]
pub(crate) struct HandoverArgs {
    /// The allocation's decision number.
    number: String,
    /// The household code.
    household: String,
    /// The day of the hand-over.
    #[arg(long, value_name = "YYYY-MM-DD")]
    date: String,
    /// The person who signed for it.
    #[arg(long, value_name = "NAME")]
    received_by: String,
    /// The device handed over.
    #[arg(long, value_enum, required_unless_present = "cash", conflicts_with = "cash")]
    device: Option<DeviceArg>,
    /// The device's IMEI, 15 digits (required for a smartphone).
    #[arg(long, value_name = "IMEI", conflicts_with = "cash", required_if_eq("device", "smartphone"))]
    imei: Option<String>,
    /// The device's serial number (required for a tablet without an IMEI).
    #[arg(long, value_name = "SERIAL", conflicts_with = "cash")]
    serial: Option<String>,
    /// The cash alternative paid instead of a device, in VND.
    #[arg(long, value_name = "AMOUNT", requires_all = ["bought_on", "receipt"])]
    cash: Option<i64>,
    /// When the household bought its own phone.
    #[arg(long, value_name = "YYYY-MM-DD", requires = "cash")]
    bought_on: Option<String>,
    /// The payment voucher's number.
    #[arg(long, value_name = "REFERENCE", requires = "cash")]
    receipt: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum DeviceArg {
    Tablet,
    Smartphone,
}

impl From<DeviceArg> for proto::DeviceType {
    fn from(d: DeviceArg) -> Self {
        match d {
            DeviceArg::Tablet => proto::DeviceType::Tablet,
            DeviceArg::Smartphone => proto::DeviceType::Smartphone,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum RecipientStatusArg {
    /// Not yet handed over.
    NotYet,
    /// A device or the cash alternative handed over.
    HandedOver,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum PublishFormatArg {
    Csv,
    /// One commune's page for its notice board.
    Html,
}

/// `--unit CODE:TABLETS:SMARTPHONES`.
fn unit_quota(text: &str) -> Result<proto::UnitQuota, String> {
    let bad = || format!("{text:?} is not CODE:TABLETS:SMARTPHONES (e.g. 660:10:20)");
    let mut parts = text.split(':').map(str::trim);
    let (Some(code), Some(tablets), Some(smartphones), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if code.is_empty() {
        return Err(bad());
    }
    Ok(proto::UnitQuota {
        unit_code: code.to_owned(),
        tablets: tablets.parse().map_err(|_| bad())?,
        smartphones: smartphones.parse().map_err(|_| bad())?,
        unit_name: String::new(),
    })
}

/// Household codes from a file, one a line.
fn codes_in(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines()
        .map(|line| line.trim_start_matches('\u{feff}').trim())
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
}

/// Stops with a usage error of `devices SUBCOMMAND`, like clap's own (exit status 2).
fn usage(subcommand: &str, kind: ErrorKind, message: &str) -> ! {
    let mut cli = Cli::command();
    cli.build();
    let mut command =
        cli.find_subcommand("devices").and_then(|d| d.find_subcommand(subcommand)).cloned().unwrap_or(cli);
    command.error(kind, message).exit()
}

pub(crate) async fn devices(connection: &Connection, command: DevicesCommand) -> Result<(), Failure> {
    if let DevicesCommand::Handover(HandoverArgs {
        device: Some(DeviceArg::Tablet), imei: None, serial: None, ..
    }) = &command
    {
        usage("handover", ErrorKind::MissingRequiredArgument, "a tablet is recorded with its --serial or its --imei");
    }
    let client = &crate::connect(connection).await?;
    match command {
        DevicesCommand::Record { number, date, tablets, smartphones, units, cash, note } => {
            let allocation = client
                .record_allocation_decision(proto::RecordAllocationDecisionRequest {
                    decision_number: number,
                    decision_date: date,
                    tablets,
                    smartphones,
                    unit_quotas: units,
                    cash_alternative_amount: cash.unwrap_or(0),
                    note: note.unwrap_or_default(),
                })
                .await?;
            show_allocation(&allocation);
        }
        DevicesCommand::Nominate { number, reason, file, mut codes } => {
            if let Some(path) = &file {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Failure::Message(format!("cannot read {}: {e}", path.display())))?;
                codes.extend(codes_in(&text));
            }
            if codes.is_empty() {
                return Err(Failure::Exit(Exit::Invalid, "no household code to nominate".to_owned()));
            }
            let sent = codes.len();
            let answer = client.nominate_households(&number, codes, &reason).await?;
            outln!(
                "{number}: {} household(s) nominated, {} nominated before and left as they were ({sent} sent)",
                answer.nominated,
                answer.already_nominated
            );
        }
        DevicesCommand::Propose { number, as_of } => {
            show_allocation(&client.propose_recipients(&number, as_of.as_deref().unwrap_or("")).await?);
        }
        DevicesCommand::Amend { number, change } => {
            let (action, household_code, device, reason) = match change {
                AmendCommand::Add { code, device, reason } => {
                    (proto::AmendAction::Add, code, proto::DeviceType::from(device), reason)
                }
                AmendCommand::Remove { code, reason } => {
                    (proto::AmendAction::Remove, code, proto::DeviceType::Unspecified, reason)
                }
            };
            let allocation = client
                .amend_proposal(proto::AmendProposalRequest {
                    decision_number: number,
                    action: action.into(),
                    household_code,
                    device_type: device.into(),
                    reason,
                })
                .await?;
            show_allocation(&allocation);
        }
        DevicesCommand::Submit { number } => show_allocation(&client.submit_for_approval(&number).await?),
        DevicesCommand::Approve { number, approval_number, date, note, digest } => {
            let allocation = client
                .approve_allocation(proto::ApproveRequest {
                    decision_number: number,
                    approval_number,
                    note: note.unwrap_or_default(),
                    list_digest: digest.unwrap_or_default(),
                    approved_on: date.unwrap_or_default(),
                })
                .await?;
            show_allocation(&allocation);
        }
        DevicesCommand::Return { number, note } => show_allocation(&client.return_allocation(&number, &note).await?),
        DevicesCommand::Handover(args) => show_handover(&client.record_handover(handover_request(args)).await?),
        DevicesCommand::Show { number, output } => {
            output.one(&client.get_allocation(&number).await?, show_allocation)?
        }
        DevicesCommand::List { output } => {
            let mut allocations = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = client.list_allocations(100, &page_token).await?;
                allocations.extend(page.allocations);
                page_token = page.next_page_token;
                if page_token.is_empty() {
                    break;
                }
            }
            let response = proto::ListAllocationsResponse { allocations, next_page_token: String::new() };
            output.list(&response, &response.allocations, || show_allocations(&response.allocations))?;
        }
        DevicesCommand::Recipients { number, unit, status, output } => {
            let status = match status {
                None => proto::RecipientStatus::Unspecified,
                Some(RecipientStatusArg::NotYet) => proto::RecipientStatus::NotYet,
                Some(RecipientStatusArg::HandedOver) => proto::RecipientStatus::HandedOver,
            };
            let recipients = client
                .all_allocation_recipients(proto::ListAllocationRecipientsRequest {
                    decision_number: number,
                    unit_code: unit.unwrap_or_default(),
                    status: status.into(),
                    page_size: 500,
                    page_token: String::new(),
                })
                .await?;
            let response = proto::ListAllocationRecipientsResponse { recipients, next_page_token: String::new() };
            output.list(&response, &response.recipients, || show_recipients(&response.recipients))?;
        }
        DevicesCommand::Publish { number, commune, format, out } => {
            publish(client, number, commune, format, out).await?
        }
    }
    Ok(())
}

fn handover_request(args: HandoverArgs) -> proto::RecordHandoverRequest {
    use proto::record_handover_request::Kind;
    let kind = match (args.cash, args.device) {
        (Some(amount), _) => Kind::Cash(proto::CashPayment {
            amount,
            phone_bought_on: args.bought_on.unwrap_or_default(),
            receipt_reference: args.receipt.unwrap_or_default(),
        }),
        (None, Some(device)) => Kind::Device(proto::DeviceHandover {
            device_type: proto::DeviceType::from(device).into(),
            serial_number: args.serial.unwrap_or_default(),
            imei: args.imei.unwrap_or_default(),
        }),
        (None, None) => unreachable!("clap requires --device or --cash"),
    };
    proto::RecordHandoverRequest {
        decision_number: args.number,
        household_code: args.household,
        handed_over_on: args.date,
        received_by: args.received_by,
        kind: Some(kind),
    }
}

async fn publish(
    client: &Client,
    number: String,
    commune: Option<String>,
    format: PublishFormatArg,
    out: Option<PathBuf>,
) -> Result<(), Failure> {
    let (format, extension) = match format {
        PublishFormatArg::Csv => (proto::PublishFormat::Csv, "csv"),
        PublishFormatArg::Html => (proto::PublishFormat::Html, "html"),
    };
    let commune = commune.unwrap_or_default();
    let fallback = format!(
        "{}-{}.{extension}",
        number.replace(['/', '\\'], "_"),
        if commune.is_empty() { "all" } else { commune.as_str() }
    );
    let request = proto::PublishedRecipientsRequest {
        decision_number: number,
        commune_code: commune,
        format: format.into(),
        ..Default::default()
    };
    // Decision numbers have slashes (1234/QĐ-BTTTT): kept in the name rather than taken for
    // folders.
    let chunks = client.published_recipients(request).await?.map(|chunk| {
        chunk.map(|mut c| {
            c.file_name = c.file_name.replace(['/', '\\'], "_");
            c
        })
    });
    match out {
        Some(path) if path.as_os_str() == "-" => to_stdout(chunks).await,
        out => save_file(chunks, out, &fallback).await,
    }
}

/// The file's bytes on standard output as they arrive.
async fn to_stdout(
    chunks: impl futures_util::Stream<Item = Result<proto::FileChunk, telesub_client::Error>>,
) -> Result<(), Failure> {
    let bar = progress::download();
    let mut chunks = std::pin::pin!(chunks);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        bar.inc(chunk.data.len() as u64);
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = stdout.write_all(&chunk.data).and_then(|()| stdout.flush()) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            return Err(Failure::Message(format!("writing to standard output: {e}")));
        }
    }
    bar.finish_and_clear();
    Ok(())
}

// How allocations are printed: a label column, then the value; tables for lists of them.

const LABEL: usize = 16;

fn field(label: &str, value: impl std::fmt::Display) {
    outln!("{label:<LABEL$} {value}");
}

fn status(a: &proto::Allocation) -> &'static str {
    short(a.status().as_str_name(), "ALLOCATION_STATUS_")
}

fn device_name(device: proto::DeviceType) -> String {
    match device {
        proto::DeviceType::Unspecified => "-".to_owned(),
        other => short(other.as_str_name(), "DEVICE_TYPE_").to_lowercase(),
    }
}

fn devices_text(tablets: i64, smartphones: i64) -> String {
    let s = |n: i64| if n == 1 { "" } else { "s" };
    format!("{tablets} tablet{}, {smartphones} smartphone{}", s(tablets), s(smartphones))
}

fn by_at(who: &str, at: Option<&prost_types::Timestamp>) -> String {
    format!("by {who} at {}", timestamp(at))
}

/// One allocation: the decision, where the list stands, then progress and amendments when
/// the hub sent them (`devices show`).
fn show_allocation(a: &proto::Allocation) {
    field("decision", format!("{} of {}", a.decision_number, a.decision_date));
    field("status", format!("{} (list revision {})", status(a), a.revision));
    if !a.note.is_empty() {
        field("note", &a.note);
    }
    field("devices", devices_text(a.tablets, a.smartphones));
    if a.progress.is_empty() {
        for q in a.unit_quotas.iter().filter(|q| !q.unit_code.is_empty()) {
            let unit = format!("{} {}", q.unit_code, q.unit_name);
            field("  unit", format!("{}: {}", unit.trim(), devices_text(q.tablets, q.smartphones)));
        }
    }
    field("cash", vnd(a.cash_alternative_amount));
    field("recorded", by_at(&a.recorded_by, a.recorded_at.as_ref()));
    if a.proposed_at.is_some() {
        field(
            "proposed",
            format!(
                "from the register as of {}, policy version {}, at {}",
                a.proposal_as_of,
                a.policy_version,
                timestamp(a.proposed_at.as_ref())
            ),
        );
        field("eligible", format!("{} household(s) before the cut", a.eligible_households));
        field("recipients", format!("{} household(s) on the list", a.recipients));
    }
    if !a.proposal_digest.is_empty() {
        field("proposal digest", &a.proposal_digest);
    }
    if !a.list_digest.is_empty() {
        field("list digest", &a.list_digest);
    }
    if !a.submitted_by.is_empty() {
        field("submitted", by_at(&a.submitted_by, a.submitted_at.as_ref()));
    }
    if a.status() == proto::AllocationStatus::Approved {
        field(
            "approved",
            format!(
                "{} of {} (recorded {})",
                a.approval_number,
                a.approved_on,
                by_at(&a.decided_by, a.decided_at.as_ref())
            ),
        );
    } else if !a.decided_by.is_empty() {
        field("returned", by_at(&a.decided_by, a.decided_at.as_ref()));
    }
    if !a.decision_note.is_empty() {
        field("committee note", &a.decision_note);
    }
    if !a.progress.is_empty() {
        outln!("progress");
        let rows = a
            .progress
            .iter()
            .map(|p| {
                vec![
                    if p.unit_code.is_empty() { "(province)".to_owned() } else { p.unit_code.clone() },
                    p.unit_name.clone(),
                    p.tablets_quota.to_string(),
                    p.smartphones_quota.to_string(),
                    p.on_list.to_string(),
                    p.devices_handed_over.to_string(),
                    p.cash_paid.to_string(),
                    p.not_yet.to_string(),
                ]
            })
            .collect();
        let header = ["UNIT", "NAME", "TABLETS", "SMARTPHONES", "ON LIST", "DEVICES", "CASH", "NOT YET"];
        table(&header, rows, "  ");
    }
    if !a.amendments.is_empty() {
        outln!("amendments");
        let rows = a
            .amendments
            .iter()
            .map(|m| {
                vec![
                    m.seq.to_string(),
                    m.revision.to_string(),
                    short(m.action().as_str_name(), "AMEND_ACTION_").to_lowercase(),
                    m.household_code.clone(),
                    device_name(m.device_type()),
                    m.amended_by.clone(),
                    timestamp(m.amended_at.as_ref()),
                    m.reason.clone(),
                ]
            })
            .collect();
        table(&["#", "REVISION", "ACTION", "HOUSEHOLD", "DEVICE", "BY", "AT", "REASON"], rows, "  ");
    }
}

fn show_allocations(allocations: &[proto::Allocation]) {
    if allocations.is_empty() {
        outln!("no allocations");
        return;
    }
    let rows = allocations
        .iter()
        .map(|a| {
            vec![
                a.decision_number.clone(),
                a.decision_date.clone(),
                status(a).to_owned(),
                a.tablets.to_string(),
                a.smartphones.to_string(),
                a.recipients.to_string(),
                a.revision.to_string(),
                a.approval_number.clone(),
            ]
        })
        .collect();
    let header = ["DECISION", "DATE", "STATUS", "TABLETS", "SMARTPHONES", "RECIPIENTS", "REVISION", "APPROVED BY"];
    table(&header, rows, "");
}

/// What a household received, in a few words.
fn handed_over(h: &proto::Handover) -> String {
    use proto::handover::Kind;
    let what = match &h.kind {
        Some(Kind::Device(d)) => {
            let mut text = device_name(d.device_type());
            if !d.imei.is_empty() {
                text.push_str(&format!(" IMEI {}", d.imei));
            }
            if !d.serial_number.is_empty() {
                text.push_str(&format!(" serial {}", d.serial_number));
            }
            text
        }
        Some(Kind::Cash(c)) => format!("cash {}", vnd(c.amount)),
        None => "?".to_owned(),
    };
    format!("{} {what}", h.handed_over_on)
}

fn show_recipients(recipients: &[proto::AllocationRecipient]) {
    if recipients.is_empty() {
        outln!("no households");
        return;
    }
    let rows = recipients
        .iter()
        .map(|r| {
            let notes: Vec<&str> = [(r.nominated, "nominated"), (r.added, "added")]
                .into_iter()
                .filter_map(|(on, n)| on.then_some(n))
                .collect();
            vec![
                r.rank.to_string(),
                r.household_code.clone(),
                r.commune_code.clone(),
                if r.unit_code.is_empty() { "-".to_owned() } else { r.unit_code.clone() },
                short(r.category().as_str_name(), "CATEGORY_").to_owned(),
                short(r.priority().as_str_name(), "DEVICE_PRIORITY_").to_owned(),
                device_name(r.device_type()),
                r.head_name_masked.clone(),
                notes.join(", "),
                r.handover.as_ref().map_or_else(|| "-".to_owned(), handed_over),
            ]
        })
        .collect();
    let header =
        ["RANK", "HOUSEHOLD", "COMMUNE", "UNIT", "CATEGORY", "PRIORITY", "DEVICE", "HEAD", "NOTE", "HANDED OVER"];
    table(&header, rows, "");
    let done = recipients.iter().filter(|r| r.handover.is_some()).count();
    outln!("{} household(s), {done} handed over", recipients.len());
}

fn show_handover(h: &proto::Handover) {
    use proto::handover::Kind;
    field("decision", &h.decision_number);
    field("household", &h.household_code);
    field("handed over", format!("on {} to {}", h.handed_over_on, h.received_by));
    match &h.kind {
        Some(Kind::Device(d)) => {
            field("device", device_name(d.device_type()));
            if !d.imei.is_empty() {
                field("IMEI", &d.imei);
            }
            if !d.serial_number.is_empty() {
                field("serial number", &d.serial_number);
            }
        }
        Some(Kind::Cash(c)) => {
            field("cash", vnd(c.amount));
            field("phone bought", &c.phone_bought_on);
            field("receipt", &c.receipt_reference);
        }
        None => {}
    }
    field("recorded", by_at(&h.recorded_by, h.recorded_at.as_ref()));
    if h.replayed {
        outln!("already recorded: this is the hand-over recorded then; nothing changed");
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::Command;

    fn parse(args: &[&str]) -> Result<DevicesCommand, clap::Error> {
        let cli = Cli::try_parse_from(["telesub-cli", "devices"].iter().chain(args))?;
        match cli.command {
            Command::Devices(command) => Ok(command),
            _ => unreachable!("a devices command"),
        }
    }

    #[test]
    fn unit_quotas_are_code_tablets_smartphones() {
        let q = unit_quota("660:10:20").unwrap();
        assert_eq!((q.unit_code.as_str(), q.tablets, q.smartphones), ("660", 10, 20));
        assert!(unit_quota("660:10").is_err());
        assert!(unit_quota(":1:2").is_err());
        assert!(unit_quota("660:x:2").is_err());
        assert!(unit_quota("660:1:2:3").is_err());
    }

    #[test]
    fn code_files_skip_blank_lines_and_comments() {
        let codes: Vec<String> = codes_in("\u{feff}0066000123\n\n# pupils\n 0066000124 \r\n").collect();
        assert_eq!(codes, ["0066000123", "0066000124"]);
    }

    #[test]
    fn amendments_take_the_number_then_the_change() {
        let Ok(DevicesCommand::Amend { number, change: AmendCommand::Add { code, device: DeviceArg::Tablet, reason } }) =
            parse(&["amend", "1234/QĐ-BTTTT", "add", "0066000123", "--device", "tablet", "--reason", "r"])
        else {
            panic!("an addition");
        };
        assert_eq!((number.as_str(), code.as_str(), reason.as_str()), ("1234/QĐ-BTTTT", "0066000123", "r"));
        assert!(matches!(
            parse(&["amend", "N", "remove", "0066000123", "--reason", "moved"]),
            Ok(DevicesCommand::Amend { change: AmendCommand::Remove { .. }, .. })
        ));
        assert!(parse(&["amend", "N", "remove", "0066000123"]).is_err(), "a reason is required");
    }

    #[test]
    fn a_handover_is_a_device_or_cash() {
        let base = ["handover", "N", "0066000123", "--date", "2025-04-02", "--received-by", "A"];
        let with = |more: &[&str]| parse(&[&base[..], more].concat());
        assert!(with(&["--device", "smartphone", "--imei", "356938035643809"]).is_ok());
        assert!(with(&["--device", "tablet", "--serial", "SN1"]).is_ok());
        assert!(with(&["--cash", "500000", "--bought-on", "2023-01-05", "--receipt", "PC-1"]).is_ok());
        assert!(with(&[]).is_err(), "a device or cash");
        assert!(with(&["--cash", "500000"]).is_err(), "cash needs the purchase date and receipt");
        assert!(
            with(&["--device", "tablet", "--cash", "500000", "--bought-on", "2023-01-05", "--receipt", "R"]).is_err()
        );
        assert!(with(&["--device", "tablet", "--bought-on", "2023-01-05"]).is_err());
        assert!(with(&["--device", "smartphone", "--serial", "SN1"]).is_err(), "a smartphone needs its IMEI");
        assert!(with(&["--device", "tablet", "--imei", "356938035643809"]).is_ok());
        let Ok(DevicesCommand::Handover(args)) =
            with(&["--cash", "500000", "--bought-on", "2023-01-05", "--receipt", "PC-1"])
        else {
            panic!("a hand-over");
        };
        let request = handover_request(args);
        assert!(matches!(
            request.kind,
            Some(proto::record_handover_request::Kind::Cash(proto::CashPayment { amount: 500_000, .. }))
        ));
    }

    #[test]
    fn nominations_need_codes_or_a_file() {
        assert!(parse(&["nominate", "N", "--reason", "pupils"]).is_err());
        assert!(parse(&["nominate", "N", "--reason", "pupils", "--file", "codes.txt"]).is_ok());
        let Ok(DevicesCommand::Nominate { codes, .. }) = parse(&["nominate", "N", "--reason", "pupils", "A", "B"])
        else {
            panic!("a nomination");
        };
        assert_eq!(codes, ["A", "B"]);
    }

    #[test]
    fn publish_writes_to_a_file_or_standard_output() {
        let Ok(DevicesCommand::Publish { out, format: PublishFormatArg::Html, commune, .. }) =
            parse(&["publish", "N", "--commune", "24611", "--format", "html", "-o", "-"])
        else {
            panic!("a publication");
        };
        assert_eq!(out.as_deref(), Some(std::path::Path::new("-")));
        assert_eq!(commune.as_deref(), Some("24611"));
        assert!(matches!(parse(&["publish", "N"]), Ok(DevicesCommand::Publish { format: PublishFormatArg::Csv, .. })));
        assert!(parse(&["publish", "N", "--format", "html"]).is_err(), "a page is one commune's");
    }
}
