//! TF's tensor-bundle reader on arbitrary bytes: the first two bytes give the index
//! file's length, the rest is the index then one data shard. It may refuse, never panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Some((len, rest)) = bytes.split_first_chunk::<2>() else {
        return;
    };
    let split = usize::from(u16::from_le_bytes(*len)).min(rest.len());
    let (index, data) = rest.split_at(split);
    let prefix = Path::new("model.ckpt-1");
    if let Err(e) = estimator_host::checkpoint::tf::decode_bundle(prefix, index, &[data.to_vec()]) {
        assert!(e.to_string().starts_with("model.ckpt-1"));
    }
});
