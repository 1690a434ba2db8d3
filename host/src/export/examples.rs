//! Examples as JSON and as columns: instances (JSON objects, as an export's warm-up
//! examples hold them) turned into the feature columns model_fn reads (one tensor per
//! input, in the inputs' order: by name), and a batch's features turned back into
//! instances. Requests are read by the streaming readers of `instances`, which give the
//! same columns and messages.

use std::collections::BTreeMap;

use estimator_plugin_api::abi::{NamedView, Tensor};
use serde_json::{Map, Value};

use super::signature::{DTypeName, TensorInfo};
use crate::error::Invalid;
use crate::estimator::predictions::row_json;

/// Columns from instances: one JSON object per example, with every input.
pub fn columns_from_instances(
    inputs: &BTreeMap<String, TensorInfo>,
    instances: &[Value],
) -> Result<Vec<Tensor>, Invalid> {
    let mut columns: Vec<Column> = inputs.iter().map(|(n, i)| Column::new(n, i)).collect();
    for (row, instance) in instances.iter().enumerate() {
        let Value::Object(features) = instance else {
            return Err(Invalid(format!(
                "instance {row} is not an object of named inputs"
            )));
        };
        refuse_unknown(inputs, features.keys(), &format!("instance {row}"))?;
        for column in &mut columns {
            let value = features
                .get(column.name)
                .ok_or_else(|| Invalid(format!("instance {row} has no input `{}`", column.name)))?;
            column.push(value, &format!("instance {row}"))?;
        }
    }
    Ok(columns
        .into_iter()
        .map(|c| c.finish(instances.len()))
        .collect())
}

fn refuse_unknown<'k>(
    inputs: &BTreeMap<String, TensorInfo>,
    mut given: impl Iterator<Item = &'k String>,
    what: &str,
) -> Result<(), Invalid> {
    match given.find(|k| !inputs.contains_key(k.as_str())) {
        Some(unknown) => {
            let known: Vec<&str> = inputs.keys().map(String::as_str).collect();
            Err(Invalid(format!(
                "{what} has an input `{unknown}` the model does not take (it takes: {})",
                known.join(", ")
            )))
        }
        None => Ok(()),
    }
}

/// One input's values, gathered example by example.
pub(super) struct Column<'a> {
    pub(super) name: &'a str,
    pub(super) info: &'a TensorInfo,
    values: Values,
}

enum Values {
    F32(Vec<f32>),
    I64(Vec<i64>),
    Str(Vec<String>),
}

impl<'a> Column<'a> {
    pub(super) fn new(name: &'a str, info: &'a TensorInfo) -> Self {
        let values = match info.dtype {
            DTypeName::Float32 => Values::F32(Vec::new()),
            DTypeName::Int64 => Values::I64(Vec::new()),
            DTypeName::String => Values::Str(Vec::new()),
        };
        Column { name, info, values }
    }

    /// Adds one example's value, which must have the input's shape and type.
    pub(super) fn push(&mut self, value: &Value, at: &str) -> Result<(), Invalid> {
        let mut leaves = Vec::new();
        flatten(value, &self.info.shape, &mut leaves).map_err(|()| {
            Invalid(format!(
                "{at}: input `{}` must have shape {:?} per example",
                self.name, self.info.shape
            ))
        })?;
        leaves
            .into_iter()
            .try_for_each(|leaf| self.push_leaf(leaf, at))
    }

    /// Adds one scalar, which must have the input's type.
    pub(super) fn push_leaf(
        &mut self,
        leaf: &Value,
        at: impl std::fmt::Display,
    ) -> Result<(), Invalid> {
        let wrong = |wanted: &str| {
            Invalid(format!(
                "{at}: input `{}` must hold {wanted}, not {leaf}",
                self.name
            ))
        };
        match &mut self.values {
            Values::F32(out) => {
                let value = leaf.as_f64().ok_or_else(|| wrong("numbers"))? as f32;
                // JSON has no infinity: a finite number that overflows float32 is refused,
                // as TF Serving refuses it, rather than read as ±inf.
                if !value.is_finite() {
                    return Err(Invalid(format!(
                        "{at}: input `{}`: cannot convert JSON value {leaf} to float without loss of precision",
                        self.name
                    )));
                }
                out.push(value)
            }
            Values::I64(out) => out.push(leaf.as_i64().ok_or_else(|| wrong("integers"))?),
            Values::Str(out) => out.push(leaf.as_str().ok_or_else(|| wrong("strings"))?.to_owned()),
        }
        Ok(())
    }

