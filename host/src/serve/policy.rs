//! Which versions of a model serve, TF Serving's `model_version_policy`.

use serde::Deserialize;

/// TF Serving's version policies.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum VersionPolicy {
    /// The `num_versions` largest versions (TF Serving's default: 1).
    Latest { num_versions: usize },
    /// Every version.
    All {},
    /// Exactly these versions, when they exist.
    Specific { versions: Vec<u64> },
}

impl Default for VersionPolicy {
    fn default() -> Self {
        VersionPolicy::Latest { num_versions: 1 }
    }
}

impl VersionPolicy {
    /// The versions to serve among `candidates` (on disk, and not known to fail), in
    /// ascending order.
    pub fn choose(&self, candidates: &[u64]) -> Vec<u64> {
        let mut sorted = candidates.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        match self {
            VersionPolicy::Latest { num_versions } => {
                let keep = sorted.len().saturating_sub(*num_versions);
                sorted.split_off(keep)
            }
            VersionPolicy::All {} => sorted,
            VersionPolicy::Specific { versions } => {
                sorted.retain(|v| versions.contains(v));
                sorted
            }
        }
    }
}

/// The versions in a base path's entries: names that are whole numbers. Anything else
/// (`temp-<version>` while an export is written, stray files) is not a version.
pub fn versions_in<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<u64> {
    names
        .into_iter()
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|n| n.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_keeps_the_largest() {
        let policy = VersionPolicy::default();
        assert_eq!(policy.choose(&[3, 10, 7]), [10]);
        let two = VersionPolicy::Latest { num_versions: 2 };
        assert_eq!(two.choose(&[3, 10, 7]), [7, 10]);
        assert_eq!(two.choose(&[]), Vec::<u64>::new());
    }

    #[test]
    fn all_and_specific() {
        assert_eq!(VersionPolicy::All {}.choose(&[2, 1]), [1, 2]);
        let specific = VersionPolicy::Specific {
            versions: vec![1, 5],
        };
        assert_eq!(specific.choose(&[1, 2, 3]), [1]);
    }

    #[test]
    fn only_numeric_names_are_versions() {
        let names = ["1796050207", "temp-1796050208", "README", "", "12a", "3"];
        assert_eq!(versions_in(names), [1796050207, 3]);
    }
}
