//! The audit trail anyone can check: signed checkpoints, inclusion and consistency proofs,
//! checked here with an RFC 9162 implementation of the test's own; and tampering as an insider
//! with write access to the database would do it, each caught.

use std::time::Duration;

use telesub_client::{Client, Code, proto};
use telesub_server::audit;
use telesub_tests::TestApp;

use crate::audit::disable_guard;

/// RFC 9162, written apart from the hub's code.
pub(crate) mod rfc {
    pub(crate) type Hash = [u8; 32];

    fn sha(parts: &[&[u8]]) -> Hash {
        let mut c = ring::digest::Context::new(&ring::digest::SHA256);
        parts.iter().for_each(|p| c.update(p));
        c.finish().as_ref().try_into().unwrap()
    }

    pub(crate) fn leaf(bytes: &[u8]) -> Hash {
        sha(&[&[0], bytes])
    }

    pub(crate) fn node(l: &Hash, r: &Hash) -> Hash {
        sha(&[&[1], l, r])
    }

    pub(crate) fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => sha(&[]),
            1 => leaves[0],
            n => {
                let k = n.next_power_of_two() / 2;
                let k = if k == n { n / 2 } else { k };
                node(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    /// RFC 9162 2.1.3.2.
    pub(crate) fn root_from_inclusion(index: u64, size: u64, leaf: Hash, path: &[Hash]) -> Option<Hash> {
        if index >= size {
            return None;
        }
        let (mut f, mut s, mut r) = (index, size - 1, leaf);
        for p in path {
            if s == 0 {
                return None;
            }
            if f & 1 == 1 || f == s {
                r = node(p, &r);
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            } else {
                r = node(&r, p);
            }
            f >>= 1;
            s >>= 1;
        }
        (s == 0).then_some(r)
    }

    /// RFC 9162 2.1.4.2: the two roots the proof leads to.
    pub(crate) fn roots_from_consistency(m: u64, n: u64, first: Hash, proof: &[Hash]) -> Option<(Hash, Hash)> {
        let mut path = proof.to_vec();
        if m.is_power_of_two() {
            path.insert(0, first);
        }
        let (c0, rest) = path.split_first()?;
        let (mut f, mut s) = (m - 1, n - 1);
        while f & 1 == 1 {
            f >>= 1;
            s >>= 1;
        }
        let (mut fr, mut sr) = (*c0, *c0);
        for c in rest {
            if s == 0 {
                return None;
            }
            if f & 1 == 1 || f == s {
                fr = node(c, &fr);
                sr = node(c, &sr);
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            } else {
                sr = node(&sr, c);
            }
            f >>= 1;
            s >>= 1;
        }
        (s == 0).then_some((fr, sr))
    }

    pub(crate) fn unhex(s: &str) -> Hash {
        let v: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect();
        v.try_into().unwrap()
    }
}

/// The record's bytes as the contract documents them.
pub(crate) fn record_bytes(r: &proto::AuditRecord) -> Vec<u8> {
    let mut out = Vec::new();
    let mut field = |b: &[u8]| {
        out.extend_from_slice(&(b.len() as u64).to_be_bytes());
        out.extend_from_slice(b);
    };
    let at = r.at.unwrap();
    let micros = i128::from(at.seconds) * 1_000_000 + i128::from(at.nanos / 1_000);
    let v3 = !r.person.is_empty();
    field(match (v3, r.attached.is_empty()) {
        (true, _) => b"telesub-audit-v3",
        (false, true) => b"telesub-audit-v1",
        (false, false) => b"telesub-audit-v2",
    });
    field(r.prev_hash.as_bytes());
    field(&r.seq.to_be_bytes());
    field(&micros.to_be_bytes());
    for f in [&r.request_id, &r.caller, &r.cert_fingerprint, &r.method, &r.outcome, &r.detail, &r.request_digest] {
        field(f.as_bytes());
    }
    if v3 || !r.attached.is_empty() {
        field(r.attached.as_bytes());
    }
    if v3 {
        field(r.person.as_bytes());
    }
    out
}

async fn checkpoint_of_at_least(client: &Client, size: i64) -> proto::AuditCheckpoint {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(c) = client.get_audit_checkpoint(0).await
            && c.tree_size >= size
        {
            return c;
        }
        assert!(tokio::time::Instant::now() < deadline, "no checkpoint of {size} records was signed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn quick() -> impl FnOnce(&mut telesub_server::config::Settings) {
    |s| s.audit.checkpoint_interval_ms = 100
}

#[tokio::test]
async fn checkpoints_and_proofs_check_with_code_of_their_own() {
    let app = TestApp::spawn_with(quick()).await;
    let vnpt = app.client("VNPT").await;
    let ict = app.client("DOICT").await;
    for _ in 0..37 {
        vnpt.who_am_i().await.unwrap();
    }
    let first = checkpoint_of_at_least(&vnpt, 37).await;
    // The note is signed by the key the hub prints, and says what the fields say.
    let key = audit::checkpoint::VerifierKey::parse(&first.verifier_key).unwrap();
    let opened = key.open(&first.note).unwrap();
    assert_eq!(opened.size as i64, first.tree_size);
    assert_eq!(telesub_server::hex(&opened.root), first.root_hash);
    let printed = telesub_tests::run_telesub(&["audit", "public-key", "--tls-dir", app.dir().root().to_str().unwrap()]);
    assert_eq!(printed.trim(), first.verifier_key);

    // Every record of the checkpoint: its inclusion proof leads to the signed root.
    let root = rfc::unhex(&first.root_hash);
    let records = ict.query_audit(proto::QueryAuditRequest { page_size: 1_000, ..Default::default() }).await.unwrap();
    let mut leaves = Vec::new();
    for r in records.records.iter().filter(|r| r.seq <= first.tree_size) {
        leaves.push(rfc::leaf(&record_bytes(r)));
    }
    assert_eq!(rfc::mth(&leaves), root, "the root is the RFC 9162 tree of the records' bytes");
    for seq in 1..=first.tree_size {
        let proof = ict.get_inclusion_proof(seq, first.tree_size).await.unwrap();
        let record = proof.record.as_ref().unwrap();
        let leaf = rfc::leaf(&record_bytes(record));
        assert_eq!(telesub_server::hex(&leaf), proof.leaf_hash);
        let path: Vec<rfc::Hash> = proof.hashes.iter().map(|h| rfc::unhex(h)).collect();
        assert_eq!(rfc::root_from_inclusion(seq as u64 - 1, first.tree_size as u64, leaf, &path), Some(root), "{seq}");
        // A changed byte anywhere fails.
        let mut bad = path.clone();
        if let Some(h) = bad.last_mut() {
            h[31] ^= 1;
            assert_ne!(rfc::root_from_inclusion(seq as u64 - 1, first.tree_size as u64, leaf, &bad), Some(root));
        }
        let mut changed = record.clone();
        changed.outcome.push('!');
        let other = rfc::leaf(&record_bytes(&changed));
        assert_ne!(rfc::root_from_inclusion(seq as u64 - 1, first.tree_size as u64, other, &path), Some(root));
    }

    // More calls, a later checkpoint: the earlier tree is a prefix of it.
    for _ in 0..21 {
        ict.who_am_i().await.unwrap();
    }
    let later = checkpoint_of_at_least(&vnpt, first.tree_size + 21).await;
    let proof = vnpt.get_consistency_proof(first.tree_size, later.tree_size).await.unwrap();
    let path: Vec<rfc::Hash> = proof.hashes.iter().map(|h| rfc::unhex(h)).collect();
    let (old, new) = rfc::roots_from_consistency(first.tree_size as u64, later.tree_size as u64, root, &path).unwrap();
    assert_eq!((old, new), (root, rfc::unhex(&later.root_hash)));
    let mut bad = path.clone();
    bad[0][0] ^= 1;
    assert_ne!(
        rfc::roots_from_consistency(first.tree_size as u64, later.tree_size as u64, root, &bad),
        Some((root, rfc::unhex(&later.root_hash)))
    );

    // A member reads the proofs of its own calls only.
    let all = ict.query_audit(proto::QueryAuditRequest { page_size: 1_000, ..Default::default() }).await.unwrap();
    let in_tree = |caller: &str| {
        all.records.iter().find(|r| r.caller == caller && r.seq <= later.tree_size).map(|r| r.seq).unwrap()
    };
    let proof = vnpt.get_inclusion_proof(in_tree("VNPT"), 0).await.unwrap();
    assert_eq!(proof.record.unwrap().caller, "VNPT");
    let err = vnpt.get_inclusion_proof(in_tree("DOICT"), 0).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::PermissionDenied));
}

/// The kinds of tampering an insider with write access could try; each is caught by `telesub
/// audit verify`, and the rewrites that leave the stored rows consistent by a checkpoint kept
/// before.
#[tokio::test]
async fn tampering_is_caught_by_verify_and_by_a_kept_checkpoint() {
    use crate::{
        households::{cid, header, household, push},
        monthly_cli::cli_run,
    };
    let app = TestApp::spawn_with(quick()).await;
    let labour = app.client("DOLISA").await;
    push(&labour, header("b1", proto::BatchKind::Delta, "2024-12", "2024-12-01"), vec![household("HH-1", "24611", 1)])
        .await
        .unwrap();
    let vnpt = app.client("VNPT").await;
    vnpt.check_citizen(&cid(1, 1980, false), "").await.unwrap();
    app.client("DOICT").await.get_household("HH-1", "").await.unwrap();
    for _ in 0..20 {
        vnpt.who_am_i().await.unwrap();
    }
    let kept = checkpoint_of_at_least(&vnpt, 24).await;
    let verify = |extra: &[&str]| {
        let mut args = vec!["audit", "verify", "--database"];
        let url = app.db.url();
        let kept_file = app.dir().root().join("kept.note");
        std::fs::write(&kept_file, &kept.note).unwrap();
        let kept_path = kept_file.to_str().unwrap().to_owned();
        args.push(&url);
        args.extend(["--public-key", &kept.verifier_key, "--checkpoint", &kept_path]);
        args.extend(extra);
        telesub_tests::run_telesub_status(&args)
    };
    let (ok, out) = verify(&[]);
    assert!(ok, "{out}");
    assert!(out.contains("audit trail intact"), "{out}");
    // A member keeps the checkpoint with the CLI, and checks the trail against it later.
    let here = tempfile::tempdir().unwrap();
    let key_file = here.path().join("hub.pub");
    std::fs::write(&key_file, &kept.verifier_key).unwrap();
    let key_arg = key_file.to_str().unwrap().to_owned();
    let size_arg = kept.tree_size.to_string();
    let save = ["audit", "checkpoint", "--size", &size_arg, "--save", "kept-by-vnpt.note", "--public-key", &key_arg];
    cli_run(&app, "VNPT", here.path(), &save).await.assert_ok();
    let check = ["audit", "check", "--against", "kept-by-vnpt.note", "--public-key", &key_arg];
    let run = cli_run(&app, "VNPT", here.path(), &check).await;
    run.assert_ok();
    assert!(run.out.contains("has only grown"), "{}", run.out);

    // Deleting who looked up whom: the subjects beside a record, or the decision it stored
    // (each put back after).
    disable_guard(&app.db).await;
    let (ok, out) = verify(&[]);
    assert!(!ok && out.contains("guards MISSING"), "dropped triggers are named: {out}");
    for table in ["audit_subjects", "eligibility_decisions"] {
        app.db.execute(&format!("CREATE TABLE saved_{table} AS SELECT * FROM {table}")).await.unwrap();
        app.db.execute(&format!("DELETE FROM {table}")).await.unwrap();
        let (ok, out) = verify(&[]);
        assert!(!ok && out.contains("what record") && out.contains("stored beside it"), "{table}: {out}");
        app.db.execute(&format!("INSERT INTO {table} SELECT * FROM saved_{table}")).await.unwrap();
        let (_, out) = verify(&[]);
        assert!(!out.contains("BROKEN"), "{table} put back: {out}");
    }

    // Truncating the tail and setting the head back, with the tree's edge and nodes made to
    // match, and the stored checkpoints removed: only the kept checkpoint can tell.
    let size = kept.tree_size;
    let store = app.store.clone();
    let records = store.audit_records(0, u32::MAX).await.unwrap();
    let keep = (size - 3) as usize;
    // One transaction, so that the still-running hub's checkpointer never reads it half-done.
    let mut range = audit::merkle::CompactRange::default();
    let mut rewrite = format!(
        "BEGIN; DELETE FROM audit_log WHERE seq > {keep}; DELETE FROM audit_checkpoints; DELETE FROM audit_tree;"
    );
    for (level, idx, hash) in audit::extend_tree(&mut range, &records[..keep]) {
        rewrite += &format!(" INSERT INTO audit_tree (level, idx, hash) VALUES ({level}, {idx}, '{hash}');");
    }
    let last = &records[keep - 1];
    rewrite += &format!(
        " UPDATE audit_head SET seq = {}, hash = '{}', tree = '{}'; COMMIT;",
        last.seq,
        last.hash,
        range.encode()
    );
    app.db.execute(&rewrite).await.unwrap();
    let (ok, out) = verify(&[]);
    assert!(!ok, "{out}");
    // The hub's checkpointer may have signed the old trail's size once more just before the
    // rewrite committed: then the stored checkpoint tells first, else the kept one.
    assert!(
        out.contains(&format!("the kept checkpoint of {size} records"))
            || out.contains(&format!("the stored checkpoint of {size} records covers records")),
        "{out}"
    );
    // The hub goes on signing on the shortened trail; the kept checkpoint tells.
    vnpt.who_am_i().await.unwrap();
    checkpoint_of_at_least(&vnpt, keep as i64 + 1).await;
    let run = cli_run(&app, "VNPT", here.path(), &check).await;
    assert_eq!(run.code, Some(8), "{}{}", run.out, run.err);
    assert!(run.err.contains(&format!("the kept checkpoint of {size} records")), "{}", run.err);
    // Without the kept checkpoint the stored rows alone agree with each other.
    let (_, alone) = telesub_tests::run_telesub_status(&["audit", "verify", "--database", &app.db.url()]);
    assert!(!alone.contains("BROKEN"), "{alone}");
}

#[tokio::test]
async fn a_rewritten_history_fails_the_kept_checkpoint_and_a_hub_without_guards_does_not_start() {
    let app = TestApp::spawn_with(quick()).await;
    let vnpt = app.client("VNPT").await;
    for _ in 0..10 {
        vnpt.who_am_i().await.unwrap();
    }
    let kept = checkpoint_of_at_least(&vnpt, 10).await;
    let key = audit::checkpoint::VerifierKey::parse(&kept.verifier_key).unwrap();
    disable_guard(&app.db).await;
    // Two records swapped: the chain breaks where they stand.
    let mut records = app.store.audit_records(0, u32::MAX).await.unwrap();
    let swap = |a: &telesub_server::audit::AuditRecord, seq: i64| {
        format!(
            "UPDATE audit_log SET request_id = '{}', prev_hash = '{}', hash = '{}' WHERE seq = {seq}",
            a.entry.request_id, a.prev_hash, a.hash
        )
    };
    app.db.execute(&swap(&records[4], 4)).await.unwrap();
    app.db.execute(&swap(&records[3], 5)).await.unwrap();
    let report = audit::verify(app.store.as_ref()).await.unwrap();
    assert_eq!(report.first_break.map(|b| b.seq()), Some(4), "swapped records are found");
    app.db.execute(&swap(&records[3], 4)).await.unwrap();
    app.db.execute(&swap(&records[4], 5)).await.unwrap();

    // Record 3 changed and every later hash recomputed by the public rule; the tree too.
    records[2].entry.outcome = "PERMISSION_DENIED".into();
    let entries: Vec<_> = records.iter().map(|r| r.entry.clone()).collect();
    let rewritten = audit::link(0, audit::GENESIS_HASH, &entries);
    for r in &rewritten[2..] {
        app.db
            .execute(&format!(
                "UPDATE audit_log SET outcome = '{}', prev_hash = '{}', hash = '{}' WHERE seq = {}",
                r.entry.outcome, r.prev_hash, r.hash, r.seq
            ))
            .await
            .unwrap();
    }
    let last = rewritten.last().unwrap();
    let mut range = audit::merkle::CompactRange::default();
    audit::extend_tree(&mut range, &rewritten);
    app.db
        .execute(&format!(
            "UPDATE audit_head SET seq = {}, hash = '{}', tree = '{}'",
            last.seq,
            last.hash,
            range.encode()
        ))
        .await
        .unwrap();
    app.db.execute("DELETE FROM audit_checkpoints").await.unwrap();
    let report = audit::verify_with(
        app.store.as_ref(),
        &audit::VerifyOptions { key: Some(key.clone()), kept: vec![kept.note.clone()] },
    )
    .await
    .unwrap();
    let brk = report.first_break.expect("the rewrite is caught");
    assert!(brk.to_string().contains("kept checkpoint"), "{brk}");
    assert!(!report.guards_missing.is_empty());
    // The hub signs the rewritten trail from now on; a member's kept checkpoint tells.
    vnpt.who_am_i().await.unwrap();
    checkpoint_of_at_least(&vnpt, last.seq + 1).await;
    let here = tempfile::tempdir().unwrap();
    std::fs::write(here.path().join("kept.note"), &kept.note).unwrap();
    std::fs::write(here.path().join("hub.pub"), &kept.verifier_key).unwrap();
    let check = ["audit", "check", "--against", "kept.note", "--public-key", "hub.pub"];
    let run = crate::monthly_cli::cli_run(&app, "VNPT", here.path(), &check).await;
    assert_eq!(run.code, Some(8), "{}{}", run.out, run.err);
    assert!(
        run.err.contains(&format!("NOT the one of the kept checkpoint of {} records", kept.tree_size)),
        "{}",
        run.err
    );

    // A hub will not serve on a database whose guards were dropped.
    let settings = telesub_server::config::Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: telesub_server::config::DatabaseUrl(app.db.url()),
        tls: telesub_server::config::TlsSettings { dir: Some(app.dir().root().to_owned()), ..Default::default() },
        ..Default::default()
    };
    let Err(err) = telesub_server::startup::Hub::build(settings).await else { panic!("a hub without guards started") };
    assert!(err.to_string().contains("append-only guards"), "{err}");
}

