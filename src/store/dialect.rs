//! The one generic store, [`SqlStore`], and the few things SQLite and
//! PostgreSQL do differently ([`Dialect`]). Everything else is written once:
//! `QueryBuilder` numbers the placeholders for each backend by itself.
//!
//! Every `impl` over `SqlStore<DB>` repeats the same `where` clause: stable
//! Rust has no trait aliases, and bounds on types other than `Self` are not
//! implied by a trait, so there is no shorter way to say "a database whose
//! connections execute queries and which stores these types".

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::{
    ColumnIndex, Connection, Database, Decode, Encode, Executor, IntoArguments, Pool, QueryBuilder,
    Row, Transaction, Type,
};

use super::{Backend, StoreError};

/// What differs between the SQL backends.
pub trait Dialect: Database {
    /// The statement that opens a write transaction.
    const BEGIN: &'static str;
    /// The statement that opens a read transaction.
    const BEGIN_READ: &'static str;
    /// A statement run after committed writes, if the backend needs one, as
    /// often as [`AfterWriteSchedule`] says. Each row it answers (a text
    /// column) is a statement to run next, each in a transaction of its own.
    const AFTER_WRITE: Option<&'static str>;
    /// Whether cost totals can be summed exactly in SQL (64-bit integer
    /// arithmetic on text chunks) instead of in Rust over distinct costs.
    const SUMS_COSTS_IN_SQL: bool;
    /// Whether every transaction declares its tenant to the database
    /// (`callscope.tenant`), which row-level security then enforces: a
    /// statement that forgot its tenant predicate sees nothing.
    const DECLARES_TENANT: bool;
    /// Whether each value carries its own type (SQLite's storage classes),
    /// so that every row of a result set is type-checked as it is read
    /// ([`Columns`]); PostgreSQL types a column once for the statement.
    const TYPES_EACH_VALUE: bool;
    /// Settings (`name`, `value`) for the rest of every write transaction,
    /// declared with the tenant in the same statement.
    const WRITE_SETTINGS: &'static [(&'static str, &'static str)];
    /// `calls p` for the phone filter's look-up by caller, made to use
    /// `calls_by_caller` where the backend's planner would not. A campaign
    /// dials from a few numbers, so SQLite's statistics (rows per key, not
    /// per value) say every caller matches most calls, and it scanned the
    /// table for any number: 5-10 ms at 50,000 calls, growing with them.
    /// PostgreSQL keeps the common values apart and estimates others on
    /// their own.
    const CALLS_BY_CALLER: &'static str;
    /// Settings for the rest of a listing's read transaction (a page of
    /// calls, see [`SqlStore::read_page`]).
    const PAGE_SETTINGS: &'static [(&'static str, &'static str)];
    /// Statements taking a tenant's erasure lock for the rest of the
    /// transaction, `(shared, exclusive)`, each completed by the bound tenant
    /// and `)`: writers of calls take it shared, ErasePhone exclusive, so a
    /// call being written while its number is erased cannot slip past the
    /// tombstones. `None` where one writer at a time is the rule anyway.
    const ERASURE_LOCK: Option<(&'static str, &'static str)>;
    /// ` AND <the call's attribute named by the first bound value equals the
    /// second>`, in three pieces around the two binds. Attributes are a JSON
    /// object in a text column on both backends.
    const ATTRIBUTE_EQUALS: [&'static str; 3];
    /// Appended to a `SELECT` that claims rows for a lease: rows another
    /// transaction is claiming are skipped rather than waited for.
    const SKIP_LOCKED: &'static str;
    /// Appended to a `SELECT` of calls (`c`) to lock their rows for the rest
    /// of the transaction: a delete then logs exactly the version it removes.
    const LOCK_CALL_ROWS: &'static str;
    /// Whether write transactions run concurrently, so that a row one of
    /// them locks makes the others wait (PostgreSQL); SQLite writes one
    /// transaction at a time.
    const CONCURRENT_WRITERS: bool;

    /// ` IN (…)` over `values`, bound as one value: a statement keeps one
    /// text (so one cached plan) whatever the count, and no count of
    /// placeholders has to stay under the backend's limit.
    fn push_in(qb: &mut QueryBuilder<Self>, values: &[String]);

    /// Rows one `INSERT` writes per statement at most, given `columns` a row.
    fn rows_per_insert(columns: usize) -> usize;

    /// The source of an `INSERT … (columns)`: `rows`, bound the way the
    /// backend plans fastest. Fails if `rows` is empty or ragged.
    fn push_rows(qb: &mut QueryBuilder<Self>, rows: Rows) -> Result<(), StoreError>;
}

/// The rows of one `INSERT`, built row by row and kept column by column
/// ([`Dialect::push_rows`]): PostgreSQL binds each column as one array, so
/// a statement has one text (one plan, nothing to re-parse) whatever the
/// count of rows, and its parse and bind no longer grow with thousands of
/// placeholders; SQLite binds them as a multi-row `VALUES`.
#[derive(Debug, Default)]
pub struct Rows {
    columns: Vec<Column>,
    rows: usize,
    /// The column being written in the current row.
    at: usize,
    /// A row gave a column a value of another kind than the first row did.
    mixed: bool,
}

#[derive(Debug)]
enum Column {
    Text(Vec<String>),
    OptText(Vec<Option<String>>),
    Int(Vec<i64>),
    OptInt(Vec<Option<i64>>),
    Bool(Vec<bool>),
}

/// A column's values taken in row order ([`Dialect::push_rows`] on SQLite).
enum ColumnValues {
    Text(std::vec::IntoIter<String>),
    OptText(std::vec::IntoIter<Option<String>>),
    Int(std::vec::IntoIter<i64>),
    OptInt(std::vec::IntoIter<Option<i64>>),
    Bool(std::vec::IntoIter<bool>),
}

impl From<Column> for ColumnValues {
    fn from(column: Column) -> Self {
        match column {
            Column::Text(v) => ColumnValues::Text(v.into_iter()),
            Column::OptText(v) => ColumnValues::OptText(v.into_iter()),
            Column::Int(v) => ColumnValues::Int(v.into_iter()),
            Column::OptInt(v) => ColumnValues::OptInt(v.into_iter()),
            Column::Bool(v) => ColumnValues::Bool(v.into_iter()),
        }
    }
}

impl Column {
    fn len(&self) -> usize {
        match self {
            Column::Text(v) => v.len(),
            Column::OptText(v) => v.len(),
            Column::Int(v) => v.len(),
            Column::OptInt(v) => v.len(),
            Column::Bool(v) => v.len(),
        }
    }
}

/// Appends `$value` to the current row's next column, a `$kind` column.
macro_rules! push_column {
    ($rows:expr, $kind:ident, $value:expr) => {{
        let value = $value;
        match $rows.columns.get_mut($rows.at) {
            Some(Column::$kind(column)) => column.push(value),
            None if $rows.rows == 1 => $rows.columns.push(Column::$kind(vec![value])),
            _ => $rows.mixed = true,
        }
        $rows.at += 1;
        $rows
    }};
}

impl Rows {
    /// Starts the next row; its values follow in column order.
    pub fn row(&mut self) -> &mut Self {
        self.rows += 1;
        self.at = 0;
        self
    }

