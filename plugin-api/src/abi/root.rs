//! The root module every plugin library exports.

// `PluginModule_Ref` follows abi_stable's naming for prefix references.
#![allow(non_camel_case_types)]

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings,
    sabi_types::VersionStrings,
    std_types::{RResult, RSlice, RStr},
    StableAbi,
};

use super::error::PluginError;
use super::factory::{InputSourceBox, MetricBox, ModelFnBox};
use super::logging::HostLogger;
use super::spec::{FactoryContext, ModeKeys_NE};

/// What a plugin library exports: its identity and its factories, each by name.
///
/// A prefix type: fields may be appended after the last prefix field in later ABI versions
/// without breaking libraries built against this one (see the crate docs for the policy).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModule_Ref)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// `crate::ABI_VERSION` as the plugin saw it when it was built.
    pub abi_version: u32,
    /// The plugin's package name and version, for provenance and error messages.
    pub plugin_name: RStr<'static>,
    pub plugin_version: RStr<'static>,

    pub model_names: RSlice<'static, RStr<'static>>,
    /// `create_model(name, params_json, context)`.
    pub create_model:
        extern "C" fn(RStr<'_>, RStr<'_>, FactoryContext<'_>) -> RResult<ModelFnBox, PluginError>,

    pub metric_names: RSlice<'static, RStr<'static>>,
    /// `create_metric(kind, params_json, context)`.
    pub create_metric:
        extern "C" fn(RStr<'_>, RStr<'_>, FactoryContext<'_>) -> RResult<MetricBox, PluginError>,

    pub input_names: RSlice<'static, RStr<'static>>,
    /// `open_input(name, params_json, context, mode)`.
    pub open_input: extern "C" fn(
        RStr<'_>,
        RStr<'_>,
        FactoryContext<'_>,
        ModeKeys_NE,
    ) -> RResult<InputSourceBox, PluginError>,

    /// Called once, before any factory, when the host loads the library: where the
    /// library's `tracing` events go.
    #[sabi(last_prefix_field)]
    pub init_logging: extern "C" fn(HostLogger),
}

impl RootModule for PluginModule_Ref {
    declare_root_module_statics! {PluginModule_Ref}
    const BASE_NAME: &'static str = "estimator_plugin";
    const NAME: &'static str = "estimator_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