/// A signed note checked as C2SP describes it, apart from the hub's and the SDK's code: the
/// text before the blank line, then `— name base64(key id ‖ signature)`.
pub(crate) fn note_text_if_signed(note: &str, verifier_key: &str) -> Option<String> {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let mut parts = verifier_key.splitn(3, '+');
    let (name, _, raw) = (parts.next()?, parts.next()?, parts.next()?);
    let public = STANDARD.decode(raw).ok()?;
    let (body, signatures) = note.split_once("\n\n")?;
    let body = format!("{body}\n");
    let line = signatures.lines().find(|l| l.starts_with(&format!("\u{2014} {name} ")))?;
    let sig = STANDARD.decode(line.rsplit_once(' ')?.1).ok()?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public[1..])
        .verify(body.as_bytes(), &sig[4..])
        .ok()?;
    Some(body)
}

/// Every successful write's answer carries the hub's signed receipt; saved by `telesub-cli
/// --receipts`, proven once a checkpoint is signed, and verified offline; a byte changed
/// anywhere in it is caught.
#[tokio::test]
async fn a_write_answer_carries_a_receipt_that_proves_it_offline() {
    use crate::{
        households::{header, household, push},
        monthly_cli::cli_run,
    };
    use std::sync::{Arc, Mutex};
    let app = TestApp::spawn_with(quick()).await;
    let receipts = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = receipts.clone();
    let labour = app.builder("DOLISA").on_receipt(move |r| sink.lock().unwrap().push(r)).connect().await.unwrap();
    push(&labour, header("b1", proto::BatchKind::Delta, "2024-12", "2024-12-01"), vec![household("HH-1", "24611", 1)])
        .await
        .unwrap();
    // Reads, and writes refused, carry none.
    labour.get_batch("b1").await.unwrap();
    labour.who_am_i().await.unwrap();
    let refused = push(&labour, header("b2", proto::BatchKind::Delta, "not-a-period", "2024-12-01"), vec![]).await;
    assert!(refused.is_err());
    let notes = receipts.lock().unwrap().clone();
    assert_eq!(notes.len(), 1, "{notes:?}");
    let note = &notes[0];

    // What the receipt says is the record of the push, and the hub's key signed it.
    let ict = app.client("DOICT").await;
    let query = proto::QueryAuditRequest {
        method: "HouseholdRegistry/PushBatch".into(),
        outcome: "OK".into(),
        page_size: 10,
        ..Default::default()
    };
    let record = ict.query_audit(query).await.unwrap().records.remove(0);
    let checkpoint = checkpoint_of_at_least(&labour, record.seq).await;
    let body = note_text_if_signed(note, &checkpoint.verifier_key).expect("the receipt is signed by the hub's key");
    for line in [
        format!("receipt {}", record.seq),
        format!("record {}", record.hash),
        format!("request {}", record.request_digest),
        "method /telesub.v1.HouseholdRegistry/PushBatch".to_owned(),
    ] {
        assert!(body.lines().any(|l| l == line), "{line:?} in {body}");
    }

    // The receipt names the request sent: its digest is the SDK's of the message.
    let sink = receipts.clone();
    let ict_kept = app.builder("DOICT").on_receipt(move |r| sink.lock().unwrap().push(r)).connect().await.unwrap();
    let request = proto::RegisterMemberRequest {
        code: "VIETNAMOBILE".into(),
        display_name: "Vietnamobile".into(),
        role: proto::Role::Operator.into(),
        unit_code: String::new(),
    };
    ict_kept.register_member(request.clone()).await.unwrap();
    let ict_note = receipts.lock().unwrap().last().cloned().unwrap();
    let digest = telesub_client::audit::request_digest(&[request]);
    let body = note_text_if_signed(&ict_note, &checkpoint.verifier_key).unwrap();
    assert!(body.lines().any(|l| l == format!("request {digest}")), "{digest} in {body}");

    // Saved by the CLI on a write of its own, proven, verified offline.
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path();
    let key_file = here.join("hub.pub");
    std::fs::write(&key_file, &checkpoint.verifier_key).unwrap();
    let key = key_file.to_str().unwrap();
    let run = cli_run(
        &app,
        "DOICT",
        here,
        &["--receipts", "kept", "policy", "withdraw", "99", "--reason", "no such version"],
    )
    .await;
    assert_eq!(run.code, Some(4), "a refused write: {}{}", run.out, run.err);
    assert!(!here.join("kept").read_dir().unwrap().any(|_| true), "no receipt for a refused write");
    let register = ["--receipts", "kept", "members", "register", "MOBIFONE", "--role", "operator", "--name", "M"];
    let run = cli_run(&app, "DOICT", here, &register).await;
    run.assert_ok();
    let saved: Vec<_> = here.join("kept").read_dir().unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(saved.len(), 1, "{}", run.err);
    assert!(run.err.contains("receipt saved"), "{}", run.err);
    let saved = std::fs::read_to_string(&saved[0]).unwrap();
    let body = note_text_if_signed(&saved, &checkpoint.verifier_key).expect("signed");
    assert!(body.contains("method /telesub.v1.Members/RegisterMember"), "{body}");
    let file = here.join("pushed.receipt");
    std::fs::write(&file, note).unwrap();
    let file = file.to_str().unwrap();
    let run = cli_run(&app, "DOLISA", here, &["audit", "receipt", "verify", file, "--public-key", key]).await;
    assert_eq!(run.code, Some(7), "{}{}", run.out, run.err);
    assert!(run.err.contains("no inclusion proof yet"), "{}", run.err);
    cli_run(&app, "DOLISA", here, &["audit", "receipt", "prove", file]).await.assert_ok();
    let run = cli_run(&app, "DOLISA", here, &["audit", "receipt", "verify", file, "--public-key", key]).await;
    run.assert_ok();
    assert!(run.out.contains(&format!("receipt verified: record {}", record.seq)), "{}", run.out);

    // The proof, checked with the test's own RFC 9162: the record's bytes hash to the
    // receipt's record hash, and lead to the signed checkpoint's root.
    let bundle = std::fs::read_to_string(file).unwrap();
    let section = |name: &str| {
        let start = bundle.find(&format!("-----BEGIN TELESUB {name}-----\n")).unwrap() + name.len() + 25;
        let end = bundle.find(&format!("-----END TELESUB {name}-----")).unwrap();
        bundle[start..end].to_owned()
    };
    use base64::{Engine, engine::general_purpose::STANDARD};
    let bytes = STANDARD.decode(section("AUDIT RECORD").split_whitespace().collect::<String>()).unwrap();
    assert_eq!(telesub_server::hex(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref()), record.hash);
    let signed = note_text_if_signed(&section("CHECKPOINT"), &checkpoint.verifier_key).unwrap();
    let lines: Vec<&str> = signed.lines().collect();
    let size: u64 = lines[1].parse().unwrap();
    let root: rfc::Hash = STANDARD.decode(lines[2]).unwrap().try_into().unwrap();
    let path: Vec<rfc::Hash> = section("INCLUSION PROOF").lines().map(rfc::unhex).collect();
    assert_eq!(rfc::root_from_inclusion(record.seq as u64 - 1, size, rfc::leaf(&bytes), &path), Some(root));

    // A byte changed anywhere is caught: the record, the proof, the receipt's own text.
    let flip = |from: &str, to: &str| {
        assert!(bundle.contains(from), "{from:?}");
        let changed = here.join("changed.receipt");
        std::fs::write(&changed, bundle.replacen(from, to, 1)).unwrap();
        changed
    };
    let digest_line = format!("request {}", record.request_digest);
    let mut other_digest = record.request_digest.clone();
    other_digest.replace_range(0..1, if other_digest.starts_with('0') { "1" } else { "0" });
    let first_proof = &path.first().map(|h| telesub_server::hex(h)).unwrap_or_default();
    let mut tampered = vec![flip(&digest_line, &format!("request {other_digest}"))];
    if !first_proof.is_empty() {
        let other = format!("{}{}", if first_proof.starts_with('0') { "1" } else { "0" }, &first_proof[1..]);
        tampered.push(flip(first_proof, &other));
    }
    let record_b64 = section("AUDIT RECORD");
    let mut other_record = STANDARD.decode(record_b64.split_whitespace().collect::<String>()).unwrap();
    *other_record.last_mut().unwrap() ^= 1;
    let other_b64 = STANDARD.encode(&other_record);
    let wrapped: String =
        other_b64.as_bytes().chunks(64).map(|c| format!("{}\n", std::str::from_utf8(c).unwrap())).collect();
    tampered.push(flip(&record_b64, &wrapped));
    for changed in tampered {
        let changed = changed.to_str().unwrap();
        let run = cli_run(&app, "DOLISA", here, &["audit", "receipt", "verify", changed, "--public-key", key]).await;
        assert_eq!(run.code, Some(8), "{}: {}{}", std::fs::read_to_string(changed).unwrap(), run.out, run.err);
        assert!(run.err.contains("NOT VERIFIED"), "{}", run.err);
    }
}

