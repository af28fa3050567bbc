//! evault's own documents and bundle manifests must be refused with an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = evault_schema::documents::parse_native(data);
    let _ = evault_schema::documents::parse_manifest(data);
});
