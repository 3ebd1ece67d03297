//! Client SDK for the telesub hub.
//!
//! ```no_run
//! # async fn example() -> Result<(), telesub_client::Error> {
//! use telesub_client::Client;
//!
//! let client = Client::builder("https://hub.example.vn:50051")
//!     .identity_files("vnpt.crt", "vnpt.key")?
//!     .ca_file("province-ca.crt")?
//!     .connect()
//!     .await?;
//! let me = client.who_am_i().await?;
//! println!("connected as {}", me.member.map(|m| m.code).unwrap_or_default());
//! # Ok(())
//! # }
//! ```
//!
//! Every call returns [`Error`] on failure, with one variant per gRPC status a caller can act
//! on, the field violations of a rejected request, and the hub's request id to quote when
//! reporting a problem. Read-only calls are retried with backoff when the hub is unavailable;
//! calls that change data are never retried by the SDK.

mod client;
pub mod display;
mod error;
pub mod files;
mod probe;

/// Checking the hub's audit trail without the hub's help (proofs, checkpoints, receipts).
pub use telesub_proto::audit;
/// Household lists as CSV (`docs/CSV.md`).
pub use telesub_proto::csv;
/// An operator's monthly list as CSV (`docs/CSV.md`).
pub use telesub_proto::monthly_csv;

pub use crate::csv::{CsvError, CsvReader, CsvWriter};
pub use crate::monthly_csv::{MonthlyLineReader, MonthlyLineWriter};
pub use client::{CHECKS_PER_CHUNK, Client, ClientBuilder, LINES_PER_CHUNK, RECORDS_PER_CHUNK, RetryPolicy};
pub use error::{Error, FieldViolation, Rejection};
/// The protobuf messages of the hub's API (`telesub.v1`).
pub use telesub_proto::v1 as proto;
/// gRPC status codes, as found in [`Error::code`].
pub use tonic::Code;
