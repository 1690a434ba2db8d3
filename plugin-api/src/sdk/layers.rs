//! Layers over the tape, and the bridge between the host's variables and tape parameters.

use abi_stable::std_types::RVec;
use ndarray::{Array2, ArrayView2};
use serde::Deserialize;

use crate::abi::{
    Gradient, Initializer, NamedTensor, NamedView, PluginError, Tensor, TensorBuf, VarSpec,
};

use super::batch_norm::BatchNorm;
use super::dropout::Dropout;
use super::spare;
use super::tape::{buffers, Gradients, Over, ParamGradient, Tape, Var};
use super::variables::{LayerVars, VarBuilder, VarHandle};
use super::view::f32_matrix;

/// An elementwise activation, named as in the manifest (`relu`, `tanh`, `sigmoid`, `linear`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[default]
    Relu,
    Tanh,
    Sigmoid,
    /// No activation (TF's `activation_fn=None`).
    Linear,
}

impl Activation {
    pub fn apply(self, tape: &mut Tape, x: Var) -> Var {
        match self {
            Activation::Relu => tape.relu(x),
            Activation::Tanh => tape.tanh(x),
            Activation::Sigmoid => tape.sigmoid(x),
            Activation::Linear => x,
        }
    }
}

/// A fully connected layer: `activation(x · kernel + bias)`, with Keras' initialisers
/// (Glorot uniform kernel, zero bias) and TF's variable names `<name>/kernel`, `<name>/bias`.
#[derive(Clone, Debug)]
pub struct Dense {
    pub name: String,
    pub inputs: usize,
    pub units: usize,
    pub activation: Activation,
    /// The variables' names, for their declarations.
    kernel: String,
    bias: String,
    /// The kernel's and bias's handles, once declared.
    vars: LayerVars,
    /// Added to the loss as `tf.layers`' `kernel_regularizer`.
    kernel_regularizer: Option<Regularizer>,
}

/// A penalty on a variable's size, added to the loss: `l1 · Σ|w| + l2 · Σw²`, as
/// `tf.keras.regularizers.L1L2`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Regularizer {
    #[serde(default)]
    pub l1: f32,
    #[serde(default)]
    pub l2: f32,
}

impl Regularizer {
    /// The penalty on `w`, on the tape. A term whose strength is 0 is not computed: the
    /// penalty runs every step.
    pub fn penalty(&self, tape: &mut Tape, w: Var) -> Result<Var, PluginError> {
        let l1 = match self.l1 != 0.0 {
            true => {
                let absolute = tape.abs(w);
                let total = tape.sum(absolute, Over::All);
                Some(tape.scale(total, self.l1))
            }
            false => None,
        };
        let l2 = match self.l2 != 0.0 {
            true => {
                let squares = tape.square(w);
                let total = tape.sum(squares, Over::All);
                Some(tape.scale(total, self.l2))
            }
            false => None,
        };
        match (l1, l2) {
            (Some(a), Some(b)) => tape.add(a, b),
            (Some(term), None) | (None, Some(term)) => Ok(term),
            (None, None) => Ok(tape.constant(Array2::zeros((1, 1)))),
        }
    }
}

impl Dense {
    pub fn new(
        name: impl Into<String>,
        inputs: usize,
        units: usize,
        activation: Activation,
    ) -> Self {
        let name = name.into();
        Dense {
            kernel: format!("{name}/kernel"),
            bias: format!("{name}/bias"),
            name,
            inputs,
            units,
            activation,
            vars: LayerVars::default(),
            kernel_regularizer: None,
        }
    }

    /// Declares the kernel and bias in `vars`; each step reads them through their
    /// handles.
    pub fn declare(mut self, vars: &mut VarBuilder) -> Self {
        self.vars = LayerVars::declare(vars, self.variables());
        self
    }

    /// Adds `regularizer`'s penalty on the kernel to the loss ([`Dense::penalty`]).
    pub fn with_kernel_regularizer(mut self, regularizer: Regularizer) -> Self {
        self.kernel_regularizer = Some(regularizer);
        self
    }

