//! `callscope.v1.CatalogService`.

use tonic::{Request, Response, Status};

use super::ApiContext;
use super::convert;
use crate::proto::{
    self, GetTaskRequest, ListIntentLevelsRequest, ListIntentLevelsResponse, ListTagsRequest,
    ListTagsResponse, ListTasksRequest, ListTasksResponse, catalog_service_server::CatalogService,
};

pub struct CatalogApi(pub ApiContext);

#[tonic::async_trait]
impl CatalogService for CatalogApi {
    #[tracing::instrument(skip_all, fields(page_size = request.get_ref().page_size, with_token = !request.get_ref().page_token.is_empty()))]
    async fn list_tasks(
        &self,
        request: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksResponse>, Status> {
        let (tenant, req) = (self.0.tenant(&request), request.get_ref());
        let page_size = convert::list_tasks_request(req)?;
        let page = (self.0.service)
            .list_tasks(tenant, &req.name_contains, page_size, &req.page_token)
            .await?;
        Ok(Response::new(convert::list_tasks_response(page)))
    }

    #[tracing::instrument(skip_all, fields(task_id = %crate::domain::limits::clip(&request.get_ref().task_id, 64)))]
    async fn get_task(
        &self,
        request: Request<GetTaskRequest>,
    ) -> Result<Response<proto::Task>, Status> {
        let (tenant, req) = (self.0.tenant(&request), request.get_ref());
        let (task, progress) = self.0.service.get_task(tenant, &req.task_id).await?;
        Ok(Response::new(convert::task_to_proto(task, Some(progress))))
    }

    #[tracing::instrument(skip_all)]
    async fn list_tags(
        &self,
        request: Request<ListTagsRequest>,
    ) -> Result<Response<ListTagsResponse>, Status> {
        let tenant = self.0.tenant(&request);
        let catalog = self.0.service.list_tags(tenant).await?;
        Ok(Response::new(convert::list_tags_response(catalog)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_intent_levels(
        &self,
        request: Request<ListIntentLevelsRequest>,
    ) -> Result<Response<ListIntentLevelsResponse>, Status> {
        let tenant = self.0.tenant(&request);
        let levels = self.0.service.list_intent_levels(tenant).await?;
        Ok(Response::new(convert::list_intent_levels_response(levels)))
    }
}
