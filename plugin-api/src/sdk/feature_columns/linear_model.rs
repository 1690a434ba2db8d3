//! TF's `LinearModel`: one zero-initialised weight per column and a bias; categorical
//! columns are used directly, each example's ids picking rows of the column's weights.

use serde::Deserialize;

use crate::abi::{FactoryContext, Initializer, PluginError, VarSpec};
use crate::sdk::layers::Params;
use crate::sdk::plugin::ModelInputs;
use crate::sdk::sparse::Combiner;
use crate::sdk::tape::{Tape, Var};
use crate::sdk::variables::{LayerVars, VarBuilder};
use crate::sdk::FeatureHint;

use super::{constant_block, prepare_sorted, FeatureColumn};

/// TF's `sparse_combiner`: how an example's categorical weights combine (default `sum`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SparseCombiner {
    #[default]
    Sum,
    Mean,
    Sqrtn,
}

impl From<SparseCombiner> for Combiner {
    fn from(c: SparseCombiner) -> Self {
        match c {
            SparseCombiner::Sum => Combiner::Sum,
            SparseCombiner::Mean => Combiner::Mean,
            SparseCombiner::Sqrtn => Combiner::Sqrtn,
        }
    }
}

#[derive(Clone, Debug)]
pub struct LinearModel {
    columns: Vec<FeatureColumn>,
    /// Each column's weights variable, then the bias: their names.
    weights: Vec<String>,
    bias: String,
    /// Their handles, in the same order, once declared.
    vars: LayerVars,
    units: usize,
    combiner: Combiner,
    /// Where each column's feature was in the last batch.
    hints: Vec<FeatureHint>,
}

impl LinearModel {
    /// A linear model over `columns` with `units` outputs; variables are named
    /// `<scope>/<column>/weights` and `<scope>/bias_weights` (TF's scope is
    /// `linear/linear_model`).
    pub fn new(
        columns: Vec<FeatureColumn>,
        units: usize,
        sparse_combiner: SparseCombiner,
        scope: &str,
        ctx: &FactoryContext<'_>,
    ) -> Result<Self, PluginError> {
        let columns = prepare_sorted(columns, ctx, |column| {
            match column {
            FeatureColumn::Embedding(_) => Some(format!(
                "`{}`: a linear model takes categorical columns directly; an embedding column belongs in a DNN",
                column.name()
            )),
            _ => None,
        }
        })?;
        let weights = columns
            .iter()
            .map(|c| format!("{scope}/{}/weights", c.name()))
            .collect();
        Ok(LinearModel {
            hints: columns.iter().map(|_| FeatureHint::default()).collect(),
            columns,
            weights,
            bias: format!("{scope}/bias_weights"),
            vars: LayerVars::default(),
            units,
            combiner: sparse_combiner.into(),
        })
    }

    /// Declares the weights and bias in `vars`; each step reads them through their
    /// handles.
    pub fn declare(mut self, vars: &mut VarBuilder) -> Self {
        self.vars = LayerVars::declare(vars, self.variables());
        self
    }

    /// Rows of a column's weights: its buckets when categorical, else its dense width.
    fn rows(column: &FeatureColumn) -> usize {
        column
            .num_buckets()
            .or_else(|| column.dense_width())
            .unwrap_or(0)
    }

    pub fn variables(&self) -> Vec<VarSpec> {
        let mut vars: Vec<VarSpec> = self
            .columns
            .iter()
            .zip(&self.weights)
            .map(|(c, name)| {
                VarSpec::new(
                    name.as_str(),
                    &[Self::rows(c), self.units],
                    Initializer::Zeros,
                )
            })
            .collect();
        vars.push(VarSpec::new(
            self.bias.as_str(),
            &[self.units],
            Initializer::Zeros,
        ));
        vars
    }