/// Proofs on a trail deep enough for the stored levels 4 and 8 and the records between them,
/// every one checked against a tree the test builds from the records itself.
#[tokio::test]
async fn proofs_hold_across_the_stored_levels_of_a_longer_trail() {
    let app = TestApp::spawn_with(quick()).await;
    let entries: Vec<audit::AuditEntry> = (0..1_000)
        .map(|n| audit::AuditEntry {
            at: time::OffsetDateTime::from_unix_timestamp(1_760_000_000 + n).unwrap(),
            request_id: format!("r{n}"),
            org_code: Some("VNPT".into()),
            person: None,
            cert_fingerprint: None,
            method: "/telesub.v1.Members/WhoAmI".into(),
            outcome: "OK".into(),
            detail: String::new(),
            request_digest: format!("{n:064x}"),
            attached: Some(format!("{:064x}", n + 1)),
            decisions_call: None,
        })
        .collect();
    for chunk in entries.chunks(97) {
        app.store.append_audit(chunk, &[], &[]).await.unwrap();
    }
    let ict = app.client("DOICT").await;
    ict.who_am_i().await.unwrap();
    let checkpoint = checkpoint_of_at_least(&ict, 1_001).await;
    let size = checkpoint.tree_size as u64;
    let mut records = Vec::new();
    let mut query = proto::QueryAuditRequest { page_size: 1_000, ..Default::default() };
    loop {
        let page = ict.query_audit(query.clone()).await.unwrap();
        records.extend(page.records);
        if page.next_page_token.is_empty() {
            break;
        }
        query.page_token = page.next_page_token;
    }
    let leaves: Vec<rfc::Hash> = records[..size as usize]
        .iter()
        .map(|r| {
            let at = r.at.as_ref().unwrap();
            let micros = at.seconds as i128 * 1_000_000 + (at.nanos / 1_000) as i128;
            let f = [
                &*r.request_id,
                &r.caller,
                &r.cert_fingerprint,
                &r.method,
                &r.outcome,
                &r.detail,
                &r.request_digest,
                &r.attached,
            ];
            rfc::leaf(&crate::supervision::record_bytes(&r.prev_hash, r.seq, micros, f))
        })
        .collect();
    let root = rfc::mth(&leaves);
    assert_eq!(root, rfc::unhex(&checkpoint.root_hash));
    for seq in [1, 2, 16, 17, 255, 256, 257, 511, 512, 700, 999, size - 1, size] {
        let proof = ict.get_inclusion_proof(seq as i64, size as i64).await.unwrap();
        let path: Vec<rfc::Hash> = proof.hashes.iter().map(|h| rfc::unhex(h)).collect();
        assert_eq!(
            rfc::root_from_inclusion(seq - 1, size, leaves[seq as usize - 1], &path),
            Some(root),
            "record {seq}"
        );
    }
    for old in [1, 15, 16, 17, 256, 300, 513, size - 1] {
        let proof = ict.get_consistency_proof(old as i64, size as i64).await.unwrap();
        let path: Vec<rfc::Hash> = proof.hashes.iter().map(|h| rfc::unhex(h)).collect();
        let old_root = rfc::mth(&leaves[..old as usize]);
        assert_eq!(rfc::roots_from_consistency(old, size, old_root, &path), Some((old_root, root)), "from {old}");
    }
}

