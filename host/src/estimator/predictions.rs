//! A spec's predictions as one JSON object per example: each tensor's row, a scalar for a
//! `[batch]` tensor and a (nested) list otherwise.

use estimator_plugin_api::abi::{EstimatorSpec, TensorData, TensorView};

/// One example's predictions: each tensor's row `row`, as a scalar for `[batch]` tensors and
/// as a (nested) list otherwise.
pub(crate) fn example_json(
    spec: &EstimatorSpec,
    row: usize,
) -> serde_json::Map<String, serde_json::Value> {
    spec.predictions
        .iter()
        .map(|p| (p.name.to_string(), row_json(&p.tensor.view(), row)))
        .collect()
}

/// Row `row` of a tensor whose first dimension is the batch: a scalar for a `[batch]`
/// tensor, a (nested) list otherwise.
pub(crate) fn row_json(t: &TensorView<'_>, row: usize) -> serde_json::Value {
    use serde_json::Value;
    let row_shape = &t.shape[1..];
    let width: usize = row_shape.iter().product();
    let range = row * width..(row + 1) * width;
    let values: Vec<Value> = match t.data {
        TensorData::F32(v) => v[range].iter().map(|&x| f32_json(x)).collect(),
        TensorData::I64(v) => v[range].iter().map(|&x| Value::from(x)).collect(),
        TensorData::Str(v) => v[range].iter().map(|s| Value::from(s.as_str())).collect(),
    };
    nest(values, row_shape)
}

fn nest(values: Vec<serde_json::Value>, shape: &[usize]) -> serde_json::Value {
    match shape {
        [] => values.into_iter().next().unwrap_or(serde_json::Value::Null),
        [_] => serde_json::Value::Array(values),
        [_, rest @ ..] => {
            let inner: usize = rest.iter().product();
            let chunks: Vec<serde_json::Value> = values
                .chunks(inner.max(1))
                .map(|c| nest(c.to_vec(), rest))
                .collect();
            serde_json::Value::Array(chunks)
        }
    }
}

/// An f32 as JSON with its shortest decimal form (`0.1`, not `0.10000000149011612`).
fn f32_json(x: f32) -> serde_json::Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}
