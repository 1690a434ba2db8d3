//! The checkpoint reader on arbitrary bytes: it may refuse, never panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let path = Path::new("model.ckpt-1.safetensors");
    if let Err(e) = estimator_host::checkpoint::decode(bytes, path) {
        assert!(e.to_string().starts_with("model.ckpt-1.safetensors"));
    }
});
