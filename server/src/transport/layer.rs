//! The hub layer: wraps every gRPC call, before any handler runs.
//!
//! For each call it gives a request id, reads the caller's organisation from its certificate,
//! resolves the member, applies the authorization table, enforces the deadline and the
//! concurrency limit, and appends one audit record with the outcome. The record is stored
//! before the caller sees the call's final status, also for streaming calls; a call the
//! client abandons is recorded as `CANCELLED`.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::{
    Code, Status,
    body::Body,
    transport::server::{TcpConnectInfo, TlsConnectInfo},
};
use tower::{Layer, Service, ServiceExt};
use tracing::Instrument;

mod console;

use super::{
    Attached, CallContext,
    admission::{Admission, AdmissionLimits, Full, Place, PlaceKind},
    authz::{self, Access},
    status, subjects,
};
use crate::{
    audit::{
        AuditEntry, AuditLog,
        checkpoint::{Receipt, SigningKey},
    },
    domain::clock::Clock,
    domain::{
        identity::{Identities, IdentityError},
        member::{Caller, OrgCode, certificate_fingerprint},
    },
};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The paths of the hub's methods that take one request message (all but the client streams),
/// from the contract's descriptors.
fn unary_methods() -> std::collections::HashSet<String> {
    use prost::Message;
    let set = prost_types::FileDescriptorSet::decode(telesub_proto::FILE_DESCRIPTOR_SET)
        .expect("the contract's descriptors decode");
    let mut unary = std::collections::HashSet::new();
    for file in &set.file {
        for service in &file.service {
            for method in service.method.iter().filter(|m| !m.client_streaming()) {
                unary.insert(format!("/{}.{}/{}", file.package(), service.name(), method.name()));
            }
        }
    }
    unary
}

/// The standard health service's methods.
const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

/// Server reflection (v1 and v1alpha): answered from the contract in memory, never refused for
/// capacity.
const REFLECTION_PREFIX: &str = "/grpc.reflection.";

/// The most of a refused call's request read for what it names: enough for a lookup or a few
/// thousand questions, and little for a hub refusing many calls at once to hold.
const REFUSED_READ_LIMIT: usize = 256 * 1024;

/// Streams that stay open as long as the client wants: they hold a stream place, not a call's.
const LONG_LIVED: &[&str] = &["/telesub.v1.ChangeFeed/WatchChanges"];

/// Methods whose duration grows with the data they carry: they get the batch time limit.
const LONG_RUNNING: &[&str] = &[
    "/telesub.v1.HouseholdRegistry/PushBatch",
    "/telesub.v1.Eligibility/CheckEligibilityBatch",
    "/telesub.v1.Reconciliation/SubmitMonthlyUpdate",
    // Reads every line of the list.
    "/telesub.v1.Reconciliation/Confirm",
    "/telesub.v1.Reconciliation/ExportReconciliation",
    // Reads and orders every household that wants a device.
    "/telesub.v1.DeviceAllocation/ProposeRecipients",
    "/telesub.v1.DeviceAllocation/SubmitForApproval",
    "/telesub.v1.DeviceAllocation/PublishedRecipients",
    // Walk or export the whole audit trail.
    "/telesub.v1.Supervision/VerifyAudit",
    "/telesub.v1.Supervision/ExportAudit",
    // Purges a register's worth of decisions and households.
    "/telesub.v1.Supervision/PurgeExpired",
    // Reads the commune's enrolled households.
    "/telesub.v1.Supervision/PullSample",
    // Count the whole register and a month of lines.
    "/telesub.v1.Supervision/GetProgrammeStatistics",
    "/telesub.v1.Supervision/PublicStatistics",
    "/telesub.v1.Supervision/ExportStatistics",
];

/// The writes whose answers carry a signed receipt (trailer
/// [`telesub_proto::audit::RECEIPT_TRAILER`]): what a party may need to prove it did, and
/// when.
pub(crate) const RECEIPTED: &[&str] = &[
    "/telesub.v1.Members/RegisterMember",
    "/telesub.v1.Members/UpdateMember",
    "/telesub.v1.Members/SuspendMember",
    "/telesub.v1.HouseholdRegistry/PushBatch",
    "/telesub.v1.AdministrativeUnits/RecordUnits",
    "/telesub.v1.Policy/AddPolicyVersion",
    "/telesub.v1.Policy/WithdrawPolicyVersion",
    "/telesub.v1.Enrollments/Enroll",
    "/telesub.v1.Enrollments/Deenroll",
    "/telesub.v1.Enrollments/Transfer",
    "/telesub.v1.Reconciliation/SubmitMonthlyUpdate",
    "/telesub.v1.Reconciliation/Confirm",
    "/telesub.v1.Reconciliation/Reject",
    "/telesub.v1.DeviceAllocation/RecordAllocationDecision",
    "/telesub.v1.DeviceAllocation/NominateHouseholds",
    "/telesub.v1.DeviceAllocation/ProposeRecipients",
    "/telesub.v1.DeviceAllocation/AmendProposal",
    "/telesub.v1.DeviceAllocation/SubmitForApproval",
    "/telesub.v1.DeviceAllocation/Approve",
    "/telesub.v1.DeviceAllocation/ReturnForRevision",
    "/telesub.v1.DeviceAllocation/RecordHandover",
    "/telesub.v1.Supervision/CreateInspection",
    "/telesub.v1.Supervision/RecordFinding",
    "/telesub.v1.Supervision/UpdateFindingStatus",
    "/telesub.v1.Supervision/CloseInspection",
    "/telesub.v1.Supervision/PullSample",
    "/telesub.v1.Supervision/PurgeExpired",
];