/// Two hubs on one database write one trail and one tree: the checkpoints either signs are
/// listed alike by both, each is consistent with the later ones, and the trail verifies.
#[tokio::test]
async fn two_hubs_on_one_database_write_one_tree() {
    let app = TestApp::spawn_with(quick()).await;
    let other = app.spawn_beside_with(quick()).await;
    let (vnpt, ict) = (app.client("VNPT").await, app.client_of(&other, "DOICT").await);
    for _ in 0..3 {
        let calls: Vec<_> = (0..10)
            .map(|_| {
                let (vnpt, ict) = (vnpt.clone(), ict.clone());
                tokio::spawn(async move {
                    vnpt.who_am_i().await.unwrap();
                    ict.who_am_i().await.unwrap();
                })
            })
            .collect();
        for call in calls {
            call.await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let latest = checkpoint_of_at_least(&ict, 60).await;
    let from_one = vnpt.list_audit_checkpoints(0, 0).await.unwrap().checkpoints;
    let from_other = ict.list_audit_checkpoints(0, 0).await.unwrap().checkpoints;
    let sizes = |list: &[proto::AuditCheckpoint]| list.iter().map(|c| c.tree_size).collect::<Vec<_>>();
    let listed = sizes(&from_one);
    assert!(listed.len() >= 2 && listed.windows(2).all(|w| w[0] < w[1]), "{listed:?}");
    assert!(sizes(&from_other).starts_with(&listed[..listed.len() - 1]), "{:?} {listed:?}", sizes(&from_other));
    let root = rfc::unhex(&latest.root_hash);
    for earlier in from_one.iter().filter(|c| c.tree_size < latest.tree_size) {
        let proof = ict.get_consistency_proof(earlier.tree_size, latest.tree_size).await.unwrap();
        let path: Vec<rfc::Hash> = proof.hashes.iter().map(|h| rfc::unhex(h)).collect();
        let old = rfc::unhex(&earlier.root_hash);
        assert_eq!(
            rfc::roots_from_consistency(earlier.tree_size as u64, latest.tree_size as u64, old, &path),
            Some((old, root)),
            "from {}",
            earlier.tree_size
        );
    }
    // A page at a time, from a size on.
    let page = vnpt.list_audit_checkpoints(listed[0], 1).await.unwrap();
    assert_eq!(sizes(&page.checkpoints), [listed[1]]);
    assert_eq!(page.next_after_size, listed[1]);
    let err = vnpt.list_audit_checkpoints(0, 5_000).await.unwrap_err();
    assert_eq!(err.code(), Some(Code::InvalidArgument));
    let key = audit::checkpoint::VerifierKey::parse(&latest.verifier_key).unwrap();
    let report = audit::verify_with(
        app.store.as_ref(),
        &audit::VerifyOptions { key: Some(key), kept: vec![latest.note.clone()] },
    )
    .await
    .unwrap();
    assert_eq!(report.first_break, None, "{report:?}");
    assert!(report.checkpoints >= listed.len(), "{report:?}");
}
