//! Answers written straight from the predictions into the response body, without a JSON
//! tree, in TF Serving's shapes, a slice at a time as the client reads them. Floats are written in their shortest form; a non-finite
//! one as TF Serving writes it (`NaN`, `Infinity`, `-Infinity`: its JSON writer's raw
//! numbers, which Python's `json` and JavaScript's `JSON5` read), never as `null`.

use estimator_plugin_api::abi::{EstimatorSpec, TensorData, TensorView};

use crate::export::Signature;

/// A prediction model_fn did not return although the signature names it.
#[derive(Debug)]
pub struct MissingPrediction(pub String);

/// What an answer holds, in TF Serving's shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `{"predictions": [...]}`: one entry per example, the value itself when the signature
    /// has one output, else an object by output key.
    Predictions,
    /// `{"outputs": ...}`: each output's rows as one list, the list itself when the
    /// signature has one output, else an object by output key.
    Outputs,
    /// `:classify`'s `{"results": [[[class, score], ...], ...]}`.
    Classifications,
    /// `:regress`'s `{"results": [value, ...]}`.
    Regressions,
}

/// An answer written a slice at a time as the client reads it: the body costs a slice of
/// memory, not the whole JSON, and a slow client holds only the predictions.
pub struct Answer {
    spec: EstimatorSpec,
    /// Output key → the prediction's place among `spec`'s, in key order: found once, not
    /// looked up by name for every row.
    outputs: Vec<(String, usize)>,
    rows: usize,
    shape: Shape,
    at: Cursor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cursor {
    Open,
    /// Section `section`; `row` is the next row, `None` before its header.
    Rows {
        section: usize,
        row: Option<usize>,
    },
    Close,
    Done,
}

/// Each slice is written until it holds at least this much.
pub const SLICE_BYTES: usize = 64 << 10;

impl Answer {
    /// The answer of `rows` examples to a request of `shape`, from `signature`'s outputs
    /// among `spec`'s predictions.
    pub fn new(
        signature: &Signature,
        spec: EstimatorSpec,
        rows: usize,
        shape: Shape,
    ) -> Result<Self, MissingPrediction> {
        let outputs = signature
            .outputs
            .iter()
            .map(|(key, o)| {
                spec.predictions
                    .iter()
                    .position(|p| p.name.as_str() == o.prediction)
                    .map(|at| (key.clone(), at))
                    .ok_or_else(|| MissingPrediction(o.prediction.clone()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Answer {
            spec,
            outputs,
            rows,
            shape,
            at: Cursor::Open,
        })
    }

    /// Writes the next slice into `out`; `false` once the answer is complete.
    pub fn next_slice(&mut self, out: &mut Vec<u8>) -> bool {
        while out.len() < SLICE_BYTES {
            self.at = match self.at {
                Cursor::Open => {
                    out.extend_from_slice(self.opening());
                    Cursor::Rows {
                        section: 0,
                        row: None,
                    }
                }
                Cursor::Rows { section, .. } if section == self.sections() => Cursor::Close,
                Cursor::Rows { section, row: None } => {
                    if section > 0 {
                        out.push(b',');
                    }
                    if self.keyed() {
                        write_str(out, &self.outputs[section].0);
                        out.push(b':');
                    }
                    out.push(b'[');
                    Cursor::Rows {
                        section,
                        row: Some(0),
                    }
                }
                Cursor::Rows {
                    section,
                    row: Some(row),
                } if row == self.rows => {
                    out.push(b']');
                    Cursor::Rows {
                        section: section + 1,
                        row: None,
                    }
                }
                Cursor::Rows {
                    section,
                    row: Some(row),
                } => {
                    if row > 0 {
                        out.push(b',');
                    }
                    self.write_entry(out, section, row);
                    Cursor::Rows {
                        section,
                        row: Some(row + 1),
                    }
                }
                Cursor::Close => {
                    out.extend_from_slice(if self.keyed() { b"}}" } else { b"}" });
                    Cursor::Done
                }
                Cursor::Done => return !out.is_empty(),
            };
        }
        true
    }

    /// Whether every slice has been written.
    pub fn is_done(&self) -> bool {
        self.at == Cursor::Done
    }

    /// The whole answer at once.
    #[cfg(test)]
    pub fn into_bytes(mut self) -> Vec<u8> {
        let mut all = Vec::new();
        let mut slice = Vec::new();
        while self.next_slice(&mut slice) {
            all.append(&mut slice);
        }
        all
    }

    fn opening(&self) -> &'static [u8] {
        match self.shape {
            Shape::Predictions => b"{\"predictions\":",
            Shape::Outputs if self.keyed() => b"{\"outputs\":{",
            Shape::Outputs => b"{\"outputs\":",
            Shape::Classifications | Shape::Regressions => b"{\"results\":",
        }
    }

    /// Whether each output is its own keyed list (the columnar format, several outputs).
    fn keyed(&self) -> bool {
        self.shape == Shape::Outputs && self.outputs.len() > 1
    }

    /// One list per output in the keyed columnar format, else one list of examples.
    fn sections(&self) -> usize {
        if self.shape == Shape::Outputs {
            self.outputs.len()
        } else {
            1
        }
    }

    /// Output `i`'s predictions.
    fn view(&self, i: usize) -> TensorView<'_> {
        self.spec.predictions[self.outputs[i].1].tensor.view()
    }

    /// The output `key`, when the signature has it.
    fn output(&self, key: &str) -> Option<TensorView<'_>> {
        let i = self.outputs.iter().position(|(k, _)| k == key)?;
        Some(self.view(i))
    }

