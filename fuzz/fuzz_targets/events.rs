//! The event file writer and reader: any scalars written come back as written, and any
//! bytes in an event file are read or refused, never a panic.
#![no_main]

use arbitrary::Arbitrary;
use estimator_host::events::{read_scalars, EventWriter};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Input {
    Scalars(Vec<(i64, Vec<(String, f32)>)>),
    Bytes(Vec<u8>),
}

fuzz_target!(|input: Input| {
    let dir = tempfile::tempdir().expect("temp dir");
    match input {
        Input::Scalars(events) => {
            let mut w = EventWriter::create(dir.path()).expect("creates");
            let mut expected: std::collections::BTreeMap<String, Vec<(i64, f64)>> =
                Default::default();
            for (step, scalars) in &events {
                let refs: Vec<(&str, f32)> =
                    scalars.iter().map(|(t, v)| (t.as_str(), *v)).collect();
                w.scalars(*step, &refs).expect("writes");
                for (tag, value) in scalars {
                    expected
                        .entry(tag.clone())
                        .or_default()
                        .push((*step, f64::from(*value)));
                }
            }
            w.flush().expect("flushes");
            let read = read_scalars(dir.path()).expect("reads its own file");
            assert_eq!(read.len(), expected.len());
            for (tag, series) in &expected {
                let got = &read[tag];
                assert_eq!(got.len(), series.len());
                for ((s1, v1), (s2, v2)) in got.iter().zip(series) {
                    assert_eq!(s1, s2);
                    assert_eq!(v1.to_bits(), v2.to_bits());
                }
            }
        }
        Input::Bytes(bytes) => {
            std::fs::write(dir.path().join("events.out.tfevents.1.host"), bytes).expect("write");
            let _ = read_scalars(dir.path());
        }
    }
});
