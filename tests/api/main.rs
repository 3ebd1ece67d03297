//! End-to-end tests: each starts a real hub on port 0 with its own certificates and database
//! (SQLite, or PostgreSQL when `TELESUB_TEST_POSTGRES_URL` is set) and drives it through the
//! client SDK, as a member organisation would.

mod audit;
mod audit_tree;
mod authz;
mod backup;
mod cli;
mod clock;
mod configuration;
mod console;
mod devices;
mod devices_cli;
mod edges;
mod eligibility;
mod enrollments;
mod faults;
mod feed;
mod histories;
mod households;
mod identity;
mod inspections;
mod lifecycle;
mod limits;
mod members;
mod metrics;
mod monthly_cli;
mod ports;
mod readme;
mod reconciliation;
mod retention;
mod statistics;
mod storage;
mod supervision;
mod tls;
mod traces;
mod units;
