//! TF's `prefetch`: a background thread runs the pipeline a few batches ahead of the
//! training step, so reading, shuffling and gathering leave the step's critical path.
//!
//! The pipeline lives on that thread for good (its rows share chunks by `Rc`); what
//! crosses is batches. Each travels in a slot with its own buffers and the pipeline's
//! position after it. The thread makes the slots, as many as the batch's size allows
//! (see `slots_for`). Slots go round: the step hands the ones it used back, a few at a
//! time, the thread fills them again, so a steady-state step allocates nothing. Waking the
//! thread is the costly part of a hand-over for a small model (see `SlotWait`). The
//! position reported is the one after the last batch the step took, never the thread's
//! own: a checkpoint resumes exactly where training was, however far ahead the thread has
//! read.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;

use estimator_plugin_api::abi::NamedView;

use super::batch::{BatchBuffers, BatchRef};
use super::pipeline::{Opener, Pipeline, PipelineConfig};
use super::placement::{CoreKeeper, StepCore};
use super::position::PipelinePosition;
use crate::error::{Error, Result};

/// Batches in flight at most: the step's, those filled ahead, and the used ones waiting
/// to go back. A thread that went to sleep (after the slow first step, or a pause) can
/// take 100-300 µs to run again once woken; the batches filled ahead must last that long,
/// and 60 of a small model's steps do (4 µs each for the wine DNN, whose step waited
/// for a batch at 7-30 steps of 2,000 with 8 slots, and at the first alone with 64).
const MAX_SLOTS: usize = 64;

/// Batches in flight at least, however large they are.
const MIN_SLOTS: usize = 8;

/// The bytes the batches in flight may take beyond `MIN_SLOTS` of them.
const AHEAD_BYTES: usize = 1 << 20;

/// Used slots go back this many at a time, so a sleeping thread is woken once per so
/// many batches rather than once per step.
const RETURNED_TOGETHER: usize = 4;

/// How many slots go round for batches of `batch_bytes`: 64 for a small model's (a few
/// KB), 8 for the compute-bound DNN's (256 KB).
fn slots_for(batch_bytes: usize) -> usize {
    (AHEAD_BYTES / batch_bytes.max(1)).clamp(MIN_SLOTS, MAX_SLOTS)
}

/// One batch and where the pipeline was after it. Slots travel boxed: a hand-over then
/// moves a pointer, not the slot's 200 bytes, through lines the other core wrote last
/// (the step's share of the input went from about 1,330 to 1,100 cycles a step).
struct Slot {
    buffers: Option<BatchBuffers>,
    /// The feature columns' names, in the buffers' order.
    names: Vec<String>,
    len: usize,
    /// The whole batch's rows when `len` is one rank's share.
    global_len: usize,
    position: PipelinePosition,
}

/// What the thread sends: a filled slot, the end of the input, or an error.
type Filled = Result<Option<Box<Slot>>>;

/// A pipeline running ahead on its own thread.
pub struct Prefetched {
    filled: Receiver<Filled>,
    empty: SyncSender<Box<Slot>>,
    /// The batch the step is using.
    current: Option<Box<Slot>>,
    /// Used slots not yet sent back, boxed as they travel.
    #[allow(clippy::vec_box)]
    used: Vec<Box<Slot>>,
    /// Where the pipeline is after the batches the step has taken.
    position: PipelinePosition,
    /// The buffer each batch's list of feature views is built in (see `recycle`).
    views: Vec<NamedView<'static>>,
    /// Where the step runs, for the thread to keep off (see `placement`).
    step_core: StepCore,
    /// Whether [`Prefetched::stop`] closed the channels.
    stopped: bool,
    thread: Option<JoinHandle<()>>,
}

