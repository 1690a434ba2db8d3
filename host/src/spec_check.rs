//! Checks an EstimatorSpec against its mode, as TF's `EstimatorSpec` constructor does, plus
//! what only a host across an ABI must check: shapes, dtypes and finiteness.

use crate::error::Invalid;
use estimator_plugin_api::abi::{DType, EstimatorSpec, Gradient, ModeKeys};

use crate::variables::{Variable, VariableStore};

/// Why a spec is refused, in one line naming the mode and the field.
pub fn check(
    spec: &EstimatorSpec,
    mode: ModeKeys,
    vars: &VariableStore,
    trainable: &[usize],
    batch_len: usize,
) -> Result<(), Invalid> {
    let requires = |field: &str| {
        let needs = match mode {
            ModeKeys::Train => "loss and gradients",
            ModeKeys::Eval => "loss",
            ModeKeys::Predict => "predictions",
        };
        Invalid(format!(
            "EstimatorSpec for mode {mode} has no `{field}` (mode {mode} requires {needs})"
        ))
    };
    match mode {
        ModeKeys::Train | ModeKeys::Eval => {
            let loss = spec.loss.into_option().ok_or_else(|| requires("loss"))?;
            // In TRAIN a non-finite loss is the nan_tensor hook's to handle.
            if mode == ModeKeys::Eval && !loss.is_finite() {
                return Err(Invalid(format!(
                    "mode {mode}: loss is {loss}; it must be a finite scalar"
                )));
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
            return Err(Invalid(format!(
                "mode {mode}: prediction `{}` has shape {:?} but {} values",
                p.name,
                t.shape.as_slice(),
                t.data.len()
            )));
        }
        if t.shape.is_empty() || t.shape[0] != batch_len {
            return Err(Invalid(format!(
                "mode {mode}: prediction `{}` has shape {:?}; its first dimension must be the batch size {batch_len}",
                p.name,
                t.shape.as_slice()
            )));
        }
    }
    Ok(())
}

fn check_gradients(
    spec: &EstimatorSpec,
    vars: &VariableStore,
    trainable: &[usize],
    requires: &dyn Fn(&str) -> Invalid,
) -> Result<(), Invalid> {
    if spec.gradients.is_empty() && !trainable.is_empty() {
        return Err(requires("gradients"));
    }
    if spec.gradients.len() != trainable.len() {
        return Err(Invalid(format!(
            "mode train: {} gradients for {} trainable variables (one per variable, in declaration order)",
            spec.gradients.len(),
            trainable.len()
        )));
    }
    for (g, &index) in spec.gradients.iter().zip(trainable) {
        let var = vars.get(index);
        if g.name.as_str() != var.name {
            return Err(Invalid(format!("mode train: gradient `{}` is where variable `{}`'s gradient belongs (declaration order)", g.name, var.name)));
        }
        match g.rows.as_ref().into_option() {
            None => check_dense_gradient(g, var)?,
            Some(rows) => check_row_gradient(g, rows, var)?,
        }
    }
    Ok(())
}

fn check_dense_gradient(g: &Gradient, var: &Variable) -> Result<(), Invalid> {
    if g.values.dtype() != DType::F32
        || g.values.shape.as_slice() != var.shape.as_slice()
        || g.values.data.len() != var.data.len()
    {
        return Err(Invalid(format!(
            "mode train: gradient `{}` is {:?} {:?} with {} values; variable `{}` is F32 {:?}",
            g.name,
            g.values.dtype(),
            g.values.shape.as_slice(),
            g.values.data.len(),
            var.name,
            var.shape
        )));
    }
    Ok(())
}

/// A row-sparse gradient: `[rows, <the variable's row shape>]` values, each row index
/// inside the variable.
fn check_row_gradient(g: &Gradient, rows: &[i64], var: &Variable) -> Result<(), Invalid> {
    let row_shape = var.shape.get(1..).unwrap_or(&[]);
    let row_len: usize = row_shape.iter().product();
    let shape_ok = var.shape.len() >= 2
        && g.values.shape.first() == Some(&rows.len())
        && g.values.shape.get(1..) == Some(row_shape)
        && g.values.data.len() == rows.len() * row_len;
    if g.values.dtype() != DType::F32 || !shape_ok {
        return Err(Invalid(format!(
            "mode train: row gradient `{}` is {:?} {:?} with {} values for {} rows; variable `{}` is F32 {:?} (a row gradient needs [rows, {row_shape:?}])",
            g.name,
            g.values.dtype(),
            g.values.shape.as_slice(),
            g.values.data.len(),
            rows.len(),
            var.name,
            var.shape
        )));
    }
    let height = var.shape[0] as i64;
    if let Some(bad) = rows.iter().find(|&&r| !(0..height).contains(&r)) {
        return Err(Invalid(format!(
            "mode train: row gradient `{}` names row {bad}; variable `{}` has {height} rows",
            g.name, var.name
        )));
    }
    Ok(())
}

/// Updates (new values of non-trainable variables, such as batch norm's moving averages)
/// must each name a declared non-trainable variable once, with its shape, and be finite.
fn check_updates(spec: &EstimatorSpec, vars: &VariableStore) -> Result<(), Invalid> {
    let mut seen = std::collections::HashSet::new();
    for u in spec.updates.iter() {
        let name = u.name.as_str();
        let var = vars
            .iter()
            .find(|v| v.name == name)
            .ok_or_else(|| format!("mode train: update `{name}` names no declared variable"))?;
        if var.trainable {
            return Err(Invalid(format!(
                "mode train: update `{name}` is for a trainable variable; the optimizer alone changes those"
            )));
        }
        if !seen.insert(name) {
            return Err(Invalid(format!(
                "mode train: variable `{name}` is updated twice"
            )));
        }
        let values = u.tensor.as_f32().unwrap_or_default();
        if u.tensor.shape.as_slice() != var.shape.as_slice() || values.len() != var.data.len() {
            return Err(Invalid(format!(
                "mode train: update `{name}` is {:?} {:?} with {} values; variable `{name}` is F32 {:?}",
                u.tensor.dtype(),
                u.tensor.shape.as_slice(),
                u.tensor.data.len(),
                var.shape
            )));
        }
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(Invalid(format!("mode train: update `{name}` holds {bad}")));
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
            spec.gradients = vec![Gradient::dense("w", Tensor::f32(vec![2], vec![0.0; 2]))].into();
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
            .push(Gradient::dense("w", Tensor::f32(vec![3], vec![0.0; 3])));
        let err = check(&spec, ModeKeys::Train, &vars(), &[0], 1).unwrap_err();
        assert!(err.contains("gradient `w` is F32 [3]"), "{err}");
    }

    #[test]
    fn row_gradients_must_fit_the_variables_rows() {
        let specs = [VarSpec::new("table", &[4, 2], Initializer::Zeros)];
        let vars = VariableStore::initialise(&specs, 0).expect("valid");
        let with = |rows: Vec<i64>, shape: Vec<usize>| {
            let mut spec = EstimatorSpec::new(ModeKeys::Train);
            spec.loss = ROption::RSome(1.0);
            let n = shape.iter().product();
            spec.gradients.push(Gradient::sparse(
                "table",
                rows,
                Tensor::f32(shape, vec![0.5; n]),
            ));
            check(&spec, ModeKeys::Train, &vars, &[0], 1)
        };
        assert_eq!(with(vec![1, 3, 1], vec![3, 2]), Ok(()), "rows may repeat");
        let err = with(vec![4], vec![1, 2]).unwrap_err();
        assert!(
            err.contains("names row 4; variable `table` has 4 rows"),
            "{err}"
        );
        let err = with(vec![0, 1], vec![2, 3]).unwrap_err();
        assert!(err.contains("needs [rows, [2]]"), "{err}");
        let err = with(vec![0, 1], vec![1, 2]).unwrap_err();
        assert!(err.contains("for 2 rows"), "{err}");
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
            .push(Gradient::dense("w", Tensor::i64(vec![2], vec![0; 2])));
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
            .push(Gradient::dense("v", Tensor::f32(vec![2], vec![0.0; 2])));
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
