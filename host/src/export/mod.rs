//! Exported models: one self-contained version directory per export, as TF's
//! `export_saved_model` writes (`estimator export`), and loading one to serve it.
//!
//! - `signature`: the serving signatures, TF's `signature_def`s, resolved from the
//!   model's `export_outputs` (pure);
//! - `layout`: the version directory, its files, and writing one (`temp-<version>`, then a
//!   rename);
//! - `keeping`: which exports an exporter keeps, and which evaluation is the best (pure);
//! - `servable`: a version loaded from disk, with its own copy of the plugin library and
//!   a pool of model instances.

mod examples;
mod instances;
mod keeping;
mod layout;
mod servable;
mod signature;

pub use examples::{columns_from_instances, instances_from_features};
pub use instances::{
    columns_from_examples_json, columns_from_inputs_json, columns_from_instances_json, input_index,
    InputIndex,
};
pub use keeping::{best_before, improves, versions_to_delete};
pub use layout::{
    check_inside, write_version, ExportMeta, ExportedModel, EXPORT_FILE, FORMAT, PLUGIN_DIR,
    VARIABLES_FILE, WARMUP_FILE,
};
pub use servable::Servable;
pub use signature::{
    resolve, DTypeName, Method, Signature, SignatureOutputInfo, Signatures, TensorInfo,
};
