//! `telesub demo`: the hub's main job end to end on the embedded default. It writes
//! development certificates and an SQLite database into a fresh folder, starts the hub with
//! mutual TLS on a free port, drives it through the client SDK as each kind of member,
//! stops it, verifies the audit trail and prints what happened.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::Instant,
};

use telesub_client::{Client, Error as ClientError, proto};
use tokio::sync::oneshot;

use crate::{
    audit,
    config::{DatabaseUrl, LogFormat, Settings},
    generator::HouseholdGenerator,
    pki::{self, OrgSpec},
    startup::Hub,
    telemetry,
};

/// The organisations of the demo: the ICT and labour departments, two operators, the city of
/// Gia Nghĩa (district 660) and the education department.
const ORGS: &[&str] =
    &["DOICT:ICT", "DOLISA:LABOUR", "VNPT:OPERATOR", "VIETTEL:OPERATOR", "GIANGHIA:LOCALITY:660", "DOET:EDUCATION"];

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

    households(addr, &tls_dir, out).await?;

    let _ = stop.send(());
    serving.await??;
    let report = audit::verify(store.as_ref()).await?;
    match &report.first_break {
        None => writeln!(
            out,
            "14. Hub stopped. Audit trail: {} records, chain intact (last hash {}…)",
            report.records,
            &report.last_hash[..16]
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

/// The labour department pushes the yearly review and a month of changes; a locality reads
/// what lies in its district.
async fn households(
    addr: std::net::SocketAddr,
    tls_dir: &Path,
    out: &mut (dyn Write + Send),
) -> Result<(), Box<dyn std::error::Error>> {
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
    Ok(())
}
