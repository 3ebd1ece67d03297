//! `telesub-cli audit`: the audit reader (ICT): who did what, the chain check, an export for
//! an outside auditor; and for every member, checkpoints kept and checked, receipts proven and
//! verified without the hub's help.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use telesub_client::{
    Client, Error,
    audit::{Receipt, ReceiptBundle, VerifierKey, record_bytes, verify_consistency},
    proto,
};

use crate::{
    Connection, Failure, connect,
    exit::Exit,
    output::OutputArgs,
    show::{short, table, timestamp},
};

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// Audit records in order: who called what, when, and the outcome.
    Query {
        /// The calling organisation's code.
        #[arg(long)]
        caller: Option<String>,
        /// A method path, Service/Method, or a service (e.g. Eligibility).
        #[arg(long)]
        method: Option<String>,
        /// From this time: RFC 3339 (2025-03-01T08:00:00+07:00) or a date (the province's day).
        #[arg(long, value_parser = parse_time)]
        from: Option<prost_types::Timestamp>,
        /// Until this time (exclusive), as --from.
        #[arg(long, value_parser = parse_time)]
        until: Option<prost_types::Timestamp>,
        /// A gRPC status code name, e.g. OK or PERMISSION_DENIED.
        #[arg(long)]
        outcome: Option<String>,
        /// Calls that looked up this citizen ID (eligibility questions, searches, enrolments).
        #[arg(long)]
        citizen_id: Option<String>,
        /// Calls that looked up this household (questions, reads, enrolments, device steps).
        #[arg(long)]
        household: Option<String>,
        /// Print at most this many records.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Checks the whole hash chain on the hub; exits with status 8 when it is broken.
    Verify {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Applies the hub's retention policy (ICT), in two steps: --dry-run counts what would go
    /// and prints a ticket; --ticket TICKET (within a day) lets it go, each thing marked with
    /// the ticket. The audit trail stays whole (see the README's Operations).
    Purge {
        /// Count what the policy lets go, change nothing, and print the ticket.
        #[arg(long, conflicts_with = "ticket", required_unless_present = "ticket")]
        dry_run: bool,
        /// The ticket a dry run printed.
        #[arg(long, value_name = "TICKET")]
        ticket: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Saves the records of a time range as CSV with their chain hashes.
    Export {
        #[arg(long, value_parser = parse_time)]
        from: Option<prost_types::Timestamp>,
        #[arg(long, value_parser = parse_time)]
        until: Option<prost_types::Timestamp>,
        /// Where to save the file; by default the name the hub suggests, here.
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// Also saves FILE.proof: the proof that the hub's signed tree holds the records (see
        /// the README's audit section for checking it without the hub).
        #[arg(long)]
        with_proof: bool,
        /// A CSV file without the UTF-8 byte-order mark (which spreadsheet programs need to
        /// show Vietnamese; scripts may not want it).
        #[arg(long)]
        no_bom: bool,
    },
    /// Fetches the hub's latest signed checkpoint (or the one of --size) and keeps it in a
    /// file, to check later that the trail has only grown since (`audit check`).
    Checkpoint {
        /// Where to keep the checkpoint (its signed note).
        #[arg(long, value_name = "FILE")]
        save: Option<PathBuf>,
        /// The tree size of an earlier checkpoint; the latest by default.
        #[arg(long)]
        size: Option<i64>,
        /// Your copy of the hub's verifier key (`telesub audit public-key`), or a file holding
        /// it; without it the key the hub serves is used, and printed for you to keep.
        #[arg(long, value_name = "KEY")]
        public_key: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// The hub's signed checkpoints, smallest tree first.
    Checkpoints {
        /// Those of trees larger than this.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// Print at most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Proves that the trail has only grown since a kept checkpoint: both signed by the hub's
    /// key, and the kept tree a prefix of the latest (RFC 9162 consistency proof). Exits with
    /// status 8, naming what is wrong, when it is not.
    Check {
        /// The checkpoint kept with `audit checkpoint --save`.
        #[arg(long, value_name = "FILE")]
        against: PathBuf,
        /// The hub's verifier key, or a file holding it.
        #[arg(long, value_name = "KEY")]
        public_key: String,
    },
    /// Receipts of writes (saved with --receipts DIR): their proofs, and checking them.
    #[command(subcommand)]
    Receipt(ReceiptCommand),
}

#[derive(Subcommand)]
pub(crate) enum ReceiptCommand {
    /// Fetches the record a receipt promises, its inclusion proof and the signed checkpoint it
    /// leads to, and writes them into the receipt's file (or --out), for `receipt verify`.
    Prove {
        file: PathBuf,
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
    /// Checks a saved receipt offline with the hub's public key: its signature and, once
    /// proven, that the record is the one promised and is in the signed checkpoint. Exits with
    /// status 8 when it is not, 7 when the receipt is not proven yet.
    Verify {
        file: PathBuf,
        /// The hub's verifier key, or a file holding it.
        #[arg(long, value_name = "KEY")]
        public_key: String,
    },
}

/// A verifier key given as text or as a file holding it.
fn verifier_key(text_or_file: &str) -> Result<VerifierKey, Failure> {
    VerifierKey::read(text_or_file).map_err(|e| Failure::Message(format!("the public key: {e}")))
}

fn read_file(path: &Path, what: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| Failure::Message(format!("cannot read the {what} {}: {e}", path.display())))
}

fn write_file(path: &Path, text: &str, what: &str) -> Result<(), Failure> {
    std::fs::write(path, text).map_err(|e| Failure::Message(format!("cannot write the {what} {}: {e}", path.display())))
}

/// Keeps a write's receipt as `DIR/RECORD.receipt` (`--receipts DIR`).
pub(crate) fn save_receipt(dir: &Path, note: &str) {
    let name = note
        .split_once("\n\n")
        .and_then(|(body, _)| Receipt::parse_body(&format!("{body}\n")).ok())
        .map_or_else(|| format!("unnumbered-{}", std::process::id()), |r| r.seq.to_string());
    let path = dir.join(format!("{name}.receipt"));
    match std::fs::write(&path, note) {
        Ok(()) => eprintln!("receipt saved: {}", path.display()),
        Err(e) => eprintln!("error: cannot save the receipt {}: {e}", path.display()),
    }
}

async fn checkpoint(
    client: &Client,
    size: i64,
    key: Option<&VerifierKey>,
) -> Result<(proto::AuditCheckpoint, telesub_client::audit::Checkpoint), Failure> {
    let checkpoint = client.get_audit_checkpoint(size).await?;
    let key = match key {
        Some(key) => key.clone(),
        None => VerifierKey::parse(&checkpoint.verifier_key)
            .map_err(|e| Failure::Message(format!("the hub's verifier key: {e}")))?,
    };
    let opened = key
        .open(&checkpoint.note)
        .map_err(|e| Failure::Exit(Exit::CheckFailed, format!("the hub's checkpoint: {e}")))?;
    Ok((checkpoint, opened))
}

/// RFC 3339, or a date taken as the start of that day in the province (UTC+7).
fn parse_time(text: &str) -> Result<prost_types::Timestamp, String> {
    let is_date = text.len() == 10 && text.bytes().enumerate().all(|(i, b)| matches!(i, 4 | 7) == (b == b'-'));
    let full = if is_date { format!("{text}T00:00:00+07:00") } else { text.to_owned() };
    full.parse().map_err(|_| format!("{text:?} is not a time: use RFC 3339 (2025-03-01T08:00:00+07:00) or a date"))
}

pub(crate) async fn audit(connection: &Connection, command: AuditCommand) -> Result<(), Failure> {
    match command {
        AuditCommand::Receipt(ReceiptCommand::Verify { file, public_key }) => {
            let key = verifier_key(&public_key)?;
            let bundle = ReceiptBundle::parse(&read_file(&file, "receipt")?).map_err(Failure::Message)?;
            let proven = bundle
                .verify(&key)
                .map_err(|e| Failure::Exit(Exit::CheckFailed, format!("{}: NOT VERIFIED: {e}", file.display())))?;
            let r = &proven.receipt;
            match proven.checkpoint {
                Some(c) => {
                    outln!(
                        "receipt verified: record {} ({} at {}), request digest {}, is in the checkpoint of {} records signed at {}",
                        r.seq,
                        short(&r.method, "/telesub.v1."),
                        r.time,
                        r.request_digest,
                        c.size,
                        c.time
                    );
                    Ok(())
                }
                None => Err(Failure::Exit(
                    Exit::Conflict,
                    format!(
                        "{}: the hub's signature on record {} ({}) is good, but the file holds no inclusion proof yet: \
                     run `telesub-cli audit receipt prove {}` once a checkpoint has been signed",
                        file.display(),
                        r.seq,
                        short(&r.method, "/telesub.v1."),
                        file.display()
                    ),
                )),
            }
        }
        AuditCommand::Check { against, public_key } => {
            let key = verifier_key(&public_key)?;
            let kept = key
                .open(&read_file(&against, "kept checkpoint")?)
                .map_err(|e| Failure::Exit(Exit::CheckFailed, format!("{}: {e}", against.display())))?;
            let client = connect(connection).await?;
            let (_, latest) = checkpoint(&client, 0, Some(&key)).await?;
            if latest.size < kept.size {
                return Err(Failure::Exit(
                    Exit::CheckFailed,
                    format!(
                        "the audit trail is NOT the one of the kept checkpoint of {} records (signed at {}): \
                     the latest checkpoint has only {} records",
                        kept.size, kept.time, latest.size
                    ),
                ));
            }
            let proof = client.get_consistency_proof(kept.size as i64, latest.size as i64).await.map_err(|e| {
                Failure::Exit(
                    Exit::CheckFailed,
                    format!(
                        "the hub could NOT prove that the audit trail has only grown since the kept checkpoint of {} \
                     records (signed at {}): {e}",
                        kept.size, kept.time
                    ),
                )
            })?;
            let hashes = proof
                .hashes
                .iter()
                .map(|h| telesub_client::audit::parse_hash(h))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Failure::Exit(Exit::CheckFailed, format!("the hub's consistency proof: {e}")))?;
            verify_consistency(kept.size, latest.size, &hashes, &kept.root, &latest.root).map_err(|e| {
                Failure::Exit(
                    Exit::CheckFailed,
                    format!(
                        "the audit trail is NOT the one of the kept checkpoint of {} records (signed at {}): \
                     the latest checkpoint has {} records, and {e}",
                        kept.size, kept.time, latest.size
                    ),
                )
            })?;
            outln!(
                "the audit trail has only grown: the kept checkpoint of {} records (signed at {}) is a prefix of the latest, {} records signed at {}",
                kept.size,
                kept.time,
                latest.size,
                latest.time
            );
            Ok(())
        }
        command => audit_online(&connect(connection).await?, command).await,
    }
}

async fn audit_online(client: &Client, command: AuditCommand) -> Result<(), Failure> {
    match command {
        AuditCommand::Receipt(ReceiptCommand::Verify { .. }) | AuditCommand::Check { .. } => {
            unreachable!("answered without the hub")
        }
        AuditCommand::Checkpoint { save, size, public_key, output } => {
            let key = public_key.as_deref().map(verifier_key).transpose()?;
            let (served, opened) = checkpoint(client, size.unwrap_or(0), key.as_ref()).await?;
            if let Some(path) = &save {
                write_file(path, &served.note, "checkpoint")?;
            }
            output.one(&served, |served| {
                outln!("checkpoint of {} records, root {}, signed at {}", opened.size, served.root_hash, opened.time);
                if key.is_none() {
                    outln!("signed by {} (keep your own copy of this key)", served.verifier_key);
                }
                if let Some(path) = &save {
                    outln!("kept in {}", path.display());
                }
            })
        }
        AuditCommand::Checkpoints { mut after, limit, output } => {
            let mut checkpoints = Vec::new();
            let mut next_after_size = 0;
            while checkpoints.len() < limit {
                let page = client.list_audit_checkpoints(after, (limit - checkpoints.len()).min(1_000) as i32).await?;
                checkpoints.extend(page.checkpoints);
                next_after_size = page.next_after_size;
                if page.next_after_size == 0 {
                    break;
                }
                after = page.next_after_size;
            }
            let response = proto::ListAuditCheckpointsResponse { checkpoints, next_after_size };
            output.list(&response, &response.checkpoints, || {
                let rows: Vec<Vec<String>> = response
                    .checkpoints
                    .iter()
                    .map(|c| {
                        vec![
                            c.tree_size.to_string(),
                            timestamp(c.signed_at.as_ref()),
                            c.root_hash.clone(),
                            c.key_id.clone(),
                        ]
                    })
                    .collect();
                if rows.is_empty() {
                    outln!("no checkpoint signed yet");
                } else {
                    table(&["SIZE", "SIGNED AT", "ROOT", "KEY"], rows, "");
                }
            })
        }
        AuditCommand::Receipt(ReceiptCommand::Prove { file, out }) => {
            let mut bundle = ReceiptBundle::parse(&read_file(&file, "receipt")?).map_err(Failure::Message)?;
            let Some((body, _)) = bundle.receipt.split_once("\n\n") else {
                return Err(Failure::Message(format!("{} does not hold a signed receipt", file.display())));
            };
            let receipt = Receipt::parse_body(&format!("{body}\n")).map_err(Failure::Message)?;
            // The hub signs a checkpoint every few seconds of activity: wait for one that holds
            // the record, a while.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            let size = loop {
                let latest = client.get_audit_checkpoint(0).await;
                match latest {
                    Ok(c) if c.tree_size >= receipt.seq => break c.tree_size,
                    Ok(_) | Err(Error::NotFound(_)) if std::time::Instant::now() < deadline => {
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                    Ok(c) => {
                        return Err(Failure::Message(format!(
                            "record {} is not in a signed checkpoint yet (the latest holds {} records): try again later",
                            receipt.seq, c.tree_size
                        )));
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            let proof = client.get_inclusion_proof(receipt.seq, size).await?;
            let checkpoint = proof.checkpoint.unwrap_or_default();
            let record = proof.record.unwrap_or_default();
            bundle.record = Some(record_bytes(&record));
            bundle.proof = proof
                .hashes
                .iter()
                .map(|h| telesub_client::audit::parse_hash(h))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Failure::Message(format!("the hub's inclusion proof: {e}")))?;
            bundle.checkpoint = Some(checkpoint.note);
            let out = out.unwrap_or(file);
            write_file(&out, &bundle.to_text(), "proven receipt")?;
            outln!(
                "record {} proven in the checkpoint of {} records: {} (check it with `audit receipt verify`)",
                receipt.seq,
                checkpoint.tree_size,
                out.display()
            );
            Ok(())
        }
        AuditCommand::Query { caller, method, from, until, outcome, citizen_id, household, limit, output } => {
            let mut query = proto::QueryAuditRequest {
                caller: caller.unwrap_or_default(),
                method: method.unwrap_or_default(),
                from,
                until,
                outcome: outcome.unwrap_or_default(),
                citizen_id: citizen_id.unwrap_or_default(),
                household_code: household.unwrap_or_default(),
                page_size: 500,
                page_token: String::new(),
            };
            let mut records = Vec::new();
            let next_page_token = loop {
                // No more than the limit: the token then names exactly what follows.
                query.page_size = i32::try_from(limit - records.len()).unwrap_or(i32::MAX).min(500);
                let page = client.query_audit(query.clone()).await?;
                records.extend(page.records);
                if page.next_page_token.is_empty() || records.len() >= limit {
                    break page.next_page_token;
                }
                query.page_token = page.next_page_token;
            };
            records.truncate(limit);
            let response = proto::QueryAuditResponse { records, next_page_token };
            output.list(&response, &response.records, || audit_table(&response.records))
        }
        AuditCommand::Verify { output } => {
            let report = client.verify_audit().await?;
            output.one(&report, |report| {
                if report.intact {
                    outln!(
                        "audit trail intact: {} records, last record {}, last hash {}",
                        report.records,
                        report.last_seq,
                        report.last_hash
                    );
                }
            })?;
            if report.intact {
                Ok(())
            } else {
                Err(Failure::Exit(
                    Exit::CheckFailed,
                    format!(
                        "the audit trail is broken at record {}: {} ({} records check before it)",
                        report.first_broken_seq, report.problem, report.records
                    ),
                ))
            }
        }
        AuditCommand::Purge { dry_run, ticket, output } => {
            let answer = match ticket {
                Some(ticket) if !dry_run => client.purge_expired(&ticket).await?,
                _ => client.purge_dry_run().await?,
            };
            output.one(&answer, purge_table)
        }
        AuditCommand::Export { from, until, out, with_proof, no_bom } => {
            let request = proto::ExportAuditRequest { from, until, with_proof, without_byte_order_mark: no_bom };
            let chunks = client.export_audit(request).await?;
            crate::reports::save_file(chunks, out, "audit.csv").await
        }
    }
}

/// Audit records for people, one a row.
fn audit_table(records: &[proto::AuditRecord]) {
    let rows = records
        .iter()
        .map(|r| {
            vec![
                r.seq.to_string(),
                timestamp(r.at.as_ref()),
                if r.caller.is_empty() { "-".to_owned() } else { r.caller.clone() },
                short(&r.method, "/telesub.v1.").to_owned(),
                r.outcome.clone(),
                r.request_id.clone(),
                r.detail.clone(),
            ]
        })
        .collect();
    table(&["SEQ", "AT", "CALLER", "METHOD", "OUTCOME", "REQUEST ID", "DETAIL"], rows, "");
}

/// What a purge let go, or a dry run would, and the ticket.
fn purge_table(p: &proto::PurgeExpiredResponse) {
    let when = |t: Option<&prost_types::Timestamp>| crate::show::timestamp(t);
    outln!(
        "policy                  decisions {} years, samples {} years, households off the list {} years",
        p.decisions_years,
        p.samples_years,
        p.removed_households_years
    );
    outln!("decisions before        {}", when(p.decisions_before.as_ref()));
    outln!("samples closed before   {}", when(p.samples_closed_before.as_ref()));
    outln!("households left before  {}", p.households_removed_before);
    let verb = if p.dry_run { "would go" } else { "purged" };
    outln!("decisions {verb:<13} {} single, {} runs of a batch call", p.decisions, p.decision_runs);
    outln!("samples {verb:<15} {}", p.samples);
    outln!("households {verb:<12} {}", p.households);
    if p.dry_run {
        outln!("ticket                  {}", p.ticket);
        outln!("purge with: telesub-cli audit purge --ticket {} (within a day)", p.ticket);
    }
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_are_rfc3339_or_the_provinces_day() {
        let day = parse_time("2025-03-01").unwrap();
        assert_eq!(day, "2025-02-28T17:00:00Z".parse().unwrap());
        assert_eq!(parse_time("2025-03-01T08:00:00+07:00").unwrap(), "2025-03-01T01:00:00Z".parse().unwrap());
        assert!(parse_time("yesterday").is_err());
    }
}
