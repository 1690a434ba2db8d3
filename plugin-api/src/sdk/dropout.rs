//! Dropout, as Keras' `Dropout` layer: only in training, each value is zeroed with
//! probability `rate` and the others scaled by `1 / (1 − rate)`, so that expected values
//! do not change between training and inference.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::abi::PluginError;

use super::tape::{Tape, Var};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    rate: f32,
}

impl Dropout {
    /// TF's `dropout`: the fraction of values dropped, in [0, 1).
    pub fn new(rate: f32) -> Result<Self, PluginError> {
        match (0.0..1.0).contains(&rate) {
            true => Ok(Dropout { rate }),
            false => Err(PluginError::bad_params(format!(
                "dropout must be in [0, 1), got {rate}"
            ))),
        }
    }

    pub fn rate(&self) -> f32 {
        self.rate
    }

    /// In training, masks `x` with a mask drawn from `seed` (the step's seed mixed with
    /// the layer's position, so each layer and step differs but runs repeat); otherwise
    /// returns `x` unchanged.
    pub fn apply(
        &self,
        tape: &mut Tape,
        x: Var,
        training: bool,
        seed: u64,
    ) -> Result<Var, PluginError> {
        if !training || self.rate == 0.0 {
            return Ok(x);
        }
        let keep = 1.0 - self.rate;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (rows, cols) = tape.value(x).dim();
        let mask = Array2::from_shape_simple_fn((rows, cols), || match rng.gen::<f32>() < keep {
            true => 1.0 / keep,
            false => 0.0,
        });
        tape.mask(x, mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_about_the_rate_only_in_training_and_keeps_the_mean() {
        let dropout = Dropout::new(0.25).expect("valid rate");
        let mut tape = Tape::new();
        let x = tape.constant(Array2::ones((100, 40)));
        let same = dropout.apply(&mut tape, x, false, 1).expect("inference");
        assert_eq!(same, x, "inference passes x through");
        let y = dropout.apply(&mut tape, x, true, 1).expect("training");
        let values = tape.value(y);
        let dropped = values.iter().filter(|&&v| v == 0.0).count() as f64 / 4000.0;
        assert!((dropped - 0.25).abs() < 0.03, "dropped {dropped}");
        assert!(values
            .iter()
            .all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6));
        let mean = values.mean().unwrap_or(0.0);
        assert!((mean - 1.0).abs() < 0.05, "mean {mean}");
        let again = dropout.apply(&mut tape, x, true, 1).expect("training");
        assert_eq!(tape.value(again), tape.value(y), "one seed, one mask");
        assert!(Dropout::new(1.0).is_err() && Dropout::new(-0.1).is_err());
    }
}