    /// The kernel regularizer's penalty, to add to the loss; `None` without one.
    pub fn penalty(&self, tape: &mut Tape, params: &Params) -> Result<Option<Var>, PluginError> {
        let Some(regularizer) = self.kernel_regularizer else {
            return Ok(None);
        };
        let (kernel, _) = self.parameters(params)?;
        regularizer.penalty(tape, kernel).map(Some)
    }

    /// The kernel and bias on the tape, through their handles.
    fn parameters(&self, params: &Params) -> Result<(Var, Var), PluginError> {
        let kernel = self.vars.get(0, &self.name)?;
        let bias = self.vars.get(1, &self.name)?;
        Ok((params.var(kernel), params.var(bias)))
    }

    pub fn kernel_name(&self) -> &str {
        &self.kernel
    }

    pub fn bias_name(&self) -> &str {
        &self.bias
    }

    pub fn variables(&self) -> [VarSpec; 2] {
        [
            VarSpec::new(
                self.kernel.as_str(),
                &[self.inputs, self.units],
                Initializer::GlorotUniform,
            ),
            VarSpec::new(self.bias.as_str(), &[self.units], Initializer::Zeros),
        ]
    }

    pub fn apply(&self, tape: &mut Tape, params: &Params, x: Var) -> Result<Var, PluginError> {
        let (kernel, bias) = self.parameters(params)?;
        match self.activation {
            Activation::Relu => tape.affine_relu(x, kernel, bias),
            other => {
                let h = tape.affine(x, kernel, bias)?;
                Ok(other.apply(tape, h))
            }
        }
    }
}

/// A stack of dense layers followed by a linear logits layer, TF's DNN body.
/// Layers are named `<prefix>/hiddenlayer_<i>` and `<prefix>/logits`, as TF's DNN estimators.
/// Each hidden layer may be followed, as in TF, by dropout (training only) and batch
/// normalization (`<prefix>/hiddenlayer_<i>/batchnorm_<i>`).
#[derive(Clone, Debug)]
pub struct Mlp {
    pub layers: Vec<Dense>,
    dropout: Option<Dropout>,
    /// One per hidden layer when batch normalization is on.
    batch_norms: Vec<BatchNorm>,
}

/// TF's DNN estimators' batch normalization momentum.
const DNN_BATCH_NORM_MOMENTUM: f32 = 0.999;

impl Mlp {
    /// Hidden layers of `activation` and a linear output layer, named as TF's DNN
    /// estimators name them: `<prefix>/hiddenlayer_<i>`, `<prefix>/logits`.
    pub fn new(
        prefix: &str,
        inputs: usize,
        hidden: &[usize],
        outputs: usize,
        activation: Activation,
    ) -> Self {
        let hidden_names = (0..hidden.len()).map(|i| format!("{prefix}/hiddenlayer_{i}"));
        let names = hidden_names.chain([format!("{prefix}/logits")]);
        Self::named(names, inputs, hidden, outputs, activation)
    }

    /// The same stack named as `tf.compat.v1.layers.dense` names layers in one graph:
    /// `dense`, `dense_1`, `dense_2`, ...
    pub fn tf_layers(
        inputs: usize,
        hidden: &[usize],
        outputs: usize,
        activation: Activation,
    ) -> Self {
        let names = (0..=hidden.len()).map(|i| match i {
            0 => "dense".to_owned(),
            _ => format!("dense_{i}"),
        });
        Self::named(names, inputs, hidden, outputs, activation)
    }

    fn named(
        names: impl Iterator<Item = String>,
        inputs: usize,
        hidden: &[usize],
        outputs: usize,
        activation: Activation,
    ) -> Self {
        let widths = std::iter::once(inputs).chain(hidden.iter().copied());
        let units = hidden.iter().map(|&u| (u, activation));
        let units = units.chain([(outputs, Activation::Linear)]);
        let layers = names
            .zip(widths.zip(units))
            .map(|(name, (width, (units, activation)))| Dense::new(name, width, units, activation))
            .collect();
        Mlp {
            layers,
            dropout: None,
            batch_norms: Vec::new(),
        }
    }

