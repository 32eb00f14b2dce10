//! Two tenants on one server (`--auth keys`), every RPC: what one tenant
//! stores, another can never see, count, page through, change or erase. The
//! first wall (every statement names its tenant) is tested on both backends;
//! on PostgreSQL the second wall (row-level security) is on as well, since
//! test servers connect as an ordinary role.

use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::{Code, Request};

use callscope::auth::AuthMode;
use callscope::config::ServeConfig;
use callscope::domain::key::Role;
use callscope::proto::{
    self, CallFilter, DeleteCallsRequest, ErasePhoneRequest, GetCallRequest, GetCallStatsRequest,
    GetCallTimeSeriesRequest, ImportRecordsRequest, ListCallsRequest, ListRejectedRecordsRequest,
    ListTaskNumbersRequest, Source, TaskNumberInput, UpsertCallsRequest, UpsertTagsRequest,
    UpsertTaskNumbersRequest, admin_service_client::AdminServiceClient,
};
use callscope::service::keys;
use callscope::store::{Store, StoreOptions};

use crate::helpers::{TestApp, call, tag, ts};

fn with_keys(config: &mut ServeConfig) {
    config.auth = AuthMode::Keys;
}

crate::backend_tests!(config: with_keys;
    a_tenant_sees_counts_and_pages_only_its_own_data,
    a_tenant_changes_and_erases_only_its_own_data,
);

/// `message` with `authorization: Bearer key`.
fn req<T>(message: T, key: &str) -> Request<T> {
    let mut request = Request::new(message);
    let value = MetadataValue::try_from(format!("Bearer {key}")).expect("ascii key");
    request.metadata_mut().insert("authorization", value);
    request
}

/// An admin key for each of two tenants.
async fn two_tenants(app: &TestApp) -> (String, String) {
    let store = Store::connect(&StoreOptions {
        url: app.database_url.clone(),
        read_url: None,
        max_connections: 2,
        acquire_timeout: Duration::from_secs(10),
        busy_timeout: Duration::from_secs(10),
    })
    .await
    .expect("open the test database");
    let a = keys::create_key(&store, "tenant-a", Role::Admin, "a").await;
    let b = keys::create_key(&store, "tenant-b", Role::Admin, "b").await;
    (a.expect("key a").1, b.expect("key b").1)
}

/// Both tenants store calls with the same external ids in a task of the same
/// name, tags of the same id, a dialing list and a refused vendor record.
/// Tenant A's numbers end in 0, B's in 9.
async fn seed(app: &mut TestApp, key: &str, digit: char, tag_name: &str) -> Vec<String> {
    let calls: Vec<proto::Call> = (1..=3)
        .map(|i| {
            let mut c = call(
                &format!("shared-{i}"),
                &format!("1380013800{digit}"),
                &format!("2026-11-2{i}T08:00:00Z"),
            );
            c.task_id = "campaign".into();
            c.score = Some(100 + i);
            let mut t = tag("price", &["interested"]);
            t.name = tag_name.into();
            c.tags = vec![t];
            c
        })
        .collect();
    let stored = app
        .ingest
        .upsert_calls(req(UpsertCallsRequest { calls }, key))
        .await
        .expect("upsert")
        .into_inner();
    assert_eq!(stored.inserted, 3, "each tenant has its own key space");
    app.ingest
        .upsert_task_numbers(req(
            UpsertTaskNumbersRequest {
                task_id: "campaign".into(),
                numbers: vec![TaskNumberInput {
                    phone: format!("1390013900{digit}"),
                    ..Default::default()
                }],
            },
            key,
        ))
        .await
        .expect("numbers");
    app.ingest
        .import_records(req(
            ImportRecordsRequest {
                source: Source::Laaffic.into(),
                records: vec![format!("{{\"broken {digit}")],
                task_id: String::new(),
            },
            key,
        ))
        .await
        .expect("import");
    stored.call_ids
}

fn task_filter() -> CallFilter {
    CallFilter {
        task_ids: vec!["campaign".into()],
        ..Default::default()
    }
}

async fn listed(app: &mut TestApp, key: &str) -> Vec<String> {
    let mut ids: Vec<String> = app
        .calls
        .list_calls(req(ListCallsRequest::default(), key))
        .await
        .expect("list")
        .into_inner()
        .calls
        .into_iter()
        .map(|c| c.call_id)
        .collect();
    ids.sort();
    ids
}

