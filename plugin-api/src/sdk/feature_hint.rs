//! Where a feature was found in the last batch, so that finding it again takes one
//! comparison of names instead of a search.
//!
//! A host lends every batch's features in the same order, so a model that looks its
//! features up by name each step (a premade model's 30 numeric columns) would otherwise
//! repeat the same searches, and their string comparisons, every step.

use std::sync::atomic::{AtomicUsize, Ordering};

/// A feature's index in the last batch it was looked up in. A cache: it never changes
/// what a lookup finds, only how fast (see [`crate::sdk::ModelInputs::feature_hinted`]).
#[derive(Debug, Default)]
pub struct FeatureHint(AtomicUsize);

impl FeatureHint {
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self, index: usize) {
        self.0.store(index, Ordering::Relaxed);
    }
}

impl Clone for FeatureHint {
    fn clone(&self) -> Self {
        FeatureHint(AtomicUsize::new(self.get()))
    }
}

/// Hints are equal whatever they hold: a cache is no part of the value that holds it.
impl PartialEq for FeatureHint {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{NamedView, TensorData, TensorView};
    use crate::sdk::feature_columns::tests::predict_inputs as inputs;

    const SHAPE: [usize; 1] = [1];

    fn value(found: &TensorView<'_>) -> f32 {
        match found.data {
            TensorData::F32(values) => values[0],
            _ => panic!("f32 feature"),
        }
    }

    static ONE: [f32; 1] = [1.0];
    static TWO: [f32; 1] = [2.0];
    static THREE: [f32; 1] = [3.0];

    fn view(name: &'static str, data: &'static [f32]) -> NamedView<'static> {
        NamedView {
            name: name.into(),
            tensor: TensorView::f32(&SHAPE, data),
        }
    }

    #[test]
    fn a_hint_finds_the_feature_and_follows_it_when_the_layout_changes() {
        // Unsorted, so that only the scan finds what the hint does not.
        let first = [view("c", &THREE), view("a", &ONE), view("b", &TWO)];
        let first = inputs(&first);
        let hint = FeatureHint::default();
        let found = first.feature_hinted("b", &hint).expect("present");
        assert_eq!((value(found), hint.get()), (2.0, 2));
        let found = first.feature_hinted("b", &hint).expect("present");
        assert_eq!((value(found), hint.get()), (2.0, 2));
        // A batch laid out otherwise: the stale hint is checked, then corrected.
        let second = [view("b", &TWO), view("c", &THREE)];
        let second = inputs(&second);
        let found = second.feature_hinted("b", &hint).expect("present");
        assert_eq!((value(found), hint.get()), (2.0, 0));
        let missing = second.feature_hinted("a", &hint).unwrap_err();
        assert_eq!(
            missing.message.as_str(),
            "feature `a` is not in the input (it has: b, c)"
        );
        assert_eq!(hint.get(), 0);
    }
}