    fn write_entry(&self, out: &mut Vec<u8>, section: usize, row: usize) {
        match self.shape {
            Shape::Outputs => write_row(out, &self.view(section), row),
            Shape::Predictions => self.write_example(out, row),
            Shape::Classifications => {
                write_classification(out, self.output("scores"), self.output("classes"), row)
            }
            Shape::Regressions => {
                if let Some(values) = self.output("outputs") {
                    let width: usize = values.shape[1..].iter().product();
                    if width == 1 {
                        write_value(out, &values.data, row);
                    } else {
                        write_row(out, &values, row);
                    }
                }
            }
        }
    }

    fn write_example(&self, out: &mut Vec<u8>, row: usize) {
        if self.outputs.len() == 1 {
            write_row(out, &self.view(0), row);
            return;
        }
        out.push(b'{');
        for (i, (key, _)) in self.outputs.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, key);
            out.push(b':');
            write_row(out, &self.view(i), row);
        }
        out.push(b'}');
    }
}

/// One example's `[[class, score], ...]`. Without `classes`, a class is its index as a
/// string; without `scores`, its score is `null` (TF Serving's).
fn write_classification(
    out: &mut Vec<u8>,
    scores: Option<TensorView<'_>>,
    classes: Option<TensorView<'_>>,
    row: usize,
) {
    let width = |t: &Option<TensorView<'_>>| {
        t.as_ref()
            .map_or(0, |t| t.shape[1..].iter().product::<usize>())
    };
    let n = width(&scores).max(width(&classes));
    out.push(b'[');
    for i in 0..n {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        match &classes {
            Some(c) => write_value(out, &c.data, row * n + i),
            None => write_str(out, &i.to_string()),
        }
        out.push(b',');
        match &scores {
            Some(s) => write_value(out, &s.data, row * n + i),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b']');
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

    fn answer(outputs: &[&str], spec: &EstimatorSpec, rows: usize, shape: Shape) -> String {
        let answer = Answer::new(&signature(outputs), spec.clone(), rows, shape).expect("outputs");
        String::from_utf8(answer.into_bytes()).expect("utf-8")
    }

    #[test]
    fn rows_and_columns_are_tf_servings_shapes_with_non_finite_floats_as_it_writes_them() {
        let logits = Tensor::f32(
            vec![2, 2],
            vec![0.5, f32::NAN, f32::INFINITY, -f32::INFINITY],
        );
        let ids = Tensor::i64(vec![2], vec![1, 0]);
        let spec = spec_with(&[("logits", logits), ("ids", ids)]);
        assert_eq!(
            answer(&["logits", "ids"], &spec, 2, Shape::Predictions),
            r#"{"predictions":[{"ids":1,"logits":[0.5,NaN]},{"ids":0,"logits":[Infinity,-Infinity]}]}"#
        );
        assert_eq!(
            answer(&["logits", "ids"], &spec, 2, Shape::Outputs),
            r#"{"outputs":{"ids":[1,0],"logits":[[0.5,NaN],[Infinity,-Infinity]]}}"#
        );
        assert_eq!(
            answer(&["ids"], &spec, 2, Shape::Predictions),
            r#"{"predictions":[1,0]}"#
        );
        assert_eq!(
            answer(&["ids"], &spec, 2, Shape::Outputs),
            r#"{"outputs":[1,0]}"#
        );
    }

    #[test]
    fn classifications_and_regressions_are_tf_servings_results() {
        let spec = spec_with(&[
            (
                "scores",
                Tensor::f32(vec![2, 2], vec![0.25, 0.75, 1.0, 0.0]),
            ),
            (
                "classes",
                Tensor::strings(
                    vec![2, 2],
                    vec!["a".into(), "b".into(), "a".into(), "b".into()],
                ),
            ),
            ("outputs", Tensor::f32(vec![2, 1], vec![0.5, 2.0])),
        ]);
        assert_eq!(
            answer(&["scores", "classes"], &spec, 2, Shape::Classifications),
            r#"{"results":[[["a",0.25],["b",0.75]],[["a",1.0],["b",0.0]]]}"#
        );
        assert_eq!(
            answer(&["scores"], &spec, 1, Shape::Classifications),
            r#"{"results":[[["0",0.25],["1",0.75]]]}"#
        );
        assert_eq!(
            answer(&["outputs"], &spec, 2, Shape::Regressions),
            r#"{"results":[0.5,2.0]}"#
        );
    }

    #[test]
    fn a_large_answer_comes_in_slices_that_join_to_the_whole() {
        let rows = 20_000;
        let p = Tensor::f32(
            vec![rows, 3],
            (0..rows * 3).map(|i| i as f32 / 7.0).collect(),
        );
        let spec = spec_with(&[("p", p.clone())]);
        let mut answer =
            Answer::new(&signature(&["p"]), spec, rows, Shape::Predictions).expect("outputs");
        let (mut slices, mut all) = (0, Vec::new());
        let mut slice = Vec::new();
        while answer.next_slice(&mut slice) {
            assert!(slice.len() < SLICE_BYTES + 256, "a slice is bounded");
            slices += 1;
            all.append(&mut slice);
        }
        assert!(slices > 5, "{slices}");
        let written: serde_json::Value = serde_json::from_slice(&all).expect("valid JSON");
        let rows_json: Vec<serde_json::Value> = (0..rows)
            .map(|r| crate::estimator::predictions::row_json(&p.view(), r))
            .collect();
        assert_eq!(written, serde_json::json!({ "predictions": rows_json }));
    }

    #[test]
    fn a_missing_prediction_is_named() {
        let spec = spec_with(&[]);
        let Err(MissingPrediction(name)) = Answer::new(&signature(&["p"]), spec, 1, Shape::Outputs)
        else {
            panic!("refused")
        };
        assert_eq!(name, "p");
    }
}
