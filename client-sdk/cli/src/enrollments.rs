//! `enrollments` and `watch`: subsidised lines, and the change feed of enrolled households.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use telesub_client::{Client, proto};

use crate::{Failure, exit::Exit, output::OutputArgs, progress, show};

#[derive(Subcommand)]
pub(crate) enum EnrollmentCommand {
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
    /// One enrolment by its id: this operator's own (ICT: anyone's).
    Get {
        /// The enrolment id.
        id: String,
        #[command(flatten)]
        output: OutputArgs,
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
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Args)]
pub(crate) struct Line {
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
pub(crate) enum ServiceArg {
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
pub(crate) enum EndReasonArg {
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

pub(crate) async fn enrollments(client: &Client, command: EnrollmentCommand) -> Result<(), Failure> {
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
        EnrollmentCommand::Get { id, output } => {
            let e = client.get_enrollment(&id).await?;
            output.one(&e, |e| show::enrollments(std::slice::from_ref(e)))?;
        }
        EnrollmentCommand::List { household, active_on, limit, output } => {
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
            all.truncate(limit);
            let response = proto::ListEnrollmentsResponse { enrollments: all, next_page_token: page_token };
            output.list(&response, &response.enrollments, || show::enrollments(&response.enrollments))?;
        }
    }
    Ok(())
}

/// The columns of a file of enrolments.
pub(crate) const ENROLMENT_COLUMNS: [&str; 5] =
    ["operator", "household_code", "subscriber_citizen_id", "phone_number", "start_date"];

pub(crate) async fn import_enrollments(
    client: &Client,
    file: &std::path::Path,
    service: ServiceArg,
) -> Result<(), Failure> {
    use futures_util::StreamExt;
    let me = client.who_am_i().await?.member.unwrap_or_default().code;
    let cannot = |e: &dyn std::fmt::Display| Failure::Message(format!("{}: {e}", file.display()));
    // A file that is not one of enrolments is invalid input.
    let malformed = |e: &dyn std::fmt::Display| Failure::Exit(Exit::Invalid, format!("{}: {e}", file.display()));
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_path(file).map_err(|e| cannot(&e))?;
    let header = reader.headers().map_err(|e| malformed(&e))?.clone();
    if header.iter().collect::<Vec<_>>() != ENROLMENT_COLUMNS {
        return Err(malformed(&format!("the header must be {}", ENROLMENT_COLUMNS.join(","))));
    }
    let mut mine = Vec::new();
    let mut others = 0;
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| malformed(&e))?;
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
    let bar = progress::count(total as u64, "rows enrolled");
    let mut refused = Vec::new();
    let mut results = futures_util::stream::iter(mine)
        .map(|(line, request)| async move {
            let household = request.household_code.clone();
            (line, household, client.enroll(request).await)
        })
        .buffer_unordered(16);
    while let Some((line, household, result)) = results.next().await {
        bar.inc(1);
        if let Err(e) = result {
            refused.push((line, household, e));
        }
    }
    bar.finish_and_clear();
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

pub(crate) async fn watch(
    client: &Client,
    cursor: Option<String>,
    file: Option<PathBuf>,
    once: bool,
    output: OutputArgs,
) -> Result<(), Failure> {
    use futures_util::StreamExt;
    let saved = file.as_ref().and_then(|f| std::fs::read_to_string(f).ok()).map(|s| s.trim().to_owned());
    let start = cursor.or(saved).unwrap_or_default();
    let mut cursor = start.clone();
    let mut feed = client.watch_changes(&cursor, 0).await?;
    let mut printed = output.stream::<proto::ChangeEvent>();
    while let Some(message) = feed.next().await {
        let message = message?;
        if message.events.is_empty() {
            if once {
                break;
            }
            continue;
        }
        for e in &message.events {
            printed.item(e, show::change)?;
            cursor.clone_from(&e.cursor);
        }
        if let Some(f) = &file {
            std::fs::write(f, &cursor)
                .map_err(|e| Failure::Message(format!("cannot save the cursor in {}: {e}", f.display())))?;
        }
    }
    printed.finish()?;
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
