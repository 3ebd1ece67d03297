//! `inspections …`: inspections of localities and operators (ICT), with their team, findings
//! and follow-up, and the samples of the hub's data frozen for the team to check.
//!
//! ```text
//! telesub-cli --tls-dir ./dev-tls --org DOICT inspections create --title "Kiểm tra năm 2025" --basis plan \
//!     --requested-by "KH 12/KH-STTTT" --unit 24611 --operator VNPT \
//!     --member "DOICT:Nguyễn Văn A:trưởng đoàn" --member "DOLISA:Trần Thị B" --from 2025-05-05 --to 2025-05-09
//! telesub-cli --tls-dir ./dev-tls --org DOICT inspections sample 7 --commune 24611 --size 20
//! telesub-cli --tls-dir ./dev-tls --org DOICT inspections finding 7 --severity high --subject VNPT \
//!     --description "Lines enrolled after the household left the list" --action "End them" --due 2025-06-30
//! telesub-cli --tls-dir ./dev-tls --org DOICT inspections update 7 1 --status resolved --note "Ended on 2025-06-02"
//! telesub-cli --tls-dir ./dev-tls --org DOICT inspections close 7 --conclusion "…"
//! telesub-cli --tls-dir ./dev-tls --org DOICT inspections show 7
//! ```

use clap::{Args, Subcommand, ValueEnum};
use telesub_client::{Client, proto};

use crate::{
    Failure,
    output::OutputArgs,
    rows::SampledRow,
    show::{short, table, table_lines, timestamp},
};