impl Prefetched {
    /// Builds the pipeline on a new thread, moves it to `seek` (a checkpoint's position)
    /// if given, and starts filling batches, each `share = (rank, ranks)`'s share of its
    /// rows ((0, 1): all of them). Errors from opening or seeking come back here.
    pub fn start(
        config: PipelineConfig,
        opener: Opener,
        rng: ChaCha8Rng,
        seek: Option<PipelinePosition>,
        share: (usize, usize),
    ) -> Result<Self> {
        let (filled_tx, filled) = mpsc::sync_channel::<Filled>(MAX_SLOTS);
        let (empty, empty_rx) = mpsc::sync_channel::<Box<Slot>>(MAX_SLOTS);
        let (started_tx, started) = mpsc::sync_channel::<Result<PipelinePosition>>(1);
        let name = format!("{} prefetch", config.label);
        let step_core = StepCore::unknown();
        let keeper = CoreKeeper::new(step_core.clone());
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let mut pipeline = Pipeline::new(config, opener, rng);
                pipeline.share_batches(share.0, share.1);
                let sought = match &seek {
                    Some(position) => pipeline.seek(position),
                    None => Ok(()),
                };
                let ok = sought.is_ok();
                let _ = started_tx.send(sought.map(|()| pipeline.position()));
                if ok {
                    fill(&mut pipeline, &empty_rx, &filled_tx, keeper);
                }
            })
            .map_err(|e| Error::io("starting the input thread", e))?;
        let position = started
            .recv()
            .map_err(|_| Error::Internal("the input thread stopped before starting".into()))??;
        step_core.record();
        Ok(Prefetched {
            filled,
            empty,
            current: None,
            used: Vec::with_capacity(RETURNED_TOGETHER),
            position,
            views: Vec::new(),
            step_core,
            stopped: false,
            thread: Some(thread),
        })
    }

    /// The next batch, or `None` at the end of the input. The batch before it goes back
    /// to be filled again.
    pub fn next_batch(&mut self) -> Result<Option<BatchRef<'_>>> {
        if let Some(used) = self.current.take() {
            self.used.push(used);
        }
        if self.used.len() >= RETURNED_TOGETHER {
            self.step_core.record();
            for used in self.used.drain(..) {
                // The thread has gone only after an error or the end, both passed on.
                let _ = self.empty.send(used);
            }
        }
        match self.filled.recv() {
            Ok(Ok(Some(slot))) => {
                if let Some(buffers) = &slot.buffers {
                    let label = buffers.label.as_ref().map(|(label, _)| label);
                    super::warm::prefetch(buffers.columns.iter().chain(label));
                }
                // Copied, not swapped: the slot's lines stay as the thread wrote them, and
                // the copy reuses this position's buffer (nothing is allocated).
                self.position.clone_from(&slot.position);
                let views = std::mem::take(&mut self.views);
                Ok(Some(self.current.insert(slot).views(views)))
            }
            Ok(Ok(None)) => Ok(None),
            Ok(Err(e)) => Err(e),
            Err(_) if self.stopped => Err(Error::Internal(
                "a batch was asked for after the input was stopped".into(),
            )),
            Err(_) => Err(Error::Internal(
                "the input thread stopped without a word (it panicked)".into(),
            )),
        }
    }

    /// Takes back the buffer of a batch's feature views (emptied by
    /// [`crate::views::recycle`]) once the step is done with it, so the next batch reuses
    /// it.
    pub fn give_back(&mut self, features: Vec<NamedView<'static>>) {
        self.views = features;
    }

    /// Where the pipeline is after the batches taken so far, for a checkpoint.
    pub fn position(&self) -> &PipelinePosition {
        &self.position
    }

    /// Stops the thread reading ahead, once the step needs no more batches: with its
    /// channels closed, it returns at its next send or wait, and frees what it read while
    /// the step's thread goes on (training saves its last checkpoint meanwhile). The
    /// position stays; a batch asked for after this is an error.
    pub fn stop(&mut self) {
        self.stopped = true;
        let (_, closed) = mpsc::channel();
        drop(std::mem::replace(&mut self.filled, closed));
        let (closed, _) = mpsc::sync_channel(0);
        drop(std::mem::replace(&mut self.empty, closed));
    }
}

