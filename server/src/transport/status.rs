//! The one mapping from domain errors to gRPC statuses. Every status carries the request id
//! (google.rpc.RequestInfo); invalid requests carry their field violations (google.rpc.BadRequest).

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::DomainError;

/// At most this many field violations go back in one status, the last of them giving the
/// total when there are more.
pub const MAX_VIOLATIONS: usize = 100;

/// Bytes the status may take in the trailers, `grpc-message` (percent-encoded) and
/// `grpc-status-details-bin` (base64) together: gRPC's C core (the Python, C++, Ruby and PHP
/// clients) refuses metadata over 8 KiB by default, and the trailers carry a little more
/// (`grpc-status`, the request id, HPACK's per-field overhead).
pub const MAX_TRAILER_BYTES: usize = 7 * 1024;

/// The bytes `grpc-message` takes on the wire: tonic percent-encodes all but printable ASCII.
fn encoded_message_len(message: &str) -> usize {
    message.bytes().map(|b| if (0x20..0x7f).contains(&b) && b != b'%' { 1 } else { 3 }).sum()
}

/// The message, cut (at a character) to take at most `budget` bytes once encoded.
fn fit_message(message: String, budget: usize) -> String {
    if encoded_message_len(&message) <= budget {
        return message;
    }
    let mut out = String::new();
    let mut used = encoded_message_len("…"); // what ends it
    for c in message.chars() {
        let mut buf = [0u8; 4];
        let len = encoded_message_len(c.encode_utf8(&mut buf));
        if used + len > budget {
            break;
        }
        used += len;
        out.push(c);
    }
    out.push('…');
    out
}

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
        DomainError::NotFound(_) | DomainError::OutOfScope { .. } => status(Code::NotFound, message, request_id),
        DomainError::AlreadyExists(_) => status(Code::AlreadyExists, message, request_id),
        DomainError::FailedPrecondition(_) => status(Code::FailedPrecondition, message, request_id),
        DomainError::PermissionDenied(_) => status(Code::PermissionDenied, message, request_id),
        DomainError::Cancelled(_) => status(Code::Cancelled, message, request_id),
        DomainError::Aborted(_) => status(Code::Aborted, message, request_id),
        DomainError::TooLarge(_) => status(Code::ResourceExhausted, message, request_id),
        DomainError::Unavailable(_) => status(Code::Unavailable, message, request_id),
        DomainError::Internal(cause) => {
            tracing::error!(request_id, error = %crate::ErrorChain(&*cause), "internal error");
            internal(request_id)
        }
    }
}

/// What a caller learns of a fault: that it happened, and the id to quote when reporting it.
/// The code gRPC gives a fault of the request that tonic reports under another: a message
/// that does not decode, or broken framing, is the caller's (`INVALID_ARGUMENT`, where tonic
/// says `INTERNAL`); a message over the size limit is `RESOURCE_EXHAUSTED` (tonic says
/// `OUT_OF_RANGE`). `None` for any other status. tonic says which by its messages only
/// (`tonic::codec` and `tonic_prost`); the tests of the hub's edges keep these in step.
pub fn request_fault(code: Code, message: &str) -> Option<Code> {
    match code {
        Code::Internal
            if message.starts_with("failed to decode Protobuf message")
                || message.starts_with("protocol error:")
                || message.starts_with("Unexpected EOF decoding stream")
                || message.starts_with("Missing request message") =>
        {
            Some(Code::InvalidArgument)
        }
        Code::OutOfRange if message.contains("message length too large") => Some(Code::ResourceExhausted),
        _ => None,
    }
}

/// What a broken item of a client stream (`what`: "the batch", "the list") means for the call.
pub fn stream_fault(status: &tonic::Status, what: &str) -> DomainError {
    match request_fault(status.code(), status.message()) {
        Some(Code::InvalidArgument) => DomainError::invalid(
            "request",
            format!("a message of {what} is not a valid protobuf message of its type: {}", status.message()),
        ),
        Some(_) => {
            DomainError::TooLarge(format!("a message of {what} is over the hub's size limit: {}", status.message()))
        }
        None => DomainError::Cancelled(format!("{what}'s stream broke: {}", status.message())),
    }
}

