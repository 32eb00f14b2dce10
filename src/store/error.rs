//! Why the store could not do what was asked, and the one translation of
//! sqlx's errors into those kinds.

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is too busy; the client may retry.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// A concurrent transaction won a race with this one: PostgreSQL broke
    /// a deadlock or a serialization conflict by rolling this one back, or
    /// a concurrent writer inserted a key first. Nothing of it was written,
    /// and running it again may succeed (the service does, a few times:
    /// `CallScope::retrying`).
    #[error("transaction lost a race with a concurrent one: {0}")]
    Conflict(#[source] sqlx::Error),
    /// A fault of ours or of the database; logged, never sent to a client.
    #[error("database error: {0}")]
    Internal(#[source] sqlx::Error),
    /// The database holds something it should not (a bad enum number, bad JSON).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A tenant name that is not `[A-Za-z0-9._-]{1,64}` reached the store
    /// (the edge validates every name first: a fault of ours).
    #[error("invalid tenant name: {0}")]
    InvalidTenant(String),
    /// The database URL names no backend we have.
    #[error("unsupported database url `{0}`: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    /// `--database-read-url` names a server that is not a streaming replica.
    #[error(
        "read url `{0}` is not a read replica (pg_is_in_recovery() is false): give a streaming replica of --database-url"
    )]
    NotAReplica(String),
    /// `--database-read-url` with a backend that has no replicas.
    #[error("a read replica needs PostgreSQL: --database-url is `{0}`")]
    ReplicaNeedsPostgres(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &err {
            E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::WorkerCrashed => {
                StoreError::Unavailable(err)
            }
            // SQLITE_BUSY / SQLITE_LOCKED: another writer held the lock past
            // the busy timeout.
            E::Database(db) if matches!(db.code().as_deref(), Some("5" | "6")) => {
                StoreError::Unavailable(err)
            }
            // PostgreSQL: connection exceptions (08…) and shutdown (57P…).
            E::Database(db)
                if db.code().is_some_and(|c| {
                    c.len() == 5 && (c.starts_with("08") || c.starts_with("57P"))
                }) =>
            {
                StoreError::Unavailable(err)
            }
            // PostgreSQL: serialization failures and deadlocks (40…): the
            // transaction was rolled back to let a concurrent one through.
            E::Database(db)
                if db
                    .code()
                    .is_some_and(|c| c.len() == 5 && c.starts_with("40")) =>
            {
                StoreError::Conflict(err)
            }
            // PostgreSQL unique violations (23505): every write resolves the
            // duplicates a client can send with ON CONFLICT, so one that
            // still escapes is a race between concurrent writers. One seen:
            // two batches re-inserting, under its old call_id, a call that a
            // concurrent DeleteCalls removed after both had looked it up;
            // `calls_pkey` is not the upsert's arbiter, so the second insert
            // fails instead of updating. The batch rolls back whole and a
            // retry finds the row: retryable, like a deadlock.
            E::Database(db) if db.code().as_deref() == Some("23505") => StoreError::Conflict(err),
            _ => StoreError::Internal(err),
        }
    }
}

impl StoreError {
    /// For a value that could not be encoded for storage (JSON of a map).
    pub(crate) fn encode(err: impl std::fmt::Display) -> Self {
        StoreError::Corrupt(err.to_string())
    }
}
