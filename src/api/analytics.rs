//! `callscope.v1.AnalyticsService`.

use tonic::{Request, Response, Status};

use super::ApiContext;
use crate::proto::{
    CallStats, GetCallStatsRequest, GetCallTimeSeriesRequest, GetCallTimeSeriesResponse,
    analytics_service_server::AnalyticsService,
};

pub struct AnalyticsApi(pub ApiContext);

#[tonic::async_trait]
impl AnalyticsService for AnalyticsApi {
    async fn get_call_stats(
        &self,
        _request: Request<GetCallStatsRequest>,
    ) -> Result<Response<CallStats>, Status> {
        Err(Status::unimplemented("GetCallStats is not implemented yet"))
    }

    async fn get_call_time_series(
        &self,
        _request: Request<GetCallTimeSeriesRequest>,
    ) -> Result<Response<GetCallTimeSeriesResponse>, Status> {
        Err(Status::unimplemented(
            "GetCallTimeSeries is not implemented yet",
        ))
    }
}