/// The header that carries the request id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The SAN URI prefix that names a member organisation in its certificate.
pub const ORG_URI_PREFIX: &str = "urn:telesub:org:";

/// What the layer needs, shared by every connection.
#[derive(Debug)]
pub struct HubState {
    identities: Arc<Identities>,
    audit: AuditLog,
    admission: Admission,
    request_timeout: Duration,
    batch_timeout: Duration,
    orgs: Mutex<HashMap<String, Presented>>,
    /// Whether the database answers, as the hub's watch on it last found.
    database_up: Arc<AtomicBool>,
    /// The methods that take one request message.
    unary: std::collections::HashSet<String>,
    /// The largest request message, read whole when a refused call's request names citizens
    /// or households.
    max_message_bytes: usize,
    /// The key write answers' receipts are signed with.
    receipts: Option<Arc<SigningKey>>,
    /// What audit records are dated by.
    clock: Clock,
    /// The hub's metrics, when it keeps them.
    metrics: Option<crate::metrics::Metrics>,
}

impl HubState {
    pub fn new(
        identities: Arc<Identities>,
        audit: AuditLog,
        admission: AdmissionLimits,
        request_timeout: Duration,
        batch_timeout: Duration,
        max_message_bytes: usize,
    ) -> Self {
        Self {
            identities,
            audit,
            admission: Admission::new(admission),
            request_timeout,
            batch_timeout,
            orgs: Mutex::default(),
            database_up: Arc::new(AtomicBool::new(true)),
            unary: unary_methods(),
            max_message_bytes,
            receipts: None,
            clock: Clock::system(),
            metrics: None,
        }
    }

    /// Counts calls, their time, their places and refusals for capacity in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// A place admitted for `holder`, counted in the metrics while it is held.
    fn admitted(&self, mut place: Place, holder: &str, kind: PlaceKind) -> Place {
        if let Some(m) = &self.metrics {
            let kind = match kind {
                PlaceKind::Call => "call",
                PlaceKind::Stream => "stream",
            };
            let labels = crate::metrics::HolderLabels { member: holder.to_owned(), kind: kind.to_owned() };
            place.track(m.in_flight.get_or_create(&labels).clone());
        }
        place
    }

    /// Counts a refusal for capacity.
    fn full(&self, full: &Full) {
        if let Some(m) = &self.metrics {
            let scope = match full {
                Full::Hub(_) => "hub",
                Full::Member { .. } => "member",
            };
            m.capacity_refusals.get_or_create(&crate::metrics::ScopeLabels { scope: scope.to_owned() }).inc();
        }
    }

    /// Dates audit records by `clock` (the system's by default).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Signs a receipt for every successful call of the [`RECEIPTED`] methods.
    pub fn with_receipts(mut self, key: Arc<SigningKey>) -> Self {
        self.receipts = Some(key);
        self
    }

    /// The flag the hub's watch on the database keeps: while it is down, calls are refused at
    /// once rather than after the database timeout.
    pub fn database_up(&self) -> Arc<AtomicBool> {
        self.database_up.clone()
    }
}

#[derive(Debug, Clone)]
pub struct HubLayer(Arc<HubState>);

impl HubLayer {
    pub fn new(state: HubState) -> Self {
        Self(Arc::new(state))
    }
}

impl<S> Layer<S> for HubLayer {
    type Service = Hub<S>;

    fn layer(&self, inner: S) -> Hub<S> {
        Hub { inner, state: self.0.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct Hub<S> {
    inner: S,
    state: Arc<HubState>,
}

impl<S> Service<Request<Body>> for Hub<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this call; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move { Ok(state.handle(req, inner).await) })
    }
}

/// A refusal by the layer itself: the status code and the reason recorded in the audit trail.
struct Refusal {
    code: Code,
    reason: String,
    /// The member whose share of the hub was used up, for a `QuotaFailure` detail.
    quota_of: Option<String>,
}

impl Refusal {
    fn new(code: Code, reason: impl Into<String>) -> Self {
        Self { code, reason: reason.into(), quota_of: None }
    }

    fn with_quota(mut self, member: &str) -> Self {
        self.quota_of = Some(member.to_owned());
        self
    }
}

