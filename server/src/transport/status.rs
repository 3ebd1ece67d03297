//! The one mapping from domain errors to gRPC statuses. Every status carries the request id
//! (google.rpc.RequestInfo); invalid requests carry their field violations (google.rpc.BadRequest).

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::DomainError;

/// At most this many field violations go back in one status; the message gives the total.
pub const MAX_VIOLATIONS: usize = 100;

/// A status with the request id attached as `RequestInfo`.
pub fn status(code: Code, message: impl Into<String>, request_id: &str) -> Status {
    Status::with_error_details(code, message, ErrorDetails::with_request_info(request_id, ""))
}

pub fn to_status(err: DomainError, request_id: &str) -> Status {
    let message = err.to_string();
    match err {
        DomainError::Invalid(violations) => {
            let mut details = ErrorDetails::with_bad_request(
                violations
                    .into_iter()
                    .take(MAX_VIOLATIONS)
                    .map(|v| tonic_types::FieldViolation::new(v.field, v.description))
                    .collect::<Vec<_>>(),
            );
            details.set_request_info(request_id, "");
            Status::with_error_details(Code::InvalidArgument, message, details)
        }
        DomainError::NotFound(_) => status(Code::NotFound, message, request_id),
        DomainError::AlreadyExists(_) => status(Code::AlreadyExists, message, request_id),
        DomainError::FailedPrecondition(_) => status(Code::FailedPrecondition, message, request_id),
        DomainError::PermissionDenied(_) => status(Code::PermissionDenied, message, request_id),
        DomainError::Cancelled(_) => status(Code::Cancelled, message, request_id),
        DomainError::Internal(cause) => {
            tracing::error!(request_id, error = %crate::ErrorChain(&*cause), "internal error");
            internal(request_id)
        }
    }
}

/// What a caller learns of a fault: that it happened, and the id to quote when reporting it.
pub fn internal(request_id: &str) -> Status {
    status(
        Code::Internal,
        format!("internal error in the hub; quote request id {request_id} when reporting it"),
        request_id,
    )
}
