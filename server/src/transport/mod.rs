//! gRPC transport: the hub layer (identity, authorization, audit, limits), the service
//! implementations, which only convert between protobuf and domain types, and the mapping
//! of domain errors to statuses.
//!
//! The layer's rule: transport uses the domain and the protobuf types, never storage (the
//! services reach kept data only through the domain and its ports). `scripts/layering.sh`
//! checks it.

mod admission;
pub mod authz;
mod convert;
mod devices;
mod eligibility;
mod enrollments;
mod feed;
mod households;
mod layer;
mod members;
mod reconciliation;
pub mod status;
mod subjects;
mod supervision;

use std::sync::{Arc, Mutex};

use tonic::Status;

use crate::{
    audit::{Subject, SubjectKind},
    domain::ports::policy::StoredDecision,
    domain::{DomainError, member::Caller},
};

pub use admission::AdmissionLimits;
pub use devices::DevicesApi;
pub use eligibility::{EligibilityApi, MAX_CHECKS_PER_MESSAGE, PolicyApi};
pub use enrollments::EnrollmentsApi;
pub use feed::FeedApi;
pub use households::{HouseholdsApi, UnitsApi, record_input};
pub use layer::{HubLayer, HubState, ORG_URI_PREFIX, REQUEST_ID_HEADER, code_name, org_from_certificate};
pub use members::MembersApi;
pub use reconciliation::ReconciliationApi;
pub use supervision::SupervisionApi;

/// What the hub layer hands every handler: the request id, and the caller unless the method
/// needs only a certificate.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub request_id: String,
    pub caller: Option<Arc<Caller>>,
    /// What the handler gave and looked up, stored by the layer with the call's audit record.
    attached: Arc<Mutex<Attached>>,
}

/// What a handler stores with its call's audit record, in the same transaction.
#[derive(Debug, Default)]
pub(crate) struct Attached {
    pub(crate) decisions: Vec<StoredDecision>,
    pub(crate) subjects: Vec<Subject>,
    /// The audit record's detail when it is not the message the caller saw.
    pub(crate) detail: Option<String>,
    /// The runs of decisions a batch call stored, as its record covers them.
    pub(crate) runs: Vec<crate::audit::RunSummary>,
}

impl CallContext {
    /// The context the hub layer put on the request.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<Self, Status> {
        request
            .extensions()
            .get::<CallContext>()
            .cloned()
            .ok_or_else(|| Status::internal("the call did not pass through the hub layer"))
    }

    /// The authenticated member; methods that need one always have one.
    pub fn caller(&self) -> Result<&Caller, Status> {
        self.caller.as_deref().ok_or_else(|| status::internal(&self.request_id))
    }

    /// Has decisions stored with the call's audit record, in the same transaction, before the
    /// caller sees the call's final status.
    pub fn store_with_audit(&self, rows: impl IntoIterator<Item = StoredDecision>) {
        self.attached.lock().expect("call attachments").decisions.extend(rows);
    }

    /// Notes runs of decisions a batch call stored, for its record to cover.
    pub(crate) fn stored_runs(&self, runs: impl IntoIterator<Item = crate::audit::RunSummary>) {
        self.attached.lock().expect("call attachments").runs.extend(runs);
    }

    /// Notes citizen IDs or household codes the call looked up, for the audit reader.
    pub fn looked_up(&self, kind: SubjectKind, values: impl IntoIterator<Item = impl Into<String>>) {
        let mut attached = self.attached.lock().expect("call attachments");
        for value in values {
            let value: String = value.into();
            let value = value.trim();
            // What cannot be a citizen ID or a household code is not worth an entry.
            if value.is_empty() || value.len() > 64 {
                continue;
            }
            let subject = Subject { kind, value: value.to_owned() };
            if !attached.subjects.contains(&subject) {
                attached.subjects.push(subject);
            }
        }
    }

    /// Maps a domain error to the caller's status, with this call's request id. What a scoped
    /// reader is not told (why something is out of its sight) goes to the audit trail.
    pub fn fail(&self, err: DomainError) -> Status {
        if let DomainError::OutOfScope { reason, .. } = &err {
            self.attached.lock().expect("call attachments").detail = Some(reason.clone());
        }
        status::to_status(err, &self.request_id)
    }
}

/// Bytes per message of a file held whole (a published list, the statistics).
const FILE_CHUNK: usize = 256 * 1024;

/// A file already in memory as a stream of chunks: the first names the file and its media type;
/// an empty file still sends one chunk, which names it.
pub(crate) fn file_stream(
    data: Vec<u8>,
    file_name: String,
    content_type: &str,
) -> tokio_stream::wrappers::ReceiverStream<Result<telesub_proto::v1::FileChunk, Status>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let content_type = content_type.to_owned();
    tokio::spawn(async move {
        let mut named = Some((file_name, content_type));
        let mut pieces: Vec<&[u8]> = data.chunks(FILE_CHUNK).collect();
        if pieces.is_empty() {
            pieces.push(&[]);
        }
        for piece in pieces {
            let (file_name, content_type) = named.take().unwrap_or_default();
            let chunk = telesub_proto::v1::FileChunk { file_name, content_type, data: piece.to_vec() };
            if tx.send(Ok(chunk)).await.is_err() {
                return; // the caller went away
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
