//! Adapters from the SDK traits to the ABI traits, with panics caught at the boundary.
//!
//! A panic must not cross an `extern "C"` function: abi_stable would abort the whole host.
//! Every call into plugin code therefore runs under [`guard`], which turns a panic into a
//! [`PluginError`] of kind `Panic` with the panic's message and location.

use std::any::Any;
use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec};
use serde::de::DeserializeOwned;

use crate::abi::{
    self, known_mode, BuiltIn, Chunk, ErrorKind, EstimatorSpec, ExportOutput, FactoryContext,
    InputSourceBox, MetricBox, MetricPartial, MetricValue, ModeKeys_NE, ModelFnBox, NamedView,
    OptimizerPart, PluginError, StepContext, TensorView, VarSpec,
};

use super::plugin::{Input, Model, ModelInputs, StreamingMetric};

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces this library's panic hook with one that records the message and location for
/// [`guard`] instead of printing it: the host prints the error once, as one line.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_default();
            let message = payload_message(info.payload());
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{message}{location}")));
        }));
    });
}

fn payload_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}

/// Runs plugin code, turning a panic into an error instead of unwinding into the host.
pub fn guard<T>(f: impl FnOnce() -> Result<T, PluginError>) -> RResult<T, PluginError> {
    install_panic_hook();
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.into(),
        Err(payload) => {
            let message = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| payload_message(payload.as_ref()));
            RResult::RErr(PluginError::new(ErrorKind::Panic, message))
        }
    }
}

/// Deserializes a params subtree (JSON from the host) into a plugin's typed params.
pub fn parse_params<P: DeserializeOwned>(json: &str) -> Result<P, PluginError> {
    serde_json::from_str(json).map_err(|e| {
        let mut message = e.to_string();
        // serde_json appends a JSON position that means nothing to someone reading YAML.
        if let Some(cut) = message.find(" at line ") {
            message.truncate(cut);
        }
        PluginError::bad_params(message)
    })
}

struct ModelAdapter<M> {
    model: M,
    specs: Vec<VarSpec>,
    /// What the host said it reads from TRAIN steps; `None` until it says.
    train_fetches: Option<Vec<String>>,
}

impl<M: Model> abi::ModelFn for ModelAdapter<M> {
    fn variables(&self) -> RResult<RVec<VarSpec>, PluginError> {
        guard(|| Ok(self.specs.iter().cloned().collect()))
    }

    fn optimizer_parts(&self) -> RResult<RVec<OptimizerPart>, PluginError> {
        guard(|| Ok(self.model.optimizer_parts().into()))
    }

    fn requested_hooks(&self, mode: ModeKeys_NE) -> RResult<RVec<BuiltIn>, PluginError> {
        guard(|| Ok(self.model.requested_hooks(known_mode(&mode)?).into()))
    }

    fn eval_metric_results(
        &self,
        sums: RSlice<'_, MetricPartial>,
    ) -> RResult<RVec<MetricValue>, PluginError> {
        guard(|| {
            self.model
                .eval_metric_results(sums.as_slice())
                .map(RVec::from)
        })
    }

    fn export_outputs(&self) -> RResult<RVec<ExportOutput>, PluginError> {
        guard(|| Ok(self.model.export_outputs().into()))
    }

    fn set_train_fetches(&mut self, predictions: RSlice<'_, RString>) -> RResult<(), PluginError> {
        self.train_fetches = Some(predictions.iter().map(|p| p.as_str().to_owned()).collect());
        RResult::ROk(())
    }

    fn recycle_spec(&mut self, spec: EstimatorSpec) {
        super::recycle_spec(spec);
    }

    fn model_fn(
        &mut self,
        features: RSlice<'_, NamedView<'_>>,
        labels: ROption<TensorView<'_>>,
        mode: ModeKeys_NE,
        variables: RSlice<'_, NamedView<'_>>,
        ctx: StepContext,
    ) -> RResult<EstimatorSpec, PluginError> {
        guard(|| {
            let inputs = ModelInputs {
                features: features.as_slice(),
                labels: labels.into_option(),
                mode: known_mode(&mode)?,
                variables: variables.as_slice(),
                specs: &self.specs,
                ctx,
                train_fetches: self.train_fetches.as_deref(),
            };
            self.model.model_fn(&inputs)
        })
    }
}