async fn a_tenant_sees_counts_and_pages_only_its_own_data(mut app: TestApp) {
    let (key_a, key_b) = two_tenants(&app).await;
    let mut ids_a = seed(&mut app, &key_a, '0', "A's name").await;
    let mut ids_b = seed(&mut app, &key_b, '9', "B's name").await;
    ids_a.sort();
    ids_b.sort();
    assert!(ids_a.iter().all(|id| !ids_b.contains(id)));

    // ListCalls, with a total.
    assert_eq!(listed(&mut app, &key_a).await, ids_a);
    assert_eq!(listed(&mut app, &key_b).await, ids_b);
    let total = app
        .calls
        .list_calls(req(
            ListCallsRequest {
                filter: Some(task_filter()),
                include_total: true,
                ..Default::default()
            },
            &key_b,
        ))
        .await
        .expect("list")
        .into_inner()
        .total_size;
    assert_eq!(total, 3);

    // GetCall: another tenant's id is NOT_FOUND, exactly as an unknown id.
    for id in &ids_a {
        let status = app
            .calls
            .get_call(req(
                GetCallRequest {
                    call_id: id.clone(),
                    ..Default::default()
                },
                &key_b,
            ))
            .await
            .expect_err("A's call is not B's");
        assert_eq!(status.code(), Code::NotFound);
    }
    let own = app
        .calls
        .get_call(req(
            GetCallRequest {
                call_id: ids_b[0].clone(),
                ..Default::default()
            },
            &key_b,
        ))
        .await
        .expect("B's call")
        .into_inner();
    assert_eq!(own.tags[0].name, "B's name", "tag catalogs are per tenant");

    // Stats and time series count only the tenant's calls.
    let stats = app
        .analytics
        .get_call_stats(req(
            GetCallStatsRequest {
                filter: Some(task_filter()),
                top_tags: 10,
            },
            &key_b,
        ))
        .await
        .expect("stats")
        .into_inner();
    assert_eq!(stats.total_calls, 3);
    assert_eq!(stats.by_tag.len(), 1);
    assert_eq!(stats.by_tag[0].count, 3);
    let series = app
        .analytics
        .get_call_time_series(req(
            GetCallTimeSeriesRequest {
                filter: Some(CallFilter {
                    start_time: Some(ts("2026-11-20T00:00:00Z")),
                    end_time: Some(ts("2026-11-25T00:00:00Z")),
                    ..Default::default()
                }),
                time_zone: "UTC".into(),
                ..Default::default()
            },
            &key_b,
        ))
        .await
        .expect("series")
        .into_inner();
    let bucketed: i64 = series.buckets.iter().map(|b| b.total_calls).sum();
    assert_eq!(bucketed, 3);

    // Dialing lists: B's uploaded number and the numbers B called, only.
    let numbers: Vec<String> = app
        .calls
        .list_task_numbers(req(
            ListTaskNumbersRequest {
                task_id: "campaign".into(),
                ..Default::default()
            },
            &key_b,
        ))
        .await
        .expect("numbers")
        .into_inner()
        .numbers
        .into_iter()
        .map(|n| n.phone)
        .collect();
    assert_eq!(numbers, vec!["+8613800138009", "+8613900139009"]);

    // The quarantine.
    let rejected = app
        .ingest
        .list_rejected_records(req(ListRejectedRecordsRequest::default(), &key_b))
        .await
        .expect("quarantine")
        .into_inner()
        .records;
    assert_eq!(rejected.len(), 1);
    assert!(rejected[0].payload.contains("broken 9"));

    // A page token is bound to its tenant.
    let page = app
        .calls
        .list_calls(req(
            ListCallsRequest {
                page_size: 1,
                ..Default::default()
            },
            &key_a,
        ))
        .await
        .expect("page")
        .into_inner();
    assert!(!page.next_page_token.is_empty());
    let status = app
        .calls
        .list_calls(req(
            ListCallsRequest {
                page_size: 1,
                page_token: page.next_page_token,
                ..Default::default()
            },
            &key_b,
        ))
        .await
        .expect_err("A's token is refused to B");
    assert_eq!(status.code(), Code::InvalidArgument);
}

async fn a_tenant_changes_and_erases_only_its_own_data(mut app: TestApp) {
    let (key_a, key_b) = two_tenants(&app).await;
    let ids_a = seed(&mut app, &key_a, '0', "A's name").await;
    seed(&mut app, &key_b, '9', "B's name").await;
    let mut admin = AdminServiceClient::new(app.channel.clone());

    // B renames the shared tag id: A's tag keeps its name.
    app.ingest
        .upsert_tags(req(
            UpsertTagsRequest {
                tags: vec![proto::Tag {
                    id: "price".into(),
                    name: "renamed by B".into(),
                    ..Default::default()
                }],
                tag_groups: Vec::new(),
            },
            &key_b,
        ))
        .await
        .expect("tags");
    let a_call = app
        .calls
        .get_call(req(
            GetCallRequest {
                call_id: ids_a[0].clone(),
                ..Default::default()
            },
            &key_a,
        ))
        .await
        .expect("A's call")
        .into_inner();
    assert_eq!(a_call.tags[0].name, "A's name");

    // B erases A's number: nothing of A's goes, and B has nothing to erase.
    let erased = admin
        .erase_phone(req(
            ErasePhoneRequest {
                phone: "13800138000".into(),
                validate_only: false,
            },
            &key_b,
        ))
        .await
        .expect("erase")
        .into_inner();
    assert_eq!((erased.calls, erased.task_numbers), (0, 0));
    assert_eq!(listed(&mut app, &key_a).await.len(), 3);

    // B deletes its task: A's calls of the same task stay.
    let deleted = admin
        .delete_calls(req(
            DeleteCallsRequest {
                filter: Some(task_filter()),
                validate_only: false,
            },
            &key_b,
        ))
        .await
        .expect("delete")
        .into_inner();
    assert_eq!(deleted.deleted_calls, 3);
    assert!(listed(&mut app, &key_b).await.is_empty());
    assert_eq!(listed(&mut app, &key_a).await.len(), 3);
}
