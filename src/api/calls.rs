//! `callscope.v1.CallService`.

use tonic::{Request, Response, Status};

use super::ApiContext;
use super::convert::{call_to_proto, filter_from_proto, order_from_proto};
use super::status::invalid_argument;
use crate::domain::{CallQuery, Violations, page_size};
use crate::proto::{
    self, GetCallRequest, ListCallsRequest, ListCallsResponse, ListTaskNumbersRequest,
    ListTaskNumbersResponse, call_service_server::CallService,
};

pub struct CallApi(pub ApiContext);

#[tonic::async_trait]
impl CallService for CallApi {
    #[tracing::instrument(skip_all, fields(page_size = request.get_ref().page_size))]
    async fn list_calls(
        &self,
        request: Request<ListCallsRequest>,
    ) -> Result<Response<ListCallsResponse>, Status> {
        let tenant = self.0.tenant(&request);
        let req = request.into_inner();
        let mut v = Violations::new();
        let filter = filter_from_proto(req.filter.as_ref(), "filter", self.0.region, &mut v);
        let order = order_from_proto(req.order_by, "order_by", &mut v);
        let size = page_size(req.page_size).unwrap_or_else(|e| {
            v.add("page_size", e);
            0
        });
        if !v.is_empty() {
            return Err(invalid_argument(&v));
        }
        let query = CallQuery {
            filter,
            order,
            page_size: size,
            after: None,
            include_total: req.include_total,
        };
        let page = self
            .0
            .service
            .list_calls(tenant, query, &req.page_token)
            .await?;
        Ok(Response::new(ListCallsResponse {
            calls: page.calls.into_iter().map(call_to_proto).collect(),
            next_page_token: page.next_page_token,
            total_size: page.total.unwrap_or(0),
        }))
    }

    #[tracing::instrument(skip_all, fields(call_id = %request.get_ref().call_id))]
    async fn get_call(
        &self,
        request: Request<GetCallRequest>,
    ) -> Result<Response<proto::Call>, Status> {
        let tenant = self.0.tenant(&request);
        let req = request.into_inner();
        let call = self
            .0
            .service
            .get_call(tenant, req.call_id.trim(), req.include_progress_turns)
            .await?;
        Ok(Response::new(call_to_proto(call)))
    }

    async fn list_task_numbers(
        &self,
        request: Request<ListTaskNumbersRequest>,
    ) -> Result<Response<ListTaskNumbersResponse>, Status> {
        super::task_numbers::list_task_numbers(&self.0, request).await
    }
}
