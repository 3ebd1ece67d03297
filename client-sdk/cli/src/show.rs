//! How the hub's answers are printed: a label column, then the value; tables for lists.

use telesub_client::proto;

const LABEL: usize = 12;

pub(crate) fn field(label: &str, value: impl std::fmt::Display) {
    outln!("{label:<LABEL$} {value}");
}

/// `POOR` for `CATEGORY_POOR`: the names the CSV file uses.
pub(crate) fn short<'a>(name: &'a str, prefix: &str) -> &'a str {
    name.strip_prefix(prefix).unwrap_or(name)
}

pub(crate) fn timestamp(t: Option<&prost_types::Timestamp>) -> String {
    t.map(ToString::to_string).unwrap_or_default()
}

pub(crate) fn receipt(r: &proto::BatchReceipt) {
    field("batch", &r.batch_id);
    field("kind", short(r.kind().as_str_name(), "BATCH_KIND_").to_lowercase());
    field("period", &r.review_period);
    field("effective", &r.effective_date);
    if !r.note.is_empty() {
        field("note", &r.note);
    }
    field("records", r.records);
    field("added", r.added);
    field("changed", r.changed);
    field("removed", r.removed);
    field("unchanged", r.unchanged);
    field("digest", &r.content_digest);
    field("pushed by", &r.pushed_by);
    field("applied at", timestamp(r.applied_at.as_ref()));
    if r.replayed {
        field("replayed", "yes: this batch had been pushed before with the same content; nothing changed");
    }
}

pub(crate) fn batches(batches: &[proto::BatchReceipt], more: bool) {
    if batches.is_empty() {
        outln!("no batches");
        return;
    }
    let rows = batches
        .iter()
        .map(|b| {
            vec![
                b.batch_id.clone(),
                short(b.kind().as_str_name(), "BATCH_KIND_").to_lowercase(),
                b.review_period.clone(),
                b.effective_date.clone(),
                b.records.to_string(),
                b.added.to_string(),
                b.changed.to_string(),
                b.removed.to_string(),
                b.unchanged.to_string(),
                timestamp(b.applied_at.as_ref()),
            ]
        })
        .collect();
    let header =
        ["BATCH", "KIND", "PERIOD", "EFFECTIVE", "RECORDS", "ADDED", "CHANGED", "REMOVED", "UNCHANGED", "APPLIED AT"];
    table(&header, rows, "");
    if more {
        outln!("(more batches: raise --limit)");
    }
}

