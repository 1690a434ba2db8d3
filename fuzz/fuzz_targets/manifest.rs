//! The manifest parser on arbitrary text: it may refuse, never panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Err(e) = estimator_host::Manifest::parse(text, Path::new("m.yaml")) {
        assert!(e.to_string().starts_with("m.yaml"));
    }
});
