//! The telesub contract, shared by the hub and its clients: the messages and services of
//! package `telesub.v1`, generated at build time from the `.proto` files beside this crate,
//! and the formats both sides read and write outside protobuf: the audit trail's proofs,
//! checkpoints and receipts ([`audit`]), household lists as CSV ([`csv`]) and an operator's
//! monthly list as CSV ([`monthly_csv`], its columns [`MONTHLY_LIST_COLUMNS`]). The hub
//! depends on this crate, never on the client SDK.

pub mod audit;
pub mod csv;
pub mod monthly_csv;
mod rows;

/// Package `telesub.v1`.
pub mod v1 {
    #![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
    tonic::include_proto!("telesub.v1");
}

/// The encoded `FileDescriptorSet` of every telesub service, for server reflection and for
/// tests that walk every method.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("telesub_descriptor");

/// The header row of an operator's monthly list as CSV (`docs/CSV.md`): exactly these
/// columns, in this order. The SDK reads and writes the list in this form; the hub's exports
/// of a reconciled list begin with the same columns.
pub const MONTHLY_LIST_COLUMNS: [&str; 12] = [
    "phone_number",
    "subscriber_citizen_id",
    "household_code",
    "enrollment_id",
    "change",
    "service",
    "package_code",
    "tariff",
    "amount_claimed",
    "days_of_service",
    "used",
    "unclaimed_reason",
];

/// The messages of `telesub.v1` in protobuf's canonical JSON mapping (proto3 JSON), for
/// clients that print or read JSON. Only with the `json` feature; the hub does without.
#[cfg(feature = "json")]
pub mod json;
