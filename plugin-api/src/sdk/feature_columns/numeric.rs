//! Real-valued columns: `numeric_column` and `bucketized_column`.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use serde::Deserialize;

use crate::abi::{PluginError, TensorData};
use crate::sdk::plugin::ModelInputs;
use crate::sdk::sparse::SparseIds;
use crate::sdk::view::f32_matrix;
use crate::sdk::FeatureHint;

/// `tf.feature_column.numeric_column`: `numeric: KEY` or `numeric: {key, shape, ...}`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(from = "NumericSpec")]
pub struct NumericColumn {
    pub key: String,
    /// Number of values per example.
    pub shape: usize,
    /// The value of every example when the input has no feature `key` at all (TF's
    /// default for an Example without the feature).
    pub default_value: Option<f32>,
    /// TF's `normalizer_fn`, for the two normalizations it is used for.
    pub normalizer: Option<Normalizer>,
}

/// A normalization applied to a numeric column's values, with statistics given in the
/// manifest (computed on the training data beforehand, as TF users do).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Normalizer {
    /// `(x - mean) / std`.
    ZScore { mean: f32, std: f32 },
    /// `(x - min) / (max - min)`.
    MinMax { min: f32, max: f32 },
}

impl Normalizer {
    fn check(&self, key: &str) -> Result<(), PluginError> {
        let ok = match *self {
            Normalizer::ZScore { std, .. } => std > 0.0,
            Normalizer::MinMax { min, max } => max > min,
        };
        match ok {
            true => Ok(()),
            false => Err(PluginError::bad_params(format!(
                "feature column `{key}`: the normalizer needs std > 0 (z_score) or max > min (min_max)"
            ))),
        }
    }

