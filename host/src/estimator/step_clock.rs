//! The profiler's split of a step's time into input, model_fn, optimizer and hooks,
//! measured only when a hook asks for it.

use std::time::Instant;

use crate::hooks::StepTimings;

/// The parts of a step the profiler reports.
#[derive(Clone, Copy)]
pub(super) enum Part {
    Input,
    ModelFn,
    Optimizer,
    Hooks,
}

/// Times the parts of each step, only when a hook asks for it.
pub(super) struct StepClock {
    on: bool,
    last: Instant,
    current: StepTimings,
}

impl StepClock {
    pub fn new(on: bool) -> Self {
        StepClock {
            on,
            last: Instant::now(),
            current: StepTimings::default(),
        }
    }

    pub fn start(&mut self) {
        if self.on {
            self.last = Instant::now();
        }
    }

    /// Adds the time since the last lap to `part`.
    pub fn lap(&mut self, part: Part) {
        if !self.on {
            return;
        }
        let now = Instant::now();
        let spent = now - self.last;
        self.last = now;
        let slot = match part {
            Part::Input => &mut self.current.input,
            Part::ModelFn => &mut self.current.model_fn,
            Part::Optimizer => &mut self.current.optimizer,
            Part::Hooks => &mut self.current.hooks,
        };
        *slot += spent;
    }

    /// This step's timings so far, starting the next step's.
    pub fn take(&mut self) -> Option<StepTimings> {
        self.on.then(|| std::mem::take(&mut self.current))
    }
}
