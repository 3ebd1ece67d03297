//! The hub's rules, apart from transport and storage. Nothing here knows about gRPC; inputs
//! arrive as validated types and failures leave as [`DomainError`].

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
pub mod policy;
pub mod ports;
pub mod reconciliation;
pub mod registry;
pub mod statistics;
pub mod supervision;
pub mod support;
pub mod unit_registry;
pub mod units;

pub use error::{DomainError, FieldViolation, Violations};
