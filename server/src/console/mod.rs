//! The console: pages for the programme's people in a browser, on the hub's own port and behind
//! the same mutual TLS (the browser presents the member's client certificate).
//!
//! The hub layer treats a console request as it treats a call: it identifies the member from
//! the certificate, checks the permission of the RPC the page maps to ([`permission`]: one
//! authorization table for both), admits it within the member's share of the hub, and keeps
//! its audit record before the page is answered. The pages call the domain's services and
//! repeat none of their rules: an operator reads only its own lists because the reconciliation
//! service says so, here as over gRPC.
//!
//! The layer's rule: the console uses the domain (and the transport's call context), never
//! storage. Pages are rendered on the server from templates checked at compile time
//! (`server/templates/console/`, every value escaped); they need no script, and every answer
//! carries a Content-Security-Policy that allows none ([`SECURITY_HEADERS`]).
//!
//! The pages are Vietnamese first, with an English switch in every page's header; the
//! browser's choice is its own, kept in a cookie (`words`). Numbers, amounts, dates and times
//! read as in Vietnam in both languages ([`format`]).

pub mod csrf;
mod device_lists;
mod devices;
mod downloads;
pub mod format;
mod households;
mod inspections;
mod line;
mod members;
mod pages;
mod statistics;
mod subject;
mod supervision;
mod words;

pub use pages::Detail;

use std::sync::Arc;

use axum::{Router, response::Redirect, routing::get};

use crate::{
    audit::checkpoint::VerifierKey,
    domain::{
        clock::Clock, devices::DeviceService, inspections::InspectionService, members::MemberRegistry,
        reconciliation::ReconciliationService, registry::HouseholdRegistry, statistics::StatisticsService,
        supervision::SupervisionService,
    },
};

/// Where the console is served.
pub const PREFIX: &str = "/console";

/// What every console answer carries: no script, no frames, nothing from elsewhere, forms
/// posted only here, nothing kept by caches, no referrer sent to other sites (and to this
/// one, so that a form's `Origin` is the console's and not `null`).
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
    ("cache-control", "no-store"),
];

/// The RPC whose permission a console request needs, for a path under [`PREFIX`]; `None` for
/// any other path. A page no one has written needs only membership (its answer is "no such
/// page").
pub fn permission(method: &http::Method, path: &str) -> Option<&'static str> {
    if path != PREFIX && !path.starts_with("/console/") {
        return None;
    }
    let segments: Vec<&str> = path.trim_start_matches(PREFIX).trim_start_matches('/').split('/').collect();
    Some(match (method.as_str(), segments.as_slice()) {
        ("GET", ["language"]) => "/telesub.v1.Members/WhoAmI",
        ("GET", ["audit"]) => "/telesub.v1.Supervision/QueryAudit",
        // ICT and localities (for their residents: the report's own rule), among those who
        // read households.
        ("GET", ["subject"] | ["subject", "file"]) => "/telesub.v1.HouseholdRegistry/GetHouseholdHistory",
        ("GET", ["audit", "check"]) => "/telesub.v1.Supervision/VerifyAudit",
        ("GET", ["statistics"] | ["statistics", "file"]) => "/telesub.v1.Supervision/GetProgrammeStatistics",
        ("GET", ["inspections"]) => "/telesub.v1.Supervision/ListInspections",
        ("GET", ["inspections", _]) => "/telesub.v1.Supervision/GetInspection",
        ("POST", ["inspections"]) => "/telesub.v1.Supervision/CreateInspection",
        ("POST", ["inspections", _, "findings"]) => "/telesub.v1.Supervision/RecordFinding",
        ("POST", ["inspections", _, "findings", _]) => "/telesub.v1.Supervision/UpdateFindingStatus",
        ("POST", ["inspections", _, "close"]) => "/telesub.v1.Supervision/CloseInspection",
        ("GET", ["members"]) => "/telesub.v1.Members/ListMembers",
        ("POST", ["members"]) => "/telesub.v1.Members/RegisterMember",
        ("POST", ["members", _, "suspend"]) => "/telesub.v1.Members/SuspendMember",
        ("GET", ["devices"]) => "/telesub.v1.DeviceAllocation/ListAllocations",
        ("GET", ["devices", _]) => "/telesub.v1.DeviceAllocation/GetAllocation",
        ("GET", ["devices", _, "places"]) => "/telesub.v1.DeviceAllocation/ListAllocationRecipients",
        ("GET", ["devices", _, "published"]) => "/telesub.v1.DeviceAllocation/PublishedRecipients",
        ("POST", ["devices", _, "propose"]) => "/telesub.v1.DeviceAllocation/ProposeRecipients",
        ("POST", ["devices", _, "amend"]) => "/telesub.v1.DeviceAllocation/AmendProposal",
        ("POST", ["devices", _, "submit"]) => "/telesub.v1.DeviceAllocation/SubmitForApproval",
        ("POST", ["devices", _, "approve"]) => "/telesub.v1.DeviceAllocation/Approve",
        ("POST", ["devices", _, "return"]) => "/telesub.v1.DeviceAllocation/ReturnForRevision",
        ("POST", ["devices", _, "handover"]) => "/telesub.v1.DeviceAllocation/RecordHandover",
        ("GET", ["batches"]) => "/telesub.v1.HouseholdRegistry/ListBatches",
        ("GET", ["batches", "new"]) | ("POST", ["batches"]) => "/telesub.v1.HouseholdRegistry/PushBatch",
        ("GET", ["households"]) => "/telesub.v1.HouseholdRegistry/GetHouseholdHistory",
        ("GET", ["reconciliation"]) => "/telesub.v1.Reconciliation/ListReconciliations",
        ("GET", ["reconciliation", _, _, "file"]) => "/telesub.v1.Reconciliation/ExportReconciliation",
        ("GET", ["reconciliation", _, _] | ["reconciliation", _, _, "lines", _]) => {
            "/telesub.v1.Reconciliation/ListDiscrepancies"
        }
        ("POST", ["reconciliation", _, _, "confirm"]) => "/telesub.v1.Reconciliation/Confirm",
        ("POST", ["reconciliation", _, _, "reject"]) => "/telesub.v1.Reconciliation/Reject",
        _ => "/telesub.v1.Members/WhoAmI",
    })
}

