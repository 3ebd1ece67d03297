//! telesub: the data-exchange hub of the provincial programme that subsidises telecom services
//! and devices for poor households.
//!
//! Layers, from the outside in: [`transport`] (gRPC services and the hub layer; uses the
//! domain, never storage), [`domain`] (the programme's rules and the ports it needs kept; no
//! gRPC, no storage), [`read_model`] (what sits in front of a backend's register port: grouped
//! reads; ports only), [`storage`] (the ports implemented on SQLite and on PostgreSQL).
//! `scripts/layering.sh` checks who uses whom.

pub mod audit;
pub mod config;
pub mod console;
pub mod domain;
pub mod export;
pub mod metrics;
pub mod pki;
pub mod read_model;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod tls;
pub mod transport;

use std::fmt;

/// The allocator the hub runs with: a million-question batch call allocates and frees small
/// values on every core, where it measured some 20 % faster than the system allocator (see
/// docs/BENCHMARKS.md). The `telesub` binary and the benchmarks install it with
/// `#[global_allocator] static A: telesub_server::Allocator = telesub_server::Allocator;`.
pub use mimalloc::MiMalloc as Allocator;

/// Lower-case hexadecimal.
/// 128 random bits in hex: a token no other stream or call has.
pub fn random_token() -> String {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 16];
    SystemRandom::new().fill(&mut bytes).expect("the system random source works");
    hex(&bytes)
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Shows an error with its chain of causes: `outer: cause: root cause`.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
