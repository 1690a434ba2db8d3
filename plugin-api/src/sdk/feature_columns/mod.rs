//! Feature columns driven by the manifest, as `tf.feature_column`: how raw features become
//! model inputs.
//!
//! ```yaml
//! feature_columns:
//!   - numeric: SepalLength
//!   - numeric: { key: bmi, normalizer: { z_score: { mean: 26.4, std: 4.4 } } }
//!   - bucketized: { source: age, boundaries: [18, 25, 35, 50] }
//!   - indicator: { vocabulary_list: { key: color, vocabulary_list: [red, green] } }
//!   - embedding: { categorical_column: { hash_bucket: { key: city, hash_bucket_size: 100 } },
//!                  dimension: 4 }
//! ```
//!
//! Dense columns (numeric, bucketized, indicator, embedding) feed [`DenseFeatures`], a
//! DNN's input layer; categorical ones (vocabulary, hash bucket, identity, weighted,
//! crossed, bucketized) feed [`LinearModel`] directly, as in TF.

mod categorical;
mod dense_features;
mod linear_model;
mod numeric;

pub use categorical::{
    CrossKey, CrossedColumn, HashBucketColumn, IdentityColumn, VocabularyFileColumn,
    VocabularyListColumn, WeightedColumn, Word,
};
pub use dense_features::DenseFeatures;
pub use linear_model::LinearModel;
pub use linear_model::SparseCombiner;
pub use numeric::{BucketizedColumn, Normalizer, NumericColumn};

use ndarray::{Array2, ArrayViewMut2, ShapeBuilder};
use serde::Deserialize;

use crate::abi::{FactoryContext, PluginError};

use super::plugin::ModelInputs;
use super::sparse::{Combiner, SparseIds};
use super::FeatureHint;

/// One feature column from the manifest.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FeatureColumn {
    /// A real-valued feature: `numeric: KEY` or `numeric: {key, shape, ...}`.
    Numeric(NumericColumn),
    Bucketized(BucketizedColumn),
    VocabularyList(VocabularyListColumn),
    VocabularyFile(VocabularyFileColumn),
    HashBucket(HashBucketColumn),
    Identity(IdentityColumn),
    Weighted(WeightedColumn),
    Crossed(CrossedColumn),
    /// A categorical column as multi-hot counts (weights, for a weighted column).
    Indicator(Box<FeatureColumn>),
    Embedding(EmbeddingColumn),
}

/// `tf.feature_column.embedding_column`: a trainable `[buckets, dimension]` table whose
/// rows for an example's ids are combined into one dense vector.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingColumn {
    pub categorical_column: Box<FeatureColumn>,
    pub dimension: usize,
    #[serde(default)]
    pub combiner: Combiner,
}

impl FeatureColumn {
    /// TF's column name: the key, or a name derived from the columns it wraps.
    pub fn name(&self) -> String {
        match self {
            FeatureColumn::Numeric(c) => c.key.clone(),
            FeatureColumn::Bucketized(c) => c.name(),
            FeatureColumn::VocabularyList(c) => c.key.clone(),
            FeatureColumn::VocabularyFile(c) => c.key.clone(),
            FeatureColumn::HashBucket(c) => c.key.clone(),
            FeatureColumn::Identity(c) => c.key.clone(),
            FeatureColumn::Weighted(c) => format!(
                "{}_weighted_by_{}",
                c.categorical_column.name(),
                c.weight_feature_key
            ),
            FeatureColumn::Crossed(c) => c.name(),
            FeatureColumn::Indicator(c) => format!("{}_indicator", c.name()),
            FeatureColumn::Embedding(c) => format!("{}_embedding", c.categorical_column.name()),
        }
    }

    /// The feature keys a single-feature column reads.
    pub(crate) fn keys(&self) -> Vec<String> {
        match self {
            FeatureColumn::Numeric(c) => vec![c.key.clone()],
            FeatureColumn::Bucketized(c) => vec![c.source.key.clone()],
            FeatureColumn::VocabularyList(c) => vec![c.key.clone()],
            FeatureColumn::VocabularyFile(c) => vec![c.key.clone()],
            FeatureColumn::HashBucket(c) => vec![c.key.clone()],
            FeatureColumn::Identity(c) => vec![c.key.clone()],
            FeatureColumn::Weighted(c) => c.categorical_column.keys(),
            FeatureColumn::Crossed(c) => c
                .keys
                .iter()
                .flat_map(|k| match k {
                    CrossKey::Feature(f) => vec![f.clone()],
                    CrossKey::Column(c) => c.keys(),
                })
                .collect(),
            FeatureColumn::Indicator(c) => c.keys(),
            FeatureColumn::Embedding(c) => c.categorical_column.keys(),
        }
    }

