//! A device allocation from the Ministry's decision to the first hand-over: the provincial ICT
//! department draws up the list of households to get a tablet or a smartphone, the People's
//! Committee approves it, a device is handed over, and the commune's notice-board page is
//! fetched.
//!
//! ```text
//! device_allocation ENDPOINT TLS_DIR ICT_ORG COMMITTEE_ORG [EDUCATION_ORG] [--decision NUMBER] [--nominate CODE]…
//! device_allocation https://localhost:50051 ./dev-tls DOICT UBND DOET
//! ```
//! `TLS_DIR` is a certificate folder written by `telesub pki init` with an ICT, a
//! PROVINCE_COMMITTEE and, optionally, an EDUCATION organisation (`telesub pki init --dir
//! ./dev-tls --org DOICT:ICT --org UBND:PROVINCE_COMMITTEE --org DOET:EDUCATION …`, then
//! `telesub serve --tls-dir ./dev-tls`); `ICT_ORG`, `COMMITTEE_ORG` and `EDUCATION_ORG` are
//! their codes. The register needs poor or near-poor households (`labour_push` records one,
//! `telesub gen` many).
//!
//! - `--decision NUMBER`: the Ministry's decision number to record; by default
//!   `DEMO-<unix time>`, so that the program can be run again against the same hub. A number
//!   recorded before is refused.
//! - `--nominate CODE` (any number of times, with `EDUCATION_ORG` only): the households the
//!   education department nominates. Without it, the department nominates the last two
//!   households of a first draft, which the real proposal then ranks ahead of their equals.
//!
//! What it does, as ICT unless said otherwise:
//! 1. Records the decision: 2 tablets and 3 smartphones for the whole province, dated today.
//! 2. With `EDUCATION_ORG`, nominates households as the education department.
//! 3. Proposes the list from today's register and prints it. A household holds a place on one
//!    list only over the whole programme: once every eligible household has one, the list is
//!    empty and the program stops there (status 0).
//! 4. Takes the last household off the draft, with a reason (when the list has two or more).
//! 5. Submits the list, and approves it as the committee, naming the digest of the list
//!    submitted.
//! 6. Records the hand-over of the first household's device, dated today: a smartphone by its
//!    IMEI (15 digits with a Luhn check digit, new on every run), a tablet by its serial number
//!    and IMEI.
//! 7. Prints the progress per unit, and the first lines of the published HTML page of the
//!    first household's commune.
//!
//! Prints `handed over to HOUSEHOLD` after step 6. Exit status: 0 done, 1 the hub refused a
//! step (the message says which), 2 bad command line.

use std::time::{SystemTime, UNIX_EPOCH};

use telesub_client::{Client, Error, display::vnd, proto};

const USAGE: &str = "usage: device_allocation ENDPOINT TLS_DIR ICT_ORG COMMITTEE_ORG [EDUCATION_ORG] \
                     [--decision NUMBER] [--nominate CODE]...\n\
                     e.g.   device_allocation https://localhost:50051 ./dev-tls DOICT UBND DOET";

/// Lines of the published page printed.
const PAGE_LINES: usize = 12;

struct Args {
    endpoint: String,
    tls_dir: String,
    ict: String,
    committee: String,
    education: Option<String>,
    decision: Option<String>,
    nominate: Vec<String>,
}

fn args() -> Option<Args> {
    let mut positional = Vec::new();
    let (mut decision, mut nominate) = (None, Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--decision" => decision = Some(args.next().filter(|d| !d.trim().is_empty())?),
            "--nominate" => nominate.push(args.next()?),
            flag if flag.starts_with("--") => return None,
            _ => positional.push(arg),
        }
    }
    let education = if positional.len() == 5 { positional.pop() } else { None };
    let [endpoint, tls_dir, ict, committee]: [String; 4] = positional.try_into().ok()?;
    if education.is_none() && !nominate.is_empty() {
        return None;
    }
    Some(Args { endpoint, tls_dir, ict, committee, education, decision, nominate })
}

/// A 15-digit IMEI: the 14 digits of `prefix14` followed by their Luhn check digit.
fn luhn_imei(prefix14: &str) -> String {
    assert!(prefix14.len() == 14 && prefix14.bytes().all(|b| b.is_ascii_digit()), "an IMEI starts with 14 digits");
    // From the right, every other digit is doubled, starting with the one next to the check
    // digit.
    let sum: u32 = prefix14
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let digit = u32::from(b - b'0');
            if i % 2 == 0 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    format!("{prefix14}{}", (10 - sum % 10) % 10)
}

