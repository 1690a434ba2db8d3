//! Checks an EstimatorSpec against its mode, as TF's `EstimatorSpec` constructor does, plus
//! what only a host across an ABI must check: shapes, dtypes and finiteness.

use estimator_plugin_api::abi::{DType, EstimatorSpec, ModeKeys};

use crate::variables::VariableStore;

/// Why a spec is refused, in one line naming the mode and the field.
pub fn check(
    spec: &EstimatorSpec,
    mode: ModeKeys,
    vars: &VariableStore,
    trainable: &[usize],
    batch_len: usize,
) -> Result<(), String> {
    let requires = |field: &str| {
        let needs = match mode {
            ModeKeys::Train => "loss and gradients",
            ModeKeys::Eval => "loss",
            ModeKeys::Predict => "predictions",
        };
        format!("EstimatorSpec for mode {mode} has no `{field}` (mode {mode} requires {needs})")
    };
    match mode {
        ModeKeys::Train | ModeKeys::Eval => {
            let loss = spec.loss.into_option().ok_or_else(|| requires("loss"))?;
            // In TRAIN a non-finite loss is the nan_tensor hook's to handle.
            if mode == ModeKeys::Eval && !loss.is_finite() {
                return Err(format!(
                    "mode {mode}: loss is {loss}; it must be a finite scalar"
                ));
            }
        }
        ModeKeys::Predict if spec.predictions.is_empty() => return Err(requires("predictions")),
        ModeKeys::Predict => {}
    }
    if mode == ModeKeys::Train {
        check_gradients(spec, vars, trainable, &requires)?;
        check_updates(spec, vars)?;
    }
    for p in spec.predictions.iter() {
        let t = &p.tensor;
        if t.shape_len() != t.data.len() {
            return Err(format!(
                "mode {mode}: prediction `{}` has shape {:?} but {} values",
                p.name,
                t.shape.as_slice(),
                t.data.len()
            ));
        }
        if t.shape.is_empty() || t.shape[0] != batch_len {
            return Err(format!(
                "mode {mode}: prediction `{}` has shape {:?}; its first dimension must be the batch size {batch_len}",
                p.name,
                t.shape.as_slice()
            ));
        }
    }
    Ok(())
}

fn check_gradients(
    spec: &EstimatorSpec,
    vars: &VariableStore,
    trainable: &[usize],
    requires: &dyn Fn(&str) -> String,
) -> Result<(), String> {
    if spec.gradients.is_empty() && !trainable.is_empty() {
        return Err(requires("gradients"));
    }
    if spec.gradients.len() != trainable.len() {
        return Err(format!(
            "mode train: {} gradients for {} trainable variables (one per variable, in declaration order)",
            spec.gradients.len(),
            trainable.len()
        ));
    }
    let all: Vec<_> = vars.iter().collect();
    for (g, &index) in spec.gradients.iter().zip(trainable) {
        let var = all[index];
        if g.name.as_str() != var.name {
            return Err(format!("mode train: gradient `{}` is where variable `{}`'s gradient belongs (declaration order)", g.name, var.name));
        }
        if g.tensor.dtype() != DType::F32
            || g.tensor.shape.as_slice() != var.shape.as_slice()
            || g.tensor.data.len() != var.data.len()
        {
            return Err(format!(
                "mode train: gradient `{}` is {:?} {:?} with {} values; variable `{}` is F32 {:?}",
                g.name,
                g.tensor.dtype(),
                g.tensor.shape.as_slice(),
                g.tensor.data.len(),
                var.name,
                var.shape
            ));
        }
    }
    Ok(())
}