/// A page for a request the hub layer refused before any page ran (no certificate of a
/// member, a role without the page's permission, the hub full or its database away).
pub fn refusal(status: http::StatusCode, message: &str) -> axum::response::Response {
    pages::refusal(status, message)
}

/// The most a request to the console may send: a household list as CSV for
/// `POST /console/batches` (a province's yearly review is some tens of MB), a small form
/// otherwise. The hub layer reads the body whole, within this, into the record's digest.
pub fn body_limit(method: &http::Method, path: &str) -> usize {
    if method == http::Method::POST && path == "/console/batches" { UPLOAD_LIMIT } else { FORM_LIMIT }
}

/// A form's body: a decision's note is at most 500 characters.
const FORM_LIMIT: usize = 64 * 1024;
/// A household list as CSV.
const UPLOAD_LIMIT: usize = 64 * 1024 * 1024;

/// The domain services the pages call.
#[derive(Debug, Clone)]
pub struct Console {
    pub reconciliation: ReconciliationService,
    pub registry: HouseholdRegistry,
    pub supervision: SupervisionService,
    pub statistics: StatisticsService,
    pub devices: DeviceService,
    pub members: MemberRegistry,
    pub inspections: InspectionService,
    pub enrollments: crate::domain::enrollments::EnrollmentService,
    /// The key the trail's checkpoints are checked with.
    pub verifier: Option<VerifierKey>,
    pub clock: Clock,
    /// The key of the forms' tokens (see [`csrf`]).
    pub csrf: csrf::Csrf,
}

/// The console's routes, to be served beside the gRPC services.
pub fn router(console: Console) -> Router {
    Router::new()
        .route(PREFIX, get(|| async { Redirect::permanent("/console/") }))
        .route("/console/", get(pages::home))
        .route("/console/language", get(words::switch))
        .route("/console/audit", get(supervision::lookups))
        .route("/console/subject", get(subject::subject))
        .route("/console/subject/file", get(subject::file))
        .route("/console/audit/check", get(supervision::check))
        .route("/console/batches", get(households::batches).post(households::upload))
        .route("/console/batches/new", get(households::upload_form))
        .route("/console/inspections", get(inspections::inspections).post(inspections::create))
        .route("/console/inspections/{id}", get(inspections::inspection))
        .route("/console/inspections/{id}/{step}", axum::routing::post(inspections::step))
        .route("/console/inspections/{id}/findings/{number}", axum::routing::post(inspections::finding_progress))
        .route("/console/members", get(members::members).post(members::register))
        .route("/console/members/{code}/suspend", axum::routing::post(members::suspend))
        .route("/console/devices", get(devices::decisions))
        .route("/console/devices/{number}", get(devices::decision))
        .route("/console/devices/{number}/handover", axum::routing::post(devices::handover))
        .route("/console/devices/{number}/places", get(device_lists::places))
        .route("/console/devices/{number}/published", get(device_lists::published))
        .route("/console/devices/{number}/{step}", axum::routing::post(devices::step))
        .route("/console/households", get(households::households))
        .route("/console/statistics", get(statistics::statistics))
        .route("/console/statistics/file", get(statistics::file))
        .route("/console/reconciliation", get(pages::reconciliation))
        .route("/console/reconciliation/{operator}/{update_id}", get(pages::list))
        .route("/console/reconciliation/{operator}/{update_id}/{decision}", axum::routing::post(pages::decide))
        .route("/console/reconciliation/{operator}/{update_id}/lines/{line_no}", get(line::line))
        .route("/console/reconciliation/{operator}/{update_id}/file", get(downloads::download))
        .route("/console/static/console.css", get(pages::stylesheet))
        .route("/console/{*rest}", get(pages::not_found).post(pages::not_found))
        .with_state(Arc::new(console))
}
