//! An operator's billing system keeping in step with the hub: it checks a subscriber's
//! eligibility at the counter, enrols the subsidised line, and follows the change feed from
//! the cursor it saved last time, so that it stops or changes support on time.
//!
//! ```text
//! operator_sync https://localhost:50051 DIR VNPT [CITIZEN_ID] [CURSOR_FILE]
//! ```
//! `DIR` is a certificate folder written by `telesub pki init` with an OPERATOR organisation.
//! The citizen ID defaults to the head of household `EX-0001` that `labour_push` records; the
//! cursor is kept in `operator_sync.cursor` unless a file is named. The enrolment's
//! idempotency key is fixed, so running it again shows the hub replaying the enrolment.

use std::{path::PathBuf, time::Duration};

use futures_util::StreamExt;
use telesub_client::{Client, Error, proto};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(endpoint), Some(dir), Some(org)) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: operator_sync ENDPOINT TLS_DIR ORG [CITIZEN_ID] [CURSOR_FILE]");
        std::process::exit(2);
    };
    let citizen_id = args.next().unwrap_or_else(|| "067075000101".to_owned());
    let cursor_file = PathBuf::from(args.next().unwrap_or_else(|| "operator_sync.cursor".to_owned()));
    let client = Client::builder(endpoint).dev_folder(dir, &org)?.connect().await?;

    // At the counter: is the subscriber's household entitled today?
    let decision = client.check_citizen(&citizen_id, "").await?;
    if !decision.eligible {
        for r in &decision.reasons {
            println!("not eligible: {}", r.message);
        }
        return Ok(());
    }
    let mobile = decision.entitlements.iter().find(|e| e.service() == proto::SupportedService::Mobile);
    println!(
        "eligible: household {} ({}), {} VND/month (decision {})",
        decision.household_code,
        decision.head_name_masked,
        mobile.map_or(0, |e| e.monthly_amount),
        decision.decision_id
    );

    // Enrol the line; the key makes a repeated run harmless.
    let request = proto::EnrollRequest {
        idempotency_key: format!("operator-sync-{}", decision.household_code),
        household_code: decision.household_code.clone(),
        subscriber_citizen_id: citizen_id.clone(),
        phone_number: "0912 000 101".into(),
        service: proto::SupportedService::Mobile.into(),
        start_date: String::new(),
    };
    match client.enroll(request).await {
        Ok(e) => println!("enrolled: enrolment {} from {}, number {}", e.enrollment_id, e.start_date, e.phone_number),
        Err(Error::FailedPrecondition(r)) => println!("not enrolled: {}", r.message),
        Err(e) => return Err(e.into()),
    }

    // Catch up with the feed from the saved cursor; stop once the hub says there is no more.
    let mut cursor = std::fs::read_to_string(&cursor_file).unwrap_or_default().trim().to_owned();
    println!("feed: from {}", if cursor.is_empty() { "the beginning" } else { cursor.as_str() });
    let mut feed = client.watch_changes(&cursor, 30).await?;
    let mut events = 0;
    while let Some(message) = tokio::time::timeout(Duration::from_secs(60), feed.next()).await?.transpose()? {
        if message.events.is_empty() {
            break; // a heartbeat: caught up
        }
        for e in message.events {
            println!(
                "  {} {} from {}{}",
                e.kind().as_str_name().trim_start_matches("CHANGE_KIND_"),
                e.household_code,
                e.effective_date,
                if e.support_ends.is_empty() { String::new() } else { format!(": support ends {}", e.support_ends) }
            );
            // Saved after each event is handled, so a crash repeats nothing and misses nothing.
            cursor = e.cursor;
            std::fs::write(&cursor_file, &cursor)?;
            events += 1;
        }
    }
    if events == 0 {
        println!("feed: caught up, nothing new");
    } else {
        println!("feed: caught up after {events} new event(s); cursor {cursor} saved in {}", cursor_file.display());
    }
    Ok(())
}
