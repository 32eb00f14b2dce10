//! `callscope.v1.IngestService`.

use tonic::{Request, Response, Status};

use super::ApiContext;
use super::convert::{
    call_from_proto, intent_level_from_proto, tag_from_proto, tag_group_from_proto, task_from_proto,
};
use super::status::invalid_argument;
use crate::domain::{UpsertOutcome, Violations};
use crate::proto::{
    ImportRecordsRequest, ImportRecordsResponse, ListRejectedRecordsRequest,
    ListRejectedRecordsResponse, RecordOutcome, UpsertCallsRequest, UpsertCallsResponse,
    UpsertIntentLevelsRequest, UpsertIntentLevelsResponse, UpsertTagsRequest, UpsertTagsResponse,
    UpsertTaskNumbersRequest, UpsertTaskNumbersResponse, UpsertTasksRequest, UpsertTasksResponse,
    ingest_service_server::IngestService,
};
use crate::service::MAX_BATCH;

pub struct IngestApi(pub ApiContext);

/// Validates each item of a repeated field, naming violations `{field}[i]`.
fn convert_all<P, D>(
    items: &[P],
    field: &str,
    v: &mut Violations,
    convert: impl Fn(&P, &str, &mut Violations) -> D,
) -> Vec<D> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| convert(item, &format!("{field}[{i}]"), v))
        .collect()
}

fn check(v: Violations) -> Result<(), Status> {
    if v.is_empty() {
        Ok(())
    } else {
        Err(invalid_argument(&v))
    }
}

#[tonic::async_trait]
impl IngestService for IngestApi {
    #[tracing::instrument(skip_all, fields(calls = request.get_ref().calls.len()))]
    async fn upsert_calls(
        &self,
        request: Request<UpsertCallsRequest>,
    ) -> Result<Response<UpsertCallsResponse>, Status> {
        let tenant = self.0.tenant(&request);
        let req = request.into_inner();
        let mut v = Violations::new();
        if req.calls.len() > MAX_BATCH {
            v.add("calls", format!("at most {MAX_BATCH} calls per request"));
            return Err(invalid_argument(&v));
        }
        let region = self.0.region;
        let calls = convert_all(&req.calls, "calls", &mut v, |c, path, v| {
            call_from_proto(c, path, region, v)
        });
        check(v)?;
        let results = self.0.service.upsert_calls(tenant, &calls).await?;
        let mut response = UpsertCallsResponse::default();
        for result in results {
            let outcome = match result.outcome {
                UpsertOutcome::Inserted => {
                    response.inserted += 1;
                    RecordOutcome::Inserted
                }
                UpsertOutcome::Updated => {
                    response.updated += 1;
                    RecordOutcome::Updated
                }
                UpsertOutcome::Unchanged => {
                    response.unchanged += 1;
                    RecordOutcome::Unchanged
                }
            };
            response.call_ids.push(result.call_id);
            response.outcomes.push(outcome.into());
        }
        Ok(Response::new(response))
    }

    async fn import_records(
        &self,
        _request: Request<ImportRecordsRequest>,
    ) -> Result<Response<ImportRecordsResponse>, Status> {
        Err(Status::unimplemented(
            "ImportRecords arrives with the vendor-sync work",
        ))
    }

    async fn list_rejected_records(
        &self,
        _request: Request<ListRejectedRecordsRequest>,
    ) -> Result<Response<ListRejectedRecordsResponse>, Status> {
        Err(Status::unimplemented(
            "ListRejectedRecords arrives with the vendor-sync work",
        ))
    }

    async fn upsert_tasks(
        &self,
        request: Request<UpsertTasksRequest>,
    ) -> Result<Response<UpsertTasksResponse>, Status> {
        let tenant = self.0.tenant(&request);
        let req = request.into_inner();
        let mut v = Violations::new();
        let tasks = convert_all(&req.tasks, "tasks", &mut v, task_from_proto);
        check(v)?;
        self.0.service.upsert_tasks(tenant, &tasks).await?;
        Ok(Response::new(UpsertTasksResponse {
            upserted: tasks.len() as i32,
        }))
    }

    async fn upsert_tags(
        &self,
        request: Request<UpsertTagsRequest>,
    ) -> Result<Response<UpsertTagsResponse>, Status> {
        let tenant = self.0.tenant(&request);
        let req = request.into_inner();
        let mut v = Violations::new();
        let tags = convert_all(&req.tags, "tags", &mut v, tag_from_proto);
        let groups = convert_all(&req.tag_groups, "tag_groups", &mut v, tag_group_from_proto);
        check(v)?;
        self.0.service.upsert_tags(tenant, &tags, &groups).await?;
        Ok(Response::new(UpsertTagsResponse {
            tags_upserted: tags.len() as i32,
            tag_groups_upserted: groups.len() as i32,
        }))
    }

    async fn upsert_intent_levels(
        &self,
        request: Request<UpsertIntentLevelsRequest>,
    ) -> Result<Response<UpsertIntentLevelsResponse>, Status> {
        let tenant = self.0.tenant(&request);
        let req = request.into_inner();
        let mut v = Violations::new();
        let levels = convert_all(
            &req.intent_levels,
            "intent_levels",
            &mut v,
            intent_level_from_proto,
        );
        check(v)?;
        self.0.service.upsert_intent_levels(tenant, &levels).await?;
        Ok(Response::new(UpsertIntentLevelsResponse {
            upserted: levels.len() as i32,
        }))
    }

    async fn upsert_task_numbers(
        &self,
        request: Request<UpsertTaskNumbersRequest>,
    ) -> Result<Response<UpsertTaskNumbersResponse>, Status> {
        super::task_numbers::upsert_task_numbers(&self.0, request).await
    }
}
