//! The labour department's system pushes a month's changes to the household register.
//!
//! ```text
//! labour_push https://localhost:50051 DIR DOLISA
//! ```
//! `DIR` is a certificate folder written by `telesub pki init` with a LABOUR organisation.
//! January adds two households; February changes one and takes the other off the list.
//! Batch ids are fixed, so running it again shows the hub replaying, not re-applying.

use futures_util::stream;
use telesub_client::{Client, Error, proto};

fn household(code: &str, head: &str, head_id: &str, category: proto::Category) -> proto::HouseholdRecord {
    proto::HouseholdRecord {
        household_code: code.into(),
        effective_date: String::new(),
        change: Some(proto::household_record::Change::Upsert(proto::HouseholdData {
            category: category.into(),
            head_name: head.into(),
            commune_code: "24611".into(), // Phường Nghĩa Đức, Gia Nghĩa
            address: "Tổ dân phố 2".into(),
            certificate: Some(proto::Certificate {
                number: format!("{}/GCN-HN.HCN", &code[3..]),
                issued_on: "2024-01-10".into(),
                issuing_unit_code: "24611".into(),
            }),
            flags: Some(proto::HouseholdFlags { wants_device: true, ..Default::default() }),
            members: vec![proto::HouseholdMember {
                citizen_id: head_id.into(),
                full_name: head.into(),
                relationship: proto::Relationship::Head.into(),
                birth_year: 1900 + head_id[4..6].parse::<i32>().unwrap_or(0),
            }],
        })),
    }
}

fn header(id: &str, period: &str, date: &str) -> proto::BatchHeader {
    proto::BatchHeader {
        batch_id: id.into(),
        kind: proto::BatchKind::Delta.into(),
        review_period: period.into(),
        effective_date: date.into(),
        note: "example".into(),
    }
}

async fn push(client: &Client, header: proto::BatchHeader, records: Vec<proto::HouseholdRecord>) -> Result<(), Error> {
    let id = header.batch_id.clone();
    match client.push_batch(header, stream::iter(records)).await {
        Ok(r) => {
            let how = if r.replayed { "already applied, nothing changed" } else { "applied" };
            println!(
                "{id}: {how}: {} records, {} added, {} changed, {} removed, {} unchanged",
                r.records, r.added, r.changed, r.removed, r.unchanged
            );
            Ok(())
        }
        Err(Error::InvalidArgument(r)) => {
            eprintln!("{id}: refused, nothing applied:");
            for v in &r.violations {
                eprintln!("  {}: {}", v.field, v.description);
            }
            Err(Error::InvalidArgument(r))
        }
        Err(e) => Err(e),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(endpoint), Some(dir), Some(org)) = (args.next(), args.next(), args.next()) else {
        eprintln!(
            "usage: labour_push ENDPOINT TLS_DIR ORG   (e.g. labour_push https://localhost:50051 ./dev-tls DOLISA)"
        );
        std::process::exit(2);
    };
    let client = Client::builder(endpoint).dev_folder(dir, &org)?.connect().await?;

    let january = vec![
        household("EX-0001", "Hoàng Văn Sáng", "067075000101", proto::Category::Poor),
        household("EX-0002", "H'Hoa Niê", "067168000102", proto::Category::NearPoor),
    ];
    push(&client, header("example-2024-01", "2024-01", "2024-01-01"), january).await?;

    let february = vec![
        household("EX-0001", "Hoàng Văn Sáng", "067075000101", proto::Category::NearPoor),
        proto::HouseholdRecord {
            household_code: "EX-0002".into(),
            effective_date: "2024-02-15".into(),
            change: Some(proto::household_record::Change::Removal(proto::Removal {
                reason: proto::RemovalReason::OutOfPoverty.into(),
                note: "commune review 2024-02".into(),
            })),
        },
    ];
    push(&client, header("example-2024-02", "2024-02", "2024-02-01"), february).await?;

    let history = client.household_history("EX-0001").await?;
    println!("EX-0001 has {} states:", history.versions.len());
    for v in &history.versions {
        let category = v.data.as_ref().map(|d| d.category().as_str_name()).unwrap_or_default();
        let until = if v.valid_to.is_empty() { "now" } else { v.valid_to.as_str() };
        println!("  {} to {until}: {category} (batch {})", v.valid_from, v.batch_id);
    }
    Ok(())
}