    /// Declares every layer's variables in `vars`, in [`Mlp::variables`]' order. Call it
    /// after `with_batch_norm`.
    pub fn declare(mut self, vars: &mut VarBuilder) -> Self {
        let mut batch_norms = std::mem::take(&mut self.batch_norms).into_iter();
        let mut declared_norms = Vec::new();
        self.layers = std::mem::take(&mut self.layers)
            .into_iter()
            .map(|layer| {
                let layer = layer.declare(vars);
                if let Some(bn) = batch_norms.next() {
                    declared_norms.push(bn.declare(vars));
                }
                layer
            })
            .collect();
        self.batch_norms = declared_norms;
        self
    }

    /// TF's `dropout`: after each hidden layer, in training only.
    pub fn with_dropout(mut self, dropout: Dropout) -> Self {
        self.dropout = Some(dropout);
        self
    }

    /// TF's `batch_norm=True`: batch normalization after each hidden layer.
    pub fn with_batch_norm(mut self) -> Self {
        let hidden = &self.layers[..self.layers.len().saturating_sub(1)];
        self.batch_norms = hidden
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                BatchNorm::new(
                    &format!("{}/batchnorm_{i}", layer.name),
                    layer.units,
                    DNN_BATCH_NORM_MOMENTUM,
                )
            })
            .collect();
        self
    }

    pub fn variables(&self) -> Vec<VarSpec> {
        let mut vars = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            vars.extend(layer.variables());
            if let Some(bn) = self.batch_norms.get(i) {
                vars.extend(bn.variables());
            }
        }
        vars
    }

    /// The network as used for inference (no dropout; batch norm's moving averages).
    pub fn apply(&self, tape: &mut Tape, params: &Params, x: Var) -> Result<Var, PluginError> {
        self.forward(tape, params, x, false, 0).map(|(y, _)| y)
    }

    /// The network in training (`training`: dropout drawn from `seed`, batch norm on the
    /// batch's statistics) or not. Returns the output and batch norm's new moving
    /// averages, for the spec's `updates`.
    pub fn forward(
        &self,
        tape: &mut Tape,
        params: &Params,
        x: Var,
        training: bool,
        seed: u64,
    ) -> Result<(Var, Vec<NamedTensor>), PluginError> {
        let mut h = x;
        let mut updates = Vec::new();
        let hidden = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.apply(tape, params, h)?;
            if i == hidden {
                break;
            }
            if let Some(dropout) = &self.dropout {
                let layer_seed = seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                h = dropout.apply(tape, h, training, layer_seed)?;
            }
            if let Some(bn) = self.batch_norms.get(i) {
                let (normalized, moving) = bn.apply(tape, params, h, training)?;
                h = normalized;
                updates.extend(moving);
            }
        }
        Ok((h, updates))
    }
}

/// The host's variables placed on a tape: trainable ones as parameters, others as constants.
/// Borrows the names from the model's declarations, so placing them allocates no strings.
pub struct Params<'s> {
    /// Every variable in declaration order; models have few, so lookup is a scan.
    vars: Vec<(&'s VarSpec, Var)>,
}

impl<'s> Params<'s> {
    /// Places every variable on the tape. `specs` are the model's declarations, in the
    /// order the host passes `variables`.
    pub fn load<'v>(
        tape: &mut Tape<'v>,
        specs: &'s [VarSpec],
        variables: &[NamedView<'v>],
    ) -> Result<Self, PluginError> {
        if specs.len() != variables.len() {
            return Err(PluginError::bad_data(format!(
                "host passed {} variables, the model declared {}",
                variables.len(),
                specs.len()
            )));
        }
        let mut vars = Vec::with_capacity(specs.len());
        for (spec, view) in specs.iter().zip(variables) {
            // The tape reads the host's variables in place, for this call only.
            let matrix = as_matrix(spec.name.as_str(), spec, view)?;
            let var = match spec.trainable {
                true => tape.param_view(matrix),
                false => tape.constant_view(matrix),
            };
            vars.push((spec, var));
        }
        Ok(Params { vars })
    }

    /// The variable a [`VarBuilder`] declared as `handle`.
    pub fn var(&self, handle: VarHandle) -> Var {
        self.vars[handle.0].1
    }

