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
    pages::{PAGE, Visitor, failure_in, forged, render, who},
    words::T,
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

/// Names of the categories.
pub(super) fn category_name(t: T, c: Category) -> &'static str {
    match c {
        Category::Poor => t.s("Hộ nghèo"),
        Category::NearPoor => t.s("Hộ cận nghèo"),
        Category::SocialPolicy => t.s("Gia đình chính sách xã hội"),
        Category::MeritoriousService => t.s("Gia đình người có công"),
        Category::Other => t.s("Khác"),
    }
}

pub(super) fn relationship_name(t: T, r: Relationship) -> &'static str {
    match r {
        Relationship::Head => t.s("Chủ hộ"),
        Relationship::Spouse => t.s("Vợ/chồng"),
        Relationship::Child => t.s("Con"),
        Relationship::Parent => t.s("Bố/mẹ"),
        Relationship::Grandchild => t.s("Cháu"),
        Relationship::Grandparent => t.s("Ông/bà"),
        Relationship::Sibling => t.s("Anh/chị/em"),
        Relationship::Other => t.s("Khác"),
    }
}

fn removal_name(t: T, r: RemovalReason) -> &'static str {
    match r {
        RemovalReason::OutOfPoverty => t.s("Thoát nghèo"),
        RemovalReason::MovedAway => t.s("Chuyển đi"),
        RemovalReason::Deceased => t.s("Chết"),
        RemovalReason::RecordedInError => t.s("Ghi nhầm"),
        RemovalReason::NotInReview => t.s("Không có trong kỳ rà soát"),
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

pub(super) fn state(t: T, v: &HouseholdView) -> TimelineState {
    TimelineState {
        from: format::date(v.valid_from),
        to: v.valid_to.map(format::date).unwrap_or_default(),
        removed: v.removal.as_ref().map(|(reason, note)| match note.trim() {
            "" => removal_name(t, *reason).to_owned(),
            note => format!("{}: {note}", removal_name(t, *reason)),
        }),
        category: category_name(t, v.data.category),
        head_name: v.data.head_name.clone(),
        commune: format!("{} ({})", v.commune_name, v.data.commune_code),
        address: v.data.address.clone(),
        certificate: v.data.certificate.as_ref().map(|c| c.number.clone()).unwrap_or_default(),
        members: v
            .data
            .members
            .iter()
            .map(|m| (m.full_name.clone(), m.citizen_id.clone(), relationship_name(t, m.relationship), m.birth_year))
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
    t: T,
    back: String,
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
    let Visitor { call, caller, lang, .. } = &visitor;
    let (lang, t) = (*lang, visitor.t());
    let q = search.q.trim().to_owned();
    let by = match search.by.as_str() {
        "" | "code" => "code",
        "citizen" => "citizen",
        "certificate" => "certificate",
        other => {
            return failure_in(
                lang,
                DomainError::invalid("by", format!("{other:?}: search by code, citizen or certificate")),
            );
        }
    };
    let mut page = HouseholdsPage {
        who: who(caller),
        t,
        back: visitor.back.clone(),
        by: by.to_owned(),
        q: q.clone(),
        history: None,
        found: None,
    };
    if q.is_empty() {
        return render(&page);
    }
    match by {
        "code" => {
            call.looked_up(SubjectKind::HouseholdCode, [q.as_str()]);
            match console.registry.history(caller, &q).await {
                Ok(views) => {
                    page.history = Some((views[0].code.clone(), views.iter().rev().map(|v| state(t, v)).collect()))
                }
                Err(e) => return failure_in(visitor.lang, e),
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
                                category: category_name(t, v.data.category),
                                commune: format!("{} ({})", v.commune_name, v.data.commune_code),
                            })
                            .collect(),
                    );
                }
                Err(e) => return failure_in(visitor.lang, e),
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
    t: T,
    back: String,
    rows: Vec<BatchRow>,
    next_page: Option<String>,
}

/// The batches the labour department pushed, newest first, each with its receipt's figures.
pub(super) async fn batches(
    State(console): State<Arc<Console>>,
    visitor: Visitor,
    Query(asked): Query<BatchesAsked>,
) -> Response {
    let (caller, t) = (&visitor.caller, visitor.t());
    let page = match console.registry.list_batches(50, asked.page.trim()).await {
        Ok(page) => page,
        Err(e) => return failure_in(visitor.lang, e.renamed(&[PAGE])),
    };
    let rows = page
        .items
        .iter()
        .map(|r| {
            let b = &r.batch;
            BatchRow {
                batch_id: b.batch_id.clone(),
                kind: if b.kind == "SNAPSHOT" { t.s("Rà soát (toàn bộ danh sách)") } else { t.s("Thay đổi") },
                review_period: b.review_period.clone(),
                effective: format::date(b.effective_date),
                counts: [b.records, b.added, b.changed, b.removed, b.unchanged].map(format::number),
                pushed_by: b.pushed_by.clone(),
                applied: b.applied_at.map(format::time).unwrap_or_default(),
                digest: b.content_digest.as_deref().map(|d| d.chars().take(16).collect()).unwrap_or_default(),
            }
        })
        .collect();
    render(&BatchesPage { who: who(caller), t, back: visitor.back.clone(), rows, next_page: page.next })
}

#[derive(Template)]
#[template(path = "console/upload.html")]
struct UploadPage {
    who: String,
    t: T,
    back: String,
    token: String,
}

/// The form to send a household list as CSV (`docs/CSV.md`).
pub(super) async fn upload_form(State(console): State<Arc<Console>>, visitor: Visitor) -> Response {
    let caller = &visitor.caller;
    render(&UploadPage {
        who: who(caller),
        t: visitor.t(),
        back: visitor.back.clone(),
        token: console.csrf.token(&caller.fingerprint),
    })
}

#[derive(Template)]
#[template(path = "console/receipt.html")]
struct ReceiptPage {
    who: String,
    t: T,
    back: String,
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
                    return failure_in(
                        visitor.lang,
                        DomainError::invalid("file", format!("the form could not be read: {e}")),
                    );
                }
            }
            Ok(None) => break,
            Err(e) => {
                return failure_in(
                    visitor.lang,
                    DomainError::invalid("file", format!("the form could not be read: {e}")),
                );
            }
        }
    }
    let field = |name: &str| fields.get(name).map(|s| s.trim().to_owned()).unwrap_or_default();
    if let Some(refused) = forged(&console, &visitor, &headers, &uri, &field("csrf")) {
        return refused;
    }
    let kind = match field("kind").as_str() {
        "" => None,
        k => match BatchKind::parse(k) {
            Ok(k) => Some(k),
            Err(e) => return failure_in(visitor.lang, DomainError::invalid("kind", e)),
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
        Err(e) => return failure_in(visitor.lang, e),
    };
    let Some(file) = file.filter(|f| !f.is_empty()) else {
        return failure_in(visitor.lang, DomainError::invalid("file", "choose the CSV file of the list"));
    };
    let reader = match CsvReader::new(&file[..]) {
        Ok(r) => r,
        Err(e) => return failure_in(visitor.lang, DomainError::Invalid(vec![csv_violation(&e)])),
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
        return failure_in(visitor.lang, DomainError::InvalidBatch { violations: bad, total });
    }
    let mut chunks = Vec::new();
    while !records.is_empty() {
        let rest = records.split_off(records.len().min(RECORDS_PER_CHUNK));
        chunks.push(Ok(std::mem::replace(&mut records, rest)));
    }
    let receipt =
        match console.registry.push(header, &caller.member.code, Box::pin(futures_util::stream::iter(chunks))).await {
            Ok(r) => r,
            Err(e) => return failure_in(visitor.lang, e),
        };
    let b = &receipt.batch;
    render(&ReceiptPage {
        who: who(caller),
        t: visitor.t(),
        back: visitor.back.clone(),
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
