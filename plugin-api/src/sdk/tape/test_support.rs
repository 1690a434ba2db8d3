//! Checking a tape's gradients against central finite differences.

use ndarray::Array2;
use rand::{Rng, SeedableRng};

use super::reduce::Over;
use super::{Tape, Var};

/// A value of `shape` with entries uniform in `[lo, hi)`, from `seed`.
pub fn finite_value(shape: (usize, usize), lo: f32, hi: f32, seed: u64) -> Array2<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn(shape, |_| rng.gen_range(lo..hi))
}

/// Builds an op's output from the parameters on a fresh tape.
pub type Build = dyn Fn(&mut Tape<'_>, &[Var]) -> Var;

/// Checks the tape's gradient of `Σ w ⊙ build(params)` (random weights `w`, so every
/// output element counts) against central differences, to 1e-3 relative. The absolute
/// floor is what f32 differences can resolve: 3e-4, plus the loss's own rounding (about
/// 1e-7 of it) divided by the step.
pub fn assert_gradients_match(params: &[Array2<f32>], build: &Build) {
    let loss_of = |t: &mut Tape<'_>, vars: &[Var]| {
        let out = build(t, vars);
        let w = finite_value(t.value(out).dim(), 0.5, 1.5, 99);
        let w = t.constant(w);
        let weighted = t.mul(out, w).expect("same shape");
        t.sum(weighted, Over::All)
    };
    let mut tape = Tape::new();
    let vars: Vec<Var> = params.iter().map(|p| tape.param(p.clone())).collect();
    let loss = loss_of(&mut tape, &vars);
    let grads = tape.backward(loss);
    let eps = 1e-2f32;
    let floor = 3e-4 + 1e-7 * f64::from(tape.scalar(loss).abs()) / f64::from(eps);
    for (pi, param) in params.iter().enumerate() {
        let analytic = grads.of(vars[pi]).expect("a gradient for every param");
        for idx in 0..param.len() {
            let eval = |delta: f32| {
                let mut shifted = params.to_vec();
                shifted[pi].as_slice_mut().expect("standard layout")[idx] += delta;
                let mut t = Tape::new();
                let vs: Vec<Var> = shifted.into_iter().map(|p| t.param(p)).collect();
                let l = loss_of(&mut t, &vs);
                f64::from(t.scalar(l))
            };
            let numeric = (eval(eps) - eval(-eps)) / (2.0 * f64::from(eps));
            let got = f64::from(analytic.iter().nth(idx).copied().expect("same size"));
            assert!(
                (numeric - got).abs() <= 1e-3 * numeric.abs().max(got.abs()) + floor,
                "param {pi} element {idx}: finite difference {numeric}, tape {got}"
            );
        }
    }
}
