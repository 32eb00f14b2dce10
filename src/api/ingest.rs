//! `callscope.v1.IngestService`.

use tonic::{Request, Response, Status};

use super::ApiContext;
use super::convert::to_timestamp;
use super::convert::{
    call_from_proto, intent_level_from_proto, tag_from_proto, tag_group_from_proto, task_from_proto,
};
use super::status::invalid_argument;
use crate::domain::{NUL_DESCRIPTION, Source, UpsertOutcome, Violations, nul_fields};
use crate::proto::{ImportRecordResult, RejectedRecord};
use crate::proto::{
    ImportRecordsRequest, ImportRecordsResponse, ListRejectedRecordsRequest,
    ListRejectedRecordsResponse, RecordOutcome, UpsertCallsRequest, UpsertCallsResponse,
    UpsertIntentLevelsRequest, UpsertIntentLevelsResponse, UpsertTagsRequest, UpsertTagsResponse,
    UpsertTaskNumbersRequest, UpsertTaskNumbersResponse, UpsertTasksRequest, UpsertTasksResponse,
    ingest_service_server::IngestService,
};
use crate::service::MAX_BATCH;
use crate::service::ingest::{Channel, RecordOutcome as ImportOutcome};

pub struct IngestApi(pub ApiContext);

/// Validates each item of a repeated field, naming violations `{field}[i]`,
/// including text the database cannot store.
fn convert_all<P, D: serde::Serialize>(
    items: &[P],
    field: &str,
    v: &mut Violations,
    convert: impl Fn(&P, &str, &mut Violations) -> D,
) -> Vec<D> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("{field}[{i}]");
            let converted = convert(item, &path, v);
            for bad in nul_fields(&converted) {
                let field = format!("{path}.{bad}");
                // Short texts were already checked by name during conversion.
                if !v.0.iter().any(|known| known.field == field) {
                    v.add(field, NUL_DESCRIPTION);
                }
            }
            converted
        })
        .collect()
}

/// A vendor source from its wire number; SOURCE_API and unknown numbers are refused.
fn vendor_source(code: i32, field: &str) -> Result<Source, Status> {
    match Source::from_code(code) {
        Some(source) if source != Source::Api => Ok(source),
        _ => Err(invalid_argument(&Violations::one(
            field,
            "must be SOURCE_SMARTIVR, SOURCE_LAAFFIC or SOURCE_ALIBABA_LVMS",
        ))),
    }
}

fn check(v: Violations) -> Result<(), Status> {
    if v.is_empty() {
        Ok(())
    } else {
        Err(invalid_argument(&v))
    }
}

#[tonic::async_trait]
impl IngestService for IngestApi {
    #[tracing::instrument(skip_all, fields(calls = request.get_ref().calls.len()))]
    async fn upsert_calls(
        &self,
        request: Request<UpsertCallsRequest>,
    ) -> Result<Response<UpsertCallsResponse>, Status> {
        let tenant = self.0.tenant(&request);
        let req = request.into_inner();
        let mut v = Violations::new();
        if req.calls.len() > MAX_BATCH {
            v.add("calls", format!("at most {MAX_BATCH} calls per request"));
            return Err(invalid_argument(&v));
        }
        let region = self.0.region;
        let calls = convert_all(&req.calls, "calls", &mut v, |c, path, v| {
            call_from_proto(c, path, region, v)
        });
        check(v)?;
        let results = self.0.service.upsert_calls(tenant, &calls).await?;
        let mut response = UpsertCallsResponse::default();
        for result in results {
            let outcome = match result.outcome {
                UpsertOutcome::Inserted => {
                    response.inserted += 1;
                    RecordOutcome::Inserted
                }
                UpsertOutcome::Updated => {
                    response.updated += 1;
                    RecordOutcome::Updated
                }
                UpsertOutcome::Unchanged => {
                    response.unchanged += 1;
                    RecordOutcome::Unchanged
                }
                UpsertOutcome::Erased => {
                    response.erased += 1;
                    RecordOutcome::Erased
                }
            };
            response.call_ids.push(result.call_id);
            response.outcomes.push(outcome.into());
        }
        Ok(Response::new(response))
    }

