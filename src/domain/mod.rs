//! Plain types and rules of callscope: the unified call, its filters and the
//! checks that keep bad input out. Imports neither tonic, prost nor sqlx.

pub mod call;
pub mod erasure;
pub mod error;
pub mod filter;
pub mod phone;
pub mod stats;
pub mod task_number;
pub mod text;

pub use call::*;
pub use error::{FieldViolation, Violations};
pub use filter::*;
pub use phone::{PhoneError, Region, normalize_international_phone, normalize_phone, phone_digits};
pub use task_number::{TaskNumber, TaskNumberEntry, TaskNumberQuery, TaskNumberUpsert};
pub use text::{NUL_DESCRIPTION, find_nul, nul_fields, without_nul};

/// The tenant every request belongs to until API keys arrive.
pub const DEFAULT_TENANT: &str = "default";

/// Milliseconds since the Unix epoch, UTC. Every stored time has this precision.
pub type UnixMs = i64;

/// The longest duration a call may report (30 days): sums over millions of
/// calls then stay far inside 64-bit integers.
pub const MAX_CALL_MS: i64 = 30 * 24 * 3600 * 1000;

/// The current time in milliseconds.
pub fn now_ms() -> UnixMs {
    jiff::Timestamp::now().as_millisecond()
}
