//! Where a pipeline is, saved in training checkpoints, and moving a new pipeline back
//! there so a resumed run reads on exactly where the interrupted one stopped.

use super::pipeline::Pipeline;
use super::reader::RowRef;
use crate::error::{Error, Result};

/// Where a training pipeline is, saved in checkpoints so that a resumed run reads on
/// exactly where the interrupted one stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PipelinePosition {
    /// Passes started over the data; 0 before the first batch.
    pub passes: u64,
    /// Rows read from the source in the current pass.
    pub rows_read: u64,
    /// Rows passed on to batches in the current pass.
    pub rows_emitted: u64,
    /// The shuffle buffer's rows, by ordinal in the current pass, in slot order.
    pub shuffle_buffer: Vec<u64>,
    /// Whether the shuffle buffer has seen the end of the current pass.
    pub shuffle_pass_ended: bool,
    /// The shuffle RNG's position in its stream (as text in JSON, which has no u128).
    #[serde(with = "word_as_text")]
    pub shuffle_rng_word: u128,
}

/// A u128 as decimal text.
mod word_as_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(word: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(word)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Pipeline {
    /// Where the pipeline is now, for a checkpoint.
    pub fn position(&self) -> PipelinePosition {
        let mut position = PipelinePosition::default();
        self.position_into(&mut position);
        position
    }

    /// Writes where the pipeline is now into `out`, reusing its buffer (the prefetch
    /// stage records a position with every batch, without allocating).
    pub fn position_into(&self, out: &mut PipelinePosition) {
        let shuffle = self.shuffle.as_ref();
        out.passes = self.passes;
        out.rows_read = self.reader.rows_read;
        out.rows_emitted = self.rows_this_pass;
        out.shuffle_buffer.clear();
        if let Some(s) = shuffle {
            out.shuffle_buffer.extend(s.rows.iter().map(|r| r.ordinal));
        }
        out.shuffle_pass_ended = shuffle.is_some_and(|s| s.pass_ended);
        out.shuffle_rng_word = shuffle.map_or(0, |s| s.rng.get_word_pos());
    }

    /// Moves a new pipeline to `position`, re-reading the current pass up to it (and,
    /// with `cache`, a whole first pass to fill the cache). Refuses a position the data
    /// cannot reach: the data has changed since it was saved.
    pub fn seek(&mut self, position: &PipelinePosition) -> Result<()> {
        if position.passes == 0 {
            return Ok(());
        }
        let label = self.config.label.clone();
        let changed = |why: &str| {
            Error::Data(format!(
                "{label}: cannot continue where the checkpoint stopped (pass {}, row {}): {why}; the data changed since",
                position.passes, position.rows_read
            ))
        };
        if position.passes > 1 && self.config.cache {
            self.reader.start_pass()?;
            while self.reader.next_row()?.is_some() {}
        }
        self.start_pass()?;
        self.passes = position.passes;
        self.rows_this_pass = position.rows_emitted;
        let slots: std::collections::HashMap<u64, usize> = position
            .shuffle_buffer
            .iter()
            .enumerate()
            .map(|(slot, &ordinal)| (ordinal, slot))
            .collect();
        let mut buffered: Vec<Option<RowRef>> = vec![None; slots.len()];
        while self.reader.rows_read < position.rows_read {
            let row = self
                .reader
                .next_row()?
                .ok_or_else(|| changed("it has fewer rows"))?;
            if let Some(&slot) = slots.get(&row.ordinal) {
                buffered[slot] = Some(row);
            }
        }
        let Some(shuffle) = self.shuffle.as_mut() else {
            return match slots.is_empty() {
                true => Ok(()),
                false => Err(changed("it was shuffled then")),
            };
        };
        shuffle.rows = buffered
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| changed("a buffered row is past the rows read"))?;
        shuffle.pass_ended = position.shuffle_pass_ended;
        shuffle.rng.set_word_pos(position.shuffle_rng_word);
        if shuffle.pass_ended && self.reader.next_row()?.is_some() {
            return Err(changed("it has more rows"));
        }
        Ok(())
    }
}
