//! TF's `DenseFeatures` (`input_layer`): dense columns, sorted by name, side by side in
//! one `[batch, width]` input. Embedding columns add a trainable table each.

use crate::abi::{FactoryContext, Initializer, PluginError, VarSpec};
use crate::sdk::layers::Params;
use crate::sdk::plugin::ModelInputs;
use crate::sdk::tape::{Tape, Var};
use crate::sdk::variables::{LayerVars, VarBuilder};
use crate::sdk::FeatureHint;

use super::{constant_block, prepare_sorted, FeatureColumn};

#[derive(Clone, Debug)]
pub struct DenseFeatures {
    columns: Vec<FeatureColumn>,
    /// Each column's embedding table name (for embedding columns).
    tables: Vec<Option<String>>,
    /// The tables' handles, in column order, once declared.
    vars: LayerVars,
    /// Where each column's feature was in the last batch.
    hints: Vec<FeatureHint>,
}

impl DenseFeatures {
    /// The input layer over `columns`; embedding tables are named
    /// `<scope>/<column>/embedding_weights`, TF's names under a DNN's
    /// `dnn/input_from_feature_columns/input_layer`.
    pub fn new(
        columns: Vec<FeatureColumn>,
        scope: &str,
        ctx: &FactoryContext<'_>,
    ) -> Result<Self, PluginError> {
        let columns = prepare_sorted(columns, ctx, |column| {
            match column.dense_width() {
            Some(_) => None,
            None => Some(format!(
                "Items of feature_columns must be a DenseColumn. You can wrap a categorical column with an embedding_column or indicator_column. Given: `{}`",
                column.name()
            )),
        }
        })?;
        let tables = columns
            .iter()
            .map(|column| match column {
                FeatureColumn::Embedding(_) => {
                    Some(format!("{scope}/{}/embedding_weights", column.name()))
                }
                _ => None,
            })
            .collect();
        Ok(DenseFeatures {
            hints: columns.iter().map(|_| FeatureHint::default()).collect(),
            columns,
            tables,
            vars: LayerVars::default(),
        })
    }

    /// Declares the embedding tables in `vars`; each step reads them through their
    /// handles.
    pub fn declare(mut self, vars: &mut VarBuilder) -> Self {
        self.vars = LayerVars::declare(vars, self.variables());
        self
    }

    pub fn width(&self) -> usize {
        self.columns
            .iter()
            .filter_map(FeatureColumn::dense_width)
            .sum()
    }

    /// The embedding tables, initialised as TF's: truncated normal with standard
    /// deviation `1/sqrt(dimension)`.
    pub fn variables(&self) -> Vec<VarSpec> {
        self.columns
            .iter()
            .zip(&self.tables)
            .filter_map(|(column, table)| match (column, table) {
                (FeatureColumn::Embedding(e), Some(table)) => Some(VarSpec::new(
                    table.as_str(),
                    &[e.categorical_column.num_buckets().unwrap_or(0), e.dimension],
                    Initializer::TruncatedNormal {
                        stddev: 1.0 / (e.dimension as f32).sqrt(),
                    },
                )),
                _ => None,
            })
            .collect()
    }

    /// The input for one batch: each run of columns without variables is written into
    /// one constant; each embedding column looks its table up.
    pub fn apply(
        &self,
        tape: &mut Tape,
        params: &Params,
        inputs: &ModelInputs<'_>,
    ) -> Result<Var, PluginError> {
        let mut parts = Vec::new();
        // The first column of the current run of dense columns, which become one block.
        let mut run_start = 0;
        let mut tables_seen = 0;
        for (i, (column, table)) in self.columns.iter().zip(&self.tables).enumerate() {
            if let (FeatureColumn::Embedding(e), Some(table)) = (column, table) {
                if run_start < i {
                    parts.push(self.block(tape, run_start..i, inputs)?);
                }
                run_start = i + 1;
                let ids = e.categorical_column.sparse_ids(inputs)?;
                let table = params.var(self.vars.get(tables_seen, table)?);
                tables_seen += 1;
                parts.push(tape.embedding_lookup(table, ids, e.combiner)?);
            }
        }
        if run_start < self.columns.len() {
            let block = self.block(tape, run_start..self.columns.len(), inputs)?;
            if parts.is_empty() {
                return Ok(block);
            }
            parts.push(block);
        }
        match parts.as_slice() {
            [one] => Ok(*one),
            many => tape.concat(many),
        }
    }