    pub fn text(&mut self, value: impl Into<String>) -> &mut Self {
        push_column!(self, Text, value.into())
    }

    pub fn opt_text(&mut self, value: Option<String>) -> &mut Self {
        push_column!(self, OptText, value)
    }

    pub fn int(&mut self, value: i64) -> &mut Self {
        push_column!(self, Int, value)
    }

    pub fn opt_int(&mut self, value: Option<i64>) -> &mut Self {
        push_column!(self, OptInt, value)
    }

    pub fn bool(&mut self, value: bool) -> &mut Self {
        push_column!(self, Bool, value)
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The columns, once every row gave every column a value of its kind.
    fn into_columns(self) -> Result<Vec<Column>, StoreError> {
        // No rows would be no statement: `UNNEST()` and a bare `VALUES`.
        if self.rows == 0 || self.mixed || self.columns.iter().any(|c| c.len() != self.rows) {
            // A fault of ours in building the rows, never of a client's.
            return Err(StoreError::Internal(sqlx::Error::Protocol(
                "rows of one INSERT differ in their columns".into(),
            )));
        }
        Ok(self.columns)
    }
}

impl Dialect for sqlx::Sqlite {
    // Take the write lock up front: a deferred transaction that reads first
    // could fail to upgrade under a concurrent writer.
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    const BEGIN_READ: &'static str = "BEGIN";
    // Keeps the planner's statistics current. Without them SQLite walks the
    // whole call-time index for a phone listing instead of using the phone
    // indexes (seconds at 200k calls). `PRAGMA optimize` analyzes only tables
    // whose size changed a lot, sampling at most `analysis_limit` rows; it
    // runs as [`AfterWriteSchedule`] says.
    const AFTER_WRITE: Option<&'static str> = Some("PRAGMA optimize");
    const SUMS_COSTS_IN_SQL: bool = true;
    // One file, one tenant scope: every statement carries its predicate.
    const DECLARES_TENANT: bool = false;
    const TYPES_EACH_VALUE: bool = true;
    const WRITE_SETTINGS: &'static [(&'static str, &'static str)] = &[];
    const PAGE_SETTINGS: &'static [(&'static str, &'static str)] = &[];
    const CALLS_BY_CALLER: &'static str = "calls p INDEXED BY calls_by_caller";
    // BEGIN IMMEDIATE already serialises every write transaction.
    const ERASURE_LOCK: Option<(&'static str, &'static str)> = None;
    const ATTRIBUTE_EQUALS: [&'static str; 3] = [
        " AND EXISTS (SELECT 1 FROM json_each(c.attributes) j WHERE j.key = ",
        " AND j.type = 'text' AND j.value = ",
        ")",
    ];
    // BEGIN IMMEDIATE: one claimer at a time.
    const SKIP_LOCKED: &'static str = "";
    // One writer at a time: nothing can change a row under the transaction.
    const LOCK_CALL_ROWS: &'static str = "";
    const CONCURRENT_WRITERS: bool = false;

    fn push_in(qb: &mut QueryBuilder<Self>, values: &[String]) {
        let array = serde_json::Value::Array(
            values
                .iter()
                .map(|v| serde_json::Value::String(v.clone()))
                .collect(),
        );
        qb.push(" IN (SELECT value FROM json_each(")
            .push_bind(array.to_string())
            .push("))");
    }

    fn rows_per_insert(columns: usize) -> usize {
        // As many rows as SQLite binds (32,766 values a statement): 517
        // calls, 1,666 turns or 5,000 events a statement, so a 500-call
        // batch's calls go in one statement, as a plain multi-row INSERT
        // would. Statements of 200 rows split them in three.
        (30_000 / columns.max(1)).max(1)
    }

