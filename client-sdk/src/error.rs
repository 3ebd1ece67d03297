//! The SDK's error type: what went wrong, in terms a caller can match on.

use std::fmt;

use tonic::{Code, Status};
use tonic_types::StatusExt;

/// A field of a request the hub rejected, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field, e.g. `records[3].members[0].citizen_id`.
    pub field: String,
    pub description: String,
}

/// What the hub said when it refused or failed a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub message: String,
    /// The hub's id for the call: in its logs and its audit trail.
    pub request_id: Option<String>,
    /// For `InvalidArgument`: each bad field.
    pub violations: Vec<FieldViolation>,
    /// When the hub asks for the call to be made again later (`google.rpc.RetryInfo`), after
    /// how long: a member holding its whole share of the hub gets it with `ResourceExhausted`.
    pub retry_delay: Option<std::time::Duration>,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for v in self.violations.iter().take(5) {
            write!(f, "\n  {}: {}", v.field, v.description)?;
        }
        if self.violations.len() > 5 {
            write!(f, "\n  … and {} more", self.violations.len() - 5)?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " (request id {id})")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request is malformed; see the violations.
    #[error("invalid request: {0}")]
    InvalidArgument(Rejection),
    #[error("not found: {0}")]
    NotFound(Rejection),
    #[error("already exists: {0}")]
    AlreadyExists(Rejection),
    /// The request is valid but the current state forbids it.
    #[error("not possible now: {0}")]
    FailedPrecondition(Rejection),
    /// A concurrent change or an idempotency key reused with different content.
    #[error("conflict: {0}")]
    Aborted(Rejection),
    /// The caller's role may not do this, or its membership is suspended.
    #[error("permission denied: {0}")]
    PermissionDenied(Rejection),
    /// The certificate's organisation is not a member of the hub.
    #[error("not authenticated: {0}")]
    Unauthenticated(Rejection),
    /// The hub is down, restarting or at capacity, or the connection failed; retry later.
    #[error("the hub is unavailable: {0}")]
    Unavailable(Rejection),
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(Rejection),
    #[error("limit exceeded: {0}")]
    ResourceExhausted(Rejection),
    /// A fault in the hub; quote the request id when reporting it.
    #[error("internal error in the hub: {0}")]
    Internal(Rejection),
    /// Any other status.
    #[error("{code:?}: {rejection}")]
    Other { code: Code, rejection: Rejection },
    /// The connection to the hub could not be set up.
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    /// The hub refused this client's certificate during the TLS handshake, with this alert
    /// (`CertificateRevoked`, `CertificateExpired`, `UnknownCA`, `BadCertificate`, …).
    #[error(
        "the hub refused this client certificate (TLS alert {alert}): it may be revoked, expired or not yet \
         valid, or issued by a CA the hub does not trust; the hub's log says which"
    )]
    CertificateRefused { alert: String },
    /// The client was configured with something unusable (a missing file, a bad URL).
    #[error("client configuration: {0}")]
    Config(String),
}

impl Error {
    /// The gRPC status code, for errors that came from a call.
    pub fn code(&self) -> Option<Code> {
        Some(match self {
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::Aborted(_) => Code::Aborted,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::Unavailable(_) => Code::Unavailable,
            Error::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Error::ResourceExhausted(_) => Code::ResourceExhausted,
            Error::Internal(_) => Code::Internal,
            Error::Other { code, .. } => *code,
            Error::Connect { .. } | Error::CertificateRefused { .. } | Error::Config(_) => return None,
        })
    }

    /// What the hub said, for errors that came from a call.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Error::InvalidArgument(r)
            | Error::NotFound(r)
            | Error::AlreadyExists(r)
            | Error::FailedPrecondition(r)
            | Error::Aborted(r)
            | Error::PermissionDenied(r)
            | Error::Unauthenticated(r)
            | Error::Unavailable(r)
            | Error::DeadlineExceeded(r)
            | Error::ResourceExhausted(r)
            | Error::Internal(r)
            | Error::Other { rejection: r, .. } => Some(r),
            Error::Connect { .. } | Error::CertificateRefused { .. } | Error::Config(_) => None,
        }
    }

    /// The hub's request id for the call, when it gave one.
    pub fn request_id(&self) -> Option<&str> {
        self.rejection().and_then(|r| r.request_id.as_deref())
    }

    /// The fields the hub rejected (empty unless `InvalidArgument`).
    pub fn violations(&self) -> &[FieldViolation] {
        self.rejection().map_or(&[], |r| &r.violations)
    }

    /// Whether trying the same call again later may succeed: the hub or the connection was
    /// unavailable, or the hub asked for a retry (a member at its share of the hub).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Unavailable(_) | Error::Connect { .. } => true,
            Error::ResourceExhausted(r) => r.retry_delay.is_some(),
            _ => false,
        }
    }
}

