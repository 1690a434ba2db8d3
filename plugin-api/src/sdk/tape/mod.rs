//! A small reverse-mode autodiff tape over `[batch, width]` matrices.
//!
//! Each operation appends a node holding its value and what it was computed from;
//! [`Tape::backward`] walks the nodes in reverse and accumulates gradients. The tape is
//! rebuilt every step, which keeps it simple: no graph, no shapes to infer ahead of time.
//! Nodes computed only from constants (the features and what follows from them alone) get
//! no gradient, and an op whose input gradient has the output gradient's shape reuses its
//! buffer, so a step allocates little beyond the values themselves.

use ndarray::{Array2, ArrayView2, Axis, CowArray, Ix2, Zip};
use serde::Deserialize;

use crate::abi::PluginError;

use super::sparse::{Combiner, SparseIds};

use super::view::softmax_rows;

pub(crate) mod buffers;
mod elementwise;
mod losses;
mod product;
mod reduce;
mod shape;
#[cfg(test)]
pub(crate) mod test_support;

use elementwise::{Binary, Unary};
pub use reduce::Over;

/// A handle to a value on the tape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Var(usize);

enum Op {
    /// A value that needs no gradient (features, non-trainable variables).
    Constant,
    /// A value whose gradient is wanted (trainable variables).
    Param,
    MatMul(Var, Var),
    /// `[batch, n] + [1, n]`, the bias broadcast over rows.
    AddBias(Var, Var),
    /// `x · kernel + bias`, a dense layer's product and bias in one node; with `relu`,
    /// `max(0, x · kernel + bias)`.
    Affine {
        x: Var,
        kernel: Var,
        bias: Var,
        relu: bool,
    },
    /// A function of each element.
    Unary {
        x: Var,
        f: Unary,
    },
    /// A function of two values' elements, one of them possibly broadcast.
    Binary {
        a: Var,
        b: Var,
        f: Binary,
    },
    /// A sum, or a mean, over rows, columns or everything.
    Reduce {
        x: Var,
        over: Over,
        mean: bool,
    },
    Softmax(Var),
    LogSoftmax(Var),
    /// Columns `start..` of a value, as many as the node has.
    Slice {
        x: Var,
        start: usize,
    },
    Transpose(Var),
    /// Values placed side by side: `[batch, a] ‖ [batch, b] ‖ …`.
    Concat(Vec<Var>),
    /// Values stacked one above the other: `[a, n]` over `[b, n]` over …
    StackRows(Vec<Var>),
    /// Per row, the combined rows of a table picked by sparse ids.
    EmbeddingLookup {
        table: Var,
        ids: SparseIds,
        /// Each row's factor from the combiner.
        scales: Vec<f32>,
    },
    /// Elementwise product with a constant (a dropout mask).
    Mask {
        x: Var,
        mask: Array2<f32>,
    },
    /// `gamma · (x − mean) / sqrt(var + ε) + beta` per column; with `batch_statistics`
    /// the mean and variance are the batch's own, so the gradient flows through them.
    Normalize {
        x: Var,
        gamma: Var,
        beta: Var,
        normalized: Array2<f32>,
        inv_std: Vec<f32>,
        batch_statistics: bool,
    },
    Relu(Var),
    Tanh(Var),
    Sigmoid(Var),
    /// Reduced sparse softmax cross-entropy; keeps the softmax for backward.
    SparseSoftmaxCrossEntropy {
        logits: Var,
        labels: Vec<usize>,
        probabilities: Array2<f32>,
        loss: Loss,
    },
    /// Reduced sigmoid cross-entropy of `[batch, 1]` logits against targets in [0, 1].
    SigmoidCrossEntropy {
        logits: Var,
        targets: Vec<f32>,
        loss: Loss,
    },
    /// Reduced squared difference to a constant target.
    SquaredError {
        predictions: Var,
        targets: Array2<f32>,
        loss: Loss,
    },
}

/// How per-example losses become the scalar loss, TF's `tf.losses.Reduction`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossReduction {
    /// `Σ weight·loss / number of loss elements` (not / Σ weight, as TF).
    #[default]
    #[serde(alias = "auto")]
    SumOverBatchSize,
    /// `Σ weight·loss`.
    Sum,
}

/// Example weights (TF's `weight_column`) and the reduction for a loss op.
#[derive(Clone, Copy, Debug, Default)]
pub struct Weighting<'w> {
    /// One weight per example; all 1 when absent.
    pub weights: Option<&'w [f32]>,
    pub reduction: LossReduction,
}

impl Weighting<'_> {
    /// The factor of each example's loss in the scalar loss, for `rows` examples of
    /// `per_row` loss elements each.
    fn scales(&self, rows: usize, per_row: usize) -> Result<Scales, PluginError> {
        let divisor = match self.reduction {
            LossReduction::SumOverBatchSize => (rows * per_row).max(1) as f32,
            LossReduction::Sum => 1.0,
        };
        match self.weights {
            None => Ok(Scales::Uniform {
                scale: 1.0 / divisor,
                rows,
            }),
            Some(w) if w.len() == rows => {
                Ok(Scales::PerRow(w.iter().map(|w| w / divisor).collect()))
            }
            Some(w) => Err(PluginError::bad_data(format!(
                "{} example weights for a batch of {rows}",
                w.len()
            ))),
        }
    }
}

/// Each example's factor in the scalar loss: one factor for every example when there are
/// no weights, which spares a loss a list of equal numbers every step.
enum Scales {
    Uniform { scale: f32, rows: usize },
    PerRow(Vec<f32>),
}

impl Scales {
    fn len(&self) -> usize {
        match self {
            Scales::Uniform { rows, .. } => *rows,
            Scales::PerRow(scales) => scales.len(),
        }
    }

    /// Each example's factor, in order.
    fn iter(&self) -> impl Iterator<Item = f32> + '_ {
        (0..self.len()).map(move |row| match self {
            Scales::Uniform { scale, .. } => *scale,
            Scales::PerRow(scales) => scales[row],
        })
    }
}

/// What a loss op keeps: each example's factor in the scalar loss and the unweighted
/// per-element losses (for metrics such as `average_loss`).
struct Loss {
    scales: Scales,
    elements: Vec<f32>,
}

impl Loss {
    fn new(scales: Scales, elements: Vec<f32>) -> (Array2<f32>, Loss) {
        let per_row = elements.len().checked_div(scales.len()).unwrap_or(0).max(1);
        let total: f32 = elements
            .chunks(per_row)
            .zip(scales.iter())
            .map(|(row, s)| row.iter().sum::<f32>() * s)
            .sum();
        (Array2::from_elem((1, 1), total), Loss { scales, elements })
    }
}

pub(crate) struct Node<'v> {
    /// Borrowed for parameters (the host's variables, for the length of one model_fn
    /// call), owned for everything computed.
    value: CowArray<'v, f32, Ix2>,
    op: Op,
    /// Whether any parameter leads to this node, so that its gradient is wanted.
    needs_grad: bool,
}

/// The tape: values in creation order, each with the operation that produced it.
#[derive(Default)]
pub struct Tape<'v> {
    nodes: Vec<Node<'v>>,
}

