//! Storage: the domain's ports ([`crate::domain::ports`]) implemented twice, on SQLite (the
//! embedded default) and on PostgreSQL (production and scale-out). Both run the same
//! conformance tests.
//!
//! The layer's rule: storage implements the ports in their own types and errors; tables,
//! statements, connections and sqlx stay here, and nothing but startup (which opens a store)
//! reaches in.
//!
//! Every port is implemented once, generically over [`backend::SqlStore`], with bounds naming
//! the parameter and column types its statements use; what the backends do differently is a
//! hook of `SqlStore` in each backend's module: its pools and connections for large work, how
//! a write transaction begins and what it locks, writing many rows at once, reading many
//! values at once. Only receiving and applying a household batch ([`BatchStore`](crate::domain::ports::BatchStore)) stays written
//! per backend (PostgreSQL's row locks, planner statistics and vacuum; SQLite's staging files),
//! with the store itself ([`Store`]: opening, migrations, claims) and SQLite's change log of the
//! register. Statements shared by several concepts live in `shared.rs`.

mod audit_log;
pub mod audit_reader;
pub mod audit_trail;
pub(crate) mod backend;
pub mod backup;
pub mod devices;
pub mod eligibility;
pub mod enrollments;
pub mod inspections;
mod members;
mod postgres;
pub mod reconciliation;
pub mod registry;
pub mod retention;
mod rows;
mod shared;
mod sqlite;
pub mod statistics;

use std::{sync::Arc, time::Duration};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

pub use crate::domain::ports::{AuditFilter, Claim, Conflict, MemberWrite, PortError, Store};

/// A database URL of neither backend.
#[derive(Debug, thiserror::Error)]
#[error("the database URL {0:?} is not understood: use sqlite://PATH or postgres://…")]
pub struct BadUrl(String);

impl From<sqlx::migrate::MigrateError> for PortError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        PortError::fault(err)
    }
}

/// Waits for a pooled connection that ran out of time, since the process started.
static POOL_TIMEOUTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many waits for a pooled connection ran out of time (every pool, every store).
pub fn pool_timeouts() -> u64 {
    POOL_TIMEOUTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// How a pool is used.
fn pool_use<DB: sqlx::Database>(name: &'static str, pool: &sqlx::Pool<DB>) -> crate::domain::ports::PoolUse {
    crate::domain::ports::PoolUse {
        name,
        open: pool.size(),
        idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
        max: pool.options().get_max_connections(),
    }
}

impl From<sqlx::Error> for PortError {
    /// Faults of the database's reach or room become `Unavailable`; a stored value that does
    /// not read back as its type (a status no rule knows) is `Corrupt`; the rest are kept.
    fn from(err: sqlx::Error) -> Self {
        if matches!(err, sqlx::Error::PoolTimedOut) {
            POOL_TIMEOUTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if let sqlx::Error::ColumnDecode { index, source } = &err {
            return PortError::Corrupt(format!("column {index}: {source}"));
        }
        match unavailable(&err) {
            Some(why) => PortError::Unavailable(why),
            None => PortError::fault(err),
        }
    }
}

/// Whether a pooled connection may be handed out: not one left inside a transaction. When a
/// statement fails for want of room (SQLITE_FULL), SQLite may roll the transaction back by
/// itself; sqlx's own rollback then fails, and it goes on counting the transaction open, so
/// that every later `BEGIN` on the connection is refused ("attempted to call begin_with at
/// non-zero transaction depth"). Such a connection is closed and replaced.
pub(crate) fn clean(conn: &impl sqlx::Connection) -> bool {
    let clean = !conn.is_in_transaction();
    if !clean {
        tracing::warn!("a database connection was left inside a transaction by a failure: it is replaced");
    }
    clean
}

/// Why the database could not be used, when the fault is of its reach or room (the caller may
/// retry) rather than of the statement.
fn unavailable(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::PoolTimedOut => Some("no database connection within the database timeout".into()),
        sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => Some("the database connection is closed".into()),
        sqlx::Error::Io(e) => Some(format!("cannot reach the database: {e}")),
        sqlx::Error::Tls(e) => Some(format!("cannot reach the database: {e}")),
        sqlx::Error::Database(db) => {
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                let e = db;
                // Primary result codes: SQLITE_BUSY 5, SQLITE_IOERR 10, SQLITE_FULL 13, SQLITE_CANTOPEN 14.
                let code: i64 = e.code().and_then(|c| c.parse().ok()).unwrap_or(0);
                return match code & 0xff {
                    13 => Some("the database's disk is full".into()),
                    5 | 10 | 14 => Some(format!("the database file cannot be used now: {}", e.message())),
                    _ => None,
                };
            }
            // SQLSTATE classes 08 (connection), 53 (insufficient resources: disk full, too many
            // connections), 57P (the server shutting down or starting).
            let state = db.code().unwrap_or_default();
            (state.starts_with("08") || state.starts_with("53") || state.starts_with("57P"))
                .then(|| format!("the database server cannot serve now ({state}): {}", db.message()))
        }
        _ => None,
    }
}

impl PortError {
    /// Maps a unique-constraint violation to `AlreadyExists`; keeps every other error.
    fn from_insert(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => PortError::AlreadyExists,
            _ => PortError::from(err),
        }
    }
}

/// Connection settings shared by both backends.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    /// How long a call waits for a connection (for PostgreSQL: for a server to answer at all).
    pub acquire_timeout: Duration,
    /// How long a write waits for SQLite's one writer, and large work for its turn (SQLite's
    /// readers of large calls, PostgreSQL's turns at its pool): queueing behind other work (a
    /// large batch holds the writer for seconds) is no sign of a database out of reach.
    pub write_wait: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { max_connections: 8, acquire_timeout: Duration::from_secs(2), write_wait: Duration::from_secs(30) }
    }
}

/// The 64 bits of SHA-256 of a claim's key that name it to the database.
pub(crate) fn claim_hash(key: &str) -> [u8; 8] {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    digest.as_ref()[..8].try_into().expect("8 bytes")
}

/// Opens the store a database URL names, creating an SQLite file when it is missing, and runs
/// the migrations.
pub async fn open(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, PortError> {
    let store: Arc<dyn Store> = if let Some(path) = url.strip_prefix("sqlite://") {
        Arc::new(SqliteStore::open(path, options).await?)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Arc::new(PgStore::open(url, options).await?)
    } else {
        return Err(PortError::fault(BadUrl(redact_url(url))));
    };
    store.migrate().await?;
    Ok(store)
}

/// The URL with any password replaced, for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(redact_url("postgres://hub:s3cret@db:5432/telesub"), "postgres://hub:***@db:5432/telesub");
        assert_eq!(redact_url("sqlite://telesub.db"), "sqlite://telesub.db");
    }
}
