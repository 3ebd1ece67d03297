//! `telesub demo`: the hub's main job end to end on the embedded default. It writes
//! development certificates and an SQLite database into a fresh folder, starts the hub with
//! mutual TLS on a free port, drives it through the client SDK as each kind of member,
//! stops it, verifies the audit trail and prints what happened.
//!
//! The last part is a month end: VNPT and VIETTEL each submit their list of supported
//! subscribers for March 2025 (after the review of 1 January and February's changes), one
//! household is claimed by both, the hub flags it on both lists, and the ICT department
//! confirms the OK lines of one list and rejects the other. Then the province allocates a
//! small batch of donated devices: the hub proposes the households, the People's Committee
//! approves the list, hand-overs are recorded and one commune's published list is printed.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::Instant,
};

use telesub_client::{Client, Error as ClientError, display::vnd, proto};
use tokio::sync::oneshot;

use telesub_server::{
    audit,
    config::{DatabaseUrl, LogFormat, Settings},
    pki::{self, OrgSpec},
    startup::Hub,
    telemetry,
};

use crate::generator::HouseholdGenerator;

/// The organisations of the demo: the ICT and labour departments, two operators, the city of
/// Gia Nghĩa (district 660), the education department and the provincial People's Committee.
const ORGS: &[&str] = &[
    "DOICT:ICT",
    "DOLISA:LABOUR",
    "VNPT:OPERATOR",
    "VIETTEL:OPERATOR",
    "GIANGHIA:LOCALITY:660",
    "DOET:EDUCATION",
    "UBND:PROVINCE_COMMITTEE",
];

fn working_folder(dir: Option<PathBuf>) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let dir = dir.unwrap_or_else(|| {
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
        std::env::temp_dir().join(format!("telesub-demo-{stamp}-{}", std::process::id()))
    });
    if dir.exists() {
        return Err(format!("{} exists already; the demo starts from an empty folder", dir.display()).into());
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn client(addr: std::net::SocketAddr, tls_dir: &Path, org: &str) -> Result<Client, ClientError> {
    Client::builder(format!("https://localhost:{}", addr.port())).dev_folder(tls_dir, org)?.connect().await
}

fn role_name(role: proto::Role) -> &'static str {
    role.as_str_name().trim_start_matches("ROLE_")
}