/// The date `days` after 1970-01-01, as `YYYY-MM-DD` (the proleptic Gregorian calendar).
fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Today in Vietnam (UTC+7), where the hub counts its days.
fn today() -> String {
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    civil_date(i64::try_from((seconds + 7 * 3_600) / 86_400).unwrap_or_default())
}

fn status_name(a: &proto::Allocation) -> &'static str {
    a.status().as_str_name().trim_start_matches("ALLOCATION_STATUS_")
}

fn device_name(device: proto::DeviceType) -> &'static str {
    match device {
        proto::DeviceType::Tablet => "tablet",
        proto::DeviceType::Smartphone => "smartphone",
        proto::DeviceType::Unspecified => "-",
    }
}

fn print_allocation(a: &proto::Allocation) {
    println!(
        "allocation {} of {}: {}, list revision {}",
        a.decision_number,
        a.decision_date,
        status_name(a),
        a.revision
    );
    println!(
        "  {} tablet(s), {} smartphone(s); cash alternative {}",
        a.tablets,
        a.smartphones,
        vnd(a.cash_alternative_amount)
    );
    if a.proposed_at.is_some() {
        println!(
            "  proposed from the register as of {} (policy version {}): {} eligible, {} on the list",
            a.proposal_as_of, a.policy_version, a.eligible_households, a.recipients
        );
    }
    if !a.list_digest.is_empty() {
        println!("  list digest {}", a.list_digest);
    }
    if !a.approval_number.is_empty() {
        println!("  approved by {} under {}", a.decided_by, a.approval_number);
    }
}

fn print_recipients(recipients: &[proto::AllocationRecipient]) {
    for r in recipients {
        let priority = r.priority().as_str_name().trim_start_matches("DEVICE_PRIORITY_");
        let line = format!(
            "  {:>3}  {:<12} commune {:<6} {:<10} {:<26} {:<16} {}{}",
            r.rank,
            r.household_code,
            r.commune_code,
            device_name(r.device_type()),
            priority,
            r.head_name_masked,
            if r.nominated { " nominated" } else { "" },
            if r.added { " added" } else { "" },
        );
        println!("{}", line.trim_end());
    }
}

fn print_progress(a: &proto::Allocation) {
    println!("  {:<10} {:>8} {:>8} {:>8} {:>8}", "UNIT", "ON LIST", "DEVICES", "CASH", "NOT YET");
    for p in &a.progress {
        let unit = if p.unit_code.is_empty() { "province" } else { p.unit_code.as_str() };
        println!("  {unit:<10} {:>8} {:>8} {:>8} {:>8}", p.on_list, p.devices_handed_over, p.cash_paid, p.not_yet);
    }
}

/// Every household on the list, in rank order.
async fn recipients(client: &Client, decision: &str) -> Result<Vec<proto::AllocationRecipient>, Error> {
    client
        .all_allocation_recipients(proto::ListAllocationRecipientsRequest {
            decision_number: decision.to_owned(),
            ..Default::default()
        })
        .await
}

/// Names the step that failed.
fn step(what: &'static str) -> impl FnOnce(Error) -> String {
    move |e| format!("{what}: {e}")
}

/// A client with the certificate of `org` in the certificate folder.
async fn connect(args: &Args, org: &str) -> Result<Client, String> {
    let connecting = async { Client::builder(args.endpoint.clone()).dev_folder(&args.tls_dir, org)?.connect().await };
    connecting.await.map_err(|e: Error| format!("connecting as {org}: {e}"))
}