/// The causes of a status from the transport (tonic's `Unknown` "transport error"), joined.
fn transport_causes(status: &Status) -> Option<Vec<String>> {
    let mut cause = std::error::Error::source(status)?;
    let mut causes = vec![cause.to_string()];
    while let Some(next) = cause.source() {
        causes.push(next.to_string());
        cause = next;
    }
    Some(causes)
}

impl From<Status> for Error {
    fn from(status: Status) -> Self {
        if matches!(status.code(), Code::Unknown | Code::Cancelled)
            && let Some(causes) = transport_causes(&status)
        {
            // rustls: "received fatal alert: CertificateRevoked".
            if let Some(alert) = causes.iter().find_map(|c| c.split_once("received fatal alert: ")).map(|(_, a)| a) {
                return Error::CertificateRefused { alert: alert.trim().to_owned() };
            }
            return Error::Unavailable(Rejection {
                message: format!("the connection to the hub failed: {}", causes.join(": ")),
                request_id: None,
                violations: Vec::new(),
                retry_delay: None,
            });
        }
        let details = status.get_error_details();
        let rejection = Rejection {
            message: status.message().to_owned(),
            request_id: details
                .request_info()
                .map(|r| r.request_id.clone())
                .or_else(|| status.metadata().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned)),
            violations: details
                .bad_request()
                .map(|b| {
                    b.field_violations
                        .iter()
                        .map(|v| FieldViolation { field: v.field.clone(), description: v.description.clone() })
                        .collect()
                })
                .unwrap_or_default(),
            retry_delay: details.retry_info().and_then(|r| r.retry_delay),
        };
        match status.code() {
            Code::InvalidArgument => Error::InvalidArgument(rejection),
            Code::NotFound => Error::NotFound(rejection),
            Code::AlreadyExists => Error::AlreadyExists(rejection),
            Code::FailedPrecondition => Error::FailedPrecondition(rejection),
            Code::Aborted => Error::Aborted(rejection),
            Code::PermissionDenied => Error::PermissionDenied(rejection),
            Code::Unauthenticated => Error::Unauthenticated(rejection),
            Code::Unavailable => Error::Unavailable(rejection),
            Code::DeadlineExceeded => Error::DeadlineExceeded(rejection),
            Code::ResourceExhausted => Error::ResourceExhausted(rejection),
            Code::Internal => Error::Internal(rejection),
            code => Error::Other { code, rejection },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::ErrorDetails;

    #[test]
    fn statuses_become_variants_with_details() {
        let mut details = ErrorDetails::with_bad_request_violation("code", "is not an organisation code");
        details.set_request_info("abc123", "");
        let status = Status::with_error_details(Code::InvalidArgument, "invalid request", details);
        let err = Error::from(status);
        assert!(matches!(err, Error::InvalidArgument(_)));
        assert_eq!(err.request_id(), Some("abc123"));
        assert_eq!(err.violations()[0].field, "code");
        assert!(!err.is_retryable());
        assert!(Error::from(Status::unavailable("down")).is_retryable());
        assert_eq!(Error::from(Status::permission_denied("no")).code(), Some(Code::PermissionDenied));
    }

    #[test]
    fn a_refusal_asking_for_a_retry_is_retryable() {
        let too_large = Error::from(Status::resource_exhausted("message too large"));
        assert!(!too_large.is_retryable());
        let mut details = ErrorDetails::with_retry_info(Some(std::time::Duration::from_millis(200)));
        details.add_quota_failure_violation("member:VNPT", "share");
        let share = Error::from(Status::with_error_details(Code::ResourceExhausted, "at its share", details));
        assert!(share.is_retryable());
        assert_eq!(share.rejection().unwrap().retry_delay, Some(std::time::Duration::from_millis(200)));
    }
}