    fn push_rows(qb: &mut QueryBuilder<Self>, rows: Rows) -> Result<(), StoreError> {
        let count = rows.len();
        let mut columns: Vec<_> = rows
            .into_columns()?
            .into_iter()
            .map(ColumnValues::from)
            .collect();
        qb.push(" VALUES ");
        for row in 0..count {
            qb.push(if row == 0 { "(" } else { ", (" });
            for (n, column) in columns.iter_mut().enumerate() {
                if n > 0 {
                    qb.push(", ");
                }
                // Every column holds `count` values (checked above), so
                // none runs out.
                match column {
                    ColumnValues::Text(v) => qb.push_bind(v.next().unwrap_or_default()),
                    ColumnValues::OptText(v) => qb.push_bind(v.next().flatten()),
                    ColumnValues::Int(v) => qb.push_bind(v.next().unwrap_or_default()),
                    ColumnValues::OptInt(v) => qb.push_bind(v.next().flatten()),
                    ColumnValues::Bool(v) => qb.push_bind(v.next().unwrap_or_default()),
                };
            }
            qb.push(")");
        }
        Ok(())
    }
}

/// Rows per multi-row `VALUES` statement of the catalog and admin
/// statements on both backends: well below the bound-parameter limits of
/// SQLite (32,766) and PostgreSQL (65,535) at ~58 parameters a call.
pub(super) const ROWS_PER_STATEMENT: usize = 200;

impl Dialect for sqlx::Postgres {
    const BEGIN: &'static str = "BEGIN";
    // sqlx (vendor/sqlx-postgres, patched) sends a `BEGIN READ ONLY` with
    // the transaction's first statement, under that statement's Sync,
    // instead of waiting for it: a read costs the round trips of its
    // statements and no more, and PostgreSQL answers the `BEGIN` and the
    // statement in one write. Only read-only ones are pipelined.
    const BEGIN_READ: &'static str = "BEGIN READ ONLY";
    // Production must run autovacuum (or a scheduled ANALYZE), as the README
    // says. This is an ANALYZE of each table of callscope's schema of which
    // more than half changed since its last ANALYZE, plus 1,000 rows: the net
    // under autovacuum, which analyses a table a tenth changed and so leaves
    // this nothing to do. On a table never analysed, PostgreSQL took `tenant_id =
    // $1 AND source = $2` for 0.5 % of 0.5 % of the rows and the look-up of a
    // batch's 500 external ids read the tenant's every call (96,600 buffers
    // a batch at 200,000 calls, BENCHMARKS.md). Each ANALYZE runs in its own
    // transaction (PgBouncer; a timeout loses one table's statistics, not
    // all of them). The statements are quoted by PostgreSQL (`%I`).
    const AFTER_WRITE: Option<&'static str> = Some(
        "SELECT format('ANALYZE (SKIP_LOCKED) %I.%I', schemaname, relname) \
         FROM pg_stat_user_tables \
         WHERE schemaname = current_schema() AND n_mod_since_analyze > 1000 + n_live_tup / 2 \
         ORDER BY relname",
    );
    // The chunked sums use SQLite's string functions on untyped values; on
    // PostgreSQL distinct costs are added exactly in Rust.
    const SUMS_COSTS_IN_SQL: bool = false;
    const DECLARES_TENANT: bool = true;
    const TYPES_EACH_VALUE: bool = false;
    // Writes plan every statement with its parameters and the table's
    // current size: a generic plan cached while `calls` was small kept a
    // sequential scan for the look-up by external id, and ingest fell
    // tenfold by 80k calls. Reads keep PostgreSQL's plan cache: re-planning
    // a listing cost more than running it (1.2 ms against 0.25 ms with 18
    // indexes on `calls` to weigh), and their plans are re-made whenever
    // ANALYZE changes the statistics. Statements inside functions inherit
    // the setting, so the rollup and count triggers run no statement per row
    // (migration 0020): per row, each would be planned anew. The number-state
    // triggers of a call's update or deletion still run per row.
    const WRITE_SETTINGS: &'static [(&'static str, &'static str)] =
        &[("plan_cache_mode", "force_custom_plan")];
    // A page is a few rows found early along an index, which no parallel
    // worker speeds up, but at 10M calls the planner chose a Gather Merge
    // for the transcript search: starting two workers took 16 of its 21 ms,
    // and each worker read its own 1,200 calls for 16 rows. Without them
    // the same page read 384 calls in 2.6 ms (`EXPLAIN (ANALYZE, BUFFERS)`,
    // BENCHMARKS.md). Statistics and exports keep parallel plans.
    const PAGE_SETTINGS: &'static [(&'static str, &'static str)] =
        &[("max_parallel_workers_per_gather", "0")];
    const CALLS_BY_CALLER: &'static str = "calls p";
    // Transaction-scoped advisory locks in a key space of their own (the
    // two-integer form, class 7001): shared ones do not block each other, so
    // concurrent ingest is unaffected until an erasure comes.
    const ERASURE_LOCK: Option<(&'static str, &'static str)> = Some((
        "SELECT pg_advisory_xact_lock_shared(7001, hashtext(",
        "SELECT pg_advisory_xact_lock(7001, hashtext(",
    ));
    const ATTRIBUTE_EQUALS: [&'static str; 3] = [
        " AND (c.attributes::jsonb ->> CAST(",
        " AS TEXT)) = CAST(",
        " AS TEXT)",
    ];
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const LOCK_CALL_ROWS: &'static str = " FOR UPDATE OF c";
    const CONCURRENT_WRITERS: bool = true;

    fn push_in(qb: &mut QueryBuilder<Self>, values: &[String]) {
        qb.push(" = ANY(").push_bind(values.to_vec()).push(")");
    }

    fn rows_per_insert(_columns: usize) -> usize {
        // One array per column: no placeholder limit; this bounds a
        // statement's work only.
        10_000
    }

    fn push_rows(qb: &mut QueryBuilder<Self>, rows: Rows) -> Result<(), StoreError> {
        qb.push(" SELECT * FROM UNNEST(");
        for (n, column) in rows.into_columns()?.into_iter().enumerate() {
            if n > 0 {
                qb.push(", ");
            }
            match column {
                Column::Text(v) => qb.push_bind(v).push("::text[]"),
                Column::OptText(v) => qb.push_bind(v).push("::text[]"),
                Column::Int(v) => qb.push_bind(v).push("::int8[]"),
                Column::OptInt(v) => qb.push_bind(v).push("::int8[]"),
                Column::Bool(v) => qb.push_bind(v).push("::bool[]"),
            };
        }
        qb.push(")");
        Ok(())
    }
}

/// The store over one SQL database: a pool that writes and a pool that reads
/// (the same pool on PostgreSQL; on SQLite one writer connection and many
/// read-only ones). With a PostgreSQL read replica (`--database-read-url`),
/// `reader` is the replica's pool and `primary_reader` the primary's.
pub struct SqlStore<DB: Database> {
    pub(super) writer: Pool<DB>,
    /// Reads that may lag behind the last commit: listings, stats, exports,
    /// catalogs, the event log.
    pub(super) reader: Pool<DB>,
    /// Reads that must see every commit already acknowledged: a call looked
    /// up right after it was written, keys (a revoked key is refused at
    /// once), subscriptions and sync sources, and the reads that decide a
    /// write.
    pub(super) primary_reader: Pool<DB>,
    /// `reader` is a replica's pool.
    pub(super) has_replica: bool,
    /// Bumped after every commit that wrote events (see `events.rs`).
    pub(super) events: Arc<tokio::sync::watch::Sender<u64>>,
    pub(super) after_write: Arc<AfterWriteSchedule>,
}

// By hand: a derived `Clone` would ask `DB: Clone`, which no backend's
// marker type is; every field is a pool or an `Arc`.
impl<DB: Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        Self {
            writer: self.writer.clone(),
            reader: self.reader.clone(),
            primary_reader: self.primary_reader.clone(),
            has_replica: self.has_replica,
            events: self.events.clone(),
            after_write: self.after_write.clone(),
        }
    }
}