    fn apply(&self, x: f32) -> f32 {
        match *self {
            Normalizer::ZScore { mean, std } => (x - mean) / std,
            Normalizer::MinMax { min, max } => (x - min) / (max - min),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumericSpec {
    Key(String),
    Full(FullNumericSpec),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FullNumericSpec {
    key: String,
    #[serde(default = "one")]
    shape: usize,
    #[serde(default)]
    default_value: Option<f32>,
    #[serde(default)]
    normalizer: Option<Normalizer>,
}

fn one() -> usize {
    1
}

impl From<NumericSpec> for NumericColumn {
    fn from(spec: NumericSpec) -> Self {
        match spec {
            NumericSpec::Key(key) => NumericColumn {
                key,
                shape: 1,
                default_value: None,
                normalizer: None,
            },
            NumericSpec::Full(f) => NumericColumn {
                key: f.key,
                shape: f.shape,
                default_value: f.default_value,
                normalizer: f.normalizer,
            },
        }
    }
}

impl NumericColumn {
    /// TF's argument checks: a positive shape and a normalizer that divides by a
    /// positive number.
    pub fn check(&self) -> Result<(), PluginError> {
        if self.shape == 0 {
            return Err(PluginError::bad_params(format!(
                "feature column `{}`: shape must be > 0",
                self.key
            )));
        }
        match &self.normalizer {
            Some(n) => n.check(&self.key),
            None => Ok(()),
        }
    }

    /// This column's `[batch, shape]` values in a batch, normalized.
    pub fn values(&self, inputs: &ModelInputs<'_>) -> Result<Array2<f32>, PluginError> {
        let mut out = Array2::zeros((inputs.batch_len(), self.shape));
        self.write_values(inputs, out.view_mut(), &FeatureHint::default())?;
        Ok(out)
    }

    /// Writes [`NumericColumn::values`] into `slot`, `[batch, shape]` in column-major order
    /// (a slot of a dense input block), looking the feature up where `hint` says. A column
    /// of one f32 value per example, the common case, is one checked slice copy: at a
    /// batch's size, building ndarray views for it cost more than the copy. Anything else
    /// takes the general path, with its errors.
    pub(super) fn write_column_major(
        &self,
        inputs: &ModelInputs<'_>,
        slot: &mut [f32],
        hint: &FeatureHint,
    ) -> Result<(), PluginError> {
        if self.shape == 1 {
            if let Ok(view) = inputs.feature_hinted(&self.key, hint) {
                if let TensorData::F32(data) = &view.data {
                    let one_per_example = view.batch_len() == data.len()
                        && view.shape.iter().product::<usize>() == data.len();
                    if one_per_example && data.len() == slot.len() {
                        slot.copy_from_slice(data);
                        if let Some(n) = &self.normalizer {
                            slot.iter_mut().for_each(|x| *x = n.apply(*x));
                        }
                        return Ok(());
                    }
                }
            }
        }
        self.write_values(inputs, super::column_major(slot, self.shape)?, hint)
    }

    /// Writes [`NumericColumn::values`] into `out`, `[batch, shape]`, looking the feature
    /// up where `hint` says.
    pub(super) fn write_values(
        &self,
        inputs: &ModelInputs<'_>,
        mut out: ArrayViewMut2<'_, f32>,
        hint: &FeatureHint,
    ) -> Result<(), PluginError> {
        match (inputs.feature_hinted(&self.key, hint), self.default_value) {
            (Err(_), Some(default)) => out.fill(default),
            (found, _) => {
                let view = found?;
                if let TensorData::Str(_) = view.data {
                    return Err(PluginError::bad_data(format!(
                        "feature `{}` holds strings: a numeric column needs numbers (give it a categorical column, or read it as numbers)",
                        self.key
                    )));
                }
                let raw = f32_matrix(&self.key, view)?;
                if raw.dim() != out.dim() {
                    return Err(PluginError::bad_data(format!(
                        "feature `{}` has shape {:?}, expected [{}, {}]",
                        self.key,
                        raw.shape(),
                        out.nrows(),
                        self.shape
                    )));
                }
                copy_into(out.view_mut(), raw.view());
            }
        }
        if let Some(n) = &self.normalizer {
            out.mapv_inplace(|x| n.apply(x));
        }
        Ok(())
    }
}

/// `out.assign(&raw)`, as one slice copy when both are one contiguous column (a column of
/// a column-major input block): ndarray's general assignment costs more than the copy at a
/// batch's size.
fn copy_into(mut out: ArrayViewMut2<'_, f32>, raw: ArrayView2<'_, f32>) {
    if out.ncols() == 1 {
        if let (Some(to), Some(from)) =
            (out.as_slice_memory_order_mut(), raw.as_slice_memory_order())
        {
            to.copy_from_slice(from);
            return;
        }
    }
    out.assign(&raw);
}

/// `tf.feature_column.bucketized_column`: each value becomes the number of boundaries at
/// or below it, one of `boundaries + 1` buckets (per value, for a shape above 1).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketizedColumn {
    /// The numeric column bucketized: a key or `{key, shape, normalizer, ...}`.
    pub source: NumericColumn,
    pub boundaries: Vec<f32>,
}

impl BucketizedColumn {
    pub(super) fn check(&self) -> Result<(), PluginError> {
        self.source.check()?;
        if self.boundaries.windows(2).any(|w| w[0] >= w[1])
            || self.boundaries.iter().any(|b| !b.is_finite())
        {
            return Err(PluginError::bad_params(format!(
                "bucketized column `{}`: boundaries must be a sorted list.",
                self.source.key
            )));
        }
        Ok(())
    }

    pub fn name(&self) -> String {
        format!("{}_bucketized", self.source.key)
    }

    /// Buckets per value times values per example.
    pub fn num_buckets(&self) -> usize {
        (self.boundaries.len() + 1) * self.source.shape
    }

    /// The bucket of each value, offset by the value's position so that each position has
    /// its own buckets.
    pub fn ids(&self, inputs: &ModelInputs<'_>) -> Result<SparseIds, PluginError> {
        let values = self.source.values(inputs)?;
        let per_value = self.boundaries.len() + 1;
        let mut ids = SparseIds::new();
        for row in values.rows() {
            ids.push_row(row.iter().enumerate().map(|(i, &x)| {
                let bucket = self.boundaries.partition_point(|&b| b <= x);
                (i * per_value + bucket, 1.0)
            }));
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdk::feature_columns::tests::inputs_with;

    #[test]
    fn bucketized_ids_follow_tf_boundaries() {
        // TF: boundaries [0, 10]: -1 → 0, 0 → 1, 5 → 1, 10 → 2, 11 → 2.
        let column: BucketizedColumn =
            serde_json::from_str(r#"{"source": "x", "boundaries": [0, 10]}"#).expect("valid");
        column.check().expect("sorted");
        let values = [-1.0f32, 0.0, 5.0, 10.0, 11.0];
        let ids = inputs_with(&[("x", &values)], |inputs| column.ids(inputs));
        let got: Vec<usize> = ids.ids().to_vec();
        assert_eq!(got, vec![0, 1, 1, 2, 2]);
        assert_eq!(column.num_buckets(), 3);
        let unsorted: BucketizedColumn =
            serde_json::from_str(r#"{"source": "x", "boundaries": [10, 0]}"#).expect("parses");
        assert!(unsorted
            .check()
            .unwrap_err()
            .message
            .contains("boundaries must be a sorted list."));
    }

    #[test]
    fn a_missing_feature_takes_the_default_value() {
        let column: NumericColumn =
            serde_json::from_str(r#"{"key": "absent", "default_value": 7}"#).expect("valid");
        let values = [1.0f32, 2.0];
        let got = inputs_with(&[("x", &values)], |inputs| column.values(inputs));
        assert_eq!(got, ndarray::array![[7.0], [7.0]]);
        let required = NumericColumn {
            default_value: None,
            ..column
        };
        let err = inputs_with(&[("x", &values)], |inputs| {
            Ok(required.values(inputs).unwrap_err())
        });
        assert!(
            err.message.contains("feature `absent` is not in the input"),
            "{err}"
        );
    }
}