#[derive(Subcommand)]
pub(crate) enum InspectionsCommand {
    /// Records an inspection: its basis, subjects, team and dates (ICT).
    Create(CreateArgs),
    /// Adds a finding to an inspection that is not closed (ICT).
    Finding {
        /// The inspection's id.
        id: i64,
        #[arg(long, value_enum)]
        severity: SeverityArg,
        /// A unit code or an operator code among the inspection's subjects.
        #[arg(long, value_name = "CODE")]
        subject: String,
        /// What was found.
        #[arg(long, value_name = "TEXT")]
        description: String,
        /// What has to be done about it.
        #[arg(long, value_name = "TEXT")]
        action: String,
        /// By when.
        #[arg(long, value_name = "YYYY-MM-DD")]
        due: String,
        /// Where the evidence is: a document number, a sample, a file reference.
        #[arg(long, value_name = "REF")]
        evidence: Option<String>,
    },
    /// Moves a finding on, with a note saying what was done; also after the inspection is
    /// closed (ICT).
    Update {
        /// The inspection's id.
        id: i64,
        /// The finding's number within the inspection.
        number: i64,
        #[arg(long, value_enum)]
        status: FindingStatusArg,
        /// What was done; required.
        #[arg(long, value_name = "TEXT")]
        note: String,
    },
    /// Closes an inspection with its conclusion; no finding is added afterwards (ICT).
    Close {
        /// The inspection's id.
        id: i64,
        #[arg(long, value_name = "TEXT")]
        conclusion: String,
    },
    /// Freezes a random sample of a commune's households with an enrolment running on a date,
    /// with their history and enrolments as the hub holds them now (ICT).
    Sample {
        /// The inspection's id.
        id: i64,
        /// A commune among (or within) the inspection's subject units.
        #[arg(long, value_name = "CODE")]
        commune: String,
        /// Households to draw, 1 to 500.
        #[arg(long, value_name = "N")]
        size: i32,
        /// The date enrolments must be running on; today when left out.
        #[arg(long, value_name = "YYYY-MM-DD")]
        as_of: Option<String>,
    },
    /// One inspection with its team, findings (and their follow-up) and samples.
    Show {
        /// The inspection's id.
        id: i64,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Inspections, newest first.
    List {
        #[arg(long, value_enum)]
        status: Option<InspectionStatusArg>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// A sample as it was pulled (CSV: a row per household drawn).
    ShowSample {
        /// The inspection's id.
        id: i64,
        /// The sample's number within the inspection.
        number: i64,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Args)]
pub(crate) struct CreateArgs {
    /// 1 to 200 characters.
    #[arg(long, value_name = "TEXT")]
    title: String,
    #[arg(long, value_enum)]
    basis: BasisArg,
    /// The authority and its document (required on an authority's request), or the plan's
    /// reference.
    #[arg(long, value_name = "TEXT")]
    requested_by: Option<String>,
    /// A district or commune inspected; repeat per unit.
    #[arg(long = "unit", value_name = "CODE")]
    units: Vec<String>,
    /// An operator inspected (its member code); repeat per operator.
    #[arg(long = "operator", value_name = "CODE")]
    operators: Vec<String>,
    /// A member of the team: the organisation they come from, their name and optionally
    /// their role (e.g. "DOICT:Nguyễn Văn A:trưởng đoàn"); repeat per member.
    #[arg(long = "member", value_name = "ORG:NAME[:ROLE]", value_parser = team_member, required = true)]
    members: Vec<proto::TeamMember>,
    /// The first day of the inspection.
    #[arg(long, value_name = "YYYY-MM-DD")]
    from: String,
    /// The last day of the inspection.
    #[arg(long, value_name = "YYYY-MM-DD")]
    to: String,
    /// Kept with the inspection.
    #[arg(long, value_name = "TEXT")]
    note: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum BasisArg {
    /// From the yearly inspection plan.
    Plan,
    /// On the request of an authority (named with --requested-by).
    Request,
}

impl From<BasisArg> for proto::InspectionBasis {
    fn from(b: BasisArg) -> Self {
        match b {
            BasisArg::Plan => proto::InspectionBasis::YearlyPlan,
            BasisArg::Request => proto::InspectionBasis::AuthorityRequest,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum SeverityArg {
    Low,
    Medium,
    High,
    Critical,
}

impl From<SeverityArg> for proto::FindingSeverity {
    fn from(s: SeverityArg) -> Self {
        match s {
            SeverityArg::Low => proto::FindingSeverity::Low,
            SeverityArg::Medium => proto::FindingSeverity::Medium,
            SeverityArg::High => proto::FindingSeverity::High,
            SeverityArg::Critical => proto::FindingSeverity::Critical,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum FindingStatusArg {
    InProgress,
    Resolved,
}

impl From<FindingStatusArg> for proto::FindingStatus {
    fn from(s: FindingStatusArg) -> Self {
        match s {
            FindingStatusArg::InProgress => proto::FindingStatus::InProgress,
            FindingStatusArg::Resolved => proto::FindingStatus::Resolved,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum InspectionStatusArg {
    Open,
    Closed,
}

impl From<InspectionStatusArg> for proto::InspectionStatus {
    fn from(s: InspectionStatusArg) -> Self {
        match s {
            InspectionStatusArg::Open => proto::InspectionStatus::Open,
            InspectionStatusArg::Closed => proto::InspectionStatus::Closed,
        }
    }
}

/// `--member ORG:NAME[:ROLE]`; the role is everything after the second colon.
fn team_member(text: &str) -> Result<proto::TeamMember, String> {
    let bad = || format!("{text:?} is not ORG:NAME[:ROLE] (e.g. \"DOICT:Nguyễn Văn A:trưởng đoàn\")");
    let mut parts = text.splitn(3, ':').map(str::trim);
    let (Some(organisation), Some(name)) = (parts.next(), parts.next()) else {
        return Err(bad());
    };
    if organisation.is_empty() || name.is_empty() {
        return Err(bad());
    }
    Ok(proto::TeamMember {
        organisation: organisation.to_owned(),
        name: name.to_owned(),
        role: parts.next().unwrap_or_default().to_owned(),
    })
}

fn create_request(args: CreateArgs) -> proto::CreateInspectionRequest {
    proto::CreateInspectionRequest {
        title: args.title,
        basis: proto::InspectionBasis::from(args.basis).into(),
        requested_by: args.requested_by.unwrap_or_default(),
        subject_units: args.units,
        subject_operators: args.operators,
        team: args.members,
        starts_on: args.from,
        ends_on: args.to,
        note: args.note.unwrap_or_default(),
    }
}

pub(crate) async fn inspections(client: &Client, command: InspectionsCommand) -> Result<(), Failure> {
    match command {
        InspectionsCommand::Create(args) => show_inspection(&client.create_inspection(create_request(args)).await?),
        InspectionsCommand::Finding { id, severity, subject, description, action, due, evidence } => {
            let finding = client
                .record_finding(proto::RecordFindingRequest {
                    inspection_id: id,
                    severity: proto::FindingSeverity::from(severity).into(),
                    subject,
                    description,
                    evidence_reference: evidence.unwrap_or_default(),
                    required_action: action,
                    due_on: due,
                })
                .await?;
            show_finding(&finding);
        }
        InspectionsCommand::Update { id, number, status, note } => {
            show_finding(&client.update_finding_status(id, number, status.into(), &note).await?);
        }
        InspectionsCommand::Close { id, conclusion } => {
            show_inspection(&client.close_inspection(id, &conclusion).await?);
        }
        InspectionsCommand::Sample { id, commune, size, as_of } => {
            let sample = client
                .pull_sample(proto::PullSampleRequest {
                    inspection_id: id,
                    commune_code: commune,
                    size,
                    as_of: as_of.unwrap_or_default(),
                })
                .await?;
            show_sample(&sample);
        }
        InspectionsCommand::Show { id, output } => output.one(&client.get_inspection(id).await?, show_inspection)?,
        InspectionsCommand::List { status, output } => {
            let status = status.map_or(proto::InspectionStatus::Unspecified, proto::InspectionStatus::from);
            let mut inspections = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = client.list_inspections(status, 100, &page_token).await?;
                inspections.extend(page.inspections);
                page_token = page.next_page_token;
                if page_token.is_empty() {
                    break;
                }
            }
            let response = proto::ListInspectionsResponse { inspections, next_page_token: String::new() };
            output.list(&response, &response.inspections, || show_inspections(&response.inspections))?;
        }
        InspectionsCommand::ShowSample { id, number, output } => {
            let sample = client.get_sample(id, number).await?;
            let rows: Vec<SampledRow<'_>> =
                sample.households.iter().map(|household| SampledRow { sample: &sample, household }).collect();
            output.list(&sample, &rows, || show_sample(&sample))?;
        }
    }
    Ok(())
}

// How inspections are printed: a label column, then the value; tables for lists.

const LABEL: usize = 16;

fn field(label: &str, value: impl std::fmt::Display) {
    outln!("{label:<LABEL$} {value}");
}

/// `-` for an empty cell, so that every column of a row has a value.
fn cell(text: &str) -> String {
    if text.is_empty() { "-".to_owned() } else { text.to_owned() }
}

fn by_at(who: &str, at: Option<&prost_types::Timestamp>) -> String {
    format!("by {who} at {}", timestamp(at))
}

fn basis(i: &proto::Inspection) -> &'static str {
    short(i.basis().as_str_name(), "INSPECTION_BASIS_")
}

fn inspection_status(i: &proto::Inspection) -> &'static str {
    short(i.status().as_str_name(), "INSPECTION_STATUS_")
}

fn severity(f: &proto::Finding) -> &'static str {
    short(f.severity().as_str_name(), "FINDING_SEVERITY_")
}

fn finding_status(status: proto::FindingStatus) -> &'static str {
    short(status.as_str_name(), "FINDING_STATUS_")
}

/// What an update did, on one line: when, the new status, who, and the note.
fn update_line(u: &proto::FindingUpdate) -> String {
    format!("{}  {}  by {}: {}", timestamp(u.updated_at.as_ref()), finding_status(u.status()), u.updated_by, u.note)
}

/// One inspection; with its findings and samples when the hub sent them (`inspections show`).
fn show_inspection(i: &proto::Inspection) {
    field("id", i.id);
    field("title", &i.title);
    field("basis", basis(i));
    if !i.requested_by.is_empty() {
        field("requested by", &i.requested_by);
    }
    if !i.subject_units.is_empty() {
        field("units", i.subject_units.join(", "));
    }
    if !i.subject_operators.is_empty() {
        field("operators", i.subject_operators.join(", "));
    }
    field("starts on", &i.starts_on);
    field("ends on", &i.ends_on);
    field("status", inspection_status(i));
    if !i.note.is_empty() {
        field("note", &i.note);
    }
    field("created", by_at(&i.created_by, i.created_at.as_ref()));
    if !i.conclusion.is_empty() {
        field("conclusion", &i.conclusion);
    }
    if !i.closed_by.is_empty() {
        field("closed", by_at(&i.closed_by, i.closed_at.as_ref()));
    }
    if i.team.is_empty() {
        field("team", "none");
    } else {
        outln!("team");
        let rows =
            i.team.iter().map(|m| vec![m.organisation.clone(), m.name.clone(), cell(&m.role)]).collect::<Vec<_>>();
        table(&["ORGANISATION", "NAME", "ROLE"], rows, "  ");
    }
    if !i.findings.is_empty() {
        outln!("findings");
        show_findings(&i.findings);
    }
    if !i.samples.is_empty() {
        outln!("samples");
        let rows = i
            .samples
            .iter()
            .map(|s| {
                vec![
                    s.number.to_string(),
                    s.commune_code.clone(),
                    s.as_of.clone(),
                    s.size.to_string(),
                    s.population.to_string(),
                    s.pulled_by.clone(),
                    timestamp(s.pulled_at.as_ref()),
                ]
            })
            .collect();
        table(&["#", "COMMUNE", "AS OF", "SIZE", "POPULATION", "PULLED BY", "PULLED AT"], rows, "  ");
    }
}

/// The findings table, each finding's action, evidence and updates indented under its row.
fn show_findings(findings: &[proto::Finding]) {
    let rows: Vec<Vec<String>> = findings
        .iter()
        .map(|f| {
            vec![
                f.number.to_string(),
                severity(f).to_owned(),
                f.subject.clone(),
                finding_status(f.status()).to_owned(),
                cell(&f.due_on),
                f.description.clone(),
            ]
        })
        .collect();
    let mut lines = table_lines(&["#", "SEVERITY", "SUBJECT", "STATUS", "DUE", "DESCRIPTION"], &rows, "  ").into_iter();
    if let Some(header) = lines.next() {
        outln!("{header}");
    }
    for (f, line) in findings.iter().zip(lines) {
        outln!("{line}");
        if !f.required_action.is_empty() {
            outln!("      action: {}", f.required_action);
        }
        if !f.evidence_reference.is_empty() {
            outln!("      evidence: {}", f.evidence_reference);
        }
        for u in &f.updates {
            outln!("      {}", update_line(u));
        }
    }
}

/// One finding, as recorded or moved on (`inspections finding`, `inspections update`).
fn show_finding(f: &proto::Finding) {
    field("inspection", f.inspection_id);
    field("number", f.number);
    field("severity", severity(f));
    field("subject", &f.subject);
    field("description", &f.description);
    if !f.evidence_reference.is_empty() {
        field("evidence", &f.evidence_reference);
    }
    field("action", &f.required_action);
    field("due", &f.due_on);
    field("status", finding_status(f.status()));
    field("recorded", by_at(&f.recorded_by, f.recorded_at.as_ref()));
    if !f.updates.is_empty() {
        outln!("updates");
        for u in &f.updates {
            outln!("  {}", update_line(u));
        }
    }
}

fn show_inspections(inspections: &[proto::Inspection]) {
    if inspections.is_empty() {
        outln!("no inspections");
        return;
    }
    let rows = inspections
        .iter()
        .map(|i| {
            let subjects: Vec<&str> = i.subject_units.iter().chain(&i.subject_operators).map(String::as_str).collect();
            vec![
                i.id.to_string(),
                inspection_status(i).to_owned(),
                basis(i).to_owned(),
                i.starts_on.clone(),
                i.ends_on.clone(),
                cell(&subjects.join(", ")),
                i.title.clone(),
            ]
        })
        .collect();
    table(&["ID", "STATUS", "BASIS", "STARTS ON", "ENDS ON", "SUBJECTS", "TITLE"], rows, "");
}

/// An enrolment in a few words: `OPERATOR phone from–until` (nothing after the dash while it
/// runs).
fn enrolment_text(e: &proto::Enrollment) -> String {
    format!("{} {} {}–{}", e.operator, e.phone_number, e.start_date, e.end_date)
}

/// A sample's summary, then one line per household (`inspections sample`, `show-sample`).
fn show_sample(s: &proto::Sample) {
    let summary = s.summary.clone().unwrap_or_default();
    field("inspection", s.inspection_id);
    field("number", summary.number);
    field("commune", &summary.commune_code);
    field("as of", &summary.as_of);
    field("size", summary.size);
    field("population", summary.population);
    field("seed", &s.seed);
    field("pulled", by_at(&summary.pulled_by, summary.pulled_at.as_ref()));
    if s.households.is_empty() {
        outln!("no households");
        return;
    }
    let rows = s
        .households
        .iter()
        .map(|h| {
            let last = h.versions.last();
            let data = last.and_then(|v| v.data.as_ref());
            let category = data.map_or("-", |d| short(d.category().as_str_name(), "CATEGORY_"));
            let commune = data.map_or_else(|| "-".to_owned(), |d| cell(&d.commune_code));
            let enrolments: Vec<String> = h.enrollments.iter().map(enrolment_text).collect();
            vec![
                h.household_code.clone(),
                h.versions.len().to_string(),
                category.to_owned(),
                commune,
                cell(&enrolments.join(", ")),
            ]
        })
        .collect();
    table(&["HOUSEHOLD", "STATES", "CATEGORY", "COMMUNE", "ENROLMENTS"], rows, "");
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Cli, Command};

    fn parse(args: &[&str]) -> Result<InspectionsCommand, clap::Error> {
        let cli = Cli::try_parse_from(["telesub-cli", "inspections"].iter().chain(args))?;
        match cli.command {
            Command::Inspections(command) => Ok(command),
            _ => unreachable!("an inspections command"),
        }
    }

    #[test]
    fn members_are_organisation_name_and_role() {
        let m = team_member("DOLISA:Nguyễn Văn A:trưởng đoàn").unwrap();
        assert_eq!(
            (m.organisation.as_str(), m.name.as_str(), m.role.as_str()),
            ("DOLISA", "Nguyễn Văn A", "trưởng đoàn")
        );
        let m = team_member("DOICT: Trần Thị B ").unwrap();
        assert_eq!((m.organisation.as_str(), m.name.as_str(), m.role.as_str()), ("DOICT", "Trần Thị B", ""));
        assert_eq!(team_member("DOICT:C:thư ký: ghi biên bản").unwrap().role, "thư ký: ghi biên bản");
        assert!(team_member("DOLISA").is_err());
        assert!(team_member("DOLISA:").is_err());
        assert!(team_member("DOLISA::trưởng đoàn").is_err());
        assert!(team_member(":Nguyễn Văn A").is_err());
    }

    #[test]
    fn create_takes_subjects_and_members() {
        let base = ["create", "--title", "T", "--basis", "request", "--from", "2025-05-05", "--to", "2025-05-09"];
        let with = |more: &[&str]| parse(&[&base[..], more].concat());
        let Ok(InspectionsCommand::Create(args)) = with(&[
            "--requested-by",
            "CV 45/UBND",
            "--unit",
            "24611",
            "--unit",
            "24612",
            "--operator",
            "VNPT",
            "--member",
            "DOLISA:Nguyễn Văn A:trưởng đoàn",
            "--member",
            "DOICT:Trần Thị B",
        ]) else {
            panic!("an inspection");
        };
        let request = create_request(args);
        assert_eq!(request.basis(), proto::InspectionBasis::AuthorityRequest);
        assert_eq!(request.requested_by, "CV 45/UBND");
        assert_eq!(request.subject_units, ["24611", "24612"]);
        assert_eq!(request.subject_operators, ["VNPT"]);
        assert_eq!(request.team.len(), 2);
        assert_eq!(request.team[0].role, "trưởng đoàn");
        assert_eq!((request.starts_on.as_str(), request.ends_on.as_str()), ("2025-05-05", "2025-05-09"));
        assert!(with(&[]).is_err(), "a team is required");
        let err = with(&["--member", "DOLISA"]).err().expect("a member without a name");
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert_eq!(err.exit_code(), 2, "a usage error");
        let Ok(InspectionsCommand::Create(args)) = parse(&[
            "create",
            "--title",
            "T",
            "--basis",
            "plan",
            "--member",
            "DOICT:A",
            "--from",
            "2025-05-05",
            "--to",
            "2025-05-09",
        ]) else {
            panic!("an inspection");
        };
        assert_eq!(create_request(args).basis(), proto::InspectionBasis::YearlyPlan);
        assert!(with(&["--basis", "yearly", "--member", "DOICT:A"]).is_err());
    }

    #[test]
    fn findings_and_their_updates() {
        let Ok(InspectionsCommand::Finding { id: 7, severity: SeverityArg::Critical, evidence: None, .. }) = parse(&[
            "finding",
            "7",
            "--severity",
            "critical",
            "--subject",
            "VNPT",
            "--description",
            "D",
            "--action",
            "A",
            "--due",
            "2025-06-30",
        ]) else {
            panic!("a finding");
        };
        assert!(parse(&["finding", "7", "--severity", "severe", "--subject", "S"]).is_err());
        let Ok(InspectionsCommand::Update { id: 7, number: 2, status: FindingStatusArg::InProgress, note }) =
            parse(&["update", "7", "2", "--status", "in-progress", "--note", "called them"])
        else {
            panic!("an update");
        };
        assert_eq!(note, "called them");
        assert!(parse(&["update", "7", "2", "--status", "resolved"]).is_err(), "a note is required");
        assert!(parse(&["update", "7", "2", "--status", "open", "--note", "n"]).is_err());
    }

    #[test]
    fn samples_lists_and_closing() {
        let Ok(InspectionsCommand::Sample { id: 7, commune, size: 20, as_of: None }) =
            parse(&["sample", "7", "--commune", "24611", "--size", "20"])
        else {
            panic!("a sample");
        };
        assert_eq!(commune, "24611");
        assert!(parse(&["sample", "7", "--commune", "24611"]).is_err(), "a size is required");
        assert!(matches!(
            parse(&["show-sample", "7", "2"]),
            Ok(InspectionsCommand::ShowSample { id: 7, number: 2, .. })
        ));
        assert!(matches!(parse(&["list"]), Ok(InspectionsCommand::List { status: None, .. })));
        assert!(matches!(
            parse(&["list", "--status", "closed"]),
            Ok(InspectionsCommand::List { status: Some(InspectionStatusArg::Closed), .. })
        ));
        assert!(parse(&["close", "7"]).is_err(), "a conclusion is required");
        assert!(parse(&["show", "seven"]).is_err());
    }

    #[test]
    fn labels_leave_two_spaces_before_the_value() {
        for label in ["requested by", "inspection", "description", "population"] {
            let line = format!("{label:<LABEL$} {}", "x");
            assert!(line.starts_with(&format!("{label}  ")), "{line:?}");
        }
    }

    #[test]
    fn enrolments_read_operator_phone_and_dates() {
        let e = proto::Enrollment {
            operator: "VNPT".to_owned(),
            phone_number: "0912345678".to_owned(),
            start_date: "2025-01-01".to_owned(),
            ..Default::default()
        };
        assert_eq!(enrolment_text(&e), "VNPT 0912345678 2025-01-01–");
        let e = proto::Enrollment { end_date: "2025-04-01".to_owned(), ..e };
        assert_eq!(enrolment_text(&e), "VNPT 0912345678 2025-01-01–2025-04-01");
    }
}
