//! A test fixture: the library a plugin would be if built against estimator-plugin-api
//! 0.0.9, whose root module exported models only. The host must refuse it at load time
//! and name both versions. Never use it for anything else.
//!
//! It declares that API's root module itself, as the 0.0.9 crate did, and exports it the
//! way `export_plugin!` does; its factory refuses every call, since a correct host never
//! reaches it.

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
use estimator_plugin_api::abi::{FactoryContext, ModelFnBox, PluginError};

/// estimator-plugin-api 0.0.9's root module: models only, no metrics or inputs.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModule_Ref)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    pub abi_version: u32,
    pub plugin_name: RStr<'static>,
    pub plugin_version: RStr<'static>,
    pub model_names: RSlice<'static, RStr<'static>>,
    #[sabi(last_prefix_field)]
    pub create_model:
        extern "C" fn(RStr<'_>, RStr<'_>, FactoryContext<'_>) -> RResult<ModelFnBox, PluginError>,
}

impl RootModule for PluginModule_Ref {
    declare_root_module_statics! {PluginModule_Ref}
    const BASE_NAME: &'static str = "estimator_plugin";
    const NAME: &'static str = "estimator_plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("0.0.9");
}

extern "C" fn create_model(
    _: RStr<'_>,
    _: RStr<'_>,
    _: FactoryContext<'_>,
) -> RResult<ModelFnBox, PluginError> {
    RErr(PluginError::other(
        "the old_api fixture is never to be called",
    ))
}

const MODELS: &[RStr<'static>] = &[RStr::from_str("old_model")];

#[export_root_module]
pub fn root_module() -> PluginModule_Ref {
    PluginModule {
        abi_version: 0,
        plugin_name: RStr::from_str(env!("CARGO_PKG_NAME")),
        plugin_version: RStr::from_str(env!("CARGO_PKG_VERSION")),
        model_names: RSlice::from_slice(MODELS),
        create_model,
    }
    .leak_into_prefix()
}