    /// Checks the column's arguments as TF's constructors do and reads vocabulary files.
    pub fn prepare(&mut self, ctx: &FactoryContext<'_>) -> Result<(), PluginError> {
        match self {
            FeatureColumn::Numeric(c) => c.check(),
            FeatureColumn::Bucketized(c) => c.check(),
            FeatureColumn::VocabularyList(c) => c.prepare(),
            FeatureColumn::VocabularyFile(c) => c.prepare(ctx),
            FeatureColumn::HashBucket(c) => c.check(),
            FeatureColumn::Identity(c) => c.check(),
            FeatureColumn::Weighted(c) => {
                c.categorical_column.prepare(ctx)?;
                match c.categorical_column.as_ref() {
                    FeatureColumn::VocabularyList(_)
                    | FeatureColumn::VocabularyFile(_)
                    | FeatureColumn::HashBucket(_)
                    | FeatureColumn::Identity(_) => Ok(()),
                    other => Err(PluginError::bad_params(format!(
                        "weighted: `{}` must be a vocabulary, hash bucket or identity column",
                        other.name()
                    ))),
                }
            }
            FeatureColumn::Crossed(c) => {
                for key in &mut c.keys {
                    if let CrossKey::Column(inner) = key {
                        inner.prepare(ctx)?;
                    }
                }
                c.check()
            }
            FeatureColumn::Indicator(inner) => {
                inner.prepare(ctx)?;
                inner.require_categorical("indicator")
            }
            FeatureColumn::Embedding(c) => {
                c.categorical_column.prepare(ctx)?;
                c.categorical_column.require_categorical("embedding")?;
                match c.dimension {
                    0 => Err(PluginError::bad_params(format!(
                        "embedding `{}`: dimension must be > 0",
                        c.categorical_column.name()
                    ))),
                    _ => Ok(()),
                }
            }
        }
    }

    fn require_categorical(&self, wrapper: &str) -> Result<(), PluginError> {
        match self.num_buckets() {
            Some(_) => Ok(()),
            None => Err(PluginError::bad_params(format!(
                "{wrapper}: `{}` is not a categorical column",
                self.name()
            ))),
        }
    }

    /// The number of ids a categorical column can yield; `None` for other columns.
    pub fn num_buckets(&self) -> Option<usize> {
        match self {
            FeatureColumn::Bucketized(c) => Some(c.num_buckets()),
            FeatureColumn::VocabularyList(c) => Some(c.num_buckets()),
            FeatureColumn::VocabularyFile(c) => Some(c.num_buckets()),
            FeatureColumn::HashBucket(c) => Some(c.hash_bucket_size),
            FeatureColumn::Identity(c) => Some(c.num_buckets),
            FeatureColumn::Weighted(c) => c.categorical_column.num_buckets(),
            FeatureColumn::Crossed(c) => Some(c.hash_bucket_size),
            FeatureColumn::Numeric(_)
            | FeatureColumn::Indicator(_)
            | FeatureColumn::Embedding(_) => None,
        }
    }

    /// A categorical column's ids for a batch.
    pub fn sparse_ids(&self, inputs: &ModelInputs<'_>) -> Result<SparseIds, PluginError> {
        match self {
            FeatureColumn::Bucketized(c) => c.ids(inputs),
            FeatureColumn::VocabularyList(c) => c.ids(inputs),
            FeatureColumn::VocabularyFile(c) => c.ids(inputs),
            FeatureColumn::HashBucket(c) => c.ids(inputs),
            FeatureColumn::Identity(c) => c.ids(inputs),
            FeatureColumn::Weighted(c) => c.ids(inputs),
            FeatureColumn::Crossed(c) => c.ids(inputs),
            other => Err(PluginError::bad_params(format!(
                "`{}` is not a categorical column",
                other.name()
            ))),
        }
    }

    /// Width in a dense input layer; `None` for a categorical column that needs an
    /// indicator or embedding column around it first.
    pub fn dense_width(&self) -> Option<usize> {
        match self {
            FeatureColumn::Numeric(c) => Some(c.shape),
            FeatureColumn::Bucketized(c) => Some(c.num_buckets()),
            FeatureColumn::Indicator(c) => c.num_buckets(),
            FeatureColumn::Embedding(c) => Some(c.dimension),
            _ => None,
        }
    }