pub async fn run(dir: Option<PathBuf>, out: &mut (dyn Write + Send)) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    telemetry::init(LogFormat::Text, "error");
    let dir = working_folder(dir)?;
    let tls_dir = dir.join("tls");
    let orgs: Vec<OrgSpec> = ORGS.iter().map(|o| o.parse()).collect::<Result<_, _>>()?;
    pki::init(&tls_dir, &orgs)?;
    writeln!(out, "1. Development certificates for {} organisations in {}", orgs.len(), tls_dir.display())?;

    let mut settings = Settings {
        listen: "127.0.0.1:0".parse()?,
        database_url: DatabaseUrl(format!("sqlite://{}", dir.join("telesub.db").display())),
        ..Settings::default()
    };
    settings.tls.dir = Some(tls_dir.clone());
    let hub = Hub::build(settings.clone()).await?;
    let addr = hub.local_addr();
    let store = hub.store();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(hub.run(async {
        let _ = stopped.await;
    }));
    writeln!(out, "2. Hub listening on {addr} (mutual TLS), database {}", settings.database_url)?;

    let ict = client(addr, &tls_dir, "DOICT").await?;
    writeln!(out, "3. Health check: {}", if ict.health().await? { "SERVING" } else { "NOT SERVING" })?;

    writeln!(out, "4. Each member asks the hub who it is:")?;
    for org in &orgs {
        let me = client(addr, &tls_dir, &org.code).await?.who_am_i().await?;
        let m = me.member.unwrap_or_default();
        let unit = if m.unit_code.is_empty() { String::new() } else { format!("unit {}", m.unit_code) };
        writeln!(
            out,
            "   {:<9} {:<10} {:<9} cert {}…",
            m.code,
            role_name(m.role()),
            unit,
            &me.certificate_fingerprint[..16]
        )?;
    }

    let operator = client(addr, &tls_dir, "VNPT").await?;
    match operator.list_members(proto::ListMembersRequest::default()).await {
        Err(ClientError::PermissionDenied(r)) => writeln!(out, "5. VNPT lists the members: refused, {}", r.message)?,
        other => {
            return Err(format!("an operator listing members should be refused, got {other:?}").into());
        }
    }

    let added = ict
        .register_member(proto::RegisterMemberRequest {
            code: "MOBIFONE".into(),
            display_name: "Tổng công ty Viễn thông MobiFone".into(),
            role: proto::Role::Operator.into(),
            unit_code: String::new(),
        })
        .await?;
    writeln!(out, "6. DOICT registers {} ({})", added.code, added.display_name)?;
    match ict
        .register_member(proto::RegisterMemberRequest {
            code: "bad code".into(),
            display_name: String::new(),
            role: proto::Role::Locality.into(),
            unit_code: "12".into(),
        })
        .await
    {
        Err(ClientError::InvalidArgument(r)) => {
            writeln!(out, "7. DOICT registers a malformed member: refused, {} problems:", r.violations.len())?;
            for v in &r.violations {
                writeln!(out, "   {}: {}", v.field, v.description)?;
            }
        }
        other => {
            return Err(format!("a malformed registration should be refused, got {other:?}").into());
        }
    }
    ict.suspend_member("VIETTEL", "certificate reported lost").await?;
    match client(addr, &tls_dir, "VIETTEL").await?.who_am_i().await {
        Err(ClientError::PermissionDenied(r)) => {
            writeln!(out, "8. DOICT suspends VIETTEL; VIETTEL's next call: refused, {}", r.message)?
        }
        other => return Err(format!("a suspended member should be refused, got {other:?}").into()),
    }
    let listed = ict.list_members(proto::ListMembersRequest::default()).await?;
    writeln!(out, "9. Members now:")?;
    for m in &listed.members {
        let status = m.status().as_str_name().trim_start_matches("MEMBER_STATUS_");
        writeln!(out, "   {:<9} {:<10} {:<9} {}", m.code, role_name(m.role()), status, m.display_name)?;
    }

    let enrolled = households(addr, &tls_dir, out).await?;
    monthly_lists(addr, &tls_dir, &enrolled, out).await?;
    devices(addr, &tls_dir, &dir, out).await?;

    let _ = stop.send(());
    serving.await??;
    let key = settings.audit_key().ok().map(|k| k.verifier());
    let report = audit::verify_with(store.as_ref(), &audit::VerifyOptions { key, kept: Vec::new() }).await?;
    match &report.first_break {
        None => writeln!(
            out,
            "28. Hub stopped. Audit trail: {} records, chain intact (last hash {}…), {} signed checkpoints hold",
            report.records,
            &report.last_hash[..16],
            report.checkpoints
        )?,
        Some(brk) => return Err(format!("the audit trail is broken: {brk}").into()),
    }
    writeln!(
        out,
        "\nDone in {:.1} s. To serve this folder again:\n  telesub serve --tls-dir {} --database {}",
        started.elapsed().as_secs_f64(),
        tls_dir.display(),
        settings.database_url
    )?;
    Ok(())
}

/// Households in the demo's yearly review.
const REVIEW: usize = 2_000;

/// A subsidised line an operator enrolled.
struct Line {
    household: String,
    subscriber: String,
    phone: String,
}