impl Drop for Prefetched {
    /// Stops the thread and waits for it to end.
    fn drop(&mut self) {
        self.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread's loop: takes an empty slot (a new one while there are fewer than the
/// batch's size allows), fills it with the next batch and sends it, until the input
/// ends, an error comes, or the step side has gone.
fn fill(
    pipeline: &mut Pipeline,
    empty: &Receiver<Box<Slot>>,
    filled: &SyncSender<Filled>,
    keeper: CoreKeeper,
) {
    let mut wait = SlotWait::new(keeper);
    while let Some(mut slot) = wait.next(empty) {
        wait.keeper.keep_off_step_core();
        pipeline.batch = slot.buffers.take();
        let next = match pipeline.fill_batch() {
            Ok(Some(global_len)) => {
                slot.len = pipeline.picked.len();
                slot.global_len = global_len;
                if slot.names.is_empty() {
                    slot.names = pipeline.feature_names();
                }
                Ok(Some(()))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        let message = match next {
            Ok(Some(())) => {
                slot.buffers = pipeline.batch.take();
                pipeline.position_into(&mut slot.position);
                if wait.slots.is_none() {
                    wait.slots = Some(slots_for(slot.bytes()));
                }
                Ok(Some(slot))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        let last = !matches!(message, Ok(Some(_)));
        if filled.send(message).is_err() || last {
            return;
        }
    }
}

/// The thread polls for used slots while they come back within this of each other, and
/// a poll gives up and sleeps after this long (see `SlotWait`).
const POLL_WINDOW: Duration = Duration::from_micros(200);

/// How the thread waits for used slots.
///
/// Waking a sleeping thread costs the step's thread a system call, several µs on a
/// virtual machine (a fifth of a small model's step), and the woken thread may take more
/// than 100 µs to run again, by which time a small model has used up the batches filled
/// ahead and waits too. So while used slots come back often (a small model's steps), the
/// thread polls for them, yielding its core to any thread that wants it. A large
/// model's step takes ms and its matmul threads want every core: there, polling even
/// 100 µs per four steps cost the compute-bound DNN a quarter of its speed with 2
/// threads, so the thread sleeps.
///
/// What decides is how often slots come back: the time between the arrivals of slots the
/// thread had to wait for (one per group handed back). That interval is the step side's
/// pace whether the thread polled or slept. An earlier version decided by how long each
/// wait took, which after a sleep includes the thread's own wake-up; on a virtual
/// machine's idle core that alone often exceeded the limit, so a small model's thread,
/// once asleep (the first step is slow), slept for good.
struct SlotWait {
    /// When the last slot the thread had to wait for came.
    last_arrival: Option<Instant>,
    /// Keeps the thread off the step's core, where polling would only take turns with
    /// the step.
    keeper: CoreKeeper,
    /// The slots made so far, and how many to make (one until the first batch's size
    /// is known).
    made: usize,
    slots: Option<usize>,
}

impl SlotWait {
    fn new(keeper: CoreKeeper) -> Self {
        SlotWait {
            last_arrival: None,
            keeper,
            made: 0,
            slots: None,
        }
    }

    /// The next slot to fill: a new one while fewer than `slots` were made, else a used
    /// one; `None` once the step side has gone.
    fn next(&mut self, empty: &Receiver<Box<Slot>>) -> Option<Box<Slot>> {
        if self.made < self.slots.unwrap_or(1) {
            self.made += 1;
            return Some(Box::new(Slot::empty()));
        }
        match empty.try_recv() {
            Ok(slot) => return Some(slot),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            Err(mpsc::TryRecvError::Empty) => {}
        }
        let slot = if polls(self.last_arrival, Instant::now()) {
            poll_then_sleep(empty, &mut self.keeper)
        } else {
            empty.recv().ok()
        };
        self.last_arrival = Some(Instant::now());
        slot
    }
}

/// Whether to poll for the next slot, given when the last awaited one came: yes at the
/// start, and while slots come back within `POLL_WINDOW`.
fn polls(last_arrival: Option<Instant>, now: Instant) -> bool {
    last_arrival.is_none_or(|last| now.duration_since(last) < POLL_WINDOW)
}

/// Polls for a slot for up to `POLL_WINDOW`, off the step's core, then sleeps until one
/// comes.
fn poll_then_sleep(empty: &Receiver<Box<Slot>>, keeper: &mut CoreKeeper) -> Option<Box<Slot>> {
    let started = Instant::now();
    loop {
        match empty.try_recv() {
            Ok(slot) => return Some(slot),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            Err(mpsc::TryRecvError::Empty) if started.elapsed() < POLL_WINDOW => {
                keeper.keep_off_step_core();
                std::thread::yield_now();
            }
            Err(mpsc::TryRecvError::Empty) => return empty.recv().ok(),
        }
    }
}

impl Slot {
    fn empty() -> Self {
        Slot {
            buffers: None,
            names: Vec::new(),
            len: 0,
            global_len: 0,
            position: PipelinePosition::default(),
        }
    }

    fn bytes(&self) -> usize {
        self.buffers.as_ref().map_or(0, BatchBuffers::bytes)
    }

    /// The batch, its feature views in `list`'s buffer.
    fn views<'a>(&'a self, list: Vec<NamedView<'_>>) -> BatchRef<'a> {
        match &self.buffers {
            Some(buffers) => {
                let names = self.names.iter().map(String::as_str);
                buffers.views_into(names, (self.len, self.global_len), list)
            }
            None => BatchRef {
                features: crate::views::recycle(list),
                labels: None,
                len: 0,
                global_len: 0,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi_stable::sabi_trait::TD_Opaque;
    use abi_stable::std_types::{ROption, RResult};
    use estimator_plugin_api::abi::{
        Chunk, InputSource, InputSource_TO, NamedTensor, PluginError, Tensor, TensorData,
    };
    use rand::SeedableRng;

    /// Rows 0..rows (`x = i`, label `i`) in chunks of 4; fails at row `fail_at` if given.
    struct Rows {
        next: usize,
        rows: usize,
        fail_at: Option<usize>,
    }

    impl InputSource for Rows {
        fn next_chunk(&mut self) -> RResult<ROption<Chunk>, PluginError> {
            if self.fail_at.is_some_and(|f| self.next >= f) {
                return RResult::RErr(PluginError::bad_data("row 9 is unreadable"));
            }
            let end = (self.next + 4).min(self.rows);
            let ids: Vec<usize> = (self.next..end).collect();
            self.next = end;
            if ids.is_empty() {
                return RResult::ROk(ROption::RNone);
            }
            let x = ids.iter().map(|&i| i as f32).collect();
            let labels = ids.iter().map(|&i| i as i64).collect();
            RResult::ROk(ROption::RSome(Chunk {
                features: vec![NamedTensor::new("x", Tensor::f32(vec![ids.len()], x))].into(),
                labels: ROption::RSome(Tensor::i64(vec![ids.len()], labels)),
            }))
        }
    }

    fn parts(fail_at: Option<usize>) -> (PipelineConfig, Opener, ChaCha8Rng) {
        let config = PipelineConfig {
            label: "input.train".into(),
            plugin: "test".into(),
            batch_size: 5,
            shuffle: Some(7),
            repeat: true,
            drop_remainder: false,
            cache: true,
        };
        let opener: Opener = Box::new(move || {
            let rows = Rows {
                next: 0,
                rows: 23,
                fail_at,
            };
            Ok(InputSource_TO::from_value(rows, TD_Opaque))
        });
        (config, opener, ChaCha8Rng::seed_from_u64(9))
    }

    fn labels_and_x(batch: &BatchRef<'_>) -> (Vec<i64>, Vec<f32>) {
        let labels = match batch.labels.as_ref().map(|l| &l.data) {
            Some(TensorData::I64(l)) => l.to_vec(),
            _ => panic!("i64 labels"),
        };
        let x = match &batch.features[0].tensor.data {
            TensorData::F32(x) => x.to_vec(),
            _ => panic!("f32 x"),
        };
        (labels, x)
    }

    /// A used slot, told from a new one by its length.
    fn empty_slot() -> Slot {
        Slot {
            len: 7,
            global_len: 7,
            ..Slot::empty()
        }
    }

    #[test]
    fn a_slot_waited_for_comes_whether_it_is_polled_for_or_slept_for() {
        let (empty, empty_rx) = mpsc::sync_channel::<Box<Slot>>(MAX_SLOTS);
        let mut wait = SlotWait::new(CoreKeeper::new(StepCore::unknown()));
        wait.slots = Some(0);
        empty.send(Box::new(empty_slot())).expect("open");
        assert_eq!(wait.next(&empty_rx).map(|s| s.len), Some(7));
        // Sent well after a poll gives up: the thread has gone to sleep by then.
        let late = std::thread::spawn(move || {
            std::thread::sleep(POLL_WINDOW * 10);
            empty.send(Box::new(empty_slot())).expect("open");
            empty
        });
        assert_eq!(wait.next(&empty_rx).map(|s| s.len), Some(7));
        assert!(wait.last_arrival.is_some());
        drop(late.join().expect("sender"));
        assert!(wait.next(&empty_rx).is_none(), "the step side has gone");
    }

    #[test]
    fn makes_a_first_slot_then_as_many_as_the_batch_size_allows_then_waits() {
        let (empty, empty_rx) = mpsc::sync_channel::<Box<Slot>>(MAX_SLOTS);
        let mut wait = SlotWait::new(CoreKeeper::new(StepCore::unknown()));
        assert_eq!(wait.next(&empty_rx).map(|s| s.len), Some(0), "a new slot");
        // Until the first batch is measured, one slot.
        empty.send(Box::new(empty_slot())).expect("open");
        assert_eq!(wait.next(&empty_rx).map(|s| s.len), Some(7), "the used one");
        wait.slots = Some(3);
        for _ in 0..2 {
            assert_eq!(wait.next(&empty_rx).map(|s| s.len), Some(0), "a new slot");
        }
        empty.send(Box::new(empty_slot())).expect("open");
        assert_eq!(wait.next(&empty_rx).map(|s| s.len), Some(7), "the used one");
        assert_eq!(wait.made, 3);
    }

    #[test]
    fn small_batches_get_more_slots_than_large_ones() {
        assert_eq!(slots_for(32 * 14 * 4), MAX_SLOTS, "the wine DNN's batch");
        assert_eq!(slots_for(100 * 1024), 10);
        assert_eq!(
            slots_for(256 * 257 * 4),
            MIN_SLOTS,
            "the compute-bound DNN's"
        );
        assert_eq!(slots_for(0), MAX_SLOTS);
    }

    #[test]
    fn polls_at_the_start_and_while_slots_come_back_often() {
        let now = Instant::now();
        let ago = |us| {
            now.checked_sub(Duration::from_micros(us))
                .expect("after boot")
        };
        assert!(polls(None, now));
        assert!(polls(Some(ago(30)), now), "a small model's four steps");
        assert!(!polls(Some(ago(200)), now));
        assert!(!polls(Some(ago(10_000)), now), "a large model's four steps");
    }

    #[test]
    fn gives_the_pipelines_batches_and_the_position_after_the_last_one_taken() {
        let (config, opener, rng) = parts(None);
        let mut plain = Pipeline::new(config, opener, rng);
        let (config, opener, rng) = parts(None);
        let mut ahead = Prefetched::start(config, opener, rng, None, (0, 1)).expect("starts");
        assert_eq!(ahead.position(), &plain.position());
        for _ in 0..12 {
            let want = labels_and_x(&plain.next_batch().expect("ok").expect("repeats"));
            let got = labels_and_x(&ahead.next_batch().expect("ok").expect("repeats"));
            assert_eq!(got, want);
            assert_eq!(got.0.iter().map(|&l| l as f32).collect::<Vec<_>>(), got.1);
            // The thread has read further; the position is the step's.
            assert_eq!(ahead.position(), &plain.position());
        }
    }

    #[test]
    fn starts_at_a_saved_position_as_the_pipeline_seeks() {
        let (config, opener, rng) = parts(None);
        let mut plain = Pipeline::new(config, opener, rng);
        for _ in 0..6 {
            plain.next_batch().expect("ok");
        }
        let saved = plain.position();
        let (config, opener, rng) = parts(None);
        let mut resumed =
            Prefetched::start(config, opener, rng, Some(saved.clone()), (0, 1)).expect("seeks");
        assert_eq!(resumed.position(), &saved);
        for _ in 0..6 {
            let want = labels_and_x(&plain.next_batch().expect("ok").expect("repeats"));
            let got = labels_and_x(&resumed.next_batch().expect("ok").expect("repeats"));
            assert_eq!(got, want);
        }
    }

    #[test]
    fn stopping_keeps_the_position_and_ends_the_thread() {
        let (config, opener, rng) = parts(None);
        let mut ahead = Prefetched::start(config, opener, rng, None, (0, 1)).expect("starts");
        for _ in 0..3 {
            ahead.next_batch().expect("ok").expect("repeats");
        }
        let position = ahead.position().clone();
        ahead.stop();
        assert_eq!(ahead.position(), &position);
        let thread = ahead.thread.take().expect("running");
        thread.join().expect("the thread ends of itself");
        let err = ahead.next_batch().err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("after the input was stopped")));
    }

    #[test]
    fn a_source_error_arrives_in_order_and_dropping_early_stops_the_thread() {
        let (config, opener, rng) = parts(Some(8));
        let mut failing = Prefetched::start(config, opener, rng, None, (0, 1)).expect("starts");
        // Rows before the failing chunk make one batch; the shuffle buffer then needs more.
        let err = loop {
            match failing.next_batch() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the error never came"),
                Err(e) => break e.to_string(),
            }
        };
        assert!(err.contains("row 9 is unreadable"), "{err}");
        // A repeating input dropped after one batch: the thread is joined, not left running.
        // The thread owns the opener, and the opener a token: once the thread has ended,
        // the token has one owner left, this test.
        let (config, mut opener, rng) = parts(None);
        let token = std::sync::Arc::new(());
        let held = std::sync::Arc::clone(&token);
        let opener: Opener = Box::new(move || {
            let _ = &held;
            opener()
        });
        let mut endless = Prefetched::start(config, opener, rng, None, (0, 1)).expect("starts");
        endless.next_batch().expect("ok");
        assert_eq!(
            std::sync::Arc::strong_count(&token),
            2,
            "the thread holds it"
        );
        drop(endless);
        assert_eq!(
            std::sync::Arc::strong_count(&token),
            1,
            "dropping the input ended its thread"
        );
    }
}
