//! Finding and loading plugin libraries, and creating models, metrics and inputs from them.
//!
//! Libraries are loaded with `lib_header_from_path(..).init_root_module()`, never with
//! `RootModule::load_from_file`: the latter caches the first module of a type per process,
//! so a second, different plugin would silently return the first. Libraries are never
//! unloaded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use abi_stable::library::{lib_header_from_path, LibraryError, RawLibrary};
use abi_stable::std_types::RStr;
use estimator_plugin_api::abi::{
    FactoryContext, InputSourceBox, MetricBox, ModeKeys, ModelFnBox, PluginError, PluginModule_Ref,
    ABI_FINGERPRINT, FINGERPRINT_SYMBOL,
};
use estimator_plugin_api::ABI_VERSION;

use crate::error::{Error, Result};

/// A loaded plugin library.
pub struct PluginLibrary {
    pub path: PathBuf,
    /// The name the manifest used for it.
    pub name: String,
    pub package: String,
    pub version: String,
    module: PluginModule_Ref,
    /// A pinned library's open file, kept open for as long as the library is loaded (that
    /// is, for good): the loader knows the library by the file's /proc/self/fd name, which
    /// must never name another file.
    _pinned: Option<PinnedFile>,
}

/// Where plugins are searched and which are loaded, by resolved path; and the plugins
/// linked into this program, by name.
pub struct PluginRegistry {
    search_dirs: Vec<PathBuf>,
    loaded: HashMap<PathBuf, Arc<PluginLibrary>>,
    linked: HashMap<String, Arc<PluginLibrary>>,
}

impl PluginRegistry {
    /// Searches next to the running binary, then each folder of `ESTIMATOR_PLUGIN_PATH`.
    pub fn from_env() -> Self {
        let mut dirs = Vec::new();
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            dirs.push(dir);
        }
        if let Some(paths) = std::env::var_os("ESTIMATOR_PLUGIN_PATH") {
            dirs.extend(std::env::split_paths(&paths));
        }
        Self::with_search_dirs(dirs)
    }

    /// Where this registry looks for plugins by name.
    pub fn search_dirs(&self) -> &[PathBuf] {
        &self.search_dirs
    }

    pub fn with_search_dirs(search_dirs: Vec<PathBuf>) -> Self {
        PluginRegistry {
            search_dirs,
            loaded: HashMap::new(),
            linked: HashMap::new(),
        }
    }

    /// Makes a plugin linked into this program (its crate's `plugin_module()`, written by
    /// `export_plugin!`) answer to `name` in manifests, before any library of that name.
    /// Its ABI is checked as a library's is.
    pub fn link_static(&mut self, name: &str, module: PluginModule_Ref) -> Result<()> {
        let path = PathBuf::from(format!("<{name}, linked into this program>"));
        let lib = library_from_module(name, &path, module)?;
        self.linked.insert(name.to_owned(), Arc::new(lib));
        Ok(())
    }

    /// Loads the plugin `spec` (a library name or a path relative to `base_dir`).
    pub fn load(&mut self, spec: &str, base_dir: &Path) -> Result<Arc<PluginLibrary>> {
        self.load_pinned(spec, base_dir, None)
    }

    /// Loads the plugin `spec`, refusing it unless the library file's SHA-256 is `sha256`
    /// (when given). The file is hashed before it is loaded, so a mismatching library
    /// never runs any code.
    pub fn load_pinned(
        &mut self,
        spec: &str,
        base_dir: &Path,
        sha256: Option<&str>,
    ) -> Result<Arc<PluginLibrary>> {
        if let Some(lib) = self.linked.get(spec) {
            return match sha256 {
                None => Ok(Arc::clone(lib)),
                Some(_) => Err(Error::Plugin(format!(
                    "plugin `{spec}` is linked into this program: it has no library file to pin"
                ))),
            };
        }
        let path = self.resolve(spec, base_dir)?;
        // A pinned library is hashed through an open file, and that same file is what is
        // loaded (as /proc/self/fd/N): no window to swap the file between the check and
        // the load.
        let pinned = match sha256 {
            Some(expected) => Some(PinnedFile::open(&path, expected)?),
            None => None,
        };
        if let Some(lib) = self.loaded.get(&path) {
            return Ok(Arc::clone(lib));
        }
        let open_as = pinned.as_ref().map_or(path.clone(), PinnedFile::load_path);
        let mut lib = load_library(spec, &path, &open_as)?;
        lib._pinned = pinned;
        let lib = Arc::new(lib);
        self.loaded.insert(path, Arc::clone(&lib));
        Ok(lib)
    }

    fn resolve(&self, spec: &str, base_dir: &Path) -> Result<PathBuf> {
        let looks_like_path = spec.contains('/')
            || spec.contains('\\')
            || spec.ends_with(std::env::consts::DLL_SUFFIX);
        if looks_like_path {
            // Without `.` components, so messages show the path as a user would write it.
            let path: PathBuf = base_dir
                .join(spec)
                .components()
                .filter(|c| !matches!(c, std::path::Component::CurDir))
                .collect();
            return if path.is_file() {
                Ok(path)
            } else {
                Err(Error::Plugin(format!(
                    "plugin `{spec}`: no such file {} (resolved against the manifest's folder {})",
                    path.display(),
                    base_dir.display()
                )))
            };
        }
        let stem = spec.replace('-', "_");
        let candidates = [format!("estimator_plugin_{stem}"), stem];
        for dir in &self.search_dirs {
            for candidate in &candidates {
                let file = dir.join(format!(
                    "{}{candidate}{}",
                    std::env::consts::DLL_PREFIX,
                    std::env::consts::DLL_SUFFIX
                ));
                if file.is_file() {
                    return Ok(file);
                }
            }
        }
        let searched: Vec<String> = self
            .search_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        Err(Error::Plugin(format!(
            "plugin `{spec}` not found: looked for {}{}{} in {} (set ESTIMATOR_PLUGIN_PATH or give a path)",
            std::env::consts::DLL_PREFIX,
            candidates[0],
            std::env::consts::DLL_SUFFIX,
            searched.join(", ")
        )))
    }
}

