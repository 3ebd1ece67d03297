//! What the statements written once for both backends need of a store: its pools, a
//! connection for large work, and how a write transaction begins. A port whose SQL reads the
//! same in both dialects is implemented once, generically over [`SqlStore`]; the bounds of
//! such an implementation name the column and parameter types its statements use, and the
//! compiler checks them for each backend where the store is handed out as the port.

use std::{future::Future, ops::DerefMut};

use sqlx::{Database, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Transaction, Type};

use crate::domain::ports::{Conflict, PortError};

/// A store whose backend runs the statements shared by both dialects.
pub(crate) trait SqlStore: Send + Sync + std::fmt::Debug + 'static {
    /// The backend's sqlx database.
    type Db: Database;

    /// A statement listing (table, kind) of the enabled row triggers that refuse changes,
    /// one row for each kind a trigger refuses (`UPDATE`, `DELETE`), as the backend's
    /// catalogue says.
    const AUDIT_GUARDS: &'static str;

    /// Whether staging tables may be emptied whole when no batch is being received: true where
    /// one process writes at a time (no other hub can begin a batch between the count and the
    /// emptying); elsewhere rows are always deleted by batch id.
    const EMPTY_WHEN_ALONE: bool;

    /// How a write transaction begins.
    const BEGIN: &'static str;

    /// Serialises member writes within a transaction (the rule of
    /// [`MemberStore::update_member`](crate::domain::ports::MemberStore::update_member) reads
    /// other members).
    const LOCK_MEMBERS: &'static str;

    /// A statement that serialises writes to `table` within a transaction, where the backend
    /// has more than one writer.
    fn lock_table(table: &str) -> Option<String>;

    /// Locks a household code or phone number for the rest of the transaction, so that writers
    /// of the same one wait for each other where the backend has more than one writer.
    fn lock_key(
        conn: &mut <Self::Db as Database>::Connection,
        key: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Stores eligibility decisions, many rows at a time, the backend's way.
    fn insert_decisions(
        conn: &mut <Self::Db as Database>::Connection,
        rows: &[crate::domain::ports::policy::StoredDecision],
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Reads the audit chain's head (`seq, hash, tree`) for a transaction that appends to it,
    /// holding it until the commit where the backend has more than one writer.
    const AUDIT_HEAD_FOR_APPEND: &'static str;

    /// Stores audit records, many rows at a time, the backend's way.
    fn insert_audit(
        conn: &mut <Self::Db as Database>::Connection,
        records: &[crate::audit::AuditRecord],
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Stores perfect subtrees of the audit tree (`level, index, hash`); one already stored is
    /// left as it is.
    fn insert_tree_nodes(
        conn: &mut <Self::Db as Database>::Connection,
        nodes: &[(u32, u64, String)],
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Notes what records look up: `(i, subject)` is about the record numbered `after + 1 + i`.
    fn insert_subjects(
        conn: &mut <Self::Db as Database>::Connection,
        after: i64,
        subjects: &[(usize, crate::audit::Subject)],
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// Stores lines of a monthly list being received, many rows at a time, the backend's way.
    fn insert_lines(
        conn: &mut <Self::Db as Database>::Connection,
        id: i64,
        lines: &[crate::domain::ports::monthly::ListLine],
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// A statement a transaction that changes households runs first, so that it and a batch
    /// being applied wait for each other, where the backend has more than one writer.
    const LOCK_REGISTER: Option<&'static str>;

    /// A statement noting a change to household `$1` in the register's change log, where the
    /// backend keeps one (see [`crate::domain::ports::RegisterChanges`]).
    const NOTE_CHANGE: Option<&'static str>;

    /// Tells those who hold the register that it changed (after a commit).
    fn register_written(&self) {}

    /// What surrounds a parameter holding a JSON array of text to make it a list `IN` reads.
    const JSON_LIST: (&'static str, &'static str);

    /// Many values bound as one parameter: an array on PostgreSQL, a JSON array on SQLite,
    /// as the backend's statements that take such a list read it.
    type Texts<'a>: Param<Self::Db> + Send + 'a;
    /// Many ids bound as one parameter, like [`SqlStore::Texts`].
    type Ids<'a>: Param<Self::Db> + Send + 'a;
    fn texts(values: &[String]) -> Self::Texts<'_>;
    fn ids(values: &[i64]) -> Self::Ids<'_>;

    /// For each value of a list (`$1`, [`SqlStore::Texts`]), the states of every household it
    /// ever matched, by citizen ID, household code or certificate number; each backend's
    /// statements are written for its planner.
    const MATCHING: super::eligibility::MatchingSql;

    /// Enrolments by a list of ids (`$1`, [`SqlStore::Ids`]).
    const ENROLMENTS_BY_IDS: &'static str;

    /// An operator's (`$1`) enrolments by a list of phone numbers (`$2`, [`SqlStore::Texts`]).
    const ENROLMENTS_BY_PHONES: &'static str;

    /// How many rows a statement changed.
    fn rows_affected(done: &<Self::Db as Database>::QueryResult) -> u64;

    /// Short reads.
    fn reader(&self) -> &Pool<Self::Db>;

    /// A connection for a large read or a long piece of work, taken in turn with other such
    /// work so that short calls always find a connection.
    fn bulk(
        &self,
    ) -> impl Future<Output = Result<impl DerefMut<Target = <Self::Db as Database>::Connection> + Send, PortError>> + Send;

    /// A connection for a large read that scans much of a table (on SQLite, through a
    /// mapping of the file), taken in turn like [`SqlStore::bulk`].
    fn scan(
        &self,
    ) -> impl Future<Output = Result<impl DerefMut<Target = <Self::Db as Database>::Connection> + Send, PortError>> + Send;

    /// A connection for a large write (a transaction begun with [`SqlStore::BEGIN`]), taken
    /// in turn like [`SqlStore::bulk`] where the backend has more than one writer.
    fn large_writer(
        &self,
    ) -> impl Future<Output = Result<impl DerefMut<Target = <Self::Db as Database>::Connection> + Send, PortError>> + Send;

    /// Writes outside a transaction.
    fn writer(&self) -> &Pool<Self::Db>;

    /// A write transaction: SQLite's one writer begins it `IMMEDIATE`, so that two writers
    /// queue instead of failing on the upgrade of a read lock.
    fn begin_write(&self) -> impl Future<Output = Result<Transaction<'static, Self::Db>, PortError>> + Send;
}

/// A value a statement takes as a parameter, on backend `DB`.
pub(crate) trait Param<DB: Database>: for<'q> Encode<'q, DB> + Type<DB> {}
impl<DB: Database, T: for<'q> Encode<'q, DB> + Type<DB>> Param<DB> for T {}

/// A value read from a column, on backend `DB`.
pub(crate) trait Column<DB: Database>: for<'r> Decode<'r, DB> + Type<DB> {}
impl<DB: Database, T: for<'r> Decode<'r, DB> + Type<DB>> Column<DB> for T {}

/// A row read whole into a record, on backend `DB`.
pub(crate) trait Record<DB: Database>: for<'r> FromRow<'r, DB::Row> {}
impl<DB: Database, T: for<'r> FromRow<'r, DB::Row>> Record<DB> for T {}

/// Holds row `$1` for the rest of the transaction and checks its state: `guard` is an `UPDATE`
/// that changes nothing (`SET status = status`) with the state the write needs in its `WHERE`;
/// `Conflict(conflict)` when the row is not in that state. On PostgreSQL a writer of the same
/// row (a closing, an approval) waits for the transaction, or the transaction for it, and then
/// sees what it wrote; SQLite's one writer already takes them one at a time.
pub(crate) async fn hold_row<S>(
    conn: &mut <S::Db as Database>::Connection,
    guard: &'static str,
    id: i64,
    conflict: Conflict,
) -> Result<(), PortError>
where
    S: SqlStore,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    i64: Param<S::Db>,
{
    let held = sqlx::query(guard).bind(id).execute(&mut *conn).await?;
    if S::rows_affected(&held) != 1 {
        return Err(PortError::Conflict(conflict));
    }
    Ok(())
}

/// Serialises writes of `table` for the rest of the transaction where the backend has more
/// than one writer ([`SqlStore::lock_table`]); nothing where it has one.
pub(crate) async fn hold_table<S>(conn: &mut <S::Db as Database>::Connection, table: &str) -> Result<(), PortError>
where
    S: SqlStore,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
{
    if let Some(lock) = S::lock_table(table) {
        sqlx::query(sqlx::AssertSqlSafe(lock)).execute(&mut *conn).await?;
    }
    Ok(())
}
