//! A test fixture: the library a plugin would be if built against estimator-plugin-api
//! 0.2.0, ABI 2, whose root module had no `init_logging` and whose trait objects and
//! enums had ABI 2's layouts. The host must refuse it at load time and name both
//! versions. Never use it for anything else.
//!
//! It declares ABI 2's root module itself, as the 0.2.0 crate did, with the version
//! strings and `abi_version` that crate wrote, and exports it as `export_plugin!` did
//! then; its factories refuse every call, since a correct host never reaches them.

// `PluginModule_Ref` follows abi_stable's naming for prefix references.
#![allow(non_camel_case_types)]

use abi_stable::{
    declare_root_module_statics, export_root_module,
    library::RootModule,
    prefix_type::PrefixTypeTrait,
    sabi_types::VersionStrings,
    std_types::{RErr, RResult, RSlice, RStr},
    StableAbi,
};
use estimator_plugin_api::abi::{
    FactoryContext, InputSourceBox, MetricBox, ModelFnBox, PluginError,
};

/// The ABI 2 mode: an exhaustive `repr(u8)` enum.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy)]
pub enum ModeKeys {
    Train,
    Eval,
    Predict,
}

/// estimator-plugin-api 0.2.0's root module (ABI 2).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModule_Ref)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    pub abi_version: u32,
    pub plugin_name: RStr<'static>,
    pub plugin_version: RStr<'static>,
    pub model_names: RSlice<'static, RStr<'static>>,
    pub create_model:
        extern "C" fn(RStr<'_>, RStr<'_>, FactoryContext<'_>) -> RResult<ModelFnBox, PluginError>,
    pub metric_names: RSlice<'static, RStr<'static>>,
    pub create_metric:
        extern "C" fn(RStr<'_>, RStr<'_>, FactoryContext<'_>) -> RResult<MetricBox, PluginError>,
    pub input_names: RSlice<'static, RStr<'static>>,
    #[sabi(last_prefix_field)]
    pub open_input: extern "C" fn(
        RStr<'_>,
        RStr<'_>,
        FactoryContext<'_>,
        ModeKeys,
    ) -> RResult<InputSourceBox, PluginError>,
}

impl RootModule for PluginModule_Ref {
    declare_root_module_statics! {PluginModule_Ref}
    const BASE_NAME: &'static str = "estimator_plugin";
    const NAME: &'static str = "estimator_plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("0.2.0");
}

fn never_called<T>() -> RResult<T, PluginError> {
    RErr(PluginError::other(
        "the old_api fixture is never to be called",
    ))
}

extern "C" fn create_model(
    _: RStr<'_>,
    _: RStr<'_>,
    _: FactoryContext<'_>,
) -> RResult<ModelFnBox, PluginError> {
    never_called()
}

extern "C" fn create_metric(
    _: RStr<'_>,
    _: RStr<'_>,
    _: FactoryContext<'_>,
) -> RResult<MetricBox, PluginError> {
    never_called()
}

extern "C" fn open_input(
    _: RStr<'_>,
    _: RStr<'_>,
    _: FactoryContext<'_>,
    _: ModeKeys,
) -> RResult<InputSourceBox, PluginError> {
    never_called()
}

const MODELS: &[RStr<'static>] = &[RStr::from_str("old_model")];

#[export_root_module]
pub fn root_module() -> PluginModule_Ref {
    PluginModule {
        abi_version: 2,
        plugin_name: RStr::from_str(env!("CARGO_PKG_NAME")),
        plugin_version: RStr::from_str(env!("CARGO_PKG_VERSION")),
        model_names: RSlice::from_slice(MODELS),
        create_model,
        metric_names: RSlice::from_slice(&[]),
        create_metric,
        input_names: RSlice::from_slice(&[]),
        open_input,
    }
    .leak_into_prefix()
}