impl HubState {
    async fn handle<S>(self: Arc<Self>, mut req: Request<Body>, inner: S) -> Response<Body>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Send + 'static,
        S::Future: Send + 'static,
    {
        let method = req.uri().path().to_owned();
        if method.starts_with(HEALTH_PREFIX) {
            // Health is the hub's own state, for orchestrators and load balancers: answered at
            // once, never refused for capacity and never waiting on a write (a database out of
            // reach is what it must report). Not a member's act: not in the audit trail.
            let Ok(response) = inner.oneshot(req).await;
            return response;
        }
        if let Some(needs) = crate::console::permission(req.method(), &method) {
            return self.console_page(req, inner, needs).await;
        }
        let request_id = request_id_from(req.headers()).unwrap_or_else(new_request_id);
        let certificate = self.identify(&req);
        let span = tracing::info_span!(
            "rpc",
            method = %method,
            org = certificate.org_text.as_deref().unwrap_or("-"),
            request_id = %request_id,
            trace_id = tracing::field::Empty,
        );
        if let Some(trace) = trace_id(req.headers()) {
            span.record("trace_id", tracing::field::display(trace));
        }
        crate::telemetry::continue_trace(&span, req.headers());
        let mut call =
            CallRecord::new(self.clone(), self.entry(&request_id, &certificate, method.clone()), span.clone());

        async move {
            if !self.database_up.load(Ordering::Relaxed) {
                let reason = "the hub's database does not answer right now; nothing was done: retry later";
                return call.refuse(Refusal::new(Code::Unavailable, reason)).await;
            }
            let caller = match self.authorize(&method, certificate).await {
                Ok(caller) => caller,
                Err(refusal) => {
                    call.read_named(req, self.max_message_bytes.min(REFUSED_READ_LIMIT)).await;
                    return call.refuse(refusal).await;
                }
            };
            call.role = caller.as_ref().map(|c| c.member.role);
            if !method.starts_with(REFLECTION_PREFIX) {
                let kind = if LONG_LIVED.contains(&method.as_str()) { PlaceKind::Stream } else { PlaceKind::Call };
                // A member's share is counted by its code; a caller known by certificate only,
                // by what names it.
                let holder = caller
                    .as_ref()
                    .map(|c| c.member.code.as_str().to_owned())
                    .or_else(|| call.entry.as_ref().and_then(|e| e.org_code.clone().or(e.cert_fingerprint.clone())))
                    .unwrap_or_default();
                match self.admission.admit(&holder, kind) {
                    Ok(place) => call.place = Some(self.admitted(place, &holder, kind)),
                    Err(full) => {
                        self.full(&full);
                        let refusal = match full {
                            Full::Hub(_) => Refusal::new(Code::Unavailable, full.reason(&holder)),
                            Full::Member { .. } => {
                                Refusal::new(Code::ResourceExhausted, full.reason(&holder)).with_quota(&holder)
                            }
                        };
                        call.read_named(req, self.max_message_bytes.min(REFUSED_READ_LIMIT)).await;
                        return call.refuse(refusal).await;
                    }
                }
            }

            let limit = if LONG_RUNNING.contains(&method.as_str()) { self.batch_timeout } else { self.request_timeout };
            let timeout = grpc_timeout(req.headers()).map_or(limit, |t| t.min(limit));
            let digest = call.digest.clone();
            req.extensions_mut().insert(CallContext {
                request_id: request_id.clone(),
                caller: caller.map(Arc::new),
                attached: call.attached.clone(),
            });
            let frames = Frames { one_message: self.unary.contains(method.as_str()), ..Frames::default() };
            // A unary request is kept to read what it names should the call fail; a stream's
            // questions are read only when it is refused before it starts.
            let keep = call
                .named
                .clone()
                .filter(|_| self.unary.contains(method.as_str()))
                .map(|bytes| (bytes, self.max_message_bytes + 5));
            let req = req.map(|body| Body::new(DigestingBody { inner: body, digest, frames, keep }));

            let mut response = match tokio::time::timeout(timeout, inner.oneshot(req)).await {
                Ok(Ok(response)) => response,
                Err(_elapsed) => {
                    let reason = format!("no answer within {} ms", timeout.as_millis());
                    return call.refuse(Refusal::new(Code::DeadlineExceeded, reason)).await;
                }
            };
            set_request_id(response.headers_mut(), &request_id);
            if let Some((code, message)) = grpc_status(response.headers()) {
                // A trailers-only response: the outcome is known now.
                if let Some(honest) = status::request_fault(code, &message) {
                    let recorded = call.complete(honest, message.clone()).await;
                    let answer = if recorded {
                        status::status(honest, message, &request_id)
                    } else {
                        status::unrecorded(&request_id)
                    };
                    let mut response = answer.into_http::<Body>();
                    set_request_id(response.headers_mut(), &request_id);
                    return response;
                }
                if !call.complete(code, message).await {
                    let mut refused = status::unrecorded(&request_id).into_http::<Body>();
                    set_request_id(refused.headers_mut(), &request_id);
                    return refused;
                }
                return response;
            }
            response.map(|body| Body::new(AuditedBody { inner: body, call: Some(call), pending: None, request_id }))
        }
        .instrument(span)
        .await
    }

