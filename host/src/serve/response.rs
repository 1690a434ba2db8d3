//! Answers written straight from the predictions into the response body, without a JSON
//! tree, in TF Serving's shapes. Floats are written in their shortest form; a non-finite
//! one as TF Serving writes it (`NaN`, `Infinity`, `-Infinity`: its JSON writer's raw
//! numbers, which Python's `json` and JavaScript's `JSON5` read), never as `null`.

use std::collections::BTreeMap;

use estimator_plugin_api::abi::{EstimatorSpec, TensorData, TensorView};

use crate::export::Signature;

/// A prediction model_fn did not return although the signature names it.
#[derive(Debug)]
pub struct MissingPrediction(pub String);

/// The outputs a signature answers with, by output key, each found among the predictions.
pub struct Outputs<'s> {
    named: BTreeMap<&'s str, TensorView<'s>>,
}

impl<'s> Outputs<'s> {
    pub fn of(
        signature: &'s Signature,
        spec: &'s EstimatorSpec,
    ) -> Result<Self, MissingPrediction> {
        let named = signature
            .outputs
            .iter()
            .map(|(key, o)| {
                spec.prediction(&o.prediction)
                    .map(|t| (key.as_str(), t.view()))
                    .ok_or_else(|| MissingPrediction(o.prediction.clone()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Outputs { named })
    }

    pub fn get(&self, key: &str) -> Option<&TensorView<'s>> {
        self.named.get(key)
    }
}

/// `{"predictions": [...]}`: one entry per example, the value itself when the signature
/// has one output, else an object by output key.
pub fn predictions(outputs: &Outputs<'_>, rows: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 * rows + 32);
    out.extend_from_slice(b"{\"predictions\":[");
    for row in 0..rows {
        if row > 0 {
            out.push(b',');
        }
        write_example(&mut out, outputs, row);
    }
    out.extend_from_slice(b"]}");
    out
}

fn write_example(out: &mut Vec<u8>, outputs: &Outputs<'_>, row: usize) {
    if let [(_, only)] = outputs.named.iter().collect::<Vec<_>>()[..] {
        write_row(out, only, row);
        return;
    }
    out.push(b'{');
    for (i, (key, tensor)) in outputs.named.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
        write_row(out, tensor, row);
    }
    out.push(b'}');
}

/// `{"outputs": ...}`: each output's rows as one list, the list itself when the signature
/// has one output, else an object by output key.
pub fn outputs(outputs: &Outputs<'_>, rows: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 * rows + 32);
    out.extend_from_slice(b"{\"outputs\":");
    let one = outputs.named.len() == 1;
    if !one {
        out.push(b'{');
    }
    for (i, (key, tensor)) in outputs.named.iter().enumerate() {
        if !one {
            if i > 0 {
                out.push(b',');
            }
            write_str(&mut out, key);
            out.push(b':');
        }
        write_rows(&mut out, tensor, rows);
    }
    if !one {
        out.push(b'}');
    }
    out.push(b'}');
    out
}

/// `:classify`'s `{"results": [[[class, score], ...], ...]}`. Without `classes`, a class is
/// its index as a string; without `scores`, its score is `null` (TF Serving's).
pub fn classifications(outputs: &Outputs<'_>, rows: usize) -> Vec<u8> {
    let (scores, classes) = (outputs.get("scores"), outputs.get("classes"));
    let width = |t: Option<&TensorView<'_>>| t.map_or(0, |t| t.shape[1..].iter().product());
    let n = width(scores).max(width(classes));
    let mut out = Vec::with_capacity(32 * rows * n + 32);
    out.extend_from_slice(b"{\"results\":[");
    for row in 0..rows {
        if row > 0 {
            out.push(b',');
        }
        out.push(b'[');
        for i in 0..n {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'[');
            match classes {
                Some(c) => write_value(&mut out, &c.data, row * n + i),
                None => write_str(&mut out, &i.to_string()),
            }
            out.push(b',');
            match scores {
                Some(s) => write_value(&mut out, &s.data, row * n + i),
                None => out.extend_from_slice(b"null"),
            }
            out.push(b']');
        }
        out.push(b']');
    }
    out.extend_from_slice(b"]}");
    out
}

/// `:regress`'s `{"results": [value, ...]}`: a one-value row written as the value.
pub fn regressions(values: &TensorView<'_>, rows: usize) -> Vec<u8> {
    let width: usize = values.shape[1..].iter().product();
    let mut out = Vec::with_capacity(16 * rows + 32);
    out.extend_from_slice(b"{\"results\":[");
    for row in 0..rows {
        if row > 0 {
            out.push(b',');
        }
        if width == 1 {
            write_value(&mut out, &values.data, row);
        } else {
            write_row(&mut out, values, row);
        }
    }
    out.extend_from_slice(b"]}");
    out
}