/// The labour department pushes the yearly review and a month of changes; a locality reads
/// what lies in its district. Returns the line VNPT enrols on the way.
async fn households(
    addr: std::net::SocketAddr,
    tls_dir: &Path,
    out: &mut (dyn Write + Send),
) -> Result<Line, Box<dyn std::error::Error>> {
    use futures_util::{StreamExt, stream};
    let labour = client(addr, tls_dir, "DOLISA").await?;
    let header = |id: &str, kind: proto::BatchKind, period: &str, date: &str| proto::BatchHeader {
        batch_id: id.into(),
        kind: kind.into(),
        review_period: period.into(),
        effective_date: date.into(),
        note: "demo".into(),
    };
    let review = HouseholdGenerator::reference(7).take(REVIEW);
    let started = Instant::now();
    let r = labour
        .push_batch(header("review-2024", proto::BatchKind::Snapshot, "2024", "2025-01-01"), stream::iter(review))
        .await?;
    writeln!(
        out,
        "10. DOLISA pushes the 2024 review: {} households added in {:.2} s",
        r.added,
        started.elapsed().as_secs_f64()
    )?;

    // February: 10 new households, 20 that moved within their commune, 5 out of poverty.
    let mut changes: Vec<proto::HouseholdRecord> = HouseholdGenerator::reference(7).skip(REVIEW).take(10).collect();
    for mut record in HouseholdGenerator::reference(7).take(20) {
        if let Some(proto::household_record::Change::Upsert(d)) = record.change.as_mut() {
            d.address = "Tổ dân phố 12 (chuyển đến tháng 2)".into();
        }
        changes.push(record);
    }
    for record in HouseholdGenerator::reference(7).skip(20).take(5) {
        changes.push(proto::HouseholdRecord {
            household_code: record.household_code,
            effective_date: "2025-02-15".into(),
            change: Some(proto::household_record::Change::Removal(proto::Removal {
                reason: proto::RemovalReason::OutOfPoverty.into(),
                note: "commune review".into(),
            })),
        });
    }
    // VNPT supports one of the households that will leave the list in February.
    let vnpt = client(addr, tls_dir, "VNPT").await?;
    let leaving = HouseholdGenerator::reference(7)
        .skip(20)
        .take(5)
        .find_map(|r| match r.change {
            Some(proto::household_record::Change::Upsert(d))
                if d.category() != proto::Category::Other && !d.members.is_empty() =>
            {
                Some((r.household_code, d.members[0].citizen_id.clone()))
            }
            _ => None,
        })
        .ok_or("the demo's households 20 to 24 are none of them supported")?;
    let decision = vnpt.check_citizen(&leaving.1, "2025-01-15").await?;
    let enrolled = vnpt
        .enroll(proto::EnrollRequest {
            idempotency_key: "demo-1".into(),
            household_code: leaving.0.clone(),
            subscriber_citizen_id: leaving.1.clone(),
            phone_number: "0912 345 678".into(),
            service: proto::SupportedService::Mobile.into(),
            start_date: "2025-01-15".into(),
        })
        .await?;
    writeln!(
        out,
        "11. VNPT checks {} ({}): {}; enrols {} for number {} from {}",
        leaving.1,
        decision.head_name_masked,
        if decision.eligible { "eligible" } else { "not eligible" },
        enrolled.household_code,
        enrolled.phone_number,
        enrolled.start_date
    )?;

    let first = changes[10].household_code.clone();
    let r = labour
        .push_batch(header("2025-02", proto::BatchKind::Delta, "2025-02", "2025-02-01"), stream::iter(changes))
        .await?;
    writeln!(
        out,
        "12. DOLISA pushes February's changes: {} added, {} changed, {} removed; {} has {} states",
        r.added,
        r.changed,
        r.removed,
        first,
        labour.household_history(&first).await?.versions.len()
    )?;

    // The removal reaches VNPT through its feed.
    let mut feed = vnpt.watch_changes("", 0).await?;
    while let Some(message) = feed.next().await {
        let message = message?;
        if message.events.is_empty() {
            break;
        }
        for e in message.events {
            writeln!(
                out,
                "13. VNPT's feed: {} {} from {} ({}); support ends {}",
                e.kind().as_str_name().trim_start_matches("CHANGE_KIND_"),
                e.household_code,
                e.effective_date,
                e.removal_reason().as_str_name().trim_start_matches("REMOVAL_REASON_"),
                e.support_ends
            )?;
        }
    }
    Ok(Line { household: enrolled.household_code, subscriber: leaving.1, phone: enrolled.phone_number })
}

/// The month of the demo's monthly lists: after the review of 1 January and February's
/// changes, and long past.
const PERIOD: &str = "2025-03";

