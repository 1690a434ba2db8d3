//! Which checkpoints stay: TF's Saver retention (`max_to_keep`,
//! `keep_checkpoint_every_n_hours`), decided without touching a file.

/// What retention decides after a save: which checkpoints stay listed, which files go.
#[derive(Debug, PartialEq)]
pub struct Retention {
    pub listed: Vec<(String, f64)>,
    pub delete: Vec<String>,
}

/// TF's Saver retention: `max_to_keep` and `keep_checkpoint_every_n_hours`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetentionPolicy {
    /// Checkpoints listed and kept; 0 keeps every file and lists only the latest.
    pub keep_max: usize,
    /// A checkpoint leaving the window is kept on disk (unlisted) when it was written
    /// after the next keep time, which then moves this many seconds on.
    pub keep_every_secs: f64,
}

/// Applies `policy` to the listed checkpoints `all` (oldest first, with their write
/// times); `next_keep` is the time after which a checkpoint leaving the window is kept.
pub fn retain(all: &[(String, f64)], policy: RetentionPolicy, next_keep: &mut f64) -> Retention {
    if policy.keep_max == 0 {
        return Retention {
            listed: all.last().cloned().into_iter().collect(),
            delete: Vec::new(),
        };
    }
    let cut = all.len().saturating_sub(policy.keep_max);
    let mut delete = Vec::new();
    for (name, time) in &all[..cut] {
        if *time > *next_keep {
            *next_keep += policy.keep_every_secs;
        } else {
            delete.push(name.clone());
        }
    }
    Retention {
        listed: all[cut..].to_vec(),
        delete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::file_name;
    use crate::checkpoint::test_support::{entries, keep};

    #[test]
    fn retention_keeps_the_newest_and_deletes_the_rest() {
        let r = retain(&entries(&[0, 30, 60, 90, 100]), keep(3), &mut 1e12);
        assert_eq!(r.listed, entries(&[60, 90, 100]));
        assert_eq!(r.delete, vec![file_name(0), file_name(30)]);
    }

    #[test]
    fn keep_max_zero_deletes_nothing_and_lists_the_latest() {
        let r = retain(&entries(&[0, 30, 60]), keep(0), &mut 1e12);
        assert_eq!(r.listed, entries(&[60]));
        assert!(r.delete.is_empty());
    }
}