/// A library file opened, read and found to have the pinned SHA-256; loading it through
/// [`PinnedFile::load_path`] loads exactly the bytes that were hashed.
struct PinnedFile {
    file: std::fs::File,
}

impl PinnedFile {
    fn open(path: &Path, expected: &str) -> Result<Self> {
        use std::io::Read;
        let cannot_read =
            |e: std::io::Error| Error::Plugin(format!("{}: cannot read: {e}", path.display()));
        let mut file = std::fs::File::open(path).map_err(cannot_read)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(cannot_read)?;
        let actual = crate::fingerprint::sha256_hex(&bytes);
        if actual != expected {
            return Err(Error::Plugin(format!(
                "{} has sha256 {actual}, not the pinned {expected}",
                path.display()
            )));
        }
        Ok(PinnedFile { file })
    }

    /// The path the dynamic loader opens: this open file itself where the system names
    /// open files (Linux's /proc/self/fd).
    fn load_path(&self) -> PathBuf {
        use std::os::fd::AsRawFd;
        PathBuf::from(format!("/proc/self/fd/{}", self.file.as_raw_fd()))
    }
}

/// Loads the library at `open_as` (the file itself, or an open file's name for it),
/// naming it `path` in messages.
fn load_library(spec: &str, path: &Path, open_as: &Path) -> Result<PluginLibrary> {
    let refuse = |why: String| {
        Error::Plugin(format!(
            "{}: cannot load plugin `{spec}`: {why}",
            path.display()
        ))
    };
    let header = lib_header_from_path(open_as).map_err(|e| refuse(summarize(&e)))?;
    let module = if library_fingerprint(open_as) == Some(ABI_FINGERPRINT) {
        tracing::debug!(
            "{}: built from this host's plugin ABI source; layouts trusted",
            path.display()
        );
        // SAFETY: the library was built from the same source of every type that crosses
        // (see `estimator_plugin_api::abi::ABI_FINGERPRINT`), so its layouts are this
        // host's; abi_stable still checks its own version and the plugin API's.
        unsafe { header.init_root_module_with_unchecked_layout::<PluginModule_Ref>() }
    } else {
        header.init_root_module::<PluginModule_Ref>()
    }
    .map_err(|e| refuse(summarize(&e)))?;
    let library = library_from_module(spec, path, module)?;
    // A linked plugin shares this program's `tracing`; a library has its own, which must
    // be pointed at the host's subscriber before any of its code runs.
    (module.init_logging())(crate::plugin_logs::host_logger());
    Ok(library)
}

/// The ABI fingerprint a library exports, if it exports one (libraries built before
/// there was one do not).
fn library_fingerprint(path: &Path) -> Option<[u64; 2]> {
    // The library is loaded already: this takes another reference to it.
    let library = RawLibrary::load_at(path).ok()?;
    // SAFETY: `export_plugin!` exports the symbol as a `[u64; 2]`; a library that exports
    // something else under this name is not one of ours, and its root module is then
    // checked in full after a wrong fingerprint.
    unsafe {
        let symbol = library.get::<*const [u64; 2]>(FINGERPRINT_SYMBOL).ok()?;
        Some(std::ptr::read_unaligned(*symbol))
    }
}

/// A plugin from its root module, once its ABI version is this host's.
fn library_from_module(spec: &str, path: &Path, module: PluginModule_Ref) -> Result<PluginLibrary> {
    if module.abi_version() != ABI_VERSION {
        return Err(Error::Plugin(format!(
            "{}: cannot load plugin `{spec}`: it was built for plugin ABI {}, this host speaks ABI {ABI_VERSION}",
            path.display(),
            module.abi_version()
        )));
    }
    Ok(PluginLibrary {
        path: path.to_path_buf(),
        name: spec.to_owned(),
        package: module.plugin_name().to_string(),
        version: module.plugin_version().to_string(),
        module,
        _pinned: None,
    })
}

