//! gRPC transport: the hub layer (identity, authorization, audit, limits), the service
//! implementations, which only convert between protobuf and domain types, and the mapping
//! of domain errors to statuses.

pub mod authz;
mod convert;
mod households;
mod layer;
mod members;
pub mod status;

use std::sync::Arc;

use tonic::Status;

use crate::domain::{DomainError, member::Caller};

pub use households::{HouseholdsApi, UnitsApi, record_input};
pub use layer::{HubLayer, HubState, ORG_URI_PREFIX, REQUEST_ID_HEADER, code_name, org_from_certificate};
pub use members::MembersApi;

/// What the hub layer hands every handler: the request id, and the caller unless the method
/// needs only a certificate.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub request_id: String,
    pub caller: Option<Arc<Caller>>,
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

    /// Maps a domain error to the caller's status, with this call's request id.
    pub fn fail(&self, err: DomainError) -> Status {
        status::to_status(err, &self.request_id)
    }
}