impl Drop for Tape<'_> {
    /// Gives the buffers of the values computed, and of a loss's targets, back for the
    /// next step's tape, and the emptied list of nodes too. Buffers are taken out of the
    /// nodes where they lie: moving each node out would copy it.
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if node.value.is_owned() {
                let value =
                    std::mem::replace(&mut node.value, CowArray::from(Array2::zeros((0, 0))));
                buffers::give_array(value.into_owned());
            }
            match &mut node.op {
                Op::SquaredError { targets, loss, .. } => {
                    buffers::give_array(std::mem::take(targets));
                    buffers::give(std::mem::take(&mut loss.elements));
                }
                Op::SparseSoftmaxCrossEntropy {
                    probabilities,
                    loss,
                    ..
                } => {
                    buffers::give_array(std::mem::take(probabilities));
                    buffers::give(std::mem::take(&mut loss.elements));
                }
                Op::SigmoidCrossEntropy { targets, loss, .. } => {
                    buffers::give(std::mem::take(targets));
                    buffers::give(std::mem::take(&mut loss.elements));
                }
                _ => {}
            }
        }
        buffers::give_nodes(std::mem::take(&mut self.nodes));
    }
}

/// A gradient for some rows of a `[rows, width]` parameter, TF's `IndexedSlices`: what
/// an embedding lookup gives its table. A row may appear more than once.
#[derive(Clone, Debug, PartialEq)]
pub struct RowGradient {
    pub rows: Vec<usize>,
    /// `rows.len() × width` values, row after row.
    pub values: Vec<f32>,
    pub width: usize,
}

impl RowGradient {
    /// Adds these rows into a dense gradient of the whole parameter.
    pub fn add_to(&self, dense: &mut Array2<f32>) {
        for (&row, values) in self.rows.iter().zip(self.values.chunks(self.width.max(1))) {
            for (d, v) in dense.row_mut(row).iter_mut().zip(values) {
                *d += v;
            }
        }
    }
}

/// A parameter's gradient as backward leaves it.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamGradient {
    Dense(Array2<f32>),
    /// The parameter was used only as a lookup table.
    Rows(RowGradient),
}

/// Gradients of one scalar with respect to the parameters that led to it.
pub struct Gradients {
    grads: Vec<Option<Array2<f32>>>,
    rows: Vec<Option<RowGradient>>,
    shapes: Vec<(usize, usize)>,
}

impl Gradients {
    /// The gradient of parameter `var` as a dense matrix, or `None` when the loss does not
    /// depend on it.
    pub fn of(&self, var: Var) -> Option<Array2<f32>> {
        let dense = self.grads.get(var.0).and_then(Option::as_ref);
        let rows = self.rows.get(var.0).and_then(Option::as_ref);
        match (dense, rows) {
            (None, None) => None,
            (Some(d), None) => Some(d.clone()),
            (d, Some(r)) => {
                let mut out = d
                    .cloned()
                    .unwrap_or_else(|| Array2::zeros(self.shapes[var.0]));
                r.add_to(&mut out);
                Some(out)
            }
        }
    }

    /// Moves the gradient of parameter `var` out: row-sparse when the parameter was only
    /// looked up, dense otherwise.
    pub fn take(&mut self, var: Var) -> Option<ParamGradient> {
        let dense = self.grads.get_mut(var.0).and_then(Option::take);
        let rows = self.rows.get_mut(var.0).and_then(Option::take);
        match (dense, rows) {
            (None, None) => None,
            (Some(d), None) => Some(ParamGradient::Dense(d)),
            (None, Some(r)) => Some(ParamGradient::Rows(r)),
            (Some(mut d), Some(r)) => {
                r.add_to(&mut d);
                Some(ParamGradient::Dense(d))
            }
        }
    }
}

impl Drop for Gradients {
    /// Gives the buffers of the gradients not taken back for the next step's tape.
    fn drop(&mut self) {
        for grad in self.grads.drain(..).flatten() {
            buffers::give_array(grad);
        }
    }
}

/// Gradients while backward accumulates them: dense per node, and row-sparse for
/// parameters looked up as tables.
struct Accumulated {
    dense: Vec<Option<Array2<f32>>>,
    /// Empty until a table's gradient arrives, then one slot per node.
    rows: Vec<Option<RowGradient>>,
}

impl Accumulated {
    /// Node `index`'s row gradient, on a tape of `nodes` nodes.
    fn row_slot(&mut self, index: usize, nodes: usize) -> &mut Option<RowGradient> {
        if self.rows.is_empty() {
            self.rows.resize_with(nodes, || None);
        }
        &mut self.rows[index]
    }
}

impl<'v> Tape<'v> {
    pub fn new() -> Self {
        Tape {
            nodes: buffers::take_nodes(),
        }
    }

    fn push(&mut self, value: Array2<f32>, op: Op) -> Var {
        self.push_cow(CowArray::from(value), op)
    }

    fn push_cow(&mut self, value: CowArray<'v, f32, Ix2>, op: Op) -> Var {
        let needs = |v: &Var| self.nodes[v.0].needs_grad;
        let needs_grad = match &op {
            Op::Constant => false,
            Op::Param => true,
            Op::MatMul(a, b) | Op::AddBias(a, b) | Op::Binary { a, b, .. } => needs(a) || needs(b),
            Op::Affine {
                x, kernel, bias, ..
            } => needs(x) || needs(kernel) || needs(bias),
            Op::Unary { x, .. }
            | Op::Reduce { x, .. }
            | Op::Softmax(x)
            | Op::LogSoftmax(x)
            | Op::Slice { x, .. }
            | Op::Transpose(x) => needs(x),
            Op::Concat(parts) | Op::StackRows(parts) => parts.iter().any(needs),
            Op::Mask { x, .. } => needs(x),
            Op::Normalize { x, gamma, beta, .. } => needs(x) || needs(gamma) || needs(beta),
            Op::EmbeddingLookup { table, .. } => needs(table),
            Op::Relu(x) | Op::Tanh(x) | Op::Sigmoid(x) => needs(x),
            Op::SparseSoftmaxCrossEntropy { logits: x, .. }
            | Op::SigmoidCrossEntropy { logits: x, .. }
            | Op::SquaredError { predictions: x, .. } => needs(x),
        };
        self.nodes.push(Node {
            value,
            op,
            needs_grad,
        });
        Var(self.nodes.len() - 1)
    }