/// A claim of the full 60,000 VND for the 31 days of March; matched to the operator's
/// enrolment by its number.
fn claim(household: &str, subscriber: &str, phone: &str) -> proto::MonthlyLine {
    proto::MonthlyLine {
        phone_number: phone.into(),
        subscriber_citizen_id: subscriber.into(),
        household_code: household.into(),
        enrollment_id: String::new(),
        change: proto::SupportChange::Continuing.into(),
        service: proto::SupportedService::Mobile.into(),
        package_code: "ASXH70".into(),
        tariff: 70_000,
        amount_claimed: 60_000,
        days_of_service: 31,
        used: true,
        unclaimed_reason: 0,
    }
}

fn status_name(r: &proto::MonthlyReconciliation) -> &'static str {
    r.status().as_str_name().trim_start_matches("RECONCILIATION_STATUS_")
}

/// A list's status and figures in a few words.
fn figures(r: &proto::MonthlyReconciliation) -> String {
    let f = r.figures.clone().unwrap_or_default();
    format!(
        "{}, {} lines, {} OK, {} claimed, {} confirmable",
        status_name(r),
        f.lines,
        f.lines_ok,
        vnd(f.amount_claimed),
        vnd(f.amount_confirmable)
    )
}

/// The lines of a list with a discrepancy, each as `line N (household): CODE, CODE`.
async fn flagged(client: &Client, operator: &str, update_id: &str) -> Result<Vec<String>, ClientError> {
    let page = client
        .list_discrepancies(proto::ListDiscrepanciesRequest {
            operator: operator.into(),
            update_id: update_id.into(),
            ..Default::default()
        })
        .await?;
    Ok(page
        .lines
        .iter()
        .map(|l| {
            let codes: Vec<&str> = l
                .discrepancies
                .iter()
                .map(|d| d.code().as_str_name().trim_start_matches("DISCREPANCY_CODE_"))
                .collect();
            let household = l.line.as_ref().map(|l| l.household_code.as_str()).unwrap_or_default();
            format!("line {} ({household}): {}", l.line_number, codes.join(", "))
        })
        .collect())
}

