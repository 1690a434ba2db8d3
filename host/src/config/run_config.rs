//! `run_config:` — TF's RunConfig keys, with TF's defaults and rules, resolved when the
//! manifest is read: what the rest of the host sees is what will happen.
//!
//! TF's checkpoint-frequency rule, which its docs leave out: leaving both
//! `save_checkpoints_steps` and `save_checkpoints_secs` out means every 600 seconds, but
//! setting either to null (the other left out or null too) turns checkpoints off.

use crate::error::Invalid;
use serde::{Deserialize, Serialize};

/// How often checkpoints are written during training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointEvery {
    Steps(u64),
    Secs(u64),
}

/// The resolved run configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RunConfigSpec", into = "RunConfigSpec")]
pub struct RunConfig {
    /// Seed for initialisers, shuffling and model randomness; absent means a fresh one.
    pub random_seed: Option<u64>,
    /// `None`: no checkpoints during or after training.
    pub checkpoint_every: Option<CheckpointEvery>,
    /// Checkpoints kept on disk; 0 keeps all (TF's 0 or None).
    pub keep_checkpoint_max: usize,
    /// A checkpoint leaving the `keep_checkpoint_max` window stays on disk if this long
    /// has passed since the last one kept that way.
    pub keep_checkpoint_every_n_hours: f64,
    /// Log loss and global_step/sec every this many steps; `None` turns it off.
    pub log_step_count_steps: Option<u64>,
    /// Write TensorBoard summaries every this many steps; 0 turns them off.
    pub save_summary_steps: u64,
    /// Threads for the heavy ops (matmuls) as given; `None` means the machine's cores
    /// (see `crate::threads`).
    pub intra_op_threads: Option<usize>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig::try_from(RunConfigSpec::default()).unwrap_or(RunConfig {
            random_seed: None,
            checkpoint_every: Some(CheckpointEvery::Secs(600)),
            keep_checkpoint_max: 5,
            keep_checkpoint_every_n_hours: 10000.0,
            log_step_count_steps: Some(100),
            save_summary_steps: 100,
            intra_op_threads: None,
        })
    }
}

/// `run_config.session_config`: TF's ConfigProto, of which threads are what applies here.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// Threads for one op (TF's name); 0 or absent: the machine's cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intra_op_parallelism_threads: Option<usize>,
}

/// `run_config:` as written. A key given as `null` is `Some(None)`; a key left out is `None`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfigSpec {
    #[serde(
        default,
        alias = "tf_random_seed",
        skip_serializing_if = "Option::is_none"
    )]
    pub random_seed: Option<u64>,
    #[serde(default, deserialize_with = "given")]
    pub save_checkpoints_steps: Option<Option<u64>>,
    #[serde(default, deserialize_with = "given")]
    pub save_checkpoints_secs: Option<Option<u64>>,
    #[serde(default, deserialize_with = "given")]
    pub keep_checkpoint_max: Option<Option<usize>>,
    #[serde(default)]
    pub keep_checkpoint_every_n_hours: Option<f64>,
    #[serde(default, deserialize_with = "given")]
    pub log_step_count_steps: Option<Option<u64>>,
    #[serde(default)]
    pub save_summary_steps: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_config: Option<SessionConfig>,
}

/// Tells a key given as `null` (`Some(None)`) from one left out (`None`, via `default`).
fn given<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl TryFrom<RunConfigSpec> for RunConfig {
    type Error = Invalid;

    fn try_from(spec: RunConfigSpec) -> Result<Self, Invalid> {
        let checkpoint_every = match (spec.save_checkpoints_steps, spec.save_checkpoints_secs) {
            (Some(Some(_)), Some(Some(_))) => {
                return Err(
                    "save_checkpoints_steps and save_checkpoints_secs cannot be both set".into(),
                )
            }
            (Some(Some(0)), _) => {
                return Err(
                    "save_checkpoints_steps must be > 0 (null turns checkpoints off)".into(),
                )
            }
            (_, Some(Some(0))) => {
                return Err("save_checkpoints_secs must be > 0 (null turns checkpoints off)".into())
            }
            (Some(Some(steps)), _) => Some(CheckpointEvery::Steps(steps)),
            (_, Some(Some(secs))) => Some(CheckpointEvery::Secs(secs)),
            (None, None) => Some(CheckpointEvery::Secs(600)),
            _ => None,
        };
        let hours = spec.keep_checkpoint_every_n_hours.unwrap_or(10000.0);
        if hours.is_nan() || hours <= 0.0 {
            return Err(Invalid(format!(
                "keep_checkpoint_every_n_hours must be > 0, got {hours}"
            )));
        }
        let log_step_count_steps = spec.log_step_count_steps.unwrap_or(Some(100));
        if log_step_count_steps == Some(0) {
            return Err("log_step_count_steps must be > 0 (null turns logging off)".into());
        }
        Ok(RunConfig {
            random_seed: spec.random_seed,
            checkpoint_every,
            keep_checkpoint_max: spec.keep_checkpoint_max.unwrap_or(Some(5)).unwrap_or(0),
            keep_checkpoint_every_n_hours: hours,
            log_step_count_steps,
            save_summary_steps: spec.save_summary_steps.unwrap_or(100),
            // TF's 0 lets the system pick, as absent does.
            intra_op_threads: spec
                .session_config
                .and_then(|s| s.intra_op_parallelism_threads)
                .filter(|&n| n > 0),
        })
    }
}

