//! Every extractor, on bytes claiming every format, must return an error or facts, never panic.
#![no_main]
use evault_schema::Format;
use evault_schema::extract::{Limits, provenance, sbom, scan, vex};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_items: 64 };
    for format in Format::ALL {
        let _ = sbom::components(format, data, &limits);
        let _ = scan::findings(format, data, &limits);
        let _ = vex::statements(format, data, &limits);
        let _ = provenance::provenance(format, data);
    }
});