/// When [`Dialect::AFTER_WRITE`] runs: after the first write, then each time
/// the rows written since start have doubled, and at least every
/// [`AFTER_WRITE_EVERY_ROWS`]. `PRAGMA optimize` (SQLite) re-analyzes a table
/// only once its size changed about tenfold, and PostgreSQL's after-write a
/// table half changed since its last ANALYZE, so a run per doubling gives
/// each every chance it takes; the cap keeps a long-running server with
/// churn (writes and purges of about the same rows) from waiting ever longer. A run after
/// every write cost each batch a second turn on SQLite's one writer
/// connection: ingest went from 2,001 to 2,299 rows/s without it (30,000
/// calls, 4 streams).
const AFTER_WRITE_EVERY_ROWS: u64 = 100_000;

#[derive(Debug)]
pub(super) struct AfterWriteSchedule {
    written: AtomicU64,
    next: AtomicU64,
    /// When the last run ended, in milliseconds after `started` (0: none
    /// yet), for [`Self::ran_since`].
    last_run_ms: AtomicU64,
    started: Instant,
}

impl Default for AfterWriteSchedule {
    fn default() -> Self {
        Self {
            written: AtomicU64::new(0),
            next: AtomicU64::new(0),
            last_run_ms: AtomicU64::new(0),
            started: Instant::now(),
        }
    }
}

impl AfterWriteSchedule {
    /// Records that a run ended (its statistics are in the database now).
    fn ran(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_run_ms.store(ms.max(1), Ordering::Relaxed);
    }

    /// Whether a run ended within the last `age`: a connection opened `age`
    /// ago holds the statistics from before it. SQLite reads its statistics
    /// when a connection loads the schema and never again, so a reader
    /// opened before an ANALYZE plans without it for as long as it lives
    /// (a pool's reader lives for half an hour; a planner without
    /// statistics picked other indexes, and a reader opened before the first
    /// write never had any).
    pub(super) fn ran_since(&self, age: Duration) -> bool {
        match self.last_run_ms.load(Ordering::Relaxed) {
            0 => false,
            ms => {
                self.started
                    .elapsed()
                    .saturating_sub(Duration::from_millis(ms))
                    < age
            }
        }
    }

    /// Counts `rows` written; whether the after-write statement is due.
    fn due(&self, rows: u64) -> bool {
        let written = self.written.fetch_add(rows, Ordering::Relaxed) + rows;
        let next = self.next.load(Ordering::Relaxed);
        // One of the writers that cross the mark runs it.
        rows > 0
            && written >= next
            && self
                .next
                .compare_exchange(
                    next,
                    written.saturating_add(written.min(AFTER_WRITE_EVERY_ROWS)),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    for<'v> i64: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> String: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> Vec<u8>: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> bool: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> &'v str: Decode<'v, DB> + Type<DB>,
    for<'v> Option<i64>: Encode<'v, DB>,
    for<'v> Option<String>: Encode<'v, DB>,
{
    pub(super) fn new(writer: Pool<DB>, reader: Pool<DB>) -> Self {
        Self::with_schedule(writer, reader, Arc::default())
    }

    /// [`Self::new`] with the after-write schedule the pools' hooks read.
    pub(super) fn with_schedule(
        writer: Pool<DB>,
        reader: Pool<DB>,
        after_write: Arc<AfterWriteSchedule>,
    ) -> Self {
        Self {
            writer,
            primary_reader: reader.clone(),
            reader,
            has_replica: false,
            events: Arc::new(tokio::sync::watch::Sender::new(0)),
            after_write,
        }
    }

    /// Sends the reads that may lag to `replica`; the others stay on the
    /// primary's pool.
    pub(super) fn with_replica(mut self, replica: Pool<DB>) -> Self {
        self.reader = replica;
        self.has_replica = true;
        self
    }

    /// Opens a write transaction for `tenant`.
    pub(super) async fn begin(&self, tenant: &str) -> Result<Transaction<'static, DB>, StoreError> {
        Self::begin_on(&self.writer, DB::BEGIN, tenant, DB::WRITE_SETTINGS).await
    }

    /// The reader pool has a connection no one waits for: idle, or not yet
    /// opened. A glance, not a reservation.
    pub(super) fn reader_has_room(&self) -> bool {
        self.reader.num_idle() > 0
            || self.reader.size() < self.reader.options().get_max_connections()
    }

    /// Opens a read transaction for `tenant` (on SQLite its statements see
    /// one snapshot; PostgreSQL's `READ COMMITTED` gives each its own).
    pub(super) async fn read(&self, tenant: &str) -> Result<Transaction<'static, DB>, StoreError> {
        Self::read_on(&self.reader, tenant).await
    }

    /// Opens a read transaction for `tenant` that answers a page of a
    /// listing: with [`Dialect::PAGE_SETTINGS`], unless `walks_in_order`
    /// (its plan walks an index in page order and stops at the page's last
    /// row, [`super::filter_sql::plan_fits_any_values`]). Such a plan reads
    /// a page's rows and no more, so no parallel plan is ever cheaper, and
    /// the setting only cost time: with it (then a `SELECT set_config`),
    /// PostgreSQL ran 15,100-16,500 `BEGIN; …; ROLLBACK` a second (pgbench,
    /// 8 clients), without it 19,700-20,000.
    pub(super) async fn read_page(
        &self,
        tenant: &str,
        walks_in_order: bool,
    ) -> Result<Transaction<'static, DB>, StoreError> {
        let settings = if walks_in_order {
            &[]
        } else {
            DB::PAGE_SETTINGS
        };
        Self::begin_on(&self.reader, DB::BEGIN_READ, tenant, settings).await
    }

