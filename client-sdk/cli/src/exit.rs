//! Exit statuses: what a script can tell from `$?` without reading the message.
//!
//! One status per class of failure a script acts on differently: fix the input (3), look
//! elsewhere (4), ask for a role or a certificate (5), try again later (6), look at the state
//! first (7). docs/CLI.md has the same table.

use telesub_client::Error;

/// How `telesub-cli` ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// A failure of no class below: the hub's internal error, a file that cannot be read or
    /// written, an unusable certificate file.
    Failed = 1,
    // 2, a bad command line, is clap's own.
    /// The hub refused the request as invalid, or a file to send is malformed.
    Invalid = 3,
    NotFound = 4,
    /// The caller's role or membership, or its certificate, was refused.
    Denied = 5,
    /// The hub could not be reached or could not answer now; trying again later may work.
    Unavailable = 6,
    /// The hub's state does not allow it: it exists already, or is not in the state for it.
    Conflict = 7,
    /// A check ran and found a problem (`audit verify`, `audit check`, `audit receipt verify`).
    CheckFailed = 8,
}

impl Exit {
    /// The class of a failed call.
    pub(crate) fn of(err: &Error) -> Exit {
        match err {
            Error::InvalidArgument(_) => Exit::Invalid,
            Error::NotFound(_) => Exit::NotFound,
            Error::AlreadyExists(_) | Error::FailedPrecondition(_) | Error::Aborted(_) => Exit::Conflict,
            Error::PermissionDenied(_) | Error::Unauthenticated(_) | Error::CertificateRefused { .. } => Exit::Denied,
            Error::Unavailable(_) | Error::DeadlineExceeded(_) | Error::Connect { .. } => Exit::Unavailable,
            // At the member's share of the hub (a retry delay given), not a message too large.
            Error::ResourceExhausted(_) if err.is_retryable() => Exit::Unavailable,
            _ => Exit::Failed,
        }
    }

    pub(crate) fn code(self) -> u8 {
        self as u8
    }
}

/// The table under `telesub-cli --help`.
pub(crate) const TABLE: &str = "\
Exit status:
  0  done
  1  failed: the hub's internal error, a file that cannot be read or written, an unusable
     certificate file, anything not below
  2  bad command line
  3  invalid input: the hub refused the request as invalid (INVALID_ARGUMENT), or a file to
     send is malformed and nothing was sent
  4  not found (NOT_FOUND)
  5  permission denied: this organisation's role may not do it or it is suspended
     (PERMISSION_DENIED, UNAUTHENTICATED), or the hub refused the certificate
  6  the hub is unavailable or unreachable, or asked to be called later: try again later
     (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED with a retry delay, no connection)
  7  conflict: it exists already, or its state does not allow it now (ALREADY_EXISTS,
     FAILED_PRECONDITION, ABORTED)
  8  a check found a problem (audit verify, audit check, audit receipt verify)
Some commands say more under their own --help. docs/CLI.md has the details.";

/// The statuses every command shares, in short.
const SHARED: &str = "1 failed, 2 bad command line, 3 invalid input, 4 not found, 5 permission denied, 6 hub \
                      unavailable, 7 conflict (telesub-cli --help says more).";

/// The line under every command's help.
pub(crate) fn summary() -> String {
    format!("Exit status: 0 done, {SHARED}")
}

/// The lines under the help of a command with statuses of its own (`own`, from [`OWN`]).
pub(crate) fn own_summary(own: &str) -> String {
    format!("Exit status: {own}\nOtherwise: {SHARED}")
}

/// The commands whose statuses mean more than [`TABLE`] says, and what.
pub(crate) const OWN: &[(&str, &str)] = &[
    ("audit verify", "0 the chain is intact; 8 it is broken (the record and the problem on standard error)."),
    (
        "audit check",
        "0 the trail has only grown since the kept checkpoint; 8 it has not, or the hub could not \
         prove it, or a checkpoint's signature is wrong.",
    ),
    (
        "audit receipt verify",
        "0 verified; 8 NOT VERIFIED (the signature, the record or the proof is wrong); 7 the receipt \
         holds no inclusion proof yet (run `audit receipt prove`).",
    ),
    (
        "households push",
        "0 applied (or pushed before with the same content); 3 a line of the file is malformed (the push stops there and the hub applies nothing), or the \
         hub refused the batch (each problem named with its line); 7 the batch id was used for other content.",
    ),
    (
        "reports submit",
        "0 received and reconciled (or submitted before with the same content); 3 the file has format errors (all listed; nothing was sent) or the hub refused the list (each \
         problem named with its line); 7 the period has a list already (--replaces replaces it) or the list is \
         confirmed.",
    ),
    (
        "enrollments import",
        "0 every row of this operator enrolled or enrolled before; 1 some rows were refused (each named \
         on standard error; the others are enrolled).",
    ),
];

#[cfg(test)]
mod tests {
    use telesub_client::Rejection;

    use super::*;

    fn rejection() -> Rejection {
        Rejection { message: "m".into(), request_id: None, violations: Vec::new(), retry_delay: None }
    }

    #[test]
    fn each_class_has_its_status() {
        let r = rejection;
        assert_eq!(Exit::of(&Error::InvalidArgument(r())).code(), 3);
        assert_eq!(Exit::of(&Error::NotFound(r())).code(), 4);
        assert_eq!(Exit::of(&Error::PermissionDenied(r())).code(), 5);
        assert_eq!(Exit::of(&Error::Unauthenticated(r())).code(), 5);
        assert_eq!(Exit::of(&Error::CertificateRefused { alert: "UnknownCA".into() }).code(), 5);
        assert_eq!(Exit::of(&Error::Unavailable(r())).code(), 6);
        assert_eq!(Exit::of(&Error::Connect { endpoint: "e".into(), reason: "r".into() }).code(), 6);
        assert_eq!(Exit::of(&Error::DeadlineExceeded(r())).code(), 6);
        assert_eq!(Exit::of(&Error::ResourceExhausted(r())).code(), 1, "too large: retrying does not help");
        let share = Rejection { retry_delay: Some(std::time::Duration::from_millis(100)), ..r() };
        assert_eq!(Exit::of(&Error::ResourceExhausted(share)).code(), 6);
        assert_eq!(Exit::of(&Error::AlreadyExists(r())).code(), 7);
        assert_eq!(Exit::of(&Error::FailedPrecondition(r())).code(), 7);
        assert_eq!(Exit::of(&Error::Aborted(r())).code(), 7);
        assert_eq!(Exit::of(&Error::Internal(r())).code(), 1);
        assert_eq!(Exit::of(&Error::Config("no such file".into())).code(), 1);
    }

    #[test]
    fn the_table_names_every_status() {
        for code in 0..=8 {
            assert!(TABLE.contains(&format!("\n  {code}  ")), "{code}");
        }
    }
}