    /// The audit record of a call or a page as it begins: who, when, what; its outcome comes
    /// when it ends.
    fn entry(&self, request_id: &str, certificate: &Certificate, method: String) -> AuditEntry {
        AuditEntry {
            at: self.clock.now(),
            request_id: request_id.to_owned(),
            org_code: certificate.org_text.clone(),
            person: certificate.person.clone(),
            cert_fingerprint: certificate.fingerprint.clone(),
            method,
            outcome: String::new(),
            detail: String::new(),
            request_digest: String::new(),
            attached: None,
            decisions_call: None,
        }
    }

    /// What the client certificate says of the caller.
    fn identify(&self, req: &Request<Body>) -> Certificate {
        let certificate = req
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|info| info.peer_certs())
            .and_then(|certs| certs.first().cloned());
        let fingerprint = certificate.as_ref().map(|c| certificate_fingerprint(c));
        let presented = certificate.as_ref().zip(fingerprint.as_ref()).map(|(c, fp)| self.presented(fp, c));
        let (org, person) = match presented {
            Some(p) => (Some(p.org), p.person),
            None => (None, None),
        };
        let org_text = match &org {
            Some(Ok(code)) => Some(code.as_str().to_owned()),
            _ => None,
        };
        Certificate { fingerprint, org, org_text, person }
    }

    /// Decides whether the call may go ahead, and who is calling.
    async fn authorize(&self, method: &str, certificate: Certificate) -> Result<Option<Caller>, Refusal> {
        let Certificate { org, fingerprint, person, .. } = certificate;
        let Some(rule) = authz::rule_for(method) else {
            return Err(Refusal::new(Code::Unimplemented, format!("the hub has no method {method}")));
        };
        if rule.access == Access::Certificate {
            return Ok(None);
        }
        let (Some(org), Some(fingerprint)) = (org, fingerprint) else {
            return Err(Refusal::new(Code::Unauthenticated, "no client certificate"));
        };
        let org = org.map_err(|reason| Refusal::new(Code::Unauthenticated, reason))?;
        let member = self.identities.resolve(&org, &fingerprint).await.map_err(|e| match e {
            IdentityError::Unknown(_) => Refusal::new(Code::Unauthenticated, e.to_string()),
            IdentityError::Suspended(_) => Refusal::new(Code::PermissionDenied, e.to_string()),
            IdentityError::Storage(crate::domain::ports::PortError::Unavailable(why)) => {
                tracing::warn!(reason = %why, "member lookup failed: the database is unavailable");
                Refusal::new(
                    Code::Unavailable,
                    format!("the hub cannot look its members up right now ({why}); retry later"),
                )
            }
            IdentityError::Storage(cause) => {
                tracing::error!(error = %crate::ErrorChain(&cause), "member lookup failed");
                Refusal::new(Code::Internal, "member lookup failed")
            }
        })?;
        if !rule.access.allows(member.role) {
            return Err(Refusal::new(
                Code::PermissionDenied,
                format!("member {} has role {}, which may not call {method}", member.code, member.role),
            ));
        }
        Ok(Some(Caller { member, fingerprint, person }))
    }

    /// What a certificate names, cached by fingerprint (a certificate never changes).
    fn presented(&self, fingerprint: &str, der: &[u8]) -> Presented {
        if let Some(known) = self.orgs.lock().expect("org cache").get(fingerprint) {
            return known.clone();
        }
        let parsed = Presented { org: org_from_certificate(der), person: person_from_certificate(der) };
        let mut orgs = self.orgs.lock().expect("org cache");
        if orgs.len() >= 10_000 {
            orgs.clear();
        }
        orgs.insert(fingerprint.to_owned(), parsed.clone());
        parsed
    }
}

/// What a caller's certificate says: its fingerprint, the organisation it names (or why it
/// names none), that code as text, and the person its subject names, if any.
struct Certificate {
    fingerprint: Option<String>,
    org: Option<Result<OrgCode, String>>,
    org_text: Option<String>,
    person: Option<String>,
}

/// What a certificate names, as cached by its fingerprint.
#[derive(Debug, Clone)]
struct Presented {
    org: Result<OrgCode, String>,
    person: Option<String>,
}