    /// Opens a read transaction for `tenant` on the primary: it sees every
    /// commit acknowledged so far (see [`SqlStore::primary_reader`]).
    pub(super) async fn read_primary(
        &self,
        tenant: &str,
    ) -> Result<Transaction<'static, DB>, StoreError> {
        Self::read_on(&self.primary_reader, tenant).await
    }

    /// A read transaction for `tenant` on `pool`.
    async fn read_on(
        pool: &Pool<DB>,
        tenant: &str,
    ) -> Result<Transaction<'static, DB>, StoreError> {
        Self::begin_on(pool, DB::BEGIN_READ, tenant, &[]).await
    }

    /// Opens a transaction on `pool` with `begin` and, where the backend
    /// enforces tenants, sets `callscope.tenant` and `settings` for the rest
    /// of it in the same exchange: `BEGIN; SET LOCAL …; SET LOCAL …` (for a
    /// read, each parsed and run ahead of its first statement under one
    /// Sync, vendor/README.md; so no `;` inside a literal here). A bound
    /// `set_config` after BEGIN cost a round trip of
    /// its own on every request, a third of a page's exchanges. Each setting
    /// is a `SET LOCAL`, which PostgreSQL runs without planning or executing
    /// a `SELECT`: a page with `PAGE_SETTINGS` cost PostgreSQL 0.15-0.35 ms
    /// less CPU a request than with one `SELECT set_config(…), set_config(…)`
    /// (the suite's listings on this 2-core machine, four runs alternating,
    /// BENCHMARKS.md, thirteenth session; an earlier pgbench comparison, one
    /// statement a line, had favoured the `SELECT`). The values go into the
    /// text as literals, so the tenant name is checked here (letters, digits,
    /// `.`, `_`, `-`: nothing to escape), and `settings` are the backend's
    /// constants.
    async fn begin_on(
        pool: &Pool<DB>,
        begin: &'static str,
        tenant: &str,
        settings: &[(&str, &str)],
    ) -> Result<Transaction<'static, DB>, StoreError> {
        if !DB::DECLARES_TENANT {
            return Ok(pool.begin_with(begin).await?);
        }
        crate::domain::key::validate_tenant(tenant).map_err(StoreError::InvalidTenant)?;
        let mut statement = format!("{begin}; SET LOCAL callscope.tenant = '{tenant}'");
        for (name, value) in settings {
            let _ = write!(statement, "; SET LOCAL {name} = '{value}'");
        }
        Ok(pool.begin_with(sqlx::AssertSqlSafe(statement)).await?)
    }

    /// Runs one read statement in a read transaction of its own.
    pub(super) async fn read_all(
        &self,
        tenant: &str,
        qb: &mut QueryBuilder<DB>,
    ) -> Result<Vec<DB::Row>, StoreError> {
        Self::fetch_all_on(&self.reader, tenant, qb).await
    }

    /// [`SqlStore::read_all`] on the primary.
    pub(super) async fn read_all_primary(
        &self,
        tenant: &str,
        qb: &mut QueryBuilder<DB>,
    ) -> Result<Vec<DB::Row>, StoreError> {
        Self::fetch_all_on(&self.primary_reader, tenant, qb).await
    }

    /// One read statement in a read transaction of its own on `pool`; on a
    /// backend that declares no tenant, the statement alone. A statement
    /// reads one snapshot by itself (SQLite runs it in an implicit
    /// transaction), and on SQLite a `BEGIN` and its `ROLLBACK` are two more
    /// trips to the connection's worker thread (GetCallStats, the time
    /// series, catalog look-ups). PostgreSQL declares its tenant, so its
    /// statements stay inside a transaction, as PgBouncer needs
    /// ([`Self::fetch_all_untenanted`]).
    async fn fetch_all_on(
        pool: &Pool<DB>,
        tenant: &str,
        qb: &mut QueryBuilder<DB>,
    ) -> Result<Vec<DB::Row>, StoreError> {
        if !DB::DECLARES_TENANT {
            return Ok(qb.build().fetch_all(pool).await?);
        }
        let mut tx = Self::read_on(pool, tenant).await?;
        let rows = qb.build().fetch_all(&mut *tx).await?;
        Self::end_read(tx);
        Ok(rows)
    }

    /// Ends a transaction that wrote nothing, without waiting on it.
    /// Dropping it makes sqlx queue a `ROLLBACK`, which goes out with the
    /// ping sqlx sends on every connection handed back to its pool; a
    /// connection whose rollback fails is closed there, never reused. A
    /// `COMMIT` would be a round trip the caller waits on for nothing: one
    /// of the six exchanges a PostgreSQL listing had (the pool's test ping,
    /// since made only after a second idle, BEGIN, the page, its tags, its
    /// groups, COMMIT). Only for transactions that wrote nothing: a write's
    /// commit must be awaited before it is acknowledged.
    pub(super) fn end_read(tx: Transaction<'static, DB>) {
        drop(tx);
    }

    /// One statement that declares no tenant (keys, the tenant list, the
    /// event heads, a ping) in a transaction of its own on `pool`. Every
    /// statement runs inside an explicit transaction, never alone: sqlx sends
    /// one in two exchanges (prepare, then bind and execute), and PgBouncer
    /// in transaction mode keeps a client on one server connection only
    /// until a transaction ends, so between the two exchanges of a lone
    /// statement it may hand the client another server connection (see
    /// docs/scaling.md, Step 3).
    pub(super) async fn fetch_all_untenanted(
        pool: &Pool<DB>,
        qb: &mut QueryBuilder<DB>,
    ) -> Result<Vec<DB::Row>, StoreError> {
        Self::fetch_all_in(pool.begin().await?, qb).await
    }

    /// Runs one statement in `tx` and commits it.
    async fn fetch_all_in(
        mut tx: Transaction<'_, DB>,
        qb: &mut QueryBuilder<DB>,
    ) -> Result<Vec<DB::Row>, StoreError> {
        let rows = qb.build().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Deletes the tenant's rows of `table` whose `id_column` is one of `ids`,
    /// one statement per `chunk` ids.
    pub(super) async fn delete_by_ids(
        tx: &mut Transaction<'static, DB>,
        table: &str,
        id_column: &str,
        tenant: &str,
        ids: &[String],
        chunk: usize,
    ) -> Result<(), StoreError> {
        for part in ids.chunks(chunk) {
            let mut qb = QueryBuilder::<DB>::new(format!("DELETE FROM {table} WHERE tenant_id = "));
            qb.push_bind(tenant.to_owned())
                .push(format_args!(" AND {id_column}"));
            DB::push_in(&mut qb, part);
            qb.build().execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Starts the backend's after-write statement, and the statements it
    /// answers, when `rows` more written make it due. They run in the
    /// background, off the write that crossed the mark (an ANALYZE of a large
    /// table takes seconds). A failure is logged and waits for the next mark:
    /// the write stands.
    pub(super) async fn after_write(&self, rows: u64) {
        if let Some(statement) = DB::AFTER_WRITE
            && self.after_write.due(rows)
        {
            let (writer, schedule) = (self.writer.clone(), self.after_write.clone());
            tokio::spawn(async move {
                match Self::run_after_write(&writer, statement).await {
                    Ok(()) => schedule.ran(),
                    Err(e) => {
                        tracing::warn!(error = %e, statement, "after-write statement failed");
                    }
                }
            });
        }
    }

    async fn run_after_write(writer: &Pool<DB>, statement: &'static str) -> Result<(), StoreError> {
        let mut tx = writer.begin().await?;
        let next: Vec<String> = QueryBuilder::<DB>::new(statement)
            .build_query_scalar()
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        for statement in next {
            let mut tx = writer.begin().await?;
            // Made by the database from its own catalog (see AFTER_WRITE).
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }
}

/// `?, ?, …` binding each value.
pub(super) fn push_list<DB>(qb: &mut QueryBuilder<DB>, values: &[String])
where
    DB: Database,
    for<'v> String: Encode<'v, DB> + Type<DB>,
{
    let mut list = qb.separated(", ");
    for value in values {
        list.push_bind(value.clone());
    }
}

/// A text column that may be NULL (outer joins), as text.
pub(super) fn opt_text<R>(row: &R, column: &str) -> Result<String, sqlx::Error>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'v> String: Decode<'v, R::Database> + Type<R::Database>,
{
    Ok(row
        .try_get::<Option<String>, _>(column)?
        .unwrap_or_default())
}

/// An enum stored as its wire number.
pub(super) fn code<R, T>(row: &R, column: &str, from: fn(i32) -> Option<T>) -> Result<T, StoreError>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'v> i64: Decode<'v, R::Database> + Type<R::Database>,
{
    from_code(column, row.try_get(column)?, from)
}

/// The enum whose wire number column `name` holds as `value`.
fn from_code<T>(name: &str, value: i64, from: fn(i32) -> Option<T>) -> Result<T, StoreError> {
    i32::try_from(value)
        .ok()
        .and_then(from)
        .ok_or_else(|| StoreError::Corrupt(format!("{name} = {value}")))
}

/// A JSON text column.
pub(super) fn json<R, T>(row: &R, column: &str) -> Result<T, StoreError>
where
    R: Row,
    T: serde::de::DeserializeOwned,
    for<'a> &'a str: ColumnIndex<R>,
    for<'v> String: Decode<'v, R::Database> + Type<R::Database>,
{
    parse_json(column, &row.try_get::<String, _>(column)?)
}

/// The JSON text of column `name`, parsed.
fn parse_json<T: serde::de::DeserializeOwned>(name: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))
}

/// A map as the JSON text it is stored as.
pub(super) fn to_json(map: &BTreeMap<String, String>) -> Result<String, StoreError> {
    serde_json::to_string(map).map_err(StoreError::encode)
}

/// How long a health ping waits for a pooled connection.
const PING_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

#[async_trait]
impl<DB> Backend for SqlStore<DB>
where
    DB: Dialect,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
    for<'v> i64: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> String: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> Vec<u8>: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> bool: Encode<'v, DB> + Decode<'v, DB> + Type<DB>,
    for<'v> &'v str: Decode<'v, DB> + Type<DB>,
    for<'v> Option<i64>: Encode<'v, DB>,
    for<'v> Option<String>: Encode<'v, DB>,
{
    async fn ping(&self) -> Result<(), StoreError> {
        // Both databases when reads go to a replica: either one down fails
        // requests.
        for pool in [&self.reader, &self.primary_reader] {
            let mut conn = match tokio::time::timeout(PING_WAIT, pool.acquire()).await {
                Ok(conn) => conn?,
                // Every connection stayed busy serving requests: the
                // database is answering them. Queueing behind them timed out
                // on a saturated machine, and the watchdog then refused
                // traffic to a working database (seen twice in the
                // benchmarks' bulk loads). A connection that fails is
                // closed, which leaves room for the next ping to open one.
                Err(_) if pool.size() >= pool.options().get_max_connections() => continue,
                Err(_) => return Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut)),
            };
            // Inside a transaction, as every statement (PgBouncer).
            Self::fetch_all_in(conn.begin().await?, &mut QueryBuilder::new("SELECT 1")).await?;
        }
        Ok(())
    }

    fn pools(&self) -> Vec<super::PoolFigures> {
        let reader = if self.has_replica {
            "replica"
        } else {
            "reader"
        };
        [("writer", &self.writer), (reader, &self.reader)]
            .into_iter()
            .map(|(name, pool)| super::PoolFigures {
                name,
                size: pool.size(),
                idle: pool.num_idle(),
                max: pool.options().get_max_connections(),
            })
            .collect()
    }
}

