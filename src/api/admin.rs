//! `callscope.v1.AdminService`.

use tonic::{Request, Response, Status};

use super::ApiContext;
use super::convert::filter_from_proto;
use super::status::invalid_argument;
use crate::domain::{Violations, normalize_phone};
use crate::proto::{
    DeleteCallsRequest, DeleteCallsResponse, ErasePhoneRequest, ErasePhoneResponse,
    admin_service_server::AdminService,
};
use crate::service::admin::Actor;

pub struct AdminApi(pub ApiContext);

#[tonic::async_trait]
impl AdminService for AdminApi {
    #[tracing::instrument(skip_all, fields(validate_only = request.get_ref().validate_only))]
    async fn delete_calls(
        &self,
        request: Request<DeleteCallsRequest>,
    ) -> Result<Response<DeleteCallsResponse>, Status> {
        let actor = Actor {
            tenant: self.0.tenant(&request),
            key_id: None,
        };
        let req = request.into_inner();
        let mut v = Violations::new();
        let filter = filter_from_proto(req.filter.as_ref(), "filter", self.0.region, &mut v);
        if !v.is_empty() {
            return Err(invalid_argument(&v));
        }
        let deleted_calls = self
            .0
            .service
            .delete_calls(actor, &filter, req.validate_only)
            .await?;
        Ok(Response::new(DeleteCallsResponse { deleted_calls }))
    }

    #[tracing::instrument(skip_all, fields(validate_only = request.get_ref().validate_only))]
    async fn erase_phone(
        &self,
        request: Request<ErasePhoneRequest>,
    ) -> Result<Response<ErasePhoneResponse>, Status> {
        let actor = Actor {
            tenant: self.0.tenant(&request),
            key_id: None,
        };
        let req = request.into_inner();
        // The normalisation of CallFilter.phone: any notation of one number.
        let phone = match req.phone.trim() {
            "" => Err("is required".to_owned()),
            raw => normalize_phone(raw, self.0.region).map_err(|e| e.to_string()),
        }
        .map_err(|e| invalid_argument(&Violations::one("phone", e)))?;
        let counts = self
            .0
            .service
            .erase_phone(actor, &phone, req.validate_only)
            .await?;
        Ok(Response::new(ErasePhoneResponse {
            calls: counts.calls,
            task_numbers: counts.task_numbers,
            rejected_records: counts.rejected_records,
        }))
    }
}
