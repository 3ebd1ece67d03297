//! The one mapping from domain errors to gRPC statuses. Every status carries the request id
//! (google.rpc.RequestInfo); invalid requests carry their field violations (google.rpc.BadRequest).

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::DomainError;

/// At most this many field violations go back in one status, the last of them giving the
/// total when there are more.
pub const MAX_VIOLATIONS: usize = 100;

/// Bytes of field paths and descriptions one status may carry: error details travel in a
/// trailer, and gRPC clients commonly refuse metadata over 8 KiB.
pub const MAX_DETAIL_BYTES: usize = 6 * 1024;

/// A status with the request id attached as `RequestInfo`.
pub fn status(code: Code, message: impl Into<String>, request_id: &str) -> Status {
    Status::with_error_details(code, message, ErrorDetails::with_request_info(request_id, ""))
}

pub fn to_status(err: DomainError, request_id: &str) -> Status {
    let message = err.to_string();
    match err {
        DomainError::Invalid(violations) => bad_request(message, violations, None, "request", request_id),
        DomainError::InvalidBatch { violations, total } => {
            bad_request(message, violations, Some(total), "records", request_id)
        }
        DomainError::NotFound(_) => status(Code::NotFound, message, request_id),
        DomainError::AlreadyExists(_) => status(Code::AlreadyExists, message, request_id),
        DomainError::FailedPrecondition(_) => status(Code::FailedPrecondition, message, request_id),
        DomainError::PermissionDenied(_) => status(Code::PermissionDenied, message, request_id),
        DomainError::Cancelled(_) => status(Code::Cancelled, message, request_id),
        DomainError::Aborted(_) => status(Code::Aborted, message, request_id),
        DomainError::Unavailable(_) => status(Code::Unavailable, message, request_id),
        DomainError::Internal(cause) => {
            tracing::error!(request_id, error = %crate::ErrorChain(&*cause), "internal error");
            internal(request_id)
        }
    }
}

/// What a caller learns of a fault: that it happened, and the id to quote when reporting it.
/// The answer to a call whose audit record could not be stored: its own outcome is withheld.
pub fn unrecorded(request_id: &str) -> Status {
    status(
        Code::Unavailable,
        "the hub could not keep the record of this call, so its outcome is not given; make the call again \
         (a write under the same idempotency key is not made twice)",
        request_id,
    )
}

pub fn internal(request_id: &str) -> Status {
    status(
        Code::Internal,
        format!("internal error in the hub; quote request id {request_id} when reporting it"),
        request_id,
    )
}

/// `INVALID_ARGUMENT` with as many field violations as fit, and a last one giving the total
/// (under `summary_field`) when not all could be listed.
fn bad_request(
    message: String,
    violations: Vec<crate::domain::FieldViolation>,
    total: Option<usize>,
    summary_field: &str,
    request_id: &str,
) -> Status {
    let total = total.unwrap_or(violations.len()).max(violations.len());
    let mut listed = Vec::new();
    let mut bytes = 0;
    for v in violations {
        let size = v.field.len() + v.description.len();
        if listed.len() + 1 >= MAX_VIOLATIONS || bytes + size > MAX_DETAIL_BYTES {
            break;
        }
        bytes += size;
        listed.push(tonic_types::FieldViolation::new(v.field, v.description));
    }
    if listed.len() < total {
        let shown = listed.len();
        listed.push(tonic_types::FieldViolation::new(
            summary_field,
            format!("{total} problems in all; the first {shown} are listed"),
        ));
    }
    let mut details = ErrorDetails::with_bad_request(listed);
    details.set_request_info(request_id, "");
    Status::with_error_details(Code::InvalidArgument, message, details)
}