/// Reads the columns of one row in the order its statement selects them:
/// by position, where `try_get("name")` hashes the name and compares it
/// for every column of every row (reading a call this way halved
/// `row_to_call`'s instructions, BENCHMARKS.md). The first row of a result
/// set checks every column's name: a statement and its reader that disagree
/// fail, they do not fill the wrong field. Types are checked on the first
/// row (a NULL has none to check; a column passed with [`Columns::skip`] is
/// decoded there too), and on every row where each value has a
/// type of its own ([`Dialect::TYPES_EACH_VALUE`], SQLite); on PostgreSQL
/// the rows after the first share the statement's column types and are
/// decoded unchecked.
pub(super) struct Columns<'r, R> {
    row: &'r R,
    next: usize,
    names: bool,
    types: bool,
}

impl<'r, R: Row> Columns<'r, R> {
    /// A reader of `row`, the first of its result set when `first`, from a
    /// backend whose values are typed one by one when `types_each_value`.
    pub(super) fn new(row: &'r R, first: bool, types_each_value: bool) -> Self {
        Self {
            row,
            next: 0,
            names: first,
            types: first || types_each_value,
        }
    }

    /// Moves past the next column, which the statement names `name`
    /// (checked on the first row, as every column is): its index.
    fn advance(&mut self, name: &str) -> Result<usize, StoreError> {
        let index = self.next;
        self.next += 1;
        if self.names {
            let found = self.row.columns().get(index).map(sqlx::Column::name);
            if found != Some(name) {
                return Err(StoreError::Corrupt(format!(
                    "column {index} of the statement is {found:?}, read as {name}"
                )));
            }
        }
        Ok(index)
    }

