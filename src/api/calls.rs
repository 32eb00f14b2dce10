//! `callscope.v1.CallService`.

use tonic::{Request, Response, Status};

use super::ApiContext;
use super::convert;
use crate::proto::{
    self, GetCallRequest, ListCallsRequest, ListCallsResponse, ListTaskNumbersRequest,
    ListTaskNumbersResponse, call_service_server::CallService,
};

pub struct CallApi(pub ApiContext);

#[tonic::async_trait]
impl CallService for CallApi {
    #[tracing::instrument(skip_all, fields(page_size = request.get_ref().page_size, with_token = !request.get_ref().page_token.is_empty()))]
    async fn list_calls(
        &self,
        request: Request<ListCallsRequest>,
    ) -> Result<Response<ListCallsResponse>, Status> {
        let (tenant, req) = (self.0.tenant(&request), request.get_ref());
        let query = convert::list_calls_request(req, self.0.region)?;
        let page = self
            .0
            .service
            .list_calls(tenant, query, &req.page_token)
            .await?;
        Ok(Response::new(convert::list_calls_response(page)))
    }

    #[tracing::instrument(skip_all, fields(call_id = %crate::domain::limits::clip(&request.get_ref().call_id, 64)))]
    async fn get_call(
        &self,
        request: Request<GetCallRequest>,
    ) -> Result<Response<proto::Call>, Status> {
        let (tenant, req) = (self.0.tenant(&request), request.get_ref());
        let call_ref = convert::get_call_request(req)?;
        let call = (self.0.service)
            .get_call_by(tenant, call_ref, req.include_progress_turns)
            .await?;
        Ok(Response::new(convert::call_to_proto(call)))
    }

    #[tracing::instrument(skip_all, fields(task_id = %crate::domain::limits::clip(&request.get_ref().task_id, 64), page_size = request.get_ref().page_size))]
    async fn list_task_numbers(
        &self,
        request: Request<ListTaskNumbersRequest>,
    ) -> Result<Response<ListTaskNumbersResponse>, Status> {
        let (tenant, req) = (self.0.tenant(&request), request.get_ref());
        let query = convert::list_task_numbers_request(req, self.0.region)?;
        let page = (self.0.service)
            .list_task_numbers(tenant, query, &req.page_token)
            .await?;
        Ok(Response::new(convert::list_task_numbers_response(page)))
    }
}
