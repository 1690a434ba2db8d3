//! Sparse ids: what a categorical feature column yields for a batch, TF's `SparseTensor`
//! of ids with optional weights, stored row by row.

use serde::Deserialize;

/// Per example, a list of bucket ids, each with a weight (1 unless the column is weighted).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SparseIds {
    /// Example `r`'s entries are `offsets[r]..offsets[r + 1]`.
    offsets: Vec<usize>,
    ids: Vec<usize>,
    weights: Vec<f32>,
}

impl SparseIds {
    /// An empty batch; add examples with [`SparseIds::push_row`].
    pub fn new() -> Self {
        SparseIds {
            offsets: vec![0],
            ids: Vec::new(),
            weights: Vec::new(),
        }
    }

    /// Appends one example's ids and weights (the same length).
    pub fn push_row(&mut self, ids: impl IntoIterator<Item = (usize, f32)>) {
        for (id, weight) in ids {
            self.ids.push(id);
            self.weights.push(weight);
        }
        self.offsets.push(self.ids.len());
    }

    /// Number of examples.
    pub fn rows(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Example `r`'s ids and weights.
    pub fn row(&self, r: usize) -> (&[usize], &[f32]) {
        let range = self.offsets[r]..self.offsets[r + 1];
        (&self.ids[range.clone()], &self.weights[range])
    }

    /// Every id, example after example.
    pub fn ids(&self) -> &[usize] {
        &self.ids
    }
}

/// How an example's looked-up rows are combined (TF's `combiner` and `sparse_combiner`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combiner {
    Sum,
    /// Divided by the sum of the weights.
    #[default]
    Mean,
    /// Divided by the square root of the sum of squared weights.
    Sqrtn,
}

impl Combiner {
    /// The factor applied to the weighted sum of an example's rows.
    pub fn scale(self, weights: &[f32]) -> f32 {
        let divisor = match self {
            Combiner::Sum => return 1.0,
            Combiner::Mean => weights.iter().sum::<f32>(),
            Combiner::Sqrtn => weights.iter().map(|w| w * w).sum::<f32>().sqrt(),
        };
        if divisor == 0.0 {
            0.0
        } else {
            1.0 / divisor
        }
    }
}