/// The answer to a call whose audit record could not be stored: its own outcome is withheld.
/// `RESOURCE_EXHAUSTED` for a member holding its whole share of the hub: a `QuotaFailure`
/// naming the member, and a `RetryInfo` (its places free as its own calls finish).
pub fn share_used_up(message: impl Into<String>, member: &str, request_id: &str) -> Status {
    let mut details = ErrorDetails::with_request_info(request_id, "");
    details.add_quota_failure_violation(format!("member:{member}"), "the member's share of the hub's places");
    details.set_retry_info(Some(std::time::Duration::from_millis(SHARE_RETRY_MS)));
    Status::with_error_details(Code::ResourceExhausted, message, details)
}

/// How long a member at its share is asked to wait before trying again.
const SHARE_RETRY_MS: u64 = 200;

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
    use prost::Message;
    let total = total.unwrap_or(violations.len()).max(violations.len());
    let message = fit_message(message, 1_024);
    // What the violations may take as protobuf. The trailer holds `grpc-message`
    // (percent-encoded) and `grpc-status-details-bin`: base64 (4 bytes for every 3) of a
    // `google.rpc.Status` that carries the message again, raw, beside the details. Room is
    // kept for the header names and their per-entry cost as gRPC's C core counts it (32 bytes
    // each, as HPACK), the summary violation, the `Any` wrappers and the request info.
    let reserve = 300 + request_id.len() + message.len();
    let proto_budget = (MAX_TRAILER_BYTES - 3 * 48 - encoded_message_len(&message)) * 3 / 4 - reserve;
    let mut listed = Vec::new();
    let mut bytes = 0;
    for v in violations {
        let violation = tonic_types::FieldViolation::new(v.field, v.description);
        let as_proto = tonic_types::pb::bad_request::FieldViolation {
            field: violation.field.clone(),
            description: violation.description.clone(),
            ..Default::default()
        };
        // The violation's bytes inside BadRequest: its own, plus its tag and length.
        let size = as_proto.encoded_len() + 4;
        if listed.len() + 1 >= MAX_VIOLATIONS || bytes + size > proto_budget {
            break;
        }
        bytes += size;
        listed.push(violation);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::FieldViolation;

    /// The trailer bytes a status takes: every header `tonic` writes for it.
    fn trailer_bytes(status: &Status) -> usize {
        let mut headers = http::HeaderMap::new();
        status.add_header(&mut headers).unwrap();
        // As gRPC's C core counts metadata: name, value and 32 bytes for each entry.
        headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 32).sum()
    }

    #[test]
    fn a_status_with_many_violations_fits_the_common_metadata_limit() {
        // 151 bad records with Vietnamese descriptions (each character percent-encoded in
        // the message, base64 in the details).
        let violations: Vec<FieldViolation> = (0..151)
            .map(|i| {
                FieldViolation::new(
                    format!("records[{i}] (HH-24611-{i:07}).upsert.members[1].citizen_id"),
                    format!(
                        "\"0671{i:08}\" không phải số định danh: năm sinh không khớp với ngày tháng ghi trong hồ sơ {i}"
                    ),
                )
            })
            .collect();
        let err = DomainError::InvalidBatch { violations, total: 151 };
        let status = to_status(err, "0123456789abcdef0123456789abcdef");
        let bytes = trailer_bytes(&status);
        assert!(bytes <= MAX_TRAILER_BYTES, "{bytes} bytes of trailers");
        let details = status.get_details_bad_request().expect("the violations");
        let listed = details.field_violations.len();
        assert!(listed > 20, "only {listed} violations fit");
        let last = details.field_violations.last().unwrap();
        assert_eq!(last.field, "records");
        assert!(last.description.starts_with("151 problems in all"), "{}", last.description);
    }

    #[test]
    fn a_long_message_is_cut_to_fit() {
        let message = "lỗi ".repeat(2_000);
        let cut = fit_message(message, 1_024);
        assert!(encoded_message_len(&cut) <= 1_024);
        assert!(cut.ends_with('…'));
    }
}
