//! The register's page: a household found by its code, by a member's citizen ID or by its
//! certificate number, with its history as a timeline. Who may read what is the household
//! registry's rule (a locality its own unit), and what was looked up is noted in the audit
//! trail as the RPCs note it.

use std::sync::Arc;

use askama::Template;
use axum::{
    extract::{Multipart, Query, State},
    http::{HeaderMap, Uri},
    response::Response,
};
use serde::Deserialize;
use telesub_proto::csv::{CsvError, CsvReader};

use super::{
    Console, format,
    pages::{Visitor, failure, forged, render, who},
};
use crate::{
    audit::SubjectKind,
    domain::{
        DomainError, FieldViolation,
        household::{BatchKind, Category, Relationship, RemovalReason},
        registry::{FindKey, HeaderInput, HouseholdView},
    },
    transport::record_input,
};

#[derive(Debug, Deserialize)]
pub(super) struct Search {
    #[serde(default)]
    by: String,
    #[serde(default)]
    q: String,
}

/// Vietnamese names of the categories.
pub(super) fn category_name(c: Category) -> &'static str {
    match c {
        Category::Poor => "Hộ nghèo",
        Category::NearPoor => "Hộ cận nghèo",
        Category::SocialPolicy => "Gia đình chính sách xã hội",
        Category::MeritoriousService => "Gia đình người có công",
        Category::Other => "Khác",
    }
}

fn relationship_name(r: Relationship) -> &'static str {
    match r {
        Relationship::Head => "Chủ hộ",
        Relationship::Spouse => "Vợ/chồng",
        Relationship::Child => "Con",
        Relationship::Parent => "Bố/mẹ",
        Relationship::Grandchild => "Cháu",
        Relationship::Grandparent => "Ông/bà",
        Relationship::Sibling => "Anh/chị/em",
        Relationship::Other => "Khác",
    }
}

fn removal_name(r: RemovalReason) -> &'static str {
    match r {
        RemovalReason::OutOfPoverty => "Thoát nghèo",
        RemovalReason::MovedAway => "Chuyển đi",
        RemovalReason::Deceased => "Chết",
        RemovalReason::RecordedInError => "Ghi nhầm",
        RemovalReason::NotInReview => "Không có trong kỳ rà soát",
    }
}