    /// Passes the next columns, text the statement names `names`, without
    /// decoding them: values this row does not need (a tag shown from its
    /// snapshot needs none of the catalog's columns). Decoding a column was
    /// about 200 instructions (callgrind), most of a tag row's cost. On a
    /// result's first row they are decoded all the same, so that their
    /// types are checked for the rows after it, which may decode them
    /// unchecked.
    pub(super) fn skip(&mut self, names: &[&str]) -> Result<(), StoreError>
    where
        &'r str: Decode<'r, R::Database> + Type<R::Database>,
        usize: ColumnIndex<R>,
    {
        for name in names {
            if self.names {
                self.get::<Option<&'r str>>(name)?;
            } else {
                self.advance(name)?;
            }
        }
        Ok(())
    }

    /// The next column, which the statement names `name`.
    pub(super) fn get<T>(&mut self, name: &str) -> Result<T, StoreError>
    where
        T: Decode<'r, R::Database> + Type<R::Database>,
        usize: ColumnIndex<R>,
    {
        let index = self.advance(name)?;
        if self.types {
            Ok(self.row.try_get(index)?)
        } else {
            Ok(self.row.try_get_unchecked(index)?)
        }
    }

    /// The next column, an enum stored as its wire number.
    pub(super) fn code<T>(
        &mut self,
        name: &str,
        from: fn(i32) -> Option<T>,
    ) -> Result<T, StoreError>
    where
        i64: Decode<'r, R::Database> + Type<R::Database>,
        usize: ColumnIndex<R>,
    {
        from_code(name, self.get(name)?, from)
    }

    /// The next column, JSON text.
    pub(super) fn json<T>(&mut self, name: &str) -> Result<T, StoreError>
    where
        T: serde::de::DeserializeOwned,
        &'r str: Decode<'r, R::Database> + Type<R::Database>,
        usize: ColumnIndex<R>,
    {
        parse_json(name, self.get(name)?)
    }

    /// The next column, a JSON snapshot (NULL: none).
    pub(super) fn snapshot<T>(&mut self, name: &str) -> Result<Option<T>, StoreError>
    where
        T: serde::de::DeserializeOwned,
        &'r str: Decode<'r, R::Database> + Type<R::Database>,
        usize: ColumnIndex<R>,
    {
        parse_snapshot(name, self.get(name)?)
    }
}