    /// Columns `range`, none of them an embedding, as one constant block.
    fn block(
        &self,
        tape: &mut Tape,
        range: std::ops::Range<usize>,
        inputs: &ModelInputs<'_>,
    ) -> Result<Var, PluginError> {
        let columns = self.columns[range.clone()].iter().zip(&self.hints[range]);
        Ok(tape.constant(constant_block(columns, inputs)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{NamedView, TensorView};
    use crate::sdk::feature_columns::tests::{ctx, inputs_with};
    use ndarray::Array2;

    fn columns(json: &str) -> Vec<FeatureColumn> {
        serde_json::from_str(json).expect("valid columns")
    }

    #[test]
    fn columns_are_sorted_by_name_and_normalized() {
        let dense = DenseFeatures::new(
            columns(
                r#"[{"numeric": {"key": "b", "normalizer": {"min_max": {"min": 0, "max": 4}}}},
                    {"numeric": {"key": "a", "normalizer": {"z_score": {"mean": 10, "std": 2}}}}]"#,
            ),
            "input_layer",
            &ctx(),
        )
        .expect("valid");
        assert_eq!(dense.width(), 2);
        let (a, b) = ([12.0f32, 7.0], [1.0f32, 4.0]);
        let x = inputs_with(&[("a", &a), ("b", &b)], |inputs| {
            let mut tape = Tape::new();
            let params = Params::load(&mut tape, &[], &[])?;
            let x = dense.apply(&mut tape, &params, inputs)?;
            Ok(tape.value(x).to_owned())
        });
        assert_eq!(x, ndarray::array![[1.0, 0.25], [-1.5, 1.0]]);
    }

    fn view<'a>(name: &'a str, shape: &'a [usize], values: &'a [f32]) -> NamedView<'a> {
        NamedView {
            name: name.into(),
            tensor: TensorView::f32(shape, values),
        }
    }

    /// `dense`'s input block for `views`, or its error.
    fn block(dense: &DenseFeatures, views: &[NamedView<'_>]) -> Result<Array2<f32>, PluginError> {
        let inputs = crate::sdk::feature_columns::tests::predict_inputs(views);
        let mut tape = Tape::new();
        let params = Params::load(&mut tape, &[], &[])?;
        let x = dense.apply(&mut tape, &params, &inputs)?;
        Ok(tape.value(x).to_owned())
    }

    #[test]
    fn every_kind_of_column_lands_in_its_own_columns_of_the_block() {
        // One value per example ([batch] and [batch, 1]: copied whole), two values per
        // example (row-major input into the column-major block) and a one-hot bucket.
        let dense = DenseFeatures::new(
            columns(
                r#"[{"numeric": "a"}, {"numeric": "b"}, {"numeric": {"key": "c", "shape": 2}},
                    {"bucketized": {"source": "a", "boundaries": [0, 10]}}]"#,
            ),
            "input_layer",
            &ctx(),
        )
        .expect("valid");
        let (a, b, c) = (
            [-1.0f32, 5.0, 12.0],
            [0.5f32, 1.5, 2.5],
            [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0],
        );
        let views = [
            view("a", &[3], &a),
            view("b", &[3, 1], &b),
            view("c", &[3, 2], &c),
        ];
        // Columns sorted by name: a, a_bucketized, b, c.
        let want = ndarray::array![
            [-1.0, 1.0, 0.0, 0.0, 0.5, 1.0, 2.0],
            [5.0, 0.0, 1.0, 0.0, 1.5, 3.0, 4.0],
            [12.0, 0.0, 0.0, 1.0, 2.5, 5.0, 6.0],
        ];
        assert_eq!(block(&dense, &views).expect("valid"), want);
        // A feature of another batch size is refused, not copied in part.
        let short = [1.0f32, 2.0];
        let views = [
            view("a", &[3], &a),
            view("b", &[2], &short),
            view("c", &[3, 2], &c),
        ];
        let err = block(&dense, &views).unwrap_err();
        assert!(
            err.message
                .contains("feature `b` has shape [2, 1], expected [3, 1]"),
            "{err}"
        );
    }