/// The rows `0..rows` of `t` as one list.
fn write_rows(out: &mut Vec<u8>, t: &TensorView<'_>, rows: usize) {
    out.push(b'[');
    for row in 0..rows {
        if row > 0 {
            out.push(b',');
        }
        write_row(out, t, row);
    }
    out.push(b']');
}

/// Row `row` of a tensor whose first dimension is the batch: a scalar for a `[batch]`
/// tensor, a (nested) list otherwise.
fn write_row(out: &mut Vec<u8>, t: &TensorView<'_>, row: usize) {
    let shape = &t.shape[1..];
    let width: usize = shape.iter().product();
    write_cells(out, &t.data, row * width, shape);
}

fn write_cells(out: &mut Vec<u8>, data: &TensorData<'_>, start: usize, shape: &[usize]) {
    let Some((&outer, inner)) = shape.split_first() else {
        write_value(out, data, start);
        return;
    };
    let step: usize = inner.iter().product();
    out.push(b'[');
    for i in 0..outer {
        if i > 0 {
            out.push(b',');
        }
        write_cells(out, data, start + i * step, inner);
    }
    out.push(b']');
}

fn write_value(out: &mut Vec<u8>, data: &TensorData<'_>, at: usize) {
    match data {
        TensorData::F32(v) => write_f32(out, v[at]),
        TensorData::I64(v) => out.extend_from_slice(v[at].to_string().as_bytes()),
        TensorData::Str(v) => write_str(out, v[at].as_str()),
    }
}

fn write_f32(out: &mut Vec<u8>, x: f32) {
    if x.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if x.is_infinite() {
        out.extend_from_slice(if x > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else {
        // serde_json writes a finite f32 in its shortest form (ryu), as `predict` does.
        let _ = serde_json::to_writer(&mut *out, &x);
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use estimator_plugin_api::abi::{ModeKeys, Tensor};

    fn spec_with(predictions: &[(&str, Tensor)]) -> EstimatorSpec {
        let mut spec = EstimatorSpec::new(ModeKeys::Predict);
        for (name, t) in predictions {
            spec.add_prediction(*name, t.clone());
        }
        spec
    }

    fn signature(outputs: &[&str]) -> Signature {
        serde_yaml::from_str(&format!(
            "method: predict\noutputs:\n{}",
            outputs
                .iter()
                .map(|o| format!("  {o}: {{prediction: {o}, dtype: float32, shape: [2]}}\n"))
                .collect::<String>()
        ))
        .expect("signature")
    }

    #[test]
    fn rows_and_columns_are_tf_servings_shapes_with_non_finite_floats_as_it_writes_them() {
        let logits = Tensor::f32(
            vec![2, 2],
            vec![0.5, f32::NAN, f32::INFINITY, -f32::INFINITY],
        );
        let ids = Tensor::i64(vec![2], vec![1, 0]);
        let spec = spec_with(&[("logits", logits), ("ids", ids)]);
        let sig = signature(&["logits", "ids"]);
        let outs = Outputs::of(&sig, &spec).expect("outputs");
        assert_eq!(
            String::from_utf8(predictions(&outs, 2)).expect("utf-8"),
            r#"{"predictions":[{"ids":1,"logits":[0.5,NaN]},{"ids":0,"logits":[Infinity,-Infinity]}]}"#
        );
        assert_eq!(
            String::from_utf8(outputs(&outs, 2)).expect("utf-8"),
            r#"{"outputs":{"ids":[1,0],"logits":[[0.5,NaN],[Infinity,-Infinity]]}}"#
        );
        let one = signature(&["ids"]);
        let outs = Outputs::of(&one, &spec).expect("outputs");
        assert_eq!(
            String::from_utf8(predictions(&outs, 2)).expect("utf-8"),
            r#"{"predictions":[1,0]}"#
        );
    }

    #[test]
    fn finite_answers_equal_serde_json_writing_the_same_values() {
        let p = Tensor::f32(vec![2, 3], vec![0.1, 1e-7, 3.0, -2.5e10, 0.333_333_34, 7.0]);
        let spec = spec_with(&[("p", p.clone())]);
        let sig = signature(&["p"]);
        let outs = Outputs::of(&sig, &spec).expect("outputs");
        let written: serde_json::Value =
            serde_json::from_slice(&outputs(&outs, 2)).expect("valid JSON");
        let rows = |r: usize| crate::estimator::predictions::row_json(&p.view(), r);
        assert_eq!(written, serde_json::json!({"outputs": [rows(0), rows(1)]}));
    }

    #[test]
    fn a_missing_prediction_is_named() {
        let spec = spec_with(&[]);
        let sig = signature(&["p"]);
        let Err(MissingPrediction(name)) = Outputs::of(&sig, &spec) else {
            panic!("refused")
        };
        assert_eq!(name, "p");
    }
}