    pub(super) fn finish(self, rows: usize) -> Tensor {
        let mut shape = vec![rows];
        shape.extend_from_slice(&self.info.shape);
        match self.values {
            Values::F32(v) => Tensor::f32(shape, v),
            Values::I64(v) => Tensor::i64(shape, v),
            Values::Str(v) => Tensor::strings(shape, v),
        }
    }
}

/// Appends the scalars of `value`, which must be nested lists of `shape`, in row-major
/// order. A shape of `[1]` also takes a bare scalar, as TF Serving does.
fn flatten<'v>(value: &'v Value, shape: &[usize], out: &mut Vec<&'v Value>) -> Result<(), ()> {
    match (shape, value) {
        ([], Value::Array(_)) => Err(()),
        ([], scalar) => {
            out.push(scalar);
            Ok(())
        }
        ([1], scalar) if !scalar.is_array() => {
            out.push(scalar);
            Ok(())
        }
        ([n, rest @ ..], Value::Array(items)) if items.len() == *n => {
            items.iter().try_for_each(|item| flatten(item, rest, out))
        }
        _ => Err(()),
    }
}

/// The first `rows` examples of a batch's features as instances (JSON objects).
pub fn instances_from_features(features: &[NamedView<'_>], rows: usize) -> Vec<Value> {
    (0..rows)
        .map(|row| {
            let instance: Map<String, Value> = features
                .iter()
                .map(|f| (f.name.to_string(), row_json(&f.tensor, row)))
                .collect();
            Value::Object(instance)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use estimator_plugin_api::abi::TensorBuf;
    use serde_json::json;

    fn iris_inputs() -> BTreeMap<String, TensorInfo> {
        let number = || TensorInfo {
            dtype: DTypeName::Float32,
            shape: vec![],
        };
        BTreeMap::from([("a".to_owned(), number()), ("b".to_owned(), number())])
    }

    #[test]
    fn rows_and_columns_give_the_same_columns() {
        let rows = columns_from_instances(
            &iris_inputs(),
            &[json!({"a": 1, "b": 2.5}), json!({"a": 3, "b": 4})],
        )
        .expect("valid");
        let given = r#"{"a": [1, 3], "b": [2.5, 4]}"#;
        let index = crate::export::input_index(&iris_inputs());
        let (cols, n) =
            crate::export::columns_from_inputs_json(&iris_inputs(), &index, given).expect("valid");
        assert_eq!((rows.clone(), 2), (cols, n));
        assert_eq!(rows[0].shape.as_slice(), &[2]);
        assert_eq!(rows[1].data, TensorBuf::F32(vec![2.5, 4.0].into()));
    }

    #[test]
    fn bad_requests_are_named() {
        let inputs = iris_inputs();
        let err = |r: Result<Vec<Tensor>, Invalid>| r.expect_err("refused").0;
        assert_eq!(
            err(columns_from_instances(&inputs, &[json!({"a": 1})])),
            "instance 0 has no input `b`"
        );
        assert_eq!(
            err(columns_from_instances(
                &inputs,
                &[json!({"a": "x", "b": 1})]
            )),
            "instance 0: input `a` must hold numbers, not \"x\""
        );
        assert_eq!(
            err(columns_from_instances(
                &inputs,
                &[json!({"a": [1, 2], "b": 1})]
            )),
            "instance 0: input `a` must have shape [] per example"
        );
        assert!(err(columns_from_instances(
            &inputs,
            &[json!({"a": 1, "b": 1, "c": 1})]
        ))
        .starts_with("instance 0 has an input `c` the model does not take"));
    }

    #[test]
    fn instances_come_back_from_features() {
        let (shape, a, b) = ([2usize, 2], [1.0f32, 2.0, 3.0, 4.0], [7i64, 8]);
        let features = [
            NamedView {
                name: "a".into(),
                tensor: estimator_plugin_api::abi::TensorView::f32(&shape, &a),
            },
            NamedView {
                name: "b".into(),
                tensor: estimator_plugin_api::abi::TensorView::i64(&shape[..1], &b),
            },
        ];
        let instances = instances_from_features(&features, 2);
        assert_eq!(
            instances,
            [
                json!({"a": [1.0, 2.0], "b": 7}),
                json!({"a": [3.0, 4.0], "b": 8})
            ]
        );
    }
}
