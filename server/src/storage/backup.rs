//! Copies of an embedded (SQLite) hub's database: a consistent copy taken while the hub serves,
//! and its restoration into a new place. A PostgreSQL hub is copied with PostgreSQL's own
//! `pg_dump` and `pg_restore` (the README's Operations section).
//!
//! Both write the copy under a temporary name beside it, flush it to disk and only then give it
//! its name: a copy cut short (a kill, a full disk) never looks like a finished one. The staging
//! and claim files the hub keeps beside its database are scratch of a running process (see
//! `sqlite.rs`) and are not part of a copy.

use std::{
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use sqlx::{
    ConnectOptions, Connection,
    sqlite::{SqliteConnectOptions, SqliteConnection},
};

/// Why a copy was not made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Refused(String),
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the database {path}")]
    Database {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
}

/// The path of a `sqlite://PATH` URL; `None` for another backend.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    url.strip_prefix("sqlite://").map(|p| PathBuf::from(p.split('?').next().unwrap_or(p)))
}

fn partial(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

async fn connect(path: &Path) -> Result<SqliteConnection, BackupError> {
    let database = |source| BackupError::Database { path: path.to_owned(), source };
    SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .map_err(database)?
        .create_if_missing(false)
        // A serving hub writes now and then; the copy waits its turn for a moment at most.
        .busy_timeout(Duration::from_secs(30))
        .disable_statement_logging()
        .connect()
        .await
        .map_err(database)
}

/// Checks that `path` is a whole SQLite database of a hub: it passes SQLite's quick check and
/// holds an audit trail.
async fn check(path: &Path) -> Result<(), BackupError> {
    let database = |source| BackupError::Database { path: path.to_owned(), source };
    let mut conn = connect(path).await?;
    let verdict: String = sqlx::query_scalar("PRAGMA quick_check").fetch_one(&mut conn).await.map_err(database)?;
    if verdict != "ok" {
        return Err(BackupError::Refused(format!("{} is damaged: {verdict}", path.display())));
    }
    let tables: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'audit_log'")
            .fetch_one(&mut conn)
            .await
            .map_err(database)?;
    conn.close().await.map_err(database)?;
    if tables == 0 {
        return Err(BackupError::Refused(format!(
            "{} is not a telesub database (it has no audit trail)",
            path.display()
        )));
    }
    Ok(())
}

/// Flushes `path` and its folder to disk, then renames `path` to `to`.
fn settle(path: &Path, to: &Path) -> Result<(), BackupError> {
    fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BackupError + 'a {
        move |source| BackupError::Io { what, path: path.to_owned(), source }
    }
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(io("cannot flush", path))?;
    std::fs::rename(path, to).map_err(io("cannot name", to))?;
    if let Some(folder) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(folder).and_then(|f| f.sync_all()).map_err(io("cannot flush", folder))?;
    }
    Ok(())
}

fn refuse_existing(path: &Path, why: &str) -> Result<(), BackupError> {
    for existing in [path.to_owned(), PathBuf::from(format!("{}-wal", path.display()))] {
        if existing.exists() {
            return Err(BackupError::Refused(format!("{} exists: {why}", existing.display())));
        }
    }
    Ok(())
}

/// A consistent copy of the hub's SQLite database at `database`, taken while it may be serving
/// (`VACUUM INTO`: one read transaction, so the copy is the database at one moment, its audit
/// trail whole), checked, and named `out`. Returns the copy's size in bytes.
pub async fn sqlite_backup(database: &Path, out: &Path) -> Result<u64, BackupError> {
    if !database.is_file() {
        return Err(BackupError::Refused(format!("there is no database at {}", database.display())));
    }
    refuse_existing(out, "a backup is never written over a file: choose a new name")?;
    let temporary = partial(out);
    match std::fs::remove_file(&temporary) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(BackupError::Io { what: "cannot remove", path: temporary, source: e });
        }
        _ => {}
    }
    let mut conn = connect(database).await?;
    let into = temporary.to_str().ok_or_else(|| BackupError::Refused(format!("{} is not UTF-8", out.display())))?;
    sqlx::query("VACUUM INTO $1")
        .bind(into)
        .execute(&mut conn)
        .await
        .map_err(|source| BackupError::Database { path: database.to_owned(), source })?;
    let _ = conn.close().await;
    check(&temporary).await?;
    settle(&temporary, out)?;
    std::fs::metadata(out).map(|m| m.len()).map_err(|source| BackupError::Io {
        what: "cannot read",
        path: out.to_owned(),
        source,
    })
}

/// Puts the backup `from` in place as the database `database`, which must not exist yet (a
/// restore never overwrites a database). Returns the database's size in bytes.
pub async fn sqlite_restore(from: &Path, database: &Path) -> Result<u64, BackupError> {
    if !from.is_file() {
        return Err(BackupError::Refused(format!("there is no backup at {}", from.display())));
    }
    refuse_existing(
        database,
        "a restore never writes over a database: restore into a new path, or move it away first",
    )?;
    check(from).await?;
    let temporary = partial(database);
    let _ = std::fs::remove_file(&temporary);
    std::fs::copy(from, &temporary).map_err(|source| BackupError::Io {
        what: "cannot write",
        path: temporary.clone(),
        source,
    })?;
    settle(&temporary, database)?;
    std::fs::metadata(database).map(|m| m.len()).map_err(|source| BackupError::Io {
        what: "cannot read",
        path: database.to_owned(),
        source,
    })
}

/// Where a copy's audit trail ends: its last record and the last signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailEnd {
    pub records: i64,
    pub last_hash: String,
    /// The size of the tree the last checkpoint signs (0 when none is stored).
    pub checkpoint: i64,
}

/// Reads where the audit trail of the SQLite database at `path` ends, without changing it.
pub async fn sqlite_trail_end(path: &Path) -> Result<TrailEnd, BackupError> {
    let database = |source| BackupError::Database { path: path.to_owned(), source };
    let mut conn = connect(path).await?;
    let (records, last_hash): (Option<i64>, Option<String>) =
        sqlx::query_as("SELECT seq, hash FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)")
            .fetch_optional(&mut conn)
            .await
            .map_err(database)?
            .unwrap_or((None, None));
    let checkpoint: Option<i64> = sqlx::query_scalar("SELECT MAX(tree_size) FROM audit_checkpoints")
        .fetch_one(&mut conn)
        .await
        .map_err(database)?;
    let _ = conn.close().await;
    Ok(TrailEnd {
        records: records.unwrap_or(0),
        last_hash: last_hash.unwrap_or_default(),
        checkpoint: checkpoint.unwrap_or(0),
    })
}
