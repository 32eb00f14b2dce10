//! Plain types and rules of callscope: the unified call, its filters and the
//! checks that keep bad input out. Imports neither tonic, prost nor sqlx.

pub mod call;
pub mod carrier;
pub mod erasure;
pub mod error;
pub mod event;
pub mod filter;
pub mod key;
pub mod limits;
pub mod merge;
pub mod phone;
#[cfg(test)]
pub(crate) mod sample;
pub mod size;
pub mod stats;
pub mod subscription;
pub mod sync;
pub mod task_number;
pub mod text;

pub use call::*;
pub use error::{FieldViolation, Violations};
pub use filter::*;
pub use phone::{
    PhoneError, Region, forget_notations, normalize_international_phone, normalize_phone,
    phone_digits,
};
pub use size::{calls_within, estimated_size};
pub use task_number::{TaskNumber, TaskNumberEntry, TaskNumberQuery, TaskNumberUpsert};
pub use text::{NUL_DESCRIPTION, find_nul, nul_fields, without_nul};

/// The tenant every request belongs to until API keys arrive.
pub const DEFAULT_TENANT: &str = "default";

/// Milliseconds since the Unix epoch, UTC. Every stored time has this precision.
pub type UnixMs = i64;

pub use limits::MAX_CALL_MS;

/// The current time in milliseconds.
pub fn now_ms() -> UnixMs {
    jiff::Timestamp::now().as_millisecond()
}