    pub fn value(&self, var: Var) -> ArrayView2<'_, f32> {
        self.nodes[var.0].value.view()
    }

    /// The value of a scalar node (a loss).
    pub fn scalar(&self, var: Var) -> f32 {
        self.nodes[var.0].value[[0, 0]]
    }

    pub fn constant(&mut self, value: Array2<f32>) -> Var {
        self.push(value, Op::Constant)
    }

    /// A parameter read in place: no copy of the host's variable.
    pub fn param_view(&mut self, value: ArrayView2<'v, f32>) -> Var {
        self.push_cow(CowArray::from(value), Op::Param)
    }

    /// A constant read in place (a non-trainable variable).
    pub fn constant_view(&mut self, value: ArrayView2<'v, f32>) -> Var {
        self.push_cow(CowArray::from(value), Op::Constant)
    }

    pub fn param(&mut self, value: Array2<f32>) -> Var {
        self.push(value, Op::Param)
    }

    pub fn matmul(&mut self, a: Var, b: Var) -> Result<Var, PluginError> {
        let (av, bv) = (&self.nodes[a.0].value, &self.nodes[b.0].value);
        if av.ncols() != bv.nrows() {
            return Err(PluginError::bad_data(format!(
                "matmul: shapes {:?} and {:?} do not fit",
                av.shape(),
                bv.shape()
            )));
        }
        let value = product::product(av.view(), bv.view());
        Ok(self.push(value, Op::MatMul(a, b)))
    }

    pub fn add_bias(&mut self, x: Var, bias: Var) -> Result<Var, PluginError> {
        let (xv, bv) = (&self.nodes[x.0].value, &self.nodes[bias.0].value);
        if bv.nrows() != 1 || bv.ncols() != xv.ncols() {
            return Err(PluginError::bad_data(format!(
                "add_bias: bias shape {:?} does not fit input {:?}",
                bv.shape(),
                xv.shape()
            )));
        }
        let mut value = xv.as_standard_layout().into_owned();
        add_to_rows(&mut value, bv.view());
        Ok(self.push(value, Op::AddBias(x, bias)))
    }

    /// `x · kernel + bias`: [`Tape::matmul`] then [`Tape::add_bias`], the same values, in
    /// one node, without the product's copy.
    pub fn affine(&mut self, x: Var, kernel: Var, bias: Var) -> Result<Var, PluginError> {
        self.dense(x, kernel, bias, false)
    }

    /// `max(0, x · kernel + bias)`: [`Tape::affine`] then [`Tape::relu`], the same values,
    /// in one node.
    pub fn affine_relu(&mut self, x: Var, kernel: Var, bias: Var) -> Result<Var, PluginError> {
        self.dense(x, kernel, bias, true)
    }

    fn dense(&mut self, x: Var, kernel: Var, bias: Var, relu: bool) -> Result<Var, PluginError> {
        let (xv, kv, bv) = (
            &self.nodes[x.0].value,
            &self.nodes[kernel.0].value,
            &self.nodes[bias.0].value,
        );
        if xv.ncols() != kv.nrows() || bv.nrows() != 1 || bv.ncols() != kv.ncols() {
            return Err(PluginError::bad_data(format!(
                "affine: shapes {:?} · {:?} + {:?} do not fit",
                xv.shape(),
                kv.shape(),
                bv.shape()
            )));
        }
        let value = product::affine(xv.view(), kv.view(), Some(bv.view()), relu);
        Ok(self.push(
            value,
            Op::Affine {
                x,
                kernel,
                bias,
                relu,
            },
        ))
    }

    /// The values side by side, in order; all must have the same number of rows.
    pub fn concat(&mut self, parts: &[Var]) -> Result<Var, PluginError> {
        let value = self.joined(parts, Axis(1), "concat")?;
        Ok(self.push(value, Op::Concat(parts.to_vec())))
    }

    /// The values stacked in order, rows after rows; all must have the same number of
    /// columns. (A linear model's per-column weights as one matrix, so that its numeric
    /// columns take one product rather than one each.)
    pub fn stack_rows(&mut self, parts: &[Var]) -> Result<Var, PluginError> {
        let value = self.joined(parts, Axis(0), "stack_rows")?;
        Ok(self.push(value, Op::StackRows(parts.to_vec())))
    }

    /// `parts` joined along `axis` (1: side by side, 0: one above the other), refused when
    /// their lengths across it differ.
    fn joined(&self, parts: &[Var], axis: Axis, op: &str) -> Result<Array2<f32>, PluginError> {
        let across = |v: &ArrayView2<'_, f32>| v.len_of(Axis(1 - axis.index()));
        let views: Vec<ArrayView2<'_, f32>> =
            parts.iter().map(|p| self.nodes[p.0].value.view()).collect();
        let want = views.first().map_or(0, across);
        if let Some(bad) = views.iter().find(|v| across(v) != want) {
            let (unit, placed) = match axis.index() {
                1 => ("rows", "next to"),
                _ => ("columns", "under"),
            };
            return Err(PluginError::bad_data(format!(
                "{op}: {} {unit} {placed} {want}",
                across(bad)
            )));
        }
        if axis == Axis(0) {
            if let Some(stacked) = stack_slices(&views, want) {
                return Ok(stacked);
            }
        }
        ndarray::concatenate(axis, &views).map_err(|e| PluginError::bad_data(format!("{op}: {e}")))
    }

    /// Per example, the rows of `table` `[buckets, dim]` its ids pick, weighted and
    /// combined as TF's `safe_embedding_lookup_sparse`: `sum`, `mean` (divided by the sum
    /// of weights) or `sqrtn` (by the root of the sum of squared weights). An example with
    /// no ids gets zeros. The table's gradient touches only the rows looked up.
    pub fn embedding_lookup(
        &mut self,
        table: Var,
        ids: SparseIds,
        combiner: Combiner,
    ) -> Result<Var, PluginError> {
        let tv = &self.nodes[table.0].value;
        let (buckets, dim) = tv.dim();
        if let Some(&id) = ids.ids().iter().find(|&&id| id >= buckets) {
            return Err(PluginError::bad_data(format!(
                "embedding_lookup: id {id} is outside a table of {buckets} rows"
            )));
        }
        let scales: Vec<f32> = (0..ids.rows())
            .map(|r| combiner.scale(ids.row(r).1))
            .collect();
        let mut value = Array2::zeros((ids.rows(), dim));
        for (r, mut out) in value.rows_mut().into_iter().enumerate() {
            let (row_ids, weights) = ids.row(r);
            for (&id, &w) in row_ids.iter().zip(weights) {
                out.scaled_add(w * scales[r], &tv.row(id));
            }
        }
        Ok(self.push(value, Op::EmbeddingLookup { table, ids, scales }))
    }

    /// `x · mask`, elementwise, with a constant mask of `x`'s shape (dropout).
    pub fn mask(&mut self, x: Var, mask: Array2<f32>) -> Result<Var, PluginError> {
        let xv = &self.nodes[x.0].value;
        if xv.dim() != mask.dim() {
            return Err(PluginError::bad_data(format!(
                "mask: shape {:?} does not fit {:?}",
                mask.shape(),
                xv.shape()
            )));
        }
        let value = xv * &mask;
        Ok(self.push(value, Op::Mask { x, mask }))
    }

    /// Batch normalization of `x` `[batch, n]` by column: `gamma · (x − mean) /
    /// sqrt(variance + epsilon) + beta`, with `gamma` and `beta` `[1, n]`. With
    /// `batch_statistics` (training), `mean` and `variance` must be the batch's own
    /// (biased) statistics and the gradient accounts for them; otherwise they are
    /// constants (the moving averages).
    pub fn normalize(
        &mut self,
        x: Var,
        (gamma, beta): (Var, Var),
        (mean, variance): (&[f32], &[f32]),
        epsilon: f32,
        batch_statistics: bool,
    ) -> Result<Var, PluginError> {
        let xv = &self.nodes[x.0].value;
        let n = xv.ncols();
        let (gv, bv) = (&self.nodes[gamma.0].value, &self.nodes[beta.0].value);
        if gv.dim() != (1, n) || bv.dim() != (1, n) || mean.len() != n || variance.len() != n {
            return Err(PluginError::bad_data(format!(
                "normalize: gamma {:?}, beta {:?}, {} means and {} variances for {n} columns",
                gv.shape(),
                bv.shape(),
                mean.len(),
                variance.len()
            )));
        }
        let inv_std: Vec<f32> = variance
            .iter()
            .map(|v| 1.0 / (v + epsilon).sqrt())
            .collect();
        let mut normalized = xv.to_owned();
        for mut row in normalized.rows_mut() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (*v - mean[j]) * inv_std[j];
            }
        }
        let mut value = normalized.clone();
        for mut row in value.rows_mut() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = gv[[0, j]] * *v + bv[[0, j]];
            }
        }
        Ok(self.push(
            value,
            Op::Normalize {
                x,
                gamma,
                beta,
                normalized,
                inv_std,
                batch_statistics,
            },
        ))
    }

    pub fn relu(&mut self, x: Var) -> Var {
        let value = self.nodes[x.0].value.mapv(|v| v.max(0.0));
        self.push(value, Op::Relu(x))
    }

    pub fn tanh(&mut self, x: Var) -> Var {
        let value = self.nodes[x.0].value.mapv(f32::tanh);
        self.push(value, Op::Tanh(x))
    }

    pub fn sigmoid(&mut self, x: Var) -> Var {
        let value = self.nodes[x.0].value.mapv(|v| 1.0 / (1.0 + (-v).exp()));
        self.push(value, Op::Sigmoid(x))
    }

    /// The unweighted loss of each element behind a loss op (`[batch]` for the
    /// cross-entropies, `[batch · width]` for the squared error); empty for other nodes.
    pub fn element_losses(&self, loss: Var) -> &[f32] {
        match &self.nodes[loss.0].op {
            Op::SparseSoftmaxCrossEntropy { loss, .. }
            | Op::SigmoidCrossEntropy { loss, .. }
            | Op::SquaredError { loss, .. } => &loss.elements,
            _ => &[],
        }
    }

    /// The softmax of the logits behind a softmax cross-entropy op, which it computed
    /// anyway: a head's `probabilities` prediction need not compute it again. `None` for
    /// other nodes.
    pub fn loss_softmax(&self, loss: Var) -> Option<ArrayView2<'_, f32>> {
        match &self.nodes[loss.0].op {
            Op::SparseSoftmaxCrossEntropy { probabilities, .. } => Some(probabilities.view()),
            _ => None,
        }
    }

    /// Mean sparse softmax cross-entropy of `logits` `[batch, classes]` against class ids.
    /// An id outside `[0, classes)` is an error naming it, as TF's label range assertion.
    pub fn sparse_softmax_cross_entropy(
        &mut self,
        logits: Var,
        labels: &[i64],
    ) -> Result<Var, PluginError> {
        self.weighted_softmax_cross_entropy(logits, labels, Weighting::default())
    }

    /// Sparse softmax cross-entropy, each example's loss weighted and reduced as `weighting`
    /// says.
    pub fn weighted_softmax_cross_entropy(
        &mut self,
        logits: Var,
        labels: &[i64],
        weighting: Weighting<'_>,
    ) -> Result<Var, PluginError> {
        let lv = &self.nodes[logits.0].value;
        let (rows, classes) = lv.dim();
        if labels.len() != rows {
            return Err(PluginError::bad_data(format!(
                "{} labels for a batch of {rows} logits",
                labels.len()
            )));
        }
        let mut ids = Vec::with_capacity(rows);
        for &label in labels {
            match usize::try_from(label) {
                Ok(id) if id < classes => ids.push(id),
                _ => {
                    return Err(PluginError::bad_data(format!(
                        "label {label} is outside [0, {classes})"
                    )))
                }
            }
        }
        let probabilities = softmax_rows(lv.view());
        let elements = ids
            .iter()
            .enumerate()
            .map(|(row, &id)| -probabilities[[row, id]].max(f32::MIN_POSITIVE).ln())
            .collect();
        let (value, loss) = Loss::new(weighting.scales(rows, 1)?, elements);
        Ok(self.push(
            value,
            Op::SparseSoftmaxCrossEntropy {
                logits,
                labels: ids,
                probabilities,
                loss,
            },
        ))
    }

    /// Sigmoid cross-entropy of `[batch, 1]` logits against targets in [0, 1], TF's
    /// `sigmoid_cross_entropy_with_logits` (`max(x, 0) − x·z + log(1 + e^−|x|)`), weighted
    /// and reduced as `weighting` says.
    pub fn sigmoid_cross_entropy(
        &mut self,
        logits: Var,
        targets: Vec<f32>,
        weighting: Weighting<'_>,
    ) -> Result<Var, PluginError> {
        let lv = &self.nodes[logits.0].value;
        if lv.ncols() != 1 || targets.len() != lv.nrows() {
            return Err(PluginError::bad_data(format!(
                "sigmoid_cross_entropy: {} targets for logits of shape {:?}",
                targets.len(),
                lv.shape()
            )));
        }
        let elements = lv
            .iter()
            .zip(&targets)
            .map(|(&x, &z)| x.max(0.0) - x * z + (-x.abs()).exp().ln_1p())
            .collect();
        let (value, loss) = Loss::new(weighting.scales(targets.len(), 1)?, elements);
        Ok(self.push(
            value,
            Op::SigmoidCrossEntropy {
                logits,
                targets,
                loss,
            },
        ))
    }

    /// Mean over all elements of `(predictions - targets)^2`.
    pub fn mean_squared_error(
        &mut self,
        predictions: Var,
        targets: Array2<f32>,
    ) -> Result<Var, PluginError> {
        self.squared_error(predictions, targets, Weighting::default())
    }

    /// `(predictions - targets)^2` per element, each row weighted and reduced as
    /// `weighting` says.
    pub fn squared_error(
        &mut self,
        predictions: Var,
        targets: Array2<f32>,
        weighting: Weighting<'_>,
    ) -> Result<Var, PluginError> {
        let pv = &self.nodes[predictions.0].value;
        if pv.dim() != targets.dim() {
            return Err(PluginError::bad_data(format!(
                "squared_error: predictions {:?} and targets {:?} differ in shape",
                pv.shape(),
                targets.shape()
            )));
        }
        let mut elements = buffers::take(pv.len());
        elements.extend(pv.iter().zip(&targets).map(|(p, t)| (p - t) * (p - t)));
        let scales = weighting.scales(pv.nrows(), pv.ncols())?;
        let (value, loss) = Loss::new(scales, elements);
        Ok(self.push(
            value,
            Op::SquaredError {
                predictions,
                targets,
                loss,
            },
        ))
    }

    /// Gradients of the scalar `output` with respect to every parameter before it.
    pub fn backward(&self, output: Var) -> Gradients {
        let n = output.0 + 1;
        let mut grads = Accumulated {
            dense: Vec::with_capacity(n),
            // Sized at the first lookup table's gradient: most models have none.
            rows: Vec::new(),
        };
        grads.dense.resize_with(n, || None);
        grads.dense[output.0] = Some(Array2::ones(self.nodes[output.0].value.raw_dim()));
        for index in (0..=output.0).rev() {
            if matches!(self.nodes[index].op, Op::Param) {
                continue;
            }
            if let Some(g) = grads.dense[index].take() {
                self.propagate(index, g, &mut grads);
            }
        }
        // Only a row gradient needs its parameter's shape, to become dense.
        let shapes = match grads.rows.is_empty() {
            true => Vec::new(),
            false => self.nodes[..n]
                .iter()
                .map(|node| node.value.dim())
                .collect(),
        };
        Gradients {
            grads: grads.dense,
            rows: grads.rows,
            shapes,
        }
    }

    /// Passes node `index`'s gradient `g` on to its inputs.
    fn propagate(&self, index: usize, mut g: Array2<f32>, grads: &mut Accumulated) {
        let node = &self.nodes[index];
        match &node.op {
            Op::Constant | Op::Param => {}
            Op::MatMul(a, b) => {
                self.product_backward(grads, *a, *b, &g);
                buffers::give_array(g);
            }
            Op::AddBias(x, bias) => {
                if self.needs_grad(*bias) {
                    self.accumulate(grads, *bias, product::column_sums(&g));
                }
                self.accumulate(grads, *x, g);
            }
            Op::Affine {
                x,
                kernel,
                bias,
                relu,
            } => {
                if *relu {
                    through_relu(&mut g, &node.value);
                }
                if self.needs_grad(*bias) {
                    self.accumulate(grads, *bias, product::column_sums(&g));
                }
                self.product_backward(grads, *x, *kernel, &g);
                buffers::give_array(g);
            }
            Op::Unary { x, f } => {
                let (x, dx) = self.unary_backward(*x, *f, node.value.view(), g);
                self.accumulate(grads, x, dx);
            }
            Op::Binary { a, b, f } => {
                for (var, grad) in self.binary_backward((*a, *b), *f, &g) {
                    if let Some(grad) = grad {
                        self.accumulate(grads, var, grad);
                    }
                }
            }
            Op::Reduce { x, over, mean } => {
                let dx = self.reduce_backward(*x, *over, *mean, &g);
                self.accumulate(grads, *x, dx);
            }
            Op::Softmax(x) => {
                self.accumulate(grads, *x, Self::softmax_backward(node.value.view(), g))
            }
            Op::LogSoftmax(x) => {
                self.accumulate(grads, *x, Self::log_softmax_backward(node.value.view(), g))
            }
            Op::Slice { x, start } => {
                let dx = self.slice_backward(*x, *start, &g);
                self.accumulate(grads, *x, dx);
            }
            Op::Transpose(x) => self.accumulate(grads, *x, g.t().to_owned()),
            Op::Concat(parts) => {
                let mut offset = 0;
                for part in parts {
                    let width = self.nodes[part.0].value.ncols();
                    if self.needs_grad(*part) {
                        let slice = g.slice(ndarray::s![.., offset..offset + width]);
                        self.accumulate(grads, *part, slice.to_owned());
                    }
                    offset += width;
                }
            }
            Op::StackRows(parts) => {
                let mut offset = 0;
                for part in parts {
                    let height = self.nodes[part.0].value.nrows();
                    if self.needs_grad(*part) {
                        self.accumulate(grads, *part, rows_of(&g, offset..offset + height));
                    }
                    offset += height;
                }
            }
            Op::EmbeddingLookup { table, ids, scales } => {
                if !self.needs_grad(*table) {
                    return;
                }
                // A parameter's table gets the rows the batch touched, not a dense copy.
                let width = self.nodes[table.0].value.ncols();
                let mut part = RowGradient {
                    rows: Vec::with_capacity(ids.ids().len()),
                    values: Vec::with_capacity(ids.ids().len() * width),
                    width,
                };
                for (r, upstream) in g.rows().into_iter().enumerate() {
                    let (row_ids, weights) = ids.row(r);
                    for (&id, &w) in row_ids.iter().zip(weights) {
                        part.rows.push(id);
                        part.values
                            .extend(upstream.iter().map(|u| u * w * scales[r]));
                    }
                }
                match self.nodes[table.0].op {
                    Op::Param => match grads.row_slot(table.0, self.nodes.len()) {
                        Some(existing) => {
                            existing.rows.extend(part.rows);
                            existing.values.extend(part.values);
                        }
                        slot @ None => *slot = Some(part),
                    },
                    _ => {
                        let mut dense = Array2::zeros(self.nodes[table.0].value.raw_dim());
                        part.add_to(&mut dense);
                        self.accumulate(grads, *table, dense);
                    }
                }
            }
            Op::Mask { x, mask } => {
                g *= mask;
                self.accumulate(grads, *x, g);
            }
            Op::Normalize {
                x,
                gamma,
                beta,
                normalized,
                inv_std,
                batch_statistics,
            } => self.normalize_backward(
                g,
                (*x, *gamma, *beta),
                normalized,
                inv_std,
                *batch_statistics,
                grads,
            ),
            Op::Relu(x) => {
                through_relu(&mut g, &node.value);
                self.accumulate(grads, *x, g);
            }
            Op::Tanh(x) => {
                Zip::from(&mut g)
                    .and(&node.value)
                    .for_each(|g, &y| *g *= 1.0 - y * y);
                self.accumulate(grads, *x, g);
            }
            Op::Sigmoid(x) => {
                Zip::from(&mut g)
                    .and(&node.value)
                    .for_each(|g, &y| *g *= y * (1.0 - y));
                self.accumulate(grads, *x, g);
            }
            Op::SparseSoftmaxCrossEntropy {
                logits,
                labels,
                probabilities,
                loss,
            } => {
                let upstream = g[[0, 0]];
                let mut dx = probabilities.clone();
                let classes = dx.ncols().max(1);
                // Plain slices: rows are a handful of classes, too short for ndarray's
                // per-row setup.
                if let Some(values) = dx.as_slice_mut() {
                    let rows = values.chunks_exact_mut(classes);
                    for ((row, &id), scale) in rows.zip(labels).zip(loss.scales.iter()) {
                        row[id] -= 1.0;
                        for v in row.iter_mut() {
                            *v *= upstream * scale;
                        }
                    }
                }
                self.accumulate(grads, *logits, dx);
            }
            Op::SigmoidCrossEntropy {
                logits,
                targets,
                loss,
            } => {
                let upstream = g[[0, 0]];
                let lv = &self.nodes[logits.0].value;
                let dx = lv
                    .iter()
                    .zip(targets)
                    .zip(loss.scales.iter())
                    .map(|((&x, &z), s)| (1.0 / (1.0 + (-x).exp()) - z) * s * upstream)
                    .collect();
                let dx = Array2::from_shape_vec(lv.raw_dim(), dx).expect("one gradient per logit");
                self.accumulate(grads, *logits, dx);
            }
            Op::SquaredError {
                predictions,
                targets,
                loss,
            } => {
                let upstream = 2.0 * g[[0, 0]];
                let pv = &self.nodes[predictions.0].value;
                let mut dx = pv - targets;
                for (mut row, s) in dx.rows_mut().into_iter().zip(loss.scales.iter()) {
                    row.mapv_inplace(|d| d * s * upstream);
                }
                self.accumulate(grads, *predictions, dx);
            }
        }
    }

    /// The gradients of a batch normalization: `dbeta = Σ g`, `dgamma = Σ g·x̂`, and
    /// `dx = gamma·inv_std·g` with the batch's statistics constant, or with them
    /// depending on x: `gamma·inv_std/N · (N·g − Σ g − x̂·Σ g·x̂)`.
    fn normalize_backward(
        &self,
        g: Array2<f32>,
        (x, gamma, beta): (Var, Var, Var),
        normalized: &Array2<f32>,
        inv_std: &[f32],
        batch_statistics: bool,
        grads: &mut Accumulated,
    ) {
        let rows = g.nrows().max(1) as f32;
        let sum_g = product::column_sums(&g);
        let sum_g_xhat = product::column_sums(&(&g * normalized));
        let gv = &self.nodes[gamma.0].value;
        if self.needs_grad(x) {
            let mut dx = g.clone();
            for ((mut row, g_row), x_row) in dx
                .rows_mut()
                .into_iter()
                .zip(g.rows())
                .zip(normalized.rows())
            {
                for j in 0..row.len() {
                    let scale = gv[[0, j]] * inv_std[j];
                    row[j] = match batch_statistics {
                        true => {
                            scale / rows
                                * (rows * g_row[j] - sum_g[[0, j]] - x_row[j] * sum_g_xhat[[0, j]])
                        }
                        false => scale * g_row[j],
                    };
                }
            }
            self.accumulate(grads, x, dx);
        }
        self.accumulate(grads, gamma, sum_g_xhat);
        self.accumulate(grads, beta, sum_g);
    }

    fn needs_grad(&self, var: Var) -> bool {
        self.nodes[var.0].needs_grad
    }

    /// The gradients of `a · b` given the product's gradient `g`: `g · bᵀ` and `aᵀ · g`,
    /// each only where wanted.
    fn product_backward(&self, grads: &mut Accumulated, a: Var, b: Var, g: &Array2<f32>) {
        let (av, bv) = (&self.nodes[a.0].value, &self.nodes[b.0].value);
        if self.needs_grad(a) {
            self.accumulate(grads, a, product::product(g.view(), bv.t()));
        }
        if self.needs_grad(b) {
            self.accumulate(grads, b, product::product(av.t(), g.view()));
        }
    }

    fn accumulate(&self, grads: &mut Accumulated, var: Var, delta: Array2<f32>) {
        if !self.needs_grad(var) {
            return;
        }
        match &mut grads.dense[var.0] {
            Some(existing) => {
                *existing += &delta;
                buffers::give_array(delta);
            }
            slot @ None => *slot = Some(delta),
        }
    }
}

