//! The pipeline: a plugin source, then shuffle(buffer, seed), repeat and batch, in TF's
//! order `shuffle(B).repeat().batch(N)`.

use estimator_plugin_api::abi::InputSourceBox;
use rand_chacha::ChaCha8Rng;

use super::batch::{BatchBuffers, BatchRef};
use super::reader::{RowReader, RowRef};
use super::shuffle::ShuffleBuffer;
use crate::error::Result;
use crate::replica::rows_of_rank;

/// Opens the source again for a new pass over the data.
pub type Opener = Box<dyn FnMut() -> Result<InputSourceBox> + Send>;

/// Pipeline settings from the manifest's input entry.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// `input.<mode>` in messages.
    pub label: String,
    /// The input plugin's name, for errors from its calls.
    pub plugin: String,
    pub batch_size: usize,
    pub shuffle: Option<usize>,
    pub repeat: bool,
    pub drop_remainder: bool,
    pub cache: bool,
}

pub struct Pipeline {
    pub(super) config: PipelineConfig,
    pub(super) reader: RowReader,
    pub(super) shuffle: Option<ShuffleBuffer>,
    /// The rows of the batch being assembled.
    pub(super) picked: Vec<RowRef>,
    pub(super) batch: Option<BatchBuffers>,
    /// Passes started; 0 until the first batch is asked for.
    pub(super) passes: u64,
    /// Rows seen in the current pass; a pass with none ends a repeating input.
    pub(super) rows_this_pass: u64,
    /// `(rank, ranks)`: a data-parallel rank gathers only its share of each batch.
    pub(super) share: (usize, usize),
    /// The rows of the last batch, all ranks' shares together.
    pub(super) batch_rows: usize,
}

impl Pipeline {
    pub fn new(config: PipelineConfig, opener: Opener, rng: ChaCha8Rng) -> Self {
        let shuffle = config.shuffle.map(|capacity| ShuffleBuffer {
            rows: Vec::with_capacity(capacity),
            capacity,
            rng,
            pass_ended: false,
        });
        Pipeline {
            reader: RowReader::new(opener, &config),
            shuffle,
            picked: Vec::with_capacity(config.batch_size),
            batch: None,
            passes: 0,
            rows_this_pass: 0,
            share: (0, 1),
            batch_rows: 0,
            config,
        }
    }

