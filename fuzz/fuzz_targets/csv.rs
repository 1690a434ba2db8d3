//! The CSV input on arbitrary bytes: it may refuse (naming the file), never panic, and
//! every chunk it yields has columns of one length with finite values.
#![no_main]

use std::path::PathBuf;

use estimator_plugin_api::abi::{ModeKeys, TensorBuf};
use estimator_plugin_csv::{CsvInput, CsvParams, LabelDType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let params = CsvParams {
        path: "d.csv".into(),
        label: Some("y".into()),
        label_dtype: LabelDType::Int64,
        chunk_rows: 4,
        defaults: Default::default(),
        string_columns: Vec::new(),
    };
    let source = Box::new(std::io::Cursor::new(bytes.to_vec()));
    let mut input =
        match CsvInput::from_reader(source, PathBuf::from("d.csv"), params, ModeKeys::Train) {
            Ok(input) => input,
            Err(e) => return assert!(e.message.starts_with("d.csv")),
        };
    loop {
        match input.read_chunk() {
            Ok(Some(chunk)) => {
                let rows = chunk.features.first().map_or(0, |f| f.tensor.batch_len());
                for f in chunk.features.iter() {
                    assert_eq!(f.tensor.batch_len(), rows);
                    if let TensorBuf::F32(values) = &f.tensor.data {
                        assert!(values.iter().all(|v| v.is_finite()));
                    }
                }
            }
            Ok(None) => return,
            Err(e) => return assert!(e.message.starts_with("d.csv:")),
        }
    }
});