    /// Writes the dense value of a column that needs no variables (numeric values, a
    /// bucketized one-hot, an indicator's multi-hot counts) into `slot`, `[batch, width]`
    /// zeros in column-major order; a numeric column finds its feature where `hint` says.
    fn write_constant(
        &self,
        inputs: &ModelInputs<'_>,
        slot: &mut [f32],
        hint: &FeatureHint,
    ) -> Result<(), PluginError> {
        match self {
            FeatureColumn::Numeric(c) => c.write_column_major(inputs, slot, hint),
            FeatureColumn::Bucketized(c) => {
                add_multi_hot(&c.ids(inputs)?, column_major(slot, c.num_buckets())?)
            }
            FeatureColumn::Indicator(inner) => {
                let width = inner.num_buckets().unwrap_or(0);
                add_multi_hot(&inner.sparse_ids(inputs)?, column_major(slot, width)?)
            }
            other => Err(PluginError::bad_params(format!(
                "`{}` has no dense value without variables",
                other.name()
            ))),
        }
    }
}

/// The dense values of `columns` (none needing variables) side by side, `[batch, Σ
/// width]`, each written straight into its slot. The block is column-major, so that each
/// column's slot is one contiguous run, which a numeric column's input is copied into
/// whole; products read it in place either way.
fn constant_block<'c>(
    columns: impl Iterator<Item = (&'c FeatureColumn, &'c FeatureHint)> + Clone,
    inputs: &ModelInputs<'_>,
) -> Result<Array2<f32>, PluginError> {
    let batch = inputs.batch_len();
    let width: usize = columns.clone().filter_map(|(c, _)| c.dense_width()).sum();
    let mut values = vec![0.0; batch * width];
    let mut rest = values.as_mut_slice();
    for (column, hint) in columns {
        let (slot, after) = rest.split_at_mut(batch * column.dense_width().unwrap_or(0));
        column.write_constant(inputs, slot, hint)?;
        rest = after;
    }
    Array2::from_shape_vec((batch, width).f(), values)
        .map_err(|e| PluginError::other(format!("a dense input block: {e}")))
}

/// `slot`, `width` columns in column-major order, as a `[batch, width]` matrix.
fn column_major(slot: &mut [f32], width: usize) -> Result<ArrayViewMut2<'_, f32>, PluginError> {
    let batch = slot.len().checked_div(width).unwrap_or(0);
    ArrayViewMut2::from_shape((batch, width).f(), slot)
        .map_err(|e| PluginError::other(format!("a dense input slot: {e}")))
}

/// Prepares every column (TF's checks, vocabulary files), refuses one for which `refuse`
/// gives a reason, and sorts them by name, as TF's input layers order them; a name listed
/// twice is refused.
fn prepare_sorted(
    mut columns: Vec<FeatureColumn>,
    ctx: &FactoryContext<'_>,
    refuse: impl Fn(&FeatureColumn) -> Option<String>,
) -> Result<Vec<FeatureColumn>, PluginError> {
    if columns.is_empty() {
        return Err(PluginError::bad_params("feature_columns must not be empty"));
    }
    for column in &mut columns {
        column.prepare(ctx)?;
        if let Some(why) = refuse(column) {
            return Err(PluginError::bad_params(why));
        }
    }
    columns.sort_by_key(FeatureColumn::name);
    if let Some(pair) = columns.windows(2).find(|w| w[0].name() == w[1].name()) {
        return Err(PluginError::bad_params(format!(
            "feature column `{}` is listed twice",
            pair[0].name()
        )));
    }
    Ok(columns)
}