async fn run(args: Args) -> Result<(), String> {
    let ict = connect(&args, &args.ict).await?;
    let committee = connect(&args, &args.committee).await?;
    let education = match &args.education {
        Some(org) => Some(connect(&args, org).await?),
        None => None,
    };

    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let decision = args.decision.clone().unwrap_or_else(|| format!("DEMO-{}", now.as_secs()));
    let today = today();

    // 1. The Ministry's decision.
    let recorded = ict
        .record_allocation_decision(proto::RecordAllocationDecisionRequest {
            decision_number: decision.clone(),
            decision_date: today.clone(),
            tablets: 2,
            smartphones: 3,
            unit_quotas: Vec::new(),
            cash_alternative_amount: 0,
            note: "device_allocation example".to_owned(),
        })
        .await
        .map_err(step("recording the decision"))?;
    print_allocation(&recorded);

    // 2. The education department's nominations.
    if let Some(education) = &education {
        let mut codes = args.nominate.clone();
        if codes.is_empty() {
            ict.propose_recipients(&decision, "").await.map_err(step("proposing a first draft"))?;
            let draft = recipients(&ict, &decision).await.map_err(step("reading the first draft"))?;
            codes = draft.iter().rev().take(2).map(|r| r.household_code.clone()).collect();
        }
        if !codes.is_empty() {
            let reason = "pupils at the commune's lower secondary school";
            let answer = education
                .nominate_households(&decision, codes.iter().cloned(), reason)
                .await
                .map_err(step("nominating households"))?;
            println!(
                "nominated {}: {} new, {} nominated before",
                codes.join(", "),
                answer.nominated,
                answer.already_nominated
            );
        }
    }

    // 3. The list from today's register.
    let proposed = ict.propose_recipients(&decision, "").await.map_err(step("proposing the list"))?;
    print_allocation(&proposed);
    let list = recipients(&ict, &decision).await.map_err(step("reading the list"))?;
    print_recipients(&list);
    let Some(first) = list.first().cloned() else {
        println!("no household on the list: every eligible household of the register holds a place already");
        return Ok(());
    };

    // 4. One household off the draft.
    if let [_, .., last] = list.as_slice() {
        let amended = ict
            .amend_proposal(proto::AmendProposalRequest {
                decision_number: decision.clone(),
                action: proto::AmendAction::Remove.into(),
                household_code: last.household_code.clone(),
                device_type: proto::DeviceType::Unspecified.into(),
                reason: "moved out of the province".to_owned(),
            })
            .await
            .map_err(step("amending the draft"))?;
        println!(
            "removed {} from the draft: {} household(s) on the list, revision {}",
            last.household_code, amended.recipients, amended.revision
        );
    }

    // 5. Submitted by ICT, approved by the committee.
    let submitted = ict.submit_for_approval(&decision).await.map_err(step("submitting the list"))?;
    println!("submitted {}: list digest {}", decision, submitted.list_digest);
    let approved = committee
        .approve_allocation(proto::ApproveRequest {
            decision_number: decision.clone(),
            approval_number: format!("UBND-{}", now.as_secs()),
            note: "approved as submitted".to_owned(),
            list_digest: submitted.list_digest.clone(),
            approved_on: String::new(),
        })
        .await
        .map_err(step("approving the list"))?;
    print_allocation(&approved);

    // 6. The first household's device.
    let imei = luhn_imei(&format!("35{:012}", now.as_millis() % 1_000_000_000_000));
    let device_type = first.device_type();
    let serial_number =
        if device_type == proto::DeviceType::Tablet { format!("TAB-{}", now.as_millis()) } else { String::new() };
    let received_by =
        if first.head_name_masked.is_empty() { "head of household".to_owned() } else { first.head_name_masked.clone() };
    let handover = ict
        .record_handover(proto::RecordHandoverRequest {
            decision_number: decision.clone(),
            household_code: first.household_code.clone(),
            handed_over_on: today.clone(),
            received_by,
            kind: Some(proto::record_handover_request::Kind::Device(proto::DeviceHandover {
                device_type: device_type.into(),
                serial_number,
                imei: imei.clone(),
            })),
        })
        .await
        .map_err(step("recording the hand-over"))?;
    println!(
        "handed over to {}: a {} with IMEI {imei}, on {}, signed by {}",
        handover.household_code,
        device_name(device_type),
        handover.handed_over_on,
        handover.received_by
    );

    // 7. Progress, and the notice board.
    let allocation = ict.get_allocation(&decision).await.map_err(step("reading the allocation"))?;
    println!("progress of {decision}:");
    print_progress(&allocation);
    let page = ict
        .published_recipients_file(proto::PublishedRecipientsRequest {
            decision_number: decision.clone(),
            commune_code: first.commune_code.clone(),
            format: proto::PublishFormat::Html.into(),
            without_byte_order_mark: false,
        })
        .await
        .map_err(step("fetching the published page"))?;
    let text = String::from_utf8_lossy(&page.data);
    println!(
        "published page of commune {}: {} ({}, {} bytes); its first lines:",
        first.commune_code,
        page.file_name,
        page.content_type,
        page.data.len()
    );
    for line in text.lines().filter(|l| !l.trim().is_empty()).take(PAGE_LINES) {
        println!("  | {line}");
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Some(args) = args() else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    if let Err(message) = run(args).await {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imeis_end_with_their_luhn_digit() {
        assert_eq!(luhn_imei("49015420323751"), "490154203237518");
        assert_eq!(luhn_imei("35693803564380"), "356938035643809");
        assert_eq!(luhn_imei("00000000000000"), "000000000000000");
    }

    #[test]
    fn days_count_from_1970() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(19_417), "2023-03-01");
        assert_eq!(civil_date(19_416), "2023-02-28");
        assert_eq!(civil_date(20_148), "2025-03-01");
        assert_eq!(civil_date(20_147), "2025-02-28");
        assert_eq!(civil_date(11_016), "2000-02-29");
    }
}