/// The text of JSON snapshot column `name` (NULL: none), parsed.
pub(super) fn parse_snapshot<T>(name: &str, text: Option<&str>) -> Result<Option<T>, StoreError>
where
    T: serde::de::DeserializeOwned,
{
    text.map(|text| parse_json(name, text)).transpose()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::AfterWriteSchedule;
    use crate::store::{Backend as _, StoreOptions};

    #[test]
    fn rows_bind_on_sqlite_as_values_and_on_postgres_as_one_array_a_column() {
        use super::{Dialect, Rows};
        use sqlx::{Execute, Postgres, QueryBuilder, Sqlite};
        let rows = || {
            let mut rows = Rows::default();
            for n in 0..3 {
                rows.row()
                    .text(format!("c{n}"))
                    .opt_int((n > 0).then_some(n))
                    .bool(n == 1);
            }
            rows
        };
        let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO t (a, b, c)");
        Sqlite::push_rows(&mut qb, rows()).expect("even rows");
        assert_eq!(
            qb.build().sql().as_str(),
            "INSERT INTO t (a, b, c) VALUES (?, ?, ?), (?, ?, ?), (?, ?, ?)"
        );
        let mut qb = QueryBuilder::<Postgres>::new("INSERT INTO t (a, b, c)");
        Postgres::push_rows(&mut qb, rows()).expect("even rows");
        assert_eq!(
            qb.build().sql().as_str(),
            "INSERT INTO t (a, b, c) SELECT * FROM UNNEST($1::text[], $2::int8[], $3::bool[])"
        );
    }

    #[tokio::test]
    async fn columns_read_by_position_refuse_a_name_out_of_place() {
        use super::Columns;
        use crate::store::StoreError;
        use sqlx::{Connection, SqliteConnection};
        let mut conn = SqliteConnection::connect("sqlite::memory:")
            .await
            .expect("in-memory SQLite");
        let rows = sqlx::query("SELECT 7 AS a, 'x' AS b UNION ALL SELECT 8, NULL")
            .fetch_all(&mut conn)
            .await
            .expect("two rows");
        // The first row checks each name; the second reads unchecked.
        let mut first = Columns::new(&rows[0], true, false);
        assert_eq!(first.get::<i64>("a").expect("a"), 7);
        assert_eq!(first.get::<Option<&str>>("b").expect("b"), Some("x"));
        let mut second = Columns::new(&rows[1], false, false);
        assert_eq!(second.get::<i64>("a").expect("a"), 8);
        assert_eq!(second.get::<Option<&str>>("b").expect("b"), None);
        // Reading `b` where the statement has `a` is an error, not a value.
        let mut swapped = Columns::new(&rows[0], true, false);
        match swapped.get::<&str>("b") {
            Err(StoreError::Corrupt(why)) => {
                assert_eq!(why, "column 0 of the statement is Some(\"a\"), read as b")
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        // A value of another type on a later row: refused where each value
        // has a type of its own (SQLite), coerced when read unchecked.
        let mixed = sqlx::query("SELECT 7 AS a UNION ALL SELECT 'x'")
            .fetch_all(&mut conn)
            .await
            .expect("two rows");
        let mut typed = Columns::new(&mixed[1], false, true);
        assert!(matches!(
            typed.get::<i64>("a"),
            Err(StoreError::Internal(sqlx::Error::ColumnDecode { .. }))
        ));
        let mut untyped = Columns::new(&mixed[1], false, false);
        assert_eq!(untyped.get::<i64>("a").expect("coerced"), 0);
        // Past the last column.
        let mut past = Columns::new(&rows[0], true, false);
        past.get::<i64>("a").expect("a");
        past.get::<Option<&str>>("b").expect("b");
        assert!(matches!(
            past.get::<i64>("c"),
            Err(StoreError::Corrupt(why)) if why == "column 2 of the statement is None, read as c"
        ));
    }

    #[test]
    fn ragged_rows_are_refused() {
        use super::{Dialect, Rows};
        use sqlx::{QueryBuilder, Sqlite};
        // A row short of a column.
        let mut rows = Rows::default();
        rows.row().text("a").int(1);
        rows.row().text("b");
        let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO t (a, b)");
        assert!(Sqlite::push_rows(&mut qb, rows).is_err());
        // A column of another kind.
        let mut rows = Rows::default();
        rows.row().text("a").int(1);
        rows.row().text("b").text("2");
        let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO t (a, b)");
        assert!(Sqlite::push_rows(&mut qb, rows).is_err());
        // No rows at all.
        let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO t (a, b)");
        assert!(Sqlite::push_rows(&mut qb, Rows::default()).is_err());
    }

    #[test]
    fn the_after_write_statement_runs_after_the_first_write_and_each_doubling() {
        let schedule = AfterWriteSchedule::default();
        let due: Vec<usize> = (1..=20).filter(|_| schedule.due(500)).collect();
        // 500, 1,000, 2,000, 4,000 and 8,000 rows written.
        assert_eq!(due, [1, 2, 4, 8, 16]);
        assert!(!schedule.due(0), "nothing written");
        assert!(schedule.due(20_000), "30,000 rows: past 16,000");
        assert!(schedule.due(60_000), "90,000 rows: past 60,000");
        assert!(!schedule.due(89_999), "179,999 rows");
        assert!(schedule.due(1), "180,000 rows: doubled");
        // Past 100,000 rows, a run at least every 100,000.
        assert!(!schedule.due(99_999), "279,999 rows");
        assert!(schedule.due(1), "280,000 rows");
    }

    #[test]
    fn the_after_write_statement_waits_for_a_first_row() {
        let schedule = AfterWriteSchedule::default();
        assert!(!schedule.due(0), "an empty write before any row");
        assert!(schedule.due(1));
    }

    #[tokio::test]
    async fn a_ping_while_every_connection_serves_a_request_answers_at_once() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let options = StoreOptions {
            url: format!("sqlite://{}", dir.path().join("ping.db").display()),
            read_url: None,
            max_connections: 2,
            acquire_timeout: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(5),
        };
        let store = crate::store::sqlite::connect(&options)
            .await
            .expect("a new SQLite store");
        let busy = [
            store.reader.acquire().await.expect("a reader"),
            store.reader.acquire().await.expect("a reader"),
        ];
        let ping = tokio::time::timeout(Duration::from_secs(2), store.ping()).await;
        assert!(
            matches!(ping, Ok(Ok(()))),
            "a saturated pool is not a database down: {ping:?}"
        );
        drop(busy);
        store.ping().await.expect("a ping on a free connection");
    }

    /// SQLite reads its statistics when a connection loads the schema: a
    /// reader opened before the after-write `PRAGMA optimize` must not go
    /// on planning without what it found.
    #[tokio::test]
    async fn readers_plan_with_the_statistics_of_the_last_after_write_run() {
        use sqlx::Row;

        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("stats.db").display());
        let store = crate::store::sqlite::one_reader_store(&url).await;
        // Every call from one number: with statistics, a look-up by another
        // caller is planned as a scan; without, as a search of the index.
        let plan = || async {
            sqlx::query(
                "EXPLAIN QUERY PLAN SELECT call_id FROM calls WHERE tenant_id = 't1' \
                 AND caller = '+8613900000000'",
            )
            .fetch_all(&store.reader)
            .await
            .expect("a plan")
            .iter()
            .map(|row| row.get::<String, _>("detail"))
            .collect::<Vec<_>>()
            .join("; ")
        };
        let before = plan().await;
        assert!(before.contains("calls_by_caller"), "{before}");
        crate::store::sqlite::store_calls_from_one_caller(&store, 2000).await;
        // The writes' after-write run (in the background) analysed the
        // calls; the writer plans with what it found.
        let started = std::time::Instant::now();
        while !store.after_write.ran_since(Duration::from_secs(3600)) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no after-write run"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let analysed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'calls' AND idx = 'calls_by_caller'",
        )
        .fetch_one(&store.writer)
        .await
        .expect("statistics");
        assert_eq!(analysed, 1, "PRAGMA optimize analysed calls");
        let after = plan().await;
        assert!(
            after.starts_with("SCAN"),
            "the reader plans with them: {after}"
        );
    }
}
