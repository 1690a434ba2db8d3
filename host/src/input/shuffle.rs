//! TF's shuffle buffer.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::reader::{RowReader, RowRef};
use crate::error::Result;

/// TF's shuffle buffer: holds up to `capacity` rows; each draw takes a uniformly random
/// one and refills its slot from the input, or, once the pass has ended, with the last row.
pub(super) struct ShuffleBuffer {
    pub(super) rows: Vec<RowRef>,
    pub(super) capacity: usize,
    pub(super) rng: ChaCha8Rng,
    pub(super) pass_ended: bool,
}

impl ShuffleBuffer {
    pub(super) fn draw(&mut self, reader: &mut RowReader) -> Result<Option<RowRef>> {
        while self.rows.len() < self.capacity && !self.pass_ended {
            match reader.next_row()? {
                Some(row) => self.rows.push(row),
                None => self.pass_ended = true,
            }
        }
        if self.rows.is_empty() {
            return Ok(None);
        }
        let pick = self.rng.gen_range(0..self.rows.len());
        if !self.pass_ended {
            if let Some(next) = reader.next_row()? {
                return Ok(Some(std::mem::replace(&mut self.rows[pick], next)));
            }
            self.pass_ended = true;
        }
        Ok(Some(self.rows.swap_remove(pick)))
    }
}
