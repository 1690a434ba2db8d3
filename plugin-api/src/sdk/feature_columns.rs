//! Feature columns driven by the manifest, as `tf.feature_column`.
//!
//! ```yaml
//! feature_columns: [ {numeric: SepalLength}, {numeric: {key: PetalWidth, shape: 1}} ]
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
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumericSpec {
    Key(String),
    Full {
        key: String,
        #[serde(default = "one")]
        shape: usize,
    },
}

fn one() -> usize {
    1
}

impl From<NumericSpec> for NumericColumn {
    fn from(spec: NumericSpec) -> Self {
        match spec {
            NumericSpec::Key(key) => NumericColumn { key, shape: 1 },
            NumericSpec::Full { key, shape } => NumericColumn { key, shape },
        }
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
            out.slice_mut(ndarray::s![.., offset..offset + numeric.shape])
                .assign(&values);
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
    fn unknown_column_kind_is_rejected() {
        let err = serde_json::from_str::<Vec<FeatureColumn>>(r#"[{"numerik": "a"}]"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `numerik`"),
            "{err}"
        );
    }
}