    /// `[batch, units]`: the sum of every column's contribution, plus the bias. A run of
    /// numeric columns contributes through one product (their values side by side times
    /// their weights stacked) rather than one product each: the sum is the same, and a
    /// model of many numeric columns no longer pays a product's set-up per column.
    pub fn apply(
        &self,
        tape: &mut Tape,
        params: &Params,
        inputs: &ModelInputs<'_>,
    ) -> Result<Var, PluginError> {
        // Each column's contribution, or each run of numeric columns', in column order.
        let mut parts: Vec<Var> = Vec::new();
        let mut numeric: Vec<usize> = Vec::new();
        for (i, column) in self.columns.iter().enumerate() {
            if column.num_buckets().is_none() {
                numeric.push(i);
                continue;
            }
            if !numeric.is_empty() {
                parts.push(self.numeric_part(tape, params, inputs, &numeric)?);
                numeric.clear();
            }
            let weights = params.var(self.vars.get(i, &self.weights[i])?);
            let ids = column.sparse_ids(inputs)?;
            parts.push(tape.embedding_lookup(weights, ids, self.combiner)?);
        }
        if !numeric.is_empty() {
            parts.push(self.numeric_part(tape, params, inputs, &numeric)?);
        }
        let (&first, rest) = parts
            .split_first()
            .ok_or_else(|| PluginError::bad_params("feature_columns must not be empty"))?;
        let mut sum = first;
        for &part in rest {
            sum = tape.add(sum, part)?;
        }
        let bias = params.var(self.vars.get(self.columns.len(), &self.bias)?);
        tape.add_bias(sum, bias)
    }

    /// The contribution of the numeric columns `group` (indices into the columns): their
    /// values side by side, times their weights stacked in the same order.
    fn numeric_part(
        &self,
        tape: &mut Tape,
        params: &Params,
        inputs: &ModelInputs<'_>,
        group: &[usize],
    ) -> Result<Var, PluginError> {
        let columns = group.iter().map(|&i| (&self.columns[i], &self.hints[i]));
        let values = constant_block(columns, inputs)?;
        let weights = group
            .iter()
            .map(|&i| Ok(params.var(self.vars.get(i, &self.weights[i])?)))
            .collect::<Result<Vec<Var>, PluginError>>()?;
        let weights = match weights.as_slice() {
            [one] => *one,
            many => tape.stack_rows(many)?,
        };
        let values = tape.constant(values);
        tape.matmul(values, weights)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{ModeKeys, NamedView, StepContext, TensorData, TensorView};
    use crate::sdk::feature_columns::tests::ctx;
    use abi_stable::std_types::RString;

    #[test]
    fn logits_sum_the_weights_of_each_columns_ids_and_values() {
        let columns: Vec<FeatureColumn> = serde_json::from_str(
            r#"[{"vocabulary_list": {"key": "color", "vocabulary_list": ["red", "green", "blue"]}},
                {"numeric": "size"}]"#,
        )
        .expect("valid");
        let model = LinearModel::new(
            columns,
            1,
            SparseCombiner::Sum,
            "linear/linear_model",
            &ctx(),
        )
        .expect("valid");
        let mut declared = VarBuilder::new();
        let model = model.declare(&mut declared);
        let specs = declared.specs();
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "linear/linear_model/color/weights",
                "linear/linear_model/size/weights",
                "linear/linear_model/bias_weights"
            ]
        );
        let (color_w, size_w, bias) = ([1.0f32, 2.0, 3.0], [10.0f32], [0.5f32]);
        let (cs, ss, bs) = ([3usize, 1], [1usize, 1], [1usize]);
        let vars = [
            NamedView {
                name: names[0].into(),
                tensor: TensorView::f32(&cs, &color_w),
            },
            NamedView {
                name: names[1].into(),
                tensor: TensorView::f32(&ss, &size_w),
            },
            NamedView {
                name: names[2].into(),
                tensor: TensorView::f32(&bs, &bias),
            },
        ];
        let colors: Vec<RString> = ["blue", "purple"]
            .iter()
            .map(|s| RString::from(*s))
            .collect();
        let sizes = [2.0f32, 3.0];
        let shape = [2usize];
        let features = [
            NamedView {
                name: "color".into(),
                tensor: TensorView {
                    shape: shape.as_slice().into(),
                    data: TensorData::Str(colors.as_slice().into()),
                },
            },
            NamedView {
                name: "size".into(),
                tensor: TensorView::f32(&shape, &sizes),
            },
        ];
        let inputs = ModelInputs {
            features: &features,
            labels: None,
            mode: ModeKeys::Predict,
            variables: &vars,
            specs: &specs,
            ctx: StepContext {
                global_step: 0,
                seed: 0,
            },
            train_fetches: None,
        };
        let mut tape = Tape::new();
        let params = Params::load(&mut tape, &specs, &vars).expect("matching");
        let logits = model.apply(&mut tape, &params, &inputs).expect("valid");
        // blue: 3 + 10·2 + 0.5; purple is out of vocabulary (dropped): 10·3 + 0.5.
        assert_eq!(
            tape.value(logits).to_owned(),
            ndarray::array![[23.5], [30.5]]
        );
    }
}
