//! Declaring a model's variables once, when the model is built: a [`VarBuilder`] takes each
//! variable's name, shape, initialiser and trainability and hands back a typed
//! [`VarHandle`]; `Model::variables` returns the builder's list, and model_fn reads each
//! variable through its handle ([`super::layers::Params::var`]), by position, with no
//! string lookups.

use crate::abi::{Initializer, PluginError, VarSpec};

/// A declared variable, as model_fn finds it on the tape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VarHandle(pub(crate) usize);

/// The variables a model declares, in order.
#[derive(Clone, Debug, Default)]
pub struct VarBuilder {
    specs: Vec<VarSpec>,
}

impl VarBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A variable the optimizer trains.
    pub fn trainable(&mut self, name: &str, shape: &[usize], init: Initializer) -> VarHandle {
        self.push(VarSpec::new(name, shape, init))
    }

    /// A variable only the model's `updates` change (batch norm's moving averages, say).
    pub fn non_trainable(&mut self, name: &str, shape: &[usize], init: Initializer) -> VarHandle {
        self.push(VarSpec::new(name, shape, init).non_trainable())
    }

    /// A variable declared as `spec` says (a layer's own declaration).
    pub fn declare(&mut self, spec: VarSpec) -> VarHandle {
        self.push(spec)
    }

    fn push(&mut self, spec: VarSpec) -> VarHandle {
        self.specs.push(spec);
        VarHandle(self.specs.len() - 1)
    }

    /// Appends declarations made elsewhere (a layer that declares its own, such as
    /// `DenseFeatures`), so that later handles keep their positions.
    pub fn declare_all(&mut self, specs: impl IntoIterator<Item = VarSpec>) {
        self.specs.extend(specs);
    }

    /// The declarations, for `Model::variables`.
    pub fn specs(&self) -> Vec<VarSpec> {
        self.specs.clone()
    }
}

/// The handles of one layer's variables, in the order the layer lists them; empty until
/// the layer is declared in a [`VarBuilder`] (each layer's `declare`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerVars(Vec<VarHandle>);

impl LayerVars {
    /// Declares `specs` in `vars`, in order, and keeps their handles.
    pub fn declare(vars: &mut VarBuilder, specs: impl IntoIterator<Item = VarSpec>) -> Self {
        LayerVars(specs.into_iter().map(|spec| vars.declare(spec)).collect())
    }

    /// The handle of the layer's `i`-th variable; an error naming `layer` if the layer
    /// was never declared.
    pub fn get(&self, i: usize, layer: &str) -> Result<VarHandle, PluginError> {
        self.0.get(i).copied().ok_or_else(|| {
            PluginError::other(format!(
                "layer `{layer}` has no variables: declare it when the model is built (`.declare(&mut vars)`)"
            ))
        })
    }
}
