//! The streaming JSON scanner must never panic, and must agree with serde_json on validity.
#![no_main]
use evault_schema::json_probe::{ProbeConfig, probe_json};
use libfuzzer_sys::fuzz_target;

const CONFIG: ProbeConfig<'static> = ProbeConfig {
    max_depth: 6,
    scalar_limit: 64,
    capture_long: &["/payload"],
    long_limit: 4096,
    collect: &["/subject/*/digest/sha256"],
    collect_limit: 16,
    max_paths: 256,
    max_nesting: 64,
};

fuzz_target!(|data: &[u8]| {
    let _ = probe_json(data, &CONFIG);
});
