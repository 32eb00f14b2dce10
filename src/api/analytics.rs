//! `callscope.v1.AnalyticsService`.

use tonic::{Request, Response, Status};

use super::ApiContext;
use super::convert::{filter_from_proto, to_timestamp};
use super::status::invalid_argument;
use crate::domain::Violations;
use crate::domain::stats::{self, Granularity};
use crate::proto::{
    self, CallStats, GetCallStatsRequest, GetCallTimeSeriesRequest, GetCallTimeSeriesResponse,
    analytics_service_server::AnalyticsService,
};
use crate::service::analytics::top_tags;

pub struct AnalyticsApi(pub ApiContext);

#[tonic::async_trait]
impl AnalyticsService for AnalyticsApi {
    #[tracing::instrument(skip_all, fields(top_tags = request.get_ref().top_tags))]
    async fn get_call_stats(
        &self,
        request: Request<GetCallStatsRequest>,
    ) -> Result<Response<CallStats>, Status> {
        let tenant = self.0.tenant(&request);
        let req = request.into_inner();
        let mut v = Violations::new();
        let filter = filter_from_proto(req.filter.as_ref(), "filter", self.0.region, &mut v);
        let top = top_tags(req.top_tags).unwrap_or_else(|e| {
            v.add("top_tags", e);
            0
        });
        if !v.is_empty() {
            return Err(invalid_argument(&v));
        }
        let stats = self.0.service.call_stats(tenant, &filter, top).await?;
        Ok(Response::new(stats_to_proto(stats)))
    }

    #[tracing::instrument(skip_all, fields(granularity = request.get_ref().granularity, time_zone = %request.get_ref().time_zone))]
    async fn get_call_time_series(
        &self,
        request: Request<GetCallTimeSeriesRequest>,
    ) -> Result<Response<GetCallTimeSeriesResponse>, Status> {
        let tenant = self.0.tenant(&request);
        let req = request.into_inner();
        let mut v = Violations::new();
        let filter = filter_from_proto(req.filter.as_ref(), "filter", self.0.region, &mut v);
        let granularity = granularity_from_proto(req.granularity, &mut v);
        if !v.is_empty() {
            return Err(invalid_argument(&v));
        }
        let buckets = self
            .0
            .service
            .call_time_series(tenant, &filter, granularity, &req.time_zone)
            .await?;
        Ok(Response::new(GetCallTimeSeriesResponse {
            buckets: buckets.into_iter().map(bucket_to_proto).collect(),
        }))
    }
}

/// `GRANULARITY_UNSPECIFIED` is served as days.
fn granularity_from_proto(code: i32, v: &mut Violations) -> Granularity {
    match proto::Granularity::try_from(code) {
        Ok(proto::Granularity::Hour) => Granularity::Hour,
        Ok(proto::Granularity::Day | proto::Granularity::Unspecified) => Granularity::Day,
        Err(_) => {
            v.add("granularity", format!("unknown enum value {code}"));
            Granularity::Day
        }
    }
}

fn entries(list: Vec<stats::CountEntry>) -> Vec<proto::CountEntry> {
    list.into_iter()
        .map(|e| proto::CountEntry {
            key: e.key,
            name: e.name,
            count: e.count,
        })
        .collect()
}

fn stats_to_proto(s: stats::CallStats) -> CallStats {
    CallStats {
        total_calls: s.total_calls,
        answered_calls: s.answered_calls,
        answer_rate: s.answer_rate,
        talk_ms_total: s.talk_ms_total,
        talk_ms_avg: s.talk_ms_avg,
        talk_ms_p50: s.talk_ms_p50,
        talk_ms_p90: s.talk_ms_p90,
        ring_ms_avg: s.ring_ms_avg,
        rounds_avg: s.rounds_avg,
        score_avg: s.score_avg,
        by_outcome: entries(s.by_outcome),
        by_intent_level: entries(s.by_intent_level),
        by_tag: entries(s.by_tag),
        by_hangup_party: entries(s.by_hangup_party),
        by_carrier: entries(s.by_carrier),
        by_province: entries(s.by_province),
        cost_totals: s
            .cost_totals
            .into_iter()
            .map(|m| proto::MoneyTotal {
                currency: m.currency,
                amount: m.amount,
            })
            .collect(),
    }
}

fn bucket_to_proto(b: stats::TimeBucket) -> proto::TimeBucket {
    proto::TimeBucket {
        start_time: Some(to_timestamp(b.start)),
        total_calls: b.total_calls,
        answered_calls: b.answered_calls,
        answer_rate: b.answer_rate,
        talk_ms_total: b.talk_ms_total,
        talk_ms_avg: b.talk_ms_avg,
        score_avg: b.score_avg,
    }
}
