//! Elementwise ops: functions of one value (`exp`, `log`, the activations, a scale or a
//! shift), and of two values of one shape or broadcast from a row or a column.

use ndarray::{Array2, Zip};

use super::{Op, Tape, Var};
use crate::abi::PluginError;

/// A function applied to every element.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Unary {
    Neg,
    Exp,
    Log,
    Sqrt,
    Abs,
    Square,
    Pow(f32),
    Scale(f32),
    Shift(f32),
    LeakyRelu(f32),
    Elu(f32),
    Selu,
    Gelu,
    /// TF's Huber loss of a difference: quadratic within `delta`, linear beyond.
    Huber(f32),
}

/// SELU's constants, as TF's.
const SELU_ALPHA: f32 = 1.673_263_2;
const SELU_SCALE: f32 = 1.050_701;

impl Unary {
    fn apply(self, x: f32) -> f32 {
        match self {
            Unary::Neg => -x,
            Unary::Exp => x.exp(),
            Unary::Log => x.ln(),
            Unary::Sqrt => x.sqrt(),
            Unary::Abs => x.abs(),
            Unary::Square => x * x,
            Unary::Pow(p) => x.powf(p),
            Unary::Scale(s) => x * s,
            Unary::Shift(s) => x + s,
            Unary::LeakyRelu(a) => {
                if x > 0.0 {
                    x
                } else {
                    a * x
                }
            }
            Unary::Elu(a) => {
                if x > 0.0 {
                    x
                } else {
                    a * x.exp_m1()
                }
            }
            Unary::Selu => SELU_SCALE * if x > 0.0 { x } else { SELU_ALPHA * x.exp_m1() },
            Unary::Gelu => 0.5 * x * (1.0 + erf(x / std::f32::consts::SQRT_2)),
            Unary::Huber(d) => match x.abs() <= d {
                true => 0.5 * x * x,
                false => d * (x.abs() - 0.5 * d),
            },
        }
    }

    /// `dy/dx` at `x`, where `y` is `apply(x)`.
    fn derivative(self, x: f32, y: f32) -> f32 {
        match self {
            Unary::Neg => -1.0,
            Unary::Exp => y,
            Unary::Log => 1.0 / x,
            Unary::Sqrt => 0.5 / y,
            Unary::Abs => x.signum(),
            Unary::Square => 2.0 * x,
            Unary::Pow(p) => p * x.powf(p - 1.0),
            Unary::Scale(s) => s,
            Unary::Shift(_) => 1.0,
            Unary::LeakyRelu(a) => {
                if x > 0.0 {
                    1.0
                } else {
                    a
                }
            }
            Unary::Elu(a) => {
                if x > 0.0 {
                    1.0
                } else {
                    y + a
                }
            }
            Unary::Selu => SELU_SCALE * if x > 0.0 { 1.0 } else { SELU_ALPHA * x.exp() },
            Unary::Gelu => {
                let cdf = 0.5 * (1.0 + erf(x / std::f32::consts::SQRT_2));
                let pdf = (-0.5 * x * x).exp() / (2.0 * std::f32::consts::PI).sqrt();
                cdf + x * pdf
            }
            Unary::Huber(d) => x.clamp(-d, d),
        }
    }
}

/// The error function, to float precision (Abramowitz and Stegun 7.1.26, |error| < 1.5e-7).
fn erf(x: f32) -> f32 {
    let x = f64::from(x);
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let y = 1.0 - poly * (-x * x).exp();
    (if x >= 0.0 { y } else { -y }) as f32
}

/// A function of two elements.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Binary {
    Add,
    Sub,
    Mul,
    Div,
}

impl Binary {
    fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            Binary::Add => a + b,
            Binary::Sub => a - b,
            Binary::Mul => a * b,
            Binary::Div => a / b,
        }
    }

    /// `(∂y/∂a, ∂y/∂b)` at `(a, b)`.
    fn partials(self, a: f32, b: f32) -> (f32, f32) {
        match self {
            Binary::Add => (1.0, 1.0),
            Binary::Sub => (1.0, -1.0),
            Binary::Mul => (b, a),
            Binary::Div => (1.0 / b, -a / (b * b)),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Binary::Add => "add",
            Binary::Sub => "sub",
            Binary::Mul => "mul",
            Binary::Div => "div",
        }
    }
}