/// Adds each example's id weights (counts when unweighted) to its row of `out`.
fn add_multi_hot(ids: &SparseIds, mut out: ArrayViewMut2<'_, f32>) -> Result<(), PluginError> {
    if ids.rows() != out.nrows() {
        return Err(PluginError::bad_data(format!(
            "features have different batch sizes: {} and {}",
            ids.rows(),
            out.nrows()
        )));
    }
    for r in 0..ids.rows() {
        let (row_ids, weights) = ids.row(r);
        for (&id, &w) in row_ids.iter().zip(weights) {
            out[[r, id]] += w;
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::abi::{ModeKeys, NamedView, StepContext, TensorView};
    use abi_stable::std_types::RString;
    use ndarray::Array2;

    impl FeatureColumn {
        /// The dense value of a column that needs no variables, as a new matrix.
        fn constant_value(&self, inputs: &ModelInputs<'_>) -> Result<Array2<f32>, PluginError> {
            constant_block(std::iter::once((self, &FeatureHint::default())), inputs)
        }
    }

    pub fn ctx() -> FactoryContext<'static> {
        FactoryContext {
            base_dir: ".".into(),
            seed: 0,
        }
    }

    /// Runs `f` on model inputs holding one-column float features.
    pub fn inputs_with<T>(
        features: &[(&str, &[f32])],
        f: impl FnOnce(&ModelInputs<'_>) -> Result<T, PluginError>,
    ) -> T {
        let shapes: Vec<[usize; 1]> = features.iter().map(|(_, v)| [v.len()]).collect();
        let views: Vec<NamedView<'_>> = features
            .iter()
            .zip(&shapes)
            .map(|((name, values), shape)| NamedView {
                name: (*name).into(),
                tensor: TensorView::f32(shape, values),
            })
            .collect();
        run(&views, f)
    }

    /// Runs `f` on model inputs holding one-column string features.
    pub fn inputs_with_text<T>(
        features: &[(&str, &[&str])],
        f: impl FnOnce(&ModelInputs<'_>) -> Result<T, PluginError>,
    ) -> T {
        let texts: Vec<Vec<RString>> = features
            .iter()
            .map(|(_, v)| v.iter().map(|s| RString::from(*s)).collect())
            .collect();
        let shapes: Vec<[usize; 1]> = features.iter().map(|(_, v)| [v.len()]).collect();
        let views: Vec<NamedView<'_>> = features
            .iter()
            .zip(&shapes)
            .zip(&texts)
            .map(|(((name, _), shape), text)| NamedView {
                name: (*name).into(),
                tensor: TensorView {
                    shape: shape.as_slice().into(),
                    data: crate::abi::TensorData::Str(text.as_slice().into()),
                },
            })
            .collect();
        run(&views, f)
    }

    fn run<T>(
        views: &[NamedView<'_>],
        f: impl FnOnce(&ModelInputs<'_>) -> Result<T, PluginError>,
    ) -> T {
        f(&predict_inputs(views)).expect("the test's inputs are valid")
    }

    /// PREDICT's inputs with `views` as the features.
    pub(crate) fn predict_inputs<'a>(views: &'a [NamedView<'a>]) -> ModelInputs<'a> {
        ModelInputs {
            features: views,
            labels: None,
            mode: ModeKeys::Predict,
            variables: &[],
            specs: &[],
            ctx: StepContext {
                global_step: 0,
                seed: 0,
            },
            train_fetches: None,
        }
    }

    fn column(json: &str) -> FeatureColumn {
        let mut c: FeatureColumn = serde_json::from_str(json).expect("valid column");
        c.prepare(&ctx()).expect("valid arguments");
        c
    }

    #[test]
    fn names_follow_tf() {
        let cases = [
            (r#"{"numeric": "a"}"#, "a"),
            (
                r#"{"bucketized": {"source": "a", "boundaries": [1]}}"#,
                "a_bucketized",
            ),
            (
                r#"{"indicator": {"vocabulary_list": {"key": "c", "vocabulary_list": ["x"]}}}"#,
                "c_indicator",
            ),
            (
                r#"{"embedding": {"categorical_column": {"identity": {"key": "i", "num_buckets": 3}}, "dimension": 2}}"#,
                "i_embedding",
            ),
            (
                r#"{"crossed": {"keys": ["a", "b"], "hash_bucket_size": 10}}"#,
                "a_X_b",
            ),
            (
                r#"{"weighted": {"categorical_column": {"identity": {"key": "i", "num_buckets": 3}}, "weight_feature_key": "w"}}"#,
                "i_weighted_by_w",
            ),
        ];
        for (json, name) in cases {
            assert_eq!(column(json).name(), name);
        }
    }

    #[test]
    fn indicator_counts_repeated_ids_and_sums_weights() {
        // TF: ['c', 'c'] → [0, 0, 2]; weighted [a: 0.5, b: 2.0] → [0.5, 2.0, 0].
        let indicator = column(
            r#"{"indicator": {"vocabulary_list": {"key": "c", "vocabulary_list": ["a", "b", "c"]}}}"#,
        );
        let texts = ["c", "c", "a", "zzz", ""];
        let dense = inputs_with_text(&[("c", &texts)], |i| indicator.constant_value(i));
        assert_eq!(
            dense,
            ndarray::array![
                [0.0, 0.0, 1.0],
                [0.0, 0.0, 1.0],
                [1.0, 0.0, 0.0],
                [0.0; 3],
                [0.0; 3]
            ]
        );
        let weighted = column(
            r#"{"indicator": {"weighted": {"categorical_column": {"identity": {"key": "i", "num_buckets": 3}}, "weight_feature_key": "w"}}}"#,
        );
        let (ids, weights) = ([0.0f32, 1.0, 5.0], [0.5f32, 2.0, 9.0]);
        let dense = inputs_with(&[("i", &ids), ("w", &weights)], |i| {
            weighted.constant_value(i)
        });
        assert_eq!(
            dense,
            ndarray::array![[0.5, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]],
            "id 5 is outside 3 buckets: dropped, as TF 2.15"
        );
    }

    #[test]
    fn bad_arguments_are_refused_as_tf() {
        let refused = |json: &str| {
            let mut c: FeatureColumn = serde_json::from_str(json).expect("parses");
            c.prepare(&ctx()).unwrap_err().message
        };
        assert!(refused(r#"{"indicator": {"numeric": "a"}}"#).contains("not a categorical column"));
        assert!(refused(
            r#"{"crossed": {"keys": [{"hash_bucket": {"key": "h", "hash_bucket_size": 5}}, "b"], "hash_bucket_size": 5}}"#
        )
        .contains("categorical_column_with_hash_bucket is not supported for crossing"));
        assert!(
            refused(r#"{"hash_bucket": {"key": "h", "hash_bucket_size": 0}}"#)
                .contains("hash_bucket_size must be at least 1")
        );
        assert!(refused(
            r#"{"vocabulary_file": {"key": "v", "vocabulary_file": "no/such/file.txt"}}"#
        )
        .contains("no/such/file.txt"));
    }

    /// Runs `f` on model inputs holding `[rows, width]` string features, each row padded
    /// with TF's "missing" value (the empty string) to its feature's widest row.
    pub fn inputs_with_text_rows<T>(
        features: &[(&str, &[Vec<String>])],
        f: impl FnOnce(&ModelInputs<'_>) -> Result<T, PluginError>,
    ) -> T {
        let padded: Vec<(Vec<usize>, Vec<RString>)> = features
            .iter()
            .map(|(_, rows)| {
                let width = rows.iter().map(Vec::len).max().unwrap_or(0);
                let cells = rows
                    .iter()
                    .flat_map(|r| {
                        (0..width).map(|i| RString::from(r.get(i).map_or("", |s| s.as_str())))
                    })
                    .collect();
                (vec![rows.len(), width], cells)
            })
            .collect();
        let views: Vec<NamedView<'_>> = features
            .iter()
            .zip(&padded)
            .map(|((name, _), (shape, cells))| NamedView {
                name: (*name).into(),
                tensor: TensorView {
                    shape: shape.as_slice().into(),
                    data: crate::abi::TensorData::Str(cells.as_slice().into()),
                },
            })
            .collect();
        run(&views, f)
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Examples of a string feature with up to three values each, some missing (empty).
        fn rows() -> impl Strategy<Value = Vec<Vec<String>>> {
            proptest::collection::vec(proptest::collection::vec("[a-c]{0,2}", 0..4), 1..12)
        }

        /// TF's hash bucket of a string: FarmHash Fingerprint64 modulo the bucket count.
        fn tf_hash_bucket(value: &str, buckets: usize) -> usize {
            (farmhash::fingerprint64(value.as_bytes()) % buckets as u64) as usize
        }

        /// A row's present values, in order.
        fn present(row: &[String]) -> Vec<&str> {
            row.iter()
                .map(String::as_str)
                .filter(|v| !v.is_empty())
                .collect()
        }

        proptest! {
            #[test]
            fn hash_bucket_ids_are_tfs_buckets_of_each_present_value(
                rows in rows(),
                size in 1usize..50,
            ) {
                let c = column(&format!(
                    r#"{{"hash_bucket": {{"key": "h", "hash_bucket_size": {size}}}}}"#
                ));
                let ids = inputs_with_text_rows(&[("h", &rows)], |i| c.sparse_ids(i));
                prop_assert_eq!(ids.rows(), rows.len());
                for (r, row) in rows.iter().enumerate() {
                    let expected: Vec<usize> =
                        present(row).iter().map(|v| tf_hash_bucket(v, size)).collect();
                    prop_assert_eq!(ids.row(r).0, expected.as_slice());
                    prop_assert!(ids.row(r).1.iter().all(|&w| w == 1.0));
                }
            }

            #[test]
            fn vocabulary_ids_are_positions_then_oov_buckets(
                rows in rows(),
                oov in 0usize..4,
            ) {
                let vocabulary = ["a", "b", "ab"];
                let c = column(&format!(
                    r#"{{"vocabulary_list": {{"key": "v", "vocabulary_list": ["a", "b", "ab"], "num_oov_buckets": {oov}}}}}"#
                ));
                let ids = inputs_with_text_rows(&[("v", &rows)], |i| c.sparse_ids(i));
                for (r, row) in rows.iter().enumerate() {
                    // TF: the position in the list; else, with OOV buckets, the list's
                    // size plus the value's hash bucket among them; else dropped.
                    let expected: Vec<usize> = present(row)
                        .iter()
                        .filter_map(|v| match vocabulary.iter().position(|w| w == v) {
                            Some(at) => Some(at),
                            None if oov == 0 => None,
                            None => Some(vocabulary.len() + tf_hash_bucket(v, oov)),
                        })
                        .collect();
                    prop_assert_eq!(ids.row(r).0, expected.as_slice());
                }
            }

            #[test]
            fn crossed_ids_are_every_single_cross_in_cartesian_order(
                a in rows(),
                b in rows(),
                size in 1usize..100,
            ) {
                let n = a.len().min(b.len());
                let (a, b) = (&a[..n], &b[..n]);
                let c = column(&format!(
                    r#"{{"crossed": {{"keys": ["a", "b"], "hash_bucket_size": {size}}}}}"#
                ));
                let ids = inputs_with_text_rows(&[("a", a), ("b", b)], |i| c.sparse_ids(i));
                // The cross of one value with one value, which TF's own ids pin
                // (categorical::tests::crossed_ids_match_tensorflow).
                let single = |x: &str, y: &str| -> usize {
                    let (x, y) = (vec![vec![x.to_owned()]], vec![vec![y.to_owned()]]);
                    let one = inputs_with_text_rows(&[("a", &x), ("b", &y)], |i| c.sparse_ids(i));
                    one.ids()[0]
                };
                for r in 0..n {
                    let expected: Vec<usize> = present(&a[r])
                        .iter()
                        .flat_map(|x| present(&b[r]).into_iter().map(move |y| (*x, y)))
                        .map(|(x, y)| single(x, y))
                        .collect();
                    prop_assert_eq!(ids.row(r).0, expected.as_slice());
                }
            }

            #[test]
            fn bucketized_ids_count_the_boundaries_at_or_below_each_value(
                values in proptest::collection::vec(
                    prop_oneof![-100f32..100.0, Just(-10.0f32), Just(0.0), Just(0.5), Just(30.0)],
                    1..20,
                ),
            ) {
                let boundaries = [-10.0f32, 0.0, 0.5, 30.0];
                let c = column(r#"{"bucketized": {"source": "x", "boundaries": [-10, 0, 0.5, 30]}}"#);
                let ids = inputs_with(&[("x", &values)], |i| c.sparse_ids(i));
                // TF's Bucketize: a value equal to a boundary goes to the bucket above it.
                let expected: Vec<usize> = values
                    .iter()
                    .map(|&v| boundaries.iter().filter(|&&b| b <= v).count())
                    .collect();
                prop_assert_eq!(ids.ids(), expected.as_slice());
            }
        }
    }

    #[test]
    fn crossed_ids_cover_every_combination_of_values() {
        let crossed = column(r#"{"crossed": {"keys": ["a", "b"], "hash_bucket_size": 1000}}"#);
        let (a, b) = (["x", "y"], ["p", "p"]);
        let ids = inputs_with_text(&[("a", &a), ("b", &b)], |i| crossed.sparse_ids(i));
        assert_eq!(ids.rows(), 2);
        assert_eq!(ids.row(0).0.len(), 1, "one value each: one cross");
        assert_ne!(ids.row(0).0, ids.row(1).0, "x·p and y·p fall apart");
        assert!(ids.ids().iter().all(|&id| id < 1000));
    }
}
