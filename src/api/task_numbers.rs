//! `ListTaskNumbers` and `UpsertTaskNumbers`: the dialing list of a task. The
//! service traits delegate here so the list has one home.

use tonic::{Request, Response, Status};

use super::ApiContext;
use super::convert::{attributes, call_to_proto, to_timestamp};
use super::status::invalid_argument;
use crate::domain::task_number::MAX_NUMBERS_PER_UPLOAD;
use crate::domain::{
    Location, NUL_DESCRIPTION, TaskNumber, TaskNumberEntry, TaskNumberQuery, Violations, find_nul,
    normalize_phone, page_size,
};
use crate::proto::{
    self, ListTaskNumbersRequest, ListTaskNumbersResponse, NumberStatus, UpsertTaskNumbersRequest,
    UpsertTaskNumbersResponse,
};

/// Longest task id, name or carrier accepted.
const MAX_ID_LEN: usize = 256;

#[tracing::instrument(skip_all, fields(task_id = %request.get_ref().task_id))]
pub(crate) async fn list_task_numbers(
    ctx: &ApiContext,
    request: Request<ListTaskNumbersRequest>,
) -> Result<Response<ListTaskNumbersResponse>, Status> {
    let tenant = ctx.tenant(&request);
    let req = request.into_inner();
    let mut v = Violations::new();
    let query = query_from_proto(&req, ctx, &mut v);
    if !v.is_empty() {
        return Err(invalid_argument(&v));
    }
    let page = ctx
        .service
        .list_task_numbers(tenant, query, &req.page_token)
        .await?;
    Ok(Response::new(ListTaskNumbersResponse {
        numbers: page.numbers.into_iter().map(number_to_proto).collect(),
        next_page_token: page.next_page_token,
    }))
}

#[tracing::instrument(skip_all, fields(task_id = %request.get_ref().task_id, numbers = request.get_ref().numbers.len()))]
pub(crate) async fn upsert_task_numbers(
    ctx: &ApiContext,
    request: Request<UpsertTaskNumbersRequest>,
) -> Result<Response<UpsertTaskNumbersResponse>, Status> {
    let tenant = ctx.tenant(&request);
    let req = request.into_inner();
    let mut v = Violations::new();
    task_id(&req.task_id, &mut v);
    if req.numbers.len() > MAX_NUMBERS_PER_UPLOAD {
        v.add(
            "numbers",
            format!("at most {MAX_NUMBERS_PER_UPLOAD} numbers per request"),
        );
        return Err(invalid_argument(&v));
    }
    let entries: Vec<TaskNumberEntry> = req
        .numbers
        .iter()
        .enumerate()
        .map(|(i, n)| entry_from_proto(n, &format!("numbers[{i}]"), ctx, &mut v))
        .collect();
    if !v.is_empty() {
        return Err(invalid_argument(&v));
    }
    let (result, now) = ctx
        .service
        .upsert_task_numbers(tenant, req.task_id.trim(), &entries)
        .await?;
    Ok(Response::new(UpsertTaskNumbersResponse {
        inserted: result.inserted as i32,
        updated: result.updated as i32,
        upload_time: Some(to_timestamp(now)),
    }))
}

fn task_id(id: &str, v: &mut Violations) {
    if id.trim().is_empty() {
        v.add("task_id", "is required");
    } else if id.len() > MAX_ID_LEN {
        v.add("task_id", format!("is longer than {MAX_ID_LEN} bytes"));
    } else if id.contains('\0') {
        v.add("task_id", NUL_DESCRIPTION);
    }
}

fn query_from_proto(
    req: &ListTaskNumbersRequest,
    ctx: &ApiContext,
    v: &mut Violations,
) -> TaskNumberQuery {
    task_id(&req.task_id, v);
    let statuses = req
        .statuses
        .iter()
        .enumerate()
        .filter_map(|(i, code)| match NumberStatus::try_from(*code) {
            // The enum value is the smartivr code plus one.
            Ok(s) if s != NumberStatus::Unspecified => Some(*code - 1),
            _ => {
                v.add(
                    format!("statuses[{i}]"),
                    format!("unknown enum value {code}"),
                );
                None
            }
        })
        .collect();
    let phone = (!req.phone.trim().is_empty()).then(|| {
        normalize_phone(&req.phone, ctx.region).unwrap_or_else(|e| {
            v.add("phone", e.to_string());
            String::new()
        })
    });
    if req.carriers.len() > 500 {
        v.add("carriers", "at most 500 values");
    }
    if req.statuses.len() > 500 {
        v.add("statuses", "at most 500 values");
    }
    for (i, carrier) in req.carriers.iter().enumerate() {
        if carrier.len() > MAX_ID_LEN {
            v.add(
                format!("carriers[{i}]"),
                format!("is longer than {MAX_ID_LEN} bytes"),
            );
        } else if carrier.contains('\0') {
            v.add(format!("carriers[{i}]"), NUL_DESCRIPTION);
        }
    }
    let size = page_size(req.page_size).unwrap_or_else(|e| {
        v.add("page_size", e);
        0
    });
    TaskNumberQuery {
        task_id: req.task_id.trim().to_owned(),
        statuses,
        phone,
        carriers: req.carriers.clone(),
        include_call_history: req.include_call_history,
        page_size: size,
        after: None,
    }
}

fn entry_from_proto(
    n: &proto::TaskNumberInput,
    path: &str,
    ctx: &ApiContext,
    v: &mut Violations,
) -> TaskNumberEntry {
    let phone = normalize_phone(&n.phone, ctx.region).unwrap_or_else(|e| {
        v.add(format!("{path}.phone"), e.to_string());
        String::new()
    });
    if n.name.len() > MAX_ID_LEN {
        v.add(
            format!("{path}.name"),
            format!("is longer than {MAX_ID_LEN} bytes"),
        );
    }
    let entry = TaskNumberEntry {
        phone,
        phone_raw: n.phone.clone(),
        name: n.name.clone(),
        attributes: attributes(&n.attributes, &format!("{path}.attributes"), v),
        location: Location::default(),
        status_code: None,
    };
    if let Some(bad) = find_nul(&entry) {
        v.add(format!("{path}.{bad}"), NUL_DESCRIPTION);
    }
    entry
}

fn number_to_proto(n: TaskNumber) -> proto::TaskNumber {
    let l = n.location;
    proto::TaskNumber {
        phone: n.phone,
        status: n.status_code + 1,
        status_code: n.status_code,
        attempts: i32::try_from(n.attempts).unwrap_or(i32::MAX),
        last_call_time: n.last_call_time.map(to_timestamp),
        location: Some(proto::Location {
            province: l.province,
            city: l.city,
            area_code: l.area_code,
            carrier: l.carrier,
            region: l.region,
            post_code: l.post_code,
        }),
        name: n.name,
        attributes: n.attributes.into_iter().collect(),
        call_history: n.call_history.into_iter().map(call_to_proto).collect(),
    }
}
