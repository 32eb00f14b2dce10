//! `callscope.v1.AnalyticsService`.

use tonic::{Request, Response, Status};

use super::ApiContext;
use super::convert;
use crate::proto::{
    CallStats, GetCallStatsRequest, GetCallTimeSeriesRequest, GetCallTimeSeriesResponse,
    analytics_service_server::AnalyticsService,
};

pub struct AnalyticsApi(pub ApiContext);

#[tonic::async_trait]
impl AnalyticsService for AnalyticsApi {
    #[tracing::instrument(skip_all, fields(top_tags = request.get_ref().top_tags))]
    async fn get_call_stats(
        &self,
        request: Request<GetCallStatsRequest>,
    ) -> Result<Response<CallStats>, Status> {
        let (tenant, req) = (self.0.tenant(&request), request.get_ref());
        let (filter, top) = convert::call_stats_request(req, self.0.region)?;
        let stats = self.0.service.call_stats(tenant, &filter, top).await?;
        Ok(Response::new(convert::call_stats_response(stats)))
    }

    #[tracing::instrument(skip_all, fields(granularity = request.get_ref().granularity, time_zone = %crate::domain::limits::clip(&request.get_ref().time_zone, 64)))]
    async fn get_call_time_series(
        &self,
        request: Request<GetCallTimeSeriesRequest>,
    ) -> Result<Response<GetCallTimeSeriesResponse>, Status> {
        let (tenant, req) = (self.0.tenant(&request), request.get_ref());
        let (filter, granularity, zone) = convert::time_series_request(req, self.0.region)?;
        let buckets = (self.0.service)
            .call_time_series(tenant, &filter, granularity, zone)
            .await?;
        Ok(Response::new(convert::time_series_response(buckets)))
    }
}