/// One state of a household.
pub(crate) fn version(v: &proto::HouseholdVersion) {
    let data = v.data.clone().unwrap_or_default();
    field("household", &v.household_code);
    let until =
        if v.valid_to.is_empty() { ", still in force".to_owned() } else { format!(" to {} (exclusive)", v.valid_to) };
    field("valid", format!("from {}{until}", v.valid_from));
    if v.removal_reason() != proto::RemovalReason::Unspecified {
        let reason = short(v.removal_reason().as_str_name(), "REMOVAL_REASON_");
        let note = if v.removal_note.is_empty() { String::new() } else { format!(": {}", v.removal_note) };
        field("removed", format!("{reason}{note} (the data below is the last it had)"));
    }
    field("category", short(data.category().as_str_name(), "CATEGORY_"));
    field("head", &data.head_name);
    let mut commune = format!("{} {}", data.commune_code, v.commune_name);
    if !v.district_code.is_empty() {
        commune.push_str(&format!(", district {}", v.district_code));
    }
    if !v.province_code.is_empty() {
        commune.push_str(&format!(", province {}", v.province_code));
    }
    field("commune", commune.trim());
    if !data.address.is_empty() {
        field("address", &data.address);
    }
    match &data.certificate {
        Some(c) => field("certificate", format!("{}, issued {} by {}", c.number, c.issued_on, c.issuing_unit_code)),
        None => field("certificate", "none"),
    }
    let flags = data.flags.unwrap_or_default();
    let set: Vec<&str> = [
        (flags.earlier_programme_device, "device from an earlier programme"),
        (flags.wants_device, "wants a device"),
        (flags.meritorious_service_family, "meritorious-service family"),
        (flags.social_policy_family, "social-policy family"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    field("flags", if set.is_empty() { "none".to_owned() } else { set.join(", ") });
    field("recorded", format!("batch {} at {}", v.batch_id, timestamp(v.recorded_at.as_ref())));
    let rows = data
        .members
        .iter()
        .map(|m| {
            vec![
                m.citizen_id.clone(),
                m.full_name.clone(),
                short(m.relationship().as_str_name(), "RELATIONSHIP_").to_owned(),
                m.birth_year.to_string(),
            ]
        })
        .collect::<Vec<_>>();
    if rows.is_empty() {
        field("members", "none");
    } else {
        outln!("members");
        table(&["CITIZEN ID", "NAME", "RELATIONSHIP", "BORN"], rows, "  ");
    }
}

pub(crate) fn history(h: &proto::HouseholdHistory) {
    for (i, v) in h.versions.iter().enumerate() {
        if i > 0 {
            outln!();
        }
        outln!("# state {} of {}", i + 1, h.versions.len());
        version(v);
    }
}

pub(crate) fn found(versions: &[proto::HouseholdVersion]) {
    if versions.is_empty() {
        outln!("no household found");
    }
    for (i, v) in versions.iter().enumerate() {
        if i > 0 {
            outln!();
        }
        version(v);
    }
}

pub(crate) fn who_am_i(me: &proto::WhoAmIResponse) {
    let member = me.member.clone().unwrap_or_default();
    field("organisation", &member.code);
    field("name", &member.display_name);
    field("role", short(member.role().as_str_name(), "ROLE_"));
    if !member.unit_code.is_empty() {
        field("unit", &member.unit_code);
    }
    field("status", short(member.status().as_str_name(), "MEMBER_STATUS_"));
    field("certificate", &me.certificate_fingerprint);
    field("request id", &me.request_id);
}

/// Left-aligned columns, padded by characters (names carry diacritics: bytes would misalign).
pub(crate) fn table(header: &[&str], rows: Vec<Vec<String>>, indent: &str) {
    for line in table_lines(header, &rows, indent) {
        outln!("{line}");
    }
}

/// The lines [`table`] prints, the header's first, for a caller that prints more under a row.
pub(crate) fn table_lines(header: &[&str], rows: &[Vec<String>], indent: &str) -> Vec<String> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(cell, &width)| format!("{cell:<width$}")).collect();
        format!("{indent}{}", padded.join("  ").trim_end())
    };
    std::iter::once(line(header.to_vec()))
        .chain(rows.iter().map(|row| line(row.iter().map(String::as_str).collect())))
        .collect()
}

pub(crate) use telesub_client::display::{grouped, vnd};

pub(crate) fn decision(d: &proto::EligibilityDecision) {
    field("eligible", if d.eligible { "yes" } else { "no" });
    field("as of", &d.as_of);
    if !d.household_code.is_empty() {
        field("household", &d.household_code);
    }
    if d.category() != proto::Category::Unspecified {
        field("category", short(d.category().as_str_name(), "CATEGORY_"));
    }
    if !d.head_name_masked.is_empty() {
        field("head", &d.head_name_masked);
    }
    if !d.entitlements.is_empty() {
        outln!("entitlements:");
        let rows = d
            .entitlements
            .iter()
            .map(|e| {
                vec![
                    short(e.service().as_str_name(), "SUPPORTED_SERVICE_").to_owned(),
                    format!("{}/month", vnd(e.monthly_amount)),
                    e.subscriptions_allowed.to_string(),
                    e.valid_from.clone(),
                    if e.valid_to.is_empty() { "-".to_owned() } else { e.valid_to.clone() },
                ]
            })
            .collect();
        table(&["SERVICE", "AMOUNT", "SUBSCRIPTIONS", "FROM", "UNTIL (EXCLUSIVE)"], rows, "  ");
    }
    for r in &d.reasons {
        field("reason", format!("{}: {}", short(r.code().as_str_name(), "REASON_CODE_"), r.message));
    }
    field("policy", d.policy_version);
    if !d.decision_id.is_empty() {
        field("decision", &d.decision_id);
        field("asked by", &d.asked_by);
        field("decided at", timestamp(d.decided_at.as_ref()));
    }
}

