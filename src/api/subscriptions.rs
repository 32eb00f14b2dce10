//! `callscope.v1.SubscriptionService`: outgoing webhooks.

use tonic::{Request, Response, Status};

use super::ApiContext;
use super::convert::{filter_from_proto, to_timestamp};
use super::status::invalid_argument;
use crate::domain::subscription::{Delivery, EventKind, Subscription};
use crate::domain::{CallFilter, TagMatch, TimeField, Violations};
use crate::proto::{
    self, CreateSubscriptionRequest, DeleteSubscriptionRequest, DeleteSubscriptionResponse,
    ListDeliveriesRequest, ListDeliveriesResponse, ListSubscriptionsRequest,
    ListSubscriptionsResponse, subscription_service_server::SubscriptionService,
};
use crate::service::subscriptions::NewSubscription;

pub struct SubscriptionApi(pub ApiContext);

#[tonic::async_trait]
impl SubscriptionService for SubscriptionApi {
    #[tracing::instrument(skip_all)]
    async fn create_subscription(
        &self,
        request: Request<CreateSubscriptionRequest>,
    ) -> Result<Response<proto::Subscription>, Status> {
        let tenant = self.0.tenant(&request);
        let req = request.into_inner();
        let mut v = Violations::new();
        let filter = filter_from_proto(req.filter.as_ref(), "filter", self.0.region, &mut v);
        let mut kinds = Vec::new();
        for (i, code) in req.event_types.iter().enumerate() {
            match EventKind::from_code(*code) {
                Some(kind) => kinds.push(kind),
                None => v.add(
                    format!("event_types[{i}]"),
                    format!("unknown event type {code}"),
                ),
            }
        }
        if !v.is_empty() {
            return Err(invalid_argument(&v));
        }
        let new = NewSubscription {
            url: req.url,
            filter,
            kinds,
        };
        let sub = self.0.service.create_subscription(tenant, new).await?;
        Ok(Response::new(subscription_to_proto(sub)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_subscriptions(
        &self,
        request: Request<ListSubscriptionsRequest>,
    ) -> Result<Response<ListSubscriptionsResponse>, Status> {
        let tenant = self.0.tenant(&request);
        let subs = self.0.service.list_subscriptions(tenant).await?;
        Ok(Response::new(ListSubscriptionsResponse {
            subscriptions: subs.into_iter().map(subscription_to_proto).collect(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_subscription(
        &self,
        request: Request<DeleteSubscriptionRequest>,
    ) -> Result<Response<DeleteSubscriptionResponse>, Status> {
        let tenant = self.0.tenant(&request);
        let req = request.into_inner();
        self.0
            .service
            .delete_subscription(tenant, &req.subscription_id)
            .await?;
        Ok(Response::new(DeleteSubscriptionResponse {}))
    }

    #[tracing::instrument(skip_all)]
    async fn list_deliveries(
        &self,
        request: Request<ListDeliveriesRequest>,
    ) -> Result<Response<ListDeliveriesResponse>, Status> {
        let tenant = self.0.tenant(&request);
        let req = request.into_inner();
        let deliveries = self
            .0
            .service
            .list_deliveries(tenant, &req.subscription_id, req.page_size)
            .await?;
        Ok(Response::new(ListDeliveriesResponse {
            deliveries: deliveries.into_iter().map(delivery_to_proto).collect(),
        }))
    }
}

fn subscription_to_proto(s: Subscription) -> proto::Subscription {
    proto::Subscription {
        subscription_id: s.id,
        url: s.url,
        filter: Some(filter_to_proto(&s.filter)),
        event_types: s.kinds.iter().map(|k| k.code()).collect(),
        signing_secret: s.secret,
        create_time: Some(to_timestamp(s.create_time)),
        state: s.state.code(),
        last_error: s.last_error,
    }
}

fn delivery_to_proto(d: Delivery) -> proto::Delivery {
    proto::Delivery {
        event_id: d.event_id,
        event_type: d.kind.code(),
        call_id: d.call_id,
        state: d.state.code(),
        attempts: d.attempts,
        last_status_code: d.last_status,
        last_error: d.last_error,
        first_attempt_time: Some(to_timestamp(d.first_attempt_time)),
        last_attempt_time: Some(to_timestamp(d.last_attempt_time)),
        next_retry_time: d.next_retry_time.map(to_timestamp),
    }
}

/// A stored filter as the client reads it back (phone numbers normalised).
fn filter_to_proto(f: &CallFilter) -> proto::CallFilter {
    proto::CallFilter {
        task_ids: f.task_ids.clone(),
        phone: f.phone.clone().unwrap_or_default(),
        phone_contains: f.phone_contains.clone().unwrap_or_default(),
        score_ranges: f
            .score_ranges
            .iter()
            .map(|r| proto::ScoreRange {
                min: r.min,
                max: r.max,
            })
            .collect(),
        tag_ids: f.tag_ids.clone(),
        tag_match: match f.tag_match {
            TagMatch::Any => proto::TagMatch::Any as i32,
            TagMatch::All => proto::TagMatch::All as i32,
        },
        tag_group_ids: f.tag_group_ids.clone(),
        intent_level_ids: f.intent_level_ids.clone(),
        start_time: f.window.start.map(to_timestamp),
        end_time: f.window.end.map(to_timestamp),
        time_field: match f.window.field {
            TimeField::CallTime => proto::TimeField::CallTime as i32,
            TimeField::AnswerTime => proto::TimeField::AnswerTime as i32,
            TimeField::HangupTime => proto::TimeField::HangupTime as i32,
            TimeField::SyncTime => proto::TimeField::SyncTime as i32,
        },
        min_talk_ms: f.min_talk_ms,
        max_talk_ms: f.max_talk_ms,
        min_rounds: f.min_rounds,
        max_rounds: f.max_rounds,
        outcomes: f.outcomes.iter().map(|o| o.code()).collect(),
        sources: f.sources.iter().map(|s| s.code()).collect(),
        carriers: f.carriers.clone(),
        provinces: f.provinces.clone(),
        hangup_by: f.hangup_by.map_or(0, |p| p.code()),
        transcript_contains: f
            .transcript
            .as_ref()
            .map(|t| t.text.clone())
            .unwrap_or_default(),
        transcript_party: f
            .transcript
            .as_ref()
            .and_then(|t| t.party)
            .map_or(0, |p| p.code()),
        external_ids: f.external_ids.clone(),
        exclude_tag_ids: f.exclude_tag_ids.clone(),
        exclude_intent_level_ids: f.exclude_intent_level_ids.clone(),
        exclude_outcomes: f.exclude_outcomes.iter().map(|o| o.code()).collect(),
        attributes: f.attributes.clone().into_iter().collect(),
        quality_flags: f.quality_flags.clone(),
    }
}