/// Creates a model of type `M` from JSON params, as the export macro's `create_model` does.
pub fn create_model<M: Model>(
    params_json: &str,
    ctx: &FactoryContext<'_>,
) -> Result<ModelFnBox, PluginError> {
    let model = M::new(parse_params(params_json)?, ctx)?;
    let specs = model.variables();
    Ok(abi::ModelFn_TO::from_value(
        ModelAdapter {
            model,
            specs,
            train_fetches: None,
        },
        TD_Opaque,
    ))
}

struct MetricAdapter<M>(M);

impl<M: StreamingMetric> abi::Metric for MetricAdapter<M> {
    fn update(
        &mut self,
        labels: TensorView<'_>,
        predictions: TensorView<'_>,
        weights: ROption<TensorView<'_>>,
    ) -> RResult<(), PluginError> {
        guard(|| {
            self.0
                .update(&labels, &predictions, weights.as_ref().into_option())
        })
    }

    fn result(&self) -> RResult<f64, PluginError> {
        guard(|| self.0.result())
    }

    fn reset(&mut self) -> RResult<(), PluginError> {
        guard(|| {
            self.0.reset();
            Ok(())
        })
    }

    fn state(&self) -> RResult<RVec<f64>, PluginError> {
        guard(|| Ok(self.0.state().into()))
    }

    fn merge(&mut self, other_state: RSlice<'_, f64>) -> RResult<(), PluginError> {
        guard(|| self.0.merge(other_state.as_slice()))
    }
}

pub fn create_metric<M: StreamingMetric>(
    params_json: &str,
    ctx: &FactoryContext<'_>,
) -> Result<MetricBox, PluginError> {
    let metric = M::new(parse_params(params_json)?, ctx)?;
    Ok(abi::Metric_TO::from_value(MetricAdapter(metric), TD_Opaque))
}

struct InputAdapter<I>(I);

impl<I: Input> abi::InputSource for InputAdapter<I> {
    fn next_chunk(&mut self) -> RResult<ROption<Chunk>, PluginError> {
        guard(|| Ok(self.0.next_chunk()?.into()))
    }
}

pub fn open_input<I: Input>(
    params_json: &str,
    ctx: &FactoryContext<'_>,
    mode: &ModeKeys_NE,
) -> Result<InputSourceBox, PluginError> {
    let input = I::open(parse_params(params_json)?, ctx, known_mode(mode)?)?;
    Ok(abi::InputSource_TO::from_value(
        InputAdapter(input),
        TD_Opaque,
    ))
}

/// The error for a name the library does not export.
pub fn not_found(what: &str, name: RStr<'_>, known: &[RStr<'static>]) -> PluginError {
    let known: Vec<&str> = known.iter().map(|k| k.as_str()).collect();
    let known = if known.is_empty() {
        "none".to_owned()
    } else {
        known.join(", ")
    };
    PluginError::new(
        ErrorKind::NotFound,
        format!("this library exports no {what} named `{name}` (it exports: {known})"),
    )
}

/// Exports a plugin library: its models, metrics and inputs, each under a name.
///
/// ```ignore
/// estimator_plugin_api::export_plugin! {
///     models: ["iris_custom" => IrisCustom],
///     metrics: [],
///     inputs: [],
/// }
/// ```
///
/// Each type implements the SDK trait for its role ([`Model`], [`StreamingMetric`],
/// [`Input`]); the macro writes the root module, name dispatch and panic guards, so the
/// plugin itself needs no unsafe code.
///
/// The library exports its header under abi_stable's symbol name, as abi_stable's own
/// `#[export_root_module]` would, so a plugin crate depends on this crate alone.
///
/// Besides the exported root module, the macro defines `pub fn plugin_module()`, the same
/// module for a program that links the plugin crate statically (its `rlib`). Only one
/// crate that exports a root module can be linked into a program (the exported symbol is
/// the same in each); to link plugins of your own into a test, write their module with
/// [`define_plugin_module!`](crate::define_plugin_module), which exports nothing.
#[macro_export]
macro_rules! export_plugin {
    (
        models: [$($model_name:literal => $model:ty),* $(,)?],
        metrics: [$($metric_name:literal => $metric:ty),* $(,)?],
        inputs: [$($input_name:literal => $input:ty),* $(,)?] $(,)?
    ) => {
        $crate::define_plugin_module! {
            /// This library's root module, for a program that links it statically.
            pub fn plugin_module();
            models: [$($model_name => $model),*],
            metrics: [$($metric_name => $metric),*],
            inputs: [$($input_name => $input),*],
        }

        /// The library header the host looks up by this name when it loads the library:
        /// what abi_stable's `#[export_root_module]` writes, spelled out so that a plugin
        /// crate needs no dependency on abi_stable (the name is checked by a test).
        #[no_mangle]
        #[allow(non_upper_case_globals)]
        pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::abi_stable::library::LibHeader = {
            extern "C" fn load_root_module() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader(plugin_module)
            }
            // SAFETY: the constructor returns `PluginModule_Ref`, the module type named.
            unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<$crate::abi::PluginModule_Ref>(
                    load_root_module,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };

        /// The fingerprint of the ABI source this library was built from: a host built
        /// from the same source trusts its layouts without walking them (the name is
        /// `FINGERPRINT_SYMBOL`, checked by a test).
        #[no_mangle]
        #[allow(non_upper_case_globals)]
        pub static estimator_plugin_abi_fingerprint: [u64; 2] = $crate::abi::ABI_FINGERPRINT;
    };
}