/// The person a certificate's subject names: its common name when the subject also carries a
/// surname or a given name, as a natural person's certificate does (ETSI EN 319 412-2, and
/// the personal digital-signature certificates of Vietnam's CAs). An organisation's or a
/// system's certificate names none. At most 128 characters, without control characters.
fn person_from_certificate(der: &[u8]) -> Option<String> {
    use x509_parser::oid_registry::{OID_X509_GIVEN_NAME, OID_X509_SURNAME};
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let natural =
        subject.iter_attributes().any(|a| a.attr_type() == &OID_X509_SURNAME || a.attr_type() == &OID_X509_GIVEN_NAME);
    if !natural {
        return None;
    }
    let name = subject.iter_common_name().next()?.as_str().ok()?.trim();
    let clean = !name.is_empty() && name.chars().count() <= 128 && !name.chars().any(char::is_control);
    clean.then(|| name.to_owned())
}

/// The trace a call belongs to, from its W3C `traceparent` header
/// (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`): the trace id, so that the call's
/// log lines can be found beside the caller's. `None` for a missing or malformed header, and
/// for the all-zero ids the standard rules out.
pub(crate) fn trace_id(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get("traceparent")?.to_str().ok()?.trim();
    let mut parts = value.split('-');
    let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let zero = |s: &str| s.bytes().all(|b| b == b'0');
    // Version 00 has exactly four parts; a later version may add some.
    let known = version != "00" || parts.next().is_none();
    (hex(version, 2)
        && version != "ff"
        && known
        && hex(trace, 32)
        && !zero(trace)
        && hex(parent, 16)
        && !zero(parent)
        && hex(flags, 2))
    .then_some(trace)
}

/// Reads the organisation code from the certificate's `urn:telesub:org:<CODE>` SAN URI.
pub fn org_from_certificate(der: &[u8]) -> Result<OrgCode, String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("the client certificate does not parse: {e}"))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("the client certificate's subject alternative names do not parse: {e}"))?;
    let mut codes = san.into_iter().flat_map(|ext| ext.value.general_names.iter()).filter_map(|name| match name {
        GeneralName::URI(uri) => uri.strip_prefix(ORG_URI_PREFIX),
        _ => None,
    });
    match (codes.next(), codes.next()) {
        (Some(code), None) => OrgCode::parse(code).map_err(|e| format!("the client certificate names {e}")),
        (None, _) => Err(format!("the client certificate has no {ORG_URI_PREFIX}<CODE> subject alternative name")),
        (Some(_), Some(_)) => Err("the client certificate names more than one organisation".to_owned()),
    }
}

/// One call's audit record, from arrival to final status. Dropped unfinished (the client went
/// away), it records the call as `CANCELLED`.
struct CallRecord {
    state: Arc<HubState>,
    entry: Option<AuditEntry>,
    digest: Arc<Mutex<ring::digest::Context>>,
    started: Instant,
    span: tracing::Span,
    /// The admission place the call holds while it runs.
    place: Option<Place>,
    /// What the handler asked to store with the record.
    attached: Arc<Mutex<Attached>>,
    /// The request's bytes, for a method whose requests name citizens or households: what
    /// they name is recorded when the call does not succeed.
    named: Option<Arc<Mutex<Vec<u8>>>>,
    /// The caller's role, once it is known to be a member.
    role: Option<crate::domain::member::Role>,
}

impl CallRecord {
    fn new(state: Arc<HubState>, entry: AuditEntry, span: tracing::Span) -> Self {
        let named = subjects::names_subjects(&entry.method).then(Arc::default);
        Self {
            named,
            state,
            entry: Some(entry),
            digest: Arc::new(Mutex::new(ring::digest::Context::new(&ring::digest::SHA256))),
            started: Instant::now(),
            span,
            place: None,
            role: None,
            attached: Arc::default(),
        }
    }