    pub fn get(&self, name: &str) -> Result<Var, PluginError> {
        self.vars
            .iter()
            .find(|(spec, _)| spec.name.as_str() == name)
            .map(|&(_, var)| var)
            .ok_or_else(|| PluginError::other(format!("no variable named `{name}`")))
    }

    /// One gradient per trainable variable, in declaration order: dense with the
    /// variable's shape (zeros where the loss does not depend on it), or row-sparse for a
    /// `[rows, width]` variable used only as a lookup table. Moves the gradients out of
    /// `grads` instead of copying them, into the list of the spec the host last handed
    /// back when it is this model's (its names and shapes are reused).
    pub fn gradients(&self, mut grads: Gradients) -> RVec<Gradient> {
        let trainable = self.vars.iter().filter(|(spec, _)| spec.trainable);
        let mut out = match spare::take_gradients() {
            Some(list) if same_names(&list, trainable.clone().map(|(spec, _)| *spec)) => list,
            _ => trainable
                .clone()
                .map(|(spec, _)| Gradient::dense(spec.name.as_str(), Tensor::f32(vec![], vec![])))
                .collect(),
        };
        for (gradient, &(spec, var)) in out.iter_mut().zip(trainable) {
            fill_gradient(gradient, spec, grads.take(var));
        }
        out
    }
}

/// Whether `list` holds one gradient per spec of `specs`, named as they are, in order.
fn same_names<'a>(list: &[Gradient], specs: impl Iterator<Item = &'a VarSpec> + Clone) -> bool {
    list.len() == specs.clone().count()
        && list
            .iter()
            .zip(specs)
            .all(|(g, spec)| g.name.as_str() == spec.name.as_str())
}

/// Sets `gradient` (already named for `spec`) to `taken`, reusing its shape's buffer.
fn fill_gradient(gradient: &mut Gradient, spec: &VarSpec, taken: Option<ParamGradient>) {
    let shape = &mut gradient.values.shape;
    shape.clear();
    let (rows, data) = match taken {
        Some(ParamGradient::Rows(r)) if spec.shape.len() >= 2 => {
            shape.push(r.rows.len());
            shape.extend(spec.shape[1..].iter().copied());
            let rows: RVec<i64> = r.rows.iter().map(|&i| i as i64).collect();
            (Some(rows), r.values)
        }
        // A rank-1 variable sits on the tape as one row: its rows are all 0.
        Some(ParamGradient::Rows(r)) => {
            let mut dense = Array2::zeros((1, spec.len()));
            r.add_to(&mut dense);
            (None, dense.into_raw_vec_and_offset().0)
        }
        Some(ParamGradient::Dense(g)) => match g.is_standard_layout() {
            true => (None, g.into_raw_vec_and_offset().0),
            false => (None, g.iter().copied().collect()),
        },
        None => (None, vec![0.0; spec.len()]),
    };
    if rows.is_none() {
        shape.extend(spec.shape.iter().copied());
    }
    // The buffer the list held last step goes back for the next step's tape.
    let used = std::mem::replace(&mut gradient.values.data, TensorBuf::F32(data.into()));
    if let TensorBuf::F32(used) = used {
        buffers::give(used.into_vec());
    }
    gradient.rows = rows.into();
}

