//! The hooks of one loop, called in order, with their states saved in checkpoints.

use super::{Hook, HookContext, RunInfo, RunValues};
use crate::error::Result;

/// The hooks of one loop: built-ins it owns and the caller's, which it borrows so the
/// caller can read them afterwards (a `FinalOpsHook`'s values, say).
pub struct HookSet<'a> {
    owned: Vec<Box<dyn Hook>>,
    borrowed: Vec<&'a mut dyn Hook>,
    ctx: HookContext,
}

impl<'a> HookSet<'a> {
    pub fn new(owned: Vec<Box<dyn Hook>>, borrowed: Vec<&'a mut dyn Hook>) -> Self {
        HookSet {
            owned,
            borrowed,
            ctx: HookContext::default(),
        }
    }

    fn each(
        &mut self,
        mut f: impl FnMut(&mut dyn Hook, &mut HookContext) -> Result<()>,
    ) -> Result<()> {
        for hook in self.owned.iter_mut() {
            f(hook.as_mut(), &mut self.ctx)?;
        }
        for hook in self.borrowed.iter_mut() {
            f(&mut **hook, &mut self.ctx)?;
        }
        Ok(())
    }

    pub fn begin(&mut self, run: &RunInfo) -> Result<()> {
        self.each(|h, _| h.begin(run))
    }

    pub fn after_create_session(&mut self, global_step: i64) -> Result<()> {
        self.each(|h, ctx| h.after_create_session(global_step, ctx))
    }

    pub fn before_run(&mut self, global_step: i64) -> Result<()> {
        self.each(|h, _| h.before_run(global_step))
    }

    pub fn after_run(&mut self, values: &RunValues<'_>) -> Result<()> {
        self.each(|h, ctx| h.after_run(values, ctx))
    }

    pub fn end(&mut self, last: Option<&RunValues<'_>>) -> Result<()> {
        self.each(|h, _| h.end(last))
    }

    pub fn stop_requested(&self) -> bool {
        self.ctx.stop_requested()
    }

    pub fn wants_timings(&self) -> bool {
        self.owned.iter().any(|h| h.wants_timings())
            || self.borrowed.iter().any(|h| h.wants_timings())
    }

    /// The predictions any hook reads, each named once.
    pub fn fetches(&self) -> Vec<String> {
        let owned = self.owned.iter().map(|h| h.fetches());
        let borrowed = self.borrowed.iter().map(|h| h.fetches());
        let mut names: Vec<String> = owned.chain(borrowed).flatten().cloned().collect();
        names.sort();
        names.dedup();
        names
    }

    /// Every hook's saved state, keyed by name (`name#2` for a second hook of a name).
    pub fn states(&mut self) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        let _ = self.each(|h, _| {
            if let Some(state) = h.state() {
                out.insert(unique_key(&out, h.name()), state);
            }
            Ok(())
        });
        out
    }

    /// Gives each hook the state saved under its key, if any.
    pub fn restore(&mut self, states: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
        let mut seen = serde_json::Map::new();
        self.each(|h, _| {
            let key = unique_key(&seen, h.name());
            seen.insert(key.clone(), serde_json::Value::Null);
            match states.get(&key) {
                Some(state) => h.restore(state),
                None => Ok(()),
            }
        })
    }
}

fn unique_key(taken: &serde_json::Map<String, serde_json::Value>, name: &str) -> String {
    let mut key = name.to_owned();
    let mut n = 1;
    while taken.contains_key(&key) {
        n += 1;
        key = format!("{name}#{n}");
    }
    key
}