    /// Reads a refused call's request, when it may name citizens or households, so that the
    /// refusal is found by them; a client that does not send it within a second is not waited
    /// for.
    async fn read_named(&mut self, req: Request<Body>, limit: usize) {
        use http_body_util::BodyExt;
        let Some(named) = self.named.clone() else { return };
        let mut body = req.into_body();
        // At most one message's worth (what a stream sends beyond it is not read), within a
        // second.
        let read = async {
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(bytes) = frame.into_data() {
                    self.digest.lock().expect("request digest").update(&bytes);
                    let mut kept = named.lock().expect("request bytes");
                    kept.extend_from_slice(&bytes);
                    if kept.len() > limit + 5 {
                        return;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), read).await;
    }

    /// Answers the call with the layer's own refusal, once its audit record is stored.
    async fn refuse(mut self, refusal: Refusal) -> Response<Body> {
        let request_id = self.entry.as_ref().map(|e| e.request_id.clone()).unwrap_or_default();
        let message = refusal.reason.clone();
        let code = refusal.code;
        let quota_of = refusal.quota_of;
        let recorded = self.finish(code, refusal.reason).await.is_stored();
        let status = match (code, quota_of) {
            _ if !recorded => status::unrecorded(&request_id),
            (Code::Internal, _) => status::internal(&request_id),
            (_, Some(member)) => status::share_used_up(message, &member, &request_id),
            _ => status::status(code, message, &request_id),
        };
        let mut response = status.into_http::<Body>();
        set_request_id(response.headers_mut(), &request_id);
        response
    }

    /// Stores the record of a call answered with `code`; `false` when it could not be stored.
    async fn complete(mut self, code: Code, message: String) -> bool {
        self.finish(code, if code == Code::Ok { String::new() } else { message }).await.is_stored()
    }

    /// Stores the audit record (and logs the call) exactly once; the future says whether the
    /// record was stored (also when there was nothing left to store), with the answer's signed
    /// receipt when the call is a successful write of [`RECEIPTED`].
    fn finish(&mut self, code: Code, detail: String) -> impl Future<Output = Kept> + Send + use<> {
        let prepared = self.entry.take().map(|mut entry| {
            entry.outcome = code_name(code).to_owned();
            let kept = self.attached.lock().expect("call attachments").detail.take();
            entry.detail = truncate(kept.map_or(detail, |real| format!("answered as not found: {real}")), 500);
            let digest = self.digest.lock().expect("request digest").clone().finish();
            entry.request_digest = crate::hex(digest.as_ref());
            let elapsed = self.started.elapsed();
            let elapsed_ms = elapsed.as_secs_f64() * 1e3;
            if let Some(m) = &self.state.metrics {
                // A console page is counted by its kind (`GET /console/reconciliation`), not by
                // the list or household it names.
                let method = match entry.method.split_once(' ') {
                    Some((verb, path)) => {
                        let path = path.split('?').next().unwrap_or(path);
                        let kind: String = path.split('/').take(3).collect::<Vec<_>>().join("/");
                        format!("{verb} {kind}")
                    }
                    None => entry.method.clone(),
                };
                let role = self.role.map_or("NONE", |r| r.as_str()).to_owned();
                let labels =
                    crate::metrics::CallLabels { method: method.clone(), role, outcome: entry.outcome.clone() };
                m.calls.get_or_create(&labels).inc();
                m.call_seconds.get_or_create(&crate::metrics::MethodLabels { method }).observe(elapsed.as_secs_f64());
            }
            let _enter = self.span.enter();
            if matches!(code, Code::Ok) {
                tracing::info!(outcome = entry.outcome, elapsed_ms, "rpc finished");
            } else {
                tracing::info!(outcome = entry.outcome, detail = entry.detail, elapsed_ms, "rpc finished");
            }
            let mut attached = std::mem::take(&mut *self.attached.lock().expect("call attachments"));
            if code != Code::Ok
                && let Some(bytes) = &self.named
            {
                let bytes = bytes.lock().expect("request bytes");
                let named = subjects::named_in_body(&entry.method, &bytes);
                for subject in named {
                    if !attached.subjects.contains(&subject) {
                        attached.subjects.push(subject);
                    }
                }
            }
            entry.attached = Some(crate::audit::attached_digest(crate::audit::Attachments {
                subjects: attached.subjects.iter().collect(),
                decisions: attached.decisions.iter().collect(),
                runs: attached.runs.clone(),
            }));
            entry.decisions_call = attached
                .decisions
                .first()
                .map(|d| d.call_id.clone())
                .or_else(|| attached.runs.first().map(|r| r.call_id.clone()));
            let receipt = match &self.state.receipts {
                Some(key) if code == Code::Ok && RECEIPTED.contains(&entry.method.as_str()) => {
                    Some((key.clone(), entry.request_digest.clone(), entry.method.clone(), entry.at))
                }
                _ => None,
            };
            (entry, attached, receipt, self.state.audit.clone(), self.span.clone())
        });
        let place = self.place.take();
        // A call answered UNAVAILABLE changed nothing and is answered so whether or not its
        // record can be stored: it does not wait (the database is likely what is missing).
        let wait = code != Code::Unavailable;
        let store = async move {
            let mut kept = Kept::Stored(None);
            if let Some((entry, attached, receipt, audit, span)) = prepared {
                match audit.append_with(entry, attached.decisions, attached.subjects).await {
                    Ok((seq, hash)) => {
                        kept = Kept::Stored(receipt.map(|(key, request_digest, method, time)| {
                            key.sign_receipt(&Receipt {
                                origin: key.name().to_owned(),
                                seq,
                                record_hash: hash,
                                request_digest,
                                method,
                                time,
                            })
                        }));
                    }
                    Err(err) => {
                        let _enter = span.enter();
                        tracing::error!(error = %err, "the call's audit record was not stored: the caller gets UNAVAILABLE");
                        kept = Kept::Lost;
                    }
                }
            }
            drop(place);
            kept
        };
        async move {
            if wait {
                store.await
            } else {
                tokio::spawn(store);
                Kept::Stored(None)
            }
        }
    }
}

/// What became of a call's audit record.
enum Kept {
    /// Stored (or nothing was left to store), with the answer's signed receipt when it gets one.
    Stored(Option<String>),
    /// It could not be stored: the caller is told so instead of the outcome.
    Lost,
}

impl Kept {
    fn is_stored(&self) -> bool {
        matches!(self, Kept::Stored(_))
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        if self.entry.is_some() {
            let store = self.finish(Code::Cancelled, "the client went away before the call finished".to_owned());
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    store.await;
                });
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// Feeds the request bytes the handler reads into the call's digest, and counts the gRPC
    /// messages they hold.
    struct DigestingBody {
        #[pin]
        inner: Body,
        digest: Arc<Mutex<ring::digest::Context>>,
        frames: Frames,
        // A copy of the request's bytes, up to a limit, for what it names.
        keep: Option<(Arc<Mutex<Vec<u8>>>, usize)>,
    }
}

/// Where the request's bytes stand in gRPC's framing (a flag byte and a 32-bit length, then
/// the message), to tell how many messages a call carries.
#[derive(Debug, Default)]
struct Frames {
    /// A unary method: a second message is refused.
    one_message: bool,
    header: [u8; 5],
    header_len: usize,
    body_left: usize,
    messages: usize,
}

impl Frames {
    /// Reads `bytes`; the number of messages begun so far.
    fn read(&mut self, mut bytes: &[u8]) -> usize {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (5 - self.header_len).min(bytes.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
            self.header_len += n;
            bytes = &bytes[n..];
            if self.header_len == 5 {
                self.header_len = 0;
                self.messages += 1;
                let len = u32::from_be_bytes(self.header[1..5].try_into().expect("4 bytes"));
                self.body_left = len as usize;
            }
        }
        self.messages
    }
}

impl HttpBody for DigestingBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let Some(Ok(Some(bytes))) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
            this.digest.lock().expect("request digest").update(bytes);
            if let Some((kept, limit)) = this.keep {
                let mut kept = kept.lock().expect("request bytes");
                if kept.len() + bytes.len() <= *limit {
                    kept.extend_from_slice(bytes);
                }
            }
            if this.frames.read(bytes) > 1 && this.frames.one_message {
                // As gRPC implementations do: a unary call carries exactly one message.
                return Poll::Ready(Some(Err(Status::invalid_argument(
                    "a unary call carries exactly one request message; this one carries more",
                ))));
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// Holds back a response's trailers (its final status) until the audit record is stored.
    struct AuditedBody {
        #[pin]
        inner: Body,
        call: Option<CallRecord>,
        pending: Option<(BoxFuture<Kept>, Frame<Bytes>)>,
        request_id: String,
    }
}

impl HttpBody for AuditedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let mut this = self.project();
        loop {
            if let Some((store, _)) = this.pending.as_mut() {
                let kept = ready!(store.as_mut().poll(cx));
                let (_, mut trailers) = this.pending.take().expect("pending trailers");
                if let Kept::Stored(receipt) = kept {
                    if let (Some(note), Some(headers)) = (receipt, trailers.trailers_mut()) {
                        let mut metadata = tonic::metadata::MetadataMap::from_headers(std::mem::take(headers));
                        metadata.insert_bin(
                            telesub_proto::audit::RECEIPT_TRAILER,
                            tonic::metadata::MetadataValue::from_bytes(note.as_bytes()),
                        );
                        *headers = metadata.into_headers();
                    }
                    return Poll::Ready(Some(Ok(trailers)));
                }
                // The outcome is withheld: the final status says the record is missing.
                let mut headers = HeaderMap::new();
                let _ = status::unrecorded(this.request_id).add_header(&mut headers);
                return Poll::Ready(Some(Ok(Frame::trailers(headers))));
            }
            match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Some((code, message)) = frame.trailers_ref().and_then(grpc_status)
                        && let Some(mut call) = this.call.take()
                    {
                        // A fault of the request, said as gRPC specifies (see `request_fault`).
                        let (code, frame) = match status::request_fault(code, &message) {
                            Some(honest) => {
                                let mut headers = HeaderMap::new();
                                let _ =
                                    status::status(honest, message.clone(), this.request_id).add_header(&mut headers);
                                (honest, Frame::trailers(headers))
                            }
                            None => (code, frame),
                        };
                        let store = call.finish(code, if code == Code::Ok { String::new() } else { message });
                        *this.pending = Some((Box::pin(store), frame));
                        continue;
                    }
                    return Poll::Ready(Some(Ok(frame)));
                }
                Some(Err(status)) => {
                    let status = match status::request_fault(status.code(), status.message()) {
                        Some(honest) => status::status(honest, status.message().to_owned(), this.request_id),
                        None => status,
                    };
                    if let Some(mut call) = this.call.take() {
                        let store = call.finish(status.code(), status.message().to_owned());
                        tokio::spawn(async move {
                            store.await;
                        });
                    }
                    return Poll::Ready(Some(Err(status)));
                }
                None => {
                    if let Some(mut call) = this.call.take() {
                        let store = call.finish(Code::Unknown, "the response ended without a status".to_owned());
                        tokio::spawn(async move {
                            store.await;
                        });
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.call.is_none() && self.pending.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `grpc-status` and the decoded `grpc-message` of a header or trailer map.
fn grpc_status(headers: &HeaderMap) -> Option<(Code, String)> {
    let code = Code::from_bytes(headers.get("grpc-status")?.as_bytes());
    let message = headers.get("grpc-message").map(|m| percent_decode(m.as_bytes())).unwrap_or_default();
    Some((code, message))
}

fn percent_decode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The deadline the client asked for (`grpc-timeout`), if any.
fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3_600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// A request id the client chose, when it is a reasonable one.
fn request_id_from(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(REQUEST_ID_HEADER)?.to_str().ok()?;
    let ok = (8..=64).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok.then(|| value.to_owned())
}

fn new_request_id() -> String {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 16];
    SystemRandom::new().fill(&mut bytes).expect("the system random source works");
    crate::hex(&bytes)
}

fn set_request_id(headers: &mut HeaderMap, request_id: &str) {
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
}

fn truncate(mut s: String, max_chars: usize) -> String {
    if let Some((cut, _)) = s.char_indices().nth(max_chars) {
        s.truncate(cut);
    }
    s
}

/// The canonical gRPC name of a status code, as stored in the audit trail.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A person's certificate names the person; an organisation's, whose common name is its
    /// code, names no one.
    #[test]
    fn the_person_a_certificate_names() {
        use crate::pki::{DevCa, PersonSpec, Validity};
        use rustls_pki_types::{CertificateDer, pem::PemObject};
        let ca = DevCa::generate("test CA").unwrap();
        let der = |pem: &str| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap().to_vec();
        let person: PersonSpec = "DOICT:lan:Nguyễn Thị Lan".parse().unwrap();
        let issued = ca.person_certificate(&person, Validity::days(1)).unwrap();
        assert_eq!(person_from_certificate(&der(&issued.cert_pem)).as_deref(), Some("Nguyễn Thị Lan"));
        assert_eq!(org_from_certificate(&der(&issued.cert_pem)).unwrap().as_str(), "DOICT");
        let org = ca.client_certificate("DOICT", Validity::days(1)).unwrap();
        assert_eq!(person_from_certificate(&der(&org.cert_pem)), None);
        assert_eq!(person_from_certificate(b"not a certificate"), None);
    }

    #[test]
    fn every_receipted_method_is_a_write_the_hub_serves() {
        for method in RECEIPTED {
            let rule = authz::rule_for(method).unwrap_or_else(|| panic!("{method} is not served"));
            assert!(!matches!(rule.access, Access::AnyMember | Access::Certificate), "{method} is open to all");
        }
    }

    #[test]
    fn trace_ids_come_from_well_formed_traceparent_headers_only() {
        let with = |value: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("traceparent", HeaderValue::from_static(value));
            h
        };
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id(&with(good)), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f-00f067aa0ba902b7-01",
            "garbage",
        ] {
            assert_eq!(trace_id(&with(bad)), None, "{bad}");
        }
        assert_eq!(trace_id(&HeaderMap::new()), None);
    }

    #[test]
    fn grpc_timeouts() {
        let mut h = HeaderMap::new();
        h.insert("grpc-timeout", HeaderValue::from_static("250m"));
        assert_eq!(grpc_timeout(&h), Some(Duration::from_millis(250)));
        h.insert("grpc-timeout", HeaderValue::from_static("3S"));
        assert_eq!(grpc_timeout(&h), Some(Duration::from_secs(3)));
        h.insert("grpc-timeout", HeaderValue::from_static("x"));
        assert_eq!(grpc_timeout(&h), None);
        h.insert("grpc-timeout", HeaderValue::from_static("123456789S"));
        assert_eq!(grpc_timeout(&h), None);
    }

    #[test]
    fn grpc_messages_are_decoded() {
        assert_eq!(percent_decode(b"member%20VNPT%20is%20suspended"), "member VNPT is suspended");
        assert_eq!(percent_decode("S%E1%BB%9F".as_bytes()), "Sở");
        assert_eq!(percent_decode(b"100%"), "100%");
    }

    #[test]
    fn client_request_ids_are_checked() {
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID_HEADER, HeaderValue::from_static("batch-2024-03.17"));
        assert_eq!(request_id_from(&h).as_deref(), Some("batch-2024-03.17"));
        h.insert(REQUEST_ID_HEADER, HeaderValue::from_static("a b"));
        assert_eq!(request_id_from(&h), None);
        assert_eq!(new_request_id().len(), 32);
    }

    #[test]
    fn long_details_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("Sở Thông tin".to_owned(), 2), "Sở");
        assert_eq!(truncate("abc".to_owned(), 5), "abc");
    }
}