/// `views`, each `width` columns wide, one above the other, when each is one contiguous
/// run of rows: their slices one after the other, one allocation and copy. ndarray's
/// `concatenate` takes several per part, and a linear model stacks one `[1, units]`
/// weight per numeric column every step.
fn stack_slices(views: &[ArrayView2<'_, f32>], width: usize) -> Option<Array2<f32>> {
    let rows: usize = views.iter().map(|v| v.nrows()).sum();
    let mut values = Vec::with_capacity(rows * width);
    for view in views {
        values.extend_from_slice(view.as_slice()?);
    }
    Array2::from_shape_vec((rows, width), values).ok()
}

/// Rows `rows` of `g`, copied: one slice copy when `g` is row-major, as gradients are.
fn rows_of(g: &Array2<f32>, rows: std::ops::Range<usize>) -> Array2<f32> {
    let width = g.ncols();
    let part = g
        .as_slice()
        .and_then(|values| values.get(rows.start * width..rows.end * width));
    match part {
        Some(part) => Array2::from_shape_vec((rows.len(), width), part.to_vec())
            .unwrap_or_else(|_| g.slice(ndarray::s![rows, ..]).to_owned()),
        None => g.slice(ndarray::s![rows, ..]).to_owned(),
    }
}

/// Adds the `[1, n]` `row` to every row of `values` (standard layout, as new values are).
fn add_to_rows(values: &mut Array2<f32>, row: ArrayView2<'_, f32>) {
    let row = row.row(0);
    let width = row.len().max(1);
    // Plain slices: rows are a handful of values, too short for ndarray's per-row setup.
    match (values.as_slice_mut(), row.as_slice()) {
        (Some(values), Some(row)) => {
            for out in values.chunks_exact_mut(width) {
                for (v, b) in out.iter_mut().zip(row) {
                    *v += b;
                }
            }
        }
        _ => *values += &row,
    }
}

/// A ReLU's gradient from its output `y`: `g` where `y > 0`, else 0. Over plain slices
/// where both are contiguous, as computed values are.
fn through_relu(g: &mut Array2<f32>, y: &CowArray<'_, f32, Ix2>) {
    match (g.as_slice_mut(), y.as_slice()) {
        (Some(g), Some(y)) if g.len() == y.len() => relu_slices(g, y),
        _ => Zip::from(g).and(y).for_each(|g, &y| relu_select(g, y)),
    }
}

/// A select, not a conditional store: it vectorises, and a sign that changes at random
/// costs no mispredicted branch.
#[inline(always)]
fn relu_select(g: &mut f32, y: f32) {
    *g = if y > 0.0 { *g } else { 0.0 };
}

/// [`through_relu`] over slices, 16 lanes at a time on CPUs with AVX-512 (the library is
/// built for any x86-64, whose vectors hold 4).
fn relu_slices(g: &mut [f32], y: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F is present.
        unsafe { relu_slices_avx512(g, y) };
        return;
    }
    relu_slices_baseline(g, y);
}

