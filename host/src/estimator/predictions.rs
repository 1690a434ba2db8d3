//! A spec's predictions as one JSON object per example: each tensor's row, a scalar for a
//! `[batch]` tensor and a (nested) list otherwise.

use estimator_plugin_api::abi::{EstimatorSpec, NamedTensor, TensorData, TensorView};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// One example's predictions, borrowed from its batch's spec: each tensor's row, a scalar
/// for a `[batch]` tensor and a (nested) list otherwise, keys sorted. It serializes
/// straight from the tensors (f32 values in their shortest form, `0.1`), so writing a
/// million examples builds no JSON values on the way.
#[derive(Clone, Copy)]
pub struct PredictionRow<'a> {
    predictions: &'a [NamedTensor],
    /// The predictions' indices sorted by name, computed once per batch.
    sorted: &'a [usize],
    row: usize,
}

/// The indices of `spec`'s predictions sorted by name, for the rows of one batch.
pub(crate) fn sorted_by_name(spec: &EstimatorSpec) -> Vec<usize> {
    let mut order: Vec<usize> = (0..spec.predictions.len()).collect();
    order.sort_by(|&a, &b| spec.predictions[a].name.cmp(&spec.predictions[b].name));
    order
}

impl<'a> PredictionRow<'a> {
    pub(crate) fn new(spec: &'a EstimatorSpec, sorted: &'a [usize], row: usize) -> Self {
        PredictionRow {
            predictions: &spec.predictions,
            sorted,
            row,
        }
    }

    /// The example as a JSON object, for callers that keep it.
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        self.predictions
            .iter()
            .map(|p| (p.name.to_string(), row_json(&p.tensor.view(), self.row)))
            .collect()
    }
}

impl Serialize for PredictionRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.sorted.len()))?;
        for p in self.sorted.iter().filter_map(|&i| self.predictions.get(i)) {
            let view = p.tensor.view();
            let row_shape = &view.shape[1..];
            let width: usize = row_shape.iter().product();
            let cells = Cells {
                data: &view.data,
                start: self.row * width,
                shape: row_shape,
            };
            map.serialize_entry(p.name.as_str(), &cells)?;
        }
        map.end()
    }
}

/// The values `start..` of a tensor, shaped `shape` (a scalar when empty).
struct Cells<'a> {
    data: &'a TensorData<'a>,
    start: usize,
    shape: &'a [usize],
}

impl Serialize for Cells<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Some((&outer, inner)) = self.shape.split_first() else {
            return match self.data {
                // serde_json writes an f32 in its shortest form, and a non-finite one as null.
                TensorData::F32(v) => s.serialize_f32(v[self.start]),
                TensorData::I64(v) => s.serialize_i64(v[self.start]),
                TensorData::Str(v) => s.serialize_str(v[self.start].as_str()),
            };
        };
        let step: usize = inner.iter().product();
        let mut seq = s.serialize_seq(Some(outer))?;
        for i in 0..outer {
            seq.serialize_element(&Cells {
                data: self.data,
                start: self.start + i * step,
                shape: inner,
            })?;
        }
        seq.end()
    }
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
