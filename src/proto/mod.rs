//! Code generated from `proto/` (see `build.rs`), and the descriptor set that
//! server reflection serves.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod callscope {
    pub mod v1 {
        tonic::include_proto!("callscope.v1");
        include!(concat!(env!("OUT_DIR"), "/callscope.v1.serde.rs"));
    }
}

pub use callscope::v1::*;

mod timestamp;
pub use timestamp::Timestamp;

/// `proto/` compiled: callscope's services and the `google.rpc` error details.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/callscope_descriptor.bin"));
