//! The one error type of the domain layer. Transport maps it to a gRPC status in one place.

use std::fmt;

use crate::domain::ports::PortError;

/// One bad field of a request: the path of the field (e.g. `records[3].members[0].citizen_id`)
/// and what is wrong with it, in words a caller's developer can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self { field: field.into(), description: description.into() }
    }
}

/// Collects the violations of one request so that a caller learns of all of them at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Keeps the value of a successful parse; records the error against `field` otherwise.
    pub fn check<T>(&mut self, field: &str, parsed: Result<T, String>) -> Option<T> {
        match parsed {
            Ok(v) => Some(v),
            Err(e) => {
                self.add(field, e);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was recorded, the collected violations otherwise.
    pub fn finish(self) -> Result<(), DomainError> {
        if self.0.is_empty() { Ok(()) } else { Err(DomainError::Invalid(self.0)) }
    }
}

/// What can go wrong in the domain. Every case but `Internal` is something the caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The request itself is malformed: one entry per bad field.
    #[error("invalid request: {}", summary(.0))]
    Invalid(Vec<FieldViolation>),
    /// A batch with many bad records: the first violations found, and how many there are.
    #[error("invalid batch: {total} problems: {}", summary(.violations))]
    InvalidBatch { violations: Vec<FieldViolation>, total: usize },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is well formed but the current state forbids it.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The caller may call the method but not act on this object.
    #[error("{0}")]
    PermissionDenied(String),
    /// The caller went away or broke off its stream; nothing was changed.
    #[error("{0}")]
    Cancelled(String),
    /// The hub cannot keep what the call needs kept now (its database is out of reach or out
    /// of room): nothing was changed, and the call may be made again later.
    #[error("{0}")]
    Unavailable(String),
    /// A message of the request is over the hub's size limit.
    #[error("{0}")]
    TooLarge(String),
    /// Another call is doing the same thing right now (a second stream of a batch being
    /// received); this one changed nothing and the other goes on.
    #[error("{0}")]
    Aborted(String),
    /// A scoped reader (a locality) asked about something outside its scope. It is told what it
    /// would be told were the thing not there at all (`shown`, a not-found), so that it cannot
    /// learn what exists elsewhere; the audit trail keeps the real `reason`.
    #[error("{shown}")]
    OutOfScope { shown: String, reason: String },
    /// Something the caller cannot fix; logged with its cause, reported with the request id.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldViolation::new(field, description)])
    }

    /// The same error with its fields named as the asker named them (`(field, as asked)`
    /// pairs): a page's boxes, say, rather than the request's fields.
    pub fn renamed(self, names: &[(&str, &str)]) -> Self {
        match self {
            Self::Invalid(mut violations) => {
                for v in &mut violations {
                    if let Some((_, asked)) = names.iter().find(|(field, _)| *field == v.field) {
                        v.field = (*asked).to_owned();
                    }
                }
                Self::Invalid(violations)
            }
            other => other,
        }
    }
}

fn summary(violations: &[FieldViolation]) -> String {
    struct Summary<'a>(&'a [FieldViolation]);
    impl fmt::Display for Summary<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            for (i, v) in self.0.iter().take(3).enumerate() {
                if i > 0 {
                    f.write_str("; ")?;
                }
                write!(f, "{}: {}", v.field, v.description)?;
            }
            if self.0.len() > 3 {
                write!(f, "; and {} more", self.0.len() - 3)?;
            }
            Ok(())
        }
    }
    Summary(violations).to_string()
}

impl From<PortError> for DomainError {
    fn from(err: PortError) -> Self {
        match err {
            PortError::Unavailable(why) => {
                tracing::warn!(reason = %why, "the database is unavailable");
                Self::Unavailable(format!(
                    "the hub cannot store or read its data right now ({why}); nothing was changed: retry later"
                ))
            }
            other => Self::Internal(Box::new(other)),
        }
    }
}
