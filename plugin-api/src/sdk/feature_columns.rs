//! Feature columns driven by the manifest, as `tf.feature_column`.
//!
//! ```yaml
//! feature_columns: [ {numeric: SepalLength}, {numeric: {key: PetalWidth, shape: 1}} ]
//! feature_columns: [ {numeric: {key: bmi, normalizer: {z_score: {mean: 26.4, std: 4.4}}}} ]
//! ```

use ndarray::Array2;
use serde::Deserialize;

use crate::abi::PluginError;

use super::plugin::ModelInputs;
use super::view::f32_matrix;

/// One feature column from the manifest.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FeatureColumn {
    /// A real-valued feature, `numeric: KEY` or `numeric: {key, shape}`.
    Numeric(NumericColumn),
}

/// `tf.feature_column.numeric_column`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(from = "NumericSpec")]
pub struct NumericColumn {
    pub key: String,
    /// Number of values per example.
    pub shape: usize,
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
    Full {
        key: String,
        #[serde(default = "one")]
        shape: usize,
        #[serde(default)]
        normalizer: Option<Normalizer>,
    },
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
                normalizer: None,
            },
            NumericSpec::Full {
                key,
                shape,
                normalizer,
            } => NumericColumn {
                key,
                shape,
                normalizer,
            },
        }
    }
}

impl NumericColumn {
    /// This column's `[batch, shape]` values in a batch, normalized.
    pub fn values(&self, inputs: &ModelInputs<'_>) -> Result<Array2<f32>, PluginError> {
        let raw = f32_matrix(&self.key, inputs.feature(&self.key)?)?;
        if raw.ncols() != self.shape {
            return Err(PluginError::bad_data(format!(
                "feature `{}` has shape {:?}, expected [{}, {}]",
                self.key,
                raw.shape(),
                raw.nrows(),
                self.shape
            )));
        }
        let mut values = raw.to_owned();
        if let Some(n) = &self.normalizer {
            n.check(&self.key)?;
            values.mapv_inplace(|x| n.apply(x));
        }
        Ok(values)
    }
}

impl FeatureColumn {
    pub fn name(&self) -> &str {
        match self {
            FeatureColumn::Numeric(c) => &c.key,
        }
    }

    /// Width of this column in the dense input layer.
    pub fn width(&self) -> usize {
        match self {
            FeatureColumn::Numeric(c) => c.shape,
        }
    }
}

/// TF's `DenseFeatures` (`input_layer`): the columns, sorted by name, concatenated into one
/// `[batch, width]` matrix.
#[derive(Clone, Debug)]
pub struct DenseFeatures {
    columns: Vec<FeatureColumn>,
}

impl DenseFeatures {
    pub fn new(mut columns: Vec<FeatureColumn>) -> Result<Self, PluginError> {
        if columns.is_empty() {
            return Err(PluginError::bad_params("feature_columns must not be empty"));
        }
        for FeatureColumn::Numeric(c) in &columns {
            if let Some(n) = &c.normalizer {
                n.check(&c.key)?;
            }
        }
        columns.sort_by(|a, b| a.name().cmp(b.name()));
        if let Some(pair) = columns.windows(2).find(|w| w[0].name() == w[1].name()) {
            return Err(PluginError::bad_params(format!(
                "feature column `{}` is listed twice",
                pair[0].name()
            )));
        }
        Ok(DenseFeatures { columns })
    }

    pub fn width(&self) -> usize {
        self.columns.iter().map(FeatureColumn::width).sum()
    }

    /// Builds the input matrix for one batch.
    pub fn build(&self, inputs: &ModelInputs<'_>) -> Result<Array2<f32>, PluginError> {
        let batch = match self.columns.first() {
            Some(first) => inputs.feature(first.name())?.batch_len(),
            None => 0,
        };
        let mut out = Array2::zeros((batch, self.width()));
        let mut offset = 0;
        for column in &self.columns {
            let FeatureColumn::Numeric(numeric) = column;
            let values = f32_matrix(&numeric.key, inputs.feature(&numeric.key)?)?;
            if values.dim() != (batch, numeric.shape) {
                return Err(PluginError::bad_data(format!(
                    "feature `{}` has shape {:?}, expected [{batch}, {}]",
                    numeric.key,
                    values.shape(),
                    numeric.shape
                )));
            }
            let mut slot = out.slice_mut(ndarray::s![.., offset..offset + numeric.shape]);
            slot.assign(&values);
            if let Some(n) = &numeric.normalizer {
                slot.mapv_inplace(|x| n.apply(x));
            }
            offset += numeric.shape;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_accepts_a_key_or_a_map() {
        let cols: Vec<FeatureColumn> =
            serde_json::from_str(r#"[{"numeric": "b"}, {"numeric": {"key": "a", "shape": 2}}]"#)
                .expect("valid columns");
        let dense = DenseFeatures::new(cols).expect("distinct names");
        assert_eq!(dense.width(), 3);
        assert_eq!(dense.columns[0].name(), "a", "sorted by name as TF");
    }

    #[test]
    fn normalizers_scale_as_named_and_check_their_statistics() {
        use crate::abi::{ModeKeys, NamedView, StepContext, TensorView};
        let cols: Vec<FeatureColumn> = serde_json::from_str(
            r#"[{"numeric": {"key": "a", "normalizer": {"z_score": {"mean": 10, "std": 2}}}},
                {"numeric": {"key": "b", "normalizer": {"min_max": {"min": 0, "max": 4}}}}]"#,
        )
        .expect("valid columns");
        let dense = DenseFeatures::new(cols).expect("valid");
        let shape = [2usize];
        let (a, b) = ([12.0f32, 7.0], [1.0f32, 4.0]);
        let features = [
            NamedView {
                name: "a".into(),
                tensor: TensorView::f32(&shape, &a),
            },
            NamedView {
                name: "b".into(),
                tensor: TensorView::f32(&shape, &b),
            },
        ];
        let inputs = ModelInputs {
            features: &features,
            labels: None,
            mode: ModeKeys::Predict,
            variables: &[],
            specs: &[],
            ctx: StepContext {
                global_step: 0,
                seed: 0,
            },
        };
        let x = dense.build(&inputs).expect("builds");
        assert_eq!(x, ndarray::array![[1.0, 0.25], [-1.5, 1.0]]);
        let bad: Vec<FeatureColumn> = serde_json::from_str(
            r#"[{"numeric": {"key": "a", "normalizer": {"z_score": {"mean": 1, "std": 0}}}}]"#,
        )
        .expect("parses");
        assert!(DenseFeatures::new(bad).is_err());
    }

    #[test]
    fn unknown_column_kind_is_rejected() {
        let err = serde_json::from_str::<Vec<FeatureColumn>>(r#"[{"numerik": "a"}]"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `numerik`"),
            "{err}"
        );
    }
}