    #[test]
    fn a_bare_categorical_column_is_refused_as_tf() {
        let err = DenseFeatures::new(
            columns(r#"[{"hash_bucket": {"key": "h", "hash_bucket_size": 5}}]"#),
            "input_layer",
            &ctx(),
        )
        .unwrap_err();
        assert!(
            err.message.contains(
                "You can wrap a categorical column with an embedding_column or indicator_column"
            ),
            "{err}"
        );
    }

    #[test]
    fn embeddings_combine_rows_as_tf_and_train_only_the_rows_looked_up() {
        // TF: ids [a, b] with rows [1, 0], [0, 1] → sum [1, 1], mean [.5, .5],
        // sqrtn [.7071, .7071].
        for (combiner, expected) in [
            ("sum", 1.0f32),
            ("mean", 0.5),
            ("sqrtn", std::f32::consts::FRAC_1_SQRT_2),
        ] {
            let json = format!(
                r#"[{{"embedding": {{"categorical_column": {{"identity": {{"key": "i", "num_buckets": 3}}}},
                     "dimension": 2, "combiner": "{combiner}"}}}}]"#
            );
            let mut declared = VarBuilder::new();
            let dense = DenseFeatures::new(columns(&json), "input_layer", &ctx())
                .expect("valid")
                .declare(&mut declared);
            let specs = declared.specs();
            assert_eq!(
                specs[0].name.as_str(),
                "input_layer/i_embedding/embedding_weights"
            );
            assert_eq!(specs[0].shape.as_slice(), &[3, 2]);
            let table = [1.0f32, 0.0, 0.0, 1.0, 5.0, 5.0];
            let shape = [3usize, 2];
            let vars = [NamedView {
                name: specs[0].name.as_str().into(),
                tensor: crate::abi::TensorView::f32(&shape, &table),
            }];
            // One example holding ids 0 and 1, as a [1, 2] feature.
            let ids = [0.0f32, 1.0];
            let id_shape = [1usize, 2];
            let features = [NamedView {
                name: "i".into(),
                tensor: crate::abi::TensorView::f32(&id_shape, &ids),
            }];
            let inputs = ModelInputs {
                features: &features,
                labels: None,
                mode: crate::abi::ModeKeys::Train,
                variables: &vars,
                specs: &specs,
                ctx: crate::abi::StepContext {
                    global_step: 0,
                    seed: 0,
                },
                train_fetches: None,
            };
            let mut tape = Tape::new();
            let params = Params::load(&mut tape, &specs, &vars).expect("matching");
            let x = dense.apply(&mut tape, &params, &inputs).expect("valid");
            let got = tape.value(x).to_owned();
            assert!(
                got.iter().all(|v| (v - expected).abs() < 1e-6),
                "{combiner}: {got}"
            );
            let loss = tape
                .mean_squared_error(x, ndarray::Array2::zeros((1, 2)))
                .expect("shape");
            let grads = tape.backward(loss);
            let g = grads
                .of(params.get(specs[0].name.as_str()).expect("table"))
                .expect("grad");
            assert_eq!(g.row(2).to_vec(), vec![0.0, 0.0], "row 2 was not looked up");
            assert!(g.row(0).iter().all(|v| *v != 0.0));
            // Across the ABI the table's gradient holds the two rows looked up, not three.
            let sent = params.gradients(tape.backward(loss));
            let table = &sent[0];
            assert_eq!(
                table.rows.as_ref().map(|r| r.to_vec()),
                Some(vec![0, 1]).into()
            );
            assert_eq!(table.values.shape.as_slice(), &[2, 2]);
        }
    }
}
