//! `callscope.v1.IngestService`.

use tonic::{Request, Response, Status};

use super::ApiContext;
use super::convert;
use crate::proto::{
    ImportRecordsRequest, ImportRecordsResponse, ListRejectedRecordsRequest,
    ListRejectedRecordsResponse, UpsertCallsRequest, UpsertCallsResponse,
    UpsertIntentLevelsRequest, UpsertIntentLevelsResponse, UpsertTagsRequest, UpsertTagsResponse,
    UpsertTaskNumbersRequest, UpsertTaskNumbersResponse, UpsertTasksRequest, UpsertTasksResponse,
    ingest_service_server::IngestService,
};
use crate::service::ingest::Channel;

pub struct IngestApi(pub ApiContext);

#[tonic::async_trait]
impl IngestService for IngestApi {
    #[tracing::instrument(skip_all, fields(calls = request.get_ref().calls.len()))]
    async fn upsert_calls(
        &self,
        request: Request<UpsertCallsRequest>,
    ) -> Result<Response<UpsertCallsResponse>, Status> {
        let (tenant, req) = (self.0.tenant(&request), request.get_ref());
        let calls = convert::upsert_calls_request(req, self.0.region)?;
        let results = self.0.service.upsert_calls(tenant, &calls).await?;
        Ok(Response::new(convert::upsert_calls_response(results)))
    }

    #[tracing::instrument(skip_all, fields(source = request.get_ref().source, records = request.get_ref().records.len()))]
    async fn import_records(
        &self,
        request: Request<ImportRecordsRequest>,
    ) -> Result<Response<ImportRecordsResponse>, Status> {
        let (tenant, req) = (self.0.tenant(&request), request.get_ref());
        let r = convert::import_records_request(req)?;
        let results = (self.0.service)
            .import_records(tenant, r.source, Channel::Grpc, &r.records, Some(r.task_id))
            .await?;
        Ok(Response::new(convert::import_records_response(results)))
    }

    #[tracing::instrument(skip_all, fields(source = request.get_ref().source, page_size = request.get_ref().page_size))]
    async fn list_rejected_records(
        &self,
        request: Request<ListRejectedRecordsRequest>,
    ) -> Result<Response<ListRejectedRecordsResponse>, Status> {
        let (tenant, req) = (self.0.tenant(&request), request.get_ref());
        let (source, size) = convert::list_rejected_request(req)?;
        let page = (self.0.service)
            .list_rejected(tenant, source, size, &req.page_token)
            .await?;
        Ok(Response::new(convert::list_rejected_response(page)))
    }

    #[tracing::instrument(skip_all, fields(tasks = request.get_ref().tasks.len()))]
    async fn upsert_tasks(
        &self,
        request: Request<UpsertTasksRequest>,
    ) -> Result<Response<UpsertTasksResponse>, Status> {
        let (tenant, req) = (self.0.tenant(&request), request.get_ref());
        let tasks = convert::upsert_tasks_request(req)?;
        self.0.service.upsert_tasks(tenant, &tasks).await?;
        let upserted = tasks.len() as i32;
        Ok(Response::new(UpsertTasksResponse { upserted }))
    }

    #[tracing::instrument(skip_all, fields(tags = request.get_ref().tags.len(), tag_groups = request.get_ref().tag_groups.len()))]
    async fn upsert_tags(
        &self,
        request: Request<UpsertTagsRequest>,
    ) -> Result<Response<UpsertTagsResponse>, Status> {
        let (tenant, req) = (self.0.tenant(&request), request.get_ref());
        let (tags, groups) = convert::upsert_tags_request(req)?;
        self.0.service.upsert_tags(tenant, &tags, &groups).await?;
        Ok(Response::new(UpsertTagsResponse {
            tags_upserted: tags.len() as i32,
            tag_groups_upserted: groups.len() as i32,
        }))
    }

    #[tracing::instrument(skip_all, fields(intent_levels = request.get_ref().intent_levels.len()))]
    async fn upsert_intent_levels(
        &self,
        request: Request<UpsertIntentLevelsRequest>,
    ) -> Result<Response<UpsertIntentLevelsResponse>, Status> {
        let (tenant, req) = (self.0.tenant(&request), request.get_ref());
        let levels = convert::upsert_intent_levels_request(req)?;
        self.0.service.upsert_intent_levels(tenant, &levels).await?;
        let upserted = levels.len() as i32;
        Ok(Response::new(UpsertIntentLevelsResponse { upserted }))
    }

    #[tracing::instrument(skip_all, fields(task_id = %crate::domain::limits::clip(&request.get_ref().task_id, 64), numbers = request.get_ref().numbers.len()))]
    async fn upsert_task_numbers(
        &self,
        request: Request<UpsertTaskNumbersRequest>,
    ) -> Result<Response<UpsertTaskNumbersResponse>, Status> {
        let (tenant, req) = (self.0.tenant(&request), request.get_ref());
        let (task_id, entries) = convert::upsert_task_numbers_request(req, self.0.region)?;
        let result = (self.0.service)
            .upsert_task_numbers(tenant, &task_id, &entries)
            .await?;
        Ok(Response::new(convert::upsert_task_numbers_response(result)))
    }
}
