//! How a model is served: its signatures, TF's `export_outputs`.

// The NonExhaustive expansion of `#[derive(StableAbi)]` defines impls inside a const block.
#![allow(non_local_definitions)]

use abi_stable::{
    std_types::{RString, RVec},
    StableAbi,
};

/// What a signature answers, as TF's `ExportOutput` kinds and TF Serving's methods.
///
/// It crosses the boundary as [`ExportMethod_NE`], so a later ABI 3.x may add one.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
#[sabi(kind(WithNonExhaustive(size = [usize; 1], traits(Debug, Clone, PartialEq, Eq))))]
pub enum ExportMethod {
    /// `ClassificationOutput`: outputs `scores` (float) and `classes` (strings);
    /// TF Serving's `:classify`.
    Classify,
    /// `RegressionOutput`: output `outputs` (float); TF Serving's `:regress`.
    Regress,
    /// `PredictOutput`: the outputs listed, or every prediction when none are;
    /// TF Serving's `:predict`.
    Predict,
}

/// One output of a signature: its key, and the prediction it serves.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct SignatureOutput {
    pub key: RString,
    pub prediction: RString,
}

/// A serving signature: a name (`serving_default`, `classification`, ...), what it
/// answers, and which predictions it serves.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ExportOutput {
    pub signature: RString,
    pub method: ExportMethod_NE,
    pub outputs: RVec<SignatureOutput>,
}

impl ExportOutput {
    fn new(signature: &str, method: ExportMethod, outputs: &[(&str, &str)]) -> Self {
        ExportOutput {
            signature: signature.into(),
            method: ExportMethod_NE::new(method),
            outputs: outputs
                .iter()
                .map(|&(key, prediction)| SignatureOutput {
                    key: key.into(),
                    prediction: prediction.into(),
                })
                .collect(),
        }
    }

    /// TF's `ClassificationOutput(scores, classes)`, naming the predictions that hold
    /// them (`probabilities`, `all_classes` in TF's heads).
    pub fn classification(signature: &str, scores: &str, classes: &str) -> Self {
        Self::new(
            signature,
            ExportMethod::Classify,
            &[("scores", scores), ("classes", classes)],
        )
    }

    /// TF's `RegressionOutput(value)`.
    pub fn regression(signature: &str, value: &str) -> Self {
        Self::new(signature, ExportMethod::Regress, &[("outputs", value)])
    }

    /// TF's `PredictOutput(predictions)`: every prediction, under its own name.
    pub fn predict_all(signature: &str) -> Self {
        Self::new(signature, ExportMethod::Predict, &[])
    }

    /// A `PredictOutput` of some predictions, each under a key: `[(key, prediction)]`.
    pub fn predict(signature: &str, outputs: &[(&str, &str)]) -> Self {
        Self::new(signature, ExportMethod::Predict, outputs)
    }
}