/// Defines a function that builds a plugin's root module, as [`export_plugin!`] does, but
/// without exporting it from the library: for plugins linked into a program, such as a
/// test's own models, inputs and metrics.
///
/// ```ignore
/// estimator_plugin_api::define_plugin_module! {
///     fn test_plugins();
///     models: [],
///     metrics: [],
///     inputs: ["rows" => Rows],
/// }
/// ```
#[macro_export]
macro_rules! define_plugin_module {
    (
        $(#[$attr:meta])*
        $vis:vis fn $fn_name:ident();
        models: [$($model_name:literal => $model:ty),* $(,)?],
        metrics: [$($metric_name:literal => $metric:ty),* $(,)?],
        inputs: [$($input_name:literal => $input:ty),* $(,)?] $(,)?
    ) => {
        $(#[$attr])*
        $vis fn $fn_name() -> $crate::abi::PluginModule_Ref {
            use $crate::abi_stable::prefix_type::PrefixTypeTrait;
            use $crate::abi_stable::std_types::{RResult, RStr};
            use $crate::abi::{FactoryContext, HostLogger, InputSourceBox, MetricBox, ModeKeys_NE, ModelFnBox, PluginError};
            use $crate::sdk::export;

            const MODEL_NAMES: &[RStr<'static>] = &[$(RStr::from_str($model_name)),*];
            const METRIC_NAMES: &[RStr<'static>] = &[$(RStr::from_str($metric_name)),*];
            const INPUT_NAMES: &[RStr<'static>] = &[$(RStr::from_str($input_name)),*];

            extern "C" fn create_model(
                name: RStr<'_>,
                params: RStr<'_>,
                ctx: FactoryContext<'_>,
            ) -> RResult<ModelFnBox, PluginError> {
                export::guard(|| match name.as_str() {
                    $($model_name => export::create_model::<$model>(params.as_str(), &ctx),)*
                    _ => Err(export::not_found("model", name, MODEL_NAMES)),
                })
            }

            extern "C" fn create_metric(
                kind: RStr<'_>,
                params: RStr<'_>,
                ctx: FactoryContext<'_>,
            ) -> RResult<MetricBox, PluginError> {
                export::guard(|| match kind.as_str() {
                    $($metric_name => export::create_metric::<$metric>(params.as_str(), &ctx),)*
                    _ => Err(export::not_found("metric", kind, METRIC_NAMES)),
                })
            }

            extern "C" fn open_input(
                name: RStr<'_>,
                params: RStr<'_>,
                ctx: FactoryContext<'_>,
                mode: ModeKeys_NE,
            ) -> RResult<InputSourceBox, PluginError> {
                export::guard(|| match name.as_str() {
                    $($input_name => export::open_input::<$input>(params.as_str(), &ctx, &mode),)*
                    _ => Err(export::not_found("input", name, INPUT_NAMES)),
                })
            }

            extern "C" fn init_logging(host: HostLogger) {
                $crate::sdk::logging::forward_to(host);
            }

            $crate::abi::PluginModule {
                abi_version: $crate::ABI_VERSION,
                plugin_name: RStr::from_str(env!("CARGO_PKG_NAME")),
                plugin_version: RStr::from_str(env!("CARGO_PKG_VERSION")),
                model_names: MODEL_NAMES.into(),
                create_model,
                metric_names: METRIC_NAMES.into(),
                create_metric,
                input_names: INPUT_NAMES.into(),
                open_input,
                init_logging,
            }
            .leak_into_prefix()
        }
    };
}

#[cfg(test)]
mod tests {
    /// `export_plugin!` spells out the symbol abi_stable's loader looks for; it must be
    /// the one this abi_stable version uses.
    #[test]
    fn the_exported_header_has_the_name_abi_stable_looks_up() {
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }
}