/// A variable as a matrix: rank 1 `[n]` becomes a row `[1, n]` (a bias), rank 2 stays.
fn as_matrix<'v>(
    name: &str,
    spec: &VarSpec,
    view: &NamedView<'v>,
) -> Result<ArrayView2<'v, f32>, PluginError> {
    if view.name.as_str() != name || view.tensor.shape.as_slice() != spec.shape.as_slice() {
        return Err(PluginError::bad_data(format!(
            "variable `{}` {:?} does not match the declared `{name}` {:?}",
            view.name,
            view.tensor.shape.as_slice(),
            spec.shape.as_slice()
        )));
    }
    let m = f32_matrix(name, &view.tensor)?;
    Ok(match spec.shape.len() {
        // f32_matrix makes a rank-1 tensor one column; a bias is one row.
        1 => m.reversed_axes(),
        _ => m,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regularizer_adds_l1_and_l2_penalties_with_their_gradients() {
        let mut t = Tape::new();
        let w = t.param(ndarray::array![[1.0, -2.0], [0.5, 0.0]]);
        let r = Regularizer { l1: 0.01, l2: 0.1 };
        let penalty = r.penalty(&mut t, w).expect("valid");
        // 0.01 · (1 + 2 + 0.5) + 0.1 · (1 + 4 + 0.25) = 0.035 + 0.525.
        assert!(
            (t.scalar(penalty) - 0.56).abs() < 1e-6,
            "{}",
            t.scalar(penalty)
        );
        // d/dw = 0.01 · sign(w) + 0.2 · w (sign(0) is taken as +1 by f32::signum).
        let g = t.backward(penalty).of(w).expect("gradient");
        let expected = ndarray::array![[0.21, -0.41], [0.11, 0.01]];
        for (a, b) in g.iter().zip(expected.iter()) {
            assert!((a - b).abs() < 1e-6, "{g} vs {expected}");
        }
    }

    /// Declares `layer` after a variable `before`; returns it and every declaration.
    fn dense_after_another_variable(layer: Dense) -> (Dense, Vec<VarSpec>) {
        let mut vars = VarBuilder::new();
        vars.declare_all([VarSpec::new("before", &[2], Initializer::Zeros)]);
        let layer = layer.declare(&mut vars);
        (layer, vars.specs())
    }

    #[test]
    fn a_declared_dense_layer_reads_its_variables_through_its_handles() {
        let (layer, specs) =
            dense_after_another_variable(Dense::new("dense", 2, 1, Activation::Linear));
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["before", "dense/kernel", "dense/bias"]);
        let (before, kernel, bias) = ([0.0f32; 2], [2.0f32, -1.0], [0.5f32]);
        let views = dense_views(&before, &kernel, &bias);
        let mut t = Tape::new();
        let params = Params::load(&mut t, &specs, &views).expect("loads");
        let x = t.constant(ndarray::array![[1.0, 3.0]]);
        let y = layer.apply(&mut t, &params, x).expect("applies");
        assert_eq!(t.value(y)[[0, 0]], 2.0 - 3.0 + 0.5);
        // A layer never declared has no variables to read, and says how to fix it.
        let undeclared = Dense::new("dense", 2, 1, Activation::Linear);
        let err = undeclared
            .apply(&mut t, &params, x)
            .expect_err("undeclared");
        assert!(
            err.message.contains("layer `dense` has no variables"),
            "{err}"
        );
    }

    /// The views of the variables `dense_after_another_variable` declares.
    fn dense_views<'a>(
        before: &'a [f32],
        kernel: &'a [f32],
        bias: &'a [f32],
    ) -> [NamedView<'a>; 3] {
        [
            NamedView {
                name: "before".into(),
                tensor: crate::abi::TensorView::f32(&[2], before),
            },
            NamedView {
                name: "dense/kernel".into(),
                tensor: crate::abi::TensorView::f32(&[2, 1], kernel),
            },
            NamedView {
                name: "dense/bias".into(),
                tensor: crate::abi::TensorView::f32(&[1], bias),
            },
        ]
    }

    /// The gradients of `(x · kernel + bias)` summed, for x = [1, 3], kernel [2, -1] and
    /// bias 0.5, of a dense layer declared after a variable the loss does not use.
    fn dense_step_gradients() -> RVec<Gradient> {
        let (layer, specs) =
            dense_after_another_variable(Dense::new("dense", 2, 1, Activation::Linear));
        let (before, kernel, bias) = ([0.0f32; 2], [2.0f32, -1.0], [0.5f32]);
        let views = dense_views(&before, &kernel, &bias);
        let mut t = Tape::new();
        let params = Params::load(&mut t, &specs, &views).expect("loads");
        let x = t.constant(ndarray::array![[1.0, 3.0]]);
        let y = layer.apply(&mut t, &params, x).expect("applies");
        let loss = t.sum(y, Over::All);
        params.gradients(t.backward(loss))
    }

    fn summary(list: &[Gradient]) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        list.iter()
            .map(|g| {
                let TensorBuf::F32(data) = &g.values.data else {
                    panic!("f32 gradient");
                };
                let shape = g.values.shape.to_vec();
                (g.name.to_string(), shape, data.to_vec())
            })
            .collect()
    }

    #[test]
    fn a_recycled_spec_lends_the_next_step_its_gradient_names_and_shapes() {
        let fresh = dense_step_gradients();
        let expected = vec![
            ("before".to_owned(), vec![2], vec![0.0, 0.0]),
            ("dense/kernel".to_owned(), vec![2, 1], vec![1.0, 3.0]),
            ("dense/bias".to_owned(), vec![1], vec![1.0]),
        ];
        assert_eq!(summary(&fresh), expected);
        // Room no fresh name would have marks the recycled ones.
        let mut fresh = fresh;
        for g in fresh.iter_mut() {
            g.name.reserve(100);
            g.values.shape.reserve(100);
        }
        let mut spec = crate::abi::EstimatorSpec::new(crate::abi::ModeKeys::Train);
        spec.gradients = fresh;
        super::spare::recycle_spec(spec);
        let reused = dense_step_gradients();
        assert_eq!(summary(&reused), expected);
        assert!(
            reused
                .iter()
                .all(|g| g.name.capacity() >= 100 && g.values.shape.capacity() >= 100),
            "the recycled names and shapes, not new ones"
        );
        // Another model's list does not fit: the gradients are built afresh.
        let mut other = crate::abi::EstimatorSpec::new(crate::abi::ModeKeys::Train);
        other.gradients = vec![Gradient::dense("w", Tensor::f32(vec![1], vec![9.0]))].into();
        super::spare::recycle_spec(other);
        assert_eq!(summary(&dense_step_gradients()), expected);
    }

    #[test]
    fn tf_layers_names_are_those_of_tf_compat_v1_layers_dense() {
        let mut vars = VarBuilder::new();
        let _ = Mlp::tf_layers(4, &[10, 10], 3, Activation::Relu).declare(&mut vars);
        let names: Vec<String> = vars.specs().iter().map(|v| v.name.to_string()).collect();
        assert_eq!(
            names,
            [
                "dense/kernel",
                "dense/bias",
                "dense_1/kernel",
                "dense_1/bias",
                "dense_2/kernel",
                "dense_2/bias"
            ]
        );
    }
    use crate::abi::TensorView;

    #[test]
    fn mlp_declares_tf_names_and_shapes() {
        let mlp = Mlp::new("dnn", 4, &[10, 10], 3, Activation::Relu);
        let names: Vec<(String, Vec<usize>)> = mlp
            .variables()
            .iter()
            .map(|v| (v.name.to_string(), v.shape.to_vec()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("dnn/hiddenlayer_0/kernel".into(), vec![4, 10]),
                ("dnn/hiddenlayer_0/bias".into(), vec![10]),
                ("dnn/hiddenlayer_1/kernel".into(), vec![10, 10]),
                ("dnn/hiddenlayer_1/bias".into(), vec![10]),
                ("dnn/logits/kernel".into(), vec![10, 3]),
                ("dnn/logits/bias".into(), vec![3]),
            ]
        );
    }

    #[test]
    fn dense_forward_matches_hand_computation() {
        let mut vars = VarBuilder::new();
        let layer = Dense::new("d", 2, 1, Activation::Relu).declare(&mut vars);
        let specs = vars.specs();
        let (kernel, kshape) = ([2.0f32, -1.0], [2usize, 1]);
        let (bias, bshape) = ([0.5f32], [1usize]);
        let views = [
            NamedView {
                name: "d/kernel".into(),
                tensor: TensorView::f32(&kshape, &kernel),
            },
            NamedView {
                name: "d/bias".into(),
                tensor: TensorView::f32(&bshape, &bias),
            },
        ];
        let mut tape = Tape::new();
        let params = Params::load(&mut tape, &specs, &views).expect("matching variables");
        let x = tape.constant(ndarray::array![[1.0, 1.0], [0.0, 3.0]]);
        let y = layer.apply(&mut tape, &params, x).expect("shapes fit");
        // relu(2 - 1 + 0.5) = 1.5; relu(-3 + 0.5) = 0
        assert_eq!(tape.value(y).as_slice(), Some(&[1.5f32, 0.0][..]));
    }
}
