//! The hub's rules, apart from transport and storage. Nothing here knows about gRPC; inputs
//! arrive as validated types and failures leave as [`DomainError`].
//!
//! The layer's rule: the domain uses nothing of `crate::storage`, `crate::transport`,
//! `crate::export` or tonic. What it needs kept it asks of its ports ([`ports`]: one trait
//! per concept, in domain types, failing with [`ports::PortError`]); storage implements them.
//! `scripts/layering.sh` checks the rule and prints each port's method count.

pub mod batch_rules;
pub mod clock;
pub mod context;
pub mod decision;
pub mod devices;
pub mod eligibility;
pub mod enrollments;
pub mod error;
pub mod feed;
pub mod household;
pub mod identity;
pub mod inspections;
pub mod member;
pub mod members;
pub mod paging;
pub mod person;
pub mod policy;
pub mod ports;
pub mod reconciliation;
pub mod registry;
pub mod retention;
pub mod statistics;
pub mod supervision;
pub mod support;
pub mod unit_registry;
pub mod units;
pub mod written;

pub use error::{DomainError, FieldViolation, Violations};
