//! What a read runs on: the pool itself, or — behind a transaction-pooling PgBouncer
//! (`pgbouncer=true` in the database URL) — a short transaction that pins one server
//! connection for the whole read.
//!
//! Why: the driver (sqlx) runs every statement in two protocol round trips (parse and
//! describe; then bind and execute), each ending in a Sync. PgBouncer in transaction mode
//! hands the server connection back to its pool at every Sync outside a transaction, so the
//! second half may reach another server, where the statement does not exist; and the named
//! statements it leaves behind collide with another client's names later (`prepared
//! statement "sqlx_s_1" already exists`). Debian's PgBouncer 1.18 does not track
//! protocol-level prepared statements. So in that mode:
//!
//! - the statement cache is off (no statement is assumed to survive a read);
//! - each read is `BEGIN`; `DEALLOCATE ALL` (whatever an earlier client left on this server
//!   connection, whichever way its transaction ended) and `SET LOCAL statement_timeout`,
//!   in one simple query; the read's statements; `COMMIT` (or `ROLLBACK`). Three round trips
//!   more per read: the documented price of sharing server connections.

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, Statement, TransactionTrait,
};

/// How reads meet a transaction-pooling PgBouncer.
#[derive(Clone, Debug)]
pub struct Pooler {
    /// The statements that open each pinned read.
    prelude: String,
}

impl Pooler {
    /// Pinned reads, each bounded by `statement_timeout_ms` (0: none), which PgBouncer does
    /// not pass on as a connection setting.
    pub fn new(statement_timeout_ms: u64) -> Pooler {
        let mut prelude = "DEALLOCATE ALL".to_owned();
        if statement_timeout_ms > 0 {
            prelude.push_str(&format!(
                "; SET LOCAL statement_timeout = {statement_timeout_ms}"
            ));
        }
        Pooler { prelude }
    }

    /// Opens a pinned read on `db`.
    pub(crate) async fn begin(
        &self,
        db: &DatabaseConnection,
    ) -> Result<DatabaseTransaction, DbErr> {
        let txn = db.begin().await?;
        txn.execute_unprepared(&self.prelude).await?;
        Ok(txn)
    }

    /// Opens a pinned, read-only, repeatable-read transaction on `db` (an export's
    /// snapshot): the isolation is set in the prelude's simple query, since the driver
    /// would prepare a statement of its own for it before the prelude clears the names.
    pub(crate) async fn snapshot(
        &self,
        db: &DatabaseConnection,
    ) -> Result<DatabaseTransaction, DbErr> {
        let txn = db.begin().await?;
        let sql = format!(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; {}",
            self.prelude
        );
        txn.execute_unprepared(&sql).await?;
        Ok(txn)
    }
}

/// The connection a read's statements run on.
pub enum Session<'a> {
    /// Straight on the pool.
    Pool(&'a DatabaseConnection),
    /// In a transaction pinning one server connection.
    Pinned(DatabaseTransaction),
}

impl<'a> Session<'a> {
    /// A session on `db`: pinned when `pooler` says so.
    pub(crate) async fn open(
        db: &'a DatabaseConnection,
        pooler: Option<&Pooler>,
    ) -> Result<Session<'a>, DbErr> {
        Ok(match pooler {
            None => Session::Pool(db),
            Some(p) => Session::Pinned(p.begin(db).await?),
        })
    }

    /// Ends the session: a pinned one commits when the read succeeded, else rolls back.
    pub(crate) async fn close(self, succeeded: bool) -> Result<(), DbErr> {
        match self {
            Session::Pool(_) => Ok(()),
            Session::Pinned(txn) if succeeded => txn.commit().await,
            Session::Pinned(txn) => txn.rollback().await,
        }
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Session<'_> {
    fn get_database_backend(&self) -> DbBackend {
        match self {
            Session::Pool(db) => db.get_database_backend(),
            Session::Pinned(txn) => txn.get_database_backend(),
        }
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match self {
            Session::Pool(db) => db.execute_raw(stmt).await,
            Session::Pinned(txn) => txn.execute_raw(stmt).await,
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match self {
            Session::Pool(db) => db.execute_unprepared(sql).await,
            Session::Pinned(txn) => txn.execute_unprepared(sql).await,
        }
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match self {
            Session::Pool(db) => db.query_one_raw(stmt).await,
            Session::Pinned(txn) => txn.query_one_raw(stmt).await,
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match self {
            Session::Pool(db) => db.query_all_raw(stmt).await,
            Session::Pinned(txn) => txn.query_all_raw(stmt).await,
        }
    }
}