/// The shape two operands broadcast to: equal dimensions, or 1 against any.
fn broadcast_shape(a: (usize, usize), b: (usize, usize)) -> Option<(usize, usize)> {
    let dim = |x: usize, y: usize| match (x, y) {
        _ if x == y => Some(x),
        (1, y) => Some(y),
        (x, 1) => Some(x),
        _ => None,
    };
    Some((dim(a.0, b.0)?, dim(a.1, b.1)?))
}

/// `g` summed over the axes along which a value of `shape` was broadcast to `g`'s shape.
fn unbroadcast(g: Array2<f32>, shape: (usize, usize)) -> Array2<f32> {
    let mut g = g;
    if shape.0 == 1 && g.nrows() != 1 {
        g = g.sum_axis(ndarray::Axis(0)).insert_axis(ndarray::Axis(0));
    }
    if shape.1 == 1 && g.ncols() != 1 {
        g = g.sum_axis(ndarray::Axis(1)).insert_axis(ndarray::Axis(1));
    }
    g
}

impl Tape<'_> {
    fn unary(&mut self, x: Var, f: Unary) -> Var {
        let value = self.nodes[x.0].value.mapv(|v| f.apply(v));
        self.push(value, Op::Unary { x, f })
    }

    /// `−x`.
    pub fn neg(&mut self, x: Var) -> Var {
        self.unary(x, Unary::Neg)
    }

    /// `eˣ`.
    pub fn exp(&mut self, x: Var) -> Var {
        self.unary(x, Unary::Exp)
    }

    /// The natural logarithm.
    pub fn log(&mut self, x: Var) -> Var {
        self.unary(x, Unary::Log)
    }

    pub fn sqrt(&mut self, x: Var) -> Var {
        self.unary(x, Unary::Sqrt)
    }

    pub fn abs(&mut self, x: Var) -> Var {
        self.unary(x, Unary::Abs)
    }

    /// `x²`.
    pub fn square(&mut self, x: Var) -> Var {
        self.unary(x, Unary::Square)
    }

    /// `xᵖ`.
    pub fn pow(&mut self, x: Var, p: f32) -> Var {
        self.unary(x, Unary::Pow(p))
    }

    /// `s · x`.
    pub fn scale(&mut self, x: Var, s: f32) -> Var {
        self.unary(x, Unary::Scale(s))
    }

    /// `x + s`.
    pub fn shift(&mut self, x: Var, s: f32) -> Var {
        self.unary(x, Unary::Shift(s))
    }

    /// `x` where positive, `alpha · x` elsewhere (TF's `leaky_relu`, alpha 0.2 there).
    pub fn leaky_relu(&mut self, x: Var, alpha: f32) -> Var {
        self.unary(x, Unary::LeakyRelu(alpha))
    }

    /// `x` where positive, `alpha · (eˣ − 1)` elsewhere (TF's `elu` has alpha 1).
    pub fn elu(&mut self, x: Var, alpha: f32) -> Var {
        self.unary(x, Unary::Elu(alpha))
    }

    /// TF's `selu`: a scaled ELU with its fixed constants.
    pub fn selu(&mut self, x: Var) -> Var {
        self.unary(x, Unary::Selu)
    }

    /// TF's `gelu` (exact, not the tanh approximation): `x · Φ(x)`.
    pub fn gelu(&mut self, x: Var) -> Var {
        self.unary(x, Unary::Gelu)
    }

    /// TF's Huber function of a difference `x`: `½x²` within `delta`, `delta·(|x| − ½delta)`
    /// beyond.
    pub fn huber(&mut self, x: Var, delta: f32) -> Var {
        self.unary(x, Unary::Huber(delta))
    }

    fn binary(&mut self, a: Var, b: Var, f: Binary) -> Result<Var, PluginError> {
        let (av, bv) = (&self.nodes[a.0].value, &self.nodes[b.0].value);
        let shape = broadcast_shape(av.dim(), bv.dim()).ok_or_else(|| {
            PluginError::bad_data(format!(
                "{}: shapes {:?} and {:?} do not broadcast (each dimension equal, or 1)",
                f.name(),
                av.shape(),
                bv.shape()
            ))
        })?;
        let mut value = Array2::zeros(shape);
        let (ab, bb) = (
            av.broadcast(shape).expect("broadcasts"),
            bv.broadcast(shape).expect("broadcasts"),
        );
        Zip::from(&mut value)
            .and(&ab)
            .and(&bb)
            .for_each(|y, &a, &b| *y = f.apply(a, b));
        Ok(self.push(value, Op::Binary { a, b, f }))
    }

    /// `a + b`, elementwise; either may be a row `[1, n]` or a column `[m, 1]` (or
    /// `[1, 1]`) broadcast over the other.
    pub fn add(&mut self, a: Var, b: Var) -> Result<Var, PluginError> {
        self.binary(a, b, Binary::Add)
    }

    /// `a − b`, elementwise, broadcasting as [`Tape::add`].
    pub fn sub(&mut self, a: Var, b: Var) -> Result<Var, PluginError> {
        self.binary(a, b, Binary::Sub)
    }

    /// `a · b`, elementwise, broadcasting as [`Tape::add`].
    pub fn mul(&mut self, a: Var, b: Var) -> Result<Var, PluginError> {
        self.binary(a, b, Binary::Mul)
    }

    /// `a / b`, elementwise, broadcasting as [`Tape::add`].
    pub fn div(&mut self, a: Var, b: Var) -> Result<Var, PluginError> {
        self.binary(a, b, Binary::Div)
    }

    /// The gradients of a unary op: `g · f'(x)`.
    pub(super) fn unary_backward(
        &self,
        x: Var,
        f: Unary,
        y: ndarray::ArrayView2<'_, f32>,
        mut g: Array2<f32>,
    ) -> (Var, Array2<f32>) {
        let xv = &self.nodes[x.0].value;
        Zip::from(&mut g)
            .and(xv)
            .and(&y)
            .for_each(|g, &x, &y| *g *= f.derivative(x, y));
        (x, g)
    }

    /// The gradients of a binary op, each summed back to its operand's shape.
    pub(super) fn binary_backward(
        &self,
        (a, b): (Var, Var),
        f: Binary,
        g: &Array2<f32>,
    ) -> [(Var, Option<Array2<f32>>); 2] {
        let (av, bv) = (&self.nodes[a.0].value, &self.nodes[b.0].value);
        let shape = g.dim();
        let (ab, bb) = (
            av.broadcast(shape).expect("broadcast forward"),
            bv.broadcast(shape).expect("broadcast forward"),
        );
        let mut da = self.needs_grad(a).then(|| Array2::zeros(shape));
        let mut db = self.needs_grad(b).then(|| Array2::zeros(shape));
        for (((idx, &g), &x), &y) in g.indexed_iter().zip(ab.iter()).zip(bb.iter()) {
            let (pa, pb) = f.partials(x, y);
            if let Some(da) = da.as_mut() {
                da[idx] = g * pa;
            }
            if let Some(db) = db.as_mut() {
                db[idx] = g * pb;
            }
        }
        [
            (a, da.map(|d| unbroadcast(d, av.dim()))),
            (b, db.map(|d| unbroadcast(d, bv.dim()))),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_gradients_match, finite_value};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn erf_matches_known_values() {
        for (x, expected) in [
            (0.0f32, 0.0f32),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (-2.0, -0.995_322_3),
        ] {
            assert!((erf(x) - expected).abs() < 2e-7, "erf({x}) = {}", erf(x));
        }
    }

    #[test]
    fn activations_match_tf_values() {
        let mut t = Tape::new();
        let x = t.constant(ndarray::array![[-1.0, 0.5]]);
        let gelu = t.gelu(x);
        let selu = t.selu(x);
        let elu = t.elu(x, 1.0);
        let leaky = t.leaky_relu(x, 0.2);
        // tf.nn.gelu([-1, 0.5]) = [-0.15865526, 0.34573123]; tf.nn.selu = [-1.1113307, 0.52535033].
        let close = |v: Var, expected: [f32; 2]| {
            let got = t.value(v);
            assert!(
                (got[[0, 0]] - expected[0]).abs() < 1e-6
                    && (got[[0, 1]] - expected[1]).abs() < 1e-6,
                "{got}"
            );
        };
        close(gelu, [-0.158_655_26, 0.345_731_23]);
        close(selu, [-1.111_330_7, 0.525_350_33]);
        close(elu, [-0.632_120_56, 0.5]);
        close(leaky, [-0.2, 0.5]);
    }

    fn unaries() -> impl Strategy<Value = (Unary, f32, f32)> {
        // Each op with the input range where it is smooth (away from kinks and poles).
        prop_oneof![
            Just((Unary::Neg, -2.0, 2.0)),
            Just((Unary::Exp, -2.0, 2.0)),
            Just((Unary::Log, 0.2, 3.0)),
            Just((Unary::Sqrt, 0.2, 3.0)),
            Just((Unary::Abs, 0.05, 2.0)),
            Just((Unary::Square, -2.0, 2.0)),
            Just((Unary::Pow(3.0), -2.0, 2.0)),
            Just((Unary::Pow(0.5), 0.2, 3.0)),
            Just((Unary::Scale(-1.5), -2.0, 2.0)),
            Just((Unary::Shift(0.7), -2.0, 2.0)),
            Just((Unary::LeakyRelu(0.2), 0.05, 2.0)),
            Just((Unary::Elu(1.0), -2.0, -0.05)),
            Just((Unary::Elu(1.0), 0.05, 2.0)),
            Just((Unary::Selu, -2.0, -0.05)),
            Just((Unary::Gelu, -2.0, 2.0)),
            Just((Unary::Huber(1.0), -0.9, 0.9)),
            Just((Unary::Huber(1.0), 1.1, 3.0)),
        ]
    }

    proptest! {
        #[test]
        fn unary_gradients_match_finite_differences(
            (f, lo, hi) in unaries(),
            negate in any::<bool>(),
            seed in any::<u64>(),
        ) {
            // Abs and the piecewise ones are checked on either side of their kink.
            let (lo, hi) = match (negate, f) {
                (true, Unary::Abs | Unary::LeakyRelu(_) | Unary::Huber(_)) => (-hi, -lo),
                _ => (lo, hi),
            };
            let x = finite_value((3, 2), lo, hi, seed);
            assert_gradients_match(&[x], &move |t, v| t.unary(v[0], f));
        }

        #[test]
        fn binary_gradients_match_finite_differences(
            f in prop_oneof![Just(Binary::Add), Just(Binary::Sub), Just(Binary::Mul), Just(Binary::Div)],
            b_shape in prop_oneof![Just((3usize, 2usize)), Just((1, 2)), Just((3, 1)), Just((1, 1))],
            swap in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let a = finite_value((3, 2), -2.0, 2.0, seed);
            // Denominators away from 0.
            let b = finite_value(b_shape, 0.5, 2.0, seed ^ 1);
            let (x, y) = if swap && f != Binary::Div { (b, a) } else { (a, b) };
            assert_gradients_match(&[x, y], &move |t, v| t.binary(v[0], v[1], f).expect("broadcasts"));
        }
    }

    #[test]
    fn shapes_that_do_not_broadcast_are_refused() {
        let mut t = Tape::new();
        let a = t.constant(Array2::zeros((3, 2)));
        let b = t.constant(Array2::zeros((2, 2)));
        let err = t.mul(a, b).unwrap_err();
        assert!(
            err.message
                .contains("mul: shapes [3, 2] and [2, 2] do not broadcast"),
            "{err}"
        );
    }
}