    /// The next batch, or `None` at the end of the input.
    pub fn next_batch(&mut self) -> Result<Option<BatchRef<'_>>> {
        Ok(match self.fill_batch()? {
            Some(_) => self.views(),
            None => None,
        })
    }

    /// Gathers the next batch into the batch buffers without viewing it; returns its
    /// number of rows, or `None` at the end of the input.
    pub(super) fn fill_batch(&mut self) -> Result<Option<usize>> {
        if self.passes == 0 {
            self.start_pass()?;
        }
        self.picked.clear();
        while self.picked.len() < self.config.batch_size {
            match self.next_element()? {
                Some(row) => self.picked.push(row),
                None => break,
            }
        }
        let filled = self.picked.len();
        if filled == 0 || (filled < self.config.batch_size && self.config.drop_remainder) {
            return Ok(None);
        }
        self.batch_rows = filled;
        // Every rank picks the whole batch, so all stay at the same position; each
        // gathers only its own rows.
        let (rank, ranks) = self.share;
        if ranks > 1 {
            let rows = rows_of_rank(filled, rank, ranks);
            self.picked.truncate(rows.end);
            self.picked.drain(..rows.start);
        }
        self.gather();
        Ok(Some(filled))
    }

    /// Makes this pipeline rank `rank`'s of `ranks`: each batch holds that rank's share
    /// of the rows, [`BatchRef::global_len`] the whole batch's.
    pub fn share_batches(&mut self, rank: usize, ranks: usize) {
        self.share = (rank, ranks.max(1));
    }

    /// The feature columns' names, in the batch buffers' order (none before the first
    /// chunk).
    pub(super) fn feature_names(&self) -> Vec<String> {
        self.reader.schema.as_ref().map_or(Vec::new(), |s| {
            s.features.iter().map(|c| c.name.clone()).collect()
        })
    }

    /// The next element after shuffle and repeat; `None` at the end of the input.
    pub(super) fn next_element(&mut self) -> Result<Option<RowRef>> {
        loop {
            let next = match self.shuffle.as_mut() {
                Some(buffer) => buffer.draw(&mut self.reader)?,
                None => self.reader.next_row()?,
            };
            if next.is_some() {
                self.rows_this_pass += 1;
                return Ok(next);
            }
            if !self.config.repeat || self.rows_this_pass == 0 {
                return Ok(None);
            }
            self.start_pass()?;
        }
    }

    pub(super) fn start_pass(&mut self) -> Result<()> {
        self.reader.start_pass()?;
        self.passes += 1;
        self.rows_this_pass = 0;
        if let Some(buffer) = self.shuffle.as_mut() {
            buffer.pass_ended = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi_stable::sabi_trait::TD_Opaque;
    use abi_stable::std_types::{ROption, RResult, RString};
    use estimator_plugin_api::abi::{
        Chunk, InputSource, InputSource_TO, NamedTensor, PluginError, Tensor, TensorBuf, TensorData,
    };
    use rand::Rng;
    use rand::SeedableRng;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A source of rows 0..rows, `x = i` (f32, width 2: i and 10·i) and label `i`, in
    /// chunks of `chunk` rows; counts how often it is opened.
    struct Counting {
        next: usize,
        rows: usize,
        chunk: usize,
    }

    impl InputSource for Counting {
        fn next_chunk(&mut self) -> RResult<ROption<Chunk>, PluginError> {
            let end = (self.next + self.chunk).min(self.rows);
            if self.next >= end {
                return RResult::ROk(ROption::RNone);
            }
            let ids: Vec<usize> = (self.next..end).collect();
            self.next = end;
            let x = ids
                .iter()
                .flat_map(|&i| [i as f32, 10.0 * i as f32])
                .collect();
            let labels = ids.iter().map(|&i| i as i64).collect();
            let names = ids.iter().map(|i| RString::from(format!("r{i}"))).collect();
            let names = Tensor {
                shape: vec![ids.len()].into(),
                data: TensorBuf::Str(names),
            };
            RResult::ROk(ROption::RSome(Chunk {
                features: vec![
                    NamedTensor::new("x", Tensor::f32(vec![ids.len(), 2], x)),
                    NamedTensor::new("name", names),
                ]
                .into(),
                labels: ROption::RSome(Tensor::i64(vec![ids.len()], labels)),
            }))
        }
    }

    fn pipeline(rows: usize, config: PipelineConfig) -> (Pipeline, Arc<AtomicUsize>) {
        chunked_pipeline(rows, 3, config)
    }

    fn chunked_pipeline(
        rows: usize,
        chunk: usize,
        config: PipelineConfig,
    ) -> (Pipeline, Arc<AtomicUsize>) {
        let opened = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&opened);
        let opener: Opener = Box::new(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            Ok(InputSource_TO::from_value(
                Counting {
                    next: 0,
                    rows,
                    chunk,
                },
                TD_Opaque,
            ))
        });
        let rng = ChaCha8Rng::seed_from_u64(5);
        (Pipeline::new(config, opener, rng), opened)
    }

    fn config(batch_size: usize) -> PipelineConfig {
        PipelineConfig {
            label: "input.train".into(),
            plugin: "test".into(),
            batch_size,
            shuffle: None,
            repeat: false,
            drop_remainder: false,
            cache: true,
        }
    }

    /// The labels of every batch until the end of the input (at most `limit` batches),
    /// checking that features travel with their labels.
    fn label_batches(p: &mut Pipeline, limit: usize) -> Vec<Vec<i64>> {
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(batch) = p.next_batch().expect("no error") else {
                break;
            };
            let TensorData::I64(labels) = batch.labels.expect("labelled").data else {
                panic!("i64 labels")
            };
            let TensorData::F32(x) = batch.features[0].tensor.data else {
                panic!("f32 features")
            };
            let TensorData::Str(names) = batch.features[1].tensor.data else {
                panic!("string names")
            };
            assert_eq!(batch.features[0].tensor.shape.as_slice(), &[batch.len, 2]);
            for (row, &label) in labels.iter().enumerate() {
                assert_eq!(x[2 * row], label as f32);
                assert_eq!(x[2 * row + 1], 10.0 * label as f32);
                assert_eq!(names[row].as_str(), format!("r{label}"));
            }
            out.push(labels.to_vec());
        }
        out
    }

    #[test]
    fn batches_keep_order_and_the_last_may_be_short() {
        let (mut p, _) = pipeline(7, config(3));
        assert_eq!(
            label_batches(&mut p, 10),
            vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]
        );
    }

    #[test]
    fn shuffled_batches_wider_than_a_gathering_block_keep_features_with_their_labels() {
        // Batches of 40 rows are gathered in blocks of 16, the last one short.
        let (mut p, _) = pipeline(
            100,
            PipelineConfig {
                shuffle: Some(50),
                repeat: true,
                ..config(40)
            },
        );
        let batches = label_batches(&mut p, 6);
        assert!(batches.iter().all(|b| b.len() == 40));
        let mut first_pass: Vec<i64> = batches.concat()[..100].to_vec();
        first_pass.sort_unstable();
        assert_eq!(first_pass, (0..100).collect::<Vec<i64>>());
    }

    #[test]
    fn drop_remainder_drops_the_short_batch() {
        let (mut p, _) = pipeline(
            7,
            PipelineConfig {
                drop_remainder: true,
                ..config(3)
            },
        );
        assert_eq!(
            label_batches(&mut p, 10),
            vec![vec![0, 1, 2], vec![3, 4, 5]]
        );
    }

    #[test]
    fn repeat_crosses_passes_within_a_batch_and_replays_the_cache() {
        let (mut p, opened) = pipeline(
            4,
            PipelineConfig {
                repeat: true,
                ..config(3)
            },
        );
        assert_eq!(
            label_batches(&mut p, 3),
            vec![vec![0, 1, 2], vec![3, 0, 1], vec![2, 3, 0]]
        );
        assert_eq!(
            opened.load(Ordering::Relaxed),
            1,
            "later passes come from the cache"
        );
        assert_eq!(
            p.reader.cache.len(),
            2,
            "the cache keeps the source's chunks as they came: no second copy"
        );
    }

    #[test]
    fn without_cache_each_pass_reopens_the_source() {
        let (mut p, opened) = pipeline(
            4,
            PipelineConfig {
                repeat: true,
                cache: false,
                ..config(4)
            },
        );
        assert_eq!(label_batches(&mut p, 3).len(), 3);
        assert_eq!(opened.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn shuffle_is_tf_buffer_sampling() {
        // Buffer of 2 over 0..5: fill [0, 1]; each draw takes a random slot and refills it
        // from the input; once the input ends, the last slot moves into the drawn one.
        let shuffled = PipelineConfig {
            shuffle: Some(2),
            ..config(5)
        };
        let (mut p, _) = pipeline(5, shuffled.clone());
        let got = label_batches(&mut p, 1).remove(0);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (mut buffer, mut next, mut expected) = (vec![0, 1], 2, Vec::new());
        while !buffer.is_empty() {
            let pick = rng.gen_range(0..buffer.len());
            expected.push(buffer[pick]);
            if next < 5 {
                buffer[pick] = next;
                next += 1;
            } else {
                buffer.swap_remove(pick);
            }
        }
        assert_eq!(got, expected);
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            vec![0, 1, 2, 3, 4],
            "each example exactly once per pass"
        );
        // The same seed gives the same order.
        let (mut again, _) = pipeline(5, shuffled);
        assert_eq!(label_batches(&mut again, 1).remove(0), got);
    }

    #[test]
    fn seeking_past_the_end_of_changed_data_is_refused() {
        let config = PipelineConfig {
            repeat: true,
            ..config(4)
        };
        let (mut long, _) = pipeline(10, config.clone());
        label_batches(&mut long, 2);
        let (mut short, _) = pipeline(6, config);
        let err = short.seek(&long.position()).unwrap_err().to_string();
        assert_eq!(
            err,
            "input.train: cannot continue where the checkpoint stopped (pass 1, row 8): it has fewer rows; the data changed since"
        );
    }

    #[test]
    fn an_empty_input_gives_no_batch_even_when_repeating() {
        let (mut p, _) = pipeline(
            0,
            PipelineConfig {
                repeat: true,
                ..config(2)
            },
        );
        assert!(label_batches(&mut p, 5).is_empty());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// A pipeline stopped after any number of batches and a new one moved to its
            /// position yield the same batches from there on.
            #[test]
            fn a_seeked_pipeline_continues_exactly(
                rows in 1usize..30,
                chunk in 1usize..7,
                batch in 1usize..9,
                shuffle in proptest::option::of(1usize..12),
                cache in any::<bool>(),
                before in 0usize..12,
            ) {
                let config = PipelineConfig { shuffle, cache, repeat: true, ..config(batch) };
                let (mut first, _) = chunked_pipeline(rows, chunk, config.clone());
                label_batches(&mut first, before);
                let position = first.position();
                let expected = label_batches(&mut first, 8);
                let (mut second, _) = chunked_pipeline(rows, chunk, config);
                second.seek(&position).expect("same data");
                prop_assert_eq!(label_batches(&mut second, 8), expected);
                prop_assert_eq!(second.position(), first.position());
            }

            /// One pass yields every example exactly once (shuffled or not), in full
            /// batches but perhaps the last, which drop_remainder drops.
            #[test]
            fn a_pass_yields_every_example_once_in_full_batches(
                rows in 0usize..40,
                chunk in 1usize..7,
                batch in 1usize..9,
                shuffle in proptest::option::of(1usize..12),
                drop_remainder in any::<bool>(),
                cache in any::<bool>(),
            ) {
                let config = PipelineConfig { shuffle, drop_remainder, cache, ..config(batch) };
                let (mut p, _) = chunked_pipeline(rows, chunk, config);
                let batches = label_batches(&mut p, 100);
                let full = rows / batch;
                for (i, b) in batches.iter().enumerate() {
                    prop_assert!(b.len() == batch || (i == full && !drop_remainder));
                }
                let kept = if drop_remainder { full * batch } else { rows };
                let in_order: Vec<i64> = batches.concat();
                let mut seen = in_order.clone();
                seen.sort();
                let mut distinct = seen.clone();
                distinct.dedup();
                prop_assert_eq!(distinct.len(), seen.len(), "an example twice: {:?}", seen);
                prop_assert_eq!(seen.len(), kept);
                prop_assert!(seen.iter().all(|&l| (0..rows as i64).contains(&l)), "{:?}", seen);
                if drop_remainder {
                    // The examples dropped are the last batch's: without a shuffle, the
                    // first `kept` in order; with one, some `kept` of them.
                    if shuffle.is_none() {
                        prop_assert_eq!(in_order, (0..kept as i64).collect::<Vec<_>>());
                    }
                } else {
                    prop_assert_eq!(seen, (0..rows as i64).collect::<Vec<_>>());
                }
            }
        }
    }
}
