use sqlx_core::database::Database;
use sqlx_core::sql_str::SqlStr;

use crate::error::Error;
use crate::executor::Executor;
use crate::io::{PortalId, StatementId};
use crate::message::{Bind, Execute, Parse};

use crate::{PgConnection, Postgres};

pub(crate) use sqlx_core::transaction::*;

/// callscope patch: the start of the `BEGIN` statements sent with the
/// transaction's first statement instead of in an exchange of their own.
const PIPELINED_BEGIN: &str = "BEGIN READ ONLY";

/// Implementation of [`TransactionManager`] for PostgreSQL.
pub struct PgTransactionManager;

impl TransactionManager for PgTransactionManager {
    type Database = Postgres;

    async fn begin(conn: &mut PgConnection, statement: Option<SqlStr>) -> Result<(), Error> {
        let depth = conn.inner.transaction_depth;

        let statement = match statement {
            // custom `BEGIN` statements are not allowed if we're already in
            // a transaction (we need to issue a `SAVEPOINT` instead)
            Some(_) if depth > 0 => return Err(Error::InvalidSavePointStatement),
            Some(statement) => statement,
            None => begin_ansi_transaction_sql(depth),
        };

        // callscope patch: a read-only transaction's `BEGIN` is queued, not
        // waited on: it goes out with the transaction's first statement, one
        // round trip fewer. Each of its `;`-separated statements is an
        // unnamed Parse, Bind and Execute with no Sync of its own, so the
        // first statement's Sync ends them all and PostgreSQL answers the
        // lot with one `ReadyForQuery` (one write back, not two). Should
        // one of them fail, PostgreSQL skips everything up to that Sync, the
        // statement behind it included. The caller's text has no `;` inside
        // a literal (the store checks the tenant it writes there).
        if depth == 0 && statement.as_str().starts_with(PIPELINED_BEGIN) {
            conn.wait_until_ready().await?;
            let mut commands = 0;
            for part in statement.as_str().split(';').map(str::trim) {
                if part.is_empty() {
                    continue;
                }
                conn.inner.stream.write_msg(Parse {
                    statement: StatementId::UNNAMED,
                    query: part,
                    param_types: &[],
                })?;
                conn.inner.stream.write_msg(Bind {
                    portal: PortalId::UNNAMED,
                    statement: StatementId::UNNAMED,
                    formats: &[],
                    num_params: 0,
                    params: &[],
                    result_formats: &[],
                })?;
                conn.inner.stream.write_msg(Execute {
                    portal: PortalId::UNNAMED,
                    limit: 0,
                })?;
                commands += 1;
            }
            conn.inner.transaction_depth += 1;
            conn.inner.pipelined_commands = commands;
            return Ok(());
        }

        let rollback = Rollback::new(conn);
        rollback.conn.queue_simple_query(statement.as_str())?;
        rollback.conn.wait_until_ready().await?;
        if !rollback.conn.in_transaction() {
            return Err(Error::BeginFailed);
        }
        rollback.conn.inner.transaction_depth += 1;
        rollback.defuse();

        Ok(())
    }

    async fn commit(conn: &mut PgConnection) -> Result<(), Error> {
        if conn.inner.transaction_depth > 0 {
            conn.execute(commit_ansi_transaction_sql(conn.inner.transaction_depth))
                .await?;

            conn.inner.transaction_depth -= 1;
        }

        Ok(())
    }

    async fn rollback(conn: &mut PgConnection) -> Result<(), Error> {
        if conn.inner.transaction_depth > 0 {
            conn.execute(rollback_ansi_transaction_sql(conn.inner.transaction_depth))
                .await?;

            conn.inner.transaction_depth -= 1;
        }

        Ok(())
    }

    fn start_rollback(conn: &mut PgConnection) {
        // (callscope patch: a pipelined `BEGIN` that no statement followed
        // gets its Sync ahead of the `ROLLBACK`, in `queue_simple_query`.)
        if conn.inner.transaction_depth > 0 {
            conn.queue_simple_query(
                rollback_ansi_transaction_sql(conn.inner.transaction_depth).as_str(),
            )
            .expect("BUG: Rollback query somehow too large for protocol");

            conn.inner.transaction_depth -= 1;
        }
    }

    fn get_transaction_depth(conn: &<Self::Database as Database>::Connection) -> usize {
        conn.inner.transaction_depth
    }
}

struct Rollback<'c> {
    conn: &'c mut PgConnection,
    defuse: bool,
}

impl Drop for Rollback<'_> {
    fn drop(&mut self) {
        if !self.defuse {
            PgTransactionManager::start_rollback(self.conn)
        }
    }
}

impl<'c> Rollback<'c> {
    fn new(conn: &'c mut PgConnection) -> Self {
        Self {
            conn,
            defuse: false,
        }
    }
    fn defuse(mut self) {
        self.defuse = true;
    }
}
