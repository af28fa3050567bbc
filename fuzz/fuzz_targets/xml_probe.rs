//! The streaming XML scanner must never panic, expand entities or loop.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = evault_schema::xml_probe::probe_xml(data);
});