#[inline(always)]
fn relu_slices_baseline(g: &mut [f32], y: &[f32]) {
    g.iter_mut().zip(y).for_each(|(g, &y)| relu_select(g, y));
}

/// The same loop, compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn relu_slices_avx512(g: &mut [f32], y: &[f32]) {
    relu_slices_baseline(g, y);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn the_relu_gradient_passes_where_the_output_is_positive_on_any_cpu() {
        let y: Vec<f32> = (0..37).map(|i| (i % 5) as f32 - 2.0).collect();
        let g: Vec<f32> = (0..37).map(|i| i as f32 + 0.5).collect();
        let expected: Vec<f32> = g
            .iter()
            .zip(&y)
            .map(|(&g, &y)| if y > 0.0 { g } else { 0.0 })
            .collect();
        let mut dispatched = g.clone();
        relu_slices(&mut dispatched, &y);
        assert_eq!(dispatched, expected);
        let mut baseline = g;
        relu_slices_baseline(&mut baseline, &y);
        assert_eq!(baseline, expected);
    }

    /// Builds a loss from the parameter values on a fresh tape.
    type LossFn = dyn Fn(&mut Tape, &[Var]) -> Var;

    /// Compares the tape's gradients with central finite differences, in f64 steps.
    fn check_gradients(params: &[Array2<f32>], loss_fn: &LossFn) {
        let mut tape = Tape::new();
        let vars: Vec<Var> = params.iter().map(|p| tape.param(p.clone())).collect();
        let loss = loss_fn(&mut tape, &vars);
        let grads = tape.backward(loss);
        let eps = 1e-2f32;
        for (pi, param) in params.iter().enumerate() {
            let analytic = grads.of(vars[pi]).expect("gradient for every param");
            let analytic = &analytic;
            for idx in 0..param.len() {
                let eval = |delta: f32| {
                    let mut shifted = params.to_vec();
                    let flat = shifted[pi].as_slice_mut().expect("standard layout");
                    flat[idx] += delta;
                    let mut t = Tape::new();
                    let vs: Vec<Var> = shifted.into_iter().map(|p| t.param(p)).collect();
                    let l = loss_fn(&mut t, &vs);
                    t.scalar(l) as f64
                };
                let numeric = (eval(eps) - eval(-eps)) / (2.0 * eps as f64);
                // Gradients may come out in column-major order; compare in logical order.
                let got = analytic.iter().nth(idx).copied().expect("same size") as f64;
                assert!(
                    (numeric - got).abs() <= 2e-3 + 2e-2 * numeric.abs(),
                    "param {pi} element {idx}: finite difference {numeric}, tape {got}"
                );
            }
        }
    }

    fn inputs() -> Array2<f32> {
        array![
            [0.5, -1.0, 2.0],
            [1.5, 0.3, -0.7],
            [-0.2, 0.8, 0.1],
            [1.0, 1.0, -1.0]
        ]
    }

    fn kernel() -> Array2<f32> {
        array![[0.1, -0.4], [0.7, 0.2], [-0.3, 0.5]]
    }

    /// One small dense step: the bits of the hidden layer's values and of the kernel's
    /// gradient.
    fn dense_step(x: &Array2<f32>, kernel: &Array2<f32>) -> (Vec<u32>, Vec<u32>) {
        let mut t = Tape::new();
        let xi = t.constant(x.clone());
        let (k, b) = (t.param(kernel.clone()), t.param(array![[0.05, -0.1]]));
        let (k2, b2) = (t.param(array![[0.3], [-0.6]]), t.param(array![[0.1]]));
        let h = t.affine_relu(xi, k, b).expect("shapes fit");
        let y = t.affine(h, k2, b2).expect("shapes fit");
        let loss = t
            .mean_squared_error(y, array![[1.0], [0.0], [0.5], [0.2]])
            .expect("same shape");
        let grads = t.backward(loss);
        let bits = |a: ArrayView2<'_, f32>| a.iter().map(|v| v.to_bits()).collect();
        let dk = grads.of(k).expect("a gradient");
        (bits(t.value(h)), bits(dk.view()))
    }

    #[test]
    fn a_dropped_tapes_buffers_serve_the_next_tape_which_computes_the_same() {
        let (x, k) = (inputs(), kernel());
        let first = dense_step(&x, &k);
        let served_in_first = buffers::served();
        let second = dense_step(&x, &k);
        assert_eq!(second, first, "the same values and gradients, bit for bit");
        // Only the small product kernel takes kept buffers. With it, the second step's
        // two forward products take the first tape's buffers, besides what backward takes
        // back from its own step.
        if std::arch::is_x86_feature_detected!("avx512f") {
            let served_in_second = buffers::served() - served_in_first;
            assert!(
                served_in_second >= served_in_first + 2,
                "served {served_in_first}, then {served_in_second}"
            );
        }
    }

    #[test]
    fn dense_relu_softmax_gradients_match_finite_differences() {
        let x = inputs();
        check_gradients(&[kernel(), array![[0.05, -0.1]]], &move |t, v| {
            let xi = t.constant(x.clone());
            let h = t.matmul(xi, v[0]).expect("shapes fit");
            let h = t.add_bias(h, v[1]).expect("shapes fit");
            let h = t.relu(h);
            t.sparse_softmax_cross_entropy(h, &[0, 1, 1, 0])
                .expect("labels in range")
        });
    }

    #[test]
    fn tanh_sigmoid_mse_gradients_match_finite_differences() {
        let x = inputs();
        check_gradients(&[kernel(), array![[0.3], [-0.6]]], &move |t, v| {
            let xi = t.constant(x.clone());
            let h = t.matmul(xi, v[0]).expect("shapes fit");
            let h = t.tanh(h);
            let y = t.matmul(h, v[1]).expect("shapes fit");
            let y = t.sigmoid(y);
            t.mean_squared_error(y, array![[1.0], [0.0], [0.5], [0.2]])
                .expect("same shape")
        });
    }

    #[test]
    fn weighted_losses_match_finite_differences() {
        let x = inputs();
        static WEIGHTS: [f32; 4] = [0.5, 2.0, 0.0, 1.0];
        for reduction in [LossReduction::SumOverBatchSize, LossReduction::Sum] {
            let w = Weighting {
                weights: Some(&WEIGHTS),
                reduction,
            };
            let xs = x.clone();
            check_gradients(&[kernel()], &move |t, v| {
                let xi = t.constant(xs.clone());
                let h = t.matmul(xi, v[0]).expect("shapes fit");
                t.weighted_softmax_cross_entropy(h, &[0, 1, 1, 0], w)
                    .expect("labels in range")
            });
            let xs = x.clone();
            check_gradients(&[array![[0.3], [-0.6], [0.2]]], &move |t, v| {
                let xi = t.constant(xs.clone());
                let h = t.matmul(xi, v[0]).expect("shapes fit");
                t.sigmoid_cross_entropy(h, vec![1.0, 0.0, 1.0, 0.25], w)
                    .expect("one target per row")
            });
            let xs = x.clone();
            check_gradients(&[kernel()], &move |t, v| {
                let xi = t.constant(xs.clone());
                let h = t.matmul(xi, v[0]).expect("shapes fit");
                t.squared_error(h, Array2::ones((4, 2)), w)
                    .expect("same shape")
            });
        }
    }

    #[test]
    fn add_concat_and_embedding_lookups_match_finite_differences() {
        // Four examples: two ids, one id, none (zeros), and a repeated id.
        let mut unit = SparseIds::new();
        let mut weighted = SparseIds::new();
        let rows: [&[(usize, f32)]; 4] = [
            &[(0, 0.5), (2, 2.0)],
            &[(2, 1.5)],
            &[],
            &[(4, 1.0), (4, 0.25), (1, 3.0)],
        ];
        for row in rows {
            unit.push_row(row.iter().map(|&(id, _)| (id, 1.0)));
            weighted.push_row(row.iter().copied());
        }
        let table = array![
            [0.1, -0.2],
            [0.4, 0.3],
            [-0.5, 0.2],
            [0.9, 0.9],
            [0.3, -0.6]
        ];
        let target = array![
            [0.5, -0.5, 0.2, 0.1],
            [0.0, 0.3, -0.4, 0.6],
            [0.2, 0.2, 0.2, 0.2],
            [-0.3, 0.1, 0.7, -0.1]
        ];
        let offset = Array2::from_shape_fn((4, 4), |(r, c)| 0.1 * r as f32 - 0.05 * c as f32);
        for combiner in [Combiner::Sum, Combiner::Mean, Combiner::Sqrtn] {
            for ids in [&unit, &weighted] {
                let (x, target, ids) = (inputs(), target.clone(), ids.clone());
                let params = [table.clone(), kernel(), offset.clone()];
                check_gradients(&params, &move |t, v| {
                    let embedded = t
                        .embedding_lookup(v[0], ids.clone(), combiner)
                        .expect("ids in range");
                    let xi = t.constant(x.clone());
                    let dense = t.matmul(xi, v[1]).expect("shapes fit");
                    let side_by_side = t.concat(&[embedded, dense]).expect("same rows");
                    let sum = t.add(side_by_side, v[2]).expect("same shape");
                    let y = t.tanh(sum);
                    t.mean_squared_error(y, target.clone()).expect("same shape")
                });
            }
        }
    }

    #[test]
    fn losses_reduce_as_tf_and_keep_unweighted_element_losses() {
        let mut t = Tape::new();
        // Logits 0 and ln 3: sigmoid losses against 1 are ln 2 and ln(4/3).
        let logits = t.constant(array![[0.0], [3f32.ln()]]);
        let weights = [2.0f32, 2.0];
        let weighted = Weighting {
            weights: Some(&weights),
            reduction: LossReduction::SumOverBatchSize,
        };
        let loss = t
            .sigmoid_cross_entropy(logits, vec![1.0, 1.0], weighted)
            .expect("valid");
        let (a, b) = (2f32.ln(), (4f32 / 3.0).ln());
        assert!((t.element_losses(loss)[0] - a).abs() < 1e-6);
        assert!((t.element_losses(loss)[1] - b).abs() < 1e-6);
        // TF: with all weights 2, loss = 2 × average_loss (divided by the count, not Σw).
        assert!((t.scalar(loss) - (a + b)).abs() < 1e-6);
        let summed = t
            .sigmoid_cross_entropy(
                logits,
                vec![1.0, 1.0],
                Weighting {
                    weights: None,
                    reduction: LossReduction::Sum,
                },
            )
            .expect("valid");
        assert!((t.scalar(summed) - (a + b)).abs() < 1e-6);
        let err = t
            .sigmoid_cross_entropy(logits, vec![1.0], Weighting::default())
            .unwrap_err();
        assert!(err.message.contains("1 targets"), "{err}");
        let none = serde_json::from_str::<LossReduction>(r#""none""#).unwrap_err();
        assert!(
            none.to_string().contains("unknown variant `none`"),
            "{none}"
        );
        let auto: LossReduction = serde_json::from_str(r#""auto""#).expect("TF's auto");
        assert_eq!(auto, LossReduction::SumOverBatchSize);
    }

    #[test]
    fn batch_normalization_gradients_match_finite_differences() {
        let x = inputs();
        for batch_statistics in [true, false] {
            let xs = x.clone();
            check_gradients(
                &[kernel(), array![[1.5, 0.5]], array![[0.1, -0.2]]],
                &move |t, v| {
                    let xi = t.constant(xs.clone());
                    let h = t.matmul(xi, v[0]).expect("shapes fit");
                    let hv = t.value(h).to_owned();
                    // The batch's own statistics, or fixed ones standing for moving averages.
                    let (mean, var): (Vec<f32>, Vec<f32>) = match batch_statistics {
                        true => hv
                            .columns()
                            .into_iter()
                            .map(|c| {
                                let m = c.mean().unwrap_or(0.0);
                                (m, c.mapv(|v| (v - m) * (v - m)).mean().unwrap_or(0.0))
                            })
                            .unzip(),
                        false => (vec![0.2, -0.1], vec![0.5, 2.0]),
                    };
                    let y = t
                        .normalize(h, (v[1], v[2]), (&mean, &var), 1e-3, batch_statistics)
                        .expect("shapes fit");
                    let y = t.tanh(y);
                    t.mean_squared_error(y, Array2::ones((4, 2)))
                        .expect("same shape")
                },
            );
        }
    }

    #[test]
    fn masked_values_pass_gradients_through_the_mask_only() {
        let mask = array![[2.0, 0.0], [0.0, 2.0], [2.0, 2.0], [0.0, 0.0]];
        let x = inputs();
        check_gradients(&[kernel()], &move |t, v| {
            let xi = t.constant(x.clone());
            let h = t.matmul(xi, v[0]).expect("shapes fit");
            let h = t.mask(h, mask.clone()).expect("same shape");
            t.mean_squared_error(h, Array2::ones((4, 2)))
                .expect("same shape")
        });
    }

    #[test]
    fn a_value_used_twice_accumulates_both_gradients() {
        check_gradients(&[array![[0.3, -0.2], [0.1, 0.4]]], &|t, v| {
            let y = t.matmul(v[0], v[0]).expect("square");
            t.mean_squared_error(y, Array2::zeros((2, 2)))
                .expect("same shape")
        });
    }

    #[test]
    fn values_computed_from_constants_alone_get_no_gradient() {
        let mut t = Tape::new();
        let x = t.constant(inputs());
        let hidden = t.relu(x);
        let w = t.param(kernel());
        let y = t.matmul(hidden, w).expect("shapes fit");
        let loss = t
            .mean_squared_error(y, Array2::zeros((4, 2)))
            .expect("same shape");
        let grads = t.backward(loss);
        assert!(grads.of(x).is_none() && grads.of(hidden).is_none());
        // d/dW mean((xW)^2) = 2 xᵀ(xW) / 8, with relu(x) as x.
        let h = inputs().mapv(|v| v.max(0.0));
        let expected = h.t().dot(&h.dot(&kernel())) * (2.0 / 8.0);
        let got = grads.of(w).expect("parameter gradient");
        assert!(
            (&got - &expected).iter().all(|d| d.abs() < 1e-6),
            "{got} vs {expected}"
        );
    }

    #[test]
    fn cross_entropy_matches_hand_computation() {
        let mut t = Tape::new();
        let logits = t.param(array![[0.0, 0.0], [(3.0f32).ln(), 0.0]]);
        let loss = t
            .sparse_softmax_cross_entropy(logits, &[0, 0])
            .expect("labels in range");
        // -(ln 0.5 + ln 0.75) / 2
        let expected = -((0.5f32).ln() + (0.75f32).ln()) / 2.0;
        assert!((t.scalar(loss) - expected).abs() < 1e-6);
    }

    #[test]
    fn out_of_range_label_is_an_error() {
        let mut t = Tape::new();
        let logits = t.param(array![[0.0, 0.0]]);
        let err = t.sparse_softmax_cross_entropy(logits, &[2]).unwrap_err();
        assert_eq!(err.message.as_str(), "label 2 is outside [0, 2)");
    }
}
