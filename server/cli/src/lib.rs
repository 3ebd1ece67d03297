//! The `telesub` command line around the hub library ([`telesub_server`]): `serve`, `pki`,
//! `members`, `audit`, `demo`, and the generators of reference data the demo, the tests and
//! the benchmarks share. Nothing here is a rule of the programme; the hub library holds them.

pub mod cli;
pub mod demo;
pub mod generator;
pub mod monthly_generator;