/// Month end: both operators submit their March list, one household is claimed by both, and
/// the ICT department decides.
async fn monthly_lists(
    addr: std::net::SocketAddr,
    tls_dir: &Path,
    first: &Line,
    out: &mut (dyn Write + Send),
) -> Result<(), Box<dyn std::error::Error>> {
    use futures_util::stream;
    let ict = client(addr, tls_dir, "DOICT").await?;
    ict.update_member(proto::UpdateMemberRequest {
        code: "VIETTEL".into(),
        status: Some(proto::MemberStatus::Active.into()),
        ..Default::default()
    })
    .await?;
    let (vnpt, viettel) = (client(addr, tls_dir, "VNPT").await?, client(addr, tls_dir, "VIETTEL").await?);

    // Two more supported households, untouched by February's changes: one for each operator.
    let mut supported = HouseholdGenerator::reference(7).take(REVIEW).skip(100).filter_map(|r| match r.change {
        Some(proto::household_record::Change::Upsert(d))
            if d.category() != proto::Category::Other && !d.members.is_empty() =>
        {
            Some((r.household_code, d.members[0].citizen_id.clone()))
        }
        _ => None,
    });
    let (Some(second), Some(third)) = (supported.next(), supported.next()) else {
        return Err("the demo's review has too few supported households".into());
    };
    let enroll = |key: &str, (household, subscriber): &(String, String), phone: &str| proto::EnrollRequest {
        idempotency_key: key.into(),
        household_code: household.clone(),
        subscriber_citizen_id: subscriber.clone(),
        phone_number: phone.into(),
        service: proto::SupportedService::Mobile.into(),
        start_date: "2025-02-01".into(),
    };
    let second = vnpt.enroll(enroll("demo-2", &second, "0914 222 333")).await?;
    let third = viettel.enroll(enroll("demo-3", &third, "0987 654 321")).await?;
    writeln!(out, "14. DOICT reinstates VIETTEL; each operator enrols one more household from {}:", second.start_date)?;
    writeln!(
        out,
        "    VNPT {} for number {}, VIETTEL {} for number {}",
        second.household_code, second.phone_number, third.household_code, third.phone_number
    )?;

    let header = |id: &str| proto::MonthlyUpdateHeader {
        period: PERIOD.into(),
        update_id: id.into(),
        replaces_earlier: false,
        note: "demo".into(),
    };
    let ours = vec![
        claim(&first.household, &first.subscriber, &first.phone),
        claim(&second.household_code, &second.subscriber_citizen_id, &second.phone_number),
    ];
    let r = vnpt.submit_monthly_update(header("vnpt-2025-03"), stream::iter(ours)).await?;
    writeln!(
        out,
        "15. VNPT submits its {PERIOD} list: {} (removed in February; grace to the end of the year) and {}, \
         60,000 VND each",
        first.household, second.household_code
    )?;
    writeln!(out, "    hub: {}", figures(&r))?;

    // VIETTEL's billing still holds a subscriber of VNPT's household.
    let theirs = vec![
        claim(&third.household_code, &third.subscriber_citizen_id, &third.phone_number),
        claim(&second.household_code, &second.subscriber_citizen_id, "0961234567"),
    ];
    let r = viettel.submit_monthly_update(header("viettel-2025-03"), stream::iter(theirs)).await?;
    writeln!(
        out,
        "16. VIETTEL submits its {PERIOD} list: {}, and {} under a number of its own",
        third.household_code, second.household_code
    )?;
    writeln!(out, "    hub: {}", figures(&r))?;
    for line in flagged(&viettel, "", "viettel-2025-03").await? {
        writeln!(out, "    {line}")?;
    }

    // VNPT's list is reconciled again in the background; it cannot be decided until then.
    let waited = Instant::now();
    let mut r = ict.get_reconciliation("VNPT", "vnpt-2025-03").await?;
    let was_stale = r.stale;
    while r.stale {
        if waited.elapsed().as_secs() > 60 {
            return Err("VNPT's list stayed stale for a minute".into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        r = ict.get_reconciliation("VNPT", "vnpt-2025-03").await?;
    }
    let stale = if was_stale { format!(" (stale for {:.2} s)", waited.elapsed().as_secs_f64()) } else { String::new() };
    writeln!(out, "17. VNPT's list is reconciled again in the background{stale}")?;
    writeln!(out, "    hub: {}", figures(&r))?;
    for line in flagged(&vnpt, "", "vnpt-2025-03").await? {
        writeln!(out, "    {line}")?;
    }

    let month = ict
        .list_reconciliations(proto::ListReconciliationsRequest { period: PERIOD.into(), ..Default::default() })
        .await?;
    writeln!(out, "18. DOICT lists {PERIOD}:")?;
    for r in &month.reconciliations {
        writeln!(out, "    {:<8} {:<16} {}", r.operator, r.update_id, figures(r))?;
    }

    let confirmed = ict
        .confirm_reconciliation(proto::ConfirmRequest {
            operator: "VNPT".into(),
            update_id: "vnpt-2025-03".into(),
            scope: proto::ConfirmationScope::OkLines.into(),
            note: "Biên bản đối soát tháng 03/2025".into(),
        })
        .await?;
    let c = confirmed.confirmation.clone().unwrap_or_default();
    writeln!(
        out,
        "19. DOICT confirms VNPT's OK lines: {}, {} line{}, {}, lines digest {}…",
        status_name(&confirmed),
        c.lines,
        if c.lines == 1 { "" } else { "s" },
        vnd(c.amount),
        c.lines_digest.get(..16).unwrap_or_default()
    )?;

    let note = "line 2: a household you have not enrolled, claimed by another operator too; send the list again \
                without it";
    let rejected = ict.reject_reconciliation("VIETTEL", "viettel-2025-03", note).await?;
    writeln!(
        out,
        "20. DOICT rejects VIETTEL's list: {} by {}: \"{}\"",
        status_name(&rejected),
        rejected.rejected_by,
        rejected.rejection_note
    )?;
    Ok(())
}

/// The demo's device allocation.
const DECISION: &str = "DEMO-01/QĐ-BTTTT";

/// DOICT records a decision of 14 devices for two districts, DOET nominates two households,
/// the hub proposes the list, DOICT takes one household off and submits it, the People's
/// Committee approves it, Gia Nghĩa records a hand-over and DOICT a cash payment, and the
/// published list of one commune is printed (and its notice-board page saved).
async fn devices(
    addr: std::net::SocketAddr,
    tls_dir: &Path,
    dir: &Path,
    out: &mut (dyn Write + Send),
) -> Result<(), Box<dyn std::error::Error>> {
    use telesub_server::domain::{clock::Clock, devices::luhn_digit, household::format_date};
    let ict = client(addr, tls_dir, "DOICT").await?;
    let (doet, committee, locality) = (
        client(addr, tls_dir, "DOET").await?,
        client(addr, tls_dir, "UBND").await?,
        client(addr, tls_dir, "GIANGHIA").await?,
    );
    let quota = |unit: &str, tablets, smartphones| proto::UnitQuota {
        unit_code: unit.into(),
        tablets,
        smartphones,
        unit_name: String::new(),
    };
    let recorded = ict
        .record_allocation_decision(proto::RecordAllocationDecisionRequest {
            decision_number: DECISION.into(),
            decision_date: "2025-03-01".into(),
            tablets: 4,
            smartphones: 10,
            unit_quotas: vec![quota("660", 2, 6), quota("661", 2, 4)],
            cash_alternative_amount: 0,
            note: "demo".into(),
        })
        .await?;
    writeln!(
        out,
        "21. DOICT records the Ministry's decision {}: {} smartphones and {} tablets for {}; cash alternative {}",
        recorded.decision_number,
        recorded.smartphones,
        recorded.tablets,
        recorded.unit_quotas.iter().map(|q| q.unit_name.as_str()).collect::<Vec<_>>().join(" and "),
        vnd(recorded.cash_alternative_amount)
    )?;

    // Two near-poor households that want a device: DOET has pupils of theirs.
    let nominees: Vec<String> = HouseholdGenerator::reference(7)
        .take(REVIEW)
        .filter_map(|r| match r.change {
            Some(proto::household_record::Change::Upsert(d))
                if d.category() == proto::Category::NearPoor
                    && d.flags.is_some_and(|f| f.wants_device && !f.earlier_programme_device)
                    && d.commune_code.starts_with("246") =>
            {
                Some(r.household_code)
            }
            _ => None,
        })
        .take(2)
        .collect();
    let nominated = doet.nominate_households(DECISION, nominees.iter(), "học sinh đang đi học").await?;
    writeln!(out, "22. DOET nominates {} households with pupils: {}", nominated.nominated, nominees.join(", "))?;

    let proposed = ict.propose_recipients(DECISION, "2025-03-01").await?;
    let list = ict
        .all_allocation_recipients(proto::ListAllocationRecipientsRequest {
            decision_number: DECISION.into(),
            ..Default::default()
        })
        .await?;
    writeln!(
        out,
        "23. The hub proposes {} of the {} households that qualify (digest {}…):",
        proposed.recipients,
        proposed.eligible_households,
        proposed.proposal_digest.get(..16).unwrap_or_default()
    )?;
    for r in &list {
        writeln!(
            out,
            "    {:>2}. {:<12} {} {:<13} {:<26} {}{}",
            r.rank,
            r.household_code,
            r.commune_code,
            r.head_name_masked,
            r.priority().as_str_name().trim_start_matches("DEVICE_PRIORITY_"),
            r.device_type().as_str_name().trim_start_matches("DEVICE_TYPE_"),
            if r.nominated { " (nominated)" } else { "" }
        )?;
    }
    let Some(last) = list.iter().rev().find(|r| r.unit_code == "660") else {
        return Err("the demo's register has no household for a device in Gia Nghĩa".into());
    };
    ict.amend_proposal(proto::AmendProposalRequest {
        decision_number: DECISION.into(),
        action: proto::AmendAction::Remove.into(),
        household_code: last.household_code.clone(),
        device_type: 0,
        reason: "đã chuyển khỏi địa bàn".into(),
    })
    .await?;
    let submitted = ict.submit_for_approval(DECISION).await?;
    writeln!(
        out,
        "24. DOICT takes {} off the list (moved away) and submits {} households; list digest {}…",
        last.household_code,
        submitted.recipients,
        submitted.list_digest.get(..16).unwrap_or_default()
    )?;
    let approved = committee
        .approve_allocation(proto::ApproveRequest {
            decision_number: DECISION.into(),
            approval_number: "DEMO-123/QĐ-UBND".into(),
            note: String::new(),
            list_digest: submitted.list_digest.clone(),
            approved_on: String::new(),
        })
        .await?;
    writeln!(
        out,
        "25. UBND approves the list by decision {}: {}",
        approved.approval_number,
        approved.status().as_str_name().trim_start_matches("ALLOCATION_STATUS_")
    )?;

    // Gia Nghĩa hands a smartphone over; DOICT pays the cash alternative to a household that
    // bought its own phone.
    let in_660: Vec<&proto::AllocationRecipient> =
        list.iter().filter(|r| r.unit_code == "660" && r.household_code != last.household_code).collect();
    let (Some(phone_to), Some(cash_to)) = (
        in_660.iter().find(|r| r.device_type() == proto::DeviceType::Smartphone),
        in_660.iter().rev().find(|r| r.device_type() == proto::DeviceType::Smartphone),
    ) else {
        return Err("the demo's list has too few smartphones in Gia Nghĩa".into());
    };
    let prefix = "35209900176148";
    let digits: Vec<u32> = prefix.bytes().map(|b| u32::from(b - b'0')).collect();
    let imei = format!("{prefix}{}", luhn_digit(&digits));
    let on = format_date(Clock::system().today());
    let handed = locality
        .record_handover(proto::RecordHandoverRequest {
            decision_number: DECISION.into(),
            household_code: phone_to.household_code.clone(),
            handed_over_on: on.clone(),
            received_by: "Nguyễn Văn Bình".into(),
            kind: Some(proto::record_handover_request::Kind::Device(proto::DeviceHandover {
                device_type: proto::DeviceType::Smartphone.into(),
                serial_number: String::new(),
                imei: imei.clone(),
            })),
        })
        .await?;
    ict.record_handover(proto::RecordHandoverRequest {
        decision_number: DECISION.into(),
        household_code: cash_to.household_code.clone(),
        handed_over_on: on,
        received_by: "Trần Thị Hoa".into(),
        kind: Some(proto::record_handover_request::Kind::Cash(proto::CashPayment {
            amount: approved.cash_alternative_amount,
            phone_bought_on: "2024-09-02".into(),
            receipt_reference: "PC-DEMO-001".into(),
        })),
    })
    .await?;
    writeln!(
        out,
        "26. {} hands a smartphone (IMEI {imei}) to {}; DOICT pays {} to {}, who bought a phone of their own",
        handed.recorded_by,
        handed.household_code,
        vnd(approved.cash_alternative_amount),
        cash_to.household_code
    )?;
    match ict
        .record_handover(proto::RecordHandoverRequest {
            decision_number: DECISION.into(),
            household_code: phone_to.household_code.clone(),
            handed_over_on: handed.handed_over_on.clone(),
            received_by: "Nguyễn Văn Bình".into(),
            kind: Some(proto::record_handover_request::Kind::Cash(proto::CashPayment {
                amount: approved.cash_alternative_amount,
                phone_bought_on: "2024-09-02".into(),
                receipt_reference: "PC-DEMO-002".into(),
            })),
        })
        .await
    {
        Err(ClientError::AlreadyExists(r)) => {
            writeln!(out, "    a second hand-over to {}: refused, {}", phone_to.household_code, r.message)?
        }
        other => return Err(format!("a second hand-over should be refused, got {other:?}").into()),
    }

    let commune = phone_to.commune_code.clone();
    let request = |format: proto::PublishFormat| proto::PublishedRecipientsRequest {
        decision_number: DECISION.into(),
        commune_code: commune.clone(),
        format: format.into(),
        without_byte_order_mark: false,
    };
    let csv = ict.published_recipients_file(request(proto::PublishFormat::Csv)).await?;
    let page = ict.published_recipients_file(request(proto::PublishFormat::Html)).await?;
    let saved = dir.join(&page.file_name);
    std::fs::write(&saved, &page.data)?;
    writeln!(out, "27. The published list of commune {commune} (the notice-board page is {}):", saved.display())?;
    for line in String::from_utf8_lossy(&csv.data).lines() {
        writeln!(out, "    {line}")?;
    }
    Ok(())
}
