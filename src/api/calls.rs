//! `callscope.v1.CallService`.

use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::ApiContext;
use super::convert;
use crate::proto::{
    self, ExportCallsRequest, ExportCallsResponse, GetCallRequest, ListCallsRequest,
    ListCallsResponse, ListTaskNumbersRequest, ListTaskNumbersResponse, WatchCallsRequest,
    call_service_server::CallService,
};

pub struct CallApi(pub ApiContext);

/// A server stream as tonic wants it.
type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The client's deadline (`grpc-timeout`): tonic applies it only until the
/// response headers, so a stream enforces it itself.
fn deadline<T>(request: &Request<T>) -> Option<tokio::time::Instant> {
    let value = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    let timeout = match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    };
    tokio::time::Instant::now().checked_add(timeout)
}

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
        let call = (self.0.service)
            .get_call(tenant, req.call_id.trim(), req.include_progress_turns)
            .await?;
        Ok(Response::new(convert::call_to_proto(call)))
    }

    type ExportCallsStream = Streamed<ExportCallsResponse>;

    #[tracing::instrument(skip_all, fields(with_token = !request.get_ref().resume_token.is_empty()))]
    async fn export_calls(
        &self,
        request: Request<ExportCallsRequest>,
    ) -> Result<Response<Self::ExportCallsStream>, Status> {
        let (tenant, req) = (self.0.tenant(&request), request.get_ref());
        let filter = convert::stream_filter(req.filter.as_ref(), self.0.region)?;
        let feed = self.0.service.export_calls(
            tenant,
            filter,
            &req.resume_token,
            req.include_turns,
            deadline(&request),
        )?;
        let stream = feed.map(|item| {
            item.map(convert::export_page_to_proto)
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    type WatchCallsStream = Streamed<proto::CallEvent>;

    #[tracing::instrument(skip_all, fields(with_token = !request.get_ref().resume_token.is_empty()))]
    async fn watch_calls(
        &self,
        request: Request<WatchCallsRequest>,
    ) -> Result<Response<Self::WatchCallsStream>, Status> {
        let (tenant, req) = (self.0.tenant(&request), request.get_ref());
        let filter = convert::stream_filter(req.filter.as_ref(), self.0.region)?;
        let feed = (self.0.service)
            .watch_calls(tenant, filter, &req.resume_token, deadline(&request))
            .await?;
        let stream = feed.map(|item| {
            item.map(convert::watched_event_to_proto)
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
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
