//! The second wall between tenants on PostgreSQL: row-level security. The
//! server connects as an ordinary role (see `helpers::APP_ROLE`); these tests
//! connect as that same role and run SQL that forgets its tenant predicate.

use libtest_mimic::Trial;
use sqlx::{Connection, PgConnection, Row};

use crate::helpers::{
    Backend, Sharing, block_on, call, postgres_url, spawn_app_on_with, tag, trial,
};
use callscope::proto::UpsertCallsRequest;

pub fn trials() -> Vec<Trial> {
    vec![trial(
        "row_security::postgres::a_query_without_its_tenant_sees_nothing".to_owned(),
        &[postgres_url],
        Sharing::Parallel,
        || block_on(None, a_query_without_its_tenant_sees_nothing()),
    )]
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