/// abi_stable's errors, in one line: both versions for a version mismatch, and the final
/// `Error:` block of a layout mismatch (the full report is a long type dump).
fn summarize(e: &LibraryError) -> String {
    match e {
        LibraryError::IncompatibleVersionNumber { expected_version, actual_version, .. } => format!(
            "it was built against estimator-plugin-api {actual_version}, this host uses {expected_version}"
        ),
        LibraryError::AbiInstability(_) => {
            let text = e.to_string();
            let tail = text.rsplit("Error:").next().unwrap_or(&text);
            let tail: Vec<&str> = tail.split_whitespace().collect();
            format!(
                "its plugin-api types differ from this host's (built against another estimator-plugin-api {}): {}",
                estimator_plugin_api::VERSION,
                tail.join(" ")
            )
        }
        LibraryError::GetSymbolError { .. } => "it exports no estimator plugin. A plugin is a crate \
             with `crate-type = [\"cdylib\"]` that calls `estimator_plugin_api::export_plugin!` \
             (see docs/writing-a-plugin.md)"
            .to_owned(),
        LibraryError::OpenError { err, .. } => {
            // The loader's message repeats the path; keep only its reason.
            let text = err.to_string();
            let reason = text.rsplit(": ").next().unwrap_or(&text);
            format!("not a loadable library ({reason})")
        }
        other => other.to_string().split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

impl PluginLibrary {
    pub fn model_names(&self) -> Vec<String> {
        self.module
            .model_names()
            .iter()
            .map(|n| n.to_string())
            .collect()
    }

    pub fn metric_names(&self) -> Vec<String> {
        self.module
            .metric_names()
            .iter()
            .map(|n| n.to_string())
            .collect()
    }

    pub fn input_names(&self) -> Vec<String> {
        self.module
            .input_names()
            .iter()
            .map(|n| n.to_string())
            .collect()
    }

    /// The export named `name`, or the only one when `name` is absent.
    fn pick(&self, what: &str, name: Option<&str>, names: Vec<String>) -> Result<String> {
        match (name, names.as_slice()) {
            (_, []) => Err(Error::Plugin(format!(
                "plugin `{}` exports no {what}s",
                self.name
            ))),
            (Some(n), _) if names.iter().any(|e| e == n) => Ok(n.to_owned()),
            (Some(n), _) => Err(Error::Plugin(format!(
                "plugin `{}` exports no {what} `{n}` (it exports {})",
                self.name,
                names.join(", ")
            ))),
            (None, [only]) => Ok(only.clone()),
            (None, _) => Err(Error::Plugin(format!(
                "plugin `{}` exports {} {what}s ({}): name one with `name:`",
                self.name,
                names.len(),
                names.join(", ")
            ))),
        }
    }

    fn call_error(&self, call: &str, source: PluginError) -> Error {
        Error::PluginCall {
            plugin: self.name.clone(),
            call: call.to_owned(),
            source,
        }
    }

    pub fn create_model(
        &self,
        name: Option<&str>,
        params_json: &str,
        ctx: FactoryContext<'_>,
    ) -> Result<ModelFnBox> {
        let name = self.pick("model", name, self.model_names())?;
        (self.module.create_model())(RStr::from_str(&name), RStr::from_str(params_json), ctx)
            .into_result()
            .map_err(|e| self.call_error(&format!("create_model `{name}`"), e))
    }

    pub fn create_metric(
        &self,
        kind: &str,
        params_json: &str,
        ctx: FactoryContext<'_>,
    ) -> Result<MetricBox> {
        let kind = self.pick("metric", Some(kind), self.metric_names())?;
        (self.module.create_metric())(RStr::from_str(&kind), RStr::from_str(params_json), ctx)
            .into_result()
            .map_err(|e| self.call_error(&format!("create_metric `{kind}`"), e))
    }

    pub fn open_input(
        &self,
        name: Option<&str>,
        params_json: &str,
        ctx: FactoryContext<'_>,
        mode: ModeKeys,
    ) -> Result<InputSourceBox> {
        let name = self.pick("input", name, self.input_names())?;
        (self.module.open_input())(
            RStr::from_str(&name),
            RStr::from_str(params_json),
            ctx,
            mode.into(),
        )
        .into_result()
        .map_err(|e| self.call_error(&format!("open_input `{name}`"), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_file_is_hashed_and_loaded_through_one_open_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("lib.so");
        std::fs::write(&path, b"the checked bytes").expect("write");
        let sha = crate::fingerprint::sha256_hex(b"the checked bytes");
        let wrong = PinnedFile::open(&path, "00")
            .map(drop)
            .expect_err("refused");
        assert!(wrong.to_string().contains("not the pinned 00"), "{wrong}");
        let pinned = PinnedFile::open(&path, &sha).expect("matches");
        // The file is swapped after the check: what the loader opens is still the
        // checked one.
        let swapped = dir.path().join("other.so");
        std::fs::write(&swapped, b"other bytes").expect("write");
        std::fs::rename(&swapped, &path).expect("swap");
        let seen = std::fs::read(pinned.load_path()).expect("read through the fd");
        assert_eq!(seen, b"the checked bytes");
    }
}
