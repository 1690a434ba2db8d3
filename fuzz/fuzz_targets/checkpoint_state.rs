//! The `checkpoint` state file parser on arbitrary text: it may refuse, never panic, and
//! what it accepts survives a round trip through its text form.
#![no_main]

use std::path::Path;

use estimator_host::checkpoint::CheckpointState;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let path = Path::new("checkpoint");
    match CheckpointState::parse(text, path) {
        Ok(state) => {
            let again = CheckpointState::parse(&state.to_text(), path).expect("own text parses");
            assert_eq!(again.latest, state.latest);
            assert_eq!(again.all.len(), state.all.len());
        }
        Err(e) => assert!(e.to_string().starts_with("checkpoint")),
    }
});
