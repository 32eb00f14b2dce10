//! Fuzzes the smartivr adapter: any bytes must give records or an error, never a panic.
#![no_main]

use callscope::domain::Source;
use callscope::sources::{SourceConfig, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cfg = SourceConfig::for_source(Source::Smartivr);
    let _ = parse(Source::Smartivr, data, &cfg);
});