/// The resolved values, written back as keys a manifest accepts.
impl From<RunConfig> for RunConfigSpec {
    fn from(rc: RunConfig) -> Self {
        let (steps, secs) = match rc.checkpoint_every {
            Some(CheckpointEvery::Steps(n)) => (Some(Some(n)), Some(None)),
            Some(CheckpointEvery::Secs(n)) => (Some(None), Some(Some(n))),
            None => (Some(None), Some(None)),
        };
        RunConfigSpec {
            random_seed: rc.random_seed,
            save_checkpoints_steps: steps,
            save_checkpoints_secs: secs,
            keep_checkpoint_max: Some(Some(rc.keep_checkpoint_max)),
            keep_checkpoint_every_n_hours: Some(rc.keep_checkpoint_every_n_hours),
            log_step_count_steps: Some(rc.log_step_count_steps),
            save_summary_steps: Some(rc.save_summary_steps),
            session_config: rc.intra_op_threads.map(|n| SessionConfig {
                intra_op_parallelism_threads: Some(n),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<RunConfig, String> {
        serde_yaml::from_str::<RunConfig>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn tf_defaults() {
        let rc = parse("{}").expect("valid");
        assert_eq!(rc.checkpoint_every, Some(CheckpointEvery::Secs(600)));
        assert_eq!(rc.keep_checkpoint_max, 5);
        assert_eq!(rc.keep_checkpoint_every_n_hours, 10000.0);
        assert_eq!(rc.log_step_count_steps, Some(100));
        assert_eq!(rc, RunConfig::default());
    }

    /// TF's table (reference 7.2): what each combination of the two keys means.
    #[test]
    fn checkpoint_frequency_follows_tf() {
        let cases = [
            ("{}", Some(CheckpointEvery::Secs(600))),
            (
                "{save_checkpoints_steps: 10}",
                Some(CheckpointEvery::Steps(10)),
            ),
            (
                "{save_checkpoints_secs: 10}",
                Some(CheckpointEvery::Secs(10)),
            ),
            ("{save_checkpoints_steps: null}", None),
            ("{save_checkpoints_secs: null}", None),
            (
                "{save_checkpoints_steps: null, save_checkpoints_secs: null}",
                None,
            ),
            (
                "{save_checkpoints_steps: 10, save_checkpoints_secs: null}",
                Some(CheckpointEvery::Steps(10)),
            ),
            (
                "{save_checkpoints_steps: null, save_checkpoints_secs: 5}",
                Some(CheckpointEvery::Secs(5)),
            ),
        ];
        for (yaml, expected) in cases {
            assert_eq!(
                parse(yaml).expect(yaml).checkpoint_every,
                expected,
                "{yaml}"
            );
        }
    }

    #[test]
    fn steps_and_secs_together_are_refused() {
        let err = parse("{save_checkpoints_steps: 10, save_checkpoints_secs: 10}").unwrap_err();
        assert!(err.contains("cannot be both set"), "{err}");
    }

    #[test]
    fn keep_checkpoint_max_null_or_zero_keeps_all() {
        assert_eq!(
            parse("{keep_checkpoint_max: null}")
                .expect("valid")
                .keep_checkpoint_max,
            0
        );
        assert_eq!(
            parse("{keep_checkpoint_max: 0}")
                .expect("valid")
                .keep_checkpoint_max,
            0
        );
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for yaml in [
            "{keep_checkpoint_every_n_hours: 0}",
            "{log_step_count_steps: 0}",
            "{save_checkpoints_steps: 0}",
        ] {
            assert!(parse(yaml).is_err(), "{yaml}");
        }
    }

    #[test]
    fn the_resolved_config_reads_back_as_itself() {
        for yaml in [
            "{}",
            "{save_checkpoints_steps: 7, keep_checkpoint_max: null}",
            "{save_checkpoints_secs: null, log_step_count_steps: null, random_seed: 3}",
        ] {
            let rc = parse(yaml).expect("valid");
            let text = serde_yaml::to_string(&rc).expect("serializes");
            assert_eq!(parse(&text).expect("reads back"), rc, "{text}");
        }
    }
}
