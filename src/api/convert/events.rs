//! ExportCalls and WatchCalls messages, and the event log's `CallEvent`
//! (shared with the webhooks and the NATS sink).

use crate::domain::event::CallEvent;
use crate::proto;
use crate::service::events::{ExportPage, WatchedEvent};

use super::{call_to_proto, to_timestamp};

/// A logged event as delivered, with the token that resumes after it.
pub fn event_to_proto(event: CallEvent, resume_token: String) -> proto::CallEvent {
    proto::CallEvent {
        event_id: event.event_id(),
        r#type: event.kind.code(),
        event_time: Some(to_timestamp(event.event_time)),
        call: Some(call_to_proto(event.call)),
        resume_token,
    }
}

pub fn watched_event_to_proto(watched: WatchedEvent) -> proto::CallEvent {
    event_to_proto(watched.event, watched.resume_token)
}

pub fn export_page_to_proto(page: ExportPage) -> proto::ExportCallsResponse {
    proto::ExportCallsResponse {
        calls: page.calls.into_iter().map(call_to_proto).collect(),
        resume_token: page.resume_token,
    }
}