pub(crate) fn policy(v: &proto::PolicyVersion) {
    field("version", v.version);
    if v.valid_to.is_empty() {
        field("valid", format!("from {}", v.valid_from));
    } else {
        field("valid", format!("from {} until {} (exclusive)", v.valid_from, v.valid_to));
    }
    if !v.note.is_empty() {
        field("note", &v.note);
    }
    let categories: Vec<&str> = v.categories().map(|c| short(c.as_str_name(), "CATEGORY_")).collect();
    field("categories", categories.join(", "));
    for s in &v.services {
        let only = if s.listed_communes_only { " (listed communes only)" } else { "" };
        field(
            "service",
            format!("{} {}/month{only}", short(s.service().as_str_name(), "SUPPORTED_SERVICE_"), vnd(s.monthly_amount)),
        );
    }
    for a in &v.amounts {
        field(
            "amount",
            format!(
                "{} {} {}: {}/month",
                a.operator,
                a.year,
                short(a.service().as_str_name(), "SUPPORTED_SERVICE_"),
                vnd(a.monthly_amount)
            ),
        );
    }
    field("per household", format!("{} subscription(s)", v.subscriptions_per_household));
    field(
        "broadband in",
        if v.broadband_communes.is_empty() { "no commune listed".to_owned() } else { v.broadband_communes.join(", ") },
    );
    if let Some(g) = &v.grace {
        let reasons: Vec<&str> = g.removal_reasons().map(|r| short(r.as_str_name(), "REMOVAL_REASON_")).collect();
        field(
            "grace",
            if g.until_end_of_year {
                format!(
                    "to 1 January after stopping, for {}{}",
                    reasons.join(", "),
                    if g.on_category_change { " and category changes" } else { "" }
                )
            } else {
                "none: support ends the day a household stops qualifying".to_owned()
            },
        );
    }
    field("non-usage", format!("support stops after {} months without traffic", v.non_usage_months));
    if !v.recorded_by.is_empty() {
        field("recorded by", format!("{} at {}", v.recorded_by, timestamp(v.recorded_at.as_ref())));
    }
}

pub(crate) fn policies(versions: &[proto::PolicyVersion]) {
    let rows = versions
        .iter()
        .map(|v| {
            vec![
                v.version.to_string(),
                v.valid_from.clone(),
                match &v.withdrawal {
                    Some(w) => format!("withdrawn: {}", w.reason),
                    None if v.valid_to.is_empty() => "-".to_owned(),
                    None => v.valid_to.clone(),
                },
                v.note.clone(),
            ]
        })
        .collect();
    table(&["VERSION", "FROM", "UNTIL (EXCLUSIVE)", "NOTE"], rows, "");
}

pub(crate) fn enrollments(list: &[proto::Enrollment]) {
    let rows = list
        .iter()
        .map(|e| {
            vec![
                e.enrollment_id.clone(),
                e.operator.clone(),
                e.household_code.clone(),
                e.phone_number.clone(),
                short(e.service().as_str_name(), "SUPPORTED_SERVICE_").to_owned(),
                e.start_date.clone(),
                if e.end_date.is_empty() { "-".to_owned() } else { e.end_date.clone() },
                short(e.end_reason().as_str_name(), "ENROLLMENT_END_REASON_").replace("UNSPECIFIED", ""),
            ]
        })
        .collect();
    table(
        &["ID", "OPERATOR", "HOUSEHOLD", "NUMBER", "SERVICE", "FROM", "UNTIL (EXCLUSIVE)", "ENDED BECAUSE"],
        rows,
        "",
    );
}

pub(crate) fn change(e: &proto::ChangeEvent) {
    let mut line = format!(
        "{}  {}  {}  from {}",
        e.cursor,
        short(e.kind().as_str_name(), "CHANGE_KIND_"),
        e.household_code,
        e.effective_date
    );
    if e.previous_category() != proto::Category::Unspecified {
        line.push_str(&format!(
            "  {} -> {}",
            short(e.previous_category().as_str_name(), "CATEGORY_"),
            short(e.category().as_str_name(), "CATEGORY_")
        ));
    }
    if e.removal_reason() != proto::RemovalReason::Unspecified {
        line.push_str(&format!("  ({})", short(e.removal_reason().as_str_name(), "REMOVAL_REASON_")));
    }
    if !e.support_ends.is_empty() {
        line.push_str(&format!("  support ends {}", e.support_ends));
    }
    outln!("{line}  enrolment {}", e.enrollment_id);
}
