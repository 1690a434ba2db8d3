//! The contract between the `estimator` host and its plugin libraries.
//!
//! - [`abi`]: the `#[repr(C)]`, `StableAbi` types that cross the boundary — tensors as
//!   borrowed views in and owned buffers out, `EstimatorSpec`, and the root module each
//!   plugin library exports.
//! - [`sdk`]: what plugin authors use — the [`sdk::Model`], [`sdk::StreamingMetric`] and
//!   [`sdk::Input`] traits, ndarray views, a reverse-mode tape with layers and losses, and
//!   [`export_plugin!`] which writes the library's root module.
//!
//! # Versioning policy
//!
//! [`ABI_VERSION`] names the layout of everything in [`abi`]; `CHANGELOG.md` beside this
//! crate lists what each version changed. ABI version N is crate version 0.N.x. The host
//! loads a library only if abi_stable's check passes (a compatible crate version, then the
//! same layouts) and the library's `abi_version` equals the host's; otherwise it refuses
//! the library with both versions named.
//!
//! Within one ABI version (0.N.x), only these changes are allowed, so a library built
//! against an older 0.N.x still loads in a newer host:
//! - root-module fields and trait methods appended after the last prefix field, each with
//!   a default for libraries that lack it;
//! - variants added to the `NonExhaustive` enums (`ModeKeys`, `Initializer`, `ErrorKind`,
//!   `SettingValue`), which the side that does not know them turns into a named error;
//! - anything in [`sdk`] that does not change a type in [`abi`].
//!
//! Anything else — a changed field, a new tensor dtype, a reordered method — is a new ABI
//! version.

pub mod abi;
pub mod prelude;
pub mod sdk;

#[doc(hidden)]
pub use abi_stable;

/// The version of the ABI in [`abi`]. Bumped on any change that is not an append.
pub const ABI_VERSION: u32 = 3;

/// This crate's version, which abi_stable compares with a library's at load time.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `docs/writing-a-plugin.md`, whose Rust examples compile as this crate's doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/writing-a-plugin.md")]
pub struct WritingAPluginGuide;