/// One state of a household, as the timeline shows it.
pub(super) struct TimelineState {
    pub(super) from: String,
    pub(super) to: String,
    pub(super) removed: Option<String>,
    pub(super) category: &'static str,
    pub(super) head_name: String,
    pub(super) commune: String,
    pub(super) address: String,
    pub(super) certificate: String,
    pub(super) members: Vec<(String, String, &'static str, i32)>,
    pub(super) batch_id: String,
    pub(super) recorded: String,
}

pub(super) fn state(v: &HouseholdView) -> TimelineState {
    TimelineState {
        from: format::date(v.valid_from),
        to: v.valid_to.map(format::date).unwrap_or_default(),
        removed: v.removal.as_ref().map(|(reason, note)| match note.trim() {
            "" => removal_name(*reason).to_owned(),
            note => format!("{}: {note}", removal_name(*reason)),
        }),
        category: category_name(v.data.category),
        head_name: v.data.head_name.clone(),
        commune: format!("{} ({})", v.commune_name, v.data.commune_code),
        address: v.data.address.clone(),
        certificate: v.data.certificate.as_ref().map(|c| c.number.clone()).unwrap_or_default(),
        members: v
            .data
            .members
            .iter()
            .map(|m| (m.full_name.clone(), m.citizen_id.clone(), relationship_name(m.relationship), m.birth_year))
            .collect(),
        batch_id: v.batch_id.clone(),
        recorded: format::time(v.recorded_at),
    }
}

/// A household found, as the list of results shows it.
struct Found {
    code: String,
    head_name: String,
    category: &'static str,
    commune: String,
}

#[derive(Template)]
#[template(path = "console/households.html")]
struct HouseholdsPage {
    who: String,
    by: String,
    q: String,
    /// A household's timeline, newest first.
    history: Option<(String, Vec<TimelineState>)>,
    found: Option<Vec<Found>>,
}

/// The search form, and what it found.
pub(super) async fn households(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    Query(search): Query<Search>,
) -> Response {
    let Visitor { call, caller } = &visitor;
    let q = search.q.trim().to_owned();
    let by = match search.by.as_str() {
        "" | "code" => "code",
        "citizen" => "citizen",
        "certificate" => "certificate",
        other => {
            return failure(DomainError::invalid("by", format!("{other:?}: search by code, citizen or certificate")));
        }
    };
    let mut page = HouseholdsPage { who: who(caller), by: by.to_owned(), q: q.clone(), history: None, found: None };
    if q.is_empty() {
        return render(&page);
    }
    match by {
        "code" => {
            call.looked_up(SubjectKind::HouseholdCode, [q.as_str()]);
            match console.registry.history(caller, &q).await {
                Ok(views) => page.history = Some((views[0].code.clone(), views.iter().rev().map(state).collect())),
                Err(e) => return failure(e),
            }
        }
        _ => {
            let key = if by == "citizen" {
                call.looked_up(SubjectKind::CitizenId, [q.as_str()]);
                FindKey::CitizenId(q.clone())
            } else {
                FindKey::CertificateNumber(q.clone())
            };
            match console.registry.find(caller, key, None).await {
                Ok(views) => {
                    call.looked_up(SubjectKind::HouseholdCode, views.iter().map(|v| v.code.as_str()));
                    page.found = Some(
                        views
                            .iter()
                            .map(|v| Found {
                                code: v.code.clone(),
                                head_name: v.data.head_name.clone(),
                                category: category_name(v.data.category),
                                commune: format!("{} ({})", v.commune_name, v.data.commune_code),
                            })
                            .collect(),
                    );
                }
                Err(e) => return failure(e),
            }
        }
    }
    render(&page)
}

#[derive(Debug, Deserialize)]
pub(super) struct BatchesAsked {
    #[serde(default)]
    page: String,
}

struct BatchRow {
    batch_id: String,
    kind: &'static str,
    review_period: String,
    effective: String,
    counts: [String; 5],
    pushed_by: String,
    applied: String,
    digest: String,
}

#[derive(Template)]
#[template(path = "console/batches.html")]
struct BatchesPage {
    who: String,
    rows: Vec<BatchRow>,
    next_page: Option<String>,
}

/// The batches the labour department pushed, newest first, each with its receipt's figures.
pub(super) async fn batches(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    Query(asked): Query<BatchesAsked>,
) -> Response {
    let caller = &visitor.caller;
    let page = match console.registry.list_batches(50, asked.page.trim()).await {
        Ok(page) => page,
        Err(e) => return failure(e),
    };
    let rows = page
        .items
        .iter()
        .map(|r| {
            let b = &r.batch;
            BatchRow {
                batch_id: b.batch_id.clone(),
                kind: if b.kind == "SNAPSHOT" { "Rà soát (toàn bộ danh sách)" } else { "Thay đổi" },
                review_period: b.review_period.clone(),
                effective: format::date(b.effective_date),
                counts: [b.records, b.added, b.changed, b.removed, b.unchanged].map(format::number),
                pushed_by: b.pushed_by.clone(),
                applied: b.applied_at.map(format::time).unwrap_or_default(),
                digest: b.content_digest.as_deref().map(|d| d.chars().take(16).collect()).unwrap_or_default(),
            }
        })
        .collect();
    render(&BatchesPage { who: who(caller), rows, next_page: page.next })
}

#[derive(Template)]
#[template(path = "console/upload.html")]
struct UploadPage {
    who: String,
    token: String,
}

/// The form to send a household list as CSV (`docs/CSV.md`).
pub(super) async fn upload_form(State(console): State<Arc<Console>>, visitor: Visitor) -> Response {
    let caller = &visitor.caller;
    render(&UploadPage { who: who(caller), token: console.csrf.token(&caller.fingerprint) })
}

#[derive(Template)]
#[template(path = "console/receipt.html")]
struct ReceiptPage {
    who: String,
    batch_id: String,
    replayed: bool,
    counts: [String; 5],
    digest: String,
}

/// Records handed to the register at a time, as the RPC's client sends them.
const RECORDS_PER_CHUNK: usize = 1_000;

/// A household list sent as a CSV file: read whole (every bad row of the file named, nothing
/// stored), then pushed as a batch by the same service as `PushBatch` (every bad record and
/// field named, nothing stored), then its receipt.
pub(super) async fn upload(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    headers: HeaderMap,
    uri: Uri,
    mut form: Multipart,
) -> Response {
    let caller = &visitor.caller;
    let mut fields = std::collections::HashMap::new();
    let mut file = None;
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_owned();
                let read = if name == "file" {
                    field.bytes().await.map(|b| file = Some(b))
                } else {
                    field.text().await.map(|t| {
                        fields.insert(name, t);
                    })
                };
                if let Err(e) = read {
                    return failure(DomainError::invalid("file", format!("the form could not be read: {e}")));
                }
            }
            Ok(None) => break,
            Err(e) => return failure(DomainError::invalid("file", format!("the form could not be read: {e}"))),
        }
    }
    let field = |name: &str| fields.get(name).map(|s| s.trim().to_owned()).unwrap_or_default();
    if let Some(refused) = forged(&console, caller, &headers, &uri, &field("csrf")) {
        return refused;
    }
    let kind = match field("kind").as_str() {
        "" => None,
        k => match BatchKind::parse(k) {
            Ok(k) => Some(k),
            Err(e) => return failure(DomainError::invalid("kind", e)),
        },
    };
    let header = match console.registry.check_header(&HeaderInput {
        batch_id: field("batch_id"),
        kind,
        review_period: field("review_period"),
        effective_date: field("effective_date"),
        note: field("note"),
    }) {
        Ok(h) => h,
        Err(e) => return failure(e),
    };
    let Some(file) = file.filter(|f| !f.is_empty()) else {
        return failure(DomainError::invalid("file", "choose the CSV file of the list"));
    };
    let reader = match CsvReader::new(&file[..]) {
        Ok(r) => r,
        Err(e) => return failure(DomainError::Invalid(vec![csv_violation(&e)])),
    };
    let (mut records, mut bad) = (Vec::new(), Vec::new());
    for read in reader {
        match read {
            Ok(record) => records.push(record_input(record)),
            Err(e) => bad.push(csv_violation(&e)),
        }
    }
    if !bad.is_empty() {
        let total = bad.len();
        return failure(DomainError::InvalidBatch { violations: bad, total });
    }
    let mut chunks = Vec::new();
    while !records.is_empty() {
        let rest = records.split_off(records.len().min(RECORDS_PER_CHUNK));
        chunks.push(Ok(std::mem::replace(&mut records, rest)));
    }
    let receipt =
        match console.registry.push(header, &caller.member.code, Box::pin(futures_util::stream::iter(chunks))).await {
            Ok(r) => r,
            Err(e) => return failure(e),
        };
    let b = &receipt.batch;
    render(&ReceiptPage {
        who: who(caller),
        batch_id: b.batch_id.clone(),
        replayed: receipt.replayed,
        counts: [b.records, b.added, b.changed, b.removed, b.unchanged].map(format::number),
        digest: b.content_digest.clone().unwrap_or_default(),
    })
}

/// A row of the file that does not fit the format, named by its line and column.
fn csv_violation(e: &CsvError) -> FieldViolation {
    let field = match &e.column {
        Some(column) => format!("line {}, {column}", e.line),
        None => format!("line {}", e.line),
    };
    FieldViolation::new(field, e.message.clone())
}