    #[tracing::instrument(skip_all, fields(source = request.get_ref().source, records = request.get_ref().records.len()))]
    async fn import_records(
        &self,
        request: Request<ImportRecordsRequest>,
    ) -> Result<Response<ImportRecordsResponse>, Status> {
        let tenant = self.0.tenant(&request);
        let req = request.into_inner();
        let source = vendor_source(req.source, "source")?;
        let records: Vec<&[u8]> = req.records.iter().map(|r| r.as_bytes()).collect();
        let results = self
            .0
            .service
            .import_records(
                tenant,
                source,
                Channel::Grpc,
                &records,
                Some(req.task_id.trim()),
            )
            .await?;
        let mut response = ImportRecordsResponse::default();
        for (index, result) in results.into_iter().enumerate() {
            let outcome = match result.outcome {
                ImportOutcome::Inserted => {
                    response.inserted += 1;
                    RecordOutcome::Inserted
                }
                ImportOutcome::Updated => {
                    response.updated += 1;
                    RecordOutcome::Updated
                }
                ImportOutcome::Unchanged => {
                    response.unchanged += 1;
                    RecordOutcome::Unchanged
                }
                ImportOutcome::Rejected => {
                    response.rejected += 1;
                    RecordOutcome::Rejected
                }
                ImportOutcome::Erased => {
                    response.erased += 1;
                    RecordOutcome::Erased
                }
            };
            response.results.push(ImportRecordResult {
                index: index as i32,
                outcome: outcome.into(),
                call_ids: result.call_ids,
                reason: result.reason,
                rejected_record_id: result.rejected_id.unwrap_or_default(),
            });
        }
        Ok(Response::new(response))
    }

    async fn list_rejected_records(
        &self,
        request: Request<ListRejectedRecordsRequest>,
    ) -> Result<Response<ListRejectedRecordsResponse>, Status> {
        let tenant = self.0.tenant(&request);
        let req = request.into_inner();
        let source = match req.source {
            0 => None,
            code => Some(vendor_source(code, "source")?),
        };
        let (records, next_page_token) = self
            .0
            .service
            .list_rejected(tenant, source, req.page_size, &req.page_token)
            .await?;
        Ok(Response::new(ListRejectedRecordsResponse {
            records: records
                .into_iter()
                .map(|r| RejectedRecord {
                    id: r.id,
                    source: r.source.map_or(0, |s| s.code()),
                    reason: r.reason,
                    payload: String::from_utf8_lossy(&r.payload).into_owned(),
                    receive_time: Some(to_timestamp(r.receive_time)),
                    channel: r.channel,
                    payload_size: r.payload_size,
                })
                .collect(),
            next_page_token,
        }))
    }

    async fn upsert_tasks(
        &self,
        request: Request<UpsertTasksRequest>,
    ) -> Result<Response<UpsertTasksResponse>, Status> {
        let tenant = self.0.tenant(&request);
        let req = request.into_inner();
        let mut v = Violations::new();
        let tasks = convert_all(&req.tasks, "tasks", &mut v, task_from_proto);
        check(v)?;
        self.0.service.upsert_tasks(tenant, &tasks).await?;
        Ok(Response::new(UpsertTasksResponse {
            upserted: tasks.len() as i32,
        }))
    }

    async fn upsert_tags(
        &self,
        request: Request<UpsertTagsRequest>,
    ) -> Result<Response<UpsertTagsResponse>, Status> {
        let tenant = self.0.tenant(&request);
        let req = request.into_inner();
        let mut v = Violations::new();
        let tags = convert_all(&req.tags, "tags", &mut v, tag_from_proto);
        let groups = convert_all(&req.tag_groups, "tag_groups", &mut v, tag_group_from_proto);
        check(v)?;
        self.0.service.upsert_tags(tenant, &tags, &groups).await?;
        Ok(Response::new(UpsertTagsResponse {
            tags_upserted: tags.len() as i32,
            tag_groups_upserted: groups.len() as i32,
        }))
    }

    async fn upsert_intent_levels(
        &self,
        request: Request<UpsertIntentLevelsRequest>,
    ) -> Result<Response<UpsertIntentLevelsResponse>, Status> {
        let tenant = self.0.tenant(&request);
        let req = request.into_inner();
        let mut v = Violations::new();
        let levels = convert_all(
            &req.intent_levels,
            "intent_levels",
            &mut v,
            intent_level_from_proto,
        );
        check(v)?;
        self.0.service.upsert_intent_levels(tenant, &levels).await?;
        Ok(Response::new(UpsertIntentLevelsResponse {
            upserted: levels.len() as i32,
        }))
    }

    async fn upsert_task_numbers(
        &self,
        request: Request<UpsertTaskNumbersRequest>,
    ) -> Result<Response<UpsertTaskNumbersResponse>, Status> {
        super::task_numbers::upsert_task_numbers(&self.0, request).await
    }
}
