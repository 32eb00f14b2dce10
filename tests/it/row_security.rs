//! The second wall between tenants on PostgreSQL: row-level security. The
//! server connects as an ordinary role (see `helpers::APP_ROLE`); these tests
//! connect as that same role and run SQL that forgets its tenant predicate.

use libtest_mimic::Trial;
use sqlx::{Connection, PgConnection, Row};

use crate::helpers::{
    Backend, Sharing, block_on, call, postgres_url, spawn_app_on_with, tag, trial,
};
use callscope::proto::{GetCallRequest, ListCallsRequest, UpsertCallsRequest};

pub fn trials() -> Vec<Trial> {
    vec![
        trial(
            "row_security::postgres::a_query_without_its_tenant_sees_nothing".to_owned(),
            &[postgres_url],
            Sharing::Parallel,
            || block_on(None, a_query_without_its_tenant_sees_nothing()),
        ),
        trial(
            "row_security::postgres::reads_leave_no_transaction_open".to_owned(),
            &[postgres_url],
            Sharing::Parallel,
            || block_on(None, reads_leave_no_transaction_open()),
        ),
    ]
}

/// Counts rows of `table` in a transaction that declared `tenant` (or none).
async fn count(conn: &mut PgConnection, table: &str, tenant: Option<&str>) -> i64 {
    let mut tx = conn.begin().await.expect("begin");
    if let Some(tenant) = tenant {
        sqlx::query("SELECT set_config('callscope.tenant', $1, true)")
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .expect("declare tenant");
    }
    let n: i64 = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(&mut *tx)
        .await
        .expect("count")
        .get(0);
    tx.commit().await.expect("commit");
    n
}

async fn a_query_without_its_tenant_sees_nothing() {
    let mut app = spawn_app_on_with(Backend::Postgres, |_| {}).await;
    let mut first = call("rls-1", "13800138000", "2026-11-20T08:00:00Z");
    first.tags = vec![tag("price", &["interested"])];
    app.ingest
        .upsert_calls(UpsertCallsRequest {
            calls: vec![first, call("rls-2", "13800138001", "2026-11-20T09:00:00Z")],
        })
        .await
        .expect("upsert");

    let mut conn = PgConnection::connect(&app.database_url)
        .await
        .expect("connect as the application role");
    for table in ["calls", "call_tags", "tags", "tag_groups"] {
        assert!(
            count(&mut conn, table, Some("default")).await > 0,
            "{table}"
        );
        assert_eq!(
            count(&mut conn, table, None).await,
            0,
            "{table} without a tenant"
        );
        assert_eq!(
            count(&mut conn, table, Some("other")).await,
            0,
            "{table} as another tenant"
        );
    }
    // Writing another tenant's row is refused, not merely hidden.
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query("SELECT set_config('callscope.tenant', 'default', true)")
        .execute(&mut *tx)
        .await
        .expect("declare tenant");
    let refused = sqlx::query(
        "INSERT INTO tags (tenant_id, tag_id, name, color, description) \
         VALUES ('other', 'x', '', '', '')",
    )
    .execute(&mut *tx)
    .await
    .expect_err("an insert for another tenant must fail");
    assert!(
        refused.to_string().contains("row-level security"),
        "{refused}"
    );
    drop(tx);
    drop(conn);
}

/// Reads end their transaction without waiting for it (the store drops it
/// and sqlx sends its ROLLBACK when the connection returns to the pool):
/// with the smallest pool (two connections), after many reads no
/// connection is left inside a transaction, with the tenant it declared.
async fn reads_leave_no_transaction_open() {
    let mut app = spawn_app_on_with(Backend::Postgres, |c| c.db_max_connections = 1).await;
    let done = app
        .ingest
        .upsert_calls(UpsertCallsRequest {
            calls: vec![call("open-1", "13800138000", "2026-11-20T08:00:00Z")],
        })
        .await
        .expect("upsert")
        .into_inner();
    for _ in 0..20 {
        let page = app
            .calls
            .list_calls(ListCallsRequest::default())
            .await
            .expect("list")
            .into_inner();
        assert_eq!(page.calls.len(), 1);
        let got = app
            .calls
            .get_call(GetCallRequest {
                call_id: done.call_ids[0].clone(),
                ..Default::default()
            })
            .await
            .expect("get")
            .into_inner();
        assert_eq!(got.external_id, "open-1");
    }
    let mut conn = PgConnection::connect(&app.database_url)
        .await
        .expect("connect as the application role");
    let mut open = -1;
    for _ in 0..50 {
        open = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND state LIKE 'idle in transaction%'",
        )
        .fetch_one(&mut conn)
        .await
        .expect("pg_stat_activity");
        if open == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    }
    assert_eq!(open, 0, "a connection stayed idle in a transaction");
}