/// Updates (new values of non-trainable variables, such as batch norm's moving averages)
/// must each name a declared non-trainable variable once, with its shape, and be finite.
fn check_updates(spec: &EstimatorSpec, vars: &VariableStore) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for u in spec.updates.iter() {
        let name = u.name.as_str();
        let var = vars
            .iter()
            .find(|v| v.name == name)
            .ok_or_else(|| format!("mode train: update `{name}` names no declared variable"))?;
        if var.trainable {
            return Err(format!(
                "mode train: update `{name}` is for a trainable variable; the optimizer alone changes those"
            ));
        }
        if !seen.insert(name) {
            return Err(format!("mode train: variable `{name}` is updated twice"));
        }
        let values = u.tensor.as_f32().unwrap_or_default();
        if u.tensor.shape.as_slice() != var.shape.as_slice() || values.len() != var.data.len() {
            return Err(format!(
                "mode train: update `{name}` is {:?} {:?} with {} values; variable `{name}` is F32 {:?}",
                u.tensor.dtype(),
                u.tensor.shape.as_slice(),
                u.tensor.data.len(),
                var.shape
            ));
        }
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(format!("mode train: update `{name}` holds {bad}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi_stable::std_types::ROption;
    use estimator_plugin_api::abi::{Initializer, NamedTensor, Tensor, VarSpec};

    fn vars() -> VariableStore {
        VariableStore::initialise(&[VarSpec::new("w", &[2], Initializer::Zeros)], 0).expect("valid")
    }

    #[test]
    fn updates_must_name_non_trainable_variables_with_their_shape() {
        let specs = [
            VarSpec::new("w", &[2], Initializer::Zeros),
            VarSpec::new("moving_mean", &[2], Initializer::Zeros).non_trainable(),
        ];
        let vars = VariableStore::initialise(&specs, 0).expect("valid");
        let spec_with = |name: &str, values: Vec<f32>| {
            let mut spec = EstimatorSpec::new(ModeKeys::Train);
            spec.loss = ROption::RSome(1.0);
            spec.gradients = vec![NamedTensor::new("w", Tensor::f32(vec![2], vec![0.0; 2]))].into();
            let n = values.len();
            spec.updates = vec![NamedTensor::new(name, Tensor::f32(vec![n], values))].into();
            spec
        };
        let check_one = |spec: &EstimatorSpec| check(spec, ModeKeys::Train, &vars, &[0], 1);
        assert_eq!(check_one(&spec_with("moving_mean", vec![1.0, 2.0])), Ok(()));
        let err = check_one(&spec_with("w", vec![1.0, 2.0])).unwrap_err();
        assert!(err.contains("is for a trainable variable"), "{err}");
        let err = check_one(&spec_with("moving_mean", vec![1.0])).unwrap_err();
        assert!(err.contains("variable `moving_mean` is F32 [2]"), "{err}");
        let err = check_one(&spec_with("other", vec![1.0])).unwrap_err();
        assert!(err.contains("names no declared variable"), "{err}");
        let err = check_one(&spec_with("moving_mean", vec![f32::NAN, 0.0])).unwrap_err();
        assert!(err.contains("holds NaN"), "{err}");
    }

    #[test]
    fn train_without_loss_names_mode_and_field() {
        let spec = EstimatorSpec::new(ModeKeys::Train);
        let err = check(&spec, ModeKeys::Train, &vars(), &[0], 1).unwrap_err();
        assert_eq!(
            err,
            "EstimatorSpec for mode train has no `loss` (mode train requires loss and gradients)"
        );
    }

    #[test]
    fn predict_without_predictions_is_refused() {
        let err = check(
            &EstimatorSpec::new(ModeKeys::Predict),
            ModeKeys::Predict,
            &vars(),
            &[0],
            1,
        )
        .unwrap_err();
        assert!(err.contains("has no `predictions`"), "{err}");
    }

    #[test]
    fn gradient_with_the_wrong_shape_is_refused() {
        let mut spec = EstimatorSpec::new(ModeKeys::Train);
        spec.loss = ROption::RSome(1.0);
        spec.gradients
            .push(NamedTensor::new("w", Tensor::f32(vec![3], vec![0.0; 3])));
        let err = check(&spec, ModeKeys::Train, &vars(), &[0], 1).unwrap_err();
        assert!(err.contains("gradient `w` is F32 [3]"), "{err}");
    }

    #[test]
    fn non_finite_loss_is_refused() {
        let mut spec = EstimatorSpec::new(ModeKeys::Eval);
        spec.loss = ROption::RSome(f32::NAN);
        let err = check(&spec, ModeKeys::Eval, &vars(), &[0], 1).unwrap_err();
        assert_eq!(err, "mode eval: loss is NaN; it must be a finite scalar");
    }

    #[test]
    fn predictions_must_have_the_batch_as_first_dimension() {
        let mut spec = EstimatorSpec::new(ModeKeys::Predict);
        spec.predictions
            .push(NamedTensor::new("p", Tensor::f32(vec![2], vec![0.0; 2])));
        let err = check(&spec, ModeKeys::Predict, &vars(), &[0], 3).unwrap_err();
        assert!(err.contains("batch size 3"), "{err}");
    }

    #[test]
    fn gradient_with_the_wrong_dtype_is_refused() {
        let mut spec = EstimatorSpec::new(ModeKeys::Train);
        spec.loss = ROption::RSome(1.0);
        spec.gradients
            .push(NamedTensor::new("w", Tensor::i64(vec![2], vec![0; 2])));
        let err = check(&spec, ModeKeys::Train, &vars(), &[0], 1).unwrap_err();
        assert_eq!(
            err,
            "mode train: gradient `w` is I64 [2] with 2 values; variable `w` is F32 [2]"
        );
    }

    #[test]
    fn a_gradient_out_of_declaration_order_is_refused() {
        let mut spec = EstimatorSpec::new(ModeKeys::Train);
        spec.loss = ROption::RSome(1.0);
        spec.gradients
            .push(NamedTensor::new("v", Tensor::f32(vec![2], vec![0.0; 2])));
        let err = check(&spec, ModeKeys::Train, &vars(), &[0], 1).unwrap_err();
        assert!(
            err.contains("gradient `v` is where variable `w`'s gradient belongs"),
            "{err}"
        );
    }

    #[test]
    fn a_prediction_with_fewer_values_than_its_shape_is_refused() {
        let mut spec = EstimatorSpec::new(ModeKeys::Predict);
        spec.predictions
            .push(NamedTensor::new("p", Tensor::f32(vec![3], vec![0.0; 2])));
        let err = check(&spec, ModeKeys::Predict, &vars(), &[0], 3).unwrap_err();
        assert_eq!(err, "mode infer: prediction `p` has shape [3] but 2 values");
    }
}
