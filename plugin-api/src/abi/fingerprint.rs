//! A fingerprint of this module's source, which every layout that crosses the boundary
//! is written in.
//!
//! abi_stable checks a library's layouts by walking the host's and the library's type
//! graphs side by side, type by type: about 0.3-0.45 ms for this ABI, at every load of
//! every library, in a process whose whole premade training run takes 12 ms. A library
//! built from the same source of this module has the same layouts (they are all
//! `#[repr(C)]`, spelled out here, and abi_stable's own types are checked by its header
//! at load), so the host walks the graphs only for a library whose fingerprint differs
//! from its own, or that has none. The fingerprint is computed while compiling, from the
//! files themselves; a test checks that it covers every file here, and that no type
//! deriving `StableAbi` lives outside this module.

/// The files hashed: every file of this module.
const SOURCES: [(&str, &[u8]); 10] = [
    ("error.rs", include_bytes!("error.rs")),
    ("export.rs", include_bytes!("export.rs")),
    ("factory.rs", include_bytes!("factory.rs")),
    ("fingerprint.rs", include_bytes!("fingerprint.rs")),
    ("logging.rs", include_bytes!("logging.rs")),
    ("mod.rs", include_bytes!("mod.rs")),
    ("root.rs", include_bytes!("root.rs")),
    ("settings.rs", include_bytes!("settings.rs")),
    ("spec.rs", include_bytes!("spec.rs")),
    ("tensor.rs", include_bytes!("tensor.rs")),
];

/// This build's fingerprint: two 64-bit FNV-1a hashes of the sources, with different
/// starting values. It tells accidental differences apart; it is no defence against a
/// library that lies, which as native code could do anything anyway.
pub const ABI_FINGERPRINT: [u64; 2] = [
    fnv1a(0xcbf2_9ce4_8422_2325, &SOURCES),
    fnv1a(0x6c62_272e_07bb_0142, &SOURCES),
];

/// The symbol `export_plugin!` exports the fingerprint under, as a `[u64; 2]`.
pub const FINGERPRINT_SYMBOL: &[u8] = b"estimator_plugin_abi_fingerprint\0";

const fn fnv1a(start: u64, sources: &[(&str, &[u8])]) -> u64 {
    let mut hash = start;
    let mut i = 0;
    while i < sources.len() {
        let bytes = sources[i].1;
        let mut j = 0;
        while j < bytes.len() {
            hash ^= bytes[j] as u64;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
            j += 1;
        }
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn rust_files(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("readable source dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                rust_files(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }

    #[test]
    fn the_fingerprint_covers_every_file_of_the_abi_module() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/abi");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .expect("src/abi")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let hashed: Vec<&str> = SOURCES.iter().map(|(name, _)| *name).collect();
        assert_eq!(files, hashed);
        for (name, bytes) in SOURCES {
            assert_eq!(
                std::fs::read(dir.join(name)).expect("readable"),
                bytes,
                "{name}"
            );
        }
    }

    #[test]
    fn every_type_that_crosses_the_boundary_is_declared_in_the_abi_module() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let outside: Vec<_> = files
            .iter()
            .filter(|f| !f.starts_with(src.join("abi")))
            .filter(|f| {
                let text = std::fs::read_to_string(f).expect("readable");
                text.contains(concat!("derive(", "StableAbi"))
                    || text.contains(concat!("#[sabi", "_trait]"))
            })
            .collect();
        assert!(outside.is_empty(), "ABI types outside src/abi: {outside:?}");
    }

    #[test]
    fn a_changed_byte_changes_the_fingerprint() {
        let changed: [(&str, &[u8]); 1] = [("spec.rs", b"pub struct A { x: u32 }")];
        let original: [(&str, &[u8]); 1] = [("spec.rs", b"pub struct A { x: u64 }")];
        assert_ne!(
            fnv1a(0xcbf2_9ce4_8422_2325, &changed),
            fnv1a(0xcbf2_9ce4_8422_2325, &original)
        );
        assert_ne!(ABI_FINGERPRINT[0], ABI_FINGERPRINT[1]);
    }
}
